// SPDX-License-Identifier: Apache-2.0
#include "models/host/vm/smmuv3_viommu.hpp"

#include <bit>
#include <utility>

#include "models/host/host_error.hpp"
#include "models/host/smmuv3_driver.hpp"
#include "models/iommu/smmuv3/smmuv3.hpp"
#include "models/iommu/smmuv3/smmuv3_commands.hpp"
#include "models/iommu/smmuv3/smmuv3_tables.hpp"

namespace iommusim::host::vm {

namespace sm = iommu::smmuv3;

sm::Smmuv3Params Smmuv3Viommu::default_caps() {
    sm::Smmuv3Params p;
    p.s2p = false; // the vSMMU offers stage 1 only: the host owns stage 2
    p.hyp = false; // no EL2 in the guest: STRW = NS-EL1, TLBI_NH_*
    p.pri = false; // no page requests reach guests (not modelled)
    return p;
}

Smmuv3Viommu::Smmuv3Viommu(sc_core::sc_module_name name, VmmContext& vmm, stats::Group* parent,
                           const sm::Smmuv3Params& caps)
    : VirtualIommu(name, vmm, parent), p_(caps), regs_(p_),
      dropped_atc_(stats_.counter("dropped_atc_invalidations", "commands",
                                  "guest ATC invalidations the (deliberately broken) VMM did not forward")) {
    if (vmm.params.mode == ViommuMode::caching_mode)
        throw HostError(HostError::Kind::invalid, "mode: caching_mode is VT-d's (CAP.CM); a virtual SMMUv3 is nested");
    if (vmm.params.mode == ViommuMode::accelerated) {
        auto* unit = dynamic_cast<sm::Smmuv3*>(vmm.unit_model);
        hw_ = unit ? unit->cmdqv() : nullptr;
        if (!hw_)
            throw HostError(HostError::Kind::invalid,
                            "mode: accelerated needs the unit's CMDQ-Virtualization (the IOMMU's cmdqv_vintfs > 0)");
        page_port_.bind(hw_->guest_pages);
    }
    if (vmm.params.page_requests) {
        // Stalls are what Linux's SMMUv3 nesting delivers to a guest (iommu_report_device_fault);
        // the vSMMU can offer them only when the unit stalls.
        auto* unit = dynamic_cast<sm::Smmuv3*>(vmm.unit_model);
        if (unit && ((unit->regs().read(sm::reg::kIdr0, 4) >> 24) & 3) == static_cast<unsigned>(sm::StallModel::terminate_only))
            throw HostError(HostError::Kind::invalid, "page_requests: the SMMU does not stall (stall_model terminate_only)");
        p_.stall_model = sm::StallModel::stall;
        enable_fault_delivery();
    }
}

std::unique_ptr<IommuDriver> Smmuv3Viommu::guest_driver(const DriverEnv& env) {
    auto d = std::make_unique<Smmuv3Driver>(env.name, env.mmio, env.params, env.alloc_page, env.stats, env.msi);
    if (hw_) { // the guest kernel's tegra241 impl: its vCMDQ as the secondary queue
        guest_queues_.push_back(std::make_unique<GuestVcmdq>(env.mmio, kGuestCmdqv, env.alloc_page, env.name + "_vcmdq", env.stats));
        GuestVcmdq* q = guest_queues_.back().get();
        d->set_secondary_cmdq([q](const std::vector<sm::Command>& cmds) { return q->submit(cmds); });
    }
    return d;
}

bool Smmuv3Viommu::direct(tlm::tlm_generic_payload& t, sc_core::sc_time& delay) {
    // The guest's VINTF0 logical page 0 is the physical VINTF's (mmapped by the VMM): no exit.
    const uint64_t off = t.get_address();
    const uint64_t page0 = kGuestCmdqv + sm::cmdqv::vintf_page0(0);
    if (!vintf_ || off < page0 || off >= page0 + 0x10000) return false;
    t.set_address(sm::cmdqv::vintf_page0(*vintf_) + (off - page0));
    page_port_->b_transport(t, delay);
    t.set_address(off);
    return true;
}

uint64_t Smmuv3Viommu::reg_read(uint32_t offset, unsigned size) {
    return offset >= kGuestCmdqv && hw_ ? cmdqv_read(offset - kGuestCmdqv) : regs_.read(offset, size);
}

uint64_t Smmuv3Viommu::cmdqv_read(uint32_t off) const {
    // The VMM's virtual CMDQV: one VINTF, the physical VINTF's queue and SID counts.
    namespace cq = sm::cmdqv;
    const auto log2 = [](uint32_t n) { return n <= 1 ? 0u : static_cast<uint32_t>(std::bit_width(n - 1)); };
    switch (off) {
    case cq::kConfig: return gregs_.config;
    case cq::kStatus: return gregs_.config & cq::kEn;
    case cq::kParam: return (log2(hw_->core().sids_per_vintf()) << 12) | (log2(hw_->core().lvcmdqs_per_vintf()) << 4) | 1;
    case cq::vintf(0) + cq::kVintfConfig: return gregs_.vintf0 & ~cq::kHypOwn; // HYP_OWN is wired to 0 in a guest
    case cq::vintf(0) + cq::kVintfStatus: return gregs_.vintf0 & cq::kEn;
    default: break;
    }
    if (auto it = gregs_.alloc.find((off - cq::cmdq_alloc(0)) / 4); off >= cq::cmdq_alloc(0) && it != gregs_.alloc.end())
        return it->second;
    if (off >= cq::vintf_page1(0) && off < cq::vintf_page1(0) + 0x10000 && (off - cq::vintf_page1(0)) % cq::kQueueStride == cq::kBase)
        if (auto it = gregs_.base.find((off - cq::vintf_page1(0)) / cq::kQueueStride); it != gregs_.base.end())
            return it->second;
    return 0; // page 0 before the queue exists, error maps (no vEVENT delivery: not modelled)
}

void Smmuv3Viommu::cmdqv_write(uint32_t off, uint64_t value) {
    namespace cq = sm::cmdqv;
    const auto w32 = static_cast<uint32_t>(value);
    if (off == cq::kConfig) gregs_.config = w32 & cq::kEn;
    else if (off == cq::vintf(0) + cq::kVintfConfig) gregs_.vintf0 = w32;
    else if (off >= cq::cmdq_alloc(0) && off < cq::cmdq_alloc(hw_->core().lvcmdqs_per_vintf())) gregs_.alloc[(off - cq::cmdq_alloc(0)) / 4] = w32;
    else if (off >= cq::vintf_page1(0) && off < cq::vintf_page1(0) + 0x10000 &&
             (off - cq::vintf_page1(0)) % cq::kQueueStride == cq::kBase) {
        const uint32_t lidx = (off - cq::vintf_page1(0)) / cq::kQueueStride;
        gregs_.base[lidx] = value;
        const uint64_t gpa = value & 0x0000FFFFFFFFFFE0ull;
        if (!gpa) return; // the guest's reset of BASE
        // QEMU: the guest's queue becomes IOMMU_HW_QUEUE_ALLOC (tegra241_vintf_alloc_lvcmdq_user).
        const uint32_t viommu = viommu_object();
        if (!vintf_) vintf_ = dynamic_cast<Smmuv3Driver&>(vmm_.host.driver(vmm_.iommu)).vintf(viommu);
        ioctl();
        if (vmm_.host.iommufd().hw_queue_alloc(viommu, gpa, uint64_t{16} << (value & 0x1F)) != uapi::Errno::ok)
            host_error();
    }
}

std::optional<uint32_t> Smmuv3Viommu::nested_domain(uint64_t cd_table_ipa) const {
    auto it = nested_.find(cd_table_ipa);
    return it == nested_.end() ? std::nullopt : std::optional<uint32_t>(it->second.hwpt);
}

void Smmuv3Viommu::reg_write(uint32_t offset, unsigned size, uint64_t value) {
    if (offset >= kGuestCmdqv && hw_) {
        cmdqv_write(offset - kGuestCmdqv, value);
        return;
    }
    const uint32_t fx = regs_.write(offset, size, value);
    if ((fx & sm::Smmuv3Regs::kCr0Written) && regs_.enabled(sm::bit::kCmdqEn)) {
        seq_ = 0;
        watch_queue(regs_.queue_base(sm::Queue::cmdq), uint64_t{16} << regs_.queue_log2size(sm::Queue::cmdq));
    }
    if (fx & (sm::Smmuv3Regs::kCmdqProdWritten | sm::Smmuv3Regs::kGerrorNWritten)) run_queue();
}

void Smmuv3Viommu::run_queue() {
    // The CMDQ emulation, in the exit: every command between CONS and PROD.
    if (!regs_.enabled(sm::bit::kCmdqEn) || (regs_.active_errors() & static_cast<uint32_t>(sm::Gerror::cmdq_err)))
        return;
    const uint8_t log2 = regs_.queue_log2size(sm::Queue::cmdq);
    const uint64_t base = regs_.queue_base(sm::Queue::cmdq);
    const sm::QueuePos prod = regs_.cmdq_prod();
    sm::QueuePos cons = regs_.cmdq_cons();
    while (cons.index != prod.index || cons.wrap != prod.wrap) {
        std::array<uint64_t, 2> raw{};
        bool fetched = true;
        try {
            vmm_.ram.read(base + uint64_t{cons.index} * 16, raw.data(), 16);
        } catch (const mem::AddressError&) {
            fetched = false;
        }
        const std::optional<sm::Command> c = fetched ? sm::decode_command(raw, p_) : std::nullopt;
        if (fetched) {
            decode(1);
            report(seq_, iommu::InvalPhase::fetched, cpu_.now());
        }
        if (!c) { // CERROR_ILL / CERROR_ABT: the queue stops on it, GERROR.CMDQ_ERR and its MSI
            flush_pending();
            regs_.set_cmdq_cons(cons, fetched ? sm::CmdError::ill : sm::CmdError::abt);
            const sm::MsiConfig m = regs_.gerror_msi();
            if (regs_.raise(sm::Gerror::cmdq_err) && regs_.irq_enabled(sm::bit::kGerrorIrqEn) && m.addr)
                write_guest(m.addr, &m.data, 4);
            return;
        }
        switch (c->opcode) {
        case sm::op::kCfgiSte:
            flush_pending();
            sync_device(c->sid);
            break;
        case sm::op::kCfgiSteRange:
        case sm::op::kCfgiAll: {
            flush_pending();
            const uint64_t span = c->opcode == sm::op::kCfgiAll ? 0 : uint64_t{2} << c->range;
            for (const auto& [vrid, dev] : vmm_.vdevices)
                if (span == 0 || span > (uint64_t{1} << 32) || (vrid & ~(span - 1)) == (c->sid & ~(span - 1)))
                    sync_device(vrid);
            break;
        }
        case sm::op::kTlbiNhAll:
        case sm::op::kTlbiNhAsid:
        case sm::op::kTlbiNhVa:
        case sm::op::kTlbiNhVaa:
        case sm::op::kTlbiNsnhAll: forward_raw(raw); break; // the kernel forces the VMID
        case sm::op::kCfgiCd:
        case sm::op::kCfgiCdAll:
        case sm::op::kAtcInv:
            if (c->sid > 0xFFFF || !vmm_.vdevice(pcie::Bdf(static_cast<uint16_t>(c->sid)))) refused_.inc();
            else if (c->opcode == sm::op::kAtcInv) forward_atc(pcie::Bdf(static_cast<uint16_t>(c->sid)), raw, dropped_atc_);
            else forward_raw(raw); // CFGI_CD: the CD the guest changed, cached by the unit under the pSID
            break;
        case sm::op::kSync:
            flush_pending(); // completes only when everything before it has
            if (c->cs == sm::SyncSignal::irq && c->msi_addr) write_guest(c->msi_addr, &c->msi_data, 4);
            report(seq_, iommu::InvalPhase::wait_done, cpu_.now());
            break;
        case sm::op::kResume: // the guest's answer to a stall the VMM injected
            if (c->sid > 0xFFFF || !vmm_.vdevice(pcie::Bdf(static_cast<uint16_t>(c->sid)))) refused_.inc();
            else guest_page_response(uint64_t{c->sid} << 16 | c->stag, c->resp == static_cast<uint8_t>(sm::ResumeAction::retry));
            break;
        case sm::op::kPrefetchConfig:
        case sm::op::kPrefetchAddr: break; // hints: nothing to forward
        default: refused_.inc(); break;    // PRI_RESP / STALL_TERM / S2 and EL2 TLBIs
        }
        if (++cons.index == (uint32_t{1} << log2)) {
            cons.index = 0;
            cons.wrap = !cons.wrap;
        }
        regs_.set_cmdq_cons(cons);
        ++seq_;
    }
    flush_pending();
}

void Smmuv3Viommu::sync_device(uint32_t vsid) {
    const pcie::Bdf vrid(static_cast<uint16_t>(vsid));
    const DeviceInfo* dev = vsid > 0xFFFF ? nullptr : vmm_.vdevice(vrid);
    if (!dev) {
        refused_.inc();
        return;
    }
    // Re-read the guest's STE from the guest's stream table.
    const sm::Smmuv3TableReader reader(p_);
    const sm::Smmuv3TableReader::SteResult r = reader.read_ste(vmm_.ram, regs_.strtab(), vsid);
    vmm_work(vmm_.params.vmm.shadow_read * std::max(1u, r.reads));
    if (r.event || !r.ste.valid || r.ste.config != sm::ste_cfg::kS1) { // abort, bypass, invalid: no nesting
        if (!r.event && r.ste.valid && r.ste.config != sm::ste_cfg::kAbort) refused_.inc();
        unbind(vrid, kNoPasid, *dev);
        destroy_unused();
        return;
    }
    std::array<uint64_t, 2> vste{};
    vmm_.ram.read(r.ste_addr, vste.data(), 16);
    // One nested domain per CD-table pointer (threads/003), re-made if the vSTE changed.
    auto it = nested_.find(r.ste.s1_context_ptr);
    if (it == nested_.end() || it->second.vste != vste) {
        const std::optional<uint32_t> h = alloc_nested(uapi::kHwptDataArmSmmuv3, {vste[0], vste[1], 0, 0});
        if (!h) { // arm_smmu_validate_vste refused it
            unbind(vrid, kNoPasid, *dev);
            destroy_unused();
            return;
        }
        if (it != nested_.end()) replaced_.push_back(it->second.hwpt); // the guest changed this table's vSTE
        it = nested_.insert_or_assign(r.ste.s1_context_ptr, Nested{*h, vste}).first;
    }
    bind(vrid, kNoPasid, *dev, it->second.hwpt);
    destroy_unused();
}

void Smmuv3Viommu::destroy_unused() {
    // Nested domains no device is attached to any more go (QEMU destroys the replaced HWPT).
    for (uint32_t h : std::exchange(replaced_, {})) (void)destroy_if_unused(h);
    for (auto it = nested_.begin(); it != nested_.end();)
        it = destroy_if_unused(it->second.hwpt) ? nested_.erase(it) : std::next(it);
}

void Smmuv3Viommu::flush_pending() { flush_raw(uapi::kInvalidateDataArmSmmuv3); }

std::optional<uint32_t> Smmuv3Viommu::vevent_type() const {
    return fault_delivery() ? std::optional<uint32_t>(uapi::kVeventqTypeArmSmmuv3) : std::nullopt;
}

bool Smmuv3Viommu::push_guest_event(const std::array<uint64_t, 4>& rec) {
    iommu::PhysMemPort port(vmm_.ram);
    Duration local = Duration::zero();
    const iommu::RecordRing::PushResult r = regs_.push(sm::Queue::evtq, port, rec.data(), local);
    cpu_.spend(cpu_.params().mem_write); // the VMM's store of the record into guest RAM
    const sm::MsiConfig m = regs_.msi(sm::Queue::evtq);
    if (r.interrupt_needed() && regs_.irq_enabled(sm::bit::kEvtqIrqEn) && m.addr) write_guest(m.addr, &m.data, 4);
    return r.written();
}

std::optional<uint64_t> Smmuv3Viommu::inject_page_request(const GuestFault& f) {
    // The stall as the guest's unit would record it (IHI 0070 7.3.13): the vSID, the guest's
    // SSID, the STAG (the group index the host read) and the access's rights.
    const uapi::HwptPgfault& q = f.requests.back();
    sm::Event e;
    e.id = sm::evt::kTranslation;
    e.sid = f.vrid.raw;
    e.ssv = f.guest_pasid.has_value();
    e.ssid = f.guest_pasid.value_or(0);
    e.stag = static_cast<uint16_t>(q.grpid);
    e.stall = true;
    e.rnw = !(q.perm & uapi::HwptPgfault::kPermWrite);
    e.ind = q.perm & uapi::HwptPgfault::kPermExec;
    e.pnu = q.perm & uapi::HwptPgfault::kPermPriv;
    e.cls = sm::EventClass::in;
    e.input_addr = q.addr;
    if (!push_guest_event(e.encode())) return std::nullopt;
    return uint64_t{e.sid} << 16 | e.stag;
}

bool Smmuv3Viommu::inject_event(const std::vector<uint64_t>& data) {
    if (data.size() != 4) return false;
    return push_guest_event({data[0], data[1], data[2], data[3]});
}

} // namespace iommusim::host::vm
