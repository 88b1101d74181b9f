#!/bin/sh
# dev.sh's package install on a machine it does not own: a user that is not
# root and has no sudo gets the exact apt-get line to run as root (no
# "sudo: not found"); apt's output goes to a log, one line per step on the
# screen; a failing apt shows its error and the log's path. Runs
# `dev.sh install` with a PATH of fakes (id, dpkg-query, apt-get, sudo):
# nothing is installed for real.
. "$(dirname "$0")/lib.sh"

# A PATH holding only the tools dev.sh needs, and the fakes.
bin="$TMP/bin"
mkdir -p "$bin"
for t in sh awk grep sed tail head wc mkdir dirname basename cat env nproc; do
  p=$(command -v "$t") || { echo "SKIP: no $t"; exit 77; }
  ln -s "$p" "$bin/$t"
done
# id -u says $FAKE_UID.
cat > "$bin/id" <<'SH'
#!/bin/sh
[ "$1" = "-u" ] && { echo "$FAKE_UID"; exit 0; }
echo "uid=$FAKE_UID"
SH
# dpkg-query: the packages in $FAKE_MISSING ("all" = every one) are not
# installed, the others are.
cat > "$bin/dpkg-query" <<'SH'
#!/bin/sh
shift 2   # -W -f=FORMAT
for p in "$@"; do
  case " $FAKE_MISSING " in
    *" all "*|*" $p "*) echo "dpkg-query: no packages found matching $p" >&2 ;;
    *) echo "$p install ok installed" ;;
  esac
done
SH
# apt-get: hundreds of lines, as dpkg prints them; fails when FAKE_APT_FAIL.
cat > "$bin/apt-get" <<'SH'
#!/bin/sh
echo "apt-get $*" >> "$FAKE_CALLS"
if [ -n "${FAKE_APT_FAIL:-}" ] && [ "$1" = "install" ]; then
  echo "Reading package lists..."
  echo "E: Unable to locate package frobnicate-dev"
  exit 100
fi
i=0
while [ $i -lt 300 ]; do echo "Setting up package-$i (1.0-1) ..."; i=$((i + 1)); done
SH
chmod +x "$bin/id" "$bin/dpkg-query" "$bin/apt-get"
fake_sudo() {
  cat > "$bin/sudo" <<'SH'
#!/bin/sh
echo "sudo $*" >> "$FAKE_CALLS"
exec "$@"
SH
  chmod +x "$bin/sudo"
}

export FAKE_CALLS="$TMP/calls" FAKE_MISSING=all FAKE_UID=1000
devsh() { # devsh OUT ERR: dev.sh install with only the fakes on PATH
  rm -f "$FAKE_CALLS"
  PATH="$bin" DEV_LOG_DIR="$TMP/logs" sh "$RT_SOURCE_DIR/dev.sh" install >"$1" 2>"$2"
}

# 1. not root, no sudo
devsh "$TMP/o1" "$TMP/e1"; rc=$?
check "no sudo: stops (exit 1)" [ "$rc" -eq 1 ]
check "no sudo: no 'sudo: not found'" sh -c "! grep -q 'not found' '$TMP/e1'"
check "no sudo: says it is not root and has no sudo" contains "$TMP/e1" "not root \(no sudo here\)"
check "no sudo: the exact apt-get line to run as root" \
  contains "$TMP/e1" "^  apt-get update && apt-get install -y build-essential cmake pkg-config .*fonts-dejavu-core$"
check "no sudo: the same with su -c" \
  contains "$TMP/e1" "^  su -c 'apt-get update && apt-get install -y build-essential .*fonts-dejavu-core'$"
check "no sudo: says to run dev.sh again" contains "$TMP/e1" "then run ./dev.sh install again"
check "no sudo: apt-get never ran" [ ! -e "$FAKE_CALLS" ]

# 2. only some missing: the line names those
FAKE_MISSING="tesseract-ocr-rus fonts-dejavu-core"
devsh "$TMP/o2" "$TMP/e2"
check "two missing: only those two named" \
  contains "$TMP/e2" "^  apt-get update && apt-get install -y tesseract-ocr-rus fonts-dejavu-core$"
check "two missing: counted" contains "$TMP/e2" "^dev.sh: 2 Debian packages are missing"

# 3. not root, with sudo: one line per step, the details in the log
fake_sudo
FAKE_MISSING=all
devsh "$TMP/o3" "$TMP/e3"; rc=$?
check "sudo: install succeeds" [ "$rc" -eq 0 ]
check "sudo: apt-get ran through sudo" contains "$FAKE_CALLS" "^sudo apt-get update"
check "sudo: install through sudo" contains "$FAKE_CALLS" "^sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y build-essential"
check "sudo: two lines on the screen, not hundreds" [ "$(wc -l < "$TMP/e3")" -eq 2 ]
check "sudo: the install step names the count and the packages" \
  contains "$TMP/e3" "^installing [0-9]+ Debian packages: build-essential cmake .* \(log: $TMP/logs/install.log\)$"
check "sudo: the update step names its log" \
  contains "$TMP/e3" "^updating the Debian package lists \(log: $TMP/logs/install.log\)$"
check "sudo: dpkg's lines are in the log" [ "$(grep -c '^Setting up package-' "$TMP/logs/install.log")" -eq 600 ]
check "sudo: nothing on stdout" [ ! -s "$TMP/o3" ]

# 4. root: no sudo asked for even when there is one
FAKE_UID=0
devsh "$TMP/o4" "$TMP/e4"
check "root: apt-get without sudo" contains "$FAKE_CALLS" "^apt-get update"
check "root: sudo not used" sh -c "! grep -q '^sudo' '$FAKE_CALLS'"

# 5. apt fails: its error and where the log is
FAKE_APT_FAIL=1 devsh "$TMP/o5" "$TMP/e5"; rc=$?
check "apt fails: dev.sh fails" [ "$rc" -ne 0 ]
check "apt fails: says which step" contains "$TMP/e5" "^dev.sh: failed: installing [0-9]+ Debian packages: build-essential"
check "apt fails: shows apt's error" contains "$TMP/e5" "E: Unable to locate package frobnicate-dev"
check "apt fails: prints the log's path" contains "$TMP/e5" "^dev.sh: the whole log: $TMP/logs/install.log$"

# 6. nothing missing: silent, apt not called
FAKE_MISSING=none
devsh "$TMP/o6" "$TMP/e6"; rc=$?
check "all installed: exit 0" [ "$rc" -eq 0 ]
check "all installed: prints nothing" [ ! -s "$TMP/e6" ]
check "all installed: apt-get not called" [ ! -e "$FAKE_CALLS" ]
done_tests
