/* tls_tx.c - TX record layer: sendmsg and sendfile fill records from the caller's data
 * (up to the payload limit, held open across MSG_MORE; control records apart) and hand
 * each closed record to the queue in tls_txq.c, which seals and sends them in order
 * (net/tls/tls_sw.c: tls_sw_sendmsg, tls_process_cmsg). */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/stats.h"
#include "core/sys.h"
#include "tls/tls.h"

#ifndef MSG_CMSG_COMPAT
#define MSG_CMSG_COMPAT 0x80000000
#endif
#ifndef MSG_SPLICE_PAGES
#define MSG_SPLICE_PAGES 0x8000000
#endif
/* What tls_sw_sendmsg accepts; the last two are kernel-internal and have no effect. */
#define TX_FLAGS_OK ((int)(MSG_MORE | MSG_DONTWAIT | MSG_NOSIGNAL | MSG_EOR | \
			  MSG_CMSG_COMPAT | MSG_SPLICE_PAGES))
#define TX_MAX_IOV TLS_TX_MAX_IOV

void tls_tx_free(struct tls_context *ctx)
{
	if (ctx->open_buf)
		explicit_bzero(ctx->open_buf, ctx->open_len);
	free(ctx->open_buf);
	ctx->open_buf = NULL;
	ctx->open_len = 0;
	tls_txq_free(ctx);
}

void tls_tx_trim(struct tls_context *ctx)
{
	if (ctx->open_buf && !ctx->open_len) {
		free(ctx->open_buf);	/* wiped as each record was closed */
		ctx->open_buf = NULL;
	}
	tls_txq_trim(ctx);
	tls_crypto_unkey(&ctx->tx);
}

/* TLS_SET_RECORD_TYPE (tls_process_cmsg): only looked at when there is control data,
 * and then a SOL_TLS cmsg must be there; the last one wins. */
static int parse_cmsg(const struct msghdr *msg, int flags, uint8_t *ret_type)
{
	struct cmsghdr *cm;
	bool found = false;

	if (!msg->msg_controllen)
		return 0;
	for (cm = CMSG_FIRSTHDR((struct msghdr *)msg); cm;
	     cm = CMSG_NXTHDR((struct msghdr *)msg, cm)) {
		if (cm->cmsg_len < sizeof(*cm) ||
		    (uint8_t *)cm + cm->cmsg_len > (uint8_t *)msg->msg_control + msg->msg_controllen)
			return -EINVAL;
		if (cm->cmsg_level != SOL_TLS)
			continue;
		if (cm->cmsg_type != TLS_SET_RECORD_TYPE ||
		    cm->cmsg_len < CMSG_LEN(sizeof(unsigned char)) || (flags & MSG_MORE))
			return -EINVAL;
		*ret_type = *CMSG_DATA(cm);
		found = true;
	}
	return found ? 0 : -EINVAL;
}

/* Close the open record, if any: plaintext held from MSG_MORE sends. */
static int close_open(struct tls_context *ctx, int flags)
{
	struct iovec v = { .iov_base = ctx->open_buf, .iov_len = ctx->open_len };
	int r;

	if (!ctx->open_len)
		return 0;
	r = tls_txq_record(ctx, ctx->open_type, &v, 1, ctx->open_len, flags);
	if (r < 0)
		return r;	/* not taken: the record stays open */
	explicit_bzero(ctx->open_buf, ctx->open_len);
	ctx->open_len = 0;
	return 0;
}

struct iov_iter {
	const struct iovec *iov;
	size_t cnt, idx, off, left;
};

static void iter_init(struct iov_iter *it, const struct iovec *iov, size_t cnt)
{
	it->iov = iov;
	it->cnt = cnt;
	it->idx = 0;
	it->off = 0;
	it->left = 0;
	for (size_t i = 0; i < cnt; i++)
		it->left += iov[i].iov_len;
}

/* Take up to `want` bytes from the iterator as at most `max` iovecs. */
static int iter_take(struct iov_iter *it, size_t want, struct iovec *out, int max,
		     size_t *ret_len)
{
	int n = 0;
	size_t got = 0;

	while (got < want && it->idx < it->cnt && n < max) {
		size_t avail = it->iov[it->idx].iov_len - it->off;
		size_t take = want - got < avail ? want - got : avail;

		if (take) {
			out[n].iov_base = (uint8_t *)it->iov[it->idx].iov_base + it->off;
			out[n++].iov_len = take;
			got += take;
			it->off += take;
		}
		if (it->off == it->iov[it->idx].iov_len) {
			it->idx++;
			it->off = 0;
		}
	}
	it->left -= got;
	*ret_len = got;
	return n;
}

/* Copy `len` bytes of the caller's data into the open record. */
static int hold(struct tls_context *ctx, struct iov_iter *it, size_t len, uint8_t type)
{
	struct iovec v[TX_MAX_IOV];
	size_t take;

	if (!ctx->open_buf) {
		ctx->open_buf = malloc(ULPO_TLS_MAX_PAYLOAD);
		if (!ctx->open_buf)
			return -ENOMEM;
	}
	while (len) {
		int n = iter_take(it, len, v, TX_MAX_IOV, &take);

		for (int i = 0; i < n; i++) {
			memcpy(ctx->open_buf + ctx->open_len, v[i].iov_base, v[i].iov_len);
			ctx->open_len += v[i].iov_len;
		}
		len -= take;
	}
	ctx->open_type = type;
	return 0;
}

ssize_t tls_sw_sendmsg(struct ulpo_sock *sk, const struct msghdr *msg, int flags)
{
	struct tls_context *ctx = tls_ctx(sk);
	uint8_t type = ULPO_TLS_RECORD_DATA;
	bool eor = !(flags & MSG_MORE);
	struct iov_iter it;
	size_t copied = 0;
	int r, err;

	if (flags & ~TX_FLAGS_OK)
		return -EOPNOTSUPP;
	if ((flags & MSG_EOR) && (flags & MSG_MORE))
		return -EINVAL;
	tls_tx_lock(ctx);
	if (ctx->toe_tx && !tls_toe_sendable(ctx) && !ctx->txq_broken) {
		/* After shutdown(SHUT_WR) the device sends the FIN next: a record now fails
		 * in TCP and breaks the stream, as on the software path. */
		ctx->txq_broken = true;
		ulpo_sock_set_error(sk, -EBADMSG);
	}
	r = parse_cmsg(msg, flags, &type);
	if (r < 0)
		goto out;
	/* A record type cmsg closes the open data record first: a control record is never
	 * merged with data (a zero-length send with a cmsg does only this). */
	if (msg->msg_controllen && ctx->open_len) {
		r = close_open(ctx, flags);
		if (r < 0)
			goto out;
	}
	iter_init(&it, msg->msg_iov, msg->msg_iovlen);
	while (it.left) {
		size_t room = ctx->tx_max_payload - ctx->open_len;
		size_t want = it.left < room ? it.left : room, take;
		struct iovec v[TX_MAX_IOV];
		struct iov_iter save = it;
		int n = 0;

		err = atomic_load(&sk->err);
		if (err) {
			r = -err;
			break;
		}
		if (it.left < room && !eor && type == ULPO_TLS_RECORD_DATA) {
			/* MSG_MORE and the record is not full: keep the plaintext open. A
			 * record filled exactly is pushed, as the kernel does. */
			r = hold(ctx, &it, want, type);
			if (r < 0)
				break;
			copied += want;
			continue;
		}
		/* This record closes now: seal held plaintext and the caller's bytes
		 * straight from where they are. */
		if (ctx->open_len) {
			v[n].iov_base = ctx->open_buf;
			v[n++].iov_len = ctx->open_len;
		}
		n += iter_take(&it, want, v + n, TX_MAX_IOV - n, &take);
		if (take < want) {
			/* More iovecs than one pass takes: gather into the open record. */
			it = save;
			r = hold(ctx, &it, take, type);
			if (r < 0)
				break;
			copied += take;
			continue;
		}
		r = tls_txq_record(ctx, type, v, n, ctx->open_len + take,
				   flags | (it.left ? MSG_MORE : 0));
		if (r < 0) {
			/* Not taken (e.g. the previous record still waits for TCP). */
			it = save;
			break;
		}
		if (ctx->open_len) {
			explicit_bzero(ctx->open_buf, ctx->open_len);
			ctx->open_len = 0;
		}
		copied += take;
	}
out:
	tls_tx_unlock(ctx);
	if (copied)
		return (ssize_t)copied;
	return r;
}

ssize_t tls_sw_sendfile(struct ulpo_sock *sk, int in_fd, off_t *offset, size_t count)
{
	struct tls_context *ctx = tls_ctx(sk);
	size_t chunk = ctx->tx_max_payload, done = 0;
	uint8_t *buf = malloc(chunk);
	off_t pos = offset ? *offset : 0;
	ssize_t r = 0;

	if (!buf)
		return -ENOMEM;
	while (done < count) {
		size_t want = count - done < chunk ? count - done : chunk;
		ssize_t n = offset ? ulpo_sys_pread(in_fd, buf, want, pos) : ulpo_sys_read(in_fd, buf, want);
		struct iovec v = { .iov_base = buf, .iov_len = (size_t)n };
		struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };

		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		/* Like splice: MSG_MORE until the last chunk, then the record closes. */
		r = tls_sw_sendmsg(sk, &m, done + (size_t)n < count ? MSG_MORE : 0);
		if (r < 0)
			break;
		done += (size_t)r;
		pos += r;
		if (r < n) {
			if (!offset)	/* give back what was read but not sent */
				lseek(in_fd, (off_t)r - n, SEEK_CUR);
			break;
		}
	}
	if (done < count && r >= 0) {
		/* The file ended early: close the record with what was sent (splice_eof). */
		tls_tx_lock(ctx);
		close_open(ctx, 0);
		tls_tx_unlock(ctx);
	}
	explicit_bzero(buf, chunk);
	free(buf);
	if (offset)
		*offset = pos;
	return done ? (ssize_t)done : r;
}
