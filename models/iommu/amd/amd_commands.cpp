// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/amd/amd_commands.hpp"

#include <bit>

#include "models/iommu/common/pt_format.hpp"

namespace iommusim::iommu::amd {

std::string_view to_string(Opcode o) {
    switch (o) {
    case Opcode::completion_wait: return "COMPLETION_WAIT";
    case Opcode::invalidate_devtab_entry: return "INVALIDATE_DEVTAB_ENTRY";
    case Opcode::invalidate_iommu_pages: return "INVALIDATE_IOMMU_PAGES";
    case Opcode::invalidate_iotlb_pages: return "INVALIDATE_IOTLB_PAGES";
    case Opcode::invalidate_interrupt_table: return "INVALIDATE_INTERRUPT_TABLE";
    case Opcode::prefetch_iommu_pages: return "PREFETCH_IOMMU_PAGES";
    case Opcode::complete_ppr_request: return "COMPLETE_PPR_REQUEST";
    case Opcode::invalidate_iommu_all: return "INVALIDATE_IOMMU_ALL";
    }
    return "?";
}

std::string_view to_string(CommandError e) {
    switch (e) {
    case CommandError::none: return "none";
    case CommandError::bad_opcode: return "illegal opcode";
    case CommandError::reserved_bits: return "reserved bits set";
    case CommandError::unsupported: return "command not supported by EFR";
    }
    return "?";
}

namespace {
constexpr uint64_t op_bits(Opcode o) { return uint64_t{static_cast<uint8_t>(o)} << 60; }
constexpr uint64_t kAddrMask = bits(63, 12);
constexpr uint64_t kS = uint64_t{1} << 0, kPde = uint64_t{1} << 1, kGn = uint64_t{1} << 2; // q1 flag bits

Decoded illegal(CommandError e) { return {e, {}}; }
Decoded ok(Command c) { return {CommandError::none, c}; }
} // namespace

std::array<uint64_t, 2> encode(const CompletionWait& c) {
    uint64_t q0 = op_bits(Opcode::completion_wait) | (c.store ? 1u : 0u) | (c.interrupt ? 2u : 0u) |
                  (c.fence ? 4u : 0u) | (c.store_addr & bits(51, 3));
    return {q0, c.store_data};
}
std::array<uint64_t, 2> encode(const InvalidateDevtabEntry& c) {
    return {op_bits(Opcode::invalidate_devtab_entry) | c.device_id, 0};
}
std::array<uint64_t, 2> encode(const InvalidateIommuPages& c) {
    uint64_t q0 = op_bits(Opcode::invalidate_iommu_pages) | (c.pasid & 0xFFFFFu) | (uint64_t{c.domain_id} << 32);
    uint64_t q1 = (c.address & kAddrMask) | (c.s ? kS : 0) | (c.pde ? kPde : 0) | (c.gn ? kGn : 0);
    return {q0, q1};
}
std::array<uint64_t, 2> encode(const InvalidateIotlbPages& c) {
    uint64_t q0 = op_bits(Opcode::invalidate_iotlb_pages) | c.device_id | (uint64_t{(c.pasid >> 8) & 0xFFu} << 16) |
                  (uint64_t{c.max_pend} << 24) | (uint64_t{c.queue_id} << 32) |
                  (uint64_t{c.pasid & 0xFFu} << 48) | (uint64_t{(c.pasid >> 16) & 0xFu} << 56);
    uint64_t q1 = (c.address & kAddrMask) | (c.s ? kS : 0) | (c.gn ? kGn : 0) | (uint64_t{c.type & 3u} << 4);
    return {q0, q1};
}
std::array<uint64_t, 2> encode(const InvalidateInterruptTable& c) {
    return {op_bits(Opcode::invalidate_interrupt_table) | c.device_id, 0};
}
std::array<uint64_t, 2> encode(const PrefetchIommuPages& c) {
    uint64_t q0 = op_bits(Opcode::prefetch_iommu_pages) | c.device_id | (uint64_t{c.count} << 24) |
                  (uint64_t{c.pasid & 0xFFFFFu} << 32);
    uint64_t q1 = (c.address & kAddrMask) | (c.s ? kS : 0) | (c.gn ? kGn : 0) | (c.inval ? uint64_t{1} << 4 : 0);
    return {q0, q1};
}
std::array<uint64_t, 2> encode(const CompletePprRequest& c) {
    uint64_t q0 = op_bits(Opcode::complete_ppr_request) | c.device_id | (uint64_t{c.pasid & 0xFFFFFu} << 32);
    uint64_t q1 = (c.gn ? kGn : 0) | (uint64_t{c.tag & 0x1FFu} << 32) | (uint64_t{c.status & 0xFu} << 44);
    return {q0, q1};
}
std::array<uint64_t, 2> encode(const InvalidateIommuAll&) {
    return {op_bits(Opcode::invalidate_iommu_all), 0};
}

Opcode opcode_of(const Command& c) {
    return static_cast<Opcode>(encode(c)[0] >> 60);
}

std::array<uint64_t, 2> encode(const Command& c) {
    return std::visit([](const auto& x) { return encode(x); }, c);
}

Decoded decode(const std::array<uint64_t, 2>& q, const AmdParams& caps) {
    const uint64_t q0 = q[0], q1 = q[1];
    switch (static_cast<unsigned>(q0 >> 60)) {
    case 0x1: {
        if (q0 & bits(59, 52)) return illegal(CommandError::reserved_bits);
        CompletionWait c;
        c.store = q0 & 1;
        c.interrupt = q0 & 2;
        c.fence = q0 & 4;
        c.store_addr = q0 & bits(51, 3);
        c.store_data = q1;
        return ok(c);
    }
    case 0x2:
        if ((q0 & bits(59, 16)) || q1) return illegal(CommandError::reserved_bits);
        return ok(InvalidateDevtabEntry{static_cast<uint16_t>(q0)});
    case 0x3: {
        if ((q0 & (bits(31, 20) | bits(59, 48))) || (q1 & bits(11, 3))) return illegal(CommandError::reserved_bits);
        InvalidateIommuPages c;
        c.pasid = static_cast<uint32_t>(q0 & 0xFFFFF);
        c.domain_id = static_cast<uint16_t>(q0 >> 32);
        c.s = q1 & kS;
        c.pde = q1 & kPde;
        c.gn = q1 & kGn;
        c.address = q1 & kAddrMask;
        return ok(c);
    }
    case 0x4: {
        if (q1 & (uint64_t{1} << 1 | uint64_t{1} << 3 | bits(11, 6))) return illegal(CommandError::reserved_bits);
        InvalidateIotlbPages c;
        c.device_id = static_cast<uint16_t>(q0);
        c.pasid = static_cast<uint32_t>(((q0 >> 16) & 0xFF) << 8 | ((q0 >> 48) & 0xFF) | ((q0 >> 56) & 0xF) << 16);
        c.max_pend = static_cast<uint8_t>(q0 >> 24);
        c.queue_id = static_cast<uint16_t>(q0 >> 32);
        c.s = q1 & kS;
        c.gn = q1 & kGn;
        c.type = static_cast<uint8_t>((q1 >> 4) & 3);
        c.address = q1 & kAddrMask;
        return ok(c);
    }
    case 0x5:
        if ((q0 & bits(59, 16)) || q1) return illegal(CommandError::reserved_bits);
        return ok(InvalidateInterruptTable{static_cast<uint16_t>(q0)});
    case 0x6: {
        if (!caps.prefetch) return illegal(CommandError::unsupported);
        if ((q0 & (bits(23, 16) | bits(59, 52))) || (q1 & (uint64_t{1} << 1 | uint64_t{1} << 3 | bits(11, 5))))
            return illegal(CommandError::reserved_bits);
        PrefetchIommuPages c;
        c.device_id = static_cast<uint16_t>(q0);
        c.count = static_cast<uint8_t>(q0 >> 24);
        c.pasid = static_cast<uint32_t>((q0 >> 32) & 0xFFFFF);
        c.s = q1 & kS;
        c.gn = q1 & kGn;
        c.inval = q1 & (uint64_t{1} << 4);
        c.address = q1 & kAddrMask;
        return ok(c);
    }
    case 0x7: {
        if (!caps.ppr) return illegal(CommandError::unsupported);
        if ((q0 & (bits(31, 16) | bits(59, 52))) ||
            (q1 & (bits(1, 0) | bits(31, 3) | bits(43, 41) | bits(63, 48))))
            return illegal(CommandError::reserved_bits);
        CompletePprRequest c;
        c.device_id = static_cast<uint16_t>(q0);
        c.pasid = static_cast<uint32_t>((q0 >> 32) & 0xFFFFF);
        c.gn = q1 & kGn;
        c.tag = static_cast<uint16_t>((q1 >> 32) & 0x1FF);
        c.status = static_cast<uint8_t>((q1 >> 44) & 0xF);
        // PCIe defines response codes 0 (success), 1 (invalid request) and 0xF (failure) only.
        if (c.status != ppr_status::kSuccess && c.status != ppr_status::kInvalid && c.status != ppr_status::kFailure)
            return illegal(CommandError::reserved_bits);
        return ok(c);
    }
    case 0x8:
        if (!caps.invalidate_all) return illegal(CommandError::unsupported);
        if ((q0 & bits(59, 0)) || q1) return illegal(CommandError::reserved_bits);
        return ok(InvalidateIommuAll{});
    default:
        return illegal(CommandError::bad_opcode);
    }
}



InvalidateIotlbPages linux_inv_iotlb_pages(uint16_t device_id, uint8_t qdep, uint64_t address, uint64_t size,
                                           uint32_t pasid) {
    EncodedRange r = encode_range(address, size);
    InvalidateIotlbPages c;
    c.device_id = device_id;
    c.queue_id = device_id;
    c.max_pend = qdep;
    c.address = r.address;
    c.s = r.s;
    c.gn = pasid != 0;
    c.pasid = pasid;
    return c;
}

CompletionWait linux_completion_wait(uint64_t sem_addr, uint64_t seq) {
    CompletionWait c;
    c.store = true;
    c.store_addr = sem_addr;
    c.store_data = seq;
    return c;
}

InvalidationScope to_scope(const InvalidateIommuPages& c) {
    InvalidationScope s;
    s.domain_tag = c.domain_id;
    s.stage = c.gn ? InvalidationScope::Stage::s1 : InvalidationScope::Stage::s2;
    s.has_as = c.gn;
    s.as_tag = c.gn ? c.pasid : 0;
    s.leaf_only = !c.pde;
    PageRange r = decode_range(c.address, c.s);
    if (r.all) {
        s.kind = c.gn ? InvalidationScope::Kind::domain_as : InvalidationScope::Kind::domain;
    } else {
        s.kind = InvalidationScope::Kind::range;
        s.addr = r.base;
        s.size = r.size;
    }
    return s;
}

InvalidationScope to_scope(const InvalidateIommuAll&) {
    InvalidationScope s;
    s.kind = InvalidationScope::Kind::all;
    return s;
}

} // namespace iommusim::iommu::amd
