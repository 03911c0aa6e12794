// SPDX-License-Identifier: Apache-2.0
// Smmuv3Driver's nested domains and vIOMMU invalidation: what Linux's
// drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3-iommufd.c does with a vSTE
// (arm_smmu_validate_vste, arm_smmu_make_nested_domain_ste) and with the
// guest's command batches (arm_vsmmu_convert_user_cmd; shared/reference/
// spec-layouts.md E.3). The VMID of every nested domain is the nesting
// parent's; models/host/vm/smmuv3_viommu is the VMM side.
#include "models/host/host_error.hpp"
#include "models/host/smmuv3_driver.hpp"

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

} // namespace iommusim::host
