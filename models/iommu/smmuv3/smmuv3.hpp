// SPDX-License-Identifier: Apache-2.0
#pragma once
// Smmuv3: the Arm SMMUv3 family on the shared IommuShell. Registers, table
// formats, command decode, events and the fault model are this folder's
// kernel-free pieces; the shell provides sockets, the DMA path, the command
// queue engine, the ATS invalidation tracker and the ATS completions.
//
// Fidelity — modelled: StreamID = the requester ID; the STE cache (keyed by
// StreamID) and CD cache (StreamID, SubstreamID) on the shared ConfigCache,
// filled through the unit's memory port and invalidated by CFGI_*; the
// IOTLB and walk caches of the core tagged by VMID + ASID + regime (STRW);
// SMMUEN = 0 passes untranslated traffic through or aborts it as GBPA.ABORT
// says; STE Config = abort terminates without an event; a StreamID outside the
// stream table is C_BAD_STREAMID, recorded only with CR2.RECINVSID (7.3.3);
// configuration errors and
// translation faults become event records in the EVTQ (written while
// EVTQEN, recorded per CD.R / STE.S2R, MSI when IRQ_CTRL.EVTQ_IRQEN and
// EVTQ_IRQ_CFG0 is set); the CMDQ on the shared engine: CONS published as
// commands are consumed, CERROR_ILL / CERROR_ABT leave CONS at the bad
// command with CONS.ERR and GERROR.CMDQ_ERR (MSI per GERROR_IRQ_CFG), an
// ATC invalidation time-out puts CONS back on the command that waited with
// CERROR_ATC_INV_SYNC; fetching resumes when software toggles GERRORN.
// CMD_SYNC's MSI (CS = SIG_IRQ) is a 4-byte write of MSIData to MSIAddress
// issued after every earlier command, ATC invalidations included. PRI Page
// Requests go to the PRIQ (MSI per PRIQ_IRQ_CFG); PRI_RESP sends the PRG
// Response. ATS (IHI 0070 3.9.1): Translation Requests while SMMUEN = 0
// (whatever GBPA says) or on a stream whose effective STE.EATS is 0 (EATS = 0,
// Config bypass, EATS = 2 with ATSCHK = 0) are F_BAD_ATS_TREQ and answered UR;
// Config abort answers UR without an event; EATS = 1 answers with the
// full translation; EATS = 2 (split-stage) answers with stage 1 only (the
// IPA; the IPA is the input when stage 1 is bypassed). Translated (AT=10)
// requests: with CR0.ATSCHK = 0 they pass unchecked (fast mode); with
// ATSCHK = 1 the STE decides: EATS = 1 forwards them,
// EATS = 2 translates their address by the STE's stage 2 (the shell's
// check_s2 step; a fault there is a stage-2 event, S2 = 1, recorded per
// STE.S2R), EATS = 0 or Config bypass is F_TRANSL_FORBIDDEN (as is SMMUEN =
// 0); Config abort terminates.
// Stall model (IHI 0070 3.12.2): a translation fault with CD.S (stage 1,
// STE.S1STALLD = 0) or STE.S2S (stage 2) is held in the unit — the shell
// blocks the requester's thread, so the device's tag and everything behind
// it wait — with a STAG unique among the held transactions (at most
// IDR5.STALL_MAX; beyond that, or when the requester cannot wait, the fault
// terminates as unstalled) and an event with Stall = 1 and the STAG.
// CMD_RESUME (StreamID + STAG) retries it from the start (Retry) or
// terminates it (Terminate / Abort); CMD_STALL_TERM terminates all of a
// StreamID's; RESUME naming no stalled transaction is ignored. A stall
// whose event cannot be written (EVTQ full or disabled) is terminated at
// once: nothing could resume it (estimate; the spec leaves it to software
// to avoid). Clearing CR0.SMMUEN terminates every stalled transaction with an
// abort and frees its STAG (IHI 0070 6.3.9.6); clearing CMDQEN leaves them
// stalled (6.3.9.3 names no effect on them: a RESUME / STALL_TERM after the
// queue is re-enabled still releases them). PRIQ overflow (IHI 0070 8.1): a
// request arriving while the PRIQ is full, or until software acknowledges the
// overflow (CONS.OVACKFLG = PROD.OVFLG), is discarded; a discarded Page
// Request with Last = 1 gets an automatic PRG Response: Success without PASID
// when the request had none (no STE check); with a PASID, Success with it
// when IDR3.PPS = 1 (STE.PPAR not checked), else the STE is checked: Success,
// with the PASID when STE.PPAR = 1, or Failure without PASID when the STE
// cannot be checked (its event recorded only with CR2.REC_CFG_ATS, and
// C_BAD_STREAMID also only with CR2.RECINVSID). With the PRIQ disabled
// (PRIQEN or SMMUEN = 0) or after a PRIQ write error every discarded Page
// Request gets Failure without PASID (8.2). Configuration errors of ATS
// Translation Requests (C_BAD_STREAMID, F_STE_FETCH, C_BAD_STE, C_BAD_SUBSTREAMID,
// F_STREAM_DISABLED, F_CD_FETCH, C_BAD_CD, F_WALK_EABT) and of checked
// translated requests are recorded only with CR2.REC_CFG_ATS (C_BAD_STREAMID of a
// Translation Request also only with RECINVSID, of a translated request
// regardless of it; 3.9.1.2-3; C_BAD_CD
// is not in 3.9.1.2's table but is such an error: treated alike, model's choice). A
// CMD_SYNC is consumed (CONS moves past it) only once it has completed, so
// its slot is never reused before its MSI write (Linux's non-MSI wait polls
// CONS for exactly this). Not modelled: Secure state, GBPA attribute overrides, event
// merging; Completer Abort (the shell answers every refused Translation Request UR).
#include <cstdint>
#include <memory>
#include <optional>

#include "models/iommu/common/config_cache.hpp"
#include "models/iommu/common/iommu_shell.hpp"
#include "models/iommu/smmuv3/smmuv3_cmdqv.hpp"
#include "models/iommu/smmuv3/smmuv3_commands.hpp"
#include "models/iommu/smmuv3/smmuv3_events.hpp"
#include "models/iommu/smmuv3/smmuv3_faults.hpp"
#include "models/iommu/smmuv3/smmuv3_params.hpp"
#include "models/iommu/smmuv3/smmuv3_regs.hpp"
#include "models/iommu/smmuv3/smmuv3_tables.hpp"

namespace iommusim::iommu::smmuv3 {

class Smmuv3 final : public IommuShell {
    friend class IommuShell; // the request path calls the hooks directly (IommuShell::start)

public:
    Smmuv3(const sc_core::sc_module_name& name, const Smmuv3Params& p, stats::Group* parent);
    static ShellParams shell_params(const Smmuv3Params& p);
    const Smmuv3Regs& regs() const { return regs_; }
    /// The CMDQ-Virtualization block beside the unit (Smmuv3Params::cmdqv_vintfs > 0), else nullptr.
    Smmuv3Cmdqv* cmdqv() { return cmdqv_.get(); }

private:
    /// Fault codes the shell carries: an event ID, or a silent termination.
    static constexpr uint32_t kTerminate = 0x100;

    Resolution resolve(pcie::Bdf rid, const RequestAttrs& req, sc_core::sc_time& delay) override {
        if (req.ats) [[unlikely]] return resolve_translation_request(rid, req, delay);
        const uint32_t sid = rid.raw;
        tx_ = Transaction{sid, req.has_pasid, req.pasid, 0, false, req.execute, req.privileged, req.ats};
        // Fast path (inlined into the shell's request path): the same transaction stream as last
        // time, with both caches' memos unchanged: the same lookups (STE, then CD if one was
        // used) hit the same entries.
        if (regs_.enabled(bit::kSmmuEn) && rmemo_.sc && rmemo_.ste == ste_memo_ &&
            (!rmemo_.cd || rmemo_.cd == cd_memo_) && rmemo_.sid == sid && rmemo_.ssv == req.has_pasid &&
            rmemo_.ssid == (req.has_pasid ? req.pasid : 0)) {
            ste_cache_.count_lookup(true);
            if (rmemo_.cd) cd_cache_.count_lookup(true);
            delay += rmemo_.cd ? ste_cd_lookup_sc_ : ste_lookup_sc_;
            current_ = rmemo_.sc;
            return {0, false, &current_->ctx};
        }
        return resolve_tables(sid, req, delay);
    }
    Resolution check_translated(pcie::Bdf rid, const RequestAttrs& req, sc_core::sc_time& delay) override;
    /// An ATS Translation Request: resolved as a transaction, refused (F_BAD_ATS_TREQ) with
    /// SMMUEN = 0 or an effective STE.EATS of 0.
    Resolution resolve_translation_request(pcie::Bdf rid, const RequestAttrs& req, sc_core::sc_time& delay);
    uint32_t fault_reason(const Translation& t, const AccessRequest& a, const TranslationContext& c) const override;
    void record_fault(pcie::Bdf rid, const RequestAttrs& req, uint64_t addr, bool write, uint32_t reason,
                      Duration& local) override;
    void accept_page_request(const pcie::PageRequest& pr, Duration& local) override;
    uint64_t mmio_read(uint32_t offset, unsigned len) override { return regs_.read(offset, len); }
    void mmio_write(uint32_t offset, unsigned len, uint64_t value, Duration& local) override;
    DecodedCommand decode(std::span<const uint64_t> words) override { return decoder_.decode(words); }
    void sync_queue(CommandQueue& q) override;
    void queue_consumed(const Ring::Position& cons) override;
    void report_queue_error(uint32_t code, Duration& local) override;
    uint64_t invalidate_config(uint8_t cache, const ConfigScope& s) override;
    void sync_interrupt(Duration&) override {} // CMD_SYNC's MSI is its status write
    void report_ats_timeout(pcie::Bdf rid, Duration& local) override;
    void report_unknown_itag(pcie::Bdf, Duration&) override {}
    void release_requests(const ReleaseHeldAction& a) override;

    /// The STE of sid through the STE cache; an event (or silent termination) on failure.
    struct SteEntry {
        Ste ste;
        StreamContext no_cd; ///< the context of transactions that use no CD (S2 only, bypass, S1DSS bypass)
    };
    struct Lookup {
        const SteEntry* ste = nullptr;
        Resolution fault;
    };
    Lookup lookup_ste(uint32_t sid, const RequestAttrs& req, Duration& local);
    /// resolve() past its memo: the STE and CD lookups (and bypass when SMMUEN = 0).
    [[gnu::noinline]] Resolution resolve_tables(uint32_t sid, const RequestAttrs& req, sc_core::sc_time& delay);
    /// The same on the request's sc_time (the memo's hit inline, without time conversions).
    Lookup lookup_ste(uint32_t sid, const RequestAttrs& req, sc_core::sc_time& delay) {
        if (ste_memo_ && ste_memo_sid_ == sid) {
            ste_cache_.count_lookup(true);
            delay += ste_lookup_sc_;
            Lookup l;
            l.ste = ste_memo_;
            return l;
        }
        Duration local = from_sc(delay);
        const Lookup l = lookup_ste(sid, req, local);
        delay = to_sc(local);
        return l;
    }
    /// A fault carrying `e` to record_fault().
    Resolution event_fault(const Event& e, bool record = true) const;
    /// The automatic PRG Response to a page request the PRIQ discarded (overflow).
    /// The automatic PRG Response to a discarded page request (`overflow`: discarded because
    /// the PRIQ overflowed, else because it is disabled or had a write error).
    void auto_respond(const pcie::PageRequest& pr, bool overflow, Duration& local);
    /// Whether a configuration error `id` met by an ATS Translation Request, a checked
    /// translated request (`translated`) or a PRIQ-overflow STE.PPAR check is recorded
    /// (CR2.REC_CFG_ATS; C_BAD_STREAMID also needs CR2.RECINVSID, except for translated
    /// requests; IHI 0070 3.9.1.2, 3.9.1.3, 8.1).
    bool records_ats_config_error(uint8_t id, bool translated = false) const {
        return regs_.cr2(bit::kCr2RecCfgAts) &&
               (translated || id != evt::kBadStreamId || regs_.cr2(bit::kCr2RecInvSid));
    }
    /// Applies records_ats_config_error() to a fault `resolve` / `check_translated` prepared.
    Resolution gate_ats_config_error(const Resolution& r, bool translated) const;
    void send_irq(const MsiConfig& m, uint32_t irq_bit, Duration& local);
    void raise_gerror(Gerror e, Duration& local);

    const Smmuv3Params p_;
    std::unique_ptr<Smmuv3Cmdqv> cmdqv_; ///< the CMDQV block, when configured
    Smmuv3Regs regs_;
    Smmuv3TableReader reader_;
    Smmuv3CommandDecoder decoder_;
    ConfigCache<SteEntry> ste_cache_;
    ConfigCache<StreamContext> cd_cache_;
    StreamContext bypass_; ///< SMMUEN = 0 with GBPA.ABORT = 0
    // The transaction being resolved and the event its fault will record (the shell calls
    // resolve / fault_reason / record_fault in turn for one request).
    Transaction tx_;
    const StreamContext* current_ = nullptr;
    mutable Event pending_;
    mutable bool pending_record_ = true;
    mutable bool pending_stall_ = false; ///< the pending fault stalls its transaction
    StallTable stalls_;                  ///< stalled transactions by STAG (cookie = the shell's ticket)
    // Host-speed memos of each config cache's most recent hit or insert (a repeated lookup of the
    // entry touched last changes neither contents, recency nor anything but the hit count, which
    // count_lookup keeps); dropped on every invalidation and replaced by every other lookup.
    const SteEntry* ste_memo_ = nullptr;
    uint32_t ste_memo_sid_ = 0;
    const StreamContext* cd_memo_ = nullptr;
    uint32_t cd_memo_sid_ = 0, cd_memo_ssid_ = 0;
    /// The last resolution (StreamID, SSV, SSID -> context), valid while both memos still hold
    /// the entries it used (no other lookup, insert or invalidation since).
    struct ResolveMemo {
        uint32_t sid = 0;
        bool ssv = false;
        uint32_t ssid = 0;
        const StreamContext* sc = nullptr;
        const SteEntry* ste = nullptr;
        const StreamContext* cd = nullptr; ///< the CD used, nullptr when none
    } rmemo_;
    /// The STE-cache lookup latency, and STE + CD, as sc_time (the memo paths convert nothing).
    sc_core::sc_time ste_lookup_sc_, ste_cd_lookup_sc_;
    stats::Counter& st_events_;
    stats::Counter& st_events_dropped_;
    stats::Counter& st_stalls_;
    stats::Counter& st_stall_retries_;
};

} // namespace iommusim::iommu::smmuv3
