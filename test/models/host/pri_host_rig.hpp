// SPDX-License-Identifier: Apache-2.0
#pragma once
// One IOMMU unit of any family (VT-d, AMD-Vi, SMMUv3) and a Host whose
// backend is added through Host::add_iommu, as the platform builder does, with
// a PRI device (RID 02:00.0) bound to a process's SVA domain at PASID 5: the
// test sends Page Request messages up the unit's device port and finds the
// PRG Responses in the message sink.
#include <functional>
#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include "models/common/sc_asan.hpp"
#include "models/host/host.hpp"
#include "models/iommu/amd/amd_iommu.hpp"
#include "models/iommu/smmuv3/smmuv3.hpp"
#include "models/iommu/vtd/vtd_iommu.hpp"
#include "test/models/iommu/vtd/vtd_harness.hpp"
#include "test/support/iommu_family.hpp"

namespace hosttest {

using namespace iommusim;
using iommusim::test::Family;
using PriFamily = Family; ///< the rig's former name for the family (tests written against it)

/// Sends `pr` as a Page Request message up `dev` and waits for its transfer (SC_THREAD only).
inline void send_page_request(vtdtest::Port& dev, const pcie::PageRequest& pr) {
    pcie::MessageExtension m;
    m.code = pcie::MessageCode::page_request;
    m.page_req = pr;
    uint64_t z = 0;
    sc_core::sc_time d = sc_core::SC_ZERO_TIME;
    dev.access(tlm::TLM_WRITE_COMMAND, 0, &z, 8, d, &m);
    sc_core::wait(d);
}

/// Registers a device at `rid` with ATS, PASID and PRI with the host (segment 0).
inline void add_pri_device(host::Host& os, pcie::Bdf rid, bool pri = true) {
    host::DeviceInfo d;
    d.rid = rid;
    d.ats = true;
    d.pasid = true;
    d.pri = pri;
    os.iommufd().add_device(d, 0);
}

struct PriHostRig {
    static constexpr pcie::Bdf kRid{0x0200};
    static constexpr uint32_t kPasid = 5;
    stats::Group root{"root"};
    vtdtest::TestMemory memory{"memory"};
    vtdtest::Port dev{"dev"};
    vtdtest::MessageSink sink{"sink"};
    iommu::smmuv3::Smmuv3Params smmu_params; ///< the unit keeps a reference
    std::unique_ptr<iommu::IommuShell> unit;
    std::unique_ptr<host::Host> os;
    host::IommuDriver* drv = nullptr;
    Family family;
    bool bound = false;

    /// `hp`: host parameters (the CPU architecture follows the family); `prq_order` sizes the
    /// VT-d PRQ and the SMMUv3 PRIQ (the AMD PPR log has Linux's 512 records); `pri`: the device
    /// has PRI (false: the unit gets no page-request log).
    explicit PriHostRig(Family f, host::HostParams hp = {}, uint8_t prq_order = host::DriverParams::kDefaultPrqOrder,
                        bool pri = true)
        : family(f) {
        if (f == Family::vtd) {
            unit = std::make_unique<iommu::vtd::VtdIommu>("dmar0", iommu::vtd::VtdParams{}, &root);
        } else if (f == Family::amd) {
            unit = std::make_unique<iommu::amd::AmdIommu>("dmar0", iommu::amd::AmdParams{}, &root);
        } else {
            smmu_params.hyp = false;
            unit = std::make_unique<iommu::smmuv3::Smmuv3>("dmar0", smmu_params, &root);
            hp.cpu.arch = host::CpuArch::arm64; // SVA shares the CPU's tables: arm64 for an SMMU
        }
        hp.driver.prq_order = prq_order;
        dev.socket.bind(unit->upstream);
        unit->ats_inv.bind(sink.socket);
        os = std::make_unique<host::Host>("os", hp, memory.store, &root);
        drv = &os->add_iommu("dmar0", unit->mmio, unit->mem, memory.socket, test::driver_builder(f));
        unit->set_invalidation_observer(&drv->invalidation_observer());
        add_pri_device(*os, kRid, pri);
        os->add_thread("bind", [this] {
            auto& fd = os->iommufd();
            const uint32_t pid = fd.process_create();
            fd.attach(kRid, kPasid, fd.hwpt_alloc_sva(pid, 0));
            bound = true;
        });
    }

    /// The interrupt threads still waiting for their next MSI are unwound, as a platform's are.
    ~PriHostRig() { unwind_live_threads(); }

    /// Sends one Page Request (write access, PASID 5) from an SC_THREAD.
    void page_request(uint64_t addr, uint16_t prg, bool last = true) {
        send_page_request(dev, pcie::PageRequest{.requester = kRid, .pasid_present = true, .pasid = kPasid,
                                                 .address = addr, .write = true, .last = last, .prg_index = prg});
    }
    /// PRG Responses the device has received.
    size_t responses() const {
        size_t n = 0;
        for (const auto& m : sink.got) n += m.code == pcie::MessageCode::prg_response;
        return n;
    }
    double stat(const std::string& s) const {
        const stats::Entry* e = root.find(s);
        return e ? stats::numeric_value(*e) : -1.0;
    }
    /// Runs `body` on a plain SC_THREAD (the device's side) once the SVA bind is done.
    void run(const std::function<void()>& body, sc_core::sc_time limit = sc_core::sc_time(10, sc_core::SC_MS)) {
        bool done = false;
        sc_core::sc_spawn([&] {
            while (!bound) sc_core::wait(1, sc_core::SC_US);
            body();
            done = true;
            sc_core::sc_pause(); // not sc_stop: the destructor's unwinding needs a paused kernel
        });
        sc_core::sc_start(limit);
        REQUIRE(done);
    }
};

} // namespace hosttest
