/*
 * bqnic: a PCIe NIC with qlge-style small and large rx buffer queues
 *
 * This file is the PCI glue (BARs, MSI-X, properties, reset, counters over
 * QOM); rings, receive and transmit live in bqnic_core.c.  The datasheet is
 * qemu-device/SPEC.md in bqlab.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/log.h"
#include "qemu/module.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "net/net.h"
#include "hw/pci/pci_device.h"
#include "hw/pci/pcie.h"
#include "hw/pci/msix.h"
#include "hw/qdev-properties.h"
#include "migration/vmstate.h"
#include "qom/object.h"
#include "bqnic_core.h"
#include "trace.h"

#define TYPE_BQNIC "bqnic"
OBJECT_DECLARE_SIMPLE_TYPE(BqnicState, BQNIC)

#define BQNIC_PCIE_CAP_OFFSET   0xe0

struct BqnicState {
    PCIDevice parent_obj;

    MemoryRegion mmio;
    NICState *nic;
    NICConf conf;
    uint32_t queues;
    char *rx_nobuf;

    BqnicCore core;
};

/*
 * The re-entrancy guard keeps these from running inside device work: the
 * memory core refuses an access to our BARs while it is engaged.
 */
static uint64_t bqnic_mmio_read(void *opaque, hwaddr addr, unsigned size)
{
    BqnicState *s = opaque;
    uint64_t val;

    if (!bqnic_core_work_begin(&s->core)) {
        return 0;
    }
    val = bqnic_core_read(&s->core, addr);
    bqnic_core_work_end(&s->core);
    return val;
}

static void bqnic_mmio_write(void *opaque, hwaddr addr, uint64_t val,
                             unsigned size)
{
    BqnicState *s = opaque;

    if (!bqnic_core_work_begin(&s->core)) {
        return;
    }
    bqnic_core_write(&s->core, addr, val);
    bqnic_core_work_end(&s->core);
}

/*
 * 32-bit registers (SPEC 3). An 8-byte access aligned to 4 is the two 32-bit
 * accesses it covers, lower address first, whoever makes it: the memory core
 * splits it here (an aligned CPU load or store under TCG, a DMA or a KVM MMIO
 * exit, which come as byte streams, cut at 8 bytes), TCG's softmmu before
 * (one at 4 mod 8). Smaller or misaligned accesses are refused as a whole:
 * reads 0, writes ignored, logged with -d invalid_mem.
 */
static const MemoryRegionOps bqnic_mmio_ops = {
    .read = bqnic_mmio_read,
    .write = bqnic_mmio_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = {
        .min_access_size = 4,
        .max_access_size = 8,
    },
    .impl = {
        .min_access_size = 4,
        .max_access_size = 4,
    },
};

static bool bqnic_nc_can_receive(NetClientState *nc)
{
    BqnicState *s = qemu_get_nic_opaque(nc);

    return bqnic_core_can_receive(&s->core);
}

static ssize_t bqnic_nc_receive_iov(NetClientState *nc,
                                    const struct iovec *iov, int iovcnt)
{
    BqnicState *s = qemu_get_nic_opaque(nc);

    return bqnic_core_receive_iov(&s->core, iov, iovcnt);
}

static ssize_t bqnic_nc_receive(NetClientState *nc, const uint8_t *buf,
                                size_t size)
{
    const struct iovec iov = {
        .iov_base = (uint8_t *)buf,
        .iov_len = size,
    };

    return bqnic_nc_receive_iov(nc, &iov, 1);
}

static void bqnic_nc_link_status_changed(NetClientState *nc)
{
    BqnicState *s = qemu_get_nic_opaque(nc);

    bqnic_core_set_link(&s->core, !nc->link_down);
}

static NetClientInfo bqnic_net_info = {
    .type = NET_CLIENT_DRIVER_NIC,
    .size = sizeof(NICState),
    .can_receive = bqnic_nc_can_receive,
    .receive = bqnic_nc_receive,
    .receive_iov = bqnic_nc_receive_iov,
    .link_status_changed = bqnic_nc_link_status_changed,
};

/*
 * A config write that arrives while the device is at work was made by what
 * it emitted (DMA or an MSI-X message aimed at MMCONFIG, directly or through
 * another device): refused, so that nothing the device emits resets,
 * reconfigures or disables it (SPEC 7).
 */
static void bqnic_write_config(PCIDevice *pci_dev, uint32_t addr, uint32_t val,
                               int len)
{
    BqnicState *s = BQNIC(pci_dev);
    bool master = pci_dev->config[PCI_COMMAND] & PCI_COMMAND_MASTER;

    if (!bqnic_core_work_begin(&s->core)) {
        qemu_log_mask(LOG_GUEST_ERROR, "bqnic: config write of 0x%x at 0x%x"
                      " by the device's own DMA or message (refused)\n",
                      val, addr);
        return;
    }
    pci_default_write_config(pci_dev, addr, val, len);
    pcie_cap_flr_write_config(pci_dev, addr, val, len);
    if (!master) {
        bqnic_core_bus_master_on(&s->core);
    }
    bqnic_core_work_end(&s->core);
}

static void bqnic_get_stats(Object *obj, Visitor *v, const char *name,
                            void *opaque, Error **errp)
{
    BqnicState *s = BQNIC(obj);
    BqnicCore *core = &s->core;
    bool link_up = core->link_up;
    unsigned int i;

    if (!visit_start_struct(v, name, NULL, 0, errp)) {
        return;
    }
    if (!visit_start_list(v, "queues", NULL, 0, errp)) {
        goto out;
    }
    for (i = 0; i < core->num_queues; i++) {
        BqnicQueue *q = &core->queues[i];
        BqnicQueueStats *st = &q->stats;
        uint64_t sbq_owned = bqnic_ring_used(&q->sbq);
        uint64_t lbq_owned = bqnic_ring_used(&q->lbq);
        bool ok;

        if (!visit_start_struct(v, NULL, NULL, 0, errp)) {
            break;
        }
        ok = visit_type_uint64(v, "rx_frames", &st->rx_frames, errp) &&
             visit_type_uint64(v, "rx_bytes", &st->rx_bytes, errp) &&
             visit_type_uint64(v, "rx_drop_no_sbq", &st->rx_drop_no_sbq,
                               errp) &&
             visit_type_uint64(v, "rx_drop_no_lbq", &st->rx_drop_no_lbq,
                               errp) &&
             visit_type_uint64(v, "rx_drop_cq_full", &st->rx_drop_cq_full,
                               errp) &&
             visit_type_uint64(v, "rx_drop_disabled", &st->rx_drop_disabled,
                               errp) &&
             visit_type_uint64(v, "rx_drop_stopped", &st->rx_drop_stopped,
                               errp) &&
             visit_type_uint64(v, "sbq_owned", &sbq_owned, errp) &&
             visit_type_uint64(v, "lbq_owned", &lbq_owned, errp) &&
             visit_type_uint64(v, "completions", &st->completions, errp) &&
             visit_type_uint64(v, "interrupts", &st->interrupts, errp) &&
             visit_type_uint64(v, "tx_frames", &st->tx_frames, errp) &&
             visit_type_uint64(v, "tx_bytes", &st->tx_bytes, errp) &&
             visit_type_uint64(v, "tx_errors", &st->tx_errors, errp) &&
             visit_type_uint64(v, "tx_drop_link_down", &st->tx_drop_link_down,
                               errp) &&
             visit_check_struct(v, errp);
        visit_end_struct(v, NULL);
        if (!ok) {
            break;
        }
    }
    visit_end_list(v, NULL);
    if (visit_type_uint64(v, "rx_oversize", &core->rx_oversize, errp) &&
        visit_type_uint64(v, "rx_runt", &core->rx_runt, errp) &&
        visit_type_uint64(v, "dma_errors", &core->dma_errors, errp) &&
        visit_type_uint64(v, "dma_error_iova", &core->dma_err_addr, errp) &&
        visit_type_uint64(v, "dma_faults_injected", &core->dma_faults_injected,
                          errp) &&
        visit_type_uint64(v, "mmio_reads", &core->mmio_reads, errp) &&
        visit_type_bool(v, "link_up", &link_up, errp)) {
        visit_check_struct(v, errp);
    }
out:
    visit_end_struct(v, NULL);
}

static bool bqnic_get_reset_stats(Object *obj, Error **errp)
{
    return false;
}

static void bqnic_set_reset_stats(Object *obj, bool value, Error **errp)
{
    if (value) {
        bqnic_core_reset_stats(&BQNIC(obj)->core);
    }
}

static void bqnic_realize(PCIDevice *pci_dev, Error **errp)
{
    BqnicState *s = BQNIC(pci_dev);
    bool queue_mode = false;
    unsigned int i;
    int ret;

    if (s->queues < 1 || s->queues > BQNIC_MAX_QUEUES) {
        error_setg(errp, "bqnic: queues must be 1..%d, not %u",
                   BQNIC_MAX_QUEUES, s->queues);
        return;
    }
    if (s->rx_nobuf && !strcmp(s->rx_nobuf, "queue")) {
        queue_mode = true;
    } else if (s->rx_nobuf && strcmp(s->rx_nobuf, "drop")) {
        error_setg(errp, "bqnic: rx-nobuf must be 'drop' or 'queue', not '%s'",
                   s->rx_nobuf);
        return;
    }

    pci_dev->config_write = bqnic_write_config;
    pci_set_word(pci_dev->config + PCI_SUBSYSTEM_VENDOR_ID,
                 BQNIC_SUBSYS_VENDOR_ID);
    pci_set_word(pci_dev->config + PCI_SUBSYSTEM_ID, BQNIC_SUBSYS_ID);

    memory_region_init_io(&s->mmio, OBJECT(s), &bqnic_mmio_ops, s,
                          "bqnic-mmio", BQNIC_MMIO_SIZE);
    pci_register_bar(pci_dev, BQNIC_MMIO_BAR, PCI_BASE_ADDRESS_SPACE_MEMORY,
                     &s->mmio);

    if (pcie_endpoint_cap_init(pci_dev, BQNIC_PCIE_CAP_OFFSET) < 0) {
        error_setg(errp, "bqnic: cannot add the PCI Express capability");
        return;
    }
    pcie_cap_flr_init(pci_dev);     /* SPEC 9: function-level reset */
    /* One vector per queue pair plus one for link changes and errors. */
    ret = msix_init_exclusive_bar(pci_dev, s->queues + 1, BQNIC_MSIX_BAR,
                                  errp);
    if (ret) {
        pcie_cap_exit(pci_dev);
        return;
    }
    for (i = 0; i <= s->queues; i++) {
        msix_vector_use(pci_dev, i);
    }

    qemu_macaddr_default_if_unset(&s->conf.macaddr);
    s->nic = qemu_new_nic(&bqnic_net_info, &s->conf,
                          object_get_typename(OBJECT(s)),
                          DEVICE(s)->id, &DEVICE(s)->mem_reentrancy_guard, s);
    qemu_format_nic_info_str(qemu_get_queue(s->nic), s->conf.macaddr.a);

    bqnic_core_realize(&s->core, pci_dev, s->nic, s->queues, queue_mode);
}

static void bqnic_exit(PCIDevice *pci_dev)
{
    BqnicState *s = BQNIC(pci_dev);

    bqnic_core_unrealize(&s->core);
    qemu_del_nic(s->nic);
    msix_unuse_all_vectors(pci_dev);
    msix_uninit_exclusive_bar(pci_dev);
    pcie_cap_exit(pci_dev);
}

static void bqnic_reset_hold(Object *obj, ResetType type)
{
    BqnicState *s = BQNIC(obj);

    bqnic_core_reset(&s->core);
}

static void bqnic_instance_init(Object *obj)
{
    object_property_add(obj, "stats", "BqnicStats", bqnic_get_stats, NULL,
                        NULL, NULL);
    object_property_add_bool(obj, "reset-stats", bqnic_get_reset_stats,
                             bqnic_set_reset_stats);
    object_property_add_uint32_ptr(obj, "fail-dma", &BQNIC(obj)->core.fail_dma,
                                   OBJ_PROP_FLAG_READWRITE);
}

/*
 * Rings and buffers live in guest memory, which migrates with the guest; the
 * device's side is its registers, ring indices, read-ahead buffer addresses,
 * interrupt moderation timers and counters (SPEC 12).
 */
static const VMStateDescription bqnic_vmstate = {
    .name = TYPE_BQNIC,
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_PCI_DEVICE(parent_obj, BqnicState),
        VMSTATE_MSIX(parent_obj, BqnicState),
        VMSTATE_UINT32_EQUAL(queues, BqnicState, NULL),
        VMSTATE_STRUCT(core, BqnicState, 1, bqnic_vmstate_core, BqnicCore),
        VMSTATE_END_OF_LIST()
    }
};

static const Property bqnic_properties[] = {
    DEFINE_NIC_PROPERTIES(BqnicState, conf),
    DEFINE_PROP_UINT32("queues", BqnicState, queues, 2),
    DEFINE_PROP_STRING("rx-nobuf", BqnicState, rx_nobuf),
};

static void bqnic_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    ResettableClass *rc = RESETTABLE_CLASS(klass);
    PCIDeviceClass *k = PCI_DEVICE_CLASS(klass);

    k->realize = bqnic_realize;
    k->exit = bqnic_exit;
    k->vendor_id = BQNIC_VENDOR_ID;
    k->device_id = BQNIC_DEVICE_ID;
    k->revision = BQNIC_REVISION;
    k->class_id = PCI_CLASS_NETWORK_ETHERNET;
    rc->phases.hold = bqnic_reset_hold;
    dc->desc = "bqlab NIC with small/large rx buffer queues";
    dc->vmsd = &bqnic_vmstate;
    device_class_set_props(dc, bqnic_properties);
    set_bit(DEVICE_CATEGORY_NETWORK, dc->categories);
}

static const TypeInfo bqnic_info = {
    .name = TYPE_BQNIC,
    .parent = TYPE_PCI_DEVICE,
    .instance_size = sizeof(BqnicState),
    .class_init = bqnic_class_init,
    .instance_init = bqnic_instance_init,
    .interfaces = (InterfaceInfo[]) {
        { INTERFACE_PCIE_DEVICE },
        { }
    },
};

static void bqnic_register_types(void)
{
    type_register_static(&bqnic_info);
}

type_init(bqnic_register_types)
