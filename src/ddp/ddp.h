/* ddp.h (internal) - the calls a protocol makes to its queue's DDP device. They wrap the
 * device's ops and keep the statistics, so every device is counted the same way. */
#ifndef ULPO_DDP_DDP_H
#define ULPO_DDP_DDP_H

#include <ulpo/ddp.h>

enum ulpo_ddp_counter {
	DDP_SK_ADD, DDP_SK_ADD_FAIL, DDP_SK_DEL, DDP_SETUP, DDP_SETUP_FAIL, DDP_TEARDOWN,
	DDP_DROP, DDP_RESYNC, DDP_PACKETS, DDP_BYTES, DDP_DDGST,
};

int ulpo_ddp_sk_add(struct ulpo_ddp_dev *dev, int fd, const struct ulpo_ddp_config *cfg,
		    const struct ulpo_ddp_ulp_ops *ops, struct ulpo_ddp_sk **ret);
void ulpo_ddp_sk_del(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk);
int ulpo_ddp_setup(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk, struct ulpo_ddp_io *io);
void ulpo_ddp_teardown(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk, struct ulpo_ddp_io *io,
		       void *ddp_ctx);
int ulpo_ddp_place(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk, uint32_t command_id,
		   size_t off, size_t len, struct ulpo_ddp_placement *pl);
int ulpo_ddp_ddgst_check(struct ulpo_ddp_dev *dev, struct ulpo_ddp_sk *sk,
			 const struct ulpo_ddp_placement *pl, size_t len, uint32_t ddgst);
void ulpo_ddp_count(struct ulpo_ddp_dev *dev, enum ulpo_ddp_counter c, uint64_t n);

#endif
