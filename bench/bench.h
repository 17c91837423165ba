/* bench.h - what the TLS benchmark's pieces share: the cipher table, one end of a
 * connection, the operations of a mode (transports.c), and one run of N streams (run.c). */
#ifndef ULPO_BENCH_H
#define ULPO_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include <ulpo/engine.h>

struct bench_cipher {
	const char *name;		/* "aes-128-gcm" */
	uint16_t type;			/* TLS_CIPHER_* */
	uint8_t key_len, iv_len, salt_len;
	uint16_t info_len, off_iv, off_key, off_salt, off_rec_seq;
	const char *suite;		/* OpenSSL's TLS 1.3 suite, NULL if it has none */
};

/* "aes-128-gcm", also spelt "aes128gcm" or "AES_128_GCM"; NULL if unknown. */
const struct bench_cipher *bench_cipher_get(const char *name);
#define BENCH_CIPHER_NAMES "aes-128-gcm, aes-256-gcm, aes-128-ccm, chacha20-poly1305, " \
			   "sm4-gcm, sm4-ccm"

/* What the receiving end does with the bytes. */
enum bench_rx {
	BENCH_RX_DISCARD,	/* reads the raw TCP bytes and drops them (MSG_TRUNC) */
	BENCH_RX_TLS,		/* full TLS: decrypts and checks every block */
};

struct conn {
	int fd;
	SSL *ssl;
	const struct bench_cipher *ci;
};

struct bench_mode {
	const char *name;
	bool ulpo;			/* its records show in ulpo's counters */
	bool ossl;			/* needs an OpenSSL suite for the cipher */
	enum ulpo_engine_mode engine;	/* ulpo modes: the engine they run on */
	unsigned int workers;		/* ULPO_ENGINE_ASYNC: worker threads */
	/* Main thread, before the threads start; NULL if nothing to do. The receiving
	 * end gets keys only for BENCH_RX_TLS. */
	void (*setup)(struct conn *snd, struct conn *rcv, enum bench_rx rx);
	/* In each end's thread, before the clock starts (the handshake); may be NULL. */
	void (*start)(struct conn *c, bool sender);
	ssize_t (*send)(struct conn *c, const void *buf, size_t len);
	ssize_t (*recv)(struct conn *c, void *buf, size_t len);	/* 0 at end of stream */
	void (*end)(struct conn *c);	/* sender: end of stream, then FIN */
	void (*close)(struct conn *c);
};

extern const struct bench_mode bench_modes[];
extern const size_t bench_nmodes;
const struct bench_mode *bench_mode_get(const char *name);

/* Once before any run: OpenSSL's contexts if an openssl run will come. */
void bench_transports_init(bool openssl, bool read_ahead);
void bench_transports_free(void);

/* Fresh random TLS 1.3 keys for the cipher: a crypto_info of ci->info_len bytes. */
void bench_ulpo_keys(const struct bench_cipher *ci, uint8_t *info);

/* A connected loopback TCP pair; -1 and errno on failure. */
int bench_tcp_pair(int *ret_snd, int *ret_rcv);

/* ---- run.c: one run ---- */

struct bench_run {
	const struct bench_mode *mode;
	const struct bench_cipher *ci;
	enum bench_rx rx;
	unsigned int streams;		/* connection pairs, each with two threads */
	uint64_t bytes;			/* over all streams, when seconds == 0 */
	double seconds;			/* each sender's time to send */
	size_t size;			/* bytes per write and per read */
	bool verify_full;		/* compare every byte, not only the stamps */
	bool read_ahead;		/* OpenSSL reads ahead (the wire count is unknown) */
	const uint8_t *data;		/* [size] random payload */
};

struct bench_result {
	double gbps;			/* all streams: plaintext bytes / wall time */
	double fairness;		/* slowest stream's rate / the mean rate */
	double snd_cpu, snd_sys;	/* s/GB: sender threads + engine workers */
	double rcv_cpu, rcv_sys;	/* s/GB: receiver threads */
	double other;			/* share of all CPUs busy outside this process */
};

/* Engine settings as they were before the first run (environment applied). */
void bench_engine_base(struct ulpo_engine_config *ret_cfg);
void bench_run(const struct bench_run *p, struct bench_result *ret);

/* Print the message (and OpenSSL's error queue) and exit 1. */
__attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...);

#endif
