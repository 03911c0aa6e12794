// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/amd/amd_tables.hpp"

#include <stdexcept>
#include <vector>

#include "models/iommu/common/pt_format.hpp"

namespace iommusim::iommu::amd {

namespace {
constexpr uint64_t bit(unsigned b) { return uint64_t{1} << b; }
constexpr uint64_t field(uint64_t q, unsigned hi, unsigned lo) { return (q & bits(hi, lo)) >> lo; }
constexpr uint64_t put(uint64_t v, unsigned hi, unsigned lo) { return (v << lo) & bits(hi, lo); }

// Reserved bits (QEMU AMDVI_DTE_*_RESERVED, without HAD 8:7 and GPM 55:54 that later specs define).
constexpr uint64_t kRsvdQ0 = bits(6, 2) | bit(63);
constexpr uint64_t kRsvdQ2 = bits(53, 52);
constexpr uint64_t kRsvdQ3 = bits(14, 0) | bits(53, 48);
} // namespace

std::array<uint64_t, 4> Dte::encode() const {
    uint64_t q0 = (v ? bit(0) : 0) | (tv ? bit(1) : 0) | put(had, 8, 7) | put(mode, 11, 9) |
                  (host_root & bits(51, 12)) | (ppr ? bit(52) : 0) | (gprp ? bit(53) : 0) | (giov ? bit(54) : 0) |
                  (gv ? bit(55) : 0) | put(glx, 57, 56) | put(gcr3_root >> 12, 60, 58) | (ir ? bit(61) : 0) |
                  (iw ? bit(62) : 0);
    uint64_t q1 = domain_id | put(gcr3_root >> 15, 31, 16) | (i ? bit(32) : 0) | (se ? bit(33) : 0) |
                  (sa ? bit(34) : 0) | put(ioctl, 36, 35) | (cache ? bit(37) : 0) | (sd ? bit(38) : 0) |
                  (ex ? bit(39) : 0) | put(sysmgt, 41, 40) | put(gcr3_root >> 31, 63, 43);
    uint64_t q2 = (iv ? bit(0) : 0) | put(int_tab_len, 4, 1) | (ig ? bit(5) : 0) | (irt_root & bits(51, 6)) |
                  put(gpm, 55, 54) | (init_pass ? bit(56) : 0) | (eint_pass ? bit(57) : 0) |
                  (nmi_pass ? bit(58) : 0) | put(intctl, 61, 60) | (lint0_pass ? bit(62) : 0) |
                  (lint1_pass ? bit(63) : 0);
    return {q0, q1, q2, q3};
}

Dte Dte::decode(const std::array<uint64_t, 4>& q) {
    Dte d;
    d.v = q[0] & bit(0);
    d.tv = q[0] & bit(1);
    d.had = static_cast<uint8_t>(field(q[0], 8, 7));
    d.mode = static_cast<uint8_t>(field(q[0], 11, 9));
    d.host_root = q[0] & bits(51, 12);
    d.ppr = q[0] & bit(52);
    d.gprp = q[0] & bit(53);
    d.giov = q[0] & bit(54);
    d.gv = q[0] & bit(55);
    d.glx = static_cast<uint8_t>(field(q[0], 57, 56));
    d.ir = q[0] & bit(61);
    d.iw = q[0] & bit(62);
    d.domain_id = static_cast<uint16_t>(q[1]);
    d.gcr3_root = (field(q[0], 60, 58) << 12) | (field(q[1], 31, 16) << 15) | (field(q[1], 63, 43) << 31);
    d.i = q[1] & bit(32);
    d.se = q[1] & bit(33);
    d.sa = q[1] & bit(34);
    d.ioctl = static_cast<uint8_t>(field(q[1], 36, 35));
    d.cache = q[1] & bit(37);
    d.sd = q[1] & bit(38);
    d.ex = q[1] & bit(39);
    d.sysmgt = static_cast<uint8_t>(field(q[1], 41, 40));
    d.iv = q[2] & bit(0);
    d.int_tab_len = static_cast<uint8_t>(field(q[2], 4, 1));
    d.ig = q[2] & bit(5);
    d.irt_root = q[2] & bits(51, 6);
    d.gpm = static_cast<uint8_t>(field(q[2], 55, 54));
    d.init_pass = q[2] & bit(56);
    d.eint_pass = q[2] & bit(57);
    d.nmi_pass = q[2] & bit(58);
    d.intctl = static_cast<uint8_t>(field(q[2], 61, 60));
    d.lint0_pass = q[2] & bit(62);
    d.lint1_pass = q[2] & bit(63);
    d.q3 = q[3];
    return d;
}

bool Dte::reserved_set(const std::array<uint64_t, 4>& q) {
    return (q[0] & kRsvdQ0) || (q[2] & kRsvdQ2) || (q[3] & kRsvdQ3);
}

uint16_t request_flags(const RequestInfo& r) {
    uint16_t f = 0;
    if (r.has_pasid) f |= evf::GN;
    if (r.execute) f |= evf::NX;
    if (r.has_pasid && !r.privileged) f |= evf::US;
    if (r.write) f |= evf::RW;
    if (r.type == RequestInfo::Type::translation_request) f |= evf::TR;
    return f;
}

DteCheck check_dte(const Dte& d, const std::array<uint64_t, 4>& raw, const AmdParams& caps, bool gt_enabled) {
    auto bad = [](const char* why, bool rz = false) { return DteCheck{true, rz, why}; };
    if (Dte::reserved_set(raw)) return bad("reserved bit set", true);
    const uint64_t too_wide = caps.output_bits >= 52 ? 0 : bits(51, caps.output_bits);
    if (d.mode == 7) return bad("Mode 7 is reserved");
    if (d.mode > caps.host_levels) return bad("Mode above EFR.HATS");
    if (d.mode != 0 && (d.host_root & too_wide)) return bad("host page-table root beyond the physical address width", true);
    if (d.had != 0 && !caps.host_access_dirty) return bad("HAD without EFR.HASup");
    if (d.ppr && !caps.ppr) return bad("PPR without EFR.PPRSup");
    if (d.giov && !caps.guest_io_protection) return bad("GIoV without EFR.GIoSup");
    if (d.gv) {
        if (!caps.guest_translation) return bad("GV without EFR.GTSup");
        if (!gt_enabled) return bad("GV with Control.GTEn clear");
        if (d.glx == 3 || d.glx > caps.glx_max) return bad("GLX above EFR.GLXSup");
        if (d.gpm > 1 || (d.gpm == 1 && caps.guest_levels < 5)) return bad("guest paging mode not supported (GATS)");
        if (d.gcr3_root & too_wide) return bad("GCR3 table root beyond the physical address width", true);
    }
    return {};
}

AmdTableReader::DteRead AmdTableReader::read_dte(mem::PhysMem& m, const DevTable& dt, uint16_t device_id) const {
    DteRead r;
    r.addr = dt.base + 32u * device_id;
    if (device_id >= dt.entries) {
        r.status = DteRead::Status::out_of_range;
        return r;
    }
    try {
        m.read(r.addr, r.raw.data(), 32);
    } catch (const mem::AddressError&) {
        r.status = DteRead::Status::bus_error;
        return r;
    }
    r.dte = Dte::decode(r.raw);
    return r;
}

AmdTableReader::Gcr3Read AmdTableReader::read_gcr3(mem::PhysMem& m, const Dte& d, uint32_t pasid,
                                                    const Stage2Fn* s2) const {
    Gcr3Read g;
    if (pasid >> gcr3::pasid_bits(d.glx) || pasid >> p_.pasid_bits) {
        g.status = Gcr3Read::Status::pasid_too_large;
        return g;
    }
    const uint64_t too_wide = p_.output_bits >= 52 ? 0 : bits(51, p_.output_bits);
    uint64_t table = d.gcr3_root;
    for (int level = d.glx; level >= 0; --level) {
        uint64_t idx = (pasid >> (gcr3::kIndexBits * static_cast<unsigned>(level))) & 0x1FF;
        uint64_t a = table + 8 * idx;
        if (s2 && d.mode != 0) { // nested: the GCR3 table lives in guest memory
            const Translation t = (*s2)(make_context(d, false, 0, 0), a);
            if (!t.ok()) {
                g.status = Gcr3Read::Status::s2_fault;
                g.fail_addr = a;
                return g;
            }
            a = t.output;
        }
        uint64_t e;
        ++g.reads;
        try {
            e = m.read_u64(a);
        } catch (const mem::AddressError&) {
            g.status = Gcr3Read::Status::bus_error;
            g.fail_addr = a;
            return g;
        }
        if (!(e & gcr3::V)) {
            g.status = Gcr3Read::Status::not_valid;
            g.fail_addr = a;
            return g;
        }
        // Bits 63:52 are reserved in every level (the pointer field is 51:12).
        if ((e & bits(63, 52)) || (e & too_wide)) {
            g.status = Gcr3Read::Status::reserved;
            g.fail_addr = a;
            return g;
        }
        table = e & bits(51, 12);
    }
    g.cr3 = table;
    return g;
}

TranslationContext AmdTableReader::make_context(const Dte& d, bool guest, uint32_t as_tag, uint64_t cr3) const {
    TranslationContext c;
    c.domain_tag = d.domain_id;
    c.as_tag = guest ? as_tag : 0;
    c.ats_allowed = d.i;
    c.pri_allowed = d.ppr;
    c.fault_suppress = d.sa;
    c.allow_supervisor = true; // AMD has no SRE: the guest table's U/S bit decides
    c.allow_execute = p_.nx;
    c.rights = perm::both(d.ir, d.iw, d.ir); // DTE.IR/IW: ANDed with every table's rights
    if (d.mode != 0) {
        StageConfig& s2 = c.s2;
        s2.enabled = true;
        s2.format = PtFormat::amd_v1;
        s2.levels = d.mode;
        s2.input_bits = static_cast<uint8_t>(d.mode == 6 ? 64 : 12 + 9 * d.mode);
        s2.root = d.host_root;
        s2.output_bits = p_.output_bits;
        s2.hw_access_dirty = d.had != 0 && p_.host_access_dirty;
        s2.execute_enable = false;
    }
    if (guest) {
        StageConfig& s1 = c.s1;
        s1.enabled = true;
        s1.format = PtFormat::x86_64;
        s1.levels = d.gpm == 1 ? 5 : 4;
        s1.input_bits = d.gpm == 1 ? 57 : 48;
        s1.root = cr3;
        // Under nesting the guest's outputs are GPAs bounded by the host table's input width.
        s1.output_bits = p_.output_bits;
        s1.hw_access_dirty = true; // the IOMMU sets A/D in v2 tables like the CPU
        s1.execute_enable = p_.nx;
    }
    return c;
}

Resolved AmdTableReader::resolve(mem::PhysMem& m, const DevTable& dt, const RequestInfo& r, bool gt_enabled,
                                 const Stage2Fn* s2) const {
    return resolve(m, read_dte(m, dt, r.device_id), r, gt_enabled, s2);
}

Resolved AmdTableReader::resolve(mem::PhysMem& m, const DteRead& dr, const RequestInfo& r, bool gt_enabled,
                                 const Stage2Fn* s2) const {
    Resolved res;
    const uint16_t flags = request_flags(r);
    if (dr.status == DteRead::Status::bus_error) {
        res.event = make_dev_tab_hw_error(r.device_id, dr.addr, flags, HwErrorType::master_abort);
        return res;
    }
    if (dr.status == DteRead::Status::out_of_range) {
        res.event = make_illegal_dte(r.device_id, r.pasid, r.addr, flags);
        return res;
    }
    res.reads = 1;
    res.dte = dr.dte;
    const Dte& d = dr.dte;
    if (!d.v || !d.tv) { // no translation information: untranslated, unchecked
        res.kind = Resolved::Kind::pass_through;
        res.ctx.pass_through = true;
        return res;
    }
    DteCheck chk = check_dte(d, dr.raw, p_, gt_enabled);
    if (chk.illegal) {
        res.event = make_illegal_dte(r.device_id, r.pasid, r.addr,
                                     static_cast<uint16_t>(flags | (chk.reserved ? evf::RZ : 0)));
        return res;
    }
    res.check_ir_iw = true;
    auto fault = [&](uint16_t extra) {
        res.kind = Resolved::Kind::event;
        res.event = make_io_page_fault(r.device_id, d.domain_id, r.pasid, r.addr, static_cast<uint16_t>(flags | extra));
        res.suppressed = d.sa;
        return res;
    };
    const bool guest = r.has_pasid || (d.gv && d.giov);
    if (!guest) {
        res.ctx = make_context(d, false, 0, 0);
        if (d.mode == 0) {
            res.kind = Resolved::Kind::pass_through;
            res.ctx.pass_through = true;
        } else {
            res.kind = Resolved::Kind::translate;
        }
        return res;
    }
    if (!d.gv) return fault(0); // PASID-tagged request without guest translation
    const uint32_t pasid = r.has_pasid ? r.pasid : 0;
    Gcr3Read g = read_gcr3(m, d, pasid, s2);
    res.reads += g.reads;
    switch (g.status) {
    case Gcr3Read::Status::ok: break;
    case Gcr3Read::Status::pasid_too_large:
    case Gcr3Read::Status::not_valid:
    case Gcr3Read::Status::s2_fault: return fault(0);
    case Gcr3Read::Status::reserved: return fault(evf::PR | evf::RZ);
    case Gcr3Read::Status::bus_error:
        res.event = make_page_tab_hw_error(r.device_id, d.domain_id, r.pasid, g.fail_addr, flags,
                                           HwErrorType::master_abort);
        return res;
    }
    res.kind = Resolved::Kind::translate;
    res.ctx = make_context(d, true, pasid, g.cr3);
    return res;
}

Translation AmdTableReader::apply_dte_rights(const Resolved& res, Translation t, const AccessRequest& req) {
    if (!t.ok() || !res.check_ir_iw) return t;
    const uint8_t mask = static_cast<uint8_t>(t.perms & res.ctx.rights);
    const uint8_t need = perm::needed(req.write, false, req.privileged);
    if ((mask & need) != need) {
        t.fault = FaultKind::permission;
        t.fault_addr = req.iova;
        return t;
    }
    t.set_rights(mask, req.privileged);
    return t;
}

std::optional<Event> AmdTableReader::check_ats(const Resolved& res, const RequestInfo& r) {
    using T = RequestInfo::Type;
    if (r.type != T::translation_request && r.type != T::translated) return std::nullopt;
    if (res.kind == Resolved::Kind::event || !res.check_ir_iw || res.dte.i) return std::nullopt;
    return make_invalid_device_request(r.device_id, r.pasid, r.addr, request_flags(r),
                                       r.type == T::translated ? InvalidRequestType::translated_not_allowed
                                                               : InvalidRequestType::translation_not_allowed);
}

AmdTableReader::PprOutcome AmdTableReader::page_request(const Resolved& res, const RequestInfo& r, bool read,
                                                        bool write, bool last, uint16_t prg_index,
                                                        bool ppr_enabled) {
    PprOutcome o;
    uint16_t f = 0;
    if (r.has_pasid) f |= pprf::GN;
    if (read) f |= pprf::READ;
    if (write) f |= pprf::WRITE;
    if (r.execute) f |= pprf::EXEC;
    if (!r.privileged) f |= pprf::US;
    const uint64_t page = r.addr & ~uint64_t{0xFFF};
    if (!ppr_enabled || res.kind == Resolved::Kind::event || !res.dte.v || !res.dte.ppr) {
        o.event = make_invalid_ppr_request(r.device_id, r.pasid, page, request_flags(r));
        return o;
    }
    o.entry = PprEntry{r.device_id, r.has_pasid ? r.pasid : 0, static_cast<uint16_t>(prg_index & 0x1FF), last, f,
                       kPprTypeFault, page};
    return o;
}

AmdTableReader::WalkFault AmdTableReader::walk_fault(FaultKind f) {
    switch (f) {
    case FaultKind::permission: return {EventCode::io_page_fault, evf::PR | evf::PE};
    case FaultKind::reserved_bits:
    case FaultKind::invalid_config: return {EventCode::io_page_fault, evf::PR | evf::RZ};
    case FaultKind::memory_error: return {EventCode::page_tab_hardware_error, 0};
    default: return {EventCode::io_page_fault, 0}; // not present, beyond the table's width, non-canonical: PR = 0
    }
}

Event AmdTableReader::walk_fault_event(const RequestInfo& r, const Resolved& res, const Translation& t) {
    const WalkFault w = walk_fault(t.fault);
    const auto flags = static_cast<uint16_t>(request_flags(r) | w.flags);
    if (w.code == EventCode::page_tab_hardware_error)
        return make_page_tab_hw_error(r.device_id, res.dte.domain_id, r.pasid, t.fault_addr, flags,
                                      HwErrorType::master_abort);
    return make_io_page_fault(r.device_id, res.dte.domain_id, r.pasid, r.addr, flags);
}

// ------------------------------------------------------------------ writer

AmdTableWriter::AmdTableWriter(mem::PhysMem& m, TableAllocator alloc, uint32_t devtab_pages)
    : m_(m), alloc_(std::move(alloc)), devtab_pages_(devtab_pages) {
    if (devtab_pages == 0 || devtab_pages > 512) throw std::invalid_argument("device table: 1..512 pages");
    // The base field is 4 KiB granular (51:12); that is all the unit requires.
    auto a = alloc_(uint64_t{4096} * devtab_pages, 4096);
    if (!a) throw std::runtime_error("device table: allocator refused");
    devtab_ = *a;
}

uint64_t AmdTableWriter::alloc_page() {
    auto a = alloc_(4096, 4096);
    if (!a) throw std::runtime_error("GCR3 table: allocator refused");
    return *a;
}

void AmdTableWriter::set_dte(uint16_t device_id, const Dte& d) {
    if (device_id >= devtab_pages_ * 128u) throw std::out_of_range("DeviceID beyond the device table");
    auto q = d.encode();
    const uint64_t a = dte_addr(device_id);
    // Linux update_dte256: the upper 128 bits first, then the lower half with V/TV.
    m_.write(a + 16, &q[2], 16);
    m_.write(a, &q[0], 16);
}

void AmdTableWriter::block_all() {
    Dte blocked;
    blocked.v = blocked.tv = true;
    const uint64_t q0 = blocked.encode()[0]; // the upper words of a fresh table are already 0
    for (uint32_t id = 0; id < devtab_pages_ * 128u; ++id) m_.write(dte_addr(static_cast<uint16_t>(id)), &q0, 8);
}

Dte AmdTableWriter::get_dte(uint16_t device_id) const {
    std::array<uint64_t, 4> q{};
    m_.read(dte_addr(device_id), q.data(), 32);
    return Dte::decode(q);
}

uint64_t AmdTableWriter::new_gcr3_table() { return alloc_page(); }

void AmdTableWriter::set_gcr3(uint64_t root, uint8_t glx, uint32_t pasid, uint64_t cr3) {
    uint64_t table = root;
    for (int level = glx; level > 0; --level) {
        uint64_t a = table + 8 * ((pasid >> (9u * static_cast<unsigned>(level))) & 0x1FF);
        uint64_t e = m_.read_u64(a);
        if (!(e & gcr3::V)) {
            e = alloc_page() | gcr3::V;
            m_.write_u64(a, e);
        }
        table = e & bits(51, 12);
    }
    m_.write_u64(table + 8 * (pasid & 0x1FF), (cr3 & bits(51, 12)) | gcr3::V);
}

std::optional<uint64_t> AmdTableWriter::gcr3_entry_addr(uint64_t root, uint8_t glx, uint32_t pasid) const {
    uint64_t table = root;
    for (int level = glx; level > 0; --level) {
        uint64_t e = m_.read_u64(table + 8 * ((pasid >> (9u * static_cast<unsigned>(level))) & 0x1FF));
        if (!(e & gcr3::V)) return std::nullopt;
        table = e & bits(51, 12);
    }
    return table + 8 * (pasid & 0x1FF);
}

void AmdTableWriter::clear_gcr3(uint64_t root, uint8_t glx, uint32_t pasid) {
    if (auto a = gcr3_entry_addr(root, glx, pasid)) m_.write_u64(*a, 0);
}

} // namespace iommusim::iommu::amd
