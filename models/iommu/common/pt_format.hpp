// SPDX-License-Identifier: Apache-2.0
#pragma once
// Fidelity: bit-exact page-table descriptor formats behind one interface.
//   x86_64  IA-32e 4/5-level (VT-d first stage A.6, AMD v2 guest tables B.3, CPU tables for SVA):
//           P, R/W, U/S, A, D, PS, G, XD; 4 KiB / 2 MiB / 1 GiB; reserved: OA bits above
//           output_bits, PS in PML4E/PML5E, large-page bits [shift-1:13], XD when NXE is off.
//   vtd_ss  VT-d second stage (A.5): R/W/X (X only with SLEE), PS, A, D, SNP, 3/4/5 levels;
//           present iff R|W; reserved: OA above output_bits, PS at level >= 4, SNP in
//           non-leaf entries, large-page bits [shift-1:12] (QEMU masks, minus SNP which we
//           model as supported snoop control).
//   amd_v1  AMD-Vi host tables (B.3): PR, NextLevel (level skipping; 0 = natural-size leaf;
//           7 = power-of-two page encoded by trailing ones, replicated), IR/IW ANDed along the
//           walk, FC, A(5, UNCONFIRMED)/D(6); reserved: OA above output_bits, bits 58:52,
//           NextLevel >= current level.
//   arm_s1/arm_s2  VMSAv8-64 (4/16/64 KiB granules, up to 48-bit input): table/block/page,
//           AP[2:1], UXN/PXN, APTable/XNTable, AF, nG, DBM; stage 2 S2AP, XN, concatenated
//           first-level tables (up to 16). OA bits above output_bits give an address-size
//           fault; other RES0 bits are not checked (the architecture does not require it).
// Not modelled: memory types (PAT, MAIR, EMT), protection keys, SMEP/SMAP/PAN, Arm
// contiguous hint, 52-bit Arm addresses (LPA/LPA2), big-endian tables.
// Levels are counted from the leaf: 1 = last level (x86 PT, Arm level 3, AMD level 1).
#include <cstdint>

#include "models/iommu/common/translation.hpp"

namespace iommusim::iommu {

/// One descriptor as the walker sees it.
struct Descriptor {
    enum class Kind : uint8_t { invalid, table, leaf, fault };
    Kind kind = Kind::invalid;
    FaultKind fault = FaultKind::none; ///< for Kind::fault
    uint8_t page_shift = 0;            ///< leaf: log2 of the mapped size
    uint8_t next_level = 0;            ///< table: level of the table it points to
    uint8_t perms = perm::all;         ///< table: limit on what lies below; leaf: rights
    uint8_t dirty_perms = perm::all;   ///< leaf: rights once hardware has marked it dirty
    bool accessed = true;              ///< A / AF already set
    bool dirty = true;                 ///< leaf needs no hardware update before a write
    bool af_fault = false;             ///< a clear AF without hardware update faults (Arm)
    bool global = false, snoop = false;
    bool untranslated_only = false;    ///< leaf: ATS may not return it (AMD v1 U): untranslated access only
    uint64_t addr = 0;                 ///< next table base, or leaf output base (size-aligned)

    /// A table descriptor: the next table is of `level`, at `base`.
    void set_table(unsigned level, uint64_t base) {
        kind = Kind::table;
        next_level = static_cast<uint8_t>(level);
        addr = base;
    }
    /// A leaf mapping 2^shift bytes at `base`; until marked dirty it grants what `perms` grants.
    void set_leaf(unsigned shift, uint64_t base) {
        kind = Kind::leaf;
        page_shift = static_cast<uint8_t>(shift);
        addr = base;
        dirty_perms = perms;
    }
};

/// What a table builder writes into a leaf.
struct LeafAttrs {
    uint8_t perms = perm::all;
    bool global = false;
    bool snoop = false;
    bool untranslated_only = false; ///< AMD v1 U (bit 59); formats without it ignore it
    bool accessed = true; ///< pre-set A / AF
    bool dirty = false;   ///< pre-set D (x86, VT-d, AMD) / writable-dirty state (Arm)
    bool dbm = false;     ///< Arm: writable-clean with DBM=1 (hardware dirty state)
};

class PageTableFormat {
public:
    virtual ~PageTableFormat() = default;
    virtual PtFormat id() const = 0;

    /// nullptr when the stage is walkable, else the reason.
    virtual const char* check_config(const StageConfig& c) const = 0;
    /// Fault for an input outside what the stage translates (FaultKind::none if fine).
    /// Defined here: a walk over a final format calls it directly, inlined (once per walk).
    virtual FaultKind check_input(uint64_t va, const StageConfig& c) const {
        // The unit may accept fewer input bits than the tables index (VT-d MGAW below the AGAW).
        const unsigned bits = c.input_bits < c.unit_input_bits ? c.input_bits : c.unit_input_bits;
        if (bits >= 64) return FaultKind::none;
        // An upper (TTB1) range holds the addresses whose bits above the range are all ones.
        return ((c.upper ? ~va : va) >> bits) ? FaultKind::input_size : FaultKind::none;
    }
    virtual Descriptor decode(uint64_t d, unsigned level, const StageConfig& c) const = 0;
    virtual uint64_t with_accessed(uint64_t d) const = 0;
    virtual uint64_t with_dirty(uint64_t d) const = 0;

    // Builders (tables for tests and the host driver).
    /// Whether a leaf of 2^page_shift bytes may be written at `level`.
    virtual bool leaf_ok(unsigned level, unsigned page_shift, const StageConfig& c) const = 0;
    virtual uint64_t make_table(uint64_t table_pa, unsigned level, unsigned next_level, const StageConfig& c) const = 0;
    virtual uint64_t make_leaf(uint64_t pa, unsigned level, unsigned page_shift, const LeafAttrs& a,
                               const StageConfig& c) const = 0;

    // Geometry shared by every format: 8-byte descriptors, tables of one granule.
    static unsigned stride(const StageConfig& c) { return c.granule_shift - 3u; }
    /// log2 of the region one entry at `level` covers.
    static unsigned level_shift(const StageConfig& c, unsigned level) {
        return c.granule_shift + (level - 1u) * stride(c);
    }
    /// Index bits of the table at `level` (the top table may be partial or concatenated).
    static unsigned index_bits(const StageConfig& c, unsigned level) {
        return level == c.levels ? c.input_bits - level_shift(c, level) : stride(c);
    }
    static uint64_t index(uint64_t va, const StageConfig& c, unsigned level) {
        return (va >> level_shift(c, level)) & ((uint64_t{1} << index_bits(c, level)) - 1);
    }
    static uint64_t table_bytes(const StageConfig& c, unsigned level) { return uint64_t{8} << index_bits(c, level); }

protected:
    /// Checks shared by all formats: levels, widths, top-table size.
    static const char* check_common(const StageConfig& c, unsigned max_concat_bits);
};

/// The format object for an enum value (stateless, shared).
const PageTableFormat& format_of(PtFormat f);

/// Bits [hi:lo] set.
constexpr uint64_t bits(unsigned hi, unsigned lo) {
    return (hi >= 63 ? ~uint64_t{0} : ((uint64_t{1} << (hi + 1)) - 1)) & ~((uint64_t{1} << lo) - 1);
}

} // namespace iommusim::iommu
