// SPDX-License-Identifier: Apache-2.0
#include "sim/platform.hpp"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sys/resource.h>
#include <tlm_utils/multi_passthrough_target_socket.h>
#include <tlm_utils/simple_initiator_socket.h>

#include "models/host/host.hpp"
#include "models/mem/memory.hpp"
#include "models/pcie/fabric.hpp"
#include "models/pcie/topology.hpp"
#include "models/pcie/traffic_endpoint.hpp"
#include "sim/component_types.hpp"
#include "sim/stats_writer.hpp"
#include "sim/trace_writer.hpp"

namespace iommusim::sim {

namespace {
/// Without an IOMMU nothing sends host traffic down into the fabric; the
/// root complex's host-side input still needs an initiator bound to it.
struct IdleHostPort : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<IdleHostPort> out{"out"};
    explicit IdleHostPort(sc_core::sc_module_name n) : sc_module(n) {}
};

/// Several initiators (IOMMUs' memory ports, root complexes without an IOMMU)
/// in front of the one memory target: passes every call through unchanged,
/// with no latency of its own, and fans DMI invalidations back out. Only
/// present when more than one initiator needs memory.
struct MemoryFanIn : sc_core::sc_module {
    tlm_utils::multi_passthrough_target_socket<MemoryFanIn> in{"in"};
    tlm_utils::simple_initiator_socket<MemoryFanIn> out{"out"};
    explicit MemoryFanIn(sc_core::sc_module_name n) : sc_module(n) {
        in.register_b_transport(this, &MemoryFanIn::b_transport);
        in.register_transport_dbg(this, &MemoryFanIn::transport_dbg);
        in.register_get_direct_mem_ptr(this, &MemoryFanIn::get_direct_mem_ptr);
        out.register_invalidate_direct_mem_ptr(this, &MemoryFanIn::invalidate);
    }
    void b_transport(int, tlm::tlm_generic_payload& gp, sc_core::sc_time& d) { out->b_transport(gp, d); }
    unsigned transport_dbg(int, tlm::tlm_generic_payload& gp) { return out->transport_dbg(gp); }
    bool get_direct_mem_ptr(int, tlm::tlm_generic_payload& gp, tlm::tlm_dmi& dmi) { return out->get_direct_mem_ptr(gp, dmi); }
    void invalidate(sc_dt::uint64 start, sc_dt::uint64 end) {
        for (unsigned i = 0; i < in.size(); ++i) in[static_cast<int>(i)]->invalidate_direct_mem_ptr(start, end);
    }
};
} // namespace

void Platform::wire_iommu(const IommuType& t, const ComponentConfig& m, BuildContext& ctx) {
    IommuUnit u = t.build(m, ctx);
    uint16_t segment = 0;
    for (auto& rc : rcs_) // the root complex it translates (exactly one: platform_config checks)
        if (rc.iommu == m.name) {
            rc.fabric->root_complex().upstream_out.bind(*u.upstream);
            u.messages->bind(rc.fabric->root_complex().upstream_in);
            segment = rc.segment;
        }
    if (host_) {
        host::IommuDriver& drv = host_->add_iommu(
            m.name, *u.mmio, *u.mem, *mem_target_, [&](const host::DriverEnv& env) { return t.build_driver(m, env); },
            segment);
        u.set_observer(&drv.invalidation_observer());
    } else {
        u.mem->bind(*mem_target_);
    }
    modules_.push_back(std::move(u.module));
}

Platform::Platform(PlatformConfig cfg)
    : cfg_(std::move(cfg)), stats_("root"),
      sim_time_(stats_.value("simulated_time_ns", "ns", "simulated time at the end of the run")) {
    memory_ = std::make_unique<mem::Memory>("memory", cfg_.memory, &stats_);
    std::vector<pcie::Topology> topologies = build_topologies(cfg_.topology);
    for (size_t i = 0; i < topologies.size(); ++i) {
        const RootComplexConfig& rc = cfg_.topology.root_complexes[i];
        RootComplexUnit u;
        u.name = rc.desc.name;
        u.iommu = rc.iommu;
        u.segment = rc.segment;
        u.topology = std::make_unique<pcie::Topology>(std::move(topologies[i]));
        u.fabric = std::make_unique<pcie::PcieFabric>(*u.topology, rc.params, cfg_.topology.sw, &stats_);
        rcs_.push_back(std::move(u));
    }
    // Memory initiators: every IOMMU, and every root complex without one.
    size_t initiators = cfg_.iommus.size();
    for (const auto& rc : rcs_) initiators += rc.iommu.empty();
    mem_target_ = &memory_->target;
    if (initiators > 1) {
        auto fan = std::make_unique<MemoryFanIn>("memory_fan_in");
        fan->out.bind(memory_->target);
        mem_target_ = &fan->in;
        modules_.push_back(std::move(fan));
    }
    if (!cfg_.iommus.empty()) {
        host_ = std::make_unique<host::Host>("os", cfg_.host, memory_->store(), &stats_);
        host_->iommufd().log().keep_rows(cfg_.outputs.invalidations_csv || cfg_.outputs.trace);
    }
    BuildContext ctx{cfg_, stats_, *memory_, rcs_, host_.get(), keep_alive_};
    for (const auto& m : cfg_.iommus)
        for (const auto& t : iommu_types())
            if (t.type == m.type) wire_iommu(t, m, ctx);
    for (auto& rc : rcs_) {
        if (!rc.iommu.empty()) continue;
        rc.fabric->root_complex().upstream_out.bind(*mem_target_);
        auto idle = std::make_unique<IdleHostPort>(rcs_.size() == 1 ? "host_port" : (rc.name + "_host_port").c_str());
        idle->out.bind(rc.fabric->root_complex().upstream_in);
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
        auto site = [this](const std::string& device) {
            for (const auto& rc : rcs_)
                if (!rc.topology->functions_of(device).empty()) return DeviceSite{rc.topology.get(), rc.iommu};
            return DeviceSite{nullptr, ""};
        };
        scenario_ = std::make_unique<ScenarioRunner>(*host_, site, stats_, cfg_.scenario, find);
        scenario_->check_stats(); // every stat now exists: an expect naming another is bad input
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
    doc["schema_version"] = kSchemaVersion;
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

void Platform::open_streams(const std::filesystem::path& dir) {
    if (!cfg_.outputs.invalidations_csv || !host_) return;
    std::filesystem::create_directories(dir);
    inval_csv_ = std::make_unique<std::ofstream>(dir / "invalidations.csv");
    host_->iommufd().log().stream_csv(inval_csv_.get(), cfg_.outputs.invalidations_csv_max_rows);
    host_->iommufd().log().keep_rows(cfg_.outputs.trace); // rows are kept only for the trace now
}

void Platform::write_outputs(const std::filesystem::path& dir, const json& stats_doc) const {
    std::filesystem::create_directories(dir);
    if (cfg_.outputs.stats_json) std::ofstream(dir / "stats.json") << stats_doc.dump(2) << "\n";
    if (inval_csv_) inval_csv_->flush();
    else if (cfg_.outputs.invalidations_csv && host_) {
        std::ofstream csv(dir / "invalidations.csv");
        host_->iommufd().log().write_csv(csv);
    }
    if (cfg_.outputs.trace && host_) {
        std::ofstream(dir / "trace.json") << invalidation_trace(host_->iommufd().log().rows()).dump() << "\n";
    }
    if (host_) { // every safety violation the oracle saw (the first 1000), with the cache that served it
        std::ofstream csv(dir / "violations.csv");
        csv << "time_ns,device,pasid,iova,pa,served_by,reason\n";
        for (const auto& v : host_->oracle().violations()) {
            char iova[24], pa[24];
            std::snprintf(iova, sizeof iova, "0x%llx", static_cast<unsigned long long>(v.iova));
            std::snprintf(pa, sizeof pa, "0x%llx", static_cast<unsigned long long>(v.pa));
            char seg[8] = "";
            if (v.segment) std::snprintf(seg, sizeof seg, "%04x:", v.segment); // segment 0 is left implicit
            csv << v.time.as_ns() << ',' << seg << v.device.str() << ',' << (v.pasid ? std::to_string(*v.pasid) : "") << ','
                << iova << ',' << pa << ',' << host::to_string(v.served_by) << ',' << v.reason << '\n';
        }
    }
}

} // namespace iommusim::sim
