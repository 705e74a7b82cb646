// SPDX-License-Identifier: GPL-2.0
/* Guest memory model for the userspace dptr.c builds; see guestmem.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guestmem.h"

void gm_init(struct gm *gm)
{
	memset(gm, 0, sizeof(*gm));
}

void gm_free(struct gm *gm)
{
	unsigned int i;

	for (i = 0; i < gm->nr; i++)
		free(gm->r[i].host);
	gm->nr = 0;
}

void gm_add_region(struct gm *gm, u64 gpa, u64 size)
{
	struct gm_region *r;

	if (gm->nr == GM_MAX_REGIONS || !size || gpa + size - 1 < gpa ||
	    (gm->nr && gpa - gm->r[gm->nr - 1].gpa < gm->r[gm->nr - 1].size) ||
	    (gm->nr && gpa < gm->r[gm->nr - 1].gpa)) {
		fprintf(stderr, "gm_add_region: bad region %#llx+%#llx\n",
			(unsigned long long)gpa, (unsigned long long)size);
		abort();
	}
	r = &gm->r[gm->nr++];
	r->gpa = gpa;
	r->size = size;
	r->host = calloc(1, size);
	if (!r->host)
		abort();
}

static struct gm_region *gm_find(struct gm *gm, u64 gpa)
{
	unsigned int i;

	for (i = 0; i < gm->nr; i++)
		if (gpa >= gm->r[i].gpa && gpa - gm->r[i].gpa < gm->r[i].size)
			return &gm->r[i];
	return NULL;
}

u8 *gm_host(struct gm *gm, u64 gpa, u64 len)
{
	struct gm_region *r = gm_find(gm, gpa);

	if (!r || !len || len > r->size - (gpa - r->gpa))
		return NULL;
	return r->host + (gpa - r->gpa);
}

void gm_w64(struct gm *gm, u64 gpa, u64 val)
{
	u8 *p = gm_host(gm, gpa, 8);
	__le64 v = cpu_to_le64(val);

	if (!p)
		abort();
	memcpy(p, &v, 8);
}

void gm_wsgl(struct gm *gm, u64 gpa, u8 type, u64 addr, u32 len)
{
	struct nvme_sgl_desc d = {
		.addr = cpu_to_le64(addr),
		.length = cpu_to_le32(len),
		.type = type,
	};
	u8 *p = gm_host(gm, gpa, sizeof(d));

	if (!p)
		abort();
	memcpy(p, &d, sizeof(d));
}

void gm_reset_calls(struct gm *gm)
{
	gm->ncalls = 0;
	gm->calls_overflow = false;
	gm->mapped = 0;
	gm->violations = 0;
	gm->violation[0] = 0;
	gm->after_error = false;
	gm->failed = false;
	gm->first_fail = 0;
}

unsigned int gm_count(const struct gm *gm, char op)
{
	unsigned int i, n = 0;

	for (i = 0; i < gm->ncalls; i++)
		n += gm->calls[i].op == op;
	return n;
}

static struct gm *gm_of(struct vnvme_map *m)
{
	return container_of(m, struct gm, m);
}

static void gm_violate(struct gm *gm, const char *what, u64 gpa, u32 len)
{
	if (!gm->violations++)
		snprintf(gm->violation, sizeof(gm->violation),
			 "%s(%#llx, %u)", what, (unsigned long long)gpa, len);
}

/* Record a call; false if the callback budget is exhausted. */
static bool gm_record(struct gm *gm, char op, u64 gpa, u32 len, u16 status)
{
	unsigned int max = gm->max_calls ? gm->max_calls : GM_MAX_CALLS;

	if (gm->failed)
		gm->after_error = true;
	if (status && !gm->failed) {
		gm->failed = true;
		gm->first_fail = status;
	}
	if (gm->ncalls >= max) {
		gm->calls_overflow = true;
		return false;
	}
	gm->calls[gm->ncalls++] = (struct gm_call){ op, gpa, len, status };
	return true;
}

#define GM_DXE	(NVME_SC_DATA_XFER_ERROR | NVME_SC_DNR)

static u16 gm_add_status(struct gm *gm, u64 gpa, u32 len)
{
	u64 left = len;

	if (gm->fail_add_at && gm_count(gm, 'a') + 1 == gm->fail_add_at)
		return gm->fail_status;
	while (left) {
		struct gm_region *r = gm_find(gm, gpa);
		u64 chunk;

		if (!r)
			return GM_DXE;
		chunk = min_t(u64, left, r->size - (gpa - r->gpa));
		left -= chunk;
		gpa += chunk;
		if (left && !gpa)	/* wrapped past 2^64 */
			return GM_DXE;
	}
	return 0;
}

u16 vnvme_map_add(struct vnvme_map *m, u64 gpa, u32 len)
{
	struct gm *gm = gm_of(m);
	u16 status;

	if (!len)
		gm_violate(gm, "map_add with zero length", gpa, len);
	status = gm_add_status(gm, gpa, len);
	if (!gm_record(gm, 'a', gpa, len, status))
		return GM_DXE;
	if (!status)
		gm->mapped += len;
	return status;
}

u16 vnvme_map_read(struct vnvme_map *m, u64 gpa, void *buf, u32 len)
{
	struct gm *gm = gm_of(m);
	u8 *p = NULL;
	u16 status = GM_DXE;

	if (!len || len > VNVME_PAGE_SIZE)
		gm_violate(gm, "map_read length not in 1..page", gpa, len);
	else
		p = gm_host(gm, gpa, len);
	if (p)
		status = 0;
	if (!gm_record(gm, 'r', gpa, len, status))
		return GM_DXE;
	if (p)
		memcpy(buf, p, len);
	return status;
}
