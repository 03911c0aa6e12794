// SPDX-License-Identifier: Apache-2.0
#pragma once
// Fidelity: the shared translation engine a family shell drives once it has a
// TranslationContext: IOTLB lookup by (domain tag, address-space tag, IOVA,
// kind), walk on a miss (walker.hpp, with walk caches and the stage-2 cache),
// fill on success, rights check on a hit. Invalidation applies one generic
// scope to every cache. A hit that does not grant the access, or a write to an
// entry whose leaf is still clean under hardware dirty tracking, walks again
// so the architected fault (stage, level) or the dirty update comes from the
// tables. Faults are not cached. Pass-through contexts translate 1:1 without
// any memory access. Not modelled here: lookup latency and walk-slot
// contention (the SystemC shell charges them), request admission checks.
#include "models/common/stats.hpp"
#include "models/iommu/common/iotlb.hpp"
#include "models/iommu/common/translation.hpp"
#include "models/iommu/common/translation_core_params.hpp"
#include "models/iommu/common/walker.hpp"

namespace iommusim::iommu {

struct TranslateResult {
    Translation t;
    bool iotlb_hit = false;     ///< served from the IOTLB without a walk
    uint64_t reads = 0, writes = 0;
    Duration latency;           ///< memory latency of the walk (0 on a hit)
};

class TranslationCore {
public:
    TranslationCore(WalkMemPort& port, const TranslationCoreParams& p, stats::Group* parent);

    TranslateResult translate(const TranslationContext& ctx, const AccessRequest& req);
    /// Applies a scope to the IOTLB, walk caches and stage-2 cache; returns entries removed.
    uint64_t invalidate(const InvalidationScope& s);

    Iotlb& iotlb() { return iotlb_; }
    Walker& walker() { return walker_; }

private:
    stats::Group group_;
    Iotlb iotlb_;
    Walker walker_;
};

} // namespace iommusim::iommu
