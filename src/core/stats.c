/* stats.c - counters. They start in process memory; the first TLS socket moves them to
 * /dev/shm/ulpo-stats.<pid> (mmap'd, so an increment costs the same) where `ulpo stats`
 * reads them; the file goes away at exit, and a reader ignores files of dead pids. */
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/stats.h"
#include "core/sys.h"

static struct ulpo_stats_page local_page = {
	.magic = ULPO_STATS_MAGIC, .version = ULPO_STATS_VERSION, .nstats = ULPO_STAT_MAX,
	.ctl = { .offload = 1 },
};
struct ulpo_stats_page *ulpo_stats = &local_page;

static const char *const stat_names[ULPO_STAT_MAX] = {
	[ULPO_STAT_TLS_CURR_TX_SW] = "TlsCurrTxSw",
	[ULPO_STAT_TLS_CURR_RX_SW] = "TlsCurrRxSw",
	[ULPO_STAT_TLS_TX_SW] = "TlsTxSw",
	[ULPO_STAT_TLS_RX_SW] = "TlsRxSw",
	[ULPO_STAT_TLS_DECRYPT_ERROR] = "TlsDecryptError",
	[ULPO_STAT_TLS_RX_NO_PAD_VIOLATION] = "TlsRxNoPadViolation",
	[ULPO_STAT_TLS_DECRYPT_RETRY] = "TlsDecryptRetry",
	[ULPO_STAT_TLS_TX_REKEY_OK] = "TlsTxRekeyOk",
	[ULPO_STAT_TLS_RX_REKEY_OK] = "TlsRxRekeyOk",
	[ULPO_STAT_TLS_TX_REKEY_ERROR] = "TlsTxRekeyError",
	[ULPO_STAT_TLS_RX_REKEY_ERROR] = "TlsRxRekeyError",
	[ULPO_STAT_TLS_RX_REKEY_RECEIVED] = "TlsRxRekeyReceived",
	[ULPO_STAT_TX_RECORDS] = "UlpoTxRecords",
	[ULPO_STAT_RX_RECORDS] = "UlpoRxRecords",
	[ULPO_STAT_TX_BYTES] = "UlpoTxBytes",
	[ULPO_STAT_RX_BYTES] = "UlpoRxBytes",
	[ULPO_STAT_RX_ZEROCOPY_RECORDS] = "UlpoRxZeroCopyRecords",
	[ULPO_STAT_RX_AHEAD_RECORDS] = "UlpoRxAheadRecords",
	[ULPO_STAT_ULP_KERNEL] = "UlpoUlpKernel",
	[ULPO_STAT_ULP_SW] = "UlpoUlpSw",
	[ULPO_STAT_TOE_TX] = "UlpoToeTx",
	[ULPO_STAT_TOE_RX] = "UlpoToeRx",
	[ULPO_STAT_TOE_OPT_OUT] = "UlpoToeOptOut",
	[ULPO_STAT_TOE_REFUSED] = "UlpoToeRefused",
	[ULPO_STAT_TOE_DETACHED] = "UlpoToeDetached",
	[ULPO_STAT_TOE_RESET] = "UlpoToeReset",
	[ULPO_STAT_LISTEN_OPEN] = "UlpoListenOpen",
	[ULPO_STAT_LISTEN_CLOSE] = "UlpoListenClose",
};

const char *ulpo_stat_name(enum ulpo_stat stat)
{
	return (unsigned int)stat < ULPO_STAT_MAX ? stat_names[stat] : NULL;
}

void ulpo_stats_get(uint64_t *ret_values)
{
	for (int i = 0; i < ULPO_STAT_MAX; i++)
		ret_values[i] = atomic_load_explicit(&ulpo_stats->values[i].v, memory_order_relaxed);
}

static char page_path[64];
static bool atexit_set;

static void unpublish(void)
{
	if (page_path[0] && ulpo_stats != &local_page && ulpo_stats->pid == getpid())
		unlink(page_path);
}

static void publish_once(void)
{
	struct ulpo_stats_page *p;
	int fd;

	if (getenv("ULPO_NO_STATS_SHM"))
		return;
	snprintf(page_path, sizeof(page_path), "%s/%s%d", ULPO_STATS_DIR, ULPO_STATS_PREFIX,
		 (int)getpid());
	fd = open(page_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (ftruncate(fd, sizeof(*p))) {
		ulpo_sys_close(fd);
		unlink(page_path);
		return;
	}
	p = mmap(NULL, sizeof(*p), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ulpo_sys_close(fd);
	if (p == MAP_FAILED) {
		unlink(page_path);
		return;
	}
	p->magic = ULPO_STATS_MAGIC;
	p->version = ULPO_STATS_VERSION;
	p->nstats = ULPO_STAT_MAX;
	p->pid = (int32_t)getpid();
	{
		FILE *f = fopen("/proc/self/comm", "re");

		if (f) {
			if (fgets(p->comm, sizeof(p->comm), f))
				p->comm[strcspn(p->comm, "\n")] = 0;
			fclose(f);
		}
	}
	/* Counts taken before publication move with the page, and so do the settings. */
	for (int i = 0; i < ULPO_STAT_MAX; i++)
		atomic_store(&p->values[i].v, atomic_load(&local_page.values[i].v));
	pthread_mutex_lock(&ulpo_ctl_lock);
	ulpo_ctl_copy(&p->ctl, &local_page.ctl);
	ulpo_stats = p;
	pthread_mutex_unlock(&ulpo_ctl_lock);
	if (!atexit_set) {
		atexit(unpublish);
		atexit_set = true;
	}
}

static pthread_mutex_t publish_lock = PTHREAD_MUTEX_INITIALIZER;
static bool published;

/* A forked child is another process: it leaves the parent's page and publishes its own
 * on its next TLS socket. Its counts start at zero but for the sockets it holds. */
static void child_after_fork(void)
{
	for (int i = 0; i < ULPO_STAT_MAX; i++) {
		bool curr = i == ULPO_STAT_TLS_CURR_TX_SW || i == ULPO_STAT_TLS_CURR_RX_SW;

		atomic_store(&local_page.values[i].v, curr ? atomic_load(&ulpo_stats->values[i].v) : 0);
	}
	ulpo_ctl_copy(&local_page.ctl, &ulpo_stats->ctl);	/* the child keeps the settings */
	ulpo_stats = &local_page;	/* the parent's page stays mapped, unused */
	page_path[0] = 0;
	published = false;
	pthread_mutex_init(&publish_lock, NULL);
}

void ulpo_stats_publish(void)
{
	static bool atfork_set;

	pthread_mutex_lock(&publish_lock);
	if (!atfork_set) {
		pthread_atfork(NULL, NULL, child_after_fork);
		atfork_set = true;
	}
	if (!published) {
		publish_once();
		published = true;
	}
	pthread_mutex_unlock(&publish_lock);
}
