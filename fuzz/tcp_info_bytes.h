/* tcp_info_bytes.h - see tcp_info_bytes.c. */
#ifndef ULPO_FUZZ_TCP_INFO_BYTES_H
#define ULPO_FUZZ_TCP_INFO_BYTES_H

#include <stdint.h>

/* tcpi_bytes_received of a TCP socket; -1 if the kernel does not report it. */
int fuzz_tcp_bytes_received(int fd, uint64_t *ret_bytes);

#endif
