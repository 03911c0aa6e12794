// SPDX-License-Identifier: Apache-2.0
#include "models/pcie/nic_endpoint.hpp"

#include <algorithm>

#include "models/common/sc_time.hpp"

namespace iommusim::pcie {

NicEndpoint::NicEndpoint(sc_core::sc_module_name name, const NicParams& p, stats::Group* parent)
    : sc_module(name), p_(p), stats_(basename(), parent), ats_("fn0", p.ats, &stats_),
      scratch_(std::max<uint32_t>(p.packet_bytes, 4096)),
      packets_(stats_.counter("rx_packets", "packets", "packets written into host buffers")),
      bytes_(stats_.counter("rx_bytes", "bytes", "packet bytes written into host buffers")),
      dropped_(stats_.counter("rx_dropped", "packets", "packets dropped: no RX buffer posted")),
      dma_errors_(stats_.counter("dma_errors", "packets", "packets whose DMA failed (translation fault)")),
      packet_latency_(stats_.histogram("packet_dma_latency", "ns", "descriptor read to descriptor write-back")) {
    stats_.derived("rx_throughput", "Gb/s", "packet bits delivered per simulated ns (line-rate units)", [this] {
        const double ns = (sc_core::sc_time_stamp() - rate_start_).to_seconds() * 1e9; // rate_start_ <= now
        return ns > 0 ? 8.0 * static_cast<double>(bytes_.value()) / ns : 0.0;
    });
    stats_.on_reset([this] { rate_start_ = sc_core::sc_time_stamp(); });
    SC_HAS_PROCESS(NicEndpoint);
    SC_THREAD(rx_thread);
}

void NicEndpoint::set_ring(uint64_t ring_iova, uint32_t entries) {
    ring_iova_ = ring_iova;
    ring_entries_ = entries;
}

void NicEndpoint::post(const Buffer& b) { posted_.push_back(b); }

void NicEndpoint::start() {
    started_ = true;
    start_event_.notify(sc_core::SC_ZERO_TIME);
}

std::optional<NicEndpoint::Buffer> NicEndpoint::take_completed() {
    if (completed_.empty() || completed_.top().at > from_sc(sc_core::sc_time_stamp())) return std::nullopt;
    Buffer b = completed_.top().buffer;
    completed_.pop();
    return b;
}

bool NicEndpoint::dma(uint64_t iova, uint32_t len, bool write, sc_core::sc_time& delay) {
    // One request per 4 KiB page (ATS translations are per page); the fabric
    // splits further at Max_Payload_Size.
    while (len) {
        const uint32_t chunk = static_cast<uint32_t>(std::min<uint64_t>(len, 4096 - (iova & 0xFFF)));
        if (ats_.dma(iova, scratch_.data(), chunk, write, p_.pasid, delay) != tlm::TLM_OK_RESPONSE) return false;
        iova += chunk;
        len -= chunk;
    }
    return true;
}

void NicEndpoint::rx_thread() {
    if (!started_) wait(start_event_);
    const sc_core::sc_time gap = to_sc(Duration::ns(8.0 * static_cast<double>(p_.packet_bytes) / p_.line_rate_gbps));
    for (;;) {
        const sc_core::sc_time arrival = sc_core::sc_time_stamp();
        if (posted_.empty() || ring_entries_ == 0) {
            dropped_.inc();
        } else {
            const Buffer b = posted_.front();
            posted_.pop_front();
            sc_core::sc_time d = sc_core::SC_ZERO_TIME;
            const uint64_t desc = ring_iova_ + uint64_t{next_slot_} * p_.descriptor_bytes;
            next_slot_ = (next_slot_ + 1) % ring_entries_;
            bool ok = dma(desc, p_.descriptor_bytes, false, d);                              // fetch descriptor
            ok = ok && dma(b.iova, std::min(p_.packet_bytes, b.size), true, d);              // packet data
            ok = ok && dma(desc, p_.descriptor_bytes, true, d);                              // write-back
            // From arrival: a page request (PRI) makes the thread wait, so d alone would miss it.
            packet_latency_.record((sc_core::sc_time_stamp() + d - arrival).to_seconds() * 1e9);
            if (ok) {
                packets_.inc();
                bytes_.inc(std::min(p_.packet_bytes, b.size));
            } else {
                dma_errors_.inc();
            }
            completed_.push(Done{from_sc(sc_core::sc_time_stamp() + d), done_order_++, b});
            completed_event_.notify(d);
        }
        // The next packet arrives one wire time after this one.
        const sc_core::sc_time next = arrival + gap;
        if (next > sc_core::sc_time_stamp()) wait(next - sc_core::sc_time_stamp());
    }
}

} // namespace iommusim::pcie
