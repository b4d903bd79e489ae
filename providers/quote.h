/*
 * Quoting for remote shell commands, and a structured command builder.
 *
 * Every value interpolated into a command that a host's shell will parse goes
 * through shell_quote (DESIGN.md, safety rules). The quoting is POSIX
 * single-quote style: the value is wrapped in '…' and each ' becomes '\'' .
 * Inside single quotes no character is special to a POSIX shell (no $, `, \,
 * newline or glob expansion), so any byte string other than one containing
 * NUL round-trips exactly. Values made only of "safe" bytes
 * [A-Za-z0-9_./:@%+,-] are left bare so commands stay readable (none of those
 * bytes is special to sh in any position; '=' and '~' are not safe, because
 * FOO=x as a first word is an assignment and ~ expands at a word's start).
 *
 * NUL cannot be passed through a shell command line: the (ptr,len) variants
 * refuse an embedded NUL with PLUMB_EINVAL instead of silently cutting the
 * value short.
 *
 * struct prov_cmd is a command built from argv lists rather than a free
 * string: a sequence of simple commands, each an argv, joined by ;, &&, || or
 * |, each optionally with stderr sent to /dev/null. Rendering quotes every
 * word, so a command built this way contains shell syntax only where the
 * builder put an operator. The read-only guard (transport.h) inspects the argv
 * lists before anything is joined into a string.
 */
#ifndef PLUMB_PROV_QUOTE_H
#define PLUMB_PROV_QUOTE_H

#include <stddef.h>

#include "state/err.h"
#include "state/util.h"

/*
 * Providers return codes from plumb's one error space (state/err.h):
 * PLUMB_EINVAL, PLUMB_ETIMEOUT, PLUMB_EREFUSED, ...; plumb_strerror names them.
 */

/*
 * Appends arg, quoted, to out. Returns 0, PLUMB_EINVAL for a NUL byte (mem
 * variant), or -1 when out's size bound is reached (out is then unchanged).
 */
int shell_quote(struct sbuf *out, const char *arg);
int shell_quote_mem(struct sbuf *out, const void *arg, size_t len);

/* Appends the words of argv (argc of them), each quoted, separated by spaces. */
int shell_join_argv(struct sbuf *out, const char *const *argv, size_t argc);

enum prov_join {
	PROV_JOIN_SEQ,  /* ;  */
	PROV_JOIN_AND,  /* && */
	PROV_JOIN_OR,   /* || */
	PROV_JOIN_PIPE, /* |  */
};

struct prov_simple {
	struct strvec argv;   /* owned; argv.n >= 1 once rendered */
	enum prov_join join;  /* how this one joins the previous (ignored for the first) */
	int quiet;            /* append 2>/dev/null */
};

/*
 * A structured command. prov_cmd_init, then prov_cmd_begin for each simple
 * command followed by prov_cmd_arg calls. An invalid argument (NUL byte) is
 * latched in err and reported by prov_cmd_render, so building code need not
 * check every call. prov_cmd_release frees everything.
 */
struct prov_cmd {
	struct prov_simple *v;
	size_t n, cap;
	int err;
};

void prov_cmd_init(struct prov_cmd *c);
/* Starts a new simple command joined to the previous by join. */
void prov_cmd_begin(struct prov_cmd *c, enum prov_join join);
void prov_cmd_arg(struct prov_cmd *c, const char *arg);
void prov_cmd_arg_mem(struct prov_cmd *c, const void *arg, size_t len);
/* Appends several words; the list ends with NULL. */
void prov_cmd_args(struct prov_cmd *c, ...);
/* Sends the current simple command's stderr to /dev/null. */
void prov_cmd_quiet(struct prov_cmd *c);
/* Renders the whole command into out (appending). PLUMB_EINVAL on a latched error or an empty command. */
int prov_cmd_render(const struct prov_cmd *c, struct sbuf *out);
void prov_cmd_release(struct prov_cmd *c);

/*
 * The strict inverse of rendering, used by the read-only guard on free-string
 * commands: splits cmd into a prov_cmd, accepting only bare safe words,
 * single-quoted strings, the '\'' idiom, blanks, the operators ; && || | and
 * the suffix 2>/dev/null; '=' is accepted inside words but not in a command's
 * first word (an assignment). Anything else (", $, `, \ outside '\'',
 * newline, redirection, globbing, ~, #, parentheses, braces) is refused with
 * PLUMB_EREFUSED. On error c is released.
 */
int prov_cmd_parse_strict(struct prov_cmd *c, const char *cmd);

#endif
