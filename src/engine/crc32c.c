/* crc32c.c - standard CRC32C on ISA-L's crc32_iscsi, which runs the reflected CRC register
 * with no inversion at either end: crc32_iscsi(buf, len, 0xFFFFFFFF) is the register after
 * the bytes, and the standard value is its complement. So a standard running value c
 * continues as ~crc32_iscsi(next, len, ~c), which also makes 0 the seed of an empty prefix. */
#include <stddef.h>

#include "engine/crc32c.h"

#ifdef ULPO_HAVE_ISAL
#include <isa-l/crc.h>

/* crc32_iscsi takes an int length: feed large buffers in pieces. */
#define CHUNK ((size_t)1 << 30)

static uint32_t crc_register(uint32_t reg, const uint8_t *p, size_t len)
{
	while (len > 0) {
		size_t n = len < CHUNK ? len : CHUNK;

		/* ISA-L's prototype is not const-qualified; it only reads the buffer. */
		reg = crc32_iscsi((unsigned char *)p, (int)n, reg);
		p += n;
		len -= n;
	}
	return reg;
}
#else
/* Builds without ISA-L (the static VM guest, which has no CRC work): a byte-table loop,
 * ~2 GB/s, the same register convention. */
#include <pthread.h>

static uint32_t table[256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
		table[i] = c;
	}
}

static uint32_t crc_register(uint32_t reg, const uint8_t *p, size_t len)
{
	pthread_once(&table_once, table_init);
	while (len--)
		reg = (reg >> 8) ^ table[(reg ^ *p++) & 0xff];
	return reg;
}
#endif

uint32_t ulpo_crc32c(uint32_t crc, const void *buf, size_t len)
{
	return ~crc_register(~crc, buf, len);
}

uint32_t ulpo_crc32c_iov(uint32_t crc, const struct iovec *iov, int cnt)
{
	uint32_t reg = ~crc;

	for (int i = 0; i < cnt; i++)
		reg = crc_register(reg, iov[i].iov_base, iov[i].iov_len);
	return ~reg;
}
