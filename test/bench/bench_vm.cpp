// SPDX-License-Identifier: Apache-2.0
// Speed bench: a guest's DMA on an IOTLB hit against a host DMA on an IOTLB
// hit, in one VT-d unit. The guest's device translates through a nested PASID
// entry (its first-stage table in guest memory, GPA -> HPA by the host's
// second stage); the host's through a first-stage entry. Nesting changes the
// walks, not the hit path, so both phases should cost the same host work.
//   build/test/bench/bench_vm                 # wall time per request
//   valgrind --tool=callgrind build/test/bench/bench_vm --smoke
//   callgrind_annotate --inclusive=yes callgrind.out.* | grep phase_
// `--smoke` (ctest) runs a few thousand requests per phase and checks both
// translated every request through the IOTLB.
#include <cstdio>
#include <string>

#include "models/host/vm/guest_memory.hpp"
#include "models/iommu/common/table_builder.hpp"
#include "models/iommu/vtd/vtd_iommu.hpp"
#include "models/iommu/vtd/vtd_tables.hpp"
#include "test/bench/bench_rig.hpp"

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::vtd;
using namespace benchrig;

namespace {

constexpr uint64_t kIova = 0x100000000ull;
constexpr uint64_t kGuestRamGpa = 0x100000, kGuestRamBytes = 64ull << 20, kGuestRamHpa = 0x800000000ull;
const pcie::Bdf kHostDev{0x03, 0, 0}, kGuestDev{0x04, 0, 0};

struct Rig {
    Memory memory{"memory"};
    Driver drv{"drv"};
    Sink sink{"sink"}, unused_plain{"unused_plain"}, unused_cpu2{"unused_cpu2"}; ///< the rig's spare initiators
    stats::Group root{"root"};
    std::unique_ptr<VtdIommu> iommu;
    host::vm::GuestMemory guest{memory.store, kGuestRamGpa, kGuestRamBytes};
    uint64_t next = 0x1000000, guest_next = kGuestRamGpa, rtaddr = 0, iq = 0;
    uint64_t n;
    Result host_hit, guest_hit;

    explicit Rig(uint64_t count) : n(count) {
        // The hit path is timed, so the IOTLB holds all 128 warm translations (host and guest
        // pages at the same IOVAs); the default 128-entry 8-way IOTLB would evict some of them.
        VtdParams p;
        p.iotlb.geometry.entries = 512;
        iommu = std::make_unique<VtdIommu>("dmar0", p, &root);
        iommu->mem.bind(memory.socket);
        drv.dev.bind(iommu->upstream);
        drv.cpu.bind(iommu->mmio);
        drv.plain.bind(unused_plain.socket);
        drv.cpu2.bind(unused_cpu2.socket);
        iommu->ats_inv.bind(sink.socket);
        guest.back(kGuestRamHpa);
        VtdTableWriter tw(memory.store, [this] { return alloc(); });
        // The host's DMA: a first-stage domain.
        StageConfig s1;
        s1.enabled = true;
        s1.levels = 4;
        s1.output_bits = 46;
        auto host_tables = TableBuilder::create(memory.store, s1, [this](uint64_t, uint64_t) { return std::optional(alloc()); });
        host_tables->map(kIova, 0x40000000, 64 * 4096, 12);
        PasidEntry pe;
        pe.present = true;
        pe.pgtt = static_cast<uint8_t>(Pgtt::first_stage);
        pe.did = 1;
        pe.flptptr = host_tables->root();
        tw.set_pasid_entry(tw.make_context(kHostDev, 0, true, true, false, 0), 1, pe);
        // The guest's DMA: its first stage in guest memory over the host's second stage of guest RAM.
        StageConfig s2;
        s2.enabled = true;
        s2.format = PtFormat::vtd_ss;
        s2.levels = 4;
        s2.output_bits = 46;
        auto parent = TableBuilder::create(memory.store, s2, [this](uint64_t, uint64_t) { return std::optional(alloc()); });
        parent->map(kGuestRamGpa, kGuestRamHpa, kGuestRamBytes, 12);
        StageConfig g1 = s1;
        g1.output_bits = 48;
        auto guest_tables = TableBuilder::create(guest, g1, [this](uint64_t, uint64_t) {
            const uint64_t a = guest_next;
            guest_next += 4096;
            return std::optional(a);
        });
        guest_tables->map(kIova, kGuestRamGpa + (32ull << 20), 64 * 4096, 12);
        PasidEntry ne;
        ne.present = true;
        ne.pgtt = static_cast<uint8_t>(Pgtt::nested);
        ne.did = 2;
        ne.flptptr = guest_tables->root();
        ne.slptptr = parent->root();
        ne.aw = 2;
        tw.set_pasid_entry(tw.make_context(kGuestDev, 0, true, true, false, 0), 1, ne);
        rtaddr = tw.root_table();
        iq = alloc();
        alloc();
    }
    uint64_t alloc() {
        const uint64_t a = next;
        next += 4096;
        return a;
    }
    void enable() {
        mmio_write(drv.cpu, reg::RTADDR, rtaddr | bits::RTADDR_SMT, 8);
        mmio_write(drv.cpu, reg::GCMD, bits::GCMD_SRTP, 4);
        mmio_write(drv.cpu, reg::IQA, iq | bits::IQA_DW | 1, 8);
        mmio_write(drv.cpu, reg::GCMD, bits::GCMD_QIE, 4);
        mmio_write(drv.cpu, reg::GCMD, bits::GCMD_QIE | bits::GCMD_TE, 4);
    }
};

uint64_t page(uint64_t i) { return kIova + (i & 63) * 4096; }

[[gnu::noinline]] void phase_host_hit(Rig& r) { r.host_hit = device_loop(r.drv.dev, kHostDev, 1u, r.n, page); }
[[gnu::noinline]] void phase_guest_hit(Rig& r) { r.guest_hit = device_loop(r.drv.dev, kGuestDev, 1u, r.n, page); }

double stat(const Rig& r, const char* dotted) {
    const stats::Entry* e = r.root.find(dotted);
    return e ? stats::numeric_value(*e) : -1;
}

} // namespace

int sc_main(int argc, char* argv[]) {
    const bool smoke = argc > 1 && std::string(argv[1]) == "--smoke";
    Rig r(smoke ? 5000 : 2000000);
    sc_core::sc_spawn([&] {
        r.enable();
        // Warm the IOTLB and the context / PASID caches outside the timed loops (nested walks here).
        device_loop(r.drv.dev, kHostDev, 1u, 64, page);
        device_loop(r.drv.dev, kGuestDev, 1u, 64, page);
        phase_host_hit(r);
        phase_guest_hit(r);
        sc_core::sc_stop();
    });
    sc_core::sc_start();
    auto per = [](const Result& x) { return x.count ? x.wall / static_cast<double>(x.count) * 1e9 : 0.0; };
    std::printf("bench_vm (%s)\n", smoke ? "smoke" : "full");
    std::printf("  %-34s %12llu %14.1f ns/request\n", "host DMA, IOTLB hit", static_cast<unsigned long long>(r.host_hit.count),
                per(r.host_hit));
    std::printf("  %-34s %12llu %14.1f ns/request (x%.2f)\n", "guest (nested) DMA, IOTLB hit",
                static_cast<unsigned long long>(r.guest_hit.count), per(r.guest_hit),
                per(r.host_hit) > 0 ? per(r.guest_hit) / per(r.host_hit) : 0.0);
    // Every timed request must have hit: 128 warm-up misses, nothing else walked, no faults.
    const double misses = stat(r, "dmar0.translation.iotlb.misses"), faults = stat(r, "dmar0.faults");
    std::printf("  IOTLB misses %.0f (the 128 warm-up requests), faults %.0f\n", misses, faults);
    return misses == 128 && faults == 0 ? 0 : 1;
}
