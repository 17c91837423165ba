/* device.c - the offload device registry. Devices are tried newest first; the software
 * device sits at the end of the list and takes whatever the others refuse, so a socket
 * always has a path. Each device has an entry in the run-time table (ctl.c) that says
 * which of its capabilities new connections get. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ulpo/ddp.h>
#include <ulpo/device.h>

#include "core/sock.h"
#include "core/stats.h"

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ulpo_device *devices;	/* newest first, without sw */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* The device's entry, found or added on first use (by any thread: finding it twice
 * gives the same answer). 0: none yet; -1: the table is full; else index + 1. */
static int dev_slot(struct ulpo_device *dev)
{
	int slot = __atomic_load_n(&dev->slot, __ATOMIC_ACQUIRE);

	if (!slot) {
		int s = ulpo_ctl_slot(dev->name, dev->caps, &dev->limits);

		slot = s < 0 ? -1 : s + 1;
		__atomic_store_n(&dev->slot, slot, __ATOMIC_RELEASE);
	}
	return slot;
}

/* The built-in devices' entries, and the settings from the environment. */
static void registry_init(void)
{
	struct ulpo_device *sw = ulpo_device_sw();
	const char *e = getenv("ULPO_OFFLOAD");

	dev_slot(sw);
	ulpo_ctl_slot("sw", ULPO_DEV_CAP_DDP_NVME | ULPO_DEV_CAP_DDP_DDGST, NULL);
	if (e && (!strcmp(e, "off") || !strcmp(e, "0")))
		atomic_store(&ulpo_stats->ctl.offload, 0);
	else if (e && strcmp(e, "on") && strcmp(e, "1"))
		fprintf(stderr, "ulpo: ULPO_OFFLOAD=%s: expected on or off (kept on)\n", e);
	e = getenv("ULPO_FAULT");
	if (e && *e) {
		struct ulpo_fault_spec spec;

		if (ulpo_fault_parse(e, &spec) == 0)
			ulpo_fault_configure(&spec);
		else
			fprintf(stderr, "ulpo: ULPO_FAULT=%s: not understood (no fault device)\n", e);
	}
}

void ulpo_device_register(struct ulpo_device *dev)
{
	dev_slot(dev);
	pthread_mutex_lock(&reg_lock);
	dev->next = devices;
	devices = dev;
	pthread_mutex_unlock(&reg_lock);
}

void ulpo_device_unregister(struct ulpo_device *dev)
{
	struct ulpo_device **p;

	pthread_mutex_lock(&reg_lock);
	for (p = &devices; *p; p = &(*p)->next) {
		if (*p == dev) {
			*p = dev->next;
			break;
		}
	}
	pthread_mutex_unlock(&reg_lock);
}

uint32_t ulpo_device_enabled(const struct ulpo_device *dev)
{
	int slot;

	pthread_once(&init_once, registry_init);
	slot = dev_slot((struct ulpo_device *)dev);
	return slot > 0 ? ulpo_ctl_enabled(slot - 1) & dev->caps : dev->caps;
}

struct ulpo_device *ulpo_device_bind_tls(struct ulpo_sock *sk, enum ulpo_tls_dir dir)
{
	uint32_t cap = dir == ULPO_TLS_DIR_TX ? ULPO_DEV_CAP_TLS_TX : ULPO_DEV_CAP_TLS_RX;
	struct ulpo_device *dev, *sw = ulpo_device_sw();

	pthread_once(&init_once, registry_init);
	pthread_mutex_lock(&reg_lock);
	for (dev = devices; dev; dev = dev->next) {
		if ((ulpo_device_enabled(dev) & cap) &&
		    (!dev->ops->tls_add || dev->ops->tls_add(dev, sk, dir) == 0))
			break;
	}
	pthread_mutex_unlock(&reg_lock);
	if (!dev) {
		dev = sw;
		if (dev->ops->tls_add)
			dev->ops->tls_add(dev, sk, dir);
	}
	return dev;
}

void ulpo_device_listen(int fd, int open)
{
	struct ulpo_device *dev, *sw = ulpo_device_sw();

	pthread_once(&init_once, registry_init);
	ulpo_stats_publish();
	ulpo_stat_add(open ? ULPO_STAT_LISTEN_OPEN : ULPO_STAT_LISTEN_CLOSE, 1);
	pthread_mutex_lock(&reg_lock);
	for (dev = devices; dev; dev = dev->next)
		if (dev->ops->listen)
			dev->ops->listen(dev, fd, open);
	pthread_mutex_unlock(&reg_lock);
	if (sw->ops->listen)
		sw->ops->listen(sw, fd, open);
}

struct ulpo_device *ulpo_device_toe(void)
{
	struct ulpo_device *dev;

	pthread_once(&init_once, registry_init);
	pthread_mutex_lock(&reg_lock);
	for (dev = devices; dev; dev = dev->next)
		if (dev->caps & ULPO_DEV_CAP_TOE)
			break;
	pthread_mutex_unlock(&reg_lock);
	return dev ? dev : ulpo_device_sw();
}
