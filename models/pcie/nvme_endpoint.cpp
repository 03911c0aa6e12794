// SPDX-License-Identifier: Apache-2.0
#include "models/pcie/nvme_endpoint.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "models/common/sc_time.hpp"

namespace iommusim::pcie {

NvmeEndpoint::NvmeEndpoint(sc_core::sc_module_name name, const NvmeParams& p, stats::Group* parent)
    : sc_module(name), regs("regs"), p_(p), stats_(basename(), parent), ats_("fn0", p.ats, &stats_),
      commands_(stats_.counter("commands", "commands", "commands completed (CQE posted), admin included")),
      reads_(stats_.counter("reads", "commands", "Read commands completed")),
      writes_(stats_.counter("writes", "commands", "Write commands completed")),
      bytes_(stats_.counter("bytes", "bytes", "data bytes moved by Read and Write commands")),
      prp_list_reads_(stats_.counter("prp_list_reads", "reads", "PRP lists fetched by DMA")),
      tag_stalls_(stats_.counter("tag_stalls", "reads", "reads (SQE, PRP list, Write data) that waited for a tag")),
      errors_(stats_.counter("errors", "commands", "commands completed with an error status")),
      interrupts_(stats_.counter("interrupts", "interrupts", "completion queue interrupts raised")),
      media_wait_(stats_.histogram("media_wait", "ns", "command ready to its media service start (all units busy)")) {
    if (p_.parallelism < 1 || p_.max_outstanding_reads < 1 || p_.max_queue_entries < 2)
        throw std::invalid_argument(std::string(basename()) + ": parallelism and max_outstanding_reads >= 1, max_queue_entries >= 2");
    tags_ = SlotPool(p_.max_outstanding_reads);
    ats_.set_tag_pool(&tags_); // a Translation Request is a non-posted read: it takes a tag too
    sqs_.resize(nvme::kMaxQueues + 1);
    for (uint32_t i = 0; i <= nvme::kMaxQueues; ++i) cqs_.push_back(std::make_unique<Cq>());
    media_free_.assign(p_.parallelism, Duration::zero());
    buf_.assign(nvme::kPageBytes, 0);
    regs.register_b_transport(this, &NvmeEndpoint::b_transport_regs);
    SC_HAS_PROCESS(NvmeEndpoint);
    SC_THREAD(engine_thread);
    SC_THREAD(completion_thread);
}

void NvmeEndpoint::wait_interrupt(uint32_t cqid) { cqs_.at(cqid)->irq.take(); }

void NvmeEndpoint::b_transport_regs(tlm::tlm_generic_payload& gp, sc_core::sc_time& delay) {
    const uint64_t off = gp.get_address();
    const unsigned len = gp.get_data_length();
    if ((len != 4 && len != 8) || (off & (len - 1))) {
        gp.set_response_status(tlm::TLM_BURST_ERROR_RESPONSE);
        return;
    }
    uint64_t v = 0;
    if (gp.is_write()) std::memcpy(&v, gp.get_data_ptr(), len);
    const bool w = gp.is_write();
    uint64_t out = 0;
    // A 64-bit register written whole or as two 32-bit halves.
    auto reg64 = [&](uint64_t& r, uint32_t base) {
        if (w) {
            if (len == 8) r = v;
            else if (off == base) r = (r & ~0xFFFFFFFFull) | (v & 0xFFFFFFFFull);
            else r = (r & 0xFFFFFFFFull) | (v << 32);
        }
        out = off == base ? r : r >> 32;
    };
    gp.set_response_status(tlm::TLM_OK_RESPONSE);
    if (off >= nvme::kDoorbells && off < nvme::kBarBytes) {
        const auto idx = static_cast<uint32_t>((off - nvme::kDoorbells) / 4);
        const uint32_t qid = idx / 2;
        if (w && idx % 2 == 0 && sqs_[qid].live) {
            sqs_[qid].tail = static_cast<uint32_t>(v) % sqs_[qid].entries;
            doorbell_.notify(delay);
        } else if (w && cqs_[qid]->live) {
            Cq& cq = *cqs_[qid];
            cq.head = static_cast<uint32_t>(v) % cq.entries;
            // The host consumed up to head: re-arm the vector (raise again if entries remain).
            if (cq.head == cq.tail) cq.irq.forget_pending();
            if (cq.interrupts && cq.irq.set_enabled(true, delay)) interrupts_.inc();
        }
    } else {
        switch (off) {
        case nvme::kCap:
            // MQES (0-based), CQR = 1 (contiguous queues), TO = 1 (500 ms), DSTRD = 0, CSS = NVM, MPSMIN = 0.
            out = (p_.max_queue_entries - 1) | (uint64_t{1} << 16) | (uint64_t{1} << 24) | (uint64_t{1} << 37);
            break;
        case nvme::kCc:
            if (w) {
                const bool was = cc_ & 1;
                cc_ = static_cast<uint32_t>(v);
                if ((cc_ & 1) && !was) { // enable: the admin queue pair from AQA / ASQ / ACQ
                    sqs_[0] = Sq{asq_, (aqa_ & 0xFFF) + 1, 0, 0, 0, true};
                    Cq& cq = *cqs_[0];
                    cq.base = acq_;
                    cq.entries = ((aqa_ >> 16) & 0xFFF) + 1;
                    cq.tail = cq.head = 0;
                    cq.phase = true;
                    cq.live = true;
                    csts_ = 1;
                } else if (!(cc_ & 1)) {
                    for (Sq& s : sqs_) s.live = false;
                    for (auto& c : cqs_) c->live = false;
                    csts_ = 0;
                }
            }
            out = cc_;
            break;
        case nvme::kCsts: out = csts_; break;
        case nvme::kAqa:
            if (w) aqa_ = static_cast<uint32_t>(v);
            out = aqa_;
            break;
        case nvme::kAsq:
        case nvme::kAsq + 4: reg64(asq_, nvme::kAsq); break;
        case nvme::kAcq:
        case nvme::kAcq + 4: reg64(acq_, nvme::kAcq); break;
        case nvme::kIntms:
        case nvme::kIntmc: break; // MSI-X: not used (§3.1.3, §3.1.4)
        default: gp.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE); return;
        }
    }
    if (gp.is_read()) std::memcpy(gp.get_data_ptr(), &out, len);
}

bool NvmeEndpoint::dma(uint64_t iova, void* data, uint32_t len, bool write, sc_core::sc_time& delay, bool no_snoop) {
    return ats_.dma_span(iova, data, len, write, std::nullopt, delay, no_snoop);
}

void NvmeEndpoint::take_tag() {
    bool stalled = false;
    t_ = tags_.take(t_, stalled); // every tag in flight: wait for the oldest
    if (stalled) tag_stalls_.inc();
}

void NvmeEndpoint::execute_admin(const nvme::Sqe& c, uint32_t& status) {
    if (c.opcode() == nvme::kAdminSetFeatures) {
        if ((c.cdw10 & 0xFF) != nvme::kFeatureInterruptCoalescing) {
            status = nvme::kStatusInvalidField; // the only feature this model implements
            return;
        }
        // Every I/O completion queue's vector, those created later too (the admin CQ never coalesces).
        coalescing_threshold_ = (c.cdw11 & 0xFF) + 1;
        coalescing_time_ = Duration::us(nvme::kCoalescingTimeUnitUs * ((c.cdw11 >> 8) & 0xFF));
        for (uint32_t q = 1; q < cqs_.size(); ++q) cqs_[q]->irq.set_coalescing(coalescing_threshold_, coalescing_time_);
        return;
    }
    const uint32_t qid = c.cdw10 & 0xFFFF, size = (c.cdw10 >> 16) + 1;
    if (qid == 0 || qid > nvme::kMaxQueues || size < 2 || size > p_.max_queue_entries || !(c.cdw11 & 1)) {
        status = 0x01u << 17 | 0x01u << 25; // SCT 1 (command specific): Invalid Queue Identifier / Size
        return;
    }
    if (c.opcode() == nvme::kAdminCreateIoCq) { // §5.3: PC bit 0, IEN bit 1, IV [31:16]
        Cq& cq = *cqs_[qid];
        cq.base = c.prp1;
        cq.entries = size;
        cq.tail = cq.head = 0;
        cq.phase = true;
        cq.interrupts = (c.cdw11 >> 1) & 1;
        cq.irq.set_coalescing(coalescing_threshold_, coalescing_time_);
        cq.irq.set_enabled(cq.interrupts, sc_core::SC_ZERO_TIME);
        cq.live = true;
    } else if (c.opcode() == nvme::kAdminCreateIoSq) { // §5.4: PC bit 0, CQID [31:16]
        const uint32_t cqid = c.cdw11 >> 16;
        if (cqid > nvme::kMaxQueues || !cqs_[cqid]->live) {
            status = 0x00u << 17 | 0x01u << 25; // Completion Queue Invalid
            return;
        }
        sqs_[qid] = Sq{c.prp1, size, 0, 0, cqid, true};
    } else {
        status = nvme::kStatusInvalidOpcode;
    }
}

bool NvmeEndpoint::data_pages(const nvme::Sqe& c, uint32_t bytes, std::vector<std::pair<uint64_t, uint32_t>>& pages) {
    // §4.3: PRP1 may start inside a page; PRP2 is the second page, or the
    // address of a PRP list when the transfer needs more than two.
    const uint32_t first = std::min<uint32_t>(bytes, nvme::kPageBytes - static_cast<uint32_t>(c.prp1 & 0xFFF));
    pages.emplace_back(c.prp1, first);
    uint32_t rest = bytes - first;
    if (rest == 0) return true;
    if (rest <= nvme::kPageBytes) {
        pages.emplace_back(c.prp2, rest);
        return true;
    }
    const uint32_t n = (rest + nvme::kPageBytes - 1) / nvme::kPageBytes;
    if ((c.prp2 & 0xFFF) + uint64_t{n} * 8 > nvme::kPageBytes) return false; // would need a chained list
    take_tag();
    sc_core::sc_time d = from_now(t_);
    prp_list_reads_.inc();
    const bool ok = dma(c.prp2, buf_.data(), n * 8, false, d);
    t_ = kernel_now() + from_sc(d); // the pages are known once the list arrived
    tags_.hold(t_);
    for (uint32_t i = 0; i < n; ++i) {
        uint64_t e = 0;
        std::memcpy(&e, buf_.data() + size_t{i} * 8, 8);
        const uint32_t len = std::min(rest, nvme::kPageBytes);
        pages.emplace_back(e, len);
        rest -= len;
    }
    return ok;
}

void NvmeEndpoint::engine_thread() {
    for (;;) {
        t_ = std::max(t_, kernel_now());
        uint32_t id = 0;
        bool found = false;
        for (uint32_t i = 0; i < sqs_.size() && !found; ++i) {
            id = static_cast<uint32_t>((next_sq_ + i) % sqs_.size());
            found = sqs_[id].live && sqs_[id].head != sqs_[id].tail;
        }
        if (!found) {
            wait(doorbell_);
            continue;
        }
        next_sq_ = id + 1;
        if (t_ > kernel_now() + p_.quantum) wait(from_now(t_));
        Sq& sq = sqs_[id];
        nvme::Sqe c;
        take_tag();
        sc_core::sc_time d = from_now(t_);
        const bool fetched = dma(sq.base + uint64_t{sq.head} * sizeof c, &c, sizeof c, false, d);
        const Duration ready = kernel_now() + from_sc(d);
        tags_.hold(ready);
        sq.head = sq.head + 1 == sq.entries ? 0 : sq.head + 1;
        Done done{ready, order_++, id, c.cid(), sq.head, false, {}, 0};
        if (!fetched) {
            done.status = nvme::kStatusDataTransferError;
        } else if (id == 0) {
            execute_admin(c, done.status);
        } else if (c.opcode() == nvme::kNvmRead || c.opcode() == nvme::kNvmWrite) {
            const bool read = c.opcode() == nvme::kNvmRead;
            const uint32_t bytes = ((c.cdw12 & 0xFFFF) + 1) * nvme::kPageBytes; // 4 KiB LBAs
            t_ = std::max(t_, ready);
            bool ok = data_pages(c, bytes, done.pages);
            if (!read) { // Write: the data comes from the host before the media takes it
                for (const auto& [a, n] : done.pages) {
                    take_tag();
                    sc_core::sc_time dd = from_now(t_);
                    ok = dma(a, buf_.data(), n, false, dd, p_.no_snoop_data) && ok;
                    tags_.hold(kernel_now() + from_sc(dd));
                    t_ = kernel_now() + from_sc(dd);
                }
            }
            auto unit = std::min_element(media_free_.begin(), media_free_.end());
            const Duration start = std::max(t_, *unit);
            media_wait_.record((start - t_).as_ns());
            *unit = start + p_.service;
            done.at = *unit;
            done.read = read;
            if (!ok) done.status = nvme::kStatusDataTransferError;
            bytes_.inc(bytes);
            (read ? reads_ : writes_).inc();
        } else {
            done.status = nvme::kStatusInvalidOpcode;
        }
        done_.push(std::move(done));
        done_ready_.notify(sc_core::SC_ZERO_TIME);
    }
}

void NvmeEndpoint::completion_thread() {
    for (;;) {
        while (done_.empty()) wait(done_ready_);
        if (done_.top().at > kernel_now()) { // an earlier completion may still be queued meanwhile
            wait(from_now(done_.top().at), done_ready_);
            continue;
        }
        Done c = done_.top();
        done_.pop();
        sc_core::sc_time d = sc_core::SC_ZERO_TIME;
        if (c.read)
            for (const auto& [a, n] : c.pages)
                if (!dma(a, buf_.data(), n, true, d, p_.no_snoop_data)) c.status = nvme::kStatusDataTransferError;
        Cq& cq = *cqs_[sqs_[c.sqid].cqid];
        nvme::Cqe e;
        e.dw2 = c.sq_head | c.sqid << 16;
        e.dw3 = c.cid | (cq.phase ? nvme::kPhase : 0) | c.status;
        if (!dma(cq.base + uint64_t{cq.tail} * sizeof e, &e, sizeof e, true, d)) c.status = nvme::kStatusDataTransferError;
        if (++cq.tail == cq.entries) {
            cq.tail = 0;
            cq.phase = !cq.phase;
        }
        commands_.inc();
        if (c.status) errors_.inc();
        if (cq.interrupts && cq.irq.signal(d)) interrupts_.inc();
    }
}

} // namespace iommusim::pcie
