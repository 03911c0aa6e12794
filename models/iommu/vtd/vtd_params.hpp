// SPDX-License-Identifier: Apache-2.0
#pragma once
// Typed parameters of the VT-d remapping unit model (models/iommu/vtd).
// Capabilities advertised in CAP/ECAP are composed from these fields
// (VT-d spec §11.4.2/§11.4.3; shared/reference/spec-layouts.md A.8), so the
// register file and the behaviour can never disagree.
#include <cstdint>

#include "models/common/time.hpp"
#include "models/common/cache_params.hpp"
#include "models/iommu/common/walker_params.hpp"

namespace iommusim::iommu::vtd {

/// Geometry and lookup latency of one of the unit's caches (the core's generic cache).
struct VtdCacheParams {
    iommu::CacheGeometry geometry;
    Duration lookup = Duration::ns(1);
};

struct VtdParams {
    // ---- capabilities (CAP / ECAP) -------------------------------------
    static constexpr uint8_t kDefaultMgaw = 57;        // bits; Sapphire-Rapids-class parts report 57 (5-level)
    static constexpr uint8_t kDefaultHaw = 46;         // bits of host physical address (MGAW/HAW of a 46-bit server part)
    static constexpr uint8_t kDefaultNumFaultRecords = 8; // CAP.NFR+1
    static constexpr uint8_t kDefaultMamv = 18;        // CAP.MAMV; Linux flushes up to 2^MAMV pages with one PSI
    static constexpr uint8_t kDefaultPasidBits = 20;   // ECAP.PSS+1
    static constexpr uint8_t kDefaultNd = 6;           // CAP.ND = 6 -> 2^16 domain IDs

    uint8_t version_major = 6, version_minor = 0;      ///< VER register (VT-d 3.x+/4.x parts report 6.0 / 7.0)
    uint8_t mgaw = kDefaultMgaw;                       ///< maximum guest address width (bits)
    uint8_t haw = kDefaultHaw;                         ///< host address width (output addresses beyond it fault)
    uint8_t nd = kDefaultNd;                           ///< number-of-domains code
    uint8_t num_fault_records = kDefaultNumFaultRecords;
    uint8_t mamv = kDefaultMamv;
    uint8_t pasid_bits = kDefaultPasidBits;
    bool sl_3level = true, sl_4level = true, sl_5level = true; ///< CAP.SAGAW bits 1/2/3
    bool sl_2m = true, sl_1g = true;                   ///< CAP.SLLPS
    bool fl_1g = true;                                 ///< CAP.FL1GP
    bool fl_5level = true;                             ///< CAP.FL5LP
    bool caching_mode = false;                         ///< CAP.CM (a vIOMMU sets it)
    bool device_tlb = true;                            ///< ECAP.DT: ATS
    bool pass_through = true;                          ///< ECAP.PT
    bool snoop_control = true;                         ///< ECAP.SC
    /// ECAP.C and ECAP.SMPWC: table walks and structure reads snoop the CPU caches
    /// (calibration.md "page-walk coherency": most server DRHDs; client parts C = 0).
    bool coherent = true;
    bool nested = true;                                ///< ECAP.NEST
    bool page_requests = true;                         ///< ECAP.PRS
    bool execute_requests = true;                      ///< ECAP.ERS
    bool supervisor_requests = true;                   ///< ECAP.SRS
    bool pasid = true;                                 ///< ECAP.PASID
    bool sl_ad = true;                                 ///< ECAP.SLADS
    bool page_request_drain = true;                    ///< ECAP.PDS
    bool dit = false;                                  ///< ECAP.DIT (PFSID-based throttling)

    // ---- caches (sizes are not published; calibration.md "Intel/AMD IOTLB and paging-structure cache sizes")
    /// Context cache, keyed by RID (ns lookup: one SRAM access, assumed).
    VtdCacheParams context_cache{{128, 4, iommu::Replacement::lru, 21}, Duration::ns(1)};
    /// PASID cache, keyed by (RID, PASID), tagged with DID for invalidation.
    VtdCacheParams pasid_cache{{256, 8, iommu::Replacement::lru, 22}, Duration::ns(1)};
    /// IOTLB tagged by DID + PASID (512 x 8-way as in iommu::IotlbParams).
    VtdCacheParams iotlb{{512, 8, iommu::Replacement::lru, 1}, Duration::ns(2)};
    /// First-stage and second-stage paging-structure caches and the nested stage-2 cache.
    iommu::WalkerParams walker;
    /// count; concurrent page walks (walk slots); gem5 SMMUv3 has 16 walk slots
    /// (calibration.md), client VT-d units fewer; 4 assumed.
    uint32_t walkers = 4;

    // ---- timing --------------------------------------------------------
    /// ns; IOMMU-side cost of each table/descriptor read on top of the memory target's own latency:
    /// calibration.md "IOMMU memory read per page-walk access (fitted)" 197 ns total minus the
    /// 90 ns DRAM read of the default memory model (shared/DESIGN.md example platform).
    Duration table_read = Duration::ns(107);
    /// ns; one MMIO register access inside the unit (the CPU-side cost is the host model's)
    Duration mmio_access = Duration::ns(5);
    /// ns; IOMMU-side cost of one invalidation-queue descriptor fetch, on top of the memory read (same path as a walk read)
    Duration descriptor_fetch = Duration::ns(107);
    /// ns; per-descriptor processing inside the unit (scope match over the caches):
    /// calibration.md "invalidation path" row, processing 10-40 ns [estimate]; the midpoint.
    Duration per_descriptor = Duration::ns(25);
    /// ns; per cache entry dropped by an invalidation (one tag-array write)
    Duration per_entry_invalidate = Duration::ns(1);
    /// ns; formatting and issuing one ATS Invalidate Request message
    Duration ats_message_send = Duration::ns(20);
    /// ns; posted write of a status word / fault record / page request descriptor / MSI to memory
    Duration status_write = Duration::ns(60);
    /// ns; fixed pipeline latency a translated request spends in the unit on top of cache lookups
    Duration pipeline = Duration::ns(2);
    /// us; device-TLB invalidation time-out before ITE (PCIe allows a minute; hardware uses a
    /// configurable, much shorter one so that tests end — calibration.md "ATS invalidate completion timeout")
    Duration ite_timeout = Duration::us(1000);
    /// Default invalidate-queue depth assumed for a device whose descriptor MIP is 0 (0 means 32; PCIe ATS cap).
    static constexpr uint8_t kMaxInvalidationsPending = 32;

    // ---- MMIO layout ---------------------------------------------------
    uint32_t fault_record_offset = 0x220; ///< CAP.FRO * 16 (QEMU's unit uses 0x220)
    uint32_t iotlb_reg_offset = 0xF0;     ///< ECAP.IRO * 16 (IVA at +0, IOTLB at +8)
    static constexpr uint32_t kMmioSize = 0x1000;
};

} // namespace iommusim::iommu::vtd
