// SPDX-License-Identifier: Apache-2.0
#pragma once
// Builds the SystemC module tree of a parsed platform and runs it.
// One Platform per process: SystemC elaborates once.
#include <functional>
#include <memory>
#include <string>
#include <systemc>
#include <vector>

#include "models/common/stats.hpp"
#include "sim/platform_config.hpp"

namespace iommusim::mem { class Memory; }
namespace iommusim::pcie { class RootComplex; }

namespace iommusim::sim {

struct HostFigures {
    double wall_seconds = 0;
    uint64_t delta_cycles = 0;
    long peak_rss_kib = 0;
};

class Platform {
public:
    explicit Platform(PlatformConfig cfg);
    ~Platform();

    /// Runs for the configured duration. `progress` (if set) is called about
    /// every 1% of simulated time with the time reached.
    HostFigures run(const std::function<void(double sim_us, double wall_s)>& progress = {});

    const PlatformConfig& config() const { return cfg_; }
    stats::Group& stats() { return stats_; }
    mem::Memory& memory() { return *memory_; }
    /// The full stats document: {"platform", "seed", <module tree>, "host"}.
    json stats_document(const HostFigures& host) const;

private:
    PlatformConfig cfg_;
    stats::Group stats_;
    stats::Value& sim_time_;
    std::unique_ptr<mem::Memory> memory_;
    std::unique_ptr<pcie::RootComplex> rc_;
    std::vector<std::unique_ptr<sc_core::sc_module>> modules_;
};

} // namespace iommusim::sim
