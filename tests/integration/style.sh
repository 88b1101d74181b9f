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
check "lua headers only in the Lua host" sh -c "[ -z \"\$(grep -l '#include <lua.h>\|#include <lauxlib.h>' *.c *.h | grep -v '^lvm.c\$\|^lapi')\" ]"
check "SQLite only in the store layer" sh -c "[ -z \"\$(grep -l 'sqlite3.h' *.c | grep -v '^store.c\$\|^import.c\$\|^campaign.c\$\|^stats.c\$\|^transcript.c\$')\" ]"
check "main.c is the only file with main()" sh -c "[ \"\$(grep -l '^int main(' *.c)\" = main.c ]"
cd "$RT_SOURCE_DIR"
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
done_tests
