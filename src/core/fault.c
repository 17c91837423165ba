/* fault.c - the fault device: the sw device with chosen operations refused or failed, so
 * that every layer's tests can see what a real device's refusals and errors do (a
 * connection refused runs on the software path; a failed job breaks its stream with the
 * kernel's errno; a DDP queue refused or a setup failed falls back to copying). It is
 * registered in front of sw, in both registries, under the name "fault". */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <ulpo/ddp.h>
#include <ulpo/device.h>

#include "core/stats.h"

static struct {
	_Atomic unsigned int sk_add_every, setup_every;
	_Atomic unsigned long job_nth, record_nth;
	_Atomic unsigned long sk_adds, setups, jobs, records;
	atomic_bool registered;
} fault;

/* Every N-th call (1-based count) of a counter is the faulty one. */
static bool nth_of_every(_Atomic unsigned long *count, unsigned int every)
{
	unsigned long k = atomic_fetch_add(count, 1) + 1;

	return every && k % every == 0;
}

static int fault_toe_add(struct ulpo_device *dev, struct ulpo_sock *sk)
{
	(void)dev;
	(void)sk;
	return nth_of_every(&fault.sk_adds, atomic_load(&fault.sk_add_every)) ? -ENOSPC : 0;
}

static int fault_submit(struct ulpo_device *dev, struct ulpo_job *job)
{
	unsigned long j = atomic_fetch_add(&fault.jobs, 1) + 1, r = 0;
	unsigned long jn = atomic_load(&fault.job_nth), rn = atomic_load(&fault.record_nth);

	if (job->op == ULPO_JOB_SEAL)
		r = atomic_fetch_add(&fault.records, 1) + 1;
	if ((jn && j == jn) || (rn && r == rn)) {
		/* The device ran it and it failed: the owner hears so through the usual
		 * completion (before submit returns, as an inline device may). */
		job->result = -EIO;
		job->complete(job);
		return 0;
	}
	return ulpo_device_sw()->ops->submit(dev, job);
}

static const struct ulpo_device_ops fault_ops = {
	.submit = fault_submit,
	.toe_add = fault_toe_add,
};

static struct ulpo_device fault_dev = {
	.name = "fault",
	.caps = ULPO_DEV_CAP_TLS_TX | ULPO_DEV_CAP_TLS_RX | ULPO_DEV_CAP_TOE,
	.ops = &fault_ops,
	.limits = { .max_conns = 0, .sndbuf = 8u << 20, .rcvbuf = 512u << 10, .mem = 64u << 20 },
};

/* DDP half: the sw device's work, with sk_add and setup refused as asked. */
static int fault_sk_add(struct ulpo_ddp_dev *dev, int fd, const struct ulpo_ddp_config *cfg,
			const struct ulpo_ddp_ulp_ops *ops, struct ulpo_ddp_sk **ret)
{
	(void)dev;
	if (nth_of_every(&fault.sk_adds, atomic_load(&fault.sk_add_every)))
		return -ENOSPC;
	return ulpo_ddp_dev_sw()->ops->sk_add(ulpo_ddp_dev_sw(), fd, cfg, ops, ret);
}

static int fault_setup(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk, struct ulpo_ddp_io *io)
{
	(void)dev;
	if (nth_of_every(&fault.setups, atomic_load(&fault.setup_every)))
		return -EIO;
	return ulpo_ddp_dev_sw()->ops->setup(ulpo_ddp_dev_sw(), sk, io);
}

static void fault_sk_del(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk)
{
	(void)dev;
	ulpo_ddp_dev_sw()->ops->sk_del(ulpo_ddp_dev_sw(), sk);
}

static void fault_teardown(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk,
			   struct ulpo_ddp_io *io, void *ddp_ctx)
{
	(void)dev;
	ulpo_ddp_dev_sw()->ops->teardown(ulpo_ddp_dev_sw(), sk, io, ddp_ctx);
}

static void fault_resync(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk, uint32_t seq)
{
	(void)dev;
	if (ulpo_ddp_dev_sw()->ops->resync)
		ulpo_ddp_dev_sw()->ops->resync(ulpo_ddp_dev_sw(), sk, seq);
}

static int fault_place(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk, uint32_t command_id,
		       size_t off, size_t len, struct ulpo_ddp_placement *pl)
{
	(void)dev;
	return ulpo_ddp_dev_sw()->ops->place(ulpo_ddp_dev_sw(), sk, command_id, off, len, pl);
}

static int fault_ddgst_check(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk,
			     const struct ulpo_ddp_placement *pl, size_t len, uint32_t ddgst)
{
	(void)dev;
	return ulpo_ddp_dev_sw()->ops->ddgst_check(ulpo_ddp_dev_sw(), sk, pl, len, ddgst);
}

static int fault_limits(struct ulpo_ddp_dev *dev, struct ulpo_ddp_limits *lim)
{
	(void)dev;
	return ulpo_ddp_dev_sw()->ops->limits(ulpo_ddp_dev_sw(), lim);
}

static const struct ulpo_ddp_dev_ops fault_ddp_ops = {
	.limits = fault_limits,
	.sk_add = fault_sk_add,
	.sk_del = fault_sk_del,
	.setup = fault_setup,
	.teardown = fault_teardown,
	.resync = fault_resync,
	.place = fault_place,
	.ddgst_check = fault_ddgst_check,
};

static struct ulpo_ddp_dev fault_ddp = {
	.name = "fault",
	.ops = &fault_ddp_ops,
	.caps_supported = ULPO_DDP_CAP_NVME_TCP | ULPO_DDP_CAP_NVME_TCP_DDGST,
	.caps_enabled = ULPO_DDP_CAP_NVME_TCP | ULPO_DDP_CAP_NVME_TCP_DDGST,
};

int ulpo_fault_parse(const char *text, struct ulpo_fault_spec *spec)
{
	char buf[256], *save = NULL, *tok;

	memset(spec, 0, sizeof(*spec));
	if (strlen(text) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, text);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '='), *end;
		unsigned long v = 1;

		if (eq) {
			*eq = 0;
			v = strtoul(eq + 1, &end, 10);
			if (end == eq + 1 || *end || !v)
				return -EINVAL;
		}
		if (!strcmp(tok, "sk_add"))
			spec->sk_add_every = (unsigned int)v;
		else if (!strcmp(tok, "setup"))
			spec->setup_every = (unsigned int)v;
		else if (!strcmp(tok, "job") && eq)
			spec->job_nth = v;
		else if (!strcmp(tok, "record") && eq)
			spec->record_nth = v;
		else
			return -EINVAL;
	}
	return 0;
}

int ulpo_fault_configure(const struct ulpo_fault_spec *spec)
{
	atomic_store(&fault.sk_add_every, spec->sk_add_every);
	atomic_store(&fault.setup_every, spec->setup_every);
	atomic_store(&fault.job_nth, spec->job_nth);
	atomic_store(&fault.record_nth, spec->record_nth);
	atomic_store(&fault.sk_adds, 0);
	atomic_store(&fault.setups, 0);
	atomic_store(&fault.jobs, 0);
	atomic_store(&fault.records, 0);
	if (!atomic_exchange(&fault.registered, true)) {
		ulpo_device_register(&fault_dev);
		ulpo_ddp_dev_register(&fault_ddp);
	}
	return 0;
}

void ulpo_fault_remove(void)
{
	if (atomic_exchange(&fault.registered, false)) {
		ulpo_device_unregister(&fault_dev);
		ulpo_ddp_dev_unregister(&fault_ddp);
	}
}
