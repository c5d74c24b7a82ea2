// SPDX-License-Identifier: GPL-2.0
/*
 * bqnic: driver for the bqlab QEMU NIC with qlge-style small and large rx
 * buffer queues (sbq/lbq). Device datasheet: qemu-device/SPEC.md in bqlab.
 *
 * Rx buffers are whole pages from one page_pool per rx queue, refilled from
 * NAPI with GFP_ATOMIC. When NAPI cannot refill and the device is left with
 * too few buffers to make progress, the device drops frames and raises no
 * interrupt, so NAPI would never run again: a delayed work then refills with
 * GFP_KERNEL, as qlge's "Fix rx stall in case of allocation failures" and
 * virtio_net's refill work do.
 *
 * A reconfiguration (ring sizes, channels, XDP) allocates the new queues first
 * and swaps them in only when everything is there, so a failure under memory
 * pressure leaves the running queues untouched (fbnic's set_ringparam does the
 * same). An open whose first fill fails starts anyway and lets the refill work
 * fill the queues ("if oom use wq", as virtnet_open does).
 *
 * Module parameters that bring known bugs back, so that bqlab can prove it
 * catches them (all off by default):
 *   refill_fallback=0  refill only from NAPI: an emptied queue stays empty
 *   teardown_leak=1    ring pages are not returned to the pool on close
 *   xdp_tx_leak=1      a page whose XDP_TX failed is not returned to its pool
 */

#include <linux/bpf.h>
#include <linux/bpf_trace.h>
#include <linux/error-injection.h>
#include <linux/etherdevice.h>
#include <linux/ethtool.h>
#include <linux/filter.h>
#include <linux/interrupt.h>
#include <linux/module.h>
#include <linux/netdevice.h>
#include <linux/pci.h>
#include <linux/unaligned.h>
#include <net/netdev_queues.h>
#include <net/page_pool/helpers.h>
#include <net/xdp.h>

#include "bqnic.h"

#define DRV_NAME		"bqnic"
#define BQNIC_DEFAULT_RING	256
#define BQNIC_TX_WAKE		(BQNIC_TX_MAX_FRAGS + 1)
#define BQNIC_REFILL_BATCH	16
#define BQNIC_MAX_ITR		0xffff
/*
 * Interrupt moderation default, in microseconds. Under emulation an interrupt
 * costs the host ~20 us of CPU and guest time runs far slower than hardware;
 * 1 ms bounds each queue to 1000 interrupts/s (bqlab bench: 85 -> 70 us of host
 * CPU per 64-byte frame). ethtool -C rx-usecs changes it.
 */
#define BQNIC_DEFAULT_RX_USECS	1000

static bool refill_fallback = true;
module_param(refill_fallback, bool, 0644);
MODULE_PARM_DESC(refill_fallback,
		 "Refill rx buffers from a workqueue when NAPI cannot (0 = the pre-fix stall)");

static bool build_skb_unchecked;
module_param(build_skb_unchecked, bool, 0644);
MODULE_PARM_DESC(build_skb_unchecked,
		 "Bug switch: use the result of a failed skb build unchecked (NULL dereference)");

static bool teardown_leak;
module_param(teardown_leak, bool, 0644);
MODULE_PARM_DESC(teardown_leak,
		 "Bug switch: do not return ring pages to the page_pool on close");

static bool xdp_tx_leak;
module_param(xdp_tx_leak, bool, 0644);
MODULE_PARM_DESC(xdp_tx_leak,
		 "Bug switch: leak the page when XDP_TX finds the tx ring full");

static void bqnic_wr(struct bqnic_priv *priv, u32 reg, u32 val)
{
	writel(val, priv->regs + reg);
}

static u32 bqnic_rd(struct bqnic_priv *priv, u32 reg)
{
	return readl(priv->regs + reg);
}

static u32 bqnic_bq_outstanding(const struct bqnic_bq *bq)
{
	return bq->prod - bq->cons;
}

static u32 bqnic_tx_free(const struct bqnic_qp *qp)
{
	return qp->tx_size - (qp->tx_prod - qp->tx_clean);
}

/* ---- rx buffers ---- */

/*
 * Every rx page comes through here, so fail_function can fail exactly this
 * driver's refills: echo bqnic_alloc_rx_page > /sys/kernel/debug/fail_function/inject
 */
static noinline struct page *bqnic_alloc_rx_page(struct page_pool *pool,
						 gfp_t gfp)
{
	return page_pool_alloc_pages(pool, gfp);
}
ALLOW_ERROR_INJECTION(bqnic_alloc_rx_page, NULL);

/*
 * Put buffers into the ring until it is full; false if an allocation failed.
 * Like qlge, wait until a batch is missing: one doorbell for many buffers.
 * The doorbell and the count of the failure are the caller's.
 */
static bool bqnic_fill_bq(struct bqnic_qp *qp, struct bqnic_bq *bq, gfp_t gfp)
{
	u32 batch = min_t(u32, BQNIC_REFILL_BATCH, bq->size / 4);

	if (bq->size - bqnic_bq_outstanding(bq) < batch)
		return true;

	while (bqnic_bq_outstanding(bq) < bq->size) {
		u32 slot = bq->prod & (bq->size - 1);
		struct page *page;

		page = bqnic_alloc_rx_page(qp->pool, gfp);
		if (!page)
			return false;
		bq->bufs[slot].page = page;
		bq->ring[slot] = cpu_to_le64(page_pool_get_dma_addr(page) +
					     BQNIC_HEADROOM);
		bq->prod++;
	}
	return true;
}

static void bqnic_bq_doorbell(struct bqnic_qp *qp, struct bqnic_bq *bq)
{
	/* Entries must be visible before the doorbell hands them over. */
	dma_wmb();
	bqnic_wr(qp->priv, BQNIC_Q(qp->qid, bq->reg_prod), bq->prod);
}

/* From the queue's NAPI poll, or its refill work with NAPI disabled */
static void bqnic_count_alloc_fail(struct bqnic_qp *qp, u32 n)
{
	u64_stats_update_begin(&qp->stats->rx.syncp);
	u64_stats_add(&qp->stats->rx.alloc_fail, n);
	u64_stats_update_end(&qp->stats->rx.syncp);
}

/* Post buffers until the queue is full; false if an allocation failed. */
static bool bqnic_refill_bq(struct bqnic_qp *qp, struct bqnic_bq *bq, gfp_t gfp)
{
	u32 prod = bq->prod;
	bool ok = bqnic_fill_bq(qp, bq, gfp);

	if (bq->prod != prod)
		bqnic_bq_doorbell(qp, bq);
	if (!ok)
		bqnic_count_alloc_fail(qp, 1);
	return ok;
}

static bool bqnic_bq_full(const struct bqnic_bq *bq)
{
	return bqnic_bq_outstanding(bq) == bq->size;
}

/* The device needs buffers in both queues to keep receiving. */
static bool bqnic_starving(const struct bqnic_qp *qp)
{
	u32 low_sbq = min_t(u32, 16, qp->sbq.size / 4);
	u32 low_lbq = min_t(u32, 16, qp->lbq.size / 4);

	return bqnic_bq_outstanding(&qp->sbq) < low_sbq ||
	       bqnic_bq_outstanding(&qp->lbq) < low_lbq;
}

static bool bqnic_refill(struct bqnic_qp *qp, gfp_t gfp)
{
	bool ok_sbq = bqnic_refill_bq(qp, &qp->sbq, gfp);
	bool ok_lbq = bqnic_refill_bq(qp, &qp->lbq, gfp);

	return ok_sbq && ok_lbq;
}

static void bqnic_schedule_refill(struct bqnic_qp *qp, unsigned long delay)
{
	struct bqnic_priv *priv = qp->priv;

	spin_lock_bh(&priv->refill_lock);
	if (qp->refill_allowed)
		schedule_delayed_work(&qp->refill_work, delay);
	spin_unlock_bh(&priv->refill_lock);
}

static void bqnic_refill_work(struct work_struct *work)
{
	struct bqnic_qp *qp = container_of(to_delayed_work(work),
					   struct bqnic_qp, refill_work);
	bool ok;

	/* NAPI owns the rings and the pool's lockless cache: keep it off. */
	napi_disable(&qp->napi);
	/* NAPI is off: the work is the only writer of the rx stats now. */
	u64_stats_update_begin(&qp->stats->rx.syncp);
	u64_stats_inc(&qp->stats->rx.refill_work_starts);
	u64_stats_update_end(&qp->stats->rx.syncp);
	ok = bqnic_refill(qp, GFP_KERNEL);
	u64_stats_update_begin(&qp->stats->rx.syncp);
	u64_stats_inc(&qp->stats->rx.refill_work_runs);
	u64_stats_update_end(&qp->stats->rx.syncp);
	napi_enable(&qp->napi);

	/*
	 * Always poll once NAPI is back, as virtnet_napi_enable() does: a poll
	 * that had used its whole budget when napi_disable() came was ended
	 * without unmasking the queue's interrupt, and completions may have
	 * arrived meanwhile. Scheduling only when buffers were posted left the
	 * queue masked for good whenever NAPI had refilled it first.
	 */
	local_bh_disable();
	napi_schedule(&qp->napi);
	local_bh_enable();
	if (!ok)
		bqnic_schedule_refill(qp, HZ / 2);
}

static void bqnic_bq_free(struct bqnic_qp *qp, struct bqnic_bq *bq)
{
	u32 i;

	if (!bq->bufs)
		return;
	for (i = bq->cons; i != bq->prod; i++) {
		struct bqnic_rx_buf *buf = &bq->bufs[i & (bq->size - 1)];

		/* teardown_leak: the pre-fix bug, pages stay in flight */
		if (buf->page && !teardown_leak)
			page_pool_put_full_page(qp->pool, buf->page, false);
		buf->page = NULL;
	}
	bq->cons = bq->prod;
}

/* ---- tx ---- */

static void bqnic_tx_slot_free(struct bqnic_qp *qp, struct bqnic_tx_slot *s,
			       int budget)
{
	struct device *dev = &qp->priv->pdev->dev;

	if (s->dma && s->unmap_page)
		dma_unmap_page(dev, s->dma, s->len, DMA_TO_DEVICE);
	else if (s->dma)
		dma_unmap_single(dev, s->dma, s->len, DMA_TO_DEVICE);
	if (s->skb)
		napi_consume_skb(s->skb, budget);
	if (s->xdpf)
		xdp_return_frame(s->xdpf);
	if (s->page)
		page_pool_put_full_page(qp->pool, s->page, false);
	memset(s, 0, sizeof(*s));
}

/*
 * The device sets DONE in each descriptor it has completed, after it read the
 * descriptor's buffer: no register read per poll. A descriptor we write never
 * carries DONE, so one from the ring's previous pass is never taken for new.
 */
static int bqnic_tx_clean(struct bqnic_qp *qp, int budget)
{
	struct bqnic_priv *priv = qp->priv;
	struct netdev_queue *txq = netdev_get_tx_queue(priv->ndev, qp->qid);
	u32 pkts = 0, bytes = 0;

	spin_lock(&qp->tx_lock);
	while (qp->tx_clean != qp->tx_prod) {
		u32 slot = qp->tx_clean & (qp->tx_size - 1);
		struct bqnic_tx_slot *s = &qp->tx_slots[slot];

		if (!(READ_ONCE(qp->txd[slot].flags) & cpu_to_le16(BQNIC_TXD_DONE)))
			break;
		dma_rmb();	/* DONE before anything else of the slot */
		if (s->skb) {
			pkts++;
			bytes += s->skb->len;
		}
		bqnic_tx_slot_free(qp, s, budget);
		qp->tx_clean++;
	}
	spin_unlock(&qp->tx_lock);

	if (pkts) {
		u64_stats_update_begin(&qp->stats->tx.syncp);
		u64_stats_add(&qp->stats->tx.packets, pkts);
		u64_stats_add(&qp->stats->tx.bytes, bytes);
		u64_stats_update_end(&qp->stats->tx.syncp);
		netdev_tx_completed_queue(txq, pkts, bytes);
	}
	if (netif_tx_queue_stopped(txq) && bqnic_tx_free(qp) >= BQNIC_TX_WAKE)
		netif_tx_wake_queue(txq);
	return pkts;
}

static void bqnic_txd_write(struct bqnic_qp *qp, dma_addr_t dma, u32 len,
			    u16 flags, u16 csum_start, u16 csum_offset)
{
	struct bqnic_txd *d = &qp->txd[qp->tx_prod & (qp->tx_size - 1)];

	d->addr = cpu_to_le64(dma);
	d->len = cpu_to_le16(len);
	d->flags = cpu_to_le16(flags);
	d->csum_start = cpu_to_le16(csum_start);
	d->csum_offset = cpu_to_le16(csum_offset);
}

static void bqnic_tx_doorbell(struct bqnic_qp *qp)
{
	dma_wmb();
	bqnic_wr(qp->priv, BQNIC_Q(qp->qid, BQNIC_Q_TX_PROD), qp->tx_prod);
}

static netdev_tx_t bqnic_start_xmit(struct sk_buff *skb,
				    struct net_device *ndev)
{
	struct bqnic_priv *priv = netdev_priv(ndev);
	struct bqnic_qp *qp = &priv->qps[skb_get_queue_mapping(skb)];
	struct netdev_queue *txq = netdev_get_tx_queue(ndev, qp->qid);
	struct device *dev = &priv->pdev->dev;
	u16 csum_start = 0, csum_offset = 0, csum_flag = 0;
	u32 first = qp->tx_prod, nfrags, i;
	struct bqnic_tx_slot *s;
	dma_addr_t dma;

	if (skb_shinfo(skb)->nr_frags + 1 > BQNIC_TX_MAX_FRAGS &&
	    skb_linearize(skb))
		goto drop;
	nfrags = skb_shinfo(skb)->nr_frags;
	if (skb->ip_summed == CHECKSUM_PARTIAL) {
		csum_flag = BQNIC_TXD_CSUM;
		csum_start = skb_checksum_start_offset(skb);
		csum_offset = skb->csum_offset;
	}

	spin_lock(&qp->tx_lock);
	if (bqnic_tx_free(qp) < nfrags + 1) {
		netif_tx_stop_queue(txq);
		spin_unlock(&qp->tx_lock);
		u64_stats_update_begin(&qp->stats->xmit.syncp);
		u64_stats_inc(&qp->stats->xmit.busy);
		u64_stats_update_end(&qp->stats->xmit.syncp);
		return NETDEV_TX_BUSY;
	}

	dma = dma_map_single(dev, skb->data, skb_headlen(skb), DMA_TO_DEVICE);
	if (dma_mapping_error(dev, dma))
		goto unlock_drop;
	s = &qp->tx_slots[qp->tx_prod & (qp->tx_size - 1)];
	s->dma = dma;
	s->len = skb_headlen(skb);
	bqnic_txd_write(qp, dma, skb_headlen(skb),
			csum_flag | (nfrags ? 0 : BQNIC_TXD_EOP),
			csum_start, csum_offset);
	qp->tx_prod++;

	for (i = 0; i < nfrags; i++) {
		const skb_frag_t *frag = &skb_shinfo(skb)->frags[i];
		u32 len = skb_frag_size(frag);

		dma = skb_frag_dma_map(dev, frag, 0, len, DMA_TO_DEVICE);
		if (dma_mapping_error(dev, dma))
			goto unmap;
		s = &qp->tx_slots[qp->tx_prod & (qp->tx_size - 1)];
		s->dma = dma;
		s->len = len;
		s->unmap_page = true;
		bqnic_txd_write(qp, dma, len,
				i == nfrags - 1 ? BQNIC_TXD_EOP : 0, 0, 0);
		qp->tx_prod++;
	}
	/* The skb is freed with the frame's last descriptor. */
	qp->tx_slots[(qp->tx_prod - 1) & (qp->tx_size - 1)].skb = skb;
	netdev_tx_sent_queue(txq, skb->len);
	skb_tx_timestamp(skb);
	bqnic_tx_doorbell(qp);
	if (bqnic_tx_free(qp) < BQNIC_TX_WAKE)
		netif_tx_stop_queue(txq);
	spin_unlock(&qp->tx_lock);
	return NETDEV_TX_OK;

unmap:
	while (qp->tx_prod != first) {
		qp->tx_prod--;
		bqnic_tx_slot_free(qp, &qp->tx_slots[qp->tx_prod &
						      (qp->tx_size - 1)], 0);
	}
unlock_drop:
	spin_unlock(&qp->tx_lock);
drop:
	dev_kfree_skb_any(skb);
	u64_stats_update_begin(&qp->stats->xmit.syncp);
	u64_stats_inc(&qp->stats->xmit.dropped);
	u64_stats_update_end(&qp->stats->xmit.syncp);
	return NETDEV_TX_OK;
}

/* Queue one XDP frame; caller holds tx_lock. */
static int bqnic_xdp_queue(struct bqnic_qp *qp, struct xdp_frame *xdpf,
			   struct page *page, dma_addr_t dma)
{
	struct bqnic_tx_slot *s;

	if (bqnic_tx_free(qp) < 1)
		return -ENOSPC;
	s = &qp->tx_slots[qp->tx_prod & (qp->tx_size - 1)];
	s->xdpf = page ? NULL : xdpf;
	s->page = page;
	s->dma = page ? 0 : dma;	/* pool pages stay mapped by the pool */
	s->len = xdpf->len;
	bqnic_txd_write(qp, dma, xdpf->len, BQNIC_TXD_EOP, 0, 0);
	qp->tx_prod++;
	return 0;
}

static int bqnic_xdp_xmit(struct net_device *ndev, int n,
			  struct xdp_frame **frames, u32 flags)
{
	struct bqnic_priv *priv = netdev_priv(ndev);
	struct device *dev = &priv->pdev->dev;
	struct bqnic_qp *qp;
	int i, nxmit = 0;

	if (unlikely(flags & ~XDP_XMIT_FLAGS_MASK))
		return -EINVAL;
	/*
	 * Callers run under rcu_read_lock; bqnic_stop_queues() waits them out.
	 * Paired with the release in bqnic_start_queues(): qps and num_queues
	 * are those of the running configuration.
	 */
	if (!smp_load_acquire(&priv->rings_ready) || !netif_carrier_ok(ndev))
		return -ENETDOWN;
	qp = &priv->qps[smp_processor_id() % priv->num_queues];

	spin_lock(&qp->tx_lock);
	for (i = 0; i < n; i++) {
		dma_addr_t dma = dma_map_single(dev, frames[i]->data,
						frames[i]->len, DMA_TO_DEVICE);

		if (dma_mapping_error(dev, dma))
			break;
		if (bqnic_xdp_queue(qp, frames[i], NULL, dma)) {
			dma_unmap_single(dev, dma, frames[i]->len,
					 DMA_TO_DEVICE);
			break;
		}
		nxmit++;
	}
	if (nxmit && (flags & XDP_XMIT_FLUSH))
		bqnic_tx_doorbell(qp);
	spin_unlock(&qp->tx_lock);
	return nxmit;
}

/* ---- rx ---- */

enum bqnic_xdp_verdict {
	BQNIC_XDP_PASS,
	BQNIC_XDP_CONSUMED,
	BQNIC_XDP_REDIRECTED,
};

static enum bqnic_xdp_verdict bqnic_run_xdp(struct bqnic_qp *qp,
					    struct bpf_prog *prog,
					    struct xdp_buff *xdp,
					    struct page *page)
{
	struct net_device *ndev = qp->priv->ndev;
	struct xdp_frame *xdpf;
	dma_addr_t dma;
	u32 act;
	int err;

	act = bpf_prog_run_xdp(prog, xdp);
	switch (act) {
	case XDP_PASS:
		return BQNIC_XDP_PASS;
	case XDP_TX:
		xdpf = xdp_convert_buff_to_frame(xdp);
		if (!xdpf)
			goto drop;
		dma = page_pool_get_dma_addr(page) +
		      (xdpf->data - page_address(page));
		dma_sync_single_for_device(&qp->priv->pdev->dev, dma,
					   xdpf->len, DMA_BIDIRECTIONAL);
		spin_lock(&qp->tx_lock);
		err = bqnic_xdp_queue(qp, xdpf, page, dma);
		if (!err)
			bqnic_tx_doorbell(qp);
		spin_unlock(&qp->tx_lock);
		if (err) {
			/* xdp_tx_leak: the historical bug, page never returns */
			if (!xdp_tx_leak)
				page_pool_recycle_direct(qp->pool, page);
			return BQNIC_XDP_CONSUMED;
		}
		u64_stats_update_begin(&qp->stats->rx.syncp);
		u64_stats_inc(&qp->stats->rx.xdp_tx);
		u64_stats_update_end(&qp->stats->rx.syncp);
		return BQNIC_XDP_CONSUMED;
	case XDP_REDIRECT:
		if (xdp_do_redirect(ndev, xdp, prog))
			goto drop;
		u64_stats_update_begin(&qp->stats->rx.syncp);
		u64_stats_inc(&qp->stats->rx.xdp_redirect);
		u64_stats_update_end(&qp->stats->rx.syncp);
		return BQNIC_XDP_REDIRECTED;
	default:
		bpf_warn_invalid_xdp_action(ndev, prog, act);
		fallthrough;
	case XDP_ABORTED:
		trace_xdp_exception(ndev, prog, act);
		fallthrough;
	case XDP_DROP:
		break;
	}
drop:
	page_pool_recycle_direct(qp->pool, page);
	u64_stats_update_begin(&qp->stats->rx.syncp);
	u64_stats_inc(&qp->stats->rx.xdp_drop);
	u64_stats_update_end(&qp->stats->rx.syncp);
	return BQNIC_XDP_CONSUMED;
}

/*
 * Every rx skb is built here, so fail_function can drive the rx drop path:
 * echo bqnic_build_skb > /sys/kernel/debug/fail_function/inject
 */
static noinline struct sk_buff *bqnic_build_skb(void *data)
{
	return napi_build_skb(data, PAGE_SIZE);
}
ALLOW_ERROR_INJECTION(bqnic_build_skb, NULL);

static struct page *bqnic_bq_pop(struct bqnic_qp *qp, struct bqnic_bq *bq,
				 u32 len)
{
	struct bqnic_rx_buf *buf = &bq->bufs[bq->cons & (bq->size - 1)];
	struct page *page = buf->page;

	buf->page = NULL;
	bq->cons++;
	if (page)
		page_pool_dma_sync_for_cpu(qp->pool, page, 0, len);
	return page;
}

/* Returns true if an XDP program redirected the frame. */
static bool bqnic_rx_one(struct bqnic_qp *qp, const struct bqnic_cqe *cqe,
			 struct bpf_prog *prog)
{
	struct bqnic_priv *priv = qp->priv;
	struct net_device *ndev = priv->ndev;
	u32 len = le32_to_cpu(cqe->len);
	u32 head_len, off, nlbq = cqe->nlbq, i;
	u16 flags = le16_to_cpu(cqe->flags);
	struct page *page;
	struct sk_buff *skb;
	u32 headroom = BQNIC_HEADROOM;

	if (cqe->nsbq) {
		head_len = le16_to_cpu(cqe->hdr_len);
		page = bqnic_bq_pop(qp, &qp->sbq, head_len);
	} else {
		head_len = min_t(u32, len, BQNIC_LBQ_BUF_SIZE);
		page = bqnic_bq_pop(qp, &qp->lbq, head_len);
		nlbq--;
	}
	if (unlikely(!page || head_len > len))
		goto bad;

	if (prog && !nlbq) {
		struct xdp_buff xdp;
		enum bqnic_xdp_verdict v;

		xdp_init_buff(&xdp, PAGE_SIZE, &qp->xdp_rxq);
		xdp_prepare_buff(&xdp, page_address(page), BQNIC_HEADROOM,
				 head_len, false);
		v = bqnic_run_xdp(qp, prog, &xdp, page);
		if (v != BQNIC_XDP_PASS)
			return v == BQNIC_XDP_REDIRECTED;
		headroom = xdp.data - xdp.data_hard_start;
		head_len = xdp.data_end - xdp.data;
		len = head_len;
	}

	skb = bqnic_build_skb(page_address(page));
	if (unlikely(!skb) && !build_skb_unchecked) {
		page_pool_recycle_direct(qp->pool, page);
		goto drop_rest;
	}
	skb_mark_for_recycle(skb);
	skb_reserve(skb, headroom);
	__skb_put(skb, head_len);

	for (i = 0, off = head_len; i < nlbq; i++) {
		u32 chunk = min_t(u32, len - off, BQNIC_LBQ_BUF_SIZE);

		page = bqnic_bq_pop(qp, &qp->lbq, chunk);
		if (unlikely(!page || off >= len)) {
			dev_kfree_skb_any(skb);
			nlbq -= i + 1;
			goto drop_rest;
		}
		skb_add_rx_frag(skb, skb_shinfo(skb)->nr_frags, page,
				BQNIC_HEADROOM, chunk, PAGE_SIZE);
		off += chunk;
	}

	skb->protocol = eth_type_trans(skb, ndev);
	if ((ndev->features & NETIF_F_RXCSUM) &&
	    (flags & BQNIC_CQE_F_L4_CSUM_OK))
		skb->ip_summed = CHECKSUM_UNNECESSARY;
	if ((ndev->features & NETIF_F_RXHASH) && (flags & BQNIC_CQE_F_RSS))
		skb_set_hash(skb, le32_to_cpu(cqe->rss_hash),
			     flags & (BQNIC_CQE_F_TCP | BQNIC_CQE_F_UDP) ?
			     PKT_HASH_TYPE_L4 : PKT_HASH_TYPE_L3);
	skb_record_rx_queue(skb, qp->qid);

	u64_stats_update_begin(&qp->stats->rx.syncp);
	u64_stats_inc(&qp->stats->rx.packets);
	u64_stats_add(&qp->stats->rx.bytes, len);
	if (skb->ip_summed == CHECKSUM_UNNECESSARY)
		u64_stats_inc(&qp->stats->rx.csum_ok);
	u64_stats_update_end(&qp->stats->rx.syncp);
	napi_gro_receive(&qp->napi, skb);
	return false;

bad:
	netdev_err_once(ndev, "queue %u: completion names no buffer (len %u)\n",
			qp->qid, len);
	if (page)
		page_pool_recycle_direct(qp->pool, page);
drop_rest:
	for (i = 0; i < nlbq; i++) {
		page = bqnic_bq_pop(qp, &qp->lbq, 0);
		if (page)
			page_pool_recycle_direct(qp->pool, page);
	}
	/* Per queue: NAPI polls of other queues run on other CPUs. */
	u64_stats_update_begin(&qp->stats->rx.syncp);
	u64_stats_inc(&qp->stats->rx.dropped);
	u64_stats_update_end(&qp->stats->rx.syncp);
	return false;
}

static int bqnic_poll(struct napi_struct *napi, int budget)
{
	struct bqnic_qp *qp = container_of(napi, struct bqnic_qp, napi);
	struct bqnic_priv *priv = qp->priv;
	struct bpf_prog *prog = READ_ONCE(priv->xdp_prog);
	bool redirected = false;
	int work = 0;

	/*
	 * The interrupt masked the queue and cleared its causes (IRQ_AUTO):
	 * whatever happens from here on is pending when we re-arm.
	 */
	bqnic_tx_clean(qp, budget);

	while (work < budget) {
		struct bqnic_cqe *cqe = &qp->cq[qp->cq_cons & (qp->cq_size - 1)];
		u8 phase = ((qp->cq_cons / qp->cq_size) & 1) ? 0 : 1;

		if ((READ_ONCE(cqe->phase) & 1) != phase)
			break;
		dma_rmb();	/* the phase byte is written last */
		redirected |= bqnic_rx_one(qp, cqe, prog);
		qp->cq_cons++;
		work++;
	}
	if (redirected)
		xdp_do_flush();

	/* Like qlge, refill where rx completions consumed buffers. */
	if (work && !bqnic_refill(qp, GFP_ATOMIC | __GFP_NOWARN)) {
		if (!bqnic_bq_outstanding(&qp->sbq) ||
		    !bqnic_bq_outstanding(&qp->lbq)) {
			u64_stats_update_begin(&qp->stats->rx.syncp);
			if (!bqnic_bq_outstanding(&qp->sbq))
				u64_stats_inc(&qp->stats->rx.sbq_empty);
			if (!bqnic_bq_outstanding(&qp->lbq))
				u64_stats_inc(&qp->stats->rx.lbq_empty);
			u64_stats_update_end(&qp->stats->rx.syncp);
		}
		/*
		 * Without buffers the device drops frames and raises no
		 * interrupt: NAPI would not run again. Refill from process
		 * context instead (refill_fallback=0 is the pre-fix driver).
		 */
		if (refill_fallback && bqnic_starving(qp))
			bqnic_schedule_refill(qp, 0);
	}

	/* One register write: the completions we took, and unmask if done. */
	if (work < budget && napi_complete_done(napi, work))
		bqnic_wr(priv, BQNIC_Q(qp->qid, BQNIC_Q_CQ_ARM), qp->cq_cons);
	else if (work)
		bqnic_wr(priv, BQNIC_Q(qp->qid, BQNIC_Q_CQ_CONS), qp->cq_cons);
	return work;
}

/*
 * Shared while a reconfiguration builds the next queues: the handler of the
 * queue that is not running finds its NAPI disabled, and does nothing.
 */
static irqreturn_t bqnic_queue_irq(int irq, void *data)
{
	struct bqnic_qp *qp = data;

	/* The device masked the queue when it sent this (IRQ_AUTO). */
	napi_schedule(&qp->napi);
	return IRQ_HANDLED;
}

/*
 * Every queue vector is requested here, so fail_function can fail exactly
 * this driver's bring-up:
 * echo bqnic_request_irq > /sys/kernel/debug/fail_function/inject
 */
static noinline int bqnic_request_irq(struct bqnic_qp *qp)
{
	struct bqnic_priv *priv = qp->priv;

	snprintf(qp->irq_name, sizeof(qp->irq_name), "%s-q%u", priv->ndev->name,
		 qp->qid);
	return request_irq(pci_irq_vector(priv->pdev, qp->qid), bqnic_queue_irq,
			   IRQF_SHARED, qp->irq_name, qp);
}
ALLOW_ERROR_INJECTION(bqnic_request_irq, ERRNO);

static void bqnic_update_link(struct bqnic_priv *priv)
{
	if (bqnic_rd(priv, BQNIC_REG_STATUS) & BQNIC_STATUS_LINK_UP)
		netif_carrier_on(priv->ndev);
	else
		netif_carrier_off(priv->ndev);
}

static irqreturn_t bqnic_misc_irq(int irq, void *data)
{
	struct bqnic_priv *priv = data;
	u32 cause = bqnic_rd(priv, BQNIC_REG_MISC_CAUSE);

	bqnic_wr(priv, BQNIC_REG_MISC_CAUSE, cause);
	if (cause & BQNIC_MISC_LINK && netif_running(priv->ndev))
		bqnic_update_link(priv);
	if (cause & BQNIC_MISC_DMA_ERR) {
		/* the only writer; ethtool -S reads it locklessly */
		WRITE_ONCE(priv->dma_errors, priv->dma_errors + 1);
		netdev_err(priv->ndev, "device DMA error: a queue is stopped until reset\n");
	}
	return cause ? IRQ_HANDLED : IRQ_NONE;
}

/* ---- bring-up and teardown of one queue pair ---- */

/*
 * Free what bqnic_qp_alloc() and bqnic_qps_alloc() set up, whatever part of
 * it they got to. NAPI is disabled: never enabled, or by bqnic_stop_queues().
 */
static void bqnic_qp_free(struct bqnic_qp *qp)
{
	struct device *dev = &qp->priv->pdev->dev;
	u32 i;

	if (qp->irq_requested)
		free_irq(pci_irq_vector(qp->priv->pdev, qp->qid), qp);
	qp->irq_requested = false;
	if (qp->tx_slots) {
		for (i = qp->tx_clean; i != qp->tx_prod; i++)
			bqnic_tx_slot_free(qp, &qp->tx_slots[i & (qp->tx_size - 1)], 0);
	}
	if (qp->pool) {
		bqnic_bq_free(qp, &qp->sbq);
		bqnic_bq_free(qp, &qp->lbq);
	}
	if (xdp_rxq_info_is_reg(&qp->xdp_rxq))
		xdp_rxq_info_unreg(&qp->xdp_rxq);
	if (qp->pool)
		page_pool_destroy(qp->pool);
	qp->pool = NULL;

	kfree(qp->sbq.bufs);
	kfree(qp->lbq.bufs);
	kfree(qp->tx_slots);
	qp->sbq.bufs = NULL;
	qp->lbq.bufs = NULL;
	qp->tx_slots = NULL;
	if (qp->cq)
		dma_free_coherent(dev, qp->cq_size * sizeof(*qp->cq), qp->cq,
				  qp->cq_dma);
	if (qp->sbq.ring)
		dma_free_coherent(dev, qp->sbq.size * sizeof(__le64),
				  qp->sbq.ring, qp->sbq.ring_dma);
	if (qp->lbq.ring)
		dma_free_coherent(dev, qp->lbq.size * sizeof(__le64),
				  qp->lbq.ring, qp->lbq.ring_dma);
	if (qp->txd)
		dma_free_coherent(dev, qp->tx_size * sizeof(*qp->txd), qp->txd,
				  qp->txd_dma);
	qp->cq = NULL;
	qp->sbq.ring = NULL;
	qp->lbq.ring = NULL;
	qp->txd = NULL;
	/* The caller waits for RCU readers before the memory goes. */
	__netif_napi_del(&qp->napi);
}

static int bqnic_bq_alloc(struct device *dev, struct bqnic_bq *bq, u32 size,
			  u32 reg_prod)
{
	bq->size = size;
	bq->prod = 0;
	bq->cons = 0;
	bq->reg_prod = reg_prod;
	bq->ring = dma_alloc_coherent(dev, size * sizeof(__le64), &bq->ring_dma,
				      GFP_KERNEL);
	bq->bufs = kcalloc(size, sizeof(*bq->bufs), GFP_KERNEL);
	return bq->ring && bq->bufs ? 0 : -ENOMEM;
}

/* What a configuration of the queues is made of */
struct bqnic_params {
	u32 queues;
	u32 rx_ring;
	u32 tx_ring;
	struct bpf_prog *prog;
};

static struct bqnic_params bqnic_cur_params(const struct bqnic_priv *priv)
{
	return (struct bqnic_params) {
		.queues = priv->num_queues,
		.rx_ring = priv->rx_ring_size,
		.tx_ring = priv->tx_ring_size,
		.prog = priv->xdp_prog,
	};
}

/*
 * Rings, page_pool and NAPI of one queue pair, with its buffer queues filled
 * as far as memory allows. Nothing here touches the device, which may still
 * be running the queues this one replaces.
 */
static int bqnic_qp_alloc(struct bqnic_priv *priv, struct bqnic_qp *qp,
			  u32 qid, const struct bqnic_params *p)
{
	struct device *dev = &priv->pdev->dev;
	struct page_pool_params pp = {
		.flags = PP_FLAG_DMA_MAP | PP_FLAG_DMA_SYNC_DEV,
		.order = 0,
		.pool_size = 2 * p->rx_ring,
		.nid = dev_to_node(dev),
		.dev = dev,
		.napi = &qp->napi,
		.netdev = priv->ndev,
		.queue_idx = qid,
		.dma_dir = p->prog ? DMA_BIDIRECTIONAL : DMA_FROM_DEVICE,
		.offset = BQNIC_HEADROOM,
		.max_len = BQNIC_LBQ_BUF_SIZE,
	};
	int err = -ENOMEM;

	qp->priv = priv;
	qp->qid = qid;
	qp->stats = &priv->stats[qid];
	spin_lock_init(&qp->tx_lock);
	INIT_DELAYED_WORK(&qp->refill_work, bqnic_refill_work);
	netif_napi_add(priv->ndev, &qp->napi, bqnic_poll);

	qp->cq_size = p->rx_ring;
	qp->cq = dma_alloc_coherent(dev, qp->cq_size * sizeof(*qp->cq),
				    &qp->cq_dma, GFP_KERNEL);
	if (!qp->cq)
		goto err;
	if (bqnic_bq_alloc(dev, &qp->sbq, p->rx_ring, BQNIC_Q_SBQ_PROD) ||
	    bqnic_bq_alloc(dev, &qp->lbq, p->rx_ring, BQNIC_Q_LBQ_PROD))
		goto err;
	qp->tx_size = p->tx_ring;
	qp->txd = dma_alloc_coherent(dev, qp->tx_size * sizeof(*qp->txd),
				     &qp->txd_dma, GFP_KERNEL);
	qp->tx_slots = kcalloc(qp->tx_size, sizeof(*qp->tx_slots), GFP_KERNEL);
	if (!qp->txd || !qp->tx_slots)
		goto err;

	qp->pool = page_pool_create(&pp);
	if (IS_ERR(qp->pool)) {
		err = PTR_ERR(qp->pool);
		qp->pool = NULL;
		goto err;
	}
	err = xdp_rxq_info_reg(&qp->xdp_rxq, priv->ndev, qid,
			       qp->napi.napi_id);
	if (err)
		goto err;
	err = xdp_rxq_info_reg_mem_model(&qp->xdp_rxq, MEM_TYPE_PAGE_POOL,
					 qp->pool);
	if (err)
		goto err;

	/*
	 * Not an error if this falls short: bqnic_start_queues() hands the
	 * device what there is and leaves the rest to the refill work. The
	 * failures are counted there: the queue this one replaces may be
	 * counting its own in NAPI right now.
	 */
	qp->fill_failures = !bqnic_fill_bq(qp, &qp->sbq, GFP_KERNEL) +
			    !bqnic_fill_bq(qp, &qp->lbq, GFP_KERNEL);
	return 0;

err:
	bqnic_qp_free(qp);
	return err;
}

static void bqnic_qps_free(struct bqnic_qp *qps, u32 n)
{
	u32 i;

	for (i = 0; i < n; i++)
		bqnic_qp_free(&qps[i]);
	synchronize_net();	/* __netif_napi_del(): NAPI readers are gone */
	kfree(qps);
}

/*
 * Everything a configuration needs, allocated while the current one (if any)
 * keeps running: on failure, what was allocated is freed and the device and
 * the running queues are as they were.
 */
static struct bqnic_qp *bqnic_qps_alloc(struct bqnic_priv *priv,
					const struct bqnic_params *p)
{
	struct bqnic_qp *qps;
	u32 n, i;
	int err;

	qps = kcalloc(p->queues, sizeof(*qps), GFP_KERNEL);
	if (!qps)
		return ERR_PTR(-ENOMEM);
	for (n = 0; n < p->queues; n++) {
		err = bqnic_qp_alloc(priv, &qps[n], n, p);
		if (err)
			goto free;
	}
	for (i = 0; i < p->queues; i++) {
		err = bqnic_request_irq(&qps[i]);
		if (err)
			goto free;
		qps[i].irq_requested = true;
	}
	return qps;

free:
	bqnic_qps_free(qps, n);
	return ERR_PTR(err);
}

static void bqnic_qp_program(struct bqnic_qp *qp)
{
	struct bqnic_priv *priv = qp->priv;
	u32 q = qp->qid;

	bqnic_wr(priv, BQNIC_Q(q, BQNIC_Q_CQ_BASE_LO), lower_32_bits(qp->cq_dma));
	bqnic_wr(priv, BQNIC_Q(q, BQNIC_Q_CQ_BASE_HI), upper_32_bits(qp->cq_dma));
	bqnic_wr(priv, BQNIC_Q(q, BQNIC_Q_CQ_SIZE), qp->cq_size);
	bqnic_wr(priv, BQNIC_Q(q, BQNIC_Q_SBQ_BASE_LO),
		 lower_32_bits(qp->sbq.ring_dma));
	bqnic_wr(priv, BQNIC_Q(q, BQNIC_Q_SBQ_BASE_HI),
		 upper_32_bits(qp->sbq.ring_dma));
	bqnic_wr(priv, BQNIC_Q(q, BQNIC_Q_SBQ_SIZE), qp->sbq.size);
	bqnic_wr(priv, BQNIC_Q(q, BQNIC_Q_LBQ_BASE_LO),
		 lower_32_bits(qp->lbq.ring_dma));
	bqnic_wr(priv, BQNIC_Q(q, BQNIC_Q_LBQ_BASE_HI),
		 upper_32_bits(qp->lbq.ring_dma));
	bqnic_wr(priv, BQNIC_Q(q, BQNIC_Q_LBQ_SIZE), qp->lbq.size);
	bqnic_wr(priv, BQNIC_Q(q, BQNIC_Q_TX_BASE_LO), lower_32_bits(qp->txd_dma));
	bqnic_wr(priv, BQNIC_Q(q, BQNIC_Q_TX_BASE_HI), upper_32_bits(qp->txd_dma));
	bqnic_wr(priv, BQNIC_Q(q, BQNIC_Q_TX_SIZE), qp->tx_size);
	bqnic_wr(priv, BQNIC_Q(q, BQNIC_Q_RXQ_CTRL), 1);
	bqnic_wr(priv, BQNIC_Q(q, BQNIC_Q_TXQ_CTRL), 1);
}

/* The key and the table as ethtool last set them, or the defaults. */
static void bqnic_rss_write(struct bqnic_priv *priv)
{
	const u32 *t = priv->rss_indir;
	u32 i;

	for (i = 0; i < BQNIC_RSS_KEY_SIZE; i += 4)
		bqnic_wr(priv, BQNIC_REG_RSS_KEY + i,
			 get_unaligned_le32(priv->rss_key + i));
	for (i = 0; i < BQNIC_RSS_INDIR_SIZE; i += 4)
		bqnic_wr(priv, BQNIC_REG_RSS_INDIR + i,
			 t[i] | t[i + 1] << 8 | t[i + 2] << 16 | t[i + 3] << 24);
}

static void bqnic_rss_init(struct bqnic_priv *priv)
{
	u32 i;

	/*
	 * A table the user set survives a channel change (the core refuses
	 * fewer channels than it uses); the default one spreads over them all.
	 */
	if (!netif_is_rxfh_configured(priv->ndev))
		for (i = 0; i < BQNIC_RSS_INDIR_SIZE; i++)
			priv->rss_indir[i] =
				ethtool_rxfh_indir_default(i, priv->num_queues);
	bqnic_rss_write(priv);
}

/* BQL: what was queued is gone, completed or freed with its ring. */
static void bqnic_reset_bql(struct bqnic_priv *priv)
{
	u32 i;

	for (i = 0; i < priv->max_queues; i++)
		netdev_tx_reset_queue(netdev_get_tx_queue(priv->ndev, i));
}

/*
 * Stop the device, the stack and NAPI using priv->qps. The rings stay
 * allocated: bqnic_qps_free() takes them back.
 */
static void bqnic_stop_queues(struct bqnic_priv *priv)
{
	struct net_device *ndev = priv->ndev;
	u32 i;

	netif_tx_disable(ndev);
	netif_carrier_off(ndev);
	WRITE_ONCE(priv->rings_ready, false);
	synchronize_net();	/* no ndo_xdp_xmit() still on our rings */
	/* Stop the device touching our buffers before we take them back. */
	bqnic_wr(priv, BQNIC_REG_CTRL, 0);
	for (i = 0; i < priv->num_queues; i++) {
		bqnic_wr(priv, BQNIC_Q(i, BQNIC_Q_MASK), BQNIC_QCAUSE_ALL);
		bqnic_wr(priv, BQNIC_Q(i, BQNIC_Q_RXQ_CTRL), 0);
		bqnic_wr(priv, BQNIC_Q(i, BQNIC_Q_TXQ_CTRL), 0);
	}
	bqnic_rd(priv, BQNIC_REG_STATUS);	/* flush the posted writes */

	spin_lock_bh(&priv->refill_lock);
	for (i = 0; i < priv->num_queues; i++)
		priv->qps[i].refill_allowed = false;
	spin_unlock_bh(&priv->refill_lock);

	for (i = 0; i < priv->num_queues; i++) {
		struct bqnic_qp *qp = &priv->qps[i];

		/* The work disables NAPI itself: it must be gone first. */
		cancel_delayed_work_sync(&qp->refill_work);
		napi_disable(&qp->napi);
		netif_queue_set_napi(ndev, i, NETDEV_QUEUE_TYPE_RX, NULL);
		netif_queue_set_napi(ndev, i, NETDEV_QUEUE_TYPE_TX, NULL);
	}
	/* A tx completion in a NAPI poll that ran after the first
	 * netif_tx_disable() may have woken its queue again; with every NAPI
	 * off, nothing can wake one any more once this returns.
	 */
	netif_tx_disable(ndev);
}

/*
 * Program the device for priv->qps and start the queues. Cannot fail: all
 * that can is done by bqnic_qps_alloc() before.
 */
static void bqnic_start_queues(struct bqnic_priv *priv)
{
	struct net_device *ndev = priv->ndev;
	u32 i;

	/* A DMA error stopped a queue: only a reset brings it back (SPEC 7). */
	if (bqnic_rd(priv, BQNIC_REG_STATUS) &
	    (BQNIC_STATUS_DMA_ERR | BQNIC_STATUS_QSTOPPED)) {
		netdev_warn(ndev, "resetting the device after a DMA error\n");
		bqnic_wr(priv, BQNIC_REG_CTRL, BQNIC_CTRL_RESET);
	}
	bqnic_wr(priv, BQNIC_REG_SBQ_BUF_SIZE, BQNIC_SBQ_BUF_SIZE);
	bqnic_wr(priv, BQNIC_REG_LBQ_BUF_SIZE, BQNIC_LBQ_BUF_SIZE);
	bqnic_wr(priv, BQNIC_REG_MAX_FRAME, ndev->mtu + ETH_HLEN);
	bqnic_reset_bql(priv);

	for (i = 0; i < priv->num_queues; i++) {
		struct bqnic_qp *qp = &priv->qps[i];

		if (qp->fill_failures)
			bqnic_count_alloc_fail(qp, qp->fill_failures);
		qp->fill_failures = 0;
		bqnic_qp_program(qp);
		if (qp->sbq.prod)
			bqnic_bq_doorbell(qp, &qp->sbq);
		if (qp->lbq.prod)
			bqnic_bq_doorbell(qp, &qp->lbq);
		netif_queue_set_napi(ndev, i, NETDEV_QUEUE_TYPE_RX, &qp->napi);
		netif_queue_set_napi(ndev, i, NETDEV_QUEUE_TYPE_TX, &qp->napi);
		napi_enable(&qp->napi);
	}

	spin_lock_bh(&priv->refill_lock);
	for (i = 0; i < priv->num_queues; i++) {
		struct bqnic_qp *qp = &priv->qps[i];

		qp->refill_allowed = true;
		/*
		 * The first fill fell short: no frame may come to start NAPI,
		 * so the refill work finishes it (refill_fallback=0: the
		 * pre-fix driver, which starts with what it got).
		 */
		if (refill_fallback &&
		    (!bqnic_bq_full(&qp->sbq) || !bqnic_bq_full(&qp->lbq)))
			schedule_delayed_work(&qp->refill_work, 0);
	}
	spin_unlock_bh(&priv->refill_lock);

	/*
	 * A cause left set from before (reported before IRQ_AUTO was on, or set
	 * while the queue was masked) would stay set: the device sends a cause
	 * once until it is cleared (SPEC 6), and with IRQ_AUTO only its own
	 * messages clear them, so the queue would never interrupt again.
	 */
	for (i = 0; i < priv->num_queues; i++) {
		bqnic_wr(priv, BQNIC_Q(i, BQNIC_Q_CAUSE), BQNIC_QCAUSE_ALL);
		bqnic_wr(priv, BQNIC_Q(i, BQNIC_Q_MASK), 0);
	}
	bqnic_rss_init(priv);
	bqnic_wr(priv, BQNIC_REG_MISC_MASK, 0);
	bqnic_wr(priv, BQNIC_REG_ITR, priv->rx_usecs);
	bqnic_wr(priv, BQNIC_REG_CTRL, BQNIC_CTRL_RX_EN | BQNIC_CTRL_TX_EN |
		 BQNIC_CTRL_RSS_EN | BQNIC_CTRL_RX_CSUM | BQNIC_CTRL_IRQ_AUTO);
	bqnic_update_link(priv);
	/* Paired with the acquire in bqnic_xdp_xmit(): qps is set up. */
	smp_store_release(&priv->rings_ready, true);
	/* Wake, not start: frames that waited in the qdisc meanwhile go now. */
	netif_tx_wake_all_queues(ndev);
}

static int bqnic_open(struct net_device *ndev)
{
	struct bqnic_priv *priv = netdev_priv(ndev);
	struct bqnic_params p = bqnic_cur_params(priv);
	struct bqnic_qp *qps;

	qps = bqnic_qps_alloc(priv, &p);
	if (IS_ERR(qps))
		return PTR_ERR(qps);
	priv->qps = qps;
	bqnic_start_queues(priv);
	return 0;
}

static int bqnic_stop(struct net_device *ndev)
{
	struct bqnic_priv *priv = netdev_priv(ndev);

	bqnic_stop_queues(priv);
	bqnic_qps_free(priv->qps, priv->num_queues);
	priv->qps = NULL;
	/* The tx skbs still in flight were freed with the rings. */
	bqnic_reset_bql(priv);
	return 0;
}

/*
 * Ring size, channel and XDP changes: the new queues are allocated first,
 * while the old ones keep running; a failure there changes nothing. Past
 * that point nothing can fail: stop the old queues, swap, start the new ones,
 * free the old ones (fbnic_set_ringparam does the same).
 */
static int bqnic_reconfigure(struct bqnic_priv *priv,
			     const struct bqnic_params *p)
{
	struct net_device *ndev = priv->ndev;
	u32 old_queues = priv->num_queues, i;
	struct bqnic_qp *old, *qps;
	int err;

	if (!netif_running(ndev)) {
		err = netif_set_real_num_queues(ndev, p->queues, p->queues);
		if (err)
			return err;
		priv->num_queues = p->queues;
		priv->rx_ring_size = p->rx_ring;
		priv->tx_ring_size = p->tx_ring;
		WRITE_ONCE(priv->xdp_prog, p->prog);
		return 0;
	}

	qps = bqnic_qps_alloc(priv, p);
	if (IS_ERR(qps))
		return PTR_ERR(qps);
	if (p->queues > old_queues) {
		/*
		 * More queues can fail (sysfs objects), fewer cannot: grow
		 * while nothing else has changed. The new tx queues stay
		 * stopped until their rings run.
		 */
		for (i = old_queues; i < p->queues; i++)
			netif_tx_stop_queue(netdev_get_tx_queue(ndev, i));
		err = netif_set_real_num_queues(ndev, p->queues, p->queues);
		if (err) {
			bqnic_qps_free(qps, p->queues);
			return err;
		}
	}

	bqnic_stop_queues(priv);
	if (p->queues < old_queues)
		WARN_ON(netif_set_real_num_queues(ndev, p->queues, p->queues));
	old = priv->qps;
	priv->qps = qps;
	priv->num_queues = p->queues;
	priv->rx_ring_size = p->rx_ring;
	priv->tx_ring_size = p->tx_ring;
	WRITE_ONCE(priv->xdp_prog, p->prog);
	bqnic_start_queues(priv);
	bqnic_qps_free(old, old_queues);
	return 0;
}

/* Only the device's frame limit depends on the MTU, not the rings. */
static int bqnic_change_mtu(struct net_device *ndev, int mtu)
{
	struct bqnic_priv *priv = netdev_priv(ndev);

	if (priv->xdp_prog && mtu > BQNIC_LBQ_BUF_SIZE - ETH_HLEN) {
		netdev_err(ndev, "MTU %d too large for XDP (single buffer only)\n", mtu);
		return -EINVAL;
	}
	WRITE_ONCE(ndev->mtu, mtu);
	if (netif_running(ndev))
		bqnic_wr(priv, BQNIC_REG_MAX_FRAME, mtu + ETH_HLEN);
	return 0;
}

/*
 * The core hands us a reference on prog when we succeed, and drops it itself
 * when we fail: keep prog only on success, and then drop ours on the old one.
 */
static int bqnic_xdp_setup(struct bqnic_priv *priv, struct bpf_prog *prog,
			   struct netlink_ext_ack *extack)
{
	struct bqnic_params p = bqnic_cur_params(priv);
	struct bpf_prog *old = priv->xdp_prog;
	int err;

	if (prog && priv->ndev->mtu > BQNIC_LBQ_BUF_SIZE - ETH_HLEN) {
		NL_SET_ERR_MSG_MOD(extack, "MTU too large for XDP (single buffer only)");
		return -EOPNOTSUPP;
	}
	/* New page_pools with the right DMA direction. */
	p.prog = prog;
	err = bqnic_reconfigure(priv, &p);
	if (err) {
		NL_SET_ERR_MSG_MOD(extack, "cannot allocate the queues for XDP");
		return err;
	}
	if (old)
		bpf_prog_put(old);
	return 0;
}

static int bqnic_bpf(struct net_device *ndev, struct netdev_bpf *bpf)
{
	switch (bpf->command) {
	case XDP_SETUP_PROG:
		return bqnic_xdp_setup(netdev_priv(ndev), bpf->prog,
				       bpf->extack);
	default:
		return -EINVAL;
	}
}

static void bqnic_get_stats64(struct net_device *ndev,
			      struct rtnl_link_stats64 *stats)
{
	struct bqnic_priv *priv = netdev_priv(ndev);
	u32 i;

	for (i = 0; i < priv->max_queues; i++) {
		struct bqnic_queue_stats *qs = &priv->stats[i];
		u64 rx_p, rx_b, rx_d, tx_p, tx_b, tx_d;
		unsigned int start;

		do {
			start = u64_stats_fetch_begin(&qs->rx.syncp);
			rx_p = u64_stats_read(&qs->rx.packets);
			rx_b = u64_stats_read(&qs->rx.bytes);
			rx_d = u64_stats_read(&qs->rx.dropped);
		} while (u64_stats_fetch_retry(&qs->rx.syncp, start));
		do {
			start = u64_stats_fetch_begin(&qs->tx.syncp);
			tx_p = u64_stats_read(&qs->tx.packets);
			tx_b = u64_stats_read(&qs->tx.bytes);
		} while (u64_stats_fetch_retry(&qs->tx.syncp, start));
		do {
			start = u64_stats_fetch_begin(&qs->xmit.syncp);
			tx_d = u64_stats_read(&qs->xmit.dropped);
		} while (u64_stats_fetch_retry(&qs->xmit.syncp, start));
		stats->rx_packets += rx_p;
		stats->rx_bytes += rx_b;
		stats->rx_dropped += rx_d;
		stats->tx_packets += tx_p;
		stats->tx_bytes += tx_b;
		stats->tx_dropped += tx_d;
	}
}

static const struct net_device_ops bqnic_netdev_ops = {
	.ndo_open		= bqnic_open,
	.ndo_stop		= bqnic_stop,
	.ndo_start_xmit		= bqnic_start_xmit,
	.ndo_get_stats64	= bqnic_get_stats64,
	.ndo_change_mtu		= bqnic_change_mtu,
	.ndo_validate_addr	= eth_validate_addr,
	.ndo_set_mac_address	= eth_mac_addr,
	.ndo_bpf		= bqnic_bpf,
	.ndo_xdp_xmit		= bqnic_xdp_xmit,
};

/* ---- netdev qstats (netlink qstats-get) ---- */

static void bqnic_get_queue_stats_rx(struct net_device *ndev, int idx,
				     struct netdev_queue_stats_rx *stats)
{
	struct bqnic_priv *priv = netdev_priv(ndev);
	struct bqnic_rx_stats *rs = &priv->stats[idx].rx;
	unsigned int start;

	do {
		start = u64_stats_fetch_begin(&rs->syncp);
		stats->packets = u64_stats_read(&rs->packets);
		stats->bytes = u64_stats_read(&rs->bytes);
		stats->alloc_fail = u64_stats_read(&rs->alloc_fail);
		stats->csum_unnecessary = u64_stats_read(&rs->csum_ok);
	} while (u64_stats_fetch_retry(&rs->syncp, start));
	stats->hw_drops = bqnic_rd(priv, BQNIC_Q(idx, BQNIC_Q_DROP_NO_SBQ)) +
			  bqnic_rd(priv, BQNIC_Q(idx, BQNIC_Q_DROP_NO_LBQ)) +
			  bqnic_rd(priv, BQNIC_Q(idx, BQNIC_Q_DROP_CQ_FULL));
}

static void bqnic_get_queue_stats_tx(struct net_device *ndev, int idx,
				     struct netdev_queue_stats_tx *stats)
{
	struct bqnic_priv *priv = netdev_priv(ndev);
	struct bqnic_tx_stats *ts = &priv->stats[idx].tx;
	unsigned int start;

	do {
		start = u64_stats_fetch_begin(&ts->syncp);
		stats->packets = u64_stats_read(&ts->packets);
		stats->bytes = u64_stats_read(&ts->bytes);
	} while (u64_stats_fetch_retry(&ts->syncp, start));
}

static void bqnic_get_base_stats(struct net_device *ndev,
				 struct netdev_queue_stats_rx *rx,
				 struct netdev_queue_stats_tx *tx)
{
	struct bqnic_priv *priv = netdev_priv(ndev);
	u32 i;

	/* Counters of queues beyond the active ones live on here. */
	rx->packets = 0;
	rx->bytes = 0;
	rx->alloc_fail = 0;
	rx->csum_unnecessary = 0;
	rx->hw_drops = 0;
	tx->packets = 0;
	tx->bytes = 0;
	for (i = priv->num_queues; i < priv->max_queues; i++) {
		struct netdev_queue_stats_rx r = {};
		struct netdev_queue_stats_tx t = {};

		bqnic_get_queue_stats_rx(ndev, i, &r);
		bqnic_get_queue_stats_tx(ndev, i, &t);
		rx->packets += r.packets;
		rx->bytes += r.bytes;
		rx->alloc_fail += r.alloc_fail;
		rx->csum_unnecessary += r.csum_unnecessary;
		rx->hw_drops += r.hw_drops;
		tx->packets += t.packets;
		tx->bytes += t.bytes;
	}
}

static const struct netdev_stat_ops bqnic_stat_ops = {
	.get_queue_stats_rx	= bqnic_get_queue_stats_rx,
	.get_queue_stats_tx	= bqnic_get_queue_stats_tx,
	.get_base_stats		= bqnic_get_base_stats,
};

/* ---- ethtool ---- */

static const char bqnic_queue_stat_names[][ETH_GSTRING_LEN] = {
	"rx_packets", "rx_bytes", "rx_alloc_fail", "rx_refill_work_runs",
	"rx_sbq_empty", "rx_lbq_empty", "rx_xdp_drop", "rx_xdp_tx",
	"rx_xdp_redirect", "tx_packets", "tx_bytes", "tx_busy",
	"dev_drop_no_sbq", "dev_drop_no_lbq", "dev_drop_cq_full", "rx_dropped",
	"tx_dropped", "rx_refill_work_starts",
};

#define BQNIC_QUEUE_STATS	ARRAY_SIZE(bqnic_queue_stat_names)

static void bqnic_get_drvinfo(struct net_device *ndev,
			      struct ethtool_drvinfo *info)
{
	struct bqnic_priv *priv = netdev_priv(ndev);

	strscpy(info->driver, DRV_NAME, sizeof(info->driver));
	strscpy(info->bus_info, pci_name(priv->pdev), sizeof(info->bus_info));
}

static int bqnic_get_sset_count(struct net_device *ndev, int sset)
{
	struct bqnic_priv *priv = netdev_priv(ndev);

	if (sset != ETH_SS_STATS)
		return -EOPNOTSUPP;
	return priv->max_queues * BQNIC_QUEUE_STATS + 1 +
	       page_pool_ethtool_stats_get_count();
}

static void bqnic_get_strings(struct net_device *ndev, u32 sset, u8 *data)
{
	struct bqnic_priv *priv = netdev_priv(ndev);
	u32 q, i;

	if (sset != ETH_SS_STATS)
		return;
	for (q = 0; q < priv->max_queues; q++)
		for (i = 0; i < BQNIC_QUEUE_STATS; i++)
			ethtool_sprintf(&data, "q%u_%s", q, bqnic_queue_stat_names[i]);
	ethtool_puts(&data, "dma_errors");
	page_pool_ethtool_stats_get_strings(data);
}

static void bqnic_get_ethtool_stats(struct net_device *ndev,
				    struct ethtool_stats *estats, u64 *data)
{
	struct bqnic_priv *priv = netdev_priv(ndev);
	struct page_pool_stats pp_stats = {};
	u32 q;

	for (q = 0; q < priv->max_queues; q++) {
		struct bqnic_xmit_stats *xs = &priv->stats[q].xmit;
		struct bqnic_rx_stats *rs = &priv->stats[q].rx;
		struct bqnic_tx_stats *ts = &priv->stats[q].tx;
		unsigned int start;

		do {
			start = u64_stats_fetch_begin(&rs->syncp);
			data[0] = u64_stats_read(&rs->packets);
			data[1] = u64_stats_read(&rs->bytes);
			data[2] = u64_stats_read(&rs->alloc_fail);
			data[3] = u64_stats_read(&rs->refill_work_runs);
			data[4] = u64_stats_read(&rs->sbq_empty);
			data[5] = u64_stats_read(&rs->lbq_empty);
			data[6] = u64_stats_read(&rs->xdp_drop);
			data[7] = u64_stats_read(&rs->xdp_tx);
			data[8] = u64_stats_read(&rs->xdp_redirect);
			data[15] = u64_stats_read(&rs->dropped);
			data[17] = u64_stats_read(&rs->refill_work_starts);
		} while (u64_stats_fetch_retry(&rs->syncp, start));
		do {
			start = u64_stats_fetch_begin(&ts->syncp);
			data[9] = u64_stats_read(&ts->packets);
			data[10] = u64_stats_read(&ts->bytes);
		} while (u64_stats_fetch_retry(&ts->syncp, start));
		do {
			start = u64_stats_fetch_begin(&xs->syncp);
			data[11] = u64_stats_read(&xs->busy);
			data[16] = u64_stats_read(&xs->dropped);
		} while (u64_stats_fetch_retry(&xs->syncp, start));
		/* The device's own counts of frames it dropped for lack of room */
		data[12] = bqnic_rd(priv, BQNIC_Q(q, BQNIC_Q_DROP_NO_SBQ));
		data[13] = bqnic_rd(priv, BQNIC_Q(q, BQNIC_Q_DROP_NO_LBQ));
		data[14] = bqnic_rd(priv, BQNIC_Q(q, BQNIC_Q_DROP_CQ_FULL));
		data += BQNIC_QUEUE_STATS;
		/* Under RTNL: qps is the running configuration, if any. */
		if (priv->qps && q < priv->num_queues)
			page_pool_get_stats(priv->qps[q].pool, &pp_stats);
	}
	*data++ = READ_ONCE(priv->dma_errors);
	page_pool_ethtool_stats_get(data, &pp_stats);
}

static void bqnic_get_ringparam(struct net_device *ndev,
				struct ethtool_ringparam *ring,
				struct kernel_ethtool_ringparam *kring,
				struct netlink_ext_ack *extack)
{
	struct bqnic_priv *priv = netdev_priv(ndev);

	ring->rx_max_pending = BQNIC_MAX_RING;
	ring->tx_max_pending = BQNIC_MAX_RING;
	ring->rx_pending = priv->rx_ring_size;
	ring->tx_pending = priv->tx_ring_size;
}

static int bqnic_set_ringparam(struct net_device *ndev,
			       struct ethtool_ringparam *ring,
			       struct kernel_ethtool_ringparam *kring,
			       struct netlink_ext_ack *extack)
{
	struct bqnic_priv *priv = netdev_priv(ndev);
	u32 rx = roundup_pow_of_two(max_t(u32, ring->rx_pending, BQNIC_MIN_RING));
	u32 tx = roundup_pow_of_two(max_t(u32, ring->tx_pending, BQNIC_MIN_RING));
	struct bqnic_params p;

	if (ring->rx_mini_pending || ring->rx_jumbo_pending)
		return -EINVAL;
	if (rx > BQNIC_MAX_RING || tx > BQNIC_MAX_RING) {
		NL_SET_ERR_MSG_MOD(extack, "ring size above 4096");
		return -EINVAL;
	}
	p = bqnic_cur_params(priv);
	p.rx_ring = rx;
	p.tx_ring = tx;
	return bqnic_reconfigure(priv, &p);
}

static void bqnic_get_channels(struct net_device *ndev,
			       struct ethtool_channels *ch)
{
	struct bqnic_priv *priv = netdev_priv(ndev);

	ch->max_combined = priv->max_queues;
	ch->combined_count = priv->num_queues;
}

static int bqnic_set_channels(struct net_device *ndev,
			      struct ethtool_channels *ch)
{
	struct bqnic_priv *priv = netdev_priv(ndev);
	struct bqnic_params p = bqnic_cur_params(priv);

	if (!ch->combined_count || ch->rx_count || ch->tx_count ||
	    ch->combined_count > priv->max_queues)
		return -EINVAL;
	p.queues = ch->combined_count;
	return bqnic_reconfigure(priv, &p);
}

static int bqnic_get_coalesce(struct net_device *ndev,
			      struct ethtool_coalesce *ec,
			      struct kernel_ethtool_coalesce *kec,
			      struct netlink_ext_ack *extack)
{
	struct bqnic_priv *priv = netdev_priv(ndev);

	ec->rx_coalesce_usecs = priv->rx_usecs;
	return 0;
}

/* ITR spaces the interrupts of each queue vector, rx and tx alike. */
static int bqnic_set_coalesce(struct net_device *ndev,
			      struct ethtool_coalesce *ec,
			      struct kernel_ethtool_coalesce *kec,
			      struct netlink_ext_ack *extack)
{
	struct bqnic_priv *priv = netdev_priv(ndev);

	if (ec->rx_coalesce_usecs > BQNIC_MAX_ITR) {
		NL_SET_ERR_MSG_MOD(extack, "rx-usecs above 65535");
		return -EINVAL;
	}
	priv->rx_usecs = ec->rx_coalesce_usecs;
	bqnic_wr(priv, BQNIC_REG_ITR, priv->rx_usecs);
	return 0;
}

static int bqnic_get_rxnfc(struct net_device *ndev, struct ethtool_rxnfc *cmd,
			   u32 *rule_locs)
{
	struct bqnic_priv *priv = netdev_priv(ndev);

	if (cmd->cmd != ETHTOOL_GRXRINGS)
		return -EOPNOTSUPP;
	cmd->data = priv->num_queues;
	return 0;
}

static u32 bqnic_get_rxfh_key_size(struct net_device *ndev)
{
	return BQNIC_RSS_KEY_SIZE;
}

static u32 bqnic_get_rxfh_indir_size(struct net_device *ndev)
{
	return BQNIC_RSS_INDIR_SIZE;
}

static int bqnic_get_rxfh(struct net_device *ndev,
			  struct ethtool_rxfh_param *rxfh)
{
	struct bqnic_priv *priv = netdev_priv(ndev);

	rxfh->hfunc = ETH_RSS_HASH_TOP;
	if (rxfh->key)
		memcpy(rxfh->key, priv->rss_key, BQNIC_RSS_KEY_SIZE);
	if (rxfh->indir)
		memcpy(rxfh->indir, priv->rss_indir, sizeof(priv->rss_indir));
	return 0;
}

static int bqnic_set_rxfh(struct net_device *ndev,
			  struct ethtool_rxfh_param *rxfh,
			  struct netlink_ext_ack *extack)
{
	struct bqnic_priv *priv = netdev_priv(ndev);

	if (rxfh->hfunc != ETH_RSS_HASH_NO_CHANGE &&
	    rxfh->hfunc != ETH_RSS_HASH_TOP) {
		NL_SET_ERR_MSG_MOD(extack, "only the Toeplitz hash");
		return -EOPNOTSUPP;
	}
	if (rxfh->key)
		memcpy(priv->rss_key, rxfh->key, BQNIC_RSS_KEY_SIZE);
	if (rxfh->indir)
		memcpy(priv->rss_indir, rxfh->indir, sizeof(priv->rss_indir));
	/* Down, the device is reset and programmed again on the next open. */
	if (netif_running(ndev))
		bqnic_rss_write(priv);
	return 0;
}

/* SPEC.md section 5.1: the 4-tuple for TCP and UDP, the addresses for other IP. */
static int bqnic_get_rxfh_fields(struct net_device *ndev,
				 struct ethtool_rxfh_fields *fields)
{
	fields->data = RXH_IP_SRC | RXH_IP_DST;
	switch (fields->flow_type) {
	case TCP_V4_FLOW:
	case UDP_V4_FLOW:
	case TCP_V6_FLOW:
	case UDP_V6_FLOW:
		fields->data |= RXH_L4_B_0_1 | RXH_L4_B_2_3;
		break;
	case IPV4_FLOW:
	case IPV6_FLOW:
		break;
	default:
		fields->data = 0;
	}
	return 0;
}

static const struct ethtool_ops bqnic_ethtool_ops = {
	.supported_coalesce_params = ETHTOOL_COALESCE_RX_USECS,
	.get_drvinfo		= bqnic_get_drvinfo,
	.get_link		= ethtool_op_get_link,
	.get_sset_count		= bqnic_get_sset_count,
	.get_strings		= bqnic_get_strings,
	.get_ethtool_stats	= bqnic_get_ethtool_stats,
	.get_ringparam		= bqnic_get_ringparam,
	.set_ringparam		= bqnic_set_ringparam,
	.get_channels		= bqnic_get_channels,
	.set_channels		= bqnic_set_channels,
	.get_coalesce		= bqnic_get_coalesce,
	.set_coalesce		= bqnic_set_coalesce,
	.get_rxnfc		= bqnic_get_rxnfc,
	.get_rxfh_key_size	= bqnic_get_rxfh_key_size,
	.get_rxfh_indir_size	= bqnic_get_rxfh_indir_size,
	.get_rxfh		= bqnic_get_rxfh,
	.set_rxfh		= bqnic_set_rxfh,
	.get_rxfh_fields	= bqnic_get_rxfh_fields,
};

/* ---- PCI ---- */

static int bqnic_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct net_device *ndev;
	struct bqnic_priv *priv;
	u32 max_queues, i;
	u8 mac[ETH_ALEN];
	void __iomem *regs;
	int err;

	err = pcim_enable_device(pdev);
	if (err)
		return err;
	err = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(64));
	if (err)
		return err;
	err = pcim_iomap_regions(pdev, BIT(0), DRV_NAME);
	if (err)
		return err;
	regs = pcim_iomap_table(pdev)[0];
	if (readl(regs + BQNIC_REG_ID) != BQNIC_ID_VALUE) {
		dev_err(&pdev->dev, "not a bqnic (ID 0x%08x)\n",
			readl(regs + BQNIC_REG_ID));
		return -ENODEV;
	}
	writel(BQNIC_CTRL_RESET, regs + BQNIC_REG_CTRL);
	pci_set_master(pdev);

	max_queues = min_t(u32, readl(regs + BQNIC_REG_NUM_QUEUES),
			   BQNIC_MAX_QUEUES);
	if (!max_queues)
		return -ENODEV;
	ndev = devm_alloc_etherdev_mqs(&pdev->dev, sizeof(*priv), max_queues,
				       max_queues);
	if (!ndev)
		return -ENOMEM;
	SET_NETDEV_DEV(ndev, &pdev->dev);
	priv = netdev_priv(ndev);
	priv->ndev = ndev;
	priv->pdev = pdev;
	priv->regs = regs;
	priv->max_queues = max_queues;
	netdev_rss_key_fill(priv->rss_key, sizeof(priv->rss_key));
	priv->num_queues = min_t(u32, max_queues,
				 netif_get_num_default_rss_queues());
	priv->rx_ring_size = BQNIC_DEFAULT_RING;
	priv->tx_ring_size = BQNIC_DEFAULT_RING;
	priv->rx_usecs = BQNIC_DEFAULT_RX_USECS;
	spin_lock_init(&priv->refill_lock);
	priv->stats = devm_kcalloc(&pdev->dev, max_queues, sizeof(*priv->stats),
				   GFP_KERNEL);
	if (!priv->stats)
		return -ENOMEM;
	for (i = 0; i < max_queues; i++) {
		u64_stats_init(&priv->stats[i].rx.syncp);
		u64_stats_init(&priv->stats[i].tx.syncp);
		u64_stats_init(&priv->stats[i].xmit.syncp);
	}

	err = pci_alloc_irq_vectors(pdev, max_queues + 1, max_queues + 1,
				    PCI_IRQ_MSIX);
	if (err < 0)
		return err;
	err = request_irq(pci_irq_vector(pdev, max_queues), bqnic_misc_irq, 0,
			  DRV_NAME "-misc", priv);
	if (err)
		goto free_vectors;

	put_unaligned_le32(readl(regs + BQNIC_REG_MAC_LO), mac);
	put_unaligned_le16(readl(regs + BQNIC_REG_MAC_HI), mac + 4);
	if (is_valid_ether_addr(mac))
		eth_hw_addr_set(ndev, mac);
	else
		eth_hw_addr_random(ndev);

	ndev->netdev_ops = &bqnic_netdev_ops;
	ndev->ethtool_ops = &bqnic_ethtool_ops;
	ndev->stat_ops = &bqnic_stat_ops;
	ndev->hw_features = NETIF_F_SG | NETIF_F_HW_CSUM | NETIF_F_RXCSUM |
			    NETIF_F_RXHASH;
	ndev->features = ndev->hw_features | NETIF_F_HIGHDMA;
	ndev->min_mtu = ETH_MIN_MTU;
	ndev->max_mtu = BQNIC_MAX_MTU;
	ndev->xdp_features = NETDEV_XDP_ACT_BASIC | NETDEV_XDP_ACT_REDIRECT |
			     NETDEV_XDP_ACT_NDO_XMIT;
	err = netif_set_real_num_queues(ndev, priv->num_queues,
					priv->num_queues);
	if (err)
		goto free_misc;
	netif_carrier_off(ndev);
	pci_set_drvdata(pdev, priv);

	err = register_netdev(ndev);
	if (err)
		goto free_misc;
	netdev_info(ndev, "bqnic %pM, %u queue pairs\n", ndev->dev_addr,
		    max_queues);
	return 0;

free_misc:
	free_irq(pci_irq_vector(pdev, max_queues), priv);
free_vectors:
	pci_free_irq_vectors(pdev);
	return err;
}

static void bqnic_remove(struct pci_dev *pdev)
{
	struct bqnic_priv *priv = pci_get_drvdata(pdev);

	unregister_netdev(priv->ndev);
	writel(BQNIC_CTRL_RESET, priv->regs + BQNIC_REG_CTRL);
	free_irq(pci_irq_vector(pdev, priv->max_queues), priv);
	pci_free_irq_vectors(pdev);
	if (priv->xdp_prog)
		bpf_prog_put(priv->xdp_prog);
}

static const struct pci_device_id bqnic_pci_tbl[] = {
	{ PCI_DEVICE(BQNIC_VENDOR_ID, BQNIC_DEVICE_ID) },
	{ }
};
MODULE_DEVICE_TABLE(pci, bqnic_pci_tbl);

static struct pci_driver bqnic_driver = {
	.name		= DRV_NAME,
	.id_table	= bqnic_pci_tbl,
	.probe		= bqnic_probe,
	.remove		= bqnic_remove,
};
module_pci_driver(bqnic_driver);

MODULE_DESCRIPTION("bqlab NIC with small/large rx buffer queues");
MODULE_LICENSE("GPL");
