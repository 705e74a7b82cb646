/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Userspace shim for <linux/nvme.h>: includes the target kernel's own header
 * (VNVME_KERNEL_NVME_H, set by the Makefile), so status codes and SGL
 * formats are exactly what the module is built with.
 */
#ifndef _SHIM_LINUX_NVME_H
#define _SHIM_LINUX_NVME_H

#include <linux/types.h>
#include <linux/bits.h>
#include <linux/uuid.h>

#ifndef VNVME_KERNEL_NVME_H
#error "VNVME_KERNEL_NVME_H must name the kernel's include/linux/nvme.h"
#endif
#include VNVME_KERNEL_NVME_H

#endif
