// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/amd/amd_events.hpp"

namespace iommusim::iommu::amd {

std::string_view to_string(EventCode c) {
    switch (c) {
    case EventCode::illegal_dev_table_entry: return "ILLEGAL_DEV_TABLE_ENTRY";
    case EventCode::io_page_fault: return "IO_PAGE_FAULT";
    case EventCode::dev_tab_hardware_error: return "DEV_TAB_HARDWARE_ERROR";
    case EventCode::page_tab_hardware_error: return "PAGE_TAB_HARDWARE_ERROR";
    case EventCode::illegal_command_error: return "ILLEGAL_COMMAND_ERROR";
    case EventCode::command_hardware_error: return "COMMAND_HARDWARE_ERROR";
    case EventCode::iotlb_inv_timeout: return "IOTLB_INV_TIMEOUT";
    case EventCode::invalid_device_request: return "INVALID_DEVICE_REQUEST";
    case EventCode::invalid_ppr_request: return "INVALID_PPR_REQUEST";
    }
    return "?";
}

namespace {
constexpr uint64_t kFlagsMask = 0xFFF;
// PASID split used by INVALID_PPR_REQUEST and the PPR log: [15:0] at 31:16, [19:16] at 45:42.
uint64_t ppr_style_pasid(uint32_t pasid) {
    return (uint64_t{pasid & 0xFFFFu} << 16) | (uint64_t{(pasid >> 16) & 0xFu} << 42);
}
uint32_t ppr_style_pasid(uint64_t q0) {
    return static_cast<uint32_t>(((q0 >> 16) & 0xFFFF) | (((q0 >> 42) & 0xF) << 16));
}
} // namespace

std::array<uint64_t, 2> Event::encode() const {
    uint64_t q0 = device_id | (uint64_t{flags & kFlagsMask} << 48) | (uint64_t{static_cast<uint8_t>(code)} << 60);
    if (code == EventCode::invalid_ppr_request) {
        q0 |= ppr_style_pasid(pasid);
    } else if (has_pasid()) {
        q0 |= (uint64_t{(pasid >> 16) & 0xFu} << 16) | (uint64_t{pasid & 0xFFFFu} << 32);
    } else {
        q0 |= uint64_t{domain_id} << 32;
    }
    return {q0, address};
}

std::optional<Event> Event::decode(const std::array<uint64_t, 2>& q) {
    unsigned code = static_cast<unsigned>(q[0] >> 60);
    if (code < 0x1 || code > 0x9) return std::nullopt;
    Event e;
    e.code = static_cast<EventCode>(code);
    e.device_id = static_cast<uint16_t>(q[0]);
    e.flags = static_cast<uint16_t>((q[0] >> 48) & kFlagsMask);
    e.address = q[1];
    if (e.code == EventCode::invalid_ppr_request) {
        e.pasid = ppr_style_pasid(q[0]);
    } else if (e.has_pasid()) {
        e.pasid = static_cast<uint32_t>(((q[0] >> 32) & 0xFFFF) | (((q[0] >> 16) & 0xF) << 16));
    } else {
        e.domain_id = static_cast<uint16_t>(q[0] >> 32);
    }
    return e;
}

// ILLEGAL_DEV_TABLE_ENTRY names the request (Linux prints its PASID); there is no DomainID to give.
Event make_illegal_dte(uint16_t dev, uint32_t pasid, uint64_t request_addr, uint16_t flags) {
    return {EventCode::illegal_dev_table_entry, dev, (flags & evf::GN) ? pasid : 0, 0, flags, request_addr};
}
Event make_io_page_fault(uint16_t dev, uint16_t domain, uint32_t pasid, uint64_t addr, uint16_t flags) {
    return {EventCode::io_page_fault, dev, (flags & evf::GN) ? pasid : 0, (flags & evf::GN) ? uint16_t{0} : domain,
            flags, addr};
}
Event make_dev_tab_hw_error(uint16_t dev, uint64_t dte_addr, uint16_t flags, HwErrorType t) {
    return {EventCode::dev_tab_hardware_error, dev, 0, 0,
            static_cast<uint16_t>((flags & ~evf::GN) | (static_cast<unsigned>(t) << evf::kTypeShift)), dte_addr};
}
Event make_page_tab_hw_error(uint16_t dev, uint16_t domain, uint32_t pasid, uint64_t table_addr, uint16_t flags,
                             HwErrorType t) {
    Event e = make_io_page_fault(dev, domain, pasid, table_addr, flags);
    e.code = EventCode::page_tab_hardware_error;
    e.flags = static_cast<uint16_t>(flags | (static_cast<unsigned>(t) << evf::kTypeShift));
    return e;
}
Event make_illegal_command(uint64_t command_addr) {
    return {EventCode::illegal_command_error, 0, 0, 0, 0, command_addr};
}
Event make_command_hw_error(uint64_t command_addr, HwErrorType t) {
    return {EventCode::command_hardware_error, 0, 0, 0, static_cast<uint16_t>(static_cast<unsigned>(t) << evf::kTypeShift),
            command_addr};
}
Event make_iotlb_inv_timeout(uint16_t dev, uint64_t command_addr) {
    return {EventCode::iotlb_inv_timeout, dev, 0, 0, 0, command_addr};
}
Event make_invalid_device_request(uint16_t dev, uint32_t pasid, uint64_t addr, uint16_t flags, InvalidRequestType t) {
    uint16_t f = static_cast<uint16_t>((flags & 0x1FF) | (static_cast<unsigned>(t) << evf::kTypeShift));
    return {EventCode::invalid_device_request, dev, (f & evf::GN) ? pasid : 0, 0, f, addr};
}
Event make_invalid_ppr_request(uint16_t dev, uint32_t pasid, uint64_t addr, uint16_t flags) {
    return {EventCode::invalid_ppr_request, dev, pasid, 0, flags, addr};
}

std::array<uint64_t, 2> PprEntry::encode() const {
    uint64_t tag = (prg_index & 0x1FFu) | (last ? 0x200u : 0u);
    uint64_t q0 = device_id | ppr_style_pasid(pasid) | (tag << 32) | (uint64_t{flags & kFlagsMask} << 48) |
                  (uint64_t{type & 0xFu} << 60);
    return {q0, address};
}

PprEntry PprEntry::decode(const std::array<uint64_t, 2>& q) {
    PprEntry p;
    p.device_id = static_cast<uint16_t>(q[0]);
    p.pasid = ppr_style_pasid(q[0]);
    uint64_t tag = (q[0] >> 32) & 0x3FF;
    p.prg_index = static_cast<uint16_t>(tag & 0x1FF);
    p.last = tag & 0x200;
    p.flags = static_cast<uint16_t>((q[0] >> 48) & kFlagsMask);
    p.type = static_cast<uint8_t>(q[0] >> 60);
    p.address = q[1];
    return p;
}

} // namespace iommusim::iommu::amd
