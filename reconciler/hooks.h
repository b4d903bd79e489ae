/*
 * Kamal's hooks (.kamal/hooks/<name>: pre-connect, pre-deploy,
 * pre-app-boot, post-app-boot, post-deploy, …), run on this machine as
 * Kamal runs them: the executable file itself (its #! line decides the
 * interpreter), in the repository's root directory, with the KAMAL_*
 * environment added to plumb's own (PATH, tokens such as GITHUB_TOKEN…), and
 * a non-zero exit stops the command (../shared/kamal/BEHAVIOUR.md, hooks;
 * Kamal's cli/base.rb run_hook).
 *
 * Trust: a hook is code from the repository. It runs only in a trusted
 * invocation; an untrusted one gets PLUMB_EUNTRUSTED for any hook that is
 * there, so the caller refuses (unless it was told --skip-hooks). The hook's
 * path is resolved by the repository rule (state/source.h,
 * source_open_inside): a link out of the repository, or a file that is not
 * regular, is refused.
 *
 * Running: through the one local runner (providers/run.h): own process
 * group, stdin /dev/null, a deadline (timeout_ms), output captured and
 * bounded (REC_HOOK_OUTPUT_MAX per stream). Kamal has no deadline; plumb's
 * is generous (REC_HOOK_DEFAULT_TIMEOUT_MS, x-plumb hooks.timeout) so that
 * a hanging hook cannot hang a deploy forever: past it the hook's group gets
 * SIGTERM, then SIGKILL after REC_HOOK_GRACE_MS (or the timeout, if shorter).
 *
 * Signals (the protocol: reconciler/lock.h): a hook's own process group
 * keeps the terminal's Ctrl-C from reaching it, so plumb forwards it: on the
 * run's first SIGINT/SIGTERM the hook's group gets that signal and the same
 * grace, then SIGKILL; on the second it is killed at once. Either way the
 * hook "was interrupted" (PLUMB_ERROR, whatever it exited with).
 */
#ifndef PLUMB_REC_HOOKS_H
#define PLUMB_REC_HOOKS_H

#include "state/config.h"
#include "state/desired.h"
#include "state/err.h"
#include "state/secrets.h"

#define REC_HOOK_DEFAULT_TIMEOUT_MS (15 * 60 * 1000)
#define REC_HOOK_GRACE_MS (10 * 1000)
#define REC_HOOK_OUTPUT_MAX (64u << 10)

/*
 * What a hook is told, as KAMAL_* variables (Kamal's Tags + run_hook
 * details). Every pointer is borrowed; NULL leaves the variable unset (as
 * Kamal leaves out a nil tag), except where a default is noted. config and
 * ds, when given, fill what is left NULL: hooks_path (config), service,
 * destination, version (ds, else config), hosts (every host of ds, in
 * order), secrets (config).
 */
struct rec_hook_env {
	const struct config *config; /* optional: defaults (above) */
	const struct desired *ds;    /* optional: defaults (above) */
	const char *hooks_path;   /* the hooks' directory, relative to root; else ".kamal/hooks" */
	const char *recorded_at;  /* KAMAL_RECORDED_AT; NULL -> now, UTC ISO 8601 */
	const char *performer;    /* KAMAL_PERFORMER; NULL -> rec_performer() */
	const char *destination;  /* KAMAL_DESTINATION */
	const char *version;      /* KAMAL_VERSION, and KAMAL_SERVICE_VERSION = service@<7 chars>
				   * (the whole version when it holds '_', as Kamal) */
	const char *service;      /* KAMAL_SERVICE */
	const char *hosts;        /* KAMAL_HOSTS: comma-separated (all hosts; a boot group's for
				   * pre/post-app-boot) */
	const char *roles;        /* KAMAL_ROLES: only when the run was limited to roles */
	int lock;                 /* KAMAL_LOCK: "true" when the deploy lock is held (Kamal holds
				   * it for pre-deploy and the app-boot hooks), else "false" */
	const char *command;      /* KAMAL_COMMAND: Kamal's word ("deploy", "rollback") */
	const char *subcommand;   /* KAMAL_SUBCOMMAND */
	const char *runtime;      /* KAMAL_RUNTIME (post-deploy: whole seconds) */
	/* every available secret, as NAME=value, for pre-connect, pre-deploy and
	 * post-deploy only (Kamal's secrets: true); NULL = none (or config's) */
	const struct secrets *secrets;
	int timeout_ms;           /* <= 0 -> x-plumb hooks.timeout of config, else
				   * REC_HOOK_DEFAULT_TIMEOUT_MS */
};

/* True for the hooks Kamal gives the secrets to. */
int rec_hook_gets_secrets(const char *name);

/*
 * Runs <root>/<hooks_path>/<name> if it is there. Returns:
 *   0                 no such hook (nothing run), or it ran and exited 0;
 *   PLUMB_EUNTRUSTED  the hook is there but trusted is 0 (nothing run; err
 *                     says so and names --skip-hooks);
 *   PLUMB_EOUTSIDE    its path leaves the repository or is not a regular file;
 *   PLUMB_ERROR       it is not executable, could not start, or exited
 *                     non-zero (err: "hook 'pre-deploy' failed (exit 1)",
 *                     then the end of its output, escaped), or it was
 *                     interrupted (err: "hook 'pre-deploy' was interrupted …");
 *   PLUMB_ETIMEOUT    it ran past the deadline (its process group is killed).
 * name must be a plain file name (no '/'). Never prints.
 */
int rec_hook_run(const char *root, const char *name, const struct rec_hook_env *env, int trusted,
		 struct plumb_err *err);

/* The environment additions for a hook ("NAME=value", NULL-terminated, in
 * Kamal's order, then the secrets when the hook gets them); exposed for
 * tests. Free with rec_hook_env_free (wipes every entry). */
char **rec_hook_env_build(const char *name, const struct rec_hook_env *env);
void rec_hook_env_free(char **envv);

#endif
