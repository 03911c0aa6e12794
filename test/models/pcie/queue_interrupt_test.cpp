// SPDX-License-Identifier: Apache-2.0
#define SC_INCLUDE_DYNAMIC_PROCESSES // sc_spawn (test/support/sc_run.hpp); no TLM header brings it here
#include <catch2/catch.hpp>

#include "models/common/stats.hpp"
#include "models/pcie/queue_interrupt.hpp"
#include "test/support/sc_run.hpp"

using namespace iommusim;
using sc_core::sc_time;
using sc_core::SC_NS;
using sc_core::SC_US;
using sc_core::SC_ZERO_TIME;

namespace {
/// The time (from now) the host thread takes the vector.
sc_time take_at(pcie::QueueInterrupt& irq) {
    const sc_time t0 = sc_core::sc_time_stamp();
    irq.take();
    return sc_core::sc_time_stamp() - t0;
}
} // namespace

TEST_CASE("a throttled vector is delivered no sooner than its interval after the previous delivery",
          "[sc][pcie][interrupts]") {
    test::run_scenario([] {
        stats::Group g("g");
        stats::Counter& held = g.counter("held", "count", "");
        pcie::QueueInterrupt irq;
        irq.set_throttle(Duration::us(50), &held);
        irq.set_enabled(true, SC_ZERO_TIME);
        CHECK(irq.signal(SC_ZERO_TIME));
        CHECK(take_at(irq) == SC_ZERO_TIME);
        irq.set_enabled(true, SC_ZERO_TIME);
        sc_core::wait(sc_time(10, SC_US));
        CHECK(irq.signal(SC_ZERO_TIME));          // 10 us after the last delivery
        CHECK(take_at(irq) == sc_time(40, SC_US)); // held until 50 us
        CHECK(held.value() == 1);
    });
}

TEST_CASE("a coalesced vector waits for its threshold of completions, or its aggregation time",
          "[sc][pcie][interrupts]") {
    test::run_scenario([] {
        pcie::QueueInterrupt irq;
        irq.set_coalescing(3, Duration::us(100));
        irq.set_enabled(true, SC_ZERO_TIME);
        // Three completions 1 us apart: the third reaches the threshold, delivered then.
        CHECK(irq.signal(SC_ZERO_TIME));
        CHECK_FALSE(irq.signal(sc_time(1, SC_US)));
        CHECK_FALSE(irq.signal(sc_time(2, SC_US)));
        CHECK(take_at(irq) == sc_time(2, SC_US));
        // One completion alone: delivered after the aggregation time.
        irq.set_enabled(true, SC_ZERO_TIME);
        CHECK(irq.signal(SC_ZERO_TIME));
        CHECK(take_at(irq) == sc_time(100, SC_US));
        // Two completions while masked, then the re-arm: the time counts from the first.
        irq.signal(sc_time(10, SC_US));
        irq.signal(sc_time(20, SC_US));
        sc_core::wait(sc_time(30, SC_US));
        CHECK(irq.set_enabled(true, SC_ZERO_TIME));
        CHECK(take_at(irq) == sc_time(80, SC_US)); // 10 us + 100 us, from 30 us
    });
}
