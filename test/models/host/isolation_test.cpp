// SPDX-License-Identifier: Apache-2.0
// host::Isolation on a VT-d host (issue 18): who may attach what, with the
// kernel as an owner like any other (a bound kernel driver holds its group).
#include <catch2/catch.hpp>
#include <functional>

#include "test/models/host/vtd_host_rig.hpp"

using namespace iommusim;
using host::Isolation;
using K = host::HostError::Kind;

namespace {

struct IsoRig : hosttest::VtdHostRig {
    host::Isolation& iso() { return os->isolation(); }
    host::IommuFd& fd() { return os->iommufd(); }
    /// Registers a PASID-capable function behind the unit, in IOMMU group `group`.
    void add(pcie::Bdf rid, int group) {
        host::DeviceInfo d;
        d.rid = rid;
        d.pasid = true;
        fd().add_device(d, 0);
        iso().set_group(0, rid, group, rid.str());
    }
    uint32_t domain() { return fd().hwpt_alloc(fd().ioas_alloc(), 0, host::DomainDesc::Kind::paging_s1); }
    uint32_t sva_domain() { return fd().hwpt_alloc_sva(fd().process_create(), 0); }
};

K error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const host::HostError& e) {
        return e.kind();
    }
    FAIL("no HostError");
    return K::invalid;
}

} // namespace

TEST_CASE("a kernel driver's attach holds the device's IOMMU group: a user's attach is busy until the driver detaches",
          "[sc][host][isolation][group]") {
    IsoRig rig;
    const pcie::Bdf nic(1, 0, 0), peer(1, 0, 1);
    rig.add(nic, 7);
    rig.add(peer, 7);
    rig.run([&] {
        const uint32_t kdom = rig.domain(), udom = rig.domain();
        rig.iso().attach(Isolation::kKernel, 0, nic, std::nullopt, kdom);
        CHECK(rig.iso().group_owner(0, 7) == std::string(Isolation::kKernel));
        CHECK(error_of([&] { rig.iso().attach("vm1", 0, peer, std::nullopt, udom); }) == K::busy);
        CHECK(error_of([&] { rig.fd().detach(peer, std::nullopt, 0u); }) == K::not_found); // nothing was attached
        rig.iso().detach(0, nic, std::nullopt);
        CHECK(!rig.iso().group_owner(0, 7));
        rig.iso().attach("vm1", 0, peer, std::nullopt, udom);
        CHECK(rig.iso().group_owner(0, 7) == std::string("vm1"));
    });
}

TEST_CASE("a kernel driver's SVA bind for a process charges the process's PASID set and leaves the group the kernel's",
          "[sc][host][isolation][pasid]") {
    IsoRig rig;
    const pcie::Bdf nic(1, 0, 0);
    rig.add(nic, 3);
    rig.run([&] {
        const uint32_t p = rig.iso().bind_sva("app", 0, nic, rig.sva_domain(), std::nullopt, Isolation::kKernel);
        host::PasidAllocator& a = rig.os->pasids();
        REQUIRE(a.find_set("app"));
        CHECK(a.used(*a.find_set("app")) == 1);
        CHECK(a.owner_of(*a.set_of(p)) == "app");
        CHECK(rig.iso().group_owner(0, 3) == std::string(Isolation::kKernel));
        // The process may not take the kernel's group for itself.
        CHECK(error_of([&] { rig.iso().attach("app", 0, nic, std::nullopt, rig.domain()); }) == K::busy);
    });
}

TEST_CASE("an SVA bind asking for a PASID value another owner holds is busy and leaves nothing allocated or attached",
          "[sc][host][isolation][pasid]") {
    IsoRig rig;
    const pcie::Bdf nic(1, 0, 0);
    rig.add(nic, 3);
    rig.run([&] {
        host::PasidAllocator& a = rig.os->pasids();
        const uint32_t held = a.alloc(a.set_for("vm1"), "vm1", std::nullopt, 5u);
        const uint32_t sva = rig.sva_domain();
        CHECK(error_of([&] { rig.iso().bind_sva("app", 0, nic, sva, 5u, Isolation::kKernel); }) == K::busy);
        CHECK(a.used(a.set_for("app")) == 0);
        CHECK(!rig.iso().group_owner(0, 3));
        CHECK(a.owner_of(*a.set_of(held)) == "vm1");
        // The lowest free PASID is handed out instead when none is asked for.
        CHECK(rig.iso().bind_sva("app", 0, nic, sva, std::nullopt, Isolation::kKernel) == 1);
    });
}
