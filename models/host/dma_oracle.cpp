// SPDX-License-Identifier: Apache-2.0
#include "models/host/dma_oracle.hpp"

#include <algorithm>

namespace iommusim::host {

std::string to_string(DmaOracle::Source s) {
    switch (s) {
    case DmaOracle::Source::none: return "none";
    case DmaOracle::Source::iotlb: return "iotlb";
    case DmaOracle::Source::walk: return "walk";
    case DmaOracle::Source::atc: return "atc";
    case DmaOracle::Source::pass_through: return "pass_through";
    }
    return "?";
}

DmaOracle::DmaOracle(stats::Group* parent)
    : stats_("oracle", parent),
      checked_(stats_.counter("checked", "requests", "completed DMAs classified against the ground truth")),
      correct_(stats_.counter("correct", "requests", "DMAs that used a translation mapped at their time")),
      stale_(stats_.counter("stale_in_window", "requests",
                            "DMAs that used an unmapped translation before its invalidation completed")),
      violation_count_(stats_.counter("violations", "requests",
                                      "DMAs that used a translation whose invalidation had completed, or a wrong one")) {}

void DmaOracle::bind(pcie::Bdf d, std::optional<uint32_t> pasid, uint32_t space, uint16_t segment) {
    bindings_[binding_key(segment, d, pasid)] = space;
}

void DmaOracle::unbind(pcie::Bdf d, std::optional<uint32_t> pasid, uint16_t segment) {
    bindings_.erase(binding_key(segment, d, pasid));
}

namespace {
/// Pages touched by [addr, addr+size) the way a page-by-page loop from addr
/// in 4 KiB steps touches them: ceil(size / 4 KiB) pages from addr's page.
uint64_t page_count(uint64_t size) { return size / 4096 + (size % 4096 != 0); }
} // namespace

size_t DmaOracle::segments() const {
    size_t n = 0;
    for (const auto& [id, s] : spaces_) n += s.segments.size();
    return n;
}

void DmaOracle::split_at(Space& s, uint64_t page) {
    auto it = s.segments.upper_bound(page);
    if (it == s.segments.begin()) return;
    --it;
    if (it->first == page || it->second.end <= page) return;
    Segment upper = it->second;
    it->second.end = page;
    if (upper.pending) s.pending.insert(page);
    s.segments.emplace_hint(std::next(it), page, std::move(upper));
}

void DmaOracle::map(uint32_t space, uint64_t iova, uint64_t pa, uint64_t size, Duration t) {
    const uint64_t n = page_count(size);
    if (n == 0) return;
    Space& s = spaces_[space];
    const uint64_t first = iova >> kPageShift, end = first + n;
    const Mapping m{(pa >> kPageShift) - first, t, std::nullopt, std::nullopt};
    split_at(s, first);
    split_at(s, end);
    auto it = s.segments.lower_bound(first);
    for (uint64_t at = first; at < end;) {
        if (it != s.segments.end() && it->first == at) {
            auto& h = it->second.history;
            if (h.size() >= kHistoryPerPage && h.front().invalidated_at) h.erase(h.begin());
            h.push_back(m);
            at = it->second.end;
            ++it;
            continue;
        }
        // Pages never mapped before, up to the next segment.
        const uint64_t stop = it == s.segments.end() ? end : std::min(end, it->first);
        s.segments.emplace_hint(it, at, Segment{stop, {m}, false});
        at = stop;
    }
}

void DmaOracle::unmap(uint32_t space, uint64_t iova, uint64_t size, Duration t) {
    const uint64_t n = page_count(size);
    auto sp = spaces_.find(space);
    if (n == 0 || sp == spaces_.end()) return;
    Space& s = sp->second;
    const uint64_t first = iova >> kPageShift, end = first + n;
    split_at(s, first);
    split_at(s, end);
    for (auto it = s.segments.lower_bound(first); it != s.segments.end() && it->first < end; ++it) {
        Segment& g = it->second;
        if (g.history.empty() || g.history.back().unmapped_at) continue;
        g.history.back().unmapped_at = t;
        g.pending = true;
        s.pending.insert(it->first);
    }
}

void DmaOracle::complete(Space& s, uint64_t lo, uint64_t hi, Duration t, Duration submitted) {
    // A pending segment straddling the range's edges keeps its outer part pending.
    auto straddles = [&](uint64_t page) {
        auto it = s.segments.upper_bound(page);
        return it != s.segments.begin() && std::prev(it)->second.pending;
    };
    if (straddles(lo)) split_at(s, lo);
    if (hi != UINT64_MAX && straddles(hi + 1)) split_at(s, hi + 1);
    for (auto p = s.pending.lower_bound(lo); p != s.pending.end() && *p <= hi;) {
        Segment& g = s.segments.at(*p);
        // Only unmaps made before the flush was submitted are covered by it.
        bool still_pending = false;
        for (auto& m : g.history) {
            if (!m.unmapped_at || m.invalidated_at) continue;
            if (*m.unmapped_at <= submitted) m.invalidated_at = t;
            else still_pending = true;
        }
        g.pending = still_pending;
        p = still_pending ? std::next(p) : s.pending.erase(p);
    }
}

void DmaOracle::invalidation_complete(uint32_t space, uint64_t iova, uint64_t size, Duration t, Duration submitted) {
    auto sp = spaces_.find(space);
    if (sp == spaces_.end() || size == 0) return;
    complete(sp->second, iova >> kPageShift, (iova + size - 1) >> kPageShift, t, submitted);
}

void DmaOracle::invalidation_complete_all(uint32_t space, Duration t, Duration submitted) {
    auto sp = spaces_.find(space);
    if (sp == spaces_.end()) return;
    complete(sp->second, 0, UINT64_MAX, t, submitted);
}

DmaOracle::Verdict DmaOracle::check(pcie::Bdf d, std::optional<uint32_t> pasid, uint64_t iova, uint64_t pa,
                                    Duration t, Source src, uint16_t segment) {
    checked_.inc();
    auto fail = [&](std::string reason) {
        violation_count_.inc();
        if (violations_.size() < kMaxListed) violations_.push_back({t, segment, d, pasid, iova, pa, src, std::move(reason)});
        return Verdict::violation;
    };
    auto b = bindings_.find(binding_key(segment, d, pasid));
    if (b == bindings_.end()) return fail("device/PASID not bound to any address space");
    auto sp = spaces_.find(b->second);
    if (sp == spaces_.end()) return fail("IOVA never mapped");
    const uint64_t page = iova >> kPageShift;
    auto seg = sp->second.segments.upper_bound(page);
    if (seg == sp->second.segments.begin() || (--seg)->second.end <= page) return fail("IOVA never mapped");
    const auto& h = seg->second.history;
    const uint64_t pa_delta = (pa >> kPageShift) - page;
    // Newest first: the mapping in force at t, else the latest one it could have come from.
    for (auto it = h.rbegin(); it != h.rend(); ++it) {
        if (it->pa_delta != pa_delta || it->mapped_at > t) continue;
        if (!it->unmapped_at || t < *it->unmapped_at) {
            correct_.inc();
            return Verdict::correct;
        }
        if (!it->invalidated_at || t < *it->invalidated_at) {
            stale_.inc();
            return Verdict::stale_in_window;
        }
        return fail("translation used after its invalidation completed");
    }
    return fail("physical address does not match any mapping of this IOVA");
}

} // namespace iommusim::host
