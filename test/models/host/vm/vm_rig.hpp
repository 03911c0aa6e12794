// SPDX-License-Identifier: Apache-2.0
#pragma once
// A physical VT-d unit with a host, a raw device port and an ATS endpoint
// behind it, and one VM whose vIOMMU is a VtdViommu; both devices are passed
// through to the guest (virtual RIDs 00:03.0 and 00:04.0).
#include <functional>
#include <memory>

#include "models/common/sc_time.hpp"
#include "models/host/host.hpp"
#include "models/host/vm/vm.hpp"
#include "models/host/vm/vtd_viommu.hpp"
#include "models/host/vtd_driver.hpp"
#include "models/pcie/ats_endpoint.hpp"
#include "test/models/iommu/vtd/vtd_harness.hpp"

namespace vmtest {

using namespace iommusim;
using host::vm::ViommuMode;

struct VmRig {
    stats::Group root{"root"};
    vtdtest::TestMemory memory{"memory"};
    vtdtest::Port dev{"dev"};
    vtdtest::Router router{"router"};
    std::unique_ptr<iommu::vtd::VtdIommu> iommu;
    std::unique_ptr<pcie::AtsEndpoint> ep;
    std::unique_ptr<host::Host> os;
    std::unique_ptr<host::vm::Vm> vm;
    host::vm::VtdViommu* viommu = nullptr;
    const pcie::Bdf prid{0x03, 0, 0}, ep_rid{0x04, 0, 0};
    const pcie::Bdf vrid{0x00, 3, 0}, ep_vrid{0x00, 4, 0};

    explicit VmRig(ViommuMode mode, host::DriverParams dp = {}, host::vm::VmParams vp = {}) {
        iommu::vtd::VtdParams p;
        p.walker.s1_walk_cache.per_level.entries = 0; // exact walk read counts
        p.walker.s2_walk_cache.per_level.entries = 0;
        p.walker.s2_cache.geometry.entries = 0;
        iommu = std::make_unique<iommu::vtd::VtdIommu>("dmar0", p, &root);
        pcie::AtsEndpointParams ap;
        ap.rid = ep_rid;
        ep = std::make_unique<pcie::AtsEndpoint>("ep", ap, &root);
        dev.socket.bind(router.a);
        ep->upstream.bind(router.b);
        router.out.bind(iommu->upstream);
        iommu->ats_inv.bind(ep->downstream);
        host::HostParams hp;
        hp.driver = dp;
        os = std::make_unique<host::Host>("os", hp, memory.store, &root);
        auto& drv = os->add_iommu("dmar0", iommu->mmio, iommu->mem, memory.socket, [](const host::DriverEnv& env) {
            return std::make_unique<host::VtdDriver>(env.name, env.mmio, env.params, env.alloc_page, env.stats, env.msi);
        });
        iommu->set_invalidation_observer(&drv.invalidation_observer());
        host::DeviceInfo plain{prid}, ats{ep_rid};
        plain.pasid = true;
        ats.ats = true;
        os->iommufd().add_device(plain, 0);
        os->iommufd().add_device(ats, 0);
        vp.mode = mode;
        vm = std::make_unique<host::vm::Vm>("vm0", vp, *os, 0, memory.store, &root,
                                            [this](const std::string& n, host::vm::VmmContext& c, stats::Group* g) {
                                                auto v = std::make_unique<host::vm::VtdViommu>(n.c_str(), c, g);
                                                viommu = v.get();
                                                return v;
                                            });
        vm->add_device(plain, vrid);
        vm->add_device(ats, ep_vrid);
        ep->set_dma_observer(os->dma_observer());
    }

    double value(const std::string& dotted) const {
        const stats::Entry* e = root.find(dotted);
        return e ? stats::numeric_value(*e) : -1.0;
    }
    /// A DMA read by the raw device (physical RID), judged by the host oracle like every device's.
    tlm::tlm_response_status dma(uint64_t iova, uint64_t& v, std::optional<uint32_t> pasid = std::nullopt) {
        pcie::TlpExtension ext;
        ext.requester = prid;
        ext.pasid_present = pasid.has_value();
        ext.pasid = pasid.value_or(0);
        sc_core::sc_time d = sc_core::SC_ZERO_TIME;
        const auto st = dev.access(tlm::TLM_READ_COMMAND, iova, &v, 8, d, &ext);
        sc_core::wait(d);
        if (st == tlm::TLM_OK_RESPONSE)
            os->oracle().check(prid, pasid, iova, ext.output_address, from_sc(sc_core::sc_time_stamp()),
                               ext.served_by);
        return st;
    }
    /// Runs `body` on a guest thread (after the VMM created the VM and the guest booted).
    void run(std::function<void()> body) {
        bool done = false;
        vm->guest().add_thread("guest_test", [&] {
            body();
            done = true;
            sc_core::sc_stop();
        });
        sc_core::sc_start();
        REQUIRE(done);
    }
};

} // namespace vmtest
