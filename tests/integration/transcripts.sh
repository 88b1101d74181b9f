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
# Malformed or hostile lines fail at their line with a clear message, and
# never hang, abort or pass (each is bounded: a regression would hang).
t() { # t FILE "what" PATTERN
  timeout -s KILL 30 $S test "$shop" "$f/$1" >"$TMP/o" 2>"$TMP/e"
  rc=$?
  check "$2: exits 1" [ $rc -eq 1 ]
  check "$2: says so" contains "$TMP/o" "$3"
}
t glob_slow.chat "glob with many stars on a long reply (was exponential)" "^FAIL .*glob_slow.chat:4: expected bot : \*a\*a\*a\*b$"
t regex_budget.chat "backtracking regex" "regex_budget.chat:5: regular expression .* cannot be matched: match limit exceeded"
t http_dir.chat "a folder as a body file" "http_dir.chat:2: http: cannot read \.: not a regular file"
t http_status.chat "a status that is no number" "http_status.chat:1: http: the status must be a number from 100 to 599"
t config_bad_json.chat "config: value that is not JSON" "config_bad_json.chat:1: config: persona.name: the value is not JSON"
t config_no_path.chat "config: without a path" "config_no_path.chat:1: config: bad path ''"
t config_schema.chat "config: against the schema" "config_schema.chat:1: config: limits.lua_memory_mb: the result is not a valid shop.json: \\$\.limits\.lua_memory_mb: must be >= 1"
t manager_empty.chat "manager: with nothing" "manager_empty.chat:3: manager: take, release or the text the manager writes"
t manager_regex.chat "manager ~" "manager_regex.chat:3: manager lines take ':'"
t user_empty.chat "user() without an id" "user_empty.chat:1: user\(\): the chat ID is empty"
t clock_huge.chat "a clock move that overflowed" "clock_huge.chat:3: clock: '106751991167d' is too far \(at most 36500d at a time\)"
t clock_9999.chat "a clock past the year 9999" "clock_9999.chat:4: clock: \+1d goes past the year 9999"
t llm_bad_rule.chat "llm: a rule it cannot read" "llm_bad_rule.chat:1: llm: cannot read 'summarise'"
t llm_bad_status.chat "llm: an error that is no HTTP status" "llm_bad_status.chat:1: llm: error takes an HTTP status from 400 to 599 or timeout"
t llm_bad_regex.chat "llm: a broken regex fails at its line" "llm_bad_regex.chat:1: bad regular expression"
t llm_calls.chat "expect llm calls counts the flows' calls" "llm_calls.chat:4: expected llm calls = 1"
check "expect llm calls: says what came" contains "$TMP/o" "^  got: 0$"
t ocr_bad_error.chat "ocr: an error it does not know" "ocr_bad_error.chat:1: ocr: error is timeout, unavailable or limit"
$S test "$shop" "$f" >"$TMP/o"; check "a folder runs every file" contains "$TMP/o" "^0 passed, $(ls "$f"/*.chat | wc -l) failed$"
$S test "$shop" /dev/null >"$TMP/o"; check "a device given as a transcript fails" contains "$TMP/o" "^FAIL /dev/null: cannot open: not a regular file"
$S test "$shop" "$TMP/missing.chat" >"$TMP/o"; check "missing file fails" [ $? -eq 1 ]
done_tests
