/*
 * Strings into JSON safely. jansson refuses invalid UTF-8 (json_string returns
 * NULL and json_object_set_new then drops the key silently); text from hosts
 * and configs may hold any bytes. json_text never fails: invalid sequences
 * become U+FFFD, so a key is never lost.
 */
#ifndef PLUMB_JSON_TEXT_H
#define PLUMB_JSON_TEXT_H

#include <jansson.h>

/* A JSON string for s (NULL gives JSON null). The result is never NULL. */
json_t *json_text(const char *s);

#endif
