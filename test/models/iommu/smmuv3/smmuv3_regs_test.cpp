// SPDX-License-Identifier: Apache-2.0
// SMMUv3 register file: ID registers from params, enable / acknowledge
// pairs, global errors, queue pointers with wrap bits, overflow flags.
#include <catch2/catch.hpp>

#include "models/iommu/smmuv3/smmuv3_regs.hpp"

using namespace iommusim::iommu::smmuv3;

TEST_CASE("SMMUv3 ID registers advertise exactly the parameters, at the architected bit positions", "[unit]") {
    Smmuv3Params p;
    Smmuv3Regs r(p);
    // S2P, S1P, TTF=AArch64, COHACC, HTTU=2, HYP, ATS, ASID16, MSI, SEV, PRI, VMID16, CD2L, TTENDIAN=LE, ST_LVL=2-level.
    CHECK(r.read(reg::kIdr0, 4) == 0x084D'7A9B);
    // SIDSIZE 32, SSIDSIZE 20, PRIQS/EVTQS/CMDQS 19.
    CHECK(r.read(reg::kIdr1, 4) == 0x0273'9D20);
    CHECK(r.read(reg::kIdr3, 4) == 0x400);        // RIL
    CHECK(r.read(reg::kIdr5, 4) == 0x0040'0075);  // STALL_MAX 64, GRAN64K/16K/4K, OAS = 48 bits
    CHECK(r.read(reg::kAidr, 4) == 2);            // SMMUv3.2
    p.ril = false;
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
    CHECK(r.queue_ptr(Queue::cmdq).log2size == 8);
    CHECK(r.queue_base(Queue::cmdq) == 0x1234'5000); // 256 x 16 B: ADDR below 4 KiB alignment ignored
    r.write(reg::kEvtqBase, 4, 0x8000'0013);          // low half: LOG2SIZE 19
    r.write(reg::kEvtqBase + 4, 4, 0x12);              // high half: ADDR[51:32]
    CHECK(r.read(reg::kEvtqBase, 8) == 0x12'8000'0013ull);
    CHECK(r.queue_ptr(Queue::evtq).log2size == 19);
    r.write(reg::kPriqBase, 8, 0x9000'001F); // LOG2SIZE 31 is capped by IDR1.PRIQS = 19
    CHECK(r.queue_ptr(Queue::priq).log2size == 19);
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

TEST_CASE("queue pointers wrap with the wrap bit; full is equal indices with different wrap bits", "[unit]") {
    QueuePtr q{2}; // 4 entries: index 1:0, wrap bit 2
    uint32_t prod = 0;
    for (int i = 0; i < 4; ++i) prod = q.next(prod);
    CHECK(prod == 0b100);
    CHECK(q.full(prod, 0));
    CHECK_FALSE(q.empty(prod, 0));
    CHECK(q.empty(prod, 0b100));
    for (int i = 0; i < 4; ++i) prod = q.next(prod);
    CHECK(prod == 0); // the wrap bit toggles back
    CHECK(q.index(0b111) == 3);
    CHECK(q.wrap(0b111));
}

TEST_CASE("CMDQ_CONS carries the error code in ERR, EVTQ PROD advances with its wrap bit", "[unit]") {
    Smmuv3Params p;
    Smmuv3Regs r(p);
    r.write(reg::kCmdqBase, 8, 0x1000'0003); // 8 entries
    r.set_cmdq_cons(0b1101, CmdError::ill);   // wrap 1, index 5
    CHECK(r.read(reg::kCmdqCons, 4) == ((1u << 24) | 0b1101));
    CHECK(r.cmdq_error() == CmdError::ill);
    r.set_cmdq_cons(0b1110);
    CHECK(r.cmdq_error() == CmdError::none);
    r.write(reg::kEvtqBase, 8, 0x2000'0001); // 2 entries
    r.advance_prod(Queue::evtq);
    r.advance_prod(Queue::evtq);
    CHECK(r.read(reg::kEvtqProd, 4) == 0b10); // index 0, wrap 1
    r.advance_prod(Queue::evtq);
    CHECK(r.read(reg::kEvtqProd, 4) == 0b11);
}

TEST_CASE("an event-queue overflow toggles PROD.OVFLG once until software copies it to CONS.OVACKFLG", "[unit]") {
    Smmuv3Params p;
    Smmuv3Regs r(p);
    r.write(reg::kPriqBase, 8, 0x2000'0002);
    CHECK(r.overflow(Queue::priq));
    CHECK(r.read(reg::kPriqProd, 4) == 0x8000'0000u);
    CHECK(r.overflow_pending(Queue::priq));
    CHECK_FALSE(r.overflow(Queue::priq)); // still unacknowledged
    r.advance_prod(Queue::priq);
    CHECK(r.read(reg::kPriqProd, 4) == 0x8000'0001u); // OVFLG kept across PROD updates
    CHECK(r.write(reg::kPriqCons, 4, 0x8000'0001u) == Smmuv3Regs::kPriqConsWritten);
    CHECK_FALSE(r.overflow_pending(Queue::priq));
    CHECK(r.overflow(Queue::priq)); // the next overflow toggles it back
    CHECK(r.read(reg::kPriqProd, 4) == 0x0000'0001u);
    // EVTQ and PRIQ PROD/CONS live in page 1; page 0 offsets hold nothing.
    CHECK(r.read(reg::kPriqProd - 0x10000, 4) == 0);
}
