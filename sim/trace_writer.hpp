// SPDX-License-Identifier: Apache-2.0
#pragma once
// trace.json: Chrome/Perfetto trace events (open in ui.perfetto.dev), built
// with the JSON library. Tracks are laid out so that slices nest on each:
//   - one process "host", one thread track per host thread (a NIC driver, a
//     scenario thread, the flush-queue timer): each invalidation it issued,
//     submitted -> observed, with "wait for completion" (status written ->
//     observed) nested in it;
//   - one process per IOMMU, its queue engine's track: each invalidation from
//     first descriptor fetched to wait status written, with "caches" (fetched
//     -> IOMMU caches done) and "device-TLB round trip" nested in it (the
//     engine serves one batch at a time: a wait blocks it).
//   - what models reported to the trace::Recorder: per IOMMU a "requests from
//     bb:dd.f" track per requester (async spans: a device's requests overlap),
//     a track per walk slot with its walks, faults and page requests as
//     instants, counters (queue occupancy, IOTLB fills, translation
//     completions = device ATC fills).
// Times are in microseconds with picosecond digits.
#include <vector>

#include "models/common/trace.hpp"
#include "models/host/inval_log.hpp"
#include "sim/config/schema.hpp"

namespace iommusim::sim {

/// The whole trace: the invalidation rows and, when given, the recorder's events.
json trace_json(const std::vector<host::InvalidationLog::Row>& rows, const trace::Recorder* rec = nullptr);

} // namespace iommusim::sim
