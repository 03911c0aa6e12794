// SPDX-License-Identifier: Apache-2.0
#include "sim/topology_config.hpp"

#include <algorithm>
#include <map>

#include "sim/platform_config.hpp"

namespace iommusim::sim {

namespace {

const Schema<pcie::LinkParams>& link_schema() {
    static const auto s = [] {
        using P = pcie::LinkParams;
        Schema<P> sc;
        sc.integer("generation", &P::generation, "", "PCIe generation 1-6 (raw rate and encoding); default 4", 1, 6)
            .integer("width", &P::width, "lanes", "link width x1-x16; default 16", 1, 16)
            .number("latency_ns", &P::latency_ns, "ns", "one-way per-hop latency (PHY + data link + wire); default 40 (estimate)")
            .integer("max_payload_bytes", &P::max_payload_bytes, "bytes", "Max_Payload_Size; default 256 (Linux pcie_bus_perf)", 128, 4096)
            .integer("max_read_request_bytes", &P::max_read_request_bytes, "bytes", "Max_Read_Request_Size; default 512 (PCIe Base 7.5.3.4)", 128, 4096)
            .integer("rcb_bytes", &P::rcb_bytes, "bytes", "read completion boundary; default 64", 64, 128)
            .integer("posted_buffer_tlps", &P::posted_buffer_tlps, "TLPs", "posted header credits of the receiving port, held until its next stage accepted the TLP; default 32 (estimate: no published figure)", 1, 4096)
            .integer("non_posted_credits", &P::non_posted_credits, "TLPs", "non-posted header credits of the port above, held until the IOMMU translated and forwarded the request; default 32 (estimate: no published figure)", 1, 4096);
        return sc;
    }();
    return s;
}

pcie::AcsFlags parse_acs(const json& j, const std::string& path) {
    pcie::AcsFlags a;
    for (size_t i = 0; i < read::array(j, path).size(); ++i) {
        const std::string f = read::string(j[i], path + "/" + std::to_string(i));
        if (f == "SV") a.source_validation = true;
        else if (f == "TB") a.translation_blocking = true;
        else if (f == "RR") a.request_redirect = true;
        else if (f == "CR") a.completion_redirect = true;
        else if (f == "UF") a.upstream_forwarding = true;
        else if (f == "DT") a.direct_translated = true;
        else throw ConfigError(path + "/" + std::to_string(i), "expected an ACS control: SV, TB, RR, CR, UF or DT, got \"" + f + "\"");
    }
    return a;
}

json dump_acs(const pcie::AcsFlags& a) {
    json j = json::array();
    if (a.source_validation) j.push_back("SV");
    if (a.translation_blocking) j.push_back("TB");
    if (a.request_redirect) j.push_back("RR");
    if (a.completion_redirect) j.push_back("CR");
    if (a.upstream_forwarding) j.push_back("UF");
    if (a.direct_translated) j.push_back("DT");
    return j;
}


/// `port_iommu` non-null: root ports, which may name the IOMMU translating them.
std::vector<pcie::DownstreamPortDesc> parse_ports(const json& arr, const std::string& path, std::set<std::string>& names,
                                                  std::map<std::string, std::string>* port_iommu = nullptr) {
    std::vector<pcie::DownstreamPortDesc> out;
    for (size_t i = 0; i < read::array(arr, path).size(); ++i) {
        const std::string p = path + "/" + std::to_string(i);
        const json& o = read::object(arr[i], p);
        if (port_iommu) check_keys(o, p, {"name", "link", "acs", "secondary_bus", "device", "iommu"});
        else check_keys(o, p, {"name", "link", "acs", "secondary_bus", "device"});
        pcie::DownstreamPortDesc d;
        d.name = component_name(o, p, names);
        if (port_iommu && o.contains("iommu")) (*port_iommu)[d.name] = read::string(o["iommu"], p + "/iommu");
        if (o.contains("link")) link_schema().parse(o["link"], p + "/link", d.link);
        if (o.contains("acs")) d.acs = parse_acs(o["acs"], p + "/acs");
        if (o.contains("secondary_bus")) d.secondary_bus = static_cast<uint8_t>(read::u64(o["secondary_bus"], p + "/secondary_bus", 1, 255));
        if (o.contains("device")) d.device = static_cast<uint8_t>(read::u64(o["device"], p + "/device", 0, 31));
        out.push_back(std::move(d));
    }
    return out;
}

json dump_ports(const std::vector<pcie::DownstreamPortDesc>& ports,
                const std::map<std::string, std::string>* port_iommu = nullptr) {
    json arr = json::array();
    for (const auto& d : ports) {
        json o = json::object();
        o["name"] = d.name;
        if (port_iommu)
            if (auto it = port_iommu->find(d.name); it != port_iommu->end()) o["iommu"] = it->second;
        o["link"] = link_schema().dump(d.link);
        o["acs"] = dump_acs(d.acs);
        if (d.secondary_bus) o["secondary_bus"] = *d.secondary_bus;
        if (d.device) o["device"] = *d.device;
        arr.push_back(std::move(o));
    }
    return arr;
}

} // namespace

namespace {

RootComplexConfig parse_root_complex(const json& rc, const std::string& rpath, std::set<std::string>& names) {
    RootComplexConfig c;
    read::object(rc, rpath);
    check_keys(rc, rpath, {"name", "iommu", "latency_ns", "mmio_base", "root_ports", "segment", "bus", "canwbs"});
    c.desc.name = component_name(rc, rpath, names);
    if (rc.contains("iommu")) c.iommu = read::string(rc["iommu"], rpath + "/iommu");
    if (rc.contains("latency_ns")) c.params.latency = Duration::ns(read::number(rc["latency_ns"], rpath + "/latency_ns", 0, 1e6));
    if (rc.contains("canwbs")) c.params.canwbs = read::boolean(rc["canwbs"], rpath + "/canwbs");
    if (rc.contains("mmio_base")) c.desc.mmio_base = read::u64(rc["mmio_base"], rpath + "/mmio_base", 0, uint64_t{1} << 52);
    if (rc.contains("segment")) c.segment = static_cast<uint16_t>(read::u64(rc["segment"], rpath + "/segment", 0, 0xFFFF));
    if (rc.contains("bus")) {
        c.desc.bus = static_cast<uint8_t>(read::u64(rc["bus"], rpath + "/bus", 0, 255));
        c.bus_given = true;
    }
    if (!rc.contains("root_ports")) throw ConfigError(rpath, "missing key \"root_ports\"");
    c.desc.root_ports = parse_ports(rc["root_ports"], rpath + "/root_ports", names, &c.port_iommu);
    if (c.desc.root_ports.empty()) throw ConfigError(rpath + "/root_ports", "expected at least one root port");
    return c;
}

json dump_root_complex(const RootComplexConfig& c, bool full) {
    json rc = json::object();
    rc["name"] = c.desc.name;
    if (!c.iommu.empty()) rc["iommu"] = c.iommu;
    rc["latency_ns"] = c.params.latency.as_ns();
    rc["mmio_base"] = c.desc.mmio_base;
    if (full || c.segment) rc["segment"] = c.segment;
    if (c.bus_given) rc["bus"] = c.desc.bus;
    if (full || c.params.canwbs) rc["canwbs"] = c.params.canwbs;
    rc["root_ports"] = dump_ports(c.desc.root_ports, &c.port_iommu);
    return rc;
}

} // namespace

TopologyConfig parse_topology(const json& topo, std::set<std::string>& names) {
    TopologyConfig t;
    read::object(topo, "/topology");
    check_keys(topo, "/topology", {"root_complex", "root_complexes", "switches", "switch_latency_ns"});
    if (topo.contains("root_complex") == topo.contains("root_complexes"))
        throw ConfigError("/topology", "expected exactly one of \"root_complex\" (one host bridge) or \"root_complexes\" (several)");
    if (topo.contains("root_complex")) {
        t.root_complexes.push_back(parse_root_complex(topo["root_complex"], "/topology/root_complex", names));
    } else {
        t.list_form = true;
        const json& arr = read::array(topo["root_complexes"], "/topology/root_complexes");
        if (arr.empty()) throw ConfigError("/topology/root_complexes", "expected at least one root complex");
        for (size_t i = 0; i < arr.size(); ++i)
            t.root_complexes.push_back(parse_root_complex(arr[i], "/topology/root_complexes/" + std::to_string(i), names));
    }
    if (topo.contains("switch_latency_ns"))
        t.sw.latency = Duration::ns(read::number(topo["switch_latency_ns"], "/topology/switch_latency_ns", 0, 1e6));
    if (topo.contains("switches")) {
        const json& arr = read::array(topo["switches"], "/topology/switches");
        for (size_t i = 0; i < arr.size(); ++i) {
            const std::string p = "/topology/switches/" + std::to_string(i);
            const json& o = read::object(arr[i], p);
            check_keys(o, p, {"name", "port", "downstream_ports"});
            pcie::SwitchDesc s;
            s.name = component_name(o, p, names);
            if (!o.contains("port")) throw ConfigError(p, "missing key \"port\" (the port the switch's upstream port links to)");
            s.port = read::string(o["port"], p + "/port");
            if (!o.contains("downstream_ports")) throw ConfigError(p, "missing key \"downstream_ports\"");
            s.downstream_ports = parse_ports(o["downstream_ports"], p + "/downstream_ports", names);
            t.switches.push_back(std::move(s));
        }
    }
    return t;
}

json dump_topology(const TopologyConfig& t) {
    json j = json::object();
    if (t.list_form) {
        json arr = json::array();
        for (const auto& rc : t.root_complexes) arr.push_back(dump_root_complex(rc, true));
        j["root_complexes"] = std::move(arr);
    } else {
        j["root_complex"] = dump_root_complex(t.root_complexes.front(), false);
    }
    j["switch_latency_ns"] = t.sw.latency.as_ns();
    json sws = json::array();
    for (const auto& s : t.switches) {
        json o = json::object();
        o["name"] = s.name;
        o["port"] = s.port;
        o["downstream_ports"] = dump_ports(s.downstream_ports);
        sws.push_back(std::move(o));
    }
    j["switches"] = std::move(sws);
    return j;
}

std::map<std::string, int> TopologyConfig::port_owners() const {
    std::map<std::string, int> owner;
    for (size_t i = 0; i < root_complexes.size(); ++i)
        for (const auto& rp : root_complexes[i].desc.root_ports) owner.emplace(rp.name, static_cast<int>(i));
    // A switch's downstream ports belong to the root complex of the port it hangs from.
    for (bool changed = true; changed;) {
        changed = false;
        for (const auto& s : switches) {
            auto up = owner.find(s.port);
            if (up == owner.end()) continue;
            for (const auto& dp : s.downstream_ports) changed |= owner.emplace(dp.name, up->second).second;
        }
    }
    return owner;
}

std::string TopologyConfig::iommu_of_port(const std::string& port) const {
    // Up from the port to its root port: a switch's downstream ports hang from the port its
    // upstream port links to.
    std::string p = port;
    for (size_t hops = 0; hops <= switches.size(); ++hops) {
        for (const auto& rc : root_complexes)
            for (const auto& rp : rc.desc.root_ports)
                if (rp.name == p) {
                    auto it = rc.port_iommu.find(p);
                    return it != rc.port_iommu.end() ? it->second : rc.iommu;
                }
        bool up = false;
        for (const auto& s : switches)
            for (const auto& dp : s.downstream_ports)
                if (dp.name == p && !up) p = s.port, up = true;
        if (!up) break;
    }
    return {};
}

int TopologyConfig::rc_of_port(const std::string& port) const {
    const auto owner = port_owners();
    auto it = owner.find(port);
    return it == owner.end() ? -1 : it->second;
}

pcie::TopologyDesc TopologyConfig::desc_of(size_t i) const {
    pcie::TopologyDesc d;
    d.root_complex = root_complexes.at(i).desc;
    const bool only = root_complexes.size() == 1; // unknown ports are reported by build_topology
    const auto owner = port_owners();
    auto mine = [&](const std::string& port) {
        auto it = owner.find(port);
        return only || (it != owner.end() && it->second == static_cast<int>(i));
    };
    for (const auto& s : switches)
        if (mine(s.port)) d.switches.push_back(s);
    for (const auto& e : endpoints)
        if (mine(e.port)) d.endpoints.push_back(e);
    return d;
}

std::vector<pcie::Topology> build_topologies(TopologyConfig& t) {
    const bool several = t.root_complexes.size() > 1;
    if (several) { // with one root complex, build_topology names an unknown port itself
        const auto owner = t.port_owners();
        for (size_t i = 0; i < t.switches.size(); ++i)
            if (!owner.count(t.switches[i].port))
                throw ConfigError("/topology/switches/" + std::to_string(i) + "/port",
                                  "no root port or switch downstream port named \"" + t.switches[i].port + "\"");
        for (const auto& e : t.endpoints)
            if (!owner.count(e.port))
                throw ConfigError("/devices", "device \"" + e.name + "\": no port named \"" + e.port + "\"");
    }
    std::vector<pcie::Topology> out;
    for (size_t i = 0; i < t.root_complexes.size(); ++i) {
        RootComplexConfig& rc = t.root_complexes[i];
        const std::string path = several ? "/topology/root_complexes/" + std::to_string(i) : "/topology";
        // Bus ranges of earlier root complexes in the same segment.
        unsigned next_free = 0;
        for (size_t j = 0; j < i; ++j)
            if (t.root_complexes[j].segment == rc.segment) {
                const auto& r = out[j].node(out[j].root());
                if (rc.bus_given && rc.desc.bus <= r.subordinate && rc.desc.bus >= r.secondary)
                    throw ConfigError(path + "/bus", "bus " + std::to_string(rc.desc.bus) + " is inside root complex " +
                                                         t.root_complexes[j].desc.name + "'s bus range in segment " +
                                                         std::to_string(rc.segment));
                next_free = std::max<unsigned>(next_free, r.subordinate + 1u);
            }
        if (!rc.bus_given) {
            if (next_free > 255)
                throw ConfigError(path, "no bus number left in segment " + std::to_string(rc.segment) +
                                            ": put the root complex in another segment");
            rc.desc.bus = static_cast<uint8_t>(next_free);
        }
        try {
            out.push_back(pcie::build_topology(t.desc_of(i)));
        } catch (const std::invalid_argument& e) {
            throw ConfigError(path, e.what());
        }
        // A later root complex's range must not swallow an earlier one either.
        const auto& mine = out.back().node(out.back().root());
        for (size_t j = 0; j < i; ++j) {
            if (t.root_complexes[j].segment != rc.segment) continue;
            const auto& r = out[j].node(out[j].root());
            if (mine.secondary <= r.subordinate && r.secondary <= mine.subordinate)
                throw ConfigError(path, "buses " + std::to_string(mine.secondary) + "-" + std::to_string(mine.subordinate) +
                                            " overlap root complex " + t.root_complexes[j].desc.name + "'s in segment " +
                                            std::to_string(rc.segment));
        }
    }
    return out;
}

pcie::EndpointDesc parse_endpoint(const json& dev, const std::string& path) {
    pcie::EndpointDesc e;
    e.name = read::string(dev["name"], path + "/name");
    if (!dev.contains("port")) throw ConfigError(path, "missing key \"port\" (the port the device sits below)");
    e.port = read::string(dev["port"], path + "/port");
    if (dev.contains("device")) e.device = static_cast<uint8_t>(read::u64(dev["device"], path + "/device", 0, 31));
    if (dev.contains("acs")) e.acs = parse_acs(dev["acs"], path + "/acs");
    if (dev.contains("functions")) {
        e.functions.clear();
        const json& arr = read::array(dev["functions"], path + "/functions");
        if (arr.empty()) throw ConfigError(path + "/functions", "expected at least one function");
        for (size_t i = 0; i < arr.size(); ++i) {
            const std::string p = path + "/functions/" + std::to_string(i);
            const json& o = read::object(arr[i], p);
            check_keys(o, p, {"function", "bars", "sriov"});
            pcie::FunctionDesc f;
            if (o.contains("function")) f.function = static_cast<uint8_t>(read::u64(o["function"], p + "/function", 0, 7));
            if (o.contains("bars")) {
                const json& bars = read::array(o["bars"], p + "/bars");
                for (size_t b = 0; b < bars.size(); ++b) {
                    const std::string bp = p + "/bars/" + std::to_string(b);
                    check_keys(read::object(bars[b], bp), bp, {"size_bytes", "base"});
                    pcie::BarDesc bd;
                    if (!bars[b].contains("size_bytes")) throw ConfigError(bp, "missing key \"size_bytes\"");
                    bd.size_bytes = read::size(bars[b]["size_bytes"], bp + "/size_bytes", 4096, uint64_t{1} << 40);
                    if (bars[b].contains("base")) bd.base = read::u64(bars[b]["base"], bp + "/base", 0, uint64_t{1} << 52);
                    f.bars.push_back(bd);
                }
            }
            if (o.contains("sriov")) {
                const std::string sp = p + "/sriov";
                const json& s = read::object(o["sriov"], sp);
                check_keys(s, sp, {"num_vfs", "first_vf_offset", "vf_stride", "vf_bar_bytes"});
                pcie::SriovDesc sd;
                if (s.contains("num_vfs")) sd.num_vfs = static_cast<uint16_t>(read::u64(s["num_vfs"], sp + "/num_vfs", 0, 255));
                if (s.contains("first_vf_offset")) sd.first_vf_offset = static_cast<uint16_t>(read::u64(s["first_vf_offset"], sp + "/first_vf_offset", 1, 0xFFFF));
                if (s.contains("vf_stride")) sd.vf_stride = static_cast<uint16_t>(read::u64(s["vf_stride"], sp + "/vf_stride", 1, 0xFFFF));
                if (s.contains("vf_bar_bytes")) sd.vf_bar_bytes = read::size(s["vf_bar_bytes"], sp + "/vf_bar_bytes", 0, uint64_t{1} << 40);
                f.sriov = sd;
            }
            e.functions.push_back(std::move(f));
        }
    }
    return e;
}

void dump_endpoint(const pcie::EndpointDesc& e, json& o) {
    o["port"] = e.port;
    o["device"] = e.device;
    json fs = json::array();
    for (const auto& f : e.functions) {
        json fo = json::object();
        fo["function"] = f.function;
        json bars = json::array();
        for (const auto& b : f.bars) {
            json bo = json::object();
            bo["size_bytes"] = read::format_size(b.size_bytes);
            if (b.base) bo["base"] = *b.base;
            bars.push_back(std::move(bo));
        }
        fo["bars"] = std::move(bars);
        if (f.sriov) {
            json s = json::object();
            s["num_vfs"] = f.sriov->num_vfs;
            s["first_vf_offset"] = f.sriov->first_vf_offset;
            s["vf_stride"] = f.sriov->vf_stride;
            s["vf_bar_bytes"] = f.sriov->vf_bar_bytes;
            fo["sriov"] = std::move(s);
        }
        fs.push_back(std::move(fo));
    }
    o["functions"] = std::move(fs);
    o["acs"] = dump_acs(e.acs);
}

void document_topology(std::vector<ParamSection>& out) {
    ParamSection rc{"root_complex", "root complex (/topology/root_complex)", {
        {"name", "string", "", "(required)", "component name (no default: every component is named in the file)"},
        {"iommu", "string", "", "(none)", "name of the IOMMU in /iommus that translates this root complex's requests (root ports may name their own)"},
        {"latency_ns", "number", "ns", "100", "root complex traversal each way; default 100 (calibration.md \"root complex traversal, one way\" ~100 ns [estimate, weak: subtraction from a 407-424 ns NIC BAR read])"},
        {"mmio_base", "integer", "address", "0x4000000000", "where auto-placed BARs start"},
        {"root_ports", "array", "", "(required)", "root ports (see [port])"},
        {"segment", "integer [0, 65535]", "", "0", "PCIe segment (bus-number space; ACPI _SEG) of the root complex"},
        {"bus", "integer [0, 255]", "", "(after the previous root complex of the segment, else 0)", "first bus number of the root complex"},
        {"canwbs", "boolean", "", "false", "IORT root complex memory access flag CANWBS: accesses of the devices below stay coherent whatever their attributes (No-Snoop requests reach memory snooped); an SMMUv3 domain enforces cache coherency when every device attached to it has it (Linux arm_smmu_enforce_cache_coherency). Firmware's word: no default to derive"},
        {"root_complexes (in /topology)", "array", "", "(instead of root_complex)", "several root complexes, each an object like this one, each with its own IOMMU"},
    }};
    out.push_back(std::move(rc));
    ParamSection port{"port", "a root port or switch downstream port (/topology/.../root_ports/N, downstream_ports/N)", {
        {"name", "string", "", "(required)", "unique port name; devices and switches name the port they sit on"},
        {"acs", "array", "", "[]", "ACS controls enabled: any of SV, TB, RR, CR, UF, DT"},
        {"secondary_bus", "integer [1, 255]", "", "(depth-first)", "fixed secondary bus number"},
        {"device", "integer [0, 31]", "", "(index)", "device number of the port on its parent bus"},
        {"iommu", "string", "", "(the root complex's)", "root ports only: the IOMMU in /iommus translating requests below this port (one DRHD per root-port group)"},
    }};
    link_schema().document(pcie::LinkParams{}, "link", port.params);
    out.push_back(std::move(port));
    out.push_back({"switch", "a PCIe switch (/topology/switches/N)", {
        {"name", "string", "", "(required)", "component name"},
        {"port", "string", "", "(required)", "the port its upstream port links to"},
        {"downstream_ports", "array", "", "(required)", "downstream ports (see [port])"},
        {"switch_latency_ns (in /topology)", "number", "ns", "105", "port-to-port switch latency, cut-through; default 105 (calibration.md \"switch port to port, cut-through\": Broadcom PEX88000 Gen4 x16; <= 150 ns Gen3)"},
    }});
    out.push_back({"device", "keys common to every device (/devices/N)", {
        {"name", "string", "", "(required)", "component name, unique in the platform"},
        {"type", "enum", "", "(required)", "device type (see device:TYPE sections)"},
        {"port", "string", "", "(required)", "port the device sits below"},
        {"device", "integer [0, 31]", "", "0", "device number on the port's secondary bus"},
        {"functions", "array", "", "[{function 0}]", "functions: {function, bars: [{size_bytes, base}], sriov: {num_vfs, first_vf_offset (default 1), vf_stride (default 1), vf_bar_bytes}}"},
        {"acs", "array", "", "[]", "ACS of a multi-function device (P2P between its functions)"},
    }});
}

} // namespace iommusim::sim
