/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vhost-nvme: queue index arithmetic.
 *
 * Pure functions of guest-controlled indices, kept apart so that they are
 * built and tested in userspace too (tools/testing/unit/queue_test.c).
 * Indices are entries in [0, size); size is 2..VNVME_MAX_QSIZE.
 */
#ifndef _VHOST_NVME_QUEUE_H
#define _VHOST_NVME_QUEUE_H

#include <linux/types.h>

/* Entries between @head and @tail: those the consumer has not taken. */
static inline u32 vnvme_ring_used(u32 head, u32 tail, u32 size)
{
	return (tail + size - head) % size;
}

/*
 * Is @new_head a head doorbell value the guest may write for a CQ whose
 * last valid head is @head and whose next entry to post is @tail?  It must
 * be an index, and the guest cannot consume entries that were never posted.
 */
static inline bool vnvme_cq_head_valid(u32 head, u32 new_head, u32 tail,
				       u32 size)
{
	return new_head < size &&
	       vnvme_ring_used(head, new_head, size) <=
	       vnvme_ring_used(head, tail, size);
}

/*
 * Entries of a CQ that may still be promised to commands: a CQ holds at
 * most size - 1 entries, and @reserved are promised to commands in flight.
 */
static inline u32 vnvme_cq_space(u32 head, u32 tail, u32 size, u32 reserved)
{
	u32 taken = vnvme_ring_used(head, tail, size) + reserved;

	return taken < size - 1 ? size - 1 - taken : 0;
}

/*
 * NVMe EventIdx rule as the Linux host driver applies it
 * (nvme_dbbuf_need_event()): after moving a doorbell from @old to @new,
 * the host rings the MMIO doorbell iff @event_idx lies in [@old, @new).
 * The controller side writes EventIdx; this is its contract.
 */
static inline bool vnvme_need_event(u16 event_idx, u16 new_idx, u16 old)
{
	return (u16)(new_idx - event_idx - 1) < (u16)(new_idx - old);
}

#endif /* _VHOST_NVME_QUEUE_H */
