/*
 * End-to-end: the containers plumb's docker command builder creates are the
 * real Kamal 2.12's. The real Kamal deploys the lab's optimus (web behind
 * kamal-proxy with proxy.run, job, Postgres) plus an accessory with every
 * kind of volume, options, labels, cmd and port, and clear env with values
 * that need escaping; then, for every container on a web host and the job
 * host, `dcmd_run` builds a twin under another name (kamal-proxy and the
 * accessories while the original is stopped: same ports and data), and
 * `docker inspect` of both must agree on Config (env as a set: docker does
 * not keep its order), HostConfig (binds as a set, likewise), Mounts and
 * networks — all but the hostname, which is random in both. (The order of
 * the words themselves is Kamal's: test_docker_cmd checks it.)
 *
 * The work is done by kamal_identity_helper.sh (the lab and Kamal are shell
 * tools); it calls this binary back as `t_kamal_identity print REPO VERSION
 * HOST HOME SUFFIX` for the commands. Skipped where ../shared is absent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "providers/docker_cmd.h"
#include "state/source.h"

/* Prints "<name>\t<docker run …>" for every container of host. */
static int print_runs(char **argv)
{
	struct source *src = NULL;
	struct diags d = { 0 };
	struct config_opts o = { .trusted = 1 };
	struct config *c = NULL;
	struct desired *ds = NULL;
	struct desired_opts dopt = { .version = argv[1], .salt = "00000000000000000000000000000000" };
	const struct des_host *h;
	int rc = 1;

	source_dir_new(&src, argv[0]);
	if (config_load(&c, src, &o, &d) != 0 || desired_build(&ds, c, &dopt, &d) != 0) {
		diags_print(&d, stderr);
		goto out;
	}
	h = desired_host(ds, argv[2]);
	for (size_t i = 0; h && i < h->ncontainers; i++) {
		const struct des_container *dc = &h->containers[i];
		struct dcmd_ctx x = { .config = c, .ds = ds, .host = argv[2], .home = argv[3] };
		struct prov_cmd cmd;
		struct sbuf s;
		struct plumb_err e = { 0 };
		char *name = xasprintf("%s%s", dc->name, argv[4]);

		prov_cmd_init(&cmd);
		sbuf_init(&s, 0);
		if (dcmd_run(&cmd, PROV_JOIN_SEQ, dc, name, &x, &e) == 0 && prov_cmd_render(&cmd, &s) == 0)
			printf("%s\t%s\n", dc->name, s.buf);
		else
			fprintf(stderr, "%s: %s\n", dc->name, plumb_err_msg(&e));
		sbuf_release(&s);
		prov_cmd_release(&cmd);
		free(name);
	}
	rc = h ? 0 : 1;
out:
	desired_free(ds);
	config_free(c);
	source_free(src);
	diags_release(&d);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc == 7 && strcmp(argv[1], "print") == 0)
		return print_runs(argv + 2);
	execl("/bin/sh", "sh", "-c", "exec bash tests/e2e/kamal_identity_helper.sh \"$0\"", argv[0], (char *)NULL);
	perror("exec bash");
	return 1;
}
