#include "state/util.h"
#include "tests/unit/t.h"

T_TEST(sbuf_respects_max)
{
	struct sbuf sb;

	sbuf_init(&sb, 8);
	T_CHECK(sbuf_adds(&sb, "12345678") == 0);
	T_CHECK(sbuf_addc(&sb, '9') < 0);
	T_STREQ(sb.buf, "12345678");
	sbuf_release(&sb);
}

T_TEST(diags_format_positions)
{
	struct diags d = { 0 };
	char *s;

	diags_err(&d, "config/deploy.yml", 12, 5, "unknown key '%s'", "hostz");
	diags_warn(&d, NULL, 0, 0, "plain");
	s = diags_to_string(&d);
	T_STREQ(s, "config/deploy.yml:12:5: error: unknown key 'hostz'\nwarning: plain\n");
	T_INTEQ(d.errors, 1);
	free(s);
	diags_clear(&d);
}

T_TEST(edit_distance_counts)
{
	T_INTEQ(edit_distance("hostz", "hosts"), 1);
	T_INTEQ(edit_distance("", "abc"), 3);
	T_INTEQ(edit_distance("kitten", "sitting"), 3);
}

T_MAIN(T_CASE(sbuf_respects_max), T_CASE(diags_format_positions), T_CASE(edit_distance_counts))
