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
using namespace cmd_fields;
constexpr uint64_t op_bits(Opcode o) { return uint64_t{static_cast<uint8_t>(o)} << 60; }

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
    return decode_with(q, caps, [](const auto& x) -> Decoded {
        if constexpr (std::is_same_v<std::decay_t<decltype(x)>, CommandError>) return {x, {}};
        else return {CommandError::none, x};
    });
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
