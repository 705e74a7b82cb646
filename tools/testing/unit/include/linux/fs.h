/* SPDX-License-Identifier: GPL-2.0 */
/* Userspace shim for <linux/fs.h>: what compat.h's inline helpers name. */
#ifndef _SHIM_LINUX_FS_H
#define _SHIM_LINUX_FS_H

#include <linux/bio.h>

struct inode;

struct address_space {
	struct inode *host;
};

struct file {
	struct address_space *f_mapping;
};

#endif
