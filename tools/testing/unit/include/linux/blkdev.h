/* SPDX-License-Identifier: GPL-2.0 */
/* Userspace shim for <linux/blkdev.h>: declarations compat.h names. */
#ifndef _SHIM_LINUX_BLKDEV_H
#define _SHIM_LINUX_BLKDEV_H

#include <linux/fs.h>

#define GFP_KERNEL	0u

struct block_device *I_BDEV(struct inode *inode);
int __blkdev_issue_discard(struct block_device *bdev, sector_t sector,
			   sector_t nr_sects, gfp_t gfp_mask, struct bio **biop);

/* compat.h's vnvme_bdev_can_poll(), as 6.1 has it */
#define QUEUE_FLAG_POLL	16
struct request_queue { unsigned long queue_flags; };
struct request_queue *bdev_get_queue(struct block_device *bdev);
static inline int test_bit(long nr, const unsigned long *addr)
{
	return (*addr >> nr) & 1;
}

#endif
