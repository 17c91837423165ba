/* fdops.c - the shim's socket options and fd life cycle: TCP_ULP "tls" goes to the
 * device ulpo_setsockopt() picks (the kernel's kTLS where it has it, else ulpo), close and
 * shutdown flush ulpo's records, and dup()ed fds name the same ulpo socket. */
/* Both names are interposed, so neither may be redirected to the other. */
#undef _FILE_OFFSET_BITS
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <ulpo/ulpo.h>

#include "core/sock.h"
#include "core/stats.h"
#include "preload/shim.h"

/* TCP_ULP goes to ulpo_setsockopt(), which picks the device: the kernel's kTLS where it
 * loads, else ulpo (ULPO_DEVICE). */
SHIM_EXPORT int setsockopt(int fd, int level, int optname, const void *optval,
			   socklen_t optlen)
{
	if (PLAIN(fd) && !(level == SOL_TCP && optname == TCP_ULP) && level != SOL_ULPO)
		return LIBC(setsockopt)(fd, level, optname, optval, optlen);
	if (ulpo_setsockopt(fd, level, optname, optval, optlen))
		return -1;
	if (level == SOL_TCP && optname == TCP_ULP && !PLAIN(fd))
		atomic_fetch_add(&shim_ulp_gen, 1);	/* epoll sets look at it again */
	return 0;
}

SHIM_EXPORT int getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen)
{
	if (PLAIN(fd) && level != SOL_ULPO)
		return LIBC(getsockopt)(fd, level, optname, optval, optlen);
	return ulpo_getsockopt(fd, level, optname, optval, optlen);
}

/* Devices hear of every listening socket (listen events); a connection accepted from a
 * listener ulpo knows inherits its offload policy. */
SHIM_EXPORT int listen(int fd, int backlog)
{
	int proto = 0;
	socklen_t len = sizeof(proto);

	if (LIBC(getsockopt)(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) || proto != IPPROTO_TCP)
		return LIBC(listen)(fd, backlog);
	return ulpo_listen(fd, backlog);
}

SHIM_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	if (PLAIN(fd))
		return LIBC(accept)(fd, addr, addrlen);
	return ulpo_accept(fd, addr, addrlen);
}

SHIM_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
	if (PLAIN(fd))
		return LIBC(accept4)(fd, addr, addrlen, flags);
	return ulpo_accept4(fd, addr, addrlen, flags);
}

SHIM_EXPORT int shutdown(int fd, int how)
{
	if (PLAIN(fd))
		return LIBC(shutdown)(fd, how);
	return ulpo_shutdown(fd, how);
}

SHIM_EXPORT int close(int fd)
{
	shim_epoll_fd_closed(fd);
	if (PLAIN(fd))
		return LIBC(close)(fd);
	return ulpo_close(fd);
}

/* A new fd for a ulpo socket names the same socket. If ulpo cannot record it (no
 * memory), the new fd must not be left to reach the raw socket: it is closed. */
static int dup_done(int oldfd, int newfd)
{
	int r;

	if (newfd < 0 || PLAIN(oldfd))
		return newfd;
	r = ulpo_sock_alias(oldfd, newfd);
	if (r < 0) {
		LIBC(close)(newfd);
		errno = -r;
		return -1;
	}
	return newfd;
}

SHIM_EXPORT int dup(int oldfd)
{
	return dup_done(oldfd, LIBC(dup)(oldfd));
}

/* dup2/dup3 close newfd first, as the kernel does, with ulpo's close if it is ulpo's
 * (its records are flushed). */
static void replacing(int oldfd, int newfd)
{
	if (oldfd == newfd || fcntl(oldfd, F_GETFD) < 0)
		return;
	shim_epoll_fd_closed(newfd);
	if (!PLAIN(newfd)) {
		struct ulpo_sock *sk = ulpo_sock_lookup(newfd);

		if (sk) {
			ulpo_sock_put(sk);
			ulpo_close(newfd);
		}
	}
}

SHIM_EXPORT int dup2(int oldfd, int newfd)
{
	replacing(oldfd, newfd);
	if (oldfd == newfd)
		return LIBC(dup2)(oldfd, newfd);
	return dup_done(oldfd, LIBC(dup2)(oldfd, newfd));
}

SHIM_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	if (oldfd != newfd)
		replacing(oldfd, newfd);
	return dup_done(oldfd, LIBC(dup3)(oldfd, newfd, flags));
}

/* fcntl's third argument is an int, a long or a pointer depending on cmd; on the ABIs
 * glibc supports all three travel in the same register, so it is passed on as a
 * pointer-sized value (what glibc's own fcntl does). */
SHIM_EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
		return dup_done(fd, LIBC(fcntl)(fd, cmd, arg));
	return LIBC(fcntl)(fd, cmd, arg);
}

SHIM_EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl(fd, cmd, arg);
}
