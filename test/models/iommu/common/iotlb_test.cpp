// SPDX-License-Identifier: Apache-2.0
// IOTLB keys, mixed page sizes, global entries and every invalidation scope.
#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <set>

#include "models/iommu/common/iotlb.hpp"

using namespace iommusim;
using namespace iommusim::iommu;
using K = InvalidationScope::Kind;
using St = InvalidationScope::Stage;

namespace {

IotlbEntry out(uint64_t pa, uint64_t ipa = 0) {
    IotlbEntry e;
    e.output = pa;
    e.ipa = ipa;
    return e;
}

struct Fix {
    stats::Group root{"t"};
    Iotlb tlb{"iotlb", CacheGeometry{256, 8, Replacement::lru, 1}, &root};
    bool has(uint32_t d, uint32_t as, uint64_t va, TranslationKind k = TranslationKind::s1) {
        return tlb.lookup(d, as, va, k).hit;
    }
};

InvalidationScope scope(K kind, uint32_t d = 0, uint32_t as = 0) {
    InvalidationScope s;
    s.kind = kind;
    s.domain_tag = d;
    s.as_tag = as;
    s.has_as = kind == K::domain_as || kind == K::as_only;
    return s;
}

} // namespace

TEST_CASE("IOTLB holds mixed page sizes in one structure and finds each by its size", "[unit]") {
    Fix f;
    f.tlb.insert(1, 2, 0x1000, TranslationKind::s1, 12, false, out(0xA000));
    f.tlb.insert(1, 2, 0x20'0000, TranslationKind::s1, 21, false, out(0x40'0000));
    f.tlb.insert(1, 2, 0x4000'0000, TranslationKind::s1, 30, false, out(0x8000'0000));
    auto a = f.tlb.lookup(1, 2, 0x1fff, TranslationKind::s1);
    REQUIRE(a.hit);
    CHECK(a.page_shift == 12);
    CHECK(a.entry.output == 0xA000);
    auto b = f.tlb.lookup(1, 2, 0x3F'FFFF, TranslationKind::s1);
    REQUIRE(b.hit);
    CHECK(b.page_shift == 21);
    auto c = f.tlb.lookup(1, 2, 0x7FFF'FFFF, TranslationKind::s1);
    REQUIRE(c.hit);
    CHECK(c.page_shift == 30);
    CHECK_FALSE(f.has(1, 2, 0x2000));
    CHECK_FALSE(f.has(1, 3, 0x1000));                          // other PASID
    CHECK_FALSE(f.has(2, 2, 0x1000));                          // other domain
    CHECK_FALSE(f.has(1, 2, 0x1000, TranslationKind::nested)); // other kind
}

TEST_CASE("IOTLB global entries match every address space of their domain only", "[unit]") {
    Fix f;
    f.tlb.insert(1, 2, 0x1000, TranslationKind::s1, 12, true, out(0xA000));
    auto h = f.tlb.lookup(1, 99, 0x1000, TranslationKind::s1);
    REQUIRE(h.hit);
    CHECK(h.global);
    CHECK_FALSE(f.has(2, 2, 0x1000));
}

TEST_CASE("invalidate all empties the IOTLB", "[unit]") {
    Fix f;
    for (uint32_t d = 0; d < 4; ++d) f.tlb.insert(d, d, 0x1000 * d, TranslationKind::s1, 12, d == 3, out(0));
    CHECK(f.tlb.invalidate(scope(K::all)) == 4);
    CHECK(f.tlb.size() == 0);
}

TEST_CASE("domain-selective invalidation keeps other domains' entries", "[unit]") {
    Fix f;
    f.tlb.insert(1, 1, 0x1000, TranslationKind::s1, 12, false, out(0));
    f.tlb.insert(1, 2, 0x1000, TranslationKind::s1, 12, true, out(0));
    f.tlb.insert(2, 1, 0x1000, TranslationKind::s1, 12, false, out(0));
    CHECK(f.tlb.invalidate(scope(K::domain, 1)) == 2);
    CHECK(f.has(2, 1, 0x1000));
    CHECK_FALSE(f.has(1, 1, 0x1000));
}

TEST_CASE("PASID-scoped invalidation keeps other PASIDs' entries and global entries", "[unit]") {
    Fix f;
    f.tlb.insert(1, 5, 0x1000, TranslationKind::s1, 12, false, out(0));
    f.tlb.insert(1, 5, 0x20'0000, TranslationKind::s1, 21, false, out(0));
    f.tlb.insert(1, 6, 0x1000, TranslationKind::s1, 12, false, out(0));
    f.tlb.insert(1, 5, 0x9000, TranslationKind::s1, 12, true, out(0));
    f.tlb.insert(2, 5, 0x1000, TranslationKind::s1, 12, false, out(0));
    CHECK(f.tlb.invalidate(scope(K::domain_as, 1, 5)) == 2);
    CHECK(f.has(1, 6, 0x1000));
    CHECK(f.has(1, 5, 0x9000)); // global: kept (non-globals within PASID)
    CHECK(f.has(2, 5, 0x1000)); // same PASID in another domain: kept
    CHECK_FALSE(f.has(1, 5, 0x1000));
    CHECK_FALSE(f.has(1, 5, 0x20'0000));
}

TEST_CASE("ASID-only invalidation drops that ASID in every domain", "[unit]") {
    Fix f;
    f.tlb.insert(1, 5, 0x1000, TranslationKind::s1, 12, false, out(0));
    f.tlb.insert(2, 5, 0x1000, TranslationKind::s1, 12, false, out(0));
    f.tlb.insert(2, 6, 0x1000, TranslationKind::s1, 12, false, out(0));
    CHECK(f.tlb.invalidate(scope(K::as_only, 0, 5)) == 2);
    CHECK(f.has(2, 6, 0x1000));
}

TEST_CASE("address-range invalidation drops overlapping entries of any size, honouring the global flag", "[unit]") {
    Fix f;
    f.tlb.insert(1, 5, 0x1000, TranslationKind::s1, 12, false, out(0));
    f.tlb.insert(1, 5, 0x2000, TranslationKind::s1, 12, false, out(0));
    f.tlb.insert(1, 5, 0x20'0000, TranslationKind::s1, 21, false, out(0)); // 2 MiB covering 0x200000..0x3FFFFF
    f.tlb.insert(1, 6, 0x1000, TranslationKind::s1, 12, false, out(0));
    f.tlb.insert(1, 5, 0x3000, TranslationKind::s1, 12, true, out(0));
    InvalidationScope s = scope(K::range, 1, 5);
    s.has_as = true;
    s.addr = 0x1000;
    s.size = 0x1000;
    CHECK(f.tlb.invalidate(s) == 1);
    CHECK(f.has(1, 5, 0x2000));
    CHECK(f.has(1, 6, 0x1000));
    s.addr = 0x3F'F000; // the last 4 KiB of the 2 MiB page
    CHECK(f.tlb.invalidate(s) == 1);
    CHECK_FALSE(f.has(1, 5, 0x20'0000));
    s.addr = 0x3000;
    s.include_global = false;
    CHECK(f.tlb.invalidate(s) == 0);
    CHECK(f.has(1, 5, 0x3000));
    s.include_global = true;
    CHECK(f.tlb.invalidate(s) == 1);
    // Without an address-space tag the range covers every PASID of the domain.
    InvalidationScope all_as = scope(K::range, 1);
    all_as.addr = 0;
    all_as.size = 0x10'0000;
    CHECK(f.tlb.invalidate(all_as) == 2);
    CHECK(f.tlb.size() == 0);
}

TEST_CASE("stage-filtered scopes: a stage-1 scope keeps stage-2 entries, a stage-2 range finds nested entries by IPA",
          "[unit]") {
    Fix f;
    f.tlb.insert(1, 5, 0x1000, TranslationKind::s1, 12, false, out(0xA000));
    f.tlb.insert(1, 0, 0x1000, TranslationKind::s2, 12, false, out(0xB000));
    f.tlb.insert(1, 5, 0x7000, TranslationKind::nested, 12, false, out(0xC000, 0x4000'0000));
    InvalidationScope s1 = scope(K::domain, 1);
    s1.stage = St::s1;
    CHECK(f.tlb.invalidate(s1) == 2); // s1 and nested
    CHECK(f.has(1, 0, 0x1000, TranslationKind::s2));
    f.tlb.insert(1, 5, 0x7000, TranslationKind::nested, 12, false, out(0xC000, 0x4000'0000));
    InvalidationScope s2 = scope(K::range, 1);
    s2.stage = St::s2;
    s2.addr = 0x4000'0000; // IPA of the nested entry
    s2.size = 0x1000;
    CHECK(f.tlb.invalidate(s2) == 1);
    CHECK_FALSE(f.has(1, 5, 0x7000, TranslationKind::nested));
    CHECK(f.has(1, 0, 0x1000, TranslationKind::s2));
}

TEST_CASE("IOTLB lookup statistics count one lookup per request whatever the page sizes probed", "[unit]") {
    Fix f;
    f.tlb.insert(1, 1, 0x20'0000, TranslationKind::s1, 21, false, out(0));
    f.tlb.insert(1, 1, 0x1000, TranslationKind::s1, 12, false, out(0));
    f.tlb.lookup(1, 1, 0x20'1000, TranslationKind::s1); // probes 4 KiB then 2 MiB
    f.tlb.lookup(1, 1, 0x9000, TranslationKind::s1);
    CHECK(stats::numeric_value(*f.root.find("iotlb.lookups")) == 2);
    CHECK(stats::numeric_value(*f.root.find("iotlb.hits")) == 1);
}

namespace {
/// Random populations, one range invalidation each, checked against scope_matches: the
/// IOTLB probes keys for small ranges instead of scanning, and must drop exactly the same.
/// `s2_host`: stage-2 ranges without address space (AMD-Vi GN = 0) over populations of mostly
/// stage-2 entries of address space 0, sometimes with nested / other-space entries (scan path).
std::set<std::pair<uint64_t, uint64_t>> keys_of(const Iotlb& tlb) {
    std::set<std::pair<uint64_t, uint64_t>> v;
    tlb.cache().for_each([&](const CacheKey& k, const Iotlb::Packed&) { v.insert({k.a, k.b}); });
    return v;
}
struct Ins {
    uint32_t d, as;
    uint64_t va;
    TranslationKind k;
    unsigned sh;
    bool g;
    uint64_t ipa;
};
void check_random_ranges(bool s2_host) {
    std::mt19937_64 rng(s2_host ? 17 : 9);
    for (int round = 0; round < 200; ++round) {
        stats::Group root("t");
        Iotlb tlb("iotlb", CacheGeometry{512, 8, Replacement::lru, 1}, &root);
        std::vector<Ins> ins;
        const unsigned shifts[] = {12, 13, 16, 21};
        const TranslationKind kinds[] = {TranslationKind::s1, TranslationKind::s2, TranslationKind::nested};
        const bool irregular = s2_host && round % 4 == 0;
        for (int i = 0; i < 60; ++i) {
            Ins x{static_cast<uint32_t>(rng() % 2), static_cast<uint32_t>(rng() % 3), (rng() % 64) << 12,
                  kinds[rng() % 3], shifts[rng() % 4], rng() % 5 == 0, (rng() % 64) << 12};
            if (s2_host && !(irregular && i % 10 == 0)) {
                x.k = rng() % 4 ? TranslationKind::s2 : TranslationKind::s1;
                if (x.k == TranslationKind::s2) x.as = 0;
            }
            x.va &= ~((uint64_t{1} << x.sh) - 1);
            x.ipa &= ~((uint64_t{1} << x.sh) - 1);
            tlb.insert(x.d, x.as, x.va, x.k, x.sh, x.g, out(0x1000, x.ipa));
            ins.push_back(x);
        }
        auto keys = [&] {
            std::set<std::pair<uint64_t, uint64_t>> v;
            tlb.cache().for_each([&](const CacheKey& k, const Iotlb::Packed&) { v.insert({k.a, k.b}); });
            return v;
        };
        const auto before = keys();
        InvalidationScope s = scope(K::range, static_cast<uint32_t>(rng() % 2), static_cast<uint32_t>(rng() % 3));
        s.has_as = !s2_host;
        s.addr = (rng() % 64) << 12;
        s.size = ((rng() % 4) + 1) << 12;
        s.include_global = rng() % 2;
        s.stage = s2_host ? St::s2 : rng() % 2 ? St::both : St::s1;
        std::set<std::pair<uint64_t, uint64_t>> expect;
        for (auto& x : ins) {
            CacheKey k = Iotlb::make_key(x.d, x.as, x.va, x.k, x.sh, x.g);
            if (before.count({k.a, k.b}) && !scope_matches(s, x.d, x.g ? 0 : x.as, x.g, x.k, x.va, x.sh, x.ipa))
                expect.insert({k.a, k.b});
        }
        tlb.invalidate(s);
        INFO("round " << round);
        CHECK(keys() == expect);
    }
}
} // namespace

TEST_CASE("small address-space range invalidations remove exactly what the scope matches", "[unit]") {
    check_random_ranges(false);
}

TEST_CASE("small stage-2 range invalidations without address space remove exactly what the scope matches",
          "[unit]") {
    check_random_ranges(true);
}

TEST_CASE("one IOVA in many domains spreads over the IOTLB's sets", "[unit][index]") {
    // 32 domains map the same IOVA (every Linux DMA domain allocates top-down
    // from the same IOVAs). In 32 sets of 4 ways they must not share one set:
    // the domain tag has to reach the set index.
    stats::Group root("t");
    Iotlb tlb("iotlb", CacheGeometry{128, 4, Replacement::lru, 1}, &root);
    constexpr uint32_t kDomains = 32;
    for (uint32_t d = 1; d <= kDomains; ++d) tlb.insert(d, 0, 0xFFFF'F000, TranslationKind::s2, 12, false, out(d << 12));
    uint32_t held = 0;
    for (uint32_t d = 1; d <= kDomains; ++d) held += tlb.lookup(d, 0, 0xFFFF'F000, TranslationKind::s2).hit ? 1 : 0;
    CHECK(held >= kDomains - 4); // one set would keep 4; a uniform spread loses a few to collisions
    // The same holds for address-space tags (PASID/ASID) within one domain.
    Iotlb tlb2("iotlb2", CacheGeometry{128, 4, Replacement::lru, 1}, &root);
    for (uint32_t as = 1; as <= kDomains; ++as) tlb2.insert(7, as, 0x1000, TranslationKind::s1, 12, false, out(as << 12));
    held = 0;
    for (uint32_t as = 1; as <= kDomains; ++as) held += tlb2.lookup(7, as, 0x1000, TranslationKind::s1).hit ? 1 : 0;
    CHECK(held >= kDomains - 4);
}

TEST_CASE("a larger IOTLB has fewer misses for a multi-domain workload", "[unit][index]") {
    // 40 domains cycle over the same 8 IOVAs (320 translations): a 64-entry
    // IOTLB thrashes, a 2048-entry one (same associativity) holds them all.
    auto misses = [](uint32_t entries) {
        stats::Group root("t");
        Iotlb tlb("iotlb", CacheGeometry{entries, 4, Replacement::lru, 1}, &root);
        uint64_t miss = 0;
        for (int round = 0; round < 10; ++round)
            for (uint32_t d = 1; d <= 40; ++d)
                for (uint64_t p = 0; p < 8; ++p) {
                    const uint64_t va = 0xFFFF'0000 + (p << 12);
                    if (!tlb.lookup(d, 0, va, TranslationKind::s2).hit) {
                        ++miss;
                        tlb.insert(d, 0, va, TranslationKind::s2, 12, false, out(va));
                    }
                }
        return miss;
    };
    const uint64_t small = misses(64), large = misses(2048);
    CHECK(small >= 3000);       // nearly every access of 3200 misses
    CHECK(large <= 320 + 40);   // compulsory misses, at most a few conflicts
}

TEST_CASE("range invalidations probe only the kinds the scope's domain holds and still remove exactly what the scope "
          "matches",
          "[unit]") {
    // One IOTLB per round through fills (with evictions: 64 entries), invalidations and
    // refills, holding one or two translation kinds at a time, so the per-kind counts
    // that let the probe skip absent kinds go up and down; checked after every step.
    // Domains 1 and 33 share a count bucket (the counts are kept per domain modulo 32).
    std::mt19937_64 rng(23);
    const uint32_t domains[] = {0, 1, 33};
    const TranslationKind kinds[] = {TranslationKind::s1, TranslationKind::s2, TranslationKind::nested};
    const unsigned shifts[] = {12, 21};
    for (int round = 0; round < 60; ++round) {
        stats::Group root("t");
        Iotlb tlb("iotlb", CacheGeometry{64, 4, Replacement::lru, 1}, &root);
        std::vector<Ins> ins;
        auto keys = [&] { return keys_of(tlb); };
        for (int step = 0; step < 8; ++step) {
            const TranslationKind ka = kinds[rng() % 3], kb = rng() % 2 ? ka : kinds[rng() % 3];
            for (int i = 0; i < 40; ++i) {
                Ins x{domains[rng() % 3], static_cast<uint32_t>(rng() % 3), (rng() % 32) << 12,
                      i % 2 ? ka : kb, shifts[rng() % 2], rng() % 6 == 0, (rng() % 32) << 12};
                x.va &= ~((uint64_t{1} << x.sh) - 1);
                x.ipa &= ~((uint64_t{1} << x.sh) - 1);
                tlb.insert(x.d, x.as, x.va, x.k, x.sh, x.g, out(0x1000, x.ipa));
                ins.push_back(x);
            }
            for (int inv = 0; inv < 3; ++inv) {
                const auto before = keys();
                InvalidationScope s = scope(K::range, domains[rng() % 3], static_cast<uint32_t>(rng() % 3));
                s.has_as = rng() % 4 != 0;
                s.addr = (rng() % 32) << 12;
                s.size = ((rng() % 3) + 1) << 12;
                s.include_global = rng() % 2;
                s.stage = s.has_as ? (rng() % 2 ? St::both : St::s1) : St::s2;
                // The latest insert of each key is what the IOTLB holds (a refill overwrites the IPA).
                std::map<std::pair<uint64_t, uint64_t>, const Ins*> latest;
                for (auto& x : ins) {
                    CacheKey k = Iotlb::make_key(x.d, x.as, x.va, x.k, x.sh, x.g);
                    latest[{k.a, k.b}] = &x;
                }
                std::set<std::pair<uint64_t, uint64_t>> expect;
                for (auto& [key, x] : latest)
                    if (before.count(key) && !scope_matches(s, x->d, x->g ? 0 : x->as, x->g, x->k, x->va, x->sh, x->ipa))
                        expect.insert(key);
                const uint64_t removed = tlb.invalidate(s);
                INFO("round " << round << " step " << step << " inv " << inv);
                CHECK(keys() == expect);
                CHECK(removed == before.size() - expect.size());
            }
        }
    }
}
