/* plugins.c -- the plugins built into shopbot, in start order (closed in
 * reverse). Adding a plugin is one line here plus its folder
 * (plugins/README.md); its schema.json is compiled in by CMakeLists.txt. */
#include "console/console.h"
#include "ocr/ocr.h"
#include "llm/llm.h"
#include "telegram/telegram.h"
#include "webchat/webchat.h"

const rt_plugin *const rt_plugins[] = {
  &rt_plugin_console,
  &rt_plugin_ocr,
  &rt_plugin_llm,
  &rt_plugin_telegram,
  &rt_plugin_webchat,
  NULL,
};
