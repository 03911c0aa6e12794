// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <vector>

#include "models/host/dma_oracle.hpp"

using namespace iommusim;
using namespace iommusim::host;
using V = DmaOracle::Verdict;
using S = DmaOracle::Source;

TEST_CASE("the oracle classifies DMAs as correct, stale in the window, or violations", "[unit][host][oracle]") {
    stats::Group root("root");
    DmaOracle o(&root);
    const pcie::Bdf dev(1, 0, 0);
    o.bind(dev, 5, 7, Duration::ns(0));
    o.map(7, 0x10000, 0xA000000, 0x2000, Duration::ns(100));
    CHECK(o.check(dev, 5, 0x10010, 0xA000010, Duration::ns(150), S::iotlb) == V::correct);
    CHECK(o.check(dev, 5, 0x11000, 0xA001000, Duration::ns(150), S::atc) == V::correct);
    o.unmap(7, 0x10000, 0x2000, Duration::ns(200));
    // Between unmap and invalidation completion: inside the window.
    CHECK(o.check(dev, 5, 0x10000, 0xA000000, Duration::ns(250), S::atc) == V::stale_in_window);
    o.invalidation_complete(7, 0x10000, 0x1000, Duration::ns(300), Duration::ns(250));
    // Uses before completion (by local time) are still in the window, even if checked later.
    CHECK(o.check(dev, 5, 0x10000, 0xA000000, Duration::ns(299), S::atc) == V::stale_in_window);
    CHECK(o.check(dev, 5, 0x10000, 0xA000000, Duration::ns(301), S::atc) == V::violation);
    // The second page's invalidation has not completed.
    CHECK(o.check(dev, 5, 0x11000, 0xA001000, Duration::ns(400), S::iotlb) == V::stale_in_window);
    REQUIRE(o.violations().size() == 1);
    CHECK(o.violations()[0].served_by == S::atc);
    CHECK(o.violations()[0].iova == 0x10000);
    CHECK(stats::numeric_value(*root.find("oracle.violations")) == 1);
    CHECK(stats::numeric_value(*root.find("oracle.stale_in_window")) == 3);
}

TEST_CASE("the oracle accepts a remapped IOVA and flags a wrong physical address", "[unit][host][oracle]") {
    stats::Group root("root");
    DmaOracle o(&root);
    const pcie::Bdf dev(2, 0, 0);
    o.bind(dev, std::nullopt, 1, Duration::ns(0));
    o.map(1, 0x5000, 0x100000, 0x1000, Duration::ns(0));
    o.unmap(1, 0x5000, 0x1000, Duration::ns(10));
    o.invalidation_complete_all(1, Duration::ns(20), Duration::ns(15));
    o.map(1, 0x5000, 0x200000, 0x1000, Duration::ns(30));
    CHECK(o.check(dev, std::nullopt, 0x5000, 0x200000, Duration::ns(40), S::walk) == V::correct);
    CHECK(o.check(dev, std::nullopt, 0x5000, 0x100000, Duration::ns(40), S::iotlb) == V::violation);
    CHECK(o.check(dev, std::nullopt, 0x5000, 0x300000, Duration::ns(40), S::iotlb) == V::violation);
    CHECK(o.check(dev, 3, 0x5000, 0x200000, Duration::ns(40), S::iotlb) == V::violation); // unbound PASID
    CHECK(o.violation_count() == 3);
}

namespace {
/// An oracle with device 02:00.0 bound (requests without PASID) to space 1 from time 0.
struct BoundOracle {
    stats::Group root{"root"};
    DmaOracle o{&root};
    const pcie::Bdf dev{2, 0, 0};
    BoundOracle() { o.bind(dev, std::nullopt, 1, Duration::ns(0)); }
};
} // namespace

TEST_CASE("an IOVA mapped again before its invalidation completed makes later uses of the old translation violations",
          "[unit][host][oracle]") {
    BoundOracle b;
    DmaOracle& o = b.o;
    const pcie::Bdf dev = b.dev;
    o.map(1, 0x5000, 0x100000, 0x1000, Duration::ns(0));
    o.unmap(1, 0x5000, 0x1000, Duration::ns(10));
    // The driver hands the IOVA out again while the unmap's flush is still pending.
    o.map(1, 0x5000, 0x200000, 0x1000, Duration::ns(30));
    CHECK(o.check(dev, std::nullopt, 0x5000, 0x100000, Duration::ns(20), S::iotlb) == V::stale_in_window);
    CHECK(o.check(dev, std::nullopt, 0x5000, 0x200000, Duration::ns(40), S::walk) == V::correct);
    // The device used the old page for the new buffer: flagged although the flush has not completed yet.
    CHECK(o.check(dev, std::nullopt, 0x5000, 0x100000, Duration::ns(40), S::iotlb) == V::violation);
    REQUIRE(o.violations().size() == 1);
    CHECK(o.violations()[0].reason == std::string("translation used after its IOVA was mapped again before its invalidation completed"));
    // A correct driver's remap (after the flush completed) keeps the old rule: in the window before, violation after.
    o.unmap(1, 0x5000, 0x1000, Duration::ns(50));
    o.invalidation_complete_all(1, Duration::ns(70), Duration::ns(60));
    o.map(1, 0x5000, 0x300000, 0x1000, Duration::ns(80));
    CHECK(o.check(dev, std::nullopt, 0x5000, 0x200000, Duration::ns(65), S::iotlb) == V::stale_in_window);
    CHECK(o.check(dev, std::nullopt, 0x5000, 0x200000, Duration::ns(90), S::iotlb) == V::violation);
    CHECK(o.violations().back().reason == std::string("translation used after its invalidation completed"));
}

TEST_CASE("a flush covers only the unmaps made before it was submitted", "[unit][host][oracle]") {
    stats::Group root("root");
    DmaOracle o(&root);
    const pcie::Bdf dev(3, 0, 0);
    o.bind(dev, std::nullopt, 2, Duration::ns(0));
    o.map(2, 0x1000, 0x10000, 0x2000, Duration::ns(0));
    o.unmap(2, 0x1000, 0x1000, Duration::ns(10));
    o.unmap(2, 0x2000, 0x1000, Duration::ns(30)); // after the flush below was submitted
    o.invalidation_complete_all(2, Duration::ns(50), Duration::ns(20));
    CHECK(o.check(dev, std::nullopt, 0x1000, 0x10000, Duration::ns(60), S::iotlb) == V::violation);
    CHECK(o.check(dev, std::nullopt, 0x2000, 0x11000, Duration::ns(60), S::iotlb) == V::stale_in_window);
    o.invalidation_complete_all(2, Duration::ns(80), Duration::ns(70));
    CHECK(o.check(dev, std::nullopt, 0x2000, 0x11000, Duration::ns(90), S::iotlb) == V::violation);
}

TEST_CASE("the oracle keeps address spaces apart whatever their ids and bounds each page's history", "[unit][host][oracle]") {
    stats::Group root("root");
    DmaOracle o(&root);
    const pcie::Bdf a(1, 0, 0), b(2, 0, 0);
    o.bind(a, std::nullopt, 5, Duration::ns(0));
    o.bind(b, std::nullopt, 5 + 4096, Duration::ns(0)); // aliased under a 12-bit space field
    o.map(5, 0x7000, 0x100000, 0x1000, Duration::ns(0));
    CHECK(o.check(b, std::nullopt, 0x7000, 0x100000, Duration::ns(1), S::walk) == V::violation);
    for (int i = 0; i < 100; ++i) { // remap churn on one page
        o.unmap(5, 0x7000, 0x1000, Duration::ns(10 + 10.0 * i));
        o.invalidation_complete_all(5, Duration::ns(12 + 10.0 * i), Duration::ns(11 + 10.0 * i));
        o.map(5, 0x7000, 0x200000 + 0x1000 * i, 0x1000, Duration::ns(15 + 10.0 * i));
    }
    CHECK(o.check(a, std::nullopt, 0x7000, 0x200000 + 0x1000 * 99, Duration::ns(2000), S::walk) == V::correct);
}

TEST_CASE("a DMA is judged against the binding valid at its own time, also when checked after a detach",
          "[unit][host][oracle]") {
    stats::Group root("root");
    DmaOracle o(&root);
    const pcie::Bdf dev(6, 0, 0);
    o.bind(dev, std::nullopt, 1, Duration::ns(0));
    o.map(1, 0x1000, 0x100000, 0x1000, Duration::ns(10));
    o.map(2, 0x1000, 0x200000, 0x1000, Duration::ns(10));
    // Detach submitted at 200 ns, its invalidation completed at 250 ns.
    o.unbind(dev, std::nullopt, Duration::ns(200), Duration::ns(250));
    // Checked after the detach, stamped before it: the binding of its time.
    CHECK(o.check(dev, std::nullopt, 0x1000, 0x100000, Duration::ns(150), S::iotlb) == V::correct);
    // While the detach is in flight the old context may still be cached.
    CHECK(o.check(dev, std::nullopt, 0x1000, 0x100000, Duration::ns(220), S::iotlb) == V::stale_in_window);
    // After it completed the device is bound to nothing.
    CHECK(o.check(dev, std::nullopt, 0x1000, 0x100000, Duration::ns(260), S::iotlb) == V::violation);
    // Re-attached to another space: each DMA against the space of its time.
    o.bind(dev, std::nullopt, 2, Duration::ns(400));
    CHECK(o.check(dev, std::nullopt, 0x1000, 0x200000, Duration::ns(450), S::walk) == V::correct);
    CHECK(o.check(dev, std::nullopt, 0x1000, 0x100000, Duration::ns(160), S::iotlb) == V::correct);
    CHECK(o.check(dev, std::nullopt, 0x1000, 0x100000, Duration::ns(450), S::iotlb) == V::violation);
    CHECK(o.check(dev, std::nullopt, 0x1000, 0x200000, Duration::ns(300), S::walk) == V::violation);
    REQUIRE(o.violations().size() == 3);
    CHECK(o.violations()[0].reason == "device/PASID not bound to any address space");
    CHECK(o.violations()[1].reason == "physical address does not match any mapping of this IOVA");
    CHECK(o.violations()[2].reason == "device/PASID not bound to any address space");
    // A detach whose invalidation failed never closes its window.
    const pcie::Bdf other(7, 0, 0);
    o.bind(other, 3, 1, Duration::ns(0));
    o.unbind(other, 3, Duration::ns(500), std::nullopt);
    CHECK(o.check(other, 3, 0x1000, 0x100000, Duration::ns(900), S::iotlb) == V::stale_in_window);
}

TEST_CASE("mapping 1 TiB in 1 GiB pages keeps a record per mapping, not per 4 KiB page", "[unit][host][oracle]") {
    stats::Group root("root");
    DmaOracle o(&root);
    const pcie::Bdf dev(1, 0, 0);
    o.bind(dev, 1, 9, Duration::ns(0));
    const uint64_t gib = uint64_t{1} << 30;
    for (uint64_t i = 0; i < 1024; ++i) o.map(9, i * gib, (uint64_t{1} << 40) + i * gib, gib, Duration::ns(1));
    CHECK(o.segments() == 1024);
    CHECK(o.check(dev, 1, 700 * gib + 0x123456, (uint64_t{1} << 40) + 700 * gib + 0x123456, Duration::ns(2), S::walk) ==
          V::correct);
    // Unmapping a 4 KiB page in the middle of one splits that mapping into three ranges.
    o.unmap(9, 5 * gib + 0x1000, 0x1000, Duration::ns(3));
    CHECK(o.segments() == 1026);
    CHECK(o.check(dev, 1, 5 * gib + 0x1000, (uint64_t{1} << 40) + 5 * gib + 0x1000, Duration::ns(4), S::iotlb) ==
          V::stale_in_window);
    CHECK(o.check(dev, 1, 5 * gib + 0x2000, (uint64_t{1} << 40) + 5 * gib + 0x2000, Duration::ns(4), S::iotlb) ==
          V::correct);
}

namespace {

/// The oracle's rules written page by page (one history per 4 KiB page):
/// the range-based oracle must give the same verdict and reason.
struct PageOracle {
    struct M {
        uint64_t pa_page;
        Duration mapped_at;
        std::optional<Duration> unmapped_at, invalidated_at, reused_at;
    };
    std::map<uint64_t, std::vector<M>> pages;
    void map(uint64_t iova, uint64_t pa, uint64_t size, Duration t) {
        for (uint64_t off = 0; off < size; off += 4096) {
            auto& h = pages[(iova + off) >> 12];
            if (!h.empty() && h.back().unmapped_at && !h.back().invalidated_at) h.back().reused_at = t;
            if (h.size() >= 4 && h.front().invalidated_at) h.erase(h.begin());
            h.push_back(M{(pa + off) >> 12, t, std::nullopt, std::nullopt, std::nullopt});
        }
    }
    void unmap(uint64_t iova, uint64_t size, Duration t) {
        for (uint64_t off = 0; off < size; off += 4096) {
            auto it = pages.find((iova + off) >> 12);
            if (it != pages.end() && !it->second.back().unmapped_at) it->second.back().unmapped_at = t;
        }
    }
    void complete(uint64_t lo, uint64_t hi, Duration t, Duration submitted) {
        for (auto& [p, h] : pages)
            if (p >= lo && p <= hi)
                for (auto& m : h)
                    if (m.unmapped_at && !m.invalidated_at && *m.unmapped_at <= submitted) m.invalidated_at = t;
    }
    std::string check(uint64_t iova, uint64_t pa, Duration t) const {
        auto it = pages.find(iova >> 12);
        if (it == pages.end()) return "IOVA never mapped";
        for (auto m = it->second.rbegin(); m != it->second.rend(); ++m) {
            if (m->pa_page != pa >> 12 || m->mapped_at > t) continue;
            if (!m->unmapped_at || t < *m->unmapped_at) return "correct";
            if (m->reused_at && t >= *m->reused_at)
                return "translation used after its IOVA was mapped again before its invalidation completed";
            if (!m->invalidated_at || t < *m->invalidated_at) return "stale";
            return "translation used after its invalidation completed";
        }
        return "physical address does not match any mapping of this IOVA";
    }
};

} // namespace

TEST_CASE("range-based oracle histories give every page the verdict a per-page history gives", "[unit][host][oracle]") {
    stats::Group root("root");
    DmaOracle o(&root);
    PageOracle ref;
    const pcie::Bdf dev(4, 0, 0);
    o.bind(dev, std::nullopt, 3, Duration::ns(0));
    std::mt19937_64 rng(11);
    const uint64_t base = 0x4000'0000;
    uint64_t now = 1;
    for (int i = 0; i < 6000; ++i) {
        now += 1 + rng() % 5;
        const Duration t = Duration::ns(static_cast<double>(now));
        // Ranges over 96 pages, at page or odd offsets, of page-multiple or odd sizes.
        const uint64_t iova = base + (rng() % 96) * 4096 + (rng() % 4 == 0 ? rng() % 4096 : 0);
        const uint64_t size = (1 + rng() % 12) * 4096 - (rng() % 3 == 0 ? rng() % 4096 : 0);
        switch (rng() % 6) {
        case 0:
        case 1: {
            const uint64_t pa = 0x1'0000'0000 + (rng() % 64) * 4096 + (rng() % 8 == 0 ? rng() % 4096 : 0);
            o.map(3, iova, pa, size, t);
            ref.map(iova, pa, size, t);
            break;
        }
        case 2:
            o.unmap(3, iova, size, t);
            ref.unmap(iova, size, t);
            break;
        case 3: {
            const Duration submitted = Duration::ns(static_cast<double>(now - rng() % 20));
            if (rng() % 4 == 0) {
                o.invalidation_complete_all(3, t, submitted);
                ref.complete(0, UINT64_MAX, t, submitted);
            } else {
                o.invalidation_complete(3, iova, size, t, submitted);
                ref.complete(iova >> 12, (iova + size - 1) >> 12, t, submitted);
            }
            break;
        }
        default: {
            for (int k = 0; k < 8; ++k) {
                const uint64_t a = base - 4096 + rng() % (100 * 4096);
                // Mostly a physical address some mapping of that page used.
                uint64_t pa = 0x1'0000'0000 + (rng() % 64) * 4096 + a % 4096;
                if (auto it = ref.pages.find(a >> 12); it != ref.pages.end() && rng() % 4)
                    pa = (it->second[rng() % it->second.size()].pa_page << 12) | (a & 0xFFF);
                const Duration when = Duration::ns(static_cast<double>(now - rng() % 30));
                const std::string want = ref.check(a, pa, when);
                const auto before = o.violations().size();
                const V got = o.check(dev, std::nullopt, a, pa, when, S::iotlb);
                if (want == "correct") REQUIRE(got == V::correct);
                else if (want == "stale") REQUIRE(got == V::stale_in_window);
                else {
                    REQUIRE(got == V::violation);
                    if (o.violations().size() > before) REQUIRE(o.violations().back().reason == want);
                }
            }
        }
        }
    }
    CHECK(o.violation_count() > 0);
    CHECK(stats::numeric_value(*root.find("oracle.correct")) > 0);
    CHECK(stats::numeric_value(*root.find("oracle.stale_in_window")) > 0);
}

TEST_CASE("a VM device's view with any_pasid judges a PASID request by the guest's binding of that same PASID",
          "[unit][host][oracle]") {
    stats::Group root("root"), groot("groot");
    DmaOracle host_o(&root), guest_o(&groot);
    const pcie::Bdf dev(3, 0, 0), vdev(0, 3, 0);
    // GPA -> HPA: the nesting parent's space 1 maps guest RAM at GPA 0x40000000 to HPA 0x800000.
    host_o.map(1, 0x40000000, 0x800000, 0x10000, Duration::ns(0));
    // The guest bound its PASID 5 to its space 9 (IOVA 0x1000 -> GPA 0x40002000); PASID 6 it never bound.
    guest_o.bind(vdev, 5u, 9, Duration::ns(0));
    guest_o.map(9, 0x1000, 0x40002000, 0x1000, Duration::ns(0));
    DmaOracle::NestedView v;
    v.guest = &guest_o;
    v.guest_device = vdev;
    v.parent_space = 1;
    v.gpa_of = [](uint64_t hpa) -> std::optional<uint64_t> {
        if (hpa < 0x800000 || hpa >= 0x810000) return std::nullopt;
        return hpa - 0x800000 + 0x40000000;
    };
    host_o.bind_nested(dev, std::nullopt, v);
    // Without any_pasid (VT-d: each guest PASID is bound at its own host PASID) a PASID request is unbound.
    CHECK(host_o.check(dev, 5u, 0x1000, 0x802000, Duration::ns(10), S::iotlb) == V::violation);
    v.any_pasid = true; // AMD-Vi / SMMUv3: the guest's PASID space is the device's (its GCR3 / CD table)
    host_o.bind_nested(dev, std::nullopt, v);
    CHECK(host_o.check(dev, 5u, 0x1000, 0x802000, Duration::ns(20), S::iotlb) == V::correct);
    CHECK(host_o.check(dev, 6u, 0x1000, 0x802000, Duration::ns(30), S::iotlb) == V::violation);
    CHECK(stats::numeric_value(*groot.find("oracle.correct")) == 1);
    CHECK(host_o.violation_count() == 2);
}
