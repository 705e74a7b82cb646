// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-nvme selftests
 *
 * How it works
 * ------------
 * This program is at the same time the VMM and the guest.  It mmap()s
 * 32 MiB of anonymous memory and registers it with VHOST_SET_MEM_TABLE as
 * a single region at guest-physical address 0x40000000 (non-zero on
 * purpose, so a missing GPA->HVA translation cannot go unnoticed).  Rings,
 * PRP lists, SGL segments and data buffers are carved out of that memory
 * with a bump allocator (struct guest, g_alloc()), which returns GPAs;
 * g_hva() turns them back into pointers.
 *
 * Submitting a command means: copy the 64-byte SQE into the SQ ring, store
 * the new tail in the doorbell page (VHOST_NVME_DB_VMM: a page of this
 * process outside the guest table; VHOST_NVME_DB_SHADOW: the shadow
 * doorbell buffer in guest memory, then the EventIdx rule decides whether
 * to kick) and write 1 to the SQ's kick eventfd.  Completions are waited
 * for with poll() on the CQ's irqfd with a 5 s bound (a missing
 * completion is a test failure, never a hang); consumed CQEs advance the
 * CQ head, which is stored in the doorbell page and signalled through the
 * CQ's kick eventfd.
 *
 * Fixtures:
 *  - "ctl": control-plane tests.  They need /dev/vhost-nvme only (plus a
 *    small regular file in /tmp as a namespace backend).
 *  - "io": data-path tests, one variant per backend.  They need
 *    $VHOST_NVME_NULLB (null_blk, memory_backed=1 gb=1 discard=1, write
 *    cache "write back"), $VHOST_NVME_LOOP (loop device on a 256 MiB
 *    tmpfs file), $VHOST_NVME_FILE_DIRECT (a 64 MiB file on ext4, opened
 *    with O_DIRECT) and $VHOST_NVME_FILE_BUFFERED (a 64 MiB tmpfs file); a
 *    variant whose variable is unset is skipped.
 *  - "slow": what must hold while commands sit behind a backend that takes
 *    1 s per I/O ($VHOST_NVME_SLOW).
 *  - "global": tests of their own backends: a freezable ext4
 *    ($VHOST_NVME_EXT4_DIR), a device-mapper device that holds I/O
 *    forever ($VHOST_NVME_STUCK over $VHOST_NVME_STUCK_LOWER).
 * run.sh in this directory creates every backend and runs the program.
 * $VHOST_NVME_TESTS, a list of full test names, runs only those.
 *
 * The kselftest harness forks one child per test, so every test gets a
 * fresh device file and is its own owner (ownership is by mm).
 */
#include <endian.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <linux/fs.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <sys/syscall.h>

#include <linux/vhost_nvme.h>

/* The harness itself is not -Wextra clean. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "kselftest_harness.h"
#pragma GCC diagnostic pop

#define DEV_PATH	"/dev/vhost-nvme"
#define PG		4096UL
#define GUEST_GPA	0x40000000ULL
#define GUEST_SIZE	(32UL << 20)
/* A guest address that no table used here covers. */
#define OUTSIDE_GPA	(GUEST_GPA + GUEST_SIZE + 0x10000000ULL)
#define WAIT_MS		5000
#define QUIET_MS	300
/* Longest a CQE may be visible before its interrupt arrives */
#define IRQ_GRACE_MS	1000
#define MAXQ		8
#define MDTS_BYTES	(256UL << 10)

/* ---- NVMe definitions (little endian, as seen by the device) ---------- */

#define OP_FLUSH	0x00
#define OP_WRITE	0x01
#define OP_READ		0x02
#define OP_WZ		0x08
#define OP_DSM		0x09

#define PSDT_SGL	(1 << 6)	/* CDW0 bits 15:14 = 01b, in the flags byte */

#define SGL_DATA	0x00
#define SGL_BITBUCKET	0x10
#define SGL_SEG		0x20
#define SGL_LAST	0x30

#define SC_OK			0x00
#define SC_INVALID_OPCODE	0x01
#define SC_INVALID_FIELD	0x02
#define SC_DATA_XFER		0x04
#define SC_INVALID_NS		0x0b
#define SC_SGL_LAST_INVALID	0x0d
#define SC_SGL_COUNT_INVALID	0x0e
#define SC_SGL_LEN_INVALID	0x0f
#define SC_SGL_TYPE_INVALID	0x11
#define SC_PRP_OFFSET_INVALID	0x13
#define SC_SGL_GRANULARITY	0x1e
#define SC_WRITE_PROTECTED	0x20
#define SC_LBA_RANGE		0x80
#define SC_CAP_EXCEEDED		0x81
#define SC_INTERNAL		0x06
#define SC_WRITE_FAULT		0x280	/* SCT 2h: media and data integrity */
#define SC_READ_ERROR		0x281
#define DNR			0x4000
/* Expected value of (CQE status >> 1) for an error. */
#define ERR(sc)			((sc) | DNR)

#define RW_FUA		(1U << 30)
#define DSM_AD		(1U << 2)
#define WZ_DEAC		(1U << 25)

struct nvme_sgl {
	uint64_t addr;
	uint32_t len;
	uint8_t rsvd[3];
	uint8_t type;
};

struct nvme_sqe {
	uint8_t opcode;
	uint8_t flags;		/* CDW0 bits 15:8: FUSE 9:8, rsvd 13:10, PSDT 15:14 */
	uint16_t cid;
	uint32_t nsid;
	uint32_t cdw2;
	uint32_t cdw3;
	uint64_t mptr;
	union {
		struct {
			uint64_t prp1;
			uint64_t prp2;
		};
		struct nvme_sgl sgl;
	};
	uint32_t cdw10;
	uint32_t cdw11;
	uint32_t cdw12;
	uint32_t cdw13;
	uint32_t cdw14;
	uint32_t cdw15;
};

struct nvme_cqe {
	uint32_t result;
	uint32_t rsvd;
	uint16_t sq_head;
	uint16_t sq_id;
	uint16_t cid;
	uint16_t status;
};

struct nvme_dsm_range {
	uint32_t cattr;
	uint32_t nlb;
	uint64_t slba;
};

_Static_assert(sizeof(struct nvme_sqe) == 64, "SQE size");
_Static_assert(sizeof(struct nvme_cqe) == 16, "CQE size");
_Static_assert(sizeof(struct nvme_sgl) == 16, "SGL descriptor size");
_Static_assert(sizeof(struct nvme_dsm_range) == 16, "DSM range size");

/* ---- the guest ------------------------------------------------------- */

struct q {
	bool live;
	uint16_t size;
	uint64_t gpa;
	void *ring;
	int kickfd;
	int irqfd;
	uint16_t tail;		/* SQ: our tail */
	uint16_t head;		/* CQ: our head */
	uint8_t phase;		/* CQ: phase expected at head */
	uint16_t cqid;		/* SQ: its CQ */
	bool manual_head;	/* CQ: do not ring the head doorbell on pop */
	bool strict_irq;	/* CQ: every CQE consumed needs an interrupt */
	bool irq_seen;		/* CQ: an interrupt came since it was empty */
	bool force_kick;	/* kick once regardless of EventIdx */
};

struct guest {
	int fd;
	uint8_t *mem;
	uint64_t gpa;
	size_t brk;
	struct vhost_nvme_info info;
	uint32_t *vmm_db;	/* VMM doorbell page, outside guest memory */
	uint32_t *db;		/* where doorbell values are stored */
	uint32_t *ei;		/* shadow EventIdx buffer, or NULL */
	struct q sq[MAXQ];
	struct q cq[MAXQ];
	uint16_t next_cid;
};

static int xioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) ? -errno : 0;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void msleep(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* A file descriptor number that is certainly not open right now. */
static int closed_fd(void)
{
	int fd = dup(0);

	if (fd < 0)
		return 1000;
	close(fd);
	return fd;
}

static int new_eventfd(void)
{
	return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

/* What guest memory is made of (QEMU's memory backends) */
enum guest_mem {
	MEM_ANON,	/* private anonymous pages: the default */
	MEM_MEMFD,	/* a shared memfd: memory-backend-memfd, vhost-user */
	MEM_HUGETLB,	/* a memfd of 2 MiB huge pages: hugepages=on */
};

static void g_open_mem(struct __test_metadata *_metadata, struct guest *g,
		       enum guest_mem kind)
{
	int i, mfd = -1;

	memset(g, 0, sizeof(*g));
	for (i = 0; i < MAXQ; i++) {
		g->sq[i].kickfd = g->sq[i].irqfd = -1;
		g->cq[i].kickfd = g->cq[i].irqfd = -1;
	}
	g->next_cid = 1;
	g->gpa = GUEST_GPA;
	g->fd = open(DEV_PATH, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, g->fd) TH_LOG("open %s: %s", DEV_PATH, strerror(errno));
	if (kind == MEM_ANON) {
		g->mem = mmap(NULL, GUEST_SIZE, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	} else {
		mfd = memfd_create("vhost-nvme-guest", MFD_CLOEXEC |
				   (kind == MEM_HUGETLB ? MFD_HUGETLB : 0));
		ASSERT_LE(0, mfd) TH_LOG("memfd_create: %s", strerror(errno));
		ASSERT_EQ(0, ftruncate(mfd, GUEST_SIZE))
			TH_LOG("memfd of %lu bytes: %s", GUEST_SIZE,
			       strerror(errno));
		g->mem = mmap(NULL, GUEST_SIZE, PROT_READ | PROT_WRITE,
			      MAP_SHARED, mfd, 0);
		close(mfd);
	}
	ASSERT_NE(MAP_FAILED, g->mem) TH_LOG("guest memory: %s",
					     strerror(errno));
	g->vmm_db = mmap(NULL, PG, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, g->vmm_db);
	g->info.size = sizeof(g->info);
	ASSERT_EQ(0, xioctl(g->fd, VHOST_NVME_GET_INFO, &g->info));
}

static void g_open(struct __test_metadata *_metadata, struct guest *g)
{
	g_open_mem(_metadata, g, MEM_ANON);
}

static void g_close_queues(struct guest *g)
{
	int i;

	for (i = 0; i < MAXQ; i++) {
		struct q *qs[2] = { &g->sq[i], &g->cq[i] };
		int j;

		for (j = 0; j < 2; j++) {
			if (qs[j]->kickfd >= 0)
				close(qs[j]->kickfd);
			if (qs[j]->irqfd >= 0)
				close(qs[j]->irqfd);
			memset(qs[j], 0, sizeof(*qs[j]));
			qs[j]->kickfd = qs[j]->irqfd = -1;
		}
	}
}

static void g_fini(struct guest *g)
{
	if (g->fd > 0)
		close(g->fd);
	g->fd = -1;
	/* A guest never opened (a skipped test) has no queue fds: not 0s */
	if (g->mem)
		g_close_queues(g);
	if (g->mem && g->mem != MAP_FAILED)
		munmap(g->mem, GUEST_SIZE);
	if (g->vmm_db && g->vmm_db != MAP_FAILED)
		munmap(g->vmm_db, PG);
	g->mem = NULL;
	g->vmm_db = NULL;
}

static void *g_hva(struct guest *g, uint64_t gpa)
{
	return g->mem + (gpa - g->gpa);
}

/* Zeroed, 4 KiB aligned guest memory; returns its GPA. */
static uint64_t g_alloc(struct guest *g, size_t len)
{
	uint64_t gpa;

	len = (len + PG - 1) & ~(PG - 1);
	if (g->brk + len > GUEST_SIZE) {
		fprintf(stderr, "guest memory exhausted\n");
		abort();
	}
	gpa = g->gpa + g->brk;
	g->brk += len;
	memset(g_hva(g, gpa), 0, len);
	return gpa;
}

static int g_set_mem(struct guest *g, unsigned int n,
		     const struct vhost_memory_region *r)
{
	struct vhost_memory *m;
	int ret;

	m = calloc(1, sizeof(*m) + (n ? n : 1) * sizeof(*r));
	if (!m)
		return -ENOMEM;
	m->nregions = n;
	memcpy(m->regions, r, n * sizeof(*r));
	ret = xioctl(g->fd, VHOST_SET_MEM_TABLE, m);
	free(m);
	return ret;
}

static struct vhost_memory_region g_region(struct guest *g, size_t off,
					   size_t len)
{
	struct vhost_memory_region r = {
		.guest_phys_addr = g->gpa + off,
		.memory_size = len,
		.userspace_addr = (uintptr_t)(g->mem + off),
	};
	return r;
}

static int g_mem_default(struct guest *g)
{
	struct vhost_memory_region r = g_region(g, 0, GUEST_SIZE);

	return g_set_mem(g, 1, &r);
}

static int g_features(struct guest *g, uint64_t f)
{
	return xioctl(g->fd, VHOST_SET_FEATURES, &f);
}

/* SET_OWNER, SET_FEATURES, one-region memory table. */
static void g_owner(struct __test_metadata *_metadata, struct guest *g,
		    uint64_t features)
{
	ASSERT_EQ(0, xioctl(g->fd, VHOST_SET_OWNER, NULL));
	ASSERT_EQ(0, g_features(g, features));
	ASSERT_EQ(0, g_mem_default(g));
}

static int g_db_vmm(struct guest *g)
{
	struct vhost_nvme_doorbells d = {
		.mode = VHOST_NVME_DB_VMM,
		.db_addr = (uintptr_t)g->vmm_db,
	};
	int ret = xioctl(g->fd, VHOST_NVME_SET_DOORBELLS, &d);

	if (!ret) {
		g->db = g->vmm_db;
		g->ei = NULL;
	}
	return ret;
}

static int g_db_shadow(struct guest *g, uint64_t db, uint64_t ei)
{
	struct vhost_nvme_doorbells d = {
		.mode = VHOST_NVME_DB_SHADOW,
		.db_addr = db,
		.ei_addr = ei,
	};
	int ret = xioctl(g->fd, VHOST_NVME_SET_DOORBELLS, &d);

	if (!ret) {
		g->db = g_hva(g, db);
		g->ei = g_hva(g, ei);
	}
	return ret;
}

/* A CQ; with @errfd >= 0, signalled if the queue stops on a fault. */
static int g_create_cq_err(struct guest *g, uint16_t qid, uint16_t size,
			   bool irq, int errfd)
{
	struct q *cq = &g->cq[qid];
	struct vhost_nvme_cq c = { .qid = qid, .size = size };
	int ret;

	if (errfd >= 0) {
		c.flags |= VHOST_NVME_CQ_F_ERRFD;
		c.errfd = errfd;
	}
	cq->gpa = g_alloc(g, (size_t)size * sizeof(struct nvme_cqe));
	cq->ring = g_hva(g, cq->gpa);
	if (g->db && qid < MAXQ)
		__atomic_store_n(&g->db[2 * qid + 1], 0, __ATOMIC_RELEASE);
	cq->irqfd = new_eventfd();
	cq->kickfd = new_eventfd();
	c.addr = cq->gpa;
	c.irqfd = cq->irqfd;
	c.kickfd = cq->kickfd;
	c.flags |= irq ? VHOST_NVME_CQ_F_IRQ_ENABLED : 0;
	ret = xioctl(g->fd, VHOST_NVME_CREATE_CQ, &c);
	if (!ret) {
		cq->live = true;
		cq->size = size;
		cq->head = 0;
		cq->phase = 1;
		cq->manual_head = false;
		cq->strict_irq = irq;
		cq->irq_seen = false;
	}
	return ret;
}

static int g_create_cq(struct guest *g, uint16_t qid, uint16_t size, bool irq)
{
	return g_create_cq_err(g, qid, size, irq, -1);
}

/* A SQ; with @errfd >= 0, signalled if the queue stops on a fault. */
static int g_create_sq_err(struct guest *g, uint16_t qid, uint16_t size,
			   uint16_t cqid, int errfd)
{
	struct q *sq = &g->sq[qid];
	struct vhost_nvme_sq s = { .qid = qid, .size = size, .cqid = cqid };
	int ret;

	if (errfd >= 0) {
		s.flags = VHOST_NVME_SQ_F_ERRFD;
		s.errfd = errfd;
	}
	sq->gpa = g_alloc(g, (size_t)size * sizeof(struct nvme_sqe));
	sq->ring = g_hva(g, sq->gpa);
	/* A new queue's doorbell starts at 0, whatever an old one left. */
	if (g->db && qid < MAXQ)
		__atomic_store_n(&g->db[2 * qid], 0, __ATOMIC_RELEASE);
	if (sq->kickfd < 0)
		sq->kickfd = new_eventfd();
	s.addr = sq->gpa;
	s.kickfd = sq->kickfd;
	ret = xioctl(g->fd, VHOST_NVME_CREATE_SQ, &s);
	if (!ret) {
		sq->live = true;
		sq->size = size;
		sq->tail = 0;
		sq->cqid = cqid;
	}
	return ret;
}

static int g_create_sq(struct guest *g, uint16_t qid, uint16_t size,
		       uint16_t cqid)
{
	return g_create_sq_err(g, qid, size, cqid, -1);
}

static int g_delete(struct guest *g, bool sq, uint16_t qid)
{
	struct vhost_nvme_qid d = { .qid = qid };
	int ret = xioctl(g->fd, sq ? VHOST_NVME_DELETE_SQ : VHOST_NVME_DELETE_CQ,
			 &d);

	if (!ret && qid < MAXQ) {
		struct q *q = sq ? &g->sq[qid] : &g->cq[qid];

		if (q->kickfd >= 0)
			close(q->kickfd);
		if (q->irqfd >= 0)
			close(q->irqfd);
		memset(q, 0, sizeof(*q));
		q->kickfd = q->irqfd = -1;
	}
	return ret;
}

static int g_attach(struct guest *g, uint32_t nsid, int fd, uint32_t flags,
		    uint8_t lba_shift, struct vhost_nvme_ns *out)
{
	struct vhost_nvme_ns ns = {
		.nsid = nsid, .fd = fd, .flags = flags, .lba_shift = lba_shift,
	};
	int ret = xioctl(g->fd, VHOST_NVME_ATTACH_NS, &ns);

	if (out)
		*out = ns;
	return ret;
}

static int g_detach(struct guest *g, uint32_t nsid)
{
	struct vhost_nvme_nsid n = { .nsid = nsid };

	return xioctl(g->fd, VHOST_NVME_DETACH_NS, &n);
}

static int g_qstate(struct guest *g, uint8_t type, uint16_t qid,
		    struct vhost_nvme_queue_state *st)
{
	memset(st, 0, sizeof(*st));
	st->qid = qid;
	st->type = type;
	return xioctl(g->fd, VHOST_NVME_GET_QUEUE_STATE, st);
}

static int g_quiesce(struct guest *g, bool resume)
{
	struct vhost_nvme_quiesce qq = { 0 };

	return xioctl(g->fd, resume ? VHOST_NVME_RESUME : VHOST_NVME_QUIESCE,
		      &qq);
}

/* Linux nvme_dbbuf_need_event() */
static bool need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old);
}

static void kick(int fd)
{
	uint64_t one = 1;

	if (fd >= 0 && write(fd, &one, sizeof(one)) != sizeof(one))
		perror("eventfd write");
}

/* Store a doorbell value and kick, following EventIdx in shadow mode. */
static void db_write(struct guest *g, unsigned int idx, uint16_t val,
		     int kickfd, bool *force)
{
	uint16_t old = le32toh(__atomic_load_n(&g->db[idx], __ATOMIC_RELAXED));

	__atomic_store_n(&g->db[idx], htole32(val), __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (g->ei && !*force) {
		uint16_t ev = le32toh(__atomic_load_n(&g->ei[idx],
						      __ATOMIC_ACQUIRE));
		if (!need_event(ev, val, old))
			return;
	}
	*force = false;
	kick(kickfd);
}

static uint16_t sq_put(struct guest *g, uint16_t qid, struct nvme_sqe *sqe)
{
	struct q *sq = &g->sq[qid];
	struct nvme_sqe *slot = (struct nvme_sqe *)sq->ring + sq->tail;

	if (!sqe->cid)
		sqe->cid = g->next_cid++;
	if (!g->next_cid)
		g->next_cid = 1;
	memcpy(slot, sqe, sizeof(*sqe));
	sq->tail = (sq->tail + 1) % sq->size;
	return sqe->cid;
}

static void sq_ring(struct guest *g, uint16_t qid)
{
	struct q *sq = &g->sq[qid];

	db_write(g, 2 * qid, sq->tail, sq->kickfd, &sq->force_kick);
}

static void cq_ring(struct guest *g, uint16_t qid)
{
	struct q *cq = &g->cq[qid];

	db_write(g, 2 * qid + 1, cq->head, cq->kickfd, &cq->force_kick);
}

static bool cq_peek(struct guest *g, uint16_t qid, struct nvme_cqe *out)
{
	struct q *cq = &g->cq[qid];
	struct nvme_cqe *e = (struct nvme_cqe *)cq->ring + cq->head;
	uint16_t st = le16toh(__atomic_load_n(&e->status, __ATOMIC_ACQUIRE));

	if ((st & 1) != cq->phase)
		return false;
	if (out) {
		memcpy(out, e, sizeof(*out));
		out->status = st;
		out->result = le32toh(out->result);
		out->sq_head = le16toh(out->sq_head);
		out->sq_id = le16toh(out->sq_id);
		out->cid = le16toh(out->cid);
	}
	return true;
}

static void cq_pop(struct guest *g, uint16_t qid)
{
	struct q *cq = &g->cq[qid];

	if (++cq->head == cq->size) {
		cq->head = 0;
		cq->phase ^= 1;
	}
	if (!cq->manual_head)
		cq_ring(g, qid);
}

/* Read the irqfd without blocking: was it signalled? */
static bool irq_take(struct q *cq)
{
	uint64_t v;

	return cq->irqfd >= 0 && read(cq->irqfd, &v, sizeof(v)) == sizeof(v);
}

/*
 * A CQE is visible on a CQ whose interrupts are on and not coalesced: the
 * device signals the irqfd at the end of the pass that posted it, so the
 * signal is either in or on its way.  Wait IRQ_GRACE_MS for it.
 */
static bool irq_for_cqe(struct q *cq)
{
	struct pollfd p = { .fd = cq->irqfd, .events = POLLIN };

	if (!cq->strict_irq || cq->irq_seen)
		return true;
	if (poll(&p, 1, IRQ_GRACE_MS) == 1 && irq_take(cq))
		cq->irq_seen = true;
	return cq->irq_seen;
}

/*
 * After consuming a CQE: once the CQ looks empty, the next CQE needs an
 * interrupt of its own.  Drain the irqfd first, then look again: a CQE that
 * came before the drain may have been signalled by what was drained.
 */
static void irq_rearm(struct guest *g, uint16_t cqid)
{
	struct q *cq = &g->cq[cqid];
	bool took;

	if (!cq->strict_irq || cq_peek(g, cqid, NULL))
		return;
	took = irq_take(cq);
	cq->irq_seen = took && cq_peek(g, cqid, NULL);
}

/*
 * 0 and the consumed CQE, -ETIMEDOUT after @ms, or -ENOLINK if the CQE
 * came without an interrupt on a CQ that must interrupt (a lost interrupt
 * is a failure, not something to poll around).
 */
static int wait_cqe(struct guest *g, uint16_t cqid, struct nvme_cqe *out,
		    long ms)
{
	struct q *cq = &g->cq[cqid];
	long deadline = now_ms() + ms;

	for (;;) {
		struct pollfd p = { .fd = cq->irqfd, .events = POLLIN };
		long rem;

		if (cq_peek(g, cqid, out)) {
			if (!irq_for_cqe(cq))
				return -ENOLINK;
			cq_pop(g, cqid);
			irq_rearm(g, cqid);
			return 0;
		}
		rem = deadline - now_ms();
		if (rem <= 0)
			return -ETIMEDOUT;
		/* Look at the ring now and then: a CQE may come unsignalled. */
		if (poll(&p, 1, rem < 20 ? rem : 20) > 0) {
			uint64_t v;

			if (read(cq->irqfd, &v, sizeof(v)) == sizeof(v))
				cq->irq_seen = true;
			else if (errno != EAGAIN)
				return -errno;
		}
	}
}

/* Wait until @n entries are visible at the CQ head, without consuming. */
static int wait_visible(struct guest *g, uint16_t cqid, unsigned int n,
			long ms)
{
	struct q *cq = &g->cq[cqid];
	long deadline = now_ms() + ms;

	for (;;) {
		uint16_t head = cq->head;
		uint8_t phase = cq->phase;
		unsigned int i;

		for (i = 0; i < n; i++) {
			if (!cq_peek(g, cqid, NULL))
				break;
			if (++cq->head == cq->size) {
				cq->head = 0;
				cq->phase ^= 1;
			}
		}
		cq->head = head;
		cq->phase = phase;
		if (i == n)
			return 0;
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		msleep(2);
	}
}

/* Wait until the little-endian @p holds @val; 0 or -ETIMEDOUT. */
static int wait_u32(uint32_t *p, uint32_t val, long ms)
{
	long deadline = now_ms() + ms;

	while (le32toh(__atomic_load_n(p, __ATOMIC_ACQUIRE)) != val) {
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		msleep(1);
	}
	return 0;
}

/* Submit on @sqid, wait for its completion; returns CQE status >> 1. */
static uint16_t __submit(struct __test_metadata *_metadata, struct guest *g,
			 uint16_t sqid, struct nvme_sqe *sqe,
			 struct nvme_cqe *out)
{
	struct nvme_cqe cqe;
	uint16_t cid, cqid = g->sq[sqid].cqid;

	sqe->cid = 0;
	cid = sq_put(g, sqid, sqe);
	sq_ring(g, sqid);
	ASSERT_EQ(0, wait_cqe(g, cqid, &cqe, WAIT_MS))
		TH_LOG("no completion (-ETIMEDOUT) or no interrupt (-ENOLINK) for opcode 0x%x cid %u",
		       sqe->opcode, cid);
	ASSERT_EQ(cid, cqe.cid);
	ASSERT_EQ(sqid, cqe.sq_id);
	ASSERT_EQ(g->sq[sqid].tail, cqe.sq_head);
	if (out)
		*out = cqe;
	return cqe.status >> 1;
}

/* PRP1/PRP2 for a buffer contiguous in guest memory. */
static void build_prp(struct guest *g, uint64_t buf, size_t len,
		      uint64_t *prp1, uint64_t *prp2)
{
	uint64_t first = PG - (buf & (PG - 1)), next, *list;
	size_t n, i;

	*prp1 = buf;
	*prp2 = 0;
	if (len <= first)
		return;
	next = (buf & ~(PG - 1)) + PG;
	n = (len - first + PG - 1) / PG;
	if (n == 1) {
		*prp2 = next;
		return;
	}
	*prp2 = g_alloc(g, n * 8);
	list = g_hva(g, *prp2);
	for (i = 0; i < n; i++)
		list[i] = htole64(next + i * PG);
}

static void rw_sqe(struct nvme_sqe *sqe, uint8_t op, uint32_t nsid,
		   uint64_t slba, uint32_t nlb)
{
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = op;
	sqe->nsid = htole32(nsid);
	sqe->cdw10 = htole32((uint32_t)slba);
	sqe->cdw11 = htole32((uint32_t)(slba >> 32));
	sqe->cdw12 = htole32((nlb - 1) & 0xffff);
}

/* Read/Write/Write Zeroes of @nlb 512-byte LBAs from/to contiguous @buf. */
static uint16_t rw_q(struct __test_metadata *_metadata, struct guest *g,
		     uint16_t sqid, uint8_t op, uint32_t nsid, uint64_t slba,
		     uint32_t nlb, uint64_t buf, uint32_t cdw12)
{
	struct nvme_sqe sqe;

	rw_sqe(&sqe, op, nsid, slba, nlb);
	sqe.cdw12 |= htole32(cdw12);
	if (op != OP_WZ)
		build_prp(g, buf, (size_t)nlb << 9, &sqe.prp1, &sqe.prp2);
	return __submit(_metadata, g, sqid, &sqe, NULL);
}

#define RW(op, slba, nlb, buf) \
	rw_q(_metadata, &self->g, 1, op, 1, slba, nlb, buf, 0)
#define SUBMIT(sqe) __submit(_metadata, &self->g, 1, sqe, NULL)

static void fill(void *p, size_t len, uint32_t seed)
{
	uint32_t *w = p, x = seed * 2654435761U + 1;
	size_t i;

	for (i = 0; i < len / 4; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		w[i] = x + (uint32_t)i;
	}
}

static bool is_zero(const void *p, size_t len)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

/* ---- backend helpers -------------------------------------------------- */

static void dev_name(const char *path, char *name, size_t len)
{
	char real[PATH_MAX];
	const char *b;
	size_t n;

	if (!realpath(path, real))
		snprintf(real, sizeof(real), "%s", path);
	b = strrchr(real, '/');
	b = b ? b + 1 : real;
	n = strlen(b);
	if (n >= len)
		n = len - 1;
	memcpy(name, b, n);
	name[n] = 0;
}

/* Field @idx (0-based) of /sys/block/<dev>/stat. */
static uint64_t dev_stat(const char *path, int idx)
{
	char name[64], file[128];
	unsigned long long v[17] = { 0 };
	FILE *f;
	int n;

	dev_name(path, name, sizeof(name));
	snprintf(file, sizeof(file), "/sys/block/%s/stat", name);
	f = fopen(file, "r");
	if (!f)
		return UINT64_MAX;
	n = fscanf(f, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu "
		   "%llu %llu %llu %llu %llu %llu %llu",
		   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7],
		   &v[8], &v[9], &v[10], &v[11], &v[12], &v[13], &v[14],
		   &v[15], &v[16]);
	fclose(f);
	if (n <= idx)
		return UINT64_MAX;
	return v[idx];
}

#define STAT_DISCARD_IOS	11
#define STAT_FLUSH_IOS		15

static bool queue_attr_is(const char *path, const char *attr, const char *val)
{
	char name[64], file[160], buf[64] = "";
	FILE *f;

	dev_name(path, name, sizeof(name));
	snprintf(file, sizeof(file), "/sys/block/%s/queue/%s", name, attr);
	f = fopen(file, "r");
	if (!f)
		return false;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
	return !strcmp(buf, val);
}

/*
 * O_DIRECT access to the backend, bypassing the module (buffered where the
 * file system has no direct I/O, as tmpfs before 6.6: its page cache is the
 * backend then).
 */
static int bdev_io(const char *path, bool write, uint64_t off, void *buf,
		   size_t len)
{
	int flags = (write ? O_WRONLY : O_RDONLY) | O_CLOEXEC;
	void *bounce;
	ssize_t r;
	int fd;

	fd = open(path, flags | O_DIRECT);
	if (fd < 0 && errno == EINVAL)
		fd = open(path, flags);
	if (fd < 0)
		return -errno;
	if (posix_memalign(&bounce, PG, len)) {
		close(fd);
		return -ENOMEM;
	}
	if (write) {
		memcpy(bounce, buf, len);
		r = pwrite(fd, bounce, len, off);
	} else {
		r = pread(fd, bounce, len, off);
		memcpy(buf, bounce, len);
	}
	free(bounce);
	close(fd);
	return r == (ssize_t)len ? 0 : -EIO;
}

/*
 * The block device a backend's I/O reaches, as "/dev/NAME" in @out: the
 * backend itself, or the device under the file system of a backend file;
 * "" if there is none (tmpfs).
 */
static void backend_bdev(const char *path, char *out, size_t len)
{
	char uevent[96], line[128];
	struct stat st;
	FILE *f;

	out[0] = 0;
	if (stat(path, &st))
		return;
	if (S_ISBLK(st.st_mode)) {
		snprintf(out, len, "%s", path);
		return;
	}
	snprintf(uevent, sizeof(uevent), "/sys/dev/block/%u:%u/uevent",
		 major(st.st_dev), minor(st.st_dev));
	f = fopen(uevent, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (!strncmp(line, "DEVNAME=", 8)) {
			snprintf(out, len, "/dev/%.40s", line + 8);
			break;
		}
	}
	fclose(f);
}

/* A 1 MiB regular file on /tmp, already unlinked. */
static int tmp_file(size_t size, int flags)
{
	char path[] = "/tmp/vhost-nvme-test-XXXXXX";
	int fd = mkstemp(path);

	if (fd < 0)
		return -1;
	if (ftruncate(fd, size)) {
		close(fd);
		unlink(path);
		return -1;
	}
	if (flags != O_RDWR) {
		int fd2 = open(path, flags | O_CLOEXEC);

		close(fd);
		fd = fd2;
	}
	unlink(path);
	return fd;
}

/* =====================================================================
 * Control plane
 * ===================================================================== */

FIXTURE(ctl) {
	struct guest g;
	int file;
};

FIXTURE_SETUP(ctl)
{
	self->file = -1;
	g_open(_metadata, &self->g);
	self->file = tmp_file(1 << 20, O_RDWR);
	ASSERT_LE(0, self->file);
}

FIXTURE_TEARDOWN(ctl)
{
	if (self->file >= 0)
		close(self->file);
	g_fini(&self->g);
}

/* Owner + all features + memory table + VMM doorbells. */
static void ctl_ready(struct __test_metadata *_metadata, struct guest *g)
{
	g_owner(_metadata, g, VHOST_NVME_F_ALL);
	ASSERT_EQ(0, g_db_vmm(g));
}

TEST_F(ctl, get_info)
{
	struct vhost_nvme_info i;
	int k;

	struct {
		struct vhost_nvme_info i;
		uint64_t future[4];
	} big;

	memset(&i, 0xa5, sizeof(i));
	i.size = sizeof(i);
	ASSERT_EQ(0, xioctl(self->g.fd, VHOST_NVME_GET_INFO, &i));
	EXPECT_EQ(sizeof(i), i.size);
	EXPECT_EQ(2U, i.abi_version);
	EXPECT_EQ((__u32)VHOST_NVME_ABI_VERSION, i.abi_version);
	EXPECT_LE(1U, i.max_qid);
	EXPECT_EQ(1024U, i.max_qsize);
	EXPECT_LE(1U, i.max_nsid);
	EXPECT_EQ(6U, i.mdts);
	EXPECT_LE(1U, i.max_mem_regions);
	EXPECT_LE(2U, i.max_workers);
	EXPECT_LE(1000U, i.max_poll_us);
	EXPECT_EQ(0U, i.reserved0);
	EXPECT_LE(MDTS_BYTES, i.max_bounce_bytes);

	/* Size-versioned: an older caller gets its part, a newer one zeros. */
	memset(&i, 0xa5, sizeof(i));
	i.size = offsetof(struct vhost_nvme_info, reserved0);
	ASSERT_EQ(0, xioctl(self->g.fd, VHOST_NVME_GET_INFO, &i));
	EXPECT_EQ(offsetof(struct vhost_nvme_info, reserved0), i.size);
	EXPECT_EQ(0xa5a5a5a5U, i.reserved0);
	memset(&big, 0xa5, sizeof(big));
	big.i.size = sizeof(big);
	ASSERT_EQ(0, xioctl(self->g.fd, VHOST_NVME_GET_INFO, &big));
	EXPECT_EQ(sizeof(i), big.i.size);
	for (k = 0; k < 4; k++)
		EXPECT_EQ(0ULL, big.future[k]);
	i.size = offsetof(struct vhost_nvme_info, max_poll_us);
	EXPECT_EQ(-EINVAL, xioctl(self->g.fd, VHOST_NVME_GET_INFO, &i));
	i.size = 0;
	EXPECT_EQ(-EINVAL, xioctl(self->g.fd, VHOST_NVME_GET_INFO, &i));
	i.size = 1U << 20;
	EXPECT_EQ(-E2BIG, xioctl(self->g.fd, VHOST_NVME_GET_INFO, &i));
	TH_LOG("max_qid %u max_qsize %u max_nsid %u mdts %u max_mem_regions %u",
	       i.max_qid, i.max_qsize, i.max_nsid, i.mdts, i.max_mem_regions);
	/* The io tests use queue ids up to 3. */
	EXPECT_LE(3U, i.max_qid);
}

TEST_F(ctl, get_features_without_owner)
{
	uint64_t f = 0;

	ASSERT_EQ(0, xioctl(self->g.fd, VHOST_GET_FEATURES, &f));
	ASSERT_EQ(VHOST_NVME_F_ALL, f);
}

struct req {
	const char *name;
	unsigned long nr;
	void *arg;
};

/* Every owner-only ioctl with an argument that would otherwise be valid. */
static int owner_only_reqs(struct guest *g, int file, struct req *r,
			   struct vhost_memory **mp)
{
	static uint64_t feat;
	static struct vhost_nvme_ns ns;
	static struct vhost_nvme_nsid nsid;
	static struct vhost_nvme_cq cq;
	static struct vhost_nvme_sq sq;
	static struct vhost_nvme_qid qid;
	static struct vhost_nvme_doorbells db;
	static struct vhost_nvme_queue_state qs;
	static struct vhost_nvme_quiesce qu;
	struct vhost_memory *m;
	int n = 0;

	m = calloc(1, sizeof(*m) + sizeof(m->regions[0]));
	m->nregions = 1;
	m->regions[0] = g_region(g, 0, GUEST_SIZE);
	*mp = m;
	feat = VHOST_NVME_F_ALL;
	ns = (struct vhost_nvme_ns){ .nsid = 1, .fd = file };
	nsid = (struct vhost_nvme_nsid){ .nsid = 1 };
	cq = (struct vhost_nvme_cq){ .qid = 1, .size = 16, .addr = g->gpa,
				     .irqfd = -1, .kickfd = -1 };
	sq = (struct vhost_nvme_sq){ .qid = 1, .size = 16, .cqid = 1,
				     .addr = g->gpa + PG, .kickfd = -1 };
	qid = (struct vhost_nvme_qid){ .qid = 1 };
	db = (struct vhost_nvme_doorbells){ .mode = VHOST_NVME_DB_VMM,
					    .db_addr = (uintptr_t)g->vmm_db };
	qs = (struct vhost_nvme_queue_state){ .qid = 1 };
	memset(&qu, 0, sizeof(qu));

#define R(nr_, arg_) r[n++] = (struct req){ #nr_, nr_, arg_ }
	R(VHOST_SET_FEATURES, &feat);
	R(VHOST_SET_MEM_TABLE, m);
	R(VHOST_NVME_ATTACH_NS, &ns);
	R(VHOST_NVME_DETACH_NS, &nsid);
	R(VHOST_NVME_CREATE_CQ, &cq);
	R(VHOST_NVME_CREATE_SQ, &sq);
	R(VHOST_NVME_DELETE_SQ, &qid);
	R(VHOST_NVME_DELETE_CQ, &qid);
	R(VHOST_NVME_SET_DOORBELLS, &db);
	R(VHOST_NVME_GET_QUEUE_STATE, &qs);
	R(VHOST_NVME_QUIESCE, &qu);
	R(VHOST_NVME_RESUME, &qu);
	R(VHOST_RESET_OWNER, NULL);
#undef R
	return n;
}

TEST_F(ctl, eperm_before_owner)
{
	struct vhost_memory *m;
	struct req r[16];
	struct vhost_nvme_info info;
	uint64_t f;
	int i, n;

	n = owner_only_reqs(&self->g, self->file, r, &m);
	for (i = 0; i < n; i++)
		EXPECT_EQ(-EPERM, xioctl(self->g.fd, r[i].nr, r[i].arg))
			TH_LOG("%s", r[i].name);
	free(m);
	/* These three need no owner. */
	info.size = sizeof(info);
	ASSERT_EQ(0, xioctl(self->g.fd, VHOST_NVME_GET_INFO, &info));
	ASSERT_EQ(0, xioctl(self->g.fd, VHOST_GET_FEATURES, &f));
	ASSERT_EQ(0, xioctl(self->g.fd, VHOST_SET_OWNER, NULL));
}

TEST_F(ctl, set_owner_twice_ebusy)
{
	ASSERT_EQ(0, xioctl(self->g.fd, VHOST_SET_OWNER, NULL));
	ASSERT_EQ(-EBUSY, xioctl(self->g.fd, VHOST_SET_OWNER, NULL));
	/* Still the owner: owner-only ioctls work. */
	ASSERT_EQ(0, g_mem_default(&self->g));
}

TEST_F(ctl, eperm_from_forked_child)
{
	struct vhost_nvme_queue_state st;
	int status;
	pid_t pid;

	ctl_ready(_metadata, &self->g);
	ASSERT_EQ(0, g_create_cq(&self->g, 1, 16, true));

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		/* Same struct file, different mm: not the owner. */
		struct vhost_memory *m;
		struct vhost_nvme_info info;
		struct req r[16];
		uint64_t f;
		int i, n;

		n = owner_only_reqs(&self->g, self->file, r, &m);
		for (i = 0; i < n; i++) {
			if (xioctl(self->g.fd, r[i].nr, r[i].arg) != -EPERM) {
				fprintf(stderr, "#  child: %s did not fail with EPERM\n",
					r[i].name);
				_exit(10 + i);
			}
		}
		info.size = sizeof(info);
		if (xioctl(self->g.fd, VHOST_NVME_GET_INFO, &info))
			_exit(2);
		if (xioctl(self->g.fd, VHOST_GET_FEATURES, &f) ||
		    f != VHOST_NVME_F_ALL)
			_exit(3);
		if (xioctl(self->g.fd, VHOST_SET_OWNER, NULL) != -EBUSY)
			_exit(4);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
	/* Nothing the child tried changed the parent's device. */
	ASSERT_EQ(0, g_qstate(&self->g, VHOST_NVME_QTYPE_CQ, 1, &st));
	ASSERT_EQ(16, st.size);
}

TEST_F(ctl, reset_owner_drops_everything)
{
	struct vhost_nvme_queue_state st;
	struct vhost_nvme_cq c;
	uint64_t f = 0;

	ctl_ready(_metadata, &self->g);
	ASSERT_EQ(0, g_attach(&self->g, 1, self->file, 0, 0, NULL));
	ASSERT_EQ(0, g_create_cq(&self->g, 1, 16, true));
	ASSERT_EQ(0, g_create_sq(&self->g, 1, 16, 1));

	ASSERT_EQ(0, xioctl(self->g.fd, VHOST_RESET_OWNER, NULL));
	/* No owner any more. */
	ASSERT_EQ(-EPERM, g_mem_default(&self->g));
	ASSERT_EQ(0, xioctl(self->g.fd, VHOST_SET_OWNER, NULL));

	ASSERT_EQ(-ENOENT, g_qstate(&self->g, VHOST_NVME_QTYPE_SQ, 1, &st));
	ASSERT_EQ(-ENOENT, g_qstate(&self->g, VHOST_NVME_QTYPE_CQ, 1, &st));
	ASSERT_EQ(-ENOENT, g_detach(&self->g, 1));
	/* Features are back to none: shadow doorbells are not negotiated. */
	ASSERT_EQ(-EOPNOTSUPP, g_db_shadow(&self->g, self->g.gpa,
					   self->g.gpa + PG));
	/* The memory table is gone: a ring inside the old one is not. */
	c = (struct vhost_nvme_cq){ .qid = 1, .size = 16, .addr = self->g.gpa,
				    .irqfd = -1, .kickfd = -1 };
	ASSERT_EQ(-EFAULT, xioctl(self->g.fd, VHOST_NVME_CREATE_CQ, &c));
	/* Supported features are unchanged. */
	ASSERT_EQ(0, xioctl(self->g.fd, VHOST_GET_FEATURES, &f));
	ASSERT_EQ(VHOST_NVME_F_ALL, f);

	/* And everything can be set up again. */
	g_close_queues(&self->g);
	ASSERT_EQ(0, g_features(&self->g, VHOST_NVME_F_ALL));
	ASSERT_EQ(0, g_mem_default(&self->g));
	ASSERT_EQ(0, g_attach(&self->g, 1, self->file, 0, 0, NULL));
	ASSERT_EQ(0, g_create_cq(&self->g, 1, 16, true));
	ASSERT_EQ(0, g_create_sq(&self->g, 1, 16, 1));
}

TEST_F(ctl, unknown_ioctl_enotty)
{
	char buf[256] = { 0 };

	ASSERT_EQ(0, xioctl(self->g.fd, VHOST_SET_OWNER, NULL));
	EXPECT_EQ(-ENOTTY, xioctl(self->g.fd, _IOW(VHOST_VIRTIO, 0xAF, __u64), buf));
	EXPECT_EQ(-ENOTTY, xioctl(self->g.fd, _IOWR(VHOST_VIRTIO, 0xBF, __u64), buf));
	EXPECT_EQ(-ENOTTY, xioctl(self->g.fd, _IO(VHOST_VIRTIO, 0xAC), buf));
	EXPECT_EQ(-ENOTTY, xioctl(self->g.fd, _IOR('x', 0x42, __u32), buf));
	/* Same number as GET_INFO, different size/direction. */
	EXPECT_EQ(-ENOTTY, xioctl(self->g.fd, _IOR(VHOST_VIRTIO, 0xA0, __u32), buf));
	/* Version 1's GET_INFO and SET_FEATURES are gone (one feature path). */
	EXPECT_EQ(-ENOTTY, xioctl(self->g.fd, _IOR(VHOST_VIRTIO, 0xA0, char[64]), buf));
	EXPECT_EQ(-ENOTTY, xioctl(self->g.fd, _IOWR(VHOST_VIRTIO, 0xA1, char[32]), buf));
}

TEST_F(ctl, null_argument_efault)
{
	static const struct { const char *name; unsigned long nr; } r[] = {
#define R(x) { #x, x }
		R(VHOST_GET_FEATURES),
		R(VHOST_SET_FEATURES), R(VHOST_SET_MEM_TABLE),
		R(VHOST_NVME_ATTACH_NS), R(VHOST_NVME_DETACH_NS),
		R(VHOST_NVME_CREATE_CQ), R(VHOST_NVME_CREATE_SQ),
		R(VHOST_NVME_DELETE_SQ), R(VHOST_NVME_DELETE_CQ),
		R(VHOST_NVME_SET_DOORBELLS), R(VHOST_NVME_GET_QUEUE_STATE),
		R(VHOST_NVME_QUIESCE), R(VHOST_NVME_RESUME),
#undef R
	};
	unsigned int i;

	EXPECT_EQ(-EFAULT, xioctl(self->g.fd, VHOST_NVME_GET_INFO, NULL));
	ctl_ready(_metadata, &self->g);
	for (i = 0; i < sizeof(r) / sizeof(r[0]); i++)
		EXPECT_EQ(-EFAULT, xioctl(self->g.fd, r[i].nr, NULL))
			TH_LOG("%s", r[i].name ? r[i].name : "?");
	/* A pointer to unmapped memory is the same. */
	EXPECT_EQ(-EFAULT, xioctl(self->g.fd, VHOST_NVME_GET_INFO,
				  (void *)(uintptr_t)8));
}

TEST_F(ctl, reserved_features_ns)
{
	struct vhost_nvme_ns ns;
	struct vhost_nvme_nsid n;
	int k;

	ctl_ready(_metadata, &self->g);
	memset(&ns, 0, sizeof(ns));
	ns.nsid = 1;
	ns.fd = self->file;
	ns.flags = 1U << 2;	/* not a flag */
	EXPECT_EQ(-EINVAL, xioctl(self->g.fd, VHOST_NVME_ATTACH_NS, &ns));
	for (k = 0; k < 3 + 4; k++) {
		memset(&ns, 0, sizeof(ns));
		ns.nsid = 1;
		ns.fd = self->file;
		if (k < 3)
			ns.reserved0[k] = 1;
		else
			ns.reserved[k - 3] = 1ULL << 63;
		EXPECT_EQ(-EINVAL, xioctl(self->g.fd, VHOST_NVME_ATTACH_NS, &ns))
			TH_LOG("reserved index %d", k);
	}
	/* Nothing got attached by the failures. */
	ASSERT_EQ(-ENOENT, g_detach(&self->g, 1));
	ASSERT_EQ(0, g_attach(&self->g, 1, self->file, 0, 0, NULL));
	for (k = 0; k < 3; k++) {
		memset(&n, 0, sizeof(n));
		n.nsid = 1;
		n.reserved[k] = 1;
		EXPECT_EQ(-EINVAL, xioctl(self->g.fd, VHOST_NVME_DETACH_NS, &n));
	}
	ASSERT_EQ(0, g_detach(&self->g, 1));
}

TEST_F(ctl, reserved_queues)
{
	struct guest *g = &self->g;
	uint64_t cqring, sqring;
	struct vhost_nvme_cq c;
	struct vhost_nvme_sq s;
	struct vhost_nvme_qid d;
	struct vhost_nvme_queue_state st;
	int k, efd = new_eventfd();

	ctl_ready(_metadata, g);
	cqring = g_alloc(g, PG);
	sqring = g_alloc(g, PG);
	for (k = 0; k < 5; k++) {
		c = (struct vhost_nvme_cq){ .qid = 1, .size = 16, .addr = cqring,
					    .irqfd = efd, .kickfd = -1,
					    .flags = VHOST_NVME_CQ_F_IRQ_ENABLED };
		if (k < 3)
			c.reserved[k] = 1;
		else if (k == 3)
			c.errfd = efd;	/* without VHOST_NVME_CQ_F_ERRFD */
		else
			c.worker = 1;	/* no such worker */
		EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_NVME_CREATE_CQ, &c));
	}
	c.worker = 0;
	c.flags |= 1U << 2;	/* not a flag */
	EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_NVME_CREATE_CQ, &c));
	c.flags |= VHOST_NVME_CQ_F_ERRFD;
	c.flags &= ~(1U << 2);
	c.errfd = closed_fd();
	EXPECT_EQ(-EBADF, xioctl(g->fd, VHOST_NVME_CREATE_CQ, &c));
	c.errfd = g->fd;	/* not an eventfd */
	EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_NVME_CREATE_CQ, &c));
	c.errfd = efd;
	ASSERT_EQ(0, xioctl(g->fd, VHOST_NVME_CREATE_CQ, &c));
	for (k = 0; k < 7; k++) {
		s = (struct vhost_nvme_sq){ .qid = 1, .size = 16, .cqid = 1,
					    .kickfd = efd, .addr = sqring };
		if (k == 3)
			s.reserved0 = 1;
		else if (k == 4)
			s.reserved1 = 1;
		else if (k == 5)
			s.errfd = efd;	/* without VHOST_NVME_SQ_F_ERRFD */
		else if (k == 6)
			s.flags = 1U << 1;	/* not a flag */
		else
			s.reserved[k] = 1;
		EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_NVME_CREATE_SQ, &s))
			TH_LOG("case %d", k);
	}
	s.flags = VHOST_NVME_SQ_F_ERRFD;
	s.errfd = closed_fd();
	EXPECT_EQ(-EBADF, xioctl(g->fd, VHOST_NVME_CREATE_SQ, &s));
	s.errfd = efd;
	ASSERT_EQ(0, xioctl(g->fd, VHOST_NVME_CREATE_SQ, &s));

	for (k = 0; k < 3; k++) {
		memset(&st, 0, sizeof(st));
		st.qid = 1;
		st.type = VHOST_NVME_QTYPE_SQ;
		if (k == 0)
			st.reserved0 = 1;
		else if (k == 1)
			st.reserved1 = 1;
		else
			st.reserved = 1;
		EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_NVME_GET_QUEUE_STATE, &st));
	}
	for (k = 0; k < 5; k++) {
		memset(&d, 0, sizeof(d));
		d.qid = 1;
		if (k == 0)
			d.flags = 1U << 2;	/* not a flag */
		else if (k == 1)
			d.eventfd = efd;	/* without ASYNC */
		else if (k == 2)
			d.flags = VHOST_NVME_DRAIN_F_ASYNC;	/* fd 0: no eventfd */
		else
			d.reserved[k - 3] = 1;
		EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_NVME_DELETE_SQ, &d))
			TH_LOG("case %d", k);
		EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_NVME_DELETE_CQ, &d));
	}
	/* DELETE_CQ takes no flags at all. */
	memset(&d, 0, sizeof(d));
	d.qid = 1;
	d.flags = VHOST_NVME_DELETE_F_DISCARD;
	EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_NVME_DELETE_CQ, &d));
	/* Both queues survived the rejected deletes. */
	ASSERT_EQ(0, g_delete(g, true, 1));
	ASSERT_EQ(0, g_delete(g, false, 1));
	close(efd);
}

TEST_F(ctl, reserved_doorbells_quiesce)
{
	struct vhost_nvme_doorbells d;
	struct vhost_nvme_quiesce q;
	int k;

	ctl_ready(_metadata, &self->g);
	for (k = 0; k < 5; k++) {
		d = (struct vhost_nvme_doorbells){ .mode = VHOST_NVME_DB_VMM,
			.db_addr = (uintptr_t)self->g.vmm_db };
		if (k == 4)
			d.reserved0 = 1;
		else
			d.reserved[k] = 1;
		EXPECT_EQ(-EINVAL, xioctl(self->g.fd, VHOST_NVME_SET_DOORBELLS, &d));
	}
	for (k = 0; k < 4; k++) {
		memset(&q, 0, sizeof(q));
		if (k == 2)
			q.flags = 1U << 1;	/* not a flag */
		else if (k == 3)
			q.eventfd = 1;		/* without ASYNC */
		else
			q.reserved[k] = 1;
		EXPECT_EQ(-EINVAL, xioctl(self->g.fd, VHOST_NVME_QUIESCE, &q));
		EXPECT_EQ(-EINVAL, xioctl(self->g.fd, VHOST_NVME_RESUME, &q));
	}
	memset(&q, 0, sizeof(q));
	q.flags = 1U << 31;
	EXPECT_EQ(-EINVAL, xioctl(self->g.fd, VHOST_NVME_QUIESCE, &q));
	/* RESUME takes no flags; ASYNC needs an eventfd. */
	q.flags = VHOST_NVME_DRAIN_F_ASYNC;
	EXPECT_EQ(-EINVAL, xioctl(self->g.fd, VHOST_NVME_RESUME, &q));
	q.eventfd = closed_fd();
	EXPECT_EQ(-EBADF, xioctl(self->g.fd, VHOST_NVME_QUIESCE, &q));
}

TEST_F(ctl, features_negotiation)
{
	uint64_t f;

	ASSERT_EQ(0, xioctl(self->g.fd, VHOST_SET_OWNER, NULL));
	ASSERT_EQ(0, xioctl(self->g.fd, VHOST_GET_FEATURES, &f));
	ASSERT_EQ(VHOST_NVME_F_ALL, f);

	ASSERT_EQ(-EOPNOTSUPP, g_features(&self->g, 1ULL << 63));
	ASSERT_EQ(-EOPNOTSUPP, g_features(&self->g, VHOST_NVME_F_ALL << 1));
	ASSERT_EQ(-EOPNOTSUPP,
		  g_features(&self->g, VHOST_NVME_F_ALL | (1ULL << 40)));

	ASSERT_EQ(0, g_features(&self->g, VHOST_NVME_F_SGL | VHOST_NVME_F_DSM));
	/* Shadow doorbells were not negotiated. */
	ASSERT_EQ(0, g_mem_default(&self->g));
	ASSERT_EQ(-EOPNOTSUPP, g_db_shadow(&self->g, self->g.gpa,
					   self->g.gpa + PG));
	ASSERT_EQ(0, g_features(&self->g, VHOST_NVME_F_ALL));
	ASSERT_EQ(0, g_features(&self->g, 0));

	f = 1ULL << 62;
	ASSERT_EQ(-EOPNOTSUPP, xioctl(self->g.fd, VHOST_SET_FEATURES, &f));
	f = VHOST_NVME_F_SHADOW_DB;
	ASSERT_EQ(0, xioctl(self->g.fd, VHOST_SET_FEATURES, &f));
	ASSERT_EQ(0, g_db_shadow(&self->g, self->g.gpa, self->g.gpa + PG));
	/* GET_FEATURES keeps reporting what is supported. */
	ASSERT_EQ(0, xioctl(self->g.fd, VHOST_GET_FEATURES, &f));
	ASSERT_EQ(VHOST_NVME_F_ALL, f);
}

TEST_F(ctl, features_ebusy_with_queues)
{
	uint64_t f = VHOST_NVME_F_SGL;

	ctl_ready(_metadata, &self->g);
	ASSERT_EQ(0, g_create_cq(&self->g, 1, 16, true));
	ASSERT_EQ(0, g_create_sq(&self->g, 1, 16, 1));
	EXPECT_EQ(-EBUSY, g_features(&self->g, VHOST_NVME_F_SGL));
	EXPECT_EQ(-EBUSY, xioctl(self->g.fd, VHOST_SET_FEATURES, &f));
	ASSERT_EQ(0, g_delete(&self->g, true, 1));
	/* A completion queue is an I/O queue too. */
	EXPECT_EQ(-EBUSY, g_features(&self->g, VHOST_NVME_F_SGL));
	ASSERT_EQ(0, g_delete(&self->g, false, 1));
	ASSERT_EQ(0, g_features(&self->g, VHOST_NVME_F_SGL));
	ASSERT_EQ(0, xioctl(self->g.fd, VHOST_SET_FEATURES, &f));
}

TEST_F(ctl, mem_table_header)
{
	struct guest *g = &self->g;
	struct vhost_memory_region *r;
	struct vhost_memory *m;
	unsigned int i, n = g->info.max_mem_regions + 1;

	ASSERT_EQ(0, xioctl(g->fd, VHOST_SET_OWNER, NULL));
	m = calloc(1, sizeof(*m) + n * sizeof(*r));
	ASSERT_NE(NULL, m);
	m->nregions = 1;
	m->padding = 1;
	m->regions[0] = g_region(g, 0, GUEST_SIZE);
	EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_SET_MEM_TABLE, m));

	/* max_mem_regions + 1 disjoint, valid regions. */
	m->padding = 0;
	m->nregions = n;
	for (i = 0; i < n; i++) {
		m->regions[i].guest_phys_addr = g->gpa + (uint64_t)i * 0x100000;
		m->regions[i].memory_size = PG;
		m->regions[i].userspace_addr = (uintptr_t)(g->mem + i * PG);
	}
	EXPECT_EQ(-E2BIG, xioctl(g->fd, VHOST_SET_MEM_TABLE, m));
	/* Exactly max_mem_regions is fine, if they fit in our memory. */
	if (n - 1 <= GUEST_SIZE / PG) {
		m->nregions = n - 1;
		EXPECT_EQ(0, xioctl(g->fd, VHOST_SET_MEM_TABLE, m));
	}
	free(m);
}

TEST_F(ctl, mem_table_region_rules)
{
	struct guest *g = &self->g;
	struct vhost_memory_region r;

	ASSERT_EQ(0, xioctl(g->fd, VHOST_SET_OWNER, NULL));
	r = g_region(g, 0, GUEST_SIZE);
	r.memory_size = 0;
	EXPECT_EQ(-EINVAL, g_set_mem(g, 1, &r)) TH_LOG("size 0");
	r = g_region(g, 0, GUEST_SIZE);
	r.guest_phys_addr += 0x200;
	EXPECT_EQ(-EINVAL, g_set_mem(g, 1, &r)) TH_LOG("gpa unaligned");
	r = g_region(g, 0, GUEST_SIZE);
	r.memory_size -= 0x200;
	EXPECT_EQ(-EINVAL, g_set_mem(g, 1, &r)) TH_LOG("size unaligned");
	r = g_region(g, 0, GUEST_SIZE - PG);
	r.userspace_addr += 0x200;
	EXPECT_EQ(-EINVAL, g_set_mem(g, 1, &r)) TH_LOG("uaddr unaligned");
	r = g_region(g, 0, GUEST_SIZE);
	r.flags_padding = 1;
	EXPECT_EQ(-EINVAL, g_set_mem(g, 1, &r)) TH_LOG("flags_padding");
	r = g_region(g, 0, GUEST_SIZE);
	EXPECT_EQ(0, g_set_mem(g, 1, &r));
}

TEST_F(ctl, mem_table_overlap_and_wrap)
{
	struct guest *g = &self->g;
	struct vhost_memory_region r[2];

	ASSERT_EQ(0, xioctl(g->fd, VHOST_SET_OWNER, NULL));
	/* Overlapping by GPA (different host memory). */
	r[0] = g_region(g, 0, 16 << 20);
	r[1] = g_region(g, 16 << 20, 16 << 20);
	r[1].guest_phys_addr = g->gpa + (8 << 20);
	EXPECT_EQ(-EINVAL, g_set_mem(g, 2, r)) TH_LOG("overlap");
	/* Identical regions. */
	r[1] = r[0];
	EXPECT_EQ(-EINVAL, g_set_mem(g, 2, r)) TH_LOG("duplicate");
	/* One page of overlap, second region below the first. */
	r[0] = g_region(g, 16 << 20, 16 << 20);
	r[1] = g_region(g, 0, (16 << 20) + PG);
	EXPECT_EQ(-EINVAL, g_set_mem(g, 2, r)) TH_LOG("overlap by one page");
	/* GPA wraps. */
	r[0] = g_region(g, 0, 2 << 20);
	r[0].guest_phys_addr = 0xfffffffffff00000ULL;
	EXPECT_EQ(-EINVAL, g_set_mem(g, 1, r)) TH_LOG("gpa wrap");
	/* Userspace address wraps. */
	r[0] = g_region(g, 0, 2 << 20);
	r[0].userspace_addr = 0xfffffffffff00000ULL;
	EXPECT_EQ(-EINVAL, g_set_mem(g, 1, r)) TH_LOG("uaddr wrap");
	/* Adjacent, not overlapping: fine. */
	r[0] = g_region(g, 0, 16 << 20);
	r[1] = g_region(g, 16 << 20, 16 << 20);
	EXPECT_EQ(0, g_set_mem(g, 2, r));
}

TEST_F(ctl, mem_table_must_cover_queues)
{
	struct guest *g = &self->g;
	struct vhost_memory_region r;
	uint64_t db, ei;

	ctl_ready(_metadata, g);
	/* CQ at the bottom of guest memory. */
	ASSERT_EQ(0, g_create_cq(g, 1, 16, true));
	ASSERT_GT(16ULL << 20, g->cq[1].gpa - g->gpa);
	r = g_region(g, 16 << 20, 16 << 20);
	EXPECT_EQ(-EFAULT, g_set_mem(g, 1, &r)) TH_LOG("CQ not covered");
	/* The old table is still in force. */
	ASSERT_EQ(0, g_create_sq(g, 1, 16, 1));
	ASSERT_GT(16ULL << 20, g->sq[1].gpa - g->gpa);

	/* Shadow doorbell buffers in the top half. */
	g->brk = 20 << 20;
	db = g_alloc(g, PG);
	ei = g_alloc(g, PG);
	ASSERT_EQ(0, g_db_shadow(g, db, ei));
	r = g_region(g, 0, 16 << 20);
	EXPECT_EQ(-EFAULT, g_set_mem(g, 1, &r)) TH_LOG("doorbells not covered");
	/* Still works with a covering table. */
	r = g_region(g, 0, GUEST_SIZE);
	EXPECT_EQ(0, g_set_mem(g, 1, &r));
}

TEST_F(ctl, mem_table_replace_covering)
{
	struct guest *g = &self->g;
	struct vhost_memory_region r[3];

	ctl_ready(_metadata, g);
	ASSERT_EQ(0, g_create_cq(g, 1, 16, true));
	ASSERT_EQ(0, g_create_sq(g, 1, 16, 1));
	r[0] = g_region(g, 0, 8 << 20);
	r[1] = g_region(g, 8 << 20, 8 << 20);
	r[2] = g_region(g, 16 << 20, 16 << 20);
	EXPECT_EQ(0, g_set_mem(g, 3, r));
	EXPECT_EQ(0, g_set_mem(g, 1, r));	/* queues are in the first 8 MiB */
	EXPECT_EQ(0, g_mem_default(g));
}

TEST_F(ctl, attach_ns_errors)
{
	struct guest *g = &self->g;
	int p[2], efd = new_eventfd();

	ctl_ready(_metadata, g);
	ASSERT_EQ(0, pipe(p));
	EXPECT_EQ(-EINVAL, g_attach(g, 0, self->file, 0, 0, NULL));
	EXPECT_EQ(-EINVAL, g_attach(g, g->info.max_nsid + 1, self->file, 0, 0, NULL));
	EXPECT_EQ(-EINVAL, g_attach(g, 0xffffffff, self->file, 0, 0, NULL));
	EXPECT_EQ(-EBADF, g_attach(g, 1, -1, 0, 0, NULL));
	EXPECT_EQ(-EBADF, g_attach(g, 1, closed_fd(), 0, 0, NULL));
	EXPECT_EQ(-EINVAL, g_attach(g, 1, p[0], 0, 0, NULL)) TH_LOG("pipe");
	EXPECT_EQ(-EINVAL, g_attach(g, 1, efd, 0, 0, NULL)) TH_LOG("eventfd");
	EXPECT_EQ(-EINVAL, g_attach(g, 1, g->fd, 0, 0, NULL)) TH_LOG("itself");
	EXPECT_EQ(-EINVAL, g_attach(g, 1, self->file, 0, 8, NULL));
	EXPECT_EQ(-EINVAL, g_attach(g, 1, self->file, 0, 13, NULL));
	EXPECT_EQ(-EINVAL, g_attach(g, 1, self->file, 0, 1, NULL));
	EXPECT_EQ(-EINVAL, g_attach(g, 1, self->file, 1U << 2, 0, NULL));
	EXPECT_EQ(-EINVAL, g_attach(g, 1, self->file, 1U << 31, 0, NULL));
	/* None of these attached anything. */
	EXPECT_EQ(-ENOENT, g_detach(g, 1));

	ASSERT_EQ(0, g_attach(g, 1, self->file, 0, 0, NULL));
	EXPECT_EQ(-EEXIST, g_attach(g, 1, self->file, 0, 0, NULL));
	EXPECT_EQ(-EINVAL, g_detach(g, 0));
	EXPECT_EQ(-ENOENT, g_detach(g, 2));
	ASSERT_EQ(0, g_detach(g, 1));
	EXPECT_EQ(-ENOENT, g_detach(g, 1));
	close(p[0]);
	close(p[1]);
	close(efd);
}

/*
 * Files the worker cannot read and write as a namespace, and fds that do
 * not allow it: each refused with a clear errno, nothing attached.  A file
 * without ->read_iter made the worker call a NULL pointer on the first
 * guest read; an O_WRONLY fd was readable through the guest.
 */
TEST_F(ctl, attach_ns_refuses_unusable_files)
{
	struct guest *g = &self->g;
	struct vhost_nvme_ns ns;
	char path[] = "/tmp/vhost-nvme-test-XXXXXX";
	int fd, sv[2];

	ctl_ready(_metadata, g);

	/* procfs files without read_iter/write_iter (proc_mem_operations) */
	fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd) TH_LOG("/proc/self/mem: %s", strerror(errno));
	EXPECT_EQ(-EINVAL, g_attach(g, 1, fd, 0, 0, NULL)) TH_LOG("/proc/self/mem");
	close(fd);
	/*
	 * kcore has ->read_iter (6.1.y has the backport) but no
	 * ->write_iter: opened O_RDWR it made the worker call a NULL
	 * ->write_iter.  Refused, or attached read-only, as loop does.
	 */
	fd = open("/proc/kcore", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		int ret = g_attach(g, 3, fd, 0, 0, &ns);

		if (ret) {
			EXPECT_EQ(-EINVAL, ret) TH_LOG("/proc/kcore");
		} else {
			EXPECT_NE(0U, ns.flags & VHOST_NVME_NS_F_READ_ONLY)
				TH_LOG("/proc/kcore attached writable");
			EXPECT_EQ(0, g_detach(g, 3));
		}
		close(fd);
	}

	/* An fd that was not opened for reading */
	fd = mkstemp(path);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ftruncate(fd, 1 << 20));
	close(fd);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-EBADF, g_attach(g, 1, fd, 0, 0, NULL)) TH_LOG("O_WRONLY");
	EXPECT_EQ(-EBADF, g_attach(g, 1, fd, VHOST_NVME_NS_F_READ_ONLY, 0, NULL))
		TH_LOG("O_WRONLY, read-only namespace");
	close(fd);
	fd = open(path, O_PATH | O_CLOEXEC);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-EBADF, g_attach(g, 1, fd, 0, 0, NULL)) TH_LOG("O_PATH");
	close(fd);
	/* Read-only fds are fine: a read-only namespace */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, g_attach(g, 2, fd, 0, 0, &ns));
	EXPECT_NE(0U, ns.flags & VHOST_NVME_NS_F_READ_ONLY);
	close(fd);
	unlink(path);

	/* Neither regular files nor block devices */
	fd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-EINVAL, g_attach(g, 1, fd, 0, 0, NULL)) TH_LOG("directory");
	close(fd);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	EXPECT_EQ(-EINVAL, g_attach(g, 1, sv[0], 0, 0, NULL)) TH_LOG("socket");
	close(sv[0]);
	close(sv[1]);
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-EINVAL, g_attach(g, 1, fd, 0, 0, NULL)) TH_LOG("char device");
	close(fd);
	fd = open("/dev/zero", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-EINVAL, g_attach(g, 1, fd, 0, 0, NULL)) TH_LOG("/dev/zero");
	close(fd);

	/* None of these attached anything. */
	EXPECT_EQ(-ENOENT, g_detach(g, 1));
	EXPECT_EQ(0, g_detach(g, 2));
}

TEST_F(ctl, attach_ns_regular_file)
{
	struct guest *g = &self->g;
	struct vhost_nvme_ns ns;
	int ro;

	ctl_ready(_metadata, g);
	ASSERT_EQ(0, g_attach(g, 1, self->file, 0, 0, &ns));
	ASSERT_LE(9, ns.lba_shift);
	ASSERT_GE(12, ns.lba_shift);
	ASSERT_EQ((1ULL << 20) >> ns.lba_shift, ns.nsze);
	ASSERT_EQ(0U, ns.flags & VHOST_NVME_NS_F_READ_ONLY);

	/* Larger LBA size than the backend's, on request. */
	ASSERT_EQ(0, g_attach(g, 2, self->file, 0, 12, &ns));
	ASSERT_EQ(12, ns.lba_shift);
	ASSERT_EQ(256ULL, ns.nsze);

	/* Read-only on request. */
	ASSERT_EQ(0, g_attach(g, 3, self->file, VHOST_NVME_NS_F_READ_ONLY, 0, &ns));
	ASSERT_NE(0U, ns.flags & VHOST_NVME_NS_F_READ_ONLY);

	/* Read-only because the fd is. */
	ro = tmp_file(1 << 20, O_RDONLY);
	ASSERT_LE(0, ro);
	ASSERT_EQ(0, g_attach(g, 4, ro, 0, 0, &ns));
	ASSERT_NE(0U, ns.flags & VHOST_NVME_NS_F_READ_ONLY);
	close(ro);	/* the module holds its own reference */

	/* The highest namespace id. */
	if (g->info.max_nsid > 4)
		ASSERT_EQ(0, g_attach(g, g->info.max_nsid, self->file, 0, 0, NULL));

	ASSERT_EQ(0, g_detach(g, 4));
	ASSERT_EQ(0, g_detach(g, 3));
	ASSERT_EQ(0, g_detach(g, 2));
	ASSERT_EQ(0, g_detach(g, 1));
	/* Re-attach after detach. */
	ASSERT_EQ(0, g_attach(g, 1, self->file, 0, 0, NULL));
}

/* A valid CREATE_CQ argument with its own eventfds. */
static struct vhost_nvme_cq cq_arg(uint64_t ring, int efd)
{
	return (struct vhost_nvme_cq){
		.qid = 1, .size = 16, .addr = ring, .irqfd = efd, .kickfd = efd,
		.flags = VHOST_NVME_CQ_F_IRQ_ENABLED,
	};
}

TEST_F(ctl, create_cq_errors)
{
	struct guest *g = &self->g;
	int efd = new_eventfd(), p[2];
	uint64_t ring;
	struct vhost_nvme_cq c;

	ctl_ready(_metadata, g);
	ASSERT_EQ(0, pipe(p));
	ring = g_alloc(g, 16 * 1024);
#define CQ_EXPECT(err, field, val) do {					\
		c = cq_arg(ring, efd);				\
		c.field = val;						\
		EXPECT_EQ(err, xioctl(g->fd, VHOST_NVME_CREATE_CQ, &c))	\
			TH_LOG("%s = %lld", #field, (long long)(val));	\
	} while (0)
	CQ_EXPECT(-EINVAL, qid, 0);
	CQ_EXPECT(-EINVAL, qid, g->info.max_qid + 1);
	CQ_EXPECT(-EINVAL, size, 0);
	CQ_EXPECT(-EINVAL, size, 1);
	CQ_EXPECT(-EINVAL, size, g->info.max_qsize + 1);
	CQ_EXPECT(-EINVAL, addr, ring + 0x100);
	CQ_EXPECT(-EINVAL, addr, ring + 8);
	CQ_EXPECT(-EFAULT, addr, OUTSIDE_GPA);
	CQ_EXPECT(-EFAULT, addr, 0x1000);
	/* Starts inside, ends outside. */
	c = cq_arg(g->gpa + GUEST_SIZE - PG, efd);
	c.size = 1024;
	EXPECT_EQ(-EFAULT, xioctl(g->fd, VHOST_NVME_CREATE_CQ, &c));
	CQ_EXPECT(-EINVAL, irqfd, -1);		/* IRQ_ENABLED needs one */
	CQ_EXPECT(-EBADF, irqfd, closed_fd());
	CQ_EXPECT(-EBADF, kickfd, closed_fd());
	CQ_EXPECT(-EINVAL, irqfd, p[0]);
	CQ_EXPECT(-EINVAL, kickfd, p[1]);
	CQ_EXPECT(-EINVAL, irqfd, self->file);
	CQ_EXPECT(-EINVAL, flags, 1U << 1);
	CQ_EXPECT(-EINVAL, flags, 1U << 31);
#undef CQ_EXPECT
	/* None of them created anything. */
	{
		struct vhost_nvme_queue_state st;

		EXPECT_EQ(-ENOENT, g_qstate(g, VHOST_NVME_QTYPE_CQ, 1, &st));
	}
	/* Without interrupts neither fd is required. */
	c = cq_arg(ring, efd);
	c.flags = 0;
	c.irqfd = -1;
	c.kickfd = -1;
	ASSERT_EQ(0, xioctl(g->fd, VHOST_NVME_CREATE_CQ, &c));
	EXPECT_EQ(-EEXIST, xioctl(g->fd, VHOST_NVME_CREATE_CQ, &c));
	/* Largest size and highest qid. */
	c = cq_arg(g_alloc(g, 1024 * 16), efd);
	c.qid = g->info.max_qid;
	c.size = g->info.max_qsize;
	if (g->info.max_qid > 1)
		ASSERT_EQ(0, xioctl(g->fd, VHOST_NVME_CREATE_CQ, &c));
	close(p[0]);
	close(p[1]);
	close(efd);
}

static struct vhost_nvme_sq sq_arg(uint64_t ring, int efd)
{
	return (struct vhost_nvme_sq){
		.qid = 1, .size = 16, .cqid = 1, .addr = ring, .kickfd = efd,
	};
}

TEST_F(ctl, create_sq_errors)
{
	struct guest *g = &self->g;
	int efd = new_eventfd(), p[2];
	struct vhost_nvme_queue_state st;
	struct vhost_nvme_sq s;
	uint64_t ring;

	ctl_ready(_metadata, g);
	ASSERT_EQ(0, pipe(p));
	ring = g_alloc(g, 64 * 1024);
	/* No CQ yet. */
	s = sq_arg(ring, efd);
	EXPECT_EQ(-ENOENT, xioctl(g->fd, VHOST_NVME_CREATE_SQ, &s));
	ASSERT_EQ(0, g_create_cq(g, 1, 16, true));
#define SQ_EXPECT(err, field, val) do {					\
		s = sq_arg(ring, efd);					\
		s.field = val;						\
		EXPECT_EQ(err, xioctl(g->fd, VHOST_NVME_CREATE_SQ, &s))	\
			TH_LOG("%s = %lld", #field, (long long)(val));	\
	} while (0)
	SQ_EXPECT(-EINVAL, qid, 0);
	SQ_EXPECT(-EINVAL, qid, g->info.max_qid + 1);
	SQ_EXPECT(-EINVAL, size, 0);
	SQ_EXPECT(-EINVAL, size, 1);
	SQ_EXPECT(-EINVAL, size, g->info.max_qsize + 1);
	SQ_EXPECT(-EINVAL, addr, ring + 0x40);
	SQ_EXPECT(-EFAULT, addr, OUTSIDE_GPA);
	SQ_EXPECT(-EFAULT, addr, 0x1000);
	/* 1024 x 64 bytes starting in the last page: ends outside. */
	s = sq_arg(g->gpa + GUEST_SIZE - PG, efd);
	s.size = 1024;
	EXPECT_EQ(-EFAULT, xioctl(g->fd, VHOST_NVME_CREATE_SQ, &s));
	SQ_EXPECT(-ENOENT, cqid, 2);
	SQ_EXPECT(-EBADF, kickfd, -1);
	SQ_EXPECT(-EBADF, kickfd, closed_fd());
	SQ_EXPECT(-EINVAL, kickfd, p[0]);
	SQ_EXPECT(-EINVAL, kickfd, self->file);
	SQ_EXPECT(-EINVAL, flags, 1);
	SQ_EXPECT(-EINVAL, flags, 1U << 31);
#undef SQ_EXPECT
	EXPECT_EQ(-ENOENT, g_qstate(g, VHOST_NVME_QTYPE_SQ, 1, &st));

	s = sq_arg(ring, efd);
	ASSERT_EQ(0, xioctl(g->fd, VHOST_NVME_CREATE_SQ, &s));
	EXPECT_EQ(-EEXIST, xioctl(g->fd, VHOST_NVME_CREATE_SQ, &s));
	/* A second SQ on the same CQ. */
	s = sq_arg(g_alloc(g, PG), efd);
	s.qid = 2;
	ASSERT_EQ(0, xioctl(g->fd, VHOST_NVME_CREATE_SQ, &s));
	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_SQ, 2, &st));
	ASSERT_EQ(1, st.cqid);
	close(p[0]);
	close(p[1]);
	close(efd);
}

TEST_F(ctl, delete_queue_errors)
{
	struct guest *g = &self->g;
	struct vhost_nvme_qid d = { 0 };

	ctl_ready(_metadata, g);
	for (int sq = 0; sq < 2; sq++) {
		unsigned long nr = sq ? VHOST_NVME_DELETE_SQ : VHOST_NVME_DELETE_CQ;

		d.qid = 0;
		EXPECT_EQ(-EINVAL, xioctl(g->fd, nr, &d));
		d.qid = g->info.max_qid + 1;
		EXPECT_EQ(-EINVAL, xioctl(g->fd, nr, &d));
		d.qid = 1;
		EXPECT_EQ(-ENOENT, xioctl(g->fd, nr, &d));
	}
	ASSERT_EQ(0, g_create_cq(g, 1, 16, true));
	ASSERT_EQ(0, g_create_sq(g, 1, 16, 1));
	ASSERT_EQ(0, g_create_sq(g, 2, 16, 1));
	EXPECT_EQ(-EBUSY, g_delete(g, false, 1));
	ASSERT_EQ(0, g_delete(g, true, 1));
	EXPECT_EQ(-EBUSY, g_delete(g, false, 1));	/* SQ 2 still uses it */
	ASSERT_EQ(0, g_delete(g, true, 2));
	ASSERT_EQ(0, g_delete(g, false, 1));
	EXPECT_EQ(-ENOENT, g_delete(g, false, 1));
	EXPECT_EQ(-ENOENT, g_delete(g, true, 1));
	/* The ids can be reused. */
	ASSERT_EQ(0, g_create_cq(g, 1, 16, true));
	ASSERT_EQ(0, g_create_sq(g, 1, 16, 1));
}

TEST_F(ctl, doorbells_vmm)
{
	struct guest *g = &self->g;
	struct vhost_nvme_doorbells d;

	g_owner(_metadata, g, VHOST_NVME_F_ALL);
	d = (struct vhost_nvme_doorbells){ .mode = VHOST_NVME_DB_VMM,
		.db_addr = (uintptr_t)g->vmm_db + 4 };
	EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_NVME_SET_DOORBELLS, &d));
	d.db_addr = (uintptr_t)g->vmm_db + 0x800;
	EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_NVME_SET_DOORBELLS, &d));
	d.db_addr = (uintptr_t)g->vmm_db;
	d.ei_addr = g->gpa;
	EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_NVME_SET_DOORBELLS, &d));
	d.ei_addr = 0;
	d.mode = 0;
	EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_NVME_SET_DOORBELLS, &d));
	d.mode = 3;
	EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_NVME_SET_DOORBELLS, &d));
	d.mode = 0xffffffff;
	EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_NVME_SET_DOORBELLS, &d));
	/* A page of guest memory works as well as any other. */
	d.mode = VHOST_NVME_DB_VMM;
	d.db_addr = (uintptr_t)g->mem;
	EXPECT_EQ(0, xioctl(g->fd, VHOST_NVME_SET_DOORBELLS, &d));
	ASSERT_EQ(0, g_db_vmm(g));
	/* Set again, with queues. */
	ASSERT_EQ(0, g_create_cq(g, 1, 16, true));
	ASSERT_EQ(0, g_db_vmm(g));
}

TEST_F(ctl, doorbells_shadow)
{
	struct guest *g = &self->g;
	uint64_t db, ei;

	g_owner(_metadata, g, VHOST_NVME_F_ALL & ~VHOST_NVME_F_SHADOW_DB);
	db = g_alloc(g, PG);
	ei = g_alloc(g, PG);
	EXPECT_EQ(-EOPNOTSUPP, g_db_shadow(g, db, ei));
	ASSERT_EQ(0, g_features(g, VHOST_NVME_F_ALL));
	EXPECT_EQ(-EINVAL, g_db_shadow(g, db + 4, ei));
	EXPECT_EQ(-EINVAL, g_db_shadow(g, db, ei + 0x80));
	EXPECT_EQ(-EFAULT, g_db_shadow(g, OUTSIDE_GPA, ei));
	EXPECT_EQ(-EFAULT, g_db_shadow(g, db, OUTSIDE_GPA));
	EXPECT_EQ(-EFAULT, g_db_shadow(g, db, 0));
	EXPECT_EQ(0, g_db_shadow(g, db, ei));
	/* And back to VMM mode. */
	EXPECT_EQ(0, g_db_vmm(g));
}

TEST_F(ctl, queue_state_initial)
{
	struct guest *g = &self->g;
	struct vhost_nvme_queue_state st;
	int k;

	ctl_ready(_metadata, g);
	EXPECT_EQ(-ENOENT, g_qstate(g, VHOST_NVME_QTYPE_SQ, 1, &st));
	EXPECT_EQ(-ENOENT, g_qstate(g, VHOST_NVME_QTYPE_CQ, 1, &st));
	ASSERT_EQ(0, g_create_cq(g, 1, 32, true));
	ASSERT_EQ(0, g_create_sq(g, 1, 8, 1));
	EXPECT_EQ(-EINVAL, g_qstate(g, 2, 1, &st));
	EXPECT_EQ(-EINVAL, g_qstate(g, 0xff, 1, &st));
	EXPECT_EQ(-ENOENT, g_qstate(g, VHOST_NVME_QTYPE_SQ, 2, &st));
	k = g_qstate(g, VHOST_NVME_QTYPE_SQ, 0, &st);
	EXPECT_TRUE(k == -EINVAL || k == -ENOENT) TH_LOG("qid 0: %d", k);

	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_CQ, 1, &st));
	EXPECT_EQ(1, st.qid);
	EXPECT_EQ(32, st.size);
	EXPECT_EQ(0, st.head);
	EXPECT_EQ(0, st.tail);
	EXPECT_EQ(1, st.phase);
	EXPECT_EQ(0, st.cqid);
	EXPECT_EQ(0U, st.flags);
	EXPECT_EQ(0U, st.inflight);
	EXPECT_EQ(0ULL, st.commands);

	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_SQ, 1, &st));
	EXPECT_EQ(8, st.size);
	EXPECT_EQ(0, st.head);
	EXPECT_EQ(0, st.tail);
	EXPECT_EQ(0, st.phase);
	EXPECT_EQ(1, st.cqid);
	EXPECT_EQ(0U, st.flags);
	EXPECT_EQ(0U, st.inflight);
	EXPECT_EQ(0ULL, st.commands);
	EXPECT_EQ(0ULL, st.errors);
}

TEST_F(ctl, quiesce_resume_idempotent)
{
	struct guest *g = &self->g;

	ASSERT_EQ(0, xioctl(g->fd, VHOST_SET_OWNER, NULL));
	/* Without anything set up. */
	EXPECT_EQ(0, g_quiesce(g, false));
	EXPECT_EQ(0, g_quiesce(g, true));
	ASSERT_EQ(0, g_features(g, VHOST_NVME_F_ALL));
	ASSERT_EQ(0, g_mem_default(g));
	ASSERT_EQ(0, g_db_vmm(g));
	ASSERT_EQ(0, g_create_cq(g, 1, 16, true));
	ASSERT_EQ(0, g_create_sq(g, 1, 16, 1));
	EXPECT_EQ(0, g_quiesce(g, true));	/* resume while running */
	EXPECT_EQ(0, g_quiesce(g, false));
	EXPECT_EQ(0, g_quiesce(g, false));
	/* Control ioctls still work while quiesced. */
	EXPECT_EQ(0, g_create_sq(g, 2, 16, 1));
	EXPECT_EQ(0, g_quiesce(g, true));
	EXPECT_EQ(0, g_quiesce(g, true));
}

/* =====================================================================
 * Data path
 * ===================================================================== */

FIXTURE(io) {
	struct guest g;
	const char *dev;
	char sdev[64];	/* the block device under dev, "" if none */
	int bfd;
	bool skip;
	struct vhost_nvme_ns ns;
	uint64_t buf, buf2;	/* 1 MiB each */
};

FIXTURE_VARIANT(io) {
	const char *env;
	uint64_t nsze;
	bool file;	/* a regular file namespace */
	int oflags;	/* opened with these too */
};

FIXTURE_VARIANT_ADD(io, nullb) {
	.env = "VHOST_NVME_NULLB",
	.nsze = 2097152,	/* gb=1 at 512 bytes */
};

FIXTURE_VARIANT_ADD(io, loop) {
	.env = "VHOST_NVME_LOOP",
	.nsze = 524288,		/* 256 MiB at 512 bytes */
};

/* A file on ext4 (over a loop device), direct I/O: kiocbs from the worker */
FIXTURE_VARIANT_ADD(io, file_direct) {
	.env = "VHOST_NVME_FILE_DIRECT",
	.nsze = 131072,		/* 64 MiB at 512 bytes */
	.file = true,
	.oflags = O_DIRECT,
};

/*
 * A file on tmpfs, buffered: from the page cache in the worker, what
 * would wait on the owner's helper
 */
FIXTURE_VARIANT_ADD(io, file_buffered) {
	.env = "VHOST_NVME_FILE_BUFFERED",
	.nsze = 131072,
	.file = true,
};

/* Owner, features, table, VMM doorbells, ns 1 = @bfd, CQ 1 + SQ 1 (64). */
static void io_guest(struct __test_metadata *_metadata, struct guest *g,
		     int bfd, struct vhost_nvme_ns *ns)
{
	g_open(_metadata, g);
	g_owner(_metadata, g, VHOST_NVME_F_ALL);
	ASSERT_EQ(0, g_db_vmm(g));
	ASSERT_EQ(0, g_attach(g, 1, bfd, 0, 0, ns));
	ASSERT_EQ(0, g_create_cq(g, 1, 64, true));
	ASSERT_EQ(0, g_create_sq(g, 1, 64, 1));
}

FIXTURE_SETUP(io)
{
	self->bfd = -1;
	self->g.fd = -1;
	self->dev = getenv(variant->env);
	if (!self->dev || !*self->dev || access(self->dev, R_OK | W_OK)) {
		self->skip = true;
		SKIP(return, "$%s not set or not accessible", variant->env);
	}
	self->bfd = open(self->dev, O_RDWR | O_CLOEXEC | variant->oflags);
	ASSERT_LE(0, self->bfd) TH_LOG("%s: %s", self->dev, strerror(errno));
	backend_bdev(self->dev, self->sdev, sizeof(self->sdev));
	io_guest(_metadata, &self->g, self->bfd, &self->ns);
	self->buf = g_alloc(&self->g, 1 << 20);
	self->buf2 = g_alloc(&self->g, 1 << 20);
}

FIXTURE_TEARDOWN(io)
{
	g_fini(&self->g);
	if (self->bfd >= 0)
		close(self->bfd);
}

#define IO_PROLOGUE() do {						\
		if (self->skip)						\
			SKIP(return, "$%s not set", variant->env);	\
	} while (0)

#define HVA(gpa) g_hva(&self->g, gpa)

/* For what is seen on the block device under the namespace */
#define NEED_SDEV() do {						\
		if (!self->sdev[0])					\
			SKIP(return, "%s: no block device under it",	\
			     self->dev);				\
	} while (0)

/* For what only a block device namespace shows (its own bios) */
#define NEED_BDEV() do {						\
		if (variant->file)					\
			SKIP(return, "%s: a file namespace's bios are its file system's", \
			     self->dev);				\
	} while (0)

TEST_F(io, namespace_geometry)
{
	uint64_t bytes = 0;
	int ssz = 0;

	IO_PROLOGUE();
	if (variant->file) {
		struct stat st;

		ASSERT_EQ(0, fstat(self->bfd, &st));
		bytes = st.st_size;
		ssz = 512;	/* loop's, under ext4; 512 bytes for tmpfs */
	} else {
		ASSERT_EQ(0, ioctl(self->bfd, BLKGETSIZE64, &bytes));
		ASSERT_EQ(0, ioctl(self->bfd, BLKSSZGET, &ssz));
	}
	ASSERT_EQ(9, self->ns.lba_shift);
	ASSERT_EQ(512, ssz);
	ASSERT_EQ(bytes >> 9, self->ns.nsze);
	ASSERT_EQ(variant->nsze, self->ns.nsze);
	ASSERT_EQ(0U, self->ns.flags);
}

TEST_F(io, write_read_back)
{
	struct nvme_sqe sqe;
	struct nvme_cqe cqe;

	IO_PROLOGUE();
	fill(HVA(self->buf), 4096, 1);
	rw_sqe(&sqe, OP_WRITE, 1, 100, 8);
	sqe.prp1 = self->buf;
	ASSERT_EQ(SC_OK, __submit(_metadata, &self->g, 1, &sqe, &cqe));
	/* CQE fields: first entry of the CQ. */
	EXPECT_EQ(1, cqe.status & 1);
	EXPECT_EQ(1, cqe.sq_id);
	EXPECT_EQ(1, cqe.sq_head);
	EXPECT_EQ(0U, cqe.rsvd);

	ASSERT_EQ(SC_OK, RW(OP_READ, 100, 8, self->buf2));
	ASSERT_EQ(0, memcmp(HVA(self->buf), HVA(self->buf2), 4096));
	/* Last LBA of the namespace. */
	fill(HVA(self->buf), 512, 2);
	ASSERT_EQ(SC_OK, RW(OP_WRITE, self->ns.nsze - 1, 1, self->buf));
	ASSERT_EQ(SC_OK, RW(OP_READ, self->ns.nsze - 1, 1, self->buf2));
	ASSERT_EQ(0, memcmp(HVA(self->buf), HVA(self->buf2), 512));
}

TEST_F(io, verify_on_backend)
{
	static char direct[8192];

	IO_PROLOGUE();
	fill(HVA(self->buf), 8192, 3);
	ASSERT_EQ(SC_OK, RW(OP_WRITE, 2048, 16, self->buf));
	ASSERT_EQ(0, bdev_io(self->dev, false, 2048 * 512, direct, 8192));
	ASSERT_EQ(0, memcmp(direct, HVA(self->buf), 8192));

	/* The other way round. */
	fill(direct, 8192, 4);
	ASSERT_EQ(0, bdev_io(self->dev, true, 4096 * 512, direct, 8192));
	ASSERT_EQ(SC_OK, RW(OP_READ, 4096, 16, self->buf2));
	ASSERT_EQ(0, memcmp(direct, HVA(self->buf2), 8192));
}

TEST_F(io, prp1_with_offset)
{
	static char direct[4096];
	uint64_t b = self->buf + 0x204;	/* dword aligned */
	struct nvme_sqe sqe;

	IO_PROLOGUE();
	/* Fits in PRP1's page: PRP2 is ignored even if it is garbage. */
	fill(HVA(b), 1024, 5);
	rw_sqe(&sqe, OP_WRITE, 1, 300, 2);
	sqe.prp1 = b;
	sqe.prp2 = OUTSIDE_GPA + 0x123;
	ASSERT_EQ(SC_OK, SUBMIT(&sqe));
	ASSERT_EQ(0, bdev_io(self->dev, false, 300 * 512, direct, 1024));
	ASSERT_EQ(0, memcmp(direct, HVA(b), 1024));

	/* Crossing into a second page: PRP2 is that page. */
	b = self->buf + PG - 0x800;
	fill(HVA(b), 4096, 6);
	ASSERT_EQ(SC_OK, RW(OP_WRITE, 310, 8, b));
	ASSERT_EQ(0, bdev_io(self->dev, false, 310 * 512, direct, 4096));
	ASSERT_EQ(0, memcmp(direct, HVA(b), 4096));
	ASSERT_EQ(SC_OK, RW(OP_READ, 310, 8, self->buf2 + 0x10));
	ASSERT_EQ(0, memcmp(HVA(b), HVA(self->buf2 + 0x10), 4096));
}

TEST_F(io, prp2_second_page)
{
	static char direct[8192];
	uint64_t p1 = self->buf + 5 * PG, p2 = self->buf + 2 * PG;
	struct nvme_sqe sqe;

	IO_PROLOGUE();
	/* Two pages that are not adjacent, PRP2 before PRP1. */
	fill(HVA(p1), PG, 7);
	fill(HVA(p2), PG, 8);
	rw_sqe(&sqe, OP_WRITE, 1, 400, 16);
	sqe.prp1 = p1;
	sqe.prp2 = p2;
	ASSERT_EQ(SC_OK, SUBMIT(&sqe));
	ASSERT_EQ(0, bdev_io(self->dev, false, 400 * 512, direct, 8192));
	ASSERT_EQ(0, memcmp(direct, HVA(p1), PG));
	ASSERT_EQ(0, memcmp(direct + PG, HVA(p2), PG));
}

TEST_F(io, prp_list)
{
	static char direct[16 * 4096];
	uint64_t pages[16], list, *l;
	struct nvme_sqe sqe;
	int i;

	IO_PROLOGUE();
	list = g_alloc(&self->g, PG);
	l = HVA(list);
	/* 16 scattered pages, in reverse order. */
	for (i = 0; i < 16; i++) {
		pages[i] = self->buf + (uint64_t)(31 - 2 * i) * PG;
		fill(HVA(pages[i]), PG, 100 + i);
	}
	for (i = 1; i < 16; i++)
		l[i - 1] = htole64(pages[i]);
	rw_sqe(&sqe, OP_WRITE, 1, 1000, 128);
	sqe.prp1 = pages[0];
	sqe.prp2 = list;
	ASSERT_EQ(SC_OK, SUBMIT(&sqe));
	ASSERT_EQ(0, bdev_io(self->dev, false, 1000 * 512, direct, sizeof(direct)));
	for (i = 0; i < 16; i++)
		ASSERT_EQ(0, memcmp(direct + i * PG, HVA(pages[i]), PG))
			TH_LOG("page %d", i);
	/* Read back through a list into other pages. */
	memset(HVA(self->buf2), 0, 16 * PG);
	ASSERT_EQ(SC_OK, RW(OP_READ, 1000, 128, self->buf2));
	ASSERT_EQ(0, memcmp(direct, HVA(self->buf2), sizeof(direct)));
}

TEST_F(io, prp_list_chained)
{
	static char direct[8 * 4096];
	uint64_t l1, l2, *e1, *e2, data = self->buf;
	struct nvme_sqe sqe;
	int i;

	IO_PROLOGUE();
	l1 = g_alloc(&self->g, PG);
	l2 = g_alloc(&self->g, PG);
	e1 = HVA(l1 + PG - 16);
	e2 = HVA(l2);
	fill(HVA(data), 8 * PG, 9);
	/*
	 * 8 pages: PRP1 + 7 list entries.  The list starts 16 bytes before
	 * the end of its page: one data entry, then the last entry of the
	 * page points to the next list page holding the 6 others.
	 */
	e1[0] = htole64(data + PG);
	e1[1] = htole64(l2);
	for (i = 0; i < 6; i++)
		e2[i] = htole64(data + (2 + i) * PG);
	rw_sqe(&sqe, OP_WRITE, 1, 1200, 64);
	sqe.prp1 = data;
	sqe.prp2 = l1 + PG - 16;
	ASSERT_EQ(SC_OK, SUBMIT(&sqe));
	ASSERT_EQ(0, bdev_io(self->dev, false, 1200 * 512, direct, sizeof(direct)));
	ASSERT_EQ(0, memcmp(direct, HVA(data), sizeof(direct)));

	/* Read with a list whose last page slot is the only entry there. */
	memset(HVA(self->buf2), 0, 8 * PG);
	e1 = HVA(l1 + PG - 8);
	e1[0] = htole64(l2);
	for (i = 0; i < 7; i++)
		e2[i] = htole64(self->buf2 + (1 + i) * PG);
	rw_sqe(&sqe, OP_READ, 1, 1200, 64);
	sqe.prp1 = self->buf2;
	sqe.prp2 = l1 + PG - 8;
	ASSERT_EQ(SC_OK, SUBMIT(&sqe));
	ASSERT_EQ(0, memcmp(direct, HVA(self->buf2), sizeof(direct)));
}

TEST_F(io, mdts_transfer)
{
	static char direct[MDTS_BYTES];

	IO_PROLOGUE();
	/* 256 KiB with a page offset: PRP1 + 64 list entries. */
	fill(HVA(self->buf + 0x100), MDTS_BYTES, 10);
	ASSERT_EQ(SC_OK, RW(OP_WRITE, 8192, MDTS_BYTES >> 9, self->buf + 0x100));
	ASSERT_EQ(0, bdev_io(self->dev, false, 8192 * 512, direct, MDTS_BYTES));
	ASSERT_EQ(0, memcmp(direct, HVA(self->buf + 0x100), MDTS_BYTES));
	ASSERT_EQ(SC_OK, RW(OP_READ, 8192, MDTS_BYTES >> 9, self->buf2));
	ASSERT_EQ(0, memcmp(direct, HVA(self->buf2), MDTS_BYTES));
}

/*
 * Over MDTS: Invalid Field, and nothing moves: the backend keeps what it
 * held (checked on the backend itself) and a refused read leaves guest
 * memory as it was.
 */
TEST_F(io, over_mdts_invalid_field)
{
	static char before[MDTS_BYTES + 4096], after[MDTS_BYTES + 4096];
	size_t len = MDTS_BYTES + 512;

	IO_PROLOGUE();
	fill(before, sizeof(before), 31);
	ASSERT_EQ(0, bdev_io(self->dev, true, 8192 * 512, before, sizeof(before)));
	fill(HVA(self->buf), len, 32);
	ASSERT_EQ(ERR(SC_INVALID_FIELD),
		  RW(OP_WRITE, 8192, (MDTS_BYTES >> 9) + 1, self->buf));
	ASSERT_EQ(0, bdev_io(self->dev, false, 8192 * 512, after, sizeof(after)));
	EXPECT_EQ(0, memcmp(before, after, sizeof(after)))
		TH_LOG("a refused write reached the backend");

	fill(HVA(self->buf2), MDTS_BYTES + 4096, 33);
	memcpy(after, HVA(self->buf2), sizeof(after));
	ASSERT_EQ(ERR(SC_INVALID_FIELD),
		  RW(OP_READ, 8192, (MDTS_BYTES >> 9) + 8, self->buf2));
	ASSERT_EQ(ERR(SC_INVALID_FIELD), RW(OP_READ, 8192, 1024, self->buf2));
	EXPECT_EQ(0, memcmp(after, HVA(self->buf2), sizeof(after)))
		TH_LOG("a refused read wrote guest memory");
}

static void sgl_desc(struct nvme_sgl *d, uint64_t addr, uint32_t len,
		     uint8_t type)
{
	memset(d, 0, sizeof(*d));
	d->addr = htole64(addr);
	d->len = htole32(len);
	d->type = type;
}

TEST_F(io, sgl_single_data_block)
{
	static char direct[4096];
	uint64_t b = self->buf + 0x44;
	struct nvme_sqe sqe;

	IO_PROLOGUE();
	fill(HVA(b), 4096, 11);
	rw_sqe(&sqe, OP_WRITE, 1, 1500, 8);
	sqe.flags = PSDT_SGL;
	sgl_desc(&sqe.sgl, b, 4096, SGL_DATA);
	ASSERT_EQ(SC_OK, SUBMIT(&sqe));
	ASSERT_EQ(0, bdev_io(self->dev, false, 1500 * 512, direct, 4096));
	ASSERT_EQ(0, memcmp(direct, HVA(b), 4096));

	rw_sqe(&sqe, OP_READ, 1, 1500, 8);
	sqe.flags = PSDT_SGL;
	sgl_desc(&sqe.sgl, self->buf2 + 0x1004, 4096, SGL_DATA);
	ASSERT_EQ(SC_OK, SUBMIT(&sqe));
	ASSERT_EQ(0, memcmp(direct, HVA(self->buf2 + 0x1004), 4096));
}

TEST_F(io, sgl_segment_chain)
{
	static char direct[16384];
	uint64_t a = self->buf + 0x10, b = self->buf + 0x3000, c = self->buf + 0x8008;
	struct nvme_sgl *d1, *d2, *d3;
	uint64_t s1, s2, s3;
	struct nvme_sqe sqe;

	IO_PROLOGUE();
	s1 = g_alloc(&self->g, PG);
	s2 = g_alloc(&self->g, PG);
	s3 = g_alloc(&self->g, PG);
	d1 = HVA(s1);
	d2 = HVA(s2 + 0x100);
	d3 = HVA(s3);
	/*
	 * inline Segment -> [data 4K @a, Segment ->]
	 *                   [data 6K @b, Last Segment ->]
	 *                   [data 2K @c, data 4K @c+8K]
	 */
	fill(HVA(a), 4096, 12);
	fill(HVA(b), 6144, 13);
	fill(HVA(c), 2048, 14);
	fill(HVA(c + 8192), 4096, 15);
	sgl_desc(&d1[0], a, 4096, SGL_DATA);
	sgl_desc(&d1[1], s2 + 0x100, 32, SGL_SEG);
	sgl_desc(&d2[0], b, 6144, SGL_DATA);
	sgl_desc(&d2[1], s3, 32, SGL_LAST);
	sgl_desc(&d3[0], c, 2048, SGL_DATA);
	sgl_desc(&d3[1], c + 8192, 4096, SGL_DATA);
	rw_sqe(&sqe, OP_WRITE, 1, 1600, 32);
	sqe.flags = PSDT_SGL;
	sgl_desc(&sqe.sgl, s1, 32, SGL_SEG);
	ASSERT_EQ(SC_OK, SUBMIT(&sqe));
	ASSERT_EQ(0, bdev_io(self->dev, false, 1600 * 512, direct, 16384));
	ASSERT_EQ(0, memcmp(direct, HVA(a), 4096));
	ASSERT_EQ(0, memcmp(direct + 4096, HVA(b), 6144));
	ASSERT_EQ(0, memcmp(direct + 10240, HVA(c), 2048));
	ASSERT_EQ(0, memcmp(direct + 12288, HVA(c + 8192), 4096));

	/* Inline Last Segment straight to two data blocks, for a read. */
	memset(HVA(self->buf2), 0, 3 * PG);
	sgl_desc(&d3[0], self->buf2 + 2 * PG, 8192, SGL_DATA);
	sgl_desc(&d3[1], self->buf2, 8192, SGL_DATA);
	rw_sqe(&sqe, OP_READ, 1, 1600, 32);
	sqe.flags = PSDT_SGL;
	sgl_desc(&sqe.sgl, s3, 32, SGL_LAST);
	ASSERT_EQ(SC_OK, SUBMIT(&sqe));
	ASSERT_EQ(0, memcmp(direct, HVA(self->buf2 + 2 * PG), 8192));
	ASSERT_EQ(0, memcmp(direct + 8192, HVA(self->buf2), 8192));
}

/* An 8-LBA write whose inline SGL descriptor is @d. */
static uint16_t sgl_write(struct __test_metadata *_metadata, struct guest *g,
			  const struct nvme_sgl *d)
{
	struct nvme_sqe sqe;

	rw_sqe(&sqe, OP_WRITE, 1, 1700, 8);
	sqe.flags = PSDT_SGL;
	sqe.sgl = *d;
	return __submit(_metadata, g, 1, &sqe, NULL);
}

TEST_F(io, sgl_errors)
{
	struct guest *g = &self->g;
	uint64_t seg, b = self->buf;
	struct nvme_sgl *s, d;
	uint16_t st;

	IO_PROLOGUE();
	seg = g_alloc(g, PG);
	s = HVA(seg);
	/* Granularity: address, then lengths not a multiple of 4. */
	sgl_desc(&d, b + 2, 4096, SGL_DATA);
	EXPECT_EQ(ERR(SC_SGL_GRANULARITY), sgl_write(_metadata, g, &d));
	sgl_desc(&s[0], b, 4094, SGL_DATA);
	sgl_desc(&s[1], b + 8192, 2, SGL_DATA);
	sgl_desc(&d, seg, 32, SGL_LAST);
	EXPECT_EQ(ERR(SC_SGL_GRANULARITY), sgl_write(_metadata, g, &d));
	/* Data length not equal to the transfer length. */
	sgl_desc(&d, b, 2048, SGL_DATA);
	EXPECT_EQ(ERR(SC_SGL_LEN_INVALID), sgl_write(_metadata, g, &d));
	sgl_desc(&d, b, 8192, SGL_DATA);
	EXPECT_EQ(ERR(SC_SGL_LEN_INVALID), sgl_write(_metadata, g, &d));
	sgl_desc(&s[0], b, 2048, SGL_DATA);
	sgl_desc(&s[1], b + 8192, 1024, SGL_DATA);
	sgl_desc(&d, seg, 32, SGL_LAST);
	EXPECT_EQ(ERR(SC_SGL_LEN_INVALID), sgl_write(_metadata, g, &d));
	/* Descriptor types. */
	sgl_desc(&d, b, 4096, SGL_BITBUCKET);
	EXPECT_EQ(ERR(SC_SGL_TYPE_INVALID), sgl_write(_metadata, g, &d));
	sgl_desc(&d, b, 4096, 0xe0);
	EXPECT_EQ(ERR(SC_SGL_TYPE_INVALID), sgl_write(_metadata, g, &d));
	sgl_desc(&s[0], b, 2048, SGL_DATA);
	sgl_desc(&s[1], b + 8192, 2048, SGL_BITBUCKET);
	sgl_desc(&d, seg, 32, SGL_LAST);
	EXPECT_EQ(ERR(SC_SGL_TYPE_INVALID), sgl_write(_metadata, g, &d));
	/* Subtype other than address: some error, not success. */
	sgl_desc(&d, b, 4096, SGL_DATA | 0x1);
	st = sgl_write(_metadata, g, &d);
	EXPECT_NE(0, st & 0xff);
	EXPECT_NE(0, st & DNR);
	/* A Segment descriptor inside a Last Segment. */
	sgl_desc(&s[0], b, 2048, SGL_DATA);
	sgl_desc(&s[1], seg + 0x800, 16, SGL_SEG);
	sgl_desc(&d, seg, 32, SGL_LAST);
	EXPECT_EQ(ERR(SC_SGL_LAST_INVALID), sgl_write(_metadata, g, &d));
	/* Segment lengths: 0, not a multiple of 16. */
	sgl_desc(&d, seg, 0, SGL_SEG);
	EXPECT_EQ(ERR(SC_SGL_COUNT_INVALID), sgl_write(_metadata, g, &d));
	sgl_desc(&d, seg, 24, SGL_LAST);
	EXPECT_EQ(ERR(SC_SGL_COUNT_INVALID), sgl_write(_metadata, g, &d));
	/* A segment that points to itself forever. */
	sgl_desc(&s[0], seg, 16, SGL_SEG);
	sgl_desc(&d, seg, 16, SGL_SEG);
	EXPECT_EQ(ERR(SC_SGL_COUNT_INVALID), sgl_write(_metadata, g, &d));
	/* Outside the memory table: data block, then segment list. */
	sgl_desc(&d, OUTSIDE_GPA, 4096, SGL_DATA);
	EXPECT_EQ(ERR(SC_DATA_XFER), sgl_write(_metadata, g, &d));
	sgl_desc(&d, OUTSIDE_GPA, 32, SGL_LAST);
	EXPECT_EQ(ERR(SC_DATA_XFER), sgl_write(_metadata, g, &d));
	/* And a valid one still works. */
	sgl_desc(&d, b, 4096, SGL_DATA);
	EXPECT_EQ(SC_OK, sgl_write(_metadata, g, &d));
}

TEST_F(io, sgl_needs_feature)
{
	struct guest *g = &self->g;
	struct nvme_sgl d;

	IO_PROLOGUE();
	ASSERT_EQ(0, g_delete(g, true, 1));
	ASSERT_EQ(0, g_delete(g, false, 1));
	ASSERT_EQ(0, g_features(g, VHOST_NVME_F_ALL & ~VHOST_NVME_F_SGL));
	ASSERT_EQ(0, g_create_cq(g, 1, 64, true));
	ASSERT_EQ(0, g_create_sq(g, 1, 64, 1));
	sgl_desc(&d, self->buf, 4096, SGL_DATA);
	ASSERT_EQ(ERR(SC_INVALID_FIELD), sgl_write(_metadata, g, &d));
	/* PRPs still work. */
	ASSERT_EQ(SC_OK, RW(OP_READ, 0, 8, self->buf));
}

TEST_F(io, cq_wrap_and_phase)
{
	struct guest *g = &self->g;
	struct vhost_nvme_queue_state st;
	struct nvme_cqe cqe;
	struct nvme_sqe sqe;
	unsigned int k = 0, i, b;

	IO_PROLOGUE();
	ASSERT_EQ(0, g_create_cq(g, 2, 4, true));
	ASSERT_EQ(0, g_create_sq(g, 2, 8, 2));
	/* 20 commands one at a time: the phase flips every 4 entries. */
	for (i = 0; i < 20; i++, k++) {
		rw_sqe(&sqe, OP_READ, 1, i, 1);
		sqe.prp1 = self->buf + i * 512;
		ASSERT_EQ(SC_OK, __submit(_metadata, g, 2, &sqe, &cqe));
		ASSERT_EQ((int)(1 ^ ((k / 4) & 1)), cqe.status & 1) TH_LOG("entry %u", k);
		ASSERT_EQ(2, cqe.sq_id);
		ASSERT_EQ((i + 1) % 8, cqe.sq_head);
	}
	/* Then batches of 3 (the most a CQ of 4 holds). */
	for (b = 0; b < 5; b++) {
		uint16_t cid[3];

		for (i = 0; i < 3; i++) {
			rw_sqe(&sqe, OP_READ, 1, i, 1);
			sqe.prp1 = self->buf;
			sqe.cid = 0;
			cid[i] = sq_put(g, 2, &sqe);
		}
		sq_ring(g, 2);
		for (i = 0; i < 3; i++, k++) {
			ASSERT_EQ(0, wait_cqe(g, 2, &cqe, WAIT_MS));
			ASSERT_EQ(cid[i], cqe.cid);
			ASSERT_EQ(0, cqe.status >> 1);
			ASSERT_EQ((int)(1 ^ ((k / 4) & 1)), cqe.status & 1);
		}
	}
	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_CQ, 2, &st));
	ASSERT_EQ(k % 4, st.tail);
	ASSERT_EQ(1 ^ ((k / 4) & 1), st.phase);
	ASSERT_EQ(k, st.commands);
}

TEST_F(io, two_sqs_share_cq)
{
	struct guest *g = &self->g;
	struct nvme_cqe cqe;
	struct nvme_sqe sqe;
	uint16_t owner[65536] = { 0 };
	unsigned int i, seen[4] = { 0 };
	uint16_t last_head[4] = { 0 };

	IO_PROLOGUE();
	ASSERT_EQ(0, g_create_cq(g, 2, 32, true));
	ASSERT_EQ(0, g_create_sq(g, 2, 8, 2));
	ASSERT_EQ(0, g_create_sq(g, 3, 16, 2));
	for (i = 0; i < 5; i++) {
		rw_sqe(&sqe, OP_READ, 1, i, 1);
		sqe.prp1 = self->buf;
		sqe.cid = 0;
		owner[sq_put(g, 2, &sqe)] = 2;
		sqe.cid = 0;
		owner[sq_put(g, 3, &sqe)] = 3;
	}
	sq_ring(g, 2);
	sq_ring(g, 3);
	for (i = 0; i < 10; i++) {
		ASSERT_EQ(0, wait_cqe(g, 2, &cqe, WAIT_MS)) TH_LOG("cqe %u", i);
		ASSERT_EQ(0, cqe.status >> 1);
		ASSERT_NE(0, owner[cqe.cid]);
		ASSERT_EQ(owner[cqe.cid], cqe.sq_id);
		owner[cqe.cid] = 0;
		seen[cqe.sq_id]++;
		last_head[cqe.sq_id] = cqe.sq_head;
	}
	ASSERT_EQ(5U, seen[2]);
	ASSERT_EQ(5U, seen[3]);
	ASSERT_EQ(5, last_head[2]);
	ASSERT_EQ(5, last_head[3]);
	ASSERT_FALSE(cq_peek(g, 2, NULL));
}

TEST_F(io, cq_full_backpressure)
{
	struct guest *g = &self->g;
	struct vhost_nvme_queue_state st;
	struct nvme_cqe cqe;
	struct nvme_sqe sqe;
	unsigned int i, got = 0;
	long deadline;

	IO_PROLOGUE();
	ASSERT_EQ(0, g_create_cq(g, 2, 4, true));
	ASSERT_EQ(0, g_create_sq(g, 2, 16, 2));
	g->cq[2].manual_head = true;
	for (i = 0; i < 8; i++) {
		rw_sqe(&sqe, OP_READ, 1, i, 1);
		sqe.prp1 = self->buf;
		sqe.cid = 0;
		sq_put(g, 2, &sqe);
	}
	sq_ring(g, 2);
	ASSERT_EQ(0, wait_visible(g, 2, 3, WAIT_MS));
	/* The module reports the CQ full and holds the rest back. */
	deadline = now_ms() + WAIT_MS;
	do {
		ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_CQ, 2, &st));
		if (st.flags & VHOST_NVME_QS_CQ_FULL)
			break;
		msleep(5);
	} while (now_ms() < deadline);
	ASSERT_NE(0U, st.flags & VHOST_NVME_QS_CQ_FULL);
	ASSERT_EQ(3, st.tail);
	ASSERT_EQ(3ULL, st.commands);
	msleep(QUIET_MS);
	/* Never a 4th entry: the slot at index 3 is still untouched. */
	ASSERT_EQ(0, le16toh(((struct nvme_cqe *)g->cq[2].ring)[3].status));
	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_CQ, 2, &st));
	ASSERT_EQ(3ULL, st.commands);

	/* Consume, publish the head, and the rest comes (3 + 2). */
	while (got < 8) {
		unsigned int n = 0;

		while (cq_peek(g, 2, &cqe)) {
			ASSERT_EQ(0, cqe.status >> 1);
			cq_pop(g, 2);
			n++;
			got++;
		}
		ASSERT_GE(3U, n);
		if (got == 8)
			break;
		cq_ring(g, 2);
		ASSERT_EQ(0, wait_visible(g, 2, got + 3 <= 8 ? 3 : 8 - got,
					  WAIT_MS)) TH_LOG("after %u", got);
	}
	ASSERT_EQ(8U, got);
	cq_ring(g, 2);
	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_CQ, 2, &st));
	ASSERT_EQ(0U, st.flags & VHOST_NVME_QS_CQ_FULL);
	ASSERT_EQ(8ULL, st.commands);
	ASSERT_EQ(0, st.tail);
	ASSERT_EQ(1, st.phase);	/* 8 entries = two wraps of 4 */
	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_SQ, 2, &st));
	ASSERT_EQ(8ULL, st.commands);
	ASSERT_EQ(0U, st.inflight);
}

/*
 * A CQ created without a kick eventfd (the uapi allows -1): once full, the
 * head the guest publishes later must still be seen, or the queue stays
 * full forever.
 */
TEST_F(io, cq_full_without_kick)
{
	struct guest *g = &self->g;
	struct q *cq = &g->cq[2];
	struct vhost_nvme_cq c = { .qid = 2, .size = 4, .kickfd = -1,
				   .flags = VHOST_NVME_CQ_F_IRQ_ENABLED };
	struct vhost_nvme_queue_state st;
	struct nvme_cqe cqe;
	struct nvme_sqe sqe;
	unsigned int i, got = 0;
	long deadline;

	IO_PROLOGUE();
	cq->gpa = g_alloc(g, 4 * sizeof(struct nvme_cqe));
	cq->ring = g_hva(g, cq->gpa);
	cq->irqfd = new_eventfd();
	c.addr = cq->gpa;
	c.irqfd = cq->irqfd;
	ASSERT_EQ(0, xioctl(g->fd, VHOST_NVME_CREATE_CQ, &c));
	cq->live = true;
	cq->size = 4;
	cq->phase = 1;
	cq->strict_irq = true;
	ASSERT_EQ(0, g_create_sq(g, 2, 16, 2));
	for (i = 0; i < 8; i++) {
		rw_sqe(&sqe, OP_READ, 1, i, 1);
		sqe.prp1 = self->buf;
		sqe.cid = 0;
		sq_put(g, 2, &sqe);
	}
	sq_ring(g, 2);
	/*
	 * 3 entries fill a CQ of 4.  Wait until the module reports it full
	 * and the backend has had the time to complete every read: from then
	 * on nothing but the head the guest publishes can move the queue
	 * (a completion arriving later would make the worker look again).
	 */
	deadline = now_ms() + WAIT_MS;
	do {
		ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_CQ, 2, &st));
		if (st.flags & VHOST_NVME_QS_CQ_FULL)
			break;
		msleep(5);
	} while (now_ms() < deadline);
	ASSERT_NE(0U, st.flags & VHOST_NVME_QS_CQ_FULL);
	msleep(QUIET_MS);
	/* Each pop publishes the head, with no kick. */
	while (got < 8) {
		ASSERT_EQ(0, wait_cqe(g, 2, &cqe, WAIT_MS))
			TH_LOG("entry %u never came after the head moved", got);
		ASSERT_EQ(0, cqe.status >> 1);
		got++;
	}
}

TEST_F(io, invalid_opcode)
{
	struct nvme_sqe sqe;
	static const uint8_t ops[] = { 0x7f, 0x05, 0x04, 0xff, 0x80 };
	unsigned int i;

	IO_PROLOGUE();
	for (i = 0; i < sizeof(ops); i++) {
		rw_sqe(&sqe, ops[i], 1, 0, 1);
		sqe.prp1 = self->buf;
		EXPECT_EQ(ERR(SC_INVALID_OPCODE), SUBMIT(&sqe))
			TH_LOG("opcode 0x%x", ops[i]);
	}
}

TEST_F(io, invalid_field)
{
	struct nvme_sqe sqe;
	static const uint8_t flags[] = { 0x01, 0x02, 0x03, 0x04, 0x20, 0x3c,
					 0x80, 0xc0 };
	unsigned int i;

	IO_PROLOGUE();
	/* FUSE, reserved CDW0 bits, PSDT 10b/11b. */
	for (i = 0; i < sizeof(flags); i++) {
		rw_sqe(&sqe, OP_READ, 1, 0, 8);
		sqe.prp1 = self->buf;
		sqe.flags = flags[i];
		EXPECT_EQ(ERR(SC_INVALID_FIELD), SUBMIT(&sqe))
			TH_LOG("flags 0x%02x", flags[i]);
	}
	/* Read/Write CDW12 bits 25:16. */
	for (i = 16; i <= 25; i += 3) {
		rw_sqe(&sqe, i & 1 ? OP_READ : OP_WRITE, 1, 0, 8);
		sqe.prp1 = self->buf;
		sqe.cdw12 |= htole32(1U << i);
		EXPECT_EQ(ERR(SC_INVALID_FIELD), SUBMIT(&sqe)) TH_LOG("bit %u", i);
	}
	rw_sqe(&sqe, OP_READ, 1, 0, 8);
	sqe.prp1 = self->buf;
	sqe.cdw12 |= htole32(1U << 25);
	EXPECT_EQ(ERR(SC_INVALID_FIELD), SUBMIT(&sqe));
}

TEST_F(io, invalid_namespace)
{
	struct guest *g = &self->g;
	uint32_t ns[] = { 0, 2, g->info.max_nsid, g->info.max_nsid + 1,
			  0xffffffff };
	unsigned int i;

	IO_PROLOGUE();
	for (i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		if (ns[i] == 1)
			continue;
		EXPECT_EQ(ERR(SC_INVALID_NS),
			  rw_q(_metadata, g, 1, OP_READ, ns[i], 0, 8, self->buf, 0))
			TH_LOG("nsid %u", ns[i]);
		EXPECT_EQ(ERR(SC_INVALID_NS),
			  rw_q(_metadata, g, 1, OP_WRITE, ns[i], 0, 8, self->buf, 0))
			TH_LOG("nsid %u", ns[i]);
	}
	/* After detach, ns 1 is invalid too. */
	ASSERT_EQ(0, g_detach(g, 1));
	EXPECT_EQ(ERR(SC_INVALID_NS), RW(OP_READ, 0, 8, self->buf));
	ASSERT_EQ(0, g_attach(g, 1, self->bfd, 0, 0, NULL));
	EXPECT_EQ(SC_OK, RW(OP_READ, 0, 8, self->buf));
}

TEST_F(io, lba_out_of_range)
{
	uint64_t n = self->ns.nsze;

	IO_PROLOGUE();
	EXPECT_EQ(ERR(SC_LBA_RANGE), RW(OP_READ, n, 1, self->buf));
	EXPECT_EQ(ERR(SC_LBA_RANGE), RW(OP_READ, n - 1, 2, self->buf));
	EXPECT_EQ(ERR(SC_LBA_RANGE), RW(OP_WRITE, n - 7, 8, self->buf));
	EXPECT_EQ(ERR(SC_LBA_RANGE), RW(OP_READ, UINT64_MAX, 1, self->buf));
	EXPECT_EQ(ERR(SC_LBA_RANGE), RW(OP_READ, UINT64_MAX - 3, 8, self->buf));
	EXPECT_EQ(ERR(SC_LBA_RANGE), RW(OP_READ, 1ULL << 63, 8, self->buf));
	EXPECT_EQ(SC_OK, RW(OP_READ, n - 8, 8, self->buf));
}

TEST_F(io, prp_offset_invalid)
{
	uint64_t list, *l;
	struct nvme_sqe sqe;

	IO_PROLOGUE();
	list = g_alloc(&self->g, PG);
	l = HVA(list);
	/* PRP1 not dword aligned. */
	rw_sqe(&sqe, OP_READ, 1, 0, 1);
	sqe.prp1 = self->buf + 2;
	EXPECT_EQ(ERR(SC_PRP_OFFSET_INVALID), SUBMIT(&sqe));
	/* PRP2 as a data page with an offset. */
	rw_sqe(&sqe, OP_READ, 1, 0, 16);
	sqe.prp1 = self->buf;
	sqe.prp2 = self->buf + PG + 0x200;
	EXPECT_EQ(ERR(SC_PRP_OFFSET_INVALID), SUBMIT(&sqe));
	/* PRP list pointer not qword aligned. */
	rw_sqe(&sqe, OP_READ, 1, 0, 32);
	sqe.prp1 = self->buf;
	sqe.prp2 = list + 4;
	EXPECT_EQ(ERR(SC_PRP_OFFSET_INVALID), SUBMIT(&sqe));
	/* A list entry with an offset. */
	l[0] = htole64(self->buf + PG);
	l[1] = htole64(self->buf + 2 * PG + 0x10);
	l[2] = htole64(self->buf + 3 * PG);
	rw_sqe(&sqe, OP_READ, 1, 0, 32);
	sqe.prp1 = self->buf;
	sqe.prp2 = list;
	EXPECT_EQ(ERR(SC_PRP_OFFSET_INVALID), SUBMIT(&sqe));
	/* The same list, fixed, works. */
	l[1] = htole64(self->buf + 2 * PG);
	EXPECT_EQ(SC_OK, SUBMIT(&sqe));
}

TEST_F(io, data_transfer_error)
{
	uint64_t list, *l;
	struct nvme_sqe sqe;

	IO_PROLOGUE();
	list = g_alloc(&self->g, PG);
	l = HVA(list);
	rw_sqe(&sqe, OP_WRITE, 1, 0, 8);
	sqe.prp1 = OUTSIDE_GPA;
	EXPECT_EQ(ERR(SC_DATA_XFER), SUBMIT(&sqe)) TH_LOG("PRP1");
	rw_sqe(&sqe, OP_READ, 1, 0, 8);
	sqe.prp1 = 0x1000;	/* below the guest base */
	EXPECT_EQ(ERR(SC_DATA_XFER), SUBMIT(&sqe)) TH_LOG("PRP1 low");
	rw_sqe(&sqe, OP_READ, 1, 0, 16);
	sqe.prp1 = self->buf;
	sqe.prp2 = OUTSIDE_GPA;
	EXPECT_EQ(ERR(SC_DATA_XFER), SUBMIT(&sqe)) TH_LOG("PRP2");
	/* The last page of guest memory, crossing into nothing. */
	rw_sqe(&sqe, OP_READ, 1, 0, 16);
	sqe.prp1 = GUEST_GPA + GUEST_SIZE - PG;
	sqe.prp2 = GUEST_GPA + GUEST_SIZE;
	EXPECT_EQ(ERR(SC_DATA_XFER), SUBMIT(&sqe)) TH_LOG("PRP2 at end");
	rw_sqe(&sqe, OP_READ, 1, 0, 32);
	sqe.prp1 = self->buf;
	sqe.prp2 = OUTSIDE_GPA;
	EXPECT_EQ(ERR(SC_DATA_XFER), SUBMIT(&sqe)) TH_LOG("list page");
	l[0] = htole64(self->buf + PG);
	l[1] = htole64(OUTSIDE_GPA);
	l[2] = htole64(self->buf + 3 * PG);
	sqe.prp2 = list;
	EXPECT_EQ(ERR(SC_DATA_XFER), SUBMIT(&sqe)) TH_LOG("list entry");
	/* Chained list pointer outside. */
	sqe.prp2 = list + PG - 16;
	l[510] = htole64(self->buf + PG);
	l[511] = htole64(OUTSIDE_GPA);
	EXPECT_EQ(ERR(SC_DATA_XFER), SUBMIT(&sqe)) TH_LOG("chained list");
}

/* Write @val to a sysfs or debugfs file. */
static bool put_str(const char *file, const char *val)
{
	FILE *f = fopen(file, "w");
	bool ok;

	if (!f)
		return false;
	ok = fputs(val, f) >= 0;
	return !fclose(f) && ok;
}

#define FMR "/sys/kernel/debug/fail_make_request/"

/*
 * The block layer fails the backend's bios (CONFIG_FAIL_MAKE_REQUEST, the
 * debug-kernel lane): every command that reaches the backend gets a media
 * or internal error, none is lost or hangs, and I/O works again once the
 * fault is gone.
 */
TEST_F(io, backend_bio_errors)
{
	char name[64], mif[160];
	struct nvme_sqe sqe;
	int i;

	IO_PROLOGUE();
	NEED_BDEV();
	if (access(FMR "probability", W_OK))
		SKIP(return, "no %s (CONFIG_FAIL_MAKE_REQUEST, debugfs)", FMR);
	dev_name(self->dev, name, sizeof(name));
	snprintf(mif, sizeof(mif), "/sys/block/%s/make-it-fail", name);
	fill(HVA(self->buf), 8192, 21);
	ASSERT_EQ(SC_OK, RW(OP_WRITE, 6000, 16, self->buf));
	ASSERT_TRUE(put_str(FMR "verbose", "0"));
	ASSERT_TRUE(put_str(FMR "interval", "1"));
	ASSERT_TRUE(put_str(FMR "times", "-1"));
	ASSERT_TRUE(put_str(FMR "probability", "100"));
	ASSERT_TRUE(put_str(mif, "1")) TH_LOG("%s", mif);

	for (i = 0; i < 8; i++) {
		EXPECT_EQ(SC_READ_ERROR, RW(OP_READ, 6000, 16, self->buf2));
		EXPECT_EQ(SC_WRITE_FAULT, RW(OP_WRITE, 6000 + 16 * i, 8, self->buf));
	}
	if (queue_attr_is(self->dev, "write_cache", "write back")) {
		memset(&sqe, 0, sizeof(sqe));
		sqe.opcode = OP_FLUSH;
		sqe.nsid = htole32(1);
		EXPECT_EQ(SC_INTERNAL, SUBMIT(&sqe));
	}

	put_str(mif, "0");
	put_str(FMR "probability", "0");
	memset(HVA(self->buf2), 0, 8192);
	ASSERT_EQ(SC_OK, RW(OP_READ, 6000, 16, self->buf2));
	EXPECT_EQ(0, memcmp(HVA(self->buf), HVA(self->buf2), 8192));
}

TEST_F(io, flush_reaches_backend)
{
	struct nvme_sqe sqe;
	uint64_t before, after;

	IO_PROLOGUE();
	NEED_SDEV();
	if (!queue_attr_is(self->sdev, "write_cache", "write back"))
		SKIP(return, "%s: write cache is not \"write back\"", self->sdev);
	before = dev_stat(self->sdev, STAT_FLUSH_IOS);
	ASSERT_NE(UINT64_MAX, before);
	fill(HVA(self->buf), 4096, 20);
	ASSERT_EQ(SC_OK, RW(OP_WRITE, 5000, 8, self->buf));
	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = OP_FLUSH;
	sqe.nsid = htole32(1);
	ASSERT_EQ(SC_OK, SUBMIT(&sqe));
	after = dev_stat(self->sdev, STAT_FLUSH_IOS);
	ASSERT_LT(before, after);
	/* Flush of a namespace that is not attached. */
	sqe.nsid = htole32(2);
	ASSERT_EQ(ERR(SC_INVALID_NS), SUBMIT(&sqe));
	sqe.nsid = 0;
	ASSERT_EQ(ERR(SC_INVALID_NS), SUBMIT(&sqe));
}

TEST_F(io, fua_write)
{
	static char direct[4096];
	uint64_t before, after;

	IO_PROLOGUE();
	before = dev_stat(self->sdev, STAT_FLUSH_IOS);
	if (self->sdev[0])
		ASSERT_NE(UINT64_MAX, before);
	fill(HVA(self->buf), 4096, 21);
	ASSERT_EQ(SC_OK, rw_q(_metadata, &self->g, 1, OP_WRITE, 1, 5100, 8,
			      self->buf, RW_FUA));
	after = dev_stat(self->sdev, STAT_FLUSH_IOS);
	ASSERT_EQ(0, bdev_io(self->dev, false, 5100 * 512, direct, 4096));
	ASSERT_EQ(0, memcmp(direct, HVA(self->buf), 4096));
	/*
	 * With a volatile write cache and no native FUA the block layer
	 * turns FUA into a post-flush, which is counted.  A device with
	 * native FUA (null_blk with cache_size) sees a FUA write instead.
	 * A file's FUA is a data sync, which flushes the cache of the device
	 * under its file system.
	 */
	if (self->sdev[0] &&
	    queue_attr_is(self->sdev, "write_cache", "write back") &&
	    queue_attr_is(self->sdev, "fua", "0")) {
		ASSERT_LE(before + 1, after);
	} else {
		TH_LOG("%s: native FUA, no write cache or no block device: flush count not checked",
		       self->dev);
	}
	/* FUA on a read is fine too. */
	ASSERT_EQ(SC_OK, rw_q(_metadata, &self->g, 1, OP_READ, 1, 5100, 8,
			      self->buf2, RW_FUA));
	ASSERT_EQ(0, memcmp(direct, HVA(self->buf2), 4096));
}

/* ---- block tracepoints: what reached the backend ------------------- */

#define TRACEFS		"/sys/kernel/tracing"
#define BIO_EVENT	TRACEFS "/events/block/block_bio_queue/enable"

/* bio_trace_start() enabled the event itself (bio_trace_stop() disables). */
static bool bio_trace_owned;

/*
 * Start recording block_bio_queue; false if tracefs is not available.  If
 * the event is already enabled (trace_event=block:block_bio_queue on the
 * kernel command line, as the test VM boots), only the ring buffer is
 * switched on and off: enabling or disabling a tracepoint patches kernel
 * text with cross-CPU IPIs, which under TCG sometimes hang the VM.
 */
static bool bio_trace_start(void)
{
	char on[4] = "";
	FILE *f;

	if (access(BIO_EVENT, W_OK))
		mount("nodev", TRACEFS, "tracefs", 0, NULL);
	if (access(BIO_EVENT, W_OK))
		return false;
	f = fopen(BIO_EVENT, "r");
	if (f) {
		if (!fgets(on, sizeof(on), f))
			on[0] = 0;
		fclose(f);
	}
	bio_trace_owned = on[0] != '1';
	return put_str(TRACEFS "/tracing_on", "0") &&
	       put_str(TRACEFS "/trace", "") &&
	       (!bio_trace_owned || put_str(BIO_EVENT, "1")) &&
	       put_str(TRACEFS "/tracing_on", "1");
}

/* Stop recording; returns the trace (free it) or NULL. */
static char *bio_trace_stop(void)
{
	size_t len = 0, cap = 1 << 16;
	char *buf = malloc(cap);
	ssize_t n;
	int fd;

	put_str(TRACEFS "/tracing_on", "0");
	if (bio_trace_owned)
		put_str(BIO_EVENT, "0");
	fd = open(TRACEFS "/trace", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || !buf) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += n;
		if (cap - len < 4096) {
			char *nb = realloc(buf, cap *= 2);

			if (!nb)
				break;
			buf = nb;
		}
	}
	buf[len] = 0;
	close(fd);
	return buf;
}

/*
 * The rwbs string of the first bio queued on @path at @sector (any sector
 * if @sector is UINT64_MAX), or "" if none; with @rwbs == NULL just count
 * the bios whose rwbs contains @flag.  rwbs (blk_fill_rwbs()): 'F' first
 * for a preflush, the operation (R, W, D, N), then 'F' for FUA, 'S' sync.
 */
static int bio_trace_find(const char *trace, const char *path,
			  uint64_t sector, char *rwbs, size_t len)
{
	struct stat st;
	char key[32];
	const char *p = trace;
	int found = 0;

	if (stat(path, &st))
		return -1;
	snprintf(key, sizeof(key), " %u,%u ", major(st.st_rdev),
		 minor(st.st_rdev));
	if (rwbs)
		rwbs[0] = 0;
	while ((p = strstr(p, key))) {
		char r[16];
		unsigned long long sec;
		unsigned int nr;

		p += strlen(key);
		if (sscanf(p, "%15s %llu + %u", r, &sec, &nr) != 3)
			continue;
		if (sector != UINT64_MAX && sec != sector)
			continue;
		found++;
		if (rwbs && found == 1)
			snprintf(rwbs, len, "%s", r);
	}
	return found;
}

/* The rwbs of a bio carries FUA: the 'F' after the operation letter. */
static bool rwbs_fua(const char *rwbs)
{
	const char *op = strpbrk(rwbs, "RWDN");

	return op && op[1] == 'F';
}

static bool rwbs_preflush(const char *rwbs)
{
	return rwbs[0] == 'F';
}

/*
 * What the backend receives, seen at the block layer's bio tracepoint:
 * FUA on a FUA write and only there (not on a plain write, not on a Read
 * with FUA set, which later kernels refuse), and a preflush for a Flush
 * and for nothing else.
 */
TEST_F(io, fua_and_flush_reach_backend)
{
	char rwbs[16];
	struct nvme_sqe sqe;
	char *trace;

	IO_PROLOGUE();
	NEED_BDEV();
	if (!bio_trace_start())
		SKIP(return, "no tracefs with block tracepoints");
	fill(HVA(self->buf), 4096, 22);
	ASSERT_EQ(SC_OK, RW(OP_WRITE, 6000, 8, self->buf));
	ASSERT_EQ(SC_OK, rw_q(_metadata, &self->g, 1, OP_WRITE, 1, 6008, 8,
			      self->buf, RW_FUA));
	ASSERT_EQ(SC_OK, rw_q(_metadata, &self->g, 1, OP_READ, 1, 6016, 8,
			      self->buf2, RW_FUA));
	ASSERT_EQ(SC_OK, RW(OP_READ, 6024, 8, self->buf2));
	trace = bio_trace_stop();
	ASSERT_NE(NULL, trace);

	ASSERT_LE(1, bio_trace_find(trace, self->dev, 6000, rwbs, sizeof(rwbs)));
	EXPECT_FALSE(rwbs_fua(rwbs)) TH_LOG("plain write: %s", rwbs);
	EXPECT_FALSE(rwbs_preflush(rwbs)) TH_LOG("plain write: %s", rwbs);
	ASSERT_LE(1, bio_trace_find(trace, self->dev, 6008, rwbs, sizeof(rwbs)));
	EXPECT_TRUE(rwbs_fua(rwbs)) TH_LOG("FUA write: %s", rwbs);
	ASSERT_LE(1, bio_trace_find(trace, self->dev, 6016, rwbs, sizeof(rwbs)));
	EXPECT_EQ('R', rwbs[0]) TH_LOG("FUA read: %s", rwbs);
	EXPECT_FALSE(rwbs_fua(rwbs)) TH_LOG("FUA read reached the backend as %s",
					   rwbs);
	ASSERT_LE(1, bio_trace_find(trace, self->dev, 6024, rwbs, sizeof(rwbs)));
	EXPECT_FALSE(rwbs_fua(rwbs)) TH_LOG("plain read: %s", rwbs);
	/* No guest Flush yet: no preflush bio at sector 0 either. */
	if (bio_trace_find(trace, self->dev, 0, rwbs, sizeof(rwbs)) > 0) {
		EXPECT_FALSE(rwbs_preflush(rwbs)) TH_LOG("flush without a Flush");
	}
	free(trace);

	ASSERT_TRUE(bio_trace_start());
	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = OP_FLUSH;
	sqe.nsid = htole32(1);
	ASSERT_EQ(SC_OK, SUBMIT(&sqe));
	trace = bio_trace_stop();
	ASSERT_NE(NULL, trace);
	ASSERT_LE(1, bio_trace_find(trace, self->dev, UINT64_MAX, rwbs,
				    sizeof(rwbs)));
	EXPECT_TRUE(rwbs_preflush(rwbs)) TH_LOG("Flush reached the backend as %s",
					       rwbs);
	free(trace);
}

/* ---- deleting a SQ: aborts, discards, drains --------------------------- */

/* Queue @n reads of @buf on SQ @qid and ring, without the device fetching. */
static void put_reads(struct guest *g, uint16_t qid, unsigned int n,
		      uint64_t buf, uint16_t *cid)
{
	struct nvme_sqe sqe;
	unsigned int i;

	for (i = 0; i < n; i++) {
		rw_sqe(&sqe, OP_READ, 1, i * 8, 8);
		sqe.prp1 = buf;
		cid[i] = sq_put(g, qid, &sqe);
	}
	sq_ring(g, qid);
}

/*
 * DELETE_SQ is the NVMe Delete I/O Submission Queue: entries the guest
 * queued and the device had not fetched (here: quiesced) complete with
 * Command Aborted due to SQ Deletion (SCT 0, SC 08h, DNR clear), in order,
 * and nothing of them reaches guest memory.
 */
TEST_F(io, delete_sq_aborts_unfetched)
{
	struct guest *g = &self->g;
	struct nvme_cqe cqe;
	uint16_t cid[3];
	unsigned int i;

	IO_PROLOGUE();
	memset(HVA(self->buf), 0x5a, PG);
	ASSERT_EQ(0, g_quiesce(g, false));
	put_reads(g, 1, 3, self->buf, cid);
	msleep(QUIET_MS);
	EXPECT_FALSE(cq_peek(g, 1, NULL)) TH_LOG("fetched while quiesced");
	ASSERT_EQ(0, g_delete(g, true, 1));
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(0, wait_cqe(g, 1, &cqe, WAIT_MS))
			TH_LOG("abort %u: no completion or no interrupt", i);
		EXPECT_EQ(cid[i], cqe.cid);
		EXPECT_EQ(0x08, cqe.status >> 1) TH_LOG("status %#x", cqe.status >> 1);
		EXPECT_EQ(1, cqe.sq_id);
		EXPECT_EQ(i + 1, cqe.sq_head);
	}
	msleep(QUIET_MS);
	EXPECT_FALSE(cq_peek(g, 1, NULL));
	for (i = 0; i < PG; i++)
		if (((uint8_t *)HVA(self->buf))[i] != 0x5a)
			break;
	EXPECT_EQ(PG, i) TH_LOG("an aborted read wrote guest memory");

	/* The device goes on: a new SQ 1 works once resumed. */
	ASSERT_EQ(0, g_quiesce(g, true));
	ASSERT_EQ(0, g_create_sq(g, 1, 64, 1));
	ASSERT_EQ(SC_OK, RW(OP_READ, 0, 8, self->buf));
}

/*
 * With VHOST_NVME_DELETE_F_DISCARD (a controller reset) unfetched entries
 * vanish without a completion; without it, a CQ without room for every
 * abort takes what fits and the delete still finishes.
 */
TEST_F(io, delete_sq_discard_and_full_cq)
{
	struct vhost_nvme_qid d = { .qid = 1,
				    .flags = VHOST_NVME_DELETE_F_DISCARD };
	struct guest *g = &self->g;
	struct nvme_cqe cqe;
	uint16_t cid[6];
	unsigned int i;
	long t0;

	IO_PROLOGUE();
	ASSERT_EQ(0, g_quiesce(g, false));
	put_reads(g, 1, 3, self->buf, cid);
	ASSERT_EQ(0, xioctl(g->fd, VHOST_NVME_DELETE_SQ, &d));
	msleep(QUIET_MS);
	EXPECT_FALSE(cq_peek(g, 1, NULL)) TH_LOG("a discarded entry completed");
	g->sq[1].live = false;

	/* CQ 2 holds 3 entries; 6 are queued on SQ 2. */
	ASSERT_EQ(0, g_create_cq(g, 2, 4, true));
	ASSERT_EQ(0, g_create_sq(g, 2, 16, 2));
	put_reads(g, 2, 6, self->buf, cid);
	t0 = now_ms();
	ASSERT_EQ(0, g_delete(g, true, 2));
	EXPECT_GT(WAIT_MS, now_ms() - t0);
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(0, wait_cqe(g, 2, &cqe, WAIT_MS)) TH_LOG("abort %u", i);
		EXPECT_EQ(cid[i], cqe.cid);
		EXPECT_EQ(0x08, cqe.status >> 1);
	}
	msleep(QUIET_MS);
	EXPECT_FALSE(cq_peek(g, 2, NULL)) TH_LOG("posted into a full CQ");
	ASSERT_EQ(0, g_delete(g, false, 2));
	ASSERT_EQ(0, g_quiesce(g, true));
}

/*
 * A queue that stops on a guest fault signals its error eventfd and
 * reports VHOST_NVME_QS_ERROR; the other queues go on.  SQ: its ring
 * cannot be read; CQ: its ring cannot be written.
 */
TEST_F(io, queue_error_eventfds)
{
	struct vhost_nvme_queue_state st;
	struct guest *g = &self->g;
	int cqerr = new_eventfd(), sqerr = new_eventfd();
	struct pollfd p = { .events = POLLIN };
	struct nvme_sqe sqe;
	uint64_t v;

	IO_PROLOGUE();
	ASSERT_EQ(0, g_create_cq_err(g, 2, 16, true, cqerr));
	ASSERT_EQ(0, g_create_sq_err(g, 2, 16, 2, sqerr));
	ASSERT_EQ(0, g_create_sq(g, 3, 16, 2));
	/* Both work, and nothing is signalled while they do. */
	ASSERT_EQ(SC_OK, rw_q(_metadata, g, 2, OP_READ, 1, 0, 8, self->buf, 0));
	ASSERT_EQ(SC_OK, rw_q(_metadata, g, 3, OP_READ, 1, 0, 8, self->buf, 0));
	EXPECT_EQ(-1, (int)read(sqerr, &v, sizeof(v)));
	EXPECT_EQ(-1, (int)read(cqerr, &v, sizeof(v)));

	/* SQ 2's ring becomes unreadable. */
	rw_sqe(&sqe, OP_READ, 1, 0, 8);
	sqe.prp1 = self->buf;
	sq_put(g, 2, &sqe);
	ASSERT_EQ(0, mprotect(g->sq[2].ring, PG, PROT_NONE));
	sq_ring(g, 2);
	p.fd = sqerr;
	EXPECT_EQ(1, poll(&p, 1, WAIT_MS)) TH_LOG("no SQ error signal");
	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_SQ, 2, &st));
	EXPECT_NE(0U, st.flags & VHOST_NVME_QS_ERROR);
	ASSERT_EQ(0, mprotect(g->sq[2].ring, PG, PROT_READ | PROT_WRITE));
	/* The others go on. */
	ASSERT_EQ(SC_OK, RW(OP_READ, 0, 8, self->buf));
	ASSERT_EQ(SC_OK, rw_q(_metadata, g, 3, OP_READ, 1, 0, 8, self->buf, 0));

	/* CQ 2's ring becomes read-only: the next completion cannot land. */
	ASSERT_EQ(0, mprotect(g->cq[2].ring, PG, PROT_READ));
	rw_sqe(&sqe, OP_READ, 1, 0, 8);
	sqe.prp1 = self->buf;
	sq_put(g, 3, &sqe);
	sq_ring(g, 3);
	p.fd = cqerr;
	EXPECT_EQ(1, poll(&p, 1, WAIT_MS)) TH_LOG("no CQ error signal");
	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_CQ, 2, &st));
	EXPECT_NE(0U, st.flags & VHOST_NVME_QS_ERROR);
	ASSERT_EQ(0, mprotect(g->cq[2].ring, PG, PROT_READ | PROT_WRITE));
	ASSERT_EQ(SC_OK, RW(OP_READ, 0, 8, self->buf));
	close(cqerr);
	close(sqerr);
}

/*
 * A write-through namespace (what a VMM needs for a guest told there is
 * no volatile write cache) turns every write into a FUA write at the
 * backend; the same backend as a plain namespace does not.
 */
TEST_F(io, write_through_namespace)
{
	struct vhost_nvme_ns ns;
	char rwbs[16];
	char *trace;

	IO_PROLOGUE();
	ASSERT_EQ(0, g_attach(&self->g, 2, self->bfd,
			      VHOST_NVME_NS_F_WRITE_THROUGH, 0, &ns));
	EXPECT_NE(0U, ns.flags & VHOST_NVME_NS_F_WRITE_THROUGH);
	if (variant->file) {
		uint64_t before, after;

		/*
		 * On a file every write is a data sync, which flushes the
		 * write cache of the device under the file system.
		 */
		NEED_SDEV();
		if (!queue_attr_is(self->sdev, "write_cache", "write back"))
			SKIP(return, "%s: no write cache", self->sdev);
		fill(HVA(self->buf), 4096, 23);
		before = dev_stat(self->sdev, STAT_FLUSH_IOS);
		ASSERT_EQ(SC_OK, rw_q(_metadata, &self->g, 1, OP_WRITE, 2,
				      6100, 8, self->buf, 0));
		after = dev_stat(self->sdev, STAT_FLUSH_IOS);
		ASSERT_LT(before, after);
		ASSERT_EQ(0, g_detach(&self->g, 2));
		return;
	}
	if (!bio_trace_start())
		SKIP(return, "no tracefs with block tracepoints");
	fill(HVA(self->buf), 4096, 23);
	ASSERT_EQ(SC_OK, rw_q(_metadata, &self->g, 1, OP_WRITE, 2, 6100, 8,
			      self->buf, 0));
	ASSERT_EQ(SC_OK, rw_q(_metadata, &self->g, 1, OP_WRITE, 1, 6108, 8,
			      self->buf, 0));
	trace = bio_trace_stop();
	ASSERT_NE(NULL, trace);
	ASSERT_LE(1, bio_trace_find(trace, self->dev, 6100, rwbs, sizeof(rwbs)));
	EXPECT_TRUE(rwbs_fua(rwbs)) TH_LOG("write-through write: %s", rwbs);
	ASSERT_LE(1, bio_trace_find(trace, self->dev, 6108, rwbs, sizeof(rwbs)));
	EXPECT_FALSE(rwbs_fua(rwbs)) TH_LOG("plain write: %s", rwbs);
	free(trace);
	ASSERT_EQ(0, g_detach(&self->g, 2));
}

TEST_F(io, write_zeroes)
{
	static char direct[16384];

	IO_PROLOGUE();
	fill(HVA(self->buf), 16384, 22);
	ASSERT_EQ(SC_OK, RW(OP_WRITE, 6000, 32, self->buf));
	ASSERT_EQ(SC_OK, RW(OP_WZ, 6008, 16, 0));
	ASSERT_EQ(0, bdev_io(self->dev, false, 6000 * 512, direct, 16384));
	ASSERT_EQ(0, memcmp(direct, HVA(self->buf), 4096));
	ASSERT_TRUE(is_zero(direct + 4096, 8192));
	ASSERT_EQ(0, memcmp(direct + 12288, HVA(self->buf + 12288), 4096));
	memset(HVA(self->buf2), 0xff, 8192);
	ASSERT_EQ(SC_OK, RW(OP_READ, 6008, 16, self->buf2));
	ASSERT_TRUE(is_zero(HVA(self->buf2), 8192));
	/* Write Zeroes is range checked like a write. */
	ASSERT_EQ(ERR(SC_LBA_RANGE), RW(OP_WZ, self->ns.nsze - 1, 2, 0));
	/* And its NLB is not limited by MDTS (no data is transferred). */
	ASSERT_EQ(SC_OK, RW(OP_WZ, 16384, 2048, 0));
	/* With FUA (a flush after it) and with Deallocate (may unmap) */
	ASSERT_EQ(SC_OK, RW(OP_WRITE, 6000, 32, self->buf));
	ASSERT_EQ(SC_OK, rw_q(_metadata, &self->g, 1, OP_WZ, 1, 6000, 8, 0,
			      RW_FUA));
	ASSERT_EQ(SC_OK, rw_q(_metadata, &self->g, 1, OP_WZ, 1, 6024, 8, 0,
			      WZ_DEAC));
	ASSERT_EQ(0, bdev_io(self->dev, false, 6000 * 512, direct, 16384));
	ASSERT_TRUE(is_zero(direct, 4096)) TH_LOG("Write Zeroes with FUA");
	ASSERT_EQ(0, memcmp(direct + 4096, HVA(self->buf + 4096), 8192));
	ASSERT_TRUE(is_zero(direct + 12288, 4096)) TH_LOG("Write Zeroes with DEAC");
}

static uint16_t dsm(struct __test_metadata *_metadata, struct guest *g,
		    uint32_t nsid, const struct nvme_dsm_range *r,
		    unsigned int n, uint32_t attr)
{
	uint64_t list = g_alloc(g, PG);
	struct nvme_dsm_range *l = g_hva(g, list);
	struct nvme_sqe sqe;
	unsigned int i;

	for (i = 0; i < n; i++) {
		l[i].cattr = htole32(r[i].cattr);
		l[i].nlb = htole32(r[i].nlb);
		l[i].slba = htole64(r[i].slba);
	}
	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = OP_DSM;
	sqe.nsid = htole32(nsid);
	sqe.prp1 = list;
	sqe.cdw10 = htole32(n - 1);
	sqe.cdw11 = htole32(attr);
	return __submit(_metadata, g, 1, &sqe, NULL);
}

TEST_F(io, dsm_deallocate)
{
	static char direct[65536];
	struct nvme_dsm_range r[2] = {
		{ .nlb = 16, .slba = 7000 },	/* 4 KiB aligned */
		{ .nlb = 32, .slba = 7040 },
	};
	uint64_t before, after;

	IO_PROLOGUE();
	fill(HVA(self->buf), 65536, 23);
	ASSERT_EQ(SC_OK, RW(OP_WRITE, 6992, 128, self->buf));
	/* A file's holes are punched, seen in its data below. */
	before = dev_stat(self->dev, STAT_DISCARD_IOS);
	if (!variant->file)
		ASSERT_NE(UINT64_MAX, before);
	ASSERT_EQ(SC_OK, dsm(_metadata, &self->g, 1, r, 2, DSM_AD));
	after = dev_stat(self->dev, STAT_DISCARD_IOS);
	if (!variant->file)
		ASSERT_LT(before, after);
	ASSERT_EQ(0, bdev_io(self->dev, false, 6992 * 512, direct, 65536));
	/* 6992..6999 kept, 7000..7015 zero, 7016..7039 kept, 7040..7071 zero */
	ASSERT_EQ(0, memcmp(direct, HVA(self->buf), 8 * 512));
	ASSERT_TRUE(is_zero(direct + 8 * 512, 16 * 512));
	ASSERT_EQ(0, memcmp(direct + 24 * 512, HVA(self->buf) + 24 * 512, 24 * 512));
	ASSERT_TRUE(is_zero(direct + 48 * 512, 32 * 512));
	ASSERT_EQ(0, memcmp(direct + 80 * 512, HVA(self->buf) + 80 * 512, 48 * 512));
	/* Through the module as well. */
	memset(HVA(self->buf2), 0xff, 8192);
	ASSERT_EQ(SC_OK, RW(OP_READ, 7000, 16, self->buf2));
	ASSERT_TRUE(is_zero(HVA(self->buf2), 8192));

	/* A range beyond the capacity. */
	r[1].slba = self->ns.nsze - 8;
	r[1].nlb = 16;
	ASSERT_EQ(ERR(SC_LBA_RANGE), dsm(_metadata, &self->g, 1, r, 2, DSM_AD));
	ASSERT_EQ(ERR(SC_INVALID_NS), dsm(_metadata, &self->g, 2, r, 1, DSM_AD));
}

TEST_F(io, read_only_namespace)
{
	struct guest *g = &self->g;
	struct vhost_nvme_ns ns;
	struct nvme_dsm_range r = { .nlb = 8, .slba = 8000 };
	int ro;

	IO_PROLOGUE();
	fill(HVA(self->buf), 4096, 24);
	ASSERT_EQ(SC_OK, RW(OP_WRITE, 8000, 8, self->buf));
	ASSERT_EQ(0, g_detach(g, 1));
	ASSERT_EQ(0, g_attach(g, 1, self->bfd, VHOST_NVME_NS_F_READ_ONLY, 0, &ns));
	ASSERT_NE(0U, ns.flags & VHOST_NVME_NS_F_READ_ONLY);
	EXPECT_EQ(ERR(SC_WRITE_PROTECTED), RW(OP_WRITE, 8000, 8, self->buf2));
	EXPECT_EQ(ERR(SC_WRITE_PROTECTED), RW(OP_WZ, 8000, 8, 0));
	EXPECT_EQ(ERR(SC_WRITE_PROTECTED), dsm(_metadata, g, 1, &r, 1, DSM_AD));
	ASSERT_EQ(SC_OK, RW(OP_READ, 8000, 8, self->buf2));
	ASSERT_EQ(0, memcmp(HVA(self->buf), HVA(self->buf2), 4096));

	/* Read-only because the fd is. */
	ASSERT_EQ(0, g_detach(g, 1));
	ro = open(self->dev, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, ro);
	ASSERT_EQ(0, g_attach(g, 1, ro, 0, 0, &ns));
	close(ro);
	ASSERT_NE(0U, ns.flags & VHOST_NVME_NS_F_READ_ONLY);
	EXPECT_EQ(ERR(SC_WRITE_PROTECTED), RW(OP_WRITE, 8000, 8, self->buf2));
	ASSERT_EQ(SC_OK, RW(OP_READ, 8000, 8, self->buf2));
	ASSERT_EQ(0, memcmp(HVA(self->buf), HVA(self->buf2), 4096));
}

TEST_F(io, shadow_doorbells)
{
	struct guest *g = &self->g;
	struct vhost_nvme_queue_state st;
	uint32_t cq_head;
	uint64_t db, ei;
	uint32_t *sdb;
	unsigned int i;

	IO_PROLOGUE();
	/* Move the queues away from 0 in VMM mode first. */
	for (i = 0; i < 3; i++)
		ASSERT_EQ(SC_OK, RW(OP_READ, i, 1, self->buf));
	/* The module's CQ head is the last one it read (maybe still 0). */
	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_CQ, 1, &st));
	cq_head = st.head;
	ASSERT_GE(3U, cq_head);
	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_SQ, 1, &st));
	ASSERT_EQ(3, st.tail);
	db = g_alloc(g, PG);
	ei = g_alloc(g, PG);
	sdb = HVA(db);
	sdb[2] = sdb[3] = htole32(0xeeee);	/* must be overwritten */
	ASSERT_EQ(0, g_db_shadow(g, db, ei));
	/* The module copied the current SQ tail and CQ head. */
	ASSERT_EQ(3U, le32toh(sdb[2 * 1]));
	ASSERT_EQ(cq_head, le32toh(sdb[2 * 1 + 1]));
	/* From here on the shadow holds our head again. */
	sdb[2 * 1 + 1] = htole32(g->cq[1].head);
	/* EventIdx is unknown after the switch: kick the first time. */
	g->sq[1].force_kick = true;
	g->cq[1].force_kick = true;
	for (i = 0; i < 10; i++) {
		fill(HVA(self->buf), 512, 30 + i);
		ASSERT_EQ(SC_OK, RW(OP_WRITE, 9000 + i, 1, self->buf)) TH_LOG("cmd %u", i);
		/* EventIdx == the tail consumed: the next write needs a kick. */
		ASSERT_EQ(0, wait_u32(&g->ei[2], g->sq[1].tail, WAIT_MS))
			TH_LOG("EventIdx %u, tail %u", le32toh(g->ei[2]),
			       g->sq[1].tail);
		ASSERT_EQ(g->sq[1].tail, le32toh(sdb[2]));
	}
	ASSERT_EQ(SC_OK, RW(OP_READ, 9000, 10, self->buf2));
	ASSERT_EQ(0, memcmp(HVA(self->buf2) + 9 * 512, HVA(self->buf), 512));

	/* A new queue pair created in shadow mode. */
	ASSERT_EQ(0, g_create_cq(g, 2, 8, true));
	ASSERT_EQ(0, g_create_sq(g, 2, 8, 2));
	for (i = 0; i < 12; i++) {
		ASSERT_EQ(SC_OK, rw_q(_metadata, g, 2, OP_READ, 1, i, 1,
				      self->buf, 0));
		ASSERT_EQ(0, wait_u32(&g->ei[4], g->sq[2].tail, WAIT_MS));
	}
}

TEST_F(io, no_fetch_before_doorbells)
{
	struct guest g2;
	struct vhost_nvme_queue_state st;
	struct nvme_cqe cqe;
	struct nvme_sqe sqe;

	IO_PROLOGUE();
	g_open(_metadata, &g2);
	g_owner(_metadata, &g2, VHOST_NVME_F_ALL);
	ASSERT_EQ(0, g_attach(&g2, 1, self->bfd, 0, 0, NULL));
	ASSERT_EQ(0, g_create_cq(&g2, 1, 16, true));
	ASSERT_EQ(0, g_create_sq(&g2, 1, 16, 1));
	g2.db = g2.vmm_db;	/* not registered yet */
	rw_sqe(&sqe, OP_READ, 1, 0, 1);
	sqe.prp1 = g_alloc(&g2, PG);
	sq_put(&g2, 1, &sqe);
	sq_ring(&g2, 1);
	ASSERT_EQ(-ETIMEDOUT, wait_cqe(&g2, 1, &cqe, QUIET_MS));
	ASSERT_EQ(0, g_qstate(&g2, VHOST_NVME_QTYPE_SQ, 1, &st));
	ASSERT_EQ(0, st.head);
	ASSERT_EQ(0ULL, st.commands);
	/* Now the doorbell page is known; it already holds tail 1. */
	ASSERT_EQ(0, g_db_vmm(&g2));
	kick(g2.sq[1].kickfd);
	ASSERT_EQ(0, wait_cqe(&g2, 1, &cqe, WAIT_MS));
	ASSERT_EQ(0, cqe.status >> 1);
	ASSERT_EQ(sqe.cid, cqe.cid);
	g_fini(&g2);
}

TEST_F(io, cq_without_irq)
{
	struct guest *g = &self->g;
	struct nvme_sqe sqe;
	struct nvme_cqe cqe;
	uint64_t v;

	IO_PROLOGUE();
	ASSERT_EQ(0, g_create_cq(g, 2, 8, false));
	ASSERT_EQ(0, g_create_sq(g, 2, 8, 2));
	rw_sqe(&sqe, OP_READ, 1, 0, 1);
	sqe.prp1 = self->buf;
	sq_put(g, 2, &sqe);
	sq_ring(g, 2);
	ASSERT_EQ(0, wait_visible(g, 2, 1, WAIT_MS));
	ASSERT_TRUE(cq_peek(g, 2, &cqe));
	ASSERT_EQ(sqe.cid, cqe.cid);
	ASSERT_EQ(0, cqe.status >> 1);
	cq_pop(g, 2);
	/* Interrupts disabled: the eventfd we passed stayed silent. */
	ASSERT_EQ(-1, read(g->cq[2].irqfd, &v, sizeof(v)));
	ASSERT_EQ(EAGAIN, errno);
}

TEST_F(io, quiesce_resume)
{
	struct guest *g = &self->g;
	struct vhost_nvme_queue_state st, st0;
	struct nvme_sqe sqe;
	struct nvme_cqe cqe;
	uint16_t cid[2];
	int i;

	IO_PROLOGUE();
	ASSERT_EQ(SC_OK, RW(OP_READ, 0, 8, self->buf));
	ASSERT_EQ(0, g_quiesce(g, false));
	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_SQ, 1, &st0));
	ASSERT_EQ(0U, st0.inflight);
	for (i = 0; i < 2; i++) {
		rw_sqe(&sqe, OP_READ, 1, i, 1);
		sqe.prp1 = self->buf;
		sqe.cid = 0;
		cid[i] = sq_put(g, 1, &sqe);
	}
	sq_ring(g, 1);
	ASSERT_EQ(-ETIMEDOUT, wait_cqe(g, 1, &cqe, QUIET_MS));
	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_SQ, 1, &st));
	ASSERT_EQ(st0.head, st.head);
	ASSERT_EQ(st0.commands, st.commands);
	ASSERT_EQ(0, g_quiesce(g, false));	/* idempotent */

	ASSERT_EQ(0, g_quiesce(g, true));
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, wait_cqe(g, 1, &cqe, WAIT_MS)) TH_LOG("cmd %d", i);
		ASSERT_EQ(cid[i], cqe.cid);
		ASSERT_EQ(0, cqe.status >> 1);
	}
	ASSERT_EQ(SC_OK, RW(OP_READ, 0, 8, self->buf));
}

TEST_F(io, quiesce_waits_for_inflight)
{
	struct guest *g = &self->g;
	struct vhost_nvme_queue_state st;
	struct nvme_sqe sqe;
	struct nvme_cqe cqe;
	int i;

	IO_PROLOGUE();
	for (i = 0; i < 32; i++) {
		fill(HVA(self->buf + i * PG), PG, 40 + i);
		rw_sqe(&sqe, OP_WRITE, 1, 10000 + i * 8, 8);
		sqe.prp1 = self->buf + i * PG;
		sqe.cid = 0;
		sq_put(g, 1, &sqe);
	}
	sq_ring(g, 1);
	ASSERT_EQ(0, g_quiesce(g, false));
	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_SQ, 1, &st));
	ASSERT_EQ(0U, st.inflight);
	ASSERT_EQ(0, g_quiesce(g, true));
	for (i = 0; i < 32; i++) {
		ASSERT_EQ(0, wait_cqe(g, 1, &cqe, WAIT_MS)) TH_LOG("cmd %d", i);
		ASSERT_EQ(0, cqe.status >> 1);
	}
	ASSERT_EQ(SC_OK, RW(OP_READ, 10000, 256, self->buf2));
	ASSERT_EQ(0, memcmp(HVA(self->buf), HVA(self->buf2), 32 * PG));
}

TEST_F(io, mem_table_replaced_live)
{
	struct guest *g = &self->g;
	struct vhost_memory_region r[2];
	struct nvme_sqe sqe;
	struct nvme_cqe cqe;
	int i;

	IO_PROLOGUE();
	/* 32 writes in flight while the table is replaced. */
	for (i = 0; i < 32; i++) {
		fill(HVA(self->buf + i * PG), PG, 80 + i);
		rw_sqe(&sqe, OP_WRITE, 1, 12000 + i * 8, 8);
		sqe.prp1 = self->buf + i * PG;
		sqe.cid = 0;
		sq_put(g, 1, &sqe);
	}
	sq_ring(g, 1);
	r[0] = g_region(g, 0, 16 << 20);
	r[1] = g_region(g, 16 << 20, 16 << 20);
	ASSERT_EQ(0, g_set_mem(g, 2, r));
	for (i = 0; i < 32; i++) {
		ASSERT_EQ(0, wait_cqe(g, 1, &cqe, WAIT_MS)) TH_LOG("cmd %d", i);
		ASSERT_EQ(0, cqe.status >> 1);
	}
	/* Reads through both regions of the new table. */
	ASSERT_GT(16ULL << 20, self->buf2 - g->gpa + 32 * PG);
	ASSERT_EQ(SC_OK, RW(OP_READ, 12000, 256, self->buf2));
	ASSERT_EQ(0, memcmp(HVA(self->buf), HVA(self->buf2), 32 * PG));
	ASSERT_EQ(SC_OK, RW(OP_READ, 12000, 256, g->gpa + (20 << 20)));
	ASSERT_EQ(0, memcmp(HVA(self->buf), HVA(g->gpa + (20 << 20)), 32 * PG));
	ASSERT_EQ(0, g_mem_default(g));
	ASSERT_EQ(SC_OK, RW(OP_READ, 12000, 8, self->buf2));
}

TEST_F(io, mem_table_translation)
{
	struct guest *g = &self->g;
	struct vhost_memory_region r[2];
	const uint64_t hi = 0x180000000ULL;	/* region 2's guest base */
	uint8_t *hva;
	struct nvme_sqe sqe;

	IO_PROLOGUE();
	/*
	 * The top 16 MiB of our memory appears at a distant GPA; anything
	 * at gpa + 16 MiB is no longer mapped.
	 */
	r[0] = g_region(g, 0, 16 << 20);
	r[1] = g_region(g, 16 << 20, 16 << 20);
	r[1].guest_phys_addr = hi;
	ASSERT_EQ(0, g_set_mem(g, 2, r));
	hva = g->mem + (16 << 20) + 0x3000;
	fill(hva, 8192, 50);
	rw_sqe(&sqe, OP_WRITE, 1, 13000, 16);
	sqe.prp1 = hi + 0x3000;
	sqe.prp2 = hi + 0x4000;
	ASSERT_EQ(SC_OK, SUBMIT(&sqe));
	ASSERT_EQ(SC_OK, RW(OP_READ, 13000, 16, self->buf2));
	ASSERT_EQ(0, memcmp(hva, HVA(self->buf2), 8192));
	/* The old GPA of that memory is now a hole. */
	rw_sqe(&sqe, OP_READ, 1, 13000, 16);
	sqe.prp1 = g->gpa + (16 << 20) + 0x3000;
	sqe.prp2 = g->gpa + (16 << 20) + 0x4000;
	ASSERT_EQ(ERR(SC_DATA_XFER), SUBMIT(&sqe));
	/* Transfer spanning both regions via a PRP list. */
	if (1) {
		uint64_t list = g_alloc(g, PG), *l = HVA(list);

		memset(hva, 0, 8192);
		l[0] = htole64(hi + 0x3000);
		l[1] = htole64(hi + 0x4000);
		rw_sqe(&sqe, OP_READ, 1, 13000, 24);
		sqe.prp1 = self->buf2 + 0x80000;
		sqe.prp2 = list;
		ASSERT_EQ(SC_OK, SUBMIT(&sqe));
		ASSERT_EQ(0, memcmp(HVA(self->buf2 + 0x80000), HVA(self->buf2), 4096));
		ASSERT_EQ(0, memcmp(hva, HVA(self->buf2) + 4096, 4096));
	}
}

TEST_F(io, delete_idle_queues)
{
	struct guest *g = &self->g;
	struct vhost_nvme_queue_state st;

	IO_PROLOGUE();
	ASSERT_EQ(SC_OK, RW(OP_READ, 0, 8, self->buf));
	ASSERT_EQ(-EBUSY, g_delete(g, false, 1));
	ASSERT_EQ(0, g_delete(g, true, 1));
	ASSERT_EQ(-ENOENT, g_qstate(g, VHOST_NVME_QTYPE_SQ, 1, &st));
	ASSERT_EQ(0, g_delete(g, false, 1));
	ASSERT_EQ(-ENOENT, g_qstate(g, VHOST_NVME_QTYPE_CQ, 1, &st));
	/* Recreated from scratch, elsewhere in memory: head/tail restart. */
	memset(g->vmm_db, 0, PG);
	ASSERT_EQ(0, g_create_cq(g, 1, 16, true));
	ASSERT_EQ(0, g_create_sq(g, 1, 16, 1));
	fill(HVA(self->buf), 4096, 60);
	ASSERT_EQ(SC_OK, RW(OP_WRITE, 14000, 8, self->buf));
	ASSERT_EQ(SC_OK, RW(OP_READ, 14000, 8, self->buf2));
	ASSERT_EQ(0, memcmp(HVA(self->buf), HVA(self->buf2), 4096));
	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_SQ, 1, &st));
	ASSERT_EQ(2ULL, st.commands);
	ASSERT_EQ(2, st.head);
}

TEST_F(io, queue_state_counters)
{
	struct guest *g = &self->g;
	struct vhost_nvme_queue_state st;
	struct nvme_sqe sqe;
	int i;

	IO_PROLOGUE();
	for (i = 0; i < 5; i++)
		ASSERT_EQ(SC_OK, RW(OP_READ, i * 8, 8, self->buf));
	rw_sqe(&sqe, 0x7f, 1, 0, 1);
	ASSERT_EQ(ERR(SC_INVALID_OPCODE), SUBMIT(&sqe));
	ASSERT_EQ(ERR(SC_INVALID_OPCODE), SUBMIT(&sqe));
	ASSERT_EQ(ERR(SC_LBA_RANGE), RW(OP_READ, self->ns.nsze, 1, self->buf));
	ASSERT_EQ(ERR(SC_INVALID_NS),
		  rw_q(_metadata, g, 1, OP_READ, 7, 0, 1, self->buf, 0));

	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_SQ, 1, &st));
	EXPECT_EQ(1, st.qid);
	EXPECT_EQ(64, st.size);
	EXPECT_EQ(1, st.cqid);
	EXPECT_EQ(9, st.head);
	EXPECT_EQ(9, st.tail);
	EXPECT_EQ(0U, st.inflight);
	EXPECT_EQ(9ULL, st.commands);
	EXPECT_EQ(4ULL, st.errors);
	EXPECT_EQ(0U, st.flags);

	/*
	 * The CQ head is "the last head read": the module need not read the
	 * doorbell before it runs short of space, so it is only bounded.
	 */
	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_CQ, 1, &st));
	EXPECT_GE(9, st.head);
	EXPECT_EQ(9, st.tail);
	EXPECT_EQ(1, st.phase);
	EXPECT_EQ(64, st.size);
	EXPECT_EQ(9ULL, st.commands);
	EXPECT_EQ(0U, st.inflight);
	EXPECT_EQ(0U, st.flags);
}

/* Wait until queue @qid counts more than @n bad doorbells; its state in @st */
static int wait_bad_db(struct guest *g, uint8_t type, uint16_t qid,
		       uint64_t n, struct vhost_nvme_queue_state *st)
{
	long deadline = now_ms() + WAIT_MS;

	do {
		if (g_qstate(g, type, qid, st))
			return -errno;
		if (st->bad_doorbells > n)
			return 0;
		msleep(2);
	} while (now_ms() < deadline);
	return -ETIMEDOUT;
}

/*
 * Doorbell values NVMe calls invalid (Invalid Doorbell Write Value): an SQ
 * tail not below the queue size, a CQ head outside the ring.  The device
 * ignores and counts them, the queue is not stopped (no error state), it
 * goes on from the next valid value, and the other queues never stop.
 * (A CQ head is read only when the CQ has no room: then every head inside
 * the ring is a valid one.)
 */
TEST_F(io, bad_doorbells)
{
	struct vhost_nvme_queue_state st;
	struct guest *g = &self->g;
	struct q *sq = &g->sq[2], *cq = &g->cq[2];
	struct nvme_cqe cqe;
	uint16_t cid[4];
	uint64_t n;
	int i;

	IO_PROLOGUE();
	ASSERT_EQ(0, g_create_cq(g, 2, 4, true));
	ASSERT_EQ(0, g_create_sq(g, 2, 16, 2));
	ASSERT_EQ(SC_OK, rw_q(_metadata, g, 2, OP_READ, 1, 0, 8, self->buf, 0));

	/* SQ 2's tail at its size, then far beyond it */
	db_write(g, 2 * 2, 16, sq->kickfd, &sq->force_kick);
	ASSERT_EQ(0, wait_bad_db(g, VHOST_NVME_QTYPE_SQ, 2, 0, &st));
	n = st.bad_doorbells;
	db_write(g, 2 * 2, 0xffff, sq->kickfd, &sq->force_kick);
	ASSERT_EQ(0, wait_bad_db(g, VHOST_NVME_QTYPE_SQ, 2, n, &st));
	EXPECT_EQ(0U, st.flags & VHOST_NVME_QS_ERROR);
	EXPECT_EQ(1, st.head);
	EXPECT_EQ(1, st.tail);
	EXPECT_EQ(1ULL, st.commands);
	/* The other queue goes on, and SQ 2 from a valid tail. */
	ASSERT_EQ(SC_OK, RW(OP_READ, 0, 8, self->buf));
	ASSERT_EQ(SC_OK, rw_q(_metadata, g, 2, OP_READ, 1, 0, 8, self->buf, 0));
	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_SQ, 2, &st));
	EXPECT_EQ(2ULL, st.commands);
	EXPECT_EQ(0U, st.flags & VHOST_NVME_QS_ERROR);

	/* CQ 2 (4 entries, head and tail 2) fills up with 3 more. */
	cq->manual_head = true;
	put_reads(g, 2, 4, self->buf, cid);
	ASSERT_EQ(0, wait_visible(g, 2, 3, WAIT_MS));
	for (i = 0; i < 3; i++) {
		ASSERT_TRUE(cq_peek(g, 2, &cqe));
		ASSERT_EQ(0, cqe.status >> 1);
		cq_pop(g, 2);
	}
	/* A head at the size, then far beyond: the 4th read stays queued. */
	db_write(g, 2 * 2 + 1, 4, cq->kickfd, &cq->force_kick);
	ASSERT_EQ(0, wait_bad_db(g, VHOST_NVME_QTYPE_CQ, 2, 0, &st));
	n = st.bad_doorbells;
	db_write(g, 2 * 2 + 1, 0xffff, cq->kickfd, &cq->force_kick);
	ASSERT_EQ(0, wait_bad_db(g, VHOST_NVME_QTYPE_CQ, 2, n, &st));
	EXPECT_EQ(0U, st.flags & VHOST_NVME_QS_ERROR);
	EXPECT_NE(0U, st.flags & VHOST_NVME_QS_CQ_FULL);
	EXPECT_EQ(5ULL, st.commands);
	EXPECT_FALSE(cq_peek(g, 2, NULL));
	ASSERT_EQ(SC_OK, RW(OP_READ, 0, 8, self->buf));
	/* The valid head: the last read completes. */
	cq_ring(g, 2);
	ASSERT_EQ(0, wait_visible(g, 2, 1, WAIT_MS));
	ASSERT_TRUE(cq_peek(g, 2, &cqe));
	EXPECT_EQ(0, cqe.status >> 1);
	cq_pop(g, 2);
	cq_ring(g, 2);
	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_CQ, 2, &st));
	EXPECT_EQ(6ULL, st.commands);
	EXPECT_EQ(0U, st.flags & (VHOST_NVME_QS_ERROR | VHOST_NVME_QS_CQ_FULL));
}

/*
 * Two namespaces on two backends: what the guest writes to namespace 2
 * lands on backend 2 and nowhere else, and each reads back its own.
 */
TEST_F(io, two_namespaces)
{
	static char direct[8192], other[8192];
	struct guest *g = &self->g;
	struct vhost_nvme_ns ns2;
	int fd2;

	IO_PROLOGUE();
	fd2 = tmp_file(1 << 20, O_RDWR);
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, g_attach(g, 2, fd2, 0, 9, &ns2));
	ASSERT_EQ(2048ULL, ns2.nsze);
	fill(HVA(self->buf), 8192, 31);
	fill(HVA(self->buf2), 8192, 32);
	ASSERT_EQ(SC_OK, rw_q(_metadata, g, 1, OP_WRITE, 1, 100, 16,
			      self->buf, 0));
	ASSERT_EQ(SC_OK, rw_q(_metadata, g, 1, OP_WRITE, 2, 100, 16,
			      self->buf2, 0));
	/* On the backends */
	ASSERT_EQ(0, bdev_io(self->dev, false, 100 * 512, direct, 8192));
	EXPECT_EQ(0, memcmp(direct, HVA(self->buf), 8192));
	ASSERT_EQ(8192, pread(fd2, other, 8192, 100 * 512));
	EXPECT_EQ(0, memcmp(other, HVA(self->buf2), 8192));
	/* Nothing else of backend 2 was written. */
	ASSERT_EQ(8192, pread(fd2, other, 8192, 0));
	EXPECT_TRUE(is_zero(other, 8192));
	ASSERT_EQ(8192, pread(fd2, other, 8192, 116 * 512));
	EXPECT_TRUE(is_zero(other, 8192));
	/* Through the device */
	memset(HVA(self->buf), 0, 8192);
	ASSERT_EQ(SC_OK, rw_q(_metadata, g, 1, OP_READ, 2, 100, 16,
			      self->buf, 0));
	EXPECT_EQ(0, memcmp(HVA(self->buf), HVA(self->buf2), 8192));
	/* Namespace 2 ends at its own size, not at namespace 1's. */
	EXPECT_EQ(ERR(SC_LBA_RANGE), rw_q(_metadata, g, 1, OP_READ, 2, 2047,
					  2, self->buf, 0));
	ASSERT_EQ(0, g_detach(g, 2));
	EXPECT_EQ(ERR(SC_INVALID_NS), rw_q(_metadata, g, 1, OP_READ, 2, 100,
					   16, self->buf, 0));
	close(fd2);
}

/*
 * Guest memory as QEMU provides it besides private anonymous pages: a
 * shared memfd (memory-backend-memfd, what vhost-user and CPR need) and a
 * memfd of huge pages (hugepages=on; run.sh reserves them): an MDTS write
 * through a PRP list, a bounced one at a dword offset, read back through
 * the device and checked on the backend.
 */
TEST_F(io, guest_memory_kinds)
{
	static char direct[MDTS_BYTES];
	enum guest_mem kinds[] = { MEM_MEMFD, MEM_HUGETLB };
	unsigned int k;

	IO_PROLOGUE();
	for (k = 0; k < 2; k++) {
		const unsigned int nlb = MDTS_BYTES / 512;
		uint64_t b, b2, slba = 9000 + k * 1024;
		struct guest g;

		g_open_mem(_metadata, &g, kinds[k]);
		g_owner(_metadata, &g, VHOST_NVME_F_ALL);
		ASSERT_EQ(0, g_db_vmm(&g));
		ASSERT_EQ(0, g_attach(&g, 1, self->bfd, 0, 0, NULL));
		ASSERT_EQ(0, g_create_cq(&g, 1, 16, true));
		ASSERT_EQ(0, g_create_sq(&g, 1, 16, 1));
		b = g_alloc(&g, MDTS_BYTES + PG);
		b2 = g_alloc(&g, MDTS_BYTES + PG);
		fill(g_hva(&g, b), MDTS_BYTES, 50 + k);
		ASSERT_EQ(SC_OK, rw_q(_metadata, &g, 1, OP_WRITE, 1, slba, nlb,
				      b, 0)) TH_LOG("memory kind %u", k);
		ASSERT_EQ(0, bdev_io(self->dev, false, slba * 512, direct,
				     MDTS_BYTES));
		EXPECT_EQ(0, memcmp(direct, g_hva(&g, b), MDTS_BYTES))
			TH_LOG("memory kind %u: backend", k);
		ASSERT_EQ(SC_OK, rw_q(_metadata, &g, 1, OP_READ, 1, slba, nlb,
				      b2, 0));
		EXPECT_EQ(0, memcmp(g_hva(&g, b2), g_hva(&g, b), MDTS_BYTES));
		/* A dword offset: bounced on block devices and O_DIRECT */
		ASSERT_EQ(SC_OK, rw_q(_metadata, &g, 1, OP_READ, 1, slba, 8,
				      b2 + 4, 0));
		EXPECT_EQ(0, memcmp(g_hva(&g, b2) + 4, g_hva(&g, b), 4096));
		g_fini(&g);
	}
}

/* Queue 2 (size 128) with @n 4 KiB writes submitted, not waited for. */
static void submit_many(struct guest *g, unsigned int n, uint64_t buf)
{
	struct nvme_sqe sqe;
	unsigned int i;

	for (i = 0; i < n; i++) {
		rw_sqe(&sqe, OP_WRITE, 1, 20000 + i * 8, 8);
		sqe.prp1 = buf + (uint64_t)(i % 256) * PG;
		sqe.cid = 0;
		sq_put(g, 2, &sqe);
	}
	sq_ring(g, 2);
}

static void fresh_owner_works(struct __test_metadata *_metadata, int bfd)
{
	struct guest g2;
	uint64_t b;

	io_guest(_metadata, &g2, bfd, NULL);
	b = g_alloc(&g2, PG);
	ASSERT_EQ(SC_OK, rw_q(_metadata, &g2, 1, OP_READ, 1, 20000, 8, b, 0));
	g_fini(&g2);
}

TEST_F(io, close_with_io_in_flight)
{
	struct guest *g = &self->g;
	long t0;

	IO_PROLOGUE();
	ASSERT_EQ(0, g_create_cq(g, 2, 128, true));
	ASSERT_EQ(0, g_create_sq(g, 2, 128, 2));
	submit_many(g, 100, self->buf);
	t0 = now_ms();
	ASSERT_EQ(0, close(g->fd));
	g->fd = -1;
	ASSERT_GT(10000, now_ms() - t0);
	fresh_owner_works(_metadata, self->bfd);
}

TEST_F(io, kill_owner_with_io_in_flight)
{
	struct pollfd p;
	int pfd[2], status;
	long deadline;
	pid_t pid, w;
	char c = 0;

	IO_PROLOGUE();
	ASSERT_EQ(0, pipe(pfd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct guest cg;
		uint64_t buf;

		close(pfd[0]);
		/* ASSERT failures here abort the child: the parent sees EOF. */
		io_guest(_metadata, &cg, self->bfd, NULL);
		ASSERT_EQ(0, g_create_cq(&cg, 2, 128, true));
		ASSERT_EQ(0, g_create_sq(&cg, 2, 128, 2));
		buf = g_alloc(&cg, 64 * PG);
		submit_many(&cg, 64, buf);
		if (write(pfd[1], "R", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(pfd[1]);
	p = (struct pollfd){ .fd = pfd[0], .events = POLLIN };
	ASSERT_EQ(1, poll(&p, 1, WAIT_MS)) {
		kill(pid, SIGKILL);
	}
	ASSERT_EQ(1, read(pfd[0], &c, 1)) {
		kill(pid, SIGKILL);
	}
	ASSERT_EQ('R', c);
	ASSERT_EQ(0, kill(pid, SIGKILL));
	deadline = now_ms() + 10000;
	while ((w = waitpid(pid, &status, WNOHANG)) == 0 && now_ms() < deadline)
		msleep(10);
	ASSERT_EQ(pid, w) TH_LOG("killed owner did not exit within 10 s");
	ASSERT_TRUE(WIFSIGNALED(status));
	ASSERT_EQ(SIGKILL, WTERMSIG(status));
	close(pfd[0]);
	/* Our own device still works, and a new one can be set up. */
	ASSERT_EQ(SC_OK, RW(OP_READ, 20000, 8, self->buf));
	fresh_owner_works(_metadata, self->bfd);
}

/* ---- polling, workers, interrupt coalescing ------------------------ */

static int g_poll(struct guest *g, uint32_t us)
{
	struct vhost_nvme_poll p = { .poll_us = us };

	return xioctl(g->fd, VHOST_NVME_SET_POLL, &p);
}

static int g_coalesce(struct guest *g, uint16_t qid, uint32_t thr,
		      uint32_t us)
{
	struct vhost_nvme_irq_coalescing c = {
		.qid = qid, .threshold = thr, .time_us = us,
	};
	int ret = xioctl(g->fd, VHOST_NVME_SET_IRQ_COALESCING, &c);

	/* Coalesced CQEs may be seen before their interrupt. */
	if (!ret && qid < MAXQ) {
		g->cq[qid].strict_irq = thr <= 1;
		g->cq[qid].irq_seen = false;
	}
	return ret;
}

#define MAX_WORKERS	64	/* above the module's 16: too many still shows */

/*
 * The pids of the threads whose name is the worker name of process @owner,
 * in creation (pid) order: worker 0 first.  Returns how many, at most @max.
 */
static int worker_pids_of(pid_t owner, int *pids, int max)
{
	char want[32], path[300], comm[32];
	struct dirent *de;
	DIR *d = opendir("/proc");
	int n = 0, i, j;

	if (!d)
		return -1;
	snprintf(want, sizeof(want), "vhost-nvme-%d", (int)owner);
	want[15] = '\0';	/* TASK_COMM_LEN - 1 */
	while ((de = readdir(d)) && n < max) {
		FILE *f;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = '\0';
		fclose(f);
		comm[strcspn(comm, "\n")] = '\0';
		if (!strcmp(comm, want))
			pids[n++] = atoi(de->d_name);
	}
	closedir(d);
	for (i = 1; i < n; i++)		/* a few entries: insertion sort */
		for (j = i; j > 0 && pids[j - 1] > pids[j]; j--) {
			int t = pids[j];

			pids[j] = pids[j - 1];
			pids[j - 1] = t;
		}
	return n;
}

static int worker_pids(int *pids, int max)
{
	return worker_pids_of(getpid(), pids, max);
}

/*
 * This process's workers; with @sleeping, only those in interruptible
 * sleep (state S: waiting for a kick).
 */
static int __count_workers(bool sleeping)
{
	int pids[MAX_WORKERS], n, i, asleep = 0;
	char path[64], stat[512];

	n = worker_pids(pids, MAX_WORKERS);
	if (n < 0 || !sleeping)
		return n;
	for (i = 0; i < n; i++) {
		FILE *f;
		char *p;

		snprintf(path, sizeof(path), "/proc/%d/stat", pids[i]);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(stat, sizeof(stat), f)) {
			p = strrchr(stat, ')');
			asleep += p && p[1] == ' ' && p[2] == 'S';
		}
		fclose(f);
	}
	return asleep;
}

static int count_workers(void)
{
	return __count_workers(false);
}

/*
 * Wait until every worker sleeps waiting for a kick: polling has ended.
 * (A worker starved of CPU by a loaded host may poll past its budget.)
 */
static int wait_workers_asleep(long ms)
{
	long deadline = now_ms() + ms;
	int n = count_workers();

	while (__count_workers(true) != n) {
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		msleep(10);
	}
	return 0;
}

/* Is the irqfd of @cqid signalled within @ms?  Consumes the signal. */
static bool irq_within(struct guest *g, uint16_t cqid, long ms)
{
	struct pollfd p = { .fd = g->cq[cqid].irqfd, .events = POLLIN };
	uint64_t v;

	if (poll(&p, 1, ms) != 1)
		return false;
	if (read(p.fd, &v, sizeof(v)) != sizeof(v))
		return false;
	g->cq[cqid].irq_seen = true;
	return true;
}

TEST_F(ctl, poll_errors)
{
	struct vhost_nvme_poll p = { .poll_us = 10 };

	g_owner(_metadata, &self->g, 0);
	EXPECT_EQ(-EOPNOTSUPP, g_poll(&self->g, 10));
	ASSERT_EQ(0, g_features(&self->g, VHOST_NVME_F_POLL));
	EXPECT_EQ(-EINVAL, g_poll(&self->g, self->g.info.max_poll_us + 1));
	p.reserved0 = 1;
	EXPECT_EQ(-EINVAL, xioctl(self->g.fd, VHOST_NVME_SET_POLL, &p));
	p.reserved0 = 0;
	p.reserved[2] = 1;
	EXPECT_EQ(-EINVAL, xioctl(self->g.fd, VHOST_NVME_SET_POLL, &p));
	EXPECT_EQ(0, g_poll(&self->g, self->g.info.max_poll_us));
	EXPECT_EQ(0, g_poll(&self->g, 0));
}

TEST_F(ctl, new_worker)
{
	struct vhost_nvme_worker w = { 0 };
	unsigned int k;

	g_owner(_metadata, &self->g, 0);
	EXPECT_EQ(1, count_workers());
	EXPECT_EQ(-EOPNOTSUPP, xioctl(self->g.fd, VHOST_NVME_NEW_WORKER, &w));
	ASSERT_EQ(0, g_features(&self->g, VHOST_NVME_F_WORKERS));
	w.reserved0 = 1;
	EXPECT_EQ(-EINVAL, xioctl(self->g.fd, VHOST_NVME_NEW_WORKER, &w));
	w = (struct vhost_nvme_worker){ .id = 3 };
	EXPECT_EQ(-EINVAL, xioctl(self->g.fd, VHOST_NVME_NEW_WORKER, &w));
	for (k = 1; k < self->g.info.max_workers; k++) {
		w = (struct vhost_nvme_worker){ 0 };
		ASSERT_EQ(0, xioctl(self->g.fd, VHOST_NVME_NEW_WORKER, &w));
		EXPECT_EQ(k, w.id);
	}
	w = (struct vhost_nvme_worker){ 0 };
	EXPECT_EQ(-ENOSPC, xioctl(self->g.fd, VHOST_NVME_NEW_WORKER, &w));
	EXPECT_EQ((int)self->g.info.max_workers, count_workers());
	/* Every worker goes with the owner. */
	ASSERT_EQ(0, xioctl(self->g.fd, VHOST_RESET_OWNER, NULL));
	EXPECT_EQ(0, count_workers());
}

TEST_F(ctl, irq_coalescing_errors)
{
	struct vhost_nvme_irq_coalescing c = { .qid = 1, .threshold = 4 };

	g_owner(_metadata, &self->g, 0);
	ASSERT_EQ(0, g_db_vmm(&self->g));
	EXPECT_EQ(-EOPNOTSUPP, g_coalesce(&self->g, 1, 4, 0));
	ASSERT_EQ(0, g_features(&self->g, VHOST_NVME_F_IRQ_COALESCING));
	EXPECT_EQ(-ENOENT, g_coalesce(&self->g, 1, 4, 0));
	ASSERT_EQ(0, g_create_cq(&self->g, 1, 16, true));
	EXPECT_EQ(-EINVAL, g_coalesce(&self->g, 0, 4, 0));
	EXPECT_EQ(-EINVAL, g_coalesce(&self->g, self->g.info.max_qid + 1, 4, 0));
	EXPECT_EQ(-EINVAL, g_coalesce(&self->g, 1, 1025, 0));
	EXPECT_EQ(-EINVAL, g_coalesce(&self->g, 1, 4, 1000001));
	c.reserved0 = 1;
	EXPECT_EQ(-EINVAL, xioctl(self->g.fd, VHOST_NVME_SET_IRQ_COALESCING, &c));
	c.reserved0 = 0;
	c.reserved1 = 1;
	EXPECT_EQ(-EINVAL, xioctl(self->g.fd, VHOST_NVME_SET_IRQ_COALESCING, &c));
	c.reserved1 = 0;
	c.reserved[1] = 1;
	EXPECT_EQ(-EINVAL, xioctl(self->g.fd, VHOST_NVME_SET_IRQ_COALESCING, &c));
	EXPECT_EQ(0, g_coalesce(&self->g, 1, 4, 100));
	EXPECT_EQ(0, g_coalesce(&self->g, 1, 0, 0));
}

/* Store the SQ tail without kicking: only a polling worker sees it. */
static uint16_t put_silently(struct guest *g, uint16_t qid,
			     struct nvme_sqe *sqe)
{
	uint16_t cid = sq_put(g, qid, sqe);

	__atomic_store_n(&g->db[2 * qid], htole32(g->sq[qid].tail),
			 __ATOMIC_RELEASE);
	return cid;
}

TEST_F(io, polling_needs_no_kick)
{
	struct nvme_sqe sqe;
	struct nvme_cqe cqe;
	uint16_t cid;

	IO_PROLOGUE();
	/* The longest budget, so that a slow VM cannot end it by accident. */
	ASSERT_EQ(0, g_poll(&self->g, 1000000));
	ASSERT_EQ(SC_OK, RW(OP_WRITE, 100, 8, self->buf));
	/* The worker polls for 1 s after that: no kick needed. */
	rw_sqe(&sqe, OP_READ, 1, 100, 8);
	sqe.prp1 = self->buf2;
	cid = put_silently(&self->g, 1, &sqe);
	ASSERT_EQ(0, wait_cqe(&self->g, 1, &cqe, WAIT_MS));
	EXPECT_EQ(cid, cqe.cid);
	EXPECT_EQ(SC_OK, cqe.status >> 1);
	EXPECT_EQ(0, memcmp(HVA(self->buf), HVA(self->buf2), 4096));
	/* Once the budget has passed, the worker waits for kicks again. */
	msleep(1500);
	ASSERT_EQ(0, wait_workers_asleep(WAIT_MS));
	cid = put_silently(&self->g, 1, &sqe);
	EXPECT_EQ(-ETIMEDOUT, wait_cqe(&self->g, 1, &cqe, QUIET_MS));
	kick(self->g.sq[1].kickfd);
	ASSERT_EQ(0, wait_cqe(&self->g, 1, &cqe, WAIT_MS));
	EXPECT_EQ(cid, cqe.cid);
	/* Polling off: back to kicks only. */
	ASSERT_EQ(0, g_poll(&self->g, 0));
	ASSERT_EQ(SC_OK, RW(OP_READ, 100, 8, self->buf2));
	ASSERT_EQ(0, wait_workers_asleep(WAIT_MS));
	cid = put_silently(&self->g, 1, &sqe);
	EXPECT_EQ(-ETIMEDOUT, wait_cqe(&self->g, 1, &cqe, QUIET_MS));
	kick(self->g.sq[1].kickfd);
	ASSERT_EQ(0, wait_cqe(&self->g, 1, &cqe, WAIT_MS));
}

/*
 * The polling window adapts (like KVM's halt polling): work that comes
 * later than the budget drops it to zero, so that polling costs nothing
 * where it cannot help; work that comes within the budget grows it back.
 */
TEST_F(io, polling_adapts_to_idle_time)
{
	struct nvme_sqe sqe;
	struct nvme_cqe cqe;
	uint16_t cid;
	int i;

	IO_PROLOGUE();
	ASSERT_EQ(0, g_poll(&self->g, 1000000));
	ASSERT_EQ(SC_OK, RW(OP_WRITE, 300, 8, self->buf));
	/* Idle for longer than the budget: the next work drops the window. */
	msleep(1500);
	ASSERT_EQ(0, wait_workers_asleep(WAIT_MS));
	ASSERT_EQ(SC_OK, RW(OP_READ, 300, 8, self->buf2));
	/*
	 * A full window would take an entry stored 5 ms later without a
	 * kick; a dropped one (a few µs at most after the completion) does not.
	 */
	msleep(5);
	rw_sqe(&sqe, OP_READ, 1, 300, 8);
	sqe.prp1 = self->buf2;
	cid = put_silently(&self->g, 1, &sqe);
	EXPECT_EQ(-ETIMEDOUT, wait_cqe(&self->g, 1, &cqe, QUIET_MS));
	kick(self->g.sq[1].kickfd);
	ASSERT_EQ(0, wait_cqe(&self->g, 1, &cqe, WAIT_MS));
	EXPECT_EQ(cid, cqe.cid);
	/*
	 * Work every 20 ms, within the budget: the window doubles from 10 µs
	 * each time until it is longer than that, and the worker polls again.
	 */
	for (i = 0; i < 16; i++) {
		msleep(20);
		ASSERT_EQ(SC_OK, RW(OP_READ, 300, 8, self->buf2));
	}
	msleep(5);
	cid = put_silently(&self->g, 1, &sqe);
	ASSERT_EQ(0, wait_cqe(&self->g, 1, &cqe, WAIT_MS));
	EXPECT_EQ(cid, cqe.cid);
}

/*
 * A polling worker on a backend with poll queues (null_blk has one) polls
 * for the backend's completions too: the data is right, the SQ counts them,
 * and closing the device with polled bios in flight does not hang (they
 * complete only when somebody polls).
 */
TEST_F(io, polled_completions)
{
	struct vhost_nvme_queue_state st;
	struct nvme_sqe sqe;
	long t0;
	int i;

	IO_PROLOGUE();
	NEED_BDEV();
	if (!queue_attr_is(self->dev, "io_poll", "1"))
		SKIP(return, "%s has no poll queues", self->dev);
	ASSERT_EQ(0, g_poll(&self->g, 1000000));
	for (i = 0; i < 16; i++) {
		fill(HVA(self->buf) + i * 4096, 4096, 40 + i);
		ASSERT_EQ(SC_OK, RW(OP_WRITE, 7000 + 8 * i, 8, self->buf + i * 4096));
	}
	memset(HVA(self->buf2), 0, 16 * 4096);
	ASSERT_EQ(SC_OK, RW(OP_READ, 7000, 128, self->buf2));
	EXPECT_EQ(0, memcmp(HVA(self->buf), HVA(self->buf2), 16 * 4096));
	ASSERT_EQ(0, g_qstate(&self->g, VHOST_NVME_QTYPE_SQ, 1, &st));
	/* The first command woke the worker; it polled from then on. */
	EXPECT_LE(8U, st.polled) TH_LOG("%llu of %llu commands polled",
					 (unsigned long long)st.polled,
					 (unsigned long long)st.commands);
	EXPECT_GE(st.commands, st.polled);
	/*
	 * Close while the worker is taking more of them (polled bios may be
	 * in flight: release must poll them to the end, not wait forever).
	 */
	for (i = 0; i < 32; i++) {
		rw_sqe(&sqe, OP_READ, 1, 7000, 8);
		sqe.prp1 = self->buf2 + (i % 16) * 4096;
		put_silently(&self->g, 1, &sqe);
	}
	t0 = now_ms();
	ASSERT_EQ(0, close(self->g.fd));
	self->g.fd = -1;
	ASSERT_GT(10000, now_ms() - t0);
	fresh_owner_works(_metadata, self->bfd);
}

TEST_F(io, polling_leaves_eventidx_then_rearms)
{
	uint64_t db, ei;
	uint32_t *eis;
	struct nvme_sqe sqe;
	struct nvme_cqe cqe;
	uint32_t ev;

	IO_PROLOGUE();	/* before touching guest memory: none if skipped */
	db = g_alloc(&self->g, PG);
	ei = g_alloc(&self->g, PG);
	eis = HVA(ei);
	ASSERT_EQ(0, g_db_shadow(&self->g, db, ei));
	ASSERT_EQ(SC_OK, RW(OP_WRITE, 200, 8, self->buf));
	ASSERT_EQ(0, wait_u32(&eis[2], self->g.sq[1].tail, WAIT_MS));
	ASSERT_EQ(0, g_poll(&self->g, 1000000));
	ASSERT_EQ(SC_OK, RW(OP_READ, 200, 8, self->buf2));
	/*
	 * Polling now (the worker started when the budget was set or with
	 * that read): an entry stored without a kick is taken, and EventIdx
	 * stays where it was.
	 */
	ev = le32toh(eis[2]);
	rw_sqe(&sqe, OP_READ, 1, 200, 8);
	sqe.prp1 = self->buf2;
	put_silently(&self->g, 1, &sqe);
	ASSERT_EQ(0, wait_cqe(&self->g, 1, &cqe, WAIT_MS));
	EXPECT_EQ(ev, le32toh(eis[2]));
	EXPECT_NE(self->g.sq[1].tail, le32toh(eis[2]));
	/* When polling stops, EventIdx is re-armed at the consumed head. */
	EXPECT_EQ(0, wait_u32(&eis[2], self->g.sq[1].tail, 5000));
}

/*
 * The voluntary context switches of this process's workers, worker 0
 * first.  Returns how many workers, at most @max.
 */
static int worker_switches(unsigned long long *sw, int max)
{
	int pids[MAX_WORKERS], n, i;
	char path[64], line[128];

	n = worker_pids(pids, max < MAX_WORKERS ? max : MAX_WORKERS);
	for (i = 0; i < n; i++) {
		FILE *f;

		sw[i] = 0;
		snprintf(path, sizeof(path), "/proc/%d/status", pids[i]);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			sscanf(line, "voluntary_ctxt_switches: %llu", &sw[i]);
		fclose(f);
	}
	return n;
}

TEST_F(io, two_workers)
{
	struct vhost_nvme_worker w = { 0 };
	struct vhost_nvme_cq c = { .qid = 2, .size = 16, .kickfd = -1,
				   .flags = VHOST_NVME_CQ_F_IRQ_ENABLED };
	struct q *cq = &self->g.cq[2];
	unsigned long long sw0[2], sw1[2];
	int k;

	IO_PROLOGUE();
	ASSERT_EQ(0, xioctl(self->g.fd, VHOST_NVME_NEW_WORKER, &w));
	ASSERT_EQ(1U, w.id);
	EXPECT_EQ(2, count_workers());
	cq->gpa = g_alloc(&self->g, 16 * 16);
	cq->ring = HVA(cq->gpa);
	cq->irqfd = new_eventfd();
	cq->kickfd = new_eventfd();
	c.addr = cq->gpa;
	c.irqfd = cq->irqfd;
	c.kickfd = cq->kickfd;
	c.worker = 1;
	ASSERT_EQ(0, xioctl(self->g.fd, VHOST_NVME_CREATE_CQ, &c));
	cq->live = true;
	cq->size = 16;
	cq->head = 0;
	cq->phase = 1;
	cq->strict_irq = true;
	ASSERT_EQ(0, g_create_sq(&self->g, 2, 16, 2));
	fill(HVA(self->buf), 8192, 31);
	ASSERT_EQ(SC_OK, rw_q(_metadata, &self->g, 2, OP_WRITE, 1, 300, 16,
			      self->buf, 0));
	ASSERT_EQ(SC_OK, RW(OP_READ, 300, 16, self->buf2));
	EXPECT_EQ(0, memcmp(HVA(self->buf), HVA(self->buf2), 8192));
	memset(HVA(self->buf2), 0, 8192);
	ASSERT_EQ(SC_OK, rw_q(_metadata, &self->g, 2, OP_READ, 1, 300, 16,
			      self->buf2, 0));
	EXPECT_EQ(0, memcmp(HVA(self->buf), HVA(self->buf2), 8192));

	/*
	 * Queue 2's I/O is worker 1's: 40 commands there wake worker 1 (at
	 * least once each: one in flight at a time), worker 0 hardly at all.
	 */
	ASSERT_EQ(2, worker_switches(sw0, 2));
	for (k = 0; k < 40; k++)
		ASSERT_EQ(SC_OK, rw_q(_metadata, &self->g, 2, OP_READ, 1, 300,
				      16, self->buf2, 0));
	ASSERT_EQ(2, worker_switches(sw1, 2));
	TH_LOG("worker 0: %llu switches, worker 1: %llu",
	       sw1[0] - sw0[0], sw1[1] - sw0[1]);
	EXPECT_LE(40ULL, sw1[1] - sw0[1]);
	EXPECT_GT(10ULL, sw1[0] - sw0[0]);
}

TEST_F(io, irq_coalescing_threshold)
{
	struct nvme_sqe sqe;
	struct nvme_cqe cqe;
	int k;

	IO_PROLOGUE();
	/* Time 0 would be no delay: a time far beyond the test's wait */
	ASSERT_EQ(0, g_coalesce(&self->g, 1, 4, 1000000));
	irq_within(&self->g, 1, 0);	/* drain */
	for (k = 0; k < 3; k++) {
		rw_sqe(&sqe, OP_READ, 1, 8 * k, 8);
		sqe.prp1 = self->buf + k * PG;
		sq_put(&self->g, 1, &sqe);
	}
	sq_ring(&self->g, 1);
	/* Three entries posted, below the threshold: no interrupt. */
	ASSERT_EQ(0, wait_visible(&self->g, 1, 3, WAIT_MS));
	EXPECT_FALSE(irq_within(&self->g, 1, QUIET_MS));
	rw_sqe(&sqe, OP_READ, 1, 24, 8);
	sqe.prp1 = self->buf + 3 * PG;
	sq_put(&self->g, 1, &sqe);
	sq_ring(&self->g, 1);
	/* The fourth reaches the threshold. */
	EXPECT_TRUE(irq_within(&self->g, 1, WAIT_MS));
	for (k = 0; k < 4; k++)
		ASSERT_EQ(0, wait_cqe(&self->g, 1, &cqe, WAIT_MS));
	/* Coalescing off again: every completion interrupts. */
	ASSERT_EQ(0, g_coalesce(&self->g, 1, 0, 0));
	ASSERT_EQ(SC_OK, RW(OP_READ, 0, 8, self->buf));
}

TEST_F(io, irq_coalescing_time)
{
	struct nvme_sqe sqe;
	struct nvme_cqe cqe;

	IO_PROLOGUE();
	ASSERT_EQ(0, g_coalesce(&self->g, 1, 64, 50000));
	irq_within(&self->g, 1, 0);	/* drain */
	rw_sqe(&sqe, OP_READ, 1, 0, 8);
	sqe.prp1 = self->buf;
	sq_put(&self->g, 1, &sqe);
	sq_ring(&self->g, 1);
	ASSERT_EQ(0, wait_visible(&self->g, 1, 1, WAIT_MS));
	/* One entry, far below the threshold: the 50 ms timer signals it. */
	EXPECT_TRUE(irq_within(&self->g, 1, WAIT_MS));
	ASSERT_EQ(0, wait_cqe(&self->g, 1, &cqe, WAIT_MS));
	EXPECT_EQ(SC_OK, cqe.status >> 1);
}

/*
 * NVMe Feature 08h: an Aggregation Time of 0 means no delay.  A threshold
 * with time 0 must not hold an interrupt back forever (a guest waiting for
 * fewer completions than the threshold would hang).
 */
TEST_F(io, irq_coalescing_time_zero_no_delay)
{
	struct nvme_sqe sqe;
	struct nvme_cqe cqe;

	IO_PROLOGUE();
	ASSERT_EQ(0, g_coalesce(&self->g, 1, 8, 0));
	irq_within(&self->g, 1, 0);	/* drain */
	rw_sqe(&sqe, OP_READ, 1, 0, 8);
	sqe.prp1 = self->buf;
	sq_put(&self->g, 1, &sqe);
	sq_ring(&self->g, 1);
	ASSERT_EQ(0, wait_visible(&self->g, 1, 1, WAIT_MS));
	EXPECT_TRUE(irq_within(&self->g, 1, WAIT_MS))
		TH_LOG("one entry below the threshold, time 0: no interrupt");
	ASSERT_EQ(0, wait_cqe(&self->g, 1, &cqe, WAIT_MS));
	EXPECT_EQ(SC_OK, cqe.status >> 1);
}

/* ---- limits (VHOST_NVME_SET_LIMITS) ------------------------------ */

static int g_limits(struct guest *g, struct vhost_nvme_limits *l)
{
	l->size = sizeof(*l);
	return xioctl(g->fd, VHOST_NVME_SET_LIMITS, l);
}

TEST_F(ctl, limits_errors)
{
	struct guest *g = &self->g;
	struct {
		struct vhost_nvme_limits l;
		uint64_t more;
	} big = { 0 };
	struct vhost_nvme_limits l = { 0 };

	ctl_ready(_metadata, g);
	ASSERT_EQ(0, g_limits(g, &l));
	EXPECT_LE(MDTS_BYTES, l.bounce_bytes) TH_LOG("bounce cap below MDTS");
	l = (struct vhost_nvme_limits){ .bounce_bytes = MDTS_BYTES - 4096 };
	EXPECT_EQ(-EINVAL, g_limits(g, &l)) TH_LOG("bounce cap below MDTS");
	l = (struct vhost_nvme_limits){ .bounce_bytes = 1ULL << 50 };
	EXPECT_EQ(-EINVAL, g_limits(g, &l)) TH_LOG("above the module's cap");
	l = (struct vhost_nvme_limits){ .reserved0 = 1 };
	EXPECT_EQ(-EINVAL, g_limits(g, &l));
	l = (struct vhost_nvme_limits){ .wzsl = 32 };
	EXPECT_EQ(-EINVAL, g_limits(g, &l));
	l = (struct vhost_nvme_limits){ .dmrl = 257 };
	EXPECT_EQ(-EINVAL, g_limits(g, &l));
	/* Too short to hold bounce_bytes */
	l = (struct vhost_nvme_limits){ .size = 8 };
	EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_NVME_SET_LIMITS, &l));
	/* A longer struct from a newer VMM: zero tail accepted, else E2BIG */
	big.l.size = sizeof(big);
	EXPECT_EQ(0, xioctl(g->fd, VHOST_NVME_SET_LIMITS, &big));
	EXPECT_EQ(sizeof(big.l), big.l.size);
	big.l.size = sizeof(big);
	big.more = 1;
	EXPECT_EQ(-E2BIG, xioctl(g->fd, VHOST_NVME_SET_LIMITS, &big));
	l = (struct vhost_nvme_limits){ .bounce_bytes = MDTS_BYTES };
	ASSERT_EQ(0, g_limits(g, &l));
	EXPECT_EQ(MDTS_BYTES, l.bounce_bytes);
	EXPECT_EQ(-EFAULT, xioctl(g->fd, VHOST_NVME_SET_LIMITS, NULL));
}

/* WZSL, DMRL and DMRSL as the VMM advertises them are enforced. */
TEST_F(io, command_limits)
{
	struct vhost_nvme_limits l = { .wzsl = 1, .dmrl = 2, .dmrsl = 8 };
	struct nvme_dsm_range *r;
	struct nvme_sqe sqe;

	IO_PROLOGUE();
	ASSERT_EQ(0, g_limits(&self->g, &l));
	/* WZSL 1: 8 KiB, 16 blocks of 512 bytes */
	EXPECT_EQ(SC_OK, RW(OP_WZ, 100, 16, 0));
	EXPECT_EQ(ERR(SC_INVALID_FIELD), RW(OP_WZ, 100, 17, 0));

	r = HVA(self->buf);
	memset(r, 0, 4 * sizeof(*r));
	r[0].slba = htole64(10);
	r[0].nlb = htole32(8);
	r[1].slba = htole64(30);
	r[1].nlb = htole32(8);
	r[2].slba = htole64(50);
	r[2].nlb = htole32(8);
	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = OP_DSM;
	sqe.nsid = htole32(1);
	sqe.prp1 = self->buf;
	sqe.cdw11 = htole32(DSM_AD);
	sqe.cdw10 = htole32(1);	/* 2 ranges */
	EXPECT_EQ(SC_OK, SUBMIT(&sqe));
	sqe.cdw10 = htole32(2);	/* 3 ranges > DMRL */
	EXPECT_EQ(ERR(SC_INVALID_FIELD), SUBMIT(&sqe));
	r[1].nlb = htole32(9);	/* > DMRSL */
	sqe.cdw10 = htole32(1);
	EXPECT_EQ(ERR(SC_INVALID_FIELD), SUBMIT(&sqe));
	/* No limits again */
	l = (struct vhost_nvme_limits){ 0 };
	ASSERT_EQ(0, g_limits(&self->g, &l));
	EXPECT_EQ(SC_OK, RW(OP_WZ, 100, 64, 0));
	sqe.cdw10 = htole32(2);
	EXPECT_EQ(SC_OK, SUBMIT(&sqe));
}

/* ---- cgroups: what the device's work is charged to ----------------- */

#define CGROOT	"/sys/fs/cgroup"

/* Enter a new cgroup v2 child with the memory and io controllers. */
static bool cg_enter(char *path, size_t len)
{
	char pid[16];

	if (access(CGROOT "/cgroup.controllers", R_OK))
		mount("none", CGROOT, "cgroup2", 0, NULL);
	if (access(CGROOT "/cgroup.controllers", R_OK))
		return false;
	put_str(CGROOT "/cgroup.subtree_control", "+memory");
	put_str(CGROOT "/cgroup.subtree_control", "+io");
	snprintf(path, len, CGROOT "/vhost-nvme-test-%d", getpid());
	if (mkdir(path, 0755) && errno != EEXIST)
		return false;
	snprintf(pid, sizeof(pid), "%d", getpid());
	{
		char procs[256];

		snprintf(procs, sizeof(procs), "%s/cgroup.procs", path);
		return put_str(procs, pid);
	}
}

/* Back to the root cgroup; remove @path once its workers have left. */
static void cg_leave(const char *path)
{
	char pid[16];
	int i;

	if (!path[0])
		return;
	snprintf(pid, sizeof(pid), "%d", getpid());
	put_str(CGROOT "/cgroup.procs", pid);
	for (i = 0; i < 200 && rmdir(path) && errno == EBUSY; i++)
		msleep(10);
}

static uint64_t cg_u64(const char *path, const char *file)
{
	char f[256];
	unsigned long long v;
	FILE *fp;

	snprintf(f, sizeof(f), "%s/%s", path, file);
	fp = fopen(f, "r");
	if (!fp)
		return UINT64_MAX;
	if (fscanf(fp, "%llu", &v) != 1)
		v = UINT64_MAX;
	fclose(fp);
	return v;
}

/* ---- slow backend: every I/O takes 1 s ------------------------------ */

FIXTURE(slow) {
	struct guest g;
	const char *dev;
	int bfd;
	bool skip;
	char cg[128];
};

FIXTURE_SETUP(slow)
{
	self->bfd = -1;
	self->g.fd = -1;
	self->cg[0] = 0;
	self->dev = getenv("VHOST_NVME_SLOW");
	if (!self->dev || !*self->dev || access(self->dev, R_OK | W_OK)) {
		self->skip = true;
		SKIP(return, "$VHOST_NVME_SLOW not set or not accessible");
	}
	/* Before SET_OWNER: the worker joins the owner's cgroups then. */
	if (!cg_enter(self->cg, sizeof(self->cg)))
		self->cg[0] = 0;
	self->bfd = open(self->dev, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->bfd) TH_LOG("%s: %s", self->dev, strerror(errno));
	io_guest(_metadata, &self->g, self->bfd, NULL);
}

FIXTURE_TEARDOWN(slow)
{
	g_fini(&self->g);
	if (self->bfd >= 0)
		close(self->bfd);
	cg_leave(self->cg);
}

#define SLOW_PROLOGUE() do {						\
		if (self->skip)						\
			SKIP(return, "$VHOST_NVME_SLOW not set");	\
	} while (0)

/*
 * Misaligned MDTS reads bounce.  Their bounce pages are charged to the
 * owner's memory cgroup and capped by the device's bounce limit: past it,
 * commands stay in the SQ (not failed), and every command completes with
 * the right data.
 */
TEST_F(slow, bounce_charged_and_capped)
{
	const unsigned int n = 8, nlb = MDTS_BYTES / 512;
	/* 65 pages each: 2 fit under 600 KiB, 3 do not */
	struct vhost_nvme_limits l = { .bounce_bytes = 600 << 10 };
	struct vhost_nvme_queue_state st;
	struct guest *g = &self->g;
	uint64_t bufs[8], c0 = 0, c1 = 0, c2 = 0;
	uint8_t *pattern;
	struct nvme_sqe sqe;
	struct nvme_cqe cqe;
	unsigned int i;

	SLOW_PROLOGUE();
	ASSERT_EQ(0, g_limits(g, &l));
	ASSERT_EQ(600U << 10, l.bounce_bytes);
	pattern = malloc(n * MDTS_BYTES);
	ASSERT_NE(NULL, pattern);
	fill(pattern, n * MDTS_BYTES, 77);
	ASSERT_EQ(0, bdev_io(self->dev, true, 0, pattern, n * MDTS_BYTES));
	for (i = 0; i < n; i++) {
		bufs[i] = g_alloc(g, MDTS_BYTES + PG) + 4;	/* dword offset */
		memset(HVA(bufs[i]), 0xa5, MDTS_BYTES);
		rw_sqe(&sqe, OP_READ, 1, (uint64_t)i * nlb, nlb);
		build_prp(g, bufs[i], MDTS_BYTES, &sqe.prp1, &sqe.prp2);
		sqe.cid = 0;
		sq_put(g, 1, &sqe);
	}
	if (self->cg[0])
		c0 = cg_u64(self->cg, "memory.current");
	sq_ring(g, 1);
	msleep(400);
	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_SQ, 1, &st));
	if (self->cg[0])
		c1 = cg_u64(self->cg, "memory.current");
	EXPECT_GE(2U, st.inflight) TH_LOG("%u commands in flight", st.inflight);
	EXPECT_LE(1U, st.inflight);
	EXPECT_GE(2, st.head) TH_LOG("fetched past the bounce cap: head %u",
				     st.head);
	for (i = 0; i < n; i++) {
		ASSERT_EQ(0, wait_cqe(g, 1, &cqe, 3 * WAIT_MS)) TH_LOG("read %u", i);
		EXPECT_EQ(SC_OK, cqe.status >> 1);
	}
	if (self->cg[0])
		c2 = cg_u64(self->cg, "memory.current");
	for (i = 0; i < n; i++)
		EXPECT_EQ(0, memcmp(HVA(bufs[i]), pattern + (size_t)i * MDTS_BYTES,
				    MDTS_BYTES)) TH_LOG("read %u: wrong data", i);
	free(pattern);
	if (!self->cg[0] || c0 == UINT64_MAX || c1 == UINT64_MAX)
		SKIP(return, "no cgroup v2 memory controller: charge not checked");
	TH_LOG("memory.current: %llu before, %llu in flight, %llu after",
	       (unsigned long long)c0, (unsigned long long)c1,
	       (unsigned long long)c2);
	/* Two bounces of 65 pages in flight, charged to us; never all 8 */
	EXPECT_LE(c0 + 2 * 65 * PG - 64 * 1024, c1)
		TH_LOG("bounce pages not charged to the owner's memcg");
	EXPECT_GT(c0 + 4 * 65 * PG, c1) TH_LOG("more bounce memory than the cap");
}

/*
 * A Write Zeroes holds host memory beyond the guest's: the block layer's
 * bio chain (on null_blk, zero-page bios with full bvec arrays, ~4 KiB per
 * 1 MiB zeroed).  The device counts it against the same cap as bounce
 * pages: with the cap at its minimum, one 32 MiB Write Zeroes is in flight
 * at a time, the next waits in the SQ, and every one completes.
 */
TEST_F(slow, write_zeroes_held_by_cap)
{
	struct vhost_nvme_limits l = { .bounce_bytes = MDTS_BYTES };
	struct vhost_nvme_queue_state st;
	struct guest *g = &self->g;
	unsigned int i, most = 0;
	struct nvme_sqe sqe;
	struct nvme_cqe cqe;
	long deadline;

	SLOW_PROLOGUE();
	ASSERT_EQ(0, g_limits(g, &l));
	ASSERT_EQ((uint64_t)MDTS_BYTES, l.bounce_bytes);
	for (i = 0; i < 2; i++) {
		rw_sqe(&sqe, OP_WZ, 1, 0, 65535);	/* 32 MiB - 512 */
		sqe.cid = 0;
		sq_put(g, 1, &sqe);
	}
	sq_ring(g, 1);
	/*
	 * Submitting one takes a while (null_blk copies the zero pages), and
	 * each completes 1 s after: watch the SQ until both are done.
	 */
	deadline = now_ms() + 3 * WAIT_MS;
	do {
		ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_SQ, 1, &st));
		if (st.inflight > most)
			most = st.inflight;
		msleep(10);
	} while ((st.head != 2 || st.inflight) && now_ms() < deadline);
	EXPECT_EQ(1U, most) TH_LOG("%u Write Zeroes in flight at once", most);
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, wait_cqe(g, 1, &cqe, 3 * WAIT_MS)) TH_LOG("WZ %u", i);
		EXPECT_EQ(SC_OK, cqe.status >> 1);
	}
}

/*
 * No device write after it said it stopped: once QUIESCE, DELETE_SQ,
 * RESET_OWNER or close() returned, the read that was in flight behind the
 * slow backend (1 s) has landed, and nothing of the guest's memory changes
 * any more: not the read's buffer, not the CQ.
 */
TEST_F(slow, no_write_after_stop)
{
	static const char *const what[] = {
		"QUIESCE", "DELETE_SQ", "RESET_OWNER", "close()",
	};
	static uint8_t snap[2][PG];
	unsigned int k;

	SLOW_PROLOGUE();
	for (k = 0; k < 4; k++) {
		struct vhost_nvme_qid d = { .qid = 1 };
		struct nvme_sqe sqe;
		struct guest g;
		uint64_t b;
		int ret = 0;

		io_guest(_metadata, &g, self->bfd, NULL);
		b = g_alloc(&g, PG);
		memset(g_hva(&g, b), 0xa5, PG);
		rw_sqe(&sqe, OP_READ, 1, 8 * k, 8);
		sqe.prp1 = b;
		sq_put(&g, 1, &sqe);
		sq_ring(&g, 1);
		msleep(200);	/* fetched: in the backend for 1 s */
		switch (k) {
		case 0:
			ret = g_quiesce(&g, false);
			break;
		case 1:
			ret = xioctl(g.fd, VHOST_NVME_DELETE_SQ, &d);
			break;
		case 2:
			ret = xioctl(g.fd, VHOST_RESET_OWNER, NULL);
			break;
		default:
			ret = close(g.fd);
			g.fd = -1;
			break;
		}
		ASSERT_EQ(0, ret) TH_LOG("%s", what[k]);
		memcpy(snap[0], g_hva(&g, b), PG);
		memcpy(snap[1], g.cq[1].ring, PG);
		EXPECT_NE(0xa5, snap[0][0]) TH_LOG("%s returned before the read landed",
						   what[k]);
		msleep(1500);
		EXPECT_EQ(0, memcmp(snap[0], g_hva(&g, b), PG))
			TH_LOG("%s: the data buffer changed after it returned",
			       what[k]);
		EXPECT_EQ(0, memcmp(snap[1], g.cq[1].ring, PG))
			TH_LOG("%s: the CQ changed after it returned", what[k]);
		g_fini(&g);
	}
}

/* wbytes of @dev in the cgroup's io.stat, or UINT64_MAX */
static uint64_t cg_io_wbytes(const char *cg, const char *dev)
{
	char f[256], line[512], key[32];
	unsigned long long v = UINT64_MAX;
	struct stat st;
	FILE *fp;

	if (stat(dev, &st))
		return UINT64_MAX;
	snprintf(key, sizeof(key), "%u:%u ", major(st.st_rdev),
		 minor(st.st_rdev));
	snprintf(f, sizeof(f), "%s/io.stat", cg);
	fp = fopen(f, "r");
	if (!fp)
		return UINT64_MAX;
	while (fgets(line, sizeof(line), fp)) {
		char *w = strstr(line, "wbytes=");

		if (!strncmp(line, key, strlen(key)) && w)
			v = strtoull(w + 7, NULL, 10);
	}
	fclose(fp);
	return v == UINT64_MAX ? 0 : v;
}

/*
 * The device's Write Zeroes are I/O of the owner: submitted by its worker,
 * in its cgroup, so io.max and io.stat see them (they ran on a root-cgroup
 * kworker of system_unbound_wq before).  null_blk has no Write Zeroes
 * command: the block layer writes zero pages, counted as wbytes.
 */
TEST_F(slow, write_zeroes_charged_to_owner)
{
	const uint32_t nlb = 4096;	/* 2 MiB of 512-byte blocks */
	uint64_t before, after, b;
	uint8_t *p;

	SLOW_PROLOGUE();
	b = g_alloc(&self->g, PG);
	if (!self->cg[0])
		SKIP(return, "no cgroup v2 with the io controller");
	p = HVA(b);
	fill(p, 4096, 5);
	ASSERT_EQ(0, bdev_io(self->dev, true, 100 * 512, p, 4096));
	before = cg_io_wbytes(self->cg, self->dev);
	ASSERT_NE(UINT64_MAX, before);
	ASSERT_EQ(SC_OK, rw_q(_metadata, &self->g, 1, OP_WZ, 1, 0, nlb, 0, 0));
	after = cg_io_wbytes(self->cg, self->dev);
	TH_LOG("io.stat wbytes: %llu before, %llu after",
	       (unsigned long long)before, (unsigned long long)after);
	EXPECT_LE(before + (uint64_t)nlb * 512, after)
		TH_LOG("Write Zeroes not charged to the owner's cgroup");
	memset(p, 0xff, 4096);
	ASSERT_EQ(SC_OK, rw_q(_metadata, &self->g, 1, OP_READ, 1, 100, 8, b, 0));
	EXPECT_TRUE(is_zero(p, 4096));
}

enum { KILL_DELETE_SQ, KILL_QUIESCE, KILL_DETACH, KILL_RESET };

/*
 * A child owns a device whose namespace is the slow backend, has a read in
 * flight and then calls an ioctl that waits for it.  SIGKILL must end the
 * wait: the child exits long before the read completes (1 s).  We hold a
 * reference on the device file, so the child's exit does not run release,
 * which does drain fully.  Returns how long the child took to die, in ms.
 */
static long kill_during(struct __test_metadata *_metadata, const char *dev,
			int what)
{
	int vfd, bfd, pfd[2], status;
	long t0, waited;
	char c;
	pid_t pid;

	vfd = open(DEV_PATH, O_RDWR | O_CLOEXEC);
	bfd = open(dev, O_RDWR | O_CLOEXEC);
	if (vfd < 0 || bfd < 0 || pipe(pfd))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		struct vhost_nvme_qid d = { .qid = 1 };
		struct vhost_nvme_nsid nsid = { .nsid = 1 };
		struct vhost_nvme_quiesce qq = { 0 };
		struct guest g;
		struct nvme_sqe sqe;
		uint64_t b;

		close(pfd[0]);
		g_open(_metadata, &g);
		close(g.fd);
		g.fd = vfd;
		g_owner(_metadata, &g, VHOST_NVME_F_ALL);
		if (g_db_vmm(&g) || g_attach(&g, 1, bfd, 0, 0, NULL) ||
		    g_create_cq(&g, 1, 16, true) || g_create_sq(&g, 1, 16, 1))
			_exit(2);
		b = g_alloc(&g, PG);
		rw_sqe(&sqe, OP_READ, 1, 0, 8);
		sqe.prp1 = b;
		sq_put(&g, 1, &sqe);
		sq_ring(&g, 1);
		msleep(100);	/* fetched and submitted */
		if (write(pfd[1], "x", 1) != 1)
			_exit(3);
		switch (what) {
		case KILL_DELETE_SQ:
			ioctl(g.fd, VHOST_NVME_DELETE_SQ, &d);
			break;
		case KILL_QUIESCE:
			ioctl(g.fd, VHOST_NVME_QUIESCE, &qq);
			break;
		case KILL_DETACH:
			ioctl(g.fd, VHOST_NVME_DETACH_NS, &nsid);
			break;
		default:
			ioctl(g.fd, VHOST_RESET_OWNER, NULL);
			break;
		}
		_exit(0);
	}
	close(pfd[1]);
	close(bfd);
	if (read(pfd[0], &c, 1) != 1) {
		close(pfd[0]);
		close(vfd);
		waitpid(pid, &status, 0);
		return -1;
	}
	close(pfd[0]);
	msleep(100);	/* in the ioctl's wait by now */
	t0 = now_ms();
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	waited = now_ms() - t0;
	/* Release drains what the dead owner left in flight. */
	close(vfd);
	if (!WIFSIGNALED(status))
		TH_LOG("child exit status %d", WEXITSTATUS(status));
	return waited;
}

#define KILL_BOUND_MS	400

/* SIGKILL ends the owner's wait in @what (a KILL_*); @name labels the log. */
#define KILLABLE_TEST(test, what, name)					\
TEST_F(slow, test)							\
{									\
	long ms;							\
									\
	SLOW_PROLOGUE();						\
	ms = kill_during(_metadata, self->dev, what);			\
	ASSERT_LE(0, ms);						\
	EXPECT_GT(KILL_BOUND_MS, ms)					\
		TH_LOG("%s: killed owner took %ld ms", name, ms);	\
}

KILLABLE_TEST(delete_sq_wait_is_killable, KILL_DELETE_SQ, "DELETE_SQ")
KILLABLE_TEST(quiesce_wait_is_killable, KILL_QUIESCE, "QUIESCE")
KILLABLE_TEST(detach_wait_is_killable, KILL_DETACH, "DETACH_NS")
KILLABLE_TEST(reset_owner_wait_is_killable, KILL_RESET, "RESET_OWNER")

/*
 * An interrupted DELETE_SQ leaves the SQ being deleted; the next one
 * finishes it.  (The waits return -EINTR only on a fatal signal, so drive
 * it here with a read that completes.)
 */
/* A read on SQ 1 of the slow backend, fetched and submitted; its cid. */
static uint16_t slow_read_in_flight(struct guest *g)
{
	struct nvme_sqe sqe;
	uint16_t cid;

	rw_sqe(&sqe, OP_READ, 1, 0, 8);
	sqe.prp1 = g_alloc(g, PG);
	cid = sq_put(g, 1, &sqe);
	sq_ring(g, 1);
	msleep(100);
	return cid;
}

TEST_F(slow, delete_sq_completes_after_io)
{
	struct guest *g = &self->g;
	long t0;

	SLOW_PROLOGUE();
	slow_read_in_flight(g);
	t0 = now_ms();
	ASSERT_EQ(0, g_delete(g, true, 1));
	/* It waited for the read (about 1 s from its submission). */
	EXPECT_LE(500, now_ms() - t0);
	EXPECT_EQ(-ENOENT, g_delete(g, true, 1));
	EXPECT_EQ(0, g_delete(g, false, 1));
}

/* ---- file namespaces on a file system that can be frozen --------- */

static int fs_freeze(const char *dir, bool freeze)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), ret;

	if (fd < 0)
		return -errno;
	ret = ioctl(fd, freeze ? FIFREEZE : FITHAW, 0) ? -errno : 0;
	close(fd);
	return ret;
}

/*
 * A guest write to a file namespace takes freeze protection as write(2)
 * does: while the file system is frozen (fsfreeze for a snapshot) it does
 * not reach the file, and it completes after the thaw.  The worker is not
 * blocked meanwhile: a read on another queue completes.  The region is
 * allocated beforehand, so the write needs no journal: without freeze
 * protection it would go straight through.
 */
/* TEST() passes a variant it does not use: the harness is not -Wextra clean */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
TEST(file_write_waits_for_thaw)
{
	const char *dir = getenv("VHOST_NVME_EXT4_DIR");
	char path[PATH_MAX];
	struct guest g;
	struct nvme_sqe sqe;
	struct nvme_cqe cqe;
	uint8_t *data, check[4096];
	uint64_t b, b2;
	int fd, wfd;

	if (!dir || !*dir)
		SKIP(return, "$VHOST_NVME_EXT4_DIR not set");
	snprintf(path, sizeof(path), "%s/ns.img", dir);
	wfd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ASSERT_LE(0, wfd);
	data = malloc(4 << 20);
	ASSERT_NE(NULL, data);
	memset(data, 0x5a, 4 << 20);
	ASSERT_EQ(4 << 20, pwrite(wfd, data, 4 << 20, 0));
	ASSERT_EQ(0, fsync(wfd));
	free(data);
	fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	ASSERT_LE(0, fd);
	io_guest(_metadata, &g, fd, NULL);
	ASSERT_EQ(0, g_create_cq(&g, 2, 16, true));
	ASSERT_EQ(0, g_create_sq(&g, 2, 16, 2));
	b = g_alloc(&g, PG);
	b2 = g_alloc(&g, PG);
	fill(g_hva(&g, b), 4096, 9);
	ASSERT_EQ(SC_OK, rw_q(_metadata, &g, 1, OP_WRITE, 1, 0, 8, b, 0));

	ASSERT_EQ(0, fs_freeze(dir, true));
	rw_sqe(&sqe, OP_WRITE, 1, 8, 8);
	sqe.prp1 = b;
	sq_put(&g, 1, &sqe);
	sq_ring(&g, 1);
	/* Not while frozen; nothing reaches the file */
	EXPECT_EQ(-ETIMEDOUT, wait_cqe(&g, 1, &cqe, QUIET_MS))
		TH_LOG("a write completed on a frozen file system");
	EXPECT_EQ(4096, pread(wfd, check, 4096, 4096));
	EXPECT_EQ(0x5a, check[0]) TH_LOG("the file changed while frozen");
	/* The worker goes on with other queues */
	EXPECT_EQ(SC_OK, rw_q(_metadata, &g, 2, OP_READ, 1, 0, 8, b2, 0));
	EXPECT_EQ(0, memcmp(g_hva(&g, b), g_hva(&g, b2), 4096));
	ASSERT_EQ(0, fs_freeze(dir, false));
	ASSERT_EQ(0, wait_cqe(&g, 1, &cqe, WAIT_MS)) TH_LOG("no completion after thaw");
	EXPECT_EQ(SC_OK, cqe.status >> 1);
	EXPECT_EQ(4096, pread(wfd, check, 4096, 4096));
	EXPECT_EQ(0, memcmp(check, g_hva(&g, b), 4096));
	g_fini(&g);
	close(fd);
	close(wfd);
	unlink(path);
}
#pragma GCC diagnostic pop

/*
 * Bios on the block device @dev queued by a task whose name starts with
 * @comm (block_bio_queue ends its line with "[comm]").
 */
static int bio_trace_count_comm(const char *trace, dev_t dev, const char *comm)
{
	char key[32], tag[32];
	const char *p = trace;
	int n = 0;

	snprintf(key, sizeof(key), " %u,%u ", major(dev), minor(dev));
	snprintf(tag, sizeof(tag), "[%s", comm);
	while ((p = strstr(p, key))) {
		const char *eol = strchrnul(p, '\n');
		const char *t = strstr(p, tag);

		if (t && t < eol)
			n++;
		p = eol;
	}
	return n;
}

/* The cgroup line of /proc/@pid/cgroup ("0::/path"), or "" */
static void task_cgroup(int pid, char *buf, size_t len)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
	buf[0] = 0;
	f = fopen(path, "r");
	if (!f)
		return;
	if (!fgets(buf, len, f))
		buf[0] = 0;
	fclose(f);
}

/* The pid of the first task whose name starts with @comm (as in comm) */
static int find_task(const char *comm)
{
	char want[16], path[300], c[32];
	struct dirent *de;
	DIR *d = opendir("/proc");
	int pid = -1;

	if (!d)
		return -1;
	snprintf(want, sizeof(want), "%.15s", comm);
	while (pid < 0 && (de = readdir(d))) {
		FILE *f;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (!fgets(c, sizeof(c), f))
			c[0] = 0;
		fclose(f);
		c[strcspn(c, "\n")] = 0;
		/* A kthread's comm there may be its full name (6.0+) */
		if (!strncmp(c, want, strlen(want)))
			pid = atoi(de->d_name);
	}
	closedir(d);
	return pid;
}

/*
 * A file namespace's operations that block (Flush's fsync, Write Zeroes'
 * fallocate, Deallocate's hole punching, buffered reads that miss the page
 * cache) run on the device's helper thread, which lives in the owner's
 * cgroup, not on a shared kworker outside it and not on the worker: their
 * bios on the file system's device come from "vhost-nvme-io-<owner pid>".
 * Each does what it says on the file.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"	/* TEST()'s variant */
TEST(file_blocking_ops_on_owner_helper)
{
	const char *dir = getenv("VHOST_NVME_EXT4_DIR");
	char path[PATH_MAX], cg[128] = "", name[32], wname[32];
	char mine[256], its[256];
	uint8_t check[4096];
	struct nvme_dsm_range *r;
	struct nvme_sqe sqe;
	struct guest g;
	struct stat st;
	char *trace;
	uint64_t b;
	int fd, pid;

	if (!dir || !*dir)
		SKIP(return, "$VHOST_NVME_EXT4_DIR not set");
	ASSERT_EQ(0, stat(dir, &st));
	if (!cg_enter(cg, sizeof(cg)))
		cg[0] = 0;
	snprintf(path, sizeof(path), "%s/helper.img", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ftruncate(fd, 4 << 20));
	io_guest(_metadata, &g, fd, NULL);
	b = g_alloc(&g, 2 * PG);
	fill(g_hva(&g, b), 4096, 31);
	/* A buffered write: dirty page cache, no I/O yet. */
	ASSERT_EQ(SC_OK, rw_q(_metadata, &g, 1, OP_WRITE, 1, 64, 8, b, 0));
	if (!bio_trace_start()) {
		g_fini(&g);
		close(fd);
		unlink(path);
		cg_leave(cg);
		SKIP(return, "no tracefs with block tracepoints");
	}
	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = OP_FLUSH;
	sqe.nsid = htole32(1);
	EXPECT_EQ(SC_OK, __submit(_metadata, &g, 1, &sqe, NULL));
	trace = bio_trace_stop();
	ASSERT_NE(NULL, trace);
	snprintf(name, sizeof(name), "vhost-nvme-io-%d", getpid());
	name[15] = 0;	/* TASK_COMM_LEN - 1 */
	EXPECT_LE(1, bio_trace_count_comm(trace, st.st_dev, name))
		TH_LOG("no bio of the Flush came from %s (kworker: %d, worker: %d)",
		       name, bio_trace_count_comm(trace, st.st_dev, "kworker"),
		       bio_trace_count_comm(trace, st.st_dev, "vhost-nvme-1") +
		       bio_trace_count_comm(trace, st.st_dev, "vhost-nvme-2") +
		       bio_trace_count_comm(trace, st.st_dev, "vhost-nvme-3"));
	free(trace);

	/*
	 * A read that misses the page cache: the worker does not wait for
	 * the disk (nor start the read); the helper does.
	 */
	ASSERT_EQ(0, posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED));
	ASSERT_TRUE(bio_trace_start());
	EXPECT_EQ(SC_OK, rw_q(_metadata, &g, 1, OP_READ, 1, 64, 8, b + PG, 0));
	trace = bio_trace_stop();
	ASSERT_NE(NULL, trace);
	snprintf(wname, sizeof(wname), "vhost-nvme-%d", getpid());
	wname[15] = 0;
	EXPECT_LE(1, bio_trace_count_comm(trace, st.st_dev, name))
		TH_LOG("the cold read's bios did not come from %s", name);
	EXPECT_EQ(0, bio_trace_count_comm(trace, st.st_dev, wname))
		TH_LOG("the worker read from the disk");
	free(trace);
	EXPECT_EQ(0, memcmp(g_hva(&g, b + PG), g_hva(&g, b), 4096));
	EXPECT_EQ(4096, pread(fd, check, 4096, 64 * 512));
	EXPECT_EQ(0, memcmp(check, g_hva(&g, b), 4096));

	/* The helper is in the owner's cgroup. */
	pid = find_task(name);
	ASSERT_LT(0, pid) TH_LOG("no task %s", name);
	task_cgroup(getpid(), mine, sizeof(mine));
	task_cgroup(pid, its, sizeof(its));
	EXPECT_STREQ(mine, its);

	/* Write Zeroes (FUA: fallocate and fsync) and Deallocate, on the file */
	EXPECT_EQ(SC_OK, rw_q(_metadata, &g, 1, OP_WZ, 1, 64, 8, 0, RW_FUA));
	EXPECT_EQ(4096, pread(fd, check, 4096, 64 * 512));
	EXPECT_TRUE(is_zero(check, 4096)) TH_LOG("Write Zeroes left data");
	fill(g_hva(&g, b), 4096, 32);
	ASSERT_EQ(SC_OK, rw_q(_metadata, &g, 1, OP_WRITE, 1, 128, 8, b, 0));
	r = g_hva(&g, b + PG);
	memset(r, 0, sizeof(*r));
	r->nlb = htole32(8);
	r->slba = htole64(128);
	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = OP_DSM;
	sqe.nsid = htole32(1);
	sqe.prp1 = b + PG;
	sqe.cdw11 = htole32(DSM_AD);
	EXPECT_EQ(SC_OK, __submit(_metadata, &g, 1, &sqe, NULL));
	EXPECT_EQ(4096, pread(fd, check, 4096, 128 * 512));
	EXPECT_TRUE(is_zero(check, 4096)) TH_LOG("Deallocate punched no hole");
	g_fini(&g);
	close(fd);
	unlink(path);
	cg_leave(cg);
}
#pragma GCC diagnostic pop

/*
 * An asynchronous DELETE_SQ returns at once with EINPROGRESS while a read
 * is in flight, the queue reports VHOST_NVME_QS_DELETING, the eventfd is
 * signalled once the read completed (and was posted), and the next
 * DELETE_SQ finishes without waiting.
 */
TEST_F(slow, delete_sq_async)
{
	struct vhost_nvme_qid d = { .qid = 1, .flags = VHOST_NVME_DRAIN_F_ASYNC };
	struct vhost_nvme_queue_state st;
	struct guest *g = &self->g;
	struct pollfd p = { .events = POLLIN };
	struct nvme_cqe cqe;
	uint16_t cid;
	long t0;

	SLOW_PROLOGUE();
	p.fd = d.eventfd = new_eventfd();
	cid = slow_read_in_flight(g);
	t0 = now_ms();
	ASSERT_EQ(-EINPROGRESS, xioctl(g->fd, VHOST_NVME_DELETE_SQ, &d));
	EXPECT_GT(200, now_ms() - t0) TH_LOG("an asynchronous delete waited");
	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_SQ, 1, &st));
	EXPECT_NE(0U, st.flags & VHOST_NVME_QS_DELETING);
	EXPECT_EQ(1U, st.inflight);
	EXPECT_EQ(0, poll(&p, 1, 0)) TH_LOG("signalled before the read completed");
	/* Asking again is fine, and still does not wait. */
	ASSERT_EQ(-EINPROGRESS, xioctl(g->fd, VHOST_NVME_DELETE_SQ, &d));
	EXPECT_EQ(1, poll(&p, 1, 3000)) TH_LOG("drain never signalled");
	EXPECT_LE(300, now_ms() - t0) TH_LOG("signalled before the read completed");
	ASSERT_EQ(0, wait_cqe(g, 1, &cqe, WAIT_MS));
	EXPECT_EQ(cid, cqe.cid);
	EXPECT_EQ(SC_OK, cqe.status >> 1);
	t0 = now_ms();
	ASSERT_EQ(0, g_delete(g, true, 1));
	EXPECT_GT(200, now_ms() - t0);
	EXPECT_EQ(-ENOENT, g_delete(g, true, 1));
	close(p.fd);
}

/*
 * An asynchronous QUIESCE returns EINPROGRESS while a read is in flight
 * and signals its eventfd when the read was posted; with nothing in
 * flight it returns 0 and signals nothing.
 */
TEST_F(slow, quiesce_async)
{
	struct vhost_nvme_quiesce q = { .flags = VHOST_NVME_DRAIN_F_ASYNC };
	struct guest *g = &self->g;
	struct pollfd p = { .events = POLLIN };
	struct nvme_cqe cqe;
	uint64_t v;
	long t0;

	SLOW_PROLOGUE();
	p.fd = q.eventfd = new_eventfd();
	slow_read_in_flight(g);
	t0 = now_ms();
	ASSERT_EQ(-EINPROGRESS, xioctl(g->fd, VHOST_NVME_QUIESCE, &q));
	EXPECT_GT(200, now_ms() - t0) TH_LOG("an asynchronous quiesce waited");
	EXPECT_EQ(0, poll(&p, 1, 0));
	EXPECT_EQ(1, poll(&p, 1, 3000)) TH_LOG("drain never signalled");
	ASSERT_EQ(0, wait_cqe(g, 1, &cqe, WAIT_MS));
	EXPECT_EQ(SC_OK, cqe.status >> 1);
	ASSERT_EQ((ssize_t)sizeof(v), read(p.fd, &v, sizeof(v)));
	/* Drained: a blocking QUIESCE returns at once. */
	t0 = now_ms();
	ASSERT_EQ(0, g_quiesce(g, false));
	EXPECT_GT(200, now_ms() - t0);
	ASSERT_EQ(0, g_quiesce(g, true));
	ASSERT_EQ(0, xioctl(g->fd, VHOST_NVME_QUIESCE, &q));
	EXPECT_EQ(0, poll(&p, 1, QUIET_MS)) TH_LOG("signalled with nothing to drain");
	ASSERT_EQ(0, g_quiesce(g, true));
	close(p.fd);
}

/* ---- a backend that never answers ------------------------------------ */

/* Run "dmsetup ARGS" quietly; true if it succeeded. */
static bool dmsetup(const char *args)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "dmsetup --noudevsync %s >/dev/null 2>&1", args);
	return system(cmd) == 0;
}

/* Give device-mapper device @name the table "0 SECTORS @target" and resume. */
static bool dm_retable(const char *name, uint64_t sectors, const char *target)
{
	char args[200];

	snprintf(args, sizeof(args), "load %s --table '0 %llu %s'", name,
		 (unsigned long long)sectors, target);
	if (!dmsetup(args))
		return false;
	snprintf(args, sizeof(args), "resume %s", name);
	return dmsetup(args);
}

/*
 * The backend holds every I/O forever (a device-mapper device suspended
 * with --noflush queues its bios until it is resumed), and later fails it
 * (an error table).  An owner killed with commands in flight there exits
 * at once, and so does one killed in the killable wait of a close(): the
 * rest of the release waits for the backend on the module's workqueue,
 * keeping the device's threads until the backend lets go; then they go.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"	/* TEST()'s variant */
/*
 * A file namespace whose file system is full (a 1 MiB tmpfs under an
 * 8 MiB sparse file): the first write that needs a block the file system
 * does not have fails with Capacity Exceeded (SCT 0, SC 81h, DNR), what
 * was written before reads back, and the namespace goes on reading.
 */
TEST(file_system_full)
{
	char dir[] = "/tmp/vhost-nvme-full-XXXXXX", path[64];
	unsigned int i, ok = 0;
	uint16_t st = SC_OK;
	struct guest g;
	uint64_t b, b2;
	int fd;

	ASSERT_NE(NULL, mkdtemp(dir));
	if (mount("none", dir, "tmpfs", 0, "size=1m")) {
		rmdir(dir);
		SKIP(return, "cannot mount a tmpfs: %s", strerror(errno));
	}
	snprintf(path, sizeof(path), "%s/ns.img", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ftruncate(fd, 8 << 20));
	io_guest(_metadata, &g, fd, NULL);
	b = g_alloc(&g, PG);
	b2 = g_alloc(&g, PG);
	for (i = 0; i < 512 && st == SC_OK; i++) {
		fill(g_hva(&g, b), PG, 60 + i);
		st = rw_q(_metadata, &g, 1, OP_WRITE, 1, i * 8ULL, 8, b, 0);
		ok += st == SC_OK;
	}
	EXPECT_EQ(ERR(SC_CAP_EXCEEDED), st) TH_LOG("write %u: status %#x", i,
						    st);
	EXPECT_LT(100U, ok) TH_LOG("only %u writes fit", ok);
	ASSERT_EQ(SC_OK, rw_q(_metadata, &g, 1, OP_READ, 1, 0, 8, b2, 0));
	fill(g_hva(&g, b), PG, 60);
	EXPECT_EQ(0, memcmp(g_hva(&g, b), g_hva(&g, b2), PG));
	g_fini(&g);
	close(fd);
	umount(dir);
	rmdir(dir);
}

TEST(stuck_backend_release)
{
	const char *dm = getenv("VHOST_NVME_STUCK");
	const char *lower = getenv("VHOST_NVME_STUCK_LOWER");
	int round;

	if (!dm || !*dm || !lower || !*lower || access(dm, R_OK | W_OK))
		SKIP(return, "$VHOST_NVME_STUCK not set or not accessible");
	for (round = 0; round < 2; round++) {
		const char *name = strrchr(dm, '/') + 1;
		char linear[160], suspend[96], c;
		int pfd[2], status, pids[MAX_WORKERS], n;
		long t0, waited, deadline;
		pid_t pid;

		snprintf(linear, sizeof(linear), "linear %s 0", lower);
		snprintf(suspend, sizeof(suspend), "suspend --noflush %s", name);
		ASSERT_TRUE(dm_retable(name, 32768, linear));
		ASSERT_TRUE(dmsetup(suspend));
		ASSERT_EQ(0, pipe(pfd));
		pid = fork();
		ASSERT_LE(0, pid);
		if (!pid) {
			struct vhost_nvme_queue_state st;
			struct nvme_sqe sqe;
			struct guest g;
			uint64_t b;
			int bfd, i;

			close(pfd[0]);
			bfd = open(dm, O_RDWR | O_CLOEXEC);
			if (bfd < 0)
				_exit(2);
			io_guest(_metadata, &g, bfd, NULL);
			b = g_alloc(&g, PG);
			for (i = 0; i < 4; i++) {
				rw_sqe(&sqe, OP_READ, 1, i * 8, 8);
				sqe.prp1 = b;
				sq_put(&g, 1, &sqe);
			}
			sq_ring(&g, 1);
			for (i = 0; i < 200; i++) {
				if (g_qstate(&g, VHOST_NVME_QTYPE_SQ, 1, &st))
					_exit(3);
				if (st.inflight == 4)
					break;
				msleep(10);
			}
			if (st.inflight != 4 || write(pfd[1], "x", 1) != 1)
				_exit(4);
			if (round)
				close(g.fd);	/* waits, killably */
			else
				pause();
			_exit(0);
		}
		close(pfd[1]);
		ASSERT_EQ(1, read(pfd[0], &c, 1)) TH_LOG("round %d: no I/O in flight",
							 round);
		close(pfd[0]);
		msleep(100);	/* in close()'s wait by now (round 1) */
		t0 = now_ms();
		kill(pid, SIGKILL);
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		waited = now_ms() - t0;
		EXPECT_TRUE(WIFSIGNALED(status));
		EXPECT_GT(KILL_BOUND_MS, waited)
			TH_LOG("round %d: the owner took %ld ms to die", round,
			       waited);
		/* Its worker waits with the drain for the backend. */
		n = worker_pids_of(pid, pids, MAX_WORKERS);
		EXPECT_EQ(1, n) TH_LOG("round %d: the drain did not wait", round);
		/* The backend fails what it held: the release ends. */
		ASSERT_TRUE(dm_retable(name, 32768, "error"));
		deadline = now_ms() + WAIT_MS;
		while (worker_pids_of(pid, pids, MAX_WORKERS) > 0 &&
		       now_ms() < deadline)
			msleep(10);
		EXPECT_EQ(0, worker_pids_of(pid, pids, MAX_WORKERS))
			TH_LOG("round %d: the device outlived its backend", round);
	}
}
/* ---- a pass the VMM holds up ----------------------------------------- */

/*
 * Guest memory registered with userfaultfd, as postcopy migration has all
 * of it: a worker that pins a page of it not yet there waits inside its
 * pass until the fault is resolved, for as long as the VMM takes.
 */
#define UFFD_SIZE	(2UL << 20)

struct uffd_mem {
	int uffd;
	uint8_t *mem;
	uint64_t gpa;
};

/* Map UFFD_SIZE after @g's memory, register it, add it to the table. */
static int uffd_mem_add(struct guest *g, struct uffd_mem *u)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	struct vhost_memory_region r[2];

	u->uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (u->uffd < 0 || ioctl(u->uffd, UFFDIO_API, &api))
		return -errno;
	u->mem = mmap(NULL, UFFD_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (u->mem == MAP_FAILED)
		return -errno;
	reg.range.start = (uintptr_t)u->mem;
	reg.range.len = UFFD_SIZE;
	if (ioctl(u->uffd, UFFDIO_REGISTER, &reg))
		return -errno;
	u->gpa = g->gpa + GUEST_SIZE;
	r[0] = g_region(g, 0, GUEST_SIZE);
	r[1] = (struct vhost_memory_region){
		.guest_phys_addr = u->gpa,
		.memory_size = UFFD_SIZE,
		.userspace_addr = (uintptr_t)u->mem,
	};
	return g_set_mem(g, 2, r);
}

/* 0 once a page fault is reported within @ms: somebody waits in it. */
static int uffd_wait_fault(int uffd, long ms)
{
	struct pollfd p = { .fd = uffd, .events = POLLIN };
	struct uffd_msg msg;

	if (poll(&p, 1, ms) != 1)
		return -ETIMEDOUT;
	if (read(uffd, &msg, sizeof(msg)) != sizeof(msg))
		return -EIO;
	return msg.event == UFFD_EVENT_PAGEFAULT ? 0 : -EIO;
}

/* Resolve every fault of the region at @addr with zero pages. */
static int uffd_resolve(int uffd, void *addr)
{
	struct uffdio_zeropage z = {
		.range = { .start = (uintptr_t)addr, .len = UFFD_SIZE },
	};

	return ioctl(uffd, UFFDIO_ZEROPAGE, &z) && errno != EEXIST ? -errno : 0;
}

/* An ioctl run by a thread of the owner, watched from the test. */
struct ioctl_job {
	pthread_t thread;
	int fd;
	unsigned long req;
	void *arg;
	int ret;
	bool done;
};

static void *ioctl_job_run(void *p)
{
	struct ioctl_job *j = p;

	j->ret = xioctl(j->fd, j->req, j->arg);
	__atomic_store_n(&j->done, true, __ATOMIC_RELEASE);
	return NULL;
}

static int ioctl_job_start(struct ioctl_job *j, int fd, unsigned long req,
			   void *arg)
{
	j->fd = fd;
	j->req = req;
	j->arg = arg;
	j->done = false;
	return pthread_create(&j->thread, NULL, ioctl_job_run, j);
}

/* True if the job's ioctl returned within @ms. */
static bool ioctl_job_wait(struct ioctl_job *j, long ms)
{
	long deadline = now_ms() + ms;

	while (!__atomic_load_n(&j->done, __ATOMIC_ACQUIRE) &&
	       now_ms() < deadline)
		msleep(5);
	return __atomic_load_n(&j->done, __ATOMIC_ACQUIRE);
}

/* CQ @qid with interrupts, served by worker @worker. */
static int g_create_cq_on(struct guest *g, uint16_t qid, uint16_t size,
			  uint32_t worker)
{
	struct vhost_nvme_cq c = { .qid = qid, .size = size,
				   .flags = VHOST_NVME_CQ_F_IRQ_ENABLED,
				   .worker = worker };
	struct q *cq = &g->cq[qid];
	int ret;

	cq->gpa = g_alloc(g, (size_t)size * sizeof(struct nvme_cqe));
	cq->ring = g_hva(g, cq->gpa);
	cq->irqfd = new_eventfd();
	cq->kickfd = new_eventfd();
	c.addr = cq->gpa;
	c.irqfd = cq->irqfd;
	c.kickfd = cq->kickfd;
	ret = xioctl(g->fd, VHOST_NVME_CREATE_CQ, &c);
	if (!ret) {
		cq->live = true;
		cq->size = size;
		cq->head = 0;
		cq->phase = 1;
		cq->strict_irq = true;
	}
	return ret;
}

/* A read of LBA 64 into the first page of @u, on SQ 1: it faults. */
static void read_into_uffd(struct guest *g, struct uffd_mem *u)
{
	struct nvme_sqe sqe;

	rw_sqe(&sqe, OP_READ, 1, 64, 8);
	sqe.prp1 = u->gpa;
	sqe.cid = 0;
	sq_put(g, 1, &sqe);
	sq_ring(g, 1);
}

/* A read on SQ 2 (worker 1), not waited for: 0 or -ETIMEDOUT in *@ms. */
static int read_on_sq2(struct guest *g, uint64_t buf, long *ms)
{
	struct nvme_sqe sqe;
	struct nvme_cqe cqe;
	long t0 = now_ms();
	int ret;

	rw_sqe(&sqe, OP_READ, 1, 64, 8);
	sqe.prp1 = buf;
	sqe.cid = 0;
	sq_put(g, 2, &sqe);
	sq_ring(g, 2);
	ret = wait_cqe(g, 2, &cqe, 2000);
	*ms = now_ms() - t0;
	if (!ret && cqe.status >> 1)
		ret = -EIO;
	return ret;
}

/*
 * Worker 0 waits in its pass for a page the VMM has not provided yet.
 * That holds up worker 0 and the ioctls that must wait for it, nothing
 * else: worker 1's I/O goes on, an ioctl on worker 1's queue returns at
 * once, SET_MEM_TABLE waits (a pass may still use the old table) without
 * stopping worker 1 meanwhile, and once the page is there the read
 * completes with the data.
 */
TEST(stuck_pass_stalls_only_its_worker)
{
	const char *dev = getenv("VHOST_NVME_NULLB");
	struct vhost_nvme_irq_coalescing co = { .qid = 2, .time_us = 100 };
	struct vhost_nvme_worker w = { 0 };
	struct ioctl_job coal, memt;
	struct vhost_memory *m;
	struct uffd_mem u = { .uffd = -1 };
	long io1_ms = 0, io2_ms = 0;
	int bfd, ret, io1, io2 = -1;
	bool coal_done, memt_early = false;
	struct nvme_cqe cqe;
	struct guest g;
	uint64_t b, b2;

	if (!dev || !*dev || access(dev, R_OK | W_OK))
		SKIP(return, "$VHOST_NVME_NULLB not set or not accessible");
	bfd = open(dev, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, bfd);
	io_guest(_metadata, &g, bfd, NULL);
	ret = uffd_mem_add(&g, &u);
	ASSERT_EQ(0, ret) TH_LOG("userfaultfd memory: %s", strerror(-ret));
	ASSERT_EQ(0, xioctl(g.fd, VHOST_NVME_NEW_WORKER, &w));
	ASSERT_EQ(0, g_create_cq_on(&g, 2, 16, 1));
	ASSERT_EQ(0, g_create_sq(&g, 2, 16, 2));
	b = g_alloc(&g, PG);
	b2 = g_alloc(&g, PG);
	fill(g_hva(&g, b), PG, 91);
	ASSERT_EQ(SC_OK, rw_q(_metadata, &g, 1, OP_WRITE, 1, 64, 8, b, 0));
	/* The same table again, for SET_MEM_TABLE below */
	m = calloc(1, sizeof(*m) + 2 * sizeof(m->regions[0]));
	ASSERT_NE(NULL, m);
	m->nregions = 2;
	m->regions[0] = g_region(&g, 0, GUEST_SIZE);
	m->regions[1] = (struct vhost_memory_region){
		.guest_phys_addr = u.gpa, .memory_size = UFFD_SIZE,
		.userspace_addr = (uintptr_t)u.mem,
	};

	read_into_uffd(&g, &u);
	ASSERT_EQ(0, uffd_wait_fault(u.uffd, WAIT_MS))
		TH_LOG("the worker did not touch the userfaultfd page");

	/* From here until the fault is resolved nothing may return early. */
	ASSERT_EQ(0, ioctl_job_start(&coal, g.fd, VHOST_NVME_SET_IRQ_COALESCING,
				     &co));
	coal_done = ioctl_job_wait(&coal, 1000);
	io1 = read_on_sq2(&g, b2, &io1_ms);
	ret = ioctl_job_start(&memt, g.fd, VHOST_SET_MEM_TABLE, m);
	if (!ret) {
		msleep(200);
		memt_early = __atomic_load_n(&memt.done, __ATOMIC_ACQUIRE);
		io2 = read_on_sq2(&g, b2, &io2_ms);
	}
	EXPECT_EQ(0, uffd_resolve(u.uffd, u.mem));
	EXPECT_TRUE(ioctl_job_wait(&coal, WAIT_MS));
	pthread_join(coal.thread, NULL);
	ASSERT_EQ(0, ret);
	EXPECT_TRUE(ioctl_job_wait(&memt, WAIT_MS));
	pthread_join(memt.thread, NULL);

	EXPECT_TRUE(coal_done)
		TH_LOG("an ioctl on worker 1's CQ waited for worker 0's pass");
	EXPECT_EQ(0, coal.ret);
	EXPECT_EQ(0, io1) TH_LOG("worker 1's read: %s after %ld ms",
				 strerror(-io1), io1_ms);
	EXPECT_FALSE(memt_early)
		TH_LOG("SET_MEM_TABLE returned while a pass used the old table");
	EXPECT_EQ(0, memt.ret);
	EXPECT_EQ(0, io2) TH_LOG("worker 1's read during SET_MEM_TABLE: %s after %ld ms",
				 strerror(-io2), io2_ms);
	ASSERT_EQ(0, wait_cqe(&g, 1, &cqe, WAIT_MS));
	EXPECT_EQ(SC_OK, cqe.status >> 1);
	EXPECT_EQ(0, memcmp(u.mem, g_hva(&g, b), PG));
	free(m);
	g_fini(&g);
	munmap(u.mem, UFFD_SIZE);
	close(u.uffd);
	close(bfd);
}

/*
 * SET_MEM_TABLE waits for the passes that may use the old table; with one
 * held up by the VMM (a userfaultfd page), a fatal signal ends the wait.
 * The test keeps a copy of the owner's userfaultfd to let the worker go
 * once the owner is dead.
 */
TEST(mem_table_wait_is_killable)
{
	const char *dev = getenv("VHOST_NVME_NULLB");
	int pfd[2], status, uffd = -1, pidfd;
	struct { int uffd; uint8_t *mem; } msg;
	long t0, waited = -1;
	pid_t pid;

	if (!dev || !*dev || access(dev, R_OK | W_OK))
		SKIP(return, "$VHOST_NVME_NULLB not set or not accessible");
	ASSERT_EQ(0, pipe(pfd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct uffd_mem u = { .uffd = -1 };
		struct vhost_memory *m;
		struct guest g;
		int bfd;

		close(pfd[0]);
		bfd = open(dev, O_RDWR | O_CLOEXEC);
		if (bfd < 0)
			_exit(2);
		io_guest(_metadata, &g, bfd, NULL);
		if (uffd_mem_add(&g, &u))
			_exit(3);
		m = calloc(1, sizeof(*m) + sizeof(m->regions[0]));
		if (!m)
			_exit(4);
		m->nregions = 1;
		m->regions[0] = g_region(&g, 0, GUEST_SIZE);
		read_into_uffd(&g, &u);
		if (uffd_wait_fault(u.uffd, WAIT_MS))
			_exit(5);
		msg.uffd = u.uffd;
		msg.mem = u.mem;
		if (write(pfd[1], &msg, sizeof(msg)) != sizeof(msg))
			_exit(6);
		ioctl(g.fd, VHOST_SET_MEM_TABLE, m);
		_exit(0);
	}
	close(pfd[1]);
	if (read(pfd[0], &msg, sizeof(msg)) == sizeof(msg)) {
		pidfd = syscall(__NR_pidfd_open, pid, 0);
		if (pidfd >= 0)
			uffd = syscall(__NR_pidfd_getfd, pidfd, msg.uffd, 0);
		msleep(200);	/* in SET_MEM_TABLE's wait by now */
		t0 = now_ms();
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, WNOHANG) != pid &&
		       now_ms() - t0 < 2000)
			msleep(5);
		waited = now_ms() - t0;
		/* Let the worker go, dead owner or not. */
		if (uffd >= 0)
			uffd_resolve(uffd, msg.mem);
	}
	close(pfd[0]);
	if (waited < 0 || waited >= 2000)
		waitpid(pid, &status, 0);
	if (uffd >= 0)
		close(uffd);
	ASSERT_LE(0, waited) TH_LOG("the owner did not get as far as SET_MEM_TABLE");
	ASSERT_LE(0, uffd) TH_LOG("pidfd_getfd: %s", strerror(errno));
	EXPECT_TRUE(WIFSIGNALED(status));
	EXPECT_GT(KILL_BOUND_MS, waited)
		TH_LOG("the owner took %ld ms to die in SET_MEM_TABLE", waited);
}
#pragma GCC diagnostic pop

/*
 * VHOST_NVME_TESTS="NAME ...": run only the tests of those full names
 * (fixture.variant.test, as the TAP lines name them); the others report
 * SKIP without running their setup.  The negative controls use it to run
 * just the tests their patch must turn red.  (The kselftest harness of 6.1
 * has no filter of its own.)
 */
#define MAX_TESTS	512

static struct {
	struct __test_metadata *t;
	void (*fn)(struct __test_metadata *t,
		   struct __fixture_variant_metadata *v);
} test_fns[MAX_TESTS];

static bool test_listed(const char *list, const char *name)
{
	size_t n = strlen(name);
	const char *p = list;

	while ((p = strstr(p, name))) {
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || !p[n]))
			return true;
		p += n;
	}
	return false;
}

static void run_if_listed(struct __test_metadata *_metadata,
			  struct __fixture_variant_metadata *variant)
{
	char name[256];
	int i;

	snprintf(name, sizeof(name), "%s.%s%s%s", _metadata->fixture->name,
		 variant->name, *variant->name ? "." : "", _metadata->name);
	for (i = 0; i < MAX_TESTS && test_fns[i].t != _metadata; i++)
		;
	if (i == MAX_TESTS || !test_listed(getenv("VHOST_NVME_TESTS"), name))
		SKIP(return, "not in $VHOST_NVME_TESTS");
	test_fns[i].fn(_metadata, variant);
}

int main(int argc, char **argv)
{
	const char *list = getenv("VHOST_NVME_TESTS");
	struct __fixture_metadata *f;
	struct __test_metadata *t;
	int n = 0;

	if (list && *list)
		for (f = __fixture_list; f; f = f->next)
			for (t = f->tests; t; t = t->next) {
				if (n == MAX_TESTS) {
					fprintf(stderr, "more than %d tests\n",
						MAX_TESTS);
					return 1;
				}
				test_fns[n].t = t;
				test_fns[n++].fn = t->fn;
				t->fn = run_if_listed;
			}
	return test_harness_run(argc, argv);
}
