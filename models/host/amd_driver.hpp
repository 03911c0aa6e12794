// SPDX-License-Identifier: Apache-2.0
#pragma once
// AMD-Vi driver backend: what Linux's drivers/iommu/amd does, at the level of
// the real structures and registers.
//
// Fidelity: reads the EFR; brings the unit up in Linux's order (init.c:
// Control flags with InvTimeOut = 1 s and Coherent, Device Table Base with a
// 2 MiB table for 64 Ki DeviceIDs, command buffer of 512 commands with head and
// tail zeroed, event log of 512 records, GTEn when EFR.GTSup, then IommuEn);
// writes DTEs bit-exactly through amd::AmdTableWriter (upper half first, V/TV
// last) and issues INVALIDATE_DEVTAB_ENTRY + COMPLETION_WAIT after every DTE
// change (amd_iommu_dev_update_dte); allocates DomainIDs (0 is reserved);
// v1 tables for second-stage paging domains, v2 (x86-64) tables through a GCR3
// table for first-stage domains (PASID 0 with GV + GIoV, as Linux's v2 DMA-API
// domains) and SVA PASIDs (GLX from the device's PASID width, capped by
// EFR.GLXSup); a GCR3 change is followed by INVALIDATE_IOMMU_PAGES with GN for
// that PASID (amd_iommu_dev_flush_pasid_all). Flushes: INVALIDATE_IOMMU_PAGES with
// build_inv_address's range encoding and PDE set, once per domain (GN = 0, v1) or
// per (DomainID, PASID) (GN = 1, v2/SVA), falling back to the whole domain above
// range_threshold_pages; then INVALIDATE_IOTLB_PAGES for every ATS attachment
// (unless the deliberately broken skip_devtlb_invalidation is set); then one
// COMPLETION_WAIT whose 64-bit semaphore store the shared CmdQueueDriver polls.
// Like Linux's wait_on_sem, the wait loop reads only the semaphore; after the
// completion-wait time-out (LOOP_TIMEOUT: 100 ms, calibration.md "driver wait
// limits") it services the event log and reads Status: a stopped buffer
// (ILLEGAL_COMMAND_ERROR, CmdBufRun clear) fails the submission at the head, whose
// command is overwritten by an empty COMPLETION_WAIT before the buffer is
// restarted (clear and set CmdBufEn; Linux only reports it); an IOTLB_INV_TIMEOUT
// event fails the submission whose COMPLETION_WAIT the unit abandoned.
// Page requests: the PPR log (512 entries; amd_iommu_enable_ppr_log: PPREn,
// base, head = tail = 0, PPRIntEn, PPRLogEn) with the unit's MSI programmed
// (MMIO mirror of the MSI capability); the handler is a threaded IRQ
// (amd_iommu_int_thread_pprlog on the shared PageRequestLogDriver): per run it
// reads Status and, while PPRInt or PPROverflow is set, clears both (RW1C),
// reads PPRLogHead and PPRLogTail, and per record reads it, zeroes it (errata
// 733), writes the head and resolves it through the host; the last request of
// a group is answered with COMPLETE_PPR_REQUEST (queued, not waited for:
// amd_iommu_complete_ppr); after an overflow a stopped log is restarted
// (amd_iommu_restart_ppr_log: PPRLogEn and PPRIntEn off, PPROverflow cleared,
// both on). A request of a device on a VM's nested domain with an iommufd fault
// queue goes to user space instead (iommu_report_device_fault); the VMM's
// answer comes back through page_response as the same COMPLETE_PPR_REQUEST.
// Nested (v2-over-v1, amd_driver_nested.cpp; Linux drivers/iommu/amd/nested.c):
// a nested domain is a guest DTE (IOMMU_HWPT_DATA_AMD_GUEST) checked as
// validate_gdte_nested does; its DTE is the parent's v1 table with the guest's
// GV, GLX, GIoV, GPM, PPR and GCR3 root pointer (a GPA) copied (set_dte_nested);
// every nested domain of one vIOMMU with the same guest DomainID shares one
// host DomainID (the gDomID -> hDomID map, freed with its last user). The
// vIOMMU's invalidation arrays (raw guest commands) are translated:
// INVALIDATE_IOMMU_PAGES vDomainID -> pDomainID, INVALIDATE_IOTLB_PAGES
// vDeviceID -> pDeviceID (the guest's ATC invalidation, forwarded), then one
// COMPLETION_WAIT; an unknown ID stops the array (EINVAL), another opcode EIO.
// Event log: with a PPR log (a PRI device behind the unit) EventIntEn is set too
// (iommu_init_irq) and the PPR handler's thread is the unit's one IRQ thread
// (amd_iommu_int_thread): per run it first serves the event log
// (amd_iommu_int_thread_evtlog: while Status.EventLogInt or EventOverflow is
// set, clear both, read head and tail, read every record, write the head,
// restart a log an overflow stopped), then the PPR log. A unit without a PPR
// log has no IRQ thread: its event log is read after a timed-out wait only.
// Not modelled: interrupt remapping, IVRS aliases, dirty tracking, Linux's dynamic growth of v1 table levels (a domain
// gets the levels it asks for, 4 by default).
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "models/common/stats.hpp"
#include "models/host/cmd_queue_driver.hpp"
#include "models/host/domain_tags.hpp"
#include "models/host/host_cpu.hpp"
#include "models/host/host_params.hpp"
#include "models/host/iommu_driver.hpp"
#include "models/host/page_request_log.hpp"
#include "models/host/msi_decoder.hpp"
#include "models/host/page_requests.hpp"
#include "models/iommu/amd/amd_commands.hpp"
#include "models/iommu/amd/amd_events.hpp"
#include "models/iommu/amd/amd_tables.hpp"

namespace iommusim::host {

class AmdDriver final : public IommuDriver, private CmdQueueHooks, private PageRequestLogHooks {
public:
    AmdDriver(const std::string& name, MmioPort mmio, const DriverParams& params, std::function<uint64_t()> alloc_page,
              stats::Group* parent_stats, MsiDecoder* msi = nullptr);

    void enable() override;
    const IommuCaps& caps() const override;
    PagingFormat paging_format(DomainDesc::Kind kind, std::optional<uint8_t> levels) const override;
    uint32_t domain_tag(const DomainDesc& d) override;
    /// Host page tables (v1) with PTE.FC force coherent accesses: Linux
    /// amd_iommu_enforce_cache_coherency ("IOMMU_PTE_FC is always set"). v2 tables (x86-64
    /// format) have no FC bit: not for paging_s1 / SVA.
    bool enforce_cache_coherency(const DomainDesc& domain) const override {
        return domain.kind == DomainDesc::Kind::paging_s2;
    }
    void release_domain_tag(const DomainDesc& d) override;
    void attach(const Attachment& a, const DomainDesc& domain) override;
    FlushTiming detach(const Attachment& a, const DomainDesc& domain) override;
    FlushTiming flush(const FlushRequest& r) override;
    void enable_page_requests() override;
    [[noreturn]] void serve_page_requests(PageRequestHandler& handler, PageRequestStats& st) override;
    /// A group user space answered (iommufd fault queue, a VM's nested domain): Linux
    /// amd_iommu_page_response -> amd_iommu_complete_ppr, the same COMPLETE_PPR_REQUEST with the
    /// physical DeviceID, PASID (GN), PRG index and status as the host's own response, queued
    /// without a COMPLETION_WAIT.
    void page_response(const PageRequestInfo& last, pcie::PrgResponseCode code) override { respond(last, code); }
    iommu::InvalidationObserver& invalidation_observer() override { return queue_; }
    std::optional<std::string> check_nested(uint32_t data_type, const std::array<uint64_t, 4>& entry,
                                            bool& unsupported) const override;
    std::optional<uint32_t> viommu_invalidate_type() const override { return uapi::kInvalidateDataAmdModel; }
    // Hardware vIOMMU (iommu/amd/amd_hw_viommu.hpp), programmed as Linux's AMD vIOMMU series does.
    /// The unit's VF_CNTL BAR and how many GuestIDs it has; the private space is allocated here.
    void attach_hw_viommu(MmioPort vfcntl, uint16_t guests);
    bool viommu_hw_alloc(uint32_t viommu, const GuestRam& ram) override;
    void viommu_hw_vdevice(uint32_t viommu, uint64_t virt_id, const DeviceInfo& dev) override;
    uapi::Errno hw_queue_alloc(uint32_t viommu, uint64_t base, uint64_t bytes) override;
    void hw_queue_enable(uint32_t viommu, bool on) override;
    void viommu_hw_vdevice_free(uint32_t viommu, uint64_t virt_id) override;
    void viommu_hw_free(uint32_t viommu) override;
    /// The GuestID of a hardware vIOMMU, if it has one.
    std::optional<uint16_t> guest_id(uint32_t viommu) const;
    uapi::Errno viommu_invalidate(const ViommuRef& v, const std::vector<std::array<uint64_t, 2>>& cmds, uint32_t& done,
                                  FlushTiming& timing) override;

    /// Capabilities as the EFR encodes them (spec-layouts.md B.7; Linux init.c).
    static IommuCaps decode_caps(uint64_t efr);
    /// One PPR log record as a host page request (spec-layouts.md B.6).
    static PageRequestInfo decode_page_request(const iommu::amd::PprEntry& p);
    uint64_t device_table() const { return tables_ ? tables_->devtab_base() : 0; }

private:
    /// What the driver keeps per DeviceID (Linux iommu_dev_data + gcr3_info).
    struct Dev {
        iommu::amd::Dte dte;
        uint8_t glx = 0;
        bool rid_v2 = false;      ///< requests without PASID go through GCR3[0] (GIoV)
    };
    Dev& dev(const DeviceInfo& d);
    /// The DomainID PASID-tagged translations of this device carry (its DTE's).
    uint16_t dte_domain(Dev& d, const DeviceInfo& info);
    void gcr3_set(Dev& d, const DeviceInfo& info, uint32_t pasid, uint64_t cr3, uint8_t levels);
    void write_dte(uint16_t rid, Dev& d, std::vector<QueueEntry>& cmds);
    void iotlb_cmd(const Attachment& a, uint64_t iova, uint64_t size, std::vector<QueueEntry>& out);
    /// set_dte_nested + amd_iommu_update_dte (amd_driver_nested.cpp).
    void attach_nested(const Attachment& a, const DomainDesc& domain);
    /// The DomainDesc key of a nested domain's host DomainID: (vIOMMU, guest DomainID).
    static uint32_t gdom_key(uint32_t viommu, uint16_t gdomid) { return 0x4000'0000u | (viommu & 0x3FFFu) << 16 | gdomid; }
    static uint16_t guest_domain_id(const DomainDesc& d) { return static_cast<uint16_t>(d.guest_entry[1]); }
    void control(unsigned bit, bool on);
    static QueueEntry entry(const iommu::amd::Command& c);

    // CmdQueueHooks: the command buffer's registers and COMPLETION_WAIT (§3.3).
    QueueEntry encode_sync(uint64_t status_pa, uint32_t token, bool interrupt) override;
    QueueEntry encode_nop() override;
    uint64_t read_head() override;
    /// wait_on_sem: polls the COMPLETION_WAIT semaphore in memory with udelay(1) between
    /// reads, the lock already dropped, and gives up after LOOP_TIMEOUT iterations.
    WaitLoop wait_loop() override;
    void write_tail(uint64_t tail, uint64_t entries) override;
    QueueError read_error() override;
    /// Between two looks at the unit's state (kWaitTimeout apart) the check does nothing.
    std::optional<Duration> errors_quiet_until() override;
    void acknowledge(const QueueError& e) override;
    void acknowledge_interrupt() override;
    CommandKind kind_of(const QueueEntry& e) const override;

    // PageRequestLogHooks: the PPR log (§3.4.9, Linux amd_iommu_int_thread_pprlog).
    LogDrain drain() const override {
        return LogDrain{.read_head = true, .head_per_record = true, .clear_records = true, .repeat_while_pending = true};
    }
    bool acknowledge_pending() override;
    uint64_t read_tail() override;
    uint64_t read_log_head() override;
    void write_head(uint64_t head) override;
    bool handle_overflow() override;
    PageRequestInfo decode(const LogRecord& r) override;
    /// Linux ppr_is_valid(): a fault request (type 1) with GN set and no reserved bit.
    bool resolvable(const LogRecord& raw, const PageRequestInfo& r) const override;
    /// The event log's turn in the unit's IRQ thread, before the PPR passes (always true).
    bool on_interrupt() override;
    /// Reads and counts the event-log records from the driver's head up to `tail` (not the head register).
    void drain_events(uint64_t tail);
    /// amd_iommu_restart_log: a log whose run bit is clear is restarted (its log and interrupt
    /// enables off, the overflow bit cleared, both on); false when it still ran.
    bool restart_log(unsigned int_en, unsigned log_en, uint32_t run, uint32_t overflow);
    void respond(const PageRequestInfo& last, pcie::PrgResponseCode code) override;
    /// The unit's one MSI (MMIO mirror of the MSI capability), programmed once.
    void program_msi();

    MmioPort mmio_;
    HostCpu& cpu_;
    DriverParams params_;
    std::function<uint64_t()> alloc_page_;
    std::unique_ptr<iommu::amd::AmdTableWriter> tables_;
    std::optional<IommuCaps> caps_;
    uint8_t glx_max_ = 0;
    uint64_t control_ = 0;
    uint64_t evt_base_ = 0;
    uint64_t evt_head_ = 0;
    bool inv_timeout_seen_ = false; ///< an IOTLB_INV_TIMEOUT read, not yet reported by read_error()
    uint32_t ppr_status_ = 0;      ///< Status as the PPR handler's pass read it
    bool msi_programmed_ = false;
    Duration last_check_;          ///< when the wait loop last looked at the unit's error state
    bool last_check_quiet_ = false; ///< the last read_error() did not look (before kWaitTimeout)
    std::map<uint16_t, Dev> devs_;
    DomainTagAllocator domids_{1, 0xFFFF, "DomainID"}; ///< DomainID 0 is reserved by Linux
    std::map<uint32_t, std::set<uint32_t>> gdom_users_; ///< gdom_key -> nested domains sharing its hDomID
    std::optional<MmioPort> vfcntl_;          ///< the hardware vIOMMU's VF_CNTL BAR
    uint16_t hw_guests_ = 0;
    std::map<uint32_t, uint16_t> guest_ids_;  ///< hardware vIOMMU -> its GuestID
    uint64_t private_base_ = 0;               ///< the unit's private space (the map tables)
    /// set_domain_mapping / clear_domain_mapping for a nested domain's (gDomID -> hDomID).
    void map_domain(const DomainDesc& d, uint16_t hdom);

    stats::Group stats_;
    stats::Counter& flushes_;
    stats::Counter& commands_;
    stats::Counter& iotlb_invalidations_;
    stats::Counter& ranged_;
    stats::Counter& domain_wide_;
    stats::Counter& polls_;
    stats::Counter& errors_;
    stats::Counter& events_;
    stats::Counter& irq_events_;
    stats::Counter& inv_timeouts_;
    CmdQueueDriver queue_;
    PageRequestLogDriver ppr_;
};

} // namespace iommusim::host
