// SPDX-License-Identifier: Apache-2.0
// The CMDQV core (NVIDIA Tegra241 CMDQ-Virtualization) programmed as Linux's
// tegra241-cmdqv.c programs a user-space VINTF: the guest's commands run with the
// VINTF's VMID, its StreamIDs go through SID_MATCH / SID_REPLACE, its ATC_INVs
// leave through the SMMU's ATS path and its CMD_SYNC waits for them, and what
// a guest queue may not carry stops it with CONS.ERR = CERROR_ILL.
#include <catch2/catch.hpp>

#include <variant>
#include <vector>

#include "models/iommu/smmuv3/smmuv3_cmdqv.hpp"
#include "models/iommu/smmuv3/smmuv3_commands.hpp"
#include "models/mem/sparse_memory.hpp"

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::smmuv3;

namespace {
constexpr uint64_t kRing = 0x40000; // host PA of the guest's queue (256 commands)
constexpr uint16_t kVmid = 9;

struct Rig {
    mem::SparseMemory m{uint64_t{1} << 32};
    PhysMemPort port{m, Duration::ns(90)};
    Smmuv3Params p = [] {
        Smmuv3Params q;
        q.cmdqv_vintfs = 2;
        return q;
    }();
    Smmuv3CmdqvCore core{p};
    std::vector<InvalidationScope> invalidated;
    std::vector<InvalidateDeviceAtc> atc_sent; ///< what went to the SMMU's ATS path
    uint32_t atc_in_flight = 0;                ///< the SMMU's count of the block's invalidations
    bool device_queue_full = false;
    Smmuv3CmdqvCore::Hooks hooks{[this](const CommandAction& a) -> uint64_t {
                                     if (auto* t = std::get_if<InvalidateTranslations>(&a)) invalidated.push_back(t->scope);
                                     return 2;
                                 },
                                 [this](const InvalidateDeviceAtc& a, Duration& l) {
                                     if (device_queue_full) return false;
                                     atc_sent.push_back(a);
                                     ++atc_in_flight;
                                     l += Duration::ns(10);
                                     return true;
                                 },
                                 [this] { return atc_in_flight; }, [] { return Duration{}; }};
    uint32_t prod = 0;
    Duration local;

    /// The host: tegra241_cmdqv_hw_reset, then VINTF1 for a VM (VMID 9, HYP_OWN 0) with vSID 0x18 ->
    /// pSID 0x300, its LVCMDQ 0 mapped and based at kRing; the VMM enables it.
    Rig() {
        core.write(cmdqv::kConfig, cmdqv::kEn, 4);
        for (uint32_t q = 0; q < core.queues(); ++q) core.write(cmdqv::cmdq_alloc(q), cmdqv::alloc_value(q / 2, q % 2, false), 4);
        core.write(cmdqv::vintf(1) + cmdqv::kVintfConfig, cmdqv::vintf_config(kVmid, false, true), 4);
        core.write(cmdqv::vintf(1) + cmdqv::sid_replace(0), 0x300, 4);
        core.write(cmdqv::vintf(1) + cmdqv::sid_match(0), cmdqv::sid_match_value(0x18), 4);
        core.write(cmdqv::cmdq_alloc(2), cmdqv::alloc_value(1, 0, true), 4);
        core.write(cmdqv::vintf_page1(1) + cmdqv::kBase, cmdqv::base_value(kRing, 8), 8);
        core.write(cmdqv::vintf_page0(1) + cmdqv::kQConfig, cmdqv::kEn, 4);
    }
    /// The guest writes one command and publishes PROD through its VINTF's page 0.
    void push(const Command& c) {
        const std::array<uint64_t, 2> e = c.encode();
        m.write(kRing + uint64_t{prod % 256} * 16, e.data(), 16);
        prod = (prod + 1) % 512;
        core.write(cmdqv::vintf_page0(1) + cmdqv::kProd, prod, 4);
    }
    void drain() {
        for (int k = 0; k < 1000; ++k) {
            std::optional<uint16_t> q = core.next_with_work(0);
            if (!q) return;
            core.step(*q, port, hooks, local);
        }
    }
    uint32_t reg(uint32_t off) { return static_cast<uint32_t>(core.read(off, 4)); }
    /// An ATC_INV (sent) and the CMD_SYNC behind it, left waiting for it; the queue.
    uint16_t sync_behind_atc_inv() {
        push(Command{.opcode = op::kAtcInv, .sid = 0x18, .size = 52});
        push(Command{.opcode = op::kSync});
        const uint16_t q = core.next_with_work(0).value();
        REQUIRE_FALSE(core.step(q, port, hooks, local).waiting);
        const Smmuv3CmdqvCore::Wait w = core.step(q, port, hooks, local);
        REQUIRE(w.waiting);
        CHECK_FALSE(w.device); // for the block's invalidations, not a device's slot
        return q;
    }
};
} // namespace

TEST_CASE("CMDQV: PARAM advertises the VINTFs / queues / SID pairs and a VINTF's LVCMDQ 0 is the global queue CMDQ_ALLOC maps",
          "[smmuv3][cmdqv]") {
    Rig r;
    const uint32_t param = r.reg(cmdqv::kParam);
    CHECK(((param >> 12) & 0xF) == 4); // 16 SID pairs
    CHECK(((param >> 8) & 0xF) == 1);  // 2 VINTFs
    CHECK(((param >> 4) & 0xF) == 2);  // 4 VCMDQs
    CHECK(r.reg(cmdqv::vintf(1) + cmdqv::kVintfStatus) & 1);
    CHECK(r.reg(cmdqv::vcmdq_page0(2) + cmdqv::kQStatus) == 1); // enabled through the VINTF's logical page
    CHECK(r.core.read(cmdqv::vcmdq_page1(2) + cmdqv::kBase, 8) == cmdqv::base_value(kRing, 8));
    CHECK(r.reg(cmdqv::vintf_page0(1) + cmdqv::kQueueStride + cmdqv::kQStatus) == 0); // LVCMDQ 1: not mapped
    CHECK(r.core.vintf_of(2) == uint16_t{1});
}

TEST_CASE("CMDQV: a guest's TLBI_NH_VA runs with the VINTF's VMID instead of the one the guest wrote", "[smmuv3][cmdqv]") {
    Rig r;
    r.push(Command{.opcode = op::kTlbiNhVa, .leaf = true, .vmid = 1, .asid = 5, .addr = 0x7000});
    r.push(Command{.opcode = op::kSync});
    r.drain();
    REQUIRE(r.invalidated.size() == 1);
    CHECK(r.invalidated[0].domain_tag == kVmid);
    CHECK(r.invalidated[0].as_tag == 5);
    CHECK(r.core.counts().vmid_forced == 1);
    CHECK(r.reg(cmdqv::vintf_page0(1) + cmdqv::kCons) == 2); // past the CMD_SYNC, no error
    CHECK(r.local > Duration::zero());
}

TEST_CASE("CMDQV: a guest's ATC_INV goes to the SMMU's ATS path for the pSID SID_MATCH names, an unmatched vSID stops "
          "the queue with CERROR_ILL",
          "[smmuv3][cmdqv]") {
    Rig r;
    r.push(Command{.opcode = op::kAtcInv, .sid = 0x18, .ssv = true, .ssid = 3, .addr = 0x5000, .size = 1});
    r.drain();
    REQUIRE(r.atc_sent.size() == 1);
    CHECK(r.atc_sent[0].request.target == pcie::Bdf(0x300)); // vSID 0x18 -> pSID 0x300
    CHECK(r.atc_sent[0].request.pasid_present);
    CHECK(r.atc_sent[0].request.pasid == 3);
    CHECK(r.atc_sent[0].request.address == 0x4000); // 2 pages at 0x4000 (SIZE 1: 8 KiB, aligned)
    CHECK(r.atc_sent[0].queue_depth == 32);
    CHECK(r.core.counts().sid_replaced == 1);
    CHECK(r.core.counts().atc_invalidations == 1);
    CHECK(r.reg(cmdqv::vintf_page0(1) + cmdqv::kCons) == 1); // executed: CONS past it
    r.atc_in_flight = 0;                                     // (completed)
    r.push(Command{.opcode = op::kAtcInv, .sid = 0x77, .size = 52});
    r.drain();
    CHECK(r.core.counts().unmatched_sids == 1);
    CHECK(r.atc_sent.size() == 1); // nothing sent for it
    const uint32_t cons = r.reg(cmdqv::vintf_page0(1) + cmdqv::kCons);
    CHECK(((cons >> 24) & 0x7F) == static_cast<uint32_t>(CmdError::ill));
    CHECK((cons & 0x1FF) == 1); // CONS stays on the refused command
}

TEST_CASE("CMDQV: a CMD_SYNC waits at CONS while the block's ATC_INVs are in flight and completes without a second fetch",
          "[smmuv3][cmdqv]") {
    Rig r;
    const uint16_t q = r.sync_behind_atc_inv();
    CHECK(r.reg(cmdqv::vintf_page0(1) + cmdqv::kCons) == 1);
    CHECK(r.core.next_with_work(0) == q); // still work: the CMD_SYNC
    const Duration before = r.local;
    r.atc_in_flight = 0; // the Invalidate Completion arrived
    CHECK_FALSE(r.core.step(q, r.port, r.hooks, r.local).waiting);
    CHECK(r.local == before); // no fetch and no decode cost again
    CHECK(r.reg(cmdqv::vintf_page0(1) + cmdqv::kCons) == 2);
    CHECK(r.core.counts().commands == 2);
}

TEST_CASE("CMDQV: an ATC_INV finding the device's invalidate queue full waits at CONS and goes once a slot is free",
          "[smmuv3][cmdqv]") {
    Rig r;
    r.device_queue_full = true;
    r.push(Command{.opcode = op::kAtcInv, .sid = 0x18, .size = 52});
    const uint16_t q = r.core.next_with_work(0).value();
    const Smmuv3CmdqvCore::Wait w = r.core.step(q, r.port, r.hooks, r.local);
    CHECK(w.waiting);
    CHECK(w.device == uint32_t{0x300}); // the physical device's queue
    CHECK(r.atc_sent.empty());
    CHECK(r.core.counts().sid_replaced == 0); // counted when it goes
    r.device_queue_full = false;
    CHECK_FALSE(r.core.step(q, r.port, r.hooks, r.local).waiting);
    CHECK(r.atc_sent.size() == 1);
    CHECK(r.core.counts().sid_replaced == 1);
    CHECK(r.reg(cmdqv::vintf_page0(1) + cmdqv::kCons) == 1);
}

TEST_CASE("CMDQV: a wait past the ATS time-out stops the queue with CERROR_ATC_INV_SYNC on the waiting CMD_SYNC",
          "[smmuv3][cmdqv]") {
    Rig r;
    r.core.atc_timeout(r.sync_behind_atc_inv());
    const uint32_t p0 = cmdqv::vintf_page0(1);
    CHECK(((r.reg(p0 + cmdqv::kCons) >> 24) & 0x7F) == static_cast<uint32_t>(CmdError::atc_inv_sync));
    CHECK((r.reg(p0 + cmdqv::kCons) & 0x1FF) == 1); // on the CMD_SYNC
    CHECK(((r.reg(p0 + cmdqv::kGerror) ^ r.reg(p0 + cmdqv::kGerrorN)) & 1) == 1);
    CHECK(r.reg(cmdqv::kVintfErrMap) == 2);
    CHECK_FALSE(r.core.next_with_work(0)); // stopped until software acknowledges
    CHECK(r.core.counts().atc_timeouts == 1);
}

TEST_CASE("CMDQV: a command a guest queue may not carry is reported in CONS.ERR / GERROR / the VINTF and queue error maps",
          "[smmuv3][cmdqv]") {
    Rig r;
    r.push(Command{.opcode = op::kCfgiSte, .sid = 0x18, .leaf = true});
    r.push(Command{.opcode = op::kTlbiNhAsid, .asid = 5});
    r.drain();
    const uint32_t p0 = cmdqv::vintf_page0(1);
    CHECK(((r.reg(p0 + cmdqv::kCons) >> 24) & 0x7F) == static_cast<uint32_t>(CmdError::ill));
    CHECK(((r.reg(p0 + cmdqv::kGerror) ^ r.reg(p0 + cmdqv::kGerrorN)) & 1) == 1);
    CHECK(r.core.read(cmdqv::vintf(1) + cmdqv::lvcmdq_err_map(0), 8) == 1); // its LVCMDQ 0
    CHECK(r.reg(cmdqv::kVintfErrMap) == 2);                                 // VINTF 1
    CHECK(r.reg(cmdqv::vintf(1) + cmdqv::kVintfStatus) & 2);                // VINTF_STATUS error
    CHECK(r.invalidated.empty());                                           // the queue stopped on it
    CHECK(r.core.counts().refused == 1);
    // arm_smmu_cmdq_skip_err: the command becomes a CMD_SYNC, GERRORN acknowledges, the queue goes on.
    const std::array<uint64_t, 2> sync = Command{.opcode = op::kSync}.encode();
    r.m.write(kRing, sync.data(), 16);
    r.core.write(p0 + cmdqv::kGerrorN, r.reg(p0 + cmdqv::kGerror), 4);
    CHECK(r.reg(cmdqv::kVintfErrMap) == 0);
    r.drain();
    CHECK(r.invalidated.size() == 1);
    CHECK(r.reg(p0 + cmdqv::kCons) == 2);
}

TEST_CASE("CMDQV: a CMD_SYNC asking for an MSI is refused on a guest queue (CS_NONE only)", "[smmuv3][cmdqv]") {
    Rig r;
    r.push(Command{.opcode = op::kSync, .cs = SyncSignal::irq, .msi_data = 1, .msi_addr = 0x1000});
    r.drain();
    CHECK(((r.reg(cmdqv::vintf_page0(1) + cmdqv::kCons) >> 24) & 0x7F) == static_cast<uint32_t>(CmdError::ill));
}

TEST_CASE("CMDQV: a hypervisor-owned VINTF keeps its commands' VMIDs and takes the other commands", "[smmuv3][cmdqv]") {
    Rig r;
    r.core.write(cmdqv::vintf(1) + cmdqv::kVintfConfig, cmdqv::vintf_config(kVmid, true, true), 4);
    r.push(Command{.opcode = op::kTlbiS12Vmall, .vmid = 3});
    r.push(Command{.opcode = op::kSync});
    r.drain();
    REQUIRE(r.invalidated.size() == 1);
    CHECK(r.core.counts().vmid_forced == 0);
    CHECK(r.core.counts().errors == 0);
}
