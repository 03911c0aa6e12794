// SPDX-License-Identifier: Apache-2.0
#pragma once
// IOVA space allocator for DMA-API style map/unmap (an IOAS's allocator).
// Like Linux's alloc_iova(size_aligned=true): sizes are rounded to whole
// pages, ranges are aligned to the size rounded up to a power of two (capped
// at `max_align`), and allocation is top-down from the limit: the highest
// free gap that holds an aligned range wins. Deterministic.
// A freed range is reusable immediately; the lazy flush queue defers calling
// free() until the range's IOTLB/ATC invalidation has completed, which is
// what keeps IOVAs from being reused before their flush.
//
// Host cost: the free gaps live in a balanced search tree ordered by address
// in which every node knows the largest gap below it (Linux keeps allocated
// ranges in an rbtree and walks it; the result is the same top-down first
// fit). A search skips every subtree whose largest gap is smaller than the
// request, so allocation costs O(log n) in the number of live ranges instead
// of a walk over all of them. Not modelled here: Linux's per-CPU IOVA
// magazine caches (rcache) and its cached-node start point.
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "models/host/host_error.hpp"

namespace iommusim::host {

class IovaAllocator {
public:
    static constexpr uint64_t kPage = 4096;
    /// [base, limit) must be page-aligned; max_align caps the alignment (default 2 MiB).
    /// With `next_fit`, each search starts below the previous allocation and
    /// wraps (a freed range is not handed out again at once): how a page
    /// allocator behaves from the IOMMU's point of view, unlike an IOVA
    /// allocator's LIFO reuse.
    IovaAllocator(uint64_t base, uint64_t limit, uint64_t max_align = uint64_t{1} << 21, bool next_fit = false);

    /// Returns the start of a free range of `size` bytes, aligned to at least
    /// `min_align` (a large page size); no_space when full.
    uint64_t alloc(uint64_t size, uint64_t min_align = kPage);
    /// Reserves a caller-chosen range (an explicit IOVA); busy if it overlaps.
    void reserve(uint64_t iova, uint64_t size);
    /// Lowers the limit (a domain with a narrower aperture joined); invalid if
    /// something is already allocated above it.
    void set_limit(uint64_t limit);
    uint64_t limit() const { return limit_; }
    /// Frees a range previously returned by alloc (exact start); not_found otherwise.
    void free(uint64_t iova);
    uint64_t size_of(uint64_t iova) const;
    uint64_t allocated_bytes() const { return allocated_bytes_; }
    size_t ranges() const { return used_.size(); }
    /// Free gaps, and gap-tree nodes visited by all searches so far: host-side
    /// operation counts that show the cost of allocation (tests, benches).
    size_t gaps() const { return gap_count_; }
    uint64_t search_steps() const { return search_steps_; }

private:
    /// One free gap [lo, hi) in a treap ordered by lo (priorities are a hash
    /// of lo, so the shape is deterministic); max_len covers the subtree.
    struct Node {
        uint64_t lo, hi, max_len;
        uint64_t prio;
        int32_t left = -1, right = -1;
    };
    std::optional<uint64_t> fit_below(uint64_t top, uint64_t size, uint64_t align) const;
    std::optional<uint64_t> fit_in(int32_t n, uint64_t top, uint64_t size, uint64_t align) const;
    void update(int32_t n);
    int32_t merge(int32_t a, int32_t b);
    /// Splits n into (lo < key, lo >= key).
    std::pair<int32_t, int32_t> split(int32_t n, uint64_t key);
    void insert_gap(uint64_t lo, uint64_t hi);
    void erase_gap(uint64_t lo);
    /// The gap with the largest lo <= addr, if any.
    const Node* gap_at_or_below(uint64_t addr) const;
    /// Takes [start, start+size) out of the gap that contains it.
    void carve(uint64_t start, uint64_t size);

    uint64_t base_, limit_, max_align_;
    bool next_fit_;
    uint64_t cursor_;
    std::map<uint64_t, uint64_t> used_; ///< start -> size (bytes, page-rounded)
    uint64_t allocated_bytes_ = 0;
    std::vector<Node> nodes_;
    std::vector<int32_t> spare_; ///< recycled node slots
    int32_t root_ = -1;
    size_t gap_count_ = 0;
    mutable uint64_t search_steps_ = 0;
};

} // namespace iommusim::host
