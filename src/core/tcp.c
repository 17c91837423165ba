/* tcp.c - the plain TCP protocol ops: every socket starts on these, and a ULP falls
 * back to them for a direction it has not been configured for (as kTLS does before
 * TLS_TX / TLS_RX). They are the kernel's own calls. */
#include <errno.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "core/sock.h"
#include "core/sys.h"

ssize_t ulpo_tcp_sendmsg(struct ulpo_sock *sk, const struct msghdr *msg, int flags)
{
	ssize_t n = ulpo_sys_sendmsg(sk->fd, msg, flags);

	return n < 0 ? -errno : n;
}

ssize_t ulpo_tcp_recvmsg(struct ulpo_sock *sk, struct msghdr *msg, int flags)
{
	ssize_t n = ulpo_sys_recvmsg(sk->fd, msg, flags);

	return n < 0 ? -errno : n;
}

ssize_t ulpo_tcp_sendfile(struct ulpo_sock *sk, int in_fd, off_t *offset, size_t count)
{
	ssize_t n = ulpo_sys_sendfile(sk->fd, in_fd, offset, count);

	return n < 0 ? -errno : n;
}

ssize_t ulpo_tcp_splice_read(struct ulpo_sock *sk, void *buf, size_t len, int flags)
{
	ssize_t n = ulpo_sys_recv(sk->fd, buf, len, flags);

	return n < 0 ? -errno : n;
}

int ulpo_tcp_setsockopt(struct ulpo_sock *sk, int level, int optname,
			const void *optval, socklen_t optlen)
{
	if (level == SOL_TCP && optname == TCP_ULP)
		return ulpo_ulp_install(sk, optval, optlen);
	return ulpo_sys_setsockopt(sk->fd, level, optname, optval, optlen) ? -errno : 0;
}

int ulpo_tcp_getsockopt(struct ulpo_sock *sk, int level, int optname,
			void *optval, socklen_t *optlen)
{
	return ulpo_sys_getsockopt(sk->fd, level, optname, optval, optlen) ? -errno : 0;
}

static int tcp_shutdown(struct ulpo_sock *sk, int how)
{
	return ulpo_sys_shutdown(sk->fd, how) ? -errno : 0;
}

const struct ulpo_proto ulpo_tcp_proto = {
	.name = "tcp",
	.sendmsg = ulpo_tcp_sendmsg,
	.recvmsg = ulpo_tcp_recvmsg,
	.sendfile = ulpo_tcp_sendfile,
	.splice_read = ulpo_tcp_splice_read,
	.shutdown = tcp_shutdown,
	.setsockopt = ulpo_tcp_setsockopt,
	.getsockopt = ulpo_tcp_getsockopt,
};
