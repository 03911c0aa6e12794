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
// Times are in microseconds with picosecond digits.
#include <vector>

#include "models/host/inval_log.hpp"
#include "sim/config/schema.hpp"

namespace iommusim::sim {

json invalidation_trace(const std::vector<host::InvalidationLog::Row>& rows);

} // namespace iommusim::sim
