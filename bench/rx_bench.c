/* rx_bench.c - receive side alone: how fast one ulpo socket turns queued TLS records into
 * plaintext, on the inline engine (the reading thread decrypts everything) and on the
 * async engine with 1 and 2 workers (records queued behind the one being read are
 * decrypted on the workers: src/tls/tls_rx_ahead.c). The ciphertext is made once by ulpo's
 * own TX and replayed by a plain send() loop, so the sender costs only a copy into TCP and
 * the reader is the bottleneck. 16 KiB records read with 16 KiB recv calls, TLS 1.3,
 * rounds interleaved, medians. Prints GB/s, the reader thread's CPU per GB and the share
 * of records decrypted ahead.
 *   rx_bench [-c aes-128-gcm,sm4-gcm] [-m MiB] [-r rounds] */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ulpo/engine.h>
#include <ulpo/ulpo.h>

#include "bench.h"

#define BLOCK 16384
#define MAX_ROUNDS 15

struct replay {
	int fd;
	const uint8_t *wire;
	size_t len;
};

void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("rx_bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void *capture(void *arg)
{
	struct replay *r = arg;
	size_t cap = r->len;
	ssize_t n;

	r->len = 0;
	while ((n = recv(r->fd, (uint8_t *)r->wire + r->len, cap - r->len, 0)) > 0)
		r->len += (size_t)n;
	return NULL;
}

static void *replay(void *arg)
{
	struct replay *r = arg;

	for (size_t off = 0; off < r->len;) {
		ssize_t n = send(r->fd, r->wire + off, r->len - off, MSG_NOSIGNAL);

		if (n <= 0)
			die("replay send: %s", strerror(errno));
		off += (size_t)n;
	}
	shutdown(r->fd, SHUT_WR);
	return NULL;
}

/* Blocks numbered in their first 8 bytes, sealed by ulpo TX, captured off the wire. */
static size_t make_wire(const struct bench_cipher *ci, const uint8_t *info, uint8_t *wire,
			size_t cap, size_t blocks)
{
	struct replay cp = { .wire = wire, .len = cap };
	uint8_t buf[BLOCK] = { 0 };
	pthread_t th;
	int s, r;

	if (bench_tcp_pair(&s, &r) || ulpo_setsockopt(s, SOL_TCP, TCP_ULP, "tls", 4) ||
	    ulpo_setsockopt(s, SOL_TLS, TLS_TX, info, ci->info_len))
		die("TX setup: %s", strerror(errno));
	cp.fd = r;
	pthread_create(&th, NULL, capture, &cp);
	for (uint64_t b = 0; b < blocks; b++) {
		memcpy(buf, &b, sizeof(b));
		if (ulpo_send(s, buf, sizeof(buf), 0) != sizeof(buf))
			die("TX: %s", strerror(errno));
	}
	ulpo_close(s);
	pthread_join(th, NULL);
	close(r);
	return cp.len;
}

struct result {
	double gbps, cpu, ahead;
};

static int set_engine(enum ulpo_engine_mode mode, unsigned int workers)
{
	struct ulpo_engine_config cfg;

	ulpo_engine_get_config(&cfg);
	cfg.mode = mode;
	cfg.workers = workers ? workers : cfg.workers;
	return ulpo_engine_set_config(&cfg);
}

static struct result run(const struct bench_cipher *ci, const uint8_t *info, const uint8_t *wire,
			 size_t len, size_t blocks)
{
	struct replay rp = { .wire = wire, .len = len };
	uint64_t st0[ULPO_STAT_MAX], st1[ULPO_STAT_MAX];
	static uint8_t buf[BLOCK];
	struct timespec t0, t1;
	struct rusage u0, u1;
	struct result res;
	uint64_t got = 0;
	pthread_t th;
	int s, r;

	if (bench_tcp_pair(&s, &r) || ulpo_setsockopt(r, SOL_TCP, TCP_ULP, "tls", 4) ||
	    ulpo_setsockopt(r, SOL_TLS, TLS_RX, info, ci->info_len))
		die("RX setup: %s", strerror(errno));
	rp.fd = s;
	ulpo_stats_get(st0);
	getrusage(RUSAGE_THREAD, &u0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_create(&th, NULL, replay, &rp);
	for (size_t fill = 0;;) {
		ssize_t n = ulpo_recv(r, buf + fill, BLOCK - fill, 0);

		if (n < 0)
			die("recv: %s", strerror(errno));
		if (n == 0)
			break;
		fill += (size_t)n;
		if (fill == BLOCK) {
			if (memcmp(buf, &got, sizeof(got)))
				die("block %llu out of order", (unsigned long long)got);
			got++;
			fill = 0;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	getrusage(RUSAGE_THREAD, &u1);
	ulpo_stats_get(st1);
	pthread_join(th, NULL);
	if (got != blocks)
		die("%llu of %zu blocks", (unsigned long long)got, blocks);
	ulpo_close(r);
	close(s);
	res.gbps = (double)(blocks * BLOCK) / 1e9 /
		   ((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9);
	res.cpu = ((double)(u1.ru_utime.tv_sec - u0.ru_utime.tv_sec + u1.ru_stime.tv_sec -
			    u0.ru_stime.tv_sec) +
		   (double)(u1.ru_utime.tv_usec - u0.ru_utime.tv_usec + u1.ru_stime.tv_usec -
			    u0.ru_stime.tv_usec) * 1e-6) / ((double)(blocks * BLOCK) / 1e9);
	res.ahead = (double)(st1[ULPO_STAT_RX_AHEAD_RECORDS] - st0[ULPO_STAT_RX_AHEAD_RECORDS]) /
		    (double)blocks;
	return res;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	static const struct { const char *name; enum ulpo_engine_mode mode; unsigned int w; } modes[] = {
		{ "inline", ULPO_ENGINE_INLINE, 0 },
		{ "async1", ULPO_ENGINE_ASYNC, 1 },
		{ "async2", ULPO_ENGINE_ASYNC, 2 },
	};
	char cipher_list[256] = "aes-128-gcm,sm4-gcm";
	size_t mib = 256;
	int rounds = 5, opt;

	while ((opt = getopt(argc, argv, "c:m:r:h")) != -1) {
		switch (opt) {
		case 'c':
			snprintf(cipher_list, sizeof(cipher_list), "%s", optarg);
			break;
		case 'm':
			mib = strtoul(optarg, NULL, 0);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		default:
			fprintf(opt == 'h' ? stdout : stderr,
				"usage: rx_bench [-c cipher,...] [-m MiB per run] [-r rounds]\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	if (rounds < 1 || rounds > MAX_ROUNDS || mib < 1)
		die("rounds 1..%d, MiB >= 1", MAX_ROUNDS);
	printf("rx_bench: TLS 1.3, %d-byte records and reads, %zu MiB per run, median of %d "
	       "rounds\n", BLOCK, mib, rounds);
	printf("%-12s %-7s %8s %12s %8s %s\n", "cipher", "engine", "GB/s", "reader s/GB",
	       "ahead", "vs inline");
	for (char *save = NULL, *name = strtok_r(cipher_list, ",", &save); name;
	     name = strtok_r(NULL, ",", &save)) {
		const struct bench_cipher *ci = bench_cipher_get(name);
		size_t blocks = mib << 6, cap = blocks * (BLOCK + 64), len;
		double g[3][MAX_ROUNDS], c[3][MAX_ROUNDS], a[3][MAX_ROUNDS], base = 0;
		uint8_t info[64], *wire = malloc(cap);

		if (!ci || !wire)
			die("unknown cipher '%s' or no memory", name);
		bench_ulpo_keys(ci, info);
		set_engine(ULPO_ENGINE_INLINE, 0);
		len = make_wire(ci, info, wire, cap, blocks);
		for (int rd = 0; rd < rounds; rd++)
			for (int m = 0; m < 3; m++) {
				struct result res;

				if (set_engine(modes[m].mode, modes[m].w))
					die("engine config");
				res = run(ci, info, wire, len, blocks);
				g[m][rd] = res.gbps;
				c[m][rd] = res.cpu;
				a[m][rd] = res.ahead;
			}
		for (int m = 0; m < 3; m++) {
			double gm = median(g[m], rounds);

			if (m == 0)
				base = gm;
			printf("%-12s %-7s %8.3f %12.2f %7.0f%% %8.2fx\n", name, modes[m].name, gm,
			       median(c[m], rounds), 100 * median(a[m], rounds), gm / base);
		}
		set_engine(ULPO_ENGINE_INLINE, 0);
		free(wire);
	}
	return 0;
}
