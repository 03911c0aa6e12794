// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "models/mem/sparse_memory.hpp"

using iommusim::mem::SparseMemory;

TEST_CASE("untouched sparse memory reads as zero and allocates nothing", "[unit][mem]") {
    SparseMemory m(uint64_t{1} << 52);
    uint8_t buf[64];
    std::memset(buf, 0xAA, sizeof buf);
    m.read((uint64_t{1} << 51) + 12345, buf, sizeof buf);
    for (uint8_t b : buf) CHECK(b == 0);
    CHECK(m.touched_pages() == 0);
}

TEST_CASE("sparse memory allocates only the pages written, across a page boundary", "[unit][mem]") {
    SparseMemory m(uint64_t{64} << 30);
    std::vector<uint8_t> data(6000);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7);
    const uint64_t at = (uint64_t{40} << 30) + 4000; // spans 3 pages
    m.write(at, data.data(), data.size());
    CHECK(m.touched_pages() == 3);
    std::vector<uint8_t> back(data.size());
    m.read(at, back.data(), back.size());
    CHECK(back == data);
    m.write_u64(0x1000, 0x1122334455667788ULL);
    CHECK(m.read_u64(0x1000) == 0x1122334455667788ULL);
    CHECK(m.read_u32(0x1004) == 0x11223344u); // little-endian
    CHECK(m.touched_pages() == 4);
}

TEST_CASE("sparse memory rejects accesses beyond its size", "[unit][mem]") {
    SparseMemory m(1 << 20);
    uint64_t v = 0;
    CHECK_THROWS_AS(m.read((1 << 20) - 4, &v, 8), iommusim::mem::AddressError);
    CHECK_THROWS_AS(m.write(~uint64_t{0} - 2, &v, 8), iommusim::mem::AddressError);
    CHECK_THROWS_AS(SparseMemory((uint64_t{1} << 52) + 1), std::invalid_argument);
}

TEST_CASE("zero fill of untouched memory allocates nothing", "[unit][mem]") {
    SparseMemory m(1 << 30);
    m.fill(0x10000, 0, 1 << 20);
    CHECK(m.touched_pages() == 0);
    m.fill(0x10000, 0xFF, 8192);
    CHECK(m.touched_pages() == 2);
    CHECK(m.read_u64(0x11000) == ~uint64_t{0});
}

TEST_CASE("discarding freed memory returns its pages and reads back zero", "[unit][mem]") {
    SparseMemory m(1 << 30);
    m.fill(0x10000, 0xAB, 3 * 4096);
    CHECK(m.touched_pages() == 3);
    m.discard(0x10800, 2 * 4096); // only the one whole page inside is dropped
    CHECK(m.touched_pages() == 2);
    CHECK(m.read_u64(0x11000) == 0);
    CHECK(m.read_u64(0x10000) == 0xABABABABABABABABULL);
}

TEST_CASE("a discarded page written again holds only the new bytes, the rest reads zero", "[unit][mem]") {
    SparseMemory m(1 << 30);
    m.fill(0x20000, 0xCD, 4096);
    m.discard(0x20000, 4096);
    CHECK(m.touched_pages() == 0);
    m.write_u32(0x30010, 0x12345678); // another page: backed by the discarded one's storage
    CHECK(m.touched_pages() == 1);
    CHECK(m.read_u32(0x30010) == 0x12345678);
    CHECK(m.read_u64(0x30000) == 0);
    CHECK(m.read_u64(0x30FF8) == 0);
    CHECK(m.read_u64(0x20000) == 0);
}
