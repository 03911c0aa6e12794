// SPDX-License-Identifier: Apache-2.0
#pragma once
// What the NVMe host driver and the NVMe device model share: controller
// registers, doorbells, and the submission / completion queue entries.
// NVM Express Base Specification 1.4: §3.1 (registers), §4.2 (SQE), §4.6
// (CQE), §4.3 (PRP), §5.3 / §5.4 (Create I/O CQ / SQ), NVM Command Set
// §6.9 / §6.15 (Read / Write).
#include <cstdint>

namespace iommusim::pcie::nvme {

inline constexpr uint32_t kCap = 0x00;     ///< 64-bit: MQES[15:0] (0-based), CQR bit 16, DSTRD[35:32], MPSMIN[51:48]
inline constexpr uint32_t kIntms = 0x0C;   ///< interrupt mask set (pin/MSI; a bit per vector)
inline constexpr uint32_t kIntmc = 0x10;   ///< interrupt mask clear
inline constexpr uint32_t kCc = 0x14;      ///< EN bit 0, MPS[10:7], IOSQES[19:16], IOCQES[23:20]
inline constexpr uint32_t kCsts = 0x1C;    ///< RDY bit 0
inline constexpr uint32_t kAqa = 0x24;     ///< ASQS[11:0], ACQS[27:16] (0-based)
inline constexpr uint32_t kAsq = 0x28;     ///< admin SQ base (64-bit, page aligned)
inline constexpr uint32_t kAcq = 0x30;     ///< admin CQ base (64-bit, page aligned)
inline constexpr uint32_t kDoorbells = 0x1000;
/// Doorbell stride 4 bytes (CAP.DSTRD = 0): SQ y tail at 0x1000 + 8y, CQ y head at 0x1000 + 8y + 4.
constexpr uint32_t sq_tail_doorbell(uint32_t qid) { return kDoorbells + 8 * qid; }
constexpr uint32_t cq_head_doorbell(uint32_t qid) { return kDoorbells + 8 * qid + 4; }
inline constexpr uint32_t kMaxQueues = 64;          ///< I/O queue pairs this model offers (+ the admin pair)
inline constexpr uint32_t kBarBytes = kDoorbells + 8 * (kMaxQueues + 1);

inline constexpr uint8_t kAdminCreateIoSq = 0x01;
inline constexpr uint8_t kAdminCreateIoCq = 0x05;
inline constexpr uint8_t kAdminSetFeatures = 0x09;
/// Set Features FID (CDW10 [7:0]) Interrupt Coalescing (§5.21.1.8): CDW11 THR [7:0]
/// (0's based entries per interrupt), TIME [15:8] (100 us units); not for the admin CQ.
inline constexpr uint8_t kFeatureInterruptCoalescing = 0x08;
inline constexpr double kCoalescingTimeUnitUs = 100.0;
inline constexpr uint8_t kNvmWrite = 0x01;
inline constexpr uint8_t kNvmRead = 0x02;
inline constexpr uint32_t kPageBytes = 4096;        ///< CC.MPS = 0

/// Submission queue entry (64 bytes).
struct Sqe {
    uint32_t cdw0 = 0;          ///< opcode [7:0], fuse [9:8], PSDT [15:14] (0 = PRPs), CID [31:16]
    uint32_t nsid = 0;
    uint32_t cdw2 = 0, cdw3 = 0;
    uint64_t mptr = 0;
    uint64_t prp1 = 0;
    uint64_t prp2 = 0;          ///< second page, or the PRP list's address when more than two pages
    uint32_t cdw10 = 0, cdw11 = 0, cdw12 = 0, cdw13 = 0, cdw14 = 0, cdw15 = 0;
    uint8_t opcode() const { return static_cast<uint8_t>(cdw0); }
    uint16_t cid() const { return static_cast<uint16_t>(cdw0 >> 16); }
};
/// Completion queue entry (16 bytes).
struct Cqe {
    uint32_t dw0 = 0;           ///< command specific
    uint32_t dw1 = 0;
    uint32_t dw2 = 0;           ///< SQ head [15:0], SQ identifier [31:16]
    uint32_t dw3 = 0;           ///< CID [15:0], phase tag bit 16, status [31:17] (0 = success)
};
static_assert(sizeof(Sqe) == 64 && sizeof(Cqe) == 16);
inline constexpr uint32_t kPhase = 1u << 16;
/// Status field in CQE dw3 [31:17]: SC [24:17], SCT [27:25] (0 = generic command status).
inline constexpr uint32_t kStatusDataTransferError = 0x04u << 17;
inline constexpr uint32_t kStatusInvalidOpcode = 0x01u << 17;
inline constexpr uint32_t kStatusInvalidField = 0x02u << 17;

} // namespace iommusim::pcie::nvme
