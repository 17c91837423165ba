/* host.h (internal) - the NVMe/TCP host: a controller (host_ctrl.c: connect, admin
 * commands, keep alive, blocking helpers) over queues (host_queue.c: one TCP connection
 * each, command ids, submit, the receive path with its DDP device, timeouts). */
#ifndef ULPO_NVME_HOST_H
#define ULPO_NVME_HOST_H

#include <pthread.h>
#include <stdatomic.h>

#include <ulpo/ddp.h>
#include <ulpo/nvme.h>

#include "nvme/pdu.h"

#define HOST_MAX_SEGS 64		/* iovecs per command */
#define HOST_ADMIN_DEPTH 32
#define HOST_ADMIN_INCAPSULE 8192	/* what targets take on the admin queue */

enum cmd_state {
	CMD_FREE,
	CMD_ACTIVE,
	CMD_ZOMBIE,		/* timed out: the target has not answered, the id is taken */
	CMD_TEARDOWN,		/* answered: the id comes back at ddp_teardown_done */
};

struct host_cmd {
	enum cmd_state state;
	bool ddp;			/* buffers registered with the DDP device */
	bool teardown_pending;		/* the id comes back at ddp_teardown_done */
	bool r2t_mode;			/* write data waits for R2T */
	bool write;			/* data goes to the target */
	struct nvme_cqe *cqe_out;	/* the response is copied here (admin commands) */
	uint8_t opcode;
	uint16_t cid;
	int status;			/* an error found before the response (digest) */
	ulpo_nvme_cb cb;
	void *arg;
	struct iovec iov[HOST_MAX_SEGS];
	int cnt;
	size_t len, received;
	uint64_t deadline_ns;
	struct host_queue *q;
};

struct host_queue {
	struct ulpo_nvme_ctrl *ctrl;
	unsigned int qid;
	struct nvme_tcp_conn conn;
	uint32_t depth;			/* commands the queue may have in flight */
	uint32_t nids;
	struct host_cmd *cmds;		/* by command id */
	uint16_t *free_ids;
	unsigned int nfree, inflight, reads_inflight;
	unsigned int zombies;		/* timed out, not answered: in inflight, not the caller's */
	bool opened;			/* host_queue_open ran (close has work to do) */
	/* Ids whose teardown finished on another thread, not yet back on the free list. */
	pthread_mutex_t td_lock;
	uint16_t *td_ids;
	unsigned int ntd;
	atomic_uint td_pending;
	struct ulpo_ddp_dev *ddp;
	struct ulpo_ddp_sk *ddp_sk;
	struct ulpo_ddp_limits ddp_lim;
	uint8_t *staging;		/* copy path: C2HData data lands here first */
	size_t staging_len;
	int failed;			/* 0, or the -errno that ended the queue */
	uint64_t last_timeout_check;	/* ns */
	uint32_t maxh2cdata, incapsule_max;
};

struct ulpo_nvme_ctrl {
	struct ulpo_nvme_opts opts;
	char subnqn[257], hostnqn[257];
	uint8_t hostid[16];
	struct ulpo_nvme_ctrl_info info;
	struct host_queue admin;
	pthread_mutex_t admin_lock;	/* the caller's admin commands and keep alive */
	struct host_queue *io;
	unsigned int nr_io;
	struct ulpo_nvme_ns_info ns[16];	/* namespaces 1..16 once identified */
	uint64_t cap;
	/* keep alive */
	pthread_t ka_thread;
	bool ka_running;
	pthread_mutex_t ka_lock;
	pthread_cond_t ka_cond;
	bool ka_stop;
	/* statistics (atomics: the keep-alive thread counts too) */
	uint64_t st[32];
};

/* statistics slots, in the order of struct ulpo_nvme_stats */
enum host_stat {
	HS_CMDS, HS_READS, HS_WRITES, HS_FLUSHES, HS_READ_BYTES, HS_WRITE_BYTES,
	HS_INCAPSULE, HS_R2T_WRITES, HS_H2C_PDUS, HS_C2H_PDUS, HS_C2H_SUCCESS,
	HS_PLACED, HS_COPIED, HS_DDGST_OFFLOADED, HS_DDGST_CHECKED, HS_DDGST_ERRORS,
	HS_HDGST_ERRORS, HS_TIMEOUTS, HS_TERM_REQS, HS_KEEP_ALIVES, HS_COUNT,
};

static inline void host_stat_add(struct ulpo_nvme_ctrl *c, enum host_stat s, uint64_t n)
{
	__atomic_fetch_add(&c->st[s], n, __ATOMIC_RELAXED);
}


/* host_queue.c */
int host_queue_open(struct ulpo_nvme_ctrl *ctrl, struct host_queue *q, unsigned int qid,
		    uint32_t depth);
void host_queue_close(struct host_queue *q);
/* Submit a command: sqe filled but for cid and dptr; data out (write, in-capsule or by
 * R2T) or in (read) per `write`. */
int host_queue_submit(struct host_queue *q, struct nvme_sqe *sqe, const struct iovec *iov,
		      int cnt, size_t len, bool write, ulpo_nvme_cb cb, void *arg,
		      struct nvme_cqe *cqe_out);
int host_queue_poll(struct host_queue *q, int timeout_ms);
/* Fail every command of the queue with err, and the queue from now on. */
void host_queue_fail(struct host_queue *q, int err);
/* The DDP device for the queue, after ICResp (config from the negotiation). */
void host_queue_ddp_add(struct host_queue *q);

#endif
