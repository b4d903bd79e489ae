/*
 * plumb observe-gate: prints the forced command for a read-only SSH key
 * (reconciler/cmd_gate.h says what it accepts).
 */
#include "reconciler/cmd_gate.h"

#include "providers/observe_script.h"
#include "providers/quote.h"
#include "providers/transport.h"
#include "reconciler/cli.h"

#include <stdio.h>
#include <string.h>

#define GATE_TOKEN '\001'
#define GATE_ARGS '\002'
/* Where the token and the arguments sit in the framed command, in order. */
static const char gate_marks[] = { GATE_TOKEN, GATE_TOKEN, GATE_ARGS, GATE_TOKEN, GATE_TOKEN };
#define GATE_NPIECES (sizeof(gate_marks) + 1)

/* Replaces every occurrence of token in s (in place) by one GATE_TOKEN byte. */
static void mark_token(struct sbuf *s, const char *token)
{
	size_t n = strlen(token), w = 0;

	for (size_t r = 0; r < s->len;) {
		if (s->len - r >= n && memcmp(s->buf + r, token, n) == 0) {
			s->buf[w++] = GATE_TOKEN;
			r += n;
		} else {
			s->buf[w++] = s->buf[r++];
		}
	}
	s->len = w;
	s->buf[w] = '\0';
}

/*
 * Splits s at the marks; each piece is appended, quoted, to out as
 * NAME<i>=<piece>. 0, or PLUMB_EINVAL when the marks are not where
 * gate_marks says (the framing changed shape: the gate must change too).
 */
static int emit_pieces(struct sbuf *out, const char *name, const struct sbuf *s)
{
	const char *p = s->buf, *end = s->buf + s->len;
	size_t i = 0;

	for (;;) {
		const char *m = p;

		while (m < end && *m != GATE_TOKEN && *m != GATE_ARGS)
			m++;
		if (sbuf_addf(out, "%s%zu=", name, i) < 0 || shell_quote_mem(out, p, (size_t)(m - p)) < 0 ||
		    sbuf_addc(out, '\n') < 0)
			return -1;
		if (m == end)
			return i + 1 == GATE_NPIECES ? 0 : PLUMB_EINVAL;
		if (i >= sizeof(gate_marks) || *m != gate_marks[i])
			return PLUMB_EINVAL;
		p = m + 1;
		i++;
	}
}

static const char gate_head[] =
	"#!/bin/sh\n"
	"# plumb-observe-gate for plumb " PLUMB_VERSION ", written by `plumb observe-gate`.\n"
	"# The forced command of a read-only SSH key (authorized_keys:\n"
	"# command=\"/usr/local/bin/plumb-observe-gate\",no-port-forwarding,...). It runs\n"
	"# only this plumb version's observation command, with arguments of the shapes\n"
	"# plumb sends; anything else is refused (stderr, logger, exit 1).\n"
	"# Regenerate it whenever plumb is upgraded.\n"
	"LC_ALL=C\n"
	"export LC_ALL\n"
	"set -f\n"
	"c=${SSH_ORIGINAL_COMMAND-}\n"
	"refuse() {\n"
	"\tprintf 'plumb-observe-gate: refused: %s\\n' \"$1\" >&2\n"
	"\tif command -v logger >/dev/null 2>&1; then\n"
	"\t\tlogger -t plumb-observe-gate -- \"refused ($1) from ${SSH_CLIENT%% *}: $(printf '%.160s' \"$c\" | tr -c '[:print:]' '?')\" 2>/dev/null\n"
	"\tfi\n"
	"\texit 1\n"
	"}\n"
	"name() {\n"
	"\tcase $1 in [A-Za-z0-9]*) ;; *) return 1 ;; esac\n"
	"\tcase $1 in *[!A-Za-z0-9._-]* | *..*) return 1 ;; esac\n"
	"\t[ ${#1} -le 128 ]\n"
	"}\n";

/*
 * Q<i>: the pieces of the command as it arrives (quoted), F<i>: the same
 * pieces as sh -c runs them; between them the token (t) and the arguments.
 * Only the pattern matches (case) and one byte count touch the whole
 * command: dash's ${x#"$y"} is quadratic in the length of y.
 */
static const char gate_body[] =
	"case $c in \"$Q0\"*) ;; *) refuse \"not plumb's observation command\" ;; esac\n"
	"r=${c#\"$Q0\"}\n"
	"t=$(printf '%.32s' \"$r\")\n"
	"case $t in *[!0-9a-f]*) refuse 'bad frame token' ;; esac\n"
	"[ ${#t} -eq 32 ] || refuse 'bad frame token'\n"
	"r=${r#\"$t\"}\n"
	"case $r in \"$Q1$t$Q2\"*) ;; *) refuse \"not this plumb's observation script\" ;; esac\n"
	"suf=$Q3$t$Q4$t$Q5\n"
	"case $r in *\"$suf\") ;; *) refuse 'not the framing of this plumb' ;; esac\n"
	"a=${r%\"$suf\"}\n"
	"n=$((${#a} - ${#Q1} - 32 - ${#Q2}))\n"
	"[ \"$n\" -gt 0 ] && [ \"$n\" -le 8192 ] || refuse 'arguments missing or too long'\n"
	"args=$(printf '%s' \"$a\" | tail -c \"$n\")\n"
	"case $args in *[!A-Za-z0-9._:\\ -]* | ' '* | *' ' | *'  '*) refuse 'argument outside [A-Za-z0-9._:-]' ;; esac\n"
	"[ \"$c\" = \"$Q0$t$Q1$t$Q2$args$suf\" ] || refuse 'not the exact command'\n"
	"set -- $args\n"
	"[ $# -ge 4 ] && [ $# -le 64 ] || refuse 'argument count'\n"
	"case $1 in *[!0-9a-f]*) refuse 'salt not hex' ;; esac\n"
	"[ ${#1} -eq 32 ] || refuse 'salt not 32 hex'\n"
	"name \"$2\" || refuse 'app directory'\n"
	"[ \"$3\" = \"lock-$2\" ] || refuse 'lock directory'\n"
	"shift 3\n"
	"for w; do\n"
	"\tcase $w in\n"
	"\ts:* | n:*) name \"${w#??}\" || refuse \"container selector $w\" ;;\n"
	"\tt:[0-9]*.[0-9]*) case ${w#t:} in *[!0-9.]* | *.*.*) refuse \"time $w\" ;; esac ;;\n"
	"\t*) refuse \"container selector $w\" ;;\n"
	"\tesac\n"
	"done\n"
	"exec sh -c \"$F0$t$F1$t$F2$args$F3$t$F4$t$F5\"\n";

int rec_gate_script(struct sbuf *out)
{
	struct prov_cmd obs, outer;
	struct sbuf inner, quoted, raw;
	char token[PROV_TOKEN_LEN + 1];
	int rc;

	prov_cmd_init(&obs);
	prov_cmd_init(&outer);
	sbuf_init(&inner, 0);
	sbuf_init(&quoted, 0);
	sbuf_init(&raw, 0);
	/* The observation command as docker_obs_build starts it; its words follow. */
	prov_cmd_begin(&obs, PROV_JOIN_SEQ);
	prov_cmd_args(&obs, "sh", "-c", docker_obs_script, DOCKER_OBS_ARGV0, NULL);
	rc = prov_cmd_render(&obs, &inner);
	if (rc == 0)
		rc = sbuf_addc(&inner, ' ') < 0 || sbuf_addc(&inner, GATE_ARGS) < 0 ? -1 : 0;
	if (rc == 0)
		rc = prov_frame_build_stdin(&quoted, inner.buf, token, 0);
	if (rc < 0)
		goto out;
	/* What sh -c receives: the third word of what arrives. */
	rc = prov_cmd_parse_strict(&outer, quoted.buf);
	if (rc < 0)
		goto out;
	if (outer.n != 1 || outer.v[0].argv.n != 3) {
		rc = PLUMB_EINVAL;
		goto out;
	}
	rc = sbuf_adds(&raw, outer.v[0].argv.v[2]);
	if (rc < 0)
		goto out;
	mark_token(&quoted, token);
	mark_token(&raw, token);
	rc = sbuf_adds(out, gate_head);
	if (rc == 0)
		rc = emit_pieces(out, "Q", &quoted);
	if (rc == 0)
		rc = emit_pieces(out, "F", &raw);
	if (rc == 0)
		rc = sbuf_adds(out, gate_body);
out:
	prov_cmd_release(&obs);
	prov_cmd_release(&outer);
	sbuf_release(&inner);
	sbuf_release(&quoted);
	sbuf_release(&raw);
	return rc;
}

int cmd_observe_gate(int argc, char **argv)
{
	struct sbuf s;
	int rc;

	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "plumb observe-gate: no arguments expected (see --help)\n");
		return REC_EXIT_ERROR;
	}
	sbuf_init(&s, 0);
	rc = rec_gate_script(&s);
	if (rc < 0) {
		fprintf(stderr, "plumb observe-gate: cannot build the gate: %s\n", plumb_strerror(rc));
		sbuf_release(&s);
		return REC_EXIT_ERROR;
	}
	fwrite(s.buf, 1, s.len, stdout);
	sbuf_release(&s);
	return REC_EXIT_OK;
}
