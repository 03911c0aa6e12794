// SPDX-License-Identifier: Apache-2.0
#pragma once
// Reading a stat out of a stats.json document.
#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>

namespace iommusim::test {

/// The "value" of the stat at `path` ({"os", "oracle", "checked"}).
inline uint64_t stat_value(const nlohmann::ordered_json& s, std::initializer_list<const char*> path) {
    const nlohmann::ordered_json* j = &s;
    for (const char* k : path) j = &(*j)[k];
    return (*j)["value"].get<uint64_t>();
}

} // namespace iommusim::test
