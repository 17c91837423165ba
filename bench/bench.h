/* bench.h - what tls_bench's driver (tls_bench.c) and its transports (transports.c)
 * share: the cipher table, one end of a connection, and the operations of a mode. */
#ifndef ULPO_BENCH_H
#define ULPO_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

struct bench_cipher {
	const char *name;
	uint16_t type;			/* TLS_CIPHER_* */
	uint8_t key_len, iv_len, salt_len;
	uint16_t info_len, off_iv, off_key, off_salt, off_rec_seq;
	const char *suite;		/* OpenSSL's TLS 1.3 suite, NULL if it has none */
};

const struct bench_cipher *bench_cipher_get(const char *name);

struct conn {
	int fd;
	SSL *ssl;
};

struct bench_mode {
	const char *name;
	bool ulpo;			/* its records show in ulpo's counters */
	bool ossl;			/* needs an OpenSSL suite for the cipher */
	/* Main thread, before the threads start; NULL if nothing to do. */
	void (*setup)(struct conn *snd, struct conn *rcv);
	/* In each end's thread, before the clock starts (the handshake); may be NULL. */
	void (*start)(struct conn *c, bool sender);
	ssize_t (*send)(struct conn *c, const void *buf, size_t len);
	ssize_t (*recv)(struct conn *c, void *buf, size_t len);	/* 0 at end of stream */
	void (*end)(struct conn *c);	/* sender: end of stream */
	void (*close)(struct conn *c);
};

extern const struct bench_mode bench_modes[];
extern const size_t bench_nmodes;

/* Once before any run: the cipher every mode uses, OpenSSL's contexts if wanted. */
void bench_transports_init(const struct bench_cipher *ci, bool openssl, bool read_ahead);
void bench_transports_free(void);

/* A connected loopback TCP pair; -1 and errno on failure. */
int bench_tcp_pair(int *ret_snd, int *ret_rcv);

/* Print the message (and OpenSSL's error queue) and exit 1. */
__attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...);

#endif
