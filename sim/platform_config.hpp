// SPDX-License-Identifier: Apache-2.0
#pragma once
// The platform file: one JSON document with fixed top-level sections
// (shared/DESIGN.md "Platform file"), parsed once, strictly, into typed
// params structs. Variants are chosen by a "type" field through explicit
// registry tables (component_types.cpp), never by scattered if/else.
#include <any>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "models/mem/memory_params.hpp"
#include "models/mem/sparse_memory.hpp"
#include "models/pcie/tlp.hpp"
#include "sim/config/schema.hpp"
#include "sim/topology_config.hpp"
#include "sim/scenario.hpp"
#include "sim/vm_config.hpp"
#include "models/host/host.hpp"

namespace iommusim::sim {

struct ParamSection;

/// A component chosen by "type": its typed params live in `params`
/// (a std::any holding the params struct of the registered type).
struct ComponentConfig {
    std::string name;
    std::string type;
    std::any params;
};

struct DeviceConfig : ComponentConfig {
    pcie::EndpointDesc endpoint; ///< port, device number, functions, ACS
};

struct OutputsConfig {
    bool stats_json = true;
    bool summary = true;
    bool invalidations_csv = true;
    uint64_t invalidations_csv_max_rows = 0; ///< 0 = every invalidation
    bool trace = false;
    uint64_t trace_max_events = 1'000'000;  ///< model events kept for trace.json (the rest are counted)
    uint32_t trace_dma_sample_every = 1;    ///< every Nth request of each requester is traced
    Duration trace_counter_interval = Duration::ns(100); ///< minimum simulated time between counter samples
};

struct PlatformConfig {
    std::string name;
    uint64_t seed = 1;
    double duration_us = 1000.0;
    mem::MemoryParams memory;
    std::vector<ComponentConfig> iommus;
    TopologyConfig topology;
    std::vector<DeviceConfig> devices;
    host::HostParams host;
    std::vector<VmConfig> vms;
    std::vector<ScenarioStep> scenario;
    OutputsConfig outputs;
};

/// Parses a platform document; throws ConfigError with the JSON path.
PlatformConfig parse_platform(const json& doc);
/// Reads and parses a file; JSON syntax errors become ConfigErrors with line and column.
PlatformConfig load_platform(const std::string& file, const std::vector<std::string>& overrides = {});
/// Largest platform file accepted (a generated platform with thousands of devices is a few MiB).
inline constexpr uint64_t kMaxPlatformFileBytes = uint64_t{64} << 20;
/// Largest trace_file accepted (its rows are held in memory).
inline constexpr uint64_t kMaxTraceFileBytes = uint64_t{256} << 20;
/// Checks that `file` is a regular file of at most `max_bytes` (ConfigError at `path` otherwise).
void check_input_file(const std::string& file, const std::string& path, uint64_t max_bytes);
/// Reads a regular file of at most `max_bytes`; anything else is a ConfigError at `path`.
std::string read_input_file(const std::string& file, const std::string& path, uint64_t max_bytes);
/// Reads a file into JSON (syntax errors with line/column, duplicate keys,
/// overflowing numbers, nesting beyond kMaxJsonDepth) without validating it.
json read_json_file(const std::string& file);
/// Applies "--set path=value" overrides (path in dotted or JSON-pointer form; value parsed as JSON, else a string).
void apply_override(json& doc, const std::string& assignment);
/// The fully resolved document (defaults filled in); parse_platform accepts it unchanged.
json dump_platform(const PlatformConfig& cfg);

/// Every parameter, for `iommusim list-params [SECTION|TYPE]`.
struct ParamSection {
    std::string name;        ///< "memory", "device:dma_engine", "workload:stream", ...
    std::string description;
    std::vector<ParamDoc> params;
};
std::vector<ParamSection> list_params();

} // namespace iommusim::sim
