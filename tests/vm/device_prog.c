/* device_prog.c - the kernel as a device, seen from a ulpo program (statically linked for
 * the VM guest; tests/vm/run_vm.sh, part D). With ULPO_DEVICE=auto, ulpo_setsockopt(TCP_ULP)
 * hands the socket to the kernel's kTLS where tls.ko loads and keeps it in ulpo's sw device
 * where it does not; the program must not be able to tell, and the wire must not either.
 *
 * TX: one end is kTLS (whichever device), the other plain TCP reading the ciphertext; 60
 * sends of seeded sizes (one record each). RX: that ciphertext is replayed into a kTLS
 * receiver, whose plaintext must be what was sent. Prints the device counters and an
 * FNV-1a hash of the ciphertext: run_vm.sh runs it with tls.ko and without, and the two
 * hashes must be equal. Exit 0 when everything it checked held. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ulpo/ulpo.h>

#include "../preload/loopback.h"

#define NSEND 60
#define MAXMSG 16384

static int install(int fd, int dir)
{
	struct tls12_crypto_info_aes_gcm_128 ci;

	memset(&ci, 0, sizeof(ci));
	ci.info.version = TLS_1_3_VERSION;
	ci.info.cipher_type = TLS_CIPHER_AES_GCM_128;
	memset(ci.key, 0x5a, sizeof(ci.key));
	memset(ci.iv, 0x6b, sizeof(ci.iv));
	memset(ci.salt, 0x7c, sizeof(ci.salt));
	if (ulpo_setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls")))
		return -1;
	return ulpo_setsockopt(fd, SOL_TLS, dir, &ci, sizeof(ci));
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	while (n--)
		h = (h ^ *p++) * 0x100000001b3ull;
	return h;
}

int main(void)
{
	static uint8_t plain[NSEND * MAXMSG], wire[NSEND * (MAXMSG + 64)], got[NSEND * MAXMSG];
	uint64_t st[ULPO_STAT_MAX];
	size_t sizes[NSEND], total = 0, wlen = 0, glen = 0;
	uint32_t x = 12345;
	int t[2], r[2], bad = 0;

	for (int i = 0; i < NSEND; i++) {
		x = x * 1103515245u + 12345u;
		sizes[i] = 1 + (x >> 8) % MAXMSG;
		for (size_t j = 0; j < sizes[i]; j++)
			plain[total + j] = (uint8_t)(x >> (j % 24));
		total += sizes[i];
	}

	/* TX through the device; the peer reads raw ciphertext. */
	loopback_pair(t, "device_prog");
	if (install(t[0], TLS_TX)) {
		perror("device_prog: TLS_TX");
		return 1;
	}
	for (size_t i = 0, off = 0; i < NSEND; off += sizes[i++])
		if (ulpo_send(t[0], plain + off, sizes[i], 0) != (ssize_t)sizes[i]) {
			perror("device_prog: send");
			return 1;
		}
	ulpo_close(t[0]);
	for (ssize_t n; (n = read(t[1], wire + wlen, sizeof(wire) - wlen)) > 0;)
		wlen += (size_t)n;
	close(t[1]);

	/* RX through the device, from the same ciphertext. */
	loopback_pair(r, "device_prog");
	if (install(r[1], TLS_RX)) {
		perror("device_prog: TLS_RX");
		return 1;
	}
	if (write(r[0], wire, wlen) != (ssize_t)wlen) {
		perror("device_prog: write");
		return 1;
	}
	close(r[0]);
	for (ssize_t n; glen < total && (n = ulpo_recv(r[1], got + glen, total - glen, 0)) > 0;)
		glen += (size_t)n;
	ulpo_close(r[1]);
	if (glen != total || memcmp(got, plain, total)) {
		printf("FAIL: RX gave %zu of %zu bytes%s\n", glen, total,
		       glen == total ? ", different" : "");
		bad = 1;
	}

	ulpo_stats_get(st);
	printf("device kernel=%llu sw=%llu records=%d plaintext=%zu ciphertext=%zu fnv=%016llx rx=%s\n",
	       (unsigned long long)st[ULPO_STAT_ULP_KERNEL], (unsigned long long)st[ULPO_STAT_ULP_SW],
	       NSEND, total, wlen, (unsigned long long)fnv1a(wire, wlen), bad ? "FAIL" : "ok");
	return bad;
}
