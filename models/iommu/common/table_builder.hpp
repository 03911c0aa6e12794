// SPDX-License-Identifier: Apache-2.0
#pragma once
// Fidelity: builds real page tables of any supported format in simulated
// memory, the way a driver does (tests now, the host driver model later).
// Tables come from an allocator callback; map() writes leaves of a chosen
// page size (AMD v1 non-natural sizes use NextLevel 7 with replicated
// entries) and creates intermediate tables on demand; unmap() clears whole
// leaves. Both check the whole range first and return an error (overlap, not
// mapped, splitting a larger leaf, misalignment, out of range, no memory)
// without touching memory. Emptied tables are not freed (no table reclaim),
// and no level skipping is generated for AMD v1.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

#include "models/iommu/common/pt_format.hpp"
#include "models/mem/phys_mem.hpp"

namespace iommusim::iommu {

/// Returns the address of `bytes` bytes aligned to `align` in the table
/// address space (physical, or guest-physical for nested stage-1 tables).
using TableAllocator = std::function<std::optional<uint64_t>(uint64_t bytes, uint64_t align)>;

/// A bump allocator over [base, base + size): simple, deterministic.
class BumpAllocator {
public:
    BumpAllocator(uint64_t base, uint64_t size) : next_(base), end_(base + size) {}
    std::optional<uint64_t> operator()(uint64_t bytes, uint64_t align) {
        uint64_t a = (next_ + align - 1) & ~(align - 1);
        if (a < next_ || a + bytes > end_ || a + bytes < a) return std::nullopt;
        next_ = a + bytes;
        return a;
    }
    uint64_t next() const { return next_; }

private:
    uint64_t next_, end_;
};

enum class MapError : uint8_t {
    none,
    bad_config,     ///< the StageConfig is not walkable
    misaligned,     ///< va, pa or size not a multiple of the page size
    bad_page_size,  ///< the format cannot map this page size
    out_of_range,   ///< va beyond the input width, or pa beyond the output width
    overlap,        ///< something is already mapped there
    not_mapped,     ///< unmap of an address with no leaf
    splits_leaf,    ///< unmap covers only part of a larger leaf
    no_memory,      ///< the allocator refused a table
};
std::string_view to_string(MapError e);

class TableBuilder {
public:
    /// Allocates the top-level table (cfg.root is set from it). Null on error.
    static std::unique_ptr<TableBuilder> create(mem::PhysMem& mem, StageConfig cfg, TableAllocator alloc,
                                                MapError* err = nullptr);

    const StageConfig& config() const { return cfg_; }
    uint64_t root() const { return cfg_.root; }
    uint64_t tables() const { return tables_; }

    MapError map(uint64_t va, uint64_t pa, uint64_t size, unsigned page_shift, const LeafAttrs& a = {});
    MapError unmap(uint64_t va, uint64_t size);

    /// Address of the descriptor that maps va at `level` (following existing
    /// tables), for tests that patch descriptors. nullopt if the path stops above.
    std::optional<uint64_t> descriptor_address(uint64_t va, unsigned level) const;

private:
    TableBuilder(mem::PhysMem& mem, const StageConfig& cfg, TableAllocator alloc)
        : mem_(mem), cfg_(cfg), fmt_(format_of(cfg.format)), alloc_(std::move(alloc)) {}
    std::optional<uint64_t> new_table(unsigned level);
    unsigned leaf_level(unsigned page_shift) const;
    /// Checks (dry) or performs one page's mapping. `leaf_table`: a dry check stores the leaf
    /// table it reached (left 0 if a table is missing); applying starts from it if non-zero.
    MapError map_one(uint64_t va, uint64_t pa, unsigned level, unsigned page_shift, const LeafAttrs& a, bool apply,
                     uint64_t* leaf_table = nullptr);
    /// Pages / leaves whose walk map() and unmap() remember between checking and applying.
    static constexpr size_t kRemembered = 16;
    struct Found {
        uint64_t desc_addr = 0;
        unsigned level = 0;
        Descriptor d;
    };
    std::optional<Found> find_leaf(uint64_t va) const;

    mem::PhysMem& mem_;
    StageConfig cfg_;
    const PageTableFormat& fmt_;
    TableAllocator alloc_;
    uint64_t tables_ = 0;
};

} // namespace iommusim::iommu
