/* test_rx_ahead.c - parallel decryption on receive must be invisible: for the same seeded
 * wire (records of random sizes and types, TLS 1.3 padding, a KeyUpdate then new keys, a
 * forged record near the end) and the same seeded sequence of reads (sizes from 1 byte to
 * several records, MSG_PEEK, MSG_WAITALL, no or short cmsg buffers), the inline engine and
 * the async engine (records behind the one being read decrypted on the workers) return
 * exactly the same results, flags, record types, bytes and getsockopt(TLS_RX) sequence
 * numbers, also when a new RX key is installed early; and the async run really did
 * decrypt ahead (UlpoRxAheadRecords moved). The whole wire is queued in the kernel before
 * the first read, so what each read finds does not depend on timing. */
#include <linux/sockios.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>

#include "engine/engine.h"
#include "engine_helpers.h"
#include "record_codec.h"

int t_failed_checks;
const char *t_current;

#define MAX_WIRE (600u << 10)
#define MAX_LOG 4096

struct step {
	long r;				/* bytes or -errno */
	size_t len;			/* asked for */
	int flags;
	uint8_t type;
	uint64_t hash;			/* FNV-1a of the bytes returned */
	uint64_t conf;			/* ... of getsockopt(TLS_RX): iv and rec_seq now */
};

struct script {
	uint8_t *wire;
	size_t len;
	struct keys k1, k2;		/* before and after the KeyUpdate */
};

static uint64_t fnv(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* The wire: ~60 records, mostly data, some alerts and handshakes; TLS 1.3 gets padding
 * and, two thirds in, a KeyUpdate after which the sender uses k2. */
static void make_wire(const struct variant *v, uint64_t seed, struct script *sc)
{
	bool v13 = v->version == TLS_1_3_VERSION;
	uint64_t rng = seed;
	static uint8_t pt[16384];
	struct codec cd;
	int n = 60, forged = 56;

	keys_make(v, seed, &sc->k1);
	keys_make(v, seed + 77, &sc->k2);
	keys_set_seq(v, &sc->k2, 0);
	CHECK(codec_init(&cd, v, &sc->k1) == 0);
	sc->len = 0;
	for (int i = 0; i < n; i++) {
		int what = (int)(t_rand(&rng) % 12);
		size_t len = t_rand(&rng) % 3 ? 4096 + t_rand(&rng) % 12289 : t_rand(&rng) % 300;
		size_t pad = v13 && t_rand(&rng) % 4 == 0 ? t_rand(&rng) % 200 : 0;
		uint8_t type = ULPO_TLS_RECORD_DATA, *rec = sc->wire + sc->len;

		if (len + pad > 16384)
			pad = 16384 - len;	/* content + padding within 2^14 */
		t_fill(&rng, pt, len);
		if (what == 0) {
			type = 21;
			len = 2;
		} else if (what == 1) {
			type = 22;
			len = 40;
			pt[0] = 4;	/* NewSessionTicket, not a KeyUpdate */
		}
		if (v13 && i == 2 * n / 3) {
			type = 22;
			len = 5;
			memcpy(pt, "\x18\x00\x00\x01\x00", 5);	/* KeyUpdate */
		}
		sc->len += codec_seal(&cd, type, pt, len, pad, rec);
		if (i == forged)
			rec[sc->len - (size_t)(rec - sc->wire) - 3] ^= 0x40;	/* tag */
		if (v13 && i == 2 * n / 3) {
			codec_free(&cd);
			CHECK(codec_init(&cd, v, &sc->k2) == 0);
		}
	}
	codec_free(&cd);
	CHECK(sc->len < MAX_WIRE);
}

struct writer {
	int fd;
	const struct script *sc;
};

static void *write_all(void *arg)
{
	struct writer *w = arg;

	for (size_t off = 0; off < w->sc->len;) {
		ssize_t r = send(w->fd, w->sc->wire + off, w->sc->len - off, 0);

		if (r <= 0)
			break;
		off += (size_t)r;
	}
	shutdown(w->fd, SHUT_WR);
	return NULL;
}

/* Queue the whole wire in the kernel, then read it with the seeded script. */
static size_t read_script(uint64_t seed, const struct script *sc, struct step *log,
			  int early_rekey)
{
	static uint8_t buf[70000];
	int big = 4 << 20, c, s, n = 0, errors = 0;
	struct writer w = { .sc = sc };
	uint64_t rng = seed ^ 0x5eed;
	pthread_t th;

	CHECK(tcp_pair(&c, &s) == 0);
	setsockopt(c, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
	setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	CHECK(ulp(s) == 0);
	CHECK(ulpo_setsockopt(s, SOL_TLS, TLS_RX, sc->k1.info, sc->k1.len) == 0);
	w.fd = c;
	pthread_create(&th, NULL, write_all, &w);
	pthread_join(th, NULL);
	/* Every byte in the receiver's queue before the first read (reads take what TCP
	 * has, as the kernel's do: only then is what each returns independent of timing). */
	for (int i = 0, q = 0; i < 5000; i++) {
		if (ioctl(s, SIOCINQ, &q) == 0 && (size_t)q >= sc->len)
			break;
		usleep(1000);
	}
	while (n < MAX_LOG) {
		/* A new RX key installed too early (no KeyUpdate yet): what was not read
		 * yet must now fail to authenticate in both modes alike, including records
		 * the workers had already decrypted under the old key. */
		if (n == early_rekey)
			CHECK(ulpo_setsockopt(s, SOL_TLS, TLS_RX, sc->k2.info, sc->k2.len) == 0);
		int pick = (int)(t_rand(&rng) % 10), flags = 0;
		size_t len = pick < 3 ? 1 + t_rand(&rng) % 700 :
			     pick < 7 ? 1 + t_rand(&rng) % 20000 : 1 + t_rand(&rng) % sizeof(buf);
		char cbuf[CMSG_SPACE(1)];
		struct iovec iov = { .iov_base = buf, .iov_len = len };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				    .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *cm;
		struct step *st = &log[n++];
		ssize_t r;

		if (pick == 9)
			flags |= MSG_PEEK;
		else if (pick == 8)
			flags |= MSG_WAITALL;
		if (t_rand(&rng) % 16 == 0)
			m.msg_control = NULL, m.msg_controllen = 0;
		memset(buf, 0xee, len);
		st->len = len | (size_t)flags << 32;
		r = ulpo_recvmsg(s, &m, flags);
		st->r = r < 0 ? -errno : r;
		st->flags = m.msg_flags;
		st->type = 0;
		if (r >= 0 && m.msg_control && m.msg_controllen >= CMSG_LEN(1)) {
			cm = CMSG_FIRSTHDR(&m);
			st->type = *CMSG_DATA(cm);
		}
		st->hash = r > 0 ? fnv(buf, (size_t)r) : 0;
		{
			uint8_t info[64] = { 0 };
			socklen_t il = sc->k1.len;

			st->conf = ulpo_getsockopt(s, SOL_TLS, TLS_RX, info, &il) ? 0 :
				   fnv(info, il);
		}
		if (r == 0 && !st->type)
			break;	/* end of stream (a zero-length record comes with its type) */
		if (r < 0 && errno == EKEYEXPIRED)
			CHECK(ulpo_setsockopt(s, SOL_TLS, TLS_RX, sc->k2.info, sc->k2.len) == 0);
		else if (r < 0 && errno != EIO && ++errors > 3)
			break;	/* EIO: a control record and no room for its cmsg; retried */
	}
	ulpo_close(s);
	close(c);
	return (size_t)n;
}

static uint64_t ahead_count(void)
{
	uint64_t s[ULPO_STAT_MAX];

	ulpo_stats_get(s);
	return s[ULPO_STAT_RX_AHEAD_RECORDS];
}

static void t_same(const struct variant *v, uint64_t seed, int early_rekey)
{
	static struct step a[MAX_LOG], b[MAX_LOG];
	struct script sc = { .wire = malloc(MAX_WIRE) };
	size_t na, nb, got_badmsg = 0;
	uint64_t before;

	make_wire(v, seed, &sc);
	t_set_engine(ULPO_ENGINE_INLINE, 0);
	before = ahead_count();
	na = read_script(seed, &sc, a, early_rekey);
	CHECK_EQ(ahead_count(), before);
	t_set_engine(ULPO_ENGINE_ASYNC, 2);
	before = ahead_count();
	nb = read_script(seed, &sc, b, early_rekey);
	CHECK(ahead_count() > before + (early_rekey < 0 ? 10 : 0));
	t_set_engine(ULPO_ENGINE_INLINE, 0);
	CHECK_EQ(na, nb);
	for (size_t i = 0; i < na && i < nb; i++) {
		if (a[i].r != b[i].r || a[i].flags != b[i].flags || a[i].type != b[i].type ||
		    a[i].hash != b[i].hash || a[i].conf != b[i].conf) {
			fprintf(stderr, "%s: read %zu differs: inline %ld flags %x type %u, async "
				"%ld flags %x type %u\n", t_current, i, a[i].r, a[i].flags,
				a[i].type, b[i].r, b[i].flags, b[i].type);
			CHECK(0);
			if (getenv("DBG"))
				for (size_t j = 0; j <= i; j++)
					fprintf(stderr, "  %zu: len %zx: %ld/%x/%u  %ld/%x/%u\n", j,
						a[j].len, a[j].r, a[j].flags, a[j].type, b[j].r,
						b[j].flags, b[j].type);
			break;
		}
		got_badmsg += a[i].r == -EBADMSG;
	}
	/* The script reached the forged record (and so read everything before it). */
	CHECK(got_badmsg > 0);
	free(sc.wire);
}

/* Sockets closed with a batch still on the workers (one read took a record and left the
 * seven behind it in flight), while the same sockets' TX records are in flight too: no
 * hang, no use after free (the ASan and TSan builds run this), the engine idle after. */
static void t_close_in_flight(const struct variant *v, uint64_t seed)
{
	static uint8_t buf[16384];

	t_set_engine(ULPO_ENGINE_ASYNC, 2);
	for (int i = 0; i < 100; i++) {
		int c, s, q = 0;

		CHECK(tls_pair(v, seed + (uint64_t)i, &c, &s, true) == 0);
		for (int k = 0; k < 8; k++)
			CHECK_EQ(ulpo_send(c, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
		for (int w = 0; w < 2000 && q < 4 * 16500; w++) {
			ioctl(s, SIOCINQ, &q);
			if (q < 4 * 16500)
				usleep(500);
		}
		CHECK_EQ(u_read_full(s, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
		for (int k = 0; k < 4; k++)	/* TX records in flight on the reader too */
			ulpo_send(s, buf, sizeof(buf), MSG_DONTWAIT);
		if (i & 1) {
			ulpo_close(s);
			ulpo_close(c);
		} else {
			ulpo_close(c);
			ulpo_close(s);
		}
	}
	CHECK_EQ(t_engine_settle(), 0);
	t_set_engine(ULPO_ENGINE_INLINE, 0);
}

int main(void)
{
	uint64_t seed = getenv("TEST_SEED") ? strtoull(getenv("TEST_SEED"), NULL, 0) : 0x7e57;
	int passed = 0, failed = 0, before;
	char name[96];

	signal(SIGPIPE, SIG_IGN);
	printf("seed 0x%llx\n", (unsigned long long)seed);
	for (size_t vi = 0; vi < NVARIANTS; vi++) {
		for (int rep = 0; rep < 3; rep++) {
			before = t_failed_checks;
			snprintf(name, sizeof(name), "rx_ahead/%s/%d", variants[vi].name, rep);
			t_current = name;
			/* The third run of each TLS 1.3 cipher rekeys early. */
			t_same(&variants[vi], seed + vi * 101 + (uint64_t)rep,
			       rep == 2 && variants[vi].version == TLS_1_3_VERSION ? 12 : -1);
			t_tally(before, name, &passed, &failed);
		}
	}
	for (size_t vi = 0; vi < NVARIANTS; vi += 8) {	/* one 1.2 and one 1.3 cipher */
		before = t_failed_checks;
		snprintf(name, sizeof(name), "close_in_flight/%s", variants[vi].name);
		t_current = name;
		t_close_in_flight(&variants[vi], seed + vi);
		t_tally(before, name, &passed, &failed);
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
