// SPDX-License-Identifier: Apache-2.0
#include "sim/stats_writer.hpp"

#include <cmath>
#include <cstdio>
#include <vector>

namespace iommusim::sim {

namespace {

// Round to 9 significant digits so that stats.json is stable text across
// compilers' float formatting while keeping full useful precision.
json num(double v) {
    if (!std::isfinite(v)) return json(nullptr);
    if (v == std::floor(v) && std::fabs(v) < 9e15) return json(static_cast<int64_t>(v));
    char b[32];
    std::snprintf(b, sizeof b, "%.9g", v);
    // A value that rounds to an integer is written as one (16200000.000000002 ns, a time
    // computed in seconds, is "16200000", not "16200000.0").
    const double r = std::strtod(b, nullptr);
    if (r == std::floor(r) && std::fabs(r) < 9e15) return json(static_cast<int64_t>(r));
    return json(r);
}

class JsonVisitor : public stats::Visitor {
public:
    explicit JsonVisitor(json& root) { stack_.push_back(&root); }
    void enter(const stats::Group& g) override {
        if (depth_++ == 0) return; // the root group is the document itself
        json& parent = *stack_.back();
        parent[g.name()] = json::object();
        stack_.push_back(&parent[g.name()]);
    }
    void leave(const stats::Group&) override {
        if (--depth_ > 0) stack_.pop_back();
    }
    void stat(const stats::Entry& e) override {
        json j = json::object();
        std::visit([&](const auto& s) {
            using T = std::decay_t<decltype(s)>;
            if constexpr (std::is_same_v<T, stats::Histogram>) {
                j["count"] = s.count();
                j["min"] = num(s.min());
                j["mean"] = num(s.mean());
                j["p50"] = num(s.percentile(50));
                j["p90"] = num(s.percentile(90));
                j["p99"] = num(s.percentile(99));
                j["max"] = num(s.max());
            } else if constexpr (std::is_same_v<T, stats::Counter>) {
                j["value"] = s.value();
            } else {
                j["value"] = num(s.value());
            }
        }, *e.stat);
        j["unit"] = e.unit;
        j["description"] = e.description;
        (*stack_.back())[e.name] = std::move(j);
    }

private:
    std::vector<json*> stack_;
    int depth_ = 0;
};

/// Stats that answer "what did this design cost": always in the summary.
bool headline(const std::string& path) {
    static const char* keys[] = {"throughput", "latency", "rx_dropped", "oracle.", "invalidation.", "iotlb.hits",
                                 "iotlb.misses", "atc.hits", "atc.misses", "faults", "p2p_direct", "p2p_redirected",
                                 "scenario.", "simulated_time", "dma_errors", ".errors"};
    for (const char* k : keys)
        if (path.find(k) != std::string::npos) return true;
    return false;
}

class SummaryVisitor : public stats::Visitor {
public:
    explicit SummaryVisitor(bool all) : all_(all) {}
    std::string out;
    void enter(const stats::Group& g) override { path_.push_back(g.name()); }
    void leave(const stats::Group&) override { path_.pop_back(); }
    void stat(const stats::Entry& e) override {
        std::string name;
        for (size_t i = 1; i < path_.size(); ++i) name += path_[i] + ".";
        name += e.name;
        // The oracle's verdict is news when it is zero too: always shown.
        const bool verdict = name.ends_with("oracle.violations") || name.ends_with("oracle.checked");
        if (!all_ && !headline(name)) return;
        char line[320];
        line[0] = 0;
        std::visit([&](const auto& s) {
            using T = std::decay_t<decltype(s)>;
            if constexpr (std::is_same_v<T, stats::Histogram>) {
                if (s.count() == 0) return;
                std::snprintf(line, sizeof line, "  %-44s n=%-10llu p50=%-10s p99=%-10s max=%-10s %s\n", name.c_str(),
                              static_cast<unsigned long long>(s.count()), format_number(s.percentile(50)).c_str(),
                              format_number(s.percentile(99)).c_str(), format_number(s.max()).c_str(), e.unit.c_str());
            } else {
                double v = 0;
                if constexpr (std::is_same_v<T, stats::Counter>) v = static_cast<double>(s.value());
                else v = s.value();
                if (v == 0 && !verdict) return;
                std::snprintf(line, sizeof line, "  %-44s %-14s %s\n", name.c_str(), format_number(v).c_str(), e.unit.c_str());
            }
        }, *e.stat);
        out += line;
    }

private:
    bool all_;
    std::vector<std::string> path_;
};

double counter_or_zero(const stats::Group& g, const char* name) {
    const stats::Entry* e = g.find(name);
    if (!e) return 0;
    if (const auto* c = std::get_if<stats::Counter>(e->stat.get())) return static_cast<double>(c->value());
    return 0;
}

/// Warnings about runs whose headline numbers mean little: most packets
/// dropped, most DMAs faulted (a missing attach or mapping, usually).
void collect_warnings(const stats::Group& g, std::vector<std::string>& out) {
    const std::string p = g.path();
    if (g.find("rx_packets") && g.find("rx_dropped")) { // a NIC
        const double ok = counter_or_zero(g, "rx_packets"), drop = counter_or_zero(g, "rx_dropped"),
                     err = counter_or_zero(g, "dma_errors"), all = ok + drop + err;
        if (all > 0 && drop * 2 > all)
            out.push_back(p + ": " + format_number(100.0 * drop / all) + " % of packets dropped (no RX buffer posted)");
        if (all > 0 && err * 2 > all)
            out.push_back(p + ": " + format_number(100.0 * err / all) + " % of packets' DMAs faulted");
    }
    if (g.find("read_tlps") && g.find("errors")) { // a traffic device
        const double tlps = counter_or_zero(g, "read_tlps") + counter_or_zero(g, "write_tlps"),
                     err = counter_or_zero(g, "errors");
        if (tlps > 0 && err * 2 > tlps)
            out.push_back(p + ": " + format_number(100.0 * err / tlps) + " % of DMA TLPs faulted or were refused");
    }
    for (const stats::Group* c : g.children()) collect_warnings(*c, out);
}

} // namespace

void stats_to_json(const stats::Group& root, json& doc) {
    JsonVisitor v(doc);
    root.accept(v);
}

std::string stats_summary(const stats::Group& root, bool all) {
    SummaryVisitor v(all);
    root.accept(v);
    std::vector<std::string> warnings;
    collect_warnings(root, warnings);
    for (const auto& w : warnings) v.out += "  warning: " + w + "\n";
    return v.out;
}

std::string format_number(double v) {
    if (!std::isfinite(v)) return v != v ? "nan" : (v > 0 ? "inf" : "-inf");
    char b[48];
    if (v == std::floor(v) && std::fabs(v) < 1e15) {
        std::snprintf(b, sizeof b, "%lld", static_cast<long long>(v));
        return b;
    }
    const double a = std::fabs(v);
    if (a >= 1e-3 && a < 1e15) {
        // Four significant digits below 1000, three decimals above: no exponents for everyday values.
        std::snprintf(b, sizeof b, a < 1000 ? "%.4g" : "%.3f", v);
        std::string s = b;
        if (s.find('.') != std::string::npos && s.find('e') == std::string::npos) {
            while (s.back() == '0') s.pop_back();
            if (s.back() == '.') s.pop_back();
        }
        return s;
    }
    std::snprintf(b, sizeof b, "%.4g", v);
    return b;
}

} // namespace iommusim::sim
