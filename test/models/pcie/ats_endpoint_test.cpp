// SPDX-License-Identifier: Apache-2.0
#include <array>
#include <catch2/catch.hpp>

#include "models/pcie/ats_endpoint.hpp"
#include "test/models/iommu/vtd/vtd_harness.hpp"

using namespace vtdtest;
using sc_core::sc_time;
using sc_core::SC_NS;
using sc_core::SC_US;
using sc_core::SC_ZERO_TIME;

namespace {
const pcie::Bdf kEp(0x05, 0x00, 0x0);
constexpr uint64_t kVa = 0x10000000;
constexpr uint64_t kPa = 0x40000000;
constexpr uint32_t kPasid = 3;
constexpr uint16_t kDid = 9;

struct Rig {
    Harness h{VtdParams{}, /*bind_sink=*/false, /*with_aux=*/true};
    pcie::AtsEndpoint ep;
    std::unique_ptr<PageTables> pt;
    SmContextEntry ce;
    explicit Rig(pcie::AtsEndpointParams p = make_params()) : ep("ep", p, &h.root) {
        ep.upstream.bind(h.router->b);
        h.iommu->ats_inv.bind(ep.downstream);
    }
    static pcie::AtsEndpointParams make_params() {
        pcie::AtsEndpointParams p;
        p.rid = kEp;
        return p;
    }
    /// Brings the unit up and maps kVa -> kPa for (kEp, kPasid) with device-TLB enabled.
    void setup(bool pgsnp = false) {
        h.enable();
        pt = std::make_unique<PageTables>(h, PtFormat::x86_64, 4);
        pt->map(kVa, kPa);
        pt->map(kVa + 0x1000, kPa + 0x1000);
        ce = h.tables->make_context(kEp, 0, /*dte=*/true, /*paside=*/true, /*pre=*/true, 0);
        PasidEntry e;
        e.present = true;
        e.pgtt = static_cast<uint8_t>(Pgtt::first_stage);
        e.did = kDid;
        e.flptptr = pt->root;
        e.pgsnp = pgsnp;
        h.tables->set_pasid_entry(ce, kPasid, e);
        h.m().write_u64(kPa, 0x5151);
        h.m().write_u64(kPa + 0x1000, 0x6262);
    }
    uint64_t read(uint64_t va, tlm::tlm_response_status* st = nullptr) {
        uint64_t v = 0;
        sc_time d = SC_ZERO_TIME;
        auto s = ep.dma(va, &v, 8, false, kPasid, d);
        if (st) *st = s;
        sc_core::wait(d);
        return v;
    }
};
} // namespace

TEST_CASE("ATS endpoint caches a translation completion and sends translated requests on a hit", "[sc][pcie][ats]") {
    Rig r;
    Harness::run([&] {
        r.setup();
        CHECK(r.read(kVa) == 0x5151);
        CHECK(r.h.value("ep.atc.misses") == 1);
        CHECK(r.h.value("ep.translation_requests") == 1);
        CHECK(r.h.value("dmar0.translation_requests") == 1);
        CHECK(r.ep.atc_holds(kVa, kPasid));
        CHECK_FALSE(r.ep.atc_holds(kVa, kPasid + 1)); // tagged by PASID
        CHECK(r.read(kVa + 8) == 0);
        CHECK(r.h.value("ep.atc.hits") == 1);
        CHECK(r.h.value("dmar0.translated_requests") == 2);
        CHECK(r.h.value("dmar0.translation_requests") == 1); // the hit needed no translation
    });
}

TEST_CASE("ATS translation and invalidation round trip through VT-d drops exactly the invalidated range",
          "[sc][pcie][ats]") {
    Rig r;
    Harness::run([&] {
        r.setup();
        CHECK(r.read(kVa) == 0x5151);
        CHECK(r.read(kVa + 0x1000) == 0x6262);
        REQUIRE(r.ep.atc_holds(kVa, kPasid));
        // Another PASID's invalidation of the page is out of scope: nothing dropped (the
        // endpoint drops a short range by its keys, without a scan: the same entries).
        const uint64_t other = r.h.submit_and_wait_addr({encode_pasid_dev_tlb(kEp.raw, kPasid + 1, kVa, 0)}, 20);
        REQUIRE(r.h.poll(other, 20));
        CHECK(r.ep.atc_size() == 2);
        // Strict unmap as Linux does it: clear the PTE, flush the IOTLB for (DID, PASID, page),
        // then the device TLB, then wait.
        r.pt->unmap(kVa);
        const sc_time t0 = sc_core::sc_time_stamp();
        const uint64_t st = r.h.submit_and_wait_addr(
            {encode_pasid_iotlb_page(kDid, kPasid, kVa, 0, false), encode_pasid_dev_tlb(kEp.raw, kPasid, kVa, 0)}, 21);
        REQUIRE(r.h.poll(st, 21));
        const double ns = (sc_core::sc_time_stamp() - t0).to_seconds() * 1e9;
        // The wait could only finish after the device processed the request (500 ns default).
        CHECK(ns > r.ep.params().invalidation_processing.as_ns());
        CHECK(r.ep.invalidations_completed() == 2); // both requests completed
        CHECK_FALSE(r.ep.atc_holds(kVa, kPasid));
        CHECK(r.ep.atc_holds(kVa + 0x1000, kPasid)); // the neighbour page stays cached
        CHECK(r.h.value("ep.atc.invalidated") == 1);
        CHECK(r.h.value("ep.atc_entries_invalidated") == 1);
        tlm::tlm_response_status s;
        r.read(kVa, &s);
        CHECK(s == tlm::TLM_ADDRESS_ERROR_RESPONSE); // re-translation finds no mapping: R=W=0
        CHECK(r.h.value("ep.translation_no_access") == 1);
        CHECK(r.h.value("dmar0.devtlb_latency") == 2);
    });
}

TEST_CASE("ATS endpoint does not keep a translation that was in flight when an overlapping invalidation ran",
          "[sc][pcie][ats]") {
    Rig r;
    Harness::run([&] {
        r.setup();
        // The DMA thread runs 20 us ahead in local time (temporal decoupling): its translation
        // completion and translated read are still in flight while the invalidation arrives.
        uint64_t v = 0;
        sc_time ahead = sc_time(20, SC_US);
        r.ep.dma(kVa, &v, 8, false, kPasid, ahead);
        CHECK(v == 0x5151);
        const uint64_t st = r.h.submit_and_wait_addr({encode_pasid_dev_tlb(kEp.raw, kPasid, kVa, 0)}, 22);
        REQUIRE(r.h.poll(st, 22));
        CHECK_FALSE(r.ep.atc_holds(kVa, kPasid));
        CHECK(r.h.value("ep.stale_translations_dropped") == 1);
        // The completion waited for the translated read already issued (done at ~20 us).
        CHECK(sc_core::sc_time_stamp() >= sc_time(20, SC_US));
    });
}

TEST_CASE("an Invalidate Completion waits only for the requests that used a dropped translation",
          "[sc][pcie][ats]") {
    Rig r;
    Harness::run([&] {
        r.setup();
        CHECK(r.read(kVa) == 0x5151);
        CHECK(r.read(kVa + 0x1000) == 0x6262);
        // A translated read of the neighbour page runs 20 us ahead (temporal decoupling):
        // invalidating kVa does not wait for it, the translation it used stays.
        uint64_t v = 0;
        sc_time ahead = sc_time(20, SC_US);
        r.ep.dma(kVa + 0x1000, &v, 8, false, kPasid, ahead);
        const sc_time t0 = sc_core::sc_time_stamp();
        uint64_t st = r.h.submit_and_wait_addr({encode_pasid_dev_tlb(kEp.raw, kPasid, kVa, 0)}, 23);
        REQUIRE(r.h.poll(st, 23));
        CHECK(sc_core::sc_time_stamp() - t0 < sc_time(10, SC_US));
        CHECK(r.h.value("ep.invalidation_drains") == 0);
        CHECK(r.ep.atc_holds(kVa + 0x1000, kPasid));
        // Invalidating the page that read used waits until it completed.
        st = r.h.submit_and_wait_addr({encode_pasid_dev_tlb(kEp.raw, kPasid, kVa + 0x1000, 0)}, 24);
        REQUIRE(r.h.poll(st, 24));
        CHECK(sc_core::sc_time_stamp() >= t0 + sc_time(20, SC_US));
        CHECK(r.h.value("ep.invalidation_drains") == 1);
        CHECK_FALSE(r.ep.atc_holds(kVa + 0x1000, kPasid));
    });
}

TEST_CASE("ATS endpoint with PRI requests a page on a no-access completion and retries after Success",
          "[sc][pcie][ats]") {
    pcie::AtsEndpointParams p = Rig::make_params();
    p.pri_enabled = true;
    Rig r(p);
    Harness::run([&] {
        r.setup();
        constexpr uint64_t kLazy = 0x20000000;
        // The "host" services the page request: map the page, consume the PRQ entry, respond.
        sc_core::sc_spawn([&] {
            while (r.h.m().read_u64(r.h.prq_base) == 0) sc_core::wait(sc_time(100, SC_NS));
            const uint64_t q1 = r.h.m().read_u64(r.h.prq_base + 8);
            r.pt->map(q1 & ~uint64_t{0xFFF}, kPa + 0x2000);
            r.h.m().write_u64(kPa + 0x2000, 0x7373);
            r.h.wr(reg::PQH, 32);
            const uint16_t prgi = static_cast<uint16_t>((q1 >> 3) & 0x1FF);
            const uint64_t st = r.h.submit_and_wait_addr(
                {encode_page_group_response(kEp.raw, true, kPasid, prgi, pcie::PrgResponseCode::success)}, 23);
            r.h.poll(st, 23);
        });
        CHECK(r.read(kLazy) == 0x7373);
        CHECK(r.h.value("ep.page_requests") == 1);
        CHECK(r.h.value("dmar0.page_requests") == 1);
        CHECK(r.h.value("dmar0.prg_responses") == 1);
        CHECK(r.ep.atc_holds(kLazy, kPasid));
    });
}

namespace {
/// Two writes asking for No Snoop (a miss, then an ATC hit) through a PASID entry with or without PGSNP.
void no_snoop_writes(bool pgsnp) {
    Rig r;
    Harness::run([&] {
        r.setup(pgsnp); // PGSNP: the context forces snooping, so its completions carry N
        uint64_t v = 0x77;
        for (uint64_t i = 0; i < 2; ++i) {
            sc_time d = SC_ZERO_TIME;
            CHECK(r.ep.dma(kVa + 8 * i, &v, 8, true, kPasid, d, false, true) == tlm::TLM_OK_RESPONSE);
            sc_core::wait(d);
        }
        CHECK(r.h.value("ep.translated_requests") == 2);
        CHECK(r.h.value("ep.no_snoop_cleared") == (pgsnp ? 2 : 0));
        CHECK(r.h.value("dmar0.no_snoop_to_memory") == (pgsnp ? 0 : 2));
    });
}
} // namespace

TEST_CASE("a translated request asked with No Snoop goes out snooped when its translation completion had N set",
          "[sc][pcie][ats][coherency]") {
    no_snoop_writes(true);
}

TEST_CASE("a translated request keeps No Snoop when its translation completion had N clear", "[sc][pcie][ats][coherency]") {
    no_snoop_writes(false);
}

namespace {
/// Three ATC misses of pages 1..3 issued at the same local time, their translations IOTLB
/// hits in the IOMMU (warmed, then only the device TLB invalidated). Returns when each
/// completed (local offsets) and, in `tr`, the round trip of one such Translation Request
/// (one miss alone minus one hit).
std::array<sc_time, 3> concurrent_misses(Rig& r, sc_time& tr) {
    r.setup();
    for (uint64_t i = 2; i < 5; ++i) r.pt->map(kVa + i * 0x1000, kPa + i * 0x1000);
    auto drop_atc = [&](uint16_t wait_tag) {
        const uint64_t st = r.h.submit_and_wait_addr({encode_pasid_dev_tlb(kEp.raw, kPasid, kVa, 3)}, wait_tag);
        REQUIRE(r.h.poll(st, wait_tag));
    };
    for (uint64_t i = 0; i < 5; ++i) r.read(kVa + i * 0x1000); // IOTLB and ATC warm
    drop_atc(31);
    uint64_t v = 0;
    sc_time single = SC_ZERO_TIME, hit = SC_ZERO_TIME;
    r.ep.dma(kVa + 4 * 0x1000, &v, 8, false, kPasid, single);
    sc_core::wait(single);
    r.ep.dma(kVa + 4 * 0x1000, &v, 8, false, kPasid, hit);
    sc_core::wait(hit);
    tr = single - hit;
    REQUIRE(tr > SC_ZERO_TIME);
    std::array<sc_time, 3> d = {SC_ZERO_TIME, SC_ZERO_TIME, SC_ZERO_TIME};
    for (int i = 0; i < 3; ++i) r.ep.dma(kVa + (i + 1) * 0x1000, &v, 8, false, kPasid, d[i]);
    sc_core::wait(d[2]);
    return d;
}
} // namespace

TEST_CASE("an ATS endpoint with W outstanding translation requests makes the next miss wait for the oldest",
          "[sc][pcie][ats][tags]") {
    pcie::AtsEndpointParams p = Rig::make_params();
    p.max_translation_requests = 1;
    Rig r(p);
    Harness::run([&] {
        sc_time tr;
        const auto d = concurrent_misses(r, tr);
        INFO("round trip " << tr << "; three misses at once done at " << d[0] << " " << d[1] << " " << d[2]);
        // One Translation Request in flight: each miss waits for the previous one's
        // completion, so the three finish one round trip apart.
        CHECK(r.h.value("ep.translation_request_stalls") == 2);
        CHECK(d[1] - d[0] == tr);
        CHECK(d[2] - d[1] == tr);
    });
}

TEST_CASE("an ATS endpoint with many outstanding translation requests overlaps concurrent misses",
          "[sc][pcie][ats][tags]") {
    Rig r; // default: 16 in flight
    Harness::run([&] {
        sc_time tr;
        const auto d = concurrent_misses(r, tr);
        INFO("round trip " << tr << "; three misses at once done at " << d[0] << " " << d[1] << " " << d[2]);
        CHECK(r.h.value("ep.translation_request_stalls") == 0);
        CHECK(d[2] - d[0] < tr); // the three round trips overlap
    });
}

TEST_CASE("Invalidate Requests are processed one after another, each from its arrival or the end of the one before",
          "[sc][pcie][ats]") {
    Harness::run([] {
        pcie::InvalidationQueue q(Duration::ns(100));
        const pcie::AtsInvalidateRequest r{};
        const sc_time t0 = sc_core::sc_time_stamp();
        q.push(r, 1, sc_time(10, SC_NS)); // arrives at 10 ns
        q.push(r, 2, sc_time(20, SC_NS)); // arrives at 20 ns, behind the first
        CHECK(q.next().function == 1);
        CHECK(sc_core::sc_time_stamp() - t0 == sc_time(110, SC_NS));
        CHECK(q.next().function == 2); // from the end of the first, not its own arrival
        CHECK(sc_core::sc_time_stamp() - t0 == sc_time(210, SC_NS));
        // Idle: a request pushed later by another process is done at its arrival + processing.
        sc_core::sc_spawn([&] {
            sc_core::wait(sc_time(1000, SC_NS));
            q.push(r, 3, sc_time(5, SC_NS));
        });
        const pcie::InvalidationQueue::Item it = q.next();
        CHECK(it.function == 3);
        CHECK(sc_core::sc_time_stamp() - t0 == sc_time(1315, SC_NS)); // 210 + 1000 + 5 + 100
        CHECK(it.arrival == Duration::ps((sc_core::sc_time_stamp() - t0).value()) - Duration::ns(100) +
                                Duration::ps(t0.value()));
    });
}
