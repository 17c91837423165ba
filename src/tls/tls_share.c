/* tls_share.c - one TLS socket in several processes. After fork() the kernel still has
 * one socket, with one record sequence per direction, whichever process calls; ulpo's
 * state is per process. So a TLS socket that exists at fork() gets a shared mapping
 * (MAP_SHARED, inherited by the child, same address in both): per direction a
 * process-shared mutex and a stored copy of the direction's state.
 *
 * A call takes the socket's own lock, then the direction's shared mutex; if another
 * process stored the state since this one last did (generation number), it loads it.
 * The call then works on its private state as usual, and stores it back before letting
 * go. What is stored is everything a call leaves behind: keys and sequence numbers, the
 * open (MSG_MORE) record, the ciphertext TCP has not taken yet (records move out of the
 * queue into the mapping's pending bytes, which the next push sends first), and the bytes
 * received but not read (held records with their plaintext, decrypt-ahead results too).
 * Keyed cipher contexts stay per process: a changed key is keyed again where it is used.
 *
 * The cost, for sockets that existed at a fork only: two more lock operations and the
 * copies of what a call leaves buffered. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "core/sys.h"
#include "tls/tls.h"
#include "tls/tls_rx.h"

struct tls_share {
	pthread_mutex_t tx_mu, rx_mu;	/* process-shared, robust */
	atomic_int procs;		/* processes that hold the socket */
	pid_t pid;			/* the process that shared it (at its first fork) */
	size_t map_len;

	/* TX; tx_gen 0: not stored yet (a call was running in the parent at fork). */
	uint64_t tx_gen;
	struct tls_crypto tx;		/* aead always NULL here */
	bool tx_ready, zerocopy_ro, txq_broken;
	uint16_t tx_max_payload;
	uint8_t open_type;
	size_t open_len;
	size_t pend_off, pend_len, pend_cap;	/* ciphertext TCP has not taken */

	/* RX */
	uint64_t rx_gen;
	struct tls_crypto rx;
	bool rx_ready, rx_no_pad, rx_eof, key_update_pending, rx_stopped, rx_fatal_auth;
	int rx_fatal, rcvlowat;
	size_t rx_len, rx_ndec, rx_consumed;
	uint64_t rx_shadow_mask, rx_ahead_new;
	size_t rx_hw;			/* most bytes ever stored: what the last one wipes */

	size_t off_open, off_rx, off_shadow, off_pend;
};

#define SHARE_AT(s, off) ((uint8_t *)(s) + (off))
#define SHARE_ALIGN(x) (((x) + 63) & ~(size_t)63)

static struct tls_share *share_new(const struct tls_context *ctx)
{
	size_t hdr = SHARE_ALIGN(sizeof(struct tls_share));
	size_t pend = SHARE_ALIGN(2 * ctx->txq_max_bytes + 8 * TLS_MAX_WIRE);
	/* Room for the larger receive buffer, an offloaded connection's. */
	size_t len = hdr + SHARE_ALIGN(ULPO_TLS_MAX_PAYLOAD) + 2 * SHARE_ALIGN(RX_CAP_TOE) + pend;
	pthread_mutexattr_t a;
	struct tls_share *s;

	s = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
		 -1, 0);
	if (s == MAP_FAILED)
		return NULL;
	/* Plaintext and keys live here: never in a core dump, never swapped to disk is
	 * the kernel's business; at least not dumped. */
	madvise(s, len, MADV_DONTDUMP);
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&s->tx_mu, &a);
	pthread_mutex_init(&s->rx_mu, &a);
	pthread_mutexattr_destroy(&a);
	atomic_init(&s->procs, 1);
	s->pid = getpid();
	s->map_len = len;
	s->off_open = hdr;
	s->off_rx = s->off_open + SHARE_ALIGN(ULPO_TLS_MAX_PAYLOAD);
	s->off_shadow = s->off_rx + SHARE_ALIGN(RX_CAP_TOE);
	s->off_pend = s->off_shadow + SHARE_ALIGN(RX_CAP_TOE);
	s->pend_cap = pend;
	return s;
}

/* A process that died holding the mutex may have put records on the wire (or taken
 * ciphertext off it) beyond the last stored state: carrying on from that state would
 * reuse sequence numbers, so the direction is broken for good, as after a failed record. */
static void owner_died(struct tls_share *s, pthread_mutex_t *m)
{
	pthread_mutex_consistent(m);
	if (m == &s->tx_mu) {
		s->txq_broken = true;
		s->tx_gen++;
	} else {
		s->rx_fatal = -EBADMSG;
		s->rx_gen++;
	}
}

static void mu_lock(struct tls_share *s, pthread_mutex_t *m)
{
	if (pthread_mutex_lock(m) == EOWNERDEAD)
		owner_died(s, m);
}

static bool mu_trylock(struct tls_share *s, pthread_mutex_t *m)
{
	int r = pthread_mutex_trylock(m);

	if (r == EOWNERDEAD)
		owner_died(s, m);
	return r == 0 || r == EOWNERDEAD;
}

/* The direction's keys and numbers from the mapping; the process's keyed context is
 * kept unless the key changed (another process rekeyed). */
static void crypto_load(struct tls_crypto *dst, const struct tls_crypto *src, uint32_t *key_gen)
{
	struct ulpo_aead *aead = dst->aead;

	if (dst->cd != src->cd || !src->cd ||
	    memcmp(dst->info + dst->cd->off_key, src->info + src->cd->off_key, src->cd->key_len)) {
		tls_crypto_unkey(dst);
		aead = NULL;
		(*key_gen)++;
	}
	*dst = *src;
	dst->aead = aead;
}

static void crypto_store(struct tls_crypto *dst, const struct tls_crypto *src)
{
	*dst = *src;
	dst->aead = NULL;
}

/* ---- TX ---- */

static void tx_load(struct tls_context *ctx, struct tls_share *s)
{
	if (s->tx_gen != ctx->share_tx_gen) {
		if (s->tx_ready)
			crypto_load(&ctx->tx, &s->tx, &ctx->tx_key_gen);
		ctx->tx_ready = s->tx_ready;
		ctx->zerocopy_ro = s->zerocopy_ro;
		ctx->txq_broken = s->txq_broken;
		ctx->tx_max_payload = s->tx_max_payload;
		if (s->open_len && !ctx->open_buf)
			ctx->open_buf = malloc(ULPO_TLS_MAX_PAYLOAD);
		if (ctx->open_len)
			explicit_bzero(ctx->open_buf, ctx->open_len);
		ctx->open_len = ctx->open_buf ? s->open_len : 0;
		ctx->open_type = s->open_type;
		if (ctx->open_len)
			memcpy(ctx->open_buf, SHARE_AT(s, s->off_open), ctx->open_len);
		ctx->share_tx_gen = s->tx_gen;
	}
	/* The queue is empty here (stored as pending bytes): those count against the
	 * in-flight bound like queued records. */
	ctx->txq_bytes = s->pend_len - s->pend_off;
}

static void tx_store(struct tls_context *ctx, struct tls_share *s)
{
	uint8_t *pend = SHARE_AT(s, s->off_pend);

	tls_txq_wait_sealed(ctx);
	if (s->pend_off) {
		memmove(pend, pend + s->pend_off, s->pend_len - s->pend_off);
		s->pend_len -= s->pend_off;
		s->pend_off = 0;
	}
	s->pend_len += tls_txq_take_unsent(ctx, pend + s->pend_len, s->pend_cap - s->pend_len);
	crypto_store(&s->tx, &ctx->tx);
	s->tx_ready = ctx->tx_ready;
	s->zerocopy_ro = ctx->zerocopy_ro;
	s->txq_broken = ctx->txq_broken;
	s->tx_max_payload = ctx->tx_max_payload;
	s->open_type = ctx->open_type;
	if (s->open_len > ctx->open_len)
		explicit_bzero(SHARE_AT(s, s->off_open) + ctx->open_len, s->open_len - ctx->open_len);
	s->open_len = ctx->open_len;
	if (ctx->open_len)
		memcpy(SHARE_AT(s, s->off_open), ctx->open_buf, ctx->open_len);
	ctx->share_tx_gen = ++s->tx_gen;
}

void tls_share_tx_enter(struct tls_context *ctx)
{
	struct tls_share *s = atomic_load(&ctx->share);

	for (;;) {
		mu_lock(s, &s->tx_mu);
		if (!s->tx_gen && getpid() == s->pid)
			tx_store(ctx, s);	/* we are the parent: our state is the socket's */
		if (s->tx_gen)
			break;
		/* The parent's call that ran across fork() has not stored its state yet. */
		pthread_mutex_unlock(&s->tx_mu);
		nanosleep(&(struct timespec){ .tv_nsec = 1000 * 1000 }, NULL);
	}
	tx_load(ctx, s);
	ctx->share_tx_in = true;
}

bool tls_share_tx_tryenter(struct tls_context *ctx)
{
	struct tls_share *s = atomic_load(&ctx->share);

	if (!mu_trylock(s, &s->tx_mu))
		return false;
	if (!s->tx_gen && getpid() == s->pid)
		tx_store(ctx, s);
	if (!s->tx_gen) {
		pthread_mutex_unlock(&s->tx_mu);
		return false;
	}
	tx_load(ctx, s);
	ctx->share_tx_in = true;
	return true;
}

void tls_share_tx_leave(struct tls_context *ctx)
{
	struct tls_share *s = atomic_load(&ctx->share);

	if (!ctx->share_tx_in)	/* the call began before the socket was shared */
		mu_lock(s, &s->tx_mu);
	tx_store(ctx, s);
	ctx->share_tx_in = false;
	pthread_mutex_unlock(&s->tx_mu);
}

/* A call that let go just as the socket became shared (it saw no mapping) stored
 * nothing; the parent's state is what the others wait for. */
void tls_share_store_missed(struct tls_context *ctx, bool tx)
{
	struct tls_share *s = atomic_load(&ctx->share);

	if (!s || getpid() != s->pid || (tx ? s->tx_gen : s->rx_gen))
		return;
	if (tx) {
		tls_tx_lock(ctx);	/* stores: the generation is 0 and we are its maker */
		tls_tx_unlock(ctx);
	} else {
		tls_rx_lock(ctx);
		tls_rx_unlock(ctx);
	}
}

size_t tls_share_pend(const struct tls_context *ctx)
{
	const struct tls_share *s = atomic_load(&ctx->share);

	return s ? s->pend_len - s->pend_off : 0;
}

/* Send the pending ciphertext ahead of any record queued since. 0 when all is sent. */
int tls_share_push(struct tls_context *ctx, int sflags)
{
	struct tls_share *s = atomic_load(&ctx->share);

	while (s->pend_off < s->pend_len) {
		ssize_t n = ulpo_sys_send(ctx->sk->fd, SHARE_AT(s, s->off_pend) + s->pend_off,
					  s->pend_len - s->pend_off,
					  sflags | (ctx->txq_head ? MSG_MORE : 0));

		if (n < 0)
			return -errno;
		s->pend_off += (size_t)n;
		ctx->txq_bytes -= (size_t)n;
	}
	s->pend_off = s->pend_len = 0;
	return 0;
}

/* ---- RX ---- */

static void rx_load(struct tls_context *ctx, struct tls_share *s)
{
	if (s->rx_gen == ctx->share_rx_gen)
		return;
	tls_rx_ahead_finish(ctx);	/* nothing of ours in flight over the buffer */
	if (s->rx_ready)
		crypto_load(&ctx->rx, &s->rx, &ctx->rx_key_gen);
	ctx->rx_ready = s->rx_ready;
	ctx->rx_no_pad = s->rx_no_pad;
	ctx->rx_eof = s->rx_eof;
	ctx->key_update_pending = s->key_update_pending;
	ctx->rx_stopped = s->rx_stopped;
	ctx->rx_fatal_auth = s->rx_fatal_auth;
	ctx->rx_fatal = s->rx_fatal;
	ctx->rcvlowat = s->rcvlowat;
	ctx->rx_head = ctx->rx_tail = 0;
	ctx->rx_ndec = ctx->rx_consumed = 0;
	ctx->rx_shadow_mask = ctx->rx_ahead_new = 0;
	if (s->rx_len && ctx->rxbuf && ctx->rx_cap < s->rx_len) {
		/* Another process's buffer was larger (an offloaded connection's). */
		tls_rx_free(ctx);
	}
	if (s->rx_len && !ctx->rxbuf) {
		size_t cap = s->rx_len > RX_CAP ? RX_CAP_TOE : RX_CAP;

		ctx->rxbuf = malloc(cap);
		ctx->rx_cap = cap;
	}
	if (s->rx_shadow_mask && ctx->rxbuf && !ctx->rx_shadow)
		ctx->rx_shadow = malloc(ctx->rx_cap);
	if (s->rx_len && ctx->rxbuf && (!s->rx_shadow_mask || ctx->rx_shadow)) {
		memcpy(ctx->rxbuf, SHARE_AT(s, s->off_rx), s->rx_len);
		if (s->rx_shadow_mask)
			memcpy(ctx->rx_shadow, SHARE_AT(s, s->off_shadow), s->rx_len);
		ctx->rx_tail = s->rx_len;
		ctx->rx_ndec = s->rx_ndec;
		ctx->rx_consumed = s->rx_consumed;
		ctx->rx_shadow_mask = s->rx_shadow_mask;
		ctx->rx_ahead_new = s->rx_ahead_new;
		if (ctx->rx_tail > ctx->rx_dirty)
			ctx->rx_dirty = ctx->rx_tail;
		ctx->rx_pt_in_buf |= ctx->rx_ndec != 0;
	} else if (s->rx_len) {
		ctx->rx_fatal = -ENOMEM;	/* bytes of the stream we cannot hold */
	}
	ctx->share_rx_gen = s->rx_gen;
}

static void rx_store(struct tls_context *ctx, struct tls_share *s)
{
	size_t len;

	tls_rx_ahead_finish(ctx);
	len = ctx->rxbuf ? ctx->rx_tail - ctx->rx_head : 0;
	crypto_store(&s->rx, &ctx->rx);
	s->rx_ready = ctx->rx_ready;
	s->rx_no_pad = ctx->rx_no_pad;
	s->rx_eof = ctx->rx_eof;
	s->key_update_pending = ctx->key_update_pending;
	s->rx_stopped = ctx->rx_stopped;
	s->rx_fatal_auth = ctx->rx_fatal_auth;
	s->rx_fatal = ctx->rx_fatal;
	s->rcvlowat = ctx->rcvlowat;
	if (s->rx_len > len)	/* plaintext of records read since: gone */
		explicit_bzero(SHARE_AT(s, s->off_rx) + len, s->rx_len - len);
	if (len)
		memcpy(SHARE_AT(s, s->off_rx), ctx->rxbuf + ctx->rx_head, len);
	if (len && ctx->rx_shadow_mask)
		memcpy(SHARE_AT(s, s->off_shadow), ctx->rx_shadow + ctx->rx_head, len);
	else if (s->rx_shadow_mask)
		explicit_bzero(SHARE_AT(s, s->off_shadow), s->rx_len);
	s->rx_len = len;
	if (len > s->rx_hw)
		s->rx_hw = len;
	s->rx_ndec = len ? ctx->rx_ndec : 0;
	s->rx_consumed = len ? ctx->rx_consumed : 0;
	s->rx_shadow_mask = len ? ctx->rx_shadow_mask : 0;
	s->rx_ahead_new = len ? ctx->rx_ahead_new : 0;
	ctx->share_rx_gen = ++s->rx_gen;
}

void tls_share_rx_enter(struct tls_context *ctx)
{
	struct tls_share *s = atomic_load(&ctx->share);

	for (;;) {
		mu_lock(s, &s->rx_mu);
		if (!s->rx_gen && getpid() == s->pid)
			rx_store(ctx, s);
		if (s->rx_gen)
			break;
		pthread_mutex_unlock(&s->rx_mu);
		nanosleep(&(struct timespec){ .tv_nsec = 1000 * 1000 }, NULL);
	}
	rx_load(ctx, s);
	ctx->share_rx_in = true;
}

bool tls_share_rx_tryenter(struct tls_context *ctx)
{
	struct tls_share *s = atomic_load(&ctx->share);

	if (!mu_trylock(s, &s->rx_mu))
		return false;
	if (!s->rx_gen && getpid() == s->pid)
		rx_store(ctx, s);
	if (!s->rx_gen) {
		pthread_mutex_unlock(&s->rx_mu);
		return false;
	}
	rx_load(ctx, s);
	ctx->share_rx_in = true;
	return true;
}

void tls_share_rx_leave(struct tls_context *ctx)
{
	struct tls_share *s = atomic_load(&ctx->share);

	if (!ctx->share_rx_in)
		mu_lock(s, &s->rx_mu);
	rx_store(ctx, s);
	ctx->share_rx_in = false;
	pthread_mutex_unlock(&s->rx_mu);
}

/* ---- fork ---- */

static struct {
	pthread_mutex_t lock;		/* one fork at a time through the handlers */
	struct tls_context **held;	/* sockets whose locks the forking thread holds */
	size_t n, cap;
} fk = { PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0 };

/* Before fork(), in the parent: every TLS socket gets its mapping, and its state is
 * stored there. A direction another thread is using right now is stored by that call
 * when it ends (it sees the mapping then); the child waits for it. The forking thread
 * keeps the locks it could take until fork() returns, so the child's copy of those
 * directions is the stored state. */
static void prepare_one(struct ulpo_sock *sk, void *arg)
{
	struct tls_context *ctx = tls_ctx(sk);
	struct tls_share *s;

	(void)arg;
	if (sk->proto != &ulpo_tls_proto || !ctx || atomic_load(&sk->closing))
		return;
	if (fk.n == fk.cap) {
		size_t cap = fk.cap ? 2 * fk.cap : 64;
		struct tls_context **h = realloc(fk.held, cap * sizeof(*h));

		if (!h)
			return;
		fk.held = h;
		fk.cap = cap;
	}
	ctx->fork_held_tx = pthread_mutex_trylock(&sk->tx_lock) == 0;
	ctx->fork_held_rx = pthread_mutex_trylock(&sk->rx_lock) == 0;
	/* The device's thread is this process's only: a shared socket goes back to the
	 * software path in both (its queue and held records carry over as they are). */
	ctx->toe_tx = ctx->toe_rx = false;
	sk->toe_path = 0;
	tls_toe_wake(ctx);	/* a reader waiting for the device looks again */
	/* A socket shared already: every call stores its state when it ends, and this
	 * process's copy may be older than another's, so nothing is stored here (and no
	 * shared mutex is waited for: a blocking call elsewhere must not hold up fork). */
	s = atomic_load(&ctx->share);
	if (!s) {
		s = share_new(ctx);
		if (s) {
			atomic_store(&ctx->share, s);
			/* New: nobody else has it yet, its mutexes are free. */
			if (ctx->fork_held_tx) {
				mu_lock(s, &s->tx_mu);
				tx_store(ctx, s);
				pthread_mutex_unlock(&s->tx_mu);
			}
			if (ctx->fork_held_rx) {
				mu_lock(s, &s->rx_mu);
				rx_store(ctx, s);
				pthread_mutex_unlock(&s->rx_mu);
			}
		}
	}
	/* Held across fork(), released in both processes afterwards. */
	atomic_fetch_add(&sk->refs, 1);
	fk.held[fk.n++] = ctx;
}

static void fork_prepare(void)
{
	pthread_mutex_lock(&fk.lock);
	fk.n = 0;
	ulpo_sock_for_each(prepare_one, NULL);
}

static void release_held(bool parent)
{
	for (size_t i = 0; i < fk.n; i++) {
		struct tls_context *ctx = fk.held[i];
		struct ulpo_sock *sk = ctx->sk;

		if (ctx->fork_held_tx) {
			pthread_mutex_unlock(&sk->tx_lock);
			/* A completion that found the lock taken during the fork left its
			 * push to the holder: the parent's threads do it now. */
			if (parent && tls_tx_trylock(ctx))
				tls_tx_unlock(ctx);
		}
		if (ctx->fork_held_rx)
			pthread_mutex_unlock(&sk->rx_lock);
		ctx->fork_held_tx = ctx->fork_held_rx = false;
		ulpo_sock_put(sk);
	}
	fk.n = 0;
	pthread_mutex_unlock(&fk.lock);
}

static void fork_parent(void)
{
	release_held(true);
}

/* In the child: the other threads are gone, and so is whatever they were doing. Each
 * shared socket starts from the stored state: locks the forking thread did not hold are
 * made afresh (their holders are gone), its queue (copies of records the parent sends)
 * is dropped, its deferred transmit is armed in no set of this process. */
static void fork_child(void)
{
	for (size_t i = 0; i < fk.n; i++) {
		struct tls_context *ctx = fk.held[i];
		struct ulpo_sock *sk = ctx->sk;
		struct tls_share *s = atomic_load(&ctx->share);

		if (!ctx->fork_held_tx)
			pthread_mutex_init(&sk->tx_lock, NULL);
		if (!ctx->fork_held_rx)
			pthread_mutex_init(&sk->rx_lock, NULL);
		if (!s) {
			/* No mapping (out of memory): two processes with one key and
			 * sequence and no way to agree. This one may not use it. */
			ctx->txq_broken = true;
			ctx->rx_fatal = -EBADMSG;
			continue;
		}
		atomic_fetch_add(&s->procs, 1);
		/* A direction another thread (an application call, the device's thread, a
		 * completion) was in at the fork may have been half-way through changing its
		 * buffers and key schedules: this copy's pointers are not trusted (what they
		 * held is left, unfreed); the stored state is loaded into fresh ones. */
		if (!ctx->fork_held_tx) {
			ctx->txq_head = ctx->txq_pool = NULL;
			ctx->txq_tail = &ctx->txq_head;
			ctx->txq_nrecs = ctx->txq_npool = 0;
			ctx->txq_bytes = 0;
			ctx->open_buf = NULL;
			ctx->open_len = 0;
			ctx->tx.aead = NULL;
		}
		if (!ctx->fork_held_rx) {
			ctx->rxbuf = ctx->rx_shadow = NULL;
			ctx->rx_par = NULL;
			ctx->rx_cap = ctx->rx_dirty = 0;
			ctx->rx_head = ctx->rx_tail = ctx->rx_ndec = ctx->rx_consumed = 0;
			ctx->rx_shadow_mask = ctx->rx_ahead_new = 0;
			ctx->rx.aead = NULL;
		}
		tls_txq_drop(ctx);
		atomic_store(&ctx->work_ev, 0);
		pthread_mutex_init(&ctx->work_lock, NULL);	/* another thread may have held it */
		ctx->tx_work_epfd = -1;
		ctx->share_tx_in = ctx->share_rx_in = false;
		ctx->share_tx_gen = ctx->share_rx_gen = UINT64_MAX;	/* load at first use */
	}
	release_held(false);
}

static void register_handlers(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* At the first TLS socket, after the engine set up its own handlers (tls_txq_init asked
 * it for its configuration): handlers registered later run first before fork(), so ours
 * store the sockets while the engine's workers can still finish what was queued. */
void tls_share_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, register_handlers);
}

/* The process lets go of the socket (its last fd closed): the last one wipes. */
void tls_share_detach(struct tls_context *ctx)
{
	struct tls_share *s = atomic_load(&ctx->share);

	if (!s)
		return;
	if (atomic_fetch_sub(&s->procs, 1) == 1) {
		/* Keys, the open record's plaintext, held plaintext; pending bytes are
		 * ciphertext. Pages never touched are not touched now. */
		explicit_bzero(SHARE_AT(s, s->off_open), ULPO_TLS_MAX_PAYLOAD);
		explicit_bzero(SHARE_AT(s, s->off_rx), s->rx_hw);
		explicit_bzero(SHARE_AT(s, s->off_shadow), s->rx_hw);
		explicit_bzero(&s->tx, sizeof(s->tx));
		explicit_bzero(&s->rx, sizeof(s->rx));
	}
	munmap(s, s->map_len);
	atomic_store(&ctx->share, NULL);
}
