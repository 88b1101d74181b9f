/* telegram.h -- the Telegram Bot API channel (channels.telegram).
 *
 * Inbound: long polling (getUpdates) by default, or a webhook served on the
 * shop's HTTP server when channels.telegram.webhook_url is set. Each update
 * becomes one normalised event (text, /start with its payload, photo, image
 * document, contact, button, edited text); its long-poll offset moves past
 * it, or its webhook request is answered, only after the host committed it
 * (the receive ack), so a crash loses nothing and a redelivered update is a
 * duplicate of the same ext_id "tg:<update_id>".
 *
 * Outbound: one committed outbox row per send, split at 4096 characters on
 * paragraph, sentence and word boundaries, with reply or inline buttons,
 * photos by file_id, URL or upload; Telegram's answers mapped to the
 * channel.h verdicts (README.md). The token never leaves this file except
 * inside the request URLs: every log line, health message and error text
 * has it masked. */
#ifndef RT_TELEGRAM_H
#define RT_TELEGRAM_H
#include "channel.h"

/* The plugin (plugins/plugins.c lists it). */
extern const rt_plugin rt_plugin_telegram;

/* Creates the channel from its validated section (token, api_base, ...).
 * RT_OK, or RT_EINVAL with an owned message. The host starts and closes it
 * (channel.h); close frees it. */
int rt_telegram_new(const json_t *conf, rt_channel **out, char **err);

/* The largest text Telegram takes in one message, in UTF-16 code units
 * (the Bot API counts characters after parsing; UTF-16 is the stricter
 * count, so a part that fits here fits there). */
#define RT_TG_TEXT_MAX 4096

/* Splits text (UTF-8) into parts of at most max UTF-16 units each, cutting
 * at the last paragraph break, else sentence end, else space before the
 * limit (a single word longer than max is cut on a code point). Parts keep
 * their order; whitespace at a cut is dropped. Returns the number of parts
 * (at least 1) and *parts, an owned array of owned strings. */
size_t rt_telegram_split(const char *text, size_t max, char ***parts);
void rt_telegram_parts_free(char **parts, size_t n);

/* Copy of s with every occurrence of token replaced by "<token>" (and the
 * token's secret half, after the colon, too): for anything that may hold a
 * URL. The caller frees it. */
char *rt_telegram_mask(const char *s, const char *token);

/* A phone number as shared in a Telegram contact (may lack '+', may have
 * spaces) in E.164 form: "+" and digits; 8XXXXXXXXXX (Russia) becomes
 * +7XXXXXXXXXX. NULL when it has fewer than 10 or more than 15 digits. */
char *rt_telegram_phone(const char *raw);
/* Removes the downloaded photos (the files in <data_dir>/photos) whose mtime is more
 * than keep_days before now_s; keep_days <= 0 keeps them. *removed counts
 * the files removed. */
void rt_telegram_prune_photos(const char *data_dir, int keep_days, int64_t now_s,
                              size_t *removed);
#endif
