// SPDX-License-Identifier: Apache-2.0
#pragma once
// Instantiates and wires the fabric of a Topology: the root complex, every
// switch (nested to any depth), and the link owned by each downstream port.
// Endpoints are created by the caller (any module with an upstream
// initiator and a downstream target socket) and attached by name, so ATS or
// other device models plug in the same way as TrafficEndpoint.
#include <memory>
#include <string>
#include <vector>

#include "models/common/stats.hpp"
#include "models/pcie/fabric_node.hpp"
#include "models/pcie/topology.hpp"
#include "models/pcie/traffic_endpoint_params.hpp"

namespace iommusim::pcie {

class PcieFabric {
public:
    PcieFabric(const Topology& topology, const PcieRootComplexParams& rc, const SwitchParams& sw,
               stats::Group* parent_stats);

    /// The root complex: bind `upstream_out` to the IOMMU (or memory); host
    /// traffic (MMIO, ATS invalidations, PRG responses) enters `upstream_in`.
    PcieRootComplex& root_complex() { return *rc_; }
    /// A switch by name.
    PcieSwitch& switch_named(const std::string& name);
    /// Binds an endpoint's sockets below the port it sits on.
    void attach_endpoint(const std::string& endpoint, tlm::tlm_initiator_socket<>& up, tlm::tlm_target_socket<>& down);
    /// For initiator-only devices (e.g. the foundation DmaEndpoint).
    void attach_endpoint(const std::string& endpoint, tlm::tlm_initiator_socket<>& up);
    /// Peer-to-peer requests that bypassed the IOMMU, over every node.
    uint64_t p2p_direct_total() const;
    const Topology& topology() const { return topo_; }

private:
    FabricNode& node_for(int fabric_node);
    Topology topo_;
    std::unique_ptr<PcieRootComplex> rc_;
    std::vector<std::pair<int, std::unique_ptr<PcieSwitch>>> switches_;  ///< (topology node, module)
};

/// RIDs, BARs and link of an endpoint as the topology assigned them: the
/// fields of TrafficEndpointParams that come from the topology.
void fill_from_topology(const Topology& t, const std::string& endpoint, TrafficEndpointParams& p);

} // namespace iommusim::pcie
