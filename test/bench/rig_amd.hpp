// SPDX-License-Identifier: Apache-2.0
#pragma once
// The AMD-Vi bench rig (bench_amd, bench_cmdratio): two AmdIommu units with a
// Mode-4 v1 table and its device table in memory, their registers, and the
// command buffer's commands (INVALIDATE_IOMMU_PAGES, COMPLETION_WAIT).
#include <array>
#include <memory>
#include <optional>

#include "models/iommu/amd/amd_iommu.hpp"
#include "models/iommu/common/table_builder.hpp"
#include "models/pcie/ats_endpoint.hpp"
#include "test/bench/bench_rig.hpp"
#include "test/support/stage_configs.hpp"

namespace benchrig::amd_bench {

using namespace iommusim::iommu;
using namespace iommusim::iommu::amd;

constexpr uint64_t kCmd = 0x3000000, kSem = 0x3100000;
constexpr uint16_t kDomain = 1;

struct Rig : TwoUnits<AmdIommu, AmdParams> {
    const pcie::Bdf dev{0x03, 0, 0};
    const std::optional<uint32_t> pasid;
    uint64_t next = 0x1000000;
    uint64_t devtab = 0, devtab2 = 0;
    uint32_t tail = 0;

    Rig(uint64_t count, uint64_t pages) : TwoUnits("amd0", "amd1", count, pages) {
        devtab = build_tables(memory, dev, miss_pages, false);
        next = 0x1000000;
        devtab2 = build_tables(memory2, ep_rid, 0, true);
    }
    /// A Mode-4 v1 table (as Linux's DMA-API domains) and the device table holding its DTE.
    uint64_t build_tables(Memory& m, pcie::Bdf rid, uint64_t pages, bool ats) {
        auto alloc = [this](uint64_t bytes, uint64_t align) -> std::optional<uint64_t> {
            next = (next + align - 1) & ~(align - 1);
            const uint64_t a = next;
            next += bytes;
            return a;
        };
        auto tb = TableBuilder::create(m.store, iommusim::iommu::test::amd_v1_cfg(4, 52), alloc);
        tb->map(kHitBase, 0x40000000, 64 * 4096, 12);
        for (uint64_t i = 0; i < pages; ++i) tb->map(kMissBase + i * 4096, 0x80000000 + (i % 1024) * 4096, 4096, 12);
        AmdTableWriter tw(m.store, alloc, 16);
        Dte d;
        d.v = d.tv = d.ir = d.iw = true;
        d.mode = 4;
        d.host_root = tb->root();
        d.domain_id = kDomain;
        d.i = ats;
        tw.set_dte(rid.raw, d);
        return tw.devtab_register();
    }
    void enable() {
        for (auto* s : {&drv.cpu, &drv.cpu2}) {
            mmio_write(*s, reg::DEV_TABLE, s == &drv.cpu ? devtab : devtab2, 8);
            mmio_write(*s, reg::CMD_BASE, kCmd | uint64_t{9} << 56, 8); // Linux: 512 commands
            mmio_write(*s, reg::CONTROL,
                       uint64_t{1} << ctl::IOMMU_EN | uint64_t{1} << ctl::CMDBUF_EN |
                           uint64_t{ctl::INV_TO_1S} << ctl::INV_TIMEOUT,
                       8);
        }
    }
    void put(const std::array<uint64_t, 2>& c) {
        memory.store.write(kCmd + tail, c.data(), 16);
        tail = (tail + 16) % 8192;
    }
    void put_invalidation(uint64_t page) {
        put(encode(linux_inv_iommu_pages(kDomain, kMissBase + page * 4096, 4096, false)));
    }
    void put_sync(uint32_t token) { put(encode(linux_completion_wait(kSem, token))); }
    void submit() { mmio_write(drv.cpu, reg::CMD_TAIL, tail, 4); }
    bool synced(uint32_t token) { return memory.store.read_u64(kSem) == token; }
};

} // namespace benchrig::amd_bench
