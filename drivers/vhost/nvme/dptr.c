// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-nvme: walking NVMe data pointers (PRP lists and SGLs).
 *
 * Nothing here touches memory directly: list pages and SGL segments are read
 * through vnvme_map_read() and data ranges are handed to vnvme_map_add(),
 * which translate guest addresses through the memory table.  Every
 * guest-supplied value is checked here before use; the walk is bounded by the
 * transfer length (PRP) and by VNVME_MAX_SGL_DESCS (SGL), so a list that
 * points to itself cannot loop.
 */
#include <linux/kernel.h>
#include <linux/minmax.h>

#include "vnvme.h"

#define VNVME_PRP_ENTRIES	(VNVME_PAGE_SIZE / sizeof(__le64))

/**
 * vnvme_walk_prp - map a PRP1/PRP2 data pointer
 * @m: mapping state
 * @prp1: PRP entry 1
 * @prp2: PRP entry 2 or PRP list pointer
 * @len: transfer length in bytes, not zero
 * @list: scratch buffer of VNVME_PAGE_SIZE bytes for list pages
 *
 * Return: 0 or an NVMe status.
 */
u16 vnvme_walk_prp(struct vnvme_map *m, u64 prp1, u64 prp2, u32 len,
		   __le64 *list)
{
	u32 first, off, nents, want, i;
	u16 status;

	/* PRP1 may carry a dword-aligned offset. */
	if (prp1 & 3)
		return NVME_SC_PRP_INVALID_OFFSET | NVME_SC_DNR;
	off = prp1 & (VNVME_PAGE_SIZE - 1);
	first = min_t(u32, len, VNVME_PAGE_SIZE - off);
	status = vnvme_map_add(m, prp1, first);
	if (status)
		return status;
	len -= first;
	if (!len)
		return 0;

	if (len <= VNVME_PAGE_SIZE) {
		/* PRP2 is the second and last data page. */
		if (prp2 & (VNVME_PAGE_SIZE - 1))
			return NVME_SC_PRP_INVALID_OFFSET | NVME_SC_DNR;
		return vnvme_map_add(m, prp2, len);
	}

	/* PRP2 is a list pointer: qword aligned, may start mid-page. */
	if (prp2 & 7)
		return NVME_SC_PRP_INVALID_OFFSET | NVME_SC_DNR;
	while (len) {
		off = prp2 & (VNVME_PAGE_SIZE - 1);
		nents = (VNVME_PAGE_SIZE - off) / sizeof(__le64);
		want = DIV_ROUND_UP(len, VNVME_PAGE_SIZE);
		/* More pages than fit here: the last entry chains. */
		if (want > nents)
			want = nents;
		status = vnvme_map_read(m, prp2, list, want * sizeof(__le64));
		if (status)
			return status;
		for (i = 0; i < want; i++) {
			u64 ent = le64_to_cpu(list[i]);
			u32 chunk = min_t(u32, len, VNVME_PAGE_SIZE);

			if (i == nents - 1 && len > VNVME_PAGE_SIZE) {
				/* Pointer to the next list page. */
				if (ent & (VNVME_PAGE_SIZE - 1))
					return NVME_SC_PRP_INVALID_OFFSET |
					       NVME_SC_DNR;
				prp2 = ent;
				break;
			}
			if (ent & (VNVME_PAGE_SIZE - 1))
				return NVME_SC_PRP_INVALID_OFFSET | NVME_SC_DNR;
			status = vnvme_map_add(m, ent, chunk);
			if (status)
				return status;
			len -= chunk;
		}
	}
	return 0;
}

static u16 vnvme_sgl_data(struct vnvme_map *m, const struct nvme_sgl_desc *d,
			  u32 *left)
{
	u64 addr = le64_to_cpu(d->addr);
	u32 dlen = le32_to_cpu(d->length);

	if ((d->type & 0xf) != NVME_SGL_FMT_ADDRESS)
		return NVME_SC_SGL_INVALID_TYPE | NVME_SC_DNR;
	if ((addr & 3) || (dlen & 3))
		return NVME_SC_SGL_INVALID_GRANULARITY | NVME_SC_DNR;
	if (dlen > *left)
		return NVME_SC_SGL_INVALID_DATA | NVME_SC_DNR;
	if (!dlen)
		return 0;
	*left -= dlen;
	return vnvme_map_add(m, addr, dlen);
}

static bool vnvme_sgl_is_seg(u8 type)
{
	return (type >> 4) == NVME_SGL_FMT_SEG_DESC ||
	       (type >> 4) == NVME_SGL_FMT_LAST_SEG_DESC;
}

/**
 * vnvme_walk_sgl - map an SGL data pointer
 * @m: mapping state
 * @sgl: the descriptor in the command (SGL1)
 * @len: transfer length in bytes, not zero
 * @seg: scratch buffer for VNVME_MAX_SGL_DESCS descriptors
 *
 * Supports Data Block, Segment and Last Segment descriptors with dword
 * granularity; the descriptors must describe exactly @len bytes.
 *
 * Return: 0 or an NVMe status.
 */
u16 vnvme_walk_sgl(struct vnvme_map *m, const struct nvme_sgl_desc *sgl,
		   u32 len, struct nvme_sgl_desc *seg)
{
	struct nvme_sgl_desc d = *sgl;
	unsigned int total = 0, nents, i;
	u32 left = len;
	u16 status;

	for (;;) {
		u8 type = d.type >> 4;
		u64 addr;
		u32 slen;

		if (type == NVME_SGL_FMT_DATA_DESC) {
			status = vnvme_sgl_data(m, &d, &left);
			if (status)
				return status;
			break;
		}
		if (!vnvme_sgl_is_seg(d.type))
			return NVME_SC_SGL_INVALID_TYPE | NVME_SC_DNR;
		if ((d.type & 0xf) != NVME_SGL_FMT_ADDRESS)
			return NVME_SC_SGL_INVALID_TYPE | NVME_SC_DNR;

		addr = le64_to_cpu(d.addr);
		slen = le32_to_cpu(d.length);
		if (!slen || slen % sizeof(d))
			return NVME_SC_SGL_INVALID_COUNT | NVME_SC_DNR;
		if (addr & 3)
			return NVME_SC_SGL_INVALID_GRANULARITY | NVME_SC_DNR;
		nents = slen / sizeof(d);
		total += nents;
		if (total > VNVME_MAX_SGL_DESCS)
			return NVME_SC_SGL_INVALID_COUNT | NVME_SC_DNR;
		status = vnvme_map_read(m, addr, seg, slen);
		if (status)
			return status;

		for (i = 0; i < nents - 1; i++) {
			if (vnvme_sgl_is_seg(seg[i].type))
				return NVME_SC_SGL_INVALID_LAST | NVME_SC_DNR;
			if ((seg[i].type >> 4) != NVME_SGL_FMT_DATA_DESC)
				return NVME_SC_SGL_INVALID_TYPE | NVME_SC_DNR;
			status = vnvme_sgl_data(m, &seg[i], &left);
			if (status)
				return status;
		}

		d = seg[nents - 1];
		if (type == NVME_SGL_FMT_LAST_SEG_DESC) {
			/* A last segment holds data descriptors only. */
			if (vnvme_sgl_is_seg(d.type))
				return NVME_SC_SGL_INVALID_LAST | NVME_SC_DNR;
		} else if (!vnvme_sgl_is_seg(d.type)) {
			/* A segment that is not the last must chain. */
			return NVME_SC_SGL_INVALID_LAST | NVME_SC_DNR;
		}
	}

	if (left)
		return NVME_SC_SGL_INVALID_DATA | NVME_SC_DNR;
	return 0;
}
