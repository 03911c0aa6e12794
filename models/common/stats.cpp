// SPDX-License-Identifier: Apache-2.0
#include "models/common/stats.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace iommusim::stats {

double Histogram::bucket_mid(size_t idx) {
    if (idx == 0) return 0.0;
    size_t i = idx - 1;
    int e = static_cast<int>(i / kSubBuckets) + kMinExp;
    double sub = static_cast<double>(i % kSubBuckets);
    double lo = std::ldexp(1.0 + sub / kSubBuckets, e);
    double hi = std::ldexp(1.0 + (sub + 1.0) / kSubBuckets, e);
    return (lo + hi) / 2.0;
}

void Histogram::bad_sample(double v) {
    throw std::domain_error("histogram sample " + std::to_string(v) + " is not a finite non-negative value");
}

void Histogram::allocate() { buckets_.assign(2 + static_cast<size_t>(kMaxExp - kMinExp + 1) * kSubBuckets, 0); }

double Histogram::percentile(double p) const {
    if (count_ == 0) return 0.0;
    p = std::clamp(p, 0.0, 100.0);
    auto rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
    rank = std::clamp<uint64_t>(rank, 1, count_);
    if (rank == 1) return min_; // the extremes are known exactly
    if (rank == count_) return max_;
    uint64_t seen = 0;
    for (size_t i = 0; i < buckets_.size(); ++i) {
        seen += buckets_[i];
        if (seen >= rank) return std::clamp(bucket_mid(i), min_, max_);
    }
    return max_;
}

void Histogram::reset() { *this = Histogram(); }

Group::Group(std::string name, Group* parent) : name_(std::move(name)), parent_(parent) {
    if (parent_) {
        if (parent_->child(name_))
            throw std::invalid_argument("stats group '" + parent_->path() + "." + name_ + "' registered twice");
        parent_->children_.push_back(this);
    }
}

Group::~Group() {
    for (Group* c : children_) c->parent_ = nullptr;
    if (parent_) std::erase(parent_->children_, this);
}

std::string Group::path() const {
    if (!parent_ || parent_->parent_ == nullptr) return parent_ ? name_ : std::string{};
    return parent_->path() + "." + name_;
}

Entry& Group::add(std::string_view name, std::string_view unit, std::string_view description, Stat s) {
    for (const auto& e : entries_)
        if (e.name == name) throw std::invalid_argument("stat '" + std::string(name) + "' registered twice in '" + name_ + "'");
    entries_.push_back(Entry{std::string(name), std::string(unit), std::string(description),
                             std::make_unique<Stat>(std::move(s))});
    return entries_.back();
}

Counter& Group::counter(std::string_view n, std::string_view u, std::string_view d) {
    return std::get<Counter>(*add(n, u, d, Counter{}).stat);
}
Value& Group::value(std::string_view n, std::string_view u, std::string_view d) {
    return std::get<Value>(*add(n, u, d, Value{}).stat);
}
Histogram& Group::histogram(std::string_view n, std::string_view u, std::string_view d) {
    return std::get<Histogram>(*add(n, u, d, Histogram{}).stat);
}
void Group::derived(std::string_view n, std::string_view u, std::string_view d, std::function<double()> f) {
    add(n, u, d, Derived{std::move(f)});
}

const Group* Group::child(std::string_view n) const {
    for (const Group* c : children_)
        if (c->name_ == n) return c;
    return nullptr;
}

const Entry* Group::find(std::string_view dotted) const {
    auto dot = dotted.find('.');
    if (dot == std::string_view::npos) {
        for (const auto& e : entries_)
            if (e.name == dotted) return &e;
        return nullptr;
    }
    const Group* c = child(dotted.substr(0, dot));
    return c ? c->find(dotted.substr(dot + 1)) : nullptr;
}

void Group::accept(Visitor& v) const {
    v.enter(*this);
    for (const auto& e : entries_) v.stat(e);
    for (const Group* c : children_) c->accept(v);
    v.leave(*this);
}

void Group::reset_all() {
    for (auto& e : entries_)
        std::visit([](auto& s) {
            if constexpr (!std::is_same_v<std::decay_t<decltype(s)>, Derived>) s.reset();
        }, *e.stat);
    for (Group* c : children_) c->reset_all();
    for (const auto& f : reset_hooks_) f();
}

double numeric_value(const Entry& e) {
    return std::visit([](const auto& s) -> double {
        using T = std::decay_t<decltype(s)>;
        if constexpr (std::is_same_v<T, Counter>) return static_cast<double>(s.value());
        else if constexpr (std::is_same_v<T, Histogram>) return static_cast<double>(s.count());
        else return s.value();
    }, *e.stat);
}

} // namespace iommusim::stats
