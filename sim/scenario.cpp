// SPDX-License-Identifier: Apache-2.0
#include "sim/scenario.hpp"

#include <bit>
#include <charconv>
#include <stdexcept>
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
        {"free_domain", "free a domain no device is attached to: the unit's caches for it are invalidated and waited for before its tag (DID / DomainID) is reused",
         {{"domain", A::domain}}, {}, {}},
        {"create_process", "a process with its own CPU page tables (in host.cpu.arch's format)", {{"name", A::string}}, {}, A::process},
        {"alloc_sva_domain", "an SVA domain sharing a process's page tables, on an IOMMU (required when there are several)",
         {{"name", A::string}, {"process", A::process}}, {{"iommu", A::iommu}}, A::domain},
        {"mmap", "map process memory", {{"process", A::process}, {"va", A::integer}, {"size_bytes", A::size}}, {}, {}},
        {"munmap", "unmap process memory (flushes every SVA domain bound to it)",
         {{"process", A::process}, {"va", A::integer}, {"size_bytes", A::size}}, {}, {}},
        {"create_pasid_set", "the PASID set of an owner (a VM or a process; one set per owner) with a quota (default host.pasid.default_quota)",
         {{"name", A::string}, {"owner", A::string}}, {{"quota", A::integer}}, A::pasid_set},
        {"alloc_pasid", "a host PASID from the owner's set (set: optional, created with the default quota on first use): the lowest free one, "
                        "or exactly pasid_value; private_id records the set-private (guest) ID that maps to it",
         {{"name", A::string}, {"owner", A::string}}, {{"set", A::pasid_set}, {"private_id", A::integer}, {"pasid_value", A::integer}}, A::pasid},
        {"free_pasid", "return a PASID (pasid, pasid_value or the owner's private_id) to its set; a PASID still attached is torn down first",
         {{"owner", A::string}}, {{"set", A::pasid_set}, {"pasid", A::pasid}, {"pasid_value", A::integer}, {"private_id", A::integer}}, {}},
        {"lookup_pasid", "the host PASID of the owner's set-private (guest) ID: not_found if the set has none; name defines it for later steps, "
                         "host_pasid checks its value",
         {{"owner", A::string}, {"private_id", A::integer}}, {{"name", A::string}, {"host_pasid", A::integer}}, A::pasid},
        {"bind_sva", "SVA bind: a hidden PASID from the owner's set (quota charged) attached to an SVA domain; name defines it",
         {{"device", A::device}, {"domain", A::domain}, {"owner", A::string}},
         {{"name", A::string}, {"function", A::integer}, {"iommu", A::iommu}}, A::pasid},
        {"attach", "make a device (function, PASID) translate through a domain on behalf of owner (default kernel): a PASID (pasid, "
                   "pasid_value, or the owner's private_id) must be allocated in the owner's set, and the device's IOMMU group must "
                   "belong to the owner (and, without PASID, to the domain); iommu (default: the device's own) must be the device's",
         {{"device", A::device}, {"domain", A::domain}},
         {{"function", A::integer}, {"pasid", A::pasid}, {"pasid_value", A::integer}, {"private_id", A::integer}, {"owner", A::string},
          {"iommu", A::iommu}}, {}},
        {"detach", "architected teardown of an attachment; iommu (default: the device's own) must be the device's",
         {{"device", A::device}},
         {{"function", A::integer}, {"pasid", A::pasid}, {"pasid_value", A::integer}, {"private_id", A::integer}, {"owner", A::string},
          {"iommu", A::iommu}}, {}},
        {"map", "map fresh memory into an IOAS", {{"ioas", A::ioas}, {"size_bytes", A::size}},
         {{"name", A::string}, {"iova", A::integer}, {"page_bytes", A::size}}, A::mapping},
        {"unmap", "unmap a mapping (strict: flush and wait; lazy: flush queue)", {{"ioas", A::ioas}},
         {{"mapping", A::mapping}, {"iova", A::integer}, {"size_bytes", A::size}}, {}},
        {"guest_map", "map fresh guest memory into a VM's guest DMA domain (the guest kernel's map; under caching mode its flush traps)",
         {{"vm", A::string}, {"size_bytes", A::size}}, {{"name", A::string}, {"iova", A::integer}, {"page_bytes", A::size}}, A::mapping},
        {"guest_unmap", "unmap a guest mapping: the guest's strict flush traps to the VMM, which invalidates the physical unit",
         {{"vm", A::string}}, {{"mapping", A::mapping}, {"iova", A::integer}, {"size_bytes", A::size}}, {}},
        {"guest_bind_sva", "the guest kernel of a VM binds a new process of its own (pages faulted in on first touch) to a passed-through "
                           "device at guest PASID guest_pasid (iommu_sva_bind_device): an SVA domain on its vIOMMU, the PASID entry write "
                           "traps and the VMM binds the guest PASID at a host PASID of the VM's set (lookup_pasid with owner = the VM, "
                           "private_id = guest_pasid names it)",
         {{"vm", A::string}, {"device", A::device}, {"guest_pasid", A::integer}}, {{"function", A::integer}}, {}},
        {"guest_wbinvd", "a guest vCPU of a VM executes WBINVD: an in-kernel exit (vmm.kernel_exit_ns), plus the host's cache flush "
                         "(vmm.wbinvd_flush_ns) while any domain the VM's devices are attached to does not enforce coherency",
         {{"vm", A::string}}, {}, {}},
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

/// Iterations of one repeated step at most: 16 M (a million PASIDs and more).
constexpr uint64_t kMaxRepeat = uint64_t{1} << 24;

uint64_t eval_index(const std::string& e, uint64_t i) {
    if (e.empty() || e[0] != 'i') throw std::invalid_argument("\"{" + e + "}\": expected an expression starting with i");
    uint64_t v = i;
    for (size_t p = 1; p < e.size();) {
        const char op = e[p++];
        uint64_t m = 0;
        const auto [end, ec] = std::from_chars(e.data() + p, e.data() + e.size(), m);
        if (ec != std::errc() || end == e.data() + p)
            throw std::invalid_argument("\"{" + e + "}\": expected a number after '" + std::string(1, op) + "'");
        p = static_cast<size_t>(end - e.data());
        switch (op) {
        case '%':
        case '/':
            if (m == 0) throw std::invalid_argument("\"{" + e + "}\": division by zero");
            v = op == '%' ? v % m : v / m;
            break;
        case '+': v += m; break;
        case '*': v *= m; break;
        default: throw std::invalid_argument("\"{" + e + "}\": expected one of % / + * after i, got '" + std::string(1, op) + "'");
        }
    }
    return v;
}

/// Whether a repeated step's value holds a template.
bool templated(const json& v) { return v.is_string() && v.get_ref<const std::string&>().find('{') != std::string::npos; }

/// A name family a repeated step defines: "p{i}" stands for p0 .. p<count-1>.
struct Family {
    std::string prefix, suffix;
    uint64_t count;
    A kind;
};

} // namespace

std::string instantiate(const std::string& s, uint64_t i) {
    const size_t first = s.find('{');
    if (first == std::string::npos) return s;
    std::string out(s, 0, first);
    for (size_t p = first;;) {
        const size_t b = s.find('{', p);
        out.append(s, p, b == std::string::npos ? std::string::npos : b - p);
        if (b == std::string::npos) return out;
        const size_t e = s.find('}', b);
        if (e == std::string::npos) throw std::invalid_argument("\"" + s + "\": '{' without '}'");
        out += std::to_string(eval_index(s.substr(b + 1, e - b - 1), i));
        p = e + 1;
    }
}

std::vector<ScenarioStep> parse_scenario(const json& arr, const std::set<std::string>& devices,
                                         const std::vector<std::string>& iommus, double duration_us) {
    std::vector<ScenarioStep> out;
    std::map<std::string, double> earliest_us; // per thread: the earliest time its next step can start
    std::map<std::string, A> defined; // names defined by earlier steps, with their kind
    std::vector<Family> families;     // names defined by earlier repeated steps
    read::array(arr, "/scenario");
    for (size_t i = 0; i < arr.size(); ++i) {
        const std::string path = "/scenario/" + std::to_string(i);
        const json& o = read::object(arr[i], path);
        if (!o.contains("op")) throw ConfigError(path, "missing key \"op\"");
        ScenarioStep st;
        st.path = path;
        st.op = read::string(o["op"], path + "/op");
        const OpSpec& spec = spec_of(st.op, path + "/op");
        std::vector<std::string> allowed = {"op", "thread", "at_us", "expect_error", "repeat"};
        for (auto& [k, a] : spec.required) allowed.push_back(k);
        for (auto& [k, a] : spec.optional) allowed.push_back(k);
        check_keys(o, path, allowed);
        if (o.contains("thread")) st.thread = read::string(o["thread"], path + "/thread");
        if (o.contains("at_us")) st.at_us = read::number(o["at_us"], path + "/at_us", 0, 1e9);
        if (o.contains("repeat")) {
            st.repeat = read::u64(o["repeat"], path + "/repeat", 1, kMaxRepeat);
            if (st.op == "expect" || st.op == "reset_stats")
                throw ConfigError(path + "/repeat", "expected no repeat on " + st.op + ": it would check or reset the same thing again");
        }
        if (o.contains("expect_error")) {
            const std::string e = read::string(o["expect_error"], path + "/expect_error");
            if (std::find(kErrorKinds.begin(), kErrorKinds.end(), e) == kErrorKinds.end())
                throw ConfigError(path + "/expect_error", "expected one of quota_exceeded|not_owner|not_found|busy|invalid|no_space, got \"" + e + "\"");
            st.expect_error = e;
        }
        // A repeated step is checked at its first and last iteration: templates
        // must be well formed and give valid values and known names at both ends.
        json inst = o;
        auto check = [&](const std::string& k, A a) {
            const std::string p = path + "/" + k;
            const json& v = inst[k];
            // Keys with a narrower meaning than their kind.
            if (k == "levels") { (void)read::u64(v, p, 3, 5); return; }
            if (k == "pasid_value" || k == "private_id" || k == "host_pasid" || k == "guest_pasid") { (void)read::u64(v, p, 1, pcie::kPasidMask); return; }
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
                bool known = it != defined.end() && it->second == a;
                for (const Family& f : families) {
                    if (known) break;
                    if (f.kind != a || n.size() <= f.prefix.size() + f.suffix.size() || n.compare(0, f.prefix.size(), f.prefix) ||
                        n.compare(n.size() - f.suffix.size(), f.suffix.size(), f.suffix))
                        continue;
                    const std::string digits = n.substr(f.prefix.size(), n.size() - f.prefix.size() - f.suffix.size());
                    uint64_t x = 0;
                    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), x);
                    known = ec == std::errc() && end == digits.data() + digits.size() && x < f.count &&
                            std::to_string(x) == digits;
                }
                if (!known)
                    throw ConfigError(p, std::string("no ") + kind_name(a) + " named \"" + n + "\" defined by an earlier step");
            }
            }
        };
        for (auto& [k, a] : spec.required)
            if (!o.contains(k)) throw ConfigError(path, std::string("missing key \"") + k + "\" of op " + st.op);
        for (const uint64_t it : {uint64_t{0}, st.repeat - 1}) {
            for (auto& [k, v] : o.items()) {
                if (!templated(v)) continue;
                if (st.repeat == 1 && k != "stat")
                    throw ConfigError(path + "/" + k, "expected no {i} template without \"repeat\"");
                if (k == "stat" || k == "name") continue; // a stat path is literal; a name defines a family (below)
                try {
                    const std::string x = instantiate(v.get<std::string>(), it);
                    // An integer or size key given as a template reads the number it gives.
                    inst[k] = x;
                    for (auto& [rk, ra] : spec.required)
                        if (rk == k && (ra == A::integer || ra == A::size || ra == A::number)) inst[k] = json::parse(x);
                    for (auto& [ok, oa] : spec.optional)
                        if (ok == k && (oa == A::integer || oa == A::size || oa == A::number)) inst[k] = json::parse(x);
                } catch (const std::invalid_argument& e) {
                    throw ConfigError(path + "/" + k, e.what());
                } catch (const json::parse_error&) {
                    throw ConfigError(path + "/" + k, "expected a template giving a number, got \"" + v.get<std::string>() + "\"");
                }
            }
            for (auto& [k, a] : spec.required) check(k, a);
            for (auto& [k, a] : spec.optional)
                if (o.contains(k)) check(k, a);
        }
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
        {
            int refs = 0;
            for (const char* k : {"pasid", "pasid_value", "private_id"}) refs += o.contains(k) && st.op != "alloc_pasid" && st.op != "lookup_pasid";
            if (refs > 1) throw ConfigError(path, "name the PASID once: one of \"pasid\", \"pasid_value\", \"private_id\"");
            if (st.op == "free_pasid" && refs == 0)
                throw ConfigError(path, "free_pasid needs one of \"pasid\", \"pasid_value\", \"private_id\"");
            if ((st.op == "attach" || st.op == "detach") && o.contains("private_id") && !o.contains("owner"))
                throw ConfigError(path + "/private_id", "a set-private PASID is translated through its owner's set: add \"owner\"");
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
        if (st.op == "wait") t += inst["us"].get<double>() * static_cast<double>(st.repeat);
        if ((st.op == "unmap" || st.op == "guest_unmap") && !o.contains("mapping") && !(o.contains("iova") && o.contains("size_bytes")))
            throw ConfigError(path, "unmap needs \"mapping\" or both \"iova\" and \"size_bytes\"");
        if (spec.defines && o.contains("name")) {
            const std::string n = o["name"].get<std::string>();
            const size_t b = n.find("{i}");
            if (st.repeat > 1 && (b == std::string::npos || n.find('{', b + 1) != std::string::npos || n.find('{') != b))
                throw ConfigError(path + "/name", "expected a name with one {i} (each iteration defines its own name), got \"" + n + "\"");
            if (st.repeat > 1) {
                families.push_back(Family{n.substr(0, b), n.substr(b + 3), st.repeat, *spec.defines});
            } else {
                if (defined.count(n)) throw ConfigError(path + "/name", "name \"" + n + "\" is already defined by an earlier step");
                defined[n] = *spec.defines;
            }
        }
        st.args = o;
        for (const char* k : {"op", "thread", "at_us", "expect_error", "repeat"}) st.args.erase(k);
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
        if (s.repeat > 1) o["repeat"] = s.repeat;
        merge_into(o, s.args);
        arr.push_back(std::move(o));
    }
    return arr;
}

void document_scenario(std::vector<ParamSection>& out) {
    ParamSection s{"scenario",
                   "a scenario step (/scenario/N): {op, thread (default main), at_us, expect_error, repeat, args...}; "
                   "repeat: N runs the step N times (not expect, reset_stats), its strings may hold {i}, {i%M}, {i/M}, {i+M}, {i*M} "
                   "(iteration number, left to right), an integer or size key may be such a string, a name must hold {i}",
                   {}};
    for (const auto& o : ops()) {
        std::string args;
        for (auto& [k, a] : o.required) args += std::string(args.empty() ? "" : ", ") + k;
        for (auto& [k, a] : o.optional) args += std::string(args.empty() ? "" : ", ") + "[" + k + "]";
        s.params.push_back({o.op, "op", "", "", std::string(o.description) + "; keys: " + (args.empty() ? "none" : args)});
    }
    out.push_back(std::move(s));
}

std::string render_group_owners(const std::vector<ScenarioStep>& steps, const pcie::Topology& topo) {
    std::map<int, std::string> members;
    std::map<int, std::vector<std::string>> owners;
    for (int f : topo.functions()) {
        std::string& m = members[topo.node(f).iommu_group];
        m += (m.empty() ? "" : ", ") + topo.node(f).bdf.str();
    }
    for (const auto& s : steps) {
        if ((s.op != "attach" && s.op != "bind_sva") || !s.args.contains("device") || s.expect_error) continue;
        const auto fns = topo.functions_of(s.args["device"].get<std::string>());
        const uint64_t f = s.args.contains("function") ? s.args["function"].get<uint64_t>() : 0;
        if (f >= fns.size()) continue;
        const std::string who = s.args.contains("owner") ? s.args["owner"].get<std::string>() : host::Isolation::kKernel;
        auto& o = owners[topo.node(fns[f]).iommu_group];
        if (std::find(o.begin(), o.end(), who) == o.end()) o.push_back(who);
    }
    std::string out = "iommu group owners (scenario attach steps):\n";
    for (const auto& [g, m] : members) {
        out += "  group " + std::to_string(g) + " (" + m + "): ";
        const auto it = owners.find(g);
        if (it == owners.end()) out += "unowned (kernel)";
        else if (it->second.size() == 1) out += "owner " + it->second.front();
        else {
            out += "owners in turn";
            for (size_t i = 0; i < it->second.size(); ++i) out += (i ? ", " : " ") + it->second[i];
            out += " (one at a time: every function detaches before another owner attaches)";
        }
        out += "\n";
    }
    return out;
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
    // One CPU per scenario thread (a process per thread), in order of first appearance.
    for (unsigned i = 0; i < threads.size(); ++i)
        host_.add_thread("scenario_" + threads[i], [this, t = threads[i]] { run_thread(t); }, i);
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
        host_.cpu().sync(); // a step observes and acts on the platform at the thread's time
        if (s.at_us) {
            const sc_core::sc_time at(*s.at_us, sc_core::SC_US);
            if (at > sc_core::sc_time_stamp()) sc_core::wait(at - sc_core::sc_time_stamp());
        }
        ran_[i] = true;
        for (uint64_t it = 0; it < s.repeat; ++it) {
            steps_run_.inc();
            std::string err_kind, err_msg;
            try {
                execute(s, it);
            } catch (const host::HostError& e) {
                err_kind = host::to_string(e.kind());
                err_msg = e.what();
            } catch (const sc_core::sc_unwind_exception&) {
                throw; // the thread is being killed (end of run): SystemC requires it to propagate
            } catch (const std::exception& e) { // a model refused the operation: a failure, not a crash
                err_kind = "error";
                err_msg = e.what();
            }
            if (s.expect_error ? err_kind == *s.expect_error : err_kind.empty()) continue;
            failed_.inc();
            if (failures_.size() >= kMaxFailureMessages) continue; // counted, not kept
            const std::string at = " at " + std::to_string(sc_core::sc_time_stamp().to_seconds() * 1e6) + " us" +
                                   (s.repeat > 1 ? " (iteration " + std::to_string(it) + ")" : "");
            if (s.expect_error)
                failures_.push_back(s.path + " (" + s.op + "): expected error " + *s.expect_error + ", got " +
                                    (err_kind.empty() ? "success" : err_kind + ": " + err_msg) + at);
            else
                failures_.push_back(s.path + " (" + s.op + "): " + err_kind + ": " + err_msg + at);
        }
    }
}

void ScenarioRunner::execute(const ScenarioStep& s, uint64_t iteration) {
    const json& a = s.args;
    host::IommuFd& fd = host_.iommufd();
    State& st = *state_;
    // A repeated step's values for this iteration (the parser checked the templates).
    auto str = [&](const char* k) { return s.repeat > 1 ? instantiate(a[k].get<std::string>(), iteration) : a[k].get<std::string>(); };
    auto number = [&](const char* k) -> json {
        if (s.repeat == 1 || !templated(a[k])) return a[k];
        return json::parse(instantiate(a[k].get<std::string>(), iteration));
    };
    // A name defined by a step that failed (or has not run yet on another thread).
    auto named = [&](const std::map<std::string, uint32_t>& m, const char* k) {
        auto it = m.find(str(k));
        if (it == m.end())
            throw host::HostError(host::HostError::Kind::not_found, "\"" + str(k) + "\" was not created (its step failed or has not run yet)");
        return it->second;
    };
    auto u64 = [&](const char* k) { return read::u64(number(k), s.path + "/" + k, 0, ~uint64_t{0}); };
    auto size = [&](const char* k) { return read::size(number(k), s.path + "/" + k, 0, ~uint64_t{0}); };
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
    // The caller of a PASID or attach step: a process, a VM, or the host kernel.
    auto owner = [&]() { return a.contains("owner") ? str("owner") : std::string(host::Isolation::kKernel); };
    auto pasid_of = [&]() -> std::optional<uint32_t> {
        if (a.contains("pasid")) return named(st.pasids, "pasid");
        if (a.contains("pasid_value")) return static_cast<uint32_t>(u64("pasid_value"));
        if (a.contains("private_id")) return host_.isolation().host_pasid(owner(), static_cast<uint32_t>(u64("private_id")));
        return std::nullopt;
    };
    // A named PASID set must be the owner's (the owner's set otherwise).
    auto set_of_step = [&]() {
        host::PasidAllocator& pa = host_.pasids();
        if (!a.contains("set")) return pa.set_for(owner());
        return named(st.sets, "set");
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
    } else if (op == "free_domain") fd.hwpt_free(named(st.domains, "domain"));
    else if (op == "create_process") st.processes[str("name")] = fd.process_create();
    else if (op == "alloc_sva_domain") st.domains[str("name")] = fd.hwpt_alloc_sva(named(st.processes, "process"), unit());
    else if (op == "mmap") fd.mmap(named(st.processes, "process"), u64("va"), size("size_bytes"));
    else if (op == "munmap") fd.munmap(named(st.processes, "process"), u64("va"), size("size_bytes"));
    else if (op == "create_pasid_set")
        st.sets[str("name")] = host_.pasids().create_set(
            str("owner"), a.contains("quota") ? std::optional<uint32_t>(static_cast<uint32_t>(u64("quota"))) : std::nullopt);
    else if (op == "alloc_pasid") {
        std::optional<uint32_t> priv, value;
        if (a.contains("private_id")) priv = static_cast<uint32_t>(u64("private_id"));
        if (a.contains("pasid_value")) value = static_cast<uint32_t>(u64("pasid_value"));
        st.pasids[str("name")] = host_.pasids().alloc(set_of_step(), owner(), priv, value);
    } else if (op == "free_pasid") {
        const uint32_t p = *pasid_of();
        if (a.contains("set") && host_.pasids().set_of(p) != named(st.sets, "set"))
            throw host::HostError(host::HostError::Kind::not_found, "PASID " + std::to_string(p) + " is not allocated in set " + str("set"));
        host_.isolation().free_pasid(owner(), p);
    } else if (op == "lookup_pasid") {
        const uint32_t p = host_.isolation().host_pasid(owner(), static_cast<uint32_t>(u64("private_id")));
        if (a.contains("host_pasid") && p != u64("host_pasid"))
            throw std::runtime_error("private PASID " + std::to_string(u64("private_id")) + " of \"" + owner() + "\" maps to host PASID " +
                                     std::to_string(p) + ", expected " + std::to_string(u64("host_pasid")));
        if (a.contains("name")) st.pasids[str("name")] = p;
    } else if (op == "attach" || op == "bind_sva") {
        const unsigned own = device_unit();
        const uint32_t dom = named(st.domains, "domain");
        if (fd.hwpt_iommu(dom) != own)
            throw host::HostError(host::HostError::Kind::invalid, "domain " + str("domain") + " is on IOMMU " +
                                                                      fd.iommu_name(fd.hwpt_iommu(dom)) + ", device " +
                                                                      str("device") + " is behind " + fd.iommu_name(own));
        if (op == "attach") host_.isolation().attach(owner(), own, rid_of(), pasid_of(), dom);
        else {
            const uint32_t p = host_.isolation().bind_sva(owner(), own, rid_of(), dom);
            if (a.contains("name")) st.pasids[str("name")] = p;
        }
    } else if (op == "detach") host_.isolation().detach(device_unit(), rid_of(), pasid_of());
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
    } else if (op == "guest_wbinvd") vm_of(str("vm"))->guest_wbinvd();
    else if (op == "guest_bind_sva") {
        host::vm::Vm* vm = vm_of(str("vm"));
        const pcie::Bdf rid = rid_of();
        std::optional<pcie::Bdf> vrid; // the virtual RID the VM sees the function at
        for (const auto& [v, dev] : vm->vmm().vdevices)
            if (dev.rid == rid) vrid = pcie::Bdf(v);
        if (!vrid)
            throw host::HostError(host::HostError::Kind::not_found,
                                  "device " + str("device") + " (" + rid.str() + ") is not passed through to VM " + str("vm"));
        (void)vm->guest_bind_sva(*vrid, static_cast<uint32_t>(u64("guest_pasid")));
    }
    else if (op == "invalidate")
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
    else if (op == "wait") host_.cpu().spend(Duration::us(read::number(number("us"), s.path + "/us", 0, 1e9)));
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
