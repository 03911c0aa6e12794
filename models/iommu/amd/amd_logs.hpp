// SPDX-License-Identifier: Apache-2.0
#pragma once
// The AMD-Vi event log and PPR log: the register semantics of
// shared/reference/spec-layouts.md B.5-B.7 on the shared RecordRing (16-byte
// records, one slot always free: full when tail + 16 == head).
//
// Fidelity: a record is written at the tail and the tail register advances;
// with the log's interrupt enable (Control.EventIntEn / PPRIntEn) Status.EventLogInt
// / PPRInt is set and an MSI is asked for. A record arriving at a full log is
// dropped, Status.EventOverflow / PPROverflow is set (MSI with the interrupt
// enable) and the log stops (run bit clear, further records dropped) until
// software clears and sets the log enable, as Linux
// amd_iommu_restart_event_logging / _ppr_logging do; QEMU amdvi_log_event also
// stops logging while EventOverflow is set. Records while the log is not running
// are dropped and counted. A record write that hits a memory error is dropped
// (the spec's hardware-error reporting for log writes is not modelled).
#include <array>
#include <cstdint>

#include "models/iommu/amd/amd_regs.hpp"
#include "models/iommu/common/record_ring.hpp"

namespace iommusim::iommu::amd {

class AmdLog {
public:
    enum class Which : uint8_t { event, ppr };
    explicit AmdLog(Which w) : which_(w) {}

    RecordRing& records() { return ring_; }
    const RecordRing& records() const { return ring_; }

    /// Software wrote the log's base register (AmdRegs reset head and tail to 0).
    void on_base(const AmdRegs& regs);
    /// Software moved the head (consumed records).
    void on_head(const AmdRegs& regs);
    /// Software wrote Status: a cleared overflow bit acknowledges the ring's overflow.
    void on_status(const AmdRegs& regs);

    struct Logged {
        bool written = false;
        bool overflow = false;   ///< this record started an overflow (the log stopped)
        bool interrupt = false;  ///< send the unit's MSI
    };
    /// Appends one 128-bit record.
    Logged log(UnitMemPort& mem, const std::array<uint64_t, 2>& record, AmdRegs& regs, Duration& local);

    uint64_t dropped() const { return dropped_; }

private:
    bool running(const AmdRegs& r) const { return which_ == Which::event ? r.event_log_running() : r.ppr_log_running(); }
    RingRegs regs_of(const AmdRegs& r) const { return which_ == Which::event ? r.event_ring() : r.ppr_ring(); }

    Which which_;
    RecordRing ring_{Ring::Index::one_slot_free};
    uint64_t dropped_ = 0;
};

} // namespace iommusim::iommu::amd
