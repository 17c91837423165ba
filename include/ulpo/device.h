/* device.h - the provider interface: what an offload device implements.
 * (Consumers use ulpo.h; this header is for code that adds a device.)
 * A device declares capabilities and accepts or refuses each connection; work is handed
 * to it as jobs that complete through a callback, submit/complete like a crypto
 * accelerator's queue. A device that refuses leaves the connection to the software path. */
#ifndef ULPO_DEVICE_H
#define ULPO_DEVICE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct ulpo_aead;
struct ulpo_sock;

#ifndef ULPO_API
#define ULPO_API __attribute__((visibility("default")))
#endif

enum ulpo_device_cap {
	ULPO_DEV_CAP_TLS_TX = 1u << 0,
	ULPO_DEV_CAP_TLS_RX = 1u << 1,
};

enum ulpo_job_op {
	ULPO_JOB_SEAL,	/* AEAD encrypt src -> dst, write tag */
	ULPO_JOB_OPEN,	/* AEAD decrypt src -> dst, check tag (-EBADMSG) */
	ULPO_JOB_CRC32C,	/* crc = CRC32C(src), seeded with crc (iSCSI/NVMe polynomial) */
};

/* The job must run on the submitter's thread and complete before submit returns (its
 * buffers are the caller's, valid only during the call). */
#define ULPO_JOB_F_INLINE 0x1
/* The submitting thread runs queued jobs itself while it waits for this one: an engine
 * keeps a core for it rather than wake a worker for every core. */
#define ULPO_JOB_F_SUBMITTER_HELPS 0x2

struct ulpo_job {
	enum ulpo_job_op op;
	uint32_t flags;			/* ULPO_JOB_F_* */
	struct ulpo_aead *aead;
	uint8_t nonce[12];
	uint8_t aad[13];
	uint8_t aadlen;
	const struct iovec *src;
	int srccnt;
	const struct iovec *dst;
	int dstcnt;
	uint8_t *tag;
	uint32_t crc;			/* CRC32C: seed in, result out */
	int result;			/* 0 or negative errno, valid at completion */
	/* Runs once the job is done. Owner of the buffers until then: the device. */
	void (*complete)(struct ulpo_job *job);
	void *priv;
};

enum ulpo_tls_dir { ULPO_TLS_DIR_TX, ULPO_TLS_DIR_RX };

struct ulpo_device;

struct ulpo_device_ops {
	/* Take a direction of a TLS connection, or refuse it (-EOPNOTSUPP, -ENOSPC):
	 * the caller then uses the software device. */
	int (*tls_add)(struct ulpo_device *dev, struct ulpo_sock *sk, enum ulpo_tls_dir dir);
	void (*tls_del)(struct ulpo_device *dev, struct ulpo_sock *sk, enum ulpo_tls_dir dir);
	/* Queue a job. 0: it will complete through job->complete (possibly before submit
	 * returns, on an inline device); negative errno: it was not queued. */
	int (*submit)(struct ulpo_device *dev, struct ulpo_job *job);
};

struct ulpo_device {
	const char *name;
	uint32_t caps;			/* enum ulpo_device_cap */
	const struct ulpo_device_ops *ops;
	struct ulpo_device *next;	/* registry link */
};

/* Register a device; it is preferred over those registered before it. */
ULPO_API void ulpo_device_register(struct ulpo_device *dev);
ULPO_API void ulpo_device_unregister(struct ulpo_device *dev);
/* The software device: always present, takes everything. */
ULPO_API struct ulpo_device *ulpo_device_sw(void);
/* First registered device that has all caps in `caps` and accepts the connection. */
ULPO_API struct ulpo_device *ulpo_device_bind_tls(struct ulpo_sock *sk, enum ulpo_tls_dir dir);

#endif
