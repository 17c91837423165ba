/* target_admin.c - the NVMe/TCP target's Fabrics commands (Connect, Property Get/Set) and
 * admin commands (Identify, Set/Get Features, Keep Alive, Async Event Request, Get Log
 * Page), with the statuses the Linux target gives for what it refuses. */
#include <string.h>

#include "core/sys.h"
#include "nvme/target.h"

#define NO_DATA_STATUS (NVME_SC_SGL_INVALID_DATA | NVME_SC_DNR)

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));		/* wire and host are little endian (wire.h) */
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* An ASCII field padded with spaces. */
static void put_str(uint8_t *p, size_t n, const char *s)
{
	size_t l = strlen(s);

	memset(p, ' ', n);
	memcpy(p, s, l < n ? l : n);
}

static int fail(struct nvmet_conn *q, struct nvmet_req *r, uint16_t status)
{
	r->status = status;
	return nvmet_complete(q, r);
}

#define DATA_AT(field) NVMET_IATTR_DATA(offsetof(struct nvmf_connect_data, field))

static uint16_t connect_invalid(struct nvmet_req *r, uint32_t where)
{
	r->result = where;
	return NVME_STATUS(NVME_SCT_CMD_SPECIFIC, NVME_SC_CONNECT_INVALID_PARAM) | NVME_SC_DNR;
}

int nvmet_exec_connect(struct nvmet_conn *q, struct nvmet_req *r)
{
	/* An unconnected queue takes nothing but a Connect. */
	if (r->cmd.opcode != NVME_FABRICS_OPCODE || (r->cmd.nsid & 0xff) != NVME_FCTYPE_CONNECT)
		return fail(q, r, NVME_SC_INVALID_OPCODE | NVME_SC_DNR);
	if (r->len != sizeof(struct nvmf_connect_data))
		return fail(q, r, NVME_SC_SGL_INVALID_DATA | NVME_SC_DNR);
	if (r->data)
		return nvmet_connect_data(q, r, r->data);
	return nvmet_data_out(q, r, NVMET_SLOT_CONNECT, 0);
}

int nvmet_connect_data(struct nvmet_conn *q, struct nvmet_req *r, const uint8_t *data)
{
	struct ulpo_nvmet *t = q->t;
	struct nvmf_connect_data d;
	uint16_t recfmt = r->cmd.cdw10 & 0xffff, qid = r->cmd.cdw10 >> 16;
	uint16_t sqsize = r->cmd.cdw11 & 0xffff, st;
	uint8_t cattr = (uint8_t)(r->cmd.cdw11 >> 16);
	int ret;

	memcpy(&d, data, sizeof(d));
	d.subnqn[sizeof(d.subnqn) - 1] = 0;
	d.hostnqn[sizeof(d.hostnqn) - 1] = 0;
	r->result = 0;
	if (q->ctrl)		/* a Connect by R2T overtaken by one in-capsule */
		st = NVME_STATUS(NVME_SCT_CMD_SPECIFIC, NVME_SC_CONNECT_CTRL_BUSY) | NVME_SC_DNR;
	else if (recfmt)
		st = NVME_STATUS(NVME_SCT_CMD_SPECIFIC, NVME_SC_CONNECT_FORMAT) | NVME_SC_DNR;
	else if (strcmp(d.subnqn, t->subnqn))
		st = connect_invalid(r, DATA_AT(subnqn));
	else if (!sqsize || sqsize >= t->o.mqes)
		st = connect_invalid(r, NVMET_SQE_SQSIZE);
	else if (!qid && d.cntlid != 0xffff)	/* dynamic controllers only */
		st = connect_invalid(r, DATA_AT(cntlid));
	else if (!qid)
		st = nvmet_ctrl_create(q, &d, r->cmd.cdw12, r);
	else
		st = nvmet_ctrl_join(q, &d, qid, r);
	if (st)
		return fail(q, r, st);
	nvmet_log(t, "qid %u of controller %u connected (sqsize %u)", qid, q->ctrl->cntlid,
		  sqsize);
	q->qsize = sqsize + 1;
	q->sqhd = 0;
	if (cattr & 0x4) {
		/* SQ flow control off: the Connect's CQE says 0xffff, later ones leave SQHD 0. */
		q->sqhd_disabled = true;
		q->sqhd = 0xffff;
	}
	ret = nvmet_complete(q, r);
	if (q->sqhd_disabled)
		q->sqhd = 0;
	return ret;
}

static uint64_t reg_cap(const struct ulpo_nvmet *t)
{
	return (uint64_t)(t->o.mqes - 1) |	/* MQES, 0's based */
	       1ull << 16 |			/* CQR: queues are contiguous */
	       0x0full << 24 |			/* TO: 7.5 s to ready */
	       1ull << 37;			/* CSS: NVM command set; MPSMIN/MAX 4 KiB */
}

int nvmet_exec_fabrics(struct nvmet_conn *q, struct nvmet_req *r)
{
	struct nvmet_ctrl *c = q->ctrl;
	uint8_t fctype = r->cmd.nsid & 0xff;
	bool size8 = r->cmd.cdw10 & 1;
	uint32_t off = r->cmd.cdw11;
	uint16_t st = 0;

	/* Properties live on the admin queue; a second Connect is refused as unknown. */
	if (q->qid || (fctype != NVME_FCTYPE_PROPERTY_GET && fctype != NVME_FCTYPE_PROPERTY_SET))
		return fail(q, r, NVME_SC_INVALID_OPCODE | NVME_SC_DNR);
	if (r->len)
		return fail(q, r, NO_DATA_STATUS);
	if (fctype == NVME_FCTYPE_PROPERTY_SET) {
		if (size8 || off != NVME_REG_CC)
			st = NVME_SC_INVALID_FIELD | NVME_SC_DNR;
		else
			nvmet_ctrl_set_cc(c, r->cmd.cdw12);
	} else if (size8) {
		if (off == NVME_REG_CAP)
			r->result = reg_cap(q->t);
		else
			st = NVME_SC_INVALID_FIELD | NVME_SC_DNR;
	} else if (off == NVME_REG_VS) {
		r->result = NVMET_VS;
	} else if (off == NVME_REG_CC) {
		r->result = atomic_load(&c->cc);
	} else if (off == NVME_REG_CSTS) {
		r->result = atomic_load(&c->csts);
	} else {
		st = NVME_SC_INVALID_FIELD | NVME_SC_DNR;
	}
	return fail(q, r, st);
}

static void identify_ctrl(struct nvmet_conn *q, uint8_t *id)
{
	const struct ulpo_nvmet *t = q->t;

	put_str(id + NVME_IDC_SN, 20, t->sn);
	put_str(id + NVME_IDC_MN, 40, "ulpo NVMe/TCP target");
	put_str(id + NVME_IDC_FR, 8, "0.1.0");
	id[72] = 6;				/* RAB */
	id[76] = 1 << 1;			/* CMIC: several controllers */
	id[NVME_IDC_MDTS] = NVMET_MDTS;
	put16(id + NVME_IDC_CNTLID, q->ctrl->cntlid);
	put32(id + NVME_IDC_VER, NVMET_VS);
	id[111] = 1;				/* CNTRLTYPE: I/O controller */
	id[258] = 3;				/* ACL, 0's based */
	id[259] = NVMET_MAX_AER - 1;		/* AERL, 0's based */
	id[261] = 1 << 2;			/* LPA: extended Get Log Page */
	put16(id + NVME_IDC_KAS, NVMET_KAS);
	id[NVME_IDC_SQES] = 0x66;
	id[NVME_IDC_CQES] = 0x44;
	put16(id + NVME_IDC_MAXCMD, t->o.mqes);
	put32(id + NVME_IDC_NN, 1);
	id[525] = 1;				/* VWC: Flush is meaningful */
	/* SGLS: SGLs supported, and the Offset subtype (in-capsule data), as Linux for TCP. */
	put32(id + NVME_IDC_SGLS, 1u << 0 | 1u << 20);
	memcpy(id + NVME_IDC_SUBNQN, t->subnqn, strlen(t->subnqn));
	put32(id + NVME_IDC_IOCCSZ, (t->o.ioccsz + 64) / 16);
	put32(id + NVME_IDC_IORCSZ, 1);
	put16(id + NVME_IDC_ICDOFF, 0);
	id[NVME_IDC_FCATT] = 0;			/* dynamic controller model */
	id[NVME_IDC_MSDBD] = 1;
}

/* Namespace Identification Descriptors (CNS 3): type, length, then the identifier. */
#define NVME_NIDT_NGUID 2
#define NVME_NIDT_UUID 3
#define NVME_IDN_NGUID 104
#define NVME_ID_CNS_NS_DESCS 0x03

static void identify_ns_descs(const struct ulpo_nvmet *t, uint8_t *id)
{
	id[0] = NVME_NIDT_UUID;
	id[1] = 16;
	memcpy(id + 4, t->ns_uuid, 16);
	id[20] = NVME_NIDT_NGUID;
	id[21] = 16;
	memcpy(id + 24, t->ns_uuid, 16);
}

static void identify_ns(const struct ulpo_nvmet *t, const struct nvmet_ns *ns, uint8_t *id)
{
	memcpy(id + NVME_IDN_NGUID, t->ns_uuid, 16);
	put64(id + NVME_IDN_NSZE, ns->nsze);
	put64(id + NVME_IDN_NCAP, ns->nsze);
	put64(id + NVME_IDN_NUSE, ns->nsze);
	id[NVME_IDN_NLBAF] = 0;
	id[NVME_IDN_FLBAS] = 0;
	id[30] = 1;				/* NMIC: may be shared */
	id[NVME_IDN_LBAF0 + 2] = ns->lba_shift;
}

/* Send len bytes of q->buf as the command's data, then its CQE unless SUCCESS ended it. */
static int send_buf(struct nvmet_conn *q, struct nvmet_req *r, uint32_t len)
{
	int ret = nvmet_send_data(q, r, q->buf, len, 0, true);

	if (ret)
		return ret < 0 ? ret : 0;
	return nvmet_complete(q, r);
}

static int admin_identify(struct nvmet_conn *q, struct nvmet_req *r)
{
	uint8_t cns = r->cmd.cdw10 & 0xff, *id = q->buf;
	uint32_t nsid = r->cmd.nsid;

	if (r->len != NVME_IDENTIFY_LEN)
		return fail(q, r, NVME_SC_SGL_INVALID_DATA | NVME_SC_DNR);
	memset(id, 0, NVME_IDENTIFY_LEN);
	switch (cns) {
	case NVME_ID_CNS_CTRL:
		identify_ctrl(q, id);
		break;
	case NVME_ID_CNS_NS:
		if (nsid == 0xffffffff)
			return fail(q, r, NVME_SC_INVALID_NS | NVME_SC_DNR);
		if (nsid == 1)		/* any other: all zeroes, as for an inactive nsid */
			identify_ns(q->t, &q->t->ns, id);
		break;
	case NVME_ID_CNS_NS_DESCS:
		if (nsid != 1)
			return fail(q, r, NVME_SC_INVALID_NS | NVME_SC_DNR);
		identify_ns_descs(q->t, id);
		break;
	case NVME_ID_CNS_NS_ACTIVE_LIST:
		if (nsid >= 0xfffffffe)
			return fail(q, r, NVME_SC_INVALID_NS | NVME_SC_DNR);
		if (nsid < 1)
			put32(id, 1);
		break;
	default:
		return fail(q, r, NVME_SC_INVALID_FIELD | NVME_SC_DNR);
	}
	return send_buf(q, r, NVME_IDENTIFY_LEN);
}

static uint32_t max_queues(const struct ulpo_nvmet *t)
{
	uint32_t n = t->o.max_io_queues - 1u;

	return n | n << 16;
}

static int admin_features(struct nvmet_conn *q, struct nvmet_req *r, bool set)
{
	struct nvmet_ctrl *c = q->ctrl;
	uint8_t fid = r->cmd.cdw10 & 0xff;
	uint32_t v = r->cmd.cdw11;

	if (r->len)
		return fail(q, r, NO_DATA_STATUS);
	if (fid == NVME_FEAT_NUM_QUEUES && set) {
		uint32_t max = q->t->o.max_io_queues - 1u, nsq = v & 0xffff, ncq = v >> 16;

		if (nsq == 0xffff || ncq == 0xffff)
			return fail(q, r, NVME_SC_INVALID_FIELD | NVME_SC_DNR);
		/* Grant what was asked up to our maximum; Connect still takes any qid up
		 * to the maximum, as Linux. */
		c->nr_queues = (nsq < max ? nsq : max) | (ncq < max ? ncq : max) << 16;
		r->result = c->nr_queues;
	} else if (fid == NVME_FEAT_NUM_QUEUES) {
		r->result = c->nr_queues ? c->nr_queues : max_queues(q->t);
	} else if (fid == NVME_FEAT_KATO && set) {
		pthread_mutex_lock(&q->t->lock);	/* the acceptor reads it */
		c->kato_ms = v;
		atomic_store(&c->last_cmd_ms, ulpo_now_ms());
		pthread_mutex_unlock(&q->t->lock);
	} else if (fid == NVME_FEAT_KATO) {
		pthread_mutex_lock(&q->t->lock);
		r->result = c->kato_ms;
		pthread_mutex_unlock(&q->t->lock);
	} else {
		return fail(q, r, NVME_SC_INVALID_FIELD | NVME_SC_DNR);
	}
	return nvmet_complete(q, r);
}

/* Error, SMART and Firmware Slot logs: nothing to report, all zeroes. */
static int admin_log_page(struct nvmet_conn *q, struct nvmet_req *r)
{
	uint8_t lid = r->cmd.cdw10 & 0xff;
	uint64_t len = ((uint64_t)(r->cmd.cdw10 >> 16 | (r->cmd.cdw11 & 0xffff) << 16) + 1) * 4;
	uint32_t chunk = q->buf_len < NVMET_C2H_CHUNK ? (uint32_t)q->buf_len : NVMET_C2H_CHUNK;

	if (len != r->len)
		return fail(q, r, NVME_SC_SGL_INVALID_DATA | NVME_SC_DNR);
	if (len > NVMET_MAX_XFER || lid < 1 || lid > 3)
		return fail(q, r, NVME_SC_INVALID_FIELD | NVME_SC_DNR);
	memset(q->buf, 0, chunk);
	for (uint32_t done = 0; done < len;) {
		uint32_t n = len - done < chunk ? (uint32_t)len - done : chunk;
		int ret = nvmet_send_data(q, r, q->buf, n, done, done + n == len);

		if (ret)
			return ret < 0 ? ret : 0;
		done += n;
	}
	return nvmet_complete(q, r);
}

int nvmet_exec_admin(struct nvmet_conn *q, struct nvmet_req *r)
{
	switch (r->cmd.opcode) {
	case NVME_ADMIN_IDENTIFY:
		return admin_identify(q, r);
	case NVME_ADMIN_SET_FEATURES:
		return admin_features(q, r, true);
	case NVME_ADMIN_GET_FEATURES:
		return admin_features(q, r, false);
	case NVME_ADMIN_GET_LOG_PAGE:
		return admin_log_page(q, r);
	case NVME_ADMIN_KEEP_ALIVE:
		return fail(q, r, r->len ? NO_DATA_STATUS : 0);
	case NVME_ADMIN_ASYNC_EVENT:
		if (q->nr_aer >= NVMET_MAX_AER)
			return fail(q, r, NVME_STATUS(NVME_SCT_CMD_SPECIFIC, NVME_SC_AER_LIMIT) |
					  NVME_SC_DNR);
		/* Held, as the Linux target: completed only by an event, and we have none. */
		q->aer_cid[q->nr_aer++] = r->cmd.cid;
		return 0;
	default:
		return fail(q, r, NVME_SC_INVALID_OPCODE | NVME_SC_DNR);
	}
}
