/* tls_rx.c - RX record layer: a record parser over the TCP byte stream (the kernel's
 * tls_strp), decryption straight into the caller's buffer when the whole record fits,
 * in place in the receive buffer otherwise, and recvmsg with the kernel's rules for
 * record types, cmsgs, peek, waitall, low-water mark and errors (net/tls/tls_sw.c). */
#include <errno.h>
#include <fcntl.h>
#include <sys/time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ulpo/engine.h>

#include "core/stats.h"
#include "core/sys.h"
#include "engine/engine.h"
#include "tls/tls_rx.h"

#define TLS_HANDSHAKE_KEYUPDATE 24
#define MAX_DST_IOV 64

long tls_rx_msg_size(const struct tls_crypto *c, const uint8_t *p, size_t avail)
{
	size_t overhead = TLS_TAG_SIZE + c->explicit_iv;
	size_t len;

	/* The kernel waits for header and explicit IV before judging the header. */
	if (avail < (size_t)TLS_HEADER_SIZE + c->explicit_iv)
		return 0;
	len = (size_t)p[3] << 8 | p[4];
	if (len > (size_t)ULPO_TLS_MAX_PAYLOAD + overhead + c->tail)
		return -EMSGSIZE;
	if (len < overhead)
		return -EBADMSG;
	if (p[1] != 3 || p[2] != 3)
		return -EINVAL;
	return (long)(len + TLS_HEADER_SIZE);
}

void tls_rx_free(struct tls_context *ctx)
{
	tls_rx_ahead_finish(ctx);	/* nothing of ours may still be in the engine */
	/* Plaintext decrypted in place may sit anywhere in the buffer: wipe what was
	 * written, once, rather than every record as it is consumed. */
	if (ctx->rxbuf && ctx->rx_pt_in_buf)
		explicit_bzero(ctx->rxbuf, ctx->rx_dirty);
	free(ctx->rxbuf);
	ctx->rxbuf = NULL;
	ctx->rx_head = ctx->rx_tail = ctx->rx_ndec = ctx->rx_consumed = 0;
	tls_rx_ahead_free(ctx);
	ctx->rx_shadow_mask = ctx->rx_ahead_new = 0;
	ctx->rx_dirty = 0;
	ctx->rx_pt_in_buf = false;
}

/* A read found nothing (it returns EAGAIN having copied nothing, or it is about to
 * sleep): the connection is quiet. An idle connection keeps no
 * record buffers (a few hundred bytes of state instead of ~100 KiB): the receive buffer
 * goes if it holds nothing, and the TX side's spare records if no send is running. */
void tls_rx_quiet(struct tls_context *ctx)
{
	if (ctx->rx_head != ctx->rx_tail || ctx->rx_ndec)
		return;
	tls_rx_free(ctx);
	tls_crypto_unkey(&ctx->rx);
	if (tls_tx_trylock(ctx)) {	/* never waits: rx_lock is held */
		tls_tx_trim(ctx);
		tls_tx_unlock(ctx);
	}
}

/* Block until TCP has a byte for us, reading nothing (recv's own blocking: SO_RCVTIMEO,
 * signals and EOF behave as they would for the read that follows). */
static int rx_wait_readable(int fd)
{
	uint8_t b;
	ssize_t n = ulpo_sys_recv(fd, &b, 1, MSG_PEEK);

	return n < 0 ? -errno : 0;
}

/* Read what TCP has into the receive buffer, compacting first. >0 bytes, 0 at EOF. */
static ssize_t rx_fill(struct tls_context *ctx, bool nonblock)
{
	ssize_t n;

	tls_rx_ahead_finish(ctx);	/* the buffer may move: nothing may be in flight */
	if (!nonblock && (!ctx->rxbuf || (ctx->rx_head == ctx->rx_tail && !ctx->rx_ndec))) {
		/* About to block with nothing buffered: see first whether we would. */
		n = rx_fill(ctx, true);
		if (n != -EAGAIN)
			return n;
		tls_rx_quiet(ctx);
		n = rx_wait_readable(ctx->sk->fd);
		if (n < 0)
			return n;
		/* TCP has bytes now: take them without waiting for more (SO_RCVLOWAT
		 * counts ciphertext here, and the wait above was the one the caller gets). */
		nonblock = true;
	}
	if (!ctx->rxbuf) {
		size_t cap = ctx->toe_rx ? tls_toe_rx_cap(ctx) : RX_CAP;

		ctx->rxbuf = malloc(cap);
		if (!ctx->rxbuf)
			return -ENOMEM;
		ctx->rx_cap = cap;
	}
	if (ctx->rx_stopped) {
		/* Bytes after a bad header are never parsed again: drop them, but keep
		 * the records already decrypted (peeked) ahead of it. */
		ctx->rx_tail = rx_held_end(ctx);
	}
	if (ctx->rx_head && (ctx->rx_head == ctx->rx_tail || ctx->rx_cap - ctx->rx_tail < TLS_MAX_WIRE)) {
		memmove(ctx->rxbuf, ctx->rxbuf + ctx->rx_head, ctx->rx_tail - ctx->rx_head);
		if (ctx->rx_shadow_mask)	/* held plaintext decrypted ahead moves too */
			memmove(ctx->rx_shadow, ctx->rx_shadow + ctx->rx_head,
				ctx->rx_tail - ctx->rx_head);
		ctx->rx_tail -= ctx->rx_head;
		ctx->rx_head = 0;
	}
	if (ctx->rx_tail == ctx->rx_cap)
		return -ENOBUFS;	/* only when peeking past several held records */
	do
		n = ulpo_sys_recv(ctx->sk->fd, ctx->rxbuf + ctx->rx_tail, ctx->rx_cap - ctx->rx_tail,
			 nonblock ? MSG_DONTWAIT : 0);
	while (n < 0 && errno == EINTR && nonblock);
	if (n < 0)
		return -errno;
	ctx->rx_tail += (size_t)n;
	if (ctx->rx_tail > ctx->rx_dirty)
		ctx->rx_dirty = ctx->rx_tail;
	return n;
}

/* Take what TCP has without waiting: >0 bytes, 0 at EOF (rx_eof set), or a negative
 * errno. An error TCP reported was cleared there: it is kept for the next read. */
ssize_t tls_rx_fill_nowait(struct tls_context *ctx)
{
	ssize_t n = rx_fill(ctx, true);

	if (n == 0)
		ctx->rx_eof = true;
	else if (n < 0 && n != -EAGAIN && n != -ENOBUFS)
		ulpo_sock_set_error(ctx->sk, (int)n);
	return n;
}

/* Length of the whole record at offset `rel` from the head, 0 if incomplete, or a
 * negative errno for a bad header. */
static long rx_whole(struct tls_context *ctx, size_t rel)
{
	return rx_record_at(ctx, ctx->rx_head + rel);
}

bool tls_rx_ready(struct tls_context *ctx, bool fill)
{
	long sz;

	if (ctx->key_update_pending)
		return false;	/* even with held data, as the kernel's tls_sk_poll */
	if (ctx->rx_ndec || ctx->rx_fatal || atomic_load(&ctx->sk->err))
		return true;
	/* A whole record not decrypted yet: on an offloaded connection the device is on it
	 * and a read waits for it. */
	sz = ctx->rxbuf && !ctx->rx_stopped ? rx_whole(ctx, 0) : 0;
	if (sz != 0)
		return true;
	if (fill && !ctx->toe_rx) {
		ssize_t n = tls_rx_fill_nowait(ctx);

		if (n <= 0)
			return n != -EAGAIN;
		return rx_whole(ctx, 0) != 0;
	}
	return ctx->rx_eof;
}

/* The kernel's put_cmsg for TLS_GET_RECORD_TYPE: truncation sets MSG_CTRUNC. */
static int put_record_type(struct msghdr *msg, size_t *cm_used, uint8_t type)
{
	size_t room = msg->msg_controllen - *cm_used, cmlen = CMSG_LEN(1);
	struct cmsghdr h = { .cmsg_level = SOL_TLS, .cmsg_type = TLS_GET_RECORD_TYPE };
	uint8_t *p;

	if (!msg->msg_control || room < sizeof(struct cmsghdr)) {
		msg->msg_flags |= MSG_CTRUNC;
		return 0;
	}
	p = (uint8_t *)msg->msg_control + *cm_used;
	if (room < cmlen) {
		msg->msg_flags |= MSG_CTRUNC;
		cmlen = room;
	}
	h.cmsg_len = cmlen;
	memcpy(p, &h, sizeof(h));
	if (cmlen > sizeof(h))
		memcpy(CMSG_DATA((struct cmsghdr *)p), &type, cmlen - sizeof(h));
	*cm_used += CMSG_SPACE(1) < room ? CMSG_SPACE(1) : room;
	return 0;
}

struct dst_iter {
	const struct iovec *iov;
	size_t cnt, idx, off, left;
};

static void dst_init(struct dst_iter *d, const struct iovec *iov, size_t cnt)
{
	d->iov = iov;
	d->cnt = cnt;
	d->idx = d->off = d->left = 0;
	for (size_t i = 0; i < cnt; i++)
		d->left += iov[i].iov_len;
}

/* Describe the next `len` bytes of destination as iovecs without consuming them. */
static int dst_peek(const struct dst_iter *d, size_t len, struct iovec *out, int max)
{
	size_t idx = d->idx, off = d->off;
	int n = 0;

	while (len && idx < d->cnt && n < max) {
		size_t take = d->iov[idx].iov_len - off;

		if (take > len)
			take = len;
		if (take) {
			out[n].iov_base = (uint8_t *)d->iov[idx].iov_base + off;
			out[n++].iov_len = take;
			len -= take;
		}
		idx++;
		off = 0;
	}
	return len ? -1 : n;
}

static void dst_advance(struct dst_iter *d, size_t len)
{
	d->left -= len;
	while (len) {
		size_t take = d->iov[d->idx].iov_len - d->off;

		if (take > len)
			take = len;
		d->off += take;
		len -= take;
		if (d->off == d->iov[d->idx].iov_len) {
			d->idx++;
			d->off = 0;
		}
	}
	while (d->idx < d->cnt && d->iov[d->idx].iov_len == 0)
		d->idx++;
}

static void dst_copy(struct dst_iter *d, const uint8_t *src, size_t len)
{
	struct iovec v[MAX_DST_IOV];
	size_t done = 0;

	while (done < len) {
		size_t chunk = len - done;
		int n = dst_peek(d, chunk, v, 1);

		if (n < 0) {	/* fewer bytes left in this iovec: take what it has */
			chunk = d->iov[d->idx].iov_len - d->off;
			dst_peek(d, chunk, v, 1);
		}
		memcpy(v[0].iov_base, src + done, v[0].iov_len);
		done += v[0].iov_len;
		dst_advance(d, v[0].iov_len);
	}
}

/* Read back `len` bytes that were placed at the destination (a record decrypted into
 * the caller's buffer that cannot be delivered after all). */
static void dst_read(const struct dst_iter *d, uint8_t *to, size_t len)
{
	struct iovec v[MAX_DST_IOV];
	int n = dst_peek(d, len, v, MAX_DST_IOV);

	for (int i = 0; i < n; i++) {
		memcpy(to, v[i].iov_base, v[i].iov_len);
		to += v[i].iov_len;
	}
}

/* Byte `i` of a plaintext that lies in the caller's iovecs (then the scratch byte). */
static uint8_t dst_byte(const struct dst_iter *d, size_t i)
{
	size_t idx = d->idx, off = d->off;

	for (;;) {
		size_t avail = d->iov[idx].iov_len - off;

		if (i < avail)
			return ((uint8_t *)d->iov[idx].iov_base)[off + i];
		i -= avail;
		idx++;
		off = 0;
	}
}

/* Decrypt the whole record at the head+rel: into the caller's buffer (zc) or in place.
 * Returns the plaintext length and the content type, or a negative errno. */
static long rx_decrypt(struct tls_context *ctx, size_t rel, size_t wire, struct dst_iter *d,
		       bool zc, uint8_t *ret_type)
{
	struct tls_crypto *c = &ctx->rx;
	uint8_t *h = ctx->rxbuf + ctx->rx_head + rel;
	uint8_t *body = h + TLS_HEADER_SIZE + c->explicit_iv;
	size_t clen = wire - TLS_HEADER_SIZE - c->explicit_iv - TLS_TAG_SIZE;
	struct iovec src = { .iov_base = body, .iov_len = clen };
	struct iovec dst[MAX_DST_IOV + 1];
	struct ulpo_job job = { .op = ULPO_JOB_OPEN };
	uint8_t scratch = 0, type = h[0];
	size_t plen = clen;
	int n = 1, r = tls_crypto_key(c);

	if (r < 0)
		return r;	/* no memory to re-key after a quiet spell: not the record's fault */
	if (zc) {
		n = dst_peek(d, clen - c->tail, dst, MAX_DST_IOV);
		if (n < 0)
			zc = false;
		else if (c->tail) {
			dst[n].iov_base = &scratch;
			dst[n++].iov_len = 1;
		}
	}
	if (!zc) {
		dst[0] = src;
		n = 1;
		ctx->rx_pt_in_buf = true;
	}
	tls_crypto_nonce(c, job.nonce);
	/* TLS 1.2 GCM/CCM: the sender's explicit nonce, whatever it chose. */
	memcpy(job.nonce + c->cd->salt_len, h + TLS_HEADER_SIZE, c->explicit_iv);
	job.aadlen = (uint8_t)tls_make_aad(c, job.aad, type, clen, wire - TLS_HEADER_SIZE);
	job.src = &src;
	job.srccnt = 1;
	job.dst = dst;
	job.dstcnt = n;
	job.tag = body + clen;
	r = tls_job_run(c, &job);
	if (r < 0) {
		ulpo_stat_add(ULPO_STAT_TLS_DECRYPT_ERROR, 1);
		ctx->rx_fatal_auth = true;
		return -EBADMSG;
	}
	if (tls_crypto_advance(c) < 0)
		ctx->rx_fatal = -EBADMSG;	/* the next record would reuse a nonce */
	if (c->version == TLS_1_3_VERSION) {
		if (zc && scratch != ULPO_TLS_RECORD_DATA) {
			/* The kernel decrypts such a record again into its own buffer;
			 * here it is moved instead (see the caller). */
			ulpo_stat_add(ULPO_STAT_TLS_DECRYPT_RETRY, 1);
			if (!scratch)
				ulpo_stat_add(ULPO_STAT_TLS_RX_NO_PAD_VIOLATION, 1);
		}
		/* Inner plaintext: content, type byte, zero padding. */
		if (zc) {
			type = scratch;
			plen = clen - 1;
			while (!type && plen)
				type = dst_byte(d, --plen);
		} else {
			plen = clen;
			type = 0;
			while (plen && !(type = body[plen - 1]))
				plen--;
			if (plen)
				plen--;
		}
		if (!type)
			return -EBADMSG;	/* all padding, no content type */
	} else if (!type) {
		return -EBADMSG;		/* record type 0 */
	}
	/* A KeyUpdate (checked on any version, as the kernel does): no new record can be
	 * read until the next TLS_RX key. */
	if (type == ULPO_TLS_RECORD_HANDSHAKE && plen >= 1 &&
	    (zc ? dst_byte(d, 0) : body[0]) == TLS_HANDSHAKE_KEYUPDATE) {
		ctx->key_update_pending = true;
		ulpo_stat_add(ULPO_STAT_TLS_RX_REKEY_RECEIVED, 1);
	}
	*ret_type = type;
	return (long)plen;
}

/* Mark the record at head+rel as held plaintext (in place, at its body). */
static void rx_hold(struct tls_context *ctx, size_t rel, uint8_t type, size_t plen)
{
	rx_hold_at(ctx, ctx->rx_head + rel, type, plen, false);
}

static void rx_consume_head(struct tls_context *ctx)
{
	ctx->rx_head += rec_wire_len(ctx->rxbuf + ctx->rx_head);
	ctx->rx_ndec--;
	ctx->rx_shadow_mask >>= 1;
	ctx->rx_ahead_new >>= 1;
	ctx->rx_consumed = 0;
	ulpo_stat_add(ULPO_STAT_RX_RECORDS, 1);
}

/* At the end of a read on the async engine: take what TCP has (without waiting) and give
 * the whole records to the workers, so they decrypt while the caller works on what it got
 * and the next reads find plaintext. Only buffering moves earlier: what each read returns
 * is what it would have been. */
static void rx_read_ahead(struct tls_context *ctx, bool caller_full)
{
	if (ulpo_engine_mode() != ULPO_ENGINE_ASYNC || !ctx->rxbuf || tls_rx_ahead_busy(ctx) ||
	    ctx->rx_stopped || ctx->rx_eof || ctx->rx_fatal || ctx->key_update_pending)
		return;
	/* A read that still had room has just asked TCP already. */
	if (caller_full && (ctx->rx_cap - ctx->rx_tail >= TLS_MAX_WIRE || ctx->rx_head))
		tls_rx_fill_nowait(ctx);
	tls_rx_ahead_kick(ctx);
}

/* SO_RCVTIMEO, for a read that waits for the device: nanoseconds, or -1 for none. */
static long long rcvtimeo_ns(int fd)
{
	struct timeval tv = { 0 };
	socklen_t len = sizeof(tv);

	if (ulpo_sys_getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) ||
	    (!tv.tv_sec && !tv.tv_usec))
		return -1;
	return (long long)tv.tv_sec * 1000000000LL + (long long)tv.tv_usec * 1000;
}

static bool rx_nonblock(int fd, int flags)
{
	int fl;

	if (flags & MSG_DONTWAIT)
		return true;
	fl = ulpo_sys_fcntl(fd, F_GETFL, 0);
	return fl >= 0 && (fl & O_NONBLOCK);
}

/* An offloaded connection's reader found nothing held at its position. Either the device
 * is reading or decrypting (wait for it: 1, look again), or what comes next is the
 * reader's own to handle (0: the software path's steps: an error to report, a record the
 * device left, EOF), or the call ends here (-1, *err set; 0 for a read that has enough).
 * The reader never reads TCP or decrypts an ordinary record itself. */
static int toe_reader_wait(struct tls_context *ctx, size_t rel, int flags, bool enough,
			   long *err)
{
	unsigned int gen;
	long long ns = -1;
	bool sleeps = false;	/* waits for the peer, as recv would: a signal ends it */
	long sz;
	int r;

	if (ctx->rx_fatal || ctx->key_update_pending || ctx->rx_stopped)
		return 0;
	sz = ctx->rxbuf ? rx_whole(ctx, rel) : 0;
	/* A whole record the device will not take on (it stopped there, for room, or at an
	 * error TCP reported, which comes after the data): the reader's own step. */
	if (sz < 0 || (sz > 0 && (ctx->toe_rx_stuck || ctx->toe_rx_full ||
				  atomic_load(&ctx->sk->err))))
		return 0;
	if (sz == 0) {
		if (ctx->rx_eof && !enough)
			return 0;
		if (enough) {
			*err = 0;
			return -1;
		}
		if (atomic_load(&ctx->sk->err))
			return 0;
		/* Peeking past all the device may hold: the reader reads TCP and decrypts
		 * the rest itself, so MSG_WAITALL waits for it, as the kernel's. */
		if (ctx->toe_rx_full && ctx->rx_ndec)
			return 0;
		if (ctx->toe_rx_full)
			tls_toe_kick(ctx, TOE_WORK_RX);	/* room since it stopped */
		if (rx_nonblock(ctx->sk->fd, flags)) {
			uint8_t b;

			/* EAGAIN only if nothing is on its way: bytes (or the FIN) TCP has
			 * that the device has not read yet are waited for. */
			if (ulpo_sys_recv(ctx->sk->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
			    errno == EAGAIN) {
				tls_rx_quiet(ctx);	/* nothing anywhere: give buffers back */
				*err = -EAGAIN;
				return -1;
			}
			tls_toe_kick(ctx, TOE_WORK_RX);
		} else {
			ns = rcvtimeo_ns(ctx->sk->fd);
			sleeps = true;
			tls_rx_quiet(ctx);	/* about to sleep with nothing held */
			tls_toe_rx_watch(ctx);
		}
	}
	gen = atomic_load(&ctx->toe_gen);
	/* Whole records the device has not started on: make sure it runs. */
	if (sz > 0 && !tls_rx_ahead_busy(ctx))
		tls_toe_kick(ctx, TOE_WORK_RX);
	tls_rx_unlock(ctx);
	r = tls_toe_wait(ctx, gen, ns);
	tls_rx_lock(ctx);
	/* Waiting for the device's work on bytes that are here is not a wait a signal
	 * interrupts (the kernel would be decrypting them in this call): look again. */
	if ((r == -EINTR && sleeps) || r == -ETIMEDOUT) {
		*err = r == -EINTR ? -EINTR : -EAGAIN;
		return -1;
	}
	return 1;
}

/* recvmsg, and splice's read (one_record): at most one record's plaintext, and a
 * control record is EINVAL and stays first in line, as tls_sw_splice_read has it. */
static ssize_t rx_recvmsg(struct ulpo_sock *sk, struct msghdr *msg, int flags, bool one_record)
{
	struct tls_context *ctx = tls_ctx(sk);
	struct tls_crypto *c = &ctx->rx;
	bool peek = flags & MSG_PEEK;
	size_t copied = 0, target, rel = 0, recidx = 0, cm_used = 0;
	struct dst_iter d;
	uint8_t control = 0;
	long err = 0;
	/* A failed call leaves the caller's msghdr as it was, as the syscall does. */
	int saved_flags = msg->msg_flags;
	size_t saved_controllen = msg->msg_controllen, held_at_start, want;
	uint64_t ahead_new_at_start;

	dst_init(&d, msg->msg_iov, msg->msg_iovlen);
	want = d.left;
	msg->msg_flags = 0;
	tls_rx_lock(ctx);
	held_at_start = ctx->rx_ndec;
	ahead_new_at_start = ctx->rx_ahead_new;
	if (flags & MSG_WAITALL)
		target = d.left;
	else {
		target = (size_t)ctx->rcvlowat;
		if (target > d.left)
			target = d.left;
	}
	if (!target)
		target = 1;
	while (d.left) {
		const uint8_t *pt;
		uint8_t *h;
		size_t wire, plen, avail, off, n;
		uint8_t type;

		if (recidx >= ctx->rx_ndec && ctx->toe_rx) {
			int w = toe_reader_wait(ctx, rel, flags, copied >= target, &err);

			if (w > 0)
				continue;
			if (w < 0)
				break;
		}
		/* Next in line is the first record the workers have: their results join
		 * the held list now (a record before them is decrypted meanwhile). */
		if (recidx >= ctx->rx_ndec && tls_rx_ahead_due(ctx, ctx->rx_head + rel))
			tls_rx_ahead_finish(ctx);
		if (recidx >= ctx->rx_ndec) {
			long sz;
			bool zc;

			if (ctx->rx_fatal) {
				/* The bad record is still first in line. */
				if (ctx->rx_fatal_auth)
					ulpo_stat_add(ULPO_STAT_TLS_DECRYPT_ERROR, 1);
				err = ctx->rx_fatal;
				break;
			}
			if (ctx->key_update_pending) {
				err = -EKEYEXPIRED;
				break;
			}
			sz = ctx->rxbuf && !ctx->rx_stopped ? rx_whole(ctx, rel) : 0;
			if (sz < 0) {
				/* A bad header stops the parser: the error is reported once
				 * (through sk_err), then the stream reads as if empty. */
				ctx->rx_stopped = true;
				ulpo_sock_set_error(sk, (int)sz);
				continue;
			}
			if (sz == 0) {
				ssize_t got;

				if (ctx->rx_eof)
					break;
				if (copied >= target) {
					if (ctx->rx_stopped)
						break;	/* nothing more is parsed */
					/* As the kernel, go on while whole records are ready:
					 * take what TCP has, without waiting. */
					if (tls_rx_fill_nowait(ctx) > 0)
						continue;
					break;
				}
				err = ulpo_sock_error(sk);
				if (err)
					break;
				got = rx_fill(ctx, (flags & MSG_DONTWAIT) != 0);
				if (got == -ENOBUFS) {
					err = -EAGAIN;
					break;
				}
				if (got < 0) {
					err = got;
					break;
				}
				if (got == 0)
					ctx->rx_eof = true;
				continue;
			}
			wire = (size_t)sz;
			h = ctx->rxbuf + ctx->rx_head + rel;
			/* TLS 1.2 names the type in clear: a record of another type than
			 * this call's is left for the next call, undecrypted. */
			if (c->version != TLS_1_3_VERSION && control && h[0] != control)
				break;
			plen = wire - TLS_HEADER_SIZE - c->explicit_iv - TLS_TAG_SIZE - c->tail;
			/* Decrypt straight into the caller's buffer when the whole record
			 * fits; TLS 1.3 only when the peer promised no padding. */
			zc = !peek && recidx == 0 && plen <= d.left &&
			     h[0] == ULPO_TLS_RECORD_DATA &&
			     (c->version != TLS_1_3_VERSION || ctx->rx_no_pad) &&
			     (!control || control == ULPO_TLS_RECORD_DATA);
			/* The records queued behind this one are decrypted on the engine's
			 * workers meanwhile (async engine; not when peeking). */
			if (!peek)
				tls_rx_ahead_start(ctx, ctx->rx_head + rel + wire);
			err = rx_decrypt(ctx, rel, wire, &d, zc, &type);
			if (err == -ENOMEM) {
				if (copied)
					err = 0;
				break;
			}
			if (err < 0) {
				/* The record stays first: every later read fails the same way. */
				ulpo_sock_set_error(sk, (int)err);
				ctx->rx_fatal = (int)err;
				if (copied)
					err = 0;
				break;
			}
			plen = (size_t)err;
			err = 0;
			if (ctx->toe_rx_stuck) {
				/* The record the device left is done: the rest is its own, now
				 * (this call may go on to wait for it: an empty record). */
				ctx->toe_rx_stuck = false;
				tls_toe_kick(ctx, TOE_WORK_RX);
			}
			if (zc) {
				bool ok = true;

				if (one_record && type != ULPO_TLS_RECORD_DATA) {
					ok = false;
				} else if (!control) {
					control = type;
					put_record_type(msg, &cm_used, type);
					ok = type == ULPO_TLS_RECORD_DATA ||
					     !(msg->msg_flags & MSG_CTRUNC);
				} else if (control != type) {
					ok = false;
				}
				if (!ok) {
					/* Not deliverable now: keep it, decrypted, in the
					 * receive buffer (the kernel's decrypt retry). */
					dst_read(&d, h + TLS_HEADER_SIZE + c->explicit_iv, plen);
					ctx->rx_pt_in_buf = true;
					rx_hold(ctx, rel, type, plen);
					if (one_record && type != ULPO_TLS_RECORD_DATA)
						err = -EINVAL;
					else if (control == type)
						err = -EIO;
					break;
				}
				dst_advance(&d, plen);
				copied += plen;
				ctx->rx_head += wire;	/* ciphertext only: nothing to wipe */
				msg->msg_flags |= MSG_EOR;
				ulpo_stat_add(ULPO_STAT_RX_RECORDS, 1);
				ulpo_stat_add(ULPO_STAT_RX_ZEROCOPY_RECORDS, 1);
				ulpo_stat_add(ULPO_STAT_RX_BYTES, (int64_t)plen);
				if (type != ULPO_TLS_RECORD_DATA || one_record)
					break;
				continue;
			}
			rx_hold(ctx, rel, type, plen);
		}
		/* A held (decrypted) record. */
		h = ctx->rxbuf + ctx->rx_head + rel;
		type = h[0];
		plen = rec_pt_len(h);
		wire = rec_wire_len(h);
		off = recidx == 0 ? ctx->rx_consumed : 0;
		pt = h + TLS_HEADER_SIZE + c->explicit_iv;
		if (recidx < RX_HELD_MASK_BITS) {
			if (ctx->rx_shadow_mask >> recidx & 1)
				pt = ctx->rx_shadow + (pt - ctx->rxbuf);
			ctx->rx_ahead_new &= ~(1ull << recidx);
		}
		avail = plen - off;
		if (one_record && type != ULPO_TLS_RECORD_DATA) {
			err = -EINVAL;
			break;
		}
		if (!control) {
			control = type;
			put_record_type(msg, &cm_used, type);
			if (type != ULPO_TLS_RECORD_DATA && (msg->msg_flags & MSG_CTRUNC)) {
				err = -EIO;
				break;
			}
		} else if (control != type) {
			break;
		}
		n = avail < d.left ? avail : d.left;
		dst_copy(&d, pt + off, n);
		copied += n;
		if (!peek) {
			ctx->rx_consumed += n;
			ulpo_stat_add(ULPO_STAT_RX_BYTES, (int64_t)n);
			if (ctx->rx_consumed == plen) {
				rx_consume_head(ctx);
				msg->msg_flags |= MSG_EOR;
			}
		} else if (n == avail) {
			/* The kernel marks a record peeked whole from its rx_list (held from an
			 * earlier call), not one decrypted by this peek; a record decrypted
			 * ahead counts as decrypted by the first call that looks at it. */
			if (recidx < held_at_start &&
			    !(recidx < RX_HELD_MASK_BITS && ahead_new_at_start >> recidx & 1))
				msg->msg_flags |= MSG_EOR;
			rel += wire;
			recidx++;
		}
		if (type != ULPO_TLS_RECORD_DATA || one_record)
			break;
	}
	if (ctx->toe_rx) {
		/* tu_rcvd: plaintext consumed makes room the device may be waiting for. */
		if (!peek && copied && ctx->toe_rx_full)
			tls_toe_kick(ctx, TOE_WORK_RX);
	} else if (err == -EAGAIN && !copied)
		tls_rx_quiet(ctx);
	else if (!peek && want)
		rx_read_ahead(ctx, d.left == 0);
	if (cm_used || msg->msg_control)
		msg->msg_controllen = cm_used;
	if (copied && err < 0 && err != -EAGAIN && err != -EIO && err != -EKEYEXPIRED &&
	    !ctx->rx_fatal)
		ulpo_sock_set_error(sk, (int)err);	/* for the next read */
	tls_rx_unlock(ctx);
	if (copied || err >= 0) {
		msg->msg_namelen = 0;
		return (ssize_t)copied;
	}
	msg->msg_flags = saved_flags;
	msg->msg_controllen = saved_controllen;
	return err;
}

ssize_t tls_sw_recvmsg(struct ulpo_sock *sk, struct msghdr *msg, int flags)
{
	return rx_recvmsg(sk, msg, flags, false);
}

ssize_t tls_sw_splice_read(struct ulpo_sock *sk, void *buf, size_t len, int flags)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	return rx_recvmsg(sk, &msg, flags, true);
}
