/*
 * The observation script's bytes: providers/observe.sh without its comment
 * lines, embedded at build time (providers/embed.sh writes
 * build/gen/observe_script.c). A leaf header: the read-only guard
 * (providers/quote.c) compares commands with it without depending on the
 * observation code. What the script prints: providers/docker_obs.h.
 */
#ifndef PLUMB_OBSERVE_SCRIPT_H
#define PLUMB_OBSERVE_SCRIPT_H

extern const char docker_obs_script[]; /* NUL-terminated, static */
#define DOCKER_OBS_ARGV0 "plumb-observe"

#endif
