#!/usr/bin/python3
"""studio.py -- `shopbot studio` end to end in a real headless browser
(Debian's chromium driven by chromium-driver through python3-selenium):

  a whole lead conversation typed into the page, its step, slots and
  events beside it; a retention check-in for a sample customer, "later",
  and the time buttons fire the follow-up; a broken flow edit shows the
  banner with file and line and a fixed one removes it; "save as
  transcript" writes a file `shopbot test` then passes; the tests button
  shows the results; the statistics plots render as SVG. Screenshots of
  the lead conversation and of the statistics are kept in
  BUILD/artifacts/studio-lead.png and studio-stats.png.

Usage: studio.py (SHOPBOT, RT_SOURCE_DIR in the environment; ARTIFACTS
optional). Exit 77 (skipped) only when the browser is not installed or
cannot start: ./dev.sh test installs it. Every wait is bounded."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

SHOPBOT = os.environ["SHOPBOT"]
ART = os.environ.get("ARTIFACTS") or os.path.join(os.path.dirname(SHOPBOT), "artifacts")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser import By, need, start, wait  # noqa: E402
need()
from checks import check, finish  # noqa: E402

tmp = tempfile.mkdtemp(prefix="shopbot-browser-studio.")
studio = None
drv = None
try:
    shop = os.path.join(tmp, "shop")
    r = subprocess.run([SHOPBOT, "new", shop], capture_output=True, text=True, timeout=30)
    check("shopbot new", r.returncode == 0, r.stderr)
    studio = subprocess.Popen([SHOPBOT, "studio", shop, "--listen", "127.0.0.1:0"],
                              stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "studio.err"), "w"),
                              text=True)
    m = re.search(r"http://127\.0\.0\.1:\d+/", studio.stdout.readline())
    check("the studio prints its URL", m is not None)
    if not m:
        finish()
    url = m.group(0)

    drv = start(1280, 900)

    def q(css):
        return drv.find_element(By.CSS_SELECTOR, css)

    # Read in one script call: the page redraws its lists as messages come,
    # and elements found first and read one by one can be gone by then
    # (a stale element reference).
    def texts(css):
        return drv.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0]),"
            " function (e) { return e.innerText.trim(); })", css)

    def bots():
        return texts("#messages .msg.out")

    drv.get(url)
    check("the page loads", wait(lambda: q("#shop").text not in ("", "…")), q("#shop").text)
    external = drv.execute_script(
        "return performance.getEntriesByType('resource').map(function(e){return e.name})"
        ".filter(function(n){return n.indexOf(location.origin) !== 0})")
    check("no external requests", external == [], external)

    # A whole lead conversation as a new test customer.
    q("#new-id").send_keys("anna")
    q("#new-chat button").click()

    def type_line(t):
        n = len(bots())
        q("#text").send_keys(t)
        q("#send").click()
        return wait(lambda: len(bots()) > n)

    type_line("Здравствуйте! Нужны тормозные колодки на рио")
    type_line("XW8ZZZ614BG012345")
    check("the bot answers in the page", wait(lambda: any("XW8ZZZ614BG012345" in t for t in bots())), bots())
    check("the step and slots are shown beside", wait(lambda: "XW8ZZZ614BG012345" in q("#slots").text),
          q("#slots").text)
    type_line("нет, всё")
    check("the lead is handed to a manager", wait(lambda: "ждёт менеджера" in q("#chat-mode").text),
          q("#chat-mode").text)
    check("the lead and hand-off events are shown",
          wait(lambda: "lead" in q("#events").text and "handoff" in q("#events").text), q("#events").text)
    check("the managers' note is shown", wait(lambda: "XW8ZZZ614BG012345" in q("#managers").text))
    q("#m-take").click()
    check("manager take", wait(lambda: "у менеджера" in q("#chat-mode").text))
    q("#m-text").send_keys("Колодки есть, 2500 ₽, приезжайте")
    q("#m-reply").click()
    check("the manager's reply is shown", wait(lambda: "2500" in " ".join(texts("#messages .msg.manager"))))
    q("#m-release").click()
    check("manager release", wait(lambda: q("#chat-mode").text == "бот"))
    os.makedirs(ART, exist_ok=True)
    shot = os.path.join(ART, "studio-lead.png")
    # tall enough for the whole conversation
    drv.set_window_size(1280, 1400)
    time.sleep(0.3)
    drv.save_screenshot(shot)
    drv.set_window_size(1280, 900)
    check("lead screenshot kept", os.path.getsize(shot) > 20000, shot)
    print("screenshot: " + shot)

    # Save as a transcript; shopbot test passes on it.
    q("#save-name").send_keys("studio_lead")
    q("#save").click()
    check("save as transcript", wait(lambda: "tests/studio_lead.chat" in q("#save-result").text),
          q("#save-result").text + q("#error").text)
    saved = os.path.join(shop, "tests", "studio_lead.chat")
    t = subprocess.run([SHOPBOT, "test", shop, saved], capture_output=True, text=True, timeout=60)
    check("shopbot test passes on the saved transcript", t.returncode == 0, t.stdout + open(saved).read())
    q("#save").click()
    check("a second save does not overwrite", wait(lambda: "exists" in q("#error").text), q("#error").text)

    # A retention check-in for a sample customer; time moves fire the follow-up.
    sel = q("#checkin-phone")
    phone = sel.get_attribute("value")
    q("#checkin").click()
    check("the check-in's first message", wait(lambda: q("#chat-title").text == phone and bots()), bots())
    type_line("Сейчас не надо, напишите через неделю")
    check("a reminder is pending", wait(lambda: "retention.remind" in q("#timers").text), q("#timers").text)
    n = len(bots())
    clock0 = q("#clock").text
    q("[data-by='+1d']").click()
    check("+1 day moves the clock", wait(lambda: q("#clock").text != clock0), (clock0, q("#clock").text))
    time.sleep(0.3)
    check("nothing is due after a day", len(bots()) == n)
    # "через неделю" is a date a week on at the reminder's hour: after +1
    # day and +3 days twice it is due or at most a day away, by the hour the
    # test runs at; so one more day only if it has not come yet.
    def followup():
        return len(bots()) > n and "напомнить" in bots()[-1]
    for by in ("+3d", "+3d", "+1d"):
        if by == "+1d" and wait(followup, 3):
            break
        before = q("#clock").text
        wait(lambda: q("[data-by='%s']" % by).is_enabled())
        q("[data-by='%s']" % by).click()
        wait(lambda: q("#clock").text != before and q("[data-by='%s']" % by).is_enabled())
    check("+3 days twice (and a day, by the hour): the retention follow-up appears",
          wait(followup), bots()[-2:])

    # A broken edit: the banner; a fixed one removes it.
    lead = os.path.join(shop, "flows", "lead.lua")
    good = open(lead, encoding="utf-8").read()
    with open(lead, "w", encoding="utf-8") as f:
        f.write(good + "\nlocal x = = 1\n")
    check("a broken edit shows the banner", wait(lambda: q("#banner").is_displayed()))
    check("the banner names file and line", wait(lambda: q("#banner-file").text.endswith("lead.lua") and
                                                  int(q("#banner-line").text) > 100), q("#banner").text)
    shot_b = os.path.join(ART, "studio-banner.png")
    drv.save_screenshot(shot_b)
    with open(lead, "w", encoding="utf-8") as f:
        f.write(good)
    check("a fixed edit removes it", wait(lambda: not q("#banner").is_displayed()))
    check("and says the flows were reloaded", wait(lambda: "обновлены" in q("#toast").text), q("#toast").text)

    # The shop's tests with one click.
    q("#tab-tests").click()
    q("#run-tests").click()
    check("the tests run and pass", wait(lambda: re.search(r"прошли \d+, упали 0", q("#tests-status").text), 240),
          q("#tests-status").text)
    check("each file is listed", len(texts("#tests-result li.pass")) > 10)
    check("by its name in the shop", "PASS tests/lead_happy.chat" in texts("#tests-result li.pass"),
          texts("#tests-result li.pass")[:3])

    # Statistics as SVG plots.
    q("#tab-stats").click()
    check("the stats plots render", wait(lambda: len(drv.find_elements(By.CSS_SELECTOR, "#stats svg rect")) > 5),
          q("#stats").text[:300])
    check("the stats tab shows them, not the others",
          q("#stats").is_displayed() and not q("#tests-result").is_displayed() and
          not q("#messages").is_displayed())
    rect = drv.find_elements(By.CSS_SELECTOR, "#stats svg.columns rect")
    check("a column per day with leads", len(rect) >= 1 and rect[0].size["height"] > 10,
          [r.size for r in rect])
    check("leads per day plotted", wait(lambda: "Заявки по дням" in q("#stats").text))
    shot_s = os.path.join(ART, "studio-stats.png")
    drv.set_window_size(1280, 1100)
    time.sleep(0.3)
    drv.save_screenshot(shot_s)
    check("stats screenshot kept", os.path.getsize(shot_s) > 20000, shot_s)
    print("screenshot: " + shot_s)
    check("the studio is still up", studio.poll() is None)
finally:
    if drv:
        drv.quit()
    if studio:
        studio.terminate()
        try:
            studio.wait(10)
        except subprocess.TimeoutExpired:
            studio.kill()
    shutil.rmtree(tmp, ignore_errors=True)
finish()
