#!/bin/sh
# The boundaries the code keeps (STYLE.md, section M), checked by grep.
. "$(dirname "$0")/lib.sh"
R=$RT_SOURCE_DIR/runtime
cd "$R"
check "Lua is entered only from lvm.c" sh -c "[ \"\$(grep -l 'lua_pcall\|lua_resume' *.c)\" = lvm.c ]"
check "no full Lua standard library anywhere" sh -c "! grep -n 'luaL_openlibs\|luaopen_io\|luaopen_os\|luaopen_package\|luaopen_debug' *.c"
check "every Lua module has a luaL_Reg table" sh -c "[ -z \"\$(grep -L 'static const luaL_Reg' lapi_*.c)\" ]"
check "curl only in http_client.c" sh -c "[ \"\$(grep -l 'curl/curl.h' *.c *.h)\" = http_client.c ]"
check "libwebsockets only in http_server.c" sh -c "[ \"\$(grep -l 'libwebsockets.h' *.c *.h)\" = http_server.c ]"
check "lua headers only in the Lua host" sh -c "[ -z \"\$(grep -l '#include <lua.h>\|#include <lauxlib.h>' *.c *.h | grep -v '^lvm.c\$\|^lapi\|^lconv')\" ]"
check "main.c is the only file with main()" sh -c "[ \"\$(grep -l '^int main(' *.c)\" = main.c ]"
cd "$RT_SOURCE_DIR"
# The store owns all SQL of the host: SQLite's header, handle and calls
# only in the store layer (runtime/store*); the tools (tools/) get store
# functions from store_tools.h, which the serving path does not include;
# store_impl.h (the handle) stays inside the layer.
host_files() { ls runtime/*.c runtime/*.h tools/*.c tools/*.h plugins/*.c plugins/*/*.c plugins/*/*.h 2>/dev/null; }
outside_store() { grep -v '^runtime/store[a-z_]*\.[ch]$'; }
none() { [ -z "$("$@")" ]; }
sqlite_header() { grep -l 'sqlite3\.h' $(host_files) | outside_store; }
sqlite_calls() { grep -l 'sqlite3 \*\|sqlite3_[a-z]\|rt_store_db' $(host_files) | outside_store; }
impl_users() { grep -l 'store_impl\.h' $(host_files) | outside_store; }
tools_store_users() { grep -l 'store_tools\.h' $(host_files) | grep -v '^tools/' | outside_store; }
check "sqlite3.h only in the store layer" none sqlite_header
check "no SQLite handle or call outside the store layer" none sqlite_calls
check "store_impl.h only in the store layer" none impl_users
check "store_tools.h only in tools/ and the store layer" none tools_store_users
# rtcore does not need rttools: no tools/ header in runtime/ or plugins/
# except in the process layer (main.c, app.c, reload.c), which is the app.
tools_in_core() {
  for h in $(cd tools && ls *.h); do
    grep -l "#include \"$h\"" runtime/*.c runtime/*.h plugins/*.c plugins/*/*.c plugins/*/*.h 2>/dev/null
  done | sort -u | grep -v '^runtime/\(main\|app\|reload\)\.c$'
}
check "no tools/ header in the serving path" none tools_in_core
# The studio (tools/studio.c, its page in tools/studio/) sits in the tools
# layer: the serving path includes none of it, and its page loads nothing
# from outside (no CDN, no external requests; the SVG namespace is a name).
studio_in_core() { grep -l '#include "studio.h"' runtime/*.c runtime/*.h plugins/*.c plugins/*/*.c 2>/dev/null | grep -v '^runtime/\(main\|app\)\.c$'; }
check "only the process layer starts the studio" none studio_in_core
studio_external() { grep -n 'https\?://\|//cdn\|@import' tools/studio/* | grep -v 'http://www.w3.org/2000/svg'; }
check "the studio page makes no external requests" none studio_external
plugins_engine() { grep -l 'engine\.h' plugins/*.c plugins/*/*.c plugins/*/*.h 2>/dev/null; }
check "plugins include nothing of the engine" none plugins_engine
check "every flow transcript is registered" sh -c "ls examples/*/tests/*.chat tests/flows/shop/tests/*.chat >/dev/null"
# Plugins (plugins/README.md): nothing of the engine, a schema and a README
# each, and their lifecycle driven by the plugin host alone.
check "no plugin includes the engine" sh -c "[ -z \"\$(grep -rl 'engine.h' plugins/)\" ]"
check "every plugin has schema.json and README.md" sh -c \
  "for p in plugins/*/; do [ -f \$p/schema.json ] && [ -f \$p/README.md ] || { echo \$p; exit 1; }; done"
check "every plugin folder is listed in plugins.c" sh -c \
  "for p in plugins/*/; do n=\$(basename \$p); grep -q \"rt_plugin_\$n\\b\" plugins/plugins.c || { echo \$n; exit 1; }; done"
check "plugin start and close are called from plugin.c only" sh -c \
  "[ -z \"\$(grep -lE -- '->(start|close)\\(' runtime/*.c plugins/*.c plugins/*/*.c tools/*.c | grep -v '^runtime/plugin.c\$')\" ]"
# No customer-, manager- or owner-facing wording in C or in the host's Lua:
# the words are the shop's (shop.json texts, the persona's Lua, prompt.md).
# Cyrillic outside comments is allowed only in what reads the shop's and
# customers' text (runtime/text*.c, the import's column names and yes/no
# words) and in the OCR's letter tables.
wording_in_c() {
  grep -nP '[\x{0400}-\x{04FF}]' runtime/*.c runtime/*.h plugins/*.c plugins/*/*.c plugins/*/*.h \
      tools/*.c tools/*.h 2>/dev/null |
    grep -vP '^\S+:\d+:\s*(/\*|\*|//)' |
    grep -v '^runtime/text[a-z_]*\.c:\|^plugins/ocr/ocr\.c:\|^tools/import\.c:'
  grep -nP '[\x{0400}-\x{04FF}]' runtime/host.lua | grep -vP '^\d+:\s*--' | sed 's|^|runtime/host.lua:|'
}
check "no wording in C or the host's Lua outside the text readers" none wording_in_c
done_tests
