// SPDX-License-Identifier: Apache-2.0
#pragma once
// The seam between the IOMMU families and the shared translation core
// (shared/DESIGN.md, "The seam that makes three families one simulator").
//
// A family resolves (RID, PASID/SSID) from its real in-memory tables into a
// TranslationContext; the core looks up the IOTLB and walk caches by the
// context's tags and walks the page-table formats it names. A family decodes
// its invalidation commands into InvalidationScopes; the core applies a scope
// to every cache uniformly. Nothing here knows which family is asking.
#include <cstdint>
#include <optional>
#include <string_view>

namespace iommusim::iommu {

/// Page-table formats the walker understands (one format object each).
enum class PtFormat : uint8_t {
    x86_64,     ///< IA-32e: VT-d first stage, AMD guest (v2) tables, CPU tables for SVA; 4 or 5 levels
    vtd_ss,     ///< VT-d second stage (EPT-like R/W/X, no P bit); 3, 4 or 5 levels
    amd_v1,     ///< AMD-Vi host (v1) tables: next-level field, level skipping
    arm_s1,     ///< Arm VMSAv8-64 stage 1 (4/16/64 KiB granule)
    arm_s2,     ///< Arm VMSAv8-64 stage 2 (S2AP, concatenated first level)
};

std::string_view to_string(PtFormat f);

/// One translation stage as the family's tables configure it.
struct StageConfig {
    bool enabled = false;
    PtFormat format = PtFormat::x86_64;
    uint8_t levels = 4;          ///< number of levels walked from the root
    uint8_t granule_shift = 12;  ///< 12, 14 or 16 (Arm); 12 elsewhere
    uint8_t input_bits = 48;     ///< input address size (VT-d AW / FLPM, Arm T0SZ, AMD mode)
    uint8_t concat_tables = 1;   ///< Arm stage 2: concatenated first-level tables
    /// The widest input the unit accepts on this stage when narrower than what the tables
    /// index (input_bits): VT-d second stage CAP.MGAW below the AGAW of the table (§3.6; QEMU
    /// vtd_iova_limit: 2^min(AGAW, MGAW)). 64 = no limit beyond input_bits.
    uint8_t unit_input_bits = 64;
    uint64_t root = 0;           ///< table root; for stage 1 under nesting this is an IPA/GPA
    uint8_t output_bits = 52;    ///< output address size (VT-d HAW/MGAW, Arm IPS/S2PS, MAXPHYADDR); wider OA bits fault
    uint8_t max_leaf_level = 3;  ///< highest level (1 = last) that may hold a leaf: 3 = 1 GiB (x86, VT-d CAP.FL1GP/SLLPS)
    bool hw_access_dirty = false;///< hardware A/D (VT-d SLADE/EAFE, Arm HA/HD, AMD HAD)
    bool write_protect = false;  ///< WPE: supervisor writes honour R/W
    bool execute_enable = true;  ///< XD/XN honoured when set (NXE-like)
    /// Arm upper VA range (TTB1 / TTBR1): input bits 63:input_bits are all ones
    /// instead of all zeros; the tables index the low input_bits as for TTB0.
    bool upper = false;
    /// Arm SMMU CD.AFFD / STE.S2AFFD: a leaf with AF = 0 does not fault (without hardware AF update).
    bool af_fault_disable = false;
};

/// The translation regime a stage-1 cache entry belongs to: which TLB
/// maintenance reaches it (Arm ARM D8 "translation regimes"; SMMUv3 STE.STRW).
/// Every family but SMMUv3 uses el1 only. EL2 entries carry no VMID.
enum class Regime : uint8_t {
    el1 = 0, ///< NS-EL1 (and every non-Arm entry): SMMU CMD_TLBI_NH_*, S12_VMALL, NSNH_ALL
    el2 = 1, ///< NS-EL2 (hypervisor / E2H host): SMMU CMD_TLBI_EL2_*
};

std::string_view to_string(Regime r);

/// Two stage-1 VA ranges (Arm VMSAv8-64 TTBR0/TTBR1; SMMUv3 CD TTB0/TTB1,
/// spec 5.4 and 3.4.1): VA[55] selects the lower (TranslationContext::s1) or
/// the upper (s1_upper) range. With top-byte ignore for the selected range,
/// VA[63:56] are not translated (the core replaces them by copies of VA[55]
/// before any lookup, as QEMU's select_tt and the Arm ARM do); the remaining
/// top bits must all equal VA[55], else the address lies in neither range: a
/// translation fault at level 0. A range whose walks are disabled (EPD0/EPD1)
/// faults the same way on a cache miss.
struct VaRanges {
    bool split = false;                  ///< two ranges (off: s1 alone, the other families)
    bool tbi_lower = false, tbi_upper = false;
    bool walk_lower = true, walk_upper = true; ///< !EPD0 / !EPD1

    /// The address the caches and tables see: top byte replaced by VA[55] copies under TBI.
    uint64_t effective(uint64_t va) const {
        const bool hi = (va >> 55) & 1;
        if (!(hi ? tbi_upper : tbi_lower)) return va;
        constexpr uint64_t top = uint64_t{0xFF} << 56;
        return hi ? (va | top) : (va & ~top);
    }
};

/// The result of context resolution: where walks start and how cache entries
/// are tagged. domain_tag is the VT-d DID, AMD DomainID or SMMU VMID;
/// as_tag is the PASID (VT-d, AMD) or ASID (SMMUv3).
struct TranslationContext {
    uint32_t domain_tag = 0;
    uint32_t as_tag = 0;
    Regime regime = Regime::el1;   ///< tags stage-1 cache entries (SMMU STE.STRW)
    bool pass_through = false;     ///< no translation at all (VT-d PGTT=4, AMD/SMMU bypass)
    StageConfig s1;                ///< stage 1 (the lower VA range when va.split)
    StageConfig s2;
    VaRanges va;                   ///< Arm TTB0/TTB1 selection, TBI, EPD
    StageConfig s1_upper;          ///< the upper VA range's stage 1 (used only when va.split; upper = true)
    bool allow_supervisor = false; ///< VT-d SRE, Arm/AMD privilege checks
    bool allow_execute = false;    ///< VT-d ERE
    bool ats_allowed = false;      ///< device-TLB / EATS enabled for this device
    /// Split-stage ATS (SMMUv3 STE.EATS = 2): Translation Completions carry stage 1's output
    /// (an IPA) and translated requests are checked by stage 2 (TranslationCore::check_s2).
    bool ats_split_stage = false;
    bool pri_allowed = false;
    bool force_snoop = false;      ///< VT-d PGSNP / SNP, AMD/SMMU equivalents
    bool fault_suppress = false;   ///< FPD: do not record faults
    /// Context-level rights (a perm:: mask, all = 63) ANDed with the tables' rights for every
    /// request, pass-through included: AMD-Vi DTE.IR/IW (§2.2.2.1, read also allows execute).
    uint8_t rights = 63;
};

/// What a request asks for.
struct AccessRequest {
    uint64_t iova = 0;
    bool write = false;
    bool execute = false;
    bool privileged = false;
};

/// Architecture-neutral fault kinds; each family maps them (with the stage
/// and level) to its architected reason codes.
enum class FaultKind : uint8_t {
    none,
    not_present,       ///< descriptor invalid / P=0 / R=W=0
    permission,        ///< R/W/X/U/S check failed
    address_size,      ///< output beyond the physical width (or an AMD skipped level's index bits set)
    access_flag,       ///< Arm AF=0 without hardware AF update
    reserved_bits,     ///< reserved bits set in a descriptor
    non_canonical,     ///< x86 input address not canonical
    memory_error,      ///< the walk read outside physical memory
    invalid_config,    ///< the StageConfig itself is inconsistent (levels/width/granule); family maps to its bad-entry code
    /// Input beyond the stage's input size (StageConfig input_bits / unit_input_bits), before any
    /// read: VT-d 0x83 (beyond MGAW / AGAW), AMD-Vi IO_PAGE_FAULT with PR = 0 (beyond the Mode's
    /// levels), SMMUv3 F_TRANSLATION (outside TxSZ / S2T0SZ, IHI 0070 3.4).
    input_size,
};

std::string_view to_string(FaultKind k);

/// Access permissions as a 6-bit mask: what an unprivileged (user) and a
/// privileged request may do. Stage 2 grants the same rights to both.
namespace perm {
inline constexpr uint8_t user_read = 1, user_write = 2, user_exec = 4;
inline constexpr uint8_t priv_read = 8, priv_write = 16, priv_exec = 32;
inline constexpr uint8_t all = 63;
/// Mask of the bits a request needs: one of read/write plus exec when asked.
constexpr uint8_t needed(bool write, bool execute, bool privileged) {
    uint8_t m = write ? user_write : user_read;
    if (execute) m |= user_exec;
    return privileged ? static_cast<uint8_t>(m << 3) : m;
}
/// The same rights for both privilege levels (stage 2, AMD v1, VT-d second stage).
constexpr uint8_t both(bool r, bool w, bool x) {
    uint8_t m = static_cast<uint8_t>((r ? user_read : 0) | (w ? user_write : 0) | (x ? user_exec : 0));
    return static_cast<uint8_t>(m | (m << 3));
}
} // namespace perm

/// The outcome of a translation (or of a cache hit).
struct Translation {
    FaultKind fault = FaultKind::none;
    uint8_t fault_stage = 0;     ///< 1 or 2 (stage-2 fault while walking stage 1 counts as 2)
    /// Level at which the walk stopped, counted from the leaf: 1 = last level
    /// (x86 PT, Arm level 3, AMD level 1). Input-range failures report 0.
    uint8_t fault_level = 0;
    uint64_t fault_addr = 0;     ///< input (or IPA for stage 2) that faulted
    bool s1ptw = false;          ///< stage-2 fault hit while translating a stage-1 table address (Arm S1PTW)
    uint64_t output = 0;         ///< physical address for the request's iova
    uint8_t page_shift = 12;     ///< size of the translated region (12, 21, 30, ...)
    /// Rights for the request's privilege level (what an ATS completion reports)
    /// and whether unprivileged requests may read (user).
    bool read = false, write = false, execute = false, user = false, global = false;
    bool snoop = false;          ///< leaf forces snoop (VT-d SNP, AMD FC)
    bool untranslated_only = false; ///< ATS completions report U (AMD v1 PTE.U): the device may not cache it
    uint8_t perms = 0;           ///< combined perm:: mask of all stages
    bool ok() const { return fault == FaultKind::none; }

    /// Sets perms and the request-privilege view (read/write/execute/user).
    void set_rights(uint8_t mask, bool privileged) {
        perms = mask;
        unsigned sh = privileged ? 3 : 0;
        read = (mask >> sh) & perm::user_read;
        write = (mask >> sh) & perm::user_write;
        execute = (mask >> sh) & perm::user_exec;
        user = mask & perm::user_read;
    }
};

/// Generic invalidation scope: each family's command decoder produces these
/// and the core applies them to the IOTLB, the walk caches and (for device
/// scopes) the ATC-invalidation path. Semantics applied by the core
/// (iotlb.cpp scope_matches, walk_cache.cpp):
///  - every kind reaches only the entries of its regime (all = everything of
///    the regime: SMMU NSNH_ALL spares EL2 entries, EL2_ALL spares EL1 ones);
///  - domain_as / as_only keep global entries (include_global is not used) and
///    never touch stage-2 caches, which are tagged by domain only;
///  - range drops every cached translation or walk-cache entry whose region
///    overlaps [addr, addr+size); addr is in the input space of the cache
///    (IOVA for stage-1/nested/stage-2-only entries; IPA when stage == s2,
///    which finds nested entries by their stage-1 output); leaf_only keeps
///    all walk-cache entries;
///  - stage == s1 spares stage-2-only entries and stage-2 caches; stage == s2
///    spares stage-1-only entries but drops the domain's nested stage-1
///    walk-cache entries (their table addresses went through stage 2).
struct InvalidationScope {
    enum class Kind : uint8_t {
        all,          ///< everything (VT-d global, SMMU CMD_TLBI_NSNH_ALL, AMD all-domains)
        domain,       ///< every entry of domain_tag (VT-d DSI, AMD domain, SMMU VMID)
        domain_as,    ///< every non-global entry of (domain_tag, as_tag) (PASID / ASID)
        as_only,      ///< every entry of as_tag in any domain (SMMU TLBI by ASID under VMID-less stage 1)
        range,        ///< [addr, addr+size) within domain_tag (and as_tag if has_as)
    };
    Kind kind = Kind::all;
    uint32_t domain_tag = 0;
    uint32_t as_tag = 0;
    bool has_as = false;
    uint64_t addr = 0;
    uint64_t size = 0;
    bool leaf_only = false;      ///< VT-d IH / SMMU Leaf: paging-structure caches may be kept
    bool include_global = true;  ///< whether global (G=1) entries are dropped too
    /// Which cached stage the scope targets: stage-1 entries tagged by PASID/ASID,
    /// stage-2 (IPA) entries, or both.
    enum class Stage : uint8_t { both, s1, s2 } stage = Stage::both;
    Regime regime = Regime::el1; ///< the regime whose entries the scope reaches
};

} // namespace iommusim::iommu
