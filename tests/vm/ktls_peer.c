/* ktls_peer.c - one kTLS peer program built twice: statically for the VM guest against the
 * kernel's own kTLS (-DTEST_KERNEL: plain setsockopt/send/recv) and for the host against
 * ulpo. The guest connects out to the host once per cell; both sides print each result.
 *
 *   host:  ktls_peer host <port> <seed> <kib>          listen on 127.0.0.1, serve cells
 *   guest: ktls_peer guest <ip> <port> <seed> <kib> [variant-filter]
 *   self:  ktls_peer self <seed> <kib>                  (host build) both roles through ulpo,
 *          a self-test of this program that needs no VM
 *
 * Cells per (version, cipher): the guest's kernel sends a seeded stream to ulpo (tx), ulpo
 * sends it to the kernel (rx), and a fixed send sequence whose ciphertext the host records
 * and compares with what ulpo emits for the same keys and sends (ct). */
#include <signal.h>
#include <time.h>
#ifndef TEST_KERNEL
#include <pthread.h>
#include <sys/wait.h>
#endif

#include "../tls/tls_helpers.h"

/* Modes in the plaintext cell header the guest sends first. */
enum { M_GUEST_TX = 1, M_GUEST_RX = 2, M_CAPTURE = 3, M_SKIP = 4, M_DONE = 5 };
#define HDR_LEN 8
#define STATUS_LEN 128
#define CELL_TIMEOUT 150	/* seconds; the VM runs under TCG */
#define MAX_SEND 150000

static uint64_t g_seed;
static size_t g_bytes;

static uint64_t splitmix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Byte p of the data stream is a function of (seed, p): sender and receiver need no state. */
static void stream_fill(uint64_t seed, uint64_t pos, uint8_t *buf, size_t len)
{
	uint64_t w = splitmix(seed ^ (pos >> 3));

	for (size_t i = 0; i < len; i++, pos++) {
		if (i && !(pos & 7))
			w = splitmix(seed ^ (pos >> 3));
		buf[i] = (uint8_t)(w >> (8 * (pos & 7)));
	}
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t cell_seed(int mode, int vi)
{
	return splitmix(g_seed ^ ((uint64_t)mode << 32) ^ (uint64_t)vi);
}

/* ---- the seeded send plan, replayed by the receiver to know what it must see ---- */

struct plan {
	uint64_t rng;
	size_t left;		/* data bytes not planned yet */
	unsigned nctrl;
};

struct act {
	bool ctrl;
	uint8_t type;
	int flags;
	int niov;
	size_t len;
	unsigned ctrl_idx;
};

static bool plan_next(struct plan *p, struct act *a)
{
	unsigned r;

	if (!p->left)
		return false;
	memset(a, 0, sizeof(*a));
	r = (unsigned)(t_rand(&p->rng) % 100);
	if (r < 3) {
		/* A control record; it also closes an open MSG_MORE data record. */
		static const uint8_t types[] = { 21, 22, 100 };

		a->ctrl = true;
		a->type = types[t_rand(&p->rng) % 3];
		a->len = 1 + t_rand(&p->rng) % 512;
		a->ctrl_idx = p->nctrl++;
		return true;
	}
	r = (unsigned)(t_rand(&p->rng) % 20);
	if (r == 0)
		a->len = 0;	/* a no-op, even with a record open */
	else if (r < 9)
		a->len = 1 + t_rand(&p->rng) % 256;
	else if (r < 17)
		a->len = 257 + t_rand(&p->rng) % 20000;
	else
		a->len = 20001 + t_rand(&p->rng) % (MAX_SEND - 20000);
	if (a->len >= p->left)
		a->len = p->left;
	if (a->len < p->left && t_rand(&p->rng) % 4 == 0)
		a->flags = MSG_MORE;
	a->niov = 1 + (int)(t_rand(&p->rng) % 4);
	p->left -= a->len;
	return true;
}

static void ctrl_fill(uint64_t seed, const struct act *a, uint8_t *buf)
{
	stream_fill(~seed, (uint64_t)a->ctrl_idx << 20, buf, a->len);
	if (a->type == 22)
		buf[0] = 4;	/* a handshake record starting with 24 would be a KeyUpdate */
}

/* ---- stream sender and receiver ---- */

static int stream_send(int fd, uint64_t seed, size_t total, char *why)
{
	struct plan p = { .rng = seed, .left = total };
	uint8_t *buf = malloc(MAX_SEND);
	uint64_t pos = 0;
	struct act a;
	int ret = 0;

	while (plan_next(&p, &a)) {
		ssize_t r;

		if (a.ctrl) {
			ctrl_fill(seed, &a, buf);
			r = send_typed(fd, buf, a.len, 0, a.type);
		} else {
			struct iovec iov[4];
			struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)a.niov };
			size_t off = 0;

			stream_fill(seed, pos, buf, a.len);
			for (int i = 0; i < a.niov; i++) {
				size_t l = i == a.niov - 1 ? a.len - off : (a.len - off) / 2;

				iov[i].iov_base = buf + off;
				iov[i].iov_len = l;
				off += l;
			}
			r = U(sendmsg)(fd, &m, a.flags);
			pos += a.len;
		}
		if (r != (ssize_t)a.len) {
			snprintf(why, STATUS_LEN, "send of %zu (ctrl %d flags %#x) returned %zd: %s",
				 a.len, a.ctrl, a.flags, r, strerror(errno));
			ret = -1;
			break;
		}
	}
	free(buf);
	return ret;
}

struct event {
	bool ctrl;
	struct act a;		/* for ctrl */
	size_t len;		/* for a data run: bytes up to the next control record */
};

/* The receiver's view of a plan: data sends merge into runs between control records. */
static struct event *plan_events(uint64_t seed, size_t total, size_t *ret_n)
{
	struct plan p = { .rng = seed, .left = total };
	size_t n = 0, cap = 64;
	struct event *ev = malloc(cap * sizeof(*ev));
	struct act a;

	while (plan_next(&p, &a)) {
		if (n + 2 > cap)
			ev = realloc(ev, (cap *= 2) * sizeof(*ev));
		if (a.ctrl) {
			ev[n++] = (struct event){ .ctrl = true, .a = a };
		} else if (a.len) {
			if (n && !ev[n - 1].ctrl)
				ev[n - 1].len += a.len;
			else
				ev[n++] = (struct event){ .len = a.len };
		}
	}
	*ret_n = n;
	return ev;
}

static ssize_t recv_cmsg(int fd, uint8_t *buf, size_t len, int flags, int niov, uint8_t *type)
{
	char cbuf[CMSG_SPACE(sizeof(uint8_t))];
	struct iovec iov[3];
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)niov, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	size_t off = 0;
	ssize_t r;

	for (int i = 0; i < niov; i++) {
		size_t l = i == niov - 1 ? len - off : (len - off) / 3;

		iov[i].iov_base = buf + off;
		iov[i].iov_len = l;
		off += l;
	}
	r = U(recvmsg)(fd, &m, flags);
	*type = 0;
	if (r >= 0 && m.msg_controllen) {
		struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

		if (cm && cm->cmsg_level == SOL_TLS && cm->cmsg_type == TLS_GET_RECORD_TYPE)
			*type = *CMSG_DATA(cm);
	}
	return r;
}

static int stream_recv(int fd, uint64_t seed, size_t total, char *why, unsigned *ret_nctrl)
{
	size_t nev, ei = 0, run_off = 0;
	struct event *ev = plan_events(seed, total, &nev);
	uint8_t *buf = malloc(MAX_SEND), *want = malloc(MAX_SEND);
	uint64_t rng = ~seed, pos = 0;
	unsigned nctrl = 0;
	int ret = -1;

	why[0] = 0;
	while (ei < nev) {
		const struct event *e = &ev[ei];
		size_t left = e->len - run_off, len;
		int flags = 0, niov = 1 + (int)(t_rand(&rng) % 3);
		uint8_t type;
		ssize_t r;

		if (e->ctrl) {
			len = e->a.len + t_rand(&rng) % 1000;
			r = recv_cmsg(fd, buf, len, 0, niov, &type);
			ctrl_fill(seed, &e->a, want);
			if (r != (ssize_t)e->a.len || type != e->a.type ||
			    memcmp(buf, want, e->a.len)) {
				snprintf(why, STATUS_LEN,
					 "control record %u: got %zd bytes type %u, expected %zu type %u%s%s",
					 e->a.ctrl_idx, r, type, e->a.len, e->a.type, r < 0 ? ": " : "",
					 r < 0 ? strerror(errno) : "");
				goto out;
			}
			nctrl++;
			ei++;
			continue;
		}
		len = 1 + t_rand(&rng) % 70000;
		switch (t_rand(&rng) % 16) {
		case 0:
		case 1:
			if (len <= left)
				flags = MSG_WAITALL;
			break;
		case 2:
			flags = MSG_PEEK;	/* peek, then read the same bytes below */
			break;
		}
		r = recv_cmsg(fd, buf, len, flags, niov, &type);
		if (r <= 0 || type != 23 || (size_t)r > left ||
		    ((flags & MSG_WAITALL) && (size_t)r != len)) {
			snprintf(why, STATUS_LEN,
				 "data read of %zu (flags %#x) at %llu returned %zd type %u, run left %zu%s%s",
				 len, flags, (unsigned long long)pos, r, type, left, r < 0 ? ": " : "",
				 r < 0 ? strerror(errno) : "");
			goto out;
		}
		stream_fill(seed, pos, want, (size_t)r);
		if (memcmp(buf, want, (size_t)r)) {
			size_t i = 0;

			while (buf[i] == want[i])
				i++;
			snprintf(why, STATUS_LEN, "data differs at stream byte %llu%s",
				 (unsigned long long)(pos + i), flags & MSG_PEEK ? " (peek)" : "");
			goto out;
		}
		if (flags & MSG_PEEK)
			continue;
		pos += (uint64_t)r;
		run_off += (size_t)r;
		if (run_off == e->len) {
			run_off = 0;
			ei++;
		}
	}
	if (pos != total) {
		snprintf(why, STATUS_LEN, "received %llu of %zu bytes", (unsigned long long)pos, total);
		goto out;
	}
	*ret_nctrl = nctrl;
	ret = 0;
out:
	free(ev);
	free(buf);
	free(want);
	return ret;
}

/* ---- the fixed send sequence for the ciphertext comparison ---- */

struct csend {
	int len;
	int flags;
	uint8_t type;		/* 0: data */
	int niov;
};

static const struct csend capture_plan[] = {
	{ 1, 0, 0, 1 },
	{ 100, MSG_MORE, 0, 1 },
	{ 200, MSG_MORE, 0, 2 },
	{ 0, 0, 0, 1 },			/* zero-length send: no record, no flush */
	{ 50, 0, 0, 1 },		/* closes the 350-byte record */
	{ 40000, 0, 0, 1 },		/* 16384 + 16384 + 7232 */
	{ 16384, 0, 0, 1 },
	{ 16385, 0, 0, 3 },
	{ 10000, MSG_MORE, 0, 1 },
	{ 10000, MSG_MORE, 0, 1 },	/* fills a record, 3616 stay open */
	{ 3000, 0, 0, 1 },
	{ 2, 0, 21, 1 },		/* alert */
	{ 5000, MSG_MORE, 0, 1 },
	{ 300, 0, 22, 1 },		/* flushes the open 5000 first */
	{ 70000, MSG_MORE, 0, 4 },
	{ 0, 0, 21, 1 },		/* empty control: flushes 70000 - 4 * 16384, sends nothing */
	{ 20000, 0, 100, 1 },		/* control over 2^14: two records of type 100 */
	{ 33333, 0, 0, 3 },
	{ 1, 0, 0, 1 },
};

static int capture_sends(int fd, uint64_t seed, char *why)
{
	uint8_t *buf = malloc(MAX_SEND);
	uint64_t pos = 0;
	int ret = 0;

	for (size_t i = 0; i < sizeof(capture_plan) / sizeof(capture_plan[0]); i++) {
		const struct csend *c = &capture_plan[i];
		ssize_t r;

		stream_fill(seed, pos, buf, (size_t)c->len);
		pos += (uint64_t)c->len;
		if (c->type) {
			if (c->type == 22)
				buf[0] = 4;
			r = send_typed(fd, buf, (size_t)c->len, c->flags, c->type);
		} else {
			struct iovec iov[4];
			struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)c->niov };
			size_t off = 0;

			for (int j = 0; j < c->niov; j++) {
				size_t l = j == c->niov - 1 ? (size_t)c->len - off : ((size_t)c->len - off) / 2;

				iov[j].iov_base = buf + off;
				iov[j].iov_len = l;
				off += l;
			}
			r = U(sendmsg)(fd, &m, c->flags);
		}
		if (r != c->len) {
			snprintf(why, STATUS_LEN, "capture send %zu (%d bytes) returned %zd: %s", i,
				 c->len, r, strerror(errno));
			ret = -1;
			break;
		}
	}
	free(buf);
	return ret;
}

/* ---- shared plumbing ---- */

static int install(int fd, const struct variant *v, uint64_t seed, int dir)
{
	struct keys k;

	keys_make(v, seed, &k);
	return U(setsockopt)(fd, SOL_TLS, dir, k.info, k.len);
}

static int send_status(int fd, const char *s)
{
	char st[STATUS_LEN] = { 0 };

	snprintf(st, sizeof(st), "%s", s);
	return U(send)(fd, st, sizeof(st), 0) == sizeof(st) ? 0 : -1;
}

/* After the status the sender closes: anything but a clean EOF is data nobody sent. */
static int expect_eof(int fd, char *why)
{
	uint8_t b[256];
	ssize_t r = U(recv)(fd, b, sizeof(b), 0);

	if (r == 0)
		return 0;
	snprintf(why, STATUS_LEN, "after the stream: recv returned %zd%s%s instead of EOF", r,
		 r < 0 ? ": " : "", r < 0 ? strerror(errno) : "");
	return -1;
}

static int read_status(int fd, char *st)
{
	ssize_t r = u_read_full(fd, st, STATUS_LEN, 0);

	st[STATUS_LEN - 1] = 0;
	if (r != STATUS_LEN) {
		snprintf(st, STATUS_LEN, "FAIL no status from peer (%zd: %s)", r,
			 r < 0 ? strerror(errno) : "eof");
		return -1;
	}
	return strncmp(st, "OK", 2) ? -1 : 0;
}

static void print_cell(const char *mode, const struct variant *v, int ok, const char *detail)
{
	printf("%s %-28s %-23s %s\n", ok ? "ok  " : "FAIL", mode, v->name, detail);
	fflush(stdout);
}

/* ---- guest: the kernel's kTLS, connecting out (in the host build: ulpo, a self-test) ---- */

static struct sockaddr_in g_host;

static int guest_connect(int mode, int vi)
{
	uint8_t hdr[HDR_LEN] = { 'K', 'P', (uint8_t)mode, (uint8_t)vi };
	int fd;

	for (int tries = 0; tries < 50; tries++) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd >= 0 && connect(fd, (void *)&g_host, sizeof(g_host)) == 0)
			break;
		close(fd);
		fd = -1;
		usleep(100000);
	}
	if (fd < 0)
		return -1;
	/* The header goes out as plain TCP: before TLS_TX, or while only RX is installed. */
	if (mode == M_GUEST_RX) {
		if (ulp(fd) || install(fd, &variants[vi], cell_seed(mode, vi), TLS_RX) ||
		    send(fd, hdr, HDR_LEN, 0) != HDR_LEN)
			goto fail;
	} else if (mode == M_GUEST_TX || mode == M_CAPTURE) {
		if (send(fd, hdr, HDR_LEN, 0) != HDR_LEN || ulp(fd) ||
		    install(fd, &variants[vi], cell_seed(mode, vi), TLS_TX))
			goto fail;
	} else if (send(fd, hdr, HDR_LEN, 0) != HDR_LEN) {
		goto fail;
	}
	return fd;
fail:
	U(close)(fd);
	return -1;
}

static bool kernel_accepts(const struct variant *v)
{
	int c, s;
	bool r;

	if (tcp_pair(&c, &s))
		return false;
	r = ulp(c) == 0 && install(c, v, 1, TLS_TX) == 0;
	U(close)(c);
	close(s);
	return r;
}

static int guest_cell(int mode, int vi)
{
	const struct variant *v = &variants[vi];
	char why[STATUS_LEN] = "", st[STATUS_LEN];
	uint64_t seed = cell_seed(mode, vi);
	unsigned nctrl = 0;
	int fd, ok;

	alarm(CELL_TIMEOUT);
	fd = guest_connect(mode, vi);
	if (fd < 0) {
		snprintf(st, sizeof(st), "cannot connect/install: %s", strerror(errno));
		print_cell(mode == M_GUEST_RX ? "host-ulpo-tx>kernel-rx" : "kernel-tx>host-ulpo-rx",
			   v, 0, st);
		return -1;
	}
	if (mode == M_GUEST_TX) {
		ok = stream_send(fd, seed, g_bytes, why) == 0;
		ok = read_status(fd, st) == 0 && ok;
		print_cell("kernel-tx>host-ulpo-rx", v, ok, ok ? st : why[0] ? why : st);
	} else if (mode == M_GUEST_RX) {
		double t0 = now();

		ok = stream_recv(fd, seed, g_bytes, why, &nctrl) == 0;
		if (ok)
			snprintf(why, sizeof(why), "OK %zu bytes, %u control records, %.1f MiB/s",
				 g_bytes, nctrl, g_bytes / (now() - t0) / 1048576);
		send_status(fd, ok ? why : "FAIL see guest");
		if (ok && expect_eof(fd, why))
			ok = 0;
		print_cell("host-ulpo-tx>kernel-rx", v, ok, why);
	} else {
		ok = capture_sends(fd, seed, why) == 0;
		if (!ok)
			print_cell("ciphertext", v, 0, why);
	}
	U(close)(fd);
	alarm(0);
	return ok ? 0 : -1;
}

static int guest_main(int argc, char **argv)
{
	const char *only = argc > 5 ? argv[5] : NULL;
	int fails = 0;

	g_host.sin_family = AF_INET;
	g_host.sin_port = htons((uint16_t)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &g_host.sin_addr) != 1)
		return 2;
	for (size_t vi = 0; vi < NVARIANTS; vi++) {
		const struct variant *v = &variants[vi];
		int fd;

		if (only && !strstr(v->name, only))
			continue;
		if (!kernel_accepts(v)) {
			/* SM4 and ARIA are not in this kernel: say so to the host. */
			fd = guest_connect(M_SKIP, (int)vi);
			if (fd >= 0)
				U(close)(fd);
			printf("SKIP %s (the guest kernel refuses it)\n", v->name);
			continue;
		}
		fails += guest_cell(M_GUEST_TX, (int)vi) < 0;
		fails += guest_cell(M_GUEST_RX, (int)vi) < 0;
		fails += guest_cell(M_CAPTURE, (int)vi) < 0;
	}
	U(close)(guest_connect(M_DONE, 0));
	return fails ? 1 : 0;
}

#ifndef TEST_KERNEL
/* ---- host: ulpo, listening ---- */

struct sink {
	int fd;
	uint8_t *buf;
	size_t len, cap;
};

static void *sink_thread(void *arg)
{
	struct sink *k = arg;

	for (;;) {
		ssize_t r;

		if (k->len == k->cap)
			k->buf = realloc(k->buf, k->cap = k->cap ? 2 * k->cap : 1 << 20);
		r = recv(k->fd, k->buf + k->len, k->cap - k->len, 0);
		if (r <= 0)
			break;
		k->len += (size_t)r;
	}
	return NULL;
}

/* Count records and find the one holding byte `at`. */
static size_t record_at(const uint8_t *b, size_t len, size_t at, size_t *ret_nrec)
{
	size_t off = 0, n = 0, found = (size_t)-1;

	while (off + 5 <= len) {
		size_t next = off + 5 + ((size_t)b[off + 3] << 8 | b[off + 4]);

		if (found == (size_t)-1 && at < next)
			found = n;
		n++;
		off = next;
	}
	*ret_nrec = n;
	return found;
}

static int host_capture(int fd, const struct variant *v, uint64_t seed)
{
	struct sink kern = { .fd = fd }, mine = { 0 };
	char why[STATUS_LEN] = "", msg[256];
	pthread_t th;
	int c, s, ok;
	size_t nrec, i;

	sink_thread(&kern);	/* the kernel's ciphertext, up to the guest's close */
	if (tcp_pair(&c, &s) || ulp(c) || install(c, v, seed, TLS_TX)) {
		print_cell("ciphertext", v, 0, "ulpo could not install TX");
		return -1;
	}
	mine.fd = s;
	pthread_create(&th, NULL, sink_thread, &mine);
	ok = capture_sends(c, seed, why) == 0;
	U(close)(c);
	pthread_join(th, NULL);
	close(s);
	if (!ok) {
		print_cell("ciphertext", v, 0, why);
	} else if (kern.len == mine.len && !memcmp(kern.buf, mine.buf, kern.len)) {
		record_at(kern.buf, kern.len, 0, &nrec);
		snprintf(msg, sizeof(msg), "identical, %zu bytes in %zu records", kern.len, nrec);
		print_cell("ciphertext kernel==ulpo", v, 1, msg);
	} else {
		size_t n = kern.len < mine.len ? kern.len : mine.len, rk, ru, nk, nu;

		for (i = 0; i < n && kern.buf[i] == mine.buf[i]; i++)
			;
		rk = record_at(kern.buf, kern.len, i, &nk);
		ru = record_at(mine.buf, mine.len, i, &nu);
		snprintf(msg, sizeof(msg),
			 "differ at byte %zu (kernel record %zu of %zu, %zu bytes; ulpo record %zu of %zu, %zu bytes)",
			 i, rk, nk, kern.len, ru, nu, mine.len);
		print_cell("ciphertext kernel==ulpo", v, 0, msg);
		ok = 0;
	}
	free(kern.buf);
	free(mine.buf);
	return ok ? 0 : -1;
}

static int host_cell(int fd, int mode, int vi)
{
	const struct variant *v = &variants[vi];
	uint64_t seed = cell_seed(mode, vi);
	char why[STATUS_LEN] = "", st[STATUS_LEN], msg[300];
	unsigned nctrl = 0;
	double t0 = now();
	int ok;

	if (ulp(fd) || install(fd, v, seed, mode == M_GUEST_TX ? TLS_RX : TLS_TX)) {
		snprintf(msg, sizeof(msg), "ulpo could not install keys: %s", strerror(errno));
		print_cell(mode == M_GUEST_TX ? "kernel-tx>host-ulpo-rx" : "host-ulpo-tx>kernel-rx",
			   v, 0, msg);
		return -1;
	}
	if (mode == M_GUEST_TX) {
		ok = stream_recv(fd, seed, g_bytes, why, &nctrl) == 0;
		if (ok)
			snprintf(why, sizeof(why), "OK %zu bytes, %u control records, %.1f MiB/s",
				 g_bytes, nctrl, g_bytes / (now() - t0) / 1048576);
		send_status(fd, ok ? why : "FAIL see host");
		if (ok && expect_eof(fd, why))
			ok = 0;
		print_cell("kernel-tx>host-ulpo-rx", v, ok, why);
	} else {
		ok = stream_send(fd, seed, g_bytes, why) == 0;
		ok = read_status(fd, st) == 0 && ok;
		snprintf(msg, sizeof(msg), "%s%s%s", why, why[0] ? "; guest: " : "", st);
		print_cell("host-ulpo-tx>kernel-rx", v, ok, msg);
	}
	return ok ? 0 : -1;
}

static int host_serve(int l)
{
	int fails = 0, cells = 0;

	for (;;) {
		uint8_t hdr[HDR_LEN];
		int fd;

		alarm(CELL_TIMEOUT);
		fd = accept(l, NULL, NULL);
		if (fd < 0 || read_full(fd, hdr, HDR_LEN) != HDR_LEN || hdr[0] != 'K' ||
		    hdr[1] != 'P' || hdr[3] >= NVARIANTS) {
			printf("FAIL bad connection or cell header\n");
			return 1;
		}
		if (hdr[2] == M_DONE) {
			close(fd);
			break;
		}
		if (hdr[2] == M_SKIP)
			printf("SKIP %s (the guest kernel refuses it)\n", variants[hdr[3]].name);
		else if (hdr[2] == M_CAPTURE)
			fails += host_capture(fd, &variants[hdr[3]], cell_seed(M_CAPTURE, hdr[3])) < 0, cells++;
		else
			fails += host_cell(fd, hdr[2], hdr[3]) < 0, cells++;
		U(close)(fd);
	}
	alarm(0);
	printf("%d cells, %d failed\n", cells, fails);
	return fails || !cells ? 1 : 0;
}

static int listen_on(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (l < 0 || bind(l, (void *)&a, sizeof(a)) || listen(l, 4)) {
		perror("bind/listen");
		return -1;
	}
	return l;
}

static int host_main(int argc, char **argv)
{
	int l;

	(void)argc;
	l = listen_on((uint16_t)atoi(argv[1]));
	if (l < 0)
		return 2;
	printf("listening on 127.0.0.1:%s\n", argv[1]);
	fflush(stdout);
	return host_serve(l);
}

/* Both roles through ulpo over loopback: the host role in a child, the guest role here. */
static int self_main(void)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	int l = listen_on(0), st = 0, rc;
	char port[16];
	pid_t pid;

	if (l < 0 || getsockname(l, (void *)&a, &al))
		return 2;
	snprintf(port, sizeof(port), "%u", ntohs(a.sin_port));
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(host_serve(l));
	close(l);
	rc = guest_main(3, (char *[]){ "guest", "127.0.0.1", port, NULL });
	waitpid(pid, &st, 0);
	return rc || !WIFEXITED(st) || WEXITSTATUS(st) ? 1 : 0;
}
#endif

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 6 && !strcmp(argv[1], "guest")) {
		g_seed = strtoull(argv[4], NULL, 0);
		g_bytes = strtoull(argv[5], NULL, 0) << 10;
		return guest_main(argc - 1, argv + 1);
	}
#ifndef TEST_KERNEL
	if (argc >= 5 && !strcmp(argv[1], "host")) {
		g_seed = strtoull(argv[3], NULL, 0);
		g_bytes = strtoull(argv[4], NULL, 0) << 10;
		return host_main(argc - 1, argv + 1);
	}
	if (argc >= 4 && !strcmp(argv[1], "self")) {
		g_seed = strtoull(argv[2], NULL, 0);
		g_bytes = strtoull(argv[3], NULL, 0) << 10;
		return self_main();
	}
#endif
	fprintf(stderr, "usage: ktls_peer guest <ip> <port> <seed> <kib> [variant-filter]\n"
#ifndef TEST_KERNEL
			"       ktls_peer host <port> <seed> <kib>\n"
			"       ktls_peer self <seed> <kib>\n"
#endif
		);
	return 2;
}
