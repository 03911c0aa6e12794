// SPDX-License-Identifier: Apache-2.0
#pragma once
// Decodes the writes an IOMMU makes towards memory: dword writes into the
// x86 interrupt window (0xFEE0_0000 - 0xFEEF_FFFF, VT-d spec §5.1 / Intel SDM
// "Message Address Register Format") are MSIs and are delivered to the host
// CPU after the interrupt latency; everything else passes through to memory
// (including DMI, except over the window).
//
// Fidelity: one interrupt line per MSI data value (the vector); delivery
// wakes every host thread waiting on that vector. Not modelled: interrupt
// remapping, APIC routing, priorities, coalescing.
#include <cstdint>
#include <map>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "models/common/stats.hpp"
#include "models/common/time.hpp"

namespace iommusim::host {

class MsiDecoder : public sc_core::sc_module {
public:
    static constexpr uint64_t kMsiBase = 0xFEE00000;
    static constexpr uint64_t kMsiSize = 0x100000;

    tlm_utils::simple_target_socket<MsiDecoder> upstream; ///< from the IOMMU's memory port
    tlm_utils::simple_initiator_socket<MsiDecoder> mem;   ///< to memory

    MsiDecoder(sc_core::sc_module_name name, Duration delivery_latency, stats::Group* parent_stats);

    /// Fires when an MSI with data `vector` has been delivered. The first call
    /// for a vector registers it and must happen during elaboration.
    const sc_core::sc_event& event(uint32_t vector);
    /// MSIs of `vector` delivered so far (a waiter compares before and after
    /// its checks, so an interrupt that arrives meanwhile is not lost).
    uint64_t count(uint32_t vector) const;

private:
    struct Line {
        std::unique_ptr<sc_core::sc_event_queue> ev;
        uint64_t delivered = 0;
    };
    Line& line(uint32_t vector);
    void b_transport(tlm::tlm_generic_payload& gp, sc_core::sc_time& delay);
    unsigned transport_dbg(tlm::tlm_generic_payload& gp);
    bool get_direct_mem_ptr(tlm::tlm_generic_payload& gp, tlm::tlm_dmi& dmi);
    void deliver_thread();

    Duration latency_;
    std::map<uint32_t, Line> lines_;
    struct Pending {
        Duration at;
        uint32_t vector;
    };
    std::vector<Pending> pending_; ///< delivered in time order by deliver_thread
    sc_core::sc_event_queue arrival_;
    stats::Group stats_;
    stats::Counter& msis_;
};

} // namespace iommusim::host
