// SPDX-License-Identifier: Apache-2.0
#include "sim/component_types.hpp"

#include "models/mem/memory.hpp"
#include "models/host/nic_driver.hpp"
#include "models/iommu/common/iommu_shell.hpp"
#include "models/host/nvme_driver.hpp"
#include "models/pcie/ats_traffic_endpoint.hpp"
#include "models/pcie/fabric.hpp"
#include "models/pcie/nic_endpoint.hpp"
#include "models/pcie/nvme_endpoint.hpp"
#include "models/pcie/traffic_endpoint.hpp"
#include "models/pcie/workload.hpp"
#include "sim/iommu_types.hpp"

namespace iommusim::sim {

uint64_t derive_seed(uint64_t seed, const std::string& name, size_t index) {
    uint64_t h = 0xcbf29ce484222325ULL ^ seed; // FNV-1a: stable across runs and hosts
    for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ULL;
    h = (h ^ index) * 0x100000001b3ULL;
    return h ? h : 1;
}

void reseed_cache(iommu::CacheGeometry& g, uint64_t platform_seed, const std::string& name) {
    g.seed = derive_seed(platform_seed, name, g.seed);
}

namespace {

// ---- workloads ------------------------------------------------------------

const Schema<pcie::WorkloadParams>& workload_schema() {
    static const auto s = [] {
        using P = pcie::WorkloadParams;
        Schema<P> sc;
        sc.integer("function", &P::function, "", "function issuing the stream: 0 = first PF, n = n-th further function or VF")
            .integer("seed", &P::seed, "", "stream seed; 0 = derived from the platform seed, device name and index")
            .integer("requests", &P::requests, "operations", "DMA operations to issue; 0 = until the end")
            .number("rate_gbps", &P::rate_bytes_per_ns, "GB/s", "issue-rate cap of this stream; 0 = unlimited")
            .integer("read_percent", &P::read_percent, "%", "share of reads (sequential, random_uniform, zipf, strided)", 0, 100)
            .integer("no_snoop_percent", &P::no_snoop_percent, "%", "share of requests with the No Snoop attribute (PCIe Base 2.2.6.5); default 0", 0, 100)
            .integer("privileged_percent", &P::privileged_percent, "%", "share of PASID requests with Privileged Mode Requested; needs pasid.privileged; default 0", 0, 100)
            .integer("execute_percent", &P::execute_percent, "%", "share of PASID reads with Execute Requested; needs pasid.execute; default 0", 0, 100)
            .integer("base", &P::base, "address", "IOVA of the region (descriptor ring / job queue for nic_ring, accel_queue); default 4 GiB")
            .size("region_bytes", &P::region_bytes, "working set; default 1 MiB", 64)
            .integer("request_bytes", &P::request_bytes, "bytes", "bytes per operation; default 256 = MPS", 1, 1u << 20)
            .size("stride_bytes", &P::stride_bytes, "strided: distance between operations; default 4 KiB (one page: worst case for the IOTLB)")
            .number("zipf_s", &P::zipf_s, "", "zipf exponent; default 0.99 (YCSB)", 0.0, 10.0)
            .size("item_bytes", &P::item_bytes, "zipf item size; default 4 KiB")
            .boolean("tx", &P::tx, "nic_ring: TX (device reads buffers) instead of RX")
            .integer("ring_entries", &P::ring_entries, "entries", "nic_ring descriptors; default 256", 1, 1u << 20)
            .integer("descriptor_bytes", &P::descriptor_bytes, "bytes", "nic_ring descriptor size; default 16", 1, 4096)
            .integer("packet_bytes", &P::packet_bytes, "bytes", "nic_ring packet size; default 1500 (MTU)", 1, 1u << 20)
            .integer("buffer_bytes", &P::buffer_bytes, "bytes", "nic_ring buffer size; default 2048", 1, 1u << 20)
            .integer("buffer_base", &P::buffer_base, "address", "nic_ring buffers / accel_queue source IOVA")
            .boolean("remap_per_packet", &P::remap_per_packet, "nic_ring: a fresh IOVA per packet (a strict host's DMA-API pattern)")
            .integer("remap_window_packets", &P::remap_window_packets, "packets", "IOVA window walked before reuse; default 65536", 1, 1u << 30)
            .integer("job_bytes", &P::job_bytes, "bytes", "accel_queue job size; default 64 KiB (DSA memmove)", 1, 1u << 30)
            .integer("job_descriptor_bytes", &P::job_descriptor_bytes, "bytes", "accel_queue descriptor size; default 64 (DSA)", 1, 4096);
        return sc;
    }();
    return s;
}

pcie::WorkloadParams parse_workload(const json& w, const std::string& path, const std::string& device) {
    read::object(w, path);
    std::vector<std::string> allowed = {"type", "pasids", "pasid_weights", "trace_file", "target"};
    for (auto& k : workload_schema().keys()) allowed.push_back(k);
    check_keys(w, path, allowed);
    pcie::WorkloadParams p;
    p.seed = 0;
    if (!w.contains("type")) throw ConfigError(path, "missing key \"type\" of the workload");
    try {
        p.kind = pcie::workload_kind_from_name(read::string(w["type"], path + "/type"));
    } catch (const std::invalid_argument& e) {
        throw ConfigError(path + "/type", e.what());
    }
    json own = w;
    own.erase("type");
    own.erase("pasids");
    own.erase("pasid_weights");
    own.erase("trace_file");
    own.erase("target");
    workload_schema().parse(own, path, p);
    if (w.contains("pasids")) {
        const json& a = read::array(w["pasids"], path + "/pasids");
        for (size_t i = 0; i < a.size(); ++i)
            p.pasid.pasids.push_back(static_cast<uint32_t>(read::u64(a[i], path + "/pasids/" + std::to_string(i), 0, pcie::kPasidMask)));
    }
    if (w.contains("pasid_weights")) {
        const json& a = read::array(w["pasid_weights"], path + "/pasid_weights");
        for (size_t i = 0; i < a.size(); ++i)
            p.pasid.weights.push_back(read::number(a[i], path + "/pasid_weights/" + std::to_string(i), 0, 1e12));
        if (p.pasid.weights.size() != p.pasid.pasids.size())
            throw ConfigError(path + "/pasid_weights", "expected one weight per entry of \"pasids\"");
    }
    if (p.kind == pcie::WorkloadKind::trace) {
        if (!w.contains("trace_file")) throw ConfigError(path, "a trace workload needs \"trace_file\"");
        const std::string file = read::string(w["trace_file"], path + "/trace_file");
        check_input_file(file, path + "/trace_file", kMaxTraceFileBytes);
        try {
            p.trace = pcie::trace_for_device(pcie::load_trace_csv(file), device);
        } catch (const std::exception& e) {
            throw ConfigError(path + "/trace_file", e.what());
        }
    } else if (w.contains("trace_file")) {
        throw ConfigError(path + "/trace_file", "only a \"trace\" workload takes a trace file");
    }
    try { // the generator's own checks, the same the device runs when it is built
        (void)pcie::make_workload(p);
    } catch (const std::invalid_argument& e) {
        throw ConfigError(path, e.what());
    }
    return p;
}

std::string kind_name(pcie::WorkloadKind k) {
    for (const auto& i : pcie::workload_kinds())
        if (i.kind == k) return i.name;
    return "?";
}

json dump_workload(const pcie::WorkloadParams& p) {
    json w = json::object();
    w["type"] = kind_name(p.kind);
    merge_into(w, workload_schema().dump(p));
    json pas = json::array();
    for (auto v : p.pasid.pasids) pas.push_back(v);
    w["pasids"] = pas;
    if (!p.pasid.weights.empty()) {
        json ws = json::array();
        for (auto v : p.pasid.weights) ws.push_back(v);
        w["pasid_weights"] = ws;
    }
    return w;
}

// ---- traffic: TrafficEndpoint ------------------------------------------------

/// A traffic device: endpoint params plus, per workload, an optional target
/// "the BAR of another device" resolved once the topology has placed BARs.
struct TrafficConfig {
    pcie::TrafficEndpointParams ep;
    struct Target {
        std::string device;
        unsigned bar = 0;
        std::string path;
        unsigned function = 0; ///< which function of that device (index in topology order)
    };
    std::vector<std::optional<Target>> targets;
    /// A BAR range the platform marks as someone's (the isolation checker, host::Isolation).
    struct OwnedRegion {
        unsigned function = 0, bar = 0;
        uint64_t offset = 0, size = 0;
        std::string owner, name, path;
    };
    std::vector<OwnedRegion> regions;
    std::vector<std::string> trace_files; ///< per workload: its trace_file ("" = none), for the dump
    /// The "ats" object: every function (PFs and VFs) has ATS enabled and its own ATC.
    std::optional<pcie::AtsEndpointParams> ats;
    bool dma_can_stall = false; ///< firmware's "dma-can-stall" for its functions (host::DeviceInfo::can_stall)
};

/// The ATC of a traffic device's functions ("ats" object).
const Schema<pcie::AtsEndpointParams>& traffic_ats_schema() {
    static const auto s = [] {
        using P = pcie::AtsEndpointParams;
        Schema<P> sc;
        sc.custom("atc_entries", "integer", "entries", "ATC entries per function; default 64 (no published device ATC sizes)",
                  [](P& p, const json& j, const std::string& path) { p.atc.entries = static_cast<uint32_t>(read::u64(j, path, 1, 1u << 20)); },
                  [](const P& p) { return json(p.atc.entries); })
            .custom("atc_ways", "integer", "ways", "ATC associativity; default 4",
                    [](P& p, const json& j, const std::string& path) { p.atc.ways = static_cast<uint32_t>(read::u64(j, path, 1, 64)); },
                    [](const P& p) { return json(p.atc.ways); })
            .time_ns("atc_lookup_ns", &P::atc_lookup, "ATC tag lookup per TLP; default 4 (calibration.md device ATC lookup, estimate: one cycle at 250 MHz)")
            .integer("max_translation_requests", &P::max_translation_requests, "requests",
                     "ATS Translation Requests in flight per function; a miss finding all busy waits for the oldest; default 16 "
                     "(estimate: 3x the 5 a 100 GbE function missing once per 1500-byte packet keeps in flight at the 0.6 us "
                     "round trip of calibration.md)", 1, 1024)
            .time_ns("invalidation_processing_ns", &P::invalidation_processing,
                     "fixed device time to process one ATS Invalidate Request, before the drain of requests already issued; "
                     "default 100 (calibration.md device processing of an ATS Invalidate Request, estimate)", 0, 1e9)
            .integer("invalidate_queue_depth", &P::invalidate_queue_depth, "", "ATS Invalidate Queue Depth (0 = 32); default 0", 0, 31)
            .boolean("pri", &P::pri_enabled,
                     "Page Request Interface enabled on every function: a PASID request whose Translation Completion "
                     "grants no access sends a Page Request, waits for the PRG Response and after Success translates once "
                     "more; needs the PASID capability; default false");
        return sc;
    }();
    return s;
}

const Schema<pcie::TrafficEndpointParams>& traffic_schema() {
    static const auto s = [] {
        using P = pcie::TrafficEndpointParams;
        Schema<P> sc;
        sc.integer("max_outstanding_reads", &P::max_outstanding_reads, "requests",
                   "non-posted requests in flight (tags); default 256 = 8-bit tags", 1, 768)
            .time_ns("quantum_ns", &P::quantum, "temporal-decoupling quantum; default 1000 ns", 1.0)
            .time_ns("bar_latency_ns", &P::bar_latency, "latency to serve a request to one of its BARs; default 50 ns (estimate)")
            .custom("start_at_us", "number", "us", "start issuing at this time (after a scenario attached the device); default 0",
                    [](P& p, const json& j, const std::string& path) { p.start_at = Duration::us(read::number(j, path, 0, 1e9)); },
                    [](const P& p) { return json(p.start_at.as_us()); })
            .boolean("start_on_request", &P::start_on_request, "issue nothing until a scenario \"start\" step")
            .custom("stop_at_us", "number", "us", "stop issuing at this time; 0 = when every stream ends",
                    [](P& p, const json& j, const std::string& path) { p.stop_at = Duration::us(read::number(j, path, 0, 1e9)); },
                    [](const P& p) { return json(p.stop_at.as_us()); });
        return sc;
    }();
    return s;
}

const Schema<pcie::PasidCapability>& pasid_cap_schema() {
    static const auto s = [] {
        using P = pcie::PasidCapability;
        Schema<P> sc;
        sc.boolean("supported", &P::supported, "PASID capability present")
            .integer("max_width", &P::max_width, "bits", "Max PASID Width; default 20", 0, 20)
            .boolean("execute", &P::execute_supported, "Execute Permission Supported")
            .boolean("privileged", &P::privileged_supported, "Privileged Mode Supported");
        return sc;
    }();
    return s;
}

std::any parse_traffic(const json& dev, const std::string& path, const std::vector<std::string>& common) {
    std::vector<std::string> allowed = common;
    for (auto& k : traffic_schema().keys()) allowed.push_back(k);
    allowed.insert(allowed.end(), {"pasid", "workloads", "owned_regions", "ats", "dma_can_stall"});
    check_keys(dev, path, allowed);
    TrafficConfig tc;
    if (dev.contains("dma_can_stall")) tc.dma_can_stall = read::boolean(dev["dma_can_stall"], path + "/dma_can_stall");
    if (dev.contains("owned_regions")) {
        const json& arr = read::array(dev["owned_regions"], path + "/owned_regions");
        for (size_t i = 0; i < arr.size(); ++i) {
            const std::string rp = path + "/owned_regions/" + std::to_string(i);
            const json& o = read::object(arr[i], rp);
            check_keys(o, rp, {"name", "owner", "function", "bar", "offset", "size_bytes"});
            for (const char* k : {"name", "owner", "size_bytes"})
                if (!o.contains(k)) throw ConfigError(rp, std::string("missing key \"") + k + "\"");
            TrafficConfig::OwnedRegion r;
            r.name = read::string(o["name"], rp + "/name");
            r.owner = read::string(o["owner"], rp + "/owner");
            if (r.owner.empty()) throw ConfigError(rp + "/owner", "expected an owner (a VM, a process, or kernel)");
            if (o.contains("function")) r.function = static_cast<unsigned>(read::u64(o["function"], rp + "/function", 0, 255));
            if (o.contains("bar")) r.bar = static_cast<unsigned>(read::u64(o["bar"], rp + "/bar", 0, 5));
            if (o.contains("offset")) r.offset = read::size(o["offset"], rp + "/offset", 0, ~uint64_t{0});
            r.size = read::size(o["size_bytes"], rp + "/size_bytes", 1, ~uint64_t{0});
            r.path = rp;
            tc.regions.push_back(std::move(r));
        }
    }
    pcie::TrafficEndpointParams& p = tc.ep;
    json own = json::object();
    for (auto& k : traffic_schema().keys())
        if (dev.contains(k)) own[k] = dev[k];
    traffic_schema().parse(own, path, p);
    if (dev.contains("pasid")) pasid_cap_schema().parse(dev["pasid"], path + "/pasid", p.pasid);
    if (dev.contains("ats")) {
        tc.ats.emplace();
        traffic_ats_schema().parse(dev["ats"], path + "/ats", *tc.ats);
        if (const char* why = tc.ats->atc.check())
            throw ConfigError(path + "/ats/atc_entries", std::string("expected a usable ATC geometry with atc_ways (") +
                                                            std::to_string(tc.ats->atc.ways) + "): " + why);        if (tc.ats->pri_enabled && !p.pasid.supported)
            throw ConfigError(path + "/ats/pri", "PRI page requests carry a PASID here: the device needs \"pasid\": {\"supported\": true}");
    }
    const std::string name = dev["name"].get<std::string>();
    if (dev.contains("workloads")) {
        const json& arr = read::array(dev["workloads"], path + "/workloads");
        for (size_t i = 0; i < arr.size(); ++i) {
            const std::string wp = path + "/workloads/" + std::to_string(i);
            auto w = parse_workload(arr[i], wp, name);
            std::optional<TrafficConfig::Target> target;
            if (arr[i].contains("target")) {
                const std::string tp = wp + "/target";
                const json& t = read::object(arr[i]["target"], tp);
                check_keys(t, tp, {"bar_of", "bar", "function"});
                if (!t.contains("bar_of")) throw ConfigError(tp, "missing key \"bar_of\" (the device whose BAR the stream targets)");
                target = TrafficConfig::Target{read::string(t["bar_of"], tp + "/bar_of"),
                                               t.contains("bar") ? static_cast<unsigned>(read::u64(t["bar"], tp + "/bar", 0, 5)) : 0u, tp,
                                               t.contains("function") ? static_cast<unsigned>(read::u64(t["function"], tp + "/function", 0, 255)) : 0u};
            }
            tc.targets.push_back(target);
            tc.trace_files.push_back(arr[i].contains("trace_file") ? arr[i]["trace_file"].get<std::string>() : "");
            for (size_t k = 0; k < w.pasid.pasids.size(); ++k)
                if (!p.pasid.supported || w.pasid.pasids[k] >= (uint64_t{1} << p.pasid.max_width))
                    throw ConfigError(wp + "/pasids/" + std::to_string(k),
                                      "PASID " + std::to_string(w.pasid.pasids[k]) + " does not fit the device's PASID capability");
            p.workloads.push_back(std::move(w));
        }
    }
    return tc;
}

std::vector<std::pair<std::string, uint32_t>> traffic_pasids(const std::any& a) {
    std::vector<std::pair<std::string, uint32_t>> out;
    const auto& ws = std::any_cast<const TrafficConfig&>(a).ep.workloads;
    for (size_t i = 0; i < ws.size(); ++i)
        for (size_t k = 0; k < ws[i].pasid.pasids.size(); ++k)
            out.emplace_back("/workloads/" + std::to_string(i) + "/pasids/" + std::to_string(k), ws[i].pasid.pasids[k]);
    return out;
}

json dump_traffic(const std::any& a) {
    const auto& tc = std::any_cast<const TrafficConfig&>(a);
    const auto& p = tc.ep;
    json j = traffic_schema().dump(p);
    j["pasid"] = pasid_cap_schema().dump(p.pasid);
    json ws = json::array();
    for (size_t i = 0; i < p.workloads.size(); ++i) {
        json w = dump_workload(p.workloads[i]);
        if (!tc.trace_files[i].empty()) w["trace_file"] = tc.trace_files[i]; // the records are read from it again
        if (tc.targets[i]) {
            json t = json::object();
            t["bar_of"] = tc.targets[i]->device;
            t["bar"] = tc.targets[i]->bar;
            if (tc.targets[i]->function) t["function"] = tc.targets[i]->function;
            w["target"] = std::move(t);
        }
        ws.push_back(std::move(w));
    }
    j["workloads"] = ws;
    if (tc.ats) j["ats"] = traffic_ats_schema().dump(*tc.ats);
    if (tc.dma_can_stall) j["dma_can_stall"] = true;
    if (!tc.regions.empty()) {
        json rs = json::array();
        for (const auto& r : tc.regions)
            rs.push_back({{"name", r.name}, {"owner", r.owner}, {"function", r.function}, {"bar", r.bar}, {"offset", r.offset},
                          {"size_bytes", r.size}});
        j["owned_regions"] = rs;
    }
    return j;
}

void document_traffic(std::vector<ParamSection>& out) {
    ParamSection s{"device:traffic", "PCIe endpoint driven by workload generators (models/pcie/traffic_endpoint.hpp)", {}};
    traffic_schema().document(pcie::TrafficEndpointParams{}, "", s.params);
    pasid_cap_schema().document(pcie::PasidCapability{}, "pasid", s.params);
    s.params.push_back({"ats", "object", "", "(absent)",
                        "present = every function (PFs and SR-IOV VFs) has ATS enabled with its own ATC: misses send Translation "
                        "Requests, hits go out translated, Invalidate Requests are answered (models/pcie/ats_traffic_endpoint.hpp)"});
    traffic_ats_schema().document(pcie::AtsEndpointParams{}, "ats", s.params);
    s.params.push_back({"dma_can_stall", "boolean", "", "false",
                        "firmware says the device tolerates stalled transactions (\"dma-can-stall\"): an SMMUv3 that "
                        "stalls holds its faulting DMAs until software resumes them"});
    s.params.push_back({"workloads", "array", "", "[]", "workload streams (see [workload])"});
    s.params.push_back({"owned_regions", "array", "", "[]",
                        "BAR ranges owned by someone ({name, owner, function (default 0), bar (default 0), offset (default 0), "
                        "size_bytes}): an access reaching one from a requester of another owner counts in os.isolation.violations"});
    out.push_back(std::move(s));
    std::string kinds;
    for (const auto& k : pcie::workload_kinds()) {
        if (!kinds.empty()) kinds += '|';
        kinds += k.name;
    }
    ParamSection w{"workload", "a workload stream (devices[].workloads[]); type: " + kinds, {}};
    w.params.push_back({"type", "enum(" + kinds + ")", "", "(required)", "address-stream kind (models/pcie/workload.hpp)"});
    w.params.push_back({"pasids", "array of integers", "", "[]", "PASIDs the stream tags requests with; empty = no PASID"});
    w.params.push_back({"pasid_weights", "array of numbers", "", "[] (uniform)", "relative weight of each PASID"});
    w.params.push_back({"trace_file", "string", "", "(none)", "trace: CSV file time_ns,device,pasid,addr,size,rw"});
    w.params.push_back({"target", "object", "", "(none)",
                        "{bar_of: DEVICE, function (default 0), bar (default 0)}: the stream's region is that BAR (peer-to-peer, "
                        "or the device's own BAR: same requester ID, served inside the device)"});
    workload_schema().document(pcie::WorkloadParams{}, "", w.params);
    out.push_back(std::move(w));
}

std::unique_ptr<sc_core::sc_module> build_traffic(const DeviceConfig& d, BuildContext& ctx) {
    const auto& tc = std::any_cast<const TrafficConfig&>(d.params);
    auto p = tc.ep;
    RootComplexUnit& rc = ctx.rc_of(d.name);
    pcie::fill_from_topology(*rc.topology, d.name, p);
    for (size_t i = 0; i < p.workloads.size(); ++i) {
        if (!tc.targets[i]) continue;
        const auto fns = rc.topology->functions_of(tc.targets[i]->device);
        if (fns.empty())
            throw ConfigError(tc.targets[i]->path + "/bar_of", "no device named \"" + tc.targets[i]->device +
                                                                  "\" below root complex " + rc.name +
                                                                  " (peer-to-peer stays inside a root complex)");
        if (tc.targets[i]->function >= fns.size())
            throw ConfigError(tc.targets[i]->path + "/function", "device \"" + tc.targets[i]->device + "\" has " +
                                                                  std::to_string(fns.size()) + " function(s)");
        const auto& bars = rc.topology->node(fns[tc.targets[i]->function]).bars;
        if (tc.targets[i]->bar >= bars.size())
            throw ConfigError(tc.targets[i]->path + "/bar", "device \"" + tc.targets[i]->device + "\" function " +
                                                             std::to_string(tc.targets[i]->function) + " has " +
                                                             std::to_string(bars.size()) + " BAR(s)");
        // The stream's region is that BAR: peer-to-peer traffic.
        p.workloads[i].base = bars[tc.targets[i]->bar].base;
        p.workloads[i].region_bytes = std::min(p.workloads[i].region_bytes, bars[tc.targets[i]->bar].size);
    }
    for (size_t i = 0; i < p.workloads.size(); ++i)
        if (p.workloads[i].seed == 0) p.workloads[i].seed = derive_seed(ctx.platform.seed, d.name, i);
    std::unique_ptr<pcie::TrafficEndpoint> dev;
    if (tc.ats) {
        if (!ctx.host || rc.iommu_for(d.name).empty())
            throw ConfigError("/devices", "device \"" + d.name + "\" has \"ats\": it needs an IOMMU (Translation Requests go to it)");
        pcie::AtsEndpointParams ats = *tc.ats;
        reseed_cache(ats.atc, ctx.platform.seed, d.name + ".atc");
        dev = std::make_unique<pcie::AtsTrafficEndpoint>(d.name.c_str(), p, ats, &ctx.stats);
    } else {
        dev = std::make_unique<pcie::TrafficEndpoint>(d.name.c_str(), p, &ctx.stats);
    }
    rc.fabric->attach_endpoint(d.name, dev->upstream, dev->downstream);
    if (ctx.host && !rc.iommu_for(d.name).empty()) { // the host may attach each function (scenario steps); the oracle checks its DMA
        dev->set_dma_observer(ctx.host->dma_observer(rc.segment));
        const unsigned unit = ctx.host->iommu_index(rc.iommu);
        host::Isolation& iso = ctx.host->isolation();
        dev->set_bar_observer([&iso, unit](const pcie::DmaRecord& r) { iso.check_bar_access(unit, r); });
        const auto fns = rc.topology->functions_of(d.name);
        for (const auto& r : tc.regions) {
            if (r.function >= fns.size())
                throw ConfigError(r.path + "/function", "the device has " + std::to_string(fns.size()) + " function(s)");
            const auto& bars = rc.topology->node(fns[r.function]).bars;
            if (r.bar >= bars.size())
                throw ConfigError(r.path + "/bar", "function " + std::to_string(r.function) + " has " + std::to_string(bars.size()) + " BAR(s)");
            if (r.offset >= bars[r.bar].size || r.size > bars[r.bar].size - r.offset)
                throw ConfigError(r.path, "offset + size_bytes exceed the BAR's " + std::to_string(bars[r.bar].size) + " bytes");
            iso.add_owned_region(unit, bars[r.bar].base + r.offset, r.size, r.owner,
                                 d.name + " " + rc.topology->node(fns[r.function]).bdf.str() + " BAR" + std::to_string(r.bar) + " " + r.name);
        }
        for (size_t i = 0; i < p.functions.size(); ++i) { // p.functions are fns' RIDs, in order
            const pcie::TopologyNode& fn = rc.topology->node(fns[i]);
            host::DeviceInfo info;
            info.rid = p.functions[i];
            if (fn.is_vf) info.pf = rc.topology->node(fn.pf).bdf;
            info.pasid = p.pasid.supported;
            info.pasid_bits = static_cast<uint8_t>(p.pasid.max_width);
            info.canwbs = rc.canwbs;
            info.can_stall = tc.dma_can_stall;
            info.ats = tc.ats.has_value();
            info.pri = tc.ats && tc.ats->pri_enabled;
            if (tc.ats) info.inv_queue_depth = tc.ats->invalidate_queue_depth ? tc.ats->invalidate_queue_depth : 32;
            ctx.host->iommufd().add_device(info, ctx.host->iommu_index(rc.iommu_for(d.name)));
        }
    } else if (!tc.regions.empty()) {
        throw ConfigError(tc.regions.front().path, "owned regions are checked by the host: the device must be behind an IOMMU");
    }
    return dev;
}

// ---- nic: NicEndpoint (ATS function) + its host driver -------------------------

struct NicConfig {
    pcie::NicParams nic;
    host::NicDriverParams driver;
    bool dma_can_stall = false; ///< firmware's "dma-can-stall" for the function (host::DeviceInfo::can_stall)
};

const Schema<NicConfig>& nic_schema() {
    static const auto s = [] {
        using P = NicConfig;
        Schema<P> sc;
        sc.custom("pasid", "boolean | integer [1, 1048575]", "",
                  "the NIC's DMA carries a PASID the host's PASID allocator hands out at setup (true: the lowest free, as Linux; "
                  "an integer: exactly that value, refused when taken); false or absent = requests without PASID (DMA API)",
                  [](P& p, const json& j, const std::string& path) {
                      if (j.is_boolean()) {
                          p.driver.pasid = j.get<bool>();
                          p.driver.pasid_value.reset();
                          return;
                      }
                      p.driver.pasid = true;
                      p.driver.pasid_value = static_cast<uint32_t>(read::u64(j, path, 1, pcie::kPasidMask));
                  },
                  [](const P& p) { return p.driver.pasid_value ? json(*p.driver.pasid_value) : json(p.driver.pasid); })
            .custom("sva_owner", "string", "", "SVA: the process the NIC's PASID is bound for, the owner of the PASID set that pays for it; default \"<nic>.app\"",
                    [](P& p, const json& j, const std::string& path) {
                        p.driver.sva_owner = read::string(j, path);
                        if (p.driver.sva_owner.empty()) throw ConfigError(path, "expected a non-empty owner");
                    },
                    [](const P& p) { return json(p.driver.sva_owner); })
            .custom("no_snoop_data", "boolean", "",
                    "packet data (RX writes, TX reads; not descriptors) carries No Snoop, dropped on translated requests whose "
                    "ATS completion had N set; default false (Linux NIC drivers leave it off)",
                    [](P& p, const json& j, const std::string& path) { p.nic.no_snoop_data = read::boolean(j, path); },
                    [](const P& p) { return json(p.nic.no_snoop_data); })
            .custom("packet_bytes", "integer [64, 65536]", "bytes", "received packet size; default 1500 (MTU)",
                    [](P& p, const json& j, const std::string& path) { p.nic.packet_bytes = static_cast<uint32_t>(read::u64(j, path, 64, 65536)); },
                    [](const P& p) { return json(p.nic.packet_bytes); })
            .custom("line_rate_gbps", "number", "Gb/s", "port speed in gigabits per second: the RX packet arrival rate and the TX wire rate; default 100 (100 GbE)",
                    [](P& p, const json& j, const std::string& path) { p.nic.line_rate_gbps = read::number(j, path, 1e-3, 1e4); },
                    [](const P& p) { return json(p.nic.line_rate_gbps); })
            .custom("ats", "boolean", "", "ATS enabled: translations cached in the device's ATC; default true",
                    [](P& p, const json& j, const std::string& path) { p.nic.ats.ats_enabled = read::boolean(j, path); },
                    [](const P& p) { return json(p.nic.ats.ats_enabled); })
            .custom("atc_entries", "integer", "entries", "ATC entries; default 64 (no published NIC ATC sizes)",
                    [](P& p, const json& j, const std::string& path) { p.nic.ats.atc.entries = static_cast<uint32_t>(read::u64(j, path, 1, 1u << 20)); },
                    [](const P& p) { return json(p.nic.ats.atc.entries); })
            .custom("atc_ways", "integer", "ways", "ATC associativity; default 4",
                    [](P& p, const json& j, const std::string& path) { p.nic.ats.atc.ways = static_cast<uint32_t>(read::u64(j, path, 1, 64)); },
                    [](const P& p) { return json(p.nic.ats.atc.ways); })
            .custom("invalidation_processing_ns", "number", "ns",
                    "fixed device time to process one ATS Invalidate Request, before the drain of requests already issued; default 100 (calibration.md device processing of an ATS Invalidate Request, estimate)",
                    [](P& p, const json& j, const std::string& path) { p.nic.ats.invalidation_processing = Duration::ns(read::number(j, path, 0, 1e9)); },
                    [](const P& p) { return json(p.nic.ats.invalidation_processing.as_ns()); })
            .custom("max_translation_requests", "integer", "requests",
                    "ATS Translation Requests in flight; an ATC miss finding all busy waits for the oldest, so slow translation slows the NIC; default 16 "
                    "(estimate: 3x the 5 a 100 GbE function missing once per 1500-byte packet keeps in flight at the 0.6 us round trip of calibration.md)",
                    [](P& p, const json& j, const std::string& path) { p.nic.ats.max_translation_requests = static_cast<uint32_t>(read::u64(j, path, 1, 1024)); },
                    [](const P& p) { return json(p.nic.ats.max_translation_requests); })
            .custom("invalidate_queue_depth", "integer [0, 31]", "", "ATS Invalidate Queue Depth (0 = 32); default 0",
                    [](P& p, const json& j, const std::string& path) { p.nic.ats.invalidate_queue_depth = static_cast<uint8_t>(read::u64(j, path, 0, 31)); },
                    [](const P& p) { return json(p.nic.ats.invalidate_queue_depth); })
            .custom("pri", "boolean", "", "Page Request Interface enabled: a translation with no access sends a Page Request and retries once after Success; default false",
                    [](P& p, const json& j, const std::string& path) { p.nic.ats.pri_enabled = read::boolean(j, path); },
                    [](const P& p) { return json(p.nic.ats.pri_enabled); })
            .custom("drop_invalidations", "boolean", "", "a device that never answers Invalidate Requests (drives ITE)",
                    [](P& p, const json& j, const std::string& path) { p.nic.ats.drop_invalidations = read::boolean(j, path); },
                    [](const P& p) { return json(p.nic.ats.drop_invalidations); })
            .custom("dma_can_stall", "boolean", "",
                    "firmware marks the function able to have its transactions stalled (device tree \"dma-can-stall\"): on an SMMUv3 with stall support the driver sets CD.S and serves stalled faults (EVTQ Stall = 1) with CMD_RESUME; default false",
                    [](P& p, const json& j, const std::string& path) { p.dma_can_stall = read::boolean(j, path); },
                    [](const P& p) { return json(p.dma_can_stall); })
            .custom("ring_entries", "integer", "descriptors", "RX ring size per queue, a multiple of 8 (RDLEN counts 128-byte units); default 256 (ethtool -g default)",
                    [](P& p, const json& j, const std::string& path) {
                        p.driver.ring_entries = static_cast<uint32_t>(read::u64(j, path, 8, 1u << 16));
                        if (p.driver.ring_entries % 8) throw ConfigError(path, "expected a multiple of 8, got " + std::to_string(p.driver.ring_entries));
                    },
                    [](const P& p) { return json(p.driver.ring_entries); })
            .custom("queues", "integer", "queues", "RX queues (RSS), each with its ring, interrupt and host thread; default 1",
                    [](P& p, const json& j, const std::string& path) { p.nic.queues = static_cast<uint32_t>(read::u64(j, path, 1, 64)); },
                    [](const P& p) { return json(p.nic.queues); })
            .custom("flows", "integer", "flows", "flows the arriving packets belong to, round robin; RSS hashes each to a queue; default 1",
                    [](P& p, const json& j, const std::string& path) { p.nic.flows = static_cast<uint32_t>(read::u64(j, path, 1, 1u << 20)); },
                    [](const P& p) { return json(p.nic.flows); })
            .custom("descriptor_prefetch", "integer", "descriptors", "descriptors read per fetch; default 1 (calibration.md NIC row: one descriptor read per RX packet)",
                    [](P& p, const json& j, const std::string& path) { p.nic.descriptor_prefetch = static_cast<uint32_t>(read::u64(j, path, 1, 256)); },
                    [](const P& p) { return json(p.nic.descriptor_prefetch); })
            .custom("max_outstanding_reads", "integer", "tags", "descriptor fetches, TX data reads and ATS Translation Requests in flight; default 256 (8-bit tags, PCIe Base 2.2.6.2)",
                    [](P& p, const json& j, const std::string& path) { p.nic.max_outstanding_reads = static_cast<uint32_t>(read::u64(j, path, 1, 1024)); },
                    [](const P& p) { return json(p.nic.max_outstanding_reads); })
            .custom("rx_buffer_bytes", "integer", "bytes", "on-chip packet buffer; packets are dropped only when it overflows; default 524288 (estimate: 82599-class datasheet figure)",
                    [](P& p, const json& j, const std::string& path) { p.nic.rx_buffer_bytes = static_cast<uint32_t>(read::u64(j, path, 64, 1u << 30)); },
                    [](const P& p) { return json(p.nic.rx_buffer_bytes); })
            .custom("rx", "boolean", "", "packets arrive at line_rate_gbps (the receive path); false = the NIC only transmits (needs tx_rate_gbps > 0); default true",
                    [](P& p, const json& j, const std::string& path) { p.nic.rx = read::boolean(j, path); },
                    [](const P& p) { return json(p.nic.rx); })
            .custom("tx_rate_gbps", "number", "Gb/s",
                    "offered transmit load over all queues (packets of packet_bytes, one sender thread per queue); 0 = no transmit; default 0",
                    [](P& p, const json& j, const std::string& path) { p.driver.tx_rate_gbps = read::number(j, path, 0, 1e4); },
                    [](const P& p) { return json(p.driver.tx_rate_gbps); })
            .custom("tx_ring_entries", "integer", "descriptors", "TX ring size per queue, a multiple of 8 (TDLEN counts 128-byte units); default 256 (as the RX ring)",
                    [](P& p, const json& j, const std::string& path) {
                        p.driver.tx_ring_entries = static_cast<uint32_t>(read::u64(j, path, 8, 1u << 16));
                        if (p.driver.tx_ring_entries % 8) throw ConfigError(path, "expected a multiple of 8, got " + std::to_string(p.driver.tx_ring_entries));
                    },
                    [](const P& p) { return json(p.driver.tx_ring_entries); })
            .custom("tx_doorbell_batch", "integer", "packets",
                    "packets per TX tail write while a backlog lasts (xmit_more); default 64 (estimate: Linux dev_tx_weight, packets per qdisc run)",
                    [](P& p, const json& j, const std::string& path) { p.driver.tx_doorbell_batch = static_cast<uint32_t>(read::u64(j, path, 1, 1u << 16)); },
                    [](const P& p) { return json(p.driver.tx_doorbell_batch); })
            .custom("tx_descriptor_prefetch", "integer", "descriptors", "TX descriptors read per fetch; default 40 (calibration.md NIC row: TX prefetches up to 40 descriptors)",
                    [](P& p, const json& j, const std::string& path) { p.nic.tx_descriptor_prefetch = static_cast<uint32_t>(read::u64(j, path, 1, 256)); },
                    [](const P& p) { return json(p.nic.tx_descriptor_prefetch); })
            .custom("tx_writeback_batch", "integer", "descriptors", "TX descriptors written back together (WTHRESH); default 8 (calibration.md NIC row: write-back batches of 8)",
                    [](P& p, const json& j, const std::string& path) { p.nic.tx_writeback_batch = static_cast<uint32_t>(read::u64(j, path, 1, 64)); },
                    [](const P& p) { return json(p.nic.tx_writeback_batch); })
            .custom("tx_buffer_bytes", "integer", "bytes", "on-chip transmit packet buffer: data reads run at most this far ahead of the wire; default 163840 (estimate: 82599-class datasheet figure)",
                    [](P& p, const json& j, const std::string& path) { p.nic.tx_buffer_bytes = static_cast<uint32_t>(read::u64(j, path, 64, 1u << 30)); },
                    [](const P& p) { return json(p.nic.tx_buffer_bytes); })
            .custom("buffers", "enum(map_per_packet|recycle)", "",
                    "DMA-API RX buffers: mapped and unmapped around every packet (default), or mapped once per ring slot and reposted (page_pool recycling)",
                    [](P& p, const json& j, const std::string& path) {
                        const std::string v = read::string(j, path);
                        if (v == "map_per_packet") p.driver.buffers = host::NicDriverParams::Buffers::map_per_packet;
                        else if (v == "recycle") p.driver.buffers = host::NicDriverParams::Buffers::recycle;
                        else throw ConfigError(path, "expected one of map_per_packet|recycle, got \"" + v + "\"");
                    },
                    [](const P& p) { return json(p.driver.buffers == host::NicDriverParams::Buffers::recycle ? "recycle" : "map_per_packet"); })
            .custom("doorbell_batch", "integer", "buffers", "refilled buffers per RX tail write; default 32 (calibration.md NIC row)",
                    [](P& p, const json& j, const std::string& path) { p.driver.doorbell_batch = static_cast<uint32_t>(read::u64(j, path, 1, 1u << 16)); },
                    [](const P& p) { return json(p.driver.doorbell_batch); })
            .custom("buffer_bytes", "integer", "bytes", "RX buffer size (mapped per packet); default 2048",
                    [](P& p, const json& j, const std::string& path) { p.driver.buffer_bytes = static_cast<uint32_t>(read::u64(j, path, 64, 1u << 20)); },
                    [](const P& p) { return json(p.driver.buffer_bytes); })
            .custom("tso_bytes", "integer [0, 65536]", "bytes",
                    "TSO: the sender hands the NIC TCP/IPv4 sends of this many bytes (headers + payload) in a context and "
                    "one data descriptor per mapped 4 KiB page, which the NIC segments into packet_bytes frames; 0 = off; default 0",
                    [](P& p, const json& j, const std::string& path) { p.driver.tso_bytes = static_cast<uint32_t>(read::u64(j, path, 0, 65536)); },
                    [](const P& p) { return json(p.driver.tso_bytes); })
            .custom("itr_us", "integer [0, 1022]", "us",
                    "minimum interval between two interrupts of a queue (ethtool -C rx-usecs), written to each queue's EITR "
                    "(ITR Interval in 2 us units, as ixgbe); 0 = no throttling; default 0 (ixgbe's adaptive default is not modelled)",
                    [](P& p, const json& j, const std::string& path) { p.driver.itr_us = static_cast<uint32_t>(read::u64(j, path, 0, 1022)); },
                    [](const P& p) { return json(p.driver.itr_us); })
            .custom("napi_batch", "integer", "buffers", "completions handled per NAPI poll; default 64 (NAPI weight)",
                    [](P& p, const json& j, const std::string& path) { p.driver.batch = static_cast<uint32_t>(read::u64(j, path, 1, 1u << 16)); },
                    [](const P& p) { return json(p.driver.batch); })
            .custom("flush", "enum(default|strict|lazy)", "",
                    "unmap policy of this NIC's DMA domain (Linux sets it per domain); default = host.driver.flush",
                    [](P& p, const json& j, const std::string& path) {
                        const std::string v = read::string(j, path);
                        if (v == "default") p.driver.flush.reset();
                        else if (v == "strict") p.driver.flush = host::FlushPolicy::strict;
                        else if (v == "lazy") p.driver.flush = host::FlushPolicy::lazy;
                        else throw ConfigError(path, "expected one of default|strict|lazy, got \"" + v + "\"");
                    },
                    [](const P& p) {
                        return json(!p.driver.flush ? "default" : *p.driver.flush == host::FlushPolicy::strict ? "strict" : "lazy");
                    })
            .custom("domain", "enum(first_stage|second_stage|sva)", "",
                    "the NIC's DMA domain: a first- or second-stage paging domain (DMA API; default first_stage, Linux scalable mode), "
                    "or sva: its PASID bound to a process whose buffer pages are faulted in on first touch (needs pasid; use with pri)",
                    [](P& p, const json& j, const std::string& path) {
                        const std::string v = read::string(j, path);
                        if (v == "first_stage") p.driver.domain = host::DomainDesc::Kind::paging_s1;
                        else if (v == "second_stage") p.driver.domain = host::DomainDesc::Kind::paging_s2;
                        else if (v == "sva") p.driver.domain = host::DomainDesc::Kind::sva;
                        else throw ConfigError(path, "expected one of first_stage|second_stage|sva, got \"" + v + "\"");
                    },
                    [](const P& p) {
                        using K = host::DomainDesc::Kind;
                        return json(p.driver.domain == K::paging_s1 ? "first_stage" : p.driver.domain == K::sva ? "sva" : "second_stage");
                    });
        return sc;
    }();
    return s;
}

std::any parse_nic(const json& dev, const std::string& path, const std::vector<std::string>& common) {
    std::vector<std::string> allowed = common;
    for (auto& k : nic_schema().keys()) allowed.push_back(k);
    check_keys(dev, path, allowed);
    NicConfig c;
    json own = json::object();
    for (auto& k : nic_schema().keys())
        if (dev.contains(k)) own[k] = dev[k];
    nic_schema().parse(own, path, c);
    if (const char* why = c.nic.ats.atc.check())
        throw ConfigError(path + "/atc_entries", std::string("expected a usable ATC geometry with atc_ways (") +
                                                     std::to_string(c.nic.ats.atc.ways) + "): " + why);
    if (c.driver.domain == host::DomainDesc::Kind::sva && !c.driver.pasid)
        throw ConfigError(path + "/domain", "an sva NIC needs \"pasid\" (SVA binds a PASID to a process)");
    if (c.driver.domain != host::DomainDesc::Kind::sva && !c.driver.sva_owner.empty())
        throw ConfigError(path + "/sva_owner", "only an sva NIC binds its PASID for a process (domain \"sva\")");
    if (c.driver.buffer_bytes < c.nic.packet_bytes)
        throw ConfigError(path + "/buffer_bytes", "expected at least packet_bytes (" + std::to_string(c.nic.packet_bytes) +
                                                      "): a packet spans one buffer, got " + std::to_string(c.driver.buffer_bytes));
    if (c.driver.domain == host::DomainDesc::Kind::sva && c.driver.buffer_bytes > 4096)
        throw ConfigError(path + "/buffer_bytes", "an sva NIC's buffers are one page at most (4096)");
    if (c.driver.tx_rate_gbps > 0 && c.nic.packet_bytes > 16384)
        throw ConfigError(path + "/packet_bytes", "expected at most 16384 with tx_rate_gbps > 0: one TX data descriptor carries at most 16 KiB (ixgbe IXGBE_MAX_DATA_PER_TXD), got " +
                                                      std::to_string(c.nic.packet_bytes));
    if (c.driver.tso_bytes) {
        if (c.driver.tx_rate_gbps <= 0) throw ConfigError(path + "/tso_bytes", "expected 0 unless tx_rate_gbps > 0: TSO segments what the host sends");
        if (c.driver.domain == host::DomainDesc::Kind::sva)
            throw ConfigError(path + "/tso_bytes", "expected 0 for an sva NIC: its TX sends one page per packet");
        if (c.driver.tso_bytes <= c.nic.packet_bytes || c.nic.packet_bytes <= 54)
            throw ConfigError(path + "/tso_bytes", "expected more than packet_bytes (" + std::to_string(c.nic.packet_bytes) +
                                                      ", itself more than the 54 header bytes), got " + std::to_string(c.driver.tso_bytes));
        const uint32_t descriptors = 2 + (c.driver.tso_bytes - 54 + 4095) / 4096;
        if (c.driver.tx_ring_entries <= descriptors)
            throw ConfigError(path + "/tx_ring_entries", "expected more than the " + std::to_string(descriptors) +
                                                             " descriptors one TSO send takes");
    }
    c.nic.tx = c.driver.tx_rate_gbps > 0;
    if (!c.nic.rx && !c.nic.tx) throw ConfigError(path + "/rx", "expected true unless tx_rate_gbps > 0: the NIC would neither receive nor transmit");
    return c;
}

std::vector<std::pair<std::string, uint32_t>> nic_pasids(const std::any& a) {
    const auto& c = std::any_cast<const NicConfig&>(a);
    if (!c.driver.pasid_value) return {};
    return {{"/pasid", *c.driver.pasid_value}};
}

json dump_nic(const std::any& a) {
    json j = nic_schema().dump(std::any_cast<const NicConfig&>(a));
    if (j["pasid"] == false) j.erase("pasid");
    if (j["sva_owner"] == "") j.erase("sva_owner");
    return j;
}

void document_nic(std::vector<ParamSection>& out) {
    ParamSection s{"device:nic", "NIC on an ATS function: RX and TX descriptor rings in memory, tail doorbells, RSS queues; host DMA-API driver (map / DMA / unmap per packet) and optional transmit load", {}};
    nic_schema().document(NicConfig{}, "", s.params);
    out.push_back(std::move(s));
}

std::unique_ptr<sc_core::sc_module> build_nic(const DeviceConfig& d, BuildContext& ctx) {
    if (!ctx.host) throw ConfigError("/devices", "device \"" + d.name + "\" (nic) needs an IOMMU and its host driver");
    auto c = std::any_cast<NicConfig>(d.params);
    RootComplexUnit& rc = ctx.rc_of(d.name);
    if (rc.iommu_for(d.name).empty())
        throw ConfigError("/devices", "device \"" + d.name + "\" (nic) needs an IOMMU: root complex " + rc.name + " has none");
    reseed_cache(c.nic.ats.atc, ctx.platform.seed, d.name + ".atc");
    pcie::TrafficEndpointParams where;
    pcie::fill_from_topology(*rc.topology, d.name, where);
    c.nic.ats.rid = where.functions.front();
    c.driver.iommu = rc.iommu_for(d.name);
    auto nic = std::make_unique<pcie::NicEndpoint>(d.name.c_str(), c.nic, &ctx.stats);
    rc.fabric->attach_endpoint(d.name, nic->function().upstream, nic->function().downstream);
    nic->function().set_dma_observer(ctx.host->dma_observer(rc.segment));
    host::DeviceInfo info;
    info.rid = c.nic.ats.rid;
    info.ats = c.nic.ats.ats_enabled;
    info.pasid = true;
    info.pri = c.nic.ats.pri_enabled;
    info.can_stall = c.dma_can_stall;
    info.canwbs = rc.canwbs;
    info.inv_queue_depth = c.nic.ats.invalidate_queue_depth ? c.nic.ats.invalidate_queue_depth : 32;
    ctx.host->iommufd().add_device(info, ctx.host->iommu_index(c.driver.iommu));
    const unsigned regs = ctx.host->add_device_mmio(nic->regs);
    auto drv = std::make_shared<host::NicDriver>(*ctx.host, *nic, regs, c.driver, &ctx.host->stats_group());
    for (uint32_t q = 0; q < c.nic.queues; ++q)
        ctx.host->add_thread(d.name + "_driver_q" + std::to_string(q), [drv, q] { drv->run(q); }, q); // queue q's interrupt on CPU q
    if (c.nic.tx)
        for (uint32_t q = 0; q < c.nic.queues; ++q)
            ctx.host->add_thread(d.name + "_sender_q" + std::to_string(q), [drv, q] { drv->run_tx(q); }, q); // XPS: CPU q sends on queue q
    ctx.keep_alive.push_back(drv);
    return nic;
}

// ---- nvme: NvmeEndpoint (ATS function) + its host driver and block workload ----

struct NvmeConfig {
    enum class Pattern : uint8_t { random, sequential };
    bool ats = true;
    uint32_t atc_entries = pcie::AtsEndpointParams::kAtcEntries;
    uint32_t max_translation_requests = pcie::AtsEndpointParams::kMaxTranslationRequests;
    Duration service = Duration::ns(pcie::NvmeParams::kDefaultServiceNs);
    uint32_t parallelism = pcie::NvmeParams::kDefaultParallelism;
    uint32_t max_outstanding_reads = pcie::NvmeParams::kDefaultMaxOutstandingReads;
    Pattern pattern = Pattern::random;
    uint32_t read_percent = 100;
    uint32_t block_bytes = host::NvmeDriverParams::kDefaultBlockBytes;
    uint32_t queue_depth = host::NvmeDriverParams::kDefaultQueueDepth;
    uint32_t jobs = host::NvmeDriverParams::kDefaultJobs;
    uint64_t capacity_bytes = host::NvmeDriverParams::kDefaultCapacityBytes;
    uint64_t seed = 1;
    bool no_snoop_data = false;
    uint32_t coalescing_entries = 1;
    uint32_t coalescing_time_us = 0;
};

const Schema<NvmeConfig>& nvme_schema() {
    static const auto s = [] {
        using P = NvmeConfig;
        Schema<P> sc;
        sc.boolean("ats", &P::ats, "ATS enabled: translations cached in the device's ATC; default true")
            .integer("atc_entries", &P::atc_entries, "entries", "ATC entries (4-way); default 64 (no published device ATC sizes)", 4, 1u << 20)
            .integer("max_translation_requests", &P::max_translation_requests, "requests",
                     "ATS Translation Requests in flight; an ATC miss finding all busy waits for the oldest; default 16 (estimate, as the nic's)", 1, 1024)
            .time_ns("service_ns", &P::service, "media service time per command; default 75000 (calibration.md NVMe 4 KiB random read, NAND; Optane-class 6500)", 0, 1e9)
            .integer("parallelism", &P::parallelism, "commands", "commands the media serves at once; default 64 (estimate)", 1, 4096)
            .integer("max_outstanding_reads", &P::max_outstanding_reads, "tags", "SQE / PRP-list / write-data reads and ATS Translation Requests in flight; default 256 (8-bit tags)", 1, 1024)
            .enumeration("pattern", &P::pattern, "block workload offsets: random (default) or sequential per job",
                         {{"random", P::Pattern::random}, {"sequential", P::Pattern::sequential}})
            .integer("read_percent", &P::read_percent, "%", "share of Read commands; default 100", 0, 100)
            .integer("block_bytes", &P::block_bytes, "bytes", "bytes per command, a multiple of 4096 up to 2 MiB (one PRP list page); default 4096", 4096, 2u << 20)
            .integer("queue_depth", &P::queue_depth, "commands", "commands outstanding per job (fio iodepth); default 32", 1, 1023)
            .integer("jobs", &P::jobs, "jobs", "I/O queue pairs, each with its host thread (fio numjobs); default 1", 1, pcie::nvme::kMaxQueues)
            .size("capacity_bytes", &P::capacity_bytes, "namespace size the offsets fall in; default 1 TiB", 1u << 21)
            .integer("seed", &P::seed, "", "seed of the offsets and read/write choice; default 1")
            .integer("coalescing_entries", &P::coalescing_entries, "completions",
                     "Interrupt Coalescing threshold (Set Features FID 08h THR + 1): completions per I/O queue interrupt; "
                     "1 = none; default 1 (Linux sets no coalescing)", 1, 256)
            .integer("coalescing_time_us", &P::coalescing_time_us, "us",
                     "Interrupt Coalescing aggregation time (FID 08h TIME, a multiple of 100 us): the longest an interrupt waits "
                     "for the threshold; default 0", 0, 25500)
            .boolean("no_snoop_data", &P::no_snoop_data,
                     "commands' data transfers carry No Snoop (not SQE / PRP-list fetches or completions), dropped on "
                     "translated requests whose ATS completion had N set; default false");
        return sc;
    }();
    return s;
}

std::any parse_nvme(const json& dev, const std::string& path, const std::vector<std::string>& common) {
    std::vector<std::string> allowed = common;
    for (auto& k : nvme_schema().keys()) allowed.push_back(k);
    check_keys(dev, path, allowed);
    NvmeConfig c;
    json own = json::object();
    for (auto& k : nvme_schema().keys())
        if (dev.contains(k)) own[k] = dev[k];
    nvme_schema().parse(own, path, c);
    if (c.block_bytes % 4096)
        throw ConfigError(path + "/block_bytes", "expected a multiple of 4096 (4 KiB LBAs), got " + std::to_string(c.block_bytes));
    if (c.capacity_bytes < c.block_bytes)
        throw ConfigError(path + "/capacity_bytes", "expected at least block_bytes");
    if (c.coalescing_time_us % 100)
        throw ConfigError(path + "/coalescing_time_us", "expected a multiple of 100 (TIME counts 100 us units), got " +
                                                            std::to_string(c.coalescing_time_us));
    return c;
}

/// The NVMe device's DMA carries no PASID (nvme-pci uses the DMA API on the RID).
std::vector<std::pair<std::string, uint32_t>> nvme_pasids(const std::any&) { return {}; }

json dump_nvme(const std::any& a) { return nvme_schema().dump(std::any_cast<const NvmeConfig&>(a)); }

void document_nvme(std::vector<ParamSection>& out) {
    ParamSection s{"device:nvme", "NVMe-like SSD on an ATS function: SQ/CQ in memory, doorbells, PRP lists; host nvme driver running a block workload (map / DMA / unmap per command)", {}};
    nvme_schema().document(NvmeConfig{}, "", s.params);
    out.push_back(std::move(s));
}

std::unique_ptr<sc_core::sc_module> build_nvme(const DeviceConfig& d, BuildContext& ctx) {
    if (!ctx.host) throw ConfigError("/devices", "device \"" + d.name + "\" (nvme) needs an IOMMU and its host driver");
    const auto c = std::any_cast<NvmeConfig>(d.params);
    RootComplexUnit& rc = ctx.rc_of(d.name);
    if (rc.iommu_for(d.name).empty())
        throw ConfigError("/devices", "device \"" + d.name + "\" (nvme) needs an IOMMU: root complex " + rc.name + " has none");
    pcie::TrafficEndpointParams where;
    pcie::fill_from_topology(*rc.topology, d.name, where);
    pcie::NvmeParams np;
    np.ats.rid = where.functions.front();
    np.ats.ats_enabled = c.ats;
    np.ats.atc.entries = c.atc_entries;
    np.ats.max_translation_requests = c.max_translation_requests;
    np.service = c.service;
    np.parallelism = c.parallelism;
    np.max_outstanding_reads = c.max_outstanding_reads;
    np.no_snoop_data = c.no_snoop_data;
    host::NvmeDriverParams dp;
    dp.iommu = rc.iommu_for(d.name);
    dp.random = c.pattern == NvmeConfig::Pattern::random;
    dp.read_percent = c.read_percent;
    dp.block_bytes = c.block_bytes;
    dp.queue_depth = c.queue_depth;
    dp.jobs = c.jobs;
    dp.capacity_bytes = c.capacity_bytes;
    dp.seed = c.seed;
    dp.coalescing_entries = c.coalescing_entries;
    dp.coalescing_time_us = c.coalescing_time_us;
    auto dev = std::make_unique<pcie::NvmeEndpoint>(d.name.c_str(), np, &ctx.stats);
    rc.fabric->attach_endpoint(d.name, dev->function().upstream, dev->function().downstream);
    dev->function().set_dma_observer(ctx.host->dma_observer(rc.segment));
    host::DeviceInfo info;
    info.rid = np.ats.rid;
    info.ats = c.ats;
    info.inv_queue_depth = 32;
    info.canwbs = rc.canwbs;
    ctx.host->iommufd().add_device(info, ctx.host->iommu_index(dp.iommu));
    const unsigned regs = ctx.host->add_device_mmio(dev->regs);
    auto drv = std::make_shared<host::NvmeDriver>(*ctx.host, *dev, regs, dp, &ctx.host->stats_group());
    for (uint32_t j = 0; j < dp.jobs; ++j)
        ctx.host->add_thread(d.name + "_driver_job" + std::to_string(j), [drv, j] { drv->run(j); }, j); // job j on CPU j
    ctx.keep_alive.push_back(drv);
    return dev;
}

} // namespace

const std::vector<DeviceType>& device_types() {
    static const std::vector<DeviceType> table = {
        {"traffic", "PCIe endpoint driven by workload generators", parse_traffic, dump_traffic, document_traffic,
         traffic_pasids, build_traffic},
        {"nic", "NIC RX path on an ATS function with a host DMA-API driver", parse_nic, dump_nic, document_nic,
         nic_pasids, build_nic},
        {"nvme", "NVMe-like SSD on an ATS function with a host nvme driver and a block workload", parse_nvme, dump_nvme,
         document_nvme, nvme_pasids, build_nvme},
    };
    return table;
}

const std::vector<IommuType>& iommu_types() { return builtin_iommu_types(); }

IommuUnit shell_unit(std::unique_ptr<iommu::IommuShell> unit) {
    IommuUnit out;
    out.upstream = &unit->upstream;
    out.messages = &unit->ats_inv;
    out.mmio = &unit->mmio;
    out.mem = &unit->mem;
    iommu::IommuShell* u = unit.get();
    out.set_observer = [u](iommu::InvalidationObserver* o) { u->set_invalidation_observer(o); };
    out.set_trace = [u](trace::Recorder* r) { u->set_trace(r); };
    out.module = std::move(unit);
    return out;
}

RootComplexUnit::RootComplexUnit() = default;
RootComplexUnit::RootComplexUnit(RootComplexUnit&&) noexcept = default;
RootComplexUnit::~RootComplexUnit() = default;

const std::string& RootComplexUnit::iommu_for(const std::string& device) const {
    if (port_iommu.empty()) return iommu;
    const std::vector<int> fns = topology->functions_of(device);
    for (int n = fns.empty() ? -1 : fns.front(); n >= 0; n = topology->node(n).parent)
        if (topology->node(n).kind == pcie::NodeKind::root_port)
            if (auto it = port_iommu.find(topology->node(n).name); it != port_iommu.end()) return it->second;
    return iommu;
}

RootComplexUnit& BuildContext::rc_of(const std::string& device) const {
    for (auto& rc : root_complexes)
        if (!rc.topology->functions_of(device).empty()) return rc;
    throw ConfigError("/devices", "device \"" + device + "\" is below no root complex");
}

} // namespace iommusim::sim
