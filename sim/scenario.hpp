// SPDX-License-Identifier: Apache-2.0
#pragma once
// Scenario engine: a declarative timeline of host operations in the platform
// file ("scenario": [ steps ]). Each step names an operation (create an IOAS,
// map, attach, unmap, bind SVA, invalidate, wait, expect a stat, ...). Steps
// of one "thread" run in order on one host thread; several threads run
// concurrently and contend for the IOMMU like real CPUs. "at_us" delays a
// step to an absolute time. "expect_error" turns a step into a check that
// the host API refuses it with that error kind. "repeat": N runs a step N
// times in a row (iteration i = 0..N-1); in its string values "{i}",
// "{i%M}", "{i/M}", "{i+M}", "{i*M}" (left to right, e.g. "{i/256+1}")
// stand for the iteration's number, and an integer or size key may be such a
// string, so a million PASIDs is two steps, not a million.
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "models/common/stats.hpp"
#include "sim/config/schema.hpp"

namespace iommusim::host { class Host; }
namespace iommusim::host::vm { class Vm; }
namespace iommusim::pcie { class Topology; class TrafficEndpoint; }

namespace iommusim::sim {

struct ParamSection;

struct ScenarioStep {
    std::string thread = "main";
    std::optional<double> at_us;
    std::string op;
    json args;                              ///< the step's own keys, validated
    std::optional<std::string> expect_error; ///< HostError kind the step must fail with
    std::string path;                       ///< JSON path, for messages
    uint64_t repeat = 1;                    ///< iterations ("repeat"); args may hold {i...} templates
};

/// A repeated step's value for iteration `i`: each "{expr}" replaced by its
/// value (expr = i followed by %M, /M, +M or *M, left to right). Throws
/// std::invalid_argument naming what is wrong with a malformed template.
std::string instantiate(const std::string& s, uint64_t i);

/// Parses and validates /scenario (keys, types, references to names defined by earlier steps, to
/// devices and to IOMMUs; "iommu" is required where several IOMMUs make a step ambiguous; an
/// expect that cannot run before `duration_us`).
std::vector<ScenarioStep> parse_scenario(const json& arr, const std::set<std::string>& devices,
                                         const std::vector<std::string>& iommus, double duration_us);
json dump_scenario(const std::vector<ScenarioStep>& steps);
void document_scenario(std::vector<ParamSection>& out);

/// The owners the scenario's attach / bind_sva steps claim each IOMMU group of `topo` for (an
/// attach without "owner" is the kernel's), one line per group: what `iommusim topology`
/// prints. A group claimed by two owners is marked: the second owner's attach is refused
/// unless the first detached every function before.
std::string render_group_owners(const std::vector<ScenarioStep>& steps, const pcie::Topology& topo);

/// Where a device sits: its root complex's hierarchy and the IOMMU translating it ("" = none).
struct DeviceSite {
    const pcie::Topology* topology = nullptr;
    std::string iommu;
};

/// Runs the steps on host threads. Failures (a failed expect, an unexpected
/// error, a missing expected error) are counted and kept as messages.
class ScenarioRunner {
public:
    /// `device` finds a traffic device by name (for start/stop steps), or null.
    ScenarioRunner(host::Host& host, std::function<DeviceSite(const std::string&)> site, stats::Group& root,
                   std::vector<ScenarioStep> steps, std::function<pcie::TrafficEndpoint*(const std::string&)> device);
    ~ScenarioRunner();
    /// How guest steps ("vm": name) find their VM.
    void set_vm_lookup(std::function<host::vm::Vm*(const std::string&)> f) { vm_lookup_ = std::move(f); }
    /// Adds one host thread per scenario thread (call during elaboration).
    void install();
    /// Checks every expect step's stat (and histogram field) against the
    /// elaborated stats tree; throws ConfigError naming the step.
    void check_stats() const;
    /// Failures so far, then every check (expect, expect_error) that never ran:
    /// a check the run ended before is not a pass.
    std::vector<std::string> failures() const;

private:
    struct State;
    void run_thread(const std::string& name);
    void execute(const ScenarioStep& s, uint64_t iteration);
    /// Failure messages kept at most (a repeated step may fail a million times; all are counted).
    static constexpr size_t kMaxFailureMessages = 1000;

    host::Host& host_;
    std::function<DeviceSite(const std::string&)> site_;
    stats::Group& root_;
    std::vector<ScenarioStep> steps_;
    std::function<pcie::TrafficEndpoint*(const std::string&)> device_;
    std::unique_ptr<State> state_;
    std::function<host::vm::Vm*(const std::string&)> vm_lookup_;
    std::vector<std::string> failures_;
    std::vector<bool> ran_; ///< per step
    stats::Group stats_;
    stats::Counter& steps_run_;
    stats::Counter& failed_;
    stats::Value& reset_at_;
};

} // namespace iommusim::sim
