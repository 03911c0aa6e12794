// SPDX-License-Identifier: Apache-2.0
#pragma once
// Builds the SystemC module tree of a parsed platform and runs it.
// One Platform per process: SystemC elaborates once.
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <systemc>
#include <vector>

#include "models/common/stats.hpp"
#include "models/host/host.hpp"
#include "models/host/vm/vm.hpp"
#include "sim/component_types.hpp"
#include "sim/platform_config.hpp"

namespace iommusim::mem { class Memory; }
namespace iommusim::pcie { class PcieFabric; class Topology; }
namespace iommusim::host { class Host; }

namespace iommusim::sim {


struct HostFigures {
    double wall_seconds = 0;
    uint64_t delta_cycles = 0;
    long peak_rss_kib = 0;
    bool interrupted = false; ///< stopped early by `stop_requested` (a signal), at the simulated time reached
};

/// A folder/file name for `name`: characters outside [A-Za-z0-9._-] become
/// '_', and a name longer than 100 characters keeps its first 80 plus a hash
/// of the whole, so that any platform name gives a usable, distinct folder.
std::string output_name(const std::string& name);
/// Writes one output file completely or throws OutputError naming it.
void write_output_file(const std::filesystem::path& file, const std::function<void(std::ostream&)>& write);

/// An output file could not be written (full disk, read-only folder, ...).
class OutputError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct RootPortSplit;

class Platform {
public:
    explicit Platform(PlatformConfig cfg);
    ~Platform();

    /// Runs for the configured duration. `progress` (if set) is called about
    /// every 1% of simulated time with the time reached. `stop_requested` (if
    /// set) is polled between short slices of simulated time; when it returns
    /// true the run ends there (HostFigures::interrupted) and everything
    /// simulated so far can still be written.
    HostFigures run(const std::function<void(double sim_us, double wall_s)>& progress = {},
                    const std::function<bool()>& stop_requested = {});

    const PlatformConfig& config() const { return cfg_; }
    stats::Group& stats() { return stats_; }
    mem::Memory& memory() { return *memory_; }
    host::Host* host() { return host_.get(); }
    /// The hierarchy of the first root complex.
    const pcie::Topology& topology() const { return *rcs_.front().topology; }
    const std::vector<RootComplexUnit>& root_complexes() const { return rcs_; }
    /// Scenario failures (failed expects, unexpected or missing errors), in order.
    std::vector<std::string> scenario_failures() const;
    /// The full stats document: {"platform", "seed", <module tree>, "host"}.
    json stats_document(const HostFigures& host) const;
    /// Opens the outputs written while the run goes (invalidations.csv) in
    /// `dir`; call before run(). Without it they are written by write_outputs.
    void open_streams(const std::filesystem::path& dir);
    /// Writes stats.json and the per-event outputs the outputs section asks for;
    /// throws OutputError naming the file when one cannot be written completely.
    void write_outputs(const std::filesystem::path& dir, const json& stats_doc) const;

private:
    /// Builds one IOMMU through its registry row and wires it to its root complex, memory and the host.
    void wire_iommu(const IommuType& t, const ComponentConfig& m, BuildContext& ctx);
    /// Builds one VM: its virtual IOMMU (the physical unit's family), its passed-through devices.
    void build_vm(const VmConfig& v);
    PlatformConfig cfg_;
    stats::Group stats_;
    stats::Value& sim_time_;
    std::unique_ptr<mem::Memory> memory_;
    std::vector<RootComplexUnit> rcs_;
    /// Root complexes whose root ports different IOMMUs translate: their split and its units in
    /// output order.
    std::map<std::string, std::pair<RootPortSplit*, std::vector<std::string>>> splits_;
    /// Where memory initiators bind: the memory, or a fan-in in front of it.
    host::MemoryTarget* mem_target_ = nullptr;
    std::unique_ptr<host::Host> host_;
    std::vector<std::unique_ptr<sc_core::sc_module>> modules_;
    std::vector<std::shared_ptr<void>> keep_alive_;
    std::vector<std::unique_ptr<host::vm::Vm>> vms_; ///< after host_: a VM uses the host
    std::unique_ptr<ScenarioRunner> scenario_;
    std::unique_ptr<trace::Recorder> trace_;   ///< outputs.trace: what models report for trace.json
    std::unique_ptr<std::ofstream> inval_csv_; ///< streamed invalidations.csv (open_streams)
};

} // namespace iommusim::sim
