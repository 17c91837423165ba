/* stats.h - process-wide counters (the kernel's tls_stat names and ulpo's own), kept in
 * a small shared-memory file so `ulpo stats` can read a running process. */
#ifndef ULPO_CORE_STATS_H
#define ULPO_CORE_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include <ulpo/ulpo.h>

#define ULPO_STATS_MAGIC 0x756c706f53544154ull	/* "ulpoSTAT" */
#define ULPO_STATS_VERSION 2
#define ULPO_STATS_DIR "/dev/shm"
#define ULPO_STATS_PREFIX "ulpo-stats."

struct ulpo_stats_page {
	uint64_t magic;
	uint32_t version;
	uint32_t nstats;
	int32_t pid;
	char comm[36];
	/* One cache line per counter: the TX and RX paths of different threads would
	 * otherwise pull one line back and forth on every record. */
	struct {
		_Atomic uint64_t v;
		uint64_t pad[7];
	} values[ULPO_STAT_MAX];
};

extern struct ulpo_stats_page *ulpo_stats;

/* Publish this process's page (idempotent); counters work without it. */
void ulpo_stats_publish(void);

static inline void ulpo_stat_add(enum ulpo_stat s, int64_t n)
{
	atomic_fetch_add_explicit(&ulpo_stats->values[s].v, (uint64_t)n, memory_order_relaxed);
}

#endif
