/* test_async.c - the record layer on the async engine: for the same keys and the same
 * seeded sequence of sends, inline and async put byte-identical ciphertext on the wire
 * (every version x cipher); a job made to fail sets the socket error, nothing after it
 * reaches the wire, the peer sees the stream end cleanly, other sockets carry on. */
#include <pthread.h>
#include <signal.h>

#include "engine/engine.h"
#include "engine_helpers.h"
#include "record_codec.h"

int t_failed_checks;
const char *t_current;

struct capture {
	int fd;
	uint8_t *buf;
	size_t len, cap;
};

static void *capture_all(void *arg)
{
	struct capture *cp = arg;
	ssize_t r;

	while ((r = recv(cp->fd, cp->buf + cp->len, cp->cap - cp->len, 0)) > 0)
		cp->len += (size_t)r;
	return NULL;
}

/* The seeded send script, run through ulpo TX into a raw receiver: returns the wire. */
static size_t run_script(const struct variant *v, uint64_t seed, uint8_t *wire, size_t cap)
{
	struct capture cp = { .buf = wire, .cap = cap };
	uint64_t rng = seed;
	static uint8_t data[70000];
	struct keys k;
	pthread_t th;
	int c, s;

	keys_make(v, seed, &k);
	CHECK(tcp_pair(&c, &s) == 0);
	CHECK(ulp(c) == 0);
	CHECK(ulpo_setsockopt(c, SOL_TLS, TLS_TX, k.info, k.len) == 0);
	cp.fd = s;
	pthread_create(&th, NULL, capture_all, &cp);
	t_fill(&rng, data, sizeof(data));
	for (int i = 0; i < 300; i++) {
		size_t len = t_rand(&rng) % 4 ? t_rand(&rng) % 40000 : t_rand(&rng) % 200;
		int what = (int)(t_rand(&rng) % 10);

		if (what == 0)
			CHECK_EQ(send_typed(c, data, len % 3000, 0, 21), (ssize_t)(len % 3000));
		else
			CHECK_EQ(ulpo_send(c, data + (t_rand(&rng) % 1000), len,
					   what < 3 ? MSG_MORE : 0), (ssize_t)len);
	}
	CHECK_EQ(ulpo_send(c, data, 1, 0), 1);	/* closes any open record */
	CHECK(ulpo_close(c) == 0);
	pthread_join(th, NULL);
	close(s);
	return cp.len;
}

static void t_differential(const struct variant *v, uint64_t seed)
{
	size_t cap = 16 << 20;
	uint8_t *a = malloc(cap), *b = malloc(cap);
	size_t na, nb;

	t_set_engine(ULPO_ENGINE_INLINE, 0);
	na = run_script(v, seed, a, cap);
	t_set_engine(ULPO_ENGINE_ASYNC, 2);
	nb = run_script(v, seed, b, cap);
	t_set_engine(ULPO_ENGINE_INLINE, 0);
	CHECK(na > 1000000);
	CHECK_EQ(na, nb);
	CHECK(na == nb && memcmp(a, b, na) == 0);
	free(a);
	free(b);
}

/* The n-th record's job fails: the peer decodes exactly records 1..n-1, then EOF; the
 * sender gets EBADMSG; a second socket sending meanwhile is untouched. */
static void t_fault(const struct variant *v, uint64_t seed, enum ulpo_engine_mode mode)
{
	struct keys k, k2;
	struct codec cd;
	size_t cap = 4 << 20;
	uint8_t *wire = malloc(cap), pt[20000], type, buf[64];
	struct capture cp = { .buf = wire, .cap = cap };
	pthread_t th;
	int c, s, c2, s2, failing = 7, sent_ok = 0;
	size_t off = 0;

	t_set_engine(mode, 2);
	keys_make(v, seed, &k);
	keys_make(v, seed + 5, &k2);
	CHECK(tcp_pair(&c, &s) == 0 && ulp(c) == 0);
	CHECK(ulpo_setsockopt(c, SOL_TLS, TLS_TX, k.info, k.len) == 0);
	CHECK(tls_pair(v, seed + 5, &c2, &s2, false) == 0);
	cp.fd = s;
	pthread_create(&th, NULL, capture_all, &cp);
	ulpo_engine_fail_nth(failing, -EIO);
	for (int i = 0; i < 20; i++) {
		ssize_t r = ulpo_send(c, pt, 10000, 0);

		if (r < 0) {
			CHECK_EQ(errno, EBADMSG);
			break;
		}
		sent_ok++;
	}
	ulpo_engine_fail_nth(0, 0);
	CHECK(sent_ok >= failing - 1);
	t_engine_settle();
	CHECK_ERR(ulpo_send(c, pt, 10, 0), EBADMSG);
	/* The other socket carries on. */
	CHECK_EQ(ulpo_send(c2, "other", 5, 0), 5);
	CHECK_EQ(ulpo_recv(s2, buf, sizeof(buf), 0), 5);
	CHECK(ulpo_close(c) == 0);
	pthread_join(th, NULL);
	/* Exactly the records before the failed one, each whole and in order. */
	CHECK(codec_init(&cd, v, &k) == 0);
	for (int i = 0; i < failing - 1; i++) {
		long n;

		CHECK(off + 5 <= cp.len);
		if (off + 5 > cp.len)
			break;
		n = codec_open(&cd, wire + off, &type, pt);
		CHECK_EQ(n, 10000);
		off += 5 + ((size_t)wire[off + 3] << 8 | wire[off + 4]);
	}
	CHECK_EQ(off, cp.len);
	codec_free(&cd);
	close(s);
	close_pair(c2, s2);
	t_set_engine(ULPO_ENGINE_INLINE, 0);
	free(wire);
}

int main(void)
{
	uint64_t seed = getenv("TEST_SEED") ? strtoull(getenv("TEST_SEED"), NULL, 0) : 0xa5a5;
	int passed = 0, failed = 0, before;
	char name[96];

	signal(SIGPIPE, SIG_IGN);
	printf("seed 0x%llx\n", (unsigned long long)seed);
	for (size_t vi = 0; vi < NVARIANTS; vi++) {
		const struct variant *v = &variants[vi];

		for (int t = 0; t < 3; t++) {
			before = t_failed_checks;
			snprintf(name, sizeof(name), "%s/%s",
				 t == 0 ? "differential" : t == 1 ? "fault_inline" : "fault_async", v->name);
			t_current = name;
			if (t == 0)
				t_differential(v, seed + vi);
			else
				t_fault(v, seed + vi, t == 1 ? ULPO_ENGINE_INLINE : ULPO_ENGINE_ASYNC);
			t_tally(before, name, &passed, &failed);
		}
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
