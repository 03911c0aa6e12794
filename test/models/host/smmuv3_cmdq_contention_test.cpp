// SPDX-License-Identifier: Apache-2.0
// Command-queue contention on an Arm SMMUv3 through its Linux-like driver:
// 1, 2, 4 ... 64 CPUs (host threads) each map and unmap 4 KiB buffers under
// strict flushing, every unmap issuing TLBI + CMD_SYNC through the one CMDQ.
// Each thread runs on its own CPU of a 64-CPU single-socket host (HostCpu::run_on),
// so every contended acquisition of the queue lock (HostLock) costs a cache-line
// hand-off (calibration.md: 55 ns same socket). Per-CPU map+unmap throughput
// must fall monotonically as CPUs are added (queue lock hand-offs and waits,
// the unit's serial command engine); the curve is printed. Each CPU first
// does one untimed map+unmap (its first IOVA comes from the tree, later ones
// from its own per-CPU cache), then all start together, as a benchmark's
// warm-up and barrier would have them; a point ends at the latest CPU's local
// time (CPUs run ahead of the kernel between their interactions).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <vector>

#include "models/common/sc_time.hpp"
#include "test/models/host/smmuv3_host_rig.hpp"

using namespace iommusim;

using hosttest::SmmuHostRig;

TEST_CASE("SMMUv3 CMDQ contention: per-CPU map+unmap throughput falls as 1 to 64 CPUs share the queue",
          "[sc][host][smmuv3][contention]") {
    host::HostParams hp;
    hp.cpu.topology.cpus = 64;
    SmmuHostRig r(hp);
    constexpr unsigned kOps = 16; // map + unmap pairs per CPU and point
    const std::vector<unsigned> cpus = {1, 2, 4, 8, 16, 32, 64};
    std::vector<double> per_cpu; // map+unmap pairs per simulated second, per CPU
    r.os->add_thread("contention", [&] {
        host::IommuFd& fd = r.os->iommufd();
        const uint32_t ioas = fd.ioas_alloc();
        (void)fd.hwpt_alloc(ioas, 0, host::DomainDesc::Kind::paging_s1);
        for (unsigned n : cpus) {
            unsigned warming = n, running = n;
            sc_core::sc_event warm, go, done;
            Duration t0, end;
            for (unsigned c = 0; c < n; ++c)
                sc_core::sc_spawn([&, c] {
                    r.os->cpu().run_on(c);
                    fd.unmap(ioas, fd.map(ioas, 4096), 4096); // warm-up: fills this CPU's IOVA cache
                    r.os->cpu().sync();
                    if (--warming == 0) warm.notify();
                    sc_core::wait(go);
                    for (unsigned k = 0; k < kOps; ++k) {
                        const uint64_t iova = fd.map(ioas, 4096);
                        fd.unmap(ioas, iova, 4096);
                    }
                    end = std::max(end, r.os->cpu().now());
                    r.os->cpu().sync();
                    if (--running == 0) done.notify();
                });
            sc_core::wait(warm);
            t0 = from_sc(sc_core::sc_time_stamp()); // every CPU starts here
            go.notify();
            sc_core::wait(done);
            per_cpu.push_back(kOps / ((end - t0).as_ns() * 1e-9));
        }
        sc_core::sc_stop();
    });
    sc_core::sc_start();
    REQUIRE(per_cpu.size() == cpus.size());
    std::printf("SMMUv3 CMDQ contention (strict map+unmap of 4 KiB, one CMDQ):\n  cpus  per-CPU pairs/s  total pairs/s\n");
    for (size_t i = 0; i < cpus.size(); ++i)
        std::printf("  %4u  %16.0f  %13.0f\n", cpus[i], per_cpu[i], per_cpu[i] * cpus[i]);
    for (size_t i = 1; i < per_cpu.size(); ++i) {
        INFO(cpus[i - 1] << " -> " << cpus[i] << " CPUs: " << per_cpu[i - 1] << " -> " << per_cpu[i]);
        CHECK(per_cpu[i] < per_cpu[i - 1]);
    }
}
