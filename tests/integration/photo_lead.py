#!/usr/bin/env python3
"""photo_lead.py PORT LLM_LOG DIR -- the Vitaly lead over the web chat with
OCR and an LLM (tests/integration/photo_lead.sh starts both): an СТС photo
read on the machine, confirmed, the lead completed with no LLM call; a part
photo OCR finds no car in goes to the LLM, which names the part; the
customer confirms it. Prints ok/FAIL lines; exit 1 on a failure."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.environ["RT_SOURCE_DIR"], "tests", "unit"))
from webchat_client import Visitor, http, new_cookie  # noqa: E402
from checks import check, finish  # noqa: E402

port, llm_log, d = int(sys.argv[1]), sys.argv[2], sys.argv[3]


def llm_requests():
    try:
        with open(llm_log, encoding="utf-8") as f:
            return [json.loads(x) for x in f if x.strip()]
    except FileNotFoundError:
        return []


manifest = json.load(open(os.path.join(d, "manifest.json"), encoding="utf-8"))
sts = next(m for m in manifest if m["kind"] == "document")
part = next(m for m in manifest if m["kind"] == "part")

seq = [0]


def visitor():
    cookie = new_cookie(port)
    v = Visitor(port, cookie, timeout=10)
    v.cookie = cookie
    return v


def say(v, text):
    seq[0] += 1
    v.send({"t": "msg", "id": "m%d" % seq[0], "text": text})


def photo(v, path):
    with open(path, "rb") as f:
        body = f.read()
    st, _, resp = http(port, "POST", "/upload", body,
                       {"Cookie": v.cookie, "Origin": "http://127.0.0.1:%d" % port,
                        "Content-Type": "image/jpeg"}, timeout=10)
    assert st == 200, (st, resp)
    name = json.loads(resp)["file"]
    seq[0] += 1
    v.send({"t": "photo", "id": "p%d" % seq[0], "file": name, "text": ""})


def bot(v, needle, timeout=60):
    m, seen = v.until(lambda m: isinstance(m, dict) and m.get("t") == "msg"
                      and needle in m.get("text", ""), timeout)
    if m:
        v.send({"t": "ack", "id": m["id"]})
    else:
        print("    got: %s" % [x.get("text") for x in seen if isinstance(x, dict) and x.get("t") == "msg"])
    return m


if len(sys.argv) > 4 and sys.argv[4] == "retention":
    # The flow starts at retention's answer: a reply the rules do not read.
    v = visitor()
    say(v, "сосед посоветовал вас, машина в ремонте у друга")
    m = bot(v, "VIN")
    check("the LLM's intent (need) taken: on to the lead", m is not None and m["text"].startswith("Отлично"))
    reqs = llm_requests()
    check("one LLM call, retention_reply, the customer's words",
          len(reqs) == 1 and reqs[0]["body"]["response_format"]["json_schema"]["name"] == "retention_reply"
          and "посоветовал" in json.dumps(reqs[0]["body"]["messages"][-1], ensure_ascii=False))
    v.close()
    v = visitor()
    say(v, "хм")
    m = bot(v, "нужны ли сейчас запчасти")
    check("an intent outside the known ones is refused: the rules' answer (ask again) stands",
          m is not None and len(llm_requests()) == 3)
    v.close()
    finish()

# ---- СТС: OCR reads the VIN, the customer confirms, no tokens spent ----
v = visitor()
say(v, "Здравствуйте")
check("greeting", bot(v, "VIN") is not None)
photo(v, os.path.join(d, sts["file"]))
check("the VIN read from the СТС is asked to be confirmed", bot(v, sts["vin"] + " — верно?") is not None)
say(v, "да")
check("confirmed: parts asked", bot(v, "запчасти") is not None)
say(v, "колодки передние")
check("parts: anything else", bot(v, "Что-нибудь ещё") is not None)
say(v, "нет")
check("lead done", bot(v, sts["vin"]) is not None)
check("no LLM call for a photo lead whose СТС OCR read", len(llm_requests()) == 0)
v.close()

# ---- a part: OCR finds no car id, the LLM names the part ----
v = visitor()
say(v, "Добрый день, нужна деталь вот такая")
bot(v, "VIN")
photo(v, os.path.join(d, part["file"]))
check("the LLM's reading of the part is asked to be confirmed", bot(v, "похоже, суппорт тормозной") is not None)
reqs = llm_requests()
check("one LLM call, with the photo as a data: URI", len(reqs) == 1 and any(
    p.get("type") == "image_url" and p["image_url"]["url"].startswith("data:image/jpeg;base64,")
    for p in reqs[0]["body"]["messages"][-1]["content"]))
check("it asked with the photo_triage schema",
      len(reqs) == 1 and reqs[0]["body"]["response_format"]["json_schema"]["name"] == "photo_triage")
say(v, "да")
check("confirmed part saved, car asked", bot(v, "суппорт тормозной") is not None)
v.close()

finish()
