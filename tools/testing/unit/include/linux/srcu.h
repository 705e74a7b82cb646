/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Userspace shim for <linux/srcu.h>: what vnvme.h's inline helpers use.
 * The unit tests are single-threaded: no pass, no grace period.
 */
#ifndef _SHIM_LINUX_SRCU_H
#define _SHIM_LINUX_SRCU_H

struct srcu_struct { int placeholder; };
struct rcu_head {
	struct rcu_head *next;
	void (*func)(struct rcu_head *head);
};

#define __rcu
#define __percpu
#define READ_ONCE(x)	(*(const volatile typeof(x) *)&(x))
#define srcu_dereference(p, ssp)	(p)
#define srcu_read_lock_held(ssp)	1
#define RCU_LOCKDEP_WARN(c, s)		do { } while (0)
#ifndef lockdep_assert_held
#define lockdep_assert_held(l)		do { (void)(l); } while (0)
#endif

#endif
