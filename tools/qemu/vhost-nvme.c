/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vhost-nvme: QEMU's NVMe controller (hw/nvme) with its I/O queues
 * offloaded to /dev/vhost-nvme (the vhost_nvme module of the vhost-nvme
 * project), through the I/O-queue offload interface of hw/nvme/nvme.h.
 *
 * hw/nvme keeps the registers, the admin queue and every admin command
 * (Identify, log pages, features, asynchronous events, namespace
 * attachment); this device only connects what the I/O queues need:
 *
 * - the module's memory table, from a MemoryListener;
 * - per I/O queue a kick eventfd (VMM doorbells: the MMIO handler stores
 *   the value in a page of QEMU's memory and signals it; shadow doorbells
 *   after Doorbell Buffer Config: an ioeventfd on the doorbell register),
 *   an error eventfd (Controller Fatal Status when the module stops the
 *   queue) and, per CQ with interrupts, an irqfd routed to its MSI-X
 *   vector, or a main-loop handler while the vector is masked or without
 *   KVM;
 * - the namespaces: each backend= (of a vhost-nvme-ns, or the
 *   controller's own for namespace 1) is opened twice, as a BlockBackend
 *   that hw/nvme uses for its size, block sizes, image locking and the
 *   flush at shutdown, and as the fd the module does the I/O on.  The
 *   controller is the hotplug handler of its NVMe bus (hw/nvme's, with
 *   patch 0003) and takes vhost-nvme-ns devices only.
 *
 * Live update (cpr-transfer, QEMU 10.0): the device fd and the queues'
 * eventfds travel to the next QEMU in the cpr state (named vhost-nvme/
 * SERIAL); the old QEMU releases the module's device once its VM is
 * stopped and saved, the new one realizes on the same queues without
 * telling the module anything and takes the device over after loading
 * (VHOST_NVME_RELEASE_OWNER, VHOST_NVME_TAKE_OWNER; the cookie in the
 * vhost-nvme/handover subsection).  The guest sees a pause, no reset.
 *
 * Everything runs under the BQL.
 *
 * Usage:
 *   -device vhost-nvme,id=ID,serial=SERIAL[,backend=PATH][,vhostfd=N]
 *           [,poll-us=N][,workers=N][,x-allow-tcg=on][,x-irqfd=off]
 *   -device vhost-nvme-ns,bus=ID,backend=PATH[,nsid=N]
 * and hw/nvme's controller and namespace properties; trace events
 * vhost_nvme_*.
 */

#include "qemu/osdep.h"
#include <sys/ioctl.h>
#include "qemu/error-report.h"
#include "qemu/cutils.h"
#include "qemu/memalign.h"
#include "qemu/event_notifier.h"
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "qemu/log.h"
#include "qapi/error.h"
#include "qobject/qdict.h"
#include "hw/pci/msi.h"
#include "hw/pci/msix.h"
#include "hw/qdev-properties.h"
#include "hw/boards.h"
#include "monitor/monitor.h"
#include "exec/memory.h"
#include "exec/address-spaces.h"
#include "system/kvm.h"
#include "system/runstate.h"
#include "system/block-backend.h"
#include "block/block.h"
#include "migration/blocker.h"
#include "migration/cpr.h"
#include "migration/misc.h"
#include "migration/options.h"
#include "migration/vmstate.h"
#include "nvme.h"
#include "trace.h"
#include "vhost_nvme_uapi.h"

#define TYPE_VHOST_NVME "vhost-nvme"
OBJECT_DECLARE_TYPE(VhostNvmeCtrl, VhostNvmeClass, VHOST_NVME)
#define TYPE_VHOST_NVME_NS "vhost-nvme-ns"
OBJECT_DECLARE_TYPE(VhostNvmeNs, VhostNvmeNsClass, VHOST_NVME_NS)

#define VN_PAGE                 4096u
#define VN_PAUSE_VM             1u      /* the VM is stopped */
#define VN_PAUSE_BME            2u      /* Bus Master Enable is 0 */
#define VN_DB_BASE              0x1000
/*
 * KVM's ioeventfds per VM, every device's together (NR_IOBUS_DEVS: 1000
 * since Linux 4.4); one that cannot be registered aborts QEMU.  Shadow
 * doorbells take two per queue pair: half of them at most.
 */
#define VN_IOEVENTFD_BUDGET     512u

typedef struct VNQueue {
    VhostNvmeCtrl *v;
    bool exists;
    uint16_t qid;
    uint16_t size;
    uint64_t addr;
    EventNotifier kick;     /* SQ tail or CQ head doorbell */
    bool ioeventfd;
    EventNotifier err;      /* the module stopped the queue */
    /* CQ only */
    bool ien;
    uint16_t iv;
    EventNotifier irq;
    int virq;               /* KVM MSI route, or -1 */
    bool irqfd;
    bool handler;
    bool pending;           /* pin-based: counted in NvmeCtrl.cq_pending */
    uint16_t db_head;       /* last head the guest wrote to the doorbell */
    uint64_t mainloop_irqs;
    /* SQ only */
    uint16_t cqid;
    bool counted;           /* its commands were traced */
    bool draining;          /* a Delete I/O SQ waits for @drain */
    EventNotifier drain;    /* the module's drain of this SQ is over */
    NvmeRequest *del_req;
} VNQueue;

/* A namespace's backend= */
typedef struct VNBackend {
    char *path;
    int fd;                 /* what the module does the I/O on, or -1 */
} VNBackend;

struct VhostNvmeNs {
    NvmeNamespace parent_obj;
    VNBackend b;
};

struct VhostNvmeNsClass {
    DeviceClass parent_class;
    DeviceRealize parent_realize;
    DeviceUnrealize parent_unrealize;
};

struct VhostNvmeCtrl {
    NvmeCtrl parent_obj;

    VNBackend b;            /* backend=: namespace 1, or no path */
    char *vhostfd_str;
    int32_t poll_us;
    uint32_t workers;       /* worker threads; 0: one per vCPU */
    bool allow_tcg;
    bool irqfd_allowed;     /* x-irqfd=off: the main loop raises them all */
    bool can_log;           /* the module has VHOST_NVME_F_LOG_ALL */
    bool can_handover;      /* ... and VHOST_NVME_F_OWNER_HANDOVER */
    bool incoming;          /* realized for an incoming migration */

    int vfd;
    struct vhost_nvme_info info;
    uint64_t features;
    DECLARE_BITMAP(attached, NVME_MAX_NAMESPACES + 1);  /* in the module */
    /* SMART counters of namespaces detached from the module since realize */
    struct vhost_nvme_ns_stats *stats_gone;
    bool quiesced;          /* the module does not fetch (QUIESCE) */
    unsigned int paused;    /* VN_PAUSE_*: no DMA now, whatever CC says */
    bool pause_quiesced;    /* quiesced by vn_pause(): vn_unpause resumes */
    VMChangeStateEntry *vmstate;
    bool disabling;         /* CC.EN 1 to 0 or an FLR wait for @quiesce_done */
    bool flr_pending;       /* an FLR waits for @quiesce_done: not ready */
    QEMUTimer *intx_timer;  /* pin asserted: re-read the shadow CQ heads */
    EventNotifier quiesce_done;
    bool use_irqfd;
    bool shadow;
    uint32_t coalescing;    /* Interrupt Coalescing (08h): TIME << 8 | THR */
    unsigned long *no_coalescing;   /* Interrupt Vector Configuration CD */
    int32_t nr_vectors;     /* bits of no_coalescing */
    uint32_t *vmm_db;       /* VHOST_NVME_DB_VMM page */
    unsigned int nr_q;      /* max_ioqpairs + 1 */
    uint32_t *worker_ids;   /* CQ n: worker_ids[(n - 1) % workers] */
    VNQueue *sq;
    VNQueue *cq;

    MemoryListener listener;
    GArray *sections;
    struct vhost_memory *mem;
    bool mem_error_reported;

    /* Migration: the module's dirty log, while migration logs */
    uint64_t *log;
    uint64_t log_size;      /* bytes */
    bool logging;           /* VHOST_NVME_F_LOG_ALL set */
    Error *blocker;
    NotifierWithReturn mig_notifier;

    /* Live update (cpr-transfer) */
    char *cpr_name;         /* our fds in the cpr state: vhost-nvme/SERIAL */
    bool owner;             /* this process owns the module's device */
    bool cpr_incoming;      /* realized on the device of the QEMU before */
    uint64_t cookie;        /* of a hand-over under way */
    uint64_t cpr_features;  /* the features the source negotiated */
    bool cpr_sent;          /* the cpr state is gone: new fds stay here */
    bool cpr_stale;         /* a queue's fds were created since */
    NotifierWithReturn cpr_notifier;
};

struct VhostNvmeClass {
    PCIDeviceClass parent_class;
    void (*parent_realize)(PCIDevice *pdev, Error **errp);
    void (*parent_exit)(PCIDevice *pdev);
    void (*parent_config_write)(PCIDevice *pdev, uint32_t addr, uint32_t val,
                                int len);
    uint32_t (*parent_config_read)(PCIDevice *pdev, uint32_t addr, int len);
};

static VhostNvmeCtrl *vn_of(NvmeCtrl *n)
{
    return VHOST_NVME(n);
}

static int vn_ioctl(VhostNvmeCtrl *v, unsigned long req, void *arg)
{
    return ioctl(v->vfd, req, arg) < 0 ? -errno : 0;
}

/* ------------------------------------------------------------------------ */
/* Guest memory */

static int vn_region_cmp(const void *a, const void *b)
{
    const struct vhost_memory_region *x = a, *y = b;

    return x->guest_phys_addr < y->guest_phys_addr ? -1 :
           x->guest_phys_addr > y->guest_phys_addr;
}

static void vn_mem_begin(MemoryListener *l)
{
    VhostNvmeCtrl *v = container_of(l, VhostNvmeCtrl, listener);

    g_array_set_size(v->sections, 0);
}

static void vn_mem_add(MemoryListener *l, MemoryRegionSection *s)
{
    VhostNvmeCtrl *v = container_of(l, VhostNvmeCtrl, listener);
    struct vhost_memory_region r = { 0 };
    uint64_t gpa, end, hva;

    if (!memory_region_is_ram(s->mr) || memory_region_is_rom(s->mr) ||
        memory_region_is_ram_device(s->mr)) {
        return;
    }
    gpa = s->offset_within_address_space;
    end = gpa + int128_get64(s->size);
    hva = (uintptr_t)memory_region_get_ram_ptr(s->mr) + s->offset_within_region;
    /* The module maps 4 KiB granules: keep the whole pages only. */
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
    g_array_append_val(v->sections, r);
}

static bool vn_log_grow(VhostNvmeCtrl *v, const struct vhost_memory *mem);

static void vn_mem_commit(MemoryListener *l)
{
    VhostNvmeCtrl *v = container_of(l, VhostNvmeCtrl, listener);
    GArray *a = v->sections;
    struct vhost_memory *mem;
    unsigned int i, nr = 0;
    size_t sz;
    int ret;

    g_array_sort(a, vn_region_cmp);
    mem = g_malloc0(sizeof(*mem) + a->len * sizeof(mem->regions[0]));
    for (i = 0; i < a->len; i++) {
        struct vhost_memory_region *r =
            &g_array_index(a, struct vhost_memory_region, i);
        struct vhost_memory_region *prev = nr ? &mem->regions[nr - 1] : NULL;

        if (prev &&
            prev->guest_phys_addr + prev->memory_size == r->guest_phys_addr &&
            prev->userspace_addr + prev->memory_size == r->userspace_addr) {
            prev->memory_size += r->memory_size;
            continue;
        }
        mem->regions[nr++] = *r;
    }
    mem->nregions = nr;
    sz = sizeof(*mem) + nr * sizeof(mem->regions[0]);
    if (v->mem &&
        sizeof(*mem) + v->mem->nregions * sizeof(mem->regions[0]) == sz &&
        !memcmp(v->mem, mem, sz)) {
        g_free(mem);
        return;
    }
    /* Without the device (a live update), vn_take() sends it. */
    ret = !v->owner ? 0 :
          vn_log_grow(v, mem) ? vn_ioctl(v, VHOST_SET_MEM_TABLE, mem) : -ENOMEM;
    if (ret) {
        if (!v->mem_error_reported) {
            error_report("vhost-nvme: VHOST_SET_MEM_TABLE with %u regions: %s",
                         nr, strerror(-ret));
            v->mem_error_reported = true;
        }
        g_free(mem);
        return;
    }
    g_free(v->mem);
    v->mem = mem;
}

/* ------------------------------------------------------------------------ */
/* Interrupts */

/*
 * Pin-based interrupts (MSI-X disabled): the line is asserted while a CQ
 * with interrupts enabled holds entries the guest has not consumed, as
 * hw/nvme does for its own CQs (NvmeCtrl.cq_pending counts them, the admin
 * CQ included).  The module knows the tail; the head is the last value
 * the guest wrote to the doorbell, which QEMU sees while MSI-X is off
 * (vn_cq_update_mode()), or with shadow doorbells the shadow head: the
 * guest need not write the register for every head (the module moves
 * the CQ's EventIdx too), so while the pin is asserted a timer reads it
 * again, or a guest that consumed everything would see the line stay up.
 */
static void vn_cq_intx_update(VhostNvmeCtrl *v, VNQueue *cq)
{
    struct vhost_nvme_queue_state st = {
        .qid = cq->qid, .type = VHOST_NVME_QTYPE_CQ,
    };
    PCIDevice *pdev = PCI_DEVICE(v);
    NvmeCtrl *n = NVME(v);
    uint32_t head;
    bool posted;

    if (cq->exists && v->shadow &&
        ldl_le_pci_dma(pdev, n->dbbuf_dbs + (2 * cq->qid + 1) * 4, &head,
                       MEMTXATTRS_UNSPECIFIED) == MEMTX_OK &&
        head < cq->size) {
        cq->db_head = head;
    }
    posted = cq->exists && cq->ien && !msix_enabled(pdev) &&
             !vn_ioctl(v, VHOST_NVME_GET_QUEUE_STATE, &st) &&
             st.tail != cq->db_head;
    if (posted && v->shadow) {
        timer_mod(v->intx_timer,
                  qemu_clock_get_ms(QEMU_CLOCK_VIRTUAL) + 1);
    }
    if (posted != cq->pending) {
        cq->pending = posted;
        if (posted) {
            n->cq_pending++;
        } else {
            n->cq_pending--;
        }
    }
    if (posted) {
        n->irq_status |= 1u << cq->iv;
    } else if (!n->cq_pending) {
        n->irq_status &= ~(1u << cq->iv);
    }
    nvme_offload_irq_update(n);
}

static void vn_intx_timer_cb(void *opaque)
{
    VhostNvmeCtrl *v = opaque;
    unsigned int qid;

    for (qid = 1; qid < v->nr_q; qid++) {
        if (v->cq[qid].pending) {
            vn_cq_intx_update(v, &v->cq[qid]);
        }
    }
}

static void vn_cq_irq_read(EventNotifier *e)
{
    VNQueue *cq = container_of(e, VNQueue, irq);
    PCIDevice *pdev = PCI_DEVICE(cq->v);

    if (!event_notifier_test_and_clear(e)) {
        return;
    }
    cq->mainloop_irqs++;
    if (msix_enabled(pdev)) {
        msix_notify(pdev, cq->iv);
    } else {
        vn_cq_intx_update(cq->v, cq);
    }
}

static void vn_cq_set_handler(VNQueue *cq, bool on)
{
    if (cq->handler != on) {
        event_notifier_set_handler(&cq->irq, on ? vn_cq_irq_read : NULL);
        cq->handler = on;
    }
}

static void vn_cq_irqfd_off(VNQueue *cq)
{
    if (cq->irqfd) {
        kvm_irqchip_remove_irqfd_notifier_gsi(kvm_state, &cq->irq, cq->virq);
        cq->irqfd = false;
    }
}

/* Route @cq's eventfd to its vector through KVM; false to fall back. */
static bool vn_cq_irqfd_on(VNQueue *cq, MSIMessage *msg)
{
    PCIDevice *pdev = PCI_DEVICE(cq->v);

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
        vn_cq_set_handler(cq, false);
        if (kvm_irqchip_add_irqfd_notifier_gsi(kvm_state, &cq->irq, NULL,
                                               cq->virq) < 0) {
            return false;
        }
        cq->irqfd = true;
    }
    return true;
}

static void vn_cq_irq_setup(VhostNvmeCtrl *v, VNQueue *cq)
{
    PCIDevice *pdev = PCI_DEVICE(v);

    if (!cq->ien) {
        return;
    }
    if (v->use_irqfd && msix_enabled(pdev) && !msix_is_masked(pdev, cq->iv) &&
        vn_cq_irqfd_on(cq, NULL)) {
        trace_vhost_nvme_cq_irqfd(cq->qid, cq->iv, cq->virq);
        return;
    }
    vn_cq_set_handler(cq, true);
    trace_vhost_nvme_cq_irq_mainloop(cq->qid, cq->iv);
}

static void vn_cq_irq_teardown(VNQueue *cq)
{
    vn_cq_irqfd_off(cq);
    if (cq->virq >= 0) {
        kvm_irqchip_release_virq(kvm_state, cq->virq);
        cq->virq = -1;
    }
    vn_cq_set_handler(cq, false);
}

static int vn_vector_use(PCIDevice *pdev, unsigned int vector, MSIMessage msg)
{
    VhostNvmeCtrl *v = VHOST_NVME(pdev);
    unsigned int qid;

    if (!v->owner && !v->cpr_incoming) {
        return 0;       /* handed over: the next QEMU routes them */
    }
    for (qid = 1; qid < v->nr_q; qid++) {
        VNQueue *cq = &v->cq[qid];

        if (!cq->exists || !cq->ien || cq->iv != vector) {
            continue;
        }
        if (!vn_cq_irqfd_on(cq, &msg)) {
            vn_cq_irqfd_off(cq);
            vn_cq_set_handler(cq, true);
        }
    }
    return 0;
}

static void vn_vector_release(PCIDevice *pdev, unsigned int vector)
{
    VhostNvmeCtrl *v = VHOST_NVME(pdev);
    unsigned int qid;

    if (!v->owner && !v->cpr_incoming) {
        return;
    }
    for (qid = 1; qid < v->nr_q; qid++) {
        VNQueue *cq = &v->cq[qid];

        if (cq->exists && cq->ien && cq->iv == vector && cq->irqfd) {
            vn_cq_irqfd_off(cq);
            /* Masked: the main loop sets the pending bit. */
            vn_cq_set_handler(cq, true);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Queues */

static void vn_queue_ioeventfd(VhostNvmeCtrl *v, VNQueue *q, bool cq, bool on)
{
    NvmeCtrl *n = NVME(v);
    hwaddr off = VN_DB_BASE + (2 * q->qid + cq) * 4;

    if (q->ioeventfd == on) {
        return;
    }
    if (on) {
        memory_region_add_eventfd(&n->iomem, off, 4, false, 0, &q->kick);
    } else {
        memory_region_del_eventfd(&n->iomem, off, 4, false, 0, &q->kick);
    }
    q->ioeventfd = on;
}

/*
 * MSI-X on: the CQ's interrupts through its vector (an irqfd where KVM
 * can) and its head doorbell an ioeventfd once shadow doorbells are on.
 * Off: the pin-based interrupt, and QEMU sees every head the guest writes.
 */
static void vn_cq_update_mode(VhostNvmeCtrl *v, VNQueue *cq)
{
    bool msix = msix_enabled(PCI_DEVICE(v));

    if (!cq->exists) {
        return;
    }
    if (cq->ien) {
        if (msix) {
            vn_cq_intx_update(v, cq);   /* no longer pending */
            vn_cq_irq_setup(v, cq);
        } else {
            vn_cq_irqfd_off(cq);
            vn_cq_set_handler(cq, true);
            trace_vhost_nvme_cq_irq_mainloop(cq->qid, cq->iv);
            vn_cq_intx_update(v, cq);
        }
    }
    vn_queue_ioeventfd(v, cq, true, v->shadow && (msix || !cq->ien));
}

static int vn_set_doorbells(VhostNvmeCtrl *v, bool shadow, uint64_t dbs,
                            uint64_t eis)
{
    struct vhost_nvme_doorbells d = { 0 };

    if (shadow) {
        d.mode = VHOST_NVME_DB_SHADOW;
        d.db_addr = dbs;
        d.ei_addr = eis;
    } else {
        d.mode = VHOST_NVME_DB_VMM;
        d.db_addr = (uintptr_t)v->vmm_db;
    }
    return vn_ioctl(v, VHOST_NVME_SET_DOORBELLS, &d);
}

/* The module stopped a queue: its ring cannot be accessed. */
static void vn_queue_error(VNQueue *q, const char *type)
{
    error_report("vhost-nvme: I/O %s %u (ring at 0x%" PRIx64 ") stopped: the "
                 "module cannot access it; controller fatal status set",
                 type, q->qid, q->addr);
    nvme_offload_fatal(NVME(q->v));
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

/*
 * The eventfds the module knows are in the cpr state, so that a live
 * update hands them to the next QEMU with the device: id 0 is the device,
 * then per queue its kick, error and (CQ) interrupt eventfds.
 */
enum { VN_CPR_KICK, VN_CPR_ERR, VN_CPR_IRQ };

static int vn_cpr_id(const VNQueue *q, bool cq, int kind)
{
    return 1 + q->qid * 8 + cq * 4 + kind;
}

/*
 * A new eventfd; on a live update's destination, while the migrated
 * queues are loaded, the one the last QEMU gave the module instead.
 */
static bool vn_notifier_init(VhostNvmeCtrl *v, EventNotifier *e, int id)
{
    int fd;

    if (v->cpr_incoming) {
        fd = cpr_find_fd(v->cpr_name, id);
        if (fd < 0) {
            error_report("vhost-nvme %s: the cpr state has no eventfd %d",
                         NVME(v)->params.serial, id);
            return false;
        }
        event_notifier_init_fd(e, fd);
        return true;
    }
    if (event_notifier_init(e, 0) < 0) {
        return false;
    }
    cpr_save_fd(v->cpr_name, id, event_notifier_get_fd(e));
    /* The next QEMU would not find it: no hand-over this time. */
    v->cpr_stale |= v->cpr_sent;
    return true;
}

static void vn_notifier_cleanup(VhostNvmeCtrl *v, EventNotifier *e, int id)
{
    cpr_delete_fd(v->cpr_name, id);
    event_notifier_cleanup(e);
}

/* The eventfds of a queue that vn_queue_init() set up. */
static void vn_queue_uninit(VNQueue *q, bool cq)
{
    VhostNvmeCtrl *v = q->v;

    if (cq) {
        vn_notifier_cleanup(v, &q->irq, vn_cpr_id(q, cq, VN_CPR_IRQ));
    }
    event_notifier_set_handler(&q->err, NULL);
    vn_notifier_cleanup(v, &q->err, vn_cpr_id(q, cq, VN_CPR_ERR));
    vn_notifier_cleanup(v, &q->kick, vn_cpr_id(q, cq, VN_CPR_KICK));
    q->exists = false;
}

/* A pending Delete I/O SQ is over or forgotten (a reset frees its request). */
static void vn_sq_drain_stop(VNQueue *sq)
{
    if (sq->draining) {
        event_notifier_set_handler(&sq->drain, NULL);
        event_notifier_cleanup(&sq->drain);
        sq->draining = false;
        sq->del_req = NULL;
    }
}

static void vn_queue_free(VhostNvmeCtrl *v, VNQueue *q, bool cq)
{
    vn_queue_ioeventfd(v, q, cq, false);
    if (cq) {
        /* With irqfds, KVM raised the others: this stays 0. */
        trace_vhost_nvme_cq_mainloop_irqs(q->qid, q->mainloop_irqs);
        vn_cq_irq_teardown(q);
        q->exists = false;
        vn_cq_intx_update(v, q);        /* its pin-based share goes */
    } else {
        vn_sq_drain_stop(q);
    }
    vn_queue_uninit(q, cq);
}

/* hw/nvme has checked the identifiers, sizes and addresses already. */
static uint16_t vn_errno_status(int err)
{
    switch (err) {
    case -EINVAL:
    case -EFAULT:
        return NVME_INVALID_FIELD | NVME_DNR;
    case -EEXIST:
        return NVME_INVALID_QID | NVME_DNR;
    case -ENOENT:
        return NVME_INVALID_CQID | NVME_DNR;
    case -EBUSY:
        return NVME_INVALID_QUEUE_DEL;
    default:
        return NVME_INTERNAL_DEV_ERROR;
    }
}

static bool vn_queue_init(VNQueue *q, VhostNvmeCtrl *v, uint16_t qid,
                          uint16_t size, uint64_t addr, bool cq)
{
    memset(q, 0, sizeof(*q));
    q->v = v;
    q->qid = qid;
    q->size = size;
    q->addr = addr;
    q->virq = -1;
    if (!vn_notifier_init(v, &q->kick, vn_cpr_id(q, cq, VN_CPR_KICK))) {
        return false;
    }
    if (!vn_notifier_init(v, &q->err, vn_cpr_id(q, cq, VN_CPR_ERR))) {
        goto fail_kick;
    }
    if (cq && !vn_notifier_init(v, &q->irq, vn_cpr_id(q, cq, VN_CPR_IRQ))) {
        goto fail_err;
    }
    return true;

fail_err:
    vn_notifier_cleanup(v, &q->err, vn_cpr_id(q, cq, VN_CPR_ERR));
fail_kick:
    vn_notifier_cleanup(v, &q->kick, vn_cpr_id(q, cq, VN_CPR_KICK));
    return false;
}

/* Queue pairs go round the workers, as the guest spreads them over vCPUs. */
static uint32_t vn_cq_worker(VhostNvmeCtrl *v, uint16_t cqid)
{
    return v->worker_ids[(cqid - 1) % v->workers];
}

/*
 * The module's coalescing of @cq: Interrupt Coalescing, unless its vector
 * has Coalescing Disable (Interrupt Vector Configuration).
 */
static int vn_cq_coalesce(VhostNvmeCtrl *v, VNQueue *cq)
{
    struct vhost_nvme_irq_coalescing arg = { .qid = cq->qid };

    if (!(v->features & VHOST_NVME_F_IRQ_COALESCING) || !cq->ien) {
        return 0;
    }
    if (!test_bit(cq->iv, v->no_coalescing)) {
        arg.threshold = (v->coalescing & 0xff) + 1;
        arg.time_us = ((v->coalescing >> 8) & 0xff) * 100;
    }
    trace_vhost_nvme_coalescing(cq->qid, cq->iv, arg.threshold, arg.time_us);
    return vn_ioctl(v, VHOST_NVME_SET_IRQ_COALESCING, &arg);
}

static uint16_t vn_coalesce_all(VhostNvmeCtrl *v)
{
    unsigned int qid;

    for (qid = 1; qid < v->nr_q; qid++) {
        if (v->cq[qid].exists && vn_cq_coalesce(v, &v->cq[qid])) {
            return NVME_INTERNAL_DEV_ERROR;
        }
    }
    return NVME_SUCCESS;
}

static uint16_t vn_create_cq(NvmeCtrl *n, uint16_t cqid, uint64_t addr,
                             uint16_t size, uint16_t vector, bool ien,
                             const NvmeMigQueue *st)
{
    VhostNvmeCtrl *v = vn_of(n);
    struct vhost_nvme_cq arg = { 0 };
    VNQueue *cq;
    int ret;

    if (cqid >= v->nr_q || v->cq[cqid].exists) {
        return NVME_INVALID_QID | NVME_DNR;
    }
    cq = &v->cq[cqid];
    if (!vn_queue_init(cq, v, cqid, size, addr, true)) {
        return NVME_INTERNAL_DEV_ERROR;
    }
    cq->ien = ien;
    cq->iv = vector;
    cq->db_head = st ? st->head : 0;
    stl_le_p(&v->vmm_db[2 * cqid + 1], cq->db_head);
    arg.qid = cqid;
    arg.size = size;
    arg.flags = (ien ? VHOST_NVME_CQ_F_IRQ_ENABLED : 0) | VHOST_NVME_CQ_F_ERRFD;
    if (st) {
        /* Where the migration's source left it */
        arg.flags |= VHOST_NVME_CQ_F_STATE;
        arg.head = st->head;
        arg.tail = st->tail;
        arg.phase = st->phase;
    }
    arg.addr = addr;
    arg.irqfd = ien ? event_notifier_get_fd(&cq->irq) : -1;
    arg.kickfd = event_notifier_get_fd(&cq->kick);
    arg.errfd = event_notifier_get_fd(&cq->err);
    arg.worker = vn_cq_worker(v, cqid);
    /* A live update's destination: the module has the queue already. */
    ret = v->cpr_incoming ? 0 : vn_ioctl(v, VHOST_NVME_CREATE_CQ, &arg);
    if (ret) {
        vn_queue_uninit(cq, true);
        return vn_errno_status(ret);
    }
    cq->exists = true;
    event_notifier_set_handler(&cq->err, vn_cq_err_read);
    trace_vhost_nvme_create_cq(cqid, size, addr, vector, ien, arg.worker);
    /* A new CQ does not coalesce: tell the module only if it must. */
    if (!v->cpr_incoming && v->coalescing &&
        !test_bit(vector, v->no_coalescing) && vn_cq_coalesce(v, cq)) {
        error_report("vhost-nvme: CQ %u: VHOST_NVME_SET_IRQ_COALESCING failed",
                     cqid);
    }
    vn_cq_update_mode(v, cq);
    return NVME_SUCCESS;
}

static uint16_t vn_create_sq(NvmeCtrl *n, uint16_t sqid, uint16_t cqid,
                             uint64_t addr, uint16_t size,
                             const NvmeMigQueue *st)
{
    VhostNvmeCtrl *v = vn_of(n);
    struct vhost_nvme_sq arg = { 0 };
    VNQueue *sq;
    int ret;

    if (sqid >= v->nr_q || v->sq[sqid].exists) {
        return NVME_INVALID_QID | NVME_DNR;
    }
    sq = &v->sq[sqid];
    if (!vn_queue_init(sq, v, sqid, size, addr, false)) {
        return NVME_INTERNAL_DEV_ERROR;
    }
    sq->cqid = cqid;
    stl_le_p(&v->vmm_db[2 * sqid], st ? st->tail : 0);
    arg.qid = sqid;
    arg.size = size;
    arg.cqid = cqid;
    arg.flags = VHOST_NVME_SQ_F_ERRFD;
    if (st) {
        arg.flags |= VHOST_NVME_SQ_F_STATE;
        arg.head = st->head;
        arg.tail = st->tail;
    }
    arg.kickfd = event_notifier_get_fd(&sq->kick);
    arg.addr = addr;
    arg.errfd = event_notifier_get_fd(&sq->err);
    ret = v->cpr_incoming ? 0 : vn_ioctl(v, VHOST_NVME_CREATE_SQ, &arg);
    if (ret) {
        vn_queue_uninit(sq, false);
        return vn_errno_status(ret);
    }
    sq->exists = true;
    event_notifier_set_handler(&sq->err, vn_sq_err_read);
    trace_vhost_nvme_create_sq(sqid, size, addr, cqid);
    if (v->shadow) {
        vn_queue_ioeventfd(v, sq, false, true);
    }
    return NVME_SUCCESS;
}

/*
 * Without VHOST_NVME_DELETE_F_DISCARD the entries the module had not
 * fetched complete with Command Aborted due to SQ Deletion.  With
 * VHOST_NVME_DRAIN_F_ASYNC, -EINPROGRESS while commands are in flight:
 * the SQ's drain notifier fires when they are done.  0: the SQ is gone.
 */
static int vn_delete_sq_q(VhostNvmeCtrl *v, VNQueue *sq, uint16_t flags)
{
    struct vhost_nvme_qid arg = { .qid = sq->qid, .flags = flags };
    struct vhost_nvme_queue_state st = {
        .qid = sq->qid, .type = VHOST_NVME_QTYPE_SQ,
    };
    int ret;

    if (flags & VHOST_NVME_DRAIN_F_ASYNC) {
        arg.eventfd = event_notifier_get_fd(&sq->drain);
    }
    if (!sq->counted &&
        trace_event_get_state_backends(TRACE_VHOST_NVME_SQ_COMMANDS) &&
        !vn_ioctl(v, VHOST_NVME_GET_QUEUE_STATE, &st)) {
        sq->counted = true;
        trace_vhost_nvme_sq_commands(sq->qid, sq->cqid,
                                     vn_cq_worker(v, sq->cqid), st.commands);
    }
    ret = vn_ioctl(v, VHOST_NVME_DELETE_SQ, &arg);

    if (ret && ret != -ENOENT) {
        return ret;
    }
    vn_queue_free(v, sq, false);
    return 0;
}

static int vn_delete_cq_q(VhostNvmeCtrl *v, VNQueue *cq)
{
    struct vhost_nvme_qid arg = { .qid = cq->qid };
    int ret = vn_ioctl(v, VHOST_NVME_DELETE_CQ, &arg);

    if (ret && ret != -ENOENT) {
        return ret;
    }
    vn_queue_free(v, cq, true);
    return 0;
}

static void vn_sq_drain_read(EventNotifier *e)
{
    VNQueue *sq = container_of(e, VNQueue, drain);
    VhostNvmeCtrl *v = sq->v;
    NvmeRequest *req = sq->del_req;
    uint16_t sqid = sq->qid;
    int ret;

    if (!event_notifier_test_and_clear(e)) {
        return;
    }
    ret = vn_delete_sq_q(v, sq, VHOST_NVME_DRAIN_F_ASYNC);
    if (ret == -EINPROGRESS) {
        return;
    }
    if (ret) {
        vn_sq_drain_stop(sq);
    }
    trace_vhost_nvme_delete_sq_done(sqid, ret);
    nvme_offload_del_sq_done(NVME(v), req,
                             ret ? vn_errno_status(ret) : NVME_SUCCESS);
}

/*
 * Delete I/O SQ: the module stops fetching, aborts what it had not
 * fetched, and the command completes once the commands in flight have,
 * from the main loop: neither the admin queue's bottom half nor a vCPU
 * waits for a slow backend.
 */
static uint16_t vn_delete_sq(NvmeCtrl *n, uint16_t sqid, NvmeRequest *req)
{
    VhostNvmeCtrl *v = vn_of(n);
    VNQueue *sq;
    int ret;

    if (sqid >= v->nr_q || !v->sq[sqid].exists) {
        return NVME_SUCCESS;
    }
    sq = &v->sq[sqid];
    if (sq->draining) {
        return NVME_INVALID_QID | NVME_DNR;     /* being deleted */
    }
    if (event_notifier_init(&sq->drain, 0) < 0) {
        return NVME_INTERNAL_DEV_ERROR;
    }
    sq->draining = true;
    sq->del_req = req;
    ret = vn_delete_sq_q(v, sq, VHOST_NVME_DRAIN_F_ASYNC);
    if (ret == -EINPROGRESS) {
        trace_vhost_nvme_delete_sq_async(sqid);
        event_notifier_set_handler(&sq->drain, vn_sq_drain_read);
        return NVME_NO_COMPLETE;
    }
    if (ret) {
        vn_sq_drain_stop(sq);
    }
    return ret ? vn_errno_status(ret) : NVME_SUCCESS;
}

static uint16_t vn_delete_cq(NvmeCtrl *n, uint16_t cqid)
{
    VhostNvmeCtrl *v = vn_of(n);
    int ret;

    if (cqid >= v->nr_q || !v->cq[cqid].exists) {
        return NVME_SUCCESS;
    }
    ret = vn_delete_cq_q(v, &v->cq[cqid]);
    return ret ? vn_errno_status(ret) : NVME_SUCCESS;
}

static uint16_t vn_dbbuf_config(NvmeCtrl *n, uint64_t dbs, uint64_t eis)
{
    VhostNvmeCtrl *v = vn_of(n);
    unsigned int qid;

    if (!dbs || !eis ||
        (!v->cpr_incoming && vn_set_doorbells(v, true, dbs, eis))) {
        return NVME_INVALID_FIELD | NVME_DNR;
    }
    v->shadow = true;
    trace_vhost_nvme_dbbuf_config(dbs, eis);
    for (qid = 1; qid < v->nr_q; qid++) {
        if (v->sq[qid].exists) {
            vn_queue_ioeventfd(v, &v->sq[qid], false, true);
        }
        vn_cq_update_mode(v, &v->cq[qid]);
    }
    return NVME_SUCCESS;
}

static void vn_doorbell(NvmeCtrl *n, uint16_t qid, bool cq, uint16_t val)
{
    VhostNvmeCtrl *v = vn_of(n);
    VNQueue *q;

    if (qid >= v->nr_q) {
        return;
    }
    q = cq ? &v->cq[qid] : &v->sq[qid];
    if (!q->exists) {
        return;
    }
    /* The module reads the VMM page (VHOST_NVME_DB_VMM): store, then kick. */
    qatomic_set(&v->vmm_db[2 * qid + cq], cpu_to_le32(val));
    /* The value before the kick: pairs with the worker's read after it. */
    smp_wmb();
    event_notifier_set(&q->kick);
    if (cq) {
        q->db_head = val;
        if (q->ien && !msix_enabled(PCI_DEVICE(v))) {
            if (v->shadow) {
                /* EventIdx at the head: the next update writes again. */
                stl_le_pci_dma(PCI_DEVICE(v),
                               n->dbbuf_eis + (2 * qid + 1) * 4, val,
                               MEMTXATTRS_UNSPECIFIED);
            }
            vn_cq_intx_update(v, q);
        }
    }
}

/* The guest turned MSI-X on or off (hw/msix.c calls no vector notifier). */
/* QUIESCE, waiting for what the module fetched (killably); or RESUME */
static int vn_quiesce_sync(VhostNvmeCtrl *v, bool resume)
{
    struct vhost_nvme_quiesce q = { 0 };
    int ret;

    ret = vn_ioctl(v, resume ? VHOST_NVME_RESUME : VHOST_NVME_QUIESCE, &q);
    if (ret) {
        error_report("vhost-nvme: VHOST_NVME_%s: %s",
                     resume ? "RESUME" : "QUIESCE", strerror(-ret));
    }
    return ret;
}

/*
 * The VM stopped, or the guest cleared Bus Master Enable: the module stops
 * fetching and this returns once what it fetched is posted (as vm_stop()
 * drains the block layer's requests), so that nothing writes to guest
 * memory until vn_unpause().  A controller already quiesced (disabled, or
 * its drain under way) stays as it is.
 */
static void vn_pause(VhostNvmeCtrl *v, unsigned int why)
{
    v->paused |= why;
    trace_vhost_nvme_pause(v->paused, v->quiesced);
    /* A device another QEMU owns, or released, is quiesced. */
    if (v->quiesced || v->vfd < 0 || (v->owner && vn_quiesce_sync(v, false))) {
        return;
    }
    v->quiesced = v->pause_quiesced = true;
}

static void vn_unpause(VhostNvmeCtrl *v, unsigned int why)
{
    v->paused &= ~why;
    trace_vhost_nvme_unpause(v->paused, v->pause_quiesced);
    if (v->paused || !v->pause_quiesced) {
        return;
    }
    if (vn_quiesce_sync(v, true)) {
        nvme_offload_fatal(NVME(v));
        return;
    }
    v->quiesced = v->pause_quiesced = false;
}

static int vn_take(VhostNvmeCtrl *v);

static void vn_vm_state_change(void *opaque, bool running, RunState state)
{
    VhostNvmeCtrl *v = opaque;
    unsigned int qid;

    if (running) {
        /* A live update that failed: the device comes back. */
        if (!v->owner && v->cookie && vn_take(v)) {
            nvme_offload_fatal(NVME(v));
            return;
        }
        vn_unpause(v, VN_PAUSE_VM);
        if (!v->incoming) {
            return;
        }
        /*
         * A migration's destination: a vector the source signalled after
         * the vCPUs' interrupt state was saved fires again (a spurious one
         * costs the guest a look at its CQ).
         */
        v->incoming = false;
        for (qid = 1; qid < v->nr_q; qid++) {
            if (v->cq[qid].exists && v->cq[qid].ien &&
                msix_enabled(PCI_DEVICE(v))) {
                event_notifier_set(&v->cq[qid].irq);
            }
        }
    } else {
        vn_pause(v, VN_PAUSE_VM);
    }
}

static bool vn_drain_start(VhostNvmeCtrl *v);

/* Does this configuration write set Initiate Function Level Reset? */
static bool vn_flr_written(PCIDevice *pdev, uint32_t addr, uint32_t val,
                           int len)
{
    uint32_t byte = pdev->exp.exp_cap + PCI_EXP_DEVCTL + 1;

    if (!pdev->exp.exp_cap || byte < addr || byte >= addr + len) {
        return false;
    }
    return (val >> ((byte - addr) * 8)) & (PCI_EXP_DEVCTL_BCR_FLR >> 8);
}

/*
 * The guest wrote Initiate Function Level Reset with commands in flight
 * (Linux's reset file disables the controller first; a guest need not).
 * The reset frees the queues, so their commands must be over first; rather
 * than wait for them under the BQL, the function is not ready until the
 * module's drain is over (PCIe lets a function be after an FLR: its
 * configuration reads are all ones, writes are dropped, its registers are
 * gone from the BAR), and vn_quiesce_done_read() resets it then, as
 * pcie_cap_flr_write_config() would have at once.  true: deferred.
 */
static bool vn_flr_defer(VhostNvmeCtrl *v)
{
    if (v->vfd < 0 || !v->owner) {
        return false;
    }
    /* A disable's drain under way serves the FLR too. */
    if (!v->disabling && (v->quiesced || !vn_drain_start(v))) {
        return false;
    }
    v->flr_pending = true;
    memory_region_set_enabled(&NVME(v)->iomem, false);
    trace_vhost_nvme_flr_async();
    return true;
}

static void vn_config_write(PCIDevice *pdev, uint32_t addr, uint32_t val,
                            int len)
{
    VhostNvmeCtrl *v = VHOST_NVME(pdev);
    VhostNvmeClass *vc = VHOST_NVME_GET_CLASS(pdev);
    bool msix = msix_enabled(pdev);
    bool bme = pci_get_word(pdev->config + PCI_COMMAND) & PCI_COMMAND_MASTER;
    bool bme_now;
    unsigned int qid;

    if (v->flr_pending ||
        (vn_flr_written(pdev, addr, val, len) && vn_flr_defer(v))) {
        return;
    }
    vc->parent_config_write(pdev, addr, val, len);
    bme_now = pci_get_word(pdev->config + PCI_COMMAND) & PCI_COMMAND_MASTER;
    if (bme != bme_now && v->vfd >= 0) {
        if (bme_now) {
            vn_unpause(v, VN_PAUSE_BME);
        } else {
            vn_pause(v, VN_PAUSE_BME);
        }
    }
    if (msix_enabled(pdev) == msix || v->vfd < 0) {
        return;
    }
    trace_vhost_nvme_msix(msix_enabled(pdev));
    for (qid = 1; qid < v->nr_q; qid++) {
        vn_cq_update_mode(v, &v->cq[qid]);
    }
}

static uint32_t vn_config_read(PCIDevice *pdev, uint32_t addr, int len)
{
    VhostNvmeCtrl *v = VHOST_NVME(pdev);
    VhostNvmeClass *vc = VHOST_NVME_GET_CLASS(pdev);

    if (v->flr_pending) {
        return MAKE_64BIT_MASK(0, len * 8);     /* not ready after an FLR */
    }
    return vc->parent_config_read(pdev, addr, len);
}

/* ------------------------------------------------------------------------ */
/* Controller state */

static int vn_start(NvmeCtrl *n)
{
    VhostNvmeCtrl *v = vn_of(n);

    if (v->disabling) {
        /* CC.EN set again before CSTS.RDY cleared. */
        return -1;
    }
    if (v->quiesced && v->paused) {
        v->pause_quiesced = true;       /* vn_unpause() resumes */
    } else if (v->quiesced) {
        if (vn_quiesce_sync(v, true)) {
            return -1;
        }
        v->quiesced = false;
    }
    return 0;
}

/* QUIESCE without waiting: -EINPROGRESS until @quiesce_done fires. */
static int vn_quiesce_async(VhostNvmeCtrl *v)
{
    struct vhost_nvme_quiesce q = {
        .flags = VHOST_NVME_DRAIN_F_ASYNC,
        .eventfd = event_notifier_get_fd(&v->quiesce_done),
    };

    return vn_ioctl(v, VHOST_NVME_QUIESCE, &q);
}

static void vn_disable_stop(VhostNvmeCtrl *v)
{
    if (v->disabling) {
        event_notifier_set_handler(&v->quiesce_done, NULL);
        event_notifier_cleanup(&v->quiesce_done);
        v->disabling = false;
    }
}

static void vn_quiesce_done_read(EventNotifier *e)
{
    VhostNvmeCtrl *v = container_of(e, VhostNvmeCtrl, quiesce_done);
    int ret;

    if (!event_notifier_test_and_clear(e)) {
        return;
    }
    ret = vn_quiesce_async(v);
    if (ret == -EINPROGRESS) {
        return;
    }
    if (ret) {
        error_report("vhost-nvme: VHOST_NVME_QUIESCE: %s", strerror(-ret));
    }
    vn_disable_stop(v);
    if (v->flr_pending) {
        trace_vhost_nvme_flr_done(ret);
        /* vn_reset(): queues deleted, the function ready again */
        pci_device_reset(PCI_DEVICE(v));
        return;
    }
    trace_vhost_nvme_disable_done(ret);
    nvme_offload_reset_done(NVME(v));   /* vn_reset(): queues deleted */
}

/*
 * The module stops fetching, without waiting for the commands in flight:
 * true if some are (@quiesce_done fires once they have completed), false
 * if none are or QUIESCE failed (vn_reset() then quiesces, waiting).
 */
static bool vn_drain_start(VhostNvmeCtrl *v)
{
    int ret;

    if (event_notifier_init(&v->quiesce_done, 0) < 0) {
        return false;
    }
    v->disabling = true;
    ret = vn_quiesce_async(v);
    if (ret == -EINPROGRESS) {
        v->quiesced = true;
        event_notifier_set_handler(&v->quiesce_done, vn_quiesce_done_read);
        return true;
    }
    vn_disable_stop(v);
    if (ret) {
        error_report("vhost-nvme: VHOST_NVME_QUIESCE: %s", strerror(-ret));
        return false;
    }
    v->quiesced = true;
    return false;
}

/*
 * CC.EN 1 to 0: the module stops fetching; CSTS.RDY clears once the
 * commands in flight have completed, from the main loop, not in the vCPU
 * that wrote CC.
 */
static bool vn_disable_async(NvmeCtrl *n)
{
    VhostNvmeCtrl *v = vn_of(n);

    if (v->vfd < 0 || v->quiesced || !vn_drain_start(v)) {
        return false;
    }
    trace_vhost_nvme_disable_async();
    return true;
}

/* Every reset: the module's queues go, the doorbells return to QEMU. */
static void vn_reset(NvmeCtrl *n, NvmeResetType rst)
{
    VhostNvmeCtrl *v = vn_of(n);
    unsigned int qid;
    int ret;

    if (v->flr_pending) {
        /* The FLR's drain is over, or a reset overtook it. */
        v->flr_pending = false;
        memory_region_set_enabled(&n->iomem, true);
    }
    if (v->vfd < 0) {
        return;
    }
    trace_vhost_nvme_reset();
    if (!v->owner) {
        /* Handed over (a live update): only this QEMU's side goes. */
        for (qid = 1; qid < v->nr_q; qid++) {
            if (v->sq[qid].exists) {
                vn_queue_free(v, &v->sq[qid], false);
            }
            if (v->cq[qid].exists) {
                vn_queue_free(v, &v->cq[qid], true);
            }
        }
        return;
    }
    vn_disable_stop(v);         /* a pending disable is forgotten */
    v->pause_quiesced = false;  /* quiesced until the next CC.EN 0 to 1 */
    /* Features return to their defaults */
    v->coalescing = 0;
    bitmap_zero(v->no_coalescing, n->params.msix_qsize);
    if (!v->quiesced) {
        vn_quiesce_sync(v, false);
        v->quiesced = true;
    }
    /* A controller being reset gets no completions for what is dropped. */
    for (qid = 1; qid < v->nr_q; qid++) {
        if (v->sq[qid].exists) {
            ret = vn_delete_sq_q(v, &v->sq[qid], VHOST_NVME_DELETE_F_DISCARD);
            if (ret) {
                error_report("vhost-nvme: VHOST_NVME_DELETE_SQ %u: %s", qid,
                             strerror(-ret));
                /* hw/nvme frees its queue anyway: so do we. */
                vn_queue_free(v, &v->sq[qid], false);
            }
        }
    }
    for (qid = 1; qid < v->nr_q; qid++) {
        if (v->cq[qid].exists) {
            ret = vn_delete_cq_q(v, &v->cq[qid]);
            if (ret) {
                error_report("vhost-nvme: VHOST_NVME_DELETE_CQ %u: %s", qid,
                             strerror(-ret));
                vn_queue_free(v, &v->cq[qid], true);
            }
        }
    }
    if (v->shadow) {
        ret = vn_set_doorbells(v, false, 0, 0);
        if (ret) {
            error_report("vhost-nvme: VHOST_NVME_SET_DOORBELLS: %s",
                         strerror(-ret));
        }
        v->shadow = false;
    }
    memset(v->vmm_db, 0, VN_PAGE);
}

/*
 * Interrupt Coalescing (08h) and Interrupt Vector Configuration (09h),
 * which hw/nvme reports as not changeable, reach the module's coalescing
 * when it has it.  The admin queue's vector never coalesces.
 */
static bool vn_get_feature(NvmeCtrl *n, uint8_t fid, NvmeGetFeatureSelect sel,
                           uint32_t dw11, uint32_t *result, uint16_t *status)
{
    VhostNvmeCtrl *v = vn_of(n);
    bool current = sel == NVME_GETFEAT_SELECT_CURRENT ||
                   sel == NVME_GETFEAT_SELECT_SAVED;
    uint16_t iv = dw11 & 0xffff;

    if (!(v->features & VHOST_NVME_F_IRQ_COALESCING) ||
        (fid != NVME_INTERRUPT_COALESCING &&
         fid != NVME_INTERRUPT_VECTOR_CONF)) {
        return false;
    }
    *status = NVME_SUCCESS;
    if (sel == NVME_GETFEAT_SELECT_CAP) {
        *result = NVME_FEAT_CAP_CHANGE;
    } else if (fid == NVME_INTERRUPT_COALESCING) {
        *result = current ? v->coalescing : 0;
    } else if (iv >= n->conf_msix_qsize) {
        *status = NVME_INVALID_FIELD | NVME_DNR;
    } else {
        *result = iv;
        if (!iv || (current && test_bit(iv, v->no_coalescing))) {
            *result |= NVME_INTVC_NOCOALESCING;
        }
    }
    return true;
}

static bool vn_set_feature(NvmeCtrl *n, uint8_t fid, uint32_t dw11,
                           uint16_t *status)
{
    VhostNvmeCtrl *v = vn_of(n);
    uint16_t iv = dw11 & 0xffff;

    if (fid == NVME_VOLATILE_WRITE_CACHE) {
        /* The module's write-through flag is fixed at ATTACH_NS. */
        *status = NVME_FEAT_NOT_CHANGEABLE | NVME_DNR;
        return true;
    }
    if (!(v->features & VHOST_NVME_F_IRQ_COALESCING)) {
        return false;
    }
    if (fid == NVME_INTERRUPT_COALESCING) {
        v->coalescing = dw11 & 0xffff;
    } else if (fid == NVME_INTERRUPT_VECTOR_CONF) {
        if (iv >= n->conf_msix_qsize) {
            *status = NVME_INVALID_FIELD | NVME_DNR;
            return true;
        }
        if (iv && (dw11 & NVME_INTVC_NOCOALESCING)) {
            set_bit(iv, v->no_coalescing);
        } else {
            clear_bit(iv, v->no_coalescing);
        }
    } else {
        return false;
    }
    *status = vn_coalesce_all(v);
    return true;
}

/* The backend of one of this controller's namespaces */
static VNBackend *vn_ns_backend(VhostNvmeCtrl *v, NvmeNamespace *ns)
{
    VhostNvmeNs *vns;

    if (ns == &NVME(v)->namespace) {
        return &v->b;
    }
    vns = (VhostNvmeNs *)object_dynamic_cast(OBJECT(ns), TYPE_VHOST_NVME_NS);
    return vns ? &vns->b : NULL;
}

static int vn_attach(VhostNvmeCtrl *v, NvmeNamespace *ns, Error **errp)
{
    struct vhost_nvme_limits l = { .size = sizeof(l) };
    struct vhost_nvme_ns arg = { 0 };
    VNBackend *b = vn_ns_backend(v, ns);
    NvmeCtrl *n = NVME(v);
    int ret;

    arg.nsid = ns->params.nsid;
    if (!b || b->fd < 0) {
        error_setg(errp, "namespace %u is not a vhost-nvme-ns", arg.nsid);
        return -EINVAL;
    }
    if (v->cpr_incoming) {
        /* A live update: the module has the namespace already. */
        set_bit(arg.nsid, v->attached);
        trace_vhost_nvme_ns_attach(arg.nsid, b->path);
        return 0;
    }
    arg.fd = b->fd;
    arg.lba_shift = ns->lbaf.ds;
    /* write-cache=off: no volatile write cache, every write durable. */
    if (ns->blkconf.wce == ON_OFF_AUTO_OFF) {
        arg.flags |= VHOST_NVME_NS_F_WRITE_THROUGH;
    }
    ret = vn_ioctl(v, VHOST_NVME_ATTACH_NS, &arg);
    if (ret) {
        error_setg_errno(errp, -ret, "VHOST_NVME_ATTACH_NS %s, %u-byte blocks",
                         b->path, 1u << ns->lbaf.ds);
        return ret;
    }
    set_bit(arg.nsid, v->attached);
    trace_vhost_nvme_ns_attach(arg.nsid, b->path);
    if (arg.nsze != le64_to_cpu(ns->id_ns.nsze)) {
        error_setg(errp, "backend %s: the module sees %" PRIu64 " blocks, "
                   "QEMU %" PRIu64, b->path, (uint64_t)arg.nsze,
                   le64_to_cpu(ns->id_ns.nsze));
        return -EINVAL;
    }
    /* The limits of Identify Controller, I/O Command Set specific (CSI 0). */
    l.dmrl = NVME_ID_CTRL_NVM_DMRL_MAX;
    l.dmrsl = MIN_NON_ZERO(n->dmrsl, BDRV_REQUEST_MAX_BYTES >> ns->lbaf.ds);
    ret = vn_ioctl(v, VHOST_NVME_SET_LIMITS, &l);
    if (ret) {
        error_setg_errno(errp, -ret, "VHOST_NVME_SET_LIMITS");
    }
    return ret;
}

static uint16_t vn_ns_attach(NvmeCtrl *n, NvmeNamespace *ns)
{
    VhostNvmeCtrl *v = vn_of(n);
    Error *err = NULL;

    if (test_bit(ns->params.nsid, v->attached)) {
        return NVME_SUCCESS;
    }
    if (vn_attach(v, ns, &err)) {
        error_report_err(err);
        return NVME_INTERNAL_DEV_ERROR;
    }
    return NVME_SUCCESS;
}

/* What the module counted for namespace @nsid since it was attached */
static bool vn_ns_counters(VhostNvmeCtrl *v, uint32_t nsid,
                           struct vhost_nvme_ns_stats *st)
{
    *st = (struct vhost_nvme_ns_stats) { .nsid = nsid };
    return test_bit(nsid, v->attached) &&
           !vn_ioctl(v, VHOST_NVME_GET_NS_STATS, st);
}

/*
 * The SMART log's counters: what the module counts for an attached
 * namespace, and what it counted before each detach (hw/nvme's own count
 * from the BlockBackend's creation on).
 */
static void vn_ns_stats(NvmeCtrl *n, NvmeNamespace *ns, uint64_t *units_read,
                        uint64_t *units_written, uint64_t *read_commands,
                        uint64_t *write_commands)
{
    VhostNvmeCtrl *v = vn_of(n);
    uint32_t nsid = ns->params.nsid;
    struct vhost_nvme_ns_stats st, *gone = &v->stats_gone[nsid];

    if (!vn_ns_counters(v, nsid, &st)) {
        st = (struct vhost_nvme_ns_stats) { 0 };
    }
    *units_read += gone->bytes_read + st.bytes_read;
    *units_written += gone->bytes_written + st.bytes_written;
    *read_commands += gone->reads + st.reads;
    *write_commands += gone->writes + st.writes;
}

static void vn_ns_detach(NvmeCtrl *n, NvmeNamespace *ns)
{
    VhostNvmeCtrl *v = vn_of(n);
    /*
     * The namespace is gone for the guest when this returns; the commands
     * the module has in flight on it complete as usual, and it does not
     * wait for them under the BQL (a slow backend takes seconds).
     */
    struct vhost_nvme_nsid arg = {
        .nsid = ns->params.nsid,
        .flags = VHOST_NVME_DETACH_F_NOWAIT,
    };
    struct vhost_nvme_ns_stats st, *gone = &v->stats_gone[arg.nsid];
    int ret;

    if (!test_bit(arg.nsid, v->attached)) {
        return;
    }
    if (vn_ns_counters(v, arg.nsid, &st)) {
        gone->bytes_read += st.bytes_read;
        gone->bytes_written += st.bytes_written;
        gone->reads += st.reads;
        gone->writes += st.writes;
    }
    ret = vn_ioctl(v, VHOST_NVME_DETACH_NS, &arg);
    if (ret && ret != -ENOENT) {
        error_report("vhost-nvme: VHOST_NVME_DETACH_NS %u: %s", arg.nsid,
                     strerror(-ret));
    }
    clear_bit(arg.nsid, v->attached);
    trace_vhost_nvme_ns_detach(arg.nsid);
}

/* ------------------------------------------------------------------------ */
/* Migration */

/*
 * hw/nvme saves the controller and its queues; the module's queues are
 * quiesced (the VM is stopped: vn_pause()) and report where they stand.
 * What the VM state cannot carry refuses: pin-based interrupts (their
 * level is this device's, not hw/nvme's), a Delete I/O SQ, a disable or a
 * Bus Master Enable pause under way.
 */
static int vn_pre_save(NvmeCtrl *n)
{
    VhostNvmeCtrl *v = vn_of(n);
    const char *why = NULL;
    unsigned int qid;

    if (v->flr_pending) {
        why = "a function level reset is under way";
    } else if (v->disabling) {
        why = "the controller is being disabled";
    } else if (v->paused & VN_PAUSE_BME) {
        why = "Bus Master Enable is 0";
    }
    for (qid = 1; qid < v->nr_q && !why; qid++) {
        if (v->sq[qid].draining) {
            why = "a Delete I/O Submission Queue is under way";
        } else if (v->cq[qid].exists && v->cq[qid].ien &&
                   !msix_enabled(PCI_DEVICE(v))) {
            why = "the guest uses pin-based interrupts";
        }
    }
    if (why) {
        error_report("vhost-nvme %s: cannot migrate now: %s", n->params.serial,
                     why);
        return -EBUSY;
    }
    return 0;
}

static int vn_queue_state(NvmeCtrl *n, NvmeMigQueue *st)
{
    VhostNvmeCtrl *v = vn_of(n);
    struct vhost_nvme_queue_state qs = {
        .qid = st->qid,
        .type = st->cq ? VHOST_NVME_QTYPE_CQ : VHOST_NVME_QTYPE_SQ,
    };
    int ret;

    ret = vn_ioctl(v, VHOST_NVME_GET_QUEUE_STATE, &qs);
    if (ret || qs.inflight) {
        error_report("vhost-nvme: %s %u: VHOST_NVME_GET_QUEUE_STATE: %s",
                     st->cq ? "CQ" : "SQ", st->qid,
                     ret ? strerror(-ret) : "commands in flight");
        return ret ? ret : -EBUSY;
    }
    st->head = qs.head;
    st->tail = qs.tail;
    st->phase = qs.phase;
    trace_vhost_nvme_queue_state(st->cq, st->qid, qs.head, qs.tail, qs.phase);
    return 0;
}

/* The dirty log: bit n of the little-endian words is the page at n * 4 KiB */
static uint64_t vn_log_bytes(VhostNvmeCtrl *v)
{
    const struct vhost_memory_region *r;
    uint64_t pages;

    if (!v->mem || !v->mem->nregions) {
        return 8;
    }
    r = &v->mem->regions[v->mem->nregions - 1];
    pages = (r->guest_phys_addr + r->memory_size) / VN_PAGE;
    return DIV_ROUND_UP(pages, 64) * 8;
}

static int vn_set_log(VhostNvmeCtrl *v, uint64_t *log, uint64_t size)
{
    struct vhost_nvme_log l = { .addr = (uintptr_t)log, .size = size };

    return vn_ioctl(v, VHOST_NVME_SET_LOG, &l);
}

static int vn_set_logging(VhostNvmeCtrl *v, bool on)
{
    uint64_t f = on ? v->features | VHOST_NVME_F_LOG_ALL : v->features;
    int ret;

    ret = vn_ioctl(v, VHOST_SET_FEATURES, &f);
    if (!ret) {
        v->logging = on;
    }
    return ret;
}

/* Move what the module logged in [@gpa, @gpa + @size) to @mr's bitmap. */
static void vn_log_sync_range(VhostNvmeCtrl *v, MemoryRegion *mr,
                              hwaddr mr_off, uint64_t gpa, uint64_t size)
{
    uint64_t first = gpa / VN_PAGE, last = (gpa + size - 1) / VN_PAGE;
    uint64_t words = v->log_size / 8, w;

    for (w = first / 64; w <= last / 64 && w < words; w++) {
        uint64_t bits, keep = 0;

        if (!qatomic_read(&v->log[w])) {
            continue;
        }
        bits = le64_to_cpu(qatomic_xchg(&v->log[w], 0));
        while (bits) {
            uint64_t page = w * 64 + ctz64(bits);
            uint64_t bit = 1ull << (page % 64);

            bits &= ~bit;
            if (page < first || page > last) {
                keep |= bit;    /* another section's */
                continue;
            }
            memory_region_set_dirty(mr, mr_off + page * VN_PAGE - gpa,
                                    VN_PAGE);
        }
        if (keep) {
            qatomic_or(&v->log[w], cpu_to_le64(keep));
        }
    }
}

static void vn_log_sync(MemoryListener *l, MemoryRegionSection *s)
{
    VhostNvmeCtrl *v = container_of(l, VhostNvmeCtrl, listener);

    if (!v->log || !memory_region_is_ram(s->mr)) {
        return;
    }
    vn_log_sync_range(v, s->mr, s->offset_within_region,
                      s->offset_within_address_space, int128_get64(s->size));
}

static void vn_log_free(VhostNvmeCtrl *v)
{
    qemu_vfree(v->log);
    v->log = NULL;
    v->log_size = 0;
}

static bool vn_log_global_start(MemoryListener *l, Error **errp)
{
    VhostNvmeCtrl *v = container_of(l, VhostNvmeCtrl, listener);
    int ret;

    v->log_size = vn_log_bytes(v);
    v->log = qemu_memalign(VN_PAGE, v->log_size);
    memset(v->log, 0, v->log_size);
    ret = vn_set_log(v, v->log, v->log_size);
    if (!ret) {
        ret = vn_set_logging(v, true);
    }
    if (ret) {
        error_setg_errno(errp, -ret, "vhost-nvme: cannot start the dirty log");
        vn_set_log(v, NULL, 0);
        vn_log_free(v);
        return false;
    }
    trace_vhost_nvme_log(true, v->log_size);
    return true;
}

static void vn_log_global_stop(MemoryListener *l)
{
    VhostNvmeCtrl *v = container_of(l, VhostNvmeCtrl, listener);
    int ret;

    if (!v->log) {
        return;
    }
    ret = vn_set_logging(v, false);
    if (!ret) {
        ret = vn_set_log(v, NULL, 0);
    }
    if (ret) {
        /* The module may still write the log: keep it. */
        error_report("vhost-nvme: cannot stop the dirty log: %s",
                     strerror(-ret));
        return;
    }
    vn_log_free(v);
    trace_vhost_nvme_log(false, 0);
}

/* A table the log does not cover: a larger log first, the old one synced. */
static bool vn_log_grow(VhostNvmeCtrl *v, const struct vhost_memory *mem)
{
    const struct vhost_memory_region *r;
    uint64_t *log, size;

    if (!v->log || !mem->nregions) {
        return true;
    }
    r = &mem->regions[mem->nregions - 1];
    size = DIV_ROUND_UP((r->guest_phys_addr + r->memory_size) / VN_PAGE,
                        64) * 8;
    if (size <= v->log_size) {
        return true;
    }
    log = qemu_memalign(VN_PAGE, size);
    memset(log, 0, size);
    if (vn_set_log(v, log, size)) {
        qemu_vfree(log);
        return false;
    }
    /* The old log is no longer written: its bits move to the new one. */
    memcpy(log, v->log, v->log_size);
    qemu_vfree(v->log);
    v->log = log;
    v->log_size = size;
    return true;
}

static int vn_migration_notify(NotifierWithReturn *notifier,
                               MigrationEvent *e, Error **errp)
{
    VhostNvmeCtrl *v = container_of(notifier, VhostNvmeCtrl, mig_notifier);

    if (e->type == MIG_EVENT_PRECOPY_SETUP && migrate_postcopy_ram()) {
        /* The workers would fault on pages that are not there yet. */
        error_setg(errp, "vhost-nvme %s: postcopy is not supported",
                   NVME(v)->params.serial);
        return -1;
    }
    return 0;
}

/*
 * Live update (cpr-transfer): the device, released by the QEMU before (or
 * by this one, when the update failed), becomes this process's.  The
 * module gets this process's view: the memory table at its addresses, the
 * doorbell page and the polling; the queues' eventfds are served here.
 */
static int vn_take(VhostNvmeCtrl *v)
{
    struct vhost_nvme_handover h = { .cookie = v->cookie };
    struct vhost_nvme_poll poll = { .poll_us = v->poll_us };
    const char *what = NULL;
    unsigned int qid;
    int ret;

    ret = vn_ioctl(v, VHOST_NVME_TAKE_OWNER, &h);
    trace_vhost_nvme_handover_take(ret);
    if (ret) {
        error_report("vhost-nvme %s: VHOST_NVME_TAKE_OWNER: %s",
                     NVME(v)->params.serial, strerror(-ret));
        return ret;
    }
    v->owner = true;
    v->cookie = 0;
    if (v->mem) {
        ret = vn_ioctl(v, VHOST_SET_MEM_TABLE, v->mem);
        what = "VHOST_SET_MEM_TABLE";
    }
    if (!ret && !v->shadow) {
        ret = vn_set_doorbells(v, false, 0, 0);
        what = "VHOST_NVME_SET_DOORBELLS";
    }
    if (!ret && v->poll_us >= 0) {
        ret = vn_ioctl(v, VHOST_NVME_SET_POLL, &poll);
        what = "VHOST_NVME_SET_POLL";
    }
    if (ret) {
        error_report("vhost-nvme %s: the device taken over: %s: %s",
                     NVME(v)->params.serial, what, strerror(-ret));
        return ret;
    }
    for (qid = 1; qid < v->nr_q; qid++) {
        if (v->sq[qid].exists) {
            event_notifier_set_handler(&v->sq[qid].err, vn_sq_err_read);
            vn_queue_ioeventfd(v, &v->sq[qid], false, v->shadow);
        }
        if (v->cq[qid].exists) {
            event_notifier_set_handler(&v->cq[qid].err, vn_cq_err_read);
            vn_cq_update_mode(v, &v->cq[qid]);
        }
    }
    return 0;
}

/*
 * Live update, the source: the VM is stopped, the module quiesced and
 * hw/nvme's queues saved (vn_queue_state()).  The device goes to the next
 * QEMU, which takes it with the cookie.  This QEMU and its KVM VM let go
 * of the queues' eventfds: an irqfd of this VM reads the interrupt
 * eventfd's count as it injects into a VM that no longer runs, and the
 * next QEMU's main loop, while it raises a vector itself, would find
 * nothing to read.
 */
static int vn_release(VhostNvmeCtrl *v)
{
    struct vhost_nvme_handover h = { 0 };
    const char *serial = NVME(v)->params.serial;
    unsigned int qid;
    int ret;

    if (!v->can_handover) {
        error_report("vhost-nvme %s: the module cannot hand its device over "
                     "to another QEMU", serial);
        return -ENOTSUP;
    }
    if (v->cpr_stale) {
        error_report("vhost-nvme %s: a queue was created after the cpr state "
                     "was sent", serial);
        return -EBUSY;
    }
    /* cpr-transfer copies no RAM: the module need not log. */
    if (v->log) {
        ret = vn_set_logging(v, false);
        if (!ret) {
            ret = vn_set_log(v, NULL, 0);
        }
        if (ret) {
            error_report("vhost-nvme %s: cannot stop the dirty log: %s",
                         serial, strerror(-ret));
            return ret;
        }
        vn_log_free(v);
    }
    ret = vn_ioctl(v, VHOST_NVME_RELEASE_OWNER, &h);
    if (ret) {
        error_report("vhost-nvme %s: VHOST_NVME_RELEASE_OWNER: %s", serial,
                     strerror(-ret));
        return ret;
    }
    v->owner = false;
    v->cookie = h.cookie;
    v->cpr_features = v->features;
    for (qid = 1; qid < v->nr_q; qid++) {
        if (v->sq[qid].exists) {
            event_notifier_set_handler(&v->sq[qid].err, NULL);
            vn_queue_ioeventfd(v, &v->sq[qid], false, false);
        }
        if (v->cq[qid].exists) {
            event_notifier_set_handler(&v->cq[qid].err, NULL);
            vn_cq_irq_teardown(&v->cq[qid]);
            vn_queue_ioeventfd(v, &v->cq[qid], true, false);
        }
    }
    trace_vhost_nvme_handover_release();
    return 0;
}

/* cpr-transfer's migrations: which queue fds the next QEMU can find */
static int vn_cpr_notify(NotifierWithReturn *notifier, MigrationEvent *e,
                         Error **errp)
{
    VhostNvmeCtrl *v = container_of(notifier, VhostNvmeCtrl, cpr_notifier);

    /* At SETUP, cpr_state_save() has sent the fds saved until now. */
    v->cpr_sent = e->type == MIG_EVENT_PRECOPY_SETUP;
    v->cpr_stale = false;
    return 0;
}

static bool vn_handover_needed(void *opaque)
{
    return migrate_mode() == MIG_MODE_CPR_TRANSFER;
}

static int vn_handover_pre_save(void *opaque)
{
    return vn_release(opaque);
}

/* After the controller's section: its queues are saved before the release */
static const VMStateDescription vn_vmstate_handover = {
    .name = "vhost-nvme/handover",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = vn_handover_needed,
    .pre_save = vn_handover_pre_save,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT64(cookie, VhostNvmeCtrl),
        VMSTATE_UINT64(cpr_features, VhostNvmeCtrl),
        VMSTATE_VARRAY_UINT32(worker_ids, VhostNvmeCtrl, workers, 0,
                              vmstate_info_uint32, uint32_t),
        VMSTATE_END_OF_LIST()
    },
};

/* A live update's destination takes the device once its queues are set up. */
static int vn_post_load(void *opaque, int version_id)
{
    VhostNvmeCtrl *v = opaque;
    const char *serial = NVME(v)->params.serial;
    bool incoming = v->cpr_incoming;

    v->cpr_incoming = false;    /* queues created from now on are new */
    if (!incoming && !v->cookie) {
        return 0;
    }
    if (!incoming) {
        error_report("vhost-nvme %s: the source handed its device over, but "
                     "the cpr state did not bring it", serial);
        return -EINVAL;
    }
    if (!v->cookie) {
        error_report("vhost-nvme %s: the source did not hand its device over",
                     serial);
        return -EINVAL;
    }
    if (v->cpr_features != v->features) {
        error_report("vhost-nvme %s: the source negotiated features 0x%"
                     PRIx64 ", this QEMU 0x%" PRIx64, serial, v->cpr_features,
                     v->features);
        return -EINVAL;
    }
    return vn_take(v) ? -EIO : 0;
}

static const VMStateDescription vn_vmstate = {
    .name = "vhost-nvme",
    .version_id = 1,
    .minimum_version_id = 1,
    .post_load = vn_post_load,
    .fields = (const VMStateField[]) {
        /* Before the controller: its queues are created coalescing so. */
        VMSTATE_UINT32(coalescing, VhostNvmeCtrl),
        VMSTATE_BITMAP(no_coalescing, VhostNvmeCtrl, 1, nr_vectors),
        VMSTATE_STRUCT(parent_obj, VhostNvmeCtrl, 1, vmstate_nvme, NvmeCtrl),
        VMSTATE_END_OF_LIST()
    },
    .subsections = (const VMStateDescription * const []) {
        &vn_vmstate_handover,
        NULL
    },
};

static const NvmeOffloadOps vn_offload_ops = {
    .start = vn_start,
    .disable_async = vn_disable_async,
    .reset = vn_reset,
    .create_cq = vn_create_cq,
    .create_sq = vn_create_sq,
    .delete_sq = vn_delete_sq,
    .delete_cq = vn_delete_cq,
    .dbbuf_config = vn_dbbuf_config,
    .doorbell = vn_doorbell,
    .get_feature = vn_get_feature,
    .set_feature = vn_set_feature,
    .ns_attach = vn_ns_attach,
    .ns_detach = vn_ns_detach,
    .ns_stats = vn_ns_stats,
    .pre_save = vn_pre_save,
    .queue_state = vn_queue_state,
};

/* ------------------------------------------------------------------------ */
/* Realize */

static bool vn_open_module(VhostNvmeCtrl *v, Error **errp)
{
    int ret;

    /*
     * A live update's destination realizes on the device of the QEMU
     * before, which owns it until vn_post_load() takes it.
     */
    v->cpr_name = g_strdup_printf("vhost-nvme/%s", NVME(v)->params.serial);
    v->vfd = cpr_is_incoming() ? cpr_find_fd(v->cpr_name, 0) : -1;
    v->cpr_incoming = v->vfd >= 0;
    if (!v->cpr_incoming && v->vhostfd_str) {
        v->vfd = monitor_fd_param(monitor_cur(), v->vhostfd_str, errp);
        if (v->vfd < 0) {
            error_prepend(errp, "unable to parse vhostfd: ");
            return false;
        }
    } else if (!v->cpr_incoming) {
        v->vfd = qemu_open("/dev/vhost-nvme", O_RDWR, errp);
        if (v->vfd < 0) {
            if (errno == ENOENT || errno == ENODEV || errno == ENXIO) {
                error_append_hint(errp, "Is the vhost_nvme module loaded?\n");
            } else if (errno == EACCES || errno == EPERM) {
                error_append_hint(errp, "QEMU has no permission to open "
                                  "/dev/vhost-nvme.\n");
            }
            return false;
        }
    }
    if (!v->cpr_incoming) {
        cpr_save_fd(v->cpr_name, 0, v->vfd);
    }
    v->info.size = sizeof(v->info);
    ret = vn_ioctl(v, VHOST_NVME_GET_INFO, &v->info);
    if (ret) {
        error_setg_errno(errp, -ret, "VHOST_NVME_GET_INFO");
        return false;
    }
    if (v->info.abi_version != VHOST_NVME_ABI_VERSION) {
        error_setg(errp, "module ABI version %u, QEMU knows %u",
                   v->info.abi_version, VHOST_NVME_ABI_VERSION);
        return false;
    }
    if (v->cpr_incoming) {
        return true;
    }
    ret = vn_ioctl(v, VHOST_SET_OWNER, NULL);
    if (ret) {
        error_setg_errno(errp, -ret, "VHOST_SET_OWNER");
        return false;
    }
    v->owner = true;
    return true;
}

/* hw/nvme's parameters, from the module unless the user set them. */
static bool vn_params(VhostNvmeCtrl *v, Error **errp)
{
    NvmeParams *p = &NVME(v)->params;

    if (p->cmb_size_mb || p->legacy_cmb || NVME(v)->pmr.dev ||
        p->sriov_max_vfs || NVME(v)->subsys || p->ioeventfd ||
        p->atomic_awun || p->atomic_awupf || p->zasl ||
        PCI_DEVICE(v)->spdm_port || p->num_queues) {
        error_setg(errp, "CMB, PMR, SR-IOV, subsystems, SPDM, ioeventfd=on, "
                   "atomic writes, zoned namespaces and num_queues (use "
                   "max_ioqpairs) are not offloaded");
        return false;
    }
    if (!p->max_ioqpairs) {
        p->max_ioqpairs = MIN(64, v->info.max_qid);
    } else if (p->max_ioqpairs > v->info.max_qid) {
        error_setg(errp, "max_ioqpairs=%u, the module allows %u",
                   p->max_ioqpairs, v->info.max_qid);
        return false;
    } else if (2 * p->max_ioqpairs > VN_IOEVENTFD_BUDGET) {
        error_setg(errp, "max_ioqpairs=%u needs %u ioeventfds; KVM has 1000 "
                   "for all devices of a VM: at most %u", p->max_ioqpairs,
                   2 * p->max_ioqpairs, VN_IOEVENTFD_BUDGET / 2);
        return false;
    }
    if (!p->mqes) {
        p->mqes = v->info.max_qsize - 1;
    } else if (p->mqes + 1u > v->info.max_qsize) {
        error_setg(errp, "mqes=%u, the module allows 1..%u", p->mqes,
                   v->info.max_qsize - 1);
        return false;
    }
    if (!p->mdts) {
        p->mdts = v->info.mdts;
    } else if (p->mdts > v->info.mdts) {
        error_setg(errp, "mdts=%u, the module allows %u", p->mdts,
                   v->info.mdts);
        return false;
    }
    if (!p->msix_qsize) {
        p->msix_qsize = p->max_ioqpairs + 1;
    }
    return true;
}

/* workers=: checked against the module; 0 becomes one per vCPU. */
static bool vn_workers(VhostNvmeCtrl *v, uint64_t supported, Error **errp)
{
    uint32_t max = supported & VHOST_NVME_F_WORKERS ? v->info.max_workers : 1;

    max = MIN(max, NVME(v)->params.max_ioqpairs);
    if (!v->workers) {
        v->workers = MIN(MACHINE(qdev_get_machine())->smp.cpus, max);
    } else if (v->workers > max) {
        error_setg(errp, "workers=%u, the module allows 1..%u", v->workers,
                   max);
        return false;
    }
    return true;
}

/* The workers beyond the first, which VHOST_SET_OWNER started. */
static bool vn_start_workers(VhostNvmeCtrl *v, Error **errp)
{
    uint32_t i;
    int ret;

    v->worker_ids = g_new0(uint32_t, v->workers);
    /* A live update's destination: the source's, in the handover section */
    for (i = 1; i < v->workers && !v->cpr_incoming; i++) {
        struct vhost_nvme_worker w = { 0 };

        ret = vn_ioctl(v, VHOST_NVME_NEW_WORKER, &w);
        if (ret) {
            error_setg_errno(errp, -ret, "VHOST_NVME_NEW_WORKER");
            return false;
        }
        v->worker_ids[i] = w.id;
    }
    trace_vhost_nvme_workers(v->workers);
    return true;
}

static bool vn_negotiate(VhostNvmeCtrl *v, Error **errp)
{
    NvmeParams *p = &NVME(v)->params;
    uint64_t supported, want;
    int ret;

    ret = vn_ioctl(v, VHOST_GET_FEATURES, &supported);
    if (ret) {
        error_setg_errno(errp, -ret, "VHOST_GET_FEATURES");
        return false;
    }
    want = supported & (VHOST_NVME_F_SGL | VHOST_NVME_F_DSM |
                        VHOST_NVME_F_WRITE_ZEROES | VHOST_NVME_F_POLL |
                        VHOST_NVME_F_IRQ_COALESCING);
    if (!vn_workers(v, supported, errp)) {
        return false;
    }
    if (v->workers > 1) {
        want |= VHOST_NVME_F_WORKERS;
    }
    if (p->dbcs) {
        want |= supported & VHOST_NVME_F_SHADOW_DB;
    }
    p->dbcs = want & VHOST_NVME_F_SHADOW_DB;
    v->can_log = supported & VHOST_NVME_F_LOG_ALL;
    v->can_handover = supported & VHOST_NVME_F_OWNER_HANDOVER;
    /* A live update's destination: the source's, checked at load */
    ret = v->cpr_incoming ? 0 : vn_ioctl(v, VHOST_SET_FEATURES, &want);
    if (ret) {
        error_setg_errno(errp, -ret, "VHOST_SET_FEATURES");
        return false;
    }
    v->features = want;
    if (!vn_start_workers(v, errp)) {
        return false;
    }
    if (v->poll_us >= 0) {
        struct vhost_nvme_poll poll = { .poll_us = v->poll_us };

        if (!(want & VHOST_NVME_F_POLL) ||
            (uint32_t)v->poll_us > v->info.max_poll_us) {
            error_setg(errp, "poll-us=%d, the module allows 0..%u",
                       v->poll_us, want & VHOST_NVME_F_POLL ?
                       v->info.max_poll_us : 0);
            return false;
        }
        ret = v->cpr_incoming ? 0 : vn_ioctl(v, VHOST_NVME_SET_POLL, &poll);
        if (ret) {
            error_setg_errno(errp, -ret, "VHOST_NVME_SET_POLL");
            return false;
        }
    }
    return true;
}

/*
 * backend=: the fd the module does the I/O on, and a BlockBackend on the
 * same file for hw/nvme (size, block sizes, image locking, flush).
 */
static bool vn_open_backend(DeviceState *dev, VNBackend *b, BlockConf *conf,
                            Error **errp)
{
    BlockBackend *blk;
    BlockDriverState *bs;
    QDict *opts;
    struct stat st;
    bool direct = true;
    int flags = BDRV_O_RDWR;
    int ret;

    if (conf->blk) {
        error_setg(errp, "the namespace is backend=, not drive=");
        return false;
    }
    b->fd = qemu_open(b->path, O_RDWR | O_DIRECT, NULL);
    /*
     * Without O_DIRECT where the file system has none (EINVAL), or where
     * an fdset (-add-fd) holds no fd opened with it: QEMU matches the flag
     * and answers EACCES.
     */
    if (b->fd < 0 && (errno == EINVAL ||
                      (errno == EACCES &&
                       g_str_has_prefix(b->path, "/dev/fdset/")))) {
        direct = false;
        b->fd = qemu_open(b->path, O_RDWR, NULL);
    }
    if (b->fd < 0) {
        error_setg_errno(errp, errno, "backend %s %s", b->path,
                         errno == ENOENT ? "does not exist" :
                         errno == EACCES || errno == EPERM ?
                         "cannot be opened: no permission" :
                         "cannot be opened");
        return false;
    }
    if (fstat(b->fd, &st) < 0 || (!S_ISBLK(st.st_mode) &&
                                  !S_ISREG(st.st_mode))) {
        error_setg(errp, "backend %s is neither a block device nor a regular "
                   "file", b->path);
        return false;
    }
    opts = qdict_new();
    qdict_put_str(opts, "driver", S_ISBLK(st.st_mode) ? "host_device" : "file");
    /*
     * An incoming migration's destination opens it inactive: no write
     * permission and no lock until the source let go of it
     * (bdrv_activate_all() when the migration completes).
     */
    if (runstate_check(RUN_STATE_INMIGRATE)) {
        flags |= BDRV_O_INACTIVE;
    }
    bs = bdrv_open(b->path, NULL, opts, flags | (direct ? BDRV_O_NOCACHE : 0),
                   errp);
    if (!bs) {
        return false;
    }
    blk = blk_new(bdrv_get_aio_context(bs),
                  BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE, BLK_PERM_ALL);
    /* A guest device's BlockBackend: it may be inactivated. */
    ret = blk_attach_dev(blk, dev);
    if (!ret) {
        ret = blk_insert_bs(blk, bs, errp);
    } else {
        error_setg(errp, "backend %s: cannot attach its BlockBackend",
                   b->path);
    }
    bdrv_unref(bs);
    if (ret) {
        if (blk_get_attached_dev(blk)) {
            blk_detach_dev(blk, dev);
        }
        blk_unref(blk);
        return false;
    }
    blk_unref(blk);     /* the device's reference stays */
    conf->blk = blk;
    return true;
}

static void vn_close_backend(VNBackend *b)
{
    if (b->fd >= 0) {
        close(b->fd);
        b->fd = -1;
    }
}

/* The controller's backend=, namespace 1; a controller may have none. */
static bool vn_ctrl_backend(VhostNvmeCtrl *v, Error **errp)
{
    BlockConf *conf = &NVME(v)->namespace.blkconf;

    if (v->b.path) {
        return vn_open_backend(DEVICE(v), &v->b, conf, errp);
    }
    if (conf->blk) {
        error_setg(errp, "the namespace is backend=, not drive=");
        return false;
    }
    return true;
}

/* What a namespace on the module does not have, and a stable NGUID. */
static void vn_fixup_ns(NvmeNamespace *ns, const char *serial, uint32_t nsid)
{
    /* The guest names the disk by it: from the serial (and nsid). */
    if (nvme_nguid_is_null(&ns->params.nguid)) {
        g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
        g_autofree char *ids = nsid ? g_strdup_printf("%s/%u", serial, nsid) :
                                      g_strdup(serial);
        uint8_t digest[32];
        gsize len = sizeof(digest);

        g_checksum_update(sum, (const guchar *)"vhost-nvme ", -1);
        g_checksum_update(sum, (const guchar *)ids, -1);
        g_checksum_get_digest(sum, digest, &len);
        memcpy(ns->params.nguid.data, digest, sizeof(ns->params.nguid.data));
        memcpy(ns->id_ns.nguid, digest, sizeof(ns->id_ns.nguid));
    }
    /* No Copy, no deallocated-block guarantees. */
    ns->id_ns.dlfeat = 0;
    ns->id_ns.mssrl = 0;
    ns->id_ns.mcl = 0;
    ns->id_ns.msrc = 0;
}

/* What hw/nvme advertises for an I/O path it no longer runs. */
static void vn_fixup_identify(VhostNvmeCtrl *v)
{
    NvmeCtrl *n = NVME(v);
    NvmeIdCtrl *id = &n->id_ctrl;
    NvmeNamespace *ns = &n->namespace;
    uint16_t oncs = NVME_ONCS_TIMESTAMP | NVME_ONCS_FEATURES;
    uint64_t cap = ldq_le_p(&n->bar.cap);
    unsigned int op;

    strpadcpy((char *)id->mn, sizeof(id->mn), "QEMU vhost-nvme Ctrl", ' ');
    /* The namespace identifiers the module can attach. */
    id->nn = cpu_to_le32(MIN(NVME_MAX_NAMESPACES, v->info.max_nsid));
    /* No Format NVM or directives: the module's namespace is fixed. */
    id->oacs &= ~cpu_to_le16(NVME_OACS_FORMAT | NVME_OACS_DIRECTIVES);
    n->cse.acs[NVME_ADM_CMD_FORMAT_NVM] = 0;
    n->cse.acs[NVME_ADM_CMD_DIRECTIVE_RECV] = 0;
    n->cse.acs[NVME_ADM_CMD_DIRECTIVE_SEND] = 0;
    /* The module executes Flush, Read, Write, Write Zeroes and DSM. */
    for (op = 0; op < ARRAY_SIZE(n->cse.iocs.nvm); op++) {
        if (op != NVME_CMD_FLUSH && op != NVME_CMD_READ &&
            op != NVME_CMD_WRITE &&
            !(op == NVME_CMD_WRITE_ZEROES &&
              (v->features & VHOST_NVME_F_WRITE_ZEROES)) &&
            !(op == NVME_CMD_DSM && (v->features & VHOST_NVME_F_DSM))) {
            n->cse.iocs.nvm[op] = 0;
        }
    }
    if (v->features & VHOST_NVME_F_WRITE_ZEROES) {
        oncs |= NVME_ONCS_WRITE_ZEROES;
    }
    if (v->features & VHOST_NVME_F_DSM) {
        oncs |= NVME_ONCS_DSM;
    }
    id->oncs = cpu_to_le16(oncs);
    id->ocfs = 0;
    id->sgls = cpu_to_le32(v->features & VHOST_NVME_F_SGL ?
                           NVME_CTRL_SGLS_SUPPORT_DWORD_ALIGN : 0);
    /* 10b: Flush with the broadcast NSID is not supported. */
    id->vwc = NVME_VWC_NSID_BROADCAST_CTRL_SPEC;
    if (ns->blkconf.wce != ON_OFF_AUTO_OFF) {
        id->vwc |= NVME_VWC_PRESENT;
    }
    NVME_CAP_SET_MPSMAX(cap, 0);
    stq_le_p(&n->bar.cap, cap);
    if (v->b.path) {
        vn_fixup_ns(ns, n->params.serial, 0);
    }
}

static void vn_cleanup(VhostNvmeCtrl *v)
{
    if (v->intx_timer) {
        timer_free(v->intx_timer);
        v->intx_timer = NULL;
    }
    vn_close_backend(&v->b);
    if (v->vfd >= 0) {
        cpr_delete_fd(v->cpr_name, 0);
        close(v->vfd);          /* the module tears everything down */
        v->vfd = -1;
    }
    g_free(v->cpr_name);
    v->cpr_name = NULL;
    qemu_vfree(v->vmm_db);
    v->vmm_db = NULL;
    g_free(v->worker_ids);
    v->worker_ids = NULL;
    g_free(v->sq);
    g_free(v->cq);
    v->sq = v->cq = NULL;
    g_free(v->no_coalescing);
    v->no_coalescing = NULL;
    g_free(v->stats_gone);
    v->stats_gone = NULL;
    g_free(v->mem);
    v->mem = NULL;
    vn_log_free(v);
    if (v->sections) {
        g_array_free(v->sections, true);
        v->sections = NULL;
    }
}

static void vn_realize(PCIDevice *pdev, Error **errp)
{
    VhostNvmeCtrl *v = VHOST_NVME(pdev);
    VhostNvmeClass *vc = VHOST_NVME_GET_CLASS(pdev);
    NvmeCtrl *n = NVME(pdev);
    Error *err = NULL;
    int ret;

    v->vfd = v->b.fd = -1;
    if (!kvm_enabled() && !v->allow_tcg) {
        /*
         * The module writes guest RAM behind TCG's back: translated code
         * of a page a read lands in is not invalidated.
         */
        error_setg(errp, "needs KVM (x-allow-tcg=on for tests only)");
        return;
    }
    if (pci_device_iommu_address_space(pdev) != &address_space_memory) {
        error_setg(errp, "does not translate through a guest IOMMU");
        return;
    }
    if (!vn_open_module(v, errp) || !vn_params(v, errp) ||
        !vn_negotiate(v, errp) || !vn_ctrl_backend(v, errp)) {
        goto fail;
    }
    v->nr_q = n->params.max_ioqpairs + 1;
    v->sq = g_new0(VNQueue, v->nr_q);
    v->cq = g_new0(VNQueue, v->nr_q);
    v->no_coalescing = bitmap_new(n->params.msix_qsize);
    v->nr_vectors = n->params.msix_qsize;
    v->stats_gone = g_new0(struct vhost_nvme_ns_stats, NVME_MAX_NAMESPACES + 1);
    v->vmm_db = qemu_memalign(VN_PAGE, VN_PAGE);
    memset(v->vmm_db, 0, VN_PAGE);
    ret = v->cpr_incoming ? 0 : vn_set_doorbells(v, false, 0, 0);
    if (ret) {
        error_setg_errno(errp, -ret, "VHOST_NVME_SET_DOORBELLS");
        goto fail;
    }

    vc->parent_realize(pdev, &err);
    if (err) {
        error_propagate(errp, err);
        goto fail;
    }
    vn_fixup_identify(v);
    if (v->b.path && vn_attach(v, &n->namespace, errp)) {
        goto fail_parent;
    }

    v->use_irqfd = v->irqfd_allowed && kvm_irqfds_enabled() &&
                   kvm_msi_via_irqfd_enabled();
    if (v->use_irqfd) {
        msix_set_vector_notifiers(pdev, vn_vector_use, vn_vector_release,
                                  NULL);
    }
    v->intx_timer = timer_new_ms(QEMU_CLOCK_VIRTUAL, vn_intx_timer_cb, v);
    v->sections = g_array_new(false, true, sizeof(struct vhost_memory_region));
    v->listener = (MemoryListener) {
        .name = "vhost-nvme",
        .begin = vn_mem_begin,
        .commit = vn_mem_commit,
        .region_add = vn_mem_add,
        .region_nop = vn_mem_add,
        .log_sync = vn_log_sync,
        .log_global_start = vn_log_global_start,
        .log_global_stop = vn_log_global_stop,
        .priority = MEMORY_LISTENER_PRIORITY_DEV_BACKEND,
    };
    memory_listener_register(&v->listener, &address_space_memory);
    if (!v->mem) {
        error_setg(errp, "the module refused the guest memory table");
        memory_listener_unregister(&v->listener);
        if (v->use_irqfd) {
            msix_unset_vector_notifiers(pdev);
        }
        goto fail_parent;
    }
    if (!v->can_log) {
        error_setg(&v->blocker, "vhost-nvme %s: the module cannot log the "
                   "guest pages it writes", n->params.serial);
        if (migrate_add_blocker(&v->blocker, errp) < 0) {
            memory_listener_unregister(&v->listener);
            if (v->use_irqfd) {
                msix_unset_vector_notifiers(pdev);
            }
            goto fail_parent;
        }
    }
    migration_add_notifier(&v->mig_notifier, vn_migration_notify);
    migration_add_notifier_mode(&v->cpr_notifier, vn_cpr_notify,
                                MIG_MODE_CPR_TRANSFER);
    /* An incoming migration's queues wait for the VM to run. */
    if (runstate_check(RUN_STATE_INMIGRATE)) {
        v->incoming = true;
        vn_pause(v, VN_PAUSE_VM);
    }
    v->vmstate = qdev_add_vm_change_state_handler(DEVICE(v),
                                                  vn_vm_state_change, v);
    return;

fail_parent:
    vc->parent_exit(pdev);
fail:
    vn_cleanup(v);
}

static void vn_exit(PCIDevice *pdev)
{
    VhostNvmeCtrl *v = VHOST_NVME(pdev);
    VhostNvmeClass *vc = VHOST_NVME_GET_CLASS(pdev);

    if (v->use_irqfd) {
        msix_unset_vector_notifiers(pdev);
    }
    qemu_del_vm_change_state_handler(v->vmstate);
    migration_remove_notifier(&v->mig_notifier);
    migration_remove_notifier(&v->cpr_notifier);
    migrate_del_blocker(&v->blocker);
    /* Its nvme_ctrl_reset() runs vn_reset(): the module is still open. */
    vc->parent_exit(pdev);
    memory_listener_unregister(&v->listener);
    vn_cleanup(v);
}

/* ------------------------------------------------------------------------ */
/* Namespaces: vhost-nvme-ns */

/* The controller's NVMe bus takes vhost-nvme-ns devices only. */
static void vn_ns_pre_plug(HotplugHandler *hotplug_dev, DeviceState *dev,
                           Error **errp)
{
    if (!object_dynamic_cast(OBJECT(dev), TYPE_VHOST_NVME_NS)) {
        error_setg(errp, "%s: the namespaces of a vhost-nvme controller are "
                   "vhost-nvme-ns devices", object_get_typename(OBJECT(dev)));
    }
}

static void vn_ns_realize(DeviceState *dev, Error **errp)
{
    VhostNvmeNs *vns = VHOST_NVME_NS(dev);
    VhostNvmeNsClass *vc = VHOST_NVME_NS_GET_CLASS(dev);
    NvmeNamespace *ns = NVME_NS(dev);
    BusState *bus = qdev_get_parent_bus(dev);
    Object *ctrl = OBJECT(bus->parent);
    Error *err = NULL;

    if (!object_dynamic_cast(ctrl, TYPE_VHOST_NVME)) {
        error_setg(errp, "a vhost-nvme-ns is a namespace of a vhost-nvme "
                   "controller (bus=its id)");
        return;
    }
    if (!vns->b.path) {
        error_setg(errp, "backend=PATH (a block device or a file) is required");
        return;
    }
    if (ns->params.zoned || ns->params.ms || ns->params.pi ||
        ns->params.fdp.ruhs) {
        error_setg(errp, "zoned namespaces, metadata, protection information "
                   "and FDP are not offloaded");
        return;
    }
    if (!vn_open_backend(dev, &vns->b, &ns->blkconf, errp)) {
        goto fail;
    }
    vc->parent_realize(dev, &err);
    if (err) {
        error_propagate(errp, err);
        goto fail;
    }
    vn_fixup_ns(ns, NVME(ctrl)->params.serial, ns->params.nsid);
    return;

fail:
    vn_close_backend(&vns->b);
}

static void vn_ns_unrealize(DeviceState *dev)
{
    VhostNvmeNsClass *vc = VHOST_NVME_NS_GET_CLASS(dev);

    vc->parent_unrealize(dev);
    vn_close_backend(&VHOST_NVME_NS(dev)->b);
}

static void vn_ns_instance_init(Object *obj)
{
    VHOST_NVME_NS(obj)->b.fd = -1;
}

static const Property vn_ns_props[] = {
    DEFINE_PROP_STRING("backend", VhostNvmeNs, b.path),
};

static void vn_ns_class_init(ObjectClass *oc, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(oc);
    VhostNvmeNsClass *vc = VHOST_NVME_NS_CLASS(oc);

    device_class_set_parent_realize(dc, vn_ns_realize, &vc->parent_realize);
    device_class_set_parent_unrealize(dc, vn_ns_unrealize,
                                      &vc->parent_unrealize);
    dc->desc = "Namespace of a vhost-nvme controller (I/O by /dev/vhost-nvme)";
    device_class_set_props(dc, vn_ns_props);
}

static const TypeInfo vn_ns_info = {
    .name = TYPE_VHOST_NVME_NS,
    .parent = TYPE_NVME_NS,
    .instance_size = sizeof(VhostNvmeNs),
    .instance_init = vn_ns_instance_init,
    .class_size = sizeof(VhostNvmeNsClass),
    .class_init = vn_ns_class_init,
};

/* ------------------------------------------------------------------------ */
/* The controller's type */

static void vn_instance_init(Object *obj)
{
    NvmeCtrl *n = NVME(obj);

    n->offload = &vn_offload_ops;
    /* 0: from the module (class defaults are set before, users' after). */
    n->params.max_ioqpairs = 0;
    n->params.mqes = 0;
    n->params.mdts = 0;
    n->params.msix_qsize = 0;
}

static const Property vn_props[] = {
    DEFINE_PROP_STRING("backend", VhostNvmeCtrl, b.path),
    DEFINE_PROP_STRING("vhostfd", VhostNvmeCtrl, vhostfd_str),
    DEFINE_PROP_INT32("poll-us", VhostNvmeCtrl, poll_us, -1),
    DEFINE_PROP_UINT32("workers", VhostNvmeCtrl, workers, 0),
    DEFINE_PROP_BOOL("x-allow-tcg", VhostNvmeCtrl, allow_tcg, false),
    DEFINE_PROP_BOOL("x-irqfd", VhostNvmeCtrl, irqfd_allowed, true),
};

static void vn_class_init(ObjectClass *oc, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(oc);
    PCIDeviceClass *pc = PCI_DEVICE_CLASS(oc);
    VhostNvmeClass *vc = VHOST_NVME_CLASS(oc);
    HotplugHandlerClass *hc = HOTPLUG_HANDLER_CLASS(oc);

    vc->parent_realize = pc->realize;
    vc->parent_exit = pc->exit;
    vc->parent_config_write = pc->config_write;
    vc->parent_config_read = pc->config_read;
    pc->realize = vn_realize;
    pc->exit = vn_exit;
    pc->config_write = vn_config_write;
    pc->config_read = vn_config_read;
    hc->pre_plug = vn_ns_pre_plug;
    dc->desc = "NVMe controller with its I/O queues in the kernel "
               "(/dev/vhost-nvme)";
    device_class_set_props(dc, vn_props);
    dc->vmsd = &vn_vmstate;
}

static const TypeInfo vn_info = {
    .name = TYPE_VHOST_NVME,
    .parent = TYPE_NVME,
    .instance_size = sizeof(VhostNvmeCtrl),
    .instance_init = vn_instance_init,
    .class_size = sizeof(VhostNvmeClass),
    .class_init = vn_class_init,
};

static void vn_register_types(void)
{
    type_register_static(&vn_info);
    type_register_static(&vn_ns_info);
}

type_init(vn_register_types)
