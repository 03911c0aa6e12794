// SPDX-License-Identifier: Apache-2.0
#pragma once
// Who may attach what: the checks a user-facing attach (iommufd / VFIO on
// behalf of a process or a VM) makes before the IOMMU is programmed.
//
// - PASIDs (shared/reference/threads 000, 002): a PASID may be attached
//   only if it was allocated, and only by the owner of the PASID set it
//   was allocated in (another owner's PASID: not_owner; a PASID nobody
//   allocated: not_found). A set-private ID (a guest PASID) is translated
//   to its host PASID through the caller's set. An SVA bind allocates a
//   hidden PASID in the caller's set (the user never names it, its quota
//   still pays). Freeing a PASID that is still attached tears it down
//   first, each attachment in the architected order (IommuFd::detach:
//   clear the PASID entry, flush PASID cache / IOTLB / device TLB, drain
//   page requests), then returns it to the set: the IOASID series frees
//   through a notifier the IOMMU driver subscribes to, which unbinds the
//   PASID before it can be reused.
// - IOMMU groups (thread 004; VFIO group viability): the functions of one
//   group are not isolated from each other, so they belong to one owner
//   (another owner: busy, as iommu_device_claim_dma_owner refuses a group
//   claimed with another owner cookie) and, for requests without PASID, to
//   one domain (another domain: invalid, as iommufd refuses a second HWPT
//   for a group). Not modelled: the one default domain a group's kernel
//   drivers share in Linux; each kernel driver here keeps its own domain.
//
// - The isolation checker (beside the DMA safety oracle): a platform marks
//   regions of device BARs as owned (a host driver's migration region on a
//   function assigned to a user, thread 004). Every access that reaches a
//   device BAR (a peer's through the fabric, or a function's to its own BAR,
//   which no IOMMU sees) is checked: the requester's owner is the owner of its
//   IOMMU group (the kernel while nothing is attached through here); an
//   access to a region owned by someone else is an isolation violation.
//
// Kernel drivers (the NIC and NVMe models) attach through here too, as the
// owner `kernel`: a bound kernel driver holds its device's group for the DMA
// API (iommu_device_use_default_domain), so a user's claim of that group is
// busy until the driver lets go; their PASIDs come from the allocator (the
// kernel's set for DMA-API PASIDs; an SVA bind's hidden PASID from the
// process's set while the group stays the kernel driver's, as
// iommu_sva_bind_device leaves group ownership alone).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "models/common/stats.hpp"
#include "models/host/iommufd.hpp"
#include "models/host/pasid_allocator.hpp"

namespace iommusim::host {

class Isolation {
public:
    /// The owner of attaches that name none: the host kernel.
    static constexpr const char* kKernel = "kernel";

    Isolation(IommuFd& fd, PasidAllocator& pasids, stats::Group* parent);

    /// Declares the IOMMU group of a device behind IOMMU `iommu` (from the topology); `label`
    /// names the group in messages. A device never declared is a group of its own.
    void set_group(unsigned iommu, pcie::Bdf rid, int group, const std::string& label);

    /// Attaches (rid, pasid) to `hwpt` on behalf of `owner`. Errors: not_found (PASID never
    /// allocated), not_owner (another owner's PASID), busy (the device's IOMMU group belongs to
    /// another owner), invalid (another function of the group is attached without PASID to
    /// another domain), and IommuFd::attach's own. `group_owner` (empty = `owner`) holds the
    /// group when it differs from the PASID's owner: a kernel driver attaching a process's PASID.
    void attach(const std::string& owner, unsigned iommu, pcie::Bdf rid, std::optional<uint32_t> pasid, uint32_t hwpt,
                const std::string& group_owner = {});
    /// Detaches (architected teardown); the group is free again once its last attachment is gone.
    void detach(unsigned iommu, pcie::Bdf rid, std::optional<uint32_t> pasid);
    /// SVA bind: allocates a hidden PASID in the owner's set (quota charged) and attaches it
    /// to the SVA domain `hwpt`. Returns the PASID. On any error nothing stays allocated.
    /// `host_value` asks for exactly that PASID (busy if taken); `group_owner` as for attach.
    uint32_t bind_sva(const std::string& owner, unsigned iommu, pcie::Bdf rid, uint32_t hwpt,
                      std::optional<uint32_t> host_value = std::nullopt, const std::string& group_owner = {});
    /// Frees a PASID of the owner's set, tearing down its attachments first (see above).
    void free_pasid(const std::string& owner, uint32_t host_pasid);
    /// The host PASID of the owner's set-private ID `private_id`. Error: not_found.
    uint32_t host_pasid(const std::string& owner, uint32_t private_id) const;

    /// Marks [base, base + size) (a device BAR range behind IOMMU `iommu`) as owned by `owner`.
    void add_owned_region(unsigned iommu, uint64_t base, uint64_t size, const std::string& owner, const std::string& label);
    /// Checks one access that reached a device BAR (TrafficEndpoint's BAR observer).
    void check_bar_access(unsigned iommu, const pcie::DmaRecord& r);
    struct Violation {
        uint64_t at_ps;
        pcie::Bdf requester;
        std::string requester_owner;
        uint64_t addr;
        std::string region, region_owner;
    };
    /// The first kMaxViolations isolation violations (the counter counts all).
    const std::vector<Violation>& violations() const { return violations_; }
    static constexpr size_t kMaxViolations = 1000;

    /// The owner of a group right now, if any function of it is attached through here.
    std::optional<std::string> group_owner(unsigned iommu, int group) const;

private:
    struct GroupState {
        std::string label;
        std::string owner;                 ///< empty while nothing is attached
        unsigned attachments = 0;
        std::optional<uint32_t> rid_hwpt;  ///< domain of the group's requests without PASID
        unsigned rid_attachments = 0;
    };
    struct Record {
        unsigned iommu;
        pcie::Bdf rid;
        std::optional<uint32_t> pasid;
        uint64_t group;
    };
    uint64_t group_key(unsigned iommu, pcie::Bdf rid);
    static uint64_t record_key(unsigned iommu, pcie::Bdf rid, std::optional<uint32_t> pasid) {
        return uint64_t{iommu} << 48 | uint64_t{rid.raw} << 32 | (pasid ? (uint64_t{1} << 31 | *pasid) : 0);
    }

    IommuFd& fd_;
    PasidAllocator& pasids_;
    std::map<uint64_t, uint64_t> device_group_; ///< iommu << 16 | rid -> group key
    std::map<uint64_t, GroupState> groups_;     ///< iommu << 32 | group -> state
    std::map<uint64_t, Record> records_; ///< record_key -> attachment made through here
    struct Region {
        unsigned iommu;
        uint64_t base, size;
        std::string owner, label;
    };
    std::vector<Region> regions_;
    std::vector<Violation> violations_;
    stats::Group stats_;
    stats::Counter& pasid_refusals_;
    stats::Counter& group_refusals_;
    stats::Counter& hidden_pasids_;
    stats::Counter& teardowns_;
    stats::Counter& bar_checked_;
    stats::Counter& isolation_violations_;
};

} // namespace iommusim::host
