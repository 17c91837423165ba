/* tcp_info_bytes.c - the bytes a TCP socket has received, from the kernel's tcp_info.
 * Apart from fuzz_tls_rx.c because glibc's struct tcp_info stops before that field and
 * <linux/tcp.h> cannot be included next to <netinet/tcp.h>. */
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tcp_info_bytes.h"

int fuzz_tcp_bytes_received(int fd, uint64_t *ret_bytes)
{
	struct tcp_info ti = { 0 };
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
	    len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received))
		return -1;
	*ret_bytes = ti.tcpi_bytes_received;
	return 0;
}
