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

/* Capabilities, named as `ulpo caps` shows them. A connection gets what its device
 * supports and has enabled when it is set up (ulpo_caps_set, like ethtool -K). */
enum ulpo_device_cap {
	ULPO_DEV_CAP_TLS_TX = 1u << 0,		/* "tls-tx": record sealing */
	ULPO_DEV_CAP_TLS_RX = 1u << 1,		/* "tls-rx": record opening */
	ULPO_DEV_CAP_TOE = 1u << 2,		/* "toe": whole connections (buffers, transmission,
						 * receive, close); with tls-tx/tls-rx per direction */
	ULPO_DEV_CAP_DDP_NVME = 1u << 3,	/* "ddp-nvme": NVMe/TCP direct data placement */
	ULPO_DEV_CAP_DDP_DDGST = 1u << 4,	/* "ddp-ddgst": NVMe/TCP data digest */
};
#define ULPO_DEV_CAP_ALL 0x1fu

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
/* The job runs on the device's own threads, never the submitter's, even on an inline
 * engine: the submitter is an application thread of an offloaded connection. */
#define ULPO_JOB_F_DEVICE 0x4

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
	/* Take a whole connection (the seed's TOE attach), or refuse it: the connection then
	 * runs on the software path. NULL: every connection is taken. */
	int (*toe_add)(struct ulpo_device *dev, struct ulpo_sock *sk);
	void (*toe_del)(struct ulpo_device *dev, struct ulpo_sock *sk);
	/* A listening socket opened (open) or closed (the seed's tcp_offload_listen_start/
	 * stop events). */
	void (*listen)(struct ulpo_device *dev, int fd, int open);
};

struct ulpo_device_limits {
	uint32_t max_conns;		/* whole connections at once; 0: no limit */
	uint32_t sndbuf;		/* bytes a connection may queue for sending */
	uint32_t rcvbuf;		/* plaintext a connection holds ahead of the reader */
	uint32_t mem;			/* bytes all its connections queue together before each
					 * is held to 64 KiB (the kernel's tcp_mem pressure);
					 * 0: no such bound */
};

struct ulpo_device {
	const char *name;
	uint32_t caps;			/* enum ulpo_device_cap: what it supports */
	const struct ulpo_device_ops *ops;
	struct ulpo_device *next;	/* registry link */
	struct ulpo_device_limits limits;
	int slot;			/* its entry in the run-time table (ulpo caps) */
	_Atomic unsigned int conns;	/* whole connections it carries now */
	_Atomic uint64_t queued;	/* bytes its connections queue now (limits.mem) */
};

/* Register a device; it is preferred over those registered before it. */
ULPO_API void ulpo_device_register(struct ulpo_device *dev);
ULPO_API void ulpo_device_unregister(struct ulpo_device *dev);
/* The software device: always present, takes everything. */
ULPO_API struct ulpo_device *ulpo_device_sw(void);
/* First registered device that has all caps in `caps` and accepts the connection. */
ULPO_API struct ulpo_device *ulpo_device_bind_tls(struct ulpo_sock *sk, enum ulpo_tls_dir dir);
/* The device that whole connections go to: the newest registered one with the TOE cap
 * supported, else sw. Whether it takes a given connection is its toe_add's answer. */
ULPO_API struct ulpo_device *ulpo_device_toe(void);
/* Capabilities enabled on dev now (a subset of dev->caps). */
ULPO_API uint32_t ulpo_device_enabled(const struct ulpo_device *dev);

/* The fault device: the sw device with chosen operations refused or failed, for tests of
 * every layer. Configured by ULPO_FAULT (comma-separated: "sk_add" refuses every whole
 * connection and every DDP queue, "sk_add=N" every N-th, "setup=N" fails every N-th DDP
 * setup, "job=N" fails the N-th crypto job, "record=N" the N-th TX record) or here;
 * registered (preferred over sw) by the first call or by ULPO_FAULT at startup. */
struct ulpo_fault_spec {
	unsigned int sk_add_every;	/* refuse every N-th sk_add/toe_add (1: all); 0 never */
	unsigned int setup_every;	/* fail every N-th DDP setup; 0 never */
	unsigned long job_nth;		/* fail the N-th job submitted (1-based); 0 never */
	unsigned long record_nth;	/* fail the N-th TLS record sealed; 0 never */
};
ULPO_API int ulpo_fault_configure(const struct ulpo_fault_spec *spec);
/* Parse "sk_add=2,setup=3,..." into spec: 0 or -EINVAL. */
ULPO_API int ulpo_fault_parse(const char *text, struct ulpo_fault_spec *spec);
ULPO_API void ulpo_fault_remove(void);

#endif
