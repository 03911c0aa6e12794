// SPDX-License-Identifier: Apache-2.0
#include <array>
#include <catch2/catch.hpp>

#include "models/iommu/common/record_ring.hpp"
#include "models/mem/sparse_memory.hpp"

using namespace iommusim;
using namespace iommusim::iommu;

namespace {
struct Rig {
    mem::SparseMemory m{1 << 20};
    PhysMemPort port{m, Duration::ns(90)};
};
std::array<uint64_t, 4> rec(uint64_t tag) { return {tag, ~tag, tag + 1, tag + 2}; }
} // namespace

TEST_CASE("record ring: records land at base + prod * entry size and the producer advances", "[unit]") {
    Rig r;
    RecordRing ring;
    ring.ring().configure(0x4000, 8, 32);
    Duration local;
    auto a = ring.push(r.port, rec(1).data(), local);
    CHECK(a.written());
    CHECK(a.was_empty);
    CHECK(a.interrupt_needed());
    auto b = ring.push(r.port, rec(2).data(), local);
    CHECK_FALSE(b.was_empty);
    CHECK(local == Duration::ns(180));
    CHECK(r.m.read_u64(0x4000) == 1);
    CHECK(r.m.read_u64(0x4020) == 2);
    CHECK(r.m.read_u64(0x4028) == ~uint64_t{2});
    CHECK(ring.ring().prod_offset() == 0x40);
    CHECK(ring.ring().used() == 2);
}

TEST_CASE("record ring without wrap bits: one slot stays free, overflow drops the record once", "[unit]") {
    Rig r;
    RecordRing ring;
    ring.ring().configure(0x4000, 4, 32);
    Duration local;
    for (uint64_t i = 0; i < 3; ++i) REQUIRE(ring.push(r.port, rec(i).data(), local).written());
    CHECK(ring.ring().full());
    auto o = ring.push(r.port, rec(9).data(), local);
    CHECK(o.outcome == RecordRing::Outcome::overflow);
    CHECK(o.overflow_raised);
    CHECK(o.interrupt_needed());
    CHECK(r.m.read_u64(0x4060) == 0); // the free slot was not written
    // A second record while the overflow is unacknowledged is dropped without a new overflow.
    auto o2 = ring.push(r.port, rec(10).data(), local);
    CHECK(o2.outcome == RecordRing::Outcome::overflow);
    CHECK_FALSE(o2.overflow_raised);
    CHECK(ring.records_dropped() == 2);
    // Software consumes two records and acknowledges: the ring takes records again.
    ring.ring().set_cons_offset(0x40);
    ring.ack_overflow();
    CHECK(ring.push(r.port, rec(11).data(), local).written());
    CHECK(r.m.read_u64(0x4060) == 11);
    CHECK(ring.ring().prod() == 0); // wrapped
}

TEST_CASE("record ring with wrap bits: every slot is usable and the overflow flag toggles per overflow", "[unit]") {
    Rig r;
    RecordRing ring(Ring::Index::wrap_bit);
    ring.ring().configure(0x8000, 4, 32);
    Duration local;
    for (uint64_t i = 0; i < 4; ++i) REQUIRE(ring.push(r.port, rec(i).data(), local).written());
    CHECK(ring.ring().full());
    CHECK(ring.ring().prod() == 0);
    CHECK(ring.ring().prod_wrap());
    CHECK(ring.ring().used() == 4);
    CHECK_FALSE(ring.overflow_flag());
    CHECK(ring.push(r.port, rec(5).data(), local).overflow_raised);
    CHECK(ring.overflow_flag()); // SMMUv3 PROD.OVFLG toggled
    ring.ring().set_cons(0, true); // software consumed all four
    ring.ack_overflow();           // CONS.OVACKFLG = OVFLG
    CHECK(ring.ring().empty());
    CHECK(ring.push(r.port, rec(6).data(), local).written());
    ring.ring().set_cons(1, true);
    for (int i = 0; i < 4; ++i) REQUIRE(ring.push(r.port, rec(7).data(), local).written());
    CHECK(ring.push(r.port, rec(8).data(), local).overflow_raised);
    CHECK_FALSE(ring.overflow_flag()); // toggled back by the second overflow
}

TEST_CASE("record ring: a write error leaves the producer where it was, an unconfigured ring writes nothing",
          "[unit]") {
    Rig r;
    RecordRing ring;
    Duration local;
    CHECK(ring.push(r.port, rec(1).data(), local).outcome == RecordRing::Outcome::not_configured);
    ring.ring().configure(uint64_t{1} << 30, 4, 32); // beyond the 1 MiB memory
    auto w = ring.push(r.port, rec(1).data(), local);
    CHECK(w.outcome == RecordRing::Outcome::write_error);
    CHECK_FALSE(w.interrupt_needed());
    CHECK(ring.ring().prod() == 0);
}

TEST_CASE("ring: offsets are valid only when entry aligned and inside the ring", "[unit]") {
    Ring q;
    q.configure(0x1000, 256, 16);
    CHECK(q.valid_offset(0));
    CHECK(q.valid_offset(0xFF0));
    CHECK_FALSE(q.valid_offset(0x1000));
    CHECK_FALSE(q.valid_offset(0x18));
}
