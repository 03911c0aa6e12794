// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/smmuv3/smmuv3_commands.hpp"

#include "models/iommu/smmuv3/smmuv3_fields.hpp"

namespace iommusim::iommu::smmuv3 {

std::string_view command_name(uint8_t opcode) {
    switch (opcode) {
    case op::kPrefetchConfig: return "CMD_PREFETCH_CONFIG";
    case op::kPrefetchAddr: return "CMD_PREFETCH_ADDR";
    case op::kCfgiSte: return "CMD_CFGI_STE";
    case op::kCfgiSteRange: return "CMD_CFGI_STE_RANGE";
    case op::kCfgiCd: return "CMD_CFGI_CD";
    case op::kCfgiCdAll: return "CMD_CFGI_CD_ALL";
    case op::kCfgiAll: return "CMD_CFGI_ALL";
    case op::kTlbiNhAll: return "CMD_TLBI_NH_ALL";
    case op::kTlbiNhAsid: return "CMD_TLBI_NH_ASID";
    case op::kTlbiNhVa: return "CMD_TLBI_NH_VA";
    case op::kTlbiNhVaa: return "CMD_TLBI_NH_VAA";
    case op::kTlbiEl3All: return "CMD_TLBI_EL3_ALL";
    case op::kTlbiEl3Va: return "CMD_TLBI_EL3_VA";
    case op::kTlbiEl2All: return "CMD_TLBI_EL2_ALL";
    case op::kTlbiEl2Asid: return "CMD_TLBI_EL2_ASID";
    case op::kTlbiEl2Va: return "CMD_TLBI_EL2_VA";
    case op::kTlbiEl2Vaa: return "CMD_TLBI_EL2_VAA";
    case op::kTlbiS12Vmall: return "CMD_TLBI_S12_VMALL";
    case op::kTlbiS2Ipa: return "CMD_TLBI_S2_IPA";
    case op::kTlbiNsnhAll: return "CMD_TLBI_NSNH_ALL";
    case op::kAtcInv: return "CMD_ATC_INV";
    case op::kPriResp: return "CMD_PRI_RESP";
    case op::kResume: return "CMD_RESUME";
    case op::kStallTerm: return "CMD_STALL_TERM";
    case op::kSync: return "CMD_SYNC";
    }
    return "?";
}

namespace {

// Which fields a command has (IHI 0070 4.2-4.7; spec-layouts.md C.3).
enum Field : uint32_t {
    fSid = 1u << 0,       // d0 63:32
    fSsid = 1u << 1,      // d0 SSV 11, SubstreamID 31:12
    fSsidNoSsv = 1u << 2, // d0 SubstreamID 31:12 (CFGI_CD)
    fLeaf = 1u << 3,      // d1 0
    fRange = 1u << 4,     // d1 4:0
    fVmid = 1u << 5,      // d0 47:32
    fAsid = 1u << 6,      // d0 63:48
    fVa = 1u << 7,        // d0 NUM 16:12, SCALE 24:20; d1 Leaf 0, TTL 9:8, TG 11:10, Address 63:12
    fIpa = 1u << 8,       // as fVa with IPA 51:12
    fAtc = 1u << 9,       // d0 Global 9; d1 Size 5:0, Address 63:12
    fPri = 1u << 10,      // d1 PRGIndex 8:0, Resp 13:12
    fResume = 1u << 11,   // d0 Resp 13:12; d1 STAG 15:0
    fSync = 1u << 12,     // d0 CS 13:12, MSH 23:22, MSIAttr 27:24, MSIData 63:32; d1 MSIAddress 51:2
    fPrefetch = 1u << 13, // d1 Size 4:0, Address 63:12
};

constexpr uint32_t fields_of(uint8_t opcode) {
    switch (opcode) {
    case op::kPrefetchConfig: return fSid | fSsid;
    case op::kPrefetchAddr: return fSid | fSsid | fPrefetch;
    case op::kCfgiSte: return fSid | fLeaf;
    case op::kCfgiSteRange: return fSid | fRange;
    case op::kCfgiCd: return fSid | fSsidNoSsv | fLeaf;
    case op::kCfgiCdAll: return fSid;
    case op::kCfgiAll: return fRange;
    case op::kTlbiNhAll: return fVmid;
    case op::kTlbiNhAsid: return fVmid | fAsid;
    case op::kTlbiNhVa: return fVmid | fAsid | fVa;
    case op::kTlbiNhVaa: return fVmid | fVa;
    case op::kTlbiEl2All: return 0;
    case op::kTlbiEl2Asid: return fAsid;
    case op::kTlbiEl2Va: return fAsid | fVa;
    case op::kTlbiEl2Vaa: return fVa;
    case op::kTlbiS12Vmall: return fVmid;
    case op::kTlbiS2Ipa: return fVmid | fIpa;
    case op::kTlbiNsnhAll: return 0;
    case op::kAtcInv: return fSid | fSsid | fAtc;
    case op::kPriResp: return fSid | fSsid | fPri;
    case op::kResume: return fSid | fResume;
    case op::kStallTerm: return fSid;
    case op::kSync: return fSync;
    default: return ~0u; // unknown
    }
}

/// Whether the opcode exists on this unit's Non-secure command queue.
bool supported(uint8_t opcode, const Smmuv3Params& p) {
    switch (opcode) {
    case op::kTlbiEl2All:
    case op::kTlbiEl2Asid:
    case op::kTlbiEl2Va:
    case op::kTlbiEl2Vaa: return p.hyp;
    case op::kTlbiS12Vmall:
    case op::kTlbiS2Ipa: return p.s2p;
    case op::kAtcInv: return p.ats;
    case op::kPriResp: return p.pri;
    case op::kResume:
    case op::kStallTerm: return p.stall_model != StallModel::terminate_only;
    default: return fields_of(opcode) != ~0u;
    }
}

/// The bits each opcode's fields occupy (everything else is RES0).
struct Masks {
    uint64_t d0 = mask(7, 0), d1 = 0;
};
constexpr Masks masks_of(uint32_t f) {
    Masks m;
    if (f & fSid) m.d0 |= mask(63, 32);
    if (f & fSsid) m.d0 |= mask(31, 11);
    if (f & fSsidNoSsv) m.d0 |= mask(31, 12);
    if (f & fLeaf) m.d1 |= mask(0, 0);
    if (f & fRange) m.d1 |= mask(4, 0);
    if (f & fVmid) m.d0 |= mask(47, 32);
    if (f & fAsid) m.d0 |= mask(63, 48);
    if (f & (fVa | fIpa)) {
        m.d0 |= mask(16, 12) | mask(24, 20);
        m.d1 |= mask(0, 0) | mask(11, 8) | ((f & fVa) ? mask(63, 12) : mask(51, 12));
    }
    if (f & fAtc) {
        m.d0 |= mask(9, 9);
        m.d1 |= mask(5, 0) | mask(63, 12);
    }
    if (f & fPri) m.d1 |= mask(8, 0) | mask(13, 12);
    if (f & fResume) {
        m.d0 |= mask(13, 12);
        m.d1 |= mask(15, 0);
    }
    if (f & fSync) {
        m.d0 |= mask(13, 12) | mask(23, 22) | mask(27, 24) | mask(63, 32);
        m.d1 |= mask(51, 2);
    }
    if (f & fPrefetch) m.d1 |= mask(4, 0) | mask(63, 12);
    return m;
}

uint64_t granule_shift_of_tg(uint8_t tg) { return tg == 1 ? 12 : tg == 2 ? 14 : 16; }

/// The field masks of every opcode, built at compile time (decode and encode run per command).
constexpr std::array<Masks, 256> kMasks = [] {
    std::array<Masks, 256> t{};
    for (unsigned o = 0; o < t.size(); ++o)
        if (const uint32_t f = fields_of(static_cast<uint8_t>(o)); f != ~0u) t[o] = masks_of(f);
    return t;
}();

/// The TLB invalidations: every field they have sits in the same place in each of them.
constexpr bool is_tlbi(uint8_t opcode) { return (opcode >= op::kTlbiNhAll && opcode <= op::kTlbiNsnhAll); }

} // namespace

std::optional<Command> decode_command(const std::array<uint64_t, 2>& e, const Smmuv3Params& p) {
    Command c;
    c.opcode = static_cast<uint8_t>(e[0]);
    if (!supported(c.opcode, p)) return std::nullopt;
    // A bit outside the command's fields is RES0 (incl. SSec): after this check every field
    // the command does not have reads as 0, so each group below extracts its fields as a whole.
    const Masks& m = kMasks[c.opcode];
    const uint64_t d0 = e[0], d1 = e[1];
    if ((d0 & ~m.d0) | (d1 & ~m.d1)) return std::nullopt;
    if (is_tlbi(c.opcode)) {
        c.vmid = static_cast<uint16_t>(get(d0, 47, 32));
        c.asid = static_cast<uint16_t>(get(d0, 63, 48));
        if ((c.vmid >> 8) && !p.vmid16) return std::nullopt;
        if ((c.asid >> 8) && !p.asid16) return std::nullopt;
        c.num = static_cast<uint8_t>(get(d0, 16, 12));
        c.scale = static_cast<uint8_t>(get(d0, 24, 20));
        c.leaf = get(d1, 0);
        c.ttl = static_cast<uint8_t>(get(d1, 9, 8));
        c.tg = static_cast<uint8_t>(get(d1, 11, 10));
        c.addr = d1 & mask(63, 12); // an IPA's bits 63:52 are RES0
        if (!p.ril && (c.num || c.scale || c.tg || c.ttl)) return std::nullopt;
        if (c.tg == 0 && (c.num || c.scale || c.ttl)) return std::nullopt;
        return c;
    }
    if (c.opcode == op::kSync) {
        const auto cs = get(d0, 13, 12);
        if (cs == 3) return std::nullopt;
        c.cs = static_cast<SyncSignal>(cs);
        c.msh = static_cast<uint8_t>(get(d0, 23, 22));
        c.msi_attr = static_cast<uint8_t>(get(d0, 27, 24));
        c.msi_data = static_cast<uint32_t>(get(d0, 63, 32));
        c.msi_addr = d1 & mask(51, 2);
        return c;
    }
    // Configuration, prefetch, ATC, PRI and stall commands: StreamID 63:32, SSV 11 and
    // SubstreamID 31:12 where the command has them.
    c.sid = static_cast<uint32_t>(get(d0, 63, 32));
    switch (c.opcode) {
    case op::kResume:
        c.resp = static_cast<uint8_t>(get(d0, 13, 12));
        c.stag = static_cast<uint16_t>(get(d1, 15, 0));
        if (c.resp == 3) return std::nullopt;
        return c;
    case op::kCfgiSte: c.leaf = get(d1, 0); return c;
    case op::kCfgiSteRange:
    case op::kCfgiAll: c.range = static_cast<uint8_t>(get(d1, 4, 0)); return c;
    default: break;
    }
    c.ssv = get(d0, 11);
    c.ssid = static_cast<uint32_t>(get(d0, 31, 12));
    switch (c.opcode) {
    case op::kCfgiCd: c.leaf = get(d1, 0); break;
    case op::kPrefetchAddr:
        c.size = static_cast<uint8_t>(get(d1, 4, 0));
        c.addr = d1 & mask(63, 12);
        break;
    case op::kAtcInv:
        c.global = get(d0, 9);
        c.size = static_cast<uint8_t>(get(d1, 5, 0));
        c.addr = d1 & mask(63, 12);
        break;
    case op::kPriResp:
        c.prg_index = static_cast<uint16_t>(get(d1, 8, 0));
        c.resp = static_cast<uint8_t>(get(d1, 13, 12));
        if (c.resp == 3) return std::nullopt;
        break;
    default: break;
    }
    return c;
}

std::array<uint64_t, 2> Command::encode() const {
    // Each group ORs its fields into the zeroed words; the opcode's field masks then drop
    // the fields this opcode does not have (the layout is the decode's, IHI 0070 4.2-4.7).
    constexpr auto at = [](uint64_t v, unsigned hi, unsigned lo) { return (v << lo) & mask(hi, lo); };
    uint64_t d0 = opcode, d1 = 0;
    if (is_tlbi(opcode)) {
        d0 |= at(vmid, 47, 32) | at(asid, 63, 48) | at(num, 16, 12) | at(scale, 24, 20);
        d1 |= at(leaf, 0, 0) | at(ttl, 9, 8) | at(tg, 11, 10) | (addr & mask(63, 12));
    } else if (opcode == op::kSync) {
        d0 |= at(static_cast<uint64_t>(cs), 13, 12) | at(msh, 23, 22) | at(msi_attr, 27, 24) | at(msi_data, 63, 32);
        d1 |= msi_addr & mask(51, 2);
    } else {
        d0 |= at(sid, 63, 32);
        switch (opcode) {
        case op::kResume:
            d0 |= at(resp, 13, 12);
            d1 |= at(stag, 15, 0);
            break;
        case op::kCfgiSte: d1 |= at(leaf, 0, 0); break;
        case op::kCfgiSteRange:
        case op::kCfgiAll: d1 |= at(range, 4, 0); break;
        case op::kCfgiCd: d1 |= at(leaf, 0, 0); [[fallthrough]];
        default: d0 |= at(ssv, 11, 11) | at(ssid, 31, 12); break;
        }
        switch (opcode) {
        case op::kPrefetchAddr: d1 |= at(size, 4, 0) | (addr & mask(63, 12)); break;
        case op::kAtcInv:
            d0 |= at(global, 9, 9);
            d1 |= at(size, 5, 0) | (addr & mask(63, 12));
            break;
        case op::kPriResp: d1 |= at(prg_index, 8, 0) | at(resp, 13, 12); break;
        default: break;
        }
    }
    const Masks& m = kMasks[opcode];
    return {d0 & m.d0, d1 & m.d1};
}

std::optional<InvalidationScope> tlb_scope(const Command& c) {
    using K = InvalidationScope::Kind;
    using St = InvalidationScope::Stage;
    InvalidationScope s;
    auto range = [&](uint32_t domain, bool has_as) {
        s.kind = K::range;
        s.domain_tag = domain;
        s.as_tag = c.asid;
        s.has_as = has_as;
        s.leaf_only = c.leaf;
        s.include_global = true; // a VA invalidation also drops global (nG = 0) entries of that VA
        s.addr = c.addr;
        // Range TLBI (TG != 0): (NUM+1) * 2^SCALE pages of the TG granule; otherwise
        // every entry that contains Address.
        s.size = c.tg ? (uint64_t{c.num} + 1) << (c.scale + granule_shift_of_tg(c.tg)) : 1;
    };
    switch (c.opcode) {
    case op::kTlbiNhAll:
        s.kind = K::domain;
        s.domain_tag = c.vmid;
        s.stage = St::s1;
        return s;
    case op::kTlbiNhAsid:
        s.kind = K::domain_as;
        s.domain_tag = c.vmid;
        s.as_tag = c.asid;
        s.has_as = true;
        s.stage = St::s1; // stage-2-only entries carry ASID 0 and are not the ASID's
        return s;
    case op::kTlbiNhVa:
    case op::kTlbiNhVaa:
        range(c.vmid, c.opcode == op::kTlbiNhVa);
        s.stage = St::s1;
        return s;
    case op::kTlbiEl2All:
        s.kind = K::all;
        s.regime = Regime::el2;
        return s;
    case op::kTlbiEl2Asid:
        s.kind = K::as_only;
        s.as_tag = c.asid;
        s.has_as = true;
        s.stage = St::s1;
        s.regime = Regime::el2;
        return s;
    case op::kTlbiEl2Va:
    case op::kTlbiEl2Vaa:
        range(0, c.opcode == op::kTlbiEl2Va);
        s.stage = St::s1;
        s.regime = Regime::el2;
        return s;
    case op::kTlbiS12Vmall:
        s.kind = K::domain;
        s.domain_tag = c.vmid;
        return s;
    case op::kTlbiS2Ipa:
        range(c.vmid, false);
        s.as_tag = 0;
        s.stage = St::s2;
        return s;
    case op::kTlbiNsnhAll:
        s.kind = K::all;
        return s;
    default: return std::nullopt;
    }
}

std::optional<ConfigInvalidation> config_invalidation(const Command& c) {
    ConfigInvalidation r;
    switch (c.opcode) {
    case op::kCfgiSte:
        // The STE and the CDs fetched through it (Leaf only spares the L1 descriptor, which is not cached).
        r.ste = r.cd = true;
        r.scope = ConfigScope::of_requester(c.sid);
        return r;
    case op::kCfgiSteRange:
        r.ste = r.cd = true;
        // 2^(Range+1) StreamIDs from SID aligned down; Range = 31 is every StreamID (CMD_CFGI_ALL).
        r.scope = c.range >= 31 ? ConfigScope::all()
                                : ConfigScope::of_requester(c.sid, static_cast<uint32_t>((uint64_t{2} << c.range) - 1));
        return r;
    case op::kCfgiAll:
        r.ste = r.cd = true;
        r.scope = ConfigScope::all();
        return r;
    case op::kCfgiCd:
        r.cd = true;
        r.scope = ConfigScope::of_requester_pasid(c.sid, c.ssid);
        return r;
    case op::kCfgiCdAll:
        r.cd = true;
        r.scope = ConfigScope::of_requester(c.sid);
        return r;
    default: return std::nullopt;
    }
}

std::optional<pcie::AtsInvalidateRequest> atc_invalidation(const Command& c) {
    if (c.opcode != op::kAtcInv) return std::nullopt;
    auto r = pcie::AtsInvalidateRequest::for_range(pcie::Bdf(static_cast<uint16_t>(c.sid)), c.addr, c.size);
    r.pasid_present = c.ssv;
    r.pasid = c.ssv ? c.ssid : 0;
    r.global = c.global;
    return r;
}

std::optional<pcie::PrgResponse> prg_response(const Command& c) {
    if (c.opcode != op::kPriResp) return std::nullopt;
    pcie::PrgResponse r;
    r.destination = pcie::Bdf(static_cast<uint16_t>(c.sid));
    r.pasid_present = c.ssv;
    r.pasid = c.ssv ? c.ssid : 0;
    r.prg_index = c.prg_index;
    switch (static_cast<PriResp>(c.resp)) {
    case PriResp::success: r.code = pcie::PrgResponseCode::success; break;
    case PriResp::deny: r.code = pcie::PrgResponseCode::invalid_request; break;
    case PriResp::fail: r.code = pcie::PrgResponseCode::response_failure; break;
    }
    return r;
}

DecodedCommand Smmuv3CommandDecoder::decode(std::span<const uint64_t> words) {
    DecodedCommand d; // the one object every path returns (NRVO: built in the caller's slot)
    const auto c = words.size() < 2 ? std::nullopt : decode_command({words[0], words[1]}, p_);
    if (!c) {
        d.error = static_cast<uint32_t>(CmdError::ill);
        return d;
    }
    last_ = *c;
    if (auto s = tlb_scope(*c)) {
        d.add(InvalidateTranslations{*s});
    } else if (auto ci = config_invalidation(*c)) {
        if (ci->ste) d.add(InvalidateConfig{config_cache::kSte, ci->scope});
        if (ci->cd) d.add(InvalidateConfig{config_cache::kCd, ci->scope});
    } else if (auto a = atc_invalidation(*c)) {
        d.add(InvalidateDeviceAtc{*a, 32});
    } else if (auto r = prg_response(*c)) {
        d.add(PageResponseAction{*r});
    } else if (c->opcode == op::kSync) {
        SyncAction sy;
        sy.status_write = c->cs == SyncSignal::irq && c->msi_addr != 0;
        sy.status_addr = c->msi_addr;
        sy.status_data = c->msi_data;
        sy.status_bytes = 4;
        d.add(sy);
    } else if (c->opcode == op::kResume) { // IHI 0070 4.6.2: Retry restarts the transaction; Terminate / Abort end it
        d.add(ReleaseHeldAction{c->sid, c->stag, false, c->resp == static_cast<uint8_t>(ResumeAction::retry)});
    } else if (c->opcode == op::kStallTerm) {
        d.add(ReleaseHeldAction{c->sid, 0, true, false});
    } else {
        d.add(NoOpAction{}); // PREFETCH_*: the engine charges per_command
    }
    return d;
}

} // namespace iommusim::iommu::smmuv3
