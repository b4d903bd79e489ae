#include "diff/render.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "state/json_text.h"

/* Every string from a host or the config: invalid UTF-8 becomes U+FFFD
 * instead of json_string failing and the key being dropped silently. */
static json_t *jstr(const char *s)
{
	return jtext(s);
}

static const char *target_name(enum diff_target t)
{
	switch (t) {
	case DIFF_T_APP: return "app";
	case DIFF_T_ACCESSORY: return "accessory";
	case DIFF_T_PROXY: return "proxy";
	case DIFF_T_FILE: return "env_file";
	}
	return "?";
}

static int sensitive(enum diff_cause_kind k)
{
	return k == CAUSE_SECRET_ADDED || k == CAUSE_SECRET_CHANGED || k == CAUSE_SECRET_REMOVED;
}

static json_t *step_json(const struct diff_step *s)
{
	json_t *j = json_object(), *causes = json_array();

	json_object_set_new(j, "action", json_string(diff_action_name(s->action)));
	json_object_set_new(j, "symbol", json_string(diff_action_symbol(s->action)));
	json_object_set_new(j, "target", json_string(target_name(s->target)));
	json_object_set_new(j, "name", jstr(s->name));
	json_object_set_new(j, "old_name", jstr(s->old_name));
	json_object_set_new(j, "role", jstr(s->role));
	json_object_set_new(j, "image", jstr(s->image_ref));
	json_object_set_new(j, "image_id", jstr(s->image_id));
	json_object_set_new(j, "spec_hash", s->spec_hash[0] ? json_string(s->spec_hash) : json_null());
	json_object_set_new(j, "wave", json_integer(s->wave));
	json_object_set_new(j, "group", json_integer(s->group));
	json_object_set_new(j, "disruptive", json_boolean(s->disruptive));
	json_object_set_new(j, "switch_traffic", json_boolean(s->switch_traffic));
	json_object_set_new(j, "traffic_from", jstr(s->traffic_from));
	json_object_set_new(j, "counted", json_boolean(s->counted));
	for (size_t i = 0; i < s->ncauses; i++) {
		const struct diff_cause *c = &s->causes[i];
		json_t *jc = json_object();
		char *t = diff_cause_text(c);
		json_object_set_new(jc, "kind", json_string(diff_cause_name(c->kind)));
		json_object_set_new(jc, "key", jstr(c->key));
		json_object_set_new(jc, "old", jstr(c->old));
		json_object_set_new(jc, "new", jstr(c->new));
		json_object_set_new(jc, "sensitive", json_boolean(sensitive(c->kind)));
		json_object_set_new(jc, "text", jstr(t));
		free(t);
		json_array_append_new(causes, jc);
	}
	json_object_set_new(j, "causes", causes);
	return j;
}

int diff_render_json(const struct diff_plan *p, struct sbuf *out)
{
	json_t *root = json_object(), *sum = json_object(), *hosts = json_array();
	char *text;
	int rc;

	json_object_set_new(root, "format_version", json_integer(PLAN_JSON_FORMAT_VERSION));
	json_object_set_new(root, "service", jstr(p->service));
	json_object_set_new(root, "destination", jstr(p->destination));
	json_object_set_new(root, "version", jstr(p->version));
	json_object_set_new(root, "prune", json_boolean(p->prune));
	if (p->offline_base) {
		json_object_set_new(root, "offline", json_true());
		json_object_set_new(root, "against", jstr(p->offline_base));
	}
	json_object_set_new(root, "plan_hash", json_string(p->hash));
	json_object_set_new(root, "exit_code", json_integer(diff_plan_exit_code(p)));
	json_object_set_new(sum, "add", json_integer((json_int_t)p->add));
	json_object_set_new(sum, "change", json_integer((json_int_t)p->change));
	json_object_set_new(sum, "destroy", json_integer((json_int_t)p->destroy));
	json_object_set_new(sum, "housekeeping", json_integer((json_int_t)p->housekeeping));
	json_object_set_new(sum, "orphans_kept", json_integer((json_int_t)p->orphans_kept));
	json_object_set_new(sum, "failed_hosts", json_integer((json_int_t)p->failed_hosts));
	json_object_set_new(sum, "changes", json_integer((json_int_t)p->changes));
	json_object_set_new(root, "summary", sum);
	for (size_t i = 0; i < p->nhosts; i++) {
		const struct diff_host *h = &p->hosts[i];
		json_t *jh = json_object(), *steps = json_array(), *notes = json_array();
		json_object_set_new(jh, "host", jstr(h->host));
		json_object_set_new(jh, "in_config", json_boolean(h->in_config));
		json_object_set_new(jh, "status", json_string(diff_host_status_name(h->status)));
		json_object_set_new(jh, "error", jstr(h->error));
		json_object_set_new(jh, "unchanged", json_integer((json_int_t)h->unchanged));
		for (size_t j = 0; j < h->nsteps; j++)
			json_array_append_new(steps, step_json(&h->steps[j]));
		for (size_t j = 0; j < h->nnotes; j++) {
			json_t *jn = json_object();
			json_object_set_new(jn, "kind", json_string(diff_note_name(h->notes[j].kind)));
			json_object_set_new(jn, "container", jstr(h->notes[j].container));
			json_object_set_new(jn, "key", jstr(h->notes[j].key));
			json_object_set_new(jn, "text", jstr(h->notes[j].text));
			json_array_append_new(notes, jn);
		}
		json_object_set_new(jh, "steps", steps);
		json_object_set_new(jh, "notes", notes);
		json_array_append_new(hosts, jh);
	}
	json_object_set_new(root, "hosts", hosts);
	text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
	json_decref(root);
	if (!text)
		return -1;
	rc = sbuf_adds(out, text);
	if (rc == 0)
		rc = sbuf_addc(out, '\n');
	free(text);
	return rc;
}
