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
// write it polls, reading FSTS on every spin like qi_check_fault(); tears
// down in the architected order (clear PASID entry -> PASID-cache -> IOTLB
// -> device-TLB -> wait; VT-d spec §6.5.2 / Linux intel_pasid_tear_down_entry).
// On ITE the flush is reported as failed (Linux retries; we do not, so that
// a device that never answers cannot hang the run). Not modelled: legacy
// mode, register-based invalidation, interrupt remapping, caching mode.
//
// Page requests (PRI, §7.5; Linux intel_iommu_enable_prq / prq_event_thread):
// when a PRI device sits behind the unit, the driver allocates the page
// request queue (2^prq_order pages), sets PQH = PQT = 0, writes PQA with its
// size and programs PEDATA/PEADDR. The host has no interrupt controller
// model, so PECTL stays masked (IM) and the handler thread polls PQT over
// MMIO every prq_poll_interval instead of sleeping on the page request
// event. Per wake-up it clears PRS.PPR, reads each 32-byte descriptor from
// memory (spec-layouts.md A.10), resolves it through the host object model,
// answers the last request of each group with a page group response
// descriptor (+ wait) through the invalidation queue, advances PQH over MMIO
// and clears PRS.PRO after an overflow. Stop markers get no response.
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <unordered_map>

#include "models/common/stats.hpp"
#include "models/host/host_cpu.hpp"
#include "models/host/host_params.hpp"
#include "models/host/iommu_driver.hpp"
#include "models/host/msi_decoder.hpp"
#include "models/host/page_requests.hpp"
#include "models/iommu/common/inval_observer.hpp"
#include "models/iommu/vtd/vtd_descriptors.hpp"
#include "models/iommu/vtd/vtd_tables.hpp"

namespace iommusim::host {

class VtdDriver final : public IommuDriver, public iommu::InvalidationObserver {
public:
    /// `msi` delivers this unit's interrupts (needed for WaitMode::interrupt).
    VtdDriver(const std::string& name, MmioPort mmio, const DriverParams& params,
              std::function<uint64_t()> alloc_page, stats::Group* parent_stats, MsiDecoder* msi = nullptr);

    void enable() override;
    void attach(const Attachment& a, const DomainDesc& domain) override;
    FlushTiming detach(const Attachment& a, const DomainDesc& domain) override;
    FlushTiming flush(const FlushRequest& r) override;
    void on_phase(uint64_t seq, iommu::InvalPhase phase, Duration at, pcie::Bdf device) override;

    /// Sets up the page request queue (after enable()). SC_THREAD only.
    void enable_page_requests();
    /// The page request handler thread body: never returns. SC_THREAD only.
    [[noreturn]] void serve_page_requests(PageRequestHandler& handler, PageRequestStats& st);
    /// Decodes one page request descriptor (spec-layouts.md A.10).
    static PageRequestInfo decode_page_request(const std::array<uint64_t, 4>& q);

    uint16_t did_of(const DomainDesc& d);
    uint64_t root_table() const { return tables_ ? tables_->root_table() : 0; }

private:
    using RawDesc = iommu::vtd::RawDesc;
    static bool first_stage(const DomainDesc& d);
    /// Appends the IOTLB descriptor (PASID-based for first-stage domains) for one attachment.
    void iotlb_descs(const DomainDesc& d, uint16_t did, const Attachment& a, bool whole, uint64_t base,
                     unsigned order, bool leaf_only, std::vector<RawDesc>& out);
    void devtlb_desc(const Attachment& a, bool whole, uint64_t base, unsigned order, std::vector<RawDesc>& out);
    /// Writes descriptors + a wait descriptor, rings IQT, polls until done.
    FlushTiming submit(std::vector<RawDesc> descs, bool is_flush = true);
    void set_gcmd(uint32_t bit, bool on);
    iommu::vtd::PasidEntry pasid_entry_for(const DomainDesc& d, uint16_t did) const;

    /// Blocks until the unit's invalidation or fault event MSI may have changed something.
    void wait_for_interrupt(uint64_t seen);
    uint64_t interrupts_seen() const;

    MmioPort mmio_;
    HostCpu& cpu_;
    MsiDecoder* msi_;
    uint32_t inv_vector_ = 0, fault_vector_ = 0;
    DriverParams params_;
    std::function<uint64_t()> alloc_page_;
    std::unique_ptr<iommu::vtd::VtdTableWriter> tables_;
    uint32_t gcmd_ = 0;
    uint8_t mamv_ = 0;
    uint64_t queue_base_ = 0, queue_bytes_ = 0, tail_ = 0, head_ = 0;
    sc_core::sc_mutex q_lock_; ///< Linux qi->q_lock: held while writing descriptors and IQT
    uint64_t seq_ = 0;              ///< descriptors written since QI was enabled
    uint64_t status_pa_ = 0;
    uint64_t prq_base_ = 0, prq_bytes_ = 0, prq_head_ = 0;
    uint32_t token_ = 0;
    std::map<uint16_t, iommu::vtd::SmContextEntry> contexts_;
    std::map<uint32_t, uint16_t> dids_; ///< domain id -> DID
    uint32_t next_did_ = 2;
    uint32_t max_did_ = 0xFFFF;
    bool device_tlb_ = true, pasid_ = true;

    struct Phases {
        std::optional<Duration> fetched, caches_done, devtlb_sent, devtlb_done, wait_done;
    };
    std::unordered_map<uint64_t, Phases> phases_;
    struct Submission {
        uint64_t end;    ///< one past its last descriptor (the wait)
        uint32_t token;  ///< its status-word value
    };
    std::map<uint64_t, Submission> open_; ///< submissions being waited for, by first seq (other phases are dropped)
    std::set<uint32_t> aborted_;          ///< tokens of submissions a queue error aborted
    uint64_t seq_at(uint64_t byte_offset) const;
    void abort_owner_of(uint64_t seq);
    void check_queue_errors();

    stats::Group stats_;
    stats::Counter& flushes_;
    stats::Counter& descriptors_;
    stats::Counter& devtlb_invalidations_;
    stats::Counter& ranged_;
    stats::Counter& domain_wide_;
    stats::Counter& polls_;
    stats::Counter& errors_;
};

} // namespace iommusim::host
