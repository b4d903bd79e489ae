/*
 * Renderers of a plan (diff/diff.h): text for a terminal or a CI log,
 * Markdown for a pull-request comment, JSON for machines (schema in
 * docs/plan-json.md, "format_version": 1). All three carry the same
 * information; none holds a secret value (the plan has none).
 *
 * Strings that came from a host or the config are made harmless for the
 * medium: control characters escaped in text (no terminal escapes from a
 * container name), Markdown and HTML metacharacters escaped in Markdown,
 * JSON escaping by jansson.
 *
 * Each renderer appends to an sbuf the caller owns (sbuf_init first) and
 * returns 0, or -1 if the buffer's bound was hit (out is then unchanged:
 * the whole plan is appended at once or not at all).
 */
#ifndef PLUMB_DIFF_RENDER_H
#define PLUMB_DIFF_RENDER_H

#include "diff/diff.h"
#include "state/util.h"

#define PLAN_JSON_FORMAT_VERSION 1

struct render_opts {
	int color;          /* text: ANSI colours (only when stdout is a TTY) */
	int list_unchanged; /* text/Markdown: list hosts without changes one by one */
};

int diff_render_text(const struct diff_plan *p, const struct render_opts *o, struct sbuf *out);
int diff_render_markdown(const struct diff_plan *p, const struct render_opts *o, struct sbuf *out);
int diff_render_json(const struct diff_plan *p, struct sbuf *out);

/* The sentence for a note (no prefix, no newline), with every string from a
 * host or the config passed through esc: one wording for text and Markdown. */
void render_note(struct sbuf *out, const struct diff_note *n,
		 void (*esc)(struct sbuf *out, const char *s));

/* Escapers, exposed for tests. */
void render_md_escape(struct sbuf *out, const char *s);
void render_html_escape(struct sbuf *out, const char *s);
void render_text_escape(struct sbuf *out, const char *s);

#endif
