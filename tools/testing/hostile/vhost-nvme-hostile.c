// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-nvme-hostile: a hostile guest and a hostile VMM against the module.
 *
 * Phases (each bounded in count and time):
 *  storm  - random and crafted SQEs on four SQs sharing two CQs: garbage,
 *	     bad opcodes, namespaces, flags, LBA ranges, PRP offsets, PRP
 *	     lists that loop or leave the memory table, SGL segments that loop,
 *	     bad SGL types, lengths and granularity, CID reuse, over-MDTS, plus
 *	     valid I/O; every crafted command must complete with the status
 *	     the NVMe specification names, every command exactly once.  While
 *	     it runs, the memory table is replaced and an SQ with commands in
 *	     flight is deleted and re-created, again and again.  A tenth of
 *	     the valid I/O is verified: stamped writes and reads of blocks of
 *	     their own (one command on a block at a time), each read must
 *	     return what the last write that completed put there.
 *  faults - I/O to a namespace whose backend fails (device-mapper error
 *	     target, given as argv[2]): every command completes with a media
 *	     error status.
 *  ioctls - random ioctl numbers, sizes and argument bytes on another fd,
 *	     and queue, drain and namespace arguments with random flags and
 *	     eventfds (some real) that pass the reserved-field checks.
 *  exhaust - (-x SLOW) every command as costly for the host as it can be
 *	     (bounced MDTS transfers, 256-range Deallocate, Write Zeroes),
 *	     every SQ full, behind a slow backend: all complete, and the host
 *	     memory held (slab, the memory cgroup) stays within the cap.
 *  stall  - a VMM that holds up a pass and a backend that holds I/O: the
 *	     owner (a child) puts part of guest memory behind userfaultfd,
 *	     as postcopy migration does, and reads into a page of it that
 *	     never comes (and, with -S STUCK, from a device-mapper device
 *	     suspended without flushing): worker 0 waits.  Worker 1's I/O
 *	     must go on and every ioctl that does not need worker 0 return
 *	     within a bound; the others wait, and the owner, killed at a
 *	     random moment, must die within the bound.  Then the page comes,
 *	     the device resumes, and the release ends: no worker is left.
 *  kills  - a child sets up a device and keeps 64 commands in flight; it
 *	     is SIGKILLed at a random moment; and the same with close().
 *  safety - a child writes stamped blocks, with FUA or plain and then a
 *	     Flush, and is killed at a random moment: every write the device
 *	     acknowledged as durable reads back from the backend, with -W
 *	     (a configfs null_blk with a volatile write cache) after the
 *	     backend lost its cache in a power cycle.
 *
 * Afterwards every page pinned has been unpinned (nr_foll_pin_* in
 * /proc/vmstat).  Prints one line:
 *   hostile: N commands, N ioctls, N kills, N faults, N errors
 * and exits non-zero on any error.
 *
 *   vhost-nvme-hostile [-n commands] [-i ioctls] [-k kills] [-x SLOW]
 *			[-t stalls] [-S STUCK] [-W NULLB_CONFIGFS_DIR]
 *			[-p PHASE,...] BACKEND [FAULTY]
 * -p runs only the phases named (storm, faults, exhaust, ioctls, races,
 * stall, kills, safety): what a negative control needs.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
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
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/userfaultfd.h>
#include <linux/vhost_nvme.h>
#include "vnvme-wire.h"

#define PG		4096ULL
#define R0_GPA		0x10000000ULL	/* rings and lists */
#define R1_GPA		0x80000000ULL	/* data */
#define HOLE_GPA	0x40000000ULL	/* between them, not in the table */
#define R_SIZE		(16ULL << 20)
#define NSQ		4
#define SQ_SIZE		128
#define QD		32
#define ANY		0xffff		/* any status is acceptable */
#define VSLOTS		256		/* the storm's verified blocks */
#define VBUF_GPA	(R1_GPA + R_SIZE - VSLOTS * PG)
/* Bytes of a dirty log that covers both regions */
#define LOG_BYTES	((R1_GPA + R_SIZE) / PG / 8)
#define DNR		0x4000

struct sgl {
	uint64_t addr;
	uint32_t len;
	uint8_t rsvd[3], type;
};

static unsigned long errors;
static uint64_t rnd_state = 88172645463325252ULL;

#define fail(...) do { fprintf(stderr, "hostile: " __VA_ARGS__); \
		       fputc('\n', stderr); errors++; } while (0)

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static void die(const char *what)
{
	perror(what);
	exit(2);
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The number after "@key@sep" in @file (a /proc table), or 0 */
static uint64_t proc_field(const char *file, const char *key, char sep)
{
	char line[128];
	uint64_t v = 0;
	size_t n = strlen(key);
	FILE *f = fopen(file, "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == sep)
			v = strtoull(line + n + 1, NULL, 10);
	fclose(f);
	return v;
}

static uint64_t vmstat(const char *key)
{
	return proc_field("/proc/vmstat", key, ' ');
}

/*
 * The nr_foll_pin_* counters are kept per CPU and folded into the totals
 * /proc/vmstat shows only past a threshold or when vmstat_update runs: a
 * reading taken without folding first can be a few pages off.  Writing
 * /proc/sys/vm/stat_refresh folds every CPU's deltas.
 */
static void vmstat_refresh(void)
{
	int fd = open("/proc/sys/vm/stat_refresh", O_WRONLY);

	if (fd < 0 || write(fd, "1", 1) != 1)
		fail("stat_refresh: %s", strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* ---- one device: the VMM side ---------------------------------------- */

struct queue {
	uint64_t gpa;
	void *ring;
	int kickfd, irqfd;
	uint16_t tail, head, size, cqid;
	uint8_t phase;
};

struct dev {
	int fd;
	uint8_t *r0, *r1;
	uint32_t *db;
	uint64_t nsze, nsze2;
	uint64_t brk;		/* bump allocator in r0 */
	struct queue sq[NSQ + 1], cq[3];
};

static void *hva(struct dev *d, uint64_t gpa)
{
	if (gpa >= R0_GPA && gpa < R0_GPA + R_SIZE)
		return d->r0 + (gpa - R0_GPA);
	return d->r1 + (gpa - R1_GPA);
}

static uint64_t r0_alloc(struct dev *d, uint64_t len)
{
	uint64_t gpa = R0_GPA + d->brk;

	d->brk += (len + PG - 1) & ~(PG - 1);
	if (d->brk > R_SIZE) {
		fprintf(stderr, "hostile: out of ring memory\n");
		exit(2);
	}
	return gpa;
}

static int set_mem(struct dev *d, bool reversed)
{
	struct {
		struct vhost_memory hdr;
		struct vhost_memory_region r[2];
	} t = { .hdr.nregions = 2 };
	int a = reversed, b = !reversed;

	t.r[a] = (struct vhost_memory_region){ R0_GPA, R_SIZE,
					       (uintptr_t)d->r0, 0 };
	t.r[b] = (struct vhost_memory_region){ R1_GPA, R_SIZE,
					       (uintptr_t)d->r1, 0 };
	return ioctl(d->fd, VHOST_SET_MEM_TABLE, &t);
}

static void create_cq_on(struct dev *d, uint16_t qid, uint16_t size,
			 uint32_t worker)
{
	struct queue *q = &d->cq[qid];
	struct vhost_nvme_cq c = { .qid = qid, .size = size, .worker = worker,
				   .flags = VHOST_NVME_CQ_F_IRQ_ENABLED };

	q->gpa = r0_alloc(d, size * 16ULL);
	q->ring = hva(d, q->gpa);
	memset(q->ring, 0, size * 16);
	q->irqfd = eventfd(0, EFD_NONBLOCK);
	q->kickfd = eventfd(0, EFD_NONBLOCK);
	q->size = size;
	q->head = 0;
	q->phase = 1;
	c.addr = q->gpa;
	c.irqfd = q->irqfd;
	c.kickfd = q->kickfd;
	if (ioctl(d->fd, VHOST_NVME_CREATE_CQ, &c))
		die("CREATE_CQ");
}

static void create_cq(struct dev *d, uint16_t qid, uint16_t size)
{
	create_cq_on(d, qid, size, 0);
}

static void create_sq(struct dev *d, uint16_t qid, uint16_t cqid)
{
	struct queue *q = &d->sq[qid];
	struct vhost_nvme_sq s = { .qid = qid, .size = SQ_SIZE, .cqid = cqid };

	if (!q->gpa)
		q->gpa = r0_alloc(d, SQ_SIZE * 64ULL);
	q->ring = hva(d, q->gpa);
	if (!q->kickfd)
		q->kickfd = eventfd(0, EFD_NONBLOCK);
	q->size = SQ_SIZE;
	q->tail = 0;
	q->cqid = cqid;
	d->db[2 * qid] = 0;
	s.addr = q->gpa;
	s.kickfd = q->kickfd;
	if (ioctl(d->fd, VHOST_NVME_CREATE_SQ, &s))
		die("CREATE_SQ");
}

/* Owner, features, memory, namespaces 1 (and 2), VMM doorbells. */
static void dev_setup(struct dev *d, int bfd, int bfd2)
{
	uint64_t f = VHOST_NVME_F_ALL & ~VHOST_NVME_F_LOG_ALL;
	struct vhost_nvme_ns ns = { .nsid = 1, .fd = bfd };
	struct vhost_nvme_doorbells dbs = { .mode = VHOST_NVME_DB_VMM };

	memset(d, 0, sizeof(*d));
	d->fd = open("/dev/vhost-nvme", O_RDWR);
	if (d->fd < 0)
		die("/dev/vhost-nvme");
	if (ioctl(d->fd, VHOST_SET_OWNER) ||
	    ioctl(d->fd, VHOST_SET_FEATURES, &f))
		die("owner/features");
	d->r0 = mmap(NULL, R_SIZE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	d->r1 = mmap(NULL, R_SIZE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	d->db = mmap(NULL, PG, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (d->r0 == MAP_FAILED || d->r1 == MAP_FAILED || d->db == MAP_FAILED)
		die("mmap");
	if (set_mem(d, false))
		die("SET_MEM_TABLE");
	if (ioctl(d->fd, VHOST_NVME_ATTACH_NS, &ns))
		die("ATTACH_NS");
	d->nsze = ns.nsze;
	if (bfd2 >= 0) {
		ns = (struct vhost_nvme_ns){ .nsid = 2, .fd = bfd2 };
		if (ioctl(d->fd, VHOST_NVME_ATTACH_NS, &ns))
			die("ATTACH_NS 2");
		d->nsze2 = ns.nsze;
	}
	dbs.db_addr = (uintptr_t)d->db;
	if (ioctl(d->fd, VHOST_NVME_SET_DOORBELLS, &dbs))
		die("SET_DOORBELLS");
}

static void dev_open(struct dev *d, int bfd, int bfd2)
{
	dev_setup(d, bfd, bfd2);
	create_cq(d, 1, 128);
	create_cq(d, 2, 64);
	create_sq(d, 1, 1);
	create_sq(d, 2, 1);
	create_sq(d, 3, 2);
	create_sq(d, 4, 2);
}

static void kick(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, 8) != 8)
		die("kick");
}

static void sq_submit(struct dev *d, uint16_t qid, const struct sqe *e)
{
	struct queue *q = &d->sq[qid];

	memcpy((struct sqe *)q->ring + q->tail, e, sizeof(*e));
	q->tail = (q->tail + 1) % q->size;
}

static void sq_ring(struct dev *d, uint16_t qid)
{
	__atomic_store_n(&d->db[2 * qid], d->sq[qid].tail, __ATOMIC_SEQ_CST);
	kick(d->sq[qid].kickfd);
}

static bool cq_pop(struct dev *d, uint16_t cqid, struct cqe *out)
{
	struct queue *q = &d->cq[cqid];
	struct cqe *e = (struct cqe *)q->ring + q->head;

	if ((__atomic_load_n(&e->status, __ATOMIC_ACQUIRE) & 1) != q->phase)
		return false;
	*out = *e;
	if (++q->head == q->size) {
		q->head = 0;
		q->phase ^= 1;
	}
	__atomic_store_n(&d->db[2 * cqid + 1], q->head, __ATOMIC_SEQ_CST);
	kick(q->kickfd);
	return true;
}

/* ---- storm: crafted and random commands ------------------------------ */

struct pending {
	int count;
	uint16_t expect;
	int16_t vslot;		/* verified I/O: its block + 1, else 0 */
};

static struct pending pend[NSQ + 1][65536];
static unsigned int inflight[NSQ + 1];
static uint16_t next_cid[NSQ + 1];
static unsigned long cats[32];
/* The SQ a DELETE_SQ is deleting, and the entries it aborted. */
static uint16_t deleting;
static unsigned long aborted;

/* A data buffer in the data region, dword aligned, inside one page run. */
static uint64_t data_gpa(uint64_t len)
{
	/* not in the verified blocks' pages */
	uint64_t off = below(R_SIZE - VSLOTS * PG - len - PG) & ~3ULL;

	return R1_GPA + off;
}

/*
 * Verified I/O: VSLOTS blocks of 4 KiB at the end of the namespace, which
 * nothing else touches, each with a guest page of its own in the last MiB
 * of r1, where no other command's data goes.
 */
struct vslot {
	bool busy;		/* a command on it is in flight */
	bool write;		/* that command is a write */
	int64_t version;	/* of the data on the block, -1: unknown */
	int64_t wversion;	/* of the data the write in flight carries */
};

static struct vslot vs[VSLOTS];
static int16_t crafted_vslot;	/* set by craft() for the command it made */
static unsigned long vreads, vwrites;
/* The storm's dirty log (VHOST_NVME_F_LOG_ALL on throughout) */
static uint64_t *storm_log;
static unsigned long vlogged;

static uint64_t vstamp(unsigned int slot, int64_t version, unsigned int i)
{
	return ((uint64_t)slot << 48) ^ ((uint64_t)version << 16) ^ i;
}

static void rw(struct sqe *e, uint8_t op, uint64_t slba, uint32_t nlb)
{
	e->opcode = op;
	e->nsid = 1;
	e->cdw10 = (uint32_t)slba;
	e->cdw11 = slba >> 32;
	e->cdw12 = (nlb - 1) & 0xffff;
}

/* Fill @e with one hostile or valid command; returns the status expected. */
static uint16_t craft(struct dev *d, struct sqe *e, uint64_t list_gpa)
{
	uint64_t *list = hva(d, list_gpa);
	struct sgl *sg = (struct sgl *)&e->prp1;
	unsigned int cat = below(20), i;
	uint64_t slba = below(d->nsze - VSLOTS * 8 - 64);

	memset(e, 0, sizeof(*e));
	crafted_vslot = 0;
	if (cat >= 18) {	/* verified I/O, if a block is free */
		unsigned int slot = below(VSLOTS);
		struct vslot *v = &vs[slot];
		uint64_t *buf = hva(d, VBUF_GPA + slot * PG);

		if (!v->busy) {
			v->busy = true;
			v->write = below(2);
			rw(e, v->write ? 1 : 2, d->nsze - (VSLOTS - slot) * 8ULL, 8);
			if (v->write) {
				v->wversion = v->version < 0 ? 1 : v->version + 1;
				for (i = 0; i < PG / 8; i++)
					buf[i] = vstamp(slot, v->wversion, i);
			} else {
				memset(buf, 0xa5, PG);
			}
			if (below(2)) {
				e->flags = 0x40;
				sg->addr = VBUF_GPA + slot * PG;
				sg->len = PG;
			} else {
				e->prp1 = VBUF_GPA + slot * PG;
			}
			crafted_vslot = slot + 1;
			return 0;
		}
	}
	cats[cat]++;
	switch (cat) {
	case 0:		/* garbage */
	case 1:
		for (i = 0; i < 16; i++)
			((uint32_t *)e)[i] = rnd();
		if (below(2))
			e->nsid = below(3);
		return ANY;
	case 2:		/* invalid opcode */
		do
			e->opcode = rnd();
		while (e->opcode <= 2 || e->opcode == 8 || e->opcode == 9);
		e->nsid = 1;
		return 0x01 | DNR;
	case 3:		/* invalid namespace */
		rw(e, 1 + below(2), slba, 1);
		e->nsid = below(2) ? 0 : 3 + below(0xfffffffcU);
		e->prp1 = data_gpa(512);
		return 0x0b | DNR;
	case 4:		/* FUSE or reserved CDW0 bits, or PSDT 10b/11b */
		rw(e, 2, slba, 1);
		e->prp1 = data_gpa(512);
		e->flags = below(2) ? 1 + below(0x3f) : 0x80 | (below(2) << 6);
		return 0x02 | DNR;
	case 5:		/* LBA out of range, with 64-bit overflow */
		rw(e, 1 + below(2), below(2) ? d->nsze - below(4) :
		   ~0ULL - below(8), 8);
		e->prp1 = data_gpa(4096);
		return 0x80 | DNR;
	case 6:		/* PRP1 not dword aligned */
		rw(e, 2, slba, 1);
		e->prp1 = data_gpa(512) | (1 + below(3));
		return 0x13 | DNR;
	case 7:		/* PRP2 data pointer with an offset */
		rw(e, 2, slba, 16);
		e->prp1 = data_gpa(8192) & ~(PG - 1);
		e->prp2 = (data_gpa(4096) & ~(PG - 1)) | (4 << below(10));
		return 0x13 | DNR;
	case 8:		/* PRP list pointer not qword aligned */
		rw(e, 2, slba, 64);
		e->prp1 = data_gpa(PG) & ~(PG - 1);
		e->prp2 = list_gpa | (1 + below(7));
		return 0x13 | DNR;
	case 9:		/* PRP list chaining to itself at its page end */
		rw(e, 2, slba, 64);
		e->prp1 = data_gpa(PG) & ~(PG - 1);
		e->prp2 = list_gpa + PG - 16;
		list[510] = data_gpa(PG) & ~(PG - 1);
		list[511] = list_gpa;		/* loops to its own page */
		for (i = 0; i < 510; i++)
			list[i] = 0;		/* not in the table */
		return ANY;
	case 10:	/* PRP entries outside the table or in the hole */
		rw(e, 1 + below(2), slba, 32);
		e->prp1 = data_gpa(PG) & ~(PG - 1);
		e->prp2 = list_gpa;
		for (i = 0; i < 15; i++)
			list[i] = (data_gpa(PG) & ~(PG - 1));
		list[below(3)] = below(2) ? HOLE_GPA + below(64) * PG :
			(R1_GPA + R_SIZE + below(1 << 20) * PG);
		return 0x04 | DNR;
	case 11:	/* SGL segment that points to itself */
		rw(e, 2, slba, 8);
		e->flags = 0x40;
		sg->addr = list_gpa;
		sg->len = 16 * (1 + below(4));
		sg->type = 0x20;
		for (i = 0; i < 4; i++)
			((struct sgl *)list)[i] = *sg;
		/*
		 * One descriptor: it loops until the descriptor limit.  More:
		 * a segment descriptor before the end of a segment is invalid.
		 */
		return (sg->len == 16 ? 0x0e : 0x0d) | DNR;
	case 12:	/* SGL descriptor type not supported */
		rw(e, 2, slba, 8);
		e->flags = 0x40;
		sg->addr = data_gpa(4096) & ~3ULL;
		sg->len = 4096;
		sg->type = (1 + below(15)) << 4;
		if (sg->type == 0x20 || sg->type == 0x30)
			sg->type = 0x10;
		return 0x11 | DNR;
	case 13:	/* SGL length not what the command transfers */
		rw(e, 2, slba, 8);
		e->flags = 0x40;
		sg->addr = data_gpa(8192) & ~3ULL;
		sg->len = below(2) ? 4096 - 4 * (1 + below(64)) : 4096 + 4;
		return 0x0f | DNR;
	case 14:	/* SGL granularity */
		rw(e, 2, slba, 8);
		e->flags = 0x40;
		sg->addr = (data_gpa(8192) & ~3ULL) | (1 + below(3));
		sg->len = 4096;
		return 0x1e | DNR;
	case 15:	/* over MDTS (inside the capacity) */
		rw(e, 2, below(d->nsze - VSLOTS * 8 - 4096), 513 + below(2000));
		e->prp1 = data_gpa(PG) & ~(PG - 1);
		e->prp2 = list_gpa;
		return 0x02 | DNR;
	case 16:	/* DSM with a range out of capacity */
		e->opcode = 9;
		e->nsid = 1;
		e->cdw11 = 4;
		e->cdw10 = 1;
		e->prp1 = list_gpa;
		memset(list, 0, 32);
		list[1] = 8 * 1ULL << 32;
		list[2] = 0;
		list[3] = d->nsze - 2;
		((uint32_t *)list)[5] = 8;	/* range 1: nlb 8 */
		list[3] = d->nsze - 2;		/* range 1: slba */
		list[1] = 8ULL << 32;		/* range 0: nlb 8, cattr 0 */
		return 0x80 | DNR;
	default: {	/* valid I/O, PRP or SGL, any dword-aligned offset */
		uint32_t nlb = 1 + below(64);
		uint64_t buf = (data_gpa(PG * 34) & ~3ULL);
		uint64_t len = nlb * 512ULL, first = PG - (buf & (PG - 1));

		rw(e, 1 + below(2), slba, nlb);
		if (below(4) == 0) {
			e->flags = 0x40;
			sg->addr = buf;
			sg->len = len;
			return 0;
		}
		e->prp1 = buf;
		if (len > first) {
			uint64_t next = (buf & ~(PG - 1)) + PG;
			uint64_t n = (len - first + PG - 1) / PG;

			if (n == 1) {
				e->prp2 = next;
			} else {
				e->prp2 = list_gpa;
				for (i = 0; i < n; i++)
					list[i] = next + i * PG;
			}
		}
		return 0;
	}
	}
}

static bool status_ok(uint16_t got, uint16_t expect)
{
	if (expect == ANY)
		return true;
	if (got == expect)
		return true;
	/* A list that loops or leaves the table may fail either way. */
	return false;
}

/* A verified command on @slot completed with status @st (without phase). */
static void vdone(struct dev *d, unsigned int slot, uint16_t st)
{
	struct vslot *v = &vs[slot];
	uint64_t *buf = hva(d, VBUF_GPA + slot * PG);

	v->busy = false;
	if ((st & ~DNR) == 0x08)
		return;		/* aborted by the SQ's deletion: not done */
	if (st) {
		v->version = -1;	/* failed: the block may be anything */
		return;
	}
	if (v->write) {
		v->version = v->wversion;
		vwrites++;
		return;
	}
	vreads++;
	if (storm_log) {
		/* Its page was logged before its CQE was posted. */
		uint64_t pfn = (VBUF_GPA + slot * PG) / PG;
		uint64_t bit = 1ULL << (pfn % 64);

		if (!(__atomic_fetch_and(&storm_log[pfn / 64], ~bit,
					 __ATOMIC_ACQ_REL) & bit))
			fail("storm: verified read of block %u completed, its page is not in the dirty log",
			     slot);
		vlogged++;
	}
	if (v->version < 0)
		return;
	for (unsigned int i = 0; i < PG / 8; i++) {
		if (buf[i] != vstamp(slot, v->version, i)) {
			fail("storm: read of verified block %u returned %#llx at word %u, not version %lld (after %lu reads)",
			     slot, (unsigned long long)buf[i], i,
			     (long long)v->version, vreads);
			v->version = -1;
			return;
		}
	}
}

static void reap(struct dev *d, uint16_t cqid, unsigned long *done)
{
	struct cqe c;

	while (cq_pop(d, cqid, &c)) {
		uint16_t sq = c.sq_id, st = c.status >> 1;
		struct pending *p;

		if (sq < 1 || sq > NSQ || d->sq[sq].cqid != cqid) {
			fail("CQE on CQ %u names SQ %u", cqid, sq);
			continue;
		}
		p = &pend[sq][c.cid];
		if (!p->count) {
			fail("completion for SQ %u CID %u not outstanding", sq,
			     c.cid);
			continue;
		}
		/*
		 * Deleting a SQ completes the entries the worker had not
		 * fetched with Command Aborted due to SQ Deletion (SC 08h).
		 */
		if (sq == deleting && (st & ~DNR) == 0x08)
			aborted++;
		else if (!status_ok(st, p->expect))
			fail("SQ %u CID %u: status %#x, expected %#x", sq,
			     c.cid, st, p->expect);
		if (p->vslot)
			vdone(d, p->vslot - 1, st);
		p->vslot = 0;
		p->count--;
		inflight[sq]--;
		(*done)++;
	}
}

static bool wait_irq(struct dev *d, long ms)
{
	struct pollfd p[2] = {
		{ .fd = d->cq[1].irqfd, .events = POLLIN },
		{ .fd = d->cq[2].irqfd, .events = POLLIN },
	};
	uint64_t v;
	int n = poll(p, 2, ms);

	if (n <= 0)
		return false;
	for (n = 0; n < 2; n++)
		if (p[n].revents && read(p[n].fd, &v, 8) < 0 && errno != EAGAIN)
			die("irqfd");
	return true;
}

static unsigned long storm(int bfd, unsigned long target)
{
	static struct dev d;
	unsigned long submitted = 0, done = 0, rounds = 0, dropped = 0;
	unsigned long deletes = 0;
	uint64_t lists[NSQ + 1][QD];
	long deadline = now_ms() + 20 * 60 * 1000;

	dev_open(&d, bfd, -1);
	for (int q = 1; q <= NSQ; q++)
		for (int k = 0; k < QD; k++)
			lists[q][k] = r0_alloc(&d, PG);
	/* Dirty logging on, as during a live migration, and checked. */
	storm_log = mmap(NULL, LOG_BYTES, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (storm_log == MAP_FAILED)
		die("mmap");
	{
		struct vhost_nvme_log l = { .addr = (uintptr_t)storm_log,
					    .size = LOG_BYTES };
		uint64_t f = VHOST_NVME_F_ALL;

		if (ioctl(d.fd, VHOST_NVME_SET_LOG, &l) ||
		    ioctl(d.fd, VHOST_SET_FEATURES, &f))
			die("storm: dirty log");
	}
	/* Every verified block starts with a known stamp: version 0. */
	for (int k = 0; k < VSLOTS; k += QD) {
		for (int j = k; j < k + QD; j++) {
			struct sqe e = { 0 };
			uint64_t *buf = hva(&d, VBUF_GPA + j * PG);

			for (unsigned int i = 0; i < PG / 8; i++)
				buf[i] = vstamp(j, 0, i);
			rw(&e, 1, d.nsze - (VSLOTS - j) * 8ULL, 8);
			e.prp1 = VBUF_GPA + j * PG;
			e.cid = j;
			sq_submit(&d, 1, &e);
		}
		sq_ring(&d, 1);
		for (int got = 0; got < QD;) {
			struct cqe c;

			if (!cq_pop(&d, 1, &c)) {
				if (!wait_irq(&d, 10000))
					die("storm: verified blocks not written");
				continue;
			}
			if (c.status >> 1)
				die("storm: a verified block's first write failed");
			vs[c.cid].version = 0;
			got++;
		}
	}

	while (done + dropped < target) {
		rounds++;
		for (uint16_t q = 1; q <= NSQ && submitted < target; q++) {
			unsigned int n = 0;

			while (inflight[q] < QD && submitted < target) {
				struct sqe e;
				uint16_t expect, cid;
				struct pending *p;

				/* one list page per outstanding slot */
				expect = craft(&d, &e, lists[q][next_cid[q] % QD]);
				cid = next_cid[q];
				if (below(100) == 0 && pend[q][(uint16_t)(cid - 1)].count &&
				    pend[q][(uint16_t)(cid - 1)].expect == ANY &&
				    expect == ANY) {
					cid--;	/* CID reuse */
					cats[31]++;
				} else {
					next_cid[q]++;
				}
				p = &pend[q][cid];
				if (p->count && (p->expect != expect || p->vslot ||
						 crafted_vslot)) {
					/* keep reuse unambiguous */
					if (crafted_vslot)
						vs[crafted_vslot - 1].busy = false;
					break;
				}
				p->vslot = crafted_vslot;
				/* the list page of this CID must not be live */
				e.cid = cid;
				p->expect = expect;
				p->count++;
				inflight[q]++;
				submitted++;
				sq_submit(&d, q, &e);
				n++;
				if (n >= 16)
					break;
			}
			if (n)
				sq_ring(&d, q);
		}
		if (!wait_irq(&d, 10000)) {
			fail("no interrupt for 10 s with %u/%u/%u/%u in flight",
			     inflight[1], inflight[2], inflight[3], inflight[4]);
			break;
		}
		reap(&d, 1, &done);
		reap(&d, 2, &done);

		if (rounds % 64 == 0 && set_mem(&d, rounds % 128 == 0))
			fail("SET_MEM_TABLE under load: %s", strerror(errno));
		if (rounds % 97 == 0) {
			/* Delete SQ 4 with commands in flight, then re-create. */
			struct vhost_nvme_qid del = { .qid = 4 };

			deleting = 4;
			if (ioctl(d.fd, VHOST_NVME_DELETE_SQ, &del))
				fail("DELETE_SQ under load: %s", strerror(errno));
			/*
			 * Every command fetched has been posted by now, and
			 * those the worker had not fetched yet were aborted,
			 * as far as CQ 2 had room; the rest are dropped (NVMe
			 * lets the controller complete them implicitly).
			 */
			reap(&d, 2, &done);
			deleting = 0;
			/* What was dropped unfetched was not done either. */
			for (unsigned int c = 0; c < 65536; c++)
				if (pend[4][c].vslot)
					vs[pend[4][c].vslot - 1].busy = false;
			dropped += inflight[4];
			inflight[4] = 0;
			memset(pend[4], 0, sizeof(pend[4]));
			deletes++;
			create_sq(&d, 4, 2);
		}
		if (now_ms() > deadline) {
			fail("storm did not finish in time");
			break;
		}
	}
	/* Drain. */
	for (long end = now_ms() + 10000; now_ms() < end;) {
		unsigned int left = inflight[1] + inflight[2] + inflight[3] +
				    inflight[4];

		if (!left)
			break;
		wait_irq(&d, 1000);
		reap(&d, 1, &done);
		reap(&d, 2, &done);
	}
	if (inflight[1] + inflight[2] + inflight[3] + inflight[4])
		fail("%u commands never completed",
		     inflight[1] + inflight[2] + inflight[3] + inflight[4]);
	close(d.fd);
	munmap(d.r0, R_SIZE);
	munmap(d.r1, R_SIZE);
	munmap(d.db, PG);
	munmap(storm_log, LOG_BYTES);
	storm_log = NULL;
	printf("# storm: %lu submitted, %lu completed (%lu aborted), %lu dropped unfetched by %lu SQ deletions under load; categories:",
	       submitted, done, aborted, dropped, deletes);
	for (int c = 0; c < 20; c++)
		printf(" %lu", cats[c]);
	printf(", CID reuse %lu; verified %lu reads (%lu found in the dirty log), %lu writes\n",
	       cats[31], vreads, vlogged, vwrites);
	if (target >= 2000 && !vreads)
		fail("storm: no verified read");
	return done;
}

/* ---- exhaust: every command as costly as it can be, behind a slow backend */

/* A field of /proc/meminfo, in bytes */
static uint64_t meminfo(const char *key)
{
	return proc_field("/proc/meminfo", key, ':') * 1024;
}

/* memory.current of this process's cgroup (v2), or UINT64_MAX */
static uint64_t memcg_current(void)
{
	char line[512], path[600];
	unsigned long long v = UINT64_MAX;
	FILE *f = fopen("/proc/self/cgroup", "r");

	if (!f)
		return UINT64_MAX;
	path[0] = 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = 0;
			snprintf(path, sizeof(path),
				 "/sys/fs/cgroup%s/memory.current", line + 3);
		}
	fclose(f);
	if (!path[0] || !(f = fopen(path, "r")))
		return UINT64_MAX;
	if (fscanf(f, "%llu", &v) != 1)
		v = UINT64_MAX;
	fclose(f);
	return v;
}

#define EXHAUST_SLACK	(8ULL << 20)	/* what else runs in the VM meanwhile */

/*
 * A guest that makes every command as expensive for the host as it can:
 * MDTS reads and writes at a dword offset (bounced), through PRP lists;
 * Deallocate of 256 ranges; Write Zeroes of 8 MiB (bio chains), all SQs
 * full, behind a backend that takes long (dm-delay).  Every command must
 * complete, successfully, and what the host holds meanwhile (unreclaimable
 * slab, the owner's memory cgroup) must stay within the device's cap
 * (VHOST_NVME_SET_LIMITS bounce_bytes, @cap) plus a slack for the rest of
 * the system.  Returns the number of commands.
 */
static unsigned long exhaust(int sfd, unsigned int rounds, uint64_t cap)
{
	const uint32_t mdts = 256 << 10, wz_nlb = 16384;
	struct vhost_nvme_limits l = { .size = sizeof(l), .bounce_bytes = cap };
	uint64_t slab0, mc0, slab_peak, mc_peak, list[NSQ + 1][SQ_SIZE];
	unsigned long total = 0, done = 0;
	unsigned int r, q, i, k;
	struct dev d;
	struct cqe c;
	long deadline;

	dev_open(&d, sfd, -1);
	if (ioctl(d.fd, VHOST_NVME_SET_LIMITS, &l) || l.bounce_bytes != cap)
		die("SET_LIMITS");
	/* One list page per slot: a PRP list or 256 DSM ranges. */
	for (q = 1; q <= NSQ; q++)
		for (i = 0; i < SQ_SIZE; i++)
			list[q][i] = r0_alloc(&d, PG);
	memset(d.r1, 0x5a, R_SIZE);
	memset(d.r0 + d.brk, 0, R_SIZE - d.brk);
	sleep(1);
	slab0 = slab_peak = meminfo("SUnreclaim");
	mc0 = mc_peak = memcg_current();

	for (r = 0; r < rounds; r++) {
		unsigned long want = total;

		for (q = 1; q <= NSQ; q++) {
			for (i = 0; i < SQ_SIZE - 1u; i++) {
				struct sqe e = { .cid = (uint16_t)i, .nsid = 1 };
				uint64_t *pl = hva(&d, list[q][i]);
				uint64_t data = R1_GPA + 4;	/* dword offset */

				switch ((i + q) % 4) {
				case 0:	/* bounced MDTS read and write, PRP list */
				case 1:
					for (k = 0; k < mdts / PG; k++)
						pl[k] = R1_GPA + (k + 1) * PG;
					rw(&e, (i + q) % 4 ? 0x01 : 0x02,
					   (i * 512ULL) % (d.nsze - mdts / 512),
					   mdts / 512);
					e.prp1 = data;
					e.prp2 = list[q][i];
					break;
				case 2: {	/* Deallocate, 256 ranges */
					struct { uint32_t attr, nlb; uint64_t slba; } *dr =
						(void *)pl;

					for (k = 0; k < 256; k++) {
						dr[k].attr = 0;
						dr[k].nlb = 8;
						dr[k].slba = (k * 64ULL + i) % (d.nsze - 8);
					}
					e.opcode = 0x09;
					e.prp1 = list[q][i];
					e.cdw10 = 255;
					e.cdw11 = 1 << 2;	/* AD */
					break;
				}
				default:	/* Write Zeroes, 8 MiB */
					rw(&e, 0x08, 0, wz_nlb);
					break;
				}
				sq_submit(&d, q, &e);
				total++;
			}
			sq_ring(&d, q);
		}
		deadline = now_ms() + 120000;
		while (done < total && now_ms() < deadline) {
			uint64_t v;

			for (q = 1; q <= 2; q++)
				while (cq_pop(&d, q, &c)) {
					if (c.status >> 1)
						fail("exhaust: status %#x for cid %u of SQ %u",
						     c.status >> 1, c.cid, c.sq_id);
					done++;
				}
			v = meminfo("SUnreclaim");
			if (v > slab_peak)
				slab_peak = v;
			v = memcg_current();
			if (v != UINT64_MAX && v > mc_peak)
				mc_peak = v;
			usleep(20000);
		}
		if (done != want + (NSQ * (SQ_SIZE - 1ul))) {
			fail("exhaust: %lu of %lu commands completed in 120 s",
			     done - want, NSQ * (SQ_SIZE - 1ul));
			for (q = 1; q <= NSQ + 2; q++) {
				struct vhost_nvme_queue_state st = {
					.qid = q <= NSQ ? q : q - NSQ,
					.type = q <= NSQ ? VHOST_NVME_QTYPE_SQ :
							   VHOST_NVME_QTYPE_CQ,
				};

				if (!ioctl(d.fd, VHOST_NVME_GET_QUEUE_STATE, &st))
					fprintf(stderr, "hostile: exhaust: %s %u head %u tail %u inflight %u flags %#x commands %llu\n",
						q <= NSQ ? "SQ" : "CQ", st.qid,
						st.head, st.tail, st.inflight,
						st.flags,
						(unsigned long long)st.commands);
			}
			break;
		}
	}
	close(d.fd);
	munmap(d.r0, R_SIZE);
	munmap(d.r1, R_SIZE);
	munmap(d.db, PG);
	printf("# exhaust: %lu commands; peak over the start: unreclaimable slab %llu KiB, memory cgroup %s%llu KiB (cap %llu KiB)\n",
	       total, (unsigned long long)(slab_peak - slab0) >> 10,
	       mc0 == UINT64_MAX ? "(none) " : "",
	       mc0 == UINT64_MAX ? 0ULL :
	       (unsigned long long)(mc_peak - mc0) >> 10,
	       (unsigned long long)cap >> 10);
	/*
	 * A debug kernel keeps objects in slab for its own ends (kmemleak's
	 * metadata per allocation, KASAN's quarantine of freed objects): the
	 * bound holds only without them.
	 */
	if (!access("/sys/kernel/debug/kmemleak", F_OK))
		printf("# exhaust: kmemleak is on: the slab bound is not checked\n");
	else if (slab_peak - slab0 > cap + EXHAUST_SLACK)
		fail("exhaust: unreclaimable slab grew by %llu KiB",
		     (unsigned long long)(slab_peak - slab0) >> 10);
	if (mc0 != UINT64_MAX && mc_peak - mc0 > cap + EXHAUST_SLACK)
		fail("exhaust: the memory cgroup grew by %llu KiB",
		     (unsigned long long)(mc_peak - mc0) >> 10);
	return total;
}

/* ---- faults: a backend that fails every I/O --------------------------- */

static unsigned long faults(int bfd, int ffd, unsigned int n)
{
	static struct dev d;
	unsigned long seen = 0;

	dev_open(&d, bfd, ffd);
	memset(pend, 0, sizeof(pend));
	memset(inflight, 0, sizeof(inflight));
	for (unsigned int i = 0; i < n; i++) {
		struct sqe e = { 0 };
		struct cqe c;
		bool write = i & 1;
		long end = now_ms() + 10000;

		rw(&e, write ? 1 : 2, below(d.nsze2 - 8), 8);
		e.nsid = 2;
		e.cid = i;
		e.prp1 = data_gpa(PG) & ~(PG - 1);
		sq_submit(&d, 1, &e);
		sq_ring(&d, 1);
		while (!cq_pop(&d, 1, &c)) {
			if (now_ms() > end) {
				fail("fault %u: no completion", i);
				goto out;
			}
			wait_irq(&d, 1000);
		}
		/* Unrecovered Read Error (281h) / Write Fault (280h). */
		if ((c.status >> 1) != (write ? 0x280 : 0x281))
			fail("fault %u: status %#x", i, c.status >> 1);
		else
			seen++;
	}
out:
	close(d.fd);
	munmap(d.r0, R_SIZE);
	munmap(d.r1, R_SIZE);
	munmap(d.db, PG);
	return seen;
}

/* ---- ioctls: random numbers, sizes and bytes -------------------------- */

#define IO_RAM		(64 * 1024)	/* guest memory of the ioctl fd */

/* An fd for an eventfd field: the eventfd, another file, none, garbage. */
static int any_fd(int efd, int bfd)
{
	switch (below(6)) {
	case 0:
	case 1:
		return efd;
	case 2:
		return bfd;		/* not an eventfd */
	case 3:
		return -1;
	case 4:
		return 0;
	default:
		return rnd();
	}
}

/*
 * Fill @arg for @req as a VMM might, with the flags of ABI 2 at random
 * (DRAIN_F_ASYNC, DELETE_F_DISCARD, the ERRFD flags, NS_F_WRITE_THROUGH,
 * now and then unknown bits) and eventfds that are real, other files or
 * garbage; reserved fields are zero.  Other requests keep random bytes.
 */
static void shape(unsigned long req, void *arg, int efd, int bfd)
{
	switch (req) {
	case VHOST_NVME_SET_LOG: {
		/* a log of the ioctl fd's memory: this buffer, or anything */
		struct vhost_nvme_log *a = arg;

		memset(a, 0, sizeof(*a));
		a->addr = below(2) ? (uintptr_t)arg + 64 :
			  (rnd() | 1ULL << 63) & ~7ULL;	/* not ours */
		a->size = below(2) ? (R0_GPA + IO_RAM) / PG / 8 : below(1 << 16);
		break;
	}
	case VHOST_NVME_DELETE_SQ:
	case VHOST_NVME_DELETE_CQ: {
		struct vhost_nvme_qid *a = arg;

		memset(a, 0, sizeof(*a));
		a->qid = below(6);
		a->flags = below(8) ? below(4) : rnd();
		if ((a->flags & VHOST_NVME_DRAIN_F_ASYNC) || !below(8))
			a->eventfd = any_fd(efd, bfd);
		break;
	}
	case VHOST_NVME_QUIESCE:
	case VHOST_NVME_RESUME: {
		struct vhost_nvme_quiesce *a = arg;

		memset(a, 0, sizeof(*a));
		a->flags = below(8) ? below(2) : rnd();
		if ((a->flags & VHOST_NVME_DRAIN_F_ASYNC) || !below(8))
			a->eventfd = any_fd(efd, bfd);
		break;
	}
	case VHOST_NVME_CREATE_CQ: {
		struct vhost_nvme_cq *a = arg;

		memset(a, 0, sizeof(*a));
		a->qid = 1 + below(4);
		a->size = 2 + below(63);
		a->flags = below(8) ? below(4) : rnd();
		a->addr = R0_GPA + below(IO_RAM / PG + 1) * PG;
		a->irqfd = below(4) ? any_fd(efd, bfd) : -1;
		a->kickfd = below(2) ? any_fd(efd, bfd) : -1;
		a->worker = below(8) ? 0 : below(4);
		if ((a->flags & VHOST_NVME_CQ_F_ERRFD) || !below(8))
			a->errfd = any_fd(efd, bfd);
		break;
	}
	case VHOST_NVME_CREATE_SQ: {
		struct vhost_nvme_sq *a = arg;

		memset(a, 0, sizeof(*a));
		a->qid = 1 + below(4);
		a->size = 2 + below(15);
		a->cqid = below(5);
		a->flags = below(8) ? below(2) : rnd();
		a->kickfd = below(4) ? efd : any_fd(efd, bfd);
		a->addr = R0_GPA + below(IO_RAM / PG + 1) * PG;
		if ((a->flags & VHOST_NVME_SQ_F_ERRFD) || !below(8))
			a->errfd = any_fd(efd, bfd);
		break;
	}
	case VHOST_NVME_ATTACH_NS: {
		struct vhost_nvme_ns *a = arg;

		memset(a, 0, sizeof(*a));
		a->nsid = 1 + below(3);
		a->fd = below(4) ? bfd : any_fd(efd, bfd);
		a->flags = below(8) ? below(4) : rnd();
		a->lba_shift = below(4) ? 0 : 9 + below(4);
		break;
	}
	}
}

static unsigned long ioctls(int bfd, unsigned long n)
{
	/*
	 * Two pages of arguments and a guard page after them: an argument
	 * that ends at the second page must fault there, never reach a
	 * mapping that happens to follow (in a run where RELEASE_OWNER, an
	 * output ioctl that succeeds whatever its argument holds, wrote 32
	 * bytes across the end of buf, the next phase crashed in ld.so).
	 */
	uint8_t *buf = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *ram = mmap(NULL, IO_RAM, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int efd = eventfd(0, EFD_NONBLOCK);
	unsigned long done = 0;
	int fd = -1;

	if (buf == MAP_FAILED || ram == MAP_FAILED ||
	    mprotect(buf + 2 * PG, PG, PROT_NONE))
		die("mmap");
	if (efd < 0)
		die("eventfd");
	for (unsigned long i = 0; i < n; i++) {
		unsigned long req, size = below(4) ? 8 * below(12) : below(300);
		bool in_buf;
		void *arg;

		if (fd < 0 || below(2000) == 0) {
			if (fd >= 0)
				close(fd);
			fd = open("/dev/vhost-nvme", O_RDWR);
			if (fd < 0)
				die("/dev/vhost-nvme");
			if (below(4) && !ioctl(fd, VHOST_SET_OWNER) && below(2)) {
				/* Guest memory, so that queues can be created. */
				struct {
					struct vhost_memory hdr;
					struct vhost_memory_region r;
				} t = { .hdr.nregions = 1,
					.r = { R0_GPA, IO_RAM, (uintptr_t)ram, 0 } };

				memset(ram, 0, IO_RAM);
				ioctl(fd, VHOST_SET_MEM_TABLE, &t);
			}
		}
		for (unsigned int k = 0; k < 2 * PG / 8; k++)
			((uint64_t *)buf)[k] = below(3) ? rnd() : below(4);
		in_buf = false;
		switch (below(8)) {
		case 0:
			arg = NULL;
			break;
		case 1:
			arg = (void *)0x1000;
			break;
		case 2:		/* ends at the guard page */
			arg = buf + 2 * PG - below(64);
			munmap(buf + PG, PG);
			mmap(buf + PG, PG, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			break;
		default:
			arg = buf + 8 * below(32);
			in_buf = true;
		}
		req = _IOC(below(4), VHOST_VIRTIO, below(4) ? 0xA0 + below(16) :
			   below(256), size);
		if (below(2)) {
			/* a real request number, random bytes */
			static const unsigned long real[] = {
				VHOST_SET_MEM_TABLE,
				VHOST_NVME_ATTACH_NS, VHOST_NVME_DETACH_NS,
				VHOST_NVME_CREATE_CQ, VHOST_NVME_CREATE_SQ,
				VHOST_NVME_DELETE_SQ, VHOST_NVME_DELETE_CQ,
				VHOST_NVME_SET_DOORBELLS,
				VHOST_NVME_GET_QUEUE_STATE, VHOST_NVME_QUIESCE,
				VHOST_NVME_RESUME, VHOST_NVME_SET_POLL,
				VHOST_NVME_NEW_WORKER,
				VHOST_NVME_SET_IRQ_COALESCING,
				VHOST_NVME_SET_LIMITS, VHOST_NVME_SET_LOG,
				VHOST_SET_FEATURES, VHOST_GET_FEATURES,
				VHOST_NVME_GET_INFO, VHOST_RESET_OWNER,
				VHOST_NVME_RELEASE_OWNER, VHOST_NVME_TAKE_OWNER,
			};
			req = real[below(sizeof(real) / sizeof(real[0]))];
			/* half of them with arguments a VMM might pass */
			if (in_buf && below(2))
				shape(req, arg, efd, bfd);
		}
		ioctl(fd, req, arg);
		done++;
	}
	close(fd);
	close(efd);
	munmap(buf, 3 * PG);
	munmap(ram, IO_RAM);
	return done;
}

/* ---- races: control ioctls from two threads of the owner under I/O ---- */

struct race {
	struct dev d;
	int bfd, efd;
	unsigned long n;	/* control ioctls per control thread */
	unsigned long done;	/* control ioctls made, all threads */
	unsigned long traffic;	/* completions the guest thread reaped */
	unsigned long handovers;	/* releases taken back */
	bool stop;
	uint64_t seed;
	uint64_t *log;		/* a dirty log covering R1 */
};


/* The guest: reads on every SQ, whether it exists or not, and reaping. */
static void *race_guest(void *arg)
{
	struct race *r = arg;
	struct dev *d = &r->d;
	struct cqe c;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		for (uint16_t qid = 1; qid <= NSQ; qid++) {
			struct sqe e = { 0 };

			rw(&e, 0x02, qid * 8, 8);
			e.prp1 = R1_GPA + qid * PG;
			sq_submit(d, qid, &e);
			sq_ring(d, qid);
		}
		for (uint16_t cqid = 1; cqid <= 2; cqid++)
			while (cq_pop(d, cqid, &c))
				__atomic_add_fetch(&r->traffic, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/*
 * A VMM thread: deletes and creates SQs (with every delete flag), swaps
 * the memory table, detaches and attaches the namespace, quiesces (also
 * asynchronously) and resumes, polls, coalesces, reads queue state, all
 * while the other control thread does the same and the guest thread
 * submits.  Nothing is asserted but that the kernel survives it, no
 * ioctl hangs and every fd is released (the VM's watchdog and the
 * kernel-warning scan judge).
 */
static void *race_vmm(void *arg)
{
	struct race *r = arg;
	struct dev *d = &r->d;
	uint64_t s = __atomic_add_fetch(&r->seed, 0x9e3779b97f4a7c15ULL,
					__ATOMIC_RELAXED);

	for (unsigned long i = 0; i < r->n; i++) {
		uint16_t qid;
		unsigned int op;

		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		qid = 1 + s % NSQ;
		op = (s >> 8) % 15;
		switch (op) {
		case 0:
		case 1: {
			struct vhost_nvme_qid q = { .qid = qid,
						    .flags = (s >> 16) & 3 };

			if (q.flags & VHOST_NVME_DRAIN_F_ASYNC)
				q.eventfd = r->efd;
			ioctl(d->fd, VHOST_NVME_DELETE_SQ, &q);
			break;
		}
		case 2:
		case 3: {
			struct vhost_nvme_sq q = {
				.qid = qid, .size = SQ_SIZE,
				.cqid = 1 + ((s >> 16) & 1),
				.kickfd = d->sq[qid].kickfd,
				.addr = d->sq[qid].gpa,
			};

			ioctl(d->fd, VHOST_NVME_CREATE_SQ, &q);
			break;
		}
		case 4:
			set_mem(d, (s >> 16) & 1);
			break;
		case 5: {
			struct vhost_nvme_nsid n = { .nsid = 1 };

			ioctl(d->fd, VHOST_NVME_DETACH_NS, &n);
			break;
		}
		case 6: {
			struct vhost_nvme_ns n = { .nsid = 1, .fd = r->bfd };

			ioctl(d->fd, VHOST_NVME_ATTACH_NS, &n);
			break;
		}
		case 7: {
			struct vhost_nvme_quiesce q = { 0 };

			if ((s >> 16) & 1) {
				q.flags = VHOST_NVME_DRAIN_F_ASYNC;
				q.eventfd = r->efd;
			}
			ioctl(d->fd, VHOST_NVME_QUIESCE, &q);
			break;
		}
		case 8: {
			struct vhost_nvme_quiesce q = { 0 };

			ioctl(d->fd, VHOST_NVME_RESUME, &q);
			break;
		}
		case 9: {
			struct vhost_nvme_poll p = { .poll_us = (s >> 16) % 200 };

			ioctl(d->fd, VHOST_NVME_SET_POLL, &p);
			break;
		}
		case 11: {
			/* the log set, replaced, or removed (EBUSY if in use) */
			struct vhost_nvme_log l = { 0 };

			if ((s >> 16) % 3) {
				l.addr = (uintptr_t)r->log;
				l.size = LOG_BYTES;
			}
			ioctl(d->fd, VHOST_NVME_SET_LOG, &l);
			break;
		}
		case 12: {
			/* logging on and off under I/O (EINVAL without a log) */
			uint64_t f = VHOST_NVME_F_ALL & ~VHOST_NVME_F_LOG_ALL;

			if ((s >> 16) & 1)
				f |= VHOST_NVME_F_LOG_ALL;
			ioctl(d->fd, VHOST_SET_FEATURES, &f);
			break;
		}
		case 13: {
			/*
			 * A hand-over to itself: EBUSY unless the device is
			 * quiesced and drained; then taken back at once,
			 * the other thread's ioctls meanwhile EPERM.
			 */
			struct vhost_nvme_handover h = { 0 };
			struct vhost_nvme_doorbells dbs = {
				.mode = VHOST_NVME_DB_VMM,
				.db_addr = (uintptr_t)d->db,
			};
			int err;

			if (ioctl(d->fd, VHOST_NVME_RELEASE_OWNER, &h))
				break;
			if (ioctl(d->fd, VHOST_NVME_TAKE_OWNER, &h)) {
				err = errno;
				fail("races: TAKE_OWNER of the device it released: %s",
				     strerror(err));
				break;
			}
			set_mem(d, (s >> 16) & 1);
			ioctl(d->fd, VHOST_NVME_SET_DOORBELLS, &dbs);
			__atomic_add_fetch(&r->handovers, 1, __ATOMIC_RELAXED);
			break;
		}
		case 10: {
			struct vhost_nvme_irq_coalescing c = {
				.qid = 1 + ((s >> 16) & 1),
				.threshold = (s >> 20) % 8,
				.time_us = (s >> 24) % 200,
			};

			ioctl(d->fd, VHOST_NVME_SET_IRQ_COALESCING, &c);
			break;
		}
		default: {
			struct vhost_nvme_queue_state q = {
				.qid = qid, .type = (s >> 16) & 1,
			};

			ioctl(d->fd, VHOST_NVME_GET_QUEUE_STATE, &q);
			break;
		}
		}
		__atomic_add_fetch(&r->done, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static unsigned long races(int bfd, unsigned long n)
{
	struct race *r = calloc(1, sizeof(*r));
	pthread_t guest, vmm[2];
	unsigned long done;

	if (!r)
		die("calloc");
	dev_open(&r->d, bfd, -1);
	r->bfd = bfd;
	r->n = n / 2;
	r->seed = rnd();
	r->efd = eventfd(0, EFD_NONBLOCK);
	if (r->efd < 0)
		die("eventfd");
	r->log = mmap(NULL, LOG_BYTES, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r->log == MAP_FAILED)
		die("mmap");
	if (pthread_create(&guest, NULL, race_guest, r) ||
	    pthread_create(&vmm[0], NULL, race_vmm, r) ||
	    pthread_create(&vmm[1], NULL, race_vmm, r))
		die("pthread_create");
	pthread_join(vmm[0], NULL);
	pthread_join(vmm[1], NULL);
	__atomic_store_n(&r->stop, true, __ATOMIC_RELEASE);
	pthread_join(guest, NULL);
	printf("# races: %lu control ioctls from 2 threads (%lu hand-overs), %lu completions reaped meanwhile\n",
	       r->done, r->handovers, r->traffic);
	fflush(stdout);
	/* Release drains whatever the races left in flight. */
	close(r->d.fd);
	close(r->efd);
	munmap(r->d.r0, R_SIZE);
	munmap(r->d.r1, R_SIZE);
	munmap(r->d.db, PG);
	munmap(r->log, LOG_BYTES);
	done = r->done;
	free(r);
	return done;
}

/* ---- stall: a pass held up by the VMM, I/O held by the backend --------- */

#define STALL_BOUND_MS	500	/* what must not wait for worker 0 */
#define UF_OFF		(8ULL << 20)	/* r1's upper half: userfaultfd */

/* What the owner reports to the test, in memory shared with it */
struct stall_report {
	int uffd;		/* the owner's userfaultfd, for pidfd_getfd() */
	uint8_t *uf;		/* its range in the owner's address space */
	bool ready;		/* worker 0 is held up */
	unsigned long io1;	/* reads completed on worker 1 */
	long io1_max_ms;	/* slowest of them */
	unsigned long quick;	/* ioctls that must not wait, done */
	long quick_max_ms;	/* slowest of them */
	int quick_slowest;	/* which one */
	int quick_now;		/* the one in progress, -1 if none */
	int waiting;		/* the ioctl the owner is in, -1 if none */
	bool stopping;		/* it stops all I/O (QUIESCE, reset, close) */
};

struct stall_io {
	struct dev *d;
	struct stall_report *rep;
};

/* Worker 1's guest: one read at a time on SQ 3, timed. */
static void *stall_guest(void *arg)
{
	struct stall_io *io = arg;
	struct dev *d = io->d;

	for (uint16_t cid = 0;; cid++) {
		struct sqe e = { 0 };
		struct cqe c;
		long t0 = now_ms(), ms;
		bool stopped = __atomic_load_n(&io->rep->stopping, __ATOMIC_ACQUIRE);

		rw(&e, 2, below(d->nsze - 8), 8);
		e.prp1 = R1_GPA + PG * (1 + cid % 64);
		e.cid = cid;
		sq_submit(d, 3, &e);
		sq_ring(d, 3);
		while (!cq_pop(d, 2, &c))
			wait_irq(d, 100);
		/* What the owner stopped on purpose does not count. */
		if (stopped || __atomic_load_n(&io->rep->stopping, __ATOMIC_ACQUIRE))
			continue;
		ms = now_ms() - t0;
		if (ms > io->rep->io1_max_ms)
			io->rep->io1_max_ms = ms;
		__atomic_add_fetch(&io->rep->io1, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/*
 * An ioctl that must not wait for worker 0: worker 1's queues, queue
 * state, polling, limits, a namespace that is not there.  0 if it returned.
 */
static void stall_quick(struct dev *d, unsigned int op, int efd)
{
	switch (op) {
	case 0: {
		struct vhost_nvme_irq_coalescing c = {
			.qid = 2, .threshold = below(4), .time_us = below(100),
		};

		ioctl(d->fd, VHOST_NVME_SET_IRQ_COALESCING, &c);
		break;
	}
	case 1: {
		struct vhost_nvme_queue_state q = {
			.qid = 1 + below(4), .type = below(2),
		};

		ioctl(d->fd, VHOST_NVME_GET_QUEUE_STATE, &q);
		break;
	}
	case 2: {
		struct vhost_nvme_poll p = { .poll_us = below(50) };

		ioctl(d->fd, VHOST_NVME_SET_POLL, &p);
		break;
	}
	case 3: {
		struct vhost_nvme_limits l = { .size = sizeof(l),
					       .dmrl = below(257) };

		ioctl(d->fd, VHOST_NVME_SET_LIMITS, &l);
		break;
	}
	case 4: {
		/* An idle SQ of worker 1, deleted at once, then back */
		struct vhost_nvme_qid q = { .qid = 4 };

		if (!ioctl(d->fd, VHOST_NVME_DELETE_SQ, &q))
			create_sq(d, 4, 2);
		break;
	}
	default: {
		/* Asynchronously: the eventfd, then the delete that ends it */
		struct vhost_nvme_qid q = {
			.qid = 4, .flags = VHOST_NVME_DRAIN_F_ASYNC, .eventfd = efd,
		};
		struct pollfd p = { .fd = efd, .events = POLLIN };
		uint64_t v;
		int ret = ioctl(d->fd, VHOST_NVME_DELETE_SQ, &q);

		if (ret && errno == EINPROGRESS && poll(&p, 1, 1000) == 1 &&
		    read(efd, &v, 8) == 8) {
			q.flags = 0;
			q.eventfd = 0;
			ret = ioctl(d->fd, VHOST_NVME_DELETE_SQ, &q);
		}
		if (!ret)
			create_sq(d, 4, 2);
		break;
	}
	}
}

#define STALL_QUICK_OPS	6

/* An ioctl that waits for worker 0's pass or for the held I/O. */
static void stall_wait(struct dev *d, unsigned int op)
{
	switch (op) {
	case 0:
		set_mem(d, below(2));
		break;
	case 1: {
		struct vhost_nvme_quiesce q = { 0 };

		ioctl(d->fd, VHOST_NVME_QUIESCE, &q);
		break;
	}
	case 2: {
		struct vhost_nvme_irq_coalescing c = { .qid = 1, .threshold = 2 };

		ioctl(d->fd, VHOST_NVME_SET_IRQ_COALESCING, &c);
		break;
	}
	case 3: {
		struct vhost_nvme_qid q = { .qid = 1 + below(2) };

		ioctl(d->fd, VHOST_NVME_DELETE_SQ, &q);
		break;
	}
	case 4: {
		struct vhost_nvme_nsid n = { .nsid = 1 + below(2) };

		ioctl(d->fd, VHOST_NVME_DETACH_NS, &n);
		break;
	}
	case 5:
		ioctl(d->fd, VHOST_RESET_OWNER);
		break;
	default:
		close(d->fd);
		break;
	}
}

#define STALL_WAIT_OPS	7

static void stall_child(int bfd, int sfd, struct stall_report *rep)
	__attribute__((noreturn));
static void stall_child(int bfd, int sfd, struct stall_report *rep)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct vhost_nvme_worker w = { 0 };
	static struct stall_io io;
	static struct dev d;
	struct pollfd p;
	pthread_t guest;
	int uffd, efd;
	long t_ready;

	dev_setup(&d, bfd, sfd);
	if (ioctl(d.fd, VHOST_NVME_NEW_WORKER, &w))
		die("NEW_WORKER");
	create_cq_on(&d, 1, 64, 0);
	create_cq_on(&d, 2, 64, 1);
	create_sq(&d, 1, 1);
	create_sq(&d, 2, 1);
	create_sq(&d, 3, 2);
	create_sq(&d, 4, 2);
	uffd = syscall(__NR_userfaultfd, O_CLOEXEC);
	reg.range.start = (uintptr_t)d.r1 + UF_OFF;
	reg.range.len = R_SIZE - UF_OFF;
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) ||
	    ioctl(uffd, UFFDIO_REGISTER, &reg))
		die("userfaultfd");
	efd = eventfd(0, EFD_NONBLOCK);
	rep->uffd = uffd;
	rep->uf = d.r1 + UF_OFF;
	rep->waiting = -1;
	rep->quick_now = -1;

	/* Worker 0: a read into a page that is not there yet */
	{
		struct sqe e = { 0 };

		rw(&e, 2, 0, 8);
		e.prp1 = R1_GPA + UF_OFF + below(16) * PG;
		sq_submit(&d, 1, &e);
		sq_ring(&d, 1);
	}
	/* and one from the backend that holds it */
	if (sfd >= 0) {
		struct sqe e = { 0 };

		rw(&e, 2, 0, 8);
		e.nsid = 2;
		e.prp1 = R1_GPA;
		sq_submit(&d, 2, &e);
		sq_ring(&d, 2);
	}
	p = (struct pollfd){ .fd = uffd, .events = POLLIN };
	if (poll(&p, 1, 5000) != 1)
		_exit(5);	/* the worker never touched the page */
	io.d = &d;
	io.rep = rep;
	if (pthread_create(&guest, NULL, stall_guest, &io))
		_exit(6);
	__atomic_store_n(&rep->ready, true, __ATOMIC_RELEASE);
	t_ready = now_ms();
	for (;;) {
		unsigned int n = below(8), op;

		/* The first 50 ms, only quick ioctls: worker 1 must go on. */
		for (unsigned int k = 0; k < n || now_ms() - t_ready < 50; k++) {
			long t0 = now_ms(), ms;

			op = below(STALL_QUICK_OPS);
			__atomic_store_n(&rep->quick_now, op, __ATOMIC_RELEASE);
			stall_quick(&d, op, efd);
			__atomic_store_n(&rep->quick_now, -1, __ATOMIC_RELEASE);
			ms = now_ms() - t0;
			if (ms > rep->quick_max_ms) {
				rep->quick_max_ms = ms;
				rep->quick_slowest = op;
			}
			__atomic_add_fetch(&rep->quick, 1, __ATOMIC_RELEASE);
			usleep(below(20000));
		}
		op = below(STALL_WAIT_OPS);
		__atomic_store_n(&rep->stopping, op == 1 || op >= 5,
				 __ATOMIC_RELEASE);
		__atomic_store_n(&rep->waiting, op, __ATOMIC_RELEASE);
		stall_wait(&d, op);	/* until killed, mostly */
		if (op == STALL_WAIT_OPS - 1 || op == 5)
			pause();	/* closed or reset: wait to be killed */
		__atomic_store_n(&rep->waiting, -1, __ATOMIC_RELEASE);
		__atomic_store_n(&rep->stopping, false, __ATOMIC_RELEASE);
	}
}

static void print_stack(const char *path, const char *what)
{
	char line[200];
	FILE *f = fopen(path, "r");

	printf("# %s (%s):\n", path, what);
	while (f && fgets(line, sizeof(line), f))
		printf("#   %s", line);
	if (f)
		fclose(f);
}

/*
 * The threads of @owner and its workers ("vhost-nvme-PID" kthreads; under
 * vhost_task they are threads of @owner, not counted, dumped with it):
 * their number, and with @dump their kernel stacks printed.
 */
static int workers_of(pid_t owner, bool dump)
{
	char want[32], path[600], comm[32];
	struct dirent *de;
	int n = 0;
	DIR *dir;
	FILE *f;

	snprintf(want, sizeof(want), "vhost-nvme-%d\n", owner);
	dir = opendir("/proc");
	if (!dir)
		die("/proc");
	while ((de = readdir(dir))) {
		bool match;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		match = fgets(comm, sizeof(comm), f) && !strcmp(comm, want);
		fclose(f);
		if (!match && (!dump || atoi(de->d_name) != owner))
			continue;
		n += match;
		if (!dump)
			continue;
		if (match) {
			snprintf(path, sizeof(path), "/proc/%s/stack", de->d_name);
			print_stack(path, want);
		} else {
			struct dirent *te;
			DIR *td;

			snprintf(path, sizeof(path), "/proc/%s/task", de->d_name);
			td = opendir(path);
			while (td && (te = readdir(td))) {
				if (te->d_name[0] == '.')
					continue;
				snprintf(path, sizeof(path), "/proc/%s/task/%s/stack",
					 de->d_name, te->d_name);
				print_stack(path, "owner");
			}
			if (td)
				closedir(td);
		}
	}
	closedir(dir);
	return n;
}

/*
 * The module's use count: open devices and the releases still draining a
 * backend after close (each holds the module), or -1.
 */
static int module_refcnt(void)
{
	FILE *f = fopen("/sys/module/vhost_nvme/refcnt", "r");
	int n = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%d", &n) != 1)
		n = -1;
	fclose(f);
	return n;
}

/*
 * Wait up to @ms for the devices of a dead owner to be gone: the module's
 * use count back to @base, and no worker thread of @owner left.  True if
 * they went.
 */
static bool owner_devices_gone(pid_t owner, int base, long ms)
{
	long t0 = now_ms();

	while (module_refcnt() > base || workers_of(owner, false)) {
		if (now_ms() - t0 > ms)
			return false;
		usleep(10000);
	}
	return true;
}

static unsigned long stall(int bfd, const char *stuck, unsigned int rounds)
{
	static const char *const waits[] = {
		"SET_MEM_TABLE", "QUIESCE", "coalescing on worker 0",
		"DELETE_SQ", "DETACH_NS", "RESET_OWNER", "close",
	};
	unsigned long done = 0;
	char cmd[160];
	int sfd = -1;

	if (stuck) {
		sfd = open(stuck, O_RDWR);
		if (sfd < 0)
			die(stuck);
	}
	for (unsigned int r = 0; r < rounds; r++) {
		struct stall_report *rep;
		int st, pidfd, uffd = -1, base = module_refcnt();
		long t0, died = -1;
		pid_t pid;

		rep = mmap(NULL, PG, PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (rep == MAP_FAILED)
			die("mmap");
		if (stuck) {
			snprintf(cmd, sizeof(cmd),
				 "dmsetup suspend --noflush %s", stuck);
			if (system(cmd))
				die("dmsetup suspend");
		}
		pid = fork();
		if (pid < 0)
			die("fork");
		if (!pid) {
			rnd_state += r * 104729;
			stall_child(bfd, sfd, rep);
		}
		t0 = now_ms();
		while (!__atomic_load_n(&rep->ready, __ATOMIC_ACQUIRE) &&
		       now_ms() - t0 < 10000 && waitpid(pid, &st, WNOHANG) == 0)
			usleep(1000);
		if (!__atomic_load_n(&rep->ready, __ATOMIC_ACQUIRE)) {
			fail("stall %u: the owner never got worker 0 stuck", r);
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			goto next;
		}
		pidfd = syscall(__NR_pidfd_open, pid, 0);
		if (pidfd >= 0) {
			uffd = syscall(__NR_pidfd_getfd, pidfd, rep->uffd, 0);
			close(pidfd);
		}
		if (uffd < 0)
			die("pidfd_getfd");
		usleep(100000 + below(400000));
		if (!__atomic_load_n(&rep->io1, __ATOMIC_ACQUIRE)) {
			printf("# stall %u: no I/O on worker 1 yet (quick ioctl %d in progress):\n",
			       r, rep->quick_now);
			workers_of(pid, true);
			fflush(stdout);
		}
		t0 = now_ms();
		kill(pid, SIGKILL);
		while (waitpid(pid, &st, WNOHANG) != pid) {
			if (now_ms() - t0 > 10000)
				break;
			usleep(1000);
		}
		died = now_ms() - t0;
		if (died > STALL_BOUND_MS)
			fail("stall %u: the owner took %ld ms to die in %s", r,
			     died, rep->waiting < 0 ? "no waiting ioctl" :
			     waits[rep->waiting]);
		if (!rep->io1)
			fail("stall %u: no I/O on worker 1 while worker 0 was held",
			     r);
		if (rep->io1_max_ms > STALL_BOUND_MS)
			fail("stall %u: a read on worker 1 took %ld ms", r,
			     rep->io1_max_ms);
		if (rep->quick_max_ms > STALL_BOUND_MS)
			fail("stall %u: ioctl %d, which needs no worker 0, took %ld ms",
			     r, rep->quick_slowest, rep->quick_max_ms);
		/* The page comes, the backend resumes: the release ends. */
		{
			struct uffdio_zeropage z = {
				.range = { .start = (uintptr_t)rep->uf,
					   .len = R_SIZE - UF_OFF },
			};

			ioctl(uffd, UFFDIO_ZEROPAGE, &z);
		}
		close(uffd);
		if (died > 10000)
			waitpid(pid, &st, 0);
		if (stuck) {
			snprintf(cmd, sizeof(cmd), "dmsetup resume %s", stuck);
			if (system(cmd))
				fail("stall %u: dmsetup resume failed", r);
		}
		if (!owner_devices_gone(pid, base, 10000))
			fail("stall %u: the dead owner's device stays (module use count %d, was %d)",
			     r, module_refcnt(), base);
		printf("# stall %u: worker 1 did %lu reads (slowest %ld ms), %lu quick ioctls (slowest %ld ms), owner died in %ld ms in %s\n",
		       r, rep->io1, rep->io1_max_ms, rep->quick, rep->quick_max_ms,
		       died, rep->waiting < 0 ? "no waiting ioctl" :
		       waits[rep->waiting]);
		fflush(stdout);
		done++;
next:
		munmap(rep, PG);
	}
	if (sfd >= 0)
		close(sfd);
	return done;
}

/* ---- kills: owner killed, or fd closed, with I/O in flight ----------- */

static void busy_child(int bfd, bool close_it) __attribute__((noreturn));
static void busy_child(int bfd, bool close_it)
{
	static struct dev d;

	dev_open(&d, bfd, -1);
	for (;;) {
		for (uint16_t q = 1; q <= NSQ; q++) {
			for (int k = 0; k < 16; k++) {
				struct sqe e = { 0 };

				rw(&e, 1 + below(2), below(d.nsze - 64), 64);
				e.prp1 = R1_GPA + below(64) * PG;
				e.prp2 = R1_GPA + (1 << 20);
				for (int i = 0; i < 15; i++)
					((uint64_t *)hva(&d, e.prp2))[i] =
						R1_GPA + (2 + i) * PG;
				e.cid = k;
				sq_submit(&d, q, &e);
			}
			sq_ring(&d, q);
		}
		if (close_it) {
			close(d.fd);	/* with 64 commands in flight */
			_exit(0);
		}
		wait_irq(&d, 100);
		for (uint16_t c = 1; c <= 2; c++) {
			struct cqe e;

			while (cq_pop(&d, c, &e))
				;
		}
	}
}

static unsigned long kills(int bfd, unsigned int n)
{
	unsigned long done = 0;

	for (unsigned int i = 0; i < n; i++) {
		bool close_it = i & 1;
		pid_t pid = fork();
		int st;

		if (pid < 0)
			die("fork");
		if (!pid) {
			rnd_state += i * 7919;
			busy_child(bfd, close_it);
		}
		if (!close_it) {
			usleep(20000 + below(200000));
			kill(pid, SIGKILL);
		}
		if (waitpid(pid, &st, 0) != pid)
			die("waitpid");
		if (close_it ? !WIFEXITED(st) || WEXITSTATUS(st) :
			       !WIFSIGNALED(st)) {
			fail("child %u ended with status %#x", i, st);
			continue;
		}
		done++;
	}
	return done;
}

/* ---- safety: what was acknowledged survives the owner's death --------- */

/*
 * A child writes stamped blocks and reports each block the device
 * acknowledged as durable over a pipe.  Even rounds write with FUA and
 * never Flush (a Flush would make a lost FUA durable after all), a block
 * reported when its write completes; odd rounds write plain and then
 * Flush, the blocks reported when the Flush completes.  It is killed at a random moment.  Every
 * block it reported must then read back with its stamp from the backend
 * itself; with a backend that has a volatile write cache (-W, a configfs
 * null_blk), only after the backend was powered off and on, which loses
 * what was only in its cache.
 */
static void safety_child(int bfd, int wfd, unsigned int round)
	__attribute__((noreturn));
static void safety_child(int bfd, int wfd, unsigned int round)
{
	static struct dev d;
	uint64_t next = 0, lbas[16];

	dev_open(&d, bfd, -1);
	for (;;) {
		for (int k = 0; k < 16; k++) {
			struct sqe e = { 0 };
			uint64_t lba = (round * 4096 + next++ % 4096) * 8;

			lbas[k] = lba;
			uint64_t *buf = hva(&d, R1_GPA + k * PG);

			for (int i = 0; i < 512; i++) {
				buf[i] = lba;
				buf[i + 1] = round;
				i++;
			}
			rw(&e, 1, lba, 8);
			e.prp1 = R1_GPA + k * PG;
			if (!(round & 1))
				e.cdw12 |= 1U << 30;	/* FUA */
			e.cid = k;
			sq_submit(&d, 1, &e);
		}
		sq_ring(&d, 1);
		for (int got = 0; got < 16;) {
			struct cqe c;

			if (!cq_pop(&d, 1, &c)) {
				wait_irq(&d, 1000);
				continue;
			}
			got++;
			if (c.status >> 1)
				_exit(3);
			if (!(round & 1) && c.cid < 16 &&
			    write(wfd, &lbas[c.cid], 8) != 8)
				_exit(4);
		}
		/* The plain writes are durable once a Flush after them is. */
		if (round & 1) {
			struct sqe e = { .opcode = 0, .nsid = 1, .cid = 100 };
			struct cqe c;

			sq_submit(&d, 1, &e);
			sq_ring(&d, 1);
			while (!cq_pop(&d, 1, &c))
				wait_irq(&d, 1000);
			if (c.cid != 100 || c.status >> 1)
				_exit(5);
			if (write(wfd, lbas, sizeof(lbas)) != sizeof(lbas))
				_exit(4);
		}
	}
}

static void write_file(const char *path, const char *what)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0 || write(fd, what, strlen(what)) != (ssize_t)strlen(what))
		die(path);
	close(fd);
}

/* The disk of the configfs null_blk @wc, opened; its node made if need be. */
static int wc_open(const char *wc, int flags)
{
	const char *name = strrchr(wc, '/') + 1;
	char node[300], sys[300], dev[32];
	unsigned int maj, min;
	FILE *f;

	snprintf(node, sizeof(node), "/dev/%s", name);
	snprintf(sys, sizeof(sys), "/sys/block/%s/dev", name);
	for (int i = 0; i < 500 && access(sys, R_OK); i++)
		usleep(10000);
	if (access(node, F_OK)) {
		f = fopen(sys, "r");
		if (!f || !fgets(dev, sizeof(dev), f) ||
		    sscanf(dev, "%u:%u", &maj, &min) != 2)
			die(sys);
		fclose(f);
		if (mknod(node, S_IFBLK | 0600, makedev(maj, min)))
			die(node);
	}
	return open(node, flags);
}

/*
 * What is only in the write cache of @wc's disk is lost: power it off and
 * on (null_blk frees its cache then), as a power failure would.  Nobody may
 * have it open.
 */
static void wc_power_cycle(const char *wc)
{
	char path[300];

	snprintf(path, sizeof(path), "%s/power", wc);
	write_file(path, "0");
	write_file(path, "1");
}

static unsigned long safety(int bfd, const char *wc, unsigned int rounds)
{
	unsigned long checked = 0;
	char path[64];
	void *buf;
	int dfd = -1;

	if (wc) {
		bfd = wc_open(wc, O_RDWR);
		if (bfd < 0)
			die(wc);
	}
	if (posix_memalign(&buf, PG, PG))
		die("safety setup");
	for (unsigned int r = 0; r < rounds; r++) {
		uint64_t *lbas = NULL;
		size_t nlbas = 0, cap = 0;
		int p[2], st, base = module_refcnt();
		pid_t pid;
		uint64_t lba;

		if (pipe(p))
			die("pipe");
		pid = fork();
		if (pid < 0)
			die("fork");
		if (!pid) {
			close(p[0]);
			safety_child(bfd, p[1], r);
		}
		close(p[1]);
		usleep(50000 + below(300000));
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		if (!WIFSIGNALED(st))
			fail("safety child %u exited with %#x", r, st);
		while (read(p[0], &lba, 8) == 8) {
			if (nlbas == cap) {
				cap = cap ? 2 * cap : 4096;
				lbas = realloc(lbas, cap * sizeof(*lbas));
				if (!lbas)
					die("realloc");
			}
			lbas[nlbas++] = lba;
		}
		close(p[0]);
		if (wc) {
			/* The dead owner's device lets go of the backend... */
			if (!owner_devices_gone(pid, base, 10000))
				fail("safety %u: the dead owner's device stays", r);
			/* ...and then the power fails. */
			close(bfd);
			wc_power_cycle(wc);
			bfd = wc_open(wc, O_RDWR);
			dfd = wc_open(wc, O_RDONLY | O_DIRECT);
		} else {
			/* Read the backend itself, around the page cache. */
			snprintf(path, sizeof(path), "/proc/self/fd/%d", bfd);
			dfd = open(path, O_RDONLY | O_DIRECT);
		}
		if (bfd < 0 || dfd < 0)
			die("safety: reopen the backend");
		for (size_t i = 0; i < nlbas; i++) {
			uint64_t *b = buf;

			lba = lbas[i];
			if (pread(dfd, buf, PG, lba * 512) != (ssize_t)PG) {
				fail("safety: cannot read LBA %llu",
				     (unsigned long long)lba);
				continue;
			}
			if (b[0] != lba || b[1] != r || b[510] != lba ||
			    b[511] != r)
				fail("safety: acknowledged %s write at LBA %llu lost",
				     r & 1 ? "flushed" : "FUA",
				     (unsigned long long)lba);
			checked++;
		}
		close(dfd);
		free(lbas);
	}
	if (wc)
		close(bfd);
	free(buf);
	return checked;
}

static const char *phases;	/* -p: the phases to run, NULL for all */

static bool phase(const char *name)
{
	size_t n = strlen(name);

	for (const char *p = phases; p; p = strchr(p, ',')) {
		if (*p == ',')
			p++;
		if (!strncmp(p, name, n) && (p[n] == ',' || !p[n]))
			return true;
	}
	return !phases;
}

int main(int argc, char **argv)
{
	unsigned long ncmd = 1000000, nioctl = 100000, nkill = 40, nfault = 100;
	unsigned long nexhaust = 0, nstall = 4, stalls = 0;
	const char *slow = NULL, *stuck = NULL, *wc = NULL;
	unsigned long cmds = 0, ios = 0, kls = 0, fls = 0, acked = 0;
	unsigned long nsafety = 10;
	uint64_t pin0, unpin0, pinned, unpinned;
	int opt, bfd, ffd = -1, base;

	while ((opt = getopt(argc, argv, "n:i:k:f:s:x:t:S:W:p:")) != -1) {
		switch (opt) {
		case 'n': ncmd = strtoul(optarg, NULL, 0); break;
		case 'i': nioctl = strtoul(optarg, NULL, 0); break;
		case 'k': nkill = strtoul(optarg, NULL, 0); break;
		case 'f': nfault = strtoul(optarg, NULL, 0); break;
		case 's': rnd_state = strtoull(optarg, NULL, 0) | 1; break;
		case 'x': slow = optarg; break;
		case 't': nstall = strtoul(optarg, NULL, 0); break;
		case 'S': stuck = optarg; break;
		case 'W': wc = optarg; break;
		case 'p': phases = optarg; break;
		default:
			fprintf(stderr, "usage: %s [-n cmds] [-i ioctls] [-k kills] [-f faults] [-s seed] [-x SLOW] [-t stalls] [-S STUCK] [-W NULLB_CONFIGFS_DIR] [-p PHASE,...] BACKEND [FAULTY]\n",
				argv[0]);
			return 2;
		}
	}
	if (optind >= argc)
		return 2;
	bfd = open(argv[optind], O_RDWR);
	if (bfd < 0)
		die(argv[optind]);
	if (optind + 1 < argc) {
		ffd = open(argv[optind + 1], O_RDWR);
		if (ffd < 0)
			die(argv[optind + 1]);
	}
	signal(SIGPIPE, SIG_IGN);
	base = module_refcnt();
	vmstat_refresh();
	pin0 = vmstat("nr_foll_pin_acquired");
	unpin0 = vmstat("nr_foll_pin_released");

	printf("# seed %#llx%s%s\n", (unsigned long long)rnd_state,
	       phases ? ", phases " : "", phases ? phases : "");
	fflush(stdout);
	if (phase("storm")) {
		cmds = storm(bfd, ncmd);
		printf("# storm done\n");
		fflush(stdout);
	}
	if (ffd >= 0 && phase("faults"))
		fls = faults(bfd, ffd, nfault);
	if (slow && phase("exhaust")) {
		int sfd = open(slow, O_RDWR);

		if (sfd < 0)
			die(slow);
		nexhaust = exhaust(sfd, 2, 4ULL << 20);
		close(sfd);
	}
	if (phase("ioctls"))
		ios = ioctls(bfd, nioctl);
	if (phase("races"))
		ios += races(bfd, nioctl / 10);
	printf("# ioctls done\n");
	fflush(stdout);
	if (phase("stall"))
		stalls = stall(bfd, stuck, nstall);
	if (phase("kills"))
		kls = kills(bfd, nkill);
	if (phase("safety")) {
		acked = safety(bfd, wc, nsafety);
		printf("# safety: %lu acknowledged writes (FUA, or plain and flushed) checked on the backend after %lu owner kills%s\n",
		       acked, nsafety, wc ? " and as many power failures of its write cache" : "");
		if (!acked)
			fail("safety: no acknowledged write was checked");
		kls += nsafety;
	}

	/*
	 * Every device is gone (a dead owner's release drains on a workqueue
	 * and holds the module until it is done), and every page the module
	 * pinned has been unpinned.
	 */
	if (!owner_devices_gone(getpid(), base, 10000))
		fail("devices left after the phases: module use count %d, was %d",
		     module_refcnt(), base);
	vmstat_refresh();
	pinned = vmstat("nr_foll_pin_acquired") - pin0;
	unpinned = vmstat("nr_foll_pin_released") - unpin0;
	printf("# pages pinned %llu, unpinned %llu\n",
	       (unsigned long long)pinned, (unsigned long long)unpinned);
	if (pinned != unpinned)
		fail("%llu pages still pinned",
		     (unsigned long long)(pinned - unpinned));
	printf("hostile: %lu commands, %lu ioctls, %lu kills, %lu faults, %lu errors\n",
	       cmds + nexhaust, ios, kls + stalls, fls, errors);
	return errors ? 1 : 0;
}
