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

void PageRequestLogDriver::serve(PageRequestHandler& handler, PageRequestStats& st, Duration poll_interval) {
    PageRequestGroups groups;
    const uint64_t mask = (hooks_.positions_wrap() ? 2 * bytes_ : bytes_) - 1; // positions (with the wrap bit)
    for (;;) {
        cpu_.spend(poll_interval);
        st.polls.inc();
        if ((hooks_.read_tail() & mask) == head_) continue;
        hooks_.acknowledge_pending();
        const uint64_t tail = hooks_.read_tail() & mask;
        while (head_ != tail) {
            LogRecord q{};
            cpu_.spend(cpu_.params().mem_read);
            cpu_.memory().read(base_ + (head_ & (bytes_ - 1)), q.data(), record_bytes_);
            const Duration read_at = cpu_.now();
            head_ = (head_ + record_bytes_) & mask;
            const PageRequestInfo r = hooks_.decode(q);
            st.requests.inc();
            if (r.stop_marker()) {
                st.stop_markers.inc();
                continue;
            }
            // A nested domain's request goes to user space (its response comes from there); one the
            // family's driver rejects before reporting it (VT-d: no PASID) never gets there.
            if ((r.pasid || hooks_.resolves_requests_without_pasid()) && handler.deliver_to_user(r)) continue;
            const pcie::PrgResponseCode code = r.pasid || hooks_.resolves_requests_without_pasid()
                                                   ? handler.handle_page_request(r)
                                                   : pcie::PrgResponseCode::invalid_request;
            auto closed = groups.add(r, code, read_at);
            if (!closed) continue; // the group is still open: no response owed yet
            hooks_.respond(r, closed->code);
            st.responses.inc();
            (closed->code == pcie::PrgResponseCode::success ? st.successes : st.invalid).inc();
            st.service_latency.record((cpu_.now() - closed->first_read).as_ns());
        }
        hooks_.write_head(head_);
        if (hooks_.clear_overflow()) st.overflows.inc();
    }
}

} // namespace iommusim::host
