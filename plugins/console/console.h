/* console.h -- the terminal channel behind `shopbot chat`.
 *
 * Customer lines come from stdin (a terminal, a pipe or a file), bot
 * messages go to stdout: one message per line, continuation lines of a
 * multi-line message indented by two spaces, messages to other chats
 * (the managers) prefixed with "[to CHAT]". Control characters in what is
 * printed are shown, not obeyed (see console.c). Lines starting with "/manager
 * take" or "/manager release" act as the shop's manager on this chat; "/new"
 * starts the chat over. While the chat is with a manager the console says
 * so on stderr, at start and with each line typed. */
#ifndef RT_CONSOLE_H
#define RT_CONSOLE_H
#include "channel.h"
#include "integration.h"

typedef struct rt_console rt_console;

/* Customer ids typed on the command line (`chat --user ID`): 1 to
 * RT_CONSOLE_USER_MAX characters of A-Z a-z 0-9 . _ - + @ -- enough for a
 * phone number, an e-mail-like name or a channel's numeric id, and nothing
 * that could confuse a terminal, a log line or a file name. */
#define RT_CONSOLE_USER_MAX 512
/* NULL when user is a valid id, else a static message for a usage error. */
const char *rt_console_user_problem(const char *user);

/* A console channel for the customer user. With on_eof, start reads stdin
 * (`chat`) and on_eof(ud) runs once input ends; without, it only prints
 * (`run`). fresh (`chat --fresh`): a conversation the chat already has is
 * started over first. The rest goes through the channel (channel.h): the
 * host starts and closes it; close frees it. */
rt_console *rt_console_new(const char *user, bool fresh, void (*on_eof)(void *ud), void *ud);
rt_channel *rt_console_channel(rt_console *c);

/* The plugin (plugins/plugins.c): `run`'s printing console, created when
 * channels.console.enabled (default true). */
extern const rt_plugin rt_plugin_console;
#endif
