// SPDX-License-Identifier: Apache-2.0
#pragma once
// Shared set-up for the translation-core tests: sparse memory, a bump
// allocator for table pages, and StageConfig helpers per format.
#include <memory>
#include <stdexcept>

#include "models/common/stats.hpp"
#include "models/iommu/common/table_builder.hpp"
#include "models/iommu/common/translation.hpp"
#include "models/iommu/common/walk_mem_port.hpp"
#include "models/iommu/common/walker_params.hpp"
#include "models/mem/sparse_memory.hpp"
#include "test/support/stage_configs.hpp"

namespace iommusim::iommu::test {

/// PhysMem view at an offset: guest-physical tables placed in host memory by a
/// linear stage-2 mapping (GPA g lives at HPA g + offset).
class OffsetMem final : public mem::PhysMem {
public:
    OffsetMem(mem::PhysMem& m, uint64_t off) : m_(m), off_(off) {}
    void read(uint64_t pa, void* d, size_t n) override { m_.read(pa + off_, d, n); }
    void write(uint64_t pa, const void* s, size_t n) override { m_.write(pa + off_, s, n); }

private:
    mem::PhysMem& m_;
    uint64_t off_;
};

struct Env {
    mem::SparseMemory mem{uint64_t{1} << 40};
    PhysMemWalkPort port{mem};
    stats::Group root{"test"};
    BumpAllocator host_tables{0x1000'0000, 0x1000'0000}; ///< host table pages at 256 MiB

    std::unique_ptr<TableBuilder> build(const StageConfig& c) {
        MapError e;
        auto b = TableBuilder::create(mem, c, std::ref(host_tables), &e);
        if (!b) throw std::runtime_error(std::string("builder: ") + std::string(to_string(e)));
        return b;
    }
};

/// Nested tables: guest RAM at GPA g lives at HPA g + kGuestBase; stage-1
/// tables are allocated in guest memory [1 MiB, 2 MiB), which stage 2 maps
/// with 4 KiB pages; data pages are mapped by the test.
struct NestedTables {
    static constexpr uint64_t kGuestBase = 0x2'0000'0000;
    OffsetMem guest;
    BumpAllocator guest_tables{0x10'0000, 0x10'0000};
    std::unique_ptr<TableBuilder> s2, s1;

    NestedTables(Env& env, const StageConfig& s1c, const StageConfig& s2c) : guest(env.mem, kGuestBase) {
        s2 = env.build(s2c);
        s1 = TableBuilder::create(guest, s1c, std::ref(guest_tables));
        if (!s1 || s2->map(0x10'0000, 0x10'0000 + kGuestBase, 0x10'0000, 12) != MapError::none)
            throw std::runtime_error("nested tables: set-up failed");
    }
    /// A context with both stages.
    TranslationContext context(uint32_t domain, uint32_t as) const {
        TranslationContext c;
        c.domain_tag = domain;
        c.as_tag = as;
        c.s1 = s1->config();
        c.s2 = s2->config();
        return c;
    }
};

/// Walker params with every walk cache off, so read counts are exact.
inline WalkerParams no_caches() {
    WalkerParams p;
    p.s1_walk_cache.per_level.entries = 0;
    p.s2_walk_cache.per_level.entries = 0;
    p.s2_cache.geometry.entries = 0;
    return p;
}

inline AccessRequest rd(uint64_t iova) { return AccessRequest{iova, false, false, false}; }
inline AccessRequest wr(uint64_t iova) { return AccessRequest{iova, true, false, false}; }

} // namespace iommusim::iommu::test
