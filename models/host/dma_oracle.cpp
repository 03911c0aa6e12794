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

void DmaOracle::map(uint32_t space, uint64_t iova, uint64_t pa, uint64_t size, Duration t) {
    for (uint64_t off = 0; off < size; off += kPage) {
        auto& h = history_[key(space, iova + off)];
        if (h.size() >= kHistoryPerPage && h.front().invalidated_at) h.erase(h.begin());
        h.push_back(Mapping{(pa + off) >> 12, t, std::nullopt, std::nullopt});
    }
}

void DmaOracle::unmap(uint32_t space, uint64_t iova, uint64_t size, Duration t) {
    auto& pend = pending_[space];
    for (uint64_t off = 0; off < size; off += kPage) {
        auto it = history_.find(key(space, iova + off));
        if (it == history_.end() || it->second.empty() || it->second.back().unmapped_at) continue;
        it->second.back().unmapped_at = t;
        pend.push_back(it->first);
    }
}

void DmaOracle::complete(std::vector<Key>& keys, Duration t, Duration submitted, const Key* lo, const Key* hi) {
    // Only unmaps made before the flush was submitted are covered by it.
    std::erase_if(keys, [&](const Key& k) {
        if (lo && (k.page < lo->page || k.page > hi->page)) return false;
        bool still_pending = false;
        for (auto& m : history_[k]) {
            if (!m.unmapped_at || m.invalidated_at) continue;
            if (*m.unmapped_at <= submitted) m.invalidated_at = t;
            else still_pending = true;
        }
        return !still_pending;
    });
}

void DmaOracle::invalidation_complete(uint32_t space, uint64_t iova, uint64_t size, Duration t, Duration submitted) {
    auto pit = pending_.find(space);
    if (pit == pending_.end() || size == 0) return;
    const Key lo = key(space, iova), hi = key(space, iova + size - 1);
    complete(pit->second, t, submitted, &lo, &hi);
}

void DmaOracle::invalidation_complete_all(uint32_t space, Duration t, Duration submitted) {
    auto pit = pending_.find(space);
    if (pit == pending_.end()) return;
    complete(pit->second, t, submitted, nullptr, nullptr);
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
    auto h = history_.find(key(b->second, iova));
    if (h == history_.end()) return fail("IOVA never mapped");
    const uint64_t pa_page = pa >> 12;
    // Newest first: the mapping in force at t, else the latest one it could have come from.
    for (auto it = h->second.rbegin(); it != h->second.rend(); ++it) {
        if (it->pa_page != pa_page || it->mapped_at > t) continue;
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
