// SPDX-License-Identifier: Apache-2.0
#include "sim/platform.hpp"

#include <chrono>
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
} // namespace

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
    for (const auto& m : cfg_.iommus)
        for (const auto& t : iommu_types())
            if (t.type == m.type) modules_.push_back(t.build(m, ctx));
    if (cfg_.topology.iommu.empty()) {
        fabric_->root_complex().upstream_out.bind(memory_->target);
        auto idle = std::make_unique<IdleHostPort>("host_port");
        idle->out.bind(fabric_->root_complex().upstream_in);
        modules_.push_back(std::move(idle));
    }
    for (const auto& d : cfg_.devices)
        for (const auto& t : device_types())
            if (t.type == d.type) modules_.push_back(t.build(d, ctx));
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

HostFigures Platform::run(const std::function<void(double, double)>& progress) {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    const sc_core::sc_time end(cfg_.duration_us, sc_core::SC_US);
    const sc_core::sc_time step = end / 100;
    while (sc_core::sc_time_stamp() < end) {
        sc_core::sc_time next = sc_core::sc_time_stamp() + step;
        if (next > end) next = end;
        sc_core::sc_start(next - sc_core::sc_time_stamp());
        if (progress)
            progress(sc_core::sc_time_stamp().to_seconds() * 1e6,
                     std::chrono::duration<double>(clock::now() - t0).count());
    }
    sim_time_.set(sc_core::sc_time_stamp().to_seconds() * 1e9);
    HostFigures h;
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
    return doc;
}

void Platform::write_outputs(const std::filesystem::path& dir, const json& stats_doc) const {
    std::filesystem::create_directories(dir);
    if (cfg_.outputs.stats_json) std::ofstream(dir / "stats.json") << stats_doc.dump(2) << "\n";
    if (cfg_.outputs.invalidations_csv && host_) {
        std::ofstream csv(dir / "invalidations.csv");
        host_->iommufd().log().write_csv(csv);
    }
    if (cfg_.outputs.trace && host_) {
        std::ofstream trace(dir / "trace.json");
        host_->iommufd().log().write_trace(trace);
    }
    if (host_) { // every safety violation the oracle saw (the first 1000), with the cache that served it
        std::ofstream csv(dir / "violations.csv");
        csv << "time_ns,device,pasid,iova,pa,served_by,reason\n";
        for (const auto& v : host_->oracle().violations()) {
            char iova[24], pa[24];
            std::snprintf(iova, sizeof iova, "0x%llx", static_cast<unsigned long long>(v.iova));
            std::snprintf(pa, sizeof pa, "0x%llx", static_cast<unsigned long long>(v.pa));
            csv << v.time.as_ns() << ',' << v.device.str() << ',' << (v.pasid ? std::to_string(*v.pasid) : "") << ','
                << iova << ',' << pa << ',' << host::to_string(v.served_by) << ',' << v.reason << '\n';
        }
    }
}

} // namespace iommusim::sim
