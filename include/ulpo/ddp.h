/* ddp.h - ULP direct data placement (the kernel's ulp_ddp, Documentation/networking/
 * ulp-ddp-offload.rst), in userspace. A tagged request/response protocol (NVMe/TCP)
 * registers the buffers of each command id with a DDP device; the device puts response
 * data for that id straight into them, and may check its data digest, so the protocol
 * skips both the copy and the CRC. Whatever the device cannot take (sk_add or setup
 * refused, a transfer below io_threshold) the protocol carries on its copy path: the
 * same bytes, only slower.
 *
 * The seed's ops map one to one: get_caps/set_caps, limits, sk_add/sk_del (per queue),
 * setup/teardown (per command id, teardown possibly asynchronous: ddp_teardown_done),
 * resync, statistics. The data path of a userspace device is one more op, `place`: the
 * protocol's receive path asks where a data PDU's payload goes, and the transport reads
 * it from the socket straight there (the DMA of a NIC). */
#ifndef ULPO_DDP_H
#define ULPO_DDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifndef ULPO_API
#define ULPO_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

enum ulpo_ddp_type { ULPO_DDP_TYPE_NVME_TCP = 1 };

enum ulpo_ddp_cap {
	ULPO_DDP_CAP_NVME_TCP = 1u << 0,
	ULPO_DDP_CAP_NVME_TCP_DDGST = 1u << 1,
};

struct ulpo_ddp_limits {
	enum ulpo_ddp_type type;
	int max_ddp_sgl_len;		/* most buffer segments per command; 0: no limit */
	int io_threshold;		/* smallest transfer worth placing, bytes */
	bool tls;			/* works under TLS */
	union {
		struct {
			bool full_ccid_range;	/* every 16-bit command id can be used */
		} nvmeotcp;
	};
};

struct ulpo_ddp_config {
	enum ulpo_ddp_type type;
	union {
		struct {
			uint16_t pfv;		/* PDU format version (0) */
			uint8_t cpda;		/* controller PDU data alignment */
			uint8_t dgst;		/* digests on: NVME_TCP_HDGST/DDGST_ENABLE bits */
			int queue_size;
			int queue_id;
		} nvmeotcp;
	};
};

/* One command's buffers. */
struct ulpo_ddp_io {
	uint32_t command_id;
	int nents;
	const struct iovec *sg;
	size_t len;			/* sum of sg lengths */
};

/* Where a data PDU's payload goes (place): slices of the command's sg, written into
 * iov (the caller's array of max entries). */
struct ulpo_ddp_placement {
	struct iovec *iov;
	int max, cnt;
};

struct ulpo_ddp_stats {
	uint64_t rx_nvme_tcp_sk_add;
	uint64_t rx_nvme_tcp_sk_add_fail;
	uint64_t rx_nvme_tcp_sk_del;
	uint64_t rx_nvme_tcp_setup;
	uint64_t rx_nvme_tcp_setup_fail;
	uint64_t rx_nvme_tcp_teardown;
	uint64_t rx_nvme_tcp_drop;
	uint64_t rx_nvme_tcp_resync;
	uint64_t rx_nvme_tcp_packets;	/* data PDUs placed */
	uint64_t rx_nvme_tcp_bytes;	/* bytes placed */
	uint64_t rx_nvme_tcp_ddgst;	/* data digests the device checked (ok or not) */
};

/* Calls up from the device to the protocol. */
struct ulpo_ddp_ulp_ops {
	/* A teardown finished: the command id (and its buffers) may be reused. May run
	 * on another thread. */
	void (*ddp_teardown_done)(void *ddp_ctx);
};

struct ulpo_ddp_dev;
struct ulpo_ddp_sk;			/* the device's state for one queue (socket) */

struct ulpo_ddp_dev_ops {
	void (*get_caps)(struct ulpo_ddp_dev *dev, uint32_t *supported, uint32_t *enabled);
	int (*set_caps)(struct ulpo_ddp_dev *dev, uint32_t enabled);
	int (*limits)(struct ulpo_ddp_dev *dev, struct ulpo_ddp_limits *lim);
	int (*sk_add)(struct ulpo_ddp_dev *dev, int fd, const struct ulpo_ddp_config *cfg,
		      const struct ulpo_ddp_ulp_ops *ops, struct ulpo_ddp_sk **ret);
	void (*sk_del)(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk);
	/* Register io's buffers under io->command_id. */
	int (*setup)(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk, struct ulpo_ddp_io *io);
	/* Unregister; the device calls ddp_teardown_done(ddp_ctx) when the id is free,
	 * now or later. */
	void (*teardown)(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk,
			 struct ulpo_ddp_io *io, void *ddp_ctx);
	void (*resync)(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk, uint32_t seq);
	/* Data path: where the len payload bytes at offset off of command_id's transfer
	 * go. 0 and *pl filled (the transport reads them there); -ENOENT: not registered
	 * (the protocol copies). */
	int (*place)(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk, uint32_t command_id,
		     size_t off, size_t len, struct ulpo_ddp_placement *pl);
	/* Data digest of the payload just placed, if the DDGST cap is on: the device
	 * computes it over what it placed and compares with the PDU's. 1: matches, 0: does
	 * not, -EOPNOTSUPP: not done (the protocol checks itself). */
	int (*ddgst_check)(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk,
			   const struct ulpo_ddp_placement *pl, size_t len, uint32_t ddgst);
};

struct ulpo_ddp_dev {
	const char *name;
	const struct ulpo_ddp_dev_ops *ops;
	uint32_t caps_supported, caps_enabled;
	struct ulpo_ddp_dev *next;	/* registry link */
	void *priv;
	uint64_t counters[16];		/* the framework's (ulpo_ddp_get_stats); zero it */
	int slot;			/* the framework's: its entry in `ulpo caps`; zero it */
};

/* Register a device; it is preferred over those registered before it (and over sw). */
ULPO_API void ulpo_ddp_dev_register(struct ulpo_ddp_dev *dev);
ULPO_API void ulpo_ddp_dev_unregister(struct ulpo_ddp_dev *dev);
/* The software device: placement by reading from the socket into the registered
 * buffers, digests by CRC32C on the engine (ISA-L). Always present. */
ULPO_API struct ulpo_ddp_dev *ulpo_ddp_dev_sw(void);
/* The preferred device with all of caps enabled, or NULL. */
ULPO_API struct ulpo_ddp_dev *ulpo_ddp_dev_find(uint32_t caps);
/* Statistics of a device, with the seed's names (summed over its queues). */
ULPO_API void ulpo_ddp_get_stats(struct ulpo_ddp_dev *dev, struct ulpo_ddp_stats *st);
/* Enable or disable capabilities of a device (what new queues get), like ethtool -K. */
ULPO_API int ulpo_ddp_set_caps(struct ulpo_ddp_dev *dev, uint32_t enabled);

#ifdef __cplusplus
}
#endif

#endif
