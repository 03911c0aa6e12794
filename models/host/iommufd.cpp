// SPDX-License-Identifier: Apache-2.0
#include "models/host/iommufd.hpp"

#include "models/common/sc_time.hpp"

#include <algorithm>
#include <set>

namespace iommusim::host {

using K = HostError::Kind;

namespace {
constexpr uint64_t kPage = 4096;
std::string page_str(unsigned shift) {
    if (shift >= 30) return std::to_string(uint64_t{1} << (shift - 30)) + " GiB";
    if (shift >= 20) return std::to_string(uint64_t{1} << (shift - 20)) + " MiB";
    return std::to_string(uint64_t{1} << (shift - 10)) + " KiB";
}
std::string page_sizes_str(PageSizeMask m) {
    std::string out;
    for (unsigned s = 0; s < 64; ++s)
        if ((m >> s) & 1) out += (out.empty() ? "" : ", ") + page_str(s);
    return out.empty() ? "none" : out;
}
/// Page-fault handler of one unit: the unit's page-request thread calls it.
class UnitPrqHandler final : public PageRequestHandler {
public:
    UnitPrqHandler(IommuFd& fd, unsigned iommu) : fd_(fd), iommu_(iommu) {}
    pcie::PrgResponseCode handle_page_request(const PageRequestInfo& r) override {
        return fd_.handle_page_request(iommu_, r);
    }
    bool deliver_to_user(const PageRequestInfo& r) override { return fd_.deliver_to_user(iommu_, r); }
    std::optional<uint64_t> virtual_id(pcie::Bdf rid) override {
        const auto v = fd_.vmaster(iommu_, rid);
        return v ? std::optional<uint64_t>(v->virt_id) : std::nullopt;
    }
    bool report_event(pcie::Bdf rid, uint32_t type, const std::vector<uint64_t>& record) override {
        const auto v = fd_.vmaster(iommu_, rid);
        return v && fd_.report_vevent(v->viommu, type, record) == uapi::Errno::ok;
    }

private:
    IommuFd& fd_;
    unsigned iommu_;
};
/// Leaves of a DMA domain: read/write, snooped when the domain enforces coherency (VT-d
/// second-stage SNP, AMD v1 FC; formats without such a bit ignore it).
iommu::LeafAttrs leaf_attrs(const DomainDesc& d) {
    iommu::LeafAttrs a{iommu::perm::both(true, true, false)};
    a.snoop = d.force_snoop;
    return a;
}
std::string hex(uint64_t v) {
    char b[24];
    std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
    return b;
}
} // namespace

IommuFd::IommuFd(HostCpu& cpu, DmaOracle& oracle, const DriverParams& params, const HostMemoryLayout& layout,
                 stats::Group* parent)
    : cpu_(cpu), oracle_(oracle), params_(params), layout_(layout),
      table_alloc_(layout.table_base, layout.table_bytes),
      data_alloc_(layout.data_base, layout.data_base + layout.data_bytes, uint64_t{1} << 30, /*next_fit=*/true),
      log_(parent), stats_("iommufd", parent),
      maps_(stats_.counter("maps", "calls", "IOAS map calls")),
      unmaps_(stats_.counter("unmaps", "calls", "IOAS unmap calls")),
      mapped_bytes_(stats_.counter("mapped_bytes", "bytes", "bytes mapped")),
      lazy_flushes_(stats_.counter("lazy_flushes", "flushes", "flush-queue drains (lazy policy)")),
      unmap_latency_(stats_.histogram("unmap_latency", "ns", "unmap call to return (includes the strict flush)")),
      failed_flushes_(stats_.counter("failed_flushes", "flushes", "flushes that ended in a queue error (IQE/ITE)")),
      quarantined_(stats_.counter("quarantined", "ranges",
                                  "unmapped ranges never reused because their flush failed (a stale ATC may still hold them)")),
      demand_faults_(stats_.counter("demand_faults", "pages", "process pages mapped on demand (page requests)")),
      noncoherent_(stats_.value("noncoherent_domains", "domains",
                                "domains with attached devices that do not enforce cache coherency (their No-Snoop DMA "
                                "bypasses the CPU caches: KVM must emulate WBINVD while any is attached)")),
      table_line_flushes_(stats_.counter("table_line_flushes", "lines",
                                         "page-table cache lines flushed (clflush) because the IOMMU does not snoop its walks")),
      iova_cache_hits_(stats_.counter("iova_cache_hits", "allocations", "DMA-API IOVAs served by the calling CPU's cache (rcache)")),
      iova_tree_allocs_(stats_.counter("iova_tree_allocs", "allocations", "IOVAs allocated from the tree (cache empty, or not cacheable)")),
      iova_tree_frees_(stats_.counter("iova_tree_frees", "ranges", "IOVA ranges freed into the tree (not cacheable, or evicted from a cache)")),
      iova_lock_(cpu, "iova_lock", &stats_), fq_lock_stats_("fq_locks", &stats_) {
    fqs_.assign(cpu.params().topology.cpus, FlushQueue(params.flush_queue));
    for (unsigned c = 0; c < cpu.params().topology.cpus; ++c)
        fq_locks_.push_back(std::make_unique<HostLock>(cpu, "cpu" + std::to_string(c), &fq_lock_stats_));
    pending_.resize(cpu.params().topology.cpus);
    // The host CPU's paging mode, the tables SVA domains share: x86-64 with 4 levels (no
    // LA57) or 5 (LA57: 57-bit VAs), or arm64 with 4 KiB pages and 48-bit VAs (Linux
    // defaults: 4 levels, TTBR0 range).
    const CpuArch arch = cpu.params().arch;
    cpu_tables_.enabled = true;
    cpu_tables_.format = arch == CpuArch::arm64 ? iommu::PtFormat::arm_s1 : iommu::PtFormat::x86_64;
    cpu_tables_.levels = arch == CpuArch::x86_64_la57 ? 5 : 4;
    cpu_tables_.granule_shift = 12;
    cpu_tables_.input_bits = arch == CpuArch::x86_64_la57 ? 57 : 48;
}

IommuFd::~IommuFd() = default;

std::function<uint64_t()> IommuFd::table_page_allocator() {
    return [this] {
        auto a = table_alloc_(kPage, kPage);
        if (!a) throw HostError(K::no_space, "host table memory exhausted");
        return *a;
    };
}

unsigned IommuFd::add_iommu(const std::string& name, IommuDriver& driver, uint16_t segment) {
    const auto index = static_cast<unsigned>(iommus_.size());
    iommus_.push_back(Unit{name, &driver, segment, std::make_unique<UnitPrqHandler>(*this, index)});
    return index;
}

void IommuFd::add_device(const DeviceInfo& d, unsigned iommu) {
    if (iommu >= iommus_.size()) throw HostError(K::invalid, "device " + d.rid.str() + ": no such IOMMU");
    if (!devices_.emplace(device_key(iommu, d.rid), Device{d, iommu}).second)
        throw HostError(K::busy, "device " + d.rid.str() + " registered twice behind " + iommus_[iommu].name);
}

IommuFd::Ioas& IommuFd::ioas(uint32_t id) {
    auto it = ioas_.find(id);
    if (it == ioas_.end()) throw HostError(K::not_found, "no IOAS " + std::to_string(id));
    return it->second;
}
IommuFd::Hwpt& IommuFd::hwpt(uint32_t id) {
    auto it = hwpts_.find(id);
    if (it == hwpts_.end()) throw HostError(K::not_found, "no HW page table " + std::to_string(id));
    return it->second;
}
IommuFd::Process& IommuFd::process(uint32_t id) {
    auto it = processes_.find(id);
    if (it == processes_.end()) throw HostError(K::not_found, "no process " + std::to_string(id));
    return it->second;
}

uint32_t IommuFd::ioas_alloc() {
    const uint32_t id = next_id_++;
    ioas_.emplace(id, Ioas{IovaAllocator(layout_.iova_base, layout_.iova_limit), {}, {}, {}});
    rcaches_.emplace(id, IovaRcache(cpu_.params().topology.cpus));
    return id;
}

void IommuFd::set_flush_policy(uint32_t ioas_id, FlushPolicy p) { ioas(ioas_id).flush = p; }

uint32_t IommuFd::hwpt_alloc(uint32_t ioas_id, unsigned iommu, DomainDesc::Kind kind, std::optional<uint8_t> levels) {
    Ioas& a = ioas(ioas_id);
    if (iommu >= iommus_.size()) throw HostError(K::invalid, "no IOMMU " + std::to_string(iommu));
    if (kind != DomainDesc::Kind::paging_s1 && kind != DomainDesc::Kind::paging_s2)
        throw HostError(K::invalid, "hwpt_alloc makes paging domains; use hwpt_alloc_sva for SVA");
    // The backend chooses the format, levels, aperture and page sizes.
    const PagingFormat f = iommus_[iommu].driver->paging_format(kind, levels);
    if (f.aperture_base > layout_.iova_base)
        throw HostError(K::invalid, "IOMMU " + iommus_[iommu].name + "'s aperture starts at " + hex(f.aperture_base) +
                                        ", above the IOAS base " + hex(layout_.iova_base));
    for (const auto& [iova, m] : a.mappings)
        if (!((f.page_sizes >> m.page_shift) & 1))
            throw HostError(K::invalid, "IOAS mapping " + hex(iova) + " uses " + page_str(m.page_shift) +
                                            " pages, which IOMMU " + iommus_[iommu].name + " cannot map (" +
                                            page_sizes_str(f.page_sizes) + ")");
    iommu::MapError err = iommu::MapError::none;
    auto tables = iommu::TableBuilder::create(cpu_.memory(), f.stage, std::ref(table_alloc_), &err);
    if (!tables) throw HostError(K::no_space, std::string("cannot build page tables: ") + std::string(iommu::to_string(err)));
    const uint32_t id = next_id_++;
    Hwpt h;
    h.desc.id = id;
    h.desc.kind = kind;
    (kind == DomainDesc::Kind::paging_s1 ? h.desc.s1 : h.desc.s2) = tables->config();
    h.desc.force_snoop = iommus_[iommu].driver->enforce_cache_coherency(h.desc); // iommufd asks for every paging domain
    h.iommu = iommu;
    h.page_sizes = f.page_sizes;
    h.space = ioas_id;
    // A new domain mirrors the IOAS's existing mappings.
    for (const auto& [iova, m] : a.mappings)
        if (auto e = tables->map(iova, m.pa, m.size, m.page_shift, leaf_attrs(h.desc));
            e != iommu::MapError::none)
            throw HostError(K::invalid, "mirroring IOAS mapping " + hex(iova) + ": " + std::string(iommu::to_string(e)));
    // The IOAS hands out only IOVAs every one of its domains can translate.
    a.iovas.set_limit(f.aperture_limit);
    h.tables = std::move(tables);
    hwpts_.emplace(id, std::move(h));
    a.hwpts.push_back(id);
    return id;
}

uint32_t IommuFd::process_create() {
    iommu::MapError err = iommu::MapError::none;
    auto tables = iommu::TableBuilder::create(cpu_.memory(), cpu_tables_, std::ref(table_alloc_), &err);
    if (!tables) throw HostError(K::no_space, "cannot build CPU page tables: " + std::string(iommu::to_string(err)));
    const uint32_t id = kProcessSpace + next_id_++;
    processes_.emplace(id, Process{std::move(tables), next_asid_++, {}, {}});
    return id;
}

uint32_t IommuFd::hwpt_alloc_sva(uint32_t pid, unsigned iommu) {
    Process& p = process(pid);
    if (iommu >= iommus_.size()) throw HostError(K::invalid, "no IOMMU " + std::to_string(iommu));
    // Sharing the CPU's tables needs a first stage that walks the CPU's format, and PASIDs.
    const IommuCaps& c = iommus_[iommu].driver->caps();
    if (!c.s1.supported || !c.s1.has_format(cpu_tables_.format) || !c.s1.has_levels(cpu_tables_.levels) || !c.pasid_bits)
        throw HostError(K::invalid, "IOMMU " + iommus_[iommu].name + " cannot share the CPU's page tables (" +
                                        std::string(iommu::to_string(cpu_tables_.format)) + ", " +
                                        std::to_string(cpu_tables_.levels) + " levels, with PASID)");
    const uint32_t id = next_id_++;
    Hwpt h;
    h.desc.id = id;
    h.desc.kind = DomainDesc::Kind::sva;
    h.desc.s1 = p.tables->config();
    h.desc.cpu_asid = p.asid;
    h.iommu = iommu;
    h.space = pid;
    hwpts_.emplace(id, std::move(h));
    p.hwpts.push_back(id);
    return id;
}

void IommuFd::attach(pcie::Bdf rid, std::optional<uint32_t> pasid, uint32_t hwpt_id) {
    Hwpt& h = hwpt(hwpt_id);
    auto dit = devices_.find(device_key(h.iommu, rid));
    if (dit == devices_.end()) {
        for (const auto& [key, d] : devices_)
            if (d.info.rid == rid)
                throw HostError(K::invalid, "device " + rid.str() + " is behind IOMMU " + iommus_[d.iommu].name +
                                                ", the domain is on " + iommus_[h.iommu].name);
        throw HostError(K::not_found, "no device " + rid.str());
    }
    const DeviceInfo& dev = dit->second.info;
    if (pasid && !dev.pasid) throw HostError(K::invalid, "device " + rid.str() + " does not support PASID");
    if (pasid && *pasid >= (1u << dev.pasid_bits))
        throw HostError(K::invalid, "PASID " + std::to_string(*pasid) + " exceeds device " + rid.str() + "'s " +
                                        std::to_string(dev.pasid_bits) + "-bit PASID width");
    if (pasid && *pasid == 0) throw HostError(K::invalid, "PASID 0 is reserved for requests without PASID");
    if (h.desc.kind == DomainDesc::Kind::sva && !pasid) throw HostError(K::invalid, "an SVA domain needs a PASID");
    // A device that can have coherency enforced asks its domain for it (iommufd's
    // enforce_cache_coherency at attach); a domain that cannot refuses the device (-EINVAL).
    if (const auto cc = iommus_[h.iommu].driver->enforce_coherency_for(h.desc, dev)) {
        if (!*cc)
            throw HostError(K::invalid, "domain " + std::to_string(hwpt_id) + " cannot enforce cache coherency for " +
                                            rid.str() + ": a device attached to it cannot (IORT CANWBS)");
        h.desc.force_snoop = true;
    }
    if (!attached_.emplace(attach_key(h.iommu, rid, pasid), hwpt_id).second)
        throw HostError(K::busy, "device " + rid.str() + (pasid ? " PASID " + std::to_string(*pasid) : "") +
                                     " is already attached");
    Attachment a{dev, pasid};
    // The oracle learns the binding before the driver writes the context: DMAs
    // through it may complete while the driver still waits for its flushes. A nested
    // domain's DMAs are judged by the VM's composed view (DmaOracle::bind_nested, by the VMM).
    const uint16_t segment = iommus_[h.iommu].segment;
    const bool nested = h.desc.kind == DomainDesc::Kind::nested;
    if (!nested) oracle_.bind(rid, pasid, h.space, cpu_.now(), segment);
    try {
        iommus_[h.iommu].driver->attach(a, h.desc);
    } catch (...) {
        if (!nested) oracle_.unbind(rid, pasid, cpu_.now(), cpu_.now(), segment);
        attached_.erase(attach_key(h.iommu, rid, pasid)); // refused: not attached
        throw;
    }
    h.attachments.push_back(a);
    if (std::none_of(h.served.begin(), h.served.end(),
                     [&](const Attachment& s) { return s.device.rid == rid && s.pasid == pasid; }))
        h.served.push_back(a);
    count_noncoherent();
}

void IommuFd::count_noncoherent() {
    unsigned n = 0;
    for (const auto& [id, h] : hwpts_) n += !h.attachments.empty() && !h.desc.force_snoop;
    noncoherent_.set(n);
}

namespace {
/// The devices a flush is for (BDF, :PASID), for invalidations.csv.
std::string who(const std::vector<Attachment>& as) {
    std::string s;
    for (const auto& a : as) {
        if (!s.empty()) s += ' ';
        s += a.device.rid.str();
        if (a.pasid) {
            s += ':';
            s += std::to_string(*a.pasid);
        }
    }
    return s;
}
/// The host thread (a CPU's driver or scenario thread) that issued it.
std::string issuing_thread() {
    const sc_core::sc_process_handle h = sc_core::sc_get_current_process_handle();
    return h.valid() ? h.basename() : "";
}
} // namespace

void IommuFd::detach(pcie::Bdf rid, std::optional<uint32_t> pasid, std::optional<unsigned> iommu) {
    const std::string what = "device " + rid.str() + (pasid ? " PASID " + std::to_string(*pasid) : "");
    auto it = attached_.end();
    for (unsigned u = 0; u < iommus_.size(); ++u) {
        if (iommu && u != *iommu) continue;
        auto f = attached_.find(attach_key(u, rid, pasid));
        if (f == attached_.end()) continue;
        if (it != attached_.end())
            throw HostError(K::invalid, what + " is attached behind more than one IOMMU: name the IOMMU");
        it = f;
    }
    if (it == attached_.end())
        throw HostError(K::not_found, what + " is not attached" + (iommu ? " behind " + iommus_.at(*iommu).name : ""));
    const uint32_t hwpt_id = it->second;
    Hwpt& h = hwpt(hwpt_id);
    auto at = std::find_if(h.attachments.begin(), h.attachments.end(),
                           [&](const Attachment& a) { return a.device.rid == rid && a.pasid == pasid; });
    Attachment a = *at;
    h.attachments.erase(at);
    attached_.erase(it);
    const Duration unbound_from = cpu_.now(); // the context may be cleared from here on
    FlushTiming t = iommus_[h.iommu].driver->detach(a, h.desc);
    log_.record("detach", iommus_[h.iommu].name, h.desc.id, 0, 0, t, who(std::vector<Attachment>{a}), issuing_thread());
    // Until the detach's cache invalidation completed the old context may be used.
    const std::optional<Duration> gone =
        t.error ? std::nullopt : std::optional<Duration>(t.wait_done ? *t.wait_done : t.observed);
    oracle_.unbind(rid, pasid, unbound_from, gone, iommus_[h.iommu].segment);
    count_noncoherent();
    if (h.fault) auto_respond_faults(h.fault, hwpt_id, h.iommu, rid, pasid); // after the detach, as Linux
}

bool IommuFd::flush_space(uint32_t space, const std::vector<uint32_t>& hwpts, uint64_t iova, uint64_t size,
                          bool leaf_only, const std::string& cause, std::vector<FlushTiming>* timings) {
    // Every domain of the space is flushed; the oracle learns once, when the
    // last one completed, which unmaps (those before the first submission)
    // are now gone from every cache.
    bool ok = true;
    std::optional<Duration> first_submit, last_done;
    for (uint32_t hid : hwpts) {
        Hwpt& h = hwpt(hid);
        FlushRequest r;
        r.domain = &h.desc;
        r.iova = iova;
        r.size = size;
        r.leaf_only = leaf_only;
        r.attachments = h.attachments;
        FlushTiming t = iommus_[h.iommu].driver->flush(r);
        log_.record(cause, iommus_[h.iommu].name, h.desc.id, iova, size, t, who(h.attachments), issuing_thread());
        if (timings) timings->push_back(t);
        ok = ok && !t.error;
        const Duration done = t.wait_done ? *t.wait_done : t.observed;
        if (!first_submit || t.submitted < *first_submit) first_submit = t.submitted;
        if (!last_done || done > *last_done) last_done = done;
    }
    if (!ok) {
        failed_flushes_.inc();
        return false; // not complete: the oracle keeps the ranges pending
    }
    if (!first_submit) return true;
    if (size == 0) oracle_.invalidation_complete_all(space, *last_done, *first_submit);
    else oracle_.invalidation_complete(space, iova, size, *last_done, *first_submit);
    return true;
}

uint64_t IommuFd::map(uint32_t ioas_id, uint64_t size, std::optional<uint64_t> iova, unsigned page_shift) {
    Ioas& a = ioas(ioas_id);
    if (page_shift < 12 || page_shift > 47) throw HostError(K::invalid, "page size must be a power of two from 4 KiB up");
    if (const Hwpt* h = refuses_page_size(a.hwpts, page_shift))
        throw HostError(K::invalid, "page size " + page_str(page_shift) + " is not supported by domain " +
                                        std::to_string(h->desc.id) + " on IOMMU " + iommus_[h->iommu].name + " (" +
                                        page_sizes_str(h->page_sizes) + ")");
    const uint64_t page = uint64_t{1} << page_shift;
    if (size == 0 || size % page) throw HostError(K::invalid, "map size " + std::to_string(size) + " is not a multiple of the page size");
    if (iova && *iova % page) throw HostError(K::invalid, "IOVA " + hex(*iova) + " is not page aligned");
    // Claim the IOVA and the memory before any time passes (other host
    // threads may run during the waits below).
    uint64_t va = 0;
    if (iova) {
        a.iovas.reserve(*iova, size);
        va = *iova;
    } else if (page == kPage) {
        va = alloc_iova(ioas_id, size);
    } else {
        va = a.iovas.alloc(size, page);
    }
    uint64_t pa = 0;
    try {
        pa = data_alloc_.alloc(size, page);
    } catch (const HostError&) {
        a.iovas.free(va);
        throw;
    }
    const std::vector<uint32_t> hwpts = a.hwpts;
    std::vector<uint64_t> new_tables; // table pages each domain's map added
    new_tables.reserve(hwpts.size());
    for (size_t i = 0; i < hwpts.size(); ++i) {
        Hwpt& h = hwpt(hwpts[i]);
        const uint64_t before = table_alloc_.next();
        auto e = h.tables->map(va, pa, size, page_shift, leaf_attrs(h.desc));
        new_tables.push_back((table_alloc_.next() - before) / kPage);
        if (e != iommu::MapError::none) {
            // Roll back: no domain may keep PTEs to memory that is freed again (the first i mapped).
            for (size_t d = 0; d < i; ++d) (void)hwpt(hwpts[d]).tables->unmap(va, size);
            data_alloc_.free(pa);
            a.iovas.free(va);
            throw HostError(e == iommu::MapError::overlap ? K::busy : K::invalid,
                            "map " + hex(va) + ": " + std::string(iommu::to_string(e)));
        }
    }
    a.mappings[va] = Mapping{.pa = pa, .size = size, .page_shift = page_shift, .dma_api = !iova && page == kPage};
    oracle_.map(ioas_id, va, pa, size, pte_visible_at());
    cpu_.spend(cpu_.params().call_overhead);
    write_ptes(hwpts, va, size / page, page_shift, new_tables);
    for (uint32_t hid : hwpts) { // iotlb_sync_map: only units caching non-present entries act
        Hwpt& h = hwpt(hid);
        iommus_[h.iommu].driver->mapped(h.desc, h.attachments, va, size);
    }
    maps_.inc();
    mapped_bytes_.inc(size);
    return va;
}

const IommuFd::Hwpt* IommuFd::refuses_page_size(const std::vector<uint32_t>& hwpts, unsigned shift) {
    for (uint32_t hid : hwpts) {
        const Hwpt& h = hwpt(hid);
        if (!((h.page_sizes >> shift) & 1)) return &h;
    }
    return nullptr;
}

Duration IommuFd::pte_visible_at() { return kernel_now(); }

void IommuFd::write_ptes(const std::vector<uint32_t>& hwpts, uint64_t iova, uint64_t entries, unsigned shift,
                         const std::vector<uint64_t>& new_tables) {
    const HostCpuParams& cp = cpu_.params();
    // The 64-byte lines (8 entries each) the leaves occupy; tables are 512 entries, so a
    // line never straddles two of them and the global entry index gives the line.
    const uint64_t first = iova >> shift, last = first + std::max<uint64_t>(entries, 1) - 1;
    const uint64_t leaf_lines = last / 8 - first / 8 + 1;
    for (size_t i = 0; i < hwpts.size(); ++i) {
        const uint64_t tables = i < new_tables.size() ? new_tables[i] : 0;
        cpu_.spend(cp.pte_write * (std::max<uint64_t>(entries, 1) + tables)); // + each new table's parent entry
        if (iommus_[hwpt(hwpts[i]).iommu].driver->caps().coherent_walks) continue;
        // The unit reads memory, not the CPU's caches: Linux flushes what it wrote
        // (domain_flush_cache / clflush_cache_range; io-pgtable-arm's PTE syncs): the lines of
        // the leaves, and for each new table its whole zeroed page and its parent entry
        // (intel pfn_to_dma_pte: domain_flush_cache(tmp_page, VTD_PAGE_SIZE), then the pte).
        const uint64_t lines = leaf_lines + tables * (kPage / 64 + 1);
        table_line_flushes_.inc(lines);
        cpu_.spend(cp.clflush * lines);
    }
}

uint64_t IommuFd::alloc_iova(uint32_t ioas_id, uint64_t size) {
    const uint64_t pages = size / kPage;
    if (auto v = rcaches_.at(ioas_id).get(cpu_.core(), pages)) {
        iova_cache_hits_.inc();
        cpu_.spend(params_.iova_cache);
        return *v;
    }
    // The tree path under its lock; a cacheable size takes its power-of-two range so that
    // the range can serve any request of its cache size later.
    const auto order = IovaRcache::order_of(pages);
    iova_lock_.lock();
    uint64_t va = 0;
    try {
        va = ioas(ioas_id).iovas.alloc(order ? (kPage << *order) : size, kPage);
    } catch (...) {
        iova_lock_.unlock();
        throw;
    }
    iova_tree_allocs_.inc();
    cpu_.spend(params_.iova_tree_alloc);
    iova_lock_.unlock();
    return va;
}

void IommuFd::free_iova(uint32_t ioas_id, uint64_t iova, bool dma_api) {
    Ioas& a = ioas(ioas_id);
    std::vector<uint64_t> to_tree;
    if (dma_api && rcaches_.at(ioas_id).put(cpu_.core(), iova, a.iovas.size_of(iova) / kPage, to_tree)) {
        cpu_.spend(params_.iova_cache);
    } else {
        to_tree.push_back(iova);
    }
    if (to_tree.empty()) return;
    iova_lock_.lock();
    for (uint64_t v : to_tree) a.iovas.free(v);
    iova_tree_frees_.inc(to_tree.size());
    cpu_.spend(params_.iova_tree_free * to_tree.size());
    iova_lock_.unlock();
}

void IommuFd::release(uint32_t ioas_id, uint64_t iova, const Mapping& m) {
    if (!m.iova_freed) free_iova(ioas_id, iova, m.dma_api);
    if (m.borrowed) return; // the caller's memory (a VM's RAM) stays
    cpu_.memory().discard(m.pa, m.size);
    data_alloc_.free(m.pa);
}

void IommuFd::unmap(uint32_t ioas_id, uint64_t iova, uint64_t size, std::vector<FlushTiming>* timings) {
    Ioas& a = ioas(ioas_id);
    auto it = a.mappings.find(iova);
    if (it == a.mappings.end() || it->second.size != size)
        throw HostError(K::not_found, "IOVA range " + hex(iova) + "+" + std::to_string(size) + " is not mapped");
    const Duration start = cpu_.now();
    Mapping m = it->second;
    a.mappings.erase(it);
    const std::vector<uint32_t> hwpts = a.hwpts;
    for (uint32_t hid : hwpts)
        if (auto e = hwpt(hid).tables->unmap(iova, size); e != iommu::MapError::none)
            throw HostError(K::invalid, "unmap " + hex(iova) + ": " + std::string(iommu::to_string(e)));
    oracle_.unmap(ioas_id, iova, size, cpu_.now()); // the PTEs are clear from now on
    cpu_.spend(cpu_.params().call_overhead);
    write_ptes(hwpts, iova, size >> m.page_shift, m.page_shift);
    unmaps_.inc();
    if (params_.reuse_iova_before_flush) { // the deliberately broken driver: the IOVA may come back at once
        free_iova(ioas_id, iova, m.dma_api);
        m.iova_freed = true;
    }
    if (a.flush.value_or(params_.flush) == FlushPolicy::strict || hwpts.empty()) {
        // The IOVA and the memory behind it are reusable only once the flush completed.
        if (flush_space(ioas_id, hwpts, iova, size, true, "unmap", timings)) release(ioas_id, iova, m);
        else quarantined_.inc();
    } else {
        // Lazy: the range stays allocated until its flush completes; queued on this CPU's
        // flush queue, which this CPU flushes when it is full (Linux queue_iova).
        // Under the queue's lock (fq->lock), which the flush-queue timer also takes.
        const unsigned c = cpu_.core();
        HostLock::Guard held(*fq_locks_[c]);
        pending_[c].push_back({ioas_id, iova, m});
        const bool was_empty = fqs_[c].size() == 0;
        const bool full = fqs_[c].push(FlushQueue::Entry{ioas_id, iova, size, cpu_.now()});
        if (full) flush_taken(take_queue(c)); // still holding the lock, as queue_iova does
        else if (was_empty && queue_listener_) queue_listener_();
    }
    unmap_latency_.record((cpu_.now() - start).as_ns());
}

std::optional<Duration> IommuFd::flush_queue_deadline() const {
    std::optional<Duration> d;
    for (const auto& q : fqs_)
        if (auto t = q.deadline(); t && (!d || *t < *d)) d = t;
    return d;
}

void IommuFd::flush_queue_now() {
    // The timer (fq_flush_timeout): every CPU's queue, each under its own lock.
    TakenQueue all;
    for (unsigned c = 0; c < fqs_.size(); ++c) {
        if (!fqs_[c].size()) continue;
        HostLock::Guard held(*fq_locks_[c]);
        TakenQueue q = take_queue(c);
        all.entries.insert(all.entries.end(), q.entries.begin(), q.entries.end());
        for (auto& p : q.pending) all.pending.push_back(std::move(p));
    }
    flush_taken(std::move(all));
}

IommuFd::TakenQueue IommuFd::take_queue(unsigned c) {
    return TakenQueue{fqs_[c].take(), std::exchange(pending_[c], {})};
}

void IommuFd::flush_taken(TakenQueue q) {
    const auto& entries = q.entries;
    const auto& pending = q.pending;
    if (entries.empty()) return;
    lazy_flushes_.inc();
    std::set<uint32_t> spaces;
    for (const auto& e : entries) spaces.insert(e.domain);
    // One domain-wide flush per HW page table touched (Linux fq_flush_iotlb -> flush_iotlb_all).
    std::set<uint32_t> failed;
    for (uint32_t sp : spaces)
        if (!flush_space(sp, ioas(sp).hwpts, 0, 0, true, "lazy_flush")) failed.insert(sp);
    for (const auto& p : pending) {
        if (failed.count(p.ioas)) quarantined_.inc();
        else release(p.ioas, p.iova, p.mapping);
    }
}

void IommuFd::hwpt_free(uint32_t id) {
    Hwpt& h = hwpt(id);
    if (!h.attachments.empty())
        throw HostError(K::busy, "HW page table " + std::to_string(id) + " still serves " + who(h.attachments) +
                                     ": detach first");
    cpu_.spend(cpu_.params().call_overhead);
    IommuDriver& drv = *iommus_[h.iommu].driver;
    bool clean = true;
    if (!h.served.empty()) {
        // Entries tagged with the domain may outlive its detaches (lazy unmaps still queued, walk
        // caches): invalidate all of it, for every (device, PASID) it served, and wait.
        FlushRequest r;
        r.domain = &h.desc;
        r.leaf_only = false;
        r.attachments = h.served;
        FlushTiming t = drv.flush(r);
        log_.record("hwpt_free", iommus_[h.iommu].name, h.desc.id, 0, 0, t, who(h.served), issuing_thread());
        clean = !t.error;
    }
    if (clean) drv.release_domain_tag(h.desc); // else the tag stays allocated: a stale entry may remain
    else failed_flushes_.inc();
    auto drop = [id](std::vector<uint32_t>& v) { v.erase(std::remove(v.begin(), v.end(), id), v.end()); };
    if (auto a = ioas_.find(h.space); a != ioas_.end()) drop(a->second.hwpts);
    if (auto p = processes_.find(h.space); p != processes_.end()) drop(p->second.hwpts);
    hwpts_.erase(id); // table pages stay with the bump allocator (not reused)
}

void IommuFd::invalidate(uint32_t hwpt_id, uint64_t iova, uint64_t size) {
    Hwpt& h = hwpt(hwpt_id);
    const iommu::StageConfig& cfg = h.desc.kind == DomainDesc::Kind::paging_s2 ? h.desc.s2 : h.desc.s1;
    const uint64_t aperture = uint64_t{1} << cfg.input_bits;
    if (size != 0 && (iova >= aperture || size > aperture - iova))
        throw HostError(K::invalid, "invalidation range " + hex(iova) + "+" + std::to_string(size) +
                                        " exceeds the domain's " + std::to_string(cfg.input_bits) + "-bit aperture");
    cpu_.spend(cpu_.params().call_overhead);
    flush_space(h.space, {hwpt_id}, iova, size, false, "explicit");
}

void IommuFd::mmap(uint32_t pid, uint64_t va, uint64_t size) {
    Process& p = process(pid);
    if (size == 0 || size % kPage || va % kPage) throw HostError(K::invalid, "mmap range must be page aligned");
    const uint64_t pa = data_alloc_.alloc(size);
    if (auto e = p.tables->map(va, pa, size, 12, iommu::LeafAttrs{iommu::perm::all}); e != iommu::MapError::none) {
        data_alloc_.free(pa);
        throw HostError(e == iommu::MapError::overlap ? K::busy : K::invalid,
                        "mmap " + hex(va) + ": " + std::string(iommu::to_string(e)));
    }
    p.mappings[va] = Mapping{pa, size, 12};
    oracle_.map(pid, va, pa, size, pte_visible_at());
    cpu_.spend(cpu_.params().call_overhead + cpu_.params().mem_write * (size / kPage));
}

void IommuFd::munmap(uint32_t pid, uint64_t va, uint64_t size) {
    Process& p = process(pid);
    auto it = p.mappings.find(va);
    if (it == p.mappings.end() || it->second.size != size)
        throw HostError(K::not_found, "process range " + hex(va) + "+" + std::to_string(size) + " is not mapped");
    const Mapping m = it->second;
    p.mappings.erase(it);
    if (auto e = p.tables->unmap(va, size); e != iommu::MapError::none)
        throw HostError(K::invalid, "munmap " + hex(va) + ": " + std::string(iommu::to_string(e)));
    oracle_.unmap(pid, va, size, cpu_.now());
    cpu_.spend(cpu_.params().call_overhead + cpu_.params().mem_write * (size / kPage));
    // The mm notifier: every SVA domain bound to this process is flushed (always strict). It
    // cannot tell whether page-table pages were freed, so it never hints leaf-only (Linux passes
    // ih = 0 from intel_arch_invalidate_secondary_tlbs; arm-smmu-v3 leaf = false; AMD sets PDE).
    if (flush_space(pid, p.hwpts, va, size, false, "munmap")) {
        cpu_.memory().discard(m.pa, m.size);
        data_alloc_.free(m.pa);
    } else {
        quarantined_.inc();
    }
}

void IommuFd::fault_in(uint32_t pid, uint64_t va) {
    Process& p = process(pid);
    va &= ~(kPage - 1);
    // User addresses: x86-64's lower canonical half; arm64's TTBR0 range.
    if (va >= (uint64_t{1} << (cpu_tables_.input_bits - (cpu_tables_.format == iommu::PtFormat::x86_64 ? 1 : 0))))
        throw HostError(K::invalid, "fault at " + hex(va) + ": not a user address");
    if (process_mapped(pid, va)) throw HostError(K::busy, "fault at " + hex(va) + ": page already present");
    const uint64_t pa = data_alloc_.alloc(kPage);
    if (auto e = p.tables->map(va, pa, kPage, 12, iommu::LeafAttrs{iommu::perm::all}); e != iommu::MapError::none) {
        data_alloc_.free(pa);
        throw HostError(K::invalid, "fault at " + hex(va) + ": " + std::string(iommu::to_string(e)));
    }
    p.mappings[va] = Mapping{pa, kPage, 12};
    oracle_.map(pid, va, pa, kPage, pte_visible_at()); // the translation exists from the PTE write on
    cpu_.spend(cpu_.params().mem_write);         // the one PTE store (intermediate tables are rarely new)
    demand_faults_.inc();
}

bool IommuFd::process_mapped(uint32_t pid, uint64_t va) const { return process_lookup(pid, va).has_value(); }

namespace {
/// The physical address of `a` in an address-ordered mapping table, if mapped.
template <class Maps>
std::optional<uint64_t> pa_in(const Maps& maps, uint64_t a) {
    auto m = maps.upper_bound(a);
    if (m == maps.begin()) return std::nullopt;
    --m;
    if (a >= m->first + m->second.size) return std::nullopt;
    return m->second.pa + (a - m->first);
}
} // namespace

std::optional<uint64_t> IommuFd::process_lookup(uint32_t pid, uint64_t va) const {
    auto it = processes_.find(pid);
    return it == processes_.end() ? std::nullopt : pa_in(it->second.mappings, va);
}

pcie::PrgResponseCode IommuFd::handle_page_request(unsigned iommu, const PageRequestInfo& r) {
    using C = pcie::PrgResponseCode;
    // Page-request service from its parts: the hand-off to the iopf workqueue (a kworker woken
    // on another CPU; once per group, and every group the devices send is one request), the
    // fault handler's work, then the backend's page response through its queue.
    cpu_.spend(params_.iopf_wakeup + params_.page_fault_service);
    auto it = attached_.find(attach_key(iommu, r.rid, r.pasid));
    if (it == attached_.end()) return C::invalid_request; // nothing bound: no fault handler (Linux iopf)
    Hwpt& h = hwpt(it->second);
    if (h.desc.kind == DomainDesc::Kind::sva) {
        if (process_mapped(h.space, r.address)) return C::success; // already present (another group faulted it)
        try {
            fault_in(h.space, r.address);
        } catch (const HostError&) {
            return C::invalid_request; // handle_mm_fault failed: Linux answers IOMMU_PAGE_RESP_INVALID
        }
        return C::success;
    }
    if (h.desc.kind == DomainDesc::Kind::paging_s1 || h.desc.kind == DomainDesc::Kind::paging_s2)
        return lookup(h.space, r.address) ? C::success : C::invalid_request;
    return C::invalid_request; // identity / nested: no I/O page faults to resolve on the host
}

bool IommuFd::has_pri_device(unsigned iommu) const {
    for (const auto& [raw, d] : devices_)
        if (d.iommu == iommu && (d.info.pri || d.info.can_stall)) return true;
    return false;
}

std::optional<uint64_t> IommuFd::lookup(uint32_t ioas_id, uint64_t iova) const {
    auto it = ioas_.find(ioas_id);
    return it == ioas_.end() ? std::nullopt : pa_in(it->second.mappings, iova);
}

} // namespace iommusim::host
