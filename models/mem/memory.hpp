// SPDX-License-Identifier: Apache-2.0
#pragma once
// Physical memory as a TLM-2.0 target.
//
// Fidelity: read/write latency plus serialization at a configured
// bandwidth on one shared data port (BusyUntil reservation, so concurrent
// requesters queue without a context switch); a read's latency grows with the
// controller's utilisation over the last load_window along calibration.md's
// loaded-latency curve (LoadMeter, loaded_latency.hpp). Not modelled: banks,
// row buffers, refresh, NUMA distance (use a larger latency). Out-of-range
// accesses answer TLM_ADDRESS_ERROR_RESPONSE. DMI is granted one 4 KiB page
// at a time (the sparse store is page-granular) with the latencies annotated.
#include <memory>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_target_socket.h>

#include "models/common/stats.hpp"
#include "models/mem/loaded_latency.hpp"
#include "models/mem/memory_params.hpp"
#include "models/mem/sparse_memory.hpp"

namespace iommusim::mem {

class Memory : public sc_core::sc_module {
public:
    tlm_utils::simple_target_socket<Memory> target;

    Memory(sc_core::sc_module_name name, const MemoryParams& params, stats::Group* parent_stats);

    /// Untimed backdoor for loaders, driver models and tests.
    SparseMemory& store() { return store_; }
    const MemoryParams& params() const { return params_; }

private:
    void b_transport(tlm::tlm_generic_payload& gp, sc_core::sc_time& delay);
    unsigned transport_dbg(tlm::tlm_generic_payload& gp);
    bool get_direct_mem_ptr(tlm::tlm_generic_payload& gp, tlm::tlm_dmi& dmi);

    MemoryParams params_;
    SparseMemory store_;
    BusyUntil port_;
    LoadMeter load_;
    stats::Group stats_;
    stats::Counter& reads_;
    stats::Counter& writes_;
    stats::Counter& bytes_read_;
    stats::Counter& bytes_written_;
    stats::Counter& errors_;
    stats::Histogram& queue_delay_;
    stats::Histogram& load_delay_;
};

} // namespace iommusim::mem
