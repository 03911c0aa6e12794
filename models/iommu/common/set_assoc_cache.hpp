// SPDX-License-Identifier: Apache-2.0
#pragma once
// Fidelity: one generic set-associative cache for every translation cache
// (IOTLB, paging-structure caches, stage-2 cache, later ATC and context caches).
// Modelled: capacity (entries, ways), set conflicts, replacement (exact LRU,
// tree pseudo-LRU, seeded random), invalidation by predicate, and the stats
// a researcher compares (lookups, hits, misses, evictions, entries invalidated).
// Not modelled: timing (callers charge lookup latency), parity/ECC, the exact
// index hash of real parts (unpublished) -- the set index is a multiplicative
// hash of the whole key, so tags of different domains do not alias
// systematically. Storage is flat arrays allocated once: no allocation per
// access, memory bounded by the configured size.
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/common/stats.hpp"
#include "models/iommu/common/cache_params.hpp"

namespace iommusim::iommu {

/// A packed cache tag. b == 0 marks an empty line, so every key must have b != 0.
struct CacheKey {
    uint64_t a = 0, b = 0;
    friend bool operator==(const CacheKey&, const CacheKey&) = default;
};

template <class Payload>
class SetAssocCache {
public:
    SetAssocCache(std::string name, const CacheGeometry& g, stats::Group* parent)
        : group_(std::move(name), parent),
          lookups_(group_.counter("lookups", "count", "lookups (one per request, whatever the probes)")),
          hits_(group_.counter("hits", "count", "lookups that found an entry")),
          misses_(group_.counter("misses", "count", "lookups that found no entry")),
          evictions_(group_.counter("evictions", "count", "valid entries replaced by an insert")),
          invalidated_(group_.counter("invalidated", "count", "entries removed by invalidations")),
          policy_(g.replacement), rng_(g.seed) {
        if (const char* why = g.check()) throw std::invalid_argument(std::string("cache ") + group_.name() + ": " + why);
        group_.value("entries", "count", "configured capacity").set(g.entries);
        group_.value("ways", "count", "configured associativity").set(g.entries ? g.ways : 0);
        if (g.entries == 0) return;
        ways_ = g.ways;
        sets_ = g.entries / g.ways;
        pow2_ = (sets_ & (sets_ - 1)) == 0;
        keys_.assign(g.entries, CacheKey{});
        vals_.assign(g.entries, Payload{});
        if (policy_ == Replacement::lru) stamp_.assign(g.entries, 0);
        if (policy_ == Replacement::tree_plru) plru_.assign(sets_, 0);
    }

    bool enabled() const { return sets_ != 0; }
    uint32_t capacity() const { return static_cast<uint32_t>(keys_.size()); }
    uint32_t size() const { return valid_; }
    const stats::Group& stats() const { return group_; }

    /// Finds `k` and marks it recently used; no lookup statistics.
    Payload* probe(const CacheKey& k) {
        if (!sets_) return nullptr;
        uint32_t base = set_of(k) * ways_;
        for (uint32_t w = 0; w < ways_; ++w) {
            if (keys_[base + w] == k) {
                touch(base, w);
                return &vals_[base + w];
            }
        }
        return nullptr;
    }
    /// Counts one lookup (a request may probe several page sizes; it is one lookup).
    void count_lookup(bool hit) {
        lookups_.inc();
        (hit ? hits_ : misses_).inc();
    }
    Payload* lookup(const CacheKey& k) {
        Payload* p = probe(k);
        count_lookup(p != nullptr);
        return p;
    }

    /// Inserts or overwrites `k`. Returns true when a valid entry was evicted
    /// (its key and payload are stored in *ek / *ev when given).
    bool insert(const CacheKey& k, const Payload& v, CacheKey* ek = nullptr, Payload* ev = nullptr) {
        if (!sets_) return false;
        uint32_t base = set_of(k) * ways_;
        uint32_t slot = ways_;
        for (uint32_t w = 0; w < ways_; ++w) {
            if (keys_[base + w] == k) { slot = w; break; }
            if (slot == ways_ && keys_[base + w].b == 0) slot = w;
        }
        bool evicted = false;
        if (slot == ways_) {
            slot = victim(base);
            evicted = true;
            evictions_.inc();
            if (ek) *ek = keys_[base + slot];
            if (ev) *ev = vals_[base + slot];
        } else if (keys_[base + slot].b == 0) {
            ++valid_;
        }
        keys_[base + slot] = k;
        vals_[base + slot] = v;
        touch(base, slot);
        return evicted;
    }

    /// Removes every entry for which pred(key, payload) holds; returns how many.
    template <class Pred>
    uint64_t invalidate_if(Pred&& pred) {
        uint64_t n = 0;
        for (size_t i = 0; i < keys_.size(); ++i) {
            if (keys_[i].b != 0 && pred(keys_[i], vals_[i])) {
                keys_[i] = CacheKey{};
                ++n;
            }
        }
        valid_ -= static_cast<uint32_t>(n);
        invalidated_.inc(n);
        return n;
    }
    /// Removes `k` if present (counted as invalidated).
    bool erase(const CacheKey& k) {
        if (!sets_) return false;
        uint32_t base = set_of(k) * ways_;
        for (uint32_t w = 0; w < ways_; ++w) {
            if (keys_[base + w] == k) {
                keys_[base + w] = CacheKey{};
                --valid_;
                invalidated_.inc();
                return true;
            }
        }
        return false;
    }
    uint64_t clear() {
        return invalidate_if([](const CacheKey&, const Payload&) { return true; });
    }
    template <class F>
    void for_each(F&& f) const {
        for (size_t i = 0; i < keys_.size(); ++i)
            if (keys_[i].b != 0) f(keys_[i], vals_[i]);
    }

private:
    uint32_t set_of(const CacheKey& k) const {
        uint64_t h = k.a * 0x9E3779B97F4A7C15ull ^ k.b * 0xC2B2AE3D27D4EB4Full;
        h ^= h >> 29;
        return static_cast<uint32_t>(pow2_ ? (h & (sets_ - 1)) : (h % sets_));
    }
    void touch(uint32_t base, uint32_t w) {
        switch (policy_) {
        case Replacement::lru: stamp_[base + w] = ++clock_; break;
        case Replacement::tree_plru: {
            // Heap-numbered tree over the ways: each node bit points at the half to evict next.
            uint64_t& bitsv = plru_[base / ways_];
            uint32_t node = 1;
            for (uint32_t span = ways_ >> 1; span; span >>= 1) {
                bool right = (w & span) != 0;
                if (right) bitsv &= ~(uint64_t{1} << node);
                else bitsv |= uint64_t{1} << node;
                node = node * 2 + (right ? 1 : 0);
            }
            break;
        }
        case Replacement::random: break;
        }
    }
    uint32_t victim(uint32_t base) {
        switch (policy_) {
        case Replacement::lru: {
            uint32_t v = 0;
            for (uint32_t w = 1; w < ways_; ++w)
                if (stamp_[base + w] < stamp_[base + v]) v = w;
            return v;
        }
        case Replacement::tree_plru: {
            uint64_t bitsv = plru_[base / ways_];
            uint32_t node = 1, w = 0;
            for (uint32_t span = ways_ >> 1; span; span >>= 1) {
                bool right = (bitsv >> node) & 1;
                if (right) w |= span;
                node = node * 2 + (right ? 1 : 0);
            }
            return w;
        }
        case Replacement::random: return static_cast<uint32_t>(rng_() % ways_);
        }
        return 0;
    }

    stats::Group group_;
    stats::Counter& lookups_;
    stats::Counter& hits_;
    stats::Counter& misses_;
    stats::Counter& evictions_;
    stats::Counter& invalidated_;
    Replacement policy_;
    std::mt19937_64 rng_;
    uint32_t ways_ = 0, sets_ = 0, valid_ = 0;
    bool pow2_ = true;
    uint64_t clock_ = 0;
    std::vector<CacheKey> keys_;
    std::vector<Payload> vals_;
    std::vector<uint64_t> stamp_;
    std::vector<uint64_t> plru_;
};

} // namespace iommusim::iommu
