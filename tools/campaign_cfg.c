/* campaign_cfg.c -- campaign options from shop.json, shared by the
 * `campaign` command and the transcript runner. */
#include "campaign_cfg.h"
#include <stdio.h>

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
  return RT_OK;
}
