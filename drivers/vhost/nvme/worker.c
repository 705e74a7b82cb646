// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-nvme: the worker thread (passes, polling, interrupt coalescing)
 * and the kick eventfds that wake it.
 */
#include <linux/kernel.h>
#include <linux/kthread.h>
#include <linux/sched/mm.h>
#include <linux/blkdev.h>
#include <linux/cgroup.h>
#include <linux/file.h>
#include <linux/memcontrol.h>
#ifdef VNVME_HAVE_VHOST_TASK
#include <linux/sched/vhost_task.h>
#endif

#include "vnvme.h"

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
	ktime_t now = 0, next = KTIME_MAX;
	struct vnvme_cq *cq;

	vnvme_assert_pass(worker);
	if (worker->frozen) {
		worker->frozen = false;
		now = ktime_get();
		next = ktime_add_ns(now, VNVME_FROZEN_RECHECK_NS);
	}
	list_for_each_entry(cq, &worker->cqs, node) {
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
	/* Once vnvme_worker_destroy() has begun, the timer stays off. */
	if (next != KTIME_MAX && !worker->dying)
		hrtimer_start(&worker->coal_timer, next, HRTIMER_MODE_ABS);
}

/*
 * One pass of a worker.  Returns true if it should run again at once
 * (budget exhausted); sets *@work if it fetched or posted anything.
 * An @orphan pass (the owner was killed with its worker thread) only
 * finishes what is in flight: it fetches nothing new.
 */
static bool vnvme_run(struct vnvme_worker *worker, bool *work, bool orphan)
{
	struct vnvme_dev *dev = worker->dev;
	unsigned int fetched = 0;
	struct blk_plug plug;
	bool more = false;
	int idx;

	mutex_lock(&worker->lock);
	idx = srcu_read_lock(&dev->srcu);
	vnvme_worker_remap(worker, vnvme_pass_mem(dev));
	/*
	 * What the backend completes inline, in this task, while polled or
	 * given new commands (in the plug's flush at the latest), the reap
	 * after it posts: no wake-up, no pass for it (vnvme_cmd_done()).
	 */
	WRITE_ONCE(worker->reaps_next, current);
	if (!list_empty(&worker->polled))
		vnvme_bdev_poll(worker);
	WRITE_ONCE(worker->reaps_next, NULL);
	*work = vnvme_reap(worker);
	if (worker->abort)
		vnvme_abort_all(worker);
	/*
	 * What was just posted is signalled before new commands are
	 * submitted: a submission may take long (a backend that copies the
	 * data in its queue_rq, a file system), and the guest should not
	 * wait for it to learn of completions it already has.
	 */
	if (*work)
		vnvme_signal_cqs(worker);
	if (!READ_ONCE(dev->quiesced) && worker->dbs && !orphan) {
		WRITE_ONCE(worker->reaps_next, current);
		blk_start_plug(&plug);
		more = vnvme_fetch_all(worker, &fetched);
		blk_finish_plug(&plug);
		WRITE_ONCE(worker->reaps_next, NULL);
		*work |= vnvme_reap(worker) || fetched;
	}
	vnvme_signal_cqs(worker);
	srcu_read_unlock(&dev->srcu, idx);
	mutex_unlock(&worker->lock);
	return more;
}

/**
 * vnvme_worker_remap - point a worker's rings and doorbells into a table
 * @worker: the worker, in a pass or with its lock held
 * @mem: the memory table it is to use from now on
 *
 * Nothing to do if they point into @mem already.  SET_MEM_TABLE checked
 * that @mem covers every ring and doorbell buffer; one it did not would
 * fault and stop its queue.
 */
void vnvme_worker_remap(struct vnvme_worker *worker,
			const struct vnvme_memtable *mem)
{
	struct vnvme_sq *sq;
	struct vnvme_cq *cq;

	lockdep_assert_held(&worker->lock);
	if (worker->mem_gen == mem->gen)
		return;
	worker->mem_gen = mem->gen;
	list_for_each_entry(sq, &worker->sqs, node)
		sq->ring = vnvme_gpa_to_uaddr(mem, sq->gpa,
					      (u64)sq->size * VNVME_SQE_SIZE);
	list_for_each_entry(cq, &worker->cqs, node)
		cq->ring = vnvme_gpa_to_uaddr(mem, cq->gpa,
					      (u64)cq->size * VNVME_CQE_SIZE);
	switch (worker->db_mode) {
	case VHOST_NVME_DB_VMM:
		worker->dbs = worker->vmm_dbs;
		worker->eis = NULL;
		break;
	case VHOST_NVME_DB_SHADOW:
		worker->dbs = vnvme_gpa_to_uaddr(mem, worker->db_gpa,
						 VNVME_PAGE_SIZE);
		worker->eis = vnvme_gpa_to_uaddr(mem, worker->ei_gpa,
						 VNVME_PAGE_SIZE);
		break;
	default:
		worker->dbs = NULL;
		worker->eis = NULL;
		break;
	}
}

/**
 * vnvme_wake_all - make every worker of a device run a pass
 * @dev: the device
 *
 * Any context where the device's workers cannot go away: the caller holds
 * dev->mutex, or works for a command in flight (workers go only once
 * nothing is).
 */
void vnvme_wake_all(struct vnvme_dev *dev)
{
	/* Pairs with the store in SET_OWNER and NEW_WORKER: entries first */
	unsigned int i, nr = smp_load_acquire(&dev->nr_workers);

	for (i = 0; i < nr; i++)
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
 * One turn of a worker's loop, entered in TASK_INTERRUPTIBLE: false if
 * there is nothing to do (the caller sleeps until a kick, a completion or
 * the coalescing timer), true after a pass.  After a pass that found work
 * the worker keeps polling for its current window (at most dev->poll_ns;
 * see vnvme_poll_adapt()), leaving EventIdx alone, then runs one pass that
 * re-arms EventIdx.  An @orphan worker (its thread was killed with the
 * owner) neither polls nor fetches.
 */
static bool vnvme_worker_turn(struct vnvme_worker *worker, bool orphan)
{
	struct vnvme_dev *dev = worker->dev;
	u64 poll_ns;
	ktime_t now;
	bool work;

	/* Polled bios complete only when the worker polls for them. */
	if (!test_and_clear_bit(VNVME_KICKED, &worker->flags) &&
	    !worker->polling && list_empty(&worker->polled))
		return false;
	__set_current_state(TASK_RUNNING);
	if (vnvme_run(worker, &work, orphan))
		set_bit(VNVME_KICKED, &worker->flags);
	poll_ns = orphan ? 0 : READ_ONCE(dev->poll_ns);
	if (!poll_ns && !worker->poll_budget_ns) {
		/* No polling, nor a window to close: no clock to read. */
		cond_resched();
		return true;
	}
	now = ktime_get();
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
	return true;
}

#ifdef VNVME_HAVE_VHOST_TASK
/*
 * The worker is a vhost_task (6.4+; this form 6.11+): a thread of the
 * owner, in its address space, cgroups and RLIMIT_NPROC, killed with it.
 * vhost_task_fn() calls this in TASK_INTERRUPTIBLE and sleeps when it
 * returns false.
 */
static bool vnvme_worker_fn(void *data)
{
	return vnvme_worker_turn(data, false);
}

/*
 * The owner was killed and its worker thread with it, maybe with commands
 * in flight.  Their pages and the device stay until they are posted, so
 * passes that post them (and fetch nothing new) go on, from vnvme_orphan_wq in the
 * owner's address space (dev->mm holds it) and memory cgroup, until the
 * release destroys the worker.  After the
 * grace period no waker uses the thread any more: vnvme_wake() queues
 * this work instead.
 */
static void vnvme_worker_orphan_fn(struct work_struct *work)
{
	struct vnvme_worker *worker = container_of(work, struct vnvme_worker,
						   orphan_work);
	struct vnvme_dev *dev = worker->dev;
	struct mem_cgroup *old_memcg;

	kthread_use_mm(dev->mm);
	old_memcg = set_active_memcg(dev->memcg);
	while (vnvme_worker_turn(worker, true)) {
		/* Polled bios: let others run between polls. */
		if (!test_bit(VNVME_KICKED, &worker->flags) &&
		    !list_empty(&worker->polled)) {
			queue_work(vnvme_orphan_wq, &worker->orphan_work);
			break;
		}
	}
	__set_current_state(TASK_RUNNING);
	set_active_memcg(old_memcg);
	kthread_unuse_mm(dev->mm);
}

static void vnvme_worker_killed(void *data)
{
	struct vnvme_worker *worker = data;

	WRITE_ONCE(worker->killed, true);
	synchronize_rcu();
	set_bit(VNVME_KICKED, &worker->flags);
	queue_work(vnvme_orphan_wq, &worker->orphan_work);
}

static int vnvme_worker_start(struct vnvme_worker *worker)
{
	char name[TASK_COMM_LEN];

	INIT_WORK(&worker->orphan_work, vnvme_worker_orphan_fn);
	/* A worker unparked for a new owner: the old one's kill is not its */
	WRITE_ONCE(worker->killed, false);
	snprintf(name, sizeof(name), "vhost-nvme-%d", current->pid);
	worker->vtsk = vhost_task_create(vnvme_worker_fn, vnvme_worker_killed,
					 worker, name);
	if (IS_ERR_OR_NULL(worker->vtsk))
		return worker->vtsk ? PTR_ERR(worker->vtsk) : -ENOMEM;
	vhost_task_start(worker->vtsk);
	return 0;
}

static void vnvme_worker_stop(struct vnvme_worker *worker)
{
	vhost_task_stop(worker->vtsk);
	/*
	 * Killed or not, nothing queues the orphan work any more: no kick,
	 * no command in flight, the timer cancelled for good.
	 */
	cancel_work_sync(&worker->orphan_work);
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
	rcu_read_lock();
	/*
	 * Pairs with synchronize_rcu() in vnvme_worker_killed() and
	 * vnvme_worker_park(), and with the store in vnvme_worker_unpark():
	 * parked, the next owner's thread runs a pass first.
	 */
	if (!smp_load_acquire(&worker->parked)) {
		if (READ_ONCE(worker->killed))
			queue_work(vnvme_orphan_wq, &worker->orphan_work);
		else
			vhost_task_wake(worker->vtsk);
	}
	rcu_read_unlock();
}
#else
/*
 * The worker is a kthread (before vhost_task), in the owner's address
 * space (kthread_use_mm()) and in the cgroups the owner was in at its
 * creation, until kthread_stop().
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
		set_current_state(TASK_INTERRUPTIBLE);
		if (kthread_should_stop()) {
			__set_current_state(TASK_RUNNING);
			break;
		}
		if (!vnvme_worker_turn(worker, false))
			schedule();
	}
	set_active_memcg(old_memcg);
	kthread_unuse_mm(dev->mm);
	return 0;
}

static int vnvme_worker_start(struct vnvme_worker *worker)
{
	int ret;

	worker->task = kthread_create(vnvme_worker_fn, worker, "vhost-nvme-%d",
				      current->pid);
	if (IS_ERR(worker->task))
		return PTR_ERR(worker->task);
	ret = cgroup_attach_task_all(current, worker->task);
	if (ret) {
		kthread_stop(worker->task);
		return ret;
	}
	wake_up_process(worker->task);
	return 0;
}

static void vnvme_worker_stop(struct vnvme_worker *worker)
{
	kthread_stop(worker->task);
}

/* vnvme_wake - make a worker run a pass (any context) */
void vnvme_wake(struct vnvme_worker *worker)
{
	set_bit(VNVME_KICKED, &worker->flags);
	rcu_read_lock();
	/* Pairs with vnvme_worker_park() and vnvme_worker_unpark() */
	if (!smp_load_acquire(&worker->parked))
		wake_up_process(worker->task);
	rcu_read_unlock();
}
#endif

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
 * The worker runs in the owner's address space and cgroups, so its work
 * is charged to the VMM: a vhost_task of the owner where the kernel has
 * them, else a kthread attached to the owner's cgroups.
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
	mutex_init(&worker->lock);
	INIT_LIST_HEAD(&worker->sqs);
	INIT_LIST_HEAD(&worker->cqs);
	/* Its doorbells as the device's now; SET_DOORBELLS changes both. */
	worker->db_mode = dev->db_mode;
	worker->db_gpa = dev->db_gpa;
	worker->ei_gpa = dev->ei_gpa;
	worker->vmm_dbs = dev->vmm_dbs;
	worker->mem_gen = VNVME_GEN_STALE;
	init_llist_head(&worker->done);
	INIT_LIST_HEAD(&worker->polled);
	vnvme_hrtimer_setup(&worker->coal_timer, vnvme_coal_timer_fn,
			    CLOCK_MONOTONIC, HRTIMER_MODE_ABS);
	worker->scratch = kmalloc(2 * VNVME_PAGE_SIZE, GFP_KERNEL_ACCOUNT);
	if (!worker->scratch) {
		ret = -ENOMEM;
		goto out_free;
	}
	ret = vnvme_worker_start(worker);
	if (ret)
		goto out_free;
	return worker;

out_free:
	kfree(worker->scratch);
	mutex_destroy(&worker->lock);
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
	/*
	 * A pass running now (a timer woke it) could arm the timer again
	 * after the cancel below, and the timer would wake a freed worker:
	 * passes stop arming it first.
	 */
	mutex_lock(&worker->lock);
	worker->dying = true;
	mutex_unlock(&worker->lock);
	hrtimer_cancel(&worker->coal_timer);
	if (!worker->parked)
		vnvme_worker_stop(worker);
	kfree(worker->scratch);
	mutex_destroy(&worker->lock);
	kfree(worker);
}

/**
 * vnvme_worker_park - stop a worker's thread, keeping the worker
 * @worker: a worker with nothing in flight, of an owner that hands the
 *	    device over (VHOST_NVME_RELEASE_OWNER); caller holds dev->mutex
 *
 * Its queues, kicks and timer stay.  A kick meanwhile only marks it
 * kicked: vnvme_worker_unpark() starts the next owner's thread, which
 * runs a pass first.
 */
void vnvme_worker_park(struct vnvme_worker *worker)
{
	WRITE_ONCE(worker->parked, true);
	/* Wakers that saw it unparked are done with the thread. */
	synchronize_rcu();
	vnvme_worker_stop(worker);
}

/**
 * vnvme_worker_unpark - start a parked worker's thread for the caller
 * @worker: a worker parked by vnvme_worker_park(); the caller is the
 *	    device's new owner and holds dev->mutex
 *
 * Return: 0, or an errno with the worker still parked.
 */
int vnvme_worker_unpark(struct vnvme_worker *worker)
{
	int ret;

	ret = vnvme_worker_start(worker);
	if (ret)
		return ret;
	/* The thread before the flag: a waker that sees it unparked uses it */
	smp_store_release(&worker->parked, false);
	vnvme_wake(worker);
	return 0;
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
