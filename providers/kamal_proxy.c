/* kamal-proxy's routes (kamal_proxy.h). */
#include "providers/kamal_proxy.h"
#include "providers/json_join.h"

#include <jansson.h>
#include <stdint.h>
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

/* One cell of kamal-proxy's table: ESC '[' style 'm' text ESC "[0m". */
struct cell {
	const char *style; /* its digits and semicolons */
	size_t slen;
	const char *text;
	size_t len;
	int padded; /* the text ends in a space (a fixed-width column's padding) */
};

#define TABLE_MAX_CELLS (8 * (KAMAL_PROXY_MAX_ROUTES + 1))

/* The cells of s, in order; -1 when anything but blanks lies between them
 * or a cell is cut short. */
static int table_cells(const char *s, struct cell *c, size_t max, size_t *nc)
{
	*nc = 0;
	while (*s) {
		const char *t, *e;
		if (*s == ' ' || *s == '\n' || *s == '\r') {
			s++;
			continue;
		}
		if (s[0] != '\033' || s[1] != '[')
			return -1;
		t = s + 2 + strspn(s + 2, "0123456789;");
		if (*t != 'm' || *nc >= max)
			return -1;
		c[*nc].style = s + 2;
		c[*nc].slen = (size_t)(t - (s + 2));
		t++;
		e = strchr(t, '\033');
		if (!e || strncmp(e, "\033[0m", 4) != 0)
			return -1;
		c[*nc].text = t;
		c[*nc].len = (size_t)(e - t);
		c[*nc].padded = e > t && e[-1] == ' ';
		(*nc)++;
		s = e + 4;
	}
	return 0;
}

static char *cell_str(const struct cell *c)
{
	size_t a = 0, b = c->len;

	while (a < b && c->text[a] == ' ')
		a++;
	while (b > a && c->text[b - 1] == ' ')
		b--;
	return xstrndup(c->text + a, b - a);
}

/*
 * `kamal-proxy list` as kamal-proxy prints it (it has no JSON output): a
 * table whose every cell is wrapped in a colour escape, the header's cells
 * first ("Service", "Host", ["Path",] "Target", "State", "TLS"), then as
 * many cells per service; its rows may arrive joined by blanks (the
 * observation turns newlines into spaces). Older versions pad every cell
 * to 30 columns inside the escape and cut longer text: a cell filled to the
 * last column may be cut, so such a table is unknown (no guess).
 */
static int parse_table(struct obs_route **out, size_t *n, const char *s)
{
	/* a cell takes 7 bytes at least ("\033[m" "\033[0m") */
	size_t max = strlen(s) / 7 + 1 < TABLE_MAX_CELLS ? strlen(s) / 7 + 1 : TABLE_MAX_CELLS;
	struct cell *c = xcalloc(max, sizeof(*c));
	size_t nc = 0, ncol = 0, svc = SIZE_MAX, tgt = SIZE_MAX;
	int rc = PLUMB_EPROTOCOL, fixed;

	if (table_cells(s, c, max, &nc) != 0 || nc == 0)
		goto out;
	while (ncol < nc && c[ncol].slen == 4 && strncmp(c[ncol].style, "3;94", 4) == 0)
		ncol++; /* the header's cells are italic */
	if (ncol == 0 || (nc - ncol) % ncol != 0)
		goto out;
	fixed = c[0].padded;
	for (size_t i = 0; i < ncol; i++) {
		char *h = cell_str(&c[i]);
		if (strcmp(h, "Service") == 0)
			svc = i;
		else if (strcmp(h, "Target") == 0)
			tgt = i;
		free(h);
	}
	if (svc == SIZE_MAX || tgt == SIZE_MAX)
		goto out;
	for (size_t i = ncol; i < nc; i++)
		if (fixed && !c[i].padded)
			goto out;
	for (size_t r = ncol; r < nc && *n < KAMAL_PROXY_MAX_ROUTES; r += ncol) {
		char *name = cell_str(&c[r + svc]), *t = cell_str(&c[r + tgt]);
		if (*name && *t) {
			*out = xrealloc(*out, (*n + 1) * sizeof(**out));
			(*out)[*n].service = name;
			(*out)[(*n)++].target = t;
		} else {
			free(name);
			free(t);
		}
	}
	rc = 0;
out:
	if (rc != 0) {
		obs_routes_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	free(c);
	return rc;
}

int kamal_proxy_parse_routes(struct obs_route **out, size_t *n, const char *text)
{
	json_t *root, *map = NULL, *v;
	const char *k;
	size_t i;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (!text)
		return PLUMB_EINVAL;
	if (text[strspn(text, " \n\r")] == '\033')
		return parse_table(out, n, text);
	root = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
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
