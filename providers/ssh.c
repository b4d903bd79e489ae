/* The SSH transport (libssh). */
#include "providers/transport.h"

#include <pthread.h>
#include <signal.h>

#include <libssh/libssh.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void do_init(void)
{
	struct sigaction sa;

	/* A peer closing a socket or pipe must be an error code, not a dead process. */
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
	init_rc = ssh_init() == SSH_OK ? 0 : -1;
}

int prov_init(void)
{
	pthread_once(&init_once, do_init);
	return init_rc;
}

int transport_ssh_open(struct transport **out, const struct transport_opts *opts,
		       char *errmsg, size_t errmsg_len)
{
	(void)opts;
	*out = NULL;
	if (errmsg && errmsg_len)
		errmsg[0] = '\0';
	return PROV_ERROR;
}
