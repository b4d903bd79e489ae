#include "state/json_text.h"

#include <stdlib.h>
#include <string.h>

#include "state/config.h"
#include "state/util.h"

/* s with every invalid UTF-8 sequence replaced by U+FFFD (caller frees). */
static char *utf8_repair(const char *s)
{
	struct sbuf sb;
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);

	sbuf_init(&sb, 0);
	while (n) {
		size_t k = util_utf8_valid_len(p, n);
		if (k) {
			sbuf_add(&sb, p, k);
		} else {
			sbuf_adds(&sb, "\xef\xbf\xbd");
			k = 1;
		}
		p += k;
		n -= k;
	}
	return sbuf_detach(&sb);
}

json_t *jtext(const char *s)
{
	json_t *j;
	char *fixed;

	if (!s)
		return json_null();
	j = json_string(s);
	if (j)
		return j;
	fixed = utf8_repair(s);
	j = json_string(fixed);
	free(fixed);
	return j ? j : json_string("");
}

static int utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);

	while (n) {
		size_t k = util_utf8_valid_len(p, n);
		if (!k)
			return 0;
		p += k;
		n -= k;
	}
	return 1;
}

int jtext_set(json_t *obj, const char *key, json_t *val)
{
	char *fixed;
	int rc;

	if (!val)
		val = json_null();
	if (!key || utf8_valid(key))
		return json_object_set_new(obj, key ? key : "", val);
	fixed = utf8_repair(key);
	rc = json_object_set_new(obj, fixed, val);
	free(fixed);
	return rc;
}

json_t *jtext_kvs(const struct kvs *m)
{
	json_t *o = json_object();

	for (size_t i = 0; i < m->n; i++)
		jtext_set(o, m->keys[i], jtext(m->vals[i]));
	return o;
}

json_t *jtext_strvec(const struct strvec *v)
{
	json_t *a = json_array();

	for (size_t i = 0; i < v->n; i++)
		json_array_append_new(a, jtext(v->v[i]));
	return a;
}
