// SPDX-License-Identifier: Apache-2.0
#include "models/pcie/fabric.hpp"

#include <stdexcept>

namespace iommusim::pcie {

PcieFabric::PcieFabric(const Topology& topology, const PcieRootComplexParams& rc, const SwitchParams& sw,
                       stats::Group* parent_stats)
    : topo_(topology) {
    const TopologyNode& root = topo_.node(topo_.root());
    FabricNodeParams rp = fabric_node_params(topo_, topo_.root(), rc.latency);
    rc_ = std::make_unique<PcieRootComplex>(root.name.c_str(), rc, rp.router, rp.links, parent_stats);
    // Nodes are stored depth first, so a switch's parent exists before it.
    for (size_t i = 0; i < topo_.nodes().size(); ++i) {
        const TopologyNode& n = topo_.nodes()[i];
        if (n.kind != NodeKind::switch_upstream) continue;
        FabricNodeParams sp = fabric_node_params(topo_, static_cast<int>(i), sw.latency);
        auto s = std::make_unique<PcieSwitch>(n.name.c_str(), sw, sp.router, sp.links, parent_stats);
        int port = topo_.port_above(static_cast<int>(i));
        FabricNode& parent = node_for(topo_.fabric_node_of_port(port));
        parent.attach(static_cast<size_t>(parent.port_index(topo_.node(port).name)), *s);
        switches_.emplace_back(static_cast<int>(i), std::move(s));
    }
}

FabricNode& PcieFabric::node_for(int fabric_node) {
    if (fabric_node == topo_.root()) return *rc_;
    for (auto& [n, s] : switches_)
        if (n == fabric_node) return *s;
    throw std::logic_error("fabric node not instantiated: " + topo_.node(fabric_node).name);
}

PcieSwitch& PcieFabric::switch_named(const std::string& name) {
    for (auto& [n, s] : switches_)
        if (topo_.node(n).name == name) return *s;
    throw std::invalid_argument("no switch named " + name);
}

void PcieFabric::attach_endpoint(const std::string& endpoint, tlm::tlm_initiator_socket<>& up,
                                 tlm::tlm_target_socket<>& down) {
    std::vector<int> fns = topo_.functions_of(endpoint);
    if (fns.empty()) throw std::invalid_argument("no endpoint named " + endpoint);
    int port = topo_.port_above(fns.front());
    FabricNode& parent = node_for(topo_.fabric_node_of_port(port));
    parent.attach(static_cast<size_t>(parent.port_index(topo_.node(port).name)), up, down);
}

void PcieFabric::attach_endpoint(const std::string& endpoint, tlm::tlm_initiator_socket<>& up) {
    std::vector<int> fns = topo_.functions_of(endpoint);
    if (fns.empty()) throw std::invalid_argument("no endpoint named " + endpoint);
    int port = topo_.port_above(fns.front());
    FabricNode& parent = node_for(topo_.fabric_node_of_port(port));
    parent.attach_initiator_only(static_cast<size_t>(parent.port_index(topo_.node(port).name)), up);
}

uint64_t PcieFabric::p2p_direct_total() const {
    auto get = [](const FabricNode& n) {
        const stats::Entry* e = n.stats().find("p2p_direct");
        return e ? static_cast<uint64_t>(stats::numeric_value(*e)) : 0;
    };
    uint64_t total = get(*rc_);
    for (const auto& [n, s] : switches_) total += get(*s);
    return total;
}

void fill_from_topology(const Topology& t, const std::string& endpoint, TrafficEndpointParams& p) {
    std::vector<int> fns = t.functions_of(endpoint);
    if (fns.empty()) throw std::invalid_argument("no endpoint named " + endpoint);
    p.functions.clear();
    p.bars.clear();
    p.bar_functions.clear();
    for (int f : fns) {
        p.functions.push_back(t.node(f).bdf);
        for (const AddrRange& b : t.node(f).bars) {
            p.bars.push_back(b);
            p.bar_functions.push_back(p.functions.size() - 1);
        }
    }
    p.link = t.node(t.port_above(fns.front())).link;
}

} // namespace iommusim::pcie
