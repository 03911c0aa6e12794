// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

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
