/* test_engine.c - tests of the job engine (src/engine/engine.c): CRC32C known answers and
 * chaining, many threads submitting AEAD/CRC jobs in async mode (each completes once, off
 * the submitter's thread, with the inline result), re-submission from a callback, fault
 * injection, run-time reconfiguration under load, fork(), and the counters.
 *
 * Usage: test_engine [NAME]   runs the tests whose name contains NAME; "env" and "env-bad"
 * (run only when named) check ULPO_ENGINE/ULPO_WORKERS as set by the caller. TEST_SEED
 * repeats a random run. Exit 0 pass, 1 fail. */
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../harness.h"
#include "engine/aead.h"
#include "engine/engine.h"

int t_failed_checks;
const char *t_current;

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

#ifdef UNDER_TSAN
/* TSan kills a child of a multi-threaded fork that starts threads; the engine's child must. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "die_after_fork=0";
}
#define SCALE 2		/* TSan runs several times slower: fewer jobs */
#else
#define SCALE 1
#endif

static uint64_t g_seed;

/* ---- helpers ---- */

static uint32_t ref_crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
	}
	return ~crc;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Wait until *flag is nonzero (acquire), at most `secs`; false on timeout (a deadlock). */
static bool wait_flag(atomic_int *flag, double secs)
{
	double end = now() + secs;

	while (!atomic_load_explicit(flag, memory_order_acquire)) {
		if (now() > end)
			return false;
		sched_yield();
	}
	return true;
}

static void set_engine(enum ulpo_engine_mode mode, unsigned workers)
{
	struct ulpo_engine_config cfg;

	ulpo_engine_get_config(&cfg);
	cfg.mode = mode;
	cfg.workers = workers;
	CHECK_EQ(ulpo_engine_set_config(&cfg), 0);
}

/* Threads named ulpo-worker in this process. */
static int count_workers(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[300], comm[32] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && strncmp(comm, "ulpo-worker", 11) == 0)
			n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

static bool wait_workers(int n, double secs)
{
	double end = now() + secs;

	while (count_workers() != n) {
		if (now() > end)
			return false;
		usleep(1000);
	}
	return true;
}

/* In every quiet moment: each job counted submitted is counted completed. */
static void check_quiet_stats(struct ulpo_engine_stats *ret)
{
	struct ulpo_engine_stats s;

	ulpo_engine_stats_get(&s);
	CHECK_EQ(s.submitted, s.completed + s.in_flight);
	CHECK_EQ(s.in_flight, 0);
	if (ret)
		*ret = s;
}

/* Completion thread checks shared by every test: a callback never runs inside another
 * callback's frame (no nesting), nor inside a submit call on its own thread. */
static _Thread_local int tl_in_callback;
static _Thread_local int tl_in_submit;
static atomic_int nested_callbacks;
static atomic_int callbacks_in_submit;

static void callback_enter(void)
{
	if (tl_in_callback++)
		atomic_fetch_add(&nested_callbacks, 1);
	if (tl_in_submit)
		atomic_fetch_add(&callbacks_in_submit, 1);
}

static void callback_leave(void)
{
	tl_in_callback--;
}

static int submit(struct ulpo_job *job)
{
	int r;

	tl_in_submit++;
	r = ulpo_engine_submit(job);
	tl_in_submit--;
	return r;
}

/* A job waited for by the thread that submitted it. */
struct waited {
	struct ulpo_job job;
	atomic_int done;
	pthread_t thread;
};

static void waited_done(struct ulpo_job *job)
{
	struct waited *w = job->priv;

	w->thread = pthread_self();
	/* Release pairs with the acquire in wait_flag: result and buffers are visible. */
	atomic_store_explicit(&w->done, 1, memory_order_release);
}

/* Submit, wait, return the result; *ret_other: completed on another thread. */
static int run_waited(struct waited *w, bool *ret_other)
{
	int r;

	atomic_store(&w->done, 0);
	w->job.complete = waited_done;
	w->job.priv = w;
	r = ulpo_engine_submit(&w->job);
	if (r < 0)
		return r;
	if (!wait_flag(&w->done, 30)) {
		CHECK(!"job never completed");
		return -ETIMEDOUT;
	}
	if (ret_other)
		*ret_other = !pthread_equal(w->thread, pthread_self());
	return w->job.result;
}

/* ---- 1. CRC32C ---- */

struct crc_kat {
	const char *name;
	uint8_t data[32];
	size_t len;
	uint32_t crc;
};

static void t_crc32c(void)
{
	static struct crc_kat kats[] = {
		{ "check", "123456789", 9, 0xE3069283 },
		{ "zeros", { 0 }, 32, 0x8A9136AA },
		{ "ones", { 0 }, 32, 0x62A8AB43 },
		{ "ascending", { 0 }, 32, 0x46DD794E },
		{ "descending", { 0 }, 32, 0x113FDB5C },
		{ "empty", { 0 }, 0, 0 },
	};
	uint64_t rng = g_seed;

	memset(kats[2].data, 0xff, 32);
	for (int i = 0; i < 32; i++) {
		kats[3].data[i] = (uint8_t)i;
		kats[4].data[i] = (uint8_t)(31 - i);
	}
	/* Direct, then through the engine inline and on a worker. */
	for (int how = 0; how < 3; how++) {
		if (how > 0)
			set_engine(how == 1 ? ULPO_ENGINE_INLINE : ULPO_ENGINE_ASYNC, 2);
		for (size_t k = 0; k < sizeof(kats) / sizeof(kats[0]); k++) {
			struct iovec iov = { kats[k].data, kats[k].len };
			struct waited w = { .job = { .op = ULPO_JOB_CRC32C, .src = &iov,
						     .srccnt = 1 } };
			int r;

			if (how == 0) {
				ulpo_engine_run(&w.job);
				r = w.job.result;
			} else {
				r = run_waited(&w, NULL);
			}
			CHECK_EQ(r, 0);
			if (w.job.crc != kats[k].crc)
				fprintf(stderr, "  crc %s (how %d): %08" PRIx32 "\n", kats[k].name,
					how, w.job.crc);
			CHECK_EQ(w.job.crc, kats[k].crc);
			CHECK_EQ(ref_crc32c(0, kats[k].data, kats[k].len), kats[k].crc);
		}
	}
	set_engine(ULPO_ENGINE_INLINE, 0);

	/* Random data, random iovec splits (empty segments too), and two chained jobs. */
	for (int it = 0; it < 500; it++) {
		static uint8_t buf[70000];
		size_t len = t_rand(&rng) % (it < 450 ? 5000 : sizeof(buf));
		struct iovec iov[9];
		size_t cut[9];
		int n = 1 + (int)(t_rand(&rng) % 8), split;
		uint32_t want;
		struct ulpo_job job = { .op = ULPO_JOB_CRC32C, .src = iov };

		t_fill(&rng, buf, len);
		want = ref_crc32c(0, buf, len);
		for (int i = 0; i < n - 1; i++)
			cut[i] = len ? t_rand(&rng) % (len + 1) : 0;
		cut[n - 1] = len;
		for (int i = 0; i < n - 1; i++)	/* sort the cut points */
			for (int j = i + 1; j < n - 1; j++)
				if (cut[j] < cut[i]) {
					size_t t = cut[i];

					cut[i] = cut[j];
					cut[j] = t;
				}
		for (int i = 0; i < n; i++) {
			size_t from = i ? cut[i - 1] : 0;

			iov[i].iov_base = cut[i] > from ? buf + from : NULL;
			iov[i].iov_len = cut[i] - from;
		}
		job.srccnt = n;
		ulpo_engine_run(&job);
		CHECK_EQ(job.result, 0);
		CHECK_EQ(job.crc, want);

		split = (int)(t_rand(&rng) % (unsigned)(n + 1));
		job.crc = 0;
		job.srccnt = split;
		ulpo_engine_run(&job);
		job.src = iov + split;
		job.srccnt = n - split;
		ulpo_engine_run(&job);
		CHECK_EQ(job.result, 0);
		CHECK_EQ(job.crc, want);
	}

	/* Bad arguments complete with -EINVAL. */
	{
		struct iovec bad = { NULL, 5 };
		struct ulpo_job job = { .op = ULPO_JOB_CRC32C, .src = &bad, .srccnt = 1 };

		ulpo_engine_run(&job);
		CHECK_EQ(job.result, -EINVAL);
		job.srccnt = -1;
		ulpo_engine_run(&job);
		CHECK_EQ(job.result, -EINVAL);
		job.op = (enum ulpo_job_op)99;
		job.complete = waited_done;
		CHECK_EQ(ulpo_engine_submit(&job), -EINVAL);
		job.op = ULPO_JOB_CRC32C;
		job.complete = NULL;
		CHECK_EQ(ulpo_engine_submit(&job), -EINVAL);
		CHECK_EQ(ulpo_engine_submit(NULL), -EINVAL);
	}
	check_quiet_stats(NULL);
}

/* ---- 2, 5. many submitters ---- */

#define MAXLEN 16640
#define SLOTS 8
#define NALGS 3

static const enum ulpo_aead_alg stress_algs[NALGS] = {
	ULPO_AEAD_AES_GCM, ULPO_AEAD_CHACHA20_POLY1305, ULPO_AEAD_SM4_GCM,
};
static const size_t stress_keylen[NALGS] = { 16, 32, 16 };

struct submitter;

struct slot {
	struct ulpo_job job;
	struct submitter *owner;
	struct ulpo_aead *aead;		/* this slot's own: a context is one thread at a time */
	int alg;
	struct iovec src[4], dst[4];
	uint8_t tag[16];
	uint8_t *in, *out, *exp;
	uint8_t exp_tag[16];
	uint32_t exp_crc;
	int exp_result;
	size_t len;
	uint64_t id;
	atomic_int busy;
};

struct submitter {
	pthread_t tid;
	unsigned index;
	uint64_t seed;
	unsigned jobs;
	struct ulpo_aead *ref[NALGS];	/* inline reference, same keys */
	struct slot slots[SLOTS];
	/* results, read by the main thread after join */
	unsigned mismatches, submit_errors, expected_failures;
	atomic_uint on_submitter_thread;	/* written by callbacks */
	atomic_int finished;
};

static atomic_uchar *job_counts;	/* completions per job id */

static void stress_done(struct ulpo_job *job)
{
	struct slot *s = job->priv;

	callback_enter();
	if (pthread_equal(pthread_self(), s->owner->tid))
		atomic_fetch_add(&s->owner->on_submitter_thread, 1);
	atomic_fetch_add_explicit(&job_counts[s->id], 1, memory_order_relaxed);
	callback_leave();
	/* Release pairs with the submitter's acquire before it reuses the slot. */
	atomic_store_explicit(&s->busy, 0, memory_order_release);
}

static int split_iov(uint64_t *rng, uint8_t *buf, size_t len, struct iovec *iov)
{
	int n = 1 + (int)(t_rand(rng) % 4);
	size_t off = 0;

	for (int i = 0; i < n; i++) {
		size_t take = i == n - 1 ? len - off : (len - off) ? t_rand(rng) % (len - off + 1) : 0;

		iov[i].iov_base = buf + off;
		iov[i].iov_len = take;
		off += take;
	}
	return n;
}

static void verify_slot(struct slot *s)
{
	struct submitter *sub = s->owner;
	bool ok = s->job.result == s->exp_result;

	if (ok && s->job.result == 0) {
		if (s->job.op == ULPO_JOB_CRC32C)
			ok = s->job.crc == s->exp_crc;
		else
			ok = memcmp(s->out, s->exp, s->len) == 0 &&
			     (s->job.op != ULPO_JOB_SEAL || memcmp(s->tag, s->exp_tag, 16) == 0);
	}
	if (!ok)
		sub->mismatches++;
}

/* Fill a slot with a random job and its expected (inline) result. */
static void prepare_slot(struct submitter *sub, struct slot *s, uint64_t *rng)
{
	struct ulpo_job *j = &s->job;
	struct ulpo_job ref;
	struct iovec rin = { s->in, 0 }, rout = { s->exp, 0 };
	unsigned op = (unsigned)(t_rand(rng) % 3);

	s->len = t_rand(rng) % 8 == 0 ? MAXLEN : t_rand(rng) % (MAXLEN + 1);
	memset(j, 0, sizeof(*j));
	j->op = op == 0 ? ULPO_JOB_SEAL : op == 1 ? ULPO_JOB_OPEN : ULPO_JOB_CRC32C;
	j->aead = s->aead;
	t_fill(rng, j->nonce, sizeof(j->nonce));
	j->aadlen = (uint8_t)(t_rand(rng) % 14);
	t_fill(rng, j->aad, j->aadlen);
	j->tag = s->tag;
	t_fill(rng, s->in, s->len);
	rin.iov_len = rout.iov_len = s->len;

	if (j->op == ULPO_JOB_OPEN) {
		/* The input is a real record (sealed by the reference); one in eight forged. */
		uint8_t *pt = s->exp;

		memcpy(pt, s->in, s->len);
		ref = *j;
		ref.aead = sub->ref[s->alg];
		ref.op = ULPO_JOB_SEAL;
		rin.iov_base = pt;
		rout.iov_base = s->in;
		ref.src = &rin, ref.srccnt = 1, ref.dst = &rout, ref.dstcnt = 1;
		ref.tag = s->tag;
		ulpo_engine_run(&ref);
		if (t_rand(rng) % 8 == 0)
			s->tag[t_rand(rng) % 16] ^= 1;
		rin.iov_base = s->in;
		rout.iov_base = s->exp;
	}
	ref = *j;
	ref.aead = sub->ref[s->alg];
	ref.src = &rin, ref.srccnt = 1, ref.dst = &rout, ref.dstcnt = 1;
	ref.tag = j->op == ULPO_JOB_SEAL ? s->exp_tag : s->tag;
	ref.crc = j->crc = (uint32_t)t_rand(rng);
	ulpo_engine_run(&ref);
	s->exp_result = ref.result;
	s->exp_crc = ref.crc;
	if (ref.result < 0)
		sub->expected_failures++;

	j->srccnt = split_iov(rng, s->in, s->len, s->src);
	j->src = s->src;
	j->dstcnt = split_iov(rng, s->out, s->len, s->dst);
	j->dst = s->dst;
	memset(s->out, 0, s->len);
	j->complete = stress_done;
	j->priv = s;
}

static void *submitter_main(void *arg)
{
	struct submitter *sub = arg;
	uint64_t rng = sub->seed;

	for (unsigned i = 0; i < sub->jobs; i++) {
		struct slot *s = &sub->slots[i % SLOTS];

		while (atomic_load_explicit(&s->busy, memory_order_acquire))
			sched_yield();
		if (i >= SLOTS)
			verify_slot(s);
		prepare_slot(sub, s, &rng);
		s->id = (uint64_t)sub->index * sub->jobs + i;
		/* Ordered before the callback's store of 0 by the engine's queue lock. */
		atomic_store_explicit(&s->busy, 1, memory_order_relaxed);
		if (submit(&s->job) < 0) {
			sub->submit_errors++;
			atomic_store_explicit(&s->busy, 0, memory_order_relaxed);
		}
	}
	for (unsigned k = 0; k < SLOTS && k < sub->jobs; k++) {
		struct slot *s = &sub->slots[k];

		while (atomic_load_explicit(&s->busy, memory_order_acquire))
			sched_yield();
		verify_slot(s);
	}
	atomic_store(&sub->finished, 1);
	return NULL;
}

static uint8_t *xmalloc(size_t n)
{
	uint8_t *p = malloc(n);

	if (!p) {
		perror("malloc");
		exit(1);
	}
	return p;
}

static bool alg_usable(int a)
{
	return ulpo_aead_supported(stress_algs[a], ULPO_AEAD_BACKEND_AUTO);
}

static struct submitter *submitters_new(unsigned nthreads, unsigned jobs, uint64_t seed)
{
	struct submitter *subs = calloc(nthreads, sizeof(*subs));
	uint8_t key[32];
	uint64_t rng = seed;

	job_counts = calloc((size_t)nthreads * jobs, sizeof(*job_counts));
	if (!subs || !job_counts) {
		perror("calloc");
		exit(1);
	}
	for (unsigned t = 0; t < nthreads; t++) {
		struct submitter *sub = &subs[t];

		sub->index = t;
		sub->jobs = jobs;
		sub->seed = t_rand(&rng) | 1;
		for (int a = 0; a < NALGS; a++) {
			if (!alg_usable(a))
				continue;
			t_fill(&rng, key, sizeof(key));
			CHECK_EQ(ulpo_aead_new(stress_algs[a], ULPO_AEAD_BACKEND_AUTO, key,
					       stress_keylen[a], &sub->ref[a]), 0);
			for (int k = a; k < SLOTS; k += NALGS)
				CHECK_EQ(ulpo_aead_new(stress_algs[a], ULPO_AEAD_BACKEND_AUTO,
						       key, stress_keylen[a],
						       &sub->slots[k].aead), 0);
		}
		for (int k = 0; k < SLOTS; k++) {
			struct slot *s = &sub->slots[k];

			s->owner = sub;
			s->alg = k % NALGS;
			if (!alg_usable(s->alg)) {	/* fall back to AES-GCM's key */
				s->alg = 0;
				CHECK_EQ(ulpo_aead_new(stress_algs[0], ULPO_AEAD_BACKEND_AUTO,
						       key, 16, &s->aead), 0);
			}
			s->in = xmalloc(MAXLEN);
			s->out = xmalloc(MAXLEN);
			s->exp = xmalloc(MAXLEN);
		}
	}
	return subs;
}

static void submitters_free(struct submitter *subs, unsigned nthreads)
{
	for (unsigned t = 0; t < nthreads; t++) {
		for (int a = 0; a < NALGS; a++)
			ulpo_aead_free(subs[t].ref[a]);
		for (int k = 0; k < SLOTS; k++) {
			ulpo_aead_free(subs[t].slots[k].aead);
			free(subs[t].slots[k].in);
			free(subs[t].slots[k].out);
			free(subs[t].slots[k].exp);
		}
	}
	free(subs);
	free(job_counts);
	job_counts = NULL;
}

static void submitters_start(struct submitter *subs, unsigned nthreads)
{
	for (unsigned t = 0; t < nthreads; t++)
		CHECK_EQ(pthread_create(&subs[t].tid, NULL, submitter_main, &subs[t]), 0);
}

/* Join, then check: every job completed exactly once with the inline result; with
 * `other_thread`, never on its submitter's thread. Returns the jobs expected to fail. */
static unsigned submitters_check(struct submitter *subs, unsigned nthreads, bool other_thread)
{
	unsigned bad_counts = 0, expected_failures = 0;
	size_t total = 0;

	for (unsigned t = 0; t < nthreads; t++) {
		pthread_join(subs[t].tid, NULL);
		CHECK_EQ(subs[t].submit_errors, 0);
		CHECK_EQ(subs[t].mismatches, 0);
		if (other_thread)
			CHECK_EQ(atomic_load(&subs[t].on_submitter_thread), 0);
		expected_failures += subs[t].expected_failures;
		total += subs[t].jobs;
	}
	for (size_t i = 0; i < total; i++)
		if (atomic_load_explicit(&job_counts[i], memory_order_relaxed) != 1)
			bad_counts++;
	CHECK_EQ(bad_counts, 0);
	return expected_failures;
}

static bool all_finished(struct submitter *subs, unsigned nthreads)
{
	for (unsigned t = 0; t < nthreads; t++)
		if (!atomic_load(&subs[t].finished))
			return false;
	return true;
}

static void t_async_many(void)
{
	static const unsigned workers[] = { 1, 2, 3 };
	const unsigned nthreads = 4, jobs = 4000 / SCALE;

	for (size_t wi = 0; wi < sizeof(workers) / sizeof(workers[0]); wi++) {
		struct ulpo_engine_stats before, after;
		struct submitter *subs = submitters_new(nthreads, jobs, g_seed + wi);
		unsigned expected_failures;

		set_engine(ULPO_ENGINE_ASYNC, workers[wi]);
		check_quiet_stats(&before);
		atomic_store(&nested_callbacks, 0);
		atomic_store(&callbacks_in_submit, 0);
		submitters_start(subs, nthreads);
		expected_failures = submitters_check(subs, nthreads, true);
		CHECK_EQ(atomic_load(&nested_callbacks), 0);
		CHECK_EQ(atomic_load(&callbacks_in_submit), 0);
		CHECK(expected_failures > 0);
		check_quiet_stats(&after);
		CHECK_EQ(after.submitted - before.submitted, (uint64_t)nthreads * jobs);
		CHECK_EQ(after.completed - before.completed, (uint64_t)nthreads * jobs);
		CHECK_EQ(after.failures - before.failures, expected_failures);
		CHECK(after.queue_depth_max >= 1);
		CHECK(wait_workers((int)workers[wi], 10));
		submitters_free(subs, nthreads);
	}
	set_engine(ULPO_ENGINE_INLINE, 0);
}

/* ---- 3. re-submission from the callback ---- */

#define CHAIN_BUF 64

struct chain {
	struct ulpo_job job;
	struct iovec iov;
	uint8_t buf[CHAIN_BUF];
	unsigned left;
	int errors;
	atomic_int done;
};

static void chain_done(struct ulpo_job *job)
{
	struct chain *c = job->priv;

	callback_enter();
	if (job->result < 0)
		c->errors++;
	/* The engine handed the job back: submit it again, from the worker's callback. */
	if (--c->left > 0 && submit(job) == 0) {
		callback_leave();
		return;
	}
	callback_leave();
	/* Release pairs with the acquire in wait_flag. */
	atomic_store_explicit(&c->done, 1, memory_order_release);
}

static void t_resubmit(void)
{
	const unsigned nchains = 8, steps = 3000 / SCALE;
	uint64_t rng = g_seed;

	for (unsigned workers = 1; workers <= 2; workers++) {
		struct chain *chains = calloc(nchains, sizeof(*chains));

		set_engine(ULPO_ENGINE_ASYNC, workers);
		atomic_store(&nested_callbacks, 0);
		atomic_store(&callbacks_in_submit, 0);
		for (unsigned i = 0; i < nchains; i++) {
			struct chain *c = &chains[i];

			t_fill(&rng, c->buf, CHAIN_BUF);
			c->iov = (struct iovec){ c->buf, CHAIN_BUF };
			c->job = (struct ulpo_job){ .op = ULPO_JOB_CRC32C, .src = &c->iov,
						    .srccnt = 1, .complete = chain_done,
						    .priv = c };
			c->left = steps;
		}
		for (unsigned i = 0; i < nchains; i++)
			CHECK_EQ(submit(&chains[i].job), 0);
		for (unsigned i = 0; i < nchains; i++) {
			struct chain *c = &chains[i];
			uint32_t want = 0;

			if (!wait_flag(&c->done, 60)) {
				CHECK(!"re-submitted chain stalled (deadlock?)");
				exit(1);	/* the jobs are still owned by the engine */
			}
			for (unsigned s = 0; s < steps; s++)
				want = ref_crc32c(want, c->buf, CHAIN_BUF);
			CHECK_EQ(c->left, 0);
			CHECK_EQ(c->errors, 0);
			CHECK_EQ(c->job.crc, want);
		}
		CHECK_EQ(atomic_load(&nested_callbacks), 0);
		CHECK_EQ(atomic_load(&callbacks_in_submit), 0);
		check_quiet_stats(NULL);
		free(chains);
	}
	set_engine(ULPO_ENGINE_INLINE, 0);
}

/* ---- 4. fault injection ---- */

struct counted {
	atomic_int completions;
	atomic_int failed;
	atomic_int ebadmsg;
};

static void counted_done(struct ulpo_job *job)
{
	struct counted *c = job->priv;

	if (job->result == -EIO)
		atomic_fetch_add(&c->failed, 1);
	if (job->result == -EBADMSG)
		atomic_fetch_add(&c->ebadmsg, 1);
	/* Release: the job's result is visible once the count is. */
	atomic_fetch_add_explicit(&c->completions, 1, memory_order_release);
}

struct fail_thread {
	pthread_t tid;
	unsigned jobs;
	struct counted counted;
	bool bad;
};

static void *fail_thread_main(void *arg)
{
	struct fail_thread *ft = arg;
	static const uint8_t data[] = "123456789";
	struct iovec iov = { (void *)data, 9 };
	struct ulpo_job *jobs = calloc(ft->jobs, sizeof(*jobs));

	for (unsigned i = 0; i < ft->jobs; i++) {
		jobs[i] = (struct ulpo_job){ .op = ULPO_JOB_CRC32C, .src = &iov, .srccnt = 1,
					     .complete = counted_done, .priv = &ft->counted };
		if (ulpo_engine_submit(&jobs[i]) < 0)
			ft->bad = true;
	}
	/* The jobs are ours again only after their callbacks. */
	while (atomic_load_explicit(&ft->counted.completions, memory_order_acquire) <
	       (int)ft->jobs)
		sched_yield();
	for (unsigned i = 0; i < ft->jobs; i++)
		if (jobs[i].result == 0 && jobs[i].crc != 0xE3069283)
			ft->bad = true;
	free(jobs);
	return NULL;
}

static void t_fail_nth(void)
{
	static const uint8_t data[] = "123456789";

	for (int m = 0; m < 2; m++) {
		enum ulpo_engine_mode mode = m ? ULPO_ENGINE_ASYNC : ULPO_ENGINE_INLINE;
		struct ulpo_engine_stats before, after;
		struct iovec iov = { (void *)data, 9 };
		uint8_t out[9], tag[16];
		struct iovec oiov = { out, 9 };
		struct ulpo_aead *aead;
		uint8_t key[16] = { 1 };

		set_engine(mode, 2);
		check_quiet_stats(&before);

		/* The third of five jobs fails, with a negative errno given positive. */
		ulpo_engine_fail_nth(3, EIO);
		for (int i = 1; i <= 5; i++) {
			struct waited w = { .job = { .op = ULPO_JOB_CRC32C, .src = &iov,
						     .srccnt = 1, .crc = 0 } };
			int r = run_waited(&w, NULL);

			CHECK_EQ(r, i == 3 ? -EIO : 0);
			CHECK_EQ(w.job.crc, i == 3 ? 0 : 0xE3069283);	/* did not run */
		}
		/* A failed seal leaves its output untouched. */
		CHECK_EQ(ulpo_aead_new(ULPO_AEAD_AES_GCM, ULPO_AEAD_BACKEND_AUTO, key, 16,
				       &aead), 0);
		memset(out, 0xaa, sizeof(out));
		memset(tag, 0xbb, sizeof(tag));
		ulpo_engine_fail_nth(1, -ENOMEM);
		{
			struct waited w = { .job = { .op = ULPO_JOB_SEAL, .aead = aead, .src = &iov,
						     .srccnt = 1, .dst = &oiov, .dstcnt = 1,
						     .tag = tag } };
			bool other = false;

			CHECK_EQ(run_waited(&w, &other), -ENOMEM);
			CHECK_EQ(other, mode == ULPO_ENGINE_ASYNC);
			CHECK_EQ(out[0], 0xaa);
			CHECK_EQ(out[8], 0xaa);
			CHECK_EQ(tag[15], 0xbb);
			/* Disarmed after firing. */
			CHECK_EQ(run_waited(&w, NULL), 0);
			CHECK(out[0] != 0xaa || out[1] != 0xaa);
		}
		ulpo_aead_free(aead);
		/* n = 0 disarms. */
		ulpo_engine_fail_nth(1, -EIO);
		ulpo_engine_fail_nth(0, -EIO);
		{
			struct waited w = { .job = { .op = ULPO_JOB_CRC32C, .src = &iov,
						     .srccnt = 1 } };

			CHECK_EQ(run_waited(&w, NULL), 0);
		}
		check_quiet_stats(&after);
		CHECK_EQ(after.failures - before.failures, 2);
		CHECK_EQ(after.submitted - before.submitted, 8);
	}

	/* Many threads: exactly one job of all fails. */
	{
		struct fail_thread ft[4];
		unsigned per = 400 / SCALE;
		int failed = 0;

		set_engine(ULPO_ENGINE_ASYNC, 2);
		ulpo_engine_fail_nth(per * 2 + 7, -EIO);
		for (int t = 0; t < 4; t++) {
			ft[t] = (struct fail_thread){ .jobs = per };
			CHECK_EQ(pthread_create(&ft[t].tid, NULL, fail_thread_main, &ft[t]), 0);
		}
		for (int t = 0; t < 4; t++) {
			pthread_join(ft[t].tid, NULL);
			CHECK(!ft[t].bad);
			failed += atomic_load(&ft[t].counted.failed);
		}
		CHECK_EQ(failed, 1);
		check_quiet_stats(NULL);
	}
	set_engine(ULPO_ENGINE_INLINE, 0);
}

/* ---- 5. reconfiguration under load ---- */

static void t_reconfig(void)
{
	const unsigned nthreads = 4, jobs = 4000 / SCALE;
	struct ulpo_engine_config cfg, got;
	struct ulpo_engine_stats before, after;
	struct submitter *subs;
	unsigned expected_failures;
	uint64_t rng = g_seed ^ 0x5;

	/* Settings read back; bad ones refused and ignored. */
	ulpo_engine_get_config(&cfg);
	cfg.mode = ULPO_ENGINE_ASYNC;
	cfg.workers = 3;
	cfg.max_records_in_flight = 12;
	cfg.max_bytes_in_flight = 1 << 20;
	CHECK_EQ(ulpo_engine_set_config(&cfg), 0);
	ulpo_engine_get_config(&got);
	CHECK_EQ(got.mode, ULPO_ENGINE_ASYNC);
	CHECK_EQ(got.workers, 3);
	CHECK_EQ(got.max_records_in_flight, 12);
	CHECK_EQ(got.max_bytes_in_flight, 1 << 20);
	cfg.mode = (enum ulpo_engine_mode)7;
	CHECK_EQ(ulpo_engine_set_config(&cfg), -EINVAL);
	cfg.mode = ULPO_ENGINE_INLINE;
	cfg.workers = ULPO_ENGINE_MAX_WORKERS + 1;
	CHECK_EQ(ulpo_engine_set_config(&cfg), -EINVAL);
	CHECK_EQ(ulpo_engine_set_config(NULL), -EINVAL);
	ulpo_engine_get_config(&got);
	CHECK_EQ(got.mode, ULPO_ENGINE_ASYNC);
	CHECK_EQ(got.workers, 3);
	cfg.workers = 0;
	cfg.mode = ULPO_ENGINE_ASYNC;
	CHECK_EQ(ulpo_engine_set_config(&cfg), 0);
	ulpo_engine_get_config(&got);
	CHECK_EQ(got.workers, (unsigned)sysconf(_SC_NPROCESSORS_ONLN));

	/* The pool follows the count: grows at once, shrinks as workers retire. */
	{
		struct waited w = { .job = { .op = ULPO_JOB_CRC32C } };

		set_engine(ULPO_ENGINE_ASYNC, 3);
		CHECK_EQ(run_waited(&w, NULL), 0);
		CHECK(wait_workers(3, 10));
		set_engine(ULPO_ENGINE_ASYNC, 1);
		CHECK(wait_workers(1, 10));
		set_engine(ULPO_ENGINE_ASYNC, 4);
		CHECK(wait_workers(4, 10));
		set_engine(ULPO_ENGINE_INLINE, 2);	/* inline: the pool stays, idle */
		CHECK(wait_workers(2, 10));
	}

	/* Mode and count switched at random while four threads keep jobs in flight. */
	subs = submitters_new(nthreads, jobs, g_seed ^ 0x55);
	set_engine(ULPO_ENGINE_ASYNC, 2);
	check_quiet_stats(&before);
	atomic_store(&nested_callbacks, 0);
	submitters_start(subs, nthreads);
	for (int i = 0; i < 50 || !all_finished(subs, nthreads); i++) {
		set_engine(t_rand(&rng) % 3 ? ULPO_ENGINE_ASYNC : ULPO_ENGINE_INLINE,
			   1 + (unsigned)(t_rand(&rng) % 4));
		usleep((useconds_t)(t_rand(&rng) % 2000));
	}
	expected_failures = submitters_check(subs, nthreads, false);
	CHECK_EQ(atomic_load(&nested_callbacks), 0);
	check_quiet_stats(&after);
	CHECK_EQ(after.submitted - before.submitted, (uint64_t)nthreads * jobs);
	CHECK_EQ(after.failures - before.failures, expected_failures);
	submitters_free(subs, nthreads);
	set_engine(ULPO_ENGINE_INLINE, 0);
}

/* ---- fork ---- */

static int child_main(void)
{
	static const uint8_t data[] = "123456789";
	struct iovec iov = { (void *)data, 9 };
	struct ulpo_engine_stats s;
	int bad = 0;

	/* Fresh counters, and workers started again for this process. */
	ulpo_engine_stats_get(&s);
	if (s.submitted != 0 || s.in_flight != 0)
		bad |= 1;
	for (int i = 0; i < 50; i++) {
		struct waited w = { .job = { .op = ULPO_JOB_CRC32C, .src = &iov, .srccnt = 1 } };
		bool other = false;

		if (run_waited(&w, &other) != 0 || w.job.crc != 0xE3069283 || !other)
			bad |= 2;
	}
	ulpo_engine_stats_get(&s);
	if (s.submitted != 50 || s.completed != 50)
		bad |= 4;
	if (count_workers() != 2)
		bad |= 8;
	return bad;
}

static void t_fork(void)
{
	struct submitter *subs = submitters_new(2, 400 / SCALE, g_seed ^ 0xf);
	int status = -1;
	pid_t pid;

	set_engine(ULPO_ENGINE_ASYNC, 2);
	/* Fork while other threads keep the workers busy. */
	submitters_start(subs, 2);
	usleep(2000);
	pid = fork();
	if (pid == 0)
		_exit(child_main());
	CHECK(pid > 0);
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	submitters_check(subs, 2, true);
	submitters_free(subs, 2);
	check_quiet_stats(NULL);
	set_engine(ULPO_ENGINE_INLINE, 0);
}

/* ---- environment (run by meson with the variables set) ---- */

static void t_env(void)
{
	struct ulpo_engine_config cfg;
	struct waited w = { .job = { .op = ULPO_JOB_CRC32C } };
	bool other = false;

	ulpo_engine_get_config(&cfg);
	CHECK_EQ(cfg.mode, ULPO_ENGINE_ASYNC);
	CHECK_EQ(cfg.workers, 3);
	CHECK_EQ(run_waited(&w, &other), 0);
	CHECK(other);
	CHECK(wait_workers(3, 10));
}

static void t_env_bad(void)
{
	struct ulpo_engine_config cfg;

	ulpo_engine_get_config(&cfg);
	CHECK_EQ(cfg.mode, ULPO_ENGINE_INLINE);
	CHECK_EQ(cfg.workers, (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
}

static const struct {
	const char *name;
	void (*fn)(void);
	bool only_when_named;
} tests[] = {
	{ "crc32c", t_crc32c, false },
	{ "async_many", t_async_many, false },
	{ "resubmit", t_resubmit, false },
	{ "fail_nth", t_fail_nth, false },
	{ "reconfig", t_reconfig, false },
	{ "fork", t_fork, false },
	{ "env", t_env, true },
	{ "env-bad", t_env_bad, true },
};

int main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : getenv("TEST_ONLY");
	int passed = 0, failed = 0;

	g_seed = getenv("TEST_SEED") ? strtoull(getenv("TEST_SEED"), NULL, 0) : 0x5eed1234;
	printf("seed 0x%llx\n", (unsigned long long)g_seed);
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		int before = t_failed_checks;
		double t0 = now();

		if (tests[i].only_when_named ? !only || strcmp(only, tests[i].name) != 0 :
					       only && !strstr(tests[i].name, only))
			continue;
		t_current = tests[i].name;
		tests[i].fn();
		if (t_failed_checks == before) {
			passed++;
			printf("ok   %s (%.2f s)\n", tests[i].name, now() - t0);
		} else {
			failed++;
			printf("FAIL %s\n", tests[i].name);
		}
		fflush(stdout);
	}
	/* Stats at the very end: nothing left in flight. */
	{
		struct ulpo_engine_stats s;

		ulpo_engine_stats_get(&s);
		printf("engine: %" PRIu64 " submitted, %" PRIu64 " completed, %" PRIu64
		       " in flight, queue high-water %" PRIu64 ", %" PRIu64 " failures\n",
		       s.submitted, s.completed, s.in_flight, s.queue_depth_max, s.failures);
		if (s.in_flight != 0)
			failed++;
	}
	printf("%d passed, %d failed, 0 skipped\n", passed, failed);
	return failed ? 1 : 0;
}
