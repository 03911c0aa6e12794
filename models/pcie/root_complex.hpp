// SPDX-License-Identifier: Apache-2.0
#pragma once
// Root complex: accepts upstream memory requests from root ports and hands
// them to the host side (the IOMMU when one is configured, else memory).
//
// Fidelity: a fixed traversal latency each way; requests keep their
// TlpExtension so the IOMMU sees requester ID and PASID. Not modelled here:
// routing between root ports (see the PCIe fabric models), ordering rules.
#include <systemc>
#include <tlm>
#include <tlm_utils/multi_passthrough_target_socket.h>
#include <tlm_utils/simple_initiator_socket.h>

#include "models/common/stats.hpp"
#include "models/pcie/root_complex_params.hpp"

namespace iommusim::pcie {

class RootComplex : public sc_core::sc_module {
public:
    /// Root ports: bound by the endpoints (or links) below.
    tlm_utils::multi_passthrough_target_socket<RootComplex> ports;
    /// Towards the host: the IOMMU's upstream target, or memory.
    tlm_utils::simple_initiator_socket<RootComplex> host;

    RootComplex(sc_core::sc_module_name name, const RootComplexParams& params, stats::Group* parent_stats);

private:
    void b_transport(int port, tlm::tlm_generic_payload& gp, sc_core::sc_time& delay);
    unsigned transport_dbg(int port, tlm::tlm_generic_payload& gp);

    RootComplexParams params_;
    sc_core::sc_time latency_;
    stats::Group stats_;
    stats::Counter& requests_;
    stats::Counter& bytes_;
};

} // namespace iommusim::pcie
