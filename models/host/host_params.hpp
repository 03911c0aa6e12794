// SPDX-License-Identifier: Apache-2.0
#pragma once
// Host CPU and driver parameters. CPU-side costs are estimates where no
// published per-operation figure exists; each says so.
#include <cstdint>

#include "models/common/time.hpp"
#include "models/host/cpu_lock.hpp"
#include "models/host/flush_queue.hpp"

namespace iommusim::host {

/// The CPU's architecture: the page-table format of its processes (shared by SVA domains).
enum class CpuArch : uint8_t {
    x86_64,        ///< x86-64 4-level tables, 48-bit VAs (VT-d first stage, AMD-Vi v2)
    x86_64_la57,   ///< x86-64 5-level tables, 57-bit VAs (LA57 with CONFIG_X86_5LEVEL)
    arm64,         ///< Arm VMSAv8-64, 4 KiB granule, 48-bit VA (Linux arm64 defaults), ASIDs (SMMUv3 CD)
};

struct HostCpuParams {
    // ns; uncached MMIO write as seen by the issuing core (posted, but UC
    // stores serialize): DESIGN.md example value; estimate.
    static constexpr double kDefaultMmioWriteNs = 150.0;
    // ns; uncached MMIO read of an on-die IOMMU register (VT-d FSTS, IQH):
    // calibration.md "uncached MMIO read of an on-die IOMMU register" ~200 ns
    // [estimate, weakest: no link crossed, nothing published].
    static constexpr double kDefaultMmioReadNs = 200.0;
    // ns; writing one table entry or queue descriptor into cacheable memory
    // (the IOMMU snoops: ECAP.C / SMPWC): an L1/L2 store, estimate.
    static constexpr double kDefaultMemWriteNs = 5.0;
    // ns; reading a status word the IOMMU wrote (a cache miss to memory): estimate.
    static constexpr double kDefaultMemReadNs = 90.0;
    // ns; one cpu_relax() (PAUSE) between polls of a sync's status word, as
    // Linux's qi_submit_sync spins [estimate: PAUSE takes ~140 cycles on
    // Skylake-SP and later (Intel optimization manual), ~50 ns at 2.8 GHz].
    static constexpr double kDefaultPollIntervalNs = 50.0;
    // ns; MSI to handler entry, interrupt mode: estimate (~1-2 us on servers).
    static constexpr double kDefaultInterruptNs = 1500.0;
    // ns; from the primary handler returning IRQ_WAKE_THREAD to the IRQ thread running on the
    // same CPU (try_to_wake_up + a switch to a kernel thread, no address-space switch). Nothing
    // published for it: estimate, one kernel entry/exit with mitigations, calibration.md
    // "syscall round trip (ioctl)" 400-490 ns, midpoint.
    static constexpr double kDefaultIrqThreadWakeupNs = 445.0;
    // ns; per driver call software overhead (locking, bookkeeping): estimate.
    static constexpr double kDefaultCallOverheadNs = 200.0;
    // ns; uncached read of a device register across PCIe (a NIC or NVMe BAR):
    // calibration.md "uncached MMIO read of a PCIe endpoint register" 407-424 ns, midpoint.
    static constexpr double kDefaultDeviceMmioReadNs = 415.0;
    // ns per received packet; calibration.md "Linux RX stack per packet, up to an
    // early drop": 208 ns (4.8 Mpps per core), on the CPU that handles the queue.
    static constexpr double kDefaultRxStackNs = 208.0;
    // bytes per ns (= GB/s); calibration.md "data copy per core ~10 GB/s" [estimate]:
    // the application's copy of each received payload, on the same CPU.
    static constexpr double kDefaultCopyBytesPerNs = 10.0;
    // ns per page-table entry written (map or unmap, each domain): calibration.md "PTE write
    // per 4 KiB page" ~20 ns coherent [estimate].
    static constexpr double kDefaultPteWriteNs = 20.0;
    // ns per 64-byte line flushed (clflush) after table writes when the IOMMU's walks are not
    // coherent: calibration.md "PTE write per 4 KiB page" + 60-100 ns per line, midpoint [estimate].
    static constexpr double kDefaultClflushNs = 80.0;

    Duration mmio_write = Duration::ns(kDefaultMmioWriteNs);
    Duration mmio_read = Duration::ns(kDefaultMmioReadNs);
    Duration mem_write = Duration::ns(kDefaultMemWriteNs);
    Duration mem_read = Duration::ns(kDefaultMemReadNs);
    Duration poll_interval = Duration::ns(kDefaultPollIntervalNs);
    Duration interrupt_latency = Duration::ns(kDefaultInterruptNs);
    Duration irq_thread_wakeup = Duration::ns(kDefaultIrqThreadWakeupNs);
    Duration call_overhead = Duration::ns(kDefaultCallOverheadNs);
    Duration device_mmio_read = Duration::ns(kDefaultDeviceMmioReadNs);
    Duration rx_stack = Duration::ns(kDefaultRxStackNs);
    double copy_bytes_per_ns = kDefaultCopyBytesPerNs; ///< 0: copies are free
    Duration pte_write = Duration::ns(kDefaultPteWriteNs);
    Duration clflush = Duration::ns(kDefaultClflushNs);
    CpuArch arch = CpuArch::x86_64;
    /// The CPUs and what a cache-line hand-off between two of them costs (locks).
    CpuTopology topology;
};

enum class FlushPolicy : uint8_t { strict, lazy };
enum class WaitMode : uint8_t { poll, interrupt };

struct DriverParams {
    FlushPolicy flush = FlushPolicy::strict;
    FlushQueueParams flush_queue;
    WaitMode wait = WaitMode::poll;
    // pages; a range invalidation larger than this falls back to a
    // domain-wide (or PASID-wide) flush. Linux intel-iommu uses a PSI up to
    // 2^CAP.MAMV pages; arm-smmu-v3 caps per-page TLBIs at 512 (calibration.md).
    static constexpr uint64_t kDefaultRangeThresholdPages = 512;
    uint64_t range_threshold_pages = kDefaultRangeThresholdPages;
    /// A deliberately broken driver: never invalidates device TLBs (ATCs),
    /// so the safety oracle must see violations. For tests and teaching.
    bool skip_devtlb_invalidation = false;
    /// A deliberately broken driver: publishes its invalidation commands without the
    /// sync command and returns at once, never waiting for completion (backends on the
    /// shared command-queue driver that honour it: SMMUv3). The oracle must see violations.
    bool skip_sync = false;
    /// A deliberately broken driver: never invalidates the unit's own translation caches
    /// (VT-d IOTLB / PASID-based IOTLB descriptors, AMD-Vi INVALIDATE_IOMMU_PAGES / _ALL,
    /// SMMUv3 CMD_TLBI_*); device-TLB invalidations, configuration invalidations and the
    /// sync still go out, so the driver believes every flush completed. The shared
    /// command-queue driver drops those commands (CmdQueueDriver::set_dropped, classified
    /// by each backend's CmdQueueHooks::kind_of). The oracle must see violations.
    bool skip_iotlb_invalidation = false;
    /// A deliberately broken driver: an unmapped IOVA goes back to the allocator at once,
    /// before the invalidation covering it completed (strict: before the flush is submitted;
    /// lazy: instead of when its flush queue is flushed), so a later map may reuse it while
    /// a translation of the old mapping is still cached. The memory behind it is released
    /// after the flush as before. The oracle must see violations (a DMA through the old
    /// translation once the IOVA was mapped again).
    bool reuse_iova_before_flush = false;
    /// Invalidation queue size: 2^queue_order 4 KiB pages (Linux: 8 KiB = 256 x 32 B descriptors).
    uint8_t queue_order = 1;

    // ---- page requests (PRI): used when a device behind the unit has PRI ----
    /// Page request queue size: 2^prq_order 4 KiB pages (Linux PRQ_ORDER = 4: 64 KiB, 2048
    /// 32-byte requests; drivers/iommu/intel/iommu.h, UNCONFIRMED for older kernels).
    static constexpr uint8_t kDefaultPrqOrder = 4;
    uint8_t prq_order = kDefaultPrqOrder;
    // ns; software cost of servicing one I/O page fault besides the modelled register, queue and
    // page-table work and the iopf hand-off (iopf_wakeup): the mm lookup and handle_mm_fault
    // for an anonymous page (allocate + zero 4 KiB). Built from components
    // [estimate]: zeroing 4 KiB at calibration.md "data copy per core ~10 GB/s" = ~410 ns, plus
    // ~100 ns for the allocation and PTE install (the "dma_map_page 4 KiB ~0.1 us" row is the
    // closest published per-page kernel path) = 500 ns. The published service times (mean 9 us)
    // are outcomes to compare with, never inputs.
    static constexpr double kDefaultPageFaultServiceNs = 500.0;
    Duration page_fault_service = Duration::ns(kDefaultPageFaultServiceNs);
    // ns; the PRQ thread hands each page request group to the iopf workqueue (Linux
    // iommu_report_device_fault -> iopf_group_queue_work -> queue_work), whose kworker must be
    // woken on another CPU: an interrupt (IPI) to that CPU and its entry into the handler.
    // calibration.md "MSI to handler entry, bare metal ~1.5 us" [estimate, weak], the same
    // delivery path; nothing published for the wake-up itself.
    static constexpr double kDefaultIopfWakeupNs = 1500.0;
    Duration iopf_wakeup = Duration::ns(kDefaultIopfWakeupNs);

    // ---- IOVA allocation (DMA API), calibration.md "Host CPU and driver" ----
    // ns; an allocation or free served by the CPU's magazine: "IOVA per-CPU cache
    // (magazine) hit <= 100 ns, probably 20-50" [estimate]: midpoint of 20-50.
    static constexpr double kDefaultIovaCacheNs = 35.0;
    // ns; "IOVA allocation, rbtree slow path": augmented rbtree average 661 ns.
    static constexpr double kDefaultIovaTreeAllocNs = 661.0;
    // ns; same row: free 433 ns.
    static constexpr double kDefaultIovaTreeFreeNs = 433.0;
    Duration iova_cache = Duration::ns(kDefaultIovaCacheNs);
    Duration iova_tree_alloc = Duration::ns(kDefaultIovaTreeAllocNs);
    Duration iova_tree_free = Duration::ns(kDefaultIovaTreeFreeNs);
};

} // namespace iommusim::host
