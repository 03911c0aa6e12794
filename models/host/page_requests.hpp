// SPDX-License-Identifier: Apache-2.0
#pragma once
// Family-neutral host side of PCIe PRI (PCIe Base ch. 10.4): what a driver
// backend decodes from its unit's page request queue, the handler that
// resolves a request against the host's object model (IommuFd), and the
// per-group bookkeeping that turns requests into one response per Page
// Request Group (a response is owed only for the request with the Last bit;
// the group fails if any of its requests failed, as Linux's iopf groups do).
//
// Fidelity: the group tracker is kernel-free; service time is measured the
// way Linux's DMAR_LATENCY_PRQ is (from the handler reading the request to
// its page response having been submitted and waited for), in host time.
// Not modelled: PASID stop markers beyond dropping them (no drain protocol),
// private data, the iopf workqueue's scheduling (a fixed wake-up cost,
// DriverParams::iopf_wakeup, on the handler thread itself).
#include <cstdint>
#include <map>
#include <optional>
#include <tuple>
#include <vector>

#include "models/common/stats.hpp"
#include "models/common/time.hpp"
#include "models/pcie/tlp.hpp"

namespace iommusim::host {

/// One page request as the host read it from the unit's queue.
struct PageRequestInfo {
    pcie::Bdf rid;
    std::optional<uint32_t> pasid;
    uint64_t address = 0; ///< page address (4 KiB aligned)
    bool read = false, write = false, execute = false, privileged = false;
    bool last = false;    ///< Last Request in PRG
    uint16_t prg_index = 0;
    /// A Last request with neither R nor W: a PASID stop marker (no response; PCIe Base §10.4.1.2).
    bool stop_marker() const { return last && !read && !write; }
};

/// Resolves a page request (demand paging); implemented by IommuFd.
class PageRequestHandler {
public:
    virtual ~PageRequestHandler() = default;
    /// Makes the page present (or decides it cannot be). Call from an SC_THREAD: it costs host time.
    virtual pcie::PrgResponseCode handle_page_request(const PageRequestInfo& r) = 0;
    /// Before handling: a request whose domain sends its faults to user space (a VM's nested
    /// domain with an iommufd fault queue) is queued there and true returned; its group's
    /// response then comes from user space (IommuDriver::page_response), not from the caller.
    virtual bool deliver_to_user(const PageRequestInfo& r) {
        (void)r;
        return false;
    }
    /// The virtual ID of `rid` when it is attached to a nested domain of a vIOMMU with a vDEVICE
    /// for it (Linux arm_smmu_master::vmaster): its events may go to the vIOMMU's vEVENTQ.
    virtual std::optional<uint64_t> virtual_id(pcie::Bdf rid) {
        (void)rid;
        return std::nullopt;
    }
    /// Reports one vEVENT of vEVENTQ `type` (the family's record, virtual ID already in it) for
    /// the vIOMMU `rid` is a vDEVICE of; false when it has no such vEVENTQ (the event stays the host's).
    virtual bool report_event(pcie::Bdf rid, uint32_t type, const std::vector<uint64_t>& record) {
        (void)rid, (void)type, (void)record;
        return false;
    }
};

/// Collects the requests of each open Page Request Group.
class PageRequestGroups {
public:
    struct Closed {
        pcie::PrgResponseCode code;
        Duration first_read; ///< when the group's first request was read
    };
    /// Adds one resolved request read at `read_at`; returns the group's outcome when `r.last`.
    std::optional<Closed> add(const PageRequestInfo& r, pcie::PrgResponseCode code, Duration read_at);
    size_t open() const { return open_.size(); }

private:
    using Key = std::tuple<uint16_t, uint32_t, uint16_t>; ///< RID, PASID (+present bit), PRG index
    std::map<Key, Closed> open_;
};

/// Stats of page-request service (os.prq), shared by every unit's handler thread.
struct PageRequestStats {
    explicit PageRequestStats(stats::Group* parent);
    stats::Group group;
    stats::Counter& requests;
    stats::Counter& successes;
    stats::Counter& invalid;
    stats::Counter& responses;
    stats::Counter& stop_markers;
    stats::Counter& overflows;
    stats::Counter& wakeups;
    stats::Counter& mmio_reads;
    stats::Histogram& service_latency;
};

} // namespace iommusim::host
