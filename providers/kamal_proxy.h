/*
 * kamal-proxy's routes as `kamal-proxy list` prints them (the observation
 * script runs it in the kamal-proxy container: docker_obs.h), parsed on the
 * provider side so the diff reads a struct.
 *
 * kamal-proxy prints a table (it has no JSON output): every cell wrapped in
 * a colour escape, the header's cells (italic) first — Service, Host,
 * [Path,] Target, State, TLS —, then as many cells per service; rows may
 * arrive joined by blanks. The Service and Target columns are read, by the
 * header's names. Versions that pad every cell to a fixed width and cut
 * longer text: a cell filled to its last column may have been cut, so such
 * a table is not read (PLUMB_EPROTOCOL: routes unknown, never a guess).
 *
 * JSON (what a stand-in or a later version may print) is read leniently: a
 * map service → {target|targets, …} at the top level or under "services" /
 * "Services" / "Targets" / "targets", or an array of {service|name,
 * target|targets}; a route's target is a string, or an array of strings
 * joined by ", ". Entries without a usable target are left out.
 * Every byte is the host's: at most KAMAL_PROXY_MAX_ROUTES routes are kept.
 */
#ifndef PLUMB_KAMAL_PROXY_H
#define PLUMB_KAMAL_PROXY_H

#include <stddef.h>

#include "state/err.h"
#include "state/observed.h"

#define KAMAL_PROXY_MAX_ROUTES 1024

/*
 * Parses text (NUL-terminated: the table, or JSON) into *out (a new array
 * the caller frees with obs_routes_free) and *n. Returns 0, PLUMB_EPROTOCOL
 * when text is neither of a known shape, PLUMB_EINVAL when it is NULL (then
 * *out is NULL and *n 0: no routes known).
 */
int kamal_proxy_parse_routes(struct obs_route **out, size_t *n, const char *text);

#endif
