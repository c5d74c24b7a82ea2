/*
 * bqnic: rings, receive, transmit and interrupts
 *
 * The receive side follows the QLogic qlge design: a completion queue plus a
 * small and a large buffer queue per rx queue.  A frame that finds no posted
 * buffer is dropped and counted, and raises no interrupt: the condition in
 * which a driver that refills only from NAPI stalls.  See SPEC.md.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/log.h"
#include "qemu/timer.h"
#include "qemu/iov.h"
#include "net/net.h"
#include "net/checksum.h"
#include "net/eth.h"
#include "hw/pci/pci_device.h"
#include "hw/pci/msix.h"
#include "migration/vmstate.h"
#include "net_rx_pkt.h"
#include "bqnic_core.h"
#include "trace.h"

/* Large enough for any frame the device accepts, even with a VLAN tag. */
#define BQNIC_FRAME_BUF_SIZE    (BQNIC_MAX_FRAME_LIMIT + 64)

static const char *const bq_name[] = { "sbq", "lbq" };

static bool bqnic_bus_master(BqnicCore *core)
{
    return core->owner->config[PCI_COMMAND] & PCI_COMMAND_MASTER;
}

static bool bqnic_ring_size_valid(uint32_t size)
{
    return size >= BQNIC_MIN_RING && size <= BQNIC_MAX_RING &&
           is_power_of_2(size);
}

static uint32_t bqnic_ring_slot(const BqnicRing *r, uint32_t index)
{
    return index & (r->size - 1);
}

static bool bqnic_queue_stopped(BqnicQueue *q)
{
    return (q->rx_status | q->tx_status) & BQNIC_QSTATUS_STOPPED;
}

/*
 * Every piece of device work (a register access, a frame from the net layer,
 * an ITR timer, a PCI config write, a link change) runs between these two,
 * never nested (SPEC 7). While it runs, the re-entrancy guard makes the
 * memory core refuse accesses to our BARs (MSI-X table included), a config
 * write is refused (bqnic_write_config in bqnic.c) and a frame waits in the net
 * layer (bqnic_core_can_receive): nothing the device emits, wherever it is
 * aimed, starts more work in it. False if work is running already.
 */
bool bqnic_core_work_begin(BqnicCore *core)
{
    MemReentrancyGuard *guard = &DEVICE(core->owner)->mem_reentrancy_guard;

    if (core->busy) {
        return false;
    }
    core->busy = true;
    core->guard_taken = !guard->engaged_in_io;
    guard->engaged_in_io = true;
    return true;
}

void bqnic_core_work_end(BqnicCore *core)
{
    if (core->guard_taken) {
        DEVICE(core->owner)->mem_reentrancy_guard.engaged_in_io = false;
    }
    core->busy = false;
    if (core->rx_flush_wanted) {
        core->rx_flush_wanted = false;
        qemu_flush_queued_packets(qemu_get_queue(core->nic));
    }
}

/* Let the net layer deliver again: now, or when the running work ends. */
static void bqnic_rx_flush(BqnicCore *core)
{
    if (core->busy) {
        core->rx_flush_wanted = true;
    } else {
        qemu_flush_queued_packets(qemu_get_queue(core->nic));
    }
}

/* Interrupts */

/*
 * The message is a memory write the guest aimed: false if what it reached
 * reset the device (through a bridge, say), and the caller must stop.
 */
static bool bqnic_fire_vector(BqnicCore *core, unsigned int vector,
                              uint32_t cause)
{
    uint32_t generation = core->generation;

    trace_bqnic_irq(vector, cause);
    msix_notify(core->owner, vector);
    return core->generation == generation;
}

/*
 * With CTRL.IRQ_AUTO the message masks the queue and clears the causes it
 * reports, so the driver's handler needs no register access (section 6.2).
 */
/*
 * Causes that are set, unmasked and not yet reported: a cause a message
 * reported fires again only once it was cleared and set anew (SPEC 6).
 */
static uint32_t bqnic_queue_pending(const BqnicQueue *q)
{
    return q->cause & ~q->mask & ~q->reported;
}

static bool bqnic_queue_fire(BqnicQueue *q, uint32_t pending, int64_t now)
{
    q->last_irq_ns = now;
    q->stats.interrupts++;
    if (q->core->ctrl & BQNIC_CTRL_IRQ_AUTO) {
        q->cause &= ~pending;
        q->mask = BQNIC_QCAUSE_ALL;
    }
    q->reported |= pending & q->cause;
    return bqnic_fire_vector(q->core, q->index, pending);
}

/* False if the message reset the device (bqnic_fire_vector). */
static bool bqnic_queue_irq(BqnicQueue *q)
{
    BqnicCore *core = q->core;
    uint32_t pending = bqnic_queue_pending(q);
    int64_t now, due;

    if (!pending || timer_pending(q->itr_timer)) {
        return true;
    }
    now = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    due = q->last_irq_ns + (int64_t)core->itr * SCALE_US;
    if (core->itr && now < due) {
        trace_bqnic_irq_delayed(q->index, due - now);
        timer_mod(q->itr_timer, due);
        return true;
    }
    return bqnic_queue_fire(q, pending, now);
}

static void bqnic_itr_timer(void *opaque)
{
    BqnicQueue *q = opaque;
    uint32_t pending = bqnic_queue_pending(q);

    if (!pending) {
        return;
    }
    if (!bqnic_core_work_begin(q->core)) {
        /* Timers do not run inside device work; should one, try later. */
        timer_mod(q->itr_timer, qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) +
                  SCALE_US);
        return;
    }
    bqnic_queue_fire(q, pending, qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL));
    bqnic_core_work_end(q->core);
}

/* A delay the previous ITR set is timed again with the new one. */
static void bqnic_itr_changed(BqnicCore *core)
{
    unsigned int i;

    for (i = 0; i < core->num_queues; i++) {
        BqnicQueue *q = &core->queues[i];

        if (timer_pending(q->itr_timer)) {
            timer_del(q->itr_timer);
            if (!bqnic_queue_irq(q)) {
                return;
            }
        }
    }
}

/* False if the interrupt it raised reset the device. */
static bool bqnic_queue_cause(BqnicQueue *q, uint32_t bits)
{
    q->cause |= bits;
    return bqnic_queue_irq(q);
}

static bool bqnic_misc_irq(BqnicCore *core)
{
    uint32_t pending = core->misc_cause & ~core->misc_mask &
                       ~core->misc_reported;

    if (!pending) {
        return true;
    }
    core->misc_reported |= pending;
    return bqnic_fire_vector(core, core->num_queues, pending);
}

static bool bqnic_misc_cause(BqnicCore *core, uint32_t bits)
{
    core->misc_cause |= bits;
    return bqnic_misc_irq(core);
}

/* DMA: every transfer is checked; a failure stops the queue until reset. */

static void bqnic_dma_error(BqnicQueue *q, enum BqnicDmaWhere where,
                            dma_addr_t addr)
{
    BqnicCore *core = q->core;

    trace_bqnic_dma_error(q->index, where, addr);
    qemu_log_mask(LOG_GUEST_ERROR,
                  "bqnic: queue %u: DMA to/from 0x%" PRIx64 " failed (ring %d);"
                  " queue stopped until reset\n", q->index, addr, where);
    core->dma_errors++;
    core->dma_err = true;
    core->dma_err_addr = addr;
    core->dma_err_where = (where << 8) | q->index;
    q->rx_status |= BQNIC_QSTATUS_STOPPED;
    q->tx_status |= BQNIC_QSTATUS_STOPPED;
    bqnic_misc_cause(core, BQNIC_MISC_DMA_ERR);
}

/*
 * A fault the host asked for (SPEC 7.1), as an IOMMU or the fabric would
 * report it: the guest sees the same error as for a real one.
 */
static bool bqnic_dma_fault_injected(BqnicQueue *q, enum BqnicDmaWhere where,
                                     dma_addr_t addr)
{
    BqnicCore *core = q->core;

    if (!core->fail_dma) {
        return false;
    }
    core->fail_dma--;
    core->dma_faults_injected++;
    trace_bqnic_dma_fault_injected(q->index, where, addr, core->fail_dma);
    bqnic_dma_error(q, where, addr);
    return true;
}

/*
 * The whole range first: pci_dma_rw() stops at the first part that fails, but
 * writes the parts before it (and a range that wraps past 2^64 goes on at 0).
 */
static bool bqnic_dma_range_ok(BqnicQueue *q, enum BqnicDmaWhere where,
                               dma_addr_t addr, dma_addr_t len,
                               DMADirection dir)
{
    if (len && (addr + len - 1 < addr ||
                !dma_memory_valid(pci_get_address_space(q->core->owner),
                                  addr, len, dir, MEMTXATTRS_UNSPECIFIED))) {
        bqnic_dma_error(q, where, addr);
        return false;
    }
    return true;
}

/*
 * A transfer reaches whatever the guest aimed it at, and that may reset the
 * device (a bridge's secondary bus reset, say): false then too, and the
 * caller stops without touching the reset state. Nothing in flight
 * completes after a reset (QEMU's reset leaves the bus-master region on).
 */
static bool bqnic_dma(BqnicQueue *q, enum BqnicDmaWhere where,
                      dma_addr_t addr, void *buf, dma_addr_t len,
                      DMADirection dir)
{
    BqnicCore *core = q->core;
    uint32_t generation = core->generation;

    if (!bqnic_dma_range_ok(q, where, addr, len, dir) ||
        bqnic_dma_fault_injected(q, where, addr)) {
        return false;
    }
    if (pci_dma_rw(core->owner, addr, buf, len, dir,
                   MEMTXATTRS_UNSPECIFIED) != MEMTX_OK) {
        if (core->generation == generation) {
            bqnic_dma_error(q, where, addr);
        }
        return false;
    }
    return core->generation == generation;
}

static bool bqnic_dma_read(BqnicQueue *q, enum BqnicDmaWhere where,
                           dma_addr_t addr, void *buf, dma_addr_t len)
{
    return bqnic_dma(q, where, addr, buf, len, DMA_DIRECTION_TO_DEVICE);
}

static bool bqnic_dma_write(BqnicQueue *q, enum BqnicDmaWhere where,
                            dma_addr_t addr, const void *buf, dma_addr_t len)
{
    /* pci_dma_rw() takes one buffer for both directions; it only reads it */
    return bqnic_dma(q, where, addr, (void *)buf, len,
                     DMA_DIRECTION_FROM_DEVICE);
}

/* Receive */

typedef struct BqnicRxInfo {
    uint32_t hash;
    uint16_t flags;
    size_t l5_offset;       /* 0 if the frame has no TCP/UDP payload offset */
} BqnicRxInfo;

/* A whole (unfragmented) UDP/IPv4 datagram whose sender sent no checksum. */
static bool bqnic_rx_udp4_no_csum(BqnicCore *core, bool ip4, EthL4HdrProto l4)
{
    size_t at = net_rx_pkt_get_l4_hdr_offset(core->rx_pkt) +
                offsetof(struct udp_header, uh_sum);

    return ip4 && l4 == ETH_L4_HDR_PROTO_UDP &&
           !net_rx_pkt_get_ip4_info(core->rx_pkt)->fragment &&
           at + 2 <= net_rx_pkt_get_total_len(core->rx_pkt) &&
           lduw_be_p(core->rx_frame + at) == 0;
}

static void bqnic_rx_classify(BqnicCore *core, BqnicRxInfo *info)
{
    struct NetRxPkt *pkt = core->rx_pkt;
    bool ip4, ip6;
    EthL4HdrProto l4;
    NetRxPktRssType type;

    memset(info, 0, sizeof(*info));
    net_rx_pkt_get_protocols(pkt, &ip4, &ip6, &l4);
    if (!ip4 && !ip6) {
        return;
    }
    info->flags |= ip4 ? BQNIC_CQE_F_IPV4 : BQNIC_CQE_F_IPV6;
    if (l4 == ETH_L4_HDR_PROTO_TCP) {
        info->flags |= BQNIC_CQE_F_TCP;
    } else if (l4 == ETH_L4_HDR_PROTO_UDP) {
        info->flags |= BQNIC_CQE_F_UDP;
    }
    if (l4 == ETH_L4_HDR_PROTO_TCP || l4 == ETH_L4_HDR_PROTO_UDP) {
        info->l5_offset = net_rx_pkt_get_l5_hdr_offset(pkt);
    }

    if (core->ctrl & BQNIC_CTRL_RSS_EN) {
        if (ip4) {
            type = l4 == ETH_L4_HDR_PROTO_TCP ? NetPktRssIpV4Tcp :
                   l4 == ETH_L4_HDR_PROTO_UDP ? NetPktRssIpV4Udp :
                   NetPktRssIpV4;
            info->flags |= BQNIC_CQE_F_RSS | BQNIC_CQE_F_HASH_IPV4;
        } else {
            type = l4 == ETH_L4_HDR_PROTO_TCP ? NetPktRssIpV6Tcp :
                   l4 == ETH_L4_HDR_PROTO_UDP ? NetPktRssIpV6Udp :
                   NetPktRssIpV6;
            info->flags |= BQNIC_CQE_F_RSS | BQNIC_CQE_F_HASH_IPV6;
        }
        info->hash = net_rx_pkt_calc_rss_hash(pkt, type, core->rss_key);
    }

    if ((core->ctrl & BQNIC_CTRL_RX_CSUM) &&
        (l4 == ETH_L4_HDR_PROTO_TCP || l4 == ETH_L4_HDR_PROTO_UDP)) {
        bool valid;

        if (net_rx_pkt_validate_l4_csum(pkt, &valid)) {
            info->flags |= valid ? BQNIC_CQE_F_L4_CSUM_OK :
                                   BQNIC_CQE_F_L4_CSUM_BAD;
        } else if (bqnic_rx_udp4_no_csum(core, ip4, l4)) {
            /* Not validated by net_rx_pkt, but valid (RFC 768) */
            info->flags |= BQNIC_CQE_F_L4_CSUM_OK;
        }
    }
}

static BqnicQueue *bqnic_rx_queue_for(BqnicCore *core, const BqnicRxInfo *info)
{
    unsigned int qi = 0;

    if (info->flags & BQNIC_CQE_F_RSS) {
        qi = core->rss_indir[info->hash % BQNIC_RSS_INDIR_SIZE] %
             core->num_queues;
    }
    return &core->queues[qi];
}

static bool bqnic_rx_accepting(BqnicCore *core, BqnicQueue *q)
{
    return (core->ctrl & BQNIC_CTRL_RX_EN) && core->link_up &&
           (q->rx_ctrl & BQNIC_QCTRL_ENABLE) && !bqnic_queue_stopped(q) &&
           bqnic_bus_master(core);
}

/*
 * Read ahead the posted entries from bq->cons on, up to the end of the ring:
 * one DMA for up to BQNIC_BQ_PREFETCH buffers instead of one each.
 */
static bool bqnic_bq_prefetch(BqnicQueue *q, BqnicRing *bq, int which)
{
    BqnicBqCache *cache = &q->bq_cache[which];
    uint32_t slot = bqnic_ring_slot(bq, bq->cons);
    uint32_t n = MIN(MIN(bqnic_ring_used(bq), bq->size - slot),
                     BQNIC_BQ_PREFETCH);
    uint32_t i;

    cache->count = 0;
    if (!bqnic_dma_read(q, which ? BQNIC_WHERE_LBQ : BQNIC_WHERE_SBQ,
                        bq->base + (uint64_t)slot * BQNIC_BQ_ENTRY_SIZE,
                        cache->addr, n * BQNIC_BQ_ENTRY_SIZE)) {
        return false;
    }
    for (i = 0; i < n; i++) {
        cache->addr[i] = le64_to_cpu(cache->addr[i]);
    }
    cache->first = bq->cons;
    cache->count = n;
    return true;
}

/* Take the next posted buffer of a buffer queue; false on a DMA error. */
static bool bqnic_bq_take(BqnicQueue *q, BqnicRing *bq, int which,
                          uint64_t *addr)
{
    BqnicBqCache *cache = &q->bq_cache[which];

    if (bq->cons - cache->first >= cache->count &&
        !bqnic_bq_prefetch(q, bq, which)) {
        return false;
    }
    *addr = cache->addr[bq->cons - cache->first];
    bq->cons++;
    return true;
}

static bool bqnic_rx_write_cqe(BqnicQueue *q, uint32_t len, uint16_t hdr_len,
                               uint8_t nsbq, uint8_t nlbq, uint16_t sbq_index,
                               uint16_t lbq_index, const BqnicRxInfo *info)
{
    uint8_t cqe[BQNIC_CQE_SIZE] = { 0 };
    uint32_t slot = bqnic_ring_slot(&q->cq, q->cq.prod);
    uint8_t phase = ((q->cq.prod / q->cq.size) & 1) ? 0 : 1;
    dma_addr_t at = q->cq.base + (uint64_t)slot * BQNIC_CQE_SIZE;

    stl_le_p(cqe + BQNIC_CQE_LEN, len);
    stw_le_p(cqe + BQNIC_CQE_HDR_LEN, hdr_len);
    cqe[BQNIC_CQE_NSBQ] = nsbq;
    cqe[BQNIC_CQE_NLBQ] = nlbq;
    stl_le_p(cqe + BQNIC_CQE_RSS_HASH, info->hash);
    stw_le_p(cqe + BQNIC_CQE_FLAGS, info->flags);
    stw_le_p(cqe + BQNIC_CQE_SBQ_INDEX, sbq_index);
    stw_le_p(cqe + BQNIC_CQE_LBQ_INDEX, lbq_index);

    /*
     * The phase byte goes last: it hands the entry to the driver. The body
     * is written with the previous lap's phase, which the slot holds already.
     */
    cqe[BQNIC_CQE_PHASE] = !phase;
    if (!bqnic_dma_write(q, BQNIC_WHERE_CQ, at, cqe, BQNIC_CQE_SIZE) ||
        !bqnic_dma_write(q, BQNIC_WHERE_CQ, at + BQNIC_CQE_PHASE, &phase, 1)) {
        return false;
    }
    trace_bqnic_rx_completion(q->index, q->cq.prod, len, nsbq, nlbq,
                              info->hash);
    q->cq.prod++;
    q->stats.completions++;
    return true;
}

/* After taking buffers, or (short) when a frame found too few of them. */
static void bqnic_rx_check_low(BqnicQueue *q, bool short_of_buffers)
{
    BqnicCore *core = q->core;

    if ((core->ctrl & BQNIC_CTRL_BQ_LOW_IRQ) &&
        (short_of_buffers ||
         bqnic_ring_used(&q->sbq) < core->bq_low_mark ||
         bqnic_ring_used(&q->lbq) < core->bq_low_mark)) {
        bqnic_queue_cause(q, BQNIC_QCAUSE_BQ_LOW);
    }
}

/*
 * rx-nobuf=queue: false while a held frame waits for buffers, so that the net
 * layer queues what follows instead of handing each frame over to be parsed
 * and refused. A change on the queue it waits for (bqnic_rx_kick) retries.
 */
bool bqnic_core_can_receive(BqnicCore *core)
{
    if (core->busy) {
        /*
         * A frame the device's own work made (a synchronous netdev's answer
         * to what it sent, say) waits for that work to end.
         */
        core->rx_flush_wanted = true;
        return false;
    }
    return core->rx_held_queue < 0;
}

/*
 * Returns what the net layer takes as "done with it" for a frame that was
 * delivered or dropped: never 0, which means "hold it, and deliver nothing
 * more until a flush" (a zero-length frame would otherwise wedge reception).
 * 0 only when the frame must wait (rx-nobuf=queue with no buffer posted).
 */
static ssize_t bqnic_rx_done(size_t len)
{
    return len ? len : 1;
}

static ssize_t bqnic_rx_frame(BqnicCore *core, const struct iovec *iov,
                              int iovcnt)
{
    size_t len = iov_size(iov, iovcnt);
    BqnicRxInfo info;
    BqnicQueue *q;
    bool split;
    uint32_t hdr_len, payload, need_sbq, need_lbq, off;
    uint16_t sbq_index, lbq_index;
    uint64_t addr;

    if (len < ETH_HLEN) {
        core->rx_runt++;
        trace_bqnic_rx_drop(0, "runt", len);
        return bqnic_rx_done(len);
    }
    if (len > core->max_frame + 4 || len > BQNIC_FRAME_BUF_SIZE) {
        core->rx_oversize++;
        trace_bqnic_rx_drop(0, "oversize", len);
        return len;
    }
    iov_to_buf(iov, iovcnt, 0, core->rx_frame, len);
    net_rx_pkt_attach_iovec(core->rx_pkt, iov, iovcnt, 0, false);
    net_rx_pkt_set_protocols(core->rx_pkt, iov, iovcnt, 0);
    bqnic_rx_classify(core, &info);
    q = bqnic_rx_queue_for(core, &info);

    if (bqnic_queue_stopped(q)) {
        q->stats.rx_drop_stopped++;
        trace_bqnic_rx_drop(q->index, "stopped", len);
        return len;
    }
    if (!bqnic_rx_accepting(core, q)) {
        q->stats.rx_drop_disabled++;
        trace_bqnic_rx_drop(q->index, "disabled", len);
        return len;
    }

    split = (core->ctrl & BQNIC_CTRL_HDR_SPLIT) && info.l5_offset &&
            len > core->sbq_buf_size && info.l5_offset <= core->sbq_buf_size &&
            info.l5_offset < len;
    if (split) {
        hdr_len = info.l5_offset;
        need_sbq = 1;
    } else {
        need_sbq = len <= core->sbq_buf_size;
        hdr_len = need_sbq ? len : 0;
    }
    payload = len - hdr_len;
    need_lbq = DIV_ROUND_UP(payload, core->lbq_buf_size);

    if (bqnic_ring_used(&q->sbq) < need_sbq ||
        bqnic_ring_used(&q->lbq) < need_lbq ||
        bqnic_ring_used(&q->cq) >= q->cq.size) {
        if (core->rx_nobuf_queue) {
            trace_bqnic_rx_held(q->index, len);
            core->rx_held_queue = q->index;
            if (bqnic_ring_used(&q->cq) < q->cq.size) {
                bqnic_rx_check_low(q, true);
            }
            return 0;
        }
        if (bqnic_ring_used(&q->sbq) < need_sbq) {
            q->stats.rx_drop_no_sbq++;
            trace_bqnic_rx_drop(q->index, "no sbq buffer", len);
        } else if (bqnic_ring_used(&q->lbq) < need_lbq) {
            q->stats.rx_drop_no_lbq++;
            trace_bqnic_rx_drop(q->index, "no lbq buffer", len);
        } else {
            q->stats.rx_drop_cq_full++;
            trace_bqnic_rx_drop(q->index, "cq full", len);
            return len;
        }
        bqnic_rx_check_low(q, true);
        return len;
    }

    sbq_index = bqnic_ring_slot(&q->sbq, q->sbq.cons);
    lbq_index = bqnic_ring_slot(&q->lbq, q->lbq.cons);
    if (need_sbq) {
        if (!bqnic_bq_take(q, &q->sbq, 0, &addr)) {
            return len;
        }
        trace_bqnic_rx_buffer(q->index, bq_name[0], sbq_index, addr, hdr_len);
        if (!bqnic_dma_write(q, BQNIC_WHERE_RX_BUF, addr, core->rx_frame,
                             hdr_len)) {
            return len;
        }
    }
    for (off = hdr_len; off < len; off += core->lbq_buf_size) {
        uint32_t chunk = MIN(core->lbq_buf_size, len - off);
        uint32_t slot = bqnic_ring_slot(&q->lbq, q->lbq.cons);

        if (!bqnic_bq_take(q, &q->lbq, 1, &addr)) {
            return len;
        }
        trace_bqnic_rx_buffer(q->index, bq_name[1], slot, addr, chunk);
        if (!bqnic_dma_write(q, BQNIC_WHERE_RX_BUF, addr,
                             core->rx_frame + off, chunk)) {
            return len;
        }
    }

    if (split) {
        info.flags |= BQNIC_CQE_F_SPLIT;
    }
    if (!bqnic_rx_write_cqe(q, len, hdr_len, need_sbq, need_lbq, sbq_index,
                            lbq_index, &info)) {
        return len;
    }
    q->stats.rx_frames++;
    q->stats.rx_bytes += len;
    if (bqnic_queue_cause(q, BQNIC_QCAUSE_RX)) {
        bqnic_rx_check_low(q, false);
    }
    return len;
}

ssize_t bqnic_core_receive_iov(BqnicCore *core, const struct iovec *iov,
                               int iovcnt)
{
    ssize_t ret;

    if (!bqnic_core_work_begin(core)) {
        /* Delivered inside the device's own work: it waits for its end. */
        core->rx_flush_wanted = true;
        return 0;
    }
    ret = bqnic_rx_frame(core, iov, iovcnt);
    bqnic_core_work_end(core);
    return ret;
}

/*
 * Something changed that may let a held frame in: a doorbell or a consumer
 * index on queue q, or (q NULL) the device, link or bus mastering.
 */
static void bqnic_rx_kick(BqnicCore *core, BqnicQueue *q)
{
    if (core->rx_held_queue < 0 ||
        (q && core->rx_held_queue != (int)q->index)) {
        return;
    }
    core->rx_held_queue = -1;
    bqnic_rx_flush(core);
}

/* Transmit */

/* False on a DMA error or a reset: the queue is no longer ours to touch. */
static bool bqnic_tx_complete(BqnicQueue *q, uint32_t first, uint32_t count)
{
    uint32_t i;

    for (i = 0; i < count; i++) {
        uint32_t slot = bqnic_ring_slot(&q->tx, first + i);
        dma_addr_t at = q->tx.base + (uint64_t)slot * BQNIC_TXD_SIZE +
                        BQNIC_TXD_FLAGS;
        uint16_t flags;

        if (!bqnic_dma_read(q, BQNIC_WHERE_TX, at, &flags, sizeof(flags))) {
            return false;
        }
        flags = cpu_to_le16(le16_to_cpu(flags) | BQNIC_TXD_F_DONE);
        if (!bqnic_dma_write(q, BQNIC_WHERE_TX, at, &flags, sizeof(flags))) {
            return false;
        }
    }
    return true;
}

static void bqnic_tx_checksum(uint8_t *frame, uint32_t len, uint16_t start,
                              uint16_t offset)
{
    uint32_t at = (uint32_t)start + offset;
    uint16_t csum;

    if (start >= len || at + 2 > len) {
        qemu_log_mask(LOG_GUEST_ERROR, "bqnic: tx checksum start %u offset %u"
                      " outside a %u-byte frame\n", start, offset, len);
        return;
    }
    csum = net_checksum_finish_nozero(net_checksum_add(len - start,
                                                       frame + start));
    stw_be_p(frame + at, csum);
}

/*
 * Send the frame that starts at tx.cons.  Returns the number of descriptors
 * it used, or 0 if its last fragment has not been posted yet (or on a DMA
 * error, which stops the queue).
 */
static uint32_t bqnic_tx_one(BqnicQueue *q)
{
    BqnicCore *core = q->core;
    uint32_t generation = core->generation;
    uint32_t avail = bqnic_ring_used(&q->tx);
    uint32_t ndesc = 0, len = 0, limit = core->max_frame + 4;
    uint16_t csum_start = 0, csum_offset = 0;
    bool csum = false, eop = false, bad = false;

    while (!eop) {
        uint8_t d[BQNIC_TXD_SIZE];
        uint32_t slot;
        uint64_t addr;
        uint16_t flen, flags;

        if (ndesc == avail) {
            if (avail < q->tx.size) {
                return 0;       /* EOP not posted yet: wait for the doorbell */
            }
            qemu_log_mask(LOG_GUEST_ERROR, "bqnic: queue %u: a full tx ring"
                          " without EOP (dropped)\n", q->index);
            bad = true;
            break;
        }
        slot = bqnic_ring_slot(&q->tx, q->tx.cons + ndesc);
        if (!bqnic_dma_read(q, BQNIC_WHERE_TX,
                            q->tx.base + (uint64_t)slot * BQNIC_TXD_SIZE,
                            d, sizeof(d))) {
            return 0;
        }
        addr = ldq_le_p(d + BQNIC_TXD_ADDR);
        flen = lduw_le_p(d + BQNIC_TXD_LEN);
        flags = lduw_le_p(d + BQNIC_TXD_FLAGS);
        eop = flags & BQNIC_TXD_F_EOP;
        if (ndesc == 0 && (flags & BQNIC_TXD_F_CSUM)) {
            csum = true;
            csum_start = lduw_le_p(d + BQNIC_TXD_CSUM_START);
            csum_offset = lduw_le_p(d + BQNIC_TXD_CSUM_OFFSET);
        }
        ndesc++;
        if (flen == 0 || ndesc > BQNIC_TX_MAX_FRAGS || len + flen > limit) {
            if (!bad) {
                qemu_log_mask(LOG_GUEST_ERROR, "bqnic: queue %u: bad tx frame"
                              " (fragment %u of %u bytes, %u so far)\n",
                              q->index, ndesc, flen, len);
            }
            bad = true;     /* consume the rest of the frame, send nothing */
            continue;
        }
        if (!bad) {
            if (!bqnic_dma_read(q, BQNIC_WHERE_TX_BUF, addr,
                                core->tx_frame + len, flen)) {
                return 0;
            }
            len += flen;
        }
    }

    trace_bqnic_tx_frame(q->index, q->tx.cons, ndesc, len);
    if (bad) {
        q->stats.tx_errors++;
    } else if (!core->link_up) {
        q->stats.tx_drop_link_down++;
    } else {
        if (csum) {
            bqnic_tx_checksum(core->tx_frame, len, csum_start, csum_offset);
        }
        qemu_send_packet(qemu_get_queue(core->nic), core->tx_frame, len);
        /* The frame went where the netdev sends it, which may reset us. */
        if (core->generation != generation) {
            return 0;
        }
        q->stats.tx_frames++;
        q->stats.tx_bytes += len;
    }
    if (!bqnic_tx_complete(q, q->tx.cons, ndesc)) {
        return 0;
    }
    q->tx.cons += ndesc;
    return ndesc;
}

/* False if the device was reset meanwhile: the caller stops too. */
static bool bqnic_tx_run(BqnicQueue *q)
{
    BqnicCore *core = q->core;
    uint32_t generation = core->generation;
    uint32_t done = 0, used;

    if (!(core->ctrl & BQNIC_CTRL_TX_EN) ||
        !(q->tx_ctrl & BQNIC_QCTRL_ENABLE) || bqnic_queue_stopped(q) ||
        !bqnic_bus_master(core)) {
        return true;
    }
    /* Bounded: at most one pass over the ring per doorbell. */
    while (done < q->tx.size && bqnic_ring_used(&q->tx)) {
        used = bqnic_tx_one(q);
        if (!used) {
            break;
        }
        done += used;
    }
    if (core->generation != generation) {
        return false;
    }
    return !done || bqnic_queue_cause(q, BQNIC_QCAUSE_TX);
}

/* Registers */

static void bqnic_queue_reset(BqnicQueue *q)
{
    timer_del(q->itr_timer);
    q->rx_ctrl = 0;
    q->rx_status = 0;
    q->tx_ctrl = 0;
    q->tx_status = 0;
    memset(&q->cq, 0, sizeof(q->cq));
    memset(&q->sbq, 0, sizeof(q->sbq));
    memset(&q->lbq, 0, sizeof(q->lbq));
    memset(&q->tx, 0, sizeof(q->tx));
    memset(q->bq_cache, 0, sizeof(q->bq_cache));
    q->cause = 0;
    q->mask = BQNIC_QCAUSE_ALL;
    q->reported = 0;
    q->last_irq_ns = INT64_MIN / 2;    /* long ago: the next one fires now */
}

void bqnic_core_reset(BqnicCore *core)
{
    unsigned int i;

    trace_bqnic_reset();
    /* Work this reset interrupted stops at its next check (SPEC 9). */
    core->generation++;
    core->ctrl = 0;
    core->max_frame = BQNIC_DEFAULT_MAX_FRAME;
    core->misc_cause = 0;
    core->misc_mask = BQNIC_MISC_ALL;
    core->misc_reported = 0;
    core->itr = 0;
    core->dma_err = false;
    core->dma_err_addr = 0;
    core->dma_err_where = 0;
    memset(core->rss_key, 0, sizeof(core->rss_key));
    for (i = 0; i < BQNIC_RSS_INDIR_SIZE; i++) {
        core->rss_indir[i] = i % core->num_queues;
    }
    core->sbq_buf_size = BQNIC_DEFAULT_SBQ_BUF;
    core->lbq_buf_size = BQNIC_DEFAULT_LBQ_BUF;
    core->bq_low_mark = BQNIC_DEFAULT_BQ_LOW_MARK;
    for (i = 0; i < core->num_queues; i++) {
        bqnic_queue_reset(&core->queues[i]);
    }
    if (core->nic) {
        NetClientState *nc = qemu_get_queue(core->nic);

        core->mac_lo = ldl_le_p(core->nic->conf->macaddr.a);
        core->mac_hi = lduw_le_p(core->nic->conf->macaddr.a + 4);
        /*
         * Frames held for us (rx-nobuf=queue) wait in our incoming queue,
         * sent by the peer; then let the net layer deliver again.
         */
        if (nc->peer) {
            qemu_purge_queued_packets(nc->peer);
        }
        core->rx_held_queue = -1;
        bqnic_rx_flush(core);
    }
}

void bqnic_core_reset_stats(BqnicCore *core)
{
    unsigned int i;

    for (i = 0; i < core->num_queues; i++) {
        memset(&core->queues[i].stats, 0, sizeof(core->queues[i].stats));
    }
    core->rx_oversize = 0;
    core->rx_runt = 0;
    core->dma_errors = 0;
    core->mmio_reads = 0;
    core->dma_faults_injected = 0;
}

static uint32_t bqnic_status(BqnicCore *core)
{
    uint32_t status = 0;
    unsigned int i;

    if (core->link_up) {
        status |= BQNIC_STATUS_LINK_UP;
    }
    if (core->dma_err) {
        status |= BQNIC_STATUS_DMA_ERR;
    }
    for (i = 0; i < core->num_queues; i++) {
        if (bqnic_queue_stopped(&core->queues[i])) {
            status |= BQNIC_STATUS_QSTOPPED;
        }
    }
    return status;
}

static uint32_t bqnic_queue_read(BqnicQueue *q, hwaddr reg)
{
    switch (reg) {
    case BQNIC_Q_RXQ_CTRL:
        return q->rx_ctrl;
    case BQNIC_Q_RXQ_STATUS:
        return q->rx_status;
    case BQNIC_Q_CQ_BASE_LO:
        return q->cq.base;
    case BQNIC_Q_CQ_BASE_HI:
        return q->cq.base >> 32;
    case BQNIC_Q_CQ_SIZE:
        return q->cq.size;
    case BQNIC_Q_CQ_PROD:
        return q->cq.prod;
    case BQNIC_Q_CQ_CONS:
        return q->cq.cons;
    case BQNIC_Q_SBQ_BASE_LO:
        return q->sbq.base;
    case BQNIC_Q_SBQ_BASE_HI:
        return q->sbq.base >> 32;
    case BQNIC_Q_SBQ_SIZE:
        return q->sbq.size;
    case BQNIC_Q_SBQ_PROD:
        return q->sbq.prod;
    case BQNIC_Q_SBQ_CONS:
        return q->sbq.cons;
    case BQNIC_Q_LBQ_BASE_LO:
        return q->lbq.base;
    case BQNIC_Q_LBQ_BASE_HI:
        return q->lbq.base >> 32;
    case BQNIC_Q_LBQ_SIZE:
        return q->lbq.size;
    case BQNIC_Q_LBQ_PROD:
        return q->lbq.prod;
    case BQNIC_Q_LBQ_CONS:
        return q->lbq.cons;
    case BQNIC_Q_TXQ_CTRL:
        return q->tx_ctrl;
    case BQNIC_Q_TXQ_STATUS:
        return q->tx_status;
    case BQNIC_Q_TX_BASE_LO:
        return q->tx.base;
    case BQNIC_Q_TX_BASE_HI:
        return q->tx.base >> 32;
    case BQNIC_Q_TX_SIZE:
        return q->tx.size;
    case BQNIC_Q_TX_PROD:
        return q->tx.prod;
    case BQNIC_Q_TX_CONS:
        return q->tx.cons;
    case BQNIC_Q_CAUSE:
        return q->cause;
    case BQNIC_Q_MASK:
        return q->mask;
    case BQNIC_Q_DROP_NO_SBQ:
        return q->stats.rx_drop_no_sbq;
    case BQNIC_Q_DROP_NO_LBQ:
        return q->stats.rx_drop_no_lbq;
    case BQNIC_Q_DROP_CQ_FULL:
        return q->stats.rx_drop_cq_full;
    default:
        return 0;
    }
}

uint32_t bqnic_core_read(BqnicCore *core, hwaddr addr)
{
    uint32_t val = 0;

    core->mmio_reads++;

    if (addr >= BQNIC_QREG_BASE) {
        unsigned int qi = (addr - BQNIC_QREG_BASE) / BQNIC_QREG_STRIDE;

        if (qi < core->num_queues) {
            val = bqnic_queue_read(&core->queues[qi],
                                   addr % BQNIC_QREG_STRIDE);
        }
    } else if (addr >= BQNIC_REG_RSS_KEY &&
               addr < BQNIC_REG_RSS_KEY + BQNIC_RSS_KEY_SIZE) {
        val = ldl_le_p(core->rss_key + (addr - BQNIC_REG_RSS_KEY));
    } else if (addr >= BQNIC_REG_RSS_INDIR &&
               addr < BQNIC_REG_RSS_INDIR + BQNIC_RSS_INDIR_SIZE) {
        val = ldl_le_p(core->rss_indir + (addr - BQNIC_REG_RSS_INDIR));
    } else {
        switch (addr) {
        case BQNIC_REG_ID:
            val = BQNIC_ID_VALUE;
            break;
        case BQNIC_REG_VERSION:
            val = BQNIC_VERSION_VALUE;
            break;
        case BQNIC_REG_CTRL:
            val = core->ctrl;
            break;
        case BQNIC_REG_STATUS:
            val = bqnic_status(core);
            break;
        case BQNIC_REG_NUM_QUEUES:
            val = core->num_queues;
            break;
        case BQNIC_REG_MAX_RING:
            val = BQNIC_MAX_RING;
            break;
        case BQNIC_REG_MAC_LO:
            val = core->mac_lo;
            break;
        case BQNIC_REG_MAC_HI:
            val = core->mac_hi;
            break;
        case BQNIC_REG_MAX_FRAME:
            val = core->max_frame;
            break;
        case BQNIC_REG_MISC_CAUSE:
            val = core->misc_cause;
            break;
        case BQNIC_REG_MISC_MASK:
            val = core->misc_mask;
            break;
        case BQNIC_REG_ITR:
            val = core->itr;
            break;
        case BQNIC_REG_DMA_ERR_LO:
            val = core->dma_err_addr;
            break;
        case BQNIC_REG_DMA_ERR_HI:
            val = core->dma_err_addr >> 32;
            break;
        case BQNIC_REG_DMA_ERR_WHERE:
            val = core->dma_err_where;
            break;
        case BQNIC_REG_SBQ_BUF_SIZE:
            val = core->sbq_buf_size;
            break;
        case BQNIC_REG_LBQ_BUF_SIZE:
            val = core->lbq_buf_size;
            break;
        case BQNIC_REG_BQ_LOW_MARK:
            val = core->bq_low_mark;
            break;
        default:
            break;
        }
    }
    trace_bqnic_mmio_read(addr, val);
    return val;
}

static bool bqnic_ring_writable(BqnicQueue *q, bool enabled, const char *what)
{
    if (enabled) {
        qemu_log_mask(LOG_GUEST_ERROR, "bqnic: queue %u: %s changed while"
                      " the ring is enabled (ignored)\n", q->index, what);
        return false;
    }
    return true;
}

static void bqnic_set_base(BqnicQueue *q, BqnicRing *r, bool enabled,
                           bool high, uint32_t val, const char *what)
{
    if (!bqnic_ring_writable(q, enabled, what)) {
        return;
    }
    if (high) {
        r->base = deposit64(r->base, 32, 32, val);
    } else {
        r->base = deposit64(r->base, 0, 32, val);
    }
}

static void bqnic_set_size(BqnicQueue *q, BqnicRing *r, bool enabled,
                           uint32_t val, const char *what)
{
    if (bqnic_ring_writable(q, enabled, what)) {
        r->size = val;      /* validated when the ring is enabled */
    }
}

static bool bqnic_ring_valid(BqnicQueue *q, BqnicRing *r, uint64_t align,
                             const char *what)
{
    if (!bqnic_ring_size_valid(r->size) || (r->base & (align - 1))) {
        qemu_log_mask(LOG_GUEST_ERROR, "bqnic: queue %u: %s base 0x%" PRIx64
                      " size %u invalid; queue not enabled\n", q->index, what,
                      r->base, r->size);
        return false;
    }
    return true;
}

static void bqnic_rx_enable(BqnicQueue *q, uint32_t val)
{
    bool on = val & BQNIC_QCTRL_ENABLE;

    if (on == !!(q->rx_ctrl & BQNIC_QCTRL_ENABLE)) {
        return;
    }
    if (on && (!bqnic_ring_valid(q, &q->cq, 16, "cq") ||
               !bqnic_ring_valid(q, &q->sbq, 8, "sbq") ||
               !bqnic_ring_valid(q, &q->lbq, 8, "lbq"))) {
        return;
    }
    q->cq.prod = q->cq.cons = 0;
    q->sbq.prod = q->sbq.cons = 0;
    q->lbq.prod = q->lbq.cons = 0;
    memset(q->bq_cache, 0, sizeof(q->bq_cache));
    q->rx_ctrl = on ? BQNIC_QCTRL_ENABLE : 0;
}

static void bqnic_tx_enable(BqnicQueue *q, uint32_t val)
{
    bool on = val & BQNIC_QCTRL_ENABLE;

    if (on == !!(q->tx_ctrl & BQNIC_QCTRL_ENABLE)) {
        return;
    }
    if (on && !bqnic_ring_valid(q, &q->tx, 16, "tx")) {
        return;
    }
    q->tx.prod = q->tx.cons = 0;
    q->tx_ctrl = on ? BQNIC_QCTRL_ENABLE : 0;
}

/* A producer may run at most one ring ahead of the consumer. */
static bool bqnic_index_ok(BqnicQueue *q, BqnicRing *r, uint32_t prod,
                           uint32_t cons, bool enabled, const char *what)
{
    if (!enabled) {
        qemu_log_mask(LOG_GUEST_ERROR, "bqnic: queue %u: %s index write while"
                      " the ring is disabled (ignored)\n", q->index, what);
        return false;
    }
    if (prod - cons > r->size) {
        qemu_log_mask(LOG_GUEST_ERROR, "bqnic: queue %u: %s index %u out of"
                      " range (producer %u, consumer %u, size %u; ignored)\n",
                      q->index, what, prod == r->prod ? cons : prod, prod, cons,
                      r->size);
        return false;
    }
    return true;
}

/*
 * A producer may run at most one ring ahead of the consumer, and never moves
 * back (SPEC 4.1): what it posted is the device's until completed or reset.
 */
static bool bqnic_producer_ok(BqnicQueue *q, BqnicRing *r, uint32_t prod,
                              bool enabled, const char *what)
{
    if (enabled && prod - r->cons < r->prod - r->cons) {
        qemu_log_mask(LOG_GUEST_ERROR, "bqnic: queue %u: %s producer moved"
                      " back from %u to %u (consumer %u; ignored)\n",
                      q->index, what, r->prod, prod, r->cons);
        return false;
    }
    return bqnic_index_ok(q, r, prod, r->cons, enabled, what);
}

static void bqnic_bq_doorbell(BqnicQueue *q, int which, uint32_t val)
{
    BqnicRing *bq = which ? &q->lbq : &q->sbq;
    bool enabled = q->rx_ctrl & BQNIC_QCTRL_ENABLE;

    if (!bqnic_producer_ok(q, bq, val, enabled, bq_name[which])) {
        return;
    }
    bq->prod = val;
    trace_bqnic_bq_doorbell(q->index, bq_name[which], bq->prod, bq->cons);
    bqnic_rx_kick(q->core, q);
}

static void bqnic_queue_write(BqnicQueue *q, hwaddr reg, uint32_t val)
{
    bool rx_on = q->rx_ctrl & BQNIC_QCTRL_ENABLE;
    bool tx_on = q->tx_ctrl & BQNIC_QCTRL_ENABLE;

    switch (reg) {
    case BQNIC_Q_RXQ_CTRL:
        bqnic_rx_enable(q, val);
        break;
    case BQNIC_Q_CQ_BASE_LO:
    case BQNIC_Q_CQ_BASE_HI:
        bqnic_set_base(q, &q->cq, rx_on, reg == BQNIC_Q_CQ_BASE_HI, val, "cq");
        break;
    case BQNIC_Q_CQ_SIZE:
        bqnic_set_size(q, &q->cq, rx_on, val, "cq size");
        break;
    case BQNIC_Q_CQ_CONS:
    case BQNIC_Q_CQ_ARM:
        if (!bqnic_index_ok(q, &q->cq, q->cq.prod, val, rx_on,
                            "cq consumer")) {
            break;
        }
        q->cq.cons = val;
        /* A cause that became pending while masked fires now. */
        if (reg == BQNIC_Q_CQ_ARM) {
            q->mask = 0;
            if (!bqnic_queue_irq(q)) {
                break;
            }
        }
        bqnic_rx_kick(q->core, q);
        break;
    case BQNIC_Q_SBQ_BASE_LO:
    case BQNIC_Q_SBQ_BASE_HI:
        bqnic_set_base(q, &q->sbq, rx_on, reg == BQNIC_Q_SBQ_BASE_HI, val,
                       "sbq");
        break;
    case BQNIC_Q_SBQ_SIZE:
        bqnic_set_size(q, &q->sbq, rx_on, val, "sbq size");
        break;
    case BQNIC_Q_SBQ_PROD:
        bqnic_bq_doorbell(q, 0, val);
        break;
    case BQNIC_Q_LBQ_BASE_LO:
    case BQNIC_Q_LBQ_BASE_HI:
        bqnic_set_base(q, &q->lbq, rx_on, reg == BQNIC_Q_LBQ_BASE_HI, val,
                       "lbq");
        break;
    case BQNIC_Q_LBQ_SIZE:
        bqnic_set_size(q, &q->lbq, rx_on, val, "lbq size");
        break;
    case BQNIC_Q_LBQ_PROD:
        bqnic_bq_doorbell(q, 1, val);
        break;
    case BQNIC_Q_TXQ_CTRL:
        bqnic_tx_enable(q, val);
        break;
    case BQNIC_Q_TX_BASE_LO:
    case BQNIC_Q_TX_BASE_HI:
        bqnic_set_base(q, &q->tx, tx_on, reg == BQNIC_Q_TX_BASE_HI, val, "tx");
        break;
    case BQNIC_Q_TX_SIZE:
        bqnic_set_size(q, &q->tx, tx_on, val, "tx size");
        break;
    case BQNIC_Q_TX_PROD:
        if (bqnic_producer_ok(q, &q->tx, val, tx_on, "tx")) {
            q->tx.prod = val;
            trace_bqnic_tx_doorbell(q->index, q->tx.prod, q->tx.cons);
            bqnic_tx_run(q);
        }
        break;
    case BQNIC_Q_CAUSE:
        q->cause &= ~val;
        q->reported &= q->cause;
        break;
    case BQNIC_Q_MASK:
        q->mask = val & BQNIC_QCAUSE_ALL;
        bqnic_queue_irq(q);     /* unmasking an unreported cause fires now */
        break;
    default:
        qemu_log_mask(LOG_GUEST_ERROR, "bqnic: queue %u: write 0x%x to"
                      " read-only or unknown register +0x%" HWADDR_PRIx "\n",
                      q->index, val, reg);
        break;
    }
}

static void bqnic_ctrl_write(BqnicCore *core, uint32_t val)
{
    unsigned int i;

    if (val & BQNIC_CTRL_RESET) {
        bqnic_core_reset(core);
        return;
    }
    core->ctrl = val & BQNIC_CTRL_MASK;
    if (core->ctrl & BQNIC_CTRL_TX_EN) {
        for (i = 0; i < core->num_queues; i++) {
            if (!bqnic_tx_run(&core->queues[i])) {
                return;
            }
        }
    }
    bqnic_rx_kick(core, NULL);
}

static void bqnic_set_bounded(uint32_t *reg, uint32_t val, uint32_t min,
                              uint32_t max, uint32_t multiple, const char *what)
{
    if (val < min || val > max || val % multiple) {
        qemu_log_mask(LOG_GUEST_ERROR, "bqnic: %s %u invalid (%u..%u, multiple"
                      " of %u; ignored)\n", what, val, min, max, multiple);
        return;
    }
    *reg = val;
}

void bqnic_core_write(BqnicCore *core, hwaddr addr, uint32_t val)
{
    trace_bqnic_mmio_write(addr, val);
    if (addr >= BQNIC_QREG_BASE) {
        unsigned int qi = (addr - BQNIC_QREG_BASE) / BQNIC_QREG_STRIDE;

        if (qi < core->num_queues) {
            bqnic_queue_write(&core->queues[qi], addr % BQNIC_QREG_STRIDE,
                              val);
        } else {
            qemu_log_mask(LOG_GUEST_ERROR, "bqnic: write to queue %u of %u\n",
                          qi, core->num_queues);
        }
        return;
    }
    if (addr >= BQNIC_REG_RSS_KEY &&
        addr < BQNIC_REG_RSS_KEY + BQNIC_RSS_KEY_SIZE) {
        stl_le_p(core->rss_key + (addr - BQNIC_REG_RSS_KEY), val);
        return;
    }
    if (addr >= BQNIC_REG_RSS_INDIR &&
        addr < BQNIC_REG_RSS_INDIR + BQNIC_RSS_INDIR_SIZE) {
        stl_le_p(core->rss_indir + (addr - BQNIC_REG_RSS_INDIR), val);
        return;
    }
    switch (addr) {
    case BQNIC_REG_CTRL:
        bqnic_ctrl_write(core, val);
        break;
    case BQNIC_REG_MAC_LO:
        core->mac_lo = val;
        break;
    case BQNIC_REG_MAC_HI:
        core->mac_hi = val & 0xffff;
        break;
    case BQNIC_REG_MAX_FRAME:
        bqnic_set_bounded(&core->max_frame, val, BQNIC_MIN_FRAME_LIMIT,
                          BQNIC_MAX_FRAME_LIMIT, 1, "max frame");
        break;
    case BQNIC_REG_MISC_CAUSE:
        core->misc_cause &= ~val;
        core->misc_reported &= core->misc_cause;
        break;
    case BQNIC_REG_MISC_MASK:
        core->misc_mask = val & BQNIC_MISC_ALL;
        bqnic_misc_irq(core);   /* unmasking an unreported cause fires now */
        break;
    case BQNIC_REG_ITR:
        core->itr = val & 0xffff;
        bqnic_itr_changed(core);
        break;
    case BQNIC_REG_SBQ_BUF_SIZE:
        bqnic_set_bounded(&core->sbq_buf_size, val, 64, 4096, 64,
                          "sbq buffer size");
        break;
    case BQNIC_REG_LBQ_BUF_SIZE:
        bqnic_set_bounded(&core->lbq_buf_size, val, 1024, 65536, 1024,
                          "lbq buffer size");
        break;
    case BQNIC_REG_BQ_LOW_MARK:
        core->bq_low_mark = MIN(val, BQNIC_MAX_RING);
        break;
    default:
        qemu_log_mask(LOG_GUEST_ERROR, "bqnic: write 0x%x to read-only or"
                      " unknown register 0x%" HWADDR_PRIx "\n", val, addr);
        break;
    }
}

void bqnic_core_set_link(BqnicCore *core, bool up)
{
    if (core->link_up == up) {
        return;
    }
    trace_bqnic_link(up);
    core->link_up = up;
    /* From QMP set_link, which never runs inside device work. */
    if (!bqnic_core_work_begin(core)) {
        return;
    }
    if (bqnic_misc_cause(core, BQNIC_MISC_LINK) && up) {
        bqnic_rx_kick(core, NULL);
    }
    bqnic_core_work_end(core);
}

/*
 * From a PCI config write that turned bus mastering on (bqnic.c, inside
 * bqnic_core_work_begin/end): start what waited for it.
 */
void bqnic_core_bus_master_on(BqnicCore *core)
{
    unsigned int i;

    if (!bqnic_bus_master(core)) {
        return;
    }
    for (i = 0; i < core->num_queues; i++) {
        if (!bqnic_tx_run(&core->queues[i])) {
            return;
        }
    }
    bqnic_rx_kick(core, NULL);
}

/* Migration (SPEC 12) */

static const VMStateDescription bqnic_vmstate_ring = {
    .name = "bqnic/ring",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT64(base, BqnicRing),
        VMSTATE_UINT32(size, BqnicRing),
        VMSTATE_UINT32(prod, BqnicRing),
        VMSTATE_UINT32(cons, BqnicRing),
        VMSTATE_END_OF_LIST()
    }
};

static const VMStateDescription bqnic_vmstate_bq_cache = {
    .name = "bqnic/bq-cache",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT64_ARRAY(addr, BqnicBqCache, BQNIC_BQ_PREFETCH),
        VMSTATE_UINT32(first, BqnicBqCache),
        VMSTATE_UINT32(count, BqnicBqCache),
        VMSTATE_END_OF_LIST()
    }
};

static const VMStateDescription bqnic_vmstate_stats = {
    .name = "bqnic/stats",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT64(rx_frames, BqnicQueueStats),
        VMSTATE_UINT64(rx_bytes, BqnicQueueStats),
        VMSTATE_UINT64(rx_drop_no_sbq, BqnicQueueStats),
        VMSTATE_UINT64(rx_drop_no_lbq, BqnicQueueStats),
        VMSTATE_UINT64(rx_drop_cq_full, BqnicQueueStats),
        VMSTATE_UINT64(rx_drop_disabled, BqnicQueueStats),
        VMSTATE_UINT64(completions, BqnicQueueStats),
        VMSTATE_UINT64(interrupts, BqnicQueueStats),
        VMSTATE_UINT64(tx_frames, BqnicQueueStats),
        VMSTATE_UINT64(tx_bytes, BqnicQueueStats),
        VMSTATE_UINT64(tx_errors, BqnicQueueStats),
        VMSTATE_UINT64(tx_drop_link_down, BqnicQueueStats),
        VMSTATE_UINT64(rx_drop_stopped, BqnicQueueStats),
        VMSTATE_END_OF_LIST()
    }
};

/* Only while a reported cause is still set; absent, none is (pre_load). */
static bool bqnic_queue_reported_needed(void *opaque)
{
    BqnicQueue *q = opaque;

    return q->reported != 0;
}

static const VMStateDescription bqnic_vmstate_queue_reported = {
    .name = "bqnic/queue/reported",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = bqnic_queue_reported_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(reported, BqnicQueue),
        VMSTATE_END_OF_LIST()
    }
};

static const VMStateDescription bqnic_vmstate_queue = {
    .name = "bqnic/queue",
    .version_id = 1,
    .minimum_version_id = 1,
    .subsections = (const VMStateDescription * const []) {
        &bqnic_vmstate_queue_reported,
        NULL
    },
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(rx_ctrl, BqnicQueue),
        VMSTATE_UINT32(rx_status, BqnicQueue),
        VMSTATE_UINT32(tx_ctrl, BqnicQueue),
        VMSTATE_UINT32(tx_status, BqnicQueue),
        VMSTATE_STRUCT(cq, BqnicQueue, 1, bqnic_vmstate_ring, BqnicRing),
        VMSTATE_STRUCT(sbq, BqnicQueue, 1, bqnic_vmstate_ring, BqnicRing),
        VMSTATE_STRUCT(lbq, BqnicQueue, 1, bqnic_vmstate_ring, BqnicRing),
        VMSTATE_STRUCT(tx, BqnicQueue, 1, bqnic_vmstate_ring, BqnicRing),
        VMSTATE_STRUCT_ARRAY(bq_cache, BqnicQueue, 2, 1,
                             bqnic_vmstate_bq_cache, BqnicBqCache),
        VMSTATE_UINT32(cause, BqnicQueue),
        VMSTATE_UINT32(mask, BqnicQueue),
        VMSTATE_TIMER_PTR(itr_timer, BqnicQueue),
        VMSTATE_INT64(last_irq_ns, BqnicQueue),
        VMSTATE_STRUCT(stats, BqnicQueue, 1, bqnic_vmstate_stats,
                       BqnicQueueStats),
        VMSTATE_END_OF_LIST()
    }
};

/*
 * A ring as the registers could have left it: a valid size and alignment
 * while enabled (bqnic_rx_enable/bqnic_tx_enable), and never more posted
 * than it holds (bqnic_index_ok). A disabled ring is not used until it is
 * enabled again, which checks it and starts it empty.
 */
static bool bqnic_ring_loadable(const BqnicRing *r, bool enabled,
                                uint64_t align)
{
    if (!enabled) {
        return true;
    }
    return bqnic_ring_size_valid(r->size) && !(r->base & (align - 1)) &&
           r->prod - r->cons <= r->size;
}

/*
 * The read-ahead as bqnic_bq_prefetch could have left it: entries of the
 * ring from `first` on, none past its end or beyond the producer, and the
 * consumer inside them or just after (SPEC 4.1, 6.2).
 */
static bool bqnic_bq_cache_loadable(const BqnicRing *bq,
                                    const BqnicBqCache *cache, bool enabled)
{
    if (cache->count > BQNIC_BQ_PREFETCH) {
        return false;
    }
    if (!cache->count) {
        return true;
    }
    return enabled && bq->cons - cache->first <= cache->count &&
           cache->first + cache->count - bq->cons <= bqnic_ring_used(bq) &&
           bqnic_ring_slot(bq, cache->first) + cache->count <= bq->size;
}

/* Causes, masks and status words hold only bits a register write could set */
static bool bqnic_queue_bits_loadable(const BqnicQueue *q)
{
    return !(q->cause & ~BQNIC_QCAUSE_ALL) && !(q->mask & ~BQNIC_QCAUSE_ALL) &&
           !(q->reported & ~q->cause) &&
           !(q->rx_status & ~BQNIC_QSTATUS_STOPPED) &&
           !(q->tx_status & ~BQNIC_QSTATUS_STOPPED) &&
           !(q->rx_ctrl & ~BQNIC_QCTRL_ENABLE) &&
           !(q->tx_ctrl & ~BQNIC_QCTRL_ENABLE);
}

static bool bqnic_misc_reported_needed(void *opaque)
{
    BqnicCore *core = opaque;

    return core->misc_reported != 0;
}

static const VMStateDescription bqnic_vmstate_misc_reported = {
    .name = "bqnic/core/misc-reported",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = bqnic_misc_reported_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(misc_reported, BqnicCore),
        VMSTATE_END_OF_LIST()
    }
};

/* A stream without the "reported" subsections reported nothing still set. */
static int bqnic_core_pre_load(void *opaque)
{
    BqnicCore *core = opaque;
    unsigned int i;

    core->misc_reported = 0;
    for (i = 0; i < core->num_queues; i++) {
        core->queues[i].reported = 0;
    }
    return 0;
}

static int bqnic_core_post_load(void *opaque, int version_id)
{
    BqnicCore *core = opaque;
    unsigned int i, b;

    /*
     * Everything the registers bound, checked again: the stream is as
     * untrusted as the guest that wrote the state into it.
     */
    if (core->max_frame < BQNIC_MIN_FRAME_LIMIT ||
        core->max_frame > BQNIC_MAX_FRAME_LIMIT ||
        core->sbq_buf_size < 64 || core->sbq_buf_size > 4096 ||
        core->sbq_buf_size % 64 || core->lbq_buf_size < 1024 ||
        core->lbq_buf_size > 65536 || core->lbq_buf_size % 1024 ||
        core->bq_low_mark > BQNIC_MAX_RING || core->itr > 0xffff ||
        (core->ctrl & ~BQNIC_CTRL_MASK) || core->mac_hi > 0xffff ||
        (core->misc_mask & ~BQNIC_MISC_ALL) ||
        (core->misc_cause & ~BQNIC_MISC_ALL) ||
        (core->misc_reported & ~core->misc_cause) ||
        (core->dma_err_where & ~0xfffu) ||
        (core->dma_err_where >> 8) > BQNIC_WHERE_TX_BUF ||
        (core->dma_err_where & 0xff) >= core->num_queues) {
        error_report("bqnic: migrated device registers out of range");
        return -EINVAL;
    }
    for (i = 0; i < core->num_queues; i++) {
        BqnicQueue *q = &core->queues[i];
        bool rx_on = q->rx_ctrl & BQNIC_QCTRL_ENABLE;
        bool tx_on = q->tx_ctrl & BQNIC_QCTRL_ENABLE;

        if (!bqnic_queue_bits_loadable(q)) {
            error_report("bqnic: migrated queue %u: cause, mask or status "
                         "bits a register write cannot set", i);
            return -EINVAL;
        }
        if (!bqnic_ring_loadable(&q->cq, rx_on, 16) ||
            !bqnic_ring_loadable(&q->sbq, rx_on, 8) ||
            !bqnic_ring_loadable(&q->lbq, rx_on, 8) ||
            !bqnic_ring_loadable(&q->tx, tx_on, 16)) {
            error_report("bqnic: migrated queue %u: rings out of range", i);
            return -EINVAL;
        }
        for (b = 0; b < ARRAY_SIZE(q->bq_cache); b++) {
            const BqnicBqCache *cache = &q->bq_cache[b];

            if (!bqnic_bq_cache_loadable(b ? &q->lbq : &q->sbq, cache,
                                         rx_on)) {
                error_report("bqnic: migrated queue %u: %s read-ahead of %u "
                             "from %u is not what the ring posted", i,
                             bq_name[b], cache->count, cache->first);
                return -EINVAL;
            }
        }
    }
    for (i = 0; i < core->num_queues; i++) {
        BqnicQueue *q = &core->queues[i];

        /* Moderation adds at most 65535 us to it: keep that from overflowing */
        q->last_irq_ns = MIN(MAX(q->last_irq_ns, INT64_MIN / 2), INT64_MAX / 2);
    }
    /*
     * A frame held back for a queue (rx-nobuf=queue) waits in the net
     * layer, which is not migrated: it is gone, like one on the wire.
     */
    core->rx_held_queue = -1;
    qemu_get_queue(core->nic)->link_down = !core->link_up;
    return 0;
}

const VMStateDescription bqnic_vmstate_core = {
    .name = "bqnic/core",
    .version_id = 1,
    .minimum_version_id = 1,
    .pre_load = bqnic_core_pre_load,
    .post_load = bqnic_core_post_load,
    .subsections = (const VMStateDescription * const []) {
        &bqnic_vmstate_misc_reported,
        NULL
    },
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(ctrl, BqnicCore),
        VMSTATE_UINT32(mac_lo, BqnicCore),
        VMSTATE_UINT32(mac_hi, BqnicCore),
        VMSTATE_UINT32(max_frame, BqnicCore),
        VMSTATE_UINT32(misc_cause, BqnicCore),
        VMSTATE_UINT32(misc_mask, BqnicCore),
        VMSTATE_UINT32(itr, BqnicCore),
        VMSTATE_UINT64(dma_err_addr, BqnicCore),
        VMSTATE_UINT32(dma_err_where, BqnicCore),
        VMSTATE_BOOL(dma_err, BqnicCore),
        VMSTATE_BOOL(link_up, BqnicCore),
        VMSTATE_UINT8_ARRAY(rss_key, BqnicCore, BQNIC_RSS_KEY_SIZE),
        VMSTATE_UINT8_ARRAY(rss_indir, BqnicCore, BQNIC_RSS_INDIR_SIZE),
        VMSTATE_UINT32(sbq_buf_size, BqnicCore),
        VMSTATE_UINT32(lbq_buf_size, BqnicCore),
        VMSTATE_UINT32(bq_low_mark, BqnicCore),
        VMSTATE_STRUCT_VARRAY_UINT32(queues, BqnicCore, num_queues, 1,
                                     bqnic_vmstate_queue, BqnicQueue),
        VMSTATE_UINT64(rx_oversize, BqnicCore),
        VMSTATE_UINT64(rx_runt, BqnicCore),
        VMSTATE_UINT64(dma_errors, BqnicCore),
        VMSTATE_UINT64(mmio_reads, BqnicCore),
        VMSTATE_UINT64(dma_faults_injected, BqnicCore),
        VMSTATE_END_OF_LIST()
    }
};

void bqnic_core_realize(BqnicCore *core, PCIDevice *owner, NICState *nic,
                        unsigned int num_queues, bool rx_nobuf_queue)
{
    unsigned int i;

    core->owner = owner;
    core->nic = nic;
    core->num_queues = num_queues;
    core->rx_nobuf_queue = rx_nobuf_queue;
    core->rx_held_queue = -1;
    core->link_up = !qemu_get_queue(nic)->link_down;
    core->rx_frame = g_malloc(BQNIC_FRAME_BUF_SIZE);
    core->tx_frame = g_malloc(BQNIC_FRAME_BUF_SIZE);
    net_rx_pkt_init(&core->rx_pkt);
    for (i = 0; i < num_queues; i++) {
        core->queues[i].core = core;
        core->queues[i].index = i;
        core->queues[i].itr_timer = timer_new_ns(QEMU_CLOCK_VIRTUAL,
                                                 bqnic_itr_timer,
                                                 &core->queues[i]);
    }
    bqnic_core_reset(core);
}

void bqnic_core_unrealize(BqnicCore *core)
{
    unsigned int i;

    for (i = 0; i < core->num_queues; i++) {
        timer_free(core->queues[i].itr_timer);
    }
    net_rx_pkt_uninit(core->rx_pkt);
    g_free(core->rx_frame);
    g_free(core->tx_frame);
}
