/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vhost-nvme internal definitions.
 *
 * Locking (order: dev->mutex, then worker->lock, then dev->srcu's read side):
 * - dev->mutex serializes the control ioctls, owner changes and release.
 *   The control plane's tables (dev->sq, dev->cq, dev->workers) and its
 *   copies of the configuration are written only under it.
 * - A worker runs each processing pass holding its own worker->lock and
 *   inside an SRCU read side section of dev->srcu.  No pass ever waits for
 *   another worker, nor for an ioctl that does not concern it.
 * - What a worker's queues hold (fields marked "worker") and the worker's
 *   lists of them are changed by the worker in its passes and by others
 *   only under worker->lock: an ioctl on a queue waits at most for a pass
 *   of the worker serving it, never stops another worker, and takes one
 *   worker lock at a time.  A CQ and every SQ posting to it are served by
 *   one worker, so no queue state is shared between workers.
 * - What every worker reads is published for SRCU (fields marked "srcu"):
 *   the memory table and the namespace table are replaced with
 *   rcu_assign_pointer() and the old ones freed after a grace period;
 *   scalars (features, limits, the polling budget, the quiesce flag) are
 *   written with WRITE_ONCE() and read once per use.  An ioctl that must
 *   know no pass still uses what it replaced waits for a grace period,
 *   killably (vnvme_sync()): it waits for the passes that were running,
 *   which a VMM or a backend may hold up, while every other pass goes on.
 * - Completed commands travel from bio/kiocb completion (any context) to
 *   their worker over the lock-free llist worker->done; nothing else is
 *   touched in completion context.
 */
#ifndef _VHOST_NVME_VNVME_H
#define _VHOST_NVME_VNVME_H

#include <linux/types.h>
#include <linux/bits.h>
#include <linux/bio.h>
#include <linux/eventfd.h>
#include <linux/kref.h>
#include <linux/llist.h>
#include <linux/mutex.h>
#include <linux/srcu.h>
#include <linux/hrtimer.h>
#include <linux/nvme.h>
#include <linux/poll.h>
#include <linux/completion.h>
#include <linux/kthread.h>
#include <linux/workqueue.h>
#include <linux/vhost_nvme.h>

#include "compat.h"

/* NVMe memory page size: CC.MPS = 0. */
#define VNVME_PAGE_SHIFT	12
#define VNVME_PAGE_SIZE		BIT(VNVME_PAGE_SHIFT)
/* MDTS in VNVME_PAGE_SIZE units, as a power of two. */
#define VNVME_MDTS		6
#define VNVME_MAX_XFER		(VNVME_PAGE_SIZE << VNVME_MDTS)
/* Pages one command may span: a page-aligned transfer plus one for the
 * PRP1 offset, doubled for SGL data blocks that each straddle a page.
 * Counted in NVMe pages: every PRP entry may name a different host page,
 * whatever the host's PAGE_SIZE (the same number where it is 4 KiB).
 */
#define VNVME_MAX_BVECS		(2 * (VNVME_MAX_XFER / VNVME_PAGE_SIZE + 1))
#define VNVME_MAX_QSIZE		1024
#define VNVME_MAX_NSID		32
#define VNVME_MAX_SGL_DESCS	256
#define VNVME_MAX_DSM_RANGES	256
#define VNVME_MAX_WORKERS	16
#define VNVME_MAX_POLL_US	1000000
/* First polling window after one was dropped to zero (vnvme_poll_adapt()) */
#define VNVME_POLL_START_NS	(10 * NSEC_PER_USEC)
/* How often a full CQ without a kick eventfd has its head re-read */
#define VNVME_CQ_RECHECK_NS	(1 * NSEC_PER_MSEC)
/* How often commands put back in their SQ for a frozen file system retry */
#define VNVME_FROZEN_RECHECK_NS	(10 * NSEC_PER_MSEC)
#define VNVME_SQE_SIZE		64
#define VNVME_CQE_SIZE		16

/* Returned by command handlers that submitted I/O: completion comes later. */
#define VNVME_STATUS_ASYNC	0xffff
/* Returned by command handlers that cannot run yet: leave it in the SQ. */
#define VNVME_STATUS_RETRY	0xfffe

struct vnvme_dev;
struct vnvme_worker;

/**
 * enum vnvme_wait - how a drain waits for the backend
 * @VNVME_WAIT_NONE: not at all: -EAGAIN if there is anything to wait for
 *	(release by an exiting task)
 * @VNVME_WAIT_KILLABLE: until done or a fatal signal (-EINTR): the ioctls,
 *	and release by a task that closes the device
 * @VNVME_WAIT_IDLE: until done, in TASK_IDLE: the rest of a release, on
 *	the module's workqueue, which only the backend can end
 */
enum vnvme_wait {
	VNVME_WAIT_NONE,
	VNVME_WAIT_KILLABLE,
	VNVME_WAIT_IDLE,
};

/**
 * struct vnvme_region - one memory table entry
 * @gpa: guest physical start
 * @size: bytes
 * @uaddr: start in the owner's address space
 */
struct vnvme_region {
	u64 gpa;
	u64 size;
	u64 uaddr;
};

/**
 * struct vnvme_memtable - guest memory table, sorted by @gpa
 * @gen: generation: each table a device gets has a higher one (0: none)
 * @rcu: freed after an SRCU grace period of the device
 * @nr: number of regions
 * @r: the regions
 */
struct vnvme_memtable {
	u64 gen;
	struct rcu_head rcu;
	unsigned int nr;
	struct vnvme_region r[];
};

/**
 * struct vnvme_log - the dirty log (VHOST_NVME_SET_LOG)
 * @rcu: freed after an SRCU grace period of the device
 * @uaddr: the bitmap in the owner's address space
 * @pages: guest pages it has a bit for
 */
struct vnvme_log {
	struct rcu_head rcu;
	u64 uaddr;
	u64 pages;
};

/*
 * A command's entry in its log of guest pages the device writes: the
 * address of the first page, and the number of pages less one in the low
 * bits (a run never spans more than MDTS, far below VNVME_LOG_RUN_MAX).
 */
#define VNVME_LOG_RUN_MAX	VNVME_PAGE_SIZE

/**
 * struct vnvme_kick - an eventfd that wakes the worker
 * @wait: our entry on the eventfd's wait queue
 * @wqh: the eventfd's wait queue, NULL when not polled
 * @table: poll table used to find @wqh
 * @ctx: the eventfd
 * @file: reference on the eventfd's file
 * @worker: the worker it wakes
 */
struct vnvme_kick {
	wait_queue_entry_t wait;
	wait_queue_head_t *wqh;
	poll_table table;
	struct eventfd_ctx *ctx;
	struct file *file;
	struct vnvme_worker *worker;
};

/**
 * struct vnvme_ns_stats - one CPU's counts of a namespace's commands
 * @bytes_read: data bytes of successful Reads
 * @bytes_written: data bytes of successful Writes
 * @reads: successful Reads
 * @writes: successful Writes
 */
struct vnvme_ns_stats {
	u64 bytes_read;
	u64 bytes_written;
	u64 reads;
	u64 writes;
};

/**
 * struct vnvme_ns - an attached namespace
 * @ref: one for the table, one per command in flight
 * @released: completed when @ref drops to zero
 * @file: the backend
 * @bdev: the block device of @file, or NULL for a regular file
 * @nsid: namespace identifier
 * @lba_shift: log2 of the LBA size
 * @read_only: writes fail with Namespace Write Protected
 * @write_through: every write is FUA (VHOST_NVME_NS_F_WRITE_THROUGH)
 * @nsze: capacity in LBAs
 * @no_write_zeroes: the block device refused REQ_OP_WRITE_ZEROES once:
 *		     write zero pages instead (read and written locklessly)
 * @node: on dev->detached after an interrupted detach (dev->mutex)
 * @rcu: drops the table's reference after an SRCU grace period
 * @stats: what its commands did, per CPU (VHOST_NVME_GET_NS_STATS)
 * @nowait: detached without waiting (VHOST_NVME_DETACH_F_NOWAIT): the
 *	    last reference frees it, through @free_work (set before the
 *	    table's reference is dropped)
 * @free_work: frees it on vnvme_wq
 */
struct vnvme_ns {
	struct kref ref;
	struct completion released;
	struct file *file;
	struct block_device *bdev;
	u32 nsid;
	u8 lba_shift;
	bool read_only;
	bool write_through;
	u64 nsze;
	bool no_write_zeroes;
	struct list_head node;
	struct rcu_head rcu;
	struct vnvme_ns_stats __percpu *stats;
	bool nowait;
	struct work_struct free_work;
};

#define VNVME_CMD_BIO		BIT(0)	/* @bio was initialised */
#define VNVME_CMD_DIRTY		BIT(1)	/* device wrote the pages */
#define VNVME_CMD_POLLED	BIT(2)	/* @bio is REQ_POLLED, on @poll_node */
#define VNVME_CMD_RESUBMIT	BIT(3)	/* polled @bio got no tag: submit again */
#define VNVME_CMD_FLUSH_AFTER	BIT(4)	/* Write Zeroes with FUA: flush when done */
#define VNVME_CMD_ZERO_PAGES	BIT(5)	/* Write Zeroes retried with zero pages */
#define VNVME_CMD_SB_WRITE	BIT(6)	/* holds the file's freeze protection */

/**
 * struct vnvme_bounce - bounce pages for a misaligned data pointer
 * @len: bytes
 * @nr: pages in @bv
 * @bv: one full page each, the last one partly used
 */
struct vnvme_bounce {
	u32 len;
	unsigned int nr;
	struct bio_vec bv[];
};

/**
 * struct vnvme_cmd - a command slot of a submission queue
 * @lnode: on dev->done once the backend finished it
 * @sq: the queue it was fetched from
 * @ns: its namespace (holds a reference), or NULL
 * @sqe: the submission queue entry, copied from the guest
 * @status: NVMe status (without phase) once finished
 * @flags: VNVME_CMD_*
 * @nr_pages: pinned guest pages in @pages
 * @nr_bvecs: entries used in @bvecs
 * @pages: pinned guest pages
 * @bvecs: the data, as segments of @pages
 * @bounce: bounce pages the backend reads or writes instead, or NULL
 * @nr_log: entries used in @log
 * @log: the guest pages a Read writes, recorded whether or not logging is
 *	 on, so that a command fetched before VHOST_NVME_F_LOG_ALL was set
 *	 is logged when it completes after (VNVME_LOG_RUN_MAX)
 * @bio: inline bio for data and flush commands on a block device
 * @poll_node: on the worker's @polled list while @bio is a polled bio
 * @bio_iter: @bio's data range as submitted, to submit it again
 * @iocb: kiocb for read and write on a regular file
 * @work: file operations that block (flush, fallocate), run by dev->helper
 * @ranges: a Dataset Management's ranges for dev->helper, or NULL
 * @charged: bytes of block layer allocations (the bio chains of Write
 *	     Zeroes and Deallocate) counted against dev->bounce_max
 * @next_free: index of the next free slot
 *
 * Owned by the worker from fetch to submission and again from dev->done to
 * posting; owned by the backend in between.
 */
struct vnvme_cmd {
	struct llist_node lnode;
	struct vnvme_sq *sq;
	struct vnvme_ns *ns;
	struct nvme_command sqe;
	u16 status;
	u8 flags;
	unsigned int nr_pages;
	unsigned int nr_bvecs;
	struct page **pages;
	struct bio_vec *bvecs;
	struct vnvme_bounce *bounce;
	unsigned int nr_log;
	u64 *log;
	struct bio bio;
	struct list_head poll_node;
	struct bvec_iter bio_iter;
	struct kiocb iocb;
	struct kthread_work work;
	struct nvme_dsm_range *ranges;
	long charged;
	int next_free;
};

/**
 * struct vnvme_cq - an I/O completion queue (fields: worker)
 * @qid: queue identifier
 * @size: entries
 * @head: last valid head read from the doorbell
 * @tail: next entry to post
 * @phase: phase tag of the next entry
 * @ien: interrupts enabled
 * @need_irq: entries were posted since the last signal
 * @full: fetching is held back until the guest frees entries
 * @broken: the ring became inaccessible: nothing more is posted
 * @gpa: guest address of the ring
 * @ring: the ring in the owner's address space, in the memory table of
 *	  @worker->mem_gen
 * @node: on @worker's list of CQs
 * @irq: eventfd signalled for interrupts, or NULL
 * @kick: eventfd signalled on head doorbell writes (optional)
 * @err: eventfd signalled when @broken is set, or NULL
 * @nr_sqs: submission queues posting here (dev->mutex)
 * @reserved: commands fetched for this CQ but not yet posted
 * @posted: entries posted
 * @bad_db: invalid head doorbell values ignored
 * @worker: the worker serving this CQ and its SQs (set at creation)
 * @coal_thr: interrupt coalescing threshold in entries, <= 1 for none
 * @coal_ns: interrupt coalescing time, 0 for none
 * @pending: entries posted since the irqfd was last signalled
 * @first_pending: when the oldest of them was posted
 */
struct vnvme_cq {
	u16 qid;
	u16 size;
	u16 head;
	u16 tail;
	u8 phase;
	bool ien;
	bool need_irq;
	bool full;
	bool broken;
	u64 gpa;
	void __user *ring;
	struct list_head node;
	struct eventfd_ctx *irq;
	struct vnvme_kick kick;
	struct eventfd_ctx *err;
	unsigned int nr_sqs;
	unsigned int reserved;
	u64 posted;
	u64 bad_db;
	struct vnvme_worker *worker;
	u32 coal_thr;
	u64 coal_ns;
	u32 pending;
	ktime_t first_pending;
};

/**
 * struct vnvme_sq - an I/O submission queue (fields: worker)
 * @dev: the device
 * @qid: queue identifier
 * @size: entries
 * @head: next entry to fetch
 * @tail: last valid tail read from the doorbell
 * @cq: completion queue it posts to
 * @worker: @cq's worker
 * @gpa: guest address of the ring
 * @ring: the ring in the owner's address space, in the memory table of
 *	  @worker->mem_gen
 * @node: on @worker's list of SQs
 * @kick: the tail doorbell's eventfd
 * @err: eventfd signalled when @broken is set, or NULL
 * @drain: eventfd signalled when a delete's drain finished, or NULL
 * @cmds: @size command slots
 * @pool: page and bvec arrays of the slots
 * @free: first free slot, -1 if none
 * @inflight: commands fetched and not yet posted (read locklessly by
 *	      waiters in delete)
 * @deleting: no longer fetched: being deleted
 * @abort_done: being deleted, and the unfetched entries were aborted or
 *		dropped: deleted once @inflight is zero (worker; read
 *		locklessly by waiters in delete)
 * @broken: the ring became inaccessible: no longer fetched
 * @fetched: commands fetched
 * @errors: completions with a non-zero status
 * @polled: completions the worker polled for (REQ_POLLED bios)
 * @bad_db: invalid tail doorbell values ignored
 * @aborted: entries completed with Command Aborted due to SQ Deletion
 */
struct vnvme_sq {
	struct vnvme_dev *dev;
	u16 qid;
	u16 size;
	u16 head;
	u16 tail;
	struct vnvme_cq *cq;
	struct vnvme_worker *worker;
	u64 gpa;
	void __user *ring;
	struct list_head node;
	struct vnvme_kick kick;
	struct eventfd_ctx *err;
	struct eventfd_ctx *drain;
	struct vnvme_cmd *cmds;
	void *pool;
	int free;
	unsigned int inflight;
	bool deleting;
	bool abort_done;
	bool broken;
	u64 fetched;
	u64 errors;
	u64 polled;
	u64 bad_db;
	u64 aborted;
};

#define VNVME_KICKED	0	/* worker->flags: the worker has work */
/* worker->mem_gen of no memory table: point everything again */
#define VNVME_GEN_STALE	U64_MAX

/**
 * struct vnvme_worker - a worker thread and what only it touches
 * @dev: the device
 * @vtsk: the worker thread, a vhost_task of the owner (6.11+)
 * @killed: @vtsk was killed with the owner; @orphan_work runs the passes
 * @orphan_work: passes on vnvme_orphan_wq once @vtsk is gone
 * @task: the worker thread, a kthread (before 6.11)
 * @id: index in dev->workers
 * @lock: held for a pass, and by whoever changes the worker's queues or
 *	  the fields marked "lock"
 * @sqs: the SQs it serves, the next pass starting with the first (lock)
 * @cqs: the CQs it serves (lock)
 * @mem_gen: generation of the memory table its queues' rings and @dbs and
 *	     @eis point into; VNVME_GEN_STALE to recompute them (lock)
 * @db_mode: doorbell mode, as dev->db_mode (lock)
 * @db_gpa: shadow doorbell buffer guest address (lock)
 * @ei_gpa: EventIdx buffer guest address (lock)
 * @vmm_dbs: the VMM's doorbell page (VHOST_NVME_DB_VMM) (lock)
 * @dbs: doorbell values in the owner's address space, or NULL (lock)
 * @eis: EventIdx values in the owner's address space, or NULL (lock)
 * @flags: VNVME_KICKED
 * @done: commands finished by the backend, for the worker to post
 * @reaps_next: the task of a pass while it polls the backend or fetches,
 *		which it follows with a reap, else NULL: what completes
 *		inline there needs no wake-up (lock; read in any context,
 *		matched only by that task)
 * @polling: the worker is polling: EventIdx is left alone (worker)
 * @last_work: when a pass last found work (worker)
 * @poll_budget_ns: the dev->poll_ns that @poll_win_ns was adapted to (worker)
 * @poll_win_ns: current polling window, 0..@poll_budget_ns (worker)
 * @polled: commands whose polled bios only this worker's polling
 *	    completes (worker)
 * @frozen: a write was put back in its SQ: its file system is frozen
 *	    (worker)
 * @abort: one of its SQs is being deleted and has entries to abort
 *	   (lock)
 * @dying: vnvme_worker_destroy() has begun: passes leave the timer off
 *	   (lock)
 * @parked: no thread: the owner released the device (dev->mutex; read
 *	    by wakers in any context)
 * @coal_timer: wakes the worker when a coalesced interrupt is due, a full
 *		CQ is to be looked at again, or a frozen file system
 * @scratch: two pages: PRP lists or SGL segments, then DSM ranges (worker)
 */
struct vnvme_worker {
	struct vnvme_dev *dev;
#ifdef VNVME_HAVE_VHOST_TASK
	struct vhost_task *vtsk;
	bool killed;
	struct work_struct orphan_work;
#else
	struct task_struct *task;
#endif
	unsigned int id;
	struct mutex lock;	/* see the top of this file */
	struct list_head sqs;
	struct list_head cqs;
	u64 mem_gen;
	u32 db_mode;
	u64 db_gpa;
	u64 ei_gpa;
	__le32 __user *vmm_dbs;
	__le32 __user *dbs;
	__le32 __user *eis;
	unsigned long flags;
	struct llist_head done;
	struct task_struct *reaps_next;
	bool polling;
	ktime_t last_work;
	u64 poll_budget_ns;
	u64 poll_win_ns;
	struct list_head polled;
	bool frozen;
	bool abort;
	bool dying;
	bool parked;
	struct hrtimer coal_timer;
	void *scratch;
};

/**
 * struct vnvme_dev - one open /dev/vhost-nvme: one controller's I/O queues
 * @mutex: serializes ioctls and release
 * @srcu: what workers read across a pass (see the top of this file)
 * @mm: owner's address space (mmget), NULL until VHOST_SET_OWNER (@mutex)
 * @workers: the worker threads; [0] exists while there is an owner (@mutex;
 *	     entries below @nr_workers are read in any context)
 * @nr_workers: entries used in @workers (@mutex; stored with release)
 * @helper: runs the file operations that block (fsync, fallocate) for the
 *	    workers; created with the first file namespace, in the owner's
 *	    cgroups (@mutex; set before a file namespace is published)
 * @wq: waiters for @inflight or a queue's inflight to drop to zero, or for
 *	an SRCU grace period
 * @detached: namespaces whose detach was interrupted by a fatal signal,
 *	      freed once their commands are done (@mutex)
 * @max_qid: highest I/O queue identifier (module parameter at open)
 * @max_regions: largest memory table (module parameter at open)
 * @mem: memory table (srcu; never NULL)
 * @mem_gen: generation of the last memory table (@mutex)
 * @ns: namespaces, by nsid (srcu)
 * @sq: submission queues, by qid (@mutex)
 * @cq: completion queues, by qid (@mutex)
 * @features: negotiated VHOST_NVME_F_* (srcu)
 * @db_mode: 0 (none yet), VHOST_NVME_DB_VMM or VHOST_NVME_DB_SHADOW; each
 *	     worker has its copy (@mutex)
 * @db_gpa: shadow doorbell buffer guest address (@mutex)
 * @ei_gpa: EventIdx buffer guest address (@mutex)
 * @vmm_dbs: the VMM's doorbell page in VHOST_NVME_DB_VMM mode (@mutex)
 * @quiesced: nothing is fetched (srcu)
 * @quiesce_efd: eventfd of an asynchronous QUIESCE, signalled when
 *		 @inflight drops to zero while @quiesced (srcu)
 * @poll_ns: polling budget, 0 for none (srcu)
 * @inflight: commands fetched and not yet posted, all workers
 * @memcg: the owner's memory cgroup, charged for what workers allocate
 *	   (@mutex)
 * @bounce_max: most bytes of bounce pages at once (srcu)
 * @bounce_used: bytes of bounce pages allocated now
 * @bounce_wait: a command was left in its SQ for lack of bounce memory:
 *		 wake the workers when some is freed
 * @wzsl_bytes: largest Write Zeroes in bytes, 0 for no limit (srcu)
 * @dmrl: most DSM ranges, 0 for 256 (srcu)
 * @dmrsl: most logical blocks in one DSM range, 0 for no limit (srcu)
 * @release_work: the rest of a release that could not wait for the backend
 * @log: the dirty log, or NULL (srcu)
 * @released: the owner let go of the device (VHOST_NVME_RELEASE_OWNER) and
 *	      no one has taken it yet (@mutex)
 * @release_helper: @helper existed at the release: the next owner's starts
 *		    (@mutex)
 * @release_cookie: what VHOST_NVME_TAKE_OWNER must give (@mutex)
 * @release_cred: the releasing owner's credentials (@mutex)
 */
struct vnvme_dev {
	struct mutex mutex;	/* see the top of this file */
	struct srcu_struct srcu;
	struct mm_struct *mm;
	struct vnvme_worker *workers[VNVME_MAX_WORKERS];
	unsigned int nr_workers;
	struct kthread_worker *helper;
	wait_queue_head_t wq;
	struct list_head detached;
	unsigned int max_qid;
	unsigned int max_regions;
	struct vnvme_memtable __rcu *mem;
	u64 mem_gen;
	struct vnvme_ns __rcu *ns[VNVME_MAX_NSID + 1];
	struct vnvme_sq **sq;
	struct vnvme_cq **cq;
	u64 features;
	u32 db_mode;
	u64 db_gpa;
	u64 ei_gpa;
	__le32 __user *vmm_dbs;
	bool quiesced;
	struct eventfd_ctx *quiesce_efd;
	u64 poll_ns;
	atomic_t inflight;
	struct mem_cgroup *memcg;
	u64 bounce_max;
	atomic_long_t bounce_used;
	bool bounce_wait;
	u64 wzsl_bytes;
	u32 dmrl;
	u64 dmrsl;
	struct work_struct release_work;
	struct vnvme_log __rcu *log;
	bool released;
	bool release_helper;
	u64 release_cookie;
	const struct cred *release_cred;
};

/*
 * The data plane runs in a worker's pass: its lock held, inside an SRCU
 * read side section of the device.
 */
static inline void vnvme_assert_pass(struct vnvme_worker *worker)
{
	lockdep_assert_held(&worker->lock);
	RCU_LOCKDEP_WARN(!srcu_read_lock_held(&worker->dev->srcu),
			 "vhost-nvme: data plane outside a pass");
}

/* The memory table a pass uses */
static inline struct vnvme_memtable *vnvme_pass_mem(struct vnvme_dev *dev)
{
	return srcu_dereference(dev->mem, &dev->srcu);
}

/**
 * struct vnvme_map - state of mapping one command's data pointer
 * @dev: the device
 * @cmd: the command; its pages and bvecs are filled
 * @write: the device writes guest memory (a Read command)
 * @copy: if set, copy the data into this buffer instead of pinning it
 * @copied: bytes copied into @copy so far
 * @run_uaddr: start of the pending run of contiguous user memory
 * @run_len: length of the pending run
 * @len: bytes mapped so far
 */
struct vnvme_map {
	struct vnvme_dev *dev;
	struct vnvme_cmd *cmd;
	bool write;
	void *copy;
	u32 copied;
	u64 run_uaddr;
	u32 run_len;
	u32 len;
};

/* dptr.c: data pointer walking; calls the two functions below. */
u16 vnvme_walk_prp(struct vnvme_map *m, u64 prp1, u64 prp2, u32 len,
		   __le64 *list);
u16 vnvme_walk_sgl(struct vnvme_map *m, const struct nvme_sgl_desc *sgl,
		   u32 len, struct nvme_sgl_desc *seg);

/* Guest mistakes: for a developer's eyes, never a flood in the host's log */
#define vnvme_guest_err(fmt, ...) pr_debug_ratelimited(fmt, ##__VA_ARGS__)

/* Write Zeroes CDW12 Deallocate */
#define VNVME_WZ_DEAC		BIT(9)

/* The dirty log a pass writes, NULL if logging is off */
static inline struct vnvme_log *vnvme_pass_log(struct vnvme_dev *dev)
{
	if (!(READ_ONCE(dev->features) & VHOST_NVME_F_LOG_ALL))
		return NULL;
	return srcu_dereference(dev->log, &dev->srcu);
}

/* mem.c: the memory table, pinning, bounce buffers and their cap */
u16 vnvme_map_add(struct vnvme_map *m, u64 gpa, u32 len);
u16 vnvme_map_read(struct vnvme_map *m, u64 gpa, void *buf, u32 len);
void __user *vnvme_gpa_to_uaddr(const struct vnvme_memtable *mem, u64 gpa,
				u64 len);
u16 vnvme_map_data(struct vnvme_dev *dev, struct vnvme_cmd *cmd, u32 len,
		   bool write, void *copy);
u16 vnvme_bounce(struct vnvme_dev *dev, struct vnvme_cmd *cmd, u32 len,
		 bool write);
void vnvme_release_data(struct vnvme_cmd *cmd);
int vnvme_log_write(const struct vnvme_log *log, u64 gpa, u64 len);
u64 vnvme_log_pages_needed(const struct vnvme_memtable *mem);
u16 vnvme_charge(struct vnvme_dev *dev, struct vnvme_cmd *cmd, long cost);
void vnvme_uncharge(struct vnvme_dev *dev, long cost);

/* io.c: fetch, decode, completion, doorbells, SQ deletion */
u16 vnvme_blk_status(blk_status_t sts, u8 opcode);
u16 vnvme_errno_status(int err, u8 opcode);
void vnvme_cmd_done(struct vnvme_cmd *cmd);
void vnvme_cq_fault(struct vnvme_cq *cq);
bool vnvme_reap(struct vnvme_worker *worker);
void vnvme_abort_all(struct vnvme_worker *worker);
bool vnvme_fetch_all(struct vnvme_worker *worker, unsigned int *n);

/* io-cmd-bdev.c: commands on a block device */
u16 vnvme_bdev_submit_rw(struct vnvme_dev *dev, struct vnvme_cmd *cmd,
			 u64 slba, u32 len, bool write, bool fua);
void vnvme_bdev_submit_flush(struct vnvme_cmd *cmd);
u16 vnvme_bdev_submit_write_zeroes(struct vnvme_dev *dev,
				   struct vnvme_cmd *cmd);
u16 vnvme_bdev_submit_discard(struct vnvme_dev *dev, struct vnvme_cmd *cmd,
			      const struct nvme_dsm_range *range,
			      unsigned int nr);
bool vnvme_bdev_zero_next(struct vnvme_cmd *cmd);
void vnvme_bdev_resubmit(struct vnvme_cmd *cmd);
void vnvme_bdev_poll(struct vnvme_worker *worker);

/* io-cmd-file.c: commands on a regular file */
u16 vnvme_file_submit_rw(struct vnvme_dev *dev, struct vnvme_cmd *cmd,
			 u64 slba, u32 len, bool write, bool fua);
void vnvme_file_submit_flush(struct vnvme_cmd *cmd);
void vnvme_file_submit_write_zeroes(struct vnvme_cmd *cmd);
u16 vnvme_file_submit_discard(struct vnvme_dev *dev, struct vnvme_cmd *cmd,
			      const struct nvme_dsm_range *range,
			      unsigned int nr);

/* worker.c: the worker thread and the kicks that wake it */
extern struct workqueue_struct *vnvme_orphan_wq;
struct vnvme_worker *vnvme_worker_create(struct vnvme_dev *dev);
void vnvme_worker_destroy(struct vnvme_worker *worker);
void vnvme_worker_park(struct vnvme_worker *worker);
int vnvme_worker_unpark(struct vnvme_worker *worker);
void vnvme_worker_remap(struct vnvme_worker *worker,
			const struct vnvme_memtable *mem);
void vnvme_wake(struct vnvme_worker *worker);
void vnvme_wake_all(struct vnvme_dev *dev);
void vnvme_kick_init(struct vnvme_kick *kick, struct vnvme_worker *worker);
int vnvme_kick_start(struct vnvme_kick *kick, int fd);
void vnvme_kick_stop(struct vnvme_kick *kick);

/* core.c */
void vnvme_ns_put(struct vnvme_ns *ns);

#endif /* _VHOST_NVME_VNVME_H */
