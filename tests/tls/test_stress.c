/* test_stress.c - many sockets on the async engine at once: 64 TLS connections, senders
 * on several threads with random sizes, MSG_MORE, control-free data, then shutdown or
 * close; receivers on other threads with ulpo_poll. Every byte must arrive, in order,
 * then EOF. Run under ThreadSanitizer in CI. */
#include <poll.h>
#include <pthread.h>
#include <signal.h>

#include <ulpo/engine.h>

#include "tls_helpers.h"

int t_failed_checks;
const char *t_current = "stress";

#define NSOCK 64
#define NTHREADS 4			/* senders; as many receivers */
#define PER_THREAD (NSOCK / NTHREADS)

struct conn {
	int c, s;
	size_t to_send, sent, got;
	bool closed_by_close;
	bool eof, bad;
	uint64_t rng, rx_rng;		/* sender's and receiver's: one thread each */
};

static struct conn conns[NSOCK];

/* The stream's byte at position i: cheap, position-dependent, differs per socket. */
static inline uint8_t pattern(int sock, size_t i)
{
	return (uint8_t)((i * 131u) ^ (i >> 9) ^ (unsigned int)(sock * 29));
}

static void *sender(void *arg)
{
	int base = (int)(intptr_t)arg * PER_THREAD;
	static __thread uint8_t buf[40000];
	bool active = true;

	while (active) {
		active = false;
		for (int k = 0; k < PER_THREAD; k++) {
			struct conn *cn = &conns[base + k];
			size_t len = 1 + t_rand(&cn->rng) % 40000;
			int flags = t_rand(&cn->rng) % 4 == 0 ? MSG_MORE : 0;
			ssize_t r;

			if (cn->sent >= cn->to_send)
				continue;
			active = true;
			if (len > cn->to_send - cn->sent)
				len = cn->to_send - cn->sent;
			if (cn->sent + len == cn->to_send)
				flags = 0;	/* the last piece closes the record */
			for (size_t i = 0; i < len; i++)
				buf[i] = pattern(base + k, cn->sent + i);
			r = ulpo_send(cn->c, buf, len, flags);
			if (r <= 0) {
				cn->bad = true;
				cn->sent = cn->to_send;
				continue;
			}
			cn->sent += (size_t)r;
			if (cn->sent == cn->to_send) {
				/* End the stream one of two ways: both must flush first. */
				if (cn->closed_by_close) {
					ulpo_close(cn->c);
				} else {
					ulpo_shutdown(cn->c, SHUT_WR);
					ulpo_close(cn->c);
				}
			}
		}
	}
	return NULL;
}

static void *receiver(void *arg)
{
	int base = (int)(intptr_t)arg * PER_THREAD, open = PER_THREAD;
	static __thread uint8_t buf[70000];
	struct pollfd p[PER_THREAD];

	while (open) {
		for (int k = 0; k < PER_THREAD; k++) {
			p[k].fd = conns[base + k].eof ? -1 : conns[base + k].s;
			p[k].events = POLLIN;
			p[k].revents = 0;
		}
		if (ulpo_poll(p, PER_THREAD, 5000) <= 0) {
			t_failed_checks++;
			fprintf(stderr, "  FAIL stress: poll timed out with %d open\n", open);
			break;
		}
		for (int k = 0; k < PER_THREAD; k++) {
			struct conn *cn = &conns[base + k];
			ssize_t r;

			if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = ulpo_recv(cn->s, buf, 1 + t_rand(&cn->rx_rng) % sizeof(buf), MSG_DONTWAIT);
			if (r < 0 && errno == EAGAIN)
				continue;
			if (r <= 0) {
				if (r < 0)
					cn->bad = true;
				cn->eof = true;
				open--;
				continue;
			}
			for (ssize_t i = 0; i < r; i++)
				if (buf[i] != pattern(base + k, cn->got + (size_t)i))
					cn->bad = true;
			cn->got += (size_t)r;
		}
	}
	return NULL;
}

int main(void)
{
	uint64_t seed = getenv("TEST_SEED") ? strtoull(getenv("TEST_SEED"), NULL, 0) : 0x57e55;
	struct ulpo_engine_config cfg;
	pthread_t tx[NTHREADS], rx[NTHREADS];
	int failed = 0;

	signal(SIGPIPE, SIG_IGN);
	printf("seed 0x%llx\n", (unsigned long long)seed);
	ulpo_engine_get_config(&cfg);
	cfg.mode = ULPO_ENGINE_ASYNC;
	cfg.workers = 2;
	cfg.max_records_in_flight = 4;	/* small: backpressure is exercised too */
	CHECK(ulpo_engine_set_config(&cfg) == 0);
	for (int i = 0; i < NSOCK; i++) {
		struct conn *cn = &conns[i];
		uint64_t r = seed * 1000 + (uint64_t)i;

		CHECK(tls_pair(&variants[i % NVARIANTS], seed + (uint64_t)i, &cn->c, &cn->s, false) == 0);
		cn->rng = r;
		cn->rx_rng = r ^ 0x9e3779b97f4a7c15ull;
		cn->to_send = t_rand(&r) % (2 << 20);
		cn->closed_by_close = t_rand(&r) & 1;
	}
	for (intptr_t t = 0; t < NTHREADS; t++) {
		pthread_create(&rx[t], NULL, receiver, (void *)t);
		pthread_create(&tx[t], NULL, sender, (void *)t);
	}
	for (int t = 0; t < NTHREADS; t++) {
		pthread_join(tx[t], NULL);
		pthread_join(rx[t], NULL);
	}
	for (int i = 0; i < NSOCK; i++) {
		struct conn *cn = &conns[i];

		if (cn->bad || !cn->eof || cn->got != cn->to_send) {
			failed++;
			fprintf(stderr, "  FAIL socket %d (%s): sent %zu of %zu, got %zu, eof %d, bad %d\n",
				i, variants[i % NVARIANTS].name, cn->sent, cn->to_send, cn->got,
				cn->eof, cn->bad);
		}
		ulpo_close(cn->s);
	}
	failed += t_failed_checks;
	{
		size_t total = 0;

		for (int i = 0; i < NSOCK; i++)
			total += conns[i].got;
		printf("%zu bytes through %d sockets\n", total, NSOCK);
	}
	printf("%d passed, %d failed\n", NSOCK - (failed > NSOCK ? NSOCK : failed), failed);
	return failed ? 1 : 0;
}
