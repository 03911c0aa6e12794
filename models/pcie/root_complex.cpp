// SPDX-License-Identifier: Apache-2.0
#include "models/pcie/root_complex.hpp"

#include "models/common/sc_time.hpp"

namespace iommusim::pcie {

RootComplex::RootComplex(sc_core::sc_module_name name, const RootComplexParams& params, stats::Group* parent_stats)
    : sc_module(name), ports("ports"), host("host"), params_(params), latency_(to_sc(params.latency)),
      stats_(basename(), parent_stats),
      requests_(stats_.counter("requests", "requests", "upstream requests forwarded to the host")),
      bytes_(stats_.counter("bytes", "bytes", "payload bytes of forwarded requests")) {
    ports.register_b_transport(this, &RootComplex::b_transport);
    ports.register_transport_dbg(this, &RootComplex::transport_dbg);
}

void RootComplex::b_transport(int, tlm::tlm_generic_payload& gp, sc_core::sc_time& delay) {
    requests_.inc();
    bytes_.inc(gp.get_data_length());
    delay += latency_;
    host->b_transport(gp, delay);
    delay += latency_;
}

unsigned RootComplex::transport_dbg(int, tlm::tlm_generic_payload& gp) { return host->transport_dbg(gp); }

} // namespace iommusim::pcie
