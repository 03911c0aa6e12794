// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/smmuv3/smmuv3_tables.hpp"

#include <algorithm>
#include <vector>

#include "models/iommu/common/pt_format.hpp"
#include "models/iommu/smmuv3/smmuv3_faults.hpp"
#include "models/iommu/smmuv3/smmuv3_fields.hpp"

namespace iommusim::iommu::smmuv3 {

// ------------------------------------------------------------------ layouts

namespace {
// STE (spec-layouts.md C.1; IHI 0070 5.2; Linux STRTAB_STE_*).
constexpr Field<Ste> kSteLayout[] = {
    field<&Ste::valid>(0, 0, 0), field<&Ste::config>(0, 3, 1), field<&Ste::s1fmt>(0, 5, 4),
    field<&Ste::s1_context_ptr>(0, 51, 6, true), field<&Ste::s1cdmax>(0, 63, 59),
    field<&Ste::s1dss>(1, 1, 0), field<&Ste::s1cir>(1, 3, 2), field<&Ste::s1cor>(1, 5, 4),
    field<&Ste::s1csh>(1, 7, 6), field<&Ste::ppar>(1, 18, 18), field<&Ste::s1stalld>(1, 27, 27), field<&Ste::eats>(1, 29, 28),
    field<&Ste::strw>(1, 31, 30), field<&Ste::shcfg>(1, 45, 44),
    field<&Ste::s2vmid>(2, 15, 0), field<&Ste::s2t0sz>(2, 37, 32), field<&Ste::s2sl0>(2, 39, 38),
    field<&Ste::s2ir0>(2, 41, 40), field<&Ste::s2or0>(2, 43, 42), field<&Ste::s2sh0>(2, 45, 44),
    field<&Ste::s2tg>(2, 47, 46), field<&Ste::s2ps>(2, 50, 48), field<&Ste::s2aa64>(2, 51, 51),
    field<&Ste::s2endi>(2, 52, 52), field<&Ste::s2affd>(2, 53, 53), field<&Ste::s2ptw>(2, 54, 54),
    field<&Ste::s2hd>(2, 55, 55), field<&Ste::s2ha>(2, 56, 56), field<&Ste::s2s>(2, 57, 57),
    field<&Ste::s2r>(2, 58, 58), field<&Ste::s2ttb>(3, 51, 4, true),
};
// CD (spec-layouts.md C.2; IHI 0070 5.4; Linux CTXDESC_CD_*; TTB1 / T1SZ / TG1 as QEMU).
constexpr Field<Cd> kCdLayout[] = {
    field<&Cd::t0sz>(0, 5, 0), field<&Cd::tg0>(0, 7, 6), field<&Cd::ir0>(0, 9, 8), field<&Cd::or0>(0, 11, 10),
    field<&Cd::sh0>(0, 13, 12), field<&Cd::epd0>(0, 14, 14), field<&Cd::endi>(0, 15, 15),
    field<&Cd::t1sz>(0, 21, 16), field<&Cd::tg1>(0, 23, 22), field<&Cd::ir1>(0, 25, 24),
    field<&Cd::or1>(0, 27, 26), field<&Cd::sh1>(0, 29, 28), field<&Cd::epd1>(0, 30, 30),
    field<&Cd::valid>(0, 31, 31), field<&Cd::ips>(0, 34, 32), field<&Cd::affd>(0, 35, 35),
    field<&Cd::wxn>(0, 36, 36), field<&Cd::uwxn>(0, 37, 37), field<&Cd::tbi>(0, 39, 38),
    field<&Cd::pan>(0, 40, 40), field<&Cd::aa64>(0, 41, 41), field<&Cd::hd>(0, 42, 42), field<&Cd::ha>(0, 43, 43),
    field<&Cd::s>(0, 44, 44), field<&Cd::r>(0, 45, 45), field<&Cd::a>(0, 46, 46), field<&Cd::aset>(0, 47, 47),
    field<&Cd::asid>(0, 63, 48),
    field<&Cd::nscfg0>(1, 0, 0), field<&Cd::had0>(1, 1, 1), field<&Cd::ttb0>(1, 51, 4, true),
    field<&Cd::nscfg1>(2, 0, 0), field<&Cd::had1>(2, 1, 1), field<&Cd::ttb1>(2, 51, 4, true),
    field<&Cd::mair>(3, 63, 0), field<&Cd::amair>(4, 63, 0),
};
} // namespace

std::array<uint64_t, 8> Ste::encode() const { return encode_fields<8>(*this, kSteLayout); }
Ste Ste::decode(const std::array<uint64_t, 8>& d) { return decode_fields(d, kSteLayout); }
std::array<uint64_t, 8> Cd::encode() const { return encode_fields<8>(*this, kCdLayout); }
Cd Cd::decode(const std::array<uint64_t, 8>& d) { return decode_fields(d, kCdLayout); }

uint64_t L1Std::encode() const { return put(l2ptr & mask(51, 6), 4, 0, span); }
L1Std L1Std::decode(uint64_t d) { return {static_cast<uint8_t>(get(d, 4, 0)), d & mask(51, 6)}; }
uint64_t L1Cd::encode() const { return put(l2ptr & mask(51, 12), 0, valid); }
L1Cd L1Cd::decode(uint64_t d) { return {get(d, 0), d & mask(51, 12)}; }

uint8_t tg0_shift(uint8_t tg) {
    switch (tg) {
    case 0: return 12;
    case 1: return 16;
    case 2: return 14;
    default: return 0;
    }
}
uint8_t tg1_shift(uint8_t tg) {
    switch (tg) {
    case 1: return 14;
    case 2: return 12;
    case 3: return 16;
    default: return 0;
    }
}

// ------------------------------------------------------------------ reader

namespace {

template <size_t N>
bool fetch(mem::PhysMem& m, uint64_t pa, std::array<uint64_t, N>& out) {
    try {
        m.read(pa, out.data(), N * 8);
        return true;
    } catch (const mem::AddressError&) {
        return false;
    }
}

Event config_event(uint8_t id, uint32_t sid, bool ssv, uint32_t ssid) {
    Event e;
    e.id = id;
    e.sid = sid;
    e.ssv = ssv;
    e.ssid = ssv ? ssid : 0;
    return e;
}

bool granule_ok(const Smmuv3Params& p, uint8_t shift) {
    return (shift == 12 && p.gran4k) || (shift == 14 && p.gran16k) || (shift == 16 && p.gran64k);
}

/// Levels a stage-1 walk needs for input_bits with the granule (no concatenation).
uint8_t s1_levels(unsigned input_bits, unsigned gshift) {
    const unsigned stride = gshift - 3;
    return static_cast<uint8_t>((input_bits - gshift + stride - 1) / stride);
}

/// VTCR.SL0 -> number of levels walked (IHI 0070 5.2 S2SL0; Arm ARM VTCR_EL2.SL0): 4 KiB SL0 0/1/2
/// starts at level 2/1/0, 16 KiB and 64 KiB at level 3/2/1; 3 is reserved.
uint8_t s2_levels(uint8_t sl0, unsigned gshift) {
    if (sl0 == 3) return 0;
    const unsigned start = gshift == 12 ? 2u - sl0 : 3u - sl0;
    return static_cast<uint8_t>(4 - start);
}

constexpr unsigned kMinTxsz = 16, kMaxTxsz = 39; // 48-bit .. 25-bit inputs (no LVA, no TTST)

} // namespace

Smmuv3TableReader::SteResult Smmuv3TableReader::read_ste(mem::PhysMem& m, const StrtabConfig& st,
                                                         uint32_t sid) const {
    SteResult r;
    auto bad_sid = [&] {
        r.event = config_event(evt::kBadStreamId, sid, false, 0);
        return r;
    };
    if (st.log2size < 32 && (uint64_t{sid} >> st.log2size)) return bad_sid();
    uint64_t addr = st.base + uint64_t{sid} * 64;
    if (st.two_level) {
        // L1 index = SID[log2size-1:split]; the L2 table holds 2^(Span-1) STEs (Span <= SPLIT + 1).
        const unsigned split = std::min<unsigned>(st.split, st.log2size);
        const uint64_t l1_addr = st.base + (uint64_t{sid} >> split) * 8;
        std::array<uint64_t, 1> l1{};
        ++r.reads;
        if (!fetch(m, l1_addr, l1)) {
            r.event = config_event(evt::kSteFetch, sid, false, 0);
            r.event->fetch_addr = l1_addr;
            return r;
        }
        const L1Std d = L1Std::decode(l1[0]);
        const uint64_t low = sid & ((uint64_t{1} << split) - 1);
        if (d.span == 0 || d.span > split + 1 || (low >> (d.span - 1)) != 0) return bad_sid();
        addr = d.l2ptr + low * 64;
    }
    std::array<uint64_t, 8> w{};
    ++r.reads;
    r.ste_addr = addr;
    if (!fetch(m, addr, w)) {
        r.event = config_event(evt::kSteFetch, sid, false, 0);
        r.event->fetch_addr = addr;
        return r;
    }
    r.ste = Ste::decode(w);
    if (check_ste(r.ste)) r.event = config_event(evt::kBadSte, sid, false, 0);
    return r;
}

const char* Smmuv3TableReader::check_ste(const Ste& s) const {
    if (!s.valid) return "STE.V = 0";
    if (s.config != ste_cfg::kAbort && s.config < ste_cfg::kBypass) return "STE.Config reserved";
    if (s.s1_translates() && !p_.s1p) return "stage 1 not supported by this SMMU (IDR0/IDR5)";
    if (s.s2_translates() && !p_.s2p) return "stage 2 not supported by this SMMU (IDR0/IDR5)";
    if (s.config == ste_cfg::kAbort || s.config == ste_cfg::kBypass) return nullptr;
    if (s.s1_translates()) {
        if (s.s1fmt == 3) return "STE.S1Fmt reserved";
        if (s.s1fmt != 0 && !p_.cd2l) return "2-level CD table without IDR0.CD2L";
        if (s.s1cdmax > p_.ssidsize) return "STE.S1CDMax beyond IDR1.SSIDSIZE";
        if (s.s1dss == 3) return "STE.S1DSS reserved";
        if (s.s1stalld && p_.stall_model != StallModel::stall) return "STE.S1STALLD with STALL_MODEL != 0";
        if (s.strw != strw::kNsEl1 && s.strw != strw::kEl2) return "STE.STRW EL2 (non-E2H) or reserved: not modelled";
        if (s.strw == strw::kEl2 && (!p_.hyp || s.s2_translates())) return "STE.STRW EL2 without HYP or with stage 2";
    }
    if (s.eats == 3) return "STE.EATS reserved";
    if (s.eats != 0 && !p_.ats) return "STE.EATS without IDR0.ATS";
    if (s.eats == 2 && !s.s2_translates()) return "split-stage ATS without stage 2";
    if (s.s2_translates()) {
        if (!s.s2aa64) return "STE.S2AA64 = 0 (AArch32 tables not supported by this SMMU)";
        if (s.s2endi) return "big-endian stage-2 tables not supported by this SMMU (IDR0/IDR5)";
        if (s.s2ps > 6) return "STE.S2PS reserved";
        if (s.s2s && p_.stall_model == StallModel::terminate_only) return "STE.S2S without stall support";
        if (!s.s2s && p_.stall_model == StallModel::forced) return "STE.S2S = 0 with forced stall";
        if ((s.s2vmid >> 8) && !p_.vmid16) return "STE.S2VMID[15:8] without VMID16";
        const uint8_t g = tg0_shift(s.s2tg);
        if (g == 0 || !granule_ok(p_, g)) return "STE.S2TG reserved or granule not supported by this SMMU (IDR0/IDR5)";
        if (s.s2t0sz < kMinTxsz || s.s2t0sz > kMaxTxsz) return "STE.S2T0SZ out of range";
        const StageConfig c = stage2_config(s);
        if (c.levels == 0) return "STE.S2SL0 reserved";
        if (format_of(PtFormat::arm_s2).check_config(c)) return "STE.S2T0SZ / S2SL0 / S2TTB inconsistent";
    }
    return nullptr;
}

Smmuv3TableReader::CdSelect Smmuv3TableReader::select_cd(const Ste& s, uint32_t sid, bool ssv,
                                                         uint32_t ssid) const {
    CdSelect r;
    if (!s.s1_translates()) {
        // A SubstreamID on a stream without stage 1 cannot select anything.
        if (ssv) r.event = config_event(evt::kBadSubstreamId, sid, ssv, ssid);
        return r;
    }
    if (ssv) {
        if (s.s1cdmax == 0 || (uint64_t{ssid} >> s.s1cdmax) != 0)
            r.event = config_event(evt::kBadSubstreamId, sid, ssv, ssid);
        r.cd = true;
        r.ssid = ssid;
        return r;
    }
    r.cd = true; // without SubstreamID: CD 0, unless substreams are on and S1DSS says otherwise
    if (s.s1cdmax == 0 || s.s1dss == s1dss::kSsid0) return r;
    r.cd = false;
    if (s.s1dss == s1dss::kTerminate) r.event = config_event(evt::kStreamDisabled, sid, false, 0);
    return r;
}

Smmuv3TableReader::CdResult Smmuv3TableReader::read_cd(mem::PhysMem& m, const Ste& s, uint32_t sid, bool ssv,
                                                       uint32_t ssid, const Stage2Fn* s2) const {
    CdResult r;
    const bool nested = s.s2_translates() && s2;
    TranslationContext s2ctx;
    if (nested) {
        s2ctx.domain_tag = s.s2vmid;
        s2ctx.s2 = stage2_config(s);
    }
    // Table addresses are IPAs under nesting: stage 2 first (a fault there has CLASS = CD).
    auto to_pa = [&](uint64_t ipa) -> std::optional<uint64_t> {
        if (!nested) return ipa;
        const Translation t = (*s2)(s2ctx, ipa);
        if (t.ok()) return t.output;
        Event e = config_event(walk_event_id(t.fault, 2), sid, ssv, ssid);
        e.s2 = true;
        e.cls = EventClass::cd;
        e.rnw = true;
        e.ipa = ipa;
        r.event = e;
        return std::nullopt;
    };
    auto fetch_fault = [&](uint64_t pa) {
        r.event = config_event(evt::kCdFetch, sid, ssv, ssid);
        r.event->fetch_addr = pa;
        return r;
    };
    uint64_t cd_ipa = s.s1_context_ptr + uint64_t{ssid} * 64;
    if (s.s1fmt != 0) {
        const unsigned split = cd_split(s.s1fmt);
        const uint64_t l1_ipa = s.s1_context_ptr + (uint64_t{ssid} >> split) * 8;
        auto l1_pa = to_pa(l1_ipa);
        if (!l1_pa) return r;
        std::array<uint64_t, 1> l1{};
        ++r.reads;
        if (!fetch(m, *l1_pa, l1)) return fetch_fault(*l1_pa);
        const L1Cd d = L1Cd::decode(l1[0]);
        if (!d.valid) {
            r.event = config_event(evt::kBadSubstreamId, sid, ssv, ssid);
            return r;
        }
        cd_ipa = d.l2ptr + (uint64_t{ssid} & ((uint64_t{1} << split) - 1)) * 64;
    }
    auto cd_pa = to_pa(cd_ipa);
    if (!cd_pa) return r;
    std::array<uint64_t, 8> w{};
    ++r.reads;
    r.cd_addr = *cd_pa;
    if (!fetch(m, *cd_pa, w)) return fetch_fault(*cd_pa);
    r.cd = Cd::decode(w);
    if (check_cd(r.cd)) r.event = config_event(evt::kBadCd, sid, ssv, ssid);
    return r;
}

const char* Smmuv3TableReader::check_cd(const Cd& c) const {
    if (!c.valid) return "CD.V = 0";
    if (!c.aa64) return "CD.AA64 = 0 (AArch32 tables not supported by this SMMU)";
    if (c.endi) return "big-endian tables not supported by this SMMU (IDR0/IDR5)";
    if (c.ips > 6) return "CD.IPS reserved";
    if (c.s && p_.stall_model == StallModel::terminate_only) return "CD.S without stall support";
    if (!c.s && p_.stall_model == StallModel::forced) return "CD.S = 0 with forced stall";
    if ((c.asid >> 8) && !p_.asid16) return "CD.ASID[15:8] without ASID16";
    for (int upper = 0; upper < 2; ++upper) {
        if (upper ? c.epd1 : c.epd0) continue; // a range without walks may hold anything
        const uint8_t g = upper ? tg1_shift(c.tg1) : tg0_shift(c.tg0);
        if (g == 0 || !granule_ok(p_, g)) return upper ? "CD.TG1 reserved or not supported by this SMMU (IDR0/IDR5)" : "CD.TG0 reserved or not supported by this SMMU (IDR0/IDR5)";
        const uint8_t tsz = upper ? c.t1sz : c.t0sz;
        if (tsz < kMinTxsz || tsz > kMaxTxsz) return upper ? "CD.T1SZ out of range" : "CD.T0SZ out of range";
        if (format_of(PtFormat::arm_s1).check_config(stage1_config(c, upper))) return "CD table base misaligned";
    }
    return nullptr;
}

StageConfig Smmuv3TableReader::stage1_config(const Cd& c, bool upper) const {
    StageConfig s;
    s.enabled = true;
    s.format = PtFormat::arm_s1;
    s.granule_shift = upper ? tg1_shift(c.tg1) : tg0_shift(c.tg0);
    s.input_bits = static_cast<uint8_t>(64 - (upper ? c.t1sz : c.t0sz));
    s.levels = s.granule_shift ? s1_levels(s.input_bits, s.granule_shift) : 0;
    s.root = (upper ? c.ttb1 : c.ttb0) & mask(51, 4);
    // IPS beyond the unit's OAS behaves as the OAS (IHI 0070 5.4 CD.IPS).
    s.output_bits = std::min(size_bits(c.ips), p_.oas_bits);
    s.hw_access_dirty = c.ha && c.hd && p_.httu == Httu::access_dirty;
    s.af_fault_disable = c.affd;
    s.upper = upper;
    return s;
}

StageConfig Smmuv3TableReader::stage2_config(const Ste& s) const {
    StageConfig c;
    c.enabled = true;
    c.format = PtFormat::arm_s2;
    c.granule_shift = tg0_shift(s.s2tg);
    c.input_bits = static_cast<uint8_t>(64 - s.s2t0sz);
    c.levels = c.granule_shift ? s2_levels(s.s2sl0, c.granule_shift) : 0;
    if (c.levels) { // concatenated first-level tables: the index bits beyond one table
        const unsigned stride = c.granule_shift - 3u;
        const unsigned top_shift = c.granule_shift + (c.levels - 1u) * stride;
        const unsigned top = c.input_bits > top_shift ? c.input_bits - top_shift : 0;
        c.concat_tables = static_cast<uint8_t>(top > stride && top - stride <= 4 ? 1u << (top - stride) : 1u);
    }
    c.root = s.s2ttb & mask(51, 4);
    c.output_bits = std::min(size_bits(s.s2ps), p_.oas_bits);
    c.hw_access_dirty = s.s2ha && s.s2hd && p_.httu == Httu::access_dirty;
    c.af_fault_disable = s.s2affd;
    return c;
}

StreamContext Smmuv3TableReader::make_context(const Ste& s, const Cd* cd) const {
    StreamContext sc;
    sc.eats = s.eats;
    sc.s1stalld = s.s1stalld;
    if (s.config == ste_cfg::kAbort) {
        sc.abort = true;
        return sc;
    }
    TranslationContext& c = sc.ctx;
    c.allow_supervisor = true;
    c.allow_execute = true;
    c.ats_allowed = s.eats != 0;
    c.pri_allowed = p_.pri;
    sc.s1 = s.s1_translates() && cd;
    sc.s2 = s.s2_translates();
    const bool el2 = sc.s1 && s.strw == strw::kEl2;
    sc.vmid = el2 ? 0 : static_cast<uint16_t>(p_.vmid16 ? s.s2vmid : (s.s2vmid & 0xFF));
    c.domain_tag = sc.vmid;
    c.regime = el2 ? Regime::el2 : Regime::el1;
    if (sc.s2) {
        c.s2 = stage2_config(s);
        sc.record_s2 = s.s2r;
        sc.stall_s2 = s.s2s;
    }
    if (sc.s1) {
        sc.asid = static_cast<uint16_t>(p_.asid16 ? cd->asid : (cd->asid & 0xFF));
        c.as_tag = sc.asid;
        c.s1 = stage1_config(*cd, false);
        c.s1_upper = stage1_config(*cd, true);
        c.va.split = true;
        c.va.tbi_lower = cd->tbi & 1;
        c.va.tbi_upper = cd->tbi & 2;
        c.va.walk_lower = !cd->epd0;
        c.va.walk_upper = !cd->epd1;
        sc.record_s1 = cd->r;
        sc.stall_s1 = cd->s;
        sc.abort_s1 = cd->a;
    }
    sc.bypass = !sc.s1 && !sc.s2;
    c.pass_through = sc.bypass;
    c.ats_split_stage = s.eats == 2 && sc.s2; // check_ste refuses EATS = 2 without stage 2
    return sc;
}

Smmuv3TableReader::Resolution Smmuv3TableReader::resolve(mem::PhysMem& m, const StrtabConfig& st, uint32_t sid,
                                                         bool ssv, uint32_t ssid, const Stage2Fn* s2) const {
    Resolution r;
    SteResult ste = read_ste(m, st, sid);
    r.reads += ste.reads;
    if (ste.event) {
        r.event = ste.event;
        return r;
    }
    if (ste.ste.config == ste_cfg::kAbort) {
        r.sc = make_context(ste.ste, nullptr);
        return r;
    }
    CdSelect sel = select_cd(ste.ste, sid, ssv, ssid);
    if (sel.event) {
        r.event = sel.event;
        return r;
    }
    if (!sel.cd) {
        r.sc = make_context(ste.ste, nullptr);
        return r;
    }
    CdResult cd = read_cd(m, ste.ste, sid, ssv, sel.ssid, s2);
    r.reads += cd.reads;
    if (cd.event) {
        r.event = cd.event;
        return r;
    }
    r.sc = make_context(ste.ste, &cd.cd);
    return r;
}

// ------------------------------------------------------------------ writers

namespace {
std::optional<uint64_t> zeroed(mem::PhysMem& m, const TableAlloc& alloc, uint64_t bytes, uint64_t align) {
    auto a = alloc(bytes, align);
    if (!a) return std::nullopt;
    std::vector<uint8_t> z(bytes, 0);
    m.write(*a, z.data(), z.size());
    return a;
}
template <size_t N>
void store(mem::PhysMem& m, uint64_t pa, const std::array<uint64_t, N>& w) {
    m.write(pa, w.data(), N * 8);
}
} // namespace

StreamTableWriter::StreamTableWriter(mem::PhysMem& m, TableAlloc alloc, uint8_t sid_bits, bool two_level,
                                     uint8_t split)
    : m_(m), alloc_(std::move(alloc)) {
    cfg_.two_level = two_level;
    cfg_.log2size = sid_bits;
    cfg_.split = two_level ? std::min(split, sid_bits) : 0;
    const uint64_t entries = two_level ? uint64_t{1} << (sid_bits - cfg_.split) : uint64_t{1} << sid_bits;
    const uint64_t bytes = entries * (two_level ? 8 : 64);
    // The table base is aligned to its size (IHI 0070 6.3.23: ADDR bits below the size are IGNORED / RES0).
    cfg_.base = zeroed(m_, alloc_, bytes, std::max<uint64_t>(bytes, 64)).value_or(0);
}

uint64_t StreamTableWriter::strtab_base_reg() const { return cfg_.base & mask(51, 6); }

uint32_t StreamTableWriter::strtab_base_cfg_reg() const {
    uint64_t v = put(0, 5, 0, cfg_.log2size);
    v = put(v, 10, 6, cfg_.split);
    v = put(v, 17, 16, cfg_.two_level ? 1 : 0);
    return static_cast<uint32_t>(v);
}

std::optional<uint64_t> StreamTableWriter::ste_address(uint32_t sid) const {
    if (cfg_.log2size < 32 && (uint64_t{sid} >> cfg_.log2size)) return std::nullopt;
    if (!cfg_.two_level) return cfg_.base + uint64_t{sid} * 64;
    const L1Std d = L1Std::decode(m_.read_u64(cfg_.base + (uint64_t{sid} >> cfg_.split) * 8));
    if (d.span == 0) return std::nullopt;
    return d.l2ptr + (sid & ((uint64_t{1} << cfg_.split) - 1)) * 64;
}

std::optional<uint64_t> StreamTableWriter::prepare(uint32_t sid, const Ste& initial) {
    if (!cfg_.base || (cfg_.log2size < 32 && (uint64_t{sid} >> cfg_.log2size))) return std::nullopt;
    if (cfg_.two_level) {
        const uint64_t l1 = cfg_.base + (uint64_t{sid} >> cfg_.split) * 8;
        if (L1Std::decode(m_.read_u64(l1)).span == 0) {
            // Linux: one L2 table of 2^split STEs per descriptor, Span = split + 1.
            const uint64_t bytes = uint64_t{64} << cfg_.split;
            auto l2 = zeroed(m_, alloc_, bytes, bytes);
            if (!l2) return std::nullopt;
            if (initial.valid)
                for (uint64_t at = *l2; at < *l2 + bytes; at += 64) store(m_, at, initial.encode());
            m_.write_u64(l1, L1Std{static_cast<uint8_t>(cfg_.split + 1), *l2}.encode());
        }
    }
    return ste_address(sid);
}

bool StreamTableWriter::write_ste(uint32_t sid, const Ste& s) {
    const auto at = prepare(sid, Ste{});
    if (!at) return false;
    store(m_, *at, s.encode());
    return true;
}

CdTableWriter::CdTableWriter(mem::PhysMem& m, TableAlloc alloc, uint8_t s1cdmax, uint8_t s1fmt)
    : m_(m), alloc_(std::move(alloc)), s1cdmax_(s1cdmax), s1fmt_(s1fmt) {
    uint64_t bytes;
    if (s1fmt == 0) {
        bytes = uint64_t{64} << s1cdmax;
    } else {
        const unsigned split = cd_split(s1fmt);
        bytes = uint64_t{8} << (s1cdmax > split ? s1cdmax - split : 0);
    }
    base_ = zeroed(m_, alloc_, bytes, std::max<uint64_t>(bytes, 64)).value_or(0);
}

std::optional<uint64_t> CdTableWriter::cd_address(uint32_t ssid) const {
    if (!base_ || (uint64_t{ssid} >> s1cdmax_)) return std::nullopt;
    if (s1fmt_ == 0) return base_ + uint64_t{ssid} * 64;
    const unsigned split = cd_split(s1fmt_);
    const L1Cd d = L1Cd::decode(m_.read_u64(base_ + (uint64_t{ssid} >> split) * 8));
    if (!d.valid) return std::nullopt;
    return d.l2ptr + (ssid & ((uint64_t{1} << split) - 1)) * 64;
}

std::optional<uint64_t> CdTableWriter::prepare(uint32_t ssid, bool* created) {
    if (created) *created = false;
    if (!base_ || (uint64_t{ssid} >> s1cdmax_)) return std::nullopt;
    if (s1fmt_ != 0) {
        const unsigned split = cd_split(s1fmt_);
        const uint64_t l1 = base_ + (uint64_t{ssid} >> split) * 8;
        if (!L1Cd::decode(m_.read_u64(l1)).valid) {
            const uint64_t bytes = uint64_t{64} << split;
            auto l2 = zeroed(m_, alloc_, bytes, bytes);
            if (!l2) return std::nullopt;
            m_.write_u64(l1, L1Cd{true, *l2}.encode());
            if (created) *created = true;
        }
    }
    return cd_address(ssid);
}

bool CdTableWriter::write_cd(uint32_t ssid, const Cd& c) {
    const auto at = prepare(ssid);
    if (!at) return false;
    store(m_, *at, c.encode());
    return true;
}

} // namespace iommusim::iommu::smmuv3
