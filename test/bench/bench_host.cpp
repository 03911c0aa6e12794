// SPDX-License-Identifier: Apache-2.0
// Host-side bookkeeping that grows with the platform (issue 16): the DMA
// safety oracle and the IOVA allocator. Phases, each a function named
// phase_* so callgrind can attribute instructions to it:
//   phase_oracle_map      maps N GiB in 1 GiB pages (default 1 TiB): wall
//                         seconds and the growth of peak RSS;
//   phase_oracle_check    checks DMAs against a 16 Ki-entry ring of mapped
//                         4 KiB pages (the NIC platforms' shape): Ir per check;
//   phase_iova_ring       a 16 Ki-entry ring of single-page IOVAs in a
//                         48-bit space, recycled oldest first: ns per
//                         alloc + free.
// `--smoke` runs small sizes and checks the verdicts; `--map-gib N` sets the
// mapped size (the per-page oracle needed ~35 GiB for 1 TiB); `--only PHASE`
// (map, check, iova) runs one phase and `--ops N` sets its operation count,
// e.g. under callgrind:
//   valgrind --tool=callgrind build/test/bench/bench_host --only check
//   callgrind_annotate --inclusive=yes callgrind.out.* | grep phase_
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <random>
#include <vector>

#include "models/common/stats.hpp"
#include "models/host/dma_oracle.hpp"
#include "models/host/iova_allocator.hpp"

using namespace iommusim;
using namespace iommusim::host;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

long peak_rss_kib() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

// noinline: each phase is one frame in a callgrind profile.
[[gnu::noinline]] void phase_oracle_map(DmaOracle& o, uint64_t gib) {
    const uint64_t g = uint64_t{1} << 30;
    for (uint64_t i = 0; i < gib; ++i) o.map(1, i * g, (uint64_t{1} << 44) + i * g, g, Duration::ns(1));
}

[[gnu::noinline]] uint64_t phase_oracle_check(DmaOracle& o, const std::vector<uint64_t>& iovas, uint64_t n) {
    uint64_t correct = 0;
    for (uint64_t i = 0; i < n; ++i) {
        const uint64_t iova = iovas[(i * 7919) % iovas.size()] + (i & 0xFC0);
        correct += o.check(pcie::Bdf(1, 0, 0), std::nullopt, iova, iova + (uint64_t{1} << 40), Duration::ns(10),
                           DmaOracle::Source::iotlb) == DmaOracle::Verdict::correct;
    }
    return correct;
}

[[gnu::noinline]] uint64_t phase_iova_ring(IovaAllocator& a, std::deque<uint64_t>& ring, uint64_t n) {
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; ++i) {
        a.free(ring.front());
        ring.pop_front();
        ring.push_back(a.alloc(4096));
        sum += ring.back();
    }
    return sum;
}

} // namespace

// The entry point is sc_main, as for every SystemC program (libsystemc's
// main calls it); nothing here elaborates a simulation.
extern "C" int sc_main(int argc, char* argv[]) {
    bool smoke = false;
    uint64_t map_gib = 1024;
    const char* only = nullptr;
    uint64_t ops = 0; // checks / alloc+free pairs; 0: the defaults below
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--smoke") == 0) smoke = true;
        else if (std::strcmp(argv[i], "--map-gib") == 0 && i + 1 < argc) map_gib = std::strtoull(argv[++i], nullptr, 10);
        else if (std::strcmp(argv[i], "--only") == 0 && i + 1 < argc) only = argv[++i];
        else if (std::strcmp(argv[i], "--ops") == 0 && i + 1 < argc) ops = std::strtoull(argv[++i], nullptr, 10);
        else {
            std::fprintf(stderr, "usage: bench_host [--smoke] [--map-gib N] [--only map|check|iova] [--ops N]\n");
            return 2;
        }
    }
    auto want = [&](const char* phase) { return !only || std::strcmp(only, phase) == 0; };
    if (smoke) map_gib = 4;
    const uint64_t ring_entries = smoke ? 1024 : 16384;
    const uint64_t n_check = ops ? ops : smoke ? 10'000 : 1'000'000;
    const uint64_t n_iova = ops ? ops : smoke ? 10'000 : 200'000;
    bool ok = true;

    if (want("map")) {
        stats::Group root("bench");
        DmaOracle o(&root);
        const long rss0 = peak_rss_kib();
        const auto t0 = Clock::now();
        phase_oracle_map(o, map_gib);
        std::printf("oracle: map %llu GiB in 1 GiB pages: %.3f s, peak RSS +%.1f MiB\n",
                    static_cast<unsigned long long>(map_gib), seconds_since(t0), (peak_rss_kib() - rss0) / 1024.0);
    }
    if (want("check")) {
        stats::Group root("bench");
        DmaOracle o(&root);
        o.bind(pcie::Bdf(1, 0, 0), std::nullopt, 2, Duration::ns(0));
        IovaAllocator a(0x100000, uint64_t{1} << 48);
        std::vector<uint64_t> iovas;
        for (uint64_t i = 0; i < ring_entries; ++i) {
            iovas.push_back(a.alloc(4096));
            o.map(2, iovas.back(), iovas.back() + (uint64_t{1} << 40), 4096, Duration::ns(1));
        }
        const auto t0 = Clock::now();
        const uint64_t correct = phase_oracle_check(o, iovas, n_check);
        std::printf("oracle: %llu checks over %llu mapped pages: %.1f ns per check\n",
                    static_cast<unsigned long long>(n_check), static_cast<unsigned long long>(ring_entries),
                    seconds_since(t0) * 1e9 / static_cast<double>(n_check));
        ok = ok && correct == n_check;
    }
    if (want("iova")) {
        IovaAllocator a(0x100000, uint64_t{1} << 48);
        std::deque<uint64_t> ring;
        for (uint64_t i = 0; i < ring_entries; ++i) ring.push_back(a.alloc(4096));
        const auto t0 = Clock::now();
        const uint64_t sum = phase_iova_ring(a, ring, n_iova);
        std::printf("iova: %llu-entry ring, %llu alloc+free: %.1f ns each\n", static_cast<unsigned long long>(ring_entries),
                    static_cast<unsigned long long>(n_iova), seconds_since(t0) * 1e9 / static_cast<double>(n_iova));
        ok = ok && sum != 0 && a.ranges() == ring_entries;
    }
    if (!ok) std::printf("bench_host: wrong results\n");
    return ok ? 0 : 1;
}
