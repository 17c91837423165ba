/* tls_txq.c - the TX record queue (the kTLS async-encryption design): closed records are
 * sealed by the device, inline or on the engine's workers, and wait in a list in sequence
 * order; a completion marks its record ready, and the ready prefix of the list goes to TCP
 * in order, by the next call on the socket or by the completion itself when no call holds
 * the socket (the kernel's deferred tx work). A failed record stops the stream. */
#include <errno.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <ulpo/engine.h>

#include "core/stats.h"
#include "core/sys.h"
#include "engine/aead.h"
#include "engine/engine.h"
#include "tls/tls.h"

#define REC_SUBMITTED 1
#define REC_READY 0
#define TXQ_DEFAULT_RECORDS 16
#define TXQ_DEFAULT_BYTES (256u << 10)

struct tls_rec {
	struct tls_rec *next;
	struct tls_context *ctx;
	struct ulpo_job job;
	struct iovec src[TLS_TX_MAX_IOV + 1], dst;
	size_t wire_len, sent;
	uint64_t seq;			/* position in the queue's history (txq_wake_seq) */
	_Atomic int state;		/* REC_SUBMITTED, REC_READY or a negative errno */
	bool async;			/* completes on a worker, holds a socket reference */
	uint8_t inner_type;
	/* Records sealed in parallel each need a keyed context of their own (one thread
	 * at a time per context); kept with the pooled record, re-keyed after a rekey. */
	struct ulpo_aead *aead;
	uint32_t aead_gen;
	uint8_t buf[TLS_MAX_WIRE];
};

static void futex_wake_all(_Atomic unsigned int *addr)
{
	syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

static void futex_wait(_Atomic unsigned int *addr, unsigned int val, long ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };

	syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0);
}

void tls_txq_init(struct tls_context *ctx)
{
	struct ulpo_engine_config cfg;

	ulpo_engine_get_config(&cfg);
	ctx->txq_tail = &ctx->txq_head;
	ctx->txq_max_recs = cfg.max_records_in_flight ? cfg.max_records_in_flight
						      : TXQ_DEFAULT_RECORDS;
	ctx->txq_max_bytes = cfg.max_bytes_in_flight ? cfg.max_bytes_in_flight
						     : TXQ_DEFAULT_BYTES;
}

static struct tls_rec *rec_get(struct tls_context *ctx)
{
	struct tls_rec *rec = ctx->txq_pool;

	if (rec) {
		ctx->txq_pool = rec->next;
		ctx->txq_npool--;
		return rec;
	}
	rec = malloc(sizeof(*rec));
	if (rec) {
		rec->aead = NULL;
		rec->aead_gen = 0;
		atomic_init(&rec->state, REC_SUBMITTED);	/* not sealed: wipe when freed */
	}
	return rec;
}

static void rec_free(struct tls_rec *rec)
{
	ulpo_aead_free(rec->aead);
	/* A sealed record holds ciphertext only; one that never was may hold plaintext. */
	if (atomic_load_explicit(&rec->state, memory_order_relaxed) != REC_READY)
		explicit_bzero(rec->buf, sizeof(rec->buf));
	free(rec);
}

/* Spare records are kept up to the in-flight bound while records are queued: a busy
 * socket reuses its records and their keyed contexts instead of allocating, keying and
 * freeing one per record. A drained queue keeps a few (a TX-only socket never sees the
 * RX side's quiet test); a quiet socket gives them all back (tls_txq_trim). */
#define TXQ_SPARES_DRAINED 4

static void rec_put(struct tls_context *ctx, struct tls_rec *rec)
{
	if (ctx->txq_npool < (ctx->txq_head ? ctx->txq_max_recs : TXQ_SPARES_DRAINED)) {
		rec->next = ctx->txq_pool;
		ctx->txq_pool = rec;
		ctx->txq_npool++;
	} else {
		rec_free(rec);
	}
}

/* The head record is done with (sent, or moved to a shared socket's pending bytes). */
static void txq_pop_head(struct tls_context *ctx)
{
	struct tls_rec *rec = ctx->txq_head;

	ctx->txq_head = rec->next;
	if (!ctx->txq_head)
		ctx->txq_tail = &ctx->txq_head;
	ctx->txq_nrecs--;
	ctx->txq_bytes -= rec->wire_len;
	rec_put(ctx, rec);
}

/* The record's own context for the current TX key. */
static int rec_key(struct tls_context *ctx, struct tls_rec *rec)
{
	const struct tls_crypto *c = &ctx->tx;

	if (rec->aead && rec->aead_gen == ctx->tx_key_gen)
		return 0;
	ulpo_aead_free(rec->aead);
	rec->aead = NULL;
	rec->aead_gen = ctx->tx_key_gen;
	return ulpo_aead_new(c->cd->alg, c->backend, c->info + c->cd->off_key,
			     c->cd->key_len, &rec->aead);
}

/* After a failure nothing more may reach the wire: the queue is marked broken, and its
 * records are freed with the socket (those still in the engine complete first). */
static void txq_abort(struct tls_context *ctx, int err)
{
	ulpo_sock_set_error(ctx->sk, err);
	ctx->txq_broken = true;
}

/* A record sent with MSG_MORE waits in TCP for the next one (on loopback a whole 16 KiB
 * record is less than one segment). If the next one does not fit, nothing would ever push
 * it: the send buffer stays full of data TCP holds back, and no room ever comes. Pushing
 * is what TCP_CORK going off does, so that is done, unless the application corked the
 * socket itself. */
static void tcp_uncork(int fd)
{
	int on = 0;
	socklen_t len = sizeof(on);

	if (ulpo_sys_getsockopt(fd, SOL_TCP, TCP_CORK, &on, &len) == 0 && !on)
		ulpo_sys_setsockopt(fd, SOL_TCP, TCP_CORK, &on, sizeof(on));
}

/* Send the ready prefix of the queue. 0: nothing ready is left unsent (records may still
 * be in the engine); -EAGAIN: TCP took part; -EINTR; -EBADMSG: the stream is broken. */
int tls_txq_push(struct tls_context *ctx, int flags)
{
	int sflags = flags & (MSG_DONTWAIT | MSG_NOSIGNAL | MSG_MORE);
	bool corked = false;	/* the last bytes TCP took came with MSG_MORE */
	struct tls_rec *rec;

	if (ctx->txq_broken)
		return -EBADMSG;
	if (tls_share_pend(ctx)) {
		/* Another process's records (or ours, stored): they come first. */
		int r = tls_share_push(ctx, sflags);

		if (r == -EAGAIN || r == -EINTR)
			return r;
		if (r < 0) {
			txq_abort(ctx, -EBADMSG);
			return -EBADMSG;
		}
	}
	while ((rec = ctx->txq_head)) {
		/* Acquire pairs with the release in txq_done: the ciphertext is complete. */
		int st = atomic_load_explicit(&rec->state, memory_order_acquire);

		if (st == REC_SUBMITTED)
			return 0;
		if (st < 0) {
			txq_abort(ctx, -EBADMSG);
			return -EBADMSG;
		}
		/* MSG_MORE only when the next record goes out right after this one: one
		 * still being sealed could leave this one corked in TCP until it is. */
		bool more = rec->next && atomic_load_explicit(&rec->next->state,
							      memory_order_relaxed) != REC_SUBMITTED;

		while (rec->sent < rec->wire_len) {
			ssize_t n = ulpo_sys_send(ctx->sk->fd, rec->buf + rec->sent, rec->wire_len - rec->sent,
					 sflags | (more ? MSG_MORE : 0));

			if (n < 0) {
				int e = errno;

				/* EINTR goes to the caller as the kernel's would: a handler
				 * with SA_RESTART never lets it out of send(). */
				if (e == EAGAIN || e == EINTR) {
					if (corked && !(flags & MSG_MORE))
						tcp_uncork(ctx->sk->fd);
					return -e;
				}
				txq_abort(ctx, -EBADMSG);
				return -EBADMSG;
			}
			rec->sent += (size_t)n;
			corked = ((sflags | (more ? MSG_MORE : 0)) & MSG_MORE) != 0;
		}
		txq_pop_head(ctx);
		while (!ctx->txq_head && ctx->txq_npool > TXQ_SPARES_DRAINED) {
			struct tls_rec *spare = ctx->txq_pool;

			ctx->txq_pool = spare->next;
			ctx->txq_npool--;
			rec_free(spare);
		}
	}
	return 0;
}

bool tls_txq_writable(const struct tls_context *ctx)
{
	return ctx->txq_nrecs < ctx->txq_max_recs && ctx->txq_bytes < tls_toe_bound(ctx);
}

/* Room for a record of `wire` bytes (one record's worth of slack over the byte bound). */
static bool txq_room(const struct tls_context *ctx, size_t wire)
{
	return ctx->txq_nrecs < ctx->txq_max_recs &&
	       ctx->txq_bytes + wire <= tls_toe_bound(ctx) + TLS_MAX_WIRE;
}

bool tls_txq_unsent_ready(const struct tls_context *ctx)
{
	return (ctx->txq_head &&
		atomic_load_explicit(&ctx->txq_head->state, memory_order_acquire) != REC_SUBMITTED) ||
	       tls_share_pend(ctx);
}

/* Release the TX lock without stranding a completion: a completion that found the lock
 * taken only bumped txq_kick; whoever holds the lock sends what is ready before leaving,
 * and looks again if a completion came meanwhile. */
void tls_tx_unlock(struct tls_context *ctx)
{
	struct ulpo_sock *sk = ctx->sk;

	for (;;) {
		/* seq_cst pairs with the increment in txq_done. */
		unsigned int k = atomic_load(&ctx->txq_kick);
		bool shared = tls_shared(ctx);

		if (ctx->toe_tx && !ulpo_on_device) {
			/* Offloaded: the device sends (tu_send). */
			if (tls_txq_unsent_ready(ctx) && !ctx->txq_broken)
				tls_toe_kick(ctx, TOE_WORK_TX);
		} else if ((ctx->txq_head || tls_share_pend(ctx)) && !ctx->txq_broken &&
			   tls_txq_push(ctx, MSG_DONTWAIT | MSG_NOSIGNAL) == -EAGAIN &&
			   tls_txq_unsent_ready(ctx)) {
			tls_tx_work_arm(ctx);	/* TCP is full: send when it has room */
		}
		if (ctx->toe_tx && ulpo_on_device)
			tls_toe_txq_done(ctx);
		tls_toe_charge(ctx);
		if (shared)
			tls_share_tx_leave(ctx);
		pthread_mutex_unlock(&sk->tx_lock);
		if (!shared && tls_shared(ctx))
			tls_share_store_missed(ctx, true);	/* shared meanwhile (fork) */
		if (atomic_load(&ctx->txq_kick) == k || !tls_tx_trylock(ctx))
			return;
	}
}

static void txq_done(struct ulpo_job *job)
{
	struct tls_rec *rec = (struct tls_rec *)((uint8_t *)job - offsetof(struct tls_rec, job));
	struct tls_context *ctx = rec->ctx;
	struct ulpo_sock *sk = ctx->sk;
	bool async = rec->async;
	uint64_t seq = rec->seq;

	/* A failed record breaks the stream at once, as the kernel's tls_encrypt_done
	 * does: the next call on the socket reports it. */
	if (job->result < 0)
		ulpo_sock_set_error(sk, -EBADMSG);
	/* Release: the ciphertext written by the device is visible before the state. After
	 * this store the record may be sent and recycled by another thread: don't touch it. */
	atomic_store_explicit(&rec->state, job->result < 0 ? job->result : REC_READY,
			      memory_order_release);
	atomic_fetch_add(&ctx->txq_kick, 1);
	if (atomic_load(&ctx->txq_waiters) && seq >= atomic_load(&ctx->txq_wake_seq))
		futex_wake_all(&ctx->txq_kick);
	if (!async)
		return;	/* inline: the submitter holds the lock and pushes next */
	if (tls_tx_trylock(ctx))
		tls_tx_unlock(ctx);	/* deferred transmit */
	ulpo_sock_put(sk);
}

/* Wait until `rec` completes (or `ns` passes). Caller holds the TX lock. The state is
 * read after the futex word, so a completion between the two is not slept through. */
static void txq_wait_rec(struct tls_context *ctx, struct tls_rec *rec, long ns)
{
	unsigned int k;

	atomic_fetch_add(&ctx->txq_waiters, 1);
	/* seq_cst with the completion's kick and wake_seq loads: either it sees this
	 * number and wakes us, or we see its kick and do not sleep. */
	atomic_store(&ctx->txq_wake_seq, rec->seq);
	k = atomic_load(&ctx->txq_kick);
	if (atomic_load_explicit(&rec->state, memory_order_acquire) == REC_SUBMITTED)
		futex_wait(&ctx->txq_kick, k, ns);
	atomic_fetch_sub(&ctx->txq_waiters, 1);
}

static int wait_writable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };

	return ulpo_sys_poll(&p, 1, -1) < 0 ? -errno : 0;
}

/* A non-blocking send is MSG_DONTWAIT or an O_NONBLOCK socket; the latter is asked of
 * the kernel only when a send would have to wait. */
static bool may_wait(int fd, int flags)
{
	int fl;

	if (flags & MSG_DONTWAIT)
		return false;
	fl = ulpo_sys_fcntl(fd, F_GETFL, 0);
	return fl >= 0 && !(fl & O_NONBLOCK);
}

/* One wait for progress after a push that left records queued: for room in TCP if the
 * push got -EAGAIN (the head is ready, TCP is full), else for the head's completion. */
static int txq_wait_progress(struct tls_context *ctx, int push_result)
{
	struct tls_rec *rec = ctx->txq_head, *last = NULL;

	if (push_result == -EAGAIN)
		return wait_writable(ctx->sk->fd);
	/* Sleep until the first half of the queue is sealed, then send it in one go: one
	 * wakeup per half queue rather than per record. The wait is for the last record of
	 * that half still being sealed (completions may come out of order: a wait that ends
	 * early only looks again). */
	for (unsigned int i = 0; rec && i <= ctx->txq_nrecs / 2; i++, rec = rec->next)
		if (atomic_load_explicit(&rec->state, memory_order_acquire) == REC_SUBMITTED)
			last = rec;
	if (!last)
		return 0;
	while (atomic_load_explicit(&last->state, memory_order_acquire) == REC_SUBMITTED &&
	       !ctx->toe_tx && ulpo_engine_help())
		;
	txq_wait_rec(ctx, last, 10 * 1000 * 1000);
	return 0;
}

/* Make room for one more record: push, and if the call may block wait for completions
 * and for TCP. Caller holds the TX lock. -EAGAIN when the bound holds and we may not
 * wait (the backpressure of the in-flight bound, like SO_SNDBUF's). */
static int txq_make_room(struct tls_context *ctx, size_t wire, int flags)
{
	bool checked = false;

	for (;;) {
		int r = 0;

		/* Offloaded, the device sends; a sender held at the bound pushes while it
		 * waits, as the kernel's sendmsg does. */
		if (!ctx->toe_tx || ulpo_on_device || !txq_room(ctx, wire))
			r = tls_txq_push(ctx, flags | MSG_DONTWAIT);
		if (r < 0 && r != -EAGAIN)
			return r;
		if (txq_room(ctx, wire))
			return 0;
		if (!checked && !may_wait(ctx->sk->fd, flags))
			return -EAGAIN;
		checked = true;
		r = txq_wait_progress(ctx, r);
		if (r < 0)
			return r;
	}
}

/* Wait until every queued record has been sealed (before the key they use is wiped). */
void tls_txq_wait_sealed(struct tls_context *ctx)
{
	struct tls_rec *rec;

	/* Runs queued jobs while it waits: on an engine worker (a completion that took the
	 * lock) nobody else may be left to run them. */
	for (rec = ctx->txq_head; rec; rec = rec->next)
		while (atomic_load_explicit(&rec->state, memory_order_acquire) == REC_SUBMITTED)
			if (!ulpo_engine_help())
				txq_wait_rec(ctx, rec, 10 * 1000 * 1000);
}

/* Closed records reach TCP, waiting even on a non-blocking socket unless MSG_DONTWAIT
 * (close and shutdown wait, as the kernel's tls_complete_pending_work). */
int tls_txq_flush(struct tls_context *ctx, int flags)
{
	for (;;) {
		int r = tls_txq_push(ctx, flags | MSG_DONTWAIT);

		if (r < 0 && r != -EAGAIN)
			return r;
		if (!ctx->txq_head && !tls_share_pend(ctx))
			return 0;
		if (flags & MSG_DONTWAIT)
			return -EAGAIN;
		r = txq_wait_progress(ctx, r);
		if (r < 0 && r != -EINTR)	/* close waits through signals */
			return r;
	}
}

/* Close one record of `plen` bytes made of `src` and queue it for sealing. 0: taken
 * (sequence advanced; sealed and sent in order later, or now); negative errno: not
 * taken, the plaintext is still the caller's. The caller holds the TX lock. */
int tls_txq_record(struct tls_context *ctx, uint8_t type, const struct iovec *src,
		   int srccnt, size_t plen, int flags)
{
	static const uint8_t last_seq[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	struct tls_crypto *c = &ctx->tx;
	size_t payload = c->explicit_iv + plen + c->tail + TLS_TAG_SIZE;
	struct tls_rec *rec;
	uint8_t *body;
	int r;

	if (ctx->txq_broken)
		return -EBADMSG;
	r = txq_make_room(ctx, TLS_HEADER_SIZE + payload, flags);
	if (r < 0)
		return r;
	/* The last sequence number would wrap: abort rather than reuse a nonce (the
	 * kernel encrypts it, then refuses to send it). */
	if (!memcmp(c->rec_seq, last_seq, sizeof(last_seq))) {
		ulpo_sock_set_error(ctx->sk, -EBADMSG);
		return -EBADMSG;
	}
	rec = rec_get(ctx);
	if (!rec)
		return -ENOMEM;
	rec->next = NULL;
	rec->ctx = ctx;
	rec->sent = 0;
	/* An offloaded connection's records are sealed on the device's threads. */
	rec->async = ulpo_engine_mode() == ULPO_ENGINE_ASYNC || ctx->toe_tx;
	rec->seq = ctx->txq_next_seq++;
	rec->inner_type = type;
	rec->wire_len = TLS_HEADER_SIZE + payload;
	body = rec->buf + TLS_HEADER_SIZE + c->explicit_iv;
	rec->buf[0] = c->version == TLS_1_3_VERSION ? ULPO_TLS_RECORD_DATA : type;
	rec->buf[1] = 3;
	rec->buf[2] = 3;
	rec->buf[3] = (uint8_t)(payload >> 8);
	rec->buf[4] = (uint8_t)payload;
	memcpy(rec->buf + TLS_HEADER_SIZE, c->iv + c->cd->salt_len, c->explicit_iv);
	memset(&rec->job, 0, sizeof(rec->job));
	rec->job.op = ULPO_JOB_SEAL;
	r = rec->async ? rec_key(ctx, rec) : tls_crypto_key(c);
	if (r < 0) {
		rec_put(ctx, rec);
		return r;
	}
	rec->job.aead = rec->async ? rec->aead : c->aead;
	tls_crypto_nonce(c, rec->job.nonce);
	rec->job.aadlen = (uint8_t)tls_make_aad(c, rec->job.aad, type, plen, payload);
	rec->dst.iov_base = body;
	rec->dst.iov_len = plen + c->tail;
	if (rec->async) {
		/* The caller's buffer is free when the call returns: copy, seal in place. */
		uint8_t *p = body;

		for (int i = 0; i < srccnt; i++) {
			memcpy(p, src[i].iov_base, src[i].iov_len);
			p += src[i].iov_len;
		}
		if (c->tail)
			*p = type;
		rec->src[0] = rec->dst;
		rec->job.srccnt = 1;
		/* A sender at the bound runs jobs while it waits (txq_wait_progress),
		 * unless the connection is offloaded. */
		rec->job.flags = ctx->toe_tx ? ULPO_JOB_F_DEVICE : ULPO_JOB_F_SUBMITTER_HELPS;
	} else {
		/* Inline: seal straight from the caller's iovecs, no copy. */
		memcpy(rec->src, src, sizeof(*src) * (size_t)srccnt);
		rec->job.srccnt = srccnt;
		if (c->tail) {
			rec->src[srccnt].iov_base = &rec->inner_type;
			rec->src[srccnt].iov_len = 1;
			rec->job.srccnt++;
		}
		rec->job.flags = ULPO_JOB_F_INLINE;
	}
	rec->job.src = rec->src;
	rec->job.dst = &rec->dst;
	rec->job.dstcnt = 1;
	rec->job.tag = body + plen + c->tail;
	rec->job.complete = txq_done;
	atomic_store_explicit(&rec->state, REC_SUBMITTED, memory_order_relaxed);
	/* The sequence number advances at submit: the next record takes the next nonce. */
	tls_crypto_advance(c);
	*ctx->txq_tail = rec;
	ctx->txq_tail = &rec->next;
	ctx->txq_nrecs++;
	ctx->txq_bytes += rec->wire_len;
	ulpo_stat_add(ULPO_STAT_TX_RECORDS, 1);
	ulpo_stat_add(ULPO_STAT_TX_BYTES, (int64_t)plen);
	if (rec->async)
		atomic_fetch_add_explicit(&ctx->sk->refs, 1, memory_order_relaxed);
	r = c->dev->ops->submit(c->dev, &rec->job);
	if (r < 0) {
		/* Not queued: the record can never be sent, and nothing after it may be. */
		if (rec->async)
			atomic_fetch_sub_explicit(&ctx->sk->refs, 1, memory_order_relaxed);
		atomic_store(&rec->state, r);
		txq_abort(ctx, -EBADMSG);
		return 0;
	}
	if (!ctx->toe_tx)
		tls_txq_push(ctx, flags);
	return 0;
}

/* Spare records go back to the allocator; records still queued stay, of course. */
void tls_txq_trim(struct tls_context *ctx)
{
	struct tls_rec *rec, *next;

	for (rec = ctx->txq_pool; rec; rec = next) {
		next = rec->next;
		rec_free(rec);
	}
	ctx->txq_pool = NULL;
	ctx->txq_npool = 0;
}

size_t tls_txq_take_unsent(struct tls_context *ctx, uint8_t *dst, size_t cap)
{
	size_t n = 0;
	struct tls_rec *rec;

	while ((rec = ctx->txq_head) &&
	       atomic_load_explicit(&rec->state, memory_order_acquire) == REC_READY &&
	       rec->wire_len - rec->sent <= cap - n) {
		memcpy(dst + n, rec->buf + rec->sent, rec->wire_len - rec->sent);
		n += rec->wire_len - rec->sent;
		txq_pop_head(ctx);
	}
	return n;
}

void tls_txq_drop(struct tls_context *ctx)
{
	struct tls_rec *rec, *next;

	for (rec = ctx->txq_head; rec; rec = next) {
		next = rec->next;
		/* A record on the parent's engine held a reference: this copy drops it. */
		if (rec->async && atomic_load(&rec->state) == REC_SUBMITTED)
			atomic_fetch_sub_explicit(&ctx->sk->refs, 1, memory_order_relaxed);
		rec_free(rec);
	}
	ctx->txq_head = NULL;
	ctx->txq_tail = &ctx->txq_head;
	ctx->txq_nrecs = 0;
	ctx->txq_bytes = 0;
}

/* Free the queue at the socket's last reference: every record has completed by then
 * (each in-flight record held a reference). */
void tls_txq_free(struct tls_context *ctx)
{
	struct tls_rec *rec, *next;

	for (rec = ctx->txq_head; rec; rec = next) {
		next = rec->next;
		rec_free(rec);
	}
	for (rec = ctx->txq_pool; rec; rec = next) {
		next = rec->next;
		rec_free(rec);
	}
	ctx->txq_head = ctx->txq_pool = NULL;
	ctx->txq_tail = &ctx->txq_head;
	ctx->txq_nrecs = 0;
	ctx->txq_bytes = 0;
	ctx->txq_npool = 0;
}
