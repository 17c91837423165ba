/* handshake.c - GnuTLS does the handshake, ulpo carries the records: the session's keys,
 * IVs and sequence numbers come from gnutls_record_get_state() and go into the kernel's
 * tls12_crypto_info_* layout, installed on the fd with ulpo_setsockopt(). */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <ulpo/ulpo.h>

#include "handshake.h"

/* How a GnuTLS cipher maps onto the kernel's crypto_info. The structs differ only in
 * sizes, so one table of offsets fills all of them. */
struct cipher_map {
	const char *name;		/* our name, as in hs_config.cipher */
	const char *prio;		/* GnuTLS priority keyword */
	gnutls_cipher_algorithm_t alg;
	uint16_t kernel;		/* TLS_CIPHER_* */
	uint8_t key_len, iv_len, salt_len;
	uint16_t info_len, off_iv, off_key, off_salt, off_seq;
};

#define MAP(n, p, a, K, S)                                                            \
	{ n, p, a, TLS_CIPHER_##K, TLS_CIPHER_##K##_KEY_SIZE, TLS_CIPHER_##K##_IV_SIZE, \
	  TLS_CIPHER_##K##_SALT_SIZE, sizeof(struct S), offsetof(struct S, iv),        \
	  offsetof(struct S, key), offsetof(struct S, salt), offsetof(struct S, rec_seq) }

static const struct cipher_map maps[] = {
	MAP("aes-128-gcm", "+AES-128-GCM", GNUTLS_CIPHER_AES_128_GCM, AES_GCM_128,
	    tls12_crypto_info_aes_gcm_128),
	MAP("aes-256-gcm", "+AES-256-GCM", GNUTLS_CIPHER_AES_256_GCM, AES_GCM_256,
	    tls12_crypto_info_aes_gcm_256),
	MAP("chacha20-poly1305", "+CHACHA20-POLY1305", GNUTLS_CIPHER_CHACHA20_POLY1305,
	    CHACHA20_POLY1305, tls12_crypto_info_chacha20_poly1305),
	MAP("aes-128-ccm", "+AES-128-CCM", GNUTLS_CIPHER_AES_128_CCM, AES_CCM_128,
	    tls12_crypto_info_aes_ccm_128),
};
#define NMAPS (sizeof(maps) / sizeof(maps[0]))

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

uint16_t hs_cipher_id(const char *name)
{
	for (size_t i = 0; i < NMAPS; i++)
		if (!strcmp(maps[i].name, name))
			return maps[i].kernel;
	return 0;
}

const char *hs_cipher_name(uint16_t cipher)
{
	for (size_t i = 0; i < NMAPS; i++)
		if (maps[i].kernel == cipher)
			return maps[i].name;
	return "?";
}

/* ---- transport: never read past the end of a record ----
 * GnuTLS must leave every byte after the handshake in the kernel's receive queue, where
 * ulpo's record parser will find it (application data or a NewSessionTicket can follow
 * the last handshake record in the same segment). So the pull function returns at most
 * the rest of the current record, tracking record boundaries from the 5-byte headers. */
struct transport {
	int fd;
	uint8_t hdr[5];
	size_t hdr_got;		/* header bytes seen of the record being read */
	size_t body_left;	/* body bytes not yet handed to GnuTLS */
};

static ssize_t t_pull(gnutls_transport_ptr_t ptr, void *data, size_t len)
{
	struct transport *t = ptr;
	size_t want = t->body_left ? t->body_left : sizeof(t->hdr) - t->hdr_got;
	ssize_t r;

	if (len > want)
		len = want;
	do
		r = recv(t->fd, data, len, 0);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return r;
	if (t->body_left) {
		t->body_left -= (size_t)r;
	} else {
		memcpy(t->hdr + t->hdr_got, data, (size_t)r);
		t->hdr_got += (size_t)r;
		if (t->hdr_got == sizeof(t->hdr)) {
			t->body_left = (size_t)t->hdr[3] << 8 | t->hdr[4];
			t->hdr_got = 0;
		}
	}
	return r;
}

static int t_pull_timeout(gnutls_transport_ptr_t ptr, unsigned int ms)
{
	struct transport *t = ptr;
	struct pollfd p = { .fd = t->fd, .events = POLLIN };
	int r;

	do
		r = poll(&p, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
	while (r < 0 && errno == EINTR);
	return r;
}

static ssize_t t_push(gnutls_transport_ptr_t ptr, const void *data, size_t len)
{
	struct transport *t = ptr;
	ssize_t r;

	do
		r = send(t->fd, data, len, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return r;
}

/* ---- a throwaway certificate ---- */

static int make_cert(gnutls_x509_crt_t *ret_crt, gnutls_x509_privkey_t *ret_key)
{
	static const char cn[] = "localhost";
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	time_t now = time(NULL);
	uint8_t serial[8];
	int r;

	if ((r = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial))) < 0)
		return r;
	serial[0] &= 0x7f;	/* a positive INTEGER */
	if ((r = gnutls_x509_privkey_init(&key)) < 0 ||
	    (r = gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
			GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0)) < 0 ||
	    (r = gnutls_x509_crt_init(&crt)) < 0 ||
	    (r = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
	    (r = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial))) < 0 ||
	    (r = gnutls_x509_crt_set_activation_time(crt, now - 3600)) < 0 ||
	    (r = gnutls_x509_crt_set_expiration_time(crt, now + 7 * 86400)) < 0 ||
	    (r = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
					       sizeof(cn) - 1)) < 0 ||
	    (r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, cn,
						      sizeof(cn) - 1, GNUTLS_FSAN_SET)) < 0 ||
	    (r = gnutls_x509_crt_set_key(crt, key)) < 0 ||
	    (r = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
	    (r = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
	    (r = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0 ||
	    (r = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0)) < 0) {
		if (crt)
			gnutls_x509_crt_deinit(crt);
		if (key)
			gnutls_x509_privkey_deinit(key);
		return r;
	}
	*ret_crt = crt;
	*ret_key = key;
	return 0;
}

static int write_file(const char *path, const gnutls_datum_t *d)
{
	FILE *f = fopen(path, "w");
	int ok;

	if (!f)
		return -errno;
	ok = fwrite(d->data, 1, d->size, f) == d->size;
	if (fclose(f) || !ok)
		return -EIO;
	return 0;
}

int hs_write_cert(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
	gnutls_datum_t c = { 0 }, k = { 0 };
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	int r = make_cert(&crt, &key);

	if (r < 0) {
		seterr(err, errlen, "making a certificate: %s", gnutls_strerror(r));
		return -1;
	}
	r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &c);
	if (r >= 0)
		r = gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &k);
	if (r < 0) {
		seterr(err, errlen, "exporting the certificate: %s", gnutls_strerror(r));
		r = -1;
	} else if ((r = write_file(cert_path, &c)) < 0 || (r = write_file(key_path, &k)) < 0) {
		seterr(err, errlen, "writing %s / %s: %s", cert_path, key_path, strerror(-r));
		r = -1;
	}
	if (k.data) {
		explicit_bzero(k.data, k.size);
		gnutls_free(k.data);
	}
	gnutls_free(c.data);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	return r;
}

/* ---- the key hand-over ---- */

static const struct cipher_map *map_by_alg(gnutls_cipher_algorithm_t alg)
{
	for (size_t i = 0; i < NMAPS; i++)
		if (maps[i].alg == alg)
			return &maps[i];
	return NULL;
}

/* One direction's crypto_info from GnuTLS's record state. The kernel's layout:
 *  - TLS 1.3 (any cipher) and ChaCha20 under 1.2: the nonce is a static 12-byte IV
 *    XOR the sequence number. GnuTLS's IV is those 12 bytes; the kernel wants the first
 *    salt_len of them in salt and the rest in iv (ChaCha: salt 0, iv 12).
 *  - TLS 1.2 GCM/CCM: GnuTLS's IV is only the 4-byte implicit part (the salt); the
 *    8-byte explicit nonce is chosen per record by the sender and sent on the wire.
 *    crypto_info.iv is where the sender's explicit nonce starts counting; GnuTLS uses
 *    the sequence number there, so we start from the sequence number too.
 *  - rec_seq is the next record's sequence number (it enters the nonce or the AAD). */
static int fill_info(const struct cipher_map *m, uint16_t version, gnutls_session_t s,
		     bool read, uint8_t *info, uint64_t *ret_seq, char *err, size_t errlen)
{
	gnutls_datum_t mac, iv, key;
	uint8_t seq[8];
	struct tls_crypto_info *ci = (struct tls_crypto_info *)info;
	bool static_iv = version == TLS_1_3_VERSION || m->salt_len == 0;
	int r = gnutls_record_get_state(s, read, &mac, &iv, &key, seq);
	uint64_t n = 0;

	if (r < 0) {
		seterr(err, errlen, "gnutls_record_get_state: %s", gnutls_strerror(r));
		return -1;
	}
	if (key.size != m->key_len ||
	    iv.size != (static_iv ? (unsigned int)m->salt_len + m->iv_len : m->salt_len)) {
		seterr(err, errlen, "%s: GnuTLS state has key %u / IV %u bytes, expected %u / %u",
		       m->name, key.size, iv.size, m->key_len,
		       static_iv ? m->salt_len + m->iv_len : m->salt_len);
		return -1;
	}
	memset(info, 0, m->info_len);
	ci->version = version;
	ci->cipher_type = m->kernel;
	memcpy(info + m->off_key, key.data, m->key_len);
	memcpy(info + m->off_salt, iv.data, m->salt_len);
	if (static_iv)
		memcpy(info + m->off_iv, iv.data + m->salt_len, m->iv_len);
	else
		memcpy(info + m->off_iv, seq, m->iv_len);
	memcpy(info + m->off_seq, seq, sizeof(seq));
	for (int i = 0; i < 8; i++)
		n = n << 8 | seq[i];
	*ret_seq = n;
	return 0;
}

static int install(int fd, gnutls_session_t s, struct hs_result *res, char *err, size_t errlen)
{
	gnutls_protocol_t pv = gnutls_protocol_get_version(s);
	const struct cipher_map *m = map_by_alg(gnutls_cipher_get(s));
	uint16_t version;
	uint8_t tx[64], rx[64];
	int r = -1;

	if (pv != GNUTLS_TLS1_2 && pv != GNUTLS_TLS1_3) {
		seterr(err, errlen, "negotiated %s: kTLS needs TLS 1.2 or 1.3",
		       gnutls_protocol_get_name(pv));
		return -1;
	}
	if (!m) {
		seterr(err, errlen, "negotiated cipher %s has no kTLS crypto_info",
		       gnutls_cipher_get_name(gnutls_cipher_get(s)));
		return -1;
	}
	version = pv == GNUTLS_TLS1_3 ? TLS_1_3_VERSION : TLS_1_2_VERSION;
	if (fill_info(m, version, s, false, tx, &res->tx_seq, err, errlen) ||
	    fill_info(m, version, s, true, rx, &res->rx_seq, err, errlen))
		goto out;
	if (ulpo_setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls"))) {
		seterr(err, errlen, "setsockopt(TCP_ULP, \"tls\"): %s", strerror(errno));
		goto out;
	}
	if (ulpo_setsockopt(fd, SOL_TLS, TLS_TX, tx, m->info_len)) {
		seterr(err, errlen, "setsockopt(SOL_TLS, TLS_TX): %s", strerror(errno));
		goto out;
	}
	if (ulpo_setsockopt(fd, SOL_TLS, TLS_RX, rx, m->info_len)) {
		seterr(err, errlen, "setsockopt(SOL_TLS, TLS_RX): %s", strerror(errno));
		goto out;
	}
	res->version = version;
	res->cipher = m->kernel;
	r = 0;
out:
	explicit_bzero(tx, sizeof(tx));
	explicit_bzero(rx, sizeof(rx));
	return r;
}

static int priority_for(const struct hs_config *cfg, char *buf, size_t len, char *err,
			size_t errlen)
{
	const char *vers = cfg->version == TLS_1_3_VERSION ? "+VERS-TLS1.3"
			 : cfg->version == TLS_1_2_VERSION ? "+VERS-TLS1.2"
			 : "+VERS-TLS1.3:+VERS-TLS1.2";
	char ciphers[128] = "";

	if (cfg->priority) {
		snprintf(buf, len, "%s", cfg->priority);
		return 0;
	}
	if (cfg->version && cfg->version != TLS_1_2_VERSION && cfg->version != TLS_1_3_VERSION) {
		seterr(err, errlen, "version 0x%04x: kTLS has 1.2 and 1.3", cfg->version);
		return -1;
	}
	for (size_t i = 0; i < NMAPS; i++) {
		if (cfg->cipher && strcmp(cfg->cipher, maps[i].name))
			continue;
		strcat(ciphers, ":");
		strcat(ciphers, maps[i].prio);
	}
	if (!ciphers[0]) {
		seterr(err, errlen, "unknown cipher '%s'", cfg->cipher);
		return -1;
	}
	snprintf(buf, len, "NORMAL:-VERS-ALL:%s:-CIPHER-ALL%s", vers, ciphers);
	return 0;
}

/* Server credentials: one certificate per process, made on first use. */
static gnutls_certificate_credentials_t server_creds(int *ret_err)
{
	static gnutls_certificate_credentials_t creds;
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	int r;

	if (creds)
		return creds;
	if ((r = make_cert(&crt, &key)) < 0) {
		*ret_err = r;
		return NULL;
	}
	if ((r = gnutls_certificate_allocate_credentials(&creds)) >= 0 &&
	    (r = gnutls_certificate_set_x509_key(creds, &crt, 1, key)) < 0) {
		gnutls_certificate_free_credentials(creds);
		creds = NULL;
	}
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	*ret_err = r;
	return creds;
}

int hs_run(int fd, const struct hs_config *cfg, struct hs_result *ret_res, char *err,
	   size_t errlen)
{
	struct transport t = { .fd = fd };
	gnutls_certificate_credentials_t client_creds = NULL, creds;
	gnutls_session_t s = NULL;
	struct hs_result res = { 0 };
	const char *name = cfg->server_name ? cfg->server_name : "localhost";
	char prio[512], *desc;
	const char *where = NULL;
	int r;

	if (priority_for(cfg, prio, sizeof(prio), err, errlen))
		return -1;
	if (cfg->role == HS_SERVER) {
		creds = server_creds(&r);
	} else {
		/* No trust anchors: the peer's certificate is not verified. The tools talk to
		 * a throwaway local peer; verification is GnuTLS's business, not ulpo's. */
		r = gnutls_certificate_allocate_credentials(&client_creds);
		creds = client_creds;
	}
	if (!creds) {
		seterr(err, errlen, "credentials: %s", gnutls_strerror(r));
		return -1;
	}
	/* The server sends no session tickets; a client accepts them (after the switch they
	 * reach ulpo as handshake records, which the reader skips, as kTLS users do). */
	r = gnutls_init(&s, cfg->role == HS_SERVER ? GNUTLS_SERVER | GNUTLS_NO_TICKETS
						   : GNUTLS_CLIENT);
	if (r < 0) {
		where = "gnutls_init";
		goto out;
	}
	if ((r = gnutls_priority_set_direct(s, prio, &where)) < 0) {
		seterr(err, errlen, "priority '%s' at '%s': %s", prio, where ? where : "",
		       gnutls_strerror(r));
		where = NULL;
		r = -1;
		goto out;
	}
	if ((r = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, creds)) < 0) {
		where = "gnutls_credentials_set";
		goto out;
	}
	if (cfg->role == HS_CLIENT &&
	    (r = gnutls_server_name_set(s, GNUTLS_NAME_DNS, name, strlen(name))) < 0) {
		where = "gnutls_server_name_set";
		goto out;
	}
	gnutls_transport_set_ptr(s, &t);
	gnutls_transport_set_pull_function(s, t_pull);
	gnutls_transport_set_pull_timeout_function(s, t_pull_timeout);
	gnutls_transport_set_push_function(s, t_push);
	gnutls_handshake_set_timeout(s, cfg->timeout_ms ? cfg->timeout_ms : 10000);
	do
		r = gnutls_handshake(s);
	while (r < 0 && !gnutls_error_is_fatal(r));
	if (r < 0) {
		if (r == GNUTLS_E_WARNING_ALERT_RECEIVED || r == GNUTLS_E_FATAL_ALERT_RECEIVED)
			seterr(err, errlen, "handshake: %s (%s)", gnutls_strerror(r),
			       gnutls_alert_get_name(gnutls_alert_get(s)));
		else
			seterr(err, errlen, "handshake: %s", gnutls_strerror(r));
		r = -1;
		goto out;
	}
	/* Nothing may stay inside GnuTLS: no decrypted data, no half-read record. */
	if (gnutls_record_check_pending(s) || t.hdr_got || t.body_left) {
		seterr(err, errlen, "GnuTLS holds %zu bytes after the handshake",
		       gnutls_record_check_pending(s) + t.hdr_got + t.body_left);
		r = -1;
		goto out;
	}
	desc = gnutls_session_get_desc(s);
	snprintf(res.suite, sizeof(res.suite), "%s", desc ? desc : "");
	gnutls_free(desc);
	r = install(fd, s, &res, err, errlen);
	if (r == 0)
		*ret_res = res;
out:
	if (where)
		seterr(err, errlen, "%s: %s", where, gnutls_strerror(r));
	/* deinit sends nothing (that would be gnutls_bye): the fd is ulpo's now. */
	if (s)
		gnutls_deinit(s);
	if (client_creds)
		gnutls_certificate_free_credentials(client_creds);
	return r < 0 ? -1 : 0;
}
