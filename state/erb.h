/*
 * The ERB subset plumb understands in deploy.yml.
 *
 * Kamal runs ERB over the whole file before YAML parsing. plumb instead
 * replaces each tag with a marker (erb_extract), parses the YAML, and
 * evaluates a tag only when the key that holds it is one plumb uses
 * (erb_expand). So ERB in ignored keys (builder.arch) is never evaluated,
 * and a refused form names the file, the tag's line and the key.
 *
 * Accepted output tags (<%= … %>, also with -%>):
 *   ENV["X"]  ENV['X']            → value, "" when unset (Ruby's nil to_s)
 *   ENV.fetch("X")                → value; unset is an error naming X
 *   ENV.fetch("X", "default")     → value or the default
 *   "literal"  'literal'          → the literal
 *   %x(cmd)  %x{cmd}  `cmd`       → the command's stdout (trusted only)
 * Comment tags (<%# … %>) produce nothing. Anything else — including control
 * flow (<% if … %>) — is refused.
 *
 * Untrusted: ENV lookups and command output are not performed; they produce
 * PLUMB_UNAVAILABLE and are recorded with trust_note.
 */
#ifndef PLUMB_ERB_H
#define PLUMB_ERB_H

#include <stddef.h>

#include "state/trust.h"
#include "state/util.h"

struct erb_tag {
	int line, col;   /* position of "<%" in the original file */
	char *text;      /* the whole tag as written, for messages */
	char *code;      /* the Ruby between the delimiters, trimmed */
	char *marker;    /* what replaced the tag in the text */
	int comment;     /* <%# … %> */
	int output;      /* <%= … %> */
};

struct erb_set {
	struct erb_tag *v;
	size_t n, cap;
};

/*
 * Returns in *out_text a copy of text with every tag replaced by a marker made
 * only of [a-z0-9_] (safe inside plain and quoted YAML scalars). Comment tags
 * are replaced by nothing. An unterminated tag or a non-output, non-comment
 * tag is an error (file:line:col and the tag in d) and returns PLUMB_ECONFIG.
 */
int erb_extract(const char *file, const char *text, size_t len, char **out_text,
		size_t *out_len, struct erb_set *set, struct diags *d);

/* True if s contains any marker. */
int erb_has_marker(const char *s);

/*
 * Evaluates every marker in s and returns the substituted string in *out
 * (a copy of s when there is none). `keypath` (e.g. "registry.password")
 * and `file` are for messages. Commands run with `cwd` as their working
 * directory (NULL: the current one). Returns PLUMB_ECONFIG and adds an error
 * naming file:line, the tag and the key for a refused or failed tag.
 */
int erb_expand(const struct erb_set *set, const char *s, const char *file,
	       const char *keypath, struct trust *t, const char *cwd, char **out,
	       struct diags *d);

/* What erb_expand_flags reports about the tags it evaluated in one value. */
enum erb_flags {
	ERB_SENSITIVE = 1 << 0,   /* a part came from ENV or a command: never print it */
	ERB_UNAVAILABLE = 1 << 1, /* a part was not computed (untrusted): the value is a placeholder */
};
/* erb_expand, also OR-ing enum erb_flags into *flags (which it first clears). */
int erb_expand_flags(const struct erb_set *set, const char *s, const char *file,
		     const char *keypath, struct trust *t, const char *cwd, char **out,
		     unsigned *flags, struct diags *d);

void erb_set_release(struct erb_set *set);

#endif
