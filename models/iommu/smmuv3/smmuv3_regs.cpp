// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/smmuv3/smmuv3_regs.hpp"

#include <algorithm>

#include "models/iommu/smmuv3/smmuv3_fields.hpp"

namespace iommusim::iommu::smmuv3 {

namespace {
constexpr uint32_t kPtrBits = 0xFFFFF;     ///< index + wrap of the largest queue (2^19 entries)
constexpr uint32_t kOvflg = 1u << 31;      ///< EVTQ/PRIQ PROD.OVFLG, CONS.OVACKFLG
constexpr uint64_t kBaseMask = mask(62, 62) | mask(51, 5) | mask(4, 0);
constexpr uint64_t kStrtabBaseMask = mask(62, 62) | mask(51, 6);
constexpr uint32_t kStrtabCfgMask = static_cast<uint32_t>(mask(17, 16) | mask(10, 6) | mask(5, 0));
constexpr uint64_t kIrqAddrMask = mask(51, 2);
constexpr unsigned kEntryBytes[3] = {16, 32, 16}; // command, event record, PRI record

uint32_t lo(uint64_t v) { return static_cast<uint32_t>(v); }
uint32_t hi(uint64_t v) { return static_cast<uint32_t>(v >> 32); }
/// A 32-bit write into one half of a 64-bit register.
uint64_t merge(uint64_t old, bool upper, uint32_t v, uint64_t m) {
    uint64_t n = upper ? ((old & 0xFFFF'FFFFull) | (uint64_t{v} << 32)) : ((old & ~0xFFFF'FFFFull) | v);
    return n & m;
}
} // namespace

Smmuv3Regs::Smmuv3Regs(const Smmuv3Params& p) : p_(p) {}

uint32_t Smmuv3Regs::idr0(const Smmuv3Params& p) {
    uint64_t v = 0;
    v = put(v, bit::kS2p, p.s2p);
    v = put(v, bit::kS1p, p.s1p);
    v = put(v, bit::kTtfHi, bit::kTtfLo, 2); // AArch64 tables only
    v = put(v, bit::kCohacc, p.cohacc);
    v = put(v, bit::kHttuHi, bit::kHttuLo, static_cast<uint64_t>(p.httu));
    v = put(v, bit::kHyp, p.hyp);
    v = put(v, bit::kAts, p.ats);
    v = put(v, bit::kAsid16, p.asid16);
    v = put(v, bit::kMsi, p.msi);
    v = put(v, bit::kSev, p.sev);
    v = put(v, bit::kPri, p.pri);
    v = put(v, bit::kVmid16, p.vmid16);
    v = put(v, bit::kCd2l, p.cd2l);
    v = put(v, bit::kTtendianHi, bit::kTtendianLo, 2); // little-endian tables only
    v = put(v, bit::kStallModelHi, bit::kStallModelLo, static_cast<uint64_t>(p.stall_model));
    v = put(v, bit::kAtsRecErr, p.ats && p.ats_rec_err); // RES0 without ATS
    v = put(v, bit::kStLvlHi, bit::kStLvlLo, p.st_2level ? 1 : 0);
    return lo(v);
}

uint32_t Smmuv3Regs::idr1(const Smmuv3Params& p) {
    uint64_t v = 0;
    v = put(v, bit::kSidsizeHi, 0, p.sidsize);
    v = put(v, bit::kSsidsizeHi, bit::kSsidsizeLo, p.ssidsize);
    v = put(v, bit::kPriqsHi, bit::kPriqsLo, p.priqs);
    v = put(v, bit::kEvtqsHi, bit::kEvtqsLo, p.evtqs);
    v = put(v, bit::kCmdqsHi, bit::kCmdqsLo, p.cmdqs);
    return lo(v);
}

uint32_t Smmuv3Regs::idr3(const Smmuv3Params& p) {
    // PPS is RES0 without PRI or SubstreamIDs (IHI 0070 6.3.4).
    return lo(put(put(0, bit::kRil, p.ril), bit::kPps, p.pps && p.pri && p.ssidsize > 0));
}

uint32_t Smmuv3Regs::idr5(const Smmuv3Params& p) {
    uint64_t v = 0;
    v = put(v, bit::kOasHi, 0, size_code(p.oas_bits));
    v = put(v, bit::kGran4k, p.gran4k);
    v = put(v, bit::kGran16k, p.gran16k);
    v = put(v, bit::kGran64k, p.gran64k);
    v = put(v, bit::kStallMaxHi, bit::kStallMaxLo, p.stall_max);
    return lo(v);
}

uint64_t Smmuv3Regs::read(uint32_t offset, unsigned size) const {
    if (size == 8) return (offset & 7) ? 0 : read64(offset);
    const uint64_t v = read64(offset & ~7u);
    return (offset & 4) ? hi(v) : lo(v);
}

// Every register as a 64-bit word at an 8-byte aligned offset: a 32-bit
// register at offset o sits in the low (o % 8 == 0) or high half of word o & ~7.
uint64_t Smmuv3Regs::read64(uint32_t o) const {
    auto pair = [](uint32_t a, uint32_t b) { return uint64_t{a} | (uint64_t{b} << 32); };
    switch (o) {
    case reg::kIdr0: return pair(idr0(p_), idr1(p_));
    case reg::kIdr2: return pair(0, idr3(p_));
    case reg::kIdr4: return pair(0, idr5(p_));
    case reg::kIidr: return pair(0, p_.aidr_minor);
    case reg::kCr0: return pair(cr0_, cr0ack_);
    case reg::kCr1: return pair(cr1_, cr2_);
    case reg::kStatusr: return pair(0, gbpa_);
    case reg::kIrqCtrl: return pair(irq_ctrl_, irq_ctrlack_);
    case reg::kGerror: return pair(gerror_, gerrorn_);
    case reg::kGerrorIrqCfg0: return gerror_irq_cfg0_;
    case reg::kGerrorIrqCfg1: return pair(gerror_irq_cfg1_, gerror_irq_cfg2_);
    case reg::kStrtabBase: return strtab_base_;
    case reg::kStrtabBaseCfg: return strtab_base_cfg_;
    case reg::kCmdqBase: return base_[0];
    case reg::kCmdqProd: return pair(cmdq_prod_, cmdq_cons_);
    case reg::kEvtqBase: return base_[1];
    case reg::kEvtqIrqCfg0: return irq_cfg0_[1];
    case reg::kEvtqIrqCfg1: return pair(irq_cfg1_[1], irq_cfg2_[1]);
    case reg::kPriqBase: return base_[2];
    case reg::kPriqIrqCfg0: return irq_cfg0_[2];
    case reg::kPriqIrqCfg1: return pair(irq_cfg1_[2], irq_cfg2_[2]);
    case reg::kEvtqProd: return pair(read_pos(Queue::evtq, true), read_pos(Queue::evtq, false));
    case reg::kPriqProd: return pair(read_pos(Queue::priq, true), read_pos(Queue::priq, false));
    default: return 0;
    }
}

uint32_t Smmuv3Regs::write(uint32_t offset, unsigned size, uint64_t value) {
    if (size == 8) return write(offset, 4, lo(value)) | write(offset + 4, 4, hi(value));
    const uint32_t v = lo(value);
    const bool upper = offset & 4;
    const bool smmu_on = (cr0_ | cr0ack_) & bit::kSmmuEn;
    auto q_on = [&](uint32_t en) { return ((cr0_ | cr0ack_) & en) != 0; };
    switch (offset) {
    case reg::kCr0:
        cr0_ = v & 0x1F;
        cr0ack_ = cr0_;
        return kCr0Written;
    case reg::kCr1: cr1_ = v & 0xFFF; return kNoEffect;
    case reg::kCr2: // REC_CFG_ATS is RES0 without IDR0.ATSRECERR (IHI 0070 6.3.12)
        cr2_ = static_cast<uint32_t>(v) & (0x7u | (p_.ats && p_.ats_rec_err ? bit::kCr2RecCfgAts : 0u));
        return kNoEffect;
    case reg::kGbpa:
        // Update = 1 applies the other fields; the update completes at once (Update reads 0).
        if (v & bit::kGbpaUpdate) gbpa_ = v & 0x1F'FFFF;
        return kGbpaWritten;
    case reg::kIrqCtrl:
        irq_ctrl_ = v & 0x7;
        irq_ctrlack_ = irq_ctrl_;
        return kIrqCtrlWritten;
    case reg::kGerrorN: gerrorn_ = v & 0x1FD; return kGerrorNWritten;
    case reg::kGerrorIrqCfg0:
    case reg::kGerrorIrqCfg0 + 4: gerror_irq_cfg0_ = merge(gerror_irq_cfg0_, upper, v, kIrqAddrMask); return kNoEffect;
    case reg::kGerrorIrqCfg1: gerror_irq_cfg1_ = v; return kNoEffect;
    case reg::kGerrorIrqCfg2: gerror_irq_cfg2_ = v & 0x3F; return kNoEffect;
    case reg::kStrtabBase:
    case reg::kStrtabBase + 4:
        if (!smmu_on) strtab_base_ = merge(strtab_base_, upper, v, kStrtabBaseMask);
        return kNoEffect;
    case reg::kStrtabBaseCfg:
        if (!smmu_on) strtab_base_cfg_ = v & kStrtabCfgMask;
        return kNoEffect;
    case reg::kCmdqBase:
    case reg::kCmdqBase + 4:
        if (!q_on(bit::kCmdqEn)) base_[0] = merge(base_[0], upper, v, kBaseMask);
        return kNoEffect;
    case reg::kCmdqProd: cmdq_prod_ = v & kPtrBits; return kCmdqProdWritten;
    case reg::kCmdqCons:
        if (!q_on(bit::kCmdqEn)) cmdq_cons_ = (cmdq_cons_ & ~kPtrBits) | (v & kPtrBits);
        return kNoEffect;
    case reg::kEvtqBase:
    case reg::kEvtqBase + 4:
        if (!q_on(bit::kEvtqEn)) base_[1] = merge(base_[1], upper, v, kBaseMask), configure(Queue::evtq);
        return kNoEffect;
    case reg::kPriqBase:
    case reg::kPriqBase + 4:
        if (!q_on(bit::kPriqEn)) base_[2] = merge(base_[2], upper, v, kBaseMask), configure(Queue::priq);
        return kNoEffect;
    case reg::kEvtqIrqCfg0:
    case reg::kEvtqIrqCfg0 + 4: irq_cfg0_[1] = merge(irq_cfg0_[1], upper, v, kIrqAddrMask); return kNoEffect;
    case reg::kEvtqIrqCfg1: irq_cfg1_[1] = v; return kNoEffect;
    case reg::kEvtqIrqCfg2: irq_cfg2_[1] = v & 0x3F; return kNoEffect;
    case reg::kPriqIrqCfg0:
    case reg::kPriqIrqCfg0 + 4: irq_cfg0_[2] = merge(irq_cfg0_[2], upper, v, kIrqAddrMask); return kNoEffect;
    case reg::kPriqIrqCfg1: irq_cfg1_[2] = v; return kNoEffect;
    case reg::kPriqIrqCfg2: irq_cfg2_[2] = v & 0x3F; return kNoEffect;
    case reg::kEvtqProd:
        if (!q_on(bit::kEvtqEn)) write_pos(Queue::evtq, true, v);
        return kNoEffect;
    case reg::kEvtqCons: write_pos(Queue::evtq, false, v); return kEvtqConsWritten;
    case reg::kPriqProd:
        if (!q_on(bit::kPriqEn)) write_pos(Queue::priq, true, v);
        return kNoEffect;
    case reg::kPriqCons: write_pos(Queue::priq, false, v); return kPriqConsWritten;
    default: return kNoEffect; // read-only (IDRs, CR0ACK, GERROR, ...) or unknown: writes ignored
    }
}

StrtabConfig Smmuv3Regs::strtab() const {
    StrtabConfig c;
    c.base = strtab_base_ & mask(51, 6);
    c.two_level = get(strtab_base_cfg_, 17, 16) == 1;
    c.log2size = static_cast<uint8_t>(std::min<uint64_t>(get(strtab_base_cfg_, 5, 0), p_.sidsize));
    c.split = static_cast<uint8_t>(get(strtab_base_cfg_, 10, 6));
    return c;
}

uint8_t Smmuv3Regs::queue_log2size(Queue q) const {
    const uint8_t max = q == Queue::cmdq ? p_.cmdqs : q == Queue::evtq ? p_.evtqs : p_.priqs;
    return static_cast<uint8_t>(std::min<uint64_t>(get(base_[static_cast<unsigned>(q)], 4, 0), max));
}

uint64_t Smmuv3Regs::queue_base(Queue q) const {
    // A base not aligned to the queue's size has its low bits ignored (IHI 0070 6.3.25: CONSTRAINED
    // UNPREDICTABLE; this is one of the permitted behaviours).
    const uint64_t bytes = uint64_t{kEntryBytes[static_cast<unsigned>(q)]} << queue_log2size(q);
    return base_[static_cast<unsigned>(q)] & mask(51, 5) & ~(bytes - 1);
}

void Smmuv3Regs::configure(Queue q) {
    ring(q).ring().configure(queue_base(q), uint32_t{1} << queue_log2size(q), kEntryBytes[static_cast<unsigned>(q)]);
}

uint32_t Smmuv3Regs::read_pos(Queue q, bool prod) const {
    const Ring& r = ring(q).ring();
    const uint8_t l2 = queue_log2size(q);
    const QueuePos pos = prod ? QueuePos{r.prod(), r.prod_wrap()} : QueuePos{r.cons(), r.cons_wrap()};
    const bool flag = prod ? ring(q).overflow_flag() : ovackflg_[static_cast<unsigned>(q)];
    return pos.encode(l2) | (flag ? kOvflg : 0);
}

void Smmuv3Regs::write_pos(Queue q, bool prod, uint32_t v) {
    RecordRing& rr = ring(q);
    const QueuePos pos = QueuePos::decode(v, queue_log2size(q));
    if (prod) { // (PROD.OVFLG is the unit's: software's value is ignored)
        rr.ring().set_prod(pos.index, pos.wrap);
        return;
    }
    rr.ring().set_cons(pos.index, pos.wrap);
    ovackflg_[static_cast<unsigned>(q)] = v & kOvflg;
    if (((v & kOvflg) != 0) == rr.overflow_flag()) rr.ack_overflow();
}

RecordRing::PushResult Smmuv3Regs::push(Queue q, UnitMemPort& mem, const void* record, Duration& local) {
    if (!enabled(q == Queue::evtq ? bit::kEvtqEn : bit::kPriqEn)) return {}; // queue off: discarded
    const RecordRing::PushResult r = ring(q).push(mem, record, local);
    if (r.outcome == RecordRing::Outcome::write_error)
        raise(q == Queue::evtq ? Gerror::evtq_abt_err : Gerror::priq_abt_err);
    return r;
}

MsiConfig Smmuv3Regs::msi(Queue q) const {
    const unsigned i = static_cast<unsigned>(q);
    return {irq_cfg0_[i] & kIrqAddrMask, irq_cfg1_[i], irq_cfg2_[i]};
}

MsiConfig Smmuv3Regs::gerror_msi() const {
    return {gerror_irq_cfg0_ & kIrqAddrMask, gerror_irq_cfg1_, gerror_irq_cfg2_};
}

bool Smmuv3Regs::raise(Gerror e) {
    const auto b = static_cast<uint32_t>(e);
    if (active_errors() & b) return false;
    gerror_ ^= b;
    return true;
}

void Smmuv3Regs::set_cmdq_cons(QueuePos cons, CmdError err) {
    cmdq_cons_ = cons.encode(queue_log2size(Queue::cmdq)) | (uint32_t{static_cast<uint8_t>(err)} << 24);
}

} // namespace iommusim::iommu::smmuv3
