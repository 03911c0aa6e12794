// SPDX-License-Identifier: Apache-2.0
#include "models/mem/memory.hpp"

#include "models/common/admission.hpp"
#include "models/common/sc_time.hpp"

namespace iommusim::mem {

using sc_core::sc_time;

Memory::Memory(sc_core::sc_module_name name, const MemoryParams& params, stats::Group* parent_stats)
    : sc_module(name), target("target"), params_(params), store_(params.size_bytes),
      load_(params.bandwidth_bytes_per_ns > 0 ? params.load_window : Duration::zero(), params.bandwidth_bytes_per_ns),
      stats_(basename(), parent_stats),
      reads_(stats_.counter("reads", "requests", "read requests served")),
      writes_(stats_.counter("writes", "requests", "write requests served")),
      bytes_read_(stats_.counter("bytes_read", "bytes", "bytes returned by reads")),
      bytes_written_(stats_.counter("bytes_written", "bytes", "bytes stored by writes")),
      errors_(stats_.counter("address_errors", "requests", "requests outside the memory range")),
      queue_delay_(stats_.histogram("queue_delay", "ns", "time a request waited for the busy data port")),
      load_delay_(stats_.histogram("load_delay", "ns",
                                   "latency a read gained from the controller's utilisation (loaded-latency curve)")) {
    port_.preallocate(); // no allocation per request
    target.register_b_transport(this, &Memory::b_transport);
    target.register_transport_dbg(this, &Memory::transport_dbg);
    target.register_get_direct_mem_ptr(this, &Memory::get_direct_mem_ptr);
    stats_.value("size", "bytes", "configured memory size").set(static_cast<double>(params.size_bytes));
    stats_.derived("touched_pages", "pages", "4 KiB pages backed by host memory",
                   [this] { return static_cast<double>(store_.touched_pages()); });
}

void Memory::b_transport(tlm::tlm_generic_payload& gp, sc_time& delay) {
    const uint64_t addr = gp.get_address();
    const unsigned len = gp.get_data_length();
    if (gp.get_byte_enable_ptr() || gp.get_streaming_width() < len) {
        gp.set_response_status(tlm::TLM_BYTE_ENABLE_ERROR_RESPONSE);
        return;
    }
    if (!store_.contains(addr, len)) {
        errors_.inc();
        gp.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
        return;
    }
    const bool is_write = gp.is_write();
    if (is_write) {
        store_.write(addr, gp.get_data_ptr(), len);
        writes_.inc();
        bytes_written_.inc(len);
    } else if (gp.is_read()) {
        store_.read(addr, gp.get_data_ptr(), len);
        reads_.inc();
        bytes_read_.inc(len);
    }
    // Loosely timed: the request arrives at local time now+delay and holds
    // the data port for its transfer time.
    const Duration arrival = kernel_now() + from_sc(delay);
    const Duration hold = transfer_time(len, params_.bandwidth_bytes_per_ns);
    const Duration start = port_.reserve(arrival, hold);
    queue_delay_.record((start - arrival).as_ns());
    // Memory took the request when its data port started on it: until then it
    // waits in the root port, whose receive buffer slot (credit) it holds.
    if (auto* adm = gp.get_extension<AdmissionExtension>()) {
        adm->at = start;
        adm->valid = true;
    }
    Duration latency = params_.write_latency;
    load_.record(arrival, len);
    if (!is_write) {
        // Loaded latency: the idle read latency times the curve's factor at the current utilisation.
        const double f = load_factor(load_.utilisation(arrival));
        const auto extra = Duration::ps(static_cast<uint64_t>(static_cast<double>(params_.read_latency.as_ps()) * (f - 1.0)));
        load_delay_.record(extra.as_ns());
        latency = params_.read_latency + extra;
    }
    const Duration done = start + hold + latency;
    delay += to_sc(done - arrival);
    gp.set_dmi_allowed(true);
    gp.set_response_status(tlm::TLM_OK_RESPONSE);
}

unsigned Memory::transport_dbg(tlm::tlm_generic_payload& gp) {
    const uint64_t addr = gp.get_address();
    const unsigned len = gp.get_data_length();
    if (!store_.contains(addr, len)) return 0;
    if (gp.is_write()) store_.write(addr, gp.get_data_ptr(), len);
    else store_.read(addr, gp.get_data_ptr(), len);
    gp.set_response_status(tlm::TLM_OK_RESPONSE);
    return len;
}

bool Memory::get_direct_mem_ptr(tlm::tlm_generic_payload& gp, tlm::tlm_dmi& dmi) {
    const uint64_t addr = gp.get_address();
    if (!store_.contains(addr, 1)) return false;
    const uint64_t base = addr & ~(SparseMemory::kPageSize - 1);
    dmi.set_dmi_ptr(store_.page_ptr(base));
    dmi.set_start_address(base);
    dmi.set_end_address(base + SparseMemory::kPageSize - 1);
    dmi.allow_read_write();
    dmi.set_read_latency(to_sc(params_.read_latency));
    dmi.set_write_latency(to_sc(params_.write_latency));
    return true;
}

} // namespace iommusim::mem
