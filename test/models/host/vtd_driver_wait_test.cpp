// SPDX-License-Identifier: Apache-2.0
// The VT-d backend waits for its wait descriptor as Linux's qi_submit_sync
// does: each iteration reads the status word, and if it is not done yet reads
// FSTS (qi_check_fault), drops the queue lock, relaxes and retakes it. An
// idle invalidation's latency is the sum of its parts' costs; under load a
// tail appears, made by CPUs waiting for the queue lock.
#include <algorithm>
#include <catch2/catch.hpp>
#include <variant>
#include <vector>

#include "models/host/host.hpp"
#include "test/models/host/vtd_host_rig.hpp"

using namespace iommusim;

namespace {
double stat(const hosttest::VtdHostRig& rig, const char* s) { return stats::numeric_value(*rig.root.find(s)); }
} // namespace

TEST_CASE("the VT-d wait loop reads FSTS once per iteration and drops and retakes the queue lock around each relax",
          "[sc][host][vtd][wait]") {
    hosttest::VtdHostRig rig;
    host::DeviceInfo d;
    d.rid = pcie::Bdf(0x0200);
    d.pasid = true;
    rig.os->iommufd().add_device(d, 0);
    bool done = false;
    double polls = 0, reads = 0, acquisitions = 0;
    rig.os->add_thread("test", [&] {
        auto& fd = rig.os->iommufd();
        const uint32_t ioas = fd.ioas_alloc();
        fd.attach(d.rid, 9, fd.hwpt_alloc(ioas, 0, host::DomainDesc::Kind::paging_s1));
        const uint64_t iova = fd.map(ioas, 4096);
        const double p0 = stat(rig, "os.dmar0.status_polls"), r0 = stat(rig, "os.cpu.mmio_reads"),
                     a0 = stat(rig, "os.dmar0.queue_lock.acquisitions");
        fd.unmap(ioas, iova, 4096); // strict: one flush, waited for
        polls = stat(rig, "os.dmar0.status_polls") - p0;
        reads = stat(rig, "os.cpu.mmio_reads") - r0;
        acquisitions = stat(rig, "os.dmar0.queue_lock.acquisitions") - a0;
        done = true;
        sc_core::sc_stop();
    });
    sc_core::sc_start(sc_core::sc_time(10, sc_core::SC_MS));
    REQUIRE(done);
    // The unit needs time to fetch and execute the descriptors: the loop goes round more than once.
    REQUIRE(polls >= 2);
    // Every iteration whose status read found the wait not done read FSTS once; the last found it done.
    CHECK(reads == polls - 1);
    // The lock is taken to write the descriptors and retaken after every relax.
    CHECK(acquisitions == polls);
}

TEST_CASE("an idle invalidation takes the sum of its components, phase by phase", "[sc][host][vtd][latency]") {
    // One strict 4 KiB unmap on an idle unit: a PASID-based IOTLB descriptor and the wait
    // descriptor. Each phase is the sum of the named costs of what happens in it; only the
    // driver's observation is quantized by its poll loop.
    hosttest::VtdHostRig rig;
    const host::DeviceInfo d = rig.add_pasid_device(0x0200);
    std::vector<host::FlushTiming> timings;
    rig.run([&] {
        auto& fd = rig.os->iommufd();
        const uint32_t ioas = fd.ioas_alloc();
        fd.attach(d.rid, 9, fd.hwpt_alloc(ioas, 0, host::DomainDesc::Kind::paging_s1));
        const uint64_t iova = fd.map(ioas, 4096);
        fd.unmap(ioas, iova, 4096, &timings);
    });
    REQUIRE(timings.size() == 1);
    const host::FlushTiming& t = timings[0];
    REQUIRE(t.fetched);
    REQUIRE(t.caches_done);
    REQUIRE(t.wait_done);
    CHECK(t.descriptors == 2);
    const host::HostCpuParams cpu;
    const iommu::vtd::VtdParams unit;
    const double mem = rig.memory.latency.to_seconds() * 1e9; // the rig's memory: 90 ns a read
    auto ns = [](Duration a, Duration b) { return (a - b).as_ns(); };
    // Driver: the QI_IN_USE status word and two descriptors stored, the tail written (MMIO);
    // unit: the register write, the first descriptor read from memory.
    const double to_fetch = 3 * cpu.mem_write.as_ns() + cpu.mmio_write.as_ns() + unit.mmio_access.as_ns() + mem +
                            unit.descriptor_fetch.as_ns();
    // Processing of the IOTLB descriptor (no entry cached: none dropped).
    const double to_caches = unit.per_descriptor.as_ns();
    // The wait descriptor: read, processed, its status write issued.
    const double to_wait = mem + unit.descriptor_fetch.as_ns() + unit.per_descriptor.as_ns() + unit.status_write.as_ns();
    CHECK(ns(*t.fetched, t.submitted) == Approx(to_fetch));
    CHECK(ns(*t.caches_done, *t.fetched) == Approx(to_caches));
    CHECK(ns(*t.wait_done, *t.caches_done) == Approx(to_wait));
    // The driver sees it at the end of its first status read after the write: each iteration
    // is a status read, an FSTS read and a relax (qi_submit_sync).
    const double iteration = cpu.mem_read.as_ns() + cpu.mmio_read.as_ns() + cpu.poll_interval.as_ns();
    CHECK(ns(t.observed, *t.wait_done) >= 0);
    CHECK(ns(t.observed, *t.wait_done) < iteration);
    // The stats' phase breakdown says the same.
    auto mean = [&](const char* s) {
        return std::get<stats::Histogram>(*rig.root.find(std::string("os.invalidation.") + s)->stat).mean();
    };
    CHECK(mean("phase_submit_to_fetch") == Approx(to_fetch));
    CHECK(mean("phase_fetch_to_caches_done") == Approx(to_caches));
    CHECK(mean("latency") == Approx(ns(t.observed, t.submitted)));
}

TEST_CASE("under load the invalidation latency spreads into a tail that comes from the queue lock, not from chance",
          "[sc][host][vtd][latency][lock]") {
    // Two rounds in one simulation: one CPU, then four at once, each CPU doing 16 strict
    // 4 KiB map+unmap pairs through the one invalidation queue. Nothing is random: alone,
    // every flush takes the same time; together, the spread is the queue lock's doing.
    hosttest::VtdHostRig rig;
    const host::DeviceInfo d = rig.add_pasid_device(0x0200);
    constexpr unsigned kPerCpu = 16;
    struct Round {
        std::vector<double> latency;
        double lock_wait_ns = 0, contended = 0;
    };
    std::vector<Round> rounds;
    rig.run([&] {
        auto& fd = rig.os->iommufd();
        const uint32_t ioas = fd.ioas_alloc();
        fd.attach(d.rid, 9, fd.hwpt_alloc(ioas, 0, host::DomainDesc::Kind::paging_s1));
        fd.unmap(ioas, fd.map(ioas, 4096), 4096); // bring-up: the first IOVA comes from the tree
        auto stat = [&](const char* s) { return stats::numeric_value(*rig.root.find(s)); };
        for (unsigned cpus : {1u, 4u}) {
            Round r;
            const double w0 = stat("os.dmar0.queue_lock.wait_ns"), c0 = stat("os.dmar0.queue_lock.contended");
            unsigned finished = 0;
            sc_core::sc_event all_done;
            for (unsigned c = 0; c < cpus; ++c)
                sc_core::sc_spawn([&, c] {
                    rig.os->cpu().run_on(c); // round one on the CPU that brought the queue up
                    for (unsigned i = 0; i < kPerCpu; ++i) {
                        std::vector<host::FlushTiming> t;
                        fd.unmap(ioas, fd.map(ioas, 4096), 4096, &t);
                        for (const auto& f : t) r.latency.push_back((f.observed - f.submitted).as_ns());
                    }
                    if (++finished == cpus) all_done.notify(sc_core::SC_ZERO_TIME);
                });
            sc_core::wait(all_done);
            r.lock_wait_ns = stat("os.dmar0.queue_lock.wait_ns") - w0;
            r.contended = stat("os.dmar0.queue_lock.contended") - c0;
            rounds.push_back(std::move(r));
        }
    });
    REQUIRE(rounds.size() == 2);
    auto [min1, max1] = std::minmax_element(rounds[0].latency.begin(), rounds[0].latency.end());
    auto [min4, max4] = std::minmax_element(rounds[1].latency.begin(), rounds[1].latency.end());
    REQUIRE(rounds[0].latency.size() == kPerCpu);
    REQUIRE(rounds[1].latency.size() == 4 * kPerCpu);
    // Alone: no spread at all, and nobody waited for the lock.
    CHECK(*max1 == *min1);
    CHECK(rounds[0].lock_wait_ns == 0);
    // Four CPUs: the flushes spread, the slowest well beyond the idle latency, and the CPUs
    // waited for the queue lock (each drops and retakes it every poll iteration, so they run
    // in a convoy). The fastest can beat the idle figure: a CPU that waited for the lock
    // starts polling in another phase of the unit's work and loses less to poll quantization.
    double mean4 = 0;
    for (double l : rounds[1].latency) mean4 += l / static_cast<double>(rounds[1].latency.size());
    INFO("idle " << *min1 << " ns; 4 CPUs min " << *min4 << " mean " << mean4 << " max " << *max4 << " ns; lock wait "
                 << rounds[1].lock_wait_ns << " ns over " << rounds[1].contended << " contended acquisitions");
    const host::HostCpuParams cpu;
    const double iteration = cpu.mem_read.as_ns() + cpu.mmio_read.as_ns() + cpu.poll_interval.as_ns();
    CHECK(*max4 - *min4 > iteration); // a spread wider than the poll loop's quantization
    CHECK(*max4 > *max1);
    CHECK(mean4 > *min1);
    CHECK(rounds[1].contended > 0);
    CHECK(rounds[1].lock_wait_ns > 0);
}
