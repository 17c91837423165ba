/* engine_helpers.h - engine settings for the tests that run the record layer both inline
 * and on the async engine (ulpo only: the kernel build has no engine). */
#ifndef ULPO_TEST_ENGINE_HELPERS_H
#define ULPO_TEST_ENGINE_HELPERS_H

#include <unistd.h>

#include <ulpo/engine.h>

#include "../harness.h"

static inline void t_set_engine(enum ulpo_engine_mode mode, unsigned int workers)
{
	struct ulpo_engine_config cfg;

	ulpo_engine_get_config(&cfg);
	cfg.mode = mode;
	cfg.workers = workers;
	CHECK(ulpo_engine_set_config(&cfg) == 0);
}

/* Let the engine finish what it has (up to a second); returns the jobs still in flight. */
static inline uint64_t t_engine_settle(void)
{
	struct ulpo_engine_stats st;

	for (int i = 0; i < 1000; i++) {
		ulpo_engine_stats_get(&st);
		if (!st.in_flight)
			break;
		usleep(1000);
	}
	return st.in_flight;
}

#endif
