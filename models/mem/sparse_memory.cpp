// SPDX-License-Identifier: Apache-2.0
#include "models/mem/sparse_memory.hpp"

#include <algorithm>
#include <cstring>

namespace iommusim::mem {

AddressError::AddressError(uint64_t a, size_t len, uint64_t size)
    : std::out_of_range("physical access [0x" + [](uint64_t v) {
          char b[32]; std::snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(v)); return std::string(b);
      }(a) + ", +" + std::to_string(len) + ") outside memory of " + std::to_string(size) + " bytes"),
      addr(a) {}

SparseMemory::SparseMemory(uint64_t size_bytes) : size_(size_bytes) {
    if (size_bytes == 0 || size_bytes > kMaxSize)
        throw std::invalid_argument("memory size must be in (0, 2^52] bytes, got " + std::to_string(size_bytes));
}

void SparseMemory::check(uint64_t pa, size_t len) const {
    if (!contains(pa, len)) throw AddressError(pa, len, size_);
}

const uint8_t* SparseMemory::find_page(uint64_t pfn) const {
    Recent& r = recent(pfn);
    if (r.pfn == pfn) return r.page;
    auto it = pages_.find(pfn);
    if (it == pages_.end()) return nullptr;
    r = Recent{pfn, it->second->data()};
    return r.page;
}

uint8_t* SparseMemory::get_page(uint64_t pfn) {
    Recent& r = recent(pfn);
    if (r.pfn == pfn) return r.page;
    auto& slot = pages_[pfn];
    if (!slot) {
        if (spare_.empty()) {
            slot = std::make_unique<Page>(); // value-initialised: zero
        } else {
            slot = std::move(spare_.back());
            spare_.pop_back();
            slot->fill(0);
        }
    }
    r = Recent{pfn, slot->data()};
    return r.page;
}

void SparseMemory::read(uint64_t pa, void* dst, size_t len) {
    check(pa, len);
    auto* out = static_cast<uint8_t*>(dst);
    while (len) {
        uint64_t off = pa & (kPageSize - 1);
        size_t n = std::min<uint64_t>(len, kPageSize - off);
        if (const uint8_t* p = find_page(pa >> kPageShift)) std::memcpy(out, p + off, n);
        else std::memset(out, 0, n);
        out += n, pa += n, len -= n;
    }
}

void SparseMemory::write(uint64_t pa, const void* src, size_t len) {
    check(pa, len);
    auto* in = static_cast<const uint8_t*>(src);
    while (len) {
        uint64_t off = pa & (kPageSize - 1);
        size_t n = std::min<uint64_t>(len, kPageSize - off);
        std::memcpy(get_page(pa >> kPageShift) + off, in, n);
        in += n, pa += n, len -= n;
    }
}

void SparseMemory::fill(uint64_t pa, uint8_t byte, size_t len) {
    check(pa, len);
    while (len) {
        uint64_t off = pa & (kPageSize - 1);
        size_t n = std::min<uint64_t>(len, kPageSize - off);
        if (byte != 0 || find_page(pa >> kPageShift)) std::memset(get_page(pa >> kPageShift) + off, byte, n);
        pa += n, len -= n;
    }
}

void SparseMemory::discard(uint64_t pa, size_t len) {
    check(pa, len);
    const uint64_t first = (pa + kPageSize - 1) >> kPageShift, end = (pa + len) >> kPageShift;
    for (uint64_t pfn = first; pfn < end; ++pfn) {
        if (Recent& r = recent(pfn); r.pfn == pfn) r = Recent{};
        const auto it = pages_.find(pfn);
        if (it == pages_.end()) continue;
        if (spare_.size() < kSparePages) spare_.push_back(std::move(it->second));
        pages_.erase(it);
    }
}

uint8_t* SparseMemory::page_ptr(uint64_t pa) {
    check(pa, 1);
    return get_page(pa >> kPageShift);
}

} // namespace iommusim::mem
