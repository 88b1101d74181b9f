/* campaign_cfg.c -- campaign options from shop.json, shared by the
 * `campaign` command and the transcript runner. */
#include "campaign_cfg.h"
#include <stdio.h>
#include <string.h>

int rt_campaign_opts_config(rt_campaign_opts *o, const rt_config *cfg, const char *name,
                            int64_t now_ms, char **err) {
  rt_campaign_opts_default(o, name, now_ms);
  o->tz = rt_config_str(cfg, "timezone", "Europe/Moscow");
  json_t *days = rt_config_get(cfg, "working_hours.days");
  if (json_is_array(days)) {
    o->days_mask = 0;
    size_t i;
    json_t *d;
    json_array_foreach(days, i, d) {
      json_int_t v = json_integer_value(d);
      if (v >= 1 && v <= 7) o->days_mask |= 1u << v;
    }
  }
  const char *from = rt_config_str(cfg, "working_hours.from", "09:00");
  const char *to = rt_config_str(cfg, "working_hours.to", "19:00");
  o->from_min = rt_parse_hhmm(from);
  o->to_min = rt_parse_hhmm(to);
  if (o->from_min < 0 || o->to_min < 0) {
    if (err) *err = rt_xasprintf("working_hours: bad time \"%s\"", o->from_min < 0 ? from : to);
    return RT_EINVAL;
  }
  o->idle_days = (int)rt_config_int(cfg, "retention.idle_days", 90);
  o->cooldown_days = (int)rt_config_int(cfg, "retention.cooldown_days", 30);
  o->rate_per_minute = (int)rt_config_int(cfg, "retention.rate_per_minute", 20);
  o->after_days = (int)rt_config_int(cfg, "gifts.after_days", 3);
  /* Only a WhatsApp channel that is switched on can reach a bare phone;
   * otherwise such contacts go to the console, where a person plays them. */
  o->phone_channel = rt_config_bool(cfg, "channels.whatsapp.enabled", 0) ? "whatsapp" : "console";
  /* A shop that switched the console off (a Telegram-only bot) has nobody
   * to play a bare phone's check-in: such customers are unreachable
   * ("no_address" in the report), not scheduled where nothing sends. */
  if (strcmp(o->phone_channel, "console") == 0 && !rt_config_bool(cfg, "channels.console.enabled", 1))
    o->phone_channel = NULL;
  /* Addresses are used on the channels the shop has (a section under
   * "channels" not switched off): Telegram first, then WhatsApp, then the
   * others in the order shop.json lists them. A message to a channel the
   * bot does not run would wait forever. */
  json_t *chans = rt_config_get(cfg, "channels");
  size_t n = 0;
  static const char *const first[] = {"telegram", "whatsapp"};
  for (int pass = 0; pass < 3 && json_is_object(chans); pass++) {
    const char *name;
    json_t *v;
    json_object_foreach(chans, name, v) {
      if (n >= sizeof o->channel_list / sizeof *o->channel_list - 1) break;
      bool is_first = strcmp(name, first[0]) == 0 || strcmp(name, first[1]) == 0;
      if (pass < 2 ? strcmp(name, first[pass]) != 0 : is_first) continue;
      if (strcmp(name, "console") == 0 || !json_is_object(v)) continue;
      if (json_is_false(json_object_get(v, "enabled"))) continue;
      o->channel_list[n++] = name;
    }
  }
  o->channel_list[n] = NULL;
  o->channels = o->channel_list;
  return RT_OK;
}
