// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests for drivers/vhost/nvme/dptr.c, built from the module's own
 * source in userspace (see Makefile).  Every case sets up guest memory,
 * walks one data pointer and checks the exact status and the exact list of
 * (gpa, len) ranges handed to vnvme_map_add(), in order; some also check
 * the list pages and segments read through vnvme_map_read().  Output: TAP.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guestmem.h"

#define PS		VNVME_PAGE_SIZE
#define DNR		NVME_SC_DNR
#define SC_OFFSET	(NVME_SC_PRP_INVALID_OFFSET | DNR)
#define SC_DXE		(NVME_SC_DATA_XFER_ERROR | DNR)
#define SC_TYPE		(NVME_SC_SGL_INVALID_TYPE | DNR)
#define SC_LAST		(NVME_SC_SGL_INVALID_LAST | DNR)
#define SC_COUNT	(NVME_SC_SGL_INVALID_COUNT | DNR)
#define SC_DATA		(NVME_SC_SGL_INVALID_DATA | DNR)
#define SC_GRAN		(NVME_SC_SGL_INVALID_GRANULARITY | DNR)

/* SGL descriptor type bytes: descriptor type << 4 | subtype. */
#define T_DATA		(NVME_SGL_FMT_DATA_DESC << 4 | NVME_SGL_FMT_ADDRESS)
#define T_SEG		(NVME_SGL_FMT_SEG_DESC << 4 | NVME_SGL_FMT_ADDRESS)
#define T_LAST		(NVME_SGL_FMT_LAST_SEG_DESC << 4 | NVME_SGL_FMT_ADDRESS)
#define T_BITBUCKET	0x10
#define T_KEYED		0x40

/* The memory table: two holes, two adjacent regions, one at 2^64 - 64K. */
#define R0		0x0ULL		/* 1 MiB */
#define HOLE		0x180000ULL	/* [1 MiB, 2 MiB) is a hole */
#define R1		0x200000ULL	/* 64 KiB, R2 follows directly */
#define R2		0x210000ULL	/* 64 KiB, then a hole up to R3 */
#define R3		0xffffffffffff0000ULL	/* 64 KiB up to 2^64 */
#define LIST		0x80000ULL	/* list pages / segments live here */
#define SEG		0x90000ULL

struct rng {
	u64 gpa;
	u32 len;
};

struct exp {
	unsigned int n;
	struct rng r[GM_MAX_CALLS];
};

#define ANY		(~0u)
#define RANGES(...)	((const struct rng[]){ __VA_ARGS__ }), \
			(unsigned int)(sizeof((const struct rng[]){ __VA_ARGS__ }) / \
				       sizeof(struct rng))
#define NONE		NULL, 0
#define ANY_READS	NULL, ANY

static struct gm G;
static void *scratch;
static unsigned int ntest, nfail;
static struct exp EA, ER;	/* builders for long expectations */

static void ex_reset(struct exp *e)
{
	e->n = 0;
}

static void ex_add(struct exp *e, u64 gpa, u32 len)
{
	if (e->n == GM_MAX_CALLS)
		abort();
	e->r[e->n++] = (struct rng){ gpa, len };
}

static bool cmp_calls(char op, const struct rng *exp, unsigned int n,
		      char *why, size_t whylen)
{
	unsigned int i, k = 0;

	if (n == ANY)
		return true;
	for (i = 0; i < G.ncalls; i++) {
		const struct gm_call *c = &G.calls[i];

		if (c->op != op)
			continue;
		if (k >= n) {
			snprintf(why, whylen, "extra map_%s #%u (%#llx, %u)",
				 op == 'a' ? "add" : "read", k,
				 (unsigned long long)c->gpa, c->len);
			return false;
		}
		if (c->gpa != exp[k].gpa || c->len != exp[k].len) {
			snprintf(why, whylen,
				 "map_%s #%u: got (%#llx, %u), want (%#llx, %u)",
				 op == 'a' ? "add" : "read", k,
				 (unsigned long long)c->gpa, c->len,
				 (unsigned long long)exp[k].gpa, exp[k].len);
			return false;
		}
		k++;
	}
	if (k != n) {
		snprintf(why, whylen, "map_%s: %u calls, want %u (next (%#llx, %u))",
			 op == 'a' ? "add" : "read", k, n,
			 (unsigned long long)exp[k].gpa, exp[k].len);
		return false;
	}
	return true;
}

static void check(const char *name, u16 got, u16 want, u32 len,
		  const struct rng *adds, unsigned int nadds,
		  const struct rng *reads, unsigned int nreads)
{
	char why[256] = "";
	bool ok = true;

	ntest++;
	if (got != want) {
		snprintf(why, sizeof(why), "status %#x, want %#x", got, want);
		ok = false;
	} else if (!cmp_calls('a', adds, nadds, why, sizeof(why)) ||
		   !cmp_calls('r', reads, nreads, why, sizeof(why))) {
		ok = false;
	} else if (G.violations) {
		snprintf(why, sizeof(why), "contract: %s", G.violation);
		ok = false;
	} else if (G.after_error) {
		snprintf(why, sizeof(why), "callback after a failed callback");
		ok = false;
	} else if (G.failed && got != G.first_fail) {
		snprintf(why, sizeof(why), "status %#x, callback failed with %#x",
			 got, G.first_fail);
		ok = false;
	} else if (!got && G.mapped != len) {
		snprintf(why, sizeof(why), "success but mapped %llu of %u bytes",
			 (unsigned long long)G.mapped, len);
		ok = false;
	} else if (G.calls_overflow) {
		snprintf(why, sizeof(why), "more than %u callbacks", GM_MAX_CALLS);
		ok = false;
	}
	printf("%sok %u - %s\n", ok ? "" : "not ", ntest, name);
	if (!ok) {
		nfail++;
		printf("# %s\n", why);
	}
	G.fail_add_at = 0;
}

static u16 walk_prp(u64 prp1, u64 prp2, u32 len)
{
	gm_reset_calls(&G);
	return vnvme_walk_prp(&G.m, prp1, prp2, len, scratch);
}

static u16 walk_sgl(u8 type, u64 addr, u32 dlen, u32 len)
{
	struct nvme_sgl_desc d = {
		.addr = cpu_to_le64(addr),
		.length = cpu_to_le32(dlen),
		.type = type,
	};

	gm_reset_calls(&G);
	return vnvme_walk_sgl(&G.m, &d, len, scratch);
}

#define PRP(name, p1, p2, len, want, ...) \
	check(name, walk_prp(p1, p2, len), want, len, __VA_ARGS__)
#define SGL(name, type, addr, dlen, len, want, ...) \
	check(name, walk_sgl(type, addr, dlen, len), want, len, __VA_ARGS__)

/* Write @n PRP entries at @gpa: data pages D(first), D(first+1), ... */
static u64 dpage(unsigned int i)
{
	return 0x1000 + (u64)(i % 64) * PS;	/* 64 distinct data pages */
}

static void list_fill(u64 gpa, unsigned int first, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		gm_w64(&G, gpa + 8 * i, dpage(first + i));
}

static void test_prp(void)
{
	unsigned int i;

	PRP("PRP1 only, page aligned, one page", 0x1000, 0, PS, 0,
	    RANGES({ 0x1000, PS }), ANY_READS);
	PRP("PRP1 only, short transfer", 0x1000, 0, 512, 0,
	    RANGES({ 0x1000, 512 }), NONE);
	PRP("PRP1 with offset up to the end of its page", 0x1200, 0, 0xe00, 0,
	    RANGES({ 0x1200, 0xe00 }), NONE);
	PRP("PRP1 with a dword (not qword) offset", 0x1004, 0, 8, 0,
	    RANGES({ 0x1004, 8 }), NONE);
	PRP("PRP2 ignored when PRP1 covers the transfer", 0x1000, HOLE + 3, PS, 0,
	    RANGES({ 0x1000, PS }), NONE);
	PRP("PRP1 + PRP2, two pages", 0x1000, 0x5000, 2 * PS, 0,
	    RANGES({ 0x1000, PS }, { 0x5000, PS }), NONE);
	PRP("PRP1 with offset + PRP2", 0x1800, 0x5000, PS, 0,
	    RANGES({ 0x1800, 0x800 }, { 0x5000, 0x800 }), NONE);
	PRP("PRP1 16 bytes before a page end + PRP2", 0x1ff0, 0x5000, 0x20, 0,
	    RANGES({ 0x1ff0, 0x10 }, { 0x5000, 0x10 }), NONE);
	PRP("PRP2 page at the top of the address space", 0x1000, R3 + 0xf000,
	    2 * PS, 0, RANGES({ 0x1000, PS }, { R3 + 0xf000, PS }), NONE);

	gm_w64(&G, LIST, 0x20000);
	gm_w64(&G, LIST + 8, 0x21000);
	gm_w64(&G, LIST + 16, 0x22000);
	PRP("PRP list, page aligned", 0x1000, LIST, 4 * PS, 0,
	    RANGES({ 0x1000, PS }, { 0x20000, PS }, { 0x21000, PS }, { 0x22000, PS }),
	    RANGES({ LIST, 24 }));

	gm_w64(&G, LIST + 0x100, 0x20000);
	gm_w64(&G, LIST + 0x108, 0x21000);
	gm_w64(&G, LIST + 0x110, 0x22000);
	PRP("PRP list starting mid-page", 0x1000, LIST + 0x100, 4 * PS, 0,
	    RANGES({ 0x1000, PS }, { 0x20000, PS }, { 0x21000, PS }, { 0x22000, PS }),
	    RANGES({ LIST + 0x100, 24 }));

	gm_w64(&G, LIST + 24, 0x23000);
	PRP("PRP list after PRP1 offset, partial last page", 0x1100, LIST, 4 * PS, 0,
	    RANGES({ 0x1100, 0xf00 }, { 0x20000, PS }, { 0x21000, PS },
		   { 0x22000, PS }, { 0x23000, 0x100 }),
	    RANGES({ LIST, 32 }));

	/* A list at offset 4080 has two slots. */
	gm_w64(&G, LIST + 4080, 0x20000);
	gm_w64(&G, LIST + 4088, LIST + PS);
	gm_w64(&G, LIST + PS, 0x21000);
	gm_w64(&G, LIST + PS + 8, 0x22000);
	gm_w64(&G, LIST + PS + 16, 0x23000);
	PRP("PRP list at offset 4080 chains through its second slot",
	    0x1000, LIST + 4080, 5 * PS, 0,
	    RANGES({ 0x1000, PS }, { 0x20000, PS }, { 0x21000, PS },
		   { 0x22000, PS }, { 0x23000, PS }),
	    RANGES({ LIST + 4080, 16 }, { LIST + PS, 24 }));

	gm_w64(&G, LIST + 4088, 0x21000);
	PRP("PRP list at offset 4080 with exactly two entries: no chain",
	    0x1000, LIST + 4080, 3 * PS, 0,
	    RANGES({ 0x1000, PS }, { 0x20000, PS }, { 0x21000, PS }),
	    RANGES({ LIST + 4080, 16 }));

	/* A list at offset 4088 has one slot: it must chain. */
	gm_w64(&G, LIST + 4088, LIST + PS);
	gm_w64(&G, LIST + PS, 0x20000);
	gm_w64(&G, LIST + PS + 8, 0x21000);
	PRP("PRP list at offset 4088: its only entry chains", 0x1000, LIST + 4088,
	    3 * PS, 0, RANGES({ 0x1000, PS }, { 0x20000, PS }, { 0x21000, PS }),
	    RANGES({ LIST + 4088, 8 }, { LIST + PS, 16 }));

	/* Offset 4088 -> full page (511 data + chain) -> two entries. */
	gm_w64(&G, LIST + 4088, LIST + PS);
	list_fill(LIST + PS, 0, 511);
	gm_w64(&G, LIST + PS + 511 * 8, LIST + 2 * PS);
	list_fill(LIST + 2 * PS, 511, 2);
	ex_reset(&EA);
	ex_add(&EA, 0x1000, PS);
	for (i = 0; i < 513; i++)
		ex_add(&EA, dpage(i), PS);
	PRP("PRP list chained twice from offset 4088 (514 pages)", 0x1000,
	    LIST + 4088, 514 * PS, 0, EA.r, EA.n,
	    RANGES({ LIST + 4088, 8 }, { LIST + PS, PS }, { LIST + 2 * PS, 16 }));

	list_fill(LIST, 0, 512);
	ex_reset(&EA);
	ex_add(&EA, 0x1000, PS);
	for (i = 0; i < 512; i++)
		ex_add(&EA, dpage(i), PS);
	PRP("PRP list page with 512 data entries: last entry is data",
	    0x1000, LIST, 513 * PS, 0, EA.r, EA.n, RANGES({ LIST, PS }));

	gm_w64(&G, LIST + 511 * 8, LIST + PS);
	list_fill(LIST + PS, 511, 2);
	ex_reset(&EA);
	ex_add(&EA, 0x1000, PS);
	for (i = 0; i < 513; i++)
		ex_add(&EA, dpage(i), PS);
	PRP("PRP list with 513 entries: entry 511 chains", 0x1000, LIST,
	    514 * PS, 0, EA.r, EA.n, RANGES({ LIST, PS }, { LIST + PS, 16 }));

	list_fill(LIST, 0, 64);
	ex_reset(&EA);
	ex_add(&EA, 0x1000, PS);
	for (i = 0; i < 63; i++)
		ex_add(&EA, dpage(i), PS);
	PRP("MDTS-sized transfer, PRP1 aligned", 0x1000, LIST, VNVME_MAX_XFER, 0,
	    EA.r, EA.n, RANGES({ LIST, 63 * 8 }));

	ex_reset(&EA);
	ex_add(&EA, 0x1200, 0xe00);
	for (i = 0; i < 63; i++)
		ex_add(&EA, dpage(i), PS);
	ex_add(&EA, dpage(63), 0x200);
	PRP("MDTS-sized transfer, PRP1 offset 0x200 (65 pages)", 0x1200, LIST,
	    VNVME_MAX_XFER, 0, EA.r, EA.n, RANGES({ LIST, 64 * 8 }));

	list_fill(LIST + 4000, 0, 11);
	gm_w64(&G, LIST + 4088, LIST + PS);
	list_fill(LIST + PS, 11, 52);
	ex_reset(&EA);
	ex_add(&EA, 0x1000, PS);
	for (i = 0; i < 63; i++)
		ex_add(&EA, dpage(i), PS);
	PRP("MDTS-sized transfer, list at offset 4000 (12 slots) chains",
	    0x1000, LIST + 4000, VNVME_MAX_XFER, 0, EA.r, EA.n,
	    RANGES({ LIST + 4000, 96 }, { LIST + PS, 52 * 8 }));
}

static void test_prp_errors(void)
{
	unsigned int i;

	PRP("PRP1 offset 1: PRP Offset Invalid", 0x1001, 0, 8, SC_OFFSET, NONE, NONE);
	PRP("PRP1 offset 2: PRP Offset Invalid", 0x1002, 0, 8, SC_OFFSET, NONE, NONE);
	PRP("PRP1 offset 0xfff: PRP Offset Invalid", 0x1fff, 0x5000, PS, SC_OFFSET,
	    NONE, NONE);
	PRP("PRP2 data pointer with offset", 0x1000, 0x5004, 2 * PS, SC_OFFSET,
	    RANGES({ 0x1000, PS }), NONE);
	PRP("PRP2 data pointer with offset after PRP1 offset", 0x1800, 0x5800, PS,
	    SC_OFFSET, RANGES({ 0x1800, 0x800 }), NONE);
	PRP("PRP list pointer not qword aligned", 0x1000, LIST + 4, 3 * PS,
	    SC_OFFSET, RANGES({ 0x1000, PS }), NONE);
	PRP("PRP list pointer offset 0x802", 0x1000, LIST + 0x802, 3 * PS,
	    SC_OFFSET, RANGES({ 0x1000, PS }), NONE);

	gm_w64(&G, LIST, 0x20008);
	gm_w64(&G, LIST + 8, 0x21000);
	PRP("PRP list: first entry with offset", 0x1000, LIST, 3 * PS, SC_OFFSET,
	    RANGES({ 0x1000, PS }), RANGES({ LIST, 16 }));

	gm_w64(&G, LIST, 0x20000);
	gm_w64(&G, LIST + 8, 0x21000);
	gm_w64(&G, LIST + 16, 0x22200);
	PRP("PRP list: later entry with offset", 0x1000, LIST, 4 * PS, SC_OFFSET,
	    RANGES({ 0x1000, PS }, { 0x20000, PS }, { 0x21000, PS }),
	    RANGES({ LIST, 24 }));

	gm_w64(&G, LIST + 16, 0x22100);
	PRP("PRP list: last, partial entry still needs offset 0", 0x1000, LIST,
	    3 * PS + 0x100, SC_OFFSET,
	    RANGES({ 0x1000, PS }, { 0x20000, PS }, { 0x21000, PS }),
	    RANGES({ LIST, 24 }));

	gm_w64(&G, LIST + 4080, 0x20000);
	gm_w64(&G, LIST + 4088, LIST + PS + 8);
	PRP("PRP list: chain pointer not page aligned", 0x1000, LIST + 4080,
	    5 * PS, SC_OFFSET, RANGES({ 0x1000, PS }, { 0x20000, PS }),
	    RANGES({ LIST + 4080, 16 }));

	gm_w64(&G, LIST + 4088, LIST + PS + 0x800);
	PRP("PRP list at offset 4088: chain pointer with offset", 0x1000,
	    LIST + 4088, 3 * PS, SC_OFFSET, RANGES({ 0x1000, PS }),
	    RANGES({ LIST + 4088, 8 }));

	list_fill(LIST, 0, 511);
	gm_w64(&G, LIST + 511 * 8, LIST + PS + 0x10);
	ex_reset(&EA);
	ex_add(&EA, 0x1000, PS);
	for (i = 0; i < 511; i++)
		ex_add(&EA, dpage(i), PS);
	PRP("PRP list: chain pointer at the end of a full page misaligned",
	    0x1000, LIST, 514 * PS, SC_OFFSET, EA.r, EA.n, RANGES({ LIST, PS }));

	/* Addresses outside the memory table. */
	PRP("PRP1 in a hole: Data Transfer Error", HOLE, 0, PS, SC_DXE,
	    RANGES({ HOLE, PS }), NONE);
	PRP("PRP1 between R2 and R3", 0xfff0000000ULL, 0, 16, SC_DXE,
	    RANGES({ 0xfff0000000ULL, 16 }), NONE);
	PRP("PRP2 data page in a hole", 0x1000, HOLE + PS, 2 * PS, SC_DXE,
	    RANGES({ 0x1000, PS }, { HOLE + PS, PS }), NONE);
	PRP("PRP list page in a hole", 0x1000, HOLE, 3 * PS, SC_DXE,
	    RANGES({ 0x1000, PS }), RANGES({ HOLE, 16 }));
	gm_w64(&G, LIST, 0x20000);
	gm_w64(&G, LIST + 8, HOLE + 0x10000);
	PRP("PRP list entry in a hole", 0x1000, LIST, 3 * PS, SC_DXE,
	    RANGES({ 0x1000, PS }, { 0x20000, PS }, { HOLE + 0x10000, PS }),
	    RANGES({ LIST, 16 }));
	gm_w64(&G, LIST + 4080, 0x20000);
	gm_w64(&G, LIST + 4088, HOLE + 0x20000);
	PRP("PRP chained list page in a hole", 0x1000, LIST + 4080, 5 * PS,
	    SC_DXE, RANGES({ 0x1000, PS }, { 0x20000, PS }),
	    RANGES({ LIST + 4080, 16 }, { HOLE + 0x20000, 24 }));

	gm_w64(&G, LIST, 0x20000);
	gm_w64(&G, LIST + 8, 0x21000);
	G.fail_add_at = 2;
	G.fail_status = 0x1234;
	PRP("PRP: a failing map_add's status is returned and the walk stops",
	    0x1000, LIST, 3 * PS, 0x1234, RANGES({ 0x1000, PS }, { 0x20000, PS }),
	    RANGES({ LIST, 16 }));
}

static void test_sgl(void)
{
	unsigned int i;

	SGL("SGL data block equal to the transfer", T_DATA, 0x1000, 2 * PS,
	    2 * PS, 0, RANGES({ 0x1000, 2 * PS }), NONE);
	SGL("SGL data block at a dword offset", T_DATA, 0x1004, 12, 12, 0,
	    RANGES({ 0x1004, 12 }), NONE);
	SGL("SGL data block spanning two adjacent regions", T_DATA, R2 - PS,
	    2 * PS, 2 * PS, 0, RANGES({ R2 - PS, 2 * PS }), NONE);
	SGL("SGL data block longer than the transfer", T_DATA, 0x1000, 2 * PS,
	    PS, SC_DATA, NONE, NONE);
	SGL("SGL data block shorter than the transfer", T_DATA, 0x1000, PS,
	    2 * PS, SC_DATA, RANGES({ 0x1000, PS }), NONE);
	SGL("SGL data block, offset subtype", 0x01, 0x1000, PS, PS, SC_TYPE,
	    NONE, NONE);
	SGL("SGL data block, transport subtype 0xA", 0x0a, 0x1000, PS, PS,
	    SC_TYPE, NONE, NONE);
	SGL("SGL1 bit bucket", T_BITBUCKET, 0x1000, PS, PS, SC_TYPE, NONE, NONE);
	SGL("SGL1 keyed data block", T_KEYED, 0x1000, PS, PS, SC_TYPE, NONE, NONE);
	SGL("SGL1 vendor specific type", 0xf0, 0x1000, PS, PS, SC_TYPE, NONE, NONE);
	SGL("SGL1 reserved type 6", 0x60, 0x1000, PS, PS, SC_TYPE, NONE, NONE);
	SGL("SGL data block address not dword aligned", T_DATA, 0x1002, PS, PS,
	    SC_GRAN, NONE, NONE);
	SGL("SGL data block length not a dword multiple", T_DATA, 0x1000,
	    PS - 2, PS, SC_GRAN, NONE, NONE);
	SGL("SGL data block running into a hole", T_DATA, R2 + 0xf000, 2 * PS,
	    2 * PS, SC_DXE, RANGES({ R2 + 0xf000, 2 * PS }), NONE);
	SGL("SGL data block in a hole", T_DATA, HOLE, PS, PS, SC_DXE,
	    RANGES({ HOLE, PS }), NONE);
	SGL("SGL data block wrapping past 2^64", T_DATA, R3 + 0xf000, 2 * PS,
	    2 * PS, SC_DXE, RANGES({ R3 + 0xf000, 2 * PS }), NONE);

	gm_wsgl(&G, SEG, T_DATA, 0x1000, 0x1000);
	gm_wsgl(&G, SEG + 16, T_DATA, 0x5000, 0x800);
	gm_wsgl(&G, SEG + 32, T_DATA, 0x7000, 0x800);
	SGL("SGL Last Segment with three data blocks", T_LAST, SEG, 48, 2 * PS, 0,
	    RANGES({ 0x1000, 0x1000 }, { 0x5000, 0x800 }, { 0x7000, 0x800 }),
	    RANGES({ SEG, 48 }));

	gm_wsgl(&G, SEG, T_DATA, 0x1000, PS);
	gm_wsgl(&G, SEG + 16, T_DATA, 0x3000, PS);
	gm_wsgl(&G, SEG + 32, T_LAST, SEG + PS, 32);
	gm_wsgl(&G, SEG + PS, T_DATA, 0x5000, PS);
	gm_wsgl(&G, SEG + PS + 16, T_DATA, 0x7000, PS);
	SGL("SGL Segment -> Last Segment", T_SEG, SEG, 48, 4 * PS, 0,
	    RANGES({ 0x1000, PS }, { 0x3000, PS }, { 0x5000, PS }, { 0x7000, PS }),
	    RANGES({ SEG, 48 }, { SEG + PS, 32 }));

	gm_wsgl(&G, SEG, T_SEG, SEG + PS, 16);
	gm_wsgl(&G, SEG + PS, T_LAST, SEG + 2 * PS, 16);
	gm_wsgl(&G, SEG + 2 * PS, T_DATA, 0x1000, PS);
	SGL("SGL Segment -> Segment -> Last Segment, one descriptor each", T_SEG,
	    SEG, 16, PS, 0, RANGES({ 0x1000, PS }),
	    RANGES({ SEG, 16 }, { SEG + PS, 16 }, { SEG + 2 * PS, 16 }));

	gm_wsgl(&G, SEG + 4, T_DATA, 0x1000, PS);
	SGL("SGL segment at a dword (not qword) address", T_LAST, SEG + 4, 16,
	    PS, 0, RANGES({ 0x1000, PS }), RANGES({ SEG + 4, 16 }));

	gm_wsgl(&G, R2 - 32, T_DATA, 0x1000, 0x800);
	gm_wsgl(&G, R2 - 16, T_DATA, 0x3000, 0x800);
	SGL("SGL segment at the end of a region", T_LAST, R2 - 32, 32, PS, 0,
	    RANGES({ 0x1000, 0x800 }, { 0x3000, 0x800 }), RANGES({ R2 - 32, 32 }));

	gm_wsgl(&G, SEG, T_DATA, 0x1000, 0);
	gm_wsgl(&G, SEG + 16, T_DATA, 0x2000, PS);
	gm_wsgl(&G, SEG + 32, T_DATA, 0x3000, 0);
	SGL("SGL zero-length data blocks are skipped", T_LAST, SEG, 48, PS, 0,
	    RANGES({ 0x2000, PS }), RANGES({ SEG, 48 }));

	gm_wsgl(&G, SEG, T_DATA, 0x1000, 0x800);
	gm_wsgl(&G, SEG + 16, T_DATA, 0x2000, 0x800);
	SGL("SGL Segment (not Last) ending with a data block", T_SEG, SEG, 32, PS,
	    SC_LAST, RANGES({ 0x1000, 0x800 }), RANGES({ SEG, 32 }));

	gm_wsgl(&G, SEG + 16, T_SEG, SEG + PS, 16);
	SGL("SGL Last Segment ending with a Segment descriptor", T_LAST, SEG, 32,
	    PS, SC_LAST, RANGES({ 0x1000, 0x800 }), RANGES({ SEG, 32 }));
	gm_wsgl(&G, SEG + 16, T_LAST, SEG + PS, 16);
	SGL("SGL Last Segment ending with a Last Segment descriptor", T_LAST,
	    SEG, 32, PS, SC_LAST, RANGES({ 0x1000, 0x800 }), RANGES({ SEG, 32 }));

	gm_wsgl(&G, SEG + 16, T_SEG, SEG + PS, 16);
	gm_wsgl(&G, SEG + 32, T_LAST, SEG + 2 * PS, 16);
	SGL("SGL Segment descriptor in a non-last position", T_SEG, SEG, 48, PS,
	    SC_LAST, RANGES({ 0x1000, 0x800 }), RANGES({ SEG, 48 }));
	gm_wsgl(&G, SEG + 16, T_LAST, SEG + PS, 16);
	gm_wsgl(&G, SEG + 32, T_DATA, 0x2000, 0x800);
	SGL("SGL Last Segment descriptor in a non-last position", T_LAST, SEG, 48,
	    PS, SC_LAST, RANGES({ 0x1000, 0x800 }), RANGES({ SEG, 48 }));

	gm_wsgl(&G, SEG + 16, T_BITBUCKET, 0, 0x800);
	SGL("SGL bit bucket inside a segment", T_LAST, SEG, 48, PS, SC_TYPE,
	    RANGES({ 0x1000, 0x800 }), RANGES({ SEG, 48 }));
	SGL("SGL bit bucket as last descriptor of a Last Segment", T_LAST, SEG,
	    32, PS, SC_TYPE, RANGES({ 0x1000, 0x800 }), RANGES({ SEG, 32 }));
	gm_wsgl(&G, SEG + 16, T_KEYED, 0x2000, 0x800);
	SGL("SGL keyed data block inside a segment", T_LAST, SEG, 32, PS,
	    SC_TYPE, RANGES({ 0x1000, 0x800 }), RANGES({ SEG, 32 }));
	gm_wsgl(&G, SEG + 16, 0x01, 0x2000, 0x800);
	SGL("SGL data block with offset subtype inside a segment", T_LAST, SEG,
	    32, PS, SC_TYPE, RANGES({ 0x1000, 0x800 }), RANGES({ SEG, 32 }));
	gm_wsgl(&G, SEG + 16, T_DATA, 0x2002, 0x800);
	SGL("SGL misaligned data block inside a segment", T_LAST, SEG, 32, PS,
	    SC_GRAN, RANGES({ 0x1000, 0x800 }), RANGES({ SEG, 32 }));
	gm_wsgl(&G, SEG + 16, T_DATA, HOLE, 0x800);
	SGL("SGL data block in a hole inside a segment", T_LAST, SEG, 32, PS,
	    SC_DXE, RANGES({ 0x1000, 0x800 }, { HOLE, 0x800 }), RANGES({ SEG, 32 }));

	SGL("SGL Segment descriptor with offset subtype", 0x21, SEG, 16, PS,
	    SC_TYPE, NONE, NONE);
	SGL("SGL Last Segment descriptor with offset subtype", 0x31, SEG, 16, PS,
	    SC_TYPE, NONE, NONE);
	SGL("SGL Segment of length 0", T_SEG, SEG, 0, PS, SC_COUNT, NONE, NONE);
	SGL("SGL Segment of length 24", T_SEG, SEG, 24, PS, SC_COUNT, NONE, NONE);
	SGL("SGL Last Segment of length 8", T_LAST, SEG, 8, PS, SC_COUNT, NONE,
	    NONE);
	SGL("SGL segment address not dword aligned", T_LAST, SEG + 2, 16, PS,
	    SC_GRAN, NONE, NONE);
	gm_wsgl(&G, SEG, T_DATA, 0x1000, 0x800);
	gm_wsgl(&G, SEG + 16, T_LAST, SEG + PS, 0);
	SGL("SGL chained Last Segment of length 0", T_SEG, SEG, 32, PS, SC_COUNT,
	    RANGES({ 0x1000, 0x800 }), RANGES({ SEG, 32 }));
	SGL("SGL segment in a hole", T_LAST, HOLE, 16, PS, SC_DXE, NONE,
	    RANGES({ HOLE, 16 }));
	SGL("SGL segment crossing from a region into a hole", T_LAST,
	    0x100000 - 16, 32, PS, SC_DXE, NONE, RANGES({ 0x100000 - 16, 32 }));
	SGL("SGL segment spanning two adjacent regions", T_LAST, R2 - 16, 32, PS,
	    SC_DXE, NONE, RANGES({ R2 - 16, 32 }));

	gm_wsgl(&G, SEG, T_DATA, 0x1000, PS);
	gm_wsgl(&G, SEG + 16, T_DATA, 0x2000, PS);
	SGL("SGL data blocks describing more than the transfer", T_LAST, SEG, 32,
	    PS + PS / 2, SC_DATA, RANGES({ 0x1000, PS }), RANGES({ SEG, 32 }));
	SGL("SGL data blocks describing less than the transfer", T_LAST, SEG, 32,
	    4 * PS, SC_DATA, RANGES({ 0x1000, PS }, { 0x2000, PS }),
	    RANGES({ SEG, 32 }));

	/* Loops and descriptor counts. */
	gm_wsgl(&G, SEG, T_SEG, SEG, 16);
	ex_reset(&ER);
	for (i = 0; i < VNVME_MAX_SGL_DESCS; i++)
		ex_add(&ER, SEG, 16);
	SGL("SGL Segment pointing to itself", T_SEG, SEG, 16, PS, SC_COUNT, NONE,
	    ER.r, ER.n);

	gm_wsgl(&G, SEG, T_DATA, 0x1000, 4);
	gm_wsgl(&G, SEG + 16, T_SEG, SEG, 32);
	ex_reset(&EA);
	ex_reset(&ER);
	for (i = 0; i < VNVME_MAX_SGL_DESCS / 2; i++) {
		ex_add(&EA, 0x1000, 4);
		ex_add(&ER, SEG, 32);
	}
	SGL("SGL Segment with data pointing to itself", T_SEG, SEG, 32, PS,
	    SC_COUNT, EA.r, EA.n, ER.r, ER.n);

	gm_wsgl(&G, SEG, T_DATA, 0x1000, 4);
	gm_wsgl(&G, SEG + 16, T_SEG, SEG + PS, 32);
	gm_wsgl(&G, SEG + PS, T_DATA, 0x2000, 4);
	gm_wsgl(&G, SEG + PS + 16, T_SEG, SEG, 32);
	ex_reset(&EA);
	ex_reset(&ER);
	for (i = 0; i < VNVME_MAX_SGL_DESCS / 2; i++) {
		ex_add(&EA, i & 1 ? 0x2000 : 0x1000, 4);
		ex_add(&ER, i & 1 ? SEG + PS : SEG, 32);
	}
	SGL("SGL two Segments pointing to each other", T_SEG, SEG, 32, PS,
	    SC_COUNT, EA.r, EA.n, ER.r, ER.n);

	ex_reset(&EA);
	for (i = 0; i < 256; i++) {
		gm_wsgl(&G, LIST + 16 * i, T_DATA, 0x1000 + 64 * i, 16);
		ex_add(&EA, 0x1000 + 64 * i, 16);
	}
	SGL("SGL Last Segment of 256 data blocks", T_LAST, LIST, PS, PS, 0,
	    EA.r, EA.n, RANGES({ LIST, PS }));
	SGL("SGL Last Segment of 257 descriptors", T_LAST, LIST, PS + 16, PS + 16,
	    SC_COUNT, NONE, NONE);
	SGL("SGL Segment of 256 data blocks, no chain", T_SEG, LIST, PS, PS,
	    SC_LAST, EA.r, 255, RANGES({ LIST, PS }));

	ex_reset(&EA);
	for (i = 0; i < 127; i++) {
		gm_wsgl(&G, LIST + 16 * i, T_DATA, 0x1000 + 64 * i, 16);
		ex_add(&EA, 0x1000 + 64 * i, 16);
	}
	gm_wsgl(&G, LIST + 16 * 127, T_LAST, LIST + PS, 128 * 16);
	for (i = 0; i < 129; i++)
		gm_wsgl(&G, LIST + PS + 16 * i, T_DATA, 0x3000 + 16 * i, 16);
	for (i = 0; i < 128; i++)
		ex_add(&EA, 0x3000 + 16 * i, 16);
	SGL("SGL 256 descriptors over two segments", T_SEG, LIST, 128 * 16,
	    255 * 16, 0, EA.r, EA.n, RANGES({ LIST, 128 * 16 }, { LIST + PS, 128 * 16 }));
	gm_wsgl(&G, LIST + 16 * 127, T_LAST, LIST + PS, 129 * 16);
	SGL("SGL 257 descriptors over two segments", T_SEG, LIST, 128 * 16,
	    256 * 16, SC_COUNT, EA.r, 127, RANGES({ LIST, 128 * 16 }));

	gm_wsgl(&G, SEG, T_DATA, 0x1000, PS);
	gm_wsgl(&G, SEG + 16, T_DATA, 0x2000, PS);
	G.fail_add_at = 2;
	G.fail_status = 0x4321;
	SGL("SGL: a failing map_add's status is returned and the walk stops",
	    T_LAST, SEG, 32, 2 * PS, 0x4321,
	    RANGES({ 0x1000, PS }, { 0x2000, PS }), RANGES({ SEG, 32 }));
}

int main(void)
{
	gm_init(&G);
	gm_add_region(&G, R0, 0x100000);
	gm_add_region(&G, R1, 0x10000);
	gm_add_region(&G, R2, 0x10000);
	gm_add_region(&G, R3, 0x10000);
	/* Exactly the scratch size the walkers are promised. */
	scratch = malloc(PS);
	if (!scratch)
		return 1;

	test_prp();
	test_prp_errors();
	test_sgl();

	printf("1..%u\n", ntest);
	printf("# %u passed, %u failed\n", ntest - nfail, nfail);
	free(scratch);
	gm_free(&G);
	return nfail ? 1 : 0;
}
