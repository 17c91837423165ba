/* ktls_prog.c - a program written for the kernel's kTLS and nothing else: libc calls
 * only, no ulpo header. The same source runs twice (tests/preload/meson.build and
 * tests/vm/run_vm.sh): dynamically linked under `ulpo run` on this host (whose kernel
 * has no kTLS), and statically linked against the real kernel in the Linux VM. Both runs
 * must print the same results.
 *
 * One TCP loopback connection, both ends kTLS with the same fixed keys (TLS 1.2 and 1.3,
 * AES-128-GCM). Checks: setsockopt/getsockopt, send/recv, sendmsg/recvmsg with the
 * record-type cmsg, poll, epoll (the user's data comes back), splice pipe -> socket and
 * socket -> pipe (one record per call, EINVAL on a control record), sendfile, a
 * non-blocking sender with a small SO_SNDBUF, close (the last record, then EOF), and
 * fork (the child writes and exits, the parent reads, then writes on the same socket;
 * two processes writing at once; two processes reading at once).
 * Prints "ok N - what" / "not ok N - what" (TAP) and exits 1 if anything failed. */
#include <errno.h>
#include <fcntl.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loopback.h"

#ifndef TCP_ULP
#define TCP_ULP 31
#endif
#ifndef SOL_TLS
#define SOL_TLS 282
#endif

static int failed, n_test, n_skip;

static void check(int ok, const char *what)
{
	n_test++;
	printf("%s %d - %s\n", ok ? "ok" : "not ok", n_test, what);
	fflush(stdout);
	if (!ok)
		failed = 1;
}

static int install(int fd, unsigned short version)
{
	struct tls12_crypto_info_aes_gcm_128 ci;

	memset(&ci, 0, sizeof(ci));
	ci.info.version = version;
	ci.info.cipher_type = TLS_CIPHER_AES_GCM_128;
	memset(ci.key, 0x11, sizeof(ci.key));
	memset(ci.iv, 0x22, sizeof(ci.iv));
	memset(ci.salt, 0x33, sizeof(ci.salt));
	if (setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls")))
		return -1;
	if (setsockopt(fd, SOL_TLS, TLS_TX, &ci, sizeof(ci)))
		return -1;
	return setsockopt(fd, SOL_TLS, TLS_RX, &ci, sizeof(ci));
}

static ssize_t send_type(int fd, uint8_t type, const void *buf, size_t len)
{
	char cbuf[CMSG_SPACE(1)];
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);

	c->cmsg_level = SOL_TLS;
	c->cmsg_type = TLS_SET_RECORD_TYPE;
	c->cmsg_len = CMSG_LEN(1);
	*CMSG_DATA(c) = type;
	m.msg_controllen = c->cmsg_len;
	return sendmsg(fd, &m, 0);
}

/* recvmsg with room for the record-type cmsg; *type = its value (0: none). */
static ssize_t recv_type(int fd, void *buf, size_t len, uint8_t *type, int flags)
{
	char cbuf[CMSG_SPACE(1)];
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	ssize_t n = recvmsg(fd, &m, flags);
	struct cmsghdr *c;

	*type = 0;
	if (n >= 0)
		for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
			if (c->cmsg_level == SOL_TLS && c->cmsg_type == TLS_GET_RECORD_TYPE)
				*type = *CMSG_DATA(c);
	return n;
}

static int readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/* Messages of fork_writers/fork_readers: MSG bytes, "W" (writer letter) then a number,
 * then a pattern of both: a torn or mixed message shows. */
#define MSG 100
#define NMSG 300

static void msg_make(char *m, char who, int i)
{
	snprintf(m, MSG, "%c%06d", who, i);
	for (int k = 7; k < MSG; k++)
		m[k] = (char)('a' + (who * 7 + i + k) % 26);
}

static int msg_parse(const char *m, char *who, int *i)
{
	char want[MSG];

	if (sscanf(m, "%c%6d", who, i) != 2)
		return -1;
	msg_make(want, *who, *i);
	return memcmp(want, m, MSG) ? -1 : 0;
}

/* Parent and child send NMSG messages each at once, one send() each, after the parent
 * left 2 bytes open with MSG_MORE: the reader gets the 2 bytes, then 2 * NMSG whole
 * messages, each writer's in its order (every send is one record on one sequence). */
static void fork_writers(int s[2])
{
	char m[MSG], who;
	int next[2] = { 0, 0 }, ok = 1, i, st = 0;
	size_t total = 2 + 2 * (size_t)NMSG * MSG;
	char *got = malloc(total);
	pid_t pid;

	send(s[0], "<<", 2, MSG_MORE);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		for (i = 0; i < NMSG; i++) {
			msg_make(m, 'C', i);
			if (send(s[0], m, MSG, 0) != MSG)
				_exit(1);
		}
		exit(0);
	}
	for (i = 0; i < NMSG; i++) {
		msg_make(m, 'P', i);
		if (send(s[0], m, MSG, 0) != MSG)
			ok = 0;
	}
	waitpid(pid, &st, 0);
	check(ok && pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "fork, two writers: every send succeeds in both processes");
	ok = recv_full(s[1], (uint8_t *)got, total) == 0 && !memcmp(got, "<<", 2);
	for (size_t off = 2; ok && off < total; off += MSG) {
		if (msg_parse(got + off, &who, &i) || (who != 'P' && who != 'C') ||
		    i != next[who == 'C']++)
			ok = 0;
	}
	check(ok && next[0] == NMSG && next[1] == NMSG,
	      "fork, two writers: the open record first, then every message whole, in order");
	free(got);
}

/* The parent sends 2 * NMSG messages and two "end" messages, one record each, and reads
 * the first itself (so the rest may already be buffered); then parent and child read at
 * once, MSG bytes per recv, each until an "end": between them they get every message
 * once, each whole. */
static void fork_readers(int s[2])
{
	char m[MSG], who;
	int i, st = 0, pfd[2], ok = 1, bad = 0;
	static unsigned char seen[2 * NMSG];
	pid_t pid;

	memset(seen, 0, sizeof(seen));
	for (i = 0; i < 2 * NMSG; i++) {
		msg_make(m, 'R', i);
		send(s[0], m, MSG, 0);
	}
	msg_make(m, 'E', 0);
	send(s[0], m, MSG, 0);
	send(s[0], m, MSG, 0);
	if (recv(s[1], m, MSG, MSG_WAITALL) != MSG || msg_parse(m, &who, &i) || who != 'R' || i)
		ok = 0;
	seen[0] = 1;
	if (pipe(pfd))
		exit(2);
	fflush(stdout);
	pid = fork();
	for (;;) {
		ssize_t n = recv(s[1], m, MSG, 0);

		if (n != MSG || msg_parse(m, &who, &i) || (who != 'R' && who != 'E')) {
			bad++;
			break;
		}
		if (who == 'E')
			break;
		if (pid == 0) {
			/* The child reports each number it got to the parent. */
			if (write(pfd[1], &i, sizeof(i)) != sizeof(i))
				_exit(1);
		} else if (i >= 0 && i < 2 * NMSG) {
			seen[i]++;
		}
	}
	if (pid == 0)
		_exit(bad ? 1 : 0);
	close(pfd[1]);
	while (read(pfd[0], &i, sizeof(i)) == sizeof(i))
		if (i >= 0 && i < 2 * NMSG)
			seen[i]++;
	close(pfd[0]);
	waitpid(pid, &st, 0);
	for (i = 0; i < 2 * NMSG; i++)
		if (seen[i] != 1)
			ok = 0;
	check(pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 && !bad,
	      "fork, two readers: every recv in both processes returns one whole message");
	check(ok, "fork, two readers: every message is read once, by one of them");
}

static void run(unsigned short version, const char *vname)
{
	static uint8_t big[1 << 20], got[1 << 20];
	int s[2], p[2], ep;
	uint8_t buf[65536], type;
	ssize_t n;

	printf("# TLS %s\n", vname);
	loopback_pair(s, "ktls_prog");
	check(install(s[0], version) == 0 && install(s[1], version) == 0,
	      "TCP_ULP tls, TLS_TX and TLS_RX on both ends");
	{
		struct tls12_crypto_info_aes_gcm_128 ci;
		socklen_t l = sizeof(ci);

		check(getsockopt(s[0], SOL_TLS, TLS_TX, &ci, &l) == 0 && l == sizeof(ci) &&
		      ci.info.version == version && ci.key[0] == 0x11,
		      "getsockopt(TLS_TX) gives back the crypto_info");
	}

	/* poll: nothing is readable before a record. */
	check(!readable(s[1], 50), "poll: not readable with nothing sent");
	check(send(s[0], "hello", 5, 0) == 5, "send 5 bytes");
	check(readable(s[1], 2000), "poll: readable once the record is there");
	n = recv_type(s[1], buf, sizeof(buf), &type, 0);
	check(n == 5 && !memcmp(buf, "hello", 5) && type == 23, "recvmsg: the data and type 23");

	/* Control records: type by cmsg; without room for the cmsg, EIO. */
	check(send_type(s[0], 21, "\x01\x00", 2) == 2, "sendmsg: an alert record by cmsg");
	n = recv(s[1], buf, sizeof(buf), 0);
	check(n < 0 && errno == EIO, "recv without cmsg room: EIO on a control record");
	n = recv_type(s[1], buf, sizeof(buf), &type, 0);
	check(n == 2 && type == 21 && buf[0] == 1, "recvmsg: the alert, type 21");

	/* epoll: the user's data comes back unchanged. */
	ep = epoll_create1(EPOLL_CLOEXEC);
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0x1122334455667788ull };
		struct epoll_event out[4];

		check(ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, s[1], &ev) == 0, "epoll_ctl ADD");
		check(epoll_wait(ep, out, 4, 50) == 0, "epoll: nothing before a record");
		send(s[0], "epoll", 5, 0);
		n = epoll_wait(ep, out, 4, 2000);
		check(n == 1 && out[0].data.u64 == 0x1122334455667788ull &&
		      (out[0].events & EPOLLIN), "epoll: EPOLLIN with the user's data");
		n = recv(s[1], buf, sizeof(buf), 0);
		check(n == 5 && !memcmp(buf, "epoll", 5), "recv after epoll");
		close(ep);
	}

	/* splice pipe -> socket, then socket -> pipe: one record per call. */
	check(pipe(p) == 0, "pipe");
	memset(buf, 'p', 3000);
	check(write(p[1], buf, 3000) == 3000, "3000 bytes into the pipe");
	n = splice(p[0], NULL, s[0], NULL, 3000, 0);
	check(n == 3000, "splice pipe -> socket: 3000 bytes");
	send(s[0], "tail", 4, 0);
	n = splice(s[1], NULL, p[1], NULL, 65536, 0);
	if (n != 3000)
		printf("# splice returned %zd\n", n);
	check(n == 3000, "splice socket -> pipe: one record (3000 bytes)");
	n = read(p[0], buf, sizeof(buf));
	check(n == 3000 && buf[0] == 'p' && buf[2999] == 'p', "the pipe has the record's data");
	n = splice(s[1], NULL, p[1], NULL, 65536, 0);
	check(n == 4, "splice: the next record (4 bytes)");
	n = read(p[0], buf, sizeof(buf));
	send_type(s[0], 22, "hs", 2);
	n = splice(s[1], NULL, p[1], NULL, 65536, 0);
	check(n < 0 && errno == EINVAL, "splice socket -> pipe: EINVAL on a control record");
	n = recv_type(s[1], buf, sizeof(buf), &type, 0);
	check(n == 2 && type == 22, "the control record is still there for recvmsg");
	close(p[0]);
	close(p[1]);

	/* sendfile from a file. */
	{
		char path[] = "/tmp/ktls_prog.XXXXXX";
		int f = mkstemp(path);
		off_t off = 0;

		for (size_t i = 0; i < sizeof(big); i++)
			big[i] = (uint8_t)(i * 7 + 3);
		unlink(path);
		check(f >= 0 && write(f, big, 200000) == 200000, "a 200000-byte file");
		n = 0;
		while (off < 200000) {
			ssize_t k = sendfile(s[0], f, &off, 200000 - off);

			if (k <= 0)
				break;
			n += k;
		}
		check(n == 200000 && recv_full(s[1], got, 200000) == 0 &&
		      !memcmp(got, big, 200000), "sendfile: 200000 bytes arrive as written");
		close(f);
	}

	/* Non-blocking sender with a small SO_SNDBUF: EAGAIN, POLLOUT, nothing lost. */
	{
		int small = 4096, fl = fcntl(s[0], F_GETFL);
		size_t sent = 0, rcvd = 0;
		int eagain = 0;

		setsockopt(s[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
		fcntl(s[0], F_SETFL, fl | O_NONBLOCK);
		/* Fill everything until the sender is refused... */
		while (sent < sizeof(big)) {
			n = send(s[0], big + sent, sizeof(big) - sent, 0);
			if (n < 0) {
				eagain = errno == EAGAIN;
				break;
			}
			sent += (size_t)n;
		}
		check(eagain, "non-blocking, SO_SNDBUF 4096: send fails with EAGAIN when full");
		/* ... then read while sending the rest, waiting for POLLOUT when refused. */
		while (rcvd < sizeof(big)) {
			if (sent < sizeof(big)) {
				n = send(s[0], big + sent, sizeof(big) - sent, 0);
				if (n > 0)
					sent += (size_t)n;
				else if (n < 0 && errno != EAGAIN)
					break;
			}
			n = recv(s[1], got + rcvd, sizeof(got) - rcvd, MSG_DONTWAIT);
			if (n > 0)
				rcvd += (size_t)n;
			else if (n < 0 && errno != EAGAIN)
				break;
			if (sent < sizeof(big) && n < 0) {
				struct pollfd pf = { .fd = s[0], .events = POLLOUT };

				poll(&pf, 1, 10);
			}
		}
		fcntl(s[0], F_SETFL, fl);
		check(rcvd == sizeof(big) && !memcmp(got, big, sizeof(big)),
		      "non-blocking, SO_SNDBUF 4096: 1 MiB arrives in order");
	}

	/* close: the peer reads everything, then EOF. */
	send(s[0], "bye", 3, 0);
	close(s[0]);
	n = recv(s[1], buf, sizeof(buf), 0);
	check(n == 3 && !memcmp(buf, "bye", 3), "the last record before close");
	check(recv(s[1], buf, sizeof(buf), 0) == 0, "then EOF");
	close(s[1]);

	/* fork, on a new connection: the child inherits the socket, writes and exits; the
	 * parent reads it all, then writes on the same socket: one record sequence, as the
	 * socket is one socket in both processes. */
	loopback_pair(s, "ktls_prog");
	install(s[0], version);
	install(s[1], version);
	{
		pid_t pid;
		int st = 0;

		fflush(stdout);
		pid = fork();
		if (pid == 0)
			exit(send(s[0], big, 100000, 0) == 100000 ? 0 : 1);
		check(pid > 0 && recv_full(s[1], got, 100000) == 0 && !memcmp(got, big, 100000),
		      "fork: what the child sends, the parent receives");
		waitpid(pid, &st, 0);
		check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork: the child's send succeeded");
		send(s[0], "parent", 6, 0);
		n = recv(s[1], buf, sizeof(buf), 0);
		check(n == 6 && !memcmp(buf, "parent", 6),
		      "fork: the parent writes after the child (shared record sequence)");
	}
	fork_writers(s);
	fork_readers(s);
	close(s[0]);
	close(s[1]);
}

int main(void)
{
	run(TLS_1_2_VERSION, "1.2");
	run(TLS_1_3_VERSION, "1.3");
	printf("%s: %d checks, %d skipped\n", failed ? "FAIL" : "PASS", n_test, n_skip);
	return failed;
}
