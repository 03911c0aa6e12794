// SPDX-License-Identifier: Apache-2.0
#pragma once
// Fidelity: one generic set-associative cache for every translation cache
// (IOTLB, paging-structure caches, stage-2 cache, later ATC and context caches).
// Modelled: capacity (entries, ways), set conflicts, replacement (exact LRU,
// tree pseudo-LRU, seeded random), invalidation by predicate, and the stats
// a researcher compares (lookups, hits, misses, evictions, entries invalidated).
// Not modelled: timing (callers charge lookup latency), parity/ECC, the exact
// index hash of real parts (unpublished). The set index is the top bits of a
// multiplicative hash of the whole key: a product's top bits depend on every
// bit of its operand, so every tag field (domain, PASID/ASID, address, page
// size, wherever it sits in the key) reaches the set index and tags of
// different domains do not alias systematically. Storage is flat arrays allocated once: no allocation per
// access, memory bounded by the configured size. Each line also keeps an
// 8-bit fingerprint of its key, packed eight to a word per set, so a lookup
// compares a whole set's fingerprints with a few word operations and checks
// the full key only on a fingerprint match (a host-speed device, like a CAM).
#include <bit>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/common/stats.hpp"
#include "models/common/cache_params.hpp"

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
          hits_(group_.counter("hits", "count", "lookups that found an entry")),
          misses_(group_.counter("misses", "count", "lookups that found no entry")),
          evictions_(group_.counter("evictions", "count", "valid entries replaced by an insert")),
          invalidated_(group_.counter("invalidated", "count", "entries removed by invalidations")),
          policy_(g.replacement), rng_(g.seed) {
        // lookups = hits + misses, derived so a hit costs one counter update.
        group_.derived("lookups", "count", "lookups (one per request, whatever the probes)",
                       [this] { return static_cast<double>(hits_.value() + misses_.value()); });
        if (const char* why = g.check()) throw std::invalid_argument(std::string("cache ") + group_.name() + ": " + why);
        group_.value("entries", "count", "configured capacity").set(g.entries);
        group_.value("ways", "count", "configured associativity").set(g.entries ? g.ways : 0);
        if (g.entries == 0) return;
        ways_ = g.ways;
        sets_ = g.entries / g.ways;
        words_ = (ways_ + 7) / 8;
        fps_.assign(static_cast<size_t>(sets_) * words_, 0);
        lines_.assign(g.entries, Line{});
        if (policy_ == Replacement::lru) stamp_.assign(g.entries, 0);
        if (policy_ == Replacement::tree_plru) plru_.assign(sets_, 0);
    }

    bool enabled() const { return sets_ != 0; }
    uint32_t capacity() const { return static_cast<uint32_t>(lines_.size()); }
    uint32_t size() const { return valid_; }
    const stats::Group& stats() const { return group_; }

    /// Finds `k` and marks it recently used; no lookup statistics.
    Payload* probe(const CacheKey& k) {
        if (!sets_) return nullptr;
        const uint64_t h = hash(k);
        const uint32_t set = set_of(h);
        const uint32_t w = find(set, fp_of(h), k);
        if (w == ways_) return nullptr;
        const uint32_t base = set * ways_;
        touch(base, w);
        return &lines_[base + w].val;
    }
    /// Finds `k` without marking it used (an invalidation looking at it).
    const Payload* peek(const CacheKey& k) const {
        if (!sets_) return nullptr;
        const uint64_t h = hash(k);
        const uint32_t set = set_of(h);
        const uint32_t w = find(set, fp_of(h), k);
        return w == ways_ ? nullptr : &lines_[set * ways_ + w].val;
    }
    /// `k` was just probed and not found: an insert of it before any other insert skips the set
    /// search (a lookup that misses is usually followed by the fill of the same key).
    void note_absent(const CacheKey& k) { absent_ = k; }
    /// Counts one lookup (a request may probe several page sizes; it is one lookup).
    void count_lookup(bool hit) { (hit ? hits_ : misses_).inc(); }
    Payload* lookup(const CacheKey& k) {
        Payload* p = probe(k);
        count_lookup(p != nullptr);
        return p;
    }

    /// Inserts or overwrites `k`. Returns true when a valid entry was evicted
    /// (its key and payload are stored in *ek / *ev when given).
    bool insert(const CacheKey& k, const Payload& v, CacheKey* ek = nullptr, Payload* ev = nullptr) {
        if (!sets_) return false;
        // A key noted absent is still absent: only an insert adds keys.
        const bool absent = k == absent_;
        absent_ = CacheKey{};
        const uint64_t h = hash(k);
        const uint32_t set = set_of(h);
        const uint32_t base = set * ways_;
        uint32_t slot = absent ? ways_ : find(set, fp_of(h), k);
        if (slot == ways_) slot = first_empty(set);
        bool evicted = false;
        if (slot == ways_) {
            slot = victim(base);
            evicted = true;
            evictions_.inc();
            if (ek) *ek = lines_[base + slot].key;
            if (ev) *ev = lines_[base + slot].val;
        } else if (lines_[base + slot].key.b == 0) {
            ++valid_;
        }
        lines_[base + slot].key = k;
        lines_[base + slot].val = v;
        set_fp(set, slot, fp_of(h));
        touch(base, slot);
        return evicted;
    }

    /// Removes every entry for which pred(key, payload) holds; returns how many.
    template <class Pred>
    uint64_t invalidate_if(Pred&& pred) {
        uint64_t n = 0;
        // The scan ends at the last valid line (none at all when the cache is empty or disabled).
        uint32_t left = valid_;
        for (size_t i = 0; left != 0 && i < lines_.size(); ++i) {
            if (lines_[i].key.b == 0) continue;
            --left;
            if (pred(lines_[i].key, lines_[i].val)) {
                lines_[i].key = CacheKey{};
                set_fp(static_cast<uint32_t>(i / ways_), static_cast<uint32_t>(i % ways_), 0);
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
        const uint64_t h = hash(k);
        const uint32_t set = set_of(h);
        const uint32_t w = find(set, fp_of(h), k);
        if (w == ways_) return false;
        lines_[set * ways_ + w].key = CacheKey{};
        set_fp(set, w, 0);
        --valid_;
        invalidated_.inc();
        return true;
    }
    uint64_t clear() {
        return invalidate_if([](const CacheKey&, const Payload&) { return true; });
    }
    template <class F>
    void for_each(F&& f) const {
        for (const Line& l : lines_)
            if (l.key.b != 0) f(l.key, l.val);
    }

private:
    /// Bit i of a product depends only on operand bits 0..i, so the low bits of
    /// a*K1 ^ b*K2 ignore the high key fields (the domain tag sits at bit 40 of
    /// b); its top 32 bits depend on all of them. The set comes from those.
    static uint64_t hash(const CacheKey& k) { return k.a * 0x9E3779B97F4A7C15ull ^ k.b * 0xC2B2AE3D27D4EB4Full; }
    /// Top 32 hash bits scaled to [0, sets) (Lemire's multiply-shift range
    /// reduction): the top log2(sets) bits for a power of two, no division.
    uint32_t set_of(uint64_t h) const { return static_cast<uint32_t>(((h >> 32) * sets_) >> 32); }
    /// Fingerprint from bits below the set index (bits 24..31 and 40..47, so
    /// the address and the domain both vary it within a set); 0 marks an empty line.
    static uint8_t fp_of(uint64_t h) {
        auto f = static_cast<uint8_t>((h >> 24) ^ (h >> 40));
        return f ? f : 1;
    }
    void set_fp(uint32_t set, uint32_t way, uint8_t fp) {
        uint64_t& word = fps_[static_cast<size_t>(set) * words_ + way / 8];
        const unsigned sh = (way % 8) * 8;
        word = (word & ~(uint64_t{0xFF} << sh)) | (uint64_t{fp} << sh);
    }
    /// Way holding k in `set`, or ways_. Matches fingerprints eight at a time
    /// (exact zero-byte test on word ^ broadcast(fp)), packs the matches into
    /// one bit per way without branching on which word matched, then checks
    /// the full key of each candidate (usually exactly one).
    uint32_t find(uint32_t set, uint8_t fp, const CacheKey& k) const {
        const uint64_t bcast = 0x0101010101010101ull * fp;
        const uint64_t* words = &fps_[static_cast<size_t>(set) * words_];
        uint64_t cand = 0;
        for (uint32_t wi = 0; wi < words_; ++wi) {
            const uint64_t zero = zero_bytes(words[wi] ^ bcast);
            cand |= (((zero >> 7) * 0x0102040810204080ull) >> 56) << (8 * wi);
        }
        const Line* lines = &lines_[static_cast<size_t>(set) * ways_];
        for (; cand; cand &= cand - 1) {
            const auto w = static_cast<uint32_t>(std::countr_zero(cand));
            if (lines[w].key == k) return w;
        }
        return ways_;
    }
    /// Lowest empty way of `set` (empty lines are exactly those with fingerprint 0), or ways_.
    uint32_t first_empty(uint32_t set) const {
        const uint64_t* words = &fps_[static_cast<size_t>(set) * words_];
        for (uint32_t wi = 0; wi < words_; ++wi) {
            if (const uint64_t zero = zero_bytes(words[wi])) {
                const uint32_t w = wi * 8 + static_cast<uint32_t>(std::countr_zero(zero)) / 8;
                return w < ways_ ? w : ways_; // a zero byte past ways_ is padding of the last word
            }
        }
        return ways_;
    }
    /// 0x80 in each byte of x that is zero, 0 elsewhere (exact: no false positives).
    static uint64_t zero_bytes(uint64_t x) {
        constexpr uint64_t lo7 = 0x7F7F7F7F7F7F7F7Full;
        return ~(((x & lo7) + lo7) | x | lo7);
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
            const uint64_t* stamps = &stamp_[base];
            uint32_t v = 0;
            uint64_t oldest = stamps[0];
            for (uint32_t w = 1; w < ways_; ++w) {
                if (stamps[w] < oldest) {
                    oldest = stamps[w];
                    v = w;
                }
            }
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
    stats::Counter& hits_;
    stats::Counter& misses_;
    stats::Counter& evictions_;
    stats::Counter& invalidated_;
    Replacement policy_;
    std::mt19937_64 rng_;
    uint32_t ways_ = 0, sets_ = 0, valid_ = 0;
    uint64_t clock_ = 0;
    uint32_t words_ = 0;          ///< fingerprint words per set
    std::vector<uint64_t> fps_;   ///< per set: ways_ fingerprints, 8 per word, 0 = empty
    /// Key and payload together, aligned so that a 16-byte payload makes a
    /// 32-byte line that never straddles a host cache line; LRU stamps live
    /// apart since the hit path only stores to them.
    struct alignas(32) Line {
        CacheKey key;
        Payload val{};
    };
    std::vector<Line> lines_;
    CacheKey absent_; ///< see note_absent(); b == 0: none (no key has b == 0)
    std::vector<uint64_t> stamp_;
    std::vector<uint64_t> plru_;
};

} // namespace iommusim::iommu
