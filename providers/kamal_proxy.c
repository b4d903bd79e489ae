/* kamal-proxy's routes (kamal_proxy.h). */
#include "providers/kamal_proxy.h"
#include "providers/json_join.h"

#include <jansson.h>
#include <string.h>

/* The target of one route entry: a string, or "target" / "Target" /
 * "targets" (string or array) of an object. Caller frees; NULL if none. */
static char *route_target(json_t *e)
{
	json_t *t;

	if (json_is_string(e))
		return xstrdup(json_string_value(e));
	if (!json_is_object(e))
		return NULL;
	t = json_object_get(e, "target");
	if (!t)
		t = json_object_get(e, "Target");
	if (!t)
		t = json_object_get(e, "targets");
	if (json_is_string(t))
		return xstrdup(json_string_value(t));
	return prov_json_join(t, ", ");
}

static void route_add(struct obs_route **r, size_t *n, const char *service, json_t *e)
{
	char *t;

	if (*n >= KAMAL_PROXY_MAX_ROUTES)
		return;
	t = route_target(e);
	if (!t || !*t) {
		free(t);
		return;
	}
	*r = xrealloc(*r, (*n + 1) * sizeof(**r));
	(*r)[*n].service = xstrdup(service);
	(*r)[(*n)++].target = t;
}

int kamal_proxy_parse_routes(struct obs_route **out, size_t *n, const char *json)
{
	json_t *root, *map = NULL, *v;
	const char *k;
	size_t i;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (!json)
		return PLUMB_EINVAL;
	root = json_loads(json, JSON_REJECT_DUPLICATES, NULL);
	if (json_is_object(root)) {
		static const char *const keys[] = { "services", "Services", "Targets", "targets" };
		for (size_t j = 0; j < ARRAY_SIZE(keys) && !map; j++)
			if (json_is_object(json_object_get(root, keys[j])))
				map = json_object_get(root, keys[j]);
		if (!map)
			map = root;
		json_object_foreach(map, k, v)
			route_add(out, n, k, v);
	} else if (json_is_array(root)) {
		json_array_foreach(root, i, v) {
			json_t *s = json_object_get(v, "service");
			if (!s)
				s = json_object_get(v, "name");
			if (json_is_string(s))
				route_add(out, n, json_string_value(s), v);
		}
	} else {
		rc = PLUMB_EPROTOCOL;
	}
	json_decref(root);
	return rc;
}
