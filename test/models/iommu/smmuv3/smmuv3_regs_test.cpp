// SPDX-License-Identifier: Apache-2.0
// SMMUv3 register file: ID registers from params, enable / acknowledge
// pairs, global errors, queue pointers with wrap bits, overflow flags.
#include <catch2/catch.hpp>

#include "models/iommu/smmuv3/smmuv3_regs.hpp"
#include "models/mem/sparse_memory.hpp"

using namespace iommusim::iommu::smmuv3;

TEST_CASE("SMMUv3 ID registers advertise exactly the parameters, at the architected bit positions", "[unit]") {
    Smmuv3Params p;
    Smmuv3Regs r(p);
    // S2P, S1P, TTF=AArch64, COHACC, HTTU=2, HYP, ATS, ASID16, MSI, SEV, PRI, VMID16, CD2L, TTENDIAN=LE,
    // ATSRECERR, ST_LVL=2-level.
    CHECK(r.read(reg::kIdr0, 4) == 0x08CD'7A9B);
    // SIDSIZE 32, SSIDSIZE 20, PRIQS/EVTQS/CMDQS 19.
    CHECK(r.read(reg::kIdr1, 4) == 0x0273'9D20);
    CHECK(r.read(reg::kIdr3, 4) == 0x400);        // RIL
    CHECK(r.read(reg::kIdr5, 4) == 0x0040'0075);  // STALL_MAX 64, GRAN64K/16K/4K, OAS = 48 bits
    CHECK(r.read(reg::kAidr, 4) == 2);            // SMMUv3.2
    p.pps = true;
    CHECK(r.read(reg::kIdr3, 4) == 0x420); // RIL, PPS
    p.ril = false;
    p.pps = false;
    p.ats_rec_err = false;
    CHECK((r.read(reg::kIdr0, 4) >> 23 & 1) == 0);
    p.stall_model = StallModel::forced;
    p.st_2level = false;
    p.oas_bits = 44;
    p.stall_max = 1;
    p.gran16k = false;
    CHECK(r.read(reg::kIdr3, 4) == 0);
    CHECK((r.read(reg::kIdr0, 4) >> 24 & 3) == 2);
    CHECK((r.read(reg::kIdr0, 4) >> 27 & 3) == 0);
    CHECK(r.read(reg::kIdr5, 4) == 0x0001'0054);
    CHECK(r.write(reg::kIdr0, 4, 0) == Smmuv3Regs::kNoEffect); // read-only
    CHECK(r.read(reg::kIdr1, 4) == 0x0273'9D20);
}

TEST_CASE("CR0 and IRQ_CTRL writes are acknowledged in CR0ACK and IRQ_CTRLACK", "[unit]") {
    Smmuv3Params p;
    Smmuv3Regs r(p);
    CHECK(r.write(reg::kCr0, 4, 0xFFFF'FFFF) == Smmuv3Regs::kCr0Written);
    CHECK(r.read(reg::kCr0, 4) == 0x1F);  // SMMUEN, PRIQEN, EVTQEN, CMDQEN, ATSCHK; the rest RES0
    CHECK(r.read(reg::kCr0Ack, 4) == 0x1F);
    CHECK(r.enabled(bit::kCmdqEn));
    r.write(reg::kCr0, 4, bit::kCmdqEn);
    CHECK_FALSE(r.enabled(bit::kSmmuEn));
    CHECK(r.read(reg::kCr0, 8) == (uint64_t{bit::kCmdqEn} << 32 | bit::kCmdqEn)); // CR0 + CR0ACK as one 64-bit read
    CHECK(r.write(reg::kIrqCtrl, 4, 5) == Smmuv3Regs::kIrqCtrlWritten);
    CHECK(r.read(reg::kIrqCtrlAck, 4) == 5);
    CHECK(r.irq_enabled(bit::kEvtqIrqEn));
    CHECK_FALSE(r.irq_enabled(bit::kPriqIrqEn));
}

TEST_CASE("GBPA fields change only with Update set, and Update reads back as done", "[unit]") {
    Smmuv3Params p;
    Smmuv3Regs r(p);
    r.write(reg::kGbpa, 4, bit::kGbpaAbort);
    CHECK_FALSE(r.gbpa_abort());
    r.write(reg::kGbpa, 4, bit::kGbpaAbort | bit::kGbpaUpdate);
    CHECK(r.gbpa_abort());
    CHECK(r.read(reg::kGbpa, 4) == bit::kGbpaAbort);
}

TEST_CASE("a global error is active while GERROR and GERRORN differ and is raised once until acknowledged",
          "[unit]") {
    Smmuv3Params p;
    Smmuv3Regs r(p);
    CHECK(r.raise(Gerror::cmdq_err));
    CHECK(r.read(reg::kGerror, 4) == 1);
    CHECK_FALSE(r.raise(Gerror::cmdq_err)); // still active: not toggled again
    CHECK(r.read(reg::kGerror, 4) == 1);
    CHECK(r.write(reg::kGerror, 4, 0) == Smmuv3Regs::kNoEffect); // GERROR is read-only
    CHECK(r.active_errors() == 1);
    CHECK(r.write(reg::kGerrorN, 4, 1) == Smmuv3Regs::kGerrorNWritten); // software acknowledges by toggling
    CHECK(r.active_errors() == 0);
    CHECK(r.raise(Gerror::cmdq_err)); // the next error toggles GERROR back to 0
    CHECK(r.read(reg::kGerror, 4) == 0);
    CHECK(r.active_errors() == 1);
    CHECK(r.raise(Gerror::sfm_err));
    CHECK(r.active_errors() == (1u | 1u << 8));
}

TEST_CASE("queue bases, stream table and MSI registers take 64-bit and 32-bit-half writes", "[unit]") {
    Smmuv3Params p;
    Smmuv3Regs r(p);
    r.write(reg::kCmdqBase, 8, 0x4000'0000'1234'5008ull); // RA 62, ADDR, LOG2SIZE 8
    CHECK(r.read(reg::kCmdqBase, 8) == 0x4000'0000'1234'5008ull);
    CHECK(r.queue_log2size(Queue::cmdq) == 8);
    CHECK(r.queue_base(Queue::cmdq) == 0x1234'5000); // 256 x 16 B: ADDR below 4 KiB alignment ignored
    r.write(reg::kEvtqBase, 4, 0x8000'0013);          // low half: LOG2SIZE 19
    r.write(reg::kEvtqBase + 4, 4, 0x12);              // high half: ADDR[51:32]
    CHECK(r.read(reg::kEvtqBase, 8) == 0x12'8000'0013ull);
    CHECK(r.queue_log2size(Queue::evtq) == 19);
    r.write(reg::kPriqBase, 8, 0x9000'001F); // LOG2SIZE 31 is capped by IDR1.PRIQS = 19
    CHECK(r.queue_log2size(Queue::priq) == 19);
    r.write(reg::kStrtabBase, 8, 0x4000'0000'8000'0040ull | 0x3F);
    r.write(reg::kStrtabBaseCfg, 4, (1u << 16) | (8u << 6) | 16u | 0xFF00'0000u);
    const StrtabConfig st = r.strtab();
    CHECK(st.base == 0x8000'0040);
    CHECK(st.two_level);
    CHECK(st.split == 8);
    CHECK(st.log2size == 16);
    CHECK(r.read(reg::kStrtabBaseCfg, 4) == ((1u << 16) | (8u << 6) | 16u)); // RES0 bits dropped
    r.write(reg::kEvtqIrqCfg0, 8, 0xFFF0'1234'5678'9ABFull);
    r.write(reg::kEvtqIrqCfg1, 4, 0xCAFE);
    CHECK(r.msi(Queue::evtq).addr == 0x1234'5678'9ABCull); // ADDR 51:2
    CHECK(r.msi(Queue::evtq).data == 0xCAFE);
    r.write(reg::kGerrorIrqCfg0, 4, 0x1000);
    CHECK(r.gerror_msi().addr == 0x1000);
}

TEST_CASE("base and table registers are read-only while their queue or the SMMU is enabled", "[unit]") {
    Smmuv3Params p;
    Smmuv3Regs r(p);
    r.write(reg::kCmdqBase, 8, 0x1000'0005);
    r.write(reg::kStrtabBase, 8, 0x2000'0000);
    r.write(reg::kCr0, 4, bit::kCmdqEn | bit::kSmmuEn);
    r.write(reg::kCmdqBase, 8, 0x3000'0005);
    r.write(reg::kStrtabBase, 8, 0x4000'0000);
    r.write(reg::kStrtabBaseCfg, 4, 5);
    r.write(reg::kCmdqCons, 4, 3);
    CHECK(r.read(reg::kCmdqBase, 8) == 0x1000'0005);
    CHECK(r.strtab().base == 0x2000'0000);
    CHECK(r.strtab().log2size == 0);
    CHECK(r.read(reg::kCmdqCons, 4) == 0);
    CHECK(r.write(reg::kCmdqProd, 4, 2) == Smmuv3Regs::kCmdqProdWritten); // PROD stays writable
    CHECK(r.read(reg::kCmdqProd, 4) == 2);
    r.write(reg::kEvtqBase, 8, 0x5000'0004); // EVTQ not enabled: writable
    CHECK(r.read(reg::kEvtqBase, 8) == 0x5000'0004);
}

TEST_CASE("a queue position is an index below LOG2SIZE and the wrap bit at LOG2SIZE", "[unit]") {
    CHECK(QueuePos::decode(0b1101, 3).index == 5);
    CHECK(QueuePos::decode(0b1101, 3).wrap);
    CHECK_FALSE(QueuePos::decode(0b0101, 3).wrap);
    CHECK((QueuePos{3, true}.encode(2)) == 0b111);
    CHECK((QueuePos{0, true}.encode(19)) == 1u << 19);
}

TEST_CASE("CMDQ_CONS carries the consumer position and the error code in ERR", "[unit]") {
    Smmuv3Params p;
    Smmuv3Regs r(p);
    r.write(reg::kCmdqBase, 8, 0x1000'0003); // 8 entries
    r.write(reg::kCmdqProd, 4, 0b1010);       // software: index 2, wrap 1
    CHECK(r.cmdq_prod().index == 2);
    CHECK(r.cmdq_prod().wrap);
    r.set_cmdq_cons({5, true}, CmdError::ill);
    CHECK(r.read(reg::kCmdqCons, 4) == ((1u << 24) | 0b1101));
    CHECK(r.cmdq_error() == CmdError::ill);
    CHECK(r.cmdq_cons().index == 5);
    r.set_cmdq_cons({6, true});
    CHECK(r.cmdq_error() == CmdError::none);
    r.set_cmdq_cons({6, true}, CmdError::atc_inv_sync);
    CHECK(r.read(reg::kCmdqCons, 4) == ((3u << 24) | 0b1110));
}

namespace {
/// Smmuv3Regs with the EVTQ at 0x8000 (4 entries of 32 bytes) over sparse memory.
struct Evtq {
    iommusim::mem::SparseMemory mem{uint64_t{1} << 20};
    iommusim::iommu::PhysMemPort port{mem};
    Smmuv3Params p;
    Smmuv3Regs r{p};
    iommusim::Duration local;
    std::array<uint64_t, 4> rec{};
    Evtq() {
        r.write(reg::kEvtqBase, 8, 0x8000 | 2);
        r.write(reg::kCr0, 4, bit::kEvtqEn);
    }
    iommusim::iommu::RecordRing::PushResult push(uint64_t tag) {
        rec[0] = tag;
        return r.push(Queue::evtq, port, rec.data(), local);
    }
};
} // namespace

TEST_CASE("event records are written at PROD, which advances with its wrap bit until the queue is full",
          "[unit]") {
    Evtq q;
    for (uint64_t i = 0; i < 4; ++i) {
        auto res = q.push(0x10 + i);
        CHECK(res.written());
        CHECK(q.mem.read_u64(0x8000 + i * 32) == 0x10 + i);
    }
    CHECK(q.r.read(reg::kEvtqProd, 4) == 0b100); // index 0, wrap 1: full against CONS 0
    CHECK(q.r.ring(Queue::evtq).ring().full());
    q.r.write(reg::kEvtqCons, 4, 0b001); // software consumed one
    CHECK(q.push(0x20).written());
    CHECK(q.mem.read_u64(0x8000) == 0x20);
    CHECK(q.r.read(reg::kEvtqProd, 4) == 0b101);
}

TEST_CASE("an event-queue overflow toggles PROD.OVFLG once until software copies it to CONS.OVACKFLG", "[unit]") {
    Evtq q;
    for (int i = 0; i < 4; ++i) q.push(1);
    auto res = q.push(2);
    CHECK(res.outcome == iommusim::iommu::RecordRing::Outcome::overflow);
    CHECK(res.overflow_raised);
    CHECK(q.r.read(reg::kEvtqProd, 4) == (0x8000'0000u | 0b100));
    CHECK_FALSE(q.push(3).overflow_raised); // still unacknowledged
    CHECK(q.r.write(reg::kEvtqCons, 4, 0x8000'0000u | 0b010) == Smmuv3Regs::kEvtqConsWritten);
    CHECK(q.r.read(reg::kEvtqCons, 4) == (0x8000'0000u | 0b010));
    CHECK_FALSE(q.r.ring(Queue::evtq).overflow_pending());
    CHECK(q.push(4).written());
    q.push(5);
    res = q.push(6); // full again: the next overflow toggles OVFLG back
    CHECK(res.overflow_raised);
    CHECK((q.r.read(reg::kEvtqProd, 4) & 0x8000'0000u) == 0);
    CHECK(q.r.ring(Queue::evtq).records_dropped() == 3);
}

TEST_CASE("records are discarded while the queue is disabled and a failed write raises EVTQ_ABT_ERR", "[unit]") {
    Evtq q;
    q.r.write(reg::kCr0, 4, 0);
    CHECK_FALSE(q.push(1).written());
    CHECK(q.r.read(reg::kEvtqProd, 4) == 0);
    q.r.write(reg::kEvtqBase, 8, (uint64_t{1} << 40) | 2); // outside memory
    q.r.write(reg::kCr0, 4, bit::kEvtqEn);
    CHECK(q.push(1).outcome == iommusim::iommu::RecordRing::Outcome::write_error);
    CHECK(q.r.active_errors() == static_cast<uint32_t>(Gerror::evtq_abt_err));
    // PRIQ PROD/CONS live in page 1; page 0 offsets hold nothing.
    CHECK(q.r.read(reg::kPriqProd - 0x10000, 4) == 0);
}
