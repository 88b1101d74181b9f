/* campaign_cfg.h -- rt_campaign_opts filled from shop.json. */
#ifndef RT_CAMPAIGN_CFG_H
#define RT_CAMPAIGN_CFG_H
#include "campaign.h"
#include "config.h"

/* Defaults for campaign name at now_ms, then shop.json's timezone, working
 * hours, retention and gifts settings. RT_EINVAL with *err on a bad time. */
int rt_campaign_opts_config(rt_campaign_opts *o, const rt_config *cfg, const char *name,
                            int64_t now_ms, char **err);
#endif
