/* tls_rx.h - what the RX record layer (tls_rx.c) shares with its decrypt-ahead part
 * (tls_rx_ahead.c): the layout of held records in the receive buffer. */
#ifndef ULPO_TLS_TLS_RX_H
#define ULPO_TLS_TLS_RX_H

#include "tls/tls.h"

/* The receive buffer: several records per read() (fewer syscalls, and enough for the
 * workers to share); the same in both engine modes, so what a read returns never
 * depends on the mode. */
#define RX_CAP (8 * TLS_MAX_WIRE)
/* An offloaded connection's: the plaintext the device holds ahead of the reader. */
#define RX_CAP_TOE (32 * TLS_MAX_WIRE)

/* Most held records whose plaintext place is tracked (bit i of the masks: the i-th held
 * record from the head). Decrypt-ahead stops short of it; other records never need it. */
#define RX_HELD_MASK_BITS 64

/* A decrypted (held) record keeps its metadata in its own header bytes, which were
 * checked already: [0] the real content type, [1..2] plaintext length, [3..4] the wire
 * payload length as received. Its plaintext is at its body, in rxbuf, or at the same
 * offset in rx_shadow when it was decrypted ahead (rx_shadow_mask). */
static inline size_t rec_pt_len(const uint8_t *h)
{
	return (size_t)h[1] << 8 | h[2];
}

static inline size_t rec_wire_len(const uint8_t *h)
{
	return TLS_HEADER_SIZE + ((size_t)h[3] << 8 | h[4]);
}

/* Length of the whole record at rxbuf + off, 0 if it is not all there yet, or a negative
 * errno for a bad header. */
static inline long rx_record_at(const struct tls_context *ctx, size_t off)
{
	size_t avail = ctx->rx_tail - off;
	long sz = tls_rx_msg_size(&ctx->rx, ctx->rxbuf + off, avail);

	return sz > 0 && (size_t)sz > avail ? 0 : sz;
}

/* Offset in rxbuf just past the held records: where the next undecrypted one starts. */
static inline size_t rx_held_end(const struct tls_context *ctx)
{
	size_t end = ctx->rx_head;

	for (size_t i = 0; i < ctx->rx_ndec; i++)
		end += rec_wire_len(ctx->rxbuf + end);
	return end;
}

/* Mark the record at rxbuf + off (the next after the held ones) as held plaintext. */
static inline void rx_hold_at(struct tls_context *ctx, size_t off, uint8_t type, size_t plen,
			      bool shadow)
{
	uint8_t *h = ctx->rxbuf + off;

	h[0] = type;
	h[1] = (uint8_t)(plen >> 8);
	h[2] = (uint8_t)plen;
	if (shadow && ctx->rx_ndec < RX_HELD_MASK_BITS) {
		ctx->rx_shadow_mask |= 1ull << ctx->rx_ndec;
		ctx->rx_ahead_new |= 1ull << ctx->rx_ndec;
	}
	ctx->rx_ndec++;
}

/* tls_rx_ahead.c: while the caller's thread decrypts one record, the whole records
 * behind it go to the engine's workers, decrypted out of place into rx_shadow (their
 * ciphertext stays intact, so a record that cannot be used is simply decrypted again
 * later by the ordinary path). Only records whose header says application data are
 * taken; only the in-order prefix of successes whose content type is data is attached
 * as held records, so no result of decrypt-ahead is ever visible but plaintext that the
 * ordinary path would have produced, in the same order. */
/* Submit the records from rxbuf + off on, numbered from the one after the next record to
 * decrypt (which is just before off, for the reading thread); returns how many (0:
 * nothing to do, or a batch is already in flight). */
unsigned int tls_rx_ahead_start(struct tls_context *ctx, size_t off);
/* The same from any record: reader_first numbers the record at off as the one after the
 * next (the reader's); otherwise off is the next record itself (the device's batches). */
unsigned int tls_rx_ahead_start_at(struct tls_context *ctx, size_t off, bool reader_first);
/* Records in the batch in flight; whether all of them completed (finish won't wait). */
unsigned int tls_rx_ahead_inflight(const struct tls_context *ctx);
bool tls_rx_ahead_complete(const struct tls_context *ctx);
/* At the end of a read: start a batch on the records queued after the held ones, and
 * return without waiting (the next call on the socket collects it). */
void tls_rx_ahead_kick(struct tls_context *ctx);
/* Whether a batch is in flight; whether it starts with the record at rxbuf + off. */
bool tls_rx_ahead_busy(const struct tls_context *ctx);
bool tls_rx_ahead_due(const struct tls_context *ctx, size_t off);
/* Wait for the batch in flight and attach the usable prefix as held records. Called
 * (under the RX lock) when the reader reaches the batch's first record, and before
 * anything moves or frees the buffer or changes the keys: rx_fill, tls_rx_free, rekey.
 * Meanwhile the reader only decrypts records before the batch and reads headers, which
 * the workers never touch. Drops the results if the stream can no longer take them. */
void tls_rx_ahead_finish(struct tls_context *ctx);
/* At an RX key change: end the batch without using it, and turn the records decrypted
 * ahead that no call has seen back into ciphertext for the new key (as they would be
 * on the inline engine). */
void tls_rx_ahead_reset(struct tls_context *ctx);
void tls_rx_ahead_free(struct tls_context *ctx);

#endif
