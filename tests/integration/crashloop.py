#!/usr/bin/env python3
"""crashloop.py SHOPBOT MODE ROUNDS -- kill -9 the bot at random moments
and check that nothing was lost or done twice.

MODE: plain (messages only), reload (flows rewritten while messages flow),
timers (every message also sets a durable wake-up). Each round starts
`shopbot chat`, feeds numbered messages, and kills it after a random delay;
a last run drains what is pending. Then the store must show: every
received event done once, the conversation's list of seen texts equal to
the inbox in order, one reply row per event and all sent, one wake-up per
message in timers mode, none left pending, integrity ok. Replies printed
twice on stdout are the documented window (a send can be repeated when the
process dies between writing and recording it) and are only counted.
Prints one line of figures; exits 1 on any loss or duplicate."""
import json, os, random, signal, sqlite3, subprocess, sys, tempfile, time

shopbot, mode, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
random.seed(int(os.environ.get("CRASH_SEED", "7")))
tmp = tempfile.mkdtemp(prefix="shopbot-crash.")
shop = os.path.join(tmp, "shop")
os.makedirs(os.path.join(shop, "flows"))
json.dump({"name": "crash", "persona": {"name": "T"},
           "flows": {"dir": "flows", "start": "main", "reload_debounce_ms": 5},
           "http": {"enabled": False}, "log": {"level": "warn"}},
          open(os.path.join(shop, "shop.json"), "w"))
FLOW = """-- version %d
return flow "main" {
  start = function(c, ev)
    local s = c.slots
    s.seen = s.seen or {}
    s.seen[#s.seen + 1] = ev.text
    %s
    c:say("got " .. ev.text)
  end,
  woke = function(c, ev)
    local s = c.slots
    s.woke = s.woke or {}
    s.woke[#s.woke + 1] = ev.data.k
  end,
}
"""
WAKE = 'c:wake(time.now(), "woke", {k = ev.text}, "w" .. ev.text)' if mode == "timers" else ""
version = [0]

def write_flow():
    version[0] += 1
    p = os.path.join(shop, "flows", "main.lua")
    with open(p + ".tmp", "w") as f:
        f.write(FLOW % (version[0], WAKE))
    os.replace(p + ".tmp", p)

write_flow()
out = open(os.path.join(tmp, "stdout"), "wb")
err = open(os.path.join(tmp, "stderr"), "wb")
n = 0
t0 = time.time()
for r in range(rounds):
    p = subprocess.Popen([shopbot, "chat", shop, "--user", "u"], stdin=subprocess.PIPE,
                         stdout=out, stderr=err)
    deadline = time.time() + random.uniform(0.1, 0.8)
    while time.time() < deadline:
        n += 1
        try:
            p.stdin.write(b"m%d\n" % n)
            p.stdin.flush()
        except BrokenPipeError:
            break
        if mode == "reload" and n % 3 == 0:
            write_flow()
        time.sleep(random.uniform(0, 0.02))
    p.send_signal(signal.SIGKILL)
    p.wait()
# drain: stdin closed, the bot finishes what is pending and exits
d = subprocess.run([shopbot, "chat", shop, "--user", "u"], stdin=subprocess.DEVNULL,
                   stdout=out, stderr=err, timeout=120)
out.close()
err.close()

db = sqlite3.connect(os.path.join(shop, "data", "shop.db"))
q = lambda sql: db.execute(sql).fetchall()
problems = []
texts = [json.loads(p)["text"] for (p,) in
         q("select payload from inbox where kind = 'text' order by id")]
notdone = q("select count(*) from inbox where status <> 'done'")[0][0]
if notdone:
    problems.append("%d inbox events not done" % notdone)
if len(texts) != len(set(texts)):
    problems.append("a message was received twice")
(state,) = q("select state from conversations where chat_id = 'u'")[0]
st = json.loads(state)
if st.get("seen", []) != texts:
    problems.append("state.seen differs from the inbox (%d vs %d)" % (len(st.get("seen", [])), len(texts)))
replies = [json.loads(p)["text"] for (p,) in q("select payload from outbox order by id")]
if sorted(replies) != sorted("got " + t for t in texts):
    problems.append("replies differ from events (%d vs %d)" % (len(replies), len(texts)))
unsent = q("select count(*) from outbox where status <> 'sent'")[0][0]
if unsent:
    problems.append("%d replies not sent" % unsent)
woke_lost = 0
if mode == "timers":
    woke = st.get("woke", [])
    woke_lost = len(set(texts) - set(woke))
    if woke_lost:
        problems.append("%d wake-ups lost" % woke_lost)
    if len(woke) != len(set(woke)):
        problems.append("a wake-up ran twice")
    pending = q("select count(*) from timers")[0][0]
    if pending:
        problems.append("%d timers still pending" % pending)
ic = q("pragma integrity_check")[0][0]
if ic != "ok":
    problems.append("integrity: " + ic)
printed = open(os.path.join(tmp, "stdout"), "rb").read().decode("utf-8", "replace").split("\n")
got = [l for l in printed if l.startswith("got ")]
twice = len(got) - len(set(got))
# What the store calls sent reached stdout: a row the channel's mark
# covers (025_outbox_mark.sql) has no write of its own, so this is the
# check that the mark never passed a row not sent.
never = set(replies) - set(l.rstrip("\r") for l in got)
if never:
    problems.append("%d replies marked sent never printed (%s...)" % (len(never), sorted(never)[0]))
marks = q("select count(*) from outbox_mark")[0][0]
if marks:
    problems.append("%d channel marks left after a clean stop" % marks)
print("crashloop mode=%s rounds=%d messages_written=%d events=%d lost_or_doubled=%d "
      "wakeups_lost=%d printed_twice=%d seconds=%.1f" %
      (mode, rounds, n, len(texts), len(problems), woke_lost, twice, time.time() - t0))
for pr in problems:
    print("PROBLEM", pr)
if problems:
    print("store kept in", tmp)
    sys.exit(1)
subprocess.run(["rm", "-rf", tmp])
