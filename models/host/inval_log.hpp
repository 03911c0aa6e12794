// SPDX-License-Identifier: Apache-2.0
#pragma once
// Invalidation latency record: every flush end to end and by phase
// (submitted -> fetched -> caches done -> device-TLB sent -> device-TLB
// done -> wait done -> observed), as histograms, as Linux dmar_perf_latency
// buckets (<1 us, 1-10 us, 10-100 us, 100 us-1 ms, 1-10 ms, >=10 ms; so
// results can be set beside real machines), and as one row per
// invalidation for invalidations.csv.
#include <array>
#include <ostream>
#include <string>
#include <vector>

#include "models/common/stats.hpp"
#include "models/host/iommu_driver.hpp"

namespace iommusim::host {

class InvalidationLog {
public:
    struct Row {
        uint64_t id;
        std::string cause;      ///< unmap, lazy_flush, detach, munmap, explicit
        std::string iommu;
        uint32_t domain;
        uint64_t iova, size;
        FlushTiming t;
        std::string devices; ///< BDFs attached to the flushed domain (space-separated)
        std::string cpu;     ///< the host thread that issued it
    };

    explicit InvalidationLog(stats::Group* parent);
    void record(const std::string& cause, const std::string& iommu, uint32_t domain, uint64_t iova, uint64_t size,
                const FlushTiming& t, const std::string& devices = {}, const std::string& cpu = {});
    /// Streams invalidations.csv while the run goes: the header now, each row
    /// as its invalidation completes (at most `max_rows`, 0 = all; the rest
    /// are counted in csv_rows_capped). `os` must outlive the log.
    void stream_csv(std::ostream* os, uint64_t max_rows = 0);
    const std::vector<Row>& rows() const { return rows_; }
    /// Whether rows are kept (for sim/'s trace.json; off: only the stats, bounded memory).
    void keep_rows(bool on) { keep_rows_ = on; }
    /// Rows kept at most (about 200 MB): trace.json holds the first kMaxRows
    /// invalidations of any run, however long; the stats count every one and
    /// invalidations.csv is streamed, not kept.
    static constexpr size_t kMaxRows = 1'000'000;
    /// Invalidations recorded beyond kMaxRows (not in the rows).
    uint64_t rows_dropped() const { return rows_dropped_; }
    /// Header + one line per kept row; times in ns since simulation start.
    void write_csv(std::ostream& os) const;
    static void write_csv_header(std::ostream& os);
    static void write_csv_row(std::ostream& os, const Row& r);

    static constexpr std::array<const char*, 6> kBucketNames = {"lt_1us", "1us_10us", "10us_100us",
                                                                "100us_1ms", "1ms_10ms", "ge_10ms"};

private:
    /// Bytes of a row besides its four text fields: seven numbers of at most 20 digits and
    /// "0x" + 16 hex digits, each with its comma; eight times of at most 20 + 4 characters
    /// and a comma; the text fields' three commas and the newline.
    static constexpr size_t kFixedRowBytes = 7 * 21 + 19 + 8 * 25 + 4;
    /// Formats one row at `p` (room for kFixedRowBytes + the text fields); returns its end.
    static char* format_row(char* p, uint64_t id, const std::string& cause, const std::string& iommu,
                            uint32_t domain, uint64_t iova, uint64_t size, const FlushTiming& t,
                            const std::string& devices, const std::string& cpu);

    std::vector<Row> rows_;
    std::string line_; ///< the streamed row's buffer, reused
    bool keep_rows_ = true;
    std::ostream* csv_ = nullptr;
    uint64_t csv_max_rows_ = 0, csv_rows_ = 0;
    uint64_t rows_dropped_ = 0;
    stats::Group stats_;
    stats::Counter& count_;
    stats::Counter& errors_;
    stats::Counter& csv_capped_;
    stats::Histogram& total_;
    stats::Histogram& to_fetch_;
    stats::Histogram& fetch_to_caches_;
    stats::Histogram& caches_to_devtlb_sent_;
    stats::Histogram& devtlb_round_trip_;
    stats::Histogram& to_wait_done_;
    stats::Histogram& wait_to_observed_;
    stats::Group buckets_group_;
    std::array<stats::Counter*, 6> buckets_{};
};

} // namespace iommusim::host
