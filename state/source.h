/*
 * Where configuration files come from: a directory on disk (a checkout) or a
 * git commit's tree (providers/git_src.c). The loader reads config/deploy.yml,
 * destination overlays and .kamal/secrets* through this interface only, so it
 * works the same on a working tree and on a commit.
 *
 * Paths are relative to the repository root, '/'-separated, never absolute and
 * never containing "..": source_read refuses such paths (trust boundary).
 *
 * Reading a repository file on disk goes through ONE rule, source_read_inside
 * (and source_open_inside under it), in trusted and untrusted runs alike: the
 * directory source uses it for every file, and any other module that reads a
 * file named by a repository should call it too.
 */
#ifndef PLUMB_SOURCE_H
#define PLUMB_SOURCE_H

#include <stddef.h>

#include "state/err.h"

#define SOURCE_MAX_FILE (4u << 20) /* no config file is bigger than 4 MiB */

struct source {
	/*
	 * 0 with *out (NUL-terminated, *len bytes not counting the NUL; the
	 * caller frees it, with util_free_secret when it held secrets); else a
	 * negative PLUMB_E* code (PLUMB_ENOTFOUND: nothing there) with *out
	 * NULL and the message in *err (the caller's carrier, may be NULL;
	 * never contains the file's contents).
	 */
	int (*read)(struct source *s, const char *relpath, char **out, size_t *len,
		    struct plumb_err *err);
	void (*free)(struct source *s);
	/* Directory on disk that relative paths resolve against, when there is one
	 * (commands such as $(…) run there); NULL for a commit tree. Owned by the
	 * source. */
	const char *root_dir;
	/* How to name the source in messages, e.g. "." or "repo@abc1234". Owned
	 * by the source. */
	const char *label;
};

/* A source over a directory on disk; *out is the caller's (source_free).
 * Every read goes through source_read_inside with SOURCE_MAX_FILE. */
int source_dir_new(struct source **out, const char *dir);
/* True if relpath stays inside the repository (relative, no "..", no NUL). */
int source_path_is_inside(const char *relpath);
/* True if path is dir or below it; both canonical (realpath) paths. */
int source_path_below(const char *path, const char *dir);
/* source_read's contract is s->read's (above); relpath is checked first. */
int source_read(struct source *s, const char *relpath, char **out, size_t *len,
		struct plumb_err *err);
void source_free(struct source *s);

/*
 * The rule for reading a file of a repository on disk, root/relpath:
 *   - relpath is relative without ".." (source_path_is_inside);
 *   - resolved (symlinks followed: a link that stays inside the repository is
 *     fine, as Kamal users commit them) it is still inside root — a link that
 *     leads out is refused, naming relpath;
 *   - it is a regular file (a FIFO, device, socket or directory is refused
 *     without being opened for reading in a way that could block);
 *   - it is opened O_NONBLOCK|O_NOFOLLOW on its resolved path, checked again
 *     with fstat to be the same regular file, and at most max bytes long.
 *
 * source_open_inside: 0 with *fd (the caller closes it) positioned at the
 * start. source_read_inside: 0 with *out (NUL-terminated, caller frees; use
 * util_free_secret for a secrets file) and *len. Both, on failure: PLUMB_ENOTFOUND
 * when nothing is there (also a dangling link), PLUMB_EOUTSIDE for a path or
 * link that leaves the repository or a file that is not regular,
 * PLUMB_ETOOBIG over max, else PLUMB_ERROR; the message goes in *err (the
 * caller's carrier, may be NULL; names relpath and the reason, never the
 * contents or the link's target). On failure *out / *fd are NULL / -1.
 */
int source_open_inside(const char *root, const char *relpath, size_t max, int *fd,
		       struct plumb_err *err);
int source_read_inside(const char *root, const char *relpath, size_t max, char **out, size_t *len,
		       struct plumb_err *err);

#endif
