// SPDX-License-Identifier: Apache-2.0
// Command throughput of AMD-Vi and SMMUv3 as a ratio to VT-d's, measured inside one
// run so the shared machine's drift cancels: the three families' command rigs
// (rig_vtd.hpp, rig_amd.hpp, rig_smmuv3.hpp: the command phase of bench_vtd /
// bench_amd / bench_smmuv3, batches of 63 page invalidations + 1 sync) elaborated in
// one sc_main, each under its own module, driven from one thread in many short
// alternating rounds. Each round runs every family once, in one of the six orders in
// turn (so each family runs in each place and follows each other equally often: a
// family's predecessor leaves its caches and branch predictors); a round's ratio
// is a family's commands per second over VT-d's in the same round. Printed per round
// and as median and quartiles, for wall time and for the CPU time of the simulation's
// thread (CLOCK_THREAD_CPUTIME_ID: time the VM or other processes take the core away
// is not in it).
//   build/test/bench/bench_cmdratio                       # 300 rounds of 16384 commands
//   build/test/bench/bench_cmdratio --rounds 60 --commands 65536
// `--smoke` (ctest): 12 rounds of 1024 commands.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "test/bench/rig_amd.hpp"
#include "test/bench/rig_smmuv3.hpp"
#include "test/bench/rig_vtd.hpp"

using namespace benchrig;

namespace {

/// One family's rig under a module of its own (module names stay unique with three rigs
/// in one kernel), with the waiter its unit reports syncs to.
template <class Rig>
struct Family : sc_core::sc_module {
    Rig r;
    SyncWaiter waiter;
    Family(const sc_core::sc_module_name& n, double poll_us) : sc_module(n), r(64, 4096), waiter(poll_us) {
        r.iommu->set_invalidation_observer(&waiter);
    }
    /// The standalone bench's state before its command phase: IOTLB entries from hits and
    /// misses, then one unmeasured round of commands.
    void warm(uint64_t commands) {
        r.enable();
        hit_loop(r, 64);
        miss_loop(r, r.dev, 512);
        phase_commands(r, commands, waiter);
    }
    /// One measured round: {wall s, cpu s, commands}.
    Result round(uint64_t commands) {
        phase_commands(r, commands, waiter);
        return r.cmds;
    }
};

struct RatioArgs {
    bool smoke = false;
    uint64_t rounds = 300, commands = 16384;
    double poll_us = 0;
    RatioArgs(int argc, char* argv[]) {
        bool rounds_set = false, commands_set = false;
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            if (a == "--smoke") smoke = true;
            else if (a == "--rounds" && i + 1 < argc) rounds = std::stoull(argv[++i]), rounds_set = true;
            else if (a == "--commands" && i + 1 < argc) commands = std::stoull(argv[++i]), commands_set = true;
            else if (a == "--poll-us" && i + 1 < argc) poll_us = std::stod(argv[++i]);
            else {
                std::fprintf(stderr, "usage: %s [--smoke] [--rounds R] [--commands N per family and round] [--poll-us U]\n",
                             argv[0]);
                std::exit(2);
            }
        }
        if (smoke && !rounds_set) rounds = 12;
        if (smoke && !commands_set) commands = 1024;
        commands = std::max<uint64_t>(64, commands / 64 * 64); // whole batches
        rounds = std::max<uint64_t>(1, rounds);
    }
};

constexpr std::array<const char*, 3> kNames{"VT-d", "AMD-Vi", "SMMUv3"};
/// The rounds' orders: all six, so over every six rounds each family runs first, second and
/// third twice and follows each other family (or the previous round's last) equally often
/// (a rotation alone would always put AMD-Vi right after VT-d).
constexpr std::array<std::array<unsigned, 3>, 6> kOrders{
    {{0, 1, 2}, {2, 0, 1}, {1, 2, 0}, {0, 2, 1}, {1, 0, 2}, {2, 1, 0}}};

/// Median and quartiles (linear interpolation) of `v`, and the median's distribution-free
/// 95 % confidence interval: the order statistics n/2 -+ 1.96 sqrt(n)/2 (binomial, normal
/// approximation), which needs no assumption about the rounds' distribution.
struct Spread {
    double p25, median, p75, min, max, ci_lo, ci_hi;
};
Spread spread(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    auto q = [&](double p) {
        const double x = p * static_cast<double>(v.size() - 1);
        const auto i = static_cast<size_t>(x);
        return i + 1 < v.size() ? v[i] + (x - static_cast<double>(i)) * (v[i + 1] - v[i]) : v[i];
    };
    const double n = static_cast<double>(v.size()), h = 1.96 * std::sqrt(n) / 2;
    const auto lo = static_cast<size_t>(std::clamp(std::floor(n / 2 - h), 0.0, n - 1));
    const auto hi = static_cast<size_t>(std::clamp(std::ceil(n / 2 + h), 0.0, n - 1));
    return {q(0.25), q(0.5), q(0.75), v.front(), v.back(), v[lo], v[hi]};
}

} // namespace

int sc_main(int argc, char* argv[]) {
    const RatioArgs args(argc, argv);
    Family<vtd_bench::Rig> vtd("vtd", args.poll_us);
    Family<amd_bench::Rig> amd("amd", args.poll_us);
    Family<smmuv3_bench::Rig> smmu("smmuv3", args.poll_us);
    // per round, per family (kNames order): the round's result
    std::vector<std::array<Result, 3>> rounds(args.rounds);
    sc_core::sc_spawn([&] {
        vtd.warm(args.commands);
        amd.warm(args.commands);
        smmu.warm(args.commands);
        for (uint64_t i = 0; i < args.rounds; ++i)
            for (const unsigned f : kOrders[i % kOrders.size()])
                rounds[i][f] = f == 0 ? vtd.round(args.commands) : f == 1 ? amd.round(args.commands)
                                                                           : smmu.round(args.commands);
        sc_core::sc_stop();
    });
    sc_core::sc_start();

    auto rate = [](const Result& x, bool cpu) { return static_cast<double>(x.count) / (cpu ? x.cpu : x.wall); };
    bool sane = true;
    for (const auto& r : rounds)
        for (const auto& x : r) sane = sane && x.count == args.commands && x.wall > 0 && x.cpu > 0;
    if (!sane) {
        std::fprintf(stderr, "bench_cmdratio: a round ran no commands or took no time\n");
        return 1;
    }
    std::printf("bench_cmdratio (%s): %llu rounds of %llu commands per family (batches of 63 page invalidations + 1 "
                "sync)\n",
                args.smoke ? "smoke" : "full", static_cast<unsigned long long>(args.rounds),
                static_cast<unsigned long long>(args.commands));
    std::printf("  %5s %6s | %9s %9s %9s  M cmd/s wall | %7s %7s wall | %7s %7s cpu\n", "round", "first", kNames[0],
                kNames[1], kNames[2], "AMD/VTd", "SMMU/VTd", "AMD/VTd", "SMMU/VTd");
    std::array<std::vector<double>, 2> ratio_wall, ratio_cpu;
    std::array<std::vector<double>, 3> ns_wall, ns_cpu;
    for (uint64_t i = 0; i < args.rounds; ++i) {
        const auto& r = rounds[i];
        for (unsigned f = 0; f < 3; ++f) {
            ns_wall[f].push_back(1e9 / rate(r[f], false));
            ns_cpu[f].push_back(1e9 / rate(r[f], true));
        }
        for (unsigned f = 1; f < 3; ++f) {
            ratio_wall[f - 1].push_back(rate(r[f], false) / rate(r[0], false));
            ratio_cpu[f - 1].push_back(rate(r[f], true) / rate(r[0], true));
        }
        std::printf("  %5llu %6s | %9.2f %9.2f %9.2f               | %7.3f %8.3f      | %7.3f %8.3f\n",
                    static_cast<unsigned long long>(i), kNames[kOrders[i % kOrders.size()][0]], rate(r[0], false) * 1e-6,
                    rate(r[1], false) * 1e-6, rate(r[2], false) * 1e-6, ratio_wall[0].back(), ratio_wall[1].back(),
                    ratio_cpu[0].back(), ratio_cpu[1].back());
    }
    std::printf("  per command (median [quartiles] over rounds):\n");
    for (unsigned f = 0; f < 3; ++f) {
        const auto w = spread(ns_wall[f]), c = spread(ns_cpu[f]);
        std::printf("    %-7s wall %7.1f ns [%7.1f, %7.1f] (%5.2f M/s)   cpu %7.1f ns [%7.1f, %7.1f] (%5.2f M/s)\n",
                    kNames[f], w.median, w.p25, w.p75, 1e3 / w.median, c.median, c.p25, c.p75, 1e3 / c.median);
    }
    std::printf("  commands per second over VT-d's in the same round: median (95 %% CI of the median) "
                "[quartiles] {min, max}\n");
    for (unsigned f = 1; f < 3; ++f) {
        const auto w = spread(ratio_wall[f - 1]), c = spread(ratio_cpu[f - 1]);
        std::printf("    %-7s wall %.3f (%.3f-%.3f) [%.3f, %.3f] {%.3f, %.3f}\n", kNames[f], w.median, w.ci_lo,
                    w.ci_hi, w.p25, w.p75, w.min, w.max);
        std::printf("    %-7s cpu  %.3f (%.3f-%.3f) [%.3f, %.3f] {%.3f, %.3f}\n", kNames[f], c.median, c.ci_lo,
                    c.ci_hi, c.p25, c.p75, c.min, c.max);
    }
    return 0;
}
