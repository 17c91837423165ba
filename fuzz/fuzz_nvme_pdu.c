/* fuzz_nvme_pdu.c - libFuzzer target for the NVMe/TCP target's connection handler
 * (src/nvme/target_conn.c, the command code under it, src/nvme/pdu.c): the input becomes
 * the byte stream a host sends on one connection, served by nvmet_conn_run on a socketpair
 * (a peer thread writes the stream, then FIN, and reads everything the target sends).
 *
 * Byte 0 chooses a prelude the harness writes first, so that deep states are reachable:
 * bits 0-1: 0 nothing, 1 ICReq, 2 ICReq + admin Connect + CC.EN, 3 ICReq + I/O Connect to
 * a controller made beforehand on a second connection (a scripted host, tests/nvme/
 * nvmet_host.h); bit 2/3 header/data digest asked; bits 4-5 HPDA 0/1/3/31; bit 7 Connect
 * disables SQ flow control (the target then ends reads with C2HData SUCCESS). Bit 6: the
 * rest is framed items instead of raw bytes; an item is [sel][flags][len:2][len bytes]:
 * type by sel & 7 (CMD x3, H2CData x2, ICReq, H2CTermReq, or sel >> 3 as is), the first
 * bytes after the common header come from the item, the rest is data; PLEN, PDO, digest
 * flags and digests are computed as a host would (flags 0x80/0x40 damage the header/data
 * digest, 0x10 makes a command's SGL in-capsule with the data's length, 0x04 is LAST).
 *
 * Checked: sanitizers (no overflow, leak, UB, thread or fd left), the handler returns for
 * every input, and everything the target sent is well framed: ICResp first, digests that
 * verify, PDO aligned to HPDA, DATAL equal to the data, nothing after a C2HTermReq. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/crc32c.h"
#include "nvme/target.h"
#include "nvmet_host.h"

#define MAX_OUT (4u << 20)	/* target output kept for the framing check */
#define NQN ULPO_NVME_DEFAULT_SUBNQN

#define FAIL(...)                                                                     \
	do {                                                                          \
		fprintf(stderr, "fuzz_nvme_pdu: " __VA_ARGS__);                       \
		fputc('\n', stderr);                                                  \
		abort();                                                              \
	} while (0)

struct wire {
	uint8_t *b;
	size_t n, cap;
	bool hd, dd, ic_seen;
	uint16_t cid;
};

static void w_put(struct wire *w, const void *p, size_t n)
{
	if (n > w->cap - w->n)
		n = w->cap - w->n;
	if (!n)
		return;
	memcpy(w->b + w->n, p, n);
	w->n += n;
}

static void w_le32(struct wire *w, uint32_t v)
{
	w_put(w, &v, 4);		/* little endian, as the wire */
}

/* One PDU as a host frames it (HPDA 0 on our side: the target asks CPDA 0). */
static void w_pdu(struct wire *w, void *hdr, const void *data, uint32_t len, bool bad_hd,
		  bool bad_dd)
{
	struct nvme_tcp_hdr *h = hdr;
	bool plain = h->type == NVME_TCP_ICREQ || h->type == NVME_TCP_H2C_TERM;
	uint32_t hd = !plain && w->hd ? 4 : 0, dd = !plain && w->dd && len ? 4 : 0;

	h->flags &= ~(NVME_TCP_F_HDGST | NVME_TCP_F_DDGST);
	h->flags |= (hd ? NVME_TCP_F_HDGST : 0) | (dd ? NVME_TCP_F_DDGST : 0);
	h->pdo = (uint8_t)(len && !plain ? h->hlen + hd : 0);
	h->plen = h->hlen + hd + len + dd;
	w_put(w, hdr, h->hlen);
	if (hd)
		w_le32(w, ulpo_crc32c(0, hdr, h->hlen) ^ bad_hd);
	w_put(w, data, len);
	if (dd)
		w_le32(w, ulpo_crc32c(0, data, len) ^ (uint32_t)bad_dd << 7);
	if (h->type == NVME_TCP_ICREQ && !w->ic_seen) {
		/* The target honours the first ICReq only. */
		const struct nvme_tcp_icreq *ic = hdr;

		w->ic_seen = true;
		w->hd = ic->dgst & NVME_TCP_HDGST_ENABLE;
		w->dd = ic->dgst & NVME_TCP_DDGST_ENABLE;
	}
}

static void w_icreq(struct wire *w, uint8_t dgst, uint8_t hpda)
{
	struct nvme_tcp_icreq ic = { .hdr = { .type = NVME_TCP_ICREQ, .hlen = 128 } };

	ic.dgst = dgst;
	ic.hpda = hpda;
	w_pdu(w, &ic, NULL, 0, false, false);
}

static void w_cmd(struct wire *w, struct nvme_sqe *s, const void *data, uint32_t len)
{
	struct nvme_tcp_cmd c = { .hdr = { .type = NVME_TCP_CMD, .hlen = 72 } };

	s->cid = ++w->cid;
	s->flags = NVME_CMD_FLAGS_SGL;
	s->dptr.length = len;
	s->dptr.type = NVME_SGL_INCAPSULE;
	c.sqe = *s;
	w_pdu(w, &c, data, len, false, false);
}

static void w_connect(struct wire *w, uint16_t qid, uint16_t cntlid, uint8_t cattr)
{
	struct nvme_sqe s = th_sqe_fabrics(NVME_FCTYPE_CONNECT);
	struct nvmf_connect_data d;

	th_connect_data(&d, cntlid, NQN, TH_HOSTNQN);
	s.cdw10 = (uint32_t)qid << 16;
	s.cdw11 = 15 | (uint32_t)cattr << 16;
	w_cmd(w, &s, &d, sizeof(d));
}

/* Framed items: see the top of the file. */
static void w_items(struct wire *w, const uint8_t *p, size_t n)
{
	static const uint8_t types[7] = { NVME_TCP_CMD, NVME_TCP_CMD, NVME_TCP_CMD,
					  NVME_TCP_H2C_DATA, NVME_TCP_H2C_DATA, NVME_TCP_ICREQ,
					  NVME_TCP_H2C_TERM };

	while (n >= 4 && w->n < w->cap) {
		uint8_t sel = p[0], fl = p[1], type = (sel & 7) < 7 ? types[sel & 7] : sel >> 3;
		size_t len = (size_t)(p[2] | p[3] << 8), hlen, spec;
		uint8_t hdr[NVME_TCP_MAX_HLEN] = { 0 };

		p += 4;
		n -= 4;
		if (len > n)
			len = n;
		hlen = type == NVME_TCP_ICREQ ? 128 : type == NVME_TCP_CMD ? 72 : 24;
		spec = len < hlen - 8 ? len : hlen - 8;
		hdr[0] = type;
		hdr[1] = fl & (NVME_TCP_F_DATA_LAST | NVME_TCP_F_DATA_SUCCESS);
		hdr[2] = (uint8_t)hlen;
		memcpy(hdr + 8, p, spec);
		if (type == NVME_TCP_CMD && (fl & 0x10)) {
			struct nvme_sqe *s = (struct nvme_sqe *)(hdr + 8);

			s->flags = (s->flags & 0x3f) | NVME_CMD_FLAGS_SGL;
			s->dptr.type = NVME_SGL_INCAPSULE;
			s->dptr.addr = 0;
			s->dptr.length = (uint32_t)(len - spec);
		}
		w_pdu(w, hdr, p + spec, (uint32_t)(len - spec), fl & 0x80, fl & 0x40);
		p += len;
		n -= len;
	}
}

/* ---- the peer: writes the stream, reads the target's ---- */

struct peer {
	int fd;
	const uint8_t *wire;
	size_t len;
	uint8_t *out;
	size_t out_len, out_cap;
	bool truncated;
};

static void *peer_main(void *arg)
{
	struct peer *pr = arg;
	size_t sent = 0;
	bool shut = false;
	uint8_t tmp[16384];

	fcntl(pr->fd, F_SETFL, O_NONBLOCK);
	for (;;) {
		struct pollfd p = { .fd = pr->fd, .events = POLLIN };
		ssize_t n;

		if (sent == pr->len && !shut) {
			shutdown(pr->fd, SHUT_WR);	/* the target's read sees the end */
			shut = true;
		}
		if (!shut)
			p.events |= POLLOUT;
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			break;
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(pr->fd, tmp, sizeof(tmp));
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				break;	/* the target closed: all it sent is in */
			if (n > 0 && pr->out_len + (size_t)n > pr->out_cap &&
			    pr->out_cap < MAX_OUT) {
				pr->out_cap = pr->out_cap ? 2 * pr->out_cap : 65536;
				pr->out = realloc(pr->out, pr->out_cap);
			}
			if (n > 0 && pr->out_len + (size_t)n <= pr->out_cap) {
				memcpy(pr->out + pr->out_len, tmp, (size_t)n);
				pr->out_len += (size_t)n;
			} else if (n > 0) {
				pr->truncated = true;
			}
		}
		if (!shut && (p.revents & POLLOUT)) {
			n = send(pr->fd, pr->wire + sent, pr->len - sent, MSG_NOSIGNAL);
			if (n > 0)
				sent += (size_t)n;
			else if (n < 0 && errno != EAGAIN && errno != EINTR)
				sent = pr->len;		/* the target stopped reading */
		}
	}
	if (!shut)
		shutdown(pr->fd, SHUT_WR);
	return NULL;
}

/* Everything the target sent must be framed right, whatever it was sent. */
static void check_output(const uint8_t *b, size_t n, bool truncated, int hpda)
{
	bool hd = false, dd = false, ic = false, term = false;

	for (size_t off = 0; off < n;) {
		struct nvme_tcp_hdr h;
		uint32_t want, hdl, dlen = 0, crc;

		if (term)
			FAIL("a PDU after the C2HTermReq");
		if (n - off < sizeof(h)) {
			if (truncated)
				return;
			FAIL("a partial PDU header at the end");
		}
		memcpy(&h, b + off, sizeof(h));
		want = h.type == NVME_TCP_ICRESP ? 128 :
		       h.type == NVME_TCP_C2H_TERM || h.type == NVME_TCP_RSP ||
		       h.type == NVME_TCP_C2H_DATA || h.type == NVME_TCP_R2T ? 24 : 0;
		if (!want || h.hlen != want || h.plen < h.hlen)
			FAIL("bad PDU: type %u hlen %u plen %u", h.type, h.hlen, h.plen);
		if (h.plen > n - off) {
			if (truncated)
				return;
			FAIL("a partial PDU at the end");
		}
		if (h.type == NVME_TCP_ICRESP) {
			const struct nvme_tcp_icresp *r = (const void *)(b + off);

			if (ic || off || h.plen != 128 || h.flags || r->pfv || r->maxh2cdata < 4096)
				FAIL("bad ICResp");
			ic = true;
			hd = r->dgst & NVME_TCP_HDGST_ENABLE;
			dd = r->dgst & NVME_TCP_DDGST_ENABLE;
		} else if (h.type == NVME_TCP_C2H_TERM) {
			if (h.flags || h.plen - h.hlen > NVME_TCP_TERM_MAX_DATA)
				FAIL("bad C2HTermReq");
			term = true;
		} else {
			if (!ic)
				FAIL("type %u before ICResp", h.type);
			hdl = hd ? 4 : 0;
			if (!!(h.flags & NVME_TCP_F_HDGST) != hd || h.plen < h.hlen + hdl)
				FAIL("header digest flag");
			if (hd && (crc = ulpo_crc32c(0, b + off, h.hlen),
				   memcmp(&crc, b + off + h.hlen, 4)))
				FAIL("header digest");
			if (h.pdo) {
				uint32_t align = hpda >= 0 ? (hpda + 1u) * 4 : 4;
				bool ddf = h.flags & NVME_TCP_F_DDGST;

				if (h.type != NVME_TCP_C2H_DATA || h.pdo < h.hlen + hdl ||
				    h.pdo % align || ddf != dd || h.plen <= h.pdo + (ddf ? 4 : 0))
					FAIL("bad data framing: type %u pdo %u", h.type, h.pdo);
				dlen = h.plen - h.pdo - (ddf ? 4 : 0);
				if (ddf && (crc = ulpo_crc32c(0, b + off + h.pdo, dlen),
					    memcmp(&crc, b + off + h.pdo + dlen, 4)))
					FAIL("data digest");
			} else if (h.plen != h.hlen + hdl || (h.flags & NVME_TCP_F_DDGST)) {
				FAIL("type %u: stray bytes", h.type);
			}
			if (h.type == NVME_TCP_C2H_DATA) {
				const struct nvme_tcp_data *d = (const void *)(b + off);

				if (!dlen || d->datal != dlen)
					FAIL("C2HData DATAL %u, %u bytes", d->datal, dlen);
			}
		}
		off += h.plen;
	}
}

struct admin_conn {
	struct ulpo_nvmet *t;
	int fd;
};

static void *admin_main(void *arg)
{
	struct admin_conn *a = arg;

	nvmet_conn_run(a->t, a->fd);
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t hpdas[4] = { 0, 1, 3, 31 };
	uint8_t mode = size ? data[0] : 0, prelude = mode & 3;
	struct ulpo_nvmet_opts o = { .ram_bytes = 256u << 10, .maxh2cdata = 8192, .mqes = 32,
				     .max_io_queues = 2, .c2h_success = true };
	/* Framing adds at most 136 bytes per 4-byte item header; the preludes ~1.3 KiB. */
	struct wire w = { .cap = 2048 + size * 40 };
	struct peer pr = { .fd = -1 };
	struct admin_conn ac = { .fd = -1 };
	struct ulpo_nvmet *t;
	pthread_t peer, adm;
	int sv[2], av[2], hpda = -1;
	struct th_q aq;
	int cntlid = 1;

	w.b = malloc(w.cap);
	if (!w.b || nvmet_create(&o, &t))
		abort();
	if (size)
		data++, size--;
	if (prelude == 3) {
		/* A controller on a second connection, made by a well-behaved host. */
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, av))
			abort();
		ac = (struct admin_conn){ .t = t, .fd = av[1] };
		pthread_create(&adm, NULL, admin_main, &ac);
		cntlid = th_admin(&aq, av[0], NQN, 0, true);
		if (cntlid <= 0)
			FAIL("the admin queue did not come up: %d", cntlid);
	}
	if (prelude) {
		hpda = hpdas[mode >> 4 & 3];
		w_icreq(&w, (uint8_t)((mode >> 2) & 3), (uint8_t)hpda);
		if (prelude == 2) {
			struct nvme_sqe s = th_sqe_fabrics(NVME_FCTYPE_PROPERTY_SET);

			w_connect(&w, 0, 0xffff, mode & 0x80 ? 4 : 0);
			s.cdw11 = NVME_REG_CC;
			s.cdw12 = TH_CC_ENABLE;
			w_cmd(&w, &s, NULL, 0);
		} else if (prelude == 3) {
			w_connect(&w, 1, (uint16_t)cntlid, mode & 0x80 ? 4 : 0);
		}
	} else if (size >= 128 && data[0] == NVME_TCP_ICREQ && (mode & 0x40) == 0) {
		hpda = data[10];	/* raw: the input's own ICReq, if the target takes it */
	}
	if (mode & 0x40)
		w_items(&w, data, size);
	else
		w_put(&w, data, size);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		abort();
	pr.fd = sv[0];
	pr.wire = w.b;
	pr.len = w.n;
	pthread_create(&peer, NULL, peer_main, &pr);
	nvmet_conn_run(t, sv[1]);	/* returns when the connection ends; closes sv[1] */
	pthread_join(peer, NULL);
	close(sv[0]);
	check_output(pr.out, pr.out_len, pr.truncated, hpda > 31 ? -1 : hpda);
	if (prelude == 3) {
		close(av[0]);		/* ends the admin connection */
		pthread_join(adm, NULL);
	}
	ulpo_nvmet_stop(t);
	free(w.b);
	free(pr.out);
	return 0;
}
