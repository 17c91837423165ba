/* pdu.c - NVMe/TCP PDU transport (see pdu.h): framing, digests, alignment. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "core/sys.h"
#include "engine/crc32c.h"
#include "nvme/pdu.h"

#define SEND_MAX_IOV 260

void nvme_tcp_conn_init(struct nvme_tcp_conn *c, int fd)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->max_plen = 128u << 20;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool is_ic(uint8_t type)
{
	return type == NVME_TCP_ICREQ || type == NVME_TCP_ICRESP;
}

static bool is_term(uint8_t type)
{
	return type == NVME_TCP_H2C_TERM || type == NVME_TCP_C2H_TERM;
}

/* Write every byte of iov[0..cnt), advancing through partial writes. */
static int send_all(int fd, struct iovec *iov, int cnt)
{
	while (cnt > 0) {
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
		ssize_t n = ulpo_sys_sendmsg(fd, &m, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

int nvme_tcp_send_pdu(struct nvme_tcp_conn *c, void *hdr, const struct iovec *data, int cnt,
		      size_t datalen)
{
	static const uint8_t zeros[128];
	struct nvme_tcp_hdr *h = hdr;
	struct iovec v[SEND_MAX_IOV];
	uint8_t hd[NVME_TCP_DIGEST_LEN], dd[NVME_TCP_DIGEST_LEN];
	bool hdgst = c->hdgst && !is_ic(h->type) && !is_term(h->type);
	bool ddgst = c->ddgst && datalen && !is_term(h->type);
	uint32_t off = h->hlen + (hdgst ? NVME_TCP_DIGEST_LEN : 0), pdo;
	int n = 0;

	if (cnt < 0 || cnt > SEND_MAX_IOV - 4)
		return -EINVAL;
	pdo = datalen && !is_term(h->type) ? nvme_tcp_pdo(c, h->hlen, c->tx_pda) : 0;
	h->flags = (uint8_t)((h->flags & ~(NVME_TCP_F_HDGST | NVME_TCP_F_DDGST)) |
			     (hdgst ? NVME_TCP_F_HDGST : 0) | (ddgst ? NVME_TCP_F_DDGST : 0));
	h->pdo = (uint8_t)pdo;
	h->plen = (uint32_t)((pdo ? pdo : off) + datalen + (ddgst ? NVME_TCP_DIGEST_LEN : 0));
	v[n++] = (struct iovec){ hdr, h->hlen };
	if (hdgst) {
		put_le32(hd, ulpo_crc32c(0, hdr, h->hlen));
		v[n++] = (struct iovec){ hd, sizeof(hd) };
	}
	if (pdo > off)
		v[n++] = (struct iovec){ (void *)zeros, pdo - off };
	for (int i = 0; i < cnt; i++)
		if (data[i].iov_len)
			v[n++] = data[i];
	if (ddgst) {
		put_le32(dd, ulpo_crc32c_iov(0, data, cnt));
		v[n++] = (struct iovec){ dd, sizeof(dd) };
	}
	return send_all(c->fd, v, n);
}

/* Have at least `need` bytes in rxbuf. In batch mode take whatever the socket has. */
static int fill(struct nvme_tcp_conn *c, size_t need)
{
	while (c->rx_tail - c->rx_head < need) {
		size_t want;
		ssize_t n;

		if (c->rx_head && NVME_TCP_RXBUF - c->rx_head < need) {
			memmove(c->rxbuf, c->rxbuf + c->rx_head, c->rx_tail - c->rx_head);
			c->rx_tail -= c->rx_head;
			c->rx_head = 0;
		}
		want = c->rx_batch ? NVME_TCP_RXBUF - c->rx_tail
				   : need - (c->rx_tail - c->rx_head);
		n = ulpo_sys_recv(c->fd, c->rxbuf + c->rx_tail, want, 0);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c->rx_tail += (size_t)n;
	}
	return 0;
}

int nvme_tcp_try_fill(struct nvme_tcp_conn *c)
{
	size_t first = NVME_TCP_DATA_HLEN, have = c->rx_tail - c->rx_head, want;
	ssize_t n;

	if (have)
		return (int)have;
	c->rx_head = c->rx_tail = 0;
	want = c->rx_batch ? NVME_TCP_RXBUF : first + (c->hdgst ? NVME_TCP_DIGEST_LEN : 0);
	do
		n = ulpo_sys_recv(c->fd, c->rxbuf, want, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return -ECONNRESET;
	if (n < 0)
		return -errno;
	c->rx_tail = (size_t)n;
	return (int)n;
}

static uint8_t expected_hlen(uint8_t type)
{
	switch (type) {
	case NVME_TCP_ICREQ:
	case NVME_TCP_ICRESP:
		return NVME_TCP_IC_HLEN;
	case NVME_TCP_CMD:
		return NVME_TCP_CMD_HLEN;
	case NVME_TCP_RSP:
	case NVME_TCP_H2C_DATA:
	case NVME_TCP_C2H_DATA:
	case NVME_TCP_R2T:
	case NVME_TCP_H2C_TERM:
	case NVME_TCP_C2H_TERM:
		return NVME_TCP_DATA_HLEN;
	default:
		return 0;
	}
}

static bool carries_data(uint8_t type)
{
	return type == NVME_TCP_CMD || type == NVME_TCP_H2C_DATA || type == NVME_TCP_C2H_DATA;
}

#define BAD(f, i) do { *fes = (f); *fei = (i); return -EPROTO; } while (0)

int nvme_tcp_recv_hdr(struct nvme_tcp_conn *c, uint16_t *fes, uint32_t *fei)
{
	struct nvme_tcp_hdr ch;
	uint32_t hd, hlen, datalen;
	int r;

	*fes = 0;
	*fei = 0;
	c->hdr_valid = false;
	if (c->data_len)
		return -EINVAL;		/* the previous PDU's data was not read */
	/* Every PDU's header is at least this long: never more than it. Not the digest:
	 * a TermReq has none, and a bare one is 24 bytes whatever was negotiated. */
	r = fill(c, NVME_TCP_DATA_HLEN);
	if (r < 0)
		return r;
	memcpy(&ch, c->rxbuf + c->rx_head, sizeof(ch));
	hlen = expected_hlen(ch.type);
	if (!hlen)
		BAD(NVME_TCP_FES_INVALID_PDU_HDR, 0);
	if (ch.hlen != hlen)
		BAD(NVME_TCP_FES_INVALID_PDU_HDR, 2);
	if (is_ic(ch.type) || is_term(ch.type)) {
		hd = 0;
		if (ch.flags & (NVME_TCP_F_HDGST | NVME_TCP_F_DDGST))
			BAD(NVME_TCP_FES_INVALID_PDU_HDR, 1);
	} else {
		hd = c->hdgst ? NVME_TCP_DIGEST_LEN : 0;
		if (!!(ch.flags & NVME_TCP_F_HDGST) != c->hdgst)
			BAD(NVME_TCP_FES_INVALID_PDU_HDR, 1);
	}
	if (ch.plen > c->max_plen || ch.plen < hlen + hd)
		BAD(NVME_TCP_FES_INVALID_PDU_HDR, 4);
	c->pad_len = 0;
	c->data_digest = false;
	datalen = ch.plen - hlen - hd;
	if (is_ic(ch.type)) {
		if (ch.plen != hlen)
			BAD(NVME_TCP_FES_INVALID_PDU_HDR, 4);
	} else if (is_term(ch.type)) {
		if (datalen > NVME_TCP_TERM_MAX_DATA)
			BAD(NVME_TCP_FES_INVALID_PDU_HDR, 4);
	} else if (datalen) {
		bool dd = ch.flags & NVME_TCP_F_DDGST;

		if (!carries_data(ch.type))
			BAD(NVME_TCP_FES_INVALID_PDU_HDR, 4);
		if (dd != c->ddgst)
			BAD(NVME_TCP_FES_INVALID_PDU_HDR, 1);
		if (ch.pdo < hlen + hd || ch.pdo >= ch.plen ||
		    (c->rx_pda && ch.pdo % ((c->rx_pda + 1u) * 4)))
			BAD(NVME_TCP_FES_INVALID_PDU_HDR, 3);
		if (dd && ch.plen - ch.pdo <= NVME_TCP_DIGEST_LEN)
			BAD(NVME_TCP_FES_INVALID_PDU_HDR, 4);
		c->pad_len = ch.pdo - hlen - hd;
		c->data_digest = dd;
		datalen = ch.plen - ch.pdo - (dd ? NVME_TCP_DIGEST_LEN : 0);
	} else if (ch.flags & NVME_TCP_F_DDGST) {
		BAD(NVME_TCP_FES_INVALID_PDU_HDR, 1);
	}
	r = fill(c, hlen + hd);
	if (r < 0)
		return r;
	memcpy(c->hdr, c->rxbuf + c->rx_head, hlen + hd);
	if (hd && ulpo_crc32c(0, c->hdr, hlen) != get_le32(c->hdr + hlen))
		BAD(NVME_TCP_FES_HDR_DIGEST_ERR, 0);
	c->rx_head += hlen + hd;
	if (c->pad_len) {
		r = fill(c, c->pad_len);
		if (r < 0)
			return r;
		c->rx_head += c->pad_len;
	}
	c->data_len = datalen;
	c->hdr_valid = true;
	return 0;
}

#undef BAD

/* Read the 4-byte data digest and compare. */
static int recv_ddgst(struct nvme_tcp_conn *c, uint32_t crc, bool check)
{
	int r = fill(c, NVME_TCP_DIGEST_LEN);
	uint32_t got;

	if (r < 0)
		return r;
	got = get_le32(c->rxbuf + c->rx_head);
	c->rx_head += NVME_TCP_DIGEST_LEN;
	c->rx_ddgst = got;
	return !check || got == crc ? 0 : 1;
}

int nvme_tcp_recv_data(struct nvme_tcp_conn *c, const struct iovec *iov, int cnt, size_t len,
		       uint32_t *crc)
{
	struct iovec v[SEND_MAX_IOV];
	size_t skip = 0, left = len;
	int n = 0;

	if (len > c->data_len || cnt < 0 || cnt > SEND_MAX_IOV)
		return -EINVAL;
	/* Bytes already in the buffer: copied. */
	for (int i = 0; i < cnt && left; i++) {
		size_t take = iov[i].iov_len < left ? iov[i].iov_len : left;
		size_t have = c->rx_tail - c->rx_head, k = take < have ? take : have;

		if (k) {
			memcpy(iov[i].iov_base, c->rxbuf + c->rx_head, k);
			c->rx_head += k;
			c->rx_copied += k;
		}
		if (k < take) {
			v[n++] = (struct iovec){ (uint8_t *)iov[i].iov_base + k, take - k };
			skip += take - k;
		}
		left -= take;
	}
	if (left)
		return -EINVAL;		/* iovecs shorter than len */
	/* The rest: from the socket straight into the caller's buffers. */
	for (int i = 0; skip;) {
		struct msghdr m = { .msg_iov = v + i, .msg_iovlen = (size_t)(n - i) };
		ssize_t got = ulpo_sys_recvmsg(c->fd, &m, MSG_WAITALL);

		if (got == 0)
			return -ECONNRESET;
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		skip -= (size_t)got;
		c->rx_direct += (size_t)got;
		while (i < n && (size_t)got >= v[i].iov_len) {
			got -= (ssize_t)v[i].iov_len;
			i++;
		}
		if (i < n) {
			v[i].iov_base = (uint8_t *)v[i].iov_base + got;
			v[i].iov_len -= (size_t)got;
		}
	}
	if (crc) {
		size_t l = len;

		for (int i = 0; i < cnt && l; i++) {
			size_t take = iov[i].iov_len < l ? iov[i].iov_len : l;

			*crc = ulpo_crc32c(*crc, iov[i].iov_base, take);
			l -= take;
		}
	}
	c->data_len -= len;
	if (c->data_len || !c->data_digest)
		return 0;
	return recv_ddgst(c, crc ? *crc : 0, crc != NULL);
}

int nvme_tcp_skip_data(struct nvme_tcp_conn *c)
{
	uint8_t sink[4096];

	while (c->data_len) {
		size_t k = c->data_len < sizeof(sink) ? c->data_len : sizeof(sink);
		struct iovec v = { sink, k };
		int r = nvme_tcp_recv_data(c, &v, 1, k, NULL);

		if (r < 0)
			return r;
	}
	return 0;
}

int nvme_tcp_send_term(struct nvme_tcp_conn *c, uint8_t type, uint16_t fes, uint32_t fei)
{
	struct nvme_tcp_term t;
	struct nvme_tcp_hdr *bad = (struct nvme_tcp_hdr *)c->hdr;
	size_t quote = bad->hlen + (c->hdgst && !is_ic(bad->type) ? NVME_TCP_DIGEST_LEN : 0);
	struct iovec v = { c->hdr, quote };

	if (quote > NVME_TCP_TERM_MAX_DATA || quote > sizeof(c->hdr))
		quote = 0;
	/* A header the transport refused was not consumed: quote it from the buffer. */
	if (!c->hdr_valid) {
		size_t have = c->rx_tail - c->rx_head;

		quote = have < NVME_TCP_TERM_MAX_DATA ? have : NVME_TCP_TERM_MAX_DATA;
		v.iov_base = c->rxbuf + c->rx_head;
	}
	v.iov_len = quote;
	memset(&t, 0, sizeof(t));
	t.hdr.type = type;
	t.hdr.hlen = NVME_TCP_TERM_HLEN;
	t.fes = fes;
	t.fei = fei;
	return nvme_tcp_send_pdu(c, &t, &v, 1, quote);
}
