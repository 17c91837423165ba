/* test_scale.c - many connections in one process.
 *  idle: 10,000 established TLS connections (both ends in this process, keys both ways),
 *        each having carried a request and a reply, then gone quiet (a read that found
 *        nothing): ulpo's heap per idle TLS socket, from mallinfo2 before and after, must
 *        be <= 4 KiB (record buffers are released when a connection goes quiet). Then every
 *        connection carries one more exchange, to show nothing was lost by the release.
 *  fair: 1,000 connections sending at once on the async engine, one sender thread each,
 *        for a few seconds: no connection's throughput below half the mean (a second
 *        window is measured before failing, for a thread kept off the CPUs a while).
 * Prints the measured figures; env SCALE_CONNS / FAIR_CONNS / FAIR_SECONDS override. */
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include "engine/engine.h"
#include "tls_helpers.h"

/* Sanitizers change scheduling and cost so much that throughput shares say nothing there:
 * such builds report the fairness figures without judging them. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

int t_failed_checks;
const char *t_current;

static size_t heap_used(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

/* Whether mallinfo2 sees this process's allocations (not under a sanitizer's allocator). */
static bool heap_visible(void)
{
	size_t before = heap_used();
	void *volatile p = malloc(1 << 20);
	bool seen = heap_used() >= before + (1 << 20);

	free(p);
	return seen;
}

static size_t env_or(const char *name, size_t dflt)
{
	const char *s = getenv(name);

	return s ? strtoul(s, NULL, 0) : dflt;
}

static int raise_nofile(size_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return -1;
	if (rl.rlim_cur >= need)
		return 0;
	rl.rlim_cur = need;
	if (rl.rlim_max < need)
		rl.rlim_max = need;
	return setrlimit(RLIMIT_NOFILE, &rl);
}

static int tls_keys(const struct variant *v, uint64_t seed, int fd, bool client)
{
	struct keys k;

	if (ulp(fd))
		return -1;
	keys_make(v, seed + !client, &k);
	if (ulpo_setsockopt(fd, SOL_TLS, TLS_TX, k.info, k.len))
		return -1;
	keys_make(v, seed + client, &k);
	return ulpo_setsockopt(fd, SOL_TLS, TLS_RX, k.info, k.len);
}

#define REQ_LEN 600
#define REP_LEN 1400

static void fill_msg(uint8_t *m, size_t len, uint32_t tag)
{
	memset(m, (int)(tag * 7 + len), len);
	memcpy(m, &tag, sizeof(tag));
}

/* The peer process: N connections to the listener, each announcing its index in clear
 * before TLS; then, in index order, reads a request and answers it, `rounds` times. */
static int peer(const struct variant *v, size_t n, int rounds, const struct sockaddr_in *a)
{
	int *fd = calloc(n, sizeof(int));
	uint8_t req[REQ_LEN], want[REQ_LEN], rep[REP_LEN];

	for (size_t i = 0; i < n; i++) {
		uint32_t idx = (uint32_t)i;

		fd[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fd[i] < 0 || connect(fd[i], (const void *)a, sizeof(*a)) ||
		    send(fd[i], &idx, sizeof(idx), 0) != sizeof(idx) ||
		    tls_keys(v, 2 * i, fd[i], true))
			return 1;
	}
	for (int r = 0; r < rounds; r++)
		for (size_t i = 0; i < n; i++) {
			uint32_t tag = (uint32_t)(i * 3 + (size_t)r);

			fill_msg(want, REQ_LEN, tag);
			fill_msg(rep, REP_LEN, ~tag);
			if (u_read_full(fd[i], req, REQ_LEN, 0) != REQ_LEN ||
			    memcmp(req, want, REQ_LEN) ||
			    ulpo_send(fd[i], rep, REP_LEN, 0) != REP_LEN)
				return 2;
		}
	/* The connections end from this process's side, after its last quiet read. */
	for (size_t i = 0; i < n; i++) {
		if (ulpo_recv(fd[i], req, 1, 0) != 0)
			return 3;
		ulpo_close(fd[i]);
	}
	return 0;
}

/* One request and its reply on connection i, then a read that finds nothing: the
 * connection has gone quiet. */
static int exchange(int fd, size_t i, int round)
{
	uint32_t tag = (uint32_t)(i * 3 + (size_t)round);
	uint8_t req[REQ_LEN], rep[REP_LEN], got[REP_LEN];

	fill_msg(req, REQ_LEN, tag);
	fill_msg(rep, REP_LEN, ~tag);
	ssize_t r;

	if (ulpo_send(fd, req, REQ_LEN, 0) != REQ_LEN)
		return fprintf(stderr, "conn %zu round %d: send: %s\n", i, round,
			       strerror(errno)), -1;
	r = u_read_full(fd, got, REP_LEN, 0);
	if (r != REP_LEN || memcmp(got, rep, REP_LEN))
		return fprintf(stderr, "conn %zu round %d: reply: %zd bytes%s (%s)\n", i, round,
			       r, r == REP_LEN ? ", wrong" : "", strerror(errno)), -1;
	r = ulpo_recv(fd, got, 1, MSG_DONTWAIT);
	if (r != -1 || errno != EAGAIN)
		return fprintf(stderr, "conn %zu round %d: quiet read: %zd (%s)\n", i, round,
			       r, strerror(errno)), -1;
	return 0;
}

/* 10,000 connections held by this process, their peers in a child process (each process
 * then needs one descriptor per connection). */
static void t_idle(size_t n)
{
	const struct variant *v = &variants[8];	/* TLS 1.3 AES-GCM-128 */
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int *fd = calloc(n, sizeof(int)), l = socket(AF_INET, SOCK_STREAM, 0), st = -1;
	size_t base = 0, after, bad = 0;
	pid_t pid;
	double per;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(l >= 0 && !bind(l, (void *)&a, sizeof(a)) && !listen(l, 4096) &&
	      !getsockname(l, (void *)&a, &al));
	pid = fork();
	if (pid == 0)
		_exit(peer(v, n, 2, &a));
	CHECK(pid > 0);
	/* Whatever a first connection allocates once per process is not per connection. */
	ulpo_engine_stats_get(&(struct ulpo_engine_stats){ 0 });
	for (size_t i = 0; i < n; i++) {
		uint32_t idx;
		int f = accept(l, NULL, NULL);

		if (f < 0 || read_full(f, &idx, sizeof(idx)) != sizeof(idx) || idx >= n) {
			bad++;
			break;
		}
		fd[idx] = f;
		if (i == 0)
			base = heap_used();
		if (tls_keys(v, 2 * idx, f, false))
			bad++;
	}
	CHECK_EQ(bad, 0);
	if (bad)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (exchange(fd[i], i, 0))
			bad++;
	CHECK_EQ(bad, 0);
	after = heap_used();
	per = ((double)after - (double)base) / (double)n;
	if (heap_visible()) {
		printf("idle: %zu TLS connections in this process, heap %+.2f MiB, %.0f bytes per "
		       "idle connection (limit 4096)\n", n,
		       ((double)after - (double)base) / 1048576.0, per);
		CHECK(per <= 4096);
	} else {
		printf("idle: %zu TLS connections; heap not measurable under this allocator "
		       "(sanitizer build): only the exchanges are checked\n", n);
	}
	/* Quiet connections wake up and carry on. */
	for (size_t i = 0; i < n; i++)
		if (exchange(fd[i], i, 1))
			bad++;
	CHECK_EQ(bad, 0);
out:
	for (size_t i = 0; i < n; i++)
		ulpo_close(fd[i]);
	close(l);
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	free(fd);
}

/* ---- fairness: many connections sending at once through the async engine ---- */

#define FAIR_RECEIVERS 4
#define FAIR_CHUNK 16384

struct fair {
	size_t n;
	int *c, *s;
	_Atomic uint64_t *got;		/* plaintext bytes received per connection */
	atomic_bool stop_send, stop_recv;
	atomic_int senders_failed;
};

struct fair_arg {
	struct fair *f;
	size_t i;
};

static void *fair_sender(void *arg)
{
	struct fair_arg *a = arg;
	static const uint8_t buf[FAIR_CHUNK];

	while (!atomic_load(&a->f->stop_send))
		if (ulpo_send(a->f->c[a->i], buf, sizeof(buf), 0) != (ssize_t)sizeof(buf)) {
			atomic_fetch_add(&a->f->senders_failed, 1);
			break;
		}
	return NULL;
}

/* Receiver k drains connections k, k + R, k + 2R, ... as poll reports them. */
static void *fair_receiver(void *arg)
{
	struct fair_arg *a = arg;
	struct fair *f = a->f;
	size_t m = 0;
	struct pollfd *p = calloc(f->n / FAIR_RECEIVERS + 1, sizeof(*p));
	size_t *idx = calloc(f->n / FAIR_RECEIVERS + 1, sizeof(*idx));
	static _Thread_local uint8_t buf[65536];

	for (size_t i = a->i; i < f->n; i += FAIR_RECEIVERS) {
		p[m].fd = f->s[i];
		p[m].events = POLLIN;
		idx[m++] = i;
	}
	while (!atomic_load(&f->stop_recv)) {
		if (ulpo_poll(p, (nfds_t)m, 100) <= 0)
			continue;
		for (size_t j = 0; j < m; j++) {
			ssize_t r;

			if (!(p[j].revents & POLLIN))
				continue;
			/* Up to 256 KiB per turn: more than any one sender has in
			 * flight, so what each gets is up to its sender and the engine,
			 * yet no busy pair can keep a receiver to itself. */
			for (int k = 0; k < 4; k++) {
				r = ulpo_recv(p[j].fd, buf, sizeof(buf), MSG_DONTWAIT);
				if (r <= 0)
					break;
				atomic_fetch_add_explicit(&f->got[idx[j]], (uint64_t)r,
							  memory_order_relaxed);
			}
		}
	}
	free(p);
	free(idx);
	return NULL;
}

static void snapshot(const struct fair *f, uint64_t *out)
{
	for (size_t i = 0; i < f->n; i++)
		out[i] = atomic_load_explicit(&f->got[i], memory_order_relaxed);
}

static double mono(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void t_fair(size_t n, double seconds)
{
	const struct variant *v = &variants[8];	/* TLS 1.3 AES-GCM-128 */
	struct fair f = { .n = n };
	struct fair_arg *args = calloc(n + FAIR_RECEIVERS, sizeof(*args));
	pthread_t *snd = calloc(n, sizeof(pthread_t)), rcv[FAIR_RECEIVERS];
	uint64_t *a0 = calloc(n, 8), *a1 = calloc(n, 8);
	struct ulpo_engine_config cfg, saved;
	double mean = 0, lo = 1e300, hi = 0, sq = 0;
	pthread_attr_t attr;
	struct timespec ts = { .tv_sec = (time_t)seconds,
			       .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9) };
	size_t below = 0;
	double t0, elapsed;

	f.c = calloc(n, sizeof(int));
	f.s = calloc(n, sizeof(int));
	f.got = calloc(n, sizeof(*f.got));
	ulpo_engine_get_config(&saved);
	cfg = saved;
	cfg.mode = ULPO_ENGINE_ASYNC;
	cfg.workers = 2;
	CHECK(ulpo_engine_set_config(&cfg) == 0);
	for (size_t i = 0; i < n; i++)
		CHECK(tls_pair(v, 1000 + 2 * i, &f.c[i], &f.s[i], false) == 0);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 128 << 10);
	for (size_t k = 0; k < FAIR_RECEIVERS; k++) {
		args[n + k] = (struct fair_arg){ &f, k };
		pthread_create(&rcv[k], NULL, fair_receiver, &args[n + k]);
	}
	for (size_t i = 0; i < n; i++) {
		args[i] = (struct fair_arg){ &f, i };
		CHECK(pthread_create(&snd[i], &attr, fair_sender, &args[i]) == 0);
	}
	nanosleep(&(struct timespec){ .tv_nsec = 300 * 1000 * 1000 }, NULL);	/* ramp up */
	/* Shares over a few seconds on a small shared VM can dip when one of 1,000 sender
	 * threads is kept off the CPUs for a while by the OS, not by the engine. So the
	 * window grows (3 windows, each measured from the same start) before the test
	 * fails: a hiccup is diluted, a connection the engine starves stays starved. */
	snapshot(&f, a0);
	t0 = mono();
	for (int window = 1; window <= 3; window++) {
		below = 0;
		mean = sq = hi = 0;
		lo = 1e300;
		nanosleep(&ts, NULL);
		/* A busy machine gets more time: every connection should have had the chance
		 * to move a few dozen records before shares are compared (up to 4 windows). */
		for (int extra = 0; extra < 3; extra++) {
			uint64_t sum = 0;

			snapshot(&f, a1);
			for (size_t i = 0; i < n; i++)
				sum += a1[i] - a0[i];
			if (sum / n >= 32 * FAIR_CHUNK)
				break;
			nanosleep(&ts, NULL);
		}
		snapshot(&f, a1);
		elapsed = mono() - t0;
		for (size_t i = 0; i < n; i++) {
			double x = (double)(a1[i] - a0[i]);

			mean += x / (double)n;
			sq += x * x;
			lo = x < lo ? x : lo;
			hi = x > hi ? x : hi;
		}
		for (size_t i = 0; i < n; i++)
			below += (double)(a1[i] - a0[i]) < mean / 2;
		printf("fair: %zu connections, async engine, window %d, %.1f s: total %.1f MB/s, "
		       "per connection mean %.2f MB/s, min %.2f (%.2f x mean), max %.2f (%.2f x "
		       "mean), Jain's index %.3f, %zu below half the mean\n", n, window, elapsed,
		       mean * (double)n / elapsed / 1e6, mean / elapsed / 1e6, lo / elapsed / 1e6,
		       mean > 0 ? lo / mean : 0, hi / elapsed / 1e6, mean > 0 ? hi / mean : 0,
		       sq > 0 ? (mean * (double)n) * (mean * (double)n) / ((double)n * sq) : 0,
		       below);
		fflush(stdout);
		if (!below)
			break;
	}
	atomic_store(&f.stop_send, true);
	for (size_t i = 0; i < n; i++)
		pthread_join(snd[i], NULL);
	atomic_store(&f.stop_recv, true);
	for (size_t k = 0; k < FAIR_RECEIVERS; k++)
		pthread_join(rcv[k], NULL);
	CHECK_EQ(atomic_load(&f.senders_failed), 0);
	CHECK(mean > 0);
#ifndef SANITIZED
	CHECK_EQ(below, 0);
#endif
	for (size_t i = 0; i < n; i++)
		close_pair(f.c[i], f.s[i]);
	CHECK(ulpo_engine_set_config(&saved) == 0);
	free(f.c);
	free(f.s);
	free(f.got);
	free(args);
	free(snd);
	free(a0);
	free(a1);
}

int main(void)
{
	size_t n = env_or("SCALE_CONNS", 10000), nf = env_or("FAIR_CONNS", 1000);
	double secs = (double)env_or("FAIR_SECONDS", 3);
	int passed = 0, failed = 0, before;

	signal(SIGPIPE, SIG_IGN);
	if (raise_nofile((n > 2 * nf ? n : 2 * nf) + 64)) {
		printf("skip: cannot raise RLIMIT_NOFILE to %zu\n", (n > 2 * nf ? n : 2 * nf) + 64);
		return 77;
	}
	for (int t = 0; t < 2; t++) {
		before = t_failed_checks;
		t_current = t ? "fair" : "idle";
		if (t)
			t_fair(nf, secs);
		else
			t_idle(n);
		t_tally(before, t_current, &passed, &failed);
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
