/* sw_device.c - the software offload device: always registered, takes every connection,
 * and hands its jobs to the engine (src/engine/engine.c), which runs them on the caller's
 * thread or on worker threads as configured; the record layer sees one submit/complete. */
#include <ulpo/device.h>

#include "engine/engine.h"

static int sw_submit(struct ulpo_device *dev, struct ulpo_job *job)
{
	(void)dev;
	return ulpo_engine_submit(job);
}

static const struct ulpo_device_ops sw_ops = {
	.submit = sw_submit,
};

static struct ulpo_device sw_device = {
	.name = "sw",
	.caps = ULPO_DEV_CAP_TLS_TX | ULPO_DEV_CAP_TLS_RX | ULPO_DEV_CAP_TOE,
	.ops = &sw_ops,
	/* A whole connection may queue 8 MiB to send (the kernel's tcp_wmem maximum is 4 MiB
	 * of its own, on top) and hold 512 KiB of plaintext ahead of its reader; past 64 MiB
	 * queued by all, each gets 64 KiB (a thousand senders would queue gigabytes). */
	.limits = { .max_conns = 0, .sndbuf = 8u << 20, .rcvbuf = 512u << 10, .mem = 64u << 20 },
};

struct ulpo_device *ulpo_device_sw(void)
{
	return &sw_device;
}
