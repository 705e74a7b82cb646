// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-nvme: in-kernel NVMe I/O queues for virtual machines.
 *
 * Control plane: /dev/vhost-nvme, ownership, the memory table, namespaces,
 * queues, doorbell buffers, quiesce and teardown.  The data plane is in io.c
 * (with io-cmd-bdev.c, io-cmd-file.c, mem.c and worker.c).
 * See Documentation/vhost/vhost-nvme.rst.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include <linux/file.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/uaccess.h>
#include <linux/sort.h>
#include <linux/overflow.h>
#include <linux/nospec.h>
#include <linux/blkdev.h>
#include <linux/log2.h>
#include <linux/memcontrol.h>
#include <linux/cgroup.h>
#include <linux/sizes.h>
#include <linux/random.h>
#include <linux/cred.h>
#include <linux/capability.h>

#include "vnvme.h"

static unsigned int max_io_queues = 64;
static int max_io_queues_set(const char *val, const struct kernel_param *kp)
{
	/* The shadow doorbell buffer is one page: 8 bytes per queue pair. */
	return param_set_uint_minmax(val, kp, 1, VNVME_PAGE_SIZE / 8 - 1);
}

static const struct kernel_param_ops max_io_queues_ops = {
	.set = max_io_queues_set,
	.get = param_get_uint,
};

module_param_cb(max_io_queues, &max_io_queues_ops, &max_io_queues, 0644);
MODULE_PARM_DESC(max_io_queues,
		 "Highest I/O queue identifier per device, 1-511 (default: 64)");

static unsigned int max_mem_regions = 64;
static int max_mem_regions_set(const char *val, const struct kernel_param *kp)
{
	return param_set_uint_minmax(val, kp, 1, 1024);
}

static const struct kernel_param_ops max_mem_regions_ops = {
	.set = max_mem_regions_set,
	.get = param_get_uint,
};

module_param_cb(max_mem_regions, &max_mem_regions_ops, &max_mem_regions,
		0644);
MODULE_PARM_DESC(max_mem_regions,
		 "Largest memory table per device, 1-1024 (default: 64)");

static unsigned int poll_us;
static int poll_us_set(const char *val, const struct kernel_param *kp)
{
	return param_set_uint_minmax(val, kp, 0, VNVME_MAX_POLL_US);
}

static const struct kernel_param_ops poll_us_ops = {
	.set = poll_us_set,
	.get = param_get_uint,
};

module_param_cb(poll_us, &poll_us_ops, &poll_us, 0644);
MODULE_PARM_DESC(poll_us,
		 "Default SQ polling budget in microseconds, 0-1000000 (default: 0, no polling)");

static unsigned int max_bounce_kb = 16384;
static int max_bounce_kb_set(const char *val, const struct kernel_param *kp)
{
	return param_set_uint_minmax(val, kp, VNVME_MAX_XFER / SZ_1K,
				     4 * SZ_1M);
}

static const struct kernel_param_ops max_bounce_kb_ops = {
	.set = max_bounce_kb_set,
	.get = param_get_uint,
};

module_param_cb(max_bounce_kb, &max_bounce_kb_ops, &max_bounce_kb, 0644);
MODULE_PARM_DESC(max_bounce_kb,
		 "Most KiB of bounce pages per device, 256-4194304 (default: 16384); a VMM may set less");

/* The memory table of a device that has none. */
static struct vnvme_memtable vnvme_no_mem;

static void vnvme_mem_free(struct vnvme_memtable *mem)
{
	if (mem != &vnvme_no_mem)
		kvfree(mem);
}

static void vnvme_mem_free_rcu(struct rcu_head *rcu)
{
	kvfree(container_of(rcu, struct vnvme_memtable, rcu));
}

/* The memory table, for the control plane: caller holds dev->mutex. */
static struct vnvme_memtable *vnvme_ctl_mem(struct vnvme_dev *dev)
{
	return rcu_dereference_protected(dev->mem,
					 lockdep_is_held(&dev->mutex));
}

/* The dirty log, for the control plane: caller holds dev->mutex. */
static struct vnvme_log *vnvme_ctl_log(struct vnvme_dev *dev)
{
	return rcu_dereference_protected(dev->log,
					 lockdep_is_held(&dev->mutex));
}

static void vnvme_log_free_rcu(struct rcu_head *rcu)
{
	kfree(container_of(rcu, struct vnvme_log, rcu));
}

/* ---------------------------------------------------------------------- */
/* Waiting for the workers */

/**
 * struct vnvme_gp - an SRCU grace period someone may stop waiting for
 * @rcu: queued with call_srcu()
 * @dev: the device
 * @done: the grace period ended
 * @ref: one for the waiter, one for the callback
 */
struct vnvme_gp {
	struct rcu_head rcu;
	struct vnvme_dev *dev;
	bool done;
	refcount_t ref;
};

static bool vnvme_gp_ended(struct vnvme_gp *gp)
{
	/* Pairs with the release in vnvme_gp_done() */
	return smp_load_acquire(&gp->done);
}

static void vnvme_gp_done(struct rcu_head *rcu)
{
	struct vnvme_gp *gp = container_of(rcu, struct vnvme_gp, rcu);

	/*
	 * The device is freed only after srcu_barrier(): it is still here.
	 * The waiter sees the grace period over, with what it ordered.
	 */
	smp_store_release(&gp->done, true);
	wake_up_all(&gp->dev->wq);
	if (refcount_dec_and_test(&gp->ref))
		kfree(gp);
}

/*
 * Wait for every pass that may have begun before the call to end, as @how
 * says: what it published is seen, what it replaced no longer used, once
 * this returns 0.  -EINTR or -EAGAIN if the wait ended early.
 */
static int vnvme_sync(struct vnvme_dev *dev, enum vnvme_wait how)
{
	struct vnvme_gp *gp;
	unsigned int i;
	int ret = 0;

	if (how == VNVME_WAIT_NONE) {
		/*
		 * Each worker between two passes in turn: a pass that began
		 * before the call has ended, later ones see what it published.
		 */
		for (i = 0; i < dev->nr_workers; i++) {
			if (!mutex_trylock(&dev->workers[i]->lock))
				return -EAGAIN;
			mutex_unlock(&dev->workers[i]->lock);
		}
		return 0;
	}
	gp = kmalloc(sizeof(*gp), GFP_KERNEL_ACCOUNT);
	if (!gp) {
		/* Too small to fail in practice; a wait that cannot end early */
		synchronize_srcu(&dev->srcu);
		return 0;
	}
	gp->dev = dev;
	gp->done = false;
	refcount_set(&gp->ref, 2);
	call_srcu(&dev->srcu, &gp->rcu, vnvme_gp_done);
	if (how == VNVME_WAIT_KILLABLE) {
		if (wait_event_killable(dev->wq, vnvme_gp_ended(gp)))
			ret = -EINTR;
	} else {
		wait_event_idle(dev->wq, vnvme_gp_ended(gp));
	}
	if (refcount_dec_and_test(&gp->ref))
		kfree(gp);
	return ret;
}

/**
 * struct vnvme_efd_put - an eventfd to put after an SRCU grace period
 * @rcu: queued with call_srcu()
 * @ctx: the eventfd
 */
struct vnvme_efd_put {
	struct rcu_head rcu;
	struct eventfd_ctx *ctx;
};

static void vnvme_efd_put_rcu(struct rcu_head *rcu)
{
	struct vnvme_efd_put *p = container_of(rcu, struct vnvme_efd_put, rcu);

	eventfd_ctx_put(p->ctx);
	kfree(p);
}

/* Put @ctx, which passes may still signal, once they cannot any more. */
static void vnvme_eventfd_retire(struct vnvme_dev *dev, struct eventfd_ctx *ctx)
{
	struct vnvme_efd_put *p;

	if (!ctx)
		return;
	p = kmalloc(sizeof(*p), GFP_KERNEL_ACCOUNT);
	if (!p) {
		synchronize_srcu(&dev->srcu);
		eventfd_ctx_put(ctx);
		return;
	}
	p->ctx = ctx;
	call_srcu(&dev->srcu, &p->rcu, vnvme_efd_put_rcu);
}

/*
 * Take @worker's lock, to change what its passes use: waits for a pass
 * in progress as @how says.  0, -EINTR or -EAGAIN.
 */
static int vnvme_worker_lock(struct vnvme_worker *worker, enum vnvme_wait how)
{
	switch (how) {
	case VNVME_WAIT_NONE:
		return mutex_trylock(&worker->lock) ? 0 : -EAGAIN;
	case VNVME_WAIT_KILLABLE:
		return mutex_lock_killable(&worker->lock);
	default:
		mutex_lock(&worker->lock);
		return 0;
	}
}

static bool vnvme_zeroed(const void *p, size_t len)
{
	return !memchr_inv(p, 0, len);
}

/* ---------------------------------------------------------------------- */
/* Namespaces */

/* Releases that finish draining a stuck backend after close (module-owned) */
static struct workqueue_struct *vnvme_wq;

static void vnvme_ns_destroy(struct vnvme_ns *ns);

static void vnvme_ns_free_work(struct work_struct *work)
{
	vnvme_ns_destroy(container_of(work, struct vnvme_ns, free_work));
}

/* Any context: the last command may end in a bio's completion. */
static void vnvme_ns_release(struct kref *ref)
{
	struct vnvme_ns *ns = container_of(ref, struct vnvme_ns, ref);

	if (ns->nowait)
		queue_work(vnvme_wq, &ns->free_work);
	else
		complete(&ns->released);
}

/**
 * vnvme_ns_put - drop a reference on a namespace
 * @ns: the namespace
 */
void vnvme_ns_put(struct vnvme_ns *ns)
{
	kref_put(&ns->ref, vnvme_ns_release);
}

static void vnvme_ns_destroy(struct vnvme_ns *ns)
{
	fput(ns->file);
	free_percpu(ns->stats);
	kfree(ns);
}

static void vnvme_ns_put_rcu(struct rcu_head *rcu)
{
	vnvme_ns_put(container_of(rcu, struct vnvme_ns, rcu));
}

/*
 * @ns was just taken out of the table: drop the table's reference once no
 * pass can take another (passes find it in the table under SRCU).
 */
static void vnvme_ns_retire(struct vnvme_dev *dev, struct vnvme_ns *ns)
{
	call_srcu(&dev->srcu, &ns->rcu, vnvme_ns_put_rcu);
}

/*
 * Drop the table's reference, wait for commands using @ns, free it: once
 * the workers are gone, when no pass can find it.
 */
static void vnvme_ns_free(struct vnvme_ns *ns)
{
	vnvme_ns_put(ns);
	wait_for_completion(&ns->released);
	vnvme_ns_destroy(ns);
}

/*
 * Free the namespaces whose detach was interrupted once their commands are
 * done; with @wait, wait for them.  Caller holds dev->mutex.
 */
static void vnvme_reap_detached(struct vnvme_dev *dev, bool wait)
{
	struct vnvme_ns *ns, *tmp;

	list_for_each_entry_safe(ns, tmp, &dev->detached, node) {
		if (wait)
			wait_for_completion(&ns->released);
		else if (!completion_done(&ns->released))
			continue;
		list_del(&ns->node);
		vnvme_ns_destroy(ns);
	}
}

/*
 * Start dev->helper, the thread the file operations that block run on, in
 * the owner's cgroups as the workers are.  Caller holds dev->mutex.
 */
static int vnvme_helper_start(struct vnvme_dev *dev)
{
	struct kthread_worker *helper;
	int ret;

	lockdep_assert_held(&dev->mutex);
	if (dev->helper)
		return 0;
	helper = kthread_create_worker(0, "vhost-nvme-io-%d", current->pid);
	if (IS_ERR(helper))
		return PTR_ERR(helper);
	ret = cgroup_attach_task_all(current, helper->task);
	if (ret) {
		kthread_destroy_worker(helper);
		return ret;
	}
	/* Workers read it for commands on a namespace published after this */
	WRITE_ONCE(dev->helper, helper);
	return 0;
}

static long vnvme_attach_ns(struct vnvme_dev *dev, void __user *argp)
{
	struct vhost_nvme_ns arg;
	struct vnvme_ns *ns;
	struct inode *inode;
	unsigned int lbs;
	u32 nsid;
	loff_t bytes;
	long ret;

	if (copy_from_user(&arg, argp, sizeof(arg)))
		return -EFAULT;
	if (!vnvme_zeroed(arg.reserved0, sizeof(arg.reserved0)) ||
	    !vnvme_zeroed(arg.reserved, sizeof(arg.reserved)) ||
	    (arg.flags & ~(VHOST_NVME_NS_F_READ_ONLY |
			   VHOST_NVME_NS_F_WRITE_THROUGH)))
		return -EINVAL;
	if (!arg.nsid || arg.nsid > VNVME_MAX_NSID)
		return -EINVAL;
	nsid = array_index_nospec(arg.nsid, VNVME_MAX_NSID + 1);

	ns = kzalloc(sizeof(*ns), GFP_KERNEL_ACCOUNT);
	if (!ns)
		return -ENOMEM;
	kref_init(&ns->ref);
	init_completion(&ns->released);
	ns->nsid = nsid;
	ns->stats = alloc_percpu_gfp(struct vnvme_ns_stats, GFP_KERNEL_ACCOUNT);
	if (!ns->stats) {
		ret = -ENOMEM;
		goto out_free_ns;
	}
	ns->read_only = arg.flags & VHOST_NVME_NS_F_READ_ONLY;
	ns->write_through = arg.flags & VHOST_NVME_NS_F_WRITE_THROUGH;

	ns->file = fget(arg.fd);
	if (!ns->file) {
		ret = -EBADF;
		goto out_free_ns;
	}
	/* The guest reads through this fd: it must have been opened for it. */
	if (!(ns->file->f_mode & FMODE_READ)) {
		ret = -EBADF;
		goto out_put_file;
	}
	inode = file_inode(ns->file);
	if (S_ISBLK(inode->i_mode)) {
		ns->bdev = vnvme_file_bdev(ns->file);
		lbs = bdev_logical_block_size(ns->bdev);
		bytes = bdev_nr_bytes(ns->bdev);
		if (bdev_read_only(ns->bdev))
			ns->read_only = true;
	} else if (S_ISREG(inode->i_mode)) {
		/*
		 * The worker reads and writes with ->read_iter/->write_iter,
		 * as loop does: a file without them (procfs's kcore and mem,
		 * say) cannot be a namespace, one without ->write_iter only
		 * a read-only one.
		 */
		if (!ns->file->f_op->read_iter) {
			ret = -EINVAL;
			goto out_put_file;
		}
		if (!ns->file->f_op->write_iter)
			ns->read_only = true;
		ret = vnvme_helper_start(dev);
		if (ret)
			goto out_put_file;
		lbs = SECTOR_SIZE;
		if ((ns->file->f_flags & O_DIRECT) && inode->i_sb->s_bdev)
			lbs = bdev_logical_block_size(inode->i_sb->s_bdev);
		bytes = i_size_read(inode);
	} else {
		ret = -EINVAL;
		goto out_put_file;
	}
	if (!(ns->file->f_mode & FMODE_WRITE))
		ns->read_only = true;

	if (!arg.lba_shift) {
		ns->lba_shift = ilog2(lbs);
	} else if (arg.lba_shift < SECTOR_SHIFT ||
		   arg.lba_shift > VNVME_PAGE_SHIFT ||
		   (1U << arg.lba_shift) < lbs) {
		ret = -EINVAL;
		goto out_put_file;
	} else {
		ns->lba_shift = arg.lba_shift;
	}
	ns->nsze = bytes >> ns->lba_shift;

	if (rcu_access_pointer(dev->ns[nsid])) {
		ret = -EEXIST;
		goto out_put_file;
	}
	arg.lba_shift = ns->lba_shift;
	arg.nsze = ns->nsze;
	arg.flags = (ns->read_only ? VHOST_NVME_NS_F_READ_ONLY : 0) |
		    (ns->write_through ? VHOST_NVME_NS_F_WRITE_THROUGH : 0);
	if (copy_to_user(argp, &arg, sizeof(arg))) {
		ret = -EFAULT;
		goto out_put_file;
	}
	/* Workers see it whole from their next pass on. */
	rcu_assign_pointer(dev->ns[nsid], ns);
	return 0;

out_put_file:
	fput(ns->file);
out_free_ns:
	free_percpu(ns->stats);
	kfree(ns);
	return ret;
}

static long vnvme_ns_stats(struct vnvme_dev *dev, void __user *argp)
{
	struct vhost_nvme_ns_stats arg;
	struct vnvme_ns *ns;
	u32 nsid;
	int cpu;

	if (copy_from_user(&arg, argp, sizeof(arg)))
		return -EFAULT;
	if (arg.reserved0 || !vnvme_zeroed(arg.reserved, sizeof(arg.reserved)))
		return -EINVAL;
	if (!arg.nsid || arg.nsid > VNVME_MAX_NSID)
		return -ENOENT;
	nsid = array_index_nospec(arg.nsid, VNVME_MAX_NSID + 1);
	ns = rcu_dereference_protected(dev->ns[nsid],
				       lockdep_is_held(&dev->mutex));
	if (!ns)
		return -ENOENT;
	arg.bytes_read = 0;
	arg.bytes_written = 0;
	arg.reads = 0;
	arg.writes = 0;
	for_each_possible_cpu(cpu) {
		const struct vnvme_ns_stats *st = per_cpu_ptr(ns->stats, cpu);

		arg.bytes_read += READ_ONCE(st->bytes_read);
		arg.bytes_written += READ_ONCE(st->bytes_written);
		arg.reads += READ_ONCE(st->reads);
		arg.writes += READ_ONCE(st->writes);
	}
	return copy_to_user(argp, &arg, sizeof(arg)) ? -EFAULT : 0;
}

static long vnvme_detach_ns(struct vnvme_dev *dev, void __user *argp)
{
	struct vhost_nvme_nsid arg;
	struct vnvme_ns *ns;
	u32 nsid;

	if (copy_from_user(&arg, argp, sizeof(arg)))
		return -EFAULT;
	if (!vnvme_zeroed(arg.reserved, sizeof(arg.reserved)) ||
	    (arg.flags & ~VHOST_NVME_DETACH_F_NOWAIT))
		return -EINVAL;
	if (!arg.nsid || arg.nsid > VNVME_MAX_NSID)
		return -EINVAL;
	nsid = array_index_nospec(arg.nsid, VNVME_MAX_NSID + 1);

	vnvme_reap_detached(dev, false);
	ns = rcu_dereference_protected(dev->ns[nsid],
				       lockdep_is_held(&dev->mutex));
	if (!ns)
		return -ENOENT;
	RCU_INIT_POINTER(dev->ns[nsid], NULL);
	/*
	 * The namespace is gone for the guest; its commands still hold it,
	 * and passes that found it before may still take it for theirs.  A
	 * fatal signal ends the wait: the rest is freed later.  Without
	 * waiting, the last of them frees it.
	 */
	if (arg.flags & VHOST_NVME_DETACH_F_NOWAIT) {
		INIT_WORK(&ns->free_work, vnvme_ns_free_work);
		ns->nowait = true;
		vnvme_ns_retire(dev, ns);
		return 0;
	}
	vnvme_ns_retire(dev, ns);
	if (wait_for_completion_killable(&ns->released)) {
		list_add_tail(&ns->node, &dev->detached);
		return -EINTR;
	}
	vnvme_ns_destroy(ns);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Queues */

static int vnvme_check_qid(struct vnvme_dev *dev, u16 qid)
{
	return qid && qid <= dev->max_qid ? 0 : -EINVAL;
}

static int vnvme_check_ring(u16 size, u64 addr)
{
	if (size < 2 || size > VNVME_MAX_QSIZE)
		return -EINVAL;
	if (addr & (VNVME_PAGE_SIZE - 1))
		return -EINVAL;
	return 0;
}

static void vnvme_eventfd_put(struct eventfd_ctx *ctx)
{
	if (ctx)
		eventfd_ctx_put(ctx);
}

/*
 * The eventfd @fd names if @flag is in @flags, else @fd must be 0: NULL,
 * or an ERR_PTR().
 */
static struct eventfd_ctx *vnvme_opt_eventfd(u32 flags, u32 flag, int fd)
{
	if (!(flags & flag))
		return fd ? ERR_PTR(-EINVAL) : NULL;
	return eventfd_ctx_fdget(fd);
}

static void vnvme_cq_free(struct vnvme_cq *cq)
{
	vnvme_kick_stop(&cq->kick);
	vnvme_eventfd_put(cq->irq);
	vnvme_eventfd_put(cq->err);
	kfree(cq);
}

static long vnvme_create_cq(struct vnvme_dev *dev, void __user *argp)
{
	struct vnvme_worker *worker;
	struct vhost_nvme_cq arg;
	struct vnvme_cq *cq;
	unsigned int qid;
	long ret;

	if (copy_from_user(&arg, argp, sizeof(arg)))
		return -EFAULT;
	if (!vnvme_zeroed(arg.reserved, sizeof(arg.reserved)) ||
	    !vnvme_zeroed(arg.reserved0, sizeof(arg.reserved0)) ||
	    (arg.flags & ~(VHOST_NVME_CQ_F_IRQ_ENABLED | VHOST_NVME_CQ_F_ERRFD |
			   VHOST_NVME_CQ_F_STATE)))
		return -EINVAL;
	/* Where a moved queue continues, or nothing */
	if (arg.flags & VHOST_NVME_CQ_F_STATE ?
	    arg.head >= arg.size || arg.tail >= arg.size || arg.phase > 1 :
	    arg.head || arg.tail || arg.phase)
		return -EINVAL;
	ret = vnvme_check_qid(dev, arg.qid);
	if (ret)
		return ret;
	ret = vnvme_check_ring(arg.size, arg.addr);
	if (ret)
		return ret;
	if ((arg.flags & VHOST_NVME_CQ_F_IRQ_ENABLED) && arg.irqfd < 0)
		return -EINVAL;
	qid = array_index_nospec(arg.qid, dev->max_qid + 1);

	cq = kzalloc(sizeof(*cq), GFP_KERNEL_ACCOUNT);
	if (!cq)
		return -ENOMEM;
	cq->qid = qid;
	cq->size = arg.size;
	cq->phase = 1;
	if (arg.flags & VHOST_NVME_CQ_F_STATE) {
		cq->head = arg.head;
		cq->tail = arg.tail;
		cq->phase = arg.phase;
	}
	cq->gpa = arg.addr;
	cq->ien = arg.flags & VHOST_NVME_CQ_F_IRQ_ENABLED;
	vnvme_kick_init(&cq->kick, NULL);
	if (arg.irqfd >= 0) {
		cq->irq = eventfd_ctx_fdget(arg.irqfd);
		if (IS_ERR(cq->irq)) {
			ret = PTR_ERR(cq->irq);
			cq->irq = NULL;
			goto out_free_cq;
		}
	}
	cq->err = vnvme_opt_eventfd(arg.flags, VHOST_NVME_CQ_F_ERRFD, arg.errfd);
	if (IS_ERR(cq->err)) {
		ret = PTR_ERR(cq->err);
		cq->err = NULL;
		goto out_free_cq;
	}

	if (dev->cq[qid]) {
		ret = -EEXIST;
		goto out_free_cq;
	}
	/* nr_workers only grows while there is an owner */
	if (arg.worker >= dev->nr_workers) {
		ret = -EINVAL;
		goto out_free_cq;
	}
	worker = dev->workers[array_index_nospec(arg.worker, dev->nr_workers)];
	cq->worker = worker;
	cq->kick.worker = worker;
	/* The worker points it into a newer table, if there is one, itself. */
	cq->ring = vnvme_gpa_to_uaddr(vnvme_ctl_mem(dev), cq->gpa,
				      (u64)cq->size * VNVME_CQE_SIZE);
	if (!cq->ring) {
		ret = -EFAULT;
		goto out_free_cq;
	}
	if (arg.kickfd >= 0) {
		ret = vnvme_kick_start(&cq->kick, arg.kickfd);
		if (ret)
			goto out_free_cq;
	}
	ret = vnvme_worker_lock(worker, VNVME_WAIT_KILLABLE);
	if (ret)
		goto out_free_cq;
	list_add_tail(&cq->node, &worker->cqs);
	mutex_unlock(&worker->lock);
	dev->cq[qid] = cq;
	return 0;

out_free_cq:
	vnvme_cq_free(cq);
	return ret;
}

static void vnvme_sq_free(struct vnvme_sq *sq)
{
	vnvme_kick_stop(&sq->kick);
	vnvme_eventfd_put(sq->err);
	vnvme_eventfd_put(sq->drain);
	kvfree(sq->pool);
	kvfree(sq->cmds);
	kfree(sq);
}

static int vnvme_sq_alloc_cmds(struct vnvme_sq *sq)
{
	size_t per_cmd = VNVME_MAX_BVECS * (sizeof(struct page *) +
					    sizeof(struct bio_vec) + sizeof(u64));
	unsigned int i;
	void *p;

	sq->cmds = kvcalloc(sq->size, sizeof(*sq->cmds), GFP_KERNEL_ACCOUNT);
	sq->pool = kvmalloc_array(sq->size, per_cmd, GFP_KERNEL_ACCOUNT);
	if (!sq->cmds || !sq->pool)
		return -ENOMEM;
	p = sq->pool;
	for (i = 0; i < sq->size; i++) {
		struct vnvme_cmd *cmd = &sq->cmds[i];

		cmd->sq = sq;
		cmd->bvecs = p;
		p += VNVME_MAX_BVECS * sizeof(struct bio_vec);
		cmd->pages = p;
		p += VNVME_MAX_BVECS * sizeof(struct page *);
		cmd->log = p;
		p += VNVME_MAX_BVECS * sizeof(u64);
		cmd->next_free = i + 1 < sq->size ? i + 1 : -1;
	}
	sq->free = 0;
	return 0;
}

static long vnvme_create_sq(struct vnvme_dev *dev, void __user *argp)
{
	struct vhost_nvme_sq arg;
	struct vnvme_sq *sq;
	struct vnvme_cq *cq;
	unsigned int qid, cqid;
	long ret;

	if (copy_from_user(&arg, argp, sizeof(arg)))
		return -EFAULT;
	if (arg.reserved0 ||
	    (arg.flags & ~(VHOST_NVME_SQ_F_ERRFD | VHOST_NVME_SQ_F_STATE)) ||
	    !vnvme_zeroed(arg.reserved, sizeof(arg.reserved)))
		return -EINVAL;
	/* Where a moved queue continues, or nothing */
	if (arg.flags & VHOST_NVME_SQ_F_STATE ?
	    arg.head >= arg.size || arg.tail >= arg.size :
	    arg.head || arg.tail)
		return -EINVAL;
	ret = vnvme_check_qid(dev, arg.qid);
	if (ret)
		return ret;
	ret = vnvme_check_ring(arg.size, arg.addr);
	if (ret)
		return ret;
	if (vnvme_check_qid(dev, arg.cqid))
		return -ENOENT;
	qid = array_index_nospec(arg.qid, dev->max_qid + 1);
	cqid = array_index_nospec(arg.cqid, dev->max_qid + 1);

	sq = kzalloc(sizeof(*sq), GFP_KERNEL_ACCOUNT);
	if (!sq)
		return -ENOMEM;
	sq->dev = dev;
	sq->qid = qid;
	sq->size = arg.size;
	sq->head = arg.head;
	sq->tail = arg.tail;
	sq->gpa = arg.addr;
	vnvme_kick_init(&sq->kick, NULL);
	sq->err = vnvme_opt_eventfd(arg.flags, VHOST_NVME_SQ_F_ERRFD, arg.errfd);
	if (IS_ERR(sq->err)) {
		ret = PTR_ERR(sq->err);
		sq->err = NULL;
		goto out_free_sq;
	}
	ret = vnvme_sq_alloc_cmds(sq);
	if (ret)
		goto out_free_sq;

	if (dev->sq[qid]) {
		ret = -EEXIST;
		goto out_free_sq;
	}
	cq = dev->cq[cqid];
	if (!cq) {
		ret = -ENOENT;
		goto out_free_sq;
	}
	sq->ring = vnvme_gpa_to_uaddr(vnvme_ctl_mem(dev), sq->gpa,
				      (u64)sq->size * VNVME_SQE_SIZE);
	if (!sq->ring) {
		ret = -EFAULT;
		goto out_free_sq;
	}
	/* A CQ and its SQs are served by one worker. */
	sq->worker = cq->worker;
	sq->kick.worker = cq->worker;
	sq->cq = cq;
	ret = vnvme_kick_start(&sq->kick, arg.kickfd);
	if (ret)
		goto out_free_sq;
	ret = vnvme_worker_lock(sq->worker, VNVME_WAIT_KILLABLE);
	if (ret)
		goto out_free_sq;
	list_add_tail(&sq->node, &sq->worker->sqs);
	mutex_unlock(&sq->worker->lock);
	cq->nr_sqs++;
	dev->sq[qid] = sq;
	vnvme_wake(sq->worker);
	return 0;

out_free_sq:
	vnvme_sq_free(sq);
	return ret;
}

/*
 * Stop fetching from @sq; its worker aborts the entries not fetched yet,
 * or with @discard they are dropped (also by a later delete, of what the
 * worker has not aborted yet).  Caller holds the worker's lock.
 */
static void vnvme_sq_begin_delete(struct vnvme_sq *sq, bool discard)
{
	lockdep_assert_held(&sq->worker->lock);
	if (!sq->deleting) {
		/* Read locklessly by GET_QUEUE_STATE */
		WRITE_ONCE(sq->deleting, true);
		sq->worker->abort = true;
	}
	if (discard)
		sq->abort_done = true;
}

/* Nothing of @sq, being deleted, is left for its worker to do. */
static bool vnvme_sq_idle(struct vnvme_sq *sq)
{
	return READ_ONCE(sq->abort_done) && !READ_ONCE(sq->inflight);
}

/* Drained: nothing of @sq (NULL: of the device) is in flight any more. */
static bool vnvme_drained(struct vnvme_dev *dev, struct vnvme_sq *sq)
{
	return sq ? vnvme_sq_idle(sq) : !atomic_read(&dev->inflight);
}

/* Wait for vnvme_drained() as @how says; 0, -EINTR or -EAGAIN. */
static int vnvme_drain_wait(struct vnvme_dev *dev, struct vnvme_sq *sq,
			    enum vnvme_wait how)
{
	if (vnvme_drained(dev, sq))
		return 0;
	switch (how) {
	case VNVME_WAIT_NONE:
		return -EAGAIN;
	case VNVME_WAIT_KILLABLE:
		return wait_event_killable(dev->wq, vnvme_drained(dev, sq)) ?
		       -EINTR : 0;
	default:
		wait_event_idle(dev->wq, vnvme_drained(dev, sq));
		return 0;
	}
}

/*
 * Unlink and free @sq, deleted and idle; its worker's lock is taken as @how
 * says (if that ends early @sq stays).  Caller holds dev->mutex.
 */
static int vnvme_sq_unlink(struct vnvme_dev *dev, struct vnvme_sq *sq,
			   enum vnvme_wait how)
{
	int ret;

	lockdep_assert_held(&dev->mutex);
	ret = vnvme_worker_lock(sq->worker, how);
	if (ret)
		return ret;
	list_del(&sq->node);
	mutex_unlock(&sq->worker->lock);
	dev->sq[sq->qid] = NULL;
	sq->cq->nr_sqs--;
	vnvme_sq_free(sq);
	return 0;
}

/*
 * Wait until @sq, being deleted, is idle (see enum vnvme_wait), then
 * unlink and free it.  If the wait ends early @sq stays, no longer
 * fetched, for a later delete to finish.  Caller holds dev->mutex, so
 * nobody else deletes @sq meanwhile.
 */
static int vnvme_sq_finish_delete(struct vnvme_dev *dev, struct vnvme_sq *sq,
				  enum vnvme_wait how)
{
	int ret = vnvme_drain_wait(dev, sq, how);

	if (ret)
		return ret;
	return vnvme_sq_unlink(dev, sq, how);
}

/* Delete @sq dropping its unfetched entries (reset and release). */
static int vnvme_sq_destroy(struct vnvme_dev *dev, struct vnvme_sq *sq,
			    enum vnvme_wait how)
{
	int ret = vnvme_worker_lock(sq->worker, how);

	if (ret)
		return ret;
	vnvme_sq_begin_delete(sq, true);
	mutex_unlock(&sq->worker->lock);
	return vnvme_sq_finish_delete(dev, sq, how);
}

static long vnvme_copy_qid(struct vnvme_dev *dev, void __user *argp,
			   struct vhost_nvme_qid *arg, unsigned int *qid)
{
	if (copy_from_user(arg, argp, sizeof(*arg)))
		return -EFAULT;
	if (!vnvme_zeroed(arg->reserved, sizeof(arg->reserved)))
		return -EINVAL;
	if (vnvme_check_qid(dev, arg->qid))
		return -EINVAL;
	*qid = array_index_nospec(arg->qid, dev->max_qid + 1);
	return 0;
}

static long vnvme_delete_sq(struct vnvme_dev *dev, void __user *argp)
{
	struct eventfd_ctx *efd, *old = NULL;
	struct vhost_nvme_qid arg;
	struct vnvme_sq *sq;
	unsigned int qid;
	bool idle = false;
	long ret;

	ret = vnvme_copy_qid(dev, argp, &arg, &qid);
	if (ret)
		return ret;
	if (arg.flags & ~(VHOST_NVME_DRAIN_F_ASYNC | VHOST_NVME_DELETE_F_DISCARD))
		return -EINVAL;
	efd = vnvme_opt_eventfd(arg.flags, VHOST_NVME_DRAIN_F_ASYNC,
				arg.eventfd);
	if (IS_ERR(efd))
		return PTR_ERR(efd);

	sq = dev->sq[qid];
	if (!sq) {
		vnvme_eventfd_put(efd);
		return -ENOENT;
	}
	ret = vnvme_worker_lock(sq->worker, VNVME_WAIT_KILLABLE);
	if (ret) {
		vnvme_eventfd_put(efd);
		return ret;
	}
	vnvme_sq_begin_delete(sq, arg.flags & VHOST_NVME_DELETE_F_DISCARD);
	if (efd) {
		old = sq->drain;
		sq->drain = efd;
	}
	/* Stable: the worker changes it only under its lock. */
	idle = vnvme_sq_idle(sq);
	mutex_unlock(&sq->worker->lock);
	vnvme_eventfd_put(old);
	if (idle)
		return vnvme_sq_unlink(dev, sq, VNVME_WAIT_KILLABLE);
	vnvme_wake(sq->worker);
	if (arg.flags & VHOST_NVME_DRAIN_F_ASYNC)
		return -EINPROGRESS;
	return vnvme_sq_finish_delete(dev, sq, VNVME_WAIT_KILLABLE);
}

static long vnvme_delete_cq(struct vnvme_dev *dev, void __user *argp)
{
	struct vhost_nvme_qid arg;
	struct vnvme_cq *cq;
	unsigned int qid;
	long ret;

	ret = vnvme_copy_qid(dev, argp, &arg, &qid);
	if (ret)
		return ret;
	if (arg.flags || arg.eventfd)
		return -EINVAL;
	cq = dev->cq[qid];
	if (!cq)
		return -ENOENT;
	if (cq->nr_sqs)
		return -EBUSY;
	ret = vnvme_worker_lock(cq->worker, VNVME_WAIT_KILLABLE);
	if (ret)
		return ret;
	list_del(&cq->node);
	mutex_unlock(&cq->worker->lock);
	dev->cq[qid] = NULL;
	vnvme_cq_free(cq);
	return 0;
}

static long vnvme_queue_state(struct vnvme_dev *dev, void __user *argp)
{
	struct vhost_nvme_queue_state arg;
	unsigned int qid;
	u8 type;

	if (copy_from_user(&arg, argp, sizeof(arg)))
		return -EFAULT;
	if (arg.reserved0 || arg.reserved1 || arg.reserved)
		return -EINVAL;
	if (arg.type != VHOST_NVME_QTYPE_SQ && arg.type != VHOST_NVME_QTYPE_CQ)
		return -EINVAL;
	if (vnvme_check_qid(dev, arg.qid))
		return -EINVAL;
	qid = array_index_nospec(arg.qid, dev->max_qid + 1);
	/* Every out field is written: none echoes what the caller passed. */
	type = arg.type;
	memset(&arg, 0, sizeof(arg));
	arg.qid = qid;
	arg.type = type;

	/*
	 * dev->mutex keeps the queue tables still; the worker fields are read
	 * without stopping the worker, as they change, each one whole.
	 */
	if (arg.type == VHOST_NVME_QTYPE_SQ) {
		struct vnvme_sq *sq = dev->sq[qid];

		if (!sq)
			return -ENOENT;
		arg.flags = READ_ONCE(sq->broken) ? VHOST_NVME_QS_ERROR : 0;
		if (READ_ONCE(sq->cq->full))
			arg.flags |= VHOST_NVME_QS_CQ_FULL;
		if (READ_ONCE(sq->deleting))
			arg.flags |= VHOST_NVME_QS_DELETING;
		arg.size = sq->size;
		arg.head = READ_ONCE(sq->head);
		arg.tail = READ_ONCE(sq->tail);
		arg.cqid = sq->cq->qid;
		arg.inflight = READ_ONCE(sq->inflight);
		arg.commands = READ_ONCE(sq->fetched);
		arg.errors = READ_ONCE(sq->errors);
		arg.polled = READ_ONCE(sq->polled);
		arg.aborted = READ_ONCE(sq->aborted);
		arg.bad_doorbells = READ_ONCE(sq->bad_db);
	} else {
		struct vnvme_cq *cq = dev->cq[qid];

		if (!cq)
			return -ENOENT;
		arg.flags = READ_ONCE(cq->broken) ? VHOST_NVME_QS_ERROR : 0;
		if (READ_ONCE(cq->full))
			arg.flags |= VHOST_NVME_QS_CQ_FULL;
		arg.size = cq->size;
		arg.head = READ_ONCE(cq->head);
		arg.tail = READ_ONCE(cq->tail);
		arg.phase = READ_ONCE(cq->phase);
		arg.inflight = READ_ONCE(cq->reserved);
		arg.commands = READ_ONCE(cq->posted);
		arg.bad_doorbells = READ_ONCE(cq->bad_db);
	}
	return copy_to_user(argp, &arg, sizeof(arg)) ? -EFAULT : 0;
}

/* ---------------------------------------------------------------------- */
/* Memory table and doorbells */

static int vnvme_region_sort_cmp(const void *a, const void *b)
{
	const struct vnvme_region *ra = a, *rb = b;

	if (ra->gpa < rb->gpa)
		return -1;
	return ra->gpa > rb->gpa;
}

static bool vnvme_aligned(u64 v)
{
	return !(v & (VNVME_PAGE_SIZE - 1));
}

/*
 * Check that @mem covers every live ring and doorbell buffer.  Caller
 * holds dev->mutex: the queue tables stay as they are.
 */
static int vnvme_mem_covers(struct vnvme_dev *dev,
			    const struct vnvme_memtable *mem)
{
	unsigned int qid;

	if (dev->db_mode == VHOST_NVME_DB_SHADOW &&
	    (!vnvme_gpa_to_uaddr(mem, dev->db_gpa, VNVME_PAGE_SIZE) ||
	     !vnvme_gpa_to_uaddr(mem, dev->ei_gpa, VNVME_PAGE_SIZE)))
		return -EFAULT;
	for (qid = 1; qid <= dev->max_qid; qid++) {
		struct vnvme_sq *sq = dev->sq[qid];
		struct vnvme_cq *cq = dev->cq[qid];

		if (sq && !vnvme_gpa_to_uaddr(mem, sq->gpa, (u64)sq->size *
					      VNVME_SQE_SIZE))
			return -EFAULT;
		if (cq && !vnvme_gpa_to_uaddr(mem, cq->gpa, (u64)cq->size *
					      VNVME_CQE_SIZE))
			return -EFAULT;
	}
	return 0;
}

static long vnvme_set_mem_table(struct vnvme_dev *dev, void __user *argp)
{
	struct vhost_memory_region __user *uregions;
	struct vnvme_memtable *mem, *old;
	struct vhost_memory hdr;
	unsigned int i;
	long ret;

	if (copy_from_user(&hdr, argp, sizeof(hdr)))
		return -EFAULT;
	if (hdr.padding)
		return -EINVAL;
	if (hdr.nregions > dev->max_regions)
		return -E2BIG;
	mem = kvzalloc(struct_size(mem, r, hdr.nregions), GFP_KERNEL_ACCOUNT);
	if (!mem)
		return -ENOMEM;
	mem->nr = hdr.nregions;

	uregions = argp + offsetof(struct vhost_memory, regions);
	for (i = 0; i < hdr.nregions; i++) {
		struct vhost_memory_region ur;
		struct vnvme_region *r = &mem->r[i];

		if (copy_from_user(&ur, uregions + i, sizeof(ur))) {
			ret = -EFAULT;
			goto out_free;
		}
		if (ur.flags_padding || !ur.memory_size ||
		    !vnvme_aligned(ur.guest_phys_addr) ||
		    !vnvme_aligned(ur.memory_size) ||
		    !vnvme_aligned(ur.userspace_addr) ||
		    ur.guest_phys_addr + ur.memory_size - 1 < ur.guest_phys_addr ||
		    ur.userspace_addr + ur.memory_size - 1 < ur.userspace_addr) {
			ret = -EINVAL;
			goto out_free;
		}
		if (!access_ok(u64_to_user_ptr(ur.userspace_addr),
			       ur.memory_size)) {
			ret = -EFAULT;
			goto out_free;
		}
		r->gpa = ur.guest_phys_addr;
		r->size = ur.memory_size;
		r->uaddr = ur.userspace_addr;
	}
	sort(mem->r, mem->nr, sizeof(mem->r[0]), vnvme_region_sort_cmp, NULL);
	for (i = 1; i < mem->nr; i++) {
		if (mem->r[i].gpa - mem->r[i - 1].gpa < mem->r[i - 1].size) {
			ret = -EINVAL;
			goto out_free;
		}
	}

	ret = vnvme_mem_covers(dev, mem);
	if (ret)
		goto out_free;
	/* A log grows before the table does (VHOST_NVME_SET_LOG). */
	if (vnvme_ctl_log(dev) &&
	    vnvme_log_pages_needed(mem) > vnvme_ctl_log(dev)->pages) {
		ret = -EINVAL;
		goto out_free;
	}
	/*
	 * Each worker points its rings and doorbells into the new table at
	 * the start of its next pass.  The old table goes after the passes
	 * that may use it, which this call waits for, as vhost's does: once
	 * it returns 0 the VMM may unmap what only the old table had.  A
	 * fatal signal ends the wait early, the new table in place.
	 */
	mem->gen = ++dev->mem_gen;
	old = vnvme_ctl_mem(dev);
	rcu_assign_pointer(dev->mem, mem);
	if (old != &vnvme_no_mem)
		call_srcu(&dev->srcu, &old->rcu, vnvme_mem_free_rcu);
	return vnvme_sync(dev, VNVME_WAIT_KILLABLE);

out_free:
	kvfree(mem);
	return ret;
}

/*
 * Switch @worker to the doorbells of @mode: the guest's shadow buffer at
 * @dbs starts from the current values of the worker's queues.  Caller
 * holds dev->mutex; the worker's lock is taken killably.
 */
static int vnvme_worker_set_doorbells(struct vnvme_worker *worker, u32 mode,
				      const struct vhost_nvme_doorbells *arg,
				      __le32 __user *dbs)
{
	struct vnvme_sq *sq;
	struct vnvme_cq *cq;
	int ret;

	ret = vnvme_worker_lock(worker, VNVME_WAIT_KILLABLE);
	if (ret)
		return ret;
	if (mode == VHOST_NVME_DB_SHADOW) {
		list_for_each_entry(sq, &worker->sqs, node)
			if (put_user(cpu_to_le32(sq->tail), dbs + 2 * sq->qid))
				goto out_fault;
		list_for_each_entry(cq, &worker->cqs, node)
			if (put_user(cpu_to_le32(cq->head), dbs + 2 * cq->qid + 1))
				goto out_fault;
	}
	worker->db_mode = mode;
	worker->db_gpa = arg->db_addr;
	worker->ei_gpa = arg->ei_addr;
	worker->vmm_dbs = mode == VHOST_NVME_DB_VMM ? dbs : NULL;
	/* Its next pass finds them in the memory table it uses then. */
	worker->mem_gen = VNVME_GEN_STALE;
	mutex_unlock(&worker->lock);
	return 0;

out_fault:
	mutex_unlock(&worker->lock);
	return -EFAULT;
}

/*
 * The workers switch one at a time, each between two passes: a fatal
 * signal or a buffer that faults midway (-EINTR, -EFAULT) leaves the
 * workers before it switched and the others not, for the VMM to set the
 * doorbells again.  Guests configure them before creating I/O queues,
 * when there is nothing to copy.
 */
static long vnvme_set_doorbells(struct vnvme_dev *dev, void __user *argp)
{
	struct vhost_nvme_doorbells arg;
	__le32 __user *dbs;
	unsigned int i;
	int ret;

	if (copy_from_user(&arg, argp, sizeof(arg)))
		return -EFAULT;
	if (arg.reserved0 || !vnvme_zeroed(arg.reserved, sizeof(arg.reserved)))
		return -EINVAL;

	switch (arg.mode) {
	case VHOST_NVME_DB_VMM:
		if (arg.ei_addr || !vnvme_aligned(arg.db_addr))
			return -EINVAL;
		dbs = u64_to_user_ptr(arg.db_addr);
		if (!access_ok(dbs, VNVME_PAGE_SIZE))
			return -EFAULT;
		break;
	case VHOST_NVME_DB_SHADOW:
		if (!(dev->features & VHOST_NVME_F_SHADOW_DB))
			return -EOPNOTSUPP;
		if (!vnvme_aligned(arg.db_addr) || !vnvme_aligned(arg.ei_addr))
			return -EINVAL;
		dbs = vnvme_gpa_to_uaddr(vnvme_ctl_mem(dev), arg.db_addr,
					 VNVME_PAGE_SIZE);
		if (!dbs || !vnvme_gpa_to_uaddr(vnvme_ctl_mem(dev), arg.ei_addr,
						VNVME_PAGE_SIZE))
			return -EFAULT;
		break;
	default:
		return -EINVAL;
	}
	/* Workers created from now on start with these. */
	dev->db_mode = arg.mode;
	dev->db_gpa = arg.db_addr;
	dev->ei_gpa = arg.ei_addr;
	dev->vmm_dbs = arg.mode == VHOST_NVME_DB_VMM ? dbs : NULL;
	for (i = 0; i < dev->nr_workers; i++) {
		ret = vnvme_worker_set_doorbells(dev->workers[i], arg.mode,
						 &arg, dbs);
		if (ret)
			return ret;
	}
	/* The shadow doorbells were written for the queues there are. */
	if (arg.mode == VHOST_NVME_DB_SHADOW &&
	    (dev->features & VHOST_NVME_F_LOG_ALL) &&
	    vnvme_log_write(vnvme_ctl_log(dev), arg.db_addr, VNVME_PAGE_SIZE))
		return -EFAULT;
	vnvme_wake_all(dev);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Features, quiesce */

static bool vnvme_has_queues(struct vnvme_dev *dev)
{
	unsigned int qid;

	for (qid = 1; qid <= dev->max_qid; qid++)
		if (dev->sq[qid] || dev->cq[qid])
			return true;
	return false;
}

static long vnvme_set_features(struct vnvme_dev *dev, u64 features)
{
	u64 changed = features ^ dev->features;

	if (features & ~VHOST_NVME_F_ALL)
		return -EOPNOTSUPP;
	if ((changed & ~VHOST_NVME_F_LOG_ALL) && vnvme_has_queues(dev))
		return -EBUSY;
	if (!(features & VHOST_NVME_F_SHADOW_DB) &&
	    dev->db_mode == VHOST_NVME_DB_SHADOW)
		return -EBUSY;
	if ((features & VHOST_NVME_F_LOG_ALL) && !vnvme_ctl_log(dev))
		return -EINVAL;
	WRITE_ONCE(dev->features, features);
	/*
	 * Logging on: the passes that began before may still write without
	 * logging; off: they may still log.  Either way, wait for them.
	 */
	if (changed & VHOST_NVME_F_LOG_ALL)
		return vnvme_sync(dev, VNVME_WAIT_KILLABLE);
	return 0;
}

/*
 * The log replaces the previous one at once, and the passes that may
 * still write the previous one are waited for (killably: an early end
 * leaves the new log in place, the previous one possibly still written).
 */
static long vnvme_set_log(struct vnvme_dev *dev, void __user *argp)
{
	struct vnvme_log *log = NULL, *old = vnvme_ctl_log(dev);
	struct vhost_nvme_log arg;

	if (copy_from_user(&arg, argp, sizeof(arg)))
		return -EFAULT;
	if (!vnvme_zeroed(arg.reserved, sizeof(arg.reserved)) ||
	    !IS_ALIGNED(arg.addr, sizeof(u64)) || (!arg.addr && arg.size))
		return -EINVAL;
	if (arg.addr) {
		if (arg.size > U64_MAX / BITS_PER_BYTE ||
		    arg.size * BITS_PER_BYTE <
		    vnvme_log_pages_needed(vnvme_ctl_mem(dev)))
			return -EINVAL;
		if (!access_ok(u64_to_user_ptr(arg.addr), arg.size))
			return -EFAULT;
		log = kzalloc(sizeof(*log), GFP_KERNEL_ACCOUNT);
		if (!log)
			return -ENOMEM;
		log->uaddr = arg.addr;
		log->pages = arg.size * BITS_PER_BYTE;
	} else if (dev->features & VHOST_NVME_F_LOG_ALL) {
		return -EBUSY;
	}
	rcu_assign_pointer(dev->log, log);
	if (old)
		call_srcu(&dev->srcu, &old->rcu, vnvme_log_free_rcu);
	return vnvme_sync(dev, VNVME_WAIT_KILLABLE);
}

/*
 * Stop fetching, and wait as @how says for the passes that may not have
 * seen it (they may be held up: a VMM's userfaultfd, a backend's full
 * queue).  Then: with @efd (an asynchronous QUIESCE, the eventfd is the
 * device's now) return -EINPROGRESS if commands are in flight, the worker
 * posting the last one signals @efd; else wait for them as @how says.  An
 * early end leaves the device quiesced.
 */
static int vnvme_quiesce(struct vnvme_dev *dev, enum vnvme_wait how,
			 struct eventfd_ctx *efd)
{
	struct eventfd_ctx *old = dev->quiesce_efd;
	int ret;

	WRITE_ONCE(dev->quiesce_efd, efd);
	WRITE_ONCE(dev->quiesced, true);
	vnvme_eventfd_retire(dev, old);
	ret = vnvme_sync(dev, how);
	if (ret)
		return ret;
	/* Only goes down now: no pass fetches any more. */
	if (!atomic_read(&dev->inflight))
		return 0;
	if (efd)
		return -EINPROGRESS;
	return vnvme_drain_wait(dev, NULL, how);
}

static long vnvme_quiesce_ioctl(struct vnvme_dev *dev, void __user *argp,
				bool quiesce)
{
	struct vhost_nvme_quiesce arg;
	struct eventfd_ctx *efd;

	if (copy_from_user(&arg, argp, sizeof(arg)))
		return -EFAULT;
	if (!vnvme_zeroed(arg.reserved, sizeof(arg.reserved)))
		return -EINVAL;
	if (quiesce) {
		if (arg.flags & ~VHOST_NVME_DRAIN_F_ASYNC)
			return -EINVAL;
		efd = vnvme_opt_eventfd(arg.flags, VHOST_NVME_DRAIN_F_ASYNC,
					arg.eventfd);
		if (IS_ERR(efd))
			return PTR_ERR(efd);
		return vnvme_quiesce(dev, VNVME_WAIT_KILLABLE, efd);
	}
	if (arg.flags || arg.eventfd)
		return -EINVAL;
	/* After a hand-over: what the new owner has not sent yet */
	if (vnvme_has_queues(dev) &&
	    (vnvme_ctl_mem(dev) == &vnvme_no_mem ||
	     (dev->db_mode == VHOST_NVME_DB_VMM && !dev->vmm_dbs)))
		return -EBADFD;
	WRITE_ONCE(dev->quiesced, false);
	efd = dev->quiesce_efd;
	WRITE_ONCE(dev->quiesce_efd, NULL);
	vnvme_eventfd_retire(dev, efd);
	vnvme_wake_all(dev);
	return 0;
}

static long vnvme_get_info(struct vnvme_dev *dev, void __user *argp)
{
	struct vhost_nvme_info info = {
		.abi_version = VHOST_NVME_ABI_VERSION,
		.max_qid = dev->max_qid,
		.max_qsize = VNVME_MAX_QSIZE,
		.max_nsid = VNVME_MAX_NSID,
		.mdts = VNVME_MDTS,
		.max_mem_regions = dev->max_regions,
		.max_workers = VNVME_MAX_WORKERS,
		.max_poll_us = VNVME_MAX_POLL_US,
		.max_bounce_bytes = (u64)READ_ONCE(max_bounce_kb) * SZ_1K,
	};
	u32 usize;

	if (get_user(usize, (u32 __user *)argp))
		return -EFAULT;
	if (usize < offsetofend(struct vhost_nvme_info, max_poll_us))
		return -EINVAL;
	if (usize > PAGE_SIZE)
		return -E2BIG;
	info.size = min_t(u32, usize, sizeof(info));
	if (copy_to_user(argp, &info, info.size))
		return -EFAULT;
	/* A newer caller's fields this module does not know of read as 0. */
	if (usize > sizeof(info) &&
	    clear_user(argp + sizeof(info), usize - sizeof(info)))
		return -EFAULT;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Ownership and teardown */

/*
 * The owner's address space and memory cgroup: what the workers use and
 * charge while the caller owns the device.
 */
static int vnvme_owner_get(struct vnvme_dev *dev)
{
	struct mm_struct *mm;

	lockdep_assert_held(&dev->mutex);
	mm = get_task_mm(current);
	if (!mm)
		return -EINVAL;
	dev->mm = mm;
	dev->memcg = get_mem_cgroup_from_mm(mm);
	return 0;
}

static void vnvme_owner_put(struct vnvme_dev *dev)
{
	lockdep_assert_held(&dev->mutex);
	mem_cgroup_put(dev->memcg);
	dev->memcg = NULL;
	mmput(dev->mm);
	dev->mm = NULL;
}

static long vnvme_set_owner(struct vnvme_dev *dev)
{
	struct vnvme_worker *worker;
	int ret;

	if (dev->mm || dev->released)
		return -EBUSY;
	ret = vnvme_owner_get(dev);
	if (ret)
		return ret;
	worker = vnvme_worker_create(dev);
	if (IS_ERR(worker)) {
		vnvme_owner_put(dev);
		return PTR_ERR(worker);
	}
	WRITE_ONCE(dev->poll_ns, (u64)READ_ONCE(poll_us) * NSEC_PER_USEC);
	dev->workers[0] = worker;
	/* The entry before the count: vnvme_wake_all() reads them anywhere */
	smp_store_release(&dev->nr_workers, 1);
	return 0;
}

/*
 * Hand-over, first half: the owner lets go of a quiesced device with
 * nothing in flight.  What names the owner's memory goes (the memory
 * table, the dirty log, a VMM doorbell page), the workers' threads stop;
 * the rest stays for VHOST_NVME_TAKE_OWNER.
 */
static long vnvme_release_owner(struct vnvme_dev *dev, void __user *argp)
{
	struct vhost_nvme_handover arg = {};
	struct vnvme_memtable *mem;
	struct eventfd_ctx *efd;
	struct vnvme_log *log;
	unsigned int i;
	int ret;

	lockdep_assert_held(&dev->mutex);
	if (!READ_ONCE(dev->quiesced) || (dev->features & VHOST_NVME_F_LOG_ALL))
		return -EBUSY;
	for (i = 1; i <= dev->max_qid; i++)
		if (dev->sq[i] && READ_ONCE(dev->sq[i]->deleting))
			return -EBUSY;
	/* The passes that began before the quiesce, and what they fetched */
	ret = vnvme_sync(dev, VNVME_WAIT_KILLABLE);
	if (ret)
		return ret;
	if (atomic_read(&dev->inflight))
		return -EBUSY;
	vnvme_reap_detached(dev, false);
	if (!list_empty(&dev->detached))
		return -EBUSY;
	do {
		arg.cookie = get_random_u64();
	} while (!arg.cookie);
	if (copy_to_user(argp, &arg, sizeof(arg)))
		return -EFAULT;

	for (i = 0; i < dev->nr_workers; i++)
		vnvme_worker_park(dev->workers[i]);
	dev->release_helper = !!dev->helper;
	if (dev->helper) {
		kthread_destroy_worker(dev->helper);
		dev->helper = NULL;
	}
	mem = vnvme_ctl_mem(dev);
	RCU_INIT_POINTER(dev->mem, &vnvme_no_mem);
	if (mem != &vnvme_no_mem)
		call_srcu(&dev->srcu, &mem->rcu, vnvme_mem_free_rcu);
	log = vnvme_ctl_log(dev);
	RCU_INIT_POINTER(dev->log, NULL);
	if (log)
		call_srcu(&dev->srcu, &log->rcu, vnvme_log_free_rcu);
	/* No pass runs: the workers' copies change without waiting. */
	dev->vmm_dbs = NULL;
	for (i = 0; i < dev->nr_workers; i++) {
		mutex_lock(&dev->workers[i]->lock);
		dev->workers[i]->vmm_dbs = NULL;
		dev->workers[i]->mem_gen = VNVME_GEN_STALE;
		mutex_unlock(&dev->workers[i]->lock);
	}
	efd = dev->quiesce_efd;
	WRITE_ONCE(dev->quiesce_efd, NULL);
	vnvme_eventfd_retire(dev, efd);

	dev->release_cred = get_current_cred();
	dev->release_cookie = arg.cookie;
	dev->released = true;
	vnvme_owner_put(dev);
	return 0;
}

/* Hand-over, second half: the caller becomes the owner of a released device. */
static long vnvme_take_owner(struct vnvme_dev *dev, void __user *argp)
{
	struct vhost_nvme_handover arg;
	const struct cred *cred;
	unsigned int i;
	int ret;

	lockdep_assert_held(&dev->mutex);
	if (copy_from_user(&arg, argp, sizeof(arg)))
		return -EFAULT;
	if (!vnvme_zeroed(arg.reserved, sizeof(arg.reserved)))
		return -EINVAL;
	if (!dev->released)
		return -EBUSY;
	if (arg.cookie != dev->release_cookie)
		return -EACCES;
	cred = dev->release_cred;
	if (!uid_eq(current_euid(), cred->euid) &&
	    !ns_capable(cred->user_ns, CAP_SYS_ADMIN))
		return -EPERM;
	ret = vnvme_owner_get(dev);
	if (ret)
		return ret;
	if (dev->release_helper) {
		ret = vnvme_helper_start(dev);
		if (ret)
			goto out_put;
	}
	for (i = 0; i < dev->nr_workers; i++) {
		ret = vnvme_worker_unpark(dev->workers[i]);
		if (ret)
			goto out_park;
	}
	dev->released = false;
	dev->release_cookie = 0;
	put_cred(dev->release_cred);
	dev->release_cred = NULL;
	return 0;

out_park:
	while (i--)
		vnvme_worker_park(dev->workers[i]);
	if (dev->helper) {
		kthread_destroy_worker(dev->helper);
		dev->helper = NULL;
	}
out_put:
	vnvme_owner_put(dev);
	return ret;
}

static long vnvme_new_worker(struct vnvme_dev *dev, void __user *argp)
{
	struct vhost_nvme_worker arg;
	struct vnvme_worker *worker;

	if (copy_from_user(&arg, argp, sizeof(arg)))
		return -EFAULT;
	if (arg.id || arg.reserved0 ||
	    !vnvme_zeroed(arg.reserved, sizeof(arg.reserved)))
		return -EINVAL;
	if (!(dev->features & VHOST_NVME_F_WORKERS))
		return -EOPNOTSUPP;
	if (dev->nr_workers == VNVME_MAX_WORKERS)
		return -ENOSPC;
	worker = vnvme_worker_create(dev);
	if (IS_ERR(worker))
		return PTR_ERR(worker);
	worker->id = dev->nr_workers;
	dev->workers[worker->id] = worker;
	/* The entry before the count: vnvme_wake_all() reads them anywhere */
	smp_store_release(&dev->nr_workers, worker->id + 1);
	arg.id = worker->id;
	/* The worker stays until the owner goes, like the queues it serves. */
	return copy_to_user(argp, &arg, sizeof(arg)) ? -EFAULT : 0;
}

static long vnvme_set_poll(struct vnvme_dev *dev, void __user *argp)
{
	struct vhost_nvme_poll arg;

	if (copy_from_user(&arg, argp, sizeof(arg)))
		return -EFAULT;
	if (arg.reserved0 || !vnvme_zeroed(arg.reserved, sizeof(arg.reserved)))
		return -EINVAL;
	if (arg.poll_us > VNVME_MAX_POLL_US)
		return -EINVAL;
	if (!(dev->features & VHOST_NVME_F_POLL))
		return -EOPNOTSUPP;
	WRITE_ONCE(dev->poll_ns, (u64)arg.poll_us * NSEC_PER_USEC);
	vnvme_wake_all(dev);
	return 0;
}

static long vnvme_set_irq_coalescing(struct vnvme_dev *dev, void __user *argp)
{
	struct vhost_nvme_irq_coalescing arg;
	struct vnvme_cq *cq;
	unsigned int qid;
	int ret;

	if (copy_from_user(&arg, argp, sizeof(arg)))
		return -EFAULT;
	if (arg.reserved0 || arg.reserved1 ||
	    !vnvme_zeroed(arg.reserved, sizeof(arg.reserved)))
		return -EINVAL;
	if (vnvme_check_qid(dev, arg.qid) || arg.threshold > VNVME_MAX_QSIZE ||
	    arg.time_us > VNVME_MAX_POLL_US)
		return -EINVAL;
	if (!(dev->features & VHOST_NVME_F_IRQ_COALESCING))
		return -EOPNOTSUPP;
	qid = array_index_nospec(arg.qid, dev->max_qid + 1);

	cq = dev->cq[qid];
	if (!cq)
		return -ENOENT;
	/* Waits for a pass of this CQ's worker at most, killably */
	ret = vnvme_worker_lock(cq->worker, VNVME_WAIT_KILLABLE);
	if (ret)
		return ret;
	cq->coal_thr = arg.threshold;
	cq->coal_ns = (u64)arg.time_us * NSEC_PER_USEC;
	if (cq->pending && cq->coal_ns)
		cq->first_pending = ktime_get();
	mutex_unlock(&cq->worker->lock);
	vnvme_wake(cq->worker);
	return 0;
}

/* Limits as after open(): the module's, no command limits. */
static void vnvme_limits_init(struct vnvme_dev *dev)
{
	WRITE_ONCE(dev->bounce_max, (u64)READ_ONCE(max_bounce_kb) * SZ_1K);
	WRITE_ONCE(dev->wzsl_bytes, 0);
	WRITE_ONCE(dev->dmrl, 0);
	WRITE_ONCE(dev->dmrsl, 0);
}

static long vnvme_set_limits(struct vnvme_dev *dev, void __user *argp)
{
	struct vhost_nvme_limits arg;
	u64 bounce_cap = (u64)READ_ONCE(max_bounce_kb) * SZ_1K;
	u32 usize;
	int ret;

	if (get_user(usize, (u32 __user *)argp))
		return -EFAULT;
	if (usize < offsetofend(struct vhost_nvme_limits, bounce_bytes))
		return -EINVAL;
	ret = copy_struct_from_user(&arg, sizeof(arg), argp, usize);
	if (ret)
		return ret;
	if (arg.reserved0)
		return -EINVAL;
	if (arg.bounce_bytes && (arg.bounce_bytes < VNVME_MAX_XFER ||
				 arg.bounce_bytes > bounce_cap))
		return -EINVAL;
	/* WZSL counts 4 KiB units as a power of two, like MDTS */
	if (arg.wzsl > 31 || arg.dmrl > VNVME_MAX_DSM_RANGES)
		return -EINVAL;

	/* Each takes effect for the commands fetched after it */
	if (arg.bounce_bytes)
		WRITE_ONCE(dev->bounce_max, arg.bounce_bytes);
	WRITE_ONCE(dev->wzsl_bytes,
		   arg.wzsl ? (u64)VNVME_PAGE_SIZE << arg.wzsl : 0);
	WRITE_ONCE(dev->dmrl, arg.dmrl);
	WRITE_ONCE(dev->dmrsl, arg.dmrsl);
	arg.bounce_bytes = dev->bounce_max;
	/* Commands waiting for bounce memory may fit now. */
	vnvme_wake_all(dev);

	arg.size = min_t(u32, usize, sizeof(arg));
	return copy_to_user(argp, &arg, arg.size) ? -EFAULT : 0;
}

/*
 * Stop all I/O and free everything the owner set up; the device is then as
 * after open().  The drain waits for the backend as @how says; if it ends
 * early (-EINTR, -EAGAIN) the device is quiesced, its queues partly
 * deleted, for a later reset to finish.  Caller holds dev->mutex.
 */
static int vnvme_reset(struct vnvme_dev *dev, enum vnvme_wait how)
{
	unsigned int i;
	int ret;

	lockdep_assert_held(&dev->mutex);
	if (!dev->mm && !dev->released)
		return 0;
	ret = vnvme_quiesce(dev, how, NULL);
	if (ret)
		return ret;
	for (i = 1; i <= dev->max_qid; i++) {
		if (!dev->sq[i])
			continue;
		ret = vnvme_sq_destroy(dev, dev->sq[i], how);
		if (ret)
			return ret;
	}
	vnvme_reap_detached(dev, true);
	/* The CQs go with the workers below; their kicks stop now. */
	for (i = 1; i <= dev->max_qid; i++)
		if (dev->cq[i])
			vnvme_kick_stop(&dev->cq[i]->kick);
	/* Nothing is in flight: the helper has no work left but returning. */
	if (dev->helper) {
		kthread_destroy_worker(dev->helper);
		dev->helper = NULL;
	}
	/*
	 * No kick can wake a worker any more, and once the completers that
	 * posted the last commands have left vnvme_cmd_done() (an RCU read
	 * side section), nothing else can.
	 */
	synchronize_rcu();
	for (i = 0; i < dev->nr_workers; i++) {
		vnvme_worker_destroy(dev->workers[i]);
		dev->workers[i] = NULL;
	}
	dev->nr_workers = 0;
	/* No pass runs any more: what passes read goes without waiting. */
	for (i = 1; i <= dev->max_qid; i++) {
		if (dev->cq[i]) {
			vnvme_cq_free(dev->cq[i]);
			dev->cq[i] = NULL;
		}
	}
	for (i = 1; i <= VNVME_MAX_NSID; i++) {
		struct vnvme_ns *ns = rcu_dereference_protected(dev->ns[i],
					lockdep_is_held(&dev->mutex));

		if (ns) {
			RCU_INIT_POINTER(dev->ns[i], NULL);
			vnvme_ns_free(ns);
		}
	}
	WARN_ON_ONCE(atomic_long_read(&dev->bounce_used));
	if (dev->mm)
		vnvme_owner_put(dev);
	if (dev->released) {
		put_cred(dev->release_cred);
		dev->release_cred = NULL;
		dev->release_cookie = 0;
		dev->release_helper = false;
		dev->released = false;
	}

	vnvme_mem_free(vnvme_ctl_mem(dev));
	RCU_INIT_POINTER(dev->mem, &vnvme_no_mem);
	kfree(vnvme_ctl_log(dev));
	RCU_INIT_POINTER(dev->log, NULL);
	dev->features = 0;
	dev->db_mode = 0;
	dev->db_gpa = 0;
	dev->ei_gpa = 0;
	dev->vmm_dbs = NULL;
	dev->quiesced = false;
	dev->poll_ns = 0;
	vnvme_limits_init(dev);
	return 0;
}

static int vnvme_open(struct inode *inode, struct file *f)
{
	struct vnvme_dev *dev;

	dev = kzalloc(sizeof(*dev), GFP_KERNEL_ACCOUNT);
	if (!dev)
		return -ENOMEM;
	if (init_srcu_struct(&dev->srcu)) {
		kfree(dev);
		return -ENOMEM;
	}
	mutex_init(&dev->mutex);
	init_waitqueue_head(&dev->wq);
	INIT_LIST_HEAD(&dev->detached);
	atomic_set(&dev->inflight, 0);
	dev->max_qid = READ_ONCE(max_io_queues);
	dev->max_regions = READ_ONCE(max_mem_regions);
	RCU_INIT_POINTER(dev->mem, &vnvme_no_mem);
	atomic_long_set(&dev->bounce_used, 0);
	vnvme_limits_init(dev);
	dev->sq = kcalloc(dev->max_qid + 1, sizeof(*dev->sq),
			  GFP_KERNEL_ACCOUNT);
	dev->cq = kcalloc(dev->max_qid + 1, sizeof(*dev->cq),
			  GFP_KERNEL_ACCOUNT);
	if (!dev->sq || !dev->cq)
		goto out_free;
	f->private_data = dev;
	return 0;

out_free:
	kfree(dev->cq);
	kfree(dev->sq);
	cleanup_srcu_struct(&dev->srcu);
	kfree(dev);
	return -ENOMEM;
}

/*
 * The passes of workers killed with their owner: apart from vnvme_wq, whose
 * releases wait for them (they must never wait behind those)
 */
struct workqueue_struct *vnvme_orphan_wq;

static void vnvme_free(struct vnvme_dev *dev)
{
	/* What was retired after a grace period (tables, eventfds) goes. */
	srcu_barrier(&dev->srcu);
	cleanup_srcu_struct(&dev->srcu);
	mutex_destroy(&dev->mutex);
	kfree(dev->cq);
	kfree(dev->sq);
	kfree(dev);
}

/* vnvme_wq: the rest of a release that could not wait in the closer. */
static void vnvme_release_work(struct work_struct *work)
{
	struct vnvme_dev *dev = container_of(work, struct vnvme_dev,
					     release_work);

	mutex_lock(&dev->mutex);
	vnvme_reset(dev, VNVME_WAIT_IDLE);
	mutex_unlock(&dev->mutex);
	vnvme_free(dev);
	/* vnvme_exit() flushes vnvme_wq before the module's text goes. */
	module_put(THIS_MODULE);
}

/*
 * The last reference is gone: no ioctl runs any more.  Commands in flight
 * hold guest pages and must end before the device is freed, which on a
 * stuck backend (a dm table queueing I/O, a hung NFS server) may be never.
 * A task that closes the device waits for them killably, so that close()
 * returning means the device writes no more; an exiting task (an owner
 * being killed) does not wait at all, nor does a kernel thread (the last
 * fput of a file sent over a socket runs on a shared workqueue).  If the
 * drain did not finish there, it finishes on vnvme_wq, in TASK_IDLE: the
 * owner's memory and memory cgroup stay charged until the backend lets
 * go, but nothing hangs and no hung-task report is raised for a wait only
 * the backend can end.  (A worker that is a vhost_task is a thread of the
 * owner: a killed owner finishes exiting once its workers leave the pass
 * they are in, which may wait for a request tag or a file system, as
 * vhost's workers may.)  Such a device holds a reference to the module
 * until it is freed: rmmod fails with EBUSY instead of waiting for it, and
 * the module's use count shows that it is there.
 */
static int vnvme_release(struct inode *inode, struct file *f)
{
	struct vnvme_dev *dev = f->private_data;
	int ret;

	mutex_lock(&dev->mutex);
	ret = vnvme_reset(dev, (current->flags & (PF_EXITING | PF_KTHREAD)) ?
			  VNVME_WAIT_NONE : VNVME_WAIT_KILLABLE);
	mutex_unlock(&dev->mutex);
	if (!ret) {
		vnvme_free(dev);
		return 0;
	}
	/* Until the device is gone: rmmod says EBUSY rather than waiting. */
	__module_get(THIS_MODULE);
	INIT_WORK(&dev->release_work, vnvme_release_work);
	queue_work(vnvme_wq, &dev->release_work);
	return 0;
}

static long vnvme_ioctl(struct file *f, unsigned int ioctl, unsigned long arg)
{
	struct vnvme_dev *dev = f->private_data;
	void __user *argp = (void __user *)arg;
	u64 features;
	long ret;

	/* Queries that need no owner. */
	switch (ioctl) {
	case VHOST_NVME_GET_INFO:
		return vnvme_get_info(dev, argp);
	case VHOST_GET_FEATURES:
		features = VHOST_NVME_F_ALL;
		return copy_to_user(argp, &features, sizeof(features)) ?
		       -EFAULT : 0;
	}

	mutex_lock(&dev->mutex);
	if (ioctl == VHOST_SET_OWNER) {
		ret = vnvme_set_owner(dev);
		goto out_unlock;
	}
	if (ioctl == VHOST_NVME_TAKE_OWNER) {
		ret = vnvme_take_owner(dev, argp);
		goto out_unlock;
	}
	if (!dev->mm || dev->mm != current->mm) {
		ret = -EPERM;
		goto out_unlock;
	}

	switch (ioctl) {
	case VHOST_RESET_OWNER:
		ret = vnvme_reset(dev, VNVME_WAIT_KILLABLE);
		break;
	case VHOST_SET_FEATURES:
		if (copy_from_user(&features, argp, sizeof(features)))
			ret = -EFAULT;
		else
			ret = vnvme_set_features(dev, features);
		break;
	case VHOST_SET_MEM_TABLE:
		ret = vnvme_set_mem_table(dev, argp);
		break;
	case VHOST_NVME_ATTACH_NS:
		ret = vnvme_attach_ns(dev, argp);
		break;
	case VHOST_NVME_DETACH_NS:
		ret = vnvme_detach_ns(dev, argp);
		break;
	case VHOST_NVME_CREATE_CQ:
		ret = vnvme_create_cq(dev, argp);
		break;
	case VHOST_NVME_CREATE_SQ:
		ret = vnvme_create_sq(dev, argp);
		break;
	case VHOST_NVME_DELETE_SQ:
		ret = vnvme_delete_sq(dev, argp);
		break;
	case VHOST_NVME_DELETE_CQ:
		ret = vnvme_delete_cq(dev, argp);
		break;
	case VHOST_NVME_SET_DOORBELLS:
		ret = vnvme_set_doorbells(dev, argp);
		break;
	case VHOST_NVME_GET_QUEUE_STATE:
		ret = vnvme_queue_state(dev, argp);
		break;
	case VHOST_NVME_QUIESCE:
		ret = vnvme_quiesce_ioctl(dev, argp, true);
		break;
	case VHOST_NVME_RESUME:
		ret = vnvme_quiesce_ioctl(dev, argp, false);
		break;
	case VHOST_NVME_SET_POLL:
		ret = vnvme_set_poll(dev, argp);
		break;
	case VHOST_NVME_NEW_WORKER:
		ret = vnvme_new_worker(dev, argp);
		break;
	case VHOST_NVME_SET_IRQ_COALESCING:
		ret = vnvme_set_irq_coalescing(dev, argp);
		break;
	case VHOST_NVME_SET_LIMITS:
		ret = vnvme_set_limits(dev, argp);
		break;
	case VHOST_NVME_SET_LOG:
		ret = vnvme_set_log(dev, argp);
		break;
	case VHOST_NVME_GET_NS_STATS:
		ret = vnvme_ns_stats(dev, argp);
		break;
	case VHOST_NVME_RELEASE_OWNER:
		ret = vnvme_release_owner(dev, argp);
		break;
	default:
		ret = -ENOTTY;
		break;
	}
out_unlock:
	mutex_unlock(&dev->mutex);
	return ret;
}

static const struct file_operations vnvme_fops = {
	.owner		= THIS_MODULE,
	.open		= vnvme_open,
	.release	= vnvme_release,
	.unlocked_ioctl	= vnvme_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.llseek		= noop_llseek,
};

static struct miscdevice vnvme_misc = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "vhost-nvme",
	.fops	= &vnvme_fops,
};

static int __init vnvme_init(void)
{
	BUILD_BUG_ON(sizeof(struct vhost_nvme_info) != 48);
	BUILD_BUG_ON(sizeof(struct vhost_nvme_ns) != 56);
	BUILD_BUG_ON(sizeof(struct vhost_nvme_nsid) != 16);
	BUILD_BUG_ON(sizeof(struct vhost_nvme_cq) != 56);
	BUILD_BUG_ON(sizeof(struct vhost_nvme_sq) != 56);
	BUILD_BUG_ON(sizeof(struct vhost_nvme_qid) != 16);
	BUILD_BUG_ON(sizeof(struct vhost_nvme_doorbells) != 56);
	BUILD_BUG_ON(sizeof(struct vhost_nvme_queue_state) != 72);
	BUILD_BUG_ON(sizeof(struct vhost_nvme_quiesce) != 16);
	BUILD_BUG_ON(sizeof(struct vhost_nvme_poll) != 32);
	BUILD_BUG_ON(sizeof(struct vhost_nvme_worker) != 32);
	BUILD_BUG_ON(sizeof(struct vhost_nvme_irq_coalescing) != 32);
	BUILD_BUG_ON(sizeof(struct vhost_nvme_limits) != 32);
	BUILD_BUG_ON(sizeof(struct vhost_nvme_log) != 32);
	BUILD_BUG_ON(sizeof(struct vhost_nvme_ns_stats) != 64);
	BUILD_BUG_ON(sizeof(struct vhost_nvme_handover) != 32);
	BUILD_BUG_ON(VNVME_MAX_XFER / VNVME_PAGE_SIZE + 1 >= VNVME_LOG_RUN_MAX);
	BUILD_BUG_ON(sizeof(struct nvme_command) != VNVME_SQE_SIZE);
	BUILD_BUG_ON(sizeof(struct nvme_completion) != VNVME_CQE_SIZE);
	int ret;

	vnvme_wq = alloc_workqueue("vhost-nvme-release", WQ_UNBOUND, 0);
	if (!vnvme_wq)
		return -ENOMEM;
	vnvme_orphan_wq = alloc_workqueue("vhost-nvme-orphan", WQ_UNBOUND, 0);
	if (!vnvme_orphan_wq) {
		ret = -ENOMEM;
		goto out_wq;
	}
	ret = misc_register(&vnvme_misc);
	if (ret)
		goto out_orphan_wq;
	return 0;

out_orphan_wq:
	destroy_workqueue(vnvme_orphan_wq);
out_wq:
	destroy_workqueue(vnvme_wq);
	return ret;
}

static void __exit vnvme_exit(void)
{
	misc_deregister(&vnvme_misc);
	/*
	 * No release is draining (each holds the module); this waits for
	 * the last one to return from vnvme_release_work().
	 */
	destroy_workqueue(vnvme_wq);
	/* Destroyed workers left no orphan pass behind. */
	destroy_workqueue(vnvme_orphan_wq);
}

module_init(vnvme_init);
module_exit(vnvme_exit);

MODULE_DESCRIPTION("vhost-nvme: in-kernel NVMe I/O queues for virtual machines");
MODULE_LICENSE("GPL");
