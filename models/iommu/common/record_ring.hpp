// SPDX-License-Identifier: Apache-2.0
#pragma once
// RecordRing: an in-memory ring the unit produces records into and software
// consumes (VT-d page request queue, AMD-Vi event and PPR logs, SMMUv3 EVTQ
// and PRIQ). Plain C++; records are written through a UnitMemPort.
//
// Fidelity — modelled: the ring (ring.hpp: base, size, entry size, positions
// with or without wrap bits); the overflow condition: a record arriving at a
// full ring is dropped and an overflow is raised once until software
// acknowledges it (VT-d PRS.PRO, AMD-Vi EventOverflow/PPROverflow, SMMUv3
// PROD.OVFLG toggled, acknowledged by CONS.OVACKFLG == OVFLG); with
// inhibit_on_overflow (SMMUv3 PRIQ, IHI 0070 8.1) an unacknowledged overflow
// also drops records while there is room again. What a push did
// (written, ring was empty before, overflow newly raised) is returned so the
// family sets its pending bits and sends its interrupt.
// Not modelled here: record formats (family) and the time the write takes
// beyond the memory's latency (the caller charges its write cost).
#include <cstdint>

#include "models/iommu/common/ring.hpp"
#include "models/iommu/common/unit_mem_port.hpp"

namespace iommusim::iommu {

class RecordRing {
public:
    explicit RecordRing(Ring::Index style = Ring::Index::one_slot_free, bool inhibit_on_overflow = false)
        : ring_(style), inhibit_(inhibit_on_overflow) {}

    /// Geometry and positions: the unit produces (prod), software consumes (cons).
    Ring& ring() { return ring_; }
    const Ring& ring() const { return ring_; }

    /// An overflow happened that software has not acknowledged.
    bool overflow_pending() const { return overflow_; }
    /// Toggles at each new overflow (SMMUv3 PROD.OVFLG).
    bool overflow_flag() const { return ovflg_; }
    void ack_overflow() { overflow_ = false; }
    uint64_t records_dropped() const { return dropped_; }

    enum class Outcome : uint8_t { written, overflow, write_error, not_configured };
    struct PushResult {
        Outcome outcome = Outcome::not_configured;
        bool was_empty = false;       ///< the ring held no unconsumed record before this one
        bool overflow_raised = false; ///< this push started a new (unacknowledged) overflow
        bool written() const { return outcome == Outcome::written; }
        /// Software needs to look at the ring (a new record or a new overflow).
        bool interrupt_needed() const { return written() || overflow_raised; }
    };
    /// Appends one record of entry_bytes() bytes at the producer position and advances it.
    PushResult push(UnitMemPort& mem, const void* record, Duration& local);

private:
    Ring ring_;
    bool inhibit_ = false; ///< an unacknowledged overflow drops records (SMMUv3 PRIQ)
    bool overflow_ = false, ovflg_ = false;
    uint64_t dropped_ = 0;
};

} // namespace iommusim::iommu
