/* tls_toe.c - whole-connection offload, the TOE model of the seed's toedev: a device that
 * takes a connection does all of its protocol work on its own threads, and the
 * application's calls only copy into and out of buffers that live in ulpo.
 *
 *   seed (tcp_offload.h)   ulpo
 *   tod_connect/attach     tls_toe_attach (TCP_ULP install: policy, ops->toe_add)
 *   tu_send                tls_toe_kick(TOE_WORK_TX): records closed by the application
 *                          are sealed on the engine's workers and pushed by the device
 *   tu_rcvd                tls_toe_kick(TOE_WORK_RX): the reader consumed, room again
 *   (rx path)              tls_toe_rx_step: the device reads TCP and decrypts ahead
 *   tu_disconnect          tls_toe_shutdown: FIN once the queue is on the wire
 *   tu_reset               tls_toe_release with SO_LINGER 0: queue dropped, RST
 *   tu_detach              tls_toe_release: close() returns, the device finishes the
 *                          queue on a private fd, then closes it (the FIN)
 *   tod_listen_start/stop  ulpo_device_listen (src/core/device.c)
 *
 * The record layers are the software path's own (tls_tx.c, tls_txq.c, tls_rx.c,
 * tls_rx_ahead.c): what differs is which thread runs each part, so the bytes, record
 * boundaries and errnos are the same. Anything unusual on receive (a control record, a
 * record that fails, a KeyUpdate, a bad header) is left to the reader, which takes the
 * software path's steps for it and gives the kernel's answer. */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <ulpo/ulpo.h>

#include "core/stats.h"
#include "core/sys.h"
#include "engine/engine.h"
#include "tls/tls_rx.h"

/* ---- policy: who carries the connection ---- */

static void dev_conns(struct ulpo_device *dev, int d)
{
	int slot = __atomic_load_n(&dev->slot, __ATOMIC_ACQUIRE);

	atomic_fetch_add(&dev->conns, (unsigned int)d);
	if (slot > 0)
		atomic_fetch_add(&ulpo_stats->ctl.dev[slot - 1].conns, (uint32_t)d);
}

/* The queue's bounds: the device's send buffer, or what the application set with
 * SO_SNDBUF (the kernel's doubled value, at least 64 KiB so records still flow). */
static void toe_bounds(struct tls_context *ctx, size_t bytes)
{
	ctx->txq_max_bytes = bytes;
	ctx->txq_max_recs = (unsigned int)(bytes / 8192) + 16;
}

void tls_toe_attach(struct tls_context *ctx)
{
	struct ulpo_sock *sk = ctx->sk;
	struct ulpo_device *dev;
	uint32_t en;
	uint8_t allow = 0;

	ctx->toe_fd = -1;
	atomic_init(&ctx->toe_wake_fd, -1);
	if (sk->no_offload || !ulpo_offload_get()) {
		ulpo_stat_add(ULPO_STAT_TOE_OPT_OUT, 1);
		return;
	}
	dev = ulpo_device_toe();
	en = ulpo_device_enabled(dev);
	if (en & ULPO_DEV_CAP_TOE) {
		if (en & ULPO_DEV_CAP_TLS_TX)
			allow |= ULPO_PATH_TOE_TX;
		if (en & ULPO_DEV_CAP_TLS_RX)
			allow |= ULPO_PATH_TOE_RX;
	}
	if (!allow) {
		/* The device has whole connections (or both directions) switched off. */
		ulpo_stat_add(ULPO_STAT_TOE_OPT_OUT, 1);
		return;
	}
	if ((dev->limits.max_conns && atomic_load(&dev->conns) >= dev->limits.max_conns) ||
	    (dev->ops->toe_add && dev->ops->toe_add(dev, sk) < 0)) {
		ulpo_stat_add(ULPO_STAT_TOE_REFUSED, 1);
		return;
	}
	dev_conns(dev, 1);
	ctx->toe_dev = dev;
	ctx->toe_allow = allow;
}

void tls_toe_key(struct tls_context *ctx, bool tx)
{
	uint8_t bit = tx ? ULPO_PATH_TOE_TX : ULPO_PATH_TOE_RX;

	if (!ctx->toe_dev || !(ctx->toe_allow & bit) || tls_shared(ctx))
		return;
	if (tx) {
		/* The socket's send buffer is the device's. */
		toe_bounds(ctx, ctx->toe_sndbuf ? ctx->toe_sndbuf
			   : ctx->toe_dev->limits.sndbuf ? ctx->toe_dev->limits.sndbuf
			   : ctx->txq_max_bytes);
		ctx->toe_tx = true;
	} else {
		ctx->toe_rx = true;
	}
	ctx->sk->toe_path |= bit;
	ulpo_stat_add(tx ? ULPO_STAT_TOE_TX : ULPO_STAT_TOE_RX, 1);
}

void tls_toe_sndbuf(struct tls_context *ctx)
{
	int v = 0;
	socklen_t len = sizeof(v);

	if (ulpo_sys_getsockopt(ctx->sk->fd, SOL_SOCKET, SO_SNDBUF, &v, &len) || v <= 0)
		return;
	ctx->toe_sndbuf = (size_t)v < 65536 ? 65536 : (size_t)v;
	if (ctx->toe_tx) {
		tls_tx_lock(ctx);
		toe_bounds(ctx, ctx->toe_sndbuf);
		tls_tx_unlock(ctx);
	}
}

/* Bytes the queue may hold now: its bound, or TOE_PRESSURE_BYTES while the device's
 * connections together queue more than its limits.mem (the kernel holds every socket to
 * tcp_wmem[0] under tcp_mem pressure the same way). */
#define TOE_PRESSURE_BYTES (64u << 10)

size_t tls_toe_bound(const struct tls_context *ctx)
{
	const struct ulpo_device *dev = ctx->toe_dev;

	if (!ctx->toe_tx || !dev || !dev->limits.mem ||
	    atomic_load_explicit(&dev->queued, memory_order_relaxed) <= dev->limits.mem ||
	    ctx->txq_max_bytes < TOE_PRESSURE_BYTES)
		return ctx->txq_max_bytes;
	return TOE_PRESSURE_BYTES;
}

/* The queue's size into the device's total (TX lock held). */
void tls_toe_charge(struct tls_context *ctx)
{
	if (!ctx->toe_dev || ctx->txq_bytes == ctx->toe_charged)
		return;
	atomic_fetch_add_explicit(&ctx->toe_dev->queued,
				  (uint64_t)ctx->txq_bytes - (uint64_t)ctx->toe_charged,
				  memory_order_relaxed);
	ctx->toe_charged = ctx->txq_bytes;
}

/* The receive buffer of an offloaded connection: the device's rcvbuf in whole records,
 * between the software path's and the most the fork share maps. */
size_t tls_toe_rx_cap(const struct tls_context *ctx)
{
	size_t n = ctx->toe_dev ? (ctx->toe_dev->limits.rcvbuf + TLS_MAX_WIRE - 1) / TLS_MAX_WIRE : 0;

	n = n < RX_CAP / TLS_MAX_WIRE ? RX_CAP / TLS_MAX_WIRE : n;
	n = n > RX_CAP_TOE / TLS_MAX_WIRE ? RX_CAP_TOE / TLS_MAX_WIRE : n;
	return n * TLS_MAX_WIRE;
}

void tls_toe_detach_dev(struct tls_context *ctx)
{
	if (!ctx->toe_dev)
		return;
	atomic_fetch_sub_explicit(&ctx->toe_dev->queued, (uint64_t)ctx->toe_charged,
				  memory_order_relaxed);
	ctx->toe_charged = 0;
	if (ctx->toe_dev->ops->toe_del)
		ctx->toe_dev->ops->toe_del(ctx->toe_dev, ctx->sk);
	dev_conns(ctx->toe_dev, -1);
	ctx->toe_dev = NULL;
}

/* ---- doorbell, progress, waiting ---- */

void tls_toe_kick(struct tls_context *ctx, uint32_t work)
{
	/* Rung once until the thread takes the work: later kicks ride along. */
	if (atomic_fetch_or(&ctx->work_pending, work) == 0 && tls_work_doorbell(ctx->sk) < 0)
		atomic_fetch_and(&ctx->work_pending, ~work);
}

void tls_toe_rx_watch(struct tls_context *ctx)
{
	/* Where the device stops for good (until the reader acts) there is nothing to
	 * watch; else armed, or the doorbell rung: its step ends armed unless it stopped
	 * for something the reader then sees. (RX lock held.) */
	if (ctx->toe_rx_stuck || ctx->rx_stopped || ctx->rx_fatal || ctx->key_update_pending ||
	    ctx->rx_eof)
		return;
	if (!(atomic_load(&ctx->work_ev) & EPOLLIN))
		tls_toe_kick(ctx, TOE_WORK_RX);
}

/* Blocked calls (seq_cst with the waiter's count: either it sees the new generation, or
 * we see it waiting). Alone, for bytes read from TCP that make no whole record yet:
 * nothing a poller waits for, but a non-blocking reader that saw them in TCP waits for
 * the device to take them, and then answers EAGAIN (a partial record is not readable, as
 * in the kernel). */
static void toe_wake_callers(struct tls_context *ctx)
{
	atomic_fetch_add(&ctx->toe_gen, 1);
	if (atomic_load(&ctx->toe_waiters))
		syscall(SYS_futex, &ctx->toe_gen, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

void tls_toe_wake(struct tls_context *ctx)
{
	uint64_t one = 1;
	int fd;

	toe_wake_callers(ctx);
	/* The shim's epoll compares ready_gen. A poller stores its eventfd (seq_cst) before
	 * it looks at readiness: either it sees this progress, or we see the eventfd. */
	atomic_fetch_add(&ctx->sk->ready_gen, 1);
	fd = atomic_load(&ctx->toe_wake_fd);
	if (fd >= 0)
		(void)!ulpo_sys_write(fd, &one, sizeof(one));
}

int tls_toe_wait(struct tls_context *ctx, unsigned int gen, long long ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL };
	long r;

	atomic_fetch_add(&ctx->toe_waiters, 1);
	r = syscall(SYS_futex, &ctx->toe_gen, FUTEX_WAIT_PRIVATE, gen, ns < 0 ? NULL : &ts,
		    NULL, 0);
	atomic_fetch_sub(&ctx->toe_waiters, 1);
	if (r < 0 && errno == EINTR)
		return -EINTR;
	if (r < 0 && errno == ETIMEDOUT)
		return -ETIMEDOUT;
	return 0;
}

/* poll(): each thread that polls offloaded sockets has an eventfd (from the pool in
 * api.c, never closed) that the device writes when it makes progress on a socket the
 * thread looked at; it goes back to the pool when the thread exits. */
static pthread_key_t pfd_key;
static pthread_once_t pfd_once = PTHREAD_ONCE_INIT;
static __thread int pfd_mine = -1;

static void pfd_give_back(void *arg)
{
	ulpo_wakefd_put((int)(intptr_t)arg - 1);
}

static void pfd_init(void)
{
	pthread_key_create(&pfd_key, pfd_give_back);
}

int tls_toe_poll_fd(void)
{
	if (pfd_mine >= 0)
		return pfd_mine;
	pthread_once(&pfd_once, pfd_init);
	pfd_mine = ulpo_wakefd_get();
	if (pfd_mine >= 0)
		pthread_setspecific(pfd_key, (void *)(intptr_t)(pfd_mine + 1));
	return pfd_mine;
}

/* ---- receive: the device reads and decrypts ahead of the reader ---- */

/* Called with the RX lock held (device thread, or a worker whose batch just ended). */
void tls_toe_rx_step(struct tls_context *ctx)
{
	size_t held0 = ctx->rx_ndec;
	bool eof0 = ctx->rx_eof, filled = false;

	for (;;) {
		size_t off;
		long sz;
		ssize_t n;

		if (tls_rx_ahead_busy(ctx)) {
			unsigned int want = tls_rx_ahead_inflight(ctx);
			size_t before = ctx->rx_ndec;

			if (!tls_rx_ahead_complete(ctx))
				break;	/* its last completion runs this again */
			tls_rx_ahead_finish(ctx);
			/* A result not attached: that record is the reader's to decrypt
			 * (a control record, a failed tag, a KeyUpdate). */
			if (ctx->rx_ndec - before < want)
				ctx->toe_rx_stuck = true;
		}
		if (ctx->toe_rx_stuck || ctx->rx_stopped || ctx->rx_fatal ||
		    ctx->key_update_pending || ctx->rx_eof || atomic_load(&ctx->sk->err))
			break;
		off = rx_held_end(ctx);
		sz = ctx->rxbuf ? rx_record_at(ctx, off) : 0;
		if (sz < 0) {
			ctx->toe_rx_stuck = true;	/* the reader reports the header */
			break;
		}
		if (sz > 0) {
			if (ctx->rx_ndec + 1 >= RX_HELD_MASK_BITS) {
				ctx->toe_rx_full = true;
				break;
			}
			if (!tls_rx_ahead_start_at(ctx, off, false)) {
				/* Not data by its header (TLS 1.2 control record), or no
				 * memory: the reader's. */
				ctx->toe_rx_stuck = true;
				break;
			}
			continue;	/* inline engine: done already; async: maybe */
		}
		if (ctx->rxbuf && ctx->rx_head == 0 && ctx->rx_cap - ctx->rx_tail < TLS_MAX_WIRE &&
		    ctx->rx_ndec) {
			/* Held plaintext fills the buffer: the reader makes room (tu_rcvd). */
			ctx->toe_rx_full = true;
			break;
		}
		ctx->toe_rx_full = false;
		n = tls_rx_fill_nowait(ctx);
		if (n == -ENOBUFS) {
			ctx->toe_rx_full = true;
			break;
		}
		if (n == -EAGAIN) {
			tls_rx_quiet(ctx);
			tls_work_arm(ctx, EPOLLIN);
			break;
		}
		if (n <= 0)
			break;	/* EOF or an error: the reader sees it after the held data */
		filled = true;
	}
	if (ctx->rx_ndec != held0 || ctx->rx_eof != eof0 || ctx->toe_rx_stuck ||
	    ctx->toe_rx_full || atomic_load(&ctx->sk->err) || ctx->rx_fatal)
		tls_toe_wake(ctx);
	else if (filled)
		toe_wake_callers(ctx);
}

static bool rx_trylock(struct tls_context *ctx)
{
	return pthread_mutex_trylock(&ctx->sk->rx_lock) == 0;
}

static void toe_rx(struct tls_context *ctx)
{
	if (!ctx->toe_rx || tls_shared(ctx))
		return;
	if (!rx_trylock(ctx)) {
		/* The holder's unlock runs us again; look once more in case it just left. */
		atomic_store(&ctx->toe_rx_missed, true);
		if (!rx_trylock(ctx))
			return;
		atomic_store(&ctx->toe_rx_missed, false);
	}
	/* A socket being closed is not touched again: its fd number may name another
	 * connection as soon as close() returns (release takes this lock first). */
	if (!atomic_load(&ctx->sk->closing) && ctx->toe_rx && !tls_shared(ctx))
		tls_toe_rx_step(ctx);
	/* tls_rx_unlock: a fork() during the step made the socket shared; its state is
	 * stored for the other process now (and a missed kick runs again). */
	tls_rx_unlock(ctx);
}

/* ---- transmit, disconnect, detach ---- */

/* After a push by the device (TX lock held): the FIN once everything is out, and a
 * closed socket's end. True when a detached socket is finished. */
static bool tx_after_push(struct tls_context *ctx)
{
	bool empty = !ctx->txq_head && !tls_share_pend(ctx);
	int fd = ctx->sk->fd;

	tls_toe_wake(ctx);	/* room for blocked senders and pollers */
	if ((empty || ctx->txq_broken) && ctx->toe_fin && !ctx->toe_fin_sent) {
		ulpo_sys_shutdown(fd, SHUT_WR);
		ctx->toe_fin_sent = true;
	}
	return ctx->toe_fd >= 0 && (empty || ctx->txq_broken);
}

static pthread_mutex_t det_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ulpo_sock **det;
static size_t ndet, det_cap;

struct ulpo_sock *tls_toe_detached_get(int fd)
{
	struct ulpo_sock *sk = NULL;

	pthread_mutex_lock(&det_lock);
	for (size_t i = 0; i < ndet; i++) {
		if (tls_ctx(det[i])->toe_fd == fd) {
			sk = det[i];
			atomic_fetch_add(&sk->refs, 1);
			break;
		}
	}
	pthread_mutex_unlock(&det_lock);
	return sk;
}

/* The detached socket's queue is out (or can never be): close its fd, which sends the
 * FIN after what TCP still holds, and drop the device's reference. */
static void detached_end(struct tls_context *ctx)
{
	struct ulpo_sock *sk = ctx->sk;
	bool found = false;
	int fd;

	pthread_mutex_lock(&det_lock);
	for (size_t i = 0; i < ndet; i++) {
		if (det[i] == sk) {
			det[i] = det[--ndet];
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&det_lock);
	if (!found)
		return;	/* ended by another thread */
	pthread_mutex_lock(&sk->tx_lock);
	tls_tx_work_forget(ctx);
	fd = ctx->toe_fd;
	ctx->toe_fd = -1;
	pthread_mutex_unlock(&sk->tx_lock);
	ulpo_sys_close(fd);
	ulpo_sock_put(sk);
}

static void toe_tx(struct tls_context *ctx)
{
	bool done;

	if (!ctx->toe_tx && ctx->toe_fd < 0)
		return;
	/* A holder of the lock pushes once more before it leaves (tls_tx_unlock). */
	atomic_fetch_add(&ctx->txq_kick, 1);
	if (!tls_tx_trylock(ctx))
		return;
	if (atomic_load(&ctx->sk->closing) && ctx->toe_fd < 0) {
		tls_tx_unlock(ctx);	/* closing: release flushes, on its own thread */
		return;
	}
	if ((ctx->txq_head || tls_share_pend(ctx)) && !ctx->txq_broken &&
	    tls_txq_push(ctx, MSG_DONTWAIT | MSG_NOSIGNAL) == -EAGAIN && tls_txq_unsent_ready(ctx))
		tls_work_arm(ctx, EPOLLOUT);
	done = tx_after_push(ctx);
	tls_tx_unlock(ctx);
	if (done)
		detached_end(ctx);
}

void tls_toe_run(struct tls_context *ctx, uint32_t work, uint32_t events)
{
	if ((work & TOE_WORK_TX) || (events & EPOLLOUT))
		toe_tx(ctx);
	if ((work & TOE_WORK_RX) || (events & EPOLLIN))
		toe_rx(ctx);
}

/* A completion on a worker pushed with the lock held: the same end-of-push duties. */
void tls_toe_txq_done(struct tls_context *ctx)
{
	if (tx_after_push(ctx))
		tls_toe_kick(ctx, TOE_WORK_TX);	/* the thread ends it, outside the lock */
}

bool tls_toe_sendable(struct tls_context *ctx)
{
	return !(ctx->toe_fin || ctx->toe_fd >= 0);
}

int tls_toe_shutdown(struct tls_context *ctx)
{
	bool now;

	tls_tx_lock(ctx);
	ctx->toe_fin = true;
	now = !ctx->txq_head && !tls_share_pend(ctx);
	if (now)
		ctx->toe_fin_sent = true;
	tls_tx_unlock(ctx);
	if (now)
		return ulpo_sys_shutdown(ctx->sk->fd, SHUT_WR) ? -errno : 0;
	tls_toe_kick(ctx, TOE_WORK_TX);
	return 0;
}

static bool linger_zero(int fd)
{
	struct linger l = { 0 };
	socklen_t len = sizeof(l);

	return ulpo_sys_getsockopt(fd, SOL_SOCKET, SO_LINGER, &l, &len) == 0 && l.l_onoff &&
	       !l.l_linger;
}

/* Enter sk in the list of detached sockets; false without memory. */
static bool detached_add(struct ulpo_sock *sk)
{
	bool ok = true;

	pthread_mutex_lock(&det_lock);
	if (ndet == det_cap) {
		size_t cap = det_cap ? 2 * det_cap : 16;
		struct ulpo_sock **n = realloc(det, cap * sizeof(*n));

		if (n) {
			det = n;
			det_cap = cap;
		}
	}
	if (ndet < det_cap)
		det[ndet++] = sk;
	else
		ok = false;
	pthread_mutex_unlock(&det_lock);
	return ok;
}

bool tls_toe_release(struct tls_context *ctx)
{
	struct ulpo_sock *sk = ctx->sk;
	int fd;

	if (!ctx->toe_tx)
		return false;
	if (linger_zero(sk->fd)) {
		/* tu_reset: nothing queued goes out; the kernel's close sends the RST. */
		tls_tx_lock(ctx);
		ctx->txq_broken = true;
		tls_tx_work_forget(ctx);
		tls_tx_unlock(ctx);
		ulpo_stat_add(ULPO_STAT_TOE_RESET, 1);
		return false;
	}
	tls_tx_lock(ctx);
	if ((!ctx->txq_head && !tls_share_pend(ctx)) || ctx->txq_broken) {
		tls_tx_unlock(ctx);
		return false;	/* nothing left: an ordinary close */
	}
	/* tu_detach: the application's fd goes now; the connection lives on a private one
	 * until its queue is out (the kernel keeps the socket after close() the same way).
	 * Without an fd or memory for that, an ordinary close (it waits). */
	fd = ulpo_sys_fcntl(sk->fd, F_DUPFD_CLOEXEC, 0);
	if (fd >= 0 && !detached_add(sk)) {
		ulpo_sys_close(fd);
		fd = -1;
	}
	if (fd < 0) {
		tls_tx_unlock(ctx);
		return false;
	}
	tls_tx_work_forget(ctx);
	pthread_mutex_lock(&sk->rx_lock);	/* sk->fd changes under both locks */
	sk->fd = fd;
	ctx->toe_fd = fd;
	pthread_mutex_unlock(&sk->rx_lock);
	atomic_fetch_add(&sk->refs, 1);	/* the device's, until detached_end */
	ulpo_stat_add(ULPO_STAT_TOE_DETACHED, 1);
	tls_tx_unlock(ctx);
	tls_toe_kick(ctx, TOE_WORK_TX);
	return true;
}

/* At exit(): detached sockets get the same bounded time as the others. */
void tls_toe_exit_flush(long *left_ms)
{
	while (*left_ms > 0) {
		size_t n;

		pthread_mutex_lock(&det_lock);
		n = ndet;
		pthread_mutex_unlock(&det_lock);
		if (!n)
			return;
		usleep(10000);
		*left_ms -= 10;
	}
}

/* A forked child must not keep the parent's detached connections open (its copy of the
 * private fds would hold back their FIN): the parent finishes them. */
static void toe_child(void)
{
	for (size_t i = 0; i < ndet; i++)
		ulpo_sys_close(tls_ctx(det[i])->toe_fd);
	ndet = 0;
	pthread_mutex_init(&det_lock, NULL);
}

__attribute__((constructor)) static void toe_init(void)
{
	pthread_atfork(NULL, NULL, toe_child);
}
