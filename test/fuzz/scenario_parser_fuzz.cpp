// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the scenario parser (/scenario steps) on its own, so the
// fuzzer spends its time on step syntax rather than on platform sections.
#include <limits>

#include "sim/scenario.hpp"
#include "test/fuzz/fuzz_support.hpp"
#include "test/fuzz/json_fuzz.hpp"

IOMMUSIM_FUZZ_SC_MAIN

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace iommusim::sim;
    return iommusim::fuzz::fuzz_json_front_end(
        data, size, [](const json& doc) { (void)dump_scenario(parse_scenario(doc, {"nic0", "acc0", "dma0"}, {"dmar0"},
                                                                std::numeric_limits<double>::infinity())); });
}
