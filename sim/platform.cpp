// SPDX-License-Identifier: Apache-2.0
#include "sim/platform.hpp"

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <sys/resource.h>
#include <tlm_utils/simple_initiator_socket.h>

#include "models/host/host.hpp"
#include "models/mem/memory.hpp"
#include "models/pcie/fabric.hpp"
#include "models/pcie/topology.hpp"
#include "models/pcie/traffic_endpoint.hpp"
#include "sim/component_types.hpp"
#include "sim/stats_writer.hpp"

namespace iommusim::sim {

namespace {
/// Without an IOMMU nothing sends host traffic down into the fabric; the
/// root complex's host-side input still needs an initiator bound to it.
struct IdleHostPort : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<IdleHostPort> out{"out"};
    explicit IdleHostPort(sc_core::sc_module_name n) : sc_module(n) {}
};
/// Writes one output file completely or throws OutputError naming it: a full
/// disk or an unwritable folder must not pass for a successful run.
void write_output_file(const std::filesystem::path& file, const std::function<void(std::ostream&)>& write) {
    std::ofstream os(file, std::ios::binary | std::ios::trunc);
    if (!os) throw OutputError(file.string() + ": cannot open for writing: " + std::strerror(errno));
    write(os);
    os.flush();
    if (!os) throw OutputError(file.string() + ": write failed: " + std::strerror(errno));
    os.close();
    if (os.fail()) throw OutputError(file.string() + ": write failed on close: " + std::strerror(errno));
}

/// A model rejecting its params (std::invalid_argument) while being built is
/// bad input like any parse error: it gets the component's JSON path, so that
/// `validate`, which elaborates too, reports it with exit 2.
template <class F>
auto built_at(const std::string& path, F&& build) {
    try {
        return build();
    } catch (const ConfigError&) {
        throw;
    } catch (const std::invalid_argument& e) {
        throw ConfigError(path, e.what());
    }
}
} // namespace

std::string output_name(const std::string& name) {
    std::string out;
    for (char c : name)
        out += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-') ? c : '_';
    if (out.empty() || out[0] == '.') out.insert(out.begin(), '_');
    if (out.size() > 100) {
        uint64_t h = 0xcbf29ce484222325ULL; // FNV-1a of the full name: distinct names stay distinct
        for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ULL;
        char hex[20];
        std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
        out = out.substr(0, 80) + "-" + hex;
    }
    return out;
}

Platform::Platform(PlatformConfig cfg)
    : cfg_(std::move(cfg)), stats_("root"),
      sim_time_(stats_.value("simulated_time_ns", "ns", "simulated time at the end of the run")) {
    memory_ = std::make_unique<mem::Memory>("memory", cfg_.memory, &stats_);
    try {
        topology_ = std::make_unique<pcie::Topology>(pcie::build_topology(cfg_.topology.desc));
    } catch (const std::invalid_argument& e) {
        throw ConfigError("/topology", e.what());
    }
    fabric_ = std::make_unique<pcie::PcieFabric>(*topology_, cfg_.topology.rc, cfg_.topology.sw, &stats_);
    if (!cfg_.iommus.empty()) {
        host_ = std::make_unique<host::Host>("os", cfg_.host, memory_->store(), &stats_);
        host_->iommufd().log().keep_rows(cfg_.outputs.invalidations_csv || cfg_.outputs.trace);
    }
    BuildContext ctx{cfg_, stats_, *memory_, *fabric_, *topology_, host_.get(), keep_alive_};
    for (size_t i = 0; i < cfg_.iommus.size(); ++i)
        for (const auto& t : iommu_types())
            if (t.type == cfg_.iommus[i].type)
                modules_.push_back(built_at("/iommus/" + std::to_string(i), [&] { return t.build(cfg_.iommus[i], ctx); }));
    if (cfg_.topology.iommu.empty()) {
        fabric_->root_complex().upstream_out.bind(memory_->target);
        auto idle = std::make_unique<IdleHostPort>("host_port");
        idle->out.bind(fabric_->root_complex().upstream_in);
        modules_.push_back(std::move(idle));
    }
    for (size_t i = 0; i < cfg_.devices.size(); ++i)
        for (const auto& t : device_types())
            if (t.type == cfg_.devices[i].type)
                modules_.push_back(built_at("/devices/" + std::to_string(i), [&] { return t.build(cfg_.devices[i], ctx); }));
    if (!cfg_.scenario.empty()) {
        auto find = [this](const std::string& name) -> pcie::TrafficEndpoint* {
            for (auto& m : modules_)
                if (m->basename() == name) return dynamic_cast<pcie::TrafficEndpoint*>(m.get());
            return nullptr;
        };
        scenario_ = std::make_unique<ScenarioRunner>(*host_, *topology_, stats_, cfg_.scenario, find);
        scenario_->install();
    }
}

std::vector<std::string> Platform::scenario_failures() const {
    return scenario_ ? scenario_->failures() : std::vector<std::string>{};
}

Platform::~Platform() = default;

HostFigures Platform::run(const std::function<void(double, double)>& progress, const std::function<bool()>& stop_requested) {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    const sc_core::sc_time end(cfg_.duration_us, sc_core::SC_US);
    const sc_core::sc_time step = end / 100;
    // A stop request is seen between slices of at most 1 us simulated (or
    // 1/100000 of the run): a prompt stop without a watcher process in the
    // kernel. Slicing sc_start changes no simulated result.
    const sc_core::sc_time slice = std::min(step, std::max(sc_core::sc_time(1, sc_core::SC_US), end / 100000));
    bool stopped = false;
    while (sc_core::sc_time_stamp() < end && !stopped) {
        sc_core::sc_time next = sc_core::sc_time_stamp() + step;
        if (next > end) next = end;
        while (sc_core::sc_time_stamp() < next) {
            if (stop_requested && stop_requested()) {
                stopped = true;
                break;
            }
            const sc_core::sc_time remaining = next - sc_core::sc_time_stamp();
            sc_core::sc_start(stop_requested ? std::min(slice, remaining) : remaining);
        }
        if (progress)
            progress(sc_core::sc_time_stamp().to_seconds() * 1e6,
                     std::chrono::duration<double>(clock::now() - t0).count());
    }
    sim_time_.set(sc_core::sc_time_stamp().to_seconds() * 1e9);
    HostFigures h;
    h.interrupted = stopped;
    h.wall_seconds = std::chrono::duration<double>(clock::now() - t0).count();
    h.delta_cycles = sc_core::sc_delta_count();
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    h.peak_rss_kib = ru.ru_maxrss;
    return h;
}

json Platform::stats_document(const HostFigures& host) const {
    json doc = json::object();
    doc["platform"] = cfg_.name;
    doc["seed"] = cfg_.seed;
    stats_to_json(stats_, doc);
    if (doc.contains("host")) throw std::logic_error("a stats group is named \"host\", the key reserved for host-side figures");
    // Host-side figures vary run to run: kept apart so the rest is deterministic.
    json h = json::object();
    h["wall_seconds"] = host.wall_seconds;
    h["delta_cycles"] = host.delta_cycles;
    h["sim_us_per_wall_second"] = host.wall_seconds > 0 ? cfg_.duration_us / host.wall_seconds : 0.0;
    h["peak_rss_kib"] = host.peak_rss_kib;
    doc["host"] = std::move(h);
    if (host.interrupted) doc["interrupted"] = true; // simulated_time_ns says where it stopped
    if (host_ && host_->iommufd().log().rows_dropped()) // outputs are memory-bounded: say what they left out
        doc["truncated_outputs"] = {{"invalidation_rows_dropped", host_->iommufd().log().rows_dropped()},
                                    {"invalidation_rows_kept", host::InvalidationLog::kMaxRows}};
    return doc;
}

void Platform::write_outputs(const std::filesystem::path& dir, const json& stats_doc) const {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw OutputError(dir.string() + ": cannot create the output folder: " + ec.message());
    if (cfg_.outputs.stats_json) write_output_file(dir / "stats.json", [&](std::ostream& os) { os << stats_doc.dump(2) << "\n"; });
    if (cfg_.outputs.invalidations_csv && host_)
        write_output_file(dir / "invalidations.csv", [&](std::ostream& os) { host_->iommufd().log().write_csv(os); });
    if (cfg_.outputs.trace && host_)
        write_output_file(dir / "trace.json", [&](std::ostream& os) { host_->iommufd().log().write_trace(os); });
    if (host_) write_output_file(dir / "violations.csv", [&](std::ostream& csv) {
        // every safety violation the oracle saw (the first 1000), with the cache that served it
        csv << "time_ns,device,pasid,iova,pa,served_by,reason\n";
        for (const auto& v : host_->oracle().violations()) {
            char iova[24], pa[24];
            std::snprintf(iova, sizeof iova, "0x%llx", static_cast<unsigned long long>(v.iova));
            std::snprintf(pa, sizeof pa, "0x%llx", static_cast<unsigned long long>(v.pa));
            csv << v.time.as_ns() << ',' << v.device.str() << ',' << (v.pasid ? std::to_string(*v.pasid) : "") << ','
                << iova << ',' << pa << ',' << host::to_string(v.served_by) << ',' << v.reason << '\n';
        }
    });
}

} // namespace iommusim::sim
