/* test_toe.c - offload devices in the TOE model (issue 6): which path a TLS connection gets
 * (offloaded whole, opted out per socket or process-wide, refused by the device, caps turned
 * off at run time), the counters that say so, the same bytes and record types on every path,
 * close() that leaves queued bytes to the device, fd numbers taken again at once, SO_LINGER 0,
 * listen events and the policy an accepted connection inherits, the device's memory bound,
 * and the reader's waits (a partial record, records left to the reader, a peek past all
 * the device holds). Seeded (argv[1] or TOE_SEED; TOE_ONLY=text runs the tests
 * whose name has it); runs inline and async. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <time.h>

#include <ulpo/device.h>

#include "../tls/record_codec.h"

/* ulpo_listen and the accepts come with the offload itself: weak until they are in libulpo
 * (linked whole, so wherever they land they are found); a missing one is a failed check. */
#pragma weak ulpo_listen
#pragma weak ulpo_accept
#pragma weak ulpo_accept4

int t_failed_checks;
const char *t_current;

static uint64_t base_seed = 0x70e6c0ffee2024ull;
static char name_buf[160];

#define PATH_BOTH (ULPO_PATH_TOE_TX | ULPO_PATH_TOE_RX)

/* A failure the main thread reports (threads keep theirs as text: only this thread
 * touches the counters). */
static void fail_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail_msg(const char *fmt, ...)
{
	va_list ap;

	t_failed_checks++;
	fprintf(stderr, "  FAIL %s: ", t_current);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void info(const char *fmt, ...)
{
	va_list ap;

	printf("  info %s: ", t_current);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* ---- counters ---- */

static void stats_now(uint64_t *v)
{
	ulpo_stats_get(v);
}

#define CHECK_STAT(before, s, expected)                                                  \
	do {                                                                              \
		uint64_t _v[ULPO_STAT_MAX];                                                 \
		long long _d;                                                             \
		stats_now(_v);                                                            \
		_d = (long long)(_v[s] - (before)[s]);                                    \
		if (_d != (long long)(expected)) {                                        \
			t_failed_checks++;                                                \
			fprintf(stderr, "  FAIL %s: %s:%d: %s went up by %lld, expected %lld\n", \
				t_current, __FILE__, __LINE__, ulpo_stat_name(s), _d,     \
				(long long)(expected));                                   \
		}                                                                         \
	} while (0)

/* ---- paths ---- */

static const int one = 1;

/* ULPO_OFFLOAD_PATH, or -1 (errno) when it cannot be read. */
static int path_of(int fd)
{
	int v = -1;
	socklen_t l = sizeof(v);

	if (ulpo_getsockopt(fd, SOL_ULPO, ULPO_OFFLOAD_PATH, &v, &l))
		return -1;
	if (l != sizeof(v)) {
		errno = EINVAL;
		return -1;
	}
	return v;
}

#define CHECK_PATH(fd, expected)                                                         \
	do {                                                                              \
		errno = 0;                                                                \
		int _p = path_of(fd);                                                     \
		if (_p != (expected)) {                                                   \
			t_failed_checks++;                                                \
			fprintf(stderr, "  FAIL %s: %s:%d: path of %s is %d, expected %d (errno %d %s)\n", \
				t_current, __FILE__, __LINE__, #fd, _p, (int)(expected),  \
				errno, strerror(errno));                                  \
		}                                                                         \
	} while (0)

static int opt_out(int fd)
{
	return ulpo_setsockopt(fd, SOL_ULPO, ULPO_NO_OFFLOAD, &one, sizeof(one));
}

/* TCP_ULP and both keys, each step checked; optionally opted out first. */
static void tls_side(int fd, bool optout, const struct keys *tx, const struct keys *rx)
{
	if (optout)
		CHECK(opt_out(fd) == 0);
	CHECK(ulp(fd) == 0);
	CHECK(ulpo_setsockopt(fd, SOL_TLS, TLS_TX, tx->info, tx->len) == 0);
	CHECK(ulpo_setsockopt(fd, SOL_TLS, TLS_RX, rx->info, rx->len) == 0);
}

/* A loopback pair with TLS both ways: c sends with k(seed), s with k(seed + 1). */
static void tls_pair_opts(const struct variant *v, uint64_t seed, int *c, int *s,
			  bool c_optout, bool s_optout)
{
	struct keys kc, ks;

	keys_make(v, seed, &kc);
	keys_make(v, seed + 1, &ks);
	CHECK(tcp_pair(c, s) == 0);
	tls_side(*c, c_optout, &kc, &ks);
	tls_side(*s, s_optout, &ks, &kc);
}

static long long mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Wait for a thread at most ms; true if it ended (and was joined). */
static bool join_within(pthread_t th, int ms)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return pthread_timedjoin_np(th, NULL, &t) == 0;
}

static int passed_total, failed_total;

/* Threads that stay stuck even after their sockets were shut down: nothing after this test
 * can be trusted, so the binary ends here with its verdict. */
static void give_up(const char *why)
{
	fail_msg("%s; giving up", why);
	printf("FAIL %s\n%d passed, %d failed\n", t_current, passed_total, failed_total + 1);
	fflush(stdout);
	_exit(1);
}

/* Send len bytes exactly, waiting for POLLOUT (5 s) on EAGAIN; 0, or -1 with err filled. */
static int send_all(int fd, const uint8_t *p, size_t len, int flags, uint8_t type,
		    int niov, uint64_t *rs, char *err, size_t errlen)
{
	while (len) {
		struct iovec iov[4];
		char cbuf[CMSG_SPACE(sizeof(uint8_t))];
		struct msghdr m = { .msg_iov = iov };
		size_t off = 0;
		ssize_t r;
		int n = niov < 1 ? 1 : niov;

		if ((size_t)n > len)
			n = (int)len;
		/* n pieces: cut points at random, none empty. */
		for (int i = 0; i < n; i++) {
			size_t left = len - off, rest = (size_t)(n - i - 1);
			size_t piece = i == n - 1 ? left : 1 + t_rand(rs) % (left - rest);

			iov[i].iov_base = (void *)(p + off);
			iov[i].iov_len = piece;
			off += piece;
		}
		m.msg_iovlen = (size_t)n;
		if (type != 23) {
			struct cmsghdr *cm;

			m.msg_control = cbuf;
			m.msg_controllen = sizeof(cbuf);
			cm = CMSG_FIRSTHDR(&m);
			cm->cmsg_level = SOL_TLS;
			cm->cmsg_type = TLS_SET_RECORD_TYPE;
			cm->cmsg_len = CMSG_LEN(sizeof(uint8_t));
			*CMSG_DATA(cm) = type;
		}
		if (type == 23 && n == 1)
			r = ulpo_send(fd, p, len, flags | MSG_NOSIGNAL);
		else
			r = ulpo_sendmsg(fd, &m, flags | MSG_NOSIGNAL);
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pf = { .fd = fd, .events = POLLOUT };
			int pr = ulpo_poll(&pf, 1, 5000);

			if (pr == 0) {
				snprintf(err, errlen, "no POLLOUT within 5 s after EAGAIN");
				return -1;
			}
			if (pr < 0) {
				snprintf(err, errlen, "poll(POLLOUT): %s", strerror(errno));
				return -1;
			}
			continue;
		}
		if (r <= 0) {
			snprintf(err, errlen, "send of %zu bytes (type %u): %zd %s", len, type, r,
				 strerror(errno));
			return -1;
		}
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

/* Exactly n bytes, each wait for them bounded by poll (5 s): n, or what came before EOF
 * or an error (-1 with errno). A poll that times out is a failure, reported with what a
 * recv right after it finds (data there: poll slept through it; none: the bytes are
 * stuck), as -2. */
static ssize_t read_timed(int fd, uint8_t *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (ulpo_poll(&pf, 1, 5000) == 0) {
			int inq = -1;

			r = ulpo_recv(fd, buf + got, n - got, MSG_DONTWAIT);
			ioctl(fd, FIONREAD, &inq);	/* ciphertext TCP holds, not yet taken */
			fail_msg("fd %d: poll(POLLIN) timed out (5 s) with %zu of %zu bytes read; "
				 "recv(MSG_DONTWAIT) then: %zd %s; TCP receive queue %d bytes", fd,
				 got, n, r, r < 0 ? strerror(errno) : r ? "(data was there)" : "(EOF)",
				 inq);
			return -2;
		}
		r = ulpo_recv(fd, buf + got, n - got, MSG_DONTWAIT);
		if (r < 0 && errno == EAGAIN)
			continue;
		if (r <= 0)
			return got ? (ssize_t)got : r;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* "ping" from c to s and "pong" back. */
static void roundtrip(int c, int s)
{
	uint8_t buf[4];

	CHECK_EQ(ulpo_send(c, "ping", 4, 0), 4);
	CHECK_EQ(read_timed(s, buf, 4), 4);
	CHECK(memcmp(buf, "ping", 4) == 0);
	CHECK_EQ(ulpo_send(s, "pong", 4, 0), 4);
	CHECK_EQ(read_timed(c, buf, 4), 4);
	CHECK(memcmp(buf, "pong", 4) == 0);
}

/* ---- the same bytes on every path ---- */

struct op {
	uint8_t type;		/* 23 data, 22 handshake, 21 alert */
	uint8_t niov;		/* 1: send(), more: sendmsg with that many iovecs */
	bool more;		/* MSG_MORE */
	size_t off, len;
};

/* One direction: its script, the expected stream (bytes and the type of each byte), the
 * exact-length tail read with MSG_WAITALL, and what each thread found. */
struct dir {
	const char *label;
	int sfd, rfd;
	bool nonblock;
	uint64_t seed;
	struct op ops[64];
	int nops;
	uint8_t *data, *types;
	size_t total;
	uint8_t *tail;
	size_t tail_len;
	short revents;		/* the receiver's last poll */
	char serr[256], rerr[256];
};

static void script_make(struct dir *d)
{
	uint64_t rs = d->seed;
	size_t off = 0;

	d->nops = 36 + (int)(t_rand(&rs) % 20);
	for (int i = 0; i < d->nops; i++) {
		struct op *o = &d->ops[i];

		/* A few control records, at fixed places so every script has some. */
		if (i % 12 == 5) {
			o->type = t_rand(&rs) % 2 ? 22 : 21;
			o->len = 1 + t_rand(&rs) % 300;
			o->niov = 1;
			o->more = false;
		} else {
			unsigned int k = (unsigned int)(t_rand(&rs) % 3);

			o->type = 23;
			o->len = k == 0 ? 1 + t_rand(&rs) % 64 :
				 k == 1 ? 65 + t_rand(&rs) % 4032 : 4097 + t_rand(&rs) % 61440;
			o->niov = (uint8_t)(t_rand(&rs) % 2 ? 1 : 2 + t_rand(&rs) % 3);
			o->more = i != d->nops - 1 && t_rand(&rs) % 4 == 0;
		}
		o->off = off;
		off += o->len;
	}
	d->total = off;
	d->data = malloc(off);
	d->types = malloc(off);
	for (int i = 0; i < d->nops; i++)
		memset(d->types + d->ops[i].off, d->ops[i].type, d->ops[i].len);
	t_fill(&rs, d->data, off);
	/* A handshake record starting with 24 is a KeyUpdate, which stops the receiver until
	 * it is given a new key (on any version, as in the kernel): no byte 24 in them, as
	 * the tail of a control record that went out in part starts a record of its own. */
	for (int i = 0; i < d->nops; i++)
		for (size_t j = 0; d->ops[i].type == 22 && j < d->ops[i].len; j++)
			if (d->data[d->ops[i].off + j] == 24)
				d->data[d->ops[i].off + j] = 4;
	d->tail_len = 40000 + t_rand(&rs) % 60000;
	d->tail = malloc(d->tail_len);
	t_fill(&rs, d->tail, d->tail_len);
}

static void script_free(struct dir *d)
{
	free(d->data);
	free(d->types);
	free(d->tail);
}

static void *sender(void *arg)
{
	struct dir *d = arg;
	uint64_t rs = d->seed ^ 0x5e4d;
	size_t third = d->tail_len / 3;

	for (int i = 0; i < d->nops; i++) {
		const struct op *o = &d->ops[i];

		if (send_all(d->sfd, d->data + o->off, o->len, o->more ? MSG_MORE : 0, o->type,
			     o->niov, &rs, d->serr, sizeof(d->serr)))
			return NULL;
	}
	/* The tail in three pieces, apart in time: MSG_WAITALL has to wait for them. */
	for (int i = 0; i < 3; i++) {
		size_t len = i < 2 ? third : d->tail_len - 2 * third;

		if (i)
			usleep(20000);
		if (send_all(d->sfd, d->tail + i * third, len, 0, 23, 1, &rs, d->serr,
			     sizeof(d->serr)))
			return NULL;
	}
	if (ulpo_shutdown(d->sfd, SHUT_WR))
		snprintf(d->serr, sizeof(d->serr), "shutdown(SHUT_WR): %s", strerror(errno));
	return NULL;
}

static void set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/* Non-blocking: wait for POLLIN (5 s: data is in flight, so a timeout is a failure). */
static int wait_readable(struct dir *d, size_t pos)
{
	struct pollfd pf = { .fd = d->rfd, .events = POLLIN };
	int r = ulpo_poll(&pf, 1, 5000);

	if (r == 0) {
		snprintf(d->rerr, sizeof(d->rerr), "poll timed out (5 s) at byte %zu of %zu",
			 pos, d->total);
		return -1;
	}
	if (r < 0) {
		snprintf(d->rerr, sizeof(d->rerr), "poll: %s", strerror(errno));
		return -1;
	}
	d->revents = pf.revents;
	return 0;
}

/* For a non-blocking read's failure: what the poll before it said. */
static const char *after_poll(const struct dir *d, char *note)
{
	note[0] = 0;
	if (d->nonblock)
		snprintf(note, 48, ", right after poll gave revents %#x", (unsigned)d->revents);
	return note;
}

static void *receiver(void *arg)
{
	struct dir *d = arg;
	char note[48];
	uint64_t rs = d->seed ^ 0x7ec5;
	size_t cap = 70000, pos = 0;
	uint8_t *buf = malloc(d->tail_len > cap ? d->tail_len : cap);
	ssize_t r;

	while (pos < d->total) {
		char cbuf[CMSG_SPACE(sizeof(uint8_t))];
		size_t want = 1 + t_rand(&rs) % cap, cut;
		struct iovec iov[2];
		struct msghdr m = { .msg_iov = iov, .msg_control = cbuf,
				    .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *cm;
		uint8_t type = 0;

		if (want > d->total - pos)
			want = d->total - pos;
		cut = want > 1 && t_rand(&rs) % 2 ? 1 + t_rand(&rs) % (want - 1) : want;
		iov[0] = (struct iovec){ buf, cut };
		iov[1] = (struct iovec){ buf + cut, want - cut };
		m.msg_iovlen = cut < want ? 2 : 1;
		if (d->nonblock && wait_readable(d, pos))
			goto out;
		r = ulpo_recvmsg(d->rfd, &m, 0);
		if (r < 0) {
			snprintf(d->rerr, sizeof(d->rerr), "recvmsg at byte %zu of %zu: %s%s", pos,
				 d->total, strerror(errno), after_poll(d, note));
			goto out;
		}
		if (r == 0) {
			snprintf(d->rerr, sizeof(d->rerr), "EOF at byte %zu of %zu", pos, d->total);
			goto out;
		}
		cm = CMSG_FIRSTHDR(&m);
		if (cm && cm->cmsg_level == SOL_TLS && cm->cmsg_type == TLS_GET_RECORD_TYPE)
			type = *CMSG_DATA(cm);
		if (!type || (m.msg_flags & MSG_CTRUNC)) {
			snprintf(d->rerr, sizeof(d->rerr), "no record type cmsg at byte %zu (flags %#x)",
				 pos, m.msg_flags);
			goto out;
		}
		for (size_t i = 0; i < (size_t)r; i++) {
			if (d->types[pos + i] != type) {
				snprintf(d->rerr, sizeof(d->rerr),
					 "byte %zu came as type %u, sent as type %u", pos + i, type,
					 d->types[pos + i]);
				goto out;
			}
			if (buf[i] != d->data[pos + i]) {
				snprintf(d->rerr, sizeof(d->rerr),
					 "byte %zu is %#x, sent %#x (read of %zd at %zu)", pos + i,
					 buf[i], d->data[pos + i], r, pos);
				goto out;
			}
		}
		pos += (size_t)r;
	}
	/* A blocking read of an exact length. */
	if (d->nonblock)
		set_nonblock(d->rfd, false);
	r = ulpo_recv(d->rfd, buf, d->tail_len, MSG_WAITALL);
	if (r != (ssize_t)d->tail_len || memcmp(buf, d->tail, d->tail_len)) {
		snprintf(d->rerr, sizeof(d->rerr), "MSG_WAITALL of %zu: %zd (%s)%s", d->tail_len,
			 r, r < 0 ? strerror(errno) : "",
			 r == (ssize_t)d->tail_len ? ", bytes differ" : "");
		goto out;
	}
	/* Then the end of the stream, after every byte. */
	if (d->nonblock) {
		set_nonblock(d->rfd, true);
		if (wait_readable(d, d->total))
			goto out;
	}
	r = ulpo_recv(d->rfd, buf, cap, 0);
	if (r != 0)
		snprintf(d->rerr, sizeof(d->rerr), "after the last byte: recv %zd (%s), expected 0%s",
			 r, r < 0 ? strerror(errno) : "more data", after_poll(d, note));
out:
	free(buf);
	return NULL;
}

enum path_mode { M_OFFLOAD, M_OPTOUT, M_REFUSED, M_RXONLY, M_NMODES };
static const char *const mode_name[] = { "offloaded", "opted-out", "refused", "rx-only" };
static const int mode_path[] = { PATH_BOTH, 0, 0, ULPO_PATH_TOE_RX };
static const int bytes_variants[] = { 0, 8, 11 };	/* 1.2 AES-GCM-128, 1.3 AES-GCM-128, 1.3 ChaCha */

/* Two verdict lines: "<name> path" (the path each end got and the counters) and
 * "<name> data" (every byte and record type, MSG_WAITALL, the end of the stream). */
static void t_bytes(const char *name, enum path_mode mode, int vi, bool peer_optout,
		    bool nonblock, uint64_t seed)
{
	char pname[sizeof(name_buf) + 8], dname[sizeof(name_buf) + 8];
	int before = t_failed_checks;
	const struct variant *v = &variants[vi];
	struct dir ab = { .label = "a->b", .nonblock = nonblock, .seed = seed };
	struct dir ba = { .label = "b->a", .nonblock = nonblock, .seed = seed ^ 0xba };
	uint64_t st[ULPO_STAT_MAX];
	struct keys kab, kba;
	pthread_t th[4];
	int a, b;

	snprintf(pname, sizeof(pname), "%s path", name);
	snprintf(dname, sizeof(dname), "%s data", name);
	t_current = pname;
	keys_make(v, seed, &kab);
	keys_make(v, seed + 1, &kba);
	CHECK(tcp_pair(&a, &b) == 0);
	stats_now(st);
	/* a, the side under test, is set up while the mode holds; b after. */
	if (mode == M_REFUSED) {
		struct ulpo_fault_spec fs = { .sk_add_every = 1 };

		CHECK(ulpo_fault_configure(&fs) == 0);
	} else if (mode == M_RXONLY) {
		CHECK(ulpo_caps_set(NULL, 0, ULPO_DEV_CAP_TLS_TX) == 0);
	}
	tls_side(a, mode == M_OPTOUT, &kab, &kba);
	if (mode == M_REFUSED)
		ulpo_fault_remove();
	else if (mode == M_RXONLY)
		CHECK(ulpo_caps_set(NULL, ULPO_DEV_CAP_TLS_TX, 0) == 0);
	tls_side(b, peer_optout, &kba, &kab);
	CHECK_PATH(a, mode_path[mode]);
	CHECK_PATH(b, peer_optout ? 0 : PATH_BOTH);
	CHECK_STAT(st, ULPO_STAT_TOE_TX, (mode == M_OFFLOAD) + !peer_optout);
	CHECK_STAT(st, ULPO_STAT_TOE_RX, (mode == M_OFFLOAD || mode == M_RXONLY) + !peer_optout);
	CHECK_STAT(st, ULPO_STAT_TOE_OPT_OUT, (mode == M_OPTOUT) + peer_optout);
	CHECK_STAT(st, ULPO_STAT_TOE_REFUSED, mode == M_REFUSED);
	t_tally(before, pname, &passed_total, &failed_total);

	before = t_failed_checks;
	t_current = dname;
	ab.sfd = a;
	ab.rfd = b;
	ba.sfd = b;
	ba.rfd = a;
	script_make(&ab);
	script_make(&ba);
	if (nonblock) {
		set_nonblock(a, true);
		set_nonblock(b, true);
	}
	pthread_create(&th[0], NULL, receiver, &ab);
	pthread_create(&th[1], NULL, receiver, &ba);
	pthread_create(&th[2], NULL, sender, &ab);
	pthread_create(&th[3], NULL, sender, &ba);
	for (int i = 0; i < 4; i++) {
		if (join_within(th[i], 20000))
			continue;
		fail_msg("still running after 20 s (a->b %zu bytes, b->a %zu)", ab.total, ba.total);
		ulpo_shutdown(a, SHUT_RDWR);
		ulpo_shutdown(b, SHUT_RDWR);
		for (int j = i; j < 4; j++)
			if (!join_within(th[j], 5000))
				give_up("threads stuck after shutdown(SHUT_RDWR)");
		break;
	}
	for (int i = 0; i < 2; i++) {
		struct dir *d = i ? &ba : &ab;

		if (d->serr[0])
			fail_msg("%s sender: %s", d->label, d->serr);
		if (d->rerr[0])
			fail_msg("%s receiver: %s", d->label, d->rerr);
	}
	CHECK(ulpo_close(a) == 0);
	CHECK(ulpo_close(b) == 0);
	script_free(&ab);
	script_free(&ba);
	t_tally(before, dname, &passed_total, &failed_total);
}

/* ---- the policy, the path and its counters ---- */

static void t_stat_names(void)
{
	static const enum ulpo_stat s[] = {
		ULPO_STAT_TOE_TX, ULPO_STAT_TOE_RX, ULPO_STAT_TOE_OPT_OUT, ULPO_STAT_TOE_REFUSED,
		ULPO_STAT_TOE_DETACHED, ULPO_STAT_TOE_RESET, ULPO_STAT_LISTEN_OPEN,
		ULPO_STAT_LISTEN_CLOSE,
	};

	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
		const char *n = ulpo_stat_name(s[i]);

		CHECK(n && *n);
		for (size_t j = 0; n && j < i; j++)
			CHECK(!ulpo_stat_name(s[j]) || strcmp(n, ulpo_stat_name(s[j])));
	}
	CHECK(ulpo_stat_name(ULPO_STAT_MAX) == NULL);
}

/* Offloaded by default; a bit appears with each direction's keys. */
static void t_default_path(void)
{
	const struct variant *v = &variants[8];
	uint64_t st[ULPO_STAT_MAX];
	struct keys k1, k2;
	int c, s, no = -1;
	socklen_t l = sizeof(no);

	keys_make(v, 31, &k1);
	keys_make(v, 32, &k2);
	CHECK_EQ(ulpo_offload_get(), 1);
	stats_now(st);
	CHECK(tcp_pair(&c, &s) == 0);
	CHECK(ulp(c) == 0);
	CHECK_PATH(c, 0);
	CHECK(ulpo_getsockopt(c, SOL_ULPO, ULPO_NO_OFFLOAD, &no, &l) == 0);
	CHECK_EQ(no, 0);
	CHECK_EQ(l, sizeof(int));
	CHECK(ulpo_setsockopt(c, SOL_TLS, TLS_TX, k1.info, k1.len) == 0);
	CHECK_PATH(c, ULPO_PATH_TOE_TX);
	CHECK(ulpo_setsockopt(c, SOL_TLS, TLS_RX, k2.info, k2.len) == 0);
	CHECK_PATH(c, PATH_BOTH);
	tls_side(s, false, &k2, &k1);
	CHECK_PATH(s, PATH_BOTH);
	CHECK_STAT(st, ULPO_STAT_TOE_TX, 2);
	CHECK_STAT(st, ULPO_STAT_TOE_RX, 2);
	CHECK_STAT(st, ULPO_STAT_TOE_OPT_OUT, 0);
	CHECK_STAT(st, ULPO_STAT_TOE_REFUSED, 0);
	/* Only connections offload: a plain TCP socket has no path. */
	{
		int p1, p2;

		CHECK(tcp_pair(&p1, &p2) == 0);
		CHECK(path_of(p1) <= 0);
		close(p1);
		close(p2);
	}
	close_pair(c, s);
}

static void t_opt_out(void)
{
	const struct variant *v = &variants[0];
	uint64_t st[ULPO_STAT_MAX];
	int c, s, no = -1;
	socklen_t l = sizeof(no);

	stats_now(st);
	CHECK(tcp_pair(&c, &s) == 0);
	CHECK(opt_out(c) == 0);
	CHECK(ulpo_getsockopt(c, SOL_ULPO, ULPO_NO_OFFLOAD, &no, &l) == 0);
	CHECK_EQ(no, 1);
	CHECK_EQ(l, sizeof(int));
	{
		struct keys kc, ks;

		keys_make(v, 41, &kc);
		keys_make(v, 42, &ks);
		tls_side(c, false, &kc, &ks);
		tls_side(s, false, &ks, &kc);
	}
	CHECK_PATH(c, 0);
	CHECK_PATH(s, PATH_BOTH);
	no = -1;
	l = sizeof(no);
	CHECK(ulpo_getsockopt(c, SOL_ULPO, ULPO_NO_OFFLOAD, &no, &l) == 0);
	CHECK_EQ(no, 1);
	CHECK_STAT(st, ULPO_STAT_TOE_OPT_OUT, 1);
	CHECK_STAT(st, ULPO_STAT_TOE_TX, 1);
	CHECK_STAT(st, ULPO_STAT_TOE_RX, 1);
	/* Both ways between the software path and the device. */
	roundtrip(c, s);
	close_pair(c, s);
}

static void t_offload_off(void)
{
	uint64_t st[ULPO_STAT_MAX];
	int c0, s0, c, s;

	tls_pair_opts(&variants[8], 51, &c0, &s0, false, false);
	CHECK_PATH(c0, PATH_BOTH);
	ulpo_offload_set(0);
	CHECK_EQ(ulpo_offload_get(), 0);
	stats_now(st);
	tls_pair_opts(&variants[8], 53, &c, &s, false, false);
	CHECK_PATH(c, 0);
	CHECK_PATH(s, 0);
	CHECK_STAT(st, ULPO_STAT_TOE_OPT_OUT, 2);
	CHECK_STAT(st, ULPO_STAT_TOE_TX, 0);
	CHECK_STAT(st, ULPO_STAT_TOE_RX, 0);
	/* What a connection got, it keeps. */
	CHECK_PATH(c0, PATH_BOTH);
	close_pair(c, s);
	ulpo_offload_set(1);
	CHECK_EQ(ulpo_offload_get(), 1);
	tls_pair_opts(&variants[8], 55, &c, &s, false, false);
	CHECK_PATH(c, PATH_BOTH);
	CHECK_PATH(s, PATH_BOTH);
	close_pair(c, s);
	close_pair(c0, s0);
}

static void t_refused(void)
{
	const struct variant *v = &variants[8];
	struct ulpo_fault_spec fs = { .sk_add_every = 1 };
	uint64_t st[ULPO_STAT_MAX];
	struct keys kc, ks;
	int c, s;

	keys_make(v, 61, &kc);
	keys_make(v, 62, &ks);
	CHECK(tcp_pair(&c, &s) == 0);
	stats_now(st);
	CHECK(ulpo_fault_configure(&fs) == 0);
	tls_side(c, false, &kc, &ks);
	ulpo_fault_remove();
	tls_side(s, false, &ks, &kc);
	CHECK_PATH(c, 0);
	CHECK_PATH(s, PATH_BOTH);
	CHECK_STAT(st, ULPO_STAT_TOE_REFUSED, 1);
	CHECK_STAT(st, ULPO_STAT_TOE_OPT_OUT, 0);
	CHECK_STAT(st, ULPO_STAT_TOE_TX, 1);
	CHECK_STAT(st, ULPO_STAT_TOE_RX, 1);
	roundtrip(c, s);
	close_pair(c, s);
}

/* sk_add=2: the device takes the first connection, refuses the second, and so on. Only one
 * end of each pair gets TLS, so each pair is one toe_add. */
static void t_refused_every_2(void)
{
	const struct variant *v = &variants[8];
	struct ulpo_fault_spec fs = { .sk_add_every = 2 };
	uint64_t st[ULPO_STAT_MAX];
	int c[4], s[4];

	stats_now(st);
	CHECK(ulpo_fault_configure(&fs) == 0);
	for (int i = 0; i < 4; i++) {
		struct keys k1, k2;

		keys_make(v, 70 + 2 * (uint64_t)i, &k1);
		keys_make(v, 71 + 2 * (uint64_t)i, &k2);
		CHECK(tcp_pair(&c[i], &s[i]) == 0);
		tls_side(c[i], false, &k1, &k2);
	}
	ulpo_fault_remove();
	for (int i = 0; i < 4; i++) {
		CHECK_PATH(c[i], i % 2 ? 0 : PATH_BOTH);
		ulpo_close(c[i]);
		close(s[i]);
	}
	CHECK_STAT(st, ULPO_STAT_TOE_REFUSED, 2);
	CHECK_STAT(st, ULPO_STAT_TOE_TX, 2);
	CHECK_STAT(st, ULPO_STAT_TOE_RX, 2);
}

static void t_caps(void)
{
	uint64_t st[ULPO_STAT_MAX];
	int c, s;

	stats_now(st);
	CHECK(ulpo_caps_set(NULL, 0, ULPO_DEV_CAP_TLS_RX) == 0);
	tls_pair_opts(&variants[8], 81, &c, &s, false, true);
	CHECK(ulpo_caps_set(NULL, ULPO_DEV_CAP_TLS_RX, 0) == 0);
	CHECK_PATH(c, ULPO_PATH_TOE_TX);
	CHECK_STAT(st, ULPO_STAT_TOE_TX, 1);
	CHECK_STAT(st, ULPO_STAT_TOE_RX, 0);
	close_pair(c, s);

	tls_pair_opts(&variants[8], 83, &c, &s, false, true);
	CHECK_PATH(c, PATH_BOTH);
	close_pair(c, s);

	errno = 0;
	CHECK_ERR(ulpo_caps_set("nosuch", 0, ULPO_DEV_CAP_TLS_RX), ENODEV);

	CHECK(ulpo_caps_set(NULL, 0, ULPO_DEV_CAP_TOE) == 0);
	tls_pair_opts(&variants[8], 85, &c, &s, false, true);
	CHECK(ulpo_caps_set(NULL, ULPO_DEV_CAP_TOE, 0) == 0);
	CHECK_PATH(c, 0);
	close_pair(c, s);

	tls_pair_opts(&variants[8], 87, &c, &s, false, true);
	CHECK_PATH(c, PATH_BOTH);
	close_pair(c, s);
}

/* The fd numbers of closed offloaded connections, taken again at once by new ones (a
 * close leaves nothing of the old connection behind on the number): an offloaded pair
 * closed unused, then a pair on the same numbers sends both ways. */
static void t_fd_reuse(void)
{
	for (int i = 0; i < 100; i++) {
		int before = t_failed_checks, c, s, c2, s2;

		tls_pair_opts(&variants[8], 300 + 4 * (uint64_t)i, &c, &s, false, false);
		close_pair(c, s);
		tls_pair_opts(&variants[8], 302 + 4 * (uint64_t)i, &c2, &s2, i % 2, (i / 2) % 2);
		roundtrip(c2, s2);
		close_pair(c2, s2);
		if (t_failed_checks != before) {
			fail_msg("round %d (fds %d %d, then %d %d)", i, c, s, c2, s2);
			break;
		}
	}
}

/* ---- listen events and what an accepted connection inherits ---- */

static int listener(bool optout, struct sockaddr_in *a)
{
	socklen_t al = sizeof(*a);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(l >= 0);
	CHECK(bind(l, (void *)a, sizeof(*a)) == 0);
	CHECK(getsockname(l, (void *)a, &al) == 0);
	if (optout)
		CHECK(opt_out(l) == 0);
	return l;
}

/* Accept one connection (ulpo_accept, or ulpo_accept4 with SOCK_CLOEXEC), give it TLS and
 * check its path; a round trip with the connecting end, which stays on the software path. */
static void accepted(int l, const struct sockaddr_in *a, bool use4, bool inherit_optout,
		     uint64_t seed)
{
	const struct variant *v = &variants[8];
	int c = socket(AF_INET, SOCK_STREAM, 0), s, no = -1;
	socklen_t nl = sizeof(no);
	struct keys kc, ks;

	CHECK(connect(c, (const void *)a, sizeof(*a)) == 0);
	s = use4 ? ulpo_accept4(l, NULL, NULL, SOCK_CLOEXEC) : ulpo_accept(l, NULL, NULL);
	CHECK(s >= 0);
	if (s < 0) {
		close(c);
		return;
	}
	if (use4)
		CHECK(fcntl(s, F_GETFD) & FD_CLOEXEC);
	CHECK(ulpo_getsockopt(s, SOL_ULPO, ULPO_NO_OFFLOAD, &no, &nl) == 0);
	CHECK_EQ(no, inherit_optout);
	keys_make(v, seed, &kc);
	keys_make(v, seed + 1, &ks);
	tls_side(c, true, &kc, &ks);
	tls_side(s, false, &ks, &kc);
	CHECK_PATH(s, inherit_optout ? 0 : PATH_BOTH);
	roundtrip(c, s);
	close_pair(c, s);
}

static void t_listen(void)
{
	uint64_t st[ULPO_STAT_MAX];
	struct sockaddr_in a;
	int l;

	if (!ulpo_listen || !ulpo_accept || !ulpo_accept4) {
		fail_msg("ulpo_listen %s, ulpo_accept %s, ulpo_accept4 %s in libulpo",
			 ulpo_listen ? "found" : "missing", ulpo_accept ? "found" : "missing",
			 ulpo_accept4 ? "found" : "missing");
		return;
	}
	/* Offloaded listener: its connections are offloaded. */
	l = listener(false, &a);
	stats_now(st);
	CHECK(ulpo_listen(l, 16) == 0);
	CHECK_STAT(st, ULPO_STAT_LISTEN_OPEN, 1);
	CHECK_STAT(st, ULPO_STAT_LISTEN_CLOSE, 0);
	accepted(l, &a, false, false, 91);
	accepted(l, &a, true, false, 93);
	stats_now(st);
	CHECK(ulpo_close(l) == 0);
	CHECK_STAT(st, ULPO_STAT_LISTEN_CLOSE, 1);
	CHECK_STAT(st, ULPO_STAT_LISTEN_OPEN, 0);

	/* A listener that opted out: its connections inherit that. */
	l = listener(true, &a);
	CHECK(ulpo_listen(l, 16) == 0);
	stats_now(st);
	accepted(l, &a, false, true, 95);
	accepted(l, &a, true, true, 97);
	/* The accepted ends (the connecting ends opted out by themselves too). */
	CHECK_STAT(st, ULPO_STAT_TOE_OPT_OUT, 4);
	CHECK_STAT(st, ULPO_STAT_TOE_TX, 0);
	CHECK(ulpo_close(l) == 0);
}

/* ---- close() with bytes queued, SO_LINGER 0 ---- */

struct bulk {
	int fd;
	const uint8_t *buf;
	size_t len, done;
	int err;
	long long t0, t1;
};

static void *bulk_send(void *arg)
{
	struct bulk *b = arg;
	uint64_t rs = 0xb01c;

	while (b->done < b->len) {
		size_t n = 65536 + t_rand(&rs) % (1u << 20);
		ssize_t r;

		if (n > b->len - b->done)
			n = b->len - b->done;
		r = ulpo_send(b->fd, b->buf + b->done, n, MSG_NOSIGNAL);
		if (r <= 0) {
			b->err = r < 0 ? errno : EPIPE;
			break;
		}
		b->done += (size_t)r;
	}
	return NULL;
}

static void *bulk_close(void *arg)
{
	struct bulk *b = arg;

	b->t0 = mono_ns();
	b->err = ulpo_close(b->fd) ? errno : 0;
	b->t1 = mono_ns();
	return NULL;
}

/* Read into b->buf until len bytes, EOF or an error (10 s without data is an error).
 * b->done: bytes read; b->err: 0 at EOF, errno, or ETIMEDOUT. */
static void *bulk_recv(void *arg)
{
	struct bulk *b = arg;
	uint8_t *p = (uint8_t *)b->buf;

	b->err = -1;
	for (;;) {
		struct pollfd pf = { .fd = b->fd, .events = POLLIN };
		size_t room = b->len - b->done;
		uint8_t sink[4096];
		ssize_t r;
		int pr = ulpo_poll(&pf, 1, 10000);

		if (pr == 0) {
			b->err = ETIMEDOUT;
			return NULL;
		}
		if (pr < 0) {
			b->err = errno;
			return NULL;
		}
		/* Past the expected length: any more bytes are an error, read into a sink. */
		if (room)
			r = ulpo_recv(b->fd, p + b->done, room > (1u << 20) ? 1u << 20 : room,
				      MSG_DONTWAIT);
		else
			r = ulpo_recv(b->fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (r < 0 && errno == EAGAIN)
			continue;
		if (r < 0) {
			b->err = errno;
			return NULL;
		}
		if (r == 0) {
			b->err = 0;
			return NULL;
		}
		if (!room) {
			b->err = EMSGSIZE;	/* bytes beyond what was sent */
			return NULL;
		}
		b->done += (size_t)r;
	}
}

static void t_close_queued(bool peer_offloaded, uint64_t seed)
{
	const size_t total = 8u << 20;
	uint8_t *src = malloc(total), *dst = malloc(total);
	struct bulk tx = { .buf = src, .len = total }, cl, rx = { .buf = dst, .len = total };
	uint64_t st[ULPO_STAT_MAX], rs = seed;
	pthread_t th, rth;
	bool reading = false;
	int c, s, nfd;

	t_fill(&rs, src, total);
	tls_pair_opts(&variants[8], seed, &c, &s, false, !peer_offloaded);
	CHECK_PATH(c, PATH_BOTH);
	CHECK_PATH(s, peer_offloaded ? PATH_BOTH : 0);
	rx.fd = s;
	/* 8 MiB into a connection whose peer does not read: every send returns. */
	tx.fd = c;
	pthread_create(&th, NULL, bulk_send, &tx);
	if (!join_within(th, 10000)) {
		fail_msg("sends blocked with %zu of %zu bytes taken (the peer not reading)", tx.done,
			 total);
		pthread_create(&rth, NULL, bulk_recv, &rx);
		reading = true;
		if (!join_within(th, 20000))
			give_up("sender stuck even with the peer reading");
	}
	CHECK_EQ(tx.err, 0);
	CHECK_EQ(tx.done, total);
	/* close() returns at once and leaves the rest to the device. */
	stats_now(st);
	cl = (struct bulk){ .fd = c };
	pthread_create(&th, NULL, bulk_close, &cl);
	if (!join_within(th, 3000)) {
		fail_msg("close() has not returned after 3 s (the peer not reading)");
		if (!reading) {
			pthread_create(&rth, NULL, bulk_recv, &rx);
			reading = true;
		}
		if (!join_within(th, 20000))
			give_up("close() stuck even with the peer reading");
	}
	CHECK_EQ(cl.err, 0);
	info("close() took %.1f ms", (double)(cl.t1 - cl.t0) / 1e6);
	if (cl.t1 - cl.t0 > 200 * 1000000LL)
		fail_msg("close() took %.1f ms, expected at most 200 ms",
			 (double)(cl.t1 - cl.t0) / 1e6);
	/* The number is the application's again: a new socket on it, closed, changes nothing
	 * for the old connection. */
	nfd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(nfd >= 0);
	info("the next socket() got fd %d (the closed one was %d)", nfd, c);
	if (nfd >= 0 && nfd != c) {
		CHECK_EQ(dup2(nfd, c), c);
		close(nfd);
		nfd = c;
	}
	CHECK(path_of(nfd) <= 0);
	CHECK(ulpo_close(nfd) == 0);
	if (!reading)
		pthread_create(&rth, NULL, bulk_recv, &rx);
	if (!join_within(rth, 30000)) {
		fail_msg("peer still reading after 30 s (%zu of %zu bytes)", rx.done, total);
		ulpo_shutdown(s, SHUT_RDWR);
		if (!join_within(rth, 5000))
			give_up("reader stuck after shutdown");
	}
	CHECK_EQ(rx.done, total);
	if (rx.done == total) {
		size_t i = 0;

		while (i < total && src[i] == dst[i])
			i++;
		if (i < total)
			fail_msg("byte %zu of %zu differs", i, total);
	}
	if (rx.err)
		fail_msg("the stream did not end with EOF: %s", strerror(rx.err));
	CHECK_STAT(st, ULPO_STAT_TOE_DETACHED, 1);
	ulpo_close(s);
	free(src);
	free(dst);
}

/* SO_LINGER {1, 0}: close() drops what is queued and resets the connection. */
static void t_linger0(bool optout, uint64_t seed)
{
	const size_t total = 128u << 10;
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	uint8_t *src = malloc(total), *dst = malloc(total);
	struct bulk cl, rx = { .buf = dst, .len = total };
	uint64_t st[ULPO_STAT_MAX], rs = seed;
	pthread_t th, rth;
	bool reading = false;
	int c, s;

	t_fill(&rs, src, total);
	tls_pair_opts(&variants[8], seed, &c, &s, optout, true);
	CHECK_PATH(c, optout ? 0 : PATH_BOTH);
	CHECK(ulpo_setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == 0);
	{
		struct bulk tx = { .fd = c, .buf = src, .len = total };

		pthread_create(&th, NULL, bulk_send, &tx);
		if (!join_within(th, 10000)) {
			fail_msg("send of %zu bytes blocked (%zu taken)", total, tx.done);
			ulpo_shutdown(c, SHUT_RDWR);
			if (!join_within(th, 5000))
				give_up("sender stuck after shutdown");
		}
		CHECK_EQ(tx.done, total);
	}
	stats_now(st);
	cl = (struct bulk){ .fd = c };
	pthread_create(&th, NULL, bulk_close, &cl);
	rx.fd = s;
	if (!join_within(th, 3000)) {
		fail_msg("close() with SO_LINGER 0 has not returned after 3 s");
		pthread_create(&rth, NULL, bulk_recv, &rx);
		reading = true;
		if (!join_within(th, 20000))
			give_up("close() stuck even with the peer reading");
	}
	CHECK_EQ(cl.err, 0);
	info("close() took %.1f ms", (double)(cl.t1 - cl.t0) / 1e6);
	/* The peer may read some of it first; the stream must end in ECONNRESET, not EOF. */
	if (!reading)
		pthread_create(&rth, NULL, bulk_recv, &rx);
	if (!join_within(rth, 20000)) {
		ulpo_shutdown(s, SHUT_RDWR);
		if (!join_within(rth, 5000))
			give_up("reader stuck after shutdown");
	}
	info("the peer read %zu of %zu bytes, then %s", rx.done, total,
	     rx.err ? strerror(rx.err) : "EOF");
	if (rx.err != ECONNRESET)
		fail_msg("the peer's stream ended with %s, expected ECONNRESET",
			 rx.err ? strerror(rx.err) : "EOF (recv 0)");
	if (rx.done && memcmp(src, dst, rx.done))
		fail_msg("the bytes the peer read before the reset differ");
	if (!optout)
		CHECK_STAT(st, ULPO_STAT_TOE_RESET, 1);
	else {
		uint64_t v[ULPO_STAT_MAX];

		stats_now(v);
		info("%s went up by %lld on the software path", ulpo_stat_name(ULPO_STAT_TOE_RESET),
		     (long long)(v[ULPO_STAT_TOE_RESET] - st[ULPO_STAT_TOE_RESET]));
	}
	ulpo_close(s);
	free(src);
	free(dst);
}

/* ---- reads that must not hang: on a thread of their own ---- */

/* Join th within ms. A thread still in a call on fd then is a failed check: fd is shut
 * down to end the call (a thread that does not end even so ends the binary). */
static void join_or_shutdown(pthread_t th, int fd, int ms, const char *what)
{
	if (join_within(th, ms))
		return;
	shutdown(fd, SHUT_RDWR);
	if (!join_within(th, 5000)) {
		char why[200];

		snprintf(why, sizeof(why), "%s: still running after shutdown(SHUT_RDWR)", what);
		give_up(why);
	}
	fail_msg("%s: returned only at shutdown, after %d ms", what, ms);
}

struct bg_recv {
	pthread_t th;
	int fd, flags;
	size_t len;
	ssize_t r;
	int err;
	uint8_t buf[128];
};

static void *bg_recv_main(void *arg)
{
	struct bg_recv *b = arg;

	b->r = ulpo_recv(b->fd, b->buf, b->len, b->flags);
	b->err = errno;
	return NULL;
}

static void bg_recv_start(struct bg_recv *b, int fd, size_t len, int flags)
{
	*b = (struct bg_recv){ .fd = fd, .len = len, .flags = flags };
	CHECK(pthread_create(&b->th, NULL, bg_recv_main, b) == 0);
}

/* ---- a reader past everything the device holds ---- */

/* 100 one-byte records: the device holds 63 of them and stops (its held list is full).
 * A blocking MSG_PEEK|MSG_WAITALL for 120 bytes looks past them: the reader reads and
 * decrypts the rest itself, as the software path does, and waits, as the kernel's, for
 * the 20 records sent 200 ms later (before, it waited for ever, then returned what the
 * device held). It returns all 120, in order; then the reads return them again. */
static void t_peek_past_held(void)
{
	struct bg_recv a;
	uint8_t buf[128], want[120];
	int c, s;
	ssize_t r;
	long long t0;

	tls_pair_opts(&variants[8], base_seed ^ 0x9ee1, &c, &s, false, false);
	CHECK_PATH(s, PATH_BOTH);
	for (int i = 0; i < 120; i++)
		want[i] = (uint8_t)(i * 7 + 1);
	for (int i = 0; i < 100; i++)
		CHECK(ulpo_send(c, &want[i], 1, 0) == 1);
	/* Let the device read and decrypt ahead until it stops. */
	t0 = mono_ns();
	while (mono_ns() - t0 < 300 * 1000000LL)
		usleep(10000);
	set_nonblock(s, false);
	bg_recv_start(&a, s, 120, MSG_PEEK | MSG_WAITALL);
	usleep(200000);
	for (int i = 100; i < 120; i++)
		CHECK(ulpo_send(c, &want[i], 1, 0) == 1);
	join_or_shutdown(a.th, s, 10000, "a peek past the held records");
	CHECK_EQ(a.r, 120);
	if (a.r > 0 && a.r <= 120)
		CHECK(!memcmp(a.buf, want, (size_t)a.r));
	info("the peek returned %zd of 120 bytes", a.r);
	r = read_timed(s, buf, 120);
	CHECK_EQ(r, 120);
	if (r == 120)
		CHECK(!memcmp(buf, want, 120));
	close_pair(c, s);
}

/* ---- a partial record: non-blocking reads say EAGAIN at once ---- */

struct partial_arg {
	int c, s;
	int eagain, other;	/* answers of the reads */
	long long timeo_ms;	/* the blocking read with SO_RCVTIMEO 200 ms */
	ssize_t timeo_r;
	int timeo_err;
};

static void *partial_reader(void *arg)
{
	struct partial_arg *a = arg;
	/* A TLS 1.3 record header announcing 200 bytes, and 150 of them: never whole. */
	uint8_t rec[5 + 150] = { 0x17, 0x03, 0x03, 0x00, 200 }, buf[256];
	struct timeval tv = { .tv_usec = 200000 };
	long long t0;

	for (size_t i = 0; i < sizeof(rec); i++) {
		ssize_t r;

		if (i >= 5)
			rec[i] = (uint8_t)(i * 13);
		/* Straight to the kernel: the bytes are in s's TCP queue when send returns. */
		if (send(a->c, &rec[i], 1, MSG_NOSIGNAL) != 1)
			break;
		r = ulpo_recv(a->s, buf, sizeof(buf), i & 1 ? MSG_DONTWAIT : 0);
		if (r < 0 && errno == EAGAIN)
			a->eagain++;
		else
			a->other++;
	}
	set_nonblock(a->s, false);
	setsockopt(a->s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	t0 = mono_ns();
	a->timeo_r = ulpo_recv(a->s, buf, sizeof(buf), 0);
	a->timeo_err = errno;
	a->timeo_ms = (mono_ns() - t0) / 1000000;
	return NULL;
}

/* A non-blocking read while TCP holds part of a record returns EAGAIN, as the kernel's:
 * the reader saw bytes in TCP, let the device take them, and must hear that they made no
 * record (it waited for ever: fuzz_tls_rx timed out). Each of 155 bytes is sent alone,
 * then read at once, O_NONBLOCK and MSG_DONTWAIT by turns; then a blocking read with
 * SO_RCVTIMEO 200 ms ends with EAGAIN after about that. */
static void t_partial_nonblock(void)
{
	struct partial_arg a = { 0 };
	pthread_t th;

	tls_pair_opts(&variants[8], base_seed ^ 0x9a27, &a.c, &a.s, false, false);
	CHECK_PATH(a.s, PATH_BOTH);
	set_nonblock(a.s, true);
	CHECK(pthread_create(&th, NULL, partial_reader, &a) == 0);
	join_or_shutdown(th, a.s, 20000, "non-blocking reads of a partial record");
	CHECK_EQ(a.eagain, 155);
	CHECK_EQ(a.other, 0);
	CHECK(a.timeo_r == -1 && a.timeo_err == EAGAIN);
	CHECK(a.timeo_ms >= 150 && a.timeo_ms < 5000);
	info("155 reads of a partial record: %d EAGAIN, %d other; SO_RCVTIMEO read: %zd "
	     "after %lld ms", a.eagain, a.other, a.timeo_r, a.timeo_ms);
	close_pair(a.c, a.s);
}

/* ---- the reader hands the rest back to the device ---- */

/* TLS 1.3 from a raw peer: a handshake record (the device leaves it to the reader), two
 * empty data records (one with 0 as its outer type, which 1.3 ignores, as the kernel:
 * the device does not take it either), and "x" 200 ms later. The reader takes the
 * handshake record; a blocking read then decrypts the empty records itself and must hand
 * what follows back to the device before it sleeps (it slept for ever, with "x" unread in
 * TCP: fuzz_tls_rx timed out). */
static void t_after_stuck(void)
{
	const struct variant *v = &variants[8];
	struct bg_recv a;
	uint8_t wire[256], cbuf[CMSG_SPACE(1)], hs[16];
	struct iovec iov = { .iov_base = hs, .iov_len = sizeof(hs) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	struct keys kc, ks;
	struct codec cd;
	size_t n = 0, e;
	int c, s;

	keys_make(v, base_seed ^ 0x57c4, &kc);
	keys_make(v, base_seed ^ 0x57c5, &ks);
	CHECK(tcp_pair(&c, &s) == 0);
	tls_side(s, false, &ks, &kc);
	CHECK_PATH(s, PATH_BOTH);
	CHECK(codec_init(&cd, v, &kc) == 0);
	n += codec_seal(&cd, ULPO_TLS_RECORD_HANDSHAKE, "h", 1, 0, wire + n);
	n += codec_seal(&cd, ULPO_TLS_RECORD_DATA, "", 0, 0, wire + n);
	e = n;
	n += codec_seal(&cd, ULPO_TLS_RECORD_DATA, "", 0, 0, wire + n);
	wire[e] = 0;
	CHECK_EQ(send(c, wire, n, MSG_NOSIGNAL), n);
	set_nonblock(s, false);
	CHECK_EQ(ulpo_recvmsg(s, &m, 0), 1);
	CHECK(hs[0] == 'h' && m.msg_controllen >= CMSG_LEN(1) &&
	      *CMSG_DATA(CMSG_FIRSTHDR(&m)) == ULPO_TLS_RECORD_HANDSHAKE);
	bg_recv_start(&a, s, 16, 0);
	/* "x" comes once the reader sleeps: only a device watching TCP takes it. */
	usleep(200000);
	n = codec_seal(&cd, ULPO_TLS_RECORD_DATA, "x", 1, 0, wire);
	codec_free(&cd);
	CHECK_EQ(send(c, wire, n, MSG_NOSIGNAL), n);
	join_or_shutdown(a.th, s, 10000, "the read after the records the reader decrypted");
	CHECK(a.r == 1 && a.buf[0] == 'x');
	info("the read after the handshake and two empty records: %zd (%s)", a.r,
	     a.r < 0 ? strerror(a.err) : "data");
	close_pair(c, s);
}

/* ---- memory pressure: the device's connections together queue at most limits.mem ---- */

/* Non-blocking sends into fd until it stays unwritable for 300 ms (its peer not
 * reading); the stream is `chunk` repeated, *pos bytes of it sent before. The bytes
 * it took. */
static size_t fill_until_full(int fd, const uint8_t *chunk, size_t len, size_t *pos)
{
	struct pollfd pf = { .fd = fd, .events = POLLOUT };
	size_t took = 0;

	do {
		ssize_t r;

		while ((r = ulpo_send(fd, chunk + *pos % len, len - *pos % len,
				      MSG_DONTWAIT | MSG_NOSIGNAL)) > 0) {
			took += (size_t)r;
			*pos += (size_t)r;
		}
		if (r < 0 && errno != EAGAIN) {
			fail_msg("send: %s after %zu bytes", strerror(errno), took);
			break;
		}
	} while (ulpo_poll(&pf, 1, 300) > 0 && took < (64u << 20));
	return took;
}

/* Read `n` bytes of the repeated `chunk` from fd and compare. */
static void drain_check(int fd, const uint8_t *chunk, size_t len, size_t n, const char *who)
{
	static uint8_t sink[1u << 20];

	for (size_t got = 0; got < n;) {
		ssize_t r = read_timed(fd, sink, n - got < sizeof(sink) ? n - got : sizeof(sink));

		if (r <= 0) {
			fail_msg("%s: %zd after %zu of %zu bytes", who, r, got, n);
			return;
		}
		for (ssize_t i = 0; i < r; i++)
			if (sink[i] != chunk[(got + (size_t)i) % len]) {
				fail_msg("%s: byte %zu differs", who, got + (size_t)i);
				return;
			}
		got += (size_t)r;
	}
}

/* With the device's memory bound at 6 MiB, a first connection whose peer does not read
 * queues up to it; then the device is under pressure and a second, beside it, gets
 * 64 KiB of queue (both also fill TCP's buffers, fixed small here). Once
 * the first one's peer has read everything the pressure is gone and the second queues
 * megabytes again. Every byte of both arrives, in order. */
static void t_mem_pressure(void)
{
	struct ulpo_device *dev = ulpo_device_toe();
	const size_t len = 65536;
	uint8_t *chunk = malloc(len);
	uint32_t saved = dev->limits.mem;
	size_t a, b, b2, pos1 = 0, pos2 = 0;
	int c1, s1, c2, s2;
	uint64_t rs = base_seed ^ 0x3e3;

	t_fill(&rs, chunk, len);
	dev->limits.mem = 6u << 20;
	tls_pair_opts(&variants[8], base_seed ^ 0x3e30, &c1, &s1, false, false);
	tls_pair_opts(&variants[8], base_seed ^ 0x3e32, &c2, &s2, false, false);
	CHECK_PATH(c1, PATH_BOTH);
	CHECK_PATH(c2, PATH_BOTH);
	/* TCP's own buffers fixed and small, straight to the kernel (ulpo would take
	 * SO_SNDBUF as the queue's bound): autotuned, they took up to 6 MiB more under
	 * load, and the first queue drained into them, ending the pressure. */
	for (int i = 0; i < 2; i++) {
		int small = 65536;

		CHECK(setsockopt(i ? c2 : c1, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)) == 0);
		CHECK(setsockopt(i ? s2 : s1, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)) == 0);
	}
	a = fill_until_full(c1, chunk, len, &pos1);
	b = fill_until_full(c2, chunk, len, &pos2);
	info("peers not reading: the first connection took %.2f MiB, the second beside it "
	     "%.2f MiB (device under pressure)", (double)a / (1 << 20), (double)b / (1 << 20));
	if (a < b + (3u << 20))
		fail_msg("first took %zu bytes, second %zu: expected at least 3 MiB less for the "
			 "second (the first queued 6 MiB, the second 64 KiB)", a, b);
	drain_check(s1, chunk, len, a, "first peer");
	b2 = fill_until_full(c2, chunk, len, &pos2);
	info("after the first peer read everything, the second took %.2f MiB more",
	     (double)b2 / (1 << 20));
	if (b2 < (3u << 20))
		fail_msg("second took only %zu more bytes with the pressure gone", b2);
	drain_check(s2, chunk, len, b + b2, "second peer");
	close_pair(c1, s1);
	close_pair(c2, s2);
	dev->limits.mem = saved;
	free(chunk);
}

/* ---- main ---- */

static void on_alarm(int sig)
{
	static const char m1[] = "FAIL watchdog: still running after the binary's time limit in ";
	const char *cur = t_current ? t_current : "?";

	(void)sig;
	(void)!write(2, m1, sizeof(m1) - 1);
	(void)!write(2, cur, strlen(cur));
	(void)!write(2, "\n", 1);
	_exit(1);
}

static const char *only;	/* TOE_ONLY: run the tests whose name has this in it */

static bool wanted(const char *name)
{
	return !only || strstr(name, only);
}

static void run(const char *name, void (*fn)(void))
{
	int before = t_failed_checks;

	if (!wanted(name))
		return;
	t_current = name;
	fn();
	t_tally(before, name, &passed_total, &failed_total);
}

static void t_close_sw_peer(void) { t_close_queued(false, base_seed ^ 0xc105e1); }
static void t_close_offloaded_peer(void) { t_close_queued(true, base_seed ^ 0xc105e2); }
static void t_linger0_offloaded(void) { t_linger0(false, base_seed ^ 0x11e0); }
static void t_linger0_opted_out(void) { t_linger0(true, base_seed ^ 0x11e1); }

int main(int argc, char **argv)
{
	const char *e = argc > 1 ? argv[1] : getenv("TOE_SEED");
	const char *eng = getenv("ULPO_ENGINE");

	if (e)
		base_seed = strtoull(e, NULL, 0);
	only = getenv("TOE_ONLY");
	/* ulpo's own devices, whatever the kernel has, and the default policy. */
	setenv("ULPO_DEVICE", "sw", 1);
	unsetenv("ULPO_OFFLOAD");
	unsetenv("ULPO_FAULT");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	alarm(120);
	printf("seed %#llx (engine %s)\n", (unsigned long long)base_seed, eng ? eng : "inline");
	fflush(stdout);

	run("stat_names", t_stat_names);
	run("default_path", t_default_path);
	run("opt_out", t_opt_out);
	run("offload_off", t_offload_off);
	run("refused", t_refused);
	run("refused_every_2", t_refused_every_2);
	run("caps", t_caps);
	run("fd_reuse", t_fd_reuse);
	run("listen", t_listen);
	for (int mode = 0; mode < M_NMODES; mode++) {
		for (size_t vi = 0; vi < sizeof(bytes_variants) / sizeof(bytes_variants[0]); vi++) {
			for (int peer = 0; peer < 2; peer++) {
				for (int nb = 0; nb < 2; nb++) {
					uint64_t seed = base_seed ^ ((uint64_t)mode << 40 |
								     (uint64_t)vi << 32 |
								     (uint64_t)peer << 16 |
								     (uint64_t)nb << 8 | 0xb5);
					snprintf(name_buf, sizeof(name_buf),
						 "bytes %s %s peer-%s %s seed=%#llx",
						 mode_name[mode], variants[bytes_variants[vi]].name,
						 peer ? "sw" : "offloaded",
						 nb ? "nonblocking" : "blocking",
						 (unsigned long long)seed);
					if (wanted(name_buf))
						t_bytes(name_buf, (enum path_mode)mode,
							bytes_variants[vi], peer, nb, seed);
				}
			}
		}
	}
	run("close_8m_queued peer-sw", t_close_sw_peer);
	run("close_8m_queued peer-offloaded", t_close_offloaded_peer);
	run("linger0 offloaded", t_linger0_offloaded);
	run("linger0 opted-out", t_linger0_opted_out);
	run("mem_pressure", t_mem_pressure);
	run("peek_past_held", t_peek_past_held);
	run("partial_nonblock", t_partial_nonblock);
	run("after_stuck", t_after_stuck);
	printf("%d passed, %d failed\n", passed_total, failed_total);
	return failed_total ? 1 : 0;
}
