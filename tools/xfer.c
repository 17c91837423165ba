/* xfer.c - seeded bulk transfer through a ulpo TLS socket, both directions at once,
 * verified byte for byte; control records are read through a cmsg buffer as kTLS
 * programs do (a NewSessionTicket arrives as a handshake record after the switch). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ulpo/ulpo.h>

#include "xfer.h"

#define BUF_SIZE (256u << 10)

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- the pattern ---- */

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

void pat_init(struct pat *p, uint64_t seed, bool text)
{
	p->s = seed * 0x9e3779b97f4a7c15ull + 1;	/* never 0: xorshift would stick */
	p->left = 0;
	p->word = 0;
	p->text = text;
}

static const char text_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* Text: about one byte in 64 is a newline, so lines average 64 bytes. */
static inline uint8_t to_text(uint8_t b)
{
	return b < 4 ? '\n' : (uint8_t)text_chars[b % 62];
}

void pat_fill(struct pat *p, void *buf, size_t len)
{
	uint8_t *d = buf;
	size_t i = 0;

	while (i < len && p->left) {
		d[i++] = (uint8_t)p->word;
		p->word >>= 8;
		p->left--;
	}
	for (; i + 8 <= len; i += 8) {
		uint64_t w = xorshift(&p->s);

		memcpy(d + i, &w, 8);	/* little-endian, same as the byte loop */
	}
	if (i < len) {
		p->word = xorshift(&p->s);
		p->left = 8;
		while (i < len) {
			d[i++] = (uint8_t)p->word;
			p->word >>= 8;
			p->left--;
		}
	}
	if (p->text)
		for (i = 0; i < len; i++)
			d[i] = to_text(d[i]);
}

size_t pat_check(struct pat *p, const void *buf, size_t len)
{
	uint8_t want[16384];
	const uint8_t *b = buf;
	size_t off = 0, bad = len;

	while (off < len) {
		size_t n = len - off < sizeof(want) ? len - off : sizeof(want);

		pat_fill(p, want, n);
		if (bad == len && memcmp(want, b + off, n)) {
			for (size_t i = 0; i < n; i++) {
				if (want[i] != b[off + i]) {
					bad = off + i;
					break;
				}
			}
		}
		off += n;
	}
	return bad;
}

/* ---- record-aware receive ---- */

static ssize_t recv_typed(int fd, void *buf, size_t len, int flags, uint8_t *ret_type)
{
	union {
		char buf[CMSG_SPACE(sizeof(uint8_t))];
		struct cmsghdr align;
	} c;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf,
			    .msg_controllen = sizeof(c.buf) };
	struct cmsghdr *cm;
	ssize_t r = ulpo_recvmsg(fd, &m, flags);

	*ret_type = ULPO_TLS_RECORD_DATA;
	if (r >= 0 && m.msg_controllen) {
		cm = CMSG_FIRSTHDR(&m);
		if (cm && cm->cmsg_level == SOL_TLS && cm->cmsg_type == TLS_GET_RECORD_TYPE)
			*ret_type = *CMSG_DATA(cm);
	}
	return r;
}

static ssize_t send_typed(int fd, const void *buf, size_t len, uint8_t type)
{
	union {
		char buf[CMSG_SPACE(sizeof(uint8_t))];
		struct cmsghdr align;
	} c;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf,
			    .msg_controllen = sizeof(c.buf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

	cm->cmsg_level = SOL_TLS;
	cm->cmsg_type = TLS_SET_RECORD_TYPE;
	cm->cmsg_len = CMSG_LEN(sizeof(uint8_t));
	*CMSG_DATA(cm) = type;
	return ulpo_sendmsg(fd, &m, MSG_NOSIGNAL);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- the transfer ---- */

struct sender {
	struct xfer *x;
	char err[200];
	int result;
};

static void *send_main(void *arg)
{
	struct sender *sd = arg;
	struct xfer *x = sd->x;
	unsigned int max = x->max_chunk ? x->max_chunk : BUF_SIZE;
	uint64_t rng = x->send_seed ^ 0x5eedc0de, left = x->send_len;
	uint8_t *buf = malloc(max);
	struct pat p;

	sd->result = -1;
	if (!buf) {
		seterr(sd->err, sizeof(sd->err), "out of memory");
		goto out;
	}
	pat_init(&p, x->send_seed, x->text);
	while (left) {
		/* Sizes vary so records are full, partial and tiny; one send in eight is small. */
		uint64_t r = xorshift(&rng);
		size_t n = (r >> 8) % 8 ? 1 + (r >> 16) % max : 1 + (r >> 16) % 2048, off = 0;

		if (n > left)
			n = (size_t)left;
		pat_fill(&p, buf, n);
		while (off < n) {
			ssize_t w = ulpo_send(x->fd, buf + off, n - off, MSG_NOSIGNAL);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				seterr(sd->err, sizeof(sd->err),
				       "send after %llu of %llu bytes: %s",
				       (unsigned long long)(x->send_len - left + off),
				       (unsigned long long)x->send_len,
				       w < 0 ? strerror(errno) : "returned 0");
				goto out;
			}
			off += (size_t)w;
			atomic_fetch_add_explicit(&x->sent, (uint64_t)w, memory_order_relaxed);
		}
		left -= n;
	}
	sd->result = 0;
out:
	free(buf);
	if (sd->result)
		shutdown(x->fd, SHUT_RDWR);	/* wake the receiver: the run has failed */
	return NULL;
}

static int recv_all(struct xfer *x, void (*progress)(const struct xfer *, void *), void *arg)
{
	uint8_t *buf = malloc(BUF_SIZE);
	uint64_t got = 0;
	double next = now_s() + 0.25;
	struct pat p;
	int ret = -1;

	if (!buf) {
		seterr(x->err, sizeof(x->err), "out of memory");
		return -1;
	}
	pat_init(&p, x->recv_seed, x->text);
	while (got < x->recv_len) {
		size_t want = x->recv_len - got < BUF_SIZE ? (size_t)(x->recv_len - got) : BUF_SIZE;
		uint8_t type;
		ssize_t r = recv_typed(x->fd, buf, want, 0, &type);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			seterr(x->err, sizeof(x->err), "recvmsg after %llu of %llu bytes: %s",
			       (unsigned long long)got, (unsigned long long)x->recv_len,
			       strerror(errno));
			goto out;
		}
		if (r == 0) {
			seterr(x->err, sizeof(x->err), "EOF after %llu of %llu bytes",
			       (unsigned long long)got, (unsigned long long)x->recv_len);
			goto out;
		}
		if (type == ULPO_TLS_RECORD_HANDSHAKE) {
			x->ctl_records++;	/* NewSessionTicket: kTLS leaves it to the app */
			continue;
		}
		if (type == ULPO_TLS_RECORD_ALERT) {
			seterr(x->err, sizeof(x->err), "alert %u/%u after %llu of %llu bytes",
			       buf[0], r > 1 ? buf[1] : 0, (unsigned long long)got,
			       (unsigned long long)x->recv_len);
			goto out;
		}
		if (type != ULPO_TLS_RECORD_DATA) {
			seterr(x->err, sizeof(x->err), "record type %u after %llu bytes", type,
			       (unsigned long long)got);
			goto out;
		}
		size_t bad = pat_check(&p, buf, (size_t)r);

		if (bad != (size_t)r) {
			seterr(x->err, sizeof(x->err),
			       "data differs at byte %llu (got 0x%02x in a read of %zd)",
			       (unsigned long long)(got + bad), buf[bad], r);
			goto out;
		}
		got += (uint64_t)r;
		atomic_store_explicit(&x->received, got, memory_order_relaxed);
		if (progress && now_s() >= next) {
			progress(x, arg);
			next = now_s() + 0.25;
		}
	}
	ret = 0;
out:
	free(buf);
	if (ret)
		shutdown(x->fd, SHUT_RDWR);	/* wake the sender */
	return ret;
}

int xfer_run(struct xfer *x, void (*progress)(const struct xfer *, void *), void *arg)
{
	struct sender sd = { .x = x };
	pthread_t th;
	int r;

	x->err[0] = 0;
	atomic_store(&x->sent, 0);
	atomic_store(&x->received, 0);
	if ((r = pthread_create(&th, NULL, send_main, &sd))) {
		seterr(x->err, sizeof(x->err), "pthread_create: %s", strerror(r));
		return -1;
	}
	r = recv_all(x, progress, arg);
	pthread_join(th, NULL);
	if (progress)
		progress(x, arg);
	/* When one side fails it shuts the socket down, so the other usually fails too;
	 * report both, the cause is normally the first. */
	if (sd.result) {
		if (r)
			snprintf(x->err + strlen(x->err), sizeof(x->err) - strlen(x->err),
				 " / sender: %s", sd.err);
		else
			snprintf(x->err, sizeof(x->err), "%s", sd.err);
		return -1;
	}
	return r;
}

int xfer_close(struct xfer *x, int timeout_ms)
{
	static const uint8_t close_notify[2] = { 1, 0 };	/* warning, close_notify */
	double end = now_s() + timeout_ms / 1000.0;
	uint8_t buf[16384];

	if (send_typed(x->fd, close_notify, sizeof(close_notify), ULPO_TLS_RECORD_ALERT) < 0) {
		seterr(x->err, sizeof(x->err), "sending close_notify: %s", strerror(errno));
		return -1;
	}
	ulpo_shutdown(x->fd, SHUT_WR);
	for (;;) {
		struct pollfd p = { .fd = x->fd, .events = POLLIN };
		int ms = (int)((end - now_s()) * 1000);
		uint8_t type;
		ssize_t r;

		if (ms <= 0 || ulpo_poll(&p, 1, ms) <= 0)
			return 0;	/* the peer need not answer close_notify */
		r = recv_typed(x->fd, buf, sizeof(buf), MSG_DONTWAIT, &type);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0 || type == ULPO_TLS_RECORD_ALERT) {
			x->peer_closed = r == 0 || (r >= 2 && buf[1] == 0);
			return 0;
		}
		if (type == ULPO_TLS_RECORD_HANDSHAKE) {
			x->ctl_records++;
			continue;
		}
		seterr(x->err, sizeof(x->err), "%zd bytes of type %u past the expected end", r,
		       type);
		return -1;
	}
}

/* ---- pipes to and from a peer's stdio ---- */

int pipe_gen(int fd, uint64_t seed, uint64_t len, bool text, bool hold, char *err,
	     size_t errlen)
{
	static uint8_t buf[65536];
	uint64_t done = 0;
	struct pat p;

	pat_init(&p, seed, text);
	while (done < len) {
		size_t n = len - done < sizeof(buf) ? (size_t)(len - done) : sizeof(buf), off = 0;

		pat_fill(&p, buf, n);
		while (off < n) {
			ssize_t w = write(fd, buf + off, n - off);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				seterr(err, errlen,
				       "writing to the peer after %llu of %llu bytes: %s",
				       (unsigned long long)(done + off), (unsigned long long)len,
				       strerror(errno));
				return -1;
			}
			off += (size_t)w;
		}
		done += n;
	}
	if (hold) {
		/* No events asked: poll returns only on POLLERR, when the reader has gone. */
		struct pollfd pf = { .fd = fd, .events = 0 };

		while (poll(&pf, 1, 600 * 1000) < 0 && errno == EINTR)
			;
	}
	return 0;
}

int pipe_check(int fd, uint64_t seed, uint64_t len, bool text, _Atomic uint64_t *progress,
	       char *err, size_t errlen)
{
	static uint8_t buf[65536];
	uint64_t got = 0;
	struct pat p;

	pat_init(&p, seed, text);
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		size_t bad;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			seterr(err, errlen, "reading the peer's output: %s", strerror(errno));
			return -1;
		}
		if (r == 0)
			break;
		if (got + (uint64_t)r > len) {
			seterr(err, errlen, "peer output is longer than %llu bytes",
			       (unsigned long long)len);
			return -1;
		}
		bad = pat_check(&p, buf, (size_t)r);
		if (bad != (size_t)r) {
			seterr(err, errlen, "peer output differs at byte %llu",
			       (unsigned long long)(got + bad));
			return -1;
		}
		got += (uint64_t)r;
		if (progress)
			atomic_store_explicit(progress, got, memory_order_relaxed);
	}
	if (got != len) {
		seterr(err, errlen, "peer output ended after %llu of %llu bytes",
		       (unsigned long long)got, (unsigned long long)len);
		return -1;
	}
	return 0;
}

/* ---- TCP ---- */

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

int tcp_connect_retry(int port, int timeout_ms, char *err, size_t errlen)
{
	struct sockaddr_in a = loopback(port);
	double end = now_s() + timeout_ms / 1000.0;

	for (;;) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0) {
			seterr(err, errlen, "socket: %s", strerror(errno));
			return -1;
		}
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			return fd;
		close(fd);
		if (errno != ECONNREFUSED || now_s() > end) {
			seterr(err, errlen, "connect to 127.0.0.1:%d: %s", port, strerror(errno));
			return -1;
		}
		usleep(20 * 1000);
	}
}

int tcp_listen_any(int *ret_port)
{
	struct sockaddr_in a = loopback(0);
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4) ||
	    getsockname(fd, (struct sockaddr *)&a, &al)) {
		close(fd);
		return -1;
	}
	*ret_port = ntohs(a.sin_port);
	return fd;
}

int tcp_free_port(void)
{
	int port, fd = tcp_listen_any(&port);

	if (fd < 0)
		return -1;
	close(fd);
	return port;
}
