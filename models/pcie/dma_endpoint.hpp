// SPDX-License-Identifier: Apache-2.0
#pragma once
// A DMA endpoint driven by a traffic generator: issues memory reads and
// writes upstream as TLPs carrying its requester ID (and PASID when enabled).
//
// Fidelity: loosely timed with temporal decoupling (tlm_quantumkeeper), no
// wait() per request. Up to `outstanding` requests overlap: the issue
// interval is max(latency / outstanding, size / rate), the usual LT
// approximation of a tag-limited DMA engine. Not modelled: ATS/ATC (see the
// ATS endpoint), PRI, completion splitting.
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <vector>

#include "models/common/stats.hpp"
#include "models/pcie/dma_endpoint_params.hpp"

namespace iommusim::pcie {

/// Plain address-stream generator for StreamWorkloadParams.
class StreamWorkload {
public:
    struct Request {
        uint64_t addr;
        uint32_t size;
        bool write;
    };
    explicit StreamWorkload(const StreamWorkloadParams& p);
    bool done() const { return p_.requests != 0 && issued_ >= p_.requests; }
    Request next();

private:
    StreamWorkloadParams p_;
    uint64_t offset_ = 0;
    uint64_t issued_ = 0;
    uint64_t rng_;
};

class DmaEndpoint : public sc_core::sc_module {
public:
    tlm_utils::simple_initiator_socket<DmaEndpoint> upstream;

    DmaEndpoint(sc_core::sc_module_name name, const DmaEndpointParams& params, stats::Group* parent_stats);
    const DmaEndpointParams& params() const { return params_; }

private:
    void run();

    DmaEndpointParams params_;
    StreamWorkload workload_;
    std::vector<unsigned char> data_;
    stats::Group stats_;
    stats::Counter& reads_;
    stats::Counter& writes_;
    stats::Counter& bytes_;
    stats::Counter& errors_;
    stats::Histogram& latency_;
};

} // namespace iommusim::pcie
