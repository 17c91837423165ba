/* handshake.h - a TLS handshake done by GnuTLS on a connected TCP socket, after which
 * GnuTLS's record state is handed to ulpo (TCP_ULP "tls", then TLS_TX and TLS_RX), the
 * way kTLS programs hand it to the kernel. GnuTLS never touches the fd afterwards. */
#ifndef ULPO_TOOLS_HANDSHAKE_H
#define ULPO_TOOLS_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>

enum hs_role {
	HS_CLIENT,
	HS_SERVER,
};

struct hs_config {
	enum hs_role role;
	uint16_t version;	/* TLS_1_2_VERSION, TLS_1_3_VERSION, or 0 for either */
	const char *cipher;	/* "aes-128-gcm", "aes-256-gcm", "chacha20-poly1305",
				 * "aes-128-ccm", or NULL for any of them */
	const char *priority;	/* a GnuTLS priority string; overrides version/cipher */
	const char *server_name;	/* client: SNI (default "localhost") */
	unsigned int timeout_ms;	/* handshake timeout, 0: 10 s */
};

struct hs_result {
	uint16_t version;	/* TLS_1_2_VERSION or TLS_1_3_VERSION */
	uint16_t cipher;	/* TLS_CIPHER_* */
	char suite[96];		/* GnuTLS's description of the session */
	uint64_t tx_seq, rx_seq;	/* record sequence numbers when ulpo took over */
};

/* Handshake on fd (blocking TCP), then install ULP and both keys with ulpo_setsockopt.
 * Returns 0, or a negative value with a message in err. A server uses a self-signed
 * certificate made in memory on first use. */
int hs_run(int fd, const struct hs_config *cfg, struct hs_result *ret_res, char *err,
	   size_t errlen);

/* Write a fresh self-signed ECDSA P-256 certificate (CN and DNS name "localhost") and its
 * key as PEM files, for a peer that needs a server certificate. 0 or negative + err. */
int hs_write_cert(const char *cert_path, const char *key_path, char *err, size_t errlen);

/* Kernel cipher id for a name accepted in hs_config.cipher, 0 if unknown. */
uint16_t hs_cipher_id(const char *name);
const char *hs_cipher_name(uint16_t cipher);

#endif
