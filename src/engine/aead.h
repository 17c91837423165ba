/* aead.h - one AEAD interface over two crypto libraries (OpenSSL libcrypto, libgcrypt).
 * The record layer never sees a library type: it keys a context once and seals/opens
 * records over iovecs, so data can be encrypted straight from, or decrypted straight into,
 * the caller's buffers. */
#ifndef ULPO_ENGINE_AEAD_H
#define ULPO_ENGINE_AEAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum ulpo_aead_alg {
	ULPO_AEAD_AES_GCM,
	ULPO_AEAD_AES_CCM,
	ULPO_AEAD_CHACHA20_POLY1305,
	ULPO_AEAD_SM4_GCM,
	ULPO_AEAD_SM4_CCM,
	ULPO_AEAD_ARIA_GCM,
	ULPO_AEAD_ALG_MAX,
};

enum ulpo_aead_backend {
	ULPO_AEAD_BACKEND_AUTO,		/* the faster library that has the algorithm */
	ULPO_AEAD_BACKEND_OPENSSL,
	ULPO_AEAD_BACKEND_GCRYPT,
};

#define ULPO_AEAD_NONCE_LEN 12		/* every TLS AEAD uses a 96-bit nonce */
#define ULPO_AEAD_TAG_LEN 16		/* and a 128-bit tag */

struct ulpo_aead;

/* Key a context. -ENOTSUP if no linked library has the algorithm (or the requested
 * backend lacks it), -EINVAL for a bad key length, -ENOMEM. */
int ulpo_aead_new(enum ulpo_aead_alg alg, enum ulpo_aead_backend backend,
		  const uint8_t *key, size_t keylen, struct ulpo_aead **ret_aead);
/* Wipes the key schedule; accepts NULL. */
void ulpo_aead_free(struct ulpo_aead *aead);
/* Which library a keyed context actually uses. */
enum ulpo_aead_backend ulpo_aead_backend_of(const struct ulpo_aead *aead);
/* Whether a backend has an algorithm (AUTO: any backend). */
int ulpo_aead_supported(enum ulpo_aead_alg alg, enum ulpo_aead_backend backend);
const char *ulpo_aead_backend_name(enum ulpo_aead_backend backend);

/* Seal: dst[] = E(src[]), tag written to tag[16]. src and dst describe the same number of
 * bytes but may have different shapes; they may alias exactly (in place) but must not
 * overlap otherwise. Returns 0 or a negative errno. */
int ulpo_aead_seal(struct ulpo_aead *aead, const uint8_t nonce[ULPO_AEAD_NONCE_LEN],
		   const uint8_t *aad, size_t aadlen,
		   const struct iovec *src, int srccnt,
		   const struct iovec *dst, int dstcnt, uint8_t tag[ULPO_AEAD_TAG_LEN]);
/* Open: dst[] = D(src[]) when the tag verifies; -EBADMSG when it does not (dst contents
 * are then unspecified and must not be released to the caller). */
int ulpo_aead_open(struct ulpo_aead *aead, const uint8_t nonce[ULPO_AEAD_NONCE_LEN],
		   const uint8_t *aad, size_t aadlen,
		   const struct iovec *src, int srccnt,
		   const struct iovec *dst, int dstcnt, const uint8_t tag[ULPO_AEAD_TAG_LEN]);

#endif
