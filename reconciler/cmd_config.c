#include <stdio.h>

#include "reconciler/cli.h"

int cmd_config(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fputs("plumb config: the configuration loader is being built\n", stderr);
	return REC_EXIT_ERROR;
}
