"""browser.py -- what the browser tests (and the web chat benchmark) share:
the headless Chromium (Debian's chromium and chromium-driver through
python3-selenium) started the same way, why it cannot be, and a bounded
wait.

  from browser import By, Keys, need, start, wait
  need()                                    # a test: exit 77 (skipped) with the reason
  drv = start(width, height)                # a fresh profile each time
  drv = start(480, 900, block_third_party_cookies=True)
  wait(lambda: ..., secs)                   # the value, or None at the end

MISSING is why there is no browser (None when there is one)."""
import os
import shutil
import sys
import time

MISSING = None
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By  # noqa: F401 (for the tests)
    from selenium.webdriver.common.keys import Keys  # noqa: F401
except ImportError:
    By = Keys = None
    MISSING = "python3-selenium is not installed (./dev.sh test installs it)"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not MISSING and not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
    MISSING = "chromium and chromium-driver are not installed (./dev.sh test installs them)"

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "unit"))


def need():
    """For a test: with no browser, say why and exit 77 (ctest: skipped)."""
    if MISSING:
        print("skipped: " + MISSING)
        sys.exit(77)


def start(width, height, block_third_party_cookies=False, skip=True):
    """A headless Chromium at that window size. With
    block_third_party_cookies, as Chrome's and Safari's default is going:
    the preference "block third-party cookies" and the test flag of the
    cookie phase-out, so a frame from another site gets no cookie. A
    browser that cannot start: skipped (exit 77), or with skip=False the
    error is raised."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=%d,%d" % (width, height), "--lang=ru"):
        opts.add_argument(a)
    if block_third_party_cookies:
        opts.add_argument("--test-third-party-cookie-phaseout")
        # cookie_controls_mode 1: "block third-party cookies"
        opts.add_experimental_option("prefs", {"profile.cookie_controls_mode": 1,
                                               "profile.block_third_party_cookies": True})
    try:
        drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    except Exception as e:  # noqa: BLE001
        if not skip:
            raise
        print("skipped: the browser cannot be started: %s" % str(e).splitlines()[0])
        sys.exit(77)
    drv.set_page_load_timeout(20)
    drv.set_script_timeout(20)
    return drv


def wait(cond, secs=15):
    """cond()'s first true value within secs (exceptions count as not yet:
    the page may be reloading or re-rendering), or None."""
    end = time.time() + secs
    while time.time() < end:
        try:
            v = cond()
            if v:
                return v
        except Exception:  # noqa: BLE001
            pass
        time.sleep(0.05)
    return None
