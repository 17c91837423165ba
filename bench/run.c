/* run.c - one run of the TLS benchmark: N loopback connections, each with a sender thread
 * and a receiver thread, started together behind one barrier. Fixed-size writes, each one
 * block stamped with its number; the receiver either checks every block (full TLS) or
 * drops the raw bytes (discard). Reports the aggregate rate, the slowest stream's share of
 * the mean, CPU per GB on each side and how busy the rest of the machine was. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ulpo/ulpo.h>

#include "bench.h"

#define CLOCK_EVERY 64			/* writes between clock reads in --seconds mode */
#define BLOCK_MAGIC 0x756c706f62656e63ull	/* "ulpobenc" */
#define DISCARD_LEN (1u << 20)		/* what a discarding receiver asks for per recv */
#define TLS13_OVERHEAD 22		/* per record: header 5, inner type 1, tag 16 */

struct side {
	struct conn c;
	struct timespec t0, t1;		/* the timed part */
	struct rusage ru0, ru1;		/* ru1: also the thread's whole life */
};

struct stream {
	const struct bench_run *p;
	pthread_barrier_t *start;
	struct side snd, rcv;
	uint8_t *sbuf, *rbuf;
	uint64_t limit;			/* blocks to send */
	uint64_t sent, got;		/* blocks */
	uint64_t wire;			/* bytes a discarding receiver read */
};

static double ts_diff(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) * 1e-9;
}

static double tv_sec(const struct timeval *t)
{
	return (double)t->tv_sec + (double)t->tv_usec * 1e-6;
}

static double ru_diff(const struct timeval *a, const struct timeval *b)
{
	return tv_sec(b) - tv_sec(a);
}

/* ---- the data and its check ---- */

/* Each write is one block; the block number and its complement at both ends, so a lost,
 * repeated, reordered or torn block is seen without reading the whole block. */
static void block_stamp(uint8_t *b, size_t size, uint64_t seq)
{
	uint64_t head = seq ^ BLOCK_MAGIC, tail = ~seq;

	memcpy(b, &head, 8);
	memcpy(b + size - 8, &tail, 8);
}

static void block_check(const struct stream *s, uint64_t seq)
{
	const struct bench_run *p = s->p;
	uint64_t head, tail;

	memcpy(&head, s->rbuf, 8);
	memcpy(&tail, s->rbuf + p->size - 8, 8);
	if (head != (seq ^ BLOCK_MAGIC) || tail != ~seq)
		die("%s: block %llu: bad sequence stamp (head %016llx tail %016llx)",
		    p->mode->name, (unsigned long long)seq, (unsigned long long)head,
		    (unsigned long long)tail);
	if (p->verify_full && memcmp(s->rbuf + 8, p->data + 8, p->size - 16))
		die("%s: block %llu: payload differs", p->mode->name, (unsigned long long)seq);
}

/* ---- the two ends ---- */

static void side_begin(struct stream *s, struct side *d)
{
	pthread_barrier_wait(s->start);
	getrusage(RUSAGE_THREAD, &d->ru0);
	clock_gettime(CLOCK_MONOTONIC, &d->t0);
}

static void side_finish(struct side *d)
{
	clock_gettime(CLOCK_MONOTONIC, &d->t1);
	getrusage(RUSAGE_THREAD, &d->ru1);
}

static void *sender(void *arg)
{
	struct stream *s = arg;
	const struct bench_run *p = s->p;
	struct side *d = &s->snd;
	struct timespec now;
	uint64_t seq = 0;

	if (p->mode->start)
		p->mode->start(&d->c, true);
	side_begin(s, d);
	for (; seq < s->limit; seq++) {
		if (p->seconds && seq % CLOCK_EVERY == 0) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (ts_diff(&d->t0, &now) >= p->seconds)
				break;
		}
		block_stamp(s->sbuf, p->size, seq);
		for (size_t off = 0; off < p->size;) {
			ssize_t n = p->mode->send(&d->c, s->sbuf + off, p->size - off);

			if (n <= 0)
				die("%s send: %s", p->mode->name, strerror(errno));
			off += (size_t)n;
		}
	}
	p->mode->end(&d->c);
	side_finish(d);
	s->sent = seq;
	return NULL;
}

/* Reads what TCP has and throws it away: the same receiver for every mode, so the
 * sender's side alone is measured. */
static void discard(struct stream *s)
{
	for (;;) {
		ssize_t n = recv(s->rcv.c.fd, NULL, DISCARD_LEN, MSG_TRUNC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("%s discard recv: %s", s->p->mode->name, strerror(errno));
		if (n == 0)
			return;
		s->wire += (uint64_t)n;
	}
}

static void *receiver(void *arg)
{
	struct stream *s = arg;
	const struct bench_run *p = s->p;
	struct side *d = &s->rcv;
	uint64_t seq = 0;
	size_t fill = 0;

	if (p->mode->start)
		p->mode->start(&d->c, false);
	side_begin(s, d);
	if (p->rx == BENCH_RX_DISCARD) {
		discard(s);
		side_finish(d);
		return NULL;
	}
	for (;;) {
		ssize_t n = p->mode->recv(&d->c, s->rbuf + fill, p->size - fill);

		if (n < 0)
			die("%s recv: %s", p->mode->name, strerror(errno));
		if (n == 0)
			break;
		fill += (size_t)n;
		if (fill == p->size) {
			block_check(s, seq++);
			fill = 0;
		}
	}
	side_finish(d);
	if (fill)
		die("%s: stream ended inside block %llu", p->mode->name, (unsigned long long)seq);
	s->got = seq;
	return NULL;
}

/* ---- machine load ---- */

/* Seconds of CPU the whole machine spent busy (all CPUs), from /proc/stat. */
static double machine_busy(void)
{
	unsigned long long u, n, sy, id, io, irq, sirq, st = 0;
	FILE *f = fopen("/proc/stat", "re");
	int got;

	if (!f)
		return 0;
	got = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &u, &n, &sy, &id, &io,
		     &irq, &sirq, &st);
	fclose(f);
	if (got < 7)
		return 0;
	return (double)(u + n + sy + irq + sirq + st) / (double)sysconf(_SC_CLK_TCK);
}

/* ---- engine ---- */

static struct ulpo_engine_config engine_base;
static bool engine_base_read;

void bench_engine_base(struct ulpo_engine_config *ret_cfg)
{
	if (!engine_base_read) {
		ulpo_engine_get_config(&engine_base);
		engine_base_read = true;
	}
	*ret_cfg = engine_base;
}

/* The mode's engine, for jobs submitted from now on; the in-flight bounds stay as the
 * environment set them (sockets read them at key install). */
static void engine_apply(const struct bench_mode *m)
{
	struct ulpo_engine_config cfg;
	int err;

	if (!m->ulpo)
		return;
	bench_engine_base(&cfg);
	cfg.mode = m->engine;
	if (m->engine == ULPO_ENGINE_ASYNC)
		cfg.workers = m->workers;
	err = ulpo_engine_set_config(&cfg);
	if (err)
		die("%s: ulpo_engine_set_config: %s", m->name, strerror(-err));
}

/* ---- one run ---- */

static void streams_open(const struct bench_run *p, struct stream *ss, pthread_barrier_t *b)
{
	size_t bufsz = (p->size + 4095) & ~(size_t)4095;

	for (unsigned int i = 0; i < p->streams; i++) {
		struct stream *s = &ss[i];

		s->p = p;
		s->start = b;
		s->limit = p->seconds ? UINT64_MAX : p->bytes / p->streams / p->size;
		/* Page-aligned, as an application's buffers usually are; each sender stamps
		 * its own copy of the random payload. */
		s->sbuf = aligned_alloc(4096, bufsz);
		s->rbuf = aligned_alloc(4096, bufsz);
		if (!s->sbuf || !s->rbuf)
			die("out of memory");
		memcpy(s->sbuf, p->data, p->size);
		memset(s->rbuf, 0, p->size);
		if (bench_tcp_pair(&s->snd.c.fd, &s->rcv.c.fd))
			die("loopback pair: %s", strerror(errno));
		s->snd.c.ci = s->rcv.c.ci = p->ci;
		if (p->mode->setup)
			p->mode->setup(&s->snd.c, &s->rcv.c, p->rx);
	}
}

/* Ciphertext a discarding receiver must have read, where it is known exactly. */
static void check_wire(const struct bench_run *p, const struct stream *s, uint64_t recs)
{
	uint64_t plain = s->sent * p->size, want = plain;

	if (p->mode->ulpo)
		want += recs * TLS13_OVERHEAD;
	else if (p->mode->ossl) {
		/* Plus OpenSSL's own records (close_notify); with read-ahead its handshake
		 * may have taken the first records off the socket. */
		if (!p->read_ahead && s->wire < plain)
			die("%s: %llu bytes sent, only %llu on the wire", p->mode->name,
			    (unsigned long long)plain, (unsigned long long)s->wire);
		return;
	}
	if (s->wire != want)
		die("%s: %llu bytes on the wire, expected %llu", p->mode->name,
		    (unsigned long long)s->wire, (unsigned long long)want);
}

void bench_run(const struct bench_run *p, struct bench_result *ret)
{
	unsigned int n = p->streams;
	struct stream *ss = calloc(n, sizeof(*ss));
	pthread_t *th = calloc(2 * (size_t)n, sizeof(*th));
	uint64_t st0[ULPO_STAT_MAX], st1[ULPO_STAT_MAX], blocks = 0;
	uint64_t rpb = (p->size + ULPO_TLS_MAX_PAYLOAD - 1) / ULPO_TLS_MAX_PAYLOAD;
	double gb, busy0, wall, rate_sum = 0, rate_min = 0;
	double threads_user = 0, threads_sys = 0, worker_user, worker_sys;
	struct timespec w0, w1, first, last;
	struct rusage self0, self1;
	pthread_barrier_t start;

	if (!ss || !th)
		die("out of memory");
	engine_apply(p->mode);
	streams_open(p, ss, &start);
	ulpo_stats_get(st0);
	pthread_barrier_init(&start, NULL, 2 * n);
	/* Whatever else runs on the machine meanwhile is reported: on a shared VM it is
	 * the usual reason one round differs from the next. */
	busy0 = machine_busy();
	getrusage(RUSAGE_SELF, &self0);
	clock_gettime(CLOCK_MONOTONIC, &w0);
	for (unsigned int i = 0; i < n; i++)
		if (pthread_create(&th[2 * i], NULL, receiver, &ss[i]) ||
		    pthread_create(&th[2 * i + 1], NULL, sender, &ss[i]))
			die("pthread_create");
	for (unsigned int i = 0; i < 2 * n; i++)
		pthread_join(th[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &w1);
	getrusage(RUSAGE_SELF, &self1);
	ret->other = (machine_busy() - busy0 - ru_diff(&self0.ru_utime, &self1.ru_utime) -
		      ru_diff(&self0.ru_stime, &self1.ru_stime)) /
		     (ts_diff(&w0, &w1) * (double)sysconf(_SC_NPROCESSORS_ONLN));
	if (ret->other < 0)
		ret->other = 0;
	pthread_barrier_destroy(&start);
	ulpo_stats_get(st1);

	ret->snd_cpu = ret->snd_sys = ret->rcv_cpu = ret->rcv_sys = 0;
	first = ss[0].snd.t0;
	last = ss[0].rcv.t1;
	for (unsigned int i = 0; i < n; i++) {
		struct stream *s = &ss[i];
		double rate;

		p->mode->close(&s->snd.c);
		p->mode->close(&s->rcv.c);
		if (p->rx == BENCH_RX_TLS && s->got != s->sent)
			die("%s: stream %u: sent %llu blocks, received %llu", p->mode->name, i,
			    (unsigned long long)s->sent, (unsigned long long)s->got);
		if (p->rx == BENCH_RX_DISCARD)
			check_wire(p, s, s->sent * rpb);
		if (!s->sent)
			die("%s: stream %u sent nothing", p->mode->name, i);
		blocks += s->sent;
		if (ts_diff(&s->snd.t0, &first) > 0)
			first = s->snd.t0;
		if (ts_diff(&last, &s->rcv.t1) > 0)
			last = s->rcv.t1;
		/* Each stream's rate from its first write to its receiver's end of stream. */
		rate = (double)(s->sent * p->size) / ts_diff(&s->snd.t0, &s->rcv.t1);
		rate_sum += rate;
		rate_min = i && rate_min < rate ? rate_min : rate;
		ret->snd_cpu += ru_diff(&s->snd.ru0.ru_utime, &s->snd.ru1.ru_utime);
		ret->snd_sys += ru_diff(&s->snd.ru0.ru_stime, &s->snd.ru1.ru_stime);
		ret->rcv_cpu += ru_diff(&s->rcv.ru0.ru_utime, &s->rcv.ru1.ru_utime);
		ret->rcv_sys += ru_diff(&s->rcv.ru0.ru_stime, &s->rcv.ru1.ru_stime);
		threads_user += tv_sec(&s->snd.ru1.ru_utime) + tv_sec(&s->rcv.ru1.ru_utime);
		threads_sys += tv_sec(&s->snd.ru1.ru_stime) + tv_sec(&s->rcv.ru1.ru_stime);
		free(s->sbuf);
		free(s->rbuf);
	}

	/* ulpo must have carried the data as records of the write size (up to 2^14). */
	if (p->mode->ulpo) {
		uint64_t tx = st1[ULPO_STAT_TX_RECORDS] - st0[ULPO_STAT_TX_RECORDS];
		uint64_t rx = st1[ULPO_STAT_RX_RECORDS] - st0[ULPO_STAT_RX_RECORDS];
		uint64_t recs = blocks * rpb;

		if (tx != recs || rx != (p->rx == BENCH_RX_TLS ? recs : 0))
			die("%s: %llu tx / %llu rx records, expected %llu", p->mode->name,
			    (unsigned long long)tx, (unsigned long long)rx, (unsigned long long)recs);
	}

	gb = (double)(blocks * p->size) / 1e9;
	wall = ts_diff(&first, &last);
	ret->gbps = gb / wall;
	ret->fairness = rate_min / (rate_sum / n);
	/* The process's CPU beyond the bench threads' is the engine's workers (the main
	 * thread only waits): it is the senders' work, done elsewhere. */
	worker_user = ru_diff(&self0.ru_utime, &self1.ru_utime) - threads_user;
	worker_sys = ru_diff(&self0.ru_stime, &self1.ru_stime) - threads_sys;
	ret->snd_cpu += worker_user > 0 ? worker_user : 0;
	ret->snd_sys += worker_sys > 0 ? worker_sys : 0;
	ret->snd_cpu = (ret->snd_cpu + ret->snd_sys) / gb;
	ret->snd_sys /= gb;
	ret->rcv_cpu = (ret->rcv_cpu + ret->rcv_sys) / gb;
	ret->rcv_sys /= gb;
	free(ss);
	free(th);
}
