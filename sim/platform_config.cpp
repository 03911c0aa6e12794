// SPDX-License-Identifier: Apache-2.0
#include "sim/platform_config.hpp"

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unistd.h>

#include "models/pcie/topology.hpp"
#include "sim/component_types.hpp"
#include "sim/viommu_types.hpp"
#include "sim/config/json_reader.hpp"
#include "sim/host_config.hpp"

namespace iommusim::sim {

namespace {

const Schema<mem::MemoryParams>& memory_schema() {
    static const auto s = [] {
        using P = mem::MemoryParams;
        Schema<P> sc;
        sc.size("size_bytes", &P::size_bytes, "physical memory size (sparse: only touched pages use host RAM); default 64 GiB",
                4096, mem::SparseMemory::kMaxSize)
            .time_ns("read_latency_ns", &P::read_latency, "idle read latency (load adds to it, see load_window_ns); default 90 ns (calibration.md \"DRAM idle read latency, local\" 81-90 ns, upper end)")
            .time_ns("write_latency_ns", &P::write_latency, "posted write latency into the controller's write queue; default 40 ns (estimate)")
            .number("bandwidth_gbps", &P::bandwidth_bytes_per_ns, "GB/s", "data-port bandwidth; default 25.6 = one DDR4-3200 channel; 0 = unlimited")
            .time_ns("load_window_ns", &P::load_window,
                     "reads take the idle latency times calibration.md's \"loaded-latency shape\" (x1.10 at 25 % utilisation, x1.20 at 50 %, x1.40 at 80 %, x2.35 from saturation: midpoint of 1.8-2.9) at the utilisation (bytes / bandwidth) over this window; 0 = off; default 1000 ns [estimate: long enough to average a burst of a few hundred requests]");
        return sc;
    }();
    return s;
}

const Schema<OutputsConfig>& outputs_schema() {
    static const auto s = [] {
        Schema<OutputsConfig> sc;
        sc.boolean("stats_json", &OutputsConfig::stats_json, "write stats.json into the output directory")
            .boolean("summary", &OutputsConfig::summary, "print the summary table on stdout")
            .boolean("invalidations_csv", &OutputsConfig::invalidations_csv,
                     "write invalidations.csv: one row per invalidation with its phase timestamps (platforms with an IOMMU)")
            .integer("invalidations_csv_max_rows", &OutputsConfig::invalidations_csv_max_rows, "rows",
                     "at most this many rows in invalidations.csv (the rest are counted in os.invalidation.csv_rows_capped); 0 = all")
            .boolean("trace", &OutputsConfig::trace,
                     "write trace.json (Chrome/Perfetto trace events; open in ui.perfetto.dev): every invalidation and its phases, "
                     "requests per requester, page walks per walk slot, faults, page requests, queue occupancy and cache-fill counters")
            .integer("trace_max_events", &OutputsConfig::trace_max_events, "events",
                     "model events (requests, walks, faults, counters) kept for trace.json; more are counted in stats.json "
                     "truncated_outputs; default 1000000 (about 100 MB of JSON, an estimate of one event's size); at most 20000000 "
                     "(about 2.2 GB of host memory at 112 bytes per kept event)", 1, 20'000'000)
            .integer("trace_dma_sample_every", &OutputsConfig::trace_dma_sample_every, "requests",
                     "trace every Nth request of each requester (1 = all); default 1", 1)
            .time_ns("trace_counter_interval_ns", &OutputsConfig::trace_counter_interval,
                     "minimum simulated time between two samples of one counter; default 100 ns (a choice of resolution, not a model cost)");
        return sc;
    }();
    return s;
}

const std::vector<std::string> kTopKeys = {"name", "seed", "duration_us", "memory", "iommus", "topology", "devices", "host", "vms", "scenario", "outputs"};


template <class Table>
const auto& find_type(const Table& table, const json& obj, const std::string& path, const char* what) {
    if (!obj.contains("type")) throw ConfigError(path, std::string("missing key \"type\" of the ") + what);
    const std::string t = read::string(obj["type"], path + "/type");
    std::vector<std::string> known;
    for (const auto& row : table) {
        if (row.type == t) return row;
        known.push_back(row.type);
    }
    std::string list;
    for (auto& k : known) list += (list.empty() ? "" : ", ") + k;
    std::string hint = closest_match(t, known);
    throw ConfigError(path + "/type", std::string("unknown ") + what + " type \"" + t + "\"" +
                                          (hint.empty() ? "" : " (did you mean \"" + hint + "\"?)") +
                                          " (known: " + (list.empty() ? "none yet" : list) + ")");
}

/// The caches a platform asks for must fit in this machine's memory: a clear
/// error before elaboration instead of bad_alloc or the OOM killer mid-build.
/// kCacheLineBytes is an estimate of one set-associative line with its
/// fingerprint and replacement state (the lines are 32-byte aligned structs
/// of key + payload); half the physical memory is the budget.
void check_cache_memory(const PlatformConfig& cfg) {
    constexpr uint64_t kCacheLineBytes = 96;
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    if (pages <= 0 || page <= 0) return;
    const uint64_t budget = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) / 2;
    uint64_t total = 0;
    for (size_t i = 0; i < cfg.iommus.size(); ++i)
        for (const auto& t : iommu_types())
            if (t.type == cfg.iommus[i].type && t.cache_entries) {
                const uint64_t entries = t.cache_entries(cfg.iommus[i].params);
                total += entries * kCacheLineBytes;
                if (total > budget)
                    throw ConfigError("/iommus/" + std::to_string(i),
                                      "the caches need about " + std::to_string(total >> 20) + " MiB (" + std::to_string(entries) +
                                          " lines here, ~" + std::to_string(kCacheLineBytes) + " bytes each), more than half of this machine's " +
                                          std::to_string((budget * 2) >> 20) + " MiB of memory: use fewer entries");
            }
}

/// Every PASID a device or a scenario step uses must fit the translating
/// unit's PASID support: the hardware would take the PASID's high bits as a
/// different (or invalid) PASID-table index, the host driver would refuse it
/// mid-run. Rejected here so that `validate` catches it.
void check_pasids_fit(const PlatformConfig& cfg) {
    const std::map<std::string, int> owners = cfg.topology.port_owners();
    // The IOMMU translating a device: the one of the root complex above its port.
    auto unit_of_device = [&](const std::string& dev) -> std::string {
        for (const auto& e : cfg.topology.endpoints)
            if (e.name == dev)
                if (owners.count(e.port)) return cfg.topology.iommu_of_port(e.port);
        return {};
    };
    auto fits = [&](const std::string& path, const std::string& unit, uint64_t pasid) {
        if (unit.empty()) return;
        unsigned bits = 0;
        for (const auto& m : cfg.iommus)
            if (m.name == unit)
                for (const auto& t : iommu_types())
                    if (t.type == m.type && t.pasid_bits) bits = t.pasid_bits(m.params);
        if (bits == 0)
            throw ConfigError(path, "PASID " + std::to_string(pasid) + " but IOMMU \"" + unit +
                                        "\" has no PASID support (set \"pasid\": true)");
        if (pasid >> bits)
            throw ConfigError(path, "PASID " + std::to_string(pasid) + " does not fit IOMMU \"" + unit + "\"'s pasid_bits (" +
                                        std::to_string(bits) + ")");
    };
    for (size_t i = 0; i < cfg.devices.size(); ++i)
        for (const auto& t : device_types())
            if (t.type == cfg.devices[i].type && t.pasids)
                for (const auto& [rel, pasid] : t.pasids(cfg.devices[i].params))
                    fits("/devices/" + std::to_string(i) + rel, unit_of_device(cfg.devices[i].name), pasid);
    for (const auto& st : cfg.scenario)
        if (st.args.contains("pasid_value")) {
            std::string unit;
            if (st.args.contains("iommu")) unit = st.args["iommu"].get<std::string>();
            else if (st.args.contains("device")) unit = unit_of_device(st.args["device"].get<std::string>());
            else if (cfg.iommus.size() == 1) unit = cfg.iommus.front().name;
            fits(st.path + "/pasid_value", unit, read::u64(st.args["pasid_value"], st.path + "/pasid_value", 0, ~uint64_t{0}));
        }
}

} // namespace

PlatformConfig parse_platform(const json& doc) {
    PlatformConfig cfg;
    read::object(doc, "");
    check_keys(doc, "", kTopKeys);
    if (!doc.contains("name")) throw ConfigError("", "missing key \"name\" (the platform's name, used for the results folder)");
    cfg.name = read::string(doc["name"], "/name");
    if (cfg.name.empty() || cfg.name.find('/') != std::string::npos || cfg.name[0] == '.')
        throw ConfigError("/name", "expected a non-empty name usable as a folder name, got \"" + cfg.name + "\"");
    if (doc.contains("seed")) cfg.seed = read::u64(doc["seed"], "/seed", 0, ~uint64_t{0});
    if (doc.contains("duration_us")) cfg.duration_us = read::number(doc["duration_us"], "/duration_us", 1e-3, 1e9);
    if (doc.contains("memory")) memory_schema().parse(doc["memory"], "/memory", cfg.memory);
    if (doc.contains("outputs")) outputs_schema().parse(doc["outputs"], "/outputs", cfg.outputs);

    std::set<std::string> names;
    if (doc.contains("iommus")) {
        const json& arr = read::array(doc["iommus"], "/iommus");
        for (size_t i = 0; i < arr.size(); ++i) {
            const std::string path = "/iommus/" + std::to_string(i);
            read::object(arr[i], path);
            ComponentConfig c;
            c.name = component_name(arr[i], path, names);
            const auto& type = find_type(iommu_types(), arr[i], path, "IOMMU");
            c.type = type.type;
            json rest = arr[i];
            rest.erase("name");
            rest.erase("type");
            c.params = type.parse(rest, path);
            cfg.iommus.push_back(std::move(c));
        }
    }

    if (!doc.contains("topology")) throw ConfigError("", "missing key \"topology\" (a root complex with root ports)");
    cfg.topology = parse_topology(doc["topology"], names);
    // Each IOMMU translates one root complex: all of it (its host bridge, or its DRHD's stack)
    // or some of its root ports (DRHD units per root-port group).
    std::map<std::string, size_t> unit_rc; // IOMMU -> the root complex it translates
    for (size_t r = 0; r < cfg.topology.root_complexes.size(); ++r) {
        const RootComplexConfig& rc = cfg.topology.root_complexes[r];
        const std::string rpath = cfg.topology.list_form ? "/topology/root_complexes/" + std::to_string(r)
                                                         : "/topology/root_complex";
        auto check_unit = [&](const std::string& unit, const std::string& path) {
            bool found = false;
            for (auto& m : cfg.iommus) found |= m.name == unit;
            if (!found) throw ConfigError(path, "no IOMMU named \"" + unit + "\" in /iommus");
            auto [it, fresh] = unit_rc.emplace(unit, r);
            if (!fresh && it->second != r)
                throw ConfigError(path, "IOMMU \"" + unit + "\" already translates root complex \"" +
                                            cfg.topology.root_complexes[it->second].desc.name + "\": one root complex per IOMMU");
        };
        if (!rc.iommu.empty()) check_unit(rc.iommu, rpath + "/iommu");
        for (size_t i = 0; i < rc.desc.root_ports.size(); ++i) {
            const std::string& port = rc.desc.root_ports[i].name;
            const std::string ppath = rpath + "/root_ports/" + std::to_string(i);
            if (auto it = rc.port_iommu.find(port); it != rc.port_iommu.end()) check_unit(it->second, ppath + "/iommu");
            else if (rc.iommu.empty() && !rc.port_iommu.empty())
                throw ConfigError(ppath, "root port \"" + port + "\" has no IOMMU while other root ports of " + rc.desc.name +
                                             " have one: name one here or give the root complex an \"iommu\" for the rest");
        }
    }
    for (size_t i = 0; i < cfg.iommus.size(); ++i) {
        const bool used = unit_rc.count(cfg.iommus[i].name) != 0;
        if (!used)
            throw ConfigError("/iommus/" + std::to_string(i) + "/name",
                              "IOMMU \"" + cfg.iommus[i].name +
                                  "\" translates nothing: name it in a root complex's or a root port's \"iommu\"");
    }
    if (doc.contains("host")) cfg.host = parse_host(doc["host"]);
    {   // The host's regions must be page aligned, disjoint and inside memory.
        const auto& l = cfg.host.layout;
        auto region = [&](const char* key, uint64_t base, uint64_t bytes) {
            const std::string path = std::string("/host/memory/") + key;
            if (base % 4096 || bytes % 4096) throw ConfigError(path, "expected a 4 KiB-aligned base and size");
            if (base > cfg.memory.size_bytes || bytes > cfg.memory.size_bytes - base)
                throw ConfigError(path, "region " + read::format_size(bytes) + " at " + std::to_string(base) +
                                            " does not fit in /memory/size_bytes (" + read::format_size(cfg.memory.size_bytes) + ")");
        };
        region("table_base", l.table_base, l.table_bytes);
        region("data_base", l.data_base, l.data_bytes);
        if (l.table_base < l.data_base + l.data_bytes && l.data_base < l.table_base + l.table_bytes)
            throw ConfigError("/host/memory", "the table and data regions overlap");
    }
    if (doc.contains("devices")) {
        const json& arr = read::array(doc["devices"], "/devices");
        for (size_t i = 0; i < arr.size(); ++i) {
            const std::string path = "/devices/" + std::to_string(i);
            read::object(arr[i], path);
            DeviceConfig d;
            d.name = component_name(arr[i], path, names);
            const auto& type = find_type(device_types(), arr[i], path, "device");
            d.type = type.type;
            d.endpoint = parse_endpoint(arr[i], path);
            d.params = type.parse(arr[i], path, kEndpointKeys);
            cfg.topology.endpoints.push_back(d.endpoint);
            cfg.devices.push_back(std::move(d));
        }
    }
    if (doc.contains("vms")) {
        std::set<std::string> devs;
        for (const auto& d : cfg.devices) devs.insert(d.name);
        std::vector<std::string> units;
        for (const auto& m : cfg.iommus) units.push_back(m.name);
        cfg.vms = parse_vms(doc["vms"], names, units, devs);
        for (size_t i = 0; i < cfg.vms.size(); ++i)
            for (const auto& m : cfg.iommus)
                if (m.name == cfg.vms[i].iommu && !find_viommu_type(m.type))
                    throw ConfigError("/vms/" + std::to_string(i) + "/iommu",
                                      "IOMMU type \"" + m.type + "\" has no virtual IOMMU model");
    }
    if (doc.contains("scenario")) {
        if (cfg.iommus.empty() && !doc["scenario"].empty()) throw ConfigError("/scenario", "a scenario drives the host's IOMMU driver: add an IOMMU in /iommus");
        std::set<std::string> devs;
        for (const auto& d : cfg.devices) devs.insert(d.name);
        std::vector<std::string> units;
        for (const auto& m : cfg.iommus) units.push_back(m.name);
        cfg.scenario = parse_scenario(doc["scenario"], devs, units, cfg.duration_us);
        for (const auto& st : cfg.scenario) // guest steps name a VM of /vms
            if (st.args.contains("vm")) {
                const std::string v = st.args["vm"].get<std::string>();
                const auto vm = std::find_if(cfg.vms.begin(), cfg.vms.end(), [&](const VmConfig& c) { return c.name == v; });
                if (vm == cfg.vms.end()) throw ConfigError(st.path + "/vm", "no VM named \"" + v + "\" in /vms");
                if (st.op != "guest_bind_sva" || st.repeat > 1) continue;
                // The guest binds one of its own devices, with first-stage (SVA) tables.
                if (vm->params.mode == host::vm::ViommuMode::caching_mode)
                    throw ConfigError(st.path + "/vm", "VM \"" + v + "\" is in caching_mode (shadowed second-stage tables): "
                                                       "guest SVA needs mode nested or accelerated");
                const std::string d = st.args["device"].get<std::string>();
                const uint64_t f = st.args.contains("function") ? st.args["function"].get<uint64_t>() : 0;
                if (std::none_of(vm->devices.begin(), vm->devices.end(),
                                 [&](const VmDeviceConfig& c) { return c.device == d && c.function == f; }))
                    throw ConfigError(st.path + "/device", "device \"" + d + "\" function " + std::to_string(f) +
                                                               " is not passed through to VM \"" + v + "\" (/vms/N/devices)");
            }
    }
    check_pasids_fit(cfg);
    check_cache_memory(cfg);
    for (const auto& st : cfg.scenario)
        if (st.at_us && *st.at_us > cfg.duration_us) {
            std::ostringstream os;
            os << "step at " << *st.at_us << " us is after the end of the run (duration_us " << cfg.duration_us
               << "): it would never run";
            throw ConfigError(st.path + "/at_us", os.str());
        }
    // Enumerate now so that a bad hierarchy (unknown port, bus clash, bad BAR)
    // is a config error with its path, not a simulation error.
    (void)build_topologies(cfg.topology);
    return cfg;
}

json dump_platform(const PlatformConfig& cfg) {
    json j = json::object();
    j["name"] = cfg.name;
    j["seed"] = cfg.seed;
    j["duration_us"] = cfg.duration_us;
    j["memory"] = memory_schema().dump(cfg.memory);
    j["iommus"] = json::array();
    for (const auto& m : cfg.iommus) {
        json e = {{"name", m.name}, {"type", m.type}};
        for (const auto& t : iommu_types())
            if (t.type == m.type) merge_into(e, t.dump(m.params));
        j["iommus"].push_back(e);
    }
    j["topology"] = dump_topology(cfg.topology);
    j["devices"] = json::array();
    for (const auto& d : cfg.devices) {
        json e = json::object();
        e["name"] = d.name;
        e["type"] = d.type;
        dump_endpoint(d.endpoint, e);
        for (const auto& t : device_types())
            if (t.type == d.type) merge_into(e, t.dump(d.params));
        j["devices"].push_back(e);
    }
    j["host"] = dump_host(cfg.host);
    if (!cfg.vms.empty()) j["vms"] = dump_vms(cfg.vms);
    j["scenario"] = dump_scenario(cfg.scenario);
    j["outputs"] = outputs_schema().dump(cfg.outputs);
    return j;
}

void check_input_file(const std::string& file, const std::string& path, uint64_t max_bytes) {
    // A device or FIFO (/dev/zero, a pipe) would be read without bound: only
    // regular files, and only up to a size that fits comfortably in memory.
    std::error_code ec;
    const auto st = std::filesystem::status(file, ec);
    if (ec || !std::filesystem::exists(st)) throw ConfigError(path, "cannot open \"" + file + "\" (does it exist and is it readable?)");
    if (!std::filesystem::is_regular_file(st))
        throw ConfigError(path, "\"" + file + "\" is not a regular file (devices, FIFOs and directories are not accepted)");
    const auto bytes = std::filesystem::file_size(file, ec);
    if (ec) throw ConfigError(path, "cannot read the size of \"" + file + "\"");
    if (bytes > max_bytes)
        throw ConfigError(path, "\"" + file + "\" has " + std::to_string(bytes) + " bytes, more than the limit of " +
                                    read::format_size(max_bytes));
}

std::string read_input_file(const std::string& file, const std::string& path, uint64_t max_bytes) {
    check_input_file(file, path, max_bytes);
    std::ifstream in(file, std::ios::binary);
    if (!in) throw ConfigError(path, "cannot open \"" + file + "\" (does it exist and is it readable?)");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

json read_json_file(const std::string& file) {
    return parse_json_or_throw(read_input_file(file, "", kMaxPlatformFileBytes));
}

void apply_override(json& doc, const std::string& assignment) {
    auto eq = assignment.find('=');
    if (eq == std::string::npos || eq == 0)
        throw ConfigError("", "--set expects PATH=VALUE (e.g. memory.read_latency_ns=100), got \"" + assignment + "\"");
    std::string path = assignment.substr(0, eq);
    const std::string text = assignment.substr(eq + 1);
    if (path[0] != '/') {
        std::string p;
        for (char c : path) p += c == '.' ? '/' : c;
        path = "/" + p;
    }
    json value;
    JsonProblem problem;
    if (auto parsed = parse_json_text(text, problem)) value = std::move(*parsed);
    else if (problem.syntax) value = text; // bare words are strings: --set iommus.0.type=vtd
    else throw ConfigError(path + problem.path, "--set: " + problem.message);
    try {
        // Missing sections are created; a misspelt key is then caught by the
        // strict parse like any unknown key in the file.
        doc[json::json_pointer(path)] = value;
    } catch (const json::exception& e) {
        throw ConfigError(path, std::string("--set: ") + e.what());
    }
    if (nesting_depth(doc) > kMaxJsonDepth)
        throw ConfigError(path, "--set: the document would be nested deeper than " + std::to_string(kMaxJsonDepth) +
                                    " objects/arrays");
}

namespace {
/// A workload's trace_file is relative to the platform file, not to the
/// working directory (so config.json and sweeps run from anywhere).
void resolve_file_paths(json& doc, const std::string& file) {
    if (!doc.is_object() || !doc.contains("devices") || !doc["devices"].is_array()) return;
    const std::filesystem::path base = std::filesystem::absolute(std::filesystem::path(file)).parent_path();
    for (auto& d : doc["devices"]) {
        if (!d.is_object() || !d.contains("workloads") || !d["workloads"].is_array()) continue;
        for (auto& w : d["workloads"]) {
            if (!w.is_object() || !w.contains("trace_file") || !w["trace_file"].is_string()) continue;
            const std::filesystem::path p = w["trace_file"].get<std::string>();
            if (p.is_relative()) w["trace_file"] = (base / p).lexically_normal().string();
        }
    }
}
} // namespace

PlatformConfig load_platform(const std::string& file, const std::vector<std::string>& overrides) {
    json doc = read_json_file(file);
    resolve_file_paths(doc, file); // before the overrides: a --set path is the user's, relative to where they are
    for (const auto& o : overrides) apply_override(doc, o);
    return parse_platform(doc);
}

std::vector<ParamSection> list_params() {
    std::vector<ParamSection> out;
    out.push_back({"platform", "top-level keys", {
        {"name", "string", "", "(required)", "platform name; results go to results/<name>/"},
        {"seed", "integer", "", "1", "seed of every random stream (same platform + seed => identical stats)"},
        {"duration_us", "number", "us", "1000", "simulated time to run"},
    }});
    ParamSection m{"memory", "physical memory (/memory)", {}};
    memory_schema().document(mem::MemoryParams{}, "", m.params);
    out.push_back(std::move(m));
    document_topology(out);
    for (const auto& t : device_types()) t.document(out);
    for (const auto& t : iommu_types()) t.document(out);
    document_host(out);
    document_vms(out);
    document_scenario(out);
    ParamSection o{"outputs", "what a run writes (/outputs)", {}};
    outputs_schema().document(OutputsConfig{}, "", o.params);
    out.push_back(std::move(o));
    return out;
}

} // namespace iommusim::sim
