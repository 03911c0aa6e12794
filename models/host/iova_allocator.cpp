// SPDX-License-Identifier: Apache-2.0
#include "models/host/iova_allocator.hpp"

#include <algorithm>
#include <bit>
#include <string>

namespace iommusim::host {

using K = HostError::Kind;

namespace {

/// The highest start in [lo, hi) of an `align`-aligned range of `size` bytes.
std::optional<uint64_t> try_gap(uint64_t lo, uint64_t hi, uint64_t size, uint64_t align) {
    if (hi < size || hi - size < lo) return std::nullopt;
    uint64_t start = (hi - size) & ~(align - 1);
    if (start < lo) return std::nullopt;
    return start;
}

uint64_t mix(uint64_t x) { // splitmix64 finaliser: a fixed treap priority per gap start
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

} // namespace

IovaAllocator::IovaAllocator(uint64_t base, uint64_t limit, uint64_t max_align, bool next_fit)
    : base_(base), limit_(limit), max_align_(max_align), next_fit_(next_fit), cursor_(limit) {
    if (base % kPage || limit % kPage || limit <= base)
        throw HostError(K::invalid, "IOVA space must be a non-empty page-aligned [base, limit)");
    if (!std::has_single_bit(max_align) || max_align < kPage)
        throw HostError(K::invalid, "IOVA max alignment must be a power of two >= 4 KiB");
    insert_gap(base, limit);
}

void IovaAllocator::update(int32_t n) {
    Node& x = nodes_[static_cast<size_t>(n)];
    x.max_len = x.hi - x.lo;
    if (x.left >= 0) x.max_len = std::max(x.max_len, nodes_[static_cast<size_t>(x.left)].max_len);
    if (x.right >= 0) x.max_len = std::max(x.max_len, nodes_[static_cast<size_t>(x.right)].max_len);
}

int32_t IovaAllocator::merge(int32_t a, int32_t b) {
    if (a < 0) return b;
    if (b < 0) return a;
    if (nodes_[static_cast<size_t>(a)].prio > nodes_[static_cast<size_t>(b)].prio) {
        const int32_t r = merge(nodes_[static_cast<size_t>(a)].right, b);
        nodes_[static_cast<size_t>(a)].right = r;
        update(a);
        return a;
    }
    const int32_t l = merge(a, nodes_[static_cast<size_t>(b)].left);
    nodes_[static_cast<size_t>(b)].left = l;
    update(b);
    return b;
}

std::pair<int32_t, int32_t> IovaAllocator::split(int32_t n, uint64_t key) {
    if (n < 0) return {-1, -1};
    if (nodes_[static_cast<size_t>(n)].lo < key) {
        auto [a, b] = split(nodes_[static_cast<size_t>(n)].right, key);
        nodes_[static_cast<size_t>(n)].right = a;
        update(n);
        return {n, b};
    }
    auto [a, b] = split(nodes_[static_cast<size_t>(n)].left, key);
    nodes_[static_cast<size_t>(n)].left = b;
    update(n);
    return {a, n};
}

void IovaAllocator::insert_gap(uint64_t lo, uint64_t hi) {
    if (hi <= lo) return;
    int32_t n;
    if (!spare_.empty()) {
        n = spare_.back();
        spare_.pop_back();
    } else {
        n = static_cast<int32_t>(nodes_.size());
        nodes_.emplace_back();
    }
    nodes_[static_cast<size_t>(n)] = Node{lo, hi, hi - lo, mix(lo), -1, -1};
    auto [l, r] = split(root_, lo);
    root_ = merge(merge(l, n), r);
    ++gap_count_;
}

void IovaAllocator::erase_gap(uint64_t lo) {
    auto [l, r] = split(root_, lo);
    auto [m, rest] = split(r, lo + 1);
    if (m >= 0) { // exactly the node starting at lo
        spare_.push_back(m);
        --gap_count_;
    }
    root_ = merge(l, rest);
}

const IovaAllocator::Node* IovaAllocator::gap_at_or_below(uint64_t addr) const {
    const Node* best = nullptr;
    for (int32_t n = root_; n >= 0;) {
        const Node& x = nodes_[static_cast<size_t>(n)];
        if (x.lo <= addr) {
            best = &x;
            n = x.right;
        } else {
            n = x.left;
        }
    }
    return best;
}

void IovaAllocator::carve(uint64_t start, uint64_t size) {
    const Node* g = gap_at_or_below(start);
    if (!g || g->hi < start + size) throw HostError(K::invalid, "IOVA range is not free"); // callers checked
    const uint64_t lo = g->lo, hi = g->hi;
    erase_gap(lo);
    insert_gap(lo, start);
    insert_gap(start + size, hi);
}

std::optional<uint64_t> IovaAllocator::fit_in(int32_t n, uint64_t top, uint64_t size, uint64_t align) const {
    // Highest gap first: right subtree, this gap (clipped to top), left subtree.
    while (n >= 0) {
        const Node& x = nodes_[static_cast<size_t>(n)];
        ++search_steps_;
        if (x.max_len < size) return std::nullopt; // nothing below is long enough
        if (x.lo < top) {
            if (auto s = fit_in(x.right, top, size, align)) return s;
            if (auto s = try_gap(x.lo, std::min(x.hi, top), size, align)) return s;
        }
        n = x.left;
    }
    return std::nullopt;
}

std::optional<uint64_t> IovaAllocator::fit_below(uint64_t top, uint64_t size, uint64_t align) const {
    return fit_in(root_, top, size, align);
}

uint64_t IovaAllocator::alloc(uint64_t size, uint64_t min_align) {
    if (size == 0) throw HostError(K::invalid, "cannot allocate an empty IOVA range");
    size = (size + kPage - 1) & ~(kPage - 1);
    const uint64_t align = std::max(std::min(std::bit_ceil(size), max_align_), min_align);
    std::optional<uint64_t> s = fit_below(next_fit_ ? cursor_ : limit_, size, align);
    if (!s && next_fit_) s = fit_below(limit_, size, align); // wrap around
    if (!s) throw HostError(K::no_space, "IOVA space exhausted allocating " + std::to_string(size) + " bytes");
    carve(*s, size);
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
    carve(iova, size);
    used_[iova] = size;
    allocated_bytes_ += size;
}

void IovaAllocator::set_limit(uint64_t limit) {
    if (limit >= limit_) return;
    if (limit <= base_) throw HostError(K::invalid, "IOVA limit below the base");
    if (!used_.empty() && std::prev(used_.end())->first + std::prev(used_.end())->second > limit)
        throw HostError(K::invalid, "IOVAs already allocated above the new limit " + std::to_string(limit));
    // Nothing is allocated above the new limit: only the top gap reaches past it.
    if (const Node* g = gap_at_or_below(limit_ - 1); g && g->hi == limit_) {
        const uint64_t lo = g->lo;
        erase_gap(lo);
        insert_gap(lo, limit);
    }
    limit_ = limit;
    cursor_ = std::min(cursor_, limit);
}

void IovaAllocator::free(uint64_t iova) {
    auto it = used_.find(iova);
    if (it == used_.end()) throw HostError(K::not_found, "IOVA " + std::to_string(iova) + " is not allocated");
    uint64_t lo = iova, hi = iova + it->second;
    allocated_bytes_ -= it->second;
    used_.erase(it);
    // Coalesce with the free gaps on either side.
    if (const Node* below = gap_at_or_below(iova); below && below->hi == iova) {
        lo = below->lo;
        erase_gap(lo);
    }
    if (const Node* above = gap_at_or_below(hi); above && above->lo == hi) {
        const uint64_t top = above->hi;
        erase_gap(hi);
        hi = top;
    }
    insert_gap(lo, hi);
}

uint64_t IovaAllocator::size_of(uint64_t iova) const {
    auto it = used_.find(iova);
    if (it == used_.end()) throw HostError(K::not_found, "IOVA " + std::to_string(iova) + " is not allocated");
    return it->second;
}

} // namespace iommusim::host
