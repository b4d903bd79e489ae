/*
 * Shared front of every command: find the repository root from -c, load the
 * configuration (printing every diagnostic to stderr), and say what an
 * untrusted run turned off.
 */
#ifndef PLUMB_LOAD_H
#define PLUMB_LOAD_H

#include <stdio.h>

#include "state/config.h"

struct rec_load_opts {
	const char *config_path; /* as given with -c; default config/deploy.yml */
	const char *destination;
	int trusted;
};

struct rec_loaded {
	struct source *src;
	struct config *config;
	char *root;    /* repository root directory */
	char *relfile; /* config file relative to root */
};

/* Splits a -c path into the repository root and the file inside it: a file in
 * a directory named "config" has its root one level up (so .kamal/ is found
 * beside config/); any other file is taken relative to the current directory. */
void rec_split_config_path(const char *path, char **root, char **relfile);
/* 0 on success; on failure prints the diagnostics and returns -1. */
int rec_load(struct rec_loaded *out, const struct rec_load_opts *o);
void rec_loaded_release(struct rec_loaded *l);
/* Prints "untrusted run: turned off …" lines for what the load skipped. */
void rec_report_trust(const struct config *c, FILE *f);

#endif
