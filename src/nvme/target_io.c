/* target_io.c - the NVMe/TCP target's I/O commands (Read, Write, Flush on namespace 1)
 * and the namespace behind them: memory (an anonymous mapping) or a file (pread/pwrite). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/sys.h"
#include "nvme/target.h"

int nvmet_ns_open(struct nvmet_ns *ns, const struct ulpo_nvmet_opts *o)
{
	uint64_t size;

	memset(ns, 0, sizeof(*ns));
	ns->fd = -1;
	ns->lba_size = o->lba_size;
	ns->lba_shift = o->lba_size == 4096 ? 12 : 9;
	if (o->file) {
		off_t end;

		ns->fd = open(o->file, O_RDWR | O_CLOEXEC);
		if (ns->fd < 0)
			return -errno;
		end = lseek(ns->fd, 0, SEEK_END);	/* a regular file or a block device */
		if (end < 0) {
			int r = -errno;

			close(ns->fd);
			return r;
		}
		size = (uint64_t)end;
	} else {
		size = o->ram_bytes;
	}
	size &= ~(uint64_t)(o->lba_size - 1);
	if (!size || size > (uint64_t)SIZE_MAX) {
		if (ns->fd >= 0)
			close(ns->fd);
		return -EINVAL;
	}
	if (!o->file) {
		/* Pages appear when written: a large namespace costs what is used. */
		void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (p == MAP_FAILED)
			return -ENOMEM;
		ns->ram = p;
	}
	ns->size = size;
	ns->nsze = size >> ns->lba_shift;
	pthread_rwlock_init(&ns->lock, NULL);
	return 0;
}

void nvmet_ns_close(struct nvmet_ns *ns)
{
	if (ns->ram)
		munmap(ns->ram, ns->size);
	if (ns->fd >= 0)
		close(ns->fd);
	if (ns->ram || ns->fd >= 0)
		pthread_rwlock_destroy(&ns->lock);
	ns->ram = NULL;
	ns->fd = -1;
}

/* Callers have checked off + len <= ns->size. */
int nvmet_ns_read(struct nvmet_ns *ns, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	if (ns->ram) {
		pthread_rwlock_rdlock(&ns->lock);
		memcpy(buf, ns->ram + off, len);
		pthread_rwlock_unlock(&ns->lock);
		return 0;
	}
	while (len) {
		ssize_t n = ulpo_sys_pread(ns->fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {		/* the file shrank under us */
			memset(p, 0, len);
			return 0;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int nvmet_ns_write(struct nvmet_ns *ns, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	if (ns->ram) {
		pthread_rwlock_wrlock(&ns->lock);
		memcpy(ns->ram + off, buf, len);
		pthread_rwlock_unlock(&ns->lock);
		return 0;
	}
	while (len) {
		ssize_t n = pwrite(ns->fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static int ns_flush(struct nvmet_ns *ns)
{
	if (ns->fd >= 0 && fdatasync(ns->fd))
		return -errno;
	return 0;
}

static int io_read(struct nvmet_conn *q, struct nvmet_req *r, uint64_t off)
{
	struct ulpo_nvmet *t = q->t;

	for (uint32_t done = 0; done < r->len;) {
		uint32_t n = r->len - done < NVMET_C2H_CHUNK ? r->len - done : NVMET_C2H_CHUNK;
		int ret;

		if (t->ns.ram) {
			/* Straight from the namespace's memory to the socket: no copy here. */
			pthread_rwlock_rdlock(&t->ns.lock);
			ret = nvmet_send_data(q, r, t->ns.ram + off + done, n, done,
					      done + n == r->len);
			pthread_rwlock_unlock(&t->ns.lock);
		} else if (nvmet_ns_read(&t->ns, q->buf, n, off + done)) {
			r->status = NVME_SC_INTERNAL;
			break;
		} else {
			ret = nvmet_send_data(q, r, q->buf, n, done, done + n == r->len);
		}
		if (ret < 0)
			return ret;
		nvmet_count(t, read_bytes, n);
		done += n;
		if (ret)
			return 0;	/* the SUCCESS flag was the completion */
	}
	return nvmet_complete(q, r);
}

int nvmet_exec_io(struct nvmet_conn *q, struct nvmet_req *r)
{
	struct nvmet_ns *ns = &q->t->ns;
	uint64_t slba = r->cmd.cdw10 | (uint64_t)r->cmd.cdw11 << 32, len;
	uint32_t nlb = (r->cmd.cdw12 & 0xffff) + 1;
	uint8_t op = r->cmd.opcode;

	if (r->cmd.nsid != 1)
		r->status = NVME_SC_INVALID_NS | NVME_SC_DNR;
	else if (op == NVME_CMD_FLUSH)
		r->status = ns_flush(ns) ? NVME_SC_INTERNAL : 0;
	else if (op != NVME_CMD_READ && op != NVME_CMD_WRITE)
		r->status = NVME_SC_INVALID_OPCODE | NVME_SC_DNR;
	if (r->status || op == NVME_CMD_FLUSH)
		return nvmet_complete(q, r);
	len = (uint64_t)nlb << ns->lba_shift;
	if (len != r->len)
		r->status = NVME_SC_SGL_INVALID_DATA | NVME_SC_DNR;
	else if (len > NVMET_MAX_XFER)
		r->status = NVME_SC_INVALID_FIELD | NVME_SC_DNR;
	else if (slba > ns->nsze || nlb > ns->nsze - slba)
		r->status = NVME_SC_LBA_RANGE | NVME_SC_DNR;
	if (r->status)
		return nvmet_complete(q, r);
	if (op == NVME_CMD_READ)
		return io_read(q, r, slba << ns->lba_shift);
	if (!r->data)
		return nvmet_data_out(q, r, NVMET_SLOT_WRITE, slba << ns->lba_shift);
	if (nvmet_ns_write(ns, r->data, r->len, slba << ns->lba_shift))
		r->status = NVME_SC_INTERNAL;
	else
		nvmet_count(q->t, write_bytes, r->len);
	return nvmet_complete(q, r);
}
