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
    /// ns; tag lookup inside the device. calibration.md "device ATC lookup": 2-16 ns
    /// (1-4 cycles at 250-500 MHz) [estimate]; one cycle at 250 MHz.
    static constexpr double kAtcLookupNs = 4.0;
    /// ns; fixed time the device needs to process one Invalidate Request (drop the range);
    /// the drain of requests already issued with old translations comes on top (the
    /// Completion waits for them). calibration.md "device processing of an ATS Invalidate
    /// Request": ~100 ns fixed plus the drain [estimate].
    static constexpr double kInvalidationProcessingNs = 100.0;
    /// count; ATS Translation Requests the function keeps in flight (its ATC miss
    /// handling). [estimate]: no published figure for device ATCs. Sized from
    /// calibration.md "ATS translation request round trip" (0.45-0.6 us on an IOMMU
    /// IOTLB hit): a 100 GbE function missing once per 1500-byte packet (8.3 M/s)
    /// keeps 8.3 M/s x 0.6 us = 5 in flight; 16 is about 3x that, so translation
    /// throttles such a device only once a round trip exceeds ~1.9 us (IOMMU walks).
    static constexpr uint32_t kMaxTranslationRequests = 16;

    Bdf rid;                                   ///< requester ID of the function
    bool ats_enabled = true;                   ///< ATS capability Enable (D.6)
    bool pri_enabled = false;                  ///< Page Request Interface enable (D.7)
    iommu::CacheGeometry atc{kAtcEntries, kAtcWays, iommu::Replacement::lru, 11};
    Duration atc_lookup = Duration::ns(kAtcLookupNs);
    Duration invalidation_processing = Duration::ns(kInvalidationProcessingNs);
    /// Translation Requests in flight; an ATC miss finding them all busy waits for the oldest.
    uint32_t max_translation_requests = kMaxTranslationRequests;
    /// ATS Invalidate Queue Depth advertised in the ATS capability (0 means 32).
    uint8_t invalidate_queue_depth = 0;
    /// A device that never answers Invalidate Requests (to exercise ITE).
    bool drop_invalidations = false;
};

} // namespace iommusim::pcie
