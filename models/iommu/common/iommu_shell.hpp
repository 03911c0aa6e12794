// SPDX-License-Identifier: Apache-2.0
#pragma once
// IommuShell: the SystemC shell every IOMMU family shares. It owns what is
// not architecture-specific and calls the family's hooks for the rest.
//
// Fidelity — modelled:
//  * Sockets: `upstream` (DMA, ATS translation requests, messages from
//    devices), `mem` (forwarded DMA; the unit's own table, queue, status,
//    record and MSI accesses), `mmio` (the family's register file), `ats_inv`
//    (messages routed down: ATS Invalidate Requests, PRG Responses).
//  * The unit's own memory accesses use TLM DMI when the memory grants it
//    (same data, the latency the target reports); MSIs always use
//    b_transport (they target the interrupt range, not RAM).
//  * One DMA path: pass-through when the family says translation is off;
//    translated (AT=10) requests checked by the family (ATS enabled for the
//    device) and forwarded — under split-stage ATS (the context's
//    ats_split_stage) their address is an IPA that stage 2 translates
//    (TranslationCore::check_s2, a walk slot on a stage-2 cache miss) and
//    Translation Requests get stage 1 alone (translate_s1); untranslated requests resolved by the family into
//    a TranslationContext, translated by the core (IOTLB, walk in a walk slot
//    — `walkers` BusyUntil resources, queueing counted), No-Snoop forced when
//    the context or the leaf requires snooping, forwarded with the output
//    address; which cache served it is reported to the initiator (oracle).
//    Loosely timed: annotated delay, no wait() per request.
//  * ATS translation completions built from the walk (range by S bit,
//    R/W/U/Exe/Priv/Global/N; PCIe Base §10.2.3); a page-level failure gives
//    R=W=0 (not a fault); context-level failures are recorded and answered UR.
//  * The command-queue engine (SC_THREAD over the plain CommandQueue): fetch,
//    decode hook, generic actions, a sync completing only after every earlier
//    command including device-ATC invalidations, halt on error. Loosely timed
//    (TLM-2.0 LT): the engine accumulates each step's cost as local time and
//    synchronises (one wait()) only where it interacts — a sync's status write,
//    an ATS message leaving for a device, a queue error, going idle, a tail
//    written later than its local time. Each step's time is still its own:
//    phases, latencies and the consumer position software reads (published
//    when the kernel's time reaches the step) are those of a wait per step.
//    Cache invalidations take effect when the engine executes them, up to one
//    sync batch's duration ahead of their step's time.
//  * Held requests (SMMUv3 stall model): a family may hold a faulting
//    request while recording its fault; the requester's thread then blocks
//    in b_transport (its tag, credits and everything behind it stay
//    occupied) until a command releases it: retried from the start, or
//    answered with an error. Only requests from threads can be held.
//  * Device-ATC invalidations tracked by AtsInvalidationTracker with ONE
//    timer per engine armed at the earliest deadline (time-outs reported to
//    the family); Invalidate Completions with unknown ITags reported. A
//    second queue engine beside the unit (SMMUv3 CMDQV) sends through the
//    same tracker as a second issuer: one ITag space and queue depth per
//    device, each engine's sync waiting for its own invalidations only.
// Not modelled here: anything architectural (the family's hooks), the time a
// context-cache or IOTLB lookup takes beyond the configured lookup latency.
#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <systemc>
#include <unordered_map>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>
#include <vector>

#include "models/common/busy_pool.hpp"
#include "models/common/sc_time.hpp"
#include "models/common/stats.hpp"
#include "models/common/time.hpp"
#include "models/common/trace.hpp"
#include "models/iommu/common/ats_inv_tracker.hpp"
#include "models/iommu/common/cmd_queue.hpp"
#include "models/iommu/common/inval_observer.hpp"
#include "models/iommu/common/request_attrs.hpp"
#include "models/iommu/common/translation.hpp"
#include "models/iommu/common/translation_core.hpp"
#include "models/iommu/common/unit_mem_port.hpp"
#include "models/iommu/common/walk_mem_port.hpp"
#include "models/mem/phys_mem.hpp"
#include "models/pcie/tlp.hpp"

namespace iommusim::iommu {

/// The unit-side costs every family's params name (each with its JSON `*_ns` row).
struct UnitCosts {
    Duration pipeline;             ///< fixed per-request latency in the unit
    Duration mmio_access;          ///< one register access
    Duration table_read;           ///< unit-side cost of each table read on top of the memory's latency
    Duration status_write;         ///< status word / record / MSI write (also the sync's store)
    Duration command_fetch;        ///< unit-side cost of one command fetch on top of the memory read
    Duration per_command;          ///< decode and dispatch of one command
    Duration per_entry_invalidate; ///< per cache entry an invalidation drops
    Duration ats_message_send;     ///< formatting and issuing one ATS / PRG message
};

/// What the shell needs from the family's params.
struct ShellParams {
    TranslationCoreParams core;
    Duration iotlb_lookup;     ///< charged before every IOTLB lookup
    uint32_t walkers = 1;      ///< concurrent page walks
    Duration pipeline;         ///< fixed per-request latency in the unit
    Duration mmio_access;      ///< one register access
    Duration table_read;       ///< unit-side cost of each table read on top of the memory's latency
    Duration status_write;     ///< posted write of a status word / record / MSI
    Duration ats_timeout;      ///< device-ATC invalidation time-out
    CommandQueueCosts queue;
    uint32_t mmio_size = 0x1000;
    bool snoop_control = true; ///< the leaf's snoop bit forces snooping
    bool ats = true;           ///< ATS translation requests are served
    /// The consumer position moves past a sync only when it completes (SMMUv3: software
    /// learns a CMD_SYNC's completion from CONS passing it, and may reuse its slot only then);
    /// other commands, and every family's syncs otherwise, are consumed when fetched.
    bool sync_consumed_at_completion = false;

    /// A family's shell: its IOTLB, walk caches, walk slots, costs, ATS time-out and register
    /// window (snoop_control and ats keep their defaults; the family sets them after).
    static ShellParams of(const CacheGeometry& iotlb, Duration iotlb_lookup, const WalkerParams& walker,
                          uint32_t walkers, const UnitCosts& c, Duration ats_timeout, uint32_t mmio_size) {
        ShellParams s;
        s.core = TranslationCoreParams{IotlbParams{iotlb}, walker};
        s.iotlb_lookup = iotlb_lookup;
        s.walkers = walkers;
        s.pipeline = c.pipeline;
        s.mmio_access = c.mmio_access;
        s.table_read = c.table_read;
        s.status_write = c.status_write;
        s.ats_timeout = ats_timeout;
        s.queue = CommandQueueCosts{c.command_fetch, c.per_command, c.per_entry_invalidate, c.ats_message_send,
                                    c.status_write};
        s.mmio_size = mmio_size;
        return s;
    }
};

/// The family's names (and descriptions) for the shell's statistics; registered in this
/// order, so a family keeps its stats.json layout.
struct ShellStatNames {
    struct Name {
        const char* name;
        const char* description;
    };
    Name requests{"requests", "memory requests received from devices"};
    Name translated{"translated_requests", "translated (AT=10) requests received"};
    Name translation_requests{"translation_requests", "ATS translation requests answered"};
    Name translated_blocked{"translated_blocked", "translated requests blocked: ATS not enabled for the device"};
    Name faults{"faults", "translation faults detected"};
    Name faults_suppressed{"faults_suppressed", "faults not recorded (suppressed by the context)"};
    Name snoop_forced{"snoop_forced", "No-Snoop requests forced snooped"};
    Name no_snoop_to_memory{"no_snoop_to_memory", "requests forwarded to memory with No-Snoop still set (their domain does not enforce coherency)"};
    Name table_reads{"table_reads", "memory reads for context entries and walks"};
    Name commands{"commands", "commands executed"};
    Name queue_errors{"queue_errors", "command queue errors"};
    Name ats_timeouts{"ats_timeouts", "device-ATC invalidation time-outs"};
    Name unknown_itags{"unknown_itags", "invalidation completions with an unknown ITag"};
    Name ats_inv_sent{"ats_invalidations_sent", "ATS Invalidate Requests sent"};
    Name syncs{"syncs", "sync commands completed"};
    Name page_requests{"page_requests", "page requests recorded"};
    Name page_request_overflows{"page_request_overflows", "page requests dropped: queue full"};
    Name prg_responses{"prg_responses", "PRG Responses sent to devices"};
    Name msis{"msis", "interrupt messages written"};
    Name walk_queueing{"walk_queueing_ns", "total time IOTLB misses waited for a free walk slot"};
    Name sync_latency{"sync_latency", "sync: the tail write that submitted it to its completion"};
    Name atc_inv_latency{"atc_invalidation_latency", "ATS Invalidate Request to Completion"};
};

class IommuShell : public sc_core::sc_module, protected CommandDecoder {
public:
    tlm_utils::simple_target_socket<IommuShell> upstream;
    tlm_utils::simple_initiator_socket<IommuShell> mem;
    tlm_utils::simple_target_socket<IommuShell> mmio;
    tlm_utils::simple_initiator_socket<IommuShell> ats_inv;

    /// Receives the phase timestamps of queued invalidation (host latency breakdown).
    void set_invalidation_observer(InvalidationObserver* o) {
        observer_ = o;
        if (o) o->on_attached_to_unit();
    }
    /// Reports page walks (one track per walk slot), faults, page requests and the command
    /// queue's occupancy to `r` (trace.json); null = off.
    void set_trace(trace::Recorder* r);
    stats::Group& stats_group() { return stats_; }

protected:
    IommuShell(const sc_core::sc_module_name& name, const ShellParams& p, const ShellStatNames& names,
               uint32_t queue_fetch_error, Ring::Index queue_style, stats::Group* parent);
    /// Builds the translation core and binds the request path to `Family`'s hooks. Called at
    /// the end of the family's constructor (so the family's own caches come first in the
    /// stats tree). `Family` is the final class: the per-request path calls its resolve(),
    /// check_translated() and fault_reason() directly (no virtual dispatch on the hot path),
    /// so the family declares `friend class IommuShell;`.
    template <class Family>
    void start() {
        build_core();
        upstream.register_b_transport(this, &IommuShell::b_transport_upstream<Family>);
    }

    // ---- hooks a family fills ------------------------------------------------------------
    struct Resolution {
        uint32_t fault = 0;     ///< the family's fault code, 0 = none
        bool suppress = false;  ///< do not record the fault (VT-d FPD, SMMUv3 STE.S1DSS...)
        const TranslationContext* ctx = nullptr;
    };
    /// (RID, PASID) -> context or fault; table reads and cache lookups charged to `delay`.
    virtual Resolution resolve(pcie::Bdf rid, const RequestAttrs& req, sc_core::sc_time& delay) = 0;
    /// A translated (AT=10) request: may this device use translations? (fault = block it;
    /// a context = split-stage ATS: the address is an IPA its stage 2 translates).
    virtual Resolution check_translated(pcie::Bdf rid, const RequestAttrs& req, sc_core::sc_time& delay) = 0;
    /// The family's fault code for a translation the core refused.
    virtual uint32_t fault_reason(const Translation& t, const AccessRequest& a, const TranslationContext& c) const = 0;
    /// Records a fault that is not suppressed (fault registers / event queue), sends its interrupt.
    virtual void record_fault(pcie::Bdf rid, const RequestAttrs& req, uint64_t addr, bool write, uint32_t reason,
                              Duration& local) = 0;
    /// A PRI Page Request from a device.
    virtual void accept_page_request(const pcie::PageRequest& pr, Duration& local) = 0;
    /// Register file (4- or 8-byte, naturally aligned accesses inside mmio_size).
    virtual uint64_t mmio_read(uint32_t offset, unsigned len) = 0;
    virtual void mmio_write(uint32_t offset, unsigned len, uint64_t value, Duration& local) = 0;
    /// Brings the queue (ring positions, enable, halt, tail errors) in step with the registers.
    virtual void sync_queue(CommandQueue& q) = 0;
    /// The queue consumed commands: publish consumer position `cons` in the registers. Called
    /// when the kernel's time reaches the step that consumed it (the engine runs ahead in
    /// local time), or before a register access that could see it.
    virtual void queue_consumed(const Ring::Position& cons) = 0;
    /// The queue halted with `code` (tail, fetch, decode error): set the error state, interrupt.
    virtual void report_queue_error(uint32_t code, Duration& local) = 0;
    /// Invalidates the family's configuration cache `cache`; returns entries dropped.
    virtual uint64_t invalidate_config(uint8_t cache, const ConfigScope& s) = 0;
    /// Sync with its interrupt flag completed: the family's completion interrupt.
    virtual void sync_interrupt(Duration& local) = 0;
    /// No Invalidate Completion from `rid` before the deadline / a completion with unknown ITags.
    virtual void report_ats_timeout(pcie::Bdf rid, Duration& local) = 0;
    virtual void report_unknown_itag(pcie::Bdf rid, Duration& local) = 0;
    /// A command releases held requests (ReleaseHeldAction): the family maps its tags to the
    /// tickets of hold_request() and calls release_held(). Families that never hold: nothing.
    virtual void release_requests(const ReleaseHeldAction&) {}
    // (CommandDecoder::decode is the command-decode hook.)

    // ---- what the shell offers a family ------------------------------------------------------
    /// Whether DMA is translated at all (else addresses are physical); the family keeps it in
    /// step with its enable bit (a flag, not a hook: it is read by every request).
    void set_translation_enabled(bool on) { translating_ = on; }
    bool translation_enabled() const { return translating_; }
    /// Whether the command being executed has been consumed (the consumer position is past it).
    bool command_consumed() const { return command_consumed_; }
    /// The unit's own memory access (DMI when granted); `local` gets the latency.
    bool mem_access(tlm::tlm_command cmd, uint64_t addr, void* data, unsigned len, Duration& local,
                    bool allow_dmi = true);
    /// Interrupt message: a dword write (never through DMI), costs status_write.
    void send_msi(uint64_t address, uint32_t data, Duration& local);
    /// A message down to a device (ATS Invalidate Request, PRG Response).
    void send_message(pcie::MessageExtension& m, uint64_t payload, Duration& local);
    /// PRG Response for the last request of a page request group (none is owed otherwise).
    void respond_page_request(const pcie::PageRequest& pr, pcie::PrgResponseCode code, Duration& local);
    /// Starts the queue engine at local time `local` (software wrote the tail, enabled, cleared an error).
    void kick_queue(Duration local) {
        queue_view_stale_ = true;
        engine_kick_.notify(to_sc(local));
    }
    /// Software wrote the tail (byte offset `tail` in the queue) at absolute time `at`. Kept per
    /// write: a sync's latency runs from the write that submitted it, not the last write by any
    /// CPU (with two drivers on one unit that one can be later than the sync's completion).
    void note_tail_write(Duration at, uint64_t tail) {
        if (tail != queue_.ring().cons_offset()) tail_writes_.emplace_back(tail, at);
    }
    /// Software re-enabled the queue: earlier tail writes are void.
    void forget_tail_writes() { tail_writes_.clear(); }
    /// Software programmed the device-ATC invalidation time-out (AMD-Vi Control.InvTimeOut);
    /// AtsInvalidationTracker::kNever for none.
    void set_ats_timeout(Duration t) { ats_.set_timeout(t); }

    // A second queue engine beside the unit (SMMUv3 CMDQV VCMDQs): its ATS Invalidate Requests
    // go out through the unit, with ITags of the same tracker (issuer kAuxIssuer), and their
    // completions come back through it. Call from that engine's SC_THREAD.
    static constexpr uint8_t kAuxIssuer = 1;
    /// Sends one at local time `local` (+ ats_message_send); false, with nothing sent, while the
    /// device's invalidate queue is full.
    bool send_aux_atc_invalidation(const InvalidateDeviceAtc& d, Duration& local);
    /// The second engine's invalidations in flight.
    uint32_t aux_atc_outstanding() const { return ats_.outstanding_of(kAuxIssuer); }
    /// When a wait for them ends: the second engine's earliest deadline (`device` unset), or
    /// `device`'s earliest whoever sent (a full invalidate queue); nothing when none is in flight.
    std::optional<Duration> aux_atc_deadline(std::optional<uint32_t> device) const;
    /// Time-out: forget the second engine's invalidations (of `device`, or all).
    void abandon_aux_atc(std::optional<uint32_t> device);
    /// How long from now until the last Invalidate Completion received has arrived (zero once it has).
    Duration atc_settled_in() const { return aux_last_completion_ > now() ? aux_last_completion_ - now() : Duration{}; }
    /// Notified when an Invalidate Completion arrives.
    const sc_core::sc_event& atc_completion_event() const { return ats_done_.event; }
    /// Table reads of the context resolution as PhysMem, each charged to `local` plus table_read.
    class TableMem final : public mem::PhysMem {
    public:
        TableMem(IommuShell& u, Duration& local) : u_(u), local_(local) {}
        void read(uint64_t pa, void* dst, size_t len) override;
        void write(uint64_t pa, const void* src, size_t len) override;
        unsigned reads() const { return reads_; }

    private:
        IommuShell& u_;
        Duration& local_;
        unsigned reads_ = 0;
    };
    /// Whether the request being handled may be held: its initiator is a thread (b_transport may wait).
    static bool can_hold();
    /// Holds the request whose fault record_fault() is recording (called from record_fault):
    /// the requester blocks until release_held(ticket, ...). Returns the ticket.
    uint64_t hold_request();
    /// Releases a held request at local time `local` (relative to now): retried from the start
    /// (`retry`) or terminated with an error response. Unknown tickets are ignored.
    void release_held(uint64_t ticket, bool retry, Duration local = {});
    size_t held_requests() const { return held_.size(); }
    /// A fault was detected: counted, and recorded through record_fault() unless suppressed.
    void fault_detected(pcie::Bdf rid, const RequestAttrs& req, uint64_t addr, bool write, uint32_t reason,
                        bool suppress, Duration& local);
    void count_table_reads(uint64_t n) { st_table_reads_.inc(n); }
    void count_page_request() { st_page_requests_.inc(); }
    void count_page_request_overflow() { st_page_request_overflows_.inc(); }
    UnitMemPort& unit_port() { return unit_port_; }
    CommandQueue& queue() { return queue_; }
    TranslationCore& core() { return *core_; }
    static Duration now() { return kernel_now(); }

    const ShellParams sp_;

private:
    void build_core();
    static RequestAttrs attrs_of(const pcie::TlpExtension& ext) {
        RequestAttrs r;
        r.has_pasid = ext.pasid_present;
        r.pasid = ext.pasid;
        r.privileged = ext.privileged;
        r.execute = ext.execute;
        return r;
    }
    template <class Family>
    void b_transport_upstream(tlm::tlm_generic_payload& t, sc_core::sc_time& delay);
    template <class Family>
    [[gnu::cold, gnu::noinline]] void traced_request(tlm::tlm_generic_payload& t, pcie::TlpExtension& ext,
                                                     sc_core::sc_time& delay);
    template <class Family>
    void handle_dma(Family& f, tlm::tlm_generic_payload& t, pcie::TlpExtension& ext, sc_core::sc_time& delay);
    void upstream_message(tlm::tlm_generic_payload& t, sc_core::sc_time& delay);
    /// Answers a faulting request with an error; true when the family held it and software
    /// released it for a retry (the caller then handles the request again).
    [[nodiscard]] bool fail_request(tlm::tlm_generic_payload& t, pcie::TlpExtension& ext,
                                    const RequestAttrs& req, uint32_t reason, bool suppress, sc_core::sc_time& delay);
    /// Blocks the requester of a held request until it is released; true = retry.
    bool wait_held(uint64_t ticket, sc_core::sc_time& delay);
    void b_transport_mmio(tlm::tlm_generic_payload& t, sc_core::sc_time& delay);
    void handle_translation_request(tlm::tlm_generic_payload& t, pcie::TlpExtension& ext, sc_core::sc_time& delay);
    void handle_message(const pcie::MessageExtension& m, Duration& local);
    /// An ATS Translation Request's walk (`stage1_only`: split-stage ATS, the output is the IPA).
    TranslateResult translate(const TranslationContext& ctx, const AccessRequest& a, sc_core::sc_time& delay,
                              bool stage1_only);
    /// A translated request under split-stage ATS: its address is an IPA, translated by ctx's stage 2.
    template <class Family>
    [[gnu::noinline]] void translated_stage2(Family& f, tlm::tlm_generic_payload& t, pcie::TlpExtension& ext,
                                             const RequestAttrs& req, const TranslationContext& ctx,
                                             sc_core::sc_time& delay);
    void account_walk(const TranslateResult& r, sc_core::sc_time& delay);
    /// A request (DMA or ATS translation) from arrival to its response, on its requester's track.
    void trace_request(const tlm::tlm_generic_payload& t, const pcie::TlpExtension& ext, Duration from, Duration to);
    void invalidate_dmi(sc_dt::uint64 start, sc_dt::uint64 end);

    // queue engine
    void queue_engine();
    /// Moves the consumer position past the command just fetched and publishes it.
    void consume_fetched();
    /// Executes one action; false when a device-ATC time-out aborted the command.
    bool execute(const CommandAction& a, uint64_t seq);
    bool issue_atc_invalidation(const InvalidateDeviceAtc& d, uint64_t seq);
    /// Allocates the ITag (as sent at now() + local) and sends the request; `local` gets the send.
    void send_atc_request(const pcie::AtsInvalidateRequest& r, uint64_t cookie, uint8_t issuer, Duration& local);
    bool wait_for_atc_invalidations();
    void wait_ats(Duration deadline);
    bool completion_pending() const;
    void notify_completion(Duration local);
    /// The engine's time: the kernel's plus the local time it has run ahead.
    Duration engine_now() const { return now() + ahead_; }
    /// Synchronises the engine with the kernel (one wait() for the local time run ahead) and
    /// publishes the consumer position reached.
    void engine_sync();
    /// engine_sync(), then whether the command being executed still belongs to the live queue.
    bool engine_sync_live();
    /// Synchronises up to absolute time `at` (later than engine_now()).
    void engine_sync_until(Duration at);
    /// Publishes the latest consumer position consumed at or before `t` (all with kNever).
    void publish_consumed(Duration t);
    void phase(uint64_t seq, InvalPhase ph, Duration at, pcie::Bdf dev = {}) {
        if (observer_) observer_->on_phase(seq, ph, at, dev);
    }
    /// The phase at the engine's time (read from the kernel only when someone observes).
    void phase_now(uint64_t seq, InvalPhase ph, pcie::Bdf dev = {}) {
        if (observer_) observer_->on_phase(seq, ph, engine_now(), dev);
    }

    /// The walker's port: each descriptor read is a TLM read on the mem socket at the request's
    /// local time plus the walk so far, plus the unit's per-read overhead.
    class SocketWalkPort final : public WalkMemPort {
    public:
        explicit SocketWalkPort(IommuShell& u) : u_(u) {}
        /// Starts a walk whose first access is issued at local time `at` (relative to now()).
        void begin(Duration at) { base_ = at, start_ = latency(); }

    private:
        bool access(tlm::tlm_command cmd, uint64_t pa, uint64_t& v, Duration& latency);
        // WalkMemPort's accessors; the read has a DMI fast path.
        std::optional<uint64_t> do_read_u64(uint64_t pa, Duration& latency) override;
        bool do_write_u64(uint64_t pa, uint64_t v, Duration& latency) override;
        std::optional<uint64_t> do_compare_exchange_u64(uint64_t pa, uint64_t expected, uint64_t desired,
                                                        Duration& latency) override;
        IommuShell& u_;
        Duration base_, start_;
    };
    class SocketUnitPort final : public UnitMemPort {
    public:
        explicit SocketUnitPort(IommuShell& u) : u_(u) {}
        bool read(uint64_t pa, void* dst, unsigned len, Duration& local) override {
            return u_.mem_access(tlm::TLM_READ_COMMAND, pa, dst, len, local);
        }
        bool write(uint64_t pa, const void* src, unsigned len, Duration& local) override {
            return u_.mem_access(tlm::TLM_WRITE_COMMAND, pa, const_cast<void*>(src), len, local);
        }

    private:
        IommuShell& u_;
    };
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
    tlm::tlm_generic_payload scratch_; ///< payload of the unit's own memory accesses
    stats::Group stats_;
    SocketWalkPort walk_port_;
    SocketUnitPort unit_port_;
    std::optional<TranslationCore> core_;
    BusyPool walkers_; ///< the walk slots
    CommandQueue queue_;
    AtsInvalidationTracker ats_;
    InvalidationObserver* observer_ = nullptr;
    trace::Recorder* trace_ = nullptr;
    uint32_t trace_walkers_ = 0, trace_faults_ = 0, trace_pri_ = 0, trace_queue_ = 0; ///< first walker track, ...
    uint64_t trace_fills_ = 0, trace_completions_ = 0; ///< IOTLB fills by walks, translation completions (ATC fills)
    sc_core::sc_event engine_kick_, ats_timer_;
    /// Invalidate Completions wake the engine through `event`; `due` mirrors the time of its
    /// pending notification so a wake-up by the timer can be told apart (see wait_ats).
    struct CompletionEvent {
        sc_core::sc_event event;
        Duration due;
        bool due_valid = false, delta = false;
        sc_dt::uint64 delta_count = 0;
    } ats_done_;
    Duration ats_timer_at_;
    bool ats_timer_armed_ = false;
    /// Arrival time of the latest Invalidate Completion: the tracker counts it done when the
    /// message is delivered (possibly ahead in local time), a sync may not complete before it.
    Duration ats_last_completion_;
    Duration aux_last_completion_; ///< the same for the second engine's invalidations
    std::deque<std::pair<uint64_t, Duration>> tail_writes_; ///< tail writes not yet consumed: (tail byte offset, time)
    Duration submitted_; ///< when the tail write that submitted the command being executed happened
    bool queue_view_stale_ = true; ///< registers may have changed since the last sync_queue()
    bool command_consumed_ = true; ///< the command being executed is behind the consumer position
    Duration ahead_; ///< local time the engine has run ahead of the kernel (TLM-2.0 LT)
    pcie::MessageSender messages_; ///< ATS Invalidate Requests, PRG Responses (send_message)
    uint64_t command_generation_ = 0; ///< the queue generation of the command being executed
    Duration kernel_; ///< the kernel's time when the engine last looked (loop start, engine_sync)
    /// Consumer positions not yet published: the engine consumed them at local time `at`,
    /// later than the kernel's time (in order; published by publish_consumed).
    struct Consumed {
        Duration at;
        Ring::Position cons;
        uint64_t generation;
    };
    std::vector<Consumed> unpublished_;
    bool translating_ = false;
    /// Held requests by ticket: released (and when, absolute), retry or terminate.
    struct Held {
        bool released = false, retry = false;
        Duration at;
    };
    std::unordered_map<uint64_t, Held> held_;
    uint64_t next_ticket_ = 0, holding_ = 0; ///< holding_: the ticket hold_request() gave the request being failed
    sc_core::sc_event held_released_;
    // Hot-path latencies as sc_time, so the IOTLB-hit path needs no conversions.
    sc_core::sc_time pipeline_sc_, iotlb_lookup_sc_;
    /// The last walk latency converted to sc_time (walks of one shape take the same time:
    /// account_walk converts each distinct latency once, not per walk).
    Duration walk_latency_ = Duration::zero();
    sc_core::sc_time walk_latency_sc_ = sc_core::SC_ZERO_TIME;

protected:
    // Stats, registered in this order (requests .. devtlb latency).
    stats::Counter& st_requests_;
    stats::Counter& st_translated_;
    stats::Counter& st_translation_requests_;
    stats::Counter& st_blocked_translated_;
    stats::Counter& st_faults_;
    stats::Counter& st_faults_suppressed_;
    stats::Counter& st_snoop_forced_;
    stats::Counter& st_no_snoop_to_memory_;
    stats::Counter& st_table_reads_;
    stats::Counter& st_commands_;
    stats::Counter& st_queue_errors_;
    stats::Counter& st_ats_timeouts_;
    stats::Counter& st_unknown_itags_;
    stats::Counter& st_ats_inv_sent_;
    stats::Counter& st_syncs_;
    stats::Counter& st_page_requests_;
    stats::Counter& st_page_request_overflows_;
    stats::Counter& st_prg_responses_;
    stats::Counter& st_msis_;
    stats::Counter& st_walk_queueing_;
    stats::Histogram& st_sync_latency_;
    stats::Histogram& st_atc_inv_latency_;
};

// ---- the per-request path (a template over the final family class, see start()) ------------

template <class Family>
void IommuShell::b_transport_upstream(tlm::tlm_generic_payload& t, sc_core::sc_time& delay) {
    auto* ext = t.get_extension<pcie::TlpExtension>();
    if (!ext) {
        upstream_message(t, delay); // Invalidate Completions, Page Requests
        return;
    }
    st_requests_.inc();
    if (trace_) [[unlikely]] { // one test on the untraced path; the traced one is out of line
        traced_request<Family>(t, *ext, delay);
        return;
    }
    if (ext->at == pcie::AddressType::translation_request) handle_translation_request(t, *ext, delay);
    else handle_dma(static_cast<Family&>(*this), t, *ext, delay);
}

template <class Family>
void IommuShell::traced_request(tlm::tlm_generic_payload& t, pcie::TlpExtension& ext, sc_core::sc_time& delay) {
    const Duration start = now() + from_sc(delay);
    if (ext.at == pcie::AddressType::translation_request) handle_translation_request(t, ext, delay);
    else handle_dma(static_cast<Family&>(*this), t, ext, delay);
    trace_request(t, ext, start, now() + from_sc(delay));
}

template <class Family>
void IommuShell::handle_dma(Family& f, tlm::tlm_generic_payload& t, pcie::TlpExtension& ext,
                            sc_core::sc_time& delay) {
    // The hit path stays in sc_time arithmetic (no conversions, no wait()).
    delay += pipeline_sc_;
    const uint64_t iova = t.get_address();
    if (!translating_) { // remapping off: addresses are physical
        ext.served_by = pcie::TlpExtension::Source::pass_through;
        ext.output_address = iova;
        mem->b_transport(t, delay);
        return;
    }
    RequestAttrs req = attrs_of(ext);
    if (ext.at == pcie::AddressType::translated) {
        st_translated_.inc();
        req.ats = true;
        const Resolution r = f.check_translated(ext.requester, req, delay);
        if (r.fault) { // translated requests need a device with ATS enabled (PCIe Base §10.1)
            st_blocked_translated_.inc();
            if (fail_request(t, ext, req, r.fault, r.suppress, delay)) handle_dma(f, t, ext, delay);
            return;
        }
        if (r.ctx) [[unlikely]] {
            translated_stage2(f, t, ext, req, *r.ctx, delay);
            return;
        }
        // No-Snoop of translated requests was settled by the completion's N bit.
        if (ext.no_snoop) st_no_snoop_to_memory_.inc();
        mem->b_transport(t, delay);
        return;
    }
    const Resolution r = f.resolve(ext.requester, req, delay);
    if (r.fault) {
        if (fail_request(t, ext, req, r.fault, r.suppress, delay)) handle_dma(f, t, ext, delay);
        return;
    }
    const TranslationContext& ctx = *r.ctx;
    uint64_t pa = iova;
    bool snoop = ctx.force_snoop;
    ext.served_by = pcie::TlpExtension::Source::pass_through;
    const AccessRequest a{iova, t.is_write(), req.execute, req.privileged};
    if (!ctx.pass_through) {
        delay += iotlb_lookup_sc_;
        // TranslationCore::translate() in its two halves: an IOTLB hit inline, without building
        // a TranslateResult; the walk (and its slot) only on a miss.
        const uint64_t va = TranslationCore::input_of(ctx, iova);
        IotlbHit h;
        if (core_->lookup(ctx, a, va, h)) [[likely]] {
            ext.served_by = pcie::TlpExtension::Source::iotlb;
            const uint64_t mask = (uint64_t{1} << h.page_shift) - 1;
            pa = (h.entry.output & ~mask) | (iova & mask);
            snoop = snoop || (sp_.snoop_control && h.entry.snoop);
        } else {
            walk_port_.begin(from_sc(delay));
            const TranslateResult res = core_->miss(ctx, a, va);
            account_walk(res, delay);
            const Translation& tr = res.t;
            ext.served_by = pcie::TlpExtension::Source::walk;
            if (!tr.ok()) {
                // A held (stalled) request comes back here when software retries it.
                if (fail_request(t, ext, req, f.fault_reason(tr, a, ctx), ctx.fault_suppress, delay))
                    handle_dma(f, t, ext, delay);
                return;
            }
            const uint64_t mask = (uint64_t{1} << tr.page_shift) - 1;
            pa = (tr.output & ~mask) | (iova & mask);
            snoop = snoop || (sp_.snoop_control && tr.snoop);
        }
    }
    if (ctx.rights != perm::all) [[unlikely]] {
        // The context's own rights, checked after the walk (a page that is not present is
        // reported as such, not as a permission fault).
        if (const uint8_t need = perm::needed(a.write, a.execute, a.privileged); (ctx.rights & need) != need) {
            Translation denied;
            denied.fault = FaultKind::permission;
            denied.fault_addr = iova;
            if (fail_request(t, ext, req, f.fault_reason(denied, a, ctx), ctx.fault_suppress, delay))
                handle_dma(f, t, ext, delay);
            return;
        }
    }
    if (snoop && ext.no_snoop) {
        ext.no_snoop = false;
        st_snoop_forced_.inc();
    }
    if (ext.no_snoop) st_no_snoop_to_memory_.inc();
    ext.output_address = pa;
    t.set_address(pa);
    mem->b_transport(t, delay);
    t.set_address(iova);
}

template <class Family>
void IommuShell::translated_stage2(Family& f, tlm::tlm_generic_payload& t, pcie::TlpExtension& ext,
                                   const RequestAttrs& req, const TranslationContext& ctx, sc_core::sc_time& delay) {
    // Split-stage ATS (SMMUv3 3.9.1): the device's ATC holds stage-1 translations, so the
    // translated request carries an IPA; stage 2 (its cache, else a walk in a walk slot)
    // gives the PA, and a stage-2 fault is the family's stage-2 fault.
    const uint64_t ipa = t.get_address();
    const AccessRequest a{ipa, t.is_write(), req.execute, req.privileged};
    delay += iotlb_lookup_sc_;
    walk_port_.begin(from_sc(delay));
    const TranslateResult res = core_->check_s2(ctx, a);
    if (!res.iotlb_hit) account_walk(res, delay);
    if (!res.t.ok()) {
        if (fail_request(t, ext, req, f.fault_reason(res.t, a, ctx), ctx.fault_suppress, delay))
            handle_dma(f, t, ext, delay);
        return;
    }
    const uint64_t mask = (uint64_t{1} << res.t.page_shift) - 1;
    const uint64_t pa = (res.t.output & ~mask) | (ipa & mask);
    if (ext.no_snoop) st_no_snoop_to_memory_.inc();
    ext.output_address = pa;
    t.set_address(pa);
    mem->b_transport(t, delay);
    t.set_address(ipa);
}

} // namespace iommusim::iommu
