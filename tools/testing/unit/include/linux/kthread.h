/* SPDX-License-Identifier: GPL-2.0 */
/* Userspace shim for <linux/kthread.h>: placeholder types for vnvme.h. */
#ifndef _SHIM_LINUX_KTHREAD_H
#define _SHIM_LINUX_KTHREAD_H

struct task_struct;
struct kthread_worker;
struct kthread_work { int placeholder; };

#endif
