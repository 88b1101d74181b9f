/* console.h -- the terminal channel behind `shopbot chat`.
 *
 * Customer lines come from stdin (a terminal, a pipe or a file), bot
 * messages go to stdout: one message per line, continuation lines of a
 * multi-line message indented by two spaces, messages to other chats
 * (the managers) prefixed with "[to CHAT]". Lines starting with "/manager
 * take" or "/manager release" act as the shop's manager on this chat. */
#ifndef RT_CONSOLE_H
#define RT_CONSOLE_H
#include "channel.h"
#include <uv.h>

typedef struct rt_console rt_console;

rt_console *rt_console_new(uv_loop_t *loop, const char *user);
rt_channel *rt_console_channel(rt_console *c);
/* Starts reading stdin into the engine; on_eof(ud) runs once input ends. */
int rt_console_start(rt_console *c, rt_engine *e, void (*on_eof)(void *ud), void *ud, char **err);
/* Closes the stdin handle; done(ud) after it is closed. */
void rt_console_close(rt_console *c, void (*done)(void *ud), void *ud);
#endif
