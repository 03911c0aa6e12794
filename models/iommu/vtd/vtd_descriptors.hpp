// SPDX-License-Identifier: Apache-2.0
#pragma once
// VT-d invalidation-queue descriptors: decode (kernel-free) into generic
// invalidation scopes and device / wait / page-response actions, and encode
// (for tests and the host driver model).
//
// Fidelity: all descriptor types software issues in scalable mode (§6.5.2:
// context-cache 1, IOTLB 2, device-TLB 3, interrupt-entry-cache 4, wait 5,
// PASID-based IOTLB 6, PASID-cache 7, PASID-based device-TLB 8, page group
// response 9), 128- and 256-bit widths, bit positions per spec-layouts.md A.7
// (Linux QI_* builders, QEMU reserved-bit masks). Reserved fields, reserved
// granularities, AM beyond CAP.MAMV, misaligned PSI addresses and unknown
// types are decode errors that the queue engine turns into IQE (§6.5.2.10).
// Not modelled: the legacy page-stream response (type 0xA) — reported as an
// invalid type; PFSID-based throttling (DIT) is decoded but not acted on (a nonzero
// PFSID without ECAP.DIT is a reserved field: IQE).
#include <array>
#include <cstdint>
#include <variant>

#include "models/iommu/common/translation.hpp"
#include "models/iommu/vtd/vtd_params.hpp"
#include "models/iommu/vtd/vtd_regs.hpp"
#include "models/pcie/tlp.hpp"

namespace iommusim::iommu::vtd {

namespace desc_type {
inline constexpr uint8_t kContextCache = 1, kIotlb = 2, kDevTlb = 3, kIec = 4, kWait = 5, kPasidIotlb = 6,
                         kPasidCache = 7, kPasidDevTlb = 8, kPageGroupResponse = 9;
}
/// A descriptor's type: bits 3:0 of its first qword, type[6:4] in bits 11:9 (§6.5.2, A.7).
constexpr uint8_t descriptor_type(uint64_t q0) { return static_cast<uint8_t>((q0 & 0xF) | ((q0 >> 9) & 7) << 4); }

struct ContextCacheInv {
    enum class Gran : uint8_t { global = 1, domain = 2, device = 3 } gran = Gran::global;
    uint16_t did = 0;
    uint16_t sid = 0;
    uint8_t fm = 0;              ///< function mask: ignore the low fm bits of the function number
    /// Whether a context-cache entry for `rid` (cached with domain `entry_did`) is in scope.
    bool matches(pcie::Bdf rid, uint16_t entry_did) const;
};

struct PasidCacheInv {
    enum class Gran : uint8_t { domain = 0, pasid = 1, global = 3 } gran = Gran::global;
    uint16_t did = 0;
    uint32_t pasid = 0;
    bool matches(uint16_t entry_did, uint32_t entry_pasid) const;
};

/// IOTLB (type 2) and PASID-based IOTLB (type 6) both become a generic scope.
struct IotlbInv {
    InvalidationScope scope;
    bool pasid_based = false;
    bool drain_reads = false, drain_writes = false;
};

/// Device-TLB (type 3) and PASID-based device-TLB (type 8): one ATS Invalidate Request.
struct DevTlbInv {
    pcie::AtsInvalidateRequest request;  ///< target = SID; itag assigned by the engine
    uint16_t pfsid = 0;
    uint8_t mip = 0;                     ///< max invalidations pending (0 means 32)
};

struct IecInv {
    bool global = true;
    uint16_t index = 0;
    uint8_t im = 0;
};

struct WaitDesc {
    bool interrupt = false;     ///< IF
    bool status_write = false;  ///< SW
    bool fence = false;         ///< FN
    bool page_drain = false;    ///< PD
    uint32_t status_data = 0;
    uint64_t status_addr = 0;   ///< dword aligned
};

struct PageGroupResponse {
    pcie::PrgResponse response;
    bool private_data_present = false;
    bool last_in_group = false;
    std::array<uint64_t, 2> private_data{};
};

using QiDescriptor = std::variant<ContextCacheInv, IotlbInv, DevTlbInv, IecInv, WaitDesc, PasidCacheInv,
                                PageGroupResponse>;

struct DecodeResult {
    IqeReason error = IqeReason::none;
    QiDescriptor desc;
    bool ok() const { return error == IqeReason::none; }
};

/// Decodes one descriptor. `q` holds 2 (DW=0) or 4 (DW=1) meaningful qwords.
DecodeResult decode_descriptor(const std::array<uint64_t, 4>& q, bool wide, const VtdParams& caps);

// ---- encoders (bit-exact; used by tests and the host driver) ------------------
using RawDesc = std::array<uint64_t, 4>;
RawDesc encode_context_cache(ContextCacheInv::Gran g, uint16_t did = 0, uint16_t sid = 0, uint8_t fm = 0);
RawDesc encode_iotlb_global(bool dr = true, bool dw = true);
RawDesc encode_iotlb_domain(uint16_t did, bool dr = true, bool dw = true);
RawDesc encode_iotlb_page(uint16_t did, uint64_t addr, uint8_t am, bool ih, bool dr = true, bool dw = true);
RawDesc encode_pasid_iotlb_all(uint16_t did, uint32_t pasid);
RawDesc encode_pasid_iotlb_page(uint16_t did, uint32_t pasid, uint64_t addr, uint8_t am, bool ih);
RawDesc encode_pasid_cache(PasidCacheInv::Gran g, uint16_t did = 0, uint32_t pasid = 0);
/// order: the range is 2^order 4 KiB pages, naturally aligned (S-bit encoding of A.7.3).
RawDesc encode_dev_tlb(uint16_t sid, uint64_t addr, unsigned order, uint8_t mip = 0, uint16_t pfsid = 0);
RawDesc encode_pasid_dev_tlb(uint16_t sid, uint32_t pasid, uint64_t addr, unsigned order, bool global = false,
                             uint8_t mip = 0, uint16_t pfsid = 0);
RawDesc encode_wait(bool status_write, uint64_t status_addr, uint32_t status_data, bool interrupt = false,
                    bool fence = false, bool page_drain = false);
/// Page request descriptor (spec-layouts.md A.10; §7.5.1): what the unit (or a VMM emulating
/// one) writes into the page request queue. Type value 0x1 is UNCONFIRMED (Linux ignores it).
RawDesc encode_page_request(const pcie::PageRequest& pr);
RawDesc encode_page_group_response(uint16_t rid, bool pasid_present, uint32_t pasid, uint16_t prg_index,
                                   pcie::PrgResponseCode code, bool private_data_present = false,
                                   std::array<uint64_t, 2> private_data = {});

} // namespace iommusim::iommu::vtd
