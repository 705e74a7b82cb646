/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vhost-nvme selftests: what the test programs share
 *
 * The selftests are four programs, one per subject, each built from its own
 * file and this header (as tools/testing/selftests/iommufd is organised):
 *  - vhost_nvme_ctl (fixture "ctl"): control-plane tests, the argument
 *    checking of every ioctl.  They need /dev/vhost-nvme only (plus a small
 *    regular file in /tmp as a namespace backend).
 *  - vhost_nvme_io (fixture "io"): data-path tests, one variant per
 *    backend.  They need $VHOST_NVME_NULLB (null_blk, memory_backed=1 gb=1
 *    discard=1, write cache "write back"), $VHOST_NVME_LOOP (loop device on
 *    a 256 MiB tmpfs file), $VHOST_NVME_FILE_DIRECT (a 64 MiB file on ext4,
 *    opened with O_DIRECT) and $VHOST_NVME_FILE_BUFFERED (a 64 MiB tmpfs
 *    file); a variant whose variable is unset is skipped.
 *  - vhost_nvme_slow (fixture "slow"): what must hold while commands sit
 *    behind a backend that takes 1 s per I/O ($VHOST_NVME_SLOW), the
 *    killable waits among it.
 *  - vhost_nvme_global (the harness's "global" fixture: plain TEST()s):
 *    tests with backends of their own: a freezable ext4
 *    ($VHOST_NVME_EXT4_DIR), a tmpfs that fills up, a device-mapper device
 *    that holds I/O forever ($VHOST_NVME_STUCK over
 *    $VHOST_NVME_STUCK_LOWER), and a pass the VMM holds up with
 *    userfaultfd ($VHOST_NVME_NULLB).
 * They are separate programs, not one program made of several files,
 * because the kselftest harness of 6.1 keeps its lists of tests static in
 * each translation unit.
 *
 * This header holds what more than one of them uses: the NVMe definitions,
 * the guest with its queues and doorbells, the backend, tracing, worker,
 * limit and cgroup helpers, and main()'s test filter (vhost_nvme_main()).
 * A helper that only one program uses is in that program's file.
 *
 * How it works
 * ------------
 * Each program is at the same time the VMM and the guest.  It mmap()s
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
 * run.sh in this directory creates every backend, exports
 * VHOST_NVME_NULLB, VHOST_NVME_LOOP, VHOST_NVME_SLOW, VHOST_NVME_EXT4_DIR,
 * VHOST_NVME_FILE_DIRECT, VHOST_NVME_FILE_BUFFERED, VHOST_NVME_STUCK and
 * VHOST_NVME_STUCK_LOWER, and runs the four programs in turn.
 * $VHOST_NVME_TESTS, a list of full test names, runs only those (in each
 * program; the others report SKIP).
 *
 * The kselftest harness forks one child per test, so every test gets a
 * fresh device file and is its own owner (ownership is by mm).
 */
#ifndef __SELFTEST_VHOST_NVME_UTILS_H
#define __SELFTEST_VHOST_NVME_UTILS_H

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
#include <sys/utsname.h>
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
/* Every feature but dirty logging, which needs a log: what setups set */
#define F_SETUP		(VHOST_NVME_F_ALL & ~VHOST_NVME_F_LOG_ALL)
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
#define SC_ACCESS_DENIED	0x286
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

static inline int xioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) ? -errno : 0;
}

static inline long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void msleep(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static inline int new_eventfd(void)
{
	return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

/* What guest memory is made of (QEMU's memory backends) */
enum guest_mem {
	MEM_ANON,	/* private anonymous pages: the default */
	MEM_MEMFD,	/* a shared memfd: memory-backend-memfd, vhost-user */
	MEM_HUGETLB,	/* a memfd of 2 MiB huge pages: hugepages=on */
};

static inline void g_open_mem(struct __test_metadata *_metadata,
			      struct guest *g, enum guest_mem kind)
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

static inline void g_open(struct __test_metadata *_metadata, struct guest *g)
{
	g_open_mem(_metadata, g, MEM_ANON);
}

static inline void g_close_queues(struct guest *g)
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

static inline void g_fini(struct guest *g)
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

static inline void *g_hva(struct guest *g, uint64_t gpa)
{
	return g->mem + (gpa - g->gpa);
}

/* Zeroed, 4 KiB aligned guest memory; returns its GPA. */
static inline uint64_t g_alloc(struct guest *g, size_t len)
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

static inline int g_set_mem(struct guest *g, unsigned int n,
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

static inline struct vhost_memory_region g_region(struct guest *g, size_t off,
						  size_t len)
{
	struct vhost_memory_region r = {
		.guest_phys_addr = g->gpa + off,
		.memory_size = len,
		.userspace_addr = (uintptr_t)(g->mem + off),
	};
	return r;
}

static inline int g_mem_default(struct guest *g)
{
	struct vhost_memory_region r = g_region(g, 0, GUEST_SIZE);

	return g_set_mem(g, 1, &r);
}

static inline int g_features(struct guest *g, uint64_t f)
{
	return xioctl(g->fd, VHOST_SET_FEATURES, &f);
}

/* SET_OWNER, SET_FEATURES, one-region memory table. */
static inline void g_owner(struct __test_metadata *_metadata, struct guest *g,
			   uint64_t features)
{
	ASSERT_EQ(0, xioctl(g->fd, VHOST_SET_OWNER, NULL));
	ASSERT_EQ(0, g_features(g, features));
	ASSERT_EQ(0, g_mem_default(g));
}

/* ---- the dirty log (VHOST_NVME_SET_LOG, VHOST_NVME_F_LOG_ALL) -------- */

/* Bytes of a log that covers the default memory table exactly */
#define LOG_BYTES	((GUEST_GPA + GUEST_SIZE) / PG / 8)

static inline uint64_t *log_alloc(void)
{
	void *p = mmap(NULL, LOG_BYTES, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static inline int g_set_log(struct guest *g, const void *addr, uint64_t size)
{
	struct vhost_nvme_log l = { .addr = (uintptr_t)addr, .size = size };

	return xioctl(g->fd, VHOST_NVME_SET_LOG, &l);
}

static inline bool log_test(const uint64_t *log, uint64_t gpa)
{
	uint64_t pfn = gpa / PG;

	return le64toh(log[pfn / 64]) >> (pfn % 64) & 1;
}

/* Pages logged in [@gpa, @gpa + @len) */
static inline unsigned int log_count(const uint64_t *log, uint64_t gpa,
				     uint64_t len)
{
	unsigned int n = 0;
	uint64_t a;

	for (a = gpa & ~(PG - 1); a < gpa + len; a += PG)
		n += log_test(log, a);
	return n;
}

/* Pages logged in all */
static inline unsigned int log_total(const uint64_t *log)
{
	unsigned int n = 0;
	size_t i;

	for (i = 0; i < LOG_BYTES / 8; i++)
		n += __builtin_popcountll(log[i]);
	return n;
}

static inline int g_db_vmm(struct guest *g)
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

static inline int g_db_shadow(struct guest *g, uint64_t db, uint64_t ei)
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
static inline int g_create_cq_err(struct guest *g, uint16_t qid, uint16_t size,
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

static inline int g_create_cq(struct guest *g, uint16_t qid, uint16_t size,
			      bool irq)
{
	return g_create_cq_err(g, qid, size, irq, -1);
}

/* A SQ; with @errfd >= 0, signalled if the queue stops on a fault. */
static inline int g_create_sq_err(struct guest *g, uint16_t qid, uint16_t size,
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

static inline int g_create_sq(struct guest *g, uint16_t qid, uint16_t size,
			      uint16_t cqid)
{
	return g_create_sq_err(g, qid, size, cqid, -1);
}

static inline int g_delete(struct guest *g, bool sq, uint16_t qid)
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

static inline int g_attach(struct guest *g, uint32_t nsid, int fd,
			   uint32_t flags, uint8_t lba_shift,
			   struct vhost_nvme_ns *out)
{
	struct vhost_nvme_ns ns = {
		.nsid = nsid, .fd = fd, .flags = flags, .lba_shift = lba_shift,
	};
	int ret = xioctl(g->fd, VHOST_NVME_ATTACH_NS, &ns);

	if (out)
		*out = ns;
	return ret;
}

static inline int g_detach(struct guest *g, uint32_t nsid)
{
	struct vhost_nvme_nsid n = { .nsid = nsid };

	return xioctl(g->fd, VHOST_NVME_DETACH_NS, &n);
}

static inline int g_qstate(struct guest *g, uint8_t type, uint16_t qid,
			   struct vhost_nvme_queue_state *st)
{
	memset(st, 0, sizeof(*st));
	st->qid = qid;
	st->type = type;
	return xioctl(g->fd, VHOST_NVME_GET_QUEUE_STATE, st);
}

static inline int g_quiesce(struct guest *g, bool resume)
{
	struct vhost_nvme_quiesce qq = { 0 };

	return xioctl(g->fd, resume ? VHOST_NVME_RESUME : VHOST_NVME_QUIESCE,
		      &qq);
}

/* Owner, features, table, VMM doorbells, ns 1 = @bfd, CQ 1 + SQ 1 (64). */
static inline void io_guest(struct __test_metadata *_metadata, struct guest *g,
			    int bfd, struct vhost_nvme_ns *ns)
{
	g_open(_metadata, g);
	g_owner(_metadata, g, F_SETUP);
	ASSERT_EQ(0, g_db_vmm(g));
	ASSERT_EQ(0, g_attach(g, 1, bfd, 0, 0, ns));
	ASSERT_EQ(0, g_create_cq(g, 1, 64, true));
	ASSERT_EQ(0, g_create_sq(g, 1, 64, 1));
}

/* In a test whose fixture has its guest in self->g. */
#define HVA(gpa) g_hva(&self->g, gpa)

/* Linux nvme_dbbuf_need_event() */
static inline bool need_event(uint16_t event_idx, uint16_t new_idx,
			      uint16_t old)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old);
}

static inline void kick(int fd)
{
	uint64_t one = 1;

	if (fd >= 0 && write(fd, &one, sizeof(one)) != sizeof(one))
		perror("eventfd write");
}

/* Store a doorbell value and kick, following EventIdx in shadow mode. */
static inline void db_write(struct guest *g, unsigned int idx, uint16_t val,
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

static inline uint16_t sq_put(struct guest *g, uint16_t qid,
			      struct nvme_sqe *sqe)
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

static inline void sq_ring(struct guest *g, uint16_t qid)
{
	struct q *sq = &g->sq[qid];

	db_write(g, 2 * qid, sq->tail, sq->kickfd, &sq->force_kick);
}

static inline void cq_ring(struct guest *g, uint16_t qid)
{
	struct q *cq = &g->cq[qid];

	db_write(g, 2 * qid + 1, cq->head, cq->kickfd, &cq->force_kick);
}

static inline bool cq_peek(struct guest *g, uint16_t qid, struct nvme_cqe *out)
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

static inline void cq_pop(struct guest *g, uint16_t qid)
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
static inline bool irq_take(struct q *cq)
{
	uint64_t v;

	return cq->irqfd >= 0 && read(cq->irqfd, &v, sizeof(v)) == sizeof(v);
}

/*
 * A CQE is visible on a CQ whose interrupts are on and not coalesced: the
 * device signals the irqfd at the end of the pass that posted it, so the
 * signal is either in or on its way.  Wait IRQ_GRACE_MS for it.
 */
static inline bool irq_for_cqe(struct q *cq)
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
static inline void irq_rearm(struct guest *g, uint16_t cqid)
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
static inline int wait_cqe(struct guest *g, uint16_t cqid, struct nvme_cqe *out,
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

/* Submit on @sqid, wait for its completion; returns CQE status >> 1. */
static inline uint16_t __submit(struct __test_metadata *_metadata,
				struct guest *g, uint16_t sqid,
				struct nvme_sqe *sqe, struct nvme_cqe *out)
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
static inline void build_prp(struct guest *g, uint64_t buf, size_t len,
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

static inline void rw_sqe(struct nvme_sqe *sqe, uint8_t op, uint32_t nsid,
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
static inline uint16_t rw_q(struct __test_metadata *_metadata, struct guest *g,
			    uint16_t sqid, uint8_t op, uint32_t nsid,
			    uint64_t slba, uint32_t nlb, uint64_t buf,
			    uint32_t cdw12)
{
	struct nvme_sqe sqe;

	rw_sqe(&sqe, op, nsid, slba, nlb);
	sqe.cdw12 |= htole32(cdw12);
	if (op != OP_WZ)
		build_prp(g, buf, (size_t)nlb << 9, &sqe.prp1, &sqe.prp2);
	return __submit(_metadata, g, sqid, &sqe, NULL);
}

static inline void fill(void *p, size_t len, uint32_t seed)
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

static inline bool is_zero(const void *p, size_t len)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

/* ---- backend helpers -------------------------------------------------- */

/*
 * O_DIRECT access to the backend, bypassing the module (buffered where the
 * file system has no direct I/O, as tmpfs before 6.6: its page cache is the
 * backend then).
 */
static inline int bdev_io(const char *path, bool write, uint64_t off, void *buf,
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

/* A 1 MiB regular file on /tmp, already unlinked. */
static inline int tmp_file(size_t size, int flags)
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

/* Write @val to a sysfs or debugfs file. */
static inline bool put_str(const char *file, const char *val)
{
	FILE *f = fopen(file, "w");
	bool ok;

	if (!f)
		return false;
	ok = fputs(val, f) >= 0;
	return !fclose(f) && ok;
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
static inline bool bio_trace_start(void)
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
static inline char *bio_trace_stop(void)
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

/* ---- polling, workers, interrupt coalescing ------------------------ */

static inline int g_poll(struct guest *g, uint32_t us)
{
	struct vhost_nvme_poll p = { .poll_us = us };

	return xioctl(g->fd, VHOST_NVME_SET_POLL, &p);
}

static inline int g_coalesce(struct guest *g, uint16_t qid, uint32_t thr,
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
 * Add to @pids (holding @n, room for @max) the tasks listed in @dir (/proc
 * or /proc/PID/task) whose comm is @want; returns the new count.
 */
static inline int comm_scan(const char *dir, const char *want, int *pids,
			    int n, int max)
{
	char path[PATH_MAX + 300], comm[32];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return n;
	while ((de = readdir(d)) && n < max) {
		FILE *f;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "%.64s/%s/comm", dir, de->d_name);
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
	return n;
}

/*
 * The worker model the module must use on the running kernel: a vhost_task,
 * a thread of the owner, from 6.11 (the vhost_task interface with a kill
 * callback) on; a kthread before.
 */
static inline bool workers_are_threads(void)
{
	struct utsname u;
	int major = 0, minor = 0;

	if (uname(&u) || sscanf(u.release, "%d.%d", &major, &minor) != 2)
		return false;
	return major > 6 || (major == 6 && minor >= 11);
}

/*
 * The pids of the threads whose name is the worker name of process @owner,
 * in creation (pid) order: worker 0 first.  Returns how many, at most @max.
 * Threads of @owner (vhost_task) or kthreads, whichever the kernel has.
 */
static inline int worker_pids_of(pid_t owner, int *pids, int max)
{
	char want[32], task[64];
	int n, i, j;

	snprintf(want, sizeof(want), "vhost-nvme-%d", (int)owner);
	want[15] = '\0';	/* TASK_COMM_LEN - 1 */
	snprintf(task, sizeof(task), "/proc/%d/task", (int)owner);
	n = comm_scan(task, want, pids, 0, max);
	n = comm_scan("/proc", want, pids, n, max);
	for (i = 1; i < n; i++)		/* a few entries: insertion sort */
		for (j = i; j > 0 && pids[j - 1] > pids[j]; j--) {
			int t = pids[j];

			pids[j] = pids[j - 1];
			pids[j - 1] = t;
		}
	return n;
}

static inline int worker_pids(int *pids, int max)
{
	return worker_pids_of(getpid(), pids, max);
}

/*
 * This process's workers; with @sleeping, only those in interruptible
 * sleep (state S: waiting for a kick).
 */
static inline int __count_workers(bool sleeping)
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

static inline int count_workers(void)
{
	return __count_workers(false);
}

/*
 * Wait up to @ms for process @owner to have no worker left, and return how
 * many it has.  A worker stopped by the module is gone for the module when
 * the ioctl returns, but its task may linger a moment in /proc while it
 * exits.
 */
static inline int wait_no_workers(pid_t owner, long ms)
{
	int pids[MAX_WORKERS], n, i;

	for (i = 0; (n = worker_pids_of(owner, pids, MAX_WORKERS)) > 0 &&
		    i < ms / 10; i++)
		msleep(10);
	return n;
}

/* ---- limits (VHOST_NVME_SET_LIMITS) ------------------------------ */

static inline int g_limits(struct guest *g, struct vhost_nvme_limits *l)
{
	l->size = sizeof(*l);
	return xioctl(g->fd, VHOST_NVME_SET_LIMITS, l);
}

/* ---- cgroups: what the device's work is charged to ----------------- */

#define CGROOT	"/sys/fs/cgroup"

/* Enter a new cgroup v2 child with the memory and io controllers. */
static inline bool cg_enter(char *path, size_t len)
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
static inline void cg_leave(const char *path)
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

/* How long an owner killed in a killable wait may take to die, in ms. */
#define KILL_BOUND_MS	400

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

static inline bool test_listed(const char *list, const char *name)
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

static inline void run_if_listed(struct __test_metadata *_metadata,
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

/*
 * main() of each program: with $VHOST_NVME_TESTS set, every test of the
 * program runs through run_if_listed().
 */
static inline int vhost_nvme_main(int argc, char **argv)
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

#endif /* __SELFTEST_VHOST_NVME_UTILS_H */
