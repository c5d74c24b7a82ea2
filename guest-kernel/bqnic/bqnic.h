/* SPDX-License-Identifier: GPL-2.0 */
/*
 * bqnic: driver for the bqlab QEMU NIC with small/large rx buffer queues.
 * Registers and layouts: qemu-device/SPEC.md in bqlab.
 */

#ifndef _BQNIC_H_
#define _BQNIC_H_

#include <linux/netdevice.h>
#include <linux/pci.h>
#include <linux/u64_stats_sync.h>
#include <linux/workqueue.h>
#include <net/page_pool/types.h>
#include <net/xdp.h>

#define BQNIC_VENDOR_ID		0x1af4
#define BQNIC_DEVICE_ID		0x10f0

#define BQNIC_MAX_QUEUES	8
#define BQNIC_MIN_RING		8
#define BQNIC_MAX_RING		4096

/* Global registers */
#define BQNIC_REG_ID		0x000
#define BQNIC_REG_CTRL		0x008
#define BQNIC_REG_STATUS	0x00c
#define BQNIC_REG_NUM_QUEUES	0x010
#define BQNIC_REG_MAC_LO	0x018
#define BQNIC_REG_MAC_HI	0x01c
#define BQNIC_REG_MAX_FRAME	0x020
#define BQNIC_REG_MISC_CAUSE	0x024
#define BQNIC_REG_MISC_MASK	0x028
#define BQNIC_REG_ITR		0x02c
#define BQNIC_REG_RSS_KEY	0x040
#define BQNIC_REG_RSS_INDIR	0x080
#define BQNIC_RSS_KEY_SIZE	40
#define BQNIC_RSS_INDIR_SIZE	128
#define BQNIC_REG_SBQ_BUF_SIZE	0x100
#define BQNIC_REG_LBQ_BUF_SIZE	0x104

#define BQNIC_ID_VALUE		0x62716e63

#define BQNIC_CTRL_RESET	BIT(0)
#define BQNIC_CTRL_RX_EN	BIT(1)
#define BQNIC_CTRL_TX_EN	BIT(2)
#define BQNIC_CTRL_RSS_EN	BIT(4)
#define BQNIC_CTRL_RX_CSUM	BIT(6)
#define BQNIC_CTRL_IRQ_AUTO	BIT(7)	/* a queue's message masks it */

#define BQNIC_STATUS_LINK_UP	BIT(0)
#define BQNIC_STATUS_DMA_ERR	BIT(1)	/* a DMA failed since reset */
#define BQNIC_STATUS_QSTOPPED	BIT(2)	/* a queue is stopped until reset */
#define BQNIC_MISC_LINK		BIT(0)
#define BQNIC_MISC_DMA_ERR	BIT(1)

/* Per queue pair registers */
#define BQNIC_Q(q, reg)		(0x1000 + (q) * 0x100 + (reg))
#define BQNIC_Q_RXQ_CTRL	0x00
#define BQNIC_Q_CQ_BASE_LO	0x08
#define BQNIC_Q_CQ_BASE_HI	0x0c
#define BQNIC_Q_CQ_SIZE		0x10
#define BQNIC_Q_CQ_CONS		0x18
#define BQNIC_Q_CQ_ARM		0x1c	/* CQ_CONS, then unmask the queue */
#define BQNIC_Q_SBQ_BASE_LO	0x20
#define BQNIC_Q_SBQ_BASE_HI	0x24
#define BQNIC_Q_SBQ_SIZE	0x28
#define BQNIC_Q_SBQ_PROD	0x2c
#define BQNIC_Q_LBQ_BASE_LO	0x40
#define BQNIC_Q_LBQ_BASE_HI	0x44
#define BQNIC_Q_LBQ_SIZE	0x48
#define BQNIC_Q_LBQ_PROD	0x4c
#define BQNIC_Q_TXQ_CTRL	0x60
#define BQNIC_Q_TX_BASE_LO	0x68
#define BQNIC_Q_TX_BASE_HI	0x6c
#define BQNIC_Q_TX_SIZE		0x70
#define BQNIC_Q_TX_PROD		0x74
#define BQNIC_Q_TX_CONS		0x78
#define BQNIC_Q_CAUSE		0x80
#define BQNIC_Q_MASK		0x84
#define BQNIC_Q_DROP_NO_SBQ	0x88
#define BQNIC_Q_DROP_NO_LBQ	0x8c
#define BQNIC_Q_DROP_CQ_FULL	0x90

#define BQNIC_QCAUSE_ALL	0x7

/* Completion entry, 32 bytes */
struct bqnic_cqe {
	__le32 len;
	__le16 hdr_len;
	u8 nsbq;
	u8 nlbq;
	__le32 rss_hash;
	__le16 flags;
	u8 rsvd;
	u8 phase;
	__le16 sbq_index;
	__le16 lbq_index;
	__le32 rsvd2[3];
};

#define BQNIC_CQE_F_RSS		BIT(0)
#define BQNIC_CQE_F_L4_CSUM_OK	BIT(3)
#define BQNIC_CQE_F_TCP		BIT(7)
#define BQNIC_CQE_F_UDP		BIT(8)

/* TX descriptor, 16 bytes */
struct bqnic_txd {
	__le64 addr;
	__le16 len;
	__le16 flags;
	__le16 csum_start;
	__le16 csum_offset;
};

#define BQNIC_TXD_EOP		BIT(0)
#define BQNIC_TXD_CSUM		BIT(1)
#define BQNIC_TXD_DONE		BIT(15)	/* written by the device */
#define BQNIC_TX_MAX_FRAGS	16

/* Buffers: whole pool pages, the device writes after XDP_PACKET_HEADROOM. */
#define BQNIC_HEADROOM		XDP_PACKET_HEADROOM
#define BQNIC_SBQ_BUF_SIZE	256
#define BQNIC_LBQ_BUF_SIZE	3072
#define BQNIC_MAX_MTU		9000

struct bqnic_rx_buf {
	struct page *page;
};

/* A buffer queue: sbq or lbq */
struct bqnic_bq {
	__le64 *ring;
	dma_addr_t ring_dma;
	struct bqnic_rx_buf *bufs;
	u32 size;
	u32 prod;		/* posted to the device */
	u32 cons;		/* returned by completions */
	u32 reg_prod;		/* doorbell register */
};

/* Written by the queue's NAPI poll and its refill work (NAPI disabled) */
struct bqnic_rx_stats {
	u64_stats_t packets;
	u64_stats_t bytes;
	u64_stats_t alloc_fail;
	u64_stats_t refill_work_starts;	/* NAPI off, allocating */
	u64_stats_t refill_work_runs;	/* done allocating */
	u64_stats_t sbq_empty;
	u64_stats_t lbq_empty;
	u64_stats_t csum_ok;
	u64_stats_t xdp_drop;
	u64_stats_t xdp_tx;
	u64_stats_t xdp_redirect;
	u64_stats_t dropped;
	struct u64_stats_sync syncp;
};

/* Written by the tx completion, in the queue's NAPI poll */
struct bqnic_tx_stats {
	u64_stats_t packets;
	u64_stats_t bytes;
	struct u64_stats_sync syncp;
};

/* Written by ndo_start_xmit, under the tx queue's xmit lock */
struct bqnic_xmit_stats {
	u64_stats_t busy;
	u64_stats_t dropped;
	struct u64_stats_sync syncp;
};

/* One queue's counters: they outlive the rings, across reconfigurations */
struct bqnic_queue_stats {
	struct bqnic_rx_stats rx;
	struct bqnic_tx_stats tx;
	struct bqnic_xmit_stats xmit;
};

struct bqnic_tx_slot {
	struct sk_buff *skb;
	struct xdp_frame *xdpf;
	struct page *page;	/* XDP_TX: a page of our own pool */
	dma_addr_t dma;
	u32 len;
	bool unmap_page;
};

struct bqnic_priv;

/*
 * One queue pair: rx (cq + sbq + lbq), tx, one NAPI, a handler on one MSI-X
 * vector. A configuration is an array of them: a reconfiguration allocates a
 * new array (rings, page_pools, NAPIs, handlers) while the old one runs on,
 * then swaps the two and frees the old one.
 */
struct bqnic_qp {
	struct bqnic_priv *priv;
	u32 qid;
	struct napi_struct napi;
	char irq_name[IFNAMSIZ + 8];
	bool irq_requested;
	struct bqnic_queue_stats *stats;	/* priv->stats[qid] */

	/* rx */
	struct bqnic_cqe *cq;
	dma_addr_t cq_dma;
	u32 cq_size;
	u32 cq_cons;
	struct bqnic_bq sbq;
	struct bqnic_bq lbq;
	struct page_pool *pool;
	struct xdp_rxq_info xdp_rxq;
	struct delayed_work refill_work;
	bool refill_allowed;	/* under priv->refill_lock */
	u32 fill_failures;	/* of the first fill, not counted yet */

	/* tx, shared by the stack and XDP_TX/ndo_xdp_xmit (under tx_lock) */
	struct bqnic_txd *txd;
	dma_addr_t txd_dma;
	struct bqnic_tx_slot *tx_slots;
	u32 tx_size;
	u32 tx_prod;
	u32 tx_clean;
	spinlock_t tx_lock;		/* tx ring: stack, XDP_TX, ndo_xdp_xmit */
};

struct bqnic_priv {
	struct net_device *ndev;
	struct pci_dev *pdev;
	void __iomem *regs;
	u32 max_queues;
	u32 num_queues;
	u32 rx_ring_size;
	u32 tx_ring_size;
	u32 rx_usecs;		/* interrupt moderation (ITR) */
	u8 rss_key[BQNIC_RSS_KEY_SIZE];
	u32 rss_indir[BQNIC_RSS_INDIR_SIZE];	/* queue per hash & 127 */
	struct bpf_prog *xdp_prog;
	bool rings_ready;	/* rings exist: ndo_xdp_xmit may use them */
	struct bqnic_qp *qps;	/* num_queues of them while up, else NULL */
	struct bqnic_queue_stats *stats;	/* max_queues of them */
	spinlock_t refill_lock;	/* protects qp->refill_allowed */
	u64 dma_errors;
};

#endif
