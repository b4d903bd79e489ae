/*
 * An observed state synthesised from a desired state: the hosts as they
 * would be right after a deploy of that desired state (every container
 * running, its env files written), as the observation would report them.
 *
 * `plumb plan --offline` plans a revision against another one this way
 * (a pull request against the base branch's last apply) without contacting
 * any host: both desired states are built with the same salt, so hashes of
 * equal values match as they would on a host. What only a host knows is
 * absent: the images' own defaults (nothing is subtracted), kamal-proxy's
 * routes (no switch is planned from them), the deploy lock, health.
 *
 * Invariant (tested): diffing a desired state against its own synthesis
 * gives no change.
 */
#ifndef PLUMB_SYNTH_OBS_H
#define PLUMB_SYNTH_OBS_H

#include "state/desired.h"
#include "state/observed.h"

/* The home directory the synthesised hosts report (mount sources under it). */
#define SYNTH_HOME "/home/offline"

/* Never fails; free with obs_fleet_free. Every host of ds, OBS_OK, in order. */
struct obs_fleet *obs_synthesise(const struct desired *ds, const char salt[33]);
/* Appends a host that runs nothing (a host the base revision did not have). */
void obs_add_empty_host(struct obs_fleet *f, const char *host);

#endif
