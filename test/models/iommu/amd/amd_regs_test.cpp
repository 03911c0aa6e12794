// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "models/iommu/amd/amd_regs.hpp"

using namespace iommusim;
using namespace iommusim::iommu::amd;

TEST_CASE("EFR advertises the parameters at Linux's FEATURE_* positions", "[unit][amd]") {
    AmdParams p;
    p.host_levels = 6;
    p.guest_levels = 5;
    p.glx_max = 1;
    p.pasid_bits = 16;
    AmdRegs r(p);
    uint64_t efr_v = r.read(reg::EFR, 8);
    CHECK(efr_v & efr::PPRSup);
    CHECK(efr_v & efr::NXSup);
    CHECK(efr_v & efr::GTSup);
    CHECK(efr_v & efr::IASup);
    CHECK(efr_v & efr::GIoSup);
    CHECK_FALSE(efr_v & efr::PreFSup);
    CHECK_FALSE(efr_v & efr::GASup);
    CHECK_FALSE(efr_v & efr::PCSup);
    CHECK(((efr_v >> 10) & 3) == 2);    // HATS: 6 levels (Linux: HATS + 4)
    CHECK(((efr_v >> 12) & 3) == 1);    // GATS: 5-level guest tables
    CHECK(((efr_v >> 14) & 3) == 1);    // GLXSup
    CHECK(((efr_v >> 32) & 0x1F) == 15); // PASmax: (1 << (15 + 1)) - 1 PASIDs in Linux
    p.host_levels = 4;
    p.guest_levels = 4;
    p.prefetch = p.perf_counters = p.guest_apic = true;
    uint64_t e2 = AmdRegs(p).read(reg::EFR, 8);
    CHECK(((e2 >> 10) & 3) == 0);
    CHECK(((e2 >> 12) & 3) == 0);
    CHECK((e2 & (efr::PreFSup | efr::PCSup | efr::GASup)) == (efr::PreFSup | efr::PCSup | efr::GASup));
    // Read-only: a write changes nothing.
    r.write(reg::EFR, 0, 8);
    CHECK(r.read(reg::EFR, 8) == efr_v);
    CHECK(r.read(reg::EFR2, 8) == 0);
}

TEST_CASE("Parameter checks reject capabilities the EFR cannot express", "[unit][amd][config]") {
    AmdParams p;
    CHECK(p.check() == nullptr);
    p.host_levels = 3;
    CHECK(p.check() != nullptr);
    p = {};
    p.guest_levels = 6;
    CHECK(p.check() != nullptr);
    p = {};
    p.glx_max = 3;
    CHECK(p.check() != nullptr);
    p = {};
    p.pasid_bits = 21;
    CHECK(p.check() != nullptr);
}

TEST_CASE("Device Table Base gives the table address and its size in 4 KiB pages", "[unit][amd]") {
    AmdRegs r{AmdParams{}};
    CHECK(r.write(reg::DEV_TABLE, 0x0000'0012'3400'0000ull | 0x1FF, 8) == AmdRegs::Effect::dev_table);
    DevTable dt = r.dev_table();
    CHECK(dt.base == 0x12'3400'0000ull);
    CHECK(dt.entries == 65536); // 512 pages x 128 entries: Linux's 2 MiB table
    r.write(reg::DEV_TABLE, 0x5000 | 0, 8);
    CHECK(r.dev_table().entries == 128);
}

TEST_CASE("Ring base registers give base and 2^len entries and reset the pointers", "[unit][amd]") {
    AmdRegs r{AmdParams{}};
    r.write(reg::CMD_TAIL, 0x40, 4);
    r.hw_set_cmd_head(0x20);
    // Linux: base | MMIO_CMD_SIZE_512 (0x9 << 56).
    CHECK(r.write(reg::CMD_BASE, 0x0000'0001'0000'0000ull | (uint64_t{9} << 56), 8) == AmdRegs::Effect::cmd_base);
    RingRegs c = r.cmd_ring();
    CHECK(c.base == 0x1'0000'0000ull);
    CHECK(c.entries == 512);
    CHECK(c.bytes() == 8192);
    CHECK(c.head == 0);
    CHECK(c.tail == 0);
    r.write(reg::EVT_BASE, 0x2000 | (uint64_t{8} << 56), 8);
    CHECK(r.event_ring().entries == 256);
    r.write(reg::PPR_BASE, 0x3000 | (uint64_t{15} << 56), 8);
    CHECK(r.ppr_ring().entries == 32768);
    r.write(reg::PPR_BASE, 0x3000 | (uint64_t{7} << 56), 8);
    CHECK(r.ppr_ring().entries == 0); // lengths below 256 entries are reserved
}

TEST_CASE("Ring pointers keep bits 18:4 and accept 32-bit writes", "[unit][amd]") {
    AmdRegs r{AmdParams{}};
    CHECK(r.write(reg::CMD_TAIL, 0xFFFF'FFFFu, 4) == AmdRegs::Effect::cmd_tail);
    CHECK(r.read(reg::CMD_TAIL, 4) == 0x7FFF0);
    CHECK(r.read(reg::CMD_TAIL + 4, 4) == 0);
    r.write(reg::EVT_HEAD, 0x130, 4);
    CHECK(r.event_ring().head == 0x130);
    r.write(reg::PPR_HEAD, 0x20, 8);
    CHECK(r.ppr_ring().head == 0x20);
    // Misaligned or odd-sized accesses are ignored.
    CHECK(r.write(reg::CMD_TAIL + 2, 0x10, 4) == AmdRegs::Effect::none);
    CHECK(r.write(reg::CMD_TAIL, 0x10, 2) == AmdRegs::Effect::none);
    CHECK(r.read(reg::CMD_TAIL, 4) == 0x7FFF0);
}

TEST_CASE("Control enables set the run bits of Status, sticky bits are write-1-to-clear", "[unit][amd]") {
    AmdRegs r{AmdParams{}};
    CHECK(r.read(reg::STATUS, 4) == 0);
    uint64_t c = (uint64_t{1} << ctl::CMDBUF_EN) | (uint64_t{1} << ctl::EVT_LOG_EN) | (uint64_t{1} << ctl::PPRLOG_EN);
    r.write(reg::CONTROL, c, 8);
    CHECK(r.read(reg::STATUS, 4) == 0); // nothing runs until IommuEn
    r.write(reg::CONTROL, c | 1, 8);
    CHECK(r.read(reg::STATUS, 4) == (st::CMDBUF_RUN | st::EVT_RUN | st::PPR_RUN));
    CHECK(r.cmdbuf_running());
    r.hw_set_status(st::COM_WAIT_INT | st::EVT_OVERFLOW | st::CMDBUF_RUN);
    CHECK((r.status() & (st::COM_WAIT_INT | st::EVT_OVERFLOW)) == (st::COM_WAIT_INT | st::EVT_OVERFLOW));
    // Writing 1 to a run bit or 0 to a sticky bit changes nothing.
    r.write(reg::STATUS, st::CMDBUF_RUN, 4);
    CHECK(r.status() & st::CMDBUF_RUN);
    CHECK(r.status() & st::COM_WAIT_INT);
    r.write(reg::STATUS, st::COM_WAIT_INT, 4);
    CHECK_FALSE(r.status() & st::COM_WAIT_INT);
    CHECK(r.status() & st::EVT_OVERFLOW);
    // Disabling the command buffer clears CmdBufRun.
    r.write(reg::CONTROL, 1 | (uint64_t{1} << ctl::EVT_LOG_EN), 8);
    CHECK_FALSE(r.status() & st::CMDBUF_RUN);
}

TEST_CASE("Control.InvTimeOut selects the ATS invalidation time-out", "[unit][amd]") {
    AmdRegs r{AmdParams{}};
    CHECK(r.inv_timeout() == Duration::zero());
    r.write(reg::CONTROL, uint64_t{ctl::INV_TO_1S} << ctl::INV_TIMEOUT, 8); // Linux's setting
    CHECK(r.inv_timeout() == Duration::us(1'000'000));
    r.write(reg::CONTROL, uint64_t{ctl::INV_TO_1MS} << ctl::INV_TIMEOUT, 8);
    CHECK(r.inv_timeout() == Duration::us(1000));
    r.write(reg::CONTROL, uint64_t{7} << ctl::INV_TIMEOUT, 8);
    CHECK(r.inv_timeout() == Duration::zero());
}

TEST_CASE("Event and PPR log tails are software-writable only while the log is off", "[unit][amd]") {
    AmdRegs r{AmdParams{}};
    r.write(reg::EVT_TAIL, 0x40, 4);
    CHECK(r.event_ring().tail == 0x40);
    r.write(reg::CONTROL, 1 | (uint64_t{1} << ctl::EVT_LOG_EN) | (uint64_t{1} << ctl::PPRLOG_EN), 8);
    r.write(reg::EVT_TAIL, 0, 4);
    CHECK(r.event_ring().tail == 0x40);
    r.hw_set_event_tail(0x50);
    CHECK(r.read(reg::EVT_TAIL, 4) == 0x50);
    r.write(reg::PPR_TAIL, 0x10, 4);
    CHECK(r.ppr_ring().tail == 0);
}

TEST_CASE("A run bit the unit stopped stays clear until software toggles the enable", "[unit][amd]") {
    AmdRegs r{AmdParams{}};
    const uint64_t on = 1 | (uint64_t{1} << ctl::CMDBUF_EN) | (uint64_t{1} << ctl::EVT_LOG_EN);
    r.write(reg::CONTROL, on, 8);
    r.hw_stop(st::CMDBUF_RUN); // illegal command
    CHECK_FALSE(r.cmdbuf_running());
    CHECK_FALSE(r.status() & st::CMDBUF_RUN);
    CHECK(r.event_log_running());
    r.write(reg::CONTROL, on, 8); // rewriting the same value does not restart it
    CHECK_FALSE(r.cmdbuf_running());
    r.write(reg::CONTROL, on & ~(uint64_t{1} << ctl::CMDBUF_EN), 8);
    r.write(reg::CONTROL, on, 8);
    CHECK(r.cmdbuf_running());
    CHECK(r.status() & st::CMDBUF_RUN);
}

TEST_CASE("The MSI capability's MMIO mirror holds the unit's interrupt message", "[unit][amd]") {
    AmdRegs r{AmdParams{}};
    CHECK(r.read(reg::EFR, 8) & (uint64_t{1} << 46)); // MsiCapMmioSup
    r.write(reg::MSI_ADDR_LO, 0xFEE0'1003u, 4);
    r.write(reg::MSI_ADDR_HI, 0, 4);
    r.write(reg::MSI_DATA, 0x4041, 4);
    CHECK(r.msi_address() == 0xFEE0'1000u); // dword aligned
    CHECK(r.msi_data() == 0x4041);
    CHECK(r.read(reg::MSI_ADDR_LO, 4) == 0xFEE0'1000u);
    CHECK(r.read(reg::MSI_DATA, 4) == 0x4041);
}
