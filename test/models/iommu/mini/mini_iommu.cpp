// SPDX-License-Identifier: Apache-2.0
#include "test/models/iommu/mini/mini_iommu.hpp"

namespace minifam {

MiniIommu::MiniIommu(const sc_core::sc_module_name& name, const ShellParams& p, stats::Group* parent)
    : IommuShell(name, p, ShellStatNames{}, kFetchError, Ring::Index::one_slot_free, parent),
      contexts_("context_cache", CacheGeometry{16, 4}, &stats_group()) {
    start<MiniIommu>();
}

IommuShell::Resolution MiniIommu::resolve(pcie::Bdf rid, const RequestAttrs&, sc_core::sc_time& delay) {
    if (auto* e = contexts_.lookup(rid.raw)) return {0, false, &e->value};
    Duration local = from_sc(delay);
    TableMem m(*this, local);
    std::array<uint64_t, 2> q{};
    bool ok = true;
    try {
        m.read(r(reg::CTXT) + uint64_t{rid.raw} * 16, q.data(), 16);
    } catch (const iommusim::mem::AddressError&) {
        ok = false;
    }
    count_table_reads(m.reads());
    delay = to_sc(local);
    if (!ok || !(q[0] & 1)) return {kBadContext};
    TranslationContext c;
    c.domain_tag = static_cast<uint32_t>(q[1] & 0xFFFF);
    c.pass_through = q[0] & 2;
    c.s1.enabled = !c.pass_through;
    c.s1.root = q[0] & 0x000FFFFFFFFFF000ull;
    c.s1.output_bits = 46;
    return {0, false, &contexts_.insert(rid.raw, 0, c, c.domain_tag)->value};
}

void MiniIommu::record_fault(pcie::Bdf rid, const RequestAttrs&, uint64_t addr, bool write, uint32_t reason,
                             Duration& local) {
    events_.ring().configure(r(reg::EQB) & ~uint64_t{0xFFF}, 1u << (r(reg::EQB) & 0x1F), 16);
    events_.ring().set_prod_offset(r(reg::EQT));
    events_.ring().set_cons_offset(r(reg::EQH));
    const std::array<uint64_t, 2> rec{reason | uint64_t{rid.raw} << 16 | uint64_t{write} << 32, addr};
    local += sp_.status_write;
    events_.push(unit_port(), rec.data(), local);
    r(reg::EQT) = events_.ring().prod_offset();
}

uint64_t MiniIommu::mmio_read(uint32_t off, unsigned len) {
    const uint64_t v = off / 8 < regs_.size() ? regs_[off / 8] : 0;
    return len == 8 ? v : (v >> (off % 8 * 8)) & 0xFFFFFFFFu;
}

void MiniIommu::mmio_write(uint32_t off, unsigned len, uint64_t v, Duration& local) {
    if (len != 8 || off / 8 >= regs_.size() || off == reg::CQH || off == reg::EQT) return; // 8-byte RW registers only
    if (off == reg::CTRL && ((r(off) ^ v) & 2)) queue().restart(); // queue enable toggled
    if (off == reg::STS) {
        if (v & 1) r(reg::STS) = 0; // W1C: software acknowledged the queue error
    } else {
        r(off) = v;
    }
    if (off == reg::CTRL) set_translation_enabled(v & 1);
    if (off == reg::CQT) note_tail_write(now() + local, v);
    if (off == reg::CQT || off == reg::CTRL || off == reg::STS) kick_queue(local);
}

DecodedCommand MiniIommu::decode(std::span<const uint64_t> w) {
    DecodedCommand c;
    switch (w[0] & 0xFF) {
    case 0x01: return c.add(InvalidateConfig{0, ConfigScope::all()}).add(InvalidateTranslations{});
    case 0x02: return c.add(InvalidateConfig{0, ConfigScope::of_requester(static_cast<uint32_t>(w[0] >> 16) & 0xFFFF)});
    case 0x03: {
        if (w[1] & 3) break; // the status word is a naturally aligned dword
        SyncAction s;
        s.status_write = (w[0] >> 8) & 1;
        s.status_addr = w[1];
        s.status_data = w[0] >> 32;
        return c.add(s);
    }
    default: break;
    }
    return DecodedCommand::fail(kIllegalCommand);
}

void MiniIommu::sync_queue(CommandQueue& q) {
    q.ring().configure(r(reg::CQB) & ~uint64_t{0xFFF}, 1u << (r(reg::CQB) & 0x1F), 16);
    q.ring().set_cons_offset(r(reg::CQH));
    q.ring().set_prod_offset(r(reg::CQT));
    q.set_enabled(r(reg::CTRL) & 2);
    if (r(reg::STS) & 1) q.halt(static_cast<uint32_t>(r(reg::STS) >> 8));
    else q.acknowledge();
}

} // namespace minifam
