// SPDX-License-Identifier: GPL-2.0
/*
 * fio-vhost-nvme: an external fio ioengine that drives /dev/vhost-nvme.
 *
 *   ioengine=external:/path/to/fio-vhost-nvme.so
 *
 * Each fio job plays VMM and guest at once, like tools/vhost-nvme-load: it
 * opens /dev/vhost-nvme, becomes its owner and registers its own memory as
 * guest memory with guest physical == virtual address (an identity map:
 * one region for fio's I/O buffers, one for the rings, doorbell and PRP
 * list pages), attaches each file of the job (opened O_RDWR|O_DIRECT) as a
 * namespace (the first file is nsid 1), creates nr_queues SQ/CQ pairs and
 * sends every io_u as an NVMe Read, Write, Flush (fsync) or Dataset
 * Management/Deallocate (trim) command with PRPs. Commit writes the SQ
 * tail doorbells and kicks each queue that got commands once; getevents
 * waits on the CQs' irqfds (or spins on the phase bit with cq_poll=1).
 *
 * With userspace=1 the module is not used at all: a thread of the engine
 * is the controller. It waits for the same kicks, reads the same SQEs from
 * the same rings, does the I/O with io_uring on the backend, writes the
 * CQEs and signals the irqfd: a model of QEMU hw/nvme's data path in an
 * iothread, so that the gain of doing this in the kernel is measured.
 *
 * Options (after the ioengine= line):
 *   shadow_db=0|1   doorbells: a VMM page plus a kick per commit (0), or
 *                   NVMe shadow doorbells with EventIdx (1)
 *   cq_poll=0|1     wait for completions on the irqfd (0) or spin on the
 *                   CQ phase bit with interrupts disabled (1)
 *   nr_queues=N     SQ/CQ pairs per job, io_us round robin (default 1)
 *   sq_poll_us=N    SQ polling budget: set with VHOST_NVME_SET_POLL when the
 *                   module has it (0, the default, turns polling off rather
 *                   than leaving the module parameter's default); the
 *                   userspace controller busy-polls this long before it
 *                   sleeps on the kick eventfd
 *   userspace=0|1   the module (0) or the userspace controller (1)
 *   workers=N       module worker threads for this job's queues, queue i
 *                   served by worker i % N (needs VHOST_NVME_NEW_WORKER)
 *
 * Little-endian hosts only (the rings are used in CPU byte order).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <linux/fs.h>

#include <liburing.h>
#include <linux/vhost_nvme.h>

#include "fio.h"
#include "optgroup.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "fio-vhost-nvme uses the NVMe rings in CPU byte order: little-endian only"
#endif

#define VN_PAGE		4096UL
#define VN_MAX_NS	32
#define VN_ERR_LOG_MAX	16

/* NVMe opcodes and status codes (generic command status, SCT 0). */
enum {
	NVME_CMD_FLUSH = 0x00,
	NVME_CMD_WRITE = 0x01,
	NVME_CMD_READ = 0x02,
	NVME_CMD_DSM = 0x09,
};
enum {
	NVME_SC_SUCCESS = 0x00,
	NVME_SC_INVALID_OPCODE = 0x01,
	NVME_SC_INVALID_FIELD = 0x02,
	NVME_SC_DATA_XFER_ERROR = 0x04,
	NVME_SC_INTERNAL = 0x06,
	NVME_SC_INVALID_NS = 0x0b,
	NVME_SC_PRP_OFFSET_INVALID = 0x13,
	NVME_SC_LBA_RANGE = 0x80,
	NVME_SC_DNR = 0x4000,	/* in the 15-bit status field */
};
#define NVME_DSM_AD	(1U << 2)

struct vn_sqe {
	uint8_t opcode, flags;
	uint16_t cid;
	uint32_t nsid, cdw2, cdw3;
	uint64_t mptr, prp1, prp2;
	uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
};

struct vn_cqe {
	uint32_t result, rsvd;
	uint16_t sq_head, sq_id;
	uint16_t cid, status;	/* status bit 0: phase tag */
};

struct vn_dsm_range {
	uint32_t cattr, nlb;
	uint64_t slba;
};

_Static_assert(sizeof(struct vn_sqe) == 64, "SQE is 64 bytes");
_Static_assert(sizeof(struct vn_cqe) == 16, "CQE is 16 bytes");

struct vn_options {
	void *pad;	/* fio: an option's offset must not be 0 */
	unsigned int shadow_db;
	unsigned int cq_poll;
	unsigned int nr_queues;
	unsigned int sq_poll_us;
	unsigned int userspace;
	unsigned int workers;
};

struct vn_queue {
	uint16_t qid;
	uint16_t size;
	struct vn_sqe *sq;
	struct vn_cqe *cq;
	uint16_t sq_tail;	/* next free SQ slot */
	uint16_t sq_db;		/* tail last written to the doorbell */
	uint16_t cq_head;
	uint16_t cq_phase;
	int kickfd;		/* SQ tail (and CQ head) kick, blocking */
	int irqfd;		/* CQ interrupt; -1 with cq_poll */
	unsigned int inflight;
};

/* Per namespace, as the controller sees it. */
struct vn_ns {
	int fd;			/* engine: fio's fd; controller: its own dup */
	unsigned int lba_shift;
	uint64_t nsze;
	int attached;
	int is_blk;
};

struct vn_region {
	uint64_t start, end;	/* identity mapped: guest address == VA */
};

struct vn_uctrl;

struct vn_data {
	struct vn_options *o;
	int vfd;			/* /dev/vhost-nvme, -1 in userspace mode */
	struct vhost_nvme_info info;
	unsigned int depth;		/* fio's iodepth = number of io_us */
	unsigned int nq;
	struct vn_queue *q;
	unsigned int rr;		/* round robin over queues */
	unsigned int reap_start;

	uint8_t *ring;			/* rings + shadow pages + PRP lists */
	size_t ring_len;
	uint32_t *db;			/* doorbells: SQ y tail at 2y, CQ y head at 2y+1 */
	uint32_t *ei;			/* EventIdx (shadow mode) */
	uint32_t *vmm_db;		/* VMM doorbell page (not guest memory) */
	uint8_t *prp_pages;		/* one page per io_u */

	struct vn_region regions[2];
	unsigned int nregions;

	struct io_u **cid_iou;		/* by cid == io_u->index */
	struct io_u **events;
	unsigned int nevents;
	struct io_u **pending;		/* queued, not committed yet */
	unsigned int npending;
	struct pollfd *pfds;

	struct vn_ns ns[VN_MAX_NS + 1];
	unsigned int err_logged;
	uint64_t features;		/* negotiated with the module */
	uint32_t *worker;		/* worker ids, [0] = the owner's */
	unsigned int nworkers;

	struct vn_uctrl *uc;
};

/* ------------------------------------------------------------------------ */
/* Shared helpers                                                           */

static inline uint32_t vn_load(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void vn_store(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline void vn_mb(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* nvme_dbbuf_need_event(): did [old, new) pass event_idx? */
static inline int vn_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old);
}

static void vn_kick(int fd)
{
	uint64_t one = 1;

	while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static int vn_in_regions(const struct vn_region *r, unsigned int n,
			 uint64_t addr, uint64_t len)
{
	for (unsigned int i = 0; i < n; i++)
		if (addr >= r[i].start && addr <= r[i].end &&
		    len <= r[i].end - addr)
			return 1;
	return 0;
}

static inline void vn_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
#endif
}

static inline uint64_t vn_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static const char *vn_sc_name(unsigned int sct, unsigned int sc)
{
	if (sct != 0)
		return sct == 1 ? "command specific" : sct == 2 ? "media error" : "other";
	switch (sc) {
	case 0x01: return "Invalid Command Opcode";
	case 0x02: return "Invalid Field in Command";
	case 0x04: return "Data Transfer Error";
	case 0x06: return "Internal Error";
	case 0x0b: return "Invalid Namespace or Format";
	case 0x13: return "PRP Offset Invalid";
	case 0x80: return "LBA Out of Range";
	default: return "generic";
	}
}

/* ------------------------------------------------------------------------ */
/* The userspace controller (userspace=1)                                   */

#define UC_TAG_STOP	1ULL
#define UC_TAG_KICK	2ULL	/* + queue index * 4 */
#define UC_MAX_IOV	(256 * 1024 / 4096 + 1)

struct uc_cmd {
	struct uc_cmd *next_free;
	unsigned int qi;
	uint16_t cid;
	uint32_t len;
	int niov;
	struct iovec iov[UC_MAX_IOV];
};

struct uc_queue {
	uint16_t sq_head;
	uint16_t cq_tail;
	uint16_t cq_phase;
	unsigned int reserved;	/* CQ entries reserved by fetched commands */
	int need_irq;
	uint64_t kickbuf;
};

struct vn_uctrl {
	struct vn_data *d;
	struct io_uring ring;
	pthread_t thread;
	int started;
	int stopfd;
	uint64_t stopbuf;
	volatile int stop;
	unsigned int poll_us;
	struct uc_queue *uq;
	struct uc_cmd *cmds;
	struct uc_cmd *free;
	int irq_enabled;
	unsigned int inflight;
	uint64_t errors;
};

static struct io_uring_sqe *uc_get_sqe(struct vn_uctrl *uc)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&uc->ring);

	if (!sqe) {
		io_uring_submit(&uc->ring);
		sqe = io_uring_get_sqe(&uc->ring);
	}
	return sqe;
}

static void uc_arm_kick(struct vn_uctrl *uc, unsigned int qi)
{
	struct io_uring_sqe *sqe = uc_get_sqe(uc);

	io_uring_prep_read(sqe, uc->d->q[qi].kickfd, &uc->uq[qi].kickbuf, 8, 0);
	io_uring_sqe_set_data64(sqe, UC_TAG_KICK + 4ULL * qi);
}

/* Post a CQE: everything but cid/status first, then those with the phase. */
static void uc_post(struct vn_uctrl *uc, unsigned int qi, uint16_t cid, uint16_t sc)
{
	struct vn_queue *q = &uc->d->q[qi];
	struct uc_queue *u = &uc->uq[qi];
	struct vn_cqe *e = &q->cq[u->cq_tail];
	uint32_t w;

	e->result = 0;
	e->rsvd = 0;
	e->sq_head = u->sq_head;
	e->sq_id = q->qid;
	w = cid | (uint32_t)((uint16_t)(sc << 1) | u->cq_phase) << 16;
	__atomic_store_n((uint32_t *)&e->cid, w, __ATOMIC_RELEASE);
	if (++u->cq_tail == q->size) {
		u->cq_tail = 0;
		u->cq_phase ^= 1;
	}
	u->reserved--;
	u->need_irq = 1;
}

/* Map a PRP data pointer into iovecs, checking every address. */
static uint16_t uc_map_prp(struct vn_uctrl *uc, const struct vn_sqe *e,
			   uint32_t len, struct uc_cmd *c)
{
	struct vn_data *d = uc->d;
	uint64_t addr = e->prp1, *list = NULL;
	uint32_t chunk;
	int first = 1;

	c->niov = 0;
	if (addr & 3)
		return NVME_SC_PRP_OFFSET_INVALID | NVME_SC_DNR;
	chunk = VN_PAGE - (addr & (VN_PAGE - 1));
	for (;;) {
		if (chunk > len)
			chunk = len;
		if (!vn_in_regions(d->regions, d->nregions, addr, chunk))
			return NVME_SC_DATA_XFER_ERROR;
		if (c->niov && (uint8_t *)c->iov[c->niov - 1].iov_base +
				c->iov[c->niov - 1].iov_len == (uint8_t *)(uintptr_t)addr) {
			c->iov[c->niov - 1].iov_len += chunk;
		} else {
			if (c->niov == UC_MAX_IOV)
				return NVME_SC_INVALID_FIELD | NVME_SC_DNR;
			c->iov[c->niov].iov_base = (void *)(uintptr_t)addr;
			c->iov[c->niov].iov_len = chunk;
			c->niov++;
		}
		len -= chunk;
		if (!len)
			return 0;
		chunk = VN_PAGE;
		if (first && len <= VN_PAGE) {
			/* Two pages: PRP2 is the second data page. */
			addr = e->prp2;
		} else {
			if (first) {
				/* PRP2 is a list, which may start mid-page. */
				if (e->prp2 & 7)
					return NVME_SC_PRP_OFFSET_INVALID | NVME_SC_DNR;
				list = (uint64_t *)(uintptr_t)e->prp2;
			} else if (((uintptr_t)list & (VN_PAGE - 1)) == VN_PAGE - 8 &&
				   len > VN_PAGE) {
				/* The last entry of a list page chains to the next. */
				if (!vn_in_regions(d->regions, d->nregions, (uintptr_t)list, 8))
					return NVME_SC_DATA_XFER_ERROR;
				addr = *list;
				if (addr & (VN_PAGE - 1))
					return NVME_SC_PRP_OFFSET_INVALID | NVME_SC_DNR;
				list = (uint64_t *)(uintptr_t)addr;
			}
			if (!vn_in_regions(d->regions, d->nregions, (uintptr_t)list, 8))
				return NVME_SC_DATA_XFER_ERROR;
			addr = *list++;
		}
		first = 0;
		if (addr & (VN_PAGE - 1))
			return NVME_SC_PRP_OFFSET_INVALID | NVME_SC_DNR;
	}
}

static void uc_dsm(struct vn_uctrl *uc, const struct vn_sqe *e, struct vn_ns *ns,
		   uint16_t *sc)
{
	struct vn_dsm_range r[256];
	unsigned int nr = (e->cdw10 & 0xff) + 1;
	struct uc_cmd tmp;
	uint8_t *dst = (uint8_t *)r;

	if (!(e->cdw11 & NVME_DSM_AD))
		return;
	*sc = uc_map_prp(uc, e, nr * sizeof(r[0]), &tmp);
	if (*sc)
		return;
	for (int i = 0; i < tmp.niov; i++) {
		memcpy(dst, tmp.iov[i].iov_base, tmp.iov[i].iov_len);
		dst += tmp.iov[i].iov_len;
	}
	for (unsigned int i = 0; i < nr; i++) {
		uint64_t range[2];
		int ret;

		if (!r[i].nlb)
			continue;
		if (r[i].slba + r[i].nlb > ns->nsze || r[i].slba + r[i].nlb < r[i].slba) {
			*sc = NVME_SC_LBA_RANGE | NVME_SC_DNR;
			return;
		}
		range[0] = r[i].slba << ns->lba_shift;
		range[1] = (uint64_t)r[i].nlb << ns->lba_shift;
		/* Like QEMU's thread-pool discard, but inline: trims are rare. */
		if (ns->is_blk)
			ret = ioctl(ns->fd, BLKDISCARD, range);
		else
			ret = fallocate(ns->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					range[0], range[1]);
		/* Deallocation is advisory: a backend without it is fine. */
		if (ret && errno != EOPNOTSUPP && errno != ENOTTY) {
			*sc = NVME_SC_INTERNAL;
			return;
		}
	}
}

/* Decode one SQE; submit its I/O or post its completion right away. */
static void uc_command(struct vn_uctrl *uc, unsigned int qi, const struct vn_sqe *e)
{
	struct vn_data *d = uc->d;
	struct vn_ns *ns = NULL;
	struct io_uring_sqe *sqe;
	struct uc_cmd *c;
	uint64_t slba;
	uint32_t nlb, len;
	uint16_t sc = 0;

	if (e->nsid >= 1 && e->nsid <= VN_MAX_NS && d->ns[e->nsid].attached)
		ns = &d->ns[e->nsid];
	switch (e->opcode) {
	case NVME_CMD_READ:
	case NVME_CMD_WRITE:
		break;
	case NVME_CMD_FLUSH:
		if (!ns) {
			sc = NVME_SC_INVALID_NS | NVME_SC_DNR;
			goto done;
		}
		c = uc->free;
		uc->free = c->next_free;
		c->qi = qi;
		c->cid = e->cid;
		c->len = 0;
		sqe = uc_get_sqe(uc);
		io_uring_prep_fsync(sqe, ns->fd, 0);
		io_uring_sqe_set_data(sqe, c);
		uc->inflight++;
		return;
	case NVME_CMD_DSM:
		if (!ns)
			sc = NVME_SC_INVALID_NS | NVME_SC_DNR;
		else
			uc_dsm(uc, e, ns, &sc);
		goto done;
	default:
		sc = NVME_SC_INVALID_OPCODE | NVME_SC_DNR;
		goto done;
	}
	if (!ns) {
		sc = NVME_SC_INVALID_NS | NVME_SC_DNR;
		goto done;
	}
	slba = e->cdw10 | (uint64_t)e->cdw11 << 32;
	nlb = (e->cdw12 & 0xffff) + 1;
	if (slba + nlb > ns->nsze || slba + nlb < slba) {
		sc = NVME_SC_LBA_RANGE | NVME_SC_DNR;
		goto done;
	}
	len = nlb << ns->lba_shift;
	if (len > (VN_PAGE << d->info.mdts)) {
		sc = NVME_SC_INVALID_FIELD | NVME_SC_DNR;
		goto done;
	}
	c = uc->free;
	sc = uc_map_prp(uc, e, len, c);
	if (sc)
		goto done;
	uc->free = c->next_free;
	c->qi = qi;
	c->cid = e->cid;
	c->len = len;
	sqe = uc_get_sqe(uc);
	if (e->opcode == NVME_CMD_READ)
		io_uring_prep_readv(sqe, ns->fd, c->iov, c->niov, slba << ns->lba_shift);
	else
		io_uring_prep_writev(sqe, ns->fd, c->iov, c->niov, slba << ns->lba_shift);
	io_uring_sqe_set_data(sqe, c);
	uc->inflight++;
	return;
done:
	uc_post(uc, qi, e->cid, sc);
}

/* Fetch what the SQ tail doorbell says; returns the number fetched. */
static unsigned int uc_fetch(struct vn_uctrl *uc, unsigned int qi)
{
	struct vn_data *d = uc->d;
	struct vn_queue *q = &d->q[qi];
	struct uc_queue *u = &uc->uq[qi];
	unsigned int n = 0;
	uint32_t tail, head;

	for (;;) {
		tail = vn_load(&d->db[2 * q->qid]);
		if (tail >= q->size) {
			uc->errors++;
			return n;
		}
		while (u->sq_head != tail) {
			struct vn_sqe e;
			uint16_t used;

			/* A CQ of N entries holds N - 1: reserve one per command. */
			head = vn_load(&d->db[2 * q->qid + 1]);
			if (head >= q->size)
				head = u->cq_tail;
			used = (uint16_t)(u->cq_tail + q->size - head) % q->size;
			if (used + u->reserved >= (unsigned int)q->size - 1U)
				return n;
			memcpy(&e, &q->sq[u->sq_head], sizeof(e));
			if (++u->sq_head == q->size)
				u->sq_head = 0;
			u->reserved++;
			uc_command(uc, qi, &e);
			n++;
		}
		if (!d->ei)
			return n;
		/* Shadow doorbells: publish the consumed head, then re-check. */
		vn_store(&d->ei[2 * q->qid], u->sq_head);
		vn_mb();
		if (vn_load(&d->db[2 * q->qid]) == u->sq_head)
			return n;
	}
}

/* Handle io_uring completions; returns how many there were. */
static unsigned int uc_reap(struct vn_uctrl *uc)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;

	io_uring_for_each_cqe(&uc->ring, head, cqe) {
		uint64_t tag = io_uring_cqe_get_data64(cqe);

		n++;
		if (tag == UC_TAG_STOP) {
			uc->stop = 1;
		} else if (tag < 4096) {
			unsigned int qi = (tag - UC_TAG_KICK) / 4;

			if (cqe->res < 0 && cqe->res != -EINTR && cqe->res != -EAGAIN) {
				uc->errors++;
				uc->stop = 1;
			} else {
				uc_arm_kick(uc, qi);
			}
		} else {
			struct uc_cmd *c = (struct uc_cmd *)(uintptr_t)tag;
			uint16_t sc = 0;

			if (cqe->res < 0)
				sc = NVME_SC_INTERNAL;
			else if ((uint32_t)cqe->res != c->len)
				sc = NVME_SC_DATA_XFER_ERROR;
			uc_post(uc, c->qi, c->cid, sc);
			c->next_free = uc->free;
			uc->free = c;
			uc->inflight--;
		}
	}
	io_uring_cq_advance(&uc->ring, n);
	return n;
}

static void uc_signal(struct vn_uctrl *uc)
{
	struct vn_data *d = uc->d;

	for (unsigned int i = 0; i < d->nq; i++) {
		if (!uc->uq[i].need_irq)
			continue;
		uc->uq[i].need_irq = 0;
		if (uc->irq_enabled)
			vn_kick(d->q[i].irqfd);
	}
}

static void *uc_main(void *arg)
{
	struct vn_uctrl *uc = arg;
	struct vn_data *d = uc->d;
	struct io_uring_sqe *sqe;
	uint64_t idle_since = 0;

	sqe = uc_get_sqe(uc);
	io_uring_prep_read(sqe, uc->stopfd, &uc->stopbuf, 8, 0);
	io_uring_sqe_set_data64(sqe, UC_TAG_STOP);
	for (unsigned int i = 0; i < d->nq; i++)
		uc_arm_kick(uc, i);
	io_uring_submit(&uc->ring);

	while (!uc->stop) {
		unsigned int work = uc_reap(uc);

		for (unsigned int i = 0; i < d->nq; i++)
			work += uc_fetch(uc, i);
		uc_signal(uc);
		if (work) {
			/* One submit per pass: a plugged batch. */
			io_uring_submit(&uc->ring);
			idle_since = 0;
			continue;
		}
		if (uc->poll_us) {
			uint64_t now = vn_now_ns();

			if (!idle_since)
				idle_since = now;
			if (now - idle_since < uc->poll_us * 1000ULL)
				continue;
		}
		idle_since = 0;
		/* Nothing to do: sleep until a kick or an I/O completes. */
		io_uring_submit_and_wait(&uc->ring, 1);
	}
	return NULL;
}

static int uc_start(struct thread_data *td, struct vn_data *d)
{
	struct vn_uctrl *uc = d->uc;
	struct io_uring_params p = { 0 };
	unsigned int ncmds = 0, entries = 8;
	int ret;

	for (unsigned int i = 0; i < d->nq; i++)
		ncmds += d->q[i].size;
	while (entries < ncmds + d->nq + 1 && entries < 4096)
		entries <<= 1;
	ret = io_uring_queue_init_params(entries, &uc->ring, &p);
	if (ret) {
		log_err("fio-vhost-nvme: %s: io_uring_queue_init: %s\n", td->o.name,
			strerror(-ret));
		return 1;
	}
	uc->cmds = calloc(ncmds, sizeof(*uc->cmds));
	uc->uq = calloc(d->nq, sizeof(*uc->uq));
	if (!uc->cmds || !uc->uq)
		return 1;
	for (unsigned int i = 0; i < ncmds; i++) {
		uc->cmds[i].next_free = uc->free;
		uc->free = &uc->cmds[i];
	}
	for (unsigned int i = 0; i < d->nq; i++)
		uc->uq[i].cq_phase = 1;
	uc->irq_enabled = !d->o->cq_poll;
	uc->poll_us = d->o->sq_poll_us;
	uc->stopfd = eventfd(0, 0);
	if (uc->stopfd < 0)
		return 1;
	ret = pthread_create(&uc->thread, NULL, uc_main, uc);
	if (ret) {
		log_err("fio-vhost-nvme: pthread_create: %s\n", strerror(ret));
		return 1;
	}
	uc->started = 1;
	return 0;
}

static void uc_stop(struct vn_data *d)
{
	struct vn_uctrl *uc = d->uc;

	if (!uc)
		return;
	if (uc->started) {
		vn_kick(uc->stopfd);
		pthread_join(uc->thread, NULL);
		/* Let I/O still in the ring finish before the buffers go. */
		while (uc->inflight) {
			struct io_uring_cqe *cqe;

			if (io_uring_wait_cqe(&uc->ring, &cqe))
				break;
			uc_reap(uc);
		}
		io_uring_queue_exit(&uc->ring);
	}
	if (uc->stopfd > 0)
		close(uc->stopfd);
	for (unsigned int i = 1; i <= VN_MAX_NS; i++)
		if (d->ns[i].attached && d->ns[i].fd >= 0)
			close(d->ns[i].fd);
	if (uc->errors)
		log_info("fio-vhost-nvme: userspace controller: %llu doorbell/kick errors\n",
			 (unsigned long long)uc->errors);
	free(uc->cmds);
	free(uc->uq);
	free(uc);
	d->uc = NULL;
}

/* ------------------------------------------------------------------------ */
/* fio hooks                                                                */

static int vn_ioctl(struct thread_data *td, struct vn_data *d, unsigned long req,
		    void *arg, const char *name)
{
	if (ioctl(d->vfd, req, arg) == 0)
		return 0;
	log_err("fio-vhost-nvme: %s: %s: %s\n", td->o.name, name, strerror(errno));
	td_verror(td, errno, name);
	return 1;
}

/*
 * SQ polling and extra workers in the module, where its uapi has them
 * (VHOST_NVME_SET_POLL, VHOST_NVME_NEW_WORKER); older headers build
 * without them and the options are then reported unused.
 */
static uint64_t vn_wanted_features(struct vn_options *o)
{
	uint64_t f = VHOST_NVME_F_DSM;

	if (o->shadow_db)
		f |= VHOST_NVME_F_SHADOW_DB;
#ifdef VHOST_NVME_SET_POLL
	f |= VHOST_NVME_F_POLL;
#endif
#ifdef VHOST_NVME_NEW_WORKER
	if (o->workers > 1)
		f |= VHOST_NVME_F_WORKERS;
#endif
	return f;
}

static int vn_set_sq_poll(struct thread_data *td, struct vn_data *d)
{
#ifdef VHOST_NVME_SET_POLL
	struct vhost_nvme_poll p = { .poll_us = d->o->sq_poll_us };

	if (!(d->features & VHOST_NVME_F_POLL))
		return -EOPNOTSUPP;
	if (p.poll_us > d->info.max_poll_us) {
		log_err("fio-vhost-nvme: sq_poll_us=%u above the module's maximum %u\n",
			p.poll_us, d->info.max_poll_us);
		return -EINVAL;
	}
	return vn_ioctl(td, d, VHOST_NVME_SET_POLL, &p, "VHOST_NVME_SET_POLL") ? -errno : 0;
#else
	(void)td;
	(void)d;
	return -EOPNOTSUPP;
#endif
}

/* Workers for the queues: worker[i % workers], worker 0 the owner's. */
static int vn_new_workers(struct thread_data *td, struct vn_data *d)
{
	unsigned int n = d->o->workers ? d->o->workers : 1;

	d->worker = calloc(n, sizeof(*d->worker));
	if (!d->worker)
		return -ENOMEM;
	d->nworkers = 1;
	if (n == 1)
		return 0;
#ifdef VHOST_NVME_NEW_WORKER
	if (!(d->features & VHOST_NVME_F_WORKERS))
		return -EOPNOTSUPP;
	if (n > d->info.max_workers) {
		log_err("fio-vhost-nvme: workers=%u above the module's maximum %u\n",
			n, d->info.max_workers);
		return -EINVAL;
	}
	for (; d->nworkers < n; d->nworkers++) {
		struct vhost_nvme_worker w = { 0 };

		if (vn_ioctl(td, d, VHOST_NVME_NEW_WORKER, &w, "VHOST_NVME_NEW_WORKER"))
			return -errno;
		d->worker[d->nworkers] = w.id;
	}
	return 0;
#else
	(void)td;
	return -EOPNOTSUPP;
#endif
}

static void vn_cleanup(struct thread_data *td)
{
	struct vn_data *d = td->io_ops_data;

	if (!d)
		return;
	uc_stop(d);
	if (d->vfd >= 0)
		close(d->vfd);	/* the module drains and tears everything down */
	for (unsigned int i = 0; i < d->nq; i++) {
		if (d->q[i].kickfd >= 0)
			close(d->q[i].kickfd);
		if (d->q[i].irqfd >= 0)
			close(d->q[i].irqfd);
	}
	if (d->ring)
		munmap(d->ring, d->ring_len);
	if (d->vmm_db)
		munmap(d->vmm_db, VN_PAGE);
	free(d->q);
	free(d->cid_iou);
	free(d->events);
	free(d->pending);
	free(d->pfds);
	free(d->worker);
	free(d);
	td->io_ops_data = NULL;
}

static size_t vn_align(size_t v)
{
	return (v + VN_PAGE - 1) & ~(VN_PAGE - 1);
}

static int vn_init(struct thread_data *td)
{
	struct vn_options *o = td->eo;
	struct vn_data *d;
	size_t sq_len, cq_len, off;
	unsigned int qsize;

	d = calloc(1, sizeof(*d));
	if (!d)
		return 1;
	td->io_ops_data = d;
	d->o = o;
	d->vfd = -1;
	d->depth = td->o.iodepth;
	d->nq = o->nr_queues ? o->nr_queues : 1;

	if (o->userspace) {
		d->info.max_qid = 1024;
		d->info.max_qsize = 1024;
		d->info.mdts = 6;
		d->uc = calloc(1, sizeof(*d->uc));
		if (!d->uc)
			goto fail;
		d->uc->d = d;
		d->uc->stopfd = -1;
	} else {
		uint64_t features = vn_wanted_features(o), supported;

		d->vfd = open("/dev/vhost-nvme", O_RDWR | O_CLOEXEC);
		if (d->vfd < 0) {
			log_err("fio-vhost-nvme: %s: /dev/vhost-nvme: %s (module not loaded? userspace=1 needs no module)\n",
				td->o.name, strerror(errno));
			td_verror(td, errno, "open /dev/vhost-nvme");
			goto fail;
		}
		d->info.size = sizeof(d->info);
		if (vn_ioctl(td, d, VHOST_NVME_GET_INFO, &d->info, "VHOST_NVME_GET_INFO") ||
		    vn_ioctl(td, d, VHOST_GET_FEATURES, &supported, "VHOST_GET_FEATURES") ||
		    vn_ioctl(td, d, VHOST_SET_OWNER, NULL, "VHOST_SET_OWNER"))
			goto fail;
		if (d->info.abi_version != VHOST_NVME_ABI_VERSION) {
			log_err("fio-vhost-nvme: module ABI %u, engine built for %u\n",
				d->info.abi_version, VHOST_NVME_ABI_VERSION);
			goto fail;
		}
		features &= supported;
		if (o->shadow_db && !(features & VHOST_NVME_F_SHADOW_DB)) {
			log_err("fio-vhost-nvme: module lacks shadow doorbells\n");
			goto fail;
		}
		if (vn_ioctl(td, d, VHOST_SET_FEATURES, &features, "VHOST_SET_FEATURES"))
			goto fail;
		d->features = features;
	}

	qsize = d->depth + 1;
	if (qsize < 2)
		qsize = 2;
	if (qsize > d->info.max_qsize || d->nq > d->info.max_qid) {
		log_err("fio-vhost-nvme: iodepth %u / nr_queues %u exceed the module's limits (queue size %u, %u queues)\n",
			d->depth, d->nq, d->info.max_qsize, d->info.max_qid);
		goto fail;
	}
	sq_len = vn_align(qsize * sizeof(struct vn_sqe));
	cq_len = vn_align(qsize * sizeof(struct vn_cqe));
	d->ring_len = d->nq * (sq_len + cq_len) + 2 * VN_PAGE + d->depth * VN_PAGE;
	d->ring = mmap(NULL, d->ring_len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (d->ring == MAP_FAILED) {
		d->ring = NULL;
		log_err("fio-vhost-nvme: mmap %zu: %s\n", d->ring_len, strerror(errno));
		goto fail;
	}
	d->q = calloc(d->nq, sizeof(*d->q));
	d->cid_iou = calloc(d->depth, sizeof(*d->cid_iou));
	d->events = calloc(d->depth, sizeof(*d->events));
	d->pending = calloc(d->depth, sizeof(*d->pending));
	d->pfds = calloc(d->nq, sizeof(*d->pfds));
	if (!d->q || !d->cid_iou || !d->events || !d->pending || !d->pfds)
		goto fail;
	off = 0;
	for (unsigned int i = 0; i < d->nq; i++) {
		struct vn_queue *q = &d->q[i];

		q->qid = i + 1;
		q->size = qsize;
		q->sq = (struct vn_sqe *)(d->ring + off);
		off += sq_len;
		q->cq = (struct vn_cqe *)(d->ring + off);
		off += cq_len;
		q->cq_phase = 1;
		q->kickfd = eventfd(0, EFD_CLOEXEC);
		q->irqfd = -1;
		if (!o->cq_poll)
			q->irqfd = eventfd(0, EFD_CLOEXEC);
		if (q->kickfd < 0 || (!o->cq_poll && q->irqfd < 0))
			goto fail;
		d->pfds[i].fd = q->irqfd;
		d->pfds[i].events = POLLIN;
	}
	if (o->shadow_db) {
		d->db = (uint32_t *)(d->ring + off);
		d->ei = (uint32_t *)(d->ring + off + VN_PAGE);
	} else {
		d->vmm_db = mmap(NULL, VN_PAGE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (d->vmm_db == MAP_FAILED) {
			d->vmm_db = NULL;
			goto fail;
		}
		d->db = d->vmm_db;
	}
	off += 2 * VN_PAGE;
	d->prp_pages = d->ring + off;
	return 0;
fail:
	vn_cleanup(td);
	return 1;
}

/* After fio allocated its I/O buffers: memory table, doorbells, queues. */
static int vn_post_init(struct thread_data *td)
{
	struct vn_data *d = td->io_ops_data;
	struct vn_options *o = d->o;
	unsigned long long max_bs = td_max_bs(td);
	struct {
		struct vhost_memory hdr;
		struct vhost_memory_region r[2];
	} table;
	int ret;

	if (max_bs > (VN_PAGE << d->info.mdts)) {
		log_err("fio-vhost-nvme: %s: bs %llu exceeds MDTS (%lu bytes)\n",
			td->o.name, max_bs, VN_PAGE << d->info.mdts);
		return 1;
	}
	d->regions[0].start = (uintptr_t)d->ring;
	d->regions[0].end = (uintptr_t)d->ring + d->ring_len;
	d->nregions = 1;
	if (td->orig_buffer && td->orig_buffer_size) {
		uint64_t s = (uintptr_t)td->orig_buffer & ~(VN_PAGE - 1);
		uint64_t e = vn_align((uintptr_t)td->orig_buffer + td->orig_buffer_size);

		d->regions[1].start = s;
		d->regions[1].end = e;
		d->nregions = 2;
	}

	if (o->userspace) {
		if (o->shadow_db)
			for (unsigned int i = 0; i < d->nq; i++)
				d->ei[2 * d->q[i].qid] = 0;
		return uc_start(td, d);
	}

	memset(&table, 0, sizeof(table));
	table.hdr.nregions = d->nregions;
	for (unsigned int i = 0; i < d->nregions; i++) {
		table.r[i].guest_phys_addr = d->regions[i].start;
		table.r[i].userspace_addr = d->regions[i].start;
		table.r[i].memory_size = d->regions[i].end - d->regions[i].start;
	}
	if (vn_ioctl(td, d, VHOST_SET_MEM_TABLE, &table, "VHOST_SET_MEM_TABLE"))
		return 1;

	struct vhost_nvme_doorbells dbs = { .mode = VHOST_NVME_DB_VMM,
					    .db_addr = (uintptr_t)d->db };
	if (o->shadow_db) {
		dbs.mode = VHOST_NVME_DB_SHADOW;
		dbs.ei_addr = (uintptr_t)d->ei;
	}
	if (vn_ioctl(td, d, VHOST_NVME_SET_DOORBELLS, &dbs, "VHOST_NVME_SET_DOORBELLS"))
		return 1;

	ret = vn_new_workers(td, d);
	if (ret == -EOPNOTSUPP) {
		if (td->thread_number == 1)
			log_info("fio-vhost-nvme: workers=%u unused: the module has no VHOST_NVME_NEW_WORKER\n",
				 o->workers);
	} else if (ret) {
		return 1;
	}
	for (unsigned int i = 0; i < d->nq; i++) {
		struct vn_queue *q = &d->q[i];
		struct vhost_nvme_cq cq = {
			.qid = q->qid, .size = q->size,
			.flags = o->cq_poll ? 0 : VHOST_NVME_CQ_F_IRQ_ENABLED,
			.addr = (uintptr_t)q->cq, .irqfd = q->irqfd,
			.kickfd = q->kickfd,
		};
		struct vhost_nvme_sq sq = {
			.qid = q->qid, .size = q->size, .cqid = q->qid,
			.kickfd = q->kickfd, .addr = (uintptr_t)q->sq,
		};

#ifdef VHOST_NVME_NEW_WORKER
		cq.worker = d->worker[i % d->nworkers];
#endif
		if (vn_ioctl(td, d, VHOST_NVME_CREATE_CQ, &cq, "VHOST_NVME_CREATE_CQ") ||
		    vn_ioctl(td, d, VHOST_NVME_CREATE_SQ, &sq, "VHOST_NVME_CREATE_SQ"))
			return 1;
	}
	/* Always set (0 = off) when the module can poll: no module default. */
	ret = vn_set_sq_poll(td, d);
	if (ret == -EOPNOTSUPP) {
		if (o->sq_poll_us && td->thread_number == 1)
			log_info("fio-vhost-nvme: sq_poll_us=%u unused: the module has no SQ polling ioctl\n",
				 o->sq_poll_us);
	} else if (ret) {
		return 1;
	}
	return 0;
}

static int vn_open_file(struct thread_data *td, struct fio_file *f)
{
	struct vn_data *d = td->io_ops_data;
	unsigned int nsid = f->fileno + 1;
	struct vn_ns *ns;
	struct stat st;
	int flags = O_RDWR;

	if (!d) {
		/* fio sizing a block device before the job started: a plain open. */
		f->fd = open(f->file_name, O_RDONLY | O_CLOEXEC);
		if (f->fd < 0) {
			td_verror(td, errno, "open_file");
			return 1;
		}
		return 0;
	}
	if (nsid > VN_MAX_NS || (d->vfd >= 0 && nsid > d->info.max_nsid)) {
		log_err("fio-vhost-nvme: %s: too many files (namespaces)\n", td->o.name);
		td_verror(td, EINVAL, "open_file");
		return 1;
	}
	if (!td_write(td) && !td_trim(td))
		flags = O_RDONLY;
	f->fd = open(f->file_name, flags | O_DIRECT | O_CLOEXEC);
	if (f->fd < 0) {
		td_verror(td, errno, "open_file");
		f->fd = -1;
		return 1;
	}
	ns = &d->ns[nsid];
	if (ns->attached)
		return 0;
	if (fstat(f->fd, &st))
		goto err;
	ns->is_blk = S_ISBLK(st.st_mode);
	if (d->vfd >= 0) {
		struct vhost_nvme_ns a = { .nsid = nsid, .fd = f->fd };

		if (vn_ioctl(td, d, VHOST_NVME_ATTACH_NS, &a, "VHOST_NVME_ATTACH_NS"))
			goto err_quiet;
		ns->lba_shift = a.lba_shift;
		ns->nsze = a.nsze;
		ns->fd = -1;
	} else {
		unsigned int lbs = 512;
		uint64_t bytes = st.st_size;

		if (ns->is_blk && (ioctl(f->fd, BLKSSZGET, &lbs) ||
				   ioctl(f->fd, BLKGETSIZE64, &bytes)))
			goto err;
		ns->lba_shift = __builtin_ctz(lbs);
		ns->nsze = bytes >> ns->lba_shift;
		ns->fd = dup(f->fd);
		if (ns->fd < 0)
			goto err;
	}
	__atomic_store_n(&ns->attached, 1, __ATOMIC_RELEASE);
	return 0;
err:
	td_verror(td, errno, "open_file");
err_quiet:
	close(f->fd);
	f->fd = -1;
	return 1;
}

/* The namespace stays attached (the module holds its own reference). */
static int vn_close_file(struct thread_data *td, struct fio_file *f)
{
	(void)td;
	if (f->fd >= 0 && close(f->fd))
		return errno;
	f->fd = -1;
	return 0;
}

static int vn_prep_prp(struct vn_data *d, struct io_u *io_u, struct vn_sqe *e)
{
	uint64_t addr = (uintptr_t)io_u->xfer_buf;
	uint64_t len = io_u->xfer_buflen;
	uint64_t first = VN_PAGE - (addr & (VN_PAGE - 1));

	if (addr & 3)
		return EINVAL;
	e->prp1 = addr;
	if (len <= first)
		return 0;
	len -= first;
	addr += first;
	if (len <= VN_PAGE) {
		e->prp2 = addr;
	} else {
		uint64_t *list = (uint64_t *)(d->prp_pages + io_u->index * VN_PAGE);
		unsigned int n = (len + VN_PAGE - 1) / VN_PAGE;

		if (n > VN_PAGE / 8)
			return EINVAL;
		for (unsigned int i = 0; i < n; i++)
			list[i] = addr + (uint64_t)i * VN_PAGE;
		e->prp2 = (uintptr_t)list;
	}
	return 0;
}

static enum fio_q_status vn_queue(struct thread_data *td, struct io_u *io_u)
{
	struct vn_data *d = td->io_ops_data;
	struct vn_ns *ns = &d->ns[io_u->file->fileno + 1];
	struct vn_queue *q = &d->q[d->rr++ % d->nq];
	struct vn_sqe *e = &q->sq[q->sq_tail];
	uint64_t lbs = 1ULL << ns->lba_shift, slba, nlb;

	fio_ro_check(td, io_u);
	if (io_u->index >= d->depth) {
		io_u->error = EINVAL;
		return FIO_Q_COMPLETED;
	}
	memset(e, 0, sizeof(*e));
	e->cid = io_u->index;
	e->nsid = io_u->file->fileno + 1;
	switch (io_u->ddir) {
	case DDIR_READ:
	case DDIR_WRITE:
	case DDIR_TRIM:
		if ((io_u->offset | io_u->xfer_buflen) & (lbs - 1) || !io_u->xfer_buflen) {
			io_u->error = EINVAL;
			return FIO_Q_COMPLETED;
		}
		slba = io_u->offset >> ns->lba_shift;
		nlb = io_u->xfer_buflen >> ns->lba_shift;
		if (io_u->ddir == DDIR_TRIM) {
			struct vn_dsm_range *r = (void *)(d->prp_pages + io_u->index * VN_PAGE);

			if (nlb > UINT32_MAX) {
				io_u->error = EINVAL;
				return FIO_Q_COMPLETED;
			}
			r->cattr = 0;
			r->nlb = nlb;
			r->slba = slba;
			e->opcode = NVME_CMD_DSM;
			e->prp1 = (uintptr_t)r;
			e->cdw10 = 0;		/* one range */
			e->cdw11 = NVME_DSM_AD;
			break;
		}
		if (nlb > 65536 || vn_prep_prp(d, io_u, e)) {
			io_u->error = EINVAL;
			return FIO_Q_COMPLETED;
		}
		e->opcode = io_u->ddir == DDIR_READ ? NVME_CMD_READ : NVME_CMD_WRITE;
		e->cdw10 = (uint32_t)slba;
		e->cdw11 = slba >> 32;
		e->cdw12 = nlb - 1;
		break;
	case DDIR_SYNC:
	case DDIR_DATASYNC:
	case DDIR_SYNC_FILE_RANGE:
		e->opcode = NVME_CMD_FLUSH;
		break;
	default:
		io_u->error = EINVAL;
		return FIO_Q_COMPLETED;
	}
	d->cid_iou[io_u->index] = io_u;
	if (++q->sq_tail == q->size)
		q->sq_tail = 0;
	q->inflight++;
	d->pending[d->npending++] = io_u;
	return FIO_Q_QUEUED;
}

static int vn_commit(struct thread_data *td)
{
	struct vn_data *d = td->io_ops_data;

	if (!d->npending)
		return 0;
	if (fio_fill_issue_time(td)) {
		struct timespec now;

		fio_gettime(&now, NULL);
		for (unsigned int i = 0; i < d->npending; i++) {
			memcpy(&d->pending[i]->issue_time, &now, sizeof(now));
			io_u_queued(td, d->pending[i]);
		}
		if (td->o.read_iolog_file)
			memcpy(&td->last_issue, &now, sizeof(now));
	}
	io_u_mark_submit(td, d->npending);
	d->npending = 0;

	for (unsigned int i = 0; i < d->nq; i++) {
		struct vn_queue *q = &d->q[i];
		uint16_t old = q->sq_db;

		if (q->sq_tail == old)
			continue;
		/* SQEs before the tail: release order on x86 and elsewhere. */
		vn_store(&d->db[2 * q->qid], q->sq_tail);
		q->sq_db = q->sq_tail;
		if (d->ei) {
			vn_mb();
			if (!vn_need_event(vn_load(&d->ei[2 * q->qid]), q->sq_tail, old))
				continue;
		}
		vn_kick(q->kickfd);
	}
	return 0;
}

static void vn_cq_error(struct thread_data *td, struct vn_data *d, struct io_u *io_u,
			unsigned int status)
{
	unsigned int sc = status & 0xff, sct = (status >> 8) & 7;

	io_u->error = EIO;
	if (d->err_logged++ >= VN_ERR_LOG_MAX)
		return;
	log_err("fio-vhost-nvme: %s: %s offset %llu len %llu: NVMe status 0x%04x (SCT %u SC 0x%02x %s%s)%s\n",
		td->o.name, io_ddir_name(io_u->ddir), io_u->offset, io_u->xfer_buflen,
		status, sct, sc, vn_sc_name(sct, sc), status & NVME_SC_DNR ? ", DNR" : "",
		d->err_logged == VN_ERR_LOG_MAX ? " (further errors not logged)" : "");
}

/* Take up to max - nevents completions off the CQs. */
static void vn_reap(struct thread_data *td, struct vn_data *d, unsigned int max)
{
	for (unsigned int k = 0; k < d->nq && d->nevents < max; k++) {
		struct vn_queue *q = &d->q[(d->reap_start + k) % d->nq];
		uint16_t old = q->cq_head;

		while (d->nevents < max) {
			struct vn_cqe *c = &q->cq[q->cq_head];
			uint16_t st = __atomic_load_n(&c->status, __ATOMIC_ACQUIRE);
			struct io_u *io_u;

			if ((st & 1) != q->cq_phase)
				break;
			if (c->cid >= d->depth || !(io_u = d->cid_iou[c->cid])) {
				log_err("fio-vhost-nvme: %s: CQE with unknown cid %u\n",
					td->o.name, c->cid);
			} else {
				d->cid_iou[c->cid] = NULL;
				io_u->resid = 0;
				if (st >> 1)
					vn_cq_error(td, d, io_u, st >> 1);
				d->events[d->nevents++] = io_u;
				q->inflight--;
			}
			if (++q->cq_head == q->size) {
				q->cq_head = 0;
				q->cq_phase ^= 1;
			}
		}
		if (q->cq_head == old)
			continue;
		vn_store(&d->db[2 * q->qid + 1], q->cq_head);
		/*
		 * VMM mode: the VMM would store the head and not wake the worker
		 * (a CQ of iodepth + 1 entries never fills, and any SQ kick makes
		 * it re-read heads). Shadow mode: ring if the EventIdx asks.
		 */
		if (d->ei) {
			vn_mb();
			if (vn_need_event(vn_load(&d->ei[2 * q->qid + 1]), q->cq_head, old))
				vn_kick(q->kickfd);
		}
	}
	d->reap_start++;
}

static int vn_getevents(struct thread_data *td, unsigned int min, unsigned int max,
			const struct timespec *t)
{
	struct vn_data *d = td->io_ops_data;
	uint64_t deadline = 0;
	unsigned int spins = 0;

	d->nevents = 0;
	if (max > d->depth)
		max = d->depth;
	if (t)
		deadline = vn_now_ns() + t->tv_sec * 1000000000ULL + t->tv_nsec;
	for (;;) {
		int timeout = -1, ret;

		vn_reap(td, d, max);
		if (d->nevents >= min)
			break;
		if (d->o->cq_poll) {
			if (t && !(++spins & 255) && vn_now_ns() >= deadline)
				break;
			vn_cpu_relax();
			continue;
		}
		if (!t && d->nq == 1) {
			/* The common wait (fio passes no timeout when min > 0):
			 * one blocking read of the irqfd, no poll() first. */
			uint64_t cnt;

			if (read(d->q[0].irqfd, &cnt, sizeof(cnt)) < 0 && errno != EINTR) {
				td_verror(td, errno, "read irqfd");
				return -errno;
			}
			continue;
		}
		if (t) {
			uint64_t now = vn_now_ns();

			if (now >= deadline)
				break;
			timeout = (deadline - now + 999999) / 1000000;
		}
		ret = poll(d->pfds, d->nq, timeout);
		if (ret < 0 && errno != EINTR) {
			td_verror(td, errno, "poll");
			return -errno;
		}
		for (unsigned int i = 0; ret > 0 && i < d->nq; i++) {
			uint64_t cnt;

			/* Readable: this read of the (blocking) irqfd does not block. */
			if (d->pfds[i].revents & POLLIN &&
			    read(d->pfds[i].fd, &cnt, sizeof(cnt)) < 0 && errno != EINTR) {
				td_verror(td, errno, "read irqfd");
				return -errno;
			}
		}
	}
	return d->nevents;
}

static struct io_u *vn_event(struct thread_data *td, int event)
{
	struct vn_data *d = td->io_ops_data;

	return d->events[event];
}

static struct fio_option options[] = {
	{
		.name	= "shadow_db",
		.lname	= "Shadow doorbells",
		.type	= FIO_OPT_BOOL,
		.off1	= offsetof(struct vn_options, shadow_db),
		.help	= "NVMe shadow doorbells with EventIdx (1) or a VMM doorbell page and a kick per commit (0)",
		.def	= "0",
		.category = FIO_OPT_C_ENGINE,
		.group	= FIO_OPT_G_INVALID,
	},
	{
		.name	= "cq_poll",
		.lname	= "Poll completion queues",
		.type	= FIO_OPT_BOOL,
		.off1	= offsetof(struct vn_options, cq_poll),
		.help	= "Spin on the CQ phase bit, interrupts off (1), or wait on the irqfd (0)",
		.def	= "0",
		.category = FIO_OPT_C_ENGINE,
		.group	= FIO_OPT_G_INVALID,
	},
	{
		.name	= "nr_queues",
		.lname	= "Number of SQ/CQ pairs",
		.type	= FIO_OPT_INT,
		.off1	= offsetof(struct vn_options, nr_queues),
		.help	= "SQ/CQ pairs per job; io_us are spread round robin",
		.def	= "1",
		.minval	= 1,
		.maxval	= 64,
		.category = FIO_OPT_C_ENGINE,
		.group	= FIO_OPT_G_INVALID,
	},
	{
		.name	= "sq_poll_us",
		.lname	= "SQ polling budget",
		.type	= FIO_OPT_INT,
		.off1	= offsetof(struct vn_options, sq_poll_us),
		.help	= "Busy-poll budget in microseconds for the SQ (module, if supported; userspace controller)",
		.def	= "0",
		.minval	= 0,
		.maxval	= 1000000,
		.category = FIO_OPT_C_ENGINE,
		.group	= FIO_OPT_G_INVALID,
	},
	{
		.name	= "userspace",
		.lname	= "Userspace controller",
		.type	= FIO_OPT_BOOL,
		.off1	= offsetof(struct vn_options, userspace),
		.help	= "Process the queues in a userspace thread with io_uring instead of the module",
		.def	= "0",
		.category = FIO_OPT_C_ENGINE,
		.group	= FIO_OPT_G_INVALID,
	},
	{
		.name	= "workers",
		.lname	= "Module worker threads",
		.type	= FIO_OPT_INT,
		.off1	= offsetof(struct vn_options, workers),
		.help	= "Worker threads in the module for this job's queues (queue i is served by worker i modulo workers)",
		.def	= "1",
		.minval	= 1,
		.maxval	= 64,
		.category = FIO_OPT_C_ENGINE,
		.group	= FIO_OPT_G_INVALID,
	},
	{
		.name	= NULL,
	},
};

struct ioengine_ops ioengine = {
	.name			= "vhost-nvme",
	.version		= FIO_IOOPS_VERSION,
	.flags			= FIO_RAWIO | FIO_NOEXTEND | FIO_ASYNCIO_SETS_ISSUE_TIME,
	.init			= vn_init,
	.post_init		= vn_post_init,
	.queue			= vn_queue,
	.commit			= vn_commit,
	.getevents		= vn_getevents,
	.event			= vn_event,
	.cleanup		= vn_cleanup,
	.open_file		= vn_open_file,
	.close_file		= vn_close_file,
	.get_file_size		= generic_get_file_size,
	.options		= options,
	.option_struct_size	= sizeof(struct vn_options),
};
