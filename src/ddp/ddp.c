/* ddp.c - the DDP device registry, and the protocol-side calls that count what each
 * device did (the seed's rx_nvme_tcp_* statistics). */
#include <errno.h>
#include <pthread.h>

#include "core/stats.h"
#include "ddp/ddp.h"

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ulpo_ddp_dev *reg_head;

void ulpo_ddp_count(struct ulpo_ddp_dev *dev, enum ulpo_ddp_counter c, uint64_t n)
{
	__atomic_fetch_add(&dev->counters[c], n, __ATOMIC_RELAXED);
}

void ulpo_ddp_dev_register(struct ulpo_ddp_dev *dev)
{
	pthread_mutex_lock(&reg_lock);
	dev->next = reg_head;
	reg_head = dev;
	pthread_mutex_unlock(&reg_lock);
}

void ulpo_ddp_dev_unregister(struct ulpo_ddp_dev *dev)
{
	pthread_mutex_lock(&reg_lock);
	for (struct ulpo_ddp_dev **p = &reg_head; *p; p = &(*p)->next) {
		if (*p == dev) {
			*p = dev->next;
			break;
		}
	}
	pthread_mutex_unlock(&reg_lock);
}

/* What the device has enabled: its own setting (ulpo_ddp_set_caps) and the run-time
 * table's (`ulpo caps --set ddp-nvme=off`), where the device has an entry under its name. */
static uint32_t ddp_enabled(struct ulpo_ddp_dev *dev)
{
	uint32_t e = __atomic_load_n(&dev->caps_enabled, __ATOMIC_RELAXED), t, m = 0;
	int slot = __atomic_load_n(&dev->slot, __ATOMIC_ACQUIRE);

	if (!slot) {
		uint32_t caps = 0;
		int s;

		if (dev->caps_supported & ULPO_DDP_CAP_NVME_TCP)
			caps |= ULPO_DEV_CAP_DDP_NVME;
		if (dev->caps_supported & ULPO_DDP_CAP_NVME_TCP_DDGST)
			caps |= ULPO_DEV_CAP_DDP_DDGST;
		ulpo_device_toe();	/* the built-in entries first */
		s = ulpo_ctl_slot(dev->name, caps, NULL);
		slot = s < 0 ? -1 : s + 1;
		__atomic_store_n(&dev->slot, slot, __ATOMIC_RELEASE);
	}
	if (slot < 0)
		return e;
	t = ulpo_ctl_enabled(slot - 1);
	if (t & ULPO_DEV_CAP_DDP_NVME)
		m |= ULPO_DDP_CAP_NVME_TCP;
	if (t & ULPO_DEV_CAP_DDP_DDGST)
		m |= ULPO_DDP_CAP_NVME_TCP_DDGST;
	return e & m;
}

struct ulpo_ddp_dev *ulpo_ddp_dev_find(uint32_t caps)
{
	struct ulpo_ddp_dev *dev, *sw = ulpo_ddp_dev_sw();

	pthread_mutex_lock(&reg_lock);
	for (dev = reg_head; dev; dev = dev->next)
		if ((ddp_enabled(dev) & caps) == caps)
			break;
	pthread_mutex_unlock(&reg_lock);
	if (!dev && (ddp_enabled(sw) & caps) == caps)
		dev = sw;
	return dev;
}

int ulpo_ddp_set_caps(struct ulpo_ddp_dev *dev, uint32_t enabled)
{
	if (!dev || (enabled & ~dev->caps_supported))
		return -EINVAL;
	if (dev->ops->set_caps)
		return dev->ops->set_caps(dev, enabled);
	__atomic_store_n(&dev->caps_enabled, enabled, __ATOMIC_RELAXED);
	return 0;
}

void ulpo_ddp_get_stats(struct ulpo_ddp_dev *dev, struct ulpo_ddp_stats *st)
{
	uint64_t v[DDP_DDGST + 1];

	for (int i = 0; i <= DDP_DDGST; i++)
		v[i] = __atomic_load_n(&dev->counters[i], __ATOMIC_RELAXED);
	*st = (struct ulpo_ddp_stats){
		.rx_nvme_tcp_sk_add = v[DDP_SK_ADD],
		.rx_nvme_tcp_sk_add_fail = v[DDP_SK_ADD_FAIL],
		.rx_nvme_tcp_sk_del = v[DDP_SK_DEL],
		.rx_nvme_tcp_setup = v[DDP_SETUP],
		.rx_nvme_tcp_setup_fail = v[DDP_SETUP_FAIL],
		.rx_nvme_tcp_teardown = v[DDP_TEARDOWN],
		.rx_nvme_tcp_drop = v[DDP_DROP],
		.rx_nvme_tcp_resync = v[DDP_RESYNC],
		.rx_nvme_tcp_packets = v[DDP_PACKETS],
		.rx_nvme_tcp_bytes = v[DDP_BYTES],
		.rx_nvme_tcp_ddgst = v[DDP_DDGST],
	};
}

int ulpo_ddp_sk_add(struct ulpo_ddp_dev *dev, int fd, const struct ulpo_ddp_config *cfg,
		    const struct ulpo_ddp_ulp_ops *ops, struct ulpo_ddp_sk **ret)
{
	int r = dev->ops->sk_add(dev, fd, cfg, ops, ret);

	ulpo_ddp_count(dev, r ? DDP_SK_ADD_FAIL : DDP_SK_ADD, 1);
	return r;
}

void ulpo_ddp_sk_del(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk)
{
	dev->ops->sk_del(dev, sk);
	ulpo_ddp_count(dev, DDP_SK_DEL, 1);
}

int ulpo_ddp_setup(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk, struct ulpo_ddp_io *io)
{
	int r = dev->ops->setup(dev, sk, io);

	ulpo_ddp_count(dev, r ? DDP_SETUP_FAIL : DDP_SETUP, 1);
	return r;
}

void ulpo_ddp_teardown(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk, struct ulpo_ddp_io *io,
		       void *ddp_ctx)
{
	ulpo_ddp_count(dev, DDP_TEARDOWN, 1);
	dev->ops->teardown(dev, sk, io, ddp_ctx);
}

int ulpo_ddp_place(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk, uint32_t command_id,
		   size_t off, size_t len, struct ulpo_ddp_placement *pl)
{
	int r = dev->ops->place(dev, sk, command_id, off, len, pl);

	if (r == 0) {
		ulpo_ddp_count(dev, DDP_PACKETS, 1);
		ulpo_ddp_count(dev, DDP_BYTES, len);
	}
	return r;
}

int ulpo_ddp_ddgst_check(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk,
			 const struct ulpo_ddp_placement *pl, size_t len, uint32_t ddgst)
{
	int r;

	if (!(ddp_enabled(dev) & ULPO_DDP_CAP_NVME_TCP_DDGST) ||
	    !dev->ops->ddgst_check)
		return -EOPNOTSUPP;
	r = dev->ops->ddgst_check(dev, sk, pl, len, ddgst);
	if (r >= 0)
		ulpo_ddp_count(dev, DDP_DDGST, 1);
	return r;
}
