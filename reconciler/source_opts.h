/*
 * The options that say where a command's configuration comes from and how far
 * it is trusted (-c, -d, --repo, --ref, --base, --version, --trusted,
 * --untrusted, --prune, --allow-foreign-owner, --timeout): one parser for
 * plan, hosts, lock, apply, rollback and config. Each command names the
 * groups it takes (REC_SRC_*) and adds its own options (struct
 * rec_extra_opt); what is parsed is the pipeline's src (reconciler/pipeline.h).
 *
 * Every string in struct rec_source_opts points into argv (nothing to free).
 */
#ifndef PLUMB_SOURCE_OPTS_H
#define PLUMB_SOURCE_OPTS_H

#include "state/err.h" /* PLUMB_EINVAL */

/* The option groups a command takes. */
#define REC_SRC_CONFIG    0x01 /* -c/--config FILE, -d/--destination D */
#define REC_SRC_GIT       0x02 /* --repo PATH|URL, --ref REF, --allow-foreign-owner */
#define REC_SRC_BASE      0x04 /* --base REF */
#define REC_SRC_VERSION   0x08 /* --version V */
#define REC_SRC_TRUSTED   0x10 /* --trusted */
/* --untrusted; a command that takes it trusts its source unless told not to
 * (apply and rollback: DESIGN) */
#define REC_SRC_UNTRUSTED 0x20
#define REC_SRC_PRUNE     0x40 /* --prune */
#define REC_SRC_TIMEOUT   0x80 /* --timeout D */

struct rec_source_opts {
	const char *config_path; /* -c; NULL: config/deploy.yml */
	const char *destination;
	const char *repo;
	const char *ref;
	const char *base;
	const char *version;
	int trusted;
	int prune;
	int allow_foreign_owner;
	int timeout_ms;          /* 0: the pipeline's default */
};

/* One option of a command's own, beside the source options. */
struct rec_extra_opt {
	const char *name;   /* the long name, without "--"; NULL ends a table */
	char short_name;    /* a one-letter alias, or 0 */
	const char **value; /* the option takes a value, stored here (a pointer into argv) … */
	int *flag;          /* … or it is a switch, which sets *flag to 1 */
};

struct rec_source_spec {
	const char *cmd;                   /* "plan": in messages, and whose usage is printed */
	unsigned which;                    /* the REC_SRC_* groups the command takes */
	const struct rec_extra_opt *extra; /* its own options, or NULL */
	/* One optional operand goes here when *operand is still NULL after the
	 * options (rollback's VERSION, unless --version gave it); NULL: the
	 * command takes no operand. */
	const char **operand;
};

/*
 * Parses argv[1..] (argv[0] names the command, as getopt reports it) into *out
 * (cleared first) and the spec's extras. On an unknown option, a missing
 * value, a bad duration or an unexpected operand it prints what is wrong and
 * the command's usage to stderr and returns PLUMB_EINVAL; else 0.
 */
int rec_source_opts_parse(struct rec_source_opts *out, const struct rec_source_spec *spec, int argc,
			  char **argv);

/* Help lines of the source options, for the usage texts of reconciler/cli.c. */
#define REC_HELP_CONFIG                                                               \
	"  -c, --config FILE   deploy file (default: config/deploy.yml)\n"              \
	"  -d, --destination D merge config/deploy.D.yml over it\n"
#define REC_HELP_GIT                                                                  \
	"      --repo PATH|URL read the configuration from this git repository\n"       \
	"      --ref REF       ... at this ref (default HEAD)\n"
#define REC_HELP_TIMEOUT                                                              \
	"      --timeout D     deadline of the whole run (90s, 5m, 1500ms; default\n"   \
	"                      5m): hosts not observed by then are unknown\n"

#endif
