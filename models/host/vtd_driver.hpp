// SPDX-License-Identifier: Apache-2.0
#pragma once
// VT-d scalable-mode driver backend: what Linux's intel-iommu does, at the
// level of the real structures and registers.
//
// Fidelity: reads CAP/ECAP; writes the root table, scalable-mode context
// entries, PASID directory and PASID table entries bit-exactly (through
// vtd::VtdTableWriter); enables the root table (RTADDR with SMT + GCMD.SRTP),
// queued invalidation (IQA with 256-bit descriptors, GCMD.QIE) and
// translation (GCMD.TE), polling GSTS each time; allocates Domain-IDs (DID 1
// for SVA and pass-through, as Linux's FLPT_DEFAULT_DID); flushes with
// PASID-based IOTLB descriptors for first-stage domains and IOTLB
// descriptors for second-stage ones, page-selective (AM) when the range is
// aligned and small, else domain-/PASID-wide; issues (PASID-based) device-TLB
// invalidations to ATS devices; waits on a wait descriptor whose status
// write it polls, reading FSTS on every spin like qi_check_fault() (the
// ring, lock, sync and error handling are the shared CmdQueueDriver; this
// backend supplies the wait descriptor, IQH/IQT and FSTS decoding); tears
// down in the architected order (clear PASID entry -> PASID-cache -> IOTLB
// -> device-TLB -> wait; VT-d spec §6.5.2 / Linux intel_pasid_tear_down_entry).
// On ITE the flush is reported as failed (Linux retries; we do not, so that
// a device that never answers cannot hang the run). Not modelled: legacy
// mode, register-based invalidation, interrupt remapping.
//
// Capabilities (IommuCaps) come from CAP/ECAP at enable(): FLTS/FL5LP/FL1GP
// for the first stage (x86-64 format), SLTS/SAGAW/SLLPS/MGAW for the second
// (VT-d second-stage format), PASID/PSS, DT, PRS, NEST, SC, PT, ND.
// New paging domains get 4-level tables unless asked otherwise (a 48-bit
// first stage as the CPU's 4-level paging mode has; the same width for the
// second stage), apertures: the lower canonical half of the first stage's
// input width, the whole input width (<= MGAW) for the second stage.
//
// Caching mode (CAP.CM = 1, what a vIOMMU without nesting advertises): as Linux, a new
// context entry is followed by a device-selective context-cache and DID-0 IOTLB
// invalidation (context_present_cache_flush), a new PASID entry by a PASID-cache and
// PASID-based IOTLB invalidation (pasid_flush_caches), and new second-stage leaves by a
// page-selective IOTLB invalidation without device TLBs (cache_tag_flush_range_np).
//
// Page requests (PRI, §7.5; Linux intel_iommu_enable_prq / prq_event_thread):
// when a PRI device sits behind the unit, the driver programs the page
// request event's MSI (PEDATA/PEADDR/PEUADDR) and unmasks it (PECTL = 0, as
// request_threaded_irq does through dmar_msi_unmask), allocates the page
// request queue (2^prq_order pages), sets PQH = PQT = 0 and writes PQA with
// its size. The handler is a threaded IRQ (the shared PageRequestLogDriver;
// this backend supplies PRS/PQH/PQT and the descriptor layout): woken by the
// page request event, it clears PRS.PPR (RW1C) before reading PQT and PQH,
// so a request written after those reads sets PPR again and raises a new
// event; reads each 32-byte descriptor from memory (spec-layouts.md A.10),
// resolves it through the host object model, answers the last request of
// each group with a page group response descriptor (+ wait) through the
// invalidation queue, writes PQH = the tail it read, then reads PRS and,
// with PRO set, reads PQH and PQT and clears PRO only if the queue is empty.
// Stop markers get no response.
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "models/common/stats.hpp"
#include "models/host/cmd_queue_driver.hpp"
#include "models/host/domain_tags.hpp"
#include "models/host/host_cpu.hpp"
#include "models/host/host_params.hpp"
#include "models/host/iommu_driver.hpp"
#include "models/host/msi_decoder.hpp"
#include "models/host/page_request_log.hpp"
#include "models/host/page_requests.hpp"
#include "models/iommu/vtd/vtd_descriptors.hpp"
#include "models/iommu/vtd/vtd_tables.hpp"

namespace iommusim::host {

class VtdDriver final : public IommuDriver, private CmdQueueHooks, private PageRequestLogHooks {
public:
    /// `msi` delivers this unit's interrupts (needed for WaitMode::interrupt).
    VtdDriver(const std::string& name, MmioPort mmio, const DriverParams& params,
              std::function<uint64_t()> alloc_page, stats::Group* parent_stats, MsiDecoder* msi = nullptr);

    void enable() override;
    const IommuCaps& caps() const override;
    PagingFormat paging_format(DomainDesc::Kind kind, std::optional<uint8_t> levels) const override;
    /// The Domain-ID: SVA and pass-through share DID 1 (Linux FLPT_DEFAULT_DID); paging domains get their own.
    uint32_t domain_tag(const DomainDesc& d) override;
    /// ECAP.SC: PGSNP (first stage, PASID entry) and SNP (second-stage leaves) force snooping
    /// (Linux intel_iommu_enforce_cache_coherency; not for SVA: the CPU's tables).
    bool enforce_cache_coherency(const DomainDesc& domain) const override;
    void release_domain_tag(const DomainDesc& d) override {
        if (dids_.find(d.id)) dids_.release(d.id); // SVA / identity share DID 1: nothing to free
    }
    void attach(const Attachment& a, const DomainDesc& domain) override;
    FlushTiming detach(const Attachment& a, const DomainDesc& domain) override;
    FlushTiming flush(const FlushRequest& r) override;
    /// Caching mode (CAP.CM, a vIOMMU): flushes the IOTLB for the new second-stage leaves.
    void mapped(const DomainDesc& d, const std::vector<Attachment>& as, uint64_t iova, uint64_t size) override;
    /// Sets up the page request queue (after enable()). SC_THREAD only.
    void enable_page_requests() override;
    /// The page request handler thread body: never returns. SC_THREAD only.
    [[noreturn]] void serve_page_requests(PageRequestHandler& handler, PageRequestStats& st) override;
    /// iommufd's page response for a group user space answered: the page group response + wait.
    void page_response(const PageRequestInfo& last, pcie::PrgResponseCode code) override { respond(last, code); }
    iommu::InvalidationObserver& invalidation_observer() override { return queue_; }

    /// Decodes one page request descriptor (spec-layouts.md A.10).
    static PageRequestInfo decode_page_request(const std::array<uint64_t, 4>& q);
    /// Capabilities as CAP/ECAP encode them (spec-layouts.md A.8/A.9).
    static IommuCaps decode_caps(uint64_t cap, uint64_t ecap);
    /// Linux's iommu->agaw for a scalable-mode unit (__iommu_calculate_sagaw, then the largest
    /// supported AGAW up to DEFAULT_DOMAIN_ADDRESS_WIDTH 57 bits): first-stage depths (4, and 5
    /// with CAP.FL5LP) intersected with CAP.SAGAW when both stages exist; -1 if none.
    static int linux_agaw(uint64_t cap, uint64_t ecap);

    uint64_t root_table() const { return tables_ ? tables_->root_table() : 0; }

private:
    using RawDesc = iommu::vtd::RawDesc;
    static bool first_stage(const DomainDesc& d);
    uint16_t did_of(const DomainDesc& d) { return static_cast<uint16_t>(domain_tag(d)); }
    /// Appends the IOTLB descriptor (PASID-based for first-stage domains) for one attachment.
    void iotlb_descs(const DomainDesc& d, uint16_t did, const Attachment& a, bool whole, uint64_t base,
                     unsigned order, bool leaf_only, std::vector<RawDesc>& out);
    void devtlb_desc(const Attachment& a, bool whole, uint64_t base, unsigned order, std::vector<RawDesc>& out);
    void set_gcmd(uint32_t bit, bool on);
    iommu::vtd::PasidEntry pasid_entry_for(const DomainDesc& d, uint16_t did) const;

    // CmdQueueHooks: the invalidation queue's registers and descriptors (§6.5.2, §11.4.9).
    QueueEntry encode_sync(uint64_t status_pa, uint32_t token, bool interrupt) override;
    QueueEntry encode_nop() override;
    uint64_t read_head() override;
    /// qi_submit_sync: holds qi->q_lock while it waits, dropping it around each cpu_relax;
    /// reads FSTS every iteration (read_error); no time-out.
    WaitLoop wait_loop() override;
    void write_tail(uint64_t tail, uint64_t entries) override;
    QueueError read_error() override;
    /// FSTS.IQE/ITE/ICE are set only with a queue-error report of the unit.
    std::optional<Duration> errors_quiet_until() override { return kQuietForever; }
    void acknowledge(const QueueError& e) override;
    void acknowledge_interrupt() override;
    CommandKind kind_of(const QueueEntry& e) const override;

    // PageRequestLogHooks: the page request queue (§7.5.1, §11.4.11), as prq_event_thread.
    LogDrain drain() const override { return LogDrain{.read_head = true}; }
    bool acknowledge_pending() override;
    uint64_t read_tail() override;
    uint64_t read_log_head() override;
    void write_head(uint64_t head) override;
    bool handle_overflow() override;
    PageRequestInfo decode(const LogRecord& r) override;
    void respond(const PageRequestInfo& last, pcie::PrgResponseCode code) override;

    MmioPort mmio_;
    HostCpu& cpu_;
    MsiDecoder* msi_;
    DriverParams params_;
    std::function<uint64_t()> alloc_page_;
    std::unique_ptr<iommu::vtd::VtdTableWriter> tables_;
    uint32_t gcmd_ = 0;
    uint8_t mamv_ = 0;
    bool caching_mode_ = false; ///< CAP.CM: the unit may cache non-present entries (a vIOMMU shadowing the tables)
    /// Linux iommu->agaw (iommu_calculate_agaw): the widest table depth both stages the unit
    /// translates with support, up to 5 levels (1 = 3-level ... 3 = 5-level); written as AW
    /// into first-stage and pass-through PASID entries.
    uint8_t agaw_ = 2;
    bool smpwc_ = false; ///< ECAP.SMPWC: scalable-mode walks snoop; Linux writes it as PWSNP
    bool coherent_ = true; ///< ECAP.C: root/context/PASID entry reads snoop; else each written entry is clflushed
    bool dit_ = false; ///< ECAP.DIT: device-TLB invalidations carry the PF's RID as PFSID (else PFSID is reserved, 0)
    /// The CPU cost of storing `entries` root/context/PASID entries (one line each) and, on a
    /// unit without ECAP.C, flushing them (Linux __iommu_flush_cache, clflush_cache_range).
    void write_entries(unsigned entries);
    std::optional<IommuCaps> caps_;
    std::map<uint16_t, iommu::vtd::SmContextEntry> contexts_;
    DomainTagAllocator dids_{2, 0xFFFF, "Domain-ID"}; ///< DID 0 is reserved (CM), 1 is FLPT_DEFAULT_DID

    stats::Group stats_;
    stats::Counter& flushes_;
    stats::Counter& descriptors_;
    stats::Counter& devtlb_invalidations_;
    stats::Counter& ranged_;
    stats::Counter& domain_wide_;
    stats::Counter& polls_;
    stats::Counter& errors_;
    stats::Counter& entry_flushes_;
    CmdQueueDriver queue_;
    PageRequestLogDriver prq_;
    /// iommu->lock: held while a context or PASID entry is set up or torn down (Linux
    /// intel_pasid_setup_*, intel_pasid_tear_down_entry), so CPUs attaching at once contend.
    HostLock pasid_lock_;
};

} // namespace iommusim::host
