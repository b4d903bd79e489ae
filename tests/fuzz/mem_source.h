/*
 * An in-memory struct source for the fuzzer and the regression test: the
 * input holds config/deploy.yml, optionally followed by a line
 * "#--- secrets ---" and the text of .kamal/secrets.
 */
#ifndef PLUMB_FUZZ_MEM_SOURCE_H
#define PLUMB_FUZZ_MEM_SOURCE_H

#include <stdlib.h>
#include <string.h>

#include "state/source.h"
#include "state/util.h"

struct mem_source {
	struct source base;
	char *deploy;
	size_t deploy_len;
	char *secrets;
	size_t secrets_len;
};

static int mem_read(struct source *s, const char *relpath, char **out, size_t *len, struct plumb_err *err)
{
	struct mem_source *m = (struct mem_source *)s;
	(void)err;
	if (strcmp(relpath, "config/deploy.yml") == 0) {
		*out = xstrndup(m->deploy, m->deploy_len);
		*len = m->deploy_len;
		return 0;
	}
	if (m->secrets && strcmp(relpath, ".kamal/secrets") == 0) {
		*out = xstrndup(m->secrets, m->secrets_len);
		*len = m->secrets_len;
		return 0;
	}
	return PLUMB_ENOTFOUND;
}

static void mem_free(struct source *s)
{
	struct mem_source *m = (struct mem_source *)s;
	free(m->deploy);
	free(m->secrets);
	free(m);
}

static struct source *mem_source_new(const char *data, size_t size)
{
	static const char sep[] = "\n#--- secrets ---\n";
	struct mem_source *m = xcalloc(1, sizeof(*m));
	const char *cut = memmem(data, size, sep, sizeof(sep) - 1);

	if (cut) {
		size_t off = (size_t)(cut - data) + sizeof(sep) - 1;
		m->deploy_len = (size_t)(cut - data);
		m->secrets_len = size - off;
		m->secrets = xstrndup(data + off, m->secrets_len);
	} else {
		m->deploy_len = size;
	}
	m->deploy = xstrndup(data, m->deploy_len);
	m->base.read = mem_read;
	m->base.free = mem_free;
	m->base.root_dir = NULL;
	m->base.label = "fuzz input";
	return &m->base;
}

#endif
