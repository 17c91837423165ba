/* ulpo/tls.h - the kernel's kTLS constants and crypto_info structs.
 * ulpo uses the kernel's own uapi header; this file only adds what an older
 * <linux/tls.h> lacks, so a program written for kTLS compiles unchanged. */
#ifndef ULPO_TLS_H
#define ULPO_TLS_H

#include <linux/tls.h>
#include <netinet/tcp.h>

#ifndef TCP_ULP
#define TCP_ULP 31
#endif
#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TLS_TX_MAX_PAYLOAD_LEN
#define TLS_TX_MAX_PAYLOAD_LEN 5	/* linux >= 6.18: cap on TX record payload */
#endif

/* Record content types (RFC 8446 5.1). */
#define ULPO_TLS_RECORD_CCS 20
#define ULPO_TLS_RECORD_ALERT 21
#define ULPO_TLS_RECORD_HANDSHAKE 22
#define ULPO_TLS_RECORD_DATA 23

#define ULPO_TLS_MAX_PAYLOAD (1 << 14)

#endif
