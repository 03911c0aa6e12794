// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <sstream>

#include "models/host/inval_log.hpp"

using namespace iommusim;

TEST_CASE("the invalidation log keeps a bounded number of rows and counts the rest", "[unit][host][regression]") {
    stats::Group root("root");
    host::InvalidationLog log(&root);
    host::FlushTiming t;
    const size_t extra = 7;
    for (size_t i = 0; i < host::InvalidationLog::kMaxRows + extra; ++i) log.record("unmap", "dmar0", 1, i << 12, 4096, t);
    CHECK(log.rows().size() == host::InvalidationLog::kMaxRows);
    CHECK(log.rows_dropped() == extra);
    CHECK(log.rows().back().iova == (host::InvalidationLog::kMaxRows - 1) << 12);
}

TEST_CASE("invalidations.csv rows give times in ns with three decimals and empty fields for missing phases",
          "[unit][host]") {
    stats::Group root("root");
    host::InvalidationLog log(&root);
    std::ostringstream os;
    log.stream_csv(&os);
    log.keep_rows(false);
    host::FlushTiming t;
    t.submitted = Duration::ps(1'234'567);
    t.fetched = Duration::ps(1'300'000);
    t.wait_done = Duration::ps(10'000'000'001);
    t.observed = Duration::ps(10'000'400'999);
    t.descriptors = 3;
    t.devtlb_requests = 1;
    t.ranged = true;
    log.record("unmap", "dmar0", 7, 0xFFFF'F000, 4096, t, "0000:01:00.0 0000:01:00.1:5", "cpu0.nic0");
    t.error = true;
    log.record("lazy_flush", "dmar1", 0, 0, 0, t);
    std::string header, row1, row2;
    std::istringstream in(os.str());
    std::getline(in, header);
    std::getline(in, row1);
    std::getline(in, row2);
    CHECK(row1 == "0,unmap,dmar0,7,0xfffff000,4096,3,1,1,0,1234.567,1300.000,,,,10000000.001,10000400.999,"
                  "9999166.432,0000:01:00.0 0000:01:00.1:5,cpu0.nic0");
    CHECK(row2 == "1,lazy_flush,dmar1,0,0x0,0,3,1,1,1,1234.567,1300.000,,,,10000000.001,10000400.999,"
                  "9999166.432,,");
    CHECK(log.rows().empty());
}
