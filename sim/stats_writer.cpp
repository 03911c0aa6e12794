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
    return json(std::strtod(b, nullptr));
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
        if (!all_ && !headline(name)) return;
        char line[256];
        std::visit([&](const auto& s) {
            using T = std::decay_t<decltype(s)>;
            if constexpr (std::is_same_v<T, stats::Histogram>) {
                if (s.count() == 0) { line[0] = 0; return; }
                std::snprintf(line, sizeof line, "  %-44s n=%-10llu p50=%-10.4g p99=%-10.4g max=%-10.4g %s\n", name.c_str(),
                              static_cast<unsigned long long>(s.count()), s.percentile(50), s.percentile(99), s.max(),
                              e.unit.c_str());
            } else {
                if constexpr (std::is_same_v<T, stats::Counter>) {
                    if (s.value() == 0) { line[0] = 0; return; }
                    std::snprintf(line, sizeof line, "  %-44s %-14llu %s\n", name.c_str(),
                                  static_cast<unsigned long long>(s.value()), e.unit.c_str());
                } else {
                    const double v = s.value();
                    if (v == 0) { line[0] = 0; return; }
                    std::snprintf(line, sizeof line, "  %-44s %-14.6g %s\n", name.c_str(), v, e.unit.c_str());
                }
            }
        }, *e.stat);
        out += line;
    }

private:
    bool all_;
    std::vector<std::string> path_;
};

} // namespace

void stats_to_json(const stats::Group& root, json& doc) {
    JsonVisitor v(doc);
    root.accept(v);
}

std::string stats_summary(const stats::Group& root, bool all) {
    SummaryVisitor v(all);
    root.accept(v);
    return v.out;
}

} // namespace iommusim::sim
