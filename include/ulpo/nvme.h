/* nvme.h - NVMe over TCP in userspace: a host (initiator) library and a target.
 *
 * Host: connect to a controller (admin queue, then N I/O queues, each its own TCP
 * connection), then submit reads, writes and flushes asynchronously and reap completions
 * with ulpo_nvme_poll, or use the blocking helpers. Read data is placed straight into the
 * caller's buffers by the DDP device of the queue (include/ulpo/ddp.h) when it takes the
 * queue, else copied. Functions return 0 or a negative errno; a command's completion
 * status is 0, a positive NVMe status (SCT << 8 | SC, as ulpo_nvme_status_str prints it),
 * or a negative errno for a transport failure (-ETIMEDOUT, -ECONNRESET, -EPROTO).
 *
 * Target: RAM- or file-backed namespaces behind one subsystem NQN, any number of
 * connections, each served by its own thread. A malformed PDU gets a C2HTermReq and ends
 * that connection only. */
#ifndef ULPO_NVME_H
#define ULPO_NVME_H

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

#define ULPO_NVME_DEFAULT_PORT 4420
#define ULPO_NVME_DEFAULT_SUBNQN "nqn.2026-11.io.ulpo:target"

/* ---- host ---- */

struct ulpo_nvme_opts {
	const char *addr;		/* "host:port" (port default 4420) */
	const char *subnqn;		/* default ULPO_NVME_DEFAULT_SUBNQN */
	const char *hostnqn;		/* default: a uuid NQN made at connect */
	unsigned int nr_io_queues;	/* default 1 */
	unsigned int queue_depth;	/* per I/O queue; default 128, capped by CAP.MQES */
	bool hdgst, ddgst;		/* header and data digests */
	uint32_t kato_ms;		/* Keep Alive timeout asked in Connect; 0: none */
	uint32_t timeout_ms;		/* command timeout; default 30000 */
	bool no_ddp;			/* never ask the DDP device: always the copy path */
	int verbose;			/* log transport errors to stderr */
};

struct ulpo_nvme_ctrl_info {
	char sn[21], mn[41], fr[9], subnqn[257];
	uint16_t cntlid, vid, maxcmd;
	uint32_t nn;			/* number of namespaces */
	uint32_t ver;
	uint32_t ioccsz;		/* in-capsule data the I/O queues take, bytes */
	uint32_t maxh2cdata;		/* from ICResp */
	uint32_t mdts_bytes;		/* largest transfer, 0: no limit */
	uint16_t mqes;			/* CAP.MQES + 1 */
};

struct ulpo_nvme_ns_info {
	uint32_t nsid;
	uint64_t nsze;			/* blocks */
	uint32_t lba_size;		/* bytes */
};

/* Per controller, all queues. */
struct ulpo_nvme_stats {
	uint64_t cmds, reads, writes, flushes;
	uint64_t read_bytes, write_bytes;
	uint64_t incapsule_writes, r2t_writes, h2c_pdus;
	uint64_t c2h_pdus, c2h_success_flag;	/* C2HData PDUs; those that ended the command */
	uint64_t placed_bytes;		/* read data that went straight into the caller's buffer */
	uint64_t copied_bytes;		/* ... that went through a buffer first */
	uint64_t ddgst_offloaded;	/* data digests the DDP device checked */
	uint64_t ddgst_checked;		/* data digests the host computed itself */
	uint64_t ddgst_errors, hdgst_errors, timeouts, term_reqs;
	uint64_t keep_alives;
};

struct ulpo_nvme_ctrl;

typedef void (*ulpo_nvme_cb)(void *arg, int status);

ULPO_API int ulpo_nvme_connect(const struct ulpo_nvme_opts *opts, struct ulpo_nvme_ctrl **ret);
/* Shuts the controller down (CC.SHN) and closes every queue. Commands still in flight
 * complete with -ECANCELED. */
ULPO_API void ulpo_nvme_disconnect(struct ulpo_nvme_ctrl *ctrl);
ULPO_API const struct ulpo_nvme_ctrl_info *ulpo_nvme_ctrl_info(const struct ulpo_nvme_ctrl *ctrl);
ULPO_API int ulpo_nvme_ns_info(struct ulpo_nvme_ctrl *ctrl, uint32_t nsid,
			       struct ulpo_nvme_ns_info *info);
/* Raw Identify (cns, nsid) into a 4096-byte buffer. */
ULPO_API int ulpo_nvme_identify(struct ulpo_nvme_ctrl *ctrl, uint8_t cns, uint32_t nsid,
				void *buf4096);
ULPO_API unsigned int ulpo_nvme_nr_io_queues(const struct ulpo_nvme_ctrl *ctrl);

/* Asynchronous I/O on I/O queue qid (1..nr_io_queues). The buffers stay the caller's
 * concern until cb runs (from ulpo_nvme_poll on the same queue). -EAGAIN when the queue
 * is full; -EINVAL for a bad queue, length or alignment. nlb counts blocks (1-based). */
ULPO_API int ulpo_nvme_submit_read(struct ulpo_nvme_ctrl *ctrl, unsigned int qid, uint32_t nsid,
				   uint64_t slba, uint32_t nlb, const struct iovec *iov, int cnt,
				   ulpo_nvme_cb cb, void *arg);
ULPO_API int ulpo_nvme_submit_write(struct ulpo_nvme_ctrl *ctrl, unsigned int qid,
				    uint32_t nsid, uint64_t slba, uint32_t nlb,
				    const struct iovec *iov, int cnt, ulpo_nvme_cb cb, void *arg);
ULPO_API int ulpo_nvme_submit_flush(struct ulpo_nvme_ctrl *ctrl, unsigned int qid,
				    uint32_t nsid, ulpo_nvme_cb cb, void *arg);
/* Process what queue qid has received, waiting up to timeout_ms (0: do not wait, -1:
 * until at least one completion). Returns how many commands completed, or -errno when
 * the queue failed (its commands then completed with that error). */
ULPO_API int ulpo_nvme_poll(struct ulpo_nvme_ctrl *ctrl, unsigned int qid, int timeout_ms);
/* Commands in flight on queue qid. */
ULPO_API unsigned int ulpo_nvme_inflight(const struct ulpo_nvme_ctrl *ctrl, unsigned int qid);

/* Blocking helpers on queue 1: the status as above. */
ULPO_API int ulpo_nvme_read(struct ulpo_nvme_ctrl *ctrl, uint32_t nsid, uint64_t slba,
			    uint32_t nlb, void *buf);
ULPO_API int ulpo_nvme_write(struct ulpo_nvme_ctrl *ctrl, uint32_t nsid, uint64_t slba,
			     uint32_t nlb, const void *buf);
ULPO_API int ulpo_nvme_flush(struct ulpo_nvme_ctrl *ctrl, uint32_t nsid);

ULPO_API void ulpo_nvme_get_stats(const struct ulpo_nvme_ctrl *ctrl, struct ulpo_nvme_stats *st);
/* "SUCCESS", "Data Transfer Error", ..., or "status 0x%x"; errno text for negatives. */
ULPO_API const char *ulpo_nvme_status_str(int status);

/* ---- target ---- */

struct ulpo_nvmet_opts {
	const char *listen;		/* "addr:port"; port 0 picks a free one */
	const char *subnqn;		/* default ULPO_NVME_DEFAULT_SUBNQN */
	uint64_t ram_bytes;		/* namespace 1 in memory, or */
	const char *file;		/* namespace 1 backed by this file (its size) */
	uint32_t lba_size;		/* 512 (default) or 4096 */
	uint32_t maxh2cdata;		/* ICResp; default 131072 */
	uint32_t ioccsz;		/* in-capsule data for I/O queues, bytes; default 8192 */
	uint16_t mqes;			/* queue entries (1-based); default 128 */
	uint16_t max_io_queues;		/* default 16 */
	bool c2h_success;		/* end reads with the C2HData SUCCESS flag when the
					 * host disabled SQ flow control */
	int verbose;			/* log connections and errors to stderr */
};

struct ulpo_nvmet_stats {
	uint64_t connections, admin_cmds, io_cmds, read_bytes, write_bytes;
	uint64_t term_reqs_sent, ddgst_errors, hdgst_errors;
	uint64_t r2ts, h2c_pdus, c2h_pdus;	/* R2Ts sent, H2CData and C2HData PDUs */
	uint64_t c2h_success;		/* commands ended by the C2HData SUCCESS flag */
	uint64_t kato_expired;		/* controllers failed by Keep Alive */
};

struct ulpo_nvmet;

/* Bind, listen and serve in background threads. */
ULPO_API int ulpo_nvmet_start(const struct ulpo_nvmet_opts *opts, struct ulpo_nvmet **ret);
ULPO_API int ulpo_nvmet_port(const struct ulpo_nvmet *t);
ULPO_API void ulpo_nvmet_get_stats(const struct ulpo_nvmet *t, struct ulpo_nvmet_stats *st);
/* Stop listening, end every connection, free the namespaces (a file stays). */
ULPO_API void ulpo_nvmet_stop(struct ulpo_nvmet *t);

#ifdef __cplusplus
}
#endif

#endif
