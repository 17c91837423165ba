/* device.c - the offload device registry. Devices are tried newest first; the software
 * device sits at the end of the list and takes whatever the others refuse, so a socket
 * always has a path. */
#include <errno.h>
#include <pthread.h>

#include <ulpo/device.h>

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ulpo_device *devices;	/* newest first, without sw */

void ulpo_device_register(struct ulpo_device *dev)
{
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

struct ulpo_device *ulpo_device_bind_tls(struct ulpo_sock *sk, enum ulpo_tls_dir dir)
{
	uint32_t cap = dir == ULPO_TLS_DIR_TX ? ULPO_DEV_CAP_TLS_TX : ULPO_DEV_CAP_TLS_RX;
	struct ulpo_device *dev, *sw = ulpo_device_sw();

	pthread_mutex_lock(&reg_lock);
	for (dev = devices; dev; dev = dev->next) {
		if ((dev->caps & cap) && (!dev->ops->tls_add || dev->ops->tls_add(dev, sk, dir) == 0))
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
