// SPDX-License-Identifier: Apache-2.0
#include "models/host/iova_allocator.hpp"

#include <algorithm>
#include <bit>
#include <string>

namespace iommusim::host {

using K = HostError::Kind;

IovaAllocator::IovaAllocator(uint64_t base, uint64_t limit, uint64_t max_align)
    : base_(base), limit_(limit), max_align_(max_align) {
    if (base % kPage || limit % kPage || limit <= base)
        throw HostError(K::invalid, "IOVA space must be a non-empty page-aligned [base, limit)");
    if (!std::has_single_bit(max_align) || max_align < kPage)
        throw HostError(K::invalid, "IOVA max alignment must be a power of two >= 4 KiB");
}

uint64_t IovaAllocator::alloc(uint64_t size) {
    if (size == 0) throw HostError(K::invalid, "cannot allocate an empty IOVA range");
    size = (size + kPage - 1) & ~(kPage - 1);
    uint64_t align = std::min(std::bit_ceil(size), max_align_);
    // Top-down first fit: walk the gaps from the highest allocated range down.
    uint64_t hi = limit_;
    auto try_gap = [&](uint64_t lo, uint64_t top) -> std::optional<uint64_t> {
        if (top < size || top - size < lo) return std::nullopt;
        uint64_t start = (top - size) & ~(align - 1);
        if (start < lo) return std::nullopt;
        return start;
    };
    for (auto it = used_.rbegin(); it != used_.rend(); ++it) {
        const uint64_t end = it->first + it->second;
        if (auto s = try_gap(end, hi)) {
            used_[*s] = size;
            allocated_bytes_ += size;
            return *s;
        }
        hi = it->first;
    }
    if (auto s = try_gap(base_, hi)) {
        used_[*s] = size;
        allocated_bytes_ += size;
        return *s;
    }
    throw HostError(K::no_space, "IOVA space exhausted allocating " + std::to_string(size) + " bytes");
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
