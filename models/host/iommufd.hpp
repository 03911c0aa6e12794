// SPDX-License-Identifier: Apache-2.0
#pragma once
// The host's IOMMU object model, after Linux iommufd: IOAS (an IOVA space
// with map/unmap), HW page tables (paging domains built from an IOAS; SVA
// domains sharing a process's CPU page table), device attachment by RID or
// RID + PASID, and invalidation under a flush policy (strict: invalidate and
// wait on every unmap; lazy: a flush queue). Every page table is a real
// table in simulated memory (iommu::TableBuilder) and every invalidation
// goes through the family's driver backend to the IOMMU's queue. The DMA
// safety oracle is told each map, unmap and completed invalidation.
//
// The backend, not this object model, decides the format of a paging
// domain (IommuDriver::paging_format: table format, levels, aperture, leaf
// sizes); map() accepts a page size only if every domain of the IOAS can
// map it. Several IOMMUs may each sit in their own PCIe segment: devices are
// known by (IOMMU, RID), attachments by (IOMMU, RID, PASID), and the oracle
// by (segment, RID, PASID).
//
// Cache coherency: every paging domain asks its backend whether it can
// enforce coherency (Linux iommufd calls enforce_cache_coherency for each);
// such a domain snoops No-Snoop requests (DomainDesc::force_snoop) and its
// leaves carry the family's snoop bit. `noncoherent_domains` counts the
// attached domains that do not (thread 001: KVM then emulates WBINVD).
//
// Guest fault delivery (iommufd_fault.cpp): a nested HWPT may name a fault
// queue; its I/O page faults then go to user space (the VMM) as whole groups
// and are answered from there (fault_respond -> IommuDriver::page_response);
// a vIOMMU's vEVENTQ carries its devices' other events with virtual IDs.
//
// All calls that cost time must come from an SC_THREAD (a host thread).
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "models/common/stats.hpp"
#include "models/host/dma_oracle.hpp"
#include "models/host/flush_queue.hpp"
#include "models/host/host_lock.hpp"
#include "models/host/iova_rcache.hpp"
#include "models/host/host_cpu.hpp"
#include "models/host/inval_log.hpp"
#include "models/host/iommu_driver.hpp"
#include "models/host/iommufd_uapi.hpp"
#include "models/host/iova_allocator.hpp"
#include "models/host/page_requests.hpp"
#include "models/iommu/common/table_builder.hpp"

namespace iommusim::host {

/// Where the host keeps its page tables and DMA buffers in physical memory.
struct HostMemoryLayout {
    static constexpr uint64_t kDefaultTableBase = uint64_t{1} << 30;  // 1 GiB
    static constexpr uint64_t kDefaultTableBytes = uint64_t{1} << 30;
    static constexpr uint64_t kDefaultDataBase = uint64_t{2} << 30;   // 2 GiB
    static constexpr uint64_t kDefaultDataBytes = uint64_t{8} << 30;
    uint64_t table_base = kDefaultTableBase, table_bytes = kDefaultTableBytes;
    uint64_t data_base = kDefaultDataBase, data_bytes = kDefaultDataBytes;
    /// IOVA range of each IOAS (x86 48-bit, below the canonical hole); each
    /// domain of the IOAS narrows it further to the aperture its backend chose.
    uint64_t iova_base = uint64_t{1} << 20, iova_limit = uint64_t{1} << 47;
};

class IommuFd final {
public:
    IommuFd(HostCpu& cpu, DmaOracle& oracle, const DriverParams& params, const HostMemoryLayout& layout,
            stats::Group* parent_stats);
    ~IommuFd();

    /// Table pages for drivers' own structures (root/context/PASID tables, queues).
    std::function<uint64_t()> table_page_allocator();

    /// Registers an IOMMU whose devices live in PCIe segment `segment`.
    unsigned add_iommu(const std::string& name, IommuDriver& driver, uint16_t segment = 0);
    /// A device behind IOMMU `iommu` (its RID is unique behind that unit).
    void add_device(const DeviceInfo& d, unsigned iommu);
    const std::string& iommu_name(unsigned iommu) const { return iommus_.at(iommu).name; }
    /// The PCIe segment of IOMMU `iommu`'s devices.
    uint16_t iommu_segment(unsigned iommu) const { return iommus_.at(iommu).segment; }
    /// The device `rid` behind IOMMU `iommu` as registered, or nullptr.
    const DeviceInfo* device_info(unsigned iommu, pcie::Bdf rid) const {
        auto it = devices_.find(device_key(iommu, rid));
        return it == devices_.end() ? nullptr : &it->second.info;
    }

    uint32_t ioas_alloc();
    /// Strict or lazy unmaps for this IOAS only (Linux chooses per DMA domain:
    /// iommu_dma_init_fq / IOMMU_DOMAIN_DMA_FQ), overriding host.driver.flush.
    void set_flush_policy(uint32_t ioas, FlushPolicy p);
    /// A paging domain on `iommu` mirroring the IOAS, first or second stage, in
    /// the format the IOMMU's backend chooses (`levels`: nullopt = its default).
    uint32_t hwpt_alloc(uint32_t ioas, unsigned iommu, DomainDesc::Kind kind,
                        std::optional<uint8_t> levels = std::nullopt);
    /// A process with CPU page tables in the host CPU's format (host.cpu.arch: x86-64
    /// 4 levels, or Arm VMSAv8-64 4 KiB granule 4 levels) and a CPU ASID.
    uint32_t process_create();
    /// An SVA domain on `iommu`: its first stage walks the process's tables. Error if the unit cannot.
    uint32_t hwpt_alloc_sva(uint32_t process, unsigned iommu);
    /// Frees a HW page table (iommufd IOMMU_DESTROY of a HWPT). Architected order: the whole
    /// domain is invalidated on its unit for every (device, PASID) it ever served, and waited
    /// for, before the backend may hand its tag (DID / DomainID) to another domain. Errors: not
    /// found, busy while devices are attached. A failed flush keeps the tag out of use.
    void hwpt_free(uint32_t id);
    /// The IOMMU a HW page table belongs to.
    unsigned hwpt_iommu(uint32_t id) { return hwpt(id).iommu; }
    /// Whether a HW page table enforces cache coherency (No-Snoop requests are snooped): what
    /// iommufd reports and KVM asks (IOMMU_CAP_ENFORCE_CACHE_COHERENCY; a VM with a device on a
    /// domain that does not must emulate WBINVD: shared/reference/threads 001).
    bool enforces_coherency(uint32_t id) { return hwpt(id).desc.force_snoop; }

    /// Attaches the device `rid` behind the domain's IOMMU. Errors: the RID is
    /// behind another IOMMU only (invalid, naming both), unknown device.
    void attach(pcie::Bdf rid, std::optional<uint32_t> pasid, uint32_t hwpt);
    /// Detaches; `iommu` may be omitted when only one IOMMU has (rid, pasid) attached.
    void detach(pcie::Bdf rid, std::optional<uint32_t> pasid, std::optional<unsigned> iommu = std::nullopt);

    /// Maps `size` bytes of freshly allocated memory in pages of 2^page_shift
    /// bytes; returns the IOVA (allocated unless given). Errors: a page size
    /// some domain of the IOAS cannot map, unaligned, overlapping.
    uint64_t map(uint32_t ioas, uint64_t size, std::optional<uint64_t> iova = std::nullopt, unsigned page_shift = 12);
    /// Unmaps exactly one earlier mapping. Error: not mapped.
    /// `timings` (optional) receives the strict flush's phases (a VMM's breakdown).
    void unmap(uint32_t ioas, uint64_t iova, uint64_t size, std::vector<FlushTiming>* timings = nullptr);
    /// Explicit invalidation of a range of a HW page table (size 0 = all).
    void invalidate(uint32_t hwpt, uint64_t iova, uint64_t size);

    // ---- nesting, for VMs (shared/reference/spec-layouts.md E; models/host/vm) ----
    /// IOMMU_IOAS_MAP of memory the caller owns (a VM's RAM): [pa, pa+size) at `iova` in pages
    /// of 2^page_shift bytes; an unmap flushes but never frees it. Errors as map().
    void map_user(uint32_t ioas, uint64_t iova, uint64_t pa, uint64_t size, unsigned page_shift = 12);
    /// A nested domain (IOMMU_HWPT_ALLOC with a nesting parent): stage 1 `s1` (the guest's
    /// table; its root is a guest-physical address) over the parent's stage 2.
    /// Errors: the parent is not a second-stage paging domain; the unit cannot nest.
    uint32_t hwpt_alloc_nested(uint32_t parent, const iommu::StageConfig& s1);
    /// VT-d: IOMMU_HWPT_ALLOC with IOMMU_HWPT_DATA_VTD_S1 (E.2): addr_width 48 or 57, known flags.
    uint32_t hwpt_alloc_nested_vtd(uint32_t parent, const uapi::HwptVtdS1& data);
    /// IOMMU_VIOMMU_ALLOC (E.4): a vIOMMU over the nesting parent `parent` (a second-stage
    /// paging domain): it holds the vDEVICE table, AMD's vDomain-ID -> pDomain-ID map or
    /// SMMUv3's VMID (the parent's), and takes the guest's invalidation arrays.
    /// Errors: the parent is not a second-stage domain (invalid), unknown (not_found).
    uint32_t viommu_alloc(uint32_t parent);
    /// IOMMU_VDEVICE_ALLOC (E.5): device `rid` behind the vIOMMU's unit is `virt_id` to the guest
    /// (vRID / vDeviceID / vSID). Errors: unknown device (not_found), duplicate virt_id (busy, EEXIST).
    void vdevice_alloc(uint32_t viommu, pcie::Bdf rid, uint64_t virt_id);
    /// IOMMU_DESTROY of a vDEVICE (a hardware vIOMMU's map entry goes with it). Errors: unknown
    /// vIOMMU or virtual ID (not_found).
    void vdevice_free(uint32_t viommu, uint64_t virt_id);
    /// IOMMU_DESTROY of a vIOMMU. Errors: unknown (not_found); busy (EBUSY) while vDEVICEs or
    /// nested HWPTs still hold it, as iommufd's references do. A hardware vIOMMU's unit context
    /// (AMD GuestID, SMMUv3 VINTF) is released; the VMID stays the nesting parent's.
    void viommu_free(uint32_t viommu);
    /// The physical device behind a vIOMMU's virtual ID, or nullptr.
    const DeviceInfo* vdevice(uint32_t viommu, uint64_t virt_id) const;
    /// IOMMU_VIOMMU_ALLOC of the hardware-accelerated kind (AMD hardware vIOMMU): viommu_alloc,
    /// then a guest context of the unit reaching guest RAM [gpa, gpa + bytes) through the parent's
    /// IOAS. Errors (invalid): the RAM is not one contiguous pinned host block; the unit has no
    /// free guest context. vDEVICEs of it are programmed into the unit's DeviceID map.
    uint32_t viommu_alloc_hw(uint32_t parent, uint64_t gpa, uint64_t bytes);
    /// IOMMU_HW_QUEUE_ALLOC on a hardware vIOMMU: the guest's queue at `gpa` (`bytes`), pinned
    /// (one contiguous host block, as iommufd's hw_queue_init_phys requires) and handed to the
    /// unit. EINVAL: not mapped contiguously in the parent; the backend's own errors.
    uapi::Errno hw_queue_alloc(uint32_t viommu, uint64_t gpa, uint64_t bytes);
    /// The guest (through its VMM) enabled / disabled its hardware queue.
    void hw_queue_enable(uint32_t viommu, bool on);
    /// IOMMU_HWPT_ALLOC with pt_id = a vIOMMU and the family's data (AMD: IOMMU_HWPT_DATA_AMD_GUEST,
    /// the guest DTE; SMMUv3: IOMMU_HWPT_DATA_ARM_SMMUV3, the vSTE): a nested domain over the
    /// vIOMMU's parent, checked by the backend. Errors: not a vIOMMU, data the backend refuses.
    uint32_t hwpt_alloc_nested_viommu(uint32_t viommu, uint32_t data_type, const std::array<uint64_t, 4>& entry);
    /// The nested domain's stage-1 configuration (its guest root).
    const iommu::StageConfig& nested_s1(uint32_t hwpt_id) { return hwpt(hwpt_id).desc.s1; }
    /// IOMMU_HWPT_INVALIDATE (E.1/E.2/E.3): the entries at req.data_uptr are handled in order,
    /// stopping at the first failure; req.entry_num is overwritten with how many took effect.
    /// hwpt_id may name a nested domain (VT-d) or a vIOMMU (raw guest commands, the backend's type).
    /// `timings` (optional) receives each flush's phases, for the VMM's breakdown.
    uapi::Errno hwpt_invalidate(uapi::HwptInvalidate& req, std::vector<FlushTiming>* timings = nullptr);

    void mmap(uint32_t process, uint64_t va, uint64_t size);
    void munmap(uint32_t process, uint64_t va, uint64_t size);
    /// Demand paging: maps one fresh 4 KiB page at `va` in the process (a CPU or I/O page fault on a
    /// non-present page). No invalidation is needed: non-present entries are not cached (VT-d
    /// §6.2.2 without caching mode). Error: already mapped, not canonical.
    void fault_in(uint32_t process, uint64_t va);
    /// Whether a process page is present (ground truth).
    bool process_mapped(uint32_t process, uint64_t va) const;
    /// Physical address a process VA maps to (ground truth), if present.
    std::optional<uint64_t> process_lookup(uint32_t process, uint64_t va) const;

    /// PRI: resolves a page request read from IOMMU `iommu`'s log. SVA attachment -> fault the
    /// page into the process (Success); paging (IOAS) domain -> Success only if the IOVA is
    /// mapped by now (the device retries), else Invalid Request, as Linux answers a DMA-API
    /// domain that has no fault handler.
    pcie::PrgResponseCode handle_page_request(unsigned iommu, const PageRequestInfo& r);
    /// The handler a unit's page-request thread calls (handle_page_request for that unit).
    PageRequestHandler& page_request_handler(unsigned iommu) { return *iommus_.at(iommu).prq; }
    /// Whether any device registered behind IOMMU `iommu` has PRI or may stall (its faults are
    /// served by the unit's page-request / fault thread).
    bool has_pri_device(unsigned iommu) const;

    // ---- guest fault delivery (Linux iommufd eventq.c; models/host/vm) ----
    /// IOMMU_FAULT_QUEUE_ALLOC: a fault queue object (its file: fault_read / fault_respond).
    /// `wake` is called whenever a page request group is queued (the file becoming readable).
    uint32_t fault_queue_alloc(std::function<void()> wake);
    /// IOMMU_HWPT_ALLOC's fault_id (IOMMU_HWPT_FAULT_ID_VALID): the nested HWPT `hwpt`'s I/O page
    /// faults go to fault queue `fault` instead of the host's own handling. Errors: not a nested
    /// HWPT (invalid), no such fault queue (not_found).
    void hwpt_set_fault(uint32_t hwpt, uint32_t fault);
    /// A page request the host driver read for (rid, pasid) behind `iommu`: if its domain is a
    /// nested HWPT with a fault queue (for a PASID without an attachment of its own, the RID's
    /// nested domain when the guest owns the PASID table: Linux ops->user_pasid_table), it joins
    /// its group there (iommu_report_device_fault -> iommufd_fault_iopf_handler; a group is
    /// queued when its last request arrives) and true is returned: the response comes from user
    /// space. SC_THREAD.
    bool deliver_to_user(unsigned iommu, const PageRequestInfo& r);
    /// read() of a fault queue's file: whole groups of iommu_hwpt_pgfault while they fit in
    /// `max` records, each group given a cookie (from 1). Costs nothing here (the caller pays the syscall).
    std::vector<uapi::HwptPgfault> fault_read(uint32_t fault, size_t max);
    /// write() of page responses: each names a group by cookie; in order, stopping at the first
    /// bad one (a code other than SUCCESS / INVALID, or an unknown cookie: EINVAL). The host sends
    /// the group's response to the device through the unit's driver (iopf_group_response). `done`:
    /// responses that took effect. SC_THREAD.
    uapi::Errno fault_respond(uint32_t fault, const std::vector<uapi::HwptPageResponse>& rs, size_t& done);
    /// Groups queued and not read yet, and read but not answered (what a poll() would see).
    size_t fault_pending(uint32_t fault) const;
    size_t fault_unanswered(uint32_t fault) const;
    /// The iommufd device ID of (iommu, rid) as fault records carry it (dev_id), and back.
    static uint32_t device_id(unsigned iommu, pcie::Bdf rid) { return device_key(iommu, rid); }
    const DeviceInfo* device_by_id(uint32_t dev_id) const {
        auto it = devices_.find(dev_id);
        return it == devices_.end() ? nullptr : &it->second.info;
    }
    /// IOMMU_DESTROY of a fault queue (iommufd_fault_destroy). EBUSY while a HWPT names it (its
    /// fault_id holds a reference), ENOENT when unknown. Its groups were answered INVALID when
    /// their devices detached (iommufd_auto_response_faults, in detach()).
    uapi::Errno fault_queue_destroy(uint32_t fault);
    /// When the group `cookie` of fault queue `fault` was queued (a measurement, not a uAPI field).
    std::optional<Duration> fault_queued_at(uint32_t fault, uint32_t cookie) const;
    /// IOMMU_VEVENTQ_ALLOC: a vEVENTQ of `type` on vIOMMU `viommu` holding up to `depth` events.
    /// Errors (as Linux iommufd_veventq_alloc): flags / reserved / the DEFAULT type (EOPNOTSUPP),
    /// depth 0 (EINVAL), unknown vIOMMU (ENOENT), a vEVENTQ of that type already (EEXIST).
    uapi::Errno veventq_alloc(uapi::VeventqAlloc& req, std::function<void()> wake);
    /// The vIOMMU and virtual ID of the device `rid` behind `iommu` when it is attached to a nested
    /// domain of a vIOMMU that has a vDEVICE for it (Linux arm_smmu_master::vmaster).
    struct VirtualDevice {
        uint32_t viommu = 0;
        uint64_t virt_id = 0;
    };
    std::optional<VirtualDevice> vmaster(unsigned iommu, pcie::Bdf rid) const;
    /// iommufd_viommu_report_event: one event record (the family's vEVENT data, already carrying
    /// the virtual ID) into the vIOMMU's vEVENTQ of `type`. EOPNOTSUPP: no such vEVENTQ. A full
    /// queue keeps one LOST_EVENTS header at its tail instead (the reader sees the gap).
    uapi::Errno report_vevent(uint32_t viommu, uint32_t type, const std::vector<uint64_t>& data);
    /// read() of a vEVENTQ: each event as its header then its data, while they fit in `max_bytes`.
    std::vector<uint8_t> veventq_read(uint32_t veventq, size_t max_bytes);
    size_t veventq_pending(uint32_t veventq) const;
    /// IOMMU_DESTROY of a vEVENTQ (iommufd_veventq_abort): its unread events and a pending
    /// LOST_EVENTS header are discarded, later events of its type are not reported (EOPNOTSUPP),
    /// and the vIOMMU may be destroyed again. ENOENT when unknown.
    uapi::Errno veventq_destroy(uint32_t veventq);

    /// Lazy policy: flushes every queued range now (the flush-queue timer calls this).
    void flush_queue_now();
    /// The earliest time-out of any CPU's flush queue.
    std::optional<Duration> flush_queue_deadline() const;
    /// Called whenever the flush queue gains its first entry (to arm a timer).
    void set_queue_listener(std::function<void()> f) { queue_listener_ = std::move(f); }

    InvalidationLog& log() { return log_; }
    const DriverParams& params() const { return params_; }
    /// Physical address an IOVA of an IOAS maps to (ground truth), if mapped.
    std::optional<uint64_t> lookup(uint32_t ioas, uint64_t iova) const;

private:
    struct Mapping {
        uint64_t pa, size;
        unsigned page_shift;
        bool borrowed = false; ///< the caller's memory (map_user): never freed here
        bool dma_api = false; ///< IOVA chosen by the allocator (DMA API): freed through the per-CPU caches
        bool iova_freed = false; ///< the IOVA went back already (DriverParams::reuse_iova_before_flush)
    };
    struct Hwpt {
        DomainDesc desc;
        unsigned iommu;
        PageSizeMask page_sizes = 0;  ///< leaves the backend allows (paging domains)
        uint32_t space;               ///< oracle space: IOAS id or process id
        std::unique_ptr<iommu::TableBuilder> tables; ///< null for SVA (the process owns them)
        std::vector<Attachment> attachments;
        std::optional<uint32_t> inv_data_type; ///< IOMMU_HWPT_INVALIDATE entry format (nested domains)
        std::vector<Attachment> served;  ///< every (device, PASID) ever attached: what hwpt_free flushes
        uint32_t fault = 0;              ///< fault queue of its I/O page faults (0: the host handles them)
    };
    struct FaultGroup {
        unsigned iommu = 0;
        std::vector<PageRequestInfo> requests; ///< the last one has Last set
        Duration queued;                       ///< when the group was queued (its last request)
        uint32_t hwpt = 0;                     ///< the attachment it came through (Linux group->attach_handle):
        std::optional<uint32_t> attach_pasid;  ///< its HWPT and PASID (nullopt: the RID's, a guest PASID table)
    };
    /// iommufd_auto_response_faults: the groups (iommu, rid, pasid) left in fault queue `fault` by HWPT
    /// `hwpt` when it was detached are answered INVALID (queued or read alike); its open groups are dropped.
    void auto_respond_faults(uint32_t fault, uint32_t hwpt, unsigned iommu, pcie::Bdf rid, std::optional<uint32_t> pasid);
    struct FaultQueue {
        std::map<std::tuple<unsigned, uint16_t, uint32_t, uint16_t>, FaultGroup> partial; ///< groups still open
        std::vector<FaultGroup> deliver;           ///< queued, not read
        std::map<uint32_t, FaultGroup> response;   ///< read, awaiting the response (by cookie)
        uint32_t next_cookie = 1;                  ///< XA_FLAGS_ALLOC1: cookies from 1
        std::function<void()> wake;
    };
    std::map<uint32_t, FaultQueue> faults_;
    struct Veventq {
        uint32_t viommu, type, depth;
        struct Event {
            uapi::VeventHeader header;
            std::vector<uint64_t> data;
        };
        std::vector<Event> deliver;
        bool lost_at_tail = false; ///< the LOST_EVENTS header sits at the tail
        uint32_t lost_sequence = 0;
        uint32_t sequence = 0;
        std::function<void()> wake;
    };
    std::map<uint32_t, Veventq> veventqs_;
    struct Viommu {
        uint32_t parent;
        unsigned iommu;
        std::map<uint64_t, DeviceInfo> vdevices; ///< virt_id -> physical device
        bool hw = false;                         ///< has a guest context of the unit (viommu_alloc_hw)
    };
    uapi::Errno viommu_invalidate(Viommu& v, uint32_t id, uapi::HwptInvalidate& req, std::vector<FlushTiming>* timings);
    std::map<uint32_t, Viommu> viommus_;
    struct Ioas {
        IovaAllocator iovas;
        std::map<uint64_t, Mapping> mappings; ///< iova -> mapping
        std::vector<uint32_t> hwpts;
        std::optional<FlushPolicy> flush; ///< this IOAS's own policy (Linux: per DMA domain); unset = the host's
    };
    struct Process {
        std::unique_ptr<iommu::TableBuilder> tables;
        uint32_t asid = 0; ///< the CPU's ASID for the process (arm64: lowest free from 1, as the arm64 allocator's first generation)
        std::map<uint64_t, Mapping> mappings;
        std::vector<uint32_t> hwpts;
    };
    struct Device {
        DeviceInfo info;
        unsigned iommu;
    };

    Ioas& ioas(uint32_t id);
    Hwpt& hwpt(uint32_t id);
    Process& process(uint32_t id);
    /// Flushes every listed domain of oracle space `space`; false if any flush failed.
    bool flush_space(uint32_t space, const std::vector<uint32_t>& hwpts, uint64_t iova, uint64_t size, bool leaf_only,
                     const std::string& cause, std::vector<FlushTiming>* timings = nullptr);
    void release(uint32_t ioas, uint64_t iova, const Mapping& m);
    /// When PTEs written now become visible to the IOMMU: the kernel's time. A CPU running
    /// ahead in local time (HostCpu) makes its stores visible at once, so a DMA may use them
    /// before cpu_.now(); the oracle's map times are this.
    static Duration pte_visible_at();
    /// The CPU cost of writing `entries` leaf PTEs of 2^shift bytes from `iova` into each domain
    /// of `hwpts`, which added `new_tables[i]` table pages to hwpts[i] (none when absent): a
    /// store per entry written, and where the domain's IOMMU walks non-coherently a cache-line
    /// flush per line written (each new table page whole).
    void write_ptes(const std::vector<uint32_t>& hwpts, uint64_t iova, uint64_t entries, unsigned shift,
                    const std::vector<uint64_t>& new_tables = {});
    /// DMA-API IOVA allocation as Linux alloc_iova_fast: the calling CPU's cache, else the tree
    /// under its lock; sizes up to 32 pages are rounded up to a power of two (cacheable).
    uint64_t alloc_iova(uint32_t ioas, uint64_t size);
    /// free_iova_fast: into the calling CPU's cache, else (or what the cache evicts) the tree.
    void free_iova(uint32_t ioas, uint64_t iova, bool dma_api);
    struct PendingRelease;
    struct TakenQueue;
    /// Lazy: empties CPU `c`'s flush queue (its lock held by the caller).
    TakenQueue take_queue(unsigned c);
    /// Lazy: one domain-wide flush per space the entries touched, then releases what they held.
    void flush_taken(TakenQueue q);
    /// The first domain of `hwpts` that cannot map pages of 2^shift bytes, if any.
    const Hwpt* refuses_page_size(const std::vector<uint32_t>& hwpts, unsigned shift);
    static uint32_t device_key(unsigned iommu, pcie::Bdf rid) { return iommu << 16 | rid.raw; }
    static uint64_t attach_key(unsigned iommu, pcie::Bdf rid, std::optional<uint32_t> pasid) {
        return uint64_t{iommu} << 48 | uint64_t{rid.raw} << 32 | (pasid ? (uint64_t{1} << 31 | *pasid) : 0);
    }
    static constexpr uint32_t kProcessSpace = 1u << 20; ///< oracle space ids of processes start here

    HostCpu& cpu_;
    DmaOracle& oracle_;
    DriverParams params_;
    HostMemoryLayout layout_;
    iommu::BumpAllocator table_alloc_;
    IovaAllocator data_alloc_;
    struct Unit {
        std::string name;
        IommuDriver* driver;
        uint16_t segment;
        std::unique_ptr<PageRequestHandler> prq;
    };
    std::vector<Unit> iommus_;
    std::map<uint32_t, Device> devices_;     ///< device_key -> device
    iommu::StageConfig cpu_tables_;          ///< the format of process page tables (the CPU's)
    std::map<uint32_t, Ioas> ioas_;
    std::map<uint32_t, Hwpt> hwpts_;
    std::map<uint32_t, Process> processes_;
    std::map<uint64_t, uint32_t> attached_; ///< attach_key -> hwpt
    uint32_t next_id_ = 1;
    uint32_t next_asid_ = 1;
    struct PendingRelease {
        uint32_t ioas;
        uint64_t iova;
        Mapping mapping;
    };
    struct TakenQueue {
        std::vector<FlushQueue::Entry> entries;
        std::vector<PendingRelease> pending;
    };
    /// Lazy policy, per CPU as Linux's per-CPU iova_fq: the queue and the ranges it holds back.
    std::vector<FlushQueue> fqs_;
    std::vector<std::vector<PendingRelease>> pending_;
    std::map<uint32_t, IovaRcache> rcaches_; ///< per IOAS (Linux: per DMA domain's iova_domain)
    std::function<void()> queue_listener_;
    InvalidationLog log_;

    stats::Group stats_;
    stats::Counter& maps_;
    stats::Counter& unmaps_;
    stats::Counter& mapped_bytes_;
    stats::Counter& lazy_flushes_;
    stats::Histogram& unmap_latency_;
    stats::Counter& failed_flushes_;
    stats::Counter& quarantined_;
    stats::Counter& demand_faults_;
    stats::Value& noncoherent_;
    void count_noncoherent();
    stats::Counter& table_line_flushes_;
    stats::Counter& iova_cache_hits_;
    stats::Counter& iova_tree_allocs_;
    stats::Counter& iova_tree_frees_;
    HostLock iova_lock_; ///< the IOVA trees' lock (Linux iova_rbtree_lock; one for every IOAS here)
    stats::Group fq_lock_stats_;
    /// Each CPU's flush-queue lock (Linux fq->lock): its CPU queues under it, the timer takes
    /// each in turn, so a timer flush costs the CPUs cache-line hand-offs.
    std::vector<std::unique_ptr<HostLock>> fq_locks_;
};

} // namespace iommusim::host
