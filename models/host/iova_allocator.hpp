// SPDX-License-Identifier: Apache-2.0
#pragma once
// IOVA space allocator for DMA-API style map/unmap (an IOAS's allocator).
// Like Linux's alloc_iova(size_aligned=true): sizes are rounded to whole
// pages, ranges are aligned to the size rounded up to a power of two (capped
// at `max_align`), and allocation is top-down from the limit. Deterministic.
// A freed range is reusable immediately; the lazy flush queue defers calling
// free() until the range's IOTLB/ATC invalidation has completed, which is
// what keeps IOVAs from being reused before their flush.
#include <cstdint>
#include <map>
#include <optional>

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

private:
    std::optional<uint64_t> fit_below(uint64_t top, uint64_t size, uint64_t align) const;
    uint64_t base_, limit_, max_align_;
    bool next_fit_;
    uint64_t cursor_;
    std::map<uint64_t, uint64_t> used_; ///< start -> size (bytes, page-rounded)
    uint64_t allocated_bytes_ = 0;
};

} // namespace iommusim::host
