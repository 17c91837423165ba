/* pdu.h - one NVMe/TCP connection's PDU transport, shared by host and target: sending a
 * PDU (header digest, alignment padding, data digest filled in) and receiving one in two
 * steps, its header then its data, so that the data can go straight where it belongs
 * (the DDP device's registered buffers, or a command's buffer on the target).
 *
 * Receive side: headers are read from the socket into a small buffer. While the caller
 * says no data of interest can follow (rx_batch), a read takes whatever the socket has, so
 * a burst of small PDUs (responses, R2Ts) costs one read; otherwise only the bytes of the
 * next header are read, and a PDU's data goes from the socket directly into the caller's
 * iovecs. Bytes of data that were already in the buffer are copied, and counted. */
#ifndef ULPO_NVME_PDU_H
#define ULPO_NVME_PDU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "nvme/wire.h"

#define NVME_TCP_RXBUF 4096

struct nvme_tcp_conn {
	int fd;
	bool hdgst, ddgst;		/* negotiated at ICReq/ICResp */
	uint8_t tx_pda;			/* alignment the peer wants for data we send (dwords,
					 * 0's based: CPDA for the host, HPDA for the target) */
	uint8_t rx_pda;			/* ... and that we asked for */
	uint32_t max_plen;		/* largest PDU we accept (bytes) */
	bool rx_batch;			/* the caller: no placed data can come next */
	/* receive buffer: bytes [rx_head, rx_tail) not yet consumed */
	uint8_t rxbuf[NVME_TCP_RXBUF];
	size_t rx_head, rx_tail;
	/* the PDU being received */
	uint8_t hdr[NVME_TCP_MAX_HLEN + NVME_TCP_DIGEST_LEN];
	bool hdr_valid;			/* hdr holds a header the transport accepted */
	size_t data_len;		/* its data bytes still to receive (0: none) */
	size_t pad_len;			/* pad bytes between header and data, before data */
	bool data_digest;		/* its data is followed by a digest */
	uint32_t rx_ddgst;		/* the digest that followed the last PDU's data */
	/* counters: data bytes that came through rxbuf (copied), or straight (placed) */
	uint64_t rx_copied, rx_direct;
};

void nvme_tcp_conn_init(struct nvme_tcp_conn *c, int fd);

/* Send one PDU. hdr: its header, hlen bytes, type/flags/hlen set (and the PDU-specific
 * fields); pdo, plen, the digest flags and digests are filled in here. data: datalen bytes
 * in cnt iovecs, or none. Blocks until all is written. 0 or -errno. */
int nvme_tcp_send_pdu(struct nvme_tcp_conn *c, void *hdr, const struct iovec *data, int cnt,
		      size_t datalen);

/* Receive the next PDU's header into c->hdr. Checks what is the transport's to check:
 * hlen for the type, pdo and plen against hlen and the digests, plen <= max_plen, the
 * header digest. 0; -EPROTO with *fes and *fei set (the caller sends a TermReq: invalid field
 * or header digest error); -ECONNRESET at EOF; -errno. After it, c->data_len bytes of
 * data follow (read them with nvme_tcp_recv_data before the next header). ICReq/ICResp
 * are read here too (they have no digest). */
int nvme_tcp_recv_hdr(struct nvme_tcp_conn *c, uint16_t *fes, uint32_t *fei);

/* Without waiting, read what the socket has toward the next header (batch mode: up to
 * the buffer). >0 bytes now buffered, -EAGAIN nothing, -ECONNRESET EOF, -errno. */
int nvme_tcp_try_fill(struct nvme_tcp_conn *c);

/* Receive the current PDU's data: len bytes into iov (len <= c->data_len; called until
 * data_len is 0), then its digest (kept in c->rx_ddgst), checked over everything received
 * for this PDU, which the caller accumulates in *crc (start at 0). With crc NULL nothing
 * is computed or checked (the DDP device checks, or digests are off).
 * 0, or 1 when the PDU's data is complete and its digest did not match (the data is in
 * iov anyway), or -errno. */
int nvme_tcp_recv_data(struct nvme_tcp_conn *c, const struct iovec *iov, int cnt, size_t len,
		       uint32_t *crc);

/* Discard the current PDU's remaining data (a command that no longer wants it). */
int nvme_tcp_skip_data(struct nvme_tcp_conn *c);

/* Send a TermReq (H2C from the host, C2H from the target) quoting the bad header. */
int nvme_tcp_send_term(struct nvme_tcp_conn *c, uint8_t type, uint16_t fes, uint32_t fei);

/* Data offset of a PDU with header length hlen, for the alignment pda (0's based dwords). */
static inline uint32_t nvme_tcp_pdo(const struct nvme_tcp_conn *c, uint32_t hlen, uint8_t pda)
{
	uint32_t off = hlen + (c->hdgst ? NVME_TCP_DIGEST_LEN : 0);
	uint32_t align = ((uint32_t)pda + 1) * 4;

	return pda ? (off + align - 1) / align * align : off;
}

#endif
