#include "reconciler/cli.h"
#include "reconciler/source_opts.h"

#include <errno.h>
#include <signal.h>
#include <string.h>


/* Help text that plan and hosts share (the source options' is reconciler/source_opts.h). */
#define HELP_SSH                                                                      \
	"SSH: ssh.user/port/keys/proxy from deploy.yml; x-plumb.ssh.known_hosts (a\n"   \
	"file, relative to the repository) and x-plumb.ssh.accept_new_host_keys;\n"     \
	"PLUMB_SSH_KNOWN_HOSTS and PLUMB_SSH_KEY override them. Untrusted, the\n"       \
	"repository reaches nothing outside itself: a known_hosts file outside it is\n" \
	"refused, ssh.keys outside it are skipped (PLUMB_SSH_KEY and the SSH agent\n"   \
	"are used), and accept_new_host_keys is ignored: only PLUMB_SSH_ACCEPT_NEW=1\n" \
	"in the environment accepts (and records) a host key not yet known, never\n"   \
	"through a repository's ssh.proxy. PLUMB_SSH_KEY_PASSPHRASE opens encrypted\n" \
	"keys (never prompted for: without it they are skipped).\n"

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);

static const struct rec_command commands[] = {
	{ "config", cmd_config, "print the resolved configuration (secrets redacted)",
	  "usage: plumb config [-c FILE] [-d DEST] [--json] [--trusted]\n"
	  "\n"
	  "Loads config/deploy.yml (and config/deploy.DEST.yml over it), validates it\n"
	  "as strictly as Kamal does, and prints the resolved configuration: roles with\n"
	  "their hosts, merged env, accessories with their hosts, proxy, ssh, boot.\n"
	  "Secret values are always redacted.\n"
	  "\n"
	  REC_HELP_CONFIG
	  "      --json          machine-readable output\n"
	  "      --trusted       allow $(...) in secrets, ERB ENV and command output,\n"
	  "                      paths outside the repository (off by default: a pull\n"
	  "                      request must not run code on the machine checking it)\n",
	  REC_CMD_READ_ONLY },
	{ "hosts", cmd_hosts, "show what plumb observes on every host (read-only)",
	  "usage: plumb hosts [-c FILE] [-d DEST] [--json] [--trusted] [--timeout D]\n"
	  "\n"
	  "Connects to every host of the configuration (roles and accessories) and\n"
	  "observes, in one read-only command per host, the app containers (by the\n"
	  "labels service/role/destination), the accessories, the proxy, the images\n"
	  "they use, the env files under .kamal/apps and the deploy lock. Env values\n"
	  "never leave the hosts: they are shown as keys with \"(value hidden)\".\n"
	  "\n"
	  REC_HELP_CONFIG
	  "      --json          machine-readable output\n"
	  "      --trusted       allow ssh key_data, proxy_command, keys and a\n"
	  "                      known_hosts file outside the repository\n"
	  REC_HELP_TIMEOUT
	  "\n"
	  HELP_SSH
	  "Exit status: 0 every host observed, 1 some host unreachable or unknown.\n",
	  REC_CMD_READ_ONLY },
	{ "plan", cmd_plan, "show what apply would change on every host, and why (read-only)",
	  "usage: plumb plan [-c FILE] [-d DEST] [--repo PATH|URL] [--ref REF] [--base REF]\n"
	  "                  [--version V] [--format text|markdown|json] [--out FILE]\n"
	  "                  [--trusted] [--prune] [--allow-foreign-owner] [--timeout D]\n"
	  "                  [--state-dir DIR] [--offline]\n"
	  "\n"
	  "Builds the desired state of every host from the configuration (as Kamal would\n"
	  "run it), observes the hosts read-only, and prints the steps apply would take,\n"
	  "each with its cause: + create, +/- replace start-first, -/+ replace stop-first\n"
	  "(disruptive), ~ start/rename in place, - remove. No lock, no hook, nothing\n"
	  "written on any host.\n"
	  "\n"
	  REC_HELP_CONFIG
	  REC_HELP_GIT
	  "      --base REF      also observe the hosts of this revision (orphans on\n"
	  "                      hosts removed from the configuration); default: the\n"
	  "                      revision plumb watch last applied (--state-dir DIR,\n"
	  "                      default as watch's), when it is in the repository\n"
	  "      --offline       contact no host: plan against the base revision taken\n"
	  "                      as what the hosts run (a PR check without host access)\n"
	  "      --version V     the version (tag); default: x-plumb.version, $VERSION,\n"
	  "                      then the commit's full sha\n"
	  "      --format F      text (default), markdown (a PR comment) or json\n"
	  "                      (docs/plan-json.md)\n"
	  "      --out FILE      write the plan there instead of stdout\n"
	  "      --prune         orphans count as changes (apply --prune removes them)\n"
	  "      --trusted       allow $(...) in secrets, ERB ENV, registry credentials\n"
	  "                      from secrets, ssh key_data/proxy_command\n"
	  "      --allow-foreign-owner\n"
	  "                      read a checkout owned by another user (CI)\n"
	  REC_HELP_TIMEOUT
	  "\n"
	  HELP_SSH	  "\n"
	  "Registry: the app image is resolved for linux/<builder.arch> (default\n"
	  "amd64) with the registry secrets when --trusted, else ~/.docker/config.json.\n"
	  "x-plumb registry.insecure lists registries spoken to over plain HTTP; in an\n"
	  "untrusted run such a registry gets no credentials at all.\n"
	  "\n"
	  "Git authentication comes from the environment, never the command line:\n"
	  "PLUMB_GIT_SSH_KEY (+ PLUMB_GIT_SSH_PASSPHRASE, PLUMB_GIT_KNOWN_HOSTS) for\n"
	  "ssh URLs; PLUMB_GIT_TOKEN or PLUMB_GIT_TOKEN_FILE (+ PLUMB_GIT_CA_FILE) for\n"
	  "https URLs.\n"
	  "\n"
	  "Exit status: 0 nothing to change, 2 changes pending, 1 error (a host that\n"
	  "could not be observed is shown and makes the exit status 1).\n",
	  REC_CMD_READ_ONLY },
	{ "apply", cmd_apply, "make the hosts what plan shows (lock, hooks, health-gated rollout)",
	  "usage: plumb apply [-c FILE] [-d DEST] [--repo PATH|URL] [--ref REF] [--version V]\n"
	  "                   [--untrusted] [--prune] [--allow-foreign-owner] [--yes]\n"
	  "                   [--expect-plan HASH] [--skip-hooks] [--timeout D]\n"
	  "\n"
	  "Runs plan's pipeline, prints the plan, and carries it out: images pulled on\n"
	  "every host first (and checked against the identity planned), accessories and\n"
	  "kamal-proxy, then the primary role in boot groups, then the other roles once\n"
	  "it is healthy; a new container takes traffic only once ready, and the old one\n"
	  "is stopped after. A failure stops the rollout: the new container is removed,\n"
	  "the old one keeps serving, and the summary says which hosts run what.\n"
	  "Nothing to do: exit 0, no lock taken. Kamal's deploy lock is held throughout\n"
	  "and .kamal/hooks run as Kamal runs them (pre-connect, pre-deploy,\n"
	  "pre-app-boot, post-app-boot, post-deploy), each for at most 15 minutes\n"
	  "(x-plumb hooks.timeout: seconds), then SIGTERM, then SIGKILL.\n"
	  "Ctrl-C (SIGINT, SIGTERM) stops the rollout after the current step and\n"
	  "releases the lock (a running hook gets the signal); a second one stops\n"
	  "now, releasing the lock first (exit 128 + the signal).\n"
	  "\n"
	  "      --yes           do not ask (required without a terminal)\n"
	  "      --expect-plan H refuse unless the plan's hash is H (the one reviewed)\n"
	  "      --prune         remove orphans (roles, hosts, accessories no longer in\n"
	  "                      the configuration; never a volume or directory)\n"
	  "      --skip-hooks    do not run .kamal/hooks\n"
	  "      --untrusted     treat the source as plan does without --trusted (no\n"
	  "                      hooks, no $(...) secrets, no ERB commands); apply and\n"
	  "                      rollback trust the source they are pointed at by default\n"
	  "  other options as plan's\n"
	  REC_HELP_TIMEOUT
	  "\n"
	  "Exit status: 0 converged (or nothing to do), 1 failed or refused.\n",
	  REC_CMD_MUTATES },
	{ "rollback", cmd_rollback, "return the app roles to a retained previous version",
	  "usage: plumb rollback [VERSION] [-c FILE] [-d DEST] [--untrusted] [--yes]\n"
	  "                      [--skip-hooks] [--timeout D]\n"
	  "\n"
	  "Starts the retained container of VERSION (default: the newest stopped version\n"
	  "of the primary role before the running one) on every host, waits until it is\n"
	  "ready, switches traffic to it and stops the current one: apply's health-gated\n"
	  "rollout, without a pull. The image identity is the retained container's.\n"
	  "\n"
	  "Exit status: 0 rolled back, 1 failed or refused.\n",
	  REC_CMD_MUTATES },
	{ "watch", cmd_watch, "keep the hosts what a branch says: fetch, plan, apply, every interval",
	  "usage: plumb watch --repo PATH|URL [--branch B] [-c FILE] [-d DEST]\n"
	  "                   [--interval D] [--state-dir DIR] [--once] [--prune]\n"
	  "                   [--listen ADDR:PORT] [--webhook-secret-file F]\n"
	  "                   [--notify URL[,URL]] [--notify-file F] [--log-format text|json]\n"
	  "                   [--skip-hooks] [--timeout D] [--allow-foreign-owner]\n"
	  "\n"
	  "Every interval (default 60s), on SIGHUP, or on a verified webhook push:\n"
	  "fetches the branch (default main), plans its head commit against the hosts\n"
	  "over SSH sessions kept open between cycles, and applies the plan as apply\n"
	  "does (Kamal's lock, the commit's .kamal/hooks but pre-connect, health\n"
	  "gates). Drift (a\n"
	  "container stopped, removed or changed by hand) is put back on the next\n"
	  "cycle. A commit whose image is not in the registry yet waits for it; a\n"
	  "rollout that fails its health gates holds its revision (the last good\n"
	  "version keeps running) until a new commit or `plumb retry`; faults back off\n"
	  "exponentially (up to 5m) and recover by themselves; a host that cannot be\n"
	  "reached is left out while the others converge. `plumb suspend` stops\n"
	  "applying (drift is still reported). State (status, history, git cache) is\n"
	  "in --state-dir (default $PLUMB_STATE_DIR, else $XDG_STATE_HOME/plumb or\n"
	  "~/.local/state/plumb): `plumb status` reads it.\n"
	  "\n"
	  "      --listen A:P    serve /healthz, /status (JSON), /metrics (Prometheus)\n"
	  "                      and POST /webhook (GitHub push events)\n"
	  "      --webhook-secret-file F  the webhook's HMAC-SHA256 key (first line);\n"
	  "                      a request without a valid X-Hub-Signature-256 gets 401\n"
	  "      --notify URLS   POST a JSON message (Slack/Discord incoming webhooks)\n"
	  "                      on a failed rollout, a held revision, drift healed and\n"
	  "                      recovery; also --notify-file F (one URL per line) and\n"
	  "                      $PLUMB_NOTIFY_URLS\n"
	  "      --once          one cycle, then exit (cron, systemd timers)\n"
	  "  git credentials: $PLUMB_GIT_TOKEN, $PLUMB_GIT_TOKEN_FILE, $PLUMB_GIT_SSH_KEY;\n"
	  "  SSH to the hosts as plan.\n"
	  REC_HELP_TIMEOUT
	  "\n"
	  "SIGHUP: a cycle now. SIGINT/SIGTERM: exit; during an apply, after the current\n"
	  "step, with the lock released.\n"
	  "Exit status (--once): 0 in sync, applied or waiting for the image; 1 otherwise.\n",
	  REC_CMD_MUTATES },
	{ "status", cmd_status, "show what the watcher did and where the fleet stands (read-only)",
	  "usage: plumb status [--state-dir DIR] [--json] [--history N]\n"
	  "\n"
	  "Reads the state plumb watch keeps (default $PLUMB_STATE_DIR, else\n"
	  "$XDG_STATE_HOME/plumb or ~/.local/state/plumb): Synced/OutOfSync,\n"
	  "Healthy/Progressing/Degraded, the revision and version applied, the last\n"
	  "cycle and its outcome, what it waits for or holds, per host, and the last\n"
	  "N cycles (default 5). Contacts no host.\n"
	  "\n"
	  "Exit status: 0, or 1 when there is no state.\n",
	  REC_CMD_READ_ONLY },
	{ "suspend", cmd_suspend, "stop the watcher applying (drift is still reported)",
	  "usage: plumb suspend [--state-dir DIR]\n", REC_CMD_READ_ONLY },
	{ "resume", cmd_resume, "let the watcher apply again",
	  "usage: plumb resume [--state-dir DIR]\n", REC_CMD_READ_ONLY },
	{ "retry", cmd_retry, "let the watcher try the held revision again",
	  "usage: plumb retry [--state-dir DIR]\n", REC_CMD_READ_ONLY },
	{ "lock", cmd_lock, "show, take or release Kamal's deploy lock on the primary host",
	  "usage: plumb lock status|release|acquire -m MESSAGE [-c FILE] [-d DEST]\n"
	  "                  [--repo PATH|URL] [--ref REF] [--version V] [--trusted] [--timeout D]\n"
	  "\n"
	  "Kamal's lock: the directory .kamal/lock-<service>[-<dest>] on the first host\n"
	  "of the primary role, with its details file; Kamal and plumb respect each\n"
	  "other's. status prints the holder (and \"stale\" for a plumb of this machine\n"
	  "that is no longer running); release removes it, whoever holds it (as Kamal).\n"
	  "Exit status: 0 done, 1 error or (acquire) the lock is held. status exits 0\n"
	  "whether a lock is held or not, as Kamal's (the output says which); release\n"
	  "exits 0 also when there was no lock.\n",
	  REC_CMD_MUTATES },
	{ "observe-gate", cmd_observe_gate, "print the forced command for a read-only SSH key",
	  "usage: plumb observe-gate > /usr/local/bin/plumb-observe-gate\n"
	  "\n"
	  "Prints a POSIX sh script to install on the hosts as the forced command of\n"
	  "the key plan and hosts use (authorized_keys: command=\"/usr/local/bin/\n"
	  "plumb-observe-gate\",no-port-forwarding,no-agent-forwarding,\n"
	  "no-X11-forwarding,no-pty ssh-ed25519 ...). It runs only this plumb version's\n"
	  "observation command (docker ps/inspect, hashes of env files, the lock) with\n"
	  "arguments of the shapes plumb sends; anything else is refused (stderr,\n"
	  "logger, exit 1). Regenerate it whenever plumb is upgraded.\n"
	  "deploy-examples/readonly-key/README.md says what such a key can do.\n",
	  REC_CMD_READ_ONLY },
	{ "help", cmd_help, "show help for plumb or a command", "usage: plumb help [COMMAND]\n",
	  REC_CMD_READ_ONLY },
	{ "version", cmd_version, "print plumb's version", "usage: plumb version\n", REC_CMD_READ_ONLY },
};

const struct rec_command *rec_find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

void rec_print_usage(const struct rec_command *c, FILE *f)
{
	fputs(c->usage, f);
}

int rec_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return 0;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return 1;
	}
	return 0;
}

static void print_overview(FILE *f)
{
	fputs("usage: plumb <command> [options]\n"
	      "\n"
	      "plumb reconciles the Docker hosts of a Kamal app (config/deploy.yml) with git.\n"
	      "\n"
	      "Commands:\n",
	      f);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fputs("\n"
	      "Exit status: 0 success (plan: nothing to change), 2 plan has changes, 1 error.\n"
	      "Run 'plumb <command> --help' for a command's options.\n",
	      f);
}

static int cmd_help(int argc, char **argv)
{
	const struct rec_command *c;

	if (argc < 2) {
		print_overview(stdout);
		return REC_EXIT_OK;
	}
	c = rec_find_command(argv[1]);
	if (!c) {
		fprintf(stderr, "plumb: unknown command '%s' (see 'plumb help')\n", argv[1]);
		return REC_EXIT_ERROR;
	}
	rec_print_usage(c, stdout);
	return REC_EXIT_OK;
}

static int cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("plumb %s\n", PLUMB_VERSION);
	return REC_EXIT_OK;
}

int rec_finish_stdout(int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "plumb: writing output failed: %s\n", strerror(errno));
		return REC_EXIT_ERROR;
	}
	return rc;
}

int rec_main(int argc, char **argv)
{
	const struct rec_command *c;

	/* A closed pipe (plumb plan | head) must be an error we report, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		print_overview(stderr);
		return REC_EXIT_ERROR;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)
		return rec_finish_stdout(cmd_version(argc - 1, argv + 1));
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return rec_finish_stdout(cmd_help(1, argv + 1));
	c = rec_find_command(argv[1]);
	if (!c) {
		fprintf(stderr, "plumb: unknown command '%s' (see 'plumb help')\n", argv[1]);
		return REC_EXIT_ERROR;
	}
	if (rec_wants_help(argc - 1, argv + 1)) {
		rec_print_usage(c, stdout);
		return rec_finish_stdout(REC_EXIT_OK);
	}
	rec_set_may_mutate((c->flags & REC_CMD_MUTATES) != 0);
	return rec_finish_stdout(c->fn(argc - 1, argv + 1));
}

static int may_mutate;

int rec_may_mutate(void)
{
	return may_mutate;
}

void rec_set_may_mutate(int may)
{
	may_mutate = may;
}
