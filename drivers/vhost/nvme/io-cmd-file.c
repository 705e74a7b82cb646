// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-nvme: NVMe I/O commands on a regular file namespace.  Direct I/O
 * is an asynchronous kiocb submitted by the worker; what blocks (buffered
 * I/O that misses the page cache, fsync, fallocate) runs on dev->helper,
 * a kthread_worker in the owner's cgroups.
 */
#include <linux/kernel.h>
#include <linux/fs.h>
#include <linux/falloc.h>
#include <linux/file.h>
#include <linux/uio.h>
#include <linux/memcontrol.h>

#include "vnvme.h"

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
	/* As loop does (call_{read,write}_iter() are gone since 6.10) */
	if (write)
		return file->f_op->write_iter(&cmd->iocb, &iter);
	return file->f_op->read_iter(&cmd->iocb, &iter);
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

/*
 * Worker: hand a file operation that blocks to dev->helper, which the
 * owner's cgroups account and limit like the worker; the worker goes on.
 */
static void vnvme_queue_file_work(struct vnvme_cmd *cmd)
{
	kthread_init_work(&cmd->work, vnvme_file_work);
	/* Set before the first file namespace was published */
	kthread_queue_work(READ_ONCE(cmd->sq->dev->helper), &cmd->work);
}

/**
 * vnvme_file_submit_flush - Flush on a file: fsync on the helper
 * @cmd: the command
 *
 * Worker.
 */
void vnvme_file_submit_flush(struct vnvme_cmd *cmd)
{
	cmd->status = 0;
	vnvme_queue_file_work(cmd);
}

/**
 * vnvme_file_submit_write_zeroes - Write Zeroes on a file: fallocate on
 *	the helper
 * @cmd: a validated Write Zeroes
 *
 * Worker.
 */
void vnvme_file_submit_write_zeroes(struct vnvme_cmd *cmd)
{
	vnvme_queue_file_work(cmd);
}

/**
 * vnvme_file_submit_discard - Deallocate on a file: holes punched on the
 *	helper, from a copy of the ranges charged to the device
 * @dev: the device
 * @cmd: a validated DSM with the Deallocate attribute
 * @range: its ranges, checked (in the worker's scratch page)
 * @nr: how many
 *
 * Worker.
 *
 * Return: VNVME_STATUS_ASYNC, VNVME_STATUS_RETRY or an NVMe status.
 */
u16 vnvme_file_submit_discard(struct vnvme_dev *dev, struct vnvme_cmd *cmd,
			      const struct nvme_dsm_range *range,
			      unsigned int nr)
{
	u16 status;

	status = vnvme_charge(dev, cmd, VNVME_PAGE_SIZE);
	if (status)
		return status;
	cmd->ranges = kmemdup(range, nr * sizeof(*range), GFP_KERNEL_ACCOUNT);
	if (!cmd->ranges) {
		vnvme_uncharge(dev, VNVME_PAGE_SIZE);
		return NVME_SC_INTERNAL;
	}
	vnvme_queue_file_work(cmd);
	return VNVME_STATUS_ASYNC;
}

/**
 * vnvme_file_submit_rw - Read or Write on a file
 * @dev: the device
 * @cmd: a validated command with its data mapped
 * @slba: first logical block
 * @len: bytes
 * @write: a Write
 * @fua: force unit access (a Write only)
 *
 * Worker.  Direct I/O is submitted here and completes in vnvme_kiocb_end();
 * buffered I/O is done here if it needs no waiting, else on the helper.
 *
 * Return: VNVME_STATUS_ASYNC, VNVME_STATUS_RETRY or an NVMe status.
 */
u16 vnvme_file_submit_rw(struct vnvme_dev *dev, struct vnvme_cmd *cmd,
			 u64 slba, u32 len, bool write, bool fua)
{
	struct vnvme_ns *ns = cmd->ns;
	struct super_block *sb = file_inode(ns->file)->i_sb;
	loff_t pos = slba << ns->lba_shift;
	ssize_t ret;
	u16 status;

	if (rw_verify_area(write ? WRITE : READ, ns->file, &pos, len))
		return NVME_SC_ACCESS_DENIED | NVME_SC_DNR;
	/*
	 * Freeze protection, as a write(2) has: while the file system is
	 * frozen the write stays in its SQ (never blocking the worker) and is
	 * tried again every VNVME_FROZEN_RECHECK_NS.
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

	status = vnvme_bounce(dev, cmd, len, write);
	if (status) {
		if (cmd->flags & VNVME_CMD_SB_WRITE) {
			cmd->flags &= ~VNVME_CMD_SB_WRITE;
			init_sync_kiocb(&cmd->iocb, ns->file);
			kiocb_end_write(&cmd->iocb);
		}
		return status;
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
