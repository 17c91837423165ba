/* tls.h - the TLS ULP: per-socket context, cipher table, TX and RX record layers.
 * Mirrors the kernel's split: tls_main.c (ULP install, setsockopt/getsockopt, proto
 * ops), tls_tx.c (record building and transmit), tls_rx.c (record parser, decrypt). */
#ifndef ULPO_TLS_TLS_H
#define ULPO_TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <ulpo/device.h>
#include <ulpo/tls.h>

#include "core/sock.h"
#include "engine/aead.h"

#define TLS_HEADER_SIZE 5
#define TLS_NONCE_SIZE 12
#define TLS_TAG_SIZE 16
#define TLS_EXPLICIT_IV_MAX 8
#define TLS_MIN_RECORD_SIZE_LIM 64	/* smallest TLS_TX_MAX_PAYLOAD_LEN */
/* Largest record on the wire: header, explicit IV, payload, 1.3 type byte, tag. */
#define TLS_MAX_WIRE (TLS_HEADER_SIZE + TLS_EXPLICIT_IV_MAX + ULPO_TLS_MAX_PAYLOAD + 1 + TLS_TAG_SIZE)
#define TLS_CRYPTO_INFO_MAX 64
#define TLS_TX_MAX_IOV 64		/* pieces of one record's plaintext */

struct tls_cipher_desc {
	uint16_t type;
	const char *name;
	enum ulpo_aead_alg alg;
	uint8_t key_len, iv_len, salt_len, tag_len, rec_seq_len;
	uint16_t info_len;		/* exact optlen of TLS_TX / TLS_RX */
	uint16_t off_iv, off_key, off_salt, off_rec_seq;
	bool tls12_only;
};

const struct tls_cipher_desc *tls_cipher_get(uint16_t type);
const struct tls_cipher_desc *tls_cipher_at(size_t i);

/* One direction's keys and sequence, as the kernel's cipher_context. */
struct tls_crypto {
	const struct tls_cipher_desc *cd;
	uint16_t version;
	struct ulpo_aead *aead;		/* keyed on first use; NULL while the socket is quiet */
	enum ulpo_aead_backend backend;	/* the library chosen at install */
	struct ulpo_device *dev;
	uint8_t iv[TLS_NONCE_SIZE];	/* salt || iv; for 1.2 GCM/CCM the iv part is the
					 * explicit nonce, advanced per record */
	uint8_t rec_seq[8];
	uint8_t info[TLS_CRYPTO_INFO_MAX];	/* crypto_info as installed (key for getsockopt) */
	/* Per-record layout derived from version and cipher. */
	uint8_t explicit_iv;		/* bytes of explicit nonce after the header */
	uint8_t tail;			/* 1 for the TLS 1.3 inner content type */
	bool xor_seq;			/* nonce = iv ^ seq (1.3, ChaCha) */
};

struct tls_context {
	struct ulpo_sock *sk;
	bool tx_ready, rx_ready;
	struct tls_crypto tx, rx;

	/* TX (under sk->tx_lock) */
	uint16_t tx_max_payload;	/* TLS_TX_MAX_PAYLOAD_LEN, default 2^14 */
	/* The work thread's epoll set (tls_txwork.c): which set it is registered in (-1:
	 * none) and under which fd; armed from the TX and the RX side, under work_lock. */
	pthread_mutex_t work_lock;
	int tx_work_epfd, tx_work_fd;
	bool zerocopy_ro;
	uint8_t *open_buf;		/* plaintext of the open record (MSG_MORE) */
	size_t open_len;
	uint8_t open_type;
	/* Closed records in sequence order (tls_txq.c). */
	struct tls_rec *txq_head, **txq_tail, *txq_pool;
	unsigned int txq_nrecs, txq_npool, txq_max_recs;
	size_t txq_bytes, txq_max_bytes;
	bool txq_broken;		/* a record failed: nothing more is sent */
	uint32_t tx_key_gen;		/* bumped at every TX key install */
	_Atomic unsigned int txq_kick;	/* completions so far (futex word) */
	_Atomic int txq_waiters;
	/* The waiter sleeps until the record with this number completes (earlier ones do
	 * not wake it): a sender at the bound wakes once per half queue, not per record. */
	_Atomic uint64_t txq_wake_seq;
	uint64_t txq_next_seq;		/* numbers records as they are queued */

	/* RX (under sk->rx_lock) */
	uint8_t *rxbuf;			/* ciphertext from TCP; records decrypted in place */
	size_t rx_cap, rx_head, rx_tail;
	size_t rx_dirty;		/* bytes of rxbuf (and rx_shadow) ever written */
	bool rx_pt_in_buf;		/* plaintext was ever placed in rxbuf: wipe it */
	size_t rx_ndec;			/* records at the head already decrypted (held) */
	size_t rx_consumed;		/* plaintext bytes of the head record already read */
	bool rx_no_pad;
	int rcvlowat;			/* SO_RCVLOWAT, kept here: read on every recv */
	bool rx_eof;
	bool key_update_pending;	/* KeyUpdate read: EKEYEXPIRED until new TLS_RX */
	bool rx_stopped;		/* a bad header stopped the parser for good */
	int rx_fatal;			/* a record failed to decrypt: sticky -EBADMSG */
	bool rx_fatal_auth;		/* ... by its tag (counted on every read) */
	uint32_t rx_key_gen;		/* bumped at every RX key install */
	/* Decrypt-ahead (tls_rx_ahead.c): plaintext of records decrypted on the engine's
	 * workers lands here, at the offsets of their ciphertext in rxbuf. */
	uint8_t *rx_shadow;
	uint64_t rx_shadow_mask;	/* bit i: the i-th held record's plaintext is there */
	uint64_t rx_ahead_new;		/* bit i: ... and no call has looked at it yet */
	struct tls_rx_par *rx_par;

	/* Whole-connection offload (tls_toe.c): the device does this connection's protocol
	 * work on its threads; the application's calls only copy into and out of buffers. */
	struct ulpo_device *toe_dev;	/* took the connection; NULL: software path */
	uint8_t toe_allow;		/* ULPO_PATH_* its caps gave this connection */
	/* Directions it carries (keyed): written under the direction's lock, read by the
	 * work thread without it. */
	atomic_bool toe_tx, toe_rx;
	_Atomic uint32_t work_ev;	/* EPOLLIN/EPOLLOUT armed in the work set */
	_Atomic uint32_t work_pending;	/* TOE_WORK_* rung on the doorbell, not run yet */
	_Atomic unsigned int toe_gen;	/* futex word: the device made progress */
	_Atomic int toe_waiters;
	_Atomic int toe_wake_fd;	/* a poll()ing thread's eventfd, or -1 */
	atomic_bool toe_rx_missed;	/* the device found the RX lock taken */
	bool toe_rx_stuck;		/* the record after the held ones is the reader's */
	bool toe_rx_full;		/* no room: the reader's consumption resumes the device */
	bool toe_fin;			/* shutdown(SHUT_WR): FIN once the queue is on the wire */
	bool toe_fin_sent;
	_Atomic int toe_fd;		/* after close(): the fd the device finishes on, or -1 */
	size_t toe_sndbuf;		/* SO_SNDBUF the application set (0: the device's) */
	size_t toe_charged;		/* txq_bytes counted in toe_dev->queued */

	/* Shared with other processes since a fork() (tls_share.c): NULL until then. */
	_Atomic(struct tls_share *) share;
	uint64_t share_tx_gen, share_rx_gen;	/* the state last loaded or stored */
	bool share_tx_in, share_rx_in;		/* this call holds the shared mutex */
	bool fork_held_tx, fork_held_rx;	/* the forking thread holds the lock */
};

extern const struct ulpo_proto ulpo_tls_proto;

static inline struct tls_context *tls_ctx(struct ulpo_sock *sk)
{
	return sk->ulp;
}

/* tls_main.c */
int tls_crypto_init(struct tls_crypto *c, const void *info, size_t len);
void tls_crypto_wipe(struct tls_crypto *c);
/* Key c->aead from the installed crypto_info if a quiet spell dropped it (~0.5 us), or
 * drop it: an idle socket keeps the key bytes, not the key schedule and GHASH tables. */
int tls_crypto_key(struct tls_crypto *c);
void tls_crypto_unkey(struct tls_crypto *c);
/* Advance rec_seq (and the 1.2 explicit IV); -EBADMSG when it would wrap. */
int tls_crypto_advance(struct tls_crypto *c);
void tls_crypto_nonce(const struct tls_crypto *c, uint8_t nonce[TLS_NONCE_SIZE]);
size_t tls_make_aad(const struct tls_crypto *c, uint8_t *aad, uint8_t type, size_t plen,
		    size_t wire_payload_len);
/* Run a job on the direction's device and wait for its completion. */
int tls_job_run(struct tls_crypto *c, struct ulpo_job *job);

/* tls_tx.c */
ssize_t tls_sw_sendmsg(struct ulpo_sock *sk, const struct msghdr *msg, int flags);
ssize_t tls_sw_sendfile(struct ulpo_sock *sk, int in_fd, off_t *offset, size_t count);
void tls_tx_free(struct tls_context *ctx);
/* The connection went quiet: give back the record buffers it is not using (under the
 * TX lock). */
void tls_tx_trim(struct tls_context *ctx);

/* tls_txq.c: the queue of closed records; all but init/free under sk->tx_lock */
struct tls_rec;
void tls_txq_init(struct tls_context *ctx);
int tls_txq_record(struct tls_context *ctx, uint8_t type, const struct iovec *src,
		   int srccnt, size_t plen, int flags);
int tls_txq_push(struct tls_context *ctx, int flags);
void tls_tx_work_arm(struct tls_context *ctx);
void tls_tx_work_forget(struct tls_context *ctx);
int tls_txq_flush(struct tls_context *ctx, int flags);
bool tls_txq_writable(const struct tls_context *ctx);
bool tls_txq_unsent_ready(const struct tls_context *ctx);
void tls_txq_wait_sealed(struct tls_context *ctx);
void tls_txq_free(struct tls_context *ctx);
void tls_txq_trim(struct tls_context *ctx);
/* Every holder of sk->tx_lock releases it through this: it sends what completed. */
void tls_tx_unlock(struct tls_context *ctx);

/* Remove the unsent ciphertext of the queued records (all sealed) into dst, up to cap
 * bytes; returns how many. A socket shared with another process keeps it there. */
size_t tls_txq_take_unsent(struct tls_context *ctx, uint8_t *dst, size_t cap);
/* Forget the queue without sending it (a forked child: the records are the parent's). */
void tls_txq_drop(struct tls_context *ctx);

/* tls_share.c: one socket in several processes after fork() */
struct tls_share;
void tls_share_init(void);
void tls_share_detach(struct tls_context *ctx);
void tls_share_tx_enter(struct tls_context *ctx);
bool tls_share_tx_tryenter(struct tls_context *ctx);
void tls_share_tx_leave(struct tls_context *ctx);
void tls_share_rx_enter(struct tls_context *ctx);
bool tls_share_rx_tryenter(struct tls_context *ctx);
void tls_share_rx_leave(struct tls_context *ctx);
/* Ciphertext stored by a process that TCP has not taken yet; pushed before records. */
size_t tls_share_pend(const struct tls_context *ctx);
void tls_share_store_missed(struct tls_context *ctx, bool tx);
int tls_share_push(struct tls_context *ctx, int sflags);

#define TOE_WORK_TX 0x1		/* tu_send: records to push */
#define TOE_WORK_RX 0x2		/* tu_rcvd: read and decrypt ahead of the reader */
void tls_toe_kick(struct tls_context *ctx, uint32_t work);

/* The TX and RX locks of a TLS socket: the socket's own and, once the socket is shared
 * with another process, the shared one too (which brings the state up to date). */
static inline bool tls_shared(const struct tls_context *ctx)
{
	return atomic_load_explicit(&((struct tls_context *)ctx)->share, memory_order_acquire);
}

static inline void tls_tx_lock(struct tls_context *ctx)
{
	pthread_mutex_lock(&ctx->sk->tx_lock);
	if (tls_shared(ctx))
		tls_share_tx_enter(ctx);
}

static inline bool tls_tx_trylock(struct tls_context *ctx)
{
	if (pthread_mutex_trylock(&ctx->sk->tx_lock))
		return false;
	if (tls_shared(ctx) && !tls_share_tx_tryenter(ctx)) {
		pthread_mutex_unlock(&ctx->sk->tx_lock);
		return false;
	}
	return true;
}

static inline void tls_rx_lock(struct tls_context *ctx)
{
	pthread_mutex_lock(&ctx->sk->rx_lock);
	if (tls_shared(ctx))
		tls_share_rx_enter(ctx);
}

/* For poll: the socket's own lock as usual, the shared one only if it is free. */
static inline bool tls_tx_lock_poll(struct tls_context *ctx)
{
	pthread_mutex_lock(&ctx->sk->tx_lock);
	if (tls_shared(ctx) && !tls_share_tx_tryenter(ctx)) {
		pthread_mutex_unlock(&ctx->sk->tx_lock);
		return false;
	}
	return true;
}

static inline bool tls_rx_lock_poll(struct tls_context *ctx)
{
	pthread_mutex_lock(&ctx->sk->rx_lock);
	if (tls_shared(ctx) && !tls_share_rx_tryenter(ctx)) {
		pthread_mutex_unlock(&ctx->sk->rx_lock);
		return false;
	}
	return true;
}

static inline void tls_rx_unlock(struct tls_context *ctx)
{
	bool shared = tls_shared(ctx);

	if (shared)
		tls_share_rx_leave(ctx);
	pthread_mutex_unlock(&ctx->sk->rx_lock);
	if (!shared && tls_shared(ctx))
		tls_share_store_missed(ctx, false);	/* shared meanwhile (fork) */
	/* The device found the lock taken: it runs again now that it is free. */
	if (ctx->toe_rx && atomic_load_explicit(&ctx->toe_rx_missed, memory_order_relaxed) &&
	    atomic_exchange(&ctx->toe_rx_missed, false))
		tls_toe_kick(ctx, TOE_WORK_RX);
}

/* tls_toe.c: whole-connection offload (the TOE model of the seed's toedev). */
/* At ULP install: the policy and the device decide (counted); at a direction's first
 * key: whether the device carries it. */
void tls_toe_attach(struct tls_context *ctx);
void tls_toe_key(struct tls_context *ctx, bool tx);
void tls_toe_detach_dev(struct tls_context *ctx);
/* Ring the device's doorbell for this connection (any thread). */
void tls_toe_kick(struct tls_context *ctx, uint32_t work);
/* A reader or poller about to sleep for receive progress: the device watches TCP. */
void tls_toe_rx_watch(struct tls_context *ctx);
/* The device's work for the connection (work thread, or a completion on a worker). */
void tls_toe_run(struct tls_context *ctx, uint32_t work, uint32_t events);
/* Progress the application may be waiting for: wake blocked calls and a poller. */
void tls_toe_wake(struct tls_context *ctx);
/* Sleep until the device's next progress after gen (RX or TX), at most ns (<0: no
 * limit): 0, -ETIMEDOUT or -EINTR. Called without the direction's lock. */
int tls_toe_wait(struct tls_context *ctx, unsigned int gen, long long ns);
/* close(): SO_LINGER 0 drops the queue (RST); otherwise a queue still unsent is left to
 * the device, which sends it, then the FIN, on a private fd (true: it took the socket). */
bool tls_toe_release(struct tls_context *ctx);
int tls_toe_shutdown(struct tls_context *ctx);
/* The RX step on the device: called with the RX lock held. */
void tls_toe_rx_step(struct tls_context *ctx);
/* A poll()ing thread's eventfd the device writes to (-1 if none for this thread). */
int tls_toe_poll_fd(void);
bool tls_toe_sendable(struct tls_context *ctx);
/* SO_SNDBUF set by the application: an offloaded connection's queue follows it. */
void tls_toe_sndbuf(struct tls_context *ctx);
size_t tls_toe_bound(const struct tls_context *ctx);
void tls_toe_charge(struct tls_context *ctx);
size_t tls_toe_rx_cap(const struct tls_context *ctx);
/* On the device, with the TX lock held, after a push: FIN, a closed socket's end. */
void tls_toe_txq_done(struct tls_context *ctx);
/* Sockets the device finishes after close(), by their private fd. */
struct ulpo_sock *tls_toe_detached_get(int fd);
void tls_toe_exit_flush(long *left_ms);

/* tls_txwork.c: the work thread (deferred transmit, and the device's thread) */
void tls_work_arm(struct tls_context *ctx, uint32_t events);
int tls_work_doorbell(struct ulpo_sock *sk);

/* tls_rx.c */
ssize_t tls_sw_recvmsg(struct ulpo_sock *sk, struct msghdr *msg, int flags);
ssize_t tls_sw_splice_read(struct ulpo_sock *sk, void *buf, size_t len, int flags);
/* Whether a whole record or held plaintext is ready; reads what TCP has without
 * blocking when `fill`. */
bool tls_rx_ready(struct tls_context *ctx, bool fill);
/* A quiet connection gives back its buffers (rx lock held). */
void tls_rx_quiet(struct tls_context *ctx);
/* Read what TCP has without waiting: >0, 0 at EOF (rx_eof), negative errno (sk_err). */
ssize_t tls_rx_fill_nowait(struct tls_context *ctx);
void tls_rx_free(struct tls_context *ctx);
/* Check the 5-byte header: the record's total wire length, 0 if more bytes are needed,
 * or a negative errno as the kernel's tls_rx_msg_size. */
long tls_rx_msg_size(const struct tls_crypto *c, const uint8_t *p, size_t avail);

#endif
