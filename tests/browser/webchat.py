#!/usr/bin/python3
"""webchat.py -- the web chat end to end in a real headless browser
(Debian's chromium driven by chromium-driver through python3-selenium):

  shopbot new, then check and test on the new shop; shopbot run with no
  messenger token serves the chat at /; a visible text input; /start and a
  VIN show the bot's answers; a photo sent from the page reaches the flow;
  a reload continues the conversation; a websocket dropped right after a
  send reconnects with nothing lost or doubled; the conversation comes back
  from the bot's store (both sides, in order) after a reload with the
  page's own storage wiped and in a second browser with the same cookie,
  and a third browser (another visitor) sees none of it; a page on another
  origin is refused. Embedded on a page of another site (an iframe, and
  the script tag's button and frame) in a browser that blocks third-party
  cookies: the chat works, and a reload of the shop's page goes on with
  the same conversation (the page's own token, not a cookie). A screenshot of the whole lead conversation is kept in
  BUILD/artifacts/webchat-lead.png.

Usage: webchat.py (SHOPBOT, RT_SOURCE_DIR in the environment; ARTIFACTS
optional). Exit 77 (skipped) only when the browser is not installed:
./dev.sh test installs it. Every wait is bounded."""
import http.server
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

SHOPBOT = os.environ["SHOPBOT"]
ART = os.environ.get("ARTIFACTS") or os.path.join(os.path.dirname(SHOPBOT), "artifacts")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser import By, Keys, need, start, wait  # noqa: E402
need()
from checks import check, finish  # noqa: E402


def png(path, w=64, h=48):
    """A small real PNG: a red-blue gradient."""
    raw = b"".join(b"\0" + bytes(
        v for x in range(w) for v in (255 * x // w, 40, 255 * y // h)) for y in range(h))

    def chunk(t, d):
        return struct.pack("!I", len(d)) + t + d + struct.pack("!I", zlib.crc32(t + d))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack("!IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(data)


class Site(http.server.BaseHTTPRequestHandler):
    """The shop's own site on another origin (http://localhost:PORT, while
    the chat is http://127.0.0.1:PORT: another site for the browser)."""
    chat = None   # the chat's URL, once the bot says its port

    def do_GET(self):
        if self.path == "/script":
            body = ('<!doctype html><meta charset="utf-8"><title>Гайка</title><h1>Гайка</h1>'
                    '<script src="%sembed.js" async></script>' % Site.chat)
        else:
            body = ('<!doctype html><meta charset="utf-8"><title>Гайка</title><h1>Гайка</h1>'
                    '<iframe id="chat" src="%s" style="width:420px;height:700px"></iframe>' % Site.chat)
        body = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


tmp = tempfile.mkdtemp(prefix="shopbot-browser.")
bot = None
drv = None
other = None
drv3 = None
site = http.server.HTTPServer(("127.0.0.1", 0), Site)
threading.Thread(target=site.serve_forever, daemon=True).start()
site_url = "http://localhost:%d" % site.server_address[1]
try:
    shop = os.path.join(tmp, "shop")
    r = subprocess.run([SHOPBOT, "new", shop, "--name", "Запчасти «Гайка»"],
                       capture_output=True, text=True, timeout=30)
    check("shopbot new", r.returncode == 0, r.stderr)
    r = subprocess.run([SHOPBOT, "check", shop], capture_output=True, text=True, timeout=60)
    check("check passes on the new shop", r.returncode == 0, r.stdout + r.stderr)
    r = subprocess.run([SHOPBOT, "test", shop], capture_output=True, text=True, timeout=300)
    check("test passes on the new shop", r.returncode == 0 and ", 0 failed" in r.stdout,
          r.stdout[-500:])

    # Port 0: the kernel picks a free port when the bot binds and the bot's
    # log says which, so no other test can take it in between.
    with open(os.path.join(shop, "shop.json"), encoding="utf-8") as f:
        conf = f.read()
    conf = conf.replace("127.0.0.1:8080", "127.0.0.1:0")
    # no token of any messenger and no "enabled" among the channels: the web
    # chat is on by default (the llm and ocr sections are shown, switched off)
    chans = json.dumps(json.loads(conf).get("channels", {}))
    check("the new shop.json's channels say nothing of enabled", '"enabled"' not in chans, chans)
    # the shop's site may frame the chat (frame-ancestors)
    conf = re.sub(r'("webchat"\s*:\s*\{)', r'\1 "allowed_origins": ["%s"],' % site_url, conf, 1)
    check("the site is allowed", site_url in json.dumps(json.loads(conf)["channels"]["webchat"]), conf)
    with open(os.path.join(shop, "shop.json"), "w", encoding="utf-8") as f:
        f.write(conf)
    log = open(os.path.join(tmp, "bot.err"), "w")
    bot = subprocess.Popen([SHOPBOT, "run", shop], stdout=subprocess.DEVNULL, stderr=log)
    botlog = lambda: open(os.path.join(tmp, "bot.err"), encoding="utf-8").read()  # noqa: E731
    end = time.time() + 60
    while time.time() < end and ("plugin-started plugin=webchat" not in botlog() and
                                 bot.poll() is None):
        time.sleep(0.1)
    check("run with no token starts the web chat", "plugin-started plugin=webchat" in botlog(),
          botlog()[-800:])
    m = re.search(r"msg=http listen=\S+ port=(\d+)", botlog())
    check("the bot says its port", m is not None, botlog()[-800:])
    port = int(m.group(1)) if m else 0

    drv = start(480, 1800)
    url = "http://127.0.0.1:%d/" % port

    # read in one script call: the page redraws its list as messages come
    def bots():
        return drv.execute_script(
            "return [...document.querySelectorAll('#log li.bot')].map(e => e.innerText)")

    def mine():
        return [tuple(x) for x in drv.execute_script(
            "return [...document.querySelectorAll('#log li.me')].map(e => [e.innerText, e.className])")]

    def online(d=None):
        return "on" in (d or drv).find_element(By.ID, "status").get_attribute("class")

    # the whole conversation as the page shows it: [(side, text)]
    def convo(d=None):
        return [tuple(x) for x in (d or drv).execute_script(
            "return [...document.querySelectorAll('#log li')]"
            ".map(e => [e.classList.contains('bot') ? 'bot' : 'me', e.innerText])")]

    def type_line(text):
        box = drv.find_element(By.ID, "text")
        box.send_keys(text)
        box.send_keys(Keys.ENTER)

    drv.get(url)
    box = wait(lambda: drv.find_element(By.ID, "text"))
    check("the page has a visible text input", box is not None and box.is_displayed())
    check("the page connects", wait(online) is not None)
    ext = drv.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".filter(n => !n.startsWith(location.origin))")
    check("no external requests", ext == [], ext)

    type_line("/start")
    check("/start shows the greeting",
          wait(lambda: any("Пришлите" in t and "VIN" in t for t in bots())), bots())
    check("the greeting names the shop", any("Гайка" in t for t in bots()), bots())
    check("the page is titled with the shop's name", "Гайка" in drv.title, drv.title)
    type_line("XW8ZZZ614BG012345")
    check("a VIN is understood", wait(lambda: any("Записал: VIN XW8ZZZ614BG012345" in t
                                                  for t in bots())), bots())
    check("my messages are confirmed", wait(lambda: all("sent" in c for _, c in mine())), mine())

    # a photo from the page reaches the flow as ev.photos
    pic = os.path.join(tmp, "part.png")
    png(pic)
    n = len(bots())
    drv.find_element(By.ID, "file").send_keys(pic)
    check("the photo is shown in the page",
          wait(lambda: drv.find_elements(By.CSS_SELECTOR, "#log li.me img")) is not None)
    check("the flow thanks for the photo",
          wait(lambda: len(bots()) > n and "Спасибо за фото" in bots()[-1]), bots()[-2:])
    check("the photo reached the flow as a photo event", "kind=photo" in botlog())
    files = os.listdir(os.path.join(shop, "data", "files", "webchat")) \
        if os.path.isdir(os.path.join(shop, "data", "files", "webchat")) else []
    check("the photo is kept in the plugin's data folder",
          any(f.endswith(".png") for f in files), files)

    # a reload continues: the page shows the conversation, the bot goes on
    before = len(bots())
    drv.refresh()
    wait(online)
    check("after a reload the conversation is shown", wait(lambda: len(bots()) == before),
          (before, bots()))
    type_line("колодки передние")
    check("after a reload the bot goes on with the same conversation",
          wait(lambda: any("Записал: колодки передние. Что-нибудь ещё?" in t for t in bots())),
          bots()[-2:])

    # a drop right after sending, before the ack: resent, taken once, one reply
    events = botlog().count("msg=event ")
    conns = drv.execute_script("return window.shopbotChat.connects")
    drv.execute_script("window.shopbotChatDropAfterSend = true")
    type_line("ещё масляный фильтр")
    got = wait(lambda: [t for t in bots() if "Записал: масляный фильтр" in t], 30)
    check("after a drop the reply comes", got)
    check("after a drop my message is confirmed (before: nothing doubled)",
          wait(lambda: all("sent" in c for t, c in mine() if "масляный фильтр" in t)), mine())
    time.sleep(0.5)   # a doubled reply or message would be right behind
    check("the socket was dropped and opened again",
          drv.execute_script("return window.shopbotChat.connects") == conns + 1,
          (conns, drv.execute_script("return window.shopbotChat.connects")))
    check("after a drop the reply is shown once",
          len([t for t in bots() if "Записал: масляный фильтр" in t]) == 1, bots()[-3:])
    mm = [t for t, _ in mine() if "масляный фильтр" in t]
    check("after a drop my message is shown once", len(mm) == 1, mine())
    check("after a drop my message is confirmed",
          wait(lambda: all("sent" in c for t, c in mine() if "масляный фильтр" in t)), mine())
    check("after a drop the bot took the message once",
          botlog().count("msg=event ") == events + 1, botlog()[-600:])

    type_line("всё")
    check("the lead is summed up and handed over",
          wait(lambda: any("Заявка готова" in t and "масляный фильтр" in t for t in bots())),
          bots()[-2:])
    os.makedirs(ART, exist_ok=True)
    shot = os.path.join(ART, "webchat-lead.png")
    h = drv.execute_script("return document.getElementById('log').scrollHeight") + 160
    drv.set_window_size(480, max(800, min(h, 4000)))
    time.sleep(0.3)
    drv.save_screenshot(shot)
    check("screenshot kept", os.path.getsize(shot) > 10000, shot)
    print("screenshot: " + shot)

    # The history is the bot's, not the page's: with the page's own
    # storage wiped, a reload shows the conversation from the store, both
    # sides in order; so does a second browser given the same cookie; a
    # third browser (another visitor) sees none of it.
    shown = convo()
    check("the conversation as shown", len(shown) >= 10 and shown[0] == ("me", "/start"), shown)
    drv.execute_script("localStorage.clear()")
    drv.refresh()
    wait(online)
    again = wait(lambda: convo() if convo() == shown else None, 15)
    check("reload with the page's storage wiped: the same conversation, from the store",
          again == shown, (shown, convo()))
    cookie = drv.get_cookie("shopbot_vid")
    check("the visitor cookie", cookie is not None and cookie.get("httpOnly"), cookie)
    drv2 = start(480, 1800)
    try:
        drv2.get(url)
        wait(lambda: online(drv2))
        check("a second browser starts with its own, empty conversation",
              wait(lambda: convo(drv2) == [] and online(drv2)) is not None, convo(drv2))
        drv2.delete_all_cookies()
        drv2.add_cookie({"name": "shopbot_vid", "value": cookie["value"], "path": "/"})
        drv2.refresh()
        wait(lambda: online(drv2))
        got2 = wait(lambda: convo(drv2) if convo(drv2) == shown else None, 15)
        check("a second browser with the same cookie shows the conversation", got2 == shown,
              (shown, convo(drv2)))
    finally:
        drv2.quit()

    # a page on another origin cannot open the chat's websocket
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = ("<!doctype html><script>var r=document.title='wait';"
                    "var w=new WebSocket('ws://127.0.0.1:%d/ws');"
                    "w.onopen=function(){document.title='open'};"
                    "w.onclose=function(){if(document.title!=='open')document.title='refused'};"
                    "</script>" % port).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass
    other = http.server.HTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    drv.get("http://localhost:%d/" % other.server_address[1])
    t = wait(lambda: drv.title if drv.title in ("open", "refused") else None)
    check("a page on another origin is refused", t == "refused", t)
    check("the refusal is logged", "webchat.origin-refused" in botlog())

    # Embedded on the shop's site, third-party cookies blocked: the chat
    # works in the frame, and a reload goes on with the same conversation.
    Site.chat = url
    drv3 = start(900, 900, block_third_party_cookies=True)

    def in_chat(d, page):
        d.get(site_url + page)
        d.switch_to.default_content()
        f = wait(lambda: d.find_element(By.CSS_SELECTOR, "iframe"))
        d.switch_to.frame(f)
        return wait(lambda: online(d), 20)

    def say3(text):
        box = drv3.find_element(By.ID, "text")
        box.send_keys(text)
        box.send_keys(Keys.ENTER)

    check("embedded: the chat connects in the frame", in_chat(drv3, "/"))
    say3("/start")
    check("embedded: the bot answers", wait(lambda: any("VIN" in t for _, t in convo(drv3))),
          convo(drv3))
    say3("XW8ZZZ614BG012345")
    check("embedded: a VIN is understood",
          wait(lambda: any("Записал: VIN XW8ZZZ614BG012345" in t for _, t in convo(drv3))),
          convo(drv3))
    jar = drv3.execute_cdp_cmd("Network.getAllCookies", {}).get("cookies", [])
    check("embedded: the browser kept no visitor cookie (third-party, blocked)",
          not [c for c in jar if c.get("name") == "shopbot_vid"], jar)
    shown3 = convo(drv3)
    drv3.switch_to.default_content()
    drv3.refresh()
    check("embedded, reloaded: connects again", in_chat(drv3, "/"))
    check("embedded, reloaded: the same conversation",
          wait(lambda: convo(drv3) == shown3, 15) is not None, (shown3, convo(drv3)))
    say3("колодки передние")
    check("embedded, reloaded: the bot goes on with it",
          wait(lambda: any("Записал: колодки передние. Что-нибудь ещё?" in t
                           for _, t in convo(drv3)), 20), convo(drv3)[-2:])
    # the script tag: a button on the shop's page opens the same chat
    drv3.get(site_url + "/script")
    btn = wait(lambda: drv3.find_element(By.ID, "shopbot-chat-button"))
    check("script tag: the chat button", btn is not None and btn.is_displayed())
    btn.click()
    f = wait(lambda: drv3.find_element(By.ID, "shopbot-chat-frame"))
    drv3.switch_to.frame(f)
    check("script tag: the chat opens", wait(lambda: online(drv3), 20))
    check("script tag: the same visitor's conversation",
          wait(lambda: any("колодки передние" in t for _, t in convo(drv3)), 15), convo(drv3))
    drv3.switch_to.default_content()
    drv3.set_window_size(900, 900)
    drv3.save_screenshot(os.path.join(ART, "webchat-embedded.png"))
    check("the bot is still up", bot.poll() is None)
finally:
    site.shutdown()
    if drv3:
        drv3.quit()
    if drv:
        drv.quit()
    if other:
        other.shutdown()
    if bot:
        bot.terminate()
        try:
            bot.wait(10)
        except subprocess.TimeoutExpired:
            bot.kill()
    shutil.rmtree(tmp, ignore_errors=True)
finish()
