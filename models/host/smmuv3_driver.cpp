// SPDX-License-Identifier: Apache-2.0
#include "models/host/smmuv3_driver.hpp"

#include <algorithm>
#include <bit>
#include <stdexcept>

#include "models/host/host_error.hpp"
#include "models/iommu/smmuv3/smmuv3_regs.hpp"

namespace iommusim::host {

namespace sm = iommu::smmuv3;
namespace reg = iommu::smmuv3::reg;
namespace bit = iommu::smmuv3::bit;
using sm::Command;

namespace {
constexpr uint64_t kPage = 4096;
constexpr unsigned kCmdBytes = 16, kEvtBytes = 32, kPriBytes = 16;
constexpr unsigned kEvtqOrder = 1;                  // 8 KiB: 256 event records
constexpr unsigned kStrtabSplit = 8;                // Linux STRTAB_SPLIT: 256 STEs per level-2 table
constexpr unsigned kMaxL1Bits = 17;                 // Linux: at most 2^17 L1 stream-table descriptors
constexpr unsigned kCdL2Entries = 1024;             // Linux CTXDESC_L2_ENTRIES (64 KiB leaves, S1Fmt 2)
constexpr uint32_t kGerrorVector = 0x50, kEvtqVector = 0x51, kPriqVector = 0x52; // MSI data per source
constexpr uint32_t kCr1 = (3u << 10) | (1u << 8) | (1u << 6) | (3u << 4) | (1u << 2) | 1u; // ISH, WB tables and queues
constexpr uint32_t kCr2Ptm = 1u << 2, kCr2RecInvSid = 1u << 1, kCr2E2h = 1u << 0;
constexpr uint64_t kQueueRwa = uint64_t{1} << 62;   // Q_BASE_RWA / STRTAB_BASE_RA
constexpr uint8_t kAtcInvAll = 52;                  // Linux ATC_INV_SIZE_ALL
constexpr uint64_t kIoPgtableMair = 0xF404FF44;     // io-pgtable-arm: NC, WBRWA, DEV, INC_OWBRWA at indices 0-3
constexpr uint64_t kArm64Mair = 0x000000F0FF440400; // arm64 MAIR_EL1: nGnRnE, nGnRE, NC, Normal, Normal-Tagged
constexpr uint32_t kStallModelStall = 0, kStallModelTerminate = 1, kStallModelForce = 2; // IDR0.STALL_MODEL (Linux IDR0_STALL_MODEL_*)

unsigned field(uint32_t v, unsigned hi, unsigned lo) { return (v >> lo) & ((1u << (hi - lo + 1)) - 1); }

uint8_t oas_code(unsigned bits) {
    switch (bits) {
    case 32: return 0;
    case 36: return 1;
    case 40: return 2;
    case 42: return 3;
    case 44: return 4;
    case 48: return 5;
    default: return 6;
    }
}
unsigned oas_bits(unsigned code) {
    static constexpr unsigned kBits[] = {32, 36, 40, 42, 44, 48, 52, 52};
    return kBits[code & 7];
}
/// TCR.TG0 / VTCR.TG0 encoding of a granule.
uint8_t tg0_code(unsigned shift) { return shift == 12 ? 0 : shift == 16 ? 1 : 2; }
/// Leaf sizes of a granule (Linux arm_smmu_device_hw_probe's pgsize_bitmap).
PageSizeMask granule_pages(unsigned g) {
    if (g == 12) return page_size_bit(12) | page_size_bit(21) | page_size_bit(30);
    if (g == 14) return page_size_bit(14) | page_size_bit(25);
    return page_size_bit(16) | page_size_bit(29);
}
/// Input bits of an n-level table of granule g, at most 48 (VAX / LVA not used).
unsigned input_bits(unsigned g, unsigned levels) { return std::min(48u, g + (g - 3) * levels); }
/// Levels a 48-bit space needs at granule g (4 KiB and 16 KiB: 4, 64 KiB: 3).
unsigned default_levels(unsigned g) { return g == 16 ? 3 : 4; }
} // namespace

Smmuv3Driver::Smmuv3Driver(const std::string& name, MmioPort mmio, const DriverParams& params,
                           std::function<uint64_t()> alloc_page, stats::Group* parent, MsiDecoder* msi)
    : mmio_(mmio), cpu_(mmio.cpu()), params_(params), alloc_page_(std::move(alloc_page)), msi_(msi),
      stats_(name, parent), flushes_(stats_.counter("flushes", "flushes", "invalidation submissions waited for")),
      commands_(stats_.counter("commands", "commands", "commands written to the CMDQ (CMD_SYNC included)")),
      polls_(stats_.counter("sync_polls", "polls", "reads of a CMD_SYNC's own word while waiting for its MSI write")),
      errors_(stats_.counter("command_errors", "errors", "CMDQ errors (GERROR.CMDQ_ERR) seen while waiting")),
      tlbi_(stats_.counter("tlbi_commands", "commands", "TLBI commands issued (per page, range or ASID/VMID-wide)")),
      atc_inv_(stats_.counter("atc_inv_commands", "commands", "CMD_ATC_INV commands issued")),
      ranged_(stats_.counter("ranged_flushes", "flushes", "flushes by address (per page or range TLBI)")),
      asid_wide_(stats_.counter("asid_wide_flushes", "flushes", "flushes of a whole ASID / VMID")),
      cfgi_(stats_.counter("cfgi_commands", "commands", "CFGI_STE / CFGI_CD commands (each followed by CMD_SYNC)")),
      events_(stats_.counter("events_serviced", "records", "EVTQ records read")),
      asid_reallocs_(stats_.counter("asid_reallocations", "domains",
                                    "private domains moved to a new ASID because an SVA context shares the CPU's")),
      stall_faults_(stats_.counter("stall_faults", "faults", "stalled faults (EVTQ records with Stall = 1) handled as I/O page faults and resumed")),
      stall_aborts_(stats_.counter("stall_aborts", "faults", "stalled faults resumed with Abort (the fault could not be resolved)")),
      queue_(cpu_, *this, CmdQueueDriver::Counters{flushes_, commands_, polls_, errors_}, nullptr, {}, &stats_),
      priq_(cpu_, *this, IrqLines(msi, {kPriqVector, kEvtqVector})) {
    queue_.set_dropped(CommandKind::iotlb, params.skip_iotlb_invalidation);
    if (msi_) (void)msi_->event(kGerrorVector); // interrupt lines are registered during elaboration
}

Smmuv3Driver::Features Smmuv3Driver::decode_features(uint32_t idr0, uint32_t idr1, uint32_t idr3, uint32_t idr5) {
    Features f;
    IommuCaps& c = f.caps;
    const bool s1p = idr0 & (1u << bit::kS1p), s2p = idr0 & (1u << bit::kS2p);
    f.st_2level = field(idr0, bit::kStLvlHi, bit::kStLvlLo) == 1;
    f.cd_2level = idr0 & (1u << bit::kCd2l);
    f.hyp = idr0 & (1u << bit::kHyp);
    f.msi = idr0 & (1u << bit::kMsi);
    f.cohacc = idr0 & (1u << bit::kCohacc);
    const unsigned httu = field(idr0, bit::kHttuHi, bit::kHttuLo);
    f.ha = httu >= 1;
    f.hd = httu == 2;
    f.asid_bits = (idr0 & (1u << bit::kAsid16)) ? 16 : 8;
    f.vmid_bits = (idr0 & (1u << bit::kVmid16)) ? 16 : 8;
    f.sid_bits = static_cast<uint8_t>(field(idr1, bit::kSidsizeHi, 0));
    f.ssid_bits = static_cast<uint8_t>(field(idr1, bit::kSsidsizeHi, bit::kSsidsizeLo));
    f.cmdqs = static_cast<uint8_t>(field(idr1, bit::kCmdqsHi, bit::kCmdqsLo));
    f.evtqs = static_cast<uint8_t>(field(idr1, bit::kEvtqsHi, bit::kEvtqsLo));
    f.priqs = static_cast<uint8_t>(field(idr1, bit::kPriqsHi, bit::kPriqsLo));
    f.ril = idr3 & (1u << bit::kRil);
    f.oas_bits = static_cast<uint8_t>(oas_bits(field(idr5, bit::kOasHi, 0)));
    // The granule io-pgtable picks: the CPU's 4 KiB page if offered, else the smallest (arm_lpae_restrict_pgsizes).
    const bool g4 = idr5 & (1u << bit::kGran4k), g16 = idr5 & (1u << bit::kGran16k), g64 = idr5 & (1u << bit::kGran64k);
    f.granule = g4 ? 12 : g16 ? 14 : 16;
    const bool any_granule = g4 || g16 || g64;
    const unsigned g = f.granule;
    for (StageCaps* s : {&c.s1, &c.s2}) {
        s->supported = any_granule && (s == &c.s1 ? s1p : s2p);
        s->formats = {s == &c.s1 ? iommu::PtFormat::arm_s1 : iommu::PtFormat::arm_s2};
        for (unsigned n = 2; n <= 4; ++n)
            if (input_bits(g, n) >= 39 && (n == 4 || input_bits(g, n) < input_bits(g, n + 1)))
                s->levels |= static_cast<uint8_t>(1u << n);
        s->page_sizes = granule_pages(g);
        s->input_bits = 48;
    }
    c.pasid_bits = s1p ? f.ssid_bits : 0;
    c.ats = idr0 & (1u << bit::kAts);
    c.pri = idr0 & (1u << bit::kPri);
    c.stall = field(idr0, bit::kStallModelHi, bit::kStallModelLo) != kStallModelTerminate;
    c.nesting = s1p && s2p;
    c.snoop_control = f.cohacc;
    c.coherent_walks = f.cohacc;
    c.pass_through = true; // bypass STEs
    c.output_bits = f.oas_bits;
    c.domain_tags = (s2p && !s1p) ? (1u << f.vmid_bits) - 1 : (1u << f.asid_bits) - 1;
    // arm_smmu_device_hw_probe: STALL_MODEL forced implies stalls.
    const unsigned stall_model = field(idr0, bit::kStallModelHi, bit::kStallModelLo);
    f.stall_force = stall_model == kStallModelForce;
    f.stall = stall_model == kStallModelStall || f.stall_force;
    return f;
}

const IommuCaps& Smmuv3Driver::caps() const {
    if (!f_) throw std::logic_error("SMMUv3 driver: capabilities read before enable()");
    return f_->caps;
}

PagingFormat Smmuv3Driver::paging_format(DomainDesc::Kind kind, std::optional<uint8_t> levels) const {
    const IommuCaps& c = caps();
    const bool s1 = kind == DomainDesc::Kind::paging_s1;
    if (!s1 && kind != DomainDesc::Kind::paging_s2)
        throw HostError(HostError::Kind::invalid, "paging domains are first or second stage");
    const StageCaps& sc = s1 ? c.s1 : c.s2;
    if (!sc.supported)
        throw HostError(HostError::Kind::invalid,
                        s1 ? "the SMMU has no stage 1 (IDR0.S1P)" : "the SMMU has no stage 2 (IDR0.S2P)");
    const unsigned g = f_->granule;
    const uint8_t l = levels.value_or(static_cast<uint8_t>(default_levels(g)));
    if (!sc.has_levels(l))
        throw HostError(HostError::Kind::invalid, "unsupported number of page-table levels " + std::to_string(l) +
                                                      " with the " + std::to_string(1u << (g - 10)) + " KiB granule");
    PagingFormat f;
    f.stage.enabled = true;
    f.stage.format = sc.formats.front();
    f.stage.levels = l;
    f.stage.granule_shift = static_cast<uint8_t>(g);
    f.stage.input_bits = static_cast<uint8_t>(input_bits(g, l));
    f.stage.output_bits = f_->oas_bits;
    f.stage.max_leaf_level = g == 12 ? 3 : 2; // 1 GiB blocks (4 KiB), 32 MiB (16 KiB), 512 MiB (64 KiB)
    f.page_sizes = sc.page_sizes;
    f.aperture_base = 0;
    f.aperture_limit = uint64_t{1} << f.stage.input_bits;
    return f;
}

std::optional<uint64_t> Smmuv3Driver::alloc_table(uint64_t bytes, uint64_t align) {
    // Driver tables come from the host's 4 KiB page allocator (sequential): pages
    // are skipped until one is aligned, then the table's pages must follow it.
    bytes = std::max<uint64_t>(bytes, kPage);
    align = std::max<uint64_t>(align, kPage);
    uint64_t first = alloc_page_();
    while (first % align) first = alloc_page_();
    for (uint64_t off = kPage; off < bytes; off += kPage)
        if (alloc_page_() != first + off) return std::nullopt;
    return first;
}

void Smmuv3Driver::cr0(uint32_t value) {
    cr0_ = value;
    mmio_.write32(reg::kCr0, value);
    (void)mmio_.read32(reg::kCr0Ack); // arm_smmu_write_reg_sync: the unit acknowledges at once
}

void Smmuv3Driver::enable() {
    const uint32_t idr0 = mmio_.read32(reg::kIdr0), idr1 = mmio_.read32(reg::kIdr1);
    const uint32_t idr3 = mmio_.read32(reg::kIdr3), idr5 = mmio_.read32(reg::kIdr5);
    f_ = decode_features(idr0, idr1, idr3, idr5);
    const Features& f = *f_;
    if (!f.msi || !f.cohacc)
        throw HostError(HostError::Kind::invalid, "the SMMUv3 driver model completes CMD_SYNC by its MSI write "
                                                  "(needs IDR0.MSI and IDR0.COHACC, as Linux's preferred path)");
    if (params_.wait == WaitMode::interrupt)
        throw HostError(HostError::Kind::invalid,
                        "SMMUv3: Linux polls the CMD_SYNC's MSI write; host.driver.wait = interrupt is not an option");
    if (f.cmdqs < 8) throw HostError(HostError::Kind::invalid, "SMMUv3: IDR1.CMDQS below 8 (256 commands)");
    e2h_ = f.hyp; // the host kernel runs at EL2 (VHE): ARM_SMMU_FEAT_E2H
    asids_.set_range(1, (1u << f.asid_bits) - 1);
    vmids_.set_range(1, (1u << f.vmid_bits) - 1);

    auto alloc = [this](uint64_t bytes, uint64_t align) { return alloc_table(bytes, align); };
    // Linux arm_smmu_init_strtab: 2-level when offered and SIDSIZE > STRTAB_SPLIT.
    const bool two = f.st_2level && f.sid_bits > kStrtabSplit;
    const uint8_t sid_bits =
        two ? static_cast<uint8_t>(kStrtabSplit + std::min<unsigned>(kMaxL1Bits, f.sid_bits - kStrtabSplit))
            : f.sid_bits;
    st_ = std::make_unique<sm::StreamTableWriter>(cpu_.memory(), alloc, sid_bits, two, kStrtabSplit);
    if (!st_->config().base) throw HostError(HostError::Kind::no_space, "SMMUv3: no memory for the stream table");
    if (!two) { // every STE starts as abort (arm_smmu_init_initial_stes with disable_bypass)
        sm::Ste abort;
        abort.valid = true;
        for (uint64_t sid = 0; sid < (uint64_t{1} << sid_bits); ++sid)
            cpu_.memory().write_u64(st_->config().base + sid * 64, abort.encode()[0]);
    }

    // arm_smmu_device_reset.
    mmio_.write32(reg::kCr1, kCr1);
    mmio_.write32(reg::kCr2, kCr2Ptm | kCr2RecInvSid | (e2h_ ? kCr2E2h : 0));
    mmio_.write64(reg::kStrtabBase, st_->strtab_base_reg() | kQueueRwa);
    mmio_.write32(reg::kStrtabBaseCfg, st_->strtab_base_cfg_reg());

    const unsigned order = std::min<unsigned>(params_.queue_order, f.cmdqs + 4 - 12);
    // The queue base is aligned to its size: skip pages until the next one is.
    const uint64_t qbytes = kPage << order;
    for (uint64_t p = alloc_page_(); (p + kPage) % qbytes;) p = alloc_page_();
    queue_.init(alloc_page_, order, kCmdBytes);
    queue_.set_sync_in_entry(0); // CMD_SYNC's MSI writes MSIData = 0 over its own first word
    // A long flush: batches of CMDQ_BATCH_ENTRIES (64) issued without CMD_SYNC, the last with
    // it (arm_smmu_cmdq_batch_add / _submit); each waits for room in the queue.
    queue_.set_batching({64, false});
    cmdq_log2_ = static_cast<uint8_t>(std::countr_zero(qbytes / kCmdBytes));
    mmio_.write64(reg::kCmdqBase, queue_.base() | kQueueRwa | cmdq_log2_);
    mmio_.write32(reg::kCmdqProd, 0);
    mmio_.write32(reg::kCmdqCons, 0);
    cr0(bit::kCmdqEn);
    // Invalidate any cached configuration and TLB entries (CFGI_ALL, TLBI_EL2_ALL, TLBI_NSNH_ALL).
    Command cfgi_all{.opcode = sm::op::kCfgiSteRange, .range = 31};
    issue_sync({cfgi_all});
    std::vector<Command> tlbi;
    if (f.hyp) tlbi.push_back(Command{.opcode = sm::op::kTlbiEl2All});
    tlbi.push_back(Command{.opcode = sm::op::kTlbiNsnhAll});
    issue_sync(tlbi);

    // Event queue.
    evtq_base_ = *alloc_table(kPage << kEvtqOrder, kPage << kEvtqOrder);
    evtq_log2_ = static_cast<uint8_t>(std::min<unsigned>(f.evtqs, std::countr_zero((kPage << kEvtqOrder) / kEvtBytes)));
    mmio_.write64(reg::kEvtqBase, evtq_base_ | kQueueRwa | evtq_log2_);
    mmio_.write32(reg::kEvtqProd, 0);
    mmio_.write32(reg::kEvtqCons, 0);
    cr0(cr0_ | bit::kEvtqEn);
    if (f.caps.ats) cr0(cr0_ | bit::kAtsChk);

    // arm_smmu_setup_irqs: MSIs of GERROR, EVTQ and PRIQ, then IRQ_CTRL.
    mmio_.write32(reg::kIrqCtrl, 0);
    (void)mmio_.read32(reg::kIrqCtrlAck);
    const std::pair<uint32_t, uint32_t> cfgs[] = {
        {reg::kGerrorIrqCfg0, kGerrorVector}, {reg::kEvtqIrqCfg0, kEvtqVector}, {reg::kPriqIrqCfg0, kPriqVector}};
    for (auto [cfg0, vec] : cfgs) {
        mmio_.write64(cfg0, MsiDecoder::kMsiBase);
        mmio_.write32(cfg0 + 8, vec);
        mmio_.write32(cfg0 + 12, 0x1 | (3u << 4)); // Device-nGnRE, inner shareable
    }
    mmio_.write32(reg::kIrqCtrl, bit::kGerrorIrqEn | bit::kEvtqIrqEn | (f.caps.pri ? bit::kPriqIrqEn : 0));
    (void)mmio_.read32(reg::kIrqCtrlAck);
    cr0(cr0_ | bit::kSmmuEn);
}

Smmuv3Driver::Master& Smmuv3Driver::master(const DeviceInfo& d) {
    auto [it, fresh] = masters_.try_emplace(sid(d));
    if (fresh) {
        it->second.info = d;
        // arm_smmu_probe_device: ssid_bits = min(SSIDSIZE, the device's PASID width).
        it->second.ssid_bits = d.pasid ? std::min<uint8_t>(caps().pasid_bits, d.pasid_bits) : 0;
        it->second.ats = d.ats && caps().ats;
        // arm_smmu_probe_device: "dma-can-stall" on a unit with stalls, or forced stalls.
        it->second.stall = (f_->stall && d.can_stall) || f_->stall_force;
    }
    return it->second;
}

std::optional<bool> Smmuv3Driver::enforce_coherency_for(const DomainDesc& d, const DeviceInfo& device) const {
    if (!device.canwbs) return std::nullopt; // arm_smmu_capable(IOMMU_CAP_ENFORCE_CACHE_COHERENCY) is false
    if (d.force_snoop) return true;
    for (const auto& [sid, m] : masters_) {
        const bool uses = m.rid_domain == d.id ||
                          std::any_of(m.pasids.begin(), m.pasids.end(), [&](const auto& p) { return p.second == d.id; });
        if (uses && !m.info.canwbs) return false;
    }
    return true;
}

bool Smmuv3Driver::s1_kind(const DomainDesc& d) const {
    return d.kind == DomainDesc::Kind::paging_s1 || d.kind == DomainDesc::Kind::sva;
}

uint32_t Smmuv3Driver::domain_tag(const DomainDesc& d) {
    domains_.try_emplace(d.id, d);
    if (d.kind == DomainDesc::Kind::nested) return vmids_.get(d.parent); // the nesting parent's VMID
    if (d.kind == DomainDesc::Kind::sva) return sva_asid(d);
    return s1_kind(d) ? asids_.get(d.id) : vmids_.get(d.id);
}

void Smmuv3Driver::release_domain_tag(const DomainDesc& d) {
    if (d.kind == DomainDesc::Kind::sva) return; // the mm owns the ASID (arm_smmu_share_asid)
    if (d.kind == DomainDesc::Kind::nested) return; // the VMID is the nesting parent's
    if (asids_.find(d.id)) asids_.release(d.id);
    if (vmids_.find(d.id)) vmids_.release(d.id);
}

uint16_t Smmuv3Driver::sva_asid(const DomainDesc& d) {
    // SVA shares the CPU's ASID (arm_smmu_share_asid): SVA contexts are keyed by
    // process ASID with the top bit set; a private domain on that ASID moves.
    const uint32_t key = 0x8000'0000u | d.cpu_asid;
    if (d.cpu_asid == 0 || d.cpu_asid > (1u << f_->asid_bits) - 1)
        throw HostError(HostError::Kind::invalid, "SVA: the process has no ASID this SMMU can hold (" +
                                                      std::to_string(f_->asid_bits) + "-bit ASIDs)");
    if (!asids_.claim(key, d.cpu_asid)) {
        const uint32_t owner = *asids_.owner(d.cpu_asid);
        realloc_asid(owner);
        if (!asids_.claim(key, d.cpu_asid)) throw std::logic_error("SMMUv3 driver: ASID claim after reallocation");
    }
    return static_cast<uint16_t>(d.cpu_asid);
}

void Smmuv3Driver::realloc_asid(uint32_t domain) {
    const uint32_t old = *asids_.find(domain);
    asids_.release(domain);
    asids_.claim(0xFFFF'FFFFu, old); // keep it out of reach while the domain moves
    const auto fresh = static_cast<uint16_t>(asids_.get(domain));
    asids_.release(0xFFFF'FFFFu);
    asid_reallocs_.inc();
    const DomainDesc& d = domains_.at(domain);
    for (auto [s, ssid] : users_[domain]) {
        Master& m = masters_.at(s);
        write_cd(m, ssid, make_s1_cd(d, fresh, m.stall));
    }
    Command inv{.opcode = e2h_ ? sm::op::kTlbiEl2Asid : sm::op::kTlbiNhAsid, .asid = static_cast<uint16_t>(old)};
    tlbi_.inc();
    issue_sync({inv});
}

sm::Cd Smmuv3Driver::make_s1_cd(const DomainDesc& d, uint16_t asid, bool stall) const {
    // arm_smmu_make_s1_cd: TTB0 only (EPD1), inner-shareable write-back walks, private ASID set.
    sm::Cd c;
    c.valid = true;
    c.t0sz = static_cast<uint8_t>(64 - d.s1.input_bits);
    c.tg0 = tg0_code(d.s1.granule_shift);
    c.ir0 = c.or0 = 1;
    c.sh0 = 3;
    c.epd1 = true;
    c.ips = oas_code(f_->oas_bits);
    c.aa64 = true;
    c.r = c.a = true;
    c.s = stall; // master->stall_enabled
    c.aset = true;
    c.asid = asid;
    c.ttb0 = d.s1.root;
    c.mair = kIoPgtableMair;
    return c;
}

sm::Cd Smmuv3Driver::make_sva_cd(const DomainDesc& d, uint16_t asid, bool stall) const {
    // arm_smmu_make_sva_cd: the process's TTBR0 tables, the CPU's ASID shared (ASET = 0)
    // so the CPU's broadcast TLBIs reach the SMMU, HTTU as the SMMU offers it.
    sm::Cd c = make_s1_cd(d, asid, stall);
    c.aset = false;
    c.ha = f_->ha;
    c.hd = f_->hd;
    c.mair = kArm64Mair;
    return c;
}

sm::Ste Smmuv3Driver::make_cdtable_ste(const Master& m) const {
    sm::Ste s;
    s.valid = true;
    s.config = sm::ste_cfg::kS1;
    s.s1fmt = m.cds->s1fmt();
    s.s1_context_ptr = m.cds->context_ptr();
    s.s1cdmax = m.cds->s1cdmax();
    const bool rid_s1 = m.rid_domain && s1_kind(domains_.at(*m.rid_domain));
    s.s1dss = rid_s1 ? sm::s1dss::kSsid0 : sm::s1dss::kTerminate;
    s.s1cir = s.s1cor = 1; // write-back read-allocate
    s.s1csh = 3;           // inner shareable
    s.s1stalld = f_->stall && !m.stall; // arm_smmu_make_cdtable_ste: FEAT_STALLS && !stall_enabled
    s.eats = m.ats ? 1 : 0;
    s.strw = e2h_ ? sm::strw::kEl2 : sm::strw::kNsEl1;
    return s;
}

sm::Ste Smmuv3Driver::make_s2_ste(const Master& m, const DomainDesc& d) {
    // arm_smmu_make_s2_domain_ste: VTCR from the table geometry, S2R, S2PTW, AArch64 tables.
    const iommu::StageConfig& t = d.s2;
    sm::Ste s;
    s.valid = true;
    s.config = sm::ste_cfg::kS2;
    s.eats = m.ats ? 1 : 0;
    s.shcfg = 1; // incoming
    s.s2vmid = static_cast<uint16_t>(domain_tag(d));
    s.s2t0sz = static_cast<uint8_t>(64 - t.input_bits);
    const unsigned start = 4 - t.levels;
    s.s2sl0 = static_cast<uint8_t>(t.granule_shift == 12 ? 2 - start : 3 - start);
    s.s2ir0 = s.s2or0 = 1;
    s.s2sh0 = 3;
    s.s2tg = tg0_code(t.granule_shift);
    s.s2ps = oas_code(f_->oas_bits);
    s.s2aa64 = true;
    s.s2r = true;
    s.s2ptw = true;
    s.s2ttb = t.root;
    return s;
}

std::array<uint64_t, 8> Smmuv3Driver::read8(uint64_t at) {
    std::array<uint64_t, 8> d{};
    cpu_.memory().read(at, d.data(), sizeof d);
    return d;
}

QueueEntry Smmuv3Driver::entry(const Command& c) {
    const auto e = c.encode();
    return {e[0], e[1], 0, 0};
}

FlushTiming Smmuv3Driver::issue(const std::vector<Command>& cmds, bool counted) {
    std::vector<QueueEntry> q;
    q.reserve(cmds.size());
    for (const Command& c : cmds) q.push_back(entry(c));
    if (params_.skip_sync) { // the broken driver: no CMD_SYNC, no wait
        FlushTiming t;
        t.submitted = cpu_.now();
        queue_.post(std::move(q));
        t.observed = cpu_.now();
        t.descriptors = static_cast<unsigned>(cmds.size());
        return t;
    }
    if (secondary_)
        if (std::optional<FlushTiming> t = secondary_(cmds)) return *t;
    return queue_.submit(std::move(q), counted);
}

void Smmuv3Driver::write_entry(uint64_t at, const std::array<uint64_t, 8>& want, bool in_use,
                               const std::function<void()>& sync) {
    std::array<uint64_t, 8> cur{};
    cpu_.memory().read(at, cur.data(), sizeof cur);
    if (cur == want) return;
    const bool d0_same = cur[0] == want[0];
    const bool rest_same = std::equal(cur.begin() + 1, cur.end(), want.begin() + 1);
    // valid_mask_: V is bit 0 of an STE's dword 0 and bit 31 of a CD's (set by the caller).
    auto put0 = [&](uint64_t v) { cpu_.mem_write(at, &v, 8); };
    auto put_rest = [&] { cpu_.mem_write(at + 8, want.data() + 1, 56); };
    if (rest_same) { // hitless: one dword
        put0(want[0]);
        sync();
        return;
    }
    const bool live = in_use;
    const bool target_valid = want[0] & valid_mask_;
    if (d0_same || !live || !target_valid) {
        if (!target_valid && !d0_same) { // going invalid: dword 0 first, then the rest
            put0(want[0]);
            put_rest();
            sync();
            return;
        }
        put_rest();
        sync();
        if (!d0_same) {
            put0(want[0]);
            sync();
        }
        return;
    }
    // Disruptive: make it invalid, update, then make it valid (arm_smmu_write_entry).
    put0(cur[0] & ~valid_mask_);
    sync();
    put_rest();
    sync();
    put0(want[0]);
    sync();
}

void Smmuv3Driver::write_ste(uint32_t s, const sm::Ste& ste) {
    sm::Ste abort;
    abort.valid = true;
    const auto at = st_->prepare(s, abort);
    if (!at) throw HostError(HostError::Kind::no_space, "SMMUv3: StreamID " + std::to_string(s) +
                                                            " is outside the stream table or memory ran out");
    valid_mask_ = 1; // STE.V
    // An abort or bypass STE uses no dword but 0 (and SHCFG): the others can change under it.
    const sm::Ste cur = sm::Ste::decode(read8(*at));
    write_entry(*at, ste.encode(), cur.valid && (cur.s1_translates() || cur.s2_translates()), [&] {
        cfgi_.inc();
        issue_sync({Command{.opcode = sm::op::kCfgiSte, .sid = s, .leaf = true}});
    });
    // "It's likely that we'll want to use the new STE soon": a prefetch without a sync.
    if (ste.valid && !params_.skip_sync) queue_.post({entry(Command{.opcode = sm::op::kPrefetchConfig, .sid = s})});
}

void Smmuv3Driver::ensure_cd_table(Master& m) {
    if (m.cds) return;
    // arm_smmu_alloc_cd_tables: linear up to 1024 CDs or without CD2L, else 64 KiB leaves.
    const bool two = f_->cd_2level && (uint64_t{1} << m.ssid_bits) > kCdL2Entries;
    auto alloc = [this](uint64_t bytes, uint64_t align) { return alloc_table(bytes, align); };
    m.cds = std::make_unique<sm::CdTableWriter>(cpu_.memory(), alloc, m.ssid_bits, two ? 2 : 0);
    if (!m.cds->ok()) throw HostError(HostError::Kind::no_space, "SMMUv3: no memory for a CD table");
}

void Smmuv3Driver::write_cd(Master& m, uint32_t ssid, const sm::Cd& c) {
    const uint32_t s = sid(m.info);
    bool created = false;
    const auto at = m.cds->prepare(ssid, &created);
    if (!at) throw HostError(HostError::Kind::no_space, "SMMUv3: no memory for a CD leaf table");
    if (created) { // arm_smmu_write_cd_l1_desc + arm_smmu_sync_cd(leaf = false)
        cfgi_.inc();
        issue_sync({Command{.opcode = sm::op::kCfgiCd, .sid = s, .ssid = ssid, .leaf = false}});
    }
    valid_mask_ = uint64_t{1} << 31; // CD.V
    write_entry(*at, c.encode(), sm::Cd::decode(read8(*at)).valid, [&] {
        cfgi_.inc();
        issue_sync({Command{.opcode = sm::op::kCfgiCd, .sid = s, .ssid = ssid, .leaf = true}});
    });
}

void Smmuv3Driver::attach(const Attachment& a, const DomainDesc& d) {
    using K = DomainDesc::Kind;
    cpu_.spend(cpu_.params().call_overhead);
    if (d.kind == K::nested && a.pasid)
        throw HostError(HostError::Kind::invalid, "SMMUv3: a nested domain attaches to a StreamID, not a PASID");
    Master& m = master(a.device);
    // arm_smmu_attach_prepare: a domain enforcing coherency takes only CANWBS masters.
    if (d.force_snoop && !m.info.canwbs)
        throw HostError(HostError::Kind::invalid, "SMMUv3: domain " + std::to_string(d.id) +
                                                      " enforces cache coherency; device " + a.device.rid.str() +
                                                      " is not behind a CANWBS root complex");
    const uint32_t s = sid(a.device);
    const bool had_ste = m.rid_domain || !m.pasids.empty();
    if (!a.pasid) {
        if (d.kind == K::sva) throw HostError(HostError::Kind::invalid, "an SVA domain needs a PASID");
        if (d.kind != K::paging_s1 && !m.pasids.empty())
            throw HostError(HostError::Kind::invalid,
                            "SMMUv3: a device with PASIDs attached needs a stage-1 domain for its RID");
        m.rid_domain = d.id;
        domains_.try_emplace(d.id, d);
        if (d.kind == K::paging_s1) {
            ensure_cd_table(m);
            const auto asid = static_cast<uint16_t>(domain_tag(d));
            write_cd(m, 0, make_s1_cd(d, asid, m.stall));
            users_[d.id].insert({s, 0});
            write_ste(s, make_cdtable_ste(m));
        } else if (d.kind == K::paging_s2) {
            write_ste(s, make_s2_ste(m, d));
        } else if (d.kind == K::nested) {
            write_ste(s, make_nested_ste(m, d));
        } else { // identity: bypass STE (arm_smmu_make_bypass_ste)
            sm::Ste b;
            b.valid = true;
            b.config = sm::ste_cfg::kBypass;
            b.shcfg = 1;
            write_ste(s, b);
        }
    } else {
        if (!caps().pasid_bits || m.ssid_bits == 0)
            throw HostError(HostError::Kind::invalid, "SMMUv3: no SubstreamIDs for device " + a.device.rid.str() +
                                                          " (IDR1.SSIDSIZE / the device's PASID width)");
        if (*a.pasid >> m.ssid_bits)
            throw HostError(HostError::Kind::invalid, "SMMUv3: PASID beyond the device's SubstreamID width");
        if (m.rid_domain && !s1_kind(domains_.at(*m.rid_domain)))
            throw HostError(HostError::Kind::invalid,
                            "SMMUv3: PASIDs need the RID on a stage-1 domain or unattached (STE with a CD table)");
        if (d.kind != K::sva && d.kind != K::paging_s1)
            throw HostError(HostError::Kind::invalid, "SMMUv3: a PASID attaches to a stage-1 or SVA domain");
        ensure_cd_table(m);
        const auto asid = static_cast<uint16_t>(domain_tag(d));
        write_cd(m, *a.pasid, d.kind == K::sva ? make_sva_cd(d, asid, m.stall) : make_s1_cd(d, asid, m.stall));
        users_[d.id].insert({s, *a.pasid});
        m.pasids[*a.pasid] = d.id;
        if (!m.rid_domain && m.pasids.size() == 1) write_ste(s, make_cdtable_ste(m));
    }
    if (m.ats && !had_ste) // arm_smmu_enable_ats: EATS set, the ATC invalidated, then ATS enabled
        issue_sync({atc_inv(s, std::nullopt, 0, 0)});
}

FlushTiming Smmuv3Driver::detach(const Attachment& a, const DomainDesc& d) {
    cpu_.spend(cpu_.params().call_overhead);
    auto it = masters_.find(sid(a.device));
    if (it == masters_.end()) throw std::runtime_error("SMMUv3 driver: detach of a device that was never attached");
    Master& m = it->second;
    const uint32_t s = sid(a.device);
    if (a.pasid) {
        write_cd(m, *a.pasid, sm::Cd{}); // arm_smmu_clear_cd
        m.pasids.erase(*a.pasid);
        users_[d.id].erase({s, *a.pasid});
    } else {
        sm::Ste abort; // the blocked domain (arm_smmu_make_abort_ste)
        abort.valid = true;
        if (!m.pasids.empty() && m.cds) {
            m.rid_domain.reset();
            write_cd(m, 0, sm::Cd{});
            write_ste(s, make_cdtable_ste(m)); // PASIDs stay; requests without one are terminated
        } else {
            m.rid_domain.reset();
            write_ste(s, abort);
            if (m.cds) write_cd(m, 0, sm::Cd{});
        }
        users_[d.id].erase({s, 0});
    }
    // The domain's TLB entries and the device's ATC for what it used.
    return invalidate(d, 0, 0, false, {a});
}

Command Smmuv3Driver::tlbi_base(const DomainDesc& d, bool leaf) {
    Command c;
    c.leaf = leaf;
    if (s1_kind(d)) {
        c.opcode = e2h_ ? sm::op::kTlbiEl2Va : sm::op::kTlbiNhVa;
        c.asid = static_cast<uint16_t>(domain_tag(d));
    } else {
        c.opcode = sm::op::kTlbiS2Ipa;
        c.vmid = static_cast<uint16_t>(domain_tag(d));
    }
    return c;
}

std::vector<Command> Smmuv3Driver::tlbi_range(const Command& base, uint64_t iova, uint64_t size, unsigned granule,
                                              bool ril, uint64_t cap_pages) {
    std::vector<Command> out;
    const uint64_t g = uint64_t{1} << granule;
    const uint64_t start = iova & ~(g - 1);
    const uint64_t end = (iova + size + g - 1) & ~(g - 1);
    uint64_t pages = (end - start) >> granule;
    if (!ril && pages > cap_pages) return out; // the caller invalidates the whole ASID / VMID
    Command c = base;
    if (ril) {
        c.tg = static_cast<uint8_t>((granule - 10) / 2); // 12, 14, 16 -> 1, 2, 3
        // Leaf: the unmapped leaves are granule pages, at level 3 (4 - (log2(leaf) - 3) / (TG - 3)).
        if (c.leaf) c.ttl = 3;
        else if ((pages & 31) == 1) ++pages; // Linux avoids SCALE = NUM = 0 for non-leaf ranges
    }
    for (uint64_t at = start; at < end && pages;) {
        uint64_t span = g;
        if (ril) {
            const unsigned scale = static_cast<unsigned>(std::countr_zero(pages));
            const uint64_t num = (pages >> scale) & 31;
            c.scale = static_cast<uint8_t>(scale);
            c.num = static_cast<uint8_t>(num - 1);
            span = num << (scale + granule);
            pages -= num << scale;
        } else {
            --pages;
        }
        c.addr = at;
        out.push_back(c);
        at += span;
    }
    return out;
}

Command Smmuv3Driver::atc_inv(uint32_t s, std::optional<uint32_t> ssid, uint64_t iova, uint64_t size) {
    Command c{.opcode = sm::op::kAtcInv, .sid = s, .ssv = ssid.has_value(), .ssid = ssid.value_or(0)};
    if (size == 0) {
        c.size = kAtcInvAll;
        return c;
    }
    // arm_smmu_atc_inv_to_cmd: the smallest aligned power-of-two span of 4 KiB pages covering the range.
    uint64_t first = iova >> 12;
    const uint64_t last = (iova + size - 1) >> 12;
    const unsigned log2_span = first == last ? 0 : 64 - static_cast<unsigned>(std::countl_zero(first ^ last));
    first &= ~((uint64_t{1} << log2_span) - 1);
    c.addr = first << 12;
    c.size = static_cast<uint8_t>(log2_span);
    return c;
}

FlushTiming Smmuv3Driver::invalidate(const DomainDesc& d, uint64_t iova, uint64_t size, bool leaf,
                                     const std::vector<Attachment>& atts, bool* ranged) {
    const Command base = tlbi_base(d, leaf);
    const unsigned g = (s1_kind(d) ? d.s1 : d.s2).granule_shift;
    std::vector<Command> cmds;
    if (size) cmds = tlbi_range(base, iova, size, g, f_->ril, params_.range_threshold_pages);
    if (cmds.empty()) { // the whole ASID / VMID (arm_smmu_tlb_inv_context)
        Command all;
        if (s1_kind(d)) {
            all.opcode = e2h_ ? sm::op::kTlbiEl2Asid : sm::op::kTlbiNhAsid;
            all.asid = base.asid;
        } else {
            all.opcode = sm::op::kTlbiS12Vmall;
            all.vmid = base.vmid;
        }
        cmds.push_back(all);
        asid_wide_.inc();
    } else {
        ranged_.inc();
        if (ranged) *ranged = true;
    }
    tlbi_.inc(cmds.size());
    FlushTiming t = issue(cmds);
    // arm_smmu_atc_inv_domain: a second batch after the TLBIs, one ATC_INV per ATS master.
    std::vector<Command> atc;
    std::set<std::pair<uint32_t, uint32_t>> done;
    for (const Attachment& a : atts) {
        auto it = masters_.find(sid(a.device));
        if (it == masters_.end() || !it->second.ats || params_.skip_devtlb_invalidation) continue;
        if (!done.insert({sid(a.device), a.pasid ? *a.pasid + 1 : 0}).second) continue;
        atc.push_back(atc_inv(sid(a.device), a.pasid, iova, size));
    }
    if (atc.empty()) return t;
    atc_inv_.inc(atc.size());
    const FlushTiming u = issue(atc, false);
    t.observed = u.observed;
    t.descriptors += u.descriptors;
    t.devtlb_requests += u.devtlb_requests;
    t.devtlb_sent = u.devtlb_sent;
    t.devtlb_done = u.devtlb_done;
    if (u.wait_done) t.wait_done = u.wait_done;
    t.error = t.error || u.error;
    return t;
}

FlushTiming Smmuv3Driver::flush(const FlushRequest& r) {
    cpu_.spend(cpu_.params().call_overhead);
    bool ranged = false;
    FlushTiming t = invalidate(*r.domain, r.iova, r.size, r.leaf_only, r.attachments, &ranged);
    t.ranged = ranged;
    return t;
}

// ---- CMDQ hooks -------------------------------------------------------------

QueueEntry Smmuv3Driver::encode_sync(uint64_t status_pa, uint32_t token, bool) {
    // arm_smmu_cmdq_build_sync_cmd: MSI to the CMD_SYNC itself, MSH = ISH, MSIATTR = OIWB.
    return entry(Command{.opcode = sm::op::kSync, .cs = sm::SyncSignal::irq, .msh = 3, .msi_attr = 0xF,
                         .msi_data = token, .msi_addr = status_pa});
}

CommandKind Smmuv3Driver::kind_of(const QueueEntry& e) const {
    const auto op = static_cast<uint8_t>(e[0]); // opcode: bits 7:0 (IHI 0070 4.1)
    if (op == sm::op::kAtcInv) return CommandKind::devtlb;
    // CMD_TLBI_NH_ALL (0x10) up to CMD_TLBI_NSNH_ALL (0x30): every TLB invalidation.
    return op >= sm::op::kTlbiNhAll && op <= sm::op::kTlbiNsnhAll ? CommandKind::iotlb : CommandKind::other;
}

QueueEntry Smmuv3Driver::encode_nop() { return entry(Command{.opcode = sm::op::kSync}); } // CS = SIG_NONE

uint64_t Smmuv3Driver::read_head() {
    return uint64_t{mmio_.read32(reg::kCmdqCons) & ((1u << cmdq_log2_) - 1)} * kCmdBytes;
}

void Smmuv3Driver::write_tail(uint64_t, uint64_t entries) {
    // PROD: index and wrap bit = the entries written so far modulo twice the queue size.
    mmio_.post32(reg::kCmdqProd, static_cast<uint32_t>(entries & ((uint64_t{2} << cmdq_log2_) - 1)));
}

const sc_core::sc_event* Smmuv3Driver::error_signal() { return msi_ ? &msi_->event(kGerrorVector) : nullptr; }

uint64_t Smmuv3Driver::error_signals() { return msi_ ? msi_->count(kGerrorVector) : 0; }

QueueError Smmuv3Driver::read_error() {
    QueueError e;
    // The GERROR interrupt handler runs when its MSI has arrived (no MMIO read per spin).
    if (msi_) {
        const uint64_t n = msi_->count(kGerrorVector);
        if (n == gerror_seen_) return e;
        gerror_seen_ = n;
    }
    const uint32_t gerror = mmio_.read32(reg::kGerror);
    gerrorn_ = mmio_.read32(reg::kGerrorN);
    const uint32_t active = gerror ^ gerrorn_;
    if (!active) return e;
    e.bits = active;
    if (active & static_cast<uint32_t>(sm::Gerror::cmdq_err)) {
        // arm_smmu_cmdq_skip_err.
        switch (static_cast<sm::CmdError>((mmio_.read32(reg::kCmdqCons) >> 24) & 0x7F)) {
        case sm::CmdError::ill:
            e.replace_head = true; // the bad command becomes a CMD_SYNC
            e.failed_entries.push_back(0);
            break;
        case sm::CmdError::atc_inv_sync: e.failed_entries.push_back(0); break;
        default: break; // CERROR_ABT: the fetch is retried
        }
    }
    return e;
}

void Smmuv3Driver::acknowledge(const QueueError& e) { mmio_.write32(reg::kGerrorN, gerrorn_ ^ e.bits); }

// ---- EVTQ -------------------------------------------------------------------

void Smmuv3Driver::service_events() {
    // arm_smmu_evtq_thread: read every record between CONS and PROD, then CONS (+ OVACKFLG).
    const uint32_t prod = mmio_.read32(reg::kEvtqProd);
    const uint32_t mask = (2u << evtq_log2_) - 1, idx = (1u << evtq_log2_) - 1;
    while ((evtq_cons_ & mask) != (prod & mask)) {
        std::array<uint64_t, 4> r{};
        cpu_.spend(cpu_.params().mem_read);
        cpu_.memory().read(evtq_base_ + uint64_t{evtq_cons_ & idx} * kEvtBytes, r.data(), kEvtBytes);
        events_.inc();
        evtq_cons_ = (evtq_cons_ + 1) & mask;
        if (const sm::Event e = sm::Event::decode(r); e.stall) serve_stall(e);
        else if (fault_handler_ && vevent_eligible(e.id) && !e.s2) report_vevent(r, e.sid);
    }
    mmio_.write32(reg::kEvtqCons, evtq_cons_ | (prod & (1u << 31)));
}

void Smmuv3Driver::serve_stall(const sm::Event& e) {
    // arm_smmu_handle_evt: only the four translation-related faults with Stall = 1 become I/O
    // page faults (a page request with Last set, its group the STAG, the rights from RnW / InD /
    // PnU); iommu_report_device_fault resolves it (iopf, SVA's handle_mm_fault), then
    // arm_smmu_page_response sends CMD_RESUME: Retry on success, Abort otherwise (also when
    // nobody handles the fault). No CMD_SYNC: consuming RESUME is enough (Linux's comment).
    const bool translation = e.id == sm::evt::kTranslation || e.id == sm::evt::kAddrSize ||
                             e.id == sm::evt::kAccess || e.id == sm::evt::kPermission;
    PageRequestInfo r;
    r.rid = pcie::Bdf(static_cast<uint16_t>(e.sid));
    if (e.ssv) r.pasid = e.ssid;
    r.address = e.input_addr & ~uint64_t{0xFFF};
    r.read = e.rnw;
    r.write = !e.rnw;
    r.execute = e.ind;
    r.privileged = e.pnu;
    r.last = true;
    r.prg_index = e.stag;
    const auto it = masters_.find(e.sid);
    if (translation && fault_handler_ && it != masters_.end() && it->second.stall && fault_handler_->deliver_to_user(r)) {
        stall_faults_.inc(); // a nested domain's: the VMM answers it (page_response)
        return;
    }
    const bool handled = translation && fault_handler_ && it != masters_.end() && it->second.stall && r.pasid;
    const pcie::PrgResponseCode code =
        handled ? fault_handler_->handle_page_request(r) : pcie::PrgResponseCode::response_failure;
    stall_faults_.inc();
    const bool ok = code == pcie::PrgResponseCode::success;
    if (!ok) stall_aborts_.inc();
    const Command resume{.opcode = sm::op::kResume, .sid = e.sid,
                         .resp = static_cast<uint8_t>(ok ? sm::ResumeAction::retry : sm::ResumeAction::abort),
                         .stag = e.stag};
    queue_.post({entry(resume)});
}

bool Smmuv3Driver::vevent_eligible(uint8_t id) {
    // arm_smmu_handle_event: only these records reach a vIOMMU (iommu_vevent_arm_smmuv3).
    return id == sm::evt::kBadSte || id == sm::evt::kStreamDisabled || id == sm::evt::kBadSubstreamId ||
           id == sm::evt::kBadCd || id == sm::evt::kTranslation || id == sm::evt::kAddrSize ||
           id == sm::evt::kAccess || id == sm::evt::kPermission;
}

void Smmuv3Driver::report_vevent(const std::array<uint64_t, 4>& r, uint32_t sid) {
    // arm_vmaster_report_event: the raw record with StreamID (bits 63:32) replaced by the vSID.
    if (sid > 0xFFFF) return;
    const pcie::Bdf rid(static_cast<uint16_t>(sid));
    const std::optional<uint64_t> vsid = fault_handler_->virtual_id(rid);
    if (!vsid) return; // not a vmaster: the host keeps it (logged only)
    std::vector<uint64_t> v(r.begin(), r.end());
    v[0] = (v[0] & 0xFFFFFFFFull) | (*vsid & 0xFFFFFFFFull) << 32;
    (void)fault_handler_->report_event(rid, uapi::kVeventqTypeArmSmmuv3, v);
}

void Smmuv3Driver::page_response(const PageRequestInfo& last, pcie::PrgResponseCode code) {
    // arm_smmu_page_response: a stall master's fault is resumed (Retry on success, else Abort)
    // without CMD_SYNC; a PRI request gets its PRI_RESP.
    const auto it = masters_.find(last.rid.raw);
    if (it != masters_.end() && it->second.stall) {
        const bool ok = code == pcie::PrgResponseCode::success;
        if (!ok) stall_aborts_.inc();
        const Command resume{.opcode = sm::op::kResume, .sid = last.rid.raw,
                             .resp = static_cast<uint8_t>(ok ? sm::ResumeAction::retry : sm::ResumeAction::abort),
                             .stag = last.prg_index};
        queue_.post({entry(resume)});
        return;
    }
    respond(last, code);
}

// ---- PRIQ -------------------------------------------------------------------

void Smmuv3Driver::enable_page_requests() {
    // PRIQ base, PROD / CONS, then PRIQEN (arm_smmu_device_reset does it at probe).
    if (!f_->caps.pri) return; // a unit with stalls only: the EVTQ carries its faults
    const uint64_t bytes = kPage << params_.prq_order;
    for (uint64_t p = alloc_page_(); (p + kPage) % bytes;) p = alloc_page_();
    priq_.init(alloc_page_, params_.prq_order, kPriBytes);
    priq_log2_ = static_cast<uint8_t>(std::min<unsigned>(f_->priqs, std::countr_zero(bytes / kPriBytes)));
    mmio_.write64(reg::kPriqBase, priq_.base() | kQueueRwa | priq_log2_);
    mmio_.write32(reg::kPriqProd, 0);
    mmio_.write32(reg::kPriqCons, 0);
    cr0(cr0_ | bit::kPriqEn);
}

void Smmuv3Driver::serve_page_requests(PageRequestHandler& handler, PageRequestStats& st) {
    fault_handler_ = &handler; // stalled faults from the EVTQ go to the same I/O page fault handler
    if (f_->caps.pri) priq_.serve(handler, st);
    // No PRIQ: the EVTQ thread alone (stalls), a threaded IRQ woken by the EVTQ MSI.
    for (uint64_t seen = 0;;) {
        seen = priq_.irq().wait(cpu_, seen);
        st.wakeups.inc();
        (void)on_interrupt();
    }
}

bool Smmuv3Driver::on_interrupt() {
    if (msi_->count(kEvtqVector) != evtq_seen_) { // the EVTQ interrupt thread's turn
        evtq_seen_ = msi_->count(kEvtqVector);
        service_events();
    }
    const uint64_t priq = msi_->count(kPriqVector);
    if (priq == priq_seen_) return false;
    priq_seen_ = priq;
    return true;
}

uint64_t Smmuv3Driver::read_tail() {
    // queue_sync_prod_in: index and wrap bit (a full queue is not empty) and OVFLG.
    const uint32_t prod = mmio_.read32(reg::kPriqProd);
    priq_ovflg_ = prod >> 31;
    return uint64_t{prod & ((2u << priq_log2_) - 1)} * kPriBytes;
}

void Smmuv3Driver::write_head(uint64_t head) {
    priq_cons_ = static_cast<uint32_t>(head / kPriBytes) & ((2u << priq_log2_) - 1); // index + wrap bit
    mmio_.write32(reg::kPriqCons, priq_cons_ | (uint32_t{priq_ovack_} << 31));
}

bool Smmuv3Driver::handle_overflow() {
    if (priq_ovflg_ == priq_ovack_) return false;
    priq_ovack_ = priq_ovflg_; // acknowledged by CONS.OVACKFLG = PROD.OVFLG
    write_head(uint64_t{priq_cons_} * kPriBytes);
    return true;
}

PageRequestInfo Smmuv3Driver::decode(const LogRecord& r) {
    const sm::PriRecord p = sm::PriRecord::decode({r[0], r[1]});
    PageRequestInfo i;
    i.rid = pcie::Bdf(static_cast<uint16_t>(p.sid));
    if (p.ssv) i.pasid = p.ssid;
    i.address = p.addr & ~uint64_t{0xFFF};
    i.read = p.read;
    i.write = p.write;
    i.execute = p.exec;
    i.privileged = p.priv;
    i.last = p.last;
    i.prg_index = p.prg_index;
    return i;
}

void Smmuv3Driver::respond(const PageRequestInfo& last, pcie::PrgResponseCode code) {
    const sm::PriResp resp = code == pcie::PrgResponseCode::success           ? sm::PriResp::success
                             : code == pcie::PrgResponseCode::invalid_request ? sm::PriResp::deny
                                                                               : sm::PriResp::fail;
    // CMD_PRI_RESP without CMD_SYNC: Linux issues it with arm_smmu_cmdq_issue_cmd (arm_smmu_handle_ppr).
    queue_.post({entry(Command{.opcode = sm::op::kPriResp, .sid = last.rid.raw, .ssv = last.pasid.has_value(),
                               .ssid = last.pasid.value_or(0), .prg_index = last.prg_index,
                               .resp = static_cast<uint8_t>(resp)})});
}

} // namespace iommusim::host
