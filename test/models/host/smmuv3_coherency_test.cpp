// SPDX-License-Identifier: Apache-2.0
// SMMUv3 cache coherency as Linux decides it (issue 18): a device behind a
// CANWBS root complex (IOMMU_CAP_ENFORCE_CACHE_COHERENCY) asks its domain to
// enforce coherency at attach (iommufd_hwpt_paging_enforce_cc); the domain
// can when every master already attached is CANWBS too
// (arm_smmu_enforce_cache_coherency), and from then on takes only CANWBS
// masters (arm_smmu_attach_prepare). Through IommuFd, the SMMUv3 driver and
// the unit.
#include <catch2/catch.hpp>

#include "test/models/host/smmuv3_host_rig.hpp"

using namespace iommusim;
using hosttest::SmmuHostRig;

TEST_CASE("SMMUv3 coherency: CANWBS devices make their domain enforce it, other devices are refused by it and it by them",
          "[sc][host][smmuv3][coherency]") {
    SmmuHostRig r;
    bool done = false;
    r.os->add_thread("scenario", [&] {
        host::IommuFd& fd = r.os->iommufd();
        const auto dev = [](uint16_t rid, bool canwbs) {
            host::DeviceInfo d;
            d.rid = pcie::Bdf(rid);
            d.canwbs = canwbs;
            return d;
        };
        fd.add_device(dev(0x100, true), 0);
        fd.add_device(dev(0x200, false), 0);
        fd.add_device(dev(0x300, true), 0);
        const uint32_t ioas = fd.ioas_alloc();
        const uint32_t d1 = fd.hwpt_alloc(ioas, 0, host::DomainDesc::Kind::paging_s1);
        const uint32_t d2 = fd.hwpt_alloc(ioas, 0, host::DomainDesc::Kind::paging_s2);
        CHECK_FALSE(fd.enforces_coherency(d1)); // nothing asked yet
        fd.attach(pcie::Bdf(0x100), std::nullopt, d1);
        CHECK(fd.enforces_coherency(d1)); // asked by a CANWBS device, granted (no other master)
        try {
            fd.attach(pcie::Bdf(0x200), std::nullopt, d1);
            FAIL("a device without CANWBS joined a domain that enforces coherency");
        } catch (const host::HostError& e) {
            CHECK(e.kind() == host::HostError::Kind::invalid);
        }
        fd.attach(pcie::Bdf(0x200), std::nullopt, d2); // refused above, so it is free to attach elsewhere
        CHECK_FALSE(fd.enforces_coherency(d2));       // it does not ask
        try {
            fd.attach(pcie::Bdf(0x300), std::nullopt, d2);
            FAIL("a CANWBS device joined a domain that cannot enforce coherency");
        } catch (const host::HostError& e) {
            CHECK(e.kind() == host::HostError::Kind::invalid);
        }
        fd.attach(pcie::Bdf(0x300), std::nullopt, d1); // a second CANWBS master: still coherent
        CHECK(fd.enforces_coherency(d1));
        done = true;
        sc_core::sc_stop();
    });
    sc_core::sc_start();
    CHECK(done);
}
