/* SPDX-License-Identifier: GPL-2.0 */
/* Userspace shim for <linux/hrtimer.h>: placeholder types for vnvme.h. */
#ifndef _SHIM_LINUX_HRTIMER_H
#define _SHIM_LINUX_HRTIMER_H

#include <linux/types.h>

typedef s64 ktime_t;

struct hrtimer { int placeholder; };

#endif
