/* test_fork.c - one TLS socket used by two processes at once, as a kTLS program would
 * after fork(), with many records and random sizes: libc calls only, run under the
 * preload shim (inline and async engine). ktls_prog.c checks the same semantics against
 * the kernel with fixed cases; this one looks for lost, doubled or torn bytes.
 *
 * writers: parent and child each send NMSG framed messages of random size (some with
 *   MSG_MORE, some as two iovecs, a small SO_SNDBUF so TCP is often full) on the shared
 *   socket; a third process reads: every message whole, each writer's in order.
 * readers: a third process sends NMSG fixed-size records; parent and child read them at
 *   once (recv, read, recvmsg, with poll now and then): each record read once, whole.
 * refork: a second fork after a child wrote keeps the newest state; keys a child
 *   installed after the fork are the parent's too.
 * Seeded: argv[1] or ULPO_SEED, else from the time; always printed. */
#include <errno.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "loopback.h"

#ifndef TCP_ULP
#define TCP_ULP 31
#endif
#ifndef SOL_TLS
#define SOL_TLS 282
#endif

#define NMSG 3000
#define MAXMSG 3000
#define REC 1000

static uint64_t seed;
static int failed;

static void check(int ok, const char *what)
{
	printf("%s - %s\n", ok ? "ok" : "not ok", what);
	fflush(stdout);
	if (!ok)
		failed = 1;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void install(int fd, unsigned short version, int dir)
{
	struct tls12_crypto_info_aes_gcm_128 ci;

	memset(&ci, 0, sizeof(ci));
	ci.info.version = version;
	ci.info.cipher_type = TLS_CIPHER_AES_GCM_128;
	memset(ci.key, 0x5a, sizeof(ci.key));
	memset(ci.salt, 0x33, sizeof(ci.salt));
	if (setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) ||
	    setsockopt(fd, SOL_TLS, dir, &ci, sizeof(ci))) {
		perror("test_fork: kTLS install");
		exit(2);
	}
}

/* One process waits at a gate until another has installed its keys: the kernel refuses
 * TCP_ULP on a connection no longer established (ENOTCONN), so a peer may not close it
 * before then, which a busy machine would otherwise let happen. */
static void gate_make(int g[2])
{
	if (pipe(g))
		exit(2);
}

static void gate_pass(int g[2])
{
	if (write(g[1], "g", 1) != 1)
		exit(2);
}

static void gate_wait(int g[2])
{
	char c;

	if (read(g[0], &c, 1) != 1)
		exit(2);
}

static void gate_close(int g[2])
{
	close(g[0]);
	close(g[1]);
}

/* A message: 'M', writer, 4-byte number, 2-byte length, then a pattern of all three. */
static size_t msg_make(uint8_t *m, uint8_t who, uint32_t i, size_t len)
{
	m[0] = 'M';
	m[1] = who;
	memcpy(m + 2, &i, 4);
	m[6] = (uint8_t)(len >> 8);
	m[7] = (uint8_t)len;
	for (size_t k = 8; k < len; k++)
		m[k] = (uint8_t)(who * 31 + i * 7 + k * 13);
	return len;
}

/* The reading end of the writers' test: 2 * NMSG messages, exit status says. */
static int writers_reader(int fd)
{
	uint32_t next[2] = { 0, 0 };
	uint8_t m[MAXMSG], want[MAXMSG];

	for (int k = 0; k < 2 * NMSG; k++) {
		uint32_t i;
		size_t len;
		int w;

		if (recv_full(fd, m, 8) || m[0] != 'M' || (m[1] != 'P' && m[1] != 'C')) {
			fprintf(stderr, "reader: bad header at message %d\n", k);
			return 1;
		}
		w = m[1] == 'C';
		memcpy(&i, m + 2, 4);
		len = (size_t)m[6] << 8 | m[7];
		if (len < 8 || len > MAXMSG || recv_full(fd, m + 8, len - 8) ||
		    i != next[w]++ || memcmp(m, want, msg_make(want, m[1], i, len))) {
			fprintf(stderr, "reader: message %d (writer %c, number %u) wrong\n", k,
				m[1], i);
			return 1;
		}
	}
	return next[0] == NMSG && next[1] == NMSG ? 0 : 1;
}

static int writer(int fd, uint8_t who, uint64_t s)
{
	uint8_t m[MAXMSG];

	for (uint32_t i = 0; i < NMSG; i++) {
		size_t len = 8 + rnd(&s) % (MAXMSG - 8);
		int flags = rnd(&s) % 4 == 0 && i < NMSG - 1 ? MSG_MORE : 0;
		ssize_t n;

		msg_make(m, who, i, len);
		if (rnd(&s) % 3 == 0) {
			size_t cut = rnd(&s) % len;
			struct iovec v[2] = { { m, cut }, { m + cut, len - cut } };
			struct msghdr h = { .msg_iov = v, .msg_iovlen = 2 };

			n = sendmsg(fd, &h, flags);
		} else {
			n = send(fd, m, len, flags);
		}
		if (n != (ssize_t)len) {
			fprintf(stderr, "writer %c: send %u returned %zd (%s)\n", who, i, n,
				strerror(errno));
			return 1;
		}
	}
	return 0;	/* the last send had no MSG_MORE: nothing is left open */
}

static void test_writers(unsigned short version)
{
	int s[2], g[2], st_r = 0, st_c = 0, small = 4096, r;
	pid_t rd, ch;

	loopback_pair(s, "test_fork");
	gate_make(g);
	fflush(stdout);
	rd = fork();
	if (rd == 0) {
		close(s[0]);
		install(s[1], version, TLS_RX);
		gate_pass(g);
		_exit(writers_reader(s[1]));
	}
	gate_wait(g);
	gate_close(g);
	close(s[1]);
	setsockopt(s[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	install(s[0], version, TLS_TX);
	ch = fork();
	if (ch == 0)
		_exit(writer(s[0], 'C', seed ^ 0x1234));
	r = writer(s[0], 'P', seed);
	waitpid(ch, &st_c, 0);
	close(s[0]);
	waitpid(rd, &st_r, 0);
	check(!r && WIFEXITED(st_c) && !WEXITSTATUS(st_c), "two writers: every send succeeds");
	check(WIFEXITED(st_r) && !WEXITSTATUS(st_r),
	      "two writers: every message arrives whole, each writer's in order");
}

/* One reader of the readers' test: records until the "end" one; the numbers go to
 * `out`. Returns how many records were bad. */
static int reader(int fd, int out, uint64_t s)
{
	uint8_t m[REC], want[REC];
	int bad = 0;

	for (;;) {
		uint32_t i;
		ssize_t n;

		switch (rnd(&s) % 4) {
		case 0: {
			struct pollfd p = { .fd = fd, .events = POLLIN };

			poll(&p, 1, 1000);
		}
			/* fallthrough */
		case 1:
			n = recv(fd, m, REC, 0);
			break;
		case 2:
			n = read(fd, m, REC);
			break;
		default: {
			struct iovec v[2] = { { m, REC / 3 }, { m + REC / 3, REC - REC / 3 } };
			struct msghdr h = { .msg_iov = v, .msg_iovlen = 2 };

			n = recvmsg(fd, &h, 0);
		}
		}
		memcpy(&i, m + 2, 4);
		if (n != REC || m[0] != 'M' || memcmp(m, want, msg_make(want, m[1], i, REC))) {
			fprintf(stderr, "reader %d: read returned %zd (%s), %s\n", (int)getpid(),
				n, n < 0 ? strerror(errno) : "-",
				n == REC ? "not the record sent" : "not one record");
			bad++;
			break;
		}
		if (m[1] == 'E')
			break;
		if (write(out, &i, sizeof(i)) != sizeof(i))
			bad++;
	}
	return bad;
}

static void test_readers(unsigned short version)
{
	static uint8_t seen[NMSG];
	int s[2], g[2], pfd[2], st_w = 0, st_c = 0, bad, ok = 1;
	uint8_t m[REC];
	pid_t wr, ch;
	uint32_t i;

	loopback_pair(s, "test_fork");
	gate_make(g);
	fflush(stdout);
	wr = fork();
	if (wr == 0) {
		close(s[1]);
		install(s[0], version, TLS_TX);
		gate_wait(g);	/* the reader's keys are in before the last byte and FIN */
		for (i = 0; i < NMSG; i++)
			if (send(s[0], m, msg_make(m, 'R', i, REC), 0) != REC)
				_exit(1);
		msg_make(m, 'E', 0, REC);
		/* exit(), not _exit(): what send() accepted is still sent, as the kernel
		 * would (after _exit() ulpo loses what it holds, docs/preload.md). */
		exit(send(s[0], m, REC, 0) != REC || send(s[0], m, REC, 0) != REC);
	}
	close(s[0]);
	install(s[1], version, TLS_RX);
	gate_pass(g);
	gate_close(g);
	if (pipe(pfd))
		exit(2);
	ch = fork();
	if (ch == 0) {
		close(pfd[0]);
		_exit(reader(s[1], pfd[1], seed ^ 0x777) ? 1 : 0);
	}
	bad = reader(s[1], pfd[1], seed);
	close(pfd[1]);
	memset(seen, 0, sizeof(seen));
	while (read(pfd[0], &i, sizeof(i)) == sizeof(i))
		if (i < NMSG)
			seen[i]++;
	close(pfd[0]);
	waitpid(ch, &st_c, 0);
	waitpid(wr, &st_w, 0);
	close(s[1]);
	{
		uint32_t missing = 0, dup = 0, first = NMSG;

		for (i = 0; i < NMSG; i++) {
			missing += !seen[i];
			dup += seen[i] > 1;
			if (seen[i] != 1 && first == NMSG)
				first = i;
		}
		ok = !missing && !dup;
		if (!ok)
			fprintf(stderr, "two readers: of %d records %u never read, %u read twice "
				"(the first of them: %u); writer exit %d\n", NMSG, missing, dup,
				first, WIFEXITED(st_w) ? WEXITSTATUS(st_w) : -1);
	}
	check(!bad && WIFEXITED(st_c) && !WEXITSTATUS(st_c) && WIFEXITED(st_w) &&
	      !WEXITSTATUS(st_w), "two readers: every read returns one whole record");
	check(ok, "two readers: every record is read once, by one of them");
}

/* Read exactly what `want` says, as TLS records through recv. */
static int expect(int fd, const char *want)
{
	char got[256];
	size_t n = strlen(want);

	if (recv_full(fd, (uint8_t *)got, n))
		return 1;
	return memcmp(got, want, n) != 0;
}

/* A second fork after another process used the socket: the state stays the newest (a
 * process must not store its older copy at fork: that would reuse sequence numbers).
 * Then keys installed by the child after the fork: the parent's next send is a record
 * under them, never plaintext. */
static void test_refork(unsigned short version)
{
	int s[2], g[2], st = 0, st_r = 0;
	pid_t rd, c1, c2;

	loopback_pair(s, "test_fork");
	gate_make(g);
	fflush(stdout);
	rd = fork();
	if (rd == 0) {
		close(s[0]);
		install(s[1], version, TLS_RX);
		gate_pass(g);
		_exit(expect(s[1], "AAAABBBBCCCC") ? 1 : 0);
	}
	gate_wait(g);
	gate_close(g);
	close(s[1]);
	install(s[0], version, TLS_TX);
	c1 = fork();
	if (c1 == 0)
		_exit(send(s[0], "AAAA", 4, 0) != 4 || send(s[0], "BBBB", 4, 0) != 4);
	waitpid(c1, &st, 0);
	c2 = fork();
	if (c2 == 0)
		_exit(0);
	waitpid(c2, NULL, 0);
	check(send(s[0], "CCCC", 4, 0) == 4 && WIFEXITED(st) && !WEXITSTATUS(st),
	      "refork: sends after a second fork succeed");
	close(s[0]);
	waitpid(rd, &st_r, 0);
	check(WIFEXITED(st_r) && !WEXITSTATUS(st_r),
	      "refork: the reader gets every record once, in order (no sequence number reused)");

	/* Keys installed in the child after the fork. */
	loopback_pair(s, "test_fork");
	gate_make(g);
	rd = fork();
	if (rd == 0) {
		close(s[0]);
		install(s[1], version, TLS_RX);
		gate_pass(g);
		_exit(expect(s[1], "XY") ? 1 : 0);
	}
	gate_wait(g);
	gate_close(g);
	close(s[1]);
	if (setsockopt(s[0], SOL_TCP, TCP_ULP, "tls", sizeof("tls")))
		exit(2);
	c1 = fork();
	if (c1 == 0) {
		struct tls12_crypto_info_aes_gcm_128 ci;

		memset(&ci, 0, sizeof(ci));
		ci.info.version = version;
		ci.info.cipher_type = TLS_CIPHER_AES_GCM_128;
		memset(ci.key, 0x5a, sizeof(ci.key));
		memset(ci.salt, 0x33, sizeof(ci.salt));
		_exit(setsockopt(s[0], SOL_TLS, TLS_TX, &ci, sizeof(ci)) || send(s[0], "X", 1, 0) != 1);
	}
	waitpid(c1, &st, 0);
	check(WIFEXITED(st) && !WEXITSTATUS(st) && send(s[0], "Y", 1, 0) == 1,
	      "keys from the child: the parent's send succeeds");
	close(s[0]);
	waitpid(rd, &st, 0);
	check(WIFEXITED(st) && !WEXITSTATUS(st),
	      "keys from the child: the parent's next send is a record under them");
}

int main(int argc, char **argv)
{
	const char *e = getenv("ULPO_SEED");

	seed = argc > 1 ? strtoull(argv[1], NULL, 0) : e ? strtoull(e, NULL, 0)
						    : (uint64_t)time(NULL) * 2654435761u;
	if (!seed)
		seed = 1;
	printf("seed %llu (rerun: ULPO_SEED=%llu)\n", (unsigned long long)seed,
	       (unsigned long long)seed);
	for (int v = 0; v < 2; v++) {
		unsigned short version = v ? TLS_1_3_VERSION : TLS_1_2_VERSION;

		printf("# TLS 1.%d\n", v ? 3 : 2);
		test_writers(version);
		test_readers(version);
		test_refork(version);
	}
	printf("%s\n", failed ? "FAIL" : "PASS");
	return failed;
}
