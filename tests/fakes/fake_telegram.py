#!/usr/bin/env python3
"""fake_telegram.py -- a fake Telegram Bot API server on 127.0.0.1.

Follows the public Bot API (../shared/protocols/telegram-bot-api.md) as a
bot sees it: /bot<token>/<method> with GET query, JSON, form or multipart
parameters, method names case-insensitive, the real envelopes
{"ok":true,"result":...} and {"ok":false,"error_code":N,"description":...,
"parameters":{...}} with the HTTP status equal to error_code, 401 for a wrong
token, 404 for an unknown method.

- getUpdates: a real long poll (timeout parks the request until an update
  comes), offset confirms and drops earlier updates (negative: the last N),
  limit 1..100, allowed_updates remembered; a second poller ends the parked
  one with 409 "terminated by other getUpdates request"; 409 while a webhook
  is set.
- setWebhook / deleteWebhook / getWebhookInfo, and delivery: each pending
  update is POSTed to the URL, in order, with X-Telegram-Bot-Api-Secret-Token;
  a non-2xx answer leaves it pending and it is delivered again later.
- sendMessage (text 1..4096 characters, reply_markup checked, callback_data
  1..64 bytes), sendPhoto / sendDocument (file_id, URL or multipart upload),
  sendMediaGroup, copyMessage, forwardMessage, sendChatAction, getFile and
  /file/bot<token>/<path> downloads (20 MB cap), answerCallbackQuery,
  createForumTopic (only in a supergroup with is_forum, where the bot may
  manage topics: the group's "can_manage_topics": false refuses it), getMe.
- Forum topics: a send with message_thread_id into a forum goes to that
  topic (recorded, and echoed in the Message with is_topic_message); one
  into a topic deleted by /_/delete_topic {chat_id, message_thread_id}, or
  never created, is "400 Bad Request: message thread not found". A
  manager's message in a topic is pushed with the shorthand's "thread_id":
  it carries message_thread_id and is_topic_message, and replies (as in
  Telegram) to the topic's creation message unless "reply_to" names another.
- Chats: a private chat exists once its user wrote (a pushed update) or was
  declared (/_/users); others give "400 Bad Request: chat not found". Blocked
  chats answer 403, migrated groups 400 with parameters.migrate_to_chat_id.
- Errors injected by the test: /_/inject {method, status, description,
  retry_after, count, chat_id, delay_ms, after (let that many matching
  sends pass first), truncate (a send answered 200 with only the first N
  bytes of its answer; with "processed": true the send is taken first, as
  when a proxy or a reset connection cuts a real answer, else it is not)},
  /_/storm {seconds} (every send is 429 with the time left as retry_after,
  as Telegram's flood control).
- Updates Telegram could send but jansson refuses: push_raw(update, subst)
  serialises the update and then replaces each key of subst (a placeholder
  written in the update, quotes included) with its raw JSON text, e.g. a
  text with a lone surrogate "\\ud800", "\\u0000", or an integer beyond
  int64 (getUpdates and the webhook deliver that text).
- Rates: every send is recorded; /_/state lists violations, each a token
  bucket over the arrival times (n sends in a span of s seconds are too many
  when n > burst + rate * (s + 0.25), the 0.25 s being clock slack): more
  than rate_global/s over the bot (burst: one second's worth), more than
  rate_chat/s in one private chat with a burst of burst_chat (3: Telegram
  lets a short burst into a private chat pass, then about 1/s sustained;
  the FAQ's "short bursts tolerated"), rate_group_min per minute in one
  group (burst 1), and any send that arrives while a 429's retry_after
  still runs (after a 0.5 s grace for requests already in flight).

Control (tests): POST /_/push (an update, update_id assigned; or a shorthand
{"chat_id", "text" | "photo" | "contact" | "callback_data" ...}), GET /_/sent,
GET /_/state, POST /_/users, /_/block, /_/unblock, /_/migrate, /_/conflict,
/_/delete_topic, /_/reset_calls.

Run: fake_telegram.py [--port N] [--token T] [--port-file F] [--log F]
Prints "port N" on stdout once listening.
"""
import argparse
import base64
import json
import math
import os
import random
import socket
import struct
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BOT_ID = 7000000001
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)   # Linux; SCM_TIMESTAMPNS is the same
DOWNLOAD_MAX = 20 << 20
SEND_METHODS = {"sendmessage", "sendphoto", "senddocument", "sendmediagroup",
                "copymessage", "forwardmessage"}


def u16len(s):
    return sum(2 if ord(c) >= 0x10000 else 1 for c in s)


class ApiError(Exception):
    def __init__(self, code, desc, params=None):
        super().__init__(desc)
        self.code, self.desc, self.params = code, desc, params


class Truncated(Exception):
    """A send answered 200 with the first n bytes of body (JSON) only."""
    def __init__(self, n, body):
        self.n, self.body = n, body


def bad(desc, params=None):
    return ApiError(400, "Bad Request: " + desc, params)


class Fake:
    def __init__(self, token, username="shop_test_bot", log=None,
                 rate_global=30.0, rate_chat=1.0, rate_group_min=20.0, burst_chat=3):
        self.token = token
        self.username = username
        self.cv = threading.Condition()
        self.updates = []          # pending (unconfirmed) updates, ordered
        self.next_update_id = random.randint(100000, 900000)
        self.allowed = None
        self.poll_gen = 0          # the live poller; older ones get 409
        self.polls = 0
        self.last_offset = None
        self.webhook = None        # {"url","secret","allowed_updates"}
        self.webhook_deliveries = []
        self.webhook_errors = 0
        self.msg_ids = {}          # chat -> last message_id
        self.users = set()
        self.groups = {}           # chat id -> {"title", "type", "is_forum"}
        self.blocked = set()
        self.migrated = {}
        self.files = {}            # file_id -> {"bytes", "path", "unique"}
        self.file_seq = 0
        self.sent = []             # accepted sends, in arrival order
        self.sends = []            # (t, chat, method) for every send attempt that reached a chat
        self.four29 = []           # (t, retry_after, chat or None)
        self.injections = []
        self.storm_until = 0.0
        self.conflict_next = False
        self.callbacks_answered = []
        self.actions = []
        self.topics = []
        self.calls = {}
        self.rate_global, self.rate_chat = rate_global, rate_chat
        self.rate_group = rate_group_min / 60.0
        self.burst_chat = burst_chat
        self.log = open(log, "a") if log else None
        self.closed = False
        self.wh_thread = None

    # ---- helpers ----
    def next_msg_id(self, chat):
        self.msg_ids[chat] = self.msg_ids.get(chat, 0) + 1
        return self.msg_ids[chat]

    def chat_obj(self, chat):
        if chat in self.groups:
            g = self.groups[chat]
            o = {"id": chat, "type": g.get("type", "supergroup"), "title": g.get("title", "Менеджеры")}
            if g.get("is_forum"):
                o["is_forum"] = True
            return o
        if chat < 0:
            return {"id": chat, "type": "supergroup" if str(chat).startswith("-100") else "group",
                    "title": "Группа"}
        return {"id": chat, "type": "private", "first_name": "User%d" % chat}

    def bot_user(self):
        return {"id": BOT_ID, "is_bot": True, "first_name": "Shop", "username": self.username}

    def add_file(self, data, path_ext="jpg", kind="photos"):
        self.file_seq += 1
        fid = "AgACAgIAAxkBAAI%06d%s" % (self.file_seq, base64.urlsafe_b64encode(os.urandom(6)).decode())
        self.files[fid] = {"bytes": data, "path": "%s/file_%d.%s" % (kind, self.file_seq, path_ext),
                           "unique": "AQAD%06d" % self.file_seq}
        return fid

    def push(self, upd):
        with self.cv:
            # update_id first, as Telegram writes it
            upd = dict({"update_id": self.next_update_id},
                       **{k: v for k, v in upd.items() if k != "update_id"})
            self.next_update_id += 1
            for key in ("message", "edited_message", "callback_query", "my_chat_member"):
                m = upd.get(key)
                if isinstance(m, dict):
                    chat = (m.get("chat") or (m.get("message") or {}).get("chat") or {}).get("id")
                    if chat and chat > 0:
                        self.users.add(chat)
            self.updates.append(upd)
            self.cv.notify_all()
            return upd["update_id"]

    def push_raw(self, upd, subst):
        """An update whose JSON text has placeholders replaced with raw text."""
        upd = dict(upd)
        upd["_subst"] = dict(subst)
        return self.push(upd)

    @staticmethod
    def update_text(u):
        t = json.dumps({k: v for k, v in u.items() if k != "_subst"}, ensure_ascii=False)
        for k, v in u.get("_subst", {}).items():
            t = t.replace(k, v)
        return t

    def shorthand(self, p):
        """Builds a realistic update from {"chat_id", "text" | ...}."""
        chat = int(p["chat_id"])
        frm = p.get("from") or {"id": chat if chat > 0 else int(p.get("user_id", 5000001)),
                                "is_bot": bool(p.get("is_bot", False)),
                                "first_name": p.get("first_name", "Иван"),
                                "language_code": "ru"}
        if "last_name" in p:
            frm["last_name"] = p["last_name"]
        if "username" in p:
            frm["username"] = p["username"]
        if "callback_data" in p:
            mid = int(p.get("message_id", self.msg_ids.get(chat, 1)))
            msg = {"message_id": mid, "date": int(time.time()), "chat": self.chat_obj(chat),
                   "from": self.bot_user(), "text": p.get("message_text", "…")}
            if "markup" in p:
                msg["reply_markup"] = p["markup"]
            else:
                last = next((s for s in reversed(self.sent) if s["chat_id"] == chat and s.get("reply_markup")), None)
                if last:
                    msg["reply_markup"] = last["reply_markup"]
            return {"callback_query": {"id": str(random.randint(10**17, 10**18)), "from": frm,
                                       "message": msg, "chat_instance": "-1234567890",
                                       "data": p["callback_data"]}}
        if "member_status" in p:
            return {"my_chat_member": {"chat": self.chat_obj(chat), "from": frm, "date": int(time.time()),
                                       "old_chat_member": {"user": self.bot_user(), "status": "member"},
                                       "new_chat_member": {"user": self.bot_user(), "status": p["member_status"]}}}
        msg = {"message_id": self.next_msg_id(chat), "from": frm, "chat": self.chat_obj(chat),
               "date": int(time.time())}
        if chat > 0:
            msg["chat"].update({k: frm[k] for k in ("first_name", "last_name", "username") if k in frm})
        if "text" in p:
            msg["text"] = p["text"]
            if p["text"].startswith("/"):
                cmd = p["text"].split(" ")[0]
                msg["entities"] = [{"offset": 0, "length": u16len(cmd), "type": "bot_command"}]
        if "photo" in p:
            size = int(p["photo"].get("size", 50000))
            sizes = []
            for w, frac in ((90, 0.02), (320, 0.15), (800, 0.5), (1280, 1.0)):
                n = max(100, int(size * frac))
                data = (b"\xff\xd8\xff\xe0" + os.urandom(16)) * (n // 20 + 1)
                data = data[:n]
                fid = self.add_file(data)
                sizes.append({"file_id": fid, "file_unique_id": self.files[fid]["unique"],
                              "file_size": n, "width": w, "height": w * 3 // 4})
            msg["photo"] = sizes
            if "caption" in p:
                msg["caption"] = p["caption"]
            if "media_group_id" in p:
                msg["media_group_id"] = p["media_group_id"]
        if "document" in p:
            d = p["document"]
            data = os.urandom(int(d.get("size", 1000)))
            fid = self.add_file(data, d.get("ext", "jpg"), "documents")
            msg["document"] = {"file_id": fid, "file_unique_id": self.files[fid]["unique"],
                               "file_name": d.get("name", "photo.jpg"),
                               "mime_type": d.get("mime", "image/jpeg"), "file_size": len(data)}
        if "contact" in p:
            c = {"phone_number": p["contact"], "first_name": frm.get("first_name", "Иван")}
            if p.get("own_contact", True):
                c["user_id"] = frm["id"]
            msg["contact"] = c
        if "reply_to" in p:
            msg["reply_to_message"] = {"message_id": int(p["reply_to"]), "date": int(time.time()),
                                       "chat": self.chat_obj(chat), "from": self.bot_user(), "text": "…"}
        if "thread_id" in p:
            tid = int(p["thread_id"])
            msg["message_thread_id"] = tid
            msg["is_topic_message"] = True
            top = next((x for x in self.topics if x["chat_id"] == chat and x["message_thread_id"] == tid), {})
            rt = msg.setdefault("reply_to_message", {
                "message_id": tid, "date": int(time.time()), "chat": self.chat_obj(chat),
                "from": self.bot_user(),
                "forum_topic_created": {"name": top.get("name", "?"), "icon_color": 7322096}})
            rt["message_thread_id"] = tid
            rt["is_topic_message"] = True
        key = "edited_message" if p.get("edited") else "message"
        if p.get("edited"):
            msg["edit_date"] = int(time.time())
            msg["message_id"] = int(p.get("message_id", msg["message_id"]))
        return {key: msg}

    def record_send(self, method, chat, now):
        self.sends.append((now, chat, method))

    def injected(self, method, chat):
        for inj in self.injections:
            if inj.get("method", "").lower() not in ("", method):
                continue
            if "chat_id" in inj and int(inj["chat_id"]) != chat:
                continue
            if inj.get("count", 1) <= 0:
                continue
            if inj.get("after", 0) > 0:
                inj["after"] -= 1
                continue
            inj["count"] = inj.get("count", 1) - 1
            return inj
        return None

    # ---- rates ----
    def violations(self):
        out = []
        # Arrival times at this (threaded, Python) server lag the bot's send
        # times by up to a few hundred ms on a loaded machine.
        slack = 0.25

        def check(times, rate, burst, what):
            j = 0
            for i in range(len(times)):
                # every window [times[j], times[i]]
                while times[i] - times[j] > 10.0:
                    j += 1
                for k in range(j, i + 1):
                    n = i - k + 1
                    span = times[i] - times[k]
                    if n > burst + rate * (span + slack):
                        out.append("%s: %d sends in %.3f s (limit %.1f/s, burst %d)" % (what, n, span, rate, burst))
                        return

        sends = list(self.sends)
        if self.rate_global > 0:
            check([s[0] for s in sends], self.rate_global, int(max(1, self.rate_global)), "bot")
        per = {}
        for t, c, m in sends:
            per.setdefault(c, []).append(t)
        for c, ts in per.items():
            if c in self.groups or (isinstance(c, int) and c < 0):
                if self.rate_group > 0:
                    check(ts, self.rate_group, 1, "group %s" % c)
            elif self.rate_chat > 0:
                check(ts, self.rate_chat, max(self.burst_chat, int(max(1, self.rate_chat))), "chat %s" % c)
        for t429, ra, chat in self.four29:
            for t, c, m in sends:
                if t429 + 0.5 < t < t429 + ra - 0.05 and (chat is None or chat == c):
                    out.append("send to %s %.2f s after a 429 with retry_after %d" % (c, t - t429, ra))
                    break
        return out

    # ---- methods ----
    def call(self, method, p, handler=None):
        self.calls[method] = self.calls.get(method, 0) + 1
        fn = getattr(self, "m_" + method, None)
        if fn is None:
            raise ApiError(404, "Not Found")
        return fn(p, handler)

    def chat_arg(self, p, name="chat_id"):
        v = p.get(name)
        if v is None or v == "":
            raise bad("chat_id is empty")
        try:
            return int(v)
        except (TypeError, ValueError):
            raise bad("chat not found")

    def check_chat(self, chat, method):
        if chat in self.migrated:
            raise bad("group chat was upgraded to a supergroup chat",
                      {"migrate_to_chat_id": self.migrated[chat]})
        if chat > 0 and chat not in self.users:
            raise bad("chat not found")
        if chat < 0 and chat not in self.groups:
            raise bad("chat not found")
        if chat in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")

    def before_send(self, method, p, h=None):
        chat = self.chat_arg(p)
        now = h.t_arrival if h is not None else time.monotonic()
        self.record_send(method, chat, now)
        inj = self.injected(method, chat)
        if inj:
            if inj.get("delay_ms"):
                self.cv.release()
                try:
                    time.sleep(inj["delay_ms"] / 1000.0)
                finally:
                    self.cv.acquire()
            st = int(inj.get("status", 0))
            if st == 429:
                ra = int(inj.get("retry_after", 1))
                self.four29.append((now, ra, None if inj.get("global", True) else chat))
                raise ApiError(429, "Too Many Requests: retry after %d" % ra, {"retry_after": ra})
            if st:
                raise ApiError(st, inj.get("description", "Internal Server Error"))
            if inj.get("truncate") is not None and h is not None:
                if not inj.get("processed"):
                    raise Truncated(int(inj["truncate"]), {"ok": True, "result": {
                        "message_id": 0, "chat": self.chat_obj(chat), "date": int(time.time())}})
                h.truncate = int(inj["truncate"])
        if now < self.storm_until:
            ra = max(1, int(math.ceil(self.storm_until - now)))
            self.four29.append((now, ra, None))
            raise ApiError(429, "Too Many Requests: retry after %d" % ra, {"retry_after": ra})
        self.check_chat(chat, method)
        return chat

    def check_thread(self, chat, p):
        """message_thread_id of a send: a live topic of that forum."""
        v = p.get("message_thread_id")
        if v in (None, ""):
            return None
        tid = int(v)
        if not self.groups.get(chat, {}).get("is_forum"):
            return tid   # outside forums Telegram ignores it (reply threads)
        t = next((x for x in self.topics if x["chat_id"] == chat and x["message_thread_id"] == tid), None)
        if t is None or t.get("deleted"):
            raise bad("message thread not found")
        return tid

    def check_markup(self, p):
        mk = p.get("reply_markup")
        if mk is None:
            return None
        if isinstance(mk, str):
            try:
                mk = json.loads(mk)
            except ValueError:
                raise bad("can't parse reply keyboard markup JSON object")
        if not isinstance(mk, dict):
            raise bad("can't parse reply keyboard markup JSON object")
        for row in mk.get("inline_keyboard", []):
            for b in row:
                if not b.get("text"):
                    raise bad("text buttons are unallowed in the inline keyboard")
                if "callback_data" in b:
                    n = len(b["callback_data"].encode("utf-8"))
                    if n < 1 or n > 64:
                        raise bad("BUTTON_DATA_INVALID")
        for row in mk.get("keyboard", []):
            for b in row:
                if isinstance(b, dict) and not b.get("text"):
                    raise bad("keyboard button text is empty")
        return mk

    def message(self, chat, extra):
        m = {"message_id": self.next_msg_id(chat), "from": self.bot_user(), "chat": self.chat_obj(chat),
             "date": int(time.time())}
        m.update(extra)
        return m

    def accept(self, rec):
        rec["at"] = time.time()
        self.sent.append(rec)
        if self.log:
            self.log.write(json.dumps(rec, ensure_ascii=False) + "\n")
            self.log.flush()
            os.fsync(self.log.fileno())
        self.cv.notify_all()

    def m_getme(self, p, h):
        return {"id": BOT_ID, "is_bot": True, "first_name": "Shop", "username": self.username,
                "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False}

    def m_getupdates(self, p, h):
        if self.webhook:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        if self.conflict_next:
            self.conflict_next = False
            raise ApiError(409, "Conflict: terminated by other getUpdates request; "
                                "make sure that only one bot instance is running")
        offset = int(p.get("offset", 0) or 0)
        limit = int(p.get("limit", 100) or 100)
        timeout = int(p.get("timeout", 0) or 0)
        if limit < 1 or limit > 100:
            limit = 100
        timeout = min(timeout, 50)
        au = p.get("allowed_updates")
        if isinstance(au, str):
            try:
                au = json.loads(au)
            except ValueError:
                au = None
        if isinstance(au, list):
            self.allowed = au or None
        self.polls += 1
        self.last_offset = offset
        if offset > 0:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        elif offset < 0:
            self.updates = self.updates[offset:]
        self.poll_gen += 1
        gen = self.poll_gen
        self.cv.notify_all()
        deadline = time.monotonic() + timeout
        while True:
            if gen != self.poll_gen:
                raise ApiError(409, "Conflict: terminated by other getUpdates request; "
                                    "make sure that only one bot instance is running")
            if self.webhook:
                raise ApiError(409, "Conflict: terminated by setWebhook request")
            out = [u for u in self.updates if self.allowed is None or
                   any(k in u for k in self.allowed)][:limit]
            if out or self.closed:
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            self.cv.wait(left)

    def m_setwebhook(self, p, h):
        url = p.get("url", "")
        if url == "":
            self.webhook = None
            return True
        if not (url.startswith("https://") or url.startswith("http://127.0.0.1")):
            raise bad("bad webhook: HTTPS url must be provided for webhook")
        sec = p.get("secret_token")
        if sec is not None:
            if len(sec) > 256:
                raise bad("secret token is too long")
            if not all(c.isalnum() and c.isascii() or c in "_-" for c in sec) or not sec:
                raise bad("secret token contains unallowed characters")
        au = p.get("allowed_updates")
        if isinstance(au, str):
            au = json.loads(au)
        if isinstance(au, list):
            self.allowed = au or None
        self.webhook = {"url": url, "secret": sec}
        self.poll_gen += 1
        self.cv.notify_all()
        if not self.wh_thread:
            self.wh_thread = threading.Thread(target=self.deliver_loop, daemon=True)
            self.wh_thread.start()
        return True

    def m_deletewebhook(self, p, h):
        self.webhook = None
        if str(p.get("drop_pending_updates", "")).lower() in ("true", "1"):
            self.updates = []
        return True

    def m_getwebhookinfo(self, p, h):
        return {"url": self.webhook["url"] if self.webhook else "", "has_custom_certificate": False,
                "pending_update_count": len(self.updates), "max_connections": 40}

    def m_sendmessage(self, p, h):
        chat = self.before_send("sendmessage", p, h)
        text = p.get("text")
        if text is None or text.strip() == "":
            raise bad("message text is empty")
        if u16len(text) > 4096:
            raise bad("message is too long")
        mk = self.check_markup(p)
        tid = self.check_thread(chat, p)
        m = self.message(chat, {"text": text})
        if tid:
            m.update({"message_thread_id": tid, "is_topic_message": True})
        rec = {"method": "sendMessage", "chat_id": chat, "text": text, "message_id": m["message_id"]}
        if mk:
            rec["reply_markup"] = mk
            if "inline_keyboard" in mk:
                m["reply_markup"] = {"inline_keyboard": mk["inline_keyboard"]}
        for k in ("message_thread_id", "reply_parameters", "reply_to_message_id"):
            if k in p:
                rec[k] = p[k]
        self.accept(rec)
        return m

    def media(self, method, field, p, h):
        chat = self.before_send(method.lower(), p, h)
        ref = p.get(field)
        upload = h.uploads.get(field) if h else None
        cap = p.get("caption", "")
        if u16len(cap) > 1024:
            raise bad("message caption is too long")
        if upload is not None:
            fid = self.add_file(upload["data"])
            size = len(upload["data"])
            how = "upload"
        elif isinstance(ref, str) and ref.startswith("attach://") and h and ref[9:] in h.uploads:
            fid = self.add_file(h.uploads[ref[9:]]["data"])
            size = len(h.uploads[ref[9:]]["data"])
            how = "upload"
        elif isinstance(ref, str) and (ref.startswith("http://") or ref.startswith("https://")):
            fid, size, how = self.add_file(b"url"), 3, "url"
        elif isinstance(ref, str) and ref in self.files:
            fid, size, how = ref, len(self.files[ref]["bytes"]), "file_id"
        else:
            raise bad("wrong file identifier/HTTP URL specified")
        mk = self.check_markup(p)
        tid = self.check_thread(chat, p)
        extra = {"caption": cap} if cap else {}
        if tid:
            extra.update({"message_thread_id": tid, "is_topic_message": True})
        if field == "photo":
            extra["photo"] = [{"file_id": fid, "file_unique_id": self.files[fid]["unique"],
                               "file_size": size, "width": 800, "height": 600}]
        else:
            extra["document"] = {"file_id": fid, "file_unique_id": self.files[fid]["unique"], "file_size": size}
        m = self.message(chat, extra)
        rec = {"method": method, "chat_id": chat, "caption": cap, "how": how, "file_id": fid,
               "size": size, "message_id": m["message_id"]}
        for k in ("message_thread_id", "reply_parameters", "reply_to_message_id"):
            if k in p:
                v = p[k]
                if isinstance(v, str) and k == "reply_parameters":
                    v = json.loads(v)
                if isinstance(v, str) and k == "message_thread_id":
                    v = int(v)
                rec[k] = v
        if how == "upload":
            rec["filename"] = (upload or h.uploads.get(ref[9:] if isinstance(ref, str) else "", {})).get("filename")
        if mk:
            rec["reply_markup"] = mk
        self.accept(rec)
        return m

    def m_sendphoto(self, p, h):
        return self.media("sendPhoto", "photo", p, h)

    def m_senddocument(self, p, h):
        return self.media("sendDocument", "document", p, h)

    def m_sendmediagroup(self, p, h):
        chat = self.before_send("sendmediagroup", p, h)
        items = p.get("media")
        if isinstance(items, str):
            items = json.loads(items)
        if not isinstance(items, list) or not 2 <= len(items) <= 10:
            raise bad("wrong number of messages in the media group")
        out = []
        for it in items:
            ref = it.get("media", "")
            if ref.startswith("attach://") and h and ref[9:] in h.uploads:
                fid = self.add_file(h.uploads[ref[9:]]["data"])
            elif ref in self.files:
                fid = ref
            else:
                raise bad("wrong file identifier/HTTP URL specified")
            out.append(self.message(chat, {"photo": [{"file_id": fid, "width": 800, "height": 600}]}))
        self.accept({"method": "sendMediaGroup", "chat_id": chat, "count": len(out)})
        return out

    def m_copymessage(self, p, h):
        chat = self.before_send("copymessage", p, h)
        m = self.message(chat, {})
        self.accept({"method": "copyMessage", "chat_id": chat, "from_chat_id": p.get("from_chat_id"),
                     "source_message_id": p.get("message_id")})
        return {"message_id": m["message_id"]}

    def m_forwardmessage(self, p, h):
        chat = self.before_send("forwardmessage", p, h)
        m = self.message(chat, {})
        self.accept({"method": "forwardMessage", "chat_id": chat, "from_chat_id": p.get("from_chat_id"),
                     "source_message_id": p.get("message_id")})
        return m

    def m_sendchataction(self, p, h):
        chat = self.chat_arg(p)
        self.check_chat(chat, "sendchataction")
        self.actions.append({"chat_id": chat, "action": p.get("action"), "at": time.time()})
        return True

    def m_getfile(self, p, h):
        fid = p.get("file_id", "")
        f = self.files.get(fid)
        if not f:
            raise bad("invalid file_id")
        if len(f["bytes"]) > DOWNLOAD_MAX:
            raise bad("file is too big")
        return {"file_id": fid, "file_unique_id": f["unique"], "file_size": len(f["bytes"]),
                "file_path": f["path"]}

    def m_answercallbackquery(self, p, h):
        if not p.get("callback_query_id"):
            raise bad("query is too old and response timeout expired or query ID is invalid")
        self.callbacks_answered.append(p["callback_query_id"])
        return True

    def m_createforumtopic(self, p, h):
        chat = self.chat_arg(p)
        self.check_chat(chat, "createforumtopic")
        g = self.groups.get(chat, {})
        if not g.get("is_forum"):
            raise bad("the chat is not a forum")
        if g.get("can_manage_topics") is False:
            raise bad("not enough rights to create a topic")
        name = p.get("name") or ""
        if not 1 <= len(name) <= 128:
            raise bad("TOPIC_TITLE_EMPTY" if not name else "TOPIC_TITLE_TOO_LONG")
        # The topic's id is the message_id of its creation service message.
        tid = self.next_msg_id(chat)
        self.topics.append({"chat_id": chat, "name": name, "message_thread_id": tid})
        return {"message_thread_id": tid, "name": name, "icon_color": 7322096}

    # ---- webhook delivery ----
    def deliver_loop(self):
        while not self.closed:
            with self.cv:
                while not self.closed and not (self.webhook and self.updates):
                    self.cv.wait(0.5)
                if self.closed:
                    return
                upd, wh = self.updates[0], dict(self.webhook)
            body = self.update_text(upd).encode("utf-8", "surrogatepass")
            req = urllib.request.Request(wh["url"], data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            if wh.get("secret"):
                req.add_header("X-Telegram-Bot-Api-Secret-Token", wh["secret"])
            status = 0
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    status = r.status
            except urllib.error.HTTPError as e:
                status = e.code
            except Exception:
                status = 0
            with self.cv:
                self.webhook_deliveries.append({"update_id": upd["update_id"], "status": status})
                if 200 <= status < 300:
                    self.updates = [u for u in self.updates if u["update_id"] != upd["update_id"]]
                else:
                    self.webhook_errors += 1
            if not (200 <= status < 300):
                time.sleep(0.3)

    def state(self):
        return {"pending": [u["update_id"] for u in self.updates], "polls": self.polls,
                "last_offset": self.last_offset, "webhook": self.webhook,
                "webhook_deliveries": self.webhook_deliveries[-50:],
                "violations": self.violations(), "calls": self.calls,
                "callbacks_answered": len(self.callbacks_answered), "actions": len(self.actions),
                "topics": self.topics, "sent": len(self.sent), "four29": len(self.four29),
                "next_update_id": self.next_update_id}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake = None

    def log_message(self, *a):
        pass

    def setup(self):
        super().setup()
        # When the request reached us: a new connection's first request was
        # sent right after connect, so the accept time (stamped in the
        # listening thread) is its send time, however late its thread runs.
        self.first_at = self.server.accepted.pop(self.connection.fileno(), None)
        # Later requests on a kept-alive connection are stamped by the
        # kernel when their first bytes arrive (SO_TIMESTAMPNS): the time
        # this thread gets to parse them lags by as much as the machine is
        # loaded, and the rate and retry_after checks read these stamps.
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            pass

    def kernel_stamp(self):
        """Monotonic time the next request's first bytes arrived, or None."""
        try:
            data, anc, _, _ = self.connection.recvmsg(1, socket.CMSG_SPACE(16), socket.MSG_PEEK)
        except (OSError, ValueError):
            return None
        for level, typ, cdata in anc:
            if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS and len(cdata) >= 16:
                sec, nsec = struct.unpack("qq", cdata[:16])
                if sec <= 0:
                    return None
                return time.monotonic() - (time.time() - (sec + nsec / 1e9))
        return None

    def handle_one_request(self):
        at = self.kernel_stamp()
        if self.first_at is None:
            self.first_at = at
        super().handle_one_request()

    def reply(self, status, obj, ctype="application/json"):
        body = obj if isinstance(obj, bytes) else json.dumps(obj, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass   # the client gave up (a cancelled long poll): nothing to tell

    def params(self):
        self.uploads = {}
        p = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        ct = self.headers.get("Content-Type", "")
        if not body:
            return p
        if ct.startswith("application/json"):
            j = json.loads(body.decode("utf-8"))
            if not isinstance(j, dict):
                raise bad("parameters must be a JSON object")
            p.update(j)
        elif ct.startswith("application/x-www-form-urlencoded"):
            p.update(dict(urllib.parse.parse_qsl(body.decode("utf-8"))))
        elif ct.startswith("multipart/form-data"):
            b = None
            for part in ct.split(";"):
                part = part.strip()
                if part.startswith("boundary="):
                    b = part[9:].strip('"')
            if not b:
                raise bad("multipart without boundary")
            for chunk in body.split(b"--" + b.encode())[1:]:
                if chunk.startswith(b"--"):
                    break
                head, _, data = chunk.partition(b"\r\n\r\n")
                data = data[:-2] if data.endswith(b"\r\n") else data
                disp = {}
                for line in head.decode("utf-8", "replace").split("\r\n"):
                    if line.lower().startswith("content-disposition:"):
                        for kv in line.split(";")[1:]:
                            k, _, v = kv.strip().partition("=")
                            disp[k] = v.strip('"')
                name = disp.get("name")
                if not name:
                    continue
                if "filename" in disp:
                    self.uploads[name] = {"filename": disp["filename"], "data": data}
                else:
                    p[name] = data.decode("utf-8")
        return p

    def control(self, path):
        f = self.fake
        n = int(self.headers.get("Content-Length") or 0)
        p = json.loads(self.rfile.read(n) or b"{}") if n else {}
        with f.cv:
            if path == "/_/push":
                upd = p if any(k in p for k in ("message", "edited_message", "callback_query",
                                                 "my_chat_member", "channel_post")) else f.shorthand(p)
                uid = f.push(upd)
                return {"update_id": uid, "update": upd}
            if path == "/_/sent":
                return f.sent
            if path == "/_/state":
                return f.state()
            if path == "/_/users":
                for u in p.get("ids", []):
                    f.users.add(int(u))
                return True
            if path == "/_/group":
                f.groups[int(p["chat_id"])] = p
                return True
            if path == "/_/block":
                f.blocked.add(int(p["chat_id"]))
                return True
            if path == "/_/unblock":
                f.blocked.discard(int(p["chat_id"]))
                return True
            if path == "/_/migrate":
                old, new = int(p["chat_id"]), int(p["to"])
                f.migrated[old] = new
                f.groups[new] = dict(f.groups.get(old, {}), type="supergroup")
                return True
            if path == "/_/delete_topic":
                for t in f.topics:
                    if t["chat_id"] == int(p["chat_id"]) and t["message_thread_id"] == int(p["message_thread_id"]):
                        t["deleted"] = True
                return True
            if path == "/_/inject":
                f.injections.append(p)
                return True
            if path == "/_/storm":
                f.storm_until = time.monotonic() + float(p.get("seconds", 3))
                return True
            if path == "/_/conflict":
                f.conflict_next = True
                f.poll_gen += 1
                f.cv.notify_all()
                return True
            if path == "/_/actions":
                return f.actions
            if path == "/_/callbacks":
                return f.callbacks_answered
        return None

    def handle_any(self):
        self.t_arrival = self.first_at if self.first_at is not None else time.monotonic()
        self.first_at = None
        f = self.fake
        path = urllib.parse.urlsplit(self.path).path
        if path == "/_/slow":
            # a slow service for a flow's http.get (the "typing" indicator)
            time.sleep(float(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query)).get("ms", 2500)) / 1000)
            return self.reply(200, {"ok": True})
        if path.startswith("/_/"):
            r = self.control(path)
            return self.reply(200 if r is not None else 404, r if r is not None else {"error": "no such control"})
        if path.startswith("/file/bot"):
            rest = path[len("/file/bot"):]
            tok, _, fpath = rest.partition("/")
            if tok != f.token:
                return self.reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            with f.cv:
                data = next((x["bytes"] for x in f.files.values() if x["path"] == fpath), None)
            if data is None:
                return self.reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return self.reply(200, data, "application/octet-stream")
        if not path.startswith("/bot"):
            return self.reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        tok, _, method = path[4:].partition("/")
        try:
            p = self.params()
        except (ValueError, UnicodeDecodeError):
            return self.reply(400, {"ok": False, "error_code": 400,
                                    "description": "Bad Request: can't parse JSON object"})
        except ApiError as e:
            return self.reply(e.code, {"ok": False, "error_code": e.code, "description": e.desc})
        if tok != f.token:
            return self.reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        method = method.lower()
        self.truncate = None
        try:
            with f.cv:
                inj = None
                if method not in SEND_METHODS:
                    inj = f.injected(method, None) if any(
                        i.get("method", "").lower() == method for i in f.injections) else None
                if inj:
                    if inj.get("delay_ms"):
                        f.cv.wait(inj["delay_ms"] / 1000.0)
                    if int(inj.get("status", 0)):
                        params = {"retry_after": int(inj["retry_after"])} if "retry_after" in inj else None
                        raise ApiError(int(inj["status"]), inj.get("description", "Internal Server Error"), params)
                result = f.call(method, p, self)
            out = {"ok": True, "result": result}
            if method == "setwebhook":
                out["description"] = "Webhook was set" if p.get("url") else "Webhook was deleted"
            elif method == "deletewebhook":
                out["description"] = "Webhook was deleted"
            if method == "getupdates":
                # each update's own text (push_raw's may not be JSON Python writes)
                body = '{"ok":true,"result":[' + ",".join(f.update_text(u) for u in result) + "]}"
                return self.reply(200, body.encode("utf-8", "surrogatepass"))
            if self.truncate is not None:
                return self.reply(200, json.dumps(out, ensure_ascii=False).encode()[:self.truncate])
            self.reply(200, out)
        except Truncated as e:
            self.reply(200, json.dumps(e.body, ensure_ascii=False).encode()[:e.n])
        except ApiError as e:
            body = {"ok": False, "error_code": e.code, "description": e.desc}
            if e.params:
                body["parameters"] = e.params
            if e.code >= 500 and "html" in str(e.desc).lower():
                return self.reply(e.code, b"<html><body>502 Bad Gateway</body></html>", "text/html")
            self.reply(e.code, body)

    do_GET = handle_any
    do_POST = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops the SYNs of a burst of new
    # connections, which the client's TCP then retries a second later.
    request_queue_size = 512

    def __init__(self, *a):
        self.accepted = {}
        super().__init__(*a)

    def process_request(self, request, client_address):
        self.accepted[request.fileno()] = time.monotonic()
        super().process_request(request, client_address)


def serve(fake, port=0):
    h = type("H", (Handler,), {"fake": fake})
    srv = Server(("127.0.0.1", port), h)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    return srv


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", default="123456:TEST-token_abcdef")
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--rate-global", type=float, default=30.0)
    ap.add_argument("--rate-chat", type=float, default=1.0)
    ap.add_argument("--rate-group-min", type=float, default=20.0)
    a = ap.parse_args()
    fake = Fake(a.token, log=a.log, rate_global=a.rate_global, rate_chat=a.rate_chat,
                rate_group_min=a.rate_group_min)
    srv = serve(fake, a.port)
    port = srv.server_address[1]
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write("%d\n" % port)
        os.rename(a.port_file + ".tmp", a.port_file)
    print("port %d" % port, flush=True)
    parent = os.getppid()
    try:
        # Ends with the test that started it, however the test ended.
        while os.getppid() == parent:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
