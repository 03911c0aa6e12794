// SPDX-License-Identifier: Apache-2.0
#pragma once
// SMMUv3 command queue entries (128-bit), decode and encode, bit-exact to
// shared/reference/spec-layouts.md C.3 (Arm IHI 0070 chapter 4; Linux
// arm-smmu-v3.h CMDQ_* and arm_smmu_cmdq_build_cmd), and their meaning as
// the translation core's generic scopes.
//
// Fidelity: every command of the Non-secure command queue that Linux issues,
// plus CMD_PREFETCH_ADDR, CMD_CFGI_ALL (0x07, as QEMU accepts; Linux uses
// CFGI_STE_RANGE with Range = 31), CMD_STALL_TERM. A command is CERROR_ILL
// (decode returns nullopt) when its opcode is unknown or not usable here
// (EL3 TLBIs on the Non-secure queue, EL2 TLBIs without IDR0.HYP, S2 TLBIs
// without IDR0.S2P, ATC_INV without ATS, PRI_RESP without PRI, RESUME /
// STALL_TERM without stall support), when a bit outside the command's
// fields is set (RES0, including SSec on the Non-secure queue, as QEMU
// checks), when a field holds a reserved value (CMD_SYNC CS = 3, PRI_RESP /
// RESUME Resp = 3), when range fields (NUM, SCALE, TG, TTL) are used
// without IDR3.RIL or NUM/SCALE/TTL without TG, and when ASID[15:8] /
// VMID[15:8] are set without ASID16 / VMID16. TTL is a walk-level hint and
// changes nothing here (the scope is the same with or without it).
// Not modelled: Secure / Realm commands, CMD_TLBI_EL3_*, CMD_DVM_*,
// CMD_CFGI_VMS_PIDM, CMD_TLBI_*_VMALL with VMS.
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "models/iommu/common/cmd_queue.hpp"
#include "models/iommu/common/config_cache.hpp"
#include "models/iommu/common/translation.hpp"
#include "models/iommu/smmuv3/smmuv3_params.hpp"
#include "models/iommu/smmuv3/smmuv3_regs.hpp"
#include "models/pcie/tlp.hpp"

namespace iommusim::iommu::smmuv3 {

/// Command opcodes (IHI 0070 4.1; Linux CMDQ_OP_*).
namespace op {
inline constexpr uint8_t kPrefetchConfig = 0x01, kPrefetchAddr = 0x02, kCfgiSte = 0x03, kCfgiSteRange = 0x04,
                         kCfgiCd = 0x05, kCfgiCdAll = 0x06, kCfgiAll = 0x07, kTlbiNhAll = 0x10, kTlbiNhAsid = 0x11,
                         kTlbiNhVa = 0x12, kTlbiNhVaa = 0x13, kTlbiEl3All = 0x18, kTlbiEl3Va = 0x1A,
                         kTlbiEl2All = 0x20, kTlbiEl2Asid = 0x21, kTlbiEl2Va = 0x22, kTlbiEl2Vaa = 0x23,
                         kTlbiS12Vmall = 0x28, kTlbiS2Ipa = 0x2A, kTlbiNsnhAll = 0x30, kAtcInv = 0x40,
                         kPriResp = 0x41, kResume = 0x44, kStallTerm = 0x45, kSync = 0x46;
}
std::string_view command_name(uint8_t opcode);

/// CMD_SYNC completion signal (CS).
enum class SyncSignal : uint8_t { none = 0, irq = 1, sev = 2 };
/// PRI_RESP response codes (PCIe PRG Response: 0 = invalid request, 1 = failure, 2 = success).
enum class PriResp : uint8_t { deny = 0, fail = 1, success = 2 };
/// RESUME actions (Linux CMDQ_RESUME_0_RESP_*).
enum class ResumeAction : uint8_t { terminate = 0, retry = 1, abort = 2 };

/// One decoded command; the fields used depend on the opcode.
struct Command {
    uint8_t opcode = 0;
    uint32_t sid = 0;
    bool ssv = false;
    uint32_t ssid = 0;
    bool leaf = false;          ///< CFGI_STE / CFGI_CD / TLBI *_VA(A), S2_IPA
    uint8_t range = 0;          ///< CFGI_STE_RANGE: 2^(Range+1) StreamIDs
    uint16_t vmid = 0, asid = 0;
    uint8_t num = 0, scale = 0; ///< range TLBI: (NUM+1) * 2^SCALE pages
    uint8_t tg = 0;             ///< range TLBI granule: 0 none, 1 = 4 KiB, 2 = 16 KiB, 3 = 64 KiB
    uint8_t ttl = 0;            ///< level hint
    uint64_t addr = 0;          ///< TLBI VA / IPA, ATC_INV / PREFETCH_ADDR address (page aligned)
    uint8_t size = 0;           ///< ATC_INV: 2^Size pages; PREFETCH_ADDR size
    bool global = false;        ///< ATC_INV Global
    uint16_t prg_index = 0;     ///< PRI_RESP
    uint8_t resp = 0;           ///< PRI_RESP (PriResp) / RESUME (ResumeAction)
    uint16_t stag = 0;          ///< RESUME
    SyncSignal cs = SyncSignal::none;
    uint8_t msh = 0, msi_attr = 0;
    uint32_t msi_data = 0;
    uint64_t msi_addr = 0;      ///< bits 51:2

    /// The 128-bit entry, as Linux builds it.
    std::array<uint64_t, 2> encode() const;
    bool operator==(const Command&) const = default;
};

/// Decodes one entry; nullopt is CERROR_ILL.
std::optional<Command> decode_command(const std::array<uint64_t, 2>& e, const Smmuv3Params& p);

/// TLB scope of a TLBI command (nullopt for every other opcode). The EL2
/// regime's entries carry domain tag 0 (no VMID).
std::optional<InvalidationScope> tlb_scope(const Command& c);

/// The unit's configuration caches, as InvalidateConfig::cache indices.
namespace config_cache {
inline constexpr uint8_t kSte = 0, kCd = 1;
}

/// Config-cache scopes of a CFGI command (nullopt for others): CFGI_STE(_RANGE)
/// drop the STEs and every CD fetched through them, CFGI_CD one CD,
/// CFGI_CD_ALL every CD of a stream, CFGI_ALL / CFGI_STE_RANGE with Range = 31 all.
struct ConfigInvalidation {
    bool ste = false, cd = false; ///< which caches the scope applies to
    ConfigScope scope;            ///< the shared config-cache scope (requester = StreamID, pasid = SSID)
};
std::optional<ConfigInvalidation> config_invalidation(const Command& c);

/// An ATC_INV as the ATS Invalidate Request it becomes (requester = StreamID[15:0]):
/// 2^Size 4 KiB pages at Address aligned to the span, Size >= 52 the whole ATC.
std::optional<pcie::AtsInvalidateRequest> atc_invalidation(const Command& c);
/// A PRI_RESP as the PRG Response it becomes (Success -> success, Deny -> invalid request,
/// Fail -> response failure).
std::optional<pcie::PrgResponse> prg_response(const Command& c);

/// The command-queue hook (iommu/common cmd_queue.hpp): one 16-byte command
/// to generic actions, or a CmdError code (CERROR_ILL). CMD_SYNC becomes a
/// SyncAction whose MSI write (CS = SIG_IRQ, MSIAddress != 0) is a 4-byte
/// store of MSIData (Linux polls that word in the queue); CS = SIG_SEV and
/// SIG_NONE complete by the CONS update alone. RESUME / STALL_TERM release
/// stalled transactions (ReleaseHeldAction; the STAGs are the unit's); the
/// prefetches cost their processing only.
class Smmuv3CommandDecoder final : public CommandDecoder {
public:
    explicit Smmuv3CommandDecoder(const Smmuv3Params& p) : p_(p) {}
    DecodedCommand decode(std::span<const uint64_t> words) override;
    /// The last command decoded (for the unit's own handling of RESUME / STALL_TERM).
    const Command& last() const { return last_; }

private:
    const Smmuv3Params& p_;
    Command last_;
};

} // namespace iommusim::iommu::smmuv3
