// SPDX-License-Identifier: Apache-2.0
#include "models/host/page_request_log.hpp"

#include <stdexcept>
#include <string>

namespace iommusim::host {

uint64_t alloc_contiguous_pages(const std::function<uint64_t()>& alloc_page, unsigned order, const char* what) {
    constexpr uint64_t kPage = 4096;
    const uint64_t pages = uint64_t{1} << order;
    const uint64_t base = alloc_page();
    for (uint64_t i = 1; i < pages; ++i)
        if (alloc_page() != base + i * kPage) throw std::runtime_error(std::string(what) + " needs contiguous pages");
    return base;
}

void PageRequestLogDriver::init(const std::function<uint64_t()>& alloc_page, unsigned order, unsigned record_bytes) {
    if (record_bytes != 16 && record_bytes != 32) throw std::invalid_argument("page-request log records are 16 or 32 bytes");
    base_ = alloc_contiguous_pages(alloc_page, order, "the page-request log");
    bytes_ = (uint64_t{1} << order) * 4096;
    record_bytes_ = record_bytes;
    head_ = 0;
}

void PageRequestLogDriver::serve(PageRequestHandler& handler, PageRequestStats& st) {
    if (!irq_.connected())
        throw std::logic_error("the page-request handler needs the unit's interrupt (an MSI path and a vector)");
    const LogDrain how = hooks_.drain();
    uint64_t seen = 0; // the thread exists from boot: every interrupt delivered so far is pending
    for (;;) {
        seen = irq_.wait(cpu_, seen);
        st.wakeups.inc();
        const uint64_t reads = cpu_.thread_accesses().mmio_reads;
        const bool mine = hooks_.on_interrupt();
        for (bool first = true; mine && (first || how.repeat_while_pending); first = false) {
            if (!hooks_.acknowledge_pending()) break;
            pass(handler, st, how);
        }
        st.mmio_reads.inc(cpu_.thread_accesses().mmio_reads - reads);
    }
}

void PageRequestLogDriver::pass(PageRequestHandler& handler, PageRequestStats& st, const LogDrain& how) {
    const uint64_t mask = (hooks_.positions_wrap() ? 2 * bytes_ : bytes_) - 1; // positions (with the wrap bit)
    uint64_t tail = hooks_.read_tail() & mask;
    if (how.read_head) head_ = hooks_.read_log_head() & mask;
    for (;;) {
        while (head_ != tail) {
            LogRecord q{};
            const uint64_t at = base_ + (head_ & (bytes_ - 1));
            cpu_.spend(cpu_.params().mem_read); // the unit wrote it: a miss in the CPU's caches
            cpu_.memory().read(at, q.data(), record_bytes_);
            const Duration read_at = cpu_.now();
            if (how.clear_records) {
                const LogRecord zero{};
                cpu_.mem_write(at, zero.data(), record_bytes_);
            }
            head_ = (head_ + record_bytes_) & mask;
            if (how.head_per_record) hooks_.write_head(head_);
            handle(q, handler, st, read_at);
        }
        if (!how.until_empty) break;
        tail = hooks_.read_tail() & mask;
        if (tail == head_) break;
    }
    if (!how.head_per_record) hooks_.write_head(head_);
    if (hooks_.handle_overflow()) st.overflows.inc();
}

void PageRequestLogDriver::handle(const LogRecord& q, PageRequestHandler& handler, PageRequestStats& st,
                                  Duration read_at) {
    const PageRequestInfo r = hooks_.decode(q);
    st.requests.inc();
    if (r.stop_marker()) {
        st.stop_markers.inc();
        return;
    }
    // A nested domain's request goes to user space (its response comes from there); one the
    // family's driver rejects before reporting it (VT-d: no PASID) never gets there.
    const bool resolvable = hooks_.resolvable(q, r);
    if (resolvable && handler.deliver_to_user(r)) return;
    const pcie::PrgResponseCode code =
        resolvable ? handler.handle_page_request(r) : pcie::PrgResponseCode::invalid_request;
    auto closed = groups_.add(r, code, read_at);
    if (!closed) return; // the group is still open: no response owed yet
    hooks_.respond(r, closed->code);
    st.responses.inc();
    (closed->code == pcie::PrgResponseCode::success ? st.successes : st.invalid).inc();
    st.service_latency.record((cpu_.now() - closed->first_read).as_ns());
}

} // namespace iommusim::host
