// SPDX-License-Identifier: Apache-2.0
#pragma once
// The family-neutral seam between the host's object model (IOAS, HW page
// tables, attachments: iommufd-like) and one IOMMU family's driver backend,
// which programs that family's real in-memory structures and queues.
// Backends: VT-d now; AMD-Vi and SMMUv3 implement the same interface.
#include <cstdint>
#include <optional>
#include <vector>

#include "models/common/time.hpp"
#include "models/iommu/common/translation.hpp"
#include "models/pcie/tlp.hpp"

namespace iommusim::host {

/// What the host knows about a device's PCIe capabilities.
struct DeviceInfo {
    pcie::Bdf rid;
    bool ats = false;
    bool pasid = false;
    uint8_t pasid_bits = 20;
    bool pri = false;
    uint8_t inv_queue_depth = 32; ///< ATS Invalidate Queue Depth (0 in the capability means 32)
};

/// A hardware page table (domain) as the backend programs it.
struct DomainDesc {
    enum class Kind : uint8_t {
        paging_s1,  ///< first-stage paging domain (x86 / Arm stage-1 format)
        paging_s2,  ///< second-stage paging domain
        sva,        ///< shares a CPU process's page tables (first stage)
        nested,     ///< guest stage 1 over a host stage 2
        identity,   ///< pass-through
    };
    uint32_t id = 0;        ///< host-wide object id
    Kind kind = Kind::paging_s1;
    iommu::StageConfig s1;  ///< root etc. filled in by the owner of the tables
    iommu::StageConfig s2;
};

/// One device (and PASID) attached to a domain, as invalidations need it.
struct Attachment {
    DeviceInfo device;
    std::optional<uint32_t> pasid; ///< nullopt = requests without PASID
};

/// A cache flush the object model asks for: a range of a domain (size 0 =
/// the whole domain), for every attachment listed.
struct FlushRequest {
    const DomainDesc* domain = nullptr;
    uint64_t iova = 0;
    uint64_t size = 0;
    bool leaf_only = true;              ///< only leaf entries changed (unmap): walk caches may stay
    std::vector<Attachment> attachments;
};

/// Phase timestamps of one flush (DESIGN.md "Invalidation"; absent phases are nullopt).
struct FlushTiming {
    Duration submitted, observed;
    std::optional<Duration> fetched, caches_done, devtlb_sent, devtlb_done, wait_done;
    unsigned descriptors = 0;
    unsigned devtlb_requests = 0;
    bool ranged = false;        ///< a page-selective flush (false: fell back to domain-wide)
    bool error = false;         ///< the queue reported IQE/ITE; the flush did not complete cleanly
};

class IommuDriver {
public:
    virtual ~IommuDriver() = default;
    /// Programs the unit (root tables, queue, translation enable). SC_THREAD only.
    virtual void enable() = 0;
    /// Makes (device, pasid) translate through `domain`.
    virtual void attach(const Attachment& a, const DomainDesc& domain) = 0;
    /// Architected teardown (clear entry, flush its caches and the device TLB, wait).
    virtual FlushTiming detach(const Attachment& a, const DomainDesc& domain) = 0;
    /// Invalidates and waits until the unit reports completion.
    virtual FlushTiming flush(const FlushRequest& r) = 0;
};

} // namespace iommusim::host
