// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "models/iommu/common/cmd_queue.hpp"
#include "models/mem/sparse_memory.hpp"

using namespace iommusim;
using namespace iommusim::iommu;

namespace {
// A two-qword test format: q0[7:0] opcode, q0[31:16] requester, q0[63:32] data; q1 address.
constexpr uint32_t kIllegal = 7, kFetchError = 9;
class TestDecoder final : public CommandDecoder {
public:
    DecodedCommand decode(std::span<const uint64_t> w) override {
        ++calls;
        const uint32_t rid = static_cast<uint32_t>(w[0] >> 16) & 0xFFFF;
        DecodedCommand d;
        switch (w[0] & 0xFF) {
        case 1: return d.add(InvalidateTranslations{});
        case 2: return d.add(InvalidateConfig{0, ConfigScope::of_requester(rid)})
                        .add(InvalidateConfig{1, ConfigScope::of_requester(rid)});
        case 3: {
            SyncAction s;
            s.status_write = true;
            s.status_addr = w[1];
            s.status_data = w[0] >> 32;
            return d.add(s);
        }
        default: return DecodedCommand::fail(kIllegal);
        }
    }
    int calls = 0;
};
struct Rig {
    mem::SparseMemory m{1 << 20};
    PhysMemPort port{m, Duration::ns(90)};
    TestDecoder dec;
    CommandQueue q{dec, kFetchError};
    Rig() {
        q.ring().configure(0x10000, 256, 16);
        q.set_enabled(true);
    }
    void put(uint32_t slot, uint64_t q0, uint64_t q1 = 0) {
        m.write_u64(0x10000 + slot * 16, q0);
        m.write_u64(0x10000 + slot * 16 + 8, q1);
    }
};
} // namespace

TEST_CASE("command queue: a command at the head decodes into its actions, and consume moves the head",
          "[unit]") {
    Rig r;
    r.put(0, 2 | (0x0310u << 16));
    CHECK_FALSE(r.q.has_work());
    r.q.ring().set_prod(1); // software wrote the tail
    REQUIRE(r.q.has_work());
    Duration local;
    auto f = r.q.fetch(r.port, local);
    REQUIRE(f.ok());
    CHECK(local == Duration::ns(90));
    REQUIRE(f.command.count == 2);
    const auto& a = std::get<InvalidateConfig>(f.command.list()[1]);
    CHECK(a.cache == 1);
    CHECK(a.scope.kind == ConfigScope::Kind::requester);
    CHECK(a.scope.requester == 0x0310);
    CHECK(r.q.ring().cons() == 0); // not consumed yet: a polling driver still sees it pending
    r.q.consume();
    CHECK(r.q.ring().cons() == 1);
    CHECK(r.q.consumed() == 1);
    CHECK_FALSE(r.q.has_work());
}

TEST_CASE("command queue: a decode error halts at the offending command until software acknowledges",
          "[unit]") {
    Rig r;
    r.put(0, 1);
    r.put(1, 0x55); // illegal opcode
    r.put(2, 3 | (uint64_t{0xABCD} << 32), 0x2000);
    r.q.ring().set_prod(3);
    Duration local;
    REQUIRE(r.q.fetch(r.port, local).ok());
    r.q.consume();
    auto bad = r.q.fetch(r.port, local);
    CHECK(bad.status == CommandQueue::Status::decode_error);
    CHECK(r.q.halted());
    CHECK(r.q.error() == kIllegal);
    CHECK(r.q.ring().cons() == 1);
    CHECK_FALSE(r.q.has_work());
    // Software fixes the command in place and acknowledges: the engine resumes at the same slot.
    r.put(1, 1);
    r.q.acknowledge();
    REQUIRE(r.q.has_work());
    REQUIRE(r.q.fetch(r.port, local).ok());
    r.q.consume();
    auto s = r.q.fetch(r.port, local);
    REQUIRE(s.ok());
    const auto& sync = std::get<SyncAction>(s.command.list()[0]);
    CHECK(sync.status_write);
    CHECK(sync.status_addr == 0x2000);
    CHECK(sync.status_data == 0xABCD);
}

TEST_CASE("command queue: a fetch that hits a memory error halts with the family's fetch error", "[unit]") {
    Rig r;
    r.q.ring().configure(uint64_t{1} << 30, 256, 16); // outside the memory
    r.q.ring().set_prod(1);
    Duration local;
    auto f = r.q.fetch(r.port, local);
    CHECK(f.status == CommandQueue::Status::fetch_error);
    CHECK(r.q.halted());
    CHECK(r.q.error() == kFetchError);
    CHECK(r.dec.calls == 0);
}

TEST_CASE("command queue: a disabled queue has no work, the head wraps at the end of the ring", "[unit]") {
    Rig r;
    r.q.ring().configure(0x10000, 4, 16);
    r.q.set_enabled(false);
    r.q.ring().set_prod(2);
    CHECK_FALSE(r.q.has_work());
    r.q.set_enabled(true);
    r.q.ring().set_cons(3);
    r.put(3, 1);
    r.put(0, 1);
    r.put(1, 1);
    r.q.ring().set_prod(1);
    Duration local;
    for (int i = 0; i < 2; ++i) {
        REQUIRE(r.q.fetch(r.port, local).ok());
        r.q.consume();
    }
    CHECK(r.q.ring().cons() == 1);
    CHECK_FALSE(r.q.has_work());
}

TEST_CASE("command queue: SMMU-style positions with wrap bits use every slot", "[unit]") {
    mem::SparseMemory m(1 << 20);
    PhysMemPort port(m);
    TestDecoder dec;
    CommandQueue q(dec, kFetchError, Ring::Index::wrap_bit);
    q.ring().configure(0x10000, 2, 16);
    q.set_enabled(true);
    m.write_u64(0x10000, 1);
    m.write_u64(0x10010, 1);
    q.ring().set_prod(0, true); // two commands: PROD wrapped to index 0
    CHECK(q.ring().used() == 2);
    Duration local;
    for (int i = 0; i < 2; ++i) {
        REQUIRE(q.fetch(port, local).ok());
        q.consume();
    }
    CHECK(q.ring().cons_wrap());
    CHECK_FALSE(q.has_work());
}

TEST_CASE("command queue: an invalid tail is reported by the next fetch without reading memory", "[unit]") {
    Rig r;
    r.q.set_tail_error(11);
    REQUIRE(r.q.has_work()); // even though head == tail
    Duration local;
    auto f = r.q.fetch(r.port, local);
    CHECK(f.status == CommandQueue::Status::tail_error);
    CHECK(local == Duration::zero());
    CHECK(r.q.error() == 11);
    CHECK(r.dec.calls == 0);
    // Software writes a valid tail and acknowledges.
    r.q.set_tail_error(0);
    r.q.acknowledge();
    CHECK_FALSE(r.q.has_work());
}

TEST_CASE("a decoded command says whether one of its actions is a sync", "[unit]") {
    DecodedCommand inv;
    inv.add(InvalidateTranslations{}).add(InvalidateConfig{});
    CHECK_FALSE(inv.has_sync);
    DecodedCommand sync;
    sync.add(InvalidateConfig{}).add(SyncAction{});
    CHECK(sync.has_sync);
    CHECK(std::holds_alternative<SyncAction>(sync.list()[1]));
    CHECK_FALSE(DecodedCommand::fail(kIllegal).has_sync);
}
