// SPDX-License-Identifier: Apache-2.0
#pragma once
// Parameters of the DMA endpoint with an Address Translation Cache (ATS).
#include <cstdint>

#include "models/common/time.hpp"
#include "models/common/cache_params.hpp"
#include "models/pcie/tlp.hpp"

namespace iommusim::pcie {

struct AtsEndpointParams {
    /// count; no published ATC sizes for NICs/accelerators; 64 x 4-way is a small on-device cache
    static constexpr uint32_t kAtcEntries = 64;
    static constexpr uint32_t kAtcWays = 4;
    /// ns; SRAM tag lookup inside the device (assumed, one device clock at ~1 GHz)
    static constexpr double kAtcLookupNs = 1.0;
    /// ns; time the device needs to process one Invalidate Request (drop range, drain its own
    /// request queues). calibration.md "VT-d device-TLB invalidation, on-die accelerator": 0.1-2 us
    /// end to end; 500 ns is inside that band.
    static constexpr double kInvalidationProcessingNs = 500.0;

    Bdf rid;                                   ///< requester ID of the function
    bool ats_enabled = true;                   ///< ATS capability Enable (D.6)
    bool pri_enabled = false;                  ///< Page Request Interface enable (D.7)
    iommu::CacheGeometry atc{kAtcEntries, kAtcWays, iommu::Replacement::lru, 11};
    Duration atc_lookup = Duration::ns(kAtcLookupNs);
    Duration invalidation_processing = Duration::ns(kInvalidationProcessingNs);
    /// ATS Invalidate Queue Depth advertised in the ATS capability (0 means 32).
    uint8_t invalidate_queue_depth = 0;
    /// A device that never answers Invalidate Requests (to exercise ITE).
    bool drop_invalidations = false;
};

} // namespace iommusim::pcie
