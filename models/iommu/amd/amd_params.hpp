// SPDX-License-Identifier: Apache-2.0
#pragma once
// Typed parameters of the AMD-Vi IOMMU model (models/iommu/amd).
// The Extended Feature Register is composed from these fields (efr()), and
// the table checks read the same fields, so what the unit advertises and what
// it accepts can never disagree. EFR bit positions: Linux
// drivers/iommu/amd/amd_iommu_types.h FEATURE_* (shared/reference/spec-layouts.md B.7);
// field meanings as Linux init.c reads them (HATS + 4 = host levels, GATS 1 = 5-level
// guest tables, GLXSup = largest DTE.GLX, PASmax + 1 = PASID bits).
#include <cstdint>

#include "models/common/time.hpp"
#include "models/common/cache_params.hpp"
#include "models/iommu/common/walker_params.hpp"

namespace iommusim::iommu::amd {

/// EFR (MMIO 0x30) bits.
namespace efr {
inline constexpr uint64_t PreFSup = uint64_t{1} << 0, PPRSup = uint64_t{1} << 1, XTSup = uint64_t{1} << 2,
                          NXSup = uint64_t{1} << 3, GTSup = uint64_t{1} << 4, IASup = uint64_t{1} << 6,
                          GASup = uint64_t{1} << 7, HESup = uint64_t{1} << 8, PCSup = uint64_t{1} << 9,
                          GIoSup = uint64_t{1} << 48, HASup = uint64_t{1} << 49, EPHSup = uint64_t{1} << 50,
                          HDSup = uint64_t{1} << 52;
inline constexpr unsigned kHatsShift = 10, kGatsShift = 12, kGlxShift = 14, kPasMaxShift = 32;
} // namespace efr

/// Geometry and lookup latency of one of the unit's caches (the core's generic cache).
struct AmdCacheParams {
    iommu::CacheGeometry geometry;
    Duration lookup = Duration::ns(1);
};

struct AmdParams {
    // ---- capabilities (EFR) ----------------------------------------------
    // Defaults: a server part as Linux expects it for SVA (PPR, GT, GIoV, IA, 16-bit
    // PASIDs: "hardware only implements up to 16-bit PASID", amd_iommu_types.h);
    // 6-level host tables and 5-level guest tables as QEMU's emulated EFR (HATS=2, GATS=1).
    static constexpr uint8_t kDefaultHostLevels = 6;
    static constexpr uint8_t kDefaultGuestLevels = 5;
    static constexpr uint8_t kDefaultPasidBits = 16;
    static constexpr uint8_t kDefaultGlxMax = 1;       ///< 2-level GCR3 tables cover 16-bit PASIDs
    static constexpr uint8_t kDefaultOutputBits = 52;  ///< IOMMU_OUT_ADDR_BIT_SIZE in Linux

    bool prefetch = false;          ///< PreFSup: PREFETCH_IOMMU_PAGES accepted (else illegal)
    bool ppr = true;                ///< PPRSup: peripheral page requests (PRI) and the PPR log
    bool x2apic = false;            ///< XTSup (interrupt remapping is not modelled)
    bool nx = true;                 ///< NXSup: execute permission honoured in v2 tables
    bool guest_translation = true;  ///< GTSup: GCR3 tables / v2 guest tables (DTE.GV)
    bool invalidate_all = true;     ///< IASup: INVALIDATE_IOMMU_ALL accepted (else illegal)
    bool guest_apic = false;        ///< GASup (not modelled)
    bool hw_error_regs = false;     ///< HESup (not modelled)
    bool perf_counters = false;     ///< PCSup (not modelled)
    bool guest_io_protection = true;///< GIoSup: DTE.GIoV (no-PASID requests through GCR3[0])
    bool host_access_dirty = false; ///< HASup / HDSup: hardware A/D on v1 tables (DTE.HAD)
    uint8_t host_levels = kDefaultHostLevels;   ///< HATS: 4, 5 or 6 (largest DTE.Mode)
    uint8_t guest_levels = kDefaultGuestLevels; ///< GATS: 4 or 5 (5 allows DTE GPM = 1)
    uint8_t glx_max = kDefaultGlxMax;           ///< GLXSup: largest DTE.GLX (0..2)
    uint8_t pasid_bits = kDefaultPasidBits;     ///< PASmax + 1 (1..20)
    uint8_t output_bits = kDefaultOutputBits;   ///< physical address width; wider table pointers are illegal

    /// The Extended Feature Register value these capabilities advertise.
    uint64_t efr() const {
        uint64_t v = 0;
        if (prefetch) v |= efr::PreFSup;
        if (ppr) v |= efr::PPRSup;
        if (x2apic) v |= efr::XTSup;
        if (nx) v |= efr::NXSup;
        if (guest_translation) v |= efr::GTSup;
        if (invalidate_all) v |= efr::IASup;
        if (guest_apic) v |= efr::GASup;
        if (hw_error_regs) v |= efr::HESup;
        if (perf_counters) v |= efr::PCSup;
        if (guest_io_protection) v |= efr::GIoSup;
        if (host_access_dirty) v |= efr::HASup | efr::HDSup;
        v |= uint64_t{static_cast<uint8_t>(host_levels - 4u) & 3u} << efr::kHatsShift;
        v |= uint64_t{guest_levels == 5 ? 1u : 0u} << efr::kGatsShift;
        v |= uint64_t{glx_max & 3u} << efr::kGlxShift;
        v |= uint64_t{static_cast<uint8_t>(pasid_bits - 1u) & 0x1Fu} << efr::kPasMaxShift;
        return v;
    }
    /// nullptr when the capabilities are consistent, else why not.
    const char* check() const {
        if (host_levels < 4 || host_levels > 6) return "host_levels (HATS) must be 4, 5 or 6";
        if (guest_levels != 4 && guest_levels != 5) return "guest_levels (GATS) must be 4 or 5";
        if (glx_max > 2) return "glx_max (GLXSup) must be 0, 1 or 2";
        if (pasid_bits < 1 || pasid_bits > 20) return "pasid_bits (PASmax + 1) must be 1..20";
        if (output_bits < 32 || output_bits > 52) return "output_bits must be 32..52";
        return nullptr;
    }

    // ---- caches (sizes are not published for any AMD part: estimates) -----
    /// DTE cache keyed by DeviceID (estimate: the same order as the VT-d context cache).
    AmdCacheParams dte_cache{{128, 4, iommu::Replacement::lru, 31}, Duration::ns(1)};
    /// GCR3-entry cache keyed by (DeviceID, PASID), tagged by DomainID (estimate).
    AmdCacheParams gcr3_cache{{256, 8, iommu::Replacement::lru, 32}, Duration::ns(1)};
    /// IOTLB tagged by DomainID + PASID: 128 entries, 8-way [estimate]: no AMD size is published;
    /// calibration.md "VT-d IOTLB reach, 4 KiB pages" (effective 112-126 entries) is the only
    /// published IOTLB figure of an x86 IOMMU, 128 the power of two it points to.
    AmdCacheParams iotlb{{128, 8, iommu::Replacement::lru, 33}, Duration::ns(2)};
    /// PDE caches for v1 (stage 2 in the core) and v2 (stage 1) walks, and the nested cache.
    iommu::WalkerParams walker;
    /// count; concurrent page walks: 1. calibration.md "walker concurrency": walks look
    /// serialized on the measured parts (one outstanding) [estimate; sweep 1/2/4].
    uint32_t walkers = 1;
    /// GuestIDs of the hardware vIOMMU (amd_hw_viommu.hpp: guest command buffers executed by
    /// the unit); 0 = no hardware vIOMMU (the default: a choice, most platforms model none).
    uint16_t viommu_guests = 0;

    // ---- timing ------------------------------------------------------------
    /// ns; IOMMU-side cost of each table read (DTE, GCR3, PTE) on top of the memory target's own
    /// latency: calibration.md "IOMMU memory read per page-walk access" 197 ns fitted minus a 90 ns DRAM read.
    Duration table_read = Duration::ns(107);
    /// ns; IOMMU-side cost of one 16-byte command fetch, on top of the memory read (same path as a walk read).
    Duration command_fetch = Duration::ns(107);
    /// ns; processing of one command inside the unit: calibration.md "invalidation path" row,
    /// 10-40 ns per command [estimate]; the midpoint.
    Duration per_command = Duration::ns(25);
    /// ns; per cache entry dropped by an invalidation (calibration.md "invalidation path": ~1 ns per entry).
    Duration per_entry_invalidate = Duration::ns(1);
    /// ns; one MMIO register access inside the unit (estimate; the CPU-side cost is the host model's).
    Duration mmio_access = Duration::ns(5);
    /// ns; posted write of a COMPLETION_WAIT store, a log record or an MSI: calibration.md
    /// "invalidation path" status write 60-100 ns [estimate]; the low end.
    Duration status_write = Duration::ns(60);
    /// ns; formatting and issuing one ATS Invalidate Request or PRG Response (estimate).
    Duration ats_message_send = Duration::ns(20);
    /// ns; fixed latency a request spends in the unit on top of cache lookups (estimate).
    Duration pipeline = Duration::ns(2);
    // The ATS invalidation time-out is no parameter: Control.InvTimeOut (software's choice).

    static constexpr uint32_t kMmioSize = 0x4000; ///< registers up to the PPR log tail (0x2038); perf counters not modelled
};

} // namespace iommusim::iommu::amd
