/* ulpo.h - the consumer API: the kTLS socket interface as functions.
 * Each ulpo_<syscall>() has the signature and meaning of the syscall on a Linux socket
 * with kernel TLS: it returns what the syscall returns and sets errno as the kernel does.
 * A kTLS program becomes a ulpo program by prefixing these calls. */
#ifndef ULPO_H
#define ULPO_H

#include <poll.h>
#include <signal.h>
#include <time.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <ulpo/tls.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef ULPO_API
#define ULPO_API __attribute__((visibility("default")))
#endif

ULPO_API int ulpo_setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen);
ULPO_API int ulpo_getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen);

ULPO_API ssize_t ulpo_send(int fd, const void *buf, size_t len, int flags);
ULPO_API ssize_t ulpo_sendto(int fd, const void *buf, size_t len, int flags,
		    const struct sockaddr *addr, socklen_t addrlen);
ULPO_API ssize_t ulpo_sendmsg(int fd, const struct msghdr *msg, int flags);
ULPO_API ssize_t ulpo_write(int fd, const void *buf, size_t len);
ULPO_API ssize_t ulpo_writev(int fd, const struct iovec *iov, int iovcnt);

ULPO_API ssize_t ulpo_recv(int fd, void *buf, size_t len, int flags);
ULPO_API ssize_t ulpo_recvfrom(int fd, void *buf, size_t len, int flags,
		      struct sockaddr *addr, socklen_t *addrlen);
ULPO_API ssize_t ulpo_recvmsg(int fd, struct msghdr *msg, int flags);
ULPO_API ssize_t ulpo_read(int fd, void *buf, size_t len);
ULPO_API ssize_t ulpo_readv(int fd, const struct iovec *iov, int iovcnt);

ULPO_API ssize_t ulpo_sendfile(int out_fd, int in_fd, off_t *offset, size_t count);
/* splice(2) with a TLS socket at one end and a pipe at the other: out of the socket,
 * one record's data per call and EINVAL on a control record (tls_sw_splice_read). */
ULPO_API ssize_t ulpo_splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out,
			     size_t len, unsigned int flags);
ULPO_API int ulpo_poll(struct pollfd *fds, nfds_t nfds, int timeout);
ULPO_API int ulpo_ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
			const sigset_t *sigmask);
ULPO_API int ulpo_shutdown(int fd, int how);
ULPO_API int ulpo_close(int fd);
/* listen(2) and accept(2): devices hear of listening sockets; an accepted connection
 * inherits its listener's offload policy (ULPO_NO_OFFLOAD). */
ULPO_API int ulpo_listen(int fd, int backlog);
ULPO_API int ulpo_accept(int fd, struct sockaddr *addr, socklen_t *addrlen);
ULPO_API int ulpo_accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);

/* Offload policy (the TOE model, docs/ARCHITECTURE.md). A TLS connection is offloaded
 * whole to a device (its send and receive buffers and all protocol work on the device's
 * threads) unless its socket opts out, the process turned offload off, or the device
 * cannot take it; then the software path (the caller's thread) carries it, with the
 * same bytes and the same semantics. */
#define SOL_ULPO 0x756c		/* level of ulpo's own socket options */
#define ULPO_NO_OFFLOAD 1	/* int; before TCP_ULP, or on a listener: 1 keeps the
				 * connection on the software path (SO_NO_OFFLOAD) */
#define ULPO_OFFLOAD_PATH 2	/* int, read-only: ULPO_PATH_* of what the connection got */
#define ULPO_PATH_TOE_TX 0x1	/* TX offloaded whole */
#define ULPO_PATH_TOE_RX 0x2	/* RX offloaded whole */
/* Process-wide (ULPO_OFFLOAD=on|off; on by default): what new connections get. */
ULPO_API void ulpo_offload_set(int on);
ULPO_API int ulpo_offload_get(void);
/* Enable (on) and disable (off) capabilities (ULPO_DEV_CAP_* of ulpo/device.h) of the
 * device named `device` (NULL: every device) for new connections. 0, or -1 with errno:
 * ENODEV (no such device), EOPNOTSUPP (a cap it does not support). */
ULPO_API int ulpo_caps_set(const char *device, uint32_t on, uint32_t off);

ULPO_API const char *ulpo_version(void);

/* Counters, named as the kernel's /proc/net/tls_stat. */
enum ulpo_stat {
	ULPO_STAT_TLS_CURR_TX_SW,
	ULPO_STAT_TLS_CURR_RX_SW,
	ULPO_STAT_TLS_TX_SW,
	ULPO_STAT_TLS_RX_SW,
	ULPO_STAT_TLS_DECRYPT_ERROR,
	ULPO_STAT_TLS_RX_NO_PAD_VIOLATION,
	ULPO_STAT_TLS_DECRYPT_RETRY,
	ULPO_STAT_TLS_TX_REKEY_OK,
	ULPO_STAT_TLS_RX_REKEY_OK,
	ULPO_STAT_TLS_TX_REKEY_ERROR,
	ULPO_STAT_TLS_RX_REKEY_ERROR,
	ULPO_STAT_TLS_RX_REKEY_RECEIVED,
	/* ulpo's own, beyond the kernel's set */
	ULPO_STAT_TX_RECORDS,
	ULPO_STAT_RX_RECORDS,
	ULPO_STAT_TX_BYTES,
	ULPO_STAT_RX_BYTES,
	ULPO_STAT_RX_ZEROCOPY_RECORDS,
	ULPO_STAT_RX_AHEAD_RECORDS,	/* decrypted in parallel, behind the one being read */
	ULPO_STAT_ULP_KERNEL,		/* TCP_ULP "tls" handed to the kernel's kTLS */
	ULPO_STAT_ULP_SW,		/* TCP_ULP "tls" carried by ulpo (the sw device) */
	ULPO_STAT_TOE_TX,		/* TX directions offloaded whole to a device */
	ULPO_STAT_TOE_RX,		/* RX directions offloaded whole to a device */
	ULPO_STAT_TOE_OPT_OUT,		/* connections kept on the software path by policy */
	ULPO_STAT_TOE_REFUSED,		/* connections the device refused (software path) */
	ULPO_STAT_TOE_DETACHED,		/* closed with bytes queued: the device finished them */
	ULPO_STAT_TOE_RESET,		/* closed with SO_LINGER 0: queue dropped, RST */
	ULPO_STAT_LISTEN_OPEN,		/* listen events given to devices */
	ULPO_STAT_LISTEN_CLOSE,
	ULPO_STAT_MAX,
};

/* Name of a counter ("TlsTxSw", ...), NULL past the end. */
ULPO_API const char *ulpo_stat_name(enum ulpo_stat stat);
/* Snapshot of this process's counters into ret_values[ULPO_STAT_MAX]. */
ULPO_API void ulpo_stats_get(uint64_t *ret_values);

#ifdef __cplusplus
}
#endif
#endif
