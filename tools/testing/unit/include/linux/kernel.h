/* SPDX-License-Identifier: GPL-2.0 */
/* Userspace shim for <linux/kernel.h>: helpers used by the pure logic. */
#ifndef _SHIM_LINUX_KERNEL_H
#define _SHIM_LINUX_KERNEL_H

#include <endian.h>
#include <linux/types.h>
#include <linux/bits.h>
#include <linux/minmax.h>

#define DIV_ROUND_UP(n, d)	(((n) + (d) - 1) / (d))
#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

#define le16_to_cpu(x)	((u16)le16toh((__force u16)(x)))
#define le32_to_cpu(x)	((u32)le32toh((__force u32)(x)))
#define le64_to_cpu(x)	((u64)le64toh((__force u64)(x)))
#define cpu_to_le16(x)	((__force __le16)htole16(x))
#define cpu_to_le32(x)	((__force __le32)htole32(x))
#define cpu_to_le64(x)	((__force __le64)htole64(x))

#endif
