// SPDX-License-Identifier: Apache-2.0
#include "models/pcie/traffic_endpoint.hpp"

#include <algorithm>
#include <stdexcept>

#include "models/common/sc_time.hpp"

namespace iommusim::pcie {

TrafficEndpoint::TrafficEndpoint(sc_core::sc_module_name name, const TrafficEndpointParams& params,
                                 stats::Group* parent_stats)
    : sc_module(name), upstream("upstream"), downstream("downstream"), params_(params), link_(params.link),
      bar_store_(mem::SparseMemory::kMaxSize), stats_(basename(), parent_stats),
      reads_(stats_.counter("reads", "operations", "DMA read operations issued")),
      writes_(stats_.counter("writes", "operations", "DMA write operations issued")),
      read_bytes_(stats_.counter("read_bytes", "bytes", "bytes requested by DMA reads")),
      write_bytes_(stats_.counter("write_bytes", "bytes", "bytes written by DMA writes")),
      read_tlps_(stats_.counter("read_tlps", "TLPs", "memory read request TLPs (split at MRRS)")),
      write_tlps_(stats_.counter("write_tlps", "TLPs", "memory write TLPs (split at MPS)")),
      errors_(stats_.counter("errors", "TLPs", "TLPs answered with an error or dropped by the translate step")),
      tag_stalls_(stats_.counter("tag_stalls", "TLPs", "reads that waited for a free tag (outstanding limit)")),
      read_latency_(stats_.histogram("read_latency", "ns", "read TLP issue to last completion byte")),
      first_issue_ns_(stats_.value("first_issue_ns", "ns", "time of the first request")),
      last_done_ns_(stats_.value("last_done_ns", "ns", "time the last completion arrived / last write was sent")),
      bar_reads_(stats_.counter("bar_reads", "requests", "reads of this device's BARs (P2P or MMIO)")),
      bar_writes_(stats_.counter("bar_writes", "requests", "writes to this device's BARs (P2P or MMIO)")),
      bar_bytes_(stats_.counter("bar_bytes", "bytes", "bytes moved to/from this device's BARs")),
      bar_errors_(stats_.counter("bar_errors", "requests", "requests to addresses outside this device's BARs")),
      unmediated_(stats_.counter("unmediated_accesses", "requests",
                                 "requests of a function to its own BAR (same requester ID): decoded inside the device, "
                                 "never seen by the IOMMU")),
      messages_unsupported_(stats_.counter("messages_unsupported", "messages",
                                           "ATS/PRI messages received without the capability")) {
    if (params_.functions.empty()) throw std::invalid_argument(std::string(basename()) + ": needs at least one function RID");
    if (!params_.bar_functions.empty() && params_.bar_functions.size() != params_.bars.size())
        throw std::invalid_argument(std::string(basename()) + ": bar_functions needs one entry per BAR");
    if (params_.max_outstanding_reads == 0) throw std::invalid_argument(std::string(basename()) + ": max_outstanding_reads must be >= 1");
    for (const WorkloadParams& w : params_.workloads) {
        if (w.function >= params_.functions.size())
            throw std::invalid_argument(std::string(basename()) + ": workload function " + std::to_string(w.function) +
                                        " but the device has " + std::to_string(params_.functions.size()) + " functions");
        if (params_.pasid.max_width > 20)
            throw std::invalid_argument(std::string(basename()) + ": pasid max_width must be 0..20");
        auto check_pasid = [&](bool present, uint32_t v) {
            if (!present) return;
            if (!params_.pasid.supported)
                throw std::invalid_argument(std::string(basename()) + ": a workload uses PASID " + std::to_string(v) +
                                            " but the device has no PASID capability");
            if (v >> params_.pasid.max_width)
                throw std::invalid_argument(std::string(basename()) + ": PASID " + std::to_string(v) +
                                            " exceeds the device's Max PASID Width of " +
                                            std::to_string(params_.pasid.max_width) + " bits");
        };
        for (uint32_t v : w.pasid.pasids) check_pasid(true, v);
        // PMR / ER ride in the PASID prefix (§6.20) and need the capability's Supported bits.
        if (w.privileged_percent && (w.pasid.pasids.empty() || !params_.pasid.privileged_supported))
            throw std::invalid_argument(std::string(basename()) +
                                        ": privileged_percent needs PASIDs and pasid.privileged (Privileged Mode Supported)");
        if (w.execute_percent && (w.pasid.pasids.empty() || !params_.pasid.execute_supported))
            throw std::invalid_argument(std::string(basename()) +
                                        ": execute_percent needs PASIDs and pasid.execute (Execute Permission Supported)");
        for (const TraceRecord& r : w.trace) check_pasid(r.pasid_present, r.pasid);
        Stream s;
        s.gen = make_workload(w);
        s.rate = w.rate_bytes_per_ns;
        s.params = &w;
        s.attr_rng.seed(w.seed ^ 0xA77B5u);
        streams_.push_back(std::move(s));
    }
    // After a stats reset the throughput window starts at the reset (if traffic already flows).
    stats_.on_reset([this] {
        if (started_) first_issue_ns_.set(sc_core::sc_time_stamp().to_seconds() * 1e9);
    });
    stats_.derived("throughput", "GB/s", "payload bytes per ns between first issue and last completion", [this] {
        double span = last_done_ns_.value() - first_issue_ns_.value();
        return span > 0 ? static_cast<double>(read_bytes_.value() + write_bytes_.value()) / span : 0.0;
    });
    downstream.register_b_transport(this, &TrafficEndpoint::b_transport_in);
    SC_HAS_PROCESS(TrafficEndpoint);
    SC_THREAD(run);
}

bool TrafficEndpoint::translate(unsigned, TlpExtension&, uint64_t&, bool, Duration&) { return true; }

void TrafficEndpoint::sent(unsigned, std::optional<uint32_t>, const TlpExtension&, uint64_t, Duration) {}

void TrafficEndpoint::on_message(MessageExtension&, tlm::tlm_generic_payload& gp, sc_core::sc_time&) {
    messages_unsupported_.inc();
    gp.set_response_status(tlm::TLM_COMMAND_ERROR_RESPONSE);
}

Duration TrafficEndpoint::send_upstream(tlm::tlm_generic_payload& gp, Duration at) {
    sc_core::sc_time d = from_now(at);
    upstream->b_transport(gp, d);
    return kernel_now() + from_sc(d);
}

void TrafficEndpoint::sync_to(Duration at) {
    qk_.set(from_now(at));
    qk_.sync();
}

TrafficEndpoint::Attrs TrafficEndpoint::draw_attrs(Stream& s, const DmaOp& op) {
    const WorkloadParams& w = *s.params;
    Attrs a;
    if (!(w.no_snoop_percent | w.privileged_percent | w.execute_percent)) return a; // no draws: streams stay as they were
    auto share = [&](uint32_t percent) { return percent && s.attr_rng() % 100 < percent; };
    a.no_snoop = share(w.no_snoop_percent);
    a.privileged = op.pasid_present && share(w.privileged_percent);
    a.execute = op.pasid_present && !op.write && share(w.execute_percent);
    return a;
}

void TrafficEndpoint::issue(const DmaOp& op, const Attrs& attrs, Duration& t) {
    const LinkParams& lp = link_.params();
    uint32_t max = op.write ? lp.max_payload_bytes : lp.max_read_request_bytes;
    if (buf_.size() < max) buf_.resize(max);
    for_each_chunk(op.addr, op.size, max, [&](Chunk c) {
        if (own_bar(op.function, c.addr, c.bytes)) {
            // Same requester ID: the function reaches its own BAR inside the device (thread 004).
            unmediated_.inc();
            access_bar(params_.functions[op.function], c.addr, buf_.data(), c.bytes, op.write, t);
            t += params_.bar_latency;
            last_done_ns_.set(std::max(last_done_ns_.value(), t.as_ns()));
            return;
        }
        if (!op.write) {
            while (!outstanding_.empty() && outstanding_.top() <= t) outstanding_.pop();
            if (outstanding_.size() >= params_.max_outstanding_reads) {
                tag_stalls_.inc();
                t = std::max(t, outstanding_.top());
                outstanding_.pop();
            }
        }
        // One payload for every request (issue() runs on the generator thread only and is
        // never re-entered): a payload built per TLP cost its extension array's allocation.
        tlm::tlm_generic_payload& gp = gp_;
        gp.set_command(op.write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND);
        gp.set_data_ptr(buf_.data());
        gp.set_data_length(c.bytes);
        gp.set_streaming_width(c.bytes);
        gp.set_byte_enable_ptr(nullptr);
        gp.set_dmi_allowed(false);
        gp.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
        TlpExtension tlp;
        tlp.requester = params_.functions[op.function];
        tlp.pasid_present = op.pasid_present;
        tlp.pasid = op.pasid;
        tlp.no_snoop = attrs.no_snoop;
        tlp.privileged = attrs.privileged;
        tlp.execute = attrs.execute;
        IssueExtension iss;
        Duration at = t;
        uint64_t addr = c.addr;
        bool ok = translate(op.function, tlp, addr, op.write, at);
        Duration r = at;
        if (ok) {
            gp.set_address(addr);
            gp.set_extension(&tlp);
            gp.set_extension(&iss);
            // Cleared on every way out: an IOMMU may hold the request (SMMUv3 stall) and the
            // thread be killed at the end of the run, unwinding through here.
            struct Detach {
                tlm::tlm_generic_payload& gp;
                ~Detach() {
                    gp.clear_extension<TlpExtension>();
                    gp.clear_extension<IssueExtension>();
                }
            } detach{gp};
            r = send_upstream(gp, at);
            sent(op.function, op.pasid_present ? std::optional<uint32_t>(op.pasid) : std::nullopt, tlp, c.addr, r);
        }
        if (!ok || !gp.is_response_ok()) errors_.inc();
        if (observer_ && ok) {
            DmaRecord rec;
            rec.requester = tlp.requester;
            rec.pasid_present = op.pasid_present; // a translated request carries no PASID; the record names the one used
            rec.pasid = op.pasid;
            rec.iova = c.addr;
            rec.pa = tlp.output_address;
            rec.write = op.write;
            rec.at_ps = at.as_ps();
            rec.source = tlp.served_by;
            rec.ok = gp.is_response_ok();
            observer_(rec);
        }
        if (op.write) {
            write_tlps_.inc();
            t = std::max(at, r);
        } else {
            read_tlps_.inc();
            outstanding_.push(r);
            read_latency_.record((r > at ? r - at : Duration::zero()).as_ns());
            t = iss.valid ? std::max(at, iss.sender_free) : at;
        }
        last_done_ns_.set(std::max(last_done_ns_.value(), r.as_ns()));
    });
    if (op.write) {
        writes_.inc();
        write_bytes_.inc(op.size);
    } else {
        reads_.inc();
        read_bytes_.inc(op.size);
    }
}

void TrafficEndpoint::run() {
    if (params_.start_on_request) wait(start_event_);
    else if (params_.start_at > kernel_now()) wait(to_sc(params_.start_at - kernel_now()));
    qk_.set_global_quantum(to_sc(params_.quantum));
    qk_.reset();
    Duration t = kernel_now();
    for (;;) {
        Stream* best = nullptr;
        Duration best_ready;
        for (Stream& s : streams_) {
            if (s.done) continue;
            if (!s.pending) s.pending = s.gen->next();
            if (!s.pending) {
                s.done = true;
                continue;
            }
            Duration ready = std::max(s.next_issue, s.pending->not_before);
            if (!best || ready < best_ready) {
                best = &s;
                best_ready = ready;
            }
        }
        if (!best) break;
        t = std::max(t, best_ready);
        if (params_.stop_at != Duration::zero() && t >= params_.stop_at) break;
        if (stop_requested_) break;
        DmaOp op = *best->pending;
        best->pending.reset();
        Duration start = t;
        if (!started_) {
            first_issue_ns_.set(start.as_ns());
            started_ = true;
        }
        issue(op, draw_attrs(*best, op), t);
        if (best->rate > 0) best->next_issue = start + Duration::ns(static_cast<double>(op.size) / best->rate);
        qk_.set(from_now(t));
        if (qk_.need_sync()) qk_.sync();
    }
    while (!outstanding_.empty()) {
        t = std::max(t, outstanding_.top());
        outstanding_.pop();
    }
    sync_to(t);
}

bool TrafficEndpoint::in_bar(uint64_t addr, uint64_t len) const {
    for (const AddrRange& b : params_.bars)
        if (b.contains(addr) && len <= b.size && addr - b.base <= b.size - len) return true;
    return false;
}

bool TrafficEndpoint::own_bar(size_t function, uint64_t addr, uint64_t len) const {
    for (size_t i = 0; i < params_.bar_functions.size(); ++i) {
        const AddrRange& b = params_.bars[i];
        if (params_.bar_functions[i] == function && b.contains(addr) && len <= b.size && addr - b.base <= b.size - len)
            return true;
    }
    return false;
}

void TrafficEndpoint::access_bar(Bdf requester, uint64_t a, unsigned char* data, unsigned len, bool write, Duration at) {
    if (write) {
        bar_store_.write(a, data, len);
        bar_writes_.inc();
    } else {
        bar_store_.read(a, data, len);
        bar_reads_.inc();
    }
    bar_bytes_.inc(len);
    if (bar_observer_) {
        DmaRecord rec;
        rec.requester = requester;
        rec.iova = a;
        rec.pa = a;
        rec.write = write;
        rec.at_ps = at.as_ps();
        rec.ok = true;
        bar_observer_(rec);
    }
}

void TrafficEndpoint::b_transport_in(tlm::tlm_generic_payload& gp, sc_core::sc_time& delay) {
    if (auto* msg = gp.get_extension<MessageExtension>()) {
        on_message(*msg, gp, delay);
        return;
    }
    uint64_t a = gp.get_address();
    unsigned len = gp.get_data_length();
    if (!in_bar(a, len)) {
        bar_errors_.inc();
        gp.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
        return;
    }
    const TlpExtension* tlp = gp.get_extension<TlpExtension>();
    access_bar(tlp ? tlp->requester : Bdf{}, a, gp.get_data_ptr(), len, gp.is_write(), kernel_now() + from_sc(delay));
    delay += to_sc(params_.bar_latency);
    gp.set_response_status(tlm::TLM_OK_RESPONSE);
}

} // namespace iommusim::pcie
