// SPDX-License-Identifier: Apache-2.0
#pragma once
// Arm SMMUv3 driver backend: what Linux's drivers/iommu/arm/arm-smmu-v3 does,
// at the level of the real structures, registers and queues.
//
// Fidelity — modelled: the ID registers read at probe (IDR0/1/3/5:
// arm_smmu_device_hw_probe) decide the capabilities; the unit is brought up
// in arm_smmu_device_reset's order (CR1 table/queue attributes, CR2 PTM |
// RECINVSID (| E2H), STRTAB_BASE/_CFG, CMDQ base/PROD/CONS then CMDQEN,
// CFGI_ALL (CFGI_STE_RANGE Range 31) + TLBI_EL2_ALL (HYP) + TLBI_NSNH_ALL +
// CMD_SYNC, EVTQ then EVTQEN, PRIQ then PRIQEN (PRI), ATSCHK (ATS), the MSI
// configuration of GERROR/EVTQ/PRIQ and IRQ_CTRL, SMMUEN; every CR0 write
// read back from CR0ACK). The stream table is linear, or 2-level when
// IDR0.ST_LVL allows it and SIDSIZE > 8 (Linux STRTAB_SPLIT = 8, at most
// 2^17 L1 descriptors), its level-2 tables (256 STEs, initialised to abort)
// allocated when a StreamID is first used. STEs and CDs are written the way
// Linux's arm_smmu_write_entry does: only dword 0 or only the other dwords
// change -> write them, then CFGI + CMD_SYNC; otherwise a live entry is first
// made invalid (V = 0, CFGI + CMD_SYNC), the other dwords written (CFGI +
// CMD_SYNC), dword 0 last (CFGI + CMD_SYNC); a new STE is followed by
// CMD_PREFETCH_CONFIG without a sync. CD tables: linear, or 2-level with
// 64 KiB leaves (S1Fmt 2) when more than 1024 CDs and IDR0.CD2L, the leaf
// created on demand (L1 descriptor + CFGI_CD Leaf = 0); S1CDMax = the
// master's SSID bits (min of SSIDSIZE and the device's PASID width); S1DSS =
// SSID0 (requests without PASID use CD 0). ASIDs and VMIDs from 1
// (DomainTagAllocator, as Linux's xa_alloc / ida_alloc_range), 8 or 16 bits
// from IDR0.ASID16 / VMID16. Stage-1 domains: Arm VMSAv8-64 tables with the
// CPU's 4 KiB granule if IDR5.GRAN4K, else the smallest granule IDR5 offers
// (arm_lpae_restrict_pgsizes), 48-bit input, CD as arm_smmu_make_s1_cd (TTB0,
// EPD1, ASET = 1, R, A, IPS = OAS, io-pgtable's MAIR); with IDR0.HYP the host
// kernel is taken to run at EL2 (VHE): STRW = EL2, CR2.E2H and TLBI_EL2_*
// (ARM_SMMU_FEAT_E2H). Stage-2 domains: VTCR from the table geometry, S2R,
// S2PTW, S2AA64, VMID. Identity: a bypass STE. SVA: the process's own
// arm64 tables and its CPU ASID in a CD with ASET = 0 (arm_smmu_share_asid
// of Linux 5.x-6.8: a private domain holding that ASID gets a new one, its
// CDs are rewritten and the old ASID invalidated), HA/HD from IDR0.HTTU.
// Invalidation: commands gathered into one batch ending with one CMD_SYNC
// (arm_smmu_cmdq_batch); TLBI_NH_VA / EL2_VA / S2_IPA per granule page with
// Leaf set for unmaps, ASID-wide (TLBI_NH_ASID / EL2_ASID / S12_VMALL) above
// host.driver.range_threshold_pages (Linux CMDQ_MAX_TLBI_OPS, calibration.md),
// with IDR3.RIL range TLBIs (NUM/SCALE/TG/TTL as __arm_smmu_tlb_inv_range
// builds them) and no cap; then, in a second batch, ATC_INV for every ATS
// master (arm_smmu_atc_inv_domain, span encoding of arm_smmu_atc_inv_to_cmd,
// Size 52 for everything). CMD_SYNC completes by its MSI write of 0 into its
// own first word in the queue, which the driver polls (CS = SIG_IRQ, MSH =
// ISH, MSIAttr = OIWB: __arm_smmu_cmdq_poll_until_msi). Queue errors:
// GERROR.CMDQ_ERR is noticed through the GERROR MSI (the interrupt handler
// runs arm_smmu_cmdq_skip_err): CERROR_ILL -> the command at CONS is
// replaced by a CMD_SYNC and its submission fails; CERROR_ABT -> retried;
// CERROR_ATC_INV_SYNC -> the submission fails (Linux lets the CMD_SYNC repeat
// and times out after 1 s); then GERRORN is toggled. EVTQ records are read
// (counted) when the EVTQ MSI fired; PRIQ records are served by the
// shared page-request log driver, a threaded IRQ woken by the PRIQ MSI
// (arm_smmu_priq_thread: per record read, CONS written; PROD read again until
// the queue is empty; CONS.OVACKFLG synced after an overflow): SVA demand
// faults resolved by the host and answered with PRI_RESP (Success / Deny /
// Fail), issued without CMD_SYNC as arm_smmu_handle_ppr issues its Deny.
// The EVTQ handler shares the thread (it runs first when the EVTQ MSI
// fired). Stalls: a master whose
// firmware says "dma-can-stall" on a unit with STALL_MODEL stall (or every
// master with STALL_MODEL forced) gets CD.S and no STE.S1STALLD
// (arm_smmu_probe_device, arm_smmu_make_cdtable_ste / _s1_cd / _sva_cd); an
// EVTQ record with Stall = 1 of a translation, address-size, access or
// permission fault becomes an I/O page fault for the host's handler (the
// page-request thread; arm_smmu_handle_evt, STAG as the group), answered by
// CMD_RESUME Retry on success, else Abort, without CMD_SYNC
// (arm_smmu_page_response); one without PASID or without a handler is aborted.
// A stall of a master attached to a nested domain with an iommufd fault queue
// goes there instead (iommu_report_device_fault -> iommufd) and is resumed when
// user space answers (page_response); other stage-1 events of such a master
// (C_BAD_STE, F_STREAM_DISABLED, C_BAD_SUBSTREAMID, C_BAD_CD, F_TRANSLATION,
// F_ADDR_SIZE, F_ACCESS, F_PERMISSION; S2 = 0) go raw, StreamID replaced by
// the vSID, to its vIOMMU's vEVENTQ (arm_vmaster_report_event).
// Cache coherency: Linux's only source is firmware's CANWBS for the master's
// root complex (IOMMU_CAP_ENFORCE_CACHE_COHERENCY); a domain enforces
// coherency when every master attached is CANWBS
// (arm_smmu_enforce_cache_coherency) and then refuses other masters
// (arm_smmu_attach_prepare); nothing is programmed for it (IDR0.COHACC only
// makes the unit's own table and queue accesses coherent: CR1 and the
// STE/CD walk attributes WB inner-shareable, as written anyway).
// Not modelled: mainline Linux answers every PRI page request with Deny (only
// stall-based I/O page faults are merged); here PRI requests fault pages in
// as the issue asks.
// Nested (smmuv3_driver_nested.cpp; Linux arm-smmu-v3-iommufd.c): a nested
// domain is a vSTE (IOMMU_HWPT_DATA_ARM_SMMUV3, dwords 0-1) with only the
// fields Linux lets a guest set (V, Config abort / bypass / S1, S1Fmt,
// S1ContextPtr, S1CDMax, S1DSS, S1CIR/COR/CSH, S1STALLD, EATS 0 or 1); its
// STE is the parent's stage-2 STE (VMID of the nesting parent) with Config =
// nested and those fields copied, the CD table an IPA the unit reads through
// stage 2. The vIOMMU's invalidation arrays (raw guest commands, E.3) are
// converted as arm_vsmmu_convert_user_cmd does: TLBI_NH_* with the VMID
// forced, TLBI_NSNH_ALL -> TLBI_NH_ALL of the VMID, ATC_INV / CFGI_CD(_ALL)
// with vSID -> pSID; anything else or an unknown vSID stops the array (EIO);
// the converted commands go out in one batch with one CMD_SYNC.
// Not modelled:
// the lock-free multi-producer command queue (one lock instead: CmdQueueDriver's
// HostLock, a cache-line hand-off per contended acquisition),
// batches above 64 commands issued without sync before the last, the
// Linux 6.9+ hitless STE update's finer "used bits" analysis, the 1 s poll
// time-out, MSI-less units (rejected at enable), interrupt-driven waits
// (Linux never sleeps on CMD_SYNC: rejected at enable), PRIQ wrap when full.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "models/common/stats.hpp"
#include "models/host/cmd_queue_driver.hpp"
#include "models/host/domain_tags.hpp"
#include "models/host/host_cpu.hpp"
#include "models/host/host_params.hpp"
#include "models/host/iommu_driver.hpp"
#include "models/host/msi_decoder.hpp"
#include "models/host/page_request_log.hpp"
#include "models/host/page_requests.hpp"
#include "models/iommu/smmuv3/smmuv3_commands.hpp"
#include "models/iommu/smmuv3/smmuv3_events.hpp"
#include "models/iommu/smmuv3/smmuv3_tables.hpp"

namespace iommusim::host {

class Smmuv3Driver final : public IommuDriver, private CmdQueueHooks, private PageRequestLogHooks {
public:
    Smmuv3Driver(const std::string& name, MmioPort mmio, const DriverParams& params,
                 std::function<uint64_t()> alloc_page, stats::Group* parent_stats, MsiDecoder* msi = nullptr);

    void enable() override;
    const IommuCaps& caps() const override;
    PagingFormat paging_format(DomainDesc::Kind kind, std::optional<uint8_t> levels) const override;
    uint32_t domain_tag(const DomainDesc& d) override;
    /// Private ASIDs / VMIDs go back to their allocator; an SVA domain's ASID is the CPU's.
    void release_domain_tag(const DomainDesc& d) override;
    /// arm_smmu_enforce_cache_coherency: a CANWBS device (IOMMU_CAP_ENFORCE_CACHE_COHERENCY) asks;
    /// the domain enforces coherency when every master already attached to it is CANWBS too.
    /// Nothing is programmed: the root complexes keep those accesses coherent.
    std::optional<bool> enforce_coherency_for(const DomainDesc& domain, const DeviceInfo& device) const override;
    void attach(const Attachment& a, const DomainDesc& domain) override;
    FlushTiming detach(const Attachment& a, const DomainDesc& domain) override;
    FlushTiming flush(const FlushRequest& r) override;
    void enable_page_requests() override;
    [[noreturn]] void serve_page_requests(PageRequestHandler& handler, PageRequestStats& st) override;
    void page_response(const PageRequestInfo& last, pcie::PrgResponseCode code) override;
    iommu::InvalidationObserver& invalidation_observer() override { return queue_; }
    std::optional<std::string> check_nested(uint32_t data_type, const std::array<uint64_t, 4>& entry,
                                            bool& unsupported) const override;
    std::optional<uint32_t> viommu_invalidate_type() const override { return uapi::kInvalidateDataArmSmmuv3; }
    uapi::Errno viommu_invalidate(const ViommuRef& v, const std::vector<std::array<uint64_t, 2>>& cmds, uint32_t& done,
                                  FlushTiming& timing) override;

    // CMDQ-Virtualization (iommu/smmuv3/smmuv3_cmdqv.hpp), programmed as Linux's tegra241-cmdqv.c
    // does for user-space VINTFs (smmuv3_driver_nested.cpp). The host's own commands stay on the
    // SMMU's CMDQ (Linux's bypass_vcmdq).
    void attach_cmdqv(MmioPort cmdqv, uint16_t vintfs, uint16_t queues);
    bool viommu_hw_alloc(uint32_t viommu, const GuestRam& ram) override;
    void viommu_hw_vdevice(uint32_t viommu, uint64_t virt_id, const DeviceInfo& dev) override;
    uapi::Errno hw_queue_alloc(uint32_t viommu, uint64_t base, uint64_t bytes) override;
    void viommu_hw_vdevice_free(uint32_t viommu, uint64_t virt_id) override;
    void viommu_hw_free(uint32_t viommu) override;
    /// The CMDQV VINTF of a hardware vIOMMU (its logical pages are what the VMM maps into the guest).
    std::optional<uint16_t> vintf(uint32_t viommu) const;
    /// A secondary command queue (Linux arm_smmu_impl_ops.get_secondary_cmdq): handed every batch
    /// first; it returns the batch's timing when it took it, nullopt when the batch goes to the
    /// SMMU's CMDQ (a guest's vCMDQ takes only the commands its hardware allows).
    using SecondaryCmdq = std::function<std::optional<FlushTiming>(const std::vector<iommu::smmuv3::Command>&)>;
    void set_secondary_cmdq(SecondaryCmdq f) { secondary_ = std::move(f); }

    /// What the driver reads from IDR0/1/3/5 (Linux arm_smmu_device_hw_probe).
    struct Features {
        IommuCaps caps;
        bool st_2level = false, cd_2level = false, ril = false, hyp = false, msi = false, cohacc = false;
        bool ha = false, hd = false;
        bool stall = false;       ///< IDR0.STALL_MODEL = stall or forced (ARM_SMMU_FEAT_STALLS)
        bool stall_force = false; ///< IDR0.STALL_MODEL = forced (ARM_SMMU_FEAT_STALL_FORCE): every master stalls
        uint8_t asid_bits = 8, vmid_bits = 8, sid_bits = 0, ssid_bits = 0, oas_bits = 48;
        uint8_t cmdqs = 0, evtqs = 0, priqs = 0;
        uint8_t granule = 12;  ///< the stage-1/2 granule Linux picks: 4 KiB if offered, else the smallest
    };
    static Features decode_features(uint32_t idr0, uint32_t idr1, uint32_t idr3, uint32_t idr5);
    /// The TLBI commands for [iova, iova + size) (size 0: the whole ASID / VMID) as
    /// __arm_smmu_tlb_inv_range builds them: `base` carries opcode, ASID / VMID and Leaf.
    static std::vector<iommu::smmuv3::Command> tlbi_range(const iommu::smmuv3::Command& base, uint64_t iova,
                                                          uint64_t size, unsigned granule, bool ril,
                                                          uint64_t cap_pages);
    /// ATC_INV for [iova, iova + size) (size 0: everything), arm_smmu_atc_inv_to_cmd.
    static iommu::smmuv3::Command atc_inv(uint32_t sid, std::optional<uint32_t> ssid, uint64_t iova, uint64_t size);
    /// The stream table's base (for tests).
    uint64_t stream_table() const { return st_ ? st_->config().base : 0; }

private:
    /// What Linux keeps per master (arm_smmu_master + its CD table).
    struct Master {
        DeviceInfo info;
        uint8_t ssid_bits = 0;
        bool ats = false;
        bool stall = false;                       ///< stall_enabled: CD.S set, STE.S1STALLD clear
        std::unique_ptr<iommu::smmuv3::CdTableWriter> cds;
        std::optional<uint32_t> rid_domain;       ///< domain attached to requests without PASID
        std::map<uint32_t, uint32_t> pasids;      ///< SSID -> domain id
    };
    Master& master(const DeviceInfo& d);
    std::optional<uint64_t> alloc_table(uint64_t bytes, uint64_t align);
    uint32_t sid(const DeviceInfo& d) const { return d.rid.raw; }

    iommu::smmuv3::Ste make_cdtable_ste(const Master& m) const;
    iommu::smmuv3::Ste make_s2_ste(const Master& m, const DomainDesc& d);
    /// arm_smmu_make_nested_domain_ste: the vSTE's stage-1 fields over the parent's stage 2.
    iommu::smmuv3::Ste make_nested_ste(const Master& m, const DomainDesc& d);
    iommu::smmuv3::Cd make_s1_cd(const DomainDesc& d, uint16_t asid, bool stall) const;
    iommu::smmuv3::Cd make_sva_cd(const DomainDesc& d, uint16_t asid, bool stall) const;
    void write_ste(uint32_t sid, const iommu::smmuv3::Ste& s);
    void write_cd(Master& m, uint32_t ssid, const iommu::smmuv3::Cd& c);
    /// Writes 8 dwords at `at` in arm_smmu_write_entry's order, `sync` after each step;
    /// `in_use`: the current entry is valid and uses dwords other than dword 0.
    void write_entry(uint64_t at, const std::array<uint64_t, 8>& want, bool in_use,
                     const std::function<void()>& sync);
    std::array<uint64_t, 8> read8(uint64_t at);
    void ensure_cd_table(Master& m);
    uint16_t sva_asid(const DomainDesc& d);
    void realloc_asid(uint32_t domain);
    bool s1_kind(const DomainDesc& d) const;
    iommu::smmuv3::Command tlbi_base(const DomainDesc& d, bool leaf);
    FlushTiming invalidate(const DomainDesc& d, uint64_t iova, uint64_t size, bool leaf,
                           const std::vector<Attachment>& atts, bool* ranged = nullptr);
    FlushTiming issue(const std::vector<iommu::smmuv3::Command>& cmds, bool counted = true);
    void issue_sync(const std::vector<iommu::smmuv3::Command>& cmds) { (void)issue(cmds, false); }
    void cr0(uint32_t value);
    void service_events();
    /// A stalled fault from the EVTQ: resolved as an I/O page fault, then CMD_RESUME
    /// (arm_smmu_handle_evt -> iommu_report_device_fault -> arm_smmu_page_response).
    void serve_stall(const iommu::smmuv3::Event& e);
    /// Events Linux forwards to a vIOMMU's vEVENTQ (iommu_vevent_arm_smmuv3's list).
    static bool vevent_eligible(uint8_t id);
    /// A non-stall stage-1 event of a master attached to a nested domain: to its vIOMMU's vEVENTQ with the vSID.
    void report_vevent(const std::array<uint64_t, 4>& record, uint32_t sid);
    static QueueEntry entry(const iommu::smmuv3::Command& c);

    // CmdQueueHooks: CMDQ_PROD / CONS with wrap bits, CMD_SYNC, GERROR (IHI 0070 3.5, 4.7).
    QueueEntry encode_sync(uint64_t status_pa, uint32_t token, bool interrupt) override;
    QueueEntry encode_nop() override;
    uint64_t read_head() override;
    void write_tail(uint64_t tail, uint64_t entries) override;
    QueueError read_error() override;
    /// GERROR changes only with a queue-error report of the unit (CERROR_*); with MSIs the
    /// check reads it only once the GERROR interrupt arrived (error_signal).
    std::optional<Duration> errors_quiet_until() override { return kQuietForever; }
    const sc_core::sc_event* error_signal() override;
    uint64_t error_signals() override;
    void acknowledge(const QueueError& e) override;
    void acknowledge_interrupt() override {}
    CommandKind kind_of(const QueueEntry& e) const override;

    // PageRequestLogHooks: the PRIQ (IHI 0070 8), as arm_smmu_priq_thread.
    LogDrain drain() const override { return LogDrain{.head_per_record = true, .until_empty = true}; }
    /// The EVTQ thread's turn when its MSI fired; the PRIQ is drained only when its own MSI fired.
    bool on_interrupt() override;
    /// Nothing to clear: the PRIQ interrupt is an MSI per record (no pending flag).
    bool acknowledge_pending() override { return true; }
    uint64_t read_tail() override;
    void write_head(uint64_t head) override;
    /// queue_sync_cons_ovf: CONS.OVACKFLG follows PROD.OVFLG as last read.
    bool handle_overflow() override;
    PageRequestInfo decode(const LogRecord& r) override;
    void respond(const PageRequestInfo& last, pcie::PrgResponseCode code) override;
    bool positions_wrap() const override { return true; }

    MmioPort mmio_;
    HostCpu& cpu_;
    DriverParams params_;
    std::function<uint64_t()> alloc_page_;
    MsiDecoder* msi_;
    std::optional<Features> f_;
    bool e2h_ = false;
    uint64_t valid_mask_ = 1;  ///< the V bit of the entry write_entry() is writing (STE bit 0, CD bit 31)
    uint32_t cr0_ = 0;
    uint8_t cmdq_log2_ = 0, evtq_log2_ = 0, priq_log2_ = 0;
    std::unique_ptr<iommu::smmuv3::StreamTableWriter> st_;
    std::map<uint32_t, Master> masters_;                    ///< by StreamID
    std::map<uint32_t, DomainDesc> domains_;                ///< domains with a tag, by id
    std::map<uint32_t, std::set<std::pair<uint32_t, uint32_t>>> users_; ///< domain -> (SID, SSID) CDs using it
    DomainTagAllocator asids_{1, 0xFF, "ASID"};
    DomainTagAllocator vmids_{1, 0xFF, "VMID"};
    uint64_t evtq_base_ = 0;
    uint32_t evtq_cons_ = 0;       ///< EVTQ_CONS as last written (index + wrap)
    uint64_t gerror_seen_ = 0, evtq_seen_ = 0, priq_seen_ = 0; ///< MSIs handled so far
    uint32_t gerrorn_ = 0;
    PageRequestHandler* fault_handler_ = nullptr; ///< the I/O page fault handler (set by serve_page_requests)
    uint32_t priq_cons_ = 0; ///< PRIQ_CONS index and wrap bit as last written
    bool priq_ovack_ = false;
    bool priq_ovflg_ = false; ///< PRIQ_PROD.OVFLG as last read

    stats::Group stats_;
    stats::Counter& flushes_;
    stats::Counter& commands_;
    stats::Counter& polls_;
    stats::Counter& errors_;
    stats::Counter& tlbi_;
    stats::Counter& atc_inv_;
    stats::Counter& ranged_;
    stats::Counter& asid_wide_;
    stats::Counter& cfgi_;
    stats::Counter& events_;
    stats::Counter& asid_reallocs_;
    stats::Counter& stall_faults_;
    stats::Counter& stall_aborts_;
    CmdQueueDriver queue_;
    PageRequestLogDriver priq_;
    SecondaryCmdq secondary_;
    struct Cmdqv {
        MmioPort mmio;
        uint16_t vintfs, queues;
        bool reset = false;                        ///< tegra241_cmdqv_hw_reset done
        std::map<uint32_t, uint16_t> vintf;        ///< hardware vIOMMU -> its VINTF
        std::map<uint16_t, std::vector<std::optional<uint64_t>>> sids; ///< VINTF -> the vSID of each SID_MATCH pair
        std::map<uint16_t, uint16_t> lvcmdqs;      ///< VINTF -> LVCMDQs allocated (ascending)
    };
    std::optional<Cmdqv> cmdqv_;
};

} // namespace iommusim::host
