// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-nvme-load: push a real workload through /dev/vhost-nvme.
 *
 * The program plays both VMM and guest: its own memory is the guest memory,
 * it creates I/O queue pairs, and it keeps a queue depth of 4 KiB (or --bs)
 * random reads and writes in flight against a backend for a given time.
 * Every block written carries its LBA and a generation number; every block
 * read back is checked, so the run also verifies data integrity (a block
 * whose write failed is not read until it has been written again: with a
 * failing backend, every successful read must still be right).
 *
 *   vhost-nvme-load [--seconds N] [--qd N] [--bs BYTES] [--read-pct P]
 *                   [--span MIB] [--shadow] BACKEND
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/vhost_nvme.h>
#include "vnvme-wire.h"

#define GPA_BASE	0x100000000ULL
#define MEM_SIZE	(64UL << 20)
#define PAGE		4096UL
#define QSIZE		1024

static uint8_t *mem;
static uint64_t bump = 0;
static int vfd;

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void *galloc(size_t len, uint64_t *gpa)
{
	void *p;

	len = (len + PAGE - 1) & ~(PAGE - 1);
	if (bump + len > MEM_SIZE) {
		fprintf(stderr, "out of guest memory\n");
		exit(1);
	}
	p = mem + bump;
	*gpa = GPA_BASE + bump;
	bump += len;
	return p;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct slot {
	int busy;
	int write;
	uint64_t lba;
	uint64_t gen;
	double start;
	uint8_t *buf;
	uint64_t gpa;
	uint64_t list_gpa;
	uint64_t *list;
};

int main(int argc, char **argv)
{
	unsigned int seconds = 5, qd = 16, bs = 4096, read_pct = 70, span_mib = 64;
	int shadow = 0, opt;
	static const struct option opts[] = {
		{ "seconds", required_argument, NULL, 't' },
		{ "qd", required_argument, NULL, 'q' },
		{ "bs", required_argument, NULL, 'b' },
		{ "read-pct", required_argument, NULL, 'r' },
		{ "span", required_argument, NULL, 's' },
		{ "shadow", no_argument, NULL, 'S' },
		{ }
	};

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 't': seconds = atoi(optarg); break;
		case 'q': qd = atoi(optarg); break;
		case 'b': bs = atoi(optarg); break;
		case 'r': read_pct = atoi(optarg); break;
		case 's': span_mib = atoi(optarg); break;
		case 'S': shadow = 1; break;
		default: return 2;
		}
	}
	if (optind != argc - 1 || !qd || qd >= QSIZE || qd > span_mib * 16 || bs < 512 ||
	    bs % 512 || bs > 256 * 1024 || read_pct > 100) {
		fprintf(stderr, "usage: %s [--seconds N] [--qd N] [--bs BYTES] [--read-pct P] [--span MIB] [--shadow] BACKEND\n",
			argv[0]);
		return 2;
	}

	int bfd = open(argv[optind], O_RDWR | O_DIRECT);
	if (bfd < 0)
		die(argv[optind]);
	vfd = open("/dev/vhost-nvme", O_RDWR);
	if (vfd < 0)
		die("/dev/vhost-nvme");

	struct vhost_nvme_info info = { .size = sizeof(info) };
	if (ioctl(vfd, VHOST_NVME_GET_INFO, &info))
		die("GET_INFO");
	uint64_t features;
	if (ioctl(vfd, VHOST_GET_FEATURES, &features))
		die("GET_FEATURES");
	if (ioctl(vfd, VHOST_SET_OWNER))
		die("SET_OWNER");
	features &= VHOST_NVME_F_ALL & ~VHOST_NVME_F_LOG_ALL;	/* no log here */
	if (ioctl(vfd, VHOST_SET_FEATURES, &features))
		die("SET_FEATURES");

	mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap");
	struct {
		struct vhost_memory hdr;
		struct vhost_memory_region r;
	} table = {
		.hdr.nregions = 1,
		.r = { .guest_phys_addr = GPA_BASE, .memory_size = MEM_SIZE,
		       .userspace_addr = (uintptr_t)mem },
	};
	if (ioctl(vfd, VHOST_SET_MEM_TABLE, &table))
		die("SET_MEM_TABLE");

	struct vhost_nvme_ns ns = { .nsid = 1, .fd = bfd };
	if (ioctl(vfd, VHOST_NVME_ATTACH_NS, &ns))
		die("ATTACH_NS");
	unsigned int lbs = 1U << ns.lba_shift;
	uint64_t span = ((uint64_t)span_mib << 20) / bs;
	if (bs % lbs || span * bs / lbs > ns.nsze || !span) {
		fprintf(stderr, "backend too small or block size mismatch\n");
		return 1;
	}

	/* Doorbells: a VMM page, or shadow buffers in guest memory. */
	uint64_t db_gpa, ei_gpa;
	volatile uint32_t *db, *ei = NULL;
	struct vhost_nvme_doorbells dbs = { 0 };
	if (shadow) {
		db = galloc(PAGE, &db_gpa);
		ei = galloc(PAGE, &ei_gpa);
		dbs = (struct vhost_nvme_doorbells){ .mode = VHOST_NVME_DB_SHADOW,
			.db_addr = db_gpa, .ei_addr = ei_gpa };
	} else {
		db = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		dbs = (struct vhost_nvme_doorbells){ .mode = VHOST_NVME_DB_VMM,
			.db_addr = (uintptr_t)db };
	}
	if (ioctl(vfd, VHOST_NVME_SET_DOORBELLS, &dbs))
		die("SET_DOORBELLS");

	uint64_t sq_gpa, cq_gpa;
	struct sqe *sq = galloc(QSIZE * 64, &sq_gpa);
	volatile struct cqe *cq = galloc(QSIZE * 16, &cq_gpa);
	int irqfd = eventfd(0, EFD_NONBLOCK), kickfd = eventfd(0, 0);
	struct vhost_nvme_cq ccq = { .qid = 1, .size = QSIZE,
		.flags = VHOST_NVME_CQ_F_IRQ_ENABLED, .addr = cq_gpa,
		.irqfd = irqfd, .kickfd = kickfd };
	if (ioctl(vfd, VHOST_NVME_CREATE_CQ, &ccq))
		die("CREATE_CQ");
	struct vhost_nvme_sq csq = { .qid = 1, .size = QSIZE, .cqid = 1,
		.addr = sq_gpa, .kickfd = kickfd };
	if (ioctl(vfd, VHOST_NVME_CREATE_SQ, &csq))
		die("CREATE_SQ");

	struct slot *slots = calloc(qd, sizeof(*slots));
	uint64_t *gens = calloc(span, sizeof(*gens));
	/* One command per block at a time, so every read has one answer. */
	uint8_t *blk_busy = calloc(span, 1);
	for (unsigned int i = 0; i < qd; i++) {
		slots[i].buf = galloc(bs, &slots[i].gpa);
		slots[i].list = galloc(PAGE, &slots[i].list_gpa);
	}

	uint16_t sq_tail = 0, cq_head = 0, old_tail = 0;
	int phase = 1;
	uint64_t done = 0, bytes = 0, errors = 0, mismatches = 0, reads = 0;
	double lat_sum = 0, t0 = now(), end = t0 + seconds, next_report = t0 + 1;
	unsigned int inflight = 0;
	uint64_t gen = 0;
	unsigned int seed = 1;

	for (;;) {
		double t = now();
		int stop = t >= end;

		/* Fill the queue depth. */
		for (unsigned int i = 0; i < qd && !stop; i++) {
			struct slot *s = &slots[i];
			struct sqe *e = &sq[sq_tail];
			uint64_t idx;

			if (s->busy)
				continue;
			do
				idx = rand_r(&seed) % span;
			while (blk_busy[idx]);
			blk_busy[idx] = 1;
			s->busy = 1;
			s->lba = idx * (bs / lbs);
			s->write = !gens[idx] || (unsigned int)(rand_r(&seed) % 100) >= read_pct;
			if (s->write) {
				s->gen = ++gen;
				for (unsigned int o = 0; o < bs; o += 16) {
					((uint64_t *)(s->buf + o))[0] = idx;
					((uint64_t *)(s->buf + o))[1] = s->gen;
				}
				gens[idx] = s->gen;
			} else {
				s->gen = gens[idx];
				memset(s->buf, 0, bs);
			}
			memset(e, 0, sizeof(*e));
			e->opcode = s->write ? 0x01 : 0x02;
			e->cid = i;
			e->nsid = 1;
			e->prp1 = s->gpa;
			if (bs > 2 * PAGE) {
				for (unsigned int p = 1; p < bs / PAGE; p++)
					s->list[p - 1] = s->gpa + p * PAGE;
				e->prp2 = s->list_gpa;
			} else if (bs > PAGE) {
				e->prp2 = s->gpa + PAGE;
			}
			e->cdw10 = (uint32_t)s->lba;
			e->cdw11 = s->lba >> 32;
			e->cdw12 = bs / lbs - 1;
			s->start = t;
			sq_tail = (sq_tail + 1) % QSIZE;
			inflight++;
		}
		if (sq_tail != old_tail) {
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			db[2] = sq_tail;
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			/* Shadow mode: ring only if the EventIdx asks for it. */
			if (!shadow || (uint16_t)(sq_tail - ei[2] - 1) <
					(uint16_t)(sq_tail - old_tail)) {
				uint64_t one = 1;

				if (write(kickfd, &one, 8) != 8)
					die("kick");
			}
			old_tail = sq_tail;
		}
		if (!inflight)
			break;

		struct pollfd pfd = { .fd = irqfd, .events = POLLIN };
		if (poll(&pfd, 1, 5000) != 1) {
			fprintf(stderr, "timeout: %u commands in flight\n", inflight);
			return 1;
		}
		uint64_t cnt;
		if (read(irqfd, &cnt, 8) < 0 && errno != EAGAIN)
			die("irqfd");
		while ((cq[cq_head].status & 1) == phase) {
			volatile struct cqe *c = &cq[cq_head];
			struct slot *s = &slots[c->cid];

			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			if (c->status >> 1) {
				errors++;
				/*
				 * What a failed write left there is unknown: the
				 * block is written again before it is read.
				 */
				if (s->write)
					gens[s->lba / (bs / lbs)] = 0;
			} else if (!s->write) {
				uint64_t idx = s->lba / (bs / lbs);

				reads++;
				for (unsigned int o = 0; o < bs; o += 16)
					if (((uint64_t *)(s->buf + o))[0] != idx ||
					    ((uint64_t *)(s->buf + o))[1] != s->gen) {
						mismatches++;
						break;
					}
			}
			blk_busy[s->lba / (bs / lbs)] = 0;
			lat_sum += now() - s->start;
			s->busy = 0;
			inflight--;
			done++;
			bytes += bs;
			if (++cq_head == QSIZE) {
				cq_head = 0;
				phase ^= 1;
			}
		}
		db[3] = cq_head;
		if (t >= next_report) {
			printf("  %5.1fs  %8.0f IOPS\n", t - t0, done / (t - t0));
			fflush(stdout);
			next_report += 1;
		}
	}
	double el = now() - t0;

	struct vhost_nvme_queue_state qs = { .qid = 1, .type = VHOST_NVME_QTYPE_SQ };
	if (ioctl(vfd, VHOST_NVME_GET_QUEUE_STATE, &qs))
		die("GET_QUEUE_STATE");
	printf("vhost-nvme-load: %s, qd %u, bs %u, %u%% reads, %s doorbells, %.1f s\n",
	       argv[optind], qd, bs, read_pct, shadow ? "shadow" : "VMM", el);
	printf("  commands %llu (module counted %llu), errors %llu, verified reads %llu, mismatches %llu\n",
	       (unsigned long long)done, (unsigned long long)qs.commands,
	       (unsigned long long)errors, (unsigned long long)reads,
	       (unsigned long long)mismatches);
	printf("  %.0f IOPS, %.1f MiB/s, mean latency %.1f us\n", done / el,
	       bytes / el / 1048576, lat_sum / done * 1e6);
	close(vfd);
	return errors || mismatches || qs.commands != done || !done;
}
