/* fuzz_tls_rx.c - libFuzzer target for the kTLS RX path (record parser, decryption, 1.3
 * padding, control records, KeyUpdate, zero-length records, peek), driven through the
 * public API on a real loopback TCP pair, and checked the way a caller would check it.
 *
 * The input is a small program (format in fuzz/README.md): byte 0 picks the (version,
 * cipher), byte 1 options, then ops that append valid sealed records (tests/tls/
 * record_codec.h, so authentication passes), damaged records or raw bytes to the wire,
 * write part of the wire now, set options, rekey, or call ulpo_recvmsg with flags,
 * iovecs and a cmsg buffer chosen by the input. At the end the rest is written and a
 * well-behaved reader drains the socket.
 *
 * Checked on every call: no crash/leak/UB (sanitizers), the return is at most the
 * buffer, the cmsg is well formed, errno is one of the documented RX errors. While the
 * wire holds only valid records (the "clean" prefix) also: every byte read equals the
 * bytes sealed, of the sealed type, in order, nothing is lost, and no error is raised;
 * past it, whatever is read passed authentication, so it is plaintext that was sealed. */
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>

#include "record_codec.h"
#include "tcp_info_bytes.h"

#define MAX_WIRE (256 * 1024)	/* bytes put on the wire in one input */
#define MAX_RECS 1024
#define MAX_IOV 4
#define DRAIN_BUF (2 * ULPO_TLS_MAX_PAYLOAD + 64)
#define KEY_SEED 0x756c706f66757a7aull
#define FOREIGN_GEN 0x10000u	/* above any generation KeyUpdates reach (MAX_RECS) */

#define T_DATA ULPO_TLS_RECORD_DATA
#define T_HANDSHAKE ULPO_TLS_RECORD_HANDSHAKE
#define HS_KEY_UPDATE 24	/* handshake message type (RFC 8446 4.6.3) */
#define MSGHDR_FLAGS_SENTINEL 0x5a5a0000

#define FAIL(...)                                                                     \
	do {                                                                          \
		fprintf(stderr, "fuzz_tls_rx: %s: ", variants[s->vi].name);          \
		fprintf(stderr, __VA_ARGS__);                                         \
		fputc('\n', stderr);                                                  \
		abort();                                                              \
	} while (0)

enum {
	OPT_FIN = 1 << 0,	/* the peer shuts down its side after the last byte */
	OPT_NO_PAD = 1 << 1,	/* TLS_RX_EXPECT_NO_PAD (1.3): the zero-copy path */
	OPT_DEFER_RX = 1 << 2,	/* TLS_RX only at the first read: prequeued ciphertext */
	OPT_NONBLOCK = 1 << 3,	/* O_NONBLOCK instead of MSG_DONTWAIT */
	OPT_SEQ_WRAP = 1 << 4,	/* rec_seq starts 3 records before 2^64 */
};

enum { OP_SEAL, OP_SEAL2, OP_RAW, OP_DAMAGE, OP_RECV, OP_WRITE, OP_SETOPT, OP_RECV2, OP_REKEY };

struct input {
	const uint8_t *p;
	size_t n;
};

static uint8_t in_u8(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint16_t in_u16(struct input *in)
{
	uint16_t hi = in_u8(in);

	return (uint16_t)(hi << 8 | in_u8(in));
}

struct rec {
	uint8_t type;
	uint32_t len, off;	/* plaintext, at plain + off */
};

struct state {
	size_t vi;
	const struct variant *v;
	uint8_t opts;
	int fd, raw;
	struct codec cd;		/* the sealer, on key generation gen_tx */
	unsigned int gen_tx, gen_rx;	/* gen_rx: installed on fd */
	bool rx_installed, fin_done;
	uint8_t *wire;
	size_t wire_len, wire_sent;
	uint64_t ku_sealed, ku_installed;	/* KeyUpdates sealed; keys installed after one */
	/* The model: every record sealed, in wire order. */
	struct rec recs[MAX_RECS];
	size_t nrec;
	uint8_t *plain;		/* the plaintext of every record sealed, damaged ones too */
	size_t plain_len;
	bool garbage;		/* a 1.3 record without a type: its "plaintext" is a guess */
	bool tainted;		/* the wire holds something else after recs[clean_end - 1] */
	size_t clean_end;
	bool unchecked;		/* an arbitrary rekey: only the generic checks hold */
	size_t stall_at;	/* 1.2 KeyUpdate: nothing after recs[stall_at - 1] is readable */
	size_t cur, cur_off;	/* what the reader has consumed */
	unsigned int foreign;	/* keys installed that the sealer never uses */
};

static int g_listener = -1;
static uint8_t *g_buf;
/* Allocated once: a large malloc per input is an mmap/munmap pair under ASan. */
static uint8_t *g_wire, *g_plain;
static bool g_trace;	/* FUZZ_TRACE=1: print each call, to see what an input does */

static void keys_gen(const struct state *s, unsigned int gen, struct keys *k)
{
	keys_make(s->v, KEY_SEED + gen * 0x9e3779b97f4a7c15ull, k);
	if (gen == 0 && (s->opts & OPT_SEQ_WRAP))
		keys_set_seq(s->v, k, UINT64_MAX - 2);
}

static int listener_open(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int l = socket(AF_INET, SOCK_STREAM, 0), big = 1 << 20;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* Room for a whole input in flight: the writer never blocks on the reader. */
	setsockopt(l, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	if (l < 0 || bind(l, (void *)&a, sizeof(a)) || listen(l, 16))
		return -1;
	return l;
}

static int pair_open(struct state *s)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int big = 1 << 20;

	s->fd = s->raw = -1;
	if (getsockname(g_listener, (void *)&a, &al))
		return -1;
	s->raw = socket(AF_INET, SOCK_STREAM, 0);
	if (s->raw < 0)
		return -1;
	setsockopt(s->raw, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	/* libFuzzer's timer signal interrupts blocking calls. */
	if (connect(s->raw, (void *)&a, sizeof(a)) && errno != EINTR)
		return -1;
	do
		s->fd = accept(g_listener, NULL, NULL);
	while (s->fd < 0 && errno == EINTR);
	if (s->fd < 0)
		return -1;
	/* Reset on close: thousands of pairs a second must not pile up in TIME_WAIT. */
	setsockopt(s->raw, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	setsockopt(s->raw, SOL_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	fcntl(s->raw, F_SETFL, O_NONBLOCK);
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	g_trace = getenv("FUZZ_TRACE") != NULL;
	g_listener = listener_open();
	g_buf = malloc(DRAIN_BUF);
	g_wire = malloc(MAX_WIRE);
	g_plain = malloc(MAX_WIRE);
	if (g_listener < 0 || !g_buf || !g_wire || !g_plain) {
		perror("fuzz_tls_rx: setup");
		exit(1);
	}
	return 0;
}

/* ---- the wire ---- */

/* Write what is pending, up to `max` bytes, without blocking. */
static void wire_flush(struct state *s, size_t max)
{
	while (s->wire_sent < s->wire_len && max) {
		size_t n = s->wire_len - s->wire_sent;
		ssize_t r;

		if (n > max)
			n = max;
		r = send(s->raw, s->wire + s->wire_sent, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r <= 0)
			return;		/* full: the reader makes room */
		s->wire_sent += (size_t)r;
		max -= (size_t)r;
	}
}

/* Whether every byte written has reached the reader's TCP socket. */
static bool wire_arrived(const struct state *s)
{
	uint64_t got;
	int unacked = 0;

	if (fuzz_tcp_bytes_received(s->fd, &got) == 0)
		return got >= s->wire_sent;
	/* Older kernels: the peer acked them all (slower: delayed ACKs). */
	return ioctl(s->raw, TIOCOUTQ, &unacked) || unacked == 0;
}

static void taint(struct state *s)
{
	if (!s->tainted) {
		s->tainted = true;
		s->clean_end = s->nrec;
	}
}

static size_t visible_end(const struct state *s)
{
	size_t end = s->tainted ? s->clean_end : s->nrec;

	return s->stall_at && s->stall_at < end ? s->stall_at : end;
}

static size_t pick_len(uint16_t x)
{
	switch (x >> 14) {
	case 0: return x & 0xff;
	case 1: return x & 0x3fff;
	case 2: return ULPO_TLS_MAX_PAYLOAD + 2 - (x & 7);	/* around the limit */
	default: return x & 0xf;
	}
}

/* Seal one record: returns its offset on the wire, or -1 when the input is too big. */
static long seal(struct state *s, struct input *in, bool keep)
{
	static const uint8_t types[] = { T_DATA, T_DATA, T_DATA, ULPO_TLS_RECORD_ALERT,
					 T_HANDSHAKE, T_HANDSHAKE, ULPO_TLS_RECORD_CCS, 0 };
	uint8_t tsel = in_u8(in), type = types[tsel & 7];
	size_t len = pick_len(in_u16(in)), pad = 0;
	uint8_t padsel = in_u8(in), seed = in_u8(in);
	bool v13 = s->v->version == TLS_1_3_VERSION;
	uint64_t rng = KEY_SEED ^ ((uint64_t)seed << 32 | s->nrec) ^ 1;
	size_t inner, off = s->wire_len;
	uint8_t *pt;

	if (tsel & 8)
		type = (uint8_t)((tsel >> 4) * 17);	/* any other type, 0 included */
	if (v13)
		pad = (padsel & 0xc0) == 0xc0 ? ULPO_TLS_MAX_PAYLOAD + 1 - len - (padsel & 3)
					      : padsel & 0x3f;
	if (pad > ULPO_TLS_MAX_PAYLOAD + 1)
		pad = padsel & 3;	/* len was past the limit already */
	inner = len + (v13 ? 1 + pad : 0);
	if (s->nrec == MAX_RECS || s->wire_len + 5 + 8 + inner + 16 > MAX_WIRE ||
	    s->plain_len + len > MAX_WIRE)
		return -1;
	pt = s->plain + s->plain_len;
	t_fill(&rng, pt, len);
	if ((tsel & 0xf) == 5 && len)	/* KeyUpdate */
		pt[0] = HS_KEY_UPDATE;
	/* Not valid on the wire: all that follows is unchecked. */
	if (!keep || type == 0 || inner > ULPO_TLS_MAX_PAYLOAD + v13)
		taint(s);
	s->wire_len += codec_seal(&s->cd, type, pt, len, pad, s->wire + off);
	if (g_trace)
		fprintf(stderr, "seal%s type %u len %zu pad %zu at %zu\n", keep ? "" : " (damaged)",
			type, len, pad, off);
	if (v13 && type == 0)
		s->garbage = true;	/* the receiver takes its last non-zero byte as type */
	s->plain_len += len;
	if (keep) {
		s->recs[s->nrec].type = type;
		s->recs[s->nrec].len = (uint32_t)len;
		s->recs[s->nrec].off = (uint32_t)(s->plain_len - len);
		s->nrec++;
		if (s->cd.seq == 0)
			taint(s);	/* that was rec_seq 2^64-1: the next read fails */
	}
	/* Even a damaged KeyUpdate may pass: 1.3 does not authenticate the outer type. */
	if (type == T_HANDSHAKE && len && pt[0] == HS_KEY_UPDATE) {
		s->ku_sealed++;
		if (!v13) {
			/* 1.2 cannot rekey: reading stops after this record for good. */
			if (!s->stall_at)
				s->stall_at = s->nrec;
		} else {
			/* The peer's next records use the next key. */
			struct keys k;

			codec_free(&s->cd);
			keys_gen(s, ++s->gen_tx, &k);
			if (codec_init(&s->cd, s->v, &k))
				FAIL("codec_init");
		}
	}
	return (long)off;
}

/* ---- the reader ---- */

static void install_rx(struct state *s, unsigned int gen)
{
	struct keys k;
	int r;

	keys_gen(s, gen, &k);
	r = ulpo_setsockopt(s->fd, SOL_TLS, TLS_RX, k.info, k.len);
	if (!s->rx_installed) {
		if (r)
			FAIL("TLS_RX: %s", strerror(errno));
		s->rx_installed = true;
		if (s->opts & OPT_NO_PAD) {
			uint32_t one = 1;

			r = ulpo_setsockopt(s->fd, SOL_TLS, TLS_RX_EXPECT_NO_PAD, &one,
					    sizeof(one));
			if ((r == 0) != (s->v->version == TLS_1_3_VERSION))
				FAIL("TLS_RX_EXPECT_NO_PAD: %d %s", r, strerror(errno));
		}
	} else if (s->v->version == TLS_1_3_VERSION ? r != 0 : r != -1 || errno != EBUSY) {
		FAIL("rekey TLS_RX: %d %s", r, strerror(errno));
	}
	if (r == 0)
		s->gen_rx = gen;
}

/* Empty data records are consumed silently: a reader never sees them. */
static void skip_empty(const struct state *s, size_t *i, size_t off, size_t end)
{
	while (!off && *i < end && !s->recs[*i].len && s->recs[*i].type == T_DATA)
		(*i)++;
}

/* The next record the reader can see (or visible_end). */
static size_t next_visible(const struct state *s)
{
	size_t i = s->cur;

	skip_empty(s, &i, s->cur_off, visible_end(s));
	return i;
}

/* Bytes read past the modelled records: whatever the stream became, they passed
 * authentication, so they are plaintext some record was sealed with. */
static void check_sealed(const struct state *s, const uint8_t *buf, size_t n)
{
	if (n && !s->garbage && !memmem(s->plain, s->plain_len, buf, n))
		FAIL("read %zu bytes that were never sealed", n);
}

/* n bytes of `type` were read: they must continue the sealed stream. */
static void model_read(struct state *s, uint8_t type, const uint8_t *buf, size_t n, bool peek)
{
	size_t i = s->cur, off = s->cur_off, got = 0, end = visible_end(s);
	bool one = false;

	if (s->unchecked) {
		check_sealed(s, buf, n);
		return;
	}
	for (;;) {
		const struct rec *r;
		size_t take;

		skip_empty(s, &i, off, end);
		if (got == n && (type == T_DATA || one))
			break;
		if (i >= end) {
			if (!s->tainted)
				FAIL("read %zu bytes of type %u past the %zu records sealed",
				     n - got, type, s->nrec);
			check_sealed(s, buf + got, n - got);
			break;	/* what follows the valid records is not modelled */
		}
		r = &s->recs[i];
		if (r->type != type)
			FAIL("read type %u, record %zu has type %u", type, i, r->type);
		take = r->len - off < n - got ? r->len - off : n - got;
		if (memcmp(buf + got, s->plain + r->off + off, take))
			FAIL("record %zu: bytes %zu..%zu differ from those sealed", i, off,
			     off + take);
		got += take;
		off += take;
		one = true;
		if (off == r->len) {
			i++;
			off = 0;
		}
		if (type != T_DATA) {
			if (got != n)
				FAIL("control record %zu returned with other bytes", i);
			break;
		}
	}
	if (!peek) {
		s->cur = i;
		s->cur_off = off;
	}
}

struct rparams {
	int flags;
	size_t len;
	uint8_t split;
	uint8_t cmsg;
};

static const size_t cmsg_sizes[] = { 0, 0, 8, sizeof(struct cmsghdr), CMSG_LEN(1),
				     CMSG_SPACE(1), CMSG_SPACE(1), 64 };

struct rresult {
	ssize_t r;
	int err;		/* errno when r < 0 */
	bool eof;		/* 0 bytes, no cmsg, no MSG_CTRUNC: end of stream */
};

/* One ulpo_recvmsg with the generic checks. */
static struct rresult do_recv(struct state *s, const struct rparams *p, bool final)
{
	struct iovec iov[MAX_IOV];
	size_t niov = 1 + p->split % MAX_IOV, left = p->len, clen = cmsg_sizes[p->cmsg & 7];
	bool peek = p->flags & MSG_PEEK, have_ctl = (p->cmsg & 7) != 0;
	void *ctl = have_ctl ? malloc(clen ? clen : 1) : NULL;
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = niov, .msg_control = ctl,
			    .msg_controllen = clen };
	struct rresult res = { 0 };
	uint8_t type = T_DATA;

	m.msg_flags = MSGHDR_FLAGS_SENTINEL;

	/* Each iovec its own allocation of its exact size: ASan sees any overrun. */
	for (size_t i = 0; i < niov; i++) {
		size_t l = i == niov - 1 ? left : left * ((p->split * 37u + i * 101u) & 0xff) / 255;

		iov[i].iov_len = l;
		iov[i].iov_base = malloc(l ? l : 1);
		left -= l;
	}
	if (ctl)
		memset(ctl, 0xa5, clen ? clen : 1);
	errno = 0;
	res.r = ulpo_recvmsg(s->fd, &m, p->flags);
	res.err = res.r < 0 ? errno : 0;
	if (g_trace)
		fprintf(stderr, "recvmsg(len %zu/%zu iov, cmsg %zu, flags %#x) = %zd %s, "
			"flags %#x, cmsg %zu; model at %zu+%zu of %zu (visible %zu)%s%s\n",
			p->len, niov, clen, p->flags, res.r, res.r < 0 ? strerror(res.err) : "",
			m.msg_flags, (size_t)m.msg_controllen, s->cur, s->cur_off, s->nrec,
			visible_end(s), s->tainted ? " tainted" : "",
			s->unchecked ? " unchecked" : "");
	if (res.r < 0) {
		switch (res.err) {
		case EAGAIN:
		case EBADMSG:
		case EMSGSIZE:
		case EINVAL:
		case EIO:
		case EKEYEXPIRED:
			break;
		case EINTR:	/* a blocking read and libFuzzer's timer signal */
			if (!(p->flags & MSG_DONTWAIT) && !(s->opts & OPT_NONBLOCK))
				break;
			/* fallthrough */
		default:
			FAIL("recvmsg: errno %d (%s) is not an RX error", res.err,
			     strerror(res.err));
		}
		/* A failed call leaves the msghdr as it was, as the syscall does. */
		if (m.msg_controllen != clen || m.msg_flags != MSGHDR_FLAGS_SENTINEL)
			FAIL("failed recvmsg changed msg_controllen %zu -> %zu, msg_flags to %#x",
			     clen, (size_t)m.msg_controllen, m.msg_flags);
		goto out;
	}
	if ((size_t)res.r > p->len)
		FAIL("returned %zd, more than the %zu bytes of buffer", res.r, p->len);
	if (m.msg_controllen > clen)
		FAIL("msg_controllen %zu grew past %zu", m.msg_controllen, clen);
	if (m.msg_controllen >= CMSG_LEN(1) && !(m.msg_flags & MSG_CTRUNC)) {
		struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

		if (!cm || cm->cmsg_level != SOL_TLS || cm->cmsg_type != TLS_GET_RECORD_TYPE ||
		    cm->cmsg_len != CMSG_LEN(1))
			FAIL("malformed record-type cmsg");
		type = *CMSG_DATA(cm);
	} else if (res.r > 0 && clen >= CMSG_LEN(1)) {
		FAIL("%zd bytes read without a record-type cmsg", res.r);
	}
	/* Without a cmsg a read succeeds only for data: a control record gives EIO. */
	res.eof = res.r == 0 && p->len && !m.msg_controllen && !(m.msg_flags & MSG_CTRUNC);
	if (res.eof && !s->fin_done)
		FAIL("EOF before the peer closed");
	if (!res.eof && (res.r > 0 || p->len)) {
		/* Gather what was read and compare it with what was sealed. */
		size_t got = 0;

		for (size_t i = 0; i < niov && got < (size_t)res.r; i++) {
			size_t l = iov[i].iov_len;

			if (l > (size_t)res.r - got)
				l = (size_t)res.r - got;
			memcpy(g_buf + got, iov[i].iov_base, l);
			got += l;
		}
		model_read(s, type, g_buf, (size_t)res.r, peek);
	}
out:
	if (!s->unchecked && !final && res.r < 0) {
		size_t nv = next_visible(s);
		bool in_clean = nv < visible_end(s) || !s->tainted;
		int e = res.err;

		/* On valid records the only errors are "no record yet", a control record
		 * without cmsg room and a KeyUpdate. */
		if (in_clean && (e == EBADMSG || e == EMSGSIZE || e == EINVAL))
			FAIL("errno %s on valid records (next %zu of %zu)", strerror(e), nv,
			     s->nrec);
		if (e == EIO && nv < visible_end(s) && s->recs[nv].type == T_DATA)
			FAIL("EIO with a data record next (%zu)", nv);
		if (e == EKEYEXPIRED && s->ku_sealed <= s->ku_installed)
			FAIL("EKEYEXPIRED without a KeyUpdate sealed");
	}
	for (size_t i = 0; i < niov; i++)
		free(iov[i].iov_base);
	free(ctl);
	return res;
}

static void on_keyexpired(struct state *s)
{
	/* What an application does: install the key the peer moved to. */
	if (s->gen_rx < s->gen_tx) {
		install_rx(s, s->gen_rx + 1);
		s->ku_installed++;
	}
}

static int base_flags(const struct state *s)
{
	/* Before the FIN a blocking read could wait for ever. */
	return s->fin_done || (s->opts & OPT_NONBLOCK) ? 0 : MSG_DONTWAIT;
}

static void op_recv(struct state *s, struct input *in)
{
	uint8_t f = in_u8(in);
	struct rparams p = { 0 };
	uint16_t l = in_u16(in);

	p.split = in_u8(in);
	p.cmsg = in_u8(in);
	p.flags = base_flags(s);
	if (f & 1)
		p.flags |= MSG_PEEK;
	if (f & 2)
		p.flags |= MSG_WAITALL;
	if (f & 4)
		p.flags |= MSG_TRUNC;	/* ignored by TLS */
	if ((f & 0xf8) == 0xf8)
		p.flags |= MSG_OOB;	/* ignored, as the kernel's tls_sw_recvmsg does */
	switch (l >> 14) {
	case 0: p.len = l & 0xff; break;
	case 1: p.len = l & 0x3fff; break;
	case 2: p.len = ULPO_TLS_MAX_PAYLOAD + (l & 0x3fff) / 4; break;
	default: p.len = l & 1; break;
	}
	if (!s->rx_installed)
		install_rx(s, 0);
	wire_flush(s, SIZE_MAX);
	if (do_recv(s, &p, false).err == EKEYEXPIRED)
		on_keyexpired(s);
}

static void op_setopt(struct state *s, struct input *in)
{
	uint8_t which = in_u8(in);
	uint16_t val = in_u16(in);

	if (!s->rx_installed)
		return;
	if (which & 1) {
		int lowat = 1 + val % 40000;

		if (ulpo_setsockopt(s->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)))
			FAIL("SO_RCVLOWAT: %s", strerror(errno));
	} else {
		uint32_t v = val & 1;
		int r = ulpo_setsockopt(s->fd, SOL_TLS, TLS_RX_EXPECT_NO_PAD, &v, sizeof(v));

		if ((r == 0) != (s->v->version == TLS_1_3_VERSION))
			FAIL("TLS_RX_EXPECT_NO_PAD: %d %s", r, strerror(errno));
	}
}

static void op_damage(struct state *s, struct input *in)
{
	uint8_t kind = in_u8(in), val = in_u8(in);
	uint16_t pos = in_u16(in);
	long off = seal(s, in, false);
	size_t rl;

	if (off < 0)
		return;
	rl = s->wire_len - (size_t)off;
	if (g_trace)
		fprintf(stderr, "damage %u pos %u val %u\n", kind & 3, pos, val);
	switch (kind & 3) {
	case 0:		/* flip a bit: a bad tag (or a bad header) */
		s->wire[(size_t)off + pos % rl] ^= (uint8_t)(1u << (val & 7));
		break;
	case 1:		/* rewrite a header byte: type, version, length */
		s->wire[(size_t)off + pos % 5] = val;
		break;
	case 2:		/* cut it short: what follows is misparsed */
		s->wire_len = (size_t)off + pos % rl;
		break;
	default:	/* replay it: the copy has the wrong sequence number */
		if (s->wire_len + rl <= MAX_WIRE) {
			memcpy(s->wire + s->wire_len, s->wire + off, rl);
			s->wire_len += rl;
		}
		break;
	}
}

static void op_raw(struct state *s, struct input *in)
{
	size_t n = in_u8(in);

	if (n > in->n)
		n = in->n;
	if (!n || s->wire_len + n > MAX_WIRE)
		return;
	taint(s);
	if (g_trace)
		fprintf(stderr, "raw %zu bytes at %zu\n", n, s->wire_len);
	memcpy(s->wire + s->wire_len, in->p, n);
	s->wire_len += n;
	in->p += n;
	in->n -= n;
}

static void op_rekey(struct state *s, struct input *in)
{
	uint8_t b = in_u8(in);

	if (!s->rx_installed)
		return;
	/* A rekey at a point the peer did not choose: records in flight fail. Never to a
	 * key installed before, which would make replayed records authentic. */
	if (b & 1 && s->v->version == TLS_1_3_VERSION) {
		struct keys k;

		codec_free(&s->cd);
		keys_gen(s, ++s->gen_tx, &k);
		if (codec_init(&s->cd, s->v, &k))
			FAIL("codec_init");
		install_rx(s, s->gen_tx);
	} else {
		install_rx(s, FOREIGN_GEN + s->foreign++);	/* a key the peer never uses */
	}
	if (s->v->version == TLS_1_3_VERSION)
		s->unchecked = true;
}

/* Write the rest, then read like an application until there is nothing more. */
static void finish(struct state *s)
{
	struct rparams p = { .len = DRAIN_BUF, .cmsg = 5 };
	size_t calls = 2 * s->nrec + 64;
	struct rresult res = { 0 };
	bool ended = false;
	int waits = 0;

	if (!s->rx_installed)
		install_rx(s, 0);
	while (!ended && calls--) {
		wire_flush(s, SIZE_MAX);
		if (s->wire_sent == s->wire_len && (s->opts & OPT_FIN) && !s->fin_done) {
			shutdown(s->raw, SHUT_WR);
			s->fin_done = true;
		}
		p.flags = base_flags(s);
		res = do_recv(s, &p, true);
		if (res.r >= 0) {
			ended = res.eof;	/* else data or an empty record */
		} else if (res.err == EINTR) {
			continue;
		} else if (res.err == EKEYEXPIRED && s->gen_rx < s->gen_tx) {
			on_keyexpired(s);
		} else if (res.err == EAGAIN &&
			   (s->wire_sent < s->wire_len || !wire_arrived(s)) && waits++ < 100) {
			struct pollfd pfd = { .fd = s->raw, .events = POLLOUT };

			/* Bytes still to write or in flight: wait for them, not for ever. */
			poll(&pfd, 1, 10);
		} else {
			if (res.err == EIO)
				FAIL("EIO with a cmsg buffer");
			ended = true;
		}
	}
	if (s->unchecked || !ended || s->wire_sent < s->wire_len)
		return;
	/* Everything sealed and valid was read; errors only after it. */
	if (next_visible(s) < visible_end(s))
		FAIL("reading ended (%s) with record %zu of %zu unread",
		     res.r < 0 ? strerror(res.err) : "EOF", next_visible(s), visible_end(s));
	if (res.r < 0 && !s->tainted && res.err != EAGAIN &&
	    !(res.err == EKEYEXPIRED && s->stall_at))
		FAIL("reading valid records ended with %s", strerror(res.err));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct state st;
	struct state *s = &st;
	struct input in = { data, size };
	struct keys k;

	if (size < 2)
		return 0;
	memset(s, 0, sizeof(*s));
	s->vi = in_u8(&in) % NVARIANTS;
	s->v = &variants[s->vi];
	s->opts = in_u8(&in);
	s->wire = g_wire;
	s->plain = g_plain;
	if (pair_open(s))
		FAIL("setup: %s", strerror(errno));
	keys_gen(s, 0, &k);
	if (codec_init(&s->cd, s->v, &k))
		FAIL("codec_init");
	if (s->opts & OPT_NONBLOCK)
		fcntl(s->fd, F_SETFL, O_NONBLOCK);
	if (ulp(s->fd))
		FAIL("TCP_ULP: %s", strerror(errno));
	if (!(s->opts & OPT_DEFER_RX))
		install_rx(s, 0);
	while (in.n) {
		switch (in_u8(&in) % 9) {
		case OP_SEAL:
		case OP_SEAL2:
			seal(s, &in, true);
			break;
		case OP_RAW:
			op_raw(s, &in);
			break;
		case OP_DAMAGE:
			op_damage(s, &in);
			break;
		case OP_RECV:
		case OP_RECV2:
			op_recv(s, &in);
			break;
		case OP_WRITE:
			wire_flush(s, in_u16(&in));
			break;
		case OP_SETOPT:
			op_setopt(s, &in);
			break;
		case OP_REKEY:
			op_rekey(s, &in);
			break;
		}
	}
	finish(s);
	codec_free(&s->cd);
	ulpo_close(s->fd);
	close(s->raw);
	return 0;
}
