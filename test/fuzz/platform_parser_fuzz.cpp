// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the platform parser, from raw text to a typed PlatformConfig
// (and back through dump_platform). Any input must end in a PlatformConfig or
// a ConfigError; anything else (another exception, a crash, a sanitizer
// report, a hang) is a finding.
#include "sim/platform_config.hpp"
#include "test/fuzz/fuzz_support.hpp"
#include "test/fuzz/json_fuzz.hpp"

IOMMUSIM_FUZZ_SC_MAIN

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace iommusim::sim;
    return iommusim::fuzz::fuzz_json_front_end(data, size, [](const json& doc) { (void)dump_platform(parse_platform(doc)); });
}
