// SPDX-License-Identifier: Apache-2.0
// A thread waiting for its sync sleeps through the polls whose outcome is
// known (CmdQueueDriver::skip_polls) and accounts for them afterwards: the
// flushes must take exactly as long, and the status reads, error-check
// reads, poll counts and queue-lock figures must be exactly what polling
// every iteration gives, alone and with CPUs contending for the lock, with
// the lock held between relaxes (VT-d qi_submit_sync) and released (SMMUv3,
// with a time-out). Each case runs the same rounds with skipping off, then
// on, in one simulation (rounds start on an idle unit, so they are alike).
#include <algorithm>
#include <functional>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "models/host/cmd_queue_driver.hpp"
#include "test/models/host/smmuv3_host_rig.hpp"
#include "test/models/host/vtd_host_rig.hpp"

using namespace iommusim;

namespace {

struct Round {
    std::vector<double> latency; ///< observed - submitted of every flush, sorted
    std::vector<double> counts;  ///< stat deltas, in the order of the names given
    uint64_t deltas = 0;         ///< delta cycles the round took (thread switches and more)
};

/// `cpus` threads, each on its own CPU, doing `per_cpu` strict 4 KiB map+unmap pairs at once.
/// `fast` selects the mode under test (set_mode: poll skipping, posted tail writes).
using SetMode = std::function<void(bool fast)>;

template <typename Rig>
Round round(Rig& rig, uint32_t ioas, unsigned cpus, unsigned per_cpu, bool fast, const SetMode& set_mode,
            const std::vector<std::string>& names) {
    set_mode(fast);
    auto& fd = rig.os->iommufd();
    auto stat = [&](const std::string& s) { return stats::numeric_value(*rig.root.find(s)); };
    Round r;
    std::vector<double> before;
    for (const auto& n : names) before.push_back(stat(n));
    const uint64_t d0 = sc_core::sc_delta_count();
    unsigned running = cpus;
    sc_core::sc_event done;
    for (unsigned c = 0; c < cpus; ++c)
        sc_core::sc_spawn([&, c] {
            rig.os->cpu().run_on(c);
            for (unsigned i = 0; i < per_cpu; ++i) {
                std::vector<host::FlushTiming> t;
                fd.unmap(ioas, fd.map(ioas, 4096), 4096, &t);
                for (const auto& f : t) r.latency.push_back((f.observed - f.submitted).as_ns());
            }
            rig.os->cpu().sync();
            if (--running == 0) done.notify(sc_core::SC_ZERO_TIME);
        });
    sc_core::wait(done);
    r.deltas = sc_core::sc_delta_count() - d0;
    for (size_t i = 0; i < names.size(); ++i) r.counts.push_back(stat(names[i]) - before[i]);
    std::sort(r.latency.begin(), r.latency.end());
    return r;
}

template <typename Rig>
void compare_rounds(Rig& rig, const host::DeviceInfo& d, unsigned cpus, const std::vector<std::string>& names,
                    SetMode set_mode = {}) {
    if (!set_mode) // poll skipping off, then on
        set_mode = [&](bool fast) {
            dynamic_cast<host::CmdQueueDriver&>(rig.drv->invalidation_observer()).set_poll_skipping(fast);
        };
    constexpr unsigned kPerCpu = 8;
    Round slow, fast;
    bool done = false;
    rig.os->add_thread("test", [&] {
        auto& fd = rig.os->iommufd();
        const uint32_t ioas = fd.ioas_alloc();
        fd.attach(d.rid, 9, fd.hwpt_alloc(ioas, 0, host::DomainDesc::Kind::paging_s1));
        for (unsigned c = 0; c < cpus; ++c) // every CPU's first IOVA comes from the tree: warm up
            sc_core::sc_spawn([&, c] {
                rig.os->cpu().run_on(c);
                fd.unmap(ioas, fd.map(ioas, 4096), 4096);
            });
        sc_core::wait(sc_core::sc_time(1, sc_core::SC_MS));
        slow = round(rig, ioas, cpus, kPerCpu, false, set_mode, names);
        sc_core::wait(sc_core::sc_time(1, sc_core::SC_MS));
        fast = round(rig, ioas, cpus, kPerCpu, true, set_mode, names);
        done = true;
        sc_core::sc_stop();
    });
    sc_core::sc_start(sc_core::sc_time(100, sc_core::SC_MS));
    REQUIRE(done);
    REQUIRE(slow.latency.size() == cpus * kPerCpu);
    CHECK(fast.latency == slow.latency);
    for (size_t i = 0; i < names.size(); ++i) {
        INFO(names[i]);
        CHECK(fast.counts[i] == slow.counts[i]);
    }
    // Skipping (posting) never costs switches; alone (no convoy on the lock) the loop goes
    // round several times per flush and skipping saves most of them, posting one per flush.
    INFO("polls " << slow.counts[0] << "; delta cycles slow " << slow.deltas << ", fast " << fast.deltas);
    CHECK(fast.deltas <= slow.deltas);
    if (cpus == 1) {
        CHECK(slow.counts[0] > 2.0 * kPerCpu);
        CHECK(fast.deltas < slow.deltas);
    }
}

const std::vector<std::string> kVtdStats = {
    "os.dmar0.status_polls", "os.cpu.mmio_reads", "os.cpu.mem_reads", "os.dmar0.queue_lock.acquisitions",
    "os.dmar0.queue_lock.contended", "os.dmar0.queue_lock.handoffs", "os.dmar0.queue_lock.wait_ns"};
const std::vector<std::string> kSmmuStats = {"os.smmu0.sync_polls", "os.cpu.mmio_reads", "os.cpu.mem_reads",
                                             "os.smmu0.queue_lock.acquisitions", "os.smmu0.queue_lock.contended",
                                             "os.smmu0.queue_lock.wait_ns"};

} // namespace

TEST_CASE("a VT-d wait that sleeps through its polls takes as long and counts the same FSTS reads, polls and lock "
          "acquisitions as polling each",
          "[sc][host][vtd][wait][skip]") {
    hosttest::VtdHostRig rig;
    compare_rounds(rig, rig.add_pasid_device(0x0200), 1, kVtdStats);
}

TEST_CASE("two CPUs waiting on one VT-d queue see the same latencies and lock contention whether they skip polls or not",
          "[sc][host][vtd][wait][skip][lock]") {
    hosttest::VtdHostRig rig;
    compare_rounds(rig, rig.add_pasid_device(0x0200), 2, kVtdStats);
}

TEST_CASE("four CPUs waiting on one VT-d queue see the same latencies and lock contention whether they skip polls or not",
          "[sc][host][vtd][wait][skip][lock]") {
    hosttest::VtdHostRig rig;
    compare_rounds(rig, rig.add_pasid_device(0x0200), 4, kVtdStats);
}

namespace {
host::DeviceInfo smmu_device(hosttest::SmmuHostRig& rig) {
    host::DeviceInfo d;
    d.rid = pcie::Bdf(0x0100);
    d.pasid = true;
    rig.os->iommufd().add_device(d, 0);
    return d;
}
} // namespace

TEST_CASE("an SMMUv3 CMD_SYNC wait (lock released, with a time-out) that sleeps through its polls matches polling each",
          "[sc][host][smmuv3][wait][skip]") {
    hosttest::SmmuHostRig rig;
    compare_rounds(rig, smmu_device(rig), 1, kSmmuStats);
}

TEST_CASE("three CPUs waiting for their CMD_SYNCs on one SMMUv3 queue see the same latencies whether they skip polls or not",
          "[sc][host][smmuv3][wait][skip][lock]") {
    hosttest::SmmuHostRig rig;
    compare_rounds(rig, smmu_device(rig), 3, kSmmuStats);
}

TEST_CASE("a VT-d wait whose last error check still holds sleeps from its first poll: fewer switches, same latency "
          "and counts",
          "[sc][host][vtd][wait][skip]") {
    // Round `fresh`: before each unmap the driver forgets its last error check (as a
    // queue-error report makes it), so the wait's first iteration polls for real and the
    // thread sleeps after it; round `cached`: it sleeps from the first poll on.
    hosttest::VtdHostRig rig;
    const host::DeviceInfo d = rig.add_pasid_device(0x0200);
    auto& q = dynamic_cast<host::CmdQueueDriver&>(rig.drv->invalidation_observer());
    constexpr unsigned kFlushes = 8;
    Round fresh, cached;
    bool done = false;
    auto one_round = [&](uint32_t ioas, bool forget) {
        Round r;
        auto& fd = rig.os->iommufd();
        auto stat = [&](const std::string& s) { return stats::numeric_value(*rig.root.find(s)); };
        std::vector<double> before;
        for (const auto& n : kVtdStats) before.push_back(stat(n));
        const uint64_t d0 = sc_core::sc_delta_count();
        for (unsigned i = 0; i < kFlushes; ++i) {
            const uint64_t iova = fd.map(ioas, 4096);
            if (forget) q.on_queue_error();
            std::vector<host::FlushTiming> t;
            fd.unmap(ioas, iova, 4096, &t);
            for (const auto& f : t) r.latency.push_back((f.observed - f.submitted).as_ns());
            rig.os->cpu().sync();
            sc_core::wait(sc_core::sc_time(10, sc_core::SC_US)); // each flush starts on an idle unit
        }
        r.deltas = sc_core::sc_delta_count() - d0;
        for (size_t i = 0; i < kVtdStats.size(); ++i) r.counts.push_back(stat(kVtdStats[i]) - before[i]);
        return r;
    };
    rig.os->add_thread("test", [&] {
        auto& fd = rig.os->iommufd();
        const uint32_t ioas = fd.ioas_alloc();
        fd.attach(d.rid, 9, fd.hwpt_alloc(ioas, 0, host::DomainDesc::Kind::paging_s1));
        fd.unmap(ioas, fd.map(ioas, 4096), 4096); // warm-up: the IOVA tree, a measured check
        sc_core::wait(sc_core::sc_time(1, sc_core::SC_MS));
        fresh = one_round(ioas, true);
        cached = one_round(ioas, false);
        done = true;
        sc_core::sc_stop();
    });
    sc_core::sc_start(sc_core::sc_time(100, sc_core::SC_MS));
    REQUIRE(done);
    REQUIRE(fresh.latency.size() == kFlushes);
    CHECK(cached.latency == fresh.latency);
    for (size_t i = 0; i < kVtdStats.size(); ++i) {
        INFO(kVtdStats[i]);
        CHECK(cached.counts[i] == fresh.counts[i]);
    }
    INFO("delta cycles, first poll made " << fresh.deltas << ", skipped " << cached.deltas);
    CHECK(cached.deltas + kFlushes <= fresh.deltas); // at least the first read's wake-up per flush
}

namespace {
/// Posted tail writes off (every tail write synchronises first), then on (the unit's port
/// is marked as acting on the annotated time, as Host::add_iommu does for a platform's unit).
template <typename Rig>
SetMode posting(Rig& rig) {
    rig.os->cpu().set_posted_port(0);
    return [&rig](bool fast) { rig.os->cpu().set_decoupling(fast); };
}
} // namespace

TEST_CASE("a VT-d flush whose tail write is posted at the CPU's local time takes as long and counts the same as a "
          "synchronised one",
          "[sc][host][vtd][wait][decoupling]") {
    hosttest::VtdHostRig rig;
    compare_rounds(rig, rig.add_pasid_device(0x0200), 1, kVtdStats, posting(rig));
}

TEST_CASE("four CPUs posting their VT-d tail writes see the same latencies and lock contention as synchronising ones",
          "[sc][host][vtd][wait][decoupling][lock]") {
    hosttest::VtdHostRig rig;
    compare_rounds(rig, rig.add_pasid_device(0x0200), 4, kVtdStats, posting(rig));
}

TEST_CASE("an SMMUv3 PROD write posted while the unit completes another CPU's CMD_SYNC is fetched at its own time",
          "[sc][host][smmuv3][wait][decoupling][lock]") {
    // Three CPUs: a PROD write posted ahead of the kernel reaches the unit while it still
    // executes an earlier batch; the unit must not take the later batch before the write's time.
    hosttest::SmmuHostRig rig;
    compare_rounds(rig, smmu_device(rig), 3, kSmmuStats, posting(rig));
}

TEST_CASE("an SMMUv3 flush with its PROD write posted takes as long and counts the same as a synchronised one",
          "[sc][host][smmuv3][wait][decoupling]") {
    hosttest::SmmuHostRig rig;
    compare_rounds(rig, smmu_device(rig), 1, kSmmuStats, posting(rig));
}
