/* SPDX-License-Identifier: GPL-2.0 */
/* Userspace shim for <linux/hrtimer.h>: the types vnvme.h and compat.h use. */
#ifndef _SHIM_LINUX_HRTIMER_H
#define _SHIM_LINUX_HRTIMER_H

#include <linux/types.h>

typedef s64 ktime_t;
typedef int clockid_t;

enum hrtimer_restart { HRTIMER_NORESTART, HRTIMER_RESTART };
enum hrtimer_mode { HRTIMER_MODE_ABS };

struct hrtimer {
	enum hrtimer_restart (*function)(struct hrtimer *timer);
};

static inline void hrtimer_init(struct hrtimer *timer, clockid_t clock,
				enum hrtimer_mode mode)
{
}

#endif
