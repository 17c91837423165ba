/* tls_rx_ahead.c - parallel decryption on receive (see tls_rx.h): the records queued
 * behind the one the caller's thread is decrypting go to the engine's workers at once,
 * each with its own keyed context and its own nonce (sequence number + i), out of place
 * into rx_shadow. The kernel does this for TLS 1.2 only, since a 1.3 record's type is
 * known only once decrypted; keeping the ciphertext makes 1.3 safe too: a KeyUpdate
 * among the records just means those behind it are decrypted again, under the new key. */
#include <errno.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <ulpo/engine.h>

#include "core/stats.h"
#include "engine/aead.h"
#include "engine/engine.h"
#include "tls/tls_rx.h"

#define RX_AHEAD_MAX 8			/* records decrypted ahead at once */

/* Set while this thread submits a batch: a completion that runs inside the submit (inline
 * engine) must not ring the device for the batch its own caller is about to collect. */
static __thread bool ulpo_on_device_submitting;

struct tls_rx_par {
	struct ulpo_aead *aead[RX_AHEAD_MAX];	/* one per job in flight */
	uint32_t aead_gen;			/* ctx->rx_key_gen they were keyed for */
	struct ulpo_job job[RX_AHEAD_MAX];
	struct iovec src[RX_AHEAD_MAX], dst[RX_AHEAD_MAX];
	size_t off[RX_AHEAD_MAX];		/* each record's offset in rxbuf */
	unsigned int n;
	_Atomic unsigned int pending;		/* jobs not completed (futex word) */
	/* A batch in flight holds a reference on its socket, dropped by the completion
	 * that ends it: the socket is never destroyed (and its buffers freed) under the
	 * workers, and destroy never has to wait for them, even when a completion on a
	 * worker drops the last reference. */
	struct ulpo_sock *sk;
	unsigned int fork_gen;			/* the engine's, at submit */
	bool toe;				/* the device collects: kick it at the end */
};

void tls_rx_ahead_free(struct tls_context *ctx)
{
	struct tls_rx_par *par = ctx->rx_par;

	if (!par)
		return;
	for (int i = 0; i < RX_AHEAD_MAX; i++)
		ulpo_aead_free(par->aead[i]);
	free(par);
	ctx->rx_par = NULL;
	if (ctx->rx_shadow)
		explicit_bzero(ctx->rx_shadow, ctx->rx_dirty);
	free(ctx->rx_shadow);
	ctx->rx_shadow = NULL;
}

static void ahead_done(struct ulpo_job *job)
{
	struct tls_rx_par *par = job->priv;
	struct ulpo_sock *sk = par->sk;
	bool toe = par->toe;

	/* Release: the plaintext and result are visible to whoever sees the count drop.
	 * The waiter may reuse par as soon as it reads 0: only sk and toe, read above, are
	 * used after. */
	if (atomic_fetch_sub_explicit(&par->pending, 1, memory_order_acq_rel) == 1) {
		syscall(SYS_futex, &par->pending, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
		/* The device collects the batch and goes on reading, unless it is this very
		 * thread still submitting (inline engine): it looks itself then. */
		if (toe && sk->proto == &ulpo_tls_proto && !ulpo_on_device_submitting)
			tls_toe_kick(tls_ctx(sk), TOE_WORK_RX);
		ulpo_sock_put(sk);
	}
}

static int par_get(struct tls_context *ctx)
{
	struct tls_rx_par *par = ctx->rx_par;

	if (!ctx->rx_shadow) {
		ctx->rx_shadow = malloc(ctx->rx_cap);
		if (!ctx->rx_shadow)
			return -ENOMEM;
	}
	if (!par) {
		par = calloc(1, sizeof(*par));
		if (!par)
			return -ENOMEM;
		ctx->rx_par = par;
	}
	if (par->aead_gen != ctx->rx_key_gen) {
		/* Keys changed since these contexts were made: re-key lazily below. */
		for (int i = 0; i < RX_AHEAD_MAX; i++) {
			ulpo_aead_free(par->aead[i]);
			par->aead[i] = NULL;
		}
		par->aead_gen = ctx->rx_key_gen;
	}
	return 0;
}

static int par_key(struct tls_context *ctx, unsigned int i)
{
	struct tls_rx_par *par = ctx->rx_par;
	const struct tls_crypto *c = &ctx->rx;

	if (par->aead[i])
		return 0;
	return ulpo_aead_new(c->cd->alg, c->backend, c->info + c->cd->off_key,
			     c->cd->key_len, &par->aead[i]);
}

unsigned int tls_rx_ahead_start(struct tls_context *ctx, size_t off)
{
	/* The offloaded connection's device runs the batches (tls_toe.c), not the reader. */
	if (ulpo_engine_mode() != ULPO_ENGINE_ASYNC || ctx->toe_rx)
		return 0;
	return tls_rx_ahead_start_at(ctx, off, true);
}

unsigned int tls_rx_ahead_start_at(struct tls_context *ctx, size_t off, bool reader_first)
{
	struct tls_crypto seq;		/* the sequence numbers after the current record */
	struct tls_rx_par *par;
	unsigned int n = 0;

	if (ctx->rx_ndec + 1 >= RX_HELD_MASK_BITS || (ctx->rx_par && ctx->rx_par->n))
		return 0;
	if (rx_record_at(ctx, off) <= 0)
		return 0;	/* not one whole record there */
	if (par_get(ctx) < 0)
		return 0;
	par = ctx->rx_par;
	memcpy(&seq, &ctx->rx, sizeof(seq));
	/* The record before `off`, which the reading thread decrypts, takes the current
	 * number. */
	if (reader_first && tls_crypto_advance(&seq) < 0)
		goto out;
	while (n < RX_AHEAD_MAX && ctx->rx_ndec + 1 + n < RX_HELD_MASK_BITS) {
		const struct tls_crypto *c = &ctx->rx;
		long sz = rx_record_at(ctx, off);
		uint8_t *h = ctx->rxbuf + off, *body;
		struct ulpo_job *job = &par->job[n];
		size_t clen;

		if (sz <= 0 || h[0] != ULPO_TLS_RECORD_DATA)
			break;
		if (par_key(ctx, n) < 0)
			break;
		body = h + TLS_HEADER_SIZE + c->explicit_iv;
		clen = (size_t)sz - TLS_HEADER_SIZE - c->explicit_iv - TLS_TAG_SIZE;
		memset(job, 0, sizeof(*job));
		job->op = ULPO_JOB_OPEN;
		/* The reader runs jobs while it waits in finish; an offloaded
		 * connection's device never waits there. */
		job->flags = ctx->toe_rx ? 0 : ULPO_JOB_F_SUBMITTER_HELPS;
		job->aead = par->aead[n];
		tls_crypto_nonce(&seq, job->nonce);
		memcpy(job->nonce + c->cd->salt_len, h + TLS_HEADER_SIZE, c->explicit_iv);
		job->aadlen = (uint8_t)tls_make_aad(&seq, job->aad, h[0], clen,
						    (size_t)sz - TLS_HEADER_SIZE);
		par->src[n] = (struct iovec){ .iov_base = body, .iov_len = clen };
		par->dst[n] = (struct iovec){ .iov_base = ctx->rx_shadow + (body - ctx->rxbuf),
					      .iov_len = clen };
		job->src = &par->src[n];
		job->srccnt = 1;
		job->dst = &par->dst[n];
		job->dstcnt = 1;
		job->tag = body + clen;
		job->complete = ahead_done;
		job->priv = par;
		par->off[n++] = off;
		off += (size_t)sz;
		if (tls_crypto_advance(&seq) < 0)
			break;	/* the one after would wrap: the ordinary path reports it */
	}
	ulpo_on_device_submitting = true;
	if (n) {
		par->toe = ctx->toe_rx;
		par->sk = ctx->sk;
		par->fork_gen = ulpo_engine_fork_gen();
		atomic_fetch_add_explicit(&ctx->sk->refs, 1, memory_order_relaxed);
	}
	atomic_store_explicit(&par->pending, n, memory_order_relaxed);
	for (unsigned int i = 0; i < n; i++) {
		if (ctx->rx.dev->ops->submit(ctx->rx.dev, &par->job[i]) < 0) {
			/* Not queued: this one and the rest count as failed (the ordinary
			 * path decrypts them later). Whoever ends the batch drops its ref. */
			for (unsigned int j = i; j < n; j++)
				par->job[j].result = -EIO;
			if (atomic_fetch_sub(&par->pending, n - i) == n - i)
				ulpo_sock_put(ctx->sk);
			break;
		}
	}
out:
	ulpo_on_device_submitting = false;
	explicit_bzero(&seq, sizeof(seq));
	par->n = n;
	return n;
}

unsigned int tls_rx_ahead_inflight(const struct tls_context *ctx)
{
	return ctx->rx_par ? ctx->rx_par->n : 0;
}

bool tls_rx_ahead_complete(const struct tls_context *ctx)
{
	return ctx->rx_par && ctx->rx_par->n &&
	       !atomic_load_explicit(&ctx->rx_par->pending, memory_order_acquire);
}

bool tls_rx_ahead_busy(const struct tls_context *ctx)
{
	return ctx->rx_par && ctx->rx_par->n;
}

bool tls_rx_ahead_due(const struct tls_context *ctx, size_t off)
{
	return ctx->rx_par && ctx->rx_par->n && ctx->rx_par->off[0] == off;
}

void tls_rx_ahead_kick(struct tls_context *ctx)
{
	size_t next;
	long sz;

	if (!ctx->rxbuf || ctx->rx_stopped || ctx->rx_fatal || ctx->key_update_pending)
		return;
	/* The next record is left to the reading thread's next call, which decrypts it
	 * while the workers do the ones behind it. */
	next = rx_held_end(ctx);
	sz = rx_record_at(ctx, next);
	if (sz > 0)
		tls_rx_ahead_start(ctx, next + (size_t)sz);
}

/* The content type and length of a decrypted record's plaintext (1.3: strip padding). */
static bool ahead_inner(const struct tls_crypto *c, const uint8_t *pt, size_t clen,
			uint8_t hdr_type, uint8_t *ret_type, size_t *ret_plen)
{
	size_t plen = clen;
	uint8_t type = hdr_type;

	if (c->version == TLS_1_3_VERSION) {
		type = 0;
		while (plen && !(type = pt[plen - 1]))
			plen--;
		if (!plen)
			return false;
		plen--;
	}
	*ret_type = type;
	*ret_plen = plen;
	return true;
}

/* Wait for the batch in flight to end; false if its results are void (fork). */
static bool par_wait(struct tls_rx_par *par)
{
	unsigned int v;

	par->n = 0;
	if (par->fork_gen != ulpo_engine_fork_gen()) {
		/* A child of fork(): the jobs went with the parent's workers. The
		 * ciphertext is intact for the ordinary path; the batch's reference is this
		 * process's copy to drop (the caller holds one of its own). */
		atomic_store(&par->pending, 0);
		ulpo_sock_put(par->sk);
		return false;
	}
	/* Acquire pairs with the completions' release: results and plaintext are ours. */
	while ((v = atomic_load_explicit(&par->pending, memory_order_acquire)))
		if (!ulpo_engine_help())
			syscall(SYS_futex, &par->pending, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
	return true;
}

void tls_rx_ahead_reset(struct tls_context *ctx)
{
	struct tls_rx_par *par = ctx->rx_par;
	unsigned int k = (unsigned int)__builtin_popcountll(ctx->rx_ahead_new);
	size_t off = ctx->rx_head;

	if (!par)
		return;
	if (par->n)
		par_wait(par);
	/* Records decrypted ahead that no call has seen go back to being ciphertext
	 * waiting for the new key (they are the last k held; each was an application
	 * data record whose header was checked, so its header bytes are known). */
	for (size_t i = 0; i < ctx->rx_ndec; i++) {
		uint8_t *h = ctx->rxbuf + off;

		off += rec_wire_len(h);
		if (i >= ctx->rx_ndec - k) {
			h[0] = ULPO_TLS_RECORD_DATA;
			h[1] = 3;
			h[2] = 3;
		}
	}
	if (k) {
		uint64_t keep = (1ull << (ctx->rx_ndec - k)) - 1;

		ctx->rx_ndec -= k;
		ctx->rx_shadow_mask &= keep;
		ctx->rx_ahead_new = 0;
	}
	for (int i = 0; i < RX_AHEAD_MAX; i++) {	/* old key schedules go now */
		ulpo_aead_free(par->aead[i]);
		par->aead[i] = NULL;
	}
}

void tls_rx_ahead_finish(struct tls_context *ctx)
{
	struct tls_rx_par *par = ctx->rx_par;
	struct tls_crypto *c = &ctx->rx;
	unsigned int n;
	size_t next;

	if (!par || !par->n)
		return;
	n = par->n;
	if (!par_wait(par))
		return;
	if (ctx->rx_fatal || ctx->key_update_pending || ctx->rx_stopped)
		return;
	next = rx_held_end(ctx);
	for (unsigned int i = 0; i < n; i++) {
		const struct ulpo_job *job = &par->job[i];
		uint8_t type;
		size_t plen;

		/* Attach only the record that comes next in the stream, and only plaintext the
		 * ordinary path would hold the same way: data, authenticated. */
		if (par->off[i] != next || job->result < 0 ||
		    ctx->rx_ndec >= RX_HELD_MASK_BITS ||
		    !ahead_inner(c, job->dst->iov_base, job->dst->iov_len,
				 ctx->rxbuf[next], &type, &plen) ||
		    type != ULPO_TLS_RECORD_DATA)
			return;
		rx_hold_at(ctx, next, type, plen, true);
		ulpo_stat_add(ULPO_STAT_RX_AHEAD_RECORDS, 1);
		next += rec_wire_len(ctx->rxbuf + next);
		if (tls_crypto_advance(c) < 0) {
			ctx->rx_fatal = -EBADMSG;	/* the next record would reuse a nonce */
			return;
		}
	}
}
