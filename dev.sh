#!/bin/sh
# dev.sh -- the two quick-start commands (see README.md).
#
#   ./dev.sh demo [SHOP_DIR] [--listen H:P]
#                              install what is missing, build, open the studio on the example shop
#   ./dev.sh chat [SHOP_DIR]   the same, but chat with it in the terminal
#   ./dev.sh test              install what is missing, build with ASan+UBSan, run every test
#                              (and each libFuzzer target for 12 s)
#   ./dev.sh build             just the release build (build/shopbot)
#   ./dev.sh bench             build and print the benchmark figures
#   ./dev.sh install           only install the missing Debian packages
#
# Each step prints one line; the details are in build/logs/*.log (the
# path is printed, and the log's end shown when a step fails).
#
# Each command installs the Debian packages it finds missing, so either
# works first on a bare Debian 12 machine.
set -eu
cd "$(dirname "$0")"

PKGS="build-essential cmake pkg-config sqlite3 liblua5.4-dev libwebsockets-dev libcurl4-openssl-dev \
libjansson-dev libpcre2-dev libuv1-dev libsqlite3-dev libmimalloc-dev curl procps valgrind python3 \
clang libclang-rt-dev lua-check libssl-dev \
tesseract-ocr tesseract-ocr-eng tesseract-ocr-rus imagemagick fonts-dejavu-core"

# Only for `test`: the headless browser of tests/browser (and its driver).
# When it cannot be installed the browser tests say so and are skipped.
TEST_PKGS="chromium chromium-driver python3-selenium"

# What dev.sh does goes to one line per step on the screen; the details
# (apt's and dpkg's hundreds of lines, the compiler's) go to log files under
# build/logs, printed with each step and shown when a step fails.
LOG_DIR=${DEV_LOG_DIR:-build/logs}

# step LOG WHAT COMMAND...: one line saying what runs, its output to LOG;
# on failure the log's first errors and its end, and where the whole of it
# is; returns non-zero then (set -e stops the script, or the caller's ||
# decides).
step() {
  log=$1 what=$2; shift 2
  echo "$what (log: $log)" >&2
  if ! "$@" >>"$log" 2>&1; then
    echo "dev.sh: failed: $what" >&2
    if grep -q -E "error|Error|E: " "$log"; then
      echo "the first errors in the log:" >&2
      grep -E "error|Error|E: " "$log" | head -n 10 | sed 's/^/  | /' >&2
    fi
    echo "the end of the log:" >&2
    tail -n 20 "$log" | sed 's/^/  | /' >&2
    echo "dev.sh: the whole log: $log" >&2
    return 1
  fi
}

# new_log NAME: an empty $LOG_DIR/NAME (printed as the step's log).
new_log() {
  mkdir -p "$LOG_DIR" && : >"$LOG_DIR/$1" && echo "$LOG_DIR/$1"
}

install_missing() { # [PACKAGES...] (default: PKGS)
  want=${*:-$PKGS}
  # One dpkg-query for them all (a second run stays fast); a package dpkg
  # has never heard of is missing too.
  installed=$(dpkg-query -W -f='${Package} ${Status}\n' $want 2>/dev/null |
              awk '/ ok installed$/ {print $1}')
  missing=""
  for p in $want; do
    case " $(echo $installed) " in *" $p "*) ;; *) missing="$missing $p" ;; esac
  done
  [ -z "$missing" ] && return 0
  missing=${missing# }
  n=$(echo "$missing" | wc -w)
  apt_line="apt-get update && apt-get install -y $missing"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      # No sudo to ask: say exactly what root has to run, and stop.
      {
        echo "dev.sh: $n Debian packages are missing and this user is not root (no sudo here)."
        echo "Run as root:"
        echo "  $apt_line"
        echo "for example with su:"
        echo "  su -c '$apt_line'"
        echo "then run ./dev.sh ${cmd:-} again."
      } >&2
      return 1
    fi
    SUDO="sudo"
  fi
  log=$(new_log install.log) || return 1
  step "$log" "updating the Debian package lists" $SUDO apt-get update || return 1
  step "$log" "installing $n Debian packages: $missing" \
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y $missing || return 1
}

# What `build` makes: the bot (and the merged shop.schema.json written next
# to it). `test` and `bench` set BUILD_ALL=1 for the tests and benchmarks.
BUILD_ALL=${BUILD_ALL:-}

build() { # build DIR [cmake args]
  dir=$1; shift
  log=$(new_log "build-$(basename "$dir").log") || return 1
  if [ -n "$BUILD_ALL" ]; then targets="all"; else targets="shopbot shop_schema"; fi
  # cmake rewrites nothing when nothing changed (CMakeLists.txt writes its
  # generated headers only when their content differs), so a second build
  # of unchanged sources compiles and links nothing.
  step "$log" "configuring $dir" \
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" || return 1
  step "$log" "building $targets in $dir" \
    cmake --build "$dir" -j"$(nproc)" --target $targets || return 1
}

cmd=${1:-}
case "$cmd" in
  demo)
    install_missing
    build build -DRT_SANITIZE=OFF
    # the shop (examples/autoparts), then what goes to the studio as it is
    # (--listen 127.0.0.1:8081 when 8080 is taken)
    shift
    shop=examples/autoparts
    case "${1:-}" in ""|-*) ;; *) shop=$1; shift ;; esac
    # The studio works on a private copy; its temporary store goes in
    # build/tmp, so nothing is made outside the repository.
    mkdir -p build/tmp
    export TMPDIR="$(pwd)/build/tmp"
    echo "--- the studio on $shop: open the URL below in a browser; Ctrl-C stops (the terminal chat: ./dev.sh chat)" >&2
    exec ./build/shopbot studio "$shop" "$@"
    ;;
  chat)
    install_missing
    build build -DRT_SANITIZE=OFF
    shop=${2:-examples/autoparts}
    echo "--- $shop: write as a customer; Ctrl-D ends. /manager release gives the chat back to the bot." >&2
    exec ./build/shopbot chat "$shop"
    ;;
  install)
    install_missing
    ;;
  test)
    BUILD_ALL=1
    install_missing
    install_missing $TEST_PKGS ||
      echo "could not install $TEST_PKGS: the browser tests will be skipped" >&2
    # valgrind needs a build without sanitizers; it runs first so ctest's
    # summary is the last line
    build build -DRT_SANITIZE=OFF
    ./tests/valgrind.sh build
    # The parsers of outside input (shop.json, CSV, stored state, the
    # Lua-JSON codec, customer text) under libFuzzer, 12 s each, in
    # build-fuzz with clang
    # (libclang-rt-dev has its runtime); a finding stops here.
    ./tests/fuzz/run 12
    build build-asan -DRT_SANITIZE=ON
    cd build-asan
    # lws and curl keep a few global allocations until exit: leak checks
    # stay on, with their suppressions.
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
    export LSAN_OPTIONS="suppressions=$(pwd)/../tests/lsan.supp:print_suppressions=0"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    ctest --output-on-failure -j"$(nproc)" --timeout 300
    ;;
  build)
    install_missing
    build build -DRT_SANITIZE=OFF
    echo "built: build/shopbot" >&2
    ;;
  bench)
    BUILD_ALL=1
    install_missing
    build build -DRT_SANITIZE=OFF
    ./tests/bench/run
    ;;
  *)
    echo "usage: ./dev.sh demo [SHOP_DIR] [--listen H:P] | chat [SHOP_DIR] | test | build | bench | install" >&2
    exit 2
    ;;
esac
