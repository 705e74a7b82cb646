/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * vhost-nvme: in-kernel NVMe I/O queue emulation for virtual machines.
 *
 * A VMM opens /dev/vhost-nvme, becomes its owner (VHOST_SET_OWNER), hands
 * it the guest memory table (VHOST_SET_MEM_TABLE), attaches one backend per
 * namespace and creates I/O completion and submission queues that live in
 * guest memory.  From then on a kernel worker thread running in the owner's
 * address space fetches commands, maps their data pointers to pinned guest
 * pages, submits bios to the backend, posts completion entries and signals
 * the irqfd of each completion queue.  The admin queue and the controller
 * registers stay in the VMM.
 *
 * All addresses called "guest" are guest physical addresses translated
 * through the memory table.  The NVMe memory page size (CC.MPS) is 4 KiB
 * and the doorbell stride (CAP.DSTRD) is 0.
 *
 * See Documentation/vhost/vhost-nvme.rst.
 */
#ifndef _UAPI_LINUX_VHOST_NVME_H
#define _UAPI_LINUX_VHOST_NVME_H

#include <linux/types.h>
#include <linux/ioctl.h>
#include <linux/vhost.h>

/**
 * define VHOST_NVME_ABI_VERSION - version of this interface
 *
 * Reported in &struct vhost_nvme_info.abi_version.  It changes only if an
 * existing ioctl changes incompatibly; additions are signalled by feature
 * bits, by flags that older modules refuse with EINVAL, by reserved fields
 * becoming meaningful and by size-versioned structs growing at their end.
 *
 * Version 2: one feature path (VHOST_GET_FEATURES and VHOST_SET_FEATURES;
 * VHOST_NVME_SET_FEATURES and &struct vhost_nvme_info's feature word are
 * gone), a size-versioned &struct vhost_nvme_info, asynchronous drains with
 * an eventfd (QUIESCE, DELETE_SQ), Command Aborted due to SQ Deletion,
 * queue error eventfds, write-through namespaces.
 */
#define VHOST_NVME_ABI_VERSION		2

/*
 * Feature bits: VHOST_GET_FEATURES (no owner needed) returns those the
 * module supports, VHOST_SET_FEATURES sets those in force.  That is the
 * only feature path.  Unknown bits are rejected with EOPNOTSUPP.  Features
 * other than %VHOST_NVME_F_LOG_ALL can only change while no I/O queue
 * exists (EBUSY).
 */

/**
 * define VHOST_NVME_F_SHADOW_DB - NVMe 1.3 Doorbell Buffer Config
 *
 * VHOST_NVME_SET_DOORBELLS accepts %VHOST_NVME_DB_SHADOW: SQ tails and CQ
 * heads are read from a shadow doorbell buffer in guest memory and EventIdx
 * values are written back exactly as the Linux host driver's
 * nvme_dbbuf_need_event() expects.
 */
#define VHOST_NVME_F_SHADOW_DB		(1ULL << 0)
/**
 * define VHOST_NVME_F_SGL - SGL data pointers
 *
 * I/O commands may use PSDT 01b (Data Block, Segment and Last Segment
 * descriptors, dword aligned).  Without it, PSDT other than 00b gets
 * Invalid Field in Command.
 */
#define VHOST_NVME_F_SGL		(1ULL << 1)
/**
 * define VHOST_NVME_F_DSM - Dataset Management
 *
 * Dataset Management with the Attribute - Deallocate bit discards the
 * ranges on the backend.  Without it, the opcode is invalid.
 */
#define VHOST_NVME_F_DSM		(1ULL << 2)
/**
 * define VHOST_NVME_F_WRITE_ZEROES - Write Zeroes command
 *
 * Write Zeroes is executed with the block layer's zero-out helper (or
 * fallocate for a file backend).  Without it, the opcode is invalid.
 */
#define VHOST_NVME_F_WRITE_ZEROES	(1ULL << 3)

/**
 * define VHOST_NVME_F_POLL - SQ polling
 *
 * VHOST_NVME_SET_POLL sets a busy-poll budget: after doing work a worker
 * keeps polling its doorbells for up to that long before it goes back to
 * waiting for kicks, and while it polls it leaves EventIdx alone so that the
 * guest does not ring doorbells nobody waits for.  Within the budget the
 * worker adapts how long it polls to how soon work follows work (see
 * Documentation/vhost/vhost-nvme.rst).
 */
#define VHOST_NVME_F_POLL		(1ULL << 4)
/**
 * define VHOST_NVME_F_WORKERS - more than one worker thread
 *
 * VHOST_NVME_NEW_WORKER creates another worker; &struct vhost_nvme_cq
 * names the worker that serves a CQ and the SQs posting to it.
 */
#define VHOST_NVME_F_WORKERS		(1ULL << 5)
/**
 * define VHOST_NVME_F_IRQ_COALESCING - interrupt coalescing per CQ
 *
 * VHOST_NVME_SET_IRQ_COALESCING sets an aggregation threshold and time for
 * a CQ, as the NVMe Interrupt Coalescing feature (FID 08h) describes.
 */
#define VHOST_NVME_F_IRQ_COALESCING	(1ULL << 6)
/**
 * define VHOST_NVME_F_LOG_ALL - log every guest page the device writes
 *
 * While set, the module sets a bit in the dirty log given with
 * VHOST_NVME_SET_LOG for every 4 KiB guest page it writes: the data of
 * Read commands (bounced ones included), completion queue entries,
 * EventIdx entries and the shadow doorbells VHOST_NVME_SET_DOORBELLS
 * writes.  A page's bit is set after the page is written and before the
 * completion that makes it visible is posted, as vhost's
 * %VHOST_F_LOG_ALL does for live migration.  Unlike the other features it
 * may be set and cleared while I/O queues exist; VHOST_SET_FEATURES then
 * waits (killably) for the passes under way, so that once it returns
 * every later write is logged (set) or none is (cleared).  Setting it
 * without a log gets EINVAL.  A log page the module cannot write stops the
 * queue as an inaccessible ring does (its error eventfd is signalled).
 */
#define VHOST_NVME_F_LOG_ALL		(1ULL << 7)
/**
 * define VHOST_NVME_F_OWNER_HANDOVER - the owner can hand the device over
 *
 * VHOST_NVME_RELEASE_OWNER and VHOST_NVME_TAKE_OWNER move a device with its
 * queues to another process (a VMM replacing itself, e.g. QEMU's
 * cpr-transfer) without a reset.  A capability: VHOST_SET_FEATURES
 * accepts it, and it changes nothing.
 */
#define VHOST_NVME_F_OWNER_HANDOVER	(1ULL << 8)

/** define VHOST_NVME_F_ALL - every feature this header knows of */
#define VHOST_NVME_F_ALL	(VHOST_NVME_F_SHADOW_DB | VHOST_NVME_F_SGL | \
				 VHOST_NVME_F_DSM | VHOST_NVME_F_WRITE_ZEROES | \
				 VHOST_NVME_F_POLL | VHOST_NVME_F_WORKERS | \
				 VHOST_NVME_F_IRQ_COALESCING | \
				 VHOST_NVME_F_LOG_ALL | \
				 VHOST_NVME_F_OWNER_HANDOVER)

/**
 * struct vhost_nvme_info - limits of the module
 * @size: in: sizeof(struct vhost_nvme_info) as the caller knows it, at
 *	  least up to @max_poll_us; the struct grows at its end.  The kernel
 *	  fills min(@size, its own size) bytes and zeroes the rest of the
 *	  caller's struct, so fields it does not know of read as 0.
 * @abi_version: out: %VHOST_NVME_ABI_VERSION
 * @max_qid: out: highest I/O queue identifier accepted (queues 1..@max_qid)
 * @max_qsize: out: largest queue size in entries (CAP.MQES + 1)
 * @max_nsid: out: highest namespace identifier accepted (NN)
 * @mdts: out: maximum data transfer size as a power of two in 4 KiB units
 *	  (MDTS)
 * @max_mem_regions: out: largest memory table accepted
 * @max_workers: out: most worker threads per device, the first included
 * @max_poll_us: out: largest polling budget accepted
 * @reserved0: out: zero
 * @max_bounce_bytes: out: the bounce memory cap of a new device (module
 *		      parameter max_bounce_kb), the most
 *		      &struct vhost_nvme_limits.bounce_bytes accepts
 *
 * Filled by VHOST_NVME_GET_INFO, which needs no owner.  The features the
 * module supports come from VHOST_GET_FEATURES.
 */
struct vhost_nvme_info {
	__u32 size;
	__u32 abi_version;
	__u32 max_qid;
	__u32 max_qsize;
	__u32 max_nsid;
	__u32 mdts;
	__u32 max_mem_regions;
	__u32 max_workers;
	__u32 max_poll_us;
	__u32 reserved0;
	__u64 max_bounce_bytes;
};

/** define VHOST_NVME_NS_F_READ_ONLY - namespace is read-only */
#define VHOST_NVME_NS_F_READ_ONLY	(1U << 0)
/**
 * define VHOST_NVME_NS_F_WRITE_THROUGH - every write reaches stable storage
 *
 * Write and Write Zeroes complete only once their data is on stable
 * storage, as if each had FUA set: what a VMM needs to advertise a
 * Volatile Write Cache of 0 on a backend that has one.
 */
#define VHOST_NVME_NS_F_WRITE_THROUGH	(1U << 1)

/**
 * struct vhost_nvme_ns - attach a namespace backend
 * @nsid: namespace identifier, 1..max_nsid, not attached yet
 * @fd: a block device, or a regular file (O_DIRECT is honoured if set)
 *	opened for reading: never O_PATH, a directory, a socket, a pipe, a
 *	character device, or a file without ->read_iter (EBADF, EINVAL)
 * @flags: in: %VHOST_NVME_NS_F_READ_ONLY to export read-only,
 *	   %VHOST_NVME_NS_F_WRITE_THROUGH; out: %VHOST_NVME_NS_F_READ_ONLY
 *	   also set when the backend is read-only or the fd is not open for
 *	   writing
 * @lba_shift: in: 0 for the backend's logical block size, or 9..12 for a
 *	       larger one (never smaller than the backend's); out: in force
 * @reserved0: zero
 * @nsze: out: capacity in logical blocks
 * @reserved: zero
 */
struct vhost_nvme_ns {
	__u32 nsid;
	__s32 fd;
	__u32 flags;
	__u8 lba_shift;
	__u8 reserved0[3];
	__u64 nsze;
	__u64 reserved[4];
};

/**
 * define VHOST_NVME_DETACH_F_NOWAIT - detach without waiting for commands
 *
 * DETACH_NS returns at once: the namespace is gone for the guest (new
 * commands get Invalid Namespace), the commands already using it complete
 * and are posted as usual, and the last of them lets go of the backend.
 * Without the flag DETACH_NS waits for them, killably.
 */
#define VHOST_NVME_DETACH_F_NOWAIT	(1U << 0)

/**
 * struct vhost_nvme_nsid - names a namespace to detach
 * @nsid: namespace identifier
 * @flags: %VHOST_NVME_DETACH_F_NOWAIT
 * @reserved: zero
 */
struct vhost_nvme_nsid {
	__u32 nsid;
	__u32 flags;
	__u32 reserved[2];
};

/** define VHOST_NVME_CQ_F_IRQ_ENABLED - signal @irqfd on new entries (IEN) */
#define VHOST_NVME_CQ_F_IRQ_ENABLED	(1U << 0)
/** define VHOST_NVME_CQ_F_ERRFD - @errfd is an eventfd to signal on errors */
#define VHOST_NVME_CQ_F_ERRFD		(1U << 1)
/**
 * define VHOST_NVME_CQ_F_STATE - the queue continues at @head, @tail, @phase
 *
 * For a queue moved from another device (live migration): it starts where
 * VHOST_NVME_GET_QUEUE_STATE of the quiesced source left it, instead of
 * empty (head and tail 0, phase 1).
 */
#define VHOST_NVME_CQ_F_STATE		(1U << 2)

/**
 * struct vhost_nvme_cq - create an I/O completion queue
 * @qid: queue identifier, 1..max_qid, not in use by another CQ
 * @size: entries, 2..max_qsize
 * @flags: %VHOST_NVME_CQ_F_IRQ_ENABLED, %VHOST_NVME_CQ_F_ERRFD
 * @addr: guest address of the queue, 4 KiB aligned, physically contiguous,
 *	  inside one region of the memory table
 * @irqfd: eventfd signalled (once per batch) when entries were posted, or
 *	   -1; required if interrupts are enabled
 * @kickfd: eventfd the VMM signals when the guest writes this queue's head
 *	    doorbell, or -1 (any SQ kick also makes the worker re-read heads)
 * @worker: the worker that serves this CQ and every SQ posting to it: 0,
 *	    the one created by VHOST_SET_OWNER, or one returned by
 *	    VHOST_NVME_NEW_WORKER (needs %VHOST_NVME_F_WORKERS)
 * @errfd: with %VHOST_NVME_CQ_F_ERRFD, an eventfd signalled when the queue
 *	   stops on a guest fault (its ring cannot be written:
 *	   %VHOST_NVME_QS_ERROR); otherwise zero
 * @head: with %VHOST_NVME_CQ_F_STATE, the last head the guest gave, below
 *	  @size; otherwise zero
 * @tail: with %VHOST_NVME_CQ_F_STATE, the next entry to post, below @size;
 *	  otherwise zero
 * @phase: with %VHOST_NVME_CQ_F_STATE, the phase tag of the entry at
 *	   @tail, 0 or 1; otherwise zero
 * @reserved0: zero
 * @reserved: zero
 */
struct vhost_nvme_cq {
	__u16 qid;
	__u16 size;
	__u32 flags;
	__u64 addr;
	__s32 irqfd;
	__s32 kickfd;
	__u32 worker;
	__s32 errfd;
	__u16 head;
	__u16 tail;
	__u8 phase;
	__u8 reserved0[3];
	__u64 reserved[2];
};

/** define VHOST_NVME_SQ_F_ERRFD - @errfd is an eventfd to signal on errors */
#define VHOST_NVME_SQ_F_ERRFD		(1U << 0)
/**
 * define VHOST_NVME_SQ_F_STATE - the queue continues at @head and @tail
 *
 * As %VHOST_NVME_CQ_F_STATE: the entries from @head to @tail are fetched
 * as if the guest had just rung the doorbell.
 */
#define VHOST_NVME_SQ_F_STATE		(1U << 1)

/**
 * struct vhost_nvme_sq - create an I/O submission queue
 * @qid: queue identifier, 1..max_qid, not in use by another SQ
 * @size: entries, 2..max_qsize
 * @cqid: the completion queue it posts to; must exist
 * @reserved0: zero
 * @flags: %VHOST_NVME_SQ_F_ERRFD (queue priority is not implemented: round
 *	   robin only)
 * @kickfd: eventfd signalled by the VMM (ioeventfd) on tail doorbell writes
 * @addr: guest address of the queue, 4 KiB aligned, physically contiguous,
 *	  inside one region of the memory table
 * @errfd: with %VHOST_NVME_SQ_F_ERRFD, an eventfd signalled when the queue
 *	   stops on a guest fault (its ring cannot be read:
 *	   %VHOST_NVME_QS_ERROR); otherwise zero
 * @head: with %VHOST_NVME_SQ_F_STATE, the next entry to fetch, below
 *	  @size; otherwise zero
 * @tail: with %VHOST_NVME_SQ_F_STATE, the last tail the guest gave, below
 *	  @size; otherwise zero
 * @reserved: zero
 */
struct vhost_nvme_sq {
	__u16 qid;
	__u16 size;
	__u16 cqid;
	__u16 reserved0;
	__u32 flags;
	__s32 kickfd;
	__u64 addr;
	__s32 errfd;
	__u16 head;
	__u16 tail;
	__u64 reserved[3];
};

/**
 * define VHOST_NVME_DRAIN_F_ASYNC - start a drain, do not wait for it
 *
 * QUIESCE and DELETE_SQ return at once: 0 if nothing is in flight any
 * more (the SQ is then deleted), EINPROGRESS otherwise, in which case the
 * eventfd they name is signalled when the drain has finished.  The VMM
 * then repeats the call, which returns 0 without waiting.  Without the
 * flag they wait, killably (EINTR on a fatal signal, the drain going on).
 */
#define VHOST_NVME_DRAIN_F_ASYNC	(1U << 0)
/**
 * define VHOST_NVME_DELETE_F_DISCARD - drop the SQ's unfetched entries
 *
 * For a controller reset: entries the guest queued that were not fetched
 * yet are dropped without a completion.  Without it DELETE_SQ acts as the
 * NVMe Delete I/O Submission Queue command: each such entry is completed
 * with Command Aborted due to SQ Deletion, as far as the CQ has room (the
 * rest are dropped).
 */
#define VHOST_NVME_DELETE_F_DISCARD	(1U << 1)

/**
 * struct vhost_nvme_qid - names a queue to delete
 * @qid: queue identifier
 * @flags: DELETE_SQ: %VHOST_NVME_DRAIN_F_ASYNC, %VHOST_NVME_DELETE_F_DISCARD;
 *	   DELETE_CQ: zero
 * @eventfd: with %VHOST_NVME_DRAIN_F_ASYNC, the eventfd signalled when the
 *	     drain has finished; otherwise zero
 * @reserved: zero
 *
 * A SQ being deleted is no longer fetched; the commands it has in flight
 * complete and are posted to its CQ as usual.  Once a DELETE_SQ has begun,
 * later ones (with or without %VHOST_NVME_DRAIN_F_ASYNC) carry it on; one
 * with %VHOST_NVME_DELETE_F_DISCARD drops what was not aborted yet.
 */
struct vhost_nvme_qid {
	__u16 qid;
	__u16 flags;
	__s32 eventfd;
	__u32 reserved[2];
};

/**
 * define VHOST_NVME_DB_VMM - doorbell values come from a VMM page
 *
 * @db_addr is a page-aligned address in the owner's address space holding
 * 4 KiB of __le32 doorbells laid out like the shadow doorbell buffer: SQ y
 * tail at index 2y, CQ y head at index 2y + 1.  The VMM stores the value a
 * guest wrote to a doorbell register there and then signals the queue's
 * kick eventfd.  @ei_addr must be 0.  This is the mode for guests that
 * never send Doorbell Buffer Config.
 */
#define VHOST_NVME_DB_VMM		1
/**
 * define VHOST_NVME_DB_SHADOW - NVMe shadow doorbell and EventIdx buffers
 *
 * @db_addr and @ei_addr are the guest addresses from Doorbell Buffer
 * Config, 4 KiB aligned and inside the memory table.  Needs
 * %VHOST_NVME_F_SHADOW_DB.  The current tail and head of every existing
 * queue are written into the shadow buffer when the mode is set.
 */
#define VHOST_NVME_DB_SHADOW		2

/**
 * struct vhost_nvme_doorbells - where the worker reads doorbell values
 * @mode: %VHOST_NVME_DB_VMM or %VHOST_NVME_DB_SHADOW
 * @reserved0: zero
 * @db_addr: doorbell page (see the modes)
 * @ei_addr: EventIdx page (shadow mode only)
 * @reserved: zero
 */
struct vhost_nvme_doorbells {
	__u32 mode;
	__u32 reserved0;
	__u64 db_addr;
	__u64 ei_addr;
	__u64 reserved[4];
};

#define VHOST_NVME_QTYPE_SQ		0
#define VHOST_NVME_QTYPE_CQ		1

/** define VHOST_NVME_QS_ERROR - the queue stopped on an inaccessible ring */
#define VHOST_NVME_QS_ERROR		(1U << 0)
/** define VHOST_NVME_QS_CQ_FULL - CQ full: its SQs are not fetched */
#define VHOST_NVME_QS_CQ_FULL		(1U << 1)
/** define VHOST_NVME_QS_DELETING - SQ: a DELETE_SQ has begun, not finished */
#define VHOST_NVME_QS_DELETING		(1U << 2)

/**
 * struct vhost_nvme_queue_state - state and counters of one queue
 * @qid: in: queue identifier
 * @type: in: %VHOST_NVME_QTYPE_SQ or %VHOST_NVME_QTYPE_CQ
 * @reserved0: zero
 * @flags: out: VHOST_NVME_QS_*
 * @size: out: entries
 * @head: out: SQ: next entry the worker fetches; CQ: last head read from
 *	  the doorbell
 * @tail: out: SQ: last tail read from the doorbell; CQ: next entry posted
 * @phase: out: CQ: phase tag of the next entry posted; SQ: 0
 * @cqid: out: SQ: its completion queue; CQ: 0
 * @reserved1: zero
 * @inflight: out: commands fetched but not yet posted
 * @commands: out: SQ: commands fetched; CQ: entries posted
 * @errors: out: SQ: completions with non-zero status; CQ: 0
 * @polled: out: SQ: commands whose backend completion the worker polled
 *	    for (a polling worker on a backend with poll queues); CQ: 0
 * @aborted: out: SQ: entries completed with Command Aborted due to SQ
 *	     Deletion; CQ: 0
 * @bad_doorbells: out: doorbell values ignored as invalid (the NVMe
 *		   Invalid Doorbell Write Value): SQ: a tail not below the
 *		   size; CQ: a head outside the entries posted and not yet
 *		   consumed.  The queue goes on with the last valid value.
 * @reserved: zero
 *
 * Statistics are read without stopping the workers: each field is current,
 * the set is not one snapshot unless the device is quiesced.
 */
struct vhost_nvme_queue_state {
	__u16 qid;
	__u8 type;
	__u8 reserved0;
	__u32 flags;
	__u16 size;
	__u16 head;
	__u16 tail;
	__u16 phase;
	__u16 cqid;
	__u16 reserved1;
	__u32 inflight;
	__u64 commands;
	__u64 errors;
	__u64 polled;
	__u64 aborted;
	__u64 bad_doorbells;
	__u64 reserved;
};

/**
 * struct vhost_nvme_quiesce - argument of QUIESCE and RESUME
 * @flags: QUIESCE: %VHOST_NVME_DRAIN_F_ASYNC; RESUME: zero
 * @eventfd: QUIESCE with %VHOST_NVME_DRAIN_F_ASYNC: the eventfd signalled
 *	     when nothing is in flight any more; otherwise zero
 * @reserved: zero
 *
 * QUIESCE stops fetching and returns once every command fetched has been
 * posted (or at once, see %VHOST_NVME_DRAIN_F_ASYNC).  RESUME restarts
 * fetching and forgets the eventfd.
 */
struct vhost_nvme_quiesce {
	__u32 flags;
	__s32 eventfd;
	__u32 reserved[2];
};

/**
 * struct vhost_nvme_poll - SQ polling budget
 * @poll_us: microseconds a worker polls at most after its last work; 0
 *	     turns polling off (the default comes from the module parameter
 *	     poll_us); at most &struct vhost_nvme_info.max_poll_us
 * @reserved0: zero
 * @reserved: zero
 */
struct vhost_nvme_poll {
	__u32 poll_us;
	__u32 reserved0;
	__u64 reserved[3];
};

/**
 * struct vhost_nvme_worker - a new worker thread
 * @id: out: its identifier, for &struct vhost_nvme_cq.worker
 * @reserved0: zero
 * @reserved: zero
 */
struct vhost_nvme_worker {
	__u32 id;
	__u32 reserved0;
	__u64 reserved[3];
};

/**
 * struct vhost_nvme_irq_coalescing - interrupt coalescing of one CQ
 * @qid: the completion queue
 * @reserved0: zero
 * @threshold: signal the irqfd once this many entries are pending (the
 *	       NVMe field THR plus one); 0 or 1 turns coalescing off
 * @time_us: or once the oldest pending entry is this old (NVMe TIME is in
 *	     100 us units); 0 means no delay, as TIME 0h does: with it the
 *	     threshold holds nothing back
 * @reserved1: zero
 * @reserved: zero
 *
 * Entries are always signalled at once while the CQ is full, so that a
 * guest waiting for room is never left waiting for the timer.
 */
struct vhost_nvme_irq_coalescing {
	__u16 qid;
	__u16 reserved0;
	__u32 threshold;
	__u32 time_us;
	__u32 reserved1;
	__u64 reserved[2];
};

/**
 * struct vhost_nvme_limits - resource and command limits of a device
 * @size: in: sizeof(struct vhost_nvme_limits) as the caller knows it; the
 *	  struct grows at its end, fields the kernel does not know of must
 *	  be zero (E2BIG otherwise), fields the caller does not pass are 0
 * @reserved0: zero
 * @bounce_bytes: in: most bytes the device's commands hold at once
 *		  besides guest memory: bounce pages for data pointers the
 *		  backend cannot take as they are (misaligned PRP offsets,
 *		  SGL blocks), copies of DSM ranges, the bio chains of Write
 *		  Zeroes and Deallocate; at least the MDTS transfer size, at
 *		  most the module parameter max_bounce_kb (its default); 0
 *		  keeps the current value.  Out: the value in force.  A
 *		  command that would exceed it is left in its SQ, unfetched,
 *		  until memory is freed.
 * @wzsl: in: Write Zeroes Size Limit as the VMM advertises it (Identify
 *	  Controller, NVM command set): a power of two in 4 KiB units, 0 for
 *	  no limit.  A larger Write Zeroes gets Invalid Field in Command.
 * @dmrl: in: Dataset Management Ranges Limit, 0 for none (256).  A DSM with
 *	  more ranges gets Invalid Field in Command.
 * @dmrsl: in: Dataset Management Range Size Limit in logical blocks, 0 for
 *	   none.  A range with more blocks gets Invalid Field in Command.
 *
 * VHOST_NVME_SET_LIMITS sets them (owner only, any time: commands fetched
 * afterwards see the new limits) and returns the values in force.
 */
struct vhost_nvme_limits {
	__u32 size;
	__u32 reserved0;
	__u64 bounce_bytes;
	__u32 wzsl;
	__u32 dmrl;
	__u64 dmrsl;
};

/**
 * struct vhost_nvme_log - the dirty log of guest pages the device writes
 * @addr: address of the log in the owner's address space, 8-byte aligned:
 *	  bit n (of little-endian 64-bit words) stands for the guest page at
 *	  n * 4 KiB, as vhost's log (VHOST_SET_LOG_BASE) does; 0 for no log
 * @size: bytes of the log; it must cover every page of the memory table
 *	  (EINVAL otherwise), 0 with @addr 0
 * @reserved: zero
 *
 * VHOST_NVME_SET_LOG sets the log (owner only, any time) and waits,
 * killably, for the passes that may still write the previous one: once it
 * returns 0 the previous log is no longer written.  The module only sets
 * bits, with atomic operations; the VMM reads and clears them (atomically
 * per word).  While a log is set, VHOST_SET_MEM_TABLE refuses a table
 * the log does not cover (EINVAL): grow the log first.  The log cannot be
 * removed while %VHOST_NVME_F_LOG_ALL is set (EBUSY).
 */
struct vhost_nvme_log {
	__u64 addr;
	__u64 size;
	__u64 reserved[2];
};

/**
 * struct vhost_nvme_ns_stats - what a namespace's commands did
 * @nsid: in: an attached namespace (ENOENT otherwise)
 * @reserved0: zero
 * @bytes_read: out: data bytes of Read commands completed successfully
 * @bytes_written: out: data bytes of Write commands completed successfully
 * @reads: out: Read commands completed successfully
 * @writes: out: Write commands completed successfully
 * @reserved: zero
 *
 * VHOST_NVME_GET_NS_STATS reads the counters of a namespace since it was
 * attached, for the SMART / Health Information log page (Data Units Read
 * and Written, Host Read and Write Commands).  Owner only.
 */
struct vhost_nvme_ns_stats {
	__u32 nsid;
	__u32 reserved0;
	__u64 bytes_read;
	__u64 bytes_written;
	__u64 reads;
	__u64 writes;
	__u64 reserved[3];
};

/**
 * struct vhost_nvme_handover - a device passed from one owner to the next
 * @cookie: RELEASE_OWNER: out; TAKE_OWNER: in, as RELEASE_OWNER gave it
 * @reserved: zero
 *
 * VHOST_NVME_RELEASE_OWNER (owner only) needs a quiesced device with
 * nothing in flight (EBUSY otherwise, and while %VHOST_NVME_F_LOG_ALL is
 * set).  It stops the workers and lets go of the owner's address space
 * and memory cgroup; queues (where they stand), namespaces, workers'
 * assignments, doorbell mode and guest addresses, interrupt coalescing,
 * features and the eventfds stay.  The memory table, the dirty log and a
 * %VHOST_NVME_DB_VMM doorbell page (addresses in the owner's memory) go.
 * It returns a random cookie.  The device then has no owner: every ioctl
 * but VHOST_NVME_GET_INFO, VHOST_GET_FEATURES and VHOST_NVME_TAKE_OWNER
 * gets EPERM (VHOST_SET_OWNER: EBUSY), and nothing touches guest memory.
 *
 * VHOST_NVME_TAKE_OWNER makes the caller the owner of a released device
 * (EBUSY if the device was not released) if @cookie is the one the
 * release returned (EACCES otherwise; it works once) and the caller has
 * the releasing owner's effective uid or CAP_SYS_ADMIN in its user
 * namespace (EPERM otherwise).  The workers start again as threads of
 * the new owner, each serving the queues it served.  The device stays
 * quiesced: the new owner sends VHOST_SET_MEM_TABLE (the same guest
 * ranges, where it maps them), VHOST_NVME_SET_DOORBELLS if the mode was
 * %VHOST_NVME_DB_VMM, VHOST_NVME_SET_LOG if it logs, and then
 * VHOST_NVME_RESUME, which gets EBADFD until the memory table (and a VMM
 * doorbell page) is there.  The old owner may take its device back the
 * same way.  Closing the last fd of a released device tears it down.
 */
struct vhost_nvme_handover {
	__u64 cookie;
	__u64 reserved[3];
};

/*
 * NVMe ioctls, in a range of the vhost magic (VHOST_VIRTIO) that no other
 * vhost device uses.  The generic VHOST_SET_OWNER, VHOST_RESET_OWNER,
 * VHOST_SET_MEM_TABLE, VHOST_GET_FEATURES and VHOST_SET_FEATURES keep their
 * numbers and meaning.  Every ioctl but VHOST_NVME_GET_INFO,
 * VHOST_GET_FEATURES and VHOST_NVME_TAKE_OWNER needs the caller to be the
 * owner (EPERM otherwise).
 * 0xA1 was VHOST_NVME_SET_FEATURES in version 1 and stays unused.
 */
#define VHOST_NVME_GET_INFO	_IOWR(VHOST_VIRTIO, 0xA0, struct vhost_nvme_info)
#define VHOST_NVME_ATTACH_NS	_IOWR(VHOST_VIRTIO, 0xA2, struct vhost_nvme_ns)
#define VHOST_NVME_DETACH_NS	_IOW(VHOST_VIRTIO, 0xA3, struct vhost_nvme_nsid)
#define VHOST_NVME_CREATE_CQ	_IOW(VHOST_VIRTIO, 0xA4, struct vhost_nvme_cq)
#define VHOST_NVME_CREATE_SQ	_IOW(VHOST_VIRTIO, 0xA5, struct vhost_nvme_sq)
#define VHOST_NVME_DELETE_SQ	_IOW(VHOST_VIRTIO, 0xA6, struct vhost_nvme_qid)
#define VHOST_NVME_DELETE_CQ	_IOW(VHOST_VIRTIO, 0xA7, struct vhost_nvme_qid)
#define VHOST_NVME_SET_DOORBELLS _IOW(VHOST_VIRTIO, 0xA8, struct vhost_nvme_doorbells)
#define VHOST_NVME_GET_QUEUE_STATE _IOWR(VHOST_VIRTIO, 0xA9, struct vhost_nvme_queue_state)
#define VHOST_NVME_QUIESCE	_IOW(VHOST_VIRTIO, 0xAA, struct vhost_nvme_quiesce)
#define VHOST_NVME_RESUME	_IOW(VHOST_VIRTIO, 0xAB, struct vhost_nvme_quiesce)
#define VHOST_NVME_SET_POLL	_IOW(VHOST_VIRTIO, 0xAC, struct vhost_nvme_poll)
#define VHOST_NVME_NEW_WORKER	_IOWR(VHOST_VIRTIO, 0xAD, struct vhost_nvme_worker)
#define VHOST_NVME_SET_IRQ_COALESCING _IOW(VHOST_VIRTIO, 0xAE, struct vhost_nvme_irq_coalescing)
#define VHOST_NVME_SET_LIMITS	_IOWR(VHOST_VIRTIO, 0xAF, struct vhost_nvme_limits)
#define VHOST_NVME_SET_LOG	_IOW(VHOST_VIRTIO, 0xB0, struct vhost_nvme_log)
#define VHOST_NVME_GET_NS_STATS	_IOWR(VHOST_VIRTIO, 0xB1, struct vhost_nvme_ns_stats)
#define VHOST_NVME_RELEASE_OWNER _IOR(VHOST_VIRTIO, 0xB2, struct vhost_nvme_handover)
#define VHOST_NVME_TAKE_OWNER	_IOW(VHOST_VIRTIO, 0xB3, struct vhost_nvme_handover)

#endif /* _UAPI_LINUX_VHOST_NVME_H */
