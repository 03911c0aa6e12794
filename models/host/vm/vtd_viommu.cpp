// SPDX-License-Identifier: Apache-2.0
#include "models/host/vm/vtd_viommu.hpp"

#include <variant>

#include "models/host/host_error.hpp"

#include "models/host/vtd_driver.hpp"
#include "models/iommu/common/pt_format.hpp"
#include "models/iommu/vtd/vtd_descriptors.hpp"

namespace iommusim::host::vm {

namespace vtd = iommu::vtd;
using Scope = iommu::InvalidationScope;

namespace {
vtd::VtdParams guest_params(vtd::VtdParams p, ViommuMode) {
    // QEMU's intel-iommu requires caching-mode=on for devices assigned behind it, shadowed or
    // nested (x-flts): the guest's context/PASID-entry writes must trap as cache invalidations.
    p.caching_mode = true;
    return p;
}
constexpr uint64_t kPage = 4096;
} // namespace

VtdViommu::VtdViommu(sc_core::sc_module_name name, VmmContext& vmm, stats::Group* parent, const vtd::VtdParams& caps)
    : VirtualIommu(name, vmm, parent), p_(guest_params(caps, vmm.params.mode)), regs_(p_), reader_(p_),
      shadow_maps_(stats_.counter("shadow_maps", "pages", "caching mode: guest pages shadowed into the host domain")),
      shadow_unmaps_(stats_.counter("shadow_unmaps", "pages", "caching mode: shadowed pages removed (host flush)")) {
    if (vmm.params.mode == ViommuMode::accelerated)
        throw HostError(HostError::Kind::invalid, "mode: accelerated needs a hardware guest queue; VT-d has none");
    if (vmm.params.page_requests) {
        if (vmm.params.mode != ViommuMode::nested)
            throw HostError(HostError::Kind::invalid, "page_requests: faults reach the VMM through nested HWPTs (mode nested)");
        p_.page_requests = true; // ECAP.PRS
        enable_fault_delivery();
    }
}

std::unique_ptr<IommuDriver> VtdViommu::guest_driver(const DriverEnv& env) {
    return std::make_unique<VtdDriver>(env.name, env.mmio, env.params, env.alloc_page, env.stats, env.msi);
}

std::optional<uint32_t> VtdViommu::nested_domain(uint16_t vdid, uint32_t pasid) const {
    auto it = nested_.find({vdid, pasid});
    return it == nested_.end() ? std::nullopt : std::optional<uint32_t>(it->second.hwpt);
}

std::optional<uint32_t> VtdViommu::shadow_domain(uint16_t vdid) const {
    auto it = shadows_.find(vdid);
    return it == shadows_.end() ? std::nullopt : std::optional<uint32_t>(it->second.hwpt);
}

uint64_t VtdViommu::prq_key(pcie::Bdf vrid, bool pasid_present, uint32_t pasid, uint16_t prg_index) {
    return uint64_t{vrid.raw} << 48 | uint64_t{pasid_present} << 36 | uint64_t{pasid & pcie::kPasidMask} << 16 |
           (prg_index & 0x1FFu);
}

std::optional<uint32_t> VtdViommu::guest_pasid_of(std::optional<uint32_t> hw_pasid) {
    // The device used the host PASID the VMM bound the guest's PASID at (the VM's PASID set).
    if (!hw_pasid) return std::nullopt;
    for (const auto& [key, h] : bound_)
        if (key.second != kRidPasid && host_pasid(key.second) == hw_pasid) return key.second;
    return hw_pasid; // not one of the guest's: reported as seen (the guest will answer it Invalid)
}

std::optional<uint64_t> VtdViommu::inject_page_request(const GuestFault& f) {
    if (!regs_.pqa_base()) return std::nullopt; // the guest never set up its queue
    for (const uapi::HwptPgfault& q : f.requests) {
        if (regs_.prq_full()) { // §7.5.1: PRS.PRO, the request dropped (the VMM answers Success)
            send(regs_.report_prq_overflow());
            return std::nullopt;
        }
        pcie::PageRequest pr;
        pr.requester = f.vrid;
        pr.pasid_present = f.guest_pasid.has_value();
        pr.pasid = f.guest_pasid.value_or(0);
        pr.privileged = q.perm & uapi::HwptPgfault::kPermPriv;
        pr.execute = q.perm & uapi::HwptPgfault::kPermExec;
        pr.read = q.perm & uapi::HwptPgfault::kPermRead;
        pr.write = q.perm & uapi::HwptPgfault::kPermWrite;
        pr.address = q.addr;
        pr.last = q.flags & uapi::HwptPgfault::kFlagLastPage;
        pr.prg_index = static_cast<uint16_t>(q.grpid);
        const vtd::RawDesc d = vtd::encode_page_request(pr);
        write_guest(regs_.pqa_base() + regs_.pqt(), d.data(), 32);
        send(regs_.advance_pqt()); // PQT, PRS.PPR and the page request event (unless PECTL.IM)
    }
    const uapi::HwptPgfault& last = f.requests.back();
    return prq_key(f.vrid, f.guest_pasid.has_value(), f.guest_pasid.value_or(0), static_cast<uint16_t>(last.grpid));
}

void VtdViommu::send(const std::optional<vtd::Msi>& msi) {
    if (msi) write_guest(msi->address, &msi->data, 4);
}

void VtdViommu::reg_write(uint32_t offset, unsigned size, uint64_t value) {
    const uint32_t fx = regs_.write(offset, size, value);
    if (fx & vtd::VtdRegs::qi_enabled) {
        seq_ = 0;
        watch_queue(regs_.iqa_base(), regs_.iq_bytes());
    }
    if (fx & (vtd::VtdRegs::iqt_written | vtd::VtdRegs::iqe_cleared)) run_queue();
}

void VtdViommu::run_queue() {
    // QEMU's vtd_fetch_inv_desc loop: everything between IQH and IQT, in the exit.
    if (!regs_.queue_enabled() || (regs_.fsts() & vtd::bits::FSTS_IQE)) return;
    const bool wide = regs_.iq_256bit();
    const unsigned w = wide ? 32 : 16;
    const uint64_t bytes = regs_.iq_bytes();
    uint64_t head = regs_.iqh();
    const uint64_t tail = regs_.iqt() % bytes;
    while (head != tail) {
        std::array<uint64_t, 4> q{};
        try {
            vmm_.ram.read(regs_.iqa_base() + head, q.data(), w);
        } catch (const mem::AddressError&) {
            flush_pending();
            send(regs_.report_iqe(vtd::IqeReason::fetch_error));
            return;
        }
        decode(1);
        report(seq_, iommu::InvalPhase::fetched, cpu_.now());
        const vtd::DecodeResult r = vtd::decode_descriptor(q, wide, p_);
        if (!r.ok()) { // IQH stays on the bad descriptor (§6.5.2.10)
            flush_pending();
            send(regs_.report_iqe(r.error));
            return;
        }
        if (auto* pc = std::get_if<vtd::PasidCacheInv>(&r.desc)) {
            flush_pending();
            // PASID-selective: that PASID of every device (QEMU vtd_pasid_cache_sync walks them all).
            for (const auto& [vrid, dev] : vmm_.vdevices)
                if (pc->gran == vtd::PasidCacheInv::Gran::pasid) sync_device(pcie::Bdf(vrid), dev, pc->pasid);
                else sync_all(pcie::Bdf(vrid), dev);
        } else if (std::holds_alternative<vtd::ContextCacheInv>(r.desc)) {
            flush_pending();
            for (const auto& [vrid, dev] : vmm_.vdevices) sync_all(pcie::Bdf(vrid), dev);
        } else if (auto* i = std::get_if<vtd::IotlbInv>(&r.desc)) {
            invalidate(i->scope);
        } else if (std::holds_alternative<vtd::DevTlbInv>(r.desc)) {
            discarded_devtlb_.inc(); // the host synthesizes device-TLB invalidations from the IOTLB ones
        } else if (auto* wd = std::get_if<vtd::WaitDesc>(&r.desc)) {
            flush_pending(); // completes only when every earlier descriptor has (§6.5.2.8)
            if (wd->status_write) write_guest(wd->status_addr, &wd->status_data, 4);
            if (wd->interrupt) send(regs_.report_wait_complete());
            report(seq_, iommu::InvalPhase::wait_done, cpu_.now());
        } else if (auto* pg = std::get_if<vtd::PageGroupResponse>(&r.desc)) {
            const pcie::PrgResponse& pr = pg->response;
            if (!vmm_.vdevice(pr.destination)) refused_.inc();
            else guest_page_response(prq_key(pr.destination, pr.pasid_present, pr.pasid, pr.prg_index),
                                     pr.code == pcie::PrgResponseCode::success);
        } // interrupt-entry-cache invalidations: no interrupt remapping is modelled
        head = (head + w) % bytes;
        regs_.set_iqh(head);
        ++seq_;
    }
    flush_pending();
}

void VtdViommu::sync_all(pcie::Bdf vrid, const DeviceInfo& dev) {
    std::vector<uint32_t> pasids{kRidPasid};
    for (const auto& [key, h] : bound_)
        if (key.first == vrid.raw && key.second != kRidPasid) pasids.push_back(key.second);
    for (uint32_t p : pasids) sync_device(vrid, dev, p);
}

void VtdViommu::sync_device(pcie::Bdf vrid, const DeviceInfo& dev, uint32_t pasid) {
    // Re-read the guest's context entry and the PASID entry from guest memory.
    std::optional<vtd::PasidEntry> pe;
    const vtd::ContextLookup ctx = reader_.read_context(vmm_.ram, regs_.root_table(), regs_.scalable_mode(), vrid);
    unsigned reads = ctx.status.reads;
    const bool rid_pasid = ctx.status.ok() && ctx.entry.present && pasid == ctx.entry.rid_pasid;
    if (ctx.status.ok() && ctx.entry.present && (rid_pasid || (ctx.entry.paside && pasid < (1u << 20)))) {
        const vtd::PasidLookup pl = reader_.read_pasid(vmm_.ram, ctx.entry, pasid);
        reads += pl.status.reads;
        if (pl.status.ok() && pl.entry.present) pe = pl.entry;
    }
    vmm_work(vmm_.params.vmm.shadow_read * reads);
    const uint32_t key_pasid = rid_pasid || pasid == kRidPasid ? kRidPasid : pasid;
    const auto first = static_cast<uint8_t>(vtd::Pgtt::first_stage), second = static_cast<uint8_t>(vtd::Pgtt::second_stage);
    if (vmm_.params.mode == ViommuMode::nested && pe && pe->pgtt == first) {
        // One nested domain per (vDomain-ID, PASID) (threads/003); reused while its table is the same.
        const std::pair<uint16_t, uint32_t> key{pe->did, key_pasid};
        auto it = nested_.find(key);
        if (it == nested_.end() || it->second.root != pe->flptptr) {
            uapi::HwptVtdS1 data;
            data.flags = (pe->sre ? uapi::HwptVtdS1::kSre : 0) | (pe->wpe ? uapi::HwptVtdS1::kWpe : 0) |
                         (pe->eafe ? uapi::HwptVtdS1::kEafe : 0);
            data.pgtbl_addr = pe->flptptr;
            data.addr_width = pe->flpm ? 57 : 48;
            ioctl();
            const uint32_t h = vmm_.host.iommufd().hwpt_alloc_nested_vtd(vmm_.parent_hwpt, data);
            if (const uint32_t f = fault_object()) vmm_.host.iommufd().hwpt_set_fault(h, f); // HWPT_ALLOC's fault_id
            it = nested_.insert_or_assign(key, Nested{h, pe->flptptr}).first;
        }
        bind(vrid, key_pasid, dev, it->second.hwpt, std::nullopt);
    } else if (vmm_.params.mode == ViommuMode::caching_mode && pe && pe->pgtt == second && key_pasid == kRidPasid) {
        auto it = shadows_.find(pe->did);
        if (it == shadows_.end()) {
            Shadow s;
            ioctl();
            s.ioas = vmm_.host.iommufd().ioas_alloc();
            ioctl();
            s.hwpt = vmm_.host.iommufd().hwpt_alloc(s.ioas, vmm_.iommu, DomainDesc::Kind::paging_s2);
            it = shadows_.emplace(pe->did, std::move(s)).first;
        }
        Shadow& s = it->second;
        s.guest_s2.enabled = true;
        s.guest_s2.format = iommu::PtFormat::vtd_ss;
        s.guest_s2.levels = static_cast<uint8_t>(pe->aw + 2);
        s.guest_s2.input_bits = static_cast<uint8_t>(12 + 9 * s.guest_s2.levels);
        s.guest_s2.root = pe->slptptr;
        bind(vrid, kRidPasid, dev, s.hwpt, s.ioas);
    } else {
        if (pe) refused_.inc(); // a translation type this mode does not forward
        unbind(vrid, key_pasid, dev);
    }
}

void VtdViommu::invalidate(const Scope& s) {
    if (vmm_.params.mode == ViommuMode::caching_mode) {
        bool any = false;
        for (auto& [vdid, sh] : shadows_)
            if (s.kind == Scope::Kind::all || vdid == s.domain_tag) {
                any = true;
                shadow_sync(vdid, s);
            }
        if (!any && s.domain_tag != 0) refused_.inc();
        return;
    }
    // Split per (vDID, PASID): each nested domain gets its own array (threads/003).
    bool any = false;
    for (const auto& [key, n] : nested_) {
        const bool dom = s.kind == Scope::Kind::all || key.first == s.domain_tag;
        const bool as = !s.has_as || s.kind == Scope::Kind::domain || key.second == s.as_tag;
        if (!dom || !as) continue;
        any = true;
        if (pending_hwpt_ != n.hwpt) flush_pending();
        pending_hwpt_ = n.hwpt;
        uapi::VtdS1Invalidate e;
        if (s.kind == Scope::Kind::range) {
            e.addr = s.addr & ~(kPage - 1);
            e.npages = (s.addr + s.size - e.addr + kPage - 1) / kPage;
            e.flags = s.leaf_only ? uapi::VtdS1Invalidate::kFlagLeaf : 0;
        } else {
            e.addr = 0;
            e.npages = UINT64_MAX;
        }
        pending_.push_back(e);
        forwarded_.inc();
    }
    // An unknown vDomain-ID / PASID: nothing of it is cached on the host. (DID 0 is the one
    // caching mode reserves for non-present entries; flushing it is not a reference to a domain.)
    if (!any && (s.kind == Scope::Kind::all || s.domain_tag != 0)) refused_.inc();
}

void VtdViommu::flush_pending() {
    invalidate_array(pending_hwpt_, uapi::kInvalidateDataVtdS1, pending_.data(), sizeof(uapi::VtdS1Invalidate),
                     static_cast<uint32_t>(pending_.size()));
    pending_.clear();
}

std::optional<uint64_t> VtdViommu::guest_walk(const iommu::StageConfig& c, uint64_t va) {
    const iommu::PageTableFormat& f = iommu::format_of(c.format);
    uint64_t table = c.root;
    for (unsigned level = c.levels; level >= 1; --level) {
        uint64_t raw = 0;
        vmm_work(vmm_.params.vmm.shadow_read);
        try {
            vmm_.ram.read(table + 8 * iommu::PageTableFormat::index(va, c, level), &raw, 8);
        } catch (const mem::AddressError&) {
            return std::nullopt;
        }
        const iommu::Descriptor d = f.decode(raw, level, c);
        if (d.kind == iommu::Descriptor::Kind::leaf) return d.addr + (va & ((uint64_t{1} << d.page_shift) - 1));
        if (d.kind != iommu::Descriptor::Kind::table) return std::nullopt;
        table = d.addr;
    }
    return std::nullopt;
}

void VtdViommu::shadow_sync(uint16_t vdid, const Scope& s) {
    Shadow& sh = shadows_.at(vdid);
    std::vector<uint64_t> pages;
    if (s.kind == Scope::Kind::range) {
        for (uint64_t a = s.addr & ~(kPage - 1); a < s.addr + s.size; a += kPage) pages.push_back(a);
    } else {
        for (const auto& [iova, hpa] : sh.pages) pages.push_back(iova);
    }
    IommuFd& fd = vmm_.host.iommufd();
    for (uint64_t iova : pages) {
        forwarded_.inc();
        const std::optional<uint64_t> gpa = guest_walk(sh.guest_s2, iova);
        const std::optional<uint64_t> hpa = gpa ? vmm_.ram.hpa_of(*gpa & ~(kPage - 1)) : std::nullopt;
        auto cur = sh.pages.find(iova);
        if (cur != sh.pages.end() && hpa && cur->second == *hpa) continue;
        if (cur != sh.pages.end()) { // VFIO_IOMMU_UNMAP_DMA: the host flushes (IOTLB and device TLB) and waits
            const Duration start = cpu_.now();
            ioctl();
            std::vector<FlushTiming> ts;
            fd.unmap(sh.ioas, iova, kPage, &ts);
            if (Trap* t = current_trap()) add_host_call(*t, start, cpu_.now(), ts);
            sh.pages.erase(cur);
            shadow_unmaps_.inc();
        }
        if (hpa) { // VFIO_IOMMU_MAP_DMA of the guest page's host memory
            const Duration start = cpu_.now();
            ioctl();
            fd.map_user(sh.ioas, iova, *hpa, kPage);
            if (Trap* t = current_trap()) add_host_call(*t, start, cpu_.now(), {});
            sh.pages[iova] = *hpa;
            shadow_maps_.inc();
        }
    }
}

} // namespace iommusim::host::vm
