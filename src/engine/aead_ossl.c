/* aead_ossl.c - the OpenSSL 3 libcrypto backend of aead.h: AES-GCM, AES-CCM,
 * ChaCha20-Poly1305 and ARIA-GCM through EVP. Each context holds a keyed
 * EVP_CIPHER_CTX (two for CCM); a call only sets the nonce, so keys are scheduled once. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "engine/aead_impl.h"

/* EVP lengths are int: feed larger spans in pieces (records never get near this). */
#define CHUNK_MAX ((size_t)1 << 30)

struct ossl_aead {
	struct ulpo_aead base;
	/* [0] seals, [1] opens. One context serves both for GCM and ChaCha20-Poly1305;
	 * CCM picks its AES-NI routine for one direction when keyed, so it needs two. */
	EVP_CIPHER_CTX *ctx[2];
	bool ccm;
	/* CCM only: OpenSSL's CCM takes the whole message in one update, so scattered
	 * data is gathered here. Owned by the context (one thread at a time), kept for
	 * reuse, wiped on free because it holds plaintext. */
	uint8_t *bounce;
	size_t bounce_cap;
};

/* Index 0: 16-byte key, 1: 32-byte key. SM4-GCM/CCM are asked for by name so a newer
 * OpenSSL that has them is used; Debian's 3.0 only has SM4 in ECB/CBC/CFB/OFB/CTR. */
static const char *const names[ULPO_AEAD_ALG_MAX][2] = {
	[ULPO_AEAD_AES_GCM] = { "AES-128-GCM", "AES-256-GCM" },
	[ULPO_AEAD_AES_CCM] = { "AES-128-CCM", "AES-256-CCM" },
	[ULPO_AEAD_CHACHA20_POLY1305] = { NULL, "ChaCha20-Poly1305" },
	[ULPO_AEAD_SM4_GCM] = { "SM4-GCM", NULL },
	[ULPO_AEAD_SM4_CCM] = { "SM4-CCM", NULL },
	[ULPO_AEAD_ARIA_GCM] = { "ARIA-128-GCM", "ARIA-256-GCM" },
};

/* Fetched once: the legacy EVP_aes_128_gcm() objects make OpenSSL 3 fetch again on
 * every init that names them. Read-only after fetch_once, so shared by all threads. */
static EVP_CIPHER *ciphers[ULPO_AEAD_ALG_MAX][2];
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch_all(void)
{
	ERR_set_mark();
	for (int a = 0; a < ULPO_AEAD_ALG_MAX; a++)
		for (int k = 0; k < 2; k++)
			if (names[a][k])
				ciphers[a][k] = EVP_CIPHER_fetch(NULL, names[a][k], NULL);
	/* A cipher this build lacks is not an error for the application to see. */
	ERR_pop_to_mark();
}

static EVP_CIPHER *cipher_of(enum ulpo_aead_alg alg, size_t keylen)
{
	pthread_once(&fetch_once, fetch_all);
	return ciphers[alg][keylen == 32];
}

static int ossl_supported(enum ulpo_aead_alg alg)
{
	pthread_once(&fetch_once, fetch_all);
	return ciphers[alg][0] || ciphers[alg][1];
}

static void ossl_free(struct ulpo_aead *aead)
{
	struct ossl_aead *a = (struct ossl_aead *)aead;

	/* The provider's freectx cleanses the key schedule. */
	if (a->ctx[1] != a->ctx[0])
		EVP_CIPHER_CTX_free(a->ctx[1]);
	EVP_CIPHER_CTX_free(a->ctx[0]);
	if (a->bounce) {
		OPENSSL_cleanse(a->bounce, a->bounce_cap);
		free(a->bounce);
	}
	free(a);
}

/* CCM bakes the nonce length (hence L) and the tag length into the key setup, so both
 * go in before the key. The others default to a 12-byte nonce already; say so anyway
 * rather than rely on it. */
static int key_ctx(EVP_CIPHER_CTX *ctx, EVP_CIPHER *cipher, bool ccm, const uint8_t *key,
		   int enc)
{
	if (!EVP_CipherInit_ex2(ctx, cipher, NULL, NULL, enc, NULL) ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, ULPO_AEAD_NONCE_LEN, NULL) <= 0 ||
	    (ccm && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, ULPO_AEAD_TAG_LEN, NULL) <= 0) ||
	    !EVP_CipherInit_ex2(ctx, NULL, key, NULL, enc, NULL))
		return -EIO;
	return 0;
}

static int ossl_new(enum ulpo_aead_alg alg, const uint8_t *key, size_t keylen,
		    struct ulpo_aead **ret_aead)
{
	EVP_CIPHER *cipher = cipher_of(alg, keylen);
	struct ossl_aead *a;
	int r;

	if (!cipher)
		return -ENOTSUP;
	if ((size_t)EVP_CIPHER_get_key_length(cipher) != keylen)
		return -EINVAL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->base.ops = &ulpo_aead_ossl_ops;
	a->base.alg = alg;
	a->ccm = EVP_CIPHER_get_mode(cipher) == EVP_CIPH_CCM_MODE;
	for (int dir = 0; dir < 2; dir++) {
		if (dir == 1 && !a->ccm) {
			a->ctx[1] = a->ctx[0];
			break;
		}
		a->ctx[dir] = EVP_CIPHER_CTX_new();
		if (!a->ctx[dir]) {
			r = -ENOMEM;
			goto out;
		}
		r = key_ctx(a->ctx[dir], cipher, a->ccm, key, dir == 0);
		if (r < 0)
			goto out;
	}
	*ret_aead = &a->base;
	return 0;
out:
	ossl_free(&a->base);
	return r;
}

/* GCM and ChaCha20-Poly1305 stream: walk both arrays, one update per overlap. */
static int stream_update(EVP_CIPHER_CTX *ctx, const struct iovec *src, int srccnt,
			 const struct iovec *dst, int dstcnt)
{
	struct iov_cursor s, d;
	size_t n;
	int outl;

	iov_cursor_init(&s, src, srccnt);
	iov_cursor_init(&d, dst, dstcnt);
	while ((n = iov_cursor_avail(&s)) != 0) {
		size_t dn = iov_cursor_avail(&d);

		if (n > dn)
			n = dn;
		if (n > CHUNK_MAX)
			n = CHUNK_MAX;
		if (!EVP_CipherUpdate(ctx, iov_cursor_ptr(&d), &outl, iov_cursor_ptr(&s), (int)n) ||
		    (size_t)outl != n)
			return -EIO;
		iov_cursor_advance(&s, n);
		iov_cursor_advance(&d, n);
	}
	return 0;
}

static int aad_update(EVP_CIPHER_CTX *ctx, const uint8_t *aad, size_t aadlen)
{
	int outl;

	while (aadlen) {
		size_t n = aadlen < CHUNK_MAX ? aadlen : CHUNK_MAX;

		if (!EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)n))
			return -EIO;
		aad += n;
		aadlen -= n;
	}
	return 0;
}

static void gather(uint8_t *to, const struct iovec *iov, int cnt)
{
	for (int i = 0; i < cnt; i++) {
		if (!iov[i].iov_len)
			continue;
		memcpy(to, iov[i].iov_base, iov[i].iov_len);
		to += iov[i].iov_len;
	}
}

static void scatter(const struct iovec *iov, int cnt, const uint8_t *from)
{
	for (int i = 0; i < cnt; i++) {
		if (!iov[i].iov_len)
			continue;
		memcpy(iov[i].iov_base, from, iov[i].iov_len);
		from += iov[i].iov_len;
	}
}

static int bounce_reserve(struct ossl_aead *a, size_t len)
{
	uint8_t *p;
	size_t cap;

	if (len <= a->bounce_cap)
		return 0;
	/* Fresh buffer rather than realloc: the old one holds plaintext to wipe. */
	cap = len < 16384 + 256 ? 16384 + 256 : len;
	p = malloc(cap);
	if (!p)
		return -ENOMEM;
	if (a->bounce) {
		OPENSSL_cleanse(a->bounce, a->bounce_cap);
		free(a->bounce);
	}
	a->bounce = p;
	a->bounce_cap = cap;
	return 0;
}

/* CCM, both directions: declare the length, feed the AAD, then the whole message in
 * one update (which also checks the tag when decrypting). */
static int ccm_crypt(struct ossl_aead *a, int enc, const uint8_t *aad, size_t aadlen,
		     const struct iovec *src, int srccnt, const struct iovec *dst, int dstcnt,
		     size_t len, uint8_t *tag)
{
	EVP_CIPHER_CTX *ctx = a->ctx[!enc];
	const struct iovec *s1, *d1;
	const uint8_t *in;
	uint8_t *out, dummy = 0;
	bool bounced = false;
	int outl, ok, r;

	if (aadlen > INT_MAX)
		return -EINVAL;
	if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, ULPO_AEAD_TAG_LEN, tag) <= 0)
		return -EIO;
	if (!EVP_CipherUpdate(ctx, NULL, &outl, NULL, (int)len))
		return -EIO;
	if (aadlen && !EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aadlen))
		return -EIO;

	s1 = iov_single(src, srccnt);
	d1 = iov_single(dst, dstcnt);
	if (len == 0) {
		/* Still one data update: it is what computes (or checks) the tag. */
		in = out = &dummy;
	} else if (s1 && d1) {
		in = s1->iov_base;
		out = d1->iov_base;
	} else {
		r = bounce_reserve(a, len);
		if (r < 0)
			return r;
		gather(a->bounce, src, srccnt);
		in = out = a->bounce;
		bounced = true;
	}
	/* A bad tag makes CCM (unlike GCM) queue an error: keep it off the thread's
	 * queue, which may be the application's. Only here, as the mark costs ~350
	 * instructions a call. */
	if (!enc)
		ERR_set_mark();
	ok = EVP_CipherUpdate(ctx, out, &outl, in, (int)len);
	if (!enc)
		ERR_pop_to_mark();
	if (!ok)
		return enc ? -EIO : -EBADMSG;
	if (bounced)
		scatter(dst, dstcnt, a->bounce);
	if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, ULPO_AEAD_TAG_LEN, tag) <= 0)
		return -EIO;
	return 0;
}

/* An unexpected library failure (-EIO) leaves OpenSSL's reason on the thread's error
 * queue for whoever debugs it; expected failures (a forged record) leave nothing. */
static int ossl_seal(struct ulpo_aead *aead, const uint8_t *nonce, const uint8_t *aad,
		     size_t aadlen, const struct iovec *src, int srccnt,
		     const struct iovec *dst, int dstcnt, size_t len, uint8_t *tag)
{
	struct ossl_aead *a = (struct ossl_aead *)aead;
	EVP_CIPHER_CTX *ctx = a->ctx[0];
	uint8_t dummy[ULPO_AEAD_TAG_LEN];
	int outl, r;

	/* No cipher, no key: only the nonce changes, the keyed state is kept. */
	if (!EVP_CipherInit_ex2(ctx, NULL, NULL, nonce, 1, NULL))
		return -EIO;
	if (a->ccm)
		return ccm_crypt(a, 1, aad, aadlen, src, srccnt, dst, dstcnt, len, tag);
	r = aad_update(ctx, aad, aadlen);
	if (r < 0)
		return r;
	r = stream_update(ctx, src, srccnt, dst, dstcnt);
	if (r < 0)
		return r;
	if (!EVP_EncryptFinal_ex(ctx, dummy, &outl) ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, ULPO_AEAD_TAG_LEN, tag) <= 0)
		return -EIO;
	return 0;
}

static int ossl_open(struct ulpo_aead *aead, const uint8_t *nonce, const uint8_t *aad,
		     size_t aadlen, const struct iovec *src, int srccnt,
		     const struct iovec *dst, int dstcnt, size_t len, const uint8_t *tag)
{
	struct ossl_aead *a = (struct ossl_aead *)aead;
	EVP_CIPHER_CTX *ctx = a->ctx[1];
	uint8_t dummy[ULPO_AEAD_TAG_LEN];
	int outl, r;

	if (!EVP_CipherInit_ex2(ctx, NULL, NULL, nonce, 0, NULL))
		return -EIO;
	if (a->ccm)
		return ccm_crypt(a, 0, aad, aadlen, src, srccnt, dst, dstcnt, len,
				 (uint8_t *)tag);
	/* The expected tag goes in after init: GCM refuses it while in encrypt mode. */
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, ULPO_AEAD_TAG_LEN, (void *)tag) <= 0)
		return -EIO;
	r = aad_update(ctx, aad, aadlen);
	if (r < 0)
		return r;
	r = stream_update(ctx, src, srccnt, dst, dstcnt);
	if (r < 0)
		return r;
	if (EVP_DecryptFinal_ex(ctx, dummy, &outl) <= 0)
		return -EBADMSG;
	return 0;
}

const struct ulpo_aead_ops ulpo_aead_ossl_ops = {
	.backend = ULPO_AEAD_BACKEND_OPENSSL,
	.supported = ossl_supported,
	.new = ossl_new,
	.free = ossl_free,
	.seal = ossl_seal,
	.open = ossl_open,
};
