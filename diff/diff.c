#include "diff/diff.h"

#include <stdlib.h>
#include <string.h>

/* ---- vocabulary ---- */

const char *diff_action_symbol(enum diff_action a)
{
	switch (a) {
	case DIFF_CREATE: return "+";
	case DIFF_REPLACE: return "+/-";
	case DIFF_REPLACE_STOP_FIRST: return "-/+";
	case DIFF_START:
	case DIFF_RENAME:
	case DIFF_RESTORE:
	case DIFF_SWITCH:
	case DIFF_WRITE_ENV_FILE: return "~";
	case DIFF_REMOVE_ORPHAN:
	case DIFF_REMOVE_ASIDE:
	case DIFF_PRUNE: return "-";
	}
	return "?";
}

const char *diff_action_name(enum diff_action a)
{
	switch (a) {
	case DIFF_CREATE: return "create";
	case DIFF_REPLACE: return "replace";
	case DIFF_REPLACE_STOP_FIRST: return "replace_stop_first";
	case DIFF_START: return "start";
	case DIFF_RENAME: return "rename";
	case DIFF_WRITE_ENV_FILE: return "write_env_file";
	case DIFF_SWITCH: return "switch";
	case DIFF_REMOVE_ORPHAN: return "remove_orphan";
	case DIFF_PRUNE: return "prune";
	case DIFF_RESTORE: return "restore";
	case DIFF_REMOVE_ASIDE: return "remove_aside";
	}
	return "?";
}

const char *diff_cause_name(enum diff_cause_kind k)
{
	static const char *const names[] = {
		[CAUSE_MISSING] = "container_missing",
		[CAUSE_STOPPED] = "stopped",
		[CAUSE_NOT_RUNNING] = "not_running",
		[CAUSE_IMAGE] = "image_changed",
		[CAUSE_IMAGE_NOT_FOUND] = "image_not_in_registry",
		[CAUSE_IMAGE_REF] = "image_ref_changed",
		[CAUSE_CMD] = "cmd_changed",
		[CAUSE_ENV_ADDED] = "env_added",
		[CAUSE_ENV_CHANGED] = "env_changed",
		[CAUSE_ENV_REMOVED] = "env_removed",
		[CAUSE_SECRET_ADDED] = "secret_added",
		[CAUSE_SECRET_CHANGED] = "secret_changed",
		[CAUSE_SECRET_REMOVED] = "secret_removed",
		[CAUSE_LABEL] = "label_changed",
		[CAUSE_VOLUME] = "volume_changed",
		[CAUSE_PORT] = "port_changed",
		[CAUSE_OPTION] = "option_changed",
		[CAUSE_RESTART] = "restart_policy_changed",
		[CAUSE_LOGGING] = "logging_changed",
		[CAUSE_NETWORK] = "network_changed",
		[CAUSE_ENV_FILE] = "env_file_changed",
		[CAUSE_VERSION] = "version_changed",
		[CAUSE_ORPHAN_ROLE] = "role_not_in_config",
		[CAUSE_ORPHAN_HOST] = "host_not_in_config",
		[CAUSE_ORPHAN_ACCESSORY] = "accessory_not_in_config",
		[CAUSE_EXTRA_RUNNING] = "extra_running_container",
		[CAUSE_TRAFFIC_ELSEWHERE] = "traffic_elsewhere",
		[CAUSE_RETAIN] = "beyond_retain_containers",
		[CAUSE_ASIDE] = "set_aside",
		[CAUSE_ASIDE_LEFTOVER] = "aside_leftover",
	};
	if ((size_t)k < ARRAY_SIZE(names) && names[k])
		return names[k];
	return "?";
}

const char *diff_host_status_name(enum diff_host_status s)
{
	switch (s) {
	case DIFF_HOST_OK: return "ok";
	case DIFF_HOST_UNREACHABLE: return "unreachable";
	case DIFF_HOST_UNKNOWN: return "unknown";
	case DIFF_HOST_NOT_OBSERVED: return "not_observed";
	case DIFF_HOST_REFUSED: return "refused";
	}
	return "?";
}

const char *diff_note_name(enum diff_note_kind k)
{
	switch (k) {
	case NOTE_UNHEALTHY: return "unhealthy";
	case NOTE_SECRET_UNAVAILABLE: return "secret_unavailable";
	case NOTE_VALUE_EXPANDED: return "value_expanded_on_host";
	case NOTE_VALUE_NOT_COMPUTED: return "value_not_computed";
	case NOTE_LOCK_HELD: return "lock_held";
	case NOTE_ORPHAN_KEPT: return "orphan_kept";
	case NOTE_IMAGE_NOT_OBSERVED: return "image_not_observed";
	}
	return "?";
}

const char *diff_wave_name(int wave)
{
	switch (wave) {
	case 1: return "accessories";
	case 2: return "primary role";
	case 3: return "other roles";
	case 4: return "orphans and pruning";
	}
	return "?";
}

static char *q(const char *s)
{
	return s ? xasprintf("\"%s\"", s) : xstrdup("(unknown)");
}

char *diff_cause_text(const struct diff_cause *c)
{
	char *a = NULL, *b = NULL, *r;
	const char *k = c->key ? c->key : "";

	switch (c->kind) {
	case CAUSE_MISSING: return xstrdup("container missing");
	case CAUSE_STOPPED: return xasprintf("stopped by hand (%s)", c->old ? c->old : "exited");
	case CAUSE_NOT_RUNNING: return xstrdup("no running container (the stopped ones differ)");
	case CAUSE_IMAGE:
		return xasprintf("image %s → %s", c->old ? c->old : "(none)", c->new ? c->new : "(none)");
	case CAUSE_IMAGE_NOT_FOUND:
		return xasprintf("new image, not in the registry yet (%s)", c->new ? c->new : "");
	case CAUSE_IMAGE_REF:
		return xasprintf("image %s → %s", c->old ? c->old : "(none)", c->new ? c->new : "(none)");
	case CAUSE_CMD:
		return xasprintf("cmd %s → %s", c->old ? c->old : "(image default)",
				 c->new ? c->new : "(image default)");
	case CAUSE_ENV_ADDED:
		a = q(c->new);
		r = xasprintf("env %s: (absent) → %s", k, a);
		break;
	case CAUSE_ENV_CHANGED:
		a = c->old ? q(c->old) : xstrdup("(another value)");
		b = q(c->new);
		r = xasprintf("env %s: %s → %s", k, a, b);
		break;
	case CAUSE_ENV_REMOVED:
		a = c->old ? q(c->old) : xstrdup("(set on the host)");
		r = xasprintf("env %s: %s → (absent)", k, a);
		break;
	case CAUSE_SECRET_ADDED: return xasprintf("env %s: (sensitive value added)", k);
	case CAUSE_SECRET_CHANGED: return xasprintf("env %s: (sensitive value changed)", k);
	case CAUSE_SECRET_REMOVED: return xasprintf("env %s: (sensitive value removed)", k);
	case CAUSE_LABEL:
		a = c->old ? q(c->old) : xstrdup("(absent)");
		b = c->new ? q(c->new) : xstrdup("(absent)");
		r = xasprintf("label %s: %s → %s", k, a, b);
		break;
	case CAUSE_VOLUME:
		return xasprintf("volume %s: %s → %s", k, c->old ? c->old : "(absent)",
				 c->new ? c->new : "(absent)");
	case CAUSE_PORT:
		return xasprintf("port %s → %s", c->old ? c->old : "(absent)", c->new ? c->new : "(absent)");
	case CAUSE_OPTION:
		return xasprintf("option %s: %s → %s", k, c->old ? c->old : "(absent)",
				 c->new ? c->new : "(absent)");
	case CAUSE_RESTART:
		return xasprintf("restart policy %s → %s", c->old ? c->old : "(none)", c->new ? c->new : "");
	case CAUSE_LOGGING:
		return xasprintf("logging %s: %s → %s", k, c->old ? c->old : "(absent)",
				 c->new ? c->new : "(absent)");
	case CAUSE_NETWORK:
		return xasprintf("network %s → %s", c->old ? c->old : "(none)", c->new ? c->new : "");
	case CAUSE_ENV_FILE:
		if (c->key)
			return xasprintf("env file %s: %s", k, c->new ? c->new : "changed");
		return xasprintf("env file %s", c->new ? c->new : "changed");
	case CAUSE_VERSION:
		if (c->key)
			return xasprintf("version %s → %s (x-plumb %s: a new container)",
					 c->old ? c->old : "?", c->new ? c->new : "?", k);
		return xasprintf("version %s → %s (same image and config: no restart; KAMAL_VERSION "
				 "keeps the old value)",
				 c->old ? c->old : "?", c->new ? c->new : "?");
	case CAUSE_ORPHAN_ROLE: return xasprintf("role %s is not in the configuration for this host", k);
	case CAUSE_ORPHAN_HOST: return xstrdup("host is not in the configuration");
	case CAUSE_ORPHAN_ACCESSORY:
		return xasprintf("accessory %s is not in the configuration for this host (its data directory is kept)", k);
	case CAUSE_EXTRA_RUNNING: return xstrdup("another running container of the role");
	case CAUSE_TRAFFIC_ELSEWHERE:
		return xasprintf("kamal-proxy sends the role's traffic to %s, not to this container",
				 c->old ? c->old : "another target");
	case CAUSE_RETAIN:
		return xasprintf("stopped, beyond retain_containers (%s)", c->new ? c->new : "5");
	case CAUSE_ASIDE:
		return xasprintf("no container %s: this one was set aside by an interrupted stop-first "
				 "replacement; it holds the accessory's data", k);
	case CAUSE_ASIDE_LEFTOVER:
		return xasprintf("set aside by an interrupted stop-first replacement: a stopped copy on "
				 "the data %s uses (removed once %s runs and is ready)", k, k);
	default: return xstrdup("?");
	}
	free(a);
	free(b);
	return r;
}

/* ---- building ---- */

struct hctx {
	const struct desired *ds;
	const struct des_host *dh; /* NULL for a base-only host */
	const struct obs_host *oh;
	const struct diff_opts *o;
	struct diff_host *out;
	unsigned char *used; /* per observed container: matched */
};

static struct diff_step *step_new(struct diff_host *h, enum diff_action a, enum diff_target t)
{
	struct diff_step *s;

	h->steps = xrealloc(h->steps, (h->nsteps + 1) * sizeof(*h->steps));
	s = &h->steps[h->nsteps++];
	memset(s, 0, sizeof(*s));
	s->action = a;
	s->target = t;
	return s;
}

static void cause_add(struct diff_step *s, enum diff_cause_kind k, const char *key, const char *old,
		      const char *new)
{
	struct diff_cause *c;

	s->causes = xrealloc(s->causes, (s->ncauses + 1) * sizeof(*s->causes));
	c = &s->causes[s->ncauses++];
	c->kind = k;
	c->key = key ? xstrdup(key) : NULL;
	c->old = old ? xstrdup(old) : NULL;
	c->new = new ? xstrdup(new) : NULL;
}

static void note_add(struct diff_host *h, enum diff_note_kind k, const char *container,
		     const char *key, const char *text)
{
	struct diff_note *n;

	h->notes = xrealloc(h->notes, (h->nnotes + 1) * sizeof(*h->notes));
	n = &h->notes[h->nnotes++];
	n->kind = k;
	n->container = container ? xstrdup(container) : NULL;
	n->key = key ? xstrdup(key) : NULL;
	n->text = text ? xstrdup(text) : NULL;
}

/* A temporary list of causes, moved into a step when one is made. */
struct causes {
	struct diff_step s; /* only causes/ncauses used */
};

static void causes_move(struct diff_step *dst, struct causes *src)
{
	dst->causes = src->s.causes;
	dst->ncauses = src->s.ncauses;
	src->s.causes = NULL;
	src->s.ncauses = 0;
}

static void causes_release(struct causes *cs)
{
	for (size_t i = 0; i < cs->s.ncauses; i++) {
		free(cs->s.causes[i].key);
		free(cs->s.causes[i].old);
		free(cs->s.causes[i].new);
	}
	free(cs->s.causes);
	cs->s.causes = NULL;
	cs->s.ncauses = 0;
}

static int is_running(const struct obs_container *c)
{
	return c->state && (strcmp(c->state, "running") == 0 || strcmp(c->state, "restarting") == 0 ||
			    strcmp(c->state, "paused") == 0);
}

static int str_eq(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

int diff_is_aside(const char *container, const char *name)
{
	size_t l, n = 0;

	if (!container || !name)
		return 0;
	l = strlen(name);
	if (strncmp(container, name, l) != 0 || strncmp(container + l, "_replaced_", 10) != 0)
		return 0;
	for (const char *p = container + l + 10; *p; p++, n++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return 0;
	return n >= 1 && n <= 64;
}

/* oc is dc's accessory container, set aside by a stop-first replacement. */
static int aside_of(const struct des_container *dc, const struct obs_container *oc)
{
	return dc->kind == DES_ACCESSORY && diff_is_aside(oc->name, dc->name);
}

/* The old clear value of key whose salted hash is `hash`, from the desired
 * state (same host) or the base revision's. Clear values only. */
static const char *known_clear_value(const struct hctx *x, const char *key, const char *hash)
{
	const struct des_host *hs[2];

	hs[0] = x->dh;
	hs[1] = x->o->base && x->out->host ? desired_host(x->o->base, x->out->host) : NULL;
	for (size_t k = 0; k < 2; k++) {
		if (!hs[k])
			continue;
		for (size_t i = 0; i < hs[k]->ncontainers; i++) {
			const struct des_env *e = des_container_env(&hs[k]->containers[i], key);
			if (e && e->kind == DES_ENV_CLEAR && strcmp(e->hash, hash) == 0)
				return e->value;
		}
	}
	return NULL;
}

static int ignored_env(const char *key)
{
	return strcmp(key, "KAMAL_VERSION") == 0 || strcmp(key, "KAMAL_CONTAINER_NAME") == 0;
}

static int argv_eq(const struct strvec *a, const struct strvec *b)
{
	if (a->n != b->n)
		return 0;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i], b->v[i]) != 0)
			return 0;
	return 1;
}

static char *argv_join(const struct strvec *a)
{
	struct sbuf sb;

	sbuf_init(&sb, 0);
	for (size_t i = 0; i < a->n; i++) {
		if (i)
			sbuf_addc(&sb, ' ');
		sbuf_adds(&sb, a->v[i]);
	}
	return sbuf_detach(&sb);
}

static void compare_env(struct hctx *x, const struct des_container *dc,
			const struct obs_container *oc, const struct obs_image *img, struct causes *cs)
{
	for (size_t i = 0; i < dc->nenv; i++) {
		const struct des_env *e = &dc->env[i];
		const char *oh = obs_env_hash(oc->env, oc->nenv, e->key);

		switch (e->kind) {
		case DES_ENV_EXPANDED:
			note_add(x->out, NOTE_VALUE_EXPANDED, dc->name, e->key, NULL);
			break;
		case DES_ENV_UNAVAILABLE:
			note_add(x->out, NOTE_SECRET_UNAVAILABLE, dc->name, e->key, e->secret);
			break;
		case DES_ENV_NOT_COMPUTED:
			note_add(x->out, NOTE_VALUE_NOT_COMPUTED, dc->name, e->key, NULL);
			break;
		case DES_ENV_SECRET:
		case DES_ENV_SENSITIVE: /* from ERB ENV or a command: never printed */
			if (!oh)
				cause_add(&cs->s, CAUSE_SECRET_ADDED, e->key, NULL, NULL);
			else if (strcmp(oh, e->hash) != 0)
				cause_add(&cs->s, CAUSE_SECRET_CHANGED, e->key, NULL, NULL);
			break;
		case DES_ENV_CLEAR:
			if (!oh)
				cause_add(&cs->s, CAUSE_ENV_ADDED, e->key, NULL, e->value);
			else if (strcmp(oh, e->hash) != 0)
				cause_add(&cs->s, CAUSE_ENV_CHANGED, e->key,
					  known_clear_value(x, e->key, oh), e->value);
			break;
		}
	}
	for (size_t i = 0; i < oc->nenv; i++) {
		const struct obs_env *e = &oc->env[i];
		const char *ih;
		const struct des_env *de;

		if (ignored_env(e->key) || des_container_env(dc, e->key))
			continue;
		if (!img)
			continue; /* cannot tell the image's own env apart: not compared */
		ih = obs_env_hash(img->env, img->nenv, e->key);
		if (ih && strcmp(ih, e->hash) == 0)
			continue;
		/* was it a secret before? the base knows */
		de = NULL;
		if (x->o->base && x->out->host) {
			const struct des_host *bh = desired_host(x->o->base, x->out->host);
			for (size_t k = 0; bh && k < bh->ncontainers && !de; k++)
				de = des_container_env(&bh->containers[k], e->key);
		}
		if (de && de->kind != DES_ENV_CLEAR && de->kind != DES_ENV_EXPANDED)
			cause_add(&cs->s, CAUSE_SECRET_REMOVED, e->key, NULL, NULL);
		else
			cause_add(&cs->s, CAUSE_ENV_REMOVED, e->key, known_clear_value(x, e->key, e->hash),
				  NULL);
	}
}

static void compare_labels(const struct des_container *dc, const struct obs_container *oc,
			   const struct obs_image *img, struct causes *cs)
{
	for (size_t i = 0; i < dc->labels.n; i++) {
		const char *ov = kvs_get(&oc->labels, dc->labels.keys[i]);
		if (!ov || strcmp(ov, dc->labels.vals[i]) != 0)
			cause_add(&cs->s, CAUSE_LABEL, dc->labels.keys[i], ov, dc->labels.vals[i]);
	}
	for (size_t i = 0; i < oc->labels.n; i++) {
		const char *k = oc->labels.keys[i], *iv;
		if (kvs_get(&dc->labels, k) || strncmp(k, "plumb.", 6) == 0)
			continue;
		if (!img)
			continue;
		iv = kvs_get(&img->labels, k);
		if (iv && strcmp(iv, oc->labels.vals[i]) == 0)
			continue;
		cause_add(&cs->s, CAUSE_LABEL, k, oc->labels.vals[i], NULL);
	}
}

static int ends_with_path(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	if (lx > ls)
		return 0;
	if (strcmp(s + ls - lx, suffix) != 0)
		return 0;
	return ls == lx || s[ls - lx - 1] == '/';
}

static int mount_matches(const struct desired *ds, const struct des_mount *dm,
			 const struct obs_mount *om)
{
	int orw = om->rw;

	if (dm->rw != orw)
		return 0;
	switch (dm->kind) {
	case DES_MOUNT_VOLUME:
		if (!str_eq(om->type, "volume"))
			return 0;
		return dm->source[0] == '\0' || str_eq(om->source, dm->source);
	case DES_MOUNT_BIND:
		return str_eq(om->type, "bind") && str_eq(om->source, dm->source);
	case DES_MOUNT_HOME:
		if (!str_eq(om->type, "bind") || !om->source)
			return 0;
		if (dm->versioned) {
			/* ".../assets/volumes/<role>-<version>": any version of it */
			size_t vl = strlen(ds->version), sl = strlen(dm->source);
			char *pfx = xstrndup(dm->source, sl > vl ? sl - vl : 0);
			int ok = strstr(om->source, pfx) != NULL;
			free(pfx);
			return ok;
		}
		return ends_with_path(om->source, dm->source);
	}
	return 0;
}

static char *des_mount_str(const struct des_mount *m)
{
	const char *pfx = m->kind == DES_MOUNT_HOME ? "~/" : "";
	return xasprintf("%s%s%s%s", pfx, m->source, m->rw ? "" : " (ro)", "");
}

static char *obs_mount_str(const struct obs_mount *m)
{
	return xasprintf("%s%s", m->source ? m->source : "", m->rw ? "" : " (ro)");
}

static void compare_mounts(const struct desired *ds, const struct des_container *dc,
			   const struct obs_container *oc, const struct obs_image *img,
			   struct causes *cs)
{
	for (size_t i = 0; i < dc->nmounts; i++) {
		const struct des_mount *dm = &dc->mounts[i];
		const struct obs_mount *om = NULL;
		for (size_t j = 0; j < oc->nmounts; j++)
			if (str_eq(oc->mounts[j].destination, dm->destination))
				om = &oc->mounts[j];
		if (!om || !mount_matches(ds, dm, om)) {
			char *a = om ? obs_mount_str(om) : NULL, *b = des_mount_str(dm);
			cause_add(&cs->s, CAUSE_VOLUME, dm->destination, a, b);
			free(a);
			free(b);
		}
	}
	for (size_t j = 0; j < oc->nmounts; j++) {
		const struct obs_mount *om = &oc->mounts[j];
		int wanted = 0;
		for (size_t i = 0; i < dc->nmounts && !wanted; i++)
			wanted = str_eq(om->destination, dc->mounts[i].destination);
		if (wanted)
			continue;
		/* the image's own VOLUMEs get anonymous volumes: not ours to judge */
		if (str_eq(om->type, "volume") && (!img || strvec_contains(&img->volumes, om->destination ? om->destination : "")))
			continue;
		{
			char *a = obs_mount_str(om);
			cause_add(&cs->s, CAUSE_VOLUME, om->destination, a, NULL);
			free(a);
		}
	}
}

static const char *norm_ip(const char *ip)
{
	if (!ip || strcmp(ip, "0.0.0.0") == 0 || strcmp(ip, "::") == 0)
		return "";
	return ip;
}

static char *port_str(const char *ip, const char *hp, const char *cp)
{
	ip = norm_ip(ip);
	return *ip ? xasprintf("%s:%s:%s", ip, hp ? hp : "", cp ? cp : "")
		   : xasprintf("%s:%s", hp ? hp : "", cp ? cp : "");
}

static void compare_ports(const struct des_container *dc, const struct obs_container *oc,
			  struct causes *cs)
{
	for (size_t i = 0; i < dc->nports; i++) {
		const struct des_port *dp = &dc->ports[i];
		int found = 0;
		for (size_t j = 0; j < oc->nports && !found; j++)
			found = str_eq(oc->ports[j].container_port, dp->container_port) &&
				str_eq(norm_ip(oc->ports[j].host_ip), norm_ip(dp->host_ip)) &&
				str_eq(oc->ports[j].host_port, dp->host_port);
		if (!found) {
			char *b = port_str(dp->host_ip, dp->host_port, dp->container_port);
			cause_add(&cs->s, CAUSE_PORT, NULL, NULL, b);
			free(b);
		}
	}
	for (size_t j = 0; j < oc->nports; j++) {
		const struct obs_port *op = &oc->ports[j];
		int found = 0;
		for (size_t i = 0; i < dc->nports && !found; i++)
			found = str_eq(op->container_port, dc->ports[i].container_port) &&
				str_eq(norm_ip(op->host_ip), norm_ip(dc->ports[i].host_ip)) &&
				str_eq(op->host_port, dc->ports[i].host_port);
		if (!found) {
			char *a = port_str(op->host_ip, op->host_port, op->container_port);
			cause_add(&cs->s, CAUSE_PORT, NULL, a, NULL);
			free(a);
		}
	}
}

static int option_eq(const char *key, const char *want, const char *got)
{
	long long a, b;

	if (strcmp(want, got) == 0)
		return 1;
	if (strcmp(key, "cpus") == 0)
		return strtod(want, NULL) == strtod(got, NULL);
	a = desired_parse_size(want);
	b = desired_parse_size(got);
	return a >= 0 && a == b;
}

/* The base revision's container for dc on this host (same kind and role), or NULL. */
static const struct des_container *base_container(const struct hctx *x, const struct des_container *dc)
{
	const struct des_host *bh;

	if (!x->o->base || !x->out->host)
		return NULL;
	bh = desired_host(x->o->base, x->out->host);
	for (size_t i = 0; bh && i < bh->ncontainers; i++)
		if (bh->containers[i].kind == dc->kind && str_eq(bh->containers[i].role, dc->role))
			return &bh->containers[i];
	return NULL;
}

static void compare_spec(struct hctx *x, const struct des_container *dc,
			 const struct obs_container *oc, struct causes *cs)
{
	const struct obs_image *img = obs_host_image(x->oh, oc->image_id);

	if (!img && dc->kind != DES_PROXY)
		note_add(x->out, NOTE_IMAGE_NOT_OBSERVED, oc->name, NULL, oc->image_id);
	/* image */
	if (dc->kind == DES_APP) {
		if (dc->image_status == DES_IMAGE_NOT_FOUND)
			cause_add(&cs->s, CAUSE_IMAGE_NOT_FOUND, NULL, oc->image_id, dc->image_ref);
		else if (dc->image_status == DES_IMAGE_FOUND && !str_eq(dc->image_id, oc->image_id))
			cause_add(&cs->s, CAUSE_IMAGE, NULL, oc->image_id, dc->image_id);
	} else if (dc->image_id) {
		if (!str_eq(dc->image_id, oc->image_id))
			cause_add(&cs->s, CAUSE_IMAGE, NULL, oc->image_id, dc->image_id);
	} else if (!str_eq(dc->image_ref, oc->image_ref)) {
		cause_add(&cs->s, CAUSE_IMAGE_REF, NULL, oc->image_ref, dc->image_ref);
	}
	/* cmd */
	if (dc->cmd) {
		if (!argv_eq(&dc->cmd_argv, &oc->cmd)) {
			char *a = argv_join(&oc->cmd);
			cause_add(&cs->s, CAUSE_CMD, NULL, a, dc->cmd);
			free(a);
		}
	} else if (img && !argv_eq(&img->cmd, &oc->cmd)) {
		char *a = argv_join(&oc->cmd);
		cause_add(&cs->s, CAUSE_CMD, NULL, a, NULL);
		free(a);
	}
	compare_env(x, dc, oc, img, cs);
	compare_labels(dc, oc, img, cs);
	compare_mounts(x->ds, dc, oc, img, cs);
	compare_ports(dc, oc, cs);
	for (size_t i = 0; i < dc->options.n; i++) {
		const char *got = kvs_get(&oc->options, dc->options.keys[i]);
		/* options the observation does not report are not compared */
		if (got && !option_eq(dc->options.keys[i], dc->options.vals[i], got))
			cause_add(&cs->s, CAUSE_OPTION, dc->options.keys[i], got, dc->options.vals[i]);
	}
	{
		char *want = xstrdup(dc->restart), *colon = strchr(want, ':');
		if (colon)
			*colon = '\0';
		if (!str_eq(want, oc->restart_policy))
			cause_add(&cs->s, CAUSE_RESTART, NULL, oc->restart_policy, dc->restart);
		free(want);
	}
	if (dc->log_driver && !str_eq(dc->log_driver, oc->log_driver))
		cause_add(&cs->s, CAUSE_LOGGING, "driver", oc->log_driver, dc->log_driver);
	for (size_t i = 0; i < dc->log_opts.n; i++) {
		const char *got = kvs_get(&oc->log_opts, dc->log_opts.keys[i]);
		if (!str_eq(got, dc->log_opts.vals[i]))
			cause_add(&cs->s, CAUSE_LOGGING, dc->log_opts.keys[i], got, dc->log_opts.vals[i]);
	}
	/* Docker copies the daemon's default log-opts (daemon.json) into every
	 * container with the default driver, so an option plumb does not ask for
	 * is not drift — unless the base revision asked for it and this one no
	 * longer does. */
	{
		const struct des_container *bc = base_container(x, dc);
		for (size_t i = 0; bc && i < oc->log_opts.n; i++)
			if (!kvs_get(&dc->log_opts, oc->log_opts.keys[i]) &&
			    kvs_get(&bc->log_opts, oc->log_opts.keys[i]))
				cause_add(&cs->s, CAUSE_LOGGING, oc->log_opts.keys[i], oc->log_opts.vals[i],
					  NULL);
	}
	if (!str_eq(oc->network_mode, dc->network) && !strvec_contains(&oc->networks, dc->network))
		cause_add(&cs->s, CAUSE_NETWORK, NULL, oc->network_mode, dc->network);
}

static int ours_app(const struct desired *ds, const struct obs_container *c)
{
	return c->kind == OBS_APP && str_eq(c->service, ds->service) &&
	       str_eq(c->destination, ds->destination);
}

static const char *version_of(const struct obs_container *oc, const char *prefix)
{
	size_t l = strlen(prefix);

	if (oc->name && strncmp(oc->name, prefix, l) == 0 && oc->name[l] == '-')
		return oc->name + l + 1;
	return oc->name ? oc->name : "";
}

/* newer created time first; names break ties so the order is stable */
static int newer(const struct obs_container *a, const struct obs_container *b)
{
	int c = strcmp(a->created ? a->created : "", b->created ? b->created : "");
	if (c != 0)
		return c > 0;
	return strcmp(a->name ? a->name : "", b->name ? b->name : "") > 0;
}

static int is_candidate(const struct hctx *x, const struct des_container *dc,
			const struct obs_container *oc)
{
	switch (dc->kind) {
	case DES_APP: return ours_app(x->ds, oc) && str_eq(oc->role, dc->role);
	case DES_ACCESSORY:
		return oc->kind == OBS_ACCESSORY &&
		       (str_eq(oc->service, dc->name) || str_eq(oc->name, dc->name));
	case DES_PROXY: return oc->kind == OBS_PROXY;
	}
	return 0;
}

static void step_from_desired(struct diff_step *s, const struct des_container *dc)
{
	s->name = xstrdup(dc->name);
	s->role = xstrdup(dc->role);
	s->image_ref = xstrdup(dc->image_ref);
	s->image_id = dc->image_id ? xstrdup(dc->image_id) : NULL;
	memcpy(s->spec_hash, dc->spec_hash, sizeof(s->spec_hash));
}

static enum diff_target target_of(const struct des_container *dc)
{
	return dc->kind == DES_APP ? DIFF_T_APP : dc->kind == DES_ACCESSORY ? DIFF_T_ACCESSORY
									   : DIFF_T_PROXY;
}

static int wave_of(const struct desired *ds, const struct des_container *dc, const char *host,
		   int *group)
{
	*group = 0;
	if (dc->kind != DES_APP)
		return 1;
	/* Kamal's host boot groups: slices of boot.limit of app_hosts (primary
	 * role's hosts first), every role of a host booting in its host's group */
	for (size_t i = 0; i < ds->app_hosts.n; i++)
		if (strcmp(ds->app_hosts.v[i], host) == 0) {
			*group = ds->boot_limit > 0 ? (int)(i / (size_t)ds->boot_limit) : 0;
			break;
		}
	return dc->primary ? 2 : 3;
}

/*
 * kamal-proxy's current target for `service` (a role's container prefix)
 * from the host's routes (parsed by providers/kamal_proxy.c), or NULL. A
 * target that starts with an observed container's id (kamal-proxy targets
 * containers by id) is shown with that container's name.
 */
char *diff_proxy_target(const struct obs_host *oh, const char *service)
{
	const char *t = NULL;
	size_t idlen;

	if (!oh || !service)
		return NULL;
	for (size_t i = 0; i < oh->nroutes && !t; i++)
		if (strcmp(oh->routes[i].service, service) == 0)
			t = oh->routes[i].target;
	if (!t || !*t)
		return NULL;
	idlen = strcspn(t, ":, ");
	if (idlen >= 12) {
		for (size_t i = 0; i < oh->ncontainers; i++) {
			const struct obs_container *c = &oh->containers[i];
			if (c->id && c->name && strlen(c->id) >= idlen && strncmp(c->id, t, idlen) == 0)
				return xasprintf("%s (%s)", c->name, t);
		}
	}
	return xstrdup(t);
}

static void set_traffic(struct hctx *x, struct diff_step *s, const struct des_container *dc)
{
	s->switch_traffic = dc->proxied;
	if (dc->proxied)
		s->traffic_from = diff_proxy_target(x->oh, dc->prefix);
}

/* Is oc a better pick than best for dc: the one with the desired name, else the newest. */
static int better_pick(const struct des_container *dc, const struct obs_container *oc,
		       const struct obs_container *best)
{
	return !best || (str_eq(oc->name, dc->name) && !str_eq(best->name, dc->name)) ||
	       (!str_eq(best->name, dc->name) && newer(oc, best));
}

/* The current container of dc: running with the desired name, else the newest running. */
static const struct obs_container *find_running(const struct hctx *x, const struct des_container *dc,
						size_t *at)
{
	const struct obs_container *run = NULL;

	for (size_t i = 0; i < x->oh->ncontainers; i++) {
		const struct obs_container *oc = &x->oh->containers[i];
		if (x->used[i] || !is_candidate(x, dc, oc) || !is_running(oc))
			continue;
		if (better_pick(dc, oc, run)) {
			run = oc;
			*at = i;
		}
	}
	return run;
}

/* A stopped container of dc that matches its spec (the desired name first, else the newest). */
static const struct obs_container *find_stopped_match(struct hctx *x, const struct des_container *dc,
						      size_t *at)
{
	const struct obs_container *match = NULL;

	for (size_t i = 0; i < x->oh->ncontainers; i++) {
		const struct obs_container *oc = &x->oh->containers[i];
		struct causes tmp = { 0 };
		if (x->used[i] || !is_candidate(x, dc, oc) || is_running(oc))
			continue;
		if (dc->kind != DES_PROXY) {
			size_t notes = x->out->nnotes;
			compare_spec(x, dc, oc, &tmp);
			/* notes about a container we may not pick are dropped */
			while (x->out->nnotes > notes) {
				struct diff_note *n = &x->out->notes[--x->out->nnotes];
				free(n->container);
				free(n->key);
				free(n->text);
			}
		}
		if (tmp.s.ncauses == 0 && better_pick(dc, oc, match)) {
			match = oc;
			*at = i;
		}
		causes_release(&tmp);
	}
	return match;
}

/* A step realising dc: its desired container, names and spec. */
static struct diff_step *step_for(struct hctx *x, enum diff_action a, const struct des_container *dc)
{
	struct diff_step *s = step_new(x->out, a, target_of(dc));

	step_from_desired(s, dc);
	s->desired = dc;
	return s;
}

/* dc runs as run: replaced when its spec differs, renamed when only the
 * version in its name does, else kept. NULL when kept; sets *replaced. */
static struct diff_step *plan_running(struct hctx *x, const struct des_container *dc,
				      const struct obs_container *run, int *replaced)
{
	struct causes cs = { 0 };
	struct diff_step *s;

	if (run->health && strcmp(run->health, "unhealthy") == 0)
		note_add(x->out, NOTE_UNHEALTHY, run->name, NULL, NULL);
	if (dc->kind != DES_PROXY || dc->proxy_managed)
		compare_spec(x, dc, run, &cs);
	if (cs.s.ncauses) {
		/* an accessory or kamal-proxy cannot run twice side by side (one
		 * name, one data directory, ports 80/443): stop-first, disruptive */
		int stop_first = dc->kind != DES_APP;

		s = step_for(x, stop_first ? DIFF_REPLACE_STOP_FIRST : DIFF_REPLACE, dc);
		s->old_name = xstrdup(run->name);
		s->disruptive = stop_first;
		set_traffic(x, s, dc);
		causes_move(s, &cs);
		if (aside_of(dc, run))
			cause_add(s, CAUSE_ASIDE, dc->name, NULL, NULL);
		*replaced = 1;
		return s;
	}
	if (aside_of(dc, run)) {
		/* started again by hand under its aside name: it gets its name back */
		s = step_for(x, DIFF_RESTORE, dc);
		s->old_name = xstrdup(run->name);
		cause_add(s, CAUSE_ASIDE, dc->name, NULL, NULL);
		return s;
	}
	if (dc->kind == DES_APP && !str_eq(run->name, dc->name)) {
		if (x->o->no_renames) {
			s = step_for(x, DIFF_REPLACE, dc);
			set_traffic(x, s, dc);
			*replaced = 1;
		} else {
			s = step_for(x, DIFF_RENAME, dc);
		}
		s->old_name = xstrdup(run->name);
		cause_add(s, CAUSE_VERSION, x->o->no_renames ? "renames: false" : NULL,
			  version_of(run, dc->prefix), x->ds->version);
		return s;
	}
	x->out->unchanged++;
	causes_release(&cs);
	return NULL;
}

/* Nothing runs, a stopped container matches the spec: it is started. */
static struct diff_step *plan_start(struct hctx *x, const struct des_container *dc,
				    const struct obs_container *stopped)
{
	struct causes cs = { 0 };
	struct diff_step *s;

	if (dc->kind != DES_PROXY)
		compare_spec(x, dc, stopped, &cs); /* for its notes; no causes */
	causes_release(&cs);
	/* an accessory set aside by an interrupted replacement: renamed back */
	s = step_for(x, aside_of(dc, stopped) ? DIFF_RESTORE : DIFF_START, dc);
	s->old_name = xstrdup(stopped->name);
	if (aside_of(dc, stopped))
		cause_add(s, CAUSE_ASIDE, dc->name, NULL, NULL);
	cause_add(s, CAUSE_STOPPED, NULL, stopped->state, "running");
	if (dc->kind == DES_APP && !str_eq(stopped->name, dc->name))
		cause_add(s, CAUSE_VERSION, NULL, version_of(stopped, dc->prefix), x->ds->version);
	set_traffic(x, s, dc);
	return s;
}

/* Nothing runs and nothing stopped matches: created (an accessory's stopped,
 * different container is removed first: its name is fixed). */
static struct diff_step *plan_missing(struct hctx *x, const struct des_container *dc)
{
	const struct obs_container *old = NULL;
	struct causes cs = { 0 };
	struct diff_step *s;
	size_t old_i = 0;

	for (size_t i = 0; i < x->oh->ncontainers; i++)
		if (!x->used[i] && is_candidate(x, dc, &x->oh->containers[i]) &&
		    (!old || newer(&x->oh->containers[i], old))) {
			old = &x->oh->containers[i];
			old_i = i;
		}
	if (old && dc->kind == DES_ACCESSORY) {
		/* already down, so not disruptive */
		x->used[old_i] = 1;
		s = step_for(x, DIFF_REPLACE_STOP_FIRST, dc);
		s->old_name = xstrdup(old->name);
		cause_add(s, CAUSE_NOT_RUNNING, NULL, NULL, NULL);
		if (aside_of(dc, old)) /* its data is the data: replaced from it */
			cause_add(s, CAUSE_ASIDE, dc->name, NULL, NULL);
		compare_spec(x, dc, old, &cs);
		for (size_t k = 0; k < cs.s.ncauses; k++)
			cause_add(s, cs.s.causes[k].kind, cs.s.causes[k].key, cs.s.causes[k].old,
				  cs.s.causes[k].new);
		causes_release(&cs);
		return s;
	}
	s = step_for(x, DIFF_CREATE, dc);
	cause_add(s, old ? CAUSE_NOT_RUNNING : CAUSE_MISSING, NULL, NULL, NULL);
	if (dc->kind == DES_APP && dc->image_status == DES_IMAGE_NOT_FOUND)
		cause_add(s, CAUSE_IMAGE_NOT_FOUND, NULL, NULL, dc->image_ref);
	set_traffic(x, s, dc);
	return s;
}

/* Other running containers of dc's role: leftovers of an interrupted deploy. */
static void plan_extras(struct hctx *x, const struct des_container *dc)
{
	if (dc->kind == DES_PROXY)
		return;
	for (size_t i = 0; i < x->oh->ncontainers; i++) {
		const struct obs_container *oc = &x->oh->containers[i];
		struct diff_step *s;
		if (x->used[i] || !is_candidate(x, dc, oc) || !is_running(oc))
			continue;
		x->used[i] = 1;
		s = step_new(x->out, DIFF_REMOVE_ORPHAN, target_of(dc));
		s->name = xstrdup(oc->name);
		s->old_name = xstrdup(oc->name);
		s->role = xstrdup(dc->role);
		s->wave = 4;
		cause_add(s, CAUSE_EXTRA_RUNNING, NULL, NULL, NULL);
	}
}

/* Does kamal-proxy, as the host reported its routes, send dc's traffic to
 * something other than oc? Only when the host reported routes: a host whose
 * routes are unknown is not planned a switch on every run. */
static int traffic_elsewhere(const struct hctx *x, const struct des_container *dc,
			     const struct obs_container *oc)
{
	const char *t = NULL;
	size_t idlen;

	if (!dc->proxied || x->oh->nroutes == 0)
		return 0;
	for (size_t i = 0; i < x->oh->nroutes && !t; i++)
		if (str_eq(x->oh->routes[i].service, dc->prefix))
			t = x->oh->routes[i].target;
	if (!t || !*t)
		return 1; /* the proxy runs and knows no route for the role */
	idlen = strcspn(t, ":, ");
	if (oc->id && idlen >= 12 && strlen(oc->id) >= idlen && strncmp(oc->id, t, idlen) == 0)
		return 0;
	return !(oc->name && strlen(oc->name) == idlen && strncmp(oc->name, t, idlen) == 0);
}

/*
 * dc's container oc runs as desired (kept or renamed): left over from an
 * interrupted rollout, another container of the role may run too, or
 * kamal-proxy may still route to the old one. Then a switch step makes oc
 * the one: ready, traffic moved, the other stopped. NULL when neither.
 */
static struct diff_step *plan_switch(struct hctx *x, const struct des_container *dc,
				     const struct obs_container *oc)
{
	const struct obs_container *other = NULL;
	int elsewhere = traffic_elsewhere(x, dc, oc);
	struct diff_step *s;

	for (size_t i = 0; i < x->oh->ncontainers; i++) {
		const struct obs_container *c = &x->oh->containers[i];
		if (x->used[i] || !is_candidate(x, dc, c) || !is_running(c))
			continue;
		if (!other || newer(c, other))
			other = c;
	}
	if (!other && !elsewhere)
		return NULL;
	s = step_for(x, DIFF_SWITCH, dc);
	if (other) {
		x->used[other - x->oh->containers] = 1;
		s->old_name = xstrdup(other->name);
		cause_add(s, CAUSE_EXTRA_RUNNING, NULL, other->name, NULL);
	}
	set_traffic(x, s, dc);
	if (elsewhere)
		cause_add(s, CAUSE_TRAFFIC_ELSEWHERE, NULL, s->traffic_from, dc->name);
	return s;
}

/*
 * An accessory's containers set aside by interrupted stop-first replacements
 * (diff.h). When a container holds the accessory's name, its stopped aside
 * ones are leftovers: marked used here, before anything is picked, so that
 * none is restored over (or replaced instead of) the named one. Returns
 * how many were marked; their indices in leftovers[].
 */
static size_t take_leftover_asides(struct hctx *x, const struct des_container *dc, size_t *leftovers)
{
	size_t n = 0;
	int named = 0;

	if (dc->kind != DES_ACCESSORY)
		return 0;
	for (size_t i = 0; i < x->oh->ncontainers && !named; i++)
		named = !x->used[i] && is_candidate(x, dc, &x->oh->containers[i]) &&
			str_eq(x->oh->containers[i].name, dc->name);
	for (size_t i = 0; named && i < x->oh->ncontainers; i++) {
		const struct obs_container *oc = &x->oh->containers[i];
		if (x->used[i] || !is_candidate(x, dc, oc) || !aside_of(dc, oc) || is_running(oc))
			continue;
		x->used[i] = 1;
		leftovers[n++] = i;
	}
	return n;
}

/* The leftover aside containers (and any other stopped aside one the step
 * did not pick): removed after dc's step, once dc runs and is ready. */
static void plan_leftover_asides(struct hctx *x, const struct des_container *dc, size_t *leftovers,
				 size_t n)
{
	for (size_t i = 0; dc->kind == DES_ACCESSORY && i < x->oh->ncontainers; i++) {
		const struct obs_container *oc = &x->oh->containers[i];
		if (x->used[i] || !is_candidate(x, dc, oc) || !aside_of(dc, oc) || is_running(oc))
			continue;
		x->used[i] = 1;
		leftovers[n++] = i;
	}
	for (size_t k = 0; k < n; k++) {
		const struct obs_container *oc = &x->oh->containers[leftovers[k]];
		struct diff_step *s = step_new(x->out, DIFF_REMOVE_ASIDE, DIFF_T_ACCESSORY);
		s->name = xstrdup(oc->name);
		s->old_name = xstrdup(oc->name);
		s->role = xstrdup(dc->role);
		s->desired = dc;
		s->wave = 1;
		cause_add(s, CAUSE_ASIDE_LEFTOVER, dc->name, NULL, NULL);
	}
}

/* Plans one desired container, one function per case; marks the observed
 * ones it consumed. *replaced: a new container is booted (its env file is
 * written then anyway). */
static void plan_container(struct hctx *x, const struct des_container *dc, int *replaced)
{
	const struct obs_container *oc;
	struct diff_step *s;
	int wave, group;
	size_t at = 0, nleft;
	size_t *left = xcalloc(x->oh->ncontainers ? x->oh->ncontainers : 1, sizeof(*left));

	*replaced = 0;
	wave = wave_of(x->ds, dc, x->out->host, &group);
	nleft = take_leftover_asides(x, dc, left);
	if ((oc = find_running(x, dc, &at))) {
		x->used[at] = 1;
		s = plan_running(x, dc, oc, replaced);
		if (dc->kind == DES_APP && (!s || s->action == DIFF_RENAME)) {
			struct diff_step *sw;
			int kept = !s;
			if (s) {
				s->wave = wave;
				s->group = group;
			}
			if ((sw = plan_switch(x, dc, oc))) {
				s = sw;
				if (kept)
					x->out->unchanged--;
			}
		}
	} else if ((oc = find_stopped_match(x, dc, &at))) {
		x->used[at] = 1;
		s = plan_start(x, dc, oc);
	} else {
		s = plan_missing(x, dc);
		*replaced = 1;
	}
	if (s) {
		s->wave = wave;
		s->group = group;
	}
	plan_leftover_asides(x, dc, left, nleft);
	free(left);
	plan_extras(x, dc);
}

/* owner: a container that reads the file (its wave is the file's), or NULL */
static void plan_env_file(struct hctx *x, const struct des_env_file *f, int container_replaced,
			  const struct des_container *owner)
{
	const struct obs_env_file *of = obs_host_env_file(x->oh, f->path);
	struct causes cs = { 0 };
	struct diff_step *s;

	if (f->unavailable) {
		/* lines that were read can still be compared; the file as a whole cannot */
		if (!of)
			cause_add(&cs.s, CAUSE_ENV_FILE, NULL, NULL, "missing");
	} else if (!of) {
		cause_add(&cs.s, CAUSE_ENV_FILE, NULL, NULL, "missing");
	} else if (strcmp(of->content_hash, f->content_hash) != 0) {
		for (size_t i = 0; i < f->nvars; i++) {
			const char *oh = obs_env_hash(of->vars, of->nvars, f->vars[i].key);
			if (!oh)
				cause_add(&cs.s, CAUSE_ENV_FILE, f->vars[i].key, NULL, "line missing");
			else if (strcmp(oh, f->vars[i].hash) != 0)
				cause_add(&cs.s, CAUSE_ENV_FILE, f->vars[i].key, NULL,
					  "(sensitive value changed)");
		}
		for (size_t i = 0; i < of->nvars; i++) {
			int found = 0;
			for (size_t j = 0; j < f->nvars && !found; j++)
				found = strcmp(of->vars[i].key, f->vars[j].key) == 0;
			if (!found)
				cause_add(&cs.s, CAUSE_ENV_FILE, of->vars[i].key, NULL, "line to remove");
		}
		if (cs.s.ncauses == 0)
			cause_add(&cs.s, CAUSE_ENV_FILE, NULL, NULL, "content differs");
	}
	if (of && (of->mode & 0777) != 0600) {
		char *m = xasprintf("mode %04o → 0600", of->mode & 0777);
		cause_add(&cs.s, CAUSE_ENV_FILE, NULL, NULL, m);
		free(m);
	}
	if (cs.s.ncauses == 0 || container_replaced) {
		/* apply writes the file before booting the new container anyway */
		causes_release(&cs);
		return;
	}
	s = step_new(x->out, DIFF_WRITE_ENV_FILE, DIFF_T_FILE);
	s->desired = owner;
	s->desired_file = f;
	s->name = xstrdup(f->path);
	s->role = xstrdup("");
	if (owner) /* written in the wave of the role (or accessory) that reads it */
		s->wave = wave_of(x->ds, owner, x->out->host, &s->group);
	else
		s->wave = strstr(f->path, "/env/accessories/") ? 1 : 2;
	causes_move(s, &cs);
}

static int step_order(const void *a, const void *b)
{
	const struct diff_step *x = a, *y = b;

	if (x->wave != y->wave)
		return x->wave - y->wave;
	if (x->group != y->group)
		return x->group - y->group;
	return 0;
}

/*
 * The one rule for orphan accessories: the observation reports candidates
 * (a container whose name is its service label, <service>-…), but only one
 * with evidence that it is ours counts — its name is an accessory of the
 * current config or of the base revision's. Anything else (another app's
 * `optimus-admin-redis` beside service optimus) is not ours: never listed,
 * never pruned.
 */
static int ours_accessory(const struct hctx *x, const struct obs_container *oc)
{
	if (oc->kind != OBS_ACCESSORY || !oc->service)
		return 0;
	return strvec_contains(&x->ds->accessories, oc->service) ||
	       (x->o->base && strvec_contains(&x->o->base->accessories, oc->service));
}

static void plan_leftovers(struct hctx *x)
{
	const struct obs_host *oh = x->oh;
	const struct obs_container **stopped = NULL;
	size_t nstopped = 0;
	char retain[16];

	stopped = xcalloc(oh->ncontainers ? oh->ncontainers : 1, sizeof(*stopped));
	for (size_t i = 0; i < oh->ncontainers; i++) {
		const struct obs_container *oc = &oh->containers[i];
		struct diff_step *s;
		int app = ours_app(x->ds, oc);
		int acc = ours_accessory(x, oc);

		if (x->used[i] || !(app || acc))
			continue;
		if (app && !is_running(oc)) {
			stopped[nstopped++] = oc;
			continue;
		}
		s = step_new(x->out, DIFF_REMOVE_ORPHAN, app ? DIFF_T_APP : DIFF_T_ACCESSORY);
		s->name = xstrdup(oc->name);
		s->old_name = xstrdup(oc->name);
		s->role = xstrdup(app ? (oc->role ? oc->role : "") : oc->service);
		s->wave = 4;
		if (!x->dh)
			cause_add(s, CAUSE_ORPHAN_HOST, NULL, NULL, NULL);
		else if (app)
			cause_add(s, CAUSE_ORPHAN_ROLE, oc->role, NULL, NULL);
		else
			cause_add(s, CAUSE_ORPHAN_ACCESSORY, oc->service, NULL, NULL);
	}
	/* newest first; keep retain_containers of them */
	for (size_t i = 1; i < nstopped; i++)
		for (size_t j = i; j > 0 && newer(stopped[j], stopped[j - 1]); j--) {
			const struct obs_container *t = stopped[j];
			stopped[j] = stopped[j - 1];
			stopped[j - 1] = t;
		}
	snprintf(retain, sizeof(retain), "%d", x->ds->retain_containers);
	for (size_t i = (size_t)x->ds->retain_containers; i < nstopped; i++) {
		struct diff_step *s = step_new(x->out, DIFF_PRUNE, DIFF_T_APP);
		s->name = xstrdup(stopped[i]->name);
		s->old_name = xstrdup(stopped[i]->name);
		s->role = xstrdup(stopped[i]->role ? stopped[i]->role : "");
		s->wave = 4;
		cause_add(s, CAUSE_RETAIN, NULL, NULL, retain);
	}
	free(stopped);
}

/*
 * Two destinations sharing an accessory container (diff.h): refuses the host
 * (status, error) and returns 1 when the host runs a container named like one
 * of our accessories while every app container of the service on it carries
 * another destination label, or while it runs no app container of the
 * service and our destination's env file for the accessory is absent (the
 * accessory was booted by another destination's deploy, or by hand).
 */
static int refuse_shared_accessory(struct diff_host *out, const struct desired *ds,
				   const struct des_host *dh, const struct obs_host *oh)
{
	for (size_t i = 0; i < dh->ncontainers; i++) {
		const struct des_container *dc = &dh->containers[i];
		const char *other = NULL;
		int present = 0, ours = 0;

		if (dc->kind != DES_ACCESSORY)
			continue;
		for (size_t j = 0; j < oh->ncontainers; j++) {
			const struct obs_container *oc = &oh->containers[j];
			if (str_eq(oc->name, dc->name))
				present = 1;
			if (!oc->service || !oc->role || !oc->destination || !str_eq(oc->service, ds->service))
				continue;
			if (str_eq(oc->destination, ds->destination))
				ours = 1;
			else if (!other)
				other = oc->destination;
		}
		if (present && !other && !ours && dc->env_file && !obs_host_env_file(oh, dc->env_file)) {
			out->status = DIFF_HOST_REFUSED;
			out->error = xasprintf(
				"accessory container %s runs on this host without app containers of %s and "
				"without this destination's env file %s: it may belong to another destination "
				"(an accessory's container name has no destination part), so this plan would "
				"replace it; give the accessory a distinct `service:` name per destination",
				dc->name, ds->service, dc->env_file);
			return 1;
		}
		if (present && other && !ours) {
			out->status = DIFF_HOST_REFUSED;
			out->error = xasprintf(
				"accessory container %s is shared with destination '%s' (its app containers "
				"on this host carry destination=%s): an accessory's container name has no "
				"destination part, so this plan would replace that destination's %s; give the "
				"accessory a distinct `service:` name per destination",
				dc->name, *other ? other : "(none)", *other ? other : "", dc->role);
			return 1;
		}
	}
	return 0;
}

static void plan_host(struct diff_host *out, const struct desired *ds, const struct des_host *dh,
		      const struct obs_host *oh, const struct diff_opts *o)
{
	struct hctx x = { ds, dh, oh, o, out, NULL };

	if (!oh) {
		out->status = DIFF_HOST_NOT_OBSERVED;
		out->error = xstrdup("not observed");
		return;
	}
	if (oh->status != OBS_OK) {
		out->status = oh->status == OBS_UNREACHABLE ? DIFF_HOST_UNREACHABLE : DIFF_HOST_UNKNOWN;
		out->error = xstrdup(oh->error ? oh->error : "observation failed");
		return;
	}
	if (dh && refuse_shared_accessory(out, ds, dh, oh))
		return;
	if (oh->lock_holder)
		note_add(out, NOTE_LOCK_HELD, NULL, NULL, oh->lock_holder);
	x.used = xcalloc(oh->ncontainers ? oh->ncontainers : 1, 1);
	if (dh) {
		int *replaced = xcalloc(dh->ncontainers ? dh->ncontainers : 1, sizeof(int));
		for (size_t i = 0; i < dh->ncontainers; i++)
			plan_container(&x, &dh->containers[i], &replaced[i]);
		for (size_t f = 0; f < dh->nenv_files; f++) {
			int rep = 0;
			const struct des_container *owner = NULL;
			for (size_t i = 0; i < dh->ncontainers; i++)
				if (dh->containers[i].env_file &&
				    strcmp(dh->containers[i].env_file, dh->env_files[f].path) == 0) {
					rep |= replaced[i];
					if (!owner)
						owner = &dh->containers[i];
				}
			plan_env_file(&x, &dh->env_files[f], rep, owner);
		}
		free(replaced);
	}
	plan_leftovers(&x);
	free(x.used);
	/* stable sort by wave/group (insertion: n is small per host) */
	for (size_t i = 1; i < out->nsteps; i++)
		for (size_t j = i; j > 0 && step_order(&out->steps[j], &out->steps[j - 1]) < 0; j--) {
			struct diff_step t = out->steps[j];
			out->steps[j] = out->steps[j - 1];
			out->steps[j - 1] = t;
		}
}

/* Counts h's steps into p's totals; 1 when an orphan is kept. */
static int count_steps(struct diff_plan *p, struct diff_host *h)
{
	int orphan_kept = 0;

	for (size_t i = 0; i < h->nsteps; i++) {
		struct diff_step *s = &h->steps[i];
		switch (s->action) {
		case DIFF_CREATE: s->counted = 1; p->add++; break;
		case DIFF_REPLACE:
		case DIFF_REPLACE_STOP_FIRST: s->counted = 1; p->add++; p->destroy++; break;
		case DIFF_START:
		case DIFF_RENAME:
		case DIFF_RESTORE:
		case DIFF_SWITCH:
		case DIFF_WRITE_ENV_FILE: s->counted = 1; p->change++; break;
		case DIFF_REMOVE_ASIDE: s->counted = 1; p->destroy++; break;
		case DIFF_REMOVE_ORPHAN:
			if (p->prune) {
				s->counted = 1;
				p->destroy++;
			} else {
				p->orphans_kept++;
				orphan_kept = 1;
			}
			break;
		case DIFF_PRUNE: p->housekeeping++; break;
		}
	}
	return orphan_kept;
}

static void count(struct diff_plan *p, struct diff_host *h)
{
	if (count_steps(p, h))
		note_add(h, NOTE_ORPHAN_KEPT, NULL, NULL, NULL);
}

int diff_plan_build(struct diff_plan **out, const struct desired *ds, const struct obs_fleet *obs,
		    const struct diff_opts *o)
{
	static const struct diff_opts none = { 0 };
	struct diff_plan *p;
	size_t extra = 0;
	char *canon;

	if (!o)
		o = &none;
	*out = NULL;
	p = xcalloc(1, sizeof(*p));
	p->service = xstrdup(ds->service);
	p->destination = ds->destination ? xstrdup(ds->destination) : NULL;
	p->version = xstrdup(ds->version);
	p->prune = o->prune;
	if (o->extra_hosts)
		extra = o->extra_hosts->n;
	p->hosts = xcalloc(ds->nhosts + extra + 1, sizeof(*p->hosts));
	for (size_t i = 0; i < ds->nhosts; i++) {
		struct diff_host *h = &p->hosts[p->nhosts++];
		h->host = xstrdup(ds->hosts[i].host);
		h->in_config = 1;
		plan_host(h, ds, &ds->hosts[i], obs ? obs_fleet_host(obs, h->host) : NULL, o);
	}
	for (size_t i = 0; i < extra; i++) {
		const char *hn = o->extra_hosts->v[i];
		struct diff_host *h;
		int dup = 0;
		for (size_t k = 0; k < p->nhosts && !dup; k++)
			dup = strcmp(p->hosts[k].host, hn) == 0;
		if (dup)
			continue;
		h = &p->hosts[p->nhosts++];
		h->host = xstrdup(hn);
		plan_host(h, ds, NULL, obs ? obs_fleet_host(obs, hn) : NULL, o);
	}
	for (size_t i = 0; i < p->nhosts; i++) {
		count(p, &p->hosts[i]);
		if (p->hosts[i].status != DIFF_HOST_OK)
			p->failed_hosts++;
	}
	p->changes = p->add + p->change + p->destroy;
	canon = diff_plan_canonical(p);
	hash_sha256_hex(canon, strlen(canon), p->hash);
	free(canon);
	*out = p;
	return 0;
}

int diff_plan_exit_code(const struct diff_plan *p)
{
	if (p->failed_hosts)
		return 1;
	return p->changes ? 2 : 0;
}

static void canon_str(struct sbuf *sb, const char *k, const char *v)
{
	/* length-prefixed: no value can forge a field boundary */
	sbuf_addf(sb, "%s %zu:%s\n", k, v ? strlen(v) : (size_t)0, v ? v : "");
}

char *diff_plan_canonical(const struct diff_plan *p)
{
	struct sbuf sb;

	sbuf_init(&sb, 0);
	sbuf_adds(&sb, "plumb-plan-canonical 1\n");
	canon_str(&sb, "service", p->service);
	canon_str(&sb, "destination", p->destination);
	canon_str(&sb, "version", p->version);
	sbuf_addf(&sb, "prune %d\n", p->prune);
	for (size_t i = 0; i < p->nhosts; i++) {
		const struct diff_host *h = &p->hosts[i];
		canon_str(&sb, "host", h->host);
		sbuf_addf(&sb, "status %s in_config %d\n", diff_host_status_name(h->status), h->in_config);
		for (size_t j = 0; j < h->nsteps; j++) {
			const struct diff_step *s = &h->steps[j];
			sbuf_addf(&sb, "step %s wave %d group %d\n", diff_action_name(s->action), s->wave,
				  s->group);
			canon_str(&sb, "name", s->name);
			canon_str(&sb, "old", s->old_name);
			canon_str(&sb, "image", s->image_ref);
			canon_str(&sb, "id", s->image_id);
			canon_str(&sb, "spec", s->spec_hash);
			for (size_t k = 0; k < s->ncauses; k++) {
				const struct diff_cause *c = &s->causes[k];
				sbuf_addf(&sb, "cause %s\n", diff_cause_name(c->kind));
				canon_str(&sb, "key", c->key);
				canon_str(&sb, "from", c->old);
				canon_str(&sb, "to", c->new);
			}
		}
	}
	return sbuf_detach(&sb);
}

static void step_release(struct diff_step *s)
{
	struct causes cs = { 0 };

	cs.s.causes = s->causes;
	cs.s.ncauses = s->ncauses;
	causes_release(&cs);
	free(s->name);
	free(s->old_name);
	free(s->role);
	free(s->image_ref);
	free(s->image_id);
	free(s->traffic_from);
}

size_t diff_plan_drop(struct diff_plan *p, int (*drop)(const struct diff_step *s, void *ctx),
		      void *ctx)
{
	size_t dropped = 0;
	char *canon;

	p->add = p->change = p->destroy = p->housekeeping = p->orphans_kept = 0;
	for (size_t i = 0; i < p->nhosts; i++) {
		struct diff_host *h = &p->hosts[i];
		size_t k = 0;
		for (size_t j = 0; j < h->nsteps; j++) {
			if (drop(&h->steps[j], ctx)) {
				step_release(&h->steps[j]);
				dropped++;
				continue;
			}
			h->steps[k++] = h->steps[j];
		}
		h->nsteps = k;
		count_steps(p, h);
	}
	p->changes = p->add + p->change + p->destroy;
	canon = diff_plan_canonical(p);
	hash_sha256_hex(canon, strlen(canon), p->hash);
	free(canon);
	return dropped;
}

void diff_plan_free(struct diff_plan *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nhosts; i++) {
		struct diff_host *h = &p->hosts[i];
		for (size_t j = 0; j < h->nsteps; j++)
			step_release(&h->steps[j]);
		free(h->steps);
		for (size_t j = 0; j < h->nnotes; j++) {
			free(h->notes[j].container);
			free(h->notes[j].key);
			free(h->notes[j].text);
		}
		free(h->notes);
		free(h->host);
		free(h->error);
	}
	free(p->hosts);
	free(p->offline_base);
	free(p->service);
	free(p->destination);
	free(p->version);
	free(p);
}
