// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <algorithm>
#include <random>
#include <vector>

#include "models/pcie/link.hpp"
#include "test/models/pcie/credit_scan.hpp"

using namespace iommusim;
using namespace iommusim::pcie;

namespace {
LinkParams lp(unsigned gen, unsigned width) {
    LinkParams p;
    p.generation = gen;
    p.width = width;
    return p;
}
} // namespace

TEST_CASE("link bandwidth follows generation, width and encoding", "[unit][pcie][link]") {
    // GB/s per direction after encoding.
    CHECK(LinkTiming(lp(1, 1)).bytes_per_ns() == Approx(0.25));            // 2.5 GT/s * 8/10 / 8
    CHECK(LinkTiming(lp(2, 4)).bytes_per_ns() == Approx(2.0));             // 5 GT/s x4, 8b/10b
    CHECK(LinkTiming(lp(3, 16)).bytes_per_ns() == Approx(8.0 * 16 * 128.0 / 130.0 / 8.0)); // 15.754
    CHECK(LinkTiming(lp(4, 8)).bytes_per_ns() == Approx(16.0 * 8 * 128.0 / 130.0 / 8.0));
    CHECK(LinkTiming(lp(5, 16)).bytes_per_ns() == Approx(63.015).epsilon(1e-4));
    CHECK(LinkTiming(lp(6, 16)).bytes_per_ns() == Approx(128.0 * 236.0 / 256.0)); // flit: 236 TLP bytes / 256
    CHECK_FALSE(LinkTiming(lp(5, 1)).flit_mode());
    CHECK(LinkTiming(lp(6, 1)).flit_mode());
}

TEST_CASE("TLP wire bytes count framing, LCRC, header size, PASID prefix and payload", "[unit][pcie][link]") {
    LinkTiming g3(lp(3, 4));
    // 3-DW MWr below 4 GiB, 64 B payload: 8 framing/seq/LCRC + 12 + 64.
    CHECK(g3.wire_bytes(TlpShape{TlpKind::mem_write, 64, false, false}) == 84);
    // 4-DW header above 4 GiB, PASID prefix adds one DW.
    CHECK(g3.wire_bytes(TlpShape{TlpKind::mem_write, 64, true, true}) == 8 + 16 + 4 + 64);
    CHECK(g3.wire_bytes(TlpShape{TlpKind::mem_read, 0, true, false}) == 24);
    CHECK(g3.wire_bytes(TlpShape{TlpKind::completion, 256, false, false}) == 8 + 12 + 256);
    CHECK(g3.wire_bytes(TlpShape{TlpKind::message, 0, true, true}) == 8 + 16 + 4);
    LinkTiming g6(lp(6, 4));
    // Flit mode: no per-TLP framing/LCRC; PASID in a 1-DW OHC-A.
    CHECK(g6.wire_bytes(TlpShape{TlpKind::mem_write, 64, true, true}) == 16 + 4 + 64);
}

TEST_CASE("writes split at MPS, reads at MRRS, completions at RCB within MPS, never across 4 KB", "[unit][pcie][link]") {
    LinkParams p = lp(4, 16);
    p.max_payload_bytes = 256;
    p.max_read_request_bytes = 512;
    p.rcb_bytes = 64;
    LinkTiming t(p);
    TlpTrain w = t.request_train(true, 0x1000, 4096, false);
    CHECK(w.tlps == 16);
    CHECK(w.payload_bytes == 4096);
    CHECK(w.wire_bytes == 16u * (8 + 12 + 256));
    // Unaligned write: 0x10f0..0x12f0 -> 0x10f0-0x1100 (16), 0x1100-0x1200 (256), 0x1200-0x12f0 (240).
    CHECK(t.request_train(true, 0x10f0, 512, false).tlps == 3);
    TlpTrain r = t.request_train(false, 0x1000, 4096, true);
    CHECK(r.tlps == 8);
    CHECK(r.payload_bytes == 0);
    CHECK(r.wire_bytes == 8u * (8 + 12 + 4));
    // Read of 512 B at 0x1020: completions end on RCB boundaries, at most 256 B each:
    // 0x1020-0x1100 (224), 0x1100-0x1200 (256), 0x1200-0x1220 (32).
    TlpTrain c = t.completion_train(0x1020, 512);
    CHECK(c.tlps == 3);
    CHECK(c.payload_bytes == 512);
    CHECK(c.first_tlp_wire_bytes == 8 + 12 + 224);
    // A failed read answers with one completion without data.
    CHECK(t.completion_train(0x1000, 0).tlps == 1);
    int chunks = 0;
    for_each_chunk(0xff0, 0x20, 4096, [&](Chunk ch) {
        ++chunks;
        CHECK((ch.addr >> 12) == ((ch.addr + ch.bytes - 1) >> 12));
    });
    CHECK(chunks == 2);
}

TEST_CASE("a busy link direction delays the next TLP train, directions are independent", "[unit][pcie][link]") {
    stats::Group root("root");
    LinkParams p = lp(3, 1);
    p.latency_ns = 10;
    Link link("l0", p, &root);
    TlpTrain tr = link.timing().request_train(true, 0x1000, 256, false);
    Duration ser = link.timing().serialize(tr.wire_bytes);
    LinkTransfer a = link.send(Direction::upstream, Duration::zero(), tr);
    LinkTransfer b = link.send(Direction::upstream, Duration::zero(), tr);
    LinkTransfer c = link.send(Direction::downstream, Duration::zero(), tr);
    CHECK(a.start == Duration::zero());
    CHECK(a.sent == ser);
    CHECK(a.delivered == ser + Duration::ns(10));
    CHECK(b.start == ser);              // queued behind a
    CHECK(c.start == Duration::zero()); // other direction free
    CHECK(root.find("l0.up_tlps")->stat != nullptr);
    CHECK(stats::numeric_value(*root.find("l0.up_tlps")) == 2);
    CHECK(stats::numeric_value(*root.find("l0.down_payload_bytes")) == 256);
    // A posted sender is released when sent, unless the far end is backed up
    // beyond its buffer.
    CHECK(link.posted_release(a, a.delivered) == a.sent);
    CHECK(link.posted_release(a, Duration::us(100)) > a.sent);
}

TEST_CASE("link parameters are validated with the field name", "[unit][pcie][link]") {
    CHECK_THROWS_WITH(LinkTiming(lp(7, 4)), Catch::Contains("generation"));
    CHECK_THROWS_WITH(LinkTiming(lp(3, 3)), Catch::Contains("width"));
    LinkParams p = lp(3, 4);
    p.max_payload_bytes = 300;
    CHECK_THROWS_WITH(LinkTiming(p), Catch::Contains("max_payload_bytes"));
}

TEST_CASE("a credit pool grants at once while credits are free, else at the earliest return", "[unit][pcie][link][credits]") {
    CreditPool pool(2);
    const auto a = pool.acquire(Duration::ns(0));
    pool.hold(a, Duration::ns(100));
    const auto b = pool.acquire(Duration::ns(10));
    pool.hold(b, Duration::ns(50));
    CHECK(a.start == Duration::ns(0));
    CHECK(b.start == Duration::ns(10));
    CHECK(a.slot != b.slot);
    const auto c = pool.acquire(Duration::ns(20)); // both held: the one returned at 50
    CHECK(c.start == Duration::ns(50));
    CHECK(c.slot == b.slot);
    pool.hold(c, Duration::ns(70));
    // Out of time order (temporal decoupling): at 2 ns the second credit was
    // still free (held from 10 ns on), so an earlier request is not queued
    // behind reservations made for later times.
    const auto d = pool.acquire(Duration::ns(2));
    CHECK(d.start == Duration::ns(2));
}

TEST_CASE("upstream TLPs wait for a credit of the port above and count the stall", "[unit][pcie][link][credits]") {
    stats::Group root("root");
    LinkParams p = lp(3, 4);
    p.non_posted_credits = 1;
    Link link("l0", p, &root);
    const auto g1 = link.acquire_credit(CreditClass::non_posted, Duration::zero());
    link.return_credit(CreditClass::non_posted, g1, Duration::ns(500)); // accepted by the next stage at 500 ns
    const auto g2 = link.acquire_credit(CreditClass::non_posted, Duration::ns(100));
    // The credit returns one hop (the UpdateFC DLLP) after the acceptance.
    CHECK(g2.start == Duration::ns(500 + p.latency_ns));
    CHECK(stats::numeric_value(*root.find("l0.up_non_posted_credit_stalls")) == 1);
    CHECK(stats::numeric_value(*root.find("l0.up_posted_credit_stalls")) == 0);
    CHECK_THROWS_WITH(LinkTiming([] { LinkParams q = lp(3, 4); q.non_posted_credits = 0; return q; }()),
                      Catch::Contains("non_posted_credits"));
}


TEST_CASE("a credit pool grants the same credit at the same time as a scan of every credit", "[unit][pcie][link][credits]") {
    // Saturated and idle phases, requests out of time order and equal return times (ties go
    // to the lowest-numbered credit).
    std::mt19937_64 rng(11);
    for (uint32_t credits : {1u, 2u, 5u, 32u}) {
        CreditPool pool(credits);
        test::ScanPool ref(credits);
        uint64_t clock = 0;
        for (int i = 0; i < 20000; ++i) {
            const uint64_t back = rng() % 8 == 0 ? rng() % 3000 : 0;
            const Duration want = Duration::ps(clock > back ? clock - back : 0);
            const CreditPool::Grant g = pool.acquire(want), r = ref.acquire(want);
            REQUIRE(g.slot == r.slot);
            REQUIRE(g.start == r.start);
            // Held for a while; a round figure now and then so return times tie.
            const uint64_t held = rng() % 4 == 0 ? 1000 : rng() % (i % 3000 < 1500 ? 5000 : 200);
            pool.hold(g, g.start + Duration::ps(held));
            ref.hold(r, r.start + Duration::ps(held));
            clock += rng() % 60;
        }
    }
}

TEST_CASE("completions pack whole RCB blocks up to MPS after the first block's rest, for every alignment", "[unit][pcie][link]") {
    // Reference: §2.3.1.1 as a loop adding one RCB block at a time while it fits in MPS.
    for (unsigned mps : {128u, 256u, 512u, 4096u})
        for (unsigned rcb : {64u, 128u}) {
            LinkParams p = lp(4, 16);
            p.max_payload_bytes = mps;
            p.rcb_bytes = rcb;
            const LinkTiming t(p);
            for (uint64_t addr = 0x1000; addr < 0x1000 + 2 * rcb; addr += 4)
                for (uint64_t size : {1ull, 4ull, 60ull, 64ull, 100ull, 128ull, 256ull, 513ull, 4096ull}) {
                    TlpTrain ref;
                    uint64_t a = addr, left = size;
                    while (left > 0) {
                        uint64_t room = rcb - (a & (rcb - 1));
                        while (room + rcb <= mps) room += rcb;
                        const auto n = static_cast<uint32_t>(std::min(room, left));
                        const uint32_t w = t.wire_bytes(TlpShape{TlpKind::completion, n, false, false});
                        if (ref.tlps == 0) ref.first_tlp_wire_bytes = w;
                        ++ref.tlps, ref.wire_bytes += w, ref.payload_bytes += n;
                        a += n, left -= n;
                    }
                    const TlpTrain c = t.completion_train(addr, size);
                    INFO("mps " << mps << " rcb " << rcb << " addr " << addr << " size " << size);
                    CHECK(c.tlps == ref.tlps);
                    CHECK(c.wire_bytes == ref.wire_bytes);
                    CHECK(c.payload_bytes == ref.payload_bytes);
                    CHECK(c.first_tlp_wire_bytes == ref.first_tlp_wire_bytes);
                }
        }
}
