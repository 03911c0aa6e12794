// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/vtd/vtd_tables.hpp"

#include <algorithm>
#include <stdexcept>

namespace iommusim::iommu::vtd {

namespace {
constexpr uint64_t kPageMask = ~uint64_t{0xFFF};
constexpr bool bitv(uint64_t q, unsigned b) { return (q >> b) & 1; }
constexpr uint64_t b(bool v, unsigned pos) { return static_cast<uint64_t>(v) << pos; }

template <size_t N>
bool read_qwords(mem::PhysMem& m, uint64_t pa, std::array<uint64_t, N>& q) {
    try {
        m.read(pa, q.data(), N * 8);
        return true;
    } catch (const mem::AddressError&) {
        return false;
    }
}
} // namespace

// ---- entry encodings (spec-layouts.md A.2 / A.4) -----------------------------

std::array<uint64_t, 4> SmContextEntry::encode() const {
    std::array<uint64_t, 4> q{};
    q[0] = b(present, 0) | b(fpd, 1) | b(dte, 2) | b(paside, 3) | b(pre, 4) |
           static_cast<uint64_t>(pdts & 7) << 9 | (pasid_dir & kPageMask);
    q[1] = (rid_pasid & pcie::kPasidMask) | b(rid_priv, 20);
    return q;
}

std::optional<SmContextEntry> SmContextEntry::decode(const std::array<uint64_t, 4>& q) {
    // Reserved: q0[8:5], q1[63:21], q2, q3 (QEMU's SM context reserved masks).
    if ((q[0] & 0x1E0) || (q[1] >> 21) || q[2] || q[3]) return std::nullopt;
    SmContextEntry e;
    e.present = bitv(q[0], 0);
    e.fpd = bitv(q[0], 1);
    e.dte = bitv(q[0], 2);
    e.paside = bitv(q[0], 3);
    e.pre = bitv(q[0], 4);
    e.pdts = static_cast<uint8_t>((q[0] >> 9) & 7);
    e.pasid_dir = q[0] & kPageMask;
    e.rid_pasid = static_cast<uint32_t>(q[1] & pcie::kPasidMask);
    e.rid_priv = bitv(q[1], 20);
    return e;
}

std::array<uint64_t, 8> PasidEntry::encode() const {
    std::array<uint64_t, 8> q{};
    q[0] = b(present, 0) | b(fpd, 1) | static_cast<uint64_t>(aw & 7) << 2 | b(slee, 5) |
           static_cast<uint64_t>(pgtt & 7) << 6 | b(slade, 9) | (slptptr & kPageMask);
    q[1] = did | b(pwsnp, 23) | b(pgsnp, 24);
    q[2] = b(sre, 0) | b(ere, 1) | static_cast<uint64_t>(flpm & 3) << 2 | b(wpe, 4) | b(eafe, 7) |
           (flptptr & kPageMask);
    return q;
}

std::optional<PasidEntry> PasidEntry::decode(const std::array<uint64_t, 8>& q) {
    // Reserved: q0[11:10], q1[22:16], q2[11:8] (spec-layouts.md A.4).
    if ((q[0] & 0xC00) || (q[1] & 0x7F0000) || (q[2] & 0xF00)) return std::nullopt;
    PasidEntry e;
    e.present = bitv(q[0], 0);
    e.fpd = bitv(q[0], 1);
    e.aw = static_cast<uint8_t>((q[0] >> 2) & 7);
    e.slee = bitv(q[0], 5);
    e.pgtt = static_cast<uint8_t>((q[0] >> 6) & 7);
    e.slade = bitv(q[0], 9);
    e.slptptr = q[0] & kPageMask;
    e.did = static_cast<uint16_t>(q[1]);
    e.pwsnp = bitv(q[1], 23);
    e.pgsnp = bitv(q[1], 24);
    e.sre = bitv(q[2], 0);
    e.ere = bitv(q[2], 1);
    e.flpm = static_cast<uint8_t>((q[2] >> 2) & 3);
    e.wpe = bitv(q[2], 4);
    e.eafe = bitv(q[2], 7);
    e.flptptr = q[2] & kPageMask;
    return e;
}

// ---- reader ------------------------------------------------------------------

ContextLookup VtdTableReader::read_context(mem::PhysMem& m, uint64_t root_table, bool scalable,
                                           pcie::Bdf rid) const {
    ContextLookup r;
    if (!scalable) { // only scalable mode is modelled (fidelity block)
        r.status.fault = fr::kInvalidRootTable;
        return r;
    }
    const uint64_t haw_mask = p_.haw >= 64 ? ~uint64_t{0} : (uint64_t{1} << p_.haw) - 1;
    std::array<uint64_t, 2> root{};
    ++r.status.reads;
    if (!read_qwords(m, root_table + 16u * rid.bus(), root)) {
        r.status.fault = fr::kRootAccess;
        return r;
    }
    const bool upper = rid.devfn() >= 0x80;
    const uint64_t half = root[upper ? 1 : 0];
    // Root entry: present bit 0, reserved 11:1, pointer 63:12 within HAW (spec-layouts.md A.1).
    if (!(half & 1)) {
        r.status.fault = fr::kRootNotPresent;
        return r;
    }
    if ((half & 0xFFE) || ((half & kPageMask) & ~haw_mask)) {
        r.status.fault = fr::kRootReserved;
        return r;
    }
    std::array<uint64_t, 4> ctx{};
    ++r.status.reads;
    if (!read_qwords(m, (half & kPageMask) + 32u * (rid.devfn() & 0x7F), ctx)) {
        r.status.fault = fr::kCtxAccess;
        return r;
    }
    if (!(ctx[0] & 1)) {
        r.status.fault = fr::kCtxNotPresent;
        return r;
    }
    auto ce = SmContextEntry::decode(ctx);
    if (!ce || (ce->pasid_dir & ~haw_mask)) {
        r.status.fault = fr::kCtxReserved;
        // FPD is honoured even here: the entry is present (§7.1.1).
        r.status.fpd = ctx[0] & 2;
        return r;
    }
    r.entry = *ce;
    r.status.fpd = ce->fpd;
    return r;
}

StepStatus VtdTableReader::check_request(const SmContextEntry& ce, const RequestAttrs& req,
                                         uint32_t& effective_pasid) const {
    StepStatus s;
    s.fpd = ce.fpd;
    if (req.ats && !ce.dte) {
        s.fault = fr::kCtxDteClear;
        return s;
    }
    if (req.page_request && !ce.pre) {
        s.fault = fr::kCtxPreClear;
        return s;
    }
    if (req.has_pasid && !ce.paside) {
        s.fault = fr::kCtxPasidDisabled;
        return s;
    }
    effective_pasid = req.has_pasid ? req.pasid : ce.rid_pasid; // requests without PASID use RID_PASID (§9.4)
    if ((effective_pasid >> 6) >= ce.pasid_dir_entries()) {
        s.fault = req.has_pasid ? fr::kCtxPasidTooLarge : fr::kCtxRidPasid;
        return s;
    }
    return s;
}

PasidLookup VtdTableReader::read_pasid(mem::PhysMem& m, const SmContextEntry& ce, uint32_t pasid) const {
    PasidLookup r;
    r.status.fpd = ce.fpd;
    const uint64_t haw_mask = p_.haw >= 64 ? ~uint64_t{0} : (uint64_t{1} << p_.haw) - 1;
    auto fault = [&r](uint8_t reason) {
        r.status.fault = reason;
        return r;
    };
    std::array<uint64_t, 1> dir{};
    ++r.status.reads;
    if (!read_qwords(m, ce.pasid_dir + 8u * (pasid >> 6), dir)) return fault(fr::kPdAccess);
    if (!(dir[0] & 1)) return fault(fr::kPdNotPresent);
    r.status.fpd |= (dir[0] >> 1) & 1;
    if ((dir[0] & 0xFFC) || ((dir[0] & kPageMask) & ~haw_mask)) return fault(fr::kPdReserved);
    std::array<uint64_t, 8> pe{};
    ++r.status.reads;
    if (!read_qwords(m, (dir[0] & kPageMask) + 64u * (pasid & 0x3F), pe)) return fault(fr::kPeAccess);
    if (!(pe[0] & 1)) return fault(fr::kPeNotPresent);
    r.status.fpd |= (pe[0] >> 1) & 1;
    auto e = PasidEntry::decode(pe);
    if (!e || (e->slptptr & ~haw_mask) || (e->flptptr & ~haw_mask)) return fault(fr::kPeReserved);
    // Fields of features the unit does not advertise are Reserved(0) (§9.6 field
    // descriptions): SLADE without ECAP.SLADS, SRE without ECAP.SRS, ERE without ECAP.ERS.
    if ((e->slade && !p_.sl_ad) || (e->sre && !p_.supervisor_requests) || (e->ere && !p_.execute_requests))
        return fault(fr::kPeReserved);
    // DID bits beyond the domain-id width CAP.ND reports (2^(4 + 2 * ND) domains) are
    // treated as reserved (§9.6 DID, §11.4.2 ND).
    if (e->did >> (4 + 2 * std::min<unsigned>(p_.nd, 6))) return fault(fr::kPeReserved);
    r.entry = *e;
    return r;
}

StepStatus VtdTableReader::make_context(const SmContextEntry& ce, const PasidEntry& pe, uint32_t pasid,
                                        TranslationContext& out) const {
    StepStatus s;
    s.fpd = ce.fpd || pe.fpd;
    out = TranslationContext{};
    out.domain_tag = pe.did;
    out.as_tag = pasid;
    out.allow_supervisor = pe.sre;
    out.allow_execute = pe.ere;
    out.ats_allowed = ce.dte;
    out.pri_allowed = ce.pre;
    out.force_snoop = pe.pgsnp;
    out.fault_suppress = s.fpd;

    auto first = [&]() -> bool {
        if (pe.flpm > 1 || (pe.flpm == 1 && !p_.fl_5level)) return false;
        out.s1.enabled = true;
        out.s1.format = PtFormat::x86_64;
        out.s1.levels = pe.flpm ? 5 : 4;
        out.s1.input_bits = pe.flpm ? 57 : 48;
        out.s1.root = pe.flptptr;
        out.s1.write_protect = pe.wpe;
        out.s1.hw_access_dirty = pe.eafe;
        out.s1.execute_enable = true; // XD honoured in first-stage entries (NXE is historical)
        // CAP.FL1GP: without it PS in a PDPE is reserved (a first-stage reserved-field fault).
        out.s1.max_leaf_level = p_.fl_1g ? 3 : 2;
        // Output bits above HAW are reserved; under nesting the output is a GPA,
        // bounded by MGAW (§3.6, §3.8).
        out.s1.output_bits = std::min<uint8_t>(pe.pgtt == static_cast<uint8_t>(Pgtt::nested) ? p_.mgaw : p_.haw, 52);
        return true;
    };
    auto second = [&]() -> bool {
        const bool ok = (pe.aw == 1 && p_.sl_3level) || (pe.aw == 2 && p_.sl_4level) || (pe.aw == 3 && p_.sl_5level);
        if (!ok) return false;
        out.s2.enabled = true;
        out.s2.format = PtFormat::vtd_ss;
        out.s2.levels = static_cast<uint8_t>(pe.aw + 2);
        out.s2.input_bits = static_cast<uint8_t>(30 + 9 * pe.aw);
        // Untranslated requests above 2^MGAW - 1 are blocked whatever the table's AGAW (§3.6; CAP.MGAW).
        out.s2.unit_input_bits = p_.mgaw;
        out.s2.root = pe.slptptr;
        out.s2.hw_access_dirty = pe.slade;
        out.s2.execute_enable = pe.slee;
        // CAP.SLLPS: PS in an entry of a size the unit does not support is reserved
        // (0x7A). SLLPS = 10b (1 GiB without 2 MiB) is not a combination parts report;
        // it is treated as 4 KiB only.
        out.s2.max_leaf_level = !p_.sl_2m ? 1 : p_.sl_1g ? 3 : 2;
        // Output bits above HAW are reserved (0x7A).
        out.s2.output_bits = std::min<uint8_t>(p_.haw, 52);
        return true;
    };
    bool ok = false;
    switch (pe.pgtt) {
    case static_cast<uint8_t>(Pgtt::first_stage): ok = first(); break;
    case static_cast<uint8_t>(Pgtt::second_stage): ok = second(); break;
    case static_cast<uint8_t>(Pgtt::nested): ok = p_.nested && first() && second(); break;
    case static_cast<uint8_t>(Pgtt::pass_through): ok = p_.pass_through; out.pass_through = true; break;
    default: ok = false; break; // 0, 5-7 reserved
    }
    if (!ok) s.fault = fr::kPeInvalid;
    return s;
}

uint8_t VtdTableReader::check_pasid_permissions(const PasidEntry& pe, const RequestAttrs& r) {
    if (r.privileged && !pe.sre) return fr::kPeSreClear;
    if (r.execute && !pe.ere) return fr::kPeEreClear;
    return 0;
}

// ---- writer -------------------------------------------------------------------

VtdTableWriter::VtdTableWriter(mem::PhysMem& m, std::function<uint64_t()> alloc_page)
    : m_(m), alloc_(std::move(alloc_page)), root_(alloc_()) {
    if (root_ & 0xFFF) throw std::invalid_argument("VtdTableWriter: page allocator returned an unaligned page");
}

uint64_t VtdTableWriter::context_entry_addr(pcie::Bdf rid) const {
    const bool upper = rid.devfn() >= 0x80;
    const uint64_t half = m_.read_u64(root_entry_addr(rid.bus()) + (upper ? 8 : 0));
    if (!(half & 1)) return 0;
    return (half & kPageMask) + 32u * (rid.devfn() & 0x7F);
}

void VtdTableWriter::set_context(pcie::Bdf rid, const SmContextEntry& ce) {
    const bool upper = rid.devfn() >= 0x80;
    const uint64_t re = root_entry_addr(rid.bus()) + (upper ? 8 : 0);
    uint64_t half = m_.read_u64(re);
    if (!(half & 1)) {
        half = alloc_() | 1; // LP/UP + context-table pointer
        m_.write_u64(re, half);
    }
    auto q = ce.encode();
    m_.write((half & kPageMask) + 32u * (rid.devfn() & 0x7F), q.data(), 32);
}

SmContextEntry VtdTableWriter::make_context(pcie::Bdf rid, uint8_t pdts, bool dte, bool paside, bool pre,
                                            uint32_t rid_pasid) {
    SmContextEntry ce;
    ce.present = true;
    ce.dte = dte;
    ce.paside = paside;
    ce.pre = pre;
    ce.pdts = pdts;
    ce.rid_pasid = rid_pasid;
    // A directory of 2^(PDTS+7) 8-byte entries spans 2^(PDTS+7)*8 bytes: allocate contiguous pages.
    const uint64_t pages = std::max<uint64_t>(1, (uint64_t{8} << (pdts + 7)) / 4096);
    ce.pasid_dir = alloc_();
    for (uint64_t i = 1; i < pages; ++i) {
        uint64_t next = alloc_();
        if (next != ce.pasid_dir + 4096 * i)
            throw std::runtime_error("VtdTableWriter: PASID directory needs contiguous pages from the allocator");
    }
    set_context(rid, ce);
    return ce;
}

uint64_t VtdTableWriter::pasid_entry_addr(const SmContextEntry& ce, uint32_t pasid) const {
    const uint64_t de = m_.read_u64(ce.pasid_dir + 8u * (pasid >> 6));
    if (!(de & 1)) return 0;
    return (de & kPageMask) + 64u * (pasid & 0x3F);
}

void VtdTableWriter::set_pasid_entry(const SmContextEntry& ce, uint32_t pasid, const PasidEntry& pe) {
    const uint64_t dea = ce.pasid_dir + 8u * (pasid >> 6);
    uint64_t de = m_.read_u64(dea);
    if (!(de & 1)) {
        de = alloc_() | 1;
        m_.write_u64(dea, de);
    }
    auto q = pe.encode();
    m_.write((de & kPageMask) + 64u * (pasid & 0x3F), q.data(), 64);
}

void VtdTableWriter::clear_pasid_entry(const SmContextEntry& ce, uint32_t pasid) {
    const uint64_t a = pasid_entry_addr(ce, pasid);
    if (!a) return;
    std::array<uint64_t, 8> z{};
    m_.write(a, z.data(), 64);
}

} // namespace iommusim::iommu::vtd
