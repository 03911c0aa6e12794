// SPDX-License-Identifier: Apache-2.0
#pragma once
// The SMMUv3 CMDQ-Virtualization block (NVIDIA Tegra241 CMDQV, the
// hardware-driven guest queue of shared/reference/threads/003 for Arm):
// beside the SMMU, a set of virtual command queues (VCMDQs) the unit
// executes as extra command queues, grouped into virtual interfaces (VINTFs)
// of which the host gives one to each VM. A guest-owned VINTF (HYP_OWN = 0)
// carries the VM's VMID, which the block forces into every TLBI, and up to
// cmdqv_sids_per_vintf SID_MATCH / SID_REPLACE register pairs that translate
// the guest's StreamIDs into physical ones; the VINTF's logical-VCMDQ page 0
// (CONS, PROD, CONFIG, STATUS, GERROR, GERRORN of each of its queues) is
// mapped into the guest, so the guest's PROD writes and CONS polls reach the
// block without a VM exit. Register layout and fields as Linux's
// drivers/iommu/arm/arm-smmu-v3/tegra241-cmdqv.c defines and programs them:
//
//   0x00000 config page: CONFIG [0] CMDQV_EN; PARAM [15:12] NUM_SID_PER_VM_LOG2,
//           [11:8] NUM_VINTF_LOG2, [7:4] NUM_VCMDQ_LOG2, [3:0] VER; STATUS [0];
//           VINTF_ERR_MAP 0x14 (64 bits as two words); VINTF_INT_MASK 0x1C;
//           CMDQ_ERR_MAP(m) 0x24 + 4m; CMDQ_ALLOC(q) 0x200 + 4q: [20:15] VINTF,
//           [7:1] LVCMDQ, [0] ALLOCATED;
//           VINTF(v) 0x1000 + 0x100v: CONFIG [17] HYP_OWN, [16:1] VMID, [0] EN;
//           STATUS [3:1] error, [0] ENABLED; SID_MATCH(s) 0x40 + 4s = vSID << 1 | 1
//           (tegra241_vintf_init_vsid); SID_REPLACE(s) 0x80 + 4s = pSID;
//           LVCMDQ_ERR_MAP_64(m) 0xC0 + 8m (two).
//   0x10000 global VCMDQ page 0, 0x80 per queue: CONS 0x0 (index | wrap, ERR [30:24]
//           as SMMU_CMDQ_CONS), PROD 0x4, CONFIG 0x8 [0] EN, STATUS 0xC [0] ENABLED,
//           GERROR 0x10, GERRORN 0x14 (as SMMU_GERROR / GERRORN, bit 0 CMDQ_ERR).
//   0x20000 global VCMDQ page 1, 0x80 per queue: BASE 0x0 ([47:5] address, [4:0]
//           LOG2SIZE), CONS_INDX_BASE 0x8.
//   0x30000 + 128 KiB * i: VINTF i's logical page 0 (its LVCMDQ l at 0x80 * l, the
//           global queue CMDQ_ALLOC maps to (i, l)), then its logical page 1.
//
// Fidelity — modelled: the registers above; queues of a VINTF that is enabled
// and mapped by CMDQ_ALLOC with CONFIG.EN set are ENABLED; each enabled queue
// with PROD != CONS is served in turn, one command at a time, fetched in
// order from the host-physical ring at BASE (the host pinned the guest's
// queue: iommufd hw_queue_init_phys) at the SMMU's command_fetch cost, then
// cmdqv_per_command. A guest-owned VINTF accepts only the commands Linux's
// tegra241_guest_vcmdq_supports_cmd lets a guest queue carry (TLBI_NH_ASID,
// TLBI_NH_VA, ATC_INV) and CMD_SYNC with CS = SIG_NONE (Linux's
// CMDQ_QUIRK_SYNC_CS_NONE_ONLY: the driver polls CONS); TLBI_NH_* run with
// the VINTF's VMID, whatever the guest wrote, on the SMMU's TLBs (the
// Hooks::execute of the unit); ATC_INV's StreamID goes through the VINTF's
// SID_MATCH pairs and the ATS Invalidate Request leaves through the SMMU's
// own ATS path (its ITags, the device's invalidate queue depth, its time-out;
// an ATC_INV finding the device's queue full waits for a slot, as on the
// SMMU's CMDQ), and a CMD_SYNC completes only after every ATC_INV the block
// sent has completed (IHI 0070 CMD_SYNC) — after the time-out it stops the
// queue with CONS.ERR = CERROR_ATC_INV_SYNC on the command that waited.
// Anything else, an ATC_INV whose StreamID no SID_MATCH names, and a CMD_SYNC
// asking for an MSI or SEV stop the queue with CONS.ERR = CERROR_ILL,
// GERROR.CMDQ_ERR toggled, the queue's bit in its VINTF's LVCMDQ_ERR_MAP and the VINTF's in VINTF_ERR_MAP (what Linux's
// tegra241_vintf_user_handle_error reports to the VMM as a vEVENT and the
// guest's own driver reads); the queue resumes when GERRORN is written to
// match (Linux arm_smmu_cmdq_skip_err has replaced the command). A
// hypervisor-owned VINTF (HYP_OWN = 1, the host's VINTF0) takes every command
// its VMID and SIDs do not rewrite.
// Estimates, stated: which commands the hardware itself refuses (the list is
// Linux's guest-support check; the CMDQV's own list is not public); an
// unmatched ATC_INV StreamID and a non-SIG_NONE CMD_SYNC reported as
// CERROR_ILL; cmdqv_per_command (the SMMU's own per_command, as the VCMDQs
// feed the same command processing); a CMD_SYNC of one VCMDQ waits for the
// ATC_INVs of every VCMDQ of the block (the block tracks them together).
// Not modelled: the CMDQV interrupt and the vEVENTQ delivery to the VMM;
// CONS_INDX_BASE write-back; several queues executing at once (served one
// command at a time in round robin).
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <systemc>
#include <tlm>
#include <tlm_utils/multi_passthrough_target_socket.h>
#include <tlm_utils/simple_target_socket.h>
#include <vector>

#include "models/common/stats.hpp"
#include "models/iommu/common/cmd_queue.hpp"
#include "models/iommu/common/unit_mem_port.hpp"
#include "models/iommu/smmuv3/smmuv3_commands.hpp"
#include "models/iommu/smmuv3/smmuv3_params.hpp"

namespace iommusim::iommu::smmuv3 {

namespace cmdqv {
inline constexpr uint32_t kConfig = 0x0, kParam = 0x4, kStatus = 0x8, kVintfErrMap = 0x14, kVintfIntMask = 0x1C;
constexpr uint32_t cmdq_err_map(uint32_t m) { return 0x24 + 4 * m; }
constexpr uint32_t cmdq_alloc(uint32_t q) { return 0x200 + 4 * q; }
constexpr uint32_t vintf(uint32_t v) { return 0x1000 + 0x100 * v; }
inline constexpr uint32_t kVintfConfig = 0x0, kVintfStatus = 0x4;
constexpr uint32_t sid_match(uint32_t s) { return 0x40 + 4 * s; }
constexpr uint32_t sid_replace(uint32_t s) { return 0x80 + 4 * s; }
constexpr uint32_t lvcmdq_err_map(uint32_t m) { return 0xC0 + 8 * m; }
inline constexpr uint32_t kPage0 = 0x10000, kPage1 = 0x20000, kVintfPages = 0x30000, kQueueStride = 0x80;
constexpr uint32_t vcmdq_page0(uint32_t q) { return kPage0 + kQueueStride * q; }
constexpr uint32_t vcmdq_page1(uint32_t q) { return kPage1 + kQueueStride * q; }
constexpr uint32_t vintf_page0(uint32_t i) { return kVintfPages + 0x20000 * i; }
constexpr uint32_t vintf_page1(uint32_t i) { return vintf_page0(i) + 0x10000; }
/// Page-0 registers of one VCMDQ and page-1 registers.
inline constexpr uint32_t kCons = 0x0, kProd = 0x4, kQConfig = 0x8, kQStatus = 0xC, kGerror = 0x10, kGerrorN = 0x14;
inline constexpr uint32_t kBase = 0x0, kConsIndxBase = 0x8;
inline constexpr uint32_t kEn = 1, kHypOwn = 1u << 17, kAllocated = 1;
constexpr uint32_t vintf_config(uint16_t vmid, bool hyp_own, bool en) {
    return (hyp_own ? kHypOwn : 0) | (uint32_t{vmid} << 1) | (en ? kEn : 0);
}
constexpr uint32_t alloc_value(uint32_t vintf, uint32_t lvcmdq, bool allocated) {
    return (vintf << 15) | (lvcmdq << 1) | (allocated ? kAllocated : 0);
}
constexpr uint32_t sid_match_value(uint32_t vsid) { return vsid << 1 | 1; }
/// VCMDQ_BASE: the queue's address [47:5] and log2 of its entries [4:0].
constexpr uint64_t base_value(uint64_t pa, unsigned log2size) { return (pa & 0x0000FFFFFFFFFFE0ull) | log2size; }
/// The block's MMIO size for `vintfs` VINTFs.
constexpr uint32_t mmio_bytes(uint32_t vintfs) { return kVintfPages + 0x20000 * vintfs; }
} // namespace cmdqv

/// The plain-C++ core: registers and one command of one queue per step.
class Smmuv3CmdqvCore {
public:
    struct Hooks {
        /// Runs an action on the SMMU's caches; entries dropped.
        std::function<uint64_t(const CommandAction&)> execute;
        /// Sends an ATS Invalidate Request through the SMMU, its cost added to `local`; false,
        /// nothing sent, while the device's invalidate queue is full.
        std::function<bool(const InvalidateDeviceAtc&, Duration& local)> invalidate_atc;
        /// The block's ATS invalidations in flight.
        std::function<uint32_t()> atc_outstanding;
        /// How long from now until the last Invalidate Completion received has arrived.
        std::function<Duration()> atc_settled_in;
    };
    /// What a step left its queue waiting for, the command held at CONS (not fetched again):
    /// its CMD_SYNC for the block's ATS invalidations in flight (`device` unset), or its
    /// ATC_INV for a free slot in `device`'s invalidate queue.
    struct Wait {
        bool waiting = false;
        std::optional<uint32_t> device;
    };
    explicit Smmuv3CmdqvCore(const Smmuv3Params& p);

    uint16_t vintfs() const { return static_cast<uint16_t>(vintf_.size()); }
    uint16_t queues() const { return static_cast<uint16_t>(q_.size()); }
    uint16_t lvcmdqs_per_vintf() const { return static_cast<uint16_t>(q_.size() / vintf_.size()); }
    uint16_t sids_per_vintf() const { return static_cast<uint16_t>(vintf_.front().match.size()); }
    /// Register access at `off` in the block (4 or 8 bytes). A write returns true when a
    /// queue may have work now.
    uint64_t read(uint32_t off, unsigned len) const;
    bool write(uint32_t off, uint64_t v, unsigned len);

    /// A global queue that is enabled, not in error, with PROD != CONS (round robin from `from`).
    std::optional<uint16_t> next_with_work(uint16_t from) const;
    /// Fetches and executes the command at queue `q`'s CONS; `local` gets its cost.
    Wait step(uint16_t q, UnitMemPort& mem, const Hooks& h, Duration& local);
    /// A wait outlived its deadline: queue `q` stops with CONS.ERR = CERROR_ATC_INV_SYNC on the
    /// command that waited.
    void atc_timeout(uint16_t q);

    struct Counts {
        uint64_t commands = 0, executed = 0, vmid_forced = 0, sid_replaced = 0, refused = 0, unmatched_sids = 0,
                 atc_invalidations = 0, atc_timeouts = 0, errors = 0;
    };
    const Counts& counts() const { return n_; }
    /// The VINTF a global queue is mapped to (nullopt: not allocated).
    std::optional<uint16_t> vintf_of(uint16_t q) const;

private:
    struct Vintf {
        uint32_t config = 0;
        std::vector<uint32_t> match, replace;
        std::array<uint64_t, 2> lvcmdq_err{};
        bool enabled() const { return config & cmdqv::kEn; }
        bool hyp_own() const { return config & cmdqv::kHypOwn; }
        uint16_t vmid() const { return static_cast<uint16_t>((config >> 1) & 0xFFFF); }
    };
    struct Vcmdq {
        uint32_t alloc = 0, cons = 0, prod = 0, config = 0, gerror = 0, gerrorn = 0;
        uint64_t base = 0, cons_indx_base = 0;
        bool held = false;                 ///< the command at CONS waits (Wait), already fetched
        std::array<uint64_t, 2> held_cmd{};
        unsigned log2() const { return static_cast<unsigned>(base & 0x1F); }
        uint64_t addr() const { return base & 0x0000FFFFFFFFFFE0ull; }
    };
    /// The global queue behind register offset `off` and the offset inside its page (page 0 or 1).
    struct QueueReg {
        uint16_t q;
        bool page1;
        uint32_t reg;
    };
    std::optional<QueueReg> queue_reg(uint32_t off) const;
    std::optional<uint16_t> global_of(uint16_t vintf, uint16_t lidx) const;
    bool enabled(uint16_t q) const;
    /// Stops queue `q` with `e` (CERROR_ILL, ...) on the command at CONS.
    void fail(uint16_t q, CmdError e);
    Wait hold(Vcmdq& s, const std::array<uint64_t, 2>& raw, std::optional<uint32_t> device);

    const Smmuv3Params p_;
    uint32_t config_ = 0;
    std::vector<Vintf> vintf_;
    std::vector<Vcmdq> q_;
    uint64_t vintf_err_map_ = 0;
    std::array<uint32_t, 4> cmdq_err_map_{};
    Counts n_;
};

/// The SystemC shell: the block's register space and its engine thread. Owned by Smmuv3 (which
/// gives it its memory port and cache hooks).
class Smmuv3Cmdqv : public sc_core::sc_module {
public:
    tlm_utils::simple_target_socket<Smmuv3Cmdqv> mmio{"mmio"}; ///< host CPU: the whole block
    /// Guest VINTF pages (each VM's vCMDQ registers, no exit); one binding per VM, or none.
    tlm_utils::multi_passthrough_target_socket<Smmuv3Cmdqv, 32, tlm::tlm_base_protocol_types, 0,
                                               sc_core::SC_ZERO_OR_MORE_BOUND>
        guest_pages{"guest_pages"};

    /// How the engine waits for the SMMU's ATS invalidations (IommuShell's second-engine API).
    struct AtcWait {
        const sc_core::sc_event* completion = nullptr; ///< an Invalidate Completion arrived
        /// The deadline of the block's invalidations (`device` unset) or of `device`'s (any sender).
        std::function<std::optional<Duration>(std::optional<uint32_t> device)> deadline;
        /// Time-out: forget the block's invalidations (of `device`, or all).
        std::function<void(std::optional<uint32_t> device)> abandon;
    };
    Smmuv3Cmdqv(sc_core::sc_module_name name, const Smmuv3Params& p, UnitMemPort& mem, Smmuv3CmdqvCore::Hooks hooks,
                AtcWait atc, stats::Group* parent);
    Smmuv3CmdqvCore& core() { return core_; }
    const Smmuv3CmdqvCore& core() const { return core_; }

private:
    void b_transport(tlm::tlm_generic_payload& t, sc_core::sc_time& delay);
    void b_guest(int from, tlm::tlm_generic_payload& t, sc_core::sc_time& delay) { b_transport(t, delay), (void)from; }
    void engine();
    /// Queue `q` waits (Wait) until an Invalidate Completion or the deadline; past it, the time-out.
    void wait_atc(uint16_t q, std::optional<uint32_t> device);

    Smmuv3CmdqvCore core_;
    UnitMemPort& mem_;
    Smmuv3CmdqvCore::Hooks hooks_;
    AtcWait atc_;
    Duration mmio_access_;
    sc_core::sc_event doorbell_;
    Duration doorbell_at_;
    stats::Group stats_;
    stats::Counter& st_commands_;
    stats::Counter& st_vmid_forced_;
    stats::Counter& st_sid_replaced_;
    stats::Counter& st_atc_invalidations_;
    stats::Counter& st_errors_;
    stats::Histogram& st_latency_;
};

} // namespace iommusim::iommu::smmuv3
