// SPDX-License-Identifier: Apache-2.0
// SystemC tests of the fabric: link bandwidth, shared links, P2P with and
// without ACS, ID-routed messages, SR-IOV VFs with their own PASIDs.
#include <catch2/catch.hpp>

#include <map>
#include <sstream>
#include <set>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "models/common/sc_time.hpp"
#include "models/mem/memory.hpp"
#include "models/pcie/fabric.hpp"
#include "models/pcie/traffic_endpoint.hpp"

using namespace iommusim;
using namespace iommusim::pcie;

namespace {

/// Test double for "the IOMMU": records every request, translates pages it
/// has a mapping for (to memory, or back down into the fabric for BAR
/// targets) and faults the rest. Stands in until the IOMMU models land.
class TestIommu : public sc_core::sc_module {
public:
    tlm_utils::simple_target_socket<TestIommu> in;
    tlm_utils::simple_initiator_socket<TestIommu> mem;
    tlm_utils::simple_initiator_socket<TestIommu> fabric;   ///< to the root complex's upstream_in
    std::map<uint64_t, uint64_t> map;                       ///< IOVA page -> PA page (4 KiB)
    bool identity = true;                                   ///< unmapped DRAM addresses pass 1:1
    uint64_t mmio_base = RootComplexDesc::kDefaultMmioBase;
    Duration translate_latency;                             ///< stands in for a page walk per request
    uint64_t seen = 0, faulted = 0, messages = 0;
    uint64_t no_snoop = 0, privileged = 0, execute = 0;     ///< requests arriving with NS / PMR / ER
    std::set<std::pair<uint16_t, uint32_t>> rid_pasid;

    std::vector<MessageExtension> to_send;                  ///< sent down into the fabric at start
    std::vector<tlm::tlm_response_status> sent_status;

    SC_HAS_PROCESS(TestIommu);
    explicit TestIommu(sc_core::sc_module_name n) : sc_module(n), in("in"), mem("mem"), fabric("fabric") {
        in.register_b_transport(this, &TestIommu::b_transport);
        SC_THREAD(send_messages);
    }
    void send_messages() {
        for (auto& m : to_send) {
            tlm::tlm_generic_payload gp;
            gp.set_command(tlm::TLM_WRITE_COMMAND);
            gp.set_data_length(0);
            gp.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
            gp.set_extension(&m);
            sc_core::sc_time d = sc_core::SC_ZERO_TIME;
            fabric->b_transport(gp, d);
            gp.clear_extension(&m);
            sent_status.push_back(gp.get_response_status());
        }
    }
    void b_transport(tlm::tlm_generic_payload& gp, sc_core::sc_time& d) {
        if (gp.get_extension<MessageExtension>()) {
            ++messages;
            gp.set_response_status(tlm::TLM_OK_RESPONSE);
            return;
        }
        ++seen;
        auto* t = gp.get_extension<TlpExtension>();
        if (t) {
            rid_pasid.emplace(t->requester.raw, t->pasid_present ? t->pasid : 0xFFFFFFFF);
            no_snoop += t->no_snoop;
            privileged += t->privileged;
            execute += t->execute;
        }
        uint64_t a = gp.get_address();
        uint64_t pa;
        if (auto it = map.find(a >> 12); it != map.end()) pa = (it->second << 12) | (a & 0xFFF);
        else if (identity && a < mmio_base) pa = a;
        else {
            ++faulted;
            gp.set_response_status(tlm::TLM_GENERIC_ERROR_RESPONSE);
            return;
        }
        gp.set_address(pa);
        d += to_sc(translate_latency);
        if (pa >= mmio_base) fabric->b_transport(gp, d);
        else mem->b_transport(gp, d);
        gp.set_address(a);
    }
};

/// Builds topology + fabric + endpoints + memory + test IOMMU.
struct Bench {
    Topology topo;
    stats::Group root{"root"};
    mem::Memory memory;
    PcieFabric fabric;
    TestIommu iommu{"iommu"};
    std::map<std::string, std::unique_ptr<TrafficEndpoint>> eps;

    static mem::MemoryParams mem_params() {
        mem::MemoryParams m;
        m.bandwidth_bytes_per_ns = 0;  // the link, not DRAM, is the bottleneck under test
        return m;
    }
    explicit Bench(const TopologyDesc& d)
        : topo(build_topology(d)), memory("memory", mem_params(), &root),
          fabric(topo, PcieRootComplexParams{}, SwitchParams{}, &root) {
        fabric.root_complex().upstream_out.bind(iommu.in);
        iommu.mem.bind(memory.target);
        iommu.fabric.bind(fabric.root_complex().upstream_in);
    }
    TrafficEndpoint& add(const std::string& name, std::vector<WorkloadParams> w) {
        TrafficEndpointParams p;
        fill_from_topology(topo, name, p);
        p.workloads = std::move(w);
        auto e = std::make_unique<TrafficEndpoint>(name.c_str(), p, &root);
        fabric.attach_endpoint(name, e->upstream, e->downstream);
        return *(eps[name] = std::move(e));
    }
    double stat(const std::string& path) const {
        const stats::Entry* e = root.find(path);
        REQUIRE(e != nullptr);
        return stats::numeric_value(*e);
    }
};

DownstreamPortDesc port(const std::string& name, unsigned gen, unsigned width, AcsFlags acs = AcsFlags::all_isolating()) {
    DownstreamPortDesc p;
    p.name = name;
    p.link.generation = gen;
    p.link.width = width;
    p.acs = acs;
    return p;
}
EndpointDesc endpoint(const std::string& name, const std::string& at) {
    EndpointDesc e;
    e.name = name;
    e.port = at;
    e.functions[0].bars.push_back(BarDesc{0x10000, std::nullopt});
    return e;
}
WorkloadParams stream(uint32_t read_percent, uint64_t ops, uint64_t base = WorkloadParams::kDefaultBase) {
    WorkloadParams w;
    w.kind = WorkloadKind::sequential;
    w.read_percent = read_percent;
    w.requests = ops;
    w.request_bytes = 4096;
    w.region_bytes = 1 << 20;
    w.base = base;
    return w;
}
TopologyDesc switch_pair(AcsFlags acs) {
    TopologyDesc d;
    d.root_complex.root_ports = {port("rp0", 3, 4)};
    SwitchDesc s;
    s.name = "sw0";
    s.port = "rp0";
    s.downstream_ports = {port("sw0.dp0", 3, 8, acs), port("sw0.dp1", 3, 8, acs)};
    d.switches = {s};
    d.endpoints = {endpoint("ep0", "sw0.dp0"), endpoint("ep1", "sw0.dp1")};
    return d;
}

} // namespace

TEST_CASE("posted-write throughput matches gen/width/encoding arithmetic within 1%", "[sc][pcie][fabric][link]") {
    TopologyDesc d;
    d.root_complex.root_ports = {port("rp0", 3, 4)};
    d.endpoints = {endpoint("ep0", "rp0")};
    Bench b(d);
    b.add("ep0", {stream(0, 2000)});
    sc_core::sc_start();
    LinkTiming lt(b.topo.node(b.topo.find("rp0")).link);
    // 64-bit address: 4-DW header; 8 B framing/seq/LCRC; 256 B MPS payload.
    double expected = lt.bytes_per_ns() * 256.0 / (256 + 16 + 8);
    CHECK(lt.bytes_per_ns() == Approx(8.0 * 4 / 8 * 128 / 130));
    CHECK(b.stat("ep0.write_tlps") == 2000 * 16);
    CHECK(b.stat("ep0.throughput") == Approx(expected).epsilon(0.01));
    CHECK(b.stat("rc0.rp0.up_payload_bytes") == 2000 * 4096);
    CHECK(b.stat("memory.bytes_written") == 2000 * 4096);
}

TEST_CASE("read throughput is bound by completions on the downstream direction within 1%", "[sc][pcie][fabric][link]") {
    TopologyDesc d;
    d.root_complex.root_ports = {port("rp0", 4, 8)};
    d.endpoints = {endpoint("ep0", "rp0")};
    Bench b(d);
    b.add("ep0", {stream(100, 2000)});
    sc_core::sc_start();
    LinkTiming lt(b.topo.node(b.topo.find("rp0")).link);
    // MRRS 512 B answered by two 256 B completions (RCB 64, MPS 256), 3-DW headers.
    double expected = lt.bytes_per_ns() * 512.0 / (2 * (256 + 12 + 8));
    CHECK(b.stat("ep0.read_tlps") == 2000 * 8);
    CHECK(b.stat("rc0.rp0.down_tlps") == 2000 * 16);
    CHECK(b.stat("ep0.throughput") == Approx(expected).epsilon(0.01));
    CHECK(b.stat("ep0.errors") == 0);
}

TEST_CASE("two devices behind a switch share the upstream link's bandwidth", "[sc][pcie][fabric][link]") {
    Bench b(switch_pair(AcsFlags::all_isolating()));
    auto& e0 = b.add("ep0", {stream(0, 3000)});
    auto& e1 = b.add("ep1", {stream(0, 3000, WorkloadParams::kDefaultBase + (1 << 20))});
    sc_core::sc_start();
    LinkTiming rp(b.topo.node(b.topo.find("rp0")).link);
    double link_rate = rp.bytes_per_ns() * 256.0 / (256 + 16 + 8);
    double end = std::max(b.stat("ep0.last_done_ns"), b.stat("ep1.last_done_ns"));
    double total = (b.stat("ep0.write_bytes") + b.stat("ep1.write_bytes")) / end;
    CHECK(total == Approx(link_rate).epsilon(0.01));
    // Each device alone could send at twice the shared link's rate (x8 vs x4);
    // together each gets about half of the shared link.
    CHECK(b.stat("ep0.throughput") == Approx(link_rate / 2).epsilon(0.05));
    CHECK(b.stat("ep1.throughput") == Approx(link_rate / 2).epsilon(0.05));
    CHECK(e0.params().link.width == 8);
    CHECK(e1.params().functions.at(0).str() == "04:00.0");
}

TEST_CASE("P2P under a switch without ACS goes straight to the peer and bypasses the IOMMU", "[sc][pcie][fabric][acs]") {
    Bench b(switch_pair(AcsFlags{}));
    uint64_t peer_bar = b.topo.node(b.topo.find("ep1")).bars.at(0).base;
    WorkloadParams w = stream(0, 50, peer_bar);
    w.region_bytes = 0x10000;
    w.request_bytes = 256;
    b.add("ep0", {w});
    b.add("ep1", {});
    sc_core::sc_start();
    CHECK(b.stat("sw0.p2p_direct") == 50);
    CHECK(b.fabric.p2p_direct_total() == 50);
    CHECK(b.stat("sw0.p2p_redirected") == 0);
    CHECK(b.iommu.seen == 0);
    CHECK(b.stat("ep1.bar_writes") == 50);
    CHECK(b.stat("ep0.errors") == 0);
    CHECK(b.stat("rc0.rp0.up_tlps") == 0);   // never left the switch
}

TEST_CASE("P2P with ACS request redirect goes through the IOMMU and faults when unmapped", "[sc][pcie][fabric][acs]") {
    Bench b(switch_pair(AcsFlags::all_isolating()));
    uint64_t peer_bar = b.topo.node(b.topo.find("ep1")).bars.at(0).base;
    WorkloadParams w = stream(0, 50, peer_bar);
    w.region_bytes = 0x10000;
    w.request_bytes = 256;
    b.add("ep0", {w});
    b.add("ep1", {});
    sc_core::sc_start();
    CHECK(b.stat("sw0.p2p_direct") == 0);
    CHECK(b.fabric.p2p_direct_total() == 0);
    CHECK(b.stat("sw0.p2p_redirected") == 50);
    CHECK(b.iommu.seen == 50);
    CHECK(b.iommu.faulted == 50);
    CHECK(b.stat("ep1.bar_writes") == 0);
    CHECK(b.stat("ep0.errors") == 50);
}

TEST_CASE("P2P with ACS is translated by the IOMMU and routed back down to the peer's BAR", "[sc][pcie][fabric][acs]") {
    Bench b(switch_pair(AcsFlags::all_isolating()));
    uint64_t peer_bar = b.topo.node(b.topo.find("ep1")).bars.at(0).base;
    const uint64_t iova = 0x7000'0000;
    for (uint64_t pg = 0; pg < 16; ++pg) b.iommu.map[(iova >> 12) + pg] = (peer_bar >> 12) + pg;
    WorkloadParams w = stream(50, 200, iova);
    w.region_bytes = 0x10000;
    w.request_bytes = 256;
    b.add("ep0", {w});
    b.add("ep1", {});
    sc_core::sc_start();
    CHECK(b.stat("sw0.p2p_redirected") == 0);  // IOVA is not a BAR address: plain upstream request
    CHECK(b.iommu.seen == 200);
    CHECK(b.iommu.faulted == 0);
    CHECK(b.stat("ep1.bar_writes") + b.stat("ep1.bar_reads") == 200);
    CHECK(b.stat("rc0.down_requests") == 200);
    CHECK(b.stat("ep0.errors") == 0);
    CHECK(b.stat("ep0.read_latency") > 0);
}

TEST_CASE("ACS source validation blocks a requester ID from outside the port's bus range", "[unit][pcie][fabric][acs]") {
    Topology t = build_topology(switch_pair(AcsFlags::all_isolating()));
    Router r = t.router_for(t.find("sw0"));
    Route ok = r.up_memory(0, t.node(t.find("ep0")).bdf, 0x1000, AddressType::untranslated);
    CHECK(ok.target == RouteTarget::upstream);
    Route spoof = r.up_memory(0, t.node(t.find("ep1")).bdf, 0x1000, AddressType::untranslated);
    CHECK(spoof.target == RouteTarget::acs_violation);
    AcsFlags tb = AcsFlags::all_isolating();
    tb.translation_blocking = true;
    Topology t2 = build_topology(switch_pair(tb));
    Router r2 = t2.router_for(t2.find("sw0"));
    CHECK(r2.up_memory(0, t2.node(t2.find("ep0")).bdf, 0x1000, AddressType::translated).target ==
          RouteTarget::acs_violation);
    // Direct Translated P2P lets translated requests take the peer path despite RR.
    AcsFlags dt = AcsFlags::all_isolating();
    dt.direct_translated = true;
    Topology t3 = build_topology(switch_pair(dt));
    Router r3 = t3.router_for(t3.find("sw0"));
    uint64_t bar1 = t3.node(t3.find("ep1")).bars.at(0).base;
    CHECK(r3.up_memory(0, t3.node(t3.find("ep0")).bdf, bar1, AddressType::translated).target == RouteTarget::port);
    CHECK(r3.up_memory(0, t3.node(t3.find("ep0")).bdf, bar1, AddressType::untranslated).target == RouteTarget::upstream);
}

namespace {
/// Sends messages into the root complex's host side, as the IOMMU does.
struct HostSender : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<HostSender> out;
    std::vector<MessageExtension> msgs;
    std::vector<tlm::tlm_response_status> results;
    SC_HAS_PROCESS(HostSender);
    explicit HostSender(sc_core::sc_module_name n) : sc_module(n), out("out") { SC_THREAD(run); }
    void run() {
        for (auto& m : msgs) {
            tlm::tlm_generic_payload gp;
            gp.set_command(tlm::TLM_WRITE_COMMAND);
            gp.set_data_length(0);
            gp.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
            gp.set_extension(&m);
            sc_core::sc_time d = sc_core::SC_ZERO_TIME;
            out->b_transport(gp, d);
            gp.clear_extension(&m);
            results.push_back(gp.get_response_status());
        }
    }
};
} // namespace

TEST_CASE("ATS invalidate requests and PRG responses route down by ID to the target function", "[sc][pcie][fabric]") {
    TopologyDesc d = switch_pair(AcsFlags::all_isolating());
    d.endpoints[1].functions[0].sriov = SriovDesc{4, 1, 1, 0x1000};
    Topology topo = build_topology(d);
    stats::Group root("root");
    mem::Memory memory("memory", mem::MemoryParams{}, &root);
    PcieFabric fabric(topo, PcieRootComplexParams{}, SwitchParams{}, &root);
    fabric.root_complex().upstream_out.bind(memory.target);
    HostSender host("host");
    host.out.bind(fabric.root_complex().upstream_in);
    std::vector<std::unique_ptr<TrafficEndpoint>> eps;
    for (const char* n : {"ep0", "ep1"}) {
        TrafficEndpointParams p;
        fill_from_topology(topo, n, p);
        eps.push_back(std::make_unique<TrafficEndpoint>(n, p, &root));
        fabric.attach_endpoint(n, eps.back()->upstream, eps.back()->downstream);
    }
    MessageExtension inv;
    inv.code = MessageCode::ats_invalidate_request;
    inv.inv_req = AtsInvalidateRequest::for_range(topo.node(topo.find("ep1.vf2")).bdf, 0x10000, 0);
    MessageExtension prg;
    prg.code = MessageCode::prg_response;
    prg.prg_resp.destination = topo.node(topo.find("ep0")).bdf;
    MessageExtension lost = inv;
    lost.inv_req.target = Bdf(0x80, 0, 0);
    host.msgs = {inv, prg, lost};
    sc_core::sc_start();
    auto stat = [&](const std::string& p) { return stats::numeric_value(*root.find(p)); };
    // Neither endpoint has ATS/PRI: each answers UR, but the message got there.
    CHECK(stat("ep1.messages_unsupported") == 1);
    CHECK(stat("ep0.messages_unsupported") == 1);
    CHECK(stat("rc0.down_messages") == 2);
    CHECK(stat("sw0.down_messages") == 2);
    CHECK(stat("rc0.unsupported") == 1);
    CHECK(stat("rc0.rp0.down_tlps") == 2);
    CHECK(stat("rc0.rp0.down_wire_bytes") == 2 * (8 + 16) + 8);  // 4-DW messages, the invalidate carries 8 B
    REQUIRE(host.results.size() == 3);
    CHECK(host.results[2] == tlm::TLM_ADDRESS_ERROR_RESPONSE);
}

TEST_CASE("SR-IOV VFs issue DMA with their own RIDs and PASIDs", "[sc][pcie][fabric][sriov][pasid]") {
    TopologyDesc d;
    d.root_complex.root_ports = {port("rp0", 4, 16)};
    EndpointDesc nic = endpoint("nic0", "rp0");
    nic.functions[0].sriov = SriovDesc{4, 0x10, 2, 0x4000};
    d.endpoints = {nic};
    Bench b(d);
    std::vector<WorkloadParams> ws;
    for (unsigned vf = 0; vf < 4; ++vf) {
        WorkloadParams w;
        w.kind = WorkloadKind::nic_ring;
        w.function = 1 + vf;
        w.pasid.pasids = {100 + vf};
        w.requests = 50;
        w.base = WorkloadParams::kDefaultBase + vf * (1 << 20);
        w.buffer_base = w.base + (1 << 16);
        w.seed = vf + 1;
        ws.push_back(w);
    }
    b.add("nic0", ws);
    sc_core::sc_start();
    auto fns = b.topo.functions_of("nic0");
    REQUIRE(fns.size() == 5);
    std::set<std::pair<uint16_t, uint32_t>> expect;
    for (unsigned vf = 0; vf < 4; ++vf) {
        Bdf rid = b.topo.node(fns[1 + vf]).bdf;
        CHECK(rid.raw == b.topo.node(fns[0]).bdf.raw + 0x10 + 2 * vf);
        expect.emplace(rid.raw, 100 + vf);
    }
    CHECK(b.iommu.rid_pasid == expect);
    CHECK(b.stat("nic0.errors") == 0);
    CHECK(b.stat("nic0.reads") == 4 * 50 * 1);
    CHECK(b.stat("nic0.writes") == 4 * 50 * 2);
}

TEST_CASE("a stream's rate limit caps its throughput below the link rate", "[sc][pcie][fabric][workload]") {
    TopologyDesc d;
    d.root_complex.root_ports = {port("rp0", 4, 16)};
    d.endpoints = {endpoint("ep0", "rp0")};
    Bench b(d);
    WorkloadParams w = stream(0, 500);
    w.rate_bytes_per_ns = 2.0;
    b.add("ep0", {w});
    sc_core::sc_start();
    // 500 ops of 4 KiB at 2 GB/s: the last one starts at 499 * 2048 ns.
    CHECK(b.stat("ep0.throughput") == Approx(2.0).epsilon(0.01));
}

TEST_CASE("the outstanding-read limit makes reads latency bound", "[sc][pcie][fabric][workload]") {
    TopologyDesc d;
    d.root_complex.root_ports = {port("rp0", 4, 16)};
    d.endpoints = {endpoint("ep0", "rp0")};
    Bench b(d);
    TrafficEndpointParams p;
    fill_from_topology(b.topo, "ep0", p);
    p.max_outstanding_reads = 1;
    p.workloads = {stream(100, 100)};
    TrafficEndpoint ep("ep0", p, &b.root);
    b.fabric.attach_endpoint("ep0", ep.upstream, ep.downstream);
    sc_core::sc_start();
    double lat = b.stat("ep0.read_latency");  // count
    CHECK(lat == 800);
    const auto& h = std::get<stats::Histogram>(*b.root.find("ep0.read_latency")->stat);
    // One tag: each 512 B read waits for the previous completion.
    CHECK(b.stat("ep0.throughput") == Approx(512.0 / h.mean()).epsilon(0.02));
    CHECK(b.stat("ep0.tag_stalls") == 799);
}

TEST_CASE("trace-driven endpoint issues each record no earlier than its timestamp", "[sc][pcie][fabric][trace]") {
    TopologyDesc d;
    d.root_complex.root_ports = {port("rp0", 3, 8)};
    d.endpoints = {endpoint("ep0", "rp0")};
    Bench b(d);
    std::istringstream csv("time_ns,device,pasid,addr,size,rw\n"
                           "1000,ep0,5,0x100000000,256,w\n"
                           "1000,other,,0x100000000,256,w\n"
                           "5000,ep0,5,0x100001000,4096,r\n"
                           "9000,ep0,-,0x100002000,64,w\n");
    WorkloadParams w;
    w.kind = WorkloadKind::trace;
    w.trace = trace_for_device(parse_trace_csv(csv, "inline"), "ep0");
    b.add("ep0", {w});
    sc_core::sc_start();
    CHECK(b.stat("ep0.first_issue_ns") == 1000);
    CHECK(b.stat("ep0.writes") == 2);
    CHECK(b.stat("ep0.reads") == 1);
    CHECK(b.stat("ep0.last_done_ns") >= 9000);
    CHECK(b.iommu.rid_pasid.count({b.topo.node(b.topo.find("ep0")).bdf.raw, 5}) == 1);
    CHECK(b.iommu.rid_pasid.count({b.topo.node(b.topo.find("ep0")).bdf.raw, 0xFFFFFFFF}) == 1);
}

TEST_CASE("an endpoint rejects PASIDs beyond its PASID capability", "[sc][pcie][fabric][pasid]") {
    TopologyDesc d;
    d.root_complex.root_ports = {port("rp0", 3, 8)};
    d.endpoints = {endpoint("ep0", "rp0")};
    Topology t = build_topology(d);
    stats::Group root("root");
    TrafficEndpointParams p;
    fill_from_topology(t, "ep0", p);
    WorkloadParams w;
    w.pasid.pasids = {0x400};
    p.workloads = {w};
    p.pasid.max_width = 10;
    CHECK_THROWS_WITH(TrafficEndpoint("ep0", p, &root), Catch::Contains("Max PASID Width of 10"));
    p.pasid.supported = false;
    CHECK_THROWS_WITH(TrafficEndpoint("ep1", p, &root), Catch::Contains("no PASID capability"));
}

TEST_CASE("switches nest: P2P between branches turns at the lowest common switch", "[sc][pcie][fabric][acs]") {
    TopologyDesc d;
    d.root_complex.root_ports = {port("rp0", 4, 16)};
    SwitchDesc a;
    a.name = "swA";
    a.port = "rp0";
    a.downstream_ports = {port("swA.dp0", 4, 16, {}), port("swA.dp1", 4, 8, {})};
    SwitchDesc bsw;
    bsw.name = "swB";
    bsw.port = "swA.dp0";
    bsw.downstream_ports = {port("swB.dp0", 4, 4, {}), port("swB.dp1", 4, 4, {})};
    d.switches = {a, bsw};
    d.endpoints = {endpoint("ep0", "swB.dp0"), endpoint("ep1", "swB.dp1"), endpoint("ep2", "swA.dp1")};
    Bench b(d);
    CHECK(b.topo.node(b.topo.find("ep0")).bdf.str() == "05:00.0");   // rp0->1, swA bus 2, dp0->3, swB bus 4, dp0->5
    CHECK(b.topo.node(b.topo.find("ep2")).bdf.str() == "07:00.0");
    CHECK(b.topo.group_count() == 1);
    uint64_t bar2 = b.topo.node(b.topo.find("ep2")).bars.at(0).base;
    WorkloadParams w = stream(0, 20, bar2);
    w.region_bytes = 0x10000;
    w.request_bytes = 256;
    b.add("ep0", {w});
    b.add("ep1", {});
    b.add("ep2", {});
    sc_core::sc_start();
    CHECK(b.stat("swB.up_requests") == 20);   // not a peer of swB's ports
    CHECK(b.stat("swA.p2p_direct") == 20);    // turns at swA
    CHECK(b.stat("ep2.bar_writes") == 20);
    CHECK(b.iommu.seen == 0);
}

namespace {
/// Exercises the extension points an ATS/PRI endpoint uses: before its first
/// DMA it sends a PRI Page Request upstream (routed to the root complex and
/// the IOMMU) and it accepts PRG Responses routed down to it.
class PagingEndpoint : public TrafficEndpoint {
public:
    using TrafficEndpoint::TrafficEndpoint;
    unsigned page_requests = 0, prg_responses = 0;

protected:
    bool translate(unsigned, TlpExtension& tlp, uint64_t& addr, bool write, Duration& at) override {
        if (page_requests > 0) return true;
        MessageExtension m;
        m.code = MessageCode::page_request;
        m.page_req.requester = tlp.requester;
        m.page_req.pasid_present = tlp.pasid_present;
        m.page_req.pasid = tlp.pasid;
        m.page_req.address = addr & ~uint64_t{0xFFF};
        m.page_req.write = write;
        m.page_req.read = !write;
        m.page_req.last = true;
        tlm::tlm_generic_payload gp;
        gp.set_command(tlm::TLM_WRITE_COMMAND);
        gp.set_data_length(0);
        gp.set_extension(&m);
        at = send_upstream(gp, at);
        gp.clear_extension(&m);
        ++page_requests;
        return gp.is_response_ok();
    }
    void on_message(MessageExtension& msg, tlm::tlm_generic_payload& gp, sc_core::sc_time&) override {
        if (msg.code == MessageCode::prg_response) ++prg_responses;
        gp.set_response_status(tlm::TLM_OK_RESPONSE);
    }
};
} // namespace

TEST_CASE("endpoint hooks carry PRI page requests up to the IOMMU and PRG responses down", "[sc][pcie][fabric][pri]") {
    Bench b(switch_pair(AcsFlags::all_isolating()));
    TrafficEndpointParams p;
    fill_from_topology(b.topo, "ep0", p);
    WorkloadParams w = stream(0, 4);
    w.pasid.pasids = {9};
    p.workloads = {w};
    PagingEndpoint ep("ep0", p, &b.root);
    b.fabric.attach_endpoint("ep0", ep.upstream, ep.downstream);
    b.add("ep1", {});
    MessageExtension prg;
    prg.code = MessageCode::prg_response;
    prg.prg_resp.destination = b.topo.node(b.topo.find("ep0")).bdf;
    prg.prg_resp.pasid_present = true;
    prg.prg_resp.pasid = 9;
    b.iommu.to_send = {prg};
    sc_core::sc_start();
    CHECK(ep.page_requests == 1);
    CHECK(ep.prg_responses == 1);
    CHECK(b.iommu.sent_status == std::vector<tlm::tlm_response_status>{tlm::TLM_OK_RESPONSE});
    CHECK(b.stat("sw0.down_messages") == 1);
    CHECK(b.iommu.messages == 1);
    CHECK(b.stat("sw0.up_messages") == 1);
    CHECK(b.stat("rc0.up_messages") == 1);
    CHECK(b.stat("ep0.writes") == 4);
    CHECK(b.stat("ep0.errors") == 0);
}

namespace {
/// One device on a gen4 x16 root port reading (or writing) 4 KiB blocks in
/// 512 B reads / 256 B writes through a test IOMMU that takes `translate`
/// per request, with W tags and `credits` header credits at the root port.
struct TagBench {
    Bench b;
    std::unique_ptr<TrafficEndpoint> ep;
    TagBench(uint32_t tags, Duration translate, unsigned credits = LinkParams::kDefaultNonPostedCredits,
             uint32_t read_percent = 100)
        : b(topo(credits)) {
        b.iommu.translate_latency = translate;
        TrafficEndpointParams p;
        fill_from_topology(b.topo, "ep0", p);
        p.max_outstanding_reads = tags;
        p.workloads = {stream(read_percent, 200)};
        ep = std::make_unique<TrafficEndpoint>("ep0", p, &b.root);
        b.fabric.attach_endpoint("ep0", ep->upstream, ep->downstream);
    }
    static TopologyDesc topo(unsigned credits) {
        TopologyDesc d;
        DownstreamPortDesc rp = port("rp0", 4, 16);
        rp.link.non_posted_credits = credits;
        rp.link.posted_buffer_tlps = credits;
        d.root_complex.root_ports = {rp};
        d.endpoints = {endpoint("ep0", "rp0")};
        return d;
    }
    double link_bytes_per_ns() const { return LinkTiming(topo(1).root_complex.root_ports[0].link).bytes_per_ns(); }
};
} // namespace

namespace {
/// What a root-port credit is held for besides the translation: one root complex traversal
/// and the link hop each way.
double credit_overhead_ns() {
    return PcieRootComplexParams::kDefaultLatencyNs + 2 * LinkParams::kDefaultLatencyNs;
}
} // namespace

TEST_CASE("a device with W tags stalls once translation takes longer than W request times and its throughput follows",
          "[sc][pcie][fabric][credits]") {
    // W = 4 reads of 512 B in flight, 4 us per translation: each tag carries
    // 512 B per round trip, far below the link.
    const Duration walk = Duration::us(4);
    TagBench t(4, walk);
    sc_core::sc_start();
    const double tput = t.b.stat("ep0.throughput");
    const auto& h = std::get<stats::Histogram>(*t.b.root.find("ep0.read_latency")->stat);
    CHECK(h.mean() > walk.as_ns());
    CHECK(tput == Approx(4 * 512.0 / h.mean()).epsilon(0.02)); // Little's law with W = 4
    CHECK(tput < t.link_bytes_per_ns() / 10);
    CHECK(t.b.stat("ep0.tag_stalls") > 1500);                 // nearly every one of 1600 reads
}

TEST_CASE("with fast translation the same W tags keep the link busy", "[sc][pcie][fabric][credits]") {
    TagBench t(64, Duration::zero());
    sc_core::sc_start();
    CHECK(t.b.stat("ep0.throughput") > 0.5 * t.link_bytes_per_ns());
    CHECK(t.b.stat("rc0.rp0.up_non_posted_credit_stalls") <= 16); // of 1600 reads
}

TEST_CASE("root-port credits are held while the IOMMU translates: few credits cap a device with many tags",
          "[sc][pcie][fabric][credits]") {
    // 64 tags but only 2 non-posted credits at the root port: the port holds a
    // credit per read until the IOMMU has translated it (1 us) and forwarded
    // it to memory, and the credit returns one link hop later.
    const Duration walk = Duration::us(1);
    TagBench t(64, walk, 2);
    sc_core::sc_start();
    const double tput = t.b.stat("ep0.throughput");
    CHECK(tput < 2 * 512.0 / walk.as_ns()); // 2 credits per translation time at most
    // A credit is held for the translation plus the root complex traversal and the link hops
    // around it (the credit's return): nothing else.
    CHECK(tput > 0.98 * 2 * 512.0 / (walk.as_ns() + credit_overhead_ns()));
    CHECK(t.b.stat("rc0.rp0.up_non_posted_credit_stalls") > 1600 / 3);
    CHECK(t.b.stat("ep0.tag_stalls") == 0); // the device cannot transmit: credits, not tags, limit it
}

TEST_CASE("posted writes hold the root port's posted credits while the IOMMU translates them",
          "[sc][pcie][fabric][credits]") {
    const Duration walk = Duration::us(1);
    TagBench t(64, walk, 2, 0);
    sc_core::sc_start();
    // 256 B writes (MPS), 2 credits each held for one translation.
    const double tput = t.b.stat("ep0.throughput");
    CHECK(tput < 2 * 256.0 / walk.as_ns());
    CHECK(tput > 0.98 * 2 * 256.0 / (walk.as_ns() + credit_overhead_ns()));
    CHECK(t.b.stat("rc0.rp0.up_posted_credit_stalls") > 3200 / 3);
}

TEST_CASE("a device sets No-Snoop, PMR and ER on its configured share of requests and they reach the IOMMU",
          "[sc][pcie][fabric][attrs]") {
    TopologyDesc d;
    d.root_complex.root_ports = {port("rp0", 4, 16)};
    d.endpoints = {endpoint("ep0", "rp0")};
    Bench b(d);
    TrafficEndpointParams p;
    fill_from_topology(b.topo, "ep0", p);
    p.pasid.privileged_supported = true;
    p.pasid.execute_supported = true;
    WorkloadParams w = stream(50, 400);
    w.pasid.pasids = {5};
    w.no_snoop_percent = 50;
    w.privileged_percent = 25;
    w.execute_percent = 100; // of reads
    p.workloads = {w};
    TrafficEndpoint ep("ep0", p, &b.root);
    b.fabric.attach_endpoint("ep0", ep.upstream, ep.downstream);
    sc_core::sc_start();
    // Attributes are drawn per operation (4 KiB); every TLP of it carries them.
    const double tlps = static_cast<double>(b.iommu.seen);
    const double read_tlps = b.stat("ep0.read_tlps");
    REQUIRE(tlps > 1000);
    CHECK(b.iommu.no_snoop / tlps == Approx(0.5).margin(0.08));
    CHECK(b.iommu.privileged / tlps == Approx(0.25).margin(0.08));
    CHECK(b.iommu.execute == read_tlps); // ER on every read, never on a write
}

TEST_CASE("PMR or ER without the PASID capability's Supported bit is a configuration error", "[unit][pcie][attrs]") {
    TopologyDesc d;
    d.root_complex.root_ports = {port("rp0", 4, 16)};
    d.endpoints = {endpoint("ep0", "rp0")};
    Topology t = build_topology(d);
    TrafficEndpointParams p;
    fill_from_topology(t, "ep0", p);
    WorkloadParams w = stream(50, 10);
    w.pasid.pasids = {5};
    w.privileged_percent = 10;
    p.workloads = {w};
    stats::Group root("root");
    CHECK_THROWS_WITH(TrafficEndpoint("ep0", p, &root), Catch::Contains("Privileged Mode Supported"));
    p.workloads[0].privileged_percent = 0;
    p.workloads[0].execute_percent = 10;
    CHECK_THROWS_WITH(TrafficEndpoint("ep1", p, &root), Catch::Contains("Execute Permission Supported"));
}
