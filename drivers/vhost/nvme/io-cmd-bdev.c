// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-nvme: NVMe I/O commands on a block device namespace.  Everything
 * is an asynchronous bio (or chain) submitted by the worker, so charged to
 * the owner's cgroups; completions come back through vnvme_cmd_done().
 */
#include <linux/kernel.h>
#include <linux/blkdev.h>

#include "vnvme.h"

/*
 * What the block layer allocates for a bio chain, counted against the
 * device's cap (dev->bounce_max) like bounce pages: a bio from fs_bio_set,
 * and, for the zero-page fallback of Write Zeroes, a full bvec array.  A
 * guest's Write Zeroes and Deallocate commands would otherwise hold host
 * memory no cgroup sees, up to SQ entries x 256 MiB of zero-page bios.
 */
#define VNVME_BIO_COST		256L
#define VNVME_ZERO_BIO_COST	(VNVME_BIO_COST + \
				 BIO_MAX_VECS * (long)sizeof(struct bio_vec))

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

/**
 * vnvme_bdev_poll - poll for the worker's polled bios
 * @worker: the worker
 *
 * Each backend queue is polled once per pass (one poll reaps every
 * completion of that hardware queue; bios of one queue mostly sit next to
 * each other on the list).  The bios are inline in command slots that stay
 * allocated until the worker itself posts them, so none is freed under
 * bio_poll(); a completed one merely polls its queue once more.
 */
void vnvme_bdev_poll(struct vnvme_worker *worker)
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

/**
 * vnvme_bdev_resubmit - submit a polled bio that found no free tag again
 * @cmd: the command, which was polled; it is not any more
 *
 * Worker.
 */
void vnvme_bdev_resubmit(struct vnvme_cmd *cmd)
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

/**
 * vnvme_bdev_submit_flush - Flush on a block device
 * @cmd: the command
 *
 * Worker.
 */
void vnvme_bdev_submit_flush(struct vnvme_cmd *cmd)
{
	cmd->status = 0;
	bio_init(&cmd->bio, cmd->ns->bdev, NULL, 0,
		 REQ_OP_WRITE | REQ_PREFLUSH);
	cmd->flags |= VNVME_CMD_BIO;
	cmd->bio.bi_private = cmd;
	cmd->bio.bi_end_io = vnvme_bio_end;
	submit_bio(&cmd->bio);
}

/**
 * vnvme_bdev_submit_rw - Read or Write on a block device
 * @dev: the device
 * @cmd: a validated command with its data mapped
 * @slba: first logical block
 * @len: bytes
 * @write: a Write
 * @fua: force unit access (a Write only)
 *
 * Worker.
 *
 * Return: VNVME_STATUS_ASYNC, VNVME_STATUS_RETRY or an NVMe status.
 */
u16 vnvme_bdev_submit_rw(struct vnvme_dev *dev, struct vnvme_cmd *cmd,
			 u64 slba, u32 len, bool write, bool fua)
{
	blk_opf_t opf = write ? REQ_OP_WRITE | REQ_SYNC | REQ_IDLE :
				REQ_OP_READ;
	struct vnvme_ns *ns = cmd->ns;
	struct bio_vec *bvecs = cmd->bvecs;
	unsigned int nr_bvecs = cmd->nr_bvecs;
	u16 status;

	status = vnvme_bounce(dev, cmd, len, write);
	if (status)
		return status;
	if (cmd->bounce) {
		bvecs = cmd->bounce->bv;
		nr_bvecs = cmd->bounce->nr;
	}
	if (fua)
		opf |= REQ_FUA;
	/*
	 * While the worker polls, and where the backend has poll queues, the
	 * worker polls for the completion too (no interrupt) and keeps
	 * polling until the bio completed.  No waiting for a tag then: the
	 * tags may all be held by polled bios that only this worker, blocked,
	 * would complete.
	 */
	if (cmd->sq->worker->polling && bdev_nowait(ns->bdev) &&
	    vnvme_bdev_can_poll(ns->bdev)) {
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
 * The most a Write Zeroes of @nr sectors allocates: the bios of
 * REQ_OP_WRITE_ZEROES, or those of the zero-page fallback.
 */
static long vnvme_zeroes_cost(struct block_device *bdev, sector_t nr)
{
	unsigned int lim = bdev_write_zeroes_sectors(bdev);
	long native = lim ? DIV_ROUND_UP_SECTOR_T(nr, lim) * VNVME_BIO_COST : 0;
	long pages = DIV_ROUND_UP_SECTOR_T(nr, PAGE_SECTORS * BIO_MAX_VECS) *
		     VNVME_ZERO_BIO_COST;

	return max(native, pages);
}

/**
 * vnvme_bdev_submit_write_zeroes - Write Zeroes on a block device
 * @dev: the device
 * @cmd: a validated Write Zeroes
 *
 * Worker.  A chain of bios from the block layer's helper, submitted like
 * every other I/O (so charged to the owner's cgroups, and never waited
 * for); the completion comes through vnvme_bdev_zero_next() for a fallback
 * or the flush of FUA.  What the chain may allocate is counted against the
 * device's cap first.
 *
 * Return: VNVME_STATUS_ASYNC or VNVME_STATUS_RETRY.
 */
u16 vnvme_bdev_submit_write_zeroes(struct vnvme_dev *dev,
				   struct vnvme_cmd *cmd)
{
	struct nvme_write_zeroes_cmd *wz = &cmd->sqe.write_zeroes;
	u16 control = le16_to_cpu(wz->control);
	struct vnvme_ns *ns = cmd->ns;
	u8 shift = ns->lba_shift - SECTOR_SHIFT;
	sector_t nr = (sector_t)(le16_to_cpu(wz->length) + 1) << shift;
	long cost = vnvme_zeroes_cost(ns->bdev, nr);
	struct bio *bio = NULL;
	u16 status;
	int ret;

	status = vnvme_charge(dev, cmd, cost);
	if (status)
		return status;
	cmd->charged = cost;
	cmd->status = 0;
	if ((control & NVME_RW_FUA) || ns->write_through)
		cmd->flags |= VNVME_CMD_FLUSH_AFTER;
	if (READ_ONCE(ns->no_write_zeroes)) {
		vnvme_zero_pages(cmd);
		return VNVME_STATUS_ASYNC;
	}
	/* Deallocate (DEAC) lets the device unmap; else keep blocks. */
	ret = __blkdev_issue_zeroout(ns->bdev, le64_to_cpu(wz->slba) << shift,
				     nr, GFP_KERNEL, &bio,
				     (control & VNVME_WZ_DEAC) ?
				     0 : BLKDEV_ZERO_NOUNMAP);
	vnvme_submit_chain(cmd, bio, ret);
	return VNVME_STATUS_ASYNC;
}

/**
 * vnvme_bdev_zero_next - start the next step of a Write Zeroes, if any
 * @cmd: a command the backend finished
 *
 * Worker.  Zero pages when the device refused REQ_OP_WRITE_ZEROES (a loop
 * device over a file system without FALLOC_FL_ZERO_RANGE does), then the
 * flush of FUA.
 *
 * Return: true if the command went back to the backend.
 */
bool vnvme_bdev_zero_next(struct vnvme_cmd *cmd)
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
		vnvme_bdev_submit_flush(cmd);
		return true;
	}
	return false;
}

/**
 * vnvme_bdev_submit_discard - Deallocate on a block device
 * @dev: the device
 * @cmd: a validated DSM with the Deallocate attribute
 * @range: its ranges, checked
 * @nr: how many
 *
 * Worker.  A device that cannot discard does nothing: deallocation is
 * advisory.  The bios the chain may take (one per discard limit of each
 * range, and one for alignment) are counted against the device's cap.
 *
 * Return: VNVME_STATUS_ASYNC, VNVME_STATUS_RETRY or an NVMe status.
 */
u16 vnvme_bdev_submit_discard(struct vnvme_dev *dev, struct vnvme_cmd *cmd,
			      const struct nvme_dsm_range *range,
			      unsigned int nr)
{
	struct vnvme_ns *ns = cmd->ns;
	unsigned int lim = bdev_max_discard_sectors(ns->bdev);
	u8 shift = ns->lba_shift - SECTOR_SHIFT;
	struct bio *bio = NULL;
	unsigned int i;
	long cost = 0;
	u16 status;
	int ret = 0;

	if (!lim)
		return NVME_SC_SUCCESS;
	for (i = 0; i < nr; i++)
		cost += (DIV_ROUND_UP_SECTOR_T((sector_t)le32_to_cpu(range[i].nlb)
					       << shift, lim) + 1) *
			VNVME_BIO_COST;
	status = vnvme_charge(dev, cmd, cost);
	if (status)
		return status;
	cmd->charged = cost;
	for (i = 0; i < nr && !ret; i++) {
		u32 nlb = le32_to_cpu(range[i].nlb);

		if (!nlb)
			continue;
		ret = vnvme_issue_discard(ns->bdev,
					  le64_to_cpu(range[i].slba) << shift,
					  (sector_t)nlb << shift, &bio);
	}
	if (!bio)
		return vnvme_errno_status(ret, nvme_cmd_dsm);
	vnvme_submit_chain(cmd, bio, ret);
	return VNVME_STATUS_ASYNC;
}
