// SPDX-License-Identifier: Apache-2.0
#pragma once
// Fidelity: one page-table walker for every format (pt_format.hpp), reading
// each descriptor through a WalkMemPort (counted, latency charged). Nested
// translation composes stage 1 over stage 2: every stage-1 table address and
// the final stage-1 output are translated by stage 2, so a cold n-level over
// m-level walk reads (n+1)(m+1)-1 descriptors (Bhargava et al., ASPLOS'08;
// calibration.md): 24 for 4+4, 35 for 5+5. Paging-structure caches (per
// level, per stage) and a stage-2 leaf cache shorten later walks. Checks:
// input range / canonical form, reserved bits, present/valid, level skipping
// (AMD), read/write/execute/privilege rights accumulated along the walk,
// access flag (Arm). Optional hardware A/D: A on every descriptor used (AF
// on Arm leaves), D / dirty state on the leaf for writes, by compare-exchange;
// under nesting these writes need stage-2 write permission on the table page.
// Faults carry kind, stage, level (1 = last) and address; a stage-2 fault on a
// stage-1 table address sets s1ptw. Arm two-range stage 1 (TranslationContext
// va / s1_upper): VA[55] selects TTB0 or TTB1, top byte ignored per range,
// the gap between the ranges and a range with walks disabled (EPD) give a
// translation fault at level 0; entries are tagged by the context's regime.
// Split-stage ATS (Arm EATS=2): a walk may stop after stage 1 of a nested
// context (output = IPA) or run stage 2 alone on an IPA (WalkStages). Not modelled: concurrent walks racing on
// A/D (the compare-exchange result is not retried), walk-slot contention (the
// shell's job), request admission (VT-d SRE/ERE: the family checks them).
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "models/common/stats.hpp"
#include "models/common/time.hpp"
#include "models/iommu/common/iotlb.hpp"
#include "models/iommu/common/pt_format.hpp"
#include "models/iommu/common/walk_cache.hpp"
#include "models/iommu/common/walk_mem_port.hpp"
#include "models/iommu/common/walker_params.hpp"

namespace iommusim::iommu {

/// Which stages a walk performs (split-stage ATS, SMMUv3 STE.EATS = 2 with
/// CR0.ATSCHK: the Translation Request gets stage 1, the translated request
/// is checked by stage 2; SMMUv3 spec 3.9.1.2).
enum class WalkStages : uint8_t {
    all,     ///< every enabled stage
    s1_only, ///< stage 1 (of a nested context: its table addresses still go through stage 2); output = IPA
    s2_only, ///< stage 2 alone; the request's address is an IPA
};

struct WalkOutcome {
    Translation t;                ///< fault, or output / page_shift / rights of the request's iova
    uint8_t s1_perms = perm::all; ///< stage-1 rights (all when stage 1 is off)
    uint8_t s2_perms = perm::all; ///< stage-2 rights (all when stage 2 is off)
    uint64_t ipa = 0;             ///< nested: stage-1 output address
    bool dirty_pending = false;   ///< leaf left clean: a later write must walk again
    bool s2_cache_hit = false;    ///< WalkStages::s2_only: served by the stage-2 cache, no walk
    uint64_t reads = 0, writes = 0;
    Duration latency;
};

class Walker {
public:
    Walker(WalkMemPort& port, const WalkerParams& p, stats::Group* parent);

    WalkOutcome walk(const TranslationContext& ctx, const AccessRequest& req, WalkStages stages = WalkStages::all);
    /// Applies a scope to the walk caches and the stage-2 cache.
    uint64_t invalidate(const InvalidationScope& s);

    WalkCache& s1_walk_cache() { return s1_pwc_; }
    WalkCache& s2_walk_cache() { return s2_pwc_; }
    Iotlb& s2_cache() { return s2_tlb_; }
    WalkMemPort& port() { return port_; }

private:
    struct StageOut {
        FaultKind fault = FaultKind::none;
        uint8_t level = 0, stage = 0;
        bool s1ptw = false;
        uint64_t fault_addr = 0;
        uint64_t out = 0;
        uint8_t page_shift = 0;
        uint8_t perms = perm::all;
        bool global = false, snoop = false, dirty_pending = false, cached = false, untranslated_only = false;
    };
    /// Walks one stage configured by c (ctx.s1, ctx.s1_upper or ctx.s2).
    StageOut walk_stage(const TranslationContext& ctx, const StageConfig& c, bool stage2, uint64_t va, uint8_t need,
                        bool write, bool nested);
    /// walk_stage for one concrete format (pt_formats.hpp): one instantiation per
    /// format, so decoding a descriptor is a direct, inlinable call.
    template <class Format>
    StageOut walk_levels(const Format& f, const TranslationContext& ctx, const StageConfig& cfg, bool stage2,
                         uint64_t va, uint8_t need, bool write, bool nested);
    /// Arm TTB0/TTB1: the stage-1 config for va (made effective under TBI), or null with the fault in `fault`.
    const StageConfig* select_range(const TranslationContext& ctx, uint64_t& va, StageOut& fault);
    /// Stage-2 translation of an IPA (table address or final output) through the stage-2 cache.
    StageOut translate_s2(const TranslationContext& ctx, uint64_t ipa, uint8_t need, bool write, bool s1ptw);
    /// Writes back an A/D update; under nesting checks stage-2 write rights on the table page.
    bool update(const TranslationContext& ctx, bool nested, uint64_t desc_ipa, uint64_t desc_pa, uint64_t old_v,
                uint64_t new_v, StageOut& fault);

    /// Whether c passes its format's check_config. Remembers the last valid
    /// config per stage (check_config is a pure function of the config), so
    /// the walks of one context validate it once, not per walk. The memo
    /// compares object bytes: equal bytes mean equal fields, and a config that
    /// differs only in padding bytes is merely checked again.
    bool config_ok(const StageConfig& c, StageConfig& last_valid, bool& have_last) {
        return (have_last && std::memcmp(&c, &last_valid, sizeof c) == 0) || validate(c, last_valid, have_last);
    }
    bool validate(const StageConfig& c, StageConfig& last_valid, bool& have_last);
    static_assert(std::is_trivially_copyable_v<StageConfig>, "config_ok compares StageConfig bytes");

    WalkMemPort& port_;
    StageConfig valid_s1_, valid_s1u_, valid_s2_;
    bool have_valid_s1_ = false, have_valid_s1u_ = false, have_valid_s2_ = false;
    stats::Group group_;
    WalkCache s1_pwc_, s2_pwc_;
    Iotlb s2_tlb_;
    stats::Counter& walks_;
    stats::Counter& faults_;
    stats::Counter& reads_;
    stats::Counter& writes_;
    stats::Counter& s2_translations_;
};

} // namespace iommusim::iommu
