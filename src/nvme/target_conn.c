/* target_conn.c - one connection of the NVMe/TCP target, on its own thread with blocking
 * I/O: ICReq/ICResp, capsules and their data (in-capsule, or R2T then H2CData), C2HData
 * and CapsuleResp out, and a C2HTermReq then close for anything the transport forbids. */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "core/sys.h"
#include "nvme/target.h"

/* A fatal transport error: the loop sends a C2HTermReq with these and closes. */
static int term(struct nvmet_conn *q, uint16_t fes, uint32_t fei)
{
	q->fes = fes;
	q->fei = fei;
	return -EPROTO;
}

int nvmet_complete(struct nvmet_conn *q, struct nvmet_req *r)
{
	struct nvme_tcp_rsp rsp;

	memset(&rsp, 0, sizeof(rsp));
	rsp.hdr.type = NVME_TCP_RSP;
	rsp.hdr.hlen = NVME_TCP_RSP_HLEN;
	/* The Linux target: SQ head advances per completion, stays put without flow control. */
	if (!q->sqhd_disabled && q->qsize)
		q->sqhd = (uint16_t)((q->sqhd + 1u) % q->qsize);
	rsp.cqe.dw0 = (uint32_t)r->result;
	rsp.cqe.dw1 = (uint32_t)(r->result >> 32);
	rsp.cqe.sqhd = q->sqhd;
	rsp.cqe.sqid = q->qid;
	rsp.cqe.cid = r->cmd.cid;
	rsp.cqe.status = (uint16_t)(r->status << 1);
	return nvme_tcp_send_pdu(&q->tc, &rsp, NULL, 0, 0);
}

int nvmet_send_data(struct nvmet_conn *q, struct nvmet_req *r, const void *buf, uint32_t len,
		    uint32_t datao, bool last)
{
	struct nvme_tcp_data h;
	struct iovec v = { (void *)buf, len };
	bool success = last && q->sqhd_disabled && q->t->o.c2h_success && !r->status;
	int ret;

	memset(&h, 0, sizeof(h));
	h.hdr.type = NVME_TCP_C2H_DATA;
	h.hdr.hlen = NVME_TCP_DATA_HLEN;
	h.hdr.flags = last ? NVME_TCP_F_DATA_LAST | (success ? NVME_TCP_F_DATA_SUCCESS : 0) : 0;
	h.cccid = r->cmd.cid;
	h.datao = datao;
	h.datal = len;
	ret = nvme_tcp_send_pdu(&q->tc, &h, &v, 1, len);
	if (ret)
		return ret;
	nvmet_count(q->t, c2h_pdus, 1);
	if (!success)
		return 0;
	nvmet_count(q->t, c2h_success, 1);
	return 1;
}

int nvmet_data_out(struct nvmet_conn *q, struct nvmet_req *r, enum nvmet_slot_kind kind,
		   uint64_t off)
{
	unsigned int limit = q->qsize ? q->qsize : 1, i;
	struct nvme_tcp_r2t h;
	struct nvmet_slot *s = NULL;
	int ret;

	if (limit > q->nr_slots)
		limit = q->nr_slots;
	for (i = 0; i < q->nr_slots; i++) {
		if (kind == NVMET_SLOT_CONNECT && q->slots[i].kind == NVMET_SLOT_CONNECT) {
			/* One Connect at a time: its data has one buffer. */
			r->status = NVME_SC_CMD_SEQ_ERROR | NVME_SC_DNR;
			return nvmet_complete(q, r);
		}
		if (!s && q->slots[i].kind == NVMET_SLOT_FREE)
			s = &q->slots[i];
	}
	/* More commands waiting for data than the queue has entries: the host broke
	 * flow control; it may retry. */
	if (!s || q->busy_slots >= limit) {
		r->status = NVME_SC_TRANSIENT_TR_ERR;
		return nvmet_complete(q, r);
	}
	s->kind = (uint8_t)kind;
	s->status = 0;
	s->len = r->len;
	s->done = 0;
	s->off = off;
	s->cmd = r->cmd;
	q->busy_slots++;
	/* One R2T for the whole transfer: the host splits it into H2CData PDUs of at most
	 * MAXH2CDATA, so one R2T per command is outstanding whatever MAXR2T says. */
	memset(&h, 0, sizeof(h));
	h.hdr.type = NVME_TCP_R2T;
	h.hdr.hlen = NVME_TCP_DATA_HLEN;
	h.cccid = r->cmd.cid;
	h.ttag = (uint16_t)(s - q->slots);
	h.r2to = 0;
	h.r2tl = r->len;
	ret = nvme_tcp_send_pdu(&q->tc, &h, NULL, 0, 0);
	if (!ret)
		nvmet_count(q->t, r2ts, 1);
	return ret;
}

static int conn_icreq(struct nvmet_conn *q)
{
	struct nvme_tcp_icreq ic;
	struct nvme_tcp_icresp rsp;
	int ret;

	memcpy(&ic, q->tc.hdr, sizeof(ic));
	if (ic.pfv != NVME_TCP_PFV_1_0)
		return term(q, NVME_TCP_FES_UNSUPPORTED_PARAM,
			    offsetof(struct nvme_tcp_icreq, pfv));
	if (ic.hpda > 31)
		return term(q, NVME_TCP_FES_INVALID_PDU_HDR, offsetof(struct nvme_tcp_icreq, hpda));
	memset(&rsp, 0, sizeof(rsp));
	rsp.hdr.type = NVME_TCP_ICRESP;
	rsp.hdr.hlen = NVME_TCP_IC_HLEN;
	rsp.pfv = NVME_TCP_PFV_1_0;
	rsp.cpda = 0;
	rsp.dgst = ic.dgst & (NVME_TCP_HDGST_ENABLE | NVME_TCP_DDGST_ENABLE);
	rsp.maxh2cdata = q->t->o.maxh2cdata;
	ret = nvme_tcp_send_pdu(&q->tc, &rsp, NULL, 0, 0);
	if (ret)
		return ret;
	/* Digests and alignment apply from the PDU after the ICResp. */
	q->tc.hdgst = rsp.dgst & NVME_TCP_HDGST_ENABLE;
	q->tc.ddgst = rsp.dgst & NVME_TCP_DDGST_ENABLE;
	q->tc.tx_pda = ic.hpda;
	q->maxr2t = ic.maxr2t;
	q->ic_done = true;
	return 0;
}

static uint32_t inline_max(const struct nvmet_conn *q)
{
	uint32_t io = q->t->o.ioccsz;

	/* The admin queue (and a queue not connected yet) takes a Connect's 1 KiB and more,
	 * as the Linux host's 8 KiB admin capsules; I/O queues what IOCCSZ says. */
	if (q->ctrl && q->qid)
		return io;
	return io > NVMET_ADMIN_INLINE ? io : NVMET_ADMIN_INLINE;
}

/* The command's data descriptor against what the capsule carried: a status, or 0 with
 * *take set when the capsule's data is the command's. */
static uint16_t map_sgl(struct nvmet_conn *q, struct nvmet_req *r, size_t incap, bool *take)
{
	const struct nvme_sgl_desc *sgl = &r->cmd.dptr;

	*take = false;
	if (r->cmd.flags & 0x3)		/* fused operations */
		return NVME_SC_INVALID_FIELD | NVME_SC_DNR;
	if ((r->cmd.flags & 0xc0) != NVME_CMD_FLAGS_SGL)	/* Fabrics: SGLs only */
		return NVME_SC_INVALID_FIELD | NVME_SC_DNR;
	r->len = sgl->length;
	if (!r->len)
		return incap ? NVME_SC_SGL_INVALID_DATA | NVME_SC_DNR : 0;
	if (sgl->type == NVME_SGL_INCAPSULE) {
		if (!(r->cmd.opcode & 1))	/* data to the host is never in the capsule */
			return NVME_SC_INVALID_FIELD | NVME_SC_DNR;
		if (sgl->addr || r->len > inline_max(q))
			return NVME_SC_SGL_INVALID_OFFSET | NVME_SC_DNR;
		if (incap != r->len)
			return NVME_SC_SGL_INVALID_DATA | NVME_SC_DNR;
		*take = true;
		return 0;
	}
	if (sgl->type != NVME_SGL_TRANSPORT)
		return NVME_SC_SGL_INVALID_TYPE | NVME_SC_DNR;
	return incap ? NVME_SC_SGL_INVALID_DATA | NVME_SC_DNR : 0;
}

/* A cid already in use on this queue: a command waiting for data, or a held AER. */
static bool cid_busy(const struct nvmet_conn *q, uint16_t cid)
{
	for (int i = 0; i < q->nr_aer; i++)
		if (q->aer_cid[i] == cid)
			return true;
	for (unsigned int i = 0, n = 0; n < q->busy_slots && i < q->nr_slots; i++) {
		if (q->slots[i].kind == NVMET_SLOT_FREE)
			continue;
		if (q->slots[i].cmd.cid == cid)
			return true;
		n++;
	}
	return false;
}

static int conn_cmd(struct nvmet_conn *q)
{
	struct ulpo_nvmet *t = q->t;
	struct nvmet_req r;
	size_t incap = q->tc.data_len;
	bool take;
	int ret;

	memset(&r, 0, sizeof(r));
	memcpy(&r.cmd, q->tc.hdr + sizeof(struct nvme_tcp_hdr), sizeof(r.cmd));
	if (q->ctrl)
		atomic_store_explicit(&q->ctrl->last_cmd_ms, ulpo_now_ms(), memory_order_relaxed);
	if (q->ctrl && q->qid)
		nvmet_count(t, io_cmds, 1);
	else
		nvmet_count(t, admin_cmds, 1);
	r.status = map_sgl(q, &r, incap, &take);
	if (take) {
		struct iovec v = { q->buf, incap };
		uint32_t crc = 0;

		ret = nvme_tcp_recv_data(&q->tc, &v, 1, incap, q->tc.ddgst ? &crc : NULL);
		if (ret < 0)
			return ret;
		if (ret) {
			/* Not fatal: this command fails, the stream is still in step. */
			nvmet_count(t, ddgst_errors, 1);
			nvmet_log(t, "qid %u cid %u: data digest error", q->qid, r.cmd.cid);
			r.status = NVME_SC_DATA_XFER_ERROR;
		}
		r.data = q->buf;
	} else if (incap) {
		ret = nvme_tcp_skip_data(&q->tc);
		if (ret < 0)
			return ret;
	}
	if (!r.status && cid_busy(q, r.cmd.cid))
		r.status = NVME_SC_CID_CONFLICT | NVME_SC_DNR;
	if (r.status)
		return nvmet_complete(q, &r);
	if (!q->ctrl)
		return nvmet_exec_connect(q, &r);
	if (r.cmd.opcode == NVME_FABRICS_OPCODE)
		return nvmet_exec_fabrics(q, &r);
	if (!(atomic_load(&q->ctrl->csts) & NVME_CSTS_RDY)) {
		r.status = NVME_SC_CMD_SEQ_ERROR | NVME_SC_DNR;
		return nvmet_complete(q, &r);
	}
	return q->qid ? nvmet_exec_io(q, &r) : nvmet_exec_admin(q, &r);
}

static int conn_h2c(struct nvmet_conn *q)
{
	struct ulpo_nvmet *t = q->t;
	struct nvme_tcp_data h;
	struct nvmet_slot *s;
	struct nvmet_req r;
	struct iovec v;
	uint32_t crc = 0;
	uint8_t kind;
	bool last;
	int ret;

	memcpy(&h, q->tc.hdr, sizeof(h));
	nvmet_count(t, h2c_pdus, 1);
	if (h.ttag >= q->nr_slots || q->slots[h.ttag].kind == NVMET_SLOT_FREE)
		return term(q, NVME_TCP_FES_INVALID_PDU_HDR, offsetof(struct nvme_tcp_data, ttag));
	s = &q->slots[h.ttag];
	if (h.cccid != s->cmd.cid)
		return term(q, NVME_TCP_FES_INVALID_PDU_HDR, offsetof(struct nvme_tcp_data, cccid));
	if (!h.datal || h.datal != q->tc.data_len)
		return term(q, NVME_TCP_FES_INVALID_PDU_HDR, offsetof(struct nvme_tcp_data, datal));
	if (h.datal > t->o.maxh2cdata)
		return term(q, NVME_TCP_FES_R2T_LIMIT_EXCEEDED, 0);
	/* In order and inside the R2T: exactly the next bytes. */
	if (h.datao != s->done || h.datal > s->len - s->done)
		return term(q, NVME_TCP_FES_DATA_OUT_OF_RANGE, 0);
	last = s->done + h.datal == s->len;
	if (!!(h.hdr.flags & NVME_TCP_F_DATA_LAST) != last)
		return term(q, NVME_TCP_FES_INVALID_PDU_HDR, offsetof(struct nvme_tcp_hdr, flags));
	v = (struct iovec){ q->buf, h.datal };
	ret = nvme_tcp_recv_data(&q->tc, &v, 1, h.datal, q->tc.ddgst ? &crc : NULL);
	if (ret < 0)
		return ret;
	if (ret) {
		/* The command fails once all its data is in; the queue goes on. */
		nvmet_count(t, ddgst_errors, 1);
		nvmet_log(t, "qid %u cid %u: H2CData digest error", q->qid, s->cmd.cid);
		if (!s->status)
			s->status = NVME_SC_DATA_XFER_ERROR;
	} else if (!s->status && s->kind == NVMET_SLOT_CONNECT) {
		memcpy(q->connect_data + h.datao, q->buf, h.datal);
	} else if (!s->status) {
		if (nvmet_ns_write(&t->ns, q->buf, h.datal, s->off + h.datao))
			s->status = NVME_SC_INTERNAL;
		else
			nvmet_count(t, write_bytes, h.datal);
	}
	s->done += h.datal;
	if (!last)
		return 0;
	memset(&r, 0, sizeof(r));
	r.cmd = s->cmd;
	r.status = s->status;
	r.len = s->len;
	kind = s->kind;
	s->kind = NVMET_SLOT_FREE;
	q->busy_slots--;
	if (kind == NVMET_SLOT_CONNECT && !r.status)
		return nvmet_connect_data(q, &r, q->connect_data);
	return nvmet_complete(q, &r);
}

static int conn_pdu(struct nvmet_conn *q)
{
	uint8_t type = q->tc.hdr[0];

	if (type == NVME_TCP_H2C_TERM) {
		const struct nvme_tcp_term *tr = (const void *)q->tc.hdr;

		nvmet_log(q->t, "host terminated the connection: fes %u fei %u", tr->fes, tr->fei);
		nvme_tcp_skip_data(&q->tc);
		return -ECONNRESET;
	}
	if (!q->ic_done && type != NVME_TCP_ICREQ)
		return term(q, NVME_TCP_FES_PDU_SEQ_ERR, 0);
	if (!q->ic_done)
		return conn_icreq(q);
	switch (type) {
	case NVME_TCP_CMD:
		return conn_cmd(q);
	case NVME_TCP_H2C_DATA:
		return conn_h2c(q);
	case NVME_TCP_ICREQ:
		return term(q, NVME_TCP_FES_PDU_SEQ_ERR, 0);
	default:			/* a PDU only a controller sends */
		return term(q, NVME_TCP_FES_INVALID_PDU_HDR, offsetof(struct nvme_tcp_hdr, type));
	}
}

/* C2HTermReq, then FIN, then read what the host still sends (bounded) before the close:
 * closing with unread bytes would reset the connection, and the host could lose the
 * TermReq. */
static void conn_terminate(struct nvmet_conn *q)
{
	int64_t end = ulpo_now_ms() + 1000;
	uint8_t sink[4096];
	size_t total = 0;

	nvmet_log(q->t, "qid %u: C2HTermReq fes %u fei %u", q->qid, q->fes, q->fei);
	if (!nvme_tcp_send_term(&q->tc, NVME_TCP_C2H_TERM, q->fes, q->fei))
		nvmet_count(q->t, term_reqs_sent, 1);
	ulpo_sys_shutdown(q->tc.fd, SHUT_WR);
	while (total < (4u << 20)) {
		struct pollfd p = { .fd = q->tc.fd, .events = POLLIN };
		int64_t left = end - ulpo_now_ms();
		ssize_t n;

		if (left <= 0 || ulpo_sys_poll(&p, 1, (int)left) <= 0)
			break;
		n = ulpo_sys_recv(q->tc.fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			break;
		if (n > 0)
			total += (size_t)n;
	}
}

void nvmet_conn_serve(struct nvmet_conn *q)
{
	int ret;

	for (;;) {
		uint16_t fes;
		uint32_t fei;

		ret = nvme_tcp_recv_hdr(&q->tc, &fes, &fei);
		if (ret == -EPROTO) {
			if (fes == NVME_TCP_FES_HDR_DIGEST_ERR)
				nvmet_count(q->t, hdgst_errors, 1);
			term(q, fes, fei);
			break;
		}
		if (ret < 0)
			break;
		ret = conn_pdu(q);
		if (ret < 0)
			break;
	}
	if (ret == -EPROTO)
		conn_terminate(q);
	else if (ret != -ECONNRESET)
		nvmet_log(q->t, "qid %u: connection ends: %s", q->qid, strerror(-ret));
}
