/*
 * plumb watch: options only; the loop is reconciler/watch.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reconciler/cli.h"
#include "reconciler/pipeline.h"
#include "reconciler/source_opts.h"
#include "reconciler/watch.h"
#include "state/escape.h"

#define NOTIFY_MAX 16
#define NOTIFY_FILE_MAX (64u << 10)

/* Splits s (commas, spaces, newlines; '#' starts a comment line) into urls. */
static int add_urls(struct strvec *urls, const char *s)
{
	while (s && *s) {
		size_t n;
		s += strspn(s, ", \t\r\n");
		if (*s == '#') {
			s += strcspn(s, "\n");
			continue;
		}
		n = strcspn(s, ", \t\r\n");
		if (!n)
			break;
		if (urls->n >= NOTIFY_MAX) {
			fprintf(stderr, "plumb watch: more than %d notification URLs\n", NOTIFY_MAX);
			return -1;
		}
		strvec_push_take(urls, xstrndup(s, n));
		s += n;
	}
	return 0;
}

static int read_notify_file(struct strvec *urls, const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	int rc;

	if (util_read_file(path, NOTIFY_FILE_MAX, &buf, &len) != 0) {
		esc_eprintf("plumb watch: --notify-file %s: cannot be read (or over %u bytes)\n", path,
			    NOTIFY_FILE_MAX);
		return -1;
	}
	rc = add_urls(urls, buf);
	util_free_secret(buf);
	return rc;
}

int cmd_watch(int argc, char **argv)
{
	struct rec_source_opts src = { 0 };
	struct rec_watch_opts o = { 0 };
	struct strvec urls = { 0 };
	const char *branch = NULL, *interval = NULL, *state_dir = NULL, *listen = NULL,
		   *secret_file = NULL, *notify = NULL, *notify_file = NULL, *log_format = NULL;
	int once = 0, skip_hooks = 0, rc = REC_EXIT_ERROR;
	const struct rec_extra_opt extra[] = {
		{ "branch", 'b', &branch, NULL },
		{ "interval", 0, &interval, NULL },
		{ "state-dir", 0, &state_dir, NULL },
		{ "once", 0, NULL, &once },
		{ "skip-hooks", 0, NULL, &skip_hooks },
		{ "listen", 0, &listen, NULL },
		{ "webhook-secret-file", 0, &secret_file, NULL },
		{ "notify", 0, &notify, NULL },
		{ "notify-file", 0, &notify_file, NULL },
		{ "log-format", 0, &log_format, NULL },
		{ NULL, 0, NULL, NULL },
	};
	const struct rec_source_spec spec = {
		"watch", REC_SRC_CONFIG | REC_SRC_GIT | REC_SRC_PRUNE | REC_SRC_TIMEOUT, extra, NULL,
	};

	if (rec_source_opts_parse(&src, &spec, argc, argv) != 0)
		return REC_EXIT_ERROR;
	if (!src.repo) {
		fprintf(stderr, "plumb watch: --repo PATH|URL is required (the repository to follow)\n");
		return REC_EXIT_ERROR;
	}
	if (src.ref) {
		fprintf(stderr, "plumb watch: --ref: watch follows a branch (--branch)\n");
		return REC_EXIT_ERROR;
	}
	if (interval && (rec_parse_duration(interval, &o.interval_ms) != 0 || o.interval_ms < 10)) {
		fprintf(stderr, "plumb watch: --interval: a duration of at least 10ms (60s, 5m)\n");
		return REC_EXIT_ERROR;
	}
	if (log_format && strcmp(log_format, "json") != 0 && strcmp(log_format, "text") != 0) {
		fprintf(stderr, "plumb watch: --log-format: text or json\n");
		return REC_EXIT_ERROR;
	}
	if (secret_file && !listen) {
		fprintf(stderr, "plumb watch: --webhook-secret-file needs --listen\n");
		return REC_EXIT_ERROR;
	}
	if (add_urls(&urls, notify) != 0 || add_urls(&urls, getenv("PLUMB_NOTIFY_URLS")) != 0 ||
	    (notify_file && read_notify_file(&urls, notify_file) != 0))
		goto out;
	o.repo = src.repo;
	o.branch = branch;
	o.destination = src.destination;
	o.config_path = src.config_path;
	o.state_dir = state_dir;
	o.timeout_ms = src.timeout_ms;
	o.once = once;
	o.prune = src.prune;
	o.skip_hooks = skip_hooks;
	o.allow_foreign_owner = src.allow_foreign_owner;
	o.log_json = log_format && strcmp(log_format, "json") == 0;
	o.listen = listen;
	o.webhook_secret_file = secret_file;
	o.notify = (const char *const *)urls.v;
	o.nnotify = urls.n;
	rc = rec_watch_run(&o);
out:
	for (size_t i = 0; i < urls.n; i++)
		util_free_secret(urls.v[i]);
	free(urls.v);
	return rc;
}
