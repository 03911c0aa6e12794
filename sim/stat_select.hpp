// SPDX-License-Identifier: Apache-2.0
#pragma once
// Naming one number of the stats tree: a counter or value by its dotted path
// ("nic0.rx_packets"), a histogram field by the histogram's path and a field
// ("os.invalidation.latency" + "p99", or "os.invalidation.latency.p99").
// Shared by scenario `expect` steps, `sweep --stat` and `diff`, so an unknown
// name is the same clear error everywhere (with the closest names).
#include <string>
#include <vector>

#include "models/common/stats.hpp"
#include "sim/config/schema.hpp"

namespace iommusim::sim {

/// The fields of a histogram, in stats.json order.
const std::vector<std::string>& histogram_fields();

struct StatSelector {
    std::string stat;  ///< dotted path of the stat
    std::string field; ///< histogram field, empty for a counter/value
    const stats::Entry* entry = nullptr;
    std::string str() const { return field.empty() ? stat : stat + "." + field; }
};

/// Every stat's dotted path, in tree order.
std::vector<std::string> stat_paths(const stats::Group& root);

/// Resolves `stat` (+ `field` for a histogram). Throws ConfigError at `where`
/// for an unknown stat (suggesting the closest names), a histogram without a
/// field, a field on a scalar, or an unknown field.
StatSelector select_stat(const stats::Group& root, const std::string& stat, const std::string& field,
                         const std::string& where);

/// Resolves "path" or "path.field" (the last part a histogram field).
StatSelector select_stat(const stats::Group& root, const std::string& selector, const std::string& where);

/// The selected number now.
double selected_value(const StatSelector& s);

/// The selected number from a stats.json document, or null when absent.
json selected_json(const json& stats_doc, const StatSelector& s);

} // namespace iommusim::sim
