/*
 * Checks for the end-to-end C tests that run as one main() (t_*.c that do not
 * use tests/unit/t.h's T_TEST cases):
 *
 *   CHECK(cond, fmt, ...)  counts a pass, or a failure with the message
 *   E2E_SKIP(name, fmt, ...) prints "SKIP: reason" and exits 77 (run.sh counts it skipped)
 *   return e2e_finish(name); prints "name: N passed, N failed" and is the exit status
 *
 * A binary that ran no check fails (e2e_finish), like a T_TEST that checks nothing.
 */
#ifndef PLUMB_TESTS_E2E_H
#define PLUMB_TESTS_E2E_H

#include <stdio.h>
#include <stdlib.h>

static int e2e_passed, e2e_failed;

#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		if (cond) {                                                     \
			e2e_passed++;                                           \
		} else {                                                        \
			e2e_failed++;                                           \
			fprintf(stderr, "  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
		}                                                               \
	} while (0)

#define E2E_SKIP(name, ...)                                                     \
	do {                                                                    \
		printf("SKIP: ");                                               \
		printf(__VA_ARGS__);                                            \
		printf("\n%s: 0 passed, 0 failed, 1 skipped\n", (name));        \
		exit(77);                                                       \
	} while (0)

static inline int e2e_finish(const char *name)
{
	if (e2e_passed + e2e_failed == 0) {
		fprintf(stderr, "  FAIL %s: ran no check\n", name);
		e2e_failed++;
	}
	printf("%s: %d passed, %d failed, 0 skipped\n", name, e2e_passed, e2e_failed);
	return e2e_failed ? 1 : 0;
}

#endif
