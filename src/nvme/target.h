/* target.h - the NVMe/TCP target's own objects: the target (listener, controllers,
 * connections), namespace 1, a controller, a connection (one queue, one thread) and the
 * command being executed. target.c runs them, target_conn.c speaks the PDUs of one
 * connection, target_admin.c executes Fabrics and admin commands, target_io.c I/O. */
#ifndef ULPO_NVME_TARGET_H
#define ULPO_NVME_TARGET_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "nvme/pdu.h"
#include "ulpo/nvme.h"

#define NVMET_MDTS 8				/* 2^8 pages of 4 KiB (MPSMIN 0) */
#define NVMET_MAX_XFER (4096u << NVMET_MDTS)	/* 1 MiB */
#define NVMET_C2H_CHUNK (128u << 10)		/* data per C2HData PDU */
#define NVMET_ADMIN_INLINE 8192			/* in-capsule data before IOCCSZ is known */
#define NVMET_MAX_AER 4				/* AERL + 1 */
#define NVMET_MAX_CONNS 1024
#define NVMET_KAS 10				/* Keep Alive granularity, 100 ms units */
#define NVMET_VS 0x00010300u			/* NVMe 1.3.0 */

/* Status codes wire.h does not name (SCT 0 unless said). */
#define NVME_SC_SGL_INVALID_TYPE 0x11
#define NVME_SC_SGL_INVALID_OFFSET 0x16
#define NVME_SC_AER_LIMIT 0x05			/* SCT 1 */

/* Connect's Invalid Parameter information in dw0: where the bad field is, in the
 * Connect data (IATTR bit 16) or in the SQE. Offsets in struct nvme_sqe: */
#define NVMET_IATTR_DATA(off) (1u << 16 | (uint32_t)(off))
#define NVMET_SQE_QID 42
#define NVMET_SQE_SQSIZE 44

struct nvmet_ns {
	uint64_t size;				/* bytes, whole blocks */
	uint64_t nsze;				/* blocks */
	uint32_t lba_size;
	uint8_t lba_shift;
	int fd;					/* file-backed, or -1 */
	uint8_t *ram;				/* RAM-backed (mmap), or NULL */
	/* RAM only: readers copy out, writers copy in. NVMe orders nothing between
	 * queues, but two threads touching the same bytes must still not race (TSan). */
	pthread_rwlock_t lock;
};

struct nvmet_stats {
	atomic_uint_fast64_t connections, admin_cmds, io_cmds, read_bytes, write_bytes;
	atomic_uint_fast64_t term_reqs_sent, ddgst_errors, hdgst_errors;
	atomic_uint_fast64_t r2ts, h2c_pdus, c2h_pdus, c2h_success, kato_expired;
};

struct nvmet_conn;

/* One controller: created by an admin Connect, joined by I/O Connects naming it. Its
 * topology (sqs, refs, list) is under t->lock; cc/csts are written under t->lock and
 * read without it (atomics), as every command checks CSTS.RDY. */
struct nvmet_ctrl {
	struct ulpo_nvmet *t;
	struct nvmet_ctrl *next;
	uint16_t cntlid;
	int refs;				/* queues attached */
	bool failed;				/* Keep Alive expired: no queue may join */
	uint32_t kato_ms;
	uint32_t nr_queues;			/* Number of Queues granted: NSQA | NCQA << 16 */
	_Atomic uint32_t cc, csts;
	_Atomic int64_t last_cmd_ms;		/* any queue's last command, for Keep Alive */
	char hostnqn[256];
	uint8_t hostid[16];
	struct nvmet_conn **sqs;		/* [0..max_io_queues] */
};

enum nvmet_slot_kind { NVMET_SLOT_FREE, NVMET_SLOT_WRITE, NVMET_SLOT_CONNECT };

/* A command whose data the host sends by R2T; its index is the R2T's ttag. */
struct nvmet_slot {
	uint8_t kind;
	uint16_t status;			/* already failed: take the data, then report */
	uint32_t len, done;			/* bytes asked, bytes received (in order) */
	uint64_t off;				/* namespace byte offset */
	struct nvme_sqe cmd;
};

/* One TCP connection = one queue pair. Everything here belongs to the connection's
 * thread but for the list links, ctrl/qid (written under t->lock) and the fd, which
 * others only shutdown(2) under t->lock. */
struct nvmet_conn {
	struct ulpo_nvmet *t;
	struct nvmet_conn *next;		/* t->live or t->dead */
	pthread_t thread;
	bool has_thread;
	struct nvme_tcp_conn tc;
	bool ic_done;
	uint32_t maxr2t;
	struct nvmet_ctrl *ctrl;		/* set by Connect */
	uint16_t qid;
	uint16_t qsize;				/* sqsize + 1; 0 before Connect */
	uint16_t sqhd;
	bool sqhd_disabled;			/* Connect CATTR: no SQ flow control */
	uint8_t *buf;				/* in-capsule data, one H2CData, one C2HData */
	size_t buf_len;
	struct nvmet_slot *slots;
	uint16_t nr_slots, busy_slots;
	uint16_t aer_cid[NVMET_MAX_AER];	/* Async Event Requests held, never completed */
	int nr_aer;
	uint8_t connect_data[1024];		/* a Connect's data coming by R2T */
	uint16_t fes;				/* the TermReq to send on -EPROTO */
	uint32_t fei;
};

struct ulpo_nvmet {
	struct ulpo_nvmet_opts o;		/* defaults applied; strings copied below */
	char subnqn[256];
	char sn[21];
	uint8_t ns_uuid[16];			/* namespace 1's UUID, also its NGUID */
	struct nvmet_ns ns;
	int lfd, port, wake_fd;
	pthread_t acceptor;
	bool has_acceptor;
	pthread_mutex_t lock;			/* lists, controllers, conn->ctrl */
	pthread_cond_t gone;			/* a connection left t->live */
	bool stopping;
	struct nvmet_conn *live, *dead;
	unsigned int nr_live;
	struct nvmet_ctrl *ctrls;
	uint16_t next_cntlid;
	struct nvmet_stats st;
};

/* The command being executed. */
struct nvmet_req {
	struct nvme_sqe cmd;
	uint64_t result;			/* CQE dw0 | dw1 << 32 */
	uint16_t status;			/* SCT << 8 | SC, | NVME_SC_DNR */
	uint32_t len;				/* data length its SGL gives */
	const uint8_t *data;			/* in-capsule data (len bytes), or NULL */
};

#define nvmet_log(t, fmt, ...)                                                        \
	do {                                                                          \
		if ((t)->o.verbose)                                                   \
			fprintf(stderr, "ulpo-nvmet: " fmt "\n", ##__VA_ARGS__);      \
	} while (0)

#define nvmet_count(t, f, n) atomic_fetch_add_explicit(&(t)->st.f, (n), memory_order_relaxed)


/* target.c */
int nvmet_create(const struct ulpo_nvmet_opts *opts, struct ulpo_nvmet **ret);
/* Serve one connection on fd on the calling thread until it ends; fd is closed. */
int nvmet_conn_run(struct ulpo_nvmet *t, int fd);
void nvmet_wake(struct ulpo_nvmet *t);		/* the acceptor looks at Keep Alive again */

/* target_ctrl.c; the status of a Connect, 0 when q joined */
uint16_t nvmet_ctrl_create(struct nvmet_conn *q, const struct nvmf_connect_data *d,
			   uint32_t kato_ms, struct nvmet_req *r);
uint16_t nvmet_ctrl_join(struct nvmet_conn *q, const struct nvmf_connect_data *d, uint16_t qid,
			 struct nvmet_req *r);
void nvmet_ctrl_set_cc(struct nvmet_ctrl *ctrl, uint32_t cc);
struct nvmet_ctrl *nvmet_ctrl_leave(struct nvmet_conn *q);
void nvmet_ctrl_free(struct nvmet_ctrl *ctrl);
int nvmet_kato_check(struct ulpo_nvmet *t);

/* target_conn.c */
void nvmet_conn_serve(struct nvmet_conn *q);
int nvmet_complete(struct nvmet_conn *q, struct nvmet_req *r);
/* Send len bytes of a command's data at offset datao; last: the transfer ends here (then
 * 1 means the SUCCESS flag completed the command and no CQE must follow). */
int nvmet_send_data(struct nvmet_conn *q, struct nvmet_req *r, const void *buf, uint32_t len,
		    uint32_t datao, bool last);
/* Ask for the command's data by R2T; it lands in q->connect_data or the namespace. */
int nvmet_data_out(struct nvmet_conn *q, struct nvmet_req *r, enum nvmet_slot_kind kind,
		   uint64_t off);

/* target_admin.c */
int nvmet_exec_connect(struct nvmet_conn *q, struct nvmet_req *r);
int nvmet_connect_data(struct nvmet_conn *q, struct nvmet_req *r, const uint8_t *data);
int nvmet_exec_fabrics(struct nvmet_conn *q, struct nvmet_req *r);
int nvmet_exec_admin(struct nvmet_conn *q, struct nvmet_req *r);

/* target_io.c */
int nvmet_exec_io(struct nvmet_conn *q, struct nvmet_req *r);
int nvmet_ns_open(struct nvmet_ns *ns, const struct ulpo_nvmet_opts *o);
void nvmet_ns_close(struct nvmet_ns *ns);
int nvmet_ns_read(struct nvmet_ns *ns, void *buf, size_t len, uint64_t off);
int nvmet_ns_write(struct nvmet_ns *ns, const void *buf, size_t len, uint64_t off);

#endif
