// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <variant>
#include <vector>

#include "models/iommu/amd/amd_commands.hpp"
#include "models/iommu/amd/amd_hw_viommu.hpp"
#include "models/mem/sparse_memory.hpp"

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::amd;

namespace {
constexpr uint64_t kPrivate = 0x1000000, kBuffer = 0x40000, kGuestRamGpa = 0x40000000, kGuestRamHpa = 0x800000;
constexpr uint64_t kGuestRamBytes = 0x100000;

struct Rig {
    mem::SparseMemory m{uint64_t{1} << 32};
    PhysMemPort port{m, Duration::ns(90)};
    AmdParams p;
    AmdHwViommuCore core{p, 2};
    std::vector<InvalidationScope> invalidated;
    std::vector<std::array<uint64_t, 2>> trapped;
    AmdHwViommuCore::Hooks hooks{[this](const CommandAction& a) -> uint64_t {
                                     if (auto* t = std::get_if<InvalidateTranslations>(&a)) invalidated.push_back(t->scope);
                                     return 3;
                                 },
                                 [this](uint16_t, const std::array<uint64_t, 2>& q) { trapped.push_back(q); }};
    uint32_t tail = 0;
    Duration local;

    /// What the host kernel does (Linux's AMD vIOMMU series) for GuestID 1.
    explicit Rig(uint16_t gid = 1) {
        core.vfcntl_write(hwv::kPrivateBaseReg, kPrivate, port, local);
        const std::array<uint64_t, 3> w{kGuestRamGpa, kGuestRamHpa, kGuestRamBytes};
        m.write(core.window(gid), w.data(), sizeof w);
        core.vfcntl_write(gid * hwv::kVfCntlStride + hwv::kDevMapCtl, hwv::map_control(0x18, 0x0300), port, local);
        core.vfcntl_write(gid * hwv::kVfCntlStride + hwv::kDomMapCtl, hwv::map_control(7, 42), port, local);
        core.vfcntl_write(gid * hwv::kVfCntlStride + hwv::kCmdCtl, kBuffer | 8 | hwv::kCmdEn, port, local); // 256 entries
    }
    /// The guest writes one command and rings its VF tail.
    bool push(uint16_t gid, const Command& c) {
        const std::array<uint64_t, 2> q = encode(c);
        m.write(kBuffer + tail, q.data(), 16);
        tail += 16;
        return core.vf_write(gid * hwv::kVfStride + hwv::kVfTail, tail);
    }
    void drain(uint16_t gid) {
        while (core.next_with_work(gid) == gid) core.step(gid, port, hooks, local);
    }
};
} // namespace

TEST_CASE("hardware vIOMMU: a DID_MAP_CONTROL write puts the entry into the guest's map table in the private space",
          "[amd][viommu][hw]") {
    Rig r;
    uint64_t dom = 0, dev = 0;
    r.m.read(r.core.dommap(1) + 7 * 8, &dom, 8);
    r.m.read(r.core.devmap(1) + 0x18 * 16, &dev, 8);
    CHECK(dom == ((uint64_t{42} << 16) | 1));
    CHECK(dev == ((uint64_t{0x0300} << 16) | 1));
    // GuestID 0's tables are elsewhere and empty; host ID 0 clears (Linux clear_domain_mapping).
    r.m.read(r.core.dommap(0) + 7 * 8, &dom, 8);
    CHECK(dom == 0);
    r.core.vfcntl_write(1 * hwv::kVfCntlStride + hwv::kDomMapCtl, hwv::map_control(7, 0), r.port, r.local);
    r.m.read(r.core.dommap(1) + 7 * 8, &dom, 8);
    CHECK(dom == 0);
}

TEST_CASE("hardware vIOMMU: the unit executes the guest's INVALIDATE_IOMMU_PAGES under the host DomainID, no trap",
          "[amd][viommu][hw]") {
    Rig r;
    CHECK(r.push(1, linux_inv_iommu_pages(7, 0x5000, 0x2000, false)));
    CHECK(r.push(1, linux_completion_wait(kGuestRamGpa + 0x100, 0x77)));
    r.drain(1);
    REQUIRE(r.invalidated.size() == 1);
    CHECK(r.invalidated[0].domain_tag == 42);
    CHECK(r.invalidated[0].kind == InvalidationScope::Kind::range);
    CHECK(r.trapped.empty());
    // The COMPLETION_WAIT store reached guest RAM (host PA through the guest's window).
    uint64_t sem = 0;
    r.m.read(kGuestRamHpa + 0x100, &sem, 8);
    CHECK(sem == 0x77);
    CHECK(r.core.vf_read(1 * hwv::kVfStride + hwv::kVfHead) == 32);
    CHECK(r.core.counts().executed == 2);
    // Costs: two fetches, two decodes, one map read, the store.
    CHECK(r.local > r.p.command_fetch * 2 + r.p.per_command * 2 + r.p.table_read + r.p.status_write);
}

TEST_CASE("hardware vIOMMU: a guest DomainID without a mapping drops nothing and is counted", "[amd][viommu][hw]") {
    Rig r;
    r.push(1, linux_inv_iommu_pages(9, 0, uint64_t{1} << 63, false));
    r.drain(1);
    CHECK(r.invalidated.empty());
    CHECK(r.core.counts().unmapped_domains == 1);
    CHECK(r.trapped.empty());
}

TEST_CASE("hardware vIOMMU: other commands trap to the hypervisor, an unmapped DeviceID is refused without a trap",
          "[amd][viommu][hw]") {
    Rig r;
    r.push(1, InvalidateDevtabEntry{0x18});
    r.push(1, InvalidateDevtabEntry{0x20}); // no vDEVICE maps 0x20
    r.push(1, InvalidateIommuAll{});
    r.drain(1);
    REQUIRE(r.trapped.size() == 2);
    CHECK(r.trapped[0] == encode(InvalidateDevtabEntry{0x18}));
    CHECK(r.trapped[1] == encode(InvalidateIommuAll{}));
    CHECK(r.core.counts().unmapped_devices == 1);
}

TEST_CASE("hardware vIOMMU: an illegal guest command stops the guest's buffer until CmdBufEn is toggled",
          "[amd][viommu][hw]") {
    Rig r;
    const std::array<uint64_t, 2> bad{uint64_t{0xF} << 60, 0};
    r.m.write(kBuffer, bad.data(), 16);
    r.core.vf_write(1 * hwv::kVfStride + hwv::kVfTail, 16);
    r.drain(1);
    CHECK(r.core.stopped(1));
    CHECK(r.core.vf_read(1 * hwv::kVfStride + hwv::kVfHead) == 0); // the head stays on it
    CHECK_FALSE(r.core.next_with_work(1));
    const uint32_t ctl = 1 * hwv::kVfCntlStride + hwv::kCmdCtl;
    r.core.vfcntl_write(ctl, r.core.vfcntl_read(ctl) & ~hwv::kCmdEn, r.port, r.local);
    r.core.vfcntl_write(ctl, r.core.vfcntl_read(ctl) | hwv::kCmdEn, r.port, r.local);
    CHECK_FALSE(r.core.stopped(1));
}

TEST_CASE("hardware vIOMMU: each GuestID has its own buffer and maps", "[amd][viommu][hw]") {
    Rig r;
    // GuestID 0 has no DomainID 7: its command for 7 drops nothing, GuestID 1's drops DomainID 42.
    r.core.vfcntl_write(0 * hwv::kVfCntlStride + hwv::kCmdCtl, 0x80000 | 8 | hwv::kCmdEn, r.port, r.local);
    const std::array<uint64_t, 2> q = encode(linux_inv_iommu_pages(7, 0, 0x1000, false));
    r.m.write(0x80000, q.data(), 16);
    r.core.vf_write(0 * hwv::kVfStride + hwv::kVfTail, 16);
    r.push(1, linux_inv_iommu_pages(7, 0, 0x1000, false));
    CHECK(r.core.next_with_work(0) == uint16_t{0});
    r.drain(0);
    CHECK(r.invalidated.empty());
    r.drain(1);
    REQUIRE(r.invalidated.size() == 1);
    CHECK(r.invalidated[0].domain_tag == 42);
}
