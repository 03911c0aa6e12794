// SPDX-License-Identifier: Apache-2.0
#pragma once
// BusyPool: several identical busy-until resources (models/common/time.hpp BusyUntil), each
// use on the one that frees up earliest (an IOMMU's page-walk slots).
#include <cstdint>
#include <vector>

#include "models/common/time.hpp"

namespace iommusim {

/// `n` identical BusyUntil resources (e.g. an IOMMU's page-walk slots); each use takes the one
/// that frees up earliest, the lowest-numbered among equals (what a scan with std::min_element
/// picks). The slots are kept sorted by (busy until, index) in a ring, the earliest at its head.
/// A use leaves its slot busy longest of all when arrivals come in time order (the common
/// case): the slot then only moves from the head to the back, which is where the ring's head
/// moves to (O(1)); a use that fills a gap leaves its busy-until time and its place unchanged
/// (O(1)); otherwise it is moved back to its place (a slot's busy-until time never decreases,
/// so it only moves towards the back).
class BusyPool {
public:
    explicit BusyPool(uint32_t n) : slots_(n ? n : 1), order_(slots_.size()) {
        for (uint32_t i = 0; i < order_.size(); ++i) order_[i] = {0, i};
        for (BusyUntil& s : slots_) s.preallocate();
    }
    struct Use {
        Duration start;  ///< when the occupation starts (>= arrival)
        uint32_t slot;   ///< which resource
    };
    /// Reserves `hold` on the slot that frees up earliest, for a use arriving at `arrival`.
    Use reserve(Duration arrival, Duration hold) {
        const size_t n = order_.size();
        const uint32_t i = order_[head_].slot;
        const Duration start = slots_[i].reserve(arrival, hold);
        const Key k{slots_[i].busy_until().as_ps(), i};
        const size_t next = head_ + 1 == n ? 0 : head_ + 1;
        // Still the earliest (the use filled a gap, busy-until unchanged): it stays at the head.
        if (n == 1 || k < order_[next]) {
            order_[head_] = k;
            return {start, i};
        }
        head_ = next;
        // The old head's place is now the ring's last: k goes there unless it sorts before
        // others, which then move up one place each.
        size_t pos = n - 1;
        for (; pos > 0 && k < at(pos - 1); --pos) at(pos) = at(pos - 1);
        at(pos) = k;
        return {start, i};
    }
    size_t size() const { return slots_.size(); }

private:
    struct Key {
        uint64_t until;
        uint32_t slot;
        bool operator<(const Key& o) const { return until != o.until ? until < o.until : slot < o.slot; }
    };
    /// The ring's `p`-th element in (busy until, index) order.
    Key& at(size_t p) {
        const size_t q = head_ + p;
        return order_[q >= order_.size() ? q - order_.size() : q];
    }
    std::vector<BusyUntil> slots_;
    std::vector<Key> order_; ///< sorted ring, order_[head_] the earliest
    size_t head_ = 0;
};

} // namespace iommusim
