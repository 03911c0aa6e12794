// SPDX-License-Identifier: Apache-2.0
// Smmuv3Driver's nested domains and vIOMMU invalidation: what Linux's
// drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3-iommufd.c does with a vSTE
// (arm_smmu_validate_vste, arm_smmu_make_nested_domain_ste) and with the
// guest's command batches (arm_vsmmu_convert_user_cmd; shared/reference/
// spec-layouts.md E.3). The VMID of every nested domain is the nesting
// parent's; models/host/vm/smmuv3_viommu is the VMM side.
#include <algorithm>
#include <bit>

#include "models/host/host_error.hpp"
#include "models/host/smmuv3_driver.hpp"
#include "models/iommu/smmuv3/smmuv3_cmdqv.hpp"

namespace iommusim::host {

namespace sm = iommu::smmuv3;

namespace {
constexpr uint64_t mask(unsigned hi, unsigned lo) { return ((~uint64_t{0}) >> (63 - hi)) & ~((uint64_t{1} << lo) - 1); }
// The vSTE fields a guest may set (Linux STRTAB_STE_0/1_NESTING_ALLOWED, spec-layouts.md C.1).
constexpr uint64_t kAllowed0 = mask(0, 0) | mask(3, 1) | mask(5, 4) | mask(51, 6) | mask(63, 59);
constexpr uint64_t kAllowed1 = mask(1, 0) | mask(3, 2) | mask(5, 4) | mask(7, 6) | mask(27, 27);
constexpr uint64_t kEats1 = mask(29, 28);
} // namespace

std::optional<std::string> Smmuv3Driver::check_nested(uint32_t data_type, const std::array<uint64_t, 4>& e,
                                                      bool& unsupported) const {
    unsupported = false;
    if (data_type != uapi::kHwptDataArmSmmuv3) {
        unsupported = true;
        return std::string("SMMUv3 nested domains take IOMMU_HWPT_DATA_ARM_SMMUV3");
    }
    if (!(e[0] & 1)) return std::nullopt; // V = 0: an abort STE
    if ((e[0] & ~kAllowed0) || (e[1] & ~(kAllowed1 | kEats1)))
        return std::string("vSTE: a field outside those a guest may set (Config, S1Fmt, S1ContextPtr, S1CDMax, S1DSS, "
                           "S1CIR/COR/CSH, S1STALLD, EATS)");
    const auto cfg = static_cast<uint8_t>((e[0] >> 1) & 7);
    if (cfg != sm::ste_cfg::kAbort && cfg != sm::ste_cfg::kBypass && cfg != sm::ste_cfg::kS1)
        return std::string("vSTE: Config must be abort, bypass or stage-1 translate");
    if (((e[1] & kEats1) >> 28) > 1) return std::string("vSTE: EATS must be 0 or 1 (full ATS)");
    return std::nullopt;
}

sm::Ste Smmuv3Driver::make_nested_ste(const Master& m, const DomainDesc& d) {
    const sm::Ste v = sm::Ste::decode({d.guest_entry[0], d.guest_entry[1], 0, 0, 0, 0, 0, 0});
    if (!v.valid || v.config == sm::ste_cfg::kAbort) {
        sm::Ste abort;
        abort.valid = true;
        return abort;
    }
    sm::Ste s = make_s2_ste(m, d); // the parent's stage 2 and VMID (domain_tag of a nested domain)
    if (v.config == sm::ste_cfg::kBypass) return s; // guest stage 1 bypassed: GPA = IOVA
    s.config = sm::ste_cfg::kNested;
    s.s1fmt = v.s1fmt;
    s.s1_context_ptr = v.s1_context_ptr;
    s.s1cdmax = v.s1cdmax;
    s.s1dss = v.s1dss;
    s.s1cir = v.s1cir;
    s.s1cor = v.s1cor;
    s.s1csh = v.s1csh;
    s.s1stalld = v.s1stalld;
    s.eats = m.ats && v.eats == 1 ? 1 : 0;
    return s;
}

uapi::Errno Smmuv3Driver::viommu_invalidate(const ViommuRef& v, const std::vector<std::array<uint64_t, 2>>& cmds,
                                            uint32_t& done, FlushTiming& timing) {
    cpu_.spend(cpu_.params().call_overhead);
    done = 0;
    const auto vmid = static_cast<uint16_t>(domain_tag(*v.parent));
    std::vector<QueueEntry> out;
    uapi::Errno err = uapi::Errno::ok;
    unsigned tlbi = 0, atc = 0, cfgi = 0;
    for (std::array<uint64_t, 2> c : cmds) {
        const auto opcode = static_cast<uint8_t>(c[0] & 0xFF);
        switch (opcode) {
        case sm::op::kTlbiNsnhAll: // rewritten to TLBI_NH_ALL of the vIOMMU's VMID
            c[0] = sm::op::kTlbiNhAll | (uint64_t{vmid} << 32);
            c[1] = 0;
            ++tlbi;
            break;
        case sm::op::kTlbiNhVa:
        case sm::op::kTlbiNhVaa:
        case sm::op::kTlbiNhAll:
        case sm::op::kTlbiNhAsid:
            c[0] = (c[0] & ~mask(47, 32)) | (uint64_t{vmid} << 32);
            ++tlbi;
            break;
        case sm::op::kAtcInv:
        case sm::op::kCfgiCd:
        case sm::op::kCfgiCdAll: {
            const DeviceInfo* d = v.vdevice ? v.vdevice(c[0] >> 32) : nullptr;
            if (!d) {
                err = uapi::Errno::eio;
                break;
            }
            c[0] = (c[0] & mask(31, 0)) | (uint64_t{sid(*d)} << 32);
            (opcode == sm::op::kAtcInv ? atc : cfgi)++;
            break;
        }
        default: err = uapi::Errno::eio; break;
        }
        if (err != uapi::Errno::ok) break;
        out.push_back({c[0], c[1], 0, 0});
        ++done;
    }
    if (out.empty()) return err;
    tlbi_.inc(tlbi);
    atc_inv_.inc(atc);
    cfgi_.inc(cfgi);
    ranged_.inc();
    timing = queue_.submit(std::move(out)); // one batch, one CMD_SYNC (arm_smmu_cmdq_batch_submit)
    timing.ranged = true;
    return err;
}

// ---- CMDQ-Virtualization (Linux tegra241-cmdqv.c, user-space VINTFs) ----------------------------

void Smmuv3Driver::attach_cmdqv(MmioPort cmdqv, uint16_t vintfs, uint16_t queues) {
    cmdqv_.emplace(Cmdqv{cmdqv, vintfs, queues, false, {}, {}, {}});
}

std::optional<uint16_t> Smmuv3Driver::vintf(uint32_t viommu) const {
    if (!cmdqv_) return std::nullopt;
    auto it = cmdqv_->vintf.find(viommu);
    return it == cmdqv_->vintf.end() ? std::nullopt : std::optional<uint16_t>(it->second);
}

bool Smmuv3Driver::viommu_hw_alloc(uint32_t viommu, const GuestRam& ram) {
    namespace cq = iommu::smmuv3::cmdqv;
    if (!cmdqv_ || !ram.parent) return false;
    Cmdqv& c = *cmdqv_;
    cpu_.spend(cpu_.params().call_overhead);
    if (!c.reset) {
        // tegra241_cmdqv_hw_reset: CMDQV_EN, then every global VCMDQ pre-assigned to (VINTF, LVCMDQ)
        // in order, not yet allocated. (VINTF0 stays the host's; its queues are not used here.)
        c.mmio.write32(cq::kConfig, cq::kEn);
        const uint16_t per = static_cast<uint16_t>(c.queues / c.vintfs);
        for (uint16_t q = 0; q < c.queues; ++q) c.mmio.write32(cq::cmdq_alloc(q), cq::alloc_value(q / per, q % per, false));
        c.reset = true;
    }
    // tegra241_cmdqv_init_vintf: the lowest free VINTF above VINTF0 (ida_alloc_max).
    uint16_t idx = 1;
    while (idx < c.vintfs && std::any_of(c.vintf.begin(), c.vintf.end(), [idx](const auto& e) { return e.second == idx; }))
        ++idx;
    if (idx >= c.vintfs) return false; // "no more available vintf"
    // tegra241_vintf_hw_init(vintf, false): reset (CONFIG 0, every SID pair 0), CONFIG = VMID of the
    // nesting parent (arm_vsmmu_init: vsmmu->vmid = s2_parent's), then EN, polled in STATUS.
    const auto vmid = static_cast<uint16_t>(domain_tag(*ram.parent));
    const uint32_t base = cq::vintf(idx);
    const uint32_t sids = 1u << ((c.mmio.read32(cq::kParam) >> 12) & 0xF); // num_sids_per_vintf
    c.mmio.write32(base + cq::kVintfConfig, 0);
    for (uint32_t s = 0; s < sids; ++s) {
        c.mmio.write32(base + cq::sid_match(s), 0);
        c.mmio.write32(base + cq::sid_replace(s), 0);
    }
    c.mmio.write32(base + cq::kVintfConfig, cq::vintf_config(vmid, false, false));
    c.mmio.write32(base + cq::kVintfConfig, cq::vintf_config(vmid, false, true));
    while (!(c.mmio.read32(base + cq::kVintfStatus) & 1)) cpu_.spend(cpu_.params().poll_interval);
    c.vintf[viommu] = idx;
    c.sids[idx].assign(sids, std::nullopt);
    c.lvcmdqs[idx] = 0;
    return true;
}

void Smmuv3Driver::viommu_hw_vdevice(uint32_t viommu, uint64_t virt_id, const DeviceInfo& dev) {
    // tegra241_vintf_init_vsid: a free SID_MATCH / SID_REPLACE pair, pSID then vSID << 1 | 1.
    namespace cq = iommu::smmuv3::cmdqv;
    const std::optional<uint16_t> idx = vintf(viommu);
    if (!idx || virt_id > UINT32_MAX) return;
    std::vector<std::optional<uint64_t>>& used = cmdqv_->sids[*idx];
    auto slot = std::find(used.begin(), used.end(), std::nullopt);
    if (slot == used.end()) throw HostError(HostError::Kind::busy, "VINTF " + std::to_string(*idx) + ": no free SID_MATCH pair");
    *slot = virt_id;
    const auto s = static_cast<uint32_t>(slot - used.begin());
    cmdqv_->mmio.write32(cq::vintf(*idx) + cq::sid_replace(s), sid(dev));
    cmdqv_->mmio.write32(cq::vintf(*idx) + cq::sid_match(s), cq::sid_match_value(static_cast<uint32_t>(virt_id)));
}

uapi::Errno Smmuv3Driver::hw_queue_alloc(uint32_t viommu, uint64_t base, uint64_t bytes) {
    // tegra241_vintf_alloc_lvcmdq_user: the next LVCMDQ (they are mapped in ascending order), a
    // power-of-two length of 32 bytes up to 2^(IDR1.CMDQS) commands, the base aligned to it; the
    // pre-assigned global VCMDQ mapped (CMDQ_ALLOC.ALLOCATED), then BASE; the VMM enables it.
    namespace cq = iommu::smmuv3::cmdqv;
    const std::optional<uint16_t> idx = vintf(viommu);
    if (!idx) return uapi::Errno::eopnotsupp;
    const uint16_t per = static_cast<uint16_t>(cmdqv_->queues / cmdqv_->vintfs);
    uint16_t& lidx = cmdqv_->lvcmdqs[*idx];
    if (lidx >= per) return uapi::Errno::einval;
    if (!std::has_single_bit(bytes) || bytes < 32 || bytes > (uint64_t{16} << f_->cmdqs) || (base & (bytes - 1)) ||
        (base & ~uint64_t{0x0000FFFFFFFFFFE0}))
        return uapi::Errno::einval;
    const uint16_t q = static_cast<uint16_t>(*idx * per + lidx);
    const uint32_t a = cmdqv_->mmio.read32(cq::cmdq_alloc(q));
    cmdqv_->mmio.write32(cq::cmdq_alloc(q), a | cq::kAllocated);
    cmdqv_->mmio.write64(cq::vintf_page1(*idx) + cq::kQueueStride * lidx + cq::kBase,
                         cq::base_value(base, static_cast<unsigned>(std::countr_zero(bytes)) - 4));
    ++lidx;
    return uapi::Errno::ok;
}

void Smmuv3Driver::viommu_hw_vdevice_free(uint32_t viommu, uint64_t virt_id) {
    // tegra241_vintf_destroy_vsid: both registers of the pair 0, the pair free.
    namespace cq = iommu::smmuv3::cmdqv;
    const std::optional<uint16_t> idx = vintf(viommu);
    if (!idx) return;
    std::vector<std::optional<uint64_t>>& used = cmdqv_->sids[*idx];
    auto slot = std::find(used.begin(), used.end(), std::optional<uint64_t>(virt_id));
    if (slot == used.end()) return;
    const auto s = static_cast<uint32_t>(slot - used.begin());
    cmdqv_->mmio.write32(cq::vintf(*idx) + cq::sid_match(s), 0);
    cmdqv_->mmio.write32(cq::vintf(*idx) + cq::sid_replace(s), 0);
    *slot = std::nullopt;
}

void Smmuv3Driver::viommu_hw_free(uint32_t viommu) {
    // tegra241_cmdqv_destroy_vintf_user -> tegra241_vintf_hw_deinit: each LVCMDQ in descending order
    // disabled, its pointers and base cleared, a pending error acknowledged, then unmapped; a
    // CMD_SYNC on the SMMU's CMDQ flushes a time-out the guest left (tegra241_vcmdq_hw_flush_timeout);
    // the VINTF disabled, every SID pair cleared, its index free again.
    namespace cq = iommu::smmuv3::cmdqv;
    const std::optional<uint16_t> idx = vintf(viommu);
    if (!idx) return;
    MmioPort& m = cmdqv_->mmio;
    const uint16_t per = static_cast<uint16_t>(cmdqv_->queues / cmdqv_->vintfs);
    for (uint16_t l = cmdqv_->lvcmdqs[*idx]; l-- > 0;) {
        const uint32_t p0 = cq::vintf_page0(*idx) + cq::kQueueStride * l, p1 = cq::vintf_page1(*idx) + cq::kQueueStride * l;
        m.write32(p0 + cq::kQConfig, 0);
        while (m.read32(p0 + cq::kQStatus) & 1) cpu_.spend(cpu_.params().poll_interval);
        if (!params_.skip_sync) issue_sync({});
        m.write32(p0 + cq::kProd, 0);
        m.write32(p0 + cq::kCons, 0);
        m.write64(p1 + cq::kBase, 0);
        m.write64(p1 + cq::kConsIndxBase, 0);
        const uint32_t gerror = m.read32(p0 + cq::kGerror);
        if (gerror != m.read32(p0 + cq::kGerrorN)) m.write32(p0 + cq::kGerrorN, gerror);
        const uint16_t q = static_cast<uint16_t>(*idx * per + l);
        m.write32(cq::cmdq_alloc(q), m.read32(cq::cmdq_alloc(q)) & ~cq::kAllocated);
    }
    m.write32(cq::vintf(*idx) + cq::kVintfConfig, 0);
    for (uint32_t s = 0; s < cmdqv_->sids[*idx].size(); ++s) {
        m.write32(cq::vintf(*idx) + cq::sid_match(s), 0);
        m.write32(cq::vintf(*idx) + cq::sid_replace(s), 0);
    }
    cmdqv_->sids.erase(*idx);
    cmdqv_->lvcmdqs.erase(*idx);
    cmdqv_->vintf.erase(viommu);
}

} // namespace iommusim::host
