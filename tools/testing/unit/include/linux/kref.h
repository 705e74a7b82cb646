/* SPDX-License-Identifier: GPL-2.0 */
/* Userspace shim for <linux/kref.h>: placeholder types for vnvme.h. */
#ifndef _SHIM_LINUX_KREF_H
#define _SHIM_LINUX_KREF_H

struct kref { int placeholder; };

#endif
