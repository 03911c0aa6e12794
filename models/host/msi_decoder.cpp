// SPDX-License-Identifier: Apache-2.0
#include "models/host/msi_decoder.hpp"

#include <algorithm>
#include <cstring>

#include "models/common/sc_time.hpp"

namespace iommusim::host {

MsiDecoder::MsiDecoder(sc_core::sc_module_name name, Duration delivery_latency, stats::Group* parent)
    : sc_module(name), upstream("upstream"), mem("mem"), latency_(delivery_latency), stats_(basename(), parent),
      msis_(stats_.counter("msis", "interrupts", "MSIs delivered to the host CPU")) {
    upstream.register_b_transport(this, &MsiDecoder::b_transport);
    upstream.register_transport_dbg(this, &MsiDecoder::transport_dbg);
    upstream.register_get_direct_mem_ptr(this, &MsiDecoder::get_direct_mem_ptr);
    SC_HAS_PROCESS(MsiDecoder);
    SC_THREAD(deliver_thread);
}

MsiDecoder::Line& MsiDecoder::line(uint32_t vector) {
    Line& l = lines_[vector];
    if (!l.ev) l.ev = std::make_unique<sc_core::sc_event_queue>(sc_core::sc_gen_unique_name("msi"));
    return l;
}

const sc_core::sc_event& MsiDecoder::event(uint32_t vector) { return line(vector).ev->default_event(); }

uint64_t MsiDecoder::count(uint32_t vector) const {
    auto it = lines_.find(vector);
    return it == lines_.end() ? 0 : it->second.delivered;
}

void MsiDecoder::b_transport(tlm::tlm_generic_payload& gp, sc_core::sc_time& delay) {
    const uint64_t a = gp.get_address();
    if (a >= kMsiBase && a < kMsiBase + kMsiSize) {
        if (!gp.is_write() || gp.get_data_length() != 4) {
            gp.set_response_status(tlm::TLM_COMMAND_ERROR_RESPONSE);
            return;
        }
        uint32_t data = 0;
        std::memcpy(&data, gp.get_data_ptr(), 4);
        msis_.inc();
        pending_.push_back({from_sc(sc_core::sc_time_stamp() + delay) + latency_, data});
        arrival_.notify(delay + to_sc(latency_));
        gp.set_response_status(tlm::TLM_OK_RESPONSE);
        return;
    }
    mem->b_transport(gp, delay);
}

void MsiDecoder::deliver_thread() {
    for (;;) {
        wait(arrival_.default_event());
        const Duration now = from_sc(sc_core::sc_time_stamp());
        // Deliver, in order, every MSI due by now.
        std::stable_sort(pending_.begin(), pending_.end(), [](const Pending& x, const Pending& y) { return x.at < y.at; });
        while (!pending_.empty() && pending_.front().at <= now) {
            // Vectors nobody registered (during elaboration) have no waiter.
            if (auto it = lines_.find(pending_.front().vector); it != lines_.end()) {
                ++it->second.delivered;
                it->second.ev->notify(sc_core::SC_ZERO_TIME);
            }
            pending_.erase(pending_.begin());
        }
    }
}

unsigned MsiDecoder::transport_dbg(tlm::tlm_generic_payload& gp) {
    if (gp.get_address() >= kMsiBase && gp.get_address() < kMsiBase + kMsiSize) return 0;
    return mem->transport_dbg(gp);
}

bool MsiDecoder::get_direct_mem_ptr(tlm::tlm_generic_payload& gp, tlm::tlm_dmi& dmi) {
    const uint64_t a = gp.get_address();
    if (a >= kMsiBase && a < kMsiBase + kMsiSize) return false;
    if (!mem->get_direct_mem_ptr(gp, dmi)) return false;
    // Never hand out a pointer that covers the interrupt window.
    return dmi.get_end_address() < kMsiBase || dmi.get_start_address() >= kMsiBase + kMsiSize;
}

} // namespace iommusim::host
