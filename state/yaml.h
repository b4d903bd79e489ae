/*
 * A YAML document as a tree, loaded with libyaml, with every node's position
 * (file, line, column) kept for error messages.
 *
 * Scalars are resolved the way Kamal's loader (Ruby Psych, YAML 1.1 core
 * rules) resolves them, and `str` holds what Ruby's to_s would give:
 *   yes/Yes/YES/true/on → Y_BOOL "true"; no/false/off → Y_BOOL "false";
 *   ~, null, empty → Y_NULL "" ; 42, 0x1F, 0o17, 017, 1_000, +5 → Y_INT as Ruby
 *   prints the integer ("31", "15", "15", "1000", "5"); 1.10 → Y_FLOAT "1.1",
 *   1e3 → "1000.0", .inf → "Infinity", .nan → "NaN"; :sym → Y_STR "sym" with
 *   is_symbol; "quoted" and 'quoted' and block scalars are always Y_STR; an
 *   explicit tag !!str forces Y_STR. Sexagesimal (1:30) and dates are left as
 *   strings (Kamal's schema uses neither).
 *
 * Anchors, aliases and merge keys (<<: *a, <<: [*a, *b]) are honoured as Psych
 * honours them: explicit keys win over merged ones; an alias shares the node.
 * Duplicate keys: the last one wins (Psych's behaviour).
 *
 * Ownership: every node belongs to its ydoc (an arena); nodes may be shared
 * (aliases, merges), so never free a node on its own — ydoc_free frees all.
 */
#ifndef PLUMB_YAML_H
#define PLUMB_YAML_H

#include <stddef.h>

#include "state/util.h"

enum ykind { Y_NULL, Y_BOOL, Y_INT, Y_FLOAT, Y_STR, Y_SEQ, Y_MAP };

struct ynode {
	enum ykind kind;
	const char *file; /* owned by the arena */
	int line, col;    /* 1-based start of the node */
	char *str;        /* scalars: Ruby to_s form ("" for null); NULL for SEQ/MAP */
	int quoted;       /* scalar was quoted or a block scalar */
	int is_symbol;    /* scalar was :symbol */
	unsigned erb_flags; /* enum erb_flags of the ERB evaluated into this scalar (set by the config loader) */
	size_t n;         /* SEQ: number of items; MAP: number of pairs */
	struct ynode **items; /* SEQ items */
	struct ynode **keys;  /* MAP keys (scalars), in document order after merges */
	struct ynode **vals;  /* MAP values */
};

struct ydoc;

/* Limits on untrusted input: a document whose tree, with every alias
 * expanded, has more nodes or more levels than this is refused. */
#define YDOC_MAX_NODES 1000000u
#define YDOC_MAX_DEPTH 256
/* Keys in one hash, merge keys included (no deploy.yml hash comes close). */
#define YDOC_MAX_MAP_KEYS 10000u

/* Parses text (len bytes) named `file` in messages. On a syntax error returns
 * -1 and adds "file:line:col: <libyaml's problem>" to d. An empty document
 * gives a root of kind Y_NULL. Only the first document of a stream is used. */
int ydoc_load_string(struct ydoc **out, const char *file, const char *text, size_t len,
		     struct diags *d);
void ydoc_free(struct ydoc *doc);
struct ynode *ydoc_root(const struct ydoc *doc);
void ydoc_set_root(struct ydoc *doc, struct ynode *root);

/*
 * Destination overlays: returns the deep merge of base and over as Kamal does
 * it (hashes merge recursively key by key; a list or scalar in `over` replaces
 * the one in base). `over`'s arena is moved into `doc` (over is freed), so
 * nodes from both stay valid for as long as doc lives. The merged root
 * becomes doc's root.
 */
void ydoc_merge_overlay(struct ydoc *doc, struct ydoc *over);

/* A new node owned by doc (for callers that rewrite scalars, e.g. ERB). */
struct ynode *ydoc_new_scalar(struct ydoc *doc, enum ykind kind, const char *str,
			      const struct ynode *pos_from);
/* Re-resolves a plain (unquoted) scalar's kind and str from new text, as the
 * loader would have (used after ERB substitution). */
void ynode_resolve_plain(struct ydoc *doc, struct ynode *n, const char *text);

/* MAP lookup by key string (last match); NULL if absent or n is not a MAP. */
struct ynode *ynode_get(const struct ynode *map, const char *key);
int ynode_is_scalar(const struct ynode *n);
/* "a string", "an integer", "a list", "a hash", … for messages. */
const char *ykind_name(enum ykind k);

#endif
