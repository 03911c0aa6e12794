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
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "models/iommu/common/table_builder.hpp"
#include "models/iommu/vtd/vtd_descriptors.hpp"
#include "models/iommu/vtd/vtd_iommu.hpp"
#include "models/iommu/vtd/vtd_tables.hpp"
#include "models/mem/sparse_memory.hpp"
#include "models/pcie/ats_endpoint.hpp"

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::vtd;
using sc_core::sc_time;
using sc_core::SC_NS;
using sc_core::SC_ZERO_TIME;

namespace {

constexpr uint64_t kHitBase = 0x100000000ull;
constexpr uint64_t kMissBase = 0x200000000ull;

/// The trivial memory target of the baseline (and the memory behind the IOMMU).
struct Memory : sc_core::sc_module {
    tlm_utils::simple_target_socket<Memory> socket{"socket"};
    mem::SparseMemory store{uint64_t{1} << 40};
    explicit Memory(const sc_core::sc_module_name& n) : sc_module(n) {
        socket.register_b_transport(this, &Memory::b_transport);
        socket.register_get_direct_mem_ptr(this, &Memory::get_dmi);
    }
    void b_transport(tlm::tlm_generic_payload& t, sc_time& d) {
        if (t.is_read()) store.read(t.get_address(), t.get_data_ptr(), t.get_data_length());
        else store.write(t.get_address(), t.get_data_ptr(), t.get_data_length());
        d += latency;
        t.set_dmi_allowed(true);
        t.set_response_status(tlm::TLM_OK_RESPONSE);
    }
    /// Page-granular DMI onto the sparse store.
    bool get_dmi(tlm::tlm_generic_payload& t, tlm::tlm_dmi& dmi) {
        const uint64_t base = t.get_address() & ~uint64_t{4095};
        dmi.set_dmi_ptr(store.page_ptr(base));
        dmi.set_start_address(base);
        dmi.set_end_address(base + 4095);
        dmi.allow_read_write();
        dmi.set_read_latency(latency);
        dmi.set_write_latency(latency);
        return true;
    }
    const sc_time latency{90, SC_NS};
};

/// Swallows messages from the unit that has no device behind it.
struct Sink : sc_core::sc_module {
    tlm_utils::simple_target_socket<Sink> socket{"socket"};
    explicit Sink(const sc_core::sc_module_name& n) : sc_module(n) { socket.register_b_transport(this, &Sink::b_transport); }
    void b_transport(tlm::tlm_generic_payload& t, sc_time&) { t.set_response_status(tlm::TLM_OK_RESPONSE); }
};

struct Driver : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<Driver> plain{"plain"}, dev{"dev"}, cpu{"cpu"}, cpu2{"cpu2"};
    explicit Driver(const sc_core::sc_module_name& n) : sc_module(n) {}
};

struct Result {
    double wall = 0;
    uint64_t count = 0;
};

/// Two identical units: one driven by a raw device port (IOTLB phases, invalidations),
/// one behind an AtsEndpoint (ATC phase), so no extra routing hop is measured.
struct Rig {
    uint64_t n, miss_pages;
    Memory memory{"memory"};
    Memory memory2{"memory2"};
    Memory plain_mem{"plain_mem"};
    Driver drv{"drv"};
    Sink sink{"sink"};
    stats::Group root{"root"};
    std::unique_ptr<VtdIommu> iommu, iommu2;
    std::unique_ptr<pcie::AtsEndpoint> ep;
    uint64_t next = 0x1000000;
    uint64_t iq = 0, rtaddr = 0, rtaddr2 = 0;
    Result plain, hit, atc, miss, inv;

    Rig(uint64_t count, uint64_t pages) : n(count), miss_pages(pages) {
        VtdParams p;
        p.walker.s1_walk_cache.per_level.entries = 0; // cold 4-level walks on every miss
        p.walker.s2_walk_cache.per_level.entries = 0;
        iommu = std::make_unique<VtdIommu>("dmar0", p, &root);
        iommu2 = std::make_unique<VtdIommu>("dmar1", p, &root);
        pcie::AtsEndpointParams ap;
        ap.rid = pcie::Bdf(0x03, 1, 0);
        ep = std::make_unique<pcie::AtsEndpoint>("ep", ap, &root);
        iommu->mem.bind(memory.socket);
        iommu2->mem.bind(memory2.socket);
        drv.plain.bind(plain_mem.socket);
        drv.dev.bind(iommu->upstream);
        ep->upstream.bind(iommu2->upstream);
        drv.cpu.bind(iommu->mmio);
        drv.cpu2.bind(iommu2->mmio);
        iommu2->ats_inv.bind(ep->downstream);
        iommu->ats_inv.bind(sink.socket);
        rtaddr = build_tables(memory, pcie::Bdf(0x03, 0, 0), miss_pages);
        next = 0x1000000;
        rtaddr2 = build_tables(memory2, ap.rid, 0);
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
        tlm::tlm_generic_payload g;
        g.set_command(tlm::TLM_WRITE_COMMAND);
        g.set_address(off);
        g.set_data_ptr(reinterpret_cast<unsigned char*>(&v));
        g.set_data_length(len);
        g.set_streaming_width(len);
        sc_time d = SC_ZERO_TIME;
        s->b_transport(g, d);
        sc_core::wait(d);
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

double since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

[[gnu::noinline]] void phase_plain(Rig& r) {
    tlm::tlm_generic_payload g;
    uint64_t v = 0;
    g.set_data_ptr(reinterpret_cast<unsigned char*>(&v));
    g.set_data_length(8);
    g.set_streaming_width(8);
    sc_time d = SC_ZERO_TIME;
    const auto t0 = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < r.n; ++i) {
        g.set_command(tlm::TLM_READ_COMMAND);
        g.set_address(0x40000000 + (i & 63) * 4096);
        g.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
        r.drv.plain->b_transport(g, d);
    }
    r.plain = {since(t0), r.n};
}

/// Device requests with PASID 1 straight into the IOMMU's upstream socket.
template <class AddrOf>
Result device_loop(Rig& r, uint64_t count, AddrOf addr_of) {
    tlm::tlm_generic_payload g;
    uint64_t v = 0;
    pcie::TlpExtension ext;
    ext.requester = pcie::Bdf(0x03, 0, 0);
    ext.pasid_present = true;
    ext.pasid = 1;
    g.set_data_ptr(reinterpret_cast<unsigned char*>(&v));
    g.set_data_length(8);
    g.set_streaming_width(8);
    g.set_extension(&ext);
    sc_time d = SC_ZERO_TIME;
    const auto t0 = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < count; ++i) {
        g.set_command(tlm::TLM_READ_COMMAND);
        g.set_address(addr_of(i));
        g.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
        r.drv.dev->b_transport(g, d);
    }
    Result res{since(t0), count};
    g.clear_extension(&ext);
    return res;
}

[[gnu::noinline]] void phase_iotlb_hit(Rig& r) {
    r.hit = device_loop(r, r.n, [](uint64_t i) { return kHitBase + (i & 63) * 4096; });
}

[[gnu::noinline]] void phase_iotlb_miss(Rig& r) {
    uint64_t x = 1;
    r.miss = device_loop(r, r.n / 4, [&](uint64_t) {
        x = x * 6364136223846793005ull + 1442695040888963407ull; // deterministic LCG over the working set
        return kMissBase + ((x >> 20) % r.miss_pages) * 4096;
    });
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

[[gnu::noinline]] void phase_invalidations(Rig& r, uint64_t count) {
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
        while (r.memory.store.read_u32(status) != token) sc_core::wait(sc_time(1, sc_core::SC_US));
        done += 64;
    }
    r.inv = {since(t0), done};
}

} // namespace

int sc_main(int argc, char* argv[]) {
    const bool smoke = argc > 1 && std::string(argv[1]) == "--smoke";
    Rig r(smoke ? 5000 : 2000000, smoke ? 4096 : 262144); // full: 1 GiB of 4 KiB pages >> 512-entry IOTLB
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
        phase_invalidations(r, smoke ? 640 : 64000);
        sc_core::sc_stop();
    });
    sc_core::sc_start();

    auto per = [](const Result& x) { return x.count ? x.wall / static_cast<double>(x.count) * 1e9 : 0.0; };
    const double base = per(r.plain);
    std::printf("bench_vtd (%s)\n", smoke ? "smoke" : "full");
    std::printf("  %-34s %12s %14s %10s\n", "phase", "requests", "ns/request", "x plain");
    auto line = [&](const char* name, const Result& x) {
        std::printf("  %-34s %12llu %14.1f %10.2f\n", name, static_cast<unsigned long long>(x.count), per(x),
                    base > 0 ? per(x) / base : 0.0);
    };
    line("plain b_transport loop", r.plain);
    line("(a) IOTLB hit", r.hit);
    line("(b) ATC hit (endpoint)", r.atc);
    line("(c) IOTLB miss, cold 4-level walk", r.miss);
    std::printf("  %-34s %12llu %14.1f   (%.0f descriptors/s)\n", "(d) invalidation descriptors",
                static_cast<unsigned long long>(r.inv.count), per(r.inv),
                r.inv.wall > 0 ? static_cast<double>(r.inv.count) / r.inv.wall : 0.0);
    const auto* walks = r.root.find("dmar0.translation.walker.walks");
    if (walks) std::printf("  walks: %.0f\n", stats::numeric_value(*walks));
    return 0;
}
