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
        DecodedCommand decode(std::span<const uint64_t> w) override { return decode_actions(w, caps); }
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
    CHECK(decode({uint64_t{0xB} << 60, 0}, dec.caps).error == CommandError::bad_opcode);
}

TEST_CASE("The decode hook builds each command's actions straight from its two qwords", "[unit][amd]") {
    const AmdParams caps;
    auto hook = [&](const std::array<uint64_t, 2>& q) { return decode_actions(q, caps); };
    // INVALIDATE_IOMMU_PAGES of one host page: the domain's stage-2 range, PDE caches included.
    const auto pages = hook(encode(linux_inv_iommu_pages(7, 0x5000, 0x1000, false)));
    REQUIRE(pages.count == 1);
    const InvalidationScope& s = action<InvalidateTranslations>(pages, 0).scope;
    CHECK(s.kind == InvalidationScope::Kind::range);
    CHECK(s.stage == InvalidationScope::Stage::s2);
    CHECK(s.domain_tag == 7);
    CHECK(s.addr == 0x5000);
    CHECK(s.size == 0x1000);
    CHECK_FALSE(s.leaf_only);
    // INVALIDATE_IOTLB_PAGES: one ATS Invalidate Request with its PASID and MaxPend.
    const auto iotlb = hook(encode(linux_inv_iotlb_pages(0x0318, 4, 0x8000, 0x2000, 0x1234)));
    const InvalidateDeviceAtc& atc = action<InvalidateDeviceAtc>(iotlb, 0);
    CHECK(atc.request.target == pcie::Bdf{0x0318});
    CHECK(atc.request.pasid_present);
    CHECK(atc.request.pasid == 0x1234);
    CHECK(atc.request.address == 0x8000);
    CHECK(atc.request.s);
    CHECK(atc.queue_depth == 4);
    // COMPLETION_WAIT: the store of its 64-bit data.
    const auto wait = hook(encode(linux_completion_wait(0x9000, 0x1122334455667788ull)));
    const SyncAction& w = action<SyncAction>(wait, 0);
    CHECK(w.status_write);
    CHECK(w.status_addr == 0x9000);
    CHECK(w.status_data == 0x1122334455667788ull);
    CHECK(w.status_bytes == 8);
    // Every error decode() reports is ILLEGAL_COMMAND_ERROR, and so is a short entry.
    auto reserved = encode(InvalidateDevtabEntry{1});
    reserved[1] = 1;
    REQUIRE(decode(reserved, caps).error == CommandError::reserved_bits);
    CHECK(hook(reserved).error == kIllegalCommand);
    CHECK(hook({uint64_t{0xB} << 60, 0}).error == kIllegalCommand);
    AmdParams no_ia = caps;
    no_ia.invalidate_all = false;
    CHECK(decode_actions(encode(InvalidateIommuAll{}), no_ia).error == kIllegalCommand);
    const uint64_t one = encode(InvalidateIommuAll{})[0];
    CHECK(decode_actions(std::span<const uint64_t>(&one, 1), caps).error == kIllegalCommand);
}
