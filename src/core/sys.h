/* sys.h - the kernel's calls, for ulpo's own use on the fds it carries.
 * Under the LD_PRELOAD shim, send(), recv(), close() and the rest name the shim's
 * interposers, so ulpo itself must never call them on a socket: it would call itself.
 * These go to the kernel directly. Same return convention as libc: -1 and errno. */
#ifndef ULPO_CORE_SYS_H
#define ULPO_CORE_SYS_H

#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* CLOCK_MONOTONIC: for deadlines, budgets and spins (never the wall clock, which jumps). */
static inline int64_t ulpo_now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static inline int64_t ulpo_now_ms(void)
{
	return ulpo_now_ns() / 1000000;
}

static inline ssize_t ulpo_sys_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	return syscall(SYS_sendmsg, fd, msg, flags);
}

static inline ssize_t ulpo_sys_recvmsg(int fd, struct msghdr *msg, int flags)
{
	return syscall(SYS_recvmsg, fd, msg, flags);
}

static inline ssize_t ulpo_sys_send(int fd, const void *buf, size_t len, int flags)
{
	return syscall(SYS_sendto, fd, buf, len, flags, NULL, 0);
}

static inline ssize_t ulpo_sys_recv(int fd, void *buf, size_t len, int flags)
{
	return syscall(SYS_recvfrom, fd, buf, len, flags, NULL, NULL);
}

static inline ssize_t ulpo_sys_read(int fd, void *buf, size_t len)
{
	return syscall(SYS_read, fd, buf, len);
}

static inline ssize_t ulpo_sys_write(int fd, const void *buf, size_t len)
{
	return syscall(SYS_write, fd, buf, len);
}

static inline ssize_t ulpo_sys_readv(int fd, const struct iovec *iov, int iovcnt)
{
	return syscall(SYS_readv, fd, iov, iovcnt);
}

static inline ssize_t ulpo_sys_writev(int fd, const struct iovec *iov, int iovcnt)
{
	return syscall(SYS_writev, fd, iov, iovcnt);
}

static inline ssize_t ulpo_sys_pread(int fd, void *buf, size_t len, off_t off)
{
	return syscall(SYS_pread64, fd, buf, len, off);
}

static inline ssize_t ulpo_sys_sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
	return syscall(SYS_sendfile, out_fd, in_fd, offset, count);
}

static inline int ulpo_sys_setsockopt(int fd, int level, int optname, const void *optval,
				      socklen_t optlen)
{
	return (int)syscall(SYS_setsockopt, fd, level, optname, optval, optlen);
}

static inline int ulpo_sys_getsockopt(int fd, int level, int optname, void *optval,
				      socklen_t *optlen)
{
	return (int)syscall(SYS_getsockopt, fd, level, optname, optval, optlen);
}

static inline int ulpo_sys_shutdown(int fd, int how)
{
	return (int)syscall(SYS_shutdown, fd, how);
}

static inline int ulpo_sys_close(int fd)
{
	return (int)syscall(SYS_close, fd);
}

static inline int ulpo_sys_fcntl(int fd, int cmd, long arg)
{
	return (int)syscall(SYS_fcntl, fd, cmd, arg);
}

/* ppoll, as some architectures have no poll syscall; sigmask may be NULL. */
static inline int ulpo_sys_ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *ts,
				 const sigset_t *sigmask)
{
	return (int)syscall(SYS_ppoll, fds, nfds, ts, sigmask, _NSIG / 8);
}

static inline int ulpo_sys_poll(struct pollfd *fds, nfds_t nfds, int timeout_ms)
{
	struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000 };

	return ulpo_sys_ppoll(fds, nfds, timeout_ms < 0 ? NULL : &ts, NULL);
}

static inline int ulpo_sys_listen(int fd, int backlog)
{
	return (int)syscall(SYS_listen, fd, backlog);
}

static inline int ulpo_sys_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	return (int)syscall(SYS_accept4, fd, addr, len, flags);
}

#endif
