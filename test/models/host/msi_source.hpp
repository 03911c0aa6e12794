// SPDX-License-Identifier: Apache-2.0
#pragma once
// A stand-in for an IOMMU's memory port in host tests: sends MSIs (4-byte writes
// into the x86 interrupt window) into a MsiDecoder, and answers the decoder's
// pass-through memory port (never used by these tests).
#include <cstdint>
#include <systemc>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "models/host/msi_decoder.hpp"

namespace hosttest {

struct MsiSource : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<MsiSource> out{"out"};
    tlm_utils::simple_target_socket<MsiSource> mem{"mem"};
    explicit MsiSource(sc_core::sc_module_name n) : sc_module(n) { mem.register_b_transport(this, &MsiSource::sink); }
    /// Binds this source to `msi` (both directions).
    void connect(iommusim::host::MsiDecoder& msi) {
        out.bind(msi.upstream);
        msi.mem.bind(mem);
    }
    void sink(tlm::tlm_generic_payload& gp, sc_core::sc_time&) { gp.set_response_status(tlm::TLM_OK_RESPONSE); }
    /// Writes `vector` as MSI data to the interrupt window (SC_THREAD or elaboration-free context).
    void send(uint32_t vector) {
        tlm::tlm_generic_payload gp;
        gp.set_command(tlm::TLM_WRITE_COMMAND);
        gp.set_address(iommusim::host::MsiDecoder::kMsiBase);
        gp.set_data_ptr(reinterpret_cast<unsigned char*>(&vector));
        gp.set_data_length(4);
        gp.set_streaming_width(4);
        sc_core::sc_time d = sc_core::SC_ZERO_TIME;
        out->b_transport(gp, d);
    }
};

} // namespace hosttest
