// SPDX-License-Identifier: Apache-2.0
#include "models/host/inval_log.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>

namespace iommusim::host {

InvalidationLog::InvalidationLog(stats::Group* parent)
    : stats_("invalidation", parent),
      count_(stats_.counter("count", "invalidations", "flushes submitted and waited for")),
      errors_(stats_.counter("errors", "invalidations", "flushes that ended in a queue error (IQE/ITE)")),
      csv_capped_(stats_.counter("csv_rows_capped", "invalidations", "rows left out of invalidations.csv by its row cap")),
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
                             uint64_t size, const FlushTiming& t, const std::string& devices, const std::string& cpu) {
    if (keep_rows_ || csv_) {
        Row row{count_.value(), cause, iommu, domain, iova, size, t, devices, cpu};
        if (csv_) {
            if (csv_max_rows_ == 0 || csv_rows_ < csv_max_rows_) write_csv_row(*csv_, row), ++csv_rows_;
            else csv_capped_.inc();
        }
        if (keep_rows_ && rows_.size() < kMaxRows) rows_.push_back(std::move(row));
        else if (keep_rows_) ++rows_dropped_;
    }
    count_.inc();
    if (t.error) errors_.inc();
    const double total = (t.observed - t.submitted).as_ns();
    total_.record(total);
    const double us = total / 1000.0;
    size_t b = us < 1 ? 0 : us < 10 ? 1 : us < 100 ? 2 : us < 1000 ? 3 : us < 10000 ? 4 : 5;
    buckets_[b]->inc();
    auto span = [](stats::Histogram& h, std::optional<Duration> a, std::optional<Duration> z) {
        if (a && z) h.record((*z - *a).as_ns()); // phases are ordered: a reversed pair throws (a model bug)
    };
    span(to_fetch_, t.submitted, t.fetched);
    span(fetch_to_caches_, t.fetched, t.caches_done);
    span(caches_to_devtlb_sent_, t.caches_done, t.devtlb_sent);
    span(devtlb_round_trip_, t.devtlb_sent, t.devtlb_done);
    std::optional<Duration> last_work = t.devtlb_done ? t.devtlb_done : t.caches_done;
    span(to_wait_done_, last_work, t.wait_done);
    span(wait_to_observed_, t.wait_done, t.observed);
}

void InvalidationLog::stream_csv(std::ostream* os, uint64_t max_rows) {
    csv_ = os;
    csv_max_rows_ = max_rows;
    if (csv_) write_csv_header(*csv_);
}

void InvalidationLog::write_csv_header(std::ostream& os) {
    os << "id,cause,iommu,domain,iova,size,descriptors,devtlb_requests,ranged,error,submitted_ns,fetched_ns,"
          "caches_done_ns,devtlb_sent_ns,devtlb_done_ns,wait_done_ns,observed_ns,latency_ns,devices,cpu\n";
}

namespace {
void put_u64(std::string& out, uint64_t v, int base = 10) {
    char b[24];
    out.append(b, std::to_chars(b, b + sizeof b, v, base).ptr);
}
/// "<ns>.<3 digits>" from integer picoseconds, then `sep` if not 0: exact, far cheaper
/// than printf's %.3f, and one append per field.
void put_ns(std::string& out, Duration d, char sep = 0) {
    const uint64_t ps = d.as_ps();
    char b[32];
    char* p = std::to_chars(b, b + 24, ps / 1000).ptr;
    const auto frac = static_cast<unsigned>(ps % 1000);
    p[0] = '.';
    p[1] = static_cast<char>('0' + frac / 100);
    p[2] = static_cast<char>('0' + frac / 10 % 10);
    p[3] = static_cast<char>('0' + frac % 10);
    p += 4;
    if (sep) *p++ = sep;
    out.append(b, p);
}
} // namespace

void InvalidationLog::write_csv_row(std::ostream& os, const Row& r) {
    std::string line;
    line.reserve(256);
    auto num = [&](uint64_t v) { put_u64(line, v); line += ','; };
    auto text = [&](const std::string& s) { line += s; line += ','; };
    auto t = [&](std::optional<Duration> d) {
        if (d) put_ns(line, *d, ',');
        else line += ',';
    };
    num(r.id);
    text(r.cause);
    text(r.iommu);
    num(r.domain);
    line += "0x";
    put_u64(line, r.iova, 16);
    line += ',';
    num(r.size);
    num(r.t.descriptors);
    num(r.t.devtlb_requests);
    num(r.t.ranged ? 1 : 0);
    num(r.t.error ? 1 : 0);
    t(r.t.submitted);
    t(r.t.fetched);
    t(r.t.caches_done);
    t(r.t.devtlb_sent);
    t(r.t.devtlb_done);
    t(r.t.wait_done);
    t(r.t.observed);
    put_ns(line, r.t.observed - r.t.submitted, ',');
    line += r.devices;
    line += ',';
    line += r.cpu;
    line += '\n';
    os.write(line.data(), static_cast<std::streamsize>(line.size()));
}

void InvalidationLog::write_csv(std::ostream& os) const {
    write_csv_header(os);
    for (const auto& r : rows_) write_csv_row(os, r);
}

} // namespace iommusim::host
