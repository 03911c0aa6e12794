// SPDX-License-Identifier: Apache-2.0
// `iommusim diff A B`: the stats of two results folders side by side, with
// absolute and relative change, filtered by a threshold and a name pattern.
// Exit code as diff(1): 0 nothing listed, 1 differences listed, 2 bad input.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <regex>

#include "sim/cli/cli.hpp"
#include "sim/stat_select.hpp"
#include "sim/stats_writer.hpp"

namespace iommusim::cli {

using sim::json;

namespace {

struct Num {
    double v;
    std::string unit;
};

/// Flattens a stats.json document: "path" for a value, "path.field" for each histogram field.
void flatten(const json& j, const std::string& prefix, std::vector<std::pair<std::string, Num>>& out) {
    if (!j.is_object()) return;
    if (j.contains("unit") && j.contains("description")) {
        const std::string unit = j["unit"].get<std::string>();
        if (j.contains("value")) {
            if (j["value"].is_number()) out.push_back({prefix, Num{j["value"].get<double>(), unit}});
            return;
        }
        for (const auto& f : sim::histogram_fields())
            if (j.contains(f) && j[f].is_number()) out.push_back({prefix + "." + f, Num{j[f].get<double>(), f == "count" ? "samples" : unit}});
        return;
    }
    for (auto it = j.begin(); it != j.end(); ++it) {
        if (prefix.empty() && it.key() == "host") continue; // wall-clock figures, not results
        flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
    }
}

bool load(const std::string& arg, json& doc) {
    fs::path p(arg);
    if (fs::is_directory(p)) p /= "stats.json";
    std::ifstream in(p);
    if (!in) {
        std::cerr << "iommusim: diff: cannot read " << p.string() << "\n";
        return false;
    }
    doc = json::parse(in, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) {
        std::cerr << "iommusim: diff: " << p.string() << " is not a stats.json document\n";
        return false;
    }
    return true;
}

struct DiffOptions {
    std::string a, b, filter;
    double threshold_pct = 0;
    bool all = false;
};

int diff(const DiffOptions& o) {
    json da, db;
    if (!load(o.a, da) || !load(o.b, db)) return 2;
    std::regex re;
    try {
        re = std::regex(o.filter.empty() ? "." : o.filter);
    } catch (const std::regex_error& e) {
        std::cerr << "iommusim: diff: --filter \"" << o.filter << "\" is not a regular expression: " << e.what() << "\n";
        return 2;
    }
    std::vector<std::pair<std::string, Num>> fa, fb;
    flatten(da, "", fa);
    flatten(db, "", fb);
    std::map<std::string, Num> mb(fb.begin(), fb.end());
    std::map<std::string, bool> seen;
    std::string rows;
    size_t listed = 0;
    auto row = [&](const std::string& name, const Num* x, const Num* y) {
        if (!std::regex_search(name, re)) return;
        std::string change = "", rel = "";
        bool differs = !x || !y;
        if (x && y) {
            const double d = y->v - x->v;
            differs = d != 0;
            const double r = x->v != 0 ? 100.0 * d / std::fabs(x->v) : (d == 0 ? 0.0 : INFINITY);
            if (!o.all && (!differs || std::fabs(r) < o.threshold_pct)) return;
            change = (d > 0 ? "+" : "") + sim::format_number(d);
            rel = std::isinf(r) ? "new" : (r > 0 ? "+" : "") + sim::format_number(std::round(r * 100) / 100) + " %";
        } else if (!o.all && !differs) {
            return;
        }
        char line[512];
        std::snprintf(line, sizeof line, "%-48s %14s %14s %14s %10s  %s\n", name.c_str(),
                      x ? sim::format_number(x->v).c_str() : "-", y ? sim::format_number(y->v).c_str() : "-",
                      change.c_str(), rel.c_str(), (x ? x->unit : y->unit).c_str());
        rows += line;
        if (differs) ++listed;
    };
    for (const auto& [name, x] : fa) {
        seen[name] = true;
        auto it = mb.find(name);
        row(name, &x, it == mb.end() ? nullptr : &it->second);
    }
    for (const auto& [name, y] : fb)
        if (!seen.count(name)) row(name, nullptr, &y);
    std::printf("%-48s %14s %14s %14s %10s  %s\n", "stat", "A", "B", "B-A", "change", "unit");
    std::fputs(rows.c_str(), stdout);
    if (rows.empty()) std::printf("(no stat differs%s)\n", o.threshold_pct > 0 ? " by the threshold" : "");
    return listed ? 1 : 0;
}

} // namespace

void add_diff_command(CLI::App& app, int& rc) {
    auto o = std::make_shared<DiffOptions>();
    auto* cmd = app.add_subcommand("diff", "compare the stats of two results folders (or stats.json files)");
    cmd->add_option("a", o->a, "results folder or stats.json (before)")->required();
    cmd->add_option("b", o->b, "results folder or stats.json (after)")->required();
    cmd->add_option("--threshold", o->threshold_pct, "list only stats that changed by at least this many percent")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--filter", o->filter, "list only stats whose name matches this regular expression (e.g. 'latency|iotlb')");
    cmd->add_flag("--all", o->all, "list every stat, changed or not");
    cmd->callback([o, &rc] { rc = diff(*o); });
}

} // namespace iommusim::cli
