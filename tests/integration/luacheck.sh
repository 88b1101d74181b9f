#!/bin/sh
# luacheck over every flow and Lua module of the project (.luacheckrc at the
# root describes the sandbox flows run in), and a check that .luacheckrc
# knows every function the host modules register, so a new one is not
# reported as a mistake in the flow that first uses it.
. "$(dirname "$0")/lib.sh"
if ! command -v luacheck >/dev/null 2>&1; then
  echo "luacheck not installed (Debian package lua-check; ./dev.sh test installs it)"
  exit 77
fi
cd "$RT_SOURCE_DIR"
check "luacheck: scripts/ examples/ tests/flows/ are clean" \
  sh -c "luacheck --no-color -q scripts examples tests/flows > '$TMP/out' 2>&1 || { cat '$TMP/out'; exit 1; }"

# One call of every registered function, read from the luaL_Reg tables.
for m in text time json log http; do
  awk '/static const luaL_Reg/ { on = 1 } on && /};/ { on = 0 } on' "runtime/lapi_$m.c" |
    grep -o '{"[a-z_0-9]*",' | tr -d '{",' | while read -r f; do
      echo "local _ = $m[\"$f\"]"
    done
done > "$TMP/all_functions.lua"
# The providers' ops: `static const char *const <name>_ops[] = {"a", "b", NULL};`
# in plugins/<name>/<name>.c (runtime/integration.h).
for f in plugins/*/*.c; do
  grep -h 'static const char \*const [a-z_0-9]*_ops\[\] = {' "$f" | while read -r line; do
    m=$(echo "$line" | sed 's/.*const \([a-z_0-9]*\)_ops\[\].*/\1/')
    echo "$line" | sed 's/.*= {//' | grep -o '"[a-z_0-9]*"' | tr -d '"' | while read -r op; do
      echo "local _ = $m[\"$op\"]"
    done
  done
done > "$TMP/provider_ops.lua"
check "the providers register ops (sanity of the scan)" \
  sh -c "grep -q 'llm\[\"extract\"\]' '$TMP/provider_ops.lua' && grep -q 'ocr\[\"read\"\]' '$TMP/provider_ops.lua'"
cat "$TMP/provider_ops.lua" >> "$TMP/all_functions.lua"
check "the host registers functions (sanity of the scan)" sh -c "[ \$(wc -l < '$TMP/all_functions.lua') -gt 20 ]"
check ".luacheckrc lists every host module function" \
  sh -c "luacheck --no-color -q --config .luacheckrc '$TMP/all_functions.lua' > '$TMP/out2' 2>&1 || { cat '$TMP/out2'; exit 1; }"
done_tests
