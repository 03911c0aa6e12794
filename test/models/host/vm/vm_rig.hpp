// SPDX-License-Identifier: Apache-2.0
#pragma once
// A physical unit of one family (VT-d, AMD-Vi, SMMUv3) with a host, a raw device
// port and an ATS endpoint behind it, and one VM whose vIOMMU is that family's
// (VtdViommu, AmdViommu, Smmuv3Viommu); both devices are passed through to the guest
// (virtual RIDs 00:03.0 and 00:04.0). Walk caches are off (exact read counts).
#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/common/sc_asan.hpp"
#include "models/common/sc_time.hpp"
#include "models/host/host.hpp"
#include "models/host/amd_driver.hpp"
#include "models/host/vm/amd_viommu.hpp"
#include "models/host/vm/vm.hpp"
#include "models/host/smmuv3_driver.hpp"
#include "models/host/vm/smmuv3_viommu.hpp"
#include "models/host/vm/vtd_viommu.hpp"
#include "models/host/vtd_driver.hpp"
#include "models/iommu/amd/amd_iommu.hpp"
#include "models/iommu/smmuv3/smmuv3.hpp"
#include "models/pcie/ats_endpoint.hpp"
#include "test/models/iommu/vtd/vtd_harness.hpp"
#include "test/support/iommu_family.hpp"

namespace vmtest {

using namespace iommusim;
using host::vm::ViommuMode;

using iommusim::test::Family;

struct VmRig {
    stats::Group root{"root"};
    vtdtest::TestMemory memory{"memory"};
    vtdtest::Port dev{"dev"};
    vtdtest::Router router{"router"};
    std::unique_ptr<iommu::IommuShell> iommu;
    std::unique_ptr<pcie::AtsEndpoint> ep;
    std::unique_ptr<host::Host> os;
    std::unique_ptr<host::vm::Vm> vm;
    host::vm::VtdViommu* viommu = nullptr;     ///< Family::vtd
    host::vm::AmdViommu* amd_viommu = nullptr; ///< Family::amd
    host::vm::Smmuv3Viommu* smmu_viommu = nullptr; ///< Family::smmuv3
    Family family;
    host::IommuDriver* host_drv = nullptr; ///< the host's backend of the physical unit
    iommu::smmuv3::Smmuv3Params smmu_params; ///< Family::smmuv3 (the unit keeps a reference)
    const pcie::Bdf prid{0x03, 0, 0}, ep_rid{0x04, 0, 0};
    const pcie::Bdf vrid{0x00, 3, 0}, ep_vrid{0x00, 4, 0};

    /// `snoop_control` (VT-d ECAP.SC): false makes every domain on the unit non-coherent.
    /// `can_stall`: firmware says the raw device tolerates stalls (SMMUv3 "dma-can-stall").
    /// `ep_pri`: the ATS endpoint has PASID and PRI enabled (it may send Page Requests).
    /// `smmu_guest_caps`: what an SMMUv3 guest sees (default: Smmuv3Viommu::default_caps()).
    explicit VmRig(ViommuMode mode, host::DriverParams dp = {}, host::vm::VmParams vp = {}, Family f = Family::vtd,
                   bool snoop_control = true, bool can_stall = false, bool ep_pri = false,
                   std::optional<iommu::smmuv3::Smmuv3Params> smmu_guest_caps = std::nullopt)
        : family(f) {
        auto no_walk_caches = [](iommu::WalkerParams& w) {
            w.s1_walk_cache.per_level.entries = 0;
            w.s2_walk_cache.per_level.entries = 0;
            w.s2_cache.geometry.entries = 0;
        };
        if (f == Family::vtd) {
            iommu::vtd::VtdParams p;
            p.snoop_control = snoop_control;
            no_walk_caches(p.walker);
            iommu = std::make_unique<iommu::vtd::VtdIommu>("dmar0", p, &root);
        } else if (f == Family::amd) {
            iommu::amd::AmdParams p;
            no_walk_caches(p.walker);
            if (mode == ViommuMode::accelerated) p.viommu_guests = 2; // the hardware vIOMMU
            iommu = std::make_unique<iommu::amd::AmdIommu>("dmar0", p, &root);
        } else {
            smmu_params.hyp = false; // the host kernel at EL1 keeps the test's TLBIs in one regime
            if (mode == ViommuMode::accelerated) smmu_params.cmdqv_vintfs = 2; // the CMDQV: VINTF0 + one VM
            no_walk_caches(smmu_params.walker);
            iommu = std::make_unique<iommu::smmuv3::Smmuv3>("dmar0", smmu_params, &root);
        }
        pcie::AtsEndpointParams ap;
        ap.rid = ep_rid;
        ap.pri_enabled = ep_pri;
        ep = std::make_unique<pcie::AtsEndpoint>("ep", ap, &root);
        dev.socket.bind(router.a);
        ep->upstream.bind(router.b);
        router.out.bind(iommu->upstream);
        iommu->ats_inv.bind(ep->downstream);
        host::HostParams hp;
        hp.driver = dp;
        os = std::make_unique<host::Host>("os", hp, memory.store, &root);
        auto& drv = os->add_iommu("dmar0", iommu->mmio, iommu->mem, memory.socket, test::driver_builder(f));
        iommu->set_invalidation_observer(&drv.invalidation_observer());
        host_drv = &drv;
        if (auto* unit = dynamic_cast<iommu::amd::AmdIommu*>(iommu.get()); unit && unit->hw_viommu()) {
            const unsigned port = os->add_iommu_mmio(unit->hw_viommu()->vfcntl); // its VF_CNTL BAR
            dynamic_cast<host::AmdDriver&>(drv).attach_hw_viommu(host::MmioPort(os->cpu(), port),
                                                                 unit->params().viommu_guests);
        }
        if (auto* unit = dynamic_cast<iommu::smmuv3::Smmuv3*>(iommu.get()); unit && unit->cmdqv()) {
            const unsigned port = os->add_iommu_mmio(unit->cmdqv()->mmio); // the CMDQV's register space
            dynamic_cast<host::Smmuv3Driver&>(drv).attach_cmdqv(host::MmioPort(os->cpu(), port),
                                                                unit->cmdqv()->core().vintfs(),
                                                                unit->cmdqv()->core().queues());
        }
        host::DeviceInfo plain{prid}, ats{ep_rid};
        plain.pasid = true;
        plain.can_stall = can_stall;
        ats.ats = true;
        ats.pri = ep_pri;
        ats.pasid = ep_pri;
        os->iommufd().add_device(plain, 0);
        os->iommufd().add_device(ats, 0);
        vp.mode = mode;
        vm = std::make_unique<host::vm::Vm>("vm0", vp, *os, 0, memory.store, &root,
                                            [this, smmu_guest_caps](const std::string& n, host::vm::VmmContext& c,
                                                                    stats::Group* g)
                                                -> std::unique_ptr<host::vm::VirtualIommu> {
                                                c.unit_model = iommu.get();
                                                if (family == Family::smmuv3) {
                                                    auto v = std::make_unique<host::vm::Smmuv3Viommu>(
                                                        n.c_str(), c, g,
                                                        smmu_guest_caps.value_or(host::vm::Smmuv3Viommu::default_caps()));
                                                    smmu_viommu = v.get();
                                                    return v;
                                                }
                                                if (family == Family::amd) {
                                                    auto v = std::make_unique<host::vm::AmdViommu>(n.c_str(), c, g);
                                                    amd_viommu = v.get();
                                                    return v;
                                                }
                                                auto v = std::make_unique<host::vm::VtdViommu>(n.c_str(), c, g);
                                                viommu = v.get();
                                                return v;
                                            });
        vm->add_device(plain, vrid);
        vm->add_device(ats, ep_vrid);
        ep->set_dma_observer(os->dma_observer());
    }
    /// Threads still waiting (the host's and the guest's interrupt threads, a stalled DMA's
    /// event handler) are unwound, as a platform's are: nothing on their stacks leaks.
    ~VmRig() { unwind_live_threads(); }

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
            sc_core::sc_pause(); // not sc_stop: the destructor's unwinding needs a paused kernel
        });
        sc_core::sc_start();
        REQUIRE(done);
    }
};

/// The guest's DMA domain: an IOAS and a domain of the mode's kind with `vrids` attached.
struct GuestDomain {
    uint32_t ioas = 0, hwpt = 0;
};
inline GuestDomain guest_attach(VmRig& r, const std::vector<pcie::Bdf>& vrids) {
    host::IommuFd& g = r.vm->guest().iommufd();
    GuestDomain d;
    d.ioas = g.ioas_alloc();
    d.hwpt = g.hwpt_alloc(d.ioas, 0, r.vm->guest_domain_kind());
    for (pcie::Bdf v : vrids) g.attach(v, std::nullopt, d.hwpt);
    return d;
}
inline GuestDomain guest_attach(VmRig& r, pcie::Bdf vrid) { return guest_attach(r, std::vector<pcie::Bdf>{vrid}); }
/// A guest domain of its own at guest PASID `pasid` of `vrid`, one page mapped whose memory holds `magic`.
struct GuestPasidDomain {
    uint32_t ioas = 0, hwpt = 0;
    uint64_t iova = 0;
};
inline GuestPasidDomain guest_pasid_domain(VmRig& r, pcie::Bdf vrid, uint32_t pasid, uint64_t magic) {
    host::IommuFd& g = r.vm->guest().iommufd();
    GuestPasidDomain d;
    d.ioas = g.ioas_alloc();
    d.hwpt = g.hwpt_alloc(d.ioas, 0, host::DomainDesc::Kind::paging_s1);
    g.attach(vrid, pasid, d.hwpt);
    d.iova = g.map(d.ioas, 4096);
    r.vm->memory().write(*g.lookup(d.ioas, d.iova), &magic, 8);
    return d;
}

/// The ATS endpoint reads 8 bytes at `iova` (ATC lookup, translation request on a miss).
inline tlm::tlm_response_status ep_read(VmRig& r, uint64_t iova) {
    uint64_t v = 0;
    sc_core::sc_time t = sc_core::SC_ZERO_TIME;
    const auto st = r.ep->dma(iova, &v, 8, false, std::nullopt, t);
    sc_core::wait(t);
    return st;
}

/// The guest maps two pages for the raw device; the first DMA warms the unit's context caches,
/// the second's walk is cold: its table reads (the DMA must read what the guest wrote there).
inline double cold_walk_reads(VmRig& r, const GuestDomain& d) {
    host::IommuFd& g = r.vm->guest().iommufd();
    const uint64_t a = g.map(d.ioas, 4096), b = g.map(d.ioas, 4096);
    const uint64_t magic = 0x5eed'cafe'f00d'0042;
    r.vm->memory().write(*g.lookup(d.ioas, b), &magic, 8);
    uint64_t v = 0;
    REQUIRE(r.dma(a, v) == tlm::TLM_OK_RESPONSE);
    const double before = r.value("dmar0.table_reads");
    REQUIRE(r.dma(b, v) == tlm::TLM_OK_RESPONSE);
    CHECK(v == magic);
    return r.value("dmar0.table_reads") - before;
}

/// The id of the VM's vIOMMU object on the host (the one holding the ATS endpoint's vDEVICE).
inline uint32_t viommu_id(VmRig& r) {
    for (uint32_t id = 1; id < 256; ++id)
        if (r.os->iommufd().vdevice(id, r.ep_vrid.raw)) return id;
    return 0;
}

/// The guest maps a page, the raw device reads it, the guest unmaps it: the vIOMMU forwards one
/// invalidation (the host's `host_counter` counts one more) and the stale entry is gone (the
/// next DMA faults), with no oracle violation and the trapped submission's phases recorded.
inline void check_guest_unmap_forwarded(VmRig& r, const std::string& host_counter) {
    r.run([&] {
        host::IommuFd& g = r.vm->guest().iommufd();
        const GuestDomain d = guest_attach(r, {r.vrid});
        const uint64_t a = g.map(d.ioas, 4096);
        uint64_t v = 0;
        REQUIRE(r.dma(a, v) == tlm::TLM_OK_RESPONSE);
        const double forwarded = r.value("vm0.vm0_viommu.forwarded"), host = r.value(host_counter);
        g.unmap(d.ioas, a, 4096);
        CHECK(r.value("vm0.vm0_viommu.forwarded") == forwarded + 1);
        CHECK(r.value(host_counter) == host + 1);
        CHECK(r.dma(a, v) != tlm::TLM_OK_RESPONSE);
    });
    CHECK(r.value("os.oracle.violations") == 0);
    CHECK(r.value("vm0.vm0_viommu.invalidation_phases.total") >= 1);
}

/// A vIOMMU of type `V` asked for ViommuMode::accelerated without a unit (no hardware guest queue
/// behind it) refuses to be built.
template <class V>
inline void check_accelerated_needs_hardware() {
    stats::Group root{"root"};
    vtdtest::TestMemory memory{"memory"};
    host::HostParams hp;
    host::Host os("os", hp, memory.store, &root);
    host::vm::VmParams vp;
    vp.mode = ViommuMode::accelerated;
    host::vm::GuestMemory ram(memory.store, vp.ram_gpa, vp.ram_bytes);
    host::vm::VmmContext ctx(os, 0, ram, vp);
    CHECK_THROWS_AS(V("v", ctx, &root), host::HostError);
}

/// IOMMU_HWPT_INVALIDATE on the vIOMMU `viommu` with 16-byte raw guest commands of `data_type`:
/// the call returns `want` having handled `done` entries.
inline void check_viommu_invalidate(host::IommuFd& fd, uint32_t viommu, uint32_t data_type,
                                    std::vector<std::array<uint64_t, 2>> cmds, host::uapi::Errno want, uint32_t done) {
    host::uapi::HwptInvalidate q;
    q.hwpt_id = viommu;
    q.data_uptr = reinterpret_cast<uintptr_t>(cmds.data());
    q.data_type = data_type;
    q.entry_len = 16;
    q.entry_num = static_cast<uint32_t>(cmds.size());
    CHECK(fd.hwpt_invalidate(q) == want);
    CHECK(q.entry_num == done);
}

/// Raw commands written into the guest's CMDQ and PROD rung (a guest kernel's doing).
inline void guest_commands(VmRig& r, const std::vector<iommu::smmuv3::Command>& cmds) {
    const iommu::smmuv3::Smmuv3Regs& regs = r.smmu_viommu->regs();
    const uint8_t log2 = regs.queue_log2size(iommu::smmuv3::Queue::cmdq);
    iommu::smmuv3::QueuePos prod = regs.cmdq_prod();
    for (const auto& c : cmds) {
        const auto e = c.encode();
        r.vm->memory().write(regs.queue_base(iommu::smmuv3::Queue::cmdq) + uint64_t{prod.index} * 16, e.data(), 16);
        if (++prod.index == (1u << log2)) {
            prod.index = 0;
            prod.wrap = !prod.wrap;
        }
    }
    r.vm->guest().cpu().mmio_write(0, iommu::smmuv3::reg::kCmdqProd, prod.encode(log2), 4);
}

} // namespace vmtest
