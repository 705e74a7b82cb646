/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vhost-nvme: a PCI NVMe controller whose I/O queues run in the kernel.
 *
 * QEMU keeps the registers, the admin queue and the slow path (Identify,
 * features, log pages, queue creation and deletion, Doorbell Buffer
 * Config, reset and shutdown).  Every I/O queue is handed to
 * /dev/vhost-nvme (the vhost_nvme module of the vhost-nvme project),
 * whose worker thread fetches commands from guest memory, issues them to
 * the backend and posts completions; QEMU only connects eventfds:
 *
 * - doorbells: until the guest sends Doorbell Buffer Config the module
 *   reads doorbell values from a page of QEMU's memory (VHOST_NVME_DB_VMM):
 *   the MMIO handler stores each written value there and signals the
 *   queue's kick eventfd.  Afterwards it reads the guest's shadow doorbell
 *   buffer (VHOST_NVME_DB_SHADOW), and every I/O doorbell register is an
 *   ioeventfd: under KVM the guest's write never leaves the kernel; under
 *   TCG QEMU's memory core signals the eventfd itself.
 * - interrupts: one eventfd per completion queue, signalled by the module.
 *   With a KVM irqchip it is an irqfd routed to the CQ's MSI-X vector,
 *   set up when the guest unmasks the vector; otherwise (TCG, or while the
 *   vector is masked) a main-loop handler raises the vector with
 *   msix_notify().
 * - guest memory: a MemoryListener sends every RAM section to the module
 *   with VHOST_SET_MEM_TABLE.
 * - queue errors: one eventfd per I/O queue, signalled by the module when
 *   the queue stops because its ring cannot be accessed; a main-loop
 *   handler then sets CSTS.CFS so that the guest resets the controller.
 *
 * Everything here runs under the BQL (MMIO, config space, main-loop
 * handlers and the memory listener).
 *
 * Usage:
 *   -device vhost-nvme,backend=/dev/nullb0[,serial=...][,vhostfd=N]
 *           [,write-cache=off]
 */

#include "qemu/osdep.h"
#include <sys/ioctl.h>
#include "qemu/error-report.h"
#include "qemu/cutils.h"
#include "qemu/log.h"
#include "qemu/memalign.h"
#include "qemu/timer.h"
#include "qemu/event_notifier.h"
#include "qemu/main-loop.h"
#include "qemu/units.h"
#include "qapi/error.h"
#include "qapi/qapi-types-common.h"
#include "hw/pci/pci_device.h"
#include "hw/pci/msi.h"
#include "hw/pci/msix.h"
#include "hw/pci/pcie.h"
#include "hw/qdev-properties.h"
#include "hw/qdev-properties-system.h"
#include "migration/vmstate.h"
#include "monitor/monitor.h"
#include "exec/memory.h"
#include "exec/address-spaces.h"
#include "system/kvm.h"
#include "block/nvme.h"
#include "vhost_nvme_uapi.h"

#define TYPE_VHOST_NVME "vhost-nvme"
OBJECT_DECLARE_SIMPLE_TYPE(VhostNvme, VHOST_NVME)

/* Not an allocated QEMU PCI id: one of our own, away from the ones in use. */
#define VN_PCI_VENDOR_ID        PCI_VENDOR_ID_REDHAT
#define VN_PCI_DEVICE_ID        0x00f0

#define VN_PAGE                 4096u
#define VN_REG_SIZE             0x1000
#define VN_SQES                 6
#define VN_CQES                 4
#define VN_AERL                 3
#define VN_TEMP_KELVIN          303     /* 30 degrees Celsius */
#define VN_WCTEMP               343
#define VN_CCTEMP               373
#define VN_MAX_ADMIN_XFER       (256 * KiB)
/* Features this device knows how to expose. */
#define VN_KNOWN_FEATURES       (VHOST_NVME_F_SHADOW_DB | VHOST_NVME_F_SGL | \
                                 VHOST_NVME_F_DSM | VHOST_NVME_F_WRITE_ZEROES)

typedef struct VNQueue {
    VhostNvme *n;
    bool exists;
    uint16_t qid;
    uint16_t size;
    uint64_t addr;
    /* SQ: tail doorbell kick; CQ: head doorbell kick. */
    EventNotifier kick;
    bool ioeventfd;
    /* Signalled by the module when the queue stops on a guest fault. */
    EventNotifier err;
    /* SQ only */
    uint16_t cqid;
    /* CQ only */
    unsigned int nr_sqs;
    bool ien;
    uint16_t iv;
    EventNotifier irq;
    int virq;               /* KVM MSI route, or -1 */
    bool irqfd;             /* irq is a KVM irqfd */
    bool handler;           /* irq has a main-loop handler */
    uint64_t mainloop_irqs; /* interrupts the main-loop handler raised */
} VNQueue;

struct VhostNvme {
    PCIDevice parent_obj;

    MemoryRegion mmio;
    MemoryListener listener;

    /* properties */
    char *serial;
    char *backend;
    char *vhostfd_str;
    uint32_t max_ioqpairs;
    uint16_t mqes;
    uint8_t mdts;
    uint16_t msix_qsize;
    OnOffAuto dbcs;
    OnOffAuto sgl;
    OnOffAuto dsm;
    OnOffAuto write_zeroes;
    uint8_t lba_shift;
    int32_t poll_us;        /* -1: the module's default (its poll_us) */
    bool write_cache;       /* off: no volatile write cache, write-through */
    bool irqfd_allowed;     /* x-irqfd: off, the main loop raises them all */
    bool debug;

    /* module */
    int vfd;
    int bfd;
    struct vhost_nvme_info info;
    uint64_t features;      /* negotiated */
    struct vhost_nvme_ns ns;
    bool quiesced;
    bool use_irqfd;
    uint32_t *vmm_db;       /* VHOST_NVME_DB_VMM page */
    bool shadow;            /* VHOST_NVME_DB_SHADOW in force */
    uint64_t dbbuf_dbs;
    uint64_t dbbuf_eis;
    struct vhost_memory *mem;   /* the table last sent */
    GArray *sections;       /* struct vhost_memory_region, being built */
    bool mem_error_reported;

    /* registers */
    uint64_t cap;
    uint32_t vs;
    uint32_t intms;
    uint32_t cc;
    uint32_t csts;
    uint32_t aqa;
    uint64_t asq;
    uint64_t acq;

    /* admin queue */
    uint16_t asq_size, asq_head, asq_tail;
    uint16_t acq_size, acq_head, acq_tail;
    bool acq_phase;
    bool intx;

    uint16_t aer_cids[VN_AERL + 1];
    unsigned int nr_aers;

    /* features */
    uint32_t feat_arb;
    uint32_t feat_pm;
    uint16_t feat_temp_over;
    uint16_t feat_temp_under;
    bool feat_wce;
    uint32_t feat_intc;
    uint32_t feat_aec;

    int64_t start_ns;

    VNQueue *sq;            /* [max_ioqpairs + 1], index 0 unused */
    VNQueue *cq;
};

/* ------------------------------------------------------------------------ */
/* Helpers */

/* x-debug=on: queue, doorbell and interrupt events on stderr (for tests). */
#define vn_debug(n, fmt, ...) do { \
        if ((n)->debug) { \
            info_report("vhost-nvme: " fmt, ## __VA_ARGS__); \
        } \
    } while (0)

static int vn_ioctl(VhostNvme *n, unsigned long req, void *arg)
{
    return ioctl(n->vfd, req, arg) < 0 ? -errno : 0;
}

static bool vn_ready(VhostNvme *n)
{
    return n->csts & NVME_CSTS_READY;
}

static void vn_irq_notify(VhostNvme *n, unsigned int vector)
{
    PCIDevice *pdev = PCI_DEVICE(n);

    if (msix_enabled(pdev)) {
        if (vector < n->msix_qsize) {
            msix_notify(pdev, vector);
        }
    } else if (vector == 0) {
        /* Pin interrupt for the admin queue only (firmware, early boot). */
        n->intx = true;
        pci_irq_assert(pdev);
    }
}

static void vn_intx_update(VhostNvme *n)
{
    if (n->intx && n->acq_head == n->acq_tail) {
        n->intx = false;
        pci_irq_deassert(PCI_DEVICE(n));
    }
}

/*
 * Copy @len bytes between @buf and the guest memory named by a PRP pair,
 * as the admin commands use it.
 */
static uint16_t vn_prp_xfer(VhostNvme *n, uint64_t prp1, uint64_t prp2,
                            void *buf, size_t len, bool to_guest)
{
    PCIDevice *pdev = PCI_DEVICE(n);
    uint8_t *p = buf;
    size_t chunk = MIN(len, VN_PAGE - (prp1 & (VN_PAGE - 1)));
    uint64_t list, entry;
    MemTxResult r;

    if (prp1 & 3) {
        return NVME_INVALID_PRP_OFFSET | NVME_DNR;
    }
    r = to_guest ? pci_dma_write(pdev, prp1, p, chunk)
                 : pci_dma_read(pdev, prp1, p, chunk);
    if (r != MEMTX_OK) {
        return NVME_DATA_TRAS_ERROR;
    }
    p += chunk;
    len -= chunk;
    if (!len) {
        return NVME_SUCCESS;
    }
    if (len <= VN_PAGE) {
        if (prp2 & (VN_PAGE - 1)) {
            return NVME_INVALID_PRP_OFFSET | NVME_DNR;
        }
        r = to_guest ? pci_dma_write(pdev, prp2, p, len)
                     : pci_dma_read(pdev, prp2, p, len);
        return r == MEMTX_OK ? NVME_SUCCESS : NVME_DATA_TRAS_ERROR;
    }
    /* PRP2 is a list, possibly chained through each page's last entry. */
    if (prp2 & 7) {
        return NVME_INVALID_PRP_OFFSET | NVME_DNR;
    }
    list = prp2;
    while (len) {
        bool last_in_page = ((list + 8) & (VN_PAGE - 1)) == 0;

        if (pci_dma_read(pdev, list, &entry, 8) != MEMTX_OK) {
            return NVME_DATA_TRAS_ERROR;
        }
        entry = le64_to_cpu(entry);
        if (last_in_page && len > VN_PAGE) {
            if (entry & 7) {
                return NVME_INVALID_PRP_OFFSET | NVME_DNR;
            }
            list = entry;
            continue;
        }
        if (entry & (VN_PAGE - 1)) {
            return NVME_INVALID_PRP_OFFSET | NVME_DNR;
        }
        chunk = MIN(len, VN_PAGE);
        r = to_guest ? pci_dma_write(pdev, entry, p, chunk)
                     : pci_dma_read(pdev, entry, p, chunk);
        if (r != MEMTX_OK) {
            return NVME_DATA_TRAS_ERROR;
        }
        p += chunk;
        len -= chunk;
        list += 8;
    }
    return NVME_SUCCESS;
}

static uint16_t vn_to_guest(VhostNvme *n, NvmeCmd *cmd, void *buf, size_t len)
{
    return vn_prp_xfer(n, le64_to_cpu(cmd->dptr.prp1),
                       le64_to_cpu(cmd->dptr.prp2), buf, len, true);
}

/* ------------------------------------------------------------------------ */
/* Guest memory: every RAM section goes into the module's memory table. */

static int vn_region_cmp(const void *a, const void *b)
{
    const struct vhost_memory_region *x = a, *y = b;

    return x->guest_phys_addr < y->guest_phys_addr ? -1 :
           x->guest_phys_addr > y->guest_phys_addr;
}

static void vn_mem_begin(MemoryListener *l)
{
    VhostNvme *n = container_of(l, VhostNvme, listener);

    g_array_set_size(n->sections, 0);
}

static void vn_mem_add(MemoryListener *l, MemoryRegionSection *s)
{
    VhostNvme *n = container_of(l, VhostNvme, listener);
    struct vhost_memory_region r = { 0 };
    uint64_t gpa, end, hva;

    if (!memory_region_is_ram(s->mr) || memory_region_is_rom(s->mr) ||
        memory_region_is_ram_device(s->mr)) {
        return;
    }
    gpa = s->offset_within_address_space;
    end = gpa + int128_get64(s->size);
    hva = (uintptr_t)memory_region_get_ram_ptr(s->mr) + s->offset_within_region;
    /* The module wants 4 KiB granules: keep the whole pages only. */
    if ((gpa ^ hva) & (VN_PAGE - 1)) {
        return;
    }
    r.guest_phys_addr = ROUND_UP(gpa, VN_PAGE);
    end = ROUND_DOWN(end, VN_PAGE);
    if (end <= r.guest_phys_addr) {
        return;
    }
    r.userspace_addr = hva + (r.guest_phys_addr - gpa);
    r.memory_size = end - r.guest_phys_addr;
    g_array_append_val(n->sections, r);
}

static void vn_mem_commit(MemoryListener *l)
{
    VhostNvme *n = container_of(l, VhostNvme, listener);
    GArray *a = n->sections;
    struct vhost_memory *mem;
    unsigned int i, nr = 0;
    size_t sz;
    int ret;

    g_array_sort(a, vn_region_cmp);
    sz = sizeof(*mem) + a->len * sizeof(struct vhost_memory_region);
    mem = g_malloc0(sz);
    for (i = 0; i < a->len; i++) {
        struct vhost_memory_region *r = &g_array_index(a, struct vhost_memory_region, i);
        struct vhost_memory_region *prev = nr ? &mem->regions[nr - 1] : NULL;

        if (prev && prev->guest_phys_addr + prev->memory_size == r->guest_phys_addr &&
            prev->userspace_addr + prev->memory_size == r->userspace_addr) {
            prev->memory_size += r->memory_size;
            continue;
        }
        mem->regions[nr++] = *r;
    }
    mem->nregions = nr;
    sz = sizeof(*mem) + nr * sizeof(struct vhost_memory_region);
    if (n->mem && sizeof(*mem) + n->mem->nregions * sizeof(mem->regions[0]) == sz &&
        !memcmp(n->mem, mem, sz)) {
        g_free(mem);
        return;
    }
    ret = vn_ioctl(n, VHOST_SET_MEM_TABLE, mem);
    if (ret) {
        if (!n->mem_error_reported) {
            error_report("vhost-nvme: VHOST_SET_MEM_TABLE with %u regions: %s",
                         nr, strerror(-ret));
            n->mem_error_reported = true;
        }
        g_free(mem);
        return;
    }
    g_free(n->mem);
    n->mem = mem;
}

/* ------------------------------------------------------------------------ */
/* Interrupts */

static void vn_cq_irq_read(EventNotifier *e)
{
    VNQueue *cq = container_of(e, VNQueue, irq);
    VhostNvme *n = cq->n;

    if (event_notifier_test_and_clear(e)) {
        cq->mainloop_irqs++;
        vn_irq_notify(n, cq->iv);
    }
}

static void vn_cq_set_handler(VNQueue *cq, bool on)
{
    if (cq->handler == on) {
        return;
    }
    event_notifier_set_handler(&cq->irq, on ? vn_cq_irq_read : NULL);
    cq->handler = on;
}

static void vn_cq_irqfd_off(VhostNvme *n, VNQueue *cq)
{
    if (cq->irqfd) {
        kvm_irqchip_remove_irqfd_notifier_gsi(kvm_state, &cq->irq, cq->virq);
        cq->irqfd = false;
    }
}

static void vn_cq_release_route(VNQueue *cq)
{
    if (cq->virq >= 0) {
        kvm_irqchip_release_virq(kvm_state, cq->virq);
        cq->virq = -1;
    }
}

/* Route @cq's eventfd to its vector through KVM; false to fall back. */
static bool vn_cq_irqfd_on(VhostNvme *n, VNQueue *cq, MSIMessage *msg)
{
    PCIDevice *pdev = PCI_DEVICE(n);

    if (cq->virq < 0) {
        KVMRouteChange c = kvm_irqchip_begin_route_changes(kvm_state);
        int virq = kvm_irqchip_add_msi_route(&c, cq->iv, pdev);

        if (virq < 0) {
            return false;
        }
        kvm_irqchip_commit_route_changes(&c);
        cq->virq = virq;
    } else if (msg) {
        if (kvm_irqchip_update_msi_route(kvm_state, cq->virq, *msg, pdev) < 0) {
            return false;
        }
        kvm_irqchip_commit_routes(kvm_state);
    }
    if (!cq->irqfd) {
        /* Counts left in the eventfd are injected when KVM polls it. */
        vn_cq_set_handler(cq, false);
        if (kvm_irqchip_add_irqfd_notifier_gsi(kvm_state, &cq->irq, NULL,
                                               cq->virq) < 0) {
            return false;
        }
        cq->irqfd = true;
    }
    return true;
}

static void vn_cq_irq_setup(VhostNvme *n, VNQueue *cq)
{
    PCIDevice *pdev = PCI_DEVICE(n);

    if (!cq->ien) {
        return;
    }
    if (n->use_irqfd && msix_enabled(pdev) && !msix_is_masked(pdev, cq->iv) &&
        vn_cq_irqfd_on(n, cq, NULL)) {
        vn_debug(n, "CQ %u vector %u: interrupts via KVM irqfd (GSI %d)",
                 cq->qid, cq->iv, cq->virq);
        return;
    }
    /* TCG, or the vector is masked: the main loop raises the vector. */
    vn_cq_set_handler(cq, true);
    vn_debug(n, "CQ %u vector %u: interrupts via the main-loop eventfd handler%s",
             cq->qid, cq->iv, n->use_irqfd ? " until the vector is unmasked" : "");
}

static void vn_cq_irq_teardown(VhostNvme *n, VNQueue *cq)
{
    vn_cq_irqfd_off(n, cq);
    vn_cq_release_route(cq);
    vn_cq_set_handler(cq, false);
}

static int vn_vector_use(PCIDevice *pdev, unsigned int vector, MSIMessage msg)
{
    VhostNvme *n = VHOST_NVME(pdev);
    unsigned int qid;

    for (qid = 1; qid <= n->max_ioqpairs; qid++) {
        VNQueue *cq = &n->cq[qid];

        if (!cq->exists || !cq->ien || cq->iv != vector) {
            continue;
        }
        if (vn_cq_irqfd_on(n, cq, &msg)) {
            vn_debug(n, "CQ %u vector %u unmasked: interrupts via KVM irqfd "
                     "(GSI %d)", qid, vector, cq->virq);
        } else {
            vn_cq_irqfd_off(n, cq);
            vn_cq_set_handler(cq, true);
            vn_debug(n, "CQ %u vector %u: no KVM route, interrupts via the "
                     "main-loop eventfd handler", qid, vector);
        }
    }
    return 0;
}

static void vn_vector_release(PCIDevice *pdev, unsigned int vector)
{
    VhostNvme *n = VHOST_NVME(pdev);
    unsigned int qid;

    for (qid = 1; qid <= n->max_ioqpairs; qid++) {
        VNQueue *cq = &n->cq[qid];

        if (cq->exists && cq->ien && cq->iv == vector && cq->irqfd) {
            vn_cq_irqfd_off(n, cq);
            /* Masked: signals set the pending bit from the main loop. */
            vn_cq_set_handler(cq, true);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Doorbells */

static hwaddr vn_db_offset(uint16_t qid, bool cq)
{
    return VN_REG_SIZE + (2 * qid + cq) * 4;
}

static void vn_queue_ioeventfd(VhostNvme *n, VNQueue *q, bool cq, bool on)
{
    if (q->ioeventfd == on) {
        return;
    }
    if (on) {
        memory_region_add_eventfd(&n->mmio, vn_db_offset(q->qid, cq), 4,
                                  false, 0, &q->kick);
    } else {
        memory_region_del_eventfd(&n->mmio, vn_db_offset(q->qid, cq), 4,
                                  false, 0, &q->kick);
    }
    q->ioeventfd = on;
}

static int vn_set_doorbells(VhostNvme *n, bool shadow, uint64_t dbs, uint64_t eis)
{
    struct vhost_nvme_doorbells d = { 0 };

    if (shadow) {
        d.mode = VHOST_NVME_DB_SHADOW;
        d.db_addr = dbs;
        d.ei_addr = eis;
    } else {
        d.mode = VHOST_NVME_DB_VMM;
        d.db_addr = (uintptr_t)n->vmm_db;
    }
    return vn_ioctl(n, VHOST_NVME_SET_DOORBELLS, &d);
}

/* ------------------------------------------------------------------------ */
/* Queues */

/*
 * The module stopped @q: its ring cannot be accessed in guest memory.  The
 * guest learns of it from CSTS.CFS when its commands time out, and resets
 * the controller.
 */
static void vn_queue_error(VNQueue *q, const char *type)
{
    VhostNvme *n = q->n;

    error_report("vhost-nvme: I/O %s %u (ring at 0x%" PRIx64 ") stopped: the "
                 "module cannot access it; controller fatal status set",
                 type, q->qid, q->addr);
    n->csts |= NVME_CSTS_FAILED;
}

static void vn_sq_err_read(EventNotifier *e)
{
    if (event_notifier_test_and_clear(e)) {
        vn_queue_error(container_of(e, VNQueue, err), "SQ");
    }
}

static void vn_cq_err_read(EventNotifier *e)
{
    if (event_notifier_test_and_clear(e)) {
        vn_queue_error(container_of(e, VNQueue, err), "CQ");
    }
}

static void vn_queue_free(VhostNvme *n, VNQueue *q, bool cq)
{
    vn_queue_ioeventfd(n, q, cq, false);
    if (cq) {
        /* With irqfds, KVM raised the others: this stays 0. */
        vn_debug(n, "CQ %u: %" PRIu64 " interrupts raised by the main-loop "
                 "handler", q->qid, q->mainloop_irqs);
        q->mainloop_irqs = 0;
        vn_cq_irq_teardown(n, q);
        event_notifier_cleanup(&q->irq);
    }
    event_notifier_set_handler(&q->err, NULL);
    event_notifier_cleanup(&q->err);
    event_notifier_cleanup(&q->kick);
    q->exists = false;
}

static uint16_t vn_errno_status(VhostNvme *n, int err, uint16_t qid, uint16_t size)
{
    switch (err) {
    case -EINVAL:
        if (!qid || qid > n->info.max_qid) {
            return NVME_INVALID_QID | NVME_DNR;
        }
        if (size && (size < 2 || size > n->info.max_qsize)) {
            return NVME_MAX_QSIZE_EXCEEDED | NVME_DNR;
        }
        return NVME_INVALID_FIELD | NVME_DNR;
    case -EEXIST:
        return NVME_INVALID_QID | NVME_DNR;
    case -ENOENT:
        return NVME_INVALID_CQID | NVME_DNR;
    case -EBUSY:
        return NVME_INVALID_QUEUE_DEL | NVME_DNR;
    case -EFAULT:
        return NVME_INVALID_FIELD | NVME_DNR;
    default:
        return NVME_INTERNAL_DEV_ERROR;
    }
}

static uint16_t vn_create_cq(VhostNvme *n, NvmeCmd *cmd)
{
    uint32_t dw10 = le32_to_cpu(cmd->cdw10), dw11 = le32_to_cpu(cmd->cdw11);
    uint16_t qid = dw10 & 0xffff, size = (dw10 >> 16) + 1;
    uint16_t flags = dw11 & 0xffff, iv = dw11 >> 16;
    uint64_t addr = le64_to_cpu(cmd->dptr.prp1);
    struct vhost_nvme_cq arg = { 0 };
    VNQueue *cq;
    int ret;

    if (!qid || qid > n->max_ioqpairs || n->cq[qid].exists) {
        return NVME_INVALID_QID | NVME_DNR;
    }
    if (size < 2 || size > NVME_CAP_MQES(n->cap) + 1) {
        return NVME_MAX_QSIZE_EXCEEDED | NVME_DNR;
    }
    if (!(flags & NVME_CQ_PC) || !addr || (addr & (VN_PAGE - 1))) {
        return NVME_INVALID_FIELD | NVME_DNR;
    }
    if ((flags & NVME_CQ_IEN) && iv >= n->msix_qsize) {
        return NVME_INVALID_IRQ_VECTOR | NVME_DNR;
    }
    cq = &n->cq[qid];
    memset(cq, 0, sizeof(*cq));
    cq->n = n;
    cq->qid = qid;
    cq->size = size;
    cq->addr = addr;
    cq->ien = flags & NVME_CQ_IEN;
    cq->iv = iv;
    cq->virq = -1;
    if (event_notifier_init(&cq->kick, 0) < 0) {
        return NVME_INTERNAL_DEV_ERROR;
    }
    if (event_notifier_init(&cq->irq, 0) < 0) {
        event_notifier_cleanup(&cq->kick);
        return NVME_INTERNAL_DEV_ERROR;
    }
    if (event_notifier_init(&cq->err, 0) < 0) {
        event_notifier_cleanup(&cq->irq);
        event_notifier_cleanup(&cq->kick);
        return NVME_INTERNAL_DEV_ERROR;
    }
    stl_le_p(&n->vmm_db[2 * qid + 1], 0);

    arg.qid = qid;
    arg.size = size;
    arg.flags = (cq->ien ? VHOST_NVME_CQ_F_IRQ_ENABLED : 0) |
                VHOST_NVME_CQ_F_ERRFD;
    arg.addr = addr;
    arg.irqfd = cq->ien ? event_notifier_get_fd(&cq->irq) : -1;
    arg.kickfd = event_notifier_get_fd(&cq->kick);
    arg.errfd = event_notifier_get_fd(&cq->err);
    ret = vn_ioctl(n, VHOST_NVME_CREATE_CQ, &arg);
    if (ret) {
        event_notifier_cleanup(&cq->err);
        event_notifier_cleanup(&cq->irq);
        event_notifier_cleanup(&cq->kick);
        return vn_errno_status(n, ret, qid, size);
    }
    cq->exists = true;
    event_notifier_set_handler(&cq->err, vn_cq_err_read);
    vn_debug(n, "CQ %u created: %u entries at 0x%" PRIx64, qid, size, addr);
    vn_cq_irq_setup(n, cq);
    if (n->shadow) {
        vn_queue_ioeventfd(n, cq, true, true);
    }
    return NVME_SUCCESS;
}

static uint16_t vn_create_sq(VhostNvme *n, NvmeCmd *cmd)
{
    uint32_t dw10 = le32_to_cpu(cmd->cdw10), dw11 = le32_to_cpu(cmd->cdw11);
    uint16_t qid = dw10 & 0xffff, size = (dw10 >> 16) + 1;
    uint16_t flags = dw11 & 0xffff, cqid = dw11 >> 16;
    uint64_t addr = le64_to_cpu(cmd->dptr.prp1);
    struct vhost_nvme_sq arg = { 0 };
    VNQueue *sq;
    int ret;

    if (!qid || qid > n->max_ioqpairs || n->sq[qid].exists) {
        return NVME_INVALID_QID | NVME_DNR;
    }
    if (!cqid || cqid > n->max_ioqpairs || !n->cq[cqid].exists) {
        return NVME_INVALID_CQID | NVME_DNR;
    }
    if (size < 2 || size > NVME_CAP_MQES(n->cap) + 1) {
        return NVME_MAX_QSIZE_EXCEEDED | NVME_DNR;
    }
    if (!(flags & NVME_SQ_PC) || !addr || (addr & (VN_PAGE - 1))) {
        return NVME_INVALID_FIELD | NVME_DNR;
    }
    sq = &n->sq[qid];
    memset(sq, 0, sizeof(*sq));
    sq->n = n;
    sq->qid = qid;
    sq->size = size;
    sq->addr = addr;
    sq->cqid = cqid;
    if (event_notifier_init(&sq->kick, 0) < 0) {
        return NVME_INTERNAL_DEV_ERROR;
    }
    if (event_notifier_init(&sq->err, 0) < 0) {
        event_notifier_cleanup(&sq->kick);
        return NVME_INTERNAL_DEV_ERROR;
    }
    stl_le_p(&n->vmm_db[2 * qid], 0);

    arg.qid = qid;
    arg.size = size;
    arg.cqid = cqid;
    arg.flags = VHOST_NVME_SQ_F_ERRFD;
    arg.kickfd = event_notifier_get_fd(&sq->kick);
    arg.addr = addr;
    arg.errfd = event_notifier_get_fd(&sq->err);
    ret = vn_ioctl(n, VHOST_NVME_CREATE_SQ, &arg);
    if (ret) {
        event_notifier_cleanup(&sq->err);
        event_notifier_cleanup(&sq->kick);
        return vn_errno_status(n, ret, qid, size);
    }
    sq->exists = true;
    event_notifier_set_handler(&sq->err, vn_sq_err_read);
    vn_debug(n, "SQ %u created: %u entries at 0x%" PRIx64 ", CQ %u", qid, size,
             addr, cqid);
    n->cq[cqid].nr_sqs++;
    if (n->shadow) {
        vn_queue_ioeventfd(n, sq, false, true);
    }
    return NVME_SUCCESS;
}

/*
 * Without VHOST_NVME_DELETE_F_DISCARD in @flags, the entries the module had
 * not fetched complete with Command Aborted due to SQ Deletion.
 */
static int vn_delete_sq_q(VhostNvme *n, VNQueue *sq, uint16_t flags)
{
    struct vhost_nvme_qid arg = { .qid = sq->qid, .flags = flags };
    int ret = vn_ioctl(n, VHOST_NVME_DELETE_SQ, &arg);

    if (ret && ret != -ENOENT) {
        return ret;
    }
    n->cq[sq->cqid].nr_sqs--;
    vn_queue_free(n, sq, false);
    return 0;
}

static int vn_delete_cq_q(VhostNvme *n, VNQueue *cq)
{
    struct vhost_nvme_qid arg = { .qid = cq->qid };
    int ret = vn_ioctl(n, VHOST_NVME_DELETE_CQ, &arg);

    if (ret && ret != -ENOENT) {
        return ret;
    }
    vn_queue_free(n, cq, true);
    return 0;
}

static uint16_t vn_delete_sq(VhostNvme *n, NvmeCmd *cmd)
{
    uint16_t qid = le32_to_cpu(cmd->cdw10) & 0xffff;
    int ret;

    if (!qid || qid > n->max_ioqpairs || !n->sq[qid].exists) {
        return NVME_INVALID_QID | NVME_DNR;
    }
    ret = vn_delete_sq_q(n, &n->sq[qid], 0);
    return ret ? vn_errno_status(n, ret, qid, 0) : NVME_SUCCESS;
}

static uint16_t vn_delete_cq(VhostNvme *n, NvmeCmd *cmd)
{
    uint16_t qid = le32_to_cpu(cmd->cdw10) & 0xffff;
    int ret;

    if (!qid || qid > n->max_ioqpairs || !n->cq[qid].exists) {
        return NVME_INVALID_QID | NVME_DNR;
    }
    if (n->cq[qid].nr_sqs) {
        return NVME_INVALID_QUEUE_DEL | NVME_DNR;
    }
    ret = vn_delete_cq_q(n, &n->cq[qid]);
    if (ret == -ENOENT) {
        return NVME_INVALID_QID | NVME_DNR;
    }
    return ret ? vn_errno_status(n, ret, qid, 0) : NVME_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* Admin commands */

static void vn_pad(uint8_t *dst, size_t len, const char *src)
{
    size_t l = strlen(src);

    memset(dst, ' ', len);
    memcpy(dst, src, MIN(l, len));
}

static void vn_nguid(VhostNvme *n, uint8_t out[16])
{
    /* Stable per serial number, never all zero. */
    g_autofree char *s = g_strdup_printf("vhost-nvme:%s", n->serial);
    GChecksum *ck = g_checksum_new(G_CHECKSUM_SHA256);
    uint8_t d[32];
    gsize dl = sizeof(d);

    g_checksum_update(ck, (const guchar *)s, strlen(s));
    g_checksum_get_digest(ck, d, &dl);
    g_checksum_free(ck);
    memcpy(out, d, 16);
    out[0] |= 1;
}

/*
 * Write Zeroes Size Limit, DMRL and DMRSL as Identify Controller (NVM
 * command set) advertises them: within one transfer size.  0 is no limit.
 */
static void vn_nvm_limits(VhostNvme *n, uint8_t *wzsl, uint8_t *dmrl,
                          uint32_t *dmrsl)
{
    *wzsl = n->mdts;
    *dmrl = 0;
    *dmrsl = 0;
    if (n->features & VHOST_NVME_F_DSM) {
        *dmrl = 1;
        *dmrsl = (VN_PAGE << n->mdts) >> n->ns.lba_shift;
    }
}

static uint16_t vn_identify_ctrl(VhostNvme *n, NvmeCmd *cmd)
{
    g_autofree NvmeIdCtrl *id = g_new0(NvmeIdCtrl, 1);
    g_autofree char *nqn = g_strdup_printf("nqn.2025-01.org.qemu:vhost-nvme:%s",
                                           n->serial);
    uint16_t oncs = 0;

    id->vid = cpu_to_le16(VN_PCI_VENDOR_ID);
    id->ssvid = cpu_to_le16(PCI_SUBVENDOR_ID_REDHAT_QUMRANET);
    vn_pad(id->sn, sizeof(id->sn), n->serial);
    vn_pad(id->mn, sizeof(id->mn), "QEMU vhost-nvme Ctrl");
    vn_pad(id->fr, sizeof(id->fr), "1.0");
    id->rab = 6;
    id->ieee[0] = 0x00;
    id->ieee[1] = 0x54;
    id->ieee[2] = 0x52;
    id->mdts = n->mdts;
    id->cntlid = 0;
    id->ver = cpu_to_le32(n->vs);
    id->cntrltype = 1;              /* I/O controller */
    if (n->features & VHOST_NVME_F_SHADOW_DB) {
        id->oacs = cpu_to_le16(NVME_OACS_DBCS);
    }
    id->acl = 3;
    id->aerl = VN_AERL;
    id->frmw = (1 << 1) | NVME_FRMW_SLOT1_RO;
    id->lpa = 0;
    id->elpe = 0;
    id->npss = 0;
    id->wctemp = cpu_to_le16(VN_WCTEMP);
    id->cctemp = cpu_to_le16(VN_CCTEMP);
    id->sqes = (VN_SQES << 4) | VN_SQES;
    id->cqes = (VN_CQES << 4) | VN_CQES;
    id->maxcmd = cpu_to_le16(NVME_CAP_MQES(n->cap) + 1);
    id->nn = cpu_to_le32(1);
    if (n->features & VHOST_NVME_F_DSM) {
        oncs |= NVME_ONCS_DSM;
    }
    if (n->features & VHOST_NVME_F_WRITE_ZEROES) {
        oncs |= NVME_ONCS_WRITE_ZEROES;
    }
    id->oncs = cpu_to_le16(oncs);
    id->vwc = n->write_cache ? NVME_VWC_PRESENT : 0;
    if (n->features & VHOST_NVME_F_SGL) {
        id->sgls = cpu_to_le32(NVME_CTRL_SGLS_SUPPORT_DWORD_ALIGN);
    }
    pstrcpy((char *)id->subnqn, sizeof(id->subnqn), nqn);
    id->psd[0].mp = cpu_to_le16(2500);  /* 25 W */
    id->psd[0].enlat = cpu_to_le32(16);
    id->psd[0].exlat = cpu_to_le32(4);
    return vn_to_guest(n, cmd, id, sizeof(*id));
}

static uint16_t vn_identify_ns(VhostNvme *n, NvmeCmd *cmd, uint32_t nsid)
{
    g_autofree NvmeIdNs *id = g_new0(NvmeIdNs, 1);

    if (nsid == 0 || (nsid > 1 && nsid != NVME_NSID_BROADCAST)) {
        return NVME_INVALID_NSID | NVME_DNR;
    }
    if (nsid == 1) {
        id->nsze = cpu_to_le64(n->ns.nsze);
        id->ncap = cpu_to_le64(n->ns.nsze);
        id->nuse = cpu_to_le64(n->ns.nsze);
        /* NOIOB etc. not reported; deallocated blocks read as zero? unknown */
        vn_nguid(n, id->nguid);
    }
    id->nlbaf = 0;
    id->flbas = 0;
    id->lbaf[0].ds = n->ns.lba_shift;
    return vn_to_guest(n, cmd, id, sizeof(*id));
}

static uint16_t vn_identify(VhostNvme *n, NvmeCmd *cmd)
{
    uint32_t dw10 = le32_to_cpu(cmd->cdw10), dw11 = le32_to_cpu(cmd->cdw11);
    uint32_t nsid = le32_to_cpu(cmd->nsid);
    uint8_t cns = dw10 & 0xff, csi = dw11 >> 24;
    g_autofree uint8_t *buf = g_malloc0(NVME_IDENTIFY_DATA_SIZE);

    switch (cns) {
    case NVME_ID_CNS_NS:
        return vn_identify_ns(n, cmd, nsid);
    case NVME_ID_CNS_CTRL:
        return vn_identify_ctrl(n, cmd);
    case NVME_ID_CNS_NS_ACTIVE_LIST:
        if (nsid >= NVME_NSID_BROADCAST - 1) {
            return NVME_INVALID_NSID | NVME_DNR;
        }
        if (nsid < 1) {
            stl_le_p(buf, 1);
        }
        break;
    case NVME_ID_CNS_NS_DESCR_LIST: {
        NvmeIdNsDescr *d;

        if (nsid != 1) {
            return NVME_INVALID_NSID | NVME_DNR;
        }
        d = (NvmeIdNsDescr *)buf;
        d->nidt = 2;                    /* NGUID */
        d->nidl = NVME_NIDL_NGUID;
        vn_nguid(n, buf + sizeof(*d));
        d = (NvmeIdNsDescr *)(buf + sizeof(*d) + NVME_NIDL_NGUID);
        d->nidt = 4;                    /* Command Set Identifier */
        d->nidl = NVME_NIDL_CSI;
        /* value 0: NVM command set */
        break;
    }
    case NVME_ID_CNS_CS_CTRL:
        if (csi != 0) {
            return NVME_INVALID_FIELD | NVME_DNR;
        }
        {
            NvmeIdCtrlNvm *id = (NvmeIdCtrlNvm *)buf;
            uint32_t dmrsl;

            vn_nvm_limits(n, &id->wzsl, &id->dmrl, &dmrsl);
            id->dmrsl = cpu_to_le32(dmrsl);
        }
        break;
    case NVME_ID_CNS_CS_NS:
        if (csi != 0) {
            return NVME_INVALID_FIELD | NVME_DNR;
        }
        if (nsid != 1) {
            return NVME_INVALID_NSID | NVME_DNR;
        }
        break;
    case NVME_ID_CNS_CS_NS_ACTIVE_LIST:
        if (csi != 0) {
            return NVME_INVALID_FIELD | NVME_DNR;
        }
        if (nsid < 1) {
            stl_le_p(buf, 1);
        }
        break;
    default:
        return NVME_INVALID_FIELD | NVME_DNR;
    }
    return vn_to_guest(n, cmd, buf, NVME_IDENTIFY_DATA_SIZE);
}

static uint16_t vn_get_log(VhostNvme *n, NvmeCmd *cmd)
{
    uint32_t dw10 = le32_to_cpu(cmd->cdw10), dw11 = le32_to_cpu(cmd->cdw11);
    uint8_t lid = dw10 & 0xff;
    uint64_t numd = ((uint64_t)(dw11 & 0xffff) << 16 | (dw10 >> 16)) + 1;
    uint64_t len = numd * 4;
    uint64_t off = le32_to_cpu(cmd->cdw12) |
                   (uint64_t)le32_to_cpu(cmd->cdw13) << 32;
    g_autofree uint8_t *log = NULL;
    g_autofree uint8_t *out = NULL;
    size_t size;

    if (len > VN_MAX_ADMIN_XFER) {
        return NVME_INVALID_FIELD | NVME_DNR;
    }
    switch (lid) {
    case NVME_LOG_ERROR_INFO:
        size = sizeof(NvmeErrorLog) * 1;    /* ELPE + 1 entries, none used */
        log = g_malloc0(size);
        break;
    case NVME_LOG_SMART_INFO: {
        NvmeSmartLog *s;
        uint64_t hours = (qemu_clock_get_ns(QEMU_CLOCK_HOST) - n->start_ns) /
                         (3600 * NANOSECONDS_PER_SECOND);

        size = sizeof(*s);
        s = g_malloc0(size);
        s->temperature = cpu_to_le16(VN_TEMP_KELVIN);
        s->available_spare = 100;
        s->available_spare_threshold = 10;
        if (VN_TEMP_KELVIN > n->feat_temp_over ||
            (n->feat_temp_under && VN_TEMP_KELVIN < n->feat_temp_under)) {
            s->critical_warning |= NVME_SMART_TEMPERATURE;
        }
        if (n->ns.flags & VHOST_NVME_NS_F_READ_ONLY) {
            s->critical_warning |= NVME_SMART_MEDIA_READ_ONLY;
        }
        s->power_cycles[0] = cpu_to_le64(1);
        s->power_on_hours[0] = cpu_to_le64(hours);
        log = (uint8_t *)s;
        break;
    }
    case NVME_LOG_FW_SLOT_INFO: {
        NvmeFwSlotInfoLog *f;

        size = sizeof(*f);
        f = g_malloc0(size);
        f->afi = 1;
        vn_pad(f->frs1, sizeof(f->frs1), "1.0");
        log = (uint8_t *)f;
        break;
    }
    default:
        return NVME_INVALID_LOG_ID | NVME_DNR;
    }
    if (off > size || (off & 3)) {
        return NVME_INVALID_FIELD | NVME_DNR;
    }
    out = g_malloc0(len);
    memcpy(out, log + off, MIN(len, size - off));
    return vn_to_guest(n, cmd, out, len);
}

static bool vn_feature_known(VhostNvme *n, uint8_t fid)
{
    switch (fid) {
    case NVME_VOLATILE_WRITE_CACHE:
        return n->write_cache;          /* only with a write cache (VWC) */
    case NVME_ARBITRATION:
    case NVME_POWER_MANAGEMENT:
    case NVME_TEMPERATURE_THRESHOLD:
    case NVME_NUMBER_OF_QUEUES:
    case NVME_INTERRUPT_COALESCING:
    case NVME_ASYNCHRONOUS_EVENT_CONF:
        return true;
    }
    return false;
}

static uint32_t vn_nr_queues_result(VhostNvme *n)
{
    return (n->max_ioqpairs - 1) << 16 | (n->max_ioqpairs - 1);
}

static uint16_t vn_get_features(VhostNvme *n, NvmeCmd *cmd, uint32_t *result)
{
    uint32_t dw10 = le32_to_cpu(cmd->cdw10), dw11 = le32_to_cpu(cmd->cdw11);
    uint8_t fid = NVME_GETSETFEAT_FID(dw10), sel = NVME_GETFEAT_SELECT(dw10);
    bool dflt = sel == NVME_GETFEAT_SELECT_DEFAULT ||
                sel == NVME_GETFEAT_SELECT_SAVED;

    if (!vn_feature_known(n, fid)) {
        return NVME_INVALID_FIELD | NVME_DNR;
    }
    if (sel == NVME_GETFEAT_SELECT_CAP) {
        *result = fid == NVME_NUMBER_OF_QUEUES ? 0 : NVME_FEAT_CAP_CHANGE;
        return NVME_SUCCESS;
    }
    if (sel > NVME_GETFEAT_SELECT_CAP) {
        return NVME_INVALID_FIELD | NVME_DNR;
    }
    switch (fid) {
    case NVME_ARBITRATION:
        *result = dflt ? 0 : n->feat_arb;
        break;
    case NVME_POWER_MANAGEMENT:
        *result = dflt ? 0 : n->feat_pm;
        break;
    case NVME_TEMPERATURE_THRESHOLD:
        if (NVME_TEMP_TMPSEL(dw11) != NVME_TEMP_TMPSEL_COMPOSITE) {
            return NVME_INVALID_FIELD | NVME_DNR;
        }
        switch (NVME_TEMP_THSEL(dw11)) {
        case NVME_TEMP_THSEL_OVER:
            *result = dflt ? VN_WCTEMP : n->feat_temp_over;
            break;
        case NVME_TEMP_THSEL_UNDER:
            *result = dflt ? 0 : n->feat_temp_under;
            break;
        default:
            return NVME_INVALID_FIELD | NVME_DNR;
        }
        break;
    case NVME_VOLATILE_WRITE_CACHE:
        *result = dflt ? 1 : n->feat_wce;
        break;
    case NVME_NUMBER_OF_QUEUES:
        *result = vn_nr_queues_result(n);
        break;
    case NVME_INTERRUPT_COALESCING:
        *result = dflt ? 0 : n->feat_intc;
        break;
    case NVME_ASYNCHRONOUS_EVENT_CONF:
        *result = dflt ? 0 : n->feat_aec;
        break;
    }
    return NVME_SUCCESS;
}

static uint16_t vn_set_features(VhostNvme *n, NvmeCmd *cmd, uint32_t *result)
{
    uint32_t dw10 = le32_to_cpu(cmd->cdw10), dw11 = le32_to_cpu(cmd->cdw11);
    uint8_t fid = NVME_GETSETFEAT_FID(dw10);

    if (!vn_feature_known(n, fid)) {
        return NVME_INVALID_FIELD | NVME_DNR;
    }
    if (NVME_SETFEAT_SAVE(dw10)) {
        return NVME_FID_NOT_SAVEABLE | NVME_DNR;
    }
    switch (fid) {
    case NVME_ARBITRATION:
        n->feat_arb = dw11;
        break;
    case NVME_POWER_MANAGEMENT:
        if ((dw11 & 0x1f) > 0) {        /* NPSS is 0: PS0 only */
            return NVME_INVALID_FIELD | NVME_DNR;
        }
        n->feat_pm = dw11 & 0xff;
        break;
    case NVME_TEMPERATURE_THRESHOLD:
        if (NVME_TEMP_TMPSEL(dw11) != NVME_TEMP_TMPSEL_COMPOSITE) {
            return NVME_INVALID_FIELD | NVME_DNR;
        }
        switch (NVME_TEMP_THSEL(dw11)) {
        case NVME_TEMP_THSEL_OVER:
            n->feat_temp_over = NVME_TEMP_TMPTH(dw11);
            break;
        case NVME_TEMP_THSEL_UNDER:
            n->feat_temp_under = NVME_TEMP_TMPTH(dw11);
            break;
        default:
            return NVME_INVALID_FIELD | NVME_DNR;
        }
        break;
    case NVME_VOLATILE_WRITE_CACHE: {
        bool wce = dw11 & 1;

        if (n->feat_wce && !wce && n->bfd >= 0) {
            /* Turning the cache off: what it held must reach the media. */
            fdatasync(n->bfd);
        }
        n->feat_wce = wce;
        break;
    }
    case NVME_NUMBER_OF_QUEUES:
        if ((dw11 & 0xffff) == 0xffff || (dw11 >> 16) == 0xffff) {
            return NVME_INVALID_FIELD | NVME_DNR;
        }
        *result = vn_nr_queues_result(n);
        break;
    case NVME_INTERRUPT_COALESCING:
        n->feat_intc = dw11 & 0xffff;
        break;
    case NVME_ASYNCHRONOUS_EVENT_CONF:
        n->feat_aec = dw11 & (0x1f | NVME_OAES_NS_ATTR);
        break;
    }
    return NVME_SUCCESS;
}

static uint16_t vn_dbbuf_config(VhostNvme *n, NvmeCmd *cmd)
{
    uint64_t dbs = le64_to_cpu(cmd->dptr.prp1);
    uint64_t eis = le64_to_cpu(cmd->dptr.prp2);
    uint32_t v[2];
    unsigned int qid;
    int ret;

    if (!(n->features & VHOST_NVME_F_SHADOW_DB)) {
        return NVME_INVALID_OPCODE | NVME_DNR;
    }
    if (!dbs || !eis || (dbs & (VN_PAGE - 1)) || (eis & (VN_PAGE - 1))) {
        return NVME_INVALID_FIELD | NVME_DNR;
    }
    ret = vn_set_doorbells(n, true, dbs, eis);
    if (ret) {
        return NVME_INVALID_FIELD | NVME_DNR;
    }
    n->shadow = true;
    n->dbbuf_dbs = dbs;
    n->dbbuf_eis = eis;
    vn_debug(n, "Doorbell Buffer Config: shadow doorbells at 0x%" PRIx64
             ", EventIdx at 0x%" PRIx64 "; I/O doorbells are ioeventfds", dbs, eis);
    /* The admin queue's entries: kept current by the MMIO handler. */
    v[0] = cpu_to_le32(n->asq_tail);
    v[1] = cpu_to_le32(n->acq_head);
    pci_dma_write(PCI_DEVICE(n), dbs, v, sizeof(v));
    for (qid = 1; qid <= n->max_ioqpairs; qid++) {
        if (n->sq[qid].exists) {
            vn_queue_ioeventfd(n, &n->sq[qid], false, true);
        }
        if (n->cq[qid].exists) {
            vn_queue_ioeventfd(n, &n->cq[qid], true, true);
        }
    }
    return NVME_SUCCESS;
}

static uint16_t vn_admin_cmd(VhostNvme *n, NvmeCmd *cmd, uint32_t *result)
{
    if (NVME_CMD_FLAGS_FUSE(cmd->flags) || NVME_CMD_FLAGS_PSDT(cmd->flags)) {
        return NVME_INVALID_FIELD | NVME_DNR;
    }
    switch (cmd->opcode) {
    case NVME_ADM_CMD_DELETE_SQ:
        return vn_delete_sq(n, cmd);
    case NVME_ADM_CMD_CREATE_SQ:
        return vn_create_sq(n, cmd);
    case NVME_ADM_CMD_GET_LOG_PAGE:
        return vn_get_log(n, cmd);
    case NVME_ADM_CMD_DELETE_CQ:
        return vn_delete_cq(n, cmd);
    case NVME_ADM_CMD_CREATE_CQ:
        return vn_create_cq(n, cmd);
    case NVME_ADM_CMD_IDENTIFY:
        return vn_identify(n, cmd);
    case NVME_ADM_CMD_ABORT:
        *result = 1;                    /* command not aborted */
        return NVME_SUCCESS;
    case NVME_ADM_CMD_SET_FEATURES:
        return vn_set_features(n, cmd, result);
    case NVME_ADM_CMD_GET_FEATURES:
        return vn_get_features(n, cmd, result);
    case NVME_ADM_CMD_ASYNC_EV_REQ:
        if (n->nr_aers > VN_AERL) {
            return NVME_AER_LIMIT_EXCEEDED;
        }
        /* No event is ever reported; the request stays outstanding. */
        n->aer_cids[n->nr_aers++] = le16_to_cpu(cmd->cid);
        return NVME_NO_COMPLETE;
    case NVME_ADM_CMD_DBBUF_CONFIG:
        return vn_dbbuf_config(n, cmd);
    default:
        return NVME_INVALID_OPCODE | NVME_DNR;
    }
}

static void vn_post_admin_cqe(VhostNvme *n, uint16_t cid, uint16_t status,
                              uint32_t result)
{
    PCIDevice *pdev = PCI_DEVICE(n);
    hwaddr addr = n->acq + (hwaddr)n->acq_tail * sizeof(NvmeCqe);
    NvmeCqe cqe = { 0 };
    uint32_t dw3;

    cqe.result = cpu_to_le32(result);
    cqe.sq_head = cpu_to_le16(n->asq_head);
    cqe.sq_id = 0;
    pci_dma_write(pdev, addr, &cqe, 12);
    /* Command identifier, status and phase last, in one 32-bit store. */
    smp_wmb();
    dw3 = cid | (uint32_t)((status << 1) | n->acq_phase) << 16;
    dw3 = cpu_to_le32(dw3);
    pci_dma_write(pdev, addr + 12, &dw3, 4);
    if (++n->acq_tail == n->acq_size) {
        n->acq_tail = 0;
        n->acq_phase = !n->acq_phase;
    }
}

static void vn_process_admin(VhostNvme *n)
{
    bool posted = false;

    while (vn_ready(n) && n->asq_head != n->asq_tail) {
        NvmeCmd cmd;
        uint32_t result = 0;
        uint16_t status;

        if ((n->acq_tail + 1) % n->acq_size == n->acq_head) {
            break;                      /* admin CQ full */
        }
        if (pci_dma_read(PCI_DEVICE(n), n->asq + (hwaddr)n->asq_head * 64,
                         &cmd, sizeof(cmd)) != MEMTX_OK) {
            n->csts |= NVME_CSTS_FAILED;
            break;
        }
        n->asq_head = (n->asq_head + 1) % n->asq_size;
        status = vn_admin_cmd(n, &cmd, &result);
        if (status == NVME_NO_COMPLETE) {
            continue;
        }
        vn_post_admin_cqe(n, le16_to_cpu(cmd.cid), status, result);
        posted = true;
    }
    if (posted) {
        vn_irq_notify(n, 0);
    }
}

/* ------------------------------------------------------------------------ */
/* Controller enable, reset, shutdown */

static void vn_delete_all_queues(VhostNvme *n)
{
    unsigned int qid;
    int ret;

    /* A controller being reset gets no completions for what is dropped. */
    for (qid = 1; qid <= n->max_ioqpairs; qid++) {
        if (n->sq[qid].exists) {
            ret = vn_delete_sq_q(n, &n->sq[qid], VHOST_NVME_DELETE_F_DISCARD);
            if (ret) {
                error_report("vhost-nvme: VHOST_NVME_DELETE_SQ %u: %s",
                             qid, strerror(-ret));
            }
        }
    }
    for (qid = 1; qid <= n->max_ioqpairs; qid++) {
        if (n->cq[qid].exists) {
            ret = vn_delete_cq_q(n, &n->cq[qid]);
            if (ret) {
                error_report("vhost-nvme: VHOST_NVME_DELETE_CQ %u: %s",
                             qid, strerror(-ret));
            }
        }
    }
}

static void vn_features_default(VhostNvme *n)
{
    n->feat_arb = 0;
    n->feat_pm = 0;
    n->feat_temp_over = VN_WCTEMP;
    n->feat_temp_under = 0;
    n->feat_wce = true;
    n->feat_intc = 0;
    n->feat_aec = 0;
}

/* Controller reset: the module's queues go, the doorbells return to QEMU. */
static void vn_ctrl_reset(VhostNvme *n)
{
    struct vhost_nvme_quiesce q = { 0 };
    int ret;

    if (n->vfd < 0) {
        return;
    }
    vn_debug(n, "controller reset");
    if (!n->quiesced) {
        ret = vn_ioctl(n, VHOST_NVME_QUIESCE, &q);
        if (ret) {
            error_report("vhost-nvme: VHOST_NVME_QUIESCE: %s", strerror(-ret));
        }
        n->quiesced = true;
    }
    vn_delete_all_queues(n);
    if (n->shadow) {
        ret = vn_set_doorbells(n, false, 0, 0);
        if (ret) {
            error_report("vhost-nvme: VHOST_NVME_SET_DOORBELLS: %s",
                         strerror(-ret));
        }
        n->shadow = false;
    }
    memset(n->vmm_db, 0, VN_PAGE);
    n->dbbuf_dbs = n->dbbuf_eis = 0;
    n->nr_aers = 0;
    n->asq_head = n->asq_tail = n->acq_head = n->acq_tail = 0;
    n->acq_phase = true;
    if (n->intx) {
        n->intx = false;
        pci_irq_deassert(PCI_DEVICE(n));
    }
    vn_features_default(n);
    n->csts &= ~NVME_CSTS_READY;
}

static void vn_ctrl_enable(VhostNvme *n)
{
    struct vhost_nvme_quiesce q = { 0 };
    uint32_t cc = n->cc;
    int ret;

    if (!n->asq || !n->acq || (n->asq & (VN_PAGE - 1)) ||
        (n->acq & (VN_PAGE - 1)) || NVME_CC_MPS(cc) != 0 ||
        NVME_CC_CSS(cc) != NVME_CC_CSS_NVM || NVME_AQA_ASQS(n->aqa) < 1 ||
        NVME_AQA_ACQS(n->aqa) < 1) {
        qemu_log_mask(LOG_GUEST_ERROR, "vhost-nvme: bad controller configuration\n");
        n->csts |= NVME_CSTS_FAILED;
        return;
    }
    if (n->quiesced) {
        ret = vn_ioctl(n, VHOST_NVME_RESUME, &q);
        if (ret) {
            error_report("vhost-nvme: VHOST_NVME_RESUME: %s", strerror(-ret));
            n->csts |= NVME_CSTS_FAILED;
            return;
        }
        n->quiesced = false;
    }
    n->asq_size = NVME_AQA_ASQS(n->aqa) + 1;
    n->acq_size = NVME_AQA_ACQS(n->aqa) + 1;
    n->asq_head = n->asq_tail = n->acq_head = n->acq_tail = 0;
    n->acq_phase = true;
    n->csts = NVME_CSTS_READY;
}

static void vn_shutdown(VhostNvme *n)
{
    /* Everything completed has reached the backend; make it durable. */
    if (n->bfd >= 0 && fdatasync(n->bfd) < 0) {
        error_report("vhost-nvme: fdatasync(%s): %s", n->backend, strerror(errno));
    }
    vn_debug(n, "shutdown: backend flushed");
}

static void vn_write_cc(VhostNvme *n, uint32_t val)
{
    uint32_t old = n->cc;

    n->cc = val;
    if (NVME_CC_EN(val) && !NVME_CC_EN(old)) {
        vn_ctrl_enable(n);
    } else if (!NVME_CC_EN(val) && NVME_CC_EN(old)) {
        vn_ctrl_reset(n);
        n->csts &= ~NVME_CSTS_FAILED;
    }
    if (NVME_CC_SHN(val) && !NVME_CC_SHN(old)) {
        vn_shutdown(n);
        n->csts = (n->csts & ~(CSTS_SHST_MASK << CSTS_SHST_SHIFT)) |
                  NVME_CSTS_SHST_COMPLETE;
    } else if (!NVME_CC_SHN(val) && NVME_CC_SHN(old)) {
        n->csts &= ~(CSTS_SHST_MASK << CSTS_SHST_SHIFT);
    }
}

/* ------------------------------------------------------------------------ */
/* MMIO */

static void vn_doorbell(VhostNvme *n, hwaddr off, uint32_t val)
{
    unsigned int idx = (off - VN_REG_SIZE) / 4;
    unsigned int qid = idx / 2;
    bool is_cq = idx & 1;
    VNQueue *q;

    if (qid == 0) {
        if (!vn_ready(n)) {
            return;
        }
        if (is_cq) {
            if (val >= n->acq_size) {
                return;
            }
            n->acq_head = val;
            vn_intx_update(n);
        } else {
            if (val >= n->asq_size) {
                return;
            }
            n->asq_tail = val;
        }
        if (n->shadow) {
            /* Linux never updates the admin queue's shadow entries. */
            uint32_t le = cpu_to_le32(val);

            pci_dma_write(PCI_DEVICE(n), n->dbbuf_dbs + idx * 4, &le, 4);
        }
        vn_process_admin(n);
        return;
    }
    if (qid > n->max_ioqpairs) {
        return;
    }
    q = is_cq ? &n->cq[qid] : &n->sq[qid];
    if (!q->exists) {
        return;
    }
    /* VMM doorbell mode (or no ioeventfd): store, then kick. */
    qatomic_set(&n->vmm_db[idx], cpu_to_le32(val));
    smp_wmb();
    event_notifier_set(&q->kick);
}

static uint64_t vn_mmio_read(void *opaque, hwaddr addr, unsigned size)
{
    VhostNvme *n = opaque;
    uint8_t regs[0x40] = { 0 };
    uint64_t val = 0;

    if (addr >= sizeof(regs) || addr + size > sizeof(regs)) {
        return 0;
    }
    stq_le_p(regs + NVME_REG_CAP, n->cap);
    stl_le_p(regs + NVME_REG_VS, n->vs);
    stl_le_p(regs + NVME_REG_INTMS, n->intms);
    stl_le_p(regs + NVME_REG_INTMC, n->intms);
    stl_le_p(regs + NVME_REG_CC, n->cc);
    stl_le_p(regs + NVME_REG_CSTS, n->csts);
    stl_le_p(regs + NVME_REG_AQA, n->aqa);
    stq_le_p(regs + NVME_REG_ASQ, n->asq);
    stq_le_p(regs + NVME_REG_ACQ, n->acq);
    memcpy(&val, regs + addr, size);
    return le64_to_cpu(val);
}

static void vn_reg_write32(VhostNvme *n, hwaddr addr, uint32_t val)
{
    bool en = NVME_CC_EN(n->cc);

    switch (addr) {
    case NVME_REG_INTMS:
        n->intms |= val;
        break;
    case NVME_REG_INTMC:
        n->intms &= ~val;
        break;
    case NVME_REG_CC:
        vn_write_cc(n, val);
        break;
    case NVME_REG_AQA:
        if (!en) {
            n->aqa = val & 0x0fff0fff;
        }
        break;
    case NVME_REG_ASQ:
        if (!en) {
            n->asq = (n->asq & 0xffffffff00000000ULL) | val;
        }
        break;
    case NVME_REG_ASQ + 4:
        if (!en) {
            n->asq = (n->asq & 0xffffffffULL) | (uint64_t)val << 32;
        }
        break;
    case NVME_REG_ACQ:
        if (!en) {
            n->acq = (n->acq & 0xffffffff00000000ULL) | val;
        }
        break;
    case NVME_REG_ACQ + 4:
        if (!en) {
            n->acq = (n->acq & 0xffffffffULL) | (uint64_t)val << 32;
        }
        break;
    default:
        break;
    }
}

static void vn_mmio_write(void *opaque, hwaddr addr, uint64_t data, unsigned size)
{
    VhostNvme *n = opaque;

    if (addr & 3) {
        qemu_log_mask(LOG_GUEST_ERROR, "vhost-nvme: unaligned write 0x%"
                      HWADDR_PRIx "\n", addr);
        return;
    }
    if (addr >= VN_REG_SIZE) {
        if (size == 4) {
            vn_doorbell(n, addr, data);
        }
        return;
    }
    vn_reg_write32(n, addr, data);
    if (size == 8) {
        vn_reg_write32(n, addr + 4, data >> 32);
    }
}

static const MemoryRegionOps vn_mmio_ops = {
    .read = vn_mmio_read,
    .write = vn_mmio_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .impl = {
        .min_access_size = 4,
        .max_access_size = 8,
    },
    .valid = {
        .min_access_size = 4,
        .max_access_size = 8,
    },
};

/* ------------------------------------------------------------------------ */
/* Realize */

static bool vn_open_module(VhostNvme *n, Error **errp)
{
    if (n->vhostfd_str) {
        n->vfd = monitor_fd_param(monitor_cur(), n->vhostfd_str, errp);
        if (n->vfd < 0) {
            error_prepend(errp, "vhost-nvme: unable to parse vhostfd: ");
            return false;
        }
        return true;
    }
    n->vfd = open("/dev/vhost-nvme", O_RDWR | O_CLOEXEC);
    if (n->vfd < 0) {
        if (errno == ENOENT || errno == ENODEV || errno == ENXIO) {
            error_setg_errno(errp, errno, "vhost-nvme: cannot open /dev/vhost-nvme "
                             "(is the vhost_nvme module loaded?)");
        } else if (errno == EACCES || errno == EPERM) {
            error_setg_errno(errp, errno, "vhost-nvme: no permission to open "
                             "/dev/vhost-nvme");
        } else {
            error_setg_errno(errp, errno, "vhost-nvme: cannot open /dev/vhost-nvme");
        }
        return false;
    }
    return true;
}

static bool vn_negotiate(VhostNvme *n, Error **errp)
{
    static const struct {
        const char *name;
        size_t off;
        uint64_t bit;
    } props[] = {
        { "dbcs", offsetof(VhostNvme, dbcs), VHOST_NVME_F_SHADOW_DB },
        { "sgl", offsetof(VhostNvme, sgl), VHOST_NVME_F_SGL },
        { "dsm", offsetof(VhostNvme, dsm), VHOST_NVME_F_DSM },
        { "write-zeroes", offsetof(VhostNvme, write_zeroes), VHOST_NVME_F_WRITE_ZEROES },
    };
    uint64_t supported, want = 0;
    unsigned int i;
    int ret;

    ret = vn_ioctl(n, VHOST_GET_FEATURES, &supported);
    if (ret) {
        error_setg_errno(errp, -ret, "vhost-nvme: VHOST_GET_FEATURES");
        return false;
    }
    for (i = 0; i < ARRAY_SIZE(props); i++) {
        OnOffAuto v = *(OnOffAuto *)((char *)n + props[i].off);

        if (v == ON_OFF_AUTO_OFF) {
            continue;
        }
        if (!(supported & props[i].bit)) {
            if (v == ON_OFF_AUTO_ON) {
                error_setg(errp, "vhost-nvme: %s=on, but the vhost_nvme module "
                           "does not offer this feature", props[i].name);
                return false;
            }
            continue;
        }
        want |= props[i].bit;
    }
    if (n->poll_us > 0 && !(supported & VHOST_NVME_F_POLL)) {
        error_setg(errp, "vhost-nvme: poll-us=%d, but the vhost_nvme module "
                   "has no SQ polling", n->poll_us);
        return false;
    }
    want |= supported & VHOST_NVME_F_POLL;
    ret = vn_ioctl(n, VHOST_SET_FEATURES, &want);
    if (ret) {
        error_setg_errno(errp, -ret, "vhost-nvme: VHOST_SET_FEATURES");
        return false;
    }
    n->features = want;
    if (n->poll_us >= 0 && (n->features & VHOST_NVME_F_POLL)) {
        struct vhost_nvme_poll p = { .poll_us = n->poll_us };

        if ((uint32_t)n->poll_us > n->info.max_poll_us) {
            error_setg(errp, "vhost-nvme: poll-us=%d, the module allows "
                       "0..%u", n->poll_us, n->info.max_poll_us);
            return false;
        }
        ret = vn_ioctl(n, VHOST_NVME_SET_POLL, &p);
        if (ret) {
            error_setg_errno(errp, -ret, "vhost-nvme: VHOST_NVME_SET_POLL");
            return false;
        }
        vn_debug(n, "SQ polling: %d us after the last work", n->poll_us);
    }
    return true;
}

/* The module enforces the limits Identify advertises (after ATTACH_NS). */
static bool vn_set_limits(VhostNvme *n, Error **errp)
{
    struct vhost_nvme_limits l = { .size = sizeof(l) };
    uint8_t wzsl, dmrl;
    uint32_t dmrsl;
    int ret;

    vn_nvm_limits(n, &wzsl, &dmrl, &dmrsl);
    l.wzsl = wzsl;
    l.dmrl = dmrl;
    l.dmrsl = dmrsl;
    ret = vn_ioctl(n, VHOST_NVME_SET_LIMITS, &l);
    if (ret) {
        error_setg_errno(errp, -ret, "vhost-nvme: VHOST_NVME_SET_LIMITS");
        return false;
    }
    vn_debug(n, "limits: WZSL %u, DMRL %u, DMRSL %u", wzsl, dmrl, dmrsl);
    return true;
}

static bool vn_open_backend(VhostNvme *n, Error **errp)
{
    struct stat st;

    if (!n->backend) {
        error_setg(errp, "vhost-nvme: backend=PATH (a block device or a file) "
                   "is required");
        return false;
    }
    if (stat(n->backend, &st) == 0 && !S_ISBLK(st.st_mode) &&
        !S_ISREG(st.st_mode)) {
        error_setg(errp, "vhost-nvme: backend %s is neither a block device nor "
                   "a regular file", n->backend);
        return false;
    }
    n->bfd = open(n->backend, O_RDWR | O_DIRECT | O_CLOEXEC);
    if (n->bfd < 0 && errno == EINVAL) {
        /* e.g. tmpfs: no O_DIRECT */
        n->bfd = open(n->backend, O_RDWR | O_CLOEXEC);
        if (n->bfd >= 0) {
            warn_report("vhost-nvme: %s does not support O_DIRECT; using the "
                        "page cache", n->backend);
        }
    }
    if (n->bfd < 0) {
        if (errno == ENOENT) {
            error_setg_errno(errp, errno, "vhost-nvme: backend %s does not exist",
                             n->backend);
        } else if (errno == EACCES || errno == EPERM || errno == EROFS) {
            error_setg_errno(errp, errno, "vhost-nvme: no permission to open "
                             "backend %s for writing", n->backend);
        } else {
            error_setg_errno(errp, errno, "vhost-nvme: cannot open backend %s",
                             n->backend);
        }
        return false;
    }
    if (fstat(n->bfd, &st) < 0) {
        error_setg_errno(errp, errno, "vhost-nvme: stat %s", n->backend);
        return false;
    }
    if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
        error_setg(errp, "vhost-nvme: backend %s is neither a block device nor "
                   "a regular file", n->backend);
        return false;
    }
    return true;
}

static void vn_cleanup(VhostNvme *n)
{
    unsigned int qid;

    /* Queues a reset failed to delete: their notifiers and handlers. */
    for (qid = 1; n->sq && qid <= n->max_ioqpairs; qid++) {
        if (n->sq[qid].exists) {
            vn_queue_free(n, &n->sq[qid], false);
        }
        if (n->cq[qid].exists) {
            vn_queue_free(n, &n->cq[qid], true);
        }
    }
    if (n->bfd >= 0) {
        close(n->bfd);
        n->bfd = -1;
    }
    if (n->vfd >= 0) {
        close(n->vfd);          /* the module tears everything down */
        n->vfd = -1;
    }
    if (n->vmm_db) {
        qemu_vfree(n->vmm_db);
        n->vmm_db = NULL;
    }
    g_free(n->sq);
    g_free(n->cq);
    n->sq = n->cq = NULL;
    g_free(n->mem);
    n->mem = NULL;
    if (n->sections) {
        g_array_free(n->sections, true);
        n->sections = NULL;
    }
}

static void vn_realize(PCIDevice *pdev, Error **errp)
{
    VhostNvme *n = VHOST_NVME(pdev);
    struct vhost_nvme_ns ns = { 0 };
    uint64_t bar_size;
    unsigned int v;
    int ret;

    n->vfd = -1;
    n->bfd = -1;
    if (!n->serial) {
        n->serial = g_strdup("vhost-nvme");
    }
    if (!vn_open_module(n, errp)) {
        goto fail;
    }
    n->info.size = sizeof(n->info);
    ret = vn_ioctl(n, VHOST_NVME_GET_INFO, &n->info);
    if (ret) {
        error_setg_errno(errp, -ret, "vhost-nvme: VHOST_NVME_GET_INFO (is "
                         "/dev/vhost-nvme the vhost_nvme module, of ABI "
                         "version %u?)", VHOST_NVME_ABI_VERSION);
        goto fail;
    }
    if (n->info.abi_version != VHOST_NVME_ABI_VERSION) {
        error_setg(errp, "vhost-nvme: module ABI version %u, QEMU knows %u",
                   n->info.abi_version, VHOST_NVME_ABI_VERSION);
        goto fail;
    }
    ret = vn_ioctl(n, VHOST_SET_OWNER, NULL);
    if (ret) {
        error_setg_errno(errp, -ret, "vhost-nvme: VHOST_SET_OWNER%s",
                         ret == -EBUSY ? " (the device is in use)" : "");
        goto fail;
    }

    /* Limits: properties default to (and may not exceed) the module's. */
    if (!n->max_ioqpairs) {
        n->max_ioqpairs = MIN(64, n->info.max_qid);
    } else if (n->max_ioqpairs > n->info.max_qid) {
        error_setg(errp, "vhost-nvme: max_ioqpairs=%u, the module allows %u",
                   n->max_ioqpairs, n->info.max_qid);
        goto fail;
    }
    if (!n->mqes) {
        n->mqes = n->info.max_qsize - 1;
    } else if (n->mqes + 1u > n->info.max_qsize || n->mqes < 1) {
        error_setg(errp, "vhost-nvme: mqes=%u, the module allows 1..%u",
                   n->mqes, n->info.max_qsize - 1);
        goto fail;
    }
    if (!n->mdts) {
        n->mdts = n->info.mdts;
    } else if (n->mdts > n->info.mdts) {
        error_setg(errp, "vhost-nvme: mdts=%u, the module allows %u",
                   n->mdts, n->info.mdts);
        goto fail;
    }
    if (!n->msix_qsize) {
        n->msix_qsize = n->max_ioqpairs + 1;
    } else if (n->msix_qsize > 2048) {
        error_setg(errp, "vhost-nvme: msix_qsize must be 1..2048");
        goto fail;
    }
    if (n->lba_shift && (n->lba_shift < 9 || n->lba_shift > 12)) {
        error_setg(errp, "vhost-nvme: lba_shift must be 9..12 (or 0: the "
                   "backend's)");
        goto fail;
    }
    if (!vn_negotiate(n, errp)) {
        goto fail;
    }
    if (!vn_open_backend(n, errp)) {
        goto fail;
    }
    ns.nsid = 1;
    ns.fd = n->bfd;
    /* No volatile write cache: every write is durable when it completes. */
    ns.flags = n->write_cache ? 0 : VHOST_NVME_NS_F_WRITE_THROUGH;
    ns.lba_shift = n->lba_shift;
    ret = vn_ioctl(n, VHOST_NVME_ATTACH_NS, &ns);
    if (ret) {
        error_setg_errno(errp, -ret, "vhost-nvme: VHOST_NVME_ATTACH_NS %s",
                         n->backend);
        goto fail;
    }
    n->ns = ns;
    if (!ns.nsze) {
        error_setg(errp, "vhost-nvme: backend %s is empty", n->backend);
        goto fail;
    }
    if (!vn_set_limits(n, errp)) {
        goto fail;
    }

    n->sq = g_new0(VNQueue, n->max_ioqpairs + 1);
    n->cq = g_new0(VNQueue, n->max_ioqpairs + 1);
    n->vmm_db = qemu_memalign(VN_PAGE, VN_PAGE);
    memset(n->vmm_db, 0, VN_PAGE);
    ret = vn_set_doorbells(n, false, 0, 0);
    if (ret) {
        error_setg_errno(errp, -ret, "vhost-nvme: VHOST_NVME_SET_DOORBELLS");
        goto fail;
    }
    n->quiesced = false;

    /* Registers */
    n->cap = 0;
    NVME_CAP_SET_MQES(n->cap, n->mqes);
    NVME_CAP_SET_CQR(n->cap, 1);
    NVME_CAP_SET_TO(n->cap, 0xf);
    NVME_CAP_SET_DSTRD(n->cap, 0);
    NVME_CAP_SET_CSS(n->cap, NVME_CAP_CSS_NCSS);
    NVME_CAP_SET_MPSMIN(n->cap, 0);
    NVME_CAP_SET_MPSMAX(n->cap, 0);
    n->vs = 0x00010400;
    n->start_ns = qemu_clock_get_ns(QEMU_CLOCK_HOST);
    vn_features_default(n);

    /* PCI */
    pdev->config[PCI_INTERRUPT_PIN] = 1;
    pci_config_set_prog_interface(pdev->config, 0x2);
    pci_config_set_vendor_id(pdev->config, VN_PCI_VENDOR_ID);
    pci_config_set_device_id(pdev->config, VN_PCI_DEVICE_ID);
    pci_config_set_class(pdev->config, PCI_CLASS_STORAGE_EXPRESS);
    pcie_endpoint_cap_init(pdev, 0x80);
    pcie_cap_flr_init(pdev);
    bar_size = pow2ceil(VN_REG_SIZE + 8 * (n->max_ioqpairs + 1));
    memory_region_init_io(&n->mmio, OBJECT(n), &vn_mmio_ops, n, "vhost-nvme",
                          bar_size);
    pci_register_bar(pdev, 0, PCI_BASE_ADDRESS_SPACE_MEMORY |
                     PCI_BASE_ADDRESS_MEM_TYPE_64, &n->mmio);
    ret = msix_init_exclusive_bar(pdev, n->msix_qsize, 4, errp);
    if (ret) {
        goto fail;
    }
    for (v = 0; v < n->msix_qsize; v++) {
        msix_vector_use(pdev, v);
    }
    n->use_irqfd = n->irqfd_allowed && kvm_irqfds_enabled() &&
                   kvm_msi_via_irqfd_enabled();
    if (n->use_irqfd) {
        msix_set_vector_notifiers(pdev, vn_vector_use, vn_vector_release, NULL);
    }

    /* Guest memory: the listener sends the table now and on every change. */
    n->sections = g_array_new(false, true, sizeof(struct vhost_memory_region));
    n->listener = (MemoryListener) {
        .name = "vhost-nvme",
        .begin = vn_mem_begin,
        .commit = vn_mem_commit,
        .region_add = vn_mem_add,
        .region_nop = vn_mem_add,
        .priority = MEMORY_LISTENER_PRIORITY_DEV_BACKEND,
    };
    memory_listener_register(&n->listener, &address_space_memory);
    if (!n->mem) {
        error_setg(errp, "vhost-nvme: the module refused the guest memory table");
        memory_listener_unregister(&n->listener);
        goto fail_msix;
    }
    return;

fail_msix:
    if (n->use_irqfd) {
        msix_unset_vector_notifiers(pdev);
    }
    msix_uninit_exclusive_bar(pdev);
fail:
    vn_cleanup(n);
}

static void vn_exit(PCIDevice *pdev)
{
    VhostNvme *n = VHOST_NVME(pdev);

    vn_ctrl_reset(n);
    memory_listener_unregister(&n->listener);
    if (n->use_irqfd) {
        msix_unset_vector_notifiers(pdev);
    }
    msix_uninit_exclusive_bar(pdev);
    vn_cleanup(n);
}

static void vn_reset(DeviceState *dev)
{
    VhostNvme *n = VHOST_NVME(dev);

    vn_ctrl_reset(n);
    n->cc = 0;
    n->csts = 0;
    n->aqa = 0;
    n->asq = 0;
    n->acq = 0;
    n->intms = 0;
}

static const Property vn_props[] = {
    DEFINE_PROP_STRING("serial", VhostNvme, serial),
    DEFINE_PROP_STRING("backend", VhostNvme, backend),
    DEFINE_PROP_STRING("vhostfd", VhostNvme, vhostfd_str),
    DEFINE_PROP_UINT32("max_ioqpairs", VhostNvme, max_ioqpairs, 0),
    DEFINE_PROP_UINT16("mqes", VhostNvme, mqes, 0),
    DEFINE_PROP_UINT8("mdts", VhostNvme, mdts, 0),
    DEFINE_PROP_UINT16("msix_qsize", VhostNvme, msix_qsize, 0),
    DEFINE_PROP_UINT8("lba_shift", VhostNvme, lba_shift, 0),
    DEFINE_PROP_INT32("poll-us", VhostNvme, poll_us, -1),
    DEFINE_PROP_ON_OFF_AUTO("dbcs", VhostNvme, dbcs, ON_OFF_AUTO_AUTO),
    DEFINE_PROP_ON_OFF_AUTO("sgl", VhostNvme, sgl, ON_OFF_AUTO_AUTO),
    DEFINE_PROP_ON_OFF_AUTO("dsm", VhostNvme, dsm, ON_OFF_AUTO_AUTO),
    DEFINE_PROP_ON_OFF_AUTO("write-zeroes", VhostNvme, write_zeroes,
                            ON_OFF_AUTO_AUTO),
    DEFINE_PROP_BOOL("write-cache", VhostNvme, write_cache, true),
    DEFINE_PROP_BOOL("x-debug", VhostNvme, debug, false),
    DEFINE_PROP_BOOL("x-irqfd", VhostNvme, irqfd_allowed, true),
};

static const VMStateDescription vn_vmstate = {
    .name = "vhost-nvme",
    .unmigratable = 1,
};

static void vn_class_init(ObjectClass *oc, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(oc);
    PCIDeviceClass *pc = PCI_DEVICE_CLASS(oc);

    pc->realize = vn_realize;
    pc->exit = vn_exit;
    pc->class_id = PCI_CLASS_STORAGE_EXPRESS;
    pc->revision = 1;
    set_bit(DEVICE_CATEGORY_STORAGE, dc->categories);
    dc->desc = "NVMe controller with in-kernel I/O queues (vhost-nvme)";
    device_class_set_props(dc, vn_props);
    dc->vmsd = &vn_vmstate;
    device_class_set_legacy_reset(dc, vn_reset);
}

static const TypeInfo vn_info = {
    .name = TYPE_VHOST_NVME,
    .parent = TYPE_PCI_DEVICE,
    .instance_size = sizeof(VhostNvme),
    .class_init = vn_class_init,
    .interfaces = (InterfaceInfo[]) {
        { INTERFACE_PCIE_DEVICE },
        { }
    },
};

static void vn_register_types(void)
{
    type_register_static(&vn_info);
}

type_init(vn_register_types)
