// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "models/iommu/amd/amd_commands.hpp"

using namespace iommusim::iommu;
using namespace iommusim::iommu::amd;

namespace {
constexpr uint64_t op(unsigned o) { return uint64_t{o} << 60; }
template <class T>
T decoded(const std::array<uint64_t, 2>& q, const AmdParams& caps = {}) {
    Decoded d = decode(q, caps);
    REQUIRE(d.ok());
    REQUIRE(std::holds_alternative<T>(d.command));
    return std::get<T>(d.command);
}
CommandError error_of(const std::array<uint64_t, 2>& q, const AmdParams& caps = {}) { return decode(q, caps).error; }
} // namespace

TEST_CASE("COMPLETION_WAIT is laid out as Linux build_completion_wait writes it", "[unit][amd]") {
    CompletionWait c{true, false, false, 0x0000'00AB'CDEF'0128ull, 0x1122'3344'5566'7788ull};
    auto q = encode(c);
    // data[0] = low address | S, data[1] = high address bits 19:0 | opcode << 28, data[2..3] = 64-bit store data.
    CHECK(q[0] == (0x0000'00AB'CDEF'0128ull | 1 | op(1)));
    CHECK(q[1] == 0x1122'3344'5566'7788ull);
    CHECK(decoded<CompletionWait>(q) == c);
    CompletionWait irq{false, true, true, 0, 0};
    CHECK(encode(irq)[0] == (op(1) | 2 | 4));
    CHECK(decoded<CompletionWait>(encode(irq)) == irq);
    CHECK(error_of({op(1) | uint64_t{1} << 52, 0}) == CommandError::reserved_bits);
}

TEST_CASE("INVALIDATE_DEVTAB_ENTRY and INVALIDATE_INTERRUPT_TABLE carry only a DeviceID", "[unit][amd]") {
    CHECK(encode(InvalidateDevtabEntry{0x0A10}) == std::array<uint64_t, 2>{op(2) | 0x0A10, 0});
    CHECK(decoded<InvalidateDevtabEntry>({op(2) | 0x0A10, 0}).device_id == 0x0A10);
    CHECK(encode(InvalidateInterruptTable{0x0A10}) == std::array<uint64_t, 2>{op(5) | 0x0A10, 0});
    CHECK(decoded<InvalidateInterruptTable>({op(5) | 0x0A10, 0}).device_id == 0x0A10);
    for (unsigned o : {2u, 5u}) {
        CHECK(error_of({op(o) | uint64_t{1} << 16, 0}) == CommandError::reserved_bits);
        CHECK(error_of({op(o) | uint64_t{1} << 59, 0}) == CommandError::reserved_bits);
        CHECK(error_of({op(o), 1}) == CommandError::reserved_bits);
    }
}

TEST_CASE("INVALIDATE_IOMMU_PAGES is laid out as Linux build_inv_iommu_pages writes it", "[unit][amd]") {
    InvalidateIommuPages c;
    c.domain_id = 0x1234;
    c.pasid = 0xABCDE;
    c.s = true;
    c.pde = true;
    c.gn = true;
    c.address = 0x0000'7FFF'0000'5000ull;
    auto q = encode(c);
    CHECK(q[0] == (op(3) | 0xABCDE | uint64_t{0x1234} << 32));
    CHECK(q[1] == (0x0000'7FFF'0000'5000ull | 1 | 2 | 4));
    CHECK(decoded<InvalidateIommuPages>(q) == c);
    CHECK(error_of({op(3) | uint64_t{1} << 20, 0}) == CommandError::reserved_bits);
    CHECK(error_of({op(3) | uint64_t{1} << 48, 0}) == CommandError::reserved_bits);
    CHECK(error_of({op(3), uint64_t{1} << 3}) == CommandError::reserved_bits);
    CHECK(error_of({op(3), uint64_t{1} << 11}) == CommandError::reserved_bits);
}

TEST_CASE("INVALIDATE_IOTLB_PAGES splits the PASID as current Linux does", "[unit][amd]") {
    InvalidateIotlbPages c;
    c.device_id = 0x0318;
    c.pasid = 0x1ABCD;
    c.max_pend = 32;
    c.queue_id = 0x0318; // Linux puts the DeviceID here
    c.s = true;
    c.gn = true;
    c.address = 0x0000'0000'4000'7000ull;
    auto q = encode(c);
    CHECK((q[0] & 0xFFFF) == 0x0318);
    CHECK(((q[0] >> 16) & 0xFF) == 0xAB); // PASID[15:8]
    CHECK(((q[0] >> 24) & 0xFF) == 32);   // MaxPend
    CHECK(((q[0] >> 32) & 0xFFFF) == 0x0318);
    CHECK(((q[0] >> 48) & 0xFF) == 0xCD); // PASID[7:0]
    CHECK(((q[0] >> 56) & 0xF) == 0x1);   // PASID[19:16] (second source)
    CHECK((q[0] >> 60) == 4);
    CHECK(q[1] == (0x0000'0000'4000'7000ull | 1 | 4));
    CHECK(decoded<InvalidateIotlbPages>(q) == c);
    for (unsigned b : {65u, 67u, 70u, 75u})
        CHECK(error_of({op(4), uint64_t{1} << (b - 64)}) == CommandError::reserved_bits);
}

TEST_CASE("COMPLETE_PPR_REQUEST is laid out as Linux build_complete_ppr writes it", "[unit][amd]") {
    CompletePprRequest c{0x0420, 0x00F0F, true, 0x1A5, ppr_status::kInvalid};
    auto q = encode(c);
    CHECK(q[0] == (op(7) | 0x0420 | uint64_t{0x00F0F} << 32));
    CHECK(q[1] == (4 | uint64_t{0x1A5} << 32 | uint64_t{1} << 44)); // GN, tag 104:96, status 111:108
    CHECK(decoded<CompletePprRequest>(q) == c);
    CHECK(error_of({op(7) | uint64_t{1} << 16, 0}) == CommandError::reserved_bits);
    CHECK(error_of({op(7), 1}) == CommandError::reserved_bits);
    CHECK(error_of({op(7), uint64_t{1} << 41}) == CommandError::reserved_bits);
    CHECK(error_of({op(7), uint64_t{1} << 48}) == CommandError::reserved_bits);
    CHECK(error_of({op(7), uint64_t{2} << 44}) == CommandError::reserved_bits); // no PRG Response code 2
    CHECK(decode({op(7), uint64_t{0xF} << 44}, AmdParams{}).ok());
    AmdParams no_ppr;
    no_ppr.ppr = false;
    CHECK(error_of(q, no_ppr) == CommandError::unsupported);
}

TEST_CASE("INVALIDATE_IOMMU_ALL needs EFR.IASup and has no operands", "[unit][amd]") {
    CHECK(encode(InvalidateIommuAll{}) == std::array<uint64_t, 2>{op(8), 0});
    decoded<InvalidateIommuAll>({op(8), 0});
    CHECK(error_of({op(8) | 1, 0}) == CommandError::reserved_bits);
    CHECK(error_of({op(8), uint64_t{1} << 63}) == CommandError::reserved_bits);
    AmdParams no_ia;
    no_ia.invalidate_all = false;
    CHECK(error_of({op(8), 0}, no_ia) == CommandError::unsupported);
}

TEST_CASE("PREFETCH_IOMMU_PAGES is illegal without PreFSup and decodes with it", "[unit][amd]") {
    PrefetchIommuPages c{0x0010, 4, 0x33, true, true, true, 0x8000'0000ull};
    auto q = encode(c);
    CHECK(error_of(q) == CommandError::unsupported);
    AmdParams pf;
    pf.prefetch = true;
    CHECK(decoded<PrefetchIommuPages>(q, pf) == c);
    CHECK(error_of({op(6) | uint64_t{1} << 16, 0}, pf) == CommandError::reserved_bits);
}

TEST_CASE("Opcodes 0 and 9-15 are illegal commands", "[unit][amd]") {
    for (unsigned o : {0u, 9u, 10u, 11u, 12u, 13u, 14u, 15u}) CHECK(error_of({op(o), 0}) == CommandError::bad_opcode);
}

TEST_CASE("The S-bit range encoding round-trips Linux build_inv_address", "[unit][amd]") {
    // One page: S = 0.
    auto e = encode_range(0x1000, 0x1000);
    CHECK(e.address == 0x1000);
    CHECK_FALSE(e.s);
    CHECK(decode_range(e.address, e.s) == PageRange{0x1000, 0x1000, false});
    // Four aligned pages: msb of (start ^ end) is 13, bits below it set -> 0x5000, S = 1.
    e = encode_range(0x4000, 0x4000);
    CHECK(e.address == 0x5000);
    CHECK(e.s);
    CHECK(decode_range(e.address, e.s) == PageRange{0x4000, 0x4000, false});
    // An unaligned range widens to the naturally aligned region that covers it.
    e = encode_range(0x3000, 0x2000);
    CHECK(decode_range(e.address, e.s) == PageRange{0, 0x8000, false});
    // A span beyond bit 51 is the all-pages address.
    e = encode_range(0, uint64_t{1} << 60);
    CHECK(e.address == kAllPagesAddress);
    CHECK(decode_range(e.address, e.s).all);
    // A 2 MiB region.
    e = encode_range(0x4020'0000, 0x20'0000);
    CHECK(decode_range(e.address, e.s) == PageRange{0x4020'0000, 0x20'0000, false});
}

TEST_CASE("INVALIDATE_IOMMU_PAGES maps to the core's scope by GN, S and PDE", "[unit][amd]") {
    InvalidateIommuPages host;
    host.domain_id = 7;
    auto r = encode_range(0x10'0000, 0x4000);
    host.address = r.address;
    host.s = r.s;
    host.pde = true;
    InvalidationScope s = to_scope(host);
    CHECK(s.kind == InvalidationScope::Kind::range);
    CHECK(s.domain_tag == 7);
    CHECK_FALSE(s.has_as);
    CHECK(s.stage == InvalidationScope::Stage::s2);
    CHECK(s.addr == 0x10'0000);
    CHECK(s.size == 0x4000);
    CHECK_FALSE(s.leaf_only);

    InvalidateIommuPages guest = host;
    guest.gn = true;
    guest.pasid = 0x42;
    guest.pde = false;
    s = to_scope(guest);
    CHECK(s.kind == InvalidationScope::Kind::range);
    CHECK(s.has_as);
    CHECK(s.as_tag == 0x42);
    CHECK(s.stage == InvalidationScope::Stage::s1);
    CHECK(s.leaf_only);

    guest.address = kAllPagesAddress;
    guest.s = true;
    CHECK(to_scope(guest).kind == InvalidationScope::Kind::domain_as);
    host.address = kAllPagesAddress;
    host.s = true;
    CHECK(to_scope(host).kind == InvalidationScope::Kind::domain);
    CHECK(to_scope(InvalidateIommuAll{}).kind == InvalidationScope::Kind::all);
}

TEST_CASE("Linux's command builders: PDE always set, GN only with a PASID, QueueID = DeviceID", "[unit][amd]") {
    auto v1 = linux_inv_iommu_pages(3, 0x20'0000, 0x1000, false);
    CHECK(v1.pde);
    CHECK_FALSE(v1.s);
    CHECK_FALSE(v1.gn);
    CHECK(v1.address == 0x20'0000);
    auto all = linux_inv_iommu_pages(3, 0, kAllPagesAddress | 0xFFF, true, 0);
    CHECK(all.gn); // a v2 domain flushes PASID 0 with GN
    CHECK(to_scope(all).kind == InvalidationScope::Kind::domain_as);
    auto dev = linux_inv_iotlb_pages(0x0318, 32, 0x4000, 0x4000);
    CHECK(dev.queue_id == 0x0318);
    CHECK(dev.max_pend == 32);
    CHECK_FALSE(dev.gn);
    CHECK(decode_range(dev.address, dev.s) == PageRange{0x4000, 0x4000, false});
    CHECK(linux_inv_iotlb_pages(0x0318, 32, 0x4000, 0x1000, 7).gn);
    auto cw = linux_completion_wait(0x1234'5678, 42);
    CHECK(encode(cw) == std::array<uint64_t, 2>{(uint64_t{1} << 60) | 0x1234'5678 | 1, 42});
}
