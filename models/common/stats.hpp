// SPDX-License-Identifier: Apache-2.0
#pragma once
// Statistics registry: counters, scalar values, histograms and derived values,
// each with a unit and a description, in groups that follow the module tree.
// Models register their stats in their constructors; sim/ walks the tree once
// to write stats.json and the summary. Kernel-free and JSON-free.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace iommusim::stats {

class Counter {
public:
    void inc(uint64_t n = 1) { v_ += n; }
    uint64_t value() const { return v_; }
    void reset() { v_ = 0; }

private:
    uint64_t v_ = 0;
};

/// A scalar that is set rather than counted (simulated time, a configured size).
class Value {
public:
    void set(double v) { v_ = v; }
    double value() const { return v_; }
    void reset() { v_ = 0; }

private:
    double v_ = 0;
};

/// Log-linear histogram: each power-of-two range is split into kSubBuckets
/// linear buckets, so a percentile is reported within 1/(2*kSubBuckets) relative
/// error (HdrHistogram's idea). min, max, count and sum are exact.
class Histogram {
public:
    static constexpr int kSubBits = 5;
    static constexpr int kSubBuckets = 1 << kSubBits;
    static constexpr int kMinExp = -24; // values below 2^-24 count in bucket 0
    static constexpr int kMaxExp = 80;

    /// Inline: several histograms record on every hop of every DMA request.
    void record(double v, uint64_t times = 1) {
        if (times == 0) return;
        // Every histogram here measures a non-negative quantity (a latency, a size):
        // a negative, NaN or infinite sample is a model bug and must not be hidden
        // as 0 or folded into the statistics.
        if (!(v >= 0.0 && v <= std::numeric_limits<double>::max())) [[unlikely]] bad_sample(v);
        if (buckets_.empty()) [[unlikely]] allocate();
        buckets_[bucket_of(v)] += times;
        if (count_ == 0) min_ = max_ = v;
        min_ = std::min(min_, v);
        max_ = std::max(max_, v);
        count_ += times;
        sum_ += v * static_cast<double>(times);
    }
    uint64_t count() const { return count_; }
    double min() const { return count_ ? min_ : 0.0; }
    double max() const { return count_ ? max_ : 0.0; }
    double sum() const { return sum_; }
    double mean() const { return count_ ? sum_ / static_cast<double>(count_) : 0.0; }
    /// Nearest-rank percentile, p in [0, 100].
    double percentile(double p) const;
    /// Relative error bound of percentile().
    static constexpr double relative_error() { return 1.0 / (2.0 * kSubBuckets); }
    void reset();

private:
    static size_t bucket_of(double v) {
        if (!(v > 0.0)) return 0;
        // v = 1.m * 2^e for a normal double: e from the exponent field, the sub-bucket from the
        // top kSubBits bits of m -- exactly floor((frac * 2 - 1) * kSubBuckets) of frexp's
        // frac in [0.5, 1), without the library call. Subnormals have e = -1023 < kMinExp.
        const auto bits = std::bit_cast<uint64_t>(v);
        const int e = static_cast<int>((bits >> 52) & 0x7FF) - 1023; // v in [2^e, 2^(e+1))
        if (e < kMinExp) return 0;
        if (e > kMaxExp) return static_cast<size_t>(kMaxExp - kMinExp + 1) * kSubBuckets; // its last sub-bucket
        const auto sub = static_cast<size_t>((bits >> (52 - kSubBits)) & (kSubBuckets - 1));
        return 1 + static_cast<size_t>(e - kMinExp) * kSubBuckets + sub;
    }
    [[noreturn, gnu::cold, gnu::noinline]] static void bad_sample(double v);
    [[gnu::noinline]] void allocate();
    static double bucket_mid(size_t idx);
    std::vector<uint64_t> buckets_; // allocated on first record
    uint64_t count_ = 0;
    double sum_ = 0, min_ = 0, max_ = 0;
};

class Derived {
public:
    explicit Derived(std::function<double()> f) : f_(std::move(f)) {}
    double value() const { return f_(); }

private:
    std::function<double()> f_;
};

using Stat = std::variant<Counter, Value, Histogram, Derived>;

struct Entry {
    std::string name;
    std::string unit;
    std::string description;
    std::unique_ptr<Stat> stat;
};

class Group;

/// Visitor over the stats tree, in registration order.
class Visitor {
public:
    virtual ~Visitor() = default;
    virtual void enter(const Group& g) = 0;
    virtual void stat(const Entry& e) = 0;
    virtual void leave(const Group& g) = 0;
};

/// A named node of the stats tree. A group registers itself with its parent
/// and detaches on destruction, so modules can own their group as a member.
class Group {
public:
    explicit Group(std::string name, Group* parent = nullptr);
    ~Group();
    Group(const Group&) = delete;
    Group& operator=(const Group&) = delete;

    const std::string& name() const { return name_; }
    std::string path() const;

    Counter& counter(std::string_view name, std::string_view unit, std::string_view description);
    Value& value(std::string_view name, std::string_view unit, std::string_view description);
    Histogram& histogram(std::string_view name, std::string_view unit, std::string_view description);
    void derived(std::string_view name, std::string_view unit, std::string_view description,
                 std::function<double()> f);

    /// Looks up a stat by a dotted path relative to this group ("mem0.reads").
    const Entry* find(std::string_view dotted) const;
    const Group* child(std::string_view name) const;
    const std::vector<Entry>& entries() const { return entries_; }
    const std::vector<Group*>& children() const { return children_; }

    void accept(Visitor& v) const;
    /// Zeroes every counter, value and histogram of this subtree (a warm-up
    /// ends), then runs the subtree's reset hooks.
    void reset_all();
    /// Runs at reset_all(): for state behind derived stats (a rate's start time).
    void on_reset(std::function<void()> f) { reset_hooks_.push_back(std::move(f)); }

private:
    Entry& add(std::string_view name, std::string_view unit, std::string_view description, Stat s);
    std::string name_;
    Group* parent_;
    std::vector<Entry> entries_;
    std::vector<Group*> children_;
    std::vector<std::function<void()>> reset_hooks_;
};

/// Numeric value of a stat for comparisons (histograms report their count;
/// use find() + std::get for the rest).
double numeric_value(const Entry& e);

} // namespace iommusim::stats
