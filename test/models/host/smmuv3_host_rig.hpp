// SPDX-License-Identifier: Apache-2.0
#pragma once
// An SMMUv3 unit and a Host whose SMMUv3 driver backend is added through
// Host::add_iommu, as the platform builder does: memory, a device-side port
// bound to the unit's upstream socket and a sink for its messages.
#include <memory>
#include <systemc>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "models/host/host.hpp"
#include "models/host/smmuv3_driver.hpp"
#include "models/iommu/smmuv3/smmuv3.hpp"
#include "models/mem/memory.hpp"

namespace hosttest {

using namespace iommusim;

struct Smmuv3Sink : sc_core::sc_module {
    tlm_utils::simple_target_socket<Smmuv3Sink> socket{"socket"};
    explicit Smmuv3Sink(const sc_core::sc_module_name& n) : sc_module(n) {
        socket.register_b_transport(this, &Smmuv3Sink::bt);
    }
    void bt(tlm::tlm_generic_payload& t, sc_core::sc_time&) { t.set_response_status(tlm::TLM_OK_RESPONSE); }
};
struct Smmuv3Dev : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<Smmuv3Dev> socket{"socket"};
    explicit Smmuv3Dev(const sc_core::sc_module_name& n) : sc_module(n) {}
};

struct SmmuHostRig {
    stats::Group root{"root"};
    mem::Memory memory{"memory", mem::MemoryParams{}, &root};
    Smmuv3Dev dev{"dev"};
    Smmuv3Sink sink{"sink"};
    std::unique_ptr<iommu::smmuv3::Smmuv3> unit;
    std::unique_ptr<host::Host> os;
    host::IommuDriver* drv = nullptr;
    explicit SmmuHostRig(host::HostParams hp = {}) {
        unit = std::make_unique<iommu::smmuv3::Smmuv3>("smmu0", iommu::smmuv3::Smmuv3Params{}, &root);
        dev.socket.bind(unit->upstream);
        unit->ats_inv.bind(sink.socket);
        hp.cpu.arch = host::CpuArch::arm64;
        os = std::make_unique<host::Host>("os", hp, memory.store(), &root);
        drv = &os->add_iommu("smmu0", unit->mmio, unit->mem, memory.target, [](const host::DriverEnv& env) {
            return std::make_unique<host::Smmuv3Driver>(env.name, env.mmio, env.params, env.alloc_page, env.stats,
                                                        env.msi);
        });
        unit->set_invalidation_observer(&drv->invalidation_observer());
    }
};

} // namespace hosttest
