// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <functional>
#include <set>

#include "models/pcie/topology.hpp"

using namespace iommusim::pcie;

namespace {
DownstreamPortDesc port(const std::string& name, AcsFlags acs = {}, unsigned gen = 4, unsigned width = 16) {
    DownstreamPortDesc p;
    p.name = name;
    p.acs = acs;
    p.link.generation = gen;
    p.link.width = width;
    return p;
}
EndpointDesc ep(const std::string& name, const std::string& at, uint64_t bar = 0x10000) {
    EndpointDesc e;
    e.name = name;
    e.port = at;
    e.functions[0].bars.push_back(BarDesc{bar, std::nullopt});
    return e;
}
/// rp0 -> sw0 (dp0, dp1) -> ep0, ep1 ; rp1 -> ep2.
TopologyDesc switch_with_two(AcsFlags switch_acs) {
    TopologyDesc d;
    d.root_complex.root_ports = {port("rp0", AcsFlags::all_isolating()), port("rp1", AcsFlags::all_isolating(), 3, 4)};
    SwitchDesc s;
    s.name = "sw0";
    s.port = "rp0";
    s.downstream_ports = {port("sw0.dp0", switch_acs, 4, 8), port("sw0.dp1", switch_acs, 4, 8)};
    d.switches.push_back(s);
    d.endpoints = {ep("ep0", "sw0.dp0"), ep("ep1", "sw0.dp1"), ep("ep2", "rp1")};
    return d;
}
} // namespace

TEST_CASE("depth-first enumeration assigns secondary and subordinate buses", "[unit][pcie][topology]") {
    Topology t = build_topology(switch_with_two({}));
    const auto& rp0 = t.node(t.find("rp0"));
    CHECK(rp0.bdf.str() == "00:01.0");
    CHECK(rp0.secondary == 1);
    CHECK(rp0.subordinate == 4);                         // switch internal bus 2, dp0 -> 3, dp1 -> 4
    CHECK(t.node(t.find("sw0")).bdf.str() == "01:00.0");
    CHECK(t.node(t.find("sw0.dp0")).bdf.str() == "02:00.0");
    CHECK(t.node(t.find("sw0.dp1")).bdf.str() == "02:01.0");
    CHECK(t.node(t.find("ep0")).bdf.str() == "03:00.0");
    CHECK(t.node(t.find("ep1")).bdf.str() == "04:00.0");
    CHECK(t.node(t.find("rp1")).bdf.str() == "00:02.0");
    CHECK(t.node(t.find("ep2")).bdf.str() == "05:00.0");
    // Auto-placed BARs are naturally aligned and disjoint.
    const auto& b0 = t.node(t.find("ep0")).bars.at(0);
    const auto& b1 = t.node(t.find("ep1")).bars.at(0);
    CHECK(b0.base % 0x10000 == 0);
    CHECK_FALSE(b0.overlaps(b1));
}

TEST_CASE("fixed bus numbers are honoured and may not go backwards", "[unit][pcie][topology]") {
    TopologyDesc d = switch_with_two({});
    d.root_complex.root_ports[1].secondary_bus = 0x40;
    Topology t = build_topology(d);
    CHECK(t.node(t.find("ep2")).bdf.str() == "40:00.0");
    d.root_complex.root_ports[1].secondary_bus = 2;
    CHECK_THROWS_WITH(build_topology(d), Catch::Contains("rp1") && Catch::Contains("next free bus is 5"));
}

TEST_CASE("VF RIDs are PF RID + First VF Offset + n * VF Stride and may spill to the next bus", "[unit][pcie][topology][sriov]") {
    TopologyDesc d;
    d.root_complex.root_ports = {port("rp0", AcsFlags::all_isolating()), port("rp1", AcsFlags::all_isolating())};
    EndpointDesc nic = ep("nic0", "rp0");
    nic.functions[0].sriov = SriovDesc{100, 0x80, 2, 0x4000};
    d.endpoints = {nic, ep("disk", "rp1")};
    Topology t = build_topology(d);
    auto fns = t.functions_of("nic0");
    REQUIRE(fns.size() == 101);
    Bdf pf = t.node(fns[0]).bdf;
    CHECK(pf.str() == "01:00.0");
    for (int n = 0; n < 100; ++n) {
        const auto& vf = t.node(fns[static_cast<size_t>(n + 1)]);
        CHECK(vf.is_vf);
        CHECK(vf.bdf.raw == pf.raw + 0x80 + n * 2);
        CHECK(vf.bars.at(0).base == t.node(fns[1]).bars.at(0).base + uint64_t(n) * 0x4000);
    }
    CHECK(t.node(fns[1]).bdf.str() == "01:10.0");   // 0x0100 + 0x80
    CHECK(t.node(fns[100]).bdf.str() == "02:08.6");  // 0x0100 + 0x80 + 99*2 = 0x0246
    CHECK(t.node(t.find("rp0")).subordinate == t.node(fns[100]).bdf.bus());
    CHECK(t.node(t.find("disk")).bdf.bus() == t.node(fns[100]).bdf.bus() + 1);
    // With ACS on the root ports every VF gets its own group.
    CHECK(t.group_count() == 102);
}

TEST_CASE("IOMMU groups: a switch without ACS shares one group, with ACS each endpoint is alone", "[unit][pcie][topology][acs]") {
    Topology open = build_topology(switch_with_two({}));
    CHECK(open.node(open.find("ep0")).iommu_group == open.node(open.find("ep1")).iommu_group);
    CHECK(open.node(open.find("ep2")).iommu_group != open.node(open.find("ep0")).iommu_group);
    CHECK(open.reaches_directly(open.find("ep0"), open.find("ep1")));
    CHECK_FALSE(open.reaches_directly(open.find("ep0"), open.find("ep2")));
    CHECK(open.group_count() == 2);

    Topology closed = build_topology(switch_with_two(AcsFlags::all_isolating()));
    CHECK(closed.node(closed.find("ep0")).iommu_group != closed.node(closed.find("ep1")).iommu_group);
    CHECK(closed.group_count() == 3);

    // RR alone is not enough for Linux: without SV/CR/UF the path is not trusted.
    AcsFlags rr_only;
    rr_only.request_redirect = true;
    Topology partial = build_topology(switch_with_two(rr_only));
    CHECK(partial.group_count() == 2);

    // Root ports without ACS let the root complex route peer to peer.
    TopologyDesc d = switch_with_two(AcsFlags::all_isolating());
    d.root_complex.root_ports[0].acs = {};
    d.root_complex.root_ports[1].acs = {};
    Topology rc_open = build_topology(d);
    CHECK(rc_open.group_count() == 1);
}

TEST_CASE("PFs of a multi-function device share a group unless the device has ACS", "[unit][pcie][topology][acs]") {
    TopologyDesc d;
    d.root_complex.root_ports = {port("rp0", AcsFlags::all_isolating())};
    EndpointDesc e = ep("dual", "rp0");
    FunctionDesc f1;
    f1.function = 1;
    e.functions.push_back(f1);
    d.endpoints = {e};
    Topology t = build_topology(d);
    CHECK(t.node(t.find("dual")).iommu_group == t.node(t.find("dual.f1")).iommu_group);
    d.endpoints[0].acs = AcsFlags::all_isolating();
    Topology t2 = build_topology(d);
    CHECK(t2.group_count() == 2);
    // An endpoint without function 0 is still found by its name.
    d.endpoints[0].functions.erase(d.endpoints[0].functions.begin());
    Topology t3 = build_topology(d);
    REQUIRE(t3.functions_of("dual").size() == 1);
    CHECK(t3.node(t3.functions_of("dual")[0]).name == "dual.f1");
}

TEST_CASE("topology errors name the element at fault", "[unit][pcie][topology]") {
    TopologyDesc d = switch_with_two({});
    d.endpoints[1].port = "nowhere";
    CHECK_THROWS_WITH(build_topology(d), Catch::Contains("ep1") && Catch::Contains("nowhere"));
    d = switch_with_two({});
    d.endpoints[1].port = "sw0.dp0";
    CHECK_THROWS_WITH(build_topology(d), Catch::Contains("point to point"));
    d = switch_with_two({});
    d.switches[0].port = "sw0.dp0";  // switch under itself
    d.endpoints.erase(d.endpoints.begin());
    CHECK_THROWS_WITH(build_topology(d), Catch::Contains("no port named") || Catch::Contains("not reachable"));
    d = switch_with_two({});
    d.root_complex.root_ports[0].link.width = 5;
    CHECK_THROWS_WITH(build_topology(d), Catch::Contains("rp0") && Catch::Contains("width"));
    d = switch_with_two({});
    d.endpoints[0].functions[0].bars[0].base = 0x1234;
    CHECK_THROWS_WITH(build_topology(d), Catch::Contains("aligned"));
}

TEST_CASE("topology renders a tree with BDFs, links, ACS and IOMMU groups", "[unit][pcie][topology]") {
    Topology t = build_topology(switch_with_two({}));
    std::string s = t.render();
    CHECK_THAT(s, Catch::Contains("rc0 root complex [bus 00-05]"));
    CHECK_THAT(s, Catch::Contains("|-- rp0 00:01.0 root port [bus 01-04] link gen4 x16 ACS SV,RR,CR,UF"));
    CHECK_THAT(s, Catch::Contains("sw0.dp1 02:01.0 downstream port [bus 04-04] link gen4 x8 ACS -"));
    CHECK_THAT(s, Catch::Contains("ep1 04:00.0 PF BAR 0x"));
    CHECK_THAT(s, Catch::Contains("iommu_group 0"));
    CHECK_THAT(s, Catch::Contains("iommu groups: 2"));
}

TEST_CASE("IOMMU groups derived in one pass equal the groups of the pairwise reachability rule", "[unit][pcie][topology][acs]") {
    // Random trees of switches (two levels) and endpoints (some multi-function,
    // some with VFs), every port's ACS isolating or not: the groups must be
    // the connected components of "reaches directly, either way" plus the
    // multi-function rule, as Linux's pci_device_group finds them pairwise.
    uint32_t seed = 12345;
    auto rnd = [&](uint32_t n) {
        seed = seed * 1103515245u + 12345u;
        return (seed >> 16) % n;
    };
    for (int round = 0; round < 30; ++round) {
        TopologyDesc d;
        std::vector<std::string> free_ports;
        // name + number by appending (GCC 12 warns falsely on "x" + std::to_string(n)).
        auto named = [](std::string prefix, size_t n) { return prefix.append(std::to_string(n)); };
        auto acs = [&] { return rnd(3) == 0 ? AcsFlags{} : AcsFlags::all_isolating(); };
        for (int r = 0; r < 4; ++r) {
            d.root_complex.root_ports.push_back(port(named("rp", static_cast<size_t>(r)), acs()));
            free_ports.push_back(named("rp", static_cast<size_t>(r)));
        }
        for (int s = 0; s < 3 && !free_ports.empty(); ++s) {
            SwitchDesc sw;
            sw.name = named("sw", static_cast<size_t>(s));
            sw.port = free_ports[rnd(static_cast<uint32_t>(free_ports.size()))];
            std::erase(free_ports, sw.port);
            for (int k = 0; k < 3; ++k) {
                sw.downstream_ports.push_back(port(named(sw.name + ".dp", static_cast<size_t>(k)), acs()));
                free_ports.push_back(sw.downstream_ports.back().name);
            }
            d.switches.push_back(sw);
        }
        for (size_t e = 0; e < free_ports.size(); ++e) {
            if (rnd(4) == 0) continue; // an empty port
            EndpointDesc x = ep(named("ep", e), free_ports[e]);
            if (rnd(3) == 0) {
                FunctionDesc f1;
                f1.function = 1;
                x.functions.push_back(f1);
                if (rnd(2)) x.acs = AcsFlags::all_isolating();
            }
            if (rnd(3) == 0) x.functions[0].sriov = SriovDesc{3, 8, 1, 0}; // VFs from devfn 8: clear of function 1
            d.endpoints.push_back(x);
        }
        Topology t = build_topology(d);
        const std::vector<int> fns = t.functions();
        std::vector<int> comp(fns.size()); // components of the pairwise rule
        for (size_t i = 0; i < fns.size(); ++i) comp[i] = static_cast<int>(i);
        std::function<int(int)> findc = [&](int x) {
            return comp[static_cast<size_t>(x)] == x ? x : findc(comp[static_cast<size_t>(x)]);
        };
        for (size_t i = 0; i < fns.size(); ++i)
            for (size_t j = i + 1; j < fns.size(); ++j) {
                const auto &a = t.node(fns[i]), &b = t.node(fns[j]);
                const AcsFlags& dev_acs = d.endpoints[static_cast<size_t>(a.endpoint)].acs;
                const bool direct = a.endpoint == b.endpoint
                                        ? !a.is_vf && !b.is_vf && !(dev_acs.request_redirect && dev_acs.completion_redirect)
                                        : t.reaches_directly(fns[i], fns[j]) || t.reaches_directly(fns[j], fns[i]);
                if (!direct) continue;
                CHECK(a.iommu_group == b.iommu_group);
                comp[static_cast<size_t>(findc(static_cast<int>(i)))] = findc(static_cast<int>(j));
            }
        // And nothing more is joined: as many groups as components.
        std::set<int> components;
        for (size_t i = 0; i < fns.size(); ++i) components.insert(findc(static_cast<int>(i)));
        CHECK(t.group_count() == static_cast<int>(components.size()));
    }
}
