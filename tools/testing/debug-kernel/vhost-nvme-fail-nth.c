// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-nvme-fail-nth: fail every allocation on the setup paths of
 * /dev/vhost-nvme, one at a time, as the kernel's iommufd_fail_nth selftest
 * does (CONFIG_FAULT_INJECTION, FAILSLAB, FAIL_PAGE_ALLOC and the per-task
 * /proc/self/task/<tid>/fail-nth).
 *
 *   vhost-nvme-fail-nth [-v] BACKEND
 *
 * The setup is a fixed sequence of steps (open, SET_OWNER, SET_FEATURES,
 * SET_MEM_TABLE, ATTACH_NS, SET_DOORBELLS, NEW_WORKER, CREATE_CQ,
 * CREATE_SQ). For each step S and n = 1, 2, ...: a fresh device is set up
 * to just before S; fail-nth is set to n and S is run, so that the n-th
 * fault point S reaches fails. Then:
 *   - if no fault was injected (S has fewer than n fault points), S must
 *     have succeeded and the walk of S ends;
 *   - if S failed, its errno must be ENOMEM (a clean error), and S must
 *     succeed when run again without injection;
 *   - either way the rest of the setup must succeed and a 4 KiB write and
 *     read back through the queues must complete with the data intact
 *     (the device is usable after the failure).
 * Needs debugfs at /sys/kernel/debug. Prints one TAP line per step and
 * "fail-nth: N fault points, N injected failures, N tolerated, N errors".
 * Kernel splats are caught by the caller's console scan; each injection is
 * marked in the kernel log ("vhost-nvme-fail-nth: STEP n=N") to place them.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/vhost_nvme.h>
#include "vnvme-wire.h"

#define GPA_BASE	0x100000000ULL
#define MEM_SIZE	(4UL << 20)
#define PAGE		4096UL
#define QSIZE_WANT	1024
#define MAX_NTH		1000

enum step {
	S_OPEN, S_SET_OWNER, S_SET_FEATURES, S_SET_MEM_TABLE, S_ATTACH_NS,
	S_SET_DOORBELLS, S_NEW_WORKER, S_CREATE_CQ, S_CREATE_SQ, S_NR
};

static const char *const step_name[S_NR] = {
	"open", "SET_OWNER", "SET_FEATURES", "SET_MEM_TABLE", "ATTACH_NS",
	"SET_DOORBELLS", "NEW_WORKER", "CREATE_CQ", "CREATE_SQ",
};

/* One device set up by the steps; everything but the memory is per run. */
struct dev {
	int vfd, irqfd, kickfd, errfd;
	uint32_t worker;
	unsigned int lba_shift;
	uint16_t sq_tail, cq_head;
	int phase;
};

static const char *backend;
static int bfd = -1, nth_fd = -1, kmsg_fd = -1, verbose;
static uint16_t qsize;
static uint64_t features;	/* VHOST_GET_FEATURES */
static uint8_t *mem;		/* the guest memory */
static volatile uint32_t *db;	/* VMM doorbell page */
static struct sqe *sq;
static volatile struct cqe *cq;
static uint8_t *buf;
static uint64_t sq_gpa, cq_gpa, buf_gpa;

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("Bail out! ");
	vprintf(fmt, ap);
	printf(" (%s)\n", strerror(errno));
	va_end(ap);
	exit(1);
}

static void mark(const char *fmt, ...)
{
	char line[200];
	va_list ap;
	int len;

	if (kmsg_fd < 0)
		return;
	va_start(ap, fmt);
	len = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (write(kmsg_fd, line, len) < 0)
		kmsg_fd = -1;
}

/* Write VAL to /sys/kernel/debug/NAME; returns 0 or -1. */
static int debugfs_write(const char *name, const char *val)
{
	char path[300];
	ssize_t len = strlen(val);
	int fd, ok;

	snprintf(path, sizeof(path), "/sys/kernel/debug/%s", name);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	ok = write(fd, val, len) == len;
	close(fd);
	return ok ? 0 : -1;
}

/* Make every GFP_KERNEL allocation a fault point; keep the log quiet. */
static void setup_fault_injection(void)
{
	struct dirent *d;
	DIR *dir;

	if (debugfs_write("failslab/ignore-gfp-wait", "N") ||
	    debugfs_write("fail_page_alloc/ignore-gfp-wait", "N") ||
	    debugfs_write("fail_page_alloc/ignore-gfp-highmem", "N") ||
	    debugfs_write("fail_page_alloc/min-order", "0"))
		die("cannot configure failslab/fail_page_alloc in /sys/kernel/debug");
	dir = opendir("/sys/kernel/debug");
	if (!dir)
		die("opendir /sys/kernel/debug");
	while ((d = readdir(dir))) {
		char fn[300];

		if (strncmp(d->d_name, "fail", 4))
			continue;
		/* verbose > 1 prints a stack trace per injected fault */
		snprintf(fn, sizeof(fn), "%s/verbose", d->d_name);
		debugfs_write(fn, "0");
	}
	closedir(dir);
}

static void nth_set(unsigned int n)
{
	char s[16];
	int len = snprintf(s, sizeof(s), "%u", n);

	if (pwrite(nth_fd, s, len, 0) != len)
		die("write fail-nth");
}

/* Disarm fail-nth; return 1 if the armed fault was injected. */
static int nth_injected(void)
{
	char s[16] = "";
	ssize_t r;

	r = pread(nth_fd, s, sizeof(s) - 1, 0);
	/* Reading or writing fail-nth can meet the fault itself. */
	if (r < 0 && errno == EFAULT)
		strcpy(s, "1\n");
	else if (r < 0)
		die("read fail-nth");
	if (pwrite(nth_fd, "0", 1, 0) != 1 &&
	    (errno != EFAULT || pwrite(nth_fd, "0", 1, 0) != 1))
		die("disarm fail-nth");
	return atoi(s) == 0;
}

/* Run one setup step; returns 0 or an errno value. */
static int run_step(struct dev *d, enum step s)
{
	int ret = 0;

	switch (s) {
	case S_OPEN:
		d->vfd = open("/dev/vhost-nvme", O_RDWR | O_CLOEXEC);
		ret = d->vfd < 0 ? -1 : 0;
		break;
	case S_SET_OWNER:
		ret = ioctl(d->vfd, VHOST_SET_OWNER);
		break;
	case S_SET_FEATURES: {
		uint64_t f = features;

		ret = ioctl(d->vfd, VHOST_SET_FEATURES, &f);
		break;
	}
	case S_SET_MEM_TABLE: {
		struct {
			struct vhost_memory hdr;
			struct vhost_memory_region r;
		} t = {
			.hdr.nregions = 1,
			.r = { .guest_phys_addr = GPA_BASE, .memory_size = MEM_SIZE,
			       .userspace_addr = (uintptr_t)mem },
		};

		ret = ioctl(d->vfd, VHOST_SET_MEM_TABLE, &t);
		break;
	}
	case S_ATTACH_NS: {
		struct vhost_nvme_ns ns = { .nsid = 1, .fd = bfd };

		ret = ioctl(d->vfd, VHOST_NVME_ATTACH_NS, &ns);
		if (!ret)
			d->lba_shift = ns.lba_shift;
		break;
	}
	case S_SET_DOORBELLS: {
		struct vhost_nvme_doorbells dbs = { .mode = VHOST_NVME_DB_VMM,
						    .db_addr = (uintptr_t)db };

		ret = ioctl(d->vfd, VHOST_NVME_SET_DOORBELLS, &dbs);
		break;
	}
	case S_NEW_WORKER: {
		struct vhost_nvme_worker w = { 0 };

		ret = ioctl(d->vfd, VHOST_NVME_NEW_WORKER, &w);
		if (!ret)
			d->worker = w.id;
		break;
	}
	case S_CREATE_CQ: {
		struct vhost_nvme_cq c = { .qid = 1, .size = qsize,
			.flags = VHOST_NVME_CQ_F_IRQ_ENABLED | VHOST_NVME_CQ_F_ERRFD,
			.addr = cq_gpa, .irqfd = d->irqfd, .kickfd = -1,
			.worker = d->worker, .errfd = d->errfd };

		ret = ioctl(d->vfd, VHOST_NVME_CREATE_CQ, &c);
		break;
	}
	case S_CREATE_SQ: {
		struct vhost_nvme_sq q = { .qid = 1, .size = qsize, .cqid = 1,
			.flags = VHOST_NVME_SQ_F_ERRFD, .kickfd = d->kickfd,
			.addr = sq_gpa, .errfd = d->errfd };

		ret = ioctl(d->vfd, VHOST_NVME_CREATE_SQ, &q);
		break;
	}
	case S_NR:
		break;
	}
	return ret ? errno : 0;
}

static void dev_init(struct dev *d)
{
	memset(d, 0, sizeof(*d));
	d->vfd = -1;
	d->phase = 1;
	d->irqfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	d->kickfd = eventfd(0, EFD_CLOEXEC);
	/* The queues' error eventfd: their failure paths put it too. */
	d->errfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d->irqfd < 0 || d->kickfd < 0 || d->errfd < 0)
		die("eventfd");
	memset((void *)db, 0, PAGE);
	memset((void *)cq, 0, (size_t)qsize * sizeof(*cq));
}

static void dev_close(struct dev *d)
{
	if (d->vfd >= 0)
		close(d->vfd);
	close(d->irqfd);
	close(d->kickfd);
	close(d->errfd);
}

/* Run steps [from, to) without injection; 0 or the failing step's errno. */
static int run_steps(struct dev *d, enum step from, enum step to, enum step *failed)
{
	for (enum step s = from; s < to; s++) {
		int err = run_step(d, s);

		if (err) {
			*failed = s;
			return err;
		}
	}
	return 0;
}

/* Submit one command and wait for its completion; returns the status. */
static int submit(struct dev *d, uint8_t opcode, uint64_t lba)
{
	struct sqe *e = &sq[d->sq_tail];
	struct pollfd pfd = { .fd = d->irqfd, .events = POLLIN };
	unsigned int nlb = (PAGE >> d->lba_shift) - 1;
	uint64_t one = 1, cnt;
	volatile struct cqe *c;

	memset(e, 0, sizeof(*e));
	e->opcode = opcode;
	e->cid = d->sq_tail;
	e->nsid = 1;
	e->prp1 = buf_gpa;
	e->cdw10 = (uint32_t)lba;
	e->cdw11 = lba >> 32;
	e->cdw12 = nlb;
	d->sq_tail = (d->sq_tail + 1) % qsize;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	db[2] = d->sq_tail;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (write(d->kickfd, &one, 8) != 8)
		die("kick");
	c = &cq[d->cq_head];
	while ((c->status & 1) != d->phase) {
		if (poll(&pfd, 1, 10000) != 1) {
			printf("# no completion after 10 s\n");
			return -1;
		}
		if (read(d->irqfd, &cnt, 8) < 0 && errno != EAGAIN)
			die("irqfd");
	}
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (c->cid != e->cid) {
		printf("# completion for cid %u, expected %u\n", c->cid, e->cid);
		return -1;
	}
	if (++d->cq_head == qsize) {
		d->cq_head = 0;
		d->phase ^= 1;
	}
	db[3] = d->cq_head;
	return c->status >> 1;
}

/* A 4 KiB write and read back through the queues. */
static int smoke_io(struct dev *d, unsigned int seq)
{
	uint64_t lba = (uint64_t)(seq % 64) * (PAGE >> d->lba_shift);
	int st;

	for (unsigned int i = 0; i < PAGE / 8; i++)
		((uint64_t *)buf)[i] = ((uint64_t)seq << 32) | i;
	st = submit(d, 0x01, lba);
	if (st) {
		printf("# write: status %#x\n", st);
		return -1;
	}
	memset(buf, 0, PAGE);
	st = submit(d, 0x02, lba);
	if (st) {
		printf("# read: status %#x\n", st);
		return -1;
	}
	for (unsigned int i = 0; i < PAGE / 8; i++)
		if (((uint64_t *)buf)[i] != (((uint64_t)seq << 32) | i)) {
			printf("# read back: mismatch at word %u\n", i);
			return -1;
		}
	return 0;
}

struct walk {
	unsigned int points, injected, tolerated, errors;
};

/* Walk the fault points of step S; returns the number of errors. */
static unsigned int walk_step(enum step s, struct walk *w, unsigned int *seq)
{
	unsigned int n, errors = 0;

	for (n = 1; n <= MAX_NTH; n++) {
		enum step failed = S_NR;
		struct dev d;
		int err, injected;

		dev_init(&d);
		err = run_steps(&d, 0, s, &failed);
		if (err) {
			printf("# %s n=%u: setup step %s failed without injection: %s\n",
			       step_name[s], n, step_name[failed], strerror(err));
			dev_close(&d);
			return errors + 1;
		}
		mark("vhost-nvme-fail-nth: %s n=%u\n", step_name[s], n);
		nth_set(n);
		err = run_step(&d, s);	/* nothing else between arming and the step */
		injected = nth_injected();

		if (!injected) {
			if (err) {
				printf("# %s n=%u: failed without an injected fault: %s\n",
				       step_name[s], n, strerror(err));
				errors++;
			}
		} else if (!err) {
			w->tolerated++;
			if (verbose)
				printf("# %s n=%u: fault injected, step succeeded\n",
				       step_name[s], n);
		} else {
			w->injected++;
			if (verbose)
				printf("# %s n=%u: %s\n", step_name[s], n, strerror(err));
			if (err != ENOMEM) {
				printf("# %s n=%u: failed with %s, expected ENOMEM\n",
				       step_name[s], n, strerror(err));
				errors++;
			}
			/* The same step again, now without a fault. */
			err = run_step(&d, s);
			if (err) {
				printf("# %s n=%u: retry after the failure: %s\n",
				       step_name[s], n, strerror(err));
				errors++;
			}
		}
		if (!err) {
			err = run_steps(&d, s + 1, S_NR, &failed);
			if (err) {
				printf("# %s n=%u: later step %s: %s\n", step_name[s], n,
				       step_name[failed], strerror(err));
				errors++;
			} else if (smoke_io(&d, (*seq)++)) {
				printf("# %s n=%u: I/O after the failure did not work\n",
				       step_name[s], n);
				errors++;
			}
		}
		dev_close(&d);
		if (!injected)
			break;
		w->points++;
	}
	if (n > MAX_NTH) {
		printf("# %s: still injecting after %u fault points\n", step_name[s], MAX_NTH);
		errors++;
	}
	return errors;
}

static void *map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

int main(int argc, char **argv)
{
	struct walk total = { 0 };
	struct vhost_nvme_info info = { .size = sizeof(info) };
	unsigned int seq = 1, failed = 0;
	char path[64];
	int opt, vfd;

	while ((opt = getopt(argc, argv, "v")) != -1) {
		if (opt != 'v') {
			fprintf(stderr, "usage: %s [-v] BACKEND\n", argv[0]);
			return 2;
		}
		verbose = 1;
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: %s [-v] BACKEND\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	backend = argv[optind];
	printf("TAP version 13\n1..%d\n", S_NR);

	bfd = open(backend, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (bfd < 0)
		die("open %s", backend);
	vfd = open("/dev/vhost-nvme", O_RDWR | O_CLOEXEC);
	if (vfd < 0 || ioctl(vfd, VHOST_NVME_GET_INFO, &info))
		die("/dev/vhost-nvme GET_INFO");
	if (ioctl(vfd, VHOST_GET_FEATURES, &features))
		die("/dev/vhost-nvme GET_FEATURES");
	close(vfd);
	features &= VHOST_NVME_F_ALL & ~VHOST_NVME_F_LOG_ALL;	/* no log here */
	if (!(features & VHOST_NVME_F_WORKERS) || info.max_workers < 2)
		die("the module does not offer VHOST_NVME_F_WORKERS");
	qsize = info.max_qsize < QSIZE_WANT ? info.max_qsize : QSIZE_WANT;

	mem = map(MEM_SIZE);
	sq = (struct sqe *)mem;
	sq_gpa = GPA_BASE;
	cq = (volatile struct cqe *)(mem + 64 * 1024);
	cq_gpa = GPA_BASE + 64 * 1024;
	buf = mem + 128 * 1024;
	buf_gpa = GPA_BASE + 128 * 1024;
	db = map(PAGE);

	setup_fault_injection();
	snprintf(path, sizeof(path), "/proc/self/task/%ld/fail-nth",
		 (long)syscall(SYS_gettid));
	nth_fd = open(path, O_RDWR | O_CLOEXEC);
	if (nth_fd < 0)
		die("open %s (CONFIG_FAULT_INJECTION?)", path);
	kmsg_fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);

	for (enum step s = 0; s < S_NR; s++) {
		struct walk w = { 0 };
		unsigned int errors = walk_step(s, &w, &seq);

		printf("%sok %d - fail-nth %s: %u fault points, %u failed with ENOMEM, "
		       "%u tolerated, %u errors\n", errors ? "not " : "", s + 1,
		       step_name[s], w.points, w.injected, w.tolerated, errors);
		total.points += w.points;
		total.injected += w.injected;
		total.tolerated += w.tolerated;
		total.errors += errors;
		failed += !!errors;
	}
	printf("fail-nth: %u fault points, %u injected failures, %u tolerated, %u errors\n",
	       total.points, total.injected, total.tolerated, total.errors);
	return failed ? 1 : 0;
}
