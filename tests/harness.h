/* harness.h - a small table-driven test harness shared by the test binaries.
 * CHECK() records a failure with file:line and carries on; a test is a function run
 * once per variant; main() prints "N passed, N failed" and exits 0, 1 or 77 (skip). */
#ifndef ULPO_TEST_HARNESS_H
#define ULPO_TEST_HARNESS_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern int t_failed_checks;
extern const char *t_current;

#define CHECK(cond)                                                                   \
	do {                                                                          \
		if (!(cond)) {                                                        \
			t_failed_checks++;                                            \
			fprintf(stderr, "  FAIL %s: %s:%d: %s (errno %d %s)\n",       \
				t_current, __FILE__, __LINE__, #cond, errno,          \
				strerror(errno));                                     \
		}                                                                     \
	} while (0)

#define CHECK_EQ(a, b)                                                                \
	do {                                                                          \
		long long _a = (long long)(a), _b = (long long)(b);                   \
		if (_a != _b) {                                                       \
			t_failed_checks++;                                            \
			fprintf(stderr, "  FAIL %s: %s:%d: %s == %lld, expected %s == %lld (errno %d %s)\n", \
				t_current, __FILE__, __LINE__, #a, _a, #b, _b, errno, \
				strerror(errno));                                     \
		}                                                                     \
	} while (0)

/* A syscall-shaped call that must fail with errno e. */
#define CHECK_ERR(call, e)                                                            \
	do {                                                                          \
		errno = 0;                                                            \
		long _r = (long)(call);                                               \
		if (_r != -1 || errno != (e)) {                                       \
			t_failed_checks++;                                            \
			fprintf(stderr, "  FAIL %s: %s:%d: %s returned %ld errno %d (%s), expected -1 %s\n", \
				t_current, __FILE__, __LINE__, #call, _r, errno,      \
				strerror(errno), #e);                                 \
		}                                                                     \
	} while (0)

/* One test's verdict line ("ok   name" or "FAIL name"), counted in *passed or *failed;
 * `before` is t_failed_checks as the test started. */
static inline void t_tally(int before, const char *name, int *passed, int *failed)
{
	if (t_failed_checks == before) {
		++*passed;
		printf("ok   %s\n", name);
	} else {
		++*failed;
		printf("FAIL %s\n", name);
	}
	fflush(stdout);
}

/* Deterministic RNG (xorshift64*), seeded per test run and printed. */
static inline uint64_t t_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static inline void t_fill(uint64_t *s, void *buf, size_t len)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(t_rand(s) >> 32);
}

#endif
