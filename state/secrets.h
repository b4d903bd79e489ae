/*
 * Kamal's secrets files: <secrets_path>-common, then <secrets_path> (or
 * <secrets_path>.<destination> instead of the plain file when a destination
 * is given); later files override earlier ones. secrets_path defaults to
 * ".kamal/secrets". Dotenv syntax as the dotenv gem parses it: KEY=value,
 * optional `export `, comments, single quotes (literal), double quotes
 * (escapes, expansion, may span lines), unquoted values (expansion, a
 * " #" starts a comment), $VAR / ${VAR} expansion (earlier keys first, then
 * the environment), and $(command) substitution.
 *
 * Commands run through t->run_fn (state/trust.h); without one they are
 * unavailable as in an untrusted run. Their output is a secret.
 *
 * Trust: untrusted, $(…) is not run and environment lookups are not made;
 * the affected secrets are "unavailable" (trust_note records why). A
 * secrets_path outside the repository is only read when trusted.
 * `$(kamal secrets …)` cannot run without Kamal: the secret is unavailable
 * and a warning names the alternative (the underlying CLI such as `op read`,
 * or an environment variable).
 *
 * A secret that cannot be resolved is never an error that prints the line:
 * it becomes an opaque unavailable value (and a warning naming only the key
 * and the file). Secret values are never put in diagnostics.
 */
#ifndef PLUMB_SECRETS_H
#define PLUMB_SECRETS_H

#include <stddef.h>

#include "state/source.h"
#include "state/trust.h"
#include "state/util.h"

struct secrets;

/* Both return 0 or PLUMB_ECONFIG (state/err.h); what is wrong is in d, each
 * message naming the file and line, never a value. */
int secrets_load(struct secrets **out, struct source *src, const char *secrets_path,
		 const char *destination, struct trust *t, struct diags *d);
/* Parses one dotenv text into s (later keys override); used by secrets_load
 * and by tests. `cwd` is where $(…) runs. */
int secrets_parse(struct secrets *s, const char *file, const char *text, size_t len,
		  const char *cwd, struct trust *t, struct diags *d);
struct secrets *secrets_new(void);

/* The value of a secret: NULL if not defined. *available is 0 when it is
 * defined but could not be resolved (then the return value is
 * PLUMB_UNAVAILABLE). */
const char *secrets_get(const struct secrets *s, const char *name, int *available);
size_t secrets_count(const struct secrets *s);
/* True when a secrets file was deliberately not read (a secrets_path outside
 * the repository while untrusted): a name that secrets_get does not know may
 * then still be a real secret, so callers should treat it as unavailable
 * rather than as an error. */
int secrets_skipped(const struct secrets *s);
const char *secrets_name_at(const struct secrets *s, size_t i);
/* Wipes every value before freeing. */
void secrets_free(struct secrets *s);

#endif
