// SPDX-License-Identifier: Apache-2.0
#include "models/host/iova_allocator.hpp"

#include <algorithm>
#include <bit>
#include <string>

namespace iommusim::host {

using K = HostError::Kind;

IovaAllocator::IovaAllocator(uint64_t base, uint64_t limit, uint64_t max_align, bool next_fit)
    : base_(base), limit_(limit), max_align_(max_align), next_fit_(next_fit), cursor_(limit) {
    if (base % kPage || limit % kPage || limit <= base)
        throw HostError(K::invalid, "IOVA space must be a non-empty page-aligned [base, limit)");
    if (!std::has_single_bit(max_align) || max_align < kPage)
        throw HostError(K::invalid, "IOVA max alignment must be a power of two >= 4 KiB");
}

std::optional<uint64_t> IovaAllocator::fit_below(uint64_t top, uint64_t size, uint64_t align) const {
    // Top-down first fit: walk the gaps below `top` from the highest down.
    auto try_gap = [&](uint64_t lo, uint64_t hi) -> std::optional<uint64_t> {
        if (hi < size || hi - size < lo) return std::nullopt;
        uint64_t start = (hi - size) & ~(align - 1);
        if (start < lo) return std::nullopt;
        return start;
    };
    uint64_t hi = top;
    auto it = used_.lower_bound(top);
    while (it != used_.begin()) {
        --it;
        const uint64_t end = it->first + it->second;
        if (end <= hi)
            if (auto s = try_gap(end, hi)) return s;
        hi = std::min(hi, it->first);
    }
    return try_gap(base_, hi);
}

uint64_t IovaAllocator::alloc(uint64_t size, uint64_t min_align) {
    if (size == 0) throw HostError(K::invalid, "cannot allocate an empty IOVA range");
    size = (size + kPage - 1) & ~(kPage - 1);
    const uint64_t align = std::max(std::min(std::bit_ceil(size), max_align_), min_align);
    std::optional<uint64_t> s = fit_below(next_fit_ ? cursor_ : limit_, size, align);
    if (!s && next_fit_) s = fit_below(limit_, size, align); // wrap around
    if (!s) throw HostError(K::no_space, "IOVA space exhausted allocating " + std::to_string(size) + " bytes");
    used_[*s] = size;
    allocated_bytes_ += size;
    cursor_ = *s;
    return *s;
}

void IovaAllocator::reserve(uint64_t iova, uint64_t size) {
    size = (size + kPage - 1) & ~(kPage - 1);
    if (size == 0 || iova % kPage || iova < base_ || iova > limit_ || size > limit_ - iova)
        throw HostError(K::invalid, "IOVA range " + std::to_string(iova) + "+" + std::to_string(size) +
                                        " is not page aligned inside the address space");
    auto next = used_.lower_bound(iova);
    bool overlap = next != used_.end() && next->first < iova + size;
    if (next != used_.begin()) {
        auto prev = std::prev(next);
        overlap |= prev->first + prev->second > iova;
    }
    if (overlap) throw HostError(K::busy, "IOVA range " + std::to_string(iova) + "+" + std::to_string(size) +
                                              " overlaps an allocated range");
    used_[iova] = size;
    allocated_bytes_ += size;
}

void IovaAllocator::set_limit(uint64_t limit) {
    if (limit >= limit_) return;
    if (limit <= base_) throw HostError(K::invalid, "IOVA limit below the base");
    if (!used_.empty() && std::prev(used_.end())->first + std::prev(used_.end())->second > limit)
        throw HostError(K::invalid, "IOVAs already allocated above the new limit " + std::to_string(limit));
    limit_ = limit;
    cursor_ = std::min(cursor_, limit);
}

void IovaAllocator::free(uint64_t iova) {
    auto it = used_.find(iova);
    if (it == used_.end()) throw HostError(K::not_found, "IOVA " + std::to_string(iova) + " is not allocated");
    allocated_bytes_ -= it->second;
    used_.erase(it);
}

uint64_t IovaAllocator::size_of(uint64_t iova) const {
    auto it = used_.find(iova);
    if (it == used_.end()) throw HostError(K::not_found, "IOVA " + std::to_string(iova) + " is not allocated");
    return it->second;
}

} // namespace iommusim::host
