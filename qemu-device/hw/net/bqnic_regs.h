/*
 * bqnic register and memory layouts (see qemu-device/SPEC.md in bqlab)
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_NET_BQNIC_REGS_H
#define HW_NET_BQNIC_REGS_H

#define BQNIC_VENDOR_ID             0x1af4
#define BQNIC_DEVICE_ID             0x10f0
#define BQNIC_SUBSYS_VENDOR_ID      0x1af4
#define BQNIC_SUBSYS_ID             0x1100
#define BQNIC_REVISION              0x01

#define BQNIC_MMIO_BAR              0
#define BQNIC_MSIX_BAR              2
#define BQNIC_MMIO_SIZE             0x10000

#define BQNIC_MAX_QUEUES            8
#define BQNIC_MAX_RING              4096
#define BQNIC_MIN_RING              8

/* Global registers */
#define BQNIC_REG_ID                0x000
#define BQNIC_REG_VERSION           0x004
#define BQNIC_REG_CTRL              0x008
#define BQNIC_REG_STATUS            0x00c
#define BQNIC_REG_NUM_QUEUES        0x010
#define BQNIC_REG_MAX_RING          0x014
#define BQNIC_REG_MAC_LO            0x018
#define BQNIC_REG_MAC_HI            0x01c
#define BQNIC_REG_MAX_FRAME         0x020
#define BQNIC_REG_MISC_CAUSE        0x024
#define BQNIC_REG_MISC_MASK         0x028
#define BQNIC_REG_ITR               0x02c
#define BQNIC_REG_DMA_ERR_LO        0x030
#define BQNIC_REG_DMA_ERR_HI        0x034
#define BQNIC_REG_DMA_ERR_WHERE     0x038
#define BQNIC_REG_RSS_KEY           0x040
#define BQNIC_RSS_KEY_SIZE          40
#define BQNIC_REG_RSS_INDIR         0x080
#define BQNIC_RSS_INDIR_SIZE        128
#define BQNIC_REG_SBQ_BUF_SIZE      0x100
#define BQNIC_REG_LBQ_BUF_SIZE      0x104
#define BQNIC_REG_BQ_LOW_MARK       0x108

#define BQNIC_ID_VALUE              0x62716e63  /* "bqnc" */
#define BQNIC_VERSION_VALUE         0x00010000

#define BQNIC_CTRL_RESET            (1u << 0)
#define BQNIC_CTRL_RX_EN            (1u << 1)
#define BQNIC_CTRL_TX_EN            (1u << 2)
#define BQNIC_CTRL_HDR_SPLIT        (1u << 3)
#define BQNIC_CTRL_RSS_EN           (1u << 4)
#define BQNIC_CTRL_BQ_LOW_IRQ       (1u << 5)
#define BQNIC_CTRL_RX_CSUM          (1u << 6)
#define BQNIC_CTRL_IRQ_AUTO         (1u << 7)
#define BQNIC_CTRL_MASK             0xfe

#define BQNIC_STATUS_LINK_UP        (1u << 0)
#define BQNIC_STATUS_DMA_ERR        (1u << 1)
#define BQNIC_STATUS_QSTOPPED       (1u << 2)

#define BQNIC_MISC_LINK             (1u << 0)
#define BQNIC_MISC_DMA_ERR          (1u << 1)
#define BQNIC_MISC_ALL              0x3

#define BQNIC_DEFAULT_MAX_FRAME     1518
#define BQNIC_MIN_FRAME_LIMIT       64
#define BQNIC_MAX_FRAME_LIMIT       9216
#define BQNIC_DEFAULT_SBQ_BUF       256
#define BQNIC_DEFAULT_LBQ_BUF       4096
#define BQNIC_DEFAULT_BQ_LOW_MARK   4

/* Where a DMA error happened (DMA_ERR_WHERE bits 11:8) */
enum BqnicDmaWhere {
    BQNIC_WHERE_CQ = 1,
    BQNIC_WHERE_SBQ = 2,
    BQNIC_WHERE_LBQ = 3,
    BQNIC_WHERE_TX = 4,
    BQNIC_WHERE_RX_BUF = 5,
    BQNIC_WHERE_TX_BUF = 6,
};

/* Per queue pair registers, at BQNIC_QREG_BASE + q * BQNIC_QREG_STRIDE */
#define BQNIC_QREG_BASE             0x1000
#define BQNIC_QREG_STRIDE           0x100
#define BQNIC_Q_RXQ_CTRL            0x00
#define BQNIC_Q_RXQ_STATUS          0x04
#define BQNIC_Q_CQ_BASE_LO          0x08
#define BQNIC_Q_CQ_BASE_HI          0x0c
#define BQNIC_Q_CQ_SIZE             0x10
#define BQNIC_Q_CQ_PROD             0x14
#define BQNIC_Q_CQ_CONS             0x18
#define BQNIC_Q_CQ_ARM              0x1c
#define BQNIC_Q_SBQ_BASE_LO         0x20
#define BQNIC_Q_SBQ_BASE_HI         0x24
#define BQNIC_Q_SBQ_SIZE            0x28
#define BQNIC_Q_SBQ_PROD            0x2c
#define BQNIC_Q_SBQ_CONS            0x30
#define BQNIC_Q_LBQ_BASE_LO         0x40
#define BQNIC_Q_LBQ_BASE_HI         0x44
#define BQNIC_Q_LBQ_SIZE            0x48
#define BQNIC_Q_LBQ_PROD            0x4c
#define BQNIC_Q_LBQ_CONS            0x50
#define BQNIC_Q_TXQ_CTRL            0x60
#define BQNIC_Q_TXQ_STATUS          0x64
#define BQNIC_Q_TX_BASE_LO          0x68
#define BQNIC_Q_TX_BASE_HI          0x6c
#define BQNIC_Q_TX_SIZE             0x70
#define BQNIC_Q_TX_PROD             0x74
#define BQNIC_Q_TX_CONS             0x78
#define BQNIC_Q_CAUSE               0x80
#define BQNIC_Q_MASK                0x84
#define BQNIC_Q_DROP_NO_SBQ         0x88
#define BQNIC_Q_DROP_NO_LBQ         0x8c
#define BQNIC_Q_DROP_CQ_FULL        0x90

#define BQNIC_QCTRL_ENABLE          (1u << 0)
#define BQNIC_QSTATUS_STOPPED       (1u << 0)

#define BQNIC_QCAUSE_RX             (1u << 0)
#define BQNIC_QCAUSE_TX             (1u << 1)
#define BQNIC_QCAUSE_BQ_LOW         (1u << 2)
#define BQNIC_QCAUSE_ALL            0x7

/* Buffer queue entry: one little-endian 64-bit buffer address */
#define BQNIC_BQ_ENTRY_SIZE         8

/* Completion entry */
#define BQNIC_CQE_SIZE              32
#define BQNIC_CQE_LEN               0
#define BQNIC_CQE_HDR_LEN           4
#define BQNIC_CQE_NSBQ              6
#define BQNIC_CQE_NLBQ              7
#define BQNIC_CQE_RSS_HASH          8
#define BQNIC_CQE_FLAGS             12
#define BQNIC_CQE_PHASE             15
#define BQNIC_CQE_SBQ_INDEX         16
#define BQNIC_CQE_LBQ_INDEX         18

#define BQNIC_CQE_F_RSS             (1u << 0)
#define BQNIC_CQE_F_HASH_IPV4       (1u << 1)
#define BQNIC_CQE_F_HASH_IPV6       (2u << 1)
#define BQNIC_CQE_F_L4_CSUM_OK      (1u << 3)
#define BQNIC_CQE_F_L4_CSUM_BAD     (1u << 4)
#define BQNIC_CQE_F_IPV4            (1u << 5)
#define BQNIC_CQE_F_IPV6            (1u << 6)
#define BQNIC_CQE_F_TCP             (1u << 7)
#define BQNIC_CQE_F_UDP             (1u << 8)
#define BQNIC_CQE_F_SPLIT           (1u << 9)

/* TX descriptor */
#define BQNIC_TXD_SIZE              16
#define BQNIC_TXD_ADDR              0
#define BQNIC_TXD_LEN               8
#define BQNIC_TXD_FLAGS             10
#define BQNIC_TXD_CSUM_START        12
#define BQNIC_TXD_CSUM_OFFSET       14

#define BQNIC_TXD_F_EOP             (1u << 0)
#define BQNIC_TXD_F_CSUM            (1u << 1)
#define BQNIC_TXD_F_DONE            (1u << 15)

#define BQNIC_TX_MAX_FRAGS          16

#endif
