/* cipher.c - the kernel's TLS cipher table: sizes of each crypto_info struct and where
 * the key material sits in it, and which AEAD runs the cipher. */
#include <stddef.h>

#include "tls/tls.h"

#define DESC(T, S, A, tls12)                                                   \
	{                                                                      \
		.type = TLS_CIPHER_##T, .name = #T, .alg = A,                  \
		.key_len = TLS_CIPHER_##T##_KEY_SIZE,                          \
		.iv_len = TLS_CIPHER_##T##_IV_SIZE,                            \
		.salt_len = TLS_CIPHER_##T##_SALT_SIZE,                        \
		.tag_len = TLS_CIPHER_##T##_TAG_SIZE,                          \
		.rec_seq_len = TLS_CIPHER_##T##_REC_SEQ_SIZE,                  \
		.info_len = sizeof(struct S),                                  \
		.off_iv = offsetof(struct S, iv),                              \
		.off_key = offsetof(struct S, key),                            \
		.off_salt = offsetof(struct S, salt),                          \
		.off_rec_seq = offsetof(struct S, rec_seq),                    \
		.tls12_only = tls12,                                           \
	}

static const struct tls_cipher_desc ciphers[] = {
	DESC(AES_GCM_128, tls12_crypto_info_aes_gcm_128, ULPO_AEAD_AES_GCM, false),
	DESC(AES_GCM_256, tls12_crypto_info_aes_gcm_256, ULPO_AEAD_AES_GCM, false),
	DESC(AES_CCM_128, tls12_crypto_info_aes_ccm_128, ULPO_AEAD_AES_CCM, false),
	DESC(CHACHA20_POLY1305, tls12_crypto_info_chacha20_poly1305,
	     ULPO_AEAD_CHACHA20_POLY1305, false),
	DESC(SM4_GCM, tls12_crypto_info_sm4_gcm, ULPO_AEAD_SM4_GCM, false),
	DESC(SM4_CCM, tls12_crypto_info_sm4_ccm, ULPO_AEAD_SM4_CCM, false),
	DESC(ARIA_GCM_128, tls12_crypto_info_aria_gcm_128, ULPO_AEAD_ARIA_GCM, true),
	DESC(ARIA_GCM_256, tls12_crypto_info_aria_gcm_256, ULPO_AEAD_ARIA_GCM, true),
};

const struct tls_cipher_desc *tls_cipher_get(uint16_t type)
{
	for (size_t i = 0; i < sizeof(ciphers) / sizeof(ciphers[0]); i++)
		if (ciphers[i].type == type)
			return &ciphers[i];
	return NULL;
}

const struct tls_cipher_desc *tls_cipher_at(size_t i)
{
	return i < sizeof(ciphers) / sizeof(ciphers[0]) ? &ciphers[i] : NULL;
}
