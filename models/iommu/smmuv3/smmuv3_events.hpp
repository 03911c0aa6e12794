// SPDX-License-Identifier: Apache-2.0
#pragma once
// SMMUv3 event queue records (256-bit) and PRI queue records (128-bit),
// encode and decode, bit-exact to shared/reference/spec-layouts.md C.4/C.5
// (Arm IHI 0070 7.3 and 8.1; Linux arm-smmu-v3.h EVTQ_* / PRIQ_*).
//
// Fidelity: every event the model raises (F_UUT .. F_PERMISSION, E_PAGE_REQUEST
// is not an event record of this model: page requests go to the PRI queue).
// Per event only the fields the architecture defines for it are written (the
// rest stay zero): the translation-class faults (F_TRANSLATION, F_ADDR_SIZE,
// F_ACCESS, F_PERMISSION, F_WALK_EABT) carry STAG/Stall, PnU/InD/RnW, S2,
// CLASS, TTRnW, InputAddr and, when S2 = 1, the IPA; the fetch faults
// (F_STE_FETCH, F_CD_FETCH, F_WALK_EABT) carry FetchAddr; the request
// faults (F_UUT, F_BAD_ATS_TREQ, F_TRANSL_FORBIDDEN) carry PnU/InD/RnW and
// InputAddr; the configuration errors carry StreamID and SubstreamID only.
// Not modelled: F_TLB_CONFLICT, F_CFG_CONFLICT (the caches never hold
// conflicting entries), F_VMS_FETCH, IMPDEF events, the Secure event queue.
#include <array>
#include <cstdint>
#include <string_view>

namespace iommusim::iommu::smmuv3 {

/// Event record types (IHI 0070 7.3; Linux EVT_ID_*).
namespace evt {
inline constexpr uint8_t kUut = 0x01, kBadStreamId = 0x02, kSteFetch = 0x03, kBadSte = 0x04, kBadAtsTreq = 0x05,
                         kStreamDisabled = 0x06, kTranslForbidden = 0x07, kBadSubstreamId = 0x08, kCdFetch = 0x09,
                         kBadCd = 0x0A, kWalkEabt = 0x0B, kTranslation = 0x10, kAddrSize = 0x11, kAccess = 0x12,
                         kPermission = 0x13;
}
std::string_view event_name(uint8_t id);

/// EVTQ CLASS: what the faulting access was for (QEMU SMMU_CLASS_CD/TT/IN).
enum class EventClass : uint8_t { cd = 0, tt = 1, in = 2 };

/// One event record. Fields a type does not define are ignored by encode().
struct Event {
    uint8_t id = 0;
    uint32_t sid = 0;
    bool ssv = false;
    uint32_t ssid = 0;          ///< 20 bits
    uint16_t stag = 0;          ///< stall tag (Stall = 1)
    bool stall = false;
    bool pnu = false;           ///< privileged (1) / unprivileged
    bool ind = false;           ///< instruction (1) / data
    bool rnw = false;           ///< read (1) / write
    bool s2 = false;            ///< fault at stage 2
    EventClass cls = EventClass::in;
    bool ttrnw = false;         ///< F_PERMISSION/F_ACCESS on a table update: the table access was a read
    uint64_t input_addr = 0;    ///< transaction input address
    uint64_t ipa = 0;           ///< S2 = 1: the IPA that faulted (bits 51:12 recorded)
    uint64_t fetch_addr = 0;    ///< fetch faults: the physical address fetched (bits 51:3 recorded)

    std::array<uint64_t, 4> encode() const;
    static Event decode(const std::array<uint64_t, 4>& r);
    bool operator==(const Event&) const = default;
};

/// Which field groups a record type carries (for encode and for tests).
struct EventFields {
    bool access = false;  ///< STAG/Stall, PnU/InD/RnW, S2, CLASS, TTRnW, InputAddr, IPA
    bool request = false; ///< PnU/InD/RnW, InputAddr
    bool fetch = false;   ///< FetchAddr
};
EventFields event_fields(uint8_t id);

/// One PRI queue record: a PCIe Page Request (IHI 0070 8.1).
struct PriRecord {
    uint32_t sid = 0;
    bool ssv = false;           ///< PASID present
    uint32_t ssid = 0;
    bool priv = false, exec = false, read = false, write = false;
    bool last = false;          ///< last request of the page request group
    uint16_t prg_index = 0;     ///< 9 bits
    uint64_t addr = 0;          ///< page address (bits 63:12)

    /// A stop marker: Last = 1, no read/write, with a PASID; it needs no response (PCIe 10.4.1.2).
    bool stop_marker() const { return last && !read && !write && ssv; }
    std::array<uint64_t, 2> encode() const;
    static PriRecord decode(const std::array<uint64_t, 2>& r);
    bool operator==(const PriRecord&) const = default;
};

} // namespace iommusim::iommu::smmuv3
