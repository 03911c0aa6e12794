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
//                     survived), or the address was never mapped there, or the
//                     IOVA was mapped again before that invalidation completed
//                     and the DMA came after the new map (the device wrote or
//                     read the old page for the new buffer: a driver that
//                     reuses IOVAs too early; a correct one never maps an IOVA
//                     whose unmap is still pending).
// Bindings (device/PASID -> address space) are kept with their times too, so
// a DMA stamped before a detach but checked after it is judged against the
// binding of its own time; during the detach (until its invalidation
// completed) the old binding counts as stale_in_window.
// Kernel-free; time is the caller's Duration. Histories are kept per range
// of pages that share them, not per page, so mapping 1 TiB in 1 GiB pages
// costs a few records; a check finds its range in O(log n).
#include <cstdint>
#include <functional>
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

    /// From time t on, requests of (device, pasid) of PCIe segment `segment`
    /// translate through address space `space`.
    void bind(pcie::Bdf device, std::optional<uint32_t> pasid, uint32_t space, Duration t, uint16_t segment = 0);
    /// The detach submitted at `submitted` and complete (its context/PASID
    /// cache invalidation done) at `done` (none: it failed, the old binding
    /// may stay cached). Bindings are kept with their times, so a DMA checked
    /// after the detach is judged against the binding of its own time; one in
    /// [submitted, done) may still use the old binding (stale_in_window).
    void unbind(pcie::Bdf device, std::optional<uint32_t> pasid, Duration submitted, std::optional<Duration> done,
                uint16_t segment = 0);

    /// A nested translation (a VM's device): the guest's own oracle judges IOVA -> GPA with the
    /// guest's map/unmap/invalidation history, this oracle judges GPA -> HPA in the nesting
    /// parent's space with the host's; the worse verdict counts (a stale guest or host
    /// translation used after either invalidation completed is a violation).
    struct NestedView {
        DmaOracle* guest = nullptr;
        pcie::Bdf guest_device;                 ///< the device's virtual RID
        std::optional<uint32_t> guest_pasid;
        uint32_t parent_space = 0;              ///< the nesting parent's IOAS (GPA -> HPA)
        bool stage2_by_iova = false;            ///< parent_space maps the guest's IOVAs (a shadow, VT-d caching mode)
        std::function<std::optional<uint64_t>(uint64_t hpa)> gpa_of; ///< inverse of the VM's RAM map
        /// The guest's PASIDs are the device's own (AMD-Vi: the guest's GCR3 table; SMMUv3: its CD
        /// table): a request with a PASID no view of its own covers is judged by this view (bound
        /// without PASID) against the guest's binding of that same PASID.
        bool any_pasid = false;
    };
    void bind_nested(pcie::Bdf device, std::optional<uint32_t> pasid, NestedView view, uint16_t segment = 0);

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
        /// The IOVA was mapped again at this time while this mapping's invalidation was still
        /// pending: from then on a use of this translation is a violation.
        std::optional<Duration> reused_at;
    };
    /// Pages [start, end) whose histories are identical, so they are kept
    /// once: a map, unmap or flush that covers part of a segment splits it.
    struct Segment {
        uint64_t end;
        std::vector<Mapping> history;
        bool pending = false; ///< holds an unmap whose invalidation has not completed
    };
    using Segments = std::map<uint64_t, Segment>; ///< by first page; disjoint; never erased
    struct Space {
        uint32_t id;
        Segments segments;
        std::vector<Segments::iterator> pending; ///< the segments with pending set, once each
        /// The segment check() found last (DMAs of a space cluster in one
        /// large mapping); still valid while it holds the page, as segments
        /// only ever shrink.
        const Segment* last = nullptr;
        uint64_t last_first = 0;
    };
    /// Segments of at most this many pages (page-sized buffers, the common
    /// case) are also indexed page by page in a hash table, so a check costs
    /// one hash lookup; larger ones (huge mappings) are found in the tree.
    static constexpr uint64_t kIndexedPages = 16;
    struct PageKey {
        uint32_t space;
        uint64_t page;
        bool operator==(const PageKey&) const = default;
    };
    struct PageKeyHash {
        size_t operator()(const PageKey& k) const { return std::hash<uint64_t>()(k.page * 0x9E3779B97F4A7C15ULL ^ k.space); }
    };

    /// Splits the segment that straddles `page` (if any) so one starts there.
    void split_at(Space& s, uint64_t page);
    /// Indexes the pages of a segment if it is small.
    void index(const Space& s, Segments::iterator it);
    /// The segment that is exactly [first, end), else segments.end().
    Segments::iterator exactly(Space& s, uint64_t first, uint64_t end);
    /// The segment holding `page`, else segments.end().
    Segments::iterator find(Space& s, uint64_t page);
    static void mark_pending(Space& s, Segments::iterator it);
    /// Completes the pending segments starting in [lo, hi] (pages).
    void complete(Space& s, uint64_t lo, uint64_t hi, Duration t, Duration submitted);
    Space& space(uint32_t id) { return spaces_.try_emplace(id, Space{id, {}, {}, nullptr, 0}).first->second; }
    /// The verdict for `iova` -> `pa` in space `s` at t (nullptr reason = not a violation); counts nothing.
    std::pair<Verdict, const char*> judge(Space& s, uint64_t iova, uint64_t pa, Duration t, bool detaching = false);
    /// A PASID-tagged request of a VM's device without a view of its own: the device's view when
    /// its guest PASIDs pass through (NestedView::any_pasid), else a violation.
    [[gnu::cold, gnu::noinline]] Verdict check_guest_pasid(pcie::Bdf d, uint32_t pasid, uint64_t iova, uint64_t pa,
                                                           Duration t, Source src, uint16_t segment);
    [[gnu::cold, gnu::noinline]] Verdict check_nested(const NestedView& v, pcie::Bdf d, std::optional<uint32_t> pasid,
                                                      uint64_t iova, uint64_t pa, Duration t, Source src,
                                                      uint16_t segment);
    /// Counts and lists a violation (out of line: keeps check()'s hot path lean).
    [[gnu::cold, gnu::noinline]] Verdict violation(Violation v);
    static uint64_t binding_key(uint16_t segment, pcie::Bdf d, std::optional<uint32_t> pasid) {
        return uint64_t{segment} << 48 | uint64_t{d.raw} << 32 | (pasid ? (uint64_t{1} << 31 | *pasid) : 0);
    }

    /// One attachment of a (device, PASID): bound over [from, until), then
    /// possibly still cached until `gone` (the detach's invalidation completed).
    struct Binding {
        Space* space;
        Duration from;
        std::optional<Duration> until, gone;
    };
    /// Attachments kept per (device, PASID): the live one and the last few
    /// detached ones (DMAs in flight span at most a detach or two).
    static constexpr size_t kBindingsPerKey = 4;
    using Bindings = std::vector<Binding>; ///< oldest first
    /// The space of the binding in force at t (null: none); `detaching`: t is
    /// inside that binding's detach window.
    static Space* bound_at(const Bindings& b, Duration t, bool& detaching);

    std::unordered_map<uint32_t, Space> spaces_;     ///< node-based: a Space never moves
    std::unordered_map<uint64_t, Bindings> bindings_; ///< node-based: a Bindings never moves
    uint64_t last_binding_ = 0;                       ///< the binding key check() found last ...
    const Bindings* last_bindings_ = nullptr;         ///< ... and its history (null: none)
    std::unordered_map<uint64_t, NestedView> nested_; ///< binding -> a VM's composed view
    std::unordered_map<PageKey, Segments::iterator, PageKeyHash> index_;
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
