// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-nvme: guest memory.  The memory table, pinning guest pages into a
 * command's bvecs, bounce buffers for what the backend cannot take as it
 * is, and the per-device cap on the memory commands hold.
 */
#include <linux/kernel.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/uaccess.h>
#include <linux/blkdev.h>
#include <linux/bsearch.h>
#include <linux/uio.h>

#include "vnvme.h"

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

/**
 * vnvme_log_pages_needed - guest pages a dirty log must have a bit for
 * @mem: memory table
 *
 * Return: the page number just above the table's highest region.
 */
u64 vnvme_log_pages_needed(const struct vnvme_memtable *mem)
{
	const struct vnvme_region *r;

	if (!mem->nr)
		return 0;
	r = &mem->r[mem->nr - 1];	/* sorted by gpa, not overlapping */
	return DIV_ROUND_UP_ULL(r->gpa + r->size, VNVME_PAGE_SIZE);
}

/**
 * vnvme_log_write - log guest pages the device wrote
 * @log: the dirty log
 * @gpa: guest address written
 * @len: bytes written, not zero
 *
 * Sets the bit of each page in the owner's bitmap, atomically (the VMM
 * clears them concurrently), one pinned log page at a time, as vhost's
 * set_bit_to_user() does.  Needs the owner's mm: a worker, or the owner in
 * an ioctl.
 *
 * Return: 0, or -EFAULT if the log does not cover the range or a log page
 * cannot be written.
 */
int vnvme_log_write(const struct vnvme_log *log, u64 gpa, u64 len)
{
	u64 first = gpa >> VNVME_PAGE_SHIFT;
	u64 last = (gpa + len - 1) >> VNVME_PAGE_SHIFT;

	if (last < first || last >= log->pages)
		return -EFAULT;
	while (first <= last) {
		u64 byte = log->uaddr + first / BITS_PER_BYTE;
		unsigned long bit = offset_in_page(byte) * BITS_PER_BYTE +
				    first % BITS_PER_BYTE;
		u64 n = min_t(u64, last - first + 1, PAGE_SIZE * BITS_PER_BYTE - bit);
		struct page *page;
		unsigned long *base;
		u64 i;

		if (pin_user_pages_fast(byte & PAGE_MASK, 1, FOLL_WRITE,
					&page) != 1)
			return -EFAULT;
		base = kmap_local_page(page);
		for (i = 0; i < n; i++)
			set_bit(bit + i, base);
		kunmap_local(base);
		unpin_user_pages_dirty_lock(&page, 1, true);
		first += n;
	}
	return 0;
}

/*
 * Record [@gpa, @gpa + @len) in @cmd's log of the pages a Read writes,
 * page by page (at most MDTS of them), each merged into the last run when
 * it is in it or continues it.
 */
static u16 vnvme_log_record(struct vnvme_cmd *cmd, u64 gpa, u32 len)
{
	const u64 mask = VNVME_PAGE_SIZE - 1;
	u64 pfn = gpa >> VNVME_PAGE_SHIFT;
	u64 last = (gpa + len - 1) >> VNVME_PAGE_SHIFT;

	for (; pfn <= last; pfn++) {
		if (cmd->nr_log) {
			u64 *run = &cmd->log[cmd->nr_log - 1];
			u64 start = *run >> VNVME_PAGE_SHIFT;
			u64 n = (*run & mask) + 1;

			if (pfn >= start && pfn < start + n)
				continue;
			if (pfn == start + n && n < VNVME_LOG_RUN_MAX) {
				(*run)++;
				continue;
			}
		}
		if (cmd->nr_log == VNVME_MAX_BVECS)
			return NVME_SC_SGL_INVALID_COUNT | NVME_SC_DNR;
		cmd->log[cmd->nr_log++] = pfn << VNVME_PAGE_SHIFT;
	}
	return 0;
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
	const struct vnvme_memtable *mem = vnvme_pass_mem(m->dev);

	vnvme_assert_pass(m->cmd->sq->worker);

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

		if (m->write && !m->copy) {
			status = vnvme_log_record(m->cmd, gpa, chunk);
			if (status)
				return status;
		}
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
	void __user *p = vnvme_gpa_to_uaddr(vnvme_pass_mem(m->dev), gpa, len);

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

/**
 * vnvme_charge - count memory a command holds against the device's cap
 * @dev: the device
 * @cmd: the command
 * @cost: bytes of copies it holds (bounce pages, DSM ranges for the helper)
 *
 * Worker.  Past dev->bounce_max the command waits in its SQ; a device with
 * nothing charged always gets it (the cap is at least MDTS).
 *
 * Return: 0, or VNVME_STATUS_RETRY to leave the command in its SQ.
 */
u16 vnvme_charge(struct vnvme_dev *dev, struct vnvme_cmd *cmd, long cost)
{
	if (atomic_long_add_return(cost, &dev->bounce_used) >
	    READ_ONCE(dev->bounce_max) &&
	    atomic_long_read(&dev->bounce_used) != cost) {
		atomic_long_sub(cost, &dev->bounce_used);
		WRITE_ONCE(dev->bounce_wait, true);
		/*
		 * Freed meanwhile? Then nobody would wake us: retry at once.
		 * The store above before the load below, as vnvme_uncharge()
		 * orders its sub before its load of bounce_wait: one of the two
		 * sees the other.
		 */
		smp_mb();
		if (!atomic_long_read(&dev->bounce_used))
			vnvme_wake(cmd->sq->worker);
		return VNVME_STATUS_RETRY;
	}
	return 0;
}

/**
 * vnvme_uncharge - undo vnvme_charge()
 * @dev: the device
 * @cost: what was charged
 *
 * Worker or helper.
 */
void vnvme_uncharge(struct vnvme_dev *dev, long cost)
{
	atomic_long_sub(cost, &dev->bounce_used);
	/*
	 * Commands left in their SQs for lack of memory can go on.  Pairs
	 * with the barrier in vnvme_charge().
	 */
	smp_mb__after_atomic();
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

/**
 * vnvme_release_data - let go of the data of a finished command
 * @cmd: the command
 *
 * Worker: copies bounced read data back to the guest (a failed copy sets
 * cmd->status), logs the pages the device wrote while logging is on (a
 * log it cannot write stops the CQ), frees copies and unpins guest pages.
 */
void vnvme_release_data(struct vnvme_cmd *cmd)
{
	struct vnvme_log *log;
	unsigned int i;

	if (cmd->charged) {
		vnvme_uncharge(cmd->sq->dev, cmd->charged);
		cmd->charged = 0;
	}
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
	log = cmd->nr_log && (cmd->flags & VNVME_CMD_DIRTY) ?
	      vnvme_pass_log(cmd->sq->dev) : NULL;
	for (i = 0; log && i < cmd->nr_log; i++) {
		u64 run = cmd->log[i];
		u64 n = (run & (VNVME_PAGE_SIZE - 1)) + 1;

		if (vnvme_log_write(log, run & ~(u64)(VNVME_PAGE_SIZE - 1),
				    n * VNVME_PAGE_SIZE)) {
			vnvme_cq_fault(cmd->sq->cq);
			break;
		}
	}
	cmd->nr_log = 0;
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

/**
 * vnvme_map_data - map a command's data pointer
 * @dev: the device
 * @cmd: the command
 * @len: bytes of data
 * @write: the device writes guest memory (a Read command)
 * @copy: if set, copy the data there (DSM ranges) rather than pin it
 *
 * Worker, in a pass.
 *
 * Return: 0 or an NVMe status.
 */
u16 vnvme_map_data(struct vnvme_dev *dev, struct vnvme_cmd *cmd, u32 len,
		   bool write, void *copy)
{
	struct nvme_common_command *c = &cmd->sqe.common;
	struct vnvme_map m = {
		.dev = dev,
		.cmd = cmd,
		.write = write,
		.copy = copy,
	};
	u16 status;

	vnvme_assert_pass(cmd->sq->worker);
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

/**
 * vnvme_bounce - bounce a command's data if the backend cannot take it
 * @dev: the device
 * @cmd: a command with its data mapped
 * @len: bytes of data
 * @write: a Write: copy the guest data into the bounce pages now
 *
 * Worker.  On success the backend takes cmd->bounce's pages if there are
 * any, else cmd->bvecs.
 *
 * Return: 0, VNVME_STATUS_RETRY past the device's cap, or an NVMe status.
 */
u16 vnvme_bounce(struct vnvme_dev *dev, struct vnvme_cmd *cmd, u32 len,
		 bool write)
{
	if (!vnvme_needs_bounce(cmd))
		return 0;
	return vnvme_bounce_alloc(dev, cmd, len, write);
}
