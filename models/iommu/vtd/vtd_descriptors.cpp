// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/vtd/vtd_descriptors.hpp"

namespace iommusim::iommu::vtd {

namespace {
constexpr uint64_t kPageMask = ~uint64_t{0xFFF};
/// PFSID of the device-TLB descriptors (types 3 and 8): q0 15:12 and 63:52. Without
/// ECAP.DIT the field is reserved (Linux iommu_enable_pci_caps writes 0 then).
constexpr uint64_t kPfsidBits = 0xFFF0'0000'0000'F000ull;
constexpr bool bitv(uint64_t q, unsigned b) { return (q >> b) & 1; }
constexpr uint64_t b(bool v, unsigned pos) { return static_cast<uint64_t>(v) << pos; }
constexpr uint64_t f(uint64_t v, unsigned pos) { return v << pos; }

DecodeResult err(IqeReason r) {
    DecodeResult d;
    d.error = r;
    return d;
}
DecodeResult good(QiDescriptor x) {
    DecodeResult d;
    d.desc = std::move(x);
    return d;
}

/// ATS S-bit encoding (A.7.3): 2^order pages starting at addr (aligned).
uint64_t s_encode(uint64_t addr, unsigned order) {
    return pcie::AtsInvalidateRequest::for_range(pcie::Bdf{}, addr, order).address;
}
} // namespace

bool ContextCacheInv::matches(pcie::Bdf rid, uint16_t entry_did) const {
    switch (gran) {
    case Gran::global: return true;
    case Gran::domain: return entry_did == did;
    case Gran::device: {
        const uint16_t fmask = static_cast<uint16_t>(~((1u << fm) - 1u) | 0xFFF8u); // FM masks function bits only
        return (rid.raw & fmask) == (sid & fmask);
    }
    }
    return false;
}

bool PasidCacheInv::matches(uint16_t entry_did, uint32_t entry_pasid) const {
    switch (gran) {
    case Gran::global: return true;
    case Gran::domain: return entry_did == did;
    case Gran::pasid: return entry_did == did && entry_pasid == pasid;
    }
    return false;
}

DecodeResult decode_descriptor(const std::array<uint64_t, 4>& q, bool wide, const VtdParams& caps) {
    const uint64_t q0 = q[0], q1 = q[1];
    const uint8_t type = descriptor_type(q0);
    if (!wide && ((q0 >> 9) & 7)) return err(IqeReason::invalid_type);
    // In 256-bit mode the upper half is reserved except for page-response private data.
    if (wide && type != desc_type::kPageGroupResponse && (q[2] || q[3])) return err(IqeReason::reserved_field);
    const unsigned gran = static_cast<unsigned>((q0 >> 4) & 3);

    switch (type) {
    case desc_type::kContextCache: {
        if ((q0 & 0xFFFC'0000'0000'F1C0ull) || q1) return err(IqeReason::reserved_field);
        if (gran == 0) return err(IqeReason::reserved_field);
        ContextCacheInv d;
        d.gran = static_cast<ContextCacheInv::Gran>(gran);
        d.did = static_cast<uint16_t>(q0 >> 16);
        d.sid = static_cast<uint16_t>(q0 >> 32);
        d.fm = static_cast<uint8_t>((q0 >> 48) & 3);
        return good(d);
    }
    case desc_type::kIotlb:
    case desc_type::kPasidIotlb: {
        const bool pasid_based = type == desc_type::kPasidIotlb;
        const uint64_t rsvd0 = pasid_based ? 0xFFF0'0000'0000'F1C0ull : 0xFFFF'FFFF'0000'F100ull;
        if ((q0 & rsvd0) || (q1 & 0xF80)) return err(IqeReason::reserved_field);
        IotlbInv d;
        d.pasid_based = pasid_based;
        InvalidationScope& s = d.scope;
        s.domain_tag = static_cast<uint16_t>(q0 >> 16);
        const uint8_t am = static_cast<uint8_t>(q1 & 0x3F);
        const uint64_t addr = q1 & kPageMask;
        const bool page = gran == 3;
        if (page && (am > caps.mamv || (addr & ((uint64_t{4096} << am) - 1)))) return err(IqeReason::reserved_field);
        if (!pasid_based) {
            d.drain_reads = bitv(q0, 7);
            d.drain_writes = bitv(q0, 6);
            // Type 2 in scalable mode covers second-stage-only and nested (combined) entries;
            // a global flush covers everything (§6.5.2.3, A.7.2 note).
            if (gran == 0) return err(IqeReason::reserved_field);
            if (gran == 1) {
                s.kind = InvalidationScope::Kind::all;
            } else if (gran == 2) {
                s.kind = InvalidationScope::Kind::domain;
                s.stage = InvalidationScope::Stage::s2;
            } else {
                s.kind = InvalidationScope::Kind::range;
                s.stage = InvalidationScope::Stage::s2;
            }
        } else {
            // Type 6: first-stage-only and nested entries of (DID, PASID) (§6.5.2.4).
            if (gran < 2) return err(IqeReason::reserved_field);
            s.has_as = true;
            s.as_tag = static_cast<uint32_t>((q0 >> 32) & pcie::kPasidMask);
            s.stage = InvalidationScope::Stage::s1;
            if (gran == 2) {
                s.kind = InvalidationScope::Kind::domain_as;
                s.include_global = false; // "all non-global mappings" (A.7.4)
            } else {
                s.kind = InvalidationScope::Kind::range;
            }
        }
        if (page) {
            s.addr = addr;
            // 2^AM pages; with AM >= 52 that is the whole 64-bit space (addr is then 0).
            s.size = am >= 52 ? ~uint64_t{0} : uint64_t{4096} << am;
            s.leaf_only = bitv(q1, 6);
        }
        return good(d);
    }
    case desc_type::kDevTlb: {
        if ((q0 & 0x000F'0000'FFE0'01F0ull) || (q1 & 0xFFE) || (!caps.dit && (q0 & kPfsidBits)))
            return err(IqeReason::reserved_field);
        DevTlbInv d;
        d.request.target = pcie::Bdf(static_cast<uint16_t>(q0 >> 32));
        d.request.address = q1 & kPageMask;
        d.request.s = bitv(q1, 0);
        d.mip = static_cast<uint8_t>((q0 >> 16) & 0x1F);
        d.pfsid = static_cast<uint16_t>(((q0 >> 12) & 0xF) | ((q0 >> 52) & 0xFFF) << 4);
        return good(d);
    }
    case desc_type::kPasidDevTlb: {
        if ((q0 & 0x0E00) || (q1 & 0x7FE) || (!caps.dit && (q0 & kPfsidBits))) return err(IqeReason::reserved_field);
        DevTlbInv d;
        d.request.target = pcie::Bdf(static_cast<uint16_t>(q0 >> 16));
        d.request.pasid_present = true;
        d.request.pasid = static_cast<uint32_t>((q0 >> 32) & pcie::kPasidMask);
        d.request.global = bitv(q1, 0);
        d.request.s = bitv(q1, 11);
        d.request.address = q1 & kPageMask;
        d.mip = static_cast<uint8_t>((q0 >> 4) & 0x1F);
        d.pfsid = static_cast<uint16_t>(((q0 >> 12) & 0xF) | ((q0 >> 52) & 0xFFF) << 4);
        return good(d);
    }
    case desc_type::kIec: {
        if ((q0 & 0xFFFF'0000'07FF'F1E0ull) || q1) return err(IqeReason::reserved_field);
        IecInv d;
        d.global = !bitv(q0, 4);
        d.im = static_cast<uint8_t>((q0 >> 27) & 0x1F);
        d.index = static_cast<uint16_t>(q0 >> 32);
        return good(d);
    }
    case desc_type::kWait: {
        // Reserved: q0[31:12], q0[8], PD without CAP support; q1[1:0] (A.7.7).
        const uint64_t rsvd = 0xFFFF'F100ull | (caps.page_request_drain ? 0 : 0x80);
        if ((q0 & rsvd) || (q1 & 3)) return err(IqeReason::reserved_field);
        WaitDesc d;
        d.interrupt = bitv(q0, 4);
        d.status_write = bitv(q0, 5);
        d.fence = bitv(q0, 6);
        d.page_drain = bitv(q0, 7);
        d.status_data = static_cast<uint32_t>(q0 >> 32);
        d.status_addr = q1 & ~uint64_t{3};
        return good(d);
    }
    case desc_type::kPasidCache: {
        if ((q0 & 0xFFF0'0000'0000'F1C0ull) || q1) return err(IqeReason::reserved_field);
        if (gran == 2) return err(IqeReason::reserved_field);
        PasidCacheInv d;
        d.gran = static_cast<PasidCacheInv::Gran>(gran);
        d.did = static_cast<uint16_t>(q0 >> 16);
        d.pasid = static_cast<uint32_t>((q0 >> 32) & pcie::kPasidMask);
        return good(d);
    }
    case desc_type::kPageGroupResponse: {
        if (!wide) return err(IqeReason::invalid_width); // carries 256 bits (private data)
        if ((q0 & 0xFFF0'0000'0000'0FC0ull) || (q1 & ~uint64_t{0xFFC})) return err(IqeReason::reserved_field);
        const uint8_t rc = static_cast<uint8_t>((q0 >> 12) & 0xF);
        if (rc != 0x0 && rc != 0x1 && rc != 0xF) return err(IqeReason::reserved_field);
        PageGroupResponse d;
        d.response.pasid_present = bitv(q0, 4);
        d.private_data_present = bitv(q0, 5);
        d.response.code = static_cast<pcie::PrgResponseCode>(rc);
        d.response.destination = pcie::Bdf(static_cast<uint16_t>(q0 >> 16));
        d.response.pasid = static_cast<uint32_t>((q0 >> 32) & pcie::kPasidMask);
        d.last_in_group = bitv(q1, 2);
        d.response.prg_index = static_cast<uint16_t>((q1 >> 3) & 0x1FF);
        d.private_data = {q[2], q[3]};
        return good(d);
    }
    default: return err(IqeReason::invalid_type);
    }
}

// ---- encoders ------------------------------------------------------------------

RawDesc encode_context_cache(ContextCacheInv::Gran g, uint16_t did, uint16_t sid, uint8_t fm) {
    return {desc_type::kContextCache | f(static_cast<uint64_t>(g), 4) | f(did, 16) | f(sid, 32) | f(fm & 3u, 48), 0, 0, 0};
}
RawDesc encode_iotlb_global(bool dr, bool dw) {
    return {desc_type::kIotlb | f(1, 4) | b(dw, 6) | b(dr, 7), 0, 0, 0};
}
RawDesc encode_iotlb_domain(uint16_t did, bool dr, bool dw) {
    return {desc_type::kIotlb | f(2, 4) | b(dw, 6) | b(dr, 7) | f(did, 16), 0, 0, 0};
}
RawDesc encode_iotlb_page(uint16_t did, uint64_t addr, uint8_t am, bool ih, bool dr, bool dw) {
    return {desc_type::kIotlb | f(3, 4) | b(dw, 6) | b(dr, 7) | f(did, 16),
            (addr & kPageMask) | b(ih, 6) | (am & 0x3Fu), 0, 0};
}
RawDesc encode_pasid_iotlb_all(uint16_t did, uint32_t pasid) {
    return {desc_type::kPasidIotlb | f(2, 4) | f(did, 16) | f(pasid & pcie::kPasidMask, 32), 0, 0, 0};
}
RawDesc encode_pasid_iotlb_page(uint16_t did, uint32_t pasid, uint64_t addr, uint8_t am, bool ih) {
    return {desc_type::kPasidIotlb | f(3, 4) | f(did, 16) | f(pasid & pcie::kPasidMask, 32),
            (addr & kPageMask) | b(ih, 6) | (am & 0x3Fu), 0, 0};
}
RawDesc encode_pasid_cache(PasidCacheInv::Gran g, uint16_t did, uint32_t pasid) {
    return {desc_type::kPasidCache | f(static_cast<uint64_t>(g), 4) | f(did, 16) | f(pasid & pcie::kPasidMask, 32),
            0, 0, 0};
}
RawDesc encode_dev_tlb(uint16_t sid, uint64_t addr, unsigned order, uint8_t mip, uint16_t pfsid) {
    return {desc_type::kDevTlb | f(pfsid & 0xFu, 12) | f(mip & 0x1Fu, 16) | f(sid, 32) | f((pfsid >> 4) & 0xFFFu, 52),
            s_encode(addr, order) | b(order > 0, 0), 0, 0};
}
RawDesc encode_pasid_dev_tlb(uint16_t sid, uint32_t pasid, uint64_t addr, unsigned order, bool global, uint8_t mip,
                             uint16_t pfsid) {
    return {desc_type::kPasidDevTlb | f(mip & 0x1Fu, 4) | f(pfsid & 0xFu, 12) | f(sid, 16) |
                f(pasid & pcie::kPasidMask, 32) | f((pfsid >> 4) & 0xFFFu, 52),
            s_encode(addr, order) | b(order > 0, 11) | b(global, 0), 0, 0};
}
RawDesc encode_wait(bool status_write, uint64_t status_addr, uint32_t status_data, bool interrupt, bool fence,
                    bool page_drain) {
    return {desc_type::kWait | b(interrupt, 4) | b(status_write, 5) | b(fence, 6) | b(page_drain, 7) |
                f(status_data, 32),
            status_addr & ~uint64_t{3}, 0, 0};
}
RawDesc encode_page_request(const pcie::PageRequest& pr) {
    return {0x1 | b(pr.pasid_present, 8) | f(pr.requester.raw, 16) | f(pr.pasid & pcie::kPasidMask, 32) |
                b(pr.execute, 52) | b(pr.privileged, 53),
            b(pr.read, 0) | b(pr.write, 1) | b(pr.last, 2) | f(pr.prg_index & 0x1FFu, 3) | (pr.address & ~uint64_t{0xFFF}),
            0, 0};
}

RawDesc encode_page_group_response(uint16_t rid, bool pasid_present, uint32_t pasid, uint16_t prg_index,
                                   pcie::PrgResponseCode code, bool private_data_present,
                                   std::array<uint64_t, 2> private_data) {
    return {desc_type::kPageGroupResponse | b(pasid_present, 4) | b(private_data_present, 5) |
                f(static_cast<uint64_t>(code) & 0xFu, 12) | f(rid, 16) | f(pasid & pcie::kPasidMask, 32),
            f(prg_index & 0x1FFu, 3) | b(true, 2), private_data[0], private_data[1]};
}

} // namespace iommusim::iommu::vtd
