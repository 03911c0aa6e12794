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
        if (!enabled_) {
            pending_ = true;
            return false;
        }
        raise(delay);
        return true;
    }
    /// The driver enables (unmasks) or disables the vector; unmasking with a
    /// completion pending raises it at once. Returns whether it was raised.
    bool set_enabled(bool on, const sc_core::sc_time& delay) {
        enabled_ = on;
        if (on && pending_) {
            raise(delay);
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
    /// The host consumed every completion: a completion posted while masked needs no interrupt any more.
    void forget_pending() { pending_ = false; }
    /// Blocks the calling thread until the vector was raised and has arrived, and takes it.
    void take() {
        while (!asserted_) sc_core::wait(event_);
        if (at_ > kernel_now()) sc_core::wait(from_now(at_));
        asserted_ = false;
    }

private:
    void raise(const sc_core::sc_time& delay) {
        enabled_ = false; // masked until the driver's unmask
        pending_ = false;
        asserted_ = true;
        at_ = kernel_now() + from_sc(delay);
        if (at_ < next_allowed_) { // the interval since the last raise has not passed yet
            at_ = next_allowed_;
            if (held_) held_->inc();
        }
        next_allowed_ = at_ + interval_;
        event_.notify(from_now(at_));
    }
    bool enabled_ = false, pending_ = false, asserted_ = false;
    Duration at_;
    Duration interval_;
    Duration next_allowed_;           ///< the earliest time of the next raise
    stats::Counter* held_ = nullptr;
    sc_core::sc_event event_;
};

} // namespace iommusim::pcie
