// SPDX-License-Identifier: Apache-2.0
#pragma once
// PCIe hierarchy as plain data: enumeration, BAR placement, SR-IOV VF RIDs,
// IOMMU groups and a text rendering. Kernel-free; the platform builder
// instantiates switches / root complex / endpoints from it.
//
// Fidelity
//  Modelled:
//   - depth-first bus enumeration as system firmware / Linux does it
//     (secondary = next free bus, subordinate = last bus used below), with
//     per-port fixed secondary bus numbers that must not go backwards;
//   - switch = upstream port on the parent's secondary bus (device 0) + an
//     internal bus carrying the downstream ports (PCIe Base §1.3.3);
//   - SR-IOV VF RIDs = PF RID + First VF Offset + n * VF Stride (§9.3.3.9-10),
//     which may spill onto following bus numbers (the port's subordinate bus
//     covers them); VF BARs contiguous from the VF BAR base (§9.3.3.14);
//   - IOMMU groups: two functions share a group when a request from one can
//     reach the other without passing the root complex's IOMMU. At the
//     lowest fabric node above both, the request turns peer-to-peer unless
//     the ingress port isolates it; like Linux (pci_device_group) a port
//     isolates only with SV, RR, CR and UF all enabled. PFs of one
//     multi-function device share a group unless the device's ACS isolates
//     (Linux get_pci_function_alias_group); VFs are single functions.
//  Not modelled: ARI, bus-number gaps reserved for hotplug, DMA alias quirks,
//   PCI(-X) bridges, I/O BARs.
#include <string>
#include <vector>

#include "models/pcie/routing.hpp"
#include "models/pcie/topology_params.hpp"

namespace iommusim::pcie {

enum class NodeKind : uint8_t { root_complex, root_port, switch_upstream, switch_downstream, function };

struct TopologyNode {
    NodeKind kind = NodeKind::function;
    std::string name;
    Bdf bdf;
    int parent = -1;
    std::vector<int> children;
    // Ports (root ports, switch downstream ports): bus range and the link below.
    uint8_t secondary = 0, subordinate = 0;
    LinkParams link;
    AcsFlags acs;
    // Functions.
    int endpoint = -1;            ///< index into TopologyDesc::endpoints
    bool is_vf = false;
    int pf = -1;                  ///< node index of the PF (VFs)
    int vf_index = -1;
    std::vector<AddrRange> bars;
    int iommu_group = -1;
};

class Topology {
public:
    const std::vector<TopologyNode>& nodes() const { return nodes_; }
    const TopologyNode& node(int i) const { return nodes_.at(static_cast<size_t>(i)); }
    int root() const { return 0; }
    /// Node index by name, -1 if none.
    int find(const std::string& name) const;
    /// Function nodes of an endpoint (PFs then their VFs, in RID order).
    std::vector<int> functions_of(const std::string& endpoint) const;
    /// All function nodes in depth-first order.
    std::vector<int> functions() const;
    int group_count() const { return groups_; }

    /// Routing table of a fabric node (the root complex or a switch upstream
    /// port node): one PortMap per downstream port, windows = all BARs below.
    Router router_for(int fabric_node) const;
    /// The fabric node (root complex or switch) that a port belongs to.
    int fabric_node_of_port(int port) const;
    /// The downstream port an endpoint function or switch hangs from.
    int port_above(int node) const;
    /// Whether a request from function a reaches function b without the IOMMU.
    bool reaches_directly(int a, int b) const;

    /// Tree with BDFs, bus ranges, link speed/width, ACS and IOMMU groups.
    std::string render() const;

private:
    friend Topology build_topology(const TopologyDesc& d);
    void collect_bars(int n, std::vector<AddrRange>& out) const;
    void derive_groups(const TopologyDesc& d);
    std::vector<TopologyNode> nodes_;
    std::vector<std::string> endpoint_names_;   ///< TopologyDesc::endpoints order
    int groups_ = 0;
};

/// Validates, enumerates buses, places BARs, derives IOMMU groups. Throws
/// std::invalid_argument with a message naming the element at fault.
Topology build_topology(const TopologyDesc& d);

} // namespace iommusim::pcie
