/* ctl.c - the run-time device table: which devices this process has, what each supports
 * and what it has enabled, and the process-wide offload policy. It lives in the counters'
 * page (/dev/shm/ulpo-stats.<pid>), so `ulpo caps --pid P --set tls-rx=off` changes what a
 * running process gives its next connections, as `ethtool -K` does for a NIC. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <ulpo/device.h>
#include <ulpo/ulpo.h>

#include "core/stats.h"

pthread_mutex_t ulpo_ctl_lock = PTHREAD_MUTEX_INITIALIZER;

void ulpo_ctl_copy(struct ulpo_ctl *dst, const struct ulpo_ctl *src)
{
	uint32_t n = atomic_load(&src->ndev);

	for (uint32_t i = 0; i < n && i < ULPO_CTL_MAX_DEV; i++) {
		const struct ulpo_ctl_dev *s = &src->dev[i];
		struct ulpo_ctl_dev *d = &dst->dev[i];

		memcpy(d->name, s->name, sizeof(d->name));
		d->caps = s->caps;
		d->limits = s->limits;
		atomic_store(&d->enabled, atomic_load(&s->enabled));
		atomic_store(&d->conns, atomic_load(&s->conns));
	}
	atomic_store(&dst->offload, atomic_load(&src->offload));
	atomic_store(&dst->ndev, n);
}

int ulpo_ctl_slot(const char *name, uint32_t caps, const struct ulpo_device_limits *lim)
{
	struct ulpo_ctl *c;
	uint32_t i, n;
	int r = -ENOSPC;

	pthread_mutex_lock(&ulpo_ctl_lock);
	c = &ulpo_stats->ctl;
	n = atomic_load(&c->ndev);
	for (i = 0; i < n; i++) {
		if (!strncmp(c->dev[i].name, name, ULPO_CTL_NAME_MAX - 1)) {
			/* Another half of the same device (TLS and DDP): its caps join,
			 * enabled as they come. */
			atomic_fetch_or(&c->dev[i].enabled, caps & ~c->dev[i].caps);
			c->dev[i].caps |= caps;
			if (lim)
				c->dev[i].limits = *lim;
			r = (int)i;
			goto out;
		}
	}
	if (n < ULPO_CTL_MAX_DEV) {
		struct ulpo_ctl_dev *d = &c->dev[n];

		strncpy(d->name, name, ULPO_CTL_NAME_MAX - 1);
		d->caps = caps;
		if (lim)
			d->limits = *lim;
		atomic_store(&d->enabled, caps);
		atomic_store(&c->ndev, n + 1);	/* readers see a whole entry */
		r = (int)n;
	}
out:
	pthread_mutex_unlock(&ulpo_ctl_lock);
	return r;
}

uint32_t ulpo_ctl_enabled(int slot)
{
	if (slot < 0 || slot >= ULPO_CTL_MAX_DEV)
		return 0;
	return atomic_load_explicit(&ulpo_stats->ctl.dev[slot].enabled, memory_order_relaxed);
}

int ulpo_ctl_caps_set(struct ulpo_ctl *c, const char *device, uint32_t on, uint32_t off)
{
	uint32_t n = atomic_load(&c->ndev);
	bool found = false;

	if ((on | off) & ~ULPO_DEV_CAP_ALL)
		return -EINVAL;
	if (n > ULPO_CTL_MAX_DEV)
		n = ULPO_CTL_MAX_DEV;
	for (uint32_t i = 0; i < n; i++) {
		struct ulpo_ctl_dev *d = &c->dev[i];

		if (device && strncmp(d->name, device, ULPO_CTL_NAME_MAX - 1))
			continue;
		found = true;
		/* A device named on its own must support what it is asked to enable; for
		 * every device, each enables what it has. */
		if (device && (on & ~d->caps))
			return -EOPNOTSUPP;
		atomic_fetch_or(&d->enabled, on & d->caps);
		atomic_fetch_and(&d->enabled, ~off);
	}
	return found ? 0 : -ENODEV;
}

int ulpo_caps_set(const char *device, uint32_t on, uint32_t off)
{
	int r;

	ulpo_device_toe();	/* the built-in devices have their entries */
	r = ulpo_ctl_caps_set(&ulpo_stats->ctl, device, on, off);
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return 0;
}

void ulpo_offload_set(int on)
{
	ulpo_device_toe();	/* ULPO_OFFLOAD was read first */
	atomic_store(&ulpo_stats->ctl.offload, on ? 1 : 0);
}

int ulpo_offload_get(void)
{
	ulpo_device_toe();
	return (int)atomic_load(&ulpo_stats->ctl.offload);
}
