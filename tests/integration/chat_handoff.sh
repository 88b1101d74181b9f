#!/bin/sh
# shopbot chat and a chat left with a manager: a second run says so at start
# and with each line typed (with the way back, /manager release), --fresh
# and /new start the conversation over (no slots, no wake-ups left), and
# release gives the chat back without a stale "with a manager" line.
. "$(dirname "$0")/lib.sh"
S=$SHOPBOT
d=$(make_shop handoff)
db="$d/data/shop.db"
q() { sqlite3 "$db" "$1"; }
chat() { # chat OUT ERR ARGS... < input
  o=$1 e=$2; shift 2
  $S chat "$d" "$@" >"$o" 2>"$e"
}

# 1. a conversation that ends with a manager, and a wake-up pending
printf 'привет\nраз\nwake\nhandoff\n' | chat "$TMP/o1" "$TMP/e1" --user u1
check "first run: handed off" contains "$TMP/o1" "^зову менеджера$"
check "first run: no manager line before the handoff" sh -c "! grep -q 'менеджер' '$TMP/e1'"
check "first run: stored as handoff" [ "$(q "SELECT mode FROM conversations WHERE chat_id='u1'")" = handoff ]

# 2. the second run: said at start and with the line; the bot is silent
printf 'алло\n' | chat "$TMP/o2" "$TMP/e2" --user u1
check "second run: exit 0" [ $? -eq 0 ]
check "second run: at start, the chat is with a manager" \
  contains "$TMP/e2" "^-- разговор передан менеджеру \(режим handoff\): бот молчит"
check "second run: at start, how to give it back" contains "$TMP/e2" "^-- .*бот молчит.*/manager release — вернуть разговор боту"
check "second run: at start, how to start over" contains "$TMP/e2" "^-- .*бот молчит.*/new — начать новый \(или shopbot chat --fresh\)"
check "second run: the line typed is answered with the same" \
  contains "$TMP/e2" "^-- разговор передан менеджеру \(режим handoff\): бот не ответит. /manager release"
check "second run: the bot said nothing" [ ! -s "$TMP/o2" ]

# 3. /manager release: the bot answers again, no stale line after it
printf '/manager release\nснова\n' | chat "$TMP/o3" "$TMP/e3" --user u1
check "release: the bot answers again" contains "$TMP/o3" "^Привет, Тест!$"
check "release: one manager line (at start), none after release" \
  [ "$(grep -c 'менеджер' "$TMP/e3")" -eq 1 ]
check "release: back to bot in the store" [ "$(q "SELECT mode FROM conversations WHERE chat_id='u1'")" = bot ]

# 4. /manager take: said with each line
printf '/manager take\nвы тут?\nау\n' | chat "$TMP/o4" "$TMP/e4" --user u1
check "taken: each line says a manager has it" \
  [ "$(grep -c '^-- разговор ведёт менеджер (режим manager): бот не ответит' "$TMP/e4")" -eq 2 ]
check "taken: the bot said nothing" [ ! -s "$TMP/o4" ]
printf '/manager take\n' | chat "$TMP/o4b" "$TMP/e4b" --user u1
check "taken: recorded once, not again for a chat the manager already has" \
  [ "$(q "SELECT count(*) FROM events e JOIN conversations c ON c.id=e.conv_id WHERE c.chat_id='u1' AND e.kind='taken'")" -eq 1 ]

# 5. --fresh: over from the start (the greeting, the count from 1), the
#    wake-up of the old conversation gone, "reset" recorded
printf 'handoff\n' | chat "$TMP/o5a" "$TMP/e5a" --user u2
printf 'привет\nwake\nhandoff\n' | chat "$TMP/o5a" "$TMP/e5a" --user u2
check "u2 has a wake-up pending" [ "$(q "SELECT count(*) FROM timers t JOIN conversations c ON c.id=t.conv_id WHERE c.chat_id='u2' AND t.name NOT LIKE '\_%' ESCAPE '\'")" -ge 1 ]
printf 'привет\nраз\n' | chat "$TMP/o5" "$TMP/e5" --user u2 --fresh
check "--fresh: said" contains "$TMP/e5" "^-- новый разговор \(--fresh\): прежний закрыт"
check "--fresh: no manager line" sh -c "! grep -q 'режим' '$TMP/e5'"
check "--fresh: the greeting again" contains "$TMP/o5" "^Привет, Тест!$"
check "--fresh: the slots start over" contains "$TMP/o5" "^эхо 1: раз$"
check "--fresh: the old wake-ups are gone" \
  [ "$(q "SELECT count(*) FROM timers t JOIN conversations c ON c.id=t.conv_id WHERE c.chat_id='u2' AND t.name NOT LIKE '\_%' ESCAPE '\'")" -eq 0 ]
check "--fresh: recorded as a reset event" \
  [ "$(q "SELECT count(*) FROM events e JOIN conversations c ON c.id=e.conv_id WHERE c.chat_id='u2' AND e.kind='reset'")" -eq 1 ]
check "--fresh: the old messages stay in the store" \
  [ "$(q "SELECT count(*) FROM inbox WHERE chat_id='u2' AND kind='text'")" -ge 5 ]

# 6. /new in the middle of a conversation
printf 'раз\nдва\n/new\nпривет\nтри\n' | chat "$TMP/o6" "$TMP/e6" --user u3
check "/new: said" contains "$TMP/e6" "^-- новый разговор: прежний закрыт, бот начнёт сначала$"
check "/new: counted before it" contains "$TMP/o6" "^эхо 1: два$"
check "/new: the greeting after it" [ "$(grep -c '^Привет, Тест!$' "$TMP/o6")" -eq 2 ]
check "/new: the count starts over" contains "$TMP/o6" "^эхо 1: три$"

# 7. a conversation in the bot's hands: named at start, no manager line
printf 'четыре\n' | chat "$TMP/o7" "$TMP/e7" --user u3
check "unfinished chat: named at start" contains "$TMP/e7" "^-- продолжается прежний разговор; /new — начать новый$"
check "unfinished chat: answered" contains "$TMP/o7" "^эхо 2: четыре$"
printf 'привет\n' | chat "$TMP/o8" "$TMP/e8" --user brand-new --fresh
check "--fresh on a new chat: nothing to close" sh -c "! grep -q '^--' '$TMP/e8'"
check "new chat: greeted" contains "$TMP/o8" "^Привет, Тест!$"
# 8. the lines are the shop's (channels.console.texts): overridden, each
#    comes in the shop's words with its {who}/{why} filled; a {word} that
#    is no placeholder stays as written; "" prints nothing
python3 - "$d/shop.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c.setdefault("channels", {}).setdefault("console", {})["texts"] = {
    "handoff": "with a manager", "manager": "a manager has it",
    "silent_start": "{who}: the bot keeps quiet {braces}",
    "silent_line": "{who}: no answer",
    "resumed": "", "new_chat": "new chat{why}", "fresh": " (fresh)"}
json.dump(c, open(p, "w"), ensure_ascii=False)
PY
printf 'привет\nраз\nhandoff\n' | chat "$TMP/o9" "$TMP/e9" --user u9
printf 'алло\n' | chat "$TMP/o9b" "$TMP/e9b" --user u9
check "texts: start line in the shop's words" contains "$TMP/e9b" "^-- with a manager: the bot keeps quiet {braces}$"
check "texts: each line in the shop's words" contains "$TMP/e9b" "^-- with a manager: no answer$"
check "texts: no built-in wording left" sh -c "! grep -q 'менеджер' '$TMP/e9b'"
printf 'раз\n' | chat "$TMP/o9c" "$TMP/e9c" --user u9 --fresh
check "texts: --fresh in the shop's words" contains "$TMP/e9c" "^-- new chat \(fresh\)$"
printf 'два\n' | chat "$TMP/o9d" "$TMP/e9d" --user u9
check "texts: an empty text prints nothing" sh -c "! grep -q '^--' '$TMP/e9d'"
check "texts: a bad key is refused by check" sh -c \
  "python3 -c \"import json,sys; c=json.load(open('$d/shop.json')); c['channels']['console']['texts']['nope']='x'; json.dump(c,open('$d/shop.json','w'))\" &&
   ! $S check '$d' >'$TMP/chk' 2>&1 && grep -q 'channels.console.texts' '$TMP/chk'"
done_tests
