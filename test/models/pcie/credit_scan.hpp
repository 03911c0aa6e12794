// SPDX-License-Identifier: Apache-2.0
#pragma once
// The credit pool's scan as first written (two passes, a zero-length BusyUntil::reserve() per
// busy credit): the reference that CreditPool::acquire must match grant for grant (the unit
// test and test/bench/bench_fabric.cpp).
#include <cstdint>
#include <vector>

#include "models/common/time.hpp"
#include "models/pcie/link.hpp"

namespace iommusim::pcie::test {

struct ScanPool {
    std::vector<BusyUntil> slots;
    uint32_t hint = 0;
    explicit ScanPool(uint32_t credits) : slots(credits) {}
    CreditPool::Grant acquire(Duration want) {
        const auto n = static_cast<uint32_t>(slots.size());
        for (uint32_t i = 0, s = hint; i < n; ++i, s = s + 1 == n ? 0 : s + 1) {
            if (slots[s].busy_until() <= want || slots[s].reserve(want, Duration::zero()) == want) {
                hint = s + 1 == n ? 0 : s + 1;
                return CreditPool::Grant{s, want};
            }
        }
        CreditPool::Grant g{0, slots[0].reserve(want, Duration::zero())};
        for (uint32_t s = 1; s < n; ++s)
            if (const Duration t = slots[s].reserve(want, Duration::zero()); t < g.start) g = CreditPool::Grant{s, t};
        return g;
    }
    void hold(const CreditPool::Grant& g, Duration until) {
        if (until > g.start) slots[g.slot].reserve(g.start, until - g.start);
    }
};

} // namespace iommusim::pcie::test
