/*
 * The command table. main() only calls rec_main(); every subcommand is one
 * entry {name, fn, summary, usage} in reconciler/cli.c, implemented in its own
 * reconciler/cmd_<name>.c. A command returns its exit status:
 * 0 success (plan: in sync), 2 plan has changes, 1 error.
 */
#ifndef PLUMB_CLI_H
#define PLUMB_CLI_H

#include <stdio.h>

#define REC_EXIT_OK 0
#define REC_EXIT_ERROR 1
#define REC_EXIT_CHANGES 2

/*
 * Like tmux's command table, each entry says whether it may mutate a host.
 * rec_main records it for the run (rec_may_mutate) before calling fn, and the
 * pipeline refuses a read-write fleet to a command without REC_CMD_MUTATES:
 * plan, hosts and config cannot reach the executor, whatever their code does.
 */
#define REC_CMD_READ_ONLY 0x0
#define REC_CMD_MUTATES 0x1

struct rec_command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
	const char *usage; /* full help text printed by `plumb <cmd> --help` */
	int flags;         /* REC_CMD_MUTATES */
};

/* Whether the running command may mutate (its entry's REC_CMD_MUTATES);
 * 0 until rec_main (or rec_set_may_mutate, for tests) says otherwise. */
int rec_may_mutate(void);
void rec_set_may_mutate(int may);

int rec_main(int argc, char **argv);
const struct rec_command *rec_find_command(const char *name);
/* True if argv has -h or --help before any "--". */
int rec_wants_help(int argc, char **argv);
/* Writes the command's usage to f. */
void rec_print_usage(const struct rec_command *c, FILE *f);
/* Flushes stdout and reports a write failure (disk full, closed pipe). */
int rec_finish_stdout(int rc);

int cmd_config(int argc, char **argv);
int cmd_hosts(int argc, char **argv);
int cmd_lock(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_apply(int argc, char **argv);
int cmd_rollback(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_suspend(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_retry(int argc, char **argv);
int cmd_observe_gate(int argc, char **argv);

#endif
