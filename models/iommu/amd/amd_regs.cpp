// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/amd/amd_regs.hpp"

#include "models/iommu/common/pt_format.hpp"

namespace iommusim::iommu::amd {

namespace {
constexpr uint64_t kBaseMask = bits(51, 12);
constexpr uint64_t kRingBaseMask = bits(51, 12) | bits(59, 56); // base + length
constexpr uint64_t kDevTabMask = bits(51, 12) | bits(8, 0);
constexpr uint64_t kStatusMask = bits(7, 0);
} // namespace

RingRegs AmdRegs::ring(uint64_t base_reg, uint32_t head, uint32_t tail) {
    unsigned len = static_cast<unsigned>((base_reg >> 56) & 0xF);
    // Lengths 0-7 are reserved (the buffer holds 256 to 32768 entries).
    return {base_reg & kBaseMask, len < 8 ? 0u : (1u << len), head, tail};
}

uint32_t AmdRegs::run_bits() const {
    return (cmdbuf_running() ? st::CMDBUF_RUN : 0) | (event_log_running() ? st::EVT_RUN : 0) |
           (ppr_log_running() ? st::PPR_RUN : 0);
}

Duration AmdRegs::inv_timeout() const {
    switch (inv_timeout_code()) {
    case ctl::INV_TO_1MS: return Duration::us(1000);
    case ctl::INV_TO_10MS: return Duration::us(10'000);
    case ctl::INV_TO_100MS: return Duration::us(100'000);
    case ctl::INV_TO_1S: return Duration::us(1'000'000);
    case ctl::INV_TO_10S: return Duration::us(10'000'000);
    case ctl::INV_TO_100S: return Duration::us(100'000'000);
    default: return Duration::zero();
    }
}

uint64_t AmdRegs::read(uint32_t off, unsigned size) const {
    if ((size != 4 && size != 8) || (off & (size - 1))) return 0;
    // The MSI mirror is a run of dwords that does not start on a qword boundary.
    if (size == 4 && off == reg::MSI_ADDR_LO) return msi_addr_ & 0xFFFF'FFFCu;
    if (size == 4 && off == reg::MSI_ADDR_HI) return msi_addr_ >> 32;
    if (size == 4 && off == reg::MSI_DATA) return msi_data_;
    uint64_t q = 0;
    switch (off & ~7u) {
    case reg::DEV_TABLE: q = dev_table_; break;
    case reg::CMD_BASE: q = cmd_base_; break;
    case reg::EVT_BASE: q = evt_base_; break;
    case reg::CONTROL: q = control_; break;
    case reg::EXCL_BASE: q = excl_base_; break;
    case reg::EXCL_LIMIT: q = excl_limit_; break;
    case reg::EFR: q = efr_; break;
    case reg::PPR_BASE: q = ppr_base_; break;
    case reg::CMD_HEAD: q = cmd_head_; break;
    case reg::CMD_TAIL: q = cmd_tail_; break;
    case reg::EVT_HEAD: q = evt_head_; break;
    case reg::EVT_TAIL: q = evt_tail_; break;
    case reg::STATUS: q = status(); break;
    case reg::PPR_HEAD: q = ppr_head_; break;
    case reg::PPR_TAIL: q = ppr_tail_; break;
    default: q = 0; break; // EFR2 and unmodelled registers read 0
    }
    if (size == 8) return q;
    return (off & 4) ? q >> 32 : q & 0xFFFF'FFFFu;
}

AmdRegs::Effect AmdRegs::write(uint32_t off, uint64_t value, unsigned size) {
    if ((size != 4 && size != 8) || (off & (size - 1))) return Effect::none;
    if (size == 4 && off == reg::MSI_ADDR_LO) {
        msi_addr_ = (msi_addr_ & ~uint64_t{0xFFFF'FFFFu}) | (value & 0xFFFF'FFFCu);
        return Effect::none;
    }
    if (size == 4 && off == reg::MSI_ADDR_HI) {
        msi_addr_ = (msi_addr_ & 0xFFFF'FFFFu) | (value << 32);
        return Effect::none;
    }
    if (size == 4 && off == reg::MSI_DATA) {
        msi_data_ = static_cast<uint32_t>(value & 0xFFFF);
        return Effect::none;
    }
    // Which bits of the 64-bit register this access writes.
    const unsigned shift = (size == 4 && (off & 4)) ? 32 : 0;
    const uint64_t wmask = size == 8 ? ~uint64_t{0} : (uint64_t{0xFFFF'FFFFu} << shift);
    const uint64_t v = (value << shift) & wmask;
    auto merge = [&](uint64_t old, uint64_t mask) { return (old & ~(wmask & mask)) | (v & mask); };
    auto merge32 = [&](uint32_t old) { return static_cast<uint32_t>(merge(old, kPtrMask)); };
    switch (off & ~7u) {
    case reg::DEV_TABLE: dev_table_ = merge(dev_table_, kDevTabMask); return Effect::dev_table;
    case reg::CMD_BASE:
        cmd_base_ = merge(cmd_base_, kRingBaseMask);
        cmd_head_ = cmd_tail_ = 0;
        return Effect::cmd_base;
    case reg::EVT_BASE:
        evt_base_ = merge(evt_base_, kRingBaseMask);
        evt_head_ = evt_tail_ = 0;
        return Effect::evt_base;
    case reg::PPR_BASE:
        ppr_base_ = merge(ppr_base_, kRingBaseMask);
        ppr_head_ = ppr_tail_ = 0;
        return Effect::ppr_base;
    case reg::CONTROL: {
        control_ = merge(control_, ~uint64_t{0});
        // Clearing an enable re-arms what the unit stopped; setting it again restarts.
        if (!control(ctl::CMDBUF_EN)) stopped_ &= ~st::CMDBUF_RUN;
        if (!control(ctl::EVT_LOG_EN)) stopped_ &= ~st::EVT_RUN;
        if (!control(ctl::PPRLOG_EN)) stopped_ &= ~st::PPR_RUN;
        return Effect::control;
    }
    case reg::EXCL_BASE: excl_base_ = merge(excl_base_, kBaseMask | 3); return Effect::none;
    case reg::EXCL_LIMIT: excl_limit_ = merge(excl_limit_, kBaseMask); return Effect::none;
    case reg::CMD_HEAD: cmd_head_ = merge32(cmd_head_); return Effect::cmd_head;
    case reg::CMD_TAIL: cmd_tail_ = merge32(cmd_tail_); return Effect::cmd_tail;
    case reg::EVT_HEAD: evt_head_ = merge32(evt_head_); return Effect::evt_head;
    case reg::EVT_TAIL:
        if (!event_log_running()) evt_tail_ = merge32(evt_tail_);
        return Effect::none;
    case reg::PPR_HEAD: ppr_head_ = merge32(ppr_head_); return Effect::ppr_head;
    case reg::PPR_TAIL:
        if (!ppr_log_running()) ppr_tail_ = merge32(ppr_tail_);
        return Effect::none;
    case reg::STATUS: status_ &= ~static_cast<uint32_t>(v & kStatusMask & st::kW1C); return Effect::status;
    default: return Effect::none; // EFR, EFR2 and unmodelled registers: read-only / ignored
    }
}

} // namespace iommusim::iommu::amd
