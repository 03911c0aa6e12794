// SPDX-License-Identifier: Apache-2.0
#pragma once
// AmdIommu: the AMD-Vi IOMMU on the shared IommuShell (models/iommu/common).
//
// Fidelity — modelled: the MMIO register file (amd_regs.hpp); context
// resolution from the real device table and GCR3 tables in memory
// (amd_tables.hpp) through a DTE cache keyed by DeviceID and a context cache
// keyed by (DeviceID, PASID) tagged by DomainID (the GCR3-entry cache); the
// IOTLB and PDE caches of the core tagged by DomainID + PASID (v1 host
// translations as the core's stage 2, v2 guest translations as stage 1); the
// command buffer on the shared queue engine with every command decoded into
// generic actions (amd_cmd_decoder.hpp), an illegal command stopping the buffer
// (CmdBufRun clear, head on the command) with ILLEGAL_COMMAND_ERROR until
// software toggles CmdBufEn; COMPLETION_WAIT's 8-byte store and ComWaitInt + MSI;
// ATS Invalidate Requests tracked with IOTLB_INV_TIMEOUT after Control.InvTimeOut
// (none while it is 0, as after reset); DTE.IR/IW ANDed with the tables' rights for
// every request (one of them alone grants only that access, Mode 0 included) and in
// ATS completions; the v1 leaf's U bit reported as U in ATS completions; the event log
// and PPR log (amd_logs.hpp) with overflow; page requests into the PPR log and
// COMPLETE_PPR_REQUEST as PRG Responses; translated requests and translation
// requests admitted by DTE.I (INVALID_DEVICE_REQUEST otherwise); DTE.SA
// suppressing IO_PAGE_FAULT records.
// Not modelled: interrupt remapping, the exclusion range, the GA log and guest
// vAPIC, performance counters, SNP/RMP checks.
#include <array>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "models/iommu/amd/amd_cmd_decoder.hpp"
#include "models/iommu/amd/amd_hw_viommu.hpp"
#include "models/iommu/amd/amd_logs.hpp"
#include "models/iommu/amd/amd_params.hpp"
#include "models/iommu/amd/amd_regs.hpp"
#include "models/iommu/amd/amd_tables.hpp"
#include "models/iommu/common/config_cache.hpp"
#include "models/iommu/common/iommu_shell.hpp"

namespace iommusim::iommu::amd {

class AmdIommu final : public IommuShell {
public:
    AmdIommu(const sc_core::sc_module_name& name, const AmdParams& p, stats::Group* parent);

    const AmdParams& params() const { return p_; }
    const AmdRegs& regs() const { return regs_; }
    uint64_t events_dropped() const { return events_.dropped(); }
    /// The hardware vIOMMU (AmdParams::viommu_guests > 0), else nullptr.
    AmdHwViommu* hw_viommu() { return hwv_.get(); }

private:
    friend class IommuShell; // the request path calls the hooks directly
    /// A DTE as read from memory (or the read's failure).
    struct DteSlot {
        AmdTableReader::DteRead read;
    };
    /// A resolved context: what a translation needs, or the event to record.
    struct CtxSlot {
        Resolved res;
    };

    /// PASID key of the context cache for requests without PASID (PASIDs are 20 bits).
    static constexpr uint32_t kNoPasid = 1u << 20;
    Resolution resolve(pcie::Bdf rid, const RequestAttrs& req, sc_core::sc_time& delay) override {
        // Fast path (inlined into the shell's request path): the same (DeviceID, PASID) as the last
        // resolution, a cached translating context. (Only translating contexts are cached, so the
        // memo holds one; a blocked DTE is rare.)
        if (memo_ && memo_dev_ == rid.raw && memo_key_ == (req.has_pasid ? req.pasid : kNoPasid) && !req.ats &&
            (memo_->dte.ir || memo_->dte.iw || !memo_->check_ir_iw)) {
            ctx_cache_.count_lookup(true);
            delay += ctx_lookup_sc_;
            return {0, false, &memo_->ctx};
        }
        return resolve_tables(rid, req, delay);
    }
    Resolution check_translated(pcie::Bdf rid, const RequestAttrs& req, sc_core::sc_time& delay) override;
    /// resolve() past its memo: the context cache, the tables, the DTE's checks.
    [[gnu::noinline]] Resolution resolve_tables(pcie::Bdf rid, const RequestAttrs& req, sc_core::sc_time& delay);
    uint32_t fault_reason(const Translation& t, const AccessRequest& a, const TranslationContext& c) const override;
    void record_fault(pcie::Bdf rid, const RequestAttrs& req, uint64_t addr, bool write, uint32_t reason,
                      Duration& local) override;
    void accept_page_request(const pcie::PageRequest& pr, Duration& local) override;
    uint64_t mmio_read(uint32_t offset, unsigned len) override;
    void mmio_write(uint32_t offset, unsigned len, uint64_t value, Duration& local) override;
    DecodedCommand decode(std::span<const uint64_t> words) override;
    void note_iotlb_command(uint16_t devid, uint64_t at);
    void sync_queue(CommandQueue& q) override;
    void queue_consumed(const Ring::Position& cons) override { regs_.hw_set_cmd_head(static_cast<uint32_t>(cons.offset)); }
    void report_queue_error(uint32_t code, Duration& local) override;
    uint64_t invalidate_config(uint8_t cache, const ConfigScope& s) override;
    void sync_interrupt(Duration& local) override;
    void report_ats_timeout(pcie::Bdf rid, Duration& local) override;
    void report_unknown_itag(pcie::Bdf, Duration&) override {} // no AMD-Vi event for it (counted by the shell)

    /// The DTE of `devid` through the DTE cache (reads charged to `local`).
    const AmdTableReader::DteRead& dte(uint16_t devid, Duration& local);
    /// The context of (devid, PASID or none) through the context cache.
    const Resolved& context(uint16_t devid, const RequestAttrs& req, Duration& local);
    void log_event(const Event& e, Duration& local);
    void msi(Duration& local);

    static ShellParams shell_params(const AmdParams& p);

    /// What the hardware vIOMMU's guest commands do to the unit's caches (entries dropped).
    uint64_t execute_guest_action(const CommandAction& a);

    AmdParams p_;
    AmdRegs regs_;
    AmdTableReader reader_;
    ConfigCache<DteSlot> dte_cache_;
    ConfigCache<CtxSlot> ctx_cache_;
    AmdLog events_{AmdLog::Which::event};
    AmdLog ppr_{AmdLog::Which::ppr};
    /// The last INVALIDATE_IOTLB_PAGES address per DeviceID, sorted by DeviceID (a few ATS devices).
    std::vector<std::pair<uint16_t, uint64_t>> iotlb_cmd_addr_;
    /// What resolve() found about a failure that record_fault() reports (same call).
    uint64_t pending_hw_addr_ = 0;
    std::unique_ptr<AmdHwViommu> hwv_; ///< the hardware vIOMMU, when configured
    /// Host-speed memo of the context cache's most recent hit (DMA streams repeat one
    /// (DeviceID, PASID)): counted as a hit, dropped on every insert and invalidation, so the
    /// cache's contents, recency and stats are exactly as without it.
    const Resolved* memo_ = nullptr;
    uint16_t memo_dev_ = 0;
    uint32_t memo_key_ = 0;
    sc_core::sc_time ctx_lookup_sc_;
    /// The same for the DTE cache (translated requests look up only the DTE).
    const AmdTableReader::DteRead* dte_memo_ = nullptr;
    uint16_t dte_memo_dev_ = 0;
    sc_core::sc_time dte_lookup_sc_;
    /// Results that are not cached (read errors, events), returned by reference like cache entries.
    AmdTableReader::DteRead dte_miss_;
    Resolved ctx_miss_;
    stats::Counter& st_events_;
    stats::Counter& st_events_dropped_;
};

} // namespace iommusim::iommu::amd
