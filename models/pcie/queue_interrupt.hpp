// SPDX-License-Identifier: Apache-2.0
#pragma once
// The interrupt of one device queue as the host sees it: an MSI(-X) vector
// whose cause masks itself when raised (82599 EIAM auto-mask) or that the
// driver masks (NVMe INTMS) while it polls, and that is raised again on
// unmask if a completion arrived meanwhile. The MSI is not modelled as a
// memory write: the host thread blocks in take() until the raised vector
// reaches it (at the completion's time plus the delay given), then pays its
// own interrupt latency.
// Throttling (82599 EITR, §7.3.2.1): with an interval set, a vector is not
// raised again until that interval has passed since its last raise; a raise
// due earlier is held until then (and counted).
// Coalescing (NVMe Interrupt Coalescing, feature 08h, §5.21.1.8): with a
// threshold of N > 1 entries and an aggregation time, a vector raised by a
// completion is delivered once N completions are pending or the time has
// passed since the first of them, whichever comes first; a vector re-armed
// with completions pending applies the same rule to them.
#include <algorithm>
#include <systemc>

#include "models/common/stats.hpp"

#include "models/common/sc_time.hpp"
#include "models/common/time.hpp"

namespace iommusim::pcie {

class QueueInterrupt {
public:
    /// A completion was posted at local offset `delay`: raise the vector if
    /// enabled (it then masks itself), else remember it. Returns whether it was raised.
    bool signal(const sc_core::sc_time& delay) {
        const Duration t = kernel_now() + from_sc(delay);
        if (asserted_ && at_ > t && threshold_ > 1) { // a coalesced interrupt waits for its time
            if (++coalesced_ >= threshold_) deliver_at(t); // the threshold is reached: now
            return false;
        }
        if (!enabled_) {
            if (!pending_) pending_since_ = t;
            pending_ = true;
            ++pending_count_;
            return false;
        }
        coalesced_ = 1;
        raise(coalesced_ >= threshold_ ? t : t + aggregation_time_);
        return true;
    }
    /// The driver enables (unmasks) or disables the vector; unmasking with a
    /// completion pending raises it at once. Returns whether it was raised.
    bool set_enabled(bool on, const sc_core::sc_time& delay) {
        enabled_ = on;
        if (on && pending_) {
            const Duration t = kernel_now() + from_sc(delay);
            coalesced_ = pending_count_;
            raise(coalesced_ >= threshold_ ? t : std::max(t, pending_since_ + aggregation_time_));
            return true;
        }
        return false;
    }
    bool enabled() const { return enabled_; }
    /// Minimum interval between two raises (0 = none); `held` counts the raises it delayed.
    void set_throttle(Duration interval, stats::Counter* held) {
        interval_ = interval;
        held_ = held;
    }
    Duration throttle() const { return interval_; }
    /// Coalescing: deliver once `threshold` completions are pending (1 = each) or `time`
    /// after the first of them.
    void set_coalescing(uint32_t threshold, Duration time) {
        threshold_ = std::max<uint32_t>(1, threshold);
        aggregation_time_ = time;
    }
    /// The host consumed every completion: a completion posted while masked needs no interrupt any more.
    void forget_pending() {
        pending_ = false;
        pending_count_ = 0;
    }
    /// Blocks the calling thread until the vector was raised and has arrived, and takes it.
    void take() {
        for (;;) { // a coalesced delivery may move earlier while this waits
            if (!asserted_) sc_core::wait(event_);
            else if (at_ > kernel_now()) sc_core::wait(from_now(at_), event_);
            else break;
        }
        asserted_ = false;
    }

private:
    void raise(Duration at) {
        enabled_ = false; // masked until the driver's unmask
        pending_ = false;
        pending_count_ = 0;
        asserted_ = true;
        floor_ = next_allowed_; // the throttle counts from the previous delivery
        deliver_at(at);
    }
    /// (Re)schedules the raised vector's delivery (a coalesced one may move earlier).
    void deliver_at(Duration at) {
        at_ = at;
        if (at_ < floor_) { // the throttle interval since the last delivery has not passed yet
            at_ = floor_;
            if (held_) held_->inc();
        }
        next_allowed_ = at_ + interval_;
        event_.notify(from_now(at_));
    }
    bool enabled_ = false, pending_ = false, asserted_ = false;
    Duration at_;
    Duration interval_;
    Duration next_allowed_;           ///< the earliest delivery of the next raise
    Duration floor_;                  ///< the earliest delivery of the current one
    stats::Counter* held_ = nullptr;
    uint32_t threshold_ = 1;          ///< coalescing: completions per interrupt (1 = no coalescing)
    Duration aggregation_time_;
    uint32_t coalesced_ = 0;          ///< completions behind the interrupt waiting for its time
    uint32_t pending_count_ = 0;      ///< completions while masked
    Duration pending_since_;          ///< the first of them
    sc_core::sc_event event_;
};

} // namespace iommusim::pcie
