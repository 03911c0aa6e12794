// SPDX-License-Identifier: Apache-2.0
#pragma once
#include <string>

#include "models/common/stats.hpp"
#include "sim/config/schema.hpp"

namespace iommusim::sim {

/// The stats tree as JSON: groups are objects; a stat is
/// {"value", "unit", "description"}, a histogram
/// {"count", "min", "mean", "p50", "p90", "p99", "max", "unit", "description"}.
/// Adds the tree's top-level groups and stats to `doc` (an object).
void stats_to_json(const stats::Group& root, json& doc);

/// A short human table of every non-zero stat (histograms with p50/p99).
std::string stats_summary(const stats::Group& root);

} // namespace iommusim::sim
