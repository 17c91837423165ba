/* test_counters.c - ulpo-only checks that a kernel run cannot make: the tls_stat
 * counters move exactly when the kernel's do, records really decrypt into the caller's
 * buffer (zero-copy), SO_RCVTIMEO, and `ulpo stats` reads a live process's counters. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "record_codec.h"

int t_failed_checks;
const char *t_current;

static uint64_t stat_now(enum ulpo_stat s)
{
	uint64_t v[ULPO_STAT_MAX];

	ulpo_stats_get(v);
	return v[s];
}

#define DELTA(s, before) ((long long)(stat_now(s) - (before)))

static uint8_t drained[16 << 20];

static void *drain_into(void *arg)
{
	int *a = arg;
	size_t got = 0, want = (size_t)a[1];

	while (got < want) {
		ssize_t r = ulpo_recv(a[0], drained + got, sizeof(drained) - got, 0);

		if (r <= 0)
			break;
		got += (size_t)r;
	}
	a[2] = (int)got;
	return NULL;
}

static void *drain_into_discard(void *arg)
{
	static uint8_t sink[65536];
	int *a = arg;
	ssize_t r;

	while ((r = ulpo_recv(a[0], sink, sizeof(sink), 0)) > 0)
		;
	a[2] = r < 0 ? errno : 0;	/* how the stream ended: 0 is a clean EOF */
	return NULL;
}

static void t_install_counters(void)
{
	const struct variant *v = &variants[8];	/* 1.3 AES-GCM-128 */
	uint64_t tx = stat_now(ULPO_STAT_TLS_TX_SW), rx = stat_now(ULPO_STAT_TLS_RX_SW);
	uint64_t ctx = stat_now(ULPO_STAT_TLS_CURR_TX_SW), crx = stat_now(ULPO_STAT_TLS_CURR_RX_SW);
	uint64_t rk = stat_now(ULPO_STAT_TLS_TX_REKEY_OK), rke = stat_now(ULPO_STAT_TLS_TX_REKEY_ERROR);
	struct keys k;
	int c, s;

	CHECK(tls_pair(v, 7, &c, &s, true) == 0);
	CHECK_EQ(DELTA(ULPO_STAT_TLS_TX_SW, tx), 2);
	CHECK_EQ(DELTA(ULPO_STAT_TLS_RX_SW, rx), 2);
	CHECK_EQ(DELTA(ULPO_STAT_TLS_CURR_TX_SW, ctx), 2);
	CHECK_EQ(DELTA(ULPO_STAT_TLS_CURR_RX_SW, crx), 2);
	/* A rekey counts as a rekey, not as a new socket; a wrong one as an error. */
	keys_make(v, 8, &k);
	CHECK(ulpo_setsockopt(c, SOL_TLS, TLS_TX, k.info, k.len) == 0);
	CHECK_EQ(DELTA(ULPO_STAT_TLS_TX_REKEY_OK, rk), 1);
	CHECK_EQ(DELTA(ULPO_STAT_TLS_TX_SW, tx), 2);
	((struct tls_crypto_info *)k.info)->cipher_type = TLS_CIPHER_AES_GCM_256;
	CHECK(ulpo_setsockopt(c, SOL_TLS, TLS_TX, k.info, k.len) < 0);
	CHECK_EQ(DELTA(ULPO_STAT_TLS_TX_REKEY_ERROR, rke), 1);
	close_pair(c, s);
	CHECK_EQ(DELTA(ULPO_STAT_TLS_CURR_TX_SW, ctx), 0);
	CHECK_EQ(DELTA(ULPO_STAT_TLS_CURR_RX_SW, crx), 0);
}

static void t_rx_counters(void)
{
	const struct variant *v = &variants[8];
	struct keys k;
	struct codec cd;
	uint8_t rec[200], buf[200], type;
	uint64_t de = stat_now(ULPO_STAT_TLS_DECRYPT_ERROR), zc = stat_now(ULPO_STAT_RX_ZEROCOPY_RECORDS);
	uint64_t np = stat_now(ULPO_STAT_TLS_RX_NO_PAD_VIOLATION), dr = stat_now(ULPO_STAT_TLS_DECRYPT_RETRY);
	uint64_t ku = stat_now(ULPO_STAT_TLS_RX_REKEY_RECEIVED);
	uint32_t one = 1;
	size_t n;
	int c, s;

	keys_make(v, 9, &k);
	CHECK(tcp_pair(&c, &s) == 0);
	CHECK(ulp(s) == 0);
	CHECK(ulpo_setsockopt(s, SOL_TLS, TLS_RX, k.info, k.len) == 0);
	CHECK(codec_init(&cd, v, &k) == 0);
	/* TLS 1.3 without no-pad: decrypted in place, not into the caller's buffer. */
	n = codec_seal(&cd, 23, "abc", 3, 0, rec);
	CHECK_EQ(send(c, rec, n, 0), (ssize_t)n);
	CHECK_EQ(ulpo_recv(s, buf, sizeof(buf), 0), 3);
	CHECK_EQ(DELTA(ULPO_STAT_RX_ZEROCOPY_RECORDS, zc), 0);
	/* With no-pad: straight into the caller's buffer. */
	CHECK(ulpo_setsockopt(s, SOL_TLS, TLS_RX_EXPECT_NO_PAD, &one, sizeof(one)) == 0);
	n = codec_seal(&cd, 23, "defg", 4, 0, rec);
	CHECK_EQ(send(c, rec, n, 0), (ssize_t)n);
	CHECK_EQ(ulpo_recv(s, buf, sizeof(buf), 0), 4);
	CHECK(memcmp(buf, "defg", 4) == 0);
	CHECK_EQ(DELTA(ULPO_STAT_RX_ZEROCOPY_RECORDS, zc), 1);
	/* A padded record breaks the promise: counted, and still delivered right. */
	n = codec_seal(&cd, 23, "pad", 3, 9, rec);
	CHECK_EQ(send(c, rec, n, 0), (ssize_t)n);
	CHECK_EQ(ulpo_recv(s, buf, sizeof(buf), 0), 3);
	CHECK(memcmp(buf, "pad", 3) == 0);
	CHECK_EQ(DELTA(ULPO_STAT_TLS_RX_NO_PAD_VIOLATION, np), 1);
	CHECK_EQ(DELTA(ULPO_STAT_TLS_DECRYPT_RETRY, dr), 1);
	/* A control record decrypted into the buffer is a retry, kept for a cmsg read. */
	n = codec_seal(&cd, 21, "al", 2, 0, rec);
	CHECK_EQ(send(c, rec, n, 0), (ssize_t)n);
	CHECK_ERR(ulpo_recv(s, buf, sizeof(buf), 0), EIO);
	CHECK_EQ(DELTA(ULPO_STAT_TLS_DECRYPT_RETRY, dr), 2);
	CHECK_EQ(recv_typed(s, buf, sizeof(buf), 0, &type, NULL), 2);
	CHECK_EQ(type, 21);
	/* KeyUpdate received. */
	n = codec_seal(&cd, 22, "\x18\x00\x00\x01\x00", 5, 0, rec);
	CHECK_EQ(send(c, rec, n, 0), (ssize_t)n);
	CHECK_EQ(recv_typed(s, buf, sizeof(buf), 0, &type, NULL), 5);
	CHECK_EQ(DELTA(ULPO_STAT_TLS_RX_REKEY_RECEIVED, ku), 1);
	codec_free(&cd);
	close_pair(c, s);

	/* A bad tag counts on every read that meets it. */
	CHECK(tcp_pair(&c, &s) == 0);
	CHECK(ulp(s) == 0);
	CHECK(ulpo_setsockopt(s, SOL_TLS, TLS_RX, k.info, k.len) == 0);
	CHECK(codec_init(&cd, v, &k) == 0);
	n = codec_seal(&cd, 23, "x", 1, 0, rec);
	rec[6] ^= 0x80;
	CHECK_EQ(send(c, rec, n, 0), (ssize_t)n);
	CHECK_ERR(ulpo_recv(s, buf, sizeof(buf), 0), EBADMSG);
	CHECK_ERR(ulpo_recv(s, buf, sizeof(buf), 0), EBADMSG);
	CHECK_EQ(DELTA(ULPO_STAT_TLS_DECRYPT_ERROR, de), 2);
	/* The socket error reaches the sender side of this socket too. */
	CHECK_ERR(ulpo_send(s, "y", 1, 0), EBADMSG);
	codec_free(&cd);
	close_pair(c, s);
}

static void t_rcvtimeo(void)
{
	struct timeval tv = { .tv_sec = 0, .tv_usec = 50000 };
	uint8_t buf[16];
	int c, s;

	CHECK(tls_pair(&variants[0], 11, &c, &s, false) == 0);
	CHECK(ulpo_setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0);
	CHECK_ERR(ulpo_recv(s, buf, sizeof(buf), 0), EAGAIN);
	close_pair(c, s);
}

static void on_sigusr1(int sig)
{
	(void)sig;
}

static void *kick_later(void *arg)
{
	usleep(200000);
	pthread_kill(*(pthread_t *)arg, SIGUSR1);
	return NULL;
}

/* A blocking send interrupted while the previous record waits for TCP takes nothing,
 * and loses nothing: plaintext held open by MSG_MORE stays for the next record. */
static void t_eintr_keeps_open_record(void)
{
	struct sigaction sa = { .sa_handler = on_sigusr1 };	/* no SA_RESTART */
	size_t cap = 8 << 20, total = 0, got = 0;
	uint8_t *buf = malloc(cap), *rbuf = malloc(cap);
	pthread_t self = pthread_self(), th;
	int c, s, small = 4096, fl;

	sigaction(SIGUSR1, &sa, NULL);
	memset(buf, 'f', cap);
	CHECK(tls_pair(&variants[0], 13, &c, &s, false) == 0);
	CHECK(ulpo_setsockopt(c, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)) == 0);
	CHECK(ulpo_setsockopt(s, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)) == 0);
	while (total < cap / 2) {	/* until a record waits for TCP */
		ssize_t r = ulpo_send(c, buf, 16384, MSG_DONTWAIT);

		if (r < 0)
			break;
		total += (size_t)r;
	}
	CHECK_EQ(ulpo_send(c, "head", 4, MSG_MORE | MSG_DONTWAIT), 4);
	fl = fcntl(c, F_GETFL);
	CHECK(fcntl(c, F_SETFL, fl & ~O_NONBLOCK) == 0);
	pthread_create(&th, NULL, kick_later, &self);
	CHECK_ERR(ulpo_send(c, "tail", 4, 0), EINTR);
	pthread_join(th, NULL);
	/* Drain while the last record goes out. */
	{
		int a[3] = { s, (int)total + 5, 0 };

		pthread_create(&th, NULL, drain_into, a);
		CHECK_EQ(ulpo_send(c, "X", 1, 0), 1);
		pthread_join(th, NULL);
		got = (size_t)a[2];
	}
	CHECK_EQ(got, total + 5);
	CHECK(got >= 5 && memcmp(drained + got - 5, "headX", 5) == 0);
	close_pair(c, s);
	free(buf);
	free(rbuf);
}

static void *send_until_error(void *arg)
{
	static uint8_t junk[16384];
	int fd = *(int *)arg;

	while (ulpo_send(fd, junk, sizeof(junk), MSG_NOSIGNAL) > 0)
		;
	return NULL;
}

/* close() while another thread is in a send on the same socket: the sender gets EBADF
 * and never reaches the raw fd (that would put plaintext into the TLS stream), the peer
 * sees whole records then a clean EOF, and the TLS state outlives the last call. */
static void t_close_while_sending(void)
{
	for (int i = 0; i < 20; i++) {
		int c, s, a[3] = { 0, 1 << 30, -1 };
		pthread_t tx, rx;

		CHECK(tls_pair(&variants[8], 20 + i, &c, &s, false) == 0);
		a[0] = s;
		pthread_create(&rx, NULL, drain_into_discard, a);
		pthread_create(&tx, NULL, send_until_error, &c);
		usleep(1000 * (i % 5));
		CHECK(ulpo_close(c) == 0);
		pthread_join(tx, NULL);
		pthread_join(rx, NULL);
		CHECK_EQ(a[2], 0);
		ulpo_close(s);
	}
}

/* `ulpo stats --pid P --json` on a child that holds TLS sockets. */
static void t_stats_cli(const char *ulpo_bin)
{
	int pfd[2], c, s;
	pid_t pid;
	char cmd[512], out[8192];
	FILE *f;
	size_t n;

	CHECK(pipe(pfd) == 0);
	pid = fork();
	if (pid == 0) {
		char x;

		close(pfd[1]);
		if (tls_pair(&variants[1], 12, &c, &s, true) == 0)
			(void)!read(pfd[0], &x, 1);	/* hold until the parent closes */
		_exit(0);
	}
	close(pfd[0]);
	usleep(200000);
	snprintf(cmd, sizeof(cmd), "%s stats --pid %d --json", ulpo_bin, (int)pid);
	f = popen(cmd, "r");
	n = f ? fread(out, 1, sizeof(out) - 1, f) : 0;
	out[n] = 0;
	CHECK(f && pclose(f) == 0);
	CHECK(strstr(out, "\"TlsTxSw\": 2") != NULL);
	CHECK(strstr(out, "\"TlsCurrRxSw\": 2") != NULL);
	close(pfd[1]);
	waitpid(pid, NULL, 0);
	/* Gone with the process. */
	f = popen(cmd, "r");
	n = f ? fread(out, 1, sizeof(out) - 1, f) : 0;
	CHECK(f && pclose(f) != 0);
}

int main(int argc, char **argv)
{
	struct {
		const char *name;
		void (*fn)(void);
	} tests[] = {
		{ "install_counters", t_install_counters },
		{ "rx_counters", t_rx_counters },
		{ "rcvtimeo", t_rcvtimeo },
		{ "eintr_keeps_open_record", t_eintr_keeps_open_record },
		{ "close_while_sending", t_close_while_sending },
	};
	const size_t nt = sizeof(tests) / sizeof(tests[0]);
	int passed = 0, failed = 0, before;

	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < nt + 1; i++) {
		before = t_failed_checks;
		t_current = i < nt ? tests[i].name : "stats_cli";
		if (i < nt)
			tests[i].fn();
		else if (argc > 1)
			t_stats_cli(argv[1]);
		else
			continue;
		t_tally(before, t_current, &passed, &failed);
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
