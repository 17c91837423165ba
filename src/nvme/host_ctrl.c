/* host_ctrl.c - the NVMe/TCP host's controller: connect (admin queue, Fabrics Connect,
 * CAP/VS, CC.EN then CSTS.RDY, Identify, Number of Queues, then the I/O queues, each its
 * own connection), admin commands, Keep Alive on a timer, and the public I/O calls. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/sys.h"
#include "nvme/host.h"

#define MAX_NS_CACHE 16

struct sync_wait {
	int status;
	bool done;
};

static void sync_cb(void *arg, int status)
{
	struct sync_wait *w = arg;

	w->status = status;
	w->done = true;
}

/* Run one command on queue q and wait for it. */
static int queue_sync(struct host_queue *q, struct nvme_sqe *sqe, void *buf, size_t len,
		      bool write, struct nvme_cqe *cqe)
{
	struct iovec v = { buf, len };
	struct sync_wait w = { 0 };
	int r;

	r = host_queue_submit(q, sqe, len ? &v : NULL, len ? 1 : 0, len, write, sync_cb, &w, cqe);
	if (r < 0)
		return r;
	while (!w.done) {
		r = host_queue_poll(q, 100);
		if (r < 0 && !w.done)
			return r;
	}
	return w.status;
}

static int admin_sync(struct ulpo_nvme_ctrl *c, struct nvme_sqe *sqe, void *buf, size_t len,
		      bool write, struct nvme_cqe *cqe)
{
	int r;

	pthread_mutex_lock(&c->admin_lock);
	r = queue_sync(&c->admin, sqe, buf, len, write, cqe);
	pthread_mutex_unlock(&c->admin_lock);
	return r;
}

static int property_get(struct ulpo_nvme_ctrl *c, uint32_t off, bool wide, uint64_t *val)
{
	struct nvme_sqe sqe = { .opcode = NVME_FABRICS_OPCODE, .nsid = NVME_FCTYPE_PROPERTY_GET };
	struct nvme_cqe cqe = { 0 };
	int r;

	sqe.cdw10 = wide ? 1 : 0;
	sqe.cdw11 = off;
	r = admin_sync(c, &sqe, NULL, 0, false, &cqe);
	if (r == 0)
		*val = (uint64_t)cqe.dw0 | (wide ? (uint64_t)cqe.dw1 << 32 : 0);
	return r;
}

static int property_set(struct ulpo_nvme_ctrl *c, uint32_t off, uint32_t val)
{
	struct nvme_sqe sqe = { .opcode = NVME_FABRICS_OPCODE, .nsid = NVME_FCTYPE_PROPERTY_SET };

	sqe.cdw10 = 0;
	sqe.cdw11 = off;
	sqe.cdw12 = val;
	return admin_sync(c, &sqe, NULL, 0, false, NULL);
}

/* Fabrics Connect on queue q (admin: qid 0, any controller). */
static int fabrics_connect(struct ulpo_nvme_ctrl *c, struct host_queue *q, uint16_t sqsize,
			   uint16_t *cntlid)
{
	struct nvme_sqe sqe = { .opcode = NVME_FABRICS_OPCODE, .nsid = NVME_FCTYPE_CONNECT };
	struct nvmf_connect_data *d = calloc(1, sizeof(*d));
	struct nvme_cqe cqe = { 0 };
	int r;

	if (!d)
		return -ENOMEM;
	sqe.cdw10 = (uint32_t)q->qid << 16;	/* recfmt 0 */
	/* 0's based, and a queue has at least 2 entries (depth 1 still asks for 2). */
	sqe.cdw11 = (uint32_t)(sqsize < 2 ? 1 : sqsize - 1);
	/* I/O queues: no SQ flow control (the host never needs the SQ head: it keeps at
	 * most sqsize commands in flight), which lets a target end a read with the C2HData
	 * SUCCESS flag instead of a response PDU. */
	if (q->qid)
		sqe.cdw11 |= NVMF_CONNECT_DISABLE_SQFLOW << 16;
	sqe.cdw12 = q->qid ? 0 : c->opts.kato_ms;
	memcpy(d->hostid, c->hostid, sizeof(d->hostid));
	d->cntlid = q->qid ? c->info.cntlid : 0xffff;
	/* NQNs are NUL-terminated within their 256 bytes (the rest is zero). */
	memcpy(d->subnqn, c->subnqn, strnlen(c->subnqn, sizeof(d->subnqn) - 1));
	memcpy(d->hostnqn, c->hostnqn, strnlen(c->hostnqn, sizeof(d->hostnqn) - 1));
	r = queue_sync(q, &sqe, d, sizeof(*d), true, &cqe);
	free(d);
	if (r == 0 && cntlid)
		*cntlid = (uint16_t)cqe.dw0;
	if (r > 0 && c->opts.verbose)
		fprintf(stderr, "nvme: Connect queue %u: %s (dw0 0x%x)\n", q->qid,
			ulpo_nvme_status_str(r), cqe.dw0);
	return r;
}

static void copy_str(char *dst, const uint8_t *src, size_t n)
{
	memcpy(dst, src, n);
	dst[n] = '\0';
	for (size_t i = n; i > 0 && (dst[i - 1] == ' ' || dst[i - 1] == '\0'); i--)
		dst[i - 1] = '\0';
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int ulpo_nvme_identify(struct ulpo_nvme_ctrl *c, uint8_t cns, uint32_t nsid, void *buf)
{
	struct nvme_sqe sqe = { .opcode = NVME_ADMIN_IDENTIFY, .nsid = nsid, .cdw10 = cns };

	if (!c || !buf)
		return -EINVAL;
	return admin_sync(c, &sqe, buf, NVME_IDENTIFY_LEN, false, NULL);
}

static int identify_ctrl(struct ulpo_nvme_ctrl *c)
{
	uint8_t *id = malloc(NVME_IDENTIFY_LEN);
	struct ulpo_nvme_ctrl_info *in = &c->info;
	int r;

	if (!id)
		return -ENOMEM;
	r = ulpo_nvme_identify(c, NVME_ID_CNS_CTRL, 0, id);
	if (r == 0) {
		in->vid = (uint16_t)(id[NVME_IDC_VID] | id[NVME_IDC_VID + 1] << 8);
		copy_str(in->sn, id + NVME_IDC_SN, 20);
		copy_str(in->mn, id + NVME_IDC_MN, 40);
		copy_str(in->fr, id + NVME_IDC_FR, 8);
		copy_str(in->subnqn, id + NVME_IDC_SUBNQN, 256);
		in->ver = le32(id + NVME_IDC_VER);
		in->maxcmd = (uint16_t)(id[NVME_IDC_MAXCMD] | id[NVME_IDC_MAXCMD + 1] << 8);
		in->nn = le32(id + NVME_IDC_NN);
		/* IOCCSZ counts 16-byte units of the whole capsule, the command included. */
		in->ioccsz = le32(id + NVME_IDC_IOCCSZ) >= 4 ? le32(id + NVME_IDC_IOCCSZ) * 16 - 64 : 0;
		/* 2^MDTS pages of 4 KiB; beyond 2^19 pages, no limit a host could reach. */
		in->mdts_bytes = id[NVME_IDC_MDTS] && id[NVME_IDC_MDTS] < 20 ?
				 4096u << id[NVME_IDC_MDTS] : 0;
	}
	free(id);
	return r;
}

int ulpo_nvme_ns_info(struct ulpo_nvme_ctrl *c, uint32_t nsid, struct ulpo_nvme_ns_info *info)
{
	uint8_t *id;
	int r, f;

	if (!c || !info || !nsid)
		return -EINVAL;
	if (nsid <= MAX_NS_CACHE && c->ns[nsid - 1].lba_size) {
		*info = c->ns[nsid - 1];
		return 0;
	}
	id = malloc(NVME_IDENTIFY_LEN);
	if (!id)
		return -ENOMEM;
	r = ulpo_nvme_identify(c, NVME_ID_CNS_NS, nsid, id);
	if (r == 0) {
		f = id[NVME_IDN_FLBAS] & 0xf;
		info->nsid = nsid;
		memcpy(&info->nsze, id + NVME_IDN_NSZE, 8);
		uint8_t lbads = id[NVME_IDN_LBAF0 + 4 * f + 2];

		info->lba_size = lbads >= 9 && lbads <= 16 ? 1u << lbads : 0;
		if (!info->nsze || !info->lba_size)
			r = -ENODEV;	/* inactive namespace, or a block size we do not do */
		else if (nsid <= MAX_NS_CACHE)
			c->ns[nsid - 1] = *info;
	}
	free(id);
	return r;
}

/* ---- keep alive ---- */

static void *ka_main(void *arg)
{
	struct ulpo_nvme_ctrl *c = arg;
	uint32_t period = c->opts.kato_ms / 2 ? c->opts.kato_ms / 2 : 1;

	pthread_mutex_lock(&c->ka_lock);
	while (!c->ka_stop) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += period / 1000;
		ts.tv_nsec += (long)(period % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&c->ka_cond, &c->ka_lock, &ts);
		if (c->ka_stop)
			break;
		pthread_mutex_unlock(&c->ka_lock);
		{
			struct nvme_sqe sqe = { .opcode = NVME_ADMIN_KEEP_ALIVE };

			if (admin_sync(c, &sqe, NULL, 0, false, NULL) == 0)
				host_stat_add(c, HS_KEEP_ALIVES, 1);
		}
		pthread_mutex_lock(&c->ka_lock);
	}
	pthread_mutex_unlock(&c->ka_lock);
	return NULL;
}

/* ---- connect, disconnect ---- */

static void make_hostnqn(struct ulpo_nvme_ctrl *c)
{
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	uint8_t *u = c->hostid;

	if (fd < 0 || read(fd, u, 16) != 16) {
		uint64_t t = (uint64_t)ulpo_now_ns() ^ (uint64_t)getpid() << 32;

		memcpy(u, &t, 8);
		memcpy(u + 8, &t, 8);
	}
	if (fd >= 0)
		close(fd);
	u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);	/* version 4 */
	u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
	snprintf(c->hostnqn, sizeof(c->hostnqn),
		 "nqn.2014-08.org.nvmexpress:uuid:%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8],
		 u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

static int enable(struct ulpo_nvme_ctrl *c)
{
	uint32_t cc = NVME_CC_EN | 6u << NVME_CC_IOSQES_SHIFT | 4u << NVME_CC_IOCQES_SHIFT;
	uint64_t to_ms = ((c->cap >> 24) & 0xff) * 500, csts = 0;
	uint64_t end;
	int r;

	r = property_set(c, NVME_REG_CC, cc);
	if (r)
		return r;
	end = (uint64_t)ulpo_now_ns() + (to_ms ? to_ms : 500) * 1000000u;
	for (;;) {
		r = property_get(c, NVME_REG_CSTS, false, &csts);
		if (r)
			return r;
		if (csts & NVME_CSTS_CFS)
			return -EIO;
		if (csts & NVME_CSTS_RDY)
			return 0;
		if ((uint64_t)ulpo_now_ns() > end)
			return -ETIMEDOUT;
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
}

int ulpo_nvme_connect(const struct ulpo_nvme_opts *opts, struct ulpo_nvme_ctrl **ret)
{
	struct ulpo_nvme_ctrl *c;
	struct nvme_sqe sqe;
	struct nvme_cqe cqe = { 0 };
	uint64_t vs = 0;
	unsigned int want;
	uint16_t depth;
	int r;

	if (!opts || !opts->addr || !ret)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->opts = *opts;
	if (!c->opts.timeout_ms)
		c->opts.timeout_ms = 30000;
	if (!c->opts.nr_io_queues)
		c->opts.nr_io_queues = 1;
	if (!c->opts.queue_depth)
		c->opts.queue_depth = 128;
	snprintf(c->subnqn, sizeof(c->subnqn), "%s",
		 opts->subnqn ? opts->subnqn : ULPO_NVME_DEFAULT_SUBNQN);
	if (opts->hostnqn)
		snprintf(c->hostnqn, sizeof(c->hostnqn), "%s", opts->hostnqn);
	make_hostnqn(c);
	if (opts->hostnqn)
		snprintf(c->hostnqn, sizeof(c->hostnqn), "%s", opts->hostnqn);
	pthread_mutex_init(&c->admin_lock, NULL);
	pthread_mutex_init(&c->ka_lock, NULL);
	pthread_cond_init(&c->ka_cond, NULL);

	r = host_queue_open(c, &c->admin, 0, HOST_ADMIN_DEPTH);
	if (r < 0)
		goto fail;
	c->info.maxh2cdata = c->admin.maxh2cdata;
	r = fabrics_connect(c, &c->admin, HOST_ADMIN_DEPTH, &c->info.cntlid);
	if (r)
		goto fail;
	r = property_get(c, NVME_REG_CAP, true, &c->cap);
	if (!r)
		r = property_get(c, NVME_REG_VS, false, &vs);
	if (!r)
		r = enable(c);
	if (!r)
		r = identify_ctrl(c);
	if (r)
		goto fail;
	/* MQES 0xffff means 65536 entries; a queue here uses at most 32767 (ids x 2). */
	c->info.mqes = (uint16_t)((c->cap & 0xffff) == 0xffff ? 0xffff : (c->cap & 0xffff) + 1);
	if (!c->info.ver)
		c->info.ver = (uint32_t)vs;
	want = c->opts.nr_io_queues;
	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = NVME_ADMIN_SET_FEATURES;
	sqe.cdw10 = NVME_FEAT_NUM_QUEUES;
	sqe.cdw11 = (want - 1) | (want - 1) << 16;
	r = admin_sync(c, &sqe, NULL, 0, false, &cqe);
	if (r)
		goto fail;
	{
		unsigned int nsq = (cqe.dw0 & 0xffff) + 1, ncq = (cqe.dw0 >> 16) + 1;

		c->nr_io = want < nsq ? want : nsq;
		c->nr_io = c->nr_io < ncq ? c->nr_io : ncq;
	}
	depth = (uint16_t)(c->opts.queue_depth < c->info.mqes ? c->opts.queue_depth : c->info.mqes);
	if (c->info.maxcmd && depth > c->info.maxcmd)
		depth = c->info.maxcmd;
	if (depth > 32767)
		depth = 32767;
	c->io = calloc(c->nr_io, sizeof(*c->io));
	if (!c->io) {
		r = -ENOMEM;
		goto fail;
	}
	for (unsigned int i = 0; i < c->nr_io; i++) {
		r = host_queue_open(c, &c->io[i], i + 1, depth);
		if (r < 0)
			goto fail;
		r = fabrics_connect(c, &c->io[i], depth, NULL);
		if (r)
			goto fail;
		host_queue_ddp_add(&c->io[i]);
	}
	if (c->opts.kato_ms) {
		if (pthread_create(&c->ka_thread, NULL, ka_main, c) == 0)
			c->ka_running = true;
	}
	*ret = c;
	return 0;
fail:
	if (r > 0)
		r = r == NVME_STATUS(NVME_SCT_CMD_SPECIFIC, NVME_SC_CONNECT_INVALID_HOST) ? -EACCES
										    : -EIO;
	ulpo_nvme_disconnect(c);
	return r;
}

void ulpo_nvme_disconnect(struct ulpo_nvme_ctrl *c)
{
	if (!c)
		return;
	if (c->ka_running) {
		pthread_mutex_lock(&c->ka_lock);
		c->ka_stop = true;
		pthread_cond_signal(&c->ka_cond);
		pthread_mutex_unlock(&c->ka_lock);
		pthread_join(c->ka_thread, NULL);
	}
	for (unsigned int i = 0; c->io && i < c->nr_io; i++)
		host_queue_close(&c->io[i]);
	/* A normal shutdown, if the admin queue still works (bounded wait). */
	if (c->admin.cmds && !c->admin.failed && (c->cap || c->info.cntlid)) {
		uint64_t csts = 0, end = (uint64_t)ulpo_now_ns() + 2000000000u;

		if (property_set(c, NVME_REG_CC, NVME_CC_EN | NVME_CC_SHN_NORMAL |
				 6u << NVME_CC_IOSQES_SHIFT | 4u << NVME_CC_IOCQES_SHIFT) == 0)
			while (property_get(c, NVME_REG_CSTS, false, &csts) == 0 &&
			       (csts & NVME_CSTS_SHST_MASK) != NVME_CSTS_SHST_CMPLT &&
			       (uint64_t)ulpo_now_ns() < end)
				nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
	host_queue_close(&c->admin);
	free(c->io);
	pthread_mutex_destroy(&c->admin_lock);
	pthread_mutex_destroy(&c->ka_lock);
	pthread_cond_destroy(&c->ka_cond);
	free(c);
}

const struct ulpo_nvme_ctrl_info *ulpo_nvme_ctrl_info(const struct ulpo_nvme_ctrl *c)
{
	return c ? &c->info : NULL;
}

unsigned int ulpo_nvme_nr_io_queues(const struct ulpo_nvme_ctrl *c)
{
	return c ? c->nr_io : 0;
}

/* ---- I/O ---- */

static struct host_queue *io_queue(struct ulpo_nvme_ctrl *c, unsigned int qid)
{
	return c && qid >= 1 && qid <= c->nr_io ? &c->io[qid - 1] : NULL;
}

static int rw(struct ulpo_nvme_ctrl *c, unsigned int qid, uint8_t opcode, uint32_t nsid,
	      uint64_t slba, uint32_t nlb, const struct iovec *iov, int cnt, ulpo_nvme_cb cb,
	      void *arg)
{
	struct host_queue *q = io_queue(c, qid);
	struct nvme_sqe sqe = { .opcode = opcode, .nsid = nsid };
	struct ulpo_nvme_ns_info ns;
	size_t len;
	int r;

	if (!q || !nlb || nlb > 65536)
		return -EINVAL;
	r = ulpo_nvme_ns_info(c, nsid, &ns);
	if (r)
		return r < 0 ? r : -ENODEV;
	len = (size_t)nlb * ns.lba_size;
	if (c->info.mdts_bytes && len > c->info.mdts_bytes)
		return -EINVAL;
	sqe.cdw10 = (uint32_t)slba;
	sqe.cdw11 = (uint32_t)(slba >> 32);
	sqe.cdw12 = nlb - 1;
	r = host_queue_submit(q, &sqe, iov, cnt, len, opcode == NVME_CMD_WRITE, cb, arg, NULL);
	if (r == 0) {
		bool rd = opcode == NVME_CMD_READ;

		host_stat_add(c, rd ? HS_READS : HS_WRITES, 1);
		host_stat_add(c, rd ? HS_READ_BYTES : HS_WRITE_BYTES, len);
	}
	return r;
}

int ulpo_nvme_submit_read(struct ulpo_nvme_ctrl *c, unsigned int qid, uint32_t nsid,
			  uint64_t slba, uint32_t nlb, const struct iovec *iov, int cnt,
			  ulpo_nvme_cb cb, void *arg)
{
	return rw(c, qid, NVME_CMD_READ, nsid, slba, nlb, iov, cnt, cb, arg);
}

int ulpo_nvme_submit_write(struct ulpo_nvme_ctrl *c, unsigned int qid, uint32_t nsid,
			   uint64_t slba, uint32_t nlb, const struct iovec *iov, int cnt,
			   ulpo_nvme_cb cb, void *arg)
{
	return rw(c, qid, NVME_CMD_WRITE, nsid, slba, nlb, iov, cnt, cb, arg);
}

int ulpo_nvme_submit_flush(struct ulpo_nvme_ctrl *c, unsigned int qid, uint32_t nsid,
			   ulpo_nvme_cb cb, void *arg)
{
	struct host_queue *q = io_queue(c, qid);
	struct nvme_sqe sqe = { .opcode = NVME_CMD_FLUSH, .nsid = nsid };
	int r;

	if (!q)
		return -EINVAL;
	r = host_queue_submit(q, &sqe, NULL, 0, 0, false, cb, arg, NULL);
	if (r == 0)
		host_stat_add(c, HS_FLUSHES, 1);
	return r;
}

int ulpo_nvme_poll(struct ulpo_nvme_ctrl *c, unsigned int qid, int timeout_ms)
{
	struct host_queue *q = io_queue(c, qid);

	return q ? host_queue_poll(q, timeout_ms) : -EINVAL;
}

unsigned int ulpo_nvme_inflight(const struct ulpo_nvme_ctrl *c, unsigned int qid)
{
	return c && qid >= 1 && qid <= c->nr_io ? c->io[qid - 1].inflight - c->io[qid - 1].zombies
						 : 0;
}

static int blocking(struct ulpo_nvme_ctrl *c, uint8_t opcode, uint32_t nsid, uint64_t slba,
		    uint32_t nlb, void *buf)
{
	struct sync_wait w = { 0 };
	struct ulpo_nvme_ns_info ns;
	struct iovec v;
	int r = ulpo_nvme_ns_info(c, nsid, &ns);

	if (r)
		return r;
	v = (struct iovec){ buf, (size_t)nlb * ns.lba_size };
	r = opcode == NVME_CMD_FLUSH ? ulpo_nvme_submit_flush(c, 1, nsid, sync_cb, &w)
				     : rw(c, 1, opcode, nsid, slba, nlb, &v, 1, sync_cb, &w);
	if (r)
		return r;
	while (!w.done) {
		r = ulpo_nvme_poll(c, 1, 100);
		if (r < 0 && !w.done)
			return r;
	}
	return w.status;
}

int ulpo_nvme_read(struct ulpo_nvme_ctrl *c, uint32_t nsid, uint64_t slba, uint32_t nlb, void *buf)
{
	return blocking(c, NVME_CMD_READ, nsid, slba, nlb, buf);
}

int ulpo_nvme_write(struct ulpo_nvme_ctrl *c, uint32_t nsid, uint64_t slba, uint32_t nlb,
		    const void *buf)
{
	return blocking(c, NVME_CMD_WRITE, nsid, slba, nlb, (void *)buf);
}

int ulpo_nvme_flush(struct ulpo_nvme_ctrl *c, uint32_t nsid)
{
	return blocking(c, NVME_CMD_FLUSH, nsid, 0, 0, NULL);
}

void ulpo_nvme_get_stats(const struct ulpo_nvme_ctrl *c, struct ulpo_nvme_stats *st)
{
	uint64_t v[HS_COUNT];

	for (int i = 0; i < HS_COUNT; i++)
		v[i] = __atomic_load_n(&c->st[i], __ATOMIC_RELAXED);
	*st = (struct ulpo_nvme_stats){
		.cmds = v[HS_CMDS], .reads = v[HS_READS], .writes = v[HS_WRITES],
		.flushes = v[HS_FLUSHES], .read_bytes = v[HS_READ_BYTES],
		.write_bytes = v[HS_WRITE_BYTES], .incapsule_writes = v[HS_INCAPSULE],
		.r2t_writes = v[HS_R2T_WRITES], .h2c_pdus = v[HS_H2C_PDUS],
		.c2h_pdus = v[HS_C2H_PDUS], .c2h_success_flag = v[HS_C2H_SUCCESS],
		.placed_bytes = v[HS_PLACED], .copied_bytes = v[HS_COPIED],
		.ddgst_offloaded = v[HS_DDGST_OFFLOADED], .ddgst_checked = v[HS_DDGST_CHECKED],
		.ddgst_errors = v[HS_DDGST_ERRORS], .hdgst_errors = v[HS_HDGST_ERRORS],
		.timeouts = v[HS_TIMEOUTS], .term_reqs = v[HS_TERM_REQS],
		.keep_alives = v[HS_KEEP_ALIVES],
	};
}

const char *ulpo_nvme_status_str(int status)
{
	static __thread char buf[48];

	if (status < 0)
		return strerror(-status);
	switch (status) {
	case 0:
		return "SUCCESS";
	case NVME_SC_INVALID_OPCODE:
		return "Invalid Command Opcode";
	case NVME_SC_INVALID_FIELD:
		return "Invalid Field in Command";
	case NVME_SC_CID_CONFLICT:
		return "Command ID Conflict";
	case NVME_SC_DATA_XFER_ERROR:
		return "Data Transfer Error";
	case NVME_SC_INTERNAL:
		return "Internal Error";
	case NVME_SC_ABORT_REQ:
		return "Command Abort Requested";
	case NVME_SC_INVALID_NS:
		return "Invalid Namespace or Format";
	case NVME_SC_CMD_SEQ_ERROR:
		return "Command Sequence Error";
	case NVME_SC_TRANSIENT_TR_ERR:
		return "Transient Transport Error";
	case NVME_SC_LBA_RANGE:
		return "LBA Out of Range";
	case NVME_STATUS(NVME_SCT_CMD_SPECIFIC, NVME_SC_CONNECT_INVALID_PARAM):
		return "Connect Invalid Parameters";
	case NVME_STATUS(NVME_SCT_CMD_SPECIFIC, NVME_SC_CONNECT_INVALID_HOST):
		return "Connect Invalid Host";
	default:
		snprintf(buf, sizeof(buf), "status 0x%x (SCT %d, SC 0x%02x)", status,
			 status >> 8, status & 0xff);
		return buf;
	}
}
