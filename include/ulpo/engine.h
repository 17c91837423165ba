/* engine.h - the crypto/CRC engine: how record work is run, and its counters.
 * Inline runs each job on the caller's thread; async hands jobs to worker threads (the
 * "accelerator" of the kTLS async-encryption design) and completes them there. */
#ifndef ULPO_ENGINE_H
#define ULPO_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifndef ULPO_API
#define ULPO_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

enum ulpo_engine_mode {
	ULPO_ENGINE_INLINE,
	ULPO_ENGINE_ASYNC,
};

struct ulpo_engine_config {
	enum ulpo_engine_mode mode;	/* env ULPO_ENGINE=inline|async */
	unsigned int workers;		/* env ULPO_WORKERS; 0 = online cores */
	unsigned int max_records_in_flight;	/* per socket; 0 = default */
	size_t max_bytes_in_flight;	/* per socket; 0 = default (like SO_SNDBUF) */
};

struct ulpo_engine_stats {
	uint64_t submitted;
	uint64_t completed;
	uint64_t in_flight;
	uint64_t queue_depth_max;	/* high-water mark of queued jobs */
	uint64_t failures;		/* jobs completed with an error */
};

/* Read the settings in effect (environment applied on first use). */
ULPO_API void ulpo_engine_get_config(struct ulpo_engine_config *ret_cfg);
/* Change them: mode and worker count apply to jobs submitted afterwards; -EINVAL on
 * bad values. Returns 0 or a negative errno. */
ULPO_API int ulpo_engine_set_config(const struct ulpo_engine_config *cfg);
ULPO_API void ulpo_engine_stats_get(struct ulpo_engine_stats *ret_stats);

#ifdef __cplusplus
}
#endif
#endif
