"""checks.py -- the ok/FAIL lines of the Python test scripts.

check() prints "ok   WHAT" or "FAIL WHAT DETAIL", counts, and returns whether
it passed (so a script can print more on a failure); finish() prints
"N passed, N failed" and exits 1 when anything failed."""
import sys

passed = failed = 0


def check(what, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok   " + what)
    else:
        failed += 1
        print("FAIL %s %s" % (what, detail))
    sys.stdout.flush()
    return bool(cond)


def finish():
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
