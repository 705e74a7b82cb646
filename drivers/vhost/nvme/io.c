// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-nvme data plane: command fetch and decode, completion posting,
 * doorbells and SQ deletion.  The backends are in io-cmd-bdev.c and
 * io-cmd-file.c, guest memory in mem.c, the worker thread in worker.c.
 */
#include <linux/kernel.h>
#include <linux/uaccess.h>
#include <linux/blkdev.h>
#include <linux/nospec.h>

#include "vnvme.h"
#include "queue.h"

/* Commands fetched from one SQ before moving to the next. */
#define VNVME_SQ_BURST		32
/* Commands fetched in one pass before the worker yields. */
#define VNVME_PASS_WEIGHT	256

/* ---------------------------------------------------------------------- */
/* Completion */

/**
 * vnvme_blk_status - the NVMe status of a block layer status
 * @sts: the block layer's status
 * @opcode: the command's opcode
 *
 * Return: an NVMe status.
 */
u16 vnvme_blk_status(blk_status_t sts, u8 opcode)
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

/**
 * vnvme_cmd_done - hand a command the backend finished back to its worker
 * @cmd: the command, cmd->status set
 *
 * Any context.  Once it is on the list the worker may post it and teardown
 * may proceed: the RCU read side section keeps the worker alive until
 * vnvme_wake() returns (see vnvme_reset()).
 */
void vnvme_cmd_done(struct vnvme_cmd *cmd)
{
	struct vnvme_worker *worker = cmd->sq->worker;

	rcu_read_lock();
	llist_add(&cmd->lnode, &worker->done);
	/* Inline in the worker's own pass, which reaps next: no wake-up */
	if (!in_task() || READ_ONCE(worker->reaps_next) != current)
		vnvme_wake(worker);
	rcu_read_unlock();
}

/* Worker: a queue stopped on a guest fault; tell the VMM if it asked. */
static void vnvme_queue_fault(struct eventfd_ctx *err)
{
	if (err)
		vnvme_eventfd_signal(err);
}

/**
 * vnvme_cq_fault - stop a CQ that can no longer be written (or logged)
 * @cq: the completion queue
 *
 * Worker.  Nothing more is posted to it; its error eventfd is signalled.
 */
void vnvme_cq_fault(struct vnvme_cq *cq)
{
	vnvme_assert_pass(cq->worker);
	if (cq->broken)
		return;
	cq->broken = true;
	vnvme_queue_fault(cq->err);
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
	__le32 sq_id_head = cpu_to_le32(sq->head | (u32)sq->qid << 16);
	struct vnvme_log *log;
	u32 __user *p;
	u32 last;

	vnvme_assert_pass(sq->worker);
	if (cq->broken)
		return;
	dw3.command_id = cid;
	dw3.status = cpu_to_le16(status << 1 | cq->phase);
	memcpy(&last, &dw3, sizeof(last));
	p = cq->ring + (size_t)cq->tail * VNVME_CQE_SIZE;
	/* The whole entry in one user access section */
	if (!user_access_begin(p, VNVME_CQE_SIZE))
		goto fault;
	unsafe_put_user(0, p, fault_end);	/* command specific result */
	unsafe_put_user(0, p + 1, fault_end);
	unsafe_put_user(sq_id_head, (__le32 __user *)p + 2, fault_end);
	/* The phase tag goes last; pairs with the guest's read barrier. */
	smp_wmb();
	unsafe_put_user(last, p + 3, fault_end);
	user_access_end();
	log = vnvme_pass_log(sq->dev);
	if (log && vnvme_log_write(log, cq->gpa + (u64)cq->tail * VNVME_CQE_SIZE,
				   VNVME_CQE_SIZE)) {
		vnvme_guest_err("vhost-nvme: dirty log not writable\n");
		vnvme_cq_fault(cq);
		return;
	}
	if (++cq->tail == cq->size) {
		cq->tail = 0;
		cq->phase ^= 1;
	}
	cq->posted++;
	if (!cq->pending++ && cq->coal_ns)
		cq->first_pending = ktime_get();
	cq->need_irq = true;
	return;
fault_end:
	user_access_end();
fault:
	vnvme_guest_err("vhost-nvme: CQ %u not writable\n", cq->qid);
	vnvme_cq_fault(cq);
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

/* Worker: return @cmd's slot to its SQ's free list and its CQ reservation. */
static void vnvme_free_slot(struct vnvme_cmd *cmd)
{
	struct vnvme_sq *sq = cmd->sq;

	vnvme_assert_pass(sq->worker);
	sq->cq->reserved--;
	cmd->next_free = sq->free;
	sq->free = cmd - sq->cmds;
}

/*
 * Worker: @cmd, started, is done: free its slot, and wake whoever waits
 * for the SQ or the device to drain.
 */
static void vnvme_put_slot(struct vnvme_dev *dev, struct vnvme_cmd *cmd)
{
	struct vnvme_sq *sq = cmd->sq;
	bool wake = false;

	vnvme_free_slot(cmd);
	/* Read locklessly by the waits in delete and GET_QUEUE_STATE */
	WRITE_ONCE(sq->inflight, sq->inflight - 1);
	if (!sq->inflight) {
		if (sq->abort_done)
			vnvme_sq_drained(dev, sq);
		else
			wake = true;
	}
	if (atomic_dec_and_test(&dev->inflight)) {
		/* Put after a grace period: this pass may signal it. */
		struct eventfd_ctx *efd = READ_ONCE(dev->quiesce_efd);

		if (READ_ONCE(dev->quiesced) && efd)
			vnvme_eventfd_signal(efd);
		wake = true;
	}
	/*
	 * Every I/O at QD 1 gets here: no waitqueue lock without a waiter.
	 * The barrier in wq_has_sleeper() orders the counts above before the
	 * check, pairing with the one in the waiter's prepare_to_wait_event().
	 */
	if (wake && wq_has_sleeper(&dev->wq))
		wake_up_all(&dev->wq);
}

/* Worker: count a Read or Write that succeeded on its namespace. */
static void vnvme_count(struct vnvme_cmd *cmd)
{
	struct vnvme_ns_stats __percpu *st = cmd->ns->stats;
	u64 bytes = ((u64)le16_to_cpu(cmd->sqe.rw.length) + 1) <<
		    cmd->ns->lba_shift;

	switch (cmd->sqe.common.opcode) {
	case nvme_cmd_read:
		this_cpu_add(st->bytes_read, bytes);
		this_cpu_inc(st->reads);
		break;
	case nvme_cmd_write:
		this_cpu_add(st->bytes_written, bytes);
		this_cpu_inc(st->writes);
		break;
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
	if (cmd->ns && !cmd->status)
		vnvme_count(cmd);
	vnvme_put_ns(cmd);
	vnvme_post_cqe(sq, cmd->sqe.common.command_id, cmd->status);
	if (cmd->status)
		sq->errors++;
	vnvme_put_slot(dev, cmd);
}

/**
 * vnvme_reap - post everything the backend finished
 * @worker: the worker, in a pass
 *
 * Return: true if there was anything.
 */
bool vnvme_reap(struct vnvme_worker *worker)
{
	struct llist_node *list = llist_del_all(&worker->done);
	struct vnvme_dev *dev = worker->dev;
	struct vnvme_cmd *cmd, *tmp;

	vnvme_assert_pass(worker);
	list = llist_reverse_order(list);
	llist_for_each_entry_safe(cmd, tmp, list, lnode) {
		if (cmd->flags & VNVME_CMD_RESUBMIT)
			vnvme_bdev_resubmit(cmd);
		else if (!vnvme_bdev_zero_next(cmd))
			vnvme_finish(dev, cmd, cmd->status);
	}
	return list;
}

/* ---------------------------------------------------------------------- */
/* Backend submission */

/**
 * vnvme_errno_status - the NVMe status of an errno
 * @err: 0 or a negative errno
 * @opcode: the command's opcode
 *
 * Return: an NVMe status.
 */
u16 vnvme_errno_status(int err, u8 opcode)
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

/* ---------------------------------------------------------------------- */
/* Command decoding */

static u16 vnvme_get_ns(struct vnvme_dev *dev, struct vnvme_cmd *cmd)
{
	u32 nsid = le32_to_cpu(cmd->sqe.common.nsid);
	struct vnvme_ns *ns;

	if (!nsid || nsid > VNVME_MAX_NSID)
		return NVME_SC_INVALID_NS | NVME_SC_DNR;
	ns = srcu_dereference(dev->ns[array_index_nospec(nsid, VNVME_MAX_NSID + 1)],
			      &dev->srcu);
	/* The table's reference goes only after a grace period. */
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
	bool fua;

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
	fua = write && ((control & NVME_RW_FUA) || ns->write_through);
	if (ns->bdev)
		return vnvme_bdev_submit_rw(dev, cmd, slba, len, write, fua);
	return vnvme_file_submit_rw(dev, cmd, slba, len, write, fua);
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
	u64 wzsl = READ_ONCE(dev->wzsl_bytes);
	struct vnvme_ns *ns = cmd->ns;
	u16 status;

	if (control & ~VNVME_WZ_CONTROL_OK)
		return NVME_SC_INVALID_FIELD | NVME_SC_DNR;
	/* Beyond the WZSL the VMM advertises */
	if (wzsl && ((u64)nlb << ns->lba_shift) > wzsl)
		return NVME_SC_INVALID_FIELD | NVME_SC_DNR;
	status = vnvme_check_range(ns, slba, nlb);
	if (status)
		return status;
	if (ns->read_only)
		return NVME_SC_NS_WRITE_PROTECTED | NVME_SC_DNR;

	if (ns->bdev)
		return vnvme_bdev_submit_write_zeroes(dev, cmd);
	vnvme_file_submit_write_zeroes(cmd);
	return VNVME_STATUS_ASYNC;
}

static u16 vnvme_exec_dsm(struct vnvme_dev *dev, struct vnvme_cmd *cmd)
{
	struct nvme_dsm_cmd *dsm = &cmd->sqe.dsm;
	unsigned int i, nr = (le32_to_cpu(dsm->nr) & 0xff) + 1;
	/* The first scratch page may hold SGL segments while mapping. */
	struct nvme_dsm_range *range = cmd->sq->worker->scratch +
				       VNVME_PAGE_SIZE;
	u32 dmrl = READ_ONCE(dev->dmrl);
	u64 dmrsl = READ_ONCE(dev->dmrsl);
	struct vnvme_ns *ns = cmd->ns;
	u16 status;

	if (le32_to_cpu(dsm->nr) & ~0xffU)
		return NVME_SC_INVALID_FIELD | NVME_SC_DNR;
	/* Beyond the DMRL the VMM advertises */
	if (dmrl && nr > dmrl)
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
		if (dmrsl && le32_to_cpu(range[i].nlb) > dmrsl)
			return NVME_SC_INVALID_FIELD | NVME_SC_DNR;
		status = vnvme_check_range(ns, le64_to_cpu(range[i].slba),
					   le32_to_cpu(range[i].nlb));
		if (status)
			return status;
	}

	cmd->status = 0;
	if (ns->bdev)
		return vnvme_bdev_submit_discard(dev, cmd, range, nr);
	return vnvme_file_submit_discard(dev, cmd, range, nr);
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
		if (READ_ONCE(dev->features) & VHOST_NVME_F_SGL)
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
		if (!(READ_ONCE(dev->features) & VHOST_NVME_F_WRITE_ZEROES))
			return NVME_SC_INVALID_OPCODE | NVME_SC_DNR;
		break;
	case nvme_cmd_dsm:
		if (!(READ_ONCE(dev->features) & VHOST_NVME_F_DSM))
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
		if (cmd->ns->bdev)
			vnvme_bdev_submit_flush(cmd);
		else
			vnvme_file_submit_flush(cmd);
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

static bool vnvme_read_db(struct vnvme_worker *worker, unsigned int idx,
			  u32 *val)
{
	__le32 v;

	if (!worker->dbs || get_user(v, worker->dbs + idx))
		return false;
	*val = le32_to_cpu(v);
	return true;
}

/* Write EventIdx entry @idx; a dirty log it cannot write stops @cq. */
static void vnvme_write_ei(struct vnvme_worker *worker, unsigned int idx,
			   u16 val, struct vnvme_cq *cq)
{
	struct vnvme_log *log;

	if (!worker->eis)
		return;
	if (put_user(cpu_to_le32(val), worker->eis + idx)) {
		vnvme_guest_err("vhost-nvme: EventIdx buffer not writable\n");
		return;
	}
	log = vnvme_pass_log(worker->dev);
	if (log && vnvme_log_write(log, worker->ei_gpa + idx * sizeof(__le32),
				   sizeof(__le32))) {
		vnvme_guest_err("vhost-nvme: dirty log not writable\n");
		vnvme_cq_fault(cq);
	}
}

static void vnvme_sq_refresh(struct vnvme_sq *sq)
{
	u32 tail;

	if (!vnvme_read_db(sq->worker, 2 * sq->qid, &tail))
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

static void vnvme_cq_refresh(struct vnvme_cq *cq)
{
	u32 head;

	if (!vnvme_read_db(cq->worker, 2 * cq->qid + 1, &head) ||
	    head == cq->head)
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
static bool vnvme_cq_reserve(struct vnvme_cq *cq)
{
	if (!vnvme_cq_room(cq)) {
		vnvme_cq_refresh(cq);
		if (!vnvme_cq_room(cq) && cq->worker->eis) {
			/* Ask for a doorbell on the next head update. */
			vnvme_write_ei(cq->worker, 2 * cq->qid + 1, cq->head, cq);
			/* EventIdx store before head reload; see fetch_sq. */
			smp_mb();
			vnvme_cq_refresh(cq);
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
 * entry stays in the SQ and is fetched again later.  It was never counted
 * in flight.
 */
static void vnvme_unfetch(struct vnvme_cmd *cmd)
{
	struct vnvme_sq *sq = cmd->sq;

	cmd->flags &= ~VNVME_CMD_DIRTY;	/* the device wrote nothing */
	vnvme_release_data(cmd);
	vnvme_put_ns(cmd);
	sq->head = (sq->head + sq->size - 1) % sq->size;
	vnvme_free_slot(cmd);
}

/* Fetch and start up to @budget commands of @sq; returns how many. */
static unsigned int vnvme_fetch_sq(struct vnvme_dev *dev, struct vnvme_sq *sq,
				   unsigned int budget, bool *more)
{
	struct vnvme_worker *worker = sq->worker;
	struct vnvme_cq *cq = sq->cq;
	bool polling = worker->polling;
	unsigned int n = 0;

	if (sq->deleting || sq->broken || cq->broken)
		return 0;
	vnvme_sq_refresh(sq);
	for (;;) {
		while (sq->head != sq->tail) {
			struct vnvme_cmd *cmd;
			u16 status;

			if (n == budget) {
				*more = true;
				return n;
			}
			if (sq->free < 0 || !vnvme_cq_reserve(cq))
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
			cmd->flags = 0;
			status = vnvme_exec(dev, cmd);
			if (status == VNVME_STATUS_RETRY) {
				vnvme_unfetch(cmd);
				return n;
			}
			/*
			 * Started: in flight from now on (its completion is
			 * posted by this worker, later in this pass at the
			 * earliest).  A command put back was never counted.
			 */
			WRITE_ONCE(sq->inflight, sq->inflight + 1);
			atomic_inc(&dev->inflight);
			sq->fetched++;
			n++;
			if (status != VNVME_STATUS_ASYNC)
				vnvme_finish(dev, cmd, status);
		}
		/* While polling nobody needs the guest to ring. */
		if (!worker->eis || polling)
			break;
		/*
		 * Drained: the guest must ring the doorbell for the next entry.
		 * The barrier orders the EventIdx store before the tail reload,
		 * pairing with the guest's barrier between its shadow tail
		 * store and its EventIdx load.
		 */
		vnvme_write_ei(worker, 2 * sq->qid, sq->head, sq->cq);
		/* Pairs with the guest's mb in nvme_dbbuf_update_and_check_event(). */
		smp_mb();
		vnvme_sq_refresh(sq);
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

	if (!sq->broken && !cq->broken && sq->worker->dbs) {
		vnvme_sq_refresh(sq);
		while (sq->head != sq->tail && vnvme_cq_reserve(cq)) {
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

/**
 * vnvme_abort_all - abort the unfetched entries of the SQs being deleted
 * @worker: the worker serving them, in a pass
 */
void vnvme_abort_all(struct vnvme_worker *worker)
{
	struct vnvme_dev *dev = worker->dev;
	struct vnvme_sq *sq;

	vnvme_assert_pass(worker);
	worker->abort = false;
	list_for_each_entry(sq, &worker->sqs, node)
		if (sq->deleting && !sq->abort_done)
			vnvme_abort_sq(dev, sq);
}

/**
 * vnvme_fetch_all - fetch and start commands of the worker's SQs
 * @worker: the worker, in a pass
 * @n: set to how many were fetched
 *
 * Starts with the SQ after the last one the previous pass left at its
 * budget, and stops at VNVME_PASS_WEIGHT commands.
 *
 * Return: true if some SQ may have more.
 */
bool vnvme_fetch_all(struct vnvme_worker *worker, unsigned int *n)
{
	struct vnvme_dev *dev = worker->dev;
	unsigned int total = 0;
	struct vnvme_sq *sq;
	bool more = false;

	vnvme_assert_pass(worker);
	list_for_each_entry(sq, &worker->sqs, node) {
		total += vnvme_fetch_sq(dev, sq, VNVME_SQ_BURST, &more);
		if (total >= VNVME_PASS_WEIGHT) {
			/* The next pass starts with the SQ after this one. */
			list_rotate_to_front(&sq->node, &worker->sqs);
			list_rotate_left(&worker->sqs);
			more = true;
			break;
		}
	}
	*n = total;
	return more;
}
