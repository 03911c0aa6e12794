// SPDX-License-Identifier: Apache-2.0
#pragma once
// The family-neutral host side of an IOMMU command queue: what Linux's
// qi_submit_sync (VT-d), iommu_completion_wait (AMD-Vi) and
// arm_smmu_cmdq_issue_cmdlist (SMMUv3) have in common.
//
// A ring of fixed-size entries in simulated memory, written by the CPU at
// the software tail and consumed by the unit at its head. submit() appends
// the caller's commands plus one sync command (VT-d wait descriptor with a
// status write, AMD COMPLETION_WAIT with a store, SMMUv3 CMD_SYNC with an
// MSI write to memory) carrying a fresh token, under the queue lock (Linux
// qi->q_lock / cmdq lock, a HostLock: several CPUs submitting contend for it
// and each acquisition after another CPU costs a cache-line hand-off),
// publishes the new tail, and waits until the status
// word holds the token: polling it in the family's loop as its Linux driver
// writes it (CmdQueueHooks::wait_loop: VT-d keeps the lock and drops it
// around each cpu_relax, AMD udelay(1)s with the lock dropped and times out;
// one status read + the error check + the relax per iteration) or, in
// interrupt mode, sleeping on the completion / error MSI. On every spin
// it reads the unit's error state; an error aborts the submissions it
// concerns (their FlushTiming has error = true) after the family's recovery
// (a refused command is overwritten by a no-op, as qi_check_fault and
// arm_smmu_cmdq_skip_err do) and acknowledgement.
// While waiting it collects the phase timestamps the unit reports for its
// entries (iommu::InvalidationObserver, by entry sequence number) into the
// returned FlushTiming.
// Polls whose outcome is known are not performed one by one (skip_polls): with
// a unit that reports its status writes and queue errors, the thread sleeps
// until something could change what the next iteration sees, then accounts for
// the iterations it skipped (poll and access counts, lock take/release times);
// the results are those of polling each (tests compare both: set_poll_skipping).
// It sleeps from the first iteration on when the last error check found nothing
// and cannot differ now (CmdQueueHooks::errors_quiet_until, error_signals), else
// after one iteration that found nothing.
//
// Family hooks (CmdQueueHooks): encode the sync and the no-op, read the
// head, write the tail, read / acknowledge the error state, acknowledge the
// completion interrupt, say what an entry invalidates (kind_of: the fault
// injection of a deliberately broken driver, set_dropped). Everything a hook does costs what its MMIO or
// memory operations cost on the HostCpu.
//
// SMMUv3 (Linux with MSI and coherent queues) completes its CMD_SYNC by an
// MSI write of 0 into the CMD_SYNC's own first word in the ring and polls
// that word (__arm_smmu_cmdq_poll_until_msi): set_sync_in_entry(0) makes the
// sync's status word its own slot instead of a slot of the status page.
// post() writes commands and publishes the tail without a sync and without
// waiting (Linux arm_smmu_cmdq_issue_cmd without sync, e.g. a prefetch).
//
// Fidelity: the queue is full when the tail is one entry behind the head
// (VT-d §6.5.2, AMD §3.3.13); a family with wrap bits (SMMUv3) could use
// the last entry too, this driver does not. A flush longer than a batch is
// split as the family's Linux driver splits it (set_batching); post() of more
// than the ring holds is refused (HostError invalid). Status words: one 32-bit
// slot per token in one page (1024 in flight at most). Not modelled: Linux's
// batching of several CPUs' commands into one CMD_SYNC (SMMUv3 lock-free
// cmdq), retries after a time-out (the submission fails instead).
//
// API for a family backend (see models/host/README.md):
//   CmdQueueDriver q(cpu, hooks, counters, msi, vectors, &stats_group);
//   q.init(alloc_page, order, entry_bytes);   // ring of 2^order contiguous pages + a status page
//   ... program the base register with q.base() / q.bytes() ...
//   FlushTiming t = q.submit({cmd, cmd, ...}); // appends the sync, waits, returns phases / error
//   unit->set_invalidation_observer(&q);       // phase reports by entry sequence number
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <systemc>
#include <vector>

#include "models/common/stats.hpp"
#include "models/host/host_cpu.hpp"
#include "models/host/host_lock.hpp"
#include "models/host/iommu_driver.hpp"
#include "models/host/irq_thread.hpp"
#include "models/host/msi_decoder.hpp"
#include "models/iommu/common/inval_observer.hpp"

namespace iommusim::host {

/// One queue entry: 16 (AMD, SMMUv3) or 32 bytes (VT-d 256-bit descriptors) are written.
using QueueEntry = std::array<uint64_t, 4>;

/// A queue error as the family decodes it from its status registers.
struct QueueError {
    uint32_t bits = 0;               ///< the family's error bits (0 = no error), handed back to acknowledge()
    bool replace_head = false;       ///< the entry at the head was refused: overwrite it with encode_nop()
    /// Entries whose submissions failed, relative to the head: 0 = the entry at the
    /// head (VT-d IQE, SMMUv3 CERROR_*), -1 = the one just before (VT-d ITE: the wait
    /// descriptor the unit abandoned).
    std::vector<int> failed_entries;
};

/// How a family's Linux driver waits for its sync, one iteration at a time: read
/// the status word; if it does not hold the token yet, read the error state
/// (CmdQueueHooks::read_error), then relax and repeat.
struct WaitLoop {
    /// Keep the queue lock from the tail write until the sync completed, dropping it
    /// only around each relax, so other CPUs queue their commands meanwhile (VT-d
    /// qi_submit_sync); false: the lock is released once the tail is written (AMD
    /// iommu_completion_wait, SMMUv3 CMD_SYNC polling).
    bool hold_lock = false;
    /// One relax; unset: HostCpuParams::poll_interval (cpu_relax, a PAUSE). AMD wait_on_sem: udelay(1).
    std::optional<Duration> relax;
    /// Give up after this long since the submission: it fails (AMD LOOP_TIMEOUT x udelay(1),
    /// SMMUv3 ARM_SMMU_POLL_TIMEOUT_US); unset: spin until done (VT-d).
    std::optional<Duration> timeout;
};

/// What a queue entry invalidates, as its family classifies it (CmdQueueHooks::kind_of):
/// what a deliberately broken driver may leave out (CmdQueueDriver::set_dropped).
enum class CommandKind : uint8_t {
    other,  ///< anything else (configuration caches, syncs, page responses, ...)
    iotlb,  ///< the unit's own translation caches (VT-d IOTLB / PASID-IOTLB, AMD INVALIDATE_IOMMU_*, SMMUv3 TLBI)
    devtlb, ///< a device TLB (VT-d (PASID-based) device-TLB, AMD INVALIDATE_IOTLB_PAGES, SMMUv3 ATC_INV)
};

class CmdQueueHooks {
public:
    /// errors_quiet_until() of a check that stays quiet until the unit reports an error.
    static constexpr Duration kQuietForever = Duration::ps(uint64_t{1} << 62);
    virtual ~CmdQueueHooks() = default;
    /// The family's wait loop (default: poll with cpu_relax, lock released, no time-out).
    virtual WaitLoop wait_loop() { return {}; }
    /// The sync command: completes when every earlier command has, then writes
    /// `token` (32 bits) to `status_pa` and, with `interrupt`, signals the completion MSI.
    virtual QueueEntry encode_sync(uint64_t status_pa, uint32_t token, bool interrupt) = 0;
    /// A command without effect, written over a command the unit refused.
    virtual QueueEntry encode_nop() = 0;
    /// The unit's read pointer as a byte offset into the ring (VT-d IQH, AMD CmdBufHead, SMMUv3 CONS).
    virtual uint64_t read_head() = 0;
    /// Publishes the write pointer: byte offset `tail`; `entries` written since init (for wrap bits).
    /// The families post it (MmioPort::post32/64): a unit that acts on the write's annotated
    /// time (Host::add_iommu's timed_registers) takes it without the CPU synchronising.
    virtual void write_tail(uint64_t tail, uint64_t entries) = 0;
    /// Reads the unit's error state (VT-d FSTS, AMD MMIO status, SMMUv3 GERROR).
    virtual QueueError read_error() = 0;
    /// Acknowledges an error after recovery so the unit resumes (RW1C / GERRORN toggle).
    virtual void acknowledge(const QueueError& e) = 0;
    /// Interrupt mode: after a wake-up (VT-d: clear ICS.IWC).
    virtual void acknowledge_interrupt() = 0;
    /// What the entry invalidates (its family's command or descriptor type).
    virtual CommandKind kind_of(const QueueEntry& e) const = 0;
    /// read_error() called at local times before the returned time repeats the accesses of
    /// its last call (and takes as long) and finds no error, unless the unit reports a queue
    /// error meanwhile (InvalidationObserver::on_queue_error) or error_signal() is notified;
    /// nullopt: the next call may differ. Lets the wait loop skip polls whose outcome is
    /// known, from the first iteration of a later submission on.
    virtual std::optional<Duration> errors_quiet_until() { return std::nullopt; }
    /// Notified when read_error()'s outcome may change other than by a queue-error report
    /// of the unit (SMMUv3: the GERROR interrupt it waits for); nullptr: never.
    virtual const sc_core::sc_event* error_signal() { return nullptr; }
    /// How often error_signal() was notified so far (0 without one): a check measured at
    /// one count repeats while the count stays.
    virtual uint64_t error_signals() { return 0; }
};

class CmdQueueDriver final : public iommu::InvalidationObserver {
public:
    /// Counters the backend registers in its own stats group (names are the family's).
    struct Counters {
        stats::Counter& submissions; ///< flush submissions waited for
        stats::Counter& entries;     ///< entries written (sync included)
        stats::Counter& polls;       ///< status-word reads while waiting
        stats::Counter& errors;      ///< error states seen while waiting
    };
    enum class Wait : uint8_t { poll, interrupt };

    /// `msi` and the vectors are needed for Wait::interrupt (registered now: elaboration).
    /// `lock_stats`: parent of the queue lock's stats group "queue_lock" (HostLock).
    CmdQueueDriver(HostCpu& cpu, CmdQueueHooks& hooks, Counters counters, MsiDecoder* msi = nullptr,
                   std::vector<uint32_t> vectors = {}, stats::Group* lock_stats = nullptr);
    ~CmdQueueDriver() override;
    CmdQueueDriver(const CmdQueueDriver&) = delete;
    CmdQueueDriver& operator=(const CmdQueueDriver&) = delete;

    /// Allocates the ring (2^order contiguous table pages) and the status page. Untimed.
    /// `status_bytes`: the size of the sync's status write (4: VT-d wait, SMMUv3 MSI data;
    /// 8: AMD-Vi COMPLETION_WAIT's 64-bit store, which needs 8-byte aligned slots).
    void init(const std::function<uint64_t()>& alloc_page, unsigned order, unsigned entry_bytes,
              unsigned status_bytes = 4);
    uint64_t base() const { return base_; }
    uint64_t bytes() const { return bytes_; }
    unsigned entry_bytes() const { return entry_bytes_; }
    void set_wait(Wait w);
    /// The sync's completion is a 32-bit write of `done` into the sync's own
    /// entry (its first word), which the driver polls (SMMUv3 CMD_SYNC MSI to itself).
    void set_sync_in_entry(uint32_t done) { in_entry_done_ = done; }
    /// Each ring slot has its own 32-bit status word in an array beside the ring (allocated
    /// now); a sync's status address is its slot's word, which the driver sets to `in_use`
    /// before publishing the tail, and the sync writes `done` there. Linux qi_submit_sync:
    /// desc_status[wait_index] = QI_IN_USE, wait descriptor status data QI_DONE (VT-d).
    void set_sync_status_per_slot(const std::function<uint64_t()>& alloc_page, uint32_t in_use, uint32_t done);
    /// The status word of ring slot `index` (per-slot mode).
    uint64_t slot_status(uint64_t index) const { return slot_status_ + index * status_bytes_; }

    /// How the family's Linux driver splits a flush longer than one batch: at most
    /// `max_entries` commands per batch (0: as many as the ring holds besides a sync), and
    /// whether each batch ends with its own sync and is waited for before the next
    /// (`sync_each`: VT-d's qi_batch, 16 descriptors per qi_submit_sync) or the batches are
    /// written one after the other, waiting only for room, and the last one carries the one
    /// sync (AMD-Vi's command buffer, which waits for the head to move; SMMUv3's cmdq batches
    /// of 64 issued without CMD_SYNC but the last). Default {0, true}.
    struct Batching {
        size_t max_entries = 0;
        bool sync_each = true;
    };
    void set_batching(Batching b) { batching_ = b; }

    /// A deliberately broken driver (DriverParams::skip_iotlb_invalidation): entries of kind
    /// `k` are left out of every later submit() and post(), as if the driver never wrote
    /// them; the rest, the sync included, goes out as before. Fault injection for tests.
    void set_dropped(CommandKind k, bool dropped);

    /// Writes `cmds` and publishes the tail; no sync, no wait. SC_THREAD only.
    void post(std::vector<QueueEntry> cmds);

    /// Writes `cmds` + a sync, publishes the tail, waits for the sync's status;
    /// more commands than one batch holds go in batches (set_batching), one after
    /// the other, and the timing spans them all.
    /// `counted` = false: not counted as a flush (e.g. a page response). SC_THREAD only.
    FlushTiming submit(std::vector<QueueEntry> cmds, bool counted = true);

    /// Whether a waiting thread may sleep through polls whose outcome is known instead of
    /// performing them (the default; same simulated results, one context switch per wait
    /// instead of one or two per poll). Off: every poll is performed (tests compare both).
    void set_poll_skipping(bool on) { skip_enabled_ = on; }

    void on_phase(uint64_t seq, iommu::InvalPhase phase, Duration at, pcie::Bdf device) override;
    void on_queue_error() override;
    void on_attached_to_unit() override { unit_reports_ = true; }

private:
    /// A polling thread asleep instead of polling (see skip_polls): the iterations it
    /// would have made, replayed (counted, lock taken and released) once they are known
    /// to have found nothing. Iteration i: its start A_i (hold: the lock taken at L_i; the
    /// poll and the status read counted) and its end B_i at R_i (the read completes, the
    /// error check's accesses, hold: the lock released at R_i + check time). Kernel times.
    struct Sleeper {
        bool hold = false;
        unsigned core = 0;
        Duration a, b;            ///< the next unreplayed iteration's A and B times
        bool at_b = false;        ///< its A is replayed, B is not
        Duration mr, check, relax; ///< status read, error check (as measured), relax
        HostCpu::Accesses check_acc; ///< the error check's accesses (as measured)
        bool stop = false;        ///< an error or a lock contender: resume polling for real
        bool detect = false;      ///< its status word is written: wake when the read at b ends
        uint64_t status = 0;      ///< the status word and the value it waits for
        uint32_t token = 0;
        sc_core::sc_event wake;
    };
    enum class Resume : uint8_t { polled, at_lock, at_read };
    /// The last error check a polling thread measured (read_error() found nothing): what
    /// it cost, its accesses and error_signals() then. Reset by every other check and by
    /// a queue-error report, so it always describes read_error()'s last call.
    struct Check {
        Duration time;
        HostCpu::Accesses acc;
        uint64_t signals = 0;
    };
    /// After an iteration that found nothing (lock dropped, relax spent), or with
    /// `read_done` unset right after the submission was published (its first iteration,
    /// lock still held if the loop holds it, checked as last_check_ says): sleeps until the
    /// status word is written, an error is reported, a lock contender arrives or an
    /// iteration that could behave differently is due, accounts for the polls it skipped
    /// and positions the thread where polling goes on for real.
    Resume skip_polls(uint64_t status, uint32_t token, Duration submitted, const WaitLoop& loop,
                      std::optional<Duration> read_done, Check check, std::optional<Duration>& read_at);
    /// Replays the sleeper's iterations whose events lie before kernel time `k`.
    void catch_up(Sleeper& s, Duration k);
    void stop_sleepers();

    /// `cmds` + one sync, written in parts of at most `part` entries (each waits for room
    /// and publishes the tail), waited for as one submission.
    FlushTiming submit_batch(std::vector<QueueEntry> cmds, bool counted, size_t part);
    /// Takes the lock, waits for room, writes `cmds` at the tail and publishes it. With a
    /// `key` (non-zero) the entries are registered as (part of) submission `key`; with
    /// `sync` the last entry is its sync (in-entry mode: encoded with its own slot, whose
    /// address is returned in `status`). Returns the first entry's seq. With `keep_lock`
    /// the lock is still held on return (WaitLoop::hold_lock).
    uint64_t write_entries(const std::vector<QueueEntry>& cmds, uint32_t key, bool sync, uint64_t& status,
                           bool keep_lock = false);
    uint64_t seq_at(uint64_t byte_offset) const;
    void abort_owner_of(uint64_t seq);
    void check_errors();
    uint64_t interrupts_seen() const;
    void wait_for_interrupt(uint64_t seen);

    HostCpu& cpu_;
    CmdQueueHooks& hooks_;
    Counters c_;
    IrqLines irq_; ///< completion / error vectors (Wait::interrupt)
    Wait wait_ = Wait::poll;
    uint64_t base_ = 0, bytes_ = 0, status_pa_ = 0;
    unsigned entry_bytes_ = 32;
    unsigned status_bytes_ = 4;
    std::optional<uint32_t> in_entry_done_; ///< the sync completes by writing this into its own entry
    struct SlotStatus {
        uint32_t in_use, done;
    };
    std::optional<SlotStatus> slot_done_;   ///< per-slot status words (set_sync_status_per_slot)
    uint64_t slot_status_ = 0;              ///< base of the per-slot status array
    Batching batching_;
    uint8_t dropped_ = 0;       ///< bit k set: entries of CommandKind k are left out (set_dropped)
    /// Removes the entries set_dropped() leaves out.
    void drop_injected(std::vector<QueueEntry>& cmds) const;
    uint64_t tail_ = 0, head_ = 0;
    uint64_t seq_ = 0;          ///< entries written since init
    uint32_t token_ = 0;        ///< the last submission's key (and status-word value unless in-entry)
    HostLock lock_;             ///< held while writing entries and the tail (qi->q_lock, cmdq lock)

    struct Phases {
        std::optional<Duration> fetched, caches_done, devtlb_sent, devtlb_done, wait_done;
    };
    struct Submission {
        uint64_t end;    ///< one past its last entry (the sync)
        uint32_t token;  ///< its status-word value
        std::vector<Phases> phases; ///< by entry (seq - first), sized at the first report
    };
    std::map<uint64_t, Submission> open_; ///< submissions being waited for, by first seq
    /// Folds a finished submission's phase reports into `t`.
    static void collect_phases(const Submission& sub, FlushTiming& t);
    std::set<uint32_t> aborted_;          ///< tokens of submissions a queue error aborted
    bool skip_enabled_ = true;
    bool unit_reports_ = false;           ///< the unit reports status writes and errors (on_attached_to_unit)
    std::vector<Sleeper*> sleepers_;      ///< threads skipping polls now
    std::optional<Check> last_check_;     ///< see Check
    size_t settle_id_ = 0;                ///< HostCpu::on_settle registration
};

} // namespace iommusim::host
