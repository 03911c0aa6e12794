// SPDX-License-Identifier: Apache-2.0
#pragma once
// VT-d scalable-mode context resolution from the real in-memory tables
// (kernel-free), and a bit-exact writer for those tables.
//
// Fidelity: reads the scalable-mode root entry (lower/upper context-table
// pointers), the 256-bit scalable-mode context entry, the PASID directory
// entry and the 512-bit PASID table entry exactly as laid out in VT-d spec
// §9.4, §9.6, §9.9 and shared/reference/spec-layouts.md A.1-A.4, checks
// present bits, reserved fields, PDTS bounds, PGTT encodings and request
// permissions (DTE, PASIDE, PRE, SRE, ERE), and reports the architected
// scalable-mode fault reason codes (§7.1.3 / Table 27; code values as in
// Linux drivers/iommu/intel/dmar.c dma_remap_sm_fault_reasons).
// Not modelled: legacy-mode (non-scalable) root/context entries (RTADDR.SMT
// must be 1; TTM=0 yields fault 0x30), the optional memory-type fields
// (CD/EMTE/EMT/PAT), PASID-table entries of later spec revisions (q3-q7).
#include <array>
#include <cstdint>
#include <functional>
#include <optional>

#include "models/iommu/common/request_attrs.hpp"
#include "models/iommu/common/translation.hpp"
#include "models/iommu/vtd/vtd_params.hpp"
#include "models/mem/phys_mem.hpp"
#include "models/pcie/tlp.hpp"

namespace iommusim::iommu::vtd {

/// Scalable-mode fault reasons (VT-d spec §7.1.3; Linux dma_remap_sm_fault_reasons[code - 0x30]).
namespace fr {
inline constexpr uint8_t kInvalidRootTable = 0x30, kTtm0WithPasid = 0x31, kTtm0PageRequest = 0x32,
    kRootAccess = 0x38, kRootNotPresent = 0x39, kRootReserved = 0x3A,
    kCtxAccess = 0x40, kCtxNotPresent = 0x41, kCtxReserved = 0x42, kCtxInvalid = 0x43, kCtxDteClear = 0x44,
    kCtxPasidDisabled = 0x45, kCtxPasidTooLarge = 0x46, kCtxPreClear = 0x47, kCtxRidPasid = 0x48,
    kPdAccess = 0x50, kPdNotPresent = 0x51, kPdReserved = 0x52,
    kPeAccess = 0x58, kPeNotPresent = 0x59, kPeReserved = 0x5A, kPeInvalid = 0x5B, kPeEreClear = 0x5C,
    kPeSreClear = 0x5D,
    kFlAccess = 0x70, kFlNotPresent = 0x71, kFlReserved = 0x72, kFlPml4Access = 0x73, kFlNestedMgaw = 0x74,
    kFlPml4ReadNested = 0x75, kFlReadNested = 0x76, kFlWriteNested = 0x77,
    kSlAccess = 0x78, kSlPermission = 0x79, kSlReserved = 0x7A, kSlInvalidPtr = 0x7B,
    kNonCanonical = 0x80, kUserNotAllowed = 0x81, kNoExecute = 0x82, kBeyondMgaw = 0x83, kSlBeyondMax = 0x84,
    kNoWrite = 0x85, kNoRead = 0x86, kInterruptRange = 0x87;
}

/// Scalable-mode context entry, decoded (256-bit; spec-layouts.md A.2).
struct SmContextEntry {
    bool present = false, fpd = false, dte = false, paside = false, pre = false;
    uint8_t pdts = 0;            ///< directory holds 2^(PDTS+7) entries
    uint64_t pasid_dir = 0;      ///< 4 KiB aligned
    uint32_t rid_pasid = 0;
    bool rid_priv = false;       ///< bit 84 (name UNCONFIRMED)
    std::array<uint64_t, 4> encode() const;
    /// Decodes; returns nullopt if a reserved field is set.
    static std::optional<SmContextEntry> decode(const std::array<uint64_t, 4>& q);
    uint32_t pasid_dir_entries() const { return 1u << (pdts + 7); }
};

/// PASID-granular translation types (§9.6, PGTT field).
enum class Pgtt : uint8_t { first_stage = 1, second_stage = 2, nested = 3, pass_through = 4 };

/// Scalable-mode PASID table entry, decoded (512-bit; spec-layouts.md A.4).
struct PasidEntry {
    bool present = false, fpd = false;
    uint8_t aw = 2;              ///< second-stage AW: 1 = 39-bit/3-level, 2 = 48/4, 3 = 57/5
    bool slee = false;
    uint8_t pgtt = 0;            ///< raw field (reserved encodings kept so they can be reported)
    bool slade = false;
    uint64_t slptptr = 0;
    uint16_t did = 0;
    bool pwsnp = false, pgsnp = false;
    bool sre = false, ere = false;
    uint8_t flpm = 0;            ///< 0 = 4-level, 1 = 5-level
    bool wpe = false, eafe = false;
    uint64_t flptptr = 0;
    std::array<uint64_t, 8> encode() const;
    static std::optional<PasidEntry> decode(const std::array<uint64_t, 8>& q);
};

/// The outcome of one step of the resolution: a fault reason (0 = none),
/// whether fault recording is suppressed by an FPD seen on the way, and how
/// many table reads were made (for timing).
struct StepStatus {
    uint8_t fault = 0;
    bool fpd = false;
    unsigned reads = 0;
    bool ok() const { return fault == 0; }
};

struct ContextLookup {
    StepStatus status;
    SmContextEntry entry;
};
struct PasidLookup {
    StepStatus status;
    PasidEntry entry;
};

/// Stateless reader of the scalable-mode tables through PhysMem.
class VtdTableReader {
public:
    explicit VtdTableReader(const VtdParams& p) : p_(p) {}

    /// Root entry + context entry for `rid` under the root table latched by SRTP.
    ContextLookup read_context(mem::PhysMem& m, uint64_t root_table, bool scalable, pcie::Bdf rid) const;
    /// Context-level request checks (DTE, PASIDE, PRE, PDTS bound); returns the effective PASID.
    StepStatus check_request(const SmContextEntry& ce, const RequestAttrs& r, uint32_t& effective_pasid) const;
    /// PASID directory entry + PASID table entry.
    PasidLookup read_pasid(mem::PhysMem& m, const SmContextEntry& ce, uint32_t pasid) const;
    /// Turns the entries into the core's TranslationContext, validating PGTT / AW / FLPM
    /// against the capabilities (fault 0x5B for unsupported or reserved encodings).
    StepStatus make_context(const SmContextEntry& ce, const PasidEntry& pe, uint32_t pasid,
                            TranslationContext& out) const;
    /// PASID-entry-level request checks (SRE for PMR=1, ERE for ER=1).
    static uint8_t check_pasid_permissions(const PasidEntry& pe, const RequestAttrs& r);

private:
    const VtdParams& p_;
};

/// Writes scalable-mode tables bit-exactly into simulated memory, allocating
/// table pages on demand from `alloc_page` (returns a zeroed, 4 KiB aligned PA).
/// Used by tests and by the host driver model.
class VtdTableWriter {
public:
    VtdTableWriter(mem::PhysMem& m, std::function<uint64_t()> alloc_page);

    uint64_t root_table() const { return root_; }
    /// Creates (if needed) the context table for rid's bus half and writes the context entry.
    void set_context(pcie::Bdf rid, const SmContextEntry& ce);
    /// Convenience: a context entry with a fresh PASID directory (PDTS as given).
    SmContextEntry make_context(pcie::Bdf rid, uint8_t pdts, bool dte, bool paside, bool pre, uint32_t rid_pasid = 0);
    /// Creates the PASID table for `pasid`'s directory slot if needed and writes the entry.
    void set_pasid_entry(const SmContextEntry& ce, uint32_t pasid, const PasidEntry& pe);
    void clear_pasid_entry(const SmContextEntry& ce, uint32_t pasid);
    /// Raw access for negative tests.
    uint64_t context_entry_addr(pcie::Bdf rid) const;
    uint64_t pasid_entry_addr(const SmContextEntry& ce, uint32_t pasid) const;
    uint64_t root_entry_addr(uint8_t bus) const { return root_ + 16u * bus; }

private:
    mem::PhysMem& m_;
    std::function<uint64_t()> alloc_;
    uint64_t root_;
};

} // namespace iommusim::iommu::vtd
