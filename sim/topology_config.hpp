// SPDX-License-Identifier: Apache-2.0
#pragma once
// The "topology" section and the endpoint keys every device shares
// (port, device, functions, acs): JSON <-> pcie::TopologyDesc.
#include <set>
#include <string>
#include <vector>

#include "models/pcie/fabric_node_params.hpp"
#include "models/pcie/topology_params.hpp"
#include "sim/config/schema.hpp"

namespace iommusim::sim {

struct ParamSection;

struct TopologyConfig {
    pcie::TopologyDesc desc;           ///< endpoints come from /devices
    pcie::PcieRootComplexParams rc;
    pcie::SwitchParams sw;
    std::string iommu;                 ///< the IOMMU translating the root complex's requests ("" = none)
};

/// Parses /topology (root complex, root ports, switches). Names go into `names`.
TopologyConfig parse_topology(const json& topo, std::set<std::string>& names);
json dump_topology(const TopologyConfig& t);

/// Keys of a device object that describe where and what it is on the fabric.
inline const std::vector<std::string> kEndpointKeys = {"name", "type", "port", "device", "functions", "acs"};
/// Parses those keys of /devices/N into an EndpointDesc (name and port included).
pcie::EndpointDesc parse_endpoint(const json& dev, const std::string& path);
void dump_endpoint(const pcie::EndpointDesc& e, json& into);

void document_topology(std::vector<ParamSection>& out);

} // namespace iommusim::sim
