/* SPDX-License-Identifier: GPL-2.0 */
/* Userspace shim for <linux/minmax.h>, with the kernel's semantics. */
#ifndef _SHIM_LINUX_MINMAX_H
#define _SHIM_LINUX_MINMAX_H

#define min_t(type, x, y) ({ type __x = (x); type __y = (y); __x < __y ? __x : __y; })
#define max_t(type, x, y) ({ type __x = (x); type __y = (y); __x > __y ? __x : __y; })
#define min(x, y) ({ typeof(x) __x = (x); typeof(y) __y = (y); \
		     (void)(&__x == &__y); __x < __y ? __x : __y; })
#define max(x, y) ({ typeof(x) __x = (x); typeof(y) __y = (y); \
		     (void)(&__x == &__y); __x > __y ? __x : __y; })

#endif
