// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/vtd/vtd_regs.hpp"

#include <cstring>
#include <stdexcept>

namespace iommusim::iommu::vtd {

namespace {
constexpr uint64_t bit(unsigned b) { return uint64_t{1} << b; }
constexpr uint64_t field(uint64_t v, unsigned lo) { return v << lo; }

uint64_t compose_cap(const VtdParams& p) {
    // CAP layout: spec-layouts.md A.8 (Linux cap_* accessors).
    uint64_t c = 0;
    c |= field(p.nd & 7u, 0);
    c |= p.caching_mode ? bit(7) : 0;
    uint64_t sagaw = (p.sl_3level ? 2u : 0u) | (p.sl_4level ? 4u : 0u) | (p.sl_5level ? 8u : 0u);
    c |= field(sagaw, 8);
    c |= field((p.mgaw - 1u) & 0x3Fu, 16);
    c |= field((p.fault_record_offset / 16) & 0x3FFu, 24);
    c |= field((p.sl_2m ? 1u : 0u) | (p.sl_1g ? 2u : 0u), 34);
    c |= bit(39); // PSI: page-selective invalidation
    c |= field((p.num_fault_records - 1u) & 0xFFu, 40);
    c |= field(p.mamv & 0x3Fu, 48);
    c |= bit(54) | bit(55); // DWD, DRD
    c |= p.fl_1g ? bit(56) : 0;
    c |= p.fl_5level ? bit(60) : 0;
    return c;
}

uint64_t compose_ecap(const VtdParams& p) {
    uint64_t e = 0;
    e |= p.coherent ? bit(0) : 0;      // C: page walks are coherent
    e |= bit(1);                       // QI
    e |= p.device_tlb ? bit(2) : 0;    // DT
    e |= p.pass_through ? bit(6) : 0;  // PT
    e |= p.snoop_control ? bit(7) : 0; // SC
    e |= field((p.iotlb_reg_offset / 16) & 0x3FFu, 8);
    e |= p.nested ? bit(26) : 0;
    e |= p.page_requests ? bit(29) : 0;
    e |= p.execute_requests ? bit(30) : 0;
    e |= p.supervisor_requests ? bit(31) : 0;
    e |= field((p.pasid_bits - 1u) & 0x1Fu, 35);
    e |= p.pasid ? bit(40) : 0;
    e |= p.dit ? bit(41) : 0;
    e |= p.page_request_drain ? bit(42) : 0;
    e |= bit(43);                      // SMTS: scalable mode
    e |= p.sl_ad ? bit(45) : 0;
    e |= bit(46) | bit(47);            // SLTS, FLTS
    e |= p.coherent ? bit(48) : 0;     // SMPWC
    e |= bit(49);                      // RPS: RID_PASID supported
    return e;
}
} // namespace

VtdRegs::VtdRegs(const VtdParams& p)
    : fro_(p.fault_record_offset), nfr_(p.num_fault_records) {
    if (p.num_fault_records == 0 || fro_ % 16 != 0 || fro_ + 16u * nfr_ > VtdParams::kMmioSize ||
        p.iotlb_reg_offset % 16 != 0 || p.iotlb_reg_offset + 16 > VtdParams::kMmioSize || p.mgaw < 39 ||
        p.pasid_bits == 0 || p.pasid_bits > 20)
        throw std::invalid_argument("vtd: inconsistent register-file parameters (fault records / offsets / mgaw / pasid_bits)");
    put32(reg::VER, static_cast<uint32_t>((p.version_major & 0xF) << 4 | (p.version_minor & 0xF)));
    put64(reg::CAP, compose_cap(p));
    put64(reg::ECAP, compose_ecap(p));

    auto rw32 = [&](uint32_t off, uint32_t m) { rw_[off / 4] = m; };
    auto rw64 = [&](uint32_t off, uint64_t m) {
        rw_[off / 4] = static_cast<uint32_t>(m);
        rw_[off / 4 + 1] = static_cast<uint32_t>(m >> 32);
    };
    rw32(reg::GCMD, 0xFF800000u);
    rw64(reg::RTADDR, ~uint64_t{0xFFF} | bits::RTADDR_SMT);
    rw64(reg::CCMD, ~uint64_t{0});
    w1c_[reg::FSTS / 4] = bits::FSTS_PFO | bits::FSTS_IQE | bits::FSTS_ICE | bits::FSTS_ITE | bits::FSTS_PRO;
    for (uint32_t ctl : {reg::FECTL, reg::IECTL, reg::PECTL}) {
        rw32(ctl, bits::ECTL_IM);
        rw32(ctl + 4, 0xFFFFFFFFu);     // data
        rw32(ctl + 8, 0xFFFFFFFCu);     // address (dword aligned)
        rw32(ctl + 12, 0xFFFFFFFFu);    // upper address
        put32(ctl, bits::ECTL_IM);      // masked out of reset (§11.4.7.2)
    }
    rw64(reg::IQT, 0x7FFF0);            // QT 18:4
    rw64(reg::IQA, ~uint64_t{0xFFF} | bits::IQA_DW | 7);
    w1c_[reg::ICS / 4] = bits::ICS_IWC;
    rw64(reg::IRTA, ~uint64_t{0});
    rw64(reg::PQH, 0x7FFE0);            // PQH 18:5
    rw64(reg::PQA, ~uint64_t{0xFFF} | 7);
    w1c_[reg::PRS / 4] = bits::PRS_PPR | bits::PRS_PRO;
    rw64(p.iotlb_reg_offset, ~uint64_t{0});
    rw64(p.iotlb_reg_offset + 8, ~uint64_t{0});
    for (uint32_t i = 0; i < nfr_; ++i) w1c_[(fro_ + 16 * i + 12) / 4] = 1u << 31; // F (bit 127)
}

void VtdRegs::put64(uint32_t off, uint64_t v) { std::memcpy(&regs_[off], &v, 8); }
void VtdRegs::put32(uint32_t off, uint32_t v) { std::memcpy(&regs_[off], &v, 4); }

uint64_t VtdRegs::read(uint32_t offset, unsigned size) const {
    if ((size != 4 && size != 8) || offset % size != 0 || offset + size > VtdParams::kMmioSize) return 0;
    if (offset == reg::GCMD) return 0; // GCMD is write-only; reads return 0 (§11.4.4.1)
    return size == 8 ? raw64(offset) : raw32(offset);
}

uint32_t VtdRegs::write(uint32_t offset, unsigned size, uint64_t value) {
    uint32_t effects = none;
    if ((size != 4 && size != 8) || offset % size != 0 || offset + size > VtdParams::kMmioSize) return effects;
    write32(offset, static_cast<uint32_t>(value), effects);
    if (size == 8) write32(offset + 4, static_cast<uint32_t>(value >> 32), effects);
    return effects;
}

void VtdRegs::write32(uint32_t off, uint32_t v, uint32_t& effects) {
    const uint32_t old = raw32(off);
    const uint32_t rw = rw_[off / 4], w1c = w1c_[off / 4];
    uint32_t next = (old & ~rw) | (v & rw);
    next &= ~(v & w1c);
    put32(off, next);

    if (off == reg::GCMD) {
        uint32_t gsts = raw32(reg::GSTS);
        if ((v & bits::GCMD_TE) != (gsts & bits::GCMD_TE)) {
            gsts ^= bits::GCMD_TE;
            effects |= te_changed;
        }
        if (v & bits::GCMD_SRTP) { // one-shot: latch RTADDR (§10.4.4, §11.4.4.2 RTPS)
            active_rtaddr_ = raw64(reg::RTADDR);
            gsts |= bits::GCMD_SRTP;
            effects |= root_table_latched;
        }
        if ((v & bits::GCMD_QIE) && !(gsts & bits::GCMD_QIE)) {
            gsts |= bits::GCMD_QIE;
            put64(reg::IQH, 0); // IQH is reset when QI is enabled (§6.5.2)
            effects |= qi_enabled;
        } else if (!(v & bits::GCMD_QIE) && (gsts & bits::GCMD_QIE)) {
            gsts &= ~bits::GCMD_QIE;
            effects |= qi_disabled;
        }
        put32(reg::GSTS, gsts);
    } else if (off == reg::IQT) {
        effects |= iqt_written;
    } else if (off == reg::FSTS) {
        if ((old & bits::FSTS_IQE) && !(next & bits::FSTS_IQE)) effects |= iqe_cleared;
        if ((old & bits::FSTS_ITE) && !(next & bits::FSTS_ITE)) effects |= ite_cleared;
        refresh_ppf();
    } else if (off >= fro_ && off < fro_ + 16 * nfr_ && (off - fro_) % 16 == 12) {
        refresh_ppf();
    } else if (off == reg::ICS) {
        if (!(next & bits::ICS_IWC)) put32(reg::IECTL, raw32(reg::IECTL) & ~bits::ECTL_IP);
    } else if (off == reg::PRS) {
        if (!(next & bits::PRS_PPR)) put32(reg::PECTL, raw32(reg::PECTL) & ~bits::ECTL_IP);
    } else if (off == reg::PQH) {
        effects |= pqh_written;
    } else if (off == reg::FECTL || off == reg::IECTL || off == reg::PECTL) {
        // Unmasking with an interrupt pending sends it now (§11.4.7.2 IP).
        if ((old & bits::ECTL_IM) && !(next & bits::ECTL_IM) && (next & bits::ECTL_IP)) {
            put32(off, next & ~bits::ECTL_IP);
            effects |= off == reg::FECTL ? fault_msi : off == reg::IECTL ? inv_msi : pr_msi;
        }
    }
}

void VtdRegs::refresh_ppf() {
    // PPF is the OR of the F fields of all fault recording registers (§11.4.7.1).
    bool any = false;
    for (uint32_t i = 0; i < nfr_; ++i) any |= (raw32(fro_ + 16 * i + 12) >> 31) & 1;
    uint32_t fsts = raw32(reg::FSTS);
    fsts = any ? (fsts | bits::FSTS_PPF) : (fsts & ~bits::FSTS_PPF);
    put32(reg::FSTS, fsts);
    constexpr uint32_t kConditions = bits::FSTS_PPF | bits::FSTS_PFO | bits::FSTS_IQE | bits::FSTS_ICE | bits::FSTS_ITE;
    if (!(fsts & kConditions)) put32(reg::FECTL, raw32(reg::FECTL) & ~bits::ECTL_IP);
}

Msi VtdRegs::msi_of(uint32_t ctl) const {
    return Msi{static_cast<uint64_t>(raw32(ctl + 12)) << 32 | raw32(ctl + 8), raw32(ctl + 4)};
}

std::optional<Msi> VtdRegs::simple_event(uint32_t ctl) {
    uint32_t c = raw32(ctl);
    if (c & bits::ECTL_IM) {
        put32(ctl, c | bits::ECTL_IP);
        return std::nullopt;
    }
    put32(ctl, c & ~bits::ECTL_IP);
    return msi_of(ctl);
}

std::optional<Msi> VtdRegs::fault_event(uint32_t pre_fsts) {
    // A fault event is generated only when no earlier condition is still
    // waiting for software (§7.3; QEMU vtd_generate_fault_event).
    if (pre_fsts & (bits::FSTS_PPF | bits::FSTS_PFO | bits::FSTS_IQE)) return std::nullopt;
    return simple_event(reg::FECTL);
}

void VtdRegs::set_iqh(uint64_t byte_offset) { put64(reg::IQH, byte_offset); }

std::optional<Msi> VtdRegs::report_iqe(IqeReason r) {
    uint32_t pre = raw32(reg::FSTS);
    put32(reg::FSTS, pre | bits::FSTS_IQE);
    put64(reg::IQER, (raw64(reg::IQER) & ~uint64_t{0xF}) | static_cast<uint64_t>(r));
    return fault_event(pre);
}

std::optional<Msi> VtdRegs::report_ite(uint16_t sid) {
    uint32_t pre = raw32(reg::FSTS);
    put32(reg::FSTS, pre | bits::FSTS_ITE);
    put64(reg::IQER, (raw64(reg::IQER) & ~(uint64_t{0xFFFF} << 32)) | static_cast<uint64_t>(sid) << 32);
    return fault_event(pre);
}

std::optional<Msi> VtdRegs::report_ice(uint16_t sid) {
    uint32_t pre = raw32(reg::FSTS);
    put32(reg::FSTS, pre | bits::FSTS_ICE);
    put64(reg::IQER, (raw64(reg::IQER) & ~(uint64_t{0xFFFF} << 48)) | static_cast<uint64_t>(sid) << 48);
    return fault_event(pre);
}

std::optional<Msi> VtdRegs::report_wait_complete() {
    uint32_t ics = raw32(reg::ICS);
    if (ics & bits::ICS_IWC) return std::nullopt; // already pending: no new event (§6.5.2.8)
    put32(reg::ICS, ics | bits::ICS_IWC);
    return simple_event(reg::IECTL);
}

bool VtdRegs::record_fault(const FaultRecord& f, std::optional<Msi>& msi) {
    msi.reset();
    const uint32_t pre = raw32(reg::FSTS);
    if (pre & bits::FSTS_PFO) return false; // overflowed: nothing more is recorded until cleared
    const uint32_t off = fro_ + 16 * next_fault_;
    if (raw32(off + 12) >> 31) { // the next record is still owned by software
        put32(reg::FSTS, pre | bits::FSTS_PFO);
        msi = fault_event(pre);
        return false;
    }
    // Record layout: spec-layouts.md A.9 / Linux dma_frcd_*.
    put64(off, f.page_addr & ~uint64_t{0xFFF});
    uint64_t hi = f.sid;
    hi |= f.execute ? bit(93 - 64) : 0;
    hi |= f.privileged ? bit(94 - 64) : 0;
    hi |= f.pasid_present ? bit(95 - 64) : 0;
    hi |= static_cast<uint64_t>(f.reason) << (96 - 64);
    hi |= static_cast<uint64_t>(f.pasid & 0xFFFFF) << (104 - 64);
    hi |= f.is_read ? bit(126 - 64) : 0;
    hi |= bit(127 - 64);
    put64(off + 8, hi);
    uint32_t fsts = pre | bits::FSTS_PPF;
    if (!(pre & bits::FSTS_PPF)) fsts = (fsts & ~0xFF00u) | (next_fault_ << 8); // FRI
    put32(reg::FSTS, fsts);
    next_fault_ = (next_fault_ + 1) % nfr_;
    msi = fault_event(pre);
    return true;
}

bool VtdRegs::prq_full() const {
    return (pqt() + 32) % pq_bytes() == pqh() % pq_bytes();
}

std::optional<Msi> VtdRegs::advance_pqt() {
    put64(reg::PQT, (pqt() + 32) % pq_bytes());
    uint32_t prs = raw32(reg::PRS);
    if (prs & bits::PRS_PPR) return std::nullopt;
    put32(reg::PRS, prs | bits::PRS_PPR);
    return simple_event(reg::PECTL);
}

std::optional<Msi> VtdRegs::report_prq_overflow() {
    uint32_t prs = raw32(reg::PRS);
    put32(reg::PRS, prs | bits::PRS_PRO);
    if (prs & (bits::PRS_PPR | bits::PRS_PRO)) return std::nullopt;
    return simple_event(reg::PECTL);
}

} // namespace iommusim::iommu::vtd
