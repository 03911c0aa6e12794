// SPDX-License-Identifier: Apache-2.0
#pragma once
// The family-neutral seam between the host's object model (IOAS, HW page
// tables, attachments: iommufd-like) and one IOMMU family's driver backend,
// which programs that family's real in-memory structures and queues.
// Backends: VT-d now; AMD-Vi and SMMUv3 implement the same interface.
//
// What the object model asks a backend (models/host/README.md "The driver
// seam" has the walk-through for a new family):
//   caps()               what the unit can do, read from its ID registers at enable();
//   paging_format(k, l)  the page-table format, levels, aperture and page sizes of a
//                        new paging domain of kind k (the backend chooses; IommuFd
//                        only builds the tables it is told to);
//   domain_tag(d)        the tag the unit's caches carry for domain d (VT-d DID, AMD
//                        DomainID, SMMUv3 ASID/VMID), allocated by the backend;
//   release_domain_tag(d) the tag may be reused (IommuFd flushed and waited first);
//   attach/detach/flush  program the structures, invalidate and wait;
//   enable_page_requests / serve_page_requests   the unit's page-request log (PRI);
//   invalidation_observer()  where the unit reports invalidation phases.
#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/common/time.hpp"
#include "models/host/iommufd_uapi.hpp"
#include "models/iommu/common/inval_observer.hpp"
#include "models/iommu/common/translation.hpp"
#include "models/pcie/tlp.hpp"

namespace iommusim::host {

class PageRequestHandler;
struct PageRequestInfo;
struct PageRequestStats;

/// What the host knows about a device's PCIe capabilities.
struct DeviceInfo {
    pcie::Bdf rid;
    /// An SR-IOV VF's physical function (Linux pci_physfn); unset for a PF. VT-d device-TLB
    /// invalidations carry it as PFSID (info->pfsid = pci_dev_id(pci_physfn(dev))).
    std::optional<pcie::Bdf> pf = std::nullopt;
    bool ats = false;
    bool pasid = false;
    uint8_t pasid_bits = 20;
    bool pri = false;
    uint8_t inv_queue_depth = 32; ///< ATS Invalidate Queue Depth (0 in the capability means 32)
    /// Firmware says the device tolerates stalled transactions (device tree "dma-can-stall",
    /// IORT named component): an SMMUv3 with stall support holds its faulting transactions
    /// until software resumes them (Linux arm_smmu_master.stall_enabled).
    bool can_stall = false;
    /// Firmware says the device's root complex keeps its accesses coherent whatever their
    /// attributes (IORT CANWBS; Linux IOMMU_FWSPEC_PCI_RC_CANWBS).
    bool canwbs = false;
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
    uint32_t cpu_asid = 0;  ///< SVA: the CPU's address-space ID of the process (Arm ASID), 0 = none
    /// Nested domains allocated on a vIOMMU (AMD-Vi, SMMUv3): the vIOMMU's id, the nesting
    /// parent's id and the guest's own entry as IOMMU_HWPT_ALLOC data carries it (AMD: the
    /// guest DTE, 4 qwords; SMMUv3: the vSTE, dwords 0-1). The backend builds the unit's
    /// entry from it and from the parent (drivers/iommu/amd/nested.c, arm-smmu-v3-iommufd.c).
    uint32_t viommu = 0;
    uint32_t parent = 0;
    std::array<uint64_t, 4> guest_entry{};
    /// Enforces cache coherency: requests through it are snooped even with No-Snoop set
    /// (Linux iommu_domain force_snooping; VT-d PGSNP in the PASID entry and SNP in
    /// second-stage leaves, AMD-Vi PTE.FC). Decided by the backend at allocation.
    bool force_snoop = false;
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
    bool error = false;         ///< the queue reported an error (VT-d IQE/ITE); the flush did not complete cleanly
};

/// Bit n set: pages (leaves) of 2^n bytes.
using PageSizeMask = uint64_t;
constexpr PageSizeMask page_size_bit(unsigned shift) { return PageSizeMask{1} << shift; }

/// One translation stage of a unit.
struct StageCaps {
    bool supported = false;
    std::vector<iommu::PtFormat> formats; ///< formats this stage walks, the backend's preferred first
    uint8_t levels = 0;                   ///< bit n set: n-level tables (VT-d SAGAW / FL5LP, AMD paging mode, Arm granule+T0SZ)
    PageSizeMask page_sizes = 0;          ///< leaf sizes (VT-d SLLPS / FL1GP, AMD PageSizes, Arm granule blocks)
    uint8_t input_bits = 0;               ///< widest input address (VT-d MGAW, Arm VAS/IAS)
    bool has_format(iommu::PtFormat f) const { return std::find(formats.begin(), formats.end(), f) != formats.end(); }
    bool has_levels(unsigned n) const { return n < 8 && ((levels >> n) & 1); }
};

/// What a unit can do, as its driver read it from the unit's ID registers
/// (VT-d CAP/ECAP, AMD EFR, SMMUv3 IDR0-5). Valid once enable() returned.
struct IommuCaps {
    StageCaps s1, s2;
    uint8_t pasid_bits = 0;      ///< PASID / SubstreamID width; 0 = no PASID support
    bool ats = false;            ///< device-TLB invalidation (VT-d ECAP.DT, AMD IOTLBSup, SMMUv3 IDR0.ATS)
    bool pri = false;            ///< page requests (VT-d ECAP.PRS, AMD PPRSup, SMMUv3 IDR0.PRI)
    bool stall = false;          ///< faulting transactions can stall until software resumes them (SMMUv3 IDR0.STALL_MODEL)
    bool nesting = false;        ///< both stages at once (VT-d ECAP.NEST, SMMUv3 S1P+S2P, AMD GTSup)
    /// Page-table walks snoop the CPU caches (VT-d scalable mode ECAP.SMPWC, SMMUv3 IDR0.COHACC;
    /// AMD-Vi walks are coherent); false: every written table line is flushed (clflush).
    bool coherent_walks = true;
    bool snoop_control = false;  ///< can force snooping / enforce cache coherency (VT-d ECAP.SC, SMMUv3 coherent walks + override)
    bool pass_through = false;   ///< identity domains without tables (VT-d ECAP.PT, SMMUv3 bypass STE)
    uint8_t output_bits = 0;     ///< physical address width (VT-d HAW unknown to software: MGAW; SMMUv3 OAS)
    uint32_t domain_tags = 0;    ///< how many domain tags software may use (VT-d 2^(4+2*ND), AMD 2^16, SMMUv3 VMIDs)
};

/// The backend's choice for a new paging domain: the tables' format and
/// geometry, the IOVA window the domain translates and the leaf sizes `map` may use.
struct PagingFormat {
    iommu::StageConfig stage;   ///< enabled, format, levels, input_bits, max_leaf_level (root filled in by IommuFd)
    uint64_t aperture_base = 0; ///< [base, limit) of IOVAs the domain can translate
    uint64_t aperture_limit = 0;
    PageSizeMask page_sizes = 0;
};

class IommuDriver {
public:
    virtual ~IommuDriver() = default;
    /// Programs the unit (root tables, queue, translation enable) and reads its capabilities. SC_THREAD only.
    virtual void enable() = 0;
    /// Capabilities read at enable(). Error (logic_error) before enable().
    virtual const IommuCaps& caps() const = 0;
    /// Format of a new paging domain (`kind` paging_s1 or paging_s2; `levels`
    /// nullopt = the backend's default). HostError invalid when the unit cannot.
    virtual PagingFormat paging_format(DomainDesc::Kind kind, std::optional<uint8_t> levels) const = 0;
    /// The tag the unit's caches carry for `domain`, allocated on first use.
    /// HostError no_space when the unit's tag space (caps().domain_tags) is exhausted.
    virtual uint32_t domain_tag(const DomainDesc& domain) = 0;
    /// Whether the backend can make `domain` enforce cache coherency (Linux
    /// iommu_domain_ops::enforce_cache_coherency, which iommufd asks for every paging
    /// domain); the backend then programs domain.force_snoop. Default: it cannot.
    /// iommufd at attach (iommufd_hwpt_paging_enforce_cc): a device that can have coherency
    /// enforced (IOMMU_CAP_ENFORCE_CACHE_COHERENCY) asks its domain to enforce it. nullopt: the
    /// device cannot (nothing is asked); false: the domain cannot (iommufd refuses the attach);
    /// true: it now does. Default: the allocation decided (nothing asked at attach).
    virtual std::optional<bool> enforce_coherency_for(const DomainDesc& /*domain*/, const DeviceInfo& /*device*/) const {
        return std::nullopt;
    }
    virtual bool enforce_cache_coherency(const DomainDesc& domain) const {
        (void)domain;
        return false;
    }
    /// The domain is gone and the unit holds nothing under its tag any more (the caller
    /// flushed the whole domain and waited): the tag may go to another domain. No-op for a
    /// domain that never got a tag of its own.
    virtual void release_domain_tag(const DomainDesc& domain) = 0;
    /// Makes (device, pasid) translate through `domain`.
    virtual void attach(const Attachment& a, const DomainDesc& domain) = 0;
    /// Architected teardown (clear entry, flush its caches and the device TLB, wait).
    virtual FlushTiming detach(const Attachment& a, const DomainDesc& domain) = 0;
    /// Invalidates and waits until the unit reports completion.
    virtual FlushTiming flush(const FlushRequest& r) = 0;
    /// New leaves were written into `domain` (non-present -> present). Only a unit that
    /// caches non-present entries needs a flush here (VT-d CAP.CM: Linux
    /// intel_iommu_iotlb_sync_map); the default does nothing.
    virtual void mapped(const DomainDesc& /*domain*/, const std::vector<Attachment>& /*attachments*/, uint64_t /*iova*/,
                        uint64_t /*size*/) {}
    // ---- vIOMMU (iommufd IOMMU_VIOMMU_ALLOC; models/host/vm) ----
    /// Checks a nested domain's guest entry (IOMMU_HWPT_ALLOC data of type `data_type` on a
    /// vIOMMU); a message when the backend refuses it (EINVAL / EOPNOTSUPP as `unsupported`).
    /// Default: the unit has no vIOMMU nesting.
    virtual std::optional<std::string> check_nested(uint32_t data_type, const std::array<uint64_t, 4>& entry,
                                                    bool& unsupported) const {
        (void)data_type, (void)entry;
        unsupported = true;
        return std::string("this IOMMU has no vIOMMU-based nested domains");
    }
    /// The IOMMU_VIOMMU_INVALIDATE data type the backend takes (nullopt: none).
    virtual std::optional<uint32_t> viommu_invalidate_type() const { return std::nullopt; }
    /// A vIOMMU's invalidation array (one raw 128-bit guest command per entry): the backend
    /// translates the guest's IDs (`vdevice`: virtual ID -> physical device, nullptr when
    /// unknown; the parent's tag), issues what it translated in order with one wait, and
    /// stops at the first entry it cannot take: `done` = entries that took effect.
    struct ViommuRef {
        uint32_t id = 0;
        const DomainDesc* parent = nullptr;
        std::function<const DeviceInfo*(uint64_t virt_id)> vdevice;
    };
    virtual uapi::Errno viommu_invalidate(const ViommuRef& v, const std::vector<std::array<uint64_t, 2>>& cmds,
                                          uint32_t& done, FlushTiming& timing) {
        (void)v, (void)cmds, (void)timing;
        done = 0;
        return uapi::Errno::eopnotsupp;
    }
    // ---- hardware-accelerated vIOMMU (threads/003: guest queues the unit executes without a trap) ----
    /// Guest RAM [gpa, gpa + bytes) at host `hpa`: how the unit reaches the guest's memory.
    struct GuestRam {
        uint64_t gpa = 0, hpa = 0, bytes = 0;
        const DomainDesc* parent = nullptr; ///< the nesting parent (SMMUv3: its VMID is the VINTF's)
    };
    /// Binds vIOMMU `viommu` to a guest context of the unit (AMD GuestID, SMMUv3 CMDQV VINTF); false when the unit
    /// has no hardware vIOMMU or no free context (the vIOMMU then stays software-only).
    virtual bool viommu_hw_alloc(uint32_t viommu, const GuestRam& ram) {
        (void)viommu, (void)ram;
        return false;
    }
    /// A vDEVICE of a hardware vIOMMU: the unit's map takes the guest's `virt_id` to `dev`.
    virtual void viommu_hw_vdevice(uint32_t viommu, uint64_t virt_id, const DeviceInfo& dev) {
        (void)viommu, (void)virt_id, (void)dev;
    }
    /// IOMMU_HW_QUEUE_ALLOC: the guest's command queue at host PA `base`, `bytes` long (EINVAL:
    /// size or alignment the unit cannot take; EOPNOTSUPP: no hardware vIOMMU).
    virtual uapi::Errno hw_queue_alloc(uint32_t viommu, uint64_t base, uint64_t bytes) {
        (void)viommu, (void)base, (void)bytes;
        return uapi::Errno::eopnotsupp;
    }
    /// IOMMU_DESTROY of a vDEVICE of a hardware vIOMMU: the unit's map entry for `virt_id` is cleared.
    virtual void viommu_hw_vdevice_free(uint32_t viommu, uint64_t virt_id) { (void)viommu, (void)virt_id; }
    /// IOMMU_DESTROY of a hardware vIOMMU (no vDEVICE or nested domain left): its guest context of
    /// the unit (AMD GuestID, SMMUv3 VINTF and its queues) is reset and free for another vIOMMU.
    virtual void viommu_hw_free(uint32_t viommu) { (void)viommu; }
    /// The guest enabled or disabled its hardware queue (the VMM relays the guest's control write).
    virtual void hw_queue_enable(uint32_t viommu, bool on) { (void)viommu, (void)on; }
    /// Sets up the unit's page-request log (VT-d page request queue, AMD PPR
    /// log, SMMUv3 PRIQ). Called after enable() when caps().pri and a PRI
    /// device sits behind the unit. SC_THREAD only.
    virtual void enable_page_requests() = 0;
    /// The body of the thread that services the page-request log: reads each
    /// record from memory, resolves it through `handler` and answers each
    /// page request group through the unit's command queue. Never returns.
    [[noreturn]] virtual void serve_page_requests(PageRequestHandler& handler, PageRequestStats& st) = 0;
    /// The body of the unit's IRQ thread where no page-request handler runs (called at boot,
    /// after enable(), for a unit without page-request log): services the unit's other logs from
    /// their interrupt and never returns. Empty: the unit needs no such thread (AMD-Vi: the event
    /// log, amd_iommu_int_thread; VT-d and SMMUv3 units have none here).
    virtual std::function<void()> irq_thread() { return {}; }
    /// The page response for a group user space answered (iommufd fault queue ->
    /// iopf_group_response -> ops->page_response): `last` is the group's last request as the
    /// driver decoded it. Sent through the unit's queue and waited for as the family's own
    /// response is. Default: the unit has no page requests (logic_error).
    virtual void page_response(const PageRequestInfo& last, pcie::PrgResponseCode code) {
        (void)last, (void)code;
        throw std::logic_error("page_response: this IOMMU driver has no page requests");
    }
    /// Where the unit reports the phases of the commands this driver queued.
    virtual iommu::InvalidationObserver& invalidation_observer() = 0;
};

} // namespace iommusim::host
