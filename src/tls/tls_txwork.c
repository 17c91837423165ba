/* tls_txwork.c - the work thread: what the kernel does from socket callbacks, without a
 * call from the application.
 *
 * Deferred transmit (every TLS socket): records the application was told were sent, but
 * that TCP refused (its send buffer full), go out as soon as TCP has room. The kernel does
 * this from sk_write_space (tx_work_handler); without it a sender that stops calling would
 * leave its last records in ulpo until the next call or close().
 *
 * The device's thread (offloaded connections, tls_toe.c): pushing records, reading and
 * decrypting ahead of the reader, finishing a closed socket's queue. Work comes from TCP
 * (EPOLLIN: bytes to read; EPOLLOUT: room to send) and from the doorbell, rung by the
 * application's calls and by completions (an eventfd and a list of sockets).
 *
 * One thread and one epoll set for the process. A socket is armed with the events it
 * waits for (EPOLLONESHOT, keyed by fd, not by pointer: a socket closed meanwhile is
 * simply not found). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/sock.h"
#include "core/sys.h"
#include "engine/engine.h"
#include "tls/tls.h"

#define DOORBELL_KEY UINT64_MAX

struct bell {
	struct ulpo_sock *sk;		/* holds a reference */
	struct bell *next;
};

static struct {
	pthread_mutex_t lock;
	int epfd;		/* -1 until first use, and again in a forked child */
	int bellfd;		/* eventfd in epfd */
	pid_t pid;		/* whose thread serves epfd */
	struct bell *bells;	/* sockets whose doorbell rang, under lock */
} tw = { PTHREAD_MUTEX_INITIALIZER, -1, -1, 0, NULL };

/* Held while the thread works on the events of one wait: fork() waits for it (a socket
 * reference or a half-made change the thread holds would otherwise be the child's,
 * with no thread there to finish it). */
static pthread_mutex_t tw_run = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t tw_atfork_once = PTHREAD_ONCE_INIT;

static void tw_fork_prepare(void)
{
	pthread_mutex_lock(&tw_run);
}

static void tw_fork_parent(void)
{
	pthread_mutex_unlock(&tw_run);
}

static void tw_fork_child(void)
{
	pthread_mutex_init(&tw_run, NULL);
}

/* Registered after tls_share.c's handlers, so this prepare runs before theirs: the
 * thread finishes before the forking thread takes any socket's locks. */
static void tw_atfork(void)
{
	pthread_atfork(tw_fork_prepare, tw_fork_parent, tw_fork_child);
}

static struct ulpo_sock *work_lookup(int fd)
{
	struct ulpo_sock *sk = ulpo_sock_lookup(fd);

	return sk ? sk : tls_toe_detached_get(fd);
}

/* One socket's work: events from TCP (one-shot: what was armed and did not fire is armed
 * again) and the doorbell's. */
static void work_one(struct ulpo_sock *sk, uint32_t fired, uint32_t work)
{
	struct tls_context *ctx;

	/* Without the locks: an event for an fd number may find a socket being set up. */
	if (__atomic_load_n(&sk->proto, __ATOMIC_ACQUIRE) != &ulpo_tls_proto)
		return;
	ctx = tls_ctx(sk);
	if (fired) {
		uint32_t armed = atomic_exchange(&ctx->work_ev, 0);

		if (armed & ~fired & (EPOLLIN | EPOLLOUT))
			tls_work_arm(ctx, armed & ~fired & (EPOLLIN | EPOLLOUT));
	}
	if (ctx->toe_dev && (ctx->toe_tx || ctx->toe_rx || ctx->toe_fd >= 0)) {
		tls_toe_run(ctx, work, fired);
		return;
	}
	if ((fired & EPOLLOUT) && !atomic_load(&sk->closing)) {
		/* The kick makes a holder that already pushed (and found us still armed)
		 * push once more before it leaves. */
		atomic_fetch_add(&ctx->txq_kick, 1);
		if (tls_tx_trylock(ctx))
			tls_tx_unlock(ctx);
	}
}

static void ring_all(void)
{
	struct bell *b, *next;
	uint64_t v;

	(void)!ulpo_sys_read(tw.bellfd, &v, sizeof(v));
	pthread_mutex_lock(&tw.lock);
	b = tw.bells;
	tw.bells = NULL;
	pthread_mutex_unlock(&tw.lock);
	for (; b; b = next) {
		struct tls_context *ctx = tls_ctx(b->sk);

		next = b->next;
		if (__atomic_load_n(&b->sk->proto, __ATOMIC_ACQUIRE) == &ulpo_tls_proto)
			work_one(b->sk, 0, atomic_exchange(&ctx->work_pending, 0));
		ulpo_sock_put(b->sk);
		free(b);
	}
}

static void *tw_main(void *arg)
{
	int epfd = (int)(intptr_t)arg;
	struct epoll_event ev[64];

	pthread_setname_np(pthread_self(), "ulpo-device");
	ulpo_on_device = true;
	for (;;) {
		int n = (int)syscall(SYS_epoll_wait, epfd, ev, 64, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return NULL;
		pthread_mutex_lock(&tw_run);
		for (int i = 0; i < n; i++) {
			struct ulpo_sock *sk;

			if (ev[i].data.u64 == DOORBELL_KEY) {
				ring_all();
				continue;
			}
			sk = work_lookup((int)ev[i].data.u64);
			if (!sk)
				continue;
			work_one(sk, ev[i].events & (EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP) ?
				     ev[i].events | (ev[i].events & (EPOLLERR | EPOLLHUP) ?
							  EPOLLIN | EPOLLOUT : 0) : 0, 0);
			ulpo_sock_put(sk);
		}
		pthread_mutex_unlock(&tw_run);
	}
}

/* The process's epoll set, its thread started on first use (and again after fork). */
static int tw_epfd(void)
{
	struct epoll_event bev = { .events = EPOLLIN, .data.u64 = DOORBELL_KEY };
	pthread_attr_t a;
	pthread_t th;
	sigset_t all, old;
	int fd, bfd;

	pthread_once(&tw_atfork_once, tw_atfork);
	pthread_mutex_lock(&tw.lock);
	if (tw.epfd >= 0 && tw.pid == getpid()) {
		fd = tw.epfd;
		pthread_mutex_unlock(&tw.lock);
		return fd;
	}
	/* A child of fork() has the parent's set but not its thread: a set of its own. */
	fd = (int)syscall(SYS_epoll_create1, EPOLL_CLOEXEC);
	bfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd >= 0 && (bfd < 0 || syscall(SYS_epoll_ctl, fd, EPOLL_CTL_ADD, bfd, &bev))) {
		ulpo_sys_close(fd);
		fd = -1;
	}
	if (fd >= 0) {
		tw.bellfd = bfd;	/* before the thread: it reads it */
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&a, 256 * 1024);
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
	if (fd < 0 && bfd >= 0)
		ulpo_sys_close(bfd);
	if (fd >= 0) {
		tw.epfd = fd;
		tw.pid = getpid();
		/* A child's copy of the bells names sockets it has too: its thread rings
		 * them (and drops their references) with its own. */
	}
	pthread_mutex_unlock(&tw.lock);
	return fd;
}

/* Arm the socket for events (EPOLLIN, EPOLLOUT) in the work set; what is armed
 * already stays armed. Without a thread (no memory), the next call does the work. */
void tls_work_arm(struct tls_context *ctx, uint32_t events)
{
	struct epoll_event ev;
	uint32_t before = atomic_fetch_or(&ctx->work_ev, events);
	int epfd, op, fd = ctx->sk->fd;

	if ((before | events) == before)
		return;
	/* A socket being closed is never armed again (its fd number may be reused), but a
	 * detached one lives on its private fd. */
	if (atomic_load(&ctx->sk->closing) && ctx->toe_fd < 0) {
		atomic_fetch_and(&ctx->work_ev, ~events);
		return;
	}
	epfd = tw_epfd();
	if (epfd < 0) {
		atomic_fetch_and(&ctx->work_ev, ~events);
		return;
	}
	pthread_mutex_lock(&ctx->work_lock);
	/* What is armed now, this call's and any other's since (one registration). */
	ev.events = atomic_load(&ctx->work_ev) | EPOLLONESHOT;
	ev.data.u64 = (uint64_t)fd;
	op = ctx->tx_work_epfd == epfd && ctx->tx_work_fd == fd ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (syscall(SYS_epoll_ctl, epfd, op, fd, &ev) && op == EPOLL_CTL_ADD && errno == EEXIST)
		syscall(SYS_epoll_ctl, epfd, EPOLL_CTL_MOD, fd, &ev);
	ctx->tx_work_epfd = epfd;
	ctx->tx_work_fd = fd;
	pthread_mutex_unlock(&ctx->work_lock);
}

/* Caller holds the TX lock, and records are ready but TCP took none of the head's
 * remaining bytes. */
void tls_tx_work_arm(struct tls_context *ctx)
{
	tls_work_arm(ctx, EPOLLOUT);
}

/* Before the fd is closed: the set forgets it. */
void tls_tx_work_forget(struct tls_context *ctx)
{
	pthread_mutex_lock(&ctx->work_lock);
	if (ctx->tx_work_epfd >= 0 && ctx->tx_work_epfd == tw.epfd && tw.pid == getpid())
		syscall(SYS_epoll_ctl, ctx->tx_work_epfd, EPOLL_CTL_DEL, ctx->tx_work_fd, NULL);
	ctx->tx_work_epfd = -1;
	atomic_store(&ctx->work_ev, 0);
	pthread_mutex_unlock(&ctx->work_lock);
}

/* Queue sk (a reference is taken) for the thread and wake it. */
int tls_work_doorbell(struct ulpo_sock *sk)
{
	struct bell *b = malloc(sizeof(*b));
	uint64_t one = 1;

	if (!b || tw_epfd() < 0) {
		free(b);
		return -ENOMEM;
	}
	atomic_fetch_add_explicit(&sk->refs, 1, memory_order_relaxed);
	b->sk = sk;
	pthread_mutex_lock(&tw.lock);
	b->next = tw.bells;
	tw.bells = b;
	pthread_mutex_unlock(&tw.lock);
	(void)!ulpo_sys_write(tw.bellfd, &one, sizeof(one));
	return 0;
}
