/*
 * Shared front of every command: find the repository root from -c, load the
 * configuration (printing every diagnostic to stderr), and say what an
 * untrusted run turned off.
 */
#ifndef PLUMB_LOAD_H
#define PLUMB_LOAD_H

#include <stdio.h>

#include "state/config.h"
#include "state/err.h"

struct rec_load_opts {
	const char *config_path; /* as given with -c; default config/deploy.yml */
	const char *destination;
	int trusted;
	FILE *log;               /* where diagnostics go; NULL -> stderr */
};

struct rec_loaded {
	struct source *src;
	struct config *config;
	char *root;    /* repository root directory */
	char *relfile; /* config file relative to root */
};

/*
 * The options of `config`: -c/--config FILE, -d/--destination D, --json,
 * --trusted; no operands (reconciler/source_opts.h parses them). Fills *o and
 * *json; on a bad option prints what is wrong and the command's usage to
 * stderr and returns PLUMB_EINVAL.
 */
int rec_parse_load_args(const char *cmd, int argc, char **argv, struct rec_load_opts *o, int *json);
/*
 * Splits a -c path into the repository root and the file inside it (both
 * caller frees). The root follows the file, never the current directory: a
 * file in a directory named "config" has its root one level up (so .kamal/
 * is found beside config/, as Kamal users lay it out, also in a monorepo);
 * any other file has the git work tree around it (the closest directory
 * above holding .git) as root, else its own folder. A root that is the
 * current directory is ".".
 */
void rec_split_config_path(const char *path, char **root, char **relfile);
/*
 * What every command that loads a configuration sets in its config_opts
 * beyond file/destination/trusted: the runner for trusted $(…)/%x(…)
 * (providers/run.h). Call it where config_opts are made.
 */
void rec_config_opts_fill(struct config_opts *co);
/* 0 on success; on failure prints the diagnostics and returns PLUMB_ECONFIG.
 * *out is the caller's (rec_loaded_release, also after a failure). */
int rec_load(struct rec_loaded *out, const struct rec_load_opts *o);
void rec_loaded_release(struct rec_loaded *l);
struct git_src_opts;
/*
 * Fills the git source's authentication from the environment, so CI can set
 * it without putting a secret on a command line:
 *   PLUMB_GIT_SSH_KEY        private key file for ssh:// and scp-like URLs
 *   PLUMB_GIT_SSH_PASSPHRASE the key's passphrase (read by the git source)
 *   PLUMB_GIT_KNOWN_HOSTS    known_hosts file the git server's key must be in
 *   PLUMB_GIT_TOKEN          HTTPS token (or PLUMB_GIT_TOKEN_FILE: a file holding it)
 *   PLUMB_GIT_CA_FILE        CA bundle for HTTPS
 * Pointers refer to the environment; the caller sets location and ref.
 */
void rec_git_opts(struct git_src_opts *go, int allow_foreign_owner);
/*
 * For commands that contact hosts: refuses a configuration where a key that
 * names something (a host, the image, a label, a cmd…) holds the placeholder of
 * an ERB ENV lookup or command that this untrusted run did not evaluate.
 * Prints why to log and returns PLUMB_EUNTRUSTED; 0 when every such key was
 * computed.
 */
int rec_require_computed(const struct config *c, const char *cmd, FILE *log);
struct registry_options;
/*
 * True if x-plumb lists domain ("host[:port]") as a plain-HTTP registry:
 * x-plumb registry.insecure (typed); an entry without a port covers every port.
 */
int rec_registry_is_insecure(const struct config *c, const char *domain);
/*
 * Registry client settings for the app image of c:
 *   - platform "linux/<builder.arch>" (default linux/amd64) in *platform
 *     (caller frees), pointed to by ro->platform;
 *   - untrusted, when the app's registry is one x-plumb marks insecure, no
 *     credentials at all (ro->docker_config = "": the runner's docker config is
 *     not read), so a repository cannot send the runner's registry login over
 *     plain HTTP; noted in c->trust (TRUST_OFF_INSECURE_CREDS). A registry
 *     that needs a login then refuses the lookup, which says so.
 */
void rec_registry_setup(struct config *c, int trusted, struct registry_options *ro, char **platform);
/* Prints "untrusted run: turned off …" lines for what the load skipped. */
void rec_report_trust(const struct config *c, FILE *f);

#endif
