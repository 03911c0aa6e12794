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

void DmaOracle::bind(pcie::Bdf d, std::optional<uint32_t> pasid, uint32_t space, Duration t, uint16_t segment) {
    Bindings& b = bindings_[binding_key(segment, d, pasid)];
    if (b.size() >= kBindingsPerKey && b.front().gone) b.erase(b.begin());
    b.push_back(Binding{&this->space(space), t, std::nullopt, std::nullopt});
    last_bindings_ = nullptr;
}

void DmaOracle::unbind(pcie::Bdf d, std::optional<uint32_t> pasid, Duration submitted, std::optional<Duration> done,
                       uint16_t segment) {
    nested_.erase(binding_key(segment, d, pasid)); // a VM's device: its composed view ends at once
    auto it = bindings_.find(binding_key(segment, d, pasid));
    if (it == bindings_.end() || it->second.empty() || it->second.back().until) return;
    it->second.back().until = submitted;
    it->second.back().gone = done;
    last_bindings_ = nullptr;
}

void DmaOracle::bind_nested(pcie::Bdf d, std::optional<uint32_t> pasid, NestedView view, uint16_t segment) {
    const uint64_t key = binding_key(segment, d, pasid);
    bindings_.erase(key);
    (void)space(view.parent_space);
    nested_[key] = std::move(view);
    last_bindings_ = nullptr;
}

DmaOracle::Space* DmaOracle::bound_at(const Bindings& bs, Duration t, bool& detaching) {
    // Newest first: the attachment in force at t, else one still being detached at t.
    for (auto b = bs.rbegin(); b != bs.rend(); ++b) {
        if (t < b->from) continue;
        if (!b->until || t < *b->until) return b->space;
        if (!b->gone || t < *b->gone) {
            detaching = true;
            return b->space;
        }
    }
    return nullptr;
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

void DmaOracle::index(const Space& s, Segments::iterator it) {
    if (it->second.end - it->first > kIndexedPages) return;
    for (uint64_t p = it->first; p < it->second.end; ++p) index_[PageKey{s.id, p}] = it;
}

void DmaOracle::split_at(Space& s, uint64_t page) {
    auto it = find(s, page);
    if (it == s.segments.end() || it->first == page) return;
    const bool was_indexed = it->second.end - it->first <= kIndexedPages;
    Segment upper = it->second;
    it->second.end = page;
    auto up = s.segments.emplace_hint(std::next(it), page, std::move(upper));
    if (up->second.pending) s.pending.push_back(up);
    index(s, up); // re-points the upper pages if the segment was indexed
    if (!was_indexed) index(s, it);
}

DmaOracle::Segments::iterator DmaOracle::find(Space& s, uint64_t page) {
    if (auto ix = index_.find(PageKey{s.id, page}); ix != index_.end()) return ix->second;
    auto it = s.segments.upper_bound(page);
    if (it == s.segments.begin() || (--it)->second.end <= page) return s.segments.end();
    return it;
}

DmaOracle::Segments::iterator DmaOracle::exactly(Space& s, uint64_t first, uint64_t end) {
    auto it = find(s, first);
    return it != s.segments.end() && it->first == first && it->second.end == end ? it : s.segments.end();
}

void DmaOracle::mark_pending(Space& s, Segments::iterator it) {
    if (it->second.pending) return;
    it->second.pending = true;
    s.pending.push_back(it);
}

void DmaOracle::map(uint32_t space, uint64_t iova, uint64_t pa, uint64_t size, Duration t) {
    const uint64_t n = page_count(size);
    if (n == 0) return;
    Space& s = this->space(space);
    const uint64_t first = iova >> kPageShift, end = first + n;
    const Mapping m{(pa >> kPageShift) - first, t, std::nullopt, std::nullopt, std::nullopt};
    auto push = [&](std::vector<Mapping>& h) {
        // Mapped again while the last unmap's invalidation is pending (a correct driver
        // holds the IOVA until the flush completed).
        if (!h.empty() && h.back().unmapped_at && !h.back().invalidated_at) h.back().reused_at = t;
        if (h.size() >= kHistoryPerPage && h.front().invalidated_at) h.erase(h.begin());
        h.push_back(m);
    };
    if (auto x = exactly(s, first, end); x != s.segments.end()) return push(x->second.history); // a remap
    split_at(s, first);
    split_at(s, end);
    auto it = s.segments.lower_bound(first);
    for (uint64_t at = first; at < end;) {
        if (it != s.segments.end() && it->first == at) {
            push(it->second.history);
            at = it->second.end;
            ++it;
            continue;
        }
        // Pages never mapped before, up to the next segment.
        const uint64_t stop = it == s.segments.end() ? end : std::min(end, it->first);
        index(s, s.segments.emplace_hint(it, at, Segment{stop, {m}, false}));
        at = stop;
    }
}

void DmaOracle::unmap(uint32_t space, uint64_t iova, uint64_t size, Duration t) {
    const uint64_t n = page_count(size);
    auto sp = spaces_.find(space);
    if (n == 0 || sp == spaces_.end()) return;
    Space& s = sp->second;
    const uint64_t first = iova >> kPageShift, end = first + n;
    auto it = exactly(s, first, end);
    if (it == s.segments.end()) {
        split_at(s, first);
        split_at(s, end);
        it = s.segments.lower_bound(first);
    }
    for (; it != s.segments.end() && it->first < end; ++it) {
        Segment& g = it->second;
        if (g.history.empty() || g.history.back().unmapped_at) continue;
        g.history.back().unmapped_at = t;
        mark_pending(s, it);
    }
}

void DmaOracle::complete(Space& s, uint64_t lo, uint64_t hi, Duration t, Duration submitted) {
    // A pending segment straddling the range's edges keeps its outer part pending.
    auto straddles = [&](uint64_t page) {
        auto it = find(s, page);
        return it != s.segments.end() && it->first != page && it->second.pending;
    };
    if (lo != 0 && straddles(lo)) split_at(s, lo);
    if (hi != UINT64_MAX && straddles(hi + 1)) split_at(s, hi + 1);
    std::erase_if(s.pending, [&](Segments::iterator it) {
        if (it->first < lo || it->first > hi) return false;
        // Only unmaps made before the flush was submitted are covered by it.
        bool still_pending = false;
        for (auto& m : it->second.history) {
            if (!m.unmapped_at || m.invalidated_at) continue;
            if (*m.unmapped_at <= submitted) m.invalidated_at = t;
            else still_pending = true;
        }
        it->second.pending = still_pending;
        return !still_pending;
    });
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

DmaOracle::Verdict DmaOracle::violation(Violation v) {
    violation_count_.inc();
    if (violations_.size() < kMaxListed) violations_.push_back(std::move(v));
    return Verdict::violation;
}

DmaOracle::Verdict DmaOracle::check(pcie::Bdf d, std::optional<uint32_t> pasid, uint64_t iova, uint64_t pa,
                                    Duration t, Source src, uint16_t segment) {
    checked_.inc();
    // DMAs come in runs from one requester: remember the last binding found.
    const uint64_t key = binding_key(segment, d, pasid);
    if (!last_bindings_ || key != last_binding_) {
        auto b = bindings_.find(key);
        if (b == bindings_.end()) {
            if (auto n = nested_.find(key); n != nested_.end()) return check_nested(n->second, d, pasid, iova, pa, t, src, segment);
            if (pasid) return check_guest_pasid(d, *pasid, iova, pa, t, src, segment);
            return violation(Violation{t, segment, d, pasid, iova, pa, src, "device/PASID not bound to any address space"});
        }
        last_binding_ = key;
        last_bindings_ = &b->second;
    }
    bool detaching = false;
    Space* bound = bound_at(*last_bindings_, t, detaching);
    if (!bound) return violation(Violation{t, segment, d, pasid, iova, pa, src, "device/PASID not bound to any address space"});
    const auto [v, reason] = judge(*bound, iova, pa, t, detaching);
    if (v == Verdict::correct) correct_.inc();
    else if (v == Verdict::stale_in_window) stale_.inc();
    else return violation(Violation{t, segment, d, pasid, iova, pa, src, reason});
    return v;
}

std::pair<DmaOracle::Verdict, const char*> DmaOracle::judge(Space& s, uint64_t iova, uint64_t pa, Duration t,
                                                            bool detaching) {
    const uint64_t page = iova >> kPageShift;
    // The space's last segment, else the page index (page-sized mappings),
    // else the tree (large mappings).
    const Segment* seg = s.last;
    if (!seg || page < s.last_first || page >= seg->end) {
        if (auto ix = index_.find(PageKey{s.id, page}); ix != index_.end()) {
            seg = &ix->second->second;
        } else {
            auto it = find(s, page);
            if (it == s.segments.end()) return {Verdict::violation, "IOVA never mapped"};
            seg = &it->second;
            s.last = seg;
            s.last_first = it->first;
        }
    }
    const auto& h = seg->history;
    const uint64_t pa_delta = (pa >> kPageShift) - page;
    // Newest first: the mapping in force at t, else the latest one it could have come from.
    for (auto it = h.rbegin(); it != h.rend(); ++it) {
        if (it->pa_delta != pa_delta || it->mapped_at > t) continue;
        // A detach in flight may leave the old context cached: a use of a
        // translation still mapped in it is inside the detach's window.
        if ((!it->unmapped_at || t < *it->unmapped_at) && !detaching) return {Verdict::correct, nullptr};
        if (it->reused_at && t >= *it->reused_at)
            return {Verdict::violation, "translation used after its IOVA was mapped again before its invalidation completed"};
        if (!it->unmapped_at || !it->invalidated_at || t < *it->invalidated_at) return {Verdict::stale_in_window, nullptr};
        return {Verdict::violation, "translation used after its invalidation completed"};
    }
    return {Verdict::violation, "physical address does not match any mapping of this IOVA"};
}

DmaOracle::Verdict DmaOracle::check_guest_pasid(pcie::Bdf d, uint32_t pasid, uint64_t iova, uint64_t pa, Duration t,
                                                Source src, uint16_t segment) {
    auto n = nested_.find(binding_key(segment, d, std::nullopt));
    if (n == nested_.end() || !n->second.any_pasid)
        return violation(Violation{t, segment, d, pasid, iova, pa, src, "device/PASID not bound to any address space"});
    NestedView v = n->second;
    v.guest_pasid = pasid; // the guest's own PASID: its oracle knows whether the guest bound it
    return check_nested(v, d, pasid, iova, pa, t, src, segment);
}

DmaOracle::Verdict DmaOracle::check_nested(const NestedView& v, pcie::Bdf d, std::optional<uint32_t> pasid,
                                           uint64_t iova, uint64_t pa, Duration t, Source src, uint16_t segment) {
    const std::optional<uint64_t> gpa = v.gpa_of(pa);
    if (!gpa) return violation(Violation{t, segment, d, pasid, iova, pa, src, "physical address outside the VM's memory"});
    // Stage 2 (host history), then stage 1 (the guest's oracle, which counts in the guest's stats too).
    auto [host, host_reason] = judge(space(v.parent_space), v.stage2_by_iova ? iova : *gpa, pa, t);
    const Verdict guest = v.guest->check(v.guest_device, v.guest_pasid, iova, *gpa, t, src);
    if (host == Verdict::violation)
        return violation(Violation{t, segment, d, pasid, iova, pa, src, std::string("host stage 2: ") + host_reason});
    if (guest == Verdict::violation) {
        const auto& g = v.guest->violations();
        return violation(Violation{t, segment, d, pasid, iova, pa, src,
                                   "guest stage 1: " + (g.empty() ? std::string("violation") : g.back().reason)});
    }
    const Verdict worst = std::max(host, guest);
    (worst == Verdict::correct ? correct_ : stale_).inc();
    return worst;
}

} // namespace iommusim::host
