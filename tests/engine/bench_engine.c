/* bench_engine.c - how fast the engine runs 16 KiB AES-128-GCM seals: inline on the calling
 * thread vs async with 1 and 2 workers, rounds interleaved in one run, medians; plus the
 * queue's cost per job measured with empty CRC jobs. Not a test; prints a table.
 * Usage: bench_engine [SECONDS_PER_ROUND (0.5)] [ROUNDS (5)] [WINDOW (32)] [aes|sm4|chacha]
 *                     [JOB_BYTES (16384)]
 * WINDOW: jobs in flight in async mode (like a socket's bound on records in flight). */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "engine/aead.h"
#include "engine/engine.h"

#define WINMAX 64	/* jobs in flight in async mode, each slot with its own context */
#define MAXROUNDS 15

struct slot {
	struct ulpo_job job;
	struct ulpo_aead *aead;
	struct iovec src, dst;
	uint8_t tag[16];
	uint8_t *in, *out;
};

/* Free slots. The submitter sleeps only when none is free and is woken when half the
 * window is free again, so it refills in bursts: one wakeup per window/2 jobs, as a
 * record layer with an in-flight bound would. */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;
static struct slot slots[WINMAX];
static int free_list[WINMAX], nfree, pool_size, window = 32;
static bool pool_waiting;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_now(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

static void slot_done(struct ulpo_job *job)
{
	struct slot *s = job->priv;
	bool wake;

	if (job->result < 0)
		abort();
	/* pool_lock hands the slot (and the worker's writes to it) back to the submitter. */
	pthread_mutex_lock(&pool_lock);
	free_list[nfree++] = (int)(s - slots);
	wake = pool_waiting && (nfree >= pool_size / 2 || nfree == pool_size);
	if (wake)
		pool_waiting = false;
	pthread_mutex_unlock(&pool_lock);
	if (wake)
		pthread_cond_signal(&pool_cond);
}

static struct slot *get_slot(void)
{
	int i;

	pthread_mutex_lock(&pool_lock);
	while (nfree == 0) {
		pool_waiting = true;
		pthread_cond_wait(&pool_cond, &pool_lock);
	}
	i = free_list[--nfree];
	pthread_mutex_unlock(&pool_lock);
	return &slots[i];
}

static void wait_all_free(void)
{
	pthread_mutex_lock(&pool_lock);
	while (nfree < pool_size) {
		pool_waiting = true;
		pthread_cond_wait(&pool_cond, &pool_lock);
	}
	pthread_mutex_unlock(&pool_lock);
}

/* Jobs per second and CPU seconds per job for `secs` of work in the current mode. */
static void round_run(enum ulpo_job_op op, double secs, double *ret_rate, double *ret_cpu)
{
	enum ulpo_engine_mode mode;
	struct ulpo_engine_config cfg;
	double t0, c0, t;
	uint64_t n = 0;

	ulpo_engine_get_config(&cfg);
	mode = cfg.mode;
	pool_size = mode == ULPO_ENGINE_ASYNC ? window : 1;
	nfree = 0;
	for (int i = 0; i < pool_size; i++)
		free_list[nfree++] = i;
	t0 = now();
	c0 = cpu_now();
	do {
		for (int k = 0; k < 64; k++, n++) {
			struct slot *s = get_slot();

			s->job.op = op;
			s->job.nonce[11] = (uint8_t)n;
			s->job.crc = 0;
			if (ulpo_engine_submit(&s->job) < 0)
				abort();
		}
		t = now();
	} while (t - t0 < secs);
	wait_all_free();
	t = now();
	*ret_rate = (double)n / (t - t0);
	*ret_cpu = (cpu_now() - c0) / (double)n;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 0.5;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	const char *algname = argc > 4 ? argv[4] : "aes";
	size_t len = argc > 5 ? (size_t)atol(argv[5]) : 16384;
	enum ulpo_aead_alg alg = ULPO_AEAD_AES_GCM;
	size_t keylen = 16;
	static const struct {
		const char *name;
		enum ulpo_engine_mode mode;
		unsigned workers;
	} confs[] = {
		{ "inline", ULPO_ENGINE_INLINE, 1 },
		{ "async 1 worker", ULPO_ENGINE_ASYNC, 1 },
		{ "async 2 workers", ULPO_ENGINE_ASYNC, 2 },
	};
	enum { NCONF = 3 };
	double rate[2][NCONF][MAXROUNDS], cpu[2][NCONF][MAXROUNDS];
	uint8_t key[32] = { 7 };

	if (rounds < 1 || rounds > MAXROUNDS)
		rounds = 5;
	if (argc > 3)
		window = atoi(argv[3]);
	if (window < 1 || window > WINMAX)
		window = 32;
	if (strcmp(algname, "sm4") == 0) {
		alg = ULPO_AEAD_SM4_GCM;
		algname = "SM4-GCM";
	} else if (strcmp(algname, "chacha") == 0) {
		alg = ULPO_AEAD_CHACHA20_POLY1305;
		keylen = 32;
		algname = "ChaCha20-Poly1305";
	} else {
		algname = "AES-128-GCM";
	}
	for (int i = 0; i < WINMAX; i++) {
		struct slot *s = &slots[i];

		if (ulpo_aead_new(alg, ULPO_AEAD_BACKEND_AUTO, key, keylen, &s->aead))
			return 1;
		s->in = calloc(1, len);
		s->out = calloc(1, len);
		s->src = (struct iovec){ s->in, len };
		s->dst = (struct iovec){ s->out, len };
		s->job = (struct ulpo_job){ .aead = s->aead, .aadlen = 13, .src = &s->src,
					    .srccnt = 1, .dst = &s->dst, .dstcnt = 1,
					    .tag = s->tag, .complete = slot_done, .priv = s };
	}
	printf("%s (%s) seal of %zu bytes, and CRC32C of 0 bytes (queue cost); %d in "
	       "flight; %d interleaved rounds of %.2f s, medians\n",
	       algname, ulpo_aead_backend_name(ulpo_aead_backend_of(slots[0].aead)), len, window,
	       rounds, secs);
	for (int r = 0; r < rounds; r++)
		for (int c = 0; c < NCONF; c++) {
			struct ulpo_engine_config cfg;

			ulpo_engine_get_config(&cfg);
			cfg.mode = confs[c].mode;
			cfg.workers = confs[c].workers;
			ulpo_engine_set_config(&cfg);
			for (int i = 0; i < window; i++)
				slots[i].src.iov_len = slots[i].dst.iov_len = len;
			round_run(ULPO_JOB_SEAL, secs, &rate[0][c][r], &cpu[0][c][r]);
			for (int i = 0; i < window; i++)
				slots[i].src.iov_len = 0;
			round_run(ULPO_JOB_CRC32C, secs / 2, &rate[1][c][r], &cpu[1][c][r]);
		}
	printf("%-16s %12s %9s %12s | %14s %12s\n", "", "seal jobs/s", "GB/s", "CPU us/job",
	       "empty jobs/s", "CPU ns/job");
	for (int c = 0; c < NCONF; c++) {
		double sr = median(rate[0][c], rounds), sc = median(cpu[0][c], rounds);
		double er = median(rate[1][c], rounds), ec = median(cpu[1][c], rounds);

		printf("%-16s %12.0f %9.2f %12.2f | %14.0f %12.0f\n", confs[c].name, sr,
		       sr * (double)len / 1e9, sc * 1e6, er, ec * 1e9);
	}
	{
		struct ulpo_engine_stats st;

		ulpo_engine_stats_get(&st);
		printf("engine: %" PRIu64 " jobs, queue high-water %" PRIu64 ", in flight %" PRIu64
		       "\n", st.submitted, st.queue_depth_max, st.in_flight);
	}
	for (int i = 0; i < WINMAX; i++) {
		ulpo_aead_free(slots[i].aead);
		free(slots[i].in);
		free(slots[i].out);
	}
	return 0;
}
