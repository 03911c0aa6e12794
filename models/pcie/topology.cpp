// SPDX-License-Identifier: Apache-2.0
#include "models/pcie/topology.hpp"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <map>
#include <numeric>
#include <stdexcept>

namespace iommusim::pcie {

namespace {

[[noreturn]] void fail(const std::string& msg) { throw std::invalid_argument(msg); }

std::string hex(uint64_t v) {
    char b[32];
    std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
    return b;
}

std::string size_str(uint64_t v) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (v >= 1024 && v % 1024 == 0 && u < 4) {
        v /= 1024;
        ++u;
    }
    return std::to_string(v) + units[u];
}

struct Builder {
    const TopologyDesc& d;
    Topology& t;
    std::vector<TopologyNode>& nodes;
    std::map<std::string, int> switch_at_port;    // port name -> switch index
    std::map<std::string, int> endpoint_at_port;  // port name -> endpoint index
    std::vector<bool> switch_seen, endpoint_seen;
    std::vector<AddrRange> fixed_bars;
    unsigned next_bus = 0;
    uint64_t mmio_cursor = 0;

    int add(TopologyNode n) {
        nodes.push_back(std::move(n));
        return static_cast<int>(nodes.size() - 1);
    }
    void link_child(int parent, int child) {
        nodes[static_cast<size_t>(child)].parent = parent;
        nodes[static_cast<size_t>(parent)].children.push_back(child);
    }

    AddrRange place(const std::string& who, uint64_t size, const std::optional<uint64_t>& base) {
        if (size < 4096 || !std::has_single_bit(size))
            fail(who + ": BAR size must be a power of two >= 4 KiB, got " + std::to_string(size));
        if (base) {
            if (*base % size != 0) fail(who + ": BAR base " + hex(*base) + " is not aligned to its size");
            return AddrRange{*base, size};
        }
        for (;;) {
            uint64_t b = (mmio_cursor + size - 1) & ~(size - 1);
            AddrRange r{b, size};
            auto hit = std::find_if(fixed_bars.begin(), fixed_bars.end(), [&](const AddrRange& f) { return f.overlaps(r); });
            if (hit == fixed_bars.end()) {
                mmio_cursor = b + size;
                return r;
            }
            mmio_cursor = hit->base + hit->size;
        }
    }

    unsigned take_bus(const std::string& who, const std::optional<uint8_t>& fixed) {
        unsigned bus = next_bus;
        if (fixed) {
            if (*fixed < next_bus)
                fail(who + ": secondary_bus " + std::to_string(*fixed) +
                     " conflicts with depth-first enumeration (next free bus is " + std::to_string(next_bus) + ")");
            bus = *fixed;
        }
        if (bus > 255) fail(who + ": ran out of bus numbers (bus " + std::to_string(bus) + ")");
        next_bus = bus + 1;
        return bus;
    }

    void add_endpoint(int port, int ei, uint8_t bus) {
        const EndpointDesc& e = d.endpoints[static_cast<size_t>(ei)];
        endpoint_seen[static_cast<size_t>(ei)] = true;
        if (e.device > 31) fail("endpoint " + e.name + ": device number must be 0..31");
        if (e.functions.empty()) fail("endpoint " + e.name + ": needs at least one function");
        std::vector<uint8_t> fns;
        unsigned max_bus = bus;
        for (const FunctionDesc& f : e.functions) {
            if (f.function > 7) fail("endpoint " + e.name + ": function number must be 0..7");
            if (std::find(fns.begin(), fns.end(), f.function) != fns.end())
                fail("endpoint " + e.name + ": function " + std::to_string(f.function) + " given twice");
            fns.push_back(f.function);
        }
        for (const FunctionDesc& f : e.functions) {
            TopologyNode pf;
            pf.kind = NodeKind::function;
            pf.name = f.function == 0 ? e.name : e.name + ".f" + std::to_string(f.function);
            pf.bdf = Bdf(bus, e.device, f.function);
            pf.endpoint = ei;
            for (const BarDesc& b : f.bars) pf.bars.push_back(place(pf.name, b.size_bytes, b.base));
            int pfi = add(pf);
            link_child(port, pfi);
            if (!f.sriov || f.sriov->num_vfs == 0) continue;
            const SriovDesc& s = *f.sriov;
            if (s.num_vfs > 1 && s.vf_stride == 0) fail(pf.name + ": VF stride 0 with more than one VF");
            AddrRange vf_bars{};
            if (s.vf_bar_bytes) {
                // VF BARs are one contiguous aperture of NumVFs * size (§9.3.3.14).
                if (s.vf_bar_bytes < 4096 || !std::has_single_bit(s.vf_bar_bytes))
                    fail(pf.name + ": vf_bar_bytes must be a power of two >= 4 KiB");
                uint64_t total = std::bit_ceil(s.vf_bar_bytes * s.num_vfs);
                vf_bars = place(pf.name + " VF BARs", total, std::nullopt);
            }
            for (unsigned n = 0; n < s.num_vfs; ++n) {
                uint32_t rid = pf.bdf.raw + s.first_vf_offset + n * s.vf_stride;
                if (rid > 0xFFFF) fail(pf.name + ": VF " + std::to_string(n) + " RID beyond ff:1f.7");
                TopologyNode vf;
                vf.kind = NodeKind::function;
                vf.name = e.name + ".vf" + std::to_string(n);
                vf.bdf = Bdf(static_cast<uint16_t>(rid));
                vf.endpoint = ei;
                vf.is_vf = true;
                vf.pf = pfi;
                vf.vf_index = static_cast<int>(n);
                if (s.vf_bar_bytes) vf.bars.push_back(AddrRange{vf_bars.base + n * s.vf_bar_bytes, s.vf_bar_bytes});
                max_bus = std::max<unsigned>(max_bus, vf.bdf.bus());
                link_child(port, add(vf));
            }
        }
        next_bus = std::max(next_bus, max_bus + 1);
        if (next_bus > 256) fail("endpoint " + e.name + ": VF RIDs run past bus 255");
    }

    void visit_port(int port, const DownstreamPortDesc& pd) {
        try {
            validate(pd.link);
        } catch (const std::invalid_argument& ex) {
            fail("port " + pd.name + ": link " + ex.what());
        }
        unsigned sec = take_bus("port " + pd.name, pd.secondary_bus);
        auto& pn = nodes[static_cast<size_t>(port)];
        pn.secondary = static_cast<uint8_t>(sec);
        if (auto it = switch_at_port.find(pd.name); it != switch_at_port.end()) {
            const SwitchDesc& s = d.switches[static_cast<size_t>(it->second)];
            switch_seen[static_cast<size_t>(it->second)] = true;
            TopologyNode up;
            up.kind = NodeKind::switch_upstream;
            up.name = s.name;
            up.bdf = Bdf(static_cast<uint8_t>(sec), 0, 0);
            int upi = add(up);
            link_child(port, upi);
            unsigned internal = take_bus("switch " + s.name, std::nullopt);
            nodes[static_cast<size_t>(upi)].secondary = static_cast<uint8_t>(internal);
            if (s.downstream_ports.empty()) fail("switch " + s.name + ": needs at least one downstream port");
            if (s.downstream_ports.size() > 32) fail("switch " + s.name + ": at most 32 downstream ports");
            for (size_t k = 0; k < s.downstream_ports.size(); ++k) {
                const DownstreamPortDesc& dp = s.downstream_ports[k];
                TopologyNode dn;
                dn.kind = NodeKind::switch_downstream;
                dn.name = dp.name;
                dn.bdf = Bdf(static_cast<uint8_t>(internal), dp.device.value_or(static_cast<uint8_t>(k)), 0);
                dn.link = dp.link;
                dn.acs = dp.acs;
                int dni = add(dn);
                link_child(upi, dni);
                visit_port(dni, dp);
            }
            nodes[static_cast<size_t>(upi)].subordinate = static_cast<uint8_t>(next_bus - 1);
        } else if (auto et = endpoint_at_port.find(pd.name); et != endpoint_at_port.end()) {
            add_endpoint(port, et->second, static_cast<uint8_t>(sec));
        }
        nodes[static_cast<size_t>(port)].subordinate = static_cast<uint8_t>(next_bus - 1);
    }

    void run() {
        std::map<std::string, int> names;
        auto claim = [&](const std::string& n, const std::string& what) {
            if (n.empty()) fail(what + ": name must not be empty");
            if (!names.emplace(n, 0).second) fail(what + " " + n + ": name used twice");
        };
        const RootComplexDesc& rc = d.root_complex;
        claim(rc.name, "root complex");
        std::map<std::string, bool> ports;
        for (const auto& p : rc.root_ports) claim(p.name, "root port"), ports[p.name] = true;
        for (const auto& s : d.switches) {
            claim(s.name, "switch");
            for (const auto& p : s.downstream_ports) claim(p.name, "switch port"), ports[p.name] = true;
        }
        for (const auto& e : d.endpoints) claim(e.name, "endpoint");
        auto attach = [&](const std::string& what, const std::string& who, const std::string& port) {
            if (!ports.count(port)) fail(what + " " + who + ": no port named \"" + port + "\"");
            if (switch_at_port.count(port) || endpoint_at_port.count(port))
                fail(what + " " + who + ": port " + port + " already has a device (PCIe links are point to point)");
        };
        for (size_t i = 0; i < d.switches.size(); ++i) {
            attach("switch", d.switches[i].name, d.switches[i].port);
            switch_at_port[d.switches[i].port] = static_cast<int>(i);
        }
        for (size_t i = 0; i < d.endpoints.size(); ++i) {
            attach("endpoint", d.endpoints[i].name, d.endpoints[i].port);
            endpoint_at_port[d.endpoints[i].port] = static_cast<int>(i);
            for (const auto& f : d.endpoints[i].functions)
                for (const auto& b : f.bars)
                    if (b.base) fixed_bars.push_back(AddrRange{*b.base, b.size_bytes});
        }
        switch_seen.assign(d.switches.size(), false);
        endpoint_seen.assign(d.endpoints.size(), false);
        mmio_cursor = rc.mmio_base;

        TopologyNode root;
        root.kind = NodeKind::root_complex;
        root.name = rc.name;
        root.bdf = Bdf(rc.bus, 0, 0);
        add(root);
        next_bus = rc.bus + 1u;
        if (rc.root_ports.size() > 31) fail("root complex " + rc.name + ": at most 31 root ports");
        for (size_t i = 0; i < rc.root_ports.size(); ++i) {
            const DownstreamPortDesc& rp = rc.root_ports[i];
            TopologyNode rn;
            rn.kind = NodeKind::root_port;
            rn.name = rp.name;
            rn.bdf = Bdf(rc.bus, rp.device.value_or(static_cast<uint8_t>(i + 1)), 0);
            rn.link = rp.link;
            rn.acs = rp.acs;
            int rni = add(rn);
            link_child(0, rni);
            visit_port(rni, rp);
        }
        nodes[0].secondary = rc.bus;
        nodes[0].subordinate = static_cast<uint8_t>(next_bus - 1);
        for (size_t i = 0; i < d.switches.size(); ++i)
            if (!switch_seen[i]) fail("switch " + d.switches[i].name + ": not reachable from the root complex (cycle?)");
        // Every RID and BAR must be unique.
        std::map<uint16_t, std::string> rids;
        std::vector<std::pair<AddrRange, std::string>> bars;
        for (const auto& n : nodes) {
            if (n.kind == NodeKind::root_complex) continue;
            if (n.kind == NodeKind::function || n.kind == NodeKind::root_port || n.kind == NodeKind::switch_downstream ||
                n.kind == NodeKind::switch_upstream) {
                auto [it, fresh] = rids.emplace(n.bdf.raw, n.name);
                if (!fresh) fail(n.name + ": requester ID " + n.bdf.str() + " already used by " + it->second);
            }
            for (const auto& b : n.bars) {
                for (const auto& [o, on] : bars)
                    if (o.overlaps(b)) fail(n.name + ": BAR " + hex(b.base) + " overlaps a BAR of " + on);
                bars.emplace_back(b, n.name);
            }
        }
    }
};

int find_root(std::vector<int>& p, int x) {
    while (p[static_cast<size_t>(x)] != x) x = p[static_cast<size_t>(x)] = p[static_cast<size_t>(p[static_cast<size_t>(x)])];
    return x;
}

} // namespace

int Topology::find(const std::string& name) const {
    for (size_t i = 0; i < nodes_.size(); ++i)
        if (nodes_[i].name == name) return static_cast<int>(i);
    return -1;
}

std::vector<int> Topology::functions() const {
    std::vector<int> out;
    for (size_t i = 0; i < nodes_.size(); ++i)
        if (nodes_[i].kind == NodeKind::function) out.push_back(static_cast<int>(i));
    return out;
}

std::vector<int> Topology::functions_of(const std::string& endpoint) const {
    std::vector<int> out;
    auto it = std::find(endpoint_names_.begin(), endpoint_names_.end(), endpoint);
    if (it == endpoint_names_.end()) return out;
    int ei = static_cast<int>(it - endpoint_names_.begin());
    for (int f : functions())
        if (node(f).endpoint == ei) out.push_back(f);
    std::stable_sort(out.begin(), out.end(), [&](int a, int b) { return node(a).bdf.raw < node(b).bdf.raw; });
    return out;
}

void Topology::collect_bars(int n, std::vector<AddrRange>& out) const {
    const TopologyNode& x = node(n);
    out.insert(out.end(), x.bars.begin(), x.bars.end());
    for (int c : x.children) collect_bars(c, out);
}

Router Topology::router_for(int fabric_node) const {
    std::vector<PortMap> ports;
    for (int p : node(fabric_node).children) {
        const TopologyNode& pn = node(p);
        PortMap m;
        m.name = pn.name;
        m.secondary = pn.secondary;
        m.subordinate = pn.subordinate;
        m.acs = pn.acs;
        for (int c : pn.children) collect_bars(c, m.windows);
        ports.push_back(std::move(m));
    }
    return Router(std::move(ports));
}

int Topology::fabric_node_of_port(int port) const { return node(port).parent; }
int Topology::port_above(int n) const { return node(n).parent; }

bool Topology::reaches_directly(int a, int b) const {
    if (node(a).endpoint == node(b).endpoint) return false; // device-internal rule in derive_groups
    // Ancestors of b, so we can tell under which port of a fabric node b sits.
    std::vector<int> b_chain;
    for (int x = b; x >= 0; x = node(x).parent) b_chain.push_back(x);
    for (int p = port_above(a); p > 0; p = port_above(fabric_node_of_port(p))) {
        int f = fabric_node_of_port(p);
        auto it = std::find(b_chain.begin(), b_chain.end(), f);
        if (it == b_chain.end()) {
            if (f == root()) return false;
            continue;
        }
        // b lies under port *(it - 1) of f; a's request turns peer-to-peer here
        // unless a's ingress port isolates it (then it goes up to the IOMMU).
        int q = *(it - 1);
        if (q == p) return false;
        return !node(p).acs.isolating();
    }
    return false;
}

void Topology::derive_groups(const TopologyDesc& d) {
    // Linear in nodes. At the lowest fabric node F above two functions of
    // different endpoints, the pair reaches each other directly unless both
    // ingress ports isolate (reaches_directly). So if F has two or more ports
    // with functions below and one of them does not isolate, every function
    // below F shares one group (any two are joined through that port); F's
    // descendants then need no look of their own.
    std::vector<int> fns = functions();
    std::vector<int> parent(nodes_.size());
    std::iota(parent.begin(), parent.end(), 0);
    auto unite = [&](int a, int b) { parent[static_cast<size_t>(find_root(parent, a))] = find_root(parent, b); };
    std::vector<uint32_t> below(nodes_.size(), 0); // functions in each subtree
    for (size_t i = nodes_.size(); i-- > 0;) {     // a child's index is above its parent's
        below[i] += nodes_[i].kind == NodeKind::function;
        if (nodes_[i].parent >= 0) below[static_cast<size_t>(nodes_[i].parent)] += below[i];
    }
    auto unite_below = [&](int top) {
        int first = -1;
        std::vector<int> stack{top};
        while (!stack.empty()) {
            const int n = stack.back();
            stack.pop_back();
            if (node(n).kind == NodeKind::function) {
                if (first < 0) first = n;
                else unite(n, first);
            }
            for (int c : node(n).children) stack.push_back(c);
        }
    };
    std::vector<int> todo{root()};
    while (!todo.empty()) {
        const int n = todo.back();
        todo.pop_back();
        const TopologyNode& x = node(n);
        if (x.kind == NodeKind::root_complex || x.kind == NodeKind::switch_upstream) {
            int ports_with_functions = 0;
            bool open = false;
            for (int p : x.children) {
                if (!below[static_cast<size_t>(p)]) continue;
                ++ports_with_functions;
                open |= !node(p).acs.isolating();
            }
            if (ports_with_functions >= 2 && open) {
                unite_below(n);
                continue;
            }
        }
        for (int c : x.children) todo.push_back(c);
    }
    // PFs of a multi-function device reach each other internally unless the
    // device's ACS has RR and CR (Linux multifunction rule); VFs never do.
    std::vector<int> first_pf(d.endpoints.size(), -1);
    for (int f : fns) {
        const TopologyNode& a = node(f);
        const AcsFlags& acs = d.endpoints[static_cast<size_t>(a.endpoint)].acs;
        if (a.is_vf || (acs.request_redirect && acs.completion_redirect)) continue;
        int& pf0 = first_pf[static_cast<size_t>(a.endpoint)];
        if (pf0 < 0) pf0 = f;
        else unite(f, pf0);
    }
    std::map<int, int> ids;
    for (int f : fns) {
        int r = find_root(parent, f);
        auto [it, fresh] = ids.emplace(r, static_cast<int>(ids.size()));
        nodes_[static_cast<size_t>(f)].iommu_group = it->second;
    }
    groups_ = static_cast<int>(ids.size());
}

Topology build_topology(const TopologyDesc& d) {
    Topology t;
    Builder b{d, t, t.nodes_, {}, {}, {}, {}, {}, 0, 0};
    b.run();
    for (const auto& e : d.endpoints) t.endpoint_names_.push_back(e.name);
    t.derive_groups(d);
    return t;
}

std::string Topology::render() const {
    std::string out;
    auto link_str = [](const LinkParams& l) {
        return "gen" + std::to_string(l.generation) + " x" + std::to_string(l.width);
    };
    auto bus_range = [](const TopologyNode& n) {
        char b[32];
        std::snprintf(b, sizeof b, "[bus %02x-%02x]", n.secondary, n.subordinate);
        return std::string(b);
    };
    auto line = [&](int i) {
        const TopologyNode& n = node(i);
        switch (n.kind) {
        case NodeKind::root_complex: {
            char b[24];
            std::snprintf(b, sizeof b, "[bus %02x-%02x]", n.secondary, n.subordinate);
            return n.name + " root complex " + b;
        }
        case NodeKind::root_port:
        case NodeKind::switch_downstream:
            return n.name + " " + n.bdf.str() + (n.kind == NodeKind::root_port ? " root port " : " downstream port ") +
                   bus_range(n) + " link " + link_str(n.link) + " ACS " + n.acs.str();
        case NodeKind::switch_upstream:
            return n.name + " " + n.bdf.str() + " switch upstream port " + bus_range(n);
        case NodeKind::function: {
            std::string s = n.name + " " + n.bdf.str() + (n.is_vf ? " VF" : " PF");
            if (n.is_vf) s += " of " + node(n.pf).name;
            for (const auto& b : n.bars) s += " BAR " + hex(b.base) + "+" + size_str(b.size);
            return s + " iommu_group " + std::to_string(n.iommu_group);
        }
        }
        return n.name;
    };
    auto rec = [&](auto&& self, int i, const std::string& prefix, bool last, bool top) -> void {
        out += top ? "" : prefix + (last ? "`-- " : "|-- ");
        out += line(i) + "\n";
        std::string next = top ? "" : prefix + (last ? "    " : "|   ");
        const auto& ch = node(i).children;
        for (size_t k = 0; k < ch.size(); ++k) self(self, ch[k], next, k + 1 == ch.size(), false);
    };
    rec(rec, root(), "", true, true);
    out += "iommu groups: " + std::to_string(groups_) + "\n";
    return out;
}

} // namespace iommusim::pcie
