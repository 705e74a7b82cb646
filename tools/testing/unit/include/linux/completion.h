/* SPDX-License-Identifier: GPL-2.0 */
/* Userspace shim for <linux/completion.h>: placeholder types for vnvme.h. */
#ifndef _SHIM_LINUX_COMPLETION_H
#define _SHIM_LINUX_COMPLETION_H

struct completion { int placeholder; };

#endif
