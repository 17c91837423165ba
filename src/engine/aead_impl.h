/* aead_impl.h - the provider side of aead.h: what a crypto-library backend implements.
 * aead.c validates arguments and picks a backend; a backend only keys contexts and runs
 * already-checked seal/open calls. Not for the record layer: it includes aead.h only. */
#ifndef ULPO_ENGINE_AEAD_IMPL_H
#define ULPO_ENGINE_AEAD_IMPL_H

#include "engine/aead.h"

/* Every backend context starts with this, so aead.c can dispatch without knowing the type. */
struct ulpo_aead {
	const struct ulpo_aead_ops *ops;
	enum ulpo_aead_alg alg;
};

/* Called by aead.c with arguments already checked: key length valid for alg, counts >= 0,
 * src and dst both describing len bytes, aad != NULL when aadlen > 0. */
struct ulpo_aead_ops {
	enum ulpo_aead_backend backend;
	int (*supported)(enum ulpo_aead_alg alg);
	int (*new)(enum ulpo_aead_alg alg, const uint8_t *key, size_t keylen,
		   struct ulpo_aead **ret_aead);
	void (*free)(struct ulpo_aead *aead);
	int (*seal)(struct ulpo_aead *aead, const uint8_t *nonce, const uint8_t *aad,
		    size_t aadlen, const struct iovec *src, int srccnt, const struct iovec *dst,
		    int dstcnt, size_t len, uint8_t *tag);
	int (*open)(struct ulpo_aead *aead, const uint8_t *nonce, const uint8_t *aad,
		    size_t aadlen, const struct iovec *src, int srccnt, const struct iovec *dst,
		    int dstcnt, size_t len, const uint8_t *tag);
};

extern const struct ulpo_aead_ops ulpo_aead_ossl_ops;
extern const struct ulpo_aead_ops ulpo_aead_gcry_ops;

/* A cursor over an iovec array that skips empty segments. */
struct iov_cursor {
	const struct iovec *iov;
	int cnt;
	size_t off;
};

static inline void iov_cursor_init(struct iov_cursor *c, const struct iovec *iov, int cnt)
{
	c->iov = iov;
	c->cnt = cnt;
	c->off = 0;
	while (c->cnt > 0 && c->iov->iov_len == 0) {
		c->iov++;
		c->cnt--;
	}
}

static inline size_t iov_cursor_avail(const struct iov_cursor *c)
{
	return c->cnt > 0 ? c->iov->iov_len - c->off : 0;
}

static inline uint8_t *iov_cursor_ptr(const struct iov_cursor *c)
{
	return (uint8_t *)c->iov->iov_base + c->off;
}

static inline void iov_cursor_advance(struct iov_cursor *c, size_t n)
{
	c->off += n;
	if (c->off < c->iov->iov_len)
		return;
	c->off = 0;
	do {
		c->iov++;
		c->cnt--;
	} while (c->cnt > 0 && c->iov->iov_len == 0);
}

/* The one non-empty segment of an array, or NULL when there are none or several: lets a
 * backend that must see the whole message at once skip the bounce buffer. */
static inline const struct iovec *iov_single(const struct iovec *iov, int cnt)
{
	const struct iovec *found = NULL;

	for (int i = 0; i < cnt; i++) {
		if (iov[i].iov_len == 0)
			continue;
		if (found)
			return NULL;
		found = &iov[i];
	}
	return found;
}

#endif
