/* io.c - the data calls of the LD_PRELOAD shim. An fd ulpo never carried costs one
 * table load and goes to libc; a ulpo socket goes to ulpo_<call>(), which has the
 * kernel's kTLS meaning. Also the resolution of libc's own functions. */
/* Both names are interposed, so neither may be redirected to the other. */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include <ulpo/ulpo.h>

#include "core/sock.h"
#include "core/stats.h"
#include "preload/shim.h"

struct shim_libc shim_libc;

#define RESOLVE(name) shim_libc.name = (__typeof__(shim_libc.name))dlsym(RTLD_NEXT, #name)

void shim_resolve(void)
{
	RESOLVE(setsockopt);
	RESOLVE(getsockopt);
	RESOLVE(listen);
	RESOLVE(accept);
	RESOLVE(accept4);
	RESOLVE(send);
	RESOLVE(sendto);
	RESOLVE(sendmsg);
	RESOLVE(sendmmsg);
	RESOLVE(write);
	RESOLVE(writev);
	RESOLVE(recv);
	RESOLVE(recvfrom);
	RESOLVE(recvmsg);
	RESOLVE(recvmmsg);
	RESOLVE(read);
	RESOLVE(readv);
	RESOLVE(sendfile);
	RESOLVE(splice);
	RESOLVE(poll);
	RESOLVE(ppoll);
	RESOLVE(select);
	RESOLVE(pselect);
	RESOLVE(epoll_create);
	RESOLVE(epoll_create1);
	RESOLVE(epoll_ctl);
	RESOLVE(epoll_wait);
	RESOLVE(epoll_pwait);
	RESOLVE(epoll_pwait2);
	RESOLVE(close);
	RESOLVE(shutdown);
	RESOLVE(dup);
	RESOLVE(dup2);
	RESOLVE(dup3);
	RESOLVE(fcntl);
}

/* Before main() (and before any other library's constructor can call us, as the
 * preloaded object's constructor runs early): every pointer is set once, then read
 * without synchronization. */
__attribute__((constructor(101))) static void shim_init(void)
{
	shim_resolve();
	/* Every process under `ulpo run` is listed by `ulpo stats`, TLS sockets or not. */
	ulpo_stats_publish();
}

SHIM_EXPORT ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	if (PLAIN(fd))
		return LIBC(send)(fd, buf, len, flags);
	return ulpo_send(fd, buf, len, flags);
}

SHIM_EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags,
			   const struct sockaddr *addr, socklen_t addrlen)
{
	if (PLAIN(fd))
		return LIBC(sendto)(fd, buf, len, flags, addr, addrlen);
	return ulpo_sendto(fd, buf, len, flags, addr, addrlen);
}

SHIM_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	if (PLAIN(fd))
		return LIBC(sendmsg)(fd, msg, flags);
	return ulpo_sendmsg(fd, msg, flags);
}

SHIM_EXPORT ssize_t write(int fd, const void *buf, size_t len)
{
	if (PLAIN(fd))
		return LIBC(write)(fd, buf, len);
	return ulpo_write(fd, buf, len);
}

SHIM_EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
	if (PLAIN(fd))
		return LIBC(writev)(fd, iov, iovcnt);
	return ulpo_writev(fd, iov, iovcnt);
}

SHIM_EXPORT ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	if (PLAIN(fd))
		return LIBC(recv)(fd, buf, len, flags);
	return ulpo_recv(fd, buf, len, flags);
}

SHIM_EXPORT ssize_t recvfrom(int fd, void *buf, size_t len, int flags,
			     struct sockaddr *addr, socklen_t *addrlen)
{
	if (PLAIN(fd))
		return LIBC(recvfrom)(fd, buf, len, flags, addr, addrlen);
	return ulpo_recvfrom(fd, buf, len, flags, addr, addrlen);
}

SHIM_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	if (PLAIN(fd))
		return LIBC(recvmsg)(fd, msg, flags);
	return ulpo_recvmsg(fd, msg, flags);
}

SHIM_EXPORT ssize_t read(int fd, void *buf, size_t len)
{
	if (PLAIN(fd))
		return LIBC(read)(fd, buf, len);
	return ulpo_read(fd, buf, len);
}

SHIM_EXPORT ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
	if (PLAIN(fd))
		return LIBC(readv)(fd, iov, iovcnt);
	return ulpo_readv(fd, iov, iovcnt);
}

/* sendmmsg/recvmmsg as the kernel's __sys_sendmmsg/__sys_recvmmsg run them over one
 * socket: message by message; an error after the first message is not returned but
 * left as the socket's error for the next call (recvmmsg), or dropped (sendmmsg, whose
 * caller retries from the count). */
SHIM_EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	unsigned int i;

	if (PLAIN(fd))
		return LIBC(sendmmsg)(fd, vec, vlen, flags);
	if (vlen > UIO_MAXIOV)
		vlen = UIO_MAXIOV;
	for (i = 0; i < vlen; i++) {
		ssize_t n = ulpo_sendmsg(fd, &vec[i].msg_hdr, flags);

		if (n < 0)
			return i ? (int)i : -1;
		vec[i].msg_len = (unsigned int)n;
	}
	return (int)i;
}

SHIM_EXPORT int recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags,
			 struct timespec *timeout)
{
	unsigned int i;

	if (PLAIN(fd))
		return LIBC(recvmmsg)(fd, vec, vlen, flags, timeout);
	/* The kernel's timeout is only checked between messages; a stream socket's
	 * first message blocks as recvmsg would. */
	for (i = 0; i < vlen; i++) {
		ssize_t n = ulpo_recvmsg(fd, &vec[i].msg_hdr, flags & ~MSG_WAITFORONE);

		if (n < 0) {
			if (!i)
				return -1;
			if (errno != EAGAIN) {
				struct ulpo_sock *sk = ulpo_sock_lookup(fd);

				if (sk) {
					ulpo_sock_set_error(sk, -errno);
					ulpo_sock_put(sk);
				}
			}
			break;
		}
		vec[i].msg_len = (unsigned int)n;
		if (flags & MSG_WAITFORONE)
			flags |= MSG_DONTWAIT;
		if (vec[i].msg_hdr.msg_flags & MSG_OOB)
			return (int)i + 1;
	}
	return (int)i;
}

SHIM_EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
	if (PLAIN(out_fd))
		return LIBC(sendfile)(out_fd, in_fd, offset, count);
	return ulpo_sendfile(out_fd, in_fd, offset, count);
}

SHIM_EXPORT ssize_t sendfile64(int out_fd, int in_fd, off_t *offset, size_t count)
{
	return sendfile(out_fd, in_fd, offset, count);
}

/* glibc's _FORTIFY_SOURCE entry points: the size check, then the call. */
extern void __chk_fail(void) __attribute__((noreturn));

SHIM_EXPORT ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen)
{
	if (len > buflen)
		__chk_fail();
	return read(fd, buf, len);
}

SHIM_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags)
{
	if (len > buflen)
		__chk_fail();
	return recv(fd, buf, len, flags);
}

SHIM_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
				   struct sockaddr *addr, socklen_t *addrlen)
{
	if (len > buflen)
		__chk_fail();
	return recvfrom(fd, buf, len, flags, addr, addrlen);
}

SHIM_EXPORT ssize_t splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len,
			   unsigned int flags)
{
	if (PLAIN(fd_in) && PLAIN(fd_out))
		return LIBC(splice)(fd_in, off_in, fd_out, off_out, len, flags);
	return ulpo_splice(fd_in, off_in, fd_out, off_out, len, flags);
}
