// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "models/iommu/amd/amd_logs.hpp"
#include "models/mem/sparse_memory.hpp"

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::amd;

namespace {
struct Log {
    mem::SparseMemory m{uint64_t{1} << 32};
    PhysMemPort port{m};
    AmdRegs regs{AmdParams{}};
    AmdLog log{AmdLog::Which::event};
    Duration l;
    Log() {
        regs.write(reg::EVT_BASE, 0x20'0000 | (uint64_t{8} << 56), 8); // 256 entries, as Linux's minimum
        log.on_base(regs);
        regs.write(reg::CONTROL, 1 | (uint64_t{1} << ctl::EVT_LOG_EN) | (uint64_t{1} << ctl::EVT_INT_EN), 8);
    }
    AmdLog::Logged put(uint16_t dev) {
        return log.log(port, make_io_page_fault(dev, 1, 0, 0x1000, evf::RW).encode(), regs, l);
    }
};
} // namespace

TEST_CASE("Events are written at the tail, the tail advances and EventLogInt is set", "[unit][amd]") {
    Log t;
    auto r = t.put(0x10);
    CHECK(r.written);
    CHECK(r.interrupt);
    CHECK(t.regs.read(reg::EVT_TAIL, 4) == 16);
    CHECK(t.regs.status() & st::EVT_INT);
    std::array<uint64_t, 2> q{};
    t.m.read(0x20'0000, q.data(), 16);
    auto e = Event::decode(q);
    REQUIRE(e);
    CHECK(e->device_id == 0x10);
}

TEST_CASE("Event-log overflow drops the record, sets EventOverflow and stops the log until restarted",
          "[unit][amd]") {
    Log t;
    for (unsigned i = 0; i < 255; ++i) REQUIRE(t.put(static_cast<uint16_t>(i)).written); // one slot stays free
    auto r = t.put(0xFFF);
    CHECK_FALSE(r.written);
    CHECK(r.overflow);
    CHECK(r.interrupt);
    CHECK(t.regs.status() & st::EVT_OVERFLOW);
    CHECK_FALSE(t.regs.status() & st::EVT_RUN);
    // Software drains the log: still stopped until it restarts logging.
    t.regs.write(reg::EVT_HEAD, t.regs.read(reg::EVT_TAIL, 4), 4);
    t.log.on_head(t.regs);
    CHECK_FALSE(t.put(1).written);
    CHECK(t.log.dropped() == 2);
    // Linux amd_iommu_restart_event_logging: disable, clear EventOverflow, enable.
    const uint64_t ctl_on = t.regs.read(reg::CONTROL, 8);
    t.regs.write(reg::CONTROL, ctl_on & ~(uint64_t{1} << ctl::EVT_LOG_EN), 8);
    t.regs.write(reg::STATUS, st::EVT_OVERFLOW, 4);
    t.log.on_status(t.regs);
    t.regs.write(reg::CONTROL, ctl_on, 8);
    CHECK(t.put(2).written);
}

TEST_CASE("PPR log records go to the PPR ring with PPRInt", "[unit][amd]") {
    Log t;
    AmdLog ppr{AmdLog::Which::ppr};
    t.regs.write(reg::PPR_BASE, 0x30'0000 | (uint64_t{9} << 56), 8);
    ppr.on_base(t.regs);
    CHECK_FALSE(ppr.log(t.port, PprEntry{}.encode(), t.regs, t.l).written); // PPRLogEn clear
    t.regs.write(reg::CONTROL, 1 | (uint64_t{1} << ctl::PPRLOG_EN) | (uint64_t{1} << ctl::PPRINT_EN) |
                                   (uint64_t{1} << ctl::PPR_EN), 8);
    PprEntry p;
    p.device_id = 0x20;
    p.prg_index = 3;
    auto r = ppr.log(t.port, p.encode(), t.regs, t.l);
    CHECK(r.written);
    CHECK(t.regs.status() & st::PPR_INT);
    CHECK(t.regs.read(reg::PPR_TAIL, 4) == 16);
}
