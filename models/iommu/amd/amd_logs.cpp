// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/amd/amd_logs.hpp"

namespace iommusim::iommu::amd {

void AmdLog::on_base(const AmdRegs& regs) {
    RingRegs r = regs_of(regs);
    ring_.ring().configure(r.base, r.entries, 16);
    ring_.ring().set_prod(r.tail / 16);
    ring_.ring().set_cons(r.head / 16);
    ring_.ack_overflow();
}

void AmdLog::on_head(const AmdRegs& regs) { ring_.ring().set_cons(regs_of(regs).head / 16); }

void AmdLog::on_status(const AmdRegs& regs) {
    const uint32_t ovf = which_ == Which::event ? st::EVT_OVERFLOW : st::PPR_OVERFLOW;
    if (!(regs.status() & ovf)) ring_.ack_overflow();
}

AmdLog::Logged AmdLog::log(UnitMemPort& mem, const std::array<uint64_t, 2>& record, AmdRegs& regs, Duration& local) {
    Logged out;
    const bool event = which_ == Which::event;
    if (!running(regs)) {
        ++dropped_;
        return out;
    }
    // Software may have rewritten the tail while the log was off: resynchronise the producer.
    ring_.ring().set_prod(regs_of(regs).tail / 16);
    const bool irq_en = regs.control(event ? ctl::EVT_INT_EN : ctl::PPRINT_EN);
    RecordRing::PushResult p = ring_.push(mem, record.data(), local);
    if (p.outcome == RecordRing::Outcome::overflow) {
        ++dropped_;
        regs.hw_set_status(event ? st::EVT_OVERFLOW : st::PPR_OVERFLOW);
        regs.hw_stop(event ? st::EVT_RUN : st::PPR_RUN);
        out.overflow = p.overflow_raised;
        out.interrupt = irq_en && p.overflow_raised;
        return out;
    }
    if (!p.written()) {
        ++dropped_;
        return out;
    }
    const uint32_t tail = static_cast<uint32_t>(ring_.ring().prod_offset());
    if (event) regs.hw_set_event_tail(tail);
    else regs.hw_set_ppr_tail(tail);
    out.written = true;
    if (irq_en) {
        regs.hw_set_status(event ? st::EVT_INT : st::PPR_INT);
        out.interrupt = true;
    }
    return out;
}

} // namespace iommusim::iommu::amd
