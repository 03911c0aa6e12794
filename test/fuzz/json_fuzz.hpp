// SPDX-License-Identifier: Apache-2.0
#pragma once
// Fuzzing a JSON front end: the input is text; what the strict reader accepts
// goes to `parse`, which must end in a value or a ConfigError (anything else
// escapes and is a finding).
#include <cstddef>
#include <cstdint>
#include <string>

#include "sim/config/json_reader.hpp"

namespace iommusim::fuzz {
template <class Parse>
int fuzz_json_front_end(const uint8_t* data, size_t size, Parse&& parse) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    sim::JsonProblem problem;
    auto doc = sim::parse_json_text(text, problem);
    if (!doc) return 0;
    try {
        parse(*doc);
    } catch (const sim::ConfigError&) {
    }
    return 0;
}
} // namespace iommusim::fuzz
