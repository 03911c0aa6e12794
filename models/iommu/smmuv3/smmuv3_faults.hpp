// SPDX-License-Identifier: Apache-2.0
#pragma once
// What the SMMUv3 does with a translation fault (kernel-free): the event
// record it writes, whether it records it, stalls the transaction or
// terminates it (Arm IHI 0070 3.12 "Fault model", 5.4 CD.S/R/A, 5.2
// STE.S2S/S2R/S1STALLD, 7.3 event records), and the stalled transactions
// awaiting CMD_RESUME / CMD_STALL_TERM.
//
// Fidelity: core FaultKind -> F_TRANSLATION (invalid descriptors, input
// outside both VA ranges), F_ADDR_SIZE, F_ACCESS, F_PERMISSION, F_WALK_EABT
// (a table read outside memory), C_BAD_CD / C_BAD_STE (an unwalkable
// stage config); S2 and CLASS (TT for a stage-2 fault on a stage-1 table
// address or a failed table read, IN otherwise), IPA of stage-2 faults,
// RnW/InD/PnU and InputAddr of the transaction. Stage-1 faults are recorded
// when CD.R = 1, stage-2 faults when STE.S2R = 1; configuration errors and
// stalled faults always. A fault stalls when CD.S (stage 1) / STE.S2S
// (stage 2) is set, the stream may stall (STE.S1STALLD = 0 for stage 1) and
// the transaction may (not an ATS translation request), until STALL_MAX
// transactions are stalled; beyond that it terminates. A terminated stage-1
// fault aborts when CD.A = 1 (else reads as zero, writes ignored); stage-2
// faults abort. Not modelled: FetchAddr of F_WALK_EABT (the core does not
// say which descriptor read failed: recorded as 0), TTRnW, F_TLB_CONFLICT.
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "models/iommu/common/translation.hpp"
#include "models/iommu/smmuv3/smmuv3_events.hpp"
#include "models/iommu/smmuv3/smmuv3_tables.hpp"

namespace iommusim::iommu::smmuv3 {

/// The transaction a fault belongs to.
struct Transaction {
    uint32_t sid = 0;
    bool ssv = false;
    uint32_t ssid = 0;
    uint64_t addr = 0;
    bool write = false, execute = false, privileged = false;
    bool ats_request = false; ///< an ATS Translation Request (never stalls; answered R=W=0)
};

struct FaultDisposition {
    Event event;
    bool record = false; ///< write the event record
    bool stall = false;  ///< hold the transaction (event with Stall = 1 and a STAG)
    bool abort = true;   ///< when terminated: abort (else RAZ/WI)
};

/// The event a walk that failed at `stage` raises (7.3): F_TRANSLATION, F_ADDR_SIZE, F_ACCESS,
/// F_PERMISSION, F_WALK_EABT; an unwalkable stage configuration is C_BAD_STE (stage 2) or
/// C_BAD_CD (stage 1). One mapping for transactions (translation_fault) and for the stage-2
/// walk of a CD fetch under nesting (Smmuv3TableReader::read_cd), where check_ste has already
/// refused an unwalkable stage 2.
uint8_t walk_event_id(FaultKind f, unsigned stage);

/// The event and the disposition of a fault the core reported for transaction t;
/// `can_stall` = false when the unit cannot hold it now (STALL_MAX transactions are
/// stalled, or the requester cannot be held): it is then terminated as unstalled.
FaultDisposition translation_fault(const StreamContext& sc, const Transaction& t, const Translation& tr,
                                   bool can_stall = true);

/// Stalled transactions (IHI 0070 3.12.2): each holds a STAG unique among the
/// stalled transactions, at most STALL_MAX at once. `cookie` names the
/// transaction for the unit.
class StallTable {
public:
    explicit StallTable(uint16_t stall_max) : max_(stall_max) {}

    /// Holds a transaction of `sid`; nullopt when STALL_MAX are already stalled.
    std::optional<uint16_t> stall(uint32_t sid, uint64_t cookie);
    /// CMD_RESUME(sid, STAG): the transaction it names, released; nullopt when none
    /// matches (the command is then ignored, IHI 0070 4.6.2).
    std::optional<uint64_t> resume(uint32_t sid, uint16_t stag);
    /// CMD_STALL_TERM(sid): every stalled transaction of sid, released in STAG order.
    std::vector<uint64_t> terminate(uint32_t sid);
    /// SMMUEN cleared: every stalled transaction, released in STAG order.
    std::vector<uint64_t> terminate_all();
    size_t size() const { return held_.size(); }
    uint16_t capacity() const { return max_; }

private:
    struct Held {
        uint32_t sid;
        uint64_t cookie;
    };
    /// Releases every stalled transaction `pred` selects, in STAG order.
    template <class Pred>
    std::vector<uint64_t> release_if(Pred pred);
    uint16_t max_;
    uint16_t next_ = 0;
    std::unordered_map<uint16_t, Held> held_;
};

} // namespace iommusim::iommu::smmuv3
