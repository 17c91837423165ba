/* tls_bench.c - one loopback TCP stream, sender thread -> receiver thread, fixed-size
 * writes: plain TCP vs ulpo (kTLS interface, keys installed both ends) vs OpenSSL
 * SSL_write/SSL_read after a real TLS 1.3 handshake, interleaved in rounds, medians. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include <ulpo/ulpo.h>

#include "bench.h"

#define MAX_ROUNDS 64
#define MAX_MODES 8
#define CLOCK_EVERY 64			/* writes between clock reads in --seconds mode */
#define OTHER_WARN 0.10		/* machine busy outside us: flag the round */
#define BLOCK_MAGIC 0x756c706f62656e63ull	/* "ulpobenc" */

/* ---- options ---- */

struct opts {
	uint64_t bytes;			/* per run, when seconds == 0 */
	double seconds;
	size_t size;			/* bytes per application write */
	int rounds;
	int retries;			/* of a run disturbed by other load */
	bool verify_full;
	bool read_ahead;		/* OpenSSL: read several records per recv */
	const struct bench_cipher *cipher;
	const char *modes;
};

static struct opts opt = {
	.bytes = 2ull << 30,
	.size = 16384,
	.rounds = 3,
	.retries = 2,
	.modes = "tcp,ulpo,openssl",
};

void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("tls_bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	ERR_print_errors_fp(stderr);
	exit(1);
}

/* ---- one run: a connected pair, a sender and a receiver ---- */

struct side {
	struct conn c;
	struct timespec t0, t1;
	struct rusage ru0, ru1;
	uint64_t bytes;
};

struct run {
	const struct bench_mode *mode;
	struct side snd, rcv;
	pthread_barrier_t start;
	uint8_t *sbuf, *rbuf;
};

/* ---- the data and its check ---- */

/* Each write is one block; the block number and its complement at both ends, so a lost,
 * repeated, reordered or torn block is seen without reading the whole block. */
static void block_stamp(uint8_t *b, uint64_t seq)
{
	uint64_t head = seq ^ BLOCK_MAGIC, tail = ~seq;

	memcpy(b, &head, 8);
	memcpy(b + opt.size - 8, &tail, 8);
}

static void block_check(const uint8_t *b, const uint8_t *ref, uint64_t seq)
{
	uint64_t head, tail;

	memcpy(&head, b, 8);
	memcpy(&tail, b + opt.size - 8, 8);
	if (head != (seq ^ BLOCK_MAGIC) || tail != ~seq)
		die("block %llu: bad sequence stamp (head %016llx tail %016llx)",
		    (unsigned long long)seq, (unsigned long long)head, (unsigned long long)tail);
	if (opt.verify_full && memcmp(b + 8, ref + 8, opt.size - 16))
		die("block %llu: payload differs", (unsigned long long)seq);
}

static double ts_diff(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) * 1e-9;
}

static double ru_sec(const struct timeval *a, const struct timeval *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_usec - a->tv_usec) * 1e-6;
}

static void side_begin(struct run *r, struct side *s)
{
	pthread_barrier_wait(&r->start);
	getrusage(RUSAGE_THREAD, &s->ru0);
	clock_gettime(CLOCK_MONOTONIC, &s->t0);
}

static void side_finish(struct side *s)
{
	clock_gettime(CLOCK_MONOTONIC, &s->t1);
	getrusage(RUSAGE_THREAD, &s->ru1);
}

static void *sender(void *arg)
{
	struct run *r = arg;
	struct side *s = &r->snd;
	uint64_t seq = 0, limit = opt.seconds ? UINT64_MAX : opt.bytes / opt.size;
	struct timespec now;

	if (r->mode->start)
		r->mode->start(&s->c, true);
	side_begin(r, s);
	for (; seq < limit; seq++) {
		if (opt.seconds && seq % CLOCK_EVERY == 0) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (ts_diff(&s->t0, &now) >= opt.seconds)
				break;
		}
		block_stamp(r->sbuf, seq);
		for (size_t off = 0; off < opt.size;) {
			ssize_t n = r->mode->send(&s->c, r->sbuf + off, opt.size - off);

			if (n <= 0)
				die("%s send: %s", r->mode->name, strerror(errno));
			off += (size_t)n;
		}
	}
	r->mode->end(&s->c);
	side_finish(s);
	s->bytes = seq * opt.size;
	return NULL;
}

static void *receiver(void *arg)
{
	struct run *r = arg;
	struct side *s = &r->rcv;
	uint64_t seq = 0;
	size_t fill = 0;

	if (r->mode->start)
		r->mode->start(&s->c, false);
	side_begin(r, s);
	for (;;) {
		ssize_t n = r->mode->recv(&s->c, r->rbuf + fill, opt.size - fill);

		if (n < 0)
			die("%s recv: %s", r->mode->name, strerror(errno));
		if (n == 0)
			break;
		fill += (size_t)n;
		if (fill == opt.size) {
			block_check(r->rbuf, r->sbuf, seq++);
			fill = 0;
		}
	}
	side_finish(s);
	if (fill)
		die("%s: stream ended inside block %llu", r->mode->name, (unsigned long long)seq);
	s->bytes = seq * opt.size;
	return NULL;
}

struct result {
	double gbps, snd_cpu, snd_sys, rcv_cpu, rcv_sys;	/* cpu: seconds per GB */
	double other;		/* share of all CPUs busy outside this process */
};

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

static double self_cpu(void)
{
	struct rusage ru;
	struct timeval z = { 0 };

	getrusage(RUSAGE_SELF, &ru);
	return ru_sec(&z, &ru.ru_utime) + ru_sec(&z, &ru.ru_stime);
}

static void run_one(const struct bench_mode *m, uint8_t *sbuf, uint8_t *rbuf, struct result *res)
{
	struct run r = { .mode = m, .sbuf = sbuf, .rbuf = rbuf };
	uint64_t st0[ULPO_STAT_MAX], st1[ULPO_STAT_MAX];
	struct timespec w0, w1;
	double gb, busy0, self0;
	pthread_t ts, tr;

	if (bench_tcp_pair(&r.snd.c.fd, &r.rcv.c.fd))
		die("loopback pair: %s", strerror(errno));
	if (m->setup)
		m->setup(&r.snd.c, &r.rcv.c);
	ulpo_stats_get(st0);
	pthread_barrier_init(&r.start, NULL, 2);
	/* Whatever else runs on the machine meanwhile is reported: on a shared VM it is
	 * the usual reason one round differs from the next. */
	busy0 = machine_busy();
	self0 = self_cpu();
	clock_gettime(CLOCK_MONOTONIC, &w0);
	if (pthread_create(&tr, NULL, receiver, &r) || pthread_create(&ts, NULL, sender, &r))
		die("pthread_create");
	pthread_join(ts, NULL);
	pthread_join(tr, NULL);
	clock_gettime(CLOCK_MONOTONIC, &w1);
	res->other = (machine_busy() - busy0 - (self_cpu() - self0)) /
		     (ts_diff(&w0, &w1) * (double)sysconf(_SC_NPROCESSORS_ONLN));
	if (res->other < 0)
		res->other = 0;
	pthread_barrier_destroy(&r.start);
	ulpo_stats_get(st1);
	m->close(&r.snd.c);
	m->close(&r.rcv.c);

	if (r.snd.bytes != r.rcv.bytes)
		die("%s: sent %llu bytes, received %llu", m->name,
		    (unsigned long long)r.snd.bytes, (unsigned long long)r.rcv.bytes);
	if (!r.rcv.bytes)
		die("%s: nothing sent", m->name);
	/* ulpo must have carried the data as records of the write size (up to 2^14). */
	if (m->ulpo) {
		uint64_t recs = r.rcv.bytes / opt.size *
				((opt.size + ULPO_TLS_MAX_PAYLOAD - 1) / ULPO_TLS_MAX_PAYLOAD);

		if (st1[ULPO_STAT_TX_RECORDS] - st0[ULPO_STAT_TX_RECORDS] != recs ||
		    st1[ULPO_STAT_RX_RECORDS] - st0[ULPO_STAT_RX_RECORDS] != recs)
			die("%s: %llu tx / %llu rx records, expected %llu", m->name,
			    (unsigned long long)(st1[ULPO_STAT_TX_RECORDS] - st0[ULPO_STAT_TX_RECORDS]),
			    (unsigned long long)(st1[ULPO_STAT_RX_RECORDS] - st0[ULPO_STAT_RX_RECORDS]),
			    (unsigned long long)recs);
	}
	gb = (double)r.rcv.bytes / 1e9;
	/* Wall time from the sender's first write to the receiver's end of stream. */
	res->gbps = gb / ts_diff(&r.snd.t0, &r.rcv.t1);
	res->snd_sys = ru_sec(&r.snd.ru0.ru_stime, &r.snd.ru1.ru_stime) / gb;
	res->snd_cpu = ru_sec(&r.snd.ru0.ru_utime, &r.snd.ru1.ru_utime) / gb + res->snd_sys;
	res->rcv_sys = ru_sec(&r.rcv.ru0.ru_stime, &r.rcv.ru1.ru_stime) / gb;
	res->rcv_cpu = ru_sec(&r.rcv.ru0.ru_utime, &r.rcv.ru1.ru_utime) / gb + res->rcv_sys;
}

/* ---- driver ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(const struct result *rs, int n, size_t field)
{
	double v[MAX_ROUNDS];

	for (int i = 0; i < n; i++)
		v[i] = *(const double *)((const uint8_t *)&rs[i] + field);
	qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint64_t parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (end == s || *end || !v)
		die("bad size '%s'", s);
	return v;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tls_bench [options]\n"
		"  -m, --modes LIST    comma-separated, in order per round: tcp, ulpo, ulpo-nopad,\n"
		"                      openssl (default tcp,ulpo,openssl)\n"
		"  -c, --cipher NAME   aes128gcm (default), aes256gcm, aes128ccm, chacha20, sm4gcm,\n"
		"                      sm4ccm; TLS 1.3 always (openssl has no SM4 suites)\n"
		"  -b, --bytes N       bytes per run, K/M/G suffixes (default 2G)\n"
		"  -t, --seconds S     run for S seconds instead of a byte count\n"
		"  -s, --size N        bytes per write and per read (default 16K)\n"
		"  -r, --rounds N      rounds of all modes, median reported (default 3)\n"
		"  -a, --retries N     runs again a run during which other processes took more\n"
		"                      than 10%% of the CPUs, up to N times (default 2)\n"
		"  -V, --verify-full   compare every byte received, not only the block stamps\n"
		"  -R, --read-ahead    let OpenSSL read several records per recv\n"
		"ULPO_AEAD_BACKEND=openssl|gcrypt picks ulpo's crypto library.\n");
}

static void parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "modes", required_argument, NULL, 'm' },
		{ "cipher", required_argument, NULL, 'c' },
		{ "bytes", required_argument, NULL, 'b' },
		{ "seconds", required_argument, NULL, 't' },
		{ "size", required_argument, NULL, 's' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "retries", required_argument, NULL, 'a' },
		{ "verify-full", no_argument, NULL, 'V' },
		{ "read-ahead", no_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *cipher = "aes128gcm";
	int c;

	while ((c = getopt_long(argc, argv, "m:c:b:t:s:r:a:VRh", lo, NULL)) != -1) {
		switch (c) {
		case 'm': opt.modes = optarg; break;
		case 'c': cipher = optarg; break;
		case 'b': opt.bytes = parse_size(optarg); break;
		case 't': opt.seconds = strtod(optarg, NULL); break;
		case 's': opt.size = parse_size(optarg); break;
		case 'r': opt.rounds = atoi(optarg); break;
		case 'a': opt.retries = atoi(optarg); break;
		case 'V': opt.verify_full = true; break;
		case 'R': opt.read_ahead = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind != argc) {
		usage(stderr);
		exit(2);
	}
	opt.cipher = bench_cipher_get(cipher);
	if (!opt.cipher)
		die("unknown cipher '%s'", cipher);
	if (opt.retries < 0)
		die("retries must be >= 0");
	if (opt.rounds < 1 || opt.rounds > MAX_ROUNDS)
		die("rounds must be 1..%d", MAX_ROUNDS);
	if (opt.size < 16 || opt.size > (64u << 20))
		die("size must be 16 bytes .. 64 MiB");
	if (opt.seconds < 0 || (!opt.seconds && opt.bytes < opt.size))
		die("nothing to send");
}

/* Mode names from the list, in order; unknown names are an error. */
static int pick_modes(const struct bench_mode **ret, bool *ret_skipped_ossl)
{
	char *list = strdup(opt.modes), *save = NULL;
	int n = 0;

	*ret_skipped_ossl = false;
	for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		const struct bench_mode *m = NULL;

		for (size_t i = 0; i < bench_nmodes; i++)
			if (!strcmp(t, bench_modes[i].name))
				m = &bench_modes[i];
		if (!m)
			die("unknown mode '%s'", t);
		if (m->ossl && !opt.cipher->suite) {
			*ret_skipped_ossl = true;
			continue;
		}
		if (n == MAX_MODES)
			die("too many modes");
		ret[n++] = m;
	}
	free(list);
	return n;
}

static const struct result *find(const struct bench_mode **ms, const struct result *med, int n,
				 const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(ms[i]->name, name))
			return &med[i];
	return NULL;
}

int main(int argc, char **argv)
{
	static struct result res[MAX_MODES][MAX_ROUNDS];
	const struct bench_mode *ms[MAX_MODES];
	struct result med[MAX_MODES];
	const char *be = getenv("ULPO_AEAD_BACKEND");
	const struct result *u, *un;
	uint8_t *sbuf, *rbuf;
	bool skipped;
	bool want_ossl = false;
	int nm, disturbed = 0;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	nm = pick_modes(ms, &skipped);
	if (!nm)
		die("no mode to run");
	for (int i = 0; i < nm; i++)
		want_ossl |= ms[i]->ossl;
	bench_transports_init(opt.cipher, want_ossl, opt.read_ahead);

	/* Random payload, so no layer can profit from a pattern; page-aligned, as an
	 * application's buffers usually are. */
	sbuf = aligned_alloc(4096, (opt.size + 4095) & ~(size_t)4095);
	rbuf = aligned_alloc(4096, (opt.size + 4095) & ~(size_t)4095);
	if (!sbuf || !rbuf || RAND_bytes(sbuf, (int)opt.size) != 1)
		die("buffers");
	memset(rbuf, 0, opt.size);

	printf("tls_bench: one loopback stream, %zu-byte writes, ", opt.size);
	if (opt.seconds)
		printf("%.1f s per run", opt.seconds);
	else
		printf("%.2f GiB per run", (double)opt.bytes / (1 << 30));
	printf(", %d round%s\n", opt.rounds, opt.rounds > 1 ? "s" : "");
	printf("  TLS 1.3 %s; ulpo AEAD backend %s; %s%s%s\n", opt.cipher->name,
	       be ? be : "auto", OpenSSL_version(OPENSSL_VERSION),
	       opt.cipher->suite ? " " : " (no TLS suite: openssl mode skipped)",
	       opt.cipher->suite ? opt.cipher->suite : "");
	printf("  OpenSSL kTLS off%s; block stamps checked%s\n\n",
	       opt.read_ahead ? ", read-ahead on" : "",
	       opt.verify_full ? ", every byte compared" : "");
	printf("%-5s %-11s %7s %14s %14s %7s\n", "round", "mode", "GB/s", "snd CPU s/GB",
	       "rcv CPU s/GB", "other");
	fflush(stdout);
	for (int round = 0; round < opt.rounds; round++)
		for (int i = 0; i < nm; i++) {
			struct result *x = &res[i][round];

			/* A run disturbed by other load is done again (its line stays). */
			for (int a = 0;; a++) {
				bool again;

				run_one(ms[i], sbuf, rbuf, x);
				again = x->other > OTHER_WARN && a < opt.retries;
				printf("%-5d %-11s %7.3f %14.3f %14.3f %6.0f%%%s\n", round + 1,
				       ms[i]->name, x->gbps, x->snd_cpu, x->rcv_cpu,
				       100 * x->other, x->other <= OTHER_WARN ? "" :
				       again ? " disturbed, again" : " disturbed");
				fflush(stdout);
				if (!again)
					break;
				sleep(1);
			}
			disturbed += x->other > OTHER_WARN;
		}

	printf("\nmedian of %d round%s (CPU: seconds of one thread's time per GB moved; "
	       "sys in brackets)\n", opt.rounds, opt.rounds > 1 ? "s" : "");
	printf("%-11s %7s %20s %20s\n", "mode", "GB/s", "sender CPU s/GB", "receiver CPU s/GB");
	for (int i = 0; i < nm; i++) {
		med[i].gbps = median(res[i], opt.rounds, offsetof(struct result, gbps));
		med[i].snd_cpu = median(res[i], opt.rounds, offsetof(struct result, snd_cpu));
		med[i].snd_sys = median(res[i], opt.rounds, offsetof(struct result, snd_sys));
		med[i].rcv_cpu = median(res[i], opt.rounds, offsetof(struct result, rcv_cpu));
		med[i].rcv_sys = median(res[i], opt.rounds, offsetof(struct result, rcv_sys));
		printf("%-11s %7.3f %11.3f (%6.3f) %11.3f (%6.3f)\n", ms[i]->name, med[i].gbps,
		       med[i].snd_cpu, med[i].snd_sys, med[i].rcv_cpu, med[i].rcv_sys);
	}

	u = find(ms, med, nm, "ulpo");
	un = find(ms, med, nm, "ulpo-nopad");
	printf("\n");
	for (int k = 0; k < 2; k++) {
		const struct result *x = k ? un : u, *t = find(ms, med, nm, "tcp"),
				    *o = find(ms, med, nm, "openssl");
		const char *name = k ? "ulpo-nopad" : "ulpo";

		if (!x)
			continue;
		if (t)
			printf("%s/tcp %.2f  ", name, x->gbps / t->gbps);
		if (o)
			printf("%s/openssl %.2f  (CPU per GB vs openssl: sender %.2f, "
			       "receiver %.2f)", name, x->gbps / o->gbps, x->snd_cpu / o->snd_cpu,
			       x->rcv_cpu / o->rcv_cpu);
		printf("\n");
	}
	if (disturbed)
		printf("%d kept run%s disturbed: 'other' is CPU used outside this process during "
		       "the run,\nas a share of all CPUs; above %.0f%% the figures say more about "
		       "the machine than ulpo\n", disturbed, disturbed > 1 ? "s" : "",
		       100 * OTHER_WARN);
	if (skipped)
		printf("openssl mode skipped: OpenSSL has no TLS 1.3 suite for %s\n",
		       opt.cipher->name);
	free(sbuf);
	free(rbuf);
	bench_transports_free();
	return 0;
}
