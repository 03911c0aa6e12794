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
// Kernel-free; time is the caller's Duration.
#include <cstdint>
#include <map>
#include <optional>
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

private:
    static constexpr uint64_t kPage = 4096;
    /// Mappings kept per page: the live one and the last few dead ones
    /// (bounds memory on long runs; older ones cannot change a verdict's kind).
    static constexpr size_t kHistoryPerPage = 4;
    struct Key {
        uint32_t space;
        uint64_t page;
        bool operator==(const Key&) const = default;
    };
    struct KeyHash {
        size_t operator()(const Key& k) const { return std::hash<uint64_t>()(k.page * 0x9E3779B97F4A7C15ULL ^ k.space); }
    };
    struct Mapping {
        uint64_t pa_page;
        Duration mapped_at;
        std::optional<Duration> unmapped_at;
        std::optional<Duration> invalidated_at;
    };
    static Key key(uint32_t space, uint64_t iova) { return Key{space, iova >> 12}; }
    void complete(std::vector<Key>& keys, Duration t, Duration submitted, const Key* lo, const Key* hi);
    static uint64_t binding_key(uint16_t segment, pcie::Bdf d, std::optional<uint32_t> pasid) {
        return uint64_t{segment} << 48 | uint64_t{d.raw} << 32 | (pasid ? (uint64_t{1} << 31 | *pasid) : 0);
    }

    std::unordered_map<uint64_t, uint32_t> bindings_;
    std::unordered_map<Key, std::vector<Mapping>, KeyHash> history_;
    std::map<uint32_t, std::vector<Key>> pending_; ///< space -> pages with an uninvalidated unmap
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
