/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Userspace shim: the kernel's integer types on top of the system's uapi
 * <linux/types.h> (__u8.., __le64..).  Only what the vhost-nvme pure-logic
 * files and their headers need.
 */
#ifndef _SHIM_LINUX_TYPES_H
#define _SHIM_LINUX_TYPES_H

#include_next <linux/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s8 s8;
typedef __s16 s16;
typedef __s32 s32;
typedef __s64 s64;
typedef u64 sector_t;
typedef u64 dma_addr_t;
typedef unsigned int gfp_t;
typedef u8 blk_status_t;
typedef struct { int counter; } atomic_t;
typedef struct { long counter; } atomic_long_t;
typedef struct { s64 counter; } atomic64_t;
struct list_head { struct list_head *next, *prev; };

#define __user
#define __force
#define __packed	__attribute__((packed))
#define __aligned(x)	__attribute__((aligned(x)))
#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)

/* <linux/stddef.h> */
#define struct_group(NAME, MEMBERS...) \
	union { struct { MEMBERS }; struct { MEMBERS } NAME; }

#endif
