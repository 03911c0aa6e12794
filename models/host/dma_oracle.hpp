// SPDX-License-Identifier: Apache-2.0
#pragma once
// DMA safety oracle (shared/DESIGN.md "Correctness oracle"). The host records
// the ground truth of every mapping with its history — when each IOVA page
// was mapped to which physical page, when it was unmapped and when the
// invalidation covering the unmap completed — and every completed DMA is
// classified against it, at the request's own (local) time:
//   correct           the translation used is mapped at that time;
//   stale_in_window   it was unmapped, but its invalidation had not completed;
//   violation         its invalidation had completed (a stale IOTLB/ATC entry
//                     survived), or the address was never mapped there.
// Kernel-free; time is the caller's Duration. Histories are kept per range
// of pages that share them, not per page, so mapping 1 TiB in 1 GiB pages
// costs a few records; a check finds its range in O(log n).
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "models/common/stats.hpp"
#include "models/common/time.hpp"
#include "models/pcie/tlp.hpp"

namespace iommusim::host {

class DmaOracle {
public:
    enum class Verdict : uint8_t { correct, stale_in_window, violation };
    using Source = pcie::TlpExtension::Source;

    struct Violation {
        Duration time;
        uint16_t segment;
        pcie::Bdf device;
        std::optional<uint32_t> pasid;
        uint64_t iova;
        uint64_t pa;
        Source served_by;
        std::string reason;
    };

    explicit DmaOracle(stats::Group* parent_stats);

    /// Requests of (device, pasid) of PCIe segment `segment` translate through address space `space`.
    void bind(pcie::Bdf device, std::optional<uint32_t> pasid, uint32_t space, uint16_t segment = 0);
    void unbind(pcie::Bdf device, std::optional<uint32_t> pasid, uint16_t segment = 0);

    void map(uint32_t space, uint64_t iova, uint64_t pa, uint64_t size, Duration t);
    void unmap(uint32_t space, uint64_t iova, uint64_t size, Duration t);
    /// The invalidation covering [iova, iova+size) of `space`, submitted at
    /// `submitted`, completed at t: it covers the unmaps made before it was submitted.
    void invalidation_complete(uint32_t space, uint64_t iova, uint64_t size, Duration t, Duration submitted);
    /// A domain-wide flush submitted at `submitted` completed at t.
    void invalidation_complete_all(uint32_t space, Duration t, Duration submitted);

    /// Classifies one completed DMA that used physical address `pa` for `iova` at time t.
    Verdict check(pcie::Bdf device, std::optional<uint32_t> pasid, uint64_t iova, uint64_t pa, Duration t,
                  Source served_by, uint16_t segment = 0);

    const std::vector<Violation>& violations() const { return violations_; }
    uint64_t violation_count() const { return violation_count_.value(); }

    /// Ranges of pages with one shared history, over every address space:
    /// the oracle's memory grows with the number of map/unmap calls, not
    /// with the bytes they cover (tests, benches).
    size_t segments() const;

private:
    static constexpr unsigned kPageShift = 12;
    /// Mappings kept per page: the live one and the last few dead ones
    /// (bounds memory on long runs; older ones cannot change a verdict's kind).
    static constexpr size_t kHistoryPerPage = 4;
    struct Mapping {
        uint64_t pa_delta; ///< physical page = IOVA page + pa_delta (mod 2^64)
        Duration mapped_at;
        std::optional<Duration> unmapped_at;
        std::optional<Duration> invalidated_at;
    };
    /// Pages [start, end) whose histories are identical, so they are kept
    /// once: a map, unmap or flush that covers part of a segment splits it.
    struct Segment {
        uint64_t end;
        std::vector<Mapping> history;
        bool pending = false; ///< holds an unmap whose invalidation has not completed
    };
    struct Space {
        std::map<uint64_t, Segment> segments; ///< by first page; disjoint
        std::set<uint64_t> pending;           ///< first pages of the pending segments
    };
    /// Splits the segment that straddles `page` (if any) so one starts there.
    static void split_at(Space& s, uint64_t page);
    /// Completes the pending segments starting in [lo, hi] (pages).
    static void complete(Space& s, uint64_t lo, uint64_t hi, Duration t, Duration submitted);
    static uint64_t binding_key(uint16_t segment, pcie::Bdf d, std::optional<uint32_t> pasid) {
        return uint64_t{segment} << 48 | uint64_t{d.raw} << 32 | (pasid ? (uint64_t{1} << 31 | *pasid) : 0);
    }

    std::unordered_map<uint64_t, uint32_t> bindings_;
    std::unordered_map<uint32_t, Space> spaces_;
    std::vector<Violation> violations_;
    static constexpr size_t kMaxListed = 1000;

    stats::Group stats_;
    stats::Counter& checked_;
    stats::Counter& correct_;
    stats::Counter& stale_;
    stats::Counter& violation_count_;
};

std::string to_string(DmaOracle::Source s);

} // namespace iommusim::host
