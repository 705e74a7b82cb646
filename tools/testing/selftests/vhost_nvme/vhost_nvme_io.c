// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-nvme selftests: the data path (fixture "io")
 *
 * Every test runs on four backends, one variant each: $VHOST_NVME_NULLB
 * (null_blk with a volatile write cache), $VHOST_NVME_LOOP (a loop device
 * on tmpfs), $VHOST_NVME_FILE_DIRECT (a file on ext4, opened with O_DIRECT)
 * and $VHOST_NVME_FILE_BUFFERED (a file on tmpfs); a variant whose variable
 * is unset is skipped.  See vhost_nvme_utils.h for how the tests work and
 * run.sh for how the backends are made.
 */
#include "vhost_nvme_utils.h"

/* =====================================================================
 * Data path
 * ===================================================================== */

/* ---- the guest ------------------------------------------------------- */

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

#define RW(op, slba, nlb, buf) \
	rw_q(_metadata, &self->g, 1, op, 1, slba, nlb, buf, 0)
#define SUBMIT(sqe) __submit(_metadata, &self->g, 1, sqe, NULL)

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
 * A file on tmpfs, buffered: on the owner's helper (tmpfs on 6.1 takes no
 * IOCB_NOWAIT, so the worker reads nothing from the page cache itself)
 */
FIXTURE_VARIANT_ADD(io, file_buffered) {
	.env = "VHOST_NVME_FILE_BUFFERED",
	.nsze = 131072,
	.file = true,
};

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
	ASSERT_EQ(0, g_features(g, F_SETUP & ~VHOST_NVME_F_SGL));
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
 * Dirty logging for live migration: with VHOST_NVME_F_LOG_ALL every guest
 * page the device writes has its bit in the log once the completion is
 * visible (data of Reads, bounced ones and SGL blocks included, and the
 * CQ entries), and nothing else does: not the pages it only reads (Write
 * data, PRP lists, SQ entries).  Switched off, nothing is logged.
 */
TEST_F(io, dirty_log)
{
	struct guest *g = &self->g;
	uint64_t *log = log_alloc();
	uint64_t cq = g->cq[1].gpa, sq = g->sq[1].gpa, list;
	uint64_t b = self->buf2 + 0x10000;
	uint64_t prp1, prp2;
	struct nvme_sqe sqe;

	IO_PROLOGUE();
	ASSERT_NE(NULL, log);
	ASSERT_EQ(0, g_set_log(g, log, LOG_BYTES));
	/* Switched on with queues running. */
	ASSERT_EQ(0, g_features(g, F_SETUP | VHOST_NVME_F_LOG_ALL));

	/* A Write: the device reads the data and writes one CQE. */
	fill(HVA(self->buf), 4 * PG, 40);
	ASSERT_EQ(SC_OK, RW(OP_WRITE, 400, 32, self->buf));
	EXPECT_TRUE(log_test(log, cq));
	EXPECT_EQ(0U, log_count(log, self->buf, 4 * PG));
	EXPECT_FALSE(log_test(log, sq));
	EXPECT_EQ(1U, log_total(log));

	/* A Read through a PRP list: its four data pages, not the list. */
	memset(log, 0, LOG_BYTES);
	rw_sqe(&sqe, OP_READ, 1, 400, 32);
	build_prp(g, b, 4 * PG, &prp1, &prp2);
	list = prp2;
	sqe.prp1 = prp1;
	sqe.prp2 = prp2;
	ASSERT_EQ(SC_OK, SUBMIT(&sqe));
	ASSERT_EQ(0, memcmp(HVA(self->buf), HVA(b), 4 * PG));
	EXPECT_EQ(4U, log_count(log, b, 4 * PG));
	EXPECT_FALSE(log_test(log, list));
	EXPECT_TRUE(log_test(log, cq));
	EXPECT_EQ(5U, log_total(log));

	/* A misaligned PRP1 (bounced on a block device): five pages. */
	memset(log, 0, LOG_BYTES);
	ASSERT_EQ(SC_OK, RW(OP_READ, 400, 32, b + 0x204));
	ASSERT_EQ(0, memcmp(HVA(self->buf), HVA(b + 0x204), 4 * PG));
	EXPECT_EQ(5U, log_count(log, b, 5 * PG));
	EXPECT_EQ(6U, log_total(log));

	/* SGL: two data blocks in pages apart from each other. */
	memset(log, 0, LOG_BYTES);
	rw_sqe(&sqe, OP_READ, 1, 400, 16);
	sqe.flags = PSDT_SGL;
	list = g_alloc(g, PG);
	sgl_desc(&sqe.sgl, list, 2 * sizeof(struct nvme_sgl), SGL_LAST);
	sgl_desc(HVA(list), b + 8 * PG, 4096, SGL_DATA);
	sgl_desc((struct nvme_sgl *)HVA(list) + 1, b + 12 * PG, 4096, SGL_DATA);
	ASSERT_EQ(SC_OK, SUBMIT(&sqe));
	EXPECT_TRUE(log_test(log, b + 8 * PG));
	EXPECT_TRUE(log_test(log, b + 12 * PG));
	EXPECT_FALSE(log_test(log, list));
	EXPECT_EQ(3U, log_total(log));

	/* Off: nothing more. */
	ASSERT_EQ(0, g_features(g, F_SETUP));
	memset(log, 0, LOG_BYTES);
	ASSERT_EQ(SC_OK, RW(OP_READ, 400, 32, b));
	EXPECT_EQ(0U, log_total(log));
	ASSERT_EQ(0, g_set_log(g, NULL, 0));
	munmap(log, LOG_BYTES);
}

/* The log's own rules: size, alignment, when it may go, the memory table. */
TEST_F(io, dirty_log_errors)
{
	struct guest *g = &self->g;
	uint64_t *log = log_alloc();
	struct vhost_nvme_log l = { .addr = (uintptr_t)log, .size = LOG_BYTES };
	struct vhost_memory_region r[2];

	IO_PROLOGUE();
	ASSERT_NE(NULL, log);
	/* Logging needs a log. */
	EXPECT_EQ(-EINVAL, g_features(g, F_SETUP | VHOST_NVME_F_LOG_ALL));
	/* Too small for the memory table, misaligned, bogus. */
	EXPECT_EQ(-EINVAL, g_set_log(g, log, LOG_BYTES - 1));
	EXPECT_EQ(-EINVAL, g_set_log(g, (char *)log + 4, LOG_BYTES));
	EXPECT_EQ(-EINVAL, g_set_log(g, NULL, LOG_BYTES));
	EXPECT_EQ(-EFAULT, g_set_log(g, (void *)0xffff800000000000ULL,
				     LOG_BYTES));
	l.reserved[1] = 1;
	EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_NVME_SET_LOG, &l));

	ASSERT_EQ(0, g_set_log(g, log, LOG_BYTES));
	ASSERT_EQ(0, g_features(g, F_SETUP | VHOST_NVME_F_LOG_ALL));
	/* Not removed while logging. */
	EXPECT_EQ(-EBUSY, g_set_log(g, NULL, 0));
	/* A memory table beyond the log: refused, the old one stays. */
	r[0] = g_region(g, 0, GUEST_SIZE / 2);
	r[1] = g_region(g, GUEST_SIZE / 2, GUEST_SIZE / 2);
	r[1].guest_phys_addr += GUEST_SIZE;
	EXPECT_EQ(-EINVAL, g_set_mem(g, 2, r));
	ASSERT_EQ(SC_OK, RW(OP_READ, 0, 8, self->buf));
	/* Another features change than logging still needs no queues. */
	EXPECT_EQ(-EBUSY, g_features(g, VHOST_NVME_F_LOG_ALL |
				     (F_SETUP & ~VHOST_NVME_F_SGL)));
	ASSERT_EQ(0, g_features(g, F_SETUP));
	ASSERT_EQ(0, g_set_log(g, NULL, 0));
	munmap(log, LOG_BYTES);
}

/*
 * A log page the device cannot write stops the CQ, as an unwritable ring
 * does: its error eventfd fires, nothing goes unlogged silently.
 */
TEST_F(io, dirty_log_fault)
{
	struct vhost_nvme_queue_state st;
	struct guest *g = &self->g;
	int cqerr = new_eventfd();
	struct pollfd p = { .fd = cqerr, .events = POLLIN };
	uint64_t *log = log_alloc();
	struct nvme_sqe sqe;

	IO_PROLOGUE();
	ASSERT_NE(NULL, log);
	ASSERT_EQ(0, g_create_cq_err(g, 2, 16, true, cqerr));
	ASSERT_EQ(0, g_create_sq(g, 2, 16, 2));
	ASSERT_EQ(0, g_set_log(g, log, LOG_BYTES));
	ASSERT_EQ(0, g_features(g, F_SETUP | VHOST_NVME_F_LOG_ALL));
	ASSERT_EQ(SC_OK, rw_q(_metadata, g, 2, OP_READ, 1, 0, 8, self->buf, 0));
	ASSERT_EQ(0, mprotect(log, LOG_BYTES, PROT_READ));
	rw_sqe(&sqe, OP_READ, 1, 0, 8);
	sqe.prp1 = self->buf;
	sq_put(g, 2, &sqe);
	sq_ring(g, 2);
	EXPECT_EQ(1, poll(&p, 1, WAIT_MS)) TH_LOG("no CQ error signal");
	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_CQ, 2, &st));
	EXPECT_NE(0U, st.flags & VHOST_NVME_QS_ERROR);
	ASSERT_EQ(0, mprotect(log, LOG_BYTES, PROT_READ | PROT_WRITE));
	ASSERT_EQ(0, g_features(g, F_SETUP));
	close(cqerr);
	munmap(log, LOG_BYTES);
}

/*
 * With shadow doorbells the device writes the doorbell buffer once (at
 * VHOST_NVME_SET_DOORBELLS) and EventIdx entries: both pages are logged.
 */
TEST_F(io, dirty_log_shadow_doorbells)
{
	struct guest *g = &self->g;
	uint64_t *log = log_alloc();
	uint64_t db = g_alloc(g, PG), ei = g_alloc(g, PG);

	IO_PROLOGUE();
	ASSERT_NE(NULL, log);
	ASSERT_EQ(0, g_set_log(g, log, LOG_BYTES));
	ASSERT_EQ(0, g_features(g, F_SETUP | VHOST_NVME_F_LOG_ALL));
	ASSERT_EQ(0, g_db_shadow(g, db, ei));
	EXPECT_TRUE(log_test(log, db));
	g->sq[1].force_kick = true;
	g->cq[1].force_kick = true;
	ASSERT_EQ(SC_OK, RW(OP_READ, 0, 8, self->buf));
	ASSERT_EQ(0, wait_u32(&g->ei[2], g->sq[1].tail, WAIT_MS));
	EXPECT_TRUE(log_test(log, ei));
	EXPECT_TRUE(log_test(log, self->buf));
	ASSERT_EQ(0, g_features(g, F_SETUP));
	munmap(log, LOG_BYTES);
}

/*
 * A queue moved to another device (live migration's destination) goes on
 * where the quiesced source left it: created again with the positions
 * VHOST_NVME_GET_QUEUE_STATE read (VHOST_NVME_SQ_F_STATE and
 * VHOST_NVME_CQ_F_STATE), it fetches the entries the source had not, and
 * posts them where the guest looks for them, with the phase it expects.
 */
TEST_F(io, queues_continue_from_state)
{
	struct vhost_nvme_qid d = { .qid = 1,
				    .flags = VHOST_NVME_DELETE_F_DISCARD };
	struct vhost_nvme_queue_state sst, cst;
	struct guest *g = &self->g;
	struct vhost_nvme_cq c;
	struct vhost_nvme_sq s;
	struct nvme_sqe sqe;
	struct nvme_cqe cqe;
	unsigned int i;

	IO_PROLOGUE();
	/* Past the first wrap of the 64-entry queues. */
	fill(HVA(self->buf), 3 * PG, 50);
	ASSERT_EQ(SC_OK, RW(OP_WRITE, 700, 24, self->buf));
	for (i = 0; i < 70; i++)
		ASSERT_EQ(SC_OK, RW(OP_READ, 700, 8, self->buf2));
	/* The source stops with three reads queued, not fetched. */
	ASSERT_EQ(0, g_quiesce(g, false));
	memset(HVA(self->buf2), 0, 3 * PG);
	for (i = 0; i < 3; i++) {
		rw_sqe(&sqe, OP_READ, 1, 700 + 8 * i, 8);
		sqe.prp1 = self->buf2 + i * PG;
		sq_put(g, 1, &sqe);
	}
	sq_ring(g, 1);
	msleep(QUIET_MS);
	EXPECT_FALSE(cq_peek(g, 1, NULL));
	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_SQ, 1, &sst));
	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_CQ, 1, &cst));
	EXPECT_EQ(71 % 64, sst.head);
	/*
	 * Its tail may be the last one read before it stopped: the doorbell
	 * gives the rest.
	 */
	EXPECT_EQ(71 % 64, cst.tail);
	EXPECT_EQ(0, cst.phase);
	/* Gone, its queued entries dropped without completions... */
	ASSERT_EQ(0, xioctl(g->fd, VHOST_NVME_DELETE_SQ, &d));
	d.flags = 0;
	ASSERT_EQ(0, xioctl(g->fd, VHOST_NVME_DELETE_CQ, &d));
	/* ... and back where they were, on the same rings and eventfds. */
	c = (struct vhost_nvme_cq){
		.qid = 1, .size = 64, .addr = g->cq[1].gpa,
		.flags = VHOST_NVME_CQ_F_IRQ_ENABLED | VHOST_NVME_CQ_F_STATE,
		.irqfd = g->cq[1].irqfd, .kickfd = g->cq[1].kickfd,
		.head = cst.head, .tail = cst.tail, .phase = cst.phase,
	};
	s = (struct vhost_nvme_sq){
		.qid = 1, .size = 64, .cqid = 1, .flags = VHOST_NVME_SQ_F_STATE,
		.kickfd = g->sq[1].kickfd, .addr = g->sq[1].gpa,
		.head = sst.head, .tail = sst.tail,
	};
	ASSERT_EQ(0, xioctl(g->fd, VHOST_NVME_CREATE_CQ, &c));
	ASSERT_EQ(0, xioctl(g->fd, VHOST_NVME_CREATE_SQ, &s));
	ASSERT_EQ(0, g_quiesce(g, true));
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(0, wait_cqe(g, 1, &cqe, WAIT_MS)) TH_LOG("entry %u", i);
		EXPECT_EQ(SC_OK, cqe.status >> 1);
		EXPECT_EQ(1, cqe.sq_id);
	}
	EXPECT_EQ(0, memcmp(HVA(self->buf), HVA(self->buf2), 3 * PG));
	ASSERT_EQ(SC_OK, RW(OP_READ, 700, 8, self->buf2));

	/* Positions outside the queue are refused. */
	c.qid = 2;
	c.addr = g_alloc(g, PG);
	c.tail = 64;
	EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_NVME_CREATE_CQ, &c));
	c.tail = 0;
	c.phase = 2;
	EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_NVME_CREATE_CQ, &c));
	s.qid = 2;
	s.addr = g_alloc(g, PG);
	s.head = 64;
	EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_NVME_CREATE_SQ, &s));
}

/* ---- owner hand-over (VHOST_NVME_RELEASE_OWNER, TAKE_OWNER) ------------ */

/*
 * Guest memory moved into a memfd at the same address, and the VMM doorbell
 * page into a shared page, so that a child process shares both (as a new
 * QEMU shares memfd RAM with the old one).  Caller has the device quiesced.
 * Returns the memfd, or -errno.
 */
static int share_guest(struct guest *g)
{
	void *p, *db;
	int mfd;

	mfd = memfd_create("vhost-nvme-handover", MFD_CLOEXEC);
	if (mfd < 0 || ftruncate(mfd, GUEST_SIZE))
		return -errno;
	p = mmap(NULL, GUEST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	db = malloc(PG);
	if (p == MAP_FAILED || !db)
		return -ENOMEM;
	memcpy(p, g->mem, GUEST_SIZE);
	munmap(p, GUEST_SIZE);
	memcpy(db, g->vmm_db, PG);
	if (mmap(g->mem, GUEST_SIZE, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, mfd, 0) == MAP_FAILED ||
	    mmap(g->vmm_db, PG, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
		return -errno;
	memcpy(g->vmm_db, db, PG);
	free(db);
	return mfd;
}

static int handover(struct guest *g, bool take, uint64_t *cookie)
{
	struct vhost_nvme_handover h = { .cookie = take ? *cookie : 0 };
	int ret;

	ret = xioctl(g->fd, take ? VHOST_NVME_TAKE_OWNER :
			    VHOST_NVME_RELEASE_OWNER, &h);
	if (!ret && !take)
		*cookie = h.cookie;
	return ret;
}

/* What the next owner needs of the queues' guest-side state */
struct handover_msg {
	struct q sq, cq;
	uint16_t next_cid;
	uint64_t cookie;
};

/* One command on SQ 1 without the harness (a child process): its status */
static int child_rw(struct guest *g, uint8_t op, uint64_t slba, uint64_t buf)
{
	struct nvme_sqe sqe;
	struct nvme_cqe cqe;

	rw_sqe(&sqe, op, 1, slba, 8);
	sqe.prp1 = buf;
	sq_put(g, 1, &sqe);
	sq_ring(g, 1);
	if (wait_cqe(g, 1, &cqe, WAIT_MS) || cqe.cid != sqe.cid)
		return -1;
	return cqe.status >> 1;
}

#define CHILD_CHECK(cond) do {						\
		if (!(cond)) {						\
			fprintf(stderr, "# hand-over child, line %d: %s\n", \
				__LINE__, #cond);			\
			return 1;					\
		}							\
	} while (0)

/*
 * The next owner: takes the device with @cookie, maps guest memory at a
 * new address (the old one unmapped), resumes, finds the three Reads the
 * old owner queued completed with @want's data, writes and reads back one
 * block at LBA 800, then releases the device to @wfd.  0, or 1 after
 * printing the check that failed.
 */
static int handover_child(struct guest *g, int mfd, uint64_t cookie,
			  uint64_t buf, const void *want, int wfd)
{
	struct handover_msg msg;
	struct nvme_cqe cqe;
	uint8_t *old = g->mem, *mem;
	uint64_t wrong = cookie ^ 1;
	int pids[MAX_WORKERS];
	unsigned int i;

	alarm(30);
	mem = mmap(NULL, GUEST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	CHILD_CHECK(mem != MAP_FAILED);
	CHILD_CHECK(handover(g, true, &wrong) == -EACCES);
	CHILD_CHECK(handover(g, true, &cookie) == 0);
	CHILD_CHECK(handover(g, true, &cookie) == -EBUSY);
	CHILD_CHECK(worker_pids_of(getpid(), pids, MAX_WORKERS) >= 1);
	/* The old owner's addresses mean nothing here. */
	g->mem = mem;
	munmap(old, GUEST_SIZE);
	g->sq[1].ring = g_hva(g, g->sq[1].gpa);
	g->cq[1].ring = g_hva(g, g->cq[1].gpa);
	CHILD_CHECK(g_db_vmm(g) == 0);
	/* Nothing of the old owner's memory is used: no table, no resume. */
	CHILD_CHECK(g_quiesce(g, true) == -EBADFD);
	CHILD_CHECK(g_mem_default(g) == 0);
	CHILD_CHECK(g_quiesce(g, true) == 0);
	for (i = 0; i < 3; i++) {
		CHILD_CHECK(wait_cqe(g, 1, &cqe, WAIT_MS) == 0);
		CHILD_CHECK((cqe.status >> 1) == SC_OK);
	}
	CHILD_CHECK(!memcmp(g_hva(g, buf + 4 * PG), want, 3 * PG));
	fill(g_hva(g, buf), PG, 77);
	CHILD_CHECK(child_rw(g, OP_WRITE, 800, buf) == SC_OK);
	memset(g_hva(g, buf + PG), 0, PG);
	CHILD_CHECK(child_rw(g, OP_READ, 800, buf + PG) == SC_OK);
	CHILD_CHECK(!memcmp(g_hva(g, buf), g_hva(g, buf + PG), PG));
	/* ... and back to the old owner. */
	CHILD_CHECK(g_quiesce(g, false) == 0);
	CHILD_CHECK(handover(g, false, &msg.cookie) == 0);
	msg.sq = g->sq[1];
	msg.cq = g->cq[1];
	msg.next_cid = g->next_cid;
	CHILD_CHECK(write(wfd, &msg, sizeof(msg)) == sizeof(msg));
	return 0;
}

/*
 * A device with live queues, commands queued and not fetched, moves to
 * another process (a new VMM with the guest's memory at other addresses)
 * without a reset, and back; only its rightful successor can take it.
 */
TEST_F(io, owner_handover)
{
	struct guest *g = &self->g;
	struct handover_msg msg;
	uint64_t cookie = 0;
	int mfd, st, pfd[2], pids[MAX_WORKERS];
	struct nvme_sqe sqe;
	uint8_t want[3 * PG];
	pid_t pid;
	unsigned int i;

	IO_PROLOGUE();
	fill(HVA(self->buf), 3 * PG, 60);
	memcpy(want, HVA(self->buf), sizeof(want));
	ASSERT_EQ(SC_OK, RW(OP_WRITE, 700, 24, self->buf));
	ASSERT_EQ(SC_OK, RW(OP_READ, 700, 8, self->buf2));
	/* Only a quiesced device, and only one that was released */
	EXPECT_EQ(-EBUSY, handover(g, false, &cookie));
	EXPECT_EQ(-EBUSY, handover(g, true, &cookie));
	ASSERT_EQ(0, g_quiesce(g, false));
	mfd = share_guest(g);
	ASSERT_LE(0, mfd) TH_LOG("sharing guest memory: %s", strerror(-mfd));
	/* Three Reads queued, not fetched: the next owner completes them. */
	memset(HVA(self->buf + 4 * PG), 0, 3 * PG);
	for (i = 0; i < 3; i++) {
		rw_sqe(&sqe, OP_READ, 1, 700 + 8 * i, 8);
		sqe.prp1 = self->buf + (4 + i) * PG;
		sq_put(g, 1, &sqe);
	}
	sq_ring(g, 1);
	ASSERT_EQ(0, handover(g, false, &cookie));
	EXPECT_TRUE(cookie != 0);
	/* Released: no owner, no worker, nothing but queries */
	EXPECT_EQ(0, wait_no_workers(getpid(), WAIT_MS));
	EXPECT_EQ(-EPERM, g_quiesce(g, true));
	EXPECT_EQ(-EBUSY, xioctl(g->fd, VHOST_SET_OWNER, NULL));
	EXPECT_EQ(0, xioctl(g->fd, VHOST_NVME_GET_INFO, &g->info));
	EXPECT_FALSE(cq_peek(g, 1, NULL));

	/* Another user, with the cookie, is not the successor. */
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(2);
		_exit(handover(g, true, &cookie) == -EPERM ? 0 : 1);
	}
	ASSERT_EQ(pid, waitpid(pid, &st, 0));
	ASSERT_TRUE(WIFEXITED(st));
	if (WEXITSTATUS(st) != 2)
		EXPECT_EQ(0, WEXITSTATUS(st)) TH_LOG("another uid took the device");

	ASSERT_EQ(0, pipe(pfd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		close(pfd[0]);
		_exit(handover_child(g, mfd, cookie, self->buf, want, pfd[1]));
	}
	close(pfd[1]);
	ASSERT_EQ(pid, waitpid(pid, &st, 0));
	ASSERT_TRUE(WIFEXITED(st));
	/* Which check failed: the child printed it. */
	ASSERT_EQ(0, WEXITSTATUS(st));
	ASSERT_EQ((ssize_t)sizeof(msg), read(pfd[0], &msg, sizeof(msg)));
	close(pfd[0]);

	/* The old owner takes it back, the queues where the child left them. */
	ASSERT_EQ(0, handover(g, true, &msg.cookie));
	g->sq[1] = msg.sq;
	g->cq[1] = msg.cq;
	g->sq[1].ring = HVA(g->sq[1].gpa);
	g->cq[1].ring = HVA(g->cq[1].gpa);
	g->next_cid = msg.next_cid;
	EXPECT_EQ(1, worker_pids(pids, MAX_WORKERS));
	ASSERT_EQ(0, g_mem_default(g));
	/* A VMM doorbell page is the owner's too: none, no resume. */
	EXPECT_EQ(-EBADFD, g_quiesce(g, true));
	ASSERT_EQ(0, g_db_vmm(g));
	ASSERT_EQ(0, g_quiesce(g, true));
	memset(HVA(self->buf2), 0, PG);
	ASSERT_EQ(SC_OK, RW(OP_READ, 800, 8, self->buf2));
	fill(HVA(self->buf), PG, 77);
	EXPECT_EQ(0, memcmp(HVA(self->buf), HVA(self->buf2), PG));
	ASSERT_EQ(SC_OK, RW(OP_READ, 700, 24, self->buf2));
	EXPECT_EQ(0, memcmp(want, HVA(self->buf2), 3 * PG));
	close(mfd);
}

/*
 * The counters behind the SMART log's Data Units Read/Written and Host
 * Read/Write Commands: successful Reads and Writes of the namespace only,
 * in bytes of its LBA size.
 */
TEST_F(io, namespace_stats)
{
	struct vhost_nvme_ns_stats st = { .nsid = 1 };
	uint64_t lbs = 1ULL << self->ns.lba_shift;
	struct guest *g = &self->g;
	struct nvme_sqe sqe;
	unsigned int i;

	IO_PROLOGUE();
	ASSERT_EQ(0, xioctl(g->fd, VHOST_NVME_GET_NS_STATS, &st));
	EXPECT_EQ(0U, st.reads + st.writes + st.bytes_read + st.bytes_written);
	for (i = 0; i < 3; i++)
		ASSERT_EQ(SC_OK, RW(OP_WRITE, 800 + 8 * i, 8, self->buf));
	for (i = 0; i < 5; i++)
		ASSERT_EQ(SC_OK, RW(OP_READ, 800, 16, self->buf2));
	/* Not counted: a failed Read, a Flush, Write Zeroes. */
	ASSERT_EQ(ERR(SC_LBA_RANGE), RW(OP_READ, self->ns.nsze, 1, self->buf2));
	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = OP_FLUSH;
	sqe.nsid = htole32(1);
	ASSERT_EQ(SC_OK, SUBMIT(&sqe));
	ASSERT_EQ(SC_OK, RW(OP_WZ, 900, 8, 0));
	ASSERT_EQ(0, xioctl(g->fd, VHOST_NVME_GET_NS_STATS, &st));
	EXPECT_EQ(3U, st.writes);
	EXPECT_EQ(3 * 8 * lbs, st.bytes_written);
	EXPECT_EQ(5U, st.reads);
	EXPECT_EQ(5 * 16 * lbs, st.bytes_read);

	st.nsid = 2;
	EXPECT_EQ(-ENOENT, xioctl(g->fd, VHOST_NVME_GET_NS_STATS, &st));
	st.nsid = 0;
	EXPECT_EQ(-ENOENT, xioctl(g->fd, VHOST_NVME_GET_NS_STATS, &st));
	st.nsid = 1;
	st.reserved[2] = 1;
	EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_NVME_GET_NS_STATS, &st));
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
	g_owner(_metadata, &g2, F_SETUP);
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
		g_owner(_metadata, &g, F_SETUP);
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

int main(int argc, char **argv)
{
	return vhost_nvme_main(argc, argv);
}
