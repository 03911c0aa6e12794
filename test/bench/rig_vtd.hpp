// SPDX-License-Identifier: Apache-2.0
#pragma once
// The VT-d bench rig (bench_vtd, bench_cmdratio): two VtdIommu units with
// scalable-mode tables in memory, their registers, and the invalidation queue's
// descriptors (page-selective PASID-IOTLB invalidation, status-writing wait).
#include <memory>
#include <optional>

#include "models/iommu/common/table_builder.hpp"
#include "models/iommu/vtd/vtd_descriptors.hpp"
#include "models/iommu/vtd/vtd_iommu.hpp"
#include "models/iommu/vtd/vtd_tables.hpp"
#include "models/mem/sparse_memory.hpp"
#include "models/pcie/ats_endpoint.hpp"
#include "test/bench/bench_rig.hpp"
#include "test/support/stage_configs.hpp"

namespace benchrig::vtd_bench {

using namespace iommusim::iommu;
using namespace iommusim::iommu::vtd;

/// Requests with PASID 1 through a first-stage (scalable-mode) PASID entry, DID 1.
struct Rig : TwoUnits<VtdIommu, VtdParams> {
    const pcie::Bdf dev{0x03, 0, 0};
    const std::optional<uint32_t> pasid = 1u;
    uint64_t next = 0x1000000;
    uint64_t iq = 0, status = 0, rtaddr = 0, rtaddr2 = 0;
    uint64_t tail = 0;

    Rig(uint64_t count, uint64_t pages) : TwoUnits("dmar0", "dmar1", count, pages) {
        rtaddr = build_tables(memory, dev, miss_pages);
        next = 0x1000000;
        rtaddr2 = build_tables(memory2, ep_rid, 0);
        iq = alloc();
        alloc();
        status = alloc();
    }
    uint64_t alloc() {
        const uint64_t a = next;
        next += 4096;
        return a;
    }
    uint64_t build_tables(Memory& m, pcie::Bdf rid, uint64_t pages) {
        auto tb = TableBuilder::create(m.store, iommusim::iommu::test::x86_cfg(4), [this](uint64_t, uint64_t) -> std::optional<uint64_t> {
            return alloc();
        });
        tb->map(kHitBase, 0x40000000, 64 * 4096, 12);
        for (uint64_t i = 0; i < pages; ++i) tb->map(kMissBase + i * 4096, 0x80000000 + (i % 1024) * 4096, 4096, 12);
        VtdTableWriter tw(m.store, [this] { return alloc(); });
        PasidEntry pe;
        pe.present = true;
        pe.pgtt = static_cast<uint8_t>(Pgtt::first_stage);
        pe.did = 1;
        pe.flptptr = tb->root();
        tw.set_pasid_entry(tw.make_context(rid, 0, true, true, false, 0), 1, pe);
        return tw.root_table();
    }
    void enable() {
        for (auto* s : {&drv.cpu, &drv.cpu2}) {
            mmio_write(*s, reg::RTADDR, (s == &drv.cpu ? rtaddr : rtaddr2) | bits::RTADDR_SMT, 8);
            mmio_write(*s, reg::GCMD, bits::GCMD_SRTP, 4);
            mmio_write(*s, reg::IQA, iq | bits::IQA_DW | 1, 8);
            mmio_write(*s, reg::GCMD, bits::GCMD_QIE, 4);
            mmio_write(*s, reg::GCMD, bits::GCMD_QIE | bits::GCMD_TE, 4);
        }
    }
    void put(const RawDesc& d) {
        memory.store.write(iq + tail, d.data(), 32);
        tail = (tail + 32) % 8192;
    }
    void put_invalidation(uint64_t page) { put(encode_pasid_iotlb_page(1, 1, kMissBase + page * 4096, 0, false)); }
    void put_sync(uint32_t token) { put(encode_wait(true, status, token)); }
    void submit() { mmio_write(drv.cpu, reg::IQT, tail, 8); }
    bool synced(uint32_t token) { return memory.store.read_u32(status) == token; }
};

} // namespace benchrig::vtd_bench
