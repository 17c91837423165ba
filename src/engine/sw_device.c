/* sw_device.c - the software offload device: AEAD jobs run on the caller's thread
 * through the crypto backends. Always registered; the async engine replaces the inline
 * run with worker threads without the record layer noticing. */
#include <ulpo/device.h>

#include "engine/aead.h"

static int sw_submit(struct ulpo_device *dev, struct ulpo_job *job)
{
	(void)dev;
	if (job->op == ULPO_JOB_SEAL)
		job->result = ulpo_aead_seal(job->aead, job->nonce, job->aad, job->aadlen,
					     job->src, job->srccnt, job->dst, job->dstcnt,
					     job->tag);
	else
		job->result = ulpo_aead_open(job->aead, job->nonce, job->aad, job->aadlen,
					     job->src, job->srccnt, job->dst, job->dstcnt,
					     job->tag);
	job->complete(job);
	return 0;
}

static const struct ulpo_device_ops sw_ops = {
	.submit = sw_submit,
};

static struct ulpo_device sw_device = {
	.name = "sw",
	.caps = ULPO_DEV_CAP_TLS_TX | ULPO_DEV_CAP_TLS_RX,
	.ops = &sw_ops,
};

struct ulpo_device *ulpo_device_sw(void)
{
	return &sw_device;
}
