#!/bin/sh
# shopbot test reports failures with the line, what was expected and what
# came, and exits non-zero; passing files print PASS.
. "$(dirname "$0")/lib.sh"
S=$SHOPBOT
shop="$RT_SOURCE_DIR/tests/flows/shop"
f="$RT_SOURCE_DIR/tests/flows/failing"
$S test "$shop" >"$TMP/o"; check "passing shop exits 0" [ $? -eq 0 ]
check "PASS lines" contains "$TMP/o" "^PASS .*basic.chat \([0-9]+ checks\)"
check "summary line" contains "$TMP/o" "^[0-9]+ passed, 0 failed$"
$S test "$shop" "$f/wrong_reply.chat" >"$TMP/o"; check "failing file exits 1" [ $? -eq 1 ]
check "names file and line" contains "$TMP/o" "^FAIL .*wrong_reply.chat:4: expected bot : Здравствуйте\*"
check "says what came" contains "$TMP/o" "^  got: Привет, Тест!"
check "summary counts the failure" contains "$TMP/o" "^0 passed, 1 failed$"
$S test "$shop" "$f/unexpected.chat" >"$TMP/o"; check "unmatched bot message fails" contains "$TMP/o" "unexpected bot message"
$S test "$shop" "$f/wrong_slot.chat" >"$TMP/o"; check "wrong slot fails" contains "$TMP/o" "expected slot count = 7"
check "wrong slot shows value" contains "$TMP/o" "got: 0"
$S test "$shop" "$f/bad_line.chat" >"$TMP/o"; check "bad clock line fails clearly" contains "$TMP/o" "bad_line.chat:3: clock: bad duration"
$S test "$shop" "$f" >"$TMP/o"; check "a folder runs every file" contains "$TMP/o" "^0 passed, 4 failed$"
$S test "$shop" "$TMP/missing.chat" >"$TMP/o"; check "missing file fails" [ $? -eq 1 ]
done_tests
