/* What core/config.c (defaults, flags, the limits table) shares with core/config_file.c
 * (config files). Nothing else includes this. */
#ifndef HS_CONFIG_INTERNAL_H
#define HS_CONFIG_INTERNAL_H

#include <stddef.h>

#include "core/config.h"

enum {
    SET_LOG_LEVEL = 1 << 0,
    SET_MAX_CONNECTIONS = 1 << 1,
    SET_IDLE_TIMEOUT = 1 << 2,
    SET_GRACE = 1 << 3,
    SET_WORKERS = 1 << 4,
    SET_SHARED = 1 << 5,
    /* Bits from 1 << 8 on belong to the entries of `limits` below, in order. */
};

/* The limits settings: one flag, one config key, one field each. */
enum limit_kind {
    LIMIT_SECONDS, /* unsigned ms; seconds with decimals on input */
    LIMIT_COUNT,   /* unsigned */
    LIMIT_SIZE,    /* size_t bytes; k, m, g suffixes on input */
};

struct limit_setting {
    const char *flag;
    const char *key;
    enum limit_kind kind;
    size_t offset;          /* of the field in struct hs_config */
    size_t max;             /* sizes: largest value accepted, or 0 for no bound */
    const char *arg, *help; /* for --help */
};

/* The limits settings, in the order of their LIMIT_BIT; hs__config_n_limits entries. */
extern const struct limit_setting hs__config_limits[];
extern const size_t hs__config_n_limits;
#define N_LIMITS hs__config_n_limits
#define LIMIT_BIT(i) (1u << (8 + (i)))

/* A size: digits with an optional k, m or g suffix (powers of 1024). Returns 0, or -1 when s
 * is not one. */
int hs__config_parse_size(const char *s, size_t *out);

/* Sets dictionary name (nl bytes, not terminated) to size bytes (and max_value, 0: the
 * default), replacing an earlier setting of the same name unless that came from the command
 * line (from_cli) and this does not. what names the source for err. Returns 0, or -1 with err
 * set. */
int hs__config_add_shared(struct hs_config *cfg, const char *name, size_t nl, size_t size,
                          size_t max_value, int from_cli, const char *what, char *err,
                          size_t errlen);

/* Stores text (a flag's value, or a config value turned into text) into hs__config_limits[i]'s
 * field; name is the flag or key for err. Returns 0, or -1 with err set. */
int hs__config_set_limit(struct hs_config *cfg, size_t i, const char *text, const char *name,
                         char *err, size_t errlen);

/* A new service running script (copied, path cleaned). Returns the spec, owned by cfg, or NULL
 * when HS_CONFIG_MAX_SERVICES are taken. */
struct hs_service_spec *hs__config_add_service(struct hs_config *cfg, const char *script);

/* Sets option key (kl bytes) of service s to value (copied), replacing an earlier one. Returns
 * 0, or -1 when HS_SCRIPT_MAX_OPTIONS are taken. */
int hs__config_add_option(struct hs_service_spec *s, const char *key, size_t kl, const char *value);

/* Adds listener url to service s. Returns 0, or -1 with err set. */
int hs__config_apply_listen(struct hs_service_spec *s, const char *url, char *err, size_t errlen);

/* Sets service s's sandbox (standard, strict or trusted). Returns 0, or -1 with err set. */
int hs__config_apply_sandbox(struct hs_service_spec *s, const char *name, char *err, size_t errlen);

/* Allows module name in every sandbox. Returns 0, or -1 with err set. */
int hs__config_add_allowed_module(struct hs_config *cfg, const char *name, char *err,
                                  size_t errlen);

/* Sets service s's default framing (a framing spec). Returns 0, or -1 with err set. */
int hs__config_apply_framing(struct hs_service_spec *s, const char *spec, char *err, size_t errlen);

#endif
