/* interop_peer.c - ulpo's end of the interop tests: a GnuTLS handshake with a real peer
 * (gnutls-serv/-cli, openssl s_server/s_client), then ulpo carries the data both ways,
 * checked byte for byte, and ulpo's counters must show it did. run_interop.py drives it.
 *
 *   interop_peer client --port P --tls 1.2|1.3 --cipher C --mib N --send-seed S --recv-seed R
 *                       [--text]                          (letters and newlines only)
 *                       [--send-mib N] [--recv-mib N]     (when the two directions differ)
 *                       [--rx-no-pad]                     (TLS 1.3: TLS_RX_EXPECT_NO_PAD)
 *   interop_peer server           (same options but --port; prints "PORT n" then accepts one)
 *   interop_peer gen   --seed S --mib N [--text] [--hold]    pattern to stdout (a peer's stdin)
 *   interop_peer check --seed S --mib N [--text]             verify stdin (a peer's stdout)
 *   interop_peer mkcert CERT KEY                             a throwaway server certificate
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ulpo/ulpo.h>

#include "handshake.h"
#include "xfer.h"

struct opts {
	const char *mode;
	int port;
	uint16_t version;
	const char *cipher;
	uint64_t bytes, send_bytes, recv_bytes;	/* --mib, or per direction */
	uint64_t send_seed, recv_seed, seed;
	bool text, hold, no_pad;
};

static int usage(void)
{
	fprintf(stderr, "usage: interop_peer client|server|gen|check|mkcert [options] "
			"(see the head of interop_peer.c)\n");
	return 2;
}

static int parse(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->mode = argv[1];
	o->bytes = 64ull << 20;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--text")) {
			o->text = true;
			continue;
		}
		if (!strcmp(a, "--hold")) {
			o->hold = true;
			continue;
		}
		if (!strcmp(a, "--rx-no-pad")) {
			o->no_pad = true;
			continue;
		}
		if (!v)
			return -1;
		i++;
		if (!strcmp(a, "--port"))
			o->port = atoi(v);
		else if (!strcmp(a, "--tls"))
			o->version = !strcmp(v, "1.2") ? TLS_1_2_VERSION
				   : !strcmp(v, "1.3") ? TLS_1_3_VERSION : 0xffff;
		else if (!strcmp(a, "--cipher"))
			o->cipher = v;
		else if (!strcmp(a, "--mib"))
			o->bytes = strtoull(v, NULL, 0) << 20;
		else if (!strcmp(a, "--send-mib"))
			o->send_bytes = strtoull(v, NULL, 0) << 20;
		else if (!strcmp(a, "--recv-mib"))
			o->recv_bytes = strtoull(v, NULL, 0) << 20;
		else if (!strcmp(a, "--send-seed"))
			o->send_seed = strtoull(v, NULL, 0);
		else if (!strcmp(a, "--recv-seed"))
			o->recv_seed = strtoull(v, NULL, 0);
		else if (!strcmp(a, "--seed"))
			o->seed = strtoull(v, NULL, 0);
		else
			return -1;
	}
	if (!o->send_bytes)
		o->send_bytes = o->bytes;
	if (!o->recv_bytes)
		o->recv_bytes = o->bytes;
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The current rec_seq of one direction, read back through getsockopt as a kTLS program
 * would; also checks version and cipher are what was negotiated. */
static int read_seq(int fd, int dir, const struct hs_result *hs, uint64_t *ret_seq)
{
	uint8_t info[64];
	socklen_t len = sizeof(info);
	struct tls_crypto_info *ci = (struct tls_crypto_info *)info;
	size_t off;
	uint64_t seq = 0;

	switch (hs->cipher) {
	case TLS_CIPHER_AES_GCM_128:
		len = sizeof(struct tls12_crypto_info_aes_gcm_128);
		off = offsetof(struct tls12_crypto_info_aes_gcm_128, rec_seq);
		break;
	case TLS_CIPHER_AES_GCM_256:
		len = sizeof(struct tls12_crypto_info_aes_gcm_256);
		off = offsetof(struct tls12_crypto_info_aes_gcm_256, rec_seq);
		break;
	case TLS_CIPHER_AES_CCM_128:
		len = sizeof(struct tls12_crypto_info_aes_ccm_128);
		off = offsetof(struct tls12_crypto_info_aes_ccm_128, rec_seq);
		break;
	case TLS_CIPHER_CHACHA20_POLY1305:
		len = sizeof(struct tls12_crypto_info_chacha20_poly1305);
		off = offsetof(struct tls12_crypto_info_chacha20_poly1305, rec_seq);
		break;
	default:
		return -1;
	}
	if (ulpo_getsockopt(fd, SOL_TLS, dir, info, &len)) {
		fprintf(stderr, "FAIL getsockopt(SOL_TLS, %s): %s\n",
			dir == TLS_TX ? "TLS_TX" : "TLS_RX", strerror(errno));
		return -1;
	}
	if (ci->version != hs->version || ci->cipher_type != hs->cipher) {
		fprintf(stderr, "FAIL getsockopt(%s) says version 0x%04x cipher %u\n",
			dir == TLS_TX ? "TLS_TX" : "TLS_RX", ci->version, ci->cipher_type);
		return -1;
	}
	for (int i = 0; i < 8; i++)
		seq = seq << 8 | info[off + i];
	explicit_bzero(info, sizeof(info));
	*ret_seq = seq;
	return 0;
}

/* Did ulpo carry it? Compare counters before and after: one TX and one RX software
 * context, and at least enough records and bytes for the data in each direction; the
 * TX sequence number moved by exactly the records ulpo counted. */
static int check_counters(const uint64_t *before, const uint64_t *after, const struct xfer *x,
			  uint64_t tx_seq_delta, uint64_t rx_seq_delta)
{
	uint64_t d[ULPO_STAT_MAX];
	uint64_t min_tx = (x->send_len + ULPO_TLS_MAX_PAYLOAD - 1) / ULPO_TLS_MAX_PAYLOAD;
	uint64_t min_rx = (x->recv_len + ULPO_TLS_MAX_PAYLOAD - 1) / ULPO_TLS_MAX_PAYLOAD;
	int bad = 0;

	for (int i = 0; i < ULPO_STAT_MAX; i++)
		d[i] = after[i] - before[i];
#define EXPECT(cond)                                                                  \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "FAIL counters: %s\n", #cond);                \
			bad = 1;                                                      \
		}                                                                     \
	} while (0)
	EXPECT(d[ULPO_STAT_TLS_TX_SW] == 1);
	EXPECT(d[ULPO_STAT_TLS_RX_SW] == 1);
	EXPECT(after[ULPO_STAT_TLS_CURR_TX_SW] >= 1);
	EXPECT(after[ULPO_STAT_TLS_CURR_RX_SW] >= 1);
	EXPECT(d[ULPO_STAT_TX_RECORDS] >= min_tx);
	EXPECT(d[ULPO_STAT_TX_BYTES] >= x->send_len);
	EXPECT(d[ULPO_STAT_RX_RECORDS] >= min_rx);
	EXPECT(d[ULPO_STAT_RX_BYTES] >= x->recv_len);
	EXPECT(d[ULPO_STAT_TLS_DECRYPT_ERROR] == 0);
	EXPECT(tx_seq_delta == d[ULPO_STAT_TX_RECORDS]);
	EXPECT(rx_seq_delta >= d[ULPO_STAT_RX_RECORDS]);
#undef EXPECT
	printf("counters: TlsTxSw +%llu TlsRxSw +%llu, tx %llu records / %llu bytes, "
	       "rx %llu records / %llu bytes (%llu zero-copy), %llu control records skipped\n",
	       (unsigned long long)d[ULPO_STAT_TLS_TX_SW],
	       (unsigned long long)d[ULPO_STAT_TLS_RX_SW],
	       (unsigned long long)d[ULPO_STAT_TX_RECORDS],
	       (unsigned long long)d[ULPO_STAT_TX_BYTES],
	       (unsigned long long)d[ULPO_STAT_RX_RECORDS],
	       (unsigned long long)d[ULPO_STAT_RX_BYTES],
	       (unsigned long long)d[ULPO_STAT_RX_ZEROCOPY_RECORDS],
	       (unsigned long long)x->ctl_records);
	return bad ? -1 : 0;
}

static int run_tls(const struct opts *o)
{
	struct hs_config cfg = { .role = strcmp(o->mode, "server") ? HS_CLIENT : HS_SERVER,
				 .version = o->version, .cipher = o->cipher };
	struct xfer x = { .send_len = o->send_bytes, .recv_len = o->recv_bytes, .text = o->text,
			  .send_seed = o->send_seed, .recv_seed = o->recv_seed };
	uint64_t before[ULPO_STAT_MAX], after[ULPO_STAT_MAX], tx_end, rx_end;
	struct hs_result hs;
	char err[256];
	double t0, t;
	int fd, ret = 1;

	if (cfg.role == HS_SERVER) {
		int port, l = tcp_listen_any(&port);

		if (l < 0) {
			perror("FAIL listen");
			return 1;
		}
		printf("PORT %d\n", port);
		fflush(stdout);
		fd = accept(l, NULL, NULL);
		close(l);
		if (fd < 0) {
			perror("FAIL accept");
			return 1;
		}
	} else {
		fd = tcp_connect_retry(o->port, 15000, err, sizeof(err));
		if (fd < 0) {
			fprintf(stderr, "FAIL %s\n", err);
			return 1;
		}
	}
	ulpo_stats_get(before);
	if (hs_run(fd, &cfg, &hs, err, sizeof(err))) {
		fprintf(stderr, "FAIL %s\n", err);
		goto out;
	}
	printf("handshake: %s, tx seq %llu, rx seq %llu; ulpo has the socket\n", hs.suite,
	       (unsigned long long)hs.tx_seq, (unsigned long long)hs.rx_seq);
	if (o->no_pad) {
		/* The peer promises nothing, but OpenSSL and GnuTLS do not pad by default: this
		 * lets ulpo decrypt TLS 1.3 records straight into our buffer. */
		int one = 1;

		if (ulpo_setsockopt(fd, SOL_TLS, TLS_RX_EXPECT_NO_PAD, &one, sizeof(one))) {
			fprintf(stderr, "FAIL setsockopt(TLS_RX_EXPECT_NO_PAD): %s\n",
				strerror(errno));
			goto out;
		}
		printf("TLS_RX_EXPECT_NO_PAD set\n");
	}
	fflush(stdout);
	x.fd = fd;
	t0 = now_s();
	if (xfer_run(&x, NULL, NULL)) {
		fprintf(stderr, "FAIL transfer: %s (sent %llu, received %llu)\n", x.err,
			(unsigned long long)x.sent, (unsigned long long)x.received);
		goto out;
	}
	t = now_s() - t0;
	ulpo_stats_get(after);
	if (read_seq(fd, TLS_TX, &hs, &tx_end) || read_seq(fd, TLS_RX, &hs, &rx_end))
		goto out;
	printf("transfer: %llu bytes sent, %llu received, in %.2f s (%.0f MB/s), byte-exact\n",
	       (unsigned long long)x.send_len, (unsigned long long)x.recv_len, t,
	       (double)(x.send_len + x.recv_len) / t / 1e6);
	if (check_counters(before, after, &x, tx_end - hs.tx_seq, rx_end - hs.rx_seq))
		goto out;
	if (xfer_close(&x, 5000)) {
		fprintf(stderr, "FAIL close: %s\n", x.err);
		goto out;
	}
	printf("closed: peer %s\n", x.peer_closed ? "answered close_notify" : "did not answer");
	ret = 0;
out:
	ulpo_close(fd);
	return ret;
}

int main(int argc, char **argv)
{
	struct opts o;
	char err[256];

	if (argc < 2)
		return usage();
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(argv[1], "mkcert")) {
		if (argc != 4)
			return usage();
		if (hs_write_cert(argv[2], argv[3], err, sizeof(err))) {
			fprintf(stderr, "FAIL %s\n", err);
			return 1;
		}
		return 0;
	}
	if (parse(argc, argv, &o))
		return usage();
	if (!strcmp(o.mode, "gen")) {
		if (pipe_gen(1, o.seed, o.bytes, o.text, o.hold, err, sizeof(err))) {
			fprintf(stderr, "FAIL gen: %s\n", err);
			return 1;
		}
		return 0;
	}
	if (!strcmp(o.mode, "check")) {
		if (pipe_check(0, o.seed, o.bytes, o.text, NULL, err, sizeof(err))) {
			fprintf(stderr, "FAIL check: %s\n", err);
			return 1;
		}
		printf("check: %llu bytes from the peer, byte-exact\n",
		       (unsigned long long)o.bytes);
		return 0;
	}
	if (strcmp(o.mode, "client") && strcmp(o.mode, "server"))
		return usage();
	if (o.version == 0xffff || (o.cipher && !hs_cipher_id(o.cipher))) {
		fprintf(stderr, "unknown --tls or --cipher\n");
		return 2;
	}
	return run_tls(&o);
}
