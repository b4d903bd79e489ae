/*
 * The one error space (state/err.h): every code distinct and with its own
 * words; the carrier records, prefixes and clears, and never overflows.
 */
#include <string.h>

#include "state/err.h"
#include "tests/unit/t.h"

T_TEST(codes_are_distinct_and_named)
{
	int c, d;

	T_STREQ(plumb_strerror(PLUMB_OK), "success");
	for (c = PLUMB_ERROR; c >= PLUMB_ECODE_MIN; c--) {
		const char *w = plumb_strerror(c);
		T_CHECK(w && *w);
		T_CHECK(strcmp(w, "unknown error") != 0);
		T_CHECK(strcmp(w, plumb_strerror(PLUMB_OK)) != 0);
		for (d = c - 1; d >= PLUMB_ECODE_MIN; d--)
			if (strcmp(w, plumb_strerror(d)) == 0)
				T_FAIL_AT("codes %d and %d share the words \"%s\"", c, d, w);
	}
	/* the enum is dense: one code per value from -1 to PLUMB_ECODE_MIN */
	T_CHECK(PLUMB_ECODE_MIN < PLUMB_ERROR);
	T_STREQ(plumb_strerror(PLUMB_ECODE_MIN - 1), "unknown error");
	T_STREQ(plumb_strerror(1), "unknown error");
}

T_TEST(set_prefix_clear)
{
	struct plumb_err e = { 0 };

	T_INTEQ(e.code, 0);
	T_STREQ(plumb_err_msg(&e), "success");
	T_INTEQ(plumb_err_set(&e, PLUMB_ENOTFOUND, "%s: no such file", "a.yml"), PLUMB_ENOTFOUND);
	T_INTEQ(e.code, PLUMB_ENOTFOUND);
	T_STREQ(plumb_err_msg(&e), "a.yml: no such file");
	T_INTEQ(plumb_err_prefix(&e, "reading %s", "repo"), PLUMB_ENOTFOUND);
	T_STREQ(plumb_err_msg(&e), "reading repo: a.yml: no such file");
	T_INTEQ(e.code, PLUMB_ENOTFOUND);
	plumb_err_reset(&e);
	T_INTEQ(e.code, 0);
	T_STREQ(e.msg, "");
	/* a code without a message reads as the code's words, also prefixed */
	e.code = PLUMB_ETIMEOUT;
	T_STREQ(plumb_err_msg(&e), "timed out");
	plumb_err_prefix(&e, "host1");
	T_STREQ(plumb_err_msg(&e), "host1: timed out");
	/* a NULL carrier is allowed: the code still comes back */
	T_INTEQ(plumb_err_set(NULL, PLUMB_EAUTH, "x"), PLUMB_EAUTH);
}

T_TEST(long_messages_are_cut_not_overflowed)
{
	struct { struct plumb_err e; char guard[64]; } s;
	char big[3 * PLUMB_ERR_MSG_MAX];

	memset(&s, 0, sizeof(s));
	memset(s.guard, 'G', sizeof(s.guard));
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	plumb_err_set(&s.e, PLUMB_ETOOBIG, "%s", big);
	T_INTEQ(strlen(s.e.msg), PLUMB_ERR_MSG_MAX - 1);
	plumb_err_prefix(&s.e, "%s", big);
	T_INTEQ(strlen(s.e.msg), PLUMB_ERR_MSG_MAX - 1);
	T_INTEQ(s.e.code, PLUMB_ETOOBIG);
	plumb_err_set(&s.e, PLUMB_ETOOBIG, "short");
	plumb_err_prefix(&s.e, "%s", big);
	/* a long prefix is cut too; the message it prefixes survives */
	T_CHECK(strlen(s.e.msg) < PLUMB_ERR_MSG_MAX);
	T_CHECK(s.e.msg[0] == 'x');
	T_CHECK(strcmp(s.e.msg + strlen(s.e.msg) - 7, ": short") == 0);
	for (size_t i = 0; i < sizeof(s.guard); i++)
		T_CHECK(s.guard[i] == 'G');
}

T_MAIN(T_CASE(codes_are_distinct_and_named), T_CASE(set_prefix_clear),
       T_CASE(long_messages_are_cut_not_overflowed))
