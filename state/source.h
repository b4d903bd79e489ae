/*
 * Where configuration files come from: a directory on disk (a checkout) or a
 * git commit's tree (providers/git_src.c). The loader reads config/deploy.yml,
 * destination overlays and .kamal/secrets* through this interface only, so it
 * works the same on a working tree and on a commit.
 *
 * Paths are relative to the repository root, '/'-separated, never absolute and
 * never containing "..": source_read refuses such paths (trust boundary).
 */
#ifndef PLUMB_SOURCE_H
#define PLUMB_SOURCE_H

#include <stddef.h>

#define SOURCE_ENOTFOUND (-3)
#define SOURCE_MAX_FILE (4u << 20) /* no config file is bigger than 4 MiB */

struct source {
	/* 0, SOURCE_ENOTFOUND, or -1 with *err set (caller frees). */
	int (*read)(struct source *s, const char *relpath, char **out, size_t *len, char **err);
	void (*free)(struct source *s);
	/* Directory on disk that relative paths resolve against, when there is one
	 * (commands such as $(…) run there); NULL for a commit tree. */
	const char *root_dir;
	/* How to name the source in messages, e.g. "." or "repo@abc1234". */
	const char *label;
};

/* A source over a directory on disk. */
int source_dir_new(struct source **out, const char *dir);
/* True if relpath stays inside the repository (relative, no "..", no NUL). */
int source_path_is_inside(const char *relpath);
int source_read(struct source *s, const char *relpath, char **out, size_t *len, char **err);
void source_free(struct source *s);

#endif
