/*
 * YAML loader: libyaml's event API → a ynode tree, resolved as Ruby Psych
 * resolves scalars (Psych::ScalarScanner#tokenize and ToRuby#deserialize).
 *
 * The input is untrusted (the fuzzer feeds it), so everything is bounded: the
 * input size (SOURCE_MAX_FILE), the nesting depth and the number of nodes the
 * tree has once aliases are expanded (YDOC_MAX_DEPTH, YDOC_MAX_NODES), and the
 * work spent copying merged pairs. Aliases share nodes, so the tree is a DAG;
 * each node carries its expanded size and height so the caps hold for anyone
 * who later walks it as a tree.
 */
#include "state/yaml.h"

#include <ctype.h>
#include <limits.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "state/source.h"

/* Work units (node events, alias uses, merged pairs) one load may spend. */
#define YDOC_MAX_WORK (10u * YDOC_MAX_NODES)
/* Non-decimal integer literals longer than this are refused (conversion to
 * decimal is quadratic). */
#define YDOC_MAX_INT_DIGITS 4096

/* Every node this module hands out is the first member of one of these. */
struct ynode_x {
	struct ynode n;
	size_t weight; /* nodes in the expanded tree rooted here */
	int height;    /* levels in the expanded tree rooted here (1 = leaf) */
	int str_tag;   /* scalar tagged !!str: never a merge key */
};

static struct ynode_x *X(const struct ynode *n)
{
	return (struct ynode_x *)(uintptr_t)n;
}

struct ydoc {
	void **ptrs; /* the arena: every allocation, freed by ydoc_free */
	size_t n, cap;
	struct ynode *root;
	const char *file;
};

/* ---- arena ---------------------------------------------------------- */

static void *arena_alloc(struct ydoc *doc, size_t size)
{
	void *p = xcalloc(1, size);

	if (doc->n == doc->cap) {
		doc->cap = doc->cap ? doc->cap * 2 : 64;
		doc->ptrs = xrealloc(doc->ptrs, doc->cap * sizeof(*doc->ptrs));
	}
	doc->ptrs[doc->n++] = p;
	return p;
}

static char *arena_strdup(struct ydoc *doc, const char *s)
{
	size_t len = strlen(s);
	char *p = arena_alloc(doc, len + 1);

	memcpy(p, s, len);
	return p;
}

static struct ydoc *ydoc_alloc(const char *file)
{
	struct ydoc *doc = xcalloc(1, sizeof(*doc));

	doc->file = arena_strdup(doc, file ? file : "");
	return doc;
}

void ydoc_free(struct ydoc *doc)
{
	if (!doc)
		return;
	for (size_t i = 0; i < doc->n; i++)
		free(doc->ptrs[i]);
	free(doc->ptrs);
	free(doc);
}

struct ynode *ydoc_root(const struct ydoc *doc)
{
	return doc ? doc->root : NULL;
}

void ydoc_set_root(struct ydoc *doc, struct ynode *root)
{
	doc->root = root;
}

static struct ynode_x *node_new(struct ydoc *doc, enum ykind kind, const char *file, int line,
				int col)
{
	struct ynode_x *x = arena_alloc(doc, sizeof(*x));

	x->n.kind = kind;
	x->n.file = file ? file : doc->file;
	x->n.line = line;
	x->n.col = col;
	x->weight = 1;
	x->height = 1;
	return x;
}

/* ---- a string → value hash table (anchors, map keys) ----------------- */

struct strmap {
	char **keys;
	uintptr_t *vals;
	size_t cap, n; /* cap is 0 or a power of two */
};

static uint64_t str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static size_t strmap_slot(const struct strmap *m, const char *key)
{
	size_t i = (size_t)str_hash(key) & (m->cap - 1);

	while (m->keys[i] && strcmp(m->keys[i], key) != 0)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static uintptr_t *strmap_find(const struct strmap *m, const char *key)
{
	size_t i;

	if (!m->cap)
		return NULL;
	i = strmap_slot(m, key);
	return m->keys[i] ? &m->vals[i] : NULL;
}

static void strmap_put(struct strmap *m, const char *key, uintptr_t val)
{
	size_t i;

	if ((m->n + 1) * 2 > m->cap) {
		struct strmap old = *m;

		m->cap = m->cap ? m->cap * 2 : 16;
		m->keys = xcalloc(m->cap, sizeof(*m->keys));
		m->vals = xcalloc(m->cap, sizeof(*m->vals));
		for (size_t j = 0; j < old.cap; j++) {
			if (!old.keys[j])
				continue;
			i = strmap_slot(m, old.keys[j]);
			m->keys[i] = old.keys[j];
			m->vals[i] = old.vals[j];
		}
		free(old.keys);
		free(old.vals);
	}
	i = strmap_slot(m, key);
	if (!m->keys[i]) {
		m->keys[i] = xstrdup(key);
		m->n++;
	}
	m->vals[i] = val;
}

static void strmap_clear(struct strmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->keys[i]);
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

/*
 * The identity of a hash key as Ruby compares them (eql?): 1, "1", :"1" and
 * 1.0 are four different keys. With loose set, strings and symbols compare
 * equal (Kamal symbolizes the top-level keys before merging overlays).
 */
static char *key_ident(const struct ynode *k, int loose)
{
	int sym = k->is_symbol && !(loose && k->kind == Y_STR);

	return xasprintf("%d%d:%s", (int)k->kind, sym, k->str ? k->str : "");
}

/* ---- Ruby number formatting ------------------------------------------ */

/* Float#to_s: shortest round-trip digits, fixed notation for 1e-4 <= |v| < 1e16. */
static char *ruby_float_to_s(double v)
{
	char e[64], digits[32], out[96];
	int decpt, nd = 0, exp10, neg;
	char *p;
	struct sbuf sb;

	if (isnan(v))
		return xstrdup("NaN");
	if (isinf(v))
		return xstrdup(v > 0 ? "Infinity" : "-Infinity");
	if (v == 0)
		return xstrdup(signbit(v) ? "-0.0" : "0.0");
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(e, sizeof(e), "%.*e", prec - 1, v);
		if (strtod(e, NULL) == v)
			break;
	}
	neg = e[0] == '-';
	for (p = e + neg; *p && *p != 'e'; p++)
		if (isdigit((unsigned char)*p))
			digits[nd++] = *p;
	exp10 = *p == 'e' ? atoi(p + 1) : 0;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = '\0';
	decpt = exp10 + 1;

	sbuf_init(&sb, 0);
	if (neg)
		sbuf_addc(&sb, '-');
	if (decpt > 0 && decpt <= 16) {
		if (decpt >= nd) {
			sbuf_adds(&sb, digits);
			for (int i = nd; i < decpt; i++)
				sbuf_addc(&sb, '0');
			sbuf_adds(&sb, ".0");
		} else {
			sbuf_add(&sb, digits, (size_t)decpt);
			sbuf_addc(&sb, '.');
			sbuf_adds(&sb, digits + decpt);
		}
	} else if (decpt <= 0 && decpt > -4) {
		sbuf_adds(&sb, "0.");
		for (int i = decpt; i < 0; i++)
			sbuf_addc(&sb, '0');
		sbuf_adds(&sb, digits);
	} else {
		snprintf(out, sizeof(out), "%c.%se%+03d", digits[0], nd > 1 ? digits + 1 : "0",
			 decpt - 1);
		sbuf_adds(&sb, out);
	}
	return sbuf_detach(&sb);
}

static int digit_val(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return 99;
}

/* Digits in `base` (no sign, no separators) → decimal text; NULL if too long. */
static char *digits_to_decimal(const char *s, size_t len, int base, int neg)
{
	uint32_t *limb; /* little-endian, base 1e9 */
	size_t nl = 1, start;
	struct sbuf sb;
	char buf[16];

	while (len > 1 && *s == '0')
		s++, len--;
	if (len > YDOC_MAX_INT_DIGITS)
		return NULL;
	limb = xcalloc(len + 1, sizeof(*limb));
	for (size_t i = 0; i < len; i++) {
		uint64_t carry = (uint64_t)digit_val((unsigned char)s[i]);

		for (size_t j = 0; j < nl; j++) {
			uint64_t t = (uint64_t)limb[j] * (uint64_t)base + carry;

			limb[j] = (uint32_t)(t % 1000000000u);
			carry = t / 1000000000u;
		}
		if (carry)
			limb[nl++] = (uint32_t)carry;
	}
	sbuf_init(&sb, 0);
	start = nl;
	if (neg && !(nl == 1 && limb[0] == 0))
		sbuf_addc(&sb, '-');
	snprintf(buf, sizeof(buf), "%u", (unsigned)limb[start - 1]);
	sbuf_adds(&sb, buf);
	for (size_t j = start - 1; j-- > 0;) {
		snprintf(buf, sizeof(buf), "%09u", (unsigned)limb[j]);
		sbuf_adds(&sb, buf);
	}
	free(limb);
	return sbuf_detach(&sb);
}

/* ---- scalar resolution (Psych::ScalarScanner#tokenize) ---------------- */

struct resolved {
	enum ykind kind;
	char *str;     /* malloc'd */
	int is_symbol;
	const char *invalid; /* Psych would raise: why (str is NULL then) */
};

static int in_string_class(int c)
{
	/* [[:alpha:]_\s!@#$%^&*(){}<>|/\\~;=]; bytes >= 0x80 count as letters
	 * (whether they do never changes the outcome: such scalars are strings). */
	if (c == 0)
		return 0;
	return isalpha(c) || c >= 0x80 || c == '_' || strchr(" \t\n\v\f\r", c) ||
	       strchr("!@#$%^&*(){}<>|/\\~;=", c);
}

static size_t utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/* Ruby's ^word$ with /i: some line of s is exactly `word`, any case. */
static int line_is(const char *s, const char *word)
{
	size_t wl = strlen(word);

	for (const char *line = s; line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		size_t ll = strcspn(line, "\n");

		if (ll == wl && strncasecmp(line, word, wl) == 0)
			return 1;
	}
	return 0;
}

/* Ruby's /^[^ytonf~]/i: some line starts with another character. */
static int some_line_starts_other(const char *s)
{
	for (const char *line = s; line; line = strchr(line, '\n'), line = line ? line + 1 : NULL)
		if (*line && *line != '\n' && !strchr("ytonfYTONF~", *line))
			return 1;
	return 0;
}

static int match_ci(const char *s, const char *word)
{
	return strcasecmp(s, word) == 0;
}

/* [-+]?[0-9][0-9_]*(:[0-5]?[0-9]){1,2} followed by end (0) or "." [0-9_]* (1). */
static int match_sexagesimal(const char *s, int want_float)
{
	const char *p = s;
	int groups = 0;

	if (*p == '-' || *p == '+')
		p++;
	if (!isdigit((unsigned char)*p))
		return 0;
	while (isdigit((unsigned char)*p) || *p == '_')
		p++;
	while (*p == ':') {
		size_t nd = 0;

		p++;
		while (isdigit((unsigned char)p[nd]))
			nd++;
		if (nd == 0 || nd > 2 || (nd == 2 && p[0] > '5'))
			return 0;
		p += nd;
		groups++;
	}
	if (groups < 1 || groups > 2)
		return 0;
	if (!want_float)
		return *p == '\0';
	if (*p++ != '.')
		return 0;
	while (isdigit((unsigned char)*p) || *p == '_')
		p++;
	return *p == '\0';
}

/* Ruby's String#to_i on a sexagesimal part: sign, digits with single '_'. */
static int ruby_to_i(const char *s, size_t len, long long *out)
{
	long long v = 0;
	int neg = 0;
	size_t i = 0;

	if (i < len && (s[i] == '-' || s[i] == '+'))
		neg = s[i++] == '-';
	for (; i < len; i++) {
		if (s[i] == '_' && i + 1 < len && isdigit((unsigned char)s[i + 1]) && i > 0 &&
		    isdigit((unsigned char)s[i - 1]))
			continue;
		if (!isdigit((unsigned char)s[i]))
			break;
		if (v > (LLONG_MAX - 9) / 10)
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = neg ? -v : v;
	return 0;
}

/* Psych: i += part * 60 ** (index - 2).abs, parts split on ':'. */
static int sexagesimal_value(const char *s, int as_float, struct resolved *r)
{
	static const long long pow60[] = { 1, 60, 3600 };
	long long acc = 0;
	double facc = 0;
	const char *part = s;

	for (int e = 0; part; e++) {
		const char *end = strchr(part, ':');
		size_t len = end ? (size_t)(end - part) : strlen(part);
		long long k = pow60[e > 2 ? e - 2 : 2 - e];

		if (as_float) {
			char *tmp = xstrndup(part, len), *w = tmp;

			/* String#to_f ignores '_' between digits */
			for (char *q = tmp; *q; q++)
				if (*q != '_')
					*w++ = *q;
			*w = '\0';
			facc += strtod(tmp, NULL) * (double)k;
			free(tmp);
		} else {
			long long v;

			if (ruby_to_i(part, len, &v) < 0 || __builtin_mul_overflow(v, k, &v) ||
			    __builtin_add_overflow(acc, v, &acc))
				return -1;
		}
		part = end ? end + 1 : NULL;
	}
	if (as_float) {
		r->kind = Y_FLOAT;
		r->str = ruby_float_to_s(facc);
	} else {
		r->kind = Y_INT;
		r->str = xasprintf("%lld", acc);
	}
	return 0;
}

/* FLOAT = ^[-+]?([0-9][0-9_,]*)?\.[0-9]*([eE][-+][0-9]+)?$ */
static int match_float(const char *s)
{
	const char *p = s;

	if (*p == '-' || *p == '+')
		p++;
	if (isdigit((unsigned char)*p))
		while (isdigit((unsigned char)*p) || *p == '_' || *p == ',')
			p++;
	if (*p++ != '.')
		return 0;
	while (isdigit((unsigned char)*p))
		p++;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p != '-' && *p != '+')
			return 0;
		p++;
		if (!isdigit((unsigned char)*p))
			return 0;
		while (isdigit((unsigned char)*p))
			p++;
	}
	return *p == '\0';
}

/* Float(s.delete(',_').gsub(/\.([Ee]|$)/, '\1')) */
static void float_value(const char *s, struct resolved *r)
{
	char *t = xmalloc(strlen(s) + 1), *w = t;
	const char *mant;
	double v;

	for (const char *p = s; *p; p++) {
		if (*p == ',' || *p == '_')
			continue;
		if (*p == '.' && (p[1] == 'e' || p[1] == 'E' || p[1] == '\0'))
			continue;
		*w++ = *p;
	}
	*w = '\0';
	mant = t + (*t == '-' || *t == '+');
	/* Float() needs a digit in the mantissa ("e+5" raises ArgumentError) */
	if (!isdigit((unsigned char)mant[0]) && !(mant[0] == '.' && isdigit((unsigned char)mant[1]))) {
		r->invalid = "invalid value for Float()";
		free(t);
		return;
	}
	errno = 0;
	v = strtod(t, NULL);
	free(t);
	r->kind = Y_FLOAT;
	r->str = ruby_float_to_s(v);
}

/* INTEGER_LEGACY; returns the base (2, 8, 10, 16) or 0 if no match. */
static int match_int(const char *s)
{
	const char *p = s;

	if (*p == '-' || *p == '+')
		p++;
	if (p[0] == '0' && p[1] == 'b') {
		p += 2;
		if (!*p)
			return 0;
		for (; *p; p++)
			if (!strchr("01_,", *p))
				return 0;
		return 2;
	}
	if (p[0] == '0' && p[1] == 'x') {
		p += 2;
		if (!*p)
			return 0;
		for (; *p; p++)
			if (!isxdigit((unsigned char)*p) && *p != '_' && *p != ',')
				return 0;
		return 16;
	}
	if (p[0] == '0') {
		if (!p[1])
			return 10;
		for (p++; *p; p++)
			if (!strchr("01234567_,", *p))
				return 0;
		return 8;
	}
	if (*p < '1' || *p > '9')
		return 0;
	for (p++; *p; p++) {
		if (isdigit((unsigned char)*p))
			continue;
		if ((*p == ',' || *p == '_') && isdigit((unsigned char)p[1])) {
			p++;
			continue;
		}
		return 0;
	}
	return 10;
}

/* Integer(s.delete(',_')) printed as Ruby prints it. */
static void int_value(const char *s, int base, struct resolved *r)
{
	char *t = xmalloc(strlen(s) + 1), *w = t, *d;
	int neg = 0;

	for (const char *p = s; *p; p++)
		if (*p != ',' && *p != '_')
			*w++ = *p;
	*w = '\0';
	d = t;
	if (*d == '-' || *d == '+')
		neg = *d++ == '-';
	if (base == 2 || base == 16)
		d += 2; /* 0b, 0x */
	if (!*d) {
		r->invalid = "invalid value for Integer()"; /* "0x_" → Integer("0x") */
		free(t);
		return;
	}
	r->kind = Y_INT;
	r->str = digits_to_decimal(d, strlen(d), base, neg);
	if (!r->str)
		r->invalid = "integer literal too long";
	free(t);
}

static void resolve_plain(const char *s, struct resolved *r)
{
	memset(r, 0, sizeof(*r));
	r->kind = Y_STR;
	if (!*s) {
		r->kind = Y_NULL;
		r->str = xstrdup("");
		return;
	}
	/* Words: /^[^\d.:-]?[[:alpha:]_\s!@#$%^&*(){}<>|/\\~;=]+/ or any newline */
	if (strchr(s, '\n') || in_string_class((unsigned char)s[0]) ||
	    (!isdigit((unsigned char)s[0]) && !strchr(".:-", s[0]) &&
	     in_string_class((unsigned char)s[1]))) {
		if (utf8_chars(s) > 5 || some_line_starts_other(s))
			goto string;
		if (strcmp(s, "~") == 0 || line_is(s, "null")) {
			r->kind = Y_NULL;
			r->str = xstrdup("");
		} else if (line_is(s, "yes") || line_is(s, "true") || line_is(s, "on")) {
			r->kind = Y_BOOL;
			r->str = xstrdup("true");
		} else if (line_is(s, "no") || line_is(s, "false") || line_is(s, "off")) {
			r->kind = Y_BOOL;
			r->str = xstrdup("false");
		} else {
			goto string;
		}
		return;
	}
	/* Times and dates stay strings (see yaml.h). */
	if (match_ci(s, ".inf") || match_ci(s, "+.inf")) {
		r->kind = Y_FLOAT;
		r->str = xstrdup("Infinity");
		return;
	}
	if (match_ci(s, "-.inf")) {
		r->kind = Y_FLOAT;
		r->str = xstrdup("-Infinity");
		return;
	}
	if (match_ci(s, ".nan")) {
		r->kind = Y_FLOAT;
		r->str = xstrdup("NaN");
		return;
	}
	if (s[0] == ':' && s[1]) {
		const char *q = (s[1] == '"' || s[1] == '\'') ? strrchr(s + 2, s[1]) : NULL;

		r->is_symbol = 1;
		if (q) {
			const char *in = s + 2;

			if (*in == ':' && in < q)
				in++;
			r->str = xstrndup(in, (size_t)(q - in));
		} else {
			r->str = xstrdup(s + 1);
		}
		return;
	}
	if (match_sexagesimal(s, 0)) {
		if (sexagesimal_value(s, 0, r) == 0)
			return;
		goto string; /* beyond 64 bits: kept as text */
	}
	if (match_sexagesimal(s, 1)) {
		sexagesimal_value(s, 1, r);
		return;
	}
	if (match_float(s)) {
		const char *m = s + (s[0] == '-' || s[0] == '+');

		if (strcmp(m, ".") == 0)
			goto string;
		float_value(s, r);
		return;
	}
	{
		int base = match_int(s);

		if (base) {
			int_value(s, base, r);
			return;
		}
	}
string:
	r->kind = Y_STR;
	r->is_symbol = 0;
	free(r->str);
	r->str = xstrdup(s);
}

/* ---- the loader ------------------------------------------------------- */

struct frame {
	struct ynode_x *node;
	char *anchor; /* registered when the collection is complete */
	struct ynode **a, **b; /* SEQ: items in a; MAP: keys in a, values in b */
	size_t n, cap;
	struct ynode *key; /* MAP: key waiting for its value */
	int key_from_alias;
	struct strmap index; /* MAP: key identity → position + 1 */
	size_t weight;
};

struct loader {
	struct ydoc *doc;
	struct diags *d;
	struct frame *st;
	size_t depth, cap;
	struct strmap anchors; /* name → struct ynode_x * (0 = still open) */
	size_t work;
	int value_from_alias;
};

static int lerr(struct loader *l, int line, int col, const char *fmt, ...) PLUMB_PRINTF(4, 5);
static int lerr(struct loader *l, int line, int col, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	diags_err(l->d, l->doc->file, line, col, "%s", msg);
	free(msg);
	return -1;
}

static void frame_push_slot(struct frame *f, int pairs)
{
	if (f->n < f->cap)
		return;
	f->cap = f->cap ? f->cap * 2 : 8;
	f->a = xrealloc(f->a, f->cap * sizeof(*f->a));
	if (pairs)
		f->b = xrealloc(f->b, f->cap * sizeof(*f->b));
}

static int charge(struct loader *l, size_t units, const struct ynode *at)
{
	l->work += units;
	if (l->work > YDOC_MAX_WORK)
		return lerr(l, at->line, at->col,
			    "document too complex: more than %u nodes, aliases and merged keys",
			    (unsigned)YDOC_MAX_WORK);
	return 0;
}

/* Adds w nodes to the open collection; `at` (may be NULL) is the key or item
 * that brought them, named in the error. */
static int frame_add_weight(struct loader *l, struct frame *f, size_t w, const struct ynode *at)
{
	f->weight += w;
	if (f->weight <= YDOC_MAX_NODES)
		return 0;
	if (at && at->str)
		return lerr(l, at->line, at->col,
			    "document expands to more than %u nodes at '%.100s' (too many aliases?)",
			    (unsigned)YDOC_MAX_NODES, at->str);
	return lerr(l, f->node->n.line, f->node->n.col,
		    "document expands to more than %u nodes (too many aliases?)",
		    (unsigned)YDOC_MAX_NODES);
}

/* hash[key] = val as Ruby does it: an existing key keeps its place. */
static int map_set(struct loader *l, struct frame *f, struct ynode *k, struct ynode *v)
{
	char *id = key_ident(k, 0);
	uintptr_t *pos = strmap_find(&f->index, id);
	int rc;

	if (pos) {
		size_t i = *pos - 1;

		f->weight -= X(f->b[i])->weight;
		f->b[i] = v;
		rc = frame_add_weight(l, f, X(v)->weight, k);
	} else if (f->n >= YDOC_MAX_MAP_KEYS) {
		rc = lerr(l, k->line, k->col, "more than %u keys in one hash (at key '%.100s')",
			  (unsigned)YDOC_MAX_MAP_KEYS, k->str ? k->str : "");
	} else {
		frame_push_slot(f, 1);
		f->a[f->n] = k;
		f->b[f->n] = v;
		f->n++;
		strmap_put(&f->index, id, f->n);
		rc = frame_add_weight(l, f, X(k)->weight + X(v)->weight, k);
	}
	free(id);
	return rc;
}

static int is_merge_key(const struct ynode *k)
{
	return k->kind == Y_STR && !k->is_symbol && !X(k)->str_tag && strcmp(k->str, "<<") == 0;
}

/*
 * Psych's revive_hash: `<<: map` is hash.merge!(map) — merged pairs overwrite
 * keys already present and explicit keys that come later overwrite merged
 * ones; `<<: [m1, m2]` merges m2 then m1 into a fresh hash first, so earlier
 * maps win. Psych keeps any other value as a literal "<<" key; we refuse it.
 */
static int map_merge(struct loader *l, struct frame *f, struct ynode *k, struct ynode *v,
		     int from_alias)
{
	if (v->kind == Y_MAP) {
		if (charge(l, v->n, k) < 0)
			return -1;
		for (size_t i = 0; i < v->n; i++)
			if (map_set(l, f, v->keys[i], v->vals[i]) < 0)
				return -1;
		return 0;
	}
	if (v->kind == Y_SEQ && !from_alias) {
		struct frame h = { 0 };
		int rc = 0;

		h.node = f->node;
		for (size_t i = 0; i < v->n; i++)
			if (v->items[i]->kind != Y_MAP)
				return lerr(l, v->items[i]->line, v->items[i]->col,
					    "merge key '<<' needs hashes to merge, not %s",
					    ykind_name(v->items[i]->kind));
		for (size_t i = v->n; rc == 0 && i-- > 0;) {
			const struct ynode *m = v->items[i];

			rc = charge(l, m->n, k);
			for (size_t j = 0; rc == 0 && j < m->n; j++)
				rc = map_set(l, &h, m->keys[j], m->vals[j]);
		}
		if (rc == 0)
			rc = charge(l, h.n, k);
		for (size_t j = 0; rc == 0 && j < h.n; j++)
			rc = map_set(l, f, h.a[j], h.b[j]);
		free(h.a);
		free(h.b);
		strmap_clear(&h.index);
		return rc;
	}
	return lerr(l, k->line, k->col, "merge key '<<' needs a hash or a list of hashes, not %s",
		    v->kind == Y_SEQ ? "an alias of a list" : ykind_name(v->kind));
}

/* Places a finished node (or an alias of one) into the open collection. */
static int place(struct loader *l, struct ynode *n, int from_alias)
{
	struct frame *f;

	if (l->depth + (size_t)X(n)->height > YDOC_MAX_DEPTH)
		return lerr(l, n->line, n->col, "nesting deeper than %d levels",
			    YDOC_MAX_DEPTH);
	if (l->depth == 0) {
		if (!l->doc->root)
			l->doc->root = n;
		return 0;
	}
	f = &l->st[l->depth - 1];
	if (f->node->n.kind == Y_SEQ) {
		frame_push_slot(f, 0);
		f->a[f->n++] = n;
		return frame_add_weight(l, f, X(n)->weight, NULL);
	}
	if (!f->key) {
		if (!ynode_is_scalar(n))
			return lerr(l, n->line, n->col,
				    "a hash key must be a scalar, not %s (complex keys are not supported)",
				    ykind_name(n->kind));
		f->key = n;
		f->key_from_alias = from_alias;
		return 0;
	}
	{
		struct ynode *k = f->key;

		f->key = NULL;
		if (is_merge_key(k))
			return map_merge(l, f, k, n, from_alias);
		return map_set(l, f, k, n);
	}
}

static int register_anchor(struct loader *l, const char *anchor, struct ynode_x *x)
{
	if (anchor)
		strmap_put(&l->anchors, anchor, (uintptr_t)x);
	return 0;
}

static int open_collection(struct loader *l, enum ykind kind, const yaml_mark_t *mark,
			   const char *anchor)
{
	struct frame *f;
	struct ynode_x *x = node_new(l->doc, kind, NULL, (int)mark->line + 1, (int)mark->column + 1);

	if (charge(l, 1, &x->n) < 0)
		return -1;
	if (l->depth + 1 > YDOC_MAX_DEPTH)
		return lerr(l, x->n.line, x->n.col, "nesting deeper than %d levels",
			    YDOC_MAX_DEPTH);
	if (l->depth == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->st = xrealloc(l->st, l->cap * sizeof(*l->st));
	}
	f = &l->st[l->depth++];
	memset(f, 0, sizeof(*f));
	f->node = x;
	f->weight = 1;
	if (anchor) {
		f->anchor = xstrdup(anchor);
		strmap_put(&l->anchors, anchor, 0); /* open: an alias to it is a cycle */
	}
	return 0;
}

static void frame_release(struct frame *f)
{
	free(f->anchor);
	free(f->a);
	free(f->b);
	strmap_clear(&f->index);
}

static int close_collection(struct loader *l)
{
	struct frame *f = &l->st[l->depth - 1];
	struct ynode_x *x = f->node;
	struct ynode **arr = NULL;
	int h = 0, rc;

	x->n.n = f->n;
	if (f->n) {
		arr = arena_alloc(l->doc, f->n * sizeof(*arr));
		memcpy(arr, f->a, f->n * sizeof(*arr));
	}
	for (size_t i = 0; i < f->n; i++) {
		if (X(f->a[i])->height > h)
			h = X(f->a[i])->height;
		if (x->n.kind == Y_MAP && X(f->b[i])->height > h)
			h = X(f->b[i])->height;
	}
	if (x->n.kind == Y_SEQ) {
		x->n.items = arr;
	} else {
		x->n.keys = arr;
		if (f->n) {
			x->n.vals = arena_alloc(l->doc, f->n * sizeof(*x->n.vals));
			memcpy(x->n.vals, f->b, f->n * sizeof(*x->n.vals));
		}
	}
	x->height = h + 1;
	x->weight = f->weight;
	register_anchor(l, f->anchor, x);
	frame_release(f);
	l->depth--;
	rc = place(l, &x->n, 0);
	return rc;
}

static int is_str_tag(const char *tag)
{
	return strcmp(tag, "tag:yaml.org,2002:str") == 0 || strcmp(tag, "!str") == 0 ||
	       strncmp(tag, "!str:", 5) == 0 || strncmp(tag, "!ruby/string", 12) == 0;
}

static int scalar_event(struct loader *l, const yaml_event_t *ev)
{
	const char *val = (const char *)ev->data.scalar.value;
	const char *tag = (const char *)ev->data.scalar.tag;
	struct ynode_x *x = node_new(l->doc, Y_STR, NULL, (int)ev->start_mark.line + 1,
				     (int)ev->start_mark.column + 1);
	struct resolved r = { 0 };

	if (charge(l, 1, &x->n) < 0)
		return -1;
	if (!tag && ev->data.scalar.quoted_implicit) {
		x->n.quoted = 1;
		x->n.str = arena_strdup(l->doc, val);
	} else if (tag && is_str_tag(tag)) {
		x->n.quoted = 1;
		x->str_tag = 1;
		x->n.str = arena_strdup(l->doc, val);
	} else if (tag && (strncmp(tag, "!ruby/sym", 9) == 0)) {
		x->n.is_symbol = 1;
		x->n.str = arena_strdup(l->doc, val);
	} else if (tag && (strcmp(tag, "!binary") == 0 ||
			   strcmp(tag, "tag:yaml.org,2002:binary") == 0 ||
			   strncmp(tag, "!ruby/", 6) == 0)) {
		return lerr(l, x->n.line, x->n.col, "unsupported tag %s", tag);
	} else {
		/* untagged plain, or any other tag: Psych tokenizes the text */
		resolve_plain(val, &r);
		if (r.invalid) {
			lerr(l, x->n.line, x->n.col, "%s: \"%s\"", r.invalid, val);
			free(r.str);
			return -1;
		}
		if (tag && (strcmp(tag, "tag:yaml.org,2002:float") == 0 ||
			    strcmp(tag, "!float") == 0)) {
			if (r.kind == Y_INT) {
				char *f = ruby_float_to_s(strtod(r.str, NULL));

				free(r.str);
				r.str = f;
				r.kind = Y_FLOAT;
			} else if (r.kind != Y_FLOAT) {
				free(r.str);
				return lerr(l, x->n.line, x->n.col,
					    "invalid value for Float(): \"%s\"", val);
			}
		}
		x->n.kind = r.kind;
		x->n.is_symbol = r.is_symbol;
		x->n.str = arena_strdup(l->doc, r.str);
		free(r.str);
	}
	register_anchor(l, (const char *)ev->data.scalar.anchor, x);
	return place(l, &x->n, 0);
}

static int alias_event(struct loader *l, const yaml_event_t *ev)
{
	const char *name = (const char *)ev->data.alias.anchor;
	uintptr_t *p = strmap_find(&l->anchors, name);
	int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
	struct ynode *n;

	if (!p)
		return lerr(l, line, col, "unknown alias *%s (no anchor &%s before it)", name,
			    name);
	if (!*p)
		return lerr(l, line, col, "alias *%s refers to a node that contains it", name);
	n = (struct ynode *)*p;
	if (charge(l, 1, n) < 0)
		return -1;
	return place(l, n, 1);
}

static void syntax_error(struct loader *l, const yaml_parser_t *p, const char *text, size_t len)
{
	int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;
	const char *problem = p->problem ? p->problem : "invalid YAML";

	if (p->error == YAML_READER_ERROR) {
		/* reader errors carry a byte offset, not a mark */
		line = 1;
		col = 1;
		for (size_t i = 0; i < p->problem_offset && i < len; i++) {
			if (text[i] == '\n') {
				line++;
				col = 1;
			} else {
				col++;
			}
		}
	}
	if (p->context)
		lerr(l, line, col, "%s %s (line %d, column %d)", problem, p->context,
		     (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
	else
		lerr(l, line, col, "%s", problem);
}

int ydoc_load_string(struct ydoc **out, const char *file, const char *text, size_t len,
		     struct diags *d)
{
	struct loader l = { 0 };
	yaml_parser_t parser;
	yaml_event_t ev;
	int parser_ok = 0, rc = -1, done = 0;

	*out = NULL;
	l.doc = ydoc_alloc(file);
	l.d = d;
	if (len > SOURCE_MAX_FILE) {
		lerr(&l, 0, 0, "file is larger than %u bytes", (unsigned)SOURCE_MAX_FILE);
		goto out;
	}
	if (!yaml_parser_initialize(&parser)) {
		lerr(&l, 0, 0, "cannot initialise the YAML parser");
		goto out;
	}
	parser_ok = 1;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	while (!done) {
		int erc = 0;

		if (!yaml_parser_parse(&parser, &ev)) {
			syntax_error(&l, &parser, text, len);
			goto out;
		}
		switch (ev.type) {
		case YAML_SCALAR_EVENT:
			erc = scalar_event(&l, &ev);
			break;
		case YAML_ALIAS_EVENT:
			erc = alias_event(&l, &ev);
			break;
		case YAML_SEQUENCE_START_EVENT:
			erc = open_collection(&l, Y_SEQ, &ev.start_mark,
					      (const char *)ev.data.sequence_start.anchor);
			break;
		case YAML_MAPPING_START_EVENT:
			erc = open_collection(&l, Y_MAP, &ev.start_mark,
					      (const char *)ev.data.mapping_start.anchor);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			erc = close_collection(&l);
			break;
		case YAML_DOCUMENT_END_EVENT: /* only the first document counts */
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
		if (erc < 0)
			goto out;
	}
	if (!l.doc->root)
		l.doc->root = &node_new(l.doc, Y_NULL, NULL, 1, 1)->n;
	if (!l.doc->root->str && ynode_is_scalar(l.doc->root))
		l.doc->root->str = arena_strdup(l.doc, "");
	*out = l.doc;
	l.doc = NULL;
	rc = 0;
out:
	if (parser_ok)
		yaml_parser_delete(&parser);
	while (l.depth)
		frame_release(&l.st[--l.depth]);
	free(l.st);
	strmap_clear(&l.anchors);
	ydoc_free(l.doc);
	return rc;
}

/* ---- overlays and helpers --------------------------------------------- */

static struct ynode *deep_merge(struct ydoc *doc, struct ynode *base, struct ynode *over, int top)
{
	struct ynode_x *m;
	struct strmap index = { 0 };
	size_t n = 0;

	if (!base || !over || base->kind != Y_MAP || over->kind != Y_MAP)
		return over;
	m = node_new(doc, Y_MAP, base->file, base->line, base->col);
	m->n.keys = arena_alloc(doc, (base->n + over->n) * sizeof(*m->n.keys));
	m->n.vals = arena_alloc(doc, (base->n + over->n) * sizeof(*m->n.vals));
	for (size_t i = 0; i < base->n; i++) {
		char *id = key_ident(base->keys[i], top);

		m->n.keys[n] = base->keys[i];
		m->n.vals[n] = base->vals[i];
		strmap_put(&index, id, ++n);
		free(id);
	}
	for (size_t i = 0; i < over->n; i++) {
		char *id = key_ident(over->keys[i], top);
		uintptr_t *pos = strmap_find(&index, id);

		if (pos) {
			m->n.vals[*pos - 1] = deep_merge(doc, m->n.vals[*pos - 1], over->vals[i], 0);
		} else {
			m->n.keys[n] = over->keys[i];
			m->n.vals[n] = over->vals[i];
			strmap_put(&index, id, ++n);
		}
		free(id);
	}
	strmap_clear(&index);
	m->n.n = n;
	for (size_t i = 0; i < n; i++) {
		int h = X(m->n.vals[i])->height;

		m->weight += X(m->n.keys[i])->weight + X(m->n.vals[i])->weight;
		if (X(m->n.keys[i])->height > h)
			h = X(m->n.keys[i])->height;
		if (h + 1 > m->height)
			m->height = h + 1;
	}
	return &m->n;
}

void ydoc_merge_overlay(struct ydoc *doc, struct ydoc *over)
{
	struct ynode *root;

	if (!over)
		return;
	root = deep_merge(doc, doc->root, over->root, 1);
	for (size_t i = 0; i < over->n; i++) {
		if (doc->n == doc->cap) {
			doc->cap = doc->cap ? doc->cap * 2 : 64;
			doc->ptrs = xrealloc(doc->ptrs, doc->cap * sizeof(*doc->ptrs));
		}
		doc->ptrs[doc->n++] = over->ptrs[i];
	}
	free(over->ptrs);
	free(over);
	doc->root = root;
}

struct ynode *ydoc_new_scalar(struct ydoc *doc, enum ykind kind, const char *str,
			      const struct ynode *pos_from)
{
	struct ynode_x *x = node_new(doc, kind, pos_from ? pos_from->file : NULL,
				     pos_from ? pos_from->line : 0, pos_from ? pos_from->col : 0);

	if (kind != Y_SEQ && kind != Y_MAP)
		x->n.str = arena_strdup(doc, str ? str : "");
	return &x->n;
}

void ynode_resolve_plain(struct ydoc *doc, struct ynode *n, const char *text)
{
	struct resolved r;

	resolve_plain(text, &r);
	if (r.invalid) {
		free(r.str);
		r.kind = Y_STR;
		r.is_symbol = 0;
		r.str = xstrdup(text);
	}
	n->kind = r.kind;
	n->is_symbol = r.is_symbol;
	n->quoted = 0;
	n->n = 0;
	n->str = arena_strdup(doc, r.str);
	free(r.str);
	X(n)->str_tag = 0;
}

struct ynode *ynode_get(const struct ynode *map, const char *key)
{
	if (!map || map->kind != Y_MAP)
		return NULL;
	for (size_t i = map->n; i-- > 0;)
		if (map->keys[i]->str && strcmp(map->keys[i]->str, key) == 0)
			return map->vals[i];
	return NULL;
}

int ynode_is_scalar(const struct ynode *n)
{
	return n && n->kind != Y_SEQ && n->kind != Y_MAP;
}

const char *ykind_name(enum ykind k)
{
	switch (k) {
	case Y_NULL:
		return "null";
	case Y_BOOL:
		return "a boolean";
	case Y_INT:
		return "an integer";
	case Y_FLOAT:
		return "a float";
	case Y_STR:
		return "a string";
	case Y_SEQ:
		return "a list";
	case Y_MAP:
		return "a hash";
	}
	return "a value";
}
