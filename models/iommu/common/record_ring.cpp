// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/common/record_ring.hpp"

namespace iommusim::iommu {

RecordRing::PushResult RecordRing::push(UnitMemPort& mem, const void* record, Duration& local) {
    PushResult r;
    if (!ring_.configured()) return r;
    r.was_empty = ring_.empty();
    if (ring_.full() || (inhibit_ && overflow_)) {
        ++dropped_;
        r.outcome = Outcome::overflow;
        if (!overflow_) {
            overflow_ = true;
            ovflg_ = !ovflg_;
            r.overflow_raised = true;
        }
        return r;
    }
    if (!mem.write(ring_.prod_address(), record, ring_.entry_bytes(), local)) {
        r.outcome = Outcome::write_error;
        return r;
    }
    ring_.advance_prod();
    r.outcome = Outcome::written;
    return r;
}

} // namespace iommusim::iommu
