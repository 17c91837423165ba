/* target_ctrl.c - the NVMe/TCP target's controllers: created by an admin Connect (dynamic
 * model, any free cntlid), joined by I/O Connects that name them, CC/CSTS, Keep Alive
 * expiry, freed with their last queue. Their topology is under t->lock. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/sys.h"
#include "nvme/target.h"

static struct nvmet_ctrl *ctrl_find(struct ulpo_nvmet *t, uint16_t cntlid)
{
	for (struct nvmet_ctrl *c = t->ctrls; c; c = c->next)
		if (c->cntlid == cntlid)
			return c;
	return NULL;
}

uint16_t nvmet_ctrl_create(struct nvmet_conn *q, const struct nvmf_connect_data *d,
			   uint32_t kato_ms, struct nvmet_req *r)
{
	struct ulpo_nvmet *t = q->t;
	struct nvmet_ctrl *c = calloc(1, sizeof(*c));
	uint16_t id = 0;

	if (c)
		c->sqs = calloc(t->o.max_io_queues + 1u, sizeof(*c->sqs));
	if (!c || !c->sqs) {
		if (c)
			free(c->sqs);
		free(c);
		return NVME_SC_INTERNAL;
	}
	c->t = t;
	c->kato_ms = kato_ms;
	memcpy(c->hostnqn, d->hostnqn, sizeof(c->hostnqn));
	c->hostnqn[sizeof(c->hostnqn) - 1] = 0;
	memcpy(c->hostid, d->hostid, sizeof(c->hostid));
	atomic_store(&c->last_cmd_ms, ulpo_now_ms());
	pthread_mutex_lock(&t->lock);
	/* Dynamic controller model: any free cntlid in 1..0xffef. */
	for (int n = 0; n < 0xffef && !id; n++) {
		uint16_t cand = t->next_cntlid;

		t->next_cntlid = cand >= 0xffef ? 1 : cand + 1;
		if (!ctrl_find(t, cand))
			id = cand;
	}
	if (id) {
		c->cntlid = id;
		c->refs = 1;
		c->sqs[0] = q;
		c->next = t->ctrls;
		t->ctrls = c;
		q->ctrl = c;
		q->qid = 0;
	}
	pthread_mutex_unlock(&t->lock);
	if (!id) {
		free(c->sqs);
		free(c);
		return NVME_STATUS(NVME_SCT_CMD_SPECIFIC, NVME_SC_CONNECT_CTRL_BUSY);
	}
	if (kato_ms)
		nvmet_wake(t);
	nvmet_log(t, "controller %u for %s", id, c->hostnqn);
	r->result = id;
	return 0;
}

uint16_t nvmet_ctrl_join(struct nvmet_conn *q, const struct nvmf_connect_data *d, uint16_t qid,
			 struct nvmet_req *r)
{
	struct ulpo_nvmet *t = q->t;
	const uint16_t inval = NVME_STATUS(NVME_SCT_CMD_SPECIFIC, NVME_SC_CONNECT_INVALID_PARAM) |
			       NVME_SC_DNR;
	struct nvmet_ctrl *c;
	uint16_t st = 0;

	pthread_mutex_lock(&t->lock);
	c = ctrl_find(t, d->cntlid);
	if (!c || c->failed || strncmp(c->hostnqn, d->hostnqn, sizeof(d->hostnqn))) {
		r->result = NVMET_IATTR_DATA(offsetof(struct nvmf_connect_data, cntlid));
		st = inval;
	} else if (qid > t->o.max_io_queues) {
		r->result = NVMET_SQE_QID;
		st = inval;
	} else if (c->sqs[qid]) {
		r->result = c->cntlid;
		st = NVME_SC_CMD_SEQ_ERROR | NVME_SC_DNR;
	} else {
		c->sqs[qid] = q;
		c->refs++;
		q->ctrl = c;
		q->qid = qid;
	}
	pthread_mutex_unlock(&t->lock);
	return st;
}

/* CC written by Property Set, with the Linux target's rules: enabling checks the queue
 * entry sizes (else CSTS.CFS), disabling or shutting down clears CC and CSTS.RDY. */
void nvmet_ctrl_set_cc(struct nvmet_ctrl *c, uint32_t cc)
{
	struct ulpo_nvmet *t = c->t;
	uint32_t old, csts, val = cc;

	pthread_mutex_lock(&t->lock);
	old = atomic_load(&c->cc);
	csts = atomic_load(&c->csts);
	if ((cc & NVME_CC_EN) && !(old & NVME_CC_EN)) {
		bool ok = (cc >> NVME_CC_IOSQES_SHIFT & 0xf) == 6 &&
			  (cc >> NVME_CC_IOCQES_SHIFT & 0xf) == 4 &&
			  !(cc & 0x3ff0);	/* CSS NVM, MPS 4 KiB, AMS round robin */

		csts = ok ? NVME_CSTS_RDY : NVME_CSTS_CFS;
		/* Keep Alive counts from enabling, as the host may take its time before. */
		atomic_store(&c->last_cmd_ms, ulpo_now_ms());
	}
	if (!(cc & NVME_CC_EN) && (old & NVME_CC_EN)) {
		csts &= ~NVME_CSTS_RDY;
		val = 0;
	}
	if ((cc & NVME_CC_SHN_MASK) && !(old & NVME_CC_SHN_MASK)) {
		csts = (csts & ~NVME_CSTS_RDY) | NVME_CSTS_SHST_CMPLT;
		val = 0;
	} else if (!(cc & NVME_CC_SHN_MASK) && (old & NVME_CC_SHN_MASK)) {
		csts &= ~NVME_CSTS_SHST_CMPLT;
	}
	atomic_store(&c->cc, val);
	atomic_store(&c->csts, csts);
	pthread_mutex_unlock(&t->lock);
}

/* Under t->lock: q leaves its controller; returns the controller if q was its last
 * queue (unlinked, for nvmet_ctrl_free after the lock). */
struct nvmet_ctrl *nvmet_ctrl_leave(struct nvmet_conn *q)
{
	struct nvmet_ctrl *c = q->ctrl;

	if (!c)
		return NULL;
	if (c->sqs[q->qid] == q)
		c->sqs[q->qid] = NULL;
	q->ctrl = NULL;
	if (--c->refs)
		return NULL;
	for (struct nvmet_ctrl **p = &c->t->ctrls; *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			break;
		}
	}
	return c;
}

void nvmet_ctrl_free(struct nvmet_ctrl *c)
{
	if (!c)
		return;
	nvmet_log(c->t, "controller %u freed", c->cntlid);
	free(c->sqs);
	free(c);
}

/* Under t->lock. Fail controllers silent for twice their KATO (the Linux target uses
 * KATO itself; a host's Keep Alive cadence is KATO/2, so this is lenient): their queues
 * are shut down, which ends their threads. Returns the poll timeout until next look. */
int nvmet_kato_check(struct ulpo_nvmet *t)
{
	int64_t now = ulpo_now_ms();
	bool any = false;

	for (struct nvmet_ctrl *c = t->ctrls; c; c = c->next) {
		int64_t last = atomic_load_explicit(&c->last_cmd_ms, memory_order_relaxed);

		if (!c->kato_ms || c->failed)
			continue;
		any = true;
		if (now - last <= 2 * (int64_t)c->kato_ms)
			continue;
		c->failed = true;
		atomic_fetch_or(&c->csts, NVME_CSTS_CFS);
		nvmet_count(t, kato_expired, 1);
		nvmet_log(t, "controller %u: keep alive expired", c->cntlid);
		for (unsigned int i = 0; i <= t->o.max_io_queues; i++)
			if (c->sqs[i])
				ulpo_sys_shutdown(c->sqs[i]->tc.fd, SHUT_RDWR);
	}
	return any ? 100 : -1;
}
