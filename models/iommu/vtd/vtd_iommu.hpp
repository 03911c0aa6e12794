// SPDX-License-Identifier: Apache-2.0
#pragma once
// VtdIommu: an Intel VT-d remapping unit in scalable mode — the shared
// IommuShell (models/iommu/common/iommu_shell.hpp: sockets, DMA path, ATS
// completions, queue engine, ATS invalidation tracking) filled with VT-d's
// register file, table reader, descriptor decoder and fault reasons.
//
// Fidelity — modelled:
//  * Driven only as software drives hardware: MMIO registers (vtd_regs.hpp),
//    tables read from simulated memory through the `mem` socket (root,
//    scalable-mode context, PASID directory/table entries, first/second-stage
//    page tables), invalidation descriptors fetched from the in-memory queue,
//    status words / fault events / page request descriptors / MSIs written
//    to memory.
//  * Caches: context cache keyed by RID and PASID cache keyed by (RID, PASID)
//    tagged with DID (ConfigCache), IOTLB tagged by DID+PASID and
//    paging-structure caches (the core); sizes, ways, latencies as params.
//    Requests without PASID use the context entry's RID_PASID. One-entry memos
//    of the last (RID, PASID) resolution and of the last RID's context entry
//    are host-speed shortcuts only: they are valid only while those cache
//    entries are the most recently used ones and are dropped by any other
//    context/PASID-cache access or invalidation, so LRU decisions, lookup/hit
//    counts and charged latencies are exactly those without them.
//  * Invalidation queue (§6.5.2) on the shell's engine: 128/256-bit
//    descriptors decoded into generic actions (IQH moves past a descriptor
//    once it is fetched and valid); device-TLB invalidations bounded by the
//    descriptor's MIP; IQE on malformed descriptors (IQH left on the offending
//    descriptor, fetching stops until FSTS.IQE is cleared); ITE when a device
//    does not answer within `ite_timeout` (the pending wait is aborted and
//    skipped, fetching stops until FSTS.ITE is cleared); ICE for completions
//    with an unknown ITag.
//  * ATS: translation requests answered only when the context entry has DTE;
//    translated requests from devices without DTE are blocked and recorded
//    (fault 0x44).
//  * Faults: primary fault recording with architected scalable-mode reasons,
//    FPD suppression, fault event MSI (§7.2, §7.3).
//  * Page requests: descriptors written to the page request queue (a
//    RecordRing over PQA/PQH/PQT), PPR/PRO, page request event; page group
//    responses (descriptor type 9) sent as PRG Response messages. Overflow
//    auto-responds Success when the request was the last of its group (§7.5.1).
//  * Snoop control: No-Snoop requests are forced snooped when the PASID entry
//    has PGSNP or the leaf has SNP (ECAP.SC), counted.
// Not modelled: legacy (non-scalable) mode, interrupt remapping, register-based
// invalidation, drain semantics beyond ordering (reads/writes complete in
// b_transport order so DR/DW/PD are satisfied trivially), the wait descriptor
// without FN being overtaken by later descriptors (the engine is in order, a
// legal implementation), hardware A/D updates on the first stage under nesting
// beyond what the core's walker does, performance-monitoring registers.
#include <cstdint>
#include <optional>
#include <systemc>

#include "models/iommu/common/config_cache.hpp"
#include "models/iommu/common/iommu_shell.hpp"
#include "models/iommu/common/record_ring.hpp"
#include "models/iommu/vtd/vtd_descriptors.hpp"
#include "models/iommu/vtd/vtd_params.hpp"
#include "models/iommu/vtd/vtd_regs.hpp"
#include "models/iommu/vtd/vtd_tables.hpp"

namespace iommusim::iommu::vtd {

class VtdIommu final : public IommuShell {
    friend class IommuShell; // the request path calls the hooks directly (see IommuShell::start)

public:
    VtdIommu(const sc_core::sc_module_name& name, const VtdParams& p, stats::Group* parent = nullptr);

    const VtdRegs& regs() const { return regs_; }
    const VtdParams& params() const { return p_; }

    /// Configuration caches as InvalidateConfig names them.
    enum ConfigCacheId : uint8_t { kContextCache = 0, kPasidCache = 1 };

private:
    struct PasidCacheEntry {
        uint64_t pasid_dir = 0; ///< the directory the entry was read through (a changed context misses)
        PasidEntry entry;
        TranslationContext ctx;
    };
    using ContextCache = ConfigCache<SmContextEntry>;
    using PasidCache = ConfigCache<PasidCacheEntry>;
    struct Resolved {
        uint8_t fault = 0;
        bool fpd = false;
        const TranslationContext* ctx = nullptr;
    };
    /// Context + PASID resolution through the caches; table reads charge `delay`.
    /// `context_only`: stop after the context-entry checks (translated requests carry no PASID).
    Resolved resolve_entries(pcie::Bdf rid, const RequestAttrs& req, sc_core::sc_time& delay, bool context_only);
    void msi(const std::optional<Msi>& m, Duration& local) {
        if (m) send_msi(m->address, m->data, local);
    }

    // ---- the shell's hooks ---------------------------------------------------------------
    Resolution resolve(pcie::Bdf rid, const RequestAttrs& req, sc_core::sc_time& delay) override {
        // Fast path (inlined into the shell's request path): the same (RID, PASID) as the previous
        // untranslated request, without PMR/ER (see ResolveMemo); the charges and counts are
        // those of resolve_entries()'s memo branch.
        if (memo_.valid && memo_.rid == rid.raw && memo_.has_pasid == req.has_pasid && memo_.pasid == req.pasid &&
            !req.privileged && !req.execute && !req.ats && !req.page_request && regs_.root_table_set()) {
            delay += ctx_lookup_sc_;
            delay += pasid_lookup_sc_;
            context_cache_.count_lookup(true);
            pasid_cache_.count_lookup(true);
            const TranslationContext& ctx = memo_.pc->value.ctx;
            return Resolution{0, ctx.fault_suppress, &ctx};
        }
        const Resolved r = resolve_entries(rid, req, delay, false);
        return Resolution{r.fault, r.fpd, r.ctx};
    }
    Resolution check_translated(pcie::Bdf rid, const RequestAttrs& req, sc_core::sc_time& delay) override;
    uint32_t fault_reason(const Translation& t, const AccessRequest& a, const TranslationContext& c) const override;
    void record_fault(pcie::Bdf rid, const RequestAttrs& req, uint64_t addr, bool write, uint32_t reason,
                      Duration& local) override;
    void accept_page_request(const pcie::PageRequest& pr, Duration& local) override;
    uint64_t mmio_read(uint32_t offset, unsigned len) override { return regs_.read(offset, len); }
    void mmio_write(uint32_t offset, unsigned len, uint64_t value, Duration& local) override;
    DecodedCommand decode(std::span<const uint64_t> words) override;
    void sync_queue(CommandQueue& q) override;
    void queue_consumed(const Ring::Position& cons) override { regs_.set_iqh(cons.offset); }
    void report_queue_error(uint32_t code, Duration& local) override {
        msi(regs_.report_iqe(static_cast<IqeReason>(code)), local);
    }
    uint64_t invalidate_config(uint8_t cache, const ConfigScope& s) override;
    void sync_interrupt(Duration& local) override { msi(regs_.report_wait_complete(), local); }
    void report_ats_timeout(pcie::Bdf rid, Duration& local) override { msi(regs_.report_ite(rid.raw), local); }
    void report_unknown_itag(pcie::Bdf rid, Duration& local) override { msi(regs_.report_ice(rid.raw), local); }

    VtdParams p_;
    VtdRegs regs_;
    VtdTableReader reader_;
    ContextCache context_cache_;
    PasidCache pasid_cache_;
    RecordRing prq_; ///< the page request queue, a view of PQA/PQH/PQT
    /// Host-speed memo of the last successful resolution of an untranslated request. It is
    /// valid only while no other context- or PASID-cache access has happened since, so the
    /// entries it points to are still the most recently used ones and skipping their LRU touch
    /// changes no replacement decision; lookups are still counted. Cleared by every other
    /// resolution and by every configuration-cache invalidation (never visible in results).
    struct ResolveMemo {
        bool valid = false;
        uint16_t rid = 0;
        bool has_pasid = false;
        uint32_t pasid = 0;
        const PasidCache::Entry* pc = nullptr;
    } memo_;
    /// Same rule for the context cache alone (translated requests check only DTE): valid while
    /// the last context-cache access was this RID. Invariant: memo_.valid implies ctx_memo_ is
    /// valid for memo_.rid.
    struct ContextMemo {
        bool valid = false;
        uint16_t rid = 0;
        const ContextCache::Entry* ce = nullptr;
    } ctx_memo_;
    sc_core::sc_time ctx_lookup_sc_, pasid_lookup_sc_;
};

} // namespace iommusim::iommu::vtd
