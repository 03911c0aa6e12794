// SPDX-License-Identifier: Apache-2.0
#include "models/host/amd_driver.hpp"

#include <set>
#include <stdexcept>
#include <string>
#include <utility>

#include "models/host/host_error.hpp"
#include "models/iommu/amd/amd_regs.hpp"

namespace iommusim::host {

namespace amd = iommu::amd;
namespace reg = iommu::amd::reg;
namespace ctl = iommu::amd::ctl;
namespace st = iommu::amd::st;

namespace {
constexpr uint64_t kPage = 4096;
constexpr unsigned kCmdBytes = 16;
constexpr unsigned kRingOrder = 1;                 // 8 KiB: 512 commands / event records / PPR records (Linux)
constexpr uint64_t kLen512 = uint64_t{9} << 56;    // MMIO_CMD_SIZE_512, EVT_LEN_MASK, PPR_LOG_SIZE_512
constexpr uint32_t kDevTabPages = 512;             // 64 Ki DeviceIDs x 32 bytes (Linux dev_table_size)
constexpr uint32_t kIommuVector = 0x42;            // the unit's one MSI (completion wait, PPR log): any free vector
constexpr uint64_t kWholeSpace = uint64_t{1} << 63; // size that build_inv_address turns into "all pages"
constexpr uint8_t kDefaultLevels = 4;
const Duration kWaitTimeout = Duration::us(100'000); // Linux LOOP_TIMEOUT: 100000 x udelay(1)
constexpr uint64_t kEvtMask = (kPage << kRingOrder) - 1; // byte offsets in the 512-record event log
} // namespace

AmdDriver::AmdDriver(const std::string& name, MmioPort mmio, const DriverParams& params,
                     std::function<uint64_t()> alloc_page, stats::Group* parent, MsiDecoder* msi)
    : mmio_(mmio), cpu_(mmio.cpu()), params_(params), alloc_page_(std::move(alloc_page)), stats_(name, parent),
      flushes_(stats_.counter("flushes", "flushes", "invalidation submissions waited for")),
      commands_(stats_.counter("commands", "commands", "commands written to the command buffer")),
      iotlb_invalidations_(stats_.counter("iotlb_invalidations", "commands", "INVALIDATE_IOTLB_PAGES commands")),
      ranged_(stats_.counter("ranged_flushes", "flushes", "flushes with a page range (S-bit encoding)")),
      domain_wide_(stats_.counter("domain_wide_flushes", "flushes", "flushes of the whole domain / PASID")),
      polls_(stats_.counter("completion_wait_polls", "polls", "semaphore polls while waiting")),
      errors_(stats_.counter("command_errors", "errors", "command buffer stops or ATS time-outs seen while waiting")),
      events_(stats_.counter("events_serviced", "records",
                             "event-log records read (by the unit's IRQ thread when it has a PPR log, else after a timed-out wait)")),
      irq_events_(stats_.counter("event_log_runs", "runs",
                                 "event-log passes of the IRQ thread (Status.EventLogInt / EventOverflow found set)")),
      inv_timeouts_(stats_.counter("iotlb_inv_timeouts", "events", "IOTLB_INV_TIMEOUT events serviced")),
      queue_(cpu_, *this, CmdQueueDriver::Counters{flushes_, commands_, polls_, errors_}, msi,
             msi ? std::vector<uint32_t>{kIommuVector} : std::vector<uint32_t>{}, &stats_),
      ppr_(cpu_, *this, IrqLines(msi, {kIommuVector})) {
    queue_.set_dropped(CommandKind::iotlb, params.skip_iotlb_invalidation);
}

IommuCaps AmdDriver::decode_caps(uint64_t efr) {
    IommuCaps c;
    // Linux early_amd_iommu_init: HATS 0-2 = 4-6 host levels, 3 reserved; GATS 1 = 5-level guest tables.
    const unsigned hats = (efr >> amd::efr::kHatsShift) & 3;
    const unsigned host_levels = hats == 3 ? 0 : hats + 4;
    const PageSizeMask sizes = page_size_bit(12) | page_size_bit(21) | page_size_bit(30);
    c.s2.supported = host_levels != 0;
    c.s2.formats = {iommu::PtFormat::amd_v1};
    for (unsigned l = 1; l <= host_levels; ++l) c.s2.levels |= static_cast<uint8_t>(1u << l);
    c.s2.page_sizes = sizes;
    c.s2.input_bits = static_cast<uint8_t>(host_levels == 6 ? 64 : 12 + 9 * host_levels);
    const bool gt = efr & amd::efr::GTSup;
    const bool five = ((efr >> amd::efr::kGatsShift) & 3) == 1;
    c.s1.supported = gt;
    c.s1.formats = {iommu::PtFormat::x86_64};
    c.s1.levels = static_cast<uint8_t>((1u << 4) | (five ? 1u << 5 : 0u));
    c.s1.page_sizes = sizes;
    c.s1.input_bits = five ? 57 : 48;
    c.pasid_bits = gt ? static_cast<uint8_t>(((efr >> amd::efr::kPasMaxShift) & 0x1F) + 1) : 0;
    c.ats = true; // IOTLBSup sits in the PCI capability header, which every modelled unit sets
    c.pri = gt && (efr & amd::efr::PPRSup);
    c.nesting = gt && c.s2.supported; // v2 guest tables over v1 host tables (DTE GV with Mode 1-6)
    c.pass_through = true;
    c.output_bits = 52;
    c.domain_tags = 1u << 16;
    return c;
}

const IommuCaps& AmdDriver::caps() const {
    if (!caps_) throw std::logic_error("AMD-Vi driver: capabilities read before enable()");
    return *caps_;
}

PagingFormat AmdDriver::paging_format(DomainDesc::Kind kind, std::optional<uint8_t> levels) const {
    const IommuCaps& c = caps();
    const bool v2 = kind == DomainDesc::Kind::paging_s1;
    if (!v2 && kind != DomainDesc::Kind::paging_s2)
        throw HostError(HostError::Kind::invalid, "paging domains are first or second stage");
    const StageCaps& sc = v2 ? c.s1 : c.s2;
    if (!sc.supported)
        throw HostError(HostError::Kind::invalid, v2 ? "the AMD-Vi unit has no guest (v2) translation (EFR.GTSup)"
                                                     : "the AMD-Vi unit has no host (v1) translation (EFR.HATS)");
    const uint8_t l = levels.value_or(kDefaultLevels);
    if (!sc.has_levels(l))
        throw HostError(HostError::Kind::invalid, "unsupported number of page-table levels " + std::to_string(l) +
                                                      (v2 ? " for v2 tables (EFR.GATS)" : " for v1 tables (EFR.HATS)"));
    PagingFormat f;
    f.stage.enabled = true;
    f.stage.format = sc.formats.front();
    f.stage.levels = l;
    f.stage.input_bits = static_cast<uint8_t>(!v2 && l == 6 ? 64 : 12 + 9 * l);
    f.page_sizes = sc.page_sizes;
    // v2 (x86-64): the lower canonical half; v1: the whole width Mode covers (below 2^63).
    const unsigned bits = v2 ? f.stage.input_bits - 1u : std::min<unsigned>(f.stage.input_bits, 63);
    f.aperture_base = 0;
    f.aperture_limit = uint64_t{1} << bits;
    return f;
}

void AmdDriver::control(unsigned bit, bool on) {
    control_ = on ? control_ | (uint64_t{1} << bit) : control_ & ~(uint64_t{1} << bit);
    mmio_.write64(reg::CONTROL, control_);
}

void AmdDriver::enable() {
    const uint64_t efr = mmio_.read64(reg::EFR);
    caps_ = decode_caps(efr);
    glx_max_ = static_cast<uint8_t>((efr >> amd::efr::kGlxShift) & 3);
    auto contiguous = [this](uint64_t bytes, uint64_t) -> std::optional<uint64_t> {
        const uint64_t first = alloc_page_();
        for (uint64_t off = kPage; off < bytes; off += kPage)
            if (alloc_page_() != first + off) return std::nullopt;
        return first;
    };
    tables_ = std::make_unique<amd::AmdTableWriter>(cpu_.memory(), contiguous, kDevTabPages);
    // Linux init_device_table_dma: every DTE V = 1, TV = 1 (Mode 0, IR = IW = 0), so a device
    // no domain is attached to yet has its DMA blocked, not passed through (V = 0 would pass
    // it untranslated). Done at boot, before the run: no time charged.
    tables_->block_all();
    // Linux iommu_init_flags: coherent table walks, ATS invalidation time-out 1 s.
    control_ = (uint64_t{1} << ctl::COHERENT_EN) | (uint64_t{ctl::INV_TO_1S} << ctl::INV_TIMEOUT);
    mmio_.write64(reg::CONTROL, control_);
    mmio_.write64(reg::DEV_TABLE, tables_->devtab_register()); // iommu_set_device_table
    // iommu_enable_command_buffer: base + length, head = tail = 0, CmdBufEn.
    queue_.init(alloc_page_, kRingOrder, kCmdBytes, 8);
    // A long flush: commands written as the buffer has room (Linux waits for the head to
    // move, __iommu_queue_command_sync), one COMPLETION_WAIT at the end.
    queue_.set_batching({0, false});
    mmio_.write64(reg::CMD_BASE, queue_.base() | kLen512);
    mmio_.write32(reg::CMD_HEAD, 0);
    mmio_.write32(reg::CMD_TAIL, 0);
    control(ctl::CMDBUF_EN, true);
    // iommu_enable_event_buffer: 512 records, head = tail = 0, EventLogEn.
    evt_base_ = *contiguous(kPage << kRingOrder, kPage);
    mmio_.write64(reg::EVT_BASE, evt_base_ | kLen512);
    mmio_.write32(reg::EVT_HEAD, 0);
    mmio_.write32(reg::EVT_TAIL, 0);
    control(ctl::EVT_LOG_EN, true);
    if (params_.wait == WaitMode::interrupt) {
        // COMPLETION_WAIT with I = 1 signals through the unit's MSI (MMIO mirror of the MSI capability).
        queue_.set_wait(CmdQueueDriver::Wait::interrupt);
        program_msi();
        control(ctl::COMWAIT_EN, true);
    }
    if (caps_->s1.supported) control(ctl::GT_EN, true); // iommu_enable_gt
    control(ctl::IOMMU_EN, true);
}

AmdDriver::Dev& AmdDriver::dev(const DeviceInfo& d) {
    auto [it, fresh] = devs_.try_emplace(d.rid.raw);
    if (fresh) {
        it->second.dte.i = d.ats && caps().ats; // DTE_FLAG_IOTLB when ATS is enabled
        it->second.dte.ppr = d.pri && caps().pri;
    }
    return it->second;
}

uint16_t AmdDriver::dte_domain(Dev& d, const DeviceInfo& info) {
    // A device with PASIDs but no domain for its RID still needs a DomainID in its DTE.
    if (d.dte.domain_id == 0) d.dte.domain_id = static_cast<uint16_t>(domids_.get(0x8000'0000u | info.rid.raw));
    return d.dte.domain_id;
}

void AmdDriver::gcr3_set(Dev& d, const DeviceInfo& info, uint32_t pasid, uint64_t cr3, uint8_t levels) {
    if (!d.dte.gv) { // setup_gcr3_table: GLX from the PASID width (get_gcr3_levels), capped by EFR.GLXSup
        const unsigned bits = std::min<unsigned>(info.pasid_bits, caps().pasid_bits);
        d.glx = std::min(amd::AmdTableWriter::glx_for(bits), glx_max_);
        d.dte.gcr3_root = tables_->new_gcr3_table();
        d.dte.gv = true;
        d.dte.glx = d.glx;
    }
    d.dte.gpm = levels == 5 ? 1 : 0;
    d.dte.giov = d.rid_v2;
    tables_->set_gcr3(d.dte.gcr3_root, d.glx, pasid, cr3);
    cpu_.spend(cpu_.params().mem_write);
}

void AmdDriver::write_dte(uint16_t rid, Dev& d, std::vector<QueueEntry>& cmds) {
    d.dte.v = d.dte.tv = true;
    tables_->set_dte(rid, d.dte);
    cpu_.spend(cpu_.params().mem_write * 2); // two 128-bit halves
    cmds.push_back(entry(amd::InvalidateDevtabEntry{rid}));
}

QueueEntry AmdDriver::entry(const amd::Command& c) {
    const auto q = amd::encode(c);
    return {q[0], q[1], 0, 0};
}

void AmdDriver::attach(const Attachment& a, const DomainDesc& domain) {
    using K = DomainDesc::Kind;
    cpu_.spend(cpu_.params().call_overhead);
    if (domain.kind == K::nested) {
        if (a.pasid) throw HostError(HostError::Kind::invalid, "AMD-Vi: a nested domain attaches to a RID, not a PASID");
        return attach_nested(a, domain);
    }
    if (a.pasid && !caps().pasid_bits)
        throw HostError(HostError::Kind::invalid, "the IOMMU does not support PASID (EFR.GTSup)");
    const uint16_t rid = a.device.rid.raw;
    Dev& d = dev(a.device);
    std::vector<QueueEntry> cmds;
    d.dte.ir = d.dte.iw = true; // Linux sets IR | IW for every translating DTE
    if (!a.pasid && (domain.kind == K::paging_s2 || domain.kind == K::identity)) {
        const bool id = domain.kind == K::identity;
        d.dte.mode = id ? 0 : domain.s2.levels;
        d.dte.host_root = id ? 0 : domain.s2.root;
        d.dte.domain_id = static_cast<uint16_t>(domain_tag(domain));
        d.rid_v2 = false;
        d.dte.giov = false;
        write_dte(rid, d, cmds);
    } else if (!a.pasid && domain.kind == K::paging_s1) {
        // A v2 DMA-API domain: PASID 0 of the GCR3 table, GV + GIoV (set_dte_gcr3_table).
        d.dte.mode = 0;
        d.dte.host_root = 0;
        d.dte.domain_id = static_cast<uint16_t>(domain_tag(domain));
        d.rid_v2 = true;
        gcr3_set(d, a.device, 0, domain.s1.root, domain.s1.levels);
        write_dte(rid, d, cmds);
        cmds.push_back(entry(amd::linux_inv_iommu_pages(d.dte.domain_id, 0, kWholeSpace, true, 0)));
    } else if (a.pasid && (domain.kind == K::sva || domain.kind == K::paging_s1)) {
        const bool new_table = !d.dte.gv;
        const uint16_t domid = dte_domain(d, a.device);
        gcr3_set(d, a.device, *a.pasid, domain.s1.root, domain.s1.levels);
        if (new_table) write_dte(rid, d, cmds);
        cmds.push_back(entry(amd::linux_inv_iommu_pages(domid, 0, kWholeSpace, true, *a.pasid)));
    } else {
        throw HostError(HostError::Kind::invalid, "the AMD-Vi backend cannot attach this domain kind with a PASID");
    }
    queue_.submit(std::move(cmds), /*counted=*/false);
}

void AmdDriver::iotlb_cmd(const Attachment& a, uint64_t iova, uint64_t size, std::vector<QueueEntry>& out) {
    if (!a.device.ats || !caps().ats || params_.skip_devtlb_invalidation) return;
    const uint8_t qdep = a.device.inv_queue_depth >= 32 ? 0 : a.device.inv_queue_depth;
    out.push_back(entry(amd::linux_inv_iotlb_pages(a.device.rid.raw, qdep, iova, size, a.pasid.value_or(0))));
    iotlb_invalidations_.inc();
}

FlushTiming AmdDriver::flush(const FlushRequest& r) {
    cpu_.spend(cpu_.params().call_overhead);
    const DomainDesc& dom = *r.domain;
    // A nested domain's whole hDomID goes with GN = 0 (host translations and the nested ones on them).
    const bool v1 = dom.kind == DomainDesc::Kind::paging_s2 || dom.kind == DomainDesc::Kind::identity ||
                    dom.kind == DomainDesc::Kind::nested;
    const uint64_t pages = r.size == 0 ? 0 : ((r.iova + r.size - 1) >> 12) - (r.iova >> 12) + 1;
    const bool whole = r.size == 0 || pages > params_.range_threshold_pages;
    const uint64_t iova = whole ? 0 : r.iova, size = whole ? kWholeSpace : r.size;
    std::vector<QueueEntry> cmds;
    std::set<std::pair<uint32_t, uint32_t>> done; // (DomainID, PASID + 1; 0 = host)
    auto pages_cmd = [&](uint16_t domid, bool gn, uint32_t pasid) {
        if (done.insert({domid, gn ? pasid + 1 : 0}).second)
            cmds.push_back(entry(amd::linux_inv_iommu_pages(domid, iova, size, gn, pasid)));
    };
    for (const auto& a : r.attachments) {
        if (v1 && !a.pasid) pages_cmd(static_cast<uint16_t>(domain_tag(dom)), false, 0);
        else if (!a.pasid) pages_cmd(static_cast<uint16_t>(domain_tag(dom)), true, 0);
        else pages_cmd(dte_domain(dev(a.device), a.device), true, *a.pasid);
    }
    if (cmds.empty()) pages_cmd(static_cast<uint16_t>(domain_tag(dom)), !v1, 0);
    for (const auto& a : r.attachments) iotlb_cmd(a, iova, size, cmds); // after the IOMMU's own caches
    (whole ? domain_wide_ : ranged_).inc();
    FlushTiming t = queue_.submit(std::move(cmds));
    t.ranged = !whole;
    return t;
}

FlushTiming AmdDriver::detach(const Attachment& a, const DomainDesc& domain) {
    cpu_.spend(cpu_.params().call_overhead);
    auto it = devs_.find(a.device.rid.raw);
    if (it == devs_.end()) throw std::runtime_error("AMD-Vi driver: detach of a device that was never attached");
    Dev& d = it->second;
    std::vector<QueueEntry> cmds;
    if (a.pasid) {
        tables_->clear_gcr3(d.dte.gcr3_root, d.glx, *a.pasid);
        cpu_.spend(cpu_.params().mem_write);
        cmds.push_back(entry(amd::linux_inv_iommu_pages(d.dte.domain_id, 0, kWholeSpace, true, *a.pasid)));
    } else {
        const bool was_v2 = d.rid_v2;
        if (was_v2) tables_->clear_gcr3(d.dte.gcr3_root, d.glx, 0);
        const uint16_t old = d.dte.domain_id;
        // Linux's blocked DTE: valid, translation valid, Mode 0, no IR/IW.
        d.dte.mode = 0;
        d.dte.host_root = 0;
        d.dte.ir = d.dte.iw = false;
        d.dte.giov = d.rid_v2 = false;
        if (domain.kind == DomainDesc::Kind::nested) { // the guest's GCR3 table goes with it
            d.dte.gv = false;
            d.dte.glx = d.dte.gpm = 0;
            d.dte.gcr3_root = 0;
        }
        write_dte(a.device.rid.raw, d, cmds);
        cmds.push_back(entry(amd::linux_inv_iommu_pages(old, 0, kWholeSpace, was_v2, 0)));
    }
    iotlb_cmd(a, 0, kWholeSpace, cmds);
    return queue_.submit(std::move(cmds));
}

QueueEntry AmdDriver::encode_sync(uint64_t status_pa, uint32_t token, bool interrupt) {
    amd::CompletionWait c = amd::linux_completion_wait(status_pa, token);
    c.interrupt = interrupt;
    return entry(c);
}

QueueEntry AmdDriver::encode_nop() { return entry(amd::CompletionWait{}); } // neither store nor interrupt

uint64_t AmdDriver::read_head() { return mmio_.read32(reg::CMD_HEAD); }

WaitLoop AmdDriver::wait_loop() {
    WaitLoop w;
    w.relax = Duration::us(1);  // udelay(1)
    w.timeout = kWaitTimeout;   // LOOP_TIMEOUT x udelay(1) (calibration.md "driver wait limits": AMD ~100 ms)
    return w;
}

void AmdDriver::write_tail(uint64_t tail, uint64_t) { mmio_.write32(reg::CMD_TAIL, static_cast<uint32_t>(tail)); }

QueueError AmdDriver::read_error() {
    QueueError e;
    // Linux wait_on_sem polls only the semaphore until its time-out; then it looks.
    last_check_quiet_ = cpu_.now() - last_check_ < kWaitTimeout;
    if (last_check_quiet_) return e;
    last_check_ = cpu_.now();
    const uint64_t tail = mmio_.read32(reg::EVT_TAIL) & kEvtMask;
    drain_events(tail);
    mmio_.write32(reg::EVT_HEAD, static_cast<uint32_t>(evt_head_));
    // An IOTLB_INV_TIMEOUT this read or the IRQ thread's found (the unit abandoned the wait).
    const bool timed_out = std::exchange(inv_timeout_seen_, false);
    if ((control_ >> ctl::CMDBUF_EN) & 1 && !(mmio_.read32(reg::STATUS) & st::CMDBUF_RUN)) {
        e.bits |= st::CMDBUF_RUN; // ILLEGAL_COMMAND_ERROR / COMMAND_HARDWARE_ERROR stopped the buffer
        e.replace_head = true;
        e.failed_entries.push_back(0);
    }
    if (timed_out) { // the unit abandoned the COMPLETION_WAIT behind the timed-out invalidation
        e.bits |= 1u << 31;
        e.failed_entries.push_back(-1);
    }
    return e;
}

void AmdDriver::drain_events(uint64_t tail) {
    while (evt_head_ != tail) {
        std::array<uint64_t, 2> q{};
        cpu_.spend(cpu_.params().mem_read); // the unit wrote it: a miss in the CPU's caches
        cpu_.memory().read(evt_base_ + evt_head_, q.data(), sizeof q);
        evt_head_ = (evt_head_ + 16) & kEvtMask;
        events_.inc();
        if (auto ev = amd::Event::decode(q); ev && ev->code == amd::EventCode::iotlb_inv_timeout) {
            inv_timeouts_.inc();
            inv_timeout_seen_ = true;
        }
    }
}

bool AmdDriver::on_interrupt() {
    // amd_iommu_int_thread: the event log's handler first (amd_iommu_int_thread_evtlog ->
    // amd_iommu_handle_irq: read Status; while EventLogInt or EventOverflow is set, clear both
    // (RW1C: a record logged after the clear raises a new interrupt), iommu_poll_events, restart
    // a log an overflow stopped, read Status again), then the PPR log's (the passes).
    constexpr uint32_t kMask = st::EVT_INT | st::EVT_OVERFLOW;
    for (uint32_t status = mmio_.read32(reg::STATUS); status & kMask; status = mmio_.read32(reg::STATUS)) {
        mmio_.write32(reg::STATUS, kMask);
        evt_head_ = mmio_.read32(reg::EVT_HEAD) & kEvtMask; // iommu_poll_events: head, tail, records, head
        drain_events(mmio_.read32(reg::EVT_TAIL) & kEvtMask);
        mmio_.write32(reg::EVT_HEAD, static_cast<uint32_t>(evt_head_));
        irq_events_.inc();
        if (status & st::EVT_OVERFLOW) (void)restart_log(ctl::EVT_INT_EN, ctl::EVT_LOG_EN, st::EVT_RUN, st::EVT_OVERFLOW);
    }
    return true;
}

bool AmdDriver::restart_log(unsigned int_en, unsigned log_en, uint32_t run, uint32_t overflow) {
    // amd_iommu_restart_log: a log still running needs nothing; a stopped one is restarted.
    if (mmio_.read32(reg::STATUS) & run) return false;
    control(log_en, false);
    control(int_en, false);
    mmio_.write32(reg::STATUS, overflow);
    control(int_en, true);
    control(log_en, true);
    return true;
}

std::optional<Duration> AmdDriver::errors_quiet_until() {
    if (!last_check_quiet_) return std::nullopt;
    return last_check_ + kWaitTimeout;
}

void AmdDriver::acknowledge(const QueueError& e) {
    if (!(e.bits & st::CMDBUF_RUN)) return;
    control(ctl::CMDBUF_EN, false); // restart the command buffer at its head
    control(ctl::CMDBUF_EN, true);
}

CommandKind AmdDriver::kind_of(const QueueEntry& e) const {
    switch (static_cast<amd::Opcode>(e[0] >> 60)) { // opcode: bits 63:60 (§2.4)
    case amd::Opcode::invalidate_iommu_pages:
    case amd::Opcode::invalidate_iommu_all: return CommandKind::iotlb;
    case amd::Opcode::invalidate_iotlb_pages: return CommandKind::devtlb;
    default: return CommandKind::other;
    }
}

void AmdDriver::acknowledge_interrupt() { mmio_.write32(reg::STATUS, st::COM_WAIT_INT); }

void AmdDriver::program_msi() {
    if (msi_programmed_) return;
    msi_programmed_ = true;
    mmio_.write32(reg::MSI_ADDR_LO, static_cast<uint32_t>(MsiDecoder::kMsiBase));
    mmio_.write32(reg::MSI_ADDR_HI, 0);
    mmio_.write32(reg::MSI_DATA, kIommuVector);
}

void AmdDriver::enable_page_requests() {
    // The unit's MSI (iommu_init_msi), then amd_iommu_enable_ppr_log: PPREn, base (512 records),
    // head = tail = 0, PPRIntEn, PPRLogEn.
    program_msi();
    ppr_.init(alloc_page_, kRingOrder, 16);
    control(ctl::PPR_EN, true);
    mmio_.write64(reg::PPR_BASE, ppr_.base() | kLen512);
    mmio_.write32(reg::PPR_HEAD, 0);
    mmio_.write32(reg::PPR_TAIL, 0);
    control(ctl::PPRINT_EN, true);
    control(ctl::PPRLOG_EN, true);
    // iommu_init_irq: the event log interrupts too (EventIntEn), served by the same IRQ thread.
    control(ctl::EVT_INT_EN, true);
}

PageRequestInfo AmdDriver::decode_page_request(const amd::PprEntry& p) {
    PageRequestInfo r;
    r.rid = pcie::Bdf(p.device_id);
    if (p.flags & amd::pprf::GN) r.pasid = p.pasid;
    r.address = p.address & ~uint64_t{0xFFF};
    r.read = p.flags & amd::pprf::READ;
    r.write = p.flags & amd::pprf::WRITE;
    r.execute = p.flags & amd::pprf::EXEC;
    r.privileged = !(p.flags & amd::pprf::US);
    r.last = p.last;
    r.prg_index = p.prg_index;
    return r;
}

void AmdDriver::serve_page_requests(PageRequestHandler& handler, PageRequestStats& st) { ppr_.serve(handler, st); }

// amd_iommu_handle_irq: read Status; while PPRInt or PPROverflow is set, clear both (RW1C: a
// record logged after the clear sets PPRInt again) and drain the log.
bool AmdDriver::acknowledge_pending() {
    constexpr uint32_t kMask = st::PPR_INT | st::PPR_OVERFLOW;
    ppr_status_ = mmio_.read32(reg::STATUS);
    if (!(ppr_status_ & kMask)) return false;
    mmio_.write32(reg::STATUS, kMask);
    return true;
}

uint64_t AmdDriver::read_tail() { return mmio_.read32(reg::PPR_TAIL); }

uint64_t AmdDriver::read_log_head() { return mmio_.read32(reg::PPR_HEAD); }

void AmdDriver::write_head(uint64_t head) { mmio_.write32(reg::PPR_HEAD, static_cast<uint32_t>(head)); }

bool AmdDriver::handle_overflow() {
    if (!(ppr_status_ & st::PPR_OVERFLOW)) return false;
    (void)restart_log(ctl::PPRINT_EN, ctl::PPRLOG_EN, st::PPR_RUN, st::PPR_OVERFLOW); // amd_iommu_restart_ppr_log
    return true;
}

PageRequestInfo AmdDriver::decode(const LogRecord& r) { return decode_page_request(amd::PprEntry::decode({r[0], r[1]})); }

bool AmdDriver::resolvable(const LogRecord& raw, const PageRequestInfo& r) const {
    const amd::PprEntry p = amd::PprEntry::decode({raw[0], raw[1]});
    return p.type == amd::kPprTypeFault && r.pasid && !(p.flags & amd::pprf::RSVD);
}

void AmdDriver::respond(const PageRequestInfo& last, pcie::PrgResponseCode code) {
    // COMPLETE_PPR_REQUEST (build_complete_ppr: the PASID only with GN), queued without a
    // COMPLETION_WAIT: amd_iommu_complete_ppr -> iommu_queue_command does not wait.
    queue_.post({entry(amd::CompletePprRequest{last.rid.raw, last.pasid.value_or(0), last.pasid.has_value(),
                                               last.prg_index, static_cast<uint8_t>(code)})});
}

} // namespace iommusim::host
