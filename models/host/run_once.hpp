// SPDX-License-Identifier: Apache-2.0
#pragma once
// Device-wide driver setup done once by whichever of a driver's host threads
// (one per queue) runs first; the others wait until it has finished.
#include <systemc>

namespace iommusim::host {

class RunOnce {
public:
    /// Runs `setup` in the first caller's thread; every caller returns once it finished.
    template <class F>
    void operator()(F&& setup) {
        if (!started_) {
            started_ = true;
            setup();
            ready_ = true;
            ready_event_.notify();
        }
        while (!ready_) sc_core::wait(ready_event_);
    }

private:
    bool started_ = false, ready_ = false;
    sc_core::sc_event ready_event_;
};

} // namespace iommusim::host
