/* SPDX-License-Identifier: GPL-2.0 */
/* Userspace shim for <linux/rwsem.h>: placeholder type for vnvme.h. */
#ifndef _SHIM_LINUX_RWSEM_H
#define _SHIM_LINUX_RWSEM_H

struct rw_semaphore { int placeholder; };

#endif
