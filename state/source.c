#include "state/source.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "state/util.h"

struct dir_source {
	struct source base;
	char *dir;
};

int source_path_is_inside(const char *relpath)
{
	const char *p = relpath;

	if (!relpath || !*relpath || relpath[0] == '/')
		return 0;
	while (*p) {
		size_t n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return 0;
		p += n;
		if (*p == '/')
			p++;
	}
	return 1;
}

static int dir_read(struct source *s, const char *relpath, char **out, size_t *len, char **err)
{
	struct dir_source *d = (struct dir_source *)s;
	char *path = xasprintf("%s/%s", d->dir, relpath);
	int rc = 0;

	if (read_file(path, SOURCE_MAX_FILE, out, len) < 0) {
		if (errno == ENOENT || errno == ENOTDIR) {
			rc = SOURCE_ENOTFOUND;
		} else {
			*err = xasprintf("%s: %s", path,
					 errno == EFBIG ? "file too large" : strerror(errno));
			rc = -1;
		}
	}
	free(path);
	return rc;
}

static void dir_free(struct source *s)
{
	struct dir_source *d = (struct dir_source *)s;
	free(d->dir);
	free(d);
}

int source_dir_new(struct source **out, const char *dir)
{
	struct dir_source *d = xcalloc(1, sizeof(*d));

	d->dir = xstrdup(dir && *dir ? dir : ".");
	d->base.read = dir_read;
	d->base.free = dir_free;
	d->base.root_dir = d->dir;
	d->base.label = d->dir;
	*out = &d->base;
	return 0;
}

int source_read(struct source *s, const char *relpath, char **out, size_t *len, char **err)
{
	*out = NULL;
	*err = NULL;
	if (!source_path_is_inside(relpath)) {
		*err = xasprintf("%s: path is outside the repository", relpath);
		return -1;
	}
	return s->read(s, relpath, out, len, err);
}

void source_free(struct source *s)
{
	if (s)
		s->free(s);
}
