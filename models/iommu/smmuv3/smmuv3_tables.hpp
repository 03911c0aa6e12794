// SPDX-License-Identifier: Apache-2.0
#pragma once
// SMMUv3 configuration structures and context resolution from simulated
// memory (kernel-free), and a bit-exact writer for them.
//
// Fidelity: the Stream Table Entry (512-bit), the Context Descriptor
// (512-bit), level-1 stream table descriptors (Span, L2Ptr) and level-1 CD
// descriptors (V, L2Ptr), laid out as shared/reference/spec-layouts.md C.1/C.2
// (Arm IHI 0070 5.2-5.4; Linux arm-smmu-v3.h STRTAB_* / CTXDESC_*; TTB1,
// T1SZ, TG1 as QEMU decodes them, TG1 in the TCR_EL1.TG1 encoding). Linear
// and 2-level stream tables, linear and 2-level CD tables (S1Fmt 0/1/2),
// S1CDMax, S1DSS, every STE.Config, EATS, STRW, S2VMID, the VTCR fields,
// S2TTB, and per CD T0SZ/TG0/EPD0, T1SZ/TG1/EPD1, TTB0/TTB1, IPS, AFFD,
// TBI, AA64, HA/HD, S/R/A, ASET, ASID. Under nesting the CD table pointers
// are IPAs, translated by stage 2 through a caller-supplied function (a
// stage-2 fault there is reported with CLASS = CD). The architected events:
// C_BAD_STREAMID (StreamID beyond the table, L1 descriptor Span = 0 or too
// small), F_STE_FETCH / F_CD_FETCH (fetch outside memory), C_BAD_STE,
// C_BAD_SUBSTREAMID (SSID beyond S1CDMax, SSID on a stream without stage 1
// or without substreams, L1CD.V = 0), F_STREAM_DISABLED (no SSID with
// S1DSS = terminate), C_BAD_CD; check_ste()/check_cd() name the reason.
// Not modelled: STRW = EL2 without E2H (0b01) and Secure streams (both
// C_BAD_STE here), AArch32 tables (AA64 = 0 is C_BAD_CD / C_BAD_STE),
// big-endian tables, HA without HD (treated as neither: AF faults unless AFFD),
// memory attributes (CIR/COR/CSH, MAIR, SHCFG: decoded and kept), PAN/WXN/UWXN
// (decoded, not applied), 52-bit addresses, STE/CD fields above dword 4.
#include <array>
#include <cstdint>
#include <functional>
#include <optional>

#include "models/iommu/common/translation.hpp"
#include "models/iommu/smmuv3/smmuv3_events.hpp"
#include "models/iommu/smmuv3/smmuv3_params.hpp"
#include "models/iommu/smmuv3/smmuv3_regs.hpp"
#include "models/mem/phys_mem.hpp"

namespace iommusim::iommu::smmuv3 {

/// STE.Config values (IHI 0070 5.2; Linux STRTAB_STE_0_CFG_*); 1..3 are reserved.
namespace ste_cfg {
inline constexpr uint8_t kAbort = 0, kBypass = 4, kS1 = 5, kS2 = 6, kNested = 7;
}
/// STE.S1DSS: what a transaction without a SubstreamID does when S1CDMax != 0.
namespace s1dss {
inline constexpr uint8_t kTerminate = 0, kBypass = 1, kSsid0 = 2;
}
/// STE.STRW values: NS-EL1 and EL2-E2H (Linux STRTAB_STE_1_STRW_NSEL1 / _EL2).
namespace strw {
inline constexpr uint8_t kNsEl1 = 0, kEl2 = 2;
}

struct Ste {
    bool valid = false;
    uint8_t config = ste_cfg::kAbort;
    uint8_t s1fmt = 0;            ///< 0 linear, 1 2-level 4 KiB leaves, 2 2-level 64 KiB leaves
    uint64_t s1_context_ptr = 0;  ///< bits 51:6 (an IPA under nesting)
    uint8_t s1cdmax = 0;          ///< log2 of the number of CDs
    uint8_t s1dss = 0;
    uint8_t s1cir = 0, s1cor = 0, s1csh = 0;
    bool ppar = false;            ///< PRI overflow auto-responses carry the PASID (IHI 0070 8.1; Linux leaves 0)
    bool s1stalld = false;
    uint8_t eats = 0;             ///< 0 ATS off, 1 full ATS, 2 split-stage
    uint8_t strw = 0;
    uint8_t shcfg = 0;
    uint16_t s2vmid = 0;
    uint8_t s2t0sz = 0, s2sl0 = 0, s2ir0 = 0, s2or0 = 0, s2sh0 = 0, s2tg = 0, s2ps = 0;
    bool s2aa64 = false, s2endi = false, s2affd = false, s2ptw = false, s2hd = false, s2ha = false, s2s = false,
         s2r = false;
    uint64_t s2ttb = 0;           ///< bits 51:4

    bool s1_translates() const { return config == ste_cfg::kS1 || config == ste_cfg::kNested; }
    bool s2_translates() const { return config == ste_cfg::kS2 || config == ste_cfg::kNested; }
    std::array<uint64_t, 8> encode() const;
    static Ste decode(const std::array<uint64_t, 8>& d);
    bool operator==(const Ste&) const = default;
};

struct Cd {
    uint8_t t0sz = 0, tg0 = 0, ir0 = 0, or0 = 0, sh0 = 0;
    bool epd0 = false, endi = false;
    uint8_t t1sz = 0, tg1 = 0, ir1 = 0, or1 = 0, sh1 = 0;
    bool epd1 = false, valid = false;
    uint8_t ips = 0;
    bool affd = false, wxn = false, uwxn = false;
    uint8_t tbi = 0;              ///< bit 0: TTB0 range, bit 1: TTB1 range
    bool pan = false, aa64 = false, hd = false, ha = false, s = false, r = false, a = false, aset = false;
    uint16_t asid = 0;
    bool nscfg0 = false, had0 = false, nscfg1 = false, had1 = false;
    uint64_t ttb0 = 0, ttb1 = 0;  ///< bits 51:4
    uint64_t mair = 0, amair = 0;

    std::array<uint64_t, 8> encode() const;
    static Cd decode(const std::array<uint64_t, 8>& d);
    bool operator==(const Cd&) const = default;
};

/// Level-1 stream table descriptor: Span 4:0 (L2 table holds 2^(Span-1) STEs), L2Ptr 51:6.
struct L1Std {
    uint8_t span = 0;
    uint64_t l2ptr = 0;
    uint64_t encode() const;
    static L1Std decode(uint64_t d);
};
/// Level-1 CD table descriptor: V 0, L2Ptr 51:12.
struct L1Cd {
    bool valid = false;
    uint64_t l2ptr = 0;
    uint64_t encode() const;
    static L1Cd decode(uint64_t d);
};

/// Granule shift of a TG0 / STE.S2TG encoding (0 4 KiB, 1 64 KiB, 2 16 KiB) or
/// of a TG1 encoding (1 16 KiB, 2 4 KiB, 3 64 KiB); 0 for reserved values.
uint8_t tg0_shift(uint8_t tg);
uint8_t tg1_shift(uint8_t tg);
/// CDs per level-2 table for S1Fmt 1 / 2 (4 KiB / 64 KiB of 64-byte CDs).
inline unsigned cd_split(uint8_t s1fmt) { return s1fmt == 1 ? 6 : 10; }

/// What a transaction resolves to, beyond the core's TranslationContext.
struct StreamContext {
    TranslationContext ctx;
    bool abort = false;            ///< STE.Config = abort: terminated, no event
    bool bypass = false;           ///< no stage translates (Config bypass, or S1DSS bypass without stage 2)
    bool s1 = false, s2 = false;   ///< stages applied to this transaction
    bool record_s1 = false;        ///< CD.R: stage-1 faults are recorded
    bool record_s2 = false;        ///< STE.S2R
    bool stall_s1 = false;         ///< CD.S
    bool stall_s2 = false;         ///< STE.S2S
    bool abort_s1 = false;         ///< CD.A: terminate with an abort (else RAZ/WI)
    bool s1stalld = false;
    uint8_t eats = 0;
    uint16_t vmid = 0, asid = 0;
};

/// Reads and checks the configuration structures of one SMMU.
class Smmuv3TableReader {
public:
    explicit Smmuv3TableReader(const Smmuv3Params& p) : p_(p) {}

    /// Stage 2 for nested CD fetches: translates an IPA with the STE's stage-2
    /// context (stage 2 only); returns the core's result.
    using Stage2Fn = std::function<Translation(const TranslationContext& s2ctx, uint64_t ipa)>;

    struct SteResult {
        std::optional<Event> event;
        Ste ste;
        unsigned reads = 0;        ///< memory accesses (L1 descriptor, STE)
        uint64_t ste_addr = 0;
    };
    /// Fetches and checks the STE of `sid` (C_BAD_STREAMID, F_STE_FETCH, C_BAD_STE).
    SteResult read_ste(mem::PhysMem& m, const StrtabConfig& st, uint32_t sid) const;
    /// nullptr if the STE is usable by this unit, else why it is C_BAD_STE.
    const char* check_ste(const Ste& s) const;

    /// Which CD a transaction uses. cd = false: stage 1 is bypassed (or off).
    struct CdSelect {
        std::optional<Event> event; ///< C_BAD_SUBSTREAMID / F_STREAM_DISABLED
        bool cd = false;
        uint32_t ssid = 0;
    };
    CdSelect select_cd(const Ste& s, uint32_t sid, bool ssv, uint32_t ssid) const;

    struct CdResult {
        std::optional<Event> event;
        Cd cd;
        unsigned reads = 0;        ///< memory accesses (L1 CD descriptor, CD)
        uint64_t cd_addr = 0;
    };
    /// Fetches and checks CD `ssid` of the STE's table (F_CD_FETCH, C_BAD_SUBSTREAMID, C_BAD_CD,
    /// or a stage-2 fault on the table's IPA under nesting).
    CdResult read_cd(mem::PhysMem& m, const Ste& s, uint32_t sid, bool ssv, uint32_t ssid,
                     const Stage2Fn* s2 = nullptr) const;
    const char* check_cd(const Cd& c) const;

    /// The stage-2 part of a context (used for nested CD fetches too).
    StageConfig stage2_config(const Ste& s) const;
    /// The translation context of a checked STE and, when stage 1 applies, CD.
    StreamContext make_context(const Ste& s, const Cd* cd) const;

    struct Resolution {
        std::optional<Event> event;
        StreamContext sc;
        unsigned reads = 0;
    };
    /// All of the above for one transaction.
    Resolution resolve(mem::PhysMem& m, const StrtabConfig& st, uint32_t sid, bool ssv, uint32_t ssid,
                       const Stage2Fn* s2 = nullptr) const;

private:
    StageConfig stage1_config(const Cd& c, bool upper) const;
    const Smmuv3Params& p_;
};

/// Writes stream tables and STEs bit-exactly into simulated memory (tests,
/// and the host driver model). Tables come from `alloc` (zeroed by the writer).
using TableAlloc = std::function<std::optional<uint64_t>(uint64_t bytes, uint64_t align)>;

class StreamTableWriter {
public:
    /// A linear table of 2^sid_bits STEs, or a 2-level table whose level-2
    /// tables hold 2^split STEs (Linux: split 8) created on demand.
    StreamTableWriter(mem::PhysMem& m, TableAlloc alloc, uint8_t sid_bits, bool two_level, uint8_t split = 8);
    /// STRTAB_BASE / STRTAB_BASE_CFG values describing the table.
    const StrtabConfig& config() const { return cfg_; }
    uint64_t strtab_base_reg() const;
    uint32_t strtab_base_cfg_reg() const;
    /// Writes the STE of sid (creating its level-2 table); false if sid is out of range or memory ran out.
    bool write_ste(uint32_t sid, const Ste& s);
    /// Address of sid's STE, nullopt if its level-2 table does not exist.
    std::optional<uint64_t> ste_address(uint32_t sid) const;
    /// Address of sid's STE, creating its level-2 table first (every STE of a new
    /// table set to `initial`, as Linux arm_smmu_init_initial_stes, then the L1
    /// descriptor written); nullopt if sid is out of range or memory ran out.
    std::optional<uint64_t> prepare(uint32_t sid, const Ste& initial);

private:
    mem::PhysMem& m_;
    TableAlloc alloc_;
    StrtabConfig cfg_;
};

/// Writes one CD table (linear or 2-level) for 2^s1cdmax CDs.
class CdTableWriter {
public:
    CdTableWriter(mem::PhysMem& m, TableAlloc alloc, uint8_t s1cdmax, uint8_t s1fmt);
    bool ok() const { return base_ != 0; }
    uint64_t context_ptr() const { return base_; } ///< STE.S1ContextPtr
    uint8_t s1cdmax() const { return s1cdmax_; }
    uint8_t s1fmt() const { return s1fmt_; }
    bool write_cd(uint32_t ssid, const Cd& c);
    std::optional<uint64_t> cd_address(uint32_t ssid) const;
    /// Address of CD ssid, creating its (zeroed) level-2 table and L1 descriptor
    /// first; `created` tells whether an L1 descriptor was written.
    std::optional<uint64_t> prepare(uint32_t ssid, bool* created = nullptr);

private:
    mem::PhysMem& m_;
    TableAlloc alloc_;
    uint8_t s1cdmax_, s1fmt_;
    uint64_t base_ = 0;
};

} // namespace iommusim::iommu::smmuv3
