// SPDX-License-Identifier: Apache-2.0
#include "models/host/inval_log.hpp"

#include <cstdio>

namespace iommusim::host {

InvalidationLog::InvalidationLog(stats::Group* parent)
    : stats_("invalidation", parent),
      count_(stats_.counter("count", "invalidations", "flushes submitted and waited for")),
      errors_(stats_.counter("errors", "invalidations", "flushes that ended in a queue error (IQE/ITE)")),
      total_(stats_.histogram("latency", "ns", "end to end: submitted to driver observed completion")),
      to_fetch_(stats_.histogram("phase_submit_to_fetch", "ns", "submitted to first descriptor fetched")),
      fetch_to_caches_(stats_.histogram("phase_fetch_to_caches_done", "ns", "fetched to IOMMU caches invalidated")),
      caches_to_devtlb_sent_(stats_.histogram("phase_caches_to_devtlb_sent", "ns",
                                              "IOMMU caches done to first ATS Invalidate Request sent")),
      devtlb_round_trip_(stats_.histogram("phase_devtlb_round_trip", "ns",
                                          "first ATS Invalidate Request sent to last Invalidate Completion")),
      to_wait_done_(stats_.histogram("phase_to_wait_done", "ns",
                                     "last of caches/device-TLB done to wait status written")),
      wait_to_observed_(stats_.histogram("phase_wait_to_observed", "ns", "status written to driver observed it")),
      buckets_group_("dmar_perf_latency", &stats_) {
    static const char* desc[] = {"invalidations under 1 us", "1 us to 10 us", "10 us to 100 us",
                                 "100 us to 1 ms", "1 ms to 10 ms", "10 ms and more"};
    for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i] = &buckets_group_.counter(kBucketNames[i], "invalidations", desc[i]);
}

void InvalidationLog::record(const std::string& cause, const std::string& iommu, uint32_t domain, uint64_t iova,
                             uint64_t size, const FlushTiming& t) {
    if (keep_rows_ && rows_.size() < kMaxRows) rows_.push_back(Row{count_.value(), cause, iommu, domain, iova, size, t});
    else if (keep_rows_) ++rows_dropped_;
    count_.inc();
    if (t.error) errors_.inc();
    const double total = (t.observed - t.submitted).as_ns();
    total_.record(total);
    const double us = total / 1000.0;
    size_t b = us < 1 ? 0 : us < 10 ? 1 : us < 100 ? 2 : us < 1000 ? 3 : us < 10000 ? 4 : 5;
    buckets_[b]->inc();
    auto span = [](stats::Histogram& h, std::optional<Duration> a, std::optional<Duration> z) {
        if (a && z && *z >= *a) h.record((*z - *a).as_ns());
    };
    span(to_fetch_, t.submitted, t.fetched);
    span(fetch_to_caches_, t.fetched, t.caches_done);
    span(caches_to_devtlb_sent_, t.caches_done, t.devtlb_sent);
    span(devtlb_round_trip_, t.devtlb_sent, t.devtlb_done);
    std::optional<Duration> last_work = t.devtlb_done ? t.devtlb_done : t.caches_done;
    span(to_wait_done_, last_work, t.wait_done);
    span(wait_to_observed_, t.wait_done, t.observed);
}

void InvalidationLog::write_csv(std::ostream& os) const {
    os << "id,cause,iommu,domain,iova,size,descriptors,devtlb_requests,ranged,error,submitted_ns,fetched_ns,"
          "caches_done_ns,devtlb_sent_ns,devtlb_done_ns,wait_done_ns,observed_ns,latency_ns\n";
    auto t = [](std::optional<Duration> d) {
        if (!d) return std::string();
        char b[32];
        std::snprintf(b, sizeof b, "%.3f", d->as_ns());
        return std::string(b);
    };
    for (const auto& r : rows_) {
        char addr[24];
        std::snprintf(addr, sizeof addr, "0x%llx", static_cast<unsigned long long>(r.iova));
        os << r.id << ',' << r.cause << ',' << r.iommu << ',' << r.domain << ',' << addr << ',' << r.size << ','
           << r.t.descriptors << ',' << r.t.devtlb_requests << ',' << (r.t.ranged ? 1 : 0) << ','
           << (r.t.error ? 1 : 0) << ',' << t(r.t.submitted) << ',' << t(r.t.fetched) << ',' << t(r.t.caches_done)
           << ',' << t(r.t.devtlb_sent) << ',' << t(r.t.devtlb_done) << ',' << t(r.t.wait_done) << ','
           << t(r.t.observed) << ',' << t(r.t.observed - r.t.submitted) << '\n';
    }
}

} // namespace iommusim::host

namespace iommusim::host {

void InvalidationLog::write_trace(std::ostream& os) const {
    // Trace-event format: "X" complete events with ts/dur in microseconds.
    os << "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[";
    bool first = true;
    std::vector<std::string> tracks;
    auto tid_of = [&](const std::string& iommu) {
        for (size_t i = 0; i < tracks.size(); ++i)
            if (tracks[i] == iommu) return i + 1;
        tracks.push_back(iommu);
        return tracks.size();
    };
    auto slice = [&](const std::string& name, size_t tid, Duration from, Duration to, const Row& r) {
        char b[512];
        std::snprintf(b, sizeof b,
                      "%s{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":1,\"tid\":%zu,\"ts\":%.6f,\"dur\":%.6f,"
                      "\"args\":{\"id\":%llu,\"domain\":%u,\"iova\":\"0x%llx\",\"size\":%llu}}",
                      first ? "" : ",", name.c_str(), r.cause.c_str(), tid, from.as_us(), (to - from).as_us(),
                      static_cast<unsigned long long>(r.id), r.domain, static_cast<unsigned long long>(r.iova),
                      static_cast<unsigned long long>(r.size));
        os << b;
        first = false;
    };
    for (const auto& r : rows_) {
        const size_t tid = tid_of(r.iommu);
        slice(r.cause, tid, r.t.submitted, r.t.observed, r);
        const std::pair<const char*, std::pair<std::optional<Duration>, std::optional<Duration>>> phases[] = {
            {"queue_fetch", {r.t.submitted, r.t.fetched}},
            {"iommu_caches", {r.t.fetched, r.t.caches_done}},
            {"devtlb_send", {r.t.caches_done, r.t.devtlb_sent}},
            {"devtlb_round_trip", {r.t.devtlb_sent, r.t.devtlb_done}},
            {"wait_write", {r.t.devtlb_done ? r.t.devtlb_done : r.t.caches_done, r.t.wait_done}},
            {"driver_observe", {r.t.wait_done, r.t.observed}},
        };
        for (const auto& [name, span] : phases)
            if (span.first && span.second && *span.second >= *span.first) slice(name, tid, *span.first, *span.second, r);
    }
    for (size_t i = 0; i < tracks.size(); ++i)
        os << (first ? "" : ",") << "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":" << i + 1
           << ",\"args\":{\"name\":\"" << tracks[i] << " invalidations\"}}", first = false;
    os << "]}\n";
}

} // namespace iommusim::host
