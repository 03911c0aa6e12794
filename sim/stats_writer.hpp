// SPDX-License-Identifier: Apache-2.0
#pragma once
#include <string>

#include "models/common/stats.hpp"
#include "sim/config/schema.hpp"

namespace iommusim::sim {

/// Version of the layout of stats.json (and of a results folder's run.json):
/// 2 = schema_version added, histograms named by field in expect/sweep.
inline constexpr int kSchemaVersion = 2;

/// The stats tree as JSON: groups are objects; a stat is
/// {"value", "unit", "description"}, a histogram
/// {"count", "min", "mean", "p50", "p90", "p99", "max", "unit", "description"}.
/// Adds the tree's top-level groups and stats to `doc` (an object).
void stats_to_json(const stats::Group& root, json& doc);

/// A short human table (histograms with p50/p99): the headline stats
/// (throughput, latencies, the invalidation breakdown, the oracle, cache hit
/// counts, faults, P2P, scenario results), or with `all` every non-zero stat.
/// The oracle's verdict is always listed, and the summary ends with warnings
/// when most packets were dropped or most DMAs faulted.
std::string stats_summary(const stats::Group& root, bool all = false);

/// A number for people: integers without a fraction, others with four
/// significant digits (three decimals from 1000 up), no exponent in between.
std::string format_number(double v);

} // namespace iommusim::sim
