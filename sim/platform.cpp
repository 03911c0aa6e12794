// SPDX-License-Identifier: Apache-2.0
#include "sim/platform.hpp"

#include <chrono>
#include <sys/resource.h>

#include "models/mem/memory.hpp"
#include "models/pcie/root_complex.hpp"
#include "sim/component_types.hpp"
#include "sim/stats_writer.hpp"

namespace iommusim::sim {

Platform::Platform(PlatformConfig cfg)
    : cfg_(std::move(cfg)), stats_("root"),
      sim_time_(stats_.value("simulated_time_ns", "ns", "simulated time at the end of the run")) {
    memory_ = std::make_unique<mem::Memory>("memory", cfg_.memory, &stats_);
    rc_ = std::make_unique<pcie::RootComplex>(cfg_.root_complex.name.c_str(), cfg_.root_complex.params, &stats_);
    BuildContext ctx{cfg_, stats_, *memory_, *rc_};

    bool host_bound = false;
    for (const auto& m : cfg_.iommus) {
        for (const auto& t : iommu_types())
            if (t.type == m.type) modules_.push_back(t.build(m, ctx));
        host_bound |= m.name == cfg_.root_complex.iommu;
    }
    if (!host_bound) rc_->host.bind(memory_->target);

    // Depth-first enumeration: root port i's secondary bus is the next free
    // bus number; each device below it takes the next device number.
    std::vector<uint8_t> next_dev(cfg_.root_complex.root_ports.size(), 0);
    std::vector<uint8_t> bus_of;
    uint8_t next_bus = 1;
    for (const auto& rp : cfg_.root_complex.root_ports) {
        if (rp.bus) bus_of.push_back(*rp.bus);
        else {
            bool used;
            do {
                used = false;
                for (const auto& o : cfg_.root_complex.root_ports) used |= o.bus && *o.bus == next_bus;
                if (used) ++next_bus;
            } while (used);
            bus_of.push_back(next_bus++);
        }
    }
    for (const auto& d : cfg_.devices) {
        size_t port = 0;
        while (cfg_.root_complex.root_ports[port].name != d.port) ++port;
        pcie::Bdf rid = d.requester ? *d.requester : pcie::Bdf(bus_of[port], next_dev[port]++, 0);
        for (const auto& t : device_types())
            if (t.type == d.type) modules_.push_back(t.build(d, rid, ctx));
    }
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
    // Host-side figures vary run to run: kept apart so the rest is deterministic.
    json h = json::object();
    h["wall_seconds"] = host.wall_seconds;
    h["delta_cycles"] = host.delta_cycles;
    h["sim_us_per_wall_second"] = host.wall_seconds > 0 ? cfg_.duration_us / host.wall_seconds : 0.0;
    h["peak_rss_kib"] = host.peak_rss_kib;
    doc["host"] = std::move(h);
    return doc;
}

} // namespace iommusim::sim
