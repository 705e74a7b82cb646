// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-nvme selftests: the control plane (fixture "ctl")
 *
 * The argument checking of every ioctl: ownership, reserved fields,
 * features, memory tables, namespaces, queues, doorbells, polling, workers,
 * interrupt coalescing and limits.  Needs /dev/vhost-nvme only (plus a
 * small regular file in /tmp as a namespace backend).  See
 * vhost_nvme_utils.h for how the tests work and run.sh for how they run.
 */
#include "vhost_nvme_utils.h"

/* =====================================================================
 * Control plane
 * ===================================================================== */

/* A file descriptor number that is certainly not open right now. */
static int closed_fd(void)
{
	int fd = dup(0);

	if (fd < 0)
		return 1000;
	close(fd);
	return fd;
}

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
	g_owner(_metadata, g, F_SETUP);
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
	static struct vhost_nvme_log lg;
	struct vhost_memory *m;
	int n = 0;

	m = calloc(1, sizeof(*m) + sizeof(m->regions[0]));
	m->nregions = 1;
	m->regions[0] = g_region(g, 0, GUEST_SIZE);
	*mp = m;
	feat = F_SETUP;
	lg = (struct vhost_nvme_log){ .addr = (uintptr_t)g->mem,
				      .size = LOG_BYTES };
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
	R(VHOST_NVME_SET_LOG, &lg);
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
	ASSERT_EQ(0, g_features(&self->g, F_SETUP));
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
		if (k < 2)
			n.reserved[k] = 1;
		else
			n.flags = VHOST_NVME_DETACH_F_NOWAIT << 1;	/* not a flag */
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
		if (k < 2)
			c.reserved[k] = 1;
		else if (k == 2)
			c.reserved0[2] = 1;
		else if (k == 3)
			c.errfd = efd;	/* without VHOST_NVME_CQ_F_ERRFD */
		else
			c.worker = 1;	/* no such worker */
		EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_NVME_CREATE_CQ, &c));
	}
	c.worker = 0;
	c.flags |= 1U << 3;	/* not a flag */
	EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_NVME_CREATE_CQ, &c));
	c.flags &= ~(1U << 3);
	c.tail = 1;	/* without VHOST_NVME_CQ_F_STATE */
	EXPECT_EQ(-EINVAL, xioctl(g->fd, VHOST_NVME_CREATE_CQ, &c));
	c.tail = 0;
	c.flags |= VHOST_NVME_CQ_F_ERRFD;
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
			s.head = 1;	/* without VHOST_NVME_SQ_F_STATE */
		else if (k == 5)
			s.errfd = efd;	/* without VHOST_NVME_SQ_F_ERRFD */
		else if (k == 6)
			s.flags = 1U << 2;	/* not a flag */
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
	ASSERT_EQ(0, g_features(&self->g, F_SETUP));
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

	g_owner(_metadata, g, F_SETUP);
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

	g_owner(_metadata, g, F_SETUP & ~VHOST_NVME_F_SHADOW_DB);
	db = g_alloc(g, PG);
	ei = g_alloc(g, PG);
	EXPECT_EQ(-EOPNOTSUPP, g_db_shadow(g, db, ei));
	ASSERT_EQ(0, g_features(g, F_SETUP));
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
	ASSERT_EQ(0, g_features(g, F_SETUP));
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

/* ---- polling, workers, interrupt coalescing ------------------------ */

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
	EXPECT_EQ(0, wait_no_workers(getpid(), 1000));
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

/* ---- limits (VHOST_NVME_SET_LIMITS) ------------------------------ */

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

int main(int argc, char **argv)
{
	return vhost_nvme_main(argc, argv);
}
