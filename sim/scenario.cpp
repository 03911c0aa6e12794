// SPDX-License-Identifier: Apache-2.0
#include "sim/scenario.hpp"

#include <bit>
#include <map>
#include <systemc>

#include "models/common/sc_time.hpp"
#include "models/host/host.hpp"
#include "models/host/vm/vm.hpp"
#include "models/pcie/topology.hpp"
#include "models/pcie/traffic_endpoint.hpp"
#include "sim/platform_config.hpp"
#include "sim/stat_select.hpp"
#include "sim/stats_writer.hpp"

namespace iommusim::sim {

namespace {

/// What a step argument is.
enum class A : uint8_t {
    ioas, domain, process, pasid_set, pasid, mapping, device, iommu, // references to named things
    integer, size, number, string, stage, boolean,
};
/// Kinds of named objects a step can define with "name".
const char* kind_name(A a) {
    switch (a) {
    case A::ioas: return "IOAS";
    case A::domain: return "domain";
    case A::process: return "process";
    case A::pasid_set: return "PASID set";
    case A::pasid: return "PASID";
    case A::mapping: return "mapping";
    case A::device: return "device";
    case A::iommu: return "IOMMU";
    default: return "value";
    }
}

struct OpSpec {
    const char* op;
    const char* description;
    std::vector<std::pair<const char*, A>> required;
    std::vector<std::pair<const char*, A>> optional;
    std::optional<A> defines; ///< kind of the object "name" defines
};

const std::vector<OpSpec>& ops() {
    static const std::vector<OpSpec> t = {
        {"create_ioas", "a new IOVA address space; flush: strict|lazy for its unmaps (default host.driver.flush)",
         {{"name", A::string}}, {{"flush", A::string}}, A::ioas},
        {"alloc_domain", "a paging domain (HW page table) mirroring an IOAS, on an IOMMU (required when there are several)",
         {{"name", A::string}, {"ioas", A::ioas}}, {{"stage", A::stage}, {"levels", A::integer}, {"iommu", A::iommu}}, A::domain},
        {"create_process", "a process with its own CPU page tables (x86-64, 4 levels)", {{"name", A::string}}, {}, A::process},
        {"alloc_sva_domain", "an SVA domain sharing a process's page tables, on an IOMMU (required when there are several)",
         {{"name", A::string}, {"process", A::process}}, {{"iommu", A::iommu}}, A::domain},
        {"mmap", "map process memory", {{"process", A::process}, {"va", A::integer}, {"size_bytes", A::size}}, {}, {}},
        {"munmap", "unmap process memory (flushes every SVA domain bound to it)",
         {{"process", A::process}, {"va", A::integer}, {"size_bytes", A::size}}, {}, {}},
        {"create_pasid_set", "a PASID set with an owner and a quota",
         {{"name", A::string}, {"owner", A::string}, {"quota", A::integer}}, {}, A::pasid_set},
        {"alloc_pasid", "a host PASID from a set (optionally for a set-private ID)",
         {{"name", A::string}, {"set", A::pasid_set}, {"owner", A::string}}, {{"private_id", A::integer}}, A::pasid},
        {"free_pasid", "return a PASID to its set", {{"set", A::pasid_set}, {"owner", A::string}, {"pasid", A::pasid}}, {}, {}},
        {"attach", "make a device (function, PASID) translate through a domain; iommu (default: the device's own) must be the device's",
         {{"device", A::device}, {"domain", A::domain}},
         {{"function", A::integer}, {"pasid", A::pasid}, {"pasid_value", A::integer}, {"owner", A::string}, {"iommu", A::iommu}}, {}},
        {"detach", "architected teardown of an attachment; iommu (default: the device's own) must be the device's",
         {{"device", A::device}}, {{"function", A::integer}, {"pasid", A::pasid}, {"pasid_value", A::integer}, {"iommu", A::iommu}}, {}},
        {"map", "map fresh memory into an IOAS", {{"ioas", A::ioas}, {"size_bytes", A::size}},
         {{"name", A::string}, {"iova", A::integer}, {"page_bytes", A::size}}, A::mapping},
        {"unmap", "unmap a mapping (strict: flush and wait; lazy: flush queue)", {{"ioas", A::ioas}},
         {{"mapping", A::mapping}, {"iova", A::integer}, {"size_bytes", A::size}}, {}},
        {"guest_map", "map fresh guest memory into a VM's guest DMA domain (the guest kernel's map; under caching mode its flush traps)",
         {{"vm", A::string}, {"size_bytes", A::size}}, {{"name", A::string}, {"iova", A::integer}, {"page_bytes", A::size}}, A::mapping},
        {"guest_unmap", "unmap a guest mapping: the guest's strict flush traps to the VMM, which invalidates the physical unit",
         {{"vm", A::string}}, {{"mapping", A::mapping}, {"iova", A::integer}, {"size_bytes", A::size}}, {}},
        {"invalidate", "explicit invalidation of a domain range (size 0 or absent = all)", {{"domain", A::domain}},
         {{"iova", A::integer}, {"size_bytes", A::size}}, {}},
        {"flush_queue", "drain the lazy flush queue now", {}, {}, {}},
        {"start", "start a traffic device's workload streams (its start_on_request is true)", {{"device", A::device}}, {}, {}},
        {"stop", "stop a traffic device's workload streams", {{"device", A::device}}, {}, {}},
        {"wait", "spend time on this thread", {{"us", A::number}}, {}, {}},
        {"reset_stats", "zero every stat but the scenario's own (a warm-up ends here; rates count from now)", {}, {}, {}},
        {"expect", "compare a stat with a value: one of eq, ne, lt, le, gt, ge; a histogram needs a field (count, min, mean, p50, p90, p99, max)",
         {{"stat", A::string}},
         {{"field", A::string}, {"eq", A::number}, {"ne", A::number}, {"lt", A::number}, {"le", A::number}, {"gt", A::number}, {"ge", A::number}}, {}},
    };
    return t;
}

const OpSpec& spec_of(const std::string& op, const std::string& path) {
    std::vector<std::string> names;
    for (const auto& s : ops()) {
        if (op == s.op) return s;
        names.push_back(s.op);
    }
    std::string hint = closest_match(op, names);
    throw ConfigError(path, "unknown scenario op \"" + op + "\"" + (hint.empty() ? "" : " (did you mean \"" + hint + "\"?)"));
}

const std::vector<std::string> kErrorKinds = {"quota_exceeded", "not_owner", "not_found", "busy", "invalid", "no_space"};

std::string kind_str(host::HostError::Kind k) {
    using K = host::HostError::Kind;
    switch (k) {
    case K::quota_exceeded: return "quota_exceeded";
    case K::not_owner: return "not_owner";
    case K::not_found: return "not_found";
    case K::busy: return "busy";
    case K::invalid: return "invalid";
    case K::no_space: return "no_space";
    }
    return "?";
}

} // namespace

std::vector<ScenarioStep> parse_scenario(const json& arr, const std::set<std::string>& devices,
                                         const std::vector<std::string>& iommus, double duration_us) {
    std::vector<ScenarioStep> out;
    std::map<std::string, double> earliest_us; // per thread: the earliest time its next step can start
    std::map<std::string, A> defined; // names defined by earlier steps, with their kind
    read::array(arr, "/scenario");
    for (size_t i = 0; i < arr.size(); ++i) {
        const std::string path = "/scenario/" + std::to_string(i);
        const json& o = read::object(arr[i], path);
        if (!o.contains("op")) throw ConfigError(path, "missing key \"op\"");
        ScenarioStep st;
        st.path = path;
        st.op = read::string(o["op"], path + "/op");
        const OpSpec& spec = spec_of(st.op, path + "/op");
        std::vector<std::string> allowed = {"op", "thread", "at_us", "expect_error"};
        for (auto& [k, a] : spec.required) allowed.push_back(k);
        for (auto& [k, a] : spec.optional) allowed.push_back(k);
        check_keys(o, path, allowed);
        if (o.contains("thread")) st.thread = read::string(o["thread"], path + "/thread");
        if (o.contains("at_us")) st.at_us = read::number(o["at_us"], path + "/at_us", 0, 1e9);
        if (o.contains("expect_error")) {
            const std::string e = read::string(o["expect_error"], path + "/expect_error");
            if (std::find(kErrorKinds.begin(), kErrorKinds.end(), e) == kErrorKinds.end())
                throw ConfigError(path + "/expect_error", "expected one of quota_exceeded|not_owner|not_found|busy|invalid|no_space, got \"" + e + "\"");
            st.expect_error = e;
        }
        auto check = [&](const std::string& k, A a) {
            const std::string p = path + "/" + k;
            const json& v = o[k];
            // Keys with a narrower meaning than their kind.
            if (k == "levels") { (void)read::u64(v, p, 3, 5); return; }
            if (k == "pasid_value" || k == "private_id") { (void)read::u64(v, p, 1, pcie::kPasidMask); return; }
            if (k == "function") { (void)read::u64(v, p, 0, 255); return; }
            if (k == "quota") { (void)read::u64(v, p, 1, pcie::kPasidMask); return; }
            if (k == "us") { (void)read::number(v, p, 0, 1e9); return; }
            if (k == "flush") {
                const std::string f = read::string(v, p);
                if (f != "strict" && f != "lazy") throw ConfigError(p, "expected strict or lazy, got \"" + f + "\"");
                return;
            }
            switch (a) {
            case A::integer: (void)read::u64(v, p, 0, ~uint64_t{0}); break;
            case A::size: (void)read::size(v, p, 0, ~uint64_t{0}); break;
            case A::number: (void)read::number(v, p, -1e300, 1e300); break;
            case A::boolean: (void)read::boolean(v, p); break;
            case A::string: (void)read::string(v, p); break;
            case A::stage: {
                const std::string s = read::string(v, p);
                if (s != "first_stage" && s != "second_stage")
                    throw ConfigError(p, "expected first_stage or second_stage, got \"" + s + "\"");
                break;
            }
            case A::device: {
                const std::string n = read::string(v, p);
                if (!devices.count(n)) throw ConfigError(p, "no device named \"" + n + "\" in /devices");
                break;
            }
            case A::iommu: {
                const std::string n = read::string(v, p);
                if (std::find(iommus.begin(), iommus.end(), n) == iommus.end())
                    throw ConfigError(p, "no IOMMU named \"" + n + "\" in /iommus");
                break;
            }
            default: {
                const std::string n = read::string(v, p);
                auto it = defined.find(n);
                if (it == defined.end() || it->second != a)
                    throw ConfigError(p, std::string("no ") + kind_name(a) + " named \"" + n + "\" defined by an earlier step");
            }
            }
        };
        for (auto& [k, a] : spec.required) {
            if (!o.contains(k)) throw ConfigError(path, std::string("missing key \"") + k + "\" of op " + st.op);
            check(k, a);
        }
        for (auto& [k, a] : spec.optional)
            if (o.contains(k)) check(k, a);
        if (st.op == "expect") {
            int n = 0;
            for (const char* c : {"eq", "ne", "lt", "le", "gt", "ge"}) n += o.contains(c);
            if (n != 1) throw ConfigError(path, "an expect step needs exactly one of eq, ne, lt, le, gt, ge");
            if (o.contains("field")) {
                const std::string f = o["field"].get<std::string>();
                const auto& fs = histogram_fields();
                if (std::find(fs.begin(), fs.end(), f) == fs.end()) {
                    const std::string c = closest_match(f, fs);
                    throw ConfigError(path + "/field", "expected one of count, min, mean, p50, p90, p99, max, got \"" + f + "\"" +
                                                           (c.empty() ? "" : " (did you mean \"" + c + "\"?)"));
                }
            }
        }
        if ((st.op == "alloc_domain" || st.op == "alloc_sva_domain") && !o.contains("iommu") && iommus.size() > 1)
            throw ConfigError(path, "the platform has " + std::to_string(iommus.size()) +
                                        " IOMMUs: say which one the domain is for with \"iommu\"");
        // A thread's steps run in order: at_us and waits give a lower bound of when each starts.
        double& t = earliest_us[st.thread];
        if (st.at_us) t = std::max(t, *st.at_us);
        if (st.op == "expect" && t > duration_us)
            throw ConfigError(st.at_us ? path + "/at_us" : path,
                              "this expect runs at " + format_number(t) + " us or later, after the end of the run (duration_us " +
                                  format_number(duration_us) + ")");
        if (st.op == "wait") t += o["us"].get<double>();
        if ((st.op == "unmap" || st.op == "guest_unmap") && !o.contains("mapping") && !(o.contains("iova") && o.contains("size_bytes")))
            throw ConfigError(path, "unmap needs \"mapping\" or both \"iova\" and \"size_bytes\"");
        if (spec.defines && o.contains("name")) {
            const std::string n = o["name"].get<std::string>();
            if (defined.count(n)) throw ConfigError(path + "/name", "name \"" + n + "\" is already defined by an earlier step");
            defined[n] = *spec.defines;
        }
        st.args = o;
        for (const char* k : {"op", "thread", "at_us", "expect_error"}) st.args.erase(k);
        out.push_back(std::move(st));
    }
    return out;
}

json dump_scenario(const std::vector<ScenarioStep>& steps) {
    json arr = json::array();
    for (const auto& s : steps) {
        json o = json::object();
        o["op"] = s.op;
        if (s.thread != "main") o["thread"] = s.thread;
        if (s.at_us) o["at_us"] = *s.at_us;
        if (s.expect_error) o["expect_error"] = *s.expect_error;
        merge_into(o, s.args);
        arr.push_back(std::move(o));
    }
    return arr;
}

void document_scenario(std::vector<ParamSection>& out) {
    ParamSection s{"scenario", "a scenario step (/scenario/N): {op, thread (default main), at_us, expect_error, args...}", {}};
    for (const auto& o : ops()) {
        std::string args;
        for (auto& [k, a] : o.required) args += std::string(args.empty() ? "" : ", ") + k;
        for (auto& [k, a] : o.optional) args += std::string(args.empty() ? "" : ", ") + "[" + k + "]";
        s.params.push_back({o.op, "op", "", "", std::string(o.description) + "; keys: " + (args.empty() ? "none" : args)});
    }
    out.push_back(std::move(s));
}

// ---- execution ------------------------------------------------------------------

struct ScenarioRunner::State {
    std::map<std::string, uint32_t> ioas, domains, processes, pasids;
    std::map<std::string, uint32_t> sets;
    std::map<std::string, std::pair<uint64_t, uint64_t>> mappings; ///< name -> (iova, size)
};

ScenarioRunner::ScenarioRunner(host::Host& host, std::function<DeviceSite(const std::string&)> site, stats::Group& root,
                               std::vector<ScenarioStep> steps,
                               std::function<pcie::TrafficEndpoint*(const std::string&)> device)
    : host_(host), site_(std::move(site)), root_(root), steps_(std::move(steps)), device_(std::move(device)),
      state_(std::make_unique<State>()), ran_(steps_.size(), false),
      stats_("scenario", &root),
      steps_run_(stats_.counter("steps", "steps", "scenario steps executed")),
      failed_(stats_.counter("failures", "steps", "failed expects, unexpected errors, expected errors that did not occur")),
      reset_at_(stats_.value("stats_reset_at_ns", "ns", "time of the last reset_stats step: the other stats count from here")) {}

ScenarioRunner::~ScenarioRunner() = default;

void ScenarioRunner::check_stats() const {
    for (const auto& s : steps_)
        if (s.op == "expect")
            (void)select_stat(root_, s.args["stat"].get<std::string>(),
                              s.args.contains("field") ? s.args["field"].get<std::string>() : "", s.path + "/stat");
}

void ScenarioRunner::install() {
    std::vector<std::string> threads;
    for (const auto& s : steps_)
        if (std::find(threads.begin(), threads.end(), s.thread) == threads.end()) threads.push_back(s.thread);
    for (const auto& t : threads) host_.add_thread("scenario_" + t, [this, t] { run_thread(t); });
}

std::vector<std::string> ScenarioRunner::failures() const {
    std::vector<std::string> out = failures_;
    for (size_t i = 0; i < steps_.size(); ++i)
        if (!ran_[i] && (steps_[i].op == "expect" || steps_[i].expect_error))
            out.push_back(steps_[i].path + " (" + steps_[i].op + "): never ran, the run ended before its thread reached it");
    return out;
}

void ScenarioRunner::run_thread(const std::string& name) {
    for (size_t i = 0; i < steps_.size(); ++i) {
        const ScenarioStep& s = steps_[i];
        if (s.thread != name) continue;
        if (s.at_us) {
            const sc_core::sc_time at(*s.at_us, sc_core::SC_US);
            if (at > sc_core::sc_time_stamp()) sc_core::wait(at - sc_core::sc_time_stamp());
        }
        ran_[i] = true;
        steps_run_.inc();
        ran_[i] = true;
        std::string err_kind, err_msg;
        try {
            execute(s);
        } catch (const host::HostError& e) {
            err_kind = kind_str(e.kind());
            err_msg = e.what();
        } catch (const std::exception& e) { // a model refused the operation: a failure, not a crash
            err_kind = "error";
            err_msg = e.what();
        }
        const std::string at = " at " + std::to_string(sc_core::sc_time_stamp().to_seconds() * 1e6) + " us";
        if (s.expect_error && err_kind != *s.expect_error) {
            failed_.inc();
            failures_.push_back(s.path + " (" + s.op + "): expected error " + *s.expect_error + ", got " +
                                (err_kind.empty() ? "success" : err_kind + ": " + err_msg) + at);
        } else if (!s.expect_error && !err_kind.empty()) {
            failed_.inc();
            failures_.push_back(s.path + " (" + s.op + "): " + err_kind + ": " + err_msg + at);
        }
    }
}

void ScenarioRunner::execute(const ScenarioStep& s) {
    const json& a = s.args;
    host::IommuFd& fd = host_.iommufd();
    State& st = *state_;
    auto str = [&](const char* k) { return a[k].get<std::string>(); };
    // A name defined by a step that failed (or has not run yet on another thread).
    auto named = [&](const std::map<std::string, uint32_t>& m, const char* k) {
        auto it = m.find(str(k));
        if (it == m.end())
            throw host::HostError(host::HostError::Kind::not_found, "\"" + str(k) + "\" was not created (its step failed or has not run yet)");
        return it->second;
    };
    auto u64 = [&](const char* k) { return read::u64(a[k], s.path + "/" + k, 0, ~uint64_t{0}); };
    auto size = [&](const char* k) { return read::size(a[k], s.path + "/" + k, 0, ~uint64_t{0}); };
    auto rid_of = [&]() {
        const DeviceSite where = site_(str("device"));
        const auto fns = where.topology->functions_of(str("device"));
        const uint64_t f = a.contains("function") ? u64("function") : 0;
        if (f >= fns.size()) throw host::HostError(host::HostError::Kind::invalid, "device has no function " + std::to_string(f));
        return where.topology->node(fns[f]).bdf;
    };
    // The IOMMU a step addresses: "iommu" if given (the only one otherwise, as the parser checked).
    auto unit = [&]() { return host_.iommu_index(a.contains("iommu") ? str("iommu") : host_.iommufd().iommu_name(0)); };
    // A device step's IOMMU: the device's own; an "iommu" naming another one is an error.
    auto device_unit = [&]() {
        const DeviceSite where = site_(str("device"));
        if (where.iommu.empty())
            throw host::HostError(host::HostError::Kind::invalid, "device " + str("device") + " is behind no IOMMU");
        if (a.contains("iommu") && str("iommu") != where.iommu)
            throw host::HostError(host::HostError::Kind::invalid, "device " + str("device") + " is behind IOMMU " +
                                                                      where.iommu + ", not " + str("iommu"));
        return host_.iommu_index(where.iommu);
    };
    auto pasid_of = [&]() -> std::optional<uint32_t> {
        if (a.contains("pasid")) return named(st.pasids, "pasid");
        if (a.contains("pasid_value")) return static_cast<uint32_t>(u64("pasid_value"));
        return std::nullopt;
    };
    auto vm_of = [&](const std::string& name) {
        host::vm::Vm* v = vm_lookup_ ? vm_lookup_(name) : nullptr;
        if (!v) throw host::HostError(host::HostError::Kind::not_found, "no VM named \"" + name + "\"");
        return v;
    };
    const std::string& op = s.op;
    if (op == "create_ioas") {
        st.ioas[str("name")] = fd.ioas_alloc();
        if (a.contains("flush"))
            fd.set_flush_policy(st.ioas[str("name")], str("flush") == "lazy" ? host::FlushPolicy::lazy : host::FlushPolicy::strict);
    }
    else if (op == "alloc_domain") {
        const bool s2 = a.contains("stage") && str("stage") == "second_stage";
        st.domains[str("name")] = fd.hwpt_alloc(named(st.ioas, "ioas"), unit(),
                                                s2 ? host::DomainDesc::Kind::paging_s2 : host::DomainDesc::Kind::paging_s1,
                                                a.contains("levels") ? std::optional<uint8_t>(static_cast<uint8_t>(u64("levels")))
                                                                     : std::nullopt);
    } else if (op == "create_process") st.processes[str("name")] = fd.process_create();
    else if (op == "alloc_sva_domain") st.domains[str("name")] = fd.hwpt_alloc_sva(named(st.processes, "process"), unit());
    else if (op == "mmap") fd.mmap(named(st.processes, "process"), u64("va"), size("size_bytes"));
    else if (op == "munmap") fd.munmap(named(st.processes, "process"), u64("va"), size("size_bytes"));
    else if (op == "create_pasid_set") st.sets[str("name")] = host_.pasids().create_set(str("owner"), static_cast<uint32_t>(u64("quota")));
    else if (op == "alloc_pasid") {
        std::optional<uint32_t> priv;
        if (a.contains("private_id")) priv = static_cast<uint32_t>(u64("private_id"));
        st.pasids[str("name")] = host_.pasids().alloc(named(st.sets, "set"), str("owner"), priv);
    } else if (op == "free_pasid") host_.pasids().free(named(st.sets, "set"), str("owner"), named(st.pasids, "pasid"));
    else if (op == "attach") {
        const auto pasid = pasid_of();
        if (pasid && a.contains("owner")) host_.pasids().check_owner(*pasid, str("owner"));
        const unsigned own = device_unit();
        const uint32_t dom = named(st.domains, "domain");
        if (fd.hwpt_iommu(dom) != own)
            throw host::HostError(host::HostError::Kind::invalid, "domain " + str("domain") + " is on IOMMU " +
                                                                      fd.iommu_name(fd.hwpt_iommu(dom)) + ", device " +
                                                                      str("device") + " is behind " + fd.iommu_name(own));
        fd.attach(rid_of(), pasid, dom);
    } else if (op == "detach") fd.detach(rid_of(), pasid_of(), device_unit());
    else if (op == "map" || op == "guest_map") {
        // The host's IOAS, or the guest kernel's DMA IOAS of a VM (it waits for the guest's boot).
        host::vm::Vm* vm = op == "guest_map" ? vm_of(str("vm")) : nullptr;
        std::optional<uint64_t> iova;
        if (a.contains("iova")) iova = u64("iova");
        const uint64_t page = a.contains("page_bytes") ? size("page_bytes") : 4096;
        // Which sizes a domain can map is the IOMMU backend's answer (IommuFd::map checks).
        if (page < 4096 || !std::has_single_bit(page))
            throw host::HostError(host::HostError::Kind::invalid, "page_bytes must be a power of two of at least 4KiB");
        const auto shift = static_cast<unsigned>(std::countr_zero(page));
        const uint64_t sz = size("size_bytes");
        const uint64_t v = vm ? vm->guest_map(sz, iova, shift) : fd.map(named(st.ioas, "ioas"), sz, iova, shift);
        if (a.contains("name")) st.mappings[str("name")] = {v, sz};
    } else if (op == "unmap" || op == "guest_unmap") {
        host::vm::Vm* vm = op == "guest_unmap" ? vm_of(str("vm")) : nullptr;
        uint64_t iova, sz;
        if (a.contains("mapping")) {
            auto it = st.mappings.find(str("mapping"));
            if (it == st.mappings.end())
                throw host::HostError(host::HostError::Kind::not_found, "mapping \"" + str("mapping") + "\" was not created");
            std::tie(iova, sz) = it->second;
        }
        else iova = u64("iova"), sz = size("size_bytes");
        if (vm) vm->guest_unmap(iova, sz);
        else fd.unmap(named(st.ioas, "ioas"), iova, sz);
    } else if (op == "invalidate")
        fd.invalidate(named(st.domains, "domain"), a.contains("iova") ? u64("iova") : 0,
                      a.contains("size_bytes") ? size("size_bytes") : 0);
    else if (op == "flush_queue") fd.flush_queue_now();
    else if (op == "start" || op == "stop") {
        pcie::TrafficEndpoint* d = device_ ? device_(str("device")) : nullptr;
        if (!d) throw host::HostError(host::HostError::Kind::invalid, "\"" + str("device") + "\" is not a traffic device");
        if (op == "start") d->start();
        else d->stop();
    }
    else if (op == "reset_stats") {
        for (stats::Group* g : root_.children())
            if (g != &stats_) g->reset_all();
        reset_at_.set(sc_core::sc_time_stamp().to_seconds() * 1e9);
    }
    else if (op == "wait") host_.cpu().spend(Duration::us(read::number(a["us"], s.path + "/us", 0, 1e9)));
    else if (op == "expect") {
        const std::string at = " at " + std::to_string(sc_core::sc_time_stamp().to_seconds() * 1e6) + " us";
        const StatSelector sel = select_stat(root_, str("stat"), a.contains("field") ? str("field") : "", s.path + "/stat");
        const double v = selected_value(sel);
        for (const char* c : {"eq", "ne", "lt", "le", "gt", "ge"}) {
            if (!a.contains(c)) continue;
            const double x = a[c].get<double>();
            const std::string cs = c;
            const bool ok = cs == "eq" ? v == x : cs == "ne" ? v != x : cs == "lt" ? v < x : cs == "le" ? v <= x : cs == "gt" ? v > x : v >= x;
            if (!ok) {
                failed_.inc();
                failures_.push_back(s.path + " (expect): " + sel.str() + " = " + format_number(v) +
                                    (sel.entry->unit.empty() ? "" : " " + sel.entry->unit) + ", expected " + cs + " " +
                                    format_number(x) + at);
            }
        }
    }
}

} // namespace iommusim::sim
