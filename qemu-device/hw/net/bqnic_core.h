/*
 * bqnic: rings, receive, transmit and interrupts (the PCI glue is bqnic.c)
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_NET_BQNIC_CORE_H
#define HW_NET_BQNIC_CORE_H

#include "bqnic_regs.h"

typedef struct BqnicCore BqnicCore;

typedef struct BqnicRing {
    uint64_t base;
    uint32_t size;      /* entries; a power of two once the ring is enabled */
    uint32_t prod;      /* free-running producer index */
    uint32_t cons;      /* free-running consumer index */
} BqnicRing;

/*
 * Buffer queue entries read ahead in one DMA: entries [first, first + count)
 * of the ring, all posted by the driver and not yet taken.
 */
#define BQNIC_BQ_PREFETCH   16

typedef struct BqnicBqCache {
    uint64_t addr[BQNIC_BQ_PREFETCH];
    uint32_t first;
    uint32_t count;
} BqnicBqCache;

typedef struct BqnicQueueStats {
    uint64_t rx_frames;
    uint64_t rx_bytes;
    uint64_t rx_drop_no_sbq;
    uint64_t rx_drop_no_lbq;
    uint64_t rx_drop_cq_full;
    uint64_t rx_drop_disabled;
    uint64_t completions;
    uint64_t interrupts;
    uint64_t tx_frames;
    uint64_t tx_bytes;
    uint64_t tx_errors;
    uint64_t tx_drop_link_down;
    uint64_t rx_drop_stopped;   /* for a queue a DMA error stopped */
} BqnicQueueStats;

typedef struct BqnicQueue {
    BqnicCore *core;
    unsigned int index;
    uint32_t rx_ctrl;
    uint32_t rx_status;
    uint32_t tx_ctrl;
    uint32_t tx_status;
    BqnicRing cq;
    BqnicRing sbq;
    BqnicRing lbq;
    BqnicRing tx;
    BqnicBqCache bq_cache[2];   /* sbq, lbq */
    uint32_t cause;
    uint32_t mask;
    uint32_t reported;          /* causes a message reported, still set */
    QEMUTimer *itr_timer;
    int64_t last_irq_ns;
    BqnicQueueStats stats;
} BqnicQueue;

struct BqnicCore {
    PCIDevice *owner;
    NICState *nic;
    uint32_t num_queues;
    bool rx_nobuf_queue;        /* rx-nobuf=queue: hold frames, don't drop */
    int rx_held_queue;          /* queue a held frame waits for, or -1 */
    bool link_up;
    /*
     * Device work in progress (a register access, a frame, a timer, a PCI
     * config write): what it emits (DMA, MSI-X) cannot start more work.
     * A reset bumps the generation: work that sees it change stops there.
     */
    bool busy;
    bool guard_taken;           /* busy engaged the re-entrancy guard */
    bool rx_flush_wanted;       /* deliver held frames once the work ends */
    uint32_t generation;

    uint32_t ctrl;
    uint32_t mac_lo;
    uint32_t mac_hi;
    uint32_t max_frame;
    uint32_t misc_cause;
    uint32_t misc_mask;
    uint32_t misc_reported;
    uint32_t itr;
    uint64_t dma_err_addr;
    uint32_t dma_err_where;
    bool dma_err;
    /* net_toeplitz_key_init() loads its first 32 bits as a uint32_t */
    uint8_t rss_key[BQNIC_RSS_KEY_SIZE] QEMU_ALIGNED(8);
    uint8_t rss_indir[BQNIC_RSS_INDIR_SIZE];
    uint32_t sbq_buf_size;
    uint32_t lbq_buf_size;
    uint32_t bq_low_mark;

    BqnicQueue queues[BQNIC_MAX_QUEUES];
    struct NetRxPkt *rx_pkt;
    uint8_t *rx_frame;          /* linear copy of the frame being received */
    uint8_t *tx_frame;          /* frame being assembled from tx fragments */

    /* host-side counters that are not per queue */
    uint64_t rx_oversize;
    uint64_t rx_runt;
    uint64_t dma_errors;
    uint64_t mmio_reads;        /* register reads by the guest */
    uint64_t dma_faults_injected;   /* of dma_errors, those fail_dma made */

    /* host-side fault injection (SPEC 7.1): the next fail_dma transfers fail */
    uint32_t fail_dma;
};

extern const VMStateDescription bqnic_vmstate_core;

void bqnic_core_realize(BqnicCore *core, PCIDevice *owner, NICState *nic,
                        unsigned int num_queues, bool rx_nobuf_queue);
void bqnic_core_unrealize(BqnicCore *core);
void bqnic_core_reset(BqnicCore *core);
void bqnic_core_reset_stats(BqnicCore *core);

uint32_t bqnic_core_read(BqnicCore *core, hwaddr addr);
void bqnic_core_write(BqnicCore *core, hwaddr addr, uint32_t val);

ssize_t bqnic_core_receive_iov(BqnicCore *core, const struct iovec *iov,
                               int iovcnt);
bool bqnic_core_can_receive(BqnicCore *core);
bool bqnic_core_work_begin(BqnicCore *core);
void bqnic_core_work_end(BqnicCore *core);
void bqnic_core_bus_master_on(BqnicCore *core);
void bqnic_core_set_link(BqnicCore *core, bool up);

static inline uint32_t bqnic_ring_used(const BqnicRing *r)
{
    return r->prod - r->cons;
}

#endif
