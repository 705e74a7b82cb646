/* SPDX-License-Identifier: GPL-2.0 */
/* Userspace shim for <linux/poll.h>: placeholder types for vnvme.h. */
#ifndef _SHIM_LINUX_POLL_H
#define _SHIM_LINUX_POLL_H

typedef struct { int placeholder; } wait_queue_entry_t;
typedef struct { int placeholder; } wait_queue_head_t;
typedef struct { int placeholder; } poll_table;

#endif
