// SPDX-License-Identifier: Apache-2.0
#pragma once
// The family-neutral host side of a unit's page-request log (VT-d page
// request queue, AMD-Vi PPR log, SMMUv3 PRIQ): a ring of fixed-size records
// in simulated memory that the unit fills at its tail and software consumes
// at its head. serve() is the handler thread (Linux prq_event_thread,
// amd_iommu_poll_ppr_log, arm_smmu_priq_thread): per wake-up it acknowledges
// the pending indication, reads every record between head and tail from
// memory (one memory read each), decodes it, resolves it through the host
// (PageRequestHandler), answers the last request of each page request group
// through the family's command queue, publishes the new head, and clears an
// overflow so the unit accepts requests again. Stop markers get no response.
//
// Fidelity: the host has no interrupt controller model, so the thread polls
// the tail register every poll interval instead of sleeping on the
// page-request interrupt. Service time (os.prq.service_latency) runs from
// reading a group's first request to its response having completed.
// Not modelled: private data, the PASID drain protocol.
//
// Family hooks (PageRequestLogHooks): the tail / head registers, the pending
// and overflow flags, the record decoder, the page group response, and
// whether requests without a PASID go to the host at all.
#include <array>
#include <cstdint>
#include <functional>

#include "models/common/time.hpp"
#include "models/host/host_cpu.hpp"
#include "models/host/page_requests.hpp"

namespace iommusim::host {

/// One log record: 16 (AMD, SMMUv3) or 32 bytes (VT-d) are read.
using LogRecord = std::array<uint64_t, 4>;

class PageRequestLogHooks {
public:
    virtual ~PageRequestLogHooks() = default;
    /// The unit's write pointer as a byte offset (VT-d PQT, AMD PPRLogTail, SMMUv3 PRIQ_PROD).
    virtual uint64_t read_tail() = 0;
    /// Publishes the read pointer (PQH, PPRLogHead, PRIQ_CONS).
    virtual void write_head(uint64_t head) = 0;
    /// Before reading: clears the "requests pending" indication so a request arriving meanwhile sets it again.
    virtual void acknowledge_pending() = 0;
    /// After reading: whether the log overflowed (clearing the flag re-arms the unit).
    virtual bool clear_overflow() = 0;
    virtual PageRequestInfo decode(const LogRecord& r) = 0;
    /// Sends the page group response for the group whose last request is `last` and waits for it.
    virtual void respond(const PageRequestInfo& last, pcie::PrgResponseCode code) = 0;
    /// Whether requests without a PASID are resolved by the host (else answered Invalid Request).
    virtual bool resolves_requests_without_pasid() const = 0;
    /// Positions carry a wrap bit (SMMUv3 PRIQ_PROD / PRIQ_CONS, every slot usable): read_tail and
    /// write_head then count in byte offsets modulo twice the log's size, so that a full log
    /// (same slot, other wrap) is not taken for an empty one.
    virtual bool positions_wrap() const { return false; }
};

/// Allocates 2^order contiguous 4 KiB pages from a page allocator; returns the first.
uint64_t alloc_contiguous_pages(const std::function<uint64_t()>& alloc_page, unsigned order, const char* what);

class PageRequestLogDriver {
public:
    PageRequestLogDriver(HostCpu& cpu, PageRequestLogHooks& hooks) : cpu_(cpu), hooks_(hooks) {}
    /// Allocates the log (2^order contiguous pages). Untimed.
    void init(const std::function<uint64_t()>& alloc_page, unsigned order, unsigned record_bytes);
    uint64_t base() const { return base_; }
    uint64_t bytes() const { return bytes_; }
    /// The handler thread body, polling every `poll_interval`. Never returns. SC_THREAD only.
    [[noreturn]] void serve(PageRequestHandler& handler, PageRequestStats& st, Duration poll_interval);

private:
    HostCpu& cpu_;
    PageRequestLogHooks& hooks_;
    uint64_t base_ = 0, bytes_ = 0, head_ = 0;
    unsigned record_bytes_ = 32;
};

} // namespace iommusim::host
