#!/bin/sh
# The command line: usage errors exit 2, help exits 0, errors name the file.
. "$(dirname "$0")/lib.sh"
S=$SHOPBOT

$S >/dev/null 2>"$TMP/e"; check "no command -> 2" [ $? -eq 2 ]
check "no command -> usage on stderr" contains "$TMP/e" "usage: shopbot"
$S frobnicate 2>"$TMP/e"; check "unknown command -> 2" [ $? -eq 2 ]
check "unknown command named" contains "$TMP/e" "unknown command 'frobnicate'"
$S --version >"$TMP/o"; check "--version" contains "$TMP/o" "^shopbot [0-9]+\.[0-9]+"
for c in run chat test check import campaign stats; do
  $S $c --help >"$TMP/o" 2>&1; check "$c --help exits 0" [ $? -eq 0 ]
  check "$c --help prints usage" contains "$TMP/o" "usage: shopbot $c"
  $S $c --bogus-flag >/dev/null 2>"$TMP/e"; check "$c unknown flag -> 2" [ $? -eq 2 ]
  check "$c unknown flag -> usage on stderr" contains "$TMP/e" "usage: shopbot $c"
done
$S run 2>"$TMP/e"; check "run without SHOP_DIR -> 2" [ $? -eq 2 ]
done_tests
