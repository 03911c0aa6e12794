// SPDX-License-Identifier: Apache-2.0
#include "models/host/iova_rcache.hpp"

#include <stdexcept>
#include <utility>

namespace iommusim::host {

IovaRcache::IovaRcache(unsigned cpus, unsigned max_depot) : cpus_(cpus ? cpus : 1), max_depot_(max_depot) {}

std::optional<unsigned> IovaRcache::order_of(uint64_t pages) {
    if (pages == 0) return std::nullopt;
    unsigned order = 0;
    while ((uint64_t{1} << order) < pages) ++order; // Linux rounds the size up to a power of two
    if (order >= kOrders) return std::nullopt;
    return order;
}

std::optional<uint64_t> IovaRcache::get(unsigned cpu, uint64_t pages) {
    const auto order = order_of(pages);
    if (!order) return std::nullopt;
    PerCpu& c = cpus_.at(cpu);
    Magazine& loaded = c.loaded[*order];
    Magazine& prev = c.prev[*order];
    // __iova_rcache_get: the loaded magazine, else swap with a non-empty previous one,
    // else a full magazine from the depot (the empty loaded one is dropped).
    if (loaded.empty()) {
        if (!prev.empty()) {
            std::swap(loaded, prev);
        } else if (!depot_[*order].empty()) {
            loaded = std::move(depot_[*order].back());
            depot_[*order].pop_back();
            ++stats_.depot_moves;
        }
    }
    if (loaded.empty()) {
        ++stats_.misses;
        return std::nullopt;
    }
    const uint64_t iova = loaded.back();
    loaded.pop_back();
    ++stats_.hits;
    return iova;
}

bool IovaRcache::put(unsigned cpu, uint64_t iova, uint64_t pages, std::vector<uint64_t>& evicted) {
    const auto order = order_of(pages);
    if (!order) {
        ++stats_.to_tree;
        return false;
    }
    PerCpu& c = cpus_.at(cpu);
    Magazine& loaded = c.loaded[*order];
    Magazine& prev = c.prev[*order];
    // __iova_rcache_insert: the loaded magazine, else swap with a non-full previous one,
    // else the full loaded one goes to the depot (or, depot full, back to the tree).
    if (loaded.size() == kMagazine) {
        if (prev.size() < kMagazine) {
            std::swap(loaded, prev);
        } else {
            if (depot_[*order].size() < max_depot_) {
                depot_[*order].push_back(std::move(loaded));
                ++stats_.depot_moves;
            } else {
                evicted.insert(evicted.end(), loaded.begin(), loaded.end());
                stats_.to_tree += loaded.size();
            }
            loaded = Magazine{};
        }
    }
    loaded.push_back(iova);
    ++stats_.cached;
    return true;
}

size_t IovaRcache::cached_on(unsigned cpu, unsigned order) const {
    const PerCpu& c = cpus_.at(cpu);
    return c.loaded.at(order).size() + c.prev.at(order).size();
}

} // namespace iommusim::host
