/* SPDX-License-Identifier: GPL-2.0 */
/* Userspace shim for <linux/mutex.h>: placeholder types for vnvme.h. */
#ifndef _SHIM_LINUX_MUTEX_H
#define _SHIM_LINUX_MUTEX_H

struct mutex { int placeholder; };

#endif
