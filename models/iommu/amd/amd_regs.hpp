// SPDX-License-Identifier: Apache-2.0
#pragma once
// AMD-Vi MMIO register file as a plain class (kernel-free).
//
// Fidelity: offsets and bits of shared/reference/spec-layouts.md B.7 as Linux
// drivers/iommu/amd/amd_iommu_types.h names them (MMIO_*_OFFSET, CONTROL_*,
// MMIO_STATUS_*): Device Table Base (base 51:12, Size 8:0), Command Buffer /
// Event Log / PPR Log Base (base 51:12, length 59:56 = 2^n entries, n = 8..15),
// Control (IommuEn, HtTunEn, EventLogEn, EventIntEn, ComWaitIntEn, InvTimeOut,
// PassPW, ResPassPW, Coherent, Isoc, CmdBufEn, PPRLogEn, PPRIntEn, PPREn, GTEn,
// GAEn, GAMEn, GALogEn, GAIntEn, XTEn, IntCapXTEn stored as written; the ones the
// model acts on are listed in the accessors), the read-only EFR composed from
// AmdParams (EFR2 reads 0), the ring pointers (byte offsets, bits 18:4), and
// Status with RW1C EventOverflow/EventLogInt/ComWaitInt/PPROverflow/PPRInt and
// read-only EventLogRun/CmdBufRun/PPRLogRun that follow Control (QEMU
// amdvi_handle_control_write). Writing a ring's base register resets its head
// and tail to 0 (QEMU); software may write the event/PPR log tails only while that
// log is disabled (Linux zeroes them before enabling). Accesses must be 4 or 8
// bytes, naturally aligned; others are ignored (writes) or read 0.
// Not modelled: the exclusion range (Exclusion Base/Limit stored only), the GA
// log, MSI capability mirror registers (0x158-0x16C), performance counters,
// hardware-error registers, SMI filters. The MSI capability's MMIO mirror
// (Linux MMIO_MSI_ADDR_LO/HI/DATA_OFFSET 0x15C/0x160/0x164, EFR.MsiCapMmioSup bit 46)
// holds the address and data of the unit's interrupt message.
#include <cstdint>

#include "models/common/time.hpp"
#include "models/iommu/amd/amd_params.hpp"
#include "models/iommu/amd/amd_tables.hpp"

namespace iommusim::iommu::amd {

/// Register offsets (Linux MMIO_*_OFFSET).
namespace reg {
inline constexpr uint32_t DEV_TABLE = 0x0000, CMD_BASE = 0x0008, EVT_BASE = 0x0010, CONTROL = 0x0018,
                          EXCL_BASE = 0x0020, EXCL_LIMIT = 0x0028, EFR = 0x0030, PPR_BASE = 0x0038,
                          MSI_CAP = 0x0158, MSI_ADDR_LO = 0x015C, MSI_ADDR_HI = 0x0160, MSI_DATA = 0x0164,
                          EFR2 = 0x01A0, CMD_HEAD = 0x2000, CMD_TAIL = 0x2008, EVT_HEAD = 0x2010,
                          EVT_TAIL = 0x2018, STATUS = 0x2020, PPR_HEAD = 0x2030, PPR_TAIL = 0x2038;
}

/// Control register bit numbers (Linux CONTROL_*).
namespace ctl {
inline constexpr unsigned IOMMU_EN = 0, HT_TUN_EN = 1, EVT_LOG_EN = 2, EVT_INT_EN = 3, COMWAIT_EN = 4,
                          INV_TIMEOUT = 5, PASSPW_EN = 8, RESPASSPW_EN = 9, COHERENT_EN = 10, ISOC_EN = 11,
                          CMDBUF_EN = 12, PPRLOG_EN = 13, PPRINT_EN = 14, PPR_EN = 15, GT_EN = 16, GA_EN = 17,
                          GAM_EN = 25, GALOG_EN = 28, GAINT_EN = 29, XT_EN = 50, INTCAPXT_EN = 51;
/// InvTimeOut encodings (Linux CTRL_INV_TO_*): none, 1 ms, 10 ms, 100 ms, 1 s, 10 s, 100 s.
inline constexpr uint8_t INV_TO_NONE = 0, INV_TO_1MS = 1, INV_TO_10MS = 2, INV_TO_100MS = 3, INV_TO_1S = 4,
                         INV_TO_10S = 5, INV_TO_100S = 6;
} // namespace ctl

/// Status register bits (Linux MMIO_STATUS_*).
namespace st {
inline constexpr uint32_t EVT_OVERFLOW = 1u << 0, EVT_INT = 1u << 1, COM_WAIT_INT = 1u << 2, EVT_RUN = 1u << 3,
                          CMDBUF_RUN = 1u << 4, PPR_OVERFLOW = 1u << 5, PPR_INT = 1u << 6, PPR_RUN = 1u << 7;
inline constexpr uint32_t kW1C = EVT_OVERFLOW | EVT_INT | COM_WAIT_INT | PPR_OVERFLOW | PPR_INT;
} // namespace st

/// A ring in memory as its base and pointer registers describe it.
struct RingRegs {
    uint64_t base = 0;
    uint32_t entries = 0;  ///< 2^len (16-byte entries); 0 when len is reserved (< 8)
    uint32_t head = 0;     ///< byte offset
    uint32_t tail = 0;     ///< byte offset
    uint32_t bytes() const { return entries * 16u; }
};

class AmdRegs {
public:
    explicit AmdRegs(const AmdParams& p) : efr_(p.efr() | kMsiCapMmioSup) {}

    /// What a software write changed, for the shell to act on.
    enum class Effect : uint8_t { none, control, cmd_base, cmd_tail, cmd_head, evt_base, evt_head, ppr_base,
                                  ppr_head, status, dev_table };

    uint64_t read(uint32_t off, unsigned size) const;
    Effect write(uint32_t off, uint64_t value, unsigned size);

    // ---- hardware view -------------------------------------------------
    DevTable dev_table() const { return DevTable::from_register(dev_table_); }
    RingRegs cmd_ring() const { return ring(cmd_base_, cmd_head_, cmd_tail_); }
    RingRegs event_ring() const { return ring(evt_base_, evt_head_, evt_tail_); }
    RingRegs ppr_ring() const { return ring(ppr_base_, ppr_head_, ppr_tail_); }
    void hw_set_cmd_head(uint32_t h) { cmd_head_ = h & kPtrMask; }
    void hw_set_event_tail(uint32_t t) { evt_tail_ = t & kPtrMask; }
    void hw_set_ppr_tail(uint32_t t) { ppr_tail_ = t & kPtrMask; }
    /// Sets status bits (sticky ones stay until software writes 1 to them).
    void hw_set_status(uint32_t b) { status_ |= b & (st::kW1C); }
    uint32_t status() const { return status_ | run_bits(); }

    /// The unit stopped the command buffer (illegal command) or a log (overflow): its run
    /// bit reads 0 until software clears and sets the enable again (Linux
    /// amd_iommu_reset_cmd_buffer / amd_iommu_restart_event_logging do exactly that).
    void hw_stop(uint32_t run_bit) { stopped_ |= run_bit & (st::CMDBUF_RUN | st::EVT_RUN | st::PPR_RUN); }

    bool control(unsigned bit) const { return (control_ >> bit) & 1; }
    bool iommu_en() const { return control(ctl::IOMMU_EN); }
    bool cmdbuf_running() const { return iommu_en() && control(ctl::CMDBUF_EN) && !(stopped_ & st::CMDBUF_RUN); }
    bool event_log_running() const { return iommu_en() && control(ctl::EVT_LOG_EN) && !(stopped_ & st::EVT_RUN); }
    bool ppr_log_running() const { return iommu_en() && control(ctl::PPRLOG_EN) && !(stopped_ & st::PPR_RUN); }
    bool gt_en() const { return control(ctl::GT_EN); }
    uint8_t inv_timeout_code() const { return static_cast<uint8_t>((control_ >> ctl::INV_TIMEOUT) & 7); }
    /// ATS invalidation time-out selected by Control.InvTimeOut; zero for "none" (0) and the reserved 7.
    Duration inv_timeout() const;
    uint64_t efr() const { return efr_; }
    /// The unit's MSI (address 0: none programmed).
    uint64_t msi_address() const { return msi_addr_; }
    uint32_t msi_data() const { return msi_data_; }

private:
    static constexpr uint32_t kPtrMask = 0x7FFF0; // bits 18:4
    static constexpr uint64_t kMsiCapMmioSup = uint64_t{1} << 46; // Linux IOMMU_EFR_MSICAPMMIOSUP_SHIFT
    static RingRegs ring(uint64_t base_reg, uint32_t head, uint32_t tail);
    uint32_t run_bits() const;

    uint64_t efr_;
    uint64_t dev_table_ = 0, cmd_base_ = 0, evt_base_ = 0, control_ = 0, excl_base_ = 0, excl_limit_ = 0,
             ppr_base_ = 0;
    uint32_t cmd_head_ = 0, cmd_tail_ = 0, evt_head_ = 0, evt_tail_ = 0, ppr_head_ = 0, ppr_tail_ = 0;
    uint32_t status_ = 0;
    uint64_t msi_addr_ = 0;
    uint32_t msi_data_ = 0;
    uint32_t stopped_ = 0; ///< run bits the unit cleared (st::*_RUN)
};

} // namespace iommusim::iommu::amd
