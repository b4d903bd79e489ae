/*
 * Strings into JSON safely. jansson refuses invalid UTF-8 (json_string returns
 * NULL and json_object_set_new then drops the key silently); text from hosts
 * and configs may hold any bytes. jtext never fails: invalid sequences
 * become U+FFFD, so a key is never lost.
 */
#ifndef PLUMB_JSON_TEXT_H
#define PLUMB_JSON_TEXT_H

#include <jansson.h>

struct kvs;
struct strvec;

/* A JSON string for s (NULL gives JSON null). The result is never NULL. */
json_t *jtext(const char *s);
/*
 * Sets obj[key] = val (val is stolen, as json_object_set_new). An invalid
 * UTF-8 key is repaired the same way (U+FFFD), so it is never dropped; a NULL
 * val becomes JSON null. 0, or -1 if obj is not an object.
 */
int jtext_set(json_t *obj, const char *key, json_t *val);
/* {key: value, …} of an ordered string map, in its order. Never NULL. */
json_t *jtext_kvs(const struct kvs *m);
/* [value, …] of a string vector. Never NULL. */
json_t *jtext_strvec(const struct strvec *v);

#endif
