/* sock.h - the ulpo socket: per-fd state, its protocol ops and the fd table.
 * Like the kernel's struct sock with sk_prot: a socket starts on the plain TCP ops and a
 * ULP install swaps in its own ops; every API call dispatches through sk->proto. */
#ifndef ULPO_CORE_SOCK_H
#define ULPO_CORE_SOCK_H

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <ulpo/tls.h>

struct ulpo_sock;

/* Protocol ops. Negative errno on failure, as inside the kernel. */
struct ulpo_proto {
	const char *name;
	ssize_t (*sendmsg)(struct ulpo_sock *sk, const struct msghdr *msg, int flags);
	ssize_t (*recvmsg)(struct ulpo_sock *sk, struct msghdr *msg, int flags);
	ssize_t (*sendfile)(struct ulpo_sock *sk, int in_fd, off_t *offset, size_t count);
	/* splice() out of the socket: what one call may move, into buf (flags: MSG_*). */
	ssize_t (*splice_read)(struct ulpo_sock *sk, void *buf, size_t len, int flags);
	/* Readiness the protocol adds on top of the TCP socket's: returns the events ulpo
	 * can report without asking the kernel, and sets *ret_kernel_events to what must
	 * still be asked of the kernel's poll; *ret_busy when work in flight elsewhere (the
	 * engine) may change readiness without the kernel knowing: poll in short slices. */
	short (*poll)(struct ulpo_sock *sk, short events, short *ret_kernel_events,
		      bool *ret_busy);
	/* Called once the kernel reported kernel_revents for the events poll asked. */
	short (*poll_finish)(struct ulpo_sock *sk, short events, short kernel_revents);
	int (*shutdown)(struct ulpo_sock *sk, int how);
	void (*release)(struct ulpo_sock *sk);	/* before close(fd): flush closed records */
	/* Move sk->fd to new_fd, another of the socket's fds (the old one stays open until
	 * the caller closes it), under both I/O locks taken and released the ULP's way (its
	 * unlock may owe work to a completion that found a lock taken). For state keyed by
	 * fd number. NULL: the caller moves it under both locks. */
	void (*fd_change)(struct ulpo_sock *sk, int new_fd);
	/* At the last reference (no call is using the socket any more): free the ULP's
	 * state and wipe its keys. */
	void (*destroy)(struct ulpo_sock *sk);
	int (*setsockopt)(struct ulpo_sock *sk, int level, int optname,
			  const void *optval, socklen_t optlen);
	int (*getsockopt)(struct ulpo_sock *sk, int level, int optname,
			  void *optval, socklen_t *optlen);
};

struct ulpo_sock {
	int fd;
	uint64_t ino;			/* the socket's inode: tells a reused fd number */
	atomic_int refs;
	const struct ulpo_proto *proto;	/* swapped under both locks */
	/* TX and RX are serialized separately, as the kernel lets a reader and a writer
	 * run at once; configuration changes take both (tx_lock first). */
	pthread_mutex_t tx_lock;
	pthread_mutex_t rx_lock;
	atomic_int err;			/* sk_err: set by an abort, reported by the next call */
	atomic_bool closing;		/* ulpo_close() runs: calls get EBADF, never the raw fd */
	void *ulp;			/* the ULP's context (struct tls_context) */
	/* Other fd numbers for this socket (dup() under the preload shim). The socket
	 * lives until the last of them is closed; fd is always one of them. Changed under
	 * fd_lock, and fd under both I/O locks as well. */
	pthread_mutex_t fd_lock;
	int *aliases;
	unsigned int naliases;
	struct ulpo_device *dev;
	/* Offload policy (SOL_ULPO): kept on the software path; and what it got. */
	bool no_offload;
	bool listening;			/* listen() was called through ulpo */
	uint8_t toe_path;		/* ULPO_PATH_* */
	/* Bumped when readiness changed on ulpo's own threads (an offloaded connection's
	 * device): an epoll member in edge mode sees a new edge. */
	_Atomic unsigned int ready_gen;
};

extern const struct ulpo_proto ulpo_tcp_proto;

/* Set by poll_loop (api.c) and the shim's epoll while they ask the sockets: a ULP whose
 * readiness changes on its own threads registers ulpo_poll_wake_fd to be written then
 * (poll_loop leaves it -1 and the ULP sets the thread's own; an epoll set presets the one
 * in its kernel set), and the waiter waits on it with the caller's fds. */
extern __thread bool ulpo_poll_wake_ok;
extern __thread int ulpo_poll_wake_fd;
/* Eventfds for that, never closed: one given back goes to the next taker, so a
 * registration left on a socket can only wake someone for nothing, never write into
 * another file. */
int ulpo_wakefd_get(void);
void ulpo_wakefd_put(int fd);

/* Table: fd -> socket. Lookups take a reference. */
struct ulpo_sock *ulpo_sock_lookup(int fd);
/* Lookup, creating the socket on the TCP ops if absent (or stale). */
int ulpo_sock_get_or_create(int fd, struct ulpo_sock **ret_sk);
void ulpo_sock_put(struct ulpo_sock *sk);
/* Cheap test for the preload shim's fast path: false means ulpo has never carried fd
 * (one load, no reference, no lock); true means ask ulpo_sock_lookup(). */
bool ulpo_sock_maybe(int fd);
/* newfd now names oldfd's socket too (dup, dup2, dup3, F_DUPFD). 0 if oldfd is not
 * ulpo's; newfd must already be open. */
int ulpo_sock_alias(int oldfd, int newfd);
/* fn(sk, arg) for every socket in the table (a reference is held during the call). */
void ulpo_sock_for_each(void (*fn)(struct ulpo_sock *sk, void *arg), void *arg);
/* Remove sk from fd's slot if it is still there; true if so (the caller then owns the
 * table's reference). */
bool ulpo_sock_unhash(int fd, struct ulpo_sock *sk);

/* sk_err handling as the kernel's sock_error(): read-and-clear. */
static inline int ulpo_sock_error(struct ulpo_sock *sk)
{
	int e = atomic_load_explicit(&sk->err, memory_order_relaxed);

	if (!e)
		return 0;
	return -atomic_exchange(&sk->err, 0);
}

static inline void ulpo_sock_set_error(struct ulpo_sock *sk, int neg_errno)
{
	atomic_store(&sk->err, -neg_errno);
}

/* Plain TCP ops, usable by ULPs for a direction they do not handle. */
ssize_t ulpo_tcp_sendmsg(struct ulpo_sock *sk, const struct msghdr *msg, int flags);
ssize_t ulpo_tcp_recvmsg(struct ulpo_sock *sk, struct msghdr *msg, int flags);
ssize_t ulpo_tcp_sendfile(struct ulpo_sock *sk, int in_fd, off_t *offset, size_t count);
ssize_t ulpo_tcp_splice_read(struct ulpo_sock *sk, void *buf, size_t len, int flags);
int ulpo_tcp_setsockopt(struct ulpo_sock *sk, int level, int optname,
			const void *optval, socklen_t optlen);
int ulpo_tcp_getsockopt(struct ulpo_sock *sk, int level, int optname,
			void *optval, socklen_t *optlen);

/* Listen events to every device (the seed's tcp_offload_listen_start/stop), counted. */
void ulpo_device_listen(int fd, int open);

/* ULP registry: "tls" is built in; install swaps sk->proto. */
int ulpo_ulp_install(struct ulpo_sock *sk, const char *name, size_t len);

#endif
