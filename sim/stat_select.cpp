// SPDX-License-Identifier: Apache-2.0
#include "sim/stat_select.hpp"

#include <algorithm>
#include <sstream>

namespace iommusim::sim {

namespace {

class PathVisitor : public stats::Visitor {
public:
    std::vector<std::string> out;
    void enter(const stats::Group& g) override { stack_.push_back(g.name()); }
    void leave(const stats::Group&) override { stack_.pop_back(); }
    void stat(const stats::Entry& e) override {
        std::string p;
        for (size_t i = 1; i < stack_.size(); ++i) p += stack_[i] + ".";
        out.push_back(p + e.name);
    }

private:
    std::vector<std::string> stack_;
};

bool is_histogram(const stats::Entry& e) { return std::holds_alternative<stats::Histogram>(*e.stat); }

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
}

/// Up to three names close to `word`: the closest by edit distance, then
/// those that share its last component (a stat moved to another group).
std::string suggestions(const std::string& word, const std::vector<std::string>& all) {
    std::vector<std::string> out;
    if (auto c = closest_match(word, all); !c.empty()) out.push_back(c);
    const std::string last = word.substr(word.rfind('.') + 1);
    for (const auto& p : all) {
        if (out.size() >= 3) break;
        if (p.substr(p.rfind('.') + 1) == last && std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
    }
    if (out.empty()) return " (`iommusim run --all` or platforms/STATS.md lists the stats)";
    return " (did you mean " + join(out) + "?)";
}

} // namespace

const std::vector<std::string>& histogram_fields() {
    static const std::vector<std::string> f = {"count", "min", "mean", "p50", "p90", "p99", "max"};
    return f;
}

std::vector<std::string> stat_paths(const stats::Group& root) {
    PathVisitor v;
    root.accept(v);
    return v.out;
}

StatSelector select_stat(const stats::Group& root, const std::string& stat, const std::string& field,
                         const std::string& where) {
    const stats::Entry* e = root.find(stat);
    if (!e) throw ConfigError(where, "no stat named \"" + stat + "\"" + suggestions(stat, stat_paths(root)));
    const auto& f = histogram_fields();
    if (is_histogram(*e)) {
        if (field.empty())
            throw ConfigError(where, "\"" + stat + "\" is a histogram: name a field (" + join(f) + "), e.g. \"" + stat + ".p99\"");
        if (std::find(f.begin(), f.end(), field) == f.end()) {
            const std::string c = closest_match(field, f);
            throw ConfigError(where, "unknown histogram field \"" + field + "\": expected one of " + join(f) +
                                         (c.empty() ? "" : " (did you mean " + c + "?)"));
        }
    } else if (!field.empty()) {
        throw ConfigError(where, "\"" + stat + "\" is a single value, it has no field \"" + field + "\"");
    }
    return StatSelector{stat, field, e};
}

StatSelector select_stat(const stats::Group& root, const std::string& selector, const std::string& where) {
    if (root.find(selector)) return select_stat(root, selector, "", where);
    const auto dot = selector.rfind('.');
    if (dot != std::string::npos) {
        const std::string head = selector.substr(0, dot), tail = selector.substr(dot + 1);
        if (const stats::Entry* e = root.find(head); e && is_histogram(*e)) return select_stat(root, head, tail, where);
    }
    return select_stat(root, selector, "", where); // throws: unknown stat
}

double selected_value(const StatSelector& s) {
    return std::visit([&](const auto& v) -> double {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, stats::Histogram>) {
            const std::string& f = s.field;
            if (f == "count") return static_cast<double>(v.count());
            if (f == "min") return v.min();
            if (f == "mean") return v.mean();
            if (f == "p50") return v.percentile(50);
            if (f == "p90") return v.percentile(90);
            if (f == "p99") return v.percentile(99);
            return v.max();
        } else if constexpr (std::is_same_v<T, stats::Counter>) {
            return static_cast<double>(v.value());
        } else {
            return v.value();
        }
    }, *s.entry->stat);
}

json selected_json(const json& doc, const StatSelector& s) {
    const json* j = &doc;
    std::stringstream ps(s.stat);
    std::string part;
    while (j && std::getline(ps, part, '.')) j = (j->is_object() && j->contains(part)) ? &(*j)[part] : nullptr;
    if (!j || !j->is_object()) return nullptr;
    const std::string key = s.field.empty() ? "value" : s.field;
    return j->contains(key) ? (*j)[key] : json(nullptr);
}

} // namespace iommusim::sim
