/* test_counters.c - ulpo-only checks that a kernel run cannot make: the tls_stat
 * counters move exactly when the kernel's do, records really decrypt into the caller's
 * buffer (zero-copy), SO_RCVTIMEO, and `ulpo stats` reads a live process's counters. */
#include <poll.h>
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
	};
	int passed = 0, failed = 0, before;

	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]) + 1; i++) {
		before = t_failed_checks;
		t_current = i < 3 ? tests[i].name : "stats_cli";
		if (i < 3)
			tests[i].fn();
		else if (argc > 1)
			t_stats_cli(argv[1]);
		else
			continue;
		if (t_failed_checks == before)
			passed++, printf("ok   %s\n", t_current);
		else
			failed++, printf("FAIL %s\n", t_current);
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
