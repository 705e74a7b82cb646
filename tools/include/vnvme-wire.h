/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The NVMe queue entries as the userspace tools (vhost-nvme-load, the
 * hostile suite, the fail-nth driver) write and read them in "guest"
 * memory: a 64-byte submission queue entry and a 16-byte completion queue
 * entry (NVMe Base Specification, Figures "Common Command Format" and
 * "Common Completion Queue Entry Layout"), little-endian on x86.
 */
#ifndef VNVME_WIRE_H
#define VNVME_WIRE_H

#include <stdint.h>

struct sqe {
	uint8_t opcode, flags;
	uint16_t cid;
	uint32_t nsid, cdw2, cdw3;
	uint64_t mptr, prp1, prp2;
	uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
};

struct cqe {
	uint32_t result, rsvd;
	uint16_t sq_head, sq_id, cid, status;
};

_Static_assert(sizeof(struct sqe) == 64, "an SQE is 64 bytes");
_Static_assert(sizeof(struct cqe) == 16, "a CQE is 16 bytes");

#endif /* VNVME_WIRE_H */
