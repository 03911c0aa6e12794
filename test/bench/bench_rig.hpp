// SPDX-License-Identifier: Apache-2.0
#pragma once
// What every IOMMU family's speed bench shares (bench_vtd, bench_amd, bench_smmuv3):
// the trivial memory target (page-granular DMI onto sparse memory, 90 ns), a
// message sink, the initiator sockets, the plain b_transport baseline loop, a
// device request loop straight into a unit's upstream socket, the phases, the
// command phase, sc_main's run (run_bench) and the report. A family's bench is its
// Rig: the unit's tables in memory, its registers and its command encoding.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "models/common/sc_time.hpp"
#include "models/common/stats.hpp"
#include "models/iommu/common/inval_observer.hpp"
#include "models/mem/sparse_memory.hpp"
#include "models/pcie/ats_endpoint.hpp"
#include "models/pcie/tlp.hpp"

namespace benchrig {

using namespace iommusim;
using sc_core::sc_time;
using sc_core::SC_NS;
using sc_core::SC_ZERO_TIME;

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
    double cpu = 0; ///< CPU seconds of the simulation's thread (the command phase only)
};

/// IOVAs of the phases: 64 pages from kHitBase (hits), `miss_pages` pages from kMissBase.
constexpr uint64_t kHitBase = 0x100000000ull;
constexpr uint64_t kMissBase = 0x200000000ull;

/// Two identical units of one family: `iommu` driven by a raw device port (IOTLB phases,
/// commands), `iommu2` behind an AtsEndpoint (ATC phase), so no extra routing hop is
/// measured; PDE / walk caches off, so every IOTLB miss is a cold walk.
template <class Unit, class Params>
struct TwoUnits {
    Memory memory{"memory"};
    Memory memory2{"memory2"};
    Memory plain_mem{"plain_mem"};
    Driver drv{"drv"};
    Sink sink{"sink"};
    stats::Group root{"root"};
    std::unique_ptr<Unit> iommu, iommu2;
    std::unique_ptr<pcie::AtsEndpoint> ep;
    const pcie::Bdf ep_rid{0x03, 1, 0};
    uint64_t n, miss_pages; ///< requests per phase, pages of the miss phase's working set
    Result plain, hit, atc, miss, cmds;
    uint32_t sync_token = 0; ///< the last sync's token (phase_commands may run many times)

    TwoUnits(const char* name, const char* name2, uint64_t count, uint64_t pages) : n(count), miss_pages(pages) {
        Params p;
        p.walker.s1_walk_cache.per_level.entries = 0; // cold 4-level walks on every miss
        p.walker.s2_walk_cache.per_level.entries = 0;
        p.walker.s2_cache.geometry.entries = 0; // nested walks too: every stage-2 step reads memory
        iommu = std::make_unique<Unit>(name, p, &root);
        iommu2 = std::make_unique<Unit>(name2, p, &root);
        pcie::AtsEndpointParams ap;
        ap.rid = ep_rid;
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
    }
};

/// Command line of the family benches: `--smoke` (a few thousand requests per phase, ctest),
/// `--commands N` (commands in the command phase: host cost per command from the difference
/// of two runs' total instructions, scheduler and driver included), `--poll-us U` (the
/// driver polls the sync's status word every U µs instead of sleeping until the unit reports
/// the sync done: the benches' driver before 2026-11-27, whose polls were ~14 thread switches
/// per 64 commands, a third of the phase's cost).
struct Args {
    bool smoke = false;
    uint64_t commands = 0;
    double poll_us = 0;
    Args(int argc, char* argv[]) {
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            if (a == "--smoke") smoke = true;
            else if (a == "--commands" && i + 1 < argc) commands = std::stoull(argv[++i]);
            else if (a == "--poll-us" && i + 1 < argc) poll_us = std::stod(argv[++i]);
            else {
                std::fprintf(stderr, "usage: %s [--smoke] [--commands N] [--poll-us U]\n", argv[0]);
                std::exit(2);
            }
        }
        if (!commands) commands = smoke ? 640 : 64000;
    }
};

/// How the bench's driver waits for a sync: asleep until the unit reports it done (its
/// InvalidationObserver, wait_done is reported when the status word is written), or polling
/// every `poll` (Args::poll_us). Either way it returns once `ready()` (the status word holds
/// the token): the report only wakes it.
struct SyncWaiter final : iommu::InvalidationObserver {
    sc_core::sc_event done;
    sc_time poll = SC_ZERO_TIME;
    explicit SyncWaiter(double poll_us) : poll(poll_us * 1000.0, SC_NS) {}
    void on_phase(uint64_t, iommu::InvalPhase p, Duration at, pcie::Bdf) override {
        if (p == iommu::InvalPhase::wait_done) done.notify(to_sc(at > kernel_now() ? at - kernel_now() : Duration{}));
    }
    template <class Ready>
    void until(Ready ready) {
        while (!ready()) {
            if (poll == SC_ZERO_TIME) sc_core::wait(done);
            else sc_core::wait(poll);
        }
    }
};

inline double since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// CPU seconds of the calling OS thread. SystemC's threads are coroutines on one OS thread
/// (QuickThreads), so this is the whole simulation's CPU time, without the time the VM or
/// other processes take the core away (which wall time includes).
inline double thread_cpu() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// One MMIO write from the calling SC_THREAD.
inline void mmio_write(tlm_utils::simple_initiator_socket<Driver>& s, uint32_t off, uint64_t v, unsigned len) {
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

/// The baseline: `n` 8-byte reads through a plain socket into a Memory.
inline Result plain_loop(tlm_utils::simple_initiator_socket<Driver>& s, uint64_t n) {
    tlm::tlm_generic_payload g;
    uint64_t v = 0;
    g.set_data_ptr(reinterpret_cast<unsigned char*>(&v));
    g.set_data_length(8);
    g.set_streaming_width(8);
    sc_time d = SC_ZERO_TIME;
    const auto t0 = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < n; ++i) {
        g.set_command(tlm::TLM_READ_COMMAND);
        g.set_address(0x40000000 + (i & 63) * 4096);
        g.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
        s->b_transport(g, d);
    }
    return {since(t0), n};
}

/// Device requests from `rid` (with `pasid` if given) straight into a unit's upstream socket.
template <class AddrOf>
Result device_loop(tlm_utils::simple_initiator_socket<Driver>& s, pcie::Bdf rid, std::optional<uint32_t> pasid,
                   uint64_t count, AddrOf addr_of) {
    tlm::tlm_generic_payload g;
    uint64_t v = 0;
    pcie::TlpExtension ext;
    ext.requester = rid;
    ext.pasid_present = pasid.has_value();
    ext.pasid = pasid.value_or(0);
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
        s->b_transport(g, d);
    }
    Result res{since(t0), count};
    g.clear_extension(&ext);
    return res;
}

/// `n` 8-byte reads through an AtsEndpoint over 16 pages from `base` (ATC hits once warm);
/// returns the local time reached (the caller synchronises outside its measured function).
inline sc_time atc_loop(pcie::AtsEndpoint& ep, uint64_t base, std::optional<uint32_t> pasid, uint64_t n,
                        Result& out) {
    uint64_t v = 0;
    sc_time d = SC_ZERO_TIME;
    const auto t0 = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < n; ++i) ep.dma(base + (i & 15) * 4096, &v, 8, false, pasid, d);
    out = {since(t0), n};
    return d;
}

/// A deterministic LCG over `pages` pages from `base` (the miss phases' working set).
struct RandomPages {
    uint64_t base, pages, x = 1;
    uint64_t operator()(uint64_t) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        return base + ((x >> 20) % pages) * 4096;
    }
};

/// Prints the table every bench prints: per-request wall time and the ratio to the baseline.
inline void report(const char* bench, bool smoke, const Result& plain, const Result& hit, const Result& atc,
                   const Result& miss, const char* miss_name, const Result& inv, const char* inv_name,
                   const char* inv_unit, const stats::Group& root, const char* walks_path) {
    auto per = [](const Result& x) { return x.count ? x.wall / static_cast<double>(x.count) * 1e9 : 0.0; };
    const double base = per(plain);
    std::printf("%s (%s)\n", bench, smoke ? "smoke" : "full");
    std::printf("  %-34s %12s %14s %10s\n", "phase", "requests", "ns/request", "x plain");
    auto line = [&](const char* name, const Result& x) {
        std::printf("  %-34s %12llu %14.1f %10.2f\n", name, static_cast<unsigned long long>(x.count), per(x),
                    base > 0 ? per(x) / base : 0.0);
    };
    line("plain b_transport loop", plain);
    line("(a) IOTLB hit", hit);
    line("(b) ATC hit (endpoint)", atc);
    line(miss_name, miss);
    std::printf("  %-34s %12llu %14.1f   (%.0f %s/s)\n", inv_name, static_cast<unsigned long long>(inv.count),
                per(inv), inv.wall > 0 ? static_cast<double>(inv.count) / inv.wall : 0.0, inv_unit);
    if (const auto* walks = root.find(walks_path)) std::printf("  walks: %.0f\n", stats::numeric_value(*walks));
}

// ---- the phases (each its own function: callgrind_annotate --inclusive=yes | grep phase_) ----
// A Rig is TwoUnits of its family plus: `dev` and `pasid` (the requests of the IOTLB phases),
// enable() (registers of both units), put_invalidation(page) (one page invalidation of
// kMissBase + page * 4096 written into the command ring), put_sync(token) (the sync whose
// status write stores `token`), submit() (the doorbell: tail / producer register), synced(token)
// (the status word holds it). Optional: miss_phases() (instead of phase_iotlb_miss alone) and
// report_extra().

template <class Rig>
[[gnu::noinline]] void phase_plain(Rig& r) {
    r.plain = plain_loop(r.drv.plain, r.n);
}

template <class Rig>
Result hit_loop(Rig& r, uint64_t count) {
    return device_loop(r.drv.dev, r.dev, r.pasid, count, [](uint64_t i) { return kHitBase + (i & 63) * 4096; });
}

template <class Rig>
[[gnu::noinline]] void phase_iotlb_hit(Rig& r) {
    r.hit = hit_loop(r, r.n);
}

/// Returns the local time reached; the caller synchronises (outside the measured function,
/// so callgrind does not attribute the scheduler's context switch to this phase).
template <class Rig>
[[gnu::noinline]] sc_time phase_atc_hit(Rig& r) {
    return atc_loop(*r.ep, kHitBase, r.pasid, r.n, r.atc);
}

/// Cold misses of `rid` over the random working set.
template <class Rig>
Result miss_loop(Rig& r, pcie::Bdf rid, uint64_t count) {
    return device_loop(r.drv.dev, rid, r.pasid, count, RandomPages{kMissBase, r.miss_pages});
}

template <class Rig>
[[gnu::noinline]] void phase_iotlb_miss(Rig& r) {
    r.miss = miss_loop(r, r.dev, r.n / 4);
}

/// Commands per host second: batches of 63 page invalidations and one sync (as Linux flushes
/// page by page), each batch submitted with one doorbell write; the driver waits for the
/// sync's status word before the next batch (SyncWaiter).
template <class Rig>
[[gnu::noinline]] void phase_commands(Rig& r, uint64_t count, SyncWaiter& waiter) {
    uint64_t done = 0;
    const double c0 = thread_cpu();
    const auto t0 = std::chrono::steady_clock::now();
    while (done < count) {
        for (uint64_t k = 0; k < 63; ++k) r.put_invalidation((done + k) % r.miss_pages);
        r.put_sync(++r.sync_token);
        r.submit();
        waiter.until([&] { return r.synced(r.sync_token); });
        done += 64;
    }
    const double wall = since(t0);
    r.cmds = {wall, done, thread_cpu() - c0};
}

/// What the report calls a family's bench, its miss phase and its commands; `walks` is the
/// stats path of the first unit's walk counter.
struct BenchNames {
    const char* bench;
    const char* miss;
    const char* commands;
    const char* command_unit;
    const char* walks;
};

/// sc_main of a family bench: every phase in order on one thread, then the report.
template <class Rig>
int run_bench(int argc, char* argv[], const BenchNames& names) {
    const Args args(argc, argv);
    SyncWaiter waiter(args.poll_us);
    // full: 1 GiB of 4 KiB pages, far beyond any IOTLB
    Rig r(args.smoke ? 5000 : 2000000, args.smoke ? 4096 : 262144);
    r.iommu->set_invalidation_observer(&waiter);
    sc_core::sc_spawn([&] {
        r.enable();
        phase_plain(r);
        // Warm the IOTLB / ATC and the configuration caches outside the timed loops.
        hit_loop(r, 64);
        phase_iotlb_hit(r);
        uint64_t v = 0;
        sc_time d = SC_ZERO_TIME;
        for (uint64_t i = 0; i < 16; ++i) r.ep->dma(kHitBase + i * 4096, &v, 8, false, r.pasid, d);
        sc_core::wait(phase_atc_hit(r));
        if constexpr (requires { r.miss_phases(); }) r.miss_phases();
        else phase_iotlb_miss(r);
        phase_commands(r, args.commands, waiter);
        sc_core::sc_stop();
    });
    sc_core::sc_start();
    report(names.bench, args.smoke, r.plain, r.hit, r.atc, r.miss, names.miss, r.cmds, names.commands,
           names.command_unit, r.root, names.walks);
    if constexpr (requires { r.report_extra(); }) r.report_extra();
    return 0;
}

} // namespace benchrig
