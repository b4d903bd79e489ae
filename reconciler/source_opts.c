#include "reconciler/source_opts.h"

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "reconciler/cli.h"
#include "reconciler/pipeline.h"
#include "state/err.h"

enum src_kind {
	SRC_STR,      /* a value, kept as given */
	SRC_SET,      /* a switch that sets the int to 1 */
	SRC_CLEAR,    /* a switch that sets it to 0 (--untrusted) */
	SRC_DURATION, /* a duration, in ms */
};

static const struct src_opt {
	const char *name;
	char short_name;
	unsigned group;
	enum src_kind kind;
	size_t off; /* of the field in struct rec_source_opts */
} src_opts[] = {
	{ "config", 'c', REC_SRC_CONFIG, SRC_STR, offsetof(struct rec_source_opts, config_path) },
	{ "destination", 'd', REC_SRC_CONFIG, SRC_STR, offsetof(struct rec_source_opts, destination) },
	{ "repo", 0, REC_SRC_GIT, SRC_STR, offsetof(struct rec_source_opts, repo) },
	{ "ref", 0, REC_SRC_GIT, SRC_STR, offsetof(struct rec_source_opts, ref) },
	{ "allow-foreign-owner", 0, REC_SRC_GIT, SRC_SET, offsetof(struct rec_source_opts, allow_foreign_owner) },
	{ "base", 0, REC_SRC_BASE, SRC_STR, offsetof(struct rec_source_opts, base) },
	{ "version", 0, REC_SRC_VERSION, SRC_STR, offsetof(struct rec_source_opts, version) },
	{ "trusted", 0, REC_SRC_TRUSTED, SRC_SET, offsetof(struct rec_source_opts, trusted) },
	{ "untrusted", 0, REC_SRC_UNTRUSTED, SRC_CLEAR, offsetof(struct rec_source_opts, trusted) },
	{ "prune", 0, REC_SRC_PRUNE, SRC_SET, offsetof(struct rec_source_opts, prune) },
	{ "timeout", 0, REC_SRC_TIMEOUT, SRC_DURATION, offsetof(struct rec_source_opts, timeout_ms) },
};

#define NSRC (sizeof(src_opts) / sizeof(src_opts[0]))
#define MAX_OPTS 32 /* source options and a command's own */

/* What getopt_long returns for an option: its letter, else a code past every letter. */
static int opt_val(char short_name, size_t i)
{
	return short_name ? (unsigned char)short_name : 256 + (int)i;
}

static void add_short(char *s, size_t *n, char c, int has_arg)
{
	if (!c)
		return;
	s[(*n)++] = c;
	if (has_arg)
		s[(*n)++] = ':';
	s[*n] = '\0';
}

/* Stores the value of source option so (optarg: its value); 0 or PLUMB_EINVAL. */
static int set_src(struct rec_source_opts *out, const char *cmd, const struct src_opt *so)
{
	char *field = (char *)out + so->off;

	switch (so->kind) {
	case SRC_STR: *(const char **)(void *)field = optarg; break;
	case SRC_SET: *(int *)(void *)field = 1; break;
	case SRC_CLEAR: *(int *)(void *)field = 0; break;
	case SRC_DURATION:
		if (rec_parse_duration(optarg, (int *)(void *)field) < 0) {
			fprintf(stderr, "plumb %s: --%s '%s': want a duration like 90s, 5m, 1500ms\n", cmd,
				so->name, optarg);
			return PLUMB_EINVAL;
		}
		break;
	}
	return 0;
}

static int parse(struct rec_source_opts *out, const struct rec_source_spec *spec, int argc, char **argv)
{
	struct option lo[MAX_OPTS + 1];
	/* what each entry of lo is: a source option (index) or an extra */
	const struct src_opt *src[MAX_OPTS];
	const struct rec_extra_opt *ext[MAX_OPTS];
	char shorts[2 * MAX_OPTS + 1] = "";
	size_t n = 0, ns = 0;
	int ch;

	for (size_t i = 0; i < NSRC; i++) {
		if (!(spec->which & src_opts[i].group))
			continue;
		int has_arg = src_opts[i].kind == SRC_STR || src_opts[i].kind == SRC_DURATION;
		lo[n] = (struct option){ src_opts[i].name, has_arg ? required_argument : no_argument, NULL,
					 opt_val(src_opts[i].short_name, n) };
		add_short(shorts, &ns, src_opts[i].short_name, has_arg);
		src[n] = &src_opts[i];
		ext[n++] = NULL;
	}
	for (const struct rec_extra_opt *x = spec->extra; x && x->name; x++) {
		if (n == MAX_OPTS) {
			fprintf(stderr, "plumb %s: too many options\n", spec->cmd);
			return PLUMB_EINVAL;
		}
		lo[n] = (struct option){ x->name, x->value ? required_argument : no_argument, NULL,
					 opt_val(x->short_name, n) };
		add_short(shorts, &ns, x->short_name, x->value != NULL);
		src[n] = NULL;
		ext[n++] = x;
	}
	lo[n] = (struct option){ NULL, 0, NULL, 0 };

	optind = 0; /* glibc: start afresh, also after a parse that stopped inside "-yc" */
	while ((ch = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
		size_t i = 0;

		while (i < n && lo[i].val != ch)
			i++;
		if (i == n)
			return PLUMB_EINVAL; /* getopt said what (unknown option, missing value) */
		if (src[i]) {
			if (set_src(out, spec->cmd, src[i]) < 0)
				return PLUMB_EINVAL;
		} else if (ext[i]->value) {
			*ext[i]->value = optarg;
		} else {
			*ext[i]->flag = 1;
		}
	}
	if (spec->operand && !*spec->operand && optind < argc)
		*spec->operand = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "plumb %s: unexpected argument '%s'\n", spec->cmd, argv[optind]);
		return PLUMB_EINVAL;
	}
	return 0;
}

int rec_source_opts_parse(struct rec_source_opts *out, const struct rec_source_spec *spec, int argc,
			  char **argv)
{
	const struct rec_command *c;

	memset(out, 0, sizeof(*out));
	out->trusted = (spec->which & REC_SRC_UNTRUSTED) != 0;
	if (parse(out, spec, argc, argv) == 0)
		return 0;
	c = rec_find_command(spec->cmd);
	if (c)
		rec_print_usage(c, stderr);
	return PLUMB_EINVAL;
}
