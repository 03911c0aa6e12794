// SPDX-License-Identifier: Apache-2.0
#include "models/host/page_requests.hpp"

namespace iommusim::host {

std::optional<PageRequestGroups::Closed> PageRequestGroups::add(const PageRequestInfo& r, pcie::PrgResponseCode code,
                                                                Duration read_at) {
    const uint32_t pasid_key = r.pasid ? (uint32_t{1} << 31 | *r.pasid) : 0;
    const Key k{r.rid.raw, pasid_key, static_cast<uint16_t>(r.prg_index & 0x1FF)};
    auto [it, fresh] = open_.try_emplace(k, Closed{code, read_at});
    // Any failed request fails the whole group (PCIe Base §10.4.2: one response per PRG).
    if (!fresh && code != pcie::PrgResponseCode::success && it->second.code == pcie::PrgResponseCode::success)
        it->second.code = code;
    if (!r.last) return std::nullopt;
    Closed c = it->second;
    open_.erase(it);
    return c;
}

PageRequestStats::PageRequestStats(stats::Group* parent)
    : group("prq", parent),
      requests(group.counter("requests", "requests", "page requests read from the page request queue(s)")),
      successes(group.counter("successes", "groups", "page request groups answered Success")),
      invalid(group.counter("invalid", "groups", "page request groups answered Invalid Request")),
      responses(group.counter("responses", "responses", "page group responses submitted")),
      stop_markers(group.counter("stop_markers", "requests", "PASID stop markers dropped (no response owed)")),
      overflows(group.counter("overflows", "events",
                              "page-request log overflows handled (VT-d PRS.PRO cleared, AMD PPR log restarted, SMMUv3 PRIQ OVFLG acknowledged)")),
      wakeups(group.counter("wakeups", "runs",
                            "handler thread runs: page-request interrupts taken (those arriving while it runs add one run)")),
      mmio_reads(group.counter("mmio_reads", "accesses",
                               "register reads by the page-request handler thread(s), the page responses' queue waits included")),
      service_latency(group.histogram("service_latency", "ns",
                                      "request read by the handler -> its page group response queued (VT-d: and its wait descriptor completed, as qi_submit_sync; Linux DMAR_LATENCY_PRQ)")) {}

} // namespace iommusim::host
