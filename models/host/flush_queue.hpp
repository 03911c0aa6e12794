// SPDX-License-Identifier: Apache-2.0
#pragma once
// Lazy-invalidation flush queue, after Linux drivers/iommu/dma-iommu.c: unmapped
// IOVA ranges are queued instead of invalidated one by one; the queue is
// flushed (one domain-wide invalidation + wait) when it holds `max_entries`
// or when its oldest entry is `timeout` old (calibration.md: 256 entries per
// CPU, 10 ms). The ranges are released to the IOVA allocator only after the
// flush has completed, so an IOVA is never reused while a stale translation
// may still be cached.
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "models/common/time.hpp"

namespace iommusim::host {

struct FlushQueueParams {
    static constexpr uint32_t kDefaultEntries = 256;      // Linux IOVA_FQ_SIZE
    static constexpr double kDefaultTimeoutUs = 10000.0;  // Linux IOVA_FQ_TIMEOUT, 10 ms
    uint32_t max_entries = kDefaultEntries;
    Duration timeout = Duration::us(kDefaultTimeoutUs);
};

class FlushQueue {
public:
    struct Entry {
        uint32_t domain;
        uint64_t iova;
        uint64_t size;
        Duration queued_at;
    };
    explicit FlushQueue(const FlushQueueParams& p) : p_(p) {}

    /// Queues an unmapped range; returns true when the queue is now full and must be flushed.
    bool push(const Entry& e) {
        entries_.push_back(e);
        return entries_.size() >= p_.max_entries;
    }
    /// When the oldest entry times out, if any entry is queued.
    std::optional<Duration> deadline() const {
        if (entries_.empty()) return std::nullopt;
        return entries_.front().queued_at + p_.timeout;
    }
    bool due(Duration now) const { return !entries_.empty() && (entries_.size() >= p_.max_entries || now >= *deadline()); }
    /// Takes every queued entry for one flush.
    std::vector<Entry> take() { return std::exchange(entries_, {}); }
    size_t size() const { return entries_.size(); }

private:
    FlushQueueParams p_;
    std::vector<Entry> entries_;
};

} // namespace iommusim::host
