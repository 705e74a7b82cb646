// SPDX-License-Identifier: GPL-2.0
/*
 * Userspace tests of drivers/vhost/nvme/queue.h, the queue index arithmetic
 * the worker applies to guest-written doorbell values.  Exhaustive over
 * every small queue size and index, against a model that walks the ring one
 * entry at a time; plus the EventIdx rule from the NVMe host's side.
 * TAP on stdout.
 */
#include <stdio.h>
#include <linux/types.h>

#include "queue.h"

static unsigned int ntest, nfail;

static void ok(bool cond, const char *name)
{
	ntest++;
	if (!cond)
		nfail++;
	printf("%sok %u - %s\n", cond ? "" : "not ", ntest, name);
}

/* Model: step from head to tail one entry at a time. */
static u32 model_used(u32 head, u32 tail, u32 size)
{
	u32 n = 0;

	while (head != tail) {
		head = (head + 1) % size;
		n++;
	}
	return n;
}

int main(void)
{
	bool used_ok = true, head_ok = true, space_ok = true, full_ok = true;
	u32 size, h, t, n, r;

	printf("TAP version 13\n");
	for (size = 2; size <= 66; size++) {
		for (h = 0; h < size; h++) {
			for (t = 0; t < size; t++) {
				u32 used = model_used(h, t, size);

				if (vnvme_ring_used(h, t, size) != used)
					used_ok = false;
				/* valid new heads: h, h+1, ..., t */
				for (n = 0; n < size + 3; n++) {
					bool want = n < size &&
						model_used(h, n, size) <= used;

					if (vnvme_cq_head_valid(h, n, t, size) != want)
						head_ok = false;
				}
				for (r = 0; r < size + 2; r++) {
					u32 taken = used + r;
					u32 want = taken < size - 1 ?
						   size - 1 - taken : 0;

					if (vnvme_cq_space(h, t, size, r) != want)
						space_ok = false;
				}
				/* size - 1 entries posted: full, whatever r */
				if (used == size - 1 &&
				    vnvme_cq_space(h, t, size, 0))
					full_ok = false;
			}
		}
	}
	ok(used_ok, "ring_used matches a step-by-step walk (sizes 2..66)");
	ok(head_ok, "cq_head_valid accepts exactly the heads in [head, tail]");
	ok(space_ok, "cq_space is size - 1 - used - reserved, never negative");
	ok(full_ok, "a CQ with size - 1 entries has no space");
	ok(vnvme_cq_head_valid(1023, 0, 1, 1024), "head may wrap to 0");
	ok(!vnvme_cq_head_valid(0, 2, 1, 1024), "head beyond tail is invalid");
	ok(!vnvme_cq_head_valid(5, 1024, 5, 1024), "head of size is invalid");
	ok(!vnvme_cq_head_valid(5, 0xffffffffu, 5, 1024),
	   "huge head is invalid");

	/* EventIdx, from the host's side (Linux nvme_dbbuf_need_event). */
	ok(vnvme_need_event(5, 6, 5), "EventIdx at the old value: ring");
	ok(!vnvme_need_event(4, 6, 5), "EventIdx behind the old value: no ring");
	ok(vnvme_need_event(5, 9, 3), "EventIdx inside [old, new): ring");
	ok(!vnvme_need_event(9, 9, 3), "EventIdx at new: no ring");
	ok(vnvme_need_event(0xffff, 1, 0xfffe), "wraps at 16 bits");
	{
		/*
		 * After the controller consumed up to c and wrote EventIdx = c,
		 * the next doorbell from c to anything > c rings.
		 */
		bool rings = true;
		u32 c, k;

		for (c = 0; c < 70000; c += 7)
			for (k = 1; k < 64; k++)
				if (!vnvme_need_event(c, c + k, c))
					rings = false;
		ok(rings, "EventIdx = consumed head: the next doorbell rings");
	}
	printf("1..%u\n", ntest);
	return nfail ? 1 : 0;
}
