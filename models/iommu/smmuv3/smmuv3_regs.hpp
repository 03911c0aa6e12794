// SPDX-License-Identifier: Apache-2.0
#pragma once
// The SMMUv3 programming interface (kernel-free): register offsets and fields
// of Arm IHI 0070 chapter 6 as Linux arm-smmu-v3.h names them
// (shared/reference/spec-layouts.md C.6), and a register file with the
// architected access behaviour.
//
// Fidelity: IDR0-IDR5 composed from Smmuv3Params; AIDR; CR0 -> CR0ACK and
// IRQ_CTRL -> IRQ_CTRLACK (acknowledged at once: the shell may delay);
// CR1/CR2/GBPA (GBPA.Update completes at once); GERROR read-only with errors
// active while GERROR != GERRORN and raised by toggling (6.3.17-18); the MSI
// configuration registers of GERROR/EVTQ/PRIQ; STRTAB_BASE(_CFG) and the
// CMDQ/EVTQ/PRIQ BASE/PROD/CONS registers with index + wrap bits sized by the
// effective LOG2SIZE (capped by IDR1), CMDQ_CONS.ERR; the EVTQ and PRIQ are
// the shared RecordRing (wrap-bit positions, PROD.OVFLG toggled at each new
// overflow, acknowledged when software writes CONS.OVACKFLG equal to it) and
// records are written only while the queue is enabled; a record write that
// fails raises GERROR.EVTQ_ABT_ERR / PRIQ_ABT_ERR.
// Base and table registers are read-only while their queue / the SMMU is
// enabled (CR0 or CR0ACK); software writes to PROD of the output queues and
// to CMDQ_CONS are ignored while that queue is enabled. 32-bit halves of the
// 64-bit registers are accessible (Linux hi-lo writes). Unknown offsets read
// as zero and ignore writes. Not modelled: Secure and Realm register pages,
// VATOS, ECMDQ, PMCG, STATUSR.DORMANT (reads 0), IIDR product values (0).
#include <cstdint>
#include <optional>

#include "models/iommu/common/record_ring.hpp"
#include "models/iommu/common/unit_mem_port.hpp"
#include "models/iommu/smmuv3/smmuv3_params.hpp"

namespace iommusim::iommu::smmuv3 {

namespace reg {
inline constexpr uint32_t kIdr0 = 0x00, kIdr1 = 0x04, kIdr2 = 0x08, kIdr3 = 0x0C, kIdr4 = 0x10, kIdr5 = 0x14,
                          kIidr = 0x18, kAidr = 0x1C, kCr0 = 0x20, kCr0Ack = 0x24, kCr1 = 0x28, kCr2 = 0x2C,
                          kStatusr = 0x40, kGbpa = 0x44, kIrqCtrl = 0x50, kIrqCtrlAck = 0x54, kGerror = 0x60,
                          kGerrorN = 0x64, kGerrorIrqCfg0 = 0x68, kGerrorIrqCfg1 = 0x70, kGerrorIrqCfg2 = 0x74,
                          kStrtabBase = 0x80, kStrtabBaseCfg = 0x88, kCmdqBase = 0x90, kCmdqProd = 0x98,
                          kCmdqCons = 0x9C, kEvtqBase = 0xA0, kEvtqIrqCfg0 = 0xB0, kEvtqIrqCfg1 = 0xB8,
                          kEvtqIrqCfg2 = 0xBC, kPriqBase = 0xC0, kPriqIrqCfg0 = 0xD0, kPriqIrqCfg1 = 0xD8,
                          kPriqIrqCfg2 = 0xDC,
                          // Page 1 (IHI 0070 6.2; Linux reads them at page1 + 0xA8 ...).
                          kEvtqProd = 0x100A8, kEvtqCons = 0x100AC, kPriqProd = 0x100C8, kPriqCons = 0x100CC;
} // namespace reg

/// Bit positions (Linux arm-smmu-v3.h names).
namespace bit {
// IDR0
inline constexpr unsigned kS2p = 0, kS1p = 1, kTtfLo = 2, kTtfHi = 3, kCohacc = 4, kHttuLo = 6, kHttuHi = 7,
                          kHyp = 9, kAts = 11, kAsid16 = 12, kMsi = 13, kSev = 14, kPri = 16, kVmid16 = 18,
                          kCd2l = 19, kTtendianLo = 21, kTtendianHi = 22, kStallModelLo = 24, kStallModelHi = 25,
                          kAtsRecErr = 23, kStLvlLo = 27, kStLvlHi = 28;
// IDR1
inline constexpr unsigned kSidsizeHi = 5, kSsidsizeLo = 6, kSsidsizeHi = 10, kPriqsLo = 11, kPriqsHi = 15,
                          kEvtqsLo = 16, kEvtqsHi = 20, kCmdqsLo = 21, kCmdqsHi = 25;
// IDR3, IDR5
inline constexpr unsigned kPps = 5, kRil = 10;
// CR2
inline constexpr uint32_t kCr2E2h = 1u << 0, kCr2RecInvSid = 1u << 1, kCr2Ptm = 1u << 2, kCr2RecCfgAts = 1u << 3;
inline constexpr unsigned kOasHi = 2, kGran4k = 4, kGran16k = 5, kGran64k = 6, kStallMaxLo = 16, kStallMaxHi = 31;
// CR0 / CR0ACK
inline constexpr uint32_t kSmmuEn = 1u << 0, kPriqEn = 1u << 1, kEvtqEn = 1u << 2, kCmdqEn = 1u << 3,
                          kAtsChk = 1u << 4;
// IRQ_CTRL
inline constexpr uint32_t kGerrorIrqEn = 1u << 0, kPriqIrqEn = 1u << 1, kEvtqIrqEn = 1u << 2;
// GBPA
inline constexpr uint32_t kGbpaAbort = 1u << 20, kGbpaUpdate = 1u << 31;
} // namespace bit

/// GERROR / GERRORN bits (IHI 0070 6.3.17).
enum class Gerror : uint32_t {
    cmdq_err = 1u << 0,
    evtq_abt_err = 1u << 2,
    priq_abt_err = 1u << 3,
    msi_cmdq_abt = 1u << 4,
    msi_evtq_abt = 1u << 5,
    msi_priq_abt = 1u << 6,
    msi_gerror_abt = 1u << 7,
    sfm_err = 1u << 8,
};

/// CMDQ_CONS.ERR codes (IHI 0070 4.7).
enum class CmdError : uint8_t { none = 0, ill = 1, abt = 2, atc_inv_sync = 3 };

/// The three in-memory queues.
enum class Queue : uint8_t { cmdq, evtq, priq };

/// A queue position as PROD / CONS hold it: index in bits [log2size-1:0], wrap in bit log2size
/// (IHI 0070 3.5.1).
struct QueuePos {
    uint32_t index = 0;
    bool wrap = false;
    static QueuePos decode(uint32_t reg, uint8_t log2size) {
        return {reg & ((uint32_t{1} << log2size) - 1), ((reg >> log2size) & 1) != 0};
    }
    uint32_t encode(uint8_t log2size) const { return index | (uint32_t{wrap} << log2size); }
};

/// MSI target of an interrupt source (*_IRQ_CFG0/1/2).
struct MsiConfig {
    uint64_t addr = 0; ///< CFG0 ADDR 51:2 (0: MSIs are not sent)
    uint32_t data = 0; ///< CFG1
    uint32_t attr = 0; ///< CFG2 MemAttr 3:0, SH 5:4
};

/// Stream table as STRTAB_BASE / STRTAB_BASE_CFG describe it.
struct StrtabConfig {
    uint64_t base = 0;      ///< ADDR 51:6
    bool two_level = false; ///< FMT 17:16 = 1
    uint8_t log2size = 0;   ///< StreamID bits covered
    uint8_t split = 0;      ///< StreamID bits resolved by a level-2 table
};

class Smmuv3Regs {
public:
    explicit Smmuv3Regs(const Smmuv3Params& p);

    /// What a software write changed, for the unit to act on.
    enum Effect : uint32_t {
        kNoEffect = 0,
        kCr0Written = 1u << 0,       ///< CR0 written (enables may have changed)
        kCmdqProdWritten = 1u << 1,  ///< doorbell
        kEvtqConsWritten = 1u << 2,  ///< software consumed events (space freed / overflow acknowledged)
        kPriqConsWritten = 1u << 3,
        kGerrorNWritten = 1u << 4,   ///< errors acknowledged (CMDQ_ERR: the queue may restart)
        kIrqCtrlWritten = 1u << 5,
        kGbpaWritten = 1u << 6,
    };

    /// Register reads and writes of 4 or 8 bytes at a register-page offset.
    uint64_t read(uint32_t offset, unsigned size) const;
    uint32_t write(uint32_t offset, unsigned size, uint64_t value);

    // ---- the unit's view ------------------------------------------------
    static uint32_t idr0(const Smmuv3Params& p);
    static uint32_t idr1(const Smmuv3Params& p);
    static uint32_t idr3(const Smmuv3Params& p);
    static uint32_t idr5(const Smmuv3Params& p);

    uint32_t cr0() const { return cr0_; }
    uint32_t cr0ack() const { return cr0ack_; }
    bool enabled(uint32_t cr0_bit) const { return cr0ack_ & cr0_bit; }
    bool gbpa_abort() const { return gbpa_ & bit::kGbpaAbort; }
    bool cr2(uint32_t cr2_bit) const { return cr2_ & cr2_bit; }
    bool irq_enabled(uint32_t irq_bit) const { return irq_ctrlack_ & irq_bit; }
    StrtabConfig strtab() const;
    uint64_t queue_base(Queue q) const;        ///< first entry's address (aligned to the queue size)
    uint8_t queue_log2size(Queue q) const;     ///< effective LOG2SIZE (capped by IDR1)
    MsiConfig msi(Queue q) const;              ///< EVTQ / PRIQ interrupt (cmdq: unused)
    MsiConfig gerror_msi() const;

    /// Active global errors (GERROR ^ GERRORN).
    uint32_t active_errors() const { return gerror_ ^ gerrorn_; }
    /// Raises an error by toggling its GERROR bit, unless it is already active. Returns true if raised.
    bool raise(Gerror e);

    // CMDQ: software's producer position; the unit publishes its consumer position and error.
    QueuePos cmdq_prod() const { return QueuePos::decode(cmdq_prod_, queue_log2size(Queue::cmdq)); }
    QueuePos cmdq_cons() const { return QueuePos::decode(cmdq_cons_, queue_log2size(Queue::cmdq)); }
    void set_cmdq_cons(QueuePos cons, CmdError err = CmdError::none);
    CmdError cmdq_error() const { return static_cast<CmdError>((cmdq_cons_ >> 24) & 0x7F); }

    // EVTQ / PRIQ: records the unit writes (32-byte events, 16-byte page requests).
    RecordRing& ring(Queue q) { return q == Queue::evtq ? evtq_ : priq_; }
    const RecordRing& ring(Queue q) const { return q == Queue::evtq ? evtq_ : priq_; }
    /// Writes one record at PROD through `mem` if the queue is enabled; overflow and
    /// abort handling as the fidelity note says. The caller sends the interrupt when
    /// the result asks for one and the queue's IRQ is enabled.
    RecordRing::PushResult push(Queue q, UnitMemPort& mem, const void* record, Duration& local);

private:
    uint64_t read64(uint32_t offset) const;
    const Smmuv3Params& p_;
    uint32_t cr0_ = 0, cr0ack_ = 0, cr1_ = 0, cr2_ = 0, gbpa_ = 0, irq_ctrl_ = 0, irq_ctrlack_ = 0;
    uint32_t gerror_ = 0, gerrorn_ = 0;
    uint64_t gerror_irq_cfg0_ = 0;
    uint32_t gerror_irq_cfg1_ = 0, gerror_irq_cfg2_ = 0;
    uint64_t strtab_base_ = 0;
    uint32_t strtab_base_cfg_ = 0;
    uint64_t base_[3] = {};      ///< CMDQ / EVTQ / PRIQ _BASE
    uint32_t cmdq_prod_ = 0, cmdq_cons_ = 0;
    bool ovackflg_[3] = {};      ///< EVTQ / PRIQ CONS.OVACKFLG as software last wrote it
    RecordRing evtq_{Ring::Index::wrap_bit};
    RecordRing priq_{Ring::Index::wrap_bit, /*inhibit_on_overflow=*/true}; // IHI 0070 8.1 (the EVTQ: 7.4)
    uint64_t irq_cfg0_[3] = {};
    uint32_t irq_cfg1_[3] = {}, irq_cfg2_[3] = {};
    uint32_t read_pos(Queue q, bool prod) const;
    void write_pos(Queue q, bool prod, uint32_t v);
    void configure(Queue q);
};

} // namespace iommusim::iommu::smmuv3
