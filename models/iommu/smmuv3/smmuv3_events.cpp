// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/smmuv3/smmuv3_events.hpp"

#include "models/iommu/smmuv3/smmuv3_fields.hpp"

namespace iommusim::iommu::smmuv3 {

std::string_view event_name(uint8_t id) {
    switch (id) {
    case evt::kUut: return "F_UUT";
    case evt::kBadStreamId: return "C_BAD_STREAMID";
    case evt::kSteFetch: return "F_STE_FETCH";
    case evt::kBadSte: return "C_BAD_STE";
    case evt::kBadAtsTreq: return "F_BAD_ATS_TREQ";
    case evt::kStreamDisabled: return "F_STREAM_DISABLED";
    case evt::kTranslForbidden: return "F_TRANSL_FORBIDDEN";
    case evt::kBadSubstreamId: return "C_BAD_SUBSTREAMID";
    case evt::kCdFetch: return "F_CD_FETCH";
    case evt::kBadCd: return "C_BAD_CD";
    case evt::kWalkEabt: return "F_WALK_EABT";
    case evt::kTranslation: return "F_TRANSLATION";
    case evt::kAddrSize: return "F_ADDR_SIZE";
    case evt::kAccess: return "F_ACCESS";
    case evt::kPermission: return "F_PERMISSION";
    }
    return "?";
}

EventFields event_fields(uint8_t id) {
    switch (id) {
    case evt::kTranslation:
    case evt::kAddrSize:
    case evt::kAccess:
    case evt::kPermission: return {true, false, false};
    case evt::kWalkEabt: return {true, false, true};
    case evt::kSteFetch:
    case evt::kCdFetch: return {false, false, true};
    case evt::kUut:
    case evt::kBadAtsTreq:
    case evt::kTranslForbidden: return {false, true, false};
    default: return {}; // configuration errors: StreamID / SubstreamID only
    }
}

// dword 0: ID 7:0, SSV 11, SubstreamID 31:12, StreamID 63:32.
// dword 1: STAG 15:0, Stall 31, PnU 33, InD 34, RnW 35, S2 39, CLASS 41:40, TTRnW 44.
// dword 2: InputAddr 63:0.  dword 3: IPA 51:12 or FetchAddr 51:3.
std::array<uint64_t, 4> Event::encode() const {
    std::array<uint64_t, 4> r{};
    const EventFields f = event_fields(id);
    r[0] = put(r[0], 7, 0, id);
    r[0] = put(r[0], 11, ssv);
    if (ssv) r[0] = put(r[0], 31, 12, ssid);
    r[0] = put(r[0], 63, 32, sid);
    if (f.access) {
        r[1] = put(r[1], 15, 0, stall ? stag : 0);
        r[1] = put(r[1], 31, stall);
        r[1] = put(r[1], 39, s2);
        r[1] = put(r[1], 41, 40, static_cast<uint64_t>(cls));
        r[1] = put(r[1], 44, ttrnw);
        if (s2) r[3] = ipa & mask(51, 12);
    }
    if (f.access || f.request) {
        r[1] = put(r[1], 33, pnu);
        r[1] = put(r[1], 34, ind);
        r[1] = put(r[1], 35, rnw);
        r[2] = input_addr;
    }
    if (f.fetch) r[3] = fetch_addr & mask(51, 3);
    return r;
}

Event Event::decode(const std::array<uint64_t, 4>& r) {
    Event e;
    e.id = static_cast<uint8_t>(get(r[0], 7, 0));
    e.ssv = get(r[0], 11);
    e.ssid = static_cast<uint32_t>(get(r[0], 31, 12));
    e.sid = static_cast<uint32_t>(get(r[0], 63, 32));
    e.stag = static_cast<uint16_t>(get(r[1], 15, 0));
    e.stall = get(r[1], 31);
    e.pnu = get(r[1], 33);
    e.ind = get(r[1], 34);
    e.rnw = get(r[1], 35);
    e.s2 = get(r[1], 39);
    e.cls = static_cast<EventClass>(get(r[1], 41, 40));
    e.ttrnw = get(r[1], 44);
    e.input_addr = r[2];
    const EventFields f = event_fields(e.id);
    if (f.fetch) e.fetch_addr = r[3] & mask(51, 3);
    else if (e.s2) e.ipa = r[3] & mask(51, 12);
    return e;
}

// dword 0: StreamID 31:0, SubstreamID 51:32, Priv 58, Exec 59, Read 60, Write 61, Last 62, SSV 63.
// dword 1: PRGIndex 8:0, Address 63:12.
std::array<uint64_t, 2> PriRecord::encode() const {
    std::array<uint64_t, 2> r{};
    r[0] = put(r[0], 31, 0, sid);
    if (ssv) r[0] = put(r[0], 51, 32, ssid);
    r[0] = put(r[0], 58, priv);
    r[0] = put(r[0], 59, exec);
    r[0] = put(r[0], 60, read);
    r[0] = put(r[0], 61, write);
    r[0] = put(r[0], 62, last);
    r[0] = put(r[0], 63, ssv);
    r[1] = put(r[1], 8, 0, prg_index);
    r[1] |= addr & mask(63, 12);
    return r;
}

PriRecord PriRecord::decode(const std::array<uint64_t, 2>& r) {
    PriRecord p;
    p.sid = static_cast<uint32_t>(get(r[0], 31, 0));
    p.ssid = static_cast<uint32_t>(get(r[0], 51, 32));
    p.priv = get(r[0], 58);
    p.exec = get(r[0], 59);
    p.read = get(r[0], 60);
    p.write = get(r[0], 61);
    p.last = get(r[0], 62);
    p.ssv = get(r[0], 63);
    p.prg_index = static_cast<uint16_t>(get(r[1], 8, 0));
    p.addr = r[1] & mask(63, 12);
    return p;
}

} // namespace iommusim::iommu::smmuv3
