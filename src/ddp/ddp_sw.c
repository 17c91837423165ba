/* ddp_sw.c - the software DDP device. Placement: for a registered command id, a data
 * PDU's payload is read from the socket straight into the command's buffers (place()
 * returns the slices; the transport reads into them). Digests: CRC32C over the placed
 * bytes as a job on the engine (ISA-L), compared with the PDU's. Teardown completes
 * through the engine too, so it may finish after teardown() returns, on another thread:
 * the protocol must not reuse the id before ddp_teardown_done, as with a NIC.
 *
 * Command ids index a table directly (ids below the table size only: full_ccid_range is
 * false, and a larger id is refused, which leaves that command on the copy path). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ddp/ddp.h"
#include "engine/engine.h"

#define SW_MIN_IDS 64
#define SW_MAX_IDS 4096
#define SW_IO_THRESHOLD 0		/* every transfer is worth placing: no copy at all */
#define SW_MAX_SGL 256

struct sw_io {
	const struct iovec *sg;
	int nents;
	size_t len;
	bool used;
	/* The teardown in flight for this id (the id is not reused before it ends). */
	struct ulpo_job job;
	void *ddp_ctx;
	struct ulpo_ddp_sk *sk;
};

struct ulpo_ddp_sk {
	int fd;
	const struct ulpo_ddp_ulp_ops *ops;
	uint32_t nids;
	struct sw_io *ios;
};

static void sw_get_caps(struct ulpo_ddp_dev *dev, uint32_t *supported, uint32_t *enabled)
{
	*supported = dev->caps_supported;
	*enabled = __atomic_load_n(&dev->caps_enabled, __ATOMIC_RELAXED);
}

static int sw_limits(struct ulpo_ddp_dev *dev, struct ulpo_ddp_limits *lim)
{
	(void)dev;
	memset(lim, 0, sizeof(*lim));
	lim->type = ULPO_DDP_TYPE_NVME_TCP;
	lim->max_ddp_sgl_len = SW_MAX_SGL;
	lim->io_threshold = SW_IO_THRESHOLD;
	lim->tls = false;
	lim->nvmeotcp.full_ccid_range = false;
	return 0;
}

static int sw_sk_add(struct ulpo_ddp_dev *dev, int fd, const struct ulpo_ddp_config *cfg,
		     const struct ulpo_ddp_ulp_ops *ops, struct ulpo_ddp_sk **ret)
{
	struct ulpo_ddp_sk *sk;
	uint32_t n = SW_MIN_IDS;

	(void)dev;
	if (cfg->type != ULPO_DDP_TYPE_NVME_TCP || cfg->nvmeotcp.pfv != 0 ||
	    cfg->nvmeotcp.queue_size <= 0 || !ops || !ops->ddp_teardown_done)
		return -EINVAL;
	while (n < 2u * (uint32_t)cfg->nvmeotcp.queue_size && n < SW_MAX_IDS)
		n *= 2;
	sk = calloc(1, sizeof(*sk));
	if (!sk)
		return -ENOMEM;
	sk->ios = calloc(n, sizeof(*sk->ios));
	if (!sk->ios) {
		free(sk);
		return -ENOMEM;
	}
	sk->fd = fd;
	sk->ops = ops;
	sk->nids = n;
	*ret = sk;
	return 0;
}

static void sw_sk_del(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk)
{
	(void)dev;
	if (!sk)
		return;
	free(sk->ios);
	free(sk);
}

static int sw_setup(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk, struct ulpo_ddp_io *io)
{
	struct sw_io *s;

	(void)dev;
	if (io->command_id >= sk->nids)
		return -ENOSPC;
	if (io->nents <= 0 || io->nents > SW_MAX_SGL)
		return -EINVAL;
	s = &sk->ios[io->command_id];
	if (s->used)
		return -EEXIST;
	s->sg = io->sg;
	s->nents = io->nents;
	s->len = io->len;
	s->used = true;
	return 0;
}

static void teardown_done(struct ulpo_job *job)
{
	struct sw_io *s = job->priv;

	s->sk->ops->ddp_teardown_done(s->ddp_ctx);
}

static void sw_teardown(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk, struct ulpo_ddp_io *io,
			void *ddp_ctx)
{
	struct sw_io *s;

	(void)dev;
	if (io->command_id >= sk->nids)
		return;
	s = &sk->ios[io->command_id];
	s->used = false;
	s->sg = NULL;
	s->ddp_ctx = ddp_ctx;
	s->sk = sk;
	/* An empty job: its completion, inline or on a worker, is the unmapping done. */
	memset(&s->job, 0, sizeof(s->job));
	s->job.op = ULPO_JOB_CRC32C;
	s->job.complete = teardown_done;
	s->job.priv = s;
	if (ulpo_engine_submit(&s->job) < 0)
		teardown_done(&s->job);
}

static int sw_place(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk, uint32_t command_id,
		    size_t off, size_t len, struct ulpo_ddp_placement *pl)
{
	struct sw_io *s;
	size_t pos = 0;
	int n = 0;

	(void)dev;
	if (command_id >= sk->nids || !sk->ios[command_id].used)
		return -ENOENT;
	s = &sk->ios[command_id];
	if (off > s->len || len > s->len - off)
		return -ERANGE;
	for (int i = 0; i < s->nents && len; i++) {
		size_t seg = s->sg[i].iov_len;

		if (pos + seg <= off) {
			pos += seg;
			continue;
		}
		size_t skip = off > pos ? off - pos : 0, take = seg - skip;

		if (take > len)
			take = len;
		if (n == pl->max)
			return -E2BIG;
		pl->iov[n].iov_base = (uint8_t *)s->sg[i].iov_base + skip;
		pl->iov[n++].iov_len = take;
		len -= take;
		off += take;
		pos += seg;
	}
	pl->cnt = n;
	return 0;
}

static void crc_done(struct ulpo_job *job)
{
	(void)job;
}

static int sw_ddgst_check(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk,
			  const struct ulpo_ddp_placement *pl, size_t len, uint32_t ddgst)
{
	struct ulpo_job job = {
		.op = ULPO_JOB_CRC32C,
		.flags = ULPO_JOB_F_INLINE,	/* the PDU waits for it; the buffers are its */
		.src = pl->iov,
		.srccnt = pl->cnt,
		.complete = crc_done,
	};

	(void)dev;
	(void)sk;
	(void)len;
	if (ulpo_engine_submit(&job) < 0 || job.result < 0)
		return -EOPNOTSUPP;
	return job.crc == ddgst;
}

static const struct ulpo_ddp_dev_ops sw_ops = {
	.get_caps = sw_get_caps,
	.limits = sw_limits,
	.sk_add = sw_sk_add,
	.sk_del = sw_sk_del,
	.setup = sw_setup,
	.teardown = sw_teardown,
	.place = sw_place,
	.ddgst_check = sw_ddgst_check,
};

static struct ulpo_ddp_dev sw_dev = {
	.name = "sw",
	.ops = &sw_ops,
	.caps_supported = ULPO_DDP_CAP_NVME_TCP | ULPO_DDP_CAP_NVME_TCP_DDGST,
	.caps_enabled = ULPO_DDP_CAP_NVME_TCP | ULPO_DDP_CAP_NVME_TCP_DDGST,
};

struct ulpo_ddp_dev *ulpo_ddp_dev_sw(void)
{
	return &sw_dev;
}
