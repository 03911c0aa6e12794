// SPDX-License-Identifier: Apache-2.0
#pragma once
// PCIe fabric nodes: a switch and the root complex are the same mechanism (a
// set of downstream ports, each owning the link below it, plus a routing
// table) and differ only in what sits above: the switch's upstream port links
// to its parent's downstream port; the root complex hands upstream traffic to
// the IOMMU (or memory) and takes host traffic (MMIO, ATS invalidate
// requests, PRG responses from the IOMMU) on `upstream_in`.
//
// Fidelity
//  Modelled: address routing of memory requests (BAR windows), ID routing of
//   messages, ACS peer-to-peer redirect / source validation / translation
//   blocking / upstream forwarding (routing.hpp), link serialization and
//   latency on every downstream link in both directions (link.hpp), split
//   completions returning on the request's path, header credits of each
//   port's receive buffer (link.hpp): a request holds its credit in the port
//   until the next stage accepted it (the IOMMU translated and forwarded it,
//   or the port above granted a credit), a traversal latency per node.
//  Stats count peer-to-peer requests that bypassed the IOMMU
//   (`p2p_direct`), ACS redirects, ACS violations and unsupported requests.
//  Not modelled: ordering rules between posted/non-posted (each request is
//   independent), virtual channels / TC mapping, data credits, a buffer
//   shared between ports, multicast, error messages (an
//   unroutable or blocked request just gets an error response).
#include <memory>
#include <string>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>
#include <vector>

#include "models/common/admission.hpp"
#include "models/common/stats.hpp"
#include "models/pcie/fabric_node_params.hpp"
#include "models/pcie/link.hpp"
#include "models/pcie/tlp.hpp"

namespace iommusim::pcie {

class Topology;

class FabricNode : public sc_core::sc_module {
public:
    using TargetSocket = tlm_utils::simple_target_socket_tagged<FabricNode>;
    using InitiatorSocket = tlm_utils::simple_initiator_socket_tagged<FabricNode>;

    /// Towards the parent (switch) or the IOMMU / memory (root complex).
    tlm_utils::simple_initiator_socket<FabricNode> upstream_out;
    /// From the parent (switch) or the host side (root complex).
    tlm_utils::simple_target_socket<FabricNode> upstream_in;

    FabricNode(sc_core::sc_module_name name, const FabricNodeParams& params, stats::Group* parent_stats);

    size_t port_count() const { return links_.size(); }
    /// Binds downstream port `port` to a child: the child's upstream initiator
    /// into our port target, our port initiator into the child's target.
    void attach(size_t port, tlm::tlm_initiator_socket<>& child_up, tlm::tlm_target_socket<>& child_down);
    void attach(size_t port, FabricNode& child_switch);
    /// For a device that only initiates (no BARs, no messages): requests
    /// routed down to it answer Unsupported Request.
    void attach_initiator_only(size_t port, tlm::tlm_initiator_socket<>& child_up);
    int port_index(const std::string& name) const;
    const Link& link(size_t port) const { return *links_.at(port); }
    const stats::Group& stats() const { return stats_; }

protected:
    void before_end_of_elaboration() override;

private:
    void from_port(int port, tlm::tlm_generic_payload& gp, sc_core::sc_time& delay);
    void from_above(tlm::tlm_generic_payload& gp, sc_core::sc_time& delay);
    void terminate(tlm::tlm_generic_payload& gp, sc_core::sc_time& delay);
    /// Sends gp down port j at absolute time `at`; returns the absolute time
    /// the caller sees as completion (non-posted) or release (posted). `msg`, `tlp`: its
    /// extensions, looked up once by the caller.
    Duration forward_down(size_t j, tlm::tlm_generic_payload& gp, Duration at, const MessageExtension* msg,
                          const TlpExtension* tlp);
    Duration forward_up(tlm::tlm_generic_payload& gp, Duration at);

    FabricNodeParams params_;
    stats::Group stats_;
    std::vector<std::unique_ptr<Link>> links_;
    std::vector<std::unique_ptr<TargetSocket>> port_in_;
    std::vector<std::unique_ptr<InitiatorSocket>> port_out_;
    std::vector<bool> up_bound_;     ///< port target socket bound by a child
    std::vector<bool> down_bound_;   ///< port initiator socket bound to a child
    /// Answer UR on ports with no device (created at end of elaboration:
    /// an unbound target socket is an elaboration error).
    std::vector<std::unique_ptr<tlm_utils::simple_target_socket<FabricNode>>> terminators_;
    /// Idle initiators bound to the target sockets of empty ports (a TLM
    /// target socket must be bound).
    std::vector<std::unique_ptr<tlm_utils::simple_initiator_socket<FabricNode>>> idle_;
    stats::Counter& up_requests_;
    stats::Counter& down_requests_;
    stats::Counter& up_messages_;
    stats::Counter& down_messages_;
    stats::Counter& p2p_direct_;
    stats::Counter& p2p_redirected_;
    stats::Counter& acs_violations_;
    stats::Counter& unsupported_;
    stats::Counter* no_snoop_coherent_ = nullptr; ///< with coherent_no_snoop only
    AdmissionExtension admission_;   ///< attached to requests that enter the fabric here
};

/// A switch: upstream port + downstream ports.
class PcieSwitch : public FabricNode {
public:
    PcieSwitch(sc_core::sc_module_name name, const SwitchParams& p, Router router, std::vector<LinkParams> links,
               stats::Group* parent_stats);
};

/// The root complex: root ports below, IOMMU or memory above (`upstream_out`),
/// host traffic in (`upstream_in`).
class PcieRootComplex : public FabricNode {
public:
    PcieRootComplex(sc_core::sc_module_name name, const PcieRootComplexParams& p, Router router,
                    std::vector<LinkParams> links, stats::Group* parent_stats);
};

/// Routing table and link parameters of a topology's fabric node (the root
/// complex node or a switch upstream-port node).
FabricNodeParams fabric_node_params(const Topology& t, int fabric_node, Duration latency);

} // namespace iommusim::pcie
