/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The one place where vhost-nvme meets kernel interfaces that changed
 * between 6.1 and newer kernels.  The VNVME_HAVE_* macros come from probes
 * of the target kernel's headers in Kbuild.
 */
#ifndef _VHOST_NVME_COMPAT_H
#define _VHOST_NVME_COMPAT_H

#include <linux/eventfd.h>
#include <linux/blkdev.h>
#include <linux/fs.h>
#include <linux/hrtimer.h>
#include <linux/nvme.h>

/* NVME_SC_DNR became NVME_STATUS_DNR in 6.11. */
#ifndef NVME_SC_DNR
#define NVME_SC_DNR	NVME_STATUS_DNR
#endif

/* eventfd_signal() lost its count argument in 6.8. */
static inline void vnvme_eventfd_signal(struct eventfd_ctx *ctx)
{
#ifdef VNVME_HAVE_EVENTFD_SIGNAL_NOCOUNT
	eventfd_signal(ctx);
#else
	eventfd_signal(ctx, 1);
#endif
}

/* file_bdev() replaced I_BDEV(file->f_mapping->host) in 6.9. */
static inline struct block_device *vnvme_file_bdev(struct file *file)
{
#ifdef VNVME_HAVE_FILE_BDEV
	return file_bdev(file);
#else
	return I_BDEV(file->f_mapping->host);
#endif
}

/* __blkdev_issue_discard() returns void from 6.12 on. */
static inline int vnvme_issue_discard(struct block_device *bdev,
				      sector_t sector, sector_t nr,
				      struct bio **biop)
{
#ifdef VNVME_HAVE_VOID_ISSUE_DISCARD
	__blkdev_issue_discard(bdev, sector, nr, GFP_KERNEL, biop);
	return 0;
#else
	return __blkdev_issue_discard(bdev, sector, nr, GFP_KERNEL, biop);
#endif
}

/* I/O polling moved from QUEUE_FLAG_POLL to the limits' BLK_FEAT_POLL in 6.11. */
static inline bool vnvme_bdev_can_poll(struct block_device *bdev)
{
#ifdef BLK_FEAT_POLL
	return bdev_get_queue(bdev)->limits.features & BLK_FEAT_POLL;
#else
	return test_bit(QUEUE_FLAG_POLL, &bdev_get_queue(bdev)->queue_flags);
#endif
}

/*
 * hrtimer_setup(), which takes the callback, came in 6.13; hrtimer_init()
 * was removed after every caller had moved to it.
 */
static inline void vnvme_hrtimer_setup(struct hrtimer *timer,
				       enum hrtimer_restart (*fn)(struct hrtimer *),
				       clockid_t clock, enum hrtimer_mode mode)
{
#ifdef VNVME_HAVE_HRTIMER_SETUP
	hrtimer_setup(timer, fn, clock, mode);
#else
	hrtimer_init(timer, clock, mode);
	timer->function = fn;
#endif
}

/*
 * BLK_POLL_NOSLEEP is gone by 6.12, where bio_poll() takes only
 * BLK_POLL_ONESHOT and never sleeps.
 */
#ifndef BLK_POLL_NOSLEEP
#define BLK_POLL_NOSLEEP	0
#endif

#endif /* _VHOST_NVME_COMPAT_H */
