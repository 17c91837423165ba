/* aead.c - the library-neutral half of aead.h: argument checks, which backend gets which
 * algorithm, and dispatch. The per-library code is in aead_ossl.c and aead_gcry.c.
 *
 * ULPO_AEAD_BACKEND=openssl|gcrypt in the environment makes ULPO_AEAD_BACKEND_AUTO pick
 * that library for every algorithm it has (others still go where they exist); it is for
 * benchmarks and for bisecting a suspected library bug, and is read once per process. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/aead_impl.h"

#define KEY16 (1u << 0)
#define KEY32 (1u << 1)

/* With the 12-byte TLS nonce CCM has a 3-byte length field (RFC 3610: L = 15 - 12). */
#define CCM_MAX_LEN ((size_t)0xffffff)

/* AUTO picks the first backend in prefer[] that has the algorithm; the order is what was
 * measured side by side on these machines (AVX-512 + VAES, OpenSSL 3.0.22, libgcrypt
 * 1.10.1; seal, GB/s per core, 16 KiB / 1 KiB records, OpenSSL vs libgcrypt):
 *  - AES-128-GCM 4.7 vs 5.2 / 2.4 vs 3.7: OpenSSL 3.0 spends ~3000 instructions a call in
 *    provider dispatch and parameter lookups, libgcrypt ~1500.
 *  - AES-128-CCM 1.27 vs 1.27 / 0.93 vs 1.06, and OpenSSL must bounce-copy scattered
 *    data (its CCM takes the message in one call): libgcrypt.
 *  - ChaCha20-Poly1305 3.9 vs 2.7 / 1.7 vs 1.4: OpenSSL's AVX-512 code.
 *  - SM4-GCM/CCM: only libgcrypt has them; ARIA-GCM: only OpenSSL (libgcrypt >= 1.11). */
static const struct {
	unsigned keylens;
	enum ulpo_aead_backend prefer[2];
} algs[ULPO_AEAD_ALG_MAX] = {
	[ULPO_AEAD_AES_GCM] = { KEY16 | KEY32,
				{ ULPO_AEAD_BACKEND_GCRYPT, ULPO_AEAD_BACKEND_OPENSSL } },
	[ULPO_AEAD_AES_CCM] = { KEY16 | KEY32,
				{ ULPO_AEAD_BACKEND_GCRYPT, ULPO_AEAD_BACKEND_OPENSSL } },
	[ULPO_AEAD_CHACHA20_POLY1305] = { KEY32,
				{ ULPO_AEAD_BACKEND_OPENSSL, ULPO_AEAD_BACKEND_GCRYPT } },
	[ULPO_AEAD_SM4_GCM] = { KEY16,
				{ ULPO_AEAD_BACKEND_GCRYPT, ULPO_AEAD_BACKEND_OPENSSL } },
	[ULPO_AEAD_SM4_CCM] = { KEY16,
				{ ULPO_AEAD_BACKEND_GCRYPT, ULPO_AEAD_BACKEND_OPENSSL } },
	[ULPO_AEAD_ARIA_GCM] = { KEY16 | KEY32,
				{ ULPO_AEAD_BACKEND_OPENSSL, ULPO_AEAD_BACKEND_GCRYPT } },
};

static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static enum ulpo_aead_backend env_backend = ULPO_AEAD_BACKEND_AUTO;

static void read_env(void)
{
	const char *s = secure_getenv("ULPO_AEAD_BACKEND");

	/* An unknown value is ignored: the library does not print. */
	if (!s)
		return;
	if (strcmp(s, "openssl") == 0)
		env_backend = ULPO_AEAD_BACKEND_OPENSSL;
	else if (strcmp(s, "gcrypt") == 0)
		env_backend = ULPO_AEAD_BACKEND_GCRYPT;
}

static const struct ulpo_aead_ops *ops_of(enum ulpo_aead_backend backend)
{
	switch (backend) {
	case ULPO_AEAD_BACKEND_OPENSSL:
		return &ulpo_aead_ossl_ops;
	case ULPO_AEAD_BACKEND_GCRYPT:
		return &ulpo_aead_gcry_ops;
	default:
		return NULL;
	}
}

static int alg_valid(enum ulpo_aead_alg alg)
{
	return (unsigned)alg < ULPO_AEAD_ALG_MAX;
}

static int is_ccm(enum ulpo_aead_alg alg)
{
	return alg == ULPO_AEAD_AES_CCM || alg == ULPO_AEAD_SM4_CCM;
}

static int keylen_valid(enum ulpo_aead_alg alg, size_t keylen)
{
	unsigned bit = keylen == 16 ? KEY16 : keylen == 32 ? KEY32 : 0;

	return (algs[alg].keylens & bit) != 0;
}

static const struct ulpo_aead_ops *pick(enum ulpo_aead_alg alg, enum ulpo_aead_backend backend)
{
	const struct ulpo_aead_ops *ops;

	if (backend != ULPO_AEAD_BACKEND_AUTO) {
		ops = ops_of(backend);
		return ops && ops->supported(alg) ? ops : NULL;
	}

	pthread_once(&env_once, read_env);
	if (env_backend != ULPO_AEAD_BACKEND_AUTO) {
		ops = ops_of(env_backend);
		if (ops->supported(alg))
			return ops;
	}
	for (size_t i = 0; i < 2; i++) {
		ops = ops_of(algs[alg].prefer[i]);
		if (ops->supported(alg))
			return ops;
	}
	return NULL;
}

int ulpo_aead_supported(enum ulpo_aead_alg alg, enum ulpo_aead_backend backend)
{
	if (!alg_valid(alg))
		return 0;
	if (backend == ULPO_AEAD_BACKEND_AUTO)
		return ulpo_aead_ossl_ops.supported(alg) || ulpo_aead_gcry_ops.supported(alg);
	const struct ulpo_aead_ops *ops = ops_of(backend);
	return ops ? ops->supported(alg) : 0;
}

const char *ulpo_aead_backend_name(enum ulpo_aead_backend backend)
{
	switch (backend) {
	case ULPO_AEAD_BACKEND_AUTO:
		return "auto";
	case ULPO_AEAD_BACKEND_OPENSSL:
		return "openssl";
	case ULPO_AEAD_BACKEND_GCRYPT:
		return "gcrypt";
	}
	return "unknown";
}

int ulpo_aead_new(enum ulpo_aead_alg alg, enum ulpo_aead_backend backend,
		  const uint8_t *key, size_t keylen, struct ulpo_aead **ret_aead)
{
	const struct ulpo_aead_ops *ops;

	if (!alg_valid(alg) || !key || !ret_aead)
		return -EINVAL;
	if (backend != ULPO_AEAD_BACKEND_AUTO && !ops_of(backend))
		return -EINVAL;
	ops = pick(alg, backend);
	if (!ops)
		return -ENOTSUP;
	if (!keylen_valid(alg, keylen))
		return -EINVAL;
	return ops->new(alg, key, keylen, ret_aead);
}

void ulpo_aead_free(struct ulpo_aead *aead)
{
	if (aead)
		aead->ops->free(aead);
}

enum ulpo_aead_backend ulpo_aead_backend_of(const struct ulpo_aead *aead)
{
	return aead->ops->backend;
}

/* Total bytes of an iovec array; -EINVAL on a bad count or a length that overflows. */
static int iov_total(const struct iovec *iov, int cnt, size_t *ret_len)
{
	size_t len = 0;

	if (cnt < 0 || (cnt > 0 && !iov))
		return -EINVAL;
	for (int i = 0; i < cnt; i++) {
		if (iov[i].iov_len > SIZE_MAX - len)
			return -EINVAL;
		if (iov[i].iov_len && !iov[i].iov_base)
			return -EINVAL;
		len += iov[i].iov_len;
	}
	*ret_len = len;
	return 0;
}

static int check_call(const struct ulpo_aead *aead, const uint8_t *nonce, const uint8_t *aad,
		      size_t aadlen, const struct iovec *src, int srccnt,
		      const struct iovec *dst, int dstcnt, const uint8_t *tag, size_t *ret_len)
{
	size_t slen, dlen;
	int r;

	if (!aead || !nonce || !tag || (aadlen && !aad))
		return -EINVAL;
	r = iov_total(src, srccnt, &slen);
	if (r < 0)
		return r;
	r = iov_total(dst, dstcnt, &dlen);
	if (r < 0)
		return r;
	if (slen != dlen)
		return -EINVAL;
	if (is_ccm(aead->alg) && slen > CCM_MAX_LEN)
		return -EINVAL;
	*ret_len = slen;
	return 0;
}

int ulpo_aead_seal(struct ulpo_aead *aead, const uint8_t nonce[ULPO_AEAD_NONCE_LEN],
		   const uint8_t *aad, size_t aadlen,
		   const struct iovec *src, int srccnt,
		   const struct iovec *dst, int dstcnt, uint8_t tag[ULPO_AEAD_TAG_LEN])
{
	size_t len;
	int r;

	r = check_call(aead, nonce, aad, aadlen, src, srccnt, dst, dstcnt, tag, &len);
	if (r < 0)
		return r;
	return aead->ops->seal(aead, nonce, aad, aadlen, src, srccnt, dst, dstcnt, len, tag);
}

int ulpo_aead_open(struct ulpo_aead *aead, const uint8_t nonce[ULPO_AEAD_NONCE_LEN],
		   const uint8_t *aad, size_t aadlen,
		   const struct iovec *src, int srccnt,
		   const struct iovec *dst, int dstcnt, const uint8_t tag[ULPO_AEAD_TAG_LEN])
{
	size_t len;
	int r;

	r = check_call(aead, nonce, aad, aadlen, src, srccnt, dst, dstcnt, tag, &len);
	if (r < 0)
		return r;
	r = aead->ops->open(aead, nonce, aad, aadlen, src, srccnt, dst, dstcnt, len, tag);
	/* Don't leave unauthenticated plaintext behind for a caller that ignores the error
	 * (GCM and ChaCha20 decrypt before the tag is known). Failure path only. */
	if (r == -EBADMSG)
		for (int i = 0; i < dstcnt; i++)
			if (dst[i].iov_len)
				explicit_bzero(dst[i].iov_base, dst[i].iov_len);
	return r;
}
