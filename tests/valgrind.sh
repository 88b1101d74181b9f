#!/bin/sh
# tests/valgrind.sh BUILD_DIR -- the core under valgrind (no sanitizers in
# that build): the engine with real HTTP and reload, the sandbox table, the
# plugin host and a whole run around it, a chat session with a failing step. Any error or definite leak fails.
set -eu
B=$1
cd "$(dirname "$0")/.."
export RT_SOURCE_DIR=$PWD
# mimalloc is the binaries' malloc: --soname-synonyms has valgrind replace
# its malloc and free, as it does glibc's, to track every block.
vg="valgrind --soname-synonyms=somalloc=libmimalloc.so* --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite -q"
fails=0
run() {
  name=$1; shift
  if "$@" >/tmp/vg.$$ 2>&1; then echo "ok   valgrind $name"; else echo "FAIL valgrind $name"; cat /tmp/vg.$$; fails=$((fails + 1)); fi
}
run engine $vg "$B/test_engine"
run sandbox $vg "$B/test_sandbox"
run text $vg "$B/test_text"
run config $vg "$B/test_config"
run state $vg "$B/test_lvm_state"
run plugin $vg "$B/test_plugin"
run providers $vg "$B/test_lapi_provider"
run effects $vg "$B/test_lvm_effects"
d=$(mktemp -d)
cp -r tests/flows/shop/. "$d/"
run chat sh -c "printf 'привет\nraise\nlater\n' | $vg $B/shopbot chat $d"
rm -rf "$d" /tmp/vg.$$
echo "$((9 - fails)) passed, $fails failed"
[ $fails -eq 0 ]
