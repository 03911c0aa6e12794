// SPDX-License-Identifier: Apache-2.0
#pragma once
// The concrete page-table formats of pt_format.hpp (fidelity and spec
// sections there). Visible as final classes so the walker can instantiate its
// level loop per format and decode descriptors without a virtual call per
// level; everyone else uses them through format_of() and the interface.
#include <bit>

#include "models/iommu/common/pt_format.hpp"

namespace iommusim::iommu::formats {

constexpr uint64_t bit(unsigned n) { return uint64_t{1} << n; }

/// Output-address bits a descriptor may not use: [51:output_bits].
inline uint64_t oa_above(const StageConfig& c) { return c.output_bits >= 52 ? 0 : bits(51, c.output_bits); }

// ---------------------------------------------------------------- x86-64 (A.6)
class X86Format final : public PageTableFormat {
    static constexpr uint64_t P = bit(0), RW = bit(1), US = bit(2), A = bit(5), D = bit(6), PS = bit(7),
                              G = bit(8), XD = bit(63);

public:
    PtFormat id() const override { return PtFormat::x86_64; }

    const char* check_config(const StageConfig& c) const override {
        if (c.granule_shift != 12) return "x86-64 tables use a 4 KiB granule";
        if (c.levels != 4 && c.levels != 5) return "x86-64 paging has 4 or 5 levels";
        if (c.input_bits != 12 + 9 * c.levels) return "x86-64 input width must be 48 (4-level) or 57 (5-level)";
        return check_common(c, 0);
    }

    // Canonical: bits 63:input_bits-1 all equal (Intel SDM 4.5; VT-d non-canonical fault).
    FaultKind check_input(uint64_t va, const StageConfig& c) const override {
        auto top = static_cast<int64_t>(va) >> (c.input_bits - 1);
        return (top == 0 || top == -1) ? FaultKind::none : FaultKind::non_canonical;
    }

    Descriptor decode(uint64_t d, unsigned level, const StageConfig& c) const override {
        Descriptor r;
        if (!(d & P)) return r;
        uint64_t rsvd = oa_above(c);
        if (!c.execute_enable) rsvd |= XD; // XD is reserved while NXE is off
        bool leaf = level == 1;
        if (level >= 2 && (d & PS)) {
            if (level >= 4 || level > c.max_leaf_level) rsvd |= PS; // PS in PML4E/PML5E is reserved
            else leaf = true;
        }
        unsigned shift = level_shift(c, level);
        if (leaf && level >= 2) rsvd |= bits(shift - 1, 13); // bit 12 is PAT in large leaves
        if (d & rsvd) return fault(FaultKind::reserved_bits);

        bool u = d & US, w = d & RW, nx = c.execute_enable && (d & XD);
        r.perms = static_cast<uint8_t>((u ? perm::user_read : 0) | (u && w ? perm::user_write : 0) |
                                       (u && !nx ? perm::user_exec : 0) | perm::priv_read |
                                       (w || !c.write_protect ? perm::priv_write : 0) | (!nx ? perm::priv_exec : 0));
        r.accessed = d & A;
        if (!leaf) {
            r.set_table(level - 1, d & bits(51, 12));
            return r;
        }
        r.set_leaf(shift, d & bits(51, shift));
        r.dirty = d & D;
        r.global = d & G;
        return r;
    }
    uint64_t with_accessed(uint64_t d) const override { return d | A; }
    uint64_t with_dirty(uint64_t d) const override { return d | A | D; }

    bool leaf_ok(unsigned level, unsigned page_shift, const StageConfig& c) const override {
        return level <= c.max_leaf_level && level <= 3 && page_shift == level_shift(c, level);
    }
    uint64_t make_table(uint64_t pa, unsigned, unsigned, const StageConfig&) const override {
        return (pa & bits(51, 12)) | P | RW | US;
    }
    uint64_t make_leaf(uint64_t pa, unsigned level, unsigned shift, const LeafAttrs& a,
                       const StageConfig& c) const override {
        uint64_t d = (pa & bits(51, shift)) | P;
        if (a.perms & (perm::user_write | perm::priv_write)) d |= RW;
        if (a.perms & (perm::user_read | perm::user_write | perm::user_exec)) d |= US;
        if (c.execute_enable && !(a.perms & (perm::user_exec | perm::priv_exec))) d |= XD;
        if (a.global) d |= G;
        if (a.accessed) d |= A;
        if (a.dirty) d |= D;
        if (level >= 2) d |= PS;
        return d;
    }

private:
    static Descriptor fault(FaultKind k) {
        Descriptor r;
        r.kind = Descriptor::Kind::fault;
        r.fault = k;
        return r;
    }
};

// ------------------------------------------------------- VT-d second stage (A.5)
class VtdSsFormat final : public PageTableFormat {
    static constexpr uint64_t R = bit(0), W = bit(1), X = bit(2), PS = bit(7), A = bit(8), D = bit(9), SNP = bit(11);

public:
    PtFormat id() const override { return PtFormat::vtd_ss; }

    const char* check_config(const StageConfig& c) const override {
        if (c.granule_shift != 12) return "VT-d second stage uses a 4 KiB granule";
        if (c.levels < 3 || c.levels > 5) return "VT-d second stage has 3, 4 or 5 levels (AW 1..3)";
        if (c.input_bits != 12 + 9 * c.levels) return "VT-d second-stage width must be 39, 48 or 57 bits";
        return check_common(c, 0);
    }

    Descriptor decode(uint64_t d, unsigned level, const StageConfig& c) const override {
        Descriptor r;
        if (!(d & (R | W))) return r; // no P bit: present iff readable or writable
        uint64_t rsvd = oa_above(c);
        bool leaf = level == 1;
        if (level >= 2 && (d & PS)) {
            if (level >= 4 || level > c.max_leaf_level) rsvd |= PS;
            else leaf = true;
        }
        unsigned shift = level_shift(c, level);
        if (!leaf) rsvd |= SNP;
        if (leaf && level >= 2) rsvd |= bits(shift - 1, 12);
        if (d & rsvd) {
            r.kind = Descriptor::Kind::fault;
            r.fault = FaultKind::reserved_bits;
            return r;
        }
        bool rd = d & R, wr = d & W, ex = c.execute_enable ? static_cast<bool>(d & X) : rd;
        r.perms = perm::both(rd, wr, ex);
        r.accessed = d & A;
        if (!leaf) {
            r.set_table(level - 1, d & bits(51, 12));
            return r;
        }
        r.set_leaf(shift, d & bits(51, shift));
        r.dirty = d & D;
        r.snoop = d & SNP;
        return r;
    }
    uint64_t with_accessed(uint64_t d) const override { return d | A; }
    uint64_t with_dirty(uint64_t d) const override { return d | A | D; }

    bool leaf_ok(unsigned level, unsigned page_shift, const StageConfig& c) const override {
        return level <= c.max_leaf_level && level <= 3 && page_shift == level_shift(c, level);
    }
    uint64_t make_table(uint64_t pa, unsigned, unsigned, const StageConfig&) const override {
        return (pa & bits(51, 12)) | R | W | X;
    }
    uint64_t make_leaf(uint64_t pa, unsigned level, unsigned shift, const LeafAttrs& a,
                       const StageConfig&) const override {
        uint64_t d = pa & bits(51, shift);
        if (a.perms & (perm::user_read | perm::priv_read)) d |= R;
        if (a.perms & (perm::user_write | perm::priv_write)) d |= W;
        if (a.perms & (perm::user_exec | perm::priv_exec)) d |= X;
        if (a.snoop) d |= SNP;
        if (a.accessed) d |= A;
        if (a.dirty) d |= D;
        if (level >= 2) d |= PS;
        return d;
    }
};

// ------------------------------------------------------------ AMD-Vi v1 (B.3)
class AmdV1Format final : public PageTableFormat {
    static constexpr uint64_t PR = bit(0), A = bit(5), D = bit(6), U = bit(59), FC = bit(60), IR = bit(61),
                              IW = bit(62);
    static constexpr unsigned kNlShift = 9;
    static constexpr unsigned kNlSize = 7; // NextLevel 7: page size from trailing ones

public:
    PtFormat id() const override { return PtFormat::amd_v1; }

    const char* check_config(const StageConfig& c) const override {
        if (c.granule_shift != 12) return "AMD v1 tables use a 4 KiB granule";
        if (c.levels < 1 || c.levels > 6) return "AMD v1 paging mode must be 1..6 levels";
        unsigned want = c.levels == 6 ? 64 : 12 + 9 * c.levels;
        if (c.input_bits != want) return "AMD v1 input width must be 12 + 9 * levels (64 for mode 6)";
        return check_common(c, 0);
    }

    Descriptor decode(uint64_t d, unsigned level, const StageConfig& c) const override {
        Descriptor r;
        if (!(d & PR)) return r;
        unsigned nl = static_cast<unsigned>((d >> kNlShift) & 7);
        if (d & (oa_above(c) | bits(58, 52))) return fault();
        bool rd = d & IR, wr = d & IW;
        r.perms = perm::both(rd, wr, rd); // v1 tables carry no execute right
        r.accessed = d & A;
        unsigned isz = level_shift(c, level);
        if (level == 1 ? (nl != 0 && nl != kNlSize) : (nl != 0 && nl != kNlSize && nl >= level)) return fault();
        if (nl != 0 && nl != kNlSize) {
            r.set_table(nl, d & bits(51, 12));
            return r;
        }
        if (level == 6) return fault(); // the top level of a 6-level table cannot map pages
        unsigned shift = isz;
        if (nl == kNlSize) {
            // Size = 2^(13 + number of trailing ones from address bit 12), replicated in every
            // covered entry; it must exceed this level's entry size and fit in one table.
            shift = 13 + static_cast<unsigned>(std::countr_one(d >> 12));
            if (shift <= isz || shift >= isz + 9 || shift > 51) return fault();
        }
        r.set_leaf(shift, d & bits(51, shift));
        r.dirty = d & D;
        r.snoop = d & FC;
        r.untranslated_only = d & U;
        return r;
    }
    uint64_t with_accessed(uint64_t d) const override { return d | A; }
    uint64_t with_dirty(uint64_t d) const override { return d | A | D; }

    bool leaf_ok(unsigned level, unsigned page_shift, const StageConfig& c) const override {
        unsigned isz = level_shift(c, level);
        return level < 6 && page_shift >= isz && page_shift < isz + 9 && page_shift <= 51;
    }
    uint64_t make_table(uint64_t pa, unsigned, unsigned next_level, const StageConfig&) const override {
        // IR/IW are ANDed along the walk, so tables grant both (as Linux does).
        return (pa & bits(51, 12)) | PR | (uint64_t{next_level} << kNlShift) | IR | IW;
    }
    uint64_t make_leaf(uint64_t pa, unsigned level, unsigned shift, const LeafAttrs& a,
                       const StageConfig& c) const override {
        uint64_t d = (pa & bits(51, shift)) | PR;
        if (shift != level_shift(c, level)) {
            d |= uint64_t{kNlSize} << kNlShift;
            if (shift > 13) d |= bits(shift - 2, 12); // 2^shift = 2^(13 + trailing ones)
        }
        if (a.perms & (perm::user_read | perm::priv_read)) d |= IR;
        if (a.perms & (perm::user_write | perm::priv_write)) d |= IW;
        if (a.snoop) d |= FC;
        if (a.untranslated_only) d |= U;
        if (a.accessed) d |= A;
        if (a.dirty) d |= D;
        return d;
    }

private:
    static Descriptor fault() {
        Descriptor r;
        r.kind = Descriptor::Kind::fault;
        r.fault = FaultKind::reserved_bits;
        return r;
    }
};

// ------------------------------------------------ Arm VMSAv8-64 stage 1 and 2
class ArmFormat final : public PageTableFormat {
    static constexpr uint64_t VALID = bit(0), TYPE = bit(1), AP1 = bit(6), AP2 = bit(7), AF = bit(10), NG = bit(11),
                              DBM = bit(51), PXN = bit(53), XN = bit(54), PXN_T = bit(59), XN_T = bit(60),
                              AP_T0 = bit(61), AP_T1 = bit(62);

public:
    explicit constexpr ArmFormat(bool stage2) : s2_(stage2) {}
    PtFormat id() const override { return s2_ ? PtFormat::arm_s2 : PtFormat::arm_s1; }

    const char* check_config(const StageConfig& c) const override {
        if (c.granule_shift != 12 && c.granule_shift != 14 && c.granule_shift != 16)
            return "Arm granule must be 4, 16 or 64 KiB";
        if (c.input_bits < 25 || c.input_bits > 48) return "Arm input size must be 25..48 bits";
        if (c.levels < 1 || c.levels > 4) return "Arm tables have at most 4 levels";
        // Stage 2 may concatenate up to 16 first-level tables (VTCR_EL2.SL0 rules).
        return check_common(c, s2_ ? 4 : 0);
    }

    Descriptor decode(uint64_t d, unsigned level, const StageConfig& c) const override {
        Descriptor r;
        if (!(d & VALID)) return r;
        bool table_or_page = d & TYPE;
        bool leaf = level == 1 || !table_or_page;
        unsigned shift = level_shift(c, level);
        if (leaf && !table_or_page && !block_ok(level, c)) return r; // reserved encoding: translation fault
        uint64_t oa = d & bits(47, leaf ? shift : c.granule_shift);
        if (c.output_bits < 48 && (oa >> c.output_bits)) {
            r.kind = Descriptor::Kind::fault;
            r.fault = FaultKind::address_size;
            return r;
        }
        r.addr = oa;
        if (!leaf) {
            r.kind = Descriptor::Kind::table;
            r.next_level = static_cast<uint8_t>(level - 1);
            if (!s2_) { // hierarchical controls (stage 2 table descriptors have none)
                uint8_t lim = perm::all;
                if (d & AP_T0) lim &= static_cast<uint8_t>(~(perm::user_read | perm::user_write)); // no EL0 data
                if (d & AP_T1) lim &= static_cast<uint8_t>(~(perm::user_write | perm::priv_write));
                if (c.execute_enable && (d & XN_T)) lim &= static_cast<uint8_t>(~perm::user_exec);
                if (c.execute_enable && (d & PXN_T)) lim &= static_cast<uint8_t>(~perm::priv_exec);
                r.perms = lim;
            }
            return r;
        }
        r.kind = Descriptor::Kind::leaf;
        r.page_shift = static_cast<uint8_t>(shift);
        r.accessed = d & AF;
        r.af_fault = !c.af_fault_disable;
        bool dbm = c.hw_access_dirty && (d & DBM);
        if (s2_) {
            bool rd = d & AP1, wr = d & AP2, x = !(c.execute_enable && (d & XN));
            r.perms = perm::both(rd, wr, x);
            r.dirty = wr || !dbm;
            r.dirty_perms = dbm ? perm::both(rd, true, x) : r.perms;
        } else {
            r.perms = s1_perms(d & AP1, !(d & AP2), d, c);
            r.dirty = !(d & AP2) || !dbm;
            r.dirty_perms = dbm ? s1_perms(d & AP1, true, d, c) : r.perms;
            r.global = !(d & NG);
        }
        return r;
    }
    uint64_t with_accessed(uint64_t d) const override { return d | AF; }
    // Hardware dirty state: stage 1 clears AP[2] (read-only), stage 2 sets S2AP[1] (write).
    uint64_t with_dirty(uint64_t d) const override { return s2_ ? (d | AF | AP2) : ((d | AF) & ~AP2); }

    bool leaf_ok(unsigned level, unsigned page_shift, const StageConfig& c) const override {
        return page_shift == level_shift(c, level) && (level == 1 || block_ok(level, c));
    }
    uint64_t make_table(uint64_t pa, unsigned, unsigned, const StageConfig& c) const override {
        return (pa & bits(47, c.granule_shift)) | VALID | TYPE;
    }
    uint64_t make_leaf(uint64_t pa, unsigned level, unsigned shift, const LeafAttrs& a,
                       const StageConfig&) const override {
        uint64_t d = (pa & bits(47, shift)) | VALID | (level == 1 ? TYPE : 0) | (uint64_t{3} << 8); // SH = inner
        if (a.accessed) d |= AF;
        bool w = a.perms & (perm::user_write | perm::priv_write);
        bool clean = w && a.dbm && !a.dirty; // writable-clean: DBM=1, not yet writable
        if (a.dbm && w) d |= DBM;
        if (s2_) {
            if (a.perms & (perm::user_read | perm::priv_read)) d |= AP1;
            if (w && !clean) d |= AP2;
            if (!(a.perms & (perm::user_exec | perm::priv_exec))) d |= XN;
        } else {
            if (a.perms & (perm::user_read | perm::user_write)) d |= AP1;
            if (!w || clean) d |= AP2;
            if (!(a.perms & perm::user_exec)) d |= XN;
            if (!(a.perms & perm::priv_exec)) d |= PXN;
            if (!a.global) d |= NG;
        }
        return d;
    }

private:
    // VMSAv8-64 block descriptors: 4 KiB granule at levels 1 and 2 (1 GiB, 2 MiB);
    // 16 KiB and 64 KiB granules at level 2 only (32 MiB, 512 MiB) without LPA.
    static bool block_ok(unsigned level, const StageConfig& c) {
        if (level > c.max_leaf_level) return false;
        return c.granule_shift == 12 ? (level == 2 || level == 3) : level == 2;
    }
    // AP[2:1] and UXN/PXN (D8.4): a user-writable page is never privileged-executable.
    static uint8_t s1_perms(bool el0, bool writable, uint64_t d, const StageConfig& c) {
        bool uxn = c.execute_enable && (d & XN), pxn = c.execute_enable && (d & PXN);
        return static_cast<uint8_t>((el0 ? perm::user_read : 0) | (el0 && writable ? perm::user_write : 0) |
                                    (!uxn ? perm::user_exec : 0) | perm::priv_read |
                                    (writable ? perm::priv_write : 0) |
                                    (!pxn && !(el0 && writable) ? perm::priv_exec : 0));
    }
    bool s2_;
};

inline const X86Format kX86;
inline const VtdSsFormat kVtdSs;
inline const AmdV1Format kAmdV1;
inline const ArmFormat kArmS1(false);
inline const ArmFormat kArmS2(true);

} // namespace iommusim::iommu::formats
