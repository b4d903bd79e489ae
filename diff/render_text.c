#include "diff/render.h"

#include <stdlib.h>
#include <string.h>

#include "state/escape.h"

#define C_RESET "\033[0m"
#define C_GREEN "\033[32m"
#define C_YELLOW "\033[33m"
#define C_RED "\033[31m"
#define C_MAGENTA "\033[35m"
#define C_BOLD "\033[1m"

void render_text_escape(struct sbuf *out, const char *s)
{
	esc_text(out, s);
}

static const char *colour_of(enum diff_action a)
{
	switch (a) {
	case DIFF_CREATE: return C_GREEN;
	case DIFF_REPLACE:
	case DIFF_REPLACE_STOP_FIRST: return C_MAGENTA;
	case DIFF_START:
	case DIFF_RENAME:
	case DIFF_RESTORE:
	case DIFF_SWITCH:
	case DIFF_WRITE_ENV_FILE: return C_YELLOW;
	case DIFF_REMOVE_ORPHAN:
	case DIFF_REMOVE_ASIDE:
	case DIFF_PRUNE: return C_RED;
	}
	return "";
}

static void step_text(struct sbuf *out, const struct diff_plan *p, const struct diff_step *s, int color)
{
	const char *sym = diff_action_symbol(s->action);

	sbuf_adds(out, "  ");
	if (color)
		sbuf_adds(out, colour_of(s->action));
	sbuf_addf(out, "%-3s", sym);
	if (color)
		sbuf_adds(out, C_RESET);
	sbuf_addc(out, ' ');
	switch (s->action) {
	case DIFF_CREATE:
		sbuf_adds(out, "create ");
		render_text_escape(out, s->name);
		break;
	case DIFF_REPLACE:
	case DIFF_REPLACE_STOP_FIRST:
	case DIFF_RENAME:
	case DIFF_START:
	case DIFF_RESTORE:
		sbuf_adds(out, s->action == DIFF_RENAME	   ? "rename "
			       : s->action == DIFF_START   ? "start "
			       : s->action == DIFF_RESTORE ? "restore (rename back, start) "
							   : "replace ");
		render_text_escape(out, s->old_name);
		if (s->old_name && strcmp(s->old_name, s->name) != 0) {
			sbuf_adds(out, " → ");
			render_text_escape(out, s->name);
		}
		break;
	case DIFF_SWITCH:
		sbuf_adds(out, "switch to ");
		render_text_escape(out, s->name);
		if (s->old_name) {
			sbuf_adds(out, ", stop ");
			render_text_escape(out, s->old_name);
		}
		break;
	case DIFF_WRITE_ENV_FILE:
		sbuf_adds(out, "write ~/");
		render_text_escape(out, s->name);
		break;
	case DIFF_REMOVE_ORPHAN:
	case DIFF_REMOVE_ASIDE:
		sbuf_adds(out, "remove ");
		render_text_escape(out, s->name);
		break;
	case DIFF_PRUNE:
		sbuf_adds(out, "prune ");
		render_text_escape(out, s->name);
		break;
	}
	if (s->target == DIFF_T_ACCESSORY)
		sbuf_adds(out, " (accessory ");
	else if (s->target == DIFF_T_FILE)
		sbuf_adds(out, " (env file");
	else if (s->target == DIFF_T_PROXY)
		sbuf_adds(out, " (proxy");
	else
		sbuf_adds(out, " (role ");
	if (s->target == DIFF_T_APP || s->target == DIFF_T_ACCESSORY)
		render_text_escape(out, s->role);
	sbuf_addf(out, ", wave %d", s->wave);
	if (s->wave == 2 || (s->wave == 3 && s->group > 0))
		sbuf_addf(out, " group %d", s->group + 1);
	sbuf_adds(out, ")");
	if (s->disruptive) {
		if (color)
			sbuf_adds(out, C_BOLD C_RED);
		sbuf_adds(out, " DISRUPTIVE: stop-first, data directories kept");
		if (color)
			sbuf_adds(out, C_RESET);
	}
	if (s->action == DIFF_REMOVE_ORPHAN && !p->prune)
		sbuf_adds(out, " [kept: pruning is off]");
	if (s->action == DIFF_PRUNE)
		sbuf_adds(out, " [housekeeping]");
	sbuf_addc(out, '\n');
	for (size_t i = 0; i < s->ncauses; i++) {
		char *t = diff_cause_text(&s->causes[i]);
		sbuf_adds(out, "        ");
		render_text_escape(out, t);
		sbuf_addc(out, '\n');
		free(t);
	}
	if (s->switch_traffic && (s->action == DIFF_START || s->action == DIFF_CREATE))
		sbuf_adds(out, "        then switch traffic to it (kamal-proxy deploy)\n");
	else if (s->switch_traffic && s->action == DIFF_REPLACE)
		sbuf_adds(out, "        start first, switch traffic (kamal-proxy deploy), then stop the old container\n");
	if (s->switch_traffic && s->traffic_from) {
		/* from the host's kamal-proxy: escaped like anything a host sends */
		sbuf_adds(out, "        traffic now goes to ");
		render_text_escape(out, s->traffic_from);
		sbuf_addc(out, '\n');
	}
}

void render_note(struct sbuf *out, const struct diff_note *n,
		 void (*esc)(struct sbuf *out, const char *s))
{
	switch (n->kind) {
	case NOTE_UNHEALTHY:
		esc(out, n->container);
		sbuf_adds(out, " is unhealthy (reported, not replaced)");
		break;
	case NOTE_SECRET_UNAVAILABLE:
		sbuf_adds(out, "secret ");
		esc(out, n->text);
		sbuf_adds(out, " (env ");
		esc(out, n->key);
		sbuf_adds(out, " of ");
		esc(out, n->container);
		sbuf_adds(out, ") could not be read: not compared");
		break;
	case NOTE_VALUE_EXPANDED:
		sbuf_adds(out, "env ");
		esc(out, n->key);
		sbuf_adds(out, " of ");
		esc(out, n->container);
		sbuf_adds(out, " is expanded by the host's shell: not compared");
		break;
	case NOTE_VALUE_NOT_COMPUTED:
		sbuf_adds(out, "env ");
		esc(out, n->key);
		sbuf_adds(out, " of ");
		esc(out, n->container);
		sbuf_adds(out, ": value not computed in an untrusted run (ERB ENV or a command): not compared");
		break;
	case NOTE_LOCK_HELD:
		sbuf_adds(out, "deploy lock held: ");
		esc(out, n->text);
		break;
	case NOTE_ORPHAN_KEPT:
		sbuf_adds(out, "orphans are listed, not removed (pruning is off: --prune)");
		break;
	case NOTE_IMAGE_NOT_OBSERVED:
		sbuf_adds(out, "image of ");
		esc(out, n->container);
		sbuf_adds(out, " not found on the host: its own defaults were not subtracted");
		break;
	}
}


static void note_text(struct sbuf *out, const struct diff_note *n)
{
	sbuf_adds(out, "  !   ");
	render_note(out, n, render_text_escape);
	sbuf_addc(out, '\n');
}

static void text_body(const struct diff_plan *p, const struct render_opts *o, struct sbuf *out)
{
	static const struct render_opts none = { 0 };
	size_t quiet = 0;

	if (!o)
		o = &none;
	sbuf_adds(out, "plumb plan: service ");
	render_text_escape(out, p->service);
	if (p->destination) {
		sbuf_adds(out, ", destination ");
		render_text_escape(out, p->destination);
	}
	sbuf_adds(out, ", version ");
	render_text_escape(out, p->version);
	sbuf_adds(out, "\n\n");
	for (size_t i = 0; i < p->nhosts; i++) {
		const struct diff_host *h = &p->hosts[i];
		if (h->status == DIFF_HOST_OK && !h->nsteps && !h->nnotes && !o->list_unchanged) {
			quiet++;
			continue;
		}
		if (o->color)
			sbuf_adds(out, C_BOLD);
		sbuf_adds(out, "Host ");
		render_text_escape(out, h->host);
		if (o->color)
			sbuf_adds(out, C_RESET);
		if (!h->in_config)
			sbuf_adds(out, " (not in the configuration)");
		if (h->status != DIFF_HOST_OK) {
			sbuf_addf(out, ": %s — ", h->status == DIFF_HOST_UNREACHABLE ? "UNREACHABLE"
						  : h->status == DIFF_HOST_UNKNOWN ? "UNKNOWN (observation failed)"
						  : h->status == DIFF_HOST_REFUSED ? "REFUSED (not planned)"
										   : "NOT OBSERVED");
			render_text_escape(out, h->error);
			sbuf_adds(out, "\n\n");
			continue;
		}
		if (!h->nsteps)
			sbuf_addf(out, ": no changes (%zu up to date)", h->unchanged);
		sbuf_addc(out, '\n');
		for (size_t j = 0; j < h->nsteps; j++)
			step_text(out, p, &h->steps[j], o->color);
		for (size_t j = 0; j < h->nnotes; j++)
			note_text(out, &h->notes[j]);
		sbuf_addc(out, '\n');
	}
	if (quiet)
		sbuf_addf(out, "%zu host%s up to date.\n", quiet, quiet == 1 ? "" : "s");
	if (p->failed_hosts)
		sbuf_addf(out, "%zu host%s could not be planned.\n", p->failed_hosts,
			  p->failed_hosts == 1 ? "" : "s");
	if (p->orphans_kept)
		sbuf_addf(out, "%zu orphan%s kept (pruning is off).\n", p->orphans_kept,
			  p->orphans_kept == 1 ? "" : "s");
	if (p->housekeeping)
		sbuf_addf(out, "Housekeeping: %zu stopped container%s beyond retain_containers to prune (not a change).\n",
			  p->housekeeping, p->housekeeping == 1 ? "" : "s");
	if (!p->changes && p->failed_hosts)
		sbuf_adds(out, "No changes on the hosts that could be planned; the others are unknown.\n");
	else if (!p->changes)
		sbuf_adds(out, "No changes. The hosts match the configuration.\n");
	sbuf_addf(out, "Plan hash: %s\n", p->hash);
	sbuf_addf(out, "Plan: %zu to add, %zu to change, %zu to destroy.\n", p->add, p->change,
			 p->destroy);
}

/* Rendered whole into a private buffer, then appended at once: every append
 * counts (one that hit the bound cannot hide behind a later one that fit),
 * and on failure out is left as it was. */
int diff_render_text(const struct diff_plan *p, const struct render_opts *o, struct sbuf *out)
{
	struct sbuf tmp;
	int rc;

	sbuf_init(&tmp, 0);
	text_body(p, o, &tmp);
	rc = sbuf_add(out, tmp.buf, tmp.len);
	sbuf_release(&tmp);
	return rc;
}
