// SPDX-License-Identifier: Apache-2.0
#pragma once
// Linux's per-CPU IOVA caches (drivers/iommu/iova.c "rcache"), in front of
// IovaAllocator's tree: freed ranges of 1, 2, 4 ... 32 pages (orders 0-5,
// IOVA_RANGE_CACHE_MAX_SIZE = 6) go into the freeing CPU's magazine of their
// size instead of back to the tree, and an allocation of that size on that
// CPU takes one from there. Each CPU has a loaded and a previous magazine of
// 127 entries (IOVA_MAG_SIZE); when both are full the loaded one goes to a
// global depot of full magazines, when both are empty a full one comes back
// from the depot. A cached range stays allocated in the tree (as in Linux: the
// rbtree keeps it), so nothing else can take it meanwhile; a magazine that
// finds the depot full (max_depot magazines) hands its ranges back, to be
// freed in the tree.
//
// Plain C++: the caller (IommuFd) says which CPU asks and charges the costs
// (calibration.md: "IOVA per-CPU cache (magazine) hit" vs "IOVA allocation,
// rbtree slow path") and the tree lock.
//
// Not modelled: the depot's periodic trimming (Linux 6.x returns depot
// magazines after IOVA_DEPOT_DELAY), flushing the caches when the tree is full
// (alloc_iova_fast's retry), CPU hot-unplug.
#include <array>
#include <cstdint>
#include <optional>
#include <vector>

namespace iommusim::host {

class IovaRcache {
public:
    static constexpr unsigned kOrders = 6;       ///< IOVA_RANGE_CACHE_MAX_SIZE: 1 .. 32 pages
    static constexpr unsigned kMagazine = 127;   ///< IOVA_MAG_SIZE
    static constexpr unsigned kDefaultDepot = 32; ///< full magazines kept per size (MAX_GLOBAL_MAGS, older kernels)

    struct Stats {
        uint64_t hits = 0, misses = 0;   ///< get(): served from a magazine / the tree must allocate
        uint64_t cached = 0;             ///< put(): kept in a magazine
        uint64_t to_tree = 0;            ///< ranges handed back to the tree (depot full, or not cacheable)
        uint64_t depot_moves = 0;        ///< magazines moved to or from the depot
    };

    explicit IovaRcache(unsigned cpus, unsigned max_depot = kDefaultDepot);

    /// The cache order of a range of `pages` pages, or none if it is not cached (> 32 pages).
    static std::optional<unsigned> order_of(uint64_t pages);
    /// A cached range of 2^order(pages) pages for CPU `cpu`, or none (allocate from the tree).
    std::optional<uint64_t> get(unsigned cpu, uint64_t pages);
    /// CPU `cpu` frees [iova, +pages): true if cached; false if the caller must free it in
    /// the tree. Ranges of a magazine evicted by the depot limit are appended to `evicted`.
    bool put(unsigned cpu, uint64_t iova, uint64_t pages, std::vector<uint64_t>& evicted);
    const Stats& stats() const { return stats_; }
    /// Ranges cached for order `order` on CPU `cpu` (loaded + previous magazine).
    size_t cached_on(unsigned cpu, unsigned order) const;

private:
    using Magazine = std::vector<uint64_t>;
    struct PerCpu {
        std::array<Magazine, kOrders> loaded, prev;
    };
    std::vector<PerCpu> cpus_;
    std::array<std::vector<Magazine>, kOrders> depot_;
    unsigned max_depot_;
    Stats stats_;
};

} // namespace iommusim::host
