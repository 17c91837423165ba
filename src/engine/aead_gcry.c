/* aead_gcry.c - the libgcrypt 1.10 backend of aead.h: AES-GCM, AES-CCM,
 * ChaCha20-Poly1305, SM4-GCM and SM4-CCM (libgcrypt 1.10 has no ARIA). Each context holds
 * one keyed gcry_cipher_hd_t; a call sets the nonce and streams the iovecs through it. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include <gcrypt.h>

#include "engine/aead_impl.h"

#define GCRY_MIN_VERSION "1.10.0"

struct gcry_aead {
	struct ulpo_aead base;
	gcry_cipher_hd_t hd;
	bool ccm;
};

/* Index 0: 16-byte key, 1: 32-byte key; 0 = not available. */
static const int algos[ULPO_AEAD_ALG_MAX][2] = {
	[ULPO_AEAD_AES_GCM] = { GCRY_CIPHER_AES128, GCRY_CIPHER_AES256 },
	[ULPO_AEAD_AES_CCM] = { GCRY_CIPHER_AES128, GCRY_CIPHER_AES256 },
	[ULPO_AEAD_CHACHA20_POLY1305] = { 0, GCRY_CIPHER_CHACHA20 },
	[ULPO_AEAD_SM4_GCM] = { GCRY_CIPHER_SM4, 0 },
	[ULPO_AEAD_SM4_CCM] = { GCRY_CIPHER_SM4, 0 },
	[ULPO_AEAD_ARIA_GCM] = { 0, 0 },
};

static const int modes[ULPO_AEAD_ALG_MAX] = {
	[ULPO_AEAD_AES_GCM] = GCRY_CIPHER_MODE_GCM,
	[ULPO_AEAD_AES_CCM] = GCRY_CIPHER_MODE_CCM,
	[ULPO_AEAD_CHACHA20_POLY1305] = GCRY_CIPHER_MODE_POLY1305,
	[ULPO_AEAD_SM4_GCM] = GCRY_CIPHER_MODE_GCM,
	[ULPO_AEAD_SM4_CCM] = GCRY_CIPHER_MODE_CCM,
	[ULPO_AEAD_ARIA_GCM] = GCRY_CIPHER_MODE_GCM,
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static bool have[ULPO_AEAD_ALG_MAX];

/* Initialize libgcrypt unless the application already has. Without secure memory
 * nothing is mlock'ed and libgcrypt has no reason to warn on stderr; the keys live in
 * ordinary memory like OpenSSL's, and gcry_cipher_close wipes them. */
static void init(void)
{
	if (!gcry_control(GCRYCTL_INITIALIZATION_FINISHED_P)) {
		if (!gcry_check_version(GCRY_MIN_VERSION))
			return;
		gcry_control(GCRYCTL_DISABLE_SECMEM, 0);
		gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
	} else if (!gcry_check_version(GCRY_MIN_VERSION)) {
		return;
	}
	for (int a = 0; a < ULPO_AEAD_ALG_MAX; a++) {
		bool ok = false;

		for (int k = 0; k < 2; k++)
			if (algos[a][k] && gcry_cipher_algo_info(algos[a][k], GCRYCTL_TEST_ALGO,
								 NULL, NULL) == 0)
				ok = true;
		have[a] = ok;
	}
}

static int gc_supported(enum ulpo_aead_alg alg)
{
	pthread_once(&init_once, init);
	return have[alg];
}

static void gc_free(struct ulpo_aead *aead)
{
	struct gcry_aead *a = (struct gcry_aead *)aead;

	gcry_cipher_close(a->hd);
	free(a);
}

static int gc_new(enum ulpo_aead_alg alg, const uint8_t *key, size_t keylen,
		    struct ulpo_aead **ret_aead)
{
	struct gcry_aead *a;
	int algo;

	if (!gc_supported(alg))
		return -ENOTSUP;
	algo = algos[alg][keylen == 32];
	if (!algo)
		return -EINVAL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->base.ops = &ulpo_aead_gcry_ops;
	a->base.alg = alg;
	a->ccm = modes[alg] == GCRY_CIPHER_MODE_CCM;
	if (gcry_cipher_open(&a->hd, algo, modes[alg], 0)) {
		free(a);
		return -ENOMEM;
	}
	if (gcry_cipher_setkey(a->hd, key, keylen)) {
		gc_free(&a->base);
		return -EINVAL;
	}
	*ret_aead = &a->base;
	return 0;
}

static int start(struct gcry_aead *a, const uint8_t *nonce, const uint8_t *aad, size_t aadlen,
		 size_t len)
{
	if (gcry_cipher_setiv(a->hd, nonce, ULPO_AEAD_NONCE_LEN))
		return -EIO;
	if (a->ccm) {
		/* CCM's first block encodes both lengths and the tag size. */
		uint64_t lens[3] = { len, aadlen, ULPO_AEAD_TAG_LEN };

		if (gcry_cipher_ctl(a->hd, GCRYCTL_SET_CCM_LENGTHS, lens, sizeof(lens)))
			return -EIO;
	}
	if (aadlen && gcry_cipher_authenticate(a->hd, aad, aadlen))
		return -EIO;
	return 0;
}

/* libgcrypt's GCM, CCM and Poly1305 modes buffer partial blocks (of the MAC and of the
 * keystream) between calls, so pieces of any size can be fed as they come: no bounce.
 * In place is requested the documented way, with a NULL input. */
static int crypt_iov(struct gcry_aead *a, bool enc, const struct iovec *src, int srccnt,
		     const struct iovec *dst, int dstcnt)
{
	struct iov_cursor s, d;
	size_t n;

	iov_cursor_init(&s, src, srccnt);
	iov_cursor_init(&d, dst, dstcnt);
	while ((n = iov_cursor_avail(&s)) != 0) {
		size_t dn = iov_cursor_avail(&d);
		uint8_t *out = iov_cursor_ptr(&d);
		const uint8_t *in = iov_cursor_ptr(&s);
		gcry_error_t err;

		if (n > dn)
			n = dn;
		if (in == out)
			err = enc ? gcry_cipher_encrypt(a->hd, out, n, NULL, 0)
				  : gcry_cipher_decrypt(a->hd, out, n, NULL, 0);
		else
			err = enc ? gcry_cipher_encrypt(a->hd, out, n, in, n)
				  : gcry_cipher_decrypt(a->hd, out, n, in, n);
		if (err)
			return -EIO;
		iov_cursor_advance(&s, n);
		iov_cursor_advance(&d, n);
	}
	return 0;
}

static int gc_seal(struct ulpo_aead *aead, const uint8_t *nonce, const uint8_t *aad,
		     size_t aadlen, const struct iovec *src, int srccnt,
		     const struct iovec *dst, int dstcnt, size_t len, uint8_t *tag)
{
	struct gcry_aead *a = (struct gcry_aead *)aead;
	int r;

	r = start(a, nonce, aad, aadlen, len);
	if (r < 0)
		return r;
	r = crypt_iov(a, true, src, srccnt, dst, dstcnt);
	if (r < 0)
		return r;
	if (gcry_cipher_gettag(a->hd, tag, ULPO_AEAD_TAG_LEN))
		return -EIO;
	return 0;
}

static int gc_open(struct ulpo_aead *aead, const uint8_t *nonce, const uint8_t *aad,
		     size_t aadlen, const struct iovec *src, int srccnt,
		     const struct iovec *dst, int dstcnt, size_t len, const uint8_t *tag)
{
	struct gcry_aead *a = (struct gcry_aead *)aead;
	gcry_error_t err;
	int r;

	r = start(a, nonce, aad, aadlen, len);
	if (r < 0)
		return r;
	r = crypt_iov(a, false, src, srccnt, dst, dstcnt);
	if (r < 0)
		return r;
	err = gcry_cipher_checktag(a->hd, tag, ULPO_AEAD_TAG_LEN);
	if (gcry_err_code(err) == GPG_ERR_CHECKSUM)
		return -EBADMSG;
	return err ? -EIO : 0;
}

const struct ulpo_aead_ops ulpo_aead_gcry_ops = {
	.backend = ULPO_AEAD_BACKEND_GCRYPT,
	.supported = gc_supported,
	.new = gc_new,
	.free = gc_free,
	.seal = gc_seal,
	.open = gc_open,
};
