// SPDX-License-Identifier: Apache-2.0
#pragma once
// Typed parameters of the Arm SMMUv3 model (models/iommu/smmuv3). The ID
// registers SMMU_IDR0..IDR5 are composed from these fields (smmuv3_regs.cpp),
// so what the registers advertise and what the model does cannot disagree.
// Features are named as the IDR fields (Arm IHI 0070 6.3.1-6.3.6;
// shared/reference/spec-layouts.md C.6). Defaults describe an Arm CoreLink
// MMU-600-class unit (calibration.md "Arm MMU-600") with the SMMUv3.2
// features Linux uses (range invalidation, HTTU).
#include <cstdint>

#include "models/common/time.hpp"
#include "models/common/cache_params.hpp"
#include "models/iommu/common/walker_params.hpp"

namespace iommusim::iommu::smmuv3 {

/// IDR0.STALL_MODEL (Linux IDR0_STALL_MODEL_*).
enum class StallModel : uint8_t { stall = 0, terminate_only = 1, forced = 2 };
/// IDR0.HTTU: hardware update of the access flag / dirty state.
enum class Httu : uint8_t { none = 0, access = 1, access_dirty = 2 };

/// Geometry and lookup latency of one cache of the unit.
struct Smmuv3CacheParams {
    iommu::CacheGeometry geometry;
    Duration lookup = Duration::ns(1);
};

struct Smmuv3Params {
    // ---- IDR0 -----------------------------------------------------------
    bool s1p = true;                 ///< stage 1 implemented
    bool s2p = true;                 ///< stage 2 implemented
    bool cohacc = true;              ///< coherent table / queue accesses
    Httu httu = Httu::access_dirty;  ///< MMU-600 implements HTTU (SMMUv3.1)
    bool hyp = true;                 ///< EL2 / E2H stream world (STE.STRW = EL2)
    bool ats = true;
    bool asid16 = true;
    bool msi = true;
    bool sev = true;
    bool pri = true;
    bool vmid16 = true;
    bool cd2l = true;                ///< 2-level CD tables
    bool st_2level = true;           ///< IDR0.ST_LVL = 1: 2-level stream tables
    StallModel stall_model = StallModel::stall;

    // ---- IDR1 -----------------------------------------------------------
    /// log2 of the largest queue (entries) software may configure; estimate: MMU-600
    /// allows 2^19 command / event / PRI entries (the 5-bit fields' architectural maximum is 19).
    uint8_t cmdqs = 19, evtqs = 19, priqs = 19;
    uint8_t ssidsize = 20;           ///< SubstreamID bits (PCIe PASID width)
    uint8_t sidsize = 32;            ///< StreamID bits; estimate (architectural maximum; PCIe RIDs use 16)

    // ---- IDR3 / IDR5 ----------------------------------------------------
    bool ril = true;                 ///< range invalidation (SMMUv3.2; Linux ARM_SMMU_FEAT_RANGE_INV)
    /// IDR3.PPS: a PRIQ-overflow auto-response carries the request's PASID without checking
    /// STE.PPAR (IHI 0070 8.1). Estimate: false (MMU-600's value is not published; Linux
    /// programs STE.PPAR from the endpoint's PRG Response PASID Required bit and reads no PPS).
    bool pps = false;
    /// IDR0.ATSRECERR: CR2.REC_CFG_ATS is implemented (configuration errors of ATS Translation
    /// Requests, checked translated requests and PRIQ-overflow STE.PPAR checks may be recorded,
    /// IHI 0070 3.9.1.2, 3.9.1.3, 8.1). Estimate: true (SMMUv3.2 feature; MMU-600 unpublished).
    bool ats_rec_err = true;
    bool gran4k = true, gran16k = true, gran64k = true;
    uint8_t oas_bits = 48;           ///< output address size: 32, 36, 40, 42, 44, 48 or 52
    /// count; IDR5.STALL_MAX: transactions that may be stalled at once; estimate (MMU-600
    /// has 64 translation slots, calibration.md, and a stalled transaction holds one).
    uint16_t stall_max = 64;
    /// AIDR: architecture minor revision (2 = SMMUv3.2, which defines RIL).
    uint8_t aidr_minor = 2;

    // ---- caches (calibration.md "Arm MMU-600": config cache 256, walk caches 256
    //      per level per stage) -------------------------------------------
    /// STE cache keyed by StreamID.
    Smmuv3CacheParams ste_cache{{256, 4, iommu::Replacement::lru, 31}, Duration::ns(1)};
    /// CD cache keyed by (StreamID, SubstreamID), invalidated by CFGI_CD / _ALL.
    Smmuv3CacheParams cd_cache{{256, 4, iommu::Replacement::lru, 32}, Duration::ns(1)};
    /// IOTLB tagged by VMID + ASID + regime; estimate: 2048 x 4-way as gem5's SMMUv3
    /// (calibration.md "gem5 SMMUv3 defaults"), MMU-600's TCU size is not published.
    Smmuv3CacheParams iotlb{{2048, 4, iommu::Replacement::lru, 33}, Duration::ns(2)};
    /// Stage-1 / stage-2 walk caches (256 per level per stage) and the nested stage-2 cache.
    iommu::WalkerParams walker = mmu600_walker();
    /// count; concurrent table walks; calibration.md "gem5 SMMUv3 defaults": 16 walk slots.
    uint32_t walkers = 16;

    // ---- timing ---------------------------------------------------------
    /// ns; unit-side cost of each table / STE / CD read on top of the memory target's latency:
    /// calibration.md "IOMMU memory read per page-walk access" 197 ns fitted minus the 90 ns
    /// DRAM read of the default memory model.
    Duration table_read = Duration::ns(107);
    /// ns; unit-side cost of one command fetch (a 16-byte command; same path as a table read).
    Duration command_fetch = Duration::ns(107);
    /// ns; per-command processing (scope match); calibration.md "invalidation path": 10-40 ns.
    Duration per_command = Duration::ns(40);
    /// ns; per cache entry dropped by an invalidation; calibration.md "invalidation path": ~1 ns.
    Duration per_entry_invalidate = Duration::ns(1);
    /// ns; one event / PRI record or CMD_SYNC MSI write; calibration.md "status write 60-100 ns".
    Duration record_write = Duration::ns(60);
    /// ns; fixed per-request latency in the unit on top of cache lookups; estimate (as the VT-d unit).
    Duration pipeline = Duration::ns(2);
    /// ns; one MMIO register access inside the unit; estimate (on-die register file).
    Duration mmio_access = Duration::ns(5);
    /// ns; formatting and issuing one ATS Invalidate Request message; estimate.
    Duration ats_message_send = Duration::ns(20);
    /// us; ATC invalidation time-out after which CMD_SYNC fails with CERROR_ATC_INV_SYNC;
    /// estimate (PCIe allows a minute, calibration.md; shortened so runs end).
    Duration atc_inv_timeout = Duration::us(1000);

    // ---- CMDQ-Virtualization (NVIDIA Tegra241 CMDQV beside the unit; smmuv3_cmdqv.hpp) ----
    /// count; virtual interfaces (one per VM with hardware-accelerated guest queues, VINTF0 the
    /// host's); 0 = no CMDQV (a choice: MMU-600 has none). Power of two (PARAM.NUM_VINTF_LOG2).
    uint16_t cmdqv_vintfs = 0;
    /// count; logical VCMDQs per VINTF (PARAM: NUM_VCMDQ_LOG2 - NUM_VINTF_LOG2); estimate 2
    /// (Tegra241's values are not public; Linux needs at least one per VINTF).
    uint16_t cmdqv_lvcmdqs_per_vintf = 2;
    /// count; SID_MATCH / SID_REPLACE pairs per VINTF (PARAM.NUM_SID_PER_VM_LOG2); estimate 16
    /// (TEGRA241_VINTF_NUM_SLOTS of the first Linux CMDQV series).
    uint16_t cmdqv_sids_per_vintf = 16;
    /// ns; processing of one VCMDQ command (opcode check, VMID / StreamID rewrite, dispatch) after its
    /// fetch (command_fetch); estimate: the unit's per_command (calibration.md "invalidation path"
    /// 10-40 ns), the VCMDQs feeding the same command processing.
    Duration cmdqv_per_command = Duration::ns(40);

    /// nullptr when the fields can be encoded in the ID registers, else why not.
    const char* check() const {
        if (oas_bits != 32 && oas_bits != 36 && oas_bits != 40 && oas_bits != 42 && oas_bits != 44 && oas_bits != 48 &&
            oas_bits != 52)
            return "oas_bits (IDR5.OAS) must be 32, 36, 40, 42, 44, 48 or 52";
        if (!gran4k && !gran16k && !gran64k) return "at least one translation granule (IDR5.GRAN4K/16K/64K)";
        if (!s1p && !s2p) return "at least one stage (IDR0.S1P / S2P)";
        if (sidsize > 32) return "sidsize (IDR1.SIDSIZE) must be at most 32";
        if (ssidsize > 20) return "ssidsize (IDR1.SSIDSIZE) must be at most 20";
        if (cmdqs > 19 || evtqs > 19 || priqs > 19) return "queue sizes (IDR1.CMDQS/EVTQS/PRIQS) must be at most 19";
        if (pri && !ats) return "pri needs ats (PRI is part of PCIe ATS)";
        if (cmdqv_vintfs & (cmdqv_vintfs - 1)) return "cmdqv_vintfs must be 0 or a power of two (PARAM.NUM_VINTF_LOG2)";
        if (cmdqv_vintfs > 64) return "cmdqv_vintfs must be at most 64 (CMDQ_ALLOC.VINTF is 6 bits)";
        if (cmdqv_vintfs && (!cmdqv_lvcmdqs_per_vintf || (cmdqv_lvcmdqs_per_vintf & (cmdqv_lvcmdqs_per_vintf - 1)) ||
                             cmdqv_lvcmdqs_per_vintf * cmdqv_vintfs > 128))
            return "cmdqv_lvcmdqs_per_vintf must be a power of two, at most 128 queues in all (CMDQ_ALLOC.LVCMDQ is 7 bits)";
        if (cmdqv_vintfs && (!cmdqv_sids_per_vintf || (cmdqv_sids_per_vintf & (cmdqv_sids_per_vintf - 1)) ||
                             cmdqv_sids_per_vintf > 16))
            return "cmdqv_sids_per_vintf must be a power of two, at most 16 (SID_MATCH(s) at 0x40 + 4s, SID_REPLACE(s) at 0x80 + 4s)";
        return nullptr;
    }

    static constexpr uint32_t kMmioSize = 0x20000; ///< two 64 KiB register pages (IHI 0070 6.1)

    static iommu::WalkerParams mmu600_walker() {
        iommu::WalkerParams w;
        w.s1_walk_cache.per_level = {256, 4, iommu::Replacement::lru, 34};
        w.s2_walk_cache.per_level = {256, 4, iommu::Replacement::lru, 35};
        w.s1_walk_cache.top_cached_level = 4; // Arm tables have at most 4 levels
        w.s2_walk_cache.top_cached_level = 4;
        return w;
    }
};

} // namespace iommusim::iommu::smmuv3
