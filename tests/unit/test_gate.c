/*
 * plumb observe-gate: the script it prints, run by /bin/sh as an SSH forced
 * command, runs plumb's real (framed) observation command and refuses
 * everything else without running any of it.
 */
#include "providers/docker_obs.h"
#include "providers/quote.h"
#include "providers/transport.h"
#include "reconciler/cmd_gate.h"
#include "tests/unit/t.h"
#include "tests/unit/tutil.h"

#include <sys/wait.h>

#define SALT "0123456789abcdef0123456789abcdef"

struct gate_env {
	char *dir;   /* owned: home, gate, stand-in docker, the marker */
	char *gate;  /* owned: path of the gate script */
};

static void env_init(struct gate_env *e)
{
	struct sbuf s;

	e->dir = tu_tmpdir("gate");
	sbuf_init(&s, 0);
	T_REQUIRE(rec_gate_script(&s) == 0);
	tu_write_in(e->dir, "plumb-observe-gate", s.buf);
	sbuf_release(&s);
	/* A docker that answers ps with nothing: the script then prints END. */
	tu_write_in(e->dir, "bin/docker", "#!/bin/sh\nexit 0\n");
	T_REQUIRE(tu_sh("chmod 755 '%s/bin/docker' '%s/plumb-observe-gate'", e->dir, e->dir) == 0);
	e->gate = xasprintf("%s/plumb-observe-gate", e->dir);
}

static void env_release(struct gate_env *e)
{
	tu_rm_rf(e->dir);
	free(e->dir);
	free(e->gate);
}

/* The command plumb sends for q, as it arrives ($SSH_ORIGINAL_COMMAND). */
static char *framed_obs(const char *salt, const char *service, const char *since,
			char token[PROV_TOKEN_LEN + 1])
{
	struct docker_obs_query q = { .service = service };
	static const char *const acc[] = { "optimus-db" };
	struct prov_cmd c;
	struct sbuf inner, out;

	q.accessories = acc;
	q.naccessories = 1;
	sbuf_init(&inner, 0);
	sbuf_init(&out, 0);
	if (docker_obs_build_since(&c, salt, &q, since) == 0 && prov_cmd_render(&c, &inner) == 0)
		T_CHECK(prov_frame_build_stdin(&out, inner.buf, token, 0) == 0);
	prov_cmd_release(&c);
	sbuf_release(&inner);
	return sbuf_detach(&out);
}

/* Runs the gate with SSH_ORIGINAL_COMMAND=cmd; its exit status, stdout in *out. */
static int run_gate(const struct gate_env *e, const char *cmd, char **out)
{
	char *path = xasprintf("%s/bin:/usr/bin:/bin", e->dir), *sh;
	FILE *f;
	struct sbuf s;
	char buf[4096];
	size_t n;
	int st;

	setenv("SSH_ORIGINAL_COMMAND", cmd, 1);
	sh = xasprintf("cd '%s' && HOME='%s' PATH='%s' /bin/sh '%s' 2>/dev/null", e->dir, e->dir,
		       path, e->gate);
	f = popen(sh, "r");
	if (!f)
		abort();
	sbuf_init(&s, 0);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		sbuf_add(&s, buf, n);
	st = pclose(f);
	unsetenv("SSH_ORIGINAL_COMMAND");
	free(path);
	free(sh);
	*out = sbuf_detach(&s);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

T_TEST(gate_runs_the_observation_command)
{
	struct gate_env e;
	char token[PROV_TOKEN_LEN + 1], *cmd, *out = NULL, *begin;

	env_init(&e);
	cmd = framed_obs(SALT, "optimus", NULL, token);
	T_INTEQ(run_gate(&e, cmd, &out), 0);
	begin = xasprintf("BEGIN-%s\nPLUMB-OBS 1\n", token);
	T_CONTAINS(out, begin);
	T_CONTAINS(out, "\nEND\n");
	free(begin);
	begin = xasprintf("END-%s 0", token);
	T_CONTAINS(out, begin);
	free(begin);
	free(out);
	free(cmd);
	/* with the time of an earlier answer (plumb watch) */
	cmd = framed_obs(SALT, "optimus", "1796470614.415047694", token);
	T_INTEQ(run_gate(&e, cmd, &out), 0);
	T_CONTAINS(out, "\nEND\n");
	free(out);
	free(cmd);
	env_release(&e);
}

/* Refused: exit 1, nothing on stdout, the marker file never made. */
static void check_refused(const struct gate_env *e, const char *cmd)
{
	char *out = NULL, *mark = xasprintf("%s/pwned", e->dir);

	T_INTEQ(run_gate(e, cmd, &out), 1);
	T_STREQ(out, "");
	T_CHECKF(access(mark, F_OK) != 0, "the refused command ran: %s", cmd);
	free(out);
	free(mark);
}

static char *replace_once(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);

	T_CHECK(p != NULL);
	if (!p)
		return xstrdup(s);
	return xasprintf("%.*s%s%s", (int)(p - s), s, to, p + strlen(from));
}

/* cmd with from replaced by to (once) is refused. */
static void check_refused_variant(const struct gate_env *e, const char *cmd, const char *from,
				  const char *to)
{
	char *bad = replace_once(cmd, from, to);

	check_refused(e, bad);
	free(bad);
}

T_TEST(gate_refuses_everything_else)
{
	struct gate_env e;
	char token[PROV_TOKEN_LEN + 1], *cmd, *bad;

	env_init(&e);
	cmd = framed_obs(SALT, "optimus", NULL, token);
	check_refused(&e, "");
	check_refused(&e, "docker ps");
	check_refused(&e, "touch pwned");
	check_refused(&e, "sh -c 'touch pwned'");
	/* After the command, inside the framing, in an argument. */
	bad = xasprintf("%s; touch pwned", cmd);
	check_refused(&e, bad);
	free(bad);
	check_refused_variant(&e, cmd, " optimus lock-optimus", " optimus;touch${IFS}pwned lock-optimus");
	check_refused_variant(&e, cmd, "exit \"$s\"", "touch pwned; exit \"$s\"");
	/* The script itself changed by one word. */
	check_refused_variant(&e, cmd, "docker ps", "docker rm");
	/* Argument shapes: salt, lock directory, selector, a name with "..". */
	check_refused_variant(&e, cmd, SALT, "0123456789abcdef0123456789abcdeg");
	check_refused_variant(&e, cmd, "lock-optimus", "lock-other");
	check_refused_variant(&e, cmd, "s:optimus-db", "x:optimus-db");
	check_refused_variant(&e, cmd, "s:optimus-db", "s:../x");
	free(cmd);
	/* a time of another shape */
	cmd = framed_obs(SALT, "optimus", "1796470614.415047694", token);
	check_refused_variant(&e, cmd, "t:1796470614.415047694", "t:1796470614.4150.47694");
	check_refused_variant(&e, cmd, "t:1796470614.415047694", "t:1796470614");
	check_refused_variant(&e, cmd, "t:1796470614.415047694", "t:-1.5");
	free(cmd);
	/* A service name that needs quoting never reaches the host's shell. */
	cmd = framed_obs(SALT, "x$(touch pwned)", NULL, token);
	check_refused(&e, cmd);
	free(cmd);
	env_release(&e);
}

T_MAIN(T_CASE(gate_runs_the_observation_command), T_CASE(gate_refuses_everything_else))
