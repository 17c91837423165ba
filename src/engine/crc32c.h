/* crc32c.h - CRC32C (Castagnoli; iSCSI, NVMe/TCP digests) over buffers and iovecs, on ISA-L.
 * Values are the standard CRC32C of the bytes (CRC32C("123456789") = 0xE3069283), and
 * chain: ulpo_crc32c(ulpo_crc32c(0, a), b) == CRC32C(a || b). Start from 0. */
#ifndef ULPO_ENGINE_CRC32C_H
#define ULPO_ENGINE_CRC32C_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

uint32_t ulpo_crc32c(uint32_t crc, const void *buf, size_t len);
/* Over iov[0..cnt); the caller has checked cnt >= 0 and the bases of non-empty segments. */
uint32_t ulpo_crc32c_iov(uint32_t crc, const struct iovec *iov, int cnt);

#endif
