/* host_queue.c - one NVMe/TCP queue of the host: its TCP connection and ICReq, command
 * ids, submission (in-capsule data, or R2T and H2CData within maxh2cdata), and the
 * receive path: responses in any order; C2HData payload placed by the queue's DDP device
 * straight into the command's buffers, or through a staging buffer (copy path) when the
 * device did not take the queue or the command; digests; TermReqs; timeouts.
 *
 * A command id goes back to the free list only when the target answered it and, if its
 * buffers were registered, the device's teardown finished (ddp_teardown_done, maybe on an
 * engine worker): ids are never reused while the device may still place data for them. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <ulpo/ulpo.h>
#include <unistd.h>

#include "core/sys.h"
#include "ddp/ddp.h"
#include "engine/crc32c.h"
#include "engine/engine.h"
#include "nvme/host.h"

#define STAGING_LEN (128u << 10)

static int tcp_connect(const char *addr)
{
	char host[256], *colon;
	const char *port = "4420";
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	int fd = -1, one = 1, r;

	if (!addr || strlen(addr) >= sizeof(host))
		return -EINVAL;
	strcpy(host, addr);
	colon = strrchr(host, ':');
	if (colon && !strchr(colon, ']') && colon != host) {
		*colon = '\0';
		port = colon + 1;
	}
	if (host[0] == '[') {	/* [v6]:port */
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = '\0';
	}
	r = getaddrinfo(host, port, &hints, &res);
	if (r)
		return r == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
	r = -ECONNREFUSED;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			r = -errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		r = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return r;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* ---- command ids ---- */

static void reclaim_ids(struct host_queue *q)
{
	if (!atomic_load_explicit(&q->td_pending, memory_order_acquire) && !q->ntd)
		return;
	pthread_mutex_lock(&q->td_lock);
	for (unsigned int i = 0; i < q->ntd; i++) {
		struct host_cmd *cmd = &q->cmds[q->td_ids[i]];

		cmd->teardown_pending = false;
		if (cmd->state == CMD_ZOMBIE)
			continue;	/* still unanswered: freed by its response */
		cmd->state = CMD_FREE;
		q->free_ids[q->nfree++] = cmd->cid;
	}
	q->ntd = 0;
	pthread_mutex_unlock(&q->td_lock);
}

/* The device is done with a command's buffers (any thread). */
static void ddp_teardown_done(void *ctx)
{
	struct host_cmd *cmd = ctx;
	struct host_queue *q = cmd->q;

	pthread_mutex_lock(&q->td_lock);
	q->td_ids[q->ntd++] = cmd->cid;
	pthread_mutex_unlock(&q->td_lock);
	atomic_fetch_sub_explicit(&q->td_pending, 1, memory_order_release);
}

static const struct ulpo_ddp_ulp_ops host_ulp_ops = {
	.ddp_teardown_done = ddp_teardown_done,
};

static void release_ddp(struct host_queue *q, struct host_cmd *cmd)
{
	struct ulpo_ddp_io io = { .command_id = cmd->cid, .nents = cmd->cnt, .sg = cmd->iov,
				  .len = cmd->len };

	cmd->ddp = false;
	cmd->teardown_pending = true;
	atomic_fetch_add_explicit(&q->td_pending, 1, memory_order_relaxed);
	ulpo_ddp_teardown(q->ddp, q->ddp_sk, &io, cmd);
}

/* The command is over for the caller: its buffers are given back, then cb runs. */
static void complete(struct host_queue *q, struct host_cmd *cmd, int status,
		     const struct nvme_cqe *cqe)
{
	ulpo_nvme_cb cb = cmd->cb;
	void *arg = cmd->arg;

	if (cqe && cmd->cqe_out)
		*cmd->cqe_out = *cqe;
	q->inflight--;
	if (cmd->opcode == NVME_CMD_READ && q->qid)
		q->reads_inflight--;
	if (cmd->ddp)
		release_ddp(q, cmd);
	if (cmd->teardown_pending) {
		cmd->state = CMD_TEARDOWN;
	} else {
		cmd->state = CMD_FREE;
		q->free_ids[q->nfree++] = cmd->cid;
	}
	if (cb)
		cb(arg, status);
}

/* A timed-out command's end (its answer came, or the queue failed): the id goes back now,
 * or at its teardown. */
static void zombie_end(struct host_queue *q, struct host_cmd *cmd)
{
	q->inflight--;
	q->zombies--;
	cmd->state = cmd->teardown_pending ? CMD_TEARDOWN : CMD_FREE;
	if (cmd->state == CMD_FREE)
		q->free_ids[q->nfree++] = cmd->cid;
}

/* ---- open, close, fail ---- */

void host_queue_ddp_add(struct host_queue *q)
{
	struct ulpo_ddp_config cfg = { .type = ULPO_DDP_TYPE_NVME_TCP };
	struct ulpo_ddp_dev *dev;

	/* The process's offload policy (ULPO_OFFLOAD=off, ulpo caps --offload off) keeps
	 * every queue on the copy path, as it keeps TLS connections on the software path. */
	if (q->ctrl->opts.no_ddp || !q->qid || !ulpo_offload_get())
		return;
	dev = ulpo_ddp_dev_find(ULPO_DDP_CAP_NVME_TCP);
	if (!dev || dev->ops->limits(dev, &q->ddp_lim) < 0)
		return;
	cfg.nvmeotcp.pfv = NVME_TCP_PFV_1_0;
	cfg.nvmeotcp.cpda = q->conn.tx_pda;
	cfg.nvmeotcp.dgst = (q->conn.hdgst ? NVME_TCP_HDGST_ENABLE : 0) |
			    (q->conn.ddgst ? NVME_TCP_DDGST_ENABLE : 0);
	cfg.nvmeotcp.queue_size = q->depth;
	cfg.nvmeotcp.queue_id = (int)q->qid;
	/* Refused: the queue runs on the copy path, with the same data. */
	if (ulpo_ddp_sk_add(dev, q->conn.fd, &cfg, &host_ulp_ops, &q->ddp_sk) == 0)
		q->ddp = dev;
}

static int icreq(struct host_queue *q)
{
	const struct ulpo_nvme_opts *o = &q->ctrl->opts;
	struct nvme_tcp_icreq req = { .hdr = { .type = NVME_TCP_ICREQ, .hlen = NVME_TCP_IC_HLEN } };
	struct nvme_tcp_icresp rsp;
	uint16_t fes;
	uint32_t fei;
	int r;

	req.pfv = NVME_TCP_PFV_1_0;
	req.hpda = 0;
	req.dgst = (o->hdgst ? NVME_TCP_HDGST_ENABLE : 0) | (o->ddgst ? NVME_TCP_DDGST_ENABLE : 0);
	req.maxr2t = 0;
	r = nvme_tcp_send_pdu(&q->conn, &req, NULL, 0, 0);
	if (r < 0)
		return r;
	r = nvme_tcp_recv_hdr(&q->conn, &fes, &fei);
	if (r == -EPROTO) {
		nvme_tcp_send_term(&q->conn, NVME_TCP_H2C_TERM, fes, fei);
		return -EPROTO;
	}
	if (r < 0)
		return r;
	memcpy(&rsp, q->conn.hdr, sizeof(rsp));
	if (rsp.hdr.type != NVME_TCP_ICRESP) {
		nvme_tcp_send_term(&q->conn, NVME_TCP_H2C_TERM, NVME_TCP_FES_INVALID_PDU_HDR, 0);
		return -EPROTO;
	}
	/* A controller enables at most the digests the host asked for. */
	if (rsp.pfv != NVME_TCP_PFV_1_0 || rsp.cpda > 31 || (rsp.dgst & ~req.dgst) ||
	    rsp.maxh2cdata < 4096 || rsp.maxh2cdata % 4) {
		nvme_tcp_send_term(&q->conn, NVME_TCP_H2C_TERM, NVME_TCP_FES_UNSUPPORTED_PARAM,
				   rsp.pfv != NVME_TCP_PFV_1_0 ? 8 : rsp.cpda > 31 ? 10 :
				   (rsp.dgst & ~req.dgst) ? 11 : 12);
		return -EPROTO;
	}
	q->conn.hdgst = rsp.dgst & NVME_TCP_HDGST_ENABLE;
	q->conn.ddgst = rsp.dgst & NVME_TCP_DDGST_ENABLE;
	q->conn.tx_pda = rsp.cpda;
	q->conn.rx_pda = req.hpda;
	q->maxh2cdata = rsp.maxh2cdata;
	return 0;
}

int host_queue_open(struct ulpo_nvme_ctrl *ctrl, struct host_queue *q, unsigned int qid,
		    uint32_t depth)
{
	int fd, r;

	memset(q, 0, sizeof(*q));
	q->conn.fd = -1;
	q->opened = true;
	q->ctrl = ctrl;
	q->qid = qid;
	q->depth = depth;
	/* Twice the ids the target lets us use: ids waiting for their teardown do not
	 * hold the queue back. */
	q->nids = 2u * depth;		/* depth <= 32767: ids fit in 16 bits */
	pthread_mutex_init(&q->td_lock, NULL);
	q->cmds = calloc(q->nids, sizeof(*q->cmds));
	q->free_ids = calloc(q->nids, sizeof(*q->free_ids));
	q->td_ids = calloc(q->nids, sizeof(*q->td_ids));
	if (!q->cmds || !q->free_ids || !q->td_ids)
		goto nomem;
	for (unsigned int i = 0; i < q->nids; i++) {
		q->cmds[i].cid = (uint16_t)i;
		q->cmds[i].q = q;
		/* Lowest ids first, as they come off the end of the list. */
		q->free_ids[q->nids - 1 - i] = (uint16_t)i;
	}
	q->nfree = q->nids;
	fd = tcp_connect(ctrl->opts.addr);
	if (fd < 0) {
		r = fd;
		goto fail;
	}
	nvme_tcp_conn_init(&q->conn, fd);
	{
		/* A target that stalls mid-PDU, or stops reading while we write, ends the
		 * queue after the command timeout rather than blocking it forever. */
		struct timeval tv = { .tv_sec = ctrl->opts.timeout_ms / 1000,
				      .tv_usec = (ctrl->opts.timeout_ms % 1000) * 1000 };

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	r = icreq(q);
	if (r < 0)
		goto fail;
	q->incapsule_max = qid ? ctrl->info.ioccsz : HOST_ADMIN_INCAPSULE;
	return 0;
nomem:
	r = -ENOMEM;
fail:
	host_queue_close(q);
	return r;
}

void host_queue_fail(struct host_queue *q, int err)
{
	if (!q->failed)
		q->failed = err;
	if (q->conn.fd >= 0)
		shutdown(q->conn.fd, SHUT_RDWR);
	for (unsigned int i = 0; i < q->nids; i++) {
		struct host_cmd *cmd = &q->cmds[i];

		if (cmd->state == CMD_ACTIVE) {
			complete(q, cmd, err, NULL);
		} else if (cmd->state == CMD_ZOMBIE) {
			zombie_end(q, cmd);
		}
	}
}

void host_queue_close(struct host_queue *q)
{
	if (!q->opened)
		return;
	q->opened = false;
	if (q->cmds)
		host_queue_fail(q, -ECANCELED);
	/* Teardowns still in the engine use the device's queue state: let them end. */
	while (atomic_load_explicit(&q->td_pending, memory_order_acquire))
		if (!ulpo_engine_help())
			nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 }, NULL);
	if (q->ddp)
		ulpo_ddp_sk_del(q->ddp, q->ddp_sk);
	q->ddp = NULL;
	if (q->conn.fd >= 0)
		close(q->conn.fd);
	q->conn.fd = -1;
	free(q->cmds);
	free(q->free_ids);
	free(q->td_ids);
	free(q->staging);
	q->cmds = NULL;
	q->free_ids = q->td_ids = NULL;
	q->staging = NULL;
	pthread_mutex_destroy(&q->td_lock);
}

/* ---- submit ---- */

static void sgl(struct nvme_sqe *sqe, uint8_t type, size_t len)
{
	sqe->flags = NVME_CMD_FLAGS_SGL;
	sqe->dptr.addr = 0;
	sqe->dptr.length = (uint32_t)len;
	memset(sqe->dptr.rsvd, 0, sizeof(sqe->dptr.rsvd));
	sqe->dptr.type = type;
}

int host_queue_submit(struct host_queue *q, struct nvme_sqe *sqe, const struct iovec *iov,
		      int cnt, size_t len, bool write, ulpo_nvme_cb cb, void *arg,
		      struct nvme_cqe *cqe_out)
{
	struct nvme_tcp_cmd pdu = { .hdr = { .type = NVME_TCP_CMD, .hlen = NVME_TCP_CMD_HLEN } };
	struct ulpo_nvme_ctrl *c = q->ctrl;
	struct host_cmd *cmd;
	bool incapsule = false;
	size_t sum = 0;
	int r;

	if (q->failed)
		return q->failed;
	if (cnt < 0 || cnt > HOST_MAX_SEGS || (len && !iov))
		return -EINVAL;
	for (int i = 0; i < cnt; i++)
		sum += iov[i].iov_len;
	if (sum < len)
		return -EINVAL;
	reclaim_ids(q);
	if (q->inflight >= q->depth || !q->nfree)
		return -EAGAIN;
	cmd = &q->cmds[q->free_ids[--q->nfree]];
	cmd->state = CMD_ACTIVE;
	cmd->opcode = sqe->opcode;
	cmd->ddp = cmd->r2t_mode = false;
	cmd->status = 0;
	cmd->cb = cb;
	cmd->arg = arg;
	cmd->cqe_out = cqe_out;
	/* Exactly len bytes: a longer buffer must not put more on the wire. */
	cmd->cnt = 0;
	for (size_t left = len; left && cmd->cnt < cnt; cmd->cnt++) {
		cmd->iov[cmd->cnt] = iov[cmd->cnt];
		if (cmd->iov[cmd->cnt].iov_len > left)
			cmd->iov[cmd->cnt].iov_len = left;
		left -= cmd->iov[cmd->cnt].iov_len;
	}
	cnt = cmd->cnt;
	cmd->len = len;
	cmd->received = 0;
	cmd->write = write;
	cmd->deadline_ns = (uint64_t)ulpo_now_ns() + (uint64_t)c->opts.timeout_ms * 1000000u;
	sqe->cid = cmd->cid;
	if (write && len && len <= q->incapsule_max) {
		sgl(sqe, NVME_SGL_INCAPSULE, len);
		incapsule = true;
	} else {
		sgl(sqe, NVME_SGL_TRANSPORT, len);
		cmd->r2t_mode = write && len;
	}
	if (!write && len && q->ddp && len >= (size_t)q->ddp_lim.io_threshold &&
	    (!q->ddp_lim.max_ddp_sgl_len || cnt <= q->ddp_lim.max_ddp_sgl_len)) {
		struct ulpo_ddp_io io = { .command_id = cmd->cid, .nents = cnt, .sg = cmd->iov,
					  .len = len };

		/* Refused: this command's data takes the copy path. */
		cmd->ddp = ulpo_ddp_setup(q->ddp, q->ddp_sk, &io) == 0;
	}
	q->inflight++;
	if (!write && len && q->qid)
		q->reads_inflight++;
	pdu.sqe = *sqe;
	r = nvme_tcp_send_pdu(&q->conn, &pdu, incapsule ? cmd->iov : NULL, incapsule ? cnt : 0,
			      incapsule ? len : 0);
	if (r == -EAGAIN)
		r = -ETIMEDOUT;
	if (r < 0) {
		cmd->cb = NULL;		/* the caller learns it from the return value */
		complete(q, cmd, r, NULL);
		host_queue_fail(q, r);
		return r;
	}
	host_stat_add(c, HS_CMDS, 1);
	if (incapsule)
		host_stat_add(c, HS_INCAPSULE, 1);
	else if (cmd->r2t_mode)
		host_stat_add(c, HS_R2T_WRITES, 1);
	return 0;
}

/* ---- receive ---- */

static int term(struct host_queue *q, uint16_t fes, uint32_t fei)
{
	nvme_tcp_send_term(&q->conn, NVME_TCP_H2C_TERM, fes, fei);
	return -EPROTO;
}

static struct host_cmd *lookup(struct host_queue *q, uint16_t cid)
{
	if (cid >= q->nids)
		return NULL;
	if (q->cmds[cid].state != CMD_ACTIVE && q->cmds[cid].state != CMD_ZOMBIE)
		return NULL;
	return &q->cmds[cid];
}

static int nvme_status(const struct nvme_cqe *cqe)
{
	return (cqe->status >> 1) & 0x7ff;	/* SCT << 8 | SC */
}

static int on_response(struct host_queue *q)
{
	struct nvme_tcp_rsp rsp;
	struct host_cmd *cmd;
	int status;

	memcpy(&rsp, q->conn.hdr, sizeof(rsp));
	cmd = lookup(q, rsp.cqe.cid);
	if (!cmd)
		return term(q, NVME_TCP_FES_INVALID_PDU_HDR, 8 + 12);
	if (cmd->state == CMD_ZOMBIE) {
		zombie_end(q, cmd);
		return 0;
	}
	status = cmd->status ? cmd->status : nvme_status(&rsp.cqe);
	/* "Success" for a read whose data did not all come: the data is not there. */
	if (!status && !cmd->write && cmd->received != cmd->len)
		status = NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_DATA_XFER_ERROR);
	complete(q, cmd, status, &rsp.cqe);
	return 1;
}

/* Slice [off, off + len) of the command's buffers into v. */
static int iov_slice(const struct host_cmd *cmd, size_t off, size_t len, struct iovec *v)
{
	int n = 0;

	for (int i = 0; i < cmd->cnt && len; i++) {
		size_t seg = cmd->iov[i].iov_len;

		if (off >= seg) {
			off -= seg;
			continue;
		}
		size_t k = seg - off < len ? seg - off : len;

		v[n].iov_base = (uint8_t *)cmd->iov[i].iov_base + off;
		v[n++].iov_len = k;
		len -= k;
		off = 0;
	}
	return n;
}

/* Copy n bytes from src into the command's buffers at offset off. */
static void iov_copy_to(struct host_cmd *cmd, size_t off, const uint8_t *src, size_t n)
{
	struct iovec v[HOST_MAX_SEGS];
	int cnt = iov_slice(cmd, off, n, v);

	for (int i = 0; i < cnt; i++) {
		memcpy(v[i].iov_base, src, v[i].iov_len);
		src += v[i].iov_len;
	}
}

/* The data of a C2HData PDU for a command that registered its buffers. 0 ok, 1 bad
 * digest, -errno. */
static int c2h_placed(struct host_queue *q, struct host_cmd *cmd, size_t off, size_t len)
{
	struct iovec slices[HOST_MAX_SEGS];
	struct ulpo_ddp_placement pl = { .iov = slices, .max = HOST_MAX_SEGS };
	int r = ulpo_ddp_place(q->ddp, q->ddp_sk, cmd->cid, off, len, &pl);
	uint32_t crc = 0;

	if (r < 0)
		return r;
	r = nvme_tcp_recv_data(&q->conn, slices, pl.cnt, len, NULL);
	if (r < 0)
		return r;
	host_stat_add(q->ctrl, HS_PLACED, len);
	if (!q->conn.data_digest)
		return 0;
	r = ulpo_ddp_ddgst_check(q->ddp, q->ddp_sk, &pl, len, q->conn.rx_ddgst);
	if (r >= 0) {
		host_stat_add(q->ctrl, HS_DDGST_OFFLOADED, 1);
		return r ? 0 : 1;
	}
	host_stat_add(q->ctrl, HS_DDGST_CHECKED, 1);
	crc = ulpo_crc32c_iov(0, slices, pl.cnt);
	return crc == q->conn.rx_ddgst ? 0 : 1;
}

/* The copy path: through the staging buffer into the command's buffers. */
static int c2h_copied(struct host_queue *q, struct host_cmd *cmd, size_t off, size_t len)
{
	uint32_t crc = 0;
	int r = 0;

	if (!q->staging) {
		q->staging = malloc(STAGING_LEN);
		if (!q->staging)
			return -ENOMEM;
		q->staging_len = STAGING_LEN;
	}
	while (len) {
		size_t k = len < q->staging_len ? len : q->staging_len;
		struct iovec v = { q->staging, k };

		r = nvme_tcp_recv_data(&q->conn, &v, 1, k, q->conn.data_digest ? &crc : NULL);
		if (r < 0)
			return r;
		iov_copy_to(cmd, off, q->staging, k);
		host_stat_add(q->ctrl, HS_COPIED, k);
		off += k;
		len -= k;
	}
	if (q->conn.data_digest)
		host_stat_add(q->ctrl, HS_DDGST_CHECKED, 1);
	return r;
}

static int on_c2h_data(struct host_queue *q)
{
	struct nvme_tcp_data d;
	struct host_cmd *cmd;
	int r;

	memcpy(&d, q->conn.hdr, sizeof(d));
	cmd = lookup(q, d.cccid);
	if (!cmd || cmd->write)
		return term(q, NVME_TCP_FES_INVALID_PDU_HDR, 8);
	if (d.datal != q->conn.data_len || !d.datal)
		return term(q, NVME_TCP_FES_INVALID_PDU_HDR, 16);
	if (d.datao != cmd->received)
		return term(q, NVME_TCP_FES_PDU_SEQ_ERR, 0);
	if (d.datal > cmd->len - cmd->received)
		return term(q, NVME_TCP_FES_DATA_OUT_OF_RANGE, 0);
	if ((d.hdr.flags & NVME_TCP_F_DATA_SUCCESS) && !(d.hdr.flags & NVME_TCP_F_DATA_LAST))
		return term(q, NVME_TCP_FES_INVALID_PDU_HDR, 1);
	host_stat_add(q->ctrl, HS_C2H_PDUS, 1);
	if (cmd->state == CMD_ZOMBIE) {
		/* Timed out: its buffers are the caller's again. */
		r = nvme_tcp_skip_data(&q->conn);
		if (r < 0)
			return r;
	} else {
		r = cmd->ddp ? c2h_placed(q, cmd, d.datao, d.datal)
			     : c2h_copied(q, cmd, d.datao, d.datal);
		if (r == -ENOENT || r == -ERANGE || r == -E2BIG)
			r = c2h_copied(q, cmd, d.datao, d.datal);
		if (r < 0)
			return r;
		if (r == 1) {
			/* The command fails, the queue goes on. */
			host_stat_add(q->ctrl, HS_DDGST_ERRORS, 1);
			cmd->status = NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_DATA_XFER_ERROR);
		}
	}
	cmd->received += d.datal;
	if (!(d.hdr.flags & NVME_TCP_F_DATA_SUCCESS))
		return 0;
	if (cmd->received != cmd->len)
		return term(q, NVME_TCP_FES_PDU_SEQ_ERR, 0);
	host_stat_add(q->ctrl, HS_C2H_SUCCESS, 1);
	if (cmd->state == CMD_ZOMBIE) {
		zombie_end(q, cmd);
		return 0;
	}
	complete(q, cmd, cmd->status, NULL);
	return 1;
}

static int on_r2t(struct host_queue *q)
{
	struct nvme_tcp_r2t t;
	struct host_cmd *cmd;

	memcpy(&t, q->conn.hdr, sizeof(t));
	cmd = lookup(q, t.cccid);
	if (!cmd || cmd->state != CMD_ACTIVE || !cmd->r2t_mode)
		return term(q, NVME_TCP_FES_INVALID_PDU_HDR, 8);
	if (!t.r2tl || t.r2to > cmd->len || t.r2tl > cmd->len - t.r2to)
		return term(q, NVME_TCP_FES_DATA_OUT_OF_RANGE, 0);
	for (size_t off = t.r2to, end = (size_t)t.r2to + t.r2tl; off < end;) {
		struct nvme_tcp_data h = { .hdr = { .type = NVME_TCP_H2C_DATA,
						    .hlen = NVME_TCP_DATA_HLEN } };
		struct iovec v[HOST_MAX_SEGS];
		size_t k = end - off < q->maxh2cdata ? end - off : q->maxh2cdata;
		int n = iov_slice(cmd, off, k, v), r;

		h.cccid = cmd->cid;
		h.ttag = t.ttag;
		h.datao = (uint32_t)off;
		h.datal = (uint32_t)k;
		if (off + k == end)
			h.hdr.flags = NVME_TCP_F_DATA_LAST;
		r = nvme_tcp_send_pdu(&q->conn, &h, v, n, k);
		if (r < 0)
			return r;
		host_stat_add(q->ctrl, HS_H2C_PDUS, 1);
		off += k;
	}
	return 0;
}

/* One PDU: its completions (0 or 1), or -errno (the queue is over). */
static int recv_one(struct host_queue *q)
{
	uint16_t fes;
	uint32_t fei;
	int r;

	/* Headers in batches only while no read's data can come next (pdu.h). */
	q->conn.rx_batch = q->reads_inflight == 0;
	r = nvme_tcp_recv_hdr(&q->conn, &fes, &fei);
	if (r == -EPROTO) {
		if (fes == NVME_TCP_FES_HDR_DIGEST_ERR)
			host_stat_add(q->ctrl, HS_HDGST_ERRORS, 1);
		return term(q, fes, fei);
	}
	if (r < 0)
		return r;
	switch (((struct nvme_tcp_hdr *)q->conn.hdr)->type) {
	case NVME_TCP_RSP:
		return on_response(q);
	case NVME_TCP_C2H_DATA:
		return on_c2h_data(q);
	case NVME_TCP_R2T:
		return on_r2t(q);
	case NVME_TCP_C2H_TERM: {
		struct nvme_tcp_term t;

		memcpy(&t, q->conn.hdr, sizeof(t));
		host_stat_add(q->ctrl, HS_TERM_REQS, 1);
		if (q->ctrl->opts.verbose)
			fprintf(stderr, "nvme: queue %u: C2HTermReq fes %u fei %u\n", q->qid,
				t.fes, t.fei);
		nvme_tcp_skip_data(&q->conn);
		return -EPROTO;
	}
	default:
		return term(q, NVME_TCP_FES_INVALID_PDU_HDR, 0);
	}
}

/* Returns how many commands it ended (with -ETIMEDOUT). */
static int check_timeouts(struct host_queue *q)
{
	uint64_t now = (uint64_t)ulpo_now_ns();
	int n = 0;

	for (unsigned int i = 0; i < q->nids; i++) {
		struct host_cmd *cmd = &q->cmds[i];
		ulpo_nvme_cb cb;

		if (cmd->state != CMD_ACTIVE || cmd->deadline_ns > now)
			continue;
		/* The caller gets -ETIMEDOUT and its buffers back; the id stays taken until
		 * the target answers, whose data is then dropped. */
		host_stat_add(q->ctrl, HS_TIMEOUTS, 1);
		if (cmd->ddp)
			release_ddp(q, cmd);
		cmd->state = CMD_ZOMBIE;
		q->zombies++;
		if (cmd->opcode == NVME_CMD_READ && q->qid)
			q->reads_inflight--;
		cb = cmd->cb;
		cmd->cb = NULL;
		n++;
		if (cb)
			cb(cmd->arg, -ETIMEDOUT);
	}
	return n;
}

static bool buffered(const struct host_queue *q)
{
	return q->conn.rx_tail > q->conn.rx_head;
}

int host_queue_poll(struct host_queue *q, int timeout_ms)
{
	uint64_t now = (uint64_t)ulpo_now_ns();
	uint64_t end = timeout_ms > 0 ? now + (uint64_t)timeout_ms * 1000000u : 0;
	int done = 0;

	reclaim_ids(q);
	/* A command can time out while others keep completing: look every 10 ms. */
	if (now - q->last_timeout_check > 10000000u) {
		q->last_timeout_check = now;
		done += check_timeouts(q);
	}
	for (;;) {
		struct pollfd p = { .fd = q->conn.fd, .events = POLLIN };
		int wait = 0, r;

		if (q->failed)
			return done ? done : q->failed;
		if (!buffered(q)) {
			/* A read that finds bytes saves the poll(2) before it. */
			q->conn.rx_batch = q->reads_inflight == 0;
			r = nvme_tcp_try_fill(&q->conn);
			if (r < 0 && r != -EAGAIN) {
				host_queue_fail(q, r);
				return done ? done : r;
			}
		}
		if (!buffered(q)) {
			if (!done && timeout_ms < 0 && q->inflight > q->zombies)
				wait = 100;	/* timeouts are looked at in between */
			else if (!done && timeout_ms > 0) {
				uint64_t now = (uint64_t)ulpo_now_ns();

				wait = now >= end ? 0 : (int)((end - now) / 1000000u) + 1;
				if (wait > 100)
					wait = 100;
			}
			r = ulpo_sys_poll(&p, 1, wait);
			if (r < 0 && errno != EINTR) {
				r = -errno;
				host_queue_fail(q, r);
				return done ? done : r;
			}
			if (r <= 0) {
				done += check_timeouts(q);
				if (done || timeout_ms == 0 || q->inflight == q->zombies ||
				    (timeout_ms > 0 && (uint64_t)ulpo_now_ns() >= end))
					return done;
				continue;
			}
		}
		r = recv_one(q);
		if (r == -EAGAIN)
			r = -ETIMEDOUT;		/* SO_RCVTIMEO/SO_SNDTIMEO: the target stalled */
		if (r < 0) {
			host_queue_fail(q, r);
			return done ? done : r;
		}
		done += r;
		reclaim_ids(q);
	}
}
