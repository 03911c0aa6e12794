// SPDX-License-Identifier: Apache-2.0
#pragma once
// The SMMUv3 bench rig (bench_smmuv3, bench_cmdratio): two Smmuv3 units with a
// linear stream table, stage-1 and nested streams in memory, their registers,
// and the command queue's commands (TLBI_NH_VA, CMD_SYNC with an MSI write).
#include <memory>
#include <optional>

#include "models/iommu/common/table_builder.hpp"
#include "models/iommu/smmuv3/smmuv3.hpp"
#include "models/pcie/ats_endpoint.hpp"
#include "test/bench/bench_rig.hpp"
#include "test/support/smmuv3_sync.hpp"
#include "test/support/stage_configs.hpp"

namespace benchrig::smmuv3_bench {

using namespace iommusim::iommu;
using namespace iommusim::iommu::smmuv3;

constexpr uint64_t kCmd = 0x3000000, kSem = 0x3100000;
constexpr unsigned kCmdLog2 = 9; // 512 commands (8 KiB)
constexpr uint16_t kAsid = 1, kVmid = 1;
constexpr uint64_t kDataPa = 0x80000000ull, kHitPa = 0x40000000ull;

inline StageConfig arm(bool s2) { return iommusim::iommu::test::arm_cfg(s2); }

/// A CD as Linux's arm_smmu_make_s1_cd writes it.
inline Cd s1_cd(const StageConfig& t) {
    Cd c;
    c.valid = c.aa64 = c.r = c.a = c.aset = c.epd1 = true;
    c.asid = kAsid;
    c.t0sz = static_cast<uint8_t>(64 - t.input_bits);
    c.ir0 = c.or0 = 1;
    c.sh0 = 3;
    c.ips = 5;
    c.ttb0 = t.root;
    return c;
}

struct Rig : TwoUnits<Smmuv3, Smmuv3Params> {
    static constexpr uint32_t kProdMask = (2u << kCmdLog2) - 1, kIndexMask = (1u << kCmdLog2) - 1;
    uint64_t next = 0x1000000;
    const pcie::Bdf dev{0x03, 0, 0}, nested_dev{0x04, 0, 0};
    const std::optional<uint32_t> pasid;
    uint64_t strtab1 = 0, strtab_cfg1 = 0, strtab2 = 0, strtab_cfg2 = 0;
    Result nested;
    double reads0 = 0, reads1 = 0, reads2 = 0, walks1 = 0, walks2 = 0;
    uint32_t prod = 0; // index + wrap bit

    Rig(uint64_t count, uint64_t pages) : TwoUnits("smmu0", "smmu1", count, pages) {
        auto alloc = [this](uint64_t bytes, uint64_t align) -> std::optional<uint64_t> {
            next = (next + align - 1) & ~(align - 1);
            const uint64_t a = next;
            next += bytes;
            return a;
        };
        StreamTableWriter st(memory.store, alloc, 16, false);
        auto s1 = tables(memory.store, alloc, miss_pages);
        st.write_ste(dev.raw, s1_ste(memory.store, alloc, *s1, 0));
        // Nested: the stage-1 tables and the CD live in IPA space, mapped 1:1 by 4 KiB stage-2 pages.
        const uint64_t ipa_first = next;
        auto s1n = tables(memory.store, alloc, miss_pages);
        CdTableWriter cds(memory.store, alloc, 0, 0);
        cds.write_cd(0, s1_cd(s1n->config()));
        const uint64_t ipa_end = next;
        auto s2 = TableBuilder::create(memory.store, arm(true), alloc);
        for (uint64_t a = ipa_first & ~uint64_t{0xFFF}; a < ipa_end; a += 4096) s2->map(a, a, 4096, 12);
        for (uint64_t a = kDataPa; a < kDataPa + 1024 * 4096; a += 4096) s2->map(a, a, 4096, 12);
        Ste ns = base_ste(ste_cfg::kNested);
        ns.s1_context_ptr = cds.context_ptr();
        ns.s2vmid = kVmid;
        ns.s2t0sz = 16;
        ns.s2sl0 = 2; // start at level 0 (4 KiB granule)
        ns.s2ir0 = ns.s2or0 = 1;
        ns.s2sh0 = 3;
        ns.s2ps = 5;
        ns.s2aa64 = ns.s2r = true;
        ns.s2ttb = s2->root();
        st.write_ste(nested_dev.raw, ns);
        strtab1 = st.strtab_base_reg();
        strtab_cfg1 = st.strtab_base_cfg_reg();
        next = 0x1000000;
        StreamTableWriter st_2(memory2.store, alloc, 16, false);
        auto t2 = tables(memory2.store, alloc, 0);
        st_2.write_ste(ep_rid.raw, s1_ste(memory2.store, alloc, *t2, 1));
        strtab2 = st_2.strtab_base_reg();
        strtab_cfg2 = st_2.strtab_base_cfg_reg();
        s1_keep = std::move(s1);
        s1n_keep = std::move(s1n);
        s2_keep = std::move(s2);
        t2_keep = std::move(t2);
    }
    template <class Alloc>
    std::unique_ptr<TableBuilder> tables(mem::PhysMem& m, Alloc& alloc, uint64_t pages) {
        auto tb = TableBuilder::create(m, arm(false), alloc);
        tb->map(kHitBase, kHitPa, 64 * 4096, 12);
        for (uint64_t i = 0; i < pages; ++i) tb->map(kMissBase + i * 4096, kDataPa + (i % 1024) * 4096, 4096, 12);
        return tb;
    }
    static Ste base_ste(uint8_t config) {
        Ste s;
        s.valid = true;
        s.config = config;
        s.s1cir = s.s1cor = 1;
        s.s1csh = 3;
        return s;
    }
    template <class Alloc>
    Ste s1_ste(mem::PhysMem& m, Alloc& alloc, const TableBuilder& t, uint8_t eats) {
        CdTableWriter cds(m, alloc, 0, 0);
        cds.write_cd(0, s1_cd(t.config()));
        Ste s = base_ste(ste_cfg::kS1);
        s.s1_context_ptr = cds.context_ptr();
        s.eats = eats;
        return s;
    }
    void enable() {
        for (auto* s : {&drv.cpu, &drv.cpu2}) {
            const bool first = s == &drv.cpu;
            mmio_write(*s, reg::kStrtabBase, first ? strtab1 : strtab2, 8);
            mmio_write(*s, reg::kStrtabBaseCfg, first ? strtab_cfg1 : strtab_cfg2, 4);
            mmio_write(*s, reg::kCmdqBase, kCmd | kCmdLog2, 8);
            mmio_write(*s, reg::kCr0, bit::kSmmuEn | bit::kCmdqEn, 4);
        }
    }
    void put(const Command& c) {
        const auto e = c.encode();
        memory.store.write(kCmd + uint64_t{prod & kIndexMask} * 16, e.data(), 16);
        prod = (prod + 1) & kProdMask;
    }
    void put_invalidation(uint64_t page) {
        Command c;
        c.opcode = op::kTlbiNhVa;
        c.asid = kAsid;
        c.leaf = true;
        c.addr = kMissBase + page * 4096;
        put(c);
    }
    void put_sync(uint32_t token) { put(iommusim::iommu::test::msi_sync(token, kSem)); }
    void submit() { mmio_write(drv.cpu, reg::kCmdqProd, prod, 4); }
    bool synced(uint32_t token) { return memory.store.read_u32(kSem) == token; }

    double counter(const char* path) const {
        const auto* s = root.find(path);
        return s ? stats::numeric_value(*s) : 0.0;
    }
    /// The stage-1 miss phase, then (c') the nested one, with the descriptor reads of each.
    void miss_phases();
    void report_extra() const {
        auto per = [](const Result& x) { return x.count ? x.wall / static_cast<double>(x.count) * 1e9 : 0.0; };
        std::printf("  %-34s %12llu %14.1f %10.2f\n", "(c') IOTLB miss, cold nested 4+4",
                    static_cast<unsigned long long>(nested.count), per(nested),
                    per(plain) > 0 ? per(nested) / per(plain) : 0.0);
        std::printf("  descriptor reads: %.0f in the S1 miss phase (incl. the nested warm-up), %.2f per nested walk\n",
                    reads1 - reads0, walks2 > walks1 ? (reads2 - reads1) / (walks2 - walks1) : 0.0);
    }
    std::unique_ptr<TableBuilder> s1_keep, s1n_keep, s2_keep, t2_keep;
};

template <class R>
[[gnu::noinline]] void phase_nested_miss(R& r);

inline void Rig::miss_phases() {
    reads0 = counter("smmu0.translation.walker.descriptor_reads");
    phase_iotlb_miss(*this);
    device_loop(drv.dev, nested_dev, std::nullopt, 1, [](uint64_t) { return kHitBase; }); // STE + CD cached
    reads1 = counter("smmu0.translation.walker.descriptor_reads");
    walks1 = counter("smmu0.translation.walker.walks");
    phase_nested_miss(*this);
    reads2 = counter("smmu0.translation.walker.descriptor_reads");
    walks2 = counter("smmu0.translation.walker.walks");
}

template <class R>
[[gnu::noinline]] void phase_nested_miss(R& r) { r.nested = miss_loop(r, r.nested_dev, r.n / 16); }

} // namespace benchrig::smmuv3_bench
