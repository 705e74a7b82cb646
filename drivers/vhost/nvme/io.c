// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-nvme data plane: the worker thread, command fetch and decode,
 * zero-copy submission to the backend, and completion posting.
 */
#include <linux/kernel.h>
#include <linux/kthread.h>
#include <linux/sched/mm.h>
#include <linux/mm.h>
#include <linux/uaccess.h>
#include <linux/blkdev.h>
#include <linux/falloc.h>
#include <linux/file.h>
#include <linux/uio.h>
#include <linux/bsearch.h>
#include <linux/cgroup.h>
#include <linux/nospec.h>
#include <linux/memcontrol.h>

#include "vnvme.h"
#include "queue.h"

/* Commands fetched from one SQ before moving to the next. */
#define VNVME_SQ_BURST		32
/* Commands fetched in one pass before the worker yields. */
#define VNVME_PASS_WEIGHT	256

#define vnvme_guest_err(fmt, ...) pr_debug_ratelimited(fmt, ##__VA_ARGS__)

/* ---------------------------------------------------------------------- */
/* Memory table */

static int vnvme_region_cmp(const void *key, const void *elt)
{
	u64 gpa = *(const u64 *)key;
	const struct vnvme_region *r = elt;

	if (gpa < r->gpa)
		return -1;
	if (gpa - r->gpa >= r->size)
		return 1;
	return 0;
}

static const struct vnvme_region *
vnvme_find_region(const struct vnvme_memtable *mem, u64 gpa)
{
	return bsearch(&gpa, mem->r, mem->nr, sizeof(mem->r[0]),
		       vnvme_region_cmp);
}

/**
 * vnvme_gpa_to_uaddr - translate a guest range inside one region
 * @mem: memory table
 * @gpa: guest address
 * @len: length, not zero
 *
 * Return: the address in the owner's address space, or NULL if
 * [@gpa, @gpa + @len) is not inside one region.
 */
void __user *vnvme_gpa_to_uaddr(const struct vnvme_memtable *mem, u64 gpa,
				u64 len)
{
	const struct vnvme_region *r = vnvme_find_region(mem, gpa);

	if (!r || len > r->size - (gpa - r->gpa))
		return NULL;
	return u64_to_user_ptr(r->uaddr + (gpa - r->gpa));
}

/* ---------------------------------------------------------------------- */
/* Data mapping: pin guest pages into the command's bvecs */

static u16 vnvme_map_flush_run(struct vnvme_map *m)
{
	struct vnvme_cmd *cmd = m->cmd;
	u64 start = m->run_uaddr & PAGE_MASK;
	u64 end = m->run_uaddr + m->run_len;
	unsigned int npages = DIV_ROUND_UP(end - start, PAGE_SIZE);
	unsigned int off = offset_in_page(m->run_uaddr);
	u32 left = m->run_len;
	struct page **pages;
	unsigned int i;
	int ret;

	if (!m->run_len)
		return 0;
	m->run_len = 0;
	if (cmd->nr_bvecs + npages > VNVME_MAX_BVECS)
		return NVME_SC_SGL_INVALID_COUNT | NVME_SC_DNR;

	pages = cmd->pages + cmd->nr_pages;
	ret = pin_user_pages_fast(start, npages, m->write ? FOLL_WRITE : 0,
				  pages);
	if (ret < 0)
		ret = 0;
	cmd->nr_pages += ret;
	if (ret < npages) {
		vnvme_guest_err("vhost-nvme: cannot pin guest memory\n");
		return NVME_SC_DATA_XFER_ERROR | NVME_SC_DNR;
	}
	for (i = 0; i < npages; i++) {
		struct bio_vec *bv = &cmd->bvecs[cmd->nr_bvecs++];
		u32 chunk = min_t(u32, left, PAGE_SIZE - off);

		bv->bv_page = pages[i];
		bv->bv_offset = off;
		bv->bv_len = chunk;
		left -= chunk;
		off = 0;
	}
	return 0;
}

/**
 * vnvme_map_add - add a guest data range to the command being mapped
 * @m: mapping state
 * @gpa: guest address
 * @len: bytes, not zero
 *
 * Ranges contiguous in the owner's address space are merged and pinned
 * together.  In copy mode the data is copied into @m->copy instead.
 *
 * Return: 0 or an NVMe status.
 */
u16 vnvme_map_add(struct vnvme_map *m, u64 gpa, u32 len)
{
	const struct vnvme_memtable *mem = m->dev->mem;

	/* A range that wraps past the top of the address space is bogus. */
	if (gpa + len - 1 < gpa)
		return NVME_SC_DATA_XFER_ERROR | NVME_SC_DNR;
	while (len) {
		const struct vnvme_region *r = vnvme_find_region(mem, gpa);
		u64 uaddr;
		u32 chunk;
		u16 status;

		if (!r) {
			vnvme_guest_err("vhost-nvme: data at %#llx not in memory table\n",
					gpa);
			return NVME_SC_DATA_XFER_ERROR | NVME_SC_DNR;
		}
		chunk = min_t(u64, len, r->size - (gpa - r->gpa));
		uaddr = r->uaddr + (gpa - r->gpa);

		if (m->copy) {
			if (copy_from_user(m->copy + m->copied,
					   u64_to_user_ptr(uaddr), chunk))
				return NVME_SC_DATA_XFER_ERROR | NVME_SC_DNR;
			m->copied += chunk;
		} else if (m->run_len && m->run_uaddr + m->run_len == uaddr) {
			m->run_len += chunk;
		} else {
			status = vnvme_map_flush_run(m);
			if (status)
				return status;
			m->run_uaddr = uaddr;
			m->run_len = chunk;
		}
		m->len += chunk;
		gpa += chunk;
		len -= chunk;
	}
	return 0;
}

/**
 * vnvme_map_read - read a PRP list page or SGL segment from the guest
 * @m: mapping state
 * @gpa: guest address
 * @buf: destination
 * @len: bytes, not zero, at most a page
 *
 * Return: 0 or an NVMe status.
 */
u16 vnvme_map_read(struct vnvme_map *m, u64 gpa, void *buf, u32 len)
{
	void __user *p = vnvme_gpa_to_uaddr(m->dev->mem, gpa, len);

	if (!p || copy_from_user(buf, p, len)) {
		vnvme_guest_err("vhost-nvme: list at %#llx not readable\n", gpa);
		return NVME_SC_DATA_XFER_ERROR | NVME_SC_DNR;
	}
	return 0;
}

/*
 * Bounce buffers, the slow path for data pointers the backend cannot take
 * as they are: a block device needs each segment aligned to its DMA
 * alignment and a multiple of its logical block size (so does direct I/O
 * on a file), while NVMe allows any dword-aligned PRP offset or SGL block.
 * Page-aligned guest buffers, what guests use, never bounce.
 */
static bool vnvme_needs_bounce(struct vnvme_cmd *cmd)
{
	struct vnvme_ns *ns = cmd->ns;
	struct block_device *bdev = ns->bdev;
	unsigned int addr_mask, len_mask, i;

	if (!bdev) {
		if (!(ns->file->f_flags & O_DIRECT))
			return false;
		bdev = file_inode(ns->file)->i_sb->s_bdev;
		if (!bdev)
			return false;
	}
	addr_mask = bdev_dma_alignment(bdev);
	len_mask = bdev_logical_block_size(bdev) - 1;
	for (i = 0; i < cmd->nr_bvecs; i++)
		if ((cmd->bvecs[i].bv_offset & addr_mask) ||
		    (cmd->bvecs[i].bv_len & len_mask))
			return true;
	return false;
}

/* Copy between the guest's pinned segments and the bounce pages. */
static bool vnvme_bounce_copy(struct vnvme_cmd *cmd, bool to_guest)
{
	struct vnvme_bounce *b = cmd->bounce;
	struct iov_iter iter;
	unsigned int i;

	iov_iter_bvec(&iter, to_guest ? ITER_DEST : ITER_SOURCE, cmd->bvecs,
		      cmd->nr_bvecs, b->len);
	for (i = 0; i < b->nr; i++) {
		struct bio_vec *bv = &b->bv[i];
		size_t done;

		if (to_guest)
			done = copy_page_to_iter(bv->bv_page, 0, bv->bv_len,
						 &iter);
		else
			done = copy_page_from_iter(bv->bv_page, 0, bv->bv_len,
						   &iter);
		if (done != bv->bv_len)
			return false;
	}
	return true;
}

/* What a bounce of @nr pages counts against dev->bounce_max */
static long vnvme_bounce_cost(unsigned int nr)
{
	return (long)nr * PAGE_SIZE;
}

/*
 * Worker: count @cost bytes of copies a command holds (bounce pages, DSM
 * ranges for the helper) against dev->bounce_max.  Past the cap the
 * command waits in its SQ (VNVME_STATUS_RETRY); a device with nothing
 * charged always gets it (the cap is at least MDTS).
 */
static u16 vnvme_charge(struct vnvme_dev *dev, struct vnvme_cmd *cmd,
			long cost)
{
	if (atomic_long_add_return(cost, &dev->bounce_used) > dev->bounce_max &&
	    atomic_long_read(&dev->bounce_used) != cost) {
		atomic_long_sub(cost, &dev->bounce_used);
		WRITE_ONCE(dev->bounce_wait, true);
		/* Freed meanwhile? Then nobody would wake us: retry at once. */
		if (!atomic_long_read(&dev->bounce_used))
			vnvme_wake(cmd->sq->worker);
		return VNVME_STATUS_RETRY;
	}
	return 0;
}

/* Worker: undo vnvme_charge(). */
static void vnvme_uncharge(struct vnvme_dev *dev, long cost)
{
	atomic_long_sub(cost, &dev->bounce_used);
	/* Commands left in their SQs for lack of bounce memory can go on. */
	if (READ_ONCE(dev->bounce_wait)) {
		WRITE_ONCE(dev->bounce_wait, false);
		vnvme_wake_all(dev);
	}
}

static void vnvme_bounce_free(struct vnvme_cmd *cmd)
{
	struct vnvme_bounce *b = cmd->bounce;
	long cost = vnvme_bounce_cost(DIV_ROUND_UP(b->len, PAGE_SIZE));
	unsigned int i;

	for (i = 0; i < b->nr; i++)
		__free_page(b->bv[i].bv_page);
	kfree(b);
	cmd->bounce = NULL;
	vnvme_uncharge(cmd->sq->dev, cost);
}

/*
 * Bounce pages for @len bytes, charged to the owner's memory cgroup (the
 * worker runs with it active) and counted against dev->bounce_max.
 */
static u16 vnvme_bounce_alloc(struct vnvme_dev *dev, struct vnvme_cmd *cmd,
			      u32 len, bool write)
{
	unsigned int nr = DIV_ROUND_UP(len, PAGE_SIZE);
	long cost = vnvme_bounce_cost(nr);
	struct vnvme_bounce *b;
	u32 left = len;
	u16 status;

	status = vnvme_charge(dev, cmd, cost);
	if (status)
		return status;
	b = kzalloc(struct_size(b, bv, nr), GFP_KERNEL_ACCOUNT);
	if (!b) {
		vnvme_uncharge(dev, cost);
		return NVME_SC_INTERNAL;
	}
	cmd->bounce = b;
	b->len = len;
	for (b->nr = 0; b->nr < nr; b->nr++) {
		struct page *page = alloc_page(GFP_KERNEL_ACCOUNT);

		if (!page)
			goto out_free;
		b->bv[b->nr].bv_page = page;
		b->bv[b->nr].bv_offset = 0;
		b->bv[b->nr].bv_len = min_t(u32, left, PAGE_SIZE);
		left -= b->bv[b->nr].bv_len;
	}
	if (write && !vnvme_bounce_copy(cmd, false))
		goto out_free;
	return 0;

out_free:
	vnvme_bounce_free(cmd);
	return NVME_SC_INTERNAL;
}

static void vnvme_release_data(struct vnvme_cmd *cmd)
{
	if (cmd->ranges) {
		vnvme_uncharge(cmd->sq->dev, VNVME_PAGE_SIZE);
		kfree(cmd->ranges);
		cmd->ranges = NULL;
	}
	if (cmd->bounce) {
		/* A failed copy back leaves the guest buffer unchanged. */
		if ((cmd->flags & VNVME_CMD_DIRTY) && !cmd->status &&
		    !vnvme_bounce_copy(cmd, true))
			cmd->status = NVME_SC_DATA_XFER_ERROR | NVME_SC_DNR;
		vnvme_bounce_free(cmd);
	}
	if (cmd->nr_pages) {
		if (cmd->flags & VNVME_CMD_DIRTY)
			unpin_user_pages_dirty_lock(cmd->pages, cmd->nr_pages,
						    true);
		else
			unpin_user_pages(cmd->pages, cmd->nr_pages);
	}
	cmd->nr_pages = 0;
	cmd->nr_bvecs = 0;
	if (cmd->flags & VNVME_CMD_BIO)
		bio_uninit(&cmd->bio);
	cmd->flags &= ~(VNVME_CMD_BIO | VNVME_CMD_DIRTY);
}

/*
 * Map the data pointer of @cmd for @len bytes.  With @copy, the data is
 * copied there (DSM ranges) rather than pinned.
 */
static u16 vnvme_map_data(struct vnvme_dev *dev, struct vnvme_cmd *cmd,
			  u32 len, bool write, void *copy)
{
	struct nvme_common_command *c = &cmd->sqe.common;
	struct vnvme_map m = {
		.dev = dev,
		.cmd = cmd,
		.write = write,
		.copy = copy,
	};
	u16 status;

	switch (c->flags & NVME_CMD_SGL_ALL) {
	case 0:
		status = vnvme_walk_prp(&m, le64_to_cpu(c->dptr.prp1),
					le64_to_cpu(c->dptr.prp2), len,
					cmd->sq->worker->scratch);
		break;
	case NVME_CMD_SGL_METABUF:
		/* checked by vnvme_check_flags(): SGL was negotiated */
		status = vnvme_walk_sgl(&m, &c->dptr.sgl, len,
					cmd->sq->worker->scratch);
		break;
	default:
		return NVME_SC_INVALID_FIELD | NVME_SC_DNR;
	}
	if (!status && !copy)
		status = vnvme_map_flush_run(&m);
	if (status)
		return status;
	if (write)
		cmd->flags |= VNVME_CMD_DIRTY;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Completion */

static u16 vnvme_blk_status(blk_status_t sts, u8 opcode)
{
	switch (sts) {
	case BLK_STS_OK:
		return NVME_SC_SUCCESS;
	case BLK_STS_NOSPC:
		return NVME_SC_CAP_EXCEEDED | NVME_SC_DNR;
	case BLK_STS_TARGET:
		return NVME_SC_LBA_RANGE | NVME_SC_DNR;
	case BLK_STS_NOTSUPP:
		return NVME_SC_INVALID_OPCODE | NVME_SC_DNR;
	case BLK_STS_MEDIUM:
		return NVME_SC_ACCESS_DENIED;
	default:
		if (opcode == nvme_cmd_read)
			return NVME_SC_READ_ERROR;
		if (opcode == nvme_cmd_write)
			return NVME_SC_WRITE_FAULT;
		return NVME_SC_INTERNAL;
	}
}

/*
 * Any context: hand a finished command back to the worker.  Once it is on
 * the list the worker may post it and teardown may proceed: the RCU read
 * side section keeps the worker alive until vnvme_wake() returns (see
 * vnvme_reset()).
 */
static void vnvme_cmd_done(struct vnvme_cmd *cmd)
{
	struct vnvme_worker *worker = cmd->sq->worker;

	rcu_read_lock();
	llist_add(&cmd->lnode, &worker->done);
	vnvme_wake(worker);
	rcu_read_unlock();
}

static void vnvme_bio_end(struct bio *bio)
{
	struct vnvme_cmd *cmd = bio->bi_private;

	/* A polled bio is REQ_NOWAIT: without a free tag it ends at once. */
	if (bio->bi_status == BLK_STS_AGAIN &&
	    (cmd->flags & VNVME_CMD_POLLED))
		cmd->flags |= VNVME_CMD_RESUBMIT;
	cmd->status = vnvme_blk_status(bio->bi_status, cmd->sqe.common.opcode);
	vnvme_cmd_done(cmd);
}

/* End of a bio chain allocated by the block layer helpers. */
static void vnvme_bio_end_put(struct bio *bio)
{
	struct vnvme_cmd *cmd = bio->bi_private;

	if (bio->bi_status)
		cmd->status = vnvme_blk_status(bio->bi_status,
					       cmd->sqe.common.opcode);
	bio_put(bio);
	vnvme_cmd_done(cmd);
}

/* Worker: a queue stopped on a guest fault; tell the VMM if it asked. */
static void vnvme_queue_fault(struct eventfd_ctx *err)
{
	if (err)
		vnvme_eventfd_signal(err);
}

/*
 * Worker: post a completion for command @cid (as the guest wrote it) of
 * @sq, reporting @sq's current head.
 */
static void vnvme_post_cqe(struct vnvme_sq *sq, u16 cid, u16 status)
{
	struct vnvme_cq *cq = sq->cq;
	struct {
		u16 command_id;	/* echoed as the guest wrote it */
		__le16 status;
	} dw3;
	__le32 cqe[3];
	void __user *p;
	u32 last;

	if (cq->broken)
		return;
	cqe[0] = 0;	/* command specific result */
	cqe[1] = 0;
	cqe[2] = cpu_to_le32(sq->head | (u32)sq->qid << 16);
	dw3.command_id = cid;
	dw3.status = cpu_to_le16(status << 1 | cq->phase);
	memcpy(&last, &dw3, sizeof(last));
	p = cq->ring + (size_t)cq->tail * VNVME_CQE_SIZE;
	if (copy_to_user(p, cqe, sizeof(cqe)))
		goto fault;
	/* The phase tag goes last; pairs with the guest's read barrier. */
	smp_wmb();
	if (put_user(last, (u32 __user *)(p + sizeof(cqe))))
		goto fault;
	if (++cq->tail == cq->size) {
		cq->tail = 0;
		cq->phase ^= 1;
	}
	cq->posted++;
	if (!cq->pending++ && cq->coal_ns)
		cq->first_pending = ktime_get();
	cq->need_irq = true;
	return;
fault:
	vnvme_guest_err("vhost-nvme: CQ %u not writable\n", cq->qid);
	cq->broken = true;
	vnvme_queue_fault(cq->err);
}

/* Worker: drop the namespace reference @cmd took at fetch, if any. */
static void vnvme_put_ns(struct vnvme_cmd *cmd)
{
	if (cmd->ns) {
		vnvme_ns_put(cmd->ns);
		cmd->ns = NULL;
	}
}

/*
 * Worker: @sq's delete has nothing left to wait for: tell the VMM if it
 * asked for an eventfd, and wake a waiting DELETE_SQ.
 */
static void vnvme_sq_drained(struct vnvme_dev *dev, struct vnvme_sq *sq)
{
	if (sq->drain)
		vnvme_eventfd_signal(sq->drain);
	wake_up_all(&dev->wq);
}

/*
 * Worker: return @cmd's slot to its SQ's free list and its CQ reservation,
 * and wake whoever waits for the SQ or the device to drain.
 */
static void vnvme_put_slot(struct vnvme_dev *dev, struct vnvme_cmd *cmd)
{
	struct vnvme_sq *sq = cmd->sq;

	lockdep_assert_held_read(&dev->io_lock);
	sq->cq->reserved--;
	cmd->next_free = sq->free;
	sq->free = cmd - sq->cmds;
	/* Read locklessly by the waits in delete */
	WRITE_ONCE(sq->inflight, sq->inflight - 1);
	if (!sq->inflight) {
		if (sq->abort_done)
			vnvme_sq_drained(dev, sq);
		else
			wake_up_all(&dev->wq);
	}
	if (atomic_dec_and_test(&dev->inflight)) {
		if (dev->quiesced && dev->quiesce_efd)
			vnvme_eventfd_signal(dev->quiesce_efd);
		wake_up_all(&dev->wq);
	}
}

/* Worker: post @cmd's completion and free its slot. */
static void vnvme_finish(struct vnvme_dev *dev, struct vnvme_cmd *cmd,
			 u16 status)
{
	struct vnvme_sq *sq = cmd->sq;

	cmd->status = status;
	if (cmd->flags & VNVME_CMD_POLLED) {
		list_del(&cmd->poll_node);
		sq->polled++;
	}
	vnvme_release_data(cmd);	/* may fail a bounced read */
	vnvme_put_ns(cmd);
	vnvme_post_cqe(sq, cmd->sqe.common.command_id, cmd->status);
	if (cmd->status)
		sq->errors++;
	vnvme_put_slot(dev, cmd);
}

/*
 * Worker: poll the backend queues of its polled bios, each queue once per
 * pass (one poll reaps every completion of that hardware queue; bios of one
 * queue mostly sit next to each other on the list).  The bios are inline in
 * command slots that stay allocated until the worker itself posts them, so
 * none is freed under bio_poll(); a completed one merely polls its queue
 * once more.
 */
static void vnvme_poll_bios(struct vnvme_worker *worker)
{
	struct block_device *bdev = NULL;
	blk_qc_t cookie = BLK_QC_T_NONE;
	struct vnvme_cmd *cmd;

	list_for_each_entry(cmd, &worker->polled, poll_node) {
		if (cmd->bio.bi_bdev == bdev &&
		    READ_ONCE(cmd->bio.bi_cookie) == cookie)
			continue;
		bdev = cmd->bio.bi_bdev;
		cookie = READ_ONCE(cmd->bio.bi_cookie);
		bio_poll(&cmd->bio, NULL, BLK_POLL_NOSLEEP);
	}
}

/* Worker: submit a polled bio that found no free tag again, unpolled. */
static void vnvme_resubmit(struct vnvme_cmd *cmd)
{
	blk_opf_t opf = cmd->bio.bi_opf & ~(REQ_POLLED | REQ_NOWAIT);

	list_del(&cmd->poll_node);
	cmd->flags &= ~(VNVME_CMD_POLLED | VNVME_CMD_RESUBMIT);
	bio_reset(&cmd->bio, cmd->ns->bdev, opf);
	cmd->bio.bi_vcnt = cmd->bio.bi_max_vecs;
	cmd->bio.bi_iter = cmd->bio_iter;
	cmd->bio.bi_private = cmd;
	cmd->bio.bi_end_io = vnvme_bio_end;
	submit_bio(&cmd->bio);
}

static void vnvme_submit_flush(struct vnvme_dev *dev, struct vnvme_cmd *cmd);
static void vnvme_zero_pages(struct vnvme_cmd *cmd);

/*
 * Worker: the next step of a Write Zeroes on a block device, if any: zero
 * pages when the device refused REQ_OP_WRITE_ZEROES (a loop device over a
 * file system without FALLOC_FL_ZERO_RANGE does), then the flush of FUA.
 * Returns true if the command went back to the backend.
 */
static bool vnvme_zero_next(struct vnvme_dev *dev, struct vnvme_cmd *cmd)
{
	if (cmd->sqe.common.opcode != nvme_cmd_write_zeroes || !cmd->ns ||
	    !cmd->ns->bdev)
		return false;
	if (cmd->status == (NVME_SC_INVALID_OPCODE | NVME_SC_DNR) &&
	    !(cmd->flags & VNVME_CMD_ZERO_PAGES)) {
		WRITE_ONCE(cmd->ns->no_write_zeroes, true);
		cmd->status = 0;
		vnvme_zero_pages(cmd);
		return true;
	}
	if (!cmd->status && (cmd->flags & VNVME_CMD_FLUSH_AFTER)) {
		cmd->flags &= ~VNVME_CMD_FLUSH_AFTER;
		vnvme_submit_flush(dev, cmd);
		return true;
	}
	return false;
}

/* Worker: post everything the backend finished. */
static bool vnvme_reap(struct vnvme_worker *worker)
{
	struct llist_node *list = llist_del_all(&worker->done);
	struct vnvme_dev *dev = worker->dev;
	struct vnvme_cmd *cmd, *tmp;

	list = llist_reverse_order(list);
	llist_for_each_entry_safe(cmd, tmp, list, lnode) {
		if (cmd->flags & VNVME_CMD_RESUBMIT)
			vnvme_resubmit(cmd);
		else if (!vnvme_zero_next(dev, cmd))
			vnvme_finish(dev, cmd, cmd->status);
	}
	return list;
}

/* ---------------------------------------------------------------------- */
/* Backend submission */

static int vnvme_errno_status(int err, u8 opcode)
{
	switch (err) {
	case 0:
		return NVME_SC_SUCCESS;
	case -ENOSPC:
		return NVME_SC_CAP_EXCEEDED | NVME_SC_DNR;
	case -EOPNOTSUPP:
		return NVME_SC_INVALID_OPCODE | NVME_SC_DNR;
	case -EFAULT:
		return NVME_SC_DATA_XFER_ERROR | NVME_SC_DNR;
	default:
		return vnvme_blk_status(BLK_STS_IOERR, opcode);
	}
}

static void vnvme_file_work(struct kthread_work *work);

/*
 * Worker: hand a file operation that blocks to dev->helper, which the
 * owner's cgroups account and limit like the worker; the worker goes on.
 */
static void vnvme_queue_file_work(struct vnvme_cmd *cmd)
{
	kthread_init_work(&cmd->work, vnvme_file_work);
	kthread_queue_work(cmd->sq->dev->helper, &cmd->work);
}

static void vnvme_submit_flush(struct vnvme_dev *dev, struct vnvme_cmd *cmd)
{
	struct vnvme_ns *ns = cmd->ns;

	cmd->status = 0;
	if (!ns->bdev) {
		vnvme_queue_file_work(cmd);
		return;
	}
	bio_init(&cmd->bio, ns->bdev, NULL, 0, REQ_OP_WRITE | REQ_PREFLUSH);
	cmd->flags |= VNVME_CMD_BIO;
	cmd->bio.bi_private = cmd;
	cmd->bio.bi_end_io = vnvme_bio_end;
	submit_bio(&cmd->bio);
}

/*
 * Read or write @cmd's data at cmd->iocb.ki_pos of its file namespace,
 * with the kiocb as set up: the bytes done, an errno or -EIOCBQUEUED.
 */
static ssize_t vnvme_file_rw(struct vnvme_cmd *cmd)
{
	bool write = cmd->sqe.common.opcode == nvme_cmd_write;
	u32 len = (le16_to_cpu(cmd->sqe.rw.length) + 1) << cmd->ns->lba_shift;
	struct file *file = cmd->ns->file;
	struct iov_iter iter;

	if (cmd->bounce)
		iov_iter_bvec(&iter, write ? ITER_SOURCE : ITER_DEST,
			      cmd->bounce->bv, cmd->bounce->nr, len);
	else
		iov_iter_bvec(&iter, write ? ITER_SOURCE : ITER_DEST,
			      cmd->bvecs, cmd->nr_bvecs, len);
	if (write)
		return call_write_iter(file, &cmd->iocb, &iter);
	return call_read_iter(file, &cmd->iocb, &iter);
}

static void vnvme_kiocb_end(struct kiocb *iocb, long ret)
{
	struct vnvme_cmd *cmd = container_of(iocb, struct vnvme_cmd, iocb);
	u32 len = le16_to_cpu(cmd->sqe.rw.length) + 1;

	if (cmd->flags & VNVME_CMD_SB_WRITE) {
		cmd->flags &= ~VNVME_CMD_SB_WRITE;
		kiocb_end_write(iocb);
	}

	len <<= cmd->ns->lba_shift;
	if (ret == len)
		cmd->status = 0;
	else
		cmd->status = vnvme_errno_status(ret < 0 ? ret : -EIO,
						 cmd->sqe.common.opcode);
	vnvme_cmd_done(cmd);
}

static u16 vnvme_submit_rw(struct vnvme_dev *dev, struct vnvme_cmd *cmd,
			   u64 slba, u32 len, bool write, bool fua)
{
	struct vnvme_ns *ns = cmd->ns;
	struct bio_vec *bvecs = cmd->bvecs;
	unsigned int nr_bvecs = cmd->nr_bvecs;
	loff_t pos = slba << ns->lba_shift;
	ssize_t ret;

	if (!ns->bdev) {
		struct super_block *sb = file_inode(ns->file)->i_sb;

		if (rw_verify_area(write ? WRITE : READ, ns->file, &pos, len))
			return NVME_SC_ACCESS_DENIED | NVME_SC_DNR;
		/*
		 * Freeze protection, as a write(2) has: while the file system
		 * is frozen the write stays in its SQ (never blocking the
		 * worker) and is tried again every VNVME_FROZEN_RECHECK_NS.
		 */
		if (write) {
			if (!sb_start_write_trylock(sb)) {
				cmd->sq->worker->frozen = true;
				return VNVME_STATUS_RETRY;
			}
			/* Completion may run in another context: see kiocb_start_write() */
			__sb_writers_release(sb, SB_FREEZE_WRITE);
			cmd->flags |= VNVME_CMD_SB_WRITE;
		}
	}

	if (vnvme_needs_bounce(cmd)) {
		u16 status = vnvme_bounce_alloc(dev, cmd, len, write);

		if (status) {
			if (cmd->flags & VNVME_CMD_SB_WRITE) {
				cmd->flags &= ~VNVME_CMD_SB_WRITE;
				init_sync_kiocb(&cmd->iocb, ns->file);
				kiocb_end_write(&cmd->iocb);
			}
			return status;
		}
		bvecs = cmd->bounce->bv;
		nr_bvecs = cmd->bounce->nr;
	}

	if (ns->bdev) {
		blk_opf_t opf = write ? REQ_OP_WRITE | REQ_SYNC | REQ_IDLE :
					REQ_OP_READ;

		if (fua)
			opf |= REQ_FUA;
		/*
		 * While the worker polls, and where the backend has poll
		 * queues, the worker polls for the completion too (no
		 * interrupt) and keeps polling until the bio completed.  No
		 * waiting for a tag then: the tags may all be held by polled
		 * bios that only this worker, blocked, would complete.
		 */
		if (cmd->sq->worker->polling && bdev_nowait(ns->bdev) &&
		    test_bit(QUEUE_FLAG_POLL, &bdev_get_queue(ns->bdev)->queue_flags)) {
			opf |= REQ_POLLED | REQ_NOWAIT;
			cmd->flags |= VNVME_CMD_POLLED;
			list_add_tail(&cmd->poll_node, &cmd->sq->worker->polled);
		}
		bio_init(&cmd->bio, ns->bdev, bvecs, nr_bvecs, opf);
		cmd->flags |= VNVME_CMD_BIO;
		cmd->bio.bi_vcnt = nr_bvecs;
		cmd->bio.bi_iter.bi_size = len;
		cmd->bio.bi_iter.bi_sector = slba << (ns->lba_shift - SECTOR_SHIFT);
		cmd->bio_iter = cmd->bio.bi_iter;
		cmd->bio.bi_private = cmd;
		cmd->bio.bi_end_io = vnvme_bio_end;
		submit_bio(&cmd->bio);
		return VNVME_STATUS_ASYNC;
	}

	init_sync_kiocb(&cmd->iocb, ns->file);
	cmd->iocb.ki_pos = pos;
	cmd->iocb.ki_complete = vnvme_kiocb_end;
	if (fua)
		cmd->iocb.ki_flags |= IOCB_DSYNC;
	/*
	 * Buffered I/O completes before the call returns, waiting for the
	 * disk on a page cache miss and in fsync for FUA.  The worker only
	 * does what needs no waiting and no I/O (IOCB_NOWAIT, IOCB_NOIO: a
	 * read from the page cache, where the file system honours them); the
	 * rest goes to the helper, from the start.
	 */
	if (!(cmd->iocb.ki_flags & IOCB_DIRECT)) {
		if (fua || !(ns->file->f_mode & FMODE_NOWAIT)) {
			vnvme_queue_file_work(cmd);
			return VNVME_STATUS_ASYNC;
		}
		cmd->iocb.ki_flags |= IOCB_NOWAIT | IOCB_NOIO;
		ret = vnvme_file_rw(cmd);
		if (ret != len) {
			/* Again, all of it (a part may be done): idempotent */
			cmd->iocb.ki_flags &= ~(IOCB_NOWAIT | IOCB_NOIO);
			cmd->iocb.ki_pos = pos;
			vnvme_queue_file_work(cmd);
			return VNVME_STATUS_ASYNC;
		}
	} else {
		ret = vnvme_file_rw(cmd);
	}
	if (ret != -EIOCBQUEUED)
		vnvme_kiocb_end(&cmd->iocb, ret);
	return VNVME_STATUS_ASYNC;
}

/* ---------------------------------------------------------------------- */
/* Command decoding */

static u16 vnvme_get_ns(struct vnvme_dev *dev, struct vnvme_cmd *cmd)
{
	u32 nsid = le32_to_cpu(cmd->sqe.common.nsid);
	struct vnvme_ns *ns;

	if (!nsid || nsid > VNVME_MAX_NSID)
		return NVME_SC_INVALID_NS | NVME_SC_DNR;
	ns = dev->ns[array_index_nospec(nsid, VNVME_MAX_NSID + 1)];
	if (!ns)
		return NVME_SC_INVALID_NS | NVME_SC_DNR;
	kref_get(&ns->ref);
	cmd->ns = ns;
	return 0;
}

static u16 vnvme_check_range(struct vnvme_ns *ns, u64 slba, u64 nlb)
{
	if (slba + nlb < slba || slba + nlb > ns->nsze)
		return NVME_SC_LBA_RANGE | NVME_SC_DNR;
	return 0;
}

/* Control field (CDW12 bits 31:16) bits we accept for Read and Write. */
#define VNVME_RW_CONTROL_OK	(NVME_RW_LR | NVME_RW_FUA | 0x3c00)

static u16 vnvme_exec_rw(struct vnvme_dev *dev, struct vnvme_cmd *cmd)
{
	struct nvme_rw_command *rw = &cmd->sqe.rw;
	bool write = rw->opcode == nvme_cmd_write;
	u16 control = le16_to_cpu(rw->control);
	u64 slba = le64_to_cpu(rw->slba);
	u32 nlb = le16_to_cpu(rw->length) + 1;
	struct vnvme_ns *ns = cmd->ns;
	u64 len = (u64)nlb << ns->lba_shift;
	u16 status;

	if (control & ~VNVME_RW_CONTROL_OK)
		return NVME_SC_INVALID_FIELD | NVME_SC_DNR;
	status = vnvme_check_range(ns, slba, nlb);
	if (status)
		return status;
	if (len > VNVME_MAX_XFER)
		return NVME_SC_INVALID_FIELD | NVME_SC_DNR;
	if (write && ns->read_only)
		return NVME_SC_NS_WRITE_PROTECTED | NVME_SC_DNR;

	status = vnvme_map_data(dev, cmd, len, !write, NULL);
	if (status)
		return status;
	/* FUA means nothing for a Read, and block layers after 6.1 refuse it. */
	return vnvme_submit_rw(dev, cmd, slba, len, write,
			       write && ((control & NVME_RW_FUA) ||
					 ns->write_through));
}

/* Write Zeroes CDW12 Deallocate */
#define VNVME_WZ_DEAC		BIT(9)

/* Submit the bio chain ending in @bio for @cmd, or fail @cmd with @ret. */
static void vnvme_submit_chain(struct vnvme_cmd *cmd, struct bio *bio, int ret)
{
	if (!bio) {
		cmd->status = vnvme_errno_status(ret, cmd->sqe.common.opcode);
		vnvme_cmd_done(cmd);
		return;
	}
	bio->bi_private = cmd;
	bio->bi_end_io = vnvme_bio_end_put;
	if (ret) {
		cmd->status = vnvme_errno_status(ret, cmd->sqe.common.opcode);
		bio_io_error(bio);
	} else {
		submit_bio(bio);
	}
}

/* Write Zeroes as writes of the zero page, chained like the helpers do. */
static void vnvme_zero_pages(struct vnvme_cmd *cmd)
{
	struct nvme_write_zeroes_cmd *wz = &cmd->sqe.write_zeroes;
	struct vnvme_ns *ns = cmd->ns;
	u8 shift = ns->lba_shift - SECTOR_SHIFT;
	sector_t sector = le64_to_cpu(wz->slba) << shift;
	sector_t nr = (sector_t)(le16_to_cpu(wz->length) + 1) << shift;
	struct bio *bio = NULL;

	cmd->flags |= VNVME_CMD_ZERO_PAGES;
	while (nr) {
		bio = blk_next_bio(bio, ns->bdev,
				   min_t(sector_t, BIO_MAX_VECS,
					 DIV_ROUND_UP(nr, PAGE_SECTORS)),
				   REQ_OP_WRITE, GFP_KERNEL);
		bio->bi_iter.bi_sector = sector;
		while (nr) {
			unsigned int len = min_t(sector_t, PAGE_SIZE,
						 nr << SECTOR_SHIFT);

			if (bio_add_page(bio, ZERO_PAGE(0), len, 0) < len)
				break;
			nr -= len >> SECTOR_SHIFT;
			sector += len >> SECTOR_SHIFT;
		}
		cond_resched();
	}
	vnvme_submit_chain(cmd, bio, 0);
}

/*
 * Write Zeroes on a block device: a chain of bios from the block layer's
 * helper, submitted by the worker like every other I/O (so charged to the
 * owner's cgroups, and never waited for); the completion comes through
 * vnvme_zero_next() for a fallback or the flush of FUA.
 */
static void vnvme_submit_zeroes(struct vnvme_cmd *cmd)
{
	struct nvme_write_zeroes_cmd *wz = &cmd->sqe.write_zeroes;
	u16 control = le16_to_cpu(wz->control);
	struct vnvme_ns *ns = cmd->ns;
	u8 shift = ns->lba_shift - SECTOR_SHIFT;
	struct bio *bio = NULL;
	int ret;

	cmd->status = 0;
	if ((control & NVME_RW_FUA) || ns->write_through)
		cmd->flags |= VNVME_CMD_FLUSH_AFTER;
	if (READ_ONCE(ns->no_write_zeroes)) {
		vnvme_zero_pages(cmd);
		return;
	}
	/* Deallocate (DEAC) lets the device unmap; else keep blocks. */
	ret = __blkdev_issue_zeroout(ns->bdev, le64_to_cpu(wz->slba) << shift,
				     (sector_t)(le16_to_cpu(wz->length) + 1) << shift,
				     GFP_KERNEL, &bio, (control & VNVME_WZ_DEAC) ?
				     0 : BLKDEV_ZERO_NOUNMAP);
	vnvme_submit_chain(cmd, bio, ret);
}

/* Helper: Write Zeroes on a regular file; 0 or an errno. */
static int vnvme_file_zeroes(struct vnvme_cmd *cmd)
{
	struct nvme_write_zeroes_cmd *wz = &cmd->sqe.write_zeroes;
	u16 control = le16_to_cpu(wz->control);
	struct vnvme_ns *ns = cmd->ns;
	u64 slba = le64_to_cpu(wz->slba);
	u64 nlb = le16_to_cpu(wz->length) + 1;
	loff_t off = slba << ns->lba_shift;
	loff_t len = nlb << ns->lba_shift;
	int ret;

	ret = vfs_fallocate(ns->file,
			    FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
			    off, len);
	if (ret == -EOPNOTSUPP)
		ret = vfs_fallocate(ns->file, FALLOC_FL_PUNCH_HOLE |
				    FALLOC_FL_KEEP_SIZE, off, len);
	if (!ret && ((control & NVME_RW_FUA) || ns->write_through))
		ret = vfs_fsync_range(ns->file, off, off + len - 1, 1);
	return ret;
}

/* Write Zeroes control bits accepted: LR, FUA, PRINFO, DEAC. */
#define VNVME_WZ_CONTROL_OK	(NVME_RW_LR | NVME_RW_FUA | 0x3c00 | VNVME_WZ_DEAC)

static u16 vnvme_exec_write_zeroes(struct vnvme_dev *dev,
				   struct vnvme_cmd *cmd)
{
	struct nvme_write_zeroes_cmd *wz = &cmd->sqe.write_zeroes;
	u16 control = le16_to_cpu(wz->control);
	u64 slba = le64_to_cpu(wz->slba);
	u32 nlb = le16_to_cpu(wz->length) + 1;
	struct vnvme_ns *ns = cmd->ns;
	u16 status;

	if (control & ~VNVME_WZ_CONTROL_OK)
		return NVME_SC_INVALID_FIELD | NVME_SC_DNR;
	/* Beyond the WZSL the VMM advertises */
	if (dev->wzsl_bytes && ((u64)nlb << ns->lba_shift) > dev->wzsl_bytes)
		return NVME_SC_INVALID_FIELD | NVME_SC_DNR;
	status = vnvme_check_range(ns, slba, nlb);
	if (status)
		return status;
	if (ns->read_only)
		return NVME_SC_NS_WRITE_PROTECTED | NVME_SC_DNR;

	if (ns->bdev) {
		vnvme_submit_zeroes(cmd);
		return VNVME_STATUS_ASYNC;
	}
	vnvme_queue_file_work(cmd);
	return VNVME_STATUS_ASYNC;
}

/* Helper: Deallocate on a regular file punches holes; 0 or an errno. */
static int vnvme_file_discard(struct vnvme_cmd *cmd)
{
	unsigned int i, nr = (le32_to_cpu(cmd->sqe.dsm.nr) & 0xff) + 1;
	const struct nvme_dsm_range *range = cmd->ranges;
	struct vnvme_ns *ns = cmd->ns;
	int ret = 0;

	for (i = 0; i < nr && !ret; i++) {
		u32 nlb = le32_to_cpu(range[i].nlb);

		if (!nlb)
			continue;
		ret = vfs_fallocate(ns->file,
				    FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				    le64_to_cpu(range[i].slba) << ns->lba_shift,
				    (loff_t)nlb << ns->lba_shift);
	}
	/* Deallocation is advisory: a file that cannot punch holes is fine. */
	return ret == -EOPNOTSUPP ? 0 : ret;
}

/*
 * dev->helper: a file operation that blocks (buffered Read and Write,
 * Flush, Write Zeroes, Deallocate), with the owner's memory cgroup charged
 * for what it allocates.
 */
static void vnvme_file_work(struct kthread_work *work)
{
	struct vnvme_cmd *cmd = container_of(work, struct vnvme_cmd, work);
	u8 opcode = cmd->sqe.common.opcode;
	struct mem_cgroup *old_memcg;
	int ret;

	old_memcg = set_active_memcg(cmd->sq->dev->memcg);
	if (opcode == nvme_cmd_read || opcode == nvme_cmd_write) {
		/* Buffered: done (or failed) on return */
		vnvme_kiocb_end(&cmd->iocb, vnvme_file_rw(cmd));
		set_active_memcg(old_memcg);
		return;
	}
	if (opcode == nvme_cmd_flush)
		ret = vfs_fsync(cmd->ns->file, 0);
	else if (opcode == nvme_cmd_write_zeroes)
		ret = vnvme_file_zeroes(cmd);
	else
		ret = vnvme_file_discard(cmd);
	set_active_memcg(old_memcg);
	cmd->status = vnvme_errno_status(ret, opcode);
	vnvme_cmd_done(cmd);
}

static u16 vnvme_exec_dsm(struct vnvme_dev *dev, struct vnvme_cmd *cmd)
{
	struct nvme_dsm_cmd *dsm = &cmd->sqe.dsm;
	unsigned int i, nr = (le32_to_cpu(dsm->nr) & 0xff) + 1;
	/* The first scratch page may hold SGL segments while mapping. */
	struct nvme_dsm_range *range = cmd->sq->worker->scratch +
				       VNVME_PAGE_SIZE;
	struct vnvme_ns *ns = cmd->ns;
	struct bio *bio = NULL;
	u16 status;
	int ret = 0;

	if (le32_to_cpu(dsm->nr) & ~0xffU)
		return NVME_SC_INVALID_FIELD | NVME_SC_DNR;
	/* Beyond the DMRL the VMM advertises */
	if (dev->dmrl && nr > dev->dmrl)
		return NVME_SC_INVALID_FIELD | NVME_SC_DNR;
	if (!(le32_to_cpu(dsm->attributes) & NVME_DSMGMT_AD))
		return NVME_SC_SUCCESS;	/* hints only */
	if (ns->read_only)
		return NVME_SC_NS_WRITE_PROTECTED | NVME_SC_DNR;

	status = vnvme_map_data(dev, cmd, nr * sizeof(*range), false, range);
	if (status)
		return status;
	for (i = 0; i < nr; i++) {
		/* Beyond the DMRSL the VMM advertises */
		if (dev->dmrsl && le32_to_cpu(range[i].nlb) > dev->dmrsl)
			return NVME_SC_INVALID_FIELD | NVME_SC_DNR;
		status = vnvme_check_range(ns, le64_to_cpu(range[i].slba),
					   le32_to_cpu(range[i].nlb));
		if (status)
			return status;
	}

	cmd->status = 0;
	if (!ns->bdev) {
		/* The helper punches the holes, from a copy of the ranges. */
		status = vnvme_charge(dev, cmd, VNVME_PAGE_SIZE);
		if (status)
			return status;
		cmd->ranges = kmemdup(range, nr * sizeof(*range),
				      GFP_KERNEL_ACCOUNT);
		if (!cmd->ranges) {
			vnvme_uncharge(dev, VNVME_PAGE_SIZE);
			return NVME_SC_INTERNAL;
		}
		vnvme_queue_file_work(cmd);
		return VNVME_STATUS_ASYNC;
	}
	if (!bdev_max_discard_sectors(ns->bdev))
		return NVME_SC_SUCCESS;
	for (i = 0; i < nr && !ret; i++) {
		u32 nlb = le32_to_cpu(range[i].nlb);
		u8 shift = ns->lba_shift - SECTOR_SHIFT;

		if (!nlb)
			continue;
		ret = vnvme_issue_discard(ns->bdev,
					  le64_to_cpu(range[i].slba) << shift,
					  (sector_t)nlb << shift, &bio);
	}
	if (!bio)
		return vnvme_errno_status(ret, nvme_cmd_dsm);
	bio->bi_private = cmd;
	bio->bi_end_io = vnvme_bio_end_put;
	if (ret) {
		cmd->status = vnvme_errno_status(ret, nvme_cmd_dsm);
		bio_io_error(bio);
	} else {
		submit_bio(bio);
	}
	return VNVME_STATUS_ASYNC;
}

/* CDW0 flags: FUSE (bits 1:0) and reserved bits 5:2 must be zero. */
static u16 vnvme_check_flags(struct vnvme_dev *dev, u8 flags)
{
	if (flags & 0x3f)
		return NVME_SC_INVALID_FIELD | NVME_SC_DNR;
	switch (flags & NVME_CMD_SGL_ALL) {
	case 0:
		return 0;
	case NVME_CMD_SGL_METABUF:
		if (dev->features & VHOST_NVME_F_SGL)
			return 0;
		fallthrough;
	default:
		return NVME_SC_INVALID_FIELD | NVME_SC_DNR;
	}
}

static u16 vnvme_exec(struct vnvme_dev *dev, struct vnvme_cmd *cmd)
{
	u8 opcode = cmd->sqe.common.opcode;
	u16 status;

	switch (opcode) {
	case nvme_cmd_flush:
	case nvme_cmd_write:
	case nvme_cmd_read:
		break;
	case nvme_cmd_write_zeroes:
		if (!(dev->features & VHOST_NVME_F_WRITE_ZEROES))
			return NVME_SC_INVALID_OPCODE | NVME_SC_DNR;
		break;
	case nvme_cmd_dsm:
		if (!(dev->features & VHOST_NVME_F_DSM))
			return NVME_SC_INVALID_OPCODE | NVME_SC_DNR;
		break;
	default:
		return NVME_SC_INVALID_OPCODE | NVME_SC_DNR;
	}

	status = vnvme_check_flags(dev, cmd->sqe.common.flags);
	if (status)
		return status;
	status = vnvme_get_ns(dev, cmd);
	if (status)
		return status;

	switch (opcode) {
	case nvme_cmd_flush:
		vnvme_submit_flush(dev, cmd);
		return VNVME_STATUS_ASYNC;
	case nvme_cmd_write_zeroes:
		return vnvme_exec_write_zeroes(dev, cmd);
	case nvme_cmd_dsm:
		return vnvme_exec_dsm(dev, cmd);
	default:
		return vnvme_exec_rw(dev, cmd);
	}
}

/* ---------------------------------------------------------------------- */
/* Doorbells and queues */

static bool vnvme_read_db(struct vnvme_dev *dev, unsigned int idx, u32 *val)
{
	__le32 v;

	if (!dev->dbs || get_user(v, dev->dbs + idx))
		return false;
	*val = le32_to_cpu(v);
	return true;
}

static void vnvme_write_ei(struct vnvme_dev *dev, unsigned int idx, u16 val)
{
	if (dev->eis && put_user(cpu_to_le32(val), dev->eis + idx))
		vnvme_guest_err("vhost-nvme: EventIdx buffer not writable\n");
}

static void vnvme_sq_refresh(struct vnvme_dev *dev, struct vnvme_sq *sq)
{
	u32 tail;

	if (!vnvme_read_db(dev, 2 * sq->qid, &tail))
		return;
	if (tail >= sq->size) {
		if (tail != sq->tail)
			sq->bad_db++;
		return;
	}
	sq->tail = tail;
	/* Read the entries only after the tail; pairs with the guest's wmb. */
	smp_rmb();
}

static void vnvme_cq_refresh(struct vnvme_dev *dev, struct vnvme_cq *cq)
{
	u32 head;

	if (!vnvme_read_db(dev, 2 * cq->qid + 1, &head) || head == cq->head)
		return;
	if (!vnvme_cq_head_valid(cq->head, head, cq->tail, cq->size)) {
		cq->bad_db++;
		return;
	}
	cq->head = head;
}

static u32 vnvme_cq_room(struct vnvme_cq *cq)
{
	return vnvme_cq_space(cq->head, cq->tail, cq->size, cq->reserved);
}

/* Reserve a CQ entry for a command about to be fetched. */
static bool vnvme_cq_reserve(struct vnvme_dev *dev, struct vnvme_cq *cq)
{
	if (!vnvme_cq_room(cq)) {
		vnvme_cq_refresh(dev, cq);
		if (!vnvme_cq_room(cq) && dev->eis) {
			/* Ask for a doorbell on the next head update. */
			vnvme_write_ei(dev, 2 * cq->qid + 1, cq->head);
			/* EventIdx store before head reload; see fetch_sq. */
			smp_mb();
			vnvme_cq_refresh(dev, cq);
		}
		if (!vnvme_cq_room(cq)) {
			cq->full = true;
			return false;
		}
	}
	cq->full = false;
	cq->reserved++;
	return true;
}

/*
 * Worker: put back the command just fetched, which could not start yet
 * (VNVME_STATUS_RETRY): nothing of it reached the backend, the guest
 * entry stays in the SQ and is fetched again later.
 */
static void vnvme_unfetch(struct vnvme_dev *dev, struct vnvme_cmd *cmd)
{
	struct vnvme_sq *sq = cmd->sq;

	cmd->flags &= ~VNVME_CMD_DIRTY;	/* the device wrote nothing */
	vnvme_release_data(cmd);
	vnvme_put_ns(cmd);
	sq->head = (sq->head + sq->size - 1) % sq->size;
	sq->fetched--;
	vnvme_put_slot(dev, cmd);
}

/* Fetch and start up to @budget commands of @sq; returns how many. */
static unsigned int vnvme_fetch_sq(struct vnvme_dev *dev, struct vnvme_sq *sq,
				   unsigned int budget, bool *more)
{
	struct vnvme_cq *cq = sq->cq;
	bool polling = sq->worker->polling;
	unsigned int n = 0;

	if (sq->deleting || sq->broken || cq->broken)
		return 0;
	vnvme_sq_refresh(dev, sq);
	for (;;) {
		while (sq->head != sq->tail) {
			struct vnvme_cmd *cmd;
			u16 status;

			if (n == budget) {
				*more = true;
				return n;
			}
			if (sq->free < 0 || !vnvme_cq_reserve(dev, cq))
				return n;
			cmd = &sq->cmds[sq->free];
			if (copy_from_user(&cmd->sqe, sq->ring + (size_t)sq->head *
					   VNVME_SQE_SIZE, sizeof(cmd->sqe))) {
				vnvme_guest_err("vhost-nvme: SQ %u not readable\n",
						sq->qid);
				cq->reserved--;
				sq->broken = true;
				vnvme_queue_fault(sq->err);
				return n;
			}
			sq->free = cmd->next_free;
			sq->head = (sq->head + 1) % sq->size;
			WRITE_ONCE(sq->inflight, sq->inflight + 1);
			atomic_inc(&dev->inflight);
			sq->fetched++;
			n++;
			cmd->flags = 0;
			status = vnvme_exec(dev, cmd);
			if (status == VNVME_STATUS_RETRY) {
				vnvme_unfetch(dev, cmd);
				return n - 1;
			}
			if (status != VNVME_STATUS_ASYNC)
				vnvme_finish(dev, cmd, status);
		}
		/* While polling nobody needs the guest to ring. */
		if (!dev->eis || polling)
			break;
		/*
		 * Drained: the guest must ring the doorbell for the next entry.
		 * The barrier orders the EventIdx store before the tail reload,
		 * pairing with the guest's barrier between its shadow tail
		 * store and its EventIdx load.
		 */
		vnvme_write_ei(dev, 2 * sq->qid, sq->head);
		/* Pairs with the guest's mb in nvme_dbbuf_update_and_check_event(). */
		smp_mb();
		vnvme_sq_refresh(dev, sq);
		if (sq->head == sq->tail)
			break;
	}
	return n;
}

/*
 * Worker: the entries the guest queued in @sq, being deleted, that were
 * not fetched are completed with Command Aborted due to SQ Deletion, as
 * far as the CQ has room (the rest are dropped: the guest is deleting the
 * queue, and a full CQ cannot take them); a broken ring drops them all.
 * (A delete that discards them never gets here.)  The delete then only
 * waits for what is in flight.
 */
static void vnvme_abort_sq(struct vnvme_dev *dev, struct vnvme_sq *sq)
{
	struct vnvme_cq *cq = sq->cq;

	if (!sq->broken && !cq->broken && dev->dbs) {
		vnvme_sq_refresh(dev, sq);
		while (sq->head != sq->tail && vnvme_cq_reserve(dev, cq)) {
			u16 __user *cid = sq->ring + (size_t)sq->head *
					  VNVME_SQE_SIZE +
					  offsetof(struct nvme_common_command,
						   command_id);
			u16 id;

			cq->reserved--;
			if (get_user(id, cid)) {
				sq->broken = true;
				vnvme_queue_fault(sq->err);
				break;
			}
			sq->head = (sq->head + 1) % sq->size;
			vnvme_post_cqe(sq, id, NVME_SC_ABORT_QUEUE);
			sq->aborted++;
			sq->errors++;
		}
	}
	/* Read locklessly by the waits in delete */
	WRITE_ONCE(sq->abort_done, true);
	if (!sq->inflight)
		vnvme_sq_drained(dev, sq);
}

/* Worker: abort the unfetched entries of its SQs being deleted. */
static void vnvme_abort_all(struct vnvme_worker *worker)
{
	struct vnvme_dev *dev = worker->dev;
	unsigned int qid;

	worker->abort = false;
	for (qid = 1; qid <= dev->max_qid; qid++) {
		struct vnvme_sq *sq = dev->sq[qid];

		if (sq && sq->worker == worker && sq->deleting &&
		    !sq->abort_done)
			vnvme_abort_sq(dev, sq);
	}
}

static bool vnvme_fetch_all(struct vnvme_worker *worker, unsigned int *n)
{
	struct vnvme_dev *dev = worker->dev;
	unsigned int total = 0, i, qid;
	bool more = false;

	for (i = 0; i < dev->max_qid; i++) {
		struct vnvme_sq *sq;

		qid = (worker->rr + i) % dev->max_qid + 1;
		sq = dev->sq[qid];
		if (!sq || sq->worker != worker)
			continue;
		total += vnvme_fetch_sq(dev, sq, VNVME_SQ_BURST, &more);
		if (total >= VNVME_PASS_WEIGHT) {
			worker->rr = qid % dev->max_qid;
			more = true;
			break;
		}
	}
	*n = total;
	return more;
}

/*
 * Signal the irqfd of each CQ of @worker that got entries, unless
 * interrupt coalescing holds it back: then arm the timer for the earliest
 * deadline.  An Aggregation Time of 0 means no delay (NVMe Feature 08h), so
 * a threshold alone never holds an interrupt back.  A full CQ with no kick
 * eventfd learns of a new head only by reading the doorbell again: the
 * timer brings the worker back every VNVME_CQ_RECHECK_NS while it is full.
 */
static void vnvme_signal_cqs(struct vnvme_worker *worker)
{
	struct vnvme_dev *dev = worker->dev;
	ktime_t now = 0, next = KTIME_MAX;
	unsigned int qid;

	if (worker->frozen) {
		worker->frozen = false;
		now = ktime_get();
		next = ktime_add_ns(now, VNVME_FROZEN_RECHECK_NS);
	}
	for (qid = 1; qid <= dev->max_qid; qid++) {
		struct vnvme_cq *cq = dev->cq[qid];

		if (!cq || cq->worker != worker)
			continue;
		if (cq->full && !cq->kick.ctx) {
			if (!now)
				now = ktime_get();
			next = min_t(ktime_t, next,
				     ktime_add_ns(now, VNVME_CQ_RECHECK_NS));
		}
		if (!cq->need_irq)
			continue;
		if (cq->coal_thr > 1 && cq->pending < cq->coal_thr &&
		    !cq->full && cq->coal_ns) {
			if (!now)
				now = ktime_get();
			if (ktime_before(now, cq->first_pending + cq->coal_ns)) {
				next = min_t(ktime_t, next,
					     cq->first_pending + cq->coal_ns);
				continue;
			}
		}
		cq->need_irq = false;
		cq->pending = 0;
		if (cq->ien && cq->irq)
			vnvme_eventfd_signal(cq->irq);
	}
	if (next != KTIME_MAX)
		hrtimer_start(&worker->coal_timer, next, HRTIMER_MODE_ABS);
}

/*
 * One pass of a worker.  Returns true if it should run again at once
 * (budget exhausted); sets *@work if it fetched or posted anything.
 */
static bool vnvme_run(struct vnvme_worker *worker, bool *work)
{
	struct vnvme_dev *dev = worker->dev;
	unsigned int fetched = 0;
	struct blk_plug plug;
	bool more = false;

	down_read(&dev->io_lock);
	if (!list_empty(&worker->polled))
		vnvme_poll_bios(worker);
	*work = vnvme_reap(worker);
	if (worker->abort)
		vnvme_abort_all(worker);
	if (!dev->quiesced && dev->dbs) {
		blk_start_plug(&plug);
		more = vnvme_fetch_all(worker, &fetched);
		blk_finish_plug(&plug);
		*work |= vnvme_reap(worker) || fetched;
	}
	vnvme_signal_cqs(worker);
	up_read(&dev->io_lock);
	return more;
}

/**
 * vnvme_wake - make a worker run a pass
 * @worker: the worker
 *
 * Any context.
 */
void vnvme_wake(struct vnvme_worker *worker)
{
	set_bit(VNVME_KICKED, &worker->flags);
	wake_up_process(worker->task);
}

/**
 * vnvme_wake_all - make every worker of a device run a pass
 * @dev: the device; caller holds dev->mutex or io_lock (workers come and go
 *	 only with both held)
 */
void vnvme_wake_all(struct vnvme_dev *dev)
{
	unsigned int i;

	for (i = 0; i < dev->nr_workers; i++)
		vnvme_wake(dev->workers[i]);
}

/*
 * Adapt the polling window to how long the worker waited for work, the
 * way KVM adapts halt polling: @idle_ns is the time from the last pass with
 * work to this one, which the worker spent partly polling and then asleep.
 * Work that came later than the budget means polling could not have caught
 * it: the window drops to zero, and the worker sleeps right after its work,
 * as without polling.  Work that came within the budget but after the window
 * would have been caught by a longer window: it doubles, up to the budget.
 */
static void vnvme_poll_adapt(struct vnvme_worker *worker, u64 budget_ns,
			     u64 idle_ns)
{
	if (idle_ns > budget_ns)
		worker->poll_win_ns = 0;
	else if (idle_ns > worker->poll_win_ns)
		worker->poll_win_ns = min(budget_ns,
					  max(2 * worker->poll_win_ns,
					      (u64)VNVME_POLL_START_NS));
}

/*
 * The worker thread.  It runs in the owner's address space until
 * kthread_stop().  After a pass that found work it keeps polling for its
 * current window (at most dev->poll_ns; see vnvme_poll_adapt()), leaving
 * EventIdx alone, then runs one pass that re-arms EventIdx and sleeps until
 * a kick, a completion or the coalescing timer.
 */
static int vnvme_worker_fn(void *data)
{
	struct vnvme_worker *worker = data;
	struct vnvme_dev *dev = worker->dev;
	struct mem_cgroup *old_memcg;

	kthread_use_mm(dev->mm);
	/*
	 * A kthread's __GFP_ACCOUNT allocations are charged to nobody
	 * unless a memcg is active: charge the owner's.
	 */
	old_memcg = set_active_memcg(dev->memcg);
	for (;;) {
		u64 poll_ns;
		ktime_t now;
		bool work;

		set_current_state(TASK_INTERRUPTIBLE);
		if (kthread_should_stop()) {
			__set_current_state(TASK_RUNNING);
			break;
		}
		/* Polled bios complete only when the worker polls for them. */
		if (!test_and_clear_bit(VNVME_KICKED, &worker->flags) &&
		    !worker->polling && list_empty(&worker->polled)) {
			schedule();
			continue;
		}
		__set_current_state(TASK_RUNNING);
		if (vnvme_run(worker, &work))
			set_bit(VNVME_KICKED, &worker->flags);
		now = ktime_get();
		poll_ns = READ_ONCE(dev->poll_ns);
		if (poll_ns != worker->poll_budget_ns) {
			/* A new budget starts with a full window, now. */
			worker->poll_budget_ns = poll_ns;
			worker->poll_win_ns = poll_ns;
			worker->last_work = now;
		}
		if (work) {
			if (poll_ns && !worker->polling)
				vnvme_poll_adapt(worker, poll_ns,
						 now - worker->last_work);
			worker->last_work = now;
		}
		if (worker->poll_win_ns &&
		    now - worker->last_work < worker->poll_win_ns) {
			worker->polling = true;
		} else if (worker->polling) {
			/* Stop polling: one more pass to re-arm EventIdx. */
			worker->polling = false;
			set_bit(VNVME_KICKED, &worker->flags);
		}
		cond_resched();
	}
	set_active_memcg(old_memcg);
	kthread_unuse_mm(dev->mm);
	return 0;
}

static enum hrtimer_restart vnvme_coal_timer_fn(struct hrtimer *timer)
{
	struct vnvme_worker *worker = container_of(timer, struct vnvme_worker,
						   coal_timer);

	vnvme_wake(worker);
	return HRTIMER_NORESTART;
}

/**
 * vnvme_worker_create - create and start a worker for a device
 * @dev: the device; the caller is its owner and holds dev->mutex
 *
 * The worker runs in the owner's address space and is attached to the
 * owner's cgroups, so its work is charged to the VMM.
 *
 * Return: the worker or an ERR_PTR().
 */
struct vnvme_worker *vnvme_worker_create(struct vnvme_dev *dev)
{
	struct vnvme_worker *worker;
	int ret;

	worker = kzalloc(sizeof(*worker), GFP_KERNEL_ACCOUNT);
	if (!worker)
		return ERR_PTR(-ENOMEM);
	worker->dev = dev;
	init_llist_head(&worker->done);
	INIT_LIST_HEAD(&worker->polled);
	hrtimer_init(&worker->coal_timer, CLOCK_MONOTONIC, HRTIMER_MODE_ABS);
	worker->coal_timer.function = vnvme_coal_timer_fn;
	worker->scratch = kmalloc(2 * VNVME_PAGE_SIZE, GFP_KERNEL_ACCOUNT);
	if (!worker->scratch) {
		ret = -ENOMEM;
		goto out_free;
	}
	worker->task = kthread_create(vnvme_worker_fn, worker, "vhost-nvme-%d",
				      current->pid);
	if (IS_ERR(worker->task)) {
		ret = PTR_ERR(worker->task);
		goto out_free;
	}
	ret = cgroup_attach_task_all(current, worker->task);
	if (ret)
		goto out_stop;
	wake_up_process(worker->task);
	return worker;

out_stop:
	kthread_stop(worker->task);
out_free:
	kfree(worker->scratch);
	kfree(worker);
	return ERR_PTR(ret);
}

/**
 * vnvme_worker_destroy - stop and free a worker
 * @worker: a worker with nothing in flight and no kick left that could
 *	    wake it
 */
void vnvme_worker_destroy(struct vnvme_worker *worker)
{
	hrtimer_cancel(&worker->coal_timer);
	kthread_stop(worker->task);
	kfree(worker->scratch);
	kfree(worker);
}

/* ---------------------------------------------------------------------- */
/* Kick eventfds */

static int vnvme_kick_wakeup(wait_queue_entry_t *wait, unsigned int mode,
			     int sync, void *key)
{
	struct vnvme_kick *kick = container_of(wait, struct vnvme_kick, wait);
	u64 cnt;

	if (!(key_to_poll(key) & EPOLLIN))
		return 0;
	/* Called with the eventfd's wait queue lock held. */
	eventfd_ctx_do_read(kick->ctx, &cnt);
	vnvme_wake(kick->worker);
	return 0;
}

static void vnvme_kick_queue_proc(struct file *file, wait_queue_head_t *wqh,
				  poll_table *pt)
{
	struct vnvme_kick *kick = container_of(pt, struct vnvme_kick, table);

	kick->wqh = wqh;
	add_wait_queue(wqh, &kick->wait);
}

/**
 * vnvme_kick_init - prepare a kick that is not polled yet
 * @kick: the kick
 * @worker: the worker it wakes
 */
void vnvme_kick_init(struct vnvme_kick *kick, struct vnvme_worker *worker)
{
	kick->worker = worker;
	kick->wqh = NULL;
	kick->file = NULL;
	kick->ctx = NULL;
	init_waitqueue_func_entry(&kick->wait, vnvme_kick_wakeup);
	init_poll_funcptr(&kick->table, vnvme_kick_queue_proc);
}

/**
 * vnvme_kick_start - start waking the worker on writes to an eventfd
 * @kick: an initialised kick
 * @fd: the eventfd
 *
 * Return: 0, -EBADF if @fd is not open, -EINVAL if it is not an eventfd.
 */
int vnvme_kick_start(struct vnvme_kick *kick, int fd)
{
	struct eventfd_ctx *ctx;
	struct file *file;
	__poll_t mask;

	file = fget(fd);
	if (!file)
		return -EBADF;
	ctx = eventfd_ctx_fileget(file);
	if (IS_ERR(ctx)) {
		fput(file);
		return PTR_ERR(ctx);
	}
	kick->file = file;
	kick->ctx = ctx;
	mask = vfs_poll(file, &kick->table);
	if (mask & EPOLLIN)
		vnvme_wake(kick->worker);
	return 0;
}

/**
 * vnvme_kick_stop - stop polling and drop the eventfd
 * @kick: the kick; may be initialised but never started
 */
void vnvme_kick_stop(struct vnvme_kick *kick)
{
	if (kick->wqh) {
		remove_wait_queue(kick->wqh, &kick->wait);
		kick->wqh = NULL;
	}
	if (kick->ctx) {
		eventfd_ctx_put(kick->ctx);
		kick->ctx = NULL;
	}
	if (kick->file) {
		fput(kick->file);
		kick->file = NULL;
	}
}
