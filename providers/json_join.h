/*
 * The strings of a JSON array joined by sep, as a new string (caller frees);
 * NULL when arr is not an array or holds no string. Non-strings are skipped.
 */
#ifndef PLUMB_PROV_JSON_JOIN_H
#define PLUMB_PROV_JSON_JOIN_H

#include <jansson.h>

#include "state/util.h"

static inline char *prov_json_join(json_t *arr, const char *sep)
{
	struct sbuf sb;
	json_t *v;
	size_t i;

	if (!json_is_array(arr))
		return NULL;
	sbuf_init(&sb, 0);
	json_array_foreach(arr, i, v)
		if (json_is_string(v)) {
			if (sb.len)
				sbuf_adds(&sb, sep);
			sbuf_adds(&sb, json_string_value(v));
		}
	if (!sb.len) {
		sbuf_release(&sb);
		return NULL;
	}
	return sbuf_detach(&sb);
}

#endif
