// SPDX-License-Identifier: Apache-2.0
#include "sim/platform.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <sys/resource.h>
#include <tlm_utils/multi_passthrough_target_socket.h>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "models/common/sc_asan.hpp"
#include "models/common/sc_time.hpp"
#include "models/host/host.hpp"
#include "models/mem/memory.hpp"
#include "models/pcie/fabric.hpp"
#include "models/pcie/topology.hpp"
#include "models/pcie/traffic_endpoint.hpp"
#include "sim/component_types.hpp"
#include "sim/stats_writer.hpp"
#include "sim/trace_writer.hpp"
#include "sim/viommu_types.hpp"

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

/// A root complex whose root ports are translated by different IOMMUs (Intel DRHD units
/// per root-port group): requests and messages coming up are routed by their requester's
/// bus to the unit owning the root port above it (each root port owns its secondary to
/// subordinate buses); what the units send down is merged into the root complex. No
/// latency of its own: the root complex's steering.
struct RootPortSplit : sc_core::sc_module {
    tlm_utils::simple_target_socket<RootPortSplit> in{"in"};             ///< from the root complex
    tlm_utils::simple_initiator_socket<RootPortSplit> down_out{"down_out"}; ///< into the root complex
    std::vector<std::unique_ptr<tlm_utils::simple_initiator_socket<RootPortSplit>>> out; ///< to each unit
    std::vector<std::unique_ptr<tlm_utils::simple_target_socket<RootPortSplit>>> down_in; ///< from each unit
    struct Range {
        uint8_t first, last;
        size_t unit;
    };
    std::vector<Range> ranges;

    RootPortSplit(sc_core::sc_module_name n, size_t units) : sc_module(n) {
        in.register_b_transport(this, &RootPortSplit::up);
        for (size_t i = 0; i < units; ++i) {
            out.push_back(std::make_unique<tlm_utils::simple_initiator_socket<RootPortSplit>>(
                ("out_" + std::to_string(i)).c_str()));
            down_in.push_back(std::make_unique<tlm_utils::simple_target_socket<RootPortSplit>>(
                ("down_in_" + std::to_string(i)).c_str()));
            down_in.back()->register_b_transport(this, &RootPortSplit::down);
        }
    }
    void up(tlm::tlm_generic_payload& t, sc_core::sc_time& d) {
        pcie::Bdf from;
        if (const auto* e = t.get_extension<pcie::TlpExtension>()) from = e->requester;
        else if (const auto* m = t.get_extension<pcie::MessageExtension>())
            from = m->code == pcie::MessageCode::page_request ? m->page_req.requester : m->inv_cpl.requester;
        for (const Range& r : ranges)
            if (from.bus() >= r.first && from.bus() <= r.last) {
                (*out[r.unit])->b_transport(t, d);
                return;
            }
        t.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE); // below no root port of this complex
    }
    void down(tlm::tlm_generic_payload& t, sc_core::sc_time& d) { down_out->b_transport(t, d); }
};

namespace {
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

void Platform::wire_iommu(const IommuType& t, const ComponentConfig& m, BuildContext& ctx) {
    IommuUnit u = t.build(m, ctx);
    uint16_t segment = 0;
    for (auto& rc : rcs_) { // the root complex it translates (exactly one: platform_config checks)
        if (auto s = splits_.find(rc.name); s != splits_.end()) { // some root ports each
            auto& [split, units] = s->second;
            for (size_t k = 0; k < units.size(); ++k)
                if (units[k] == m.name) {
                    split->out[k]->bind(*u.upstream);
                    u.messages->bind(*split->down_in[k]);
                    segment = rc.segment;
                }
        } else if (rc.iommu == m.name) {
            rc.fabric->root_complex().upstream_out.bind(*u.upstream);
            u.messages->bind(rc.fabric->root_complex().upstream_in);
            segment = rc.segment;
        }
    }
    if (host_) {
        host::IommuDriver& drv = host_->add_iommu(
            m.name, *u.mmio, *u.mem, *mem_target_, [&](const host::DriverEnv& env) { return t.build_driver(m, env); },
            segment, true); // every unit type is an IommuShell: tail writes act at their annotated time
        u.set_observer(&drv.invalidation_observer());
        if (u.wire_host) u.wire_host(*host_, drv);
    } else {
        u.mem->bind(*mem_target_);
    }
    if (trace_ && u.set_trace) u.set_trace(trace_.get());
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
        u.port_iommu = rc.port_iommu;
        u.segment = rc.segment;
        u.canwbs = rc.params.canwbs;
        u.topology = std::make_unique<pcie::Topology>(std::move(topologies[i]));
        u.fabric = std::make_unique<pcie::PcieFabric>(*u.topology, rc.params, cfg_.topology.sw, &stats_);
        rcs_.push_back(std::move(u));
    }
    // Root complexes whose root ports go to different IOMMUs: a split between the root complex
    // and its units, each root port's buses routed to its unit.
    for (auto& rc : rcs_) {
        if (rc.port_iommu.empty()) continue;
        std::vector<std::string> units;
        auto index = [&](const std::string& unit) {
            auto it = std::find(units.begin(), units.end(), unit);
            if (it != units.end()) return static_cast<size_t>(it - units.begin());
            units.push_back(unit);
            return units.size() - 1;
        };
        std::vector<RootPortSplit::Range> ranges;
        for (int n : rc.topology->node(rc.topology->root()).children) {
            const pcie::TopologyNode& port = rc.topology->node(n);
            if (port.kind != pcie::NodeKind::root_port) continue;
            auto it = rc.port_iommu.find(port.name);
            ranges.push_back({port.secondary, port.subordinate, index(it != rc.port_iommu.end() ? it->second : rc.iommu)});
        }
        auto split = std::make_unique<RootPortSplit>((rc.name + "_ports").c_str(), units.size());
        split->ranges = std::move(ranges);
        rc.fabric->root_complex().upstream_out.bind(split->in);
        split->down_out.bind(rc.fabric->root_complex().upstream_in);
        splits_.emplace(rc.name, std::make_pair(split.get(), std::move(units)));
        modules_.push_back(std::move(split));
    }
    // Memory initiators: every IOMMU, and every root complex without one.
    size_t initiators = cfg_.iommus.size();
    for (const auto& rc : rcs_) initiators += !rc.translated();
    mem_target_ = &memory_->target;
    if (initiators > 1) {
        auto fan = std::make_unique<MemoryFanIn>("memory_fan_in");
        fan->out.bind(memory_->target);
        mem_target_ = &fan->in;
        modules_.push_back(std::move(fan));
    }
    if (cfg_.outputs.trace) {
        trace::Limits l;
        l.max_events = cfg_.outputs.trace_max_events;
        l.dma_sample_every = cfg_.outputs.trace_dma_sample_every;
        l.counter_interval = cfg_.outputs.trace_counter_interval;
        trace_ = std::make_unique<trace::Recorder>(l);
    }
    if (!cfg_.iommus.empty()) {
        host_ = std::make_unique<host::Host>("os", cfg_.host, memory_->store(), &stats_);
        host_->iommufd().log().keep_rows(cfg_.outputs.invalidations_csv || cfg_.outputs.trace);
    }
    BuildContext ctx{cfg_, stats_, *memory_, rcs_, host_.get(), keep_alive_};
    for (size_t i = 0; i < cfg_.iommus.size(); ++i)
        for (const auto& t : iommu_types())
            if (t.type == cfg_.iommus[i].type)
                built_at("/iommus/" + std::to_string(i), [&] { wire_iommu(t, cfg_.iommus[i], ctx); });
    for (auto& rc : rcs_) {
        if (rc.translated()) continue;
        rc.fabric->root_complex().upstream_out.bind(*mem_target_);
        auto idle = std::make_unique<IdleHostPort>(rcs_.size() == 1 ? "host_port" : (rc.name + "_host_port").c_str());
        idle->out.bind(rc.fabric->root_complex().upstream_in);
        modules_.push_back(std::move(idle));
    }
    for (size_t i = 0; i < cfg_.devices.size(); ++i)
        for (const auto& t : device_types())
            if (t.type == cfg_.devices[i].type)
                modules_.push_back(built_at("/devices/" + std::to_string(i), [&] { return t.build(cfg_.devices[i], ctx); }));
    if (host_) // user-facing attaches check IOMMU groups (host::Isolation)
        for (const auto& rc : rcs_) {
            if (rc.iommu.empty()) continue;
            const unsigned unit = host_->iommu_index(rc.iommu);
            std::map<int, std::string> members;
            for (int f : rc.topology->functions()) {
                std::string& m = members[rc.topology->node(f).iommu_group];
                m += (m.empty() ? "" : ", ") + rc.topology->node(f).bdf.str();
            }
            for (int f : rc.topology->functions()) {
                const int g = rc.topology->node(f).iommu_group;
                host_->isolation().set_group(unit, rc.topology->node(f).bdf, g,
                                             std::to_string(g) + " of " + rc.name + " (" + members[g] + ")");
            }
        }
    for (size_t i = 0; i < cfg_.vms.size(); ++i) built_at("/vms/" + std::to_string(i), [&] { build_vm(cfg_.vms[i]); });
    if (!cfg_.scenario.empty()) {
        auto find = [this](const std::string& name) -> pcie::TrafficEndpoint* {
            for (auto& m : modules_)
                if (m->basename() == name) return dynamic_cast<pcie::TrafficEndpoint*>(m.get());
            return nullptr;
        };
        auto site = [this](const std::string& device) {
            for (const auto& rc : rcs_)
                if (!rc.topology->functions_of(device).empty()) return DeviceSite{rc.topology.get(), rc.iommu_for(device)};
            return DeviceSite{nullptr, ""};
        };
        scenario_ = std::make_unique<ScenarioRunner>(*host_, site, stats_, cfg_.scenario, find);
        scenario_->set_vm_lookup([this](const std::string& name) -> host::vm::Vm* {
            for (auto& v : vms_)
                if (v->name() == name) return v.get();
            return nullptr;
        });
        scenario_->check_stats(); // every stat now exists: an expect naming another is bad input
        scenario_->install();
    }
}

void Platform::build_vm(const VmConfig& v) {
    std::string type;
    for (const auto& m : cfg_.iommus)
        if (m.name == v.iommu) type = m.type;
    const ViommuType* row = find_viommu_type(type);
    if (!row) throw ConfigError("/iommu", "IOMMU type \"" + type + "\" has no virtual IOMMU model");
    if (v.params.mode == host::vm::ViommuMode::caching_mode && !row->caching_mode)
        throw ConfigError("/vms/" + std::to_string(&v - cfg_.vms.data()) + "/mode",
                          "caching_mode is VT-d's (CAP.CM shadowing); a virtual " + type + " unit is nested");
    const unsigned unit = host_->iommu_index(v.iommu);
    if (v.params.mode == host::vm::ViommuMode::accelerated && !row->accelerated)
        throw ConfigError("/vms/" + std::to_string(&v - cfg_.vms.data()) + "/mode",
                          "accelerated needs a hardware guest queue; the " + type + " model has none");
    sc_core::sc_module* unit_model = nullptr; // the physical unit (a hardware vIOMMU binds to it)
    for (auto& m : modules_)
        if (m->basename() == v.iommu) unit_model = m.get();
    auto build = [row, unit_model](const std::string& name, host::vm::VmmContext& vmm, stats::Group* parent) {
        vmm.unit_model = unit_model;
        return row->build(name, vmm, parent);
    };
    std::unique_ptr<host::vm::Vm> vm;
    try {
        vm = std::make_unique<host::vm::Vm>(v.name, v.params, *host_, unit, memory_->store(), &stats_, build);
    } catch (const host::HostError& e) { // the VM or its vIOMMU refused its parameters (e.g. mode)
        throw ConfigError("/vms/" + std::to_string(&v - cfg_.vms.data()), e.what());
    }
    for (size_t k = 0; k < v.devices.size(); ++k) {
        const VmDeviceConfig& d = v.devices[k];
        const std::string path = "/devices/" + std::to_string(k) + "/device";
        const RootComplexUnit* rc = nullptr;
        for (const auto& r : rcs_)
            if (!r.topology->functions_of(d.device).empty()) rc = &r;
        if (!rc || rc->iommu != v.iommu)
            throw ConfigError(path, "device \"" + d.device + "\" is not behind IOMMU \"" + v.iommu + "\"");
        const auto fns = rc->topology->functions_of(d.device);
        if (d.function >= fns.size()) throw ConfigError(path, "device \"" + d.device + "\" has no function " + std::to_string(d.function));
        const pcie::Bdf rid = rc->topology->node(fns[d.function]).bdf;
        const host::DeviceInfo* info = host_->iommufd().device_info(unit, rid);
        if (!info) throw ConfigError(path, "device \"" + d.device + "\" is not known to the host's IOMMU driver");
        vm->add_device(*info, d.virtual_rid);
    }
    vm->boot_guest_dma();
    vms_.push_back(std::move(vm));
}

std::vector<std::string> Platform::scenario_failures() const {
    return scenario_ ? scenario_->failures() : std::vector<std::string>{};
}

Platform::~Platform() {
    // The model's threads are suspended in wait() at the end of a run; unwinding
    // them releases what their coroutine stacks own (for leak checkers). After
    // the outputs are written, so no result changes.
    unwind_live_threads();
}

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
    if (host_) host_->cpu().set_run_end(from_sc(end));
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
            restore_main_stack_for_asan();
        }
        if (progress)
            progress(sc_core::sc_time_stamp().to_seconds() * 1e6,
                     std::chrono::duration<double>(clock::now() - t0).count());
    }
    // Polls a waiting host thread skipped (CmdQueueDriver) count up to the end time.
    if (host_) host_->cpu().settle();
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
    if (host.interrupted) doc["interrupted"] = true; // simulated_time_ns says where it stopped
    if (host_ && host_->iommufd().log().rows_dropped()) // trace.json is memory-bounded: say what it left out
        doc["truncated_outputs"] = {{"invalidation_rows_dropped", host_->iommufd().log().rows_dropped()},
                                    {"invalidation_rows_kept", host::InvalidationLog::kMaxRows}};
    if (trace_ && trace_->dropped()) {
        doc["truncated_outputs"]["trace_events_dropped"] = trace_->dropped();
        doc["truncated_outputs"]["trace_events_kept"] = trace_->events().size();
    }
    return doc;
}

void Platform::open_streams(const std::filesystem::path& dir) {
    if (!cfg_.outputs.invalidations_csv || !host_) return;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw OutputError(dir.string() + ": cannot create the output folder: " + ec.message());
    inval_csv_ = std::make_unique<std::ofstream>(dir / "invalidations.csv");
    if (!*inval_csv_)
        throw OutputError((dir / "invalidations.csv").string() + ": cannot open for writing: " + std::strerror(errno));
    host_->iommufd().log().stream_csv(inval_csv_.get(), cfg_.outputs.invalidations_csv_max_rows);
    host_->iommufd().log().keep_rows(cfg_.outputs.trace); // rows are kept only for the trace now
}

void Platform::write_outputs(const std::filesystem::path& dir, const json& stats_doc) const {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw OutputError(dir.string() + ": cannot create the output folder: " + ec.message());
    if (cfg_.outputs.stats_json) write_output_file(dir / "stats.json", [&](std::ostream& os) { os << stats_doc.dump(2) << "\n"; });
    if (inval_csv_) { // streamed during the run: complete it and say if any row was lost
        inval_csv_->flush();
        if (inval_csv_->fail())
            throw OutputError((dir / "invalidations.csv").string() + ": write failed: " + std::strerror(errno));
    } else if (cfg_.outputs.invalidations_csv && host_)
        write_output_file(dir / "invalidations.csv", [&](std::ostream& os) { host_->iommufd().log().write_csv(os); });
    if (cfg_.outputs.trace && host_)
        write_output_file(dir / "trace.json", [&](std::ostream& os) {
            os << trace_json(host_->iommufd().log().rows(), trace_.get()).dump() << "\n";
        });
    if (host_) write_output_file(dir / "violations.csv", [&](std::ostream& csv) {
        // every safety violation the oracle saw (the first 1000), with the cache that served it
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
    });
}

} // namespace iommusim::sim
