// SPDX-License-Identifier: Apache-2.0
// The VT-d backend waits for its wait descriptor as Linux's qi_submit_sync
// does: each iteration reads the status word, and if it is not done yet reads
// FSTS (qi_check_fault), drops the queue lock, relaxes and retakes it.
#include <catch2/catch.hpp>

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
