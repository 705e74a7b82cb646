/* SPDX-License-Identifier: GPL-2.0 */
/* Userspace shim for <linux/eventfd.h>. */
#ifndef _SHIM_LINUX_EVENTFD_H
#define _SHIM_LINUX_EVENTFD_H

#include <linux/types.h>

struct eventfd_ctx;
__u64 eventfd_signal(struct eventfd_ctx *ctx, __u64 n);

#endif
