// SPDX-License-Identifier: Apache-2.0
#include "models/host/vm/amd_viommu.hpp"

#include <set>
#include <utility>
#include <variant>

#include "models/host/amd_driver.hpp"
#include "models/host/host_error.hpp"
#include "models/iommu/amd/amd_commands.hpp"
#include "models/iommu/amd/amd_events.hpp"
#include "models/iommu/amd/amd_iommu.hpp"
#include "models/iommu/amd/amd_tables.hpp"

namespace iommusim::host::vm {

namespace amd = iommu::amd;

namespace {
amd::AmdParams guest_params(amd::AmdParams p, const VmParams& vp) {
    if (vp.page_requests) p.ppr = true; // EFR.PPRSup: the guest's devices may use PRI
    return p;
}
} // namespace

AmdViommu::AmdViommu(sc_core::sc_module_name name, VmmContext& vmm, stats::Group* parent, const amd::AmdParams& caps)
    : VirtualIommu(name, vmm, parent), p_(guest_params(caps, vmm.params)), regs_(p_),
      dropped_atc_(stats_.counter("dropped_atc_invalidations", "commands",
                                  "guest ATC invalidations the (deliberately broken) VMM did not forward")) {
    if (vmm.params.mode == ViommuMode::caching_mode)
        throw HostError(HostError::Kind::invalid, "mode: caching_mode is VT-d's (CAP.CM); a virtual AMD-Vi is nested");
    if (vmm.params.mode == ViommuMode::accelerated) {
        auto* unit = dynamic_cast<amd::AmdIommu*>(vmm.unit_model);
        hw_ = unit ? unit->hw_viommu() : nullptr;
        if (!hw_)
            throw HostError(HostError::Kind::invalid,
                            "mode: accelerated needs the unit's hardware vIOMMU (the IOMMU's viommu_guests > 0)");
        vf_port_.bind(hw_->vf);
    }
    if (vmm.params.page_requests) enable_fault_delivery();
}

bool AmdViommu::direct(tlm::tlm_generic_payload& t, sc_core::sc_time& delay) {
    // The guest's vIOMMU's third 4 KiB page is the unit's VF page of its GuestID
    // (amd_viommu_get_vfmmio_addr): command-buffer head and tail reach the unit, no exit.
    const uint64_t off = t.get_address();
    if (!gid_ || (off != amd::reg::CMD_HEAD && off != amd::reg::CMD_TAIL)) return false;
    t.set_address(uint64_t{*gid_} * amd::hwv::kVfStride + (off - amd::reg::CMD_HEAD));
    vf_port_->b_transport(t, delay);
    t.set_address(off);
    return true;
}

void AmdViommu::setup_hw_queue() {
    // IOMMU_HW_QUEUE_ALLOC of the guest's buffer (its base and ComLen as the guest programmed them).
    const uint32_t viommu = viommu_object();
    if (!gid_) {
        gid_ = dynamic_cast<AmdDriver&>(vmm_.host.driver(vmm_.iommu)).guest_id(viommu);
        if (!gid_) throw std::logic_error("AMD vIOMMU: a hardware vIOMMU without a GuestID");
        hw_->set_trap_handler(*gid_, [this](const std::array<uint64_t, 2>& q) {
            hardware_trap([&] {
                if (!emulate(q)) refused_.inc(); // the unit decoded it already: not reached
                flush_pending();
            });
        });
    }
    ioctl();
    const amd::RingRegs ring = regs_.cmd_ring();
    if (vmm_.host.iommufd().hw_queue_alloc(viommu, ring.base, ring.bytes()) != uapi::Errno::ok) host_error();
}

std::unique_ptr<IommuDriver> AmdViommu::guest_driver(const DriverEnv& env) {
    return std::make_unique<AmdDriver>(env.name, env.mmio, env.params, env.alloc_page, env.stats, env.msi);
}

std::optional<uint32_t> AmdViommu::nested_domain(uint64_t gcr3_gpa) const {
    auto it = nested_.find(gcr3_gpa);
    return it == nested_.end() ? std::nullopt : std::optional<uint32_t>(it->second.hwpt);
}

size_t AmdViommu::nested_domains_of(uint16_t gdomid) const {
    size_t n = 0;
    for (const auto& [root, nd] : nested_) n += nd.gdomid == gdomid;
    return n;
}

void AmdViommu::reg_write(uint32_t offset, unsigned size, uint64_t value) {
    using E = amd::AmdRegs::Effect;
    const bool was_on = regs_.control(amd::ctl::CMDBUF_EN);
    const E fx = regs_.write(offset, value, size);
    // The guest's PPR log, as the unit keeps it (amd_iommu.cpp mmio_write).
    if (fx == E::ppr_base) ppr_log_.on_base(regs_);
    if (fx == E::ppr_head) ppr_log_.on_head(regs_);
    if (fx == E::status) ppr_log_.on_status(regs_);
    if (fx == E::cmd_base) {
        seq_ = 0;
        watch_queue(regs_.cmd_ring().base, regs_.cmd_ring().bytes());
        if (hw_) setup_hw_queue();
    }
    if (hw_) { // the unit runs the buffer: only its enable is relayed
        const bool on = regs_.control(amd::ctl::CMDBUF_EN);
        if (fx == E::control && on != was_on && gid_) {
            ioctl();
            vmm_.host.iommufd().hw_queue_enable(viommu_object(), on);
        }
        return;
    }
    if (fx == E::cmd_tail || fx == E::control) run_queue();
}

void AmdViommu::stop(uint64_t command_gpa) {
    // The unit's behaviour on an illegal command: the buffer stops with the head on it and
    // ILLEGAL_COMMAND_ERROR goes to the event log (if it runs and has room).
    flush_pending();
    regs_.hw_stop(amd::st::CMDBUF_RUN);
    const amd::RingRegs ev = regs_.event_ring();
    if (!regs_.event_log_running() || ev.entries == 0) return;
    const uint32_t next = (ev.tail + 16) % ev.bytes();
    if (next == ev.head) return; // full
    const std::array<uint64_t, 2> rec = amd::make_illegal_command(command_gpa).encode();
    write_guest(ev.base + ev.tail, rec.data(), 16);
    regs_.hw_set_event_tail(next);
    regs_.hw_set_status(amd::st::EVT_INT);
}

void AmdViommu::run_queue() {
    // The command-buffer emulation, in the exit: every command between head and tail.
    if (!regs_.cmdbuf_running()) return;
    const amd::RingRegs ring = regs_.cmd_ring();
    if (ring.entries == 0) return;
    uint32_t head = ring.head;
    while (head != ring.tail % ring.bytes()) {
        std::array<uint64_t, 2> q{};
        const uint64_t at = ring.base + head;
        try {
            vmm_.ram.read(at, q.data(), 16);
        } catch (const mem::AddressError&) {
            stop(at);
            return;
        }
        decode(1);
        report(seq_, iommu::InvalPhase::fetched, cpu_.now());
        if (!emulate(q)) {
            stop(at);
            return;
        }
        head = (head + 16) % ring.bytes();
        regs_.hw_set_cmd_head(head);
        ++seq_;
    }
    flush_pending();
}

bool AmdViommu::emulate(const std::array<uint64_t, 2>& q) {
    const amd::Decoded d = amd::decode(q, p_);
    if (!d.ok()) return false;
    if (auto* w = std::get_if<amd::CompletionWait>(&d.command)) {
        flush_pending(); // completes only when every earlier command has
        if (w->store) write_guest(w->store_addr, &w->store_data, 8);
        if (w->interrupt) {
            regs_.hw_set_status(amd::st::COM_WAIT_INT);
            if (regs_.control(amd::ctl::COMWAIT_EN) && regs_.msi_address()) {
                const uint32_t data = regs_.msi_data();
                write_guest(regs_.msi_address(), &data, 4);
            }
        }
        report(seq_, iommu::InvalPhase::wait_done, cpu_.now());
    } else if (auto* dte = std::get_if<amd::InvalidateDevtabEntry>(&d.command)) {
        flush_pending();
        sync_device(dte->device_id);
    } else if (auto* p = std::get_if<amd::InvalidateIommuPages>(&d.command)) {
        if (nested_domains_of(p->domain_id)) forward_raw(q);
        else refused_.inc(); // nothing of an unknown vDomainID is cached on the host
    } else if (auto* t = std::get_if<amd::InvalidateIotlbPages>(&d.command)) {
        forward_atc(pcie::Bdf(t->device_id), q, dropped_atc_);
    } else if (std::holds_alternative<amd::InvalidateIommuAll>(d.command)) {
        std::set<uint16_t> doms;
        for (const auto& [root, nd] : nested_) doms.insert(nd.gdomid);
        for (uint16_t g : doms)
            forward_raw(amd::encode(amd::linux_inv_iommu_pages(g, 0, uint64_t{1} << 63, false)));
    } else if (std::holds_alternative<amd::InvalidateInterruptTable>(d.command)) {
        // no interrupt remapping is modelled: nothing cached
    } else if (auto* c = std::get_if<amd::CompletePprRequest>(&d.command)) {
        // The vDeviceID -> the vDEVICE's group the VMM delivered; the host answers the device.
        if (!vmm_.vdevice(pcie::Bdf(c->device_id))) refused_.inc(); // no vDEVICE: nothing to translate to
        else guest_page_response(ppr_key(c->device_id, c->gn, c->gn ? c->pasid : 0, c->tag),
                                 c->status == amd::ppr_status::kSuccess);
    } else {
        refused_.inc(); // PREFETCH: no prefetch is forwarded
    }
    return true;
}

uint64_t AmdViommu::ppr_key(uint16_t vdev, bool gn, uint32_t pasid, uint16_t prg_index) {
    return uint64_t{vdev} << 48 | uint64_t{gn} << 36 | uint64_t{pasid & 0xFFFFFu} << 16 | (prg_index & 0x1FFu);
}

void AmdViommu::guest_msi() {
    if (!regs_.msi_address()) return;
    const uint32_t data = regs_.msi_data();
    write_guest(regs_.msi_address(), &data, 4);
}

std::optional<uint64_t> AmdViommu::inject_page_request(const GuestFault& f) {
    // The PPR log entry the guest's unit would write for the request (spec-layouts.md B.6), at the
    // guest's tail through the unit's own log semantics (room, overflow, tail, PPRInt).
    iommu::PhysMemPort port(vmm_.ram);
    for (const uapi::HwptPgfault& q : f.requests) {
        amd::PprEntry e;
        e.device_id = f.vrid.raw;
        e.pasid = f.guest_pasid.value_or(0);
        e.prg_index = static_cast<uint16_t>(q.grpid & 0x1FF);
        e.last = q.flags & uapi::HwptPgfault::kFlagLastPage;
        e.flags = static_cast<uint16_t>((f.guest_pasid ? amd::pprf::GN : 0) |
                                        (q.perm & uapi::HwptPgfault::kPermRead ? amd::pprf::READ : 0) |
                                        (q.perm & uapi::HwptPgfault::kPermWrite ? amd::pprf::WRITE : 0) |
                                        (q.perm & uapi::HwptPgfault::kPermExec ? amd::pprf::EXEC : 0) |
                                        (q.perm & uapi::HwptPgfault::kPermPriv ? 0 : amd::pprf::US));
        e.type = amd::kPprTypeFault;
        e.address = q.addr & ~uint64_t{0xFFF};
        Duration local = Duration::zero();
        const amd::AmdLog::Logged r = ppr_log_.log(port, e.encode(), regs_, local);
        cpu_.spend(cpu_.params().mem_write); // the VMM's store of the record (or its look at a full log)
        if (r.interrupt) guest_msi(); // PPRInt, or the overflow's, with Control.PPRIntEn
        if (!r.written) return std::nullopt; // full or stopped: PPROverflow, the request dropped
    }
    const uapi::HwptPgfault& last = f.requests.back();
    return ppr_key(f.vrid.raw, f.guest_pasid.has_value(), f.guest_pasid.value_or(0), static_cast<uint16_t>(last.grpid));
}

void AmdViommu::sync_device(uint16_t vdev) {
    const pcie::Bdf vrid(vdev);
    const DeviceInfo* dev = vmm_.vdevice(vrid);
    if (!dev) {
        refused_.inc();
        return;
    }
    // Re-read the guest's DTE from the guest's device table.
    const amd::AmdTableReader reader(p_);
    const amd::AmdTableReader::DteRead r = reader.read_dte(vmm_.ram, regs_.dev_table(), vdev);
    vmm_work(vmm_.params.vmm.shadow_read);
    const amd::Dte& g = r.dte;
    const bool ok = r.status == amd::AmdTableReader::DteRead::Status::ok;
    // A guest GCR3 table in use for requests without PASID (GV, GIoV) nests; the unit reads every
    // guest PASID's GCR3 entry from the same table (the guest's own PASID space). A guest that
    // clears GIoV detaches (Linux's blocked RID), its PASID entries with it.
    if (!ok || !g.v || !g.tv || !g.gv || !g.giov) { // blocked, pass-through or no guest table: no nesting
        if (ok && g.v && g.tv && (g.mode != 0 || g.ir || g.iw)) refused_.inc(); // v1 / pass-through: not forwarded
        unbind(vrid, kNoPasid, *dev);
        destroy_unused();
        return;
    }
    // One nested domain per GCR3 table pointer (threads/003), re-made if the guest DTE changed.
    auto it = nested_.find(g.gcr3_root);
    if (it == nested_.end() || it->second.dte != r.raw) {
        const std::optional<uint32_t> h = alloc_nested(uapi::kHwptDataAmdGuest, r.raw); // validate_gdte_nested
        if (!h) {
            unbind(vrid, kNoPasid, *dev);
            destroy_unused();
            return;
        }
        if (it != nested_.end()) replaced_.push_back(it->second.hwpt); // the guest changed this table's DTE
        it = nested_.insert_or_assign(g.gcr3_root, Nested{*h, g.domain_id, r.raw}).first;
    }
    bind(vrid, kNoPasid, *dev, it->second.hwpt);
    destroy_unused();
}

void AmdViommu::destroy_unused() {
    // Nested domains no device is attached to any more go (QEMU destroys the replaced HWPT).
    for (uint32_t h : std::exchange(replaced_, {})) (void)destroy_if_unused(h);
    for (auto it = nested_.begin(); it != nested_.end();)
        it = destroy_if_unused(it->second.hwpt) ? nested_.erase(it) : std::next(it);
}

void AmdViommu::flush_pending() { flush_raw(uapi::kInvalidateDataAmdModel); }

} // namespace iommusim::host::vm
