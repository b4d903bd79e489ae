#include "diff/render.h"

#include <stdlib.h>
#include <string.h>

#include "state/escape.h"

/* Terminal-safe first (C0, DEL, C1, invalid UTF-8 → \xNN; newline and tab
 * kept for the callers to turn into spaces), Markdown or HTML on top. */
static char *md_pre_escape(const char *s)
{
	struct sbuf sb;

	sbuf_init(&sb, 0);
	esc_lines(&sb, s, strlen(s));
	return sbuf_detach(&sb);
}

void render_md_escape(struct sbuf *out, const char *s)
{
	const unsigned char *p;
	char *e;

	if (!s)
		return;
	e = md_pre_escape(s);
	for (p = (const unsigned char *)e; *p; p++) {
		switch (*p) {
		case '<': sbuf_adds(out, "&lt;"); break;
		case '>': sbuf_adds(out, "&gt;"); break;
		case '&': sbuf_adds(out, "&amp;"); break;
		case '\n':
		case '\r':
		case '\t': sbuf_addc(out, ' '); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				continue;
			if (strchr("\\`*_{}[]()#+-.!|~\"'@:", *p))
				sbuf_addc(out, '\\');
			sbuf_addc(out, (char)*p);
		}
	}
	free(e);
}

void render_html_escape(struct sbuf *out, const char *s)
{
	const unsigned char *p;
	char *e;

	if (!s)
		return;
	e = md_pre_escape(s);
	for (p = (const unsigned char *)e; *p; p++) {
		switch (*p) {
		case '<': sbuf_adds(out, "&lt;"); break;
		case '>': sbuf_adds(out, "&gt;"); break;
		case '&': sbuf_adds(out, "&amp;"); break;
		case '"': sbuf_adds(out, "&quot;"); break;
		case '\'': sbuf_adds(out, "&#39;"); break;
		/* Markdown must not act inside the summary either */
		case '*': sbuf_adds(out, "&#42;"); break;
		case '_': sbuf_adds(out, "&#95;"); break;
		case '`': sbuf_adds(out, "&#96;"); break;
		case '[': sbuf_adds(out, "&#91;"); break;
		case ']': sbuf_adds(out, "&#93;"); break;
		case '|': sbuf_adds(out, "&#124;"); break;
		case '\\': sbuf_adds(out, "&#92;"); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				sbuf_addc(out, ' ');
			else
				sbuf_addc(out, (char)*p);
		}
	}
	free(e);
}

static void host_counts(const struct diff_host *h, size_t *add, size_t *chg, size_t *del)
{
	*add = *chg = *del = 0;
	for (size_t i = 0; i < h->nsteps; i++) {
		const struct diff_step *s = &h->steps[i];
		if (!s->counted)
			continue;
		switch (s->action) {
		case DIFF_CREATE: (*add)++; break;
		case DIFF_REPLACE:
		case DIFF_REPLACE_STOP_FIRST: (*add)++; (*del)++; break;
		case DIFF_REMOVE_ORPHAN:
		case DIFF_REMOVE_ASIDE: (*del)++; break;
		default: (*chg)++; break;
		}
	}
}

static const char *verb(enum diff_action a)
{
	switch (a) {
	case DIFF_CREATE: return "create";
	case DIFF_REPLACE: return "replace (start-first)";
	case DIFF_REPLACE_STOP_FIRST: return "replace (stop-first)";
	case DIFF_START: return "start";
	case DIFF_RENAME: return "rename";
	case DIFF_WRITE_ENV_FILE: return "write env file";
	case DIFF_SWITCH: return "switch to the desired container, stop the other";
	case DIFF_REMOVE_ORPHAN: return "remove orphan";
	case DIFF_PRUNE: return "prune";
	case DIFF_RESTORE: return "restore (rename back, start)";
	case DIFF_REMOVE_ASIDE: return "remove a copy set aside";
	}
	return "?";
}

static void step_md(struct sbuf *out, const struct diff_plan *p, const struct diff_step *s)
{
	sbuf_addf(out, "- `%s` %s **", diff_action_symbol(s->action), verb(s->action));
	if (s->old_name && strcmp(s->old_name, s->name) != 0) {
		render_md_escape(out, s->old_name);
		sbuf_adds(out, "** → **");
	}
	render_md_escape(out, s->name);
	sbuf_adds(out, "**");
	if (s->target == DIFF_T_APP || s->target == DIFF_T_ACCESSORY) {
		sbuf_adds(out, s->target == DIFF_T_APP ? " (role " : " (accessory ");
		render_md_escape(out, s->role);
		sbuf_adds(out, ")");
	}
	sbuf_addf(out, ", wave %d", s->wave);
	if (s->wave == 2 || (s->wave == 3 && s->group > 0))
		sbuf_addf(out, " group %d", s->group + 1);
	if (s->disruptive)
		sbuf_adds(out, " — ⚠️ **disruptive**: stop-first, data directories kept");
	if (s->action == DIFF_REMOVE_ORPHAN && !p->prune)
		sbuf_adds(out, " — kept (pruning is off)");
	if (s->action == DIFF_PRUNE)
		sbuf_adds(out, " — housekeeping");
	sbuf_addc(out, '\n');
	for (size_t i = 0; i < s->ncauses; i++) {
		char *t = diff_cause_text(&s->causes[i]);
		sbuf_adds(out, "  - ");
		render_md_escape(out, t);
		sbuf_addc(out, '\n');
		free(t);
	}
	if (s->switch_traffic && (s->action == DIFF_START || s->action == DIFF_CREATE))
		sbuf_adds(out, "  - then switch traffic to it \\(kamal\\-proxy\\)\n");
	else if (s->switch_traffic && s->action == DIFF_REPLACE)
		sbuf_adds(out, "  - start first, switch traffic \\(kamal\\-proxy\\), then stop the old container\n");
	if (s->switch_traffic && s->traffic_from) {
		sbuf_adds(out, "  - traffic now goes to ");
		render_md_escape(out, s->traffic_from);
		sbuf_addc(out, '\n');
	}
}

static void note_md(struct sbuf *out, const struct diff_note *n)
{
	sbuf_adds(out, "- ⚠️ ");
	render_note(out, n, render_md_escape);
	sbuf_addc(out, '\n');
}

static void markdown_body(const struct diff_plan *p, const struct render_opts *o, struct sbuf *out)
{
	static const struct render_opts none = { 0 };
	size_t quiet = 0;

	if (!o)
		o = &none;
	sbuf_adds(out, "### plumb plan: ");
	render_md_escape(out, p->service);
	if (p->destination) {
		sbuf_adds(out, " (");
		render_md_escape(out, p->destination);
		sbuf_adds(out, ")");
	}
	sbuf_adds(out, " at ");
	render_md_escape(out, p->version);
	sbuf_adds(out, "\n\n");
	sbuf_addf(out, "**Plan: %zu to add, %zu to change, %zu to destroy.**", p->add, p->change, p->destroy);
	if (!p->changes && p->failed_hosts)
		sbuf_adds(out, " No changes on the hosts that could be planned; the others are unknown.");
	else if (!p->changes)
		sbuf_adds(out, " No changes: the hosts match the configuration.");
	sbuf_addc(out, '\n');
	if (p->failed_hosts)
		sbuf_addf(out, "\n❌ %zu host%s could not be planned.\n", p->failed_hosts,
			  p->failed_hosts == 1 ? "" : "s");
	if (p->housekeeping)
		sbuf_addf(out, "\nHousekeeping (not a change): %zu stopped container%s beyond retain\\_containers.\n",
			  p->housekeeping, p->housekeeping == 1 ? "" : "s");
	sbuf_adds(out, "\n| Host | Add | Change | Destroy | Status |\n|---|---:|---:|---:|---|\n");
	for (size_t i = 0; i < p->nhosts; i++) {
		const struct diff_host *h = &p->hosts[i];
		size_t a, c, d;
		if (h->status == DIFF_HOST_OK && !h->nsteps && !h->nnotes && !o->list_unchanged) {
			quiet++;
			continue;
		}
		host_counts(h, &a, &c, &d);
		sbuf_adds(out, "| ");
		render_md_escape(out, h->host);
		sbuf_addf(out, " | %zu | %zu | %zu | ", a, c, d);
		if (h->status != DIFF_HOST_OK)
			sbuf_addf(out, "❌ %s", diff_host_status_name(h->status));
		else if (!h->in_config)
			sbuf_adds(out, "not in config");
		else
			sbuf_adds(out, h->nsteps ? "changes" : "no changes");
		sbuf_adds(out, " |\n");
	}
	if (quiet)
		sbuf_addf(out, "| *%zu more host%s* | 0 | 0 | 0 | no changes |\n", quiet, quiet == 1 ? "" : "s");
	for (size_t i = 0; i < p->nhosts; i++) {
		const struct diff_host *h = &p->hosts[i];
		if (h->status == DIFF_HOST_OK && !h->nsteps && !h->nnotes)
			continue;
		sbuf_adds(out, "\n<details><summary>");
		render_html_escape(out, h->host);
		if (h->status != DIFF_HOST_OK)
			sbuf_addf(out, " — %s", diff_host_status_name(h->status));
		else
			sbuf_addf(out, " — %zu step%s", h->nsteps, h->nsteps == 1 ? "" : "s");
		sbuf_adds(out, "</summary>\n\n");
		if (h->status != DIFF_HOST_OK) {
			sbuf_adds(out, "Could not be planned: ");
			render_md_escape(out, h->error);
			sbuf_addc(out, '\n');
		}
		for (size_t j = 0; j < h->nsteps; j++)
			step_md(out, p, &h->steps[j]);
		for (size_t j = 0; j < h->nnotes; j++)
			note_md(out, &h->notes[j]);
		sbuf_adds(out, "\n</details>\n");
	}
	sbuf_addf(out, "\n<sub>Plan hash: `%s`</sub>\n", p->hash);
}

/* Rendered whole into a private buffer, then appended at once: every append
 * counts (one that hit the bound cannot hide behind a later one that fit),
 * and on failure out is left as it was. */
int diff_render_markdown(const struct diff_plan *p, const struct render_opts *o, struct sbuf *out)
{
	struct sbuf tmp;
	int rc;

	sbuf_init(&tmp, 0);
	markdown_body(p, o, &tmp);
	rc = sbuf_add(out, tmp.buf, tmp.len);
	sbuf_release(&tmp);
	return rc;
}
