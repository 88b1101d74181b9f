#!/bin/sh
# The console channel (`shopbot chat`): customer ids of any allowed length
# reach the flows whole, bad ids are usage errors, and nothing that came from
# outside can drive the operator's terminal.
. "$(dirname "$0")/lib.sh"
S=$SHOPBOT

d="$TMP/shop"
mkdir -p "$d/flows"
cat >"$d/shop.json" <<'JSON'
{ "name": "it", "persona": {}, "flows": {"start": "main"}, "http": {"enabled": false},
  "limits": {"step_timeout_ms": 20000} }
JSON
cat >"$d/flows/main.lua" <<'LUA'
return flow "main" { start = function(c, ev)
  c:say("echo " .. ev.text .. "\nline two", { buttons = { "b:" .. ev.text } })
  c:notify("card: " .. ev.text)
  c:lead({ car = ev.text })
end }
LUA

# ---- ids (D17, D18) ----
long=$(printf 'u%.0s' $(seq 300))
printf 'one\ntwo\nthree\n' | $S chat "$d" --user "$long" >"$TMP/o" 2>"$TMP/e"
check "300-char id: exit 0" [ $? -eq 0 ]
check "300-char id: every line answered" [ "$(grep -c '^echo ' "$TMP/o")" -eq 3 ]
check "300-char id: the third line too" contains "$TMP/o" '^echo three$'

max=$(printf 'x%.0s' $(seq 512))
printf 'a\nb\n' | $S chat "$d" --user="$max" >"$TMP/o" 2>/dev/null
check "512-char id: both lines answered" [ "$(grep -c '^echo ' "$TMP/o")" -eq 2 ]

for bad in "" "${max}x" "a b" "a:b" "a/b" "$(printf 'a\033b')" "привет"; do
  echo hello | $S chat "$d" --user="$bad" >"$TMP/o" 2>"$TMP/e"
  rc=$?
  check "bad id '$(printf '%s' "$bad" | cut -c1-20 | cat -v)': exit 2" [ $rc -eq 2 ]
  check "bad id: usage error" contains "$TMP/e" "^shopbot chat: --user"
  check "bad id: nothing processed" [ ! -s "$TMP/o" ]
done
echo hello | $S chat "$d" --user >/dev/null 2>"$TMP/e"
check "--user without a value: exit 2" [ $? -eq 2 ]
for ok_id in local 79161234567 +79161234567 a.b_c-d@e.f; do
  echo hi | $S chat "$d" --user "$ok_id" >"$TMP/o" 2>/dev/null
  check "id '$ok_id' accepted" contains "$TMP/o" '^echo hi$'
done

# ---- terminal control characters (D26) ----
# ESC [2J (clear), OSC title with BEL, backspaces, CR, DEL, a C1 CSI
# (U+009B), a bidi override (U+202E) and a stray invalid byte.
printf 'x\033[2J\033]0;pwn\007\010\010\rfake reply\177 \302\233 \342\200\256evil \377end\n' |
  $S chat "$d" --user ctl >"$TMP/o" 2>"$TMP/e"
check "controls: exit 0" [ $? -eq 0 ]
# No byte below 0x20 except newline and tab, no DEL, no C1, no bidi control.
check "controls: no C0 control or DEL in stdout" \
  [ "$(tr -d '\n\t' <"$TMP/o" | LC_ALL=C tr -d '\040-\176\200-\377' | wc -c)" -eq 0 ]
check "controls: no C1 control (U+0080-U+009F)" \
  [ "$(LC_ALL=C grep -c "$(printf '\302[\200-\237]')" "$TMP/o")" -eq 0 ]
check "controls: no bidi override" [ "$(grep -c "$(printf '\342\200\256')" "$TMP/o")" -eq 0 ]
check "controls: no invalid UTF-8 byte" [ "$(LC_ALL=C grep -c "$(printf '\377')" "$TMP/o")" -eq 0 ]
# What was there stays visible: ESC as ␛, BEL as ␇, CR as ␍.
check "controls: reply shows the escapes" contains "$TMP/o" '^echo x␛\[2J␛\]0;pwn␇␈␈␍fake reply␡ � �evil �end$'
check "controls: managers' card too" contains "$TMP/o" '^\[to managers\] card: x␛\[2J'
check "controls: buttons too" contains "$TMP/o" '^  \[b:x␛\[2J'
check "controls: no raw ESC anywhere" [ "$(grep -c "$(printf '\033')" "$TMP/o")" -eq 0 ]
# A newline in the bot's own text stays a line break (indented as always).
check "newline in a reply kept" contains "$TMP/o" '^  line two$'
cat -v "$TMP/o" >"$TMP/v"
# (cat -v writes the bytes of "␛" as M-bM-^PM-^[, so only a caret that is not
# part of an M- sequence is a raw control.)
check "cat -v shows no ^[ ^G ^M ^H" [ "$(grep -c '\(^\|[^-]\)\^[[GMH]' "$TMP/v")" -eq 0 ]

done_tests
