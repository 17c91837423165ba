/* tls_helpers.h - fixtures for the TLS tests: connected TCP pairs, key material for
 * every (version, cipher) the kernel accepts, and an independent record encoder used to
 * put hand-made records (bad tags, padding, zero-length) on the wire.
 * Built against ulpo by default; with -DTEST_KERNEL the same source calls the kernel. */
#ifndef ULPO_TEST_TLS_HELPERS_H
#define ULPO_TEST_TLS_HELPERS_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ulpo/ulpo.h>

#include "../harness.h"

#ifdef TEST_KERNEL
#define U(f) f
#else
#define U(f) ulpo_##f
#endif

struct variant {
	const char *name;
	uint16_t version;
	uint16_t cipher;
	uint8_t key_len, iv_len, salt_len;
	uint16_t info_len;
	uint16_t off_iv, off_key, off_salt, off_rec_seq;
};

#define V(ver, T, S)                                                                   \
	{ #ver "-" #T, TLS_##ver##_VERSION, TLS_CIPHER_##T, TLS_CIPHER_##T##_KEY_SIZE,  \
	  TLS_CIPHER_##T##_IV_SIZE, TLS_CIPHER_##T##_SALT_SIZE, sizeof(struct S),       \
	  offsetof(struct S, iv), offsetof(struct S, key), offsetof(struct S, salt),    \
	  offsetof(struct S, rec_seq) }

static const struct variant variants[] = {
	V(1_2, AES_GCM_128, tls12_crypto_info_aes_gcm_128),
	V(1_2, AES_GCM_256, tls12_crypto_info_aes_gcm_256),
	V(1_2, AES_CCM_128, tls12_crypto_info_aes_ccm_128),
	V(1_2, CHACHA20_POLY1305, tls12_crypto_info_chacha20_poly1305),
	V(1_2, SM4_GCM, tls12_crypto_info_sm4_gcm),
	V(1_2, SM4_CCM, tls12_crypto_info_sm4_ccm),
	V(1_2, ARIA_GCM_128, tls12_crypto_info_aria_gcm_128),
	V(1_2, ARIA_GCM_256, tls12_crypto_info_aria_gcm_256),
	V(1_3, AES_GCM_128, tls12_crypto_info_aes_gcm_128),
	V(1_3, AES_GCM_256, tls12_crypto_info_aes_gcm_256),
	V(1_3, AES_CCM_128, tls12_crypto_info_aes_ccm_128),
	V(1_3, CHACHA20_POLY1305, tls12_crypto_info_chacha20_poly1305),
	V(1_3, SM4_GCM, tls12_crypto_info_sm4_gcm),
	V(1_3, SM4_CCM, tls12_crypto_info_sm4_ccm),
};
#define NVARIANTS (sizeof(variants) / sizeof(variants[0]))

/* crypto_info bytes for a variant, key material from the seed. */
struct keys {
	uint8_t info[64];
	uint16_t len;
};

static inline void keys_make(const struct variant *v, uint64_t seed, struct keys *k)
{
	struct tls_crypto_info *ci = (struct tls_crypto_info *)k->info;

	memset(k, 0, sizeof(*k));
	ci->version = v->version;
	ci->cipher_type = v->cipher;
	t_fill(&seed, k->info + v->off_key, v->key_len);
	t_fill(&seed, k->info + v->off_iv, v->iv_len);
	t_fill(&seed, k->info + v->off_salt, v->salt_len);
	t_fill(&seed, k->info + v->off_rec_seq, 8);
	k->len = v->info_len;
}

static inline void keys_set_seq(const struct variant *v, struct keys *k, uint64_t seq)
{
	for (int i = 7; i >= 0; i--, seq >>= 8)
		k->info[v->off_rec_seq + i] = (uint8_t)seq;
}

/* A connected loopback TCP pair. */
static inline int tcp_pair(int *c, int *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	*c = *s = -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (l < 0 || bind(l, (void *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (void *)&a, &al))
		return -1;
	*c = socket(AF_INET, SOCK_STREAM, 0);
	if (*c < 0 || connect(*c, (void *)&a, sizeof(a)))
		return -1;
	*s = accept(l, NULL, NULL);
	close(l);
	return *s < 0 ? -1 : 0;
}

static inline int ulp(int fd)
{
	return U(setsockopt)(fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls"));
}

/* Pair with tx keys on c and rx keys on s (same material), and optionally the reverse. */
static inline int tls_pair(const struct variant *v, uint64_t seed, int *c, int *s, bool both)
{
	struct keys k;

	keys_make(v, seed, &k);
	if (tcp_pair(c, s) || ulp(*c) || ulp(*s))
		return -1;
	if (U(setsockopt)(*c, SOL_TLS, TLS_TX, k.info, k.len) ||
	    U(setsockopt)(*s, SOL_TLS, TLS_RX, k.info, k.len))
		return -1;
	if (both) {
		keys_make(v, seed + 1, &k);
		if (U(setsockopt)(*s, SOL_TLS, TLS_TX, k.info, k.len) ||
		    U(setsockopt)(*c, SOL_TLS, TLS_RX, k.info, k.len))
			return -1;
	}
	return 0;
}

static inline void close_pair(int c, int s)
{
	U(close)(c);
	U(close)(s);
}

/* Read exactly n bytes from a plain fd (raw ciphertext). */
static inline ssize_t read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = recv(fd, (uint8_t *)buf + got, n - got, 0);

		if (r <= 0)
			return got ? (ssize_t)got : r;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

static inline ssize_t u_read_full(int fd, void *buf, size_t n, int flags)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = U(recv)(fd, (uint8_t *)buf + got, n - got, flags);

		if (r <= 0)
			return got ? (ssize_t)got : r;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* recvmsg with a record-type cmsg buffer; returns bytes, sets *type (0 if none). */
static inline ssize_t recv_typed(int fd, void *buf, size_t len, int flags, uint8_t *type,
				 int *msg_flags)
{
	char cbuf[CMSG_SPACE(sizeof(uint8_t))];
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	ssize_t r = U(recvmsg)(fd, &m, flags);

	*type = 0;
	if (msg_flags)
		*msg_flags = m.msg_flags;
	if (r >= 0 && m.msg_controllen) {
		cm = CMSG_FIRSTHDR(&m);
		if (cm && cm->cmsg_level == SOL_TLS && cm->cmsg_type == TLS_GET_RECORD_TYPE)
			*type = *CMSG_DATA(cm);
	}
	return r;
}

static inline ssize_t send_typed(int fd, const void *buf, size_t len, int flags, uint8_t type)
{
	char cbuf[CMSG_SPACE(sizeof(uint8_t))];
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

	cm->cmsg_level = SOL_TLS;
	cm->cmsg_type = TLS_SET_RECORD_TYPE;
	cm->cmsg_len = CMSG_LEN(sizeof(uint8_t));
	*CMSG_DATA(cm) = type;
	return U(sendmsg)(fd, &m, flags);
}

#endif
