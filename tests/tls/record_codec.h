/* record_codec.h - an independent TLS record encoder/decoder for tests, written from
 * RFC 5246/7905/8446 rather than from src/tls: nonce and AAD are built here again, so a
 * shared mistake would have to be made twice. Uses the AEAD layer (checked by its own
 * known-answer tests) for the primitive only. */
#ifndef ULPO_TEST_RECORD_CODEC_H
#define ULPO_TEST_RECORD_CODEC_H

#include "engine/aead.h"
#include "tls_helpers.h"

struct codec {
	const struct variant *v;
	struct ulpo_aead *aead;
	uint8_t salt[4], iv[12];
	uint64_t seq, explicit_nonce;
};

static inline enum ulpo_aead_alg codec_alg(uint16_t cipher)
{
	switch (cipher) {
	case TLS_CIPHER_AES_GCM_128:
	case TLS_CIPHER_AES_GCM_256: return ULPO_AEAD_AES_GCM;
	case TLS_CIPHER_AES_CCM_128: return ULPO_AEAD_AES_CCM;
	case TLS_CIPHER_CHACHA20_POLY1305: return ULPO_AEAD_CHACHA20_POLY1305;
	case TLS_CIPHER_SM4_GCM: return ULPO_AEAD_SM4_GCM;
	case TLS_CIPHER_SM4_CCM: return ULPO_AEAD_SM4_CCM;
	default: return ULPO_AEAD_ARIA_GCM;
	}
}

static inline uint64_t be64(const uint8_t *p)
{
	uint64_t x = 0;

	for (int i = 0; i < 8; i++)
		x = x << 8 | p[i];
	return x;
}

static inline int codec_init(struct codec *c, const struct variant *v, const struct keys *k)
{
	memset(c, 0, sizeof(*c));
	c->v = v;
	memcpy(c->salt, k->info + v->off_salt, v->salt_len);
	memcpy(c->iv, k->info + v->off_iv, v->iv_len);
	c->seq = be64(k->info + v->off_rec_seq);
	c->explicit_nonce = v->iv_len == 8 ? be64(c->iv) : 0;
	return ulpo_aead_new(codec_alg(v->cipher), ULPO_AEAD_BACKEND_AUTO, k->info + v->off_key,
			     v->key_len, &c->aead);
}

static inline void codec_free(struct codec *c)
{
	ulpo_aead_free(c->aead);
}

static inline bool codec_xor(const struct codec *c)
{
	return c->v->version == TLS_1_3_VERSION || c->v->cipher == TLS_CIPHER_CHACHA20_POLY1305;
}

static inline void codec_nonce(const struct codec *c, const uint8_t *explicit, uint8_t *nonce)
{
	if (codec_xor(c)) {
		/* RFC 8446 5.3 / RFC 7905: iv XOR left-padded sequence number. */
		memcpy(nonce, c->salt, c->v->salt_len);
		memcpy(nonce + c->v->salt_len, c->iv, c->v->iv_len);
		for (int i = 0; i < 8; i++)
			nonce[4 + i] ^= (uint8_t)(c->seq >> (56 - 8 * i));
	} else {
		/* RFC 5288: salt || explicit nonce carried in the record. */
		memcpy(nonce, c->salt, 4);
		memcpy(nonce + 4, explicit, 8);
	}
}

/* Encode one record of `type` with `len` bytes of plaintext and, for 1.3, `pad` zero
 * bytes of padding (pad is ignored for 1.2). Returns the record length. */
static inline size_t codec_seal(struct codec *c, uint8_t type, const void *pt, size_t len,
				size_t pad, uint8_t *out)
{
	bool v13 = c->v->version == TLS_1_3_VERSION;
	size_t exp = codec_xor(c) ? 0 : 8, inner = len + (v13 ? 1 + pad : 0);
	size_t wlen = exp + inner + 16;
	uint8_t nonce[12], aad[13], *body = out + 5 + exp;
	uint8_t *tmp = malloc(inner + 1);
	struct iovec in, o;
	size_t aadlen;

	out[0] = v13 ? 23 : type;
	out[1] = 3;
	out[2] = 3;
	out[3] = (uint8_t)(wlen >> 8);
	out[4] = (uint8_t)wlen;
	for (size_t i = 0; i < exp; i++)
		out[5 + i] = (uint8_t)(c->explicit_nonce >> (56 - 8 * i));
	codec_nonce(c, out + 5, nonce);
	if (v13) {
		memcpy(aad, out, 5);
		aadlen = 5;
	} else {
		for (int i = 0; i < 8; i++)
			aad[i] = (uint8_t)(c->seq >> (56 - 8 * i));
		aad[8] = type;
		aad[9] = 3;
		aad[10] = 3;
		aad[11] = (uint8_t)(len >> 8);
		aad[12] = (uint8_t)len;
		aadlen = 13;
	}
	if (len)
		memcpy(tmp, pt, len);
	if (v13) {
		tmp[len] = type;
		memset(tmp + len + 1, 0, pad);
	}
	in.iov_base = tmp;
	in.iov_len = inner;
	o.iov_base = body;
	o.iov_len = inner;
	ulpo_aead_seal(c->aead, nonce, aad, aadlen, &in, 1, &o, 1, body + inner);
	free(tmp);
	c->seq++;
	c->explicit_nonce++;
	return 5 + wlen;
}

/* Decode the record at rec (whole). Returns plaintext length, sets *type; -1 on
 * authentication failure. */
static inline long codec_open(struct codec *c, const uint8_t *rec, uint8_t *type, uint8_t *pt)
{
	bool v13 = c->v->version == TLS_1_3_VERSION;
	size_t exp = codec_xor(c) ? 0 : 8;
	size_t wlen = (size_t)rec[3] << 8 | rec[4], clen = wlen - exp - 16;
	uint8_t nonce[12], aad[13];
	struct iovec in = { .iov_base = (void *)(rec + 5 + exp), .iov_len = clen };
	struct iovec o = { .iov_base = pt, .iov_len = clen };
	size_t aadlen;

	codec_nonce(c, rec + 5, nonce);
	if (v13) {
		memcpy(aad, rec, 5);
		aadlen = 5;
	} else {
		for (int i = 0; i < 8; i++)
			aad[i] = (uint8_t)(c->seq >> (56 - 8 * i));
		aad[8] = rec[0];
		aad[9] = 3;
		aad[10] = 3;
		aad[11] = (uint8_t)(clen >> 8);
		aad[12] = (uint8_t)clen;
		aadlen = 13;
	}
	if (ulpo_aead_open(c->aead, nonce, aad, aadlen, &in, 1, &o, 1, rec + 5 + exp + clen))
		return -1;
	c->seq++;
	if (!v13) {
		*type = rec[0];
		return (long)clen;
	}
	while (clen && !pt[clen - 1])
		clen--;
	if (!clen)
		return -1;
	*type = pt[clen - 1];
	return (long)clen - 1;
}

#endif
