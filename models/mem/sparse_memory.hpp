// SPDX-License-Identifier: Apache-2.0
#pragma once
// Sparse, page-granular backing store for simulated physical memory.
// Untouched memory reads as zero and costs no host RAM; a page is allocated
// on its first write (or when DMI asks for a pointer). Little-endian, like
// every IOMMU structure we model. Discarded pages are kept (up to
// kSparePages) and zeroed when written again: a driver that unmaps and
// remaps buffers per packet costs no host allocation per page.
#include <array>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "models/mem/phys_mem.hpp"

namespace iommusim::mem {

class SparseMemory final : public PhysMem {
public:
    static constexpr unsigned kPageShift = 12;
    static constexpr uint64_t kPageSize = uint64_t{1} << kPageShift;
    static constexpr uint64_t kMaxSize = uint64_t{1} << 52;
    /// Discarded pages kept for reuse (1 MiB of host memory at most).
    static constexpr size_t kSparePages = 256;

    explicit SparseMemory(uint64_t size_bytes);

    void read(uint64_t pa, void* dst, size_t len) override;
    void write(uint64_t pa, const void* src, size_t len) override;
    void fill(uint64_t pa, uint8_t byte, size_t len);
    /// Drops the whole pages inside [pa, pa+len): they read zero again (host RAM is
    /// returned beyond kSparePages kept for reuse).
    void discard(uint64_t pa, size_t len) override;

    /// Host pointer to the page holding `pa` (allocated if needed), for DMI.
    uint8_t* page_ptr(uint64_t pa);
    uint64_t size() const { return size_; }
    bool contains(uint64_t pa, size_t len) const { return len <= size_ && pa <= size_ - len; }
    size_t touched_pages() const { return pages_.size(); }

private:
    using Page = std::array<uint8_t, kPageSize>;
    const uint8_t* find_page(uint64_t pfn) const;
    uint8_t* get_page(uint64_t pfn);
    void check(uint64_t pa, size_t len) const;

    uint64_t size_;
    std::unordered_map<uint64_t, std::unique_ptr<Page>> pages_;
    std::vector<std::unique_ptr<Page>> spare_; ///< discarded pages, zeroed when reused
    /// Lookaside of recently used pages, direct-mapped by the page number's low bits: DMA
    /// streams, descriptor rings, status words and queues each keep their page in it.
    static constexpr size_t kLookaside = 16;
    struct Recent {
        uint64_t pfn = ~uint64_t{0};
        uint8_t* page = nullptr;
    };
    Recent& recent(uint64_t pfn) const { return recent_[pfn & (kLookaside - 1)]; }
    mutable std::array<Recent, kLookaside> recent_{};
};

} // namespace iommusim::mem
