/* caps_target.c - the process test_caps.py changes with `ulpo caps --pid`: it makes a TLS
 * connection pair over loopback (keys on both ends through ulpo_setsockopt), moves a few
 * KiB each way, prints "path N" (the client's ULPO_OFFLOAD_PATH), and makes a new pair for
 * each "again" line on stdin, so each change is seen by the next connection. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <ulpo/ulpo.h>

#include "../preload/loopback.h"

#define XFER_LEN (16 * 1024)

static void die(const char *what)
{
	fprintf(stderr, "caps_target: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void keys(int tx, int rx, uint8_t seed)
{
	struct tls12_crypto_info_aes_gcm_128 ci;

	memset(&ci, 0, sizeof(ci));
	ci.info.version = TLS_1_3_VERSION;
	ci.info.cipher_type = TLS_CIPHER_AES_GCM_128;
	memset(ci.key, seed, sizeof(ci.key));
	memset(ci.iv, seed + 1, sizeof(ci.iv));
	memset(ci.salt, seed + 2, sizeof(ci.salt));
	if (ulpo_setsockopt(tx, SOL_TLS, TLS_TX, &ci, sizeof(ci)))
		die("TLS_TX");
	if (ulpo_setsockopt(rx, SOL_TLS, TLS_RX, &ci, sizeof(ci)))
		die("TLS_RX");
}

/* XFER_LEN bytes from one end to the other, checked byte for byte. */
static void xfer(int from, int to, unsigned int round)
{
	static uint8_t out[XFER_LEN], in[XFER_LEN];
	size_t sent = 0, got = 0;

	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 7 + round * 13 + (unsigned int)from);
	while (sent < sizeof(out)) {
		ssize_t n = ulpo_send(from, out + sent, sizeof(out) - sent, 0);

		if (n <= 0)
			die("send");
		sent += (size_t)n;
	}
	while (got < sizeof(in)) {
		ssize_t n = ulpo_recv(to, in + got, sizeof(in) - got, 0);

		if (n <= 0) {
			if (!n)
				errno = EPIPE;
			die("recv");
		}
		got += (size_t)n;
	}
	if (memcmp(in, out, sizeof(in))) {
		fprintf(stderr, "caps_target: round %u: bytes received differ from those sent\n",
			round);
		exit(1);
	}
}

static void one_pair(unsigned int round)
{
	socklen_t len = sizeof(int);
	int fds[2], path = -1;

	loopback_pair(fds, "caps_target");
	if (ulpo_setsockopt(fds[0], SOL_TCP, TCP_ULP, "tls", sizeof("tls")) ||
	    ulpo_setsockopt(fds[1], SOL_TCP, TCP_ULP, "tls", sizeof("tls")))
		die("TCP_ULP tls");
	keys(fds[0], fds[1], 0x11);	/* client to server */
	keys(fds[1], fds[0], 0x55);	/* server to client */
	xfer(fds[0], fds[1], round);
	xfer(fds[1], fds[0], round);
	/* The path is reported, not required: the test decides what it should be. */
	if (ulpo_getsockopt(fds[0], SOL_ULPO, ULPO_OFFLOAD_PATH, &path, &len))
		printf("path -1 (getsockopt SOL_ULPO ULPO_OFFLOAD_PATH: %s)\n", strerror(errno));
	else
		printf("path %d\n", path);
	fflush(stdout);
	ulpo_close(fds[0]);
	ulpo_close(fds[1]);
}

int main(void)
{
	char line[64];
	unsigned int round = 0;

	one_pair(round++);
	while (fgets(line, sizeof(line), stdin)) {
		if (strcmp(line, "again\n")) {
			fprintf(stderr, "caps_target: expected 'again', got '%s'\n", line);
			return 1;
		}
		one_pair(round++);
	}
	return 0;
}
