// SPDX-License-Identifier: Apache-2.0
#pragma once
// The AMD-Vi hardware vIOMMU (the hardware-driven guest queue of
// shared/reference/threads/003): each guest (GuestID) owns a command buffer
// in its own memory that the unit executes without a VM exit, translating the
// guest's DomainIDs and DeviceIDs through tables the host programs. Register
// layout and programming sequence as Linux's AMD vIOMMU series writes them
// (drivers/iommu/amd/viommu.c, amd_viommu.h):
//
//   VF_CNTL BAR, 64 bytes per GuestID (VIOMMU_VFCTRL_MMIO_BASE):
//     0x00 DID_MAP_CONTROL0  DeviceID map: [63] = 1, [61:46] guest DeviceID,
//                            [29:14] host DeviceID, [0] = 1 (set_device_mapping)
//     0x08 DID_MAP_CONTROL1  DomainID map, same layout (set_domain_mapping)
//     0x20 guest command buffer control: [3:0] ComLen (log2 entries, as
//                            CmdBufBaseAddr[59:56]), [8] CmdBufEn, [9] ComWaitIntEn,
//                            [51:12] base (_amd_viommu_hw_queue_init, guest_mmio_write)
//   VF BAR, 4 KiB per GuestID, mapped into the guest as its vIOMMU's third
//   4 KiB page (amd_viommu_get_vfmmio_addr): 0x0 command buffer head, 0x8
//   tail, bits [18:4] (guest_mmio_read / _write).
//
// A write of DID_MAP_CONTROLn makes the unit write the entry into the guest's
// map table in the unit's private space; a guest command reads it there
// (Linux dump_device_mapping: 16-byte entries indexed by guest DeviceID;
// dump_domain_mapping: 8-byte entries indexed by guest DomainID).
//
// Fidelity — modelled: the guest's commands fetched in order from memory,
// INVALIDATE_IOMMU_PAGES executed by the unit with the host DomainID read from
// the DomainID map (a guest DomainID without a mapping names nothing cached
// for this guest: the command completes with nothing dropped, counted),
// COMPLETION_WAIT's store after every earlier command; each table read,
// fetch, decode and store costs what the unit's own command path costs
// (AmdParams command_fetch, per_command, table_read, per_entry_invalidate,
// status_write, plus the memory latency). The other commands
// (INVALIDATE_DEVTAB_ENTRY, INVALIDATE_IOTLB_PAGES, INVALIDATE_IOMMU_ALL,
// INVALIDATE_INTERRUPT_TABLE, PREFETCH, COMPLETE_PPR_REQUEST) are handed to
// the hypervisor (guest buffer trap mode, Linux viommu_enable's
// CONTROL_GSTBUFFERTRPMODE): the buffer waits until its handler returns; the
// DeviceID map is read first (INVALIDATE_DEVTAB_ENTRY, INVALIDATE_IOTLB_PAGES,
// COMPLETE_PPR_REQUEST), so an unmapped guest DeviceID is refused without a
// trap (counted). An illegal command stops the guest's buffer
// (CmdBufEn must be toggled to restart it, as on the host buffer).
// Estimates, stated: the map entries' bit layout beyond Linux's indexing
// (bit 0 valid, [31:16] host ID); the private space as one linear block at
// a host-programmed base (PrivateBase, the last qword of the VF_CNTL BAR)
// instead of the unit's own I/O page table, with per-GuestID regions of
// 1 MiB DeviceID map + 512 KiB DomainID map + one 64-byte guest-memory
// window (GPA base, host PA, bytes: how the unit reaches guest memory,
// standing for the nesting parent's stage-2 walk, not modelled).
// Not modelled: the guest event and PPR logs (VFCTRL 0x28 / 0x30), so a
// stopped guest buffer is not reported to the guest (its emulated
// Status.CmdBufRun stays set); the guest's completion interrupt (guests
// poll); the command-buffer dirty status bitmap (the engine looks at every
// GuestID with work). A destroyed vIOMMU's GuestID is released by the host
// (buffer control 0, its map entries cleared: AmdDriver::viommu_hw_free).
#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <systemc>
#include <tlm>
#include <tlm_utils/multi_passthrough_target_socket.h>
#include <tlm_utils/simple_target_socket.h>
#include <vector>

#include "models/common/stats.hpp"
#include "models/iommu/amd/amd_params.hpp"
#include "models/iommu/common/cmd_queue.hpp"
#include "models/iommu/common/unit_mem_port.hpp"

namespace iommusim::iommu::amd {

namespace hwv {
inline constexpr uint32_t kVfCntlStride = 64;   ///< VIOMMU_VFCTRL_MMIO_ENTRY_SIZE
inline constexpr uint32_t kVfStride = 4096;     ///< VIOMMU_VF_MMIO_ENTRY_SIZE
inline constexpr uint32_t kDevMapCtl = 0x00, kDomMapCtl = 0x08, kCmdCtl = 0x20;
inline constexpr uint32_t kVfHead = 0x0, kVfTail = 0x8;
inline constexpr uint32_t kVfCntlBarBytes = 0x400000; ///< Linux maps 4 MiB of VF_CNTL
inline constexpr uint32_t kPrivateBaseReg = kVfCntlBarBytes - 8;
inline constexpr uint64_t kCmdEn = uint64_t{1} << 8, kComWaitIntEn = uint64_t{1} << 9;
inline constexpr uint64_t kDevMapBytes = uint64_t{1} << 20;  ///< VIOMMU_DEVID_MAPPING_ENTRY_SIZE
inline constexpr uint64_t kDomMapBytes = uint64_t{1} << 19;  ///< VIOMMU_DOMID_MAPPING_ENTRY_SIZE
inline constexpr uint64_t kWindowBytes = 64;
inline constexpr uint64_t kGuestRegionBytes = kDevMapBytes + kDomMapBytes + 4096; ///< per GuestID, page-rounded
/// The value Linux writes into DID_MAP_CONTROLn to map guest ID `g` to host ID `h` (0 clears).
constexpr uint64_t map_control(uint16_t g, uint16_t h) {
    return (uint64_t{1} << 63) | (uint64_t{g} << 46) | (uint64_t{h} << 14) | 1;
}
} // namespace hwv

/// The plain-C++ core: registers, map tables in memory, one guest command per step.
class AmdHwViommuCore {
public:
    /// What the unit does with a translated command and with a command handed to the hypervisor.
    struct Hooks {
        /// Executes an action on the unit's caches (translations, DTE / GCR3 caches); entries dropped.
        std::function<uint64_t(const CommandAction&)> execute;
        /// Guest buffer trap mode: the hypervisor emulates the command (its own time).
        std::function<void(uint16_t gid, const std::array<uint64_t, 2>& cmd)> trap;
    };
    AmdHwViommuCore(const AmdParams& p, uint16_t guests) : p_(p), guests_(guests ? guests : 1) {
        g_.resize(guests_);
    }

    uint16_t guests() const { return guests_; }
    /// VF_CNTL BAR access (host kernel). A DID_MAP write updates the map table in memory.
    uint64_t vfcntl_read(uint32_t off) const;
    void vfcntl_write(uint32_t off, uint64_t v, UnitMemPort& mem, Duration& local);
    /// VF BAR access (the guest's doorbell page). True when a tail write gave the buffer work.
    uint64_t vf_read(uint32_t off) const;
    bool vf_write(uint32_t off, uint64_t v);

    /// A GuestID whose buffer is enabled, not stopped, with commands between head and tail.
    std::optional<uint16_t> next_with_work(uint16_t from) const;
    /// Fetches, translates and executes the command at the guest's head; `local` gets its cost.
    void step(uint16_t gid, UnitMemPort& mem, const Hooks& h, Duration& local);

    uint64_t private_base() const { return private_base_; }
    /// Where GuestID `gid`'s DeviceID map, DomainID map and guest-memory window live.
    uint64_t devmap(uint16_t gid) const { return private_base_ + gid * hwv::kGuestRegionBytes; }
    uint64_t dommap(uint16_t gid) const { return devmap(gid) + hwv::kDevMapBytes; }
    uint64_t window(uint16_t gid) const { return dommap(gid) + hwv::kDomMapBytes; }
    bool stopped(uint16_t gid) const { return g_.at(gid).stopped; }

    struct Counts {
        uint64_t commands = 0, executed = 0, trapped = 0, unmapped_domains = 0, unmapped_devices = 0,
                 illegal = 0, stores = 0;
    };
    const Counts& counts() const { return n_; }

private:
    struct Guest {
        uint64_t devmap_ctl = 0, dommap_ctl = 0, cmd_ctl = 0;
        uint32_t head = 0, tail = 0;
        bool stopped = false;
        uint64_t bytes() const { return (uint64_t{16} << (cmd_ctl & 0xF)); }
        uint64_t base() const { return cmd_ctl & 0x000FFFFFFFFFF000ull; }
    };
    /// Reads a map entry; the host ID when its valid bit is set.
    std::optional<uint16_t> lookup(uint64_t table, uint64_t index, unsigned entry_bytes, UnitMemPort& mem,
                                   Duration& local);
    /// The host PA of guest-physical `gpa` through the guest's window (nullopt: outside guest RAM).
    std::optional<uint64_t> guest_pa(uint16_t gid, uint64_t gpa, unsigned len, UnitMemPort& mem, Duration& local);

    const AmdParams p_;
    uint16_t guests_;
    std::vector<Guest> g_;
    uint64_t private_base_ = 0;
    Counts n_;
};

/// The SystemC shell: the two BARs and the engine thread. Owned by AmdIommu (which gives it
/// its memory port and cache hooks).
class AmdHwViommu : public sc_core::sc_module {
public:
    tlm_utils::simple_target_socket<AmdHwViommu> vfcntl{"vfcntl"}; ///< host CPU: VF_CNTL BAR
    /// The guests' VF pages (each VM's doorbells, no exit); one binding per VM, or none.
    tlm_utils::multi_passthrough_target_socket<AmdHwViommu, 32, tlm::tlm_base_protocol_types, 0,
                                               sc_core::SC_ZERO_OR_MORE_BOUND>
        vf{"vf"};

    AmdHwViommu(sc_core::sc_module_name name, const AmdParams& p, UnitMemPort& mem, AmdHwViommuCore::Hooks hooks,
                stats::Group* parent);
    AmdHwViommuCore& core() { return core_; }
    const AmdHwViommuCore& core() const { return core_; }
    /// The hypervisor's handler for the commands GuestID `gid`'s buffer traps (guest buffer trap mode).
    void set_trap_handler(uint16_t gid, std::function<void(const std::array<uint64_t, 2>&)> f);

private:
    void b_vfcntl(tlm::tlm_generic_payload& t, sc_core::sc_time& delay);
    void b_vf(int from, tlm::tlm_generic_payload& t, sc_core::sc_time& delay);
    void engine();

    AmdHwViommuCore core_;
    UnitMemPort& mem_;
    AmdHwViommuCore::Hooks hooks_;
    std::vector<std::function<void(const std::array<uint64_t, 2>&)>> trap_handlers_;
    sc_core::sc_event doorbell_;
    stats::Group stats_;
    stats::Counter& st_commands_;
    stats::Counter& st_trapped_;
    stats::Counter& st_unmapped_;
    stats::Histogram& st_latency_;
    Duration doorbell_at_;
};

} // namespace iommusim::iommu::amd
