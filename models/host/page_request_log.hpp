// SPDX-License-Identifier: Apache-2.0
#pragma once
// The family-neutral host side of a unit's page-request log (VT-d page
// request queue, AMD-Vi PPR log, SMMUv3 PRIQ): a ring of fixed-size records
// in simulated memory that the unit fills at its tail and software consumes
// at its head. serve() is the threaded interrupt handler (Linux
// prq_event_thread, amd_iommu_int_thread_pprlog, arm_smmu_priq_thread): it
// sleeps until the unit's page-request interrupt wakes it (IrqLines: MSI
// delivery, then the IRQ thread's wake-up), and per wake-up runs passes as
// the family's Linux handler does: acknowledge the pending indication (VT-d
// PRS.PPR, AMD Status.PPRInt: RW1C, so a request arriving after it raises a
// new interrupt), read the positions, read every record between head and
// tail from memory (one memory read each), decode it, resolve it through the
// host (PageRequestHandler), answer the last request of each page request
// group through the family's command queue, publish the head, and handle an
// overflow so the unit accepts requests again. Stop markers get no response.
// An interrupt that arrives while the thread runs makes it run again
// (IrqLines), so a request is never left in the log without a pending run.
//
// Fidelity: the per-wake-up sequence of register accesses is the family's
// Linux handler's (LogDrain + hooks). Service time (os.prq.service_latency)
// runs from reading a group's first request to its response having been
// queued (and waited for where the family's Linux driver waits: VT-d); os.prq.mmio_reads counts the handler thread's register reads.
// Not modelled: private data, the PASID drain protocol, the iopf workqueue
// as a separate thread (its wake-up is a cost on this thread: DriverParams::iopf_wakeup).
//
// Family hooks (PageRequestLogHooks): how a pass drains (LogDrain), the
// pending and overflow handling, the tail / head registers, the record
// decoder, the page group response, and which requests the host resolves.
#include <array>
#include <cstdint>
#include <functional>

#include "models/common/time.hpp"
#include "models/host/host_cpu.hpp"
#include "models/host/irq_thread.hpp"
#include "models/host/page_requests.hpp"

namespace iommusim::host {

/// One log record: 16 (AMD, SMMUv3) or 32 bytes (VT-d) are read.
using LogRecord = std::array<uint64_t, 4>;

/// How the family's Linux handler drains the log in one pass.
struct LogDrain {
    /// Reads the head register at the start of a pass (VT-d PQH, AMD PPRLogHead); false: uses
    /// its own copy of the head (SMMUv3 llq.cons).
    bool read_head = false;
    /// Publishes the head after each record (AMD iommu_poll_ppr_log, SMMUv3 queue_remove_raw);
    /// false: once at the end of the pass (VT-d: PQH = the tail it read).
    bool head_per_record = false;
    /// Zeroes each record after reading it (AMD: errata 733 detection, without SNP).
    bool clear_records = false;
    /// After draining to the tail it read, reads the tail again and goes on until the log is
    /// empty (SMMUv3 do { ... } while (!queue_empty)); false: one tail read per pass.
    bool until_empty = false;
    /// Runs passes for as long as acknowledge_pending() finds something pending (AMD
    /// amd_iommu_handle_irq re-reads Status after each pass); false: one pass per wake-up.
    bool repeat_while_pending = false;
};

class PageRequestLogHooks {
public:
    virtual ~PageRequestLogHooks() = default;
    virtual LogDrain drain() const = 0;
    /// At each wake-up, before the passes (SMMUv3: the event queue's handler, which shares the
    /// thread); false: the log's own interrupt did not fire, no pass.
    virtual bool on_interrupt() { return true; }
    /// Starts a pass: clears the "requests pending" indication so a request arriving meanwhile
    /// sets it again (VT-d PRS.PPR, AMD Status PPRInt | PPROverflow, RW1C); false: nothing
    /// pending, no pass (AMD reads Status first).
    virtual bool acknowledge_pending() = 0;
    /// The unit's write pointer as a byte offset (VT-d PQT, AMD PPRLogTail, SMMUv3 PRIQ_PROD).
    virtual uint64_t read_tail() = 0;
    /// The read pointer register (LogDrain::read_head).
    virtual uint64_t read_log_head() { return 0; }
    /// Publishes the read pointer (PQH, PPRLogHead, PRIQ_CONS).
    virtual void write_head(uint64_t head) = 0;
    /// Ends a pass: handles an overflow so the unit logs again; true if it re-armed the log
    /// after one (counted once per overflow).
    virtual bool handle_overflow() = 0;
    virtual PageRequestInfo decode(const LogRecord& r) = 0;
    /// Whether the host resolves the request (else it is answered Invalid Request at once);
    /// default: requests with a PASID (Linux answers the others Invalid Request).
    virtual bool resolvable(const LogRecord&, const PageRequestInfo& r) const { return r.pasid.has_value(); }
    /// Sends the page group response for the group whose last request is `last` (waiting for it
    /// only where the family's Linux driver does).
    virtual void respond(const PageRequestInfo& last, pcie::PrgResponseCode code) = 0;
    /// Positions carry a wrap bit (SMMUv3 PRIQ_PROD / PRIQ_CONS, every slot usable): read_tail and
    /// write_head then count in byte offsets modulo twice the log's size, so that a full log
    /// (same slot, other wrap) is not taken for an empty one.
    virtual bool positions_wrap() const { return false; }
};

/// Allocates 2^order contiguous 4 KiB pages from a page allocator; returns the first.
uint64_t alloc_contiguous_pages(const std::function<uint64_t()>& alloc_page, unsigned order, const char* what);

class PageRequestLogDriver {
public:
    /// `irq`: the vectors of the unit's page-request interrupt (and of what shares the thread).
    PageRequestLogDriver(HostCpu& cpu, PageRequestLogHooks& hooks, IrqLines irq)
        : cpu_(cpu), hooks_(hooks), irq_(std::move(irq)) {}
    /// Allocates the log (2^order contiguous pages). Untimed.
    void init(const std::function<uint64_t()>& alloc_page, unsigned order, unsigned record_bytes);
    uint64_t base() const { return base_; }
    uint64_t bytes() const { return bytes_; }
    const IrqLines& irq() const { return irq_; }
    /// The handler thread body: sleeps until the interrupt, serves, sleeps again. Never
    /// returns. SC_THREAD only.
    [[noreturn]] void serve(PageRequestHandler& handler, PageRequestStats& st);

private:
    /// One pass: positions, records, head, overflow.
    void pass(PageRequestHandler& handler, PageRequestStats& st, const LogDrain& how);
    void handle(const LogRecord& q, PageRequestHandler& handler, PageRequestStats& st, Duration read_at);

    HostCpu& cpu_;
    PageRequestLogHooks& hooks_;
    IrqLines irq_;
    PageRequestGroups groups_;
    uint64_t base_ = 0, bytes_ = 0, head_ = 0;
    unsigned record_bytes_ = 32;
};

} // namespace iommusim::host
