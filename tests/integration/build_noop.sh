#!/bin/sh
# A configure of unchanged sources rewrites no generated file: the headers
# CMakeLists.txt generates (the compiled-in host.lua, the plugins' schemas,
# the web chat page) keep their time stamps, so a second `./dev.sh build`
# or `./dev.sh demo` recompiles and relinks nothing. Configure only (no
# compiler runs), in a build folder of its own.
. "$(dirname "$0")/lib.sh"
command -v cmake >/dev/null || { echo "SKIP: no cmake"; exit 77; }
b="$TMP/build"
conf() { cmake -S "$RT_SOURCE_DIR" -B "$b" -DRT_SANITIZE=OFF -DRT_BUILD_TESTS=OFF >>"$TMP/log" 2>&1; }
conf; check "first configure" [ $? -eq 0 ]
stamps() { (cd "$b/gen" && find . -type f -exec stat -c '%n %.9Y %s' {} + | sort); }
stamps > "$TMP/s1"
check "headers generated" [ "$(wc -l < "$TMP/s1")" -ge 3 ]
check "host.lua compiled in" contains "$TMP/s1" "^./host_lua.h "
check "web chat page compiled in" contains "$TMP/s1" "^./webchat_static.h "
sleep 1.1   # a rewrite now would show in the seconds too, on any file system
conf; check "second configure" [ $? -eq 0 ]
stamps > "$TMP/s2"
check "no generated file rewritten by a second configure" cmp -s "$TMP/s1" "$TMP/s2"
if ! cmp -s "$TMP/s1" "$TMP/s2"; then diff "$TMP/s1" "$TMP/s2"; fi
done_tests
