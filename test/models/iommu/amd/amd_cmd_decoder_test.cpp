// SPDX-License-Identifier: Apache-2.0
// The AMD-Vi command buffer on the shared command-queue engine: each command's
// generic actions, and the engine halting on an illegal command.
#include <catch2/catch.hpp>

#include "models/iommu/amd/amd_cmd_decoder.hpp"
#include "models/mem/sparse_memory.hpp"

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::amd;

namespace {
template <class A>
const A& action(const DecodedCommand& d, size_t i) {
    REQUIRE(i < d.count);
    REQUIRE(std::holds_alternative<A>(d.list()[i]));
    return std::get<A>(d.list()[i]);
}
} // namespace

TEST_CASE("COMPLETION_WAIT becomes a sync with an 8-byte store and ComWaitInt", "[unit][amd]") {
    auto d = to_actions(CompletionWait{true, true, true, 0x1234'5678, 0xAABB'CCDD'EEFF'0011ull});
    REQUIRE(d.count == 1);
    const auto& s = action<SyncAction>(d, 0);
    CHECK(s.status_write);
    CHECK(s.status_addr == 0x1234'5678);
    CHECK(s.status_data == 0xAABB'CCDD'EEFF'0011ull);
    CHECK(s.status_bytes == 8);
    CHECK_FALSE(s.status_is_msi);
    CHECK(s.interrupt);
    CHECK(s.fence);
}

TEST_CASE("INVALIDATE_DEVTAB_ENTRY drops the DeviceID's DTE and GCR3 cache entries", "[unit][amd]") {
    auto d = to_actions(InvalidateDevtabEntry{0x0310});
    REQUIRE(d.count == 2);
    CHECK(action<InvalidateConfig>(d, 0).cache == kDteCache);
    CHECK(action<InvalidateConfig>(d, 0).scope.kind == ConfigScope::Kind::requester);
    CHECK(action<InvalidateConfig>(d, 0).scope.requester == 0x0310);
    CHECK(action<InvalidateConfig>(d, 1).cache == kGcr3Cache);
}

TEST_CASE("INVALIDATE_IOMMU_PAGES with GN also drops the PASID's GCR3 cache entries", "[unit][amd]") {
    auto host = to_actions(linux_inv_iommu_pages(4, 0x1000, 0x1000, false));
    REQUIRE(host.count == 1);
    CHECK(action<InvalidateTranslations>(host, 0).scope.stage == InvalidationScope::Stage::s2);
    auto guest = to_actions(linux_inv_iommu_pages(4, 0x1000, 0x1000, true, 9));
    REQUIRE(guest.count == 2);
    CHECK(action<InvalidateTranslations>(guest, 0).scope.as_tag == 9);
    const auto& c = action<InvalidateConfig>(guest, 1);
    CHECK(c.cache == kGcr3Cache);
    CHECK(c.scope.kind == ConfigScope::Kind::domain_pasid);
    CHECK(c.scope.domain == 4);
    CHECK(c.scope.pasid == 9);
}

TEST_CASE("INVALIDATE_IOTLB_PAGES becomes one ATS Invalidate Request", "[unit][amd]") {
    auto d = to_actions(linux_inv_iotlb_pages(0x0318, 0, 0x4000, 0x4000, 7));
    REQUIRE(d.count == 1);
    const auto& a = action<InvalidateDeviceAtc>(d, 0);
    CHECK(a.request.target == pcie::Bdf{0x0318});
    CHECK(a.request.pasid_present);
    CHECK(a.request.pasid == 7);
    CHECK(a.request.s);
    CHECK(a.request.range_base() == 0x4000);
    CHECK(a.request.range_size() == 0x4000);
    CHECK(a.queue_depth == 32); // MaxPend 0
}

TEST_CASE("COMPLETE_PPR_REQUEST becomes a PRG Response", "[unit][amd]") {
    auto d = to_actions(CompletePprRequest{0x0420, 0x33, true, 0x1A5, ppr_status::kFailure});
    const auto& p = action<PageResponseAction>(d, 0).response;
    CHECK(p.destination == pcie::Bdf{0x0420});
    CHECK(p.pasid_present);
    CHECK(p.pasid == 0x33);
    CHECK(p.prg_index == 0x1A5);
    CHECK(p.code == pcie::PrgResponseCode::response_failure);
}

TEST_CASE("INVALIDATE_IOMMU_ALL drops every translation and configuration entry", "[unit][amd]") {
    auto d = to_actions(InvalidateIommuAll{});
    REQUIRE(d.count == 3);
    CHECK(action<InvalidateTranslations>(d, 0).scope.kind == InvalidationScope::Kind::all);
    CHECK(action<InvalidateConfig>(d, 1).scope.kind == ConfigScope::Kind::all);
    CHECK(action<InvalidateConfig>(d, 2).scope.kind == ConfigScope::Kind::all);
    CHECK(std::holds_alternative<NoOpAction>(to_actions(InvalidateInterruptTable{1}).list()[0]));
}

TEST_CASE("The command buffer halts at an illegal command with its head on it", "[unit][amd]") {
    mem::SparseMemory m{uint64_t{1} << 32};
    PhysMemPort port{m};
    struct Hook final : CommandDecoder {
        AmdParams caps;
        Decoded last;
        DecodedCommand decode(std::span<const uint64_t> w) override { return decode_actions(w, caps, last); }
    } dec;
    CommandQueue q{dec, kCommandHwError};
    q.ring().configure(0x10'0000, 256, 16);
    q.set_enabled(true);
    auto put = [&](uint32_t slot, std::array<uint64_t, 2> c) { m.write(0x10'0000 + 16u * slot, c.data(), 16); };
    put(0, encode(InvalidateDevtabEntry{1}));
    put(1, {uint64_t{0xB} << 60, 0}); // opcode 0xB
    put(2, encode(InvalidateIommuAll{}));
    q.ring().set_prod(3);
    Duration l;
    auto f = q.fetch(port, l);
    REQUIRE(f.ok());
    q.consume();
    f = q.fetch(port, l);
    CHECK(f.status == CommandQueue::Status::decode_error);
    CHECK(q.halted());
    CHECK(q.error() == kIllegalCommand);
    CHECK(q.ring().cons() == 1);
    CHECK_FALSE(q.has_work());
    CHECK(dec.last.error == CommandError::bad_opcode);
}
