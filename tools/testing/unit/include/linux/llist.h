/* SPDX-License-Identifier: GPL-2.0 */
/* Userspace shim for <linux/llist.h>: placeholder types for vnvme.h. */
#ifndef _SHIM_LINUX_LLIST_H
#define _SHIM_LINUX_LLIST_H

struct llist_node { struct llist_node *next; };
struct llist_head { struct llist_node *first; };

#endif
