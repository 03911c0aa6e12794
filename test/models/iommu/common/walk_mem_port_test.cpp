// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "models/iommu/common/walk_mem_port.hpp"
#include "models/mem/sparse_memory.hpp"

using namespace iommusim;
using namespace iommusim::iommu;

TEMPLATE_TEST_CASE("walk memory ports count accesses, charge latency and report bus errors as values", "[unit]",
                   PhysMemWalkPort, SparseMemWalkPort) {
    mem::SparseMemory m(1 << 20);
    m.write_u64(0x1000, 0x1122334455667788ull);
    m.write_u64(0x2FFC, 0xAABBCCDD00000000ull); // straddles a page boundary
    WalkMemPortParams p;
    p.read_latency = Duration::ns(100);
    p.write_latency = Duration::ns(50);
    TestType port(m, p);
    CHECK(port.read_u64(0x1000) == 0x1122334455667788ull);
    CHECK(port.read_u64(0x2FFC) == 0xAABBCCDD00000000ull);
    CHECK(port.read_u64(0x5000) == 0u);                 // never written: zero
    CHECK_FALSE(port.read_u64((1 << 20) - 4).has_value()); // runs off the end
    CHECK(port.write_u64(0x1008, 7));
    CHECK(m.read_u64(0x1008) == 7u);
    CHECK(port.compare_exchange_u64(0x1008, 7, 9) == 7u);
    CHECK(port.compare_exchange_u64(0x1008, 7, 11) == 9u); // mismatch: unchanged
    CHECK(m.read_u64(0x1008) == 9u);
    CHECK_FALSE(port.write_u64(1 << 20, 1));
    CHECK(port.reads() == 4);
    CHECK(port.writes() == 4);
    CHECK(port.latency() == Duration::ns(4 * 100 + 4 * 50));
}

TEST_CASE("the sparse-memory port sees writes made behind its page cache", "[unit]") {
    mem::SparseMemory m(1 << 20);
    SparseMemWalkPort port(m);
    m.write_u64(0x3000, 1);
    CHECK(port.read_u64(0x3000) == 1u);
    m.write_u64(0x3000, 2); // the driver rewrites a descriptor
    CHECK(port.read_u64(0x3000) == 2u);
}
