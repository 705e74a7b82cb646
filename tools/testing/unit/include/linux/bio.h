/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Userspace shim for <linux/bio.h>: placeholder types so vnvme.h's structs
 * are complete.  The pure logic never touches them.
 */
#ifndef _SHIM_LINUX_BIO_H
#define _SHIM_LINUX_BIO_H

#include <linux/types.h>

struct page;
struct block_device;

struct bio_vec {
	struct page *bv_page;
	unsigned int bv_len;
	unsigned int bv_offset;
};

struct bvec_iter {
	sector_t bi_sector;
	unsigned int bi_size;
	unsigned int bi_idx;
	unsigned int bi_bvec_done;
};

struct bio {
	int placeholder;
};

/* From <linux/fs.h> in the kernel, which <linux/bio.h> pulls in. */
struct kiocb {
	int placeholder;
};

#endif
