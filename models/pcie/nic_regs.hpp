// SPDX-License-Identifier: Apache-2.0
#pragma once
// What the NIC's host driver and the NIC model share: the register offsets
// of the RX and TX queues in BAR0 and the descriptor layouts, those of the
// Intel 82599 (ixgbe) family, whose descriptor traffic calibration.md's NIC
// row describes. 82599 datasheet §8.2.3.8 (receive registers), §8.2.3.9
// (transmit registers), §7.1.6.2 (advanced receive descriptors), §7.2.3.2.4
// (advanced transmit data descriptor).
#include <cstdint>

namespace iommusim::pcie::nic {

// Per-queue receive registers, queue n at base + 0x40 * n (n < 64).
inline constexpr uint32_t kRdbal = 0x01000;   ///< descriptor ring base, low 32 bits (128-byte aligned)
inline constexpr uint32_t kRdbah = 0x01004;   ///< descriptor ring base, high 32 bits
inline constexpr uint32_t kRdlen = 0x01008;   ///< ring length in bytes (multiple of 128)
inline constexpr uint32_t kRdh = 0x01010;     ///< head: next descriptor the NIC fills
inline constexpr uint32_t kRdt = 0x01018;     ///< tail: one past the last descriptor the driver posted (doorbell)
inline constexpr uint32_t kQueueStride = 0x40;
inline constexpr uint32_t kMaxQueues = 64;
constexpr uint32_t rx_reg(uint32_t reg, uint32_t queue) { return reg + queue * kQueueStride; }
// Per-queue transmit registers, queue n at base + 0x40 * n (§8.2.3.9.5-9).
inline constexpr uint32_t kTdbal = 0x06000;   ///< descriptor ring base, low 32 bits (128-byte aligned)
inline constexpr uint32_t kTdbah = 0x06004;
inline constexpr uint32_t kTdlen = 0x06008;   ///< ring length in bytes (multiple of 128)
inline constexpr uint32_t kTdh = 0x06010;     ///< head: next descriptor the NIC processes
inline constexpr uint32_t kTdt = 0x06018;     ///< tail: one past the last descriptor posted (doorbell)
constexpr uint32_t tx_reg(uint32_t reg, uint32_t queue) { return reg + queue * kQueueStride; }
// Extended interrupt mask set / clear (§8.2.3.5): bit n enables the cause of
// queue n (the driver maps queue n to cause n). A raised interrupt masks its
// cause (auto-mask) until the driver sets it again after its NAPI poll.
inline constexpr uint32_t kEims = 0x00880;
inline constexpr uint32_t kEimc = 0x00888;
// Extended interrupt throttle (§8.2.3.5.12): EITR[n] for cause n at 0x00820 + 4n
// (n < 24), then 0x012300 + 4(n - 24). ITR Interval [11:3] in 2 us units, the unit
// ixgbe assumes (it writes usecs << 2: IXGBE_20K_ITR = 200 = 50 us); 0 = no throttling.
inline constexpr uint32_t kEitrLow = 0x00820;
inline constexpr uint32_t kEitrHigh = 0x12300;
inline constexpr uint32_t kEitrIntervalMask = 0x0FF8;
constexpr uint32_t eitr_reg(uint32_t cause) { return cause < 24 ? kEitrLow + 4 * cause : kEitrHigh + 4 * (cause - 24); }
/// The interval an EITR value asks for, in microseconds.
constexpr uint32_t eitr_interval_us(uint32_t v) { return ((v & kEitrIntervalMask) >> 3) * 2; }
inline constexpr uint32_t kBarBytes = 0x20000;  ///< 128 KiB register BAR
// A model register with no 82599 counterpart (the 82599 has no PASID): the
// PASID every DMA of the function carries, written by the driver once the
// host's PASID allocator handed one out, as PASID-capable devices carry a
// programmed PASID per queue or context (Intel DSA's WQCFG PASID / PASID
// Enable). PASID [19:0], enable bit 31; 0 = requests without PASID.
inline constexpr uint32_t kPasidCtl = 0x1F000;
inline constexpr uint32_t kPasidEnable = 1u << 31;

inline constexpr uint32_t kDescriptorBytes = 16;
/// Advanced receive descriptor, read format (written by the driver).
struct RxReadDescriptor {
    uint64_t packet_buffer = 0;   ///< bus address (IOVA) of the packet buffer; bit 0 = A0 (no header split)
    uint64_t header_buffer = 0;   ///< header-split buffer; 0 (no header split); bit 0 overlaps DD
};
/// Advanced receive descriptor, write-back format (written by the NIC).
struct RxWriteBack {
    uint32_t info = 0;            ///< RSS type, packet type, header length
    uint32_t rss_hash = 0;
    uint32_t status_error = 0;    ///< extended status [19:0] (DD bit 0, EOP bit 1), extended error [31:20]
    uint16_t length = 0;          ///< PKT_LEN: bytes written to the packet buffer
    uint16_t vlan = 0;
};
/// Advanced transmit data descriptor, read format (written by the driver, §7.2.3.2.4).
struct TxDataDescriptor {
    uint64_t buffer = 0;          ///< bus address (IOVA) of the data
    uint32_t cmd_type_len = 0;    ///< DTALEN [15:0], DTYP [23:20] (0011b data), DCMD [31:24]
    uint32_t olinfo_status = 0;   ///< STA [3:0] (DD bit 0 in the write-back), PAYLEN [31:14]
};
/// Advanced transmit context descriptor (§7.2.3.2.3): the offload context (here TSO) the
/// data descriptors of the next packet use.
struct TxContextDescriptor {
    uint32_t vlan_macip_lens = 0; ///< IPLEN [8:0], MACLEN [15:9], VLAN [31:16]
    uint32_t seqnum_seed = 0;
    uint32_t type_tucmd_mlhl = 0; ///< TUCMD [19:9], DTYP [23:20] (0010b context), DEXT bit 29
    uint32_t mss_l4len_idx = 0;   ///< IDX [6:4], L4LEN [15:8], MSS [31:16]
};
/// Advanced transmit descriptor, write-back format: only STA.DD (dword 3 bit 0) is defined.
struct TxWriteBack {
    uint64_t reserved0 = 0;
    uint32_t reserved1 = 0;
    uint32_t status = 0;
};
static_assert(sizeof(RxReadDescriptor) == kDescriptorBytes && sizeof(RxWriteBack) == kDescriptorBytes);
static_assert(sizeof(TxDataDescriptor) == kDescriptorBytes && sizeof(TxWriteBack) == kDescriptorBytes);
static_assert(sizeof(TxContextDescriptor) == kDescriptorBytes);
inline constexpr uint32_t kTxDtypMask = 0xFu << 20;
inline constexpr uint32_t kTxDtypData = 0x3u << 20;  ///< DTYP = 0011b: advanced data descriptor
inline constexpr uint32_t kTxDtypContext = 0x2u << 20; ///< DTYP = 0010b: advanced context descriptor
inline constexpr uint32_t kTxCmdEop = 1u << 24;      ///< DCMD.EOP: last descriptor of the packet
inline constexpr uint32_t kTxCmdIfcs = 1u << 25;     ///< DCMD.IFCS: insert the Ethernet FCS
inline constexpr uint32_t kTxCmdRs = 1u << 27;       ///< DCMD.RS: report status (write back DD)
inline constexpr uint32_t kTxCmdDext = 1u << 29;     ///< DCMD.DEXT: advanced descriptor format
inline constexpr uint32_t kTxCmdTse = 1u << 31;      ///< DCMD.TSE: TCP segmentation of this packet
inline constexpr uint32_t kTxPaylenShift = 14;       ///< olinfo_status PAYLEN [31:14]
inline constexpr uint32_t kTxMaclenShift = 9;        ///< context vlan_macip_lens MACLEN
inline constexpr uint32_t kTxL4lenShift = 8;         ///< context mss_l4len_idx L4LEN [15:8]
inline constexpr uint32_t kTxMssShift = 16;          ///< context mss_l4len_idx MSS [31:16]
inline constexpr uint32_t kTxTucmdIpv4 = 1u << 10;   ///< TUCMD IPV4
inline constexpr uint32_t kTxTucmdL4Tcp = 1u << 11;  ///< TUCMD L4T = TCP
inline constexpr uint32_t kStatusDd = 1u << 0;
inline constexpr uint32_t kStatusEop = 1u << 1;

} // namespace iommusim::pcie::nic
