// SPDX-License-Identifier: Apache-2.0
#pragma once
// A VT-d unit and a Host whose VT-d driver backend is added through
// Host::add_iommu, as the platform builder does: memory, a device-side port
// and a message sink from the VT-d test harness.
#include <functional>
#include <memory>

#include <catch2/catch.hpp>

#include "models/host/host.hpp"
#include "models/host/vtd_driver.hpp"
#include "test/models/iommu/vtd/vtd_harness.hpp"

namespace hosttest {

using namespace iommusim;

struct VtdHostRig {
    stats::Group root{"root"};
    vtdtest::TestMemory memory{"memory"};
    vtdtest::Port dev{"dev"};
    vtdtest::MessageSink sink{"sink"};
    std::unique_ptr<iommu::vtd::VtdIommu> iommu;
    std::unique_ptr<host::Host> os;
    host::IommuDriver* drv = nullptr;
    explicit VtdHostRig(const iommu::vtd::VtdParams& p = {}, const host::HostParams& hp = {}) {
        iommu = std::make_unique<iommu::vtd::VtdIommu>("dmar0", p, &root);
        dev.socket.bind(iommu->upstream);
        iommu->ats_inv.bind(sink.socket);
        os = std::make_unique<host::Host>("os", hp, memory.store, &root);
        drv = &os->add_iommu("dmar0", iommu->mmio, iommu->mem, memory.socket, [](const host::DriverEnv& env) {
            return std::make_unique<host::VtdDriver>(env.name, env.mmio, env.params, env.alloc_page, env.stats, env.msi);
        });
        iommu->set_invalidation_observer(&drv->invalidation_observer());
    }
    /// Runs `body` on a host thread after boot; the simulation stops when it returns.
    void run(const std::function<void()>& body) {
        bool done = false;
        os->add_thread("test", [&] {
            body();
            done = true;
            sc_core::sc_stop();
        });
        sc_core::sc_start(sc_core::sc_time(10, sc_core::SC_MS));
        REQUIRE(done);
    }
    /// Adds a PASID-capable device with requester ID `rid` behind the unit.
    host::DeviceInfo add_pasid_device(uint16_t rid = 0x0100) {
        host::DeviceInfo d;
        d.rid = pcie::Bdf(rid);
        d.pasid = true;
        os->iommufd().add_device(d, 0);
        return d;
    }
};

} // namespace hosttest
