/* tls_txwork.c - deferred transmit when TCP was full: records the application was told
 * were sent, but that TCP refused (its send buffer full), go out as soon as TCP has room,
 * with no further call from the application. The kernel does this from sk_write_space
 * (tx_work_handler); without it a sender that stops calling would leave its last records
 * in ulpo until the next call or close().
 *
 * One thread and one epoll set for the process. A socket whose push ended on EAGAIN is
 * armed (EPOLLOUT | EPOLLONESHOT, keyed by fd, not by pointer: a socket closed meanwhile is
 * simply not found). When TCP has room the thread pushes, unless a call holds the TX lock;
 * that call then pushes, and re-arms if needed, when it lets go (tls_tx_unlock). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/sock.h"
#include "core/sys.h"
#include "tls/tls.h"

static struct {
	pthread_mutex_t lock;
	int epfd;		/* -1 until first use, and again in a forked child */
	pid_t pid;		/* whose thread serves epfd */
} tw = { PTHREAD_MUTEX_INITIALIZER, -1, 0 };

static void *tw_main(void *arg)
{
	int epfd = (int)(intptr_t)arg;
	struct epoll_event ev[64];

	for (;;) {
		int n = (int)syscall(SYS_epoll_wait, epfd, ev, 64, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return NULL;
		for (int i = 0; i < n; i++) {
			struct ulpo_sock *sk = ulpo_sock_lookup((int)ev[i].data.u64);
			struct tls_context *ctx;

			if (!sk)
				continue;
			if (sk->proto == &ulpo_tls_proto && !atomic_load(&sk->closing)) {
				ctx = tls_ctx(sk);
				/* Disarmed (one-shot): a holder of the lock re-arms on leaving.
				 * The kick makes a holder that already pushed (and found us
				 * still armed) push once more before it leaves. */
				atomic_store(&ctx->tx_work_armed, false);
				atomic_fetch_add(&ctx->txq_kick, 1);
				if (tls_tx_trylock(ctx))
					tls_tx_unlock(ctx);
			}
			ulpo_sock_put(sk);
		}
	}
}

/* The process's epoll set, its thread started on first use (and again after fork). */
static int tw_epfd(void)
{
	pthread_attr_t a;
	pthread_t th;
	sigset_t all, old;
	int fd;

	pthread_mutex_lock(&tw.lock);
	if (tw.epfd >= 0 && tw.pid == getpid()) {
		fd = tw.epfd;
		pthread_mutex_unlock(&tw.lock);
		return fd;
	}
	/* A child of fork() has the parent's set but not its thread: a set of its own. */
	fd = (int)syscall(SYS_epoll_create1, EPOLL_CLOEXEC);
	if (fd >= 0) {
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&a, 64 * 1024);
		/* Signals stay with the application's threads. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		if (pthread_create(&th, &a, tw_main, (void *)(intptr_t)fd)) {
			ulpo_sys_close(fd);
			fd = -1;
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		pthread_attr_destroy(&a);
	}
	if (fd >= 0) {
		tw.epfd = fd;
		tw.pid = getpid();
	}
	pthread_mutex_unlock(&tw.lock);
	return fd;
}

/* Caller holds the TX lock, and records are ready but TCP took none of the head's
 * remaining bytes. Without a thread (no memory), the next call pushes, as before. */
void tls_tx_work_arm(struct tls_context *ctx)
{
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLONESHOT };
	int epfd, op;

	if (atomic_exchange(&ctx->tx_work_armed, true))
		return;
	epfd = tw_epfd();
	if (epfd < 0) {
		atomic_store(&ctx->tx_work_armed, false);
		return;
	}
	ev.data.u64 = (uint64_t)ctx->sk->fd;
	op = ctx->tx_work_epfd == epfd && ctx->tx_work_fd == ctx->sk->fd ? EPOLL_CTL_MOD
									   : EPOLL_CTL_ADD;
	if (syscall(SYS_epoll_ctl, epfd, op, ctx->sk->fd, &ev) && op == EPOLL_CTL_ADD &&
	    errno == EEXIST)
		syscall(SYS_epoll_ctl, epfd, EPOLL_CTL_MOD, ctx->sk->fd, &ev);
	ctx->tx_work_epfd = epfd;
	ctx->tx_work_fd = ctx->sk->fd;
}

/* Before the fd is closed (TX lock held): the set forgets it. */
void tls_tx_work_forget(struct tls_context *ctx)
{
	if (ctx->tx_work_epfd >= 0 && ctx->tx_work_epfd == tw.epfd && tw.pid == getpid())
		syscall(SYS_epoll_ctl, ctx->tx_work_epfd, EPOLL_CTL_DEL, ctx->tx_work_fd, NULL);
	ctx->tx_work_epfd = -1;
	atomic_store(&ctx->tx_work_armed, false);
}
