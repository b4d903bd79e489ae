/* util_base64_decode: the one base64 decoder (registry auth, known_hosts keys). */
#include "state/util.h"
#include "tests/unit/t.h"

#include <string.h>

/* Decodes s; returns the decoded text (caller frees) or NULL when malformed. */
static char *dec(const char *s, int flags, size_t *len)
{
	unsigned char *out = (unsigned char *)"sentinel";
	size_t n = 99;

	if (util_base64_decode(s, strlen(s), flags, &out, &n) < 0) {
		T_CHECK(out == NULL && n == 0);
		return NULL;
	}
	if (len)
		*len = n;
	T_CHECK(out[n] == '\0');
	return (char *)out;
}

T_TEST(base64_padding_and_no_padding)
{
	static const struct { const char *in, *want; } ok[] = {
		{ "", "" },
		{ "Zg==", "f" }, { "Zg", "f" },
		{ "Zm8=", "fo" }, { "Zm8", "fo" },
		{ "Zm9v", "foo" },
		{ "Zm9vYg==", "foob" }, { "Zm9vYmE=", "fooba" }, { "Zm9vYmFy", "foobar" },
		{ "dXNlcjpwYXNz", "user:pass" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		size_t n = 0;
		char *got = dec(ok[i].in, 0, &n);
		T_STREQ(got, ok[i].want);
		T_CHECK(got && n == strlen(ok[i].want));
		free(got);
	}
}

T_TEST(base64_binary_and_url_safe)
{
	size_t n = 0;
	char *got = dec("/+8A", 0, &n);

	T_REQUIRE(got && n == 3);
	T_CHECK((unsigned char)got[0] == 0xff && (unsigned char)got[1] == 0xef && got[2] == 0);
	free(got);
	T_CHECK(dec("_-8A", 0, NULL) == NULL); /* URL-safe only when asked */
	got = dec("_-8A", UTIL_BASE64_URLSAFE, &n);
	T_REQUIRE(got && n == 3);
	T_CHECK((unsigned char)got[0] == 0xff && (unsigned char)got[1] == 0xef);
	free(got);
}

T_TEST(base64_rejects_malformed)
{
	static const char *const bad[] = {
		"Z",	     /* one character cannot hold a byte */
		"Zm9vY",     /* 1 mod 4 */
		"Zg=",	     /* padding that does not complete the group */
		"Zg===",     /* three '=' */
		"=",	     /* padding alone */
		"Zg==Zg==",  /* data after padding */
		"Zm 9v",     /* whitespace */
		"Zm9v\n",
		"Zm9v!",     /* outside the alphabet */
		"Zm\x80v",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *got = dec(bad[i], UTIL_BASE64_URLSAFE, NULL);
		if (got)
			T_FAIL_AT("'%s' decoded", bad[i]);
		free(got);
	}
}

T_TEST(base64_bounds_of_explicit_length)
{
	unsigned char *out = NULL;
	size_t n = 0;

	/* only in[0..n) is read: the rest ("!!") is not part of the input */
	T_REQUIRE(util_base64_decode("Zm9vYmFy!!", 8, 0, &out, &n) == 0);
	T_CHECK(n == 6 && memcmp(out, "foobar", 7) == 0);
	free(out);
	T_REQUIRE(util_base64_decode("Zm9vYmFy", 4, 0, &out, &n) == 0);
	T_CHECK(n == 3 && memcmp(out, "foo", 4) == 0);
	free(out);
	/* a long input decodes in full (no fixed buffer) */
	{
		char in[4001];
		memset(in, 'A', 4000);
		in[4000] = '\0';
		T_REQUIRE(util_base64_decode(in, 4000, 0, &out, &n) == 0);
		T_CHECK(n == 3000 && out[0] == 0 && out[2999] == 0 && out[3000] == '\0');
		free(out);
	}
}

T_MAIN(T_CASE(base64_padding_and_no_padding), T_CASE(base64_binary_and_url_safe),
       T_CASE(base64_rejects_malformed), T_CASE(base64_bounds_of_explicit_length))
