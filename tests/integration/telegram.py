#!/usr/bin/env python3
"""telegram.py -- the real shopbot binary against the fake Bot API.

The fake (tests/fakes/fake_telegram.py) runs inside this process, so every
check reads its state directly: what was sent to which chat and when, the
pending updates and the confirmed offset, the webhook deliveries, the rate
and retry_after violations. Each case starts `shopbot run` on a fresh shop
(tests/integration/telegram/flows) and stops it; the whole run is bounded.
Prints "ok"/"FAIL" lines and "N passed, N failed".
"""
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

SRC = os.environ.get("RT_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHOPBOT = os.environ.get("SHOPBOT") or os.path.join(SRC, "build", "shopbot")
sys.path.insert(0, os.path.join(SRC, "tests", "fakes"))
import fake_telegram as ft  # noqa: E402
sys.path.insert(0, os.path.join(SRC, "tests", "unit"))
from checks import check, finish  # noqa: E402

TOKEN = "123456789:AAit-secret_token_value"
SECRET_PART = "AAit-secret_token_value"
TMP = tempfile.mkdtemp(prefix="shopbot-tg.")
DEADLINE = time.monotonic() + 170


def wait(cond, timeout=10.0):
    end = min(time.monotonic() + timeout, DEADLINE)
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Env:
    """One fake and one shop; start/kill/stop the bot on it."""

    def __init__(self, name, tg=None, http=False, managers=None, extra=None):
        self.fake = ft.Fake(TOKEN)
        self.srv = ft.serve(self.fake)
        self.base = "http://127.0.0.1:%d" % self.srv.server_address[1]
        self.dir = os.path.join(TMP, name)
        os.makedirs(self.dir)
        shutil.copytree(os.path.join(SRC, "tests", "integration", "telegram", "flows"),
                        os.path.join(self.dir, "flows"))
        self.port = free_port() if http else 0
        conf = {"token": TOKEN, "api_base": self.base, "poll_timeout_s": 2}
        conf.update(tg or {})
        shop = {"name": "tg-it", "persona": {"name": "Тест"}, "flows": {"start": "main"},
                "shop": {"slow_url": self.base + "/_/slow?ms=3500"},
                "limits": {"step_timeout_ms": 20000, "message_max_kb": 32},
                "http": {"listen": "127.0.0.1:%d" % self.port, "enabled": bool(http)},
                "log": {"level": os.environ.get("TG_LOG", "info")},
                "managers": managers or {"channel": "telegram", "chat_id": -4001},
                "handoff": {"release_after": "1h"},
                "channels": {"console": {"enabled": False}, "telegram": conf}}
        shop.update(extra or {})
        with open(os.path.join(self.dir, "shop.json"), "w") as f:
            json.dump(shop, f, ensure_ascii=False)
        self.proc = None
        self.logs = []

    def start(self):
        log = os.path.join(self.dir, "bot%d.log" % len(self.logs))
        self.logs.append(log)
        self.proc = subprocess.Popen([SHOPBOT, "run", self.dir], stdin=subprocess.DEVNULL,
                                     stdout=open(log + ".out", "w"), stderr=open(log, "w"))
        polls = self.fake.polls
        wait(lambda: self.fake.polls > polls or self.fake.webhook or self.proc.poll() is not None, 10)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.srv:
            self.fake.closed = True
            with self.fake.cv:
                self.fake.cv.notify_all()
            self.srv.shutdown()
            self.srv.server_close()

    def log_text(self):
        out = ""
        for l in self.logs:
            with open(l, errors="replace") as f:
                out += f.read()
        return out

    def push(self, **kw):
        with self.fake.cv:
            return self.fake.push(self.fake.shorthand(kw))

    def texts(self, chat):
        with self.fake.cv:
            return [s.get("text") or s.get("caption") for s in self.fake.sent if s["chat_id"] == chat]

    def db(self):
        c = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.dir, "data", "shop.db"), uri=True,
                            timeout=5)
        return c

    def health(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.port, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except (urllib.error.URLError, OSError):
            return 0, ""


def replied(env, chat, n):
    return lambda: len(env.texts(chat)) >= n


# ---- cases ----

def case_dialog():
    """Deep link, buttons, contact, long text, photo, edited message."""
    e = Env("dialog")
    try:
        e.start()
        e.push(chat_id=1001, text="/start ad_autumn", first_name="Иван", last_name="Петров",
               username="ivan_p")
        check("deep link: the greeting names the source", wait(replied(e, 1001, 1)) and
              e.texts(1001)[0] == "Здравствуйте! Источник: ad_autumn")
        e.push(chat_id=1001, text="кнопки")
        wait(replied(e, 1001, 2))
        with e.fake.cv:
            mk = [s for s in e.fake.sent if s["chat_id"] == 1001][1].get("reply_markup", {})
        check("buttons: a reply keyboard with both", [b["text"] for r in mk.get("keyboard", []) for b in r]
              == ["Да", "Нет"])
        e.push(chat_id=1001, text="Да")
        check("a button press is its text", wait(replied(e, 1001, 3)) and e.texts(1001)[2] == "эхо: Да")
        e.push(chat_id=1001, contact="8 912 345-67-89")
        check("a shared contact gives ev.phone", wait(replied(e, 1001, 4)) and
              e.texts(1001)[3] == "телефон +79123456789")
        e.push(chat_id=1001, text="длинно")
        wait(replied(e, 1001, 6), 15)
        time.sleep(1.2)
        t = e.texts(1001)[4:]
        whole = "\n\n".join("Абзац %d. Длинный ответ, который не влезает в одно сообщение." % i
                            for i in range(1, 121))
        check("a text over 4096 characters: %d parts, in order, whole" % len(t),
              len(t) == 2 and "\n\n".join(t) == whole and all(len(x) <= 4096 for x in t))
        e.push(chat_id=1001, photo={"size": 70000}, caption="вот")
        n = len(e.texts(1001))
        check("a photo is downloaded and given to the flow",
              wait(replied(e, 1001, n + 1)) and e.texts(1001)[n] == "фото 70000 true")
        files = os.listdir(os.path.join(e.dir, "data", "files", "telegram", "photos"))
        check("the photo is in the plugin's data folder", len(files) == 1)
        e.push(chat_id=1001, text="правка", edited=True, message_id=2)
        n = len(e.texts(1001))
        check("an edited message reaches the flow", wait(replied(e, 1001, n + 1)) and
              e.texts(1001)[n] == "эхо: правка")
        e.push(chat_id=1001, text="медленно")
        n = len(e.texts(1001))
        check("a slow step: the customer sees typing… until the answer",
              wait(replied(e, 1001, n + 1), 15) and e.texts(1001)[n] == "медленный ответ 200" and
              any(a["chat_id"] == 1001 and a["action"] == "typing" for a in e.fake.actions))
        e.push(chat_id=-100555, text="в чужой группе")
        e.push(chat_id=1002, text="я бот", is_bot=True)
        e.push(chat_id=1001, text="последнее")
        n = len(e.texts(1001))
        wait(replied(e, 1001, n + 1))
        with e.fake.cv:
            others = [s for s in e.fake.sent if s["chat_id"] in (-100555, 1002)]
        check("other groups and bots are ignored", not others)
        with e.db() as db:
            first = json.loads(db.execute("SELECT payload FROM inbox WHERE chat_id='1001' ORDER BY id"
                                          ).fetchone()[0])
        check("name and username reach the flow (c.name)", first.get("name") == "Иван Петров" and
              first.get("username") == "ivan_p" and first.get("source") == "ad_autumn")
        check("the token is in no log line", SECRET_PART not in e.log_text())
        with e.fake.cv:
            v = e.fake.violations()
        check("no rate violations (%s)" % v[:2], not v)
    finally:
        e.stop()


def case_inline():
    e = Env("inline", tg={"buttons": "inline"})
    try:
        e.start()
        e.push(chat_id=1101, text="привет")
        wait(replied(e, 1101, 1))
        e.push(chat_id=1101, text="кнопки")
        wait(replied(e, 1101, 2))
        e.push(chat_id=1101, callback_data="Нет")
        check("an inline button is a button event with its label",
              wait(replied(e, 1101, 3)) and e.texts(1101)[2] == "нажато Нет")
        check("the callback query was answered", wait(lambda: len(e.fake.callbacks_answered) == 1, 3))
    finally:
        e.stop()


def case_kill9():
    """kill -9 three times while 15 customers talk; every reply arrives,
    a duplicate only of a chat's last reply before a crash."""
    e = Env("kill9")
    users = list(range(2001, 2016))
    steps = 6
    sent_at = {u: 0 for u in users}
    e.start()
    stop = threading.Event()
    kills = 0

    def expected(k):   # the reply to the k-th message
        return "Здравствуйте!" if k == 1 else "эхо: m%d" % (k - 1)

    def driver():
        # each user sends its next message once the previous one was answered
        while not stop.is_set():
            for u in users:
                k = sent_at[u]
                if k == 0 or (k < steps and expected(k) in e.texts(u)):
                    sent_at[u] = k + 1
                    e.push(chat_id=u, text="/start" if k == 0 else "m%d" % k)
            time.sleep(0.05)

    th = threading.Thread(target=driver, daemon=True)
    th.start()
    try:
        for _ in range(3):
            time.sleep(random.uniform(1.0, 2.5))
            e.kill9()
            kills += 1
            time.sleep(0.2)
            e.start()
        done = wait(lambda: all("эхо: m%d" % (steps - 1) in e.texts(u) for u in users), 60)
        stop.set()
        th.join()
        time.sleep(1.5)
        check("kill -9 x%d: every customer got every reply" % kills, done)
        dups, bad_dups = 0, 0
        for u in users:
            t = e.texts(u)
            want = ["Здравствуйте!"] + ["эхо: m%d" % i for i in range(1, steps)]
            got = [x for i, x in enumerate(t) if i == 0 or x != t[i - 1]]
            if got != want:
                bad_dups += 1
                print("  chat %d: %s" % (u, t))
            dups += len(t) - len(got)
        check("replies in order; %d duplicates, each the chat's last before a crash, at most one per chat per crash"
              % dups, bad_dups == 0 and dups <= kills * len(users))
        with e.fake.cv:
            pending = list(e.fake.updates)
        check("offset: nothing left unconfirmed", wait(lambda: not e.fake.updates, 5) or not pending)
        with e.db() as db:
            n_in = db.execute("SELECT count(*) FROM inbox WHERE channel='telegram'").fetchone()[0]
        check("inbox holds each update once (%d)" % n_in, n_in == len(users) * steps)
    finally:
        stop.set()
        e.stop()


def case_split_crash():
    """kill -9 while a text of three Telegram messages is half sent: after
    the restart the row goes on after the parts Telegram took (the part in
    flight at the crash is the only one that may come twice), and no later
    part is lost (docs/architecture.md, the one window)."""
    e = Env("split")
    try:
        e.start()
        e.push(chat_id=1201, text="/start")
        wait(replied(e, 1201, 1))
        # The second part (right after the first: a short burst passes in
        # a chat) is held at the fake and then refused, and the bot is
        # killed meanwhile.
        with e.fake.cv:
            e.fake.injections.append({"method": "sendMessage", "status": 502, "delay_ms": 4000,
                                      "count": 1, "chat_id": 1201, "after": 1})
        e.push(chat_id=1201, text="длинно 3")
        check("a long text: its first part is sent", wait(replied(e, 1201, 2), 15))

        def tries():
            with e.fake.cv:
                return sum(1 for x in e.fake.sends if x[1] == 1201)
        held = wait(lambda: tries() >= 3, 10)
        e.kill9()
        check("... kill -9 while its second part is on its way", held and len(e.texts(1201)) == 2)
        # The buckets are the process's: a restart begins with a full one,
        # so the chat's burst (3 at 1/s) is given its time to refill.
        time.sleep(3.0)
        e.start()
        wait(replied(e, 1201, 4), 20)
        time.sleep(1.5)
        t = e.texts(1201)[1:]
        whole = "\n\n".join("Абзац %d. Длинный ответ, который не влезает в одно сообщение." % i
                             for i in range(1, 191))
        if not check("after the restart: the later parts, and the first one not again (%d messages)"
                     % len(t), len(t) == 3 and "\n\n".join(t) == whole):
            print("  parts:", [x[:30] + "…" + x[-20:] for x in t])
        with e.fake.cv:
            v = e.fake.violations()
        check("... within the chat's rate (%s)" % v[:2], not v)
    finally:
        e.stop()


def case_burst():
    """A private chat takes a short burst, then 1 message/s: a two-part
    answer goes at once instead of a second apart, and the next answers
    keep to the sustained rate; the fake's check fails a fourth message at
    once (so a bot over the limit fails this test)."""
    f = ft.Fake(TOKEN)
    f.sends = [(10.0 + i * 0.01, 77, "sendmessage") for i in range(3)]
    check("fake: three messages at once to a chat pass its check", not f.violations())
    f.sends.append((10.04, 77, "sendmessage"))
    check("fake: a fourth at once is a violation", any("chat 77" in v for v in f.violations()),
          f.violations())
    f.sends = [(10.0 + i * 0.01, 77, "sendmessage") for i in range(3)] + [(10.5, 77, "sendmessage")]
    check("fake: ... and so is a fourth within the second", bool(f.violations()))
    e = Env("burst")
    try:
        e.start()
        e.push(chat_id=1501, text="/start")
        wait(replied(e, 1501, 1))
        time.sleep(2.5)   # the chat's bucket fills up again
        e.push(chat_id=1501, text="длинно")
        wait(replied(e, 1501, 3), 15)

        def times():
            with e.fake.cv:
                return [t for t, c, m in e.fake.sends if c == 1501]
        t = times()
        check("a two-part answer: the second part right after the first (%.2f s)" %
              ((t[2] - t[1]) if len(t) >= 3 else -1), len(t) >= 3 and t[2] - t[1] < 0.7)
        e.push(chat_id=1501, text="много 4")
        wait(replied(e, 1501, 7), 15)
        time.sleep(0.5)
        t = times()
        check("... then the sustained rate: four answers over %.1f s" % ((t[-1] - t[3]) if len(t) >= 7 else -1),
              len(t) == 7 and t[-1] - t[3] >= 2.0)
        with e.fake.cv:
            v = e.fake.violations()
        check("... never over the chat's burst and rate (%s)" % v[:2], not v)
    finally:
        e.stop()


def case_prune():
    """Downloaded photos are files beside the shop's data: they go once
    older than store.keep_days, like the rows that name them."""
    e = Env("prune", extra={"store": {"keep_days": 2}})
    try:
        e.start()
        e.push(chat_id=1301, text="/start")
        wait(replied(e, 1301, 1))
        e.push(chat_id=1301, photo={"size": 3000})
        e.push(chat_id=1301, photo={"size": 4000})
        wait(replied(e, 1301, 3))
        e.proc.send_signal(signal.SIGTERM)
        e.proc.wait(10)
        d = os.path.join(e.dir, "data", "files", "telegram", "photos")
        files = sorted(os.listdir(d))
        check("two photos downloaded", len(files) == 2)
        old = time.time() - 3 * 86400
        os.utime(os.path.join(d, files[0]), (old, old))
        e.start()
        check("a photo older than store.keep_days is removed at start",
              wait(lambda: not os.path.exists(os.path.join(d, files[0])), 10))
        check("... a newer one stays", os.path.exists(os.path.join(d, files[1])))
        check("... and the log says so", wait(lambda: "telegram-photos-pruned" in e.log_text(), 5))
    finally:
        e.stop()


def case_album():
    """An album (three photos of one message, one media_group_id) reaches
    the flow as one event with its photos in order, before the chat's next
    message; one killed -9 while it waits for the rest is not lost."""
    e = Env("album", tg={"media_group_wait_ms": 2500})
    try:
        e.start()
        e.push(chat_id=1401, text="/start")
        wait(replied(e, 1401, 1))
        for i, size in enumerate((1000, 2000, 3000)):
            kw = {"caption": "мой альбом"} if i == 0 else {}
            e.push(chat_id=1401, photo={"size": size}, media_group_id="g1", **kw)
        e.push(chat_id=1401, text="после")
        wait(replied(e, 1401, 3), 15)
        time.sleep(0.5)
        if not check("an album is one event, its photos in order, before the next message",
                     e.texts(1401)[1:] == ["альбом 3: 1000 2000 3000 мой альбом", "эхо: после"]):
            print("  got:", e.texts(1401))
        for size in (4000, 5000):
            e.push(chat_id=1401, photo={"size": size}, media_group_id="g2")
        # both members downloaded and kept: Telegram was told (the offset moved)
        confirmed = wait(lambda: not e.fake.updates, 10)
        e.kill9()
        check("... an album's members confirmed while it waits for the rest", confirmed and
              len(e.texts(1401)) == 3)
        e.start()
        check("... killed -9 meanwhile: the album comes after the restart",
              wait(lambda: any(x.startswith("альбом 2: 4000 5000") for x in e.texts(1401)), 15))
        with e.db() as db:
            n = db.execute("SELECT count(*) FROM inbox WHERE chat_id='1401' AND payload LIKE '%media_group%'"
                           ).fetchone()[0]
        check("... each album once in the inbox (%d)" % n, n == 2)
    finally:
        e.stop()


def case_storm_and_limits():
    """20 customers, 3 messages each answered with 3 replies, a 429 storm
    in the middle: all delivered once, nothing before retry_after, no rate
    over Telegram's limits."""
    e = Env("storm")
    e.loglevel = "debug"
    users = list(range(3001, 3021))
    try:
        e.start()
        for u in users:
            e.push(chat_id=u, text="/start")
        wait(lambda: all(len(e.texts(u)) >= 1 for u in users), 20)
        for u in users:
            e.push(chat_id=u, text="много 3")
        # The storm begins once the replies do (not after a fixed time: a
        # loaded machine may not have sent any by then, and a storm over
        # nothing tests nothing).
        wait(lambda: any("ответ 1" in e.texts(u) for u in users), 20)
        with e.fake.cv:
            e.fake.storm_until = time.monotonic() + 3
        done = wait(lambda: all(len(e.texts(u)) >= 4 for u in users), 40)
        time.sleep(1.0)
        check("429 storm: every reply delivered", done)
        check("... none twice", all(e.texts(u) == ["Здравствуйте!", "ответ 1", "ответ 2", "ответ 3"]
                                    for u in users))
        with e.fake.cv:
            v = e.fake.violations()
            n429 = len(e.fake.four29)
        check("... the storm answered %d requests with 429" % n429, n429 >= 1)
        if not check("... nothing sent before retry_after, no rate over the limits (%s)" % v[:3], not v):
            with e.fake.cv:
                t0 = e.fake.sends[0][0]
                print("  chat 3020:", [(round(t - t0, 3), m) for t, c, m in e.fake.sends if c == 3020],
                      [round(t - t0, 3) for t, ra, c in e.fake.four29][:3])
    finally:
        e.stop()


def case_blocked_and_errors():
    e = Env("blocked")
    try:
        e.start()
        e.push(chat_id=4001, text="/start")
        e.push(chat_id=4002, text="/start")
        wait(lambda: e.texts(4001) and e.texts(4002))
        with e.fake.cv:
            e.fake.blocked.add(4002)
        e.push(chat_id=4002, text="ещё")
        e.push(chat_id=4002, member_status="kicked")
        with e.fake.cv:
            e.fake.injections.append({"method": "sendMessage", "status": 502, "count": 2,
                                      "chat_id": 4001})
        e.push(chat_id=4001, text="после 502")
        check("5xx: retried until delivered", wait(lambda: "эхо: после 502" in e.texts(4001), 15))

        def failed():
            with e.db() as db:
                return db.execute("SELECT fail_reason FROM outbox WHERE chat_id='4002' AND status='failed'"
                                  ).fetchall()
        check("403: the row failed for good as blocked", wait(lambda: failed() == [("blocked",)], 10))
        with e.db() as db:
            st = db.execute("SELECT status FROM customer_addresses WHERE channel='telegram' AND address='4002'"
                            ).fetchall()
        print("  address rows for 4002: %s" % st)
    finally:
        e.stop()


def case_webhook():
    e = Env("webhook", tg={"webhook_url": "http://127.0.0.1:%d/tg/hook", "webhook_secret": "it_secret_123"},
            http=True)
    # the URL needs the port the shop listens on
    with open(os.path.join(e.dir, "shop.json")) as f:
        shop = json.load(f)
    shop["channels"]["telegram"]["webhook_url"] = "http://127.0.0.1:%d/tg/hook" % e.port
    with open(os.path.join(e.dir, "shop.json"), "w") as f:
        json.dump(shop, f)
    try:
        e.start()
        check("webhook: setWebhook with the secret", wait(lambda: e.fake.webhook is not None, 10) and
              e.fake.webhook["secret"] == "it_secret_123")
        upd = json.dumps({"update_id": 77, "message": {"message_id": 1, "date": 1, "chat": {"id": 5001, "type": "private"},
                                                       "from": {"id": 5001, "is_bot": False, "first_name": "A"},
                                                       "text": "подделка"}}).encode()
        for hdr, want in ((None, 401), ("wrong", 401)):
            r = urllib.request.Request("http://127.0.0.1:%d/tg/hook" % e.port, data=upd, method="POST",
                                       headers={"Content-Type": "application/json"})
            if hdr:
                r.add_header("X-Telegram-Bot-Api-Secret-Token", hdr)
            try:
                st = urllib.request.urlopen(r, timeout=5).status
            except urllib.error.HTTPError as x:
                st = x.code
            check("webhook with %s secret: %d" % ("a wrong" if hdr else "no", st), st == want)
        with e.db() as db:
            n = db.execute("SELECT count(*) FROM inbox").fetchone()[0]
        check("... and nothing processed", n == 0)
        with e.fake.cv:
            e.fake.users.add(5002)
        e.push(chat_id=5002, text="/start")
        check("the right secret: the update is answered 200 and replied to",
              wait(lambda: e.texts(5002) and any(d["status"] == 200 for d in e.fake.webhook_deliveries), 10))
    finally:
        e.stop()


def case_conflict_unauthorized():
    e = Env("conflict", http=True)
    try:
        with e.fake.cv:
            e.fake.webhook = {"url": "https://elsewhere.example/hook", "secret": None}
        e.start()

        def h409():
            st, body = e.health()
            return st == 503 and "deleteWebhook" in body
        if not check("409 at start: /healthz says to call deleteWebhook", wait(h409, 10)):
            print("  healthz: %s %s\n  log: %s" % (e.health() + (e.log_text()[-600:],)))
        check("... and the log says it", "telegram-conflict" in e.log_text())
    finally:
        e.stop()
    e = Env("unauthorized", http=True, tg={"token": "987654:WRONG_token_value"})
    try:
        e.start()

        def h401():
            st, body = e.health()
            return st == 503 and "token" in body and "WRONG_token_value" not in body
        check("401 at start: /healthz names the token, without it", wait(h401, 10))
        st, body = e.health()
        check("... the bot keeps running", e.proc.poll() is None)
        check("... the token is in no log line", "WRONG_token_value" not in e.log_text())
    finally:
        e.stop()


def start_with_managers(e):
    """Starts the bot with the managers' group (-4001, as the Env's shop.json
    names it) known to the fake as a supergroup."""
    with e.fake.cv:
        e.fake.groups[-4001] = {"type": "supergroup", "title": "Менеджеры"}
    e.start()


def case_migration():
    e = Env("migrate")
    try:
        with e.fake.cv:
            e.fake.groups[-4001] = {"type": "group", "title": "Менеджеры"}
            e.fake.migrated[-4001] = -1004001
            e.fake.groups[-1004001] = {"type": "supergroup", "title": "Менеджеры"}
        e.start()
        e.push(chat_id=6001, text="/start")
        wait(replied(e, 6001, 1))
        e.push(chat_id=6001, text="менеджер")
        check("managers' group migrated: the note goes to the supergroup",
              wait(lambda: e.texts(-1004001), 10))
        with e.fake.cv:
            n400 = e.fake.calls.get("sendmessage", 0)
        e.stop_bot = None
        e.proc.send_signal(signal.SIGTERM)
        e.proc.wait(10)
        e.push(chat_id=6002, text="/start")
        e.start()
        wait(replied(e, 6002, 1))
        e.push(chat_id=6002, text="менеджер")
        wait(lambda: len(e.texts(-1004001)) >= 2, 10)
        with e.fake.cv:
            old = [s for s in e.fake.sends if s[1] == -4001]
        check("... the new id is kept: after a restart only one try went to the old id (%d)" % len(old),
              len(old) == 1 and len(e.texts(-1004001)) == 2)
        del n400
    finally:
        e.stop()


def case_managers():
    """The managers' group: a note about a customer, a manager's reply
    reaching the customer and taking the chat, the customer's next message
    relayed as a reply to the card, /bot giving the chat back; a shared
    contact links the address, a block marks it."""
    e = Env("managers")
    try:
        start_with_managers(e)
        e.push(chat_id=7001, text="/start", first_name="Пётр")
        wait(replied(e, 7001, 1))
        e.push(chat_id=7001, text="менеджер", first_name="Пётр")
        check("hand-off: a note in the managers' group", wait(lambda: e.texts(-4001), 10) and
              "Пётр" in e.texts(-4001)[0])
        with e.fake.cv:
            card = [x for x in e.fake.sent if x["chat_id"] == -4001][0]["message_id"]
        card_known(e, card)
        e.push(chat_id=-4001, user_id=90001, first_name="Ольга", text="не ответ на карточку")
        e.push(chat_id=-4001, user_id=90001, first_name="Ольга", text="Здравствуйте, это Ольга",
               reply_to=card)
        check("a manager's reply to the card reaches the customer",
              wait(lambda: "Здравствуйте, это Ольга" in e.texts(7001), 10))
        check("... the group sees who took it", wait(lambda: any("взял" in (x or "") and "Ольга" in x
                                                                for x in e.texts(-4001)), 5))
        check("... a message that answers no card reaches nobody",
              "не ответ на карточку" not in e.texts(7001))
        e.push(chat_id=7001, text="А сколько стоит?", first_name="Пётр")

        def relayed():
            with e.fake.cv:
                return [x for x in e.fake.sent if x["chat_id"] == -4001 and "сколько стоит" in x.get("text", "")]
        check("the customer's next message is relayed to the group", wait(relayed, 10))
        r = relayed()
        check("... as a reply to the card", r and (r[0].get("reply_parameters") or {}).get("message_id") == card)
        check("... and the bot stays silent", not any("эхо" in (t or "") for t in e.texts(7001)))
        e.push(chat_id=-4001, user_id=90001, first_name="Ольга", text="/bot", reply_to=card)
        time.sleep(1.0)
        n = len(e.texts(7001))
        e.push(chat_id=7001, text="снова бот", first_name="Пётр")
        check("/bot gives the chat back: the bot answers again",
              wait(lambda: len(e.texts(7001)) > n and e.texts(7001)[-1].startswith("Здравствуйте"), 10))
        e.push(chat_id=7002, text="/start")
        wait(replied(e, 7002, 1))
        e.push(chat_id=7002, contact="+7 912 000-11-22")
        wait(replied(e, 7002, 2))

        def addr():
            with e.db() as db:
                return db.execute("SELECT phone, status FROM customer_addresses WHERE channel='telegram' "
                                  "AND address='7002'").fetchall()
        check("a shared contact links the Telegram chat to the customer's phone",
              wait(lambda: addr() == [("+79120001122", "reachable")], 5))
        e.push(chat_id=7002, member_status="kicked")
        check("my_chat_member kicked: the address is blocked", wait(lambda: addr() == [("+79120001122", "blocked")], 5))
        check("... and no flow answered it", len(e.texts(7002)) == 2)
    finally:
        e.stop()


def push_photo(e, chat, caption, first_name="Иван"):
    """A customer's photo; returns the file_id of its largest size."""
    with e.fake.cv:
        upd = e.fake.shorthand({"chat_id": chat, "photo": {"size": 40000}, "caption": caption,
                                "first_name": first_name})
        e.fake.push(upd)
    return upd["message"]["photo"][-1]["file_id"]


def group_sent(e, chat=-4001):
    with e.fake.cv:
        return [dict(x) for x in e.fake.sent if x["chat_id"] == chat]


def card_known(e, card, chat=-4001):
    """Waits until the bot has read Telegram's answer to the card (its
    card:<chat>:<id> value is kept): only then is a reply to it known. A
    manager cannot answer a card in the millisecond between Telegram
    showing it and the bot reading the answer; a test pushing the reply at
    once would race the bot's own send."""
    def known():
        with e.db() as db:
            return db.execute("SELECT count(*) FROM plugin_values WHERE plugin='telegram' "
                              "AND key=?", ("card:%d:%d" % (chat, card),)).fetchone()[0] == 1
    return wait(known, 10)


def reply_of(x):
    return (x.get("reply_parameters") or {}).get("message_id")


def case_card_photos():
    """The hand-off card, then the customer's photos as replies to it; the
    no-pickup reminder replies to the card; a photo sent while a manager
    has the chat is relayed under the card too."""
    e = Env("card_photos")
    try:
        start_with_managers(e)
        e.push(chat_id=7101, text="/start", first_name="Анна")
        wait(replied(e, 7101, 1))
        f1 = push_photo(e, 7101, "для заявки", "Анна")
        wait(replied(e, 7101, 2))
        f2 = push_photo(e, 7101, "для заявки", "Анна")
        wait(replied(e, 7101, 3))
        e.push(chat_id=7101, text="заявка", first_name="Анна")
        check("hand-off: the card and both photos reach the group",
              wait(lambda: len([x for x in group_sent(e) if x["method"] == "sendPhoto"]) >= 2, 10))
        g = group_sent(e)
        card = g[0] if g else {}
        photos = [x for x in g if x["method"] == "sendPhoto"]
        check("... the card comes first", card.get("method") == "sendMessage" and
              "Заявка от Анна" in (card.get("text") or ""), g[:1])
        check("... then the photos, in order, by the customer's file_id",
              [x.get("file_id") for x in photos[:2]] == [f1, f2] and
              all(x.get("how") == "file_id" for x in photos[:2]), photos)
        check("... each a reply to the card",
              all(reply_of(x) == card.get("message_id") for x in photos[:2]), photos)
        check("the no-pickup reminder replies to the card",
              wait(lambda: any("Напоминание" in (x.get("text") or "") and
                               reply_of(x) == card.get("message_id") for x in group_sent(e)), 10),
              [(x.get("text"), reply_of(x)) for x in group_sent(e)])
        e.push(chat_id=-4001, user_id=90001, first_name="Ольга", text="Смотрю фото",
               reply_to=card.get("message_id"))
        check("a manager's reply takes the chat",
              wait(lambda: "Смотрю фото" in e.texts(7101), 10))
        n = len(group_sent(e))
        f3 = push_photo(e, 7101, "вот ещё", "Анна")
        check("a photo sent while the manager has the chat is relayed to the group",
              wait(lambda: any(x.get("file_id") == f3 for x in group_sent(e)[n:]), 10))
        later = [x for x in group_sent(e)[n:] if x.get("file_id") == f3]
        check("... as a reply to the card, with the customer's words",
              later and reply_of(later[0]) == card.get("message_id") and
              "вот ещё" in (later[0].get("caption") or ""), later)
    finally:
        e.stop()


def case_owner():
    """The first manager to answer owns the chat: a second manager's answer
    and /bot are refused (the group hears who has it, the customer hears
    nothing), also after a restart; the owner's /bot gives it back."""
    e = Env("owner")
    try:
        start_with_managers(e)
        e.push(chat_id=7201, text="/start", first_name="Пётр")
        wait(replied(e, 7201, 1))
        e.push(chat_id=7201, text="менеджер", first_name="Пётр")
        wait(lambda: group_sent(e), 10)
        card = group_sent(e)[0]["message_id"]
        card_known(e, card)
        e.push(chat_id=-4001, user_id=90001, first_name="Ольга", text="Это Ольга", reply_to=card)
        check("the first manager's answer reaches the customer",
              wait(lambda: "Это Ольга" in e.texts(7201), 10))
        n = len(group_sent(e))
        e.push(chat_id=-4001, user_id=90002, first_name="Игорь", text="Это Игорь", reply_to=card)

        def told(after, *words):
            return lambda: [x for x in group_sent(e)[after:]
                            if all(w in (x.get("text") or "") for w in words)]
        check("a second manager's answer: the group hears who owns the chat",
              wait(told(n, "Игорь", "ведёт", "Ольга"), 10), [x.get("text") for x in group_sent(e)[n:]])
        check("... as a reply to the card", (told(n, "Игорь", "ведёт")() or [{}])[0].get(
            "reply_parameters", {}).get("message_id") == card)
        check("... and the customer does not get it", "Это Игорь" not in e.texts(7201))
        n = len(group_sent(e))
        e.push(chat_id=-4001, user_id=90002, first_name="Игорь", text="/bot", reply_to=card)
        check("a second manager's /bot is refused too", wait(told(n, "Игорь", "Ольга"), 10))
        with e.db() as db:
            owner = db.execute("SELECT mode, owner, owner_name FROM conversations "
                               "WHERE channel='telegram' AND chat_id='7201'").fetchone()
        check("... the chat stays with its owner: %s" % (owner,), owner == ("manager", "90001", "Ольга"))
        e.proc.send_signal(signal.SIGTERM)
        e.proc.wait(10)
        e.start()
        n = len(group_sent(e))
        e.push(chat_id=-4001, user_id=90002, first_name="Игорь", text="После рестарта", reply_to=card)
        check("ownership survives a restart", wait(told(n, "Игорь", "Ольга"), 10) and
              "После рестарта" not in e.texts(7201))
        e.push(chat_id=-4001, user_id=90001, first_name="Ольга", text="Ещё вопрос?", reply_to=card)
        check("... the owner still answers", wait(lambda: "Ещё вопрос?" in e.texts(7201), 10))
        e.push(chat_id=-4001, user_id=90001, first_name="Ольга", text="/bot", reply_to=card)

        def conv():
            with e.db() as db:
                return db.execute("SELECT mode, owner FROM conversations "
                                  "WHERE channel='telegram' AND chat_id='7201'").fetchone()
        check("the owner's /bot gives the chat back and clears the owner",
              wait(lambda: conv() == ("bot", None), 10), conv())
        e.push(chat_id=-4001, user_id=90002, first_name="Игорь", text="Теперь я", reply_to=card)
        check("... then another manager may take it",
              wait(lambda: "Теперь я" in e.texts(7201), 10))
    finally:
        e.stop()


def case_stats():
    """/stats in the managers' group: today's leads, the hand-offs waiting,
    the campaigns' outcomes, in the notes' words."""
    e = Env("stats")
    try:
        start_with_managers(e)
        e.push(chat_id=7301, text="/start")
        wait(replied(e, 7301, 1))
        e.push(chat_id=7301, text="рассылка")
        wait(replied(e, 7301, 2))
        e.push(chat_id=7301, text="заявка")
        wait(replied(e, 7301, 3))
        e.push(chat_id=7302, text="/start")
        wait(replied(e, 7302, 1))
        e.push(chat_id=7302, text="заявка")
        wait(replied(e, 7302, 2))
        card_known(e, group_sent(e)[0]["message_id"])
        e.push(chat_id=-4001, user_id=90001, first_name="Ольга", text="Беру", reply_to=group_sent(e)[0]["message_id"])
        wait(lambda: "Беру" in e.texts(7301), 10)
        n = len(group_sent(e))
        e.push(chat_id=-4001, user_id=90001, first_name="Ольга", text="/stats@shop_bot")

        def answer():
            return [x.get("text") for x in group_sent(e)[n:] if "Сегодня" in (x.get("text") or "")]
        check("/stats answers in the group", wait(answer, 10), [x.get("text") for x in group_sent(e)[n:]])
        a = (answer() or [""])[0]
        check("... today's leads: 2", "заявок — 2" in a, a)
        check("... hand-offs waiting: 1 (the other one is taken)", "ждут менеджера — 1 " in a, a)
        check("... the campaign's outcomes", "«retention»: написали 1" in a and "нужны запчасти 1" in a, a)
        check("... and no customer heard of it", not any("Сегодня" in (t or "") for t in
                                                         e.texts(7301) + e.texts(7302)))
    finally:
        e.stop()


def case_topics():
    """managers.topics in a forum supergroup: one topic per handed-off
    customer, named in the persona's words, made on the first hand-off and
    reused; a manager's message in the topic (a reply or not) reaches the
    customer and takes the chat, the customer's next message comes back
    into the topic, /bot there gives the chat back; a deleted topic is made
    again and the note sent there; a group that is no forum gets cards as
    without topics, with a log line saying why."""
    man = {"channel": "telegram", "chat_id": -4001, "topics": True}
    e = Env("topics", managers=man)

    def topics():
        with e.fake.cv:
            return [dict(x) for x in e.fake.topics]

    def in_topic(tid):
        return [x for x in group_sent(e) if x.get("message_thread_id") == tid]
    try:
        with e.fake.cv:
            e.fake.groups[-4001] = {"type": "supergroup", "title": "Менеджеры", "is_forum": True}
        e.start()
        e.push(chat_id=7401, text="/start", first_name="Пётр")
        e.push(chat_id=7402, text="/start", first_name="Анна")
        wait(lambda: e.texts(7401) and e.texts(7402))
        e.push(chat_id=7401, contact="+7 912 000-44-01", first_name="Пётр")
        wait(replied(e, 7401, 2))
        e.push(chat_id=7401, text="менеджер", first_name="Пётр")
        check("first hand-off: a topic is made for the customer",
              wait(lambda: len(topics()) == 1 and in_topic(topics()[0]["message_thread_id"]), 15),
              topics())
        t1 = topics()[0]
        check("... named in the persona's words: %s" % t1.get("name"),
              t1.get("name") == "Пётр, +79120004401")
        card1 = in_topic(t1["message_thread_id"])[0]
        check("... the card is in it", "Заявка от Пётр" in (card1.get("text") or ""), card1)
        e.push(chat_id=7402, text="менеджер", first_name="Анна")
        check("a second customer: a second topic",
              wait(lambda: len(topics()) == 2 and in_topic(topics()[1]["message_thread_id"]), 15),
              topics())
        t2 = topics()[1] if len(topics()) > 1 else {}
        check("... named after her", t2.get("name") == "Анна" and
              t2.get("message_thread_id") != t1["message_thread_id"], t2)
        tid1 = t1["message_thread_id"]
        n = len(in_topic(tid1))
        # a manager writes in the topic, not as a reply to the card
        e.push(chat_id=-4001, user_id=90001, first_name="Ольга", text="Пётр, это Ольга",
               thread_id=tid1)
        check("a manager's message in the topic reaches the customer",
              wait(lambda: "Пётр, это Ольга" in e.texts(7401), 10), e.texts(7401))
        check("... the topic hears who took the chat",
              wait(lambda: any("Ольга" in (x.get("text") or "") for x in in_topic(tid1)[n:]), 10),
              [x.get("text") for x in group_sent(e)])

        def conv(chat):
            with e.db() as db:
                return db.execute("SELECT mode, owner FROM conversations WHERE channel='telegram' "
                                  "AND chat_id=?", (str(chat),)).fetchone()
        check("... and the chat is the manager's", conv(7401) == ("manager", "90001"), conv(7401))
        e.push(chat_id=7401, text="А сколько стоит?", first_name="Пётр")
        check("the customer's next message comes into the topic",
              wait(lambda: any("сколько стоит" in (x.get("text") or "") for x in in_topic(tid1)), 10),
              [(x.get("text"), x.get("message_thread_id")) for x in group_sent(e)])
        check("... not into the other customer's",
              not any("сколько стоит" in (x.get("text") or "")
                      for x in in_topic(t2.get("message_thread_id"))))
        e.push(chat_id=-4001, user_id=90001, first_name="Ольга", text="/bot", thread_id=tid1)
        check("/bot in the topic gives the chat back", wait(lambda: conv(7401) == ("bot", None), 10),
              conv(7401))
        n = len(e.texts(7401))
        e.push(chat_id=7401, text="привет", first_name="Пётр")
        wait(replied(e, 7401, n + 1))
        e.push(chat_id=7401, text="менеджер", first_name="Пётр")
        check("a second hand-off of the same customer reuses the topic",
              wait(lambda: sum(1 for x in in_topic(tid1) if "Заявка от Пётр" in (x.get("text") or "")) == 2,
                   15) and len(topics()) == 2, (topics(), [x.get("text") for x in in_topic(tid1)]))
        tid2 = t2.get("message_thread_id")
        e.push(chat_id=-4001, user_id=90001, first_name="Ольга", text="Анна, это Ольга", thread_id=tid2)
        check("the other topic's manager message reaches the other customer",
              wait(lambda: "Анна, это Ольга" in e.texts(7402), 10) and
              wait(lambda: any("Ольга" in (x.get("text") or "") for x in in_topic(tid2)), 10))
        with e.fake.cv:
            e.fake.topics[1]["deleted"] = True
        e.push(chat_id=7402, text="вопрос про фары", first_name="Анна")
        check("a deleted topic is made again",
              wait(lambda: len(topics()) == 3, 15), topics())
        t3 = topics()[-1]
        check("... under the same name, and the message is sent there",
              t3.get("name") == "Анна" and
              wait(lambda: any("вопрос про фары" in (x.get("text") or "")
                               for x in in_topic(t3["message_thread_id"])), 10),
              [(x.get("text"), x.get("message_thread_id")) for x in group_sent(e)])
        with e.fake.cv:
            v = e.fake.violations()
        check("... within the group's rate (%s)" % v[:2], not v)
        check("... and the log says so", "telegram-topic-gone" in e.log_text())
        e.push(chat_id=-4001, user_id=90001, first_name="Ольга", text="Фары есть",
               thread_id=t3["message_thread_id"])
        check("... a manager's message in the new topic reaches her",
              wait(lambda: "Фары есть" in e.texts(7402), 10))
        e.proc.send_signal(signal.SIGTERM)
        e.proc.wait(10)
        e.start()
        n = len(in_topic(t3["message_thread_id"]))
        e.push(chat_id=7402, text="ещё вопрос", first_name="Анна")
        check("after a restart the kept topic is used",
              wait(lambda: len(in_topic(t3["message_thread_id"])) > n, 15) and len(topics()) == 3,
              topics())
    finally:
        e.stop()
    e = Env("topics_off", managers=man)
    try:
        with e.fake.cv:
            e.fake.groups[-4001] = {"type": "supergroup", "title": "Менеджеры"}
        e.start()
        e.push(chat_id=7411, text="/start", first_name="Пётр")
        wait(replied(e, 7411, 1))
        e.push(chat_id=7411, text="менеджер", first_name="Пётр")
        check("not a forum: the card goes to the group as without topics",
              wait(lambda: any("Заявка от Пётр" in (x.get("text") or "") and "message_thread_id" not in x
                               for x in group_sent(e)), 10), group_sent(e))
        check("... with a log line saying why",
              "telegram-topics-unavailable" in e.log_text() and "not a forum" in e.log_text())
        card = group_sent(e)[0]["message_id"]
        card_known(e, card)
        e.push(chat_id=-4001, user_id=90001, first_name="Ольга", text="Беру", reply_to=card)
        check("... and a reply to the card still reaches the customer",
              wait(lambda: "Беру" in e.texts(7411), 10))
    finally:
        e.stop()


def run_tool(e, *args):
    r = subprocess.run([SHOPBOT] + list(args), capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def case_campaign():
    """A retention campaign to 1,000 imported customers whose Telegram
    chats are known, with a 429 storm in the middle: every check-in once,
    nothing before its retry_after, no rate over 30/s or 1/s a chat. Those
    without a chat are not attempted and reported unreachable; a customer
    who blocked the bot (my_chat_member kicked before, 403 during) is
    skipped by the next campaign; each contact names its channel and chat."""
    n = 1000
    # Working hours all day in a zone where it is about noon now, so the
    # check-ins are due at once whenever the test runs.
    off = 12 - time.gmtime().tm_hour
    zone = "Etc/GMT%+d" % -off if off else "Etc/GMT"
    e = Env("campaign", extra={"retention": {"rate_per_minute": 6000}, "timezone": zone,
                               "working_hours": {"days": [1, 2, 3, 4, 5, 6, 7], "from": "00:00",
                                                 "to": "23:59"}})
    chat = lambda i: 300000 + i          # noqa: E731
    phone = lambda i: "+7900%07d" % i    # noqa: E731
    kicked, refused = n + 1, n + 2        # block the bot before / during the campaign
    no_tg = list(range(n + 3, n + 8))     # known by phone only
    unseen = [n + 8, n + 9]               # an imported telegram_id that never wrote to the bot
    try:
        csv = os.path.join(e.dir, "customers.csv")
        with open(csv, "w", encoding="utf-8") as f:
            f.write("Телефон;ФИО;Дата последней покупки;Telegram\n")
            for i in range(1, n + 10):
                f.write("%s;Клиент %d;01.01.2025;%s\n" % (phone(i), i, chat(i) if i not in no_tg else ""))
        rc, out, err = run_tool(e, "import", e.dir, csv)
        check("import of %d customers" % (n + 9), rc == 0, err[-300:])
        with e.fake.cv:
            e.fake.users.update(chat(i) for i in range(1, n + 3))
            e.fake.users.update(chat(i) for i in unseen)
            e.fake.blocked.add(chat(refused))
        e.start()
        # The bot has seen these chats: each customer started the bot
        # (my_chat_member "member"; no step runs, nothing is sent).
        with e.fake.cv:
            for i in range(1, n + 3):
                if i != kicked:
                    e.fake.push(e.fake.shorthand({"chat_id": chat(i), "member_status": "member"}))
        e.push(chat_id=chat(kicked), member_status="kicked")
        check("the bot took every my_chat_member", wait(lambda: not e.fake.updates, 30))

        def status(i):
            with e.db() as db:
                r = db.execute("SELECT status, reason FROM customer_addresses WHERE channel='telegram' "
                               "AND address=?", (str(chat(i)),)).fetchone()
            return r
        check("my_chat_member kicked marks the address blocked",
              wait(lambda: (status(kicked) or ("",))[0] == "blocked", 10))
        e.proc.send_signal(signal.SIGTERM)
        e.proc.wait(10)

        rc, out, err = run_tool(e, "campaign", e.dir, "retention", "--json")
        rep = json.loads(out) if rc == 0 else {}
        check("campaign: %s scheduled, only those with a Telegram chat the bot has seen" %
              rep.get("scheduled"), rep.get("scheduled") == n + 1, err[-300:])
        un = rep.get("unreachable", {})
        check("... unreachable: %s" % un.get("reasons"),
              rep.get("skipped", {}).get("unreachable") == 8 and
              un.get("reasons") == {"no_address": 5, "blocked": 1, "not_seen": 2})
        check("... each named with its reason (an imported telegram_id never seen: not_seen)",
              sorted((c["phone"], c["reason"]) for c in un.get("customers", [])) ==
              sorted([(phone(i), "no_address") for i in no_tg] + [(phone(kicked), "blocked")] +
                     [(phone(i), "not_seen") for i in unseen]))
        with e.db() as db:
            rows = db.execute("SELECT channel, address, phone FROM campaign_contacts "
                              "WHERE campaign='retention'").fetchall()
        check("... each contact records its channel and chat",
              len(rows) == n + 1 and all(ch == "telegram" and a == str(300000 + int(p[5:]))
                                         for ch, a, p in rows))

        t0 = time.monotonic()
        e.start()

        def delivered():
            with e.fake.cv:
                return len([x for x in e.fake.sent if 300000 < x["chat_id"] <= 300000 + n])
        # the storm: in the middle of the run, 3 s of 429 for every send
        wait(lambda: delivered() >= n * 2 // 5, 60)
        with e.fake.cv:
            e.fake.storm_until = time.monotonic() + 3
        done = wait(lambda: delivered() >= n, 75)
        took = time.monotonic() - t0
        time.sleep(1.0)
        with e.fake.cv:
            per = {}
            for x in e.fake.sent:
                per.setdefault(x["chat_id"], []).append(x.get("text"))
            v = e.fake.violations()
            n429 = len(e.fake.four29)
        check("every check-in delivered (%d in %.1f s)" % (delivered(), took), done)
        check("... none twice", all(len(per.get(chat(i), [])) == 1 for i in range(1, n + 1)))
        check("... nobody without a chat, nor the blocked one, nor a chat never seen, attempted",
              not any(chat(i) in per for i in no_tg + [kicked, refused] + unseen) and
              not any(x[1] == chat(kicked) for x in e.fake.sends))
        check("... the storm answered %d sends with 429" % n429, n429 >= 1)
        if not check("... nothing before retry_after, at most 30/s and 1/s a chat (%s)" % v[:3], not v):
            pass
        check("a 403 during the campaign blocks the address",
              wait(lambda: (status(refused) or ("",))[0] == "blocked", 10))
        with e.db() as db:
            out_rows = db.execute("SELECT o.status, count(*) FROM outbox o JOIN campaign_contacts k "
                                  "ON k.conv_id = o.conv_id WHERE k.campaign='retention' "
                                  "GROUP BY o.status").fetchall()
        check("... the check-ins' outcomes: %s" % out_rows, dict(out_rows) == {"sent": n, "failed": 1})
        e.proc.send_signal(signal.SIGTERM)
        e.proc.wait(10)
        later = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 40 * 86400))
        rc, out, err = run_tool(e, "campaign", e.dir, "retention", "--json", "--dry-run", "--now", later)
        rep = json.loads(out) if rc == 0 else {}
        check("the next campaign skips both who blocked the bot: %s" %
              rep.get("unreachable", {}).get("reasons"),
              rep.get("selected") == n and
              rep.get("unreachable", {}).get("reasons") == {"no_address": 5, "blocked": 2, "not_seen": 2},
              err[-300:])
    finally:
        e.stop()

def metric(e, name):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % e.port, timeout=5) as r:
            body = r.read().decode()
    except (urllib.error.URLError, OSError):
        return None
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def case_bad_updates():
    """getUpdates answers jansson refuses whole (a lone surrogate, \\u0000, an
    integer beyond int64, an update that is no JSON) and answers over the
    4 MiB cap: the good updates are received, a bad one repaired or skipped,
    the offset moves past all; a send answered with a cut 200 is retried."""
    e = Env("bad_updates", http=True)
    try:
        e.start()

        def upd(chat, text, **extra):
            u = e.fake.shorthand({"chat_id": chat, "text": text})
            u["message"].update(extra)
            return u

        def text_of(uid):
            with e.db() as db:
                row = db.execute("SELECT payload FROM inbox WHERE ext_id=?", ("tg:%d" % uid,)).fetchone()
            return json.loads(row[0]).get("text") if row else None

        # One answer: the bot's poll is parked, and wakes once all are in.
        with e.fake.cv:
            ids = [e.fake.push(upd(6001, "первое")),
                   e.fake.push_raw(upd(6002, "@@S@@"), {'"@@S@@"': '"суррогат \\ud800!"'}),
                   e.fake.push_raw(upd(6003, "@@S@@"), {'"@@S@@"': '"нул\\u0000ь"'}),
                   e.fake.push_raw(upd(6004, "число", views="@@N@@"),
                                   {'"@@N@@"': "123456789012345678901234567890"}),
                   e.fake.push_raw(upd(6005, "@@S@@"), {'"@@S@@"': '"не JSON \\x"'}),
                   e.fake.push(upd(6006, "последнее"))]
        got = wait(lambda: all(e.texts(c) for c in (6001, 6002, 6003, 6004, 6006)), 15)
        check("a batch with bad updates: the good ones and the repaired ones are answered", got)
        check("... a lone surrogate and \\u0000 are U+FFFD in the text",
              text_of(ids[1]) == "суррогат \ufffd!" and text_of(ids[2]) == "нул\ufffdь")
        check("... an integer beyond int64 in a field the bot does not read keeps the update",
              text_of(ids[3]) == "число")
        check("... the update that is no JSON is skipped, logged with its id",
              not e.texts(6005) and text_of(ids[4]) is None and
              wait(lambda: "telegram-update-unreadable update_id=%d" % ids[4] in e.log_text(), 5))
        check("... the offset moves past the whole batch",
              wait(lambda: (e.fake.last_offset or 0) > ids[-1], 10))
        check("... counted on /metrics", metric(e, 'shopbot_telegram_updates_skipped_total{why="unreadable"}') == 1
              and metric(e, "shopbot_telegram_updates_repaired_total") == 3)

        # Over 4 MiB: three updates of 1.5 MiB (a field the bot does not
        # read), one of 5 MiB, good ones around them.
        pad = "x" * (3 << 19)
        with e.fake.cv:
            big = [e.fake.push(upd(6010, "до большого")),
                   e.fake.push(upd(6011, "большой 1", padding=pad)),
                   e.fake.push(upd(6012, "большой 2", padding=pad)),
                   e.fake.push(upd(6013, "большой 3", padding=pad)),
                   e.fake.push(upd(6014, "огромный", padding="y" * (5 << 20))),
                   e.fake.push(upd(6015, "после большого"))]
        got = wait(lambda: all(e.texts(c) for c in (6010, 6011, 6012, 6013, 6015)), 30)
        check("a batch over 4 MiB: fewer updates asked for, all received but one too big alone", got)
        check("... that one is skipped, logged with its id, the offset past it",
              not e.texts(6014) and "telegram-update-too-big update_id=%d max_bytes=4194304 id_from=answer" % big[4]
              in e.log_text() and
              wait(lambda: (e.fake.last_offset or 0) > big[-1], 10))
        st, _ = e.health()
        check("... /healthz is fine (%d)" % st, st == 200)

        # A send answered 200 with its answer cut short: not delivered.
        e.push(chat_id=6020, text="/start")
        wait(replied(e, 6020, 1))
        with e.fake.cv:
            e.fake.injections.append({"method": "sendMessage", "chat_id": 6020, "truncate": 25})
            e.fake.injections.append({"method": "sendMessage", "chat_id": 6021, "truncate": 40,
                                      "processed": True})
            e.fake.users.add(6021)
        e.push(chat_id=6020, text="обрезано")
        check("a send answered with a cut 200 is retried and delivered",
              wait(lambda: e.texts(6020).count("эхо: обрезано") == 1, 15))
        with e.fake.cv:
            tries = [s for s in e.fake.sends if s[1] == 6020]
        check("... tried twice (%d sends to the chat)" % len(tries), len(tries) == 3)
        e.push(chat_id=6021, text="/start")
        check("a cut 200 after Telegram took it: retried, a duplicate (the documented window)",
              wait(lambda: e.texts(6021).count("Здравствуйте!") == 2, 15))
    finally:
        e.stop()


CASES = [case_dialog, case_inline, case_split_crash, case_burst, case_prune, case_album, case_storm_and_limits, case_kill9, case_blocked_and_errors,
         case_webhook, case_conflict_unauthorized, case_migration, case_managers,
         case_card_photos, case_owner, case_stats]


# Run only when named, each in its own ctest: a campaign of 1,000 messages
# at Telegram's 30/s takes its ~35 s (telegram_campaign.sh); the forum
# topics, at a group's 20 messages a minute, most of a minute
# (telegram_topics.sh); the answers jansson refuses and those over 4 MiB,
# some 10 MB each (telegram_bad_updates.sh).
ALONE = [case_campaign, case_topics, case_bad_updates]


def main():
    if not os.path.exists(SHOPBOT):
        print("no shopbot binary at %s" % SHOPBOT)
        return 77
    only = sys.argv[1:]
    try:
        for c in CASES + ALONE:
            if (only and c.__name__[5:] not in only) or (not only and c in ALONE):
                continue
            if time.monotonic() > DEADLINE:
                check(c.__name__ + ": out of time", False)
                continue
            try:
                c()
            except Exception as x:  # a broken case is a failure, the others still run
                import traceback
                traceback.print_exc()
                check("%s: %r" % (c.__name__, x), False)
    finally:
        os.environ.get("TG_KEEP") or shutil.rmtree(TMP, ignore_errors=True)
    finish()


if __name__ == "__main__":
    sys.exit(main())
