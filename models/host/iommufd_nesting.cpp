// SPDX-License-Identifier: Apache-2.0
// IommuFd's nesting objects (iommufd HWPT_ALLOC with a nesting parent,
// IOMMU_IOAS_MAP of user memory, IOMMU_HWPT_INVALIDATE): what a VMM calls
// (models/host/vm). Errors and the entry-array semantics follow
// shared/reference/spec-layouts.md E.1/E.2 (Linux iommufd hw_pagetable.c,
// intel/nested.c).
#include <cstring>

#include "models/host/iommufd.hpp"

namespace iommusim::host {

using K = HostError::Kind;

const char* uapi::to_string(Errno e) {
    switch (e) {
    case Errno::ok: return "0";
    case Errno::enoent: return "ENOENT";
    case Errno::eio: return "EIO";
    case Errno::ebusy: return "EBUSY";
    case Errno::eexist: return "EEXIST";
    case Errno::einval: return "EINVAL";
    case Errno::espipe: return "ESPIPE";
    case Errno::eopnotsupp: return "EOPNOTSUPP";
    }
    return "?";
}

void IommuFd::map_user(uint32_t ioas_id, uint64_t iova, uint64_t pa, uint64_t size, unsigned page_shift) {
    Ioas& a = ioas(ioas_id);
    const uint64_t page = uint64_t{1} << page_shift;
    if (page_shift < 12 || page_shift > 47 || size == 0 || size % page || iova % page || pa % page)
        throw HostError(K::invalid, "map_user: range and address must be aligned to the page size");
    if (refuses_page_size(a.hwpts, page_shift))
        throw HostError(K::invalid, "map_user: a domain of the IOAS cannot map this page size");
    a.iovas.reserve(iova, size);
    const std::vector<uint32_t> hwpts = a.hwpts;
    std::vector<uint32_t> done;
    std::vector<uint64_t> new_tables; // table pages each domain's map added
    for (uint32_t hid : hwpts) {
        const uint64_t before = table_alloc_.next();
        const auto e = hwpt(hid).tables->map(iova, pa, size, page_shift, iommu::LeafAttrs{iommu::perm::both(true, true, false)});
        new_tables.push_back((table_alloc_.next() - before) / 4096); // 4 KiB table pages
        if (e != iommu::MapError::none) {
            for (uint32_t d : done) (void)hwpt(d).tables->unmap(iova, size);
            a.iovas.free(iova);
            throw HostError(e == iommu::MapError::overlap ? K::busy : K::invalid,
                            "map_user: " + std::string(iommu::to_string(e)));
        }
        done.push_back(hid);
    }
    a.mappings[iova] = Mapping{.pa = pa, .size = size, .page_shift = page_shift, .borrowed = true};
    oracle_.map(ioas_id, iova, pa, size, pte_visible_at());
    // The same table-write costs as map(): per entry written (leaves and new tables' parent
    // entries, calibration.md "PTE write per 4 KiB page"), and the lines flushed for a unit that
    // does not snoop its walks. Pinning the caller's pages (iopt_map_user_pages ->
    // pin_user_pages) has no published per-page cost and is not charged.
    cpu_.spend(cpu_.params().call_overhead);
    write_ptes(hwpts, iova, size / page, page_shift, new_tables);
    maps_.inc();
    mapped_bytes_.inc(size);
}

uint32_t IommuFd::hwpt_alloc_nested(uint32_t parent_id, const iommu::StageConfig& s1) {
    Hwpt& parent = hwpt(parent_id);
    if (parent.desc.kind != DomainDesc::Kind::paging_s2)
        throw HostError(K::invalid, "domain " + std::to_string(parent_id) + " is not a second-stage (nesting parent) domain");
    const IommuCaps& c = iommus_[parent.iommu].driver->caps();
    if (!c.nesting) throw HostError(K::invalid, "IOMMU " + iommus_[parent.iommu].name + " cannot nest two stages");
    if (!c.s1.supported || !c.s1.has_format(s1.format) || !c.s1.has_levels(s1.levels))
        throw HostError(K::invalid, "IOMMU " + iommus_[parent.iommu].name + " cannot walk this guest stage-1 table (" +
                                        std::string(iommu::to_string(s1.format)) + ", " + std::to_string(s1.levels) + " levels)");
    const uint32_t id = next_id_++;
    Hwpt h;
    h.desc.id = id;
    h.desc.kind = DomainDesc::Kind::nested;
    h.desc.s1 = s1;
    h.desc.s1.enabled = true;
    h.desc.s2 = parent.desc.s2;
    // Coherency is the nesting parent's: VT-d writes PGSNP into a nested PASID entry when the
    // second-stage domain forces snooping (intel_pasid_setup_nested, s2_domain->force_snooping).
    h.desc.force_snoop = parent.desc.force_snoop;
    h.iommu = parent.iommu;
    // Its own oracle space, never mapped here: the VM's composed view judges its DMAs.
    h.space = next_id_++;
    hwpts_.emplace(id, std::move(h));
    return id;
}

uint32_t IommuFd::hwpt_alloc_nested_vtd(uint32_t parent, const uapi::HwptVtdS1& d) {
    using D = uapi::HwptVtdS1;
    // intel/nested.c intel_iommu_domain_alloc_nested: unknown flags / reserved -> EOPNOTSUPP, widths 48 / 57.
    if ((d.flags & ~(D::kSre | D::kEafe | D::kWpe)) || d.reserved)
        throw HostError(K::invalid, "IOMMU_HWPT_DATA_VTD_S1: unknown flags or reserved bits set");
    if (d.addr_width != 48 && d.addr_width != 57)
        throw HostError(K::invalid, "IOMMU_HWPT_DATA_VTD_S1: addr_width must be 48 or 57, got " + std::to_string(d.addr_width));
    iommu::StageConfig s1;
    s1.enabled = true;
    s1.format = iommu::PtFormat::x86_64;
    s1.levels = d.addr_width == 57 ? 5 : 4;
    s1.input_bits = static_cast<uint8_t>(d.addr_width);
    s1.root = d.pgtbl_addr & ~uint64_t{0xFFF};
    s1.write_protect = (d.flags & D::kWpe) != 0;
    const uint32_t id = hwpt_alloc_nested(parent, s1);
    hwpt(id).inv_data_type = uapi::kInvalidateDataVtdS1;
    return id;
}

uint32_t IommuFd::viommu_alloc(uint32_t parent_id) {
    Hwpt& parent = hwpt(parent_id);
    if (parent.desc.kind != DomainDesc::Kind::paging_s2)
        throw HostError(K::invalid, "domain " + std::to_string(parent_id) + " is not a second-stage (nesting parent) domain");
    cpu_.spend(cpu_.params().call_overhead);
    const uint32_t id = next_id_++;
    viommus_.emplace(id, Viommu{parent_id, parent.iommu, {}, false});
    return id;
}

void IommuFd::vdevice_alloc(uint32_t viommu, pcie::Bdf rid, uint64_t virt_id) {
    auto it = viommus_.find(viommu);
    if (it == viommus_.end()) throw HostError(K::not_found, "no vIOMMU " + std::to_string(viommu));
    const DeviceInfo* d = device_info(it->second.iommu, rid);
    if (!d) throw HostError(K::not_found, "no device " + rid.str() + " behind IOMMU " + iommus_[it->second.iommu].name);
    cpu_.spend(cpu_.params().call_overhead);
    if (!it->second.vdevices.emplace(virt_id, *d).second)
        throw HostError(K::busy, "virtual ID " + std::to_string(virt_id) + " is already a vDEVICE of vIOMMU " +
                                     std::to_string(viommu) + " (EEXIST)");
    if (it->second.hw) iommus_[it->second.iommu].driver->viommu_hw_vdevice(viommu, virt_id, *d);
}

namespace {
/// The host PA of [gpa, gpa + bytes) when it is one contiguous block of the IOAS's mappings.
std::optional<uint64_t> contiguous(const IommuFd& fd, uint32_t ioas, uint64_t gpa, uint64_t bytes) {
    const std::optional<uint64_t> first = fd.lookup(ioas, gpa);
    if (!first || bytes == 0) return std::nullopt;
    for (uint64_t off = 4096 - (gpa & 4095); off < bytes; off += 4096) // every page, as pinning walks them
        if (fd.lookup(ioas, gpa + off) != *first + off) return std::nullopt;
    return first;
}
} // namespace

uint32_t IommuFd::viommu_alloc_hw(uint32_t parent_id, uint64_t gpa, uint64_t bytes) {
    const uint32_t id = viommu_alloc(parent_id);
    Viommu& v = viommus_.at(id);
    const std::optional<uint64_t> hpa = contiguous(*this, hwpt(parent_id).space, gpa, bytes);
    if (!hpa) throw HostError(K::invalid, "guest RAM is not one contiguous block of the parent's IOAS");
    if (!iommus_[v.iommu].driver->viommu_hw_alloc(id, {gpa, *hpa, bytes, &hwpt(parent_id).desc}))
        throw HostError(K::invalid, "IOMMU " + iommus_[v.iommu].name + " has no free hardware vIOMMU context");
    v.hw = true;
    return id;
}

uapi::Errno IommuFd::hw_queue_alloc(uint32_t viommu, uint64_t gpa, uint64_t bytes) {
    auto it = viommus_.find(viommu);
    if (it == viommus_.end()) return uapi::Errno::enoent;
    cpu_.spend(cpu_.params().call_overhead);
    if (!it->second.hw) return uapi::Errno::eopnotsupp;
    const std::optional<uint64_t> hpa = contiguous(*this, hwpt(it->second.parent).space, gpa, bytes);
    if (!hpa) return uapi::Errno::einval;
    return iommus_[it->second.iommu].driver->hw_queue_alloc(viommu, *hpa, bytes);
}

void IommuFd::hw_queue_enable(uint32_t viommu, bool on) {
    auto it = viommus_.find(viommu);
    if (it == viommus_.end()) throw HostError(K::not_found, "no vIOMMU " + std::to_string(viommu));
    cpu_.spend(cpu_.params().call_overhead);
    if (it->second.hw) iommus_[it->second.iommu].driver->hw_queue_enable(viommu, on);
}

void IommuFd::vdevice_free(uint32_t viommu, uint64_t virt_id) {
    auto it = viommus_.find(viommu);
    if (it == viommus_.end()) throw HostError(K::not_found, "no vIOMMU " + std::to_string(viommu));
    if (!it->second.vdevices.erase(virt_id))
        throw HostError(K::not_found, "virtual ID " + std::to_string(virt_id) + " is not a vDEVICE of vIOMMU " +
                                          std::to_string(viommu));
    cpu_.spend(cpu_.params().call_overhead);
    if (it->second.hw) iommus_[it->second.iommu].driver->viommu_hw_vdevice_free(viommu, virt_id);
}

void IommuFd::viommu_free(uint32_t viommu) {
    auto it = viommus_.find(viommu);
    if (it == viommus_.end()) throw HostError(K::not_found, "no vIOMMU " + std::to_string(viommu));
    if (!it->second.vdevices.empty())
        throw HostError(K::busy, "vIOMMU " + std::to_string(viommu) + " still has vDEVICEs (EBUSY)");
    for (const auto& [id, h] : hwpts_)
        if (h.desc.viommu == viommu)
            throw HostError(K::busy, "vIOMMU " + std::to_string(viommu) + " still has nested HWPT " + std::to_string(id) +
                                         " (EBUSY)");
    for (const auto& [id, q] : veventqs_)
        if (q.viommu == viommu)
            throw HostError(K::busy, "vIOMMU " + std::to_string(viommu) + " still has vEVENTQ " + std::to_string(id) + " (EBUSY)");
    cpu_.spend(cpu_.params().call_overhead);
    if (it->second.hw) iommus_[it->second.iommu].driver->viommu_hw_free(viommu);
    viommus_.erase(it);
}

const DeviceInfo* IommuFd::vdevice(uint32_t viommu, uint64_t virt_id) const {
    auto it = viommus_.find(viommu);
    if (it == viommus_.end()) return nullptr;
    auto d = it->second.vdevices.find(virt_id);
    return d == it->second.vdevices.end() ? nullptr : &d->second;
}

uint32_t IommuFd::hwpt_alloc_nested_viommu(uint32_t viommu, uint32_t data_type, const std::array<uint64_t, 4>& entry) {
    auto it = viommus_.find(viommu);
    if (it == viommus_.end()) throw HostError(K::not_found, "no vIOMMU " + std::to_string(viommu));
    const Viommu& v = it->second;
    Hwpt& parent = hwpt(v.parent);
    IommuDriver& drv = *iommus_[v.iommu].driver;
    if (!drv.caps().nesting) throw HostError(K::invalid, "IOMMU " + iommus_[v.iommu].name + " cannot nest two stages");
    bool unsupported = false;
    if (auto why = drv.check_nested(data_type, entry, unsupported))
        throw HostError(K::invalid, std::string(unsupported ? "EOPNOTSUPP: " : "EINVAL: ") + *why);
    cpu_.spend(cpu_.params().call_overhead);
    const uint32_t id = next_id_++;
    Hwpt h;
    h.desc.id = id;
    h.desc.kind = DomainDesc::Kind::nested;
    h.desc.s2 = parent.desc.s2;
    h.desc.force_snoop = parent.desc.force_snoop; // the nesting parent's, as above
    h.desc.viommu = viommu;
    h.desc.parent = v.parent;
    h.desc.guest_entry = entry;
    h.iommu = v.iommu;
    h.space = next_id_++; // judged by the VM's composed view, as hwpt_alloc_nested
    hwpts_.emplace(id, std::move(h));
    return id;
}

uapi::Errno IommuFd::viommu_invalidate(Viommu& v, uint32_t id, uapi::HwptInvalidate& req,
                                       std::vector<FlushTiming>* timings) {
    using E = uapi::Errno;
    const uint32_t want = req.entry_num;
    IommuDriver& drv = *iommus_[v.iommu].driver;
    const std::optional<uint32_t> type = drv.viommu_invalidate_type();
    if (!type) return E::eopnotsupp;
    if (want == 0) return E::ok;
    if (req.data_type != *type) return E::einval;
    if (req.entry_len != 16) return E::einval; // one raw 128-bit command (E.3)
    std::vector<std::array<uint64_t, 2>> cmds(want);
    std::memcpy(cmds.data(), reinterpret_cast<const void*>(static_cast<uintptr_t>(req.data_uptr)), 16 * size_t{want});
    IommuDriver::ViommuRef ref;
    ref.id = id;
    ref.parent = &hwpt(v.parent).desc;
    ref.vdevice = [&v](uint64_t virt) -> const DeviceInfo* {
        auto it = v.vdevices.find(virt);
        return it == v.vdevices.end() ? nullptr : &it->second;
    };
    uint32_t done = 0;
    FlushTiming t;
    const E e = drv.viommu_invalidate(ref, cmds, done, t);
    req.entry_num = done;
    if (done && timings) timings->push_back(t);
    if (done) {
        log_.record("viommu_invalidate", iommus_[v.iommu].name, id, 0, 0, t);
        if (t.error) failed_flushes_.inc();
    }
    return e;
}

uapi::Errno IommuFd::hwpt_invalidate(uapi::HwptInvalidate& req, std::vector<FlushTiming>* timings) {
    using E = uapi::Errno;
    const uint32_t want = req.entry_num;
    req.entry_num = 0;
    cpu_.spend(cpu_.params().call_overhead);
    if (req.reserved) return E::eopnotsupp;
    if (want && (!req.data_uptr || !req.entry_len)) return E::einval;
    if (auto v = viommus_.find(req.hwpt_id); v != viommus_.end()) {
        req.entry_num = want;
        const E e = viommu_invalidate(v->second, req.hwpt_id, req, timings);
        if (req.entry_num == want && e != E::ok) req.entry_num = 0;
        return e;
    }
    auto it = hwpts_.find(req.hwpt_id);
    if (it == hwpts_.end()) return E::enoent;
    Hwpt& h = it->second;
    if (h.desc.kind != DomainDesc::Kind::nested) return E::einval; // a paging (parent) domain is not a target
    if (!h.inv_data_type) return E::eopnotsupp;
    if (want == 0) return E::ok;
    if (req.data_type != *h.inv_data_type) return E::einval;
    if (req.entry_len != sizeof(uapi::VtdS1Invalidate)) return E::einval; // the observable rule of E.1
    const auto* base = reinterpret_cast<const uint8_t*>(static_cast<uintptr_t>(req.data_uptr));
    for (uint32_t i = 0; i < want; ++i) {
        uapi::VtdS1Invalidate e;
        std::memcpy(&e, base + uint64_t{i} * req.entry_len, sizeof e);
        if ((e.flags & ~uapi::VtdS1Invalidate::kFlagLeaf) || e.reserved) return E::eopnotsupp;
        if ((e.addr & 0xFFF) || (e.npages == UINT64_MAX && e.addr != 0)) return E::einval;
        // The kernel flushes every cache tag of the nested domain for the range: the IOTLB and,
        // for ATS devices, the device TLB it synthesizes (the guest's own device-TLB
        // invalidations never come this way).
        const bool all = e.npages == UINT64_MAX || e.npages > (UINT64_MAX >> 12);
        if (all || e.npages)
            flush_space(h.space, {req.hwpt_id}, all ? 0 : e.addr, all ? 0 : e.npages << 12,
                        (e.flags & uapi::VtdS1Invalidate::kFlagLeaf) != 0, "nested_invalidate", timings);
        req.entry_num = i + 1;
    }
    return E::ok;
}

} // namespace iommusim::host
