// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-nvme selftests: behind a slow backend (fixture "slow")
 *
 * What must hold while commands sit behind a backend that takes 1 s per
 * I/O ($VHOST_NVME_SLOW, a configfs null_blk): bounce memory charged and
 * capped, Write Zeroes as the owner's I/O, no write after the queue
 * stopped, killable and asynchronous drains.  See vhost_nvme_utils.h for
 * how the tests work and run.sh for how the backend is made.
 */
#include "vhost_nvme_utils.h"

/* ---- slow backend: every I/O takes 1 s ------------------------------ */

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
	struct vhost_nvme_queue_state st, cst;
	struct guest *g = &self->g;
	unsigned int i, most = 0, early = 0, early_max = 0;
	struct nvme_sqe sqe;
	struct nvme_cqe cqe;
	long deadline;
	uint16_t tail0;

	SLOW_PROLOGUE();
	ASSERT_EQ(0, g_limits(g, &l));
	ASSERT_EQ((uint64_t)MDTS_BYTES, l.bounce_bytes);
	ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_CQ, 1, &cst));
	tail0 = cst.tail;
	for (i = 0; i < 2; i++) {
		rw_sqe(&sqe, OP_WZ, 1, 0, 65535);	/* 32 MiB - 512 */
		sqe.cid = 0;
		sq_put(g, 1, &sqe);
	}
	sq_ring(g, 1);
	/*
	 * Submitting one takes a while (null_blk copies the zero pages), and
	 * each completes 1 s after: watch the SQ until both are done.  Held
	 * by the cap, the second is fetched only once the first is posted;
	 * without it, the second can be fetched at once, and (its submission
	 * taking as long as the first's life under TCG) never be in flight
	 * together with the first: so the SQ's head is watched too.  A head
	 * past the second entry while the CQ has nothing yet, in two samples
	 * running (a fetch the cap puts back moves the head for an instant),
	 * means the cap did not hold it.
	 */
	deadline = now_ms() + 3 * WAIT_MS;
	do {
		ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_SQ, 1, &st));
		ASSERT_EQ(0, g_qstate(g, VHOST_NVME_QTYPE_CQ, 1, &cst));
		if (st.inflight > most)
			most = st.inflight;
		early = st.head == 2 && cst.tail == tail0 ? early + 1 : 0;
		if (early > early_max)
			early_max = early;
		msleep(10);
	} while ((st.head != 2 || st.inflight) && now_ms() < deadline);
	EXPECT_EQ(1U, most) TH_LOG("%u Write Zeroes in flight at once", most);
	EXPECT_GT(2U, early_max)
		TH_LOG("the second Write Zeroes was fetched before the first completed");
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
		g_owner(_metadata, &g, F_SETUP);
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

/*
 * A Read fetched before logging was switched on and finished after is
 * logged: the data lands in guest memory while migration runs.
 * VHOST_SET_FEATURES does not wait for it (it is the backend's).
 */
TEST_F(slow, dirty_log_switched_on_in_flight)
{
	struct guest *g = &self->g;
	uint64_t *log = log_alloc();
	struct nvme_cqe cqe;
	uint64_t buf;
	long t0;

	SLOW_PROLOGUE();
	ASSERT_NE(NULL, log);
	ASSERT_EQ(0, g_set_log(g, log, LOG_BYTES));
	buf = g->brk + g->gpa;	/* where slow_read_in_flight() reads to */
	slow_read_in_flight(g);
	t0 = now_ms();
	ASSERT_EQ(0, g_features(g, F_SETUP | VHOST_NVME_F_LOG_ALL));
	EXPECT_GT(500, now_ms() - t0);
	EXPECT_EQ(0U, log_total(log));
	ASSERT_EQ(0, wait_cqe(g, 1, &cqe, WAIT_MS));
	EXPECT_EQ(SC_OK, cqe.status >> 1);
	EXPECT_TRUE(log_test(log, buf));
	EXPECT_TRUE(log_test(log, g->cq[1].gpa));
	EXPECT_EQ(2U, log_total(log));
	ASSERT_EQ(0, g_features(g, F_SETUP));
	munmap(log, LOG_BYTES);
}

/*
 * An interrupted DELETE_SQ leaves the SQ being deleted; the next one
 * finishes it.  (The waits return -EINTR only on a fatal signal, so drive
 * it here with a read that completes.)
 */
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

/*
 * The owner cannot hand over a device with a command in flight, nor one
 * that logs for a migration (VHOST_NVME_RELEASE_OWNER: EBUSY); once the
 * drain is over it can, and takes it back without losing the queue.
 */
TEST_F(slow, release_owner_after_drain)
{
	struct vhost_nvme_quiesce q = { .flags = VHOST_NVME_DRAIN_F_ASYNC };
	struct vhost_nvme_handover h = { 0 };
	struct pollfd p = { .events = POLLIN };
	struct guest *g = &self->g;
	uint64_t *log = log_alloc();
	struct nvme_cqe cqe;
	uint64_t buf;

	SLOW_PROLOGUE();
	ASSERT_NE(NULL, log);
	p.fd = q.eventfd = new_eventfd();
	slow_read_in_flight(g);
	/* Quiesced, the Read still in the backend: nothing else refuses. */
	ASSERT_EQ(-EINPROGRESS, xioctl(g->fd, VHOST_NVME_QUIESCE, &q));
	EXPECT_EQ(-EBUSY, xioctl(g->fd, VHOST_NVME_RELEASE_OWNER, &h));
	EXPECT_EQ(1, poll(&p, 1, 3000)) TH_LOG("drain never signalled");
	ASSERT_EQ(0, wait_cqe(g, 1, &cqe, WAIT_MS));
	EXPECT_EQ(SC_OK, cqe.status >> 1);
	/* Drained, but logging */
	ASSERT_EQ(0, g_set_log(g, log, LOG_BYTES));
	ASSERT_EQ(0, g_features(g, F_SETUP | VHOST_NVME_F_LOG_ALL));
	EXPECT_EQ(-EBUSY, xioctl(g->fd, VHOST_NVME_RELEASE_OWNER, &h));
	ASSERT_EQ(0, g_features(g, F_SETUP));
	ASSERT_EQ(0, xioctl(g->fd, VHOST_NVME_RELEASE_OWNER, &h));
	EXPECT_EQ(-EPERM, xioctl(g->fd, VHOST_NVME_RELEASE_OWNER, &h));
	ASSERT_EQ(0, xioctl(g->fd, VHOST_NVME_TAKE_OWNER, &h));
	/* The cookie works once. */
	EXPECT_EQ(-EBUSY, xioctl(g->fd, VHOST_NVME_TAKE_OWNER, &h));
	ASSERT_EQ(0, g_mem_default(g));
	ASSERT_EQ(0, g_db_vmm(g));
	ASSERT_EQ(0, g_quiesce(g, true));
	buf = g_alloc(g, PG);
	ASSERT_EQ(SC_OK, rw_q(_metadata, g, 1, OP_READ, 1, 8, 8, buf, 0));
	close(p.fd);
	munmap(log, LOG_BYTES);
}

/*
 * VHOST_NVME_DETACH_F_NOWAIT: the namespace goes at once for new commands
 * while a Read on it is in flight, which completes as usual; the detach
 * does not wait for it (QEMU detaches under the BQL).
 */
TEST_F(slow, detach_nowait)
{
	struct vhost_nvme_nsid n = { .nsid = 1,
				     .flags = VHOST_NVME_DETACH_F_NOWAIT };
	struct guest *g = &self->g;
	struct nvme_cqe cqe;
	uint64_t buf;
	uint16_t cid;
	long t0;

	SLOW_PROLOGUE();
	buf = g_alloc(g, PG);
	cid = slow_read_in_flight(g);
	t0 = now_ms();
	ASSERT_EQ(0, xioctl(g->fd, VHOST_NVME_DETACH_NS, &n));
	EXPECT_GT(300, now_ms() - t0) TH_LOG("the detach waited for the Read");
	EXPECT_EQ(-ENOENT, xioctl(g->fd, VHOST_NVME_DETACH_NS, &n));
	/* A new command fails at once, before the Read completes. */
	EXPECT_EQ(ERR(SC_INVALID_NS),
		  rw_q(_metadata, g, 1, OP_READ, 1, 0, 8, buf, 0));
	ASSERT_EQ(0, wait_cqe(g, 1, &cqe, WAIT_MS));
	EXPECT_EQ(cid, cqe.cid);
	EXPECT_EQ(SC_OK, cqe.status >> 1);
	/* Attached again on the same backend */
	ASSERT_EQ(0, g_attach(g, 1, self->bfd, 0, 0, NULL));
	EXPECT_EQ(SC_OK, rw_q(_metadata, g, 1, OP_READ, 1, 0, 8, buf, 0));
}

int main(int argc, char **argv)
{
	return vhost_nvme_main(argc, argv);
}
