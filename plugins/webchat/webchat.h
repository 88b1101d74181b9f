/* webchat.h -- the web chat channel: a chat page and a websocket on the
 * shop's HTTP server (plugins/webchat/README.md).
 *
 * The page (static/: plain HTML, CSS and JS, compiled in) is served at
 * channels.webchat.path ("/"), its websocket at <path>ws. Each browser gets
 * a visitor id in a signed cookie; the id is the chat id, so a reload goes
 * on with the same conversation, and a cookie whose signature does not
 * verify is refused. A page framed on another site, its cookie blocked,
 * keeps the same signed value as a token in its own storage and says it in
 * its first websocket message (hello); a token that does not verify gets
 * a new visitor. Messages carry ids both ways: the customer's are
 * acknowledged after the receive commit (a resend after a drop is the same
 * ext_id, so the inbox drops the duplicate), the bot's are DELIVERED only
 * when the browser acknowledges them, and resent to a socket that opens
 * for the visitor meanwhile. Photos go up as HTTP POSTs into the plugin's
 * data folder and reach the flow as ev.photos. */
#ifndef RT_WEBCHAT_H
#define RT_WEBCHAT_H
#include "channel.h"

extern const rt_plugin rt_plugin_webchat;

typedef struct rt_webchat rt_webchat;

/* Creates the channel from its section (validated by schema.json, or NULL
 * for the defaults). RT_OK or RT_EINVAL with *err (owned). */
int rt_webchat_new(const json_t *conf, rt_webchat **out, char **err);
rt_channel *rt_webchat_channel(rt_webchat *w);

/* ---- the parts below are the protocol, exposed for the unit tests ---- */

/* "<vid>.<sig>" for vid under secret (owned). vid is 32 lower-case hex. */
char *rt_webchat_cookie_make(const char *secret, const char *vid);
/* A token (the cookie's value, n bytes, not NUL-terminated maybe): true and
 * vid when its signature verifies under secret. */
bool rt_webchat_token_check(const char *secret, const char *token, size_t n, char vid[33]);
/* Reads the visitor cookie out of a Cookie header (NULL ok): true and vid
 * (33 bytes) when a shopbot_vid cookie carries a signature that verifies. */
bool rt_webchat_cookie_check(const char *secret, const char *cookie_header, char vid[33]);
/* "jpeg", "png", "gif", "webp" by the file's first bytes, or NULL. */
const char *rt_webchat_image_kind(const unsigned char *p, size_t n);
/* True when origin may open the websocket: listed in allowed (a JSON array
 * of strings; "*" takes any), or the page's own origin (http://<host> or
 * https://<host>), which a page framed on a listed site uses. NULL origin (not a browser):
 * true. */
bool rt_webchat_origin_ok(const json_t *allowed, const char *origin, const char *host);
#endif
