#!/usr/bin/env python3
"""fake_openai.py -- an OpenAI-compatible chat-completions server for tests.

    fake_openai.py --script RULES.json [--port 0] [--port-file F] [--log F.jsonl]
                   [--api-key KEY] [--no-json-schema] [--max-seconds 300]

Follows /work/shared/protocols/openai-chat-completions.md: POST
{base}/chat/completions (any prefix ending so, e.g. /v1/chat/completions),
Bearer auth when --api-key is given (401 invalid_api_key otherwise), the
request shape checked as OpenAI does (model, messages with known roles,
content as a string or text/image_url parts, image URLs as base64 data: URIs
of a real JPEG/PNG/WEBP/GIF, max_tokens or max_completion_tokens, and
response_format: json_object needs the word "json" in the messages,
json_schema needs a name of [a-zA-Z0-9_-]{1,64} and, with strict, a root
object whose every object has additionalProperties false and every property
required). A bad request gets OpenAI's 400 error envelope; --no-json-schema
answers json_schema as llama.cpp does for an unknown type (400).

The script is a JSON array of rules tried in order; a rule matches when all
its "when" conditions hold:
  {"when": {"user": "regex over the last user message's text",
            "system": "regex over the system message",
            "schema": "photo_triage",       (response_format json_schema name; "" = none)
            "format": "json_object",         (response_format type)
            "image": true,                   (an image part in the last user message)
            "retry": true,                   (an assistant message precedes: a repair turn)
            "model": "gpt-4o-mini"},
   "content": "text" | "json": {...},       (the assistant message; json is dumped)
   "finish_reason": "stop", "refusal": "I can't",
   "usage": {"prompt_tokens": 100, "completion_tokens": 10, "cached_tokens": 20},
   "status": 429, "error": {...} | "error_file": "path.json" (an error body),
   "headers": {"Retry-After": "1"},
   "delay_ms": 500,                          (answer later; other requests go on)
   "garbage": true | "truncate": N (the first N bytes of the JSON body) |
   "hang": true (headers and half a body, then silence) | "close": true,
   "times": N}                               (use N times, then skip)
No rule: 200 with content "ok". Usage defaults to the UTF-8 bytes of the
messages' text / 4 plus 85 per image (prompt; see prompt_estimate) and the
content's bytes / 4 (completion), so token figures move with what the
client sends. Every request is one JSON line in --log:
{"path", "headers", "body", "matched": rule index, "status"}.
"""
import argparse
import base64
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROLES = {"system", "developer", "user", "assistant", "tool"}
NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def oai_error(message, typ="invalid_request_error", param=None, code=None):
    return {"error": {"message": message, "type": typ, "param": param, "code": code}}


def text_of(content):
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def prompt_estimate(req):
    """A stand-in for the tokenizer: UTF-8 bytes of the messages' text / 4
    (about a token per two Cyrillic letters), plus 85 per image as OpenAI
    bills a detail:low image, plus 4 per message."""
    n, images = 0, 0
    for m in req.get("messages", []):
        c = m.get("content")
        n += len(text_of(c).encode("utf-8")) + 16
        if isinstance(c, list):
            images += sum(1 for p in c if isinstance(p, dict) and p.get("type") == "image_url")
    return max(1, n // 4) + 85 * images


def has_image(content):
    return isinstance(content, list) and any(isinstance(p, dict) and p.get("type") == "image_url" for p in content)


def check_strict(schema, path="schema"):
    """OpenAI's strict-mode rules, the ones that bite."""
    if not isinstance(schema, dict):
        return None
    t = schema.get("type")
    types = t if isinstance(t, list) else [t]
    if "object" in types:
        if schema.get("additionalProperties") is not False:
            return "In context=(%s), 'additionalProperties' is required to be supplied and to be false." % path
        props = schema.get("properties", {})
        req = set(schema.get("required", []))
        for k in props:
            if k not in req:
                return "In context=(%s), 'required' is required to be supplied and to be an array including every key in properties. Missing '%s'." % (path, k)
        for k, v in props.items():
            e = check_strict(v, path + ", 'properties', '%s'" % k)
            if e:
                return e
    if "array" in types and "items" in schema:
        return check_strict(schema["items"], path + ", 'items'")
    for key in ("anyOf", "$defs"):
        sub = schema.get(key)
        if isinstance(sub, list):
            for i, s in enumerate(sub):
                e = check_strict(s, path)
                if e:
                    return e
        elif isinstance(sub, dict):
            for s in sub.values():
                e = check_strict(s, path)
                if e:
                    return e
    return None


def check_request(req, no_json_schema):
    """None, or (status, error body) as the real server answers."""
    if not isinstance(req, dict):
        return 400, oai_error("We could not parse the JSON body of your request.")
    if not isinstance(req.get("model"), str) or not req["model"]:
        return 400, oai_error("you must provide a model parameter", param="model")
    msgs = req.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return 400, oai_error("[] is too short - 'messages'", param="messages")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            return 400, oai_error("Invalid value for 'messages[%d].role'." % i, param="messages[%d].role" % i)
        c = m.get("content")
        if isinstance(c, list):
            for j, p in enumerate(c):
                if not isinstance(p, dict) or p.get("type") not in ("text", "image_url"):
                    return 400, oai_error("Invalid content part type.", param="messages[%d].content[%d]" % (i, j))
                if p["type"] == "text" and not isinstance(p.get("text"), str):
                    return 400, oai_error("Missing text.", param="messages[%d].content[%d].text" % (i, j))
                if p["type"] == "image_url":
                    if m["role"] != "user":
                        return 400, oai_error("Image URLs are only allowed for messages with role 'user'.")
                    url = (p.get("image_url") or {}).get("url", "")
                    e = check_image(url)
                    if e:
                        return 400, oai_error(e, param="messages[%d].content[%d].image_url" % (i, j), code="invalid_image_url")
        elif not isinstance(c, str) and not (c is None and m["role"] == "assistant"):
            return 400, oai_error("Invalid type for 'messages[%d].content'." % i, param="messages[%d].content" % i)
    for k in ("max_tokens", "max_completion_tokens"):
        if k in req and (not isinstance(req[k], int) or req[k] < 1):
            return 400, oai_error("Invalid '%s': integer below minimum value." % k, param=k)
    if "temperature" in req and not (isinstance(req["temperature"], (int, float)) and 0 <= req["temperature"] <= 2):
        return 400, oai_error("Invalid 'temperature'.", param="temperature")
    rf = req.get("response_format")
    if rf is not None:
        t = rf.get("type") if isinstance(rf, dict) else None
        if t == "json_schema" and no_json_schema:
            return 400, {"error": {"code": 400, "message": 'response_format type must be one of "text" or "json_object", but got: json_schema', "type": "invalid_request_error"}}
        if t == "json_object":
            if "json" not in json.dumps([text_of(m.get("content")) for m in msgs], ensure_ascii=False).lower():
                return 400, oai_error("'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.", param="messages")
        elif t == "json_schema":
            js = rf.get("json_schema")
            if not isinstance(js, dict) or not isinstance(js.get("name"), str) or not NAME_RE.match(js["name"]):
                return 400, oai_error("Invalid 'response_format.json_schema.name'.", param="response_format")
            sch = js.get("schema")
            if not isinstance(sch, dict) or sch.get("type") != "object":
                return 400, oai_error("Invalid schema for response_format '%s': schema must be a JSON Schema of 'type: \"object\"'." % js["name"], param="response_format")
            if js.get("strict"):
                e = check_strict(sch)
                if e:
                    return 400, oai_error("Invalid schema for response_format '%s': %s" % (js["name"], e), param="response_format")
        elif t != "text":
            return 400, oai_error("Invalid value for 'response_format.type'.", param="response_format.type")
    return None


def check_image(url):
    m = re.match(r"^data:image/(jpeg|png|webp|gif);base64,(.*)$", url, re.S)
    if not m:
        return "Invalid image URL: expected a base64 data URL of an image."
    try:
        raw = base64.b64decode(m.group(2), validate=True)
    except Exception:
        return "Invalid base64 image data."
    magic = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG", "gif": b"GIF8", "webp": b"RIFF"}[m.group(1)]
    if not raw.startswith(magic):
        return "You uploaded an unsupported image. Please make sure your image is valid."
    return None


class Fake:
    def __init__(self, args):
        with open(args.script, encoding="utf-8") as f:
            self.rules = json.load(f)
        self.used = [0] * len(self.rules)
        self.lock = threading.Lock()
        self.log = open(args.log, "a", encoding="utf-8") if args.log else None
        self.api_key = args.api_key
        self.no_json_schema = args.no_json_schema
        self.base = os.path.dirname(os.path.abspath(args.script))
        self.seq = 0

    def pick(self, req):
        msgs = req.get("messages", [])
        last_user = next((m for m in reversed(msgs) if m.get("role") == "user"), {})
        system = next((m for m in msgs if m.get("role") in ("system", "developer")), {})
        rf = req.get("response_format") or {}
        schema = (rf.get("json_schema") or {}).get("name", "") if rf.get("type") == "json_schema" else ""
        retry = any(m.get("role") == "assistant" for m in msgs)
        with self.lock:
            for i, r in enumerate(self.rules):
                w = r.get("when", {})
                if "times" in r and self.used[i] >= r["times"]:
                    continue
                if "user" in w and not re.search(w["user"], text_of(last_user.get("content")), re.I | re.S):
                    continue
                if "system" in w and not re.search(w["system"], text_of(system.get("content")), re.I | re.S):
                    continue
                if "schema" in w and w["schema"] != schema:
                    continue
                if "format" in w and w["format"] != rf.get("type", "text"):
                    continue
                if "image" in w and w["image"] != has_image(last_user.get("content")):
                    continue
                if "retry" in w and w["retry"] != retry:
                    continue
                if "model" in w and w["model"] != req.get("model"):
                    continue
                self.used[i] += 1
                return i, r
        return -1, {}

    def write_log(self, entry):
        if self.log:
            with self.lock:
                self.log.write(json.dumps(entry, ensure_ascii=False) + "\n")
                self.log.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake = None

    def log_message(self, *a):
        pass

    def send_json(self, status, body, headers=None, raw=None):
        data = raw if raw is not None else json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", "req_fake_%d" % self.fake.seq)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.endswith("/models"):
            self.send_json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
        else:
            self.send_json(404, oai_error("Invalid URL (GET %s)" % self.path))

    def do_POST(self):
        f = self.fake
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        entry = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}
        with f.lock:
            f.seq += 1
        if not self.path.endswith("/chat/completions"):
            entry["status"] = 404
            f.write_log(entry)
            return self.send_json(404, oai_error("Invalid URL (POST %s)" % self.path))
        if f.api_key is not None and self.headers.get("Authorization") != "Bearer " + f.api_key:
            entry["status"] = 401
            f.write_log(entry)
            return self.send_json(401, oai_error("Incorrect API key provided: sk-fake***0000. You can find your API key at https://platform.openai.com/account/api-keys.", code="invalid_api_key"))
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            entry["status"] = 400
            f.write_log(entry)
            return self.send_json(400, oai_error("Invalid Content-Type header, expected application/json."))
        try:
            req = json.loads(raw.decode("utf-8"))
        except Exception:
            req = None
        entry["body"] = req
        bad = check_request(req, f.no_json_schema)
        if bad:
            entry["status"] = bad[0]
            entry["error"] = bad[1]
            f.write_log(entry)
            return self.send_json(*bad)
        idx, rule = f.pick(req)
        entry["matched"] = idx
        status = rule.get("status", 200)
        entry["status"] = status
        f.write_log(entry)
        if rule.get("delay_ms"):
            time.sleep(rule["delay_ms"] / 1000.0)
        if rule.get("close"):
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if status != 200:
            body = rule.get("error")
            if "error_file" in rule:
                with open(os.path.join(f.base, rule["error_file"]), encoding="utf-8") as ef:
                    body = json.load(ef)
            return self.send_json(status, body or oai_error("error"), rule.get("headers"))
        if "json" in rule:
            content = json.dumps(rule["json"], ensure_ascii=False)
        else:
            content = rule.get("content", "ok")
        u = rule.get("usage", {})
        prompt = u.get("prompt_tokens", prompt_estimate(req))
        completion = u.get("completion_tokens", max(1, len((content or "").encode("utf-8")) // 4))
        usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                 "total_tokens": prompt + completion,
                 "prompt_tokens_details": {"cached_tokens": u.get("cached_tokens", 0), "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                               "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
        msg = {"role": "assistant", "content": None if rule.get("refusal") else content,
               "refusal": rule.get("refusal"), "annotations": []}
        body = {"id": "chatcmpl-FAKE%06d" % f.seq, "object": "chat.completion", "created": int(time.time()),
                "model": req["model"], "choices": [{"index": 0, "message": msg, "logprobs": None,
                                                     "finish_reason": rule.get("finish_reason", "stop")}],
                "usage": usage, "service_tier": "default", "system_fingerprint": "fp_fake000000"}
        data = json.dumps(body, ensure_ascii=False).encode()
        if rule.get("garbage"):
            data = b"<html><body>502 Bad Gateway</body></html>"
        if "truncate" in rule:
            data = data[:rule["truncate"]]
        if rule.get("hang"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            time.sleep(rule.get("hang_s", 30))
            self.close_connection = True
            return
        self.send_json(200, None, rule.get("headers"), raw=data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--script", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--api-key")
    ap.add_argument("--no-json-schema", action="store_true")
    ap.add_argument("--max-seconds", type=float, default=300)
    args = ap.parse_args()
    Handler.fake = Fake(args)
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 1024
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    port = srv.server_address[1]
    print("listening on 127.0.0.1:%d" % port, flush=True)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as pf:
            pf.write(str(port))
        os.rename(tmp, args.port_file)
    signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=srv.shutdown).start())
    threading.Timer(args.max_seconds, srv.shutdown).start()
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
