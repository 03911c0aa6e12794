// SPDX-License-Identifier: Apache-2.0
#include "models/pcie/nic_endpoint.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "models/common/sc_time.hpp"
#include "models/pcie/nic_regs.hpp"

namespace iommusim::pcie {

namespace {
constexpr uint32_t kRetaEntries = 128; // 82599 RSS redirection table (§7.1.2.8.3): 7 hash bits index it
} // namespace

NicEndpoint::NicEndpoint(sc_core::sc_module_name name, const NicParams& p, stats::Group* parent)
    : sc_module(name), regs("regs"), p_(p), stats_(basename(), parent), ats_("fn0", p.ats, &stats_),
      packets_(stats_.counter("rx_packets", "packets", "packets written into host buffers (descriptor written back)")),
      bytes_(stats_.counter("rx_bytes", "bytes", "packet bytes written into host buffers")),
      dropped_(stats_.counter("rx_dropped", "packets", "packets dropped: the on-chip packet buffer was full")),
      ring_empty_stalls_(stats_.counter("rx_ring_empty_stalls", "stalls",
                                        "times the NIC waited for a doorbell: the next packet's queue had no descriptor")),
      tag_stalls_(stats_.counter("tag_stalls", "fetches", "descriptor fetches that waited for a free tag")),
      fetches_(stats_.counter("descriptor_fetches", "reads", "descriptor fetch reads (up to descriptor_prefetch each)")),
      writebacks_done_(stats_.counter("descriptor_writebacks", "writes", "RX descriptors written back")),
      interrupts_(stats_.counter("interrupts", "interrupts", "queue interrupts raised (auto-masked until EIMS)")),
      dma_errors_(stats_.counter("dma_errors", "DMAs", "descriptor fetches, packet writes or write-backs that failed")),
      packet_latency_(stats_.histogram("packet_dma_latency", "ns", "packet arrival to its descriptor write-back")),
      interrupts_throttled_(stats_.counter("interrupts_throttled", "interrupts",
                                           "queue interrupts held until their EITR interval since the queue's last interrupt had passed")) {
    const std::string me = basename();
    if (p_.queues < 1 || p_.queues > nic::kMaxQueues) throw std::invalid_argument(me + ": queues must be 1..64");
    if (p_.flows < 1) throw std::invalid_argument(me + ": flows must be >= 1");
    if (p_.descriptor_prefetch < 1) throw std::invalid_argument(me + ": descriptor_prefetch must be >= 1");
    if (p_.max_outstanding_reads < 1) throw std::invalid_argument(me + ": max_outstanding_reads must be >= 1");
    tags_ = SlotPool(p_.max_outstanding_reads);
    if (p_.packet_bytes < 1 || !(p_.line_rate_gbps > 0)) throw std::invalid_argument(me + ": packet_bytes and line_rate_gbps must be > 0");
    for (uint32_t q = 0; q < p_.queues; ++q) {
        queues_.push_back(std::make_unique<Queue>());
        queue_packets_.push_back(&stats_.counter("rx_packets_q" + std::to_string(q), "packets", "packets delivered on this RX queue"));
    }
    for (uint32_t f = 0; f < p_.flows; ++f) flow_queue_.push_back(queue_of_flow(f));
    gap_ = Duration::ns(8.0 * static_cast<double>(p_.packet_bytes) / p_.line_rate_gbps); // Gb/s = bits per ns
    buffer_packets_ = std::max<uint32_t>(1, p_.rx_buffer_bytes / p_.packet_bytes);
    scratch_.assign(std::max<size_t>({p_.packet_bytes, size_t{p_.descriptor_prefetch} * nic::kDescriptorBytes, 4096}), 0);
    stats_.derived("rx_throughput", "Gb/s", "packet bits delivered per simulated ns (line-rate units)", [this] {
        const double ns = (sc_core::sc_time_stamp() - rate_start_).to_seconds() * 1e9; // rate_start_ <= now
        return ns > 0 ? 8.0 * static_cast<double>(bytes_.value()) / ns : 0.0;
    });
    stats_.on_reset([this] { rate_start_ = sc_core::sc_time_stamp(); });
    ats_.set_tag_pool(&tags_); // a Translation Request is a non-posted read: it takes a tag too
    regs.register_b_transport(this, &NicEndpoint::b_transport_regs);
    SC_HAS_PROCESS(NicEndpoint);
    SC_THREAD(engine_thread);
    SC_THREAD(writeback_thread);
    if (p_.tx) {
        if (p_.tx_descriptor_prefetch < 1) throw std::invalid_argument(me + ": tx_descriptor_prefetch must be >= 1");
        if (p_.tx_writeback_batch < 1) throw std::invalid_argument(me + ": tx_writeback_batch must be >= 1");
        for (uint32_t q = 0; q < p_.queues; ++q) tx_queues_.push_back(std::make_unique<TxQueue>());
        tx_buffer_time_ = Duration::ns(8.0 * static_cast<double>(p_.tx_buffer_bytes) / p_.line_rate_gbps);
        tx_scratch_.assign(std::max<size_t>(size_t{p_.tx_descriptor_prefetch} * nic::kDescriptorBytes, 65536), 0);
        tx_scratch_wb_.assign(size_t{p_.tx_writeback_batch} * nic::kDescriptorBytes, 0);
        tx_stats_ = std::make_unique<TxStats>(&stats_);
        SC_THREAD(tx_engine_thread);
    }
}

NicEndpoint::TxStats::TxStats(stats::Group* parent)
    : group("tx", parent),
      packets(group.counter("packets", "packets", "packets whose data was read and sent on the wire")),
      bytes(group.counter("bytes", "bytes", "packet bytes sent on the wire")),
      fetches(group.counter("descriptor_fetches", "reads", "TX descriptor fetch reads (up to tx_descriptor_prefetch each)")),
      writebacks(group.counter("descriptor_writebacks", "writes", "TX descriptor write-backs (up to tx_writeback_batch descriptors each)")),
      bad_descriptors(group.counter("bad_descriptors", "descriptors",
                                    "descriptors skipped: neither an advanced context nor an advanced data descriptor with a length; or a TSE packet without a usable context")),
      buffer_stalls(group.counter("buffer_stalls", "packets", "times data reads waited because the TX buffer held a buffer's worth ahead of the wire")),
      read_latency(group.histogram("data_read_latency", "ns", "a data descriptor's read: issue to last completion (translation included)")),
      tso_sends(group.counter("tso_sends", "sends", "packets segmented by TSO (TSE): each leaves as ceil(payload / MSS) packets")) {
    group.derived("throughput", "Gb/s", "packet bits sent per simulated ns (line-rate units)", [this] {
        const double ns = (sc_core::sc_time_stamp() - rate_start).to_seconds() * 1e9;
        return ns > 0 ? 8.0 * static_cast<double>(bytes.value()) / ns : 0.0;
    });
    group.on_reset([this] { rate_start = sc_core::sc_time_stamp(); });
}

uint32_t NicEndpoint::queue_of_flow(uint32_t flow) const {
    // The redirection table is filled round robin over the queues, as Linux
    // drivers do by default; its index is the hash's low 7 bits.
    const uint32_t hash = (flow + 1) * 0x9E3779B1u;
    return ((hash >> 7) % kRetaEntries) % p_.queues;
}

void NicEndpoint::start() {
    started_ = true;
    start_event_.notify(sc_core::SC_ZERO_TIME);
}

void NicEndpoint::b_transport_regs(tlm::tlm_generic_payload& gp, sc_core::sc_time& delay) {
    const uint64_t off = gp.get_address();
    if (gp.get_data_length() != 4 || (off & 3)) {
        gp.set_response_status(tlm::TLM_BURST_ERROR_RESPONSE);
        return;
    }
    uint32_t v = 0;
    if (gp.is_write()) std::memcpy(&v, gp.get_data_ptr(), 4);
    uint32_t out = 0;
    gp.set_response_status(tlm::TLM_OK_RESPONSE);
    const bool w = gp.is_write();
    const bool rx_block = off >= nic::kRdbal && off < nic::kRdbal + nic::kMaxQueues * nic::kQueueStride;
    const bool tx_block = off >= nic::kTdbal && off < nic::kTdbal + nic::kMaxQueues * nic::kQueueStride;
    if (rx_block || tx_block) {
        const uint32_t base = rx_block ? nic::kRdbal : nic::kTdbal;
        const auto qi = static_cast<uint32_t>((off - base) / nic::kQueueStride);
        const auto reg = static_cast<uint32_t>((off - base) % nic::kQueueStride);
        if (qi >= p_.queues || (tx_block && qi >= tx_queues_.size())) {
            gp.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
            return;
        }
        Ring& r = rx_block ? static_cast<Ring&>(*queues_[qi]) : static_cast<Ring&>(*tx_queues_[qi]);
        if (!ring_reg(r, reg, w, v, out)) {
            gp.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
            return;
        }
        if (w && reg == nic::kRdh - nic::kRdbal) { // a head write restarts the ring
            if (rx_block) queues_[qi]->fetched.clear();
            else tx_queues_[qi]->fetched.clear();
        }
        if (w && reg == nic::kRdt - nic::kRdbal) {
            if (rx_block) queues_[qi]->doorbell.notify(delay);
            else tx_doorbell_.notify(delay);
        }
    } else if (off == nic::kPasidCtl) {
        if (w) pasid_ = v & nic::kPasidEnable ? std::optional<uint32_t>(v & kPasidMask) : std::nullopt;
        out = pasid_ ? nic::kPasidEnable | *pasid_ : 0;
    } else if (const auto cause = eitr_cause(off)) {
        if (*cause >= p_.queues) {
            gp.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
            return;
        }
        Queue& q = *queues_[*cause];
        if (w) {
            q.eitr = v & nic::kEitrIntervalMask;
            q.irq.set_throttle(Duration::us(nic::eitr_interval_us(v)), &interrupts_throttled_);
        }
        out = q.eitr;
    } else if (off == nic::kEims || off == nic::kEimc) {
        for (uint32_t qi = 0; qi < p_.queues; ++qi) {
            if (!gp.is_write() || !((v >> qi) & 1)) continue;
            if (queues_[qi]->irq.set_enabled(off == nic::kEims, delay)) interrupts_.inc(); // a write-back happened while masked
        }
        for (uint32_t qi = 0; qi < p_.queues; ++qi) out |= (queues_[qi]->irq.enabled() ? 1u : 0u) << qi;
    } else {
        gp.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
        return;
    }
    if (gp.is_read()) std::memcpy(gp.get_data_ptr(), &out, 4);
}

bool NicEndpoint::ring_reg(Ring& r, uint32_t reg, bool w, uint32_t v, uint32_t& out) {
    // Offsets within a queue's block, the same for RX (§8.2.3.8) and TX (§8.2.3.9).
    switch (reg) {
    case nic::kRdbal - nic::kRdbal:
        if (w) r.ring = (r.ring & ~uint64_t{0xFFFFFFFF}) | (v & ~0x7Fu);
        out = static_cast<uint32_t>(r.ring);
        return true;
    case nic::kRdbah - nic::kRdbal:
        if (w) r.ring = (r.ring & 0xFFFFFFFF) | (uint64_t{v} << 32);
        out = static_cast<uint32_t>(r.ring >> 32);
        return true;
    case nic::kRdlen - nic::kRdbal:
        if (w) r.ring_bytes = v & 0xFFF80; // LEN[19:7]
        out = r.ring_bytes;
        return true;
    case nic::kRdh - nic::kRdbal:
        if (w) r.head = r.entries() ? v % r.entries() : 0;
        out = r.head;
        return true;
    case nic::kRdt - nic::kRdbal:
        if (w) r.tail = r.entries() ? (v & 0xFFFF) % r.entries() : 0;
        out = r.tail;
        return true;
    default: return false;
    }
}

std::optional<uint32_t> NicEndpoint::eitr_cause(uint64_t off) {
    if (off >= nic::kEitrLow && off < nic::kEitrLow + 4 * 24) return static_cast<uint32_t>((off - nic::kEitrLow) / 4);
    if (off >= nic::kEitrHigh && off < nic::kEitrHigh + 4 * (nic::kMaxQueues - 24))
        return static_cast<uint32_t>(24 + (off - nic::kEitrHigh) / 4);
    return std::nullopt;
}

void NicEndpoint::wait_interrupt(uint32_t qi) { queues_.at(qi)->irq.take(); }

bool NicEndpoint::dma(uint64_t iova, void* data, uint32_t len, bool write, sc_core::sc_time& delay, bool no_snoop) {
    return ats_.dma_span(iova, data, len, write, pasid_, delay, no_snoop);
}

void NicEndpoint::admit(Duration t) {
    // Arithmetic on the arrival times: a dropped packet costs no wake-up.
    for (; arrival(next_arrival_) <= t; ++next_arrival_) {
        if (buffer_.size() < buffer_packets_) buffer_.push_back(next_arrival_);
        else dropped_.inc();
    }
}

void NicEndpoint::sync_to(Duration t) {
    if (t > kernel_now()) wait(from_now(t));
}

Duration NicEndpoint::take_tag(Duration t) {
    bool stalled = false;
    t = tags_.take(t, stalled); // every tag in flight: wait for the oldest
    if (stalled) tag_stalls_.inc();
    return t;
}

Duration NicEndpoint::read_descriptors(const Ring& r, uint32_t count, Duration t, uint8_t* buf) {
    const uint32_t bytes = count * nic::kDescriptorBytes;
    std::fill_n(buf, bytes, uint8_t{0});
    sc_core::sc_time d = from_now(t); // a DMA that waited (PRI, credits) may have moved the kernel past t
    if (!dma(r.ring + uint64_t{r.head} * nic::kDescriptorBytes, buf, bytes, false, d)) dma_errors_.inc();
    const Duration done = kernel_now() + from_sc(d);
    tags_.hold(done);
    return done;
}

void NicEndpoint::fetch(Queue& q) {
    t_ = take_tag(t_);
    const uint32_t n = q.entries();
    const uint32_t count = std::min({p_.descriptor_prefetch, q.posted(), n - q.head}); // one read never wraps
    fetches_.inc();
    const Duration done = read_descriptors(q, count, t_, scratch_.data());
    for (uint32_t i = 0; i < count; ++i) {
        nic::RxReadDescriptor desc;
        std::memcpy(&desc, scratch_.data() + size_t{i} * nic::kDescriptorBytes, sizeof desc);
        q.fetched.push_back(Fetched{q.head, desc.packet_buffer & ~uint64_t{1}, done});
        q.head = q.head + 1 == n ? 0 : q.head + 1;
    }
}

void NicEndpoint::tx_fetch(TxQueue& q) {
    tt_ = take_tag(tt_);
    const uint32_t n = q.entries();
    const uint32_t count = std::min({p_.tx_descriptor_prefetch, q.posted(), n - q.head}); // one read never wraps
    tx_stats_->fetches.inc();
    const Duration done = read_descriptors(q, count, tt_, tx_scratch_.data());
    for (uint32_t i = 0; i < count; ++i) {
        nic::TxDataDescriptor desc;
        std::memcpy(&desc, tx_scratch_.data() + size_t{i} * nic::kDescriptorBytes, sizeof desc);
        // Interpreted when processed: a context descriptor (TSO) or a data descriptor (§7.2.3.2).
        q.fetched.push_back(TxFetched{q.head, desc.buffer, desc.cmd_type_len, desc.olinfo_status, done});
        q.head = q.head + 1 == n ? 0 : q.head + 1;
    }
}

void NicEndpoint::tx_flush_writeback(uint32_t qi) {
    TxQueue& q = *tx_queues_[qi];
    if (!q.wb_count) return;
    // In time order behind the previous TX write-back (the engine hands them over in order).
    const Duration at = tx_writebacks_.empty() ? q.wb_at : std::max(q.wb_at, tx_writebacks_.back().at);
    if (tx_writebacks_.empty()) writeback_ready_.notify(sc_core::SC_ZERO_TIME);
    tx_writebacks_.push_back(WriteBack{qi, q.wb_first, q.wb_count, at, Duration::zero(), true, true});
    q.wb_count = 0;
    q.wb_at = Duration::zero();
}

void NicEndpoint::tx_engine_thread() {
    const auto nq = static_cast<uint32_t>(tx_queues_.size());
    for (;;) {
        tt_ = std::max(tt_, kernel_now());
        uint32_t qi = nq;
        for (uint32_t i = 0; i < nq && qi == nq; ++i)
            if (tx_has_work(*tx_queues_[(tx_next_queue_ + i) % nq])) qi = (tx_next_queue_ + i) % nq;
        if (qi == nq) { // every ring empty: sleep until a TDT doorbell
            sync_to(tt_);
            bool any = false;
            for (const auto& q : tx_queues_) any = any || tx_has_work(*q);
            if (!any) wait(tx_doorbell_);
            continue;
        }
        tx_next_queue_ = (qi + 1) % nq; // round robin per descriptor (per packet for one-descriptor packets)
        if (tt_ > kernel_now() + p_.quantum) sync_to(tt_);
        TxQueue& q = *tx_queues_[qi];
        if (q.fetched.empty()) tx_fetch(q);
        const TxFetched f = q.fetched.front();
        q.fetched.pop_front();
        Duration left = std::max({f.ready, tt_, kernel_now()}); // the fetch may have waited (PRI, credits)
        const uint32_t dtyp = f.cmd_type_len & nic::kTxDtypMask;
        const bool dext = f.cmd_type_len & nic::kTxCmdDext;
        const uint32_t len = f.cmd_type_len & 0xFFFF;
        if (dext && dtyp == nic::kTxDtypContext) {
            // The TSO context of the packets that follow (§7.2.3.2.3): MSS and the header
            // length MACLEN + IPLEN + L4LEN the device replicates in front of each segment.
            const auto lens = static_cast<uint32_t>(f.buffer);
            q.ctx_mss = f.dword3 >> nic::kTxMssShift;
            q.ctx_header = (lens >> nic::kTxMaclenShift & 0x7F) + (lens & 0x1FF) + (f.dword3 >> nic::kTxL4lenShift & 0xFF);
        } else if (dext && dtyp == nic::kTxDtypData && len > 0) {
            if (!q.pkt_descriptors) q.pkt_tse = f.cmd_type_len & nic::kTxCmdTse; // the packet's first descriptor
            ++q.pkt_descriptors;
            // The DMA engine issues its reads in order, each once its descriptor is known and a tag is free.
            tt_ = take_tag(left);
            sc_core::sc_time d = to_sc(tt_ - kernel_now());
            const bool ok = dma(f.buffer, tx_scratch_.data(), len, false, d, p_.no_snoop_data);
            const Duration done = kernel_now() + from_sc(d);
            tags_.hold(done);
            tx_stats_->read_latency.record((done - tt_).as_ns());
            left = done;
            q.pkt_ready = std::max(q.pkt_ready, done);
            q.pkt_bytes += len;
            if (!ok) {
                dma_errors_.inc();
                q.pkt_failed = true;
            }
            if (f.cmd_type_len & nic::kTxCmdEop) {
                // The packet (its data all on chip) leaves on the wire: with TSE as
                // ceil(payload / MSS) segments, each carrying a copy of the header (§7.2.4).
                uint64_t wire = q.pkt_bytes, packets = 1;
                bool send = !q.pkt_failed;
                if (send && q.pkt_tse) {
                    send = q.ctx_mss > 0 && q.pkt_bytes > q.ctx_header;
                    if (send) {
                        const uint64_t payload = q.pkt_bytes - q.ctx_header;
                        packets = (payload + q.ctx_mss - 1) / q.ctx_mss;
                        wire = payload + packets * q.ctx_header;
                        tx_stats_->tso_sends.inc();
                    } else {
                        tx_stats_->bad_descriptors.inc(); // TSE without a usable context
                    }
                }
                if (send) {
                    const Duration start = std::max(q.pkt_ready, wire_free_);
                    wire_free_ = start + Duration::ns(8.0 * static_cast<double>(wire) / p_.line_rate_gbps);
                    left = wire_free_;
                    tx_stats_->packets.inc(packets);
                    tx_stats_->bytes.inc(wire);
                }
                q.pkt_descriptors = 0;
                q.pkt_bytes = 0;
                q.pkt_failed = q.pkt_tse = false;
                q.pkt_ready = Duration::zero();
            }
        } else {
            tx_stats_->bad_descriptors.inc();
        }
        // The descriptor is done once its packet left (or its read failed); written back in batches.
        if (!q.wb_count) q.wb_first = f.slot;
        ++q.wb_count;
        q.wb_at = std::max(q.wb_at, left);
        if (q.wb_count >= p_.tx_writeback_batch || f.slot + 1 == q.entries() || !tx_has_work(q)) tx_flush_writeback(qi);
        // Data waits on chip for the wire: reads run at most a TX buffer ahead of it.
        if (wire_free_ > tt_ + tx_buffer_time_) {
            tx_stats_->buffer_stalls.inc();
            tt_ = wire_free_ - tx_buffer_time_;
        }
    }
}

void NicEndpoint::engine_thread() {
    if (!p_.rx) return; // nothing arrives
    if (!started_) wait(start_event_);
    start_ = t_ = tx_free_ = kernel_now();
    for (;;) {
        t_ = std::max(t_, kernel_now()); // a page request (PRI) may have moved the kernel on
        admit(t_);
        if (buffer_.empty()) { // idle until the next packet arrives
            t_ = arrival(next_arrival_);
            admit(t_);
        }
        // Never more than a quantum ahead of the kernel: messages the NIC sends
        // (page requests) are served at the kernel's time.
        if (t_ > kernel_now() + p_.quantum) sync_to(t_);
        const uint64_t k = buffer_.front();
        const uint32_t qi = flow_queue_[k % p_.flows];
        Queue& q = *queues_[qi];
        if (!(q.entries() && has_descriptor(q))) {
            // Head of line: wait (in kernel time) for the driver to post buffers on this queue.
            sync_to(t_);
            if (!(q.entries() && has_descriptor(q))) {
                ring_empty_stalls_.inc();
                wait(q.doorbell);
            }
            continue;
        }
        buffer_.pop_front();
        if (q.fetched.empty()) fetch(q);
        const Fetched f = q.fetched.front();
        q.fetched.pop_front();
        // The packet goes out once its buffer address is known. Packets overlap:
        // the link serializes their TLPs, the ATC and IOMMU translate them
        // concurrently (translation requests hold root-port credits).
        const Duration start = std::max(f.ready, kernel_now());
        sc_core::sc_time d = to_sc(start - kernel_now());
        const bool ok = dma(f.buffer, scratch_.data(), p_.packet_bytes, true, d, p_.no_snoop_data);
        if (!ok) dma_errors_.inc();
        tx_free_ = std::max(tx_free_, kernel_now() + from_sc(d));
        // Write-backs leave in order, after the packet's data (posted writes are ordered).
        last_writeback_ = std::max(tx_free_, last_writeback_);
        if (writebacks_.empty()) writeback_ready_.notify(sc_core::SC_ZERO_TIME);
        writebacks_.push_back(WriteBack{qi, f.slot, p_.packet_bytes, last_writeback_, arrival(k), ok, false});
        // Descriptor fetches may run at most a quantum ahead of the data writes,
        // and the engine at most a quantum ahead of the kernel.
        if (tx_free_ > t_ + p_.quantum) t_ = tx_free_ - p_.quantum;
    }
}

void NicEndpoint::writeback_thread() {
    for (;;) {
        while (writebacks_.empty() && tx_writebacks_.empty()) wait(writeback_ready_);
        // The earlier of the RX and TX heads (each deque is in time order).
        const bool tx = writebacks_.empty() || (!tx_writebacks_.empty() && tx_writebacks_.front().at < writebacks_.front().at);
        std::deque<WriteBack>& from = tx ? tx_writebacks_ : writebacks_;
        const WriteBack w = from.front();
        if (w.at > kernel_now()) { // at its exact time: the driver must not see DD early
            // A write-back handed over meanwhile may be due earlier (the other direction).
            wait(to_sc(w.at - kernel_now()), writeback_ready_);
            continue;
        }
        from.pop_front();
        sc_core::sc_time d = sc_core::SC_ZERO_TIME;
        if (w.tx) {
            const TxQueue& q = *tx_queues_[w.queue];
            nic::TxWriteBack wb;
            wb.status = nic::kStatusDd;
            for (uint32_t i = 0; i < w.length; ++i)
                std::memcpy(tx_scratch_wb_.data() + size_t{i} * nic::kDescriptorBytes, &wb, sizeof wb);
            if (!dma(q.ring + uint64_t{w.slot} * nic::kDescriptorBytes, tx_scratch_wb_.data(),
                     w.length * nic::kDescriptorBytes, true, d))
                dma_errors_.inc();
            tx_stats_->writebacks.inc();
            if (queues_[w.queue]->irq.signal(d)) interrupts_.inc();
            continue;
        }
        Queue& q = *queues_[w.queue];
        nic::RxWriteBack wb;
        wb.rss_hash = (w.queue + 1) * 0x9E3779B1u;
        wb.status_error = nic::kStatusDd | nic::kStatusEop;
        wb.length = static_cast<uint16_t>(std::min<uint32_t>(w.length, 0xFFFF));
        if (!dma(q.ring + uint64_t{w.slot} * nic::kDescriptorBytes, &wb, sizeof wb, true, d)) dma_errors_.inc();
        writebacks_done_.inc();
        if (w.delivered) {
            packets_.inc();
            bytes_.inc(w.length);
            queue_packets_[w.queue]->inc();
            packet_latency_.record((kernel_now() + from_sc(d) - w.arrival).as_ns());
        }
        if (q.irq.signal(d)) interrupts_.inc(); // the MSI is ordered behind the write-back
    }
}

} // namespace iommusim::pcie
