// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-nvme selftests with backends of their own (plain TEST()s, the
 * harness's "global" fixture)
 *
 * File namespaces on a freezable ext4 ($VHOST_NVME_EXT4_DIR) and on a
 * tmpfs that fills up, a device-mapper device that holds I/O forever
 * ($VHOST_NVME_STUCK over $VHOST_NVME_STUCK_LOWER), and a pass the VMM
 * holds up with userfaultfd (on $VHOST_NVME_NULLB).  See
 * vhost_nvme_utils.h for how the tests work and run.sh for how the
 * backends are made.
 */
#include <sys/fanotify.h>

#include "vhost_nvme_utils.h"

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
/* ---- a backend that never answers ------------------------------------ */

/* Run "dmsetup ARGS" quietly; true if it succeeded. */
static bool dmsetup(const char *args)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "dmsetup --noudevsync %s >/dev/null 2>&1", args);
	return system(cmd) == 0;
}

/* How many holders device-mapper device @name has open, or -1 */
static int dm_open_count(const char *name)
{
	char cmd[256];
	int n = -1;
	FILE *p;

	snprintf(cmd, sizeof(cmd),
		 "dmsetup info -c --noheadings -o open %s 2>/dev/null", name);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	if (fscanf(p, "%d", &n) != 1)
		n = -1;
	pclose(p);
	return n;
}

/* The module's use count (open devices and releases draining), or -1 */
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

/* Answer the next fanotify permission event on @fan with @response. */
static int fan_answer(int fan, uint32_t response, long ms)
{
	struct pollfd p = { .fd = fan, .events = POLLIN };
	struct fanotify_event_metadata ev;
	struct fanotify_response r;

	if (poll(&p, 1, ms) != 1)
		return -ETIMEDOUT;
	if (read(fan, &ev, sizeof(ev)) < (ssize_t)sizeof(ev))
		return -EIO;
	r.fd = ev.fd;
	r.response = response;
	if (write(fan, &r, sizeof(r)) != sizeof(r))
		return -errno;
	if (ev.fd >= 0)
		close(ev.fd);
	return ev.mask & FAN_ACCESS_PERM ? 0 : -EINVAL;
}

/*
 * The file a namespace reads says no: a fanotify listener (an
 * anti-malware scanner, say) denies the read in rw_verify_area().  The
 * guest gets Access Denied (SCT 2h, SC 86h, DNR); the next read, allowed,
 * goes through.  (The test never reads the file itself once it is marked:
 * it would have to answer its own events.)
 */
TEST(file_access_denied)
{
	char path[] = "/tmp/vhost-nvme-fan-XXXXXX";
	struct nvme_sqe sqe;
	struct nvme_cqe cqe;
	struct guest g;
	int fd, fan;
	uint64_t b;

	fd = mkstemp(path);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ftruncate(fd, 1 << 20));
	close(fd);
	fan = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC, O_RDONLY);
	if (fan < 0) {
		unlink(path);
		SKIP(return, "fanotify_init: %s", strerror(errno));
	}
	ASSERT_EQ(0, fanotify_mark(fan, FAN_MARK_ADD, FAN_ACCESS_PERM,
				   AT_FDCWD, path)) TH_LOG("fanotify_mark: %s",
							   strerror(errno));
	/*
	 * Opened after the mark: from 6.14 (and 6.12.y) a file opened while
	 * no listener wants permission events never raises them.
	 */
	fd = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	io_guest(_metadata, &g, fd, NULL);
	b = g_alloc(&g, PG);
	rw_sqe(&sqe, OP_READ, 1, 0, 8);
	sqe.prp1 = b;
	sqe.cid = 0;
	sq_put(&g, 1, &sqe);
	sq_ring(&g, 1);
	EXPECT_EQ(0, fan_answer(fan, FAN_DENY, WAIT_MS));
	ASSERT_EQ(0, wait_cqe(&g, 1, &cqe, WAIT_MS));
	EXPECT_EQ(ERR(SC_ACCESS_DENIED), cqe.status >> 1);

	sq_put(&g, 1, &sqe);
	sq_ring(&g, 1);
	EXPECT_EQ(0, fan_answer(fan, FAN_ALLOW, WAIT_MS));
	ASSERT_EQ(0, wait_cqe(&g, 1, &cqe, WAIT_MS));
	EXPECT_EQ(SC_OK, cqe.status >> 1);
	close(fan);
	g_fini(&g);
	close(fd);
	unlink(path);
}

/* The Tgid of task @tid (a thread's process), or -1 */
static int task_tgid(int tid)
{
	char path[64], line[128];
	int tgid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", tid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Tgid: %d", &tgid) == 1)
			break;
	fclose(f);
	return tgid;
}

/*
 * Where a worker lives.  On kernels with vhost_task (6.11+) each worker is
 * a thread of the owner (its thread group: RLIMIT_NPROC, signals, cgroups)
 * and follows it into another cgroup.  Before, it is a kthread that joins
 * the owner's cgroups when it is created and stays in them.
 */
TEST(worker_follows_owner)
{
	struct vhost_nvme_worker w = { 0 };
	char a[128], b[160], procs[200], pidstr[16], want[300], got[300];
	int pids[MAX_WORKERS], n, i;
	bool threads = workers_are_threads();
	struct guest g;

	if (!cg_enter(a, sizeof(a)))
		SKIP(return, "no cgroup v2");
	snprintf(b, sizeof(b), "%s-moved", a);
	ASSERT_TRUE(!mkdir(b, 0755) || errno == EEXIST);
	g_open(_metadata, &g);
	g_owner(_metadata, &g, VHOST_NVME_F_WORKERS);
	ASSERT_EQ(0, xioctl(g.fd, VHOST_NVME_NEW_WORKER, &w));
	n = worker_pids(pids, MAX_WORKERS);
	ASSERT_EQ(2, n);
	task_cgroup(getpid(), want, sizeof(want));
	for (i = 0; i < n; i++) {
		EXPECT_EQ(threads ? getpid() : pids[i], task_tgid(pids[i]))
			TH_LOG("worker %d is %s thread of the owner", i,
			       threads ? "not a" : "a");
		task_cgroup(pids[i], got, sizeof(got));
		EXPECT_STREQ(want, got);
	}

	/* The owner moves: its threads with it, a kthread stays. */
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", b);
	snprintf(pidstr, sizeof(pidstr), "%d", getpid());
	ASSERT_TRUE(put_str(procs, pidstr));
	if (threads)
		task_cgroup(getpid(), want, sizeof(want));
	for (i = 0; i < n; i++) {
		task_cgroup(pids[i], got, sizeof(got));
		EXPECT_STREQ(want, got)
			TH_LOG("worker %d: %s after the owner moved", i, got);
	}
	TH_LOG("workers are %s", threads ? "vhost_tasks of the owner" : "kthreads");
	g_fini(&g);
	cg_leave(b);
	cg_leave(a);
}

/*
 * The backend holds every I/O forever (a device-mapper device suspended
 * with --noflush queues its bios until it is resumed), and later fails it
 * (an error table).  An owner killed with commands in flight there exits
 * at once, and so does one killed in the killable wait of a close(): the
 * rest of the release waits for the backend on the module's workqueue,
 * keeping the backend open and the module in use until it lets go; then
 * the device goes.  (With
 * vhost_task workers the threads die with the owner and the module's
 * workqueue runs their passes; kthread workers stay until the end.)
 */
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
		int pfd[2], status, open_count, refcnt = module_refcnt();
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
		/* The device holds the backend while the drain waits for it. */
		open_count = dm_open_count(name);
		EXPECT_EQ(1, open_count)
			TH_LOG("round %d: the drain did not wait (%d open)", round,
			       open_count);
		EXPECT_EQ(refcnt + 1, module_refcnt())
			TH_LOG("round %d: a draining device holds no module reference",
			       round);
		/* The backend fails what it held: the release ends. */
		ASSERT_TRUE(dm_retable(name, 32768, "error"));
		deadline = now_ms() + WAIT_MS;
		while ((dm_open_count(name) > 0 || module_refcnt() != refcnt) &&
		       now_ms() < deadline)
			msleep(10);
		EXPECT_EQ(0, dm_open_count(name))
			TH_LOG("round %d: the device outlived its backend", round);
		EXPECT_EQ(0, wait_no_workers(pid, 1000));
		EXPECT_EQ(refcnt, module_refcnt());
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

int main(int argc, char **argv)
{
	return vhost_nvme_main(argc, argv);
}
