/*
 * A tiny test harness. Each test file defines tests with T_TEST(name) and
 * lists them in T_MAIN(...). Checks record a failure and go on (so one run
 * reports every broken expectation); T_REQUIRE stops the current test.
 * T_SKIP("reason") ends the current test as skipped (say why: what is
 * missing). A test that neither skipped nor ran a single check fails: a test
 * that checks nothing must not pass.
 * The binary prints "<file>: N passed, N failed, N skipped" and exits 1 on any
 * failure.
 */
#ifndef PLUMB_TEST_T_H
#define PLUMB_TEST_T_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct t_case {
	const char *name;
	void (*fn)(void);
};

static int t_failed_now;
static int t_skipped_now;
static int t_checks;

#define T_TEST(name) static void name(void)

#define T_FAIL_AT(...)                                                  \
	do {                                                            \
		fprintf(stderr, "  FAIL %s:%d: ", __FILE__, __LINE__);  \
		fprintf(stderr, __VA_ARGS__);                           \
		fputc('\n', stderr);                                    \
		t_failed_now = 1;                                       \
	} while (0)

/* Ends the current test as skipped; the reason is printed. Only in the test's own body. */
#define T_SKIP(...)                                                     \
	do {                                                            \
		fprintf(stderr, "  SKIP %s:%d: ", __FILE__, __LINE__);  \
		fprintf(stderr, __VA_ARGS__);                           \
		fputc('\n', stderr);                                    \
		t_skipped_now = 1;                                      \
		return;                                                 \
	} while (0)

#define T_CHECK(cond)                                                   \
	do {                                                            \
		t_checks++;                                             \
		if (!(cond))                                            \
			T_FAIL_AT("check failed: %s", #cond);           \
	} while (0)

/* T_CHECK with a message of its own (printf-style) when cond is false. */
#define T_CHECKF(cond, ...)                                             \
	do {                                                            \
		t_checks++;                                             \
		if (!(cond))                                            \
			T_FAIL_AT(__VA_ARGS__);                         \
	} while (0)

#define T_REQUIRE(cond)                                                 \
	do {                                                            \
		t_checks++;                                             \
		if (!(cond)) {                                          \
			T_FAIL_AT("requirement failed: %s", #cond);     \
			return;                                         \
		}                                                       \
	} while (0)

#define T_STREQ(got, want)                                              \
	do {                                                            \
		const char *t_g_ = (got), *t_w_ = (want);               \
		t_checks++;                                             \
		if (!((t_g_ == NULL && t_w_ == NULL) ||                 \
		      (t_g_ && t_w_ && strcmp(t_g_, t_w_) == 0)))       \
			T_FAIL_AT("%s == \"%s\", want \"%s\"", #got,    \
				  t_g_ ? t_g_ : "(null)",               \
				  t_w_ ? t_w_ : "(null)");              \
	} while (0)

#define T_CONTAINS(hay, needle)                                         \
	do {                                                            \
		const char *t_h_ = (hay), *t_n_ = (needle);             \
		t_checks++;                                             \
		if (!t_h_ || !strstr(t_h_, t_n_))                       \
			T_FAIL_AT("%s does not contain \"%s\"; it is:\n%s", \
				  #hay, t_n_, t_h_ ? t_h_ : "(null)");  \
	} while (0)

#define T_NOT_CONTAINS(hay, needle)                                     \
	do {                                                            \
		const char *t_h_ = (hay), *t_n_ = (needle);             \
		t_checks++;                                             \
		if (t_h_ && strstr(t_h_, t_n_))                         \
			T_FAIL_AT("%s contains \"%s\"; it is:\n%s",     \
				  #hay, t_n_, t_h_);                    \
	} while (0)

#define T_INTEQ(got, want)                                              \
	do {                                                            \
		long long t_g_ = (long long)(got), t_w_ = (long long)(want); \
		t_checks++;                                             \
		if (t_g_ != t_w_)                                       \
			T_FAIL_AT("%s == %lld, want %lld", #got, t_g_, t_w_); \
	} while (0)

/*
 * Compares got with the golden file at path (relative to the repository
 * root), byte for byte; PLUMB_UPDATE_GOLDEN=1 rewrites the file instead.
 * One check.
 */
#define T_GOLDEN(path, got) t_golden((path), (got), __FILE__, __LINE__)

static inline void t_golden(const char *path, const char *got, const char *file, int line)
{
	const char *upd = getenv("PLUMB_UPDATE_GOLDEN");
	FILE *f;
	char *want = NULL;
	size_t len = 0, cap = 0, glen = got ? strlen(got) : 0, i = 0;
	int c;

	t_checks++;
	if (!got) {
		fprintf(stderr, "  FAIL %s:%d: no output to compare with %s\n", file, line, path);
		t_failed_now = 1;
		return;
	}
	if (upd && strcmp(upd, "1") == 0) {
		f = fopen(path, "w");
		if (!f || fputs(got, f) == EOF || fclose(f) != 0) {
			fprintf(stderr, "  FAIL %s:%d: cannot write %s\n", file, line, path);
			t_failed_now = 1;
			return;
		}
		fprintf(stderr, "  updated %s\n", path);
		return;
	}
	f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "  FAIL %s:%d: golden %s unreadable; PLUMB_UPDATE_GOLDEN=1 writes it\n", file,
			line, path);
		t_failed_now = 1;
		return;
	}
	while ((c = fgetc(f)) != EOF) {
		if (len + 1 >= cap) {
			char *n = realloc(want, cap = cap ? cap * 2 : 4096);
			if (!n)
				abort();
			want = n;
		}
		want[len++] = (char)c;
	}
	fclose(f);
	while (i < len && i < glen && want[i] == got[i])
		i++;
	if (len != glen || i != len) {
		fprintf(stderr, "  FAIL %s:%d: %s differs from the output at byte %zu:\n--- want ---\n%.*s\n"
			"--- got ---\n%.*s\n", file, line, path, i, (int)(len - i < 300 ? len - i : 300),
			want ? want + i : "", (int)(glen - i < 300 ? glen - i : 300), got + i);
		t_failed_now = 1;
	}
	free(want);
}

static int t_run(const char *file, const struct t_case *cases, size_t n)
{
	int passed = 0, failed = 0, skipped = 0;
	const char *only = getenv("T_ONLY");
	const char *base = strrchr(file, '/');
	char label[128];
	size_t len;

	base = base ? base + 1 : file;
	len = strcspn(base, ".");
	if (len >= sizeof(label))
		len = sizeof(label) - 1;
	memcpy(label, base, len);
	label[len] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (only && strcmp(only, cases[i].name) != 0)
			continue;
		t_failed_now = 0;
		t_skipped_now = 0;
		t_checks = 0;
		cases[i].fn();
		if (!t_failed_now && !t_skipped_now && t_checks == 0) {
			fprintf(stderr, "  FAIL %s.%s: ran no check and did not skip\n", label, cases[i].name);
			t_failed_now = 1;
		}
		if (t_failed_now) {
			fprintf(stderr, "not ok %s.%s\n", label, cases[i].name);
			failed++;
		} else if (t_skipped_now) {
			fprintf(stderr, "skip %s.%s\n", label, cases[i].name);
			skipped++;
		} else {
			passed++;
		}
	}
	printf("%s: %d passed, %d failed, %d skipped\n", label, passed, failed, skipped);
	return failed ? 1 : 0;
}

#define T_CASE(fn) { #fn, fn }
#define T_MAIN(...)                                                     \
	int main(void)                                                  \
	{                                                               \
		static const struct t_case t_cases_[] = { __VA_ARGS__ }; \
		return t_run(__FILE__, t_cases_,                        \
			     sizeof(t_cases_) / sizeof(t_cases_[0]));   \
	}

#endif
