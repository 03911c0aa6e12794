// SPDX-License-Identifier: Apache-2.0
// Host-side simulation speed of DMA through the VT-d model.
//
// Measures, in one run: a plain SystemC b_transport loop to a trivial memory
// target (the baseline), translated requests with (a) IOTLB hits, (b) ATC hits
// through an AtsEndpoint, (c) IOTLB misses with cold 4-level walks (walk caches
// off, a random working set far beyond the IOTLB), and (d) invalidation
// descriptors processed per host second (63 page-selective PASID-IOTLB
// invalidations + 1 wait per batch). Prints wall time per request and the
// ratio to the baseline. Each phase is its own function, so instruction counts
// per phase come from
//   valgrind --tool=callgrind build/test/bench/bench_vtd --smoke
//   callgrind_annotate --inclusive=yes callgrind.out.* | grep phase_
// `--smoke` runs a few thousand requests per phase (ctest).
#include <memory>
#include <string>

#include "models/iommu/common/table_builder.hpp"
#include "models/iommu/vtd/vtd_descriptors.hpp"
#include "models/iommu/vtd/vtd_iommu.hpp"
#include "models/iommu/vtd/vtd_tables.hpp"
#include "models/mem/sparse_memory.hpp"
#include "models/pcie/ats_endpoint.hpp"
#include "test/bench/bench_rig.hpp"

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::vtd;
using namespace benchrig;

namespace {

constexpr uint64_t kHitBase = 0x100000000ull;
constexpr uint64_t kMissBase = 0x200000000ull;

struct Rig : TwoUnits<VtdIommu, VtdParams> {
    uint64_t n, miss_pages;
    uint64_t next = 0x1000000;
    uint64_t iq = 0, rtaddr = 0, rtaddr2 = 0;
    Result plain, hit, atc, miss, inv;

    Rig(uint64_t count, uint64_t pages) : TwoUnits("dmar0", "dmar1"), n(count), miss_pages(pages) {
        rtaddr = build_tables(memory, pcie::Bdf(0x03, 0, 0), miss_pages);
        next = 0x1000000;
        rtaddr2 = build_tables(memory2, ep_rid, 0);
        iq = alloc();
        alloc();
    }
    uint64_t alloc() {
        const uint64_t a = next;
        next += 4096;
        return a;
    }
    uint64_t build_tables(Memory& m, pcie::Bdf rid, uint64_t pages) {
        StageConfig cfg;
        cfg.enabled = true;
        cfg.format = PtFormat::x86_64;
        cfg.levels = 4;
        cfg.input_bits = 48;
        cfg.output_bits = 46;
        auto tb = TableBuilder::create(m.store, cfg, [this](uint64_t, uint64_t) -> std::optional<uint64_t> {
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
    void mmio(tlm_utils::simple_initiator_socket<Driver>& s, uint32_t off, uint64_t v, unsigned len) {
        mmio_write(s, off, v, len);
    }
    void mmio(uint32_t off, uint64_t v, unsigned len) { mmio(drv.cpu, off, v, len); }
    void enable() {
        for (auto* s : {&drv.cpu, &drv.cpu2}) {
            mmio(*s, reg::RTADDR, (s == &drv.cpu ? rtaddr : rtaddr2) | bits::RTADDR_SMT, 8);
            mmio(*s, reg::GCMD, bits::GCMD_SRTP, 4);
            mmio(*s, reg::IQA, iq | bits::IQA_DW | 1, 8);
            mmio(*s, reg::GCMD, bits::GCMD_QIE, 4);
            mmio(*s, reg::GCMD, bits::GCMD_QIE | bits::GCMD_TE, 4);
        }
    }
};

[[gnu::noinline]] void phase_plain(Rig& r) { r.plain = benchrig::phase_plain(r.drv.plain, r.n); }

/// Device requests with PASID 1 straight into the IOMMU's upstream socket.
template <class AddrOf>
Result device_loop(Rig& r, uint64_t count, AddrOf addr_of) {
    return benchrig::device_loop(r.drv.dev, pcie::Bdf(0x03, 0, 0), 1u, count, addr_of);
}

[[gnu::noinline]] void phase_iotlb_hit(Rig& r) {
    r.hit = device_loop(r, r.n, [](uint64_t i) { return kHitBase + (i & 63) * 4096; });
}

[[gnu::noinline]] void phase_iotlb_miss(Rig& r) {
    r.miss = device_loop(r, r.n / 4, RandomPages{kMissBase, r.miss_pages});
}

/// Returns the local time reached; the caller synchronises (outside the measured function,
/// so callgrind does not attribute the scheduler's context switch to this phase).
[[gnu::noinline]] sc_time phase_atc_hit(Rig& r) {
    uint64_t v = 0;
    sc_time d = SC_ZERO_TIME;
    const auto t0 = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < r.n; ++i) r.ep->dma(kHitBase + (i & 15) * 4096, &v, 8, false, 1u, d);
    r.atc = {since(t0), r.n};
    return d;
}

[[gnu::noinline]] void phase_invalidations(Rig& r, uint64_t count, SyncWaiter& waiter) {
    const uint64_t status = r.alloc();
    uint64_t tail = 0, done = 0;
    uint32_t token = 0;
    const auto t0 = std::chrono::steady_clock::now();
    while (done < count) {
        for (int k = 0; k < 63; ++k) {
            RawDesc desc = encode_pasid_iotlb_page(1, 1, kMissBase + ((done + k) % r.miss_pages) * 4096, 0, false);
            r.memory.store.write(r.iq + tail, desc.data(), 32);
            tail = (tail + 32) % 8192;
        }
        RawDesc w = encode_wait(true, status, ++token);
        r.memory.store.write(r.iq + tail, w.data(), 32);
        tail = (tail + 32) % 8192;
        r.mmio(reg::IQT, tail, 8);
        waiter.until([&] { return r.memory.store.read_u32(status) == token; });
        done += 64;
    }
    r.inv = {since(t0), done};
}

} // namespace

int sc_main(int argc, char* argv[]) {
    const Args args(argc, argv);
    const bool smoke = args.smoke;
    SyncWaiter waiter(args.poll_us);
    Rig r(smoke ? 5000 : 2000000, smoke ? 4096 : 262144); // full: 1 GiB of 4 KiB pages >> 512-entry IOTLB
    r.iommu->set_invalidation_observer(&waiter);
    sc_core::sc_spawn([&] {
        r.enable();
        phase_plain(r);
        // Warm the IOTLB / ATC and the context and PASID caches outside the timed loops.
        device_loop(r, 64, [](uint64_t i) { return kHitBase + (i & 63) * 4096; });
        phase_iotlb_hit(r);
        uint64_t v = 0;
        sc_time d = SC_ZERO_TIME;
        for (uint64_t i = 0; i < 16; ++i) r.ep->dma(kHitBase + i * 4096, &v, 8, false, 1u, d);
        sc_core::wait(phase_atc_hit(r));
        phase_iotlb_miss(r);
        phase_invalidations(r, args.commands, waiter);
        sc_core::sc_stop();
    });
    sc_core::sc_start();

    report("bench_vtd", smoke, r.plain, r.hit, r.atc, r.miss, "(c) IOTLB miss, cold 4-level walk", r.inv,
           "(d) invalidation descriptors", "descriptors", r.root, "dmar0.translation.walker.walks");
    return 0;
}
