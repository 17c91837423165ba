/* nvmet_host.h - a hand-driven NVMe/TCP host on src/nvme/pdu.c, for the target's tests
 * and fuzzer: ICReq, one command at a time (R2T answered with H2CData split at
 * MAXH2CDATA, C2HData gathered), and what came back (CQE, PDUs seen, a TermReq). */
#ifndef ULPO_TESTS_NVMET_HOST_H
#define ULPO_TESTS_NVMET_HOST_H

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nvme/pdu.h"

#define TH_HOSTNQN "nqn.2014-08.org.nvmexpress:uuid:0b4ee6c3-7e0b-4f0a-9d46-ulpo-tests"

struct th_q {
	struct nvme_tcp_conn tc;
	uint16_t cid;
	uint32_t maxh2cdata;
	uint8_t cpda;
};

/* What one command produced besides its CQE. */
struct th_res {
	struct nvme_cqe cqe;
	bool success_flag;		/* ended by C2HData SUCCESS, no CQE */
	unsigned int c2h, r2t, h2c;	/* PDUs seen / sent */
	uint8_t last_c2h_flags;
	bool c2h_bad;			/* C2HData out of order, LAST misplaced, bad pdo */
	uint16_t fes;			/* a C2HTermReq came: its FES and FEI */
	uint32_t fei;
};

static inline int th_tcp(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		int r = -errno;

		close(fd);
		return r;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static inline void th_init(struct th_q *q, int fd)
{
	nvme_tcp_conn_init(&q->tc, fd);
	q->cid = 0;
	q->maxh2cdata = 0;
}

static inline int th_icreq(struct th_q *q, bool hd, bool dd, uint8_t hpda)
{
	struct nvme_tcp_icreq ic;
	struct nvme_tcp_icresp rsp;
	uint16_t fes;
	uint32_t fei;
	int r;

	memset(&ic, 0, sizeof(ic));
	ic.hdr.type = NVME_TCP_ICREQ;
	ic.hdr.hlen = NVME_TCP_IC_HLEN;
	ic.hpda = hpda;
	ic.dgst = (hd ? NVME_TCP_HDGST_ENABLE : 0) | (dd ? NVME_TCP_DDGST_ENABLE : 0);
	r = nvme_tcp_send_pdu(&q->tc, &ic, NULL, 0, 0);
	if (!r)
		r = nvme_tcp_recv_hdr(&q->tc, &fes, &fei);
	if (r)
		return r;
	memcpy(&rsp, q->tc.hdr, sizeof(rsp));
	if (rsp.hdr.type != NVME_TCP_ICRESP || rsp.dgst != ic.dgst)
		return -EPROTO;
	q->tc.hdgst = hd;
	q->tc.ddgst = dd;
	q->tc.rx_pda = hpda;
	q->tc.tx_pda = rsp.cpda;
	q->cpda = rsp.cpda;
	q->maxh2cdata = rsp.maxh2cdata;
	return 0;
}

/* Send a capsule: its cid and SGL are set here (in-capsule data, or transport SGL of
 * len bytes), unless keep_sgl. */
static inline int th_send_cmd(struct th_q *q, struct nvme_sqe *sqe, const void *incap,
			      size_t len, bool keep_sgl)
{
	struct nvme_tcp_cmd c;
	struct iovec v = { (void *)incap, incap ? len : 0 };

	memset(&c, 0, sizeof(c));
	c.hdr.type = NVME_TCP_CMD;
	c.hdr.hlen = NVME_TCP_CMD_HLEN;
	if (!keep_sgl) {
		sqe->cid = ++q->cid;
		sqe->flags |= NVME_CMD_FLAGS_SGL;
		memset(&sqe->dptr, 0, sizeof(sqe->dptr));
		sqe->dptr.length = (uint32_t)len;
		sqe->dptr.type = incap ? NVME_SGL_INCAPSULE : NVME_SGL_TRANSPORT;
	}
	c.sqe = *sqe;
	return nvme_tcp_send_pdu(&q->tc, &c, &v, 1, v.iov_len);
}

static inline int th_send_h2c(struct th_q *q, uint16_t cid, uint16_t ttag, uint32_t off,
			      const void *buf, uint32_t len, bool last)
{
	struct nvme_tcp_data h;
	struct iovec v = { (void *)buf, len };

	memset(&h, 0, sizeof(h));
	h.hdr.type = NVME_TCP_H2C_DATA;
	h.hdr.hlen = NVME_TCP_DATA_HLEN;
	h.hdr.flags = last ? NVME_TCP_F_DATA_LAST : 0;
	h.cccid = cid;
	h.ttag = ttag;
	h.datao = off;
	h.datal = len;
	return nvme_tcp_send_pdu(&q->tc, &h, &v, 1, len);
}

/* Receive until the command with cid ends: answer R2Ts from out, place C2HData into in.
 * 0 (res->cqe holds the CQE unless success_flag), -EPROTO after a C2HTermReq (res->fes),
 * or -errno. */
static inline int th_wait(struct th_q *q, uint16_t cid, const void *out, size_t outlen,
			  void *in, size_t inlen, struct th_res *res)
{
	uint32_t next_datao = 0;

	for (;;) {
		uint16_t fes;
		uint32_t fei, crc = 0;
		uint8_t type;
		int r = nvme_tcp_recv_hdr(&q->tc, &fes, &fei);

		if (r)
			return r;
		type = q->tc.hdr[0];
		if (type == NVME_TCP_C2H_TERM) {
			struct nvme_tcp_term t;

			memcpy(&t, q->tc.hdr, sizeof(t));
			res->fes = t.fes;
			res->fei = t.fei;
			nvme_tcp_skip_data(&q->tc);
			return -EPROTO;
		}
		if (type == NVME_TCP_RSP) {
			memcpy(&res->cqe, q->tc.hdr + sizeof(struct nvme_tcp_hdr), sizeof(res->cqe));
			if (res->cqe.cid == cid)
				return 0;
			continue;	/* another command's (the tests run one at a time) */
		}
		if (type == NVME_TCP_R2T) {
			struct nvme_tcp_r2t t;

			memcpy(&t, q->tc.hdr, sizeof(t));
			res->r2t++;
			if (!out || (uint64_t)t.r2to + t.r2tl > outlen || !q->maxh2cdata)
				return -ERANGE;
			for (uint32_t off = t.r2to, end = t.r2to + t.r2tl; off < end;) {
				uint32_t n = end - off < q->maxh2cdata ? end - off : q->maxh2cdata;

				r = th_send_h2c(q, t.cccid, t.ttag, off, (const uint8_t *)out + off, n,
						off + n == end);
				if (r)
					return r;
				res->h2c++;
				off += n;
			}
			continue;
		}
		if (type != NVME_TCP_C2H_DATA)
			return -EBADMSG;
		{
			struct nvme_tcp_data d;
			struct iovec v;

			memcpy(&d, q->tc.hdr, sizeof(d));
			if (!in || (uint64_t)d.datao + d.datal > inlen || d.datal != q->tc.data_len)
				return -ERANGE;
			if (d.datao != next_datao || (res->last_c2h_flags & NVME_TCP_F_DATA_LAST))
				res->c2h_bad = true;
			if (q->tc.rx_pda && d.hdr.pdo % ((q->tc.rx_pda + 1u) * 4))
				res->c2h_bad = true;
			next_datao = d.datao + d.datal;
			v = (struct iovec){ (uint8_t *)in + d.datao, d.datal };
			r = nvme_tcp_recv_data(&q->tc, &v, 1, d.datal, q->tc.ddgst ? &crc : NULL);
			if (r)
				return r < 0 ? r : -EBADMSG;
			res->c2h++;
			res->last_c2h_flags = d.hdr.flags;
			if (d.hdr.flags & NVME_TCP_F_DATA_SUCCESS) {
				res->success_flag = true;
				return 0;
			}
		}
	}
}

/* One command: out (in-capsule when incap, else by R2T) or in, then its end. */
static inline int th_exec(struct th_q *q, struct nvme_sqe *sqe, const void *out, size_t outlen,
			  bool incap, void *in, size_t inlen, struct th_res *res)
{
	int r;

	memset(res, 0, sizeof(*res));
	r = th_send_cmd(q, sqe, incap ? out : NULL, out ? outlen : inlen, false);
	if (r)
		return r;
	return th_wait(q, sqe->cid, out, outlen, in, inlen, res);
}

/* The status of a CQE as SCT << 8 | SC | DNR (0x4000), as in wire.h. */
static inline uint16_t th_status(const struct th_res *res)
{
	return (uint16_t)(res->cqe.status >> 1);
}

static inline struct nvme_sqe th_sqe(uint8_t opcode, uint32_t nsid)
{
	struct nvme_sqe s;

	memset(&s, 0, sizeof(s));
	s.opcode = opcode;
	s.nsid = nsid;
	return s;
}

static inline struct nvme_sqe th_sqe_fabrics(uint8_t fctype)
{
	return th_sqe(NVME_FABRICS_OPCODE, fctype);
}

static inline struct nvme_sqe th_sqe_rw(uint8_t op, uint32_t nsid, uint64_t slba, uint32_t nlb)
{
	struct nvme_sqe s = th_sqe(op, nsid);

	s.cdw10 = (uint32_t)slba;
	s.cdw11 = (uint32_t)(slba >> 32);
	s.cdw12 = nlb - 1;
	return s;
}

static inline void th_connect_data(struct nvmf_connect_data *d, uint16_t cntlid,
				   const char *subnqn, const char *hostnqn)
{
	memset(d, 0, sizeof(*d));
	memset(d->hostid, 0x5a, sizeof(d->hostid));
	d->cntlid = cntlid;
	strncpy(d->subnqn, subnqn, sizeof(d->subnqn) - 1);
	strncpy(d->hostnqn, hostnqn, sizeof(d->hostnqn) - 1);
}

/* Connect: cdw11 = sqsize | cattr << 16. by_r2t: the data goes by R2T. */
static inline int th_connect(struct th_q *q, uint16_t qid, uint16_t sqsize, uint8_t cattr,
			     uint32_t kato, const struct nvmf_connect_data *d, bool by_r2t,
			     struct th_res *res)
{
	struct nvme_sqe s = th_sqe_fabrics(NVME_FCTYPE_CONNECT);

	s.cdw10 = (uint32_t)qid << 16;
	s.cdw11 = sqsize | (uint32_t)cattr << 16;
	s.cdw12 = kato;
	return th_exec(q, &s, d, sizeof(*d), !by_r2t, NULL, 0, res);
}

static inline int th_prop(struct th_q *q, bool set, bool size8, uint32_t off, uint64_t val,
			  struct th_res *res)
{
	struct nvme_sqe s = th_sqe_fabrics(set ? NVME_FCTYPE_PROPERTY_SET
					       : NVME_FCTYPE_PROPERTY_GET);

	s.cdw10 = size8;
	s.cdw11 = off;
	s.cdw12 = (uint32_t)val;
	s.cdw13 = (uint32_t)(val >> 32);
	return th_exec(q, &s, NULL, 0, false, NULL, 0, res);
}

#define TH_CC_ENABLE (NVME_CC_EN | 6u << NVME_CC_IOSQES_SHIFT | 4u << NVME_CC_IOCQES_SHIFT)

/* An admin queue on fd: ICReq, Connect (a new controller), CC.EN unless !enable.
 * Returns the cntlid, or -errno / -EPROTO / -(0x10000 | status). */
static inline int th_admin(struct th_q *q, int fd, const char *subnqn, uint32_t kato,
			   bool enable)
{
	struct nvmf_connect_data d;
	struct th_res res;
	int r;

	th_init(q, fd);
	r = th_icreq(q, false, false, 0);
	if (r)
		return r;
	th_connect_data(&d, 0xffff, subnqn, TH_HOSTNQN);
	r = th_connect(q, 0, 31, 0, kato, &d, false, &res);
	if (r)
		return r;
	if (th_status(&res))
		return -(0x10000 | th_status(&res));
	if (enable) {
		uint16_t cntlid = (uint16_t)res.cqe.dw0;

		r = th_prop(q, true, false, NVME_REG_CC, TH_CC_ENABLE, &res);
		if (r)
			return r;
		if (th_status(&res))
			return -(0x10000 | th_status(&res));
		res.cqe.dw0 = cntlid;
	}
	return (uint16_t)res.cqe.dw0;
}

/* An I/O queue qid of controller cntlid on fd, with digests and hpda as asked. */
static inline int th_ioq(struct th_q *q, int fd, const char *subnqn, uint16_t cntlid,
			 uint16_t qid, bool hd, bool dd, uint8_t hpda, uint8_t cattr)
{
	struct nvmf_connect_data d;
	struct th_res res;
	int r;

	th_init(q, fd);
	r = th_icreq(q, hd, dd, hpda);
	if (r)
		return r;
	th_connect_data(&d, cntlid, subnqn, TH_HOSTNQN);
	r = th_connect(q, qid, 31, cattr, 0, &d, false, &res);
	if (r)
		return r;
	return th_status(&res) ? -(0x10000 | th_status(&res)) : 0;
}

#endif
