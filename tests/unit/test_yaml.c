#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "state/source.h"
#include "state/util.h"
#include "state/yaml.h"
#include "tests/unit/t.h"

static struct ydoc *load(const char *text, struct diags *d)
{
	struct ydoc *doc = NULL;

	if (ydoc_load_string(&doc, "config/deploy.yml", text, strlen(text), d) < 0)
		return NULL;
	return doc;
}

/* Loads text, expecting an error; returns the diagnostics as one string. */
static char *load_err(const char *text)
{
	struct diags d = { 0 };
	struct ydoc *doc = load(text, &d);
	char *s = diags_to_string(&d);

	if (doc) {
		ydoc_free(doc);
		free(s);
		s = xstrdup("(loaded without error)");
	} else if (d.errors != 1) {
		char *t = xasprintf("(%zu errors) %s", d.errors, s);

		free(s);
		s = t;
	}
	diags_release(&d);
	return s;
}

/*
 * Plain scalars as Psych resolves them (checked against Psych's
 * ScalarScanner#tokenize source: INTEGER_LEGACY, FLOAT, the word check).
 */
static const struct {
	const char *in;
	enum ykind kind;
	const char *str;
	int sym;
} scalars[] = {
	/* booleans: yes/true/on, no/false/off, any letter case; y/n are not */
	{ "yes", Y_BOOL, "true", 0 },	  { "Yes", Y_BOOL, "true", 0 },
	{ "YES", Y_BOOL, "true", 0 },	  { "yEs", Y_BOOL, "true", 0 },
	{ "true", Y_BOOL, "true", 0 },	  { "True", Y_BOOL, "true", 0 },
	{ "TRUE", Y_BOOL, "true", 0 },	  { "on", Y_BOOL, "true", 0 },
	{ "ON", Y_BOOL, "true", 0 },	  { "no", Y_BOOL, "false", 0 },
	{ "No", Y_BOOL, "false", 0 },	  { "false", Y_BOOL, "false", 0 },
	{ "FALSE", Y_BOOL, "false", 0 },  { "off", Y_BOOL, "false", 0 },
	{ "Off", Y_BOOL, "false", 0 },	  { "y", Y_STR, "y", 0 },
	{ "n", Y_STR, "n", 0 },		  { "Y", Y_STR, "Y", 0 },
	{ "yess", Y_STR, "yess", 0 },	  { "truely", Y_STR, "truely", 0 },
	/* null */
	{ "~", Y_NULL, "", 0 },		  { "null", Y_NULL, "", 0 },
	{ "Null", Y_NULL, "", 0 },	  { "NULL", Y_NULL, "", 0 },
	{ "nUlL", Y_NULL, "", 0 },	  { "", Y_NULL, "", 0 },
	{ "nulls", Y_STR, "nulls", 0 },
	/* integers, printed as Ruby prints them */
	{ "42", Y_INT, "42", 0 },	  { "+1", Y_INT, "1", 0 },
	{ "-17", Y_INT, "-17", 0 },	  { "-0", Y_INT, "0", 0 },
	{ "0", Y_INT, "0", 0 },		  { "1_000", Y_INT, "1000", 0 },
	{ "1,000", Y_INT, "1000", 0 },	  { "1_000_000", Y_INT, "1000000", 0 },
	{ "1_", Y_STR, "1_", 0 },	  { "1__0", Y_STR, "1__0", 0 },
	{ "1,", Y_STR, "1,", 0 },	  { "0x1F", Y_INT, "31", 0 },
	{ "0x1f", Y_INT, "31", 0 },	  { "-0x1F", Y_INT, "-31", 0 },
	{ "0x_1_F", Y_INT, "31", 0 },	  { "0b101", Y_INT, "5", 0 },
	{ "+0b1_1", Y_INT, "3", 0 },	  { "017", Y_INT, "15", 0 },
	{ "012", Y_INT, "10", 0 },	  { "-012", Y_INT, "-10", 0 },
	{ "00", Y_INT, "0", 0 },	  { "0_7", Y_INT, "7", 0 },
	{ "09", Y_STR, "09", 0 },	  { "08", Y_STR, "08", 0 },
	{ "0o17", Y_STR, "0o17", 0 },	  { "0x1G", Y_STR, "0x1G", 0 },
	{ "123456789012345678901234567890", Y_INT, "123456789012345678901234567890", 0 },
	{ "0xFFFFFFFFFFFFFFFFFF", Y_INT, "4722366482869645213695", 0 },
	{ "1abc", Y_STR, "1abc", 0 },
	/* sexagesimal: sum of part * 60 ** (index - 2).abs, as Psych computes it */
	{ "190:20:30", Y_INT, "685230", 0 },
	{ "1:30", Y_INT, "5400", 0 },
	{ "190:20:30.15", Y_FLOAT, "685230.15", 0 },
	{ "1:60", Y_STR, "1:60", 0 },
	{ "1:2:3:4", Y_STR, "1:2:3:4", 0 },
	{ "8080:80", Y_STR, "8080:80", 0 },
	/* floats need a dot; an exponent needs a sign */
	{ "1.10", Y_FLOAT, "1.1", 0 },	  { "1.0", Y_FLOAT, "1.0", 0 },
	{ "1.", Y_FLOAT, "1.0", 0 },	  { ".5", Y_FLOAT, "0.5", 0 },
	{ "-.5", Y_FLOAT, "-0.5", 0 },	  { "+1.5", Y_FLOAT, "1.5", 0 },
	{ "0.1", Y_FLOAT, "0.1", 0 },	  { "3.14159", Y_FLOAT, "3.14159", 0 },
	{ "-0.0", Y_FLOAT, "-0.0", 0 },	  { "1_000.5", Y_FLOAT, "1000.5", 0 },
	{ "1,000.25", Y_FLOAT, "1000.25", 0 },
	{ "1.0e+3", Y_FLOAT, "1000.0", 0 },
	{ "1.e+3", Y_FLOAT, "1000.0", 0 }, { "2.5E-3", Y_FLOAT, "0.0025", 0 },
	{ "1e3", Y_STR, "1e3", 0 },	  { "1.0e3", Y_STR, "1.0e3", 0 },
	{ "1.0e+20", Y_FLOAT, "1.0e+20", 0 },
	{ "10000000000000000.0", Y_FLOAT, "1.0e+16", 0 },
	{ "1000000000000000.0", Y_FLOAT, "1000000000000000.0", 0 },
	{ "123456789.125", Y_FLOAT, "123456789.125", 0 },
	{ "0.0001", Y_FLOAT, "0.0001", 0 },
	{ "0.00001", Y_FLOAT, "1.0e-05", 0 },
	{ "0.000123", Y_FLOAT, "0.000123", 0 },
	{ "1.0e+400", Y_FLOAT, "Infinity", 0 },
	{ "0.1.2", Y_STR, "0.1.2", 0 },	  { ".", Y_STR, ".", 0 },
	{ "-.", Y_STR, "-.", 0 },	  { "1.5_", Y_STR, "1.5_", 0 },
	{ ".inf", Y_FLOAT, "Infinity", 0 }, { ".Inf", Y_FLOAT, "Infinity", 0 },
	{ "+.inf", Y_FLOAT, "Infinity", 0 }, { "-.inf", Y_FLOAT, "-Infinity", 0 },
	{ "-.INF", Y_FLOAT, "-Infinity", 0 }, { ".nan", Y_FLOAT, "NaN", 0 },
	{ ".NaN", Y_FLOAT, "NaN", 0 },
	/* symbols */
	{ ":foo", Y_STR, "foo", 1 },	  { "::a", Y_STR, ":a", 1 },
	{ ":\"a b\"", Y_STR, "a b", 1 },
	/* strings */
	{ "hello", Y_STR, "hello", 0 },	  { "-foo", Y_STR, "-foo", 0 },
	{ "2024-01-05", Y_STR, "2024-01-05", 0 },
	{ "<%= ENV['X'] %>", Y_STR, "<%= ENV['X'] %>", 0 },
	{ "1.1.1.1", Y_STR, "1.1.1.1", 0 },
	{ "<<", Y_STR, "<<", 0 },
};

T_TEST(plain_scalars_resolve_as_psych)
{
	for (size_t i = 0; i < ARRAY_SIZE(scalars); i++) {
		struct diags d = { 0 };
		char *text = xasprintf("k: %s\n", scalars[i].in);
		struct ydoc *doc = load(text, &d);
		struct ynode *v = doc ? ynode_get(ydoc_root(doc), "k") : NULL;

		if (!v) {
			T_FAIL_AT("'%s' did not load", scalars[i].in);
		} else if (v->kind != scalars[i].kind || strcmp(v->str, scalars[i].str) != 0 ||
			   v->is_symbol != scalars[i].sym || v->quoted) {
			T_FAIL_AT("'%s' → %s \"%s\" sym=%d quoted=%d, want %s \"%s\" sym=%d",
				  scalars[i].in, ykind_name(v->kind), v->str, v->is_symbol,
				  v->quoted, ykind_name(scalars[i].kind), scalars[i].str,
				  scalars[i].sym);
		}
		t_checks++;
		ydoc_free(doc);
		diags_release(&d);
		free(text);
	}
}

T_TEST(quoted_block_and_tagged_scalars)
{
	struct diags d = { 0 };
	struct ydoc *doc = load("a: \"yes\"\nb: '42'\nc: !!str 1.5\nd: |\n  on\ne: >\n  1\n  2\n"
				"f: !!float 1\ng: !!int '12'\nh: !ruby/sym abc\n"
				"i: on\n\n  n\nj: on\n\n  x\nk: on\n\n  off\n",
				&d);
	struct ynode *r;

	T_REQUIRE(doc);
	r = ydoc_root(doc);
	T_INTEQ(ynode_get(r, "a")->kind, Y_STR);
	T_STREQ(ynode_get(r, "a")->str, "yes");
	T_INTEQ(ynode_get(r, "a")->quoted, 1);
	T_INTEQ(ynode_get(r, "b")->kind, Y_STR);
	T_STREQ(ynode_get(r, "b")->str, "42");
	T_INTEQ(ynode_get(r, "c")->kind, Y_STR);
	T_INTEQ(ynode_get(r, "c")->quoted, 1);
	T_STREQ(ynode_get(r, "c")->str, "1.5");
	T_INTEQ(ynode_get(r, "d")->kind, Y_STR);
	T_STREQ(ynode_get(r, "d")->str, "on\n");
	T_INTEQ(ynode_get(r, "d")->quoted, 1);
	T_STREQ(ynode_get(r, "e")->str, "1 2\n");
	/* !!float converts; other tags (!!int) are tokenized as plain text */
	T_INTEQ(ynode_get(r, "f")->kind, Y_FLOAT);
	T_STREQ(ynode_get(r, "f")->str, "1.0");
	T_INTEQ(ynode_get(r, "g")->kind, Y_INT);
	T_STREQ(ynode_get(r, "g")->str, "12");
	T_INTEQ(ynode_get(r, "h")->is_symbol, 1);
	T_STREQ(ynode_get(r, "h")->str, "abc");
	/* a folded plain scalar "on\nn": Ruby's ^…$ match any line */
	T_INTEQ(ynode_get(r, "i")->kind, Y_BOOL);
	T_STREQ(ynode_get(r, "i")->str, "true");
	T_INTEQ(ynode_get(r, "j")->kind, Y_STR);
	T_STREQ(ynode_get(r, "j")->str, "on\nx");
	/* … but anything longer than 5 characters is a string */
	T_INTEQ(ynode_get(r, "k")->kind, Y_STR);
	T_STREQ(ynode_get(r, "k")->str, "on\noff");
	ydoc_free(doc);
	diags_release(&d);
}

T_TEST(invalid_numbers_fail_like_psych)
{
	char *s = load_err("a: 0x_\n");

	T_CONTAINS(s, "config/deploy.yml:1:4: error: invalid value for Integer()");
	free(s);
	s = load_err("a: .e+5\n");
	T_CONTAINS(s, "invalid value for Float()");
	free(s);
	s = load_err("a: !!float abc\n");
	T_CONTAINS(s, "invalid value for Float()");
	free(s);
}

T_TEST(keys_are_ruby_to_s)
{
	struct diags d = { 0 };
	struct ydoc *doc = load("1: a\ntrue: b\n~: c\n1.50: d\n:sym: e\n0x10: f\n", &d);
	struct ynode *r;

	T_REQUIRE(doc);
	r = ydoc_root(doc);
	T_REQUIRE(r->kind == Y_MAP && r->n == 6);
	T_STREQ(r->keys[0]->str, "1");
	T_INTEQ(r->keys[0]->kind, Y_INT);
	T_STREQ(r->keys[1]->str, "true");
	T_STREQ(r->keys[2]->str, "");
	T_STREQ(r->keys[3]->str, "1.5");
	T_STREQ(r->keys[4]->str, "sym");
	T_INTEQ(r->keys[4]->is_symbol, 1);
	T_STREQ(ynode_get(r, "16")->str, "f");
	ydoc_free(doc);
	diags_release(&d);
}

T_TEST(positions_are_one_based)
{
	struct diags d = { 0 };
	struct ydoc *doc = load("a: 1\nb:\n  - x\n  - {c: d}\n", &d);
	struct ynode *r, *b;

	T_REQUIRE(doc);
	r = ydoc_root(doc);
	T_INTEQ(r->line, 1);
	T_INTEQ(r->col, 1);
	T_STREQ(r->file, "config/deploy.yml");
	T_INTEQ(r->keys[1]->line, 2);
	T_INTEQ(r->keys[1]->col, 1);
	T_INTEQ(ynode_get(r, "a")->line, 1);
	T_INTEQ(ynode_get(r, "a")->col, 4);
	b = ynode_get(r, "b");
	T_REQUIRE(b && b->kind == Y_SEQ && b->n == 2);
	T_INTEQ(b->line, 3);
	T_INTEQ(b->col, 3);
	T_INTEQ(b->items[0]->line, 3);
	T_INTEQ(b->items[0]->col, 5);
	T_INTEQ(b->items[1]->line, 4);
	T_INTEQ(b->items[1]->col, 5);
	T_INTEQ(ynode_get(b->items[1], "c")->col, 9);
	ydoc_free(doc);
	diags_release(&d);
}

T_TEST(syntax_errors_name_the_place)
{
	char *s = load_err("service: app\nimage: a: b\n");

	T_STREQ(s, "config/deploy.yml:2:9: error: mapping values are not allowed in this context\n");
	free(s);
	s = load_err("a:\n  - x\n  y: 1\n");
	T_CONTAINS(s, "config/deploy.yml:3:3: error: did not find expected '-' indicator while "
		      "parsing a block collection (line 2, column 3)");
	free(s);
	s = load_err("a: \"unterminated\n");
	T_CONTAINS(s, "config/deploy.yml:2:1: error: found unexpected end of stream while "
		      "scanning a quoted scalar (line 1, column 4)");
	free(s);
	/* reader errors carry an offset; it is turned into line:col */
	s = load_err("a: b\nc: \x01\n");
	T_CONTAINS(s, "config/deploy.yml:2:4: error: control characters are not allowed");
	free(s);
}

T_TEST(aliases_share_the_node)
{
	struct diags d = { 0 };
	struct ydoc *doc = load("base: &b {x: 1}\nother: *b\ns: &s hi\nt: *s\n", &d);
	struct ynode *r;

	T_REQUIRE(doc);
	r = ydoc_root(doc);
	T_CHECK(ynode_get(r, "base") == ynode_get(r, "other"));
	T_CHECK(ynode_get(r, "s") == ynode_get(r, "t"));
	T_STREQ(ynode_get(r, "t")->str, "hi");
	ydoc_free(doc);
	diags_release(&d);

	{
		char *s = load_err("a: *nope\n");

		T_CONTAINS(s, "1:4: error: unknown alias *nope");
		free(s);
		s = load_err("a: &a [1, *a]\n");
		T_CONTAINS(s, "alias *a refers to a node that contains it");
		free(s);
	}
}

T_TEST(merge_keys_follow_psych_order)
{
	struct diags d = { 0 };
	struct ydoc *doc = load("a: &a {x: 1, y: 1}\n"
				"b: &b {x: 2, z: 2}\n"
				"after:\n  <<: *a\n  x: 9\n"
				"before:\n  x: 9\n  <<: *a\n"
				"list:\n  <<: [*a, *b]\n"
				"list_then_key:\n  <<: [*b, *a]\n  z: 5\n"
				"quoted:\n  \"<<\": *a\n"
				"tagged:\n  !!str <<: *a\n"
				"inline:\n  <<: [{q: 1}, *a]\n",
				&d);
	struct ynode *r, *m;

	T_REQUIRE(doc);
	r = ydoc_root(doc);
	/* keys after the merge win */
	m = ynode_get(r, "after");
	T_REQUIRE(m && m->n == 2);
	T_STREQ(ynode_get(m, "x")->str, "9");
	T_STREQ(ynode_get(m, "y")->str, "1");
	/* Psych's hash.merge! overwrites keys given before the merge */
	m = ynode_get(r, "before");
	T_REQUIRE(m && m->n == 2);
	T_STREQ(m->keys[0]->str, "x");
	T_STREQ(ynode_get(m, "x")->str, "1");
	/* in a list, earlier hashes win */
	m = ynode_get(r, "list");
	T_REQUIRE(m && m->n == 3);
	T_STREQ(ynode_get(m, "x")->str, "1");
	T_STREQ(ynode_get(m, "y")->str, "1");
	T_STREQ(ynode_get(m, "z")->str, "2");
	m = ynode_get(r, "list_then_key");
	T_REQUIRE(m && m->n == 3);
	T_STREQ(ynode_get(m, "x")->str, "2");
	T_STREQ(ynode_get(m, "z")->str, "5");
	T_CHECK(ynode_get(m, "<<") == NULL);
	/* a double-quoted "<<" still merges (Psych only exempts !!str) */
	m = ynode_get(r, "quoted");
	T_REQUIRE(m && m->n == 2);
	T_STREQ(ynode_get(m, "x")->str, "1");
	m = ynode_get(r, "tagged");
	T_REQUIRE(m && m->n == 1);
	T_CHECK(ynode_get(m, "<<") == ynode_get(r, "a"));
	m = ynode_get(r, "inline");
	T_REQUIRE(m && m->n == 3);
	T_STREQ(ynode_get(m, "q")->str, "1");
	ydoc_free(doc);
	diags_release(&d);
}

T_TEST(merge_of_non_hash_is_an_error)
{
	char *s = load_err("a:\n  <<: 1\n");

	T_CONTAINS(s, "config/deploy.yml:2:3: error: merge key '<<' needs a hash or a list of "
		      "hashes, not an integer");
	free(s);
	s = load_err("l: &l [{a: 1}]\nm:\n  <<: *l\n");
	T_CONTAINS(s, "not an alias of a list");
	free(s);
	s = load_err("m:\n  <<: [{a: 1}, x]\n");
	T_CONTAINS(s, "2:16: error: merge key '<<' needs hashes to merge, not a string");
	free(s);
}

T_TEST(duplicate_keys_last_wins)
{
	struct diags d = { 0 };
	struct ydoc *doc = load("a: 1\nb: 2\na: 3\n1: int\n\"1\": str\n", &d);
	struct ynode *r;

	T_REQUIRE(doc);
	r = ydoc_root(doc);
	/* 1 and "1" are different keys in a Ruby hash */
	T_REQUIRE(r->n == 4);
	T_STREQ(r->keys[0]->str, "a");
	T_STREQ(r->vals[0]->str, "3");
	T_STREQ(r->keys[1]->str, "b");
	T_STREQ(ynode_get(r, "1")->str, "str");
	ydoc_free(doc);
	diags_release(&d);
}

T_TEST(complex_keys_are_refused)
{
	char *s = load_err("? [a, b]\n: c\n");

	T_CONTAINS(s, "1:3: error: a hash key must be a scalar, not a list");
	free(s);
}

T_TEST(empty_and_multi_document_streams)
{
	const char *empties[] = { "", "# nothing\n", "---\n", "--- ~\n" };
	struct diags d = { 0 };
	struct ydoc *doc;

	for (size_t i = 0; i < ARRAY_SIZE(empties); i++) {
		doc = load(empties[i], &d);
		T_REQUIRE(doc);
		T_INTEQ(ydoc_root(doc)->kind, Y_NULL);
		T_STREQ(ydoc_root(doc)->str, "");
		ydoc_free(doc);
	}
	doc = load("a: 1\n---\nb: 2\n", &d);
	T_REQUIRE(doc);
	T_CHECK(ynode_get(ydoc_root(doc), "a") != NULL);
	T_CHECK(ynode_get(ydoc_root(doc), "b") == NULL);
	ydoc_free(doc);
	T_INTEQ(d.errors, 0);
	diags_release(&d);
}

static struct ynode *seq_at(struct ynode *n, size_t i)
{
	return n && n->kind == Y_SEQ && i < n->n ? n->items[i] : NULL;
}

T_TEST(overlay_deep_merges_hashes)
{
	struct diags d = { 0 };
	struct ydoc *base = load("a: {x: 1, y: [1, 2], h: {p: 1}}\nb: 1\nl: [1]\n", &d);
	struct ydoc *over = load("a: {y: [3], z: 2, h: {q: 2}}\nl: s\nc: 3\nb: {k: v}\n", &d);
	struct ynode *r, *a;

	T_REQUIRE(base && over);
	ydoc_merge_overlay(base, over);
	r = ydoc_root(base);
	T_REQUIRE(r->kind == Y_MAP && r->n == 4);
	T_STREQ(r->keys[0]->str, "a");
	T_STREQ(r->keys[1]->str, "b");
	T_STREQ(r->keys[2]->str, "l");
	T_STREQ(r->keys[3]->str, "c");
	a = ynode_get(r, "a");
	T_STREQ(ynode_get(a, "x")->str, "1");
	/* lists are replaced, not appended */
	T_INTEQ(ynode_get(a, "y")->n, 1);
	T_STREQ(seq_at(ynode_get(a, "y"), 0)->str, "3");
	T_STREQ(ynode_get(a, "z")->str, "2");
	T_STREQ(ynode_get(ynode_get(a, "h"), "p")->str, "1");
	T_STREQ(ynode_get(ynode_get(a, "h"), "q")->str, "2");
	/* a scalar replaces a list; a hash replaces a scalar */
	T_INTEQ(ynode_get(r, "l")->kind, Y_STR);
	T_STREQ(ynode_get(r, "l")->str, "s");
	T_STREQ(ynode_get(ynode_get(r, "b"), "k")->str, "v");
	T_STREQ(ynode_get(r, "c")->str, "3");
	ydoc_free(base);
	diags_release(&d);
}

T_TEST(overlay_top_level_symbols_match_strings)
{
	struct diags d = { 0 };
	struct ydoc *base = load("service: a\n", &d);
	struct ydoc *over = load(":service: b\n", &d);
	struct ynode *r;

	T_REQUIRE(base && over);
	ydoc_merge_overlay(base, over);
	r = ydoc_root(base);
	T_INTEQ(r->n, 1);
	T_STREQ(ynode_get(r, "service")->str, "b");
	ydoc_free(base);
	diags_release(&d);
}

/* The bound stops the expansion where it is hit (the error names the
 * place: the work done is bounded, whatever the machine's speed; no timing
 * is asserted here, `make bench` measures). */
T_TEST(alias_bomb_refused_quickly)
{
	struct sbuf sb;
	char *s;

	sbuf_init(&sb, 0);
	sbuf_adds(&sb, "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
	for (char c = 'b'; c <= 'j'; c++) {
		sbuf_addf(&sb, "%c: &%c [", c, c);
		for (int i = 0; i < 10; i++)
			sbuf_addf(&sb, "%s*%c", i ? ", " : "", c - 1);
		sbuf_adds(&sb, "]\n");
	}
	s = load_err(sb.buf);
	T_CONTAINS(s, "error: document expands to more than 1000000 nodes");
	free(s);

	/* the same with merge keys: every merge copies a big hash's pairs */
	sbuf_reset(&sb);
	sbuf_adds(&sb, "big: &big\n");
	for (int i = 0; i < 5000; i++)
		sbuf_addf(&sb, "  k%d: v\n", i);
	for (int i = 0; i < 3000; i++)
		sbuf_addf(&sb, "m%d: {<<: *big}\n", i);
	s = load_err(sb.buf);
	T_CONTAINS(s, "error: document ");
	T_CONTAINS(s, "config/deploy.yml:5100:1: error: document expands to more than 1000000 nodes at 'm98'");
	free(s);
	sbuf_release(&sb);
}

/* Count bounds name the key where they were hit. */
T_TEST(key_and_node_bounds_name_the_key)
{
	struct sbuf sb;
	char *s;

	sbuf_init(&sb, 0);
	for (int i = 0; i <= 10000; i++)
		sbuf_addf(&sb, "k%d: v\n", i);
	s = load_err(sb.buf);
	T_STREQ(s, "config/deploy.yml:10001:1: error: more than 10000 keys in one hash (at key 'k10000')\n");
	free(s);
	sbuf_release(&sb);
}

T_TEST(deep_nesting_refused)
{
	struct sbuf sb;
	char *s;
	struct diags d = { 0 };
	struct ydoc *doc;

	sbuf_init(&sb, 0);
	for (int i = 0; i < YDOC_MAX_DEPTH; i++)
		sbuf_addc(&sb, '[');
	for (int i = 0; i < YDOC_MAX_DEPTH; i++)
		sbuf_addc(&sb, ']');
	doc = load(sb.buf, &d);
	T_CHECK(doc != NULL);
	ydoc_free(doc);

	sbuf_reset(&sb);
	for (int i = 0; i < 100000; i++)
		sbuf_addc(&sb, '[');
	s = load_err(sb.buf);
	T_CONTAINS(s, "1:257: error: nesting deeper than 256 levels");
	free(s);

	/* an alias of a deep node placed deep is as deep as its expansion */
	sbuf_reset(&sb);
	sbuf_adds(&sb, "a: &a ");
	for (int i = 0; i < 200; i++)
		sbuf_addc(&sb, '[');
	for (int i = 0; i < 200; i++)
		sbuf_addc(&sb, ']');
	sbuf_adds(&sb, "\nb: ");
	for (int i = 0; i < 100; i++)
		sbuf_addc(&sb, '[');
	sbuf_adds(&sb, "*a");
	for (int i = 0; i < 100; i++)
		sbuf_addc(&sb, ']');
	sbuf_addc(&sb, '\n');
	s = load_err(sb.buf);
	T_CONTAINS(s, "error: nesting deeper than 256 levels");
	free(s);
	sbuf_release(&sb);
	diags_release(&d);
}

T_TEST(oversized_input_refused)
{
	size_t len = SOURCE_MAX_FILE + 1;
	char *big = xmalloc(len);
	struct diags d = { 0 };
	struct ydoc *doc = NULL;
	char *s;

	memset(big, 'a', len);
	T_CHECK(ydoc_load_string(&doc, "big.yml", big, len, &d) < 0);
	T_CHECK(doc == NULL);
	s = diags_to_string(&d);
	T_CONTAINS(s, "big.yml");
	T_CONTAINS(s, "larger than 4194304 bytes");
	free(s);
	free(big);
	diags_release(&d);
}

T_TEST(new_scalar_and_resolve_plain)
{
	struct diags d = { 0 };
	struct ydoc *doc = load("k: <%= 1 + 1 %>\n", &d);
	struct ynode *k, *n;

	T_REQUIRE(doc);
	k = ynode_get(ydoc_root(doc), "k");
	T_INTEQ(k->kind, Y_STR);
	ynode_resolve_plain(doc, k, "0x10");
	T_INTEQ(k->kind, Y_INT);
	T_STREQ(k->str, "16");
	ynode_resolve_plain(doc, k, "Off");
	T_INTEQ(k->kind, Y_BOOL);
	T_STREQ(k->str, "false");
	ynode_resolve_plain(doc, k, ":web");
	T_INTEQ(k->is_symbol, 1);
	T_STREQ(k->str, "web");
	ynode_resolve_plain(doc, k, ":");
	T_INTEQ(k->kind, Y_STR);
	T_INTEQ(k->is_symbol, 0);
	T_STREQ(k->str, ":");
	ynode_resolve_plain(doc, k, "0x_");
	T_INTEQ(k->kind, Y_STR);
	T_STREQ(k->str, "0x_");
	T_INTEQ(k->line, 1);
	T_INTEQ(k->col, 4);
	n = ydoc_new_scalar(doc, Y_STR, "hello", k);
	T_STREQ(n->str, "hello");
	T_INTEQ(n->line, 1);
	T_INTEQ(n->col, 4);
	T_STREQ(n->file, "config/deploy.yml");
	T_CHECK(ynode_is_scalar(n));
	T_CHECK(!ynode_is_scalar(ydoc_root(doc)));
	T_CHECK(!ynode_is_scalar(NULL));
	T_CHECK(ynode_get(n, "x") == NULL);
	ydoc_set_root(doc, n);
	T_CHECK(ydoc_root(doc) == n);
	ydoc_free(doc);
	diags_release(&d);
}

T_TEST(kind_names)
{
	T_STREQ(ykind_name(Y_NULL), "null");
	T_STREQ(ykind_name(Y_BOOL), "a boolean");
	T_STREQ(ykind_name(Y_INT), "an integer");
	T_STREQ(ykind_name(Y_FLOAT), "a float");
	T_STREQ(ykind_name(Y_STR), "a string");
	T_STREQ(ykind_name(Y_SEQ), "a list");
	T_STREQ(ykind_name(Y_MAP), "a hash");
}

/* Replaces every <%...%> tag with "erb", as a stand-in for rendering. */
static char *strip_erb(const char *text)
{
	struct sbuf sb;
	const char *p = text, *open, *close;

	sbuf_init(&sb, 0);
	while ((open = strstr(p, "<%")) && (close = strstr(open, "%>"))) {
		sbuf_add(&sb, p, (size_t)(open - p));
		sbuf_adds(&sb, "erb");
		p = close + 2;
	}
	sbuf_adds(&sb, p);
	{
		char *out = sbuf_detach(&sb);

		sbuf_release(&sb);
		return out;
	}
}

/*
 * Every fixture loads as it is, except those whose ERB tags contain ": "
 * (e.g. `<%= a ? "x" : "y" %>`): Kamal renders ERB before parsing, so those
 * are only YAML once rendered; they must load with the tags replaced.
 */
T_TEST(kamal_fixtures_load)
{
	glob_t g;
	size_t loaded = 0;

	T_REQUIRE(glob("tests/fixtures/kamal/*.yml", 0, NULL, &g) == 0);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		struct diags d = { 0 };
		struct ydoc *doc = NULL;
		char *text = NULL;
		size_t len = 0;

		if (util_read_file(g.gl_pathv[i], SOURCE_MAX_FILE, &text, &len) < 0) {
			T_FAIL_AT("cannot read %s", g.gl_pathv[i]);
			continue;
		}
		if (ydoc_load_string(&doc, g.gl_pathv[i], text, len, &d) < 0 && strstr(text, "<%")) {
			char *plain = strip_erb(text);

			diags_release(&d);
			ydoc_load_string(&doc, g.gl_pathv[i], plain, strlen(plain), &d);
			free(plain);
		}
		if (!doc) {
			char *s = diags_to_string(&d);

			T_FAIL_AT("%s", s);
			free(s);
		} else if (ydoc_root(doc)->kind != Y_MAP) {
			T_FAIL_AT("%s: root is %s", g.gl_pathv[i], ykind_name(ydoc_root(doc)->kind));
		} else {
			loaded++;
		}
		ydoc_free(doc);
		free(text);
		diags_release(&d);
	}
	T_CHECK(loaded >= 40);
	T_CHECK(loaded == g.gl_pathc);
	globfree(&g);
}

T_TEST(erb_fixture_values_are_strings)
{
	char *text = NULL;
	size_t len = 0;
	struct diags d = { 0 };
	struct ydoc *doc = NULL;
	struct ynode *u;

	T_REQUIRE(util_read_file("tests/fixtures/kamal/deploy.erb.yml", SOURCE_MAX_FILE, &text,
			    &len) == 0);
	T_REQUIRE(ydoc_load_string(&doc, "deploy.erb.yml", text, len, &d) == 0);
	u = ynode_get(ynode_get(ydoc_root(doc), "registry"), "username");
	T_REQUIRE(u);
	T_INTEQ(u->kind, Y_STR);
	T_STREQ(u->str, "<%= \"my-user\" %>");
	ydoc_free(doc);
	free(text);
	diags_release(&d);
}

T_MAIN(T_CASE(plain_scalars_resolve_as_psych), T_CASE(quoted_block_and_tagged_scalars),
       T_CASE(invalid_numbers_fail_like_psych), T_CASE(keys_are_ruby_to_s),
       T_CASE(positions_are_one_based), T_CASE(syntax_errors_name_the_place),
       T_CASE(aliases_share_the_node), T_CASE(merge_keys_follow_psych_order),
       T_CASE(merge_of_non_hash_is_an_error), T_CASE(duplicate_keys_last_wins),
       T_CASE(complex_keys_are_refused), T_CASE(empty_and_multi_document_streams),
       T_CASE(overlay_deep_merges_hashes), T_CASE(overlay_top_level_symbols_match_strings),
       T_CASE(alias_bomb_refused_quickly), T_CASE(key_and_node_bounds_name_the_key), T_CASE(deep_nesting_refused),
       T_CASE(oversized_input_refused), T_CASE(new_scalar_and_resolve_plain),
       T_CASE(kind_names), T_CASE(kamal_fixtures_load), T_CASE(erb_fixture_values_are_strings))
