/* test_interleave.c - random interleavings of the calls the LD_PRELOAD shim interposes,
 * on one loopback TCP connection with kTLS on both ends (TLS 1.2 and 1.3, AES-128-GCM)
 * and data flowing both ways: no byte lost, doubled or reordered, no hang, no crash (the
 * ASan build runs it too). Plain libc calls only, no ulpo header: without the shim it
 * runs on the kernel's kTLS, if loaded.
 *
 * Each direction's stream is a pattern, byte i = f(seed, direction, i), checked by the
 * receiver in order. The steps come from a seeded generator (argv[1], else ULPO_SEED,
 * else random; always printed; argv[2]: steps per version): a side and one of send/
 * sendto/sendmsg/write/writev/sendmmsg/sendfile/splice pipe->socket, recv/recvfrom/
 * recvmsg (record-type cmsg or not, MSG_PEEK)/read/readv/recvmmsg/splice socket->pipe,
 * poll/ppoll/select/epoll_wait without timeout (and a short poll now and then), dup
 * (then close it, dup2 onto it, or close the first fd), O_NONBLOCK off for a while; in
 * phases where one side or both do not receive, or neither sends. The same seed makes
 * the same choices; what the calls return may still depend on timing (async engine, TCP).
 *
 * Nothing blocks unless it cannot: sends are non-blocking (EAGAIN: the bytes go later),
 * a receive is non-blocking or follows a readiness report, which must then hold
 * (readable: a whole record is there, so a receive returns data; writable: a small send
 * takes something). "settle": what the kernel would have in closed records must reach
 * the peer while the sender makes no call. A watchdog turns a hang into a failure with
 * the seed. At the end each side closes its open record with one byte without MSG_MORE,
 * both shut down while two threads read to EOF, and every byte sent must have arrived.
 *
 * ULPO_TRACE=1 prints every call (for a minimal reproduction); ULPO_PAUSE_ON_FAIL=1 stops at a
 * failure, for a debugger. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef TCP_ULP
#define TCP_ULP 31
#endif
#ifndef SOL_TLS
#define SOL_TLS 282
#endif

#define STEPS		3000		/* per TLS version, unless argv[2] says */
#define MAX_IO		70000		/* bytes per call at most */
#define TLS_MAX_PLAIN	16384		/* one record's data: the most one splice out gives */
#define WATCHDOG_S	120
#define SETTLE_S	3		/* closed records reach the peer: no byte for this long fails */
#define MAX_MSGS	4		/* messages per sendmmsg/recvmmsg */
#define MAX_IOV		8
#define REC_TYPE_DATA	23

enum op {
	OP_SEND, OP_SENDTO, OP_SENDMSG, OP_WRITE, OP_WRITEV, OP_SENDMMSG, OP_SENDFILE,
	OP_SPLICE_IN,
	OP_RECV, OP_RECVFROM, OP_RECVMSG, OP_READ, OP_READV, OP_RECVMMSG, OP_SPLICE_OUT,
	OP_POLL, OP_PPOLL, OP_SELECT, OP_EPOLL, OP_WAIT,
	OP_DUP, OP_BLOCK, OP_SETTLE,
	NOPS
};
#define N_SEND_OPS	(OP_RECV - OP_SEND)
#define N_RECV_OPS	(OP_POLL - OP_RECV)

static const struct {
	const char *name;
	int weight;
} ops[NOPS] = {
	[OP_SEND] = { "send", 5 },		[OP_SENDTO] = { "sendto", 3 },
	[OP_SENDMSG] = { "sendmsg", 5 },	[OP_WRITE] = { "write", 3 },
	[OP_WRITEV] = { "writev", 3 },		[OP_SENDMMSG] = { "sendmmsg", 3 },
	[OP_SENDFILE] = { "sendfile", 3 },	[OP_SPLICE_IN] = { "splice-in", 3 },
	[OP_RECV] = { "recv", 5 },		[OP_RECVFROM] = { "recvfrom", 3 },
	[OP_RECVMSG] = { "recvmsg", 5 },	[OP_READ] = { "read", 3 },
	[OP_READV] = { "readv", 3 },		[OP_RECVMMSG] = { "recvmmsg", 3 },
	[OP_SPLICE_OUT] = { "splice-out", 3 },
	[OP_POLL] = { "poll", 3 },		[OP_PPOLL] = { "ppoll", 2 },
	[OP_SELECT] = { "select", 2 },		[OP_EPOLL] = { "epoll_wait", 3 },
	[OP_WAIT] = { "poll-wait", 1 },
	[OP_DUP] = { "dup", 2 },		[OP_BLOCK] = { "blocking", 2 },
	[OP_SETTLE] = { "settle", 1 },
};

/* Per op: calls, calls that moved bytes (or reported readiness), EAGAIN. */
static struct {
	unsigned long calls, took, again;
} counts[NOPS];
static unsigned long n_readable, n_writable, n_gaps, n_swaps, n_peeks;

/* From stream byte `pos` on, a direction carries the pattern's bytes from `pat` on. One
 * segment, unless sendmmsg had a message taken in part and the next one whole. */
struct seg {
	uint64_t pos, pat;
};

/* What one side sends, as the other receives it. */
struct dir {
	const char *name;	/* "a->b" */
	uint64_t key;		/* the pattern's */
	uint64_t sent;		/* stream bytes the sending socket took */
	uint64_t rcvd;		/* stream bytes the receiver took out (checked) */
	size_t in_pipe;		/* pattern bytes in the sender's splice pipe, after `sent` */
	/* The kernel's records (tls_sw_sendmsg): when known, the bytes before open_start
	 * are in closed records and must reach the peer with no further call here. */
	bool closed_known;
	uint64_t open_start;
	struct seg *segs;
	size_t nsegs, cap;
};

struct side {
	const char *name;
	int fd;			/* the socket's fd: the first, or a dup that took over */
	int dupfd;		/* a second fd for the socket, or -1 */
	int dup_left;		/* steps until dupfd goes */
	bool nonblock;		/* O_NONBLOCK, as last set */
	int block_left;		/* steps until O_NONBLOCK is set again */
	int txpipe[2], rxpipe[2];
	size_t pipe_cap;
	int file;		/* sendfile's source */
};

static struct side sides[2];
static struct dir dirs[2];		/* dirs[s]: what sides[s] sends */
static int g_ep;
static unsigned long long g_seed;
static const char *g_tls = "-";
static volatile sig_atomic_t g_step = -2;	/* -1: the end; -2: setup */
static bool g_final, g_trace;
static uint64_t rng;
static uint8_t txbuf[MAX_IO], rxbuf[MAX_IO];
/* The phase of the flow: who may not receive or send for now. */
static bool rx_paused[2], tx_paused[2];

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...)
{
	va_list ap;

	if (g_step >= 0)
		printf("FAIL: TLS %s, step %d, seed %llu: ", g_tls, (int)g_step, g_seed);
	else
		printf("FAIL: TLS %s, %s, seed %llu: ", g_tls, g_step == -1 ? "the end" : "setup",
		       g_seed);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n  rerun: ULPO_SEED=%llu (ULPO_TRACE=1 prints each call)\n", g_seed);
	fflush(stdout);
	if (getenv("ULPO_PAUSE_ON_FAIL")) {
		/* For a debugger: the failing state as it is (other threads run on). */
		printf("  paused: pid %d\n", (int)getpid());
		fflush(stdout);
		for (;;)
			pause();
	}
	/* Not exit(): its flush of what ulpo holds could wait on a broken socket. */
	_exit(1);
}

/* The watchdog's message, with what a signal handler may call. */
static char *put_str(char *p, const char *s)
{
	while (*s)
		*p++ = *s++;
	return p;
}

static char *put_num(char *p, unsigned long long v)
{
	char tmp[24];
	int n = 0;

	do
		tmp[n++] = (char)('0' + v % 10);
	while (v /= 10);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static void watchdog(int sig)
{
	char msg[256], *p = msg;
	int step = g_step;

	(void)sig;
	p = put_str(p, "FAIL: watchdog: a hang (no end after ");
	p = put_num(p, WATCHDOG_S);
	p = put_str(p, " s): TLS ");
	p = put_str(p, g_tls);
	p = put_str(p, step >= 0 ? ", step " : step == -1 ? ", the end" : ", setup");
	if (step >= 0)
		p = put_num(p, (unsigned long long)step);
	p = put_str(p, ", seed ");
	p = put_num(p, g_seed);
	p = put_str(p, "\n");
	if (write(STDOUT_FILENO, msg, (size_t)(p - msg)) < 0)
		_exit(2);
	_exit(1);
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rnd(void)
{
	return mix64(rng += 0x9e3779b97f4a7c15ull);
}

static uint32_t below(uint32_t n)
{
	return (uint32_t)(rnd() % n);
}

static bool chance(int pct)
{
	return below(100) < (uint32_t)pct;
}

/* Sizes: tiny, small, around a record's 16384, anything up to MAX_IO. */
static size_t io_size(void)
{
	switch (below(4)) {
	case 0:
		return 1 + below(64);
	case 1:
		return 1 + below(4096);
	case 2:
		return TLS_MAX_PLAIN - 2 + below(5);
	default:
		return 1 + below(MAX_IO);
	}
}

/* Bytes [i, i + n) of a pattern: one hash per 8 bytes, so a byte lost, doubled or
 * moved shows at once. */
static void pat_fill(uint64_t key, uint64_t i, uint8_t *buf, size_t n)
{
	while (n) {
		uint64_t w = mix64(key + (i >> 3));

		for (unsigned int b = i & 7; b < 8 && n; b++, n--, i++)
			*buf++ = (uint8_t)(w >> (8 * b));
	}
}

/* The pattern index of stream byte pos; *run: stream bytes until the next segment. */
static uint64_t pat_at(const struct dir *d, uint64_t pos, uint64_t *run)
{
	size_t lo = 0, hi = d->nsegs;

	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;

		if (d->segs[mid].pos <= pos)
			lo = mid;
		else
			hi = mid;
	}
	*run = lo + 1 < d->nsegs ? d->segs[lo + 1].pos - pos : UINT64_MAX;
	return d->segs[lo].pat + (pos - d->segs[lo].pos);
}

/* The pattern index of the next byte to hand to the sender's socket or pipe. */
static uint64_t pat_next(const struct dir *d)
{
	const struct seg *l = &d->segs[d->nsegs - 1];

	return l->pat + (d->sent - l->pos) + d->in_pipe;
}

static void seg_add(struct dir *d, uint64_t pos, uint64_t pat)
{
	if (d->nsegs == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 16;
		d->segs = realloc(d->segs, d->cap * sizeof(*d->segs));
		if (!d->segs)
			fail("out of memory");
	}
	d->segs[d->nsegs++] = (struct seg){ pos, pat };
}

/* Where else in the pattern do the bytes from a mismatch on come from (a loss or a
 * doubling), or is only that byte wrong? */
static void explain(const struct dir *d, uint64_t pat, const uint8_t *buf, size_t n)
{
	uint8_t want[32];
	int64_t delta;

	if (n > sizeof(want))
		n = sizeof(want);
	if (n < 9)
		return;
	pat_fill(d->key, pat + 1, want, n - 1);
	if (!memcmp(want, buf + 1, n - 1)) {
		printf("# one byte wrong, the bytes after it right\n");
		return;
	}
	for (delta = -(4 * MAX_IO); delta <= 4 * MAX_IO; delta++) {
		if (!delta || (int64_t)pat + delta < 0)
			continue;
		pat_fill(d->key, pat + (uint64_t)delta, want, n);
		if (!memcmp(want, buf, n)) {
			printf("# the bytes there are the pattern's from index %" PRIu64 ": %"
			       PRId64 " bytes %s\n", pat + (uint64_t)delta,
			       delta < 0 ? -delta : delta,
			       delta < 0 ? "doubled (came again)" : "lost (skipped)");
			return;
		}
	}
	printf("# the bytes there are not the pattern's nearby (corrupted)\n");
}

/* n bytes taken at stream offset `at` of d by `how`: the pattern's, in order. */
static void check_rx(const struct dir *d, uint64_t at, const uint8_t *buf, size_t n,
		     const char *how)
{
	uint8_t want[4096];
	size_t done = 0;

	/* (In the end threads, `sent` is the main thread's: not read.) */
	if (!g_final && at + n > d->sent)
		fail("%s %s: %zu bytes at stream offset %" PRIu64 ", but only %" PRIu64
		     " were sent", d->name, how, n, at, d->sent);
	while (done < n) {
		uint64_t run, p = pat_at(d, at + done, &run);
		size_t k = n - done, j;

		if (k > sizeof(want))
			k = sizeof(want);
		if (k > run)
			k = (size_t)run;
		pat_fill(d->key, p, want, k);
		if (memcmp(want, buf + done, k)) {
			for (j = 0; want[j] == buf[done + j]; j++)
				;
			printf("# %s %s: byte %zu of %zu taken differs\n", d->name, how, done + j, n);
			explain(d, p + j, buf + done + j, n - done - j);
			fail("%s %s: stream byte %" PRIu64 " is 0x%02x, want 0x%02x (pattern index %"
			     PRIu64 ")", d->name, how, at + done + j, buf[done + j], want[j], p + j);
		}
		done += k;
	}
}

/* n bytes of buf in up to MAX_IOV pieces, some empty. */
static int split(uint8_t *buf, size_t n, struct iovec *iov)
{
	int k = 1 + (int)below(MAX_IOV), i;

	for (i = 0; i < k - 1; i++) {
		size_t l = below((uint32_t)n + 1);

		iov[i] = (struct iovec){ buf, l };
		buf += l;
		n -= l;
	}
	iov[i] = (struct iovec){ buf, n };
	return k;
}

static int cur_fd(const struct side *sd)
{
	return sd->dupfd >= 0 && chance(75) ? sd->dupfd : sd->fd;
}

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void trace(const char *fmt, ...)
{
	va_list ap;

	if (!g_trace)
		return;
	printf("%d: ", (int)g_step);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* A send call took r of n bytes (`more`: MSG_MORE or SPLICE_F_MORE). The kernel closes
 * a record when a call ends without MORE, or when it is full, MORE or not; what a call
 * that took only part of its bytes leaves open is not followed (unknown until the next
 * call that takes all without MORE). */
static void records_closed(struct dir *d, ssize_t r, size_t n, bool more)
{
	if (r <= 0)
		return;
	if ((size_t)r < n)
		d->closed_known = false;
	else if (!more) {
		d->open_start = d->sent;
		d->closed_known = true;
	} else if (d->closed_known) {
		d->open_start = d->sent - (d->sent - d->open_start) % TLS_MAX_PLAIN;
	}
}

/* ---- sends ---- */

/* sendmmsg of n pattern bytes in up to MAX_MSGS messages. A message taken in part may
 * be followed by one taken whole (the kernel's sendmmsg goes on): the stream then skips
 * the rest of the first, a new segment. Bytes taken, or -1. */
static ssize_t send_mmsg(struct dir *d, int fd, size_t n, int flags)
{
	struct mmsghdr mm[MAX_MSGS];
	struct iovec iov[MAX_MSGS][MAX_IOV];
	uint64_t pat = pat_next(d);
	size_t off = 0, len[MAX_MSGS];
	unsigned int k = 1 + below(MAX_MSGS), i;
	ssize_t took = 0;
	int r;

	if (n < k)
		k = (unsigned int)n;
	memset(mm, 0, sizeof(mm));
	pat_fill(d->key, pat, txbuf, n);
	for (i = 0; i < k; i++) {
		len[i] = i + 1 < k ? 1 + below((uint32_t)(n - off - (k - i - 1))) : n - off;
		mm[i].msg_hdr.msg_iov = iov[i];
		mm[i].msg_hdr.msg_iovlen = (size_t)split(txbuf + off, len[i], iov[i]);
		off += len[i];
	}
	r = sendmmsg(fd, mm, k, flags);
	if (r < 0)
		return -1;
	if (r > (int)k)
		fail("sendmmsg: %d of %u messages", r, k);
	for (i = 0, off = 0; i < (unsigned int)r; off += len[i], i++) {
		if (mm[i].msg_len > len[i])
			fail("sendmmsg: message %u took %u of %zu bytes", i, mm[i].msg_len, len[i]);
		if (!mm[i].msg_len)
			continue;
		if (pat_next(d) != pat + off) {
			seg_add(d, d->sent, pat + off);
			n_gaps++;
		}
		d->sent += mm[i].msg_len;
		took += mm[i].msg_len;
	}
	trace("  sendmmsg: %d of %u messages, %zd bytes", r, k, took);
	return took;
}

/* One send call by side s. `must`: the socket was just reported writable, so a small
 * send must take something. */
static void do_send(int s, enum op op, bool must)
{
	struct side *sd = &sides[s];
	struct dir *d = &dirs[s];
	int fd = cur_fd(sd), flags = MSG_NOSIGNAL, e;
	size_t n = must ? 1 + below(4096) : io_size();
	struct iovec iov[MAX_IOV];
	ssize_t r = -1;
	bool more;

	/* What the splice pipe holds is next in the stream. */
	if (d->in_pipe)
		op = OP_SPLICE_IN;
	/* Calls without MSG_DONTWAIT would block on a blocking socket, and the peer's
	 * reader is this thread: only on a non-blocking one. (The kernel's splice to a
	 * socket waits unless the socket is O_NONBLOCK, whatever SPLICE_F_NONBLOCK.) */
	if (!sd->nonblock && (op == OP_WRITE || op == OP_WRITEV || op == OP_SENDFILE ||
			      op == OP_SPLICE_IN)) {
		if (d->in_pipe)
			return;
		op = OP_SEND;
	}
	if (!sd->nonblock || chance(25))
		flags |= MSG_DONTWAIT;
	if (chance(25))
		flags |= MSG_MORE;
	/* write, writev and sendfile have no flags; splice has its own. */
	more = (flags & MSG_MORE) && op != OP_WRITE && op != OP_WRITEV && op != OP_SENDFILE &&
	       op != OP_SPLICE_IN;
	if (op != OP_SENDMMSG && op != OP_SPLICE_IN)
		pat_fill(d->key, pat_next(d), txbuf, n);
	counts[op].calls++;
	switch (op) {
	case OP_SEND:
		r = send(fd, txbuf, n, flags);
		break;
	case OP_SENDTO:
		r = sendto(fd, txbuf, n, flags, NULL, 0);
		break;
	case OP_SENDMSG: {
		struct msghdr m = { .msg_iov = iov };

		m.msg_iovlen = (size_t)split(txbuf, n, iov);
		r = sendmsg(fd, &m, flags);
		break;
	}
	case OP_WRITE:
		r = write(fd, txbuf, n);
		break;
	case OP_WRITEV:
		r = writev(fd, iov, split(txbuf, n, iov));
		break;
	case OP_SENDMMSG:
		r = send_mmsg(d, fd, n, flags);
		break;
	case OP_SENDFILE: {
		off_t base = below(4096), off = base;

		if (pwrite(sd->file, txbuf, n, base) != (ssize_t)n)
			fail("pwrite to the sendfile file: %s", strerror(errno));
		r = sendfile(fd, sd->file, &off, n);
		if (r >= 0 && off != base + r)
			fail("sendfile took %zd bytes but moved the offset by %lld", r,
			     (long long)(off - base));
		break;
	}
	case OP_SPLICE_IN: {
		unsigned int sf = (chance(25) ? SPLICE_F_MORE : 0) |
				  (chance(25) ? SPLICE_F_NONBLOCK : 0);
		int left;

		if (!d->in_pipe) {
			if (n > sd->pipe_cap)
				n = sd->pipe_cap;
			pat_fill(d->key, pat_next(d), txbuf, n);
			if (write(sd->txpipe[1], txbuf, n) != (ssize_t)n)
				fail("write to the splice pipe: %s", strerror(errno));
			d->in_pipe = n;
		}
		n = chance(20) ? 1 + below((uint32_t)d->in_pipe) : d->in_pipe;
		more = sf & SPLICE_F_MORE;
		r = splice(sd->txpipe[0], NULL, fd, NULL, n, sf);
		e = errno;
		if (r > (ssize_t)n)
			fail("splice pipe -> %s: %zd bytes of %zu", sd->name, r, n);
		if (r > 0)
			d->in_pipe -= (size_t)r;
		/* The socket took r bytes: the pipe must have given exactly those. */
		if (ioctl(sd->txpipe[0], FIONREAD, &left) || (size_t)left != d->in_pipe)
			fail("splice pipe -> %s took %zd, the pipe holds %d, want %zu",
			     sd->name, r, left, d->in_pipe);
		errno = e;
		break;
	}
	default:
		fail("not a send: %d", op);
	}
	e = errno;
	trace("%s %s%s fd %d n %zu flags 0x%x%s -> %zd%s%s", sd->name, ops[op].name,
	      must ? " (writable)" : "", fd, n, flags, sd->nonblock ? "" : " (blocking fd)", r,
	      r < 0 ? " " : "", r < 0 ? strerror(e) : "");
	if (r > 0) {
		counts[op].took++;
		if (r > (ssize_t)n)
			fail("%s by %s: took %zd of %zu bytes", ops[op].name, sd->name, r, n);
		if (op != OP_SENDMMSG)
			d->sent += (uint64_t)r;
		records_closed(d, r, n, more);
	} else if (r < 0 && e == EAGAIN) {
		counts[op].again++;
	} else {
		fail("%s by %s (%zu bytes, flags 0x%x): %zd (%s)", ops[op].name, sd->name, n,
		     flags, r, r ? strerror(e) : "nothing taken");
	}
	if (must && r <= 0)
		fail("%s was reported writable, but %s of %zu bytes took nothing (%s)",
		     sd->name, ops[op].name, n, strerror(e));
}

/* ---- receives ---- */

/* recvmsg with no control buffer, one too small for a cmsghdr, one just big enough for
 * the record type, or a roomy one: data comes back each time; the type (data) where
 * there is room, MSG_CTRUNC where there is not. */
static ssize_t recv_msg(const struct side *sd, int fd, size_t n, int flags)
{
	union {
		struct cmsghdr h;
		char b[64];
	} cbuf;
	const size_t clen[4] = { 0, sizeof(struct cmsghdr) / 2, CMSG_SPACE(1), sizeof(cbuf) };
	struct iovec iov[MAX_IOV];
	struct msghdr m = { .msg_iov = iov };
	struct cmsghdr *h;
	int c = (int)below(4), type = -1;
	ssize_t r;

	m.msg_iovlen = (size_t)split(rxbuf, n, iov);
	if (clen[c]) {
		memset(&cbuf, 0, sizeof(cbuf));
		m.msg_control = &cbuf;
		m.msg_controllen = clen[c];
	}
	r = recvmsg(fd, &m, flags);
	if (r <= 0)
		return r;
	if (clen[c] >= CMSG_SPACE(1)) {
		for (h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h))
			if (h->cmsg_level == SOL_TLS && h->cmsg_type == TLS_GET_RECORD_TYPE)
				type = *CMSG_DATA(h);
		if (type != REC_TYPE_DATA)
			fail("recvmsg by %s (%zu bytes of control): record type %d, want %d",
			     sd->name, clen[c], type, REC_TYPE_DATA);
		if (m.msg_flags & MSG_CTRUNC)
			fail("recvmsg by %s: MSG_CTRUNC with %zu bytes of control", sd->name,
			     clen[c]);
	} else if (clen[c] && !(m.msg_flags & MSG_CTRUNC)) {
		fail("recvmsg by %s: no MSG_CTRUNC with %zu bytes of control", sd->name, clen[c]);
	}
	return r;
}

/* recvmmsg into up to MAX_MSGS messages over n bytes: each message's bytes follow the
 * last one's in the stream. Bytes taken, or -1. */
static ssize_t recv_mmsg(const struct side *sd, struct dir *d, int fd, size_t n, int flags)
{
	struct mmsghdr mm[MAX_MSGS];
	struct iovec iov[MAX_MSGS][MAX_IOV];
	size_t off = 0, start[MAX_MSGS], len[MAX_MSGS];
	unsigned int k = 1 + below(MAX_MSGS), i;
	ssize_t took = 0;
	int r;

	if (n < k)
		k = (unsigned int)n;
	memset(mm, 0, sizeof(mm));
	for (i = 0; i < k; i++) {
		len[i] = i + 1 < k ? 1 + below((uint32_t)(n - off - (k - i - 1))) : n - off;
		start[i] = off;
		mm[i].msg_hdr.msg_iov = iov[i];
		mm[i].msg_hdr.msg_iovlen = (size_t)split(rxbuf + off, len[i], iov[i]);
		off += len[i];
	}
	r = recvmmsg(fd, mm, k, flags, NULL);
	if (r <= 0)
		return r;
	if (r > (int)k)
		fail("recvmmsg by %s: %d of %u messages", sd->name, r, k);
	for (i = 0; i < (unsigned int)r; i++) {
		if (!mm[i].msg_len || mm[i].msg_len > len[i])
			fail("recvmmsg by %s: message %u of %d has %u bytes (room for %zu)",
			     sd->name, i, r, mm[i].msg_len, len[i]);
		check_rx(d, d->rcvd, rxbuf + start[i], mm[i].msg_len, "recvmmsg");
		d->rcvd += mm[i].msg_len;
		took += mm[i].msg_len;
	}
	trace("  recvmmsg: %d of %u messages, %zd bytes", r, k, took);
	return took;
}

/* Socket -> pipe (one record's data at most), then the pipe read out. */
static ssize_t splice_out(const struct side *sd, int fd, size_t n, bool nonblock)
{
	ssize_t r, got = 0;

	if (n > sd->pipe_cap)
		n = sd->pipe_cap;
	r = splice(fd, NULL, sd->rxpipe[1], NULL, n, nonblock ? SPLICE_F_NONBLOCK : 0);
	if (r <= 0)
		return r;
	if (r > TLS_MAX_PLAIN || r > (ssize_t)n)
		fail("splice %s -> pipe: %zd bytes (asked %zu): more than one record", sd->name,
		     r, n);
	while (got < r) {
		ssize_t k = read(sd->rxpipe[0], rxbuf + got, (size_t)(r - got));

		if (k <= 0)
			fail("splice %s -> pipe gave %zd, reading the pipe: %zd (%s)", sd->name,
			     r, k, strerror(errno));
		got += k;
	}
	return r;
}

/* One receive call by side s. `must`: the socket was just reported readable, so the
 * call, blocking or not, must return data. */
static void do_recv(int s, enum op op, bool must)
{
	struct side *sd = &sides[s];
	struct dir *d = &dirs[!s];
	int fd = cur_fd(sd), flags = 0, e;
	size_t n = io_size();
	struct iovec iov[MAX_IOV];
	bool peek = false;
	ssize_t r = -1;

	/* Calls without MSG_DONTWAIT on a blocking socket: only when readable. */
	if (!sd->nonblock && !must && (op == OP_READ || op == OP_READV))
		op = OP_RECV;
	if ((!sd->nonblock && !must) || chance(30))
		flags |= MSG_DONTWAIT;
	if ((op == OP_RECV || op == OP_RECVFROM || op == OP_RECVMSG) && chance(15)) {
		flags |= MSG_PEEK;
		peek = true;
	}
	counts[op].calls++;
	switch (op) {
	case OP_RECV:
		r = recv(fd, rxbuf, n, flags);
		break;
	case OP_RECVFROM: {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);

		if (chance(50))
			r = recvfrom(fd, rxbuf, n, flags, NULL, NULL);
		else
			r = recvfrom(fd, rxbuf, n, flags, (struct sockaddr *)&from, &fl);
		break;
	}
	case OP_RECVMSG:
		r = recv_msg(sd, fd, n, flags);
		break;
	case OP_READ:
		r = read(fd, rxbuf, n);
		break;
	case OP_READV:
		r = readv(fd, iov, split(rxbuf, n, iov));
		break;
	case OP_RECVMMSG:
		/* Blocking past the first message would wait for more than is there. */
		if (!(flags & MSG_DONTWAIT) && (!sd->nonblock || chance(50)))
			flags |= MSG_WAITFORONE;
		r = recv_mmsg(sd, d, fd, n, flags);
		break;
	case OP_SPLICE_OUT:
		r = splice_out(sd, fd, n, flags & MSG_DONTWAIT);
		break;
	default:
		fail("not a receive: %d", op);
	}
	e = errno;
	trace("%s %s%s fd %d n %zu flags 0x%x%s -> %zd%s%s", sd->name, ops[op].name,
	      must ? " (readable)" : "", fd, n, flags, sd->nonblock ? "" : " (blocking fd)", r,
	      r < 0 ? " " : "", r < 0 ? strerror(e) : "");
	if (r > 0) {
		counts[op].took++;
		if (r > (ssize_t)n)
			fail("%s by %s: %zd bytes into %zu", ops[op].name, sd->name, r, n);
		if (op != OP_RECVMMSG)
			check_rx(d, d->rcvd, rxbuf, (size_t)r, peek ? "MSG_PEEK" : ops[op].name);
		if (peek)
			n_peeks++;
		else if (op != OP_RECVMMSG)
			d->rcvd += (uint64_t)r;
	} else if (r < 0 && e == EAGAIN) {
		counts[op].again++;
		if (must)
			fail("%s was reported readable, but %s gave EAGAIN", sd->name,
			     ops[op].name);
	} else {
		fail("%s by %s (%zu bytes, flags 0x%x): %s", ops[op].name, sd->name, n, flags,
		     r ? strerror(e) : "EOF before the end");
	}
}

/* ---- readiness ---- */

/* poll, ppoll, select or epoll_wait on both sockets, no timeout (poll-wait: poll for
 * POLLIN up to 5 ms, time for the async engine's workers and ulpo's deferred sends). A
 * side reported readable must give data to a receive (the kernel's kTLS: readable
 * means a whole record is there); one reported writable, half of the time, must take a
 * small send. */
static void do_ready(enum op op)
{
	int fds[2] = { cur_fd(&sides[0]), cur_fd(&sides[1]) };
	short rev[2] = { 0, 0 };
	int r = 0, s;

	counts[op].calls++;
	switch (op) {
	case OP_POLL:
	case OP_PPOLL:
	case OP_WAIT: {
		short ev = op == OP_WAIT ? POLLIN : POLLIN | POLLOUT;
		struct pollfd p[2] = { { fds[0], ev, 0 }, { fds[1], ev, 0 } };
		struct timespec ts = { 0, 0 };

		if (op == OP_WAIT)
			r = poll(p, 2, 1 + (int)below(5));
		else
			r = op == OP_POLL ? poll(p, 2, 0) : ppoll(p, 2, &ts, NULL);
		rev[0] = p[0].revents;
		rev[1] = p[1].revents;
		break;
	}
	case OP_SELECT: {
		struct timeval tv = { 0, 0 };
		fd_set rd, wr;

		FD_ZERO(&rd);
		FD_ZERO(&wr);
		for (s = 0; s < 2; s++) {
			FD_SET(fds[s], &rd);
			FD_SET(fds[s], &wr);
		}
		r = select((fds[0] > fds[1] ? fds[0] : fds[1]) + 1, &rd, &wr, NULL, &tv);
		for (s = 0; r > 0 && s < 2; s++)
			rev[s] = (short)((FD_ISSET(fds[s], &rd) ? POLLIN : 0) |
					 (FD_ISSET(fds[s], &wr) ? POLLOUT : 0));
		break;
	}
	case OP_EPOLL: {
		struct epoll_event ev[4];

		r = chance(50) ? epoll_wait(g_ep, ev, 4, 0) : epoll_pwait(g_ep, ev, 4, 0, NULL);
		for (int i = 0; i < r; i++) {
			if (ev[i].data.u64 > 1 || rev[ev[i].data.u64])
				fail("epoll_wait: event %d of %d has data 0x%" PRIx64, i, r,
				     (uint64_t)ev[i].data.u64);
			rev[ev[i].data.u64] = (short)ev[i].events;
		}
		break;
	}
	default:
		fail("not a readiness call: %d", op);
	}
	if (r < 0)
		fail("%s: %s", ops[op].name, strerror(errno));
	trace("%s: a 0x%x, b 0x%x", ops[op].name, rev[0], rev[1]);
	for (s = 0; s < 2; s++)
		if (rev[s] & ~(POLLIN | POLLOUT))
			fail("%s: %s has events 0x%x", ops[op].name, sides[s].name, rev[s]);
	if (r > 0)
		counts[op].took++;
	for (s = 0; s < 2; s++)
		if ((rev[s] & POLLIN) && !rx_paused[s]) {
			n_readable++;
			do_recv(s, (enum op)(OP_RECV + below(N_RECV_OPS)), true);
		}
	for (s = 0; s < 2; s++)
		if ((rev[s] & POLLOUT) && !tx_paused[s] && chance(50)) {
			n_writable++;
			do_send(s, (enum op)(OP_SEND + below(N_SEND_OPS)), true);
		}
}

/* Closed records reach the peer with no further call by the sender (the kernel's
 * deferred tx work sends what TCP refused as soon as it has room): the receiver polls
 * and reads until it has every byte before the sender's open record. */
static void do_settle(int s)
{
	struct dir *d = &dirs[s];
	struct side *rd = &sides[!s];
	double last = now_s();
	uint64_t had = d->rcvd;

	counts[OP_SETTLE].calls++;
	if (!d->closed_known || d->rcvd >= d->open_start)
		return;
	counts[OP_SETTLE].took++;
	trace("settle %s: %" PRIu64 " received, closed records up to %" PRIu64, d->name,
	      d->rcvd, d->open_start);
	while (d->rcvd < d->open_start) {
		struct pollfd p = { .fd = cur_fd(rd), .events = POLLIN };

		if (poll(&p, 1, 10) < 0)
			fail("settle: poll: %s", strerror(errno));
		if (p.revents & ~POLLIN)
			fail("settle: %s has events 0x%x", rd->name, p.revents);
		if (p.revents & POLLIN)
			do_recv(!s, (enum op)(OP_RECV + below(N_RECV_OPS)), true);
		if (d->rcvd != had) {
			had = d->rcvd;
			last = now_s();
		} else if (now_s() - last > SETTLE_S) {
			fail("%s: bytes up to %" PRIu64 " are in closed records (%" PRIu64 " sent), "
			     "but nothing came after %" PRIu64 " for %d s", d->name,
			     d->open_start, d->sent, d->rcvd, SETTLE_S);
		}
	}
}

/* ---- fds ---- */

static void epoll_add(int s)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.u64 = (uint64_t)s };

	if (epoll_ctl(g_ep, EPOLL_CTL_ADD, sides[s].fd, &ev))
		fail("epoll_ctl ADD %s: %s", sides[s].name, strerror(errno));
}

/* The dup goes; or (swap) the first fd goes and the dup is the socket's fd from now on. */
static void drop_dup(int s, bool swap)
{
	struct side *sd = &sides[s];

	trace("%s: %s", sd->name, swap ? "close the first fd, keep the dup" : "close the dup");
	if (swap) {
		/* The kernel's epoll keeps a registration by (file, fd) while a dup holds
		 * the file: moved by hand, as a program would. */
		if (epoll_ctl(g_ep, EPOLL_CTL_DEL, sd->fd, NULL))
			fail("epoll_ctl DEL %s: %s", sd->name, strerror(errno));
		if (close(sd->fd))
			fail("close the first fd of %s: %s", sd->name, strerror(errno));
		sd->fd = sd->dupfd;
		epoll_add(s);
		n_swaps++;
	} else if (close(sd->dupfd)) {
		fail("close the dup of %s: %s", sd->name, strerror(errno));
	}
	sd->dupfd = -1;
}

static int unused_fd(int from)
{
	while (fcntl(from, F_GETFD) >= 0)
		from++;
	return from;
}

/* A second fd for the socket, used for a while (dup, F_DUPFD_CLOEXEC or dup3); with one
 * already there: close one of the two, or dup2 onto the dup (closed and made again). */
static void do_dup(int s)
{
	struct side *sd = &sides[s];
	int fd;

	counts[OP_DUP].calls++;
	if (sd->dupfd >= 0) {
		if (chance(50)) {
			drop_dup(s, chance(30));
		} else {
			fd = dup2(sd->fd, sd->dupfd);
			trace("%s: dup2 onto the dup %d -> %d", sd->name, sd->dupfd, fd);
			if (fd != sd->dupfd)
				fail("dup2 onto the dup of %s: %d (%s)", sd->name, fd,
				     strerror(errno));
		}
		counts[OP_DUP].took++;
		return;
	}
	switch (below(3)) {
	case 0:
		fd = dup(sd->fd);
		break;
	case 1:
		fd = fcntl(sd->fd, F_DUPFD_CLOEXEC, 100);
		break;
	default:
		fd = dup3(sd->fd, unused_fd(150), O_CLOEXEC);
		break;
	}
	trace("%s: dup %d -> %d", sd->name, sd->fd, fd);
	if (fd < 0)
		fail("dup of %s: %s", sd->name, strerror(errno));
	sd->dupfd = fd;
	sd->dup_left = 5 + (int)below(60);
	counts[OP_DUP].took++;
}

/* O_NONBLOCK, through either fd (the flag is the file's, so both see it). */
static void set_nonblock(int s, bool on)
{
	struct side *sd = &sides[s];
	int fd = cur_fd(sd), fl = fcntl(fd, F_GETFL);

	if (fl < 0 || !!(fl & O_NONBLOCK) != sd->nonblock)
		fail("F_GETFL on %s: 0x%x, O_NONBLOCK should be %d", sd->name, fl, sd->nonblock);
	if (fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK))
		fail("F_SETFL on %s: %s", sd->name, strerror(errno));
	sd->nonblock = on;
	trace("%s: O_NONBLOCK %s", sd->name, on ? "on" : "off");
}

static void do_block(int s)
{
	counts[OP_BLOCK].calls++;
	set_nonblock(s, !sides[s].nonblock);
	if (!sides[s].nonblock) {
		counts[OP_BLOCK].took++;
		sides[s].block_left = 5 + (int)below(40);
	}
}

/* ---- setup ---- */

static void connect_pair(int *a, int *b)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	*a = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || *a < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&sa, &sl) ||
	    connect(*a, (struct sockaddr *)&sa, sizeof(sa)) || (*b = accept(l, NULL, NULL)) < 0)
		fail("loopback connection: %s", strerror(errno));
	close(l);
}

/* TCP_ULP "tls", then keys: each direction its own, the same at both of its ends. */
static int install(int fd, unsigned short version, uint8_t tx, uint8_t rx)
{
	struct tls12_crypto_info_aes_gcm_128 ci;

	if (setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls")))
		return -1;
	memset(&ci, 0, sizeof(ci));
	ci.info.version = version;
	ci.info.cipher_type = TLS_CIPHER_AES_GCM_128;
	memset(ci.key, tx, sizeof(ci.key));
	memset(ci.iv, tx + 1, sizeof(ci.iv));
	memset(ci.salt, tx + 2, sizeof(ci.salt));
	if (setsockopt(fd, SOL_TLS, TLS_TX, &ci, sizeof(ci)))
		return -1;
	memset(ci.key, rx, sizeof(ci.key));
	memset(ci.iv, rx + 1, sizeof(ci.iv));
	memset(ci.salt, rx + 2, sizeof(ci.salt));
	return setsockopt(fd, SOL_TLS, TLS_RX, &ci, sizeof(ci));
}

static void setup(unsigned short version)
{
	int fds[2];

	connect_pair(&fds[0], &fds[1]);
	if (install(fds[0], version, 0x11, 0x44) || install(fds[1], version, 0x44, 0x11)) {
		printf("SKIP: no TCP_ULP \"tls\" (%s; run with LD_PRELOAD=libulpo-preload.so)\n",
		       strerror(errno));
		exit(77);
	}
	g_ep = epoll_create1(EPOLL_CLOEXEC);
	if (g_ep < 0)
		fail("epoll_create1: %s", strerror(errno));
	for (int s = 0; s < 2; s++) {
		struct side *sd = &sides[s];
		struct dir *d = &dirs[s];
		char path[] = "/tmp/test_interleave.XXXXXX";
		int cap;

		*sd = (struct side){ .name = s ? "b" : "a", .fd = fds[s], .dupfd = -1 };
		free(d->segs);
		*d = (struct dir){ .name = s ? "b->a" : "a->b",
				   .key = mix64(g_seed ^ (version << 1 | s)), .closed_known = true };
		seg_add(d, 0, 0);
		if (pipe2(sd->txpipe, O_CLOEXEC | O_NONBLOCK) ||
		    pipe2(sd->rxpipe, O_CLOEXEC | O_NONBLOCK))
			fail("pipe2: %s", strerror(errno));
		cap = fcntl(sd->txpipe[1], F_GETPIPE_SZ);
		if (cap <= 0 || fcntl(sd->rxpipe[1], F_GETPIPE_SZ) != cap)
			fail("F_GETPIPE_SZ: %d", cap);
		sd->pipe_cap = (size_t)cap;
		sd->file = mkstemp(path);
		if (sd->file < 0)
			fail("mkstemp: %s", strerror(errno));
		unlink(path);
		/* A small send buffer half of the time: TCP full early, records left to
		 * send later. (A small receive buffer makes loopback TCP itself crawl or
		 * stall for seconds, drops and backoff, with or without TLS.) */
		if (chance(50)) {
			int sz = 4096 << below(6);

			setsockopt(sd->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		}
		set_nonblock(s, true);
		epoll_add(s);
	}
}

static void teardown(void)
{
	for (int s = 0; s < 2; s++) {
		struct side *sd = &sides[s];

		close(sd->fd);
		close(sd->txpipe[0]);
		close(sd->txpipe[1]);
		close(sd->rxpipe[0]);
		close(sd->rxpipe[1]);
		close(sd->file);
	}
	close(g_ep);
}

/* ---- the end ---- */

/* Blocking reads to EOF, recv and read in turn, checked as any. */
static void *reader_main(void *arg)
{
	int s = (int)(intptr_t)arg, i = 0;
	struct side *sd = &sides[s];
	struct dir *d = &dirs[!s];
	uint8_t *buf = malloc(MAX_IO);
	ssize_t r;

	if (!buf)
		fail("out of memory");
	for (;;) {
		r = i++ & 1 ? read(sd->fd, buf, MAX_IO) : recv(sd->fd, buf, MAX_IO, 0);
		if (r == 0)
			break;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail("the end: %s reading to EOF: %s", sd->name, strerror(errno));
		check_rx(d, d->rcvd, buf, (size_t)r, "the end's read");
		d->rcvd += (uint64_t)r;
	}
	free(buf);
	return NULL;
}

/* Dups closed, both blocking; two threads read to EOF while each side sends what its
 * splice pipe still holds and one byte without MSG_MORE (the open record is closed),
 * then shuts down. Every byte sent must then have been received. */
static void finish(void)
{
	pthread_t t[2];
	int s;

	for (s = 0; s < 2; s++) {
		if (sides[s].dupfd >= 0)
			drop_dup(s, false);
		if (sides[s].nonblock)
			set_nonblock(s, false);
	}
	g_step = -1;
	g_final = true;
	for (s = 0; s < 2; s++)
		if (pthread_create(&t[s], NULL, reader_main, (void *)(intptr_t)s))
			fail("pthread_create");
	for (s = 0; s < 2; s++) {
		struct side *sd = &sides[s];
		struct dir *d = &dirs[s];
		uint8_t last;
		ssize_t r;

		while (d->in_pipe) {
			r = splice(sd->txpipe[0], NULL, sd->fd, NULL, d->in_pipe, 0);
			if (r <= 0)
				fail("the end: splice pipe -> %s: %zd (%s)", sd->name, r,
				     strerror(errno));
			d->in_pipe -= (size_t)r;
			d->sent += (uint64_t)r;
		}
		pat_fill(d->key, pat_next(d), &last, 1);
		r = send(sd->fd, &last, 1, MSG_NOSIGNAL);
		if (r != 1)
			fail("the end: %s's last byte: %zd (%s)", sd->name, r, strerror(errno));
		d->sent++;
		if (shutdown(sd->fd, SHUT_WR))
			fail("the end: shutdown %s: %s", sd->name, strerror(errno));
	}
	for (s = 0; s < 2; s++)
		pthread_join(t[s], NULL);
	g_final = false;
	for (s = 0; s < 2; s++)
		if (dirs[s].rcvd != dirs[s].sent)
			fail("the end: %s: %" PRIu64 " bytes sent, %" PRIu64 " received",
			     dirs[s].name, dirs[s].sent, dirs[s].rcvd);
}

static void summary(double secs, int steps)
{
	int i;

	printf("TLS %s: %d steps in %.2f s; a->b %" PRIu64 " bytes, b->a %" PRIu64 " bytes\n",
	       g_tls, steps, secs, dirs[0].sent, dirs[1].sent);
	printf("  calls/moved/EAGAIN:");
	for (i = 0; i < NOPS; i++)
		printf("%s %s %lu/%lu/%lu", i % 5 ? "," : "\n   ", ops[i].name, counts[i].calls,
		       counts[i].took, counts[i].again);
	printf("\n  readable %lu (each gave data), writable checked %lu, peeks %lu, "
	       "sendmmsg gaps %lu, first fd closed for its dup %lu\n",
	       n_readable, n_writable, n_peeks, n_gaps, n_swaps);
	fflush(stdout);
}

/* Phases: mixed; one side not receiving (the other fills TCP and ulpo: EAGAIN, records
 * left for later); neither receiving; neither sending (the receivers catch up). */
static int new_phase(void)
{
	int s = (int)below(2);

	memset(rx_paused, 0, sizeof(rx_paused));
	memset(tx_paused, 0, sizeof(tx_paused));
	switch (below(5)) {
	case 0:
		rx_paused[s] = true;
		break;
	case 1:
		rx_paused[0] = rx_paused[1] = true;
		break;
	case 2:
		tx_paused[0] = tx_paused[1] = true;
		break;
	}
	trace("phase: a %s%s, b %s%s", rx_paused[0] ? "-rx" : "", tx_paused[0] ? "-tx" : "",
	      rx_paused[1] ? "-rx" : "", tx_paused[1] ? "-tx" : "");
	return 50 + (int)below(350);
}

static void run(unsigned short version, const char *name, int steps)
{
	double t0 = now_s();
	int total = 0, phase_left = 0, i, s;

	g_tls = name;
	g_step = -2;
	rng = mix64(g_seed) ^ version;
	memset(counts, 0, sizeof(counts));
	n_readable = n_writable = n_gaps = n_swaps = n_peeks = 0;
	for (i = 0; i < NOPS; i++)
		total += ops[i].weight;
	setup(version);
	for (g_step = 0; g_step < steps; g_step++) {
		enum op op;

		if (--phase_left <= 0)
			phase_left = new_phase();
		/* Drawn again while the phase says no. */
		do {
			int w = (int)below((uint32_t)total);

			for (op = 0; w >= ops[op].weight; op++)
				w -= ops[op].weight;
			s = (int)below(2);
		} while ((op < OP_RECV && tx_paused[s]) ||
			 (op >= OP_RECV && op < OP_POLL && rx_paused[s]));
		if (op < OP_RECV)
			do_send(s, op, false);
		else if (op < OP_POLL)
			do_recv(s, op, false);
		else if (op < OP_DUP)
			do_ready(op);
		else if (op == OP_DUP)
			do_dup(s);
		else if (op == OP_BLOCK)
			do_block(s);
		else
			do_settle(s);
		for (s = 0; s < 2; s++) {
			if (sides[s].dupfd >= 0 && --sides[s].dup_left <= 0)
				drop_dup(s, chance(30));
			if (!sides[s].nonblock && --sides[s].block_left <= 0)
				set_nonblock(s, true);
		}
	}
	finish();
	summary(now_s() - t0, steps);
	teardown();
}

int main(int argc, char **argv)
{
	const char *arg = argc > 1 ? argv[1] : getenv("ULPO_SEED");
	int steps = argc > 2 ? atoi(argv[2]) : STEPS;
	char *end;

	if (arg) {
		g_seed = strtoull(arg, &end, 0);
		if (*end || !*arg) {
			fprintf(stderr, "usage: %s [SEED [STEPS]] (or ULPO_SEED=SEED)\n", argv[0]);
			return 2;
		}
	} else if (getrandom(&g_seed, sizeof(g_seed), 0) != sizeof(g_seed)) {
		g_seed = (unsigned long long)time(NULL) ^ (unsigned long long)getpid() << 32;
	}
	g_trace = getenv("ULPO_TRACE") && *getenv("ULPO_TRACE") == '1';
	printf("seed %llu (rerun: ULPO_SEED=%llu), %d steps per TLS version\n", g_seed, g_seed,
	       steps);
	fflush(stdout);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, watchdog);
	alarm(WATCHDOG_S);
	run(TLS_1_2_VERSION, "1.2", steps);
	run(TLS_1_3_VERSION, "1.3", steps);
	free(dirs[0].segs);
	free(dirs[1].segs);
	printf("PASS: seed %llu\n", g_seed);
	return 0;
}
