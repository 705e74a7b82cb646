/* SPDX-License-Identifier: GPL-2.0 */
/* Userspace shim for <linux/workqueue.h>: placeholder types for vnvme.h. */
#ifndef _SHIM_LINUX_WORKQUEUE_H
#define _SHIM_LINUX_WORKQUEUE_H

struct work_struct { int placeholder; };

#endif
