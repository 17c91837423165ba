/* transports.c - the ways the TLS benchmark moves bytes over a loopback pair: plain TCP,
 * ulpo with keys installed (no handshake; inline or async engine), and OpenSSL
 * SSL_write/SSL_read after a real TLS 1.3 handshake with an in-memory self-signed
 * certificate. With a discarding receiver only the sending end carries TLS. */
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <ulpo/ulpo.h>

#include "bench.h"

#define C(n, T, S, suite)                                                              \
	{ n, TLS_CIPHER_##T, TLS_CIPHER_##T##_KEY_SIZE, TLS_CIPHER_##T##_IV_SIZE,       \
	  TLS_CIPHER_##T##_SALT_SIZE, sizeof(struct S), offsetof(struct S, iv),         \
	  offsetof(struct S, key), offsetof(struct S, salt), offsetof(struct S, rec_seq), \
	  suite }

/* OpenSSL 3.0 has no TLS SM4 suites (RFC 8998): openssl runs are "n/a" for those. */
static const struct bench_cipher ciphers[] = {
	C("aes-128-gcm", AES_GCM_128, tls12_crypto_info_aes_gcm_128, "TLS_AES_128_GCM_SHA256"),
	C("aes-256-gcm", AES_GCM_256, tls12_crypto_info_aes_gcm_256, "TLS_AES_256_GCM_SHA384"),
	C("aes-128-ccm", AES_CCM_128, tls12_crypto_info_aes_ccm_128, "TLS_AES_128_CCM_SHA256"),
	C("chacha20-poly1305", CHACHA20_POLY1305, tls12_crypto_info_chacha20_poly1305,
	  "TLS_CHACHA20_POLY1305_SHA256"),
	C("sm4-gcm", SM4_GCM, tls12_crypto_info_sm4_gcm, NULL),
	C("sm4-ccm", SM4_CCM, tls12_crypto_info_sm4_ccm, NULL),
};

/* Equal but for case and '-'/'_', so "aes128gcm" (the old spelling) still works. */
static bool name_eq(const char *a, const char *b)
{
	for (;; a++, b++) {
		while (*a == '-' || *a == '_')
			a++;
		while (*b == '-' || *b == '_')
			b++;
		if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
			return false;
		if (!*a)
			return true;
	}
}

const struct bench_cipher *bench_cipher_get(const char *name)
{
	for (size_t i = 0; i < sizeof(ciphers) / sizeof(ciphers[0]); i++)
		if (name_eq(name, ciphers[i].name))
			return &ciphers[i];
	/* "chacha20" was the old name of chacha20-poly1305 */
	if (name_eq(name, "chacha20"))
		return bench_cipher_get("chacha20-poly1305");
	return NULL;
}

int bench_tcp_pair(int *ret_snd, int *ret_rcv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0), c = -1, s = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (l < 0 || bind(l, (void *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (void *)&a, &al))
		goto out;
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (void *)&a, sizeof(a)))
		goto out;
	s = accept(l, NULL, NULL);
out:
	if (l >= 0)
		close(l);
	if (s < 0) {
		if (c >= 0)
			close(c);
		return -1;
	}
	*ret_snd = c;
	*ret_rcv = s;
	return 0;
}

/* tcp */

static ssize_t tcp_send(struct conn *c, const void *buf, size_t len)
{
	return send(c->fd, buf, len, MSG_NOSIGNAL);
}

static ssize_t tcp_recv(struct conn *c, void *buf, size_t len)
{
	return recv(c->fd, buf, len, 0);
}

static void tcp_end(struct conn *c)
{
	shutdown(c->fd, SHUT_WR);
}

static void tcp_close(struct conn *c)
{
	close(c->fd);
}


/* ulpo */

void bench_ulpo_keys(const struct bench_cipher *ci, uint8_t *info)
{
	struct tls_crypto_info *h = (struct tls_crypto_info *)info;

	memset(info, 0, ci->info_len);
	h->version = TLS_1_3_VERSION;
	h->cipher_type = ci->type;
	if (RAND_bytes(info + ci->off_key, ci->key_len) != 1 ||
	    RAND_bytes(info + ci->off_iv, ci->iv_len) != 1 ||
	    RAND_bytes(info + ci->off_salt, ci->salt_len) != 1)
		die("RAND_bytes");
}

/* TX keys on the sender; RX keys on the receiver only when it decrypts (a discarding
 * receiver is a plain TCP socket). */
static void ulpo_install(struct conn *snd, struct conn *rcv, enum bench_rx rx, bool no_pad)
{
	const struct bench_cipher *ci = snd->ci;
	bool rx_tls = rx == BENCH_RX_TLS;
	uint8_t info[64];
	int one = 1;

	bench_ulpo_keys(ci, info);
	if (ulpo_setsockopt(snd->fd, SOL_TCP, TCP_ULP, "tls", 4) ||
	    (rx_tls && ulpo_setsockopt(rcv->fd, SOL_TCP, TCP_ULP, "tls", 4)))
		die("TCP_ULP: %s", strerror(errno));
	if (ulpo_setsockopt(snd->fd, SOL_TLS, TLS_TX, info, ci->info_len) ||
	    (rx_tls && ulpo_setsockopt(rcv->fd, SOL_TLS, TLS_RX, info, ci->info_len)))
		die("TLS_TX/TLS_RX %s: %s", ci->name, strerror(errno));
	explicit_bzero(info, sizeof(info));
	if (rx_tls && no_pad &&
	    ulpo_setsockopt(rcv->fd, SOL_TLS, TLS_RX_EXPECT_NO_PAD, &one, sizeof(one)))
		die("TLS_RX_EXPECT_NO_PAD: %s", strerror(errno));
}

static void ulpo_setup(struct conn *snd, struct conn *rcv, enum bench_rx rx)
{
	ulpo_install(snd, rcv, rx, false);
}

/* The receiver promises the sender never pads (TLS_RX_EXPECT_NO_PAD), which lets
 * records decrypt straight into the caller's buffer. */
static void ulpo_nopad_setup(struct conn *snd, struct conn *rcv, enum bench_rx rx)
{
	ulpo_install(snd, rcv, rx, true);
}

static ssize_t u_send(struct conn *c, const void *buf, size_t len)
{
	return ulpo_send(c->fd, buf, len, MSG_NOSIGNAL);
}

static ssize_t u_recv(struct conn *c, void *buf, size_t len)
{
	return ulpo_recv(c->fd, buf, len, 0);
}

static void u_end(struct conn *c)
{
	ulpo_shutdown(c->fd, SHUT_WR);
}

static void u_close(struct conn *c)
{
	ulpo_close(c->fd);
}

/* openssl */

static SSL_CTX *sctx, *cctx;

static void ossl_ctx_init(bool read_ahead)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	X509_NAME *name;

	if (!pkey || !x)
		die("key generation");
	/* A self-signed certificate, made here so the benchmark needs no files. */
	name = X509_get_subject_name(x);
	if (!X509_set_version(x, 2) || !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 86400) || !X509_set_pubkey(x, pkey) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					(const unsigned char *)"tls_bench", -1, -1, 0) ||
	    !X509_set_issuer_name(x, name) || !X509_sign(x, pkey, EVP_sha256()))
		die("self-signed certificate");

	sctx = SSL_CTX_new(TLS_server_method());
	cctx = SSL_CTX_new(TLS_client_method());
	if (!sctx || !cctx)
		die("SSL_CTX_new");
	for (int i = 0; i < 2; i++) {
		SSL_CTX *c = i ? cctx : sctx;

		if (!SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) ||
		    !SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION))
			die("TLS 1.3");
		/* Measure OpenSSL's own record layer, never the kernel's. */
		SSL_CTX_clear_options(c, SSL_OP_ENABLE_KTLS);
		if (read_ahead)
			SSL_CTX_set_read_ahead(c, 1);
	}
	if (SSL_CTX_use_certificate(sctx, x) != 1 || SSL_CTX_use_PrivateKey(sctx, pkey) != 1)
		die("server certificate");
	/* No tickets: the sender never reads, nothing should wait for it. */
	SSL_CTX_set_num_tickets(sctx, 0);
	/* The client checks the chain against that certificate, as a real one would. */
	if (X509_STORE_add_cert(SSL_CTX_get_cert_store(cctx), x) != 1)
		die("trust store");
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
	X509_free(x);
	EVP_PKEY_free(pkey);
}

/* Both ends handshake whatever the receiver does next: the sender needs its keys. The
 * suite is set per connection, so one pair of contexts serves every cipher. */
static void ossl_setup(struct conn *snd, struct conn *rcv, enum bench_rx rx)
{
	(void)rx;
	snd->ssl = SSL_new(cctx);
	rcv->ssl = SSL_new(sctx);
	if (!snd->ssl || !rcv->ssl || !SSL_set_fd(snd->ssl, snd->fd) ||
	    !SSL_set_fd(rcv->ssl, rcv->fd))
		die("SSL_new");
	if (!SSL_set_ciphersuites(snd->ssl, snd->ci->suite) ||
	    !SSL_set_ciphersuites(rcv->ssl, rcv->ci->suite))
		die("TLS 1.3 %s", snd->ci->suite);
}

/* In the run's own thread, before the clock starts: both handshakes run concurrently. */
static void ossl_start(struct conn *c, bool client)
{
	SSL *s = c->ssl;

	if ((client ? SSL_connect(s) : SSL_accept(s)) != 1)
		die("%s handshake", client ? "client" : "server");
	if (SSL_version(s) != TLS1_3_VERSION || strcmp(SSL_get_cipher_name(s), c->ci->suite))
		die("negotiated %s %s", SSL_get_version(s), SSL_get_cipher_name(s));
	if (BIO_get_ktls_send(SSL_get_wbio(s)) || BIO_get_ktls_recv(SSL_get_rbio(s)))
		die("OpenSSL switched to kTLS");
}

static ssize_t ossl_send(struct conn *c, const void *buf, size_t len)
{
	int n = SSL_write(c->ssl, buf, (int)len);

	if (n <= 0)
		die("SSL_write: error %d", SSL_get_error(c->ssl, n));
	return n;
}

static ssize_t ossl_recv(struct conn *c, void *buf, size_t len)
{
	int n = SSL_read(c->ssl, buf, (int)len);

	if (n <= 0) {
		if (SSL_get_error(c->ssl, n) == SSL_ERROR_ZERO_RETURN)
			return 0;	/* close_notify */
		die("SSL_read: error %d", SSL_get_error(c->ssl, n));
	}
	return n;
}

static void ossl_end(struct conn *c)
{
	SSL_shutdown(c->ssl);		/* close_notify; the peer's is not awaited */
	shutdown(c->fd, SHUT_WR);	/* a discarding receiver waits for the FIN */
}

static void ossl_close(struct conn *c)
{
	SSL_free(c->ssl);
	close(c->fd);
}

#define TCP_OPS .send = tcp_send, .recv = tcp_recv, .end = tcp_end, .close = tcp_close
#define ULPO_OPS .ulpo = true, .send = u_send, .recv = u_recv, .end = u_end, .close = u_close

/* "ulpo" is the inline engine whatever ULPO_ENGINE says: each mode names its engine. */
const struct bench_mode bench_modes[] = {
	{ .name = "tcp", TCP_OPS },
	{ .name = "openssl", .ossl = true, .setup = ossl_setup, .start = ossl_start,
	  .send = ossl_send, .recv = ossl_recv, .end = ossl_end, .close = ossl_close },
	{ .name = "ulpo", ULPO_OPS, .setup = ulpo_setup, .engine = ULPO_ENGINE_INLINE },
	{ .name = "ulpo-async1", ULPO_OPS, .setup = ulpo_setup, .engine = ULPO_ENGINE_ASYNC,
	  .workers = 1 },
	{ .name = "ulpo-async2", ULPO_OPS, .setup = ulpo_setup, .engine = ULPO_ENGINE_ASYNC,
	  .workers = 2 },
	{ .name = "ulpo-nopad", ULPO_OPS, .setup = ulpo_nopad_setup,
	  .engine = ULPO_ENGINE_INLINE },
	{ .name = "ulpo-nopad-async2", ULPO_OPS, .setup = ulpo_nopad_setup,
	  .engine = ULPO_ENGINE_ASYNC, .workers = 2 },
};
const size_t bench_nmodes = sizeof(bench_modes) / sizeof(bench_modes[0]);

const struct bench_mode *bench_mode_get(const char *name)
{
	for (size_t i = 0; i < bench_nmodes; i++)
		if (!strcmp(name, bench_modes[i].name))
			return &bench_modes[i];
	return NULL;
}

void bench_transports_init(bool openssl, bool read_ahead)
{
	if (openssl)
		ossl_ctx_init(read_ahead);
}
void bench_transports_free(void)
{
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	sctx = cctx = NULL;
}
