/* stats.h - process-wide counters (the kernel's tls_stat names and ulpo's own), kept in
 * a small shared-memory file so `ulpo stats` can read a running process. */
#ifndef ULPO_CORE_STATS_H
#define ULPO_CORE_STATS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <ulpo/device.h>
#include <ulpo/ulpo.h>

#define ULPO_STATS_MAGIC 0x756c706f53544154ull	/* "ulpoSTAT" */
#define ULPO_STATS_VERSION 4
#define ULPO_STATS_DIR "/dev/shm"
#define ULPO_STATS_PREFIX "ulpo-stats."

/* The run-time device table (`ulpo caps`): one entry per device name, the TLS/TOE and
 * DDP halves of a device sharing it. Another process (`ulpo caps --pid P --set`) writes
 * `enabled` and `offload`; new connections read them. */
#define ULPO_CTL_MAX_DEV 8
#define ULPO_CTL_NAME_MAX 16

struct ulpo_ctl_dev {
	char name[ULPO_CTL_NAME_MAX];
	uint32_t caps;			/* supported (ULPO_DEV_CAP_*) */
	_Atomic uint32_t enabled;	/* what new connections get */
	struct ulpo_device_limits limits;
	_Atomic uint32_t conns;		/* whole connections carried now */
	uint32_t pad;
};

struct ulpo_ctl {
	_Atomic uint32_t offload;	/* process-wide policy: 1 offload, 0 software path */
	_Atomic uint32_t ndev;
	struct ulpo_ctl_dev dev[ULPO_CTL_MAX_DEV];
};

struct ulpo_stats_page {
	uint64_t magic;
	uint32_t version;
	uint32_t nstats;
	int32_t pid;
	char comm[36];
	struct ulpo_ctl ctl;
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

/* ctl.c: the device table. Find or add the entry for name (its index), with caps
 * supported, all enabled at first; -ENOSPC when the table is full. */
int ulpo_ctl_slot(const char *name, uint32_t caps, const struct ulpo_device_limits *lim);
uint32_t ulpo_ctl_enabled(int slot);
/* ulpo_caps_set on table c (this process's, or another's page for `ulpo caps --pid`):
 * 0, -EINVAL, -ENODEV, -EOPNOTSUPP. */
int ulpo_ctl_caps_set(struct ulpo_ctl *c, const char *device, uint32_t on, uint32_t off);
/* Move the table into a newly published page / back into process memory (fork). */
void ulpo_ctl_copy(struct ulpo_ctl *dst, const struct ulpo_ctl *src);
extern pthread_mutex_t ulpo_ctl_lock;	/* entries are added, and the page moves, under it */

static inline void ulpo_stat_add(enum ulpo_stat s, int64_t n)
{
	atomic_fetch_add_explicit(&ulpo_stats->values[s].v, (uint64_t)n, memory_order_relaxed);
}

#endif
