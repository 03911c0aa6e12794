// SPDX-License-Identifier: Apache-2.0
#pragma once
// Phase timestamps of queued invalidation, reported by an IOMMU's queue
// engine so that the host can break invalidation latency down
// (submitted -> fetched -> caches done -> device-TLB request sent ->
// completion received -> wait status written -> driver observed).
// Descriptors are identified by their sequence number: the count of
// descriptors the unit has fetched since queued invalidation was enabled
// (software knows it from how many it has written). Family-neutral: VT-d
// descriptors, AMD commands and SMMUv3 commands are all "descriptors" here.
#include <cstdint>

#include "models/common/time.hpp"
#include "models/pcie/tlp.hpp"

namespace iommusim::iommu {

enum class InvalPhase : uint8_t {
    fetched,          ///< the descriptor was read from the queue in memory
    caches_done,      ///< the unit's own caches (IOTLB, walk, context/PASID) are invalidated
    devtlb_sent,      ///< an ATS Invalidate Request left for `device`
    devtlb_completed, ///< the Invalidate Completion from `device` arrived
    wait_done,        ///< a wait/sync descriptor completed (status written / MSI sent)
};

class InvalidationObserver {
public:
    virtual ~InvalidationObserver() = default;
    virtual void on_phase(uint64_t seq, InvalPhase phase, Duration at, pcie::Bdf device) = 0;
    /// The unit raised a queue error (invalid command, ATS time-out, unknown ITag) now.
    virtual void on_queue_error() {}
    /// Called when a unit that reports every wait_done at the kernel time its status write
    /// becomes visible, and every queue error (on_queue_error), attaches this observer.
    virtual void on_attached_to_unit() {}
};

} // namespace iommusim::iommu
