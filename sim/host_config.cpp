// SPDX-License-Identifier: Apache-2.0
#include "sim/host_config.hpp"

#include "sim/platform_config.hpp"

namespace iommusim::sim {

namespace {

const Schema<host::CpuTopology>& topology_schema() {
    static const auto s = [] {
        using P = host::CpuTopology;
        Schema<P> sc;
        sc.integer("cpus", &P::cpus, "CPUs", "CPUs (cores) of the host; each host thread runs on one (device queue i on CPU i mod cpus, scenario thread i on CPU i mod cpus, boot and timers on CPU 0); default 8 (the 8-core Xeon Gold 6250 of calibration.md's MMIO-read row; estimate)", 1, 4096)
            .integer("cpus_per_ccd", &P::cpus_per_ccd, "CPUs",
                     "CPUs sharing one last-level cache (AMD CCD); 0: one per socket (Intel); default 0", 0, 4096)
            .integer("cpus_per_socket", &P::cpus_per_socket, "CPUs", "CPUs per socket; 0: a single socket; default 0", 0, 4096)
            .time_ns("handoff_same_socket_ns", &P::handoff_same_socket,
                     "cache-line hand-off between two CPUs of one socket (lock taken after another CPU); default 55 ns "
                     "(calibration.md \"cache-line hand-off\": 45-65 ns same Intel socket, midpoint)")
            .time_ns("handoff_cross_ccd_ns", &P::handoff_cross_ccd,
                     "cache-line hand-off across CCDs of one socket; default 100 ns (calibration.md \"cache-line hand-off\": ~100 ns across AMD CCDs)")
            .time_ns("handoff_cross_socket_ns", &P::handoff_cross_socket,
                     "cache-line hand-off across sockets; default 122.5 ns (calibration.md \"cache-line hand-off\": 110-135 ns, midpoint)");
        return sc;
    }();
    return s;
}

const Schema<host::HostCpuParams>& cpu_schema() {
    static const auto s = [] {
        using P = host::HostCpuParams;
        Schema<P> sc;
        sc.time_ns("mmio_write_ns", &P::mmio_write, "uncached register write as the core sees it; default 150 ns (DESIGN.md example; estimate)")
            .time_ns("mmio_read_ns", &P::mmio_read, "uncached read of an on-die IOMMU register (FSTS, IQH, CONS ...); device BARs cost device_mmio_read_ns; default 200 ns (calibration.md \"uncached MMIO read of an on-die IOMMU register\" ~200 ns [estimate, weakest])")
            .time_ns("mem_write_ns", &P::mem_write, "one table-entry / descriptor store to cacheable memory; default 5 ns (estimate)")
            .time_ns("mem_read_ns", &P::mem_read, "reading a status word the IOMMU wrote (cache miss); default 90 ns (estimate)")
            .time_ns("poll_interval_ns", &P::poll_interval,
                     "one cpu_relax (PAUSE) per wait-loop iteration; default 50 ns [estimate: ~140 cycles PAUSE on Skylake-SP and later at 2.8 GHz]; at least 1 ns so that every spin advances simulated time", 1.0)
            .time_ns("interrupt_ns", &P::interrupt_latency, "MSI to handler entry; default 1500 ns (estimate)")
            .time_ns("irq_thread_wakeup_ns", &P::irq_thread_wakeup,
                     "threaded IRQ: the primary handler's IRQ_WAKE_THREAD to the handler thread running on the same CPU (page-request handlers, interrupt-mode waits); default 445 ns [estimate: nothing published; one kernel entry/exit with mitigations, calibration.md \"syscall round trip (ioctl)\" 400-490 ns, midpoint]")
            .time_ns("call_overhead_ns", &P::call_overhead, "software overhead per driver call; default 200 ns (estimate)")
            .time_ns("device_mmio_read_ns", &P::device_mmio_read,
                     "uncached read of a device register (NIC / NVMe BAR) across PCIe; default 415 ns (calibration.md \"uncached MMIO read of a PCIe endpoint register\": 407-424 ns, midpoint)")
            .time_ns("rx_stack_ns", &P::rx_stack,
                     "receive-stack work per packet on the CPU handling the queue; default 208 ns (calibration.md \"Linux RX stack per packet, up to an early drop\")")
            .number("copy_bytes_per_ns", &P::copy_bytes_per_ns, "bytes/ns",
                    "copy rate of one CPU for each received payload (the application's copy); 0 = free; default 10 (calibration.md \"data copy per core ~10 GB/s\" [estimate])", 0.0, 1e6)
            .time_ns("pte_write_ns", &P::pte_write,
                     "one page-table entry written by map or unmap, per domain; default 20 ns (calibration.md \"PTE write per 4 KiB page\" ~20 ns coherent [estimate])")
            .time_ns("clflush_ns", &P::clflush,
                     "one 64-byte line flushed after table writes when the IOMMU does not snoop its walks (VT-d ECAP.C / SMPWC = 0, SMMUv3 without COHACC); default 80 ns (calibration.md \"PTE write per 4 KiB page\": + 60-100 ns per line clflushed, midpoint [estimate])")
            .enumeration("arch", &P::arch,
                         "CPU architecture: the page-table format of processes that SVA domains share (x86_64: 4-level x86-64; x86_64_la57: 5-level x86-64, 57-bit VAs; arm64: VMSAv8-64 4 KiB granule, 48-bit VA, with ASIDs); default x86_64",
                         {{"x86_64", host::CpuArch::x86_64}, {"x86_64_la57", host::CpuArch::x86_64_la57}, {"arm64", host::CpuArch::arm64}})
            .object("topology", &P::topology, topology_schema(), "the host's CPUs and cache-line hand-off costs between them");
        return sc;
    }();
    return s;
}

const Schema<host::DriverParams>& driver_schema() {
    static const auto s = [] {
        using P = host::DriverParams;
        Schema<P> sc;
        sc.enumeration("flush", &P::flush, "strict: invalidate and wait on every unmap; lazy: flush queue (Linux iommu.strict=0)",
                       {{"strict", host::FlushPolicy::strict}, {"lazy", host::FlushPolicy::lazy}})
            .custom("flush_queue_entries", "integer [1, 65536]", "entries", "lazy: flush when this many unmaps are queued; default 256 (Linux IOVA_FQ_SIZE)",
                    [](P& p, const json& j, const std::string& path) {
                        p.flush_queue.max_entries = static_cast<uint32_t>(read::u64(j, path, 1, 65536));
                    },
                    [](const P& p) { return json(p.flush_queue.max_entries); })
            .custom("flush_queue_timeout_us", "number", "us", "lazy: flush when the oldest entry is this old; default 10000 (Linux IOVA_FQ_TIMEOUT 10 ms)",
                    [](P& p, const json& j, const std::string& path) { p.flush_queue.timeout = Duration::us(read::number(j, path, 0.001, 1e9)); },
                    [](const P& p) { return json(p.flush_queue.timeout.as_us()); })
            .enumeration("wait", &P::wait,
                         "how the driver waits for a wait descriptor: poll its status word (Linux qi_submit_sync, AMD wait_on_sem, SMMUv3 CMD_SYNC polling), or sleep until the invalidation-completion MSI (a what-if mode: Linux never sets the wait descriptor's IF / asks for the MSI)",
                         {{"poll", host::WaitMode::poll}, {"interrupt", host::WaitMode::interrupt}})
            .integer("range_threshold_pages", &P::range_threshold_pages, "pages",
                     "ranges larger than this are flushed domain-wide; default 512 (arm-smmu-v3's per-page cap, calibration.md)", 1, uint64_t{1} << 40)
            .boolean("skip_devtlb_invalidation", &P::skip_devtlb_invalidation,
                     "a deliberately broken driver that never invalidates device TLBs (the oracle must report violations)")
            .boolean("skip_sync", &P::skip_sync,
                     "a deliberately broken driver that publishes invalidations without the sync command and never waits (SMMUv3 backend: no CMD_SYNC); the oracle must report violations")
            .boolean("skip_iotlb_invalidation", &P::skip_iotlb_invalidation,
                     "a deliberately broken driver that never invalidates the IOMMU's own IOTLB (VT-d IOTLB / PASID-IOTLB descriptors, AMD INVALIDATE_IOMMU_PAGES / _ALL, SMMUv3 CMD_TLBI_*) but still syncs, so it believes each flush completed; the oracle must report violations")
            .boolean("reuse_iova_before_flush", &P::reuse_iova_before_flush,
                     "a deliberately broken driver that frees an unmapped IOVA before the invalidation covering it completed (lazy: at unmap instead of after the flush-queue flush), so it may be mapped again while the old translation is cached; the oracle must report violations")
            .integer("queue_order", &P::queue_order, "", "invalidation queue of 2^order 4 KiB pages; default 1 (Linux: 256 x 32 B)", 0, 7)
            .integer("prq_order", &P::prq_order, "", "page request queue of 2^order 4 KiB pages (set up when a device has PRI); default 4 (Linux PRQ_ORDER)", 0, 7)
            .time_ns("iova_cache_ns", &P::iova_cache,
                     "DMA-API IOVA allocation or free served by the CPU's magazine (rcache); default 35 ns (calibration.md \"IOVA per-CPU cache (magazine) hit\": probably 20-50 ns, midpoint [estimate])")
            .time_ns("iova_tree_alloc_ns", &P::iova_tree_alloc,
                     "IOVA allocation from the tree (cache empty or size not cacheable), under the tree lock; default 661 ns (calibration.md \"IOVA allocation, rbtree slow path\": augmented rbtree average)")
            .time_ns("iova_tree_free_ns", &P::iova_tree_free,
                     "IOVA free into the tree, under the tree lock; default 433 ns (calibration.md \"IOVA allocation, rbtree slow path\": free)")
            .time_ns("page_fault_service_ns", &P::page_fault_service,
                     "software cost per I/O page fault (handle_mm_fault: zero 4 KiB at calibration.md \"data copy\" ~10 GB/s + ~0.1 us allocation and PTE install); default 500 ns [estimate]")
            .time_ns("iopf_wakeup_ns", &P::iopf_wakeup,
                     "waking the iopf workqueue's kworker on another CPU for each page request group (Linux iopf_group_queue_work); default 1500 ns (calibration.md \"MSI to handler entry, bare metal ~1.5 us\": the same interrupt-delivery path [estimate, weak])");
        return sc;
    }();
    return s;
}

const Schema<host::HostMemoryLayout>& layout_schema() {
    static const auto s = [] {
        using P = host::HostMemoryLayout;
        Schema<P> sc;
        sc.integer("table_base", &P::table_base, "address", "physical base of the page-table / driver-structure region; default 1 GiB")
            .size("table_bytes", &P::table_bytes, "size of that region; default 1 GiB", 1 << 20)
            .integer("data_base", &P::data_base, "address", "physical base of DMA buffers and process memory; default 2 GiB")
            .size("data_bytes", &P::data_bytes, "size of that region; default 8 GiB", 1 << 20);
        return sc;
    }();
    return s;
}

const Schema<host::PasidParams>& pasid_schema() {
    static const auto s = [] {
        using P = host::PasidParams;
        Schema<P> sc;
        sc.integer("default_quota", &P::default_quota, "PASIDs",
                   "PASIDs an owner (a VM or a process) may hold when its PASID set names no quota; default 1000 "
                   "(VFIO_DEFAULT_PASID_QUOTA of the VFIO_IOMMU_PASID_REQUEST series, tunable by the administrator)",
                   1, host::PasidAllocator::kPasidLimit - 1);
        return sc;
    }();
    return s;
}

} // namespace

host::HostParams parse_host(const json& j) {
    host::HostParams p;
    read::object(j, "/host");
    check_keys(j, "/host", {"cpu", "driver", "memory", "pasid"});
    if (j.contains("cpu")) cpu_schema().parse(j["cpu"], "/host/cpu", p.cpu);
    if (j.contains("driver")) driver_schema().parse(j["driver"], "/host/driver", p.driver);
    if (j.contains("memory")) layout_schema().parse(j["memory"], "/host/memory", p.layout);
    if (j.contains("pasid")) pasid_schema().parse(j["pasid"], "/host/pasid", p.pasid);
    return p;
}

json dump_host(const host::HostParams& p) {
    json j = json::object();
    j["cpu"] = cpu_schema().dump(p.cpu);
    j["driver"] = driver_schema().dump(p.driver);
    j["memory"] = layout_schema().dump(p.layout);
    j["pasid"] = pasid_schema().dump(p.pasid);
    return j;
}

void document_host(std::vector<ParamSection>& out) {
    ParamSection c{"host.cpu", "host CPU costs (/host/cpu)", {}};
    cpu_schema().document(host::HostCpuParams{}, "", c.params);
    out.push_back(std::move(c));
    ParamSection d{"host.driver", "IOMMU driver policy (/host/driver)", {}};
    driver_schema().document(host::DriverParams{}, "", d.params);
    out.push_back(std::move(d));
    ParamSection m{"host.memory", "host physical memory layout (/host/memory)", {}};
    layout_schema().document(host::HostMemoryLayout{}, "", m.params);
    out.push_back(std::move(m));
    ParamSection ps{"host.pasid", "PASID sets and quotas (/host/pasid)", {}};
    pasid_schema().document(host::PasidParams{}, "", ps.params);
    out.push_back(std::move(ps));
}

} // namespace iommusim::sim
