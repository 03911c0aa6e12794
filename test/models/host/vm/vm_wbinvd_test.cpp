// SPDX-License-Identifier: Apache-2.0
// A guest WBINVD (Vm::guest_wbinvd): an in-kernel exit always, the host's cache
// flush only while a domain the VM's devices are attached to does not enforce
// coherency (KVM's kvm_emulate_wbinvd_noskip), charged to the vCPU and counted.
#include <catch2/catch.hpp>

#include "test/models/host/vm/vm_rig.hpp"

using namespace vmtest;

namespace {

/// The guest vCPU's time one WBINVD took, and whether the host flushed.
std::pair<Duration, bool> timed_wbinvd(VmRig& r) {
    host::HostCpu& vcpu = r.vm->guest().cpu();
    const Duration start = vcpu.now();
    const bool flushed = r.vm->guest_wbinvd();
    return {vcpu.now() - start, flushed};
}

} // namespace

TEST_CASE("A guest WBINVD with only coherent domains attached costs one in-kernel exit and skips the flush",
          "[vm][vtd][coherency][sc]") {
    VmRig r(ViommuMode::nested);
    const host::vm::VmmCosts c = r.vm->params().vmm;
    r.run([&] {
        guest_attach(r, {r.vrid, r.ep_vrid});
        REQUIRE(r.value("vm0.vm0_viommu.noncoherent_domains") == 0);
        const auto [took, flushed] = timed_wbinvd(r);
        CHECK_FALSE(flushed);
        CHECK(took == c.kernel_exit);
    });
    CHECK(r.value("vm0.wbinvd_skipped") == 1);
    CHECK(r.value("vm0.wbinvd_flushes") == 0);
}

TEST_CASE("A guest WBINVD flushes the host's caches while a non-coherent domain is attached, and is skipped again "
          "after it is detached",
          "[vm][vtd][coherency][sc]") {
    VmRig r(ViommuMode::nested, {}, {}, Family::vtd, /*snoop_control=*/false);
    const host::vm::VmmCosts c = r.vm->params().vmm;
    r.run([&] {
        host::IommuFd& g = r.vm->guest().iommufd();
        CHECK_FALSE(timed_wbinvd(r).second); // nothing attached yet: coherent
        guest_attach(r, {r.vrid});
        REQUIRE(r.value("vm0.vm0_viommu.noncoherent_domains") == 1);
        const auto [took, flushed] = timed_wbinvd(r);
        CHECK(flushed);
        CHECK(took == c.kernel_exit + c.wbinvd_flush);
        g.detach(r.vrid, std::nullopt);
        REQUIRE(r.value("vm0.vm0_viommu.noncoherent_domains") == 0);
        const auto [after, again] = timed_wbinvd(r);
        CHECK_FALSE(again);
        CHECK(after == c.kernel_exit);
    });
    CHECK(r.value("vm0.wbinvd_flushes") == 1);
    CHECK(r.value("vm0.wbinvd_skipped") == 2);
}
