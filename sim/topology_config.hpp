// SPDX-License-Identifier: Apache-2.0
#pragma once
// The "topology" section and the endpoint keys every device shares
// (port, device, functions, acs): JSON <-> pcie::TopologyDesc.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "models/pcie/fabric_node_params.hpp"
#include "models/pcie/topology.hpp"
#include "models/pcie/topology_params.hpp"
#include "sim/config/schema.hpp"

namespace iommusim::sim {

struct ParamSection;

/// One root complex (host bridge): its root ports, the IOMMU translating its
/// requests and the PCIe segment (bus-number space) it sits in.
struct RootComplexConfig {
    pcie::RootComplexDesc desc;        ///< name, first bus, MMIO base, root ports
    pcie::PcieRootComplexParams params;
    std::string iommu;                 ///< the IOMMU translating its requests ("" = none)
    /// Root ports whose requests another IOMMU translates (Intel DRHD units per root-port
    /// group; the root complex's "iommu" covers the rest, like INCLUDE_PCI_ALL): port -> IOMMU.
    std::map<std::string, std::string> port_iommu;
    uint16_t segment = 0;              ///< PCIe segment (ACPI MCFG / _SEG)
    bool bus_given = false;            ///< "bus" was written; else after the previous root complex of the segment
};

struct TopologyConfig {
    std::vector<RootComplexConfig> root_complexes; ///< at least one
    std::vector<pcie::SwitchDesc> switches;
    std::vector<pcie::EndpointDesc> endpoints;     ///< from /devices
    pcie::SwitchParams sw;
    bool list_form = false;            ///< written as "root_complexes" (else "root_complex")

    /// The root complex whose hierarchy holds port `port` (a root port or a switch
    /// downstream port), or -1.
    int rc_of_port(const std::string& port) const;
    /// Port name -> index of the root complex whose hierarchy holds it.
    std::map<std::string, int> port_owners() const;
    /// The IOMMU translating requests that enter through `port` (a root port or a switch
    /// downstream port): its root port's own IOMMU, else its root complex's ("" = none).
    std::string iommu_of_port(const std::string& port) const;
    /// The hierarchy below root complex `i`: its switches and the endpoints below them.
    pcie::TopologyDesc desc_of(size_t i) const;
};

/// Parses /topology (root complex(es), root ports, switches). Names go into `names`.
TopologyConfig parse_topology(const json& topo, std::set<std::string>& names);
json dump_topology(const TopologyConfig& t);

/// Enumerates every root complex's hierarchy, in order; a root complex
/// without "bus" starts after the previous one of its segment. Bus ranges of
/// one segment must not overlap. Throws ConfigError (/topology...).
std::vector<pcie::Topology> build_topologies(TopologyConfig& t);

/// Keys of a device object that describe where and what it is on the fabric.
inline const std::vector<std::string> kEndpointKeys = {"name", "type", "port", "device", "functions", "acs"};
/// Parses those keys of /devices/N into an EndpointDesc (name and port included).
pcie::EndpointDesc parse_endpoint(const json& dev, const std::string& path);
void dump_endpoint(const pcie::EndpointDesc& e, json& into);

void document_topology(std::vector<ParamSection>& out);

} // namespace iommusim::sim
