// SPDX-License-Identifier: Apache-2.0
#include "models/host/vm/smmuv3_viommu.hpp"

#include <utility>

#include "models/host/host_error.hpp"
#include "models/host/smmuv3_driver.hpp"
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
    if (vmm.params.mode == ViommuMode::accelerated)
        throw HostError(HostError::Kind::invalid, "mode: accelerated needs a hardware guest queue; this SMMUv3 has none (no CMDQV)");
}

std::unique_ptr<IommuDriver> Smmuv3Viommu::guest_driver(const DriverEnv& env) {
    return std::make_unique<Smmuv3Driver>(env.name, env.mmio, env.params, env.alloc_page, env.stats, env.msi);
}

std::optional<uint32_t> Smmuv3Viommu::nested_domain(uint64_t cd_table_ipa) const {
    auto it = nested_.find(cd_table_ipa);
    return it == nested_.end() ? std::nullopt : std::optional<uint32_t>(it->second.hwpt);
}

void Smmuv3Viommu::reg_write(uint32_t offset, unsigned size, uint64_t value) {
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
        case sm::op::kPrefetchConfig:
        case sm::op::kPrefetchAddr: break; // hints: nothing to forward
        default: refused_.inc(); break;    // PRI_RESP / RESUME / STALL_TERM / S2 and EL2 TLBIs
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

} // namespace iommusim::host::vm
