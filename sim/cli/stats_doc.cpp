// SPDX-License-Identifier: Apache-2.0
// `iommusim list-stats [PLATFORM]`: every stat a platform registers, as a
// Markdown table of name patterns (component names replaced by their kind),
// units, kinds, the model that owns each and its description. Without a
// platform, a catalogue platform that instantiates every component type;
// platforms/STATS.md is that output (scripts/gen-stats-doc, kept in step by
// a test).
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <regex>

#include "sim/cli/cli.hpp"
#include "sim/platform.hpp"
#include "sim/stat_select.hpp"

namespace iommusim::cli {

using sim::json;

namespace {

/// One instance of every component type the builder knows, with the
/// features that register extra stats (ATS, PRI, SR-IOV, a switch, a scenario).
const char* kCatalogue = R"({
  "name": "stats-catalogue", "duration_us": 1,
  "iommus": [ { "name": "dmar0", "type": "vtd" } ],
  "topology": {
    "root_complex": { "name": "rc0", "iommu": "dmar0", "root_ports": [ { "name": "rp0" }, { "name": "rp1" } ] },
    "switches": [ { "name": "sw0", "port": "rp1", "downstream_ports": [ { "name": "sw0.dp0" } ] } ]
  },
  "devices": [
    { "name": "nic0", "type": "nic", "port": "rp0", "tx_rate_gbps": 1 },
    { "name": "dev0", "type": "traffic", "port": "sw0.dp0", "ats": {},
      "workloads": [ { "type": "sequential", "region_bytes": "64KiB" } ] }
  ],
  "scenario": [ { "op": "wait", "us": 0 } ]
})";

struct Row {
    std::string pattern, unit, kind, model, description;
};

class Collector : public stats::Visitor {
public:
    std::vector<Row> rows;
    std::map<std::string, std::string> placeholder, model_of;
    void enter(const stats::Group& g) override { stack_.push_back(g.name()); }
    void leave(const stats::Group&) override { stack_.pop_back(); }
    void stat(const stats::Entry& e) override {
        static const std::regex numbered("^([a-z_]+?)([0-9]+)$");
        std::string pattern, model = "platform";
        for (size_t i = 1; i < stack_.size(); ++i) {
            std::string part = stack_[i];
            if (i == 1 && model_of.count(part)) model = model_of[part];
            else if (i == 1) model = part;
            if (auto it = placeholder.find(part); it != placeholder.end()) part = it->second;
            else part = std::regex_replace(part, numbered, "$1<N>"); // fn0 -> fn<N>
            pattern += part + ".";
        }
        pattern += e.name;
        const char* kind = std::visit([](const auto& s) -> const char* {
            using T = std::decay_t<decltype(s)>;
            if constexpr (std::is_same_v<T, stats::Counter>) return "counter";
            else if constexpr (std::is_same_v<T, stats::Histogram>) return "histogram";
            else if constexpr (std::is_same_v<T, stats::Derived>) return "derived";
            else return "value";
        }, *e.stat);
        for (const auto& r : rows)
            if (r.pattern == pattern) return;
        rows.push_back(Row{pattern, e.unit, kind, model, e.description});
    }

private:
    std::vector<std::string> stack_;
};

std::string cell(std::string s) {
    for (size_t p = 0; (p = s.find('|', p)) != std::string::npos; p += 2) s.replace(p, 1, "\\|");
    return s;
}

int list_stats(const std::string& file) {
    std::unique_ptr<sim::Platform> platform;
    try {
        sim::PlatformConfig cfg = file.empty() ? sim::parse_platform(json::parse(kCatalogue)) : sim::load_platform(file);
        platform = std::make_unique<sim::Platform>(std::move(cfg));
    } catch (const sim::ConfigError& e) {
        std::cerr << "iommusim: " << (file.empty() ? "stats catalogue" : file) << ": " << e.what() << "\n";
        return 2;
    }
    const sim::PlatformConfig& cfg = platform->config();
    Collector c;
    for (const auto& m : cfg.iommus) {
        c.placeholder[m.name] = "<iommu>";
        c.model_of[m.name] = "iommu: " + m.type;
    }
    for (const auto& d : cfg.devices) {
        c.placeholder[d.name] = "<device>";
        c.model_of[d.name] = "device: " + d.type;
    }
    c.model_of["os"] = "host";
    for (const auto& rc : cfg.topology.root_complexes) {
        c.placeholder[rc.desc.name] = "<rc>";
        c.model_of[rc.desc.name] = "pcie: root complex";
        for (const auto& p : rc.desc.root_ports) c.placeholder[p.name] = "<port>";
    }
    for (const auto& sw : cfg.topology.switches) {
        c.placeholder[sw.name] = "<switch>";
        c.model_of[sw.name] = "pcie: switch";
        for (const auto& p : sw.downstream_ports) c.placeholder[p.name] = "<port>";
    }
    platform->stats().accept(c);
    std::printf("| stat | unit | kind | model | description |\n|---|---|---|---|---|\n");
    for (const auto& r : c.rows)
        std::printf("| `%s` | %s | %s | %s | %s |\n", r.pattern.c_str(), cell(r.unit).c_str(), r.kind.c_str(),
                    cell(r.model).c_str(), cell(r.description).c_str());
    return 0;
}

} // namespace

void add_list_stats_command(CLI::App& app, int& rc) {
    auto file = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand("list-stats", "every stat (name pattern, unit, kind, model, description) as Markdown");
    cmd->add_option("platform", *file, "a platform JSON file (default: a catalogue of every component type)");
    cmd->callback([file, &rc] { rc = list_stats(*file); });
}

} // namespace iommusim::cli
