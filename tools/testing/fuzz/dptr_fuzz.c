// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for drivers/vhost/nvme/dptr.c, built from the module's
 * own source with the shims of tools/testing/unit.  One input is one
 * command's data pointer walk over a guest memory table:
 *
 *   u8  flags     bit 0: SGL (else PRP); bit 1: last region ends at 2^64;
 *                 bit 2: fail the n-th map_add (n = bits 7:4 + 1) with a
 *                 marker status, to check the walker passes it through
 *   u8  nregions  1 + (n % 4) regions
 *   per region: u8 gap (pages after the previous region; the first starts
 *               at gap pages), u8 size (1 + (n % 8) pages)
 *   u32 len       transfer length: 1 + (n % VNVME_MAX_XFER)
 *   16 bytes      the data pointer: PRP1 and PRP2, or SGL1
 *   then chunks of guest memory until the input ends:
 *               u8 region, u16 offset (qwords, modulo the region),
 *               u8 count, count little-endian qwords
 *
 * Checked on every input, besides ASan/UBSan: the walk terminates within a
 * bound derived from the length; no callback after a failed one; a failed
 * callback's status is what the walker returns; the walker honours the
 * callbacks' contracts (map_add length not zero, map_read within 1..page);
 * PRP: the first range starts at PRP1, the others are single page-aligned
 * pages, list reads are qword aligned and inside one page; SGL: ranges and
 * segment reads have dword/descriptor granularity; on success the mapped
 * ranges total exactly the transfer length and each lies inside the table.
 * DPTR_FUZZ_VERBOSE=1 in the environment prints every walk.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/guestmem.h"

#define PS		VNVME_PAGE_SIZE
#define INJECTED	0x7ff0

static struct gm G;
static void *scratch;

struct in {
	const u8 *p;
	size_t n;
};

static u64 take(struct in *in, unsigned int bytes)
{
	u64 v = 0;
	unsigned int i;

	for (i = 0; i < bytes; i++) {
		u8 b = 0;

		if (in->n) {
			b = *in->p++;
			in->n--;
		}
		v |= (u64)b << (8 * i);
	}
	return v;
}

#define FAIL(...) do {							\
	fprintf(stderr, "dptr_fuzz: invariant: " __VA_ARGS__);		\
	fprintf(stderr, "\n");						\
	dump(status, len);						\
	abort();							\
} while (0)

static void dump(u16 status, u32 len)
{
	unsigned int i;

	fprintf(stderr, "status %#x len %u, regions:", status, len);
	for (i = 0; i < G.nr; i++)
		fprintf(stderr, " [%#llx,+%#llx)", (unsigned long long)G.r[i].gpa,
			(unsigned long long)G.r[i].size);
	fprintf(stderr, "\ncalls:\n");
	for (i = 0; i < G.ncalls && i < 40; i++)
		fprintf(stderr, "  %c %#llx %u -> %#x\n", G.calls[i].op,
			(unsigned long long)G.calls[i].gpa, G.calls[i].len,
			G.calls[i].status);
}

static bool known_status(u16 s)
{
	switch (s & ~NVME_SC_DNR) {
	case 0:
	case NVME_SC_PRP_INVALID_OFFSET:
	case NVME_SC_DATA_XFER_ERROR:
	case NVME_SC_SGL_INVALID_LAST:
	case NVME_SC_SGL_INVALID_COUNT:
	case NVME_SC_SGL_INVALID_DATA:
	case NVME_SC_SGL_INVALID_TYPE:
	case NVME_SC_SGL_INVALID_GRANULARITY:
		return true;
	}
	return s == INJECTED;
}

/* [gpa, gpa + len) covered by regions, without wrapping past 2^64. */
static bool covered(u64 gpa, u64 len)
{
	unsigned int i;

	while (len) {
		for (i = 0; i < G.nr; i++)
			if (gpa >= G.r[i].gpa && gpa - G.r[i].gpa < G.r[i].size)
				break;
		if (i == G.nr)
			return false;
		u64 chunk = G.r[i].size - (gpa - G.r[i].gpa);

		if (chunk >= len)
			return true;
		len -= chunk;
		gpa += chunk;
		if (!gpa)
			return false;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	struct in in = { data, size };
	struct nvme_sgl_desc sgl;
	unsigned int flags, nr, i, adds = 0, reads = 0, max_adds, max_reads;
	u64 gpa = 0, prp1, prp2;
	bool is_sgl;
	u16 status = 0;
	u32 len = 0;

	if (!scratch)
		scratch = malloc(PS);	/* exactly what the walkers are given */
	gm_free(&G);
	gm_init(&G);

	flags = take(&in, 1);
	is_sgl = flags & 1;
	nr = 1 + take(&in, 1) % 4;
	for (i = 0; i < nr; i++) {
		u64 gap = take(&in, 1) * PS;
		u64 rsize = (1 + take(&in, 1) % 8) * PS;

		gpa += gap;
		if ((flags & 2) && i == nr - 1) {
			if (gpa > -rsize)
				break;
			gpa = -rsize;
		}
		gm_add_region(&G, gpa, rsize);
		gpa += rsize;
	}
	len = 1 + take(&in, 4) % VNVME_MAX_XFER;
	prp1 = take(&in, 8);
	prp2 = take(&in, 8);
	sgl.addr = cpu_to_le64(prp1);
	sgl.length = cpu_to_le32((u32)prp2);
	memcpy(sgl.rsvd, (u8 *)&prp2 + 4, sizeof(sgl.rsvd));
	sgl.type = prp2 >> 56;
	while (in.n) {
		struct gm_region *r = &G.r[take(&in, 1) % G.nr];
		u64 off = take(&in, 2) * 8 % r->size;
		unsigned int n = take(&in, 1);

		while (n-- && in.n && off + 8 <= r->size) {
			u64 v = cpu_to_le64(take(&in, 8));

			memcpy(r->host + off, &v, 8);
			off += 8;
		}
	}

	gm_reset_calls(&G);
	G.max_calls = GM_MAX_CALLS;
	if (flags & 4) {
		G.fail_add_at = 1 + (flags >> 4);
		G.fail_status = INJECTED;
	}
	if (is_sgl) {
		status = vnvme_walk_sgl(&G.m, &sgl, len, scratch);
		max_reads = VNVME_MAX_SGL_DESCS;
		max_adds = VNVME_MAX_SGL_DESCS + 1;
	} else {
		status = vnvme_walk_prp(&G.m, prp1, prp2, len, scratch);
		max_adds = 2 + DIV_ROUND_UP(len, PS);
		max_reads = 1 + DIV_ROUND_UP(len, PS * (PS / 8 - 1)) + 1;
	}

	if (getenv("DPTR_FUZZ_VERBOSE"))
		dump(status, len);
	if (G.calls_overflow)
		FAIL("more than %u callbacks", GM_MAX_CALLS);
	if (G.violations)
		FAIL("callback contract: %s", G.violation);
	if (G.after_error)
		FAIL("callback after a failed callback");
	if (G.failed && status != G.first_fail)
		FAIL("callback failed with %#x, walker returned %#x",
		     G.first_fail, status);
	if (!known_status(status))
		FAIL("unexpected status %#x", status);

	for (i = 0; i < G.ncalls; i++) {
		const struct gm_call *c = &G.calls[i];

		if (c->op == 'r') {
			reads++;
			if (!is_sgl && ((c->gpa & 7) || (c->len & 7) ||
					(c->gpa & (PS - 1)) + c->len > PS))
				FAIL("PRP list read %#llx+%u", (unsigned long long)c->gpa, c->len);
			if (is_sgl && ((c->gpa & 3) || c->len % 16))
				FAIL("SGL segment read %#llx+%u", (unsigned long long)c->gpa, c->len);
			continue;
		}
		if (!is_sgl && !adds) {
			if (c->gpa != prp1 || c->len > PS - (prp1 & (PS - 1)))
				FAIL("first PRP range %#llx+%u", (unsigned long long)c->gpa, c->len);
		} else if (!is_sgl) {
			if ((c->gpa & (PS - 1)) || c->len > PS)
				FAIL("PRP range %#llx+%u", (unsigned long long)c->gpa, c->len);
		} else if ((c->gpa & 3) || (c->len & 3)) {
			FAIL("SGL range %#llx+%u", (unsigned long long)c->gpa, c->len);
		}
		if (!status && !covered(c->gpa, c->len))
			FAIL("success with a range outside the table %#llx+%u",
			     (unsigned long long)c->gpa, c->len);
		adds++;
	}
	if (adds > max_adds || reads > max_reads)
		FAIL("%u map_add, %u map_read: more than %u/%u", adds, reads,
		     max_adds, max_reads);
	if (!status && G.mapped != len)
		FAIL("success with %llu of %u bytes mapped",
		     (unsigned long long)G.mapped, len);
	return 0;
}
