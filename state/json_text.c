#include "state/json_text.h"

#include <stdlib.h>
#include <string.h>

#include "state/util.h"

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t need;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		need = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		need = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		need = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	/* overlong forms, surrogates and code points past U+10FFFF are invalid */
	if ((need == 3 && cp < 0x800) || (need == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need;
}

json_t *json_text(const char *s)
{
	json_t *j;
	struct sbuf sb;
	const unsigned char *p;
	size_t n;

	if (!s)
		return json_null();
	j = json_string(s);
	if (j)
		return j;
	sbuf_init(&sb, 0);
	p = (const unsigned char *)s;
	n = strlen(s);
	while (n) {
		size_t k = utf8_len(p, n);
		if (k) {
			sbuf_add(&sb, p, k);
		} else {
			sbuf_adds(&sb, "\xef\xbf\xbd");
			k = 1;
		}
		p += k;
		n -= k;
	}
	j = json_string(sb.buf);
	sbuf_release(&sb);
	return j ? j : json_string("");
}
