// SPDX-License-Identifier: Apache-2.0
#pragma once
// Parameters of a virtual machine and its VMM (models/host/vm). Every cost
// cites its calibration.md row or says how the estimate was derived.
#include <cstdint>

#include "models/common/time.hpp"

namespace iommusim::host::vm {

/// How the guest's invalidations reach the physical IOMMU.
enum class ViommuMode : uint8_t {
    nested,        ///< guest stage 1 over the host's stage 2; the VMM forwards invalidations (iommufd nesting)
    caching_mode,  ///< VT-d CM=1: the guest invalidates on map too and the VMM shadows its tables (QEMU baseline)
    accelerated,   ///< nested, the guest's queue executed by the unit without a trap (AMD hardware vIOMMU)
};

/// What the VMM's trap handling costs.
struct VmmCosts {
    // ns; exit of the vCPU to the user-space VMM on a trapped register access: half of
    // calibration.md "MMIO exit to a user-space VMM and back" (3-5 us x86, midpoint 4 us)
    // [V]/[estimate]; the even split between exit and entry is an estimate.
    static constexpr double kDefaultExitNs = 2000.0;
    // ns; the return to the guest (VMM -> kernel -> VM entry): the other half of the same row.
    static constexpr double kDefaultEntryNs = 2000.0;
    // ns; one iommufd ioctl from the VMM: calibration.md "syscall round trip (ioctl)" 400-490 ns, midpoint.
    static constexpr double kDefaultIoctlNs = 445.0;
    // ns; decoding one guest queue entry: the VMM reads the line the guest's vCPU just wrote
    // (calibration.md "cache-line hand-off between cores" 45-65 ns, midpoint 55); the switch on
    // the type is negligible beside it [estimate].
    static constexpr double kDefaultDecodeNs = 55.0;
    // ns; one guest page-table read while the VMM shadows (caching mode): a cache miss to the
    // guest's table page, calibration.md "DRAM idle read latency" 81-90 ns -> 90 [V].
    static constexpr double kDefaultShadowReadNs = 90.0;
    // ns; a VM exit KVM handles in the kernel and the VM entry back (a guest WBINVD): calibration.md
    // "VM exit + entry, trivial in-kernel handler" ~600 ns x86 [V].
    static constexpr double kDefaultKernelExitNs = 600.0;
    // ns; the host's WBINVD on the CPU that ran the vCPU while the VM has non-coherent DMA:
    // [estimate] a 60 MiB LLC (Xeon 8380, the ICX part of calibration.md "usable bandwidth":
    // 176 GB/s) all dirty, written back at 176 GB/s less 22.5 % for writes ("loaded-latency
    // shape": writes cut the usable peak by 20-25 %) = 136.4 GB/s -> 461 us. An upper bound:
    // a partly dirty cache writes back less.
    static constexpr double kDefaultWbinvdFlushNs = 461000.0;
    // ns; the VMM's event thread woken from poll() on the fault queue's / vEVENTQ's file
    // (wake_up_interruptible: an IPI to the CPU it sleeps on, then the scheduler): calibration.md
    // "MSI to handler entry, bare metal ~1.5 us" [estimate, weak], the same delivery path as
    // DriverParams::iopf_wakeup; nothing published for the wake-up itself. The read() / write()
    // on the file then cost one `ioctl` each (the same syscall round trip).
    static constexpr double kDefaultEventWakeupNs = 1500.0;

    Duration exit = Duration::ns(kDefaultExitNs);
    Duration entry = Duration::ns(kDefaultEntryNs);
    Duration ioctl = Duration::ns(kDefaultIoctlNs);
    Duration decode = Duration::ns(kDefaultDecodeNs);
    Duration shadow_read = Duration::ns(kDefaultShadowReadNs);
    Duration kernel_exit = Duration::ns(kDefaultKernelExitNs);
    Duration wbinvd_flush = Duration::ns(kDefaultWbinvdFlushNs);
    Duration event_wakeup = Duration::ns(kDefaultEventWakeupNs);
};

struct VmParams {
    // bytes; guest RAM. Enough for the guest's tables and the shipped platforms' buffers; each
    // 4 KiB of it is one stage-2 PTE the VMM maps at creation [estimate: a choice, not a cost].
    static constexpr uint64_t kDefaultRamBytes = uint64_t{64} << 20;
    // GPA of the first byte of guest RAM (above the host IOAS's lowest IOVA, 1 MiB).
    static constexpr uint64_t kDefaultRamGpa = uint64_t{1} << 30;
    // bytes of guest RAM the guest kernel keeps for its IOMMU tables and queues (the rest is its DMA memory).
    static constexpr uint64_t kDefaultGuestTableBytes = uint64_t{16} << 20;

    uint64_t ram_bytes = kDefaultRamBytes;
    uint64_t ram_gpa = kDefaultRamGpa;
    uint64_t guest_table_bytes = kDefaultGuestTableBytes;
    // PASIDs; the quota of the VM's PASID set (guest PASIDs it may bind). A choice, not a cost:
    // enough for a few SIOV/SVA queues per device.
    static constexpr uint32_t kDefaultPasidQuota = 64;
    uint32_t pasid_quota = kDefaultPasidQuota;
    /// Leaf size of the nesting parent's stage-2 map of guest RAM (VFIO maps in the backing's
    /// page size: 4 KiB without huge pages). 12 = 4 KiB, 21 = 2 MiB.
    unsigned stage2_page_shift = 12;
    ViommuMode mode = ViommuMode::nested;
    VmmCosts vmm;
    /// A deliberately broken VMM that never forwards the guest's ATC invalidations (AMD
    /// INVALIDATE_IOTLB_PAGES, SMMUv3 CMD_ATC_INV): the oracle must report the stale ATC.
    bool drop_forwarded_atc = false;
    /// The VMM offers the guest page requests (PRI, SMMUv3 stalls) of its passed-through devices
    /// and delivers them, and the guest's stage-1 events, through iommufd's fault queue and
    /// vEVENTQ (models/host/vm/viommu.hpp). Off: the guest sees no PRI (as before).
    bool page_requests = false;
};

} // namespace iommusim::host::vm
