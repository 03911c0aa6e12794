// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/common/walk_mem_port.hpp"

namespace iommusim::iommu {

std::optional<uint64_t> PhysMemWalkPort::do_read_u64(uint64_t pa, Duration& latency) {
    latency += p_.read_latency;
    try {
        return mem_.read_u64(pa);
    } catch (const mem::AddressError&) {
        return std::nullopt;
    }
}

bool PhysMemWalkPort::do_write_u64(uint64_t pa, uint64_t v, Duration& latency) {
    latency += p_.write_latency;
    try {
        mem_.write_u64(pa, v);
        return true;
    } catch (const mem::AddressError&) {
        return false;
    }
}

std::optional<uint64_t> PhysMemWalkPort::do_compare_exchange_u64(uint64_t pa, uint64_t expected, uint64_t desired,
                                                                 Duration& latency) {
    latency += p_.write_latency;
    try {
        uint64_t cur = mem_.read_u64(pa);
        if (cur == expected) mem_.write_u64(pa, desired);
        return cur;
    } catch (const mem::AddressError&) {
        return std::nullopt;
    }
}

} // namespace iommusim::iommu
