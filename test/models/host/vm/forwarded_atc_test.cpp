// SPDX-License-Identifier: Apache-2.0
// AMD-Vi and SMMUv3 forward the guest's own ATC invalidation (INVALIDATE_IOTLB_PAGES,
// CMD_ATC_INV) with its virtual device ID made the physical one (threads/003); the
// composed oracle sees no violation with it and flags the stale ATC when a VMM skips it.
#include <catch2/catch.hpp>

#include "test/models/host/vm/vm_rig.hpp"

using namespace vmtest;

namespace {
/// The host driver's count of ATC invalidations it put into the unit's queue.
const char* atc_counter(Family f) {
    return f == Family::amd ? "os.dmar0.iotlb_invalidations" : "os.dmar0.atc_inv_commands";
}

/// The guest maps a page for its device, which reads it: its ATC holds the translation.
uint64_t map_into_atc(VmRig& r, host::IommuFd& g, const GuestDomain& d) {
    const uint64_t a = g.map(d.ioas, 4096);
    REQUIRE(ep_read(r, a) == tlm::TLM_OK_RESPONSE);
    REQUIRE(r.ep->atc_holds(a, std::nullopt));
    return a;
}

/// One SystemC elaboration per process: each family is its own test case.
void forwarded(Family f, ViommuMode mode = ViommuMode::nested) {
    VmRig r(mode, {}, {}, f);
    r.run([&] {
        host::IommuFd& g = r.vm->guest().iommufd();
        const GuestDomain d = guest_attach(r, r.ep_vrid);
        const uint64_t a = map_into_atc(r, g, d);
        const double atc = r.value(atc_counter(f));
        g.unmap(d.ioas, a, 4096);
        CHECK(r.value(atc_counter(f)) == atc + 1);                  // the guest's, forwarded to the device's pRID
        CHECK(r.value("vm0.vm0_viommu.discarded_devtlb") == 0);     // nothing synthesized instead
        CHECK_FALSE(r.ep->atc_holds(a, std::nullopt));
    });
    CHECK(r.value("os.oracle.violations") == 0);
    CHECK(r.value("os.oracle.correct") == 1);
}

void dropped(Family f, ViommuMode mode = ViommuMode::nested) {
    host::vm::VmParams broken;
    broken.drop_forwarded_atc = true; // the injected fault: the VMM never forwards it
    VmRig r(mode, {}, broken, f);
    r.run([&] {
        host::IommuFd& g = r.vm->guest().iommufd();
        const GuestDomain d = guest_attach(r, r.ep_vrid);
        const uint64_t a = g.map(d.ioas, 4096);
        REQUIRE(ep_read(r, a) == tlm::TLM_OK_RESPONSE);
        const double dropped = r.value("vm0.vm0_viommu.dropped_atc_invalidations");
        g.unmap(d.ioas, a, 4096); // the guest's wait / sync completes ...
        CHECK(r.value("vm0.vm0_viommu.dropped_atc_invalidations") == dropped + 1);
        CHECK(r.ep->atc_holds(a, std::nullopt));
        (void)ep_read(r, a); // ... but the device's ATC still translates
    });
    CHECK(r.value("os.oracle.violations") == 1);
    REQUIRE_FALSE(r.os->oracle().violations().empty());
    CHECK(r.os->oracle().violations().back().reason.find("guest stage 1") != std::string::npos);
}
} // namespace

TEST_CASE("AMD forwards the guest's INVALIDATE_IOTLB_PAGES with the vDeviceID made the pDeviceID", "[vm][amd][sc]") {
    forwarded(Family::amd);
}
TEST_CASE("Arm forwards the guest's CMD_ATC_INV with the vSID made the pSID", "[vm][smmuv3][sc]") {
    forwarded(Family::smmuv3);
}
TEST_CASE("AMD: the composed oracle catches a VMM that drops the forwarded INVALIDATE_IOTLB_PAGES", "[vm][amd][sc]") {
    dropped(Family::amd);
}
TEST_CASE("Arm: the composed oracle catches a VMM that drops the forwarded CMD_ATC_INV", "[vm][smmuv3][sc]") {
    dropped(Family::smmuv3);
}
namespace {
// With the CMDQV (accelerated), the guest's ATC_INV takes its vCMDQ as its TLBIs do (Linux's
// tegra241_guest_vcmdq_supports_cmd): the CMDQV translates the vSID and sends the ATS
// invalidation itself, without a trap, so a VMM that would drop it is not in the way.
void on_vcmdq(bool vmm_drops) {
    host::vm::VmParams vmp;
    vmp.drop_forwarded_atc = vmm_drops;
    VmRig r(ViommuMode::accelerated, {}, vmp, Family::smmuv3);
    r.run([&] {
        host::IommuFd& g = r.vm->guest().iommufd();
        const GuestDomain d = guest_attach(r, r.ep_vrid);
        const uint64_t a = map_into_atc(r, g, d);
        const double host_atc = r.value(atc_counter(Family::smmuv3)), sent = r.value("dmar0.cmdqv.atc_invalidations");
        const double replaced = r.value("dmar0.cmdqv.sid_replaced");
        g.unmap(d.ioas, a, 4096);
        CHECK(r.value("dmar0.cmdqv.atc_invalidations") == sent + 1); // from the guest's vCMDQ
        CHECK(r.value("dmar0.cmdqv.sid_replaced") == replaced + 1);  // vSID -> pSID by SID_MATCH
        CHECK(r.value(atc_counter(Family::smmuv3)) == host_atc);     // not forwarded by the VMM
        CHECK(r.value("vm0.vm0_viommu.dropped_atc_invalidations") == 0);
        CHECK_FALSE(r.ep->atc_holds(a, std::nullopt));
    });
    CHECK(r.value("os.oracle.violations") == 0);
    CHECK(r.value("os.oracle.correct") == 1);
}
} // namespace

TEST_CASE("Arm with a vCMDQ: the guest's CMD_ATC_INV runs on its vCMDQ with the vSID made the pSID, without a trap",
          "[vm][smmuv3][cmdqv][sc]") {
    on_vcmdq(false);
}
TEST_CASE("Arm with a vCMDQ: a VMM that drops forwarded ATC invalidations does not leave the device's ATC stale",
          "[vm][smmuv3][cmdqv][sc]") {
    on_vcmdq(true);
}
