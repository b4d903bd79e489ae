#include "state/source.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

int source_path_below(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (strcmp(dir, "/") == 0)
		return path[0] == '/';
	return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

int source_open_inside(const char *root, const char *relpath, size_t max, int *fd,
		       struct plumb_err *err)
{
	char *canon_root = NULL, *full = NULL, *canon = NULL;
	struct stat st, fst;
	int rc = PLUMB_ERROR, f = -1;

	*fd = -1;
	if (!source_path_is_inside(relpath))
		return plumb_err_set(err, PLUMB_EOUTSIDE, "%s: path is outside the repository",
				     relpath ? relpath : "(null)");
	canon_root = realpath(root && *root ? root : ".", NULL);
	if (!canon_root) {
		if (errno == ENOENT || errno == ENOTDIR)
			rc = plumb_err_set(err, PLUMB_ENOTFOUND, "%s: no repository directory", relpath);
		else
			plumb_err_set(err, rc, "%s: repository directory: %s", relpath, strerror(errno));
		goto out;
	}
	full = xasprintf("%s/%s", canon_root, relpath);
	canon = realpath(full, NULL);
	if (!canon) {
		if (errno == ENOENT || errno == ENOTDIR)
			rc = plumb_err_set(err, PLUMB_ENOTFOUND, "%s: no such file", relpath);
		else
			plumb_err_set(err, rc, "%s: %s", relpath, strerror(errno));
		goto out;
	}
	if (!source_path_below(canon, canon_root)) {
		rc = plumb_err_set(err, PLUMB_EOUTSIDE,
				   "%s: a symbolic link leads outside the repository; refused", relpath);
		goto out;
	}
	/* lstat first: opening a device or FIFO can block or have side effects */
	if (lstat(canon, &st) < 0) {
		plumb_err_set(err, rc, "%s: %s", relpath, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = plumb_err_set(err, PLUMB_EOUTSIDE, "%s: not a regular file (%s); refused", relpath,
				   S_ISDIR(st.st_mode)    ? "a directory"
				   : S_ISFIFO(st.st_mode) ? "a FIFO"
				   : S_ISSOCK(st.st_mode) ? "a socket"
							  : "a device");
		goto out;
	}
	f = open(canon, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
	if (f < 0) {
		plumb_err_set(err, rc, "%s: %s", relpath, strerror(errno));
		goto out;
	}
	/* the same regular file as checked (a swap in between is refused) */
	if (fstat(f, &fst) < 0 || !S_ISREG(fst.st_mode) || fst.st_dev != st.st_dev ||
	    fst.st_ino != st.st_ino) {
		plumb_err_set(err, rc, "%s: changed while being opened; refused", relpath);
		goto out;
	}
	if ((unsigned long long)fst.st_size > max) {
		rc = plumb_err_set(err, PLUMB_ETOOBIG, "%s: file too large (more than %zu bytes)",
				   relpath, max);
		goto out;
	}
	*fd = f;
	f = -1;
	rc = 0;
out:
	if (f >= 0)
		close(f);
	free(canon_root);
	free(full);
	free(canon);
	return rc;
}

int source_read_inside(const char *root, const char *relpath, size_t max, char **out, size_t *len,
		       struct plumb_err *err)
{
	struct stat st;
	char *buf = NULL;
	size_t size, got = 0;
	int fd = -1, rc;

	*out = NULL;
	if (len)
		*len = 0;
	rc = source_open_inside(root, relpath, max, &fd, err);
	if (rc < 0)
		return rc;
	/* One buffer of the file's size (no reallocation leaves a copy of a
	 * secret behind); a file that grows meanwhile is refused. */
	if (fstat(fd, &st) < 0) {
		rc = plumb_err_set(err, PLUMB_ERROR, "%s: %s", relpath, strerror(errno));
		goto out;
	}
	size = (size_t)st.st_size;
	buf = xmalloc(size + 2);
	while (got < size + 1) {
		ssize_t n = read(fd, buf + got, size + 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = plumb_err_set(err, PLUMB_ERROR, "%s: %s", relpath, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got > size) {
		rc = plumb_err_set(err, PLUMB_ERROR, "%s: changed while being read; refused", relpath);
		goto out;
	}
	buf[got] = '\0';
	if (len)
		*len = got;
	*out = buf;
	buf = NULL;
out:
	if (buf) {
		explicit_bzero(buf, size + 2);
		free(buf);
	}
	close(fd);
	return rc;
}

static int dir_read(struct source *s, const char *relpath, char **out, size_t *len,
		    struct plumb_err *err)
{
	struct dir_source *d = (struct dir_source *)s;

	return source_read_inside(d->dir, relpath, SOURCE_MAX_FILE, out, len, err);
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

int source_read(struct source *s, const char *relpath, char **out, size_t *len,
		struct plumb_err *err)
{
	*out = NULL;
	if (!source_path_is_inside(relpath))
		return plumb_err_set(err, PLUMB_EOUTSIDE, "%s: path is outside the repository",
				     relpath ? relpath : "(null)");
	return s->read(s, relpath, out, len, err);
}

void source_free(struct source *s)
{
	if (s)
		s->free(s);
}
