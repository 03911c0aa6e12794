// SPDX-License-Identifier: Apache-2.0
#include "models/pcie/dma_endpoint.hpp"

#include <algorithm>
#include <tlm_utils/tlm_quantumkeeper.h>

#include "models/common/sc_time.hpp"

namespace iommusim::pcie {

StreamWorkload::StreamWorkload(const StreamWorkloadParams& p) : p_(p), rng_(p.seed * 0x9E3779B97F4A7C15ULL + 1) {}

StreamWorkload::Request StreamWorkload::next() {
    // splitmix64: tiny, seeded, identical on every platform.
    rng_ += 0x9E3779B97F4A7C15ULL;
    uint64_t z = rng_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    Request r{p_.buffer_base + offset_, static_cast<uint32_t>(p_.request_bytes), z % 100 >= p_.read_percent};
    offset_ += p_.request_bytes;
    if (offset_ + p_.request_bytes > p_.buffer_bytes) offset_ = 0;
    ++issued_;
    return r;
}

DmaEndpoint::DmaEndpoint(sc_core::sc_module_name name, const DmaEndpointParams& params, stats::Group* parent_stats)
    : sc_module(name), upstream("upstream"), params_(params), workload_(params.workload),
      data_(params.workload.request_bytes), stats_(basename(), parent_stats),
      reads_(stats_.counter("reads", "requests", "memory read requests completed")),
      writes_(stats_.counter("writes", "requests", "memory write requests completed")),
      bytes_(stats_.counter("bytes", "bytes", "payload bytes moved")),
      errors_(stats_.counter("errors", "requests", "requests completed with an error response")),
      latency_(stats_.histogram("latency", "ns", "request latency, issue to completion")) {
    stats_.derived("throughput", "GB/s", "payload bytes per simulated ns", [this] {
        double ns = sc_core::sc_time_stamp().to_seconds() * 1e9;
        return ns > 0 ? static_cast<double>(bytes_.value()) / ns : 0.0;
    });
    SC_HAS_PROCESS(DmaEndpoint);
    SC_THREAD(run);
}

void DmaEndpoint::run() {
    tlm_utils::tlm_quantumkeeper qk;
    qk.set_global_quantum(to_sc(params_.quantum));
    qk.reset();
    tlm::tlm_generic_payload gp;
    TlpExtension tlp;
    tlp.requester = params_.requester;
    tlp.pasid_present = params_.pasid_enabled;
    tlp.pasid = params_.pasid;
    gp.set_extension(&tlp);
    const uint32_t outstanding = std::max<uint32_t>(1, params_.outstanding);
    while (!workload_.done()) {
        const auto req = workload_.next();
        gp.set_command(req.write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND);
        gp.set_address(req.addr);
        gp.set_data_ptr(data_.data());
        gp.set_data_length(req.size);
        gp.set_streaming_width(req.size);
        gp.set_byte_enable_ptr(nullptr);
        gp.set_dmi_allowed(false);
        gp.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
        // The request leaves at the thread's local time (temporal decoupling),
        // so shared resources downstream see when it really arrives.
        const sc_core::sc_time start = qk.get_local_time();
        sc_core::sc_time t = start;
        upstream->b_transport(gp, t);
        const sc_core::sc_time delay = t - start;
        if (gp.is_response_ok()) {
            (req.write ? writes_ : reads_).inc();
            bytes_.inc(req.size);
        } else {
            errors_.inc();
        }
        latency_.record(delay.to_seconds() * 1e9);
        sc_core::sc_time interval = delay / outstanding;
        if (params_.rate_gbps > 0)
            interval = std::max(interval, to_sc(Duration::ns(static_cast<double>(req.size) / params_.rate_gbps)));
        qk.inc(interval);
        if (qk.need_sync()) qk.sync();
    }
    gp.clear_extension(&tlp);
}

} // namespace iommusim::pcie
