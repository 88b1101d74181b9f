/* console.h -- the terminal channel behind `shopbot chat`.
 *
 * Customer lines come from stdin (a terminal, a pipe or a file), bot
 * messages go to stdout: one message per line, continuation lines of a
 * multi-line message indented by two spaces, messages to other chats
 * (the managers) prefixed with "[to CHAT]". Control characters in what is
 * printed are shown, not obeyed (see console.c). Lines starting with "/manager
 * take" or "/manager release" act as the shop's manager on this chat. */
#ifndef RT_CONSOLE_H
#define RT_CONSOLE_H
#include "channel.h"
#include <uv.h>

typedef struct rt_console rt_console;

/* Customer ids typed on the command line (`chat --user ID`): 1 to
 * RT_CONSOLE_USER_MAX characters of A-Z a-z 0-9 . _ - + @ -- enough for a
 * phone number, an e-mail-like name or a channel's numeric id, and nothing
 * that could confuse a terminal, a log line or a file name. */
#define RT_CONSOLE_USER_MAX 512
/* NULL when user is a valid id, else a static message for a usage error. */
const char *rt_console_user_problem(const char *user);

rt_console *rt_console_new(uv_loop_t *loop, const char *user);
rt_channel *rt_console_channel(rt_console *c);
/* Starts reading stdin into the engine; on_eof(ud) runs once input ends. */
int rt_console_start(rt_console *c, rt_engine *e, void (*on_eof)(void *ud), void *ud, char **err);
/* Closes the stdin handle; done(ud) after it is closed. */
void rt_console_close(rt_console *c, void (*done)(void *ud), void *ud);
#endif
