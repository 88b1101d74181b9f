#!/bin/sh
# dev.sh -- the two quick-start commands (see README.md).
#
#   ./dev.sh demo [SHOP_DIR]   install what is missing, build, open the studio on the example shop
#   ./dev.sh chat [SHOP_DIR]   the same, but chat with it in the terminal
#   ./dev.sh test              install what is missing, build with ASan+UBSan, run every test
#                              (and each libFuzzer target for 12 s)
#   ./dev.sh build             just the release build (build/shopbot)
#   ./dev.sh bench             build and print the benchmark figures
#
# Each command installs the Debian packages it finds missing, so either
# works first on a bare Debian 12 machine.
set -eu
cd "$(dirname "$0")"

PKGS="build-essential cmake pkg-config sqlite3 liblua5.4-dev libwebsockets-dev libcurl4-openssl-dev \
libjansson-dev libpcre2-dev libuv1-dev libsqlite3-dev curl procps valgrind python3 \
clang libclang-rt-dev lua-check libssl-dev \
tesseract-ocr tesseract-ocr-eng tesseract-ocr-rus imagemagick fonts-dejavu-core"

# Only for `test`: the headless browser of tests/browser (and its driver).
# When it cannot be installed the browser tests say so and are skipped.
TEST_PKGS="chromium chromium-driver python3-selenium"

install_missing() { # [PACKAGES...] (default: PKGS)
  missing=""
  for p in ${*:-$PKGS}; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
  done
  [ -z "$missing" ] && return 0
  echo "installing Debian packages:$missing" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >&2
}

build() { # build DIR [cmake args]
  dir=$1; shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)" >&2
}

cmd=${1:-}
case "$cmd" in
  demo)
    install_missing
    build build -DRT_SANITIZE=OFF
    shop=${2:-examples/autoparts}
    # The studio works on a private copy; its temporary store goes in
    # build/tmp, so nothing is made outside the repository.
    mkdir -p build/tmp
    export TMPDIR="$(pwd)/build/tmp"
    echo "--- the studio on $shop: open the URL below in a browser; Ctrl-C stops (the terminal chat: ./dev.sh chat)" >&2
    exec ./build/shopbot studio "$shop"
    ;;
  chat)
    install_missing
    build build -DRT_SANITIZE=OFF
    shop=${2:-examples/autoparts}
    echo "--- $shop: write as a customer; Ctrl-D ends. /manager release gives the chat back to the bot." >&2
    exec ./build/shopbot chat "$shop"
    ;;
  test)
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
    install_missing
    build build -DRT_SANITIZE=OFF
    ./tests/bench/run
    ;;
  *)
    echo "usage: ./dev.sh demo [SHOP_DIR] | chat [SHOP_DIR] | test | build | bench" >&2
    exit 2
    ;;
esac
