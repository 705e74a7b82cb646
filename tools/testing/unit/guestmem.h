/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A model of guest memory for the userspace builds of drivers/vhost/nvme/
 * dptr.c: a memory table of regions (with holes between them) backed by
 * host buffers, and vnvme_map_add()/vnvme_map_read() over it that record
 * every call.  Semantics follow mem.c: map_add may span adjacent regions,
 * map_read must lie inside one region, anything else is a Data Transfer
 * Error.  A range that wraps past 2^64 is outside the table.
 */
#ifndef _VNVME_GUESTMEM_H
#define _VNVME_GUESTMEM_H

#include <linux/kernel.h>
#include "vnvme.h"	/* drivers/vhost/nvme, via -iquote */

#define GM_MAX_REGIONS	8
#define GM_MAX_CALLS	4096

struct gm_region {
	u64 gpa;
	u64 size;
	u8 *host;
};

struct gm_call {
	char op;		/* 'a' map_add, 'r' map_read */
	u64 gpa;
	u32 len;
	u16 status;		/* what the model returned */
};

struct gm {
	struct vnvme_map m;	/* handed to the walker */
	unsigned int nr;
	struct gm_region r[GM_MAX_REGIONS];	/* sorted by gpa */
	unsigned int ncalls;
	struct gm_call calls[GM_MAX_CALLS];
	unsigned int max_calls;	/* 0: GM_MAX_CALLS */
	bool calls_overflow;	/* more callbacks than max_calls */
	unsigned int fail_add_at;	/* 1-based map_add call to fail, 0 none */
	u16 fail_status;
	u64 mapped;		/* sum of accepted map_add lengths */
	unsigned int violations;	/* calls breaking the documented contract */
	char violation[160];
	bool after_error;	/* a callback came after one that failed */
	bool failed;		/* some callback failed */
	u16 first_fail;		/* status of the first failing callback */
};

void gm_init(struct gm *gm);
void gm_free(struct gm *gm);
/* Add a region; regions must be added in gpa order and not overlap. */
void gm_add_region(struct gm *gm, u64 gpa, u64 size);
/* Host pointer for [gpa, gpa + len) inside one region, or NULL. */
u8 *gm_host(struct gm *gm, u64 gpa, u64 len);
void gm_w64(struct gm *gm, u64 gpa, u64 val);
void gm_wsgl(struct gm *gm, u64 gpa, u8 type, u64 addr, u32 len);
void gm_reset_calls(struct gm *gm);
unsigned int gm_count(const struct gm *gm, char op);

#endif
