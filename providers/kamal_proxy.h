/*
 * kamal-proxy's routes as `kamal-proxy list --json` prints them (the
 * observation script runs it in the kamal-proxy container: docker_obs.h),
 * parsed on the provider side so the diff reads a struct, never JSON.
 *
 * The JSON is read leniently (kamal-proxy's format has changed between
 * versions): a map service → {target|targets, …} at the top level or under
 * "services" / "Services" / "Targets" / "targets", or an array of
 * {service|name, target|targets}; a route's target is a string, or an array
 * of strings joined by ", ". Entries without a usable target are left out.
 * Every byte is the host's: at most KAMAL_PROXY_MAX_ROUTES routes are kept.
 */
#ifndef PLUMB_KAMAL_PROXY_H
#define PLUMB_KAMAL_PROXY_H

#include <stddef.h>

#include "state/err.h"
#include "state/observed.h"

#define KAMAL_PROXY_MAX_ROUTES 1024

/*
 * Parses json (NUL-terminated) into *out (a new array the caller frees with
 * obs_routes_free) and *n. Returns 0, PLUMB_EPROTOCOL when json is not JSON
 * of a known shape, PLUMB_EINVAL when json is NULL (then *out is NULL and *n
 * 0: no routes known).
 */
int kamal_proxy_parse_routes(struct obs_route **out, size_t *n, const char *json);

#endif
