/* api.c - the syscall-shaped API: look the fd up, dispatch through the socket's
 * protocol ops, and turn the ops' negative errno into -1/errno. An fd ulpo does not
 * handle goes straight to the syscall. */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <netinet/in.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <time.h>
#include <unistd.h>

#include <ulpo/device.h>
#include <ulpo/ulpo.h>

#include "core/sock.h"
#include "core/stats.h"
#include "core/sys.h"

#define ULPO_VERSION_STRING "0.1.0"

const char *ulpo_version(void)
{
	return ULPO_VERSION_STRING;
}

/* A socket another thread is closing answers EBADF, as its fd is going away: its calls
 * must never fall through to the raw fd, which would put plaintext on the wire. */
static bool closing(struct ulpo_sock *sk)
{
	if (!atomic_load_explicit(&sk->closing, memory_order_relaxed))
		return false;
	ulpo_sock_put(sk);
	errno = EBADF;
	return true;
}

static long ret_errno(long r)
{
	if (r < 0) {
		errno = (int)-r;
		return -1;
	}
	return r;
}

/* ---- the kernel as a device ----
 * Where the running kernel has kTLS, TCP_ULP "tls" may go to it: the kernel carries the
 * socket, the fd stays out of ulpo's table, and every later call on it is the kernel's own.
 * ULPO_DEVICE=auto (default) tries the kernel first, kernel uses only the kernel, sw only
 * ulpo. A kernel without tls.ko answers ENOENT; that answer is kept for the process, as
 * asking again would make the kernel run modprobe for every connection. */
enum device_policy { DEV_AUTO, DEV_KERNEL, DEV_SW };

static enum device_policy dev_policy;
static atomic_bool kernel_has_no_tls;
static atomic_int kernel_slot = -1;	/* its entry in `ulpo caps`, once it took a socket */

/* The kernel as a device in the run-time table: listed once it has taken a socket, and
 * `ulpo caps --set tls-tx=off` (or tls-rx) on it sends new sockets to ulpo instead. */
static bool kernel_enabled(void)
{
	int slot = atomic_load(&kernel_slot);
	uint32_t both = ULPO_DEV_CAP_TLS_TX | ULPO_DEV_CAP_TLS_RX;

	return slot < 0 || (ulpo_ctl_enabled(slot) & both) == both;
}

static void read_device_env(void)
{
	const char *s = secure_getenv("ULPO_DEVICE");

	if (s && !strcmp(s, "kernel"))
		dev_policy = DEV_KERNEL;
	else if (s && !strcmp(s, "sw"))
		dev_policy = DEV_SW;
}

static bool is_tls_ulp(const void *optval, socklen_t optlen)
{
	return optval && optlen >= 3 && !strncmp(optval, "tls", optlen < 4 ? optlen : 4);
}

/* 1: the kernel took the socket; 0: ulpo's turn; -1 with errno: the answer (kernel only). */
static int kernel_device(int fd, const void *optval, socklen_t optlen)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, read_device_env);
	if (dev_policy == DEV_SW || !is_tls_ulp(optval, optlen) || ulpo_sock_maybe(fd) ||
	    (dev_policy == DEV_AUTO && atomic_load_explicit(&kernel_has_no_tls,
							    memory_order_relaxed)) ||
	    (dev_policy == DEV_AUTO && !kernel_enabled()))
		return 0;
	if (ulpo_sys_setsockopt(fd, SOL_TCP, TCP_ULP, optval, optlen) == 0) {
		ulpo_stats_publish();
		ulpo_stat_add(ULPO_STAT_ULP_KERNEL, 1);
		if (atomic_load(&kernel_slot) < 0) {
			ulpo_device_toe();	/* the built-in entries first */
			atomic_store(&kernel_slot, ulpo_ctl_slot("kernel", ULPO_DEV_CAP_TLS_TX |
								 ULPO_DEV_CAP_TLS_RX, NULL));
		}
		return 1;
	}
	if (dev_policy == DEV_KERNEL)
		return -1;
	if (errno == ENOENT)
		atomic_store(&kernel_has_no_tls, true);
	/* Any other refusal (ENOTCONN, EEXIST, ...) ulpo gives by itself next. */
	return 0;
}

/* ---- SOL_ULPO: the offload policy of a socket (any TCP socket, before TCP_ULP) ---- */

static int ulpo_opt_set(int fd, int optname, const void *optval, socklen_t optlen)
{
	struct ulpo_sock *sk;
	int v, r;

	if (optname != ULPO_NO_OFFLOAD)
		return optname == ULPO_OFFLOAD_PATH ? -EPERM : -ENOPROTOOPT;
	if (!optval || optlen < sizeof(int))
		return optval ? -EINVAL : -EFAULT;
	memcpy(&v, optval, sizeof(v));
	r = ulpo_sock_get_or_create(fd, &sk);
	if (r < 0)
		return r;
	sk->no_offload = v != 0;
	ulpo_sock_put(sk);
	return 0;
}

static int ulpo_opt_get(int fd, int optname, void *optval, socklen_t *optlen)
{
	struct ulpo_sock *sk;
	int v = 0;

	if (optname != ULPO_NO_OFFLOAD && optname != ULPO_OFFLOAD_PATH)
		return -ENOPROTOOPT;
	if (!optlen || !optval)
		return -EFAULT;
	if (*optlen < sizeof(int))
		return -EINVAL;
	if (ulpo_sys_fcntl(fd, F_GETFD, 0) < 0)
		return -errno;
	sk = ulpo_sock_lookup(fd);
	if (sk) {
		v = optname == ULPO_NO_OFFLOAD ? sk->no_offload : sk->toe_path;
		ulpo_sock_put(sk);
	}
	memcpy(optval, &v, sizeof(v));
	*optlen = sizeof(v);
	return 0;
}

int ulpo_setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen)
{
	struct ulpo_sock *sk;
	int r;

	if (level == SOL_ULPO)
		return (int)ret_errno(ulpo_opt_set(fd, optname, optval, optlen));
	if (level == SOL_TCP && optname == TCP_ULP) {
		int proto;
		socklen_t pl = sizeof(proto);

		/* Only TCP sockets get ulpo's ULPs; the kernel answers for the rest. */
		if (ulpo_sys_getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &pl) || proto != IPPROTO_TCP)
			return ulpo_sys_setsockopt(fd, level, optname, optval, optlen);
		r = kernel_device(fd, optval, optlen);
		if (r)
			return r > 0 ? 0 : -1;
		r = ulpo_sock_get_or_create(fd, &sk);
		if (r < 0)
			return (int)ret_errno(r);
	} else {
		/* Without the ULP, SOL_TLS is the kernel's to refuse (ENOPROTOOPT). */
		sk = ulpo_sock_lookup(fd);
		if (!sk)
			return ulpo_sys_setsockopt(fd, level, optname, optval, optlen);
	}
	if (closing(sk))
		return -1;
	r = sk->proto->setsockopt(sk, level, optname, optval, optlen);
	ulpo_sock_put(sk);
	return (int)ret_errno(r);
}

int ulpo_getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen)
{
	struct ulpo_sock *sk;
	int r;

	if (level == SOL_ULPO)
		return (int)ret_errno(ulpo_opt_get(fd, optname, optval, optlen));
	sk = ulpo_sock_lookup(fd);
	if (!sk)
		return ulpo_sys_getsockopt(fd, level, optname, optval, optlen);
	if (closing(sk))
		return -1;
	r = sk->proto->getsockopt(sk, level, optname, optval, optlen);
	ulpo_sock_put(sk);
	return (int)ret_errno(r);
}

ssize_t ulpo_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct ulpo_sock *sk = ulpo_sock_lookup(fd);
	ssize_t r;

	if (!sk)
		return ulpo_sys_sendmsg(fd, msg, flags);
	if (closing(sk))
		return -1;
	r = sk->proto->sendmsg(sk, msg, flags);
	ulpo_sock_put(sk);
	return ret_errno(r);
}

ssize_t ulpo_sendto(int fd, const void *buf, size_t len, int flags,
		    const struct sockaddr *addr, socklen_t addrlen)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = {
		.msg_name = (void *)addr, .msg_namelen = addr ? addrlen : 0,
		.msg_iov = &iov, .msg_iovlen = 1,
	};

	return ulpo_sendmsg(fd, &msg, flags);
}

ssize_t ulpo_send(int fd, const void *buf, size_t len, int flags)
{
	return ulpo_sendto(fd, buf, len, flags, NULL, 0);
}

ssize_t ulpo_writev(int fd, const struct iovec *iov, int iovcnt)
{
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
	struct ulpo_sock *sk = ulpo_sock_lookup(fd);
	ssize_t r;

	if (!sk)
		return ulpo_sys_writev(fd, iov, iovcnt);
	if (closing(sk))
		return -1;
	if (iovcnt < 0 || iovcnt > IOV_MAX)
		r = -EINVAL;
	else
		r = sk->proto->sendmsg(sk, &msg, 0);
	ulpo_sock_put(sk);
	return ret_errno(r);
}

ssize_t ulpo_write(int fd, const void *buf, size_t len)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	return ulpo_writev(fd, &iov, 1);
}

ssize_t ulpo_recvmsg(int fd, struct msghdr *msg, int flags)
{
	struct ulpo_sock *sk = ulpo_sock_lookup(fd);
	ssize_t r;

	if (!sk)
		return ulpo_sys_recvmsg(fd, msg, flags);
	if (closing(sk))
		return -1;
	r = sk->proto->recvmsg(sk, msg, flags);
	ulpo_sock_put(sk);
	return ret_errno(r);
}

ssize_t ulpo_recvfrom(int fd, void *buf, size_t len, int flags,
		      struct sockaddr *addr, socklen_t *addrlen)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = {
		.msg_name = addr, .msg_namelen = addrlen ? *addrlen : 0,
		.msg_iov = &iov, .msg_iovlen = 1,
	};
	ssize_t r = ulpo_recvmsg(fd, &msg, flags);

	if (r >= 0 && addrlen)
		*addrlen = msg.msg_namelen;
	return r;
}

ssize_t ulpo_recv(int fd, void *buf, size_t len, int flags)
{
	return ulpo_recvfrom(fd, buf, len, flags, NULL, NULL);
}

ssize_t ulpo_readv(int fd, const struct iovec *iov, int iovcnt)
{
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
	struct ulpo_sock *sk = ulpo_sock_lookup(fd);
	ssize_t r;

	if (!sk)
		return ulpo_sys_readv(fd, iov, iovcnt);
	if (closing(sk))
		return -1;
	if (iovcnt < 0 || iovcnt > IOV_MAX)
		r = -EINVAL;
	else
		r = sk->proto->recvmsg(sk, &msg, 0);
	ulpo_sock_put(sk);
	return ret_errno(r);
}

ssize_t ulpo_read(int fd, void *buf, size_t len)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };

	return ulpo_readv(fd, &iov, 1);
}

ssize_t ulpo_sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
	struct ulpo_sock *sk = ulpo_sock_lookup(out_fd);
	ssize_t r;

	if (!sk)
		return ulpo_sys_sendfile(out_fd, in_fd, offset, count);
	if (closing(sk))
		return -1;
	r = sk->proto->sendfile(sk, in_fd, offset, count);
	ulpo_sock_put(sk);
	return ret_errno(r);
}

/* ---- splice ---- */

#define SPLICE_CHUNK (64 * 1024)	/* a default pipe's capacity */

static bool is_pipe(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

/* Write all of buf to the pipe (the room was checked: only a racing writer waits). */
static ssize_t pipe_write_all(int fd, const uint8_t *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = ulpo_sys_write(fd, buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };

			if (errno != EAGAIN || ulpo_sys_poll(&p, 1, -1) < 0)
				return done ? (ssize_t)done : -errno;
			continue;
		}
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* Socket -> pipe: one record's data per call at most, as tls_sw_splice_read; no more
 * than the pipe has room for, so nothing taken from the socket is left over. */
static ssize_t splice_from_sock(struct ulpo_sock *sk, int pipe_fd, size_t len, unsigned int flags)
{
	int used = 0, cap = ulpo_sys_fcntl(pipe_fd, F_GETPIPE_SZ, 0);
	uint8_t *buf;
	ssize_t n;

	for (;;) {
		if (cap < 0 || ioctl(pipe_fd, FIONREAD, &used) < 0)
			return -errno;
		if (used < cap)
			break;
		if (flags & SPLICE_F_NONBLOCK)
			return -EAGAIN;
		struct pollfd p = { .fd = pipe_fd, .events = POLLOUT };

		if (ulpo_sys_poll(&p, 1, -1) < 0)
			return -errno;
	}
	if (len > (size_t)(cap - used))
		len = (size_t)(cap - used);
	if (len > SPLICE_CHUNK)
		len = SPLICE_CHUNK;
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	n = sk->proto->splice_read(sk, buf, len, flags & SPLICE_F_NONBLOCK ? MSG_DONTWAIT : 0);
	if (n > 0)
		n = pipe_write_all(pipe_fd, buf, (size_t)n);
	free(buf);
	return n;
}

/* Pipe -> socket: the pipe's bytes are copied (tee) before they are sent, and only
 * what the socket accepted is then taken from the pipe, so a short send loses nothing. */
static ssize_t splice_to_sock(struct ulpo_sock *sk, int pipe_fd, size_t len, unsigned int flags)
{
	static __thread int scratch[2] = { -1, -1 };
	struct iovec iov;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t m, n, got;
	uint8_t *buf;

	if (scratch[0] < 0 && pipe2(scratch, O_CLOEXEC | O_NONBLOCK))
		return -errno;
	if (len > SPLICE_CHUNK)
		len = SPLICE_CHUNK;
	m = tee(pipe_fd, scratch[1], len, flags & SPLICE_F_NONBLOCK);
	if (m <= 0)
		return m < 0 ? -errno : 0;	/* 0: no writer left, as splice's EOF */
	buf = malloc((size_t)m);
	if (!buf)
		return -ENOMEM;
	for (got = 0; got < m; got += n) {
		n = ulpo_sys_read(scratch[0], buf + got, (size_t)(m - got));
		if (n <= 0)
			break;
	}
	iov.iov_base = buf;
	iov.iov_len = (size_t)got;
	n = sk->proto->sendmsg(sk, &msg, (flags & SPLICE_F_MORE ? MSG_MORE : 0) |
				       (flags & SPLICE_F_NONBLOCK ? MSG_DONTWAIT : 0) | MSG_NOSIGNAL);
	/* Take from the pipe what the socket took. */
	for (got = 0; n > 0 && got < n; ) {
		ssize_t r = ulpo_sys_read(pipe_fd, buf, (size_t)(n - got));

		if (r <= 0)
			break;
		got += r;
	}
	free(buf);
	return n;
}

ssize_t ulpo_splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len,
		    unsigned int flags)
{
	struct ulpo_sock *in = ulpo_sock_lookup(fd_in), *out = ulpo_sock_lookup(fd_out);
	ssize_t r;

	if (!in && !out)
		return syscall(SYS_splice, fd_in, off_in, fd_out, off_out, len, flags);
	if ((in && atomic_load(&in->closing)) || (out && atomic_load(&out->closing))) {
		/* As closing(): a socket being closed answers EBADF. */
		ulpo_sock_put(in);
		ulpo_sock_put(out);
		errno = EBADF;
		return -1;
	}
	if (in && out)
		r = -EINVAL;		/* one end must be a pipe */
	else if ((in && off_in) || (out && off_out))
		r = -ESPIPE;
	else if (!is_pipe(in ? fd_out : fd_in))
		r = -EINVAL;
	else if (!len)
		r = 0;
	else if (in)
		r = splice_from_sock(in, fd_out, len, flags);
	else
		r = splice_to_sock(out, fd_in, len, flags);
	ulpo_sock_put(in);
	ulpo_sock_put(out);
	return ret_errno(r);
}

int ulpo_shutdown(int fd, int how)
{
	struct ulpo_sock *sk = ulpo_sock_lookup(fd);
	int r;

	if (!sk)
		return ulpo_sys_shutdown(fd, how);
	if (closing(sk))
		return -1;
	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
		r = -EINVAL;
	else
		r = sk->proto->shutdown(sk, how);
	ulpo_sock_put(sk);
	return (int)ret_errno(r);
}

/* close() of one of several fds naming the socket (dup): only that name goes, as in
 * the kernel, where the socket lives until its last fd is closed. */
static bool close_alias(struct ulpo_sock *sk, int fd)
{
	unsigned int i;

	pthread_mutex_lock(&sk->fd_lock);
	if (!sk->naliases) {
		pthread_mutex_unlock(&sk->fd_lock);
		return false;
	}
	if (fd == sk->fd) {
		int to = sk->aliases[--sk->naliases];

		if (sk->proto->fd_change) {
			sk->proto->fd_change(sk, to);
		} else {
			pthread_mutex_lock(&sk->tx_lock);
			pthread_mutex_lock(&sk->rx_lock);
			sk->fd = to;
			pthread_mutex_unlock(&sk->rx_lock);
			pthread_mutex_unlock(&sk->tx_lock);
		}
	} else {
		for (i = 0; i < sk->naliases && sk->aliases[i] != fd; i++)
			;
		if (i < sk->naliases)
			sk->aliases[i] = sk->aliases[--sk->naliases];
	}
	pthread_mutex_unlock(&sk->fd_lock);
	return true;
}

int ulpo_close(int fd)
{
	struct ulpo_sock *sk = ulpo_sock_lookup(fd);
	int r, e;

	if (!sk)
		return ulpo_sys_close(fd);
	if (!atomic_load(&sk->closing) && close_alias(sk, fd)) {
		if (ulpo_sock_unhash(fd, sk))
			ulpo_sock_put(sk);
		ulpo_sock_put(sk);
		return ulpo_sys_close(fd);
	}
	if (atomic_exchange(&sk->closing, true)) {
		/* Another thread is closing it. */
		ulpo_sock_put(sk);
		errno = EBADF;
		return -1;
	}
	if (sk->listening)
		ulpo_device_listen(sk->fd, 0);
	/* Closed records reach the wire before the fd goes; the socket stays in the table
	 * (closing) until then, so no call of another thread reaches the raw fd. */
	if (sk->proto->release)
		sk->proto->release(sk);
	r = ulpo_sys_close(fd);
	e = errno;
	if (ulpo_sock_unhash(fd, sk))
		ulpo_sock_put(sk);	/* the table's reference */
	ulpo_sock_put(sk);
	errno = e;
	return r;
}

/* ---- listen events: devices hear of listening sockets; accepted connections inherit
 * the listener's policy ---- */

int ulpo_listen(int fd, int backlog)
{
	struct ulpo_sock *sk;
	int r = ulpo_sys_listen(fd, backlog);

	if (r < 0)
		return r;
	/* Only the first listen() is an event (a second one changes the backlog). */
	if (ulpo_sock_get_or_create(fd, &sk) == 0) {
		if (!sk->listening) {
			sk->listening = true;
			ulpo_device_listen(fd, 1);
		}
		ulpo_sock_put(sk);
	}
	return 0;
}

int ulpo_accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
	struct ulpo_sock *l, *sk;
	int nfd = ulpo_sys_accept4(fd, addr, addrlen, flags);

	if (nfd < 0 || !ulpo_sock_maybe(fd))
		return nfd;
	l = ulpo_sock_lookup(fd);
	if (!l)
		return nfd;
	if (l->no_offload && ulpo_sock_get_or_create(nfd, &sk) == 0) {
		sk->no_offload = true;
		ulpo_sock_put(sk);
	}
	ulpo_sock_put(l);
	return nfd;
}

int ulpo_accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	return ulpo_accept4(fd, addr, addrlen, 0);
}

static long long ts_ns(const struct timespec *t)
{
	return (long long)t->tv_sec * 1000000000LL + t->tv_nsec;
}

/* poll: ask each ULP socket what it can report by itself (a held record) and what it
 * needs from the kernel, poll the kernel, then let the ULP turn kernel readiness into
 * its own (bytes of a partial record are not POLLIN). Repeat while the kernel woke us
 * for nothing the caller can see, until the timeout (NULL: none). The signal mask, if
 * any, is the kernel's ppoll's: it holds while we wait. */
struct poll_slot {
	struct ulpo_sock *sk;
	short events;		/* as the caller asked */
	short own;		/* ready without the kernel */
};

#define BUSY_SLICE_NS 1000000LL	/* completions on engine threads do not wake poll() */

__thread bool ulpo_poll_wake_ok;
__thread int ulpo_poll_wake_fd = -1;

static pthread_mutex_t wakefd_lock = PTHREAD_MUTEX_INITIALIZER;
static int *wakefd_free;
static size_t wakefd_nfree, wakefd_cap;

int ulpo_wakefd_get(void)
{
	int fd = -1;
	uint64_t v;

	pthread_mutex_lock(&wakefd_lock);
	if (wakefd_nfree)
		fd = wakefd_free[--wakefd_nfree];
	pthread_mutex_unlock(&wakefd_lock);
	if (fd < 0)
		return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	(void)!ulpo_sys_read(fd, &v, sizeof(v));
	return fd;
}

void ulpo_wakefd_put(int fd)
{
	if (fd < 0)
		return;
	pthread_mutex_lock(&wakefd_lock);
	if (wakefd_nfree == wakefd_cap) {
		size_t cap = wakefd_cap ? 2 * wakefd_cap : 16;
		int *n = realloc(wakefd_free, cap * sizeof(*n));

		if (n) {
			wakefd_free = n;
			wakefd_cap = cap;
		}
	}
	if (wakefd_nfree < wakefd_cap)
		wakefd_free[wakefd_nfree++] = fd;	/* else kept open, unused: never closed */
	pthread_mutex_unlock(&wakefd_lock);
}

/* ppoll on the caller's fds and, when a socket named one, the eventfd its device writes
 * when readiness changes on its threads (drained here: the loop asks the sockets again). */
static int ppoll_woken(struct pollfd *fds, nfds_t nfds, int wake_fd, const struct timespec *t,
		       const sigset_t *sigmask)
{
	struct pollfd stack_kf[33], *kf = stack_kf;
	uint64_t v;
	int r;

	if (wake_fd < 0)
		return ulpo_sys_ppoll(fds, nfds, t, sigmask);
	if (nfds >= 33) {
		kf = malloc((nfds + 1) * sizeof(*kf));
		if (!kf)
			return -1;
	}
	memcpy(kf, fds, nfds * sizeof(*kf));
	kf[nfds] = (struct pollfd){ .fd = wake_fd, .events = POLLIN };
	r = ulpo_sys_ppoll(kf, nfds + 1, t, sigmask);
	if (r >= 0) {
		for (nfds_t i = 0; i < nfds; i++)
			fds[i].revents = kf[i].revents;
		if (kf[nfds].revents) {
			(void)!ulpo_sys_read(wake_fd, &v, sizeof(v));
			r--;
		}
	}
	if (kf != stack_kf)
		free(kf);
	return r;
}

static int poll_loop(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
		     const sigset_t *sigmask, struct poll_slot *sl)
{
	long long deadline = timeout ? ulpo_now_ns() + ts_ns(timeout) : 0;
	int r;

	for (;;) {
		long long left = timeout ? deadline - ulpo_now_ns() : -1;
		struct timespec t;
		int ready = 0;
		bool busy = false;
		nfds_t i;

		if (timeout && left < 0)
			left = 0;
		ulpo_poll_wake_ok = true;
		ulpo_poll_wake_fd = -1;
		for (i = 0; i < nfds; i++) {
			sl[i].own = 0;
			if (sl[i].sk) {
				short kev = sl[i].events;
				bool b = false;

				sl[i].own = sl[i].sk->proto->poll(sl[i].sk, sl[i].events, &kev, &b);
				fds[i].events = kev;
				ready += sl[i].own != 0;
				busy |= b;
			}
		}
		if (ready)
			left = 0;
		if (busy && (left < 0 || left > BUSY_SLICE_NS))
			left = BUSY_SLICE_NS;
		t.tv_sec = left < 0 ? 0 : left / 1000000000LL;
		t.tv_nsec = left < 0 ? 0 : left % 1000000000LL;
		ulpo_poll_wake_ok = false;
		r = ppoll_woken(fds, nfds, ulpo_poll_wake_fd, left < 0 ? NULL : &t, sigmask);
		if (r < 0)
			return r;
		r = 0;
		for (i = 0; i < nfds; i++) {
			if (sl[i].sk) {
				short rev = fds[i].revents;

				if (rev)
					rev = sl[i].sk->proto->poll_finish(sl[i].sk, sl[i].events, rev);
				fds[i].revents = (rev | sl[i].own) &
						 (sl[i].events | POLLERR | POLLHUP | POLLNVAL);
				fds[i].events = sl[i].events;
			}
			r += fds[i].revents != 0;
		}
		if (r || ready || (timeout && ulpo_now_ns() >= deadline))
			return r;
	}
}

int ulpo_ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
	       const sigset_t *sigmask)
{
	struct poll_slot stack_sl[32], *sl = stack_sl;
	bool any = false;
	int r, e;
	nfds_t i;

	if (timeout && (timeout->tv_sec < 0 || (unsigned long)timeout->tv_nsec >= 1000000000UL)) {
		errno = EINVAL;
		return -1;
	}
	if (nfds > 32) {
		sl = calloc(nfds, sizeof(*sl));
		if (!sl) {
			errno = ENOMEM;
			return -1;
		}
	}
	for (i = 0; i < nfds; i++) {
		sl[i].sk = fds[i].fd >= 0 ? ulpo_sock_lookup(fds[i].fd) : NULL;
		if (sl[i].sk && (!sl[i].sk->proto->poll || atomic_load(&sl[i].sk->closing))) {
			ulpo_sock_put(sl[i].sk);
			sl[i].sk = NULL;
		}
		sl[i].events = fds[i].events;
		any |= sl[i].sk != NULL;
	}
	r = any ? poll_loop(fds, nfds, timeout, sigmask, sl)
		: ulpo_sys_ppoll(fds, nfds, timeout, sigmask);
	e = errno;
	for (i = 0; i < nfds; i++) {
		if (sl[i].sk) {
			fds[i].events = sl[i].events;
			ulpo_sock_put(sl[i].sk);
		}
	}
	if (sl != stack_sl)
		free(sl);
	errno = e;
	return r;
}

int ulpo_poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	struct timespec t = { timeout / 1000, (long)(timeout % 1000) * 1000000 };

	return ulpo_ppoll(fds, nfds, timeout < 0 ? NULL : &t, NULL);
}
