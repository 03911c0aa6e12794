// SPDX-License-Identifier: Apache-2.0
#pragma once
// Runs a test scenario in an SC_THREAD until it returns (each test case has its
// own process, so one simulation per case).
#include <catch2/catch.hpp>
#include <functional>
#include <systemc>

namespace iommusim::test {

inline void run_scenario(const std::function<void()>& scenario) {
    bool done = false;
    sc_core::sc_spawn([&] {
        scenario();
        done = true;
        sc_core::sc_stop();
    });
    sc_core::sc_start();
    REQUIRE(done);
}

} // namespace iommusim::test
