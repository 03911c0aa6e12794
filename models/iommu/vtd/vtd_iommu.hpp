// SPDX-License-Identifier: Apache-2.0
#pragma once
// VtdIommu: an Intel VT-d remapping unit in scalable mode (SystemC shell over
// the plain-C++ register file, table reader, descriptor decoder and the
// shared translation core).
//
// Fidelity — modelled:
//  * Driven only as software drives hardware: MMIO registers (vtd_regs.hpp),
//    tables read from simulated memory through the `mem` socket (root,
//    scalable-mode context, PASID directory/table entries, first/second-stage
//    page tables), invalidation descriptors fetched from the in-memory queue,
//    status words / fault events / page request descriptors / MSIs written
//    to memory.
//  * Caches (context cache keyed by RID, PASID cache keyed by (RID, PASID)
//    and tagged with DID, IOTLB tagged by DID+PASID, paging-structure caches)
//    on the core's generic set-associative cache; sizes, ways, latencies as
//    params. Requests without PASID use the context entry's RID_PASID.
//  * Translation data path: loosely-timed b_transport with annotated delay,
//    no wait() per request; walks charge one memory read per descriptor plus
//    the per-read IOMMU overhead (`table_read`), and occupy one of `walkers`
//    BusyUntil walk slots (queueing shows in `walk_queueing_ns`). The unit's own
//    table/queue/status accesses use TLM DMI when the memory grants it (same
//    latency as the target reports; MSIs always use b_transport). One-entry
//    memos of the last (RID, PASID) resolution and of the last RID's context
//    entry are host-speed shortcuts only: they are valid only while those cache
//    entries are the most recently used ones and are dropped by any other
//    context/PASID-cache access or invalidation, so LRU decisions, lookup/hit
//    counts and charged latencies are exactly those without them.
//  * Invalidation queue (§6.5.2) as an SC_THREAD woken by IQT writes: 128/256-bit
//    descriptors (IQH moves past a descriptor once it is fetched and valid),
//    each step timed from params (fetch, per-descriptor work,
//    per-entry invalidation, ATS message send, status write); device-TLB
//    invalidations tracked per (device, ITag), bounded by the descriptor's MIP
//    (the device's invalidate queue depth); a wait completes only after every
//    earlier descriptor, including outstanding device-TLB invalidations; IQE on
//    malformed descriptors (IQH left on the offending descriptor, fetching stops
//    until FSTS.IQE is cleared); ITE when a device does not answer within
//    `ite_timeout` (the pending wait is aborted and skipped, fetching stops until
//    FSTS.ITE is cleared); ICE for completions with an unknown ITag.
//  * ATS: translation requests answered with bit-exact completion entries
//    (range via S bit, R/W/U/Exe/Priv/Global/N) only when the context entry
//    has DTE; translated requests from devices without DTE are blocked and
//    recorded (fault 0x44). Page-level failures of a translation request give
//    R=W=0 (not a fault), as the spec requires.
//  * Faults: primary fault recording with architected scalable-mode reasons,
//    FPD suppression, fault event MSI (§7.2, §7.3).
//  * Page requests: descriptors written to the page request queue, PPR/PRO,
//    page request event; page group responses (descriptor type 9) sent to the
//    device as PRG Response messages. Overflow auto-responds Success when the
//    request was the last of its group (§7.5.1).
//  * Snoop control: No-Snoop requests are forced snooped when the PASID entry
//    has PGSNP or the leaf has SNP (ECAP.SC), counted.
// Not modelled: legacy (non-scalable) mode, interrupt remapping, register-based
// invalidation, drain semantics beyond ordering (reads/writes complete in
// b_transport order so DR/DW/PD are satisfied trivially), the wait descriptor
// without FN being overtaken by later descriptors (the engine is in order, a
// legal implementation), hardware A/D updates on the first stage under nesting
// beyond what the core's walker does, performance-monitoring registers.
#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>
#include <vector>

#include "models/common/sc_time.hpp"
#include "models/common/stats.hpp"
#include "models/common/time.hpp"
#include "models/iommu/common/inval_observer.hpp"
#include "models/common/set_assoc_cache.hpp"
#include "models/iommu/common/translation.hpp"
#include "models/iommu/common/translation_core.hpp"
#include "models/iommu/common/walk_mem_port.hpp"
#include "models/iommu/vtd/vtd_descriptors.hpp"
#include "models/iommu/vtd/vtd_params.hpp"
#include "models/iommu/vtd/vtd_regs.hpp"
#include "models/iommu/vtd/vtd_tables.hpp"
#include "models/mem/phys_mem.hpp"
#include "models/pcie/tlp.hpp"

namespace iommusim::iommu::vtd {

class VtdIommu : public sc_core::sc_module {
public:
    /// Requests from the root complex: untranslated / translated DMA, ATS
    /// translation requests, and messages from devices (Invalidate
    /// Completions, Page Requests), each with a TlpExtension or MessageExtension.
    tlm_utils::simple_target_socket<VtdIommu> upstream;
    /// Memory: forwarded DMA, table and queue reads, status / record / MSI writes.
    tlm_utils::simple_initiator_socket<VtdIommu> mem;
    /// The register file (4 KiB; 4- and 8-byte accesses).
    tlm_utils::simple_target_socket<VtdIommu> mmio;
    /// Messages routed down to devices: ATS Invalidate Requests, PRG Responses.
    tlm_utils::simple_initiator_socket<VtdIommu> ats_inv;

    VtdIommu(const sc_core::sc_module_name& name, const VtdParams& p, stats::Group* parent = nullptr);

    const VtdRegs& regs() const { return regs_; }
    /// Receives the phase timestamps of queued invalidation (host latency breakdown).
    void set_invalidation_observer(InvalidationObserver* o) { observer_ = o; }
    const VtdParams& params() const { return p_; }
    stats::Group& stats_group() { return stats_; }

private:
    // ---- sockets -------------------------------------------------------------
    void b_transport_upstream(tlm::tlm_generic_payload& t, sc_core::sc_time& delay);
    void b_transport_mmio(tlm::tlm_generic_payload& t, sc_core::sc_time& delay);

    // ---- translation ---------------------------------------------------------
    struct ContextCacheEntry {
        SmContextEntry entry;
        uint16_t last_did = 0; ///< DID seen through this context (for domain-selective invalidation)
        bool did_known = false;
    };
    struct PasidCacheEntry {
        uint64_t pasid_dir = 0; ///< the directory the entry was read through (a changed context misses)
        PasidEntry entry;
        TranslationContext ctx;
        uint8_t fault = 0;      ///< an invalid entry is not cached; kept for completeness
    };
    struct Resolved {
        uint8_t fault = 0;
        bool fpd = false;
        const TranslationContext* ctx = nullptr;
        const PasidEntry* pe = nullptr;
        uint32_t pasid = 0;
    };
    /// Context + PASID resolution through the caches; table reads charge `local`.
    /// `context_only`: stop after the context-entry checks (translated requests carry no PASID).
    Resolved resolve(pcie::Bdf rid, const RequestAttrs& req, sc_core::sc_time& delay, bool context_only = false);
    /// Translation of one address in a resolved context (IOTLB, then walk).
    TranslateResult translate(const TranslationContext& ctx, const AccessRequest& a, sc_core::sc_time& delay);
    /// Charges a walk to a walk slot and to `delay`.
    void account_walk(const TranslateResult& r, sc_core::sc_time& delay);
    uint8_t reason_for(const Translation& t, const AccessRequest& a, const TranslationContext& ctx) const;
    void handle_dma(tlm::tlm_generic_payload& t, pcie::TlpExtension& ext, sc_core::sc_time& delay);
    void handle_translation_request(tlm::tlm_generic_payload& t, pcie::TlpExtension& ext, sc_core::sc_time& delay);
    void record_fault(pcie::Bdf rid, const RequestAttrs& req, uint64_t addr, bool write, uint8_t reason, bool fpd,
                      Duration& local);

    // ---- messages from devices ----------------------------------------------
    void handle_message(const pcie::MessageExtension& m, Duration& local);
    void handle_page_request(const pcie::PageRequest& pr, Duration& local);
    void send_message(pcie::MessageExtension& m, uint64_t payload, Duration& local);

    // ---- invalidation queue engine (SC_THREAD) -------------------------------
    void queue_engine();
    void execute(const QiDescriptor& d);
    bool wait_for_device_invalidations(); ///< false on ITE
    bool issue_dev_tlb(const DevTlbInv& d);
    void engine_wait(Duration d);
    uint64_t invalidate_caches(const InvalidationScope& s);

    // ---- memory access helpers ------------------------------------------------
    class SocketMem; ///< PhysMem over the mem socket (table reads)
    /// The walker's port: each descriptor read is a TLM read on the mem socket at the
    /// request's local time plus the walk so far, plus the IOMMU's per-read overhead.
    class SocketWalkPort final : public WalkMemPort {
    public:
        explicit SocketWalkPort(VtdIommu& u) : u_(u) {}
        /// Starts a walk whose first access is issued at local time `at` (relative to now()).
        void begin(Duration at) { base_ = at, start_ = latency(); }

    protected:
        std::optional<uint64_t> do_read_u64(uint64_t pa, Duration& latency) override;
        bool do_write_u64(uint64_t pa, uint64_t v, Duration& latency) override;
        std::optional<uint64_t> do_compare_exchange_u64(uint64_t pa, uint64_t expected, uint64_t desired,
                                                        Duration& latency) override;

    private:
        bool access(tlm::tlm_command cmd, uint64_t pa, uint64_t& v, Duration& latency);
        VtdIommu& u_;
        Duration base_, start_;
    };
    bool mem_access(tlm::tlm_command cmd, uint64_t addr, void* data, unsigned len, Duration& local,
                    bool allow_dmi = true);
    void invalidate_dmi(sc_dt::uint64 start, sc_dt::uint64 end);
    /// DMI regions granted by the memory, direct-mapped by 4 KiB page number (memories
    /// typically grant one page per request; a larger region may occupy several slots).
    struct DmiSlot {
        uint64_t start = 1, end = 0; ///< empty when start > end
        unsigned char* ptr = nullptr;
        Duration read_latency, write_latency;
        bool read = false, write = false;
    };
    static constexpr size_t kDmiSlots = 4096;
    std::vector<DmiSlot> dmi_ = std::vector<DmiSlot>(kDmiSlots);
    void send_msi(const std::optional<Msi>& msi, Duration& local);
    static Duration now() { return kernel_now(); }

    VtdParams p_;
    tlm::tlm_generic_payload scratch_; ///< payload of the unit's own memory accesses
    stats::Group stats_;
    VtdRegs regs_;
    VtdTableReader reader_;
    SetAssocCache<ContextCacheEntry> context_cache_;
    SetAssocCache<PasidCacheEntry> pasid_cache_;
    SocketWalkPort walk_port_;
    TranslationCore core_;
    std::vector<BusyUntil> walkers_;
    /// Host-speed memo of the last successful resolution of an untranslated request. It is
    /// valid only while no other context- or PASID-cache access has happened since, so the
    /// entries it points to are still the most recently used ones and skipping their LRU touch
    /// changes no replacement decision; lookups are still counted. Cleared by every other
    /// resolve() and by every cache invalidation (never visible in results).
    struct ResolveMemo {
        bool valid = false;
        uint16_t rid = 0;
        bool has_pasid = false;
        uint32_t pasid = 0;
        const PasidCacheEntry* pc = nullptr;
        uint32_t effective_pasid = 0;
    } memo_;
    /// Same rule for the context cache alone (translated requests check only DTE): valid while
    /// the last context-cache access was this RID. Invariant: memo_.valid implies ctx_memo_ is
    /// valid for memo_.rid.
    struct ContextMemo {
        bool valid = false;
        uint16_t rid = 0;
        const ContextCacheEntry* ce = nullptr;
    } ctx_memo_;
    // Hot-path latencies as sc_time, so the IOTLB-hit path needs no conversions.
    sc_core::sc_time pipeline_sc_, ctx_lookup_sc_, pasid_lookup_sc_, iotlb_lookup_sc_;

    // Device-TLB invalidations in flight: per device, a 32-bit ITag bitmap and their deadlines.
    struct Outstanding {
        uint32_t itags = 0;
        std::array<Duration, 32> deadline{};
        std::array<uint64_t, 32> seq{}; ///< descriptor that issued each ITag (phase reporting)
    };
    std::map<uint16_t, Outstanding> devinv_;
    uint32_t devinv_count_ = 0;
    InvalidationObserver* observer_ = nullptr;
    uint64_t seq_ = 0; ///< descriptors consumed since queued invalidation was enabled
    void phase(uint64_t seq, InvalPhase ph, Duration at, pcie::Bdf dev = {}) {
        if (observer_) observer_->on_phase(seq, ph, at, dev);
    }
    sc_core::sc_event engine_kick_;
    sc_core::sc_event devinv_done_;
    std::deque<std::pair<uint64_t, Duration>> tail_writes_; ///< IQT writes not yet consumed: (tail, time)

    // Stats (registered in the constructor).
    stats::Counter& st_requests_;
    stats::Counter& st_translated_;
    stats::Counter& st_translation_requests_;
    stats::Counter& st_blocked_translated_;
    stats::Counter& st_faults_;
    stats::Counter& st_faults_suppressed_;
    stats::Counter& st_snoop_forced_;
    stats::Counter& st_walk_reads_;
    stats::Counter& st_descriptors_;
    stats::Counter& st_iqe_;
    stats::Counter& st_ite_;
    stats::Counter& st_ice_;
    stats::Counter& st_ats_inv_sent_;
    stats::Counter& st_waits_;
    stats::Counter& st_page_requests_;
    stats::Counter& st_prq_overflow_;
    stats::Counter& st_prg_responses_;
    stats::Counter& st_msis_;
    stats::Counter& st_walk_queueing_;
    stats::Histogram& st_wait_latency_;
    stats::Histogram& st_devtlb_latency_;
};

} // namespace iommusim::iommu::vtd
