// SPDX-License-Identifier: Apache-2.0
#include "models/host/inval_log.hpp"

#include <algorithm>
#include <array>
#include <charconv>
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
    if (csv_) {
        if (csv_max_rows_ == 0 || csv_rows_ < csv_max_rows_) {
            // Formatted straight from the arguments into a buffer reused by every row.
            const size_t bound = kFixedRowBytes + cause.size() + iommu.size() + devices.size() + cpu.size();
            if (line_.size() < bound) line_.resize(bound);
            char* end = format_row(line_.data(), count_.value(), cause, iommu, domain, iova, size, t, devices, cpu);
            csv_->write(line_.data(), end - line_.data());
            ++csv_rows_;
        } else {
            csv_capped_.inc();
        }
    }
    if (keep_rows_) {
        if (rows_.size() < kMaxRows) rows_.push_back(Row{count_.value(), cause, iommu, domain, iova, size, t, devices, cpu});
        else ++rows_dropped_;
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
/// "00", "01", ... "99": two digits per step, no length pass (std::to_chars measures first).
constexpr std::array<char, 200> kPairs = [] {
    std::array<char, 200> a{};
    for (int i = 0; i < 100; ++i) {
        a[static_cast<size_t>(2 * i)] = static_cast<char>('0' + i / 10);
        a[static_cast<size_t>(2 * i + 1)] = static_cast<char>('0' + i % 10);
    }
    return a;
}();

char* put_dec(char* p, uint64_t v) {
    char tmp[20];
    char* const e = tmp + sizeof tmp;
    char* s = e;
    while (v >= 100) {
        const auto r = static_cast<size_t>(v % 100) * 2;
        v /= 100;
        s -= 2;
        s[0] = kPairs[r];
        s[1] = kPairs[r + 1];
    }
    if (v >= 10) {
        s -= 2;
        s[0] = kPairs[static_cast<size_t>(v) * 2];
        s[1] = kPairs[static_cast<size_t>(v) * 2 + 1];
    } else {
        *--s = static_cast<char>('0' + v);
    }
    std::memcpy(p, s, static_cast<size_t>(e - s));
    return p + (e - s);
}

/// "<ns>.<3 digits>" from integer picoseconds: exact, far cheaper than printf's %.3f.
char* put_ns(char* p, Duration d) {
    const uint64_t ps = d.as_ps();
    p = put_dec(p, ps / 1000);
    const auto frac = static_cast<unsigned>(ps % 1000);
    p[0] = '.';
    p[1] = static_cast<char>('0' + frac / 100);
    p[2] = static_cast<char>('0' + frac / 10 % 10);
    p[3] = static_cast<char>('0' + frac % 10);
    return p + 4;
}

char* put_text(char* p, const std::string& s) {
    std::memcpy(p, s.data(), s.size());
    return p + s.size();
}
} // namespace

char* InvalidationLog::format_row(char* p, uint64_t id, const std::string& cause, const std::string& iommu,
                                  uint32_t domain, uint64_t iova, uint64_t size, const FlushTiming& t,
                                  const std::string& devices, const std::string& cpu) {
    auto num = [&](uint64_t v) {
        p = put_dec(p, v);
        *p++ = ',';
    };
    auto text = [&](const std::string& s) {
        p = put_text(p, s);
        *p++ = ',';
    };
    auto time = [&](std::optional<Duration> d) {
        if (d) p = put_ns(p, *d);
        *p++ = ',';
    };
    num(id);
    text(cause);
    text(iommu);
    num(domain);
    *p++ = '0';
    *p++ = 'x';
    p = std::to_chars(p, p + 16, iova, 16).ptr;
    *p++ = ',';
    num(size);
    num(t.descriptors);
    num(t.devtlb_requests);
    num(t.ranged ? 1 : 0);
    num(t.error ? 1 : 0);
    time(t.submitted);
    time(t.fetched);
    time(t.caches_done);
    time(t.devtlb_sent);
    time(t.devtlb_done);
    time(t.wait_done);
    time(t.observed);
    time(t.observed - t.submitted);
    text(devices);
    p = put_text(p, cpu);
    *p++ = '\n';
    return p;
}

void InvalidationLog::write_csv_row(std::ostream& os, const Row& r) {
    std::string line(kFixedRowBytes + r.cause.size() + r.iommu.size() + r.devices.size() + r.cpu.size(), '\0');
    const char* end =
        format_row(line.data(), r.id, r.cause, r.iommu, r.domain, r.iova, r.size, r.t, r.devices, r.cpu);
    os.write(line.data(), end - line.data());
}

void InvalidationLog::write_csv(std::ostream& os) const {
    write_csv_header(os);
    for (const auto& r : rows_) write_csv_row(os, r);
}

} // namespace iommusim::host
