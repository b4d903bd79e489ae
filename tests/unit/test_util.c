#include <unistd.h>

#include "state/escape.h"
#include "state/hash.h"
#include "state/json_text.h"
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

T_TEST(sbuf_detach_then_reuse)
{
	struct sbuf sb;
	char *a, *b;

	sbuf_init(&sb, 0);
	sbuf_adds(&sb, "one");
	a = sbuf_detach(&sb);
	T_STREQ(sb.buf, "");
	sbuf_adds(&sb, "two");
	b = sbuf_detach(&sb);
	sbuf_release(&sb);
	sbuf_release(&sb);
	T_STREQ(a, "one");
	T_STREQ(b, "two");
	free(a);
	free(b);
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
	diags_release(&d);
}

T_TEST(edit_distance_counts)
{
	T_INTEQ(util_edit_distance("hostz", "hosts"), 1);
	T_INTEQ(util_edit_distance("", "abc"), 3);
	T_INTEQ(util_edit_distance("kitten", "sitting"), 3);
}

T_TEST(hashes_match_coreutils)
{
	char h[HASH_HEX_LEN + 1], s1[33], s2[33];

	hash_sha256_hex("abc", 3, h);
	T_STREQ(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	/* printf '%s%s' salt value | sha256sum */
	hash_salted("ab", "c", 1, h);
	T_STREQ(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	hash_salt_new(s1);
	hash_salt_new(s2);
	T_INTEQ(strlen(s1), 32);
	T_CHECK(strcmp(s1, s2) != 0);
}

T_TEST(json_text_never_drops_a_key)
{
	json_t *o = json_object();
	char *dump;

	json_object_set_new(o, "bad", jtext("Ren\xe9 \xc0\xaf ok"));
	json_object_set_new(o, "good", jtext("caf\xc3\xa9"));
	json_object_set_new(o, "none", jtext(NULL));
	dump = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
	T_STREQ(dump, "{\"bad\":\"Ren\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd ok\",\"good\":\"caf\xc3\xa9\",\"none\":null}");
	free(dump);
	json_decref(o);
}

T_TEST(esc_text_escapes_c0_del_c1_and_invalid_utf8)
{
	static const struct {
		const char *in;
		int lines;
		const char *want;
	} cases[] = {
		{ "\033[31mRED\033]0;T\a caf\xc3\xa9 \xc2\x9b\x7f \xff\xc3( \xe2\x82\n\t", 0,
		  "\\x1b[31mRED\\x1b]0;T\\x07 caf\xc3\xa9 \\xc2\\x9b\\x7f \\xff\\xc3( \\xe2\\x82\\x0a\\x09" },
		{ "a\tb\nc\r\xc2\x85 \xed\xa0\x80", 1, "a\tb\nc\\x0d\\xc2\\x85 \\xed\\xa0\\x80" },
		{ NULL, 0, "" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct sbuf sb;

		sbuf_init(&sb, 0);
		if (cases[i].lines)
			esc_lines(&sb, cases[i].in, strlen(cases[i].in));
		else
			esc_text(&sb, cases[i].in);
		T_STREQ(sb.buf, cases[i].want);
		sbuf_release(&sb);
	}
}

/* Every diagnostic is printed escaped: an unknown key with ESC, BEL, a C1
 * control and invalid UTF-8 reaches stderr as \xNN only. */
T_TEST(diags_print_escapes_repository_strings)
{
	struct diags d = { 0 };
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	T_REQUIRE(f);
	diags_err(&d, "config/deploy.yml", 3, 1, "unknown key '%s'", "\033[31mRED\033]0;T\a\xc2\x9b\xff");
	diags_print(&d, f);
	T_REQUIRE(fclose(f) == 0);
	T_STREQ(out, "config/deploy.yml:3:1: error: unknown key '\\x1b[31mRED\\x1b]0;T\\x07\\xc2\\x9b\\xff'\n");
	T_CHECK(strchr(out, '\033') == NULL && strchr(out, '\a') == NULL);
	free(out);
	diags_release(&d);
}

/* esc_eprintf escapes what it formats (host and repository strings) on stderr. */
T_TEST(esc_eprintf_escapes_stderr)
{
	char path[] = "/tmp/plumb-esc-XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	char *got = NULL;
	size_t len = 0;

	T_REQUIRE(fd >= 0 && saved >= 0);
	fflush(stderr);
	dup2(fd, 2);
	esc_eprintf("plumb hosts: %s\n", "h\033]0;T\a\xc2\x9b");
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(fd);
	T_CHECK(util_read_file(path, 4096, &got, &len) == 0);
	T_STREQ(got, "plumb hosts: h\\x1b]0;T\\x07\\xc2\\x9b\n");
	free(got);
	unlink(path);
}

T_MAIN(T_CASE(json_text_never_drops_a_key), T_CASE(hashes_match_coreutils), T_CASE(sbuf_respects_max), T_CASE(sbuf_detach_then_reuse), T_CASE(diags_format_positions), T_CASE(edit_distance_counts),
       T_CASE(esc_text_escapes_c0_del_c1_and_invalid_utf8), T_CASE(diags_print_escapes_repository_strings),
       T_CASE(esc_eprintf_escapes_stderr))
