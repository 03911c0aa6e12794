// SPDX-License-Identifier: Apache-2.0
#pragma once
// AMD-Vi event-log and PPR-log records (128-bit each), encode and decode.
//
// Fidelity: the common event layout of shared/reference/spec-layouts.md B.5
// (DeviceID 15:0, PASID[19:16] 19:16, DomainID-or-PASID[15:0] 47:32, flags 59:48,
// EventCode 63:60, address 127:64) as Linux iommu_print_event() reads it, with
// INVALID_PPR_REQUEST's PASID at 31:16 / 45:42; the PPR log entry of B.6
// (DeviceID, PASID 31:16 + 45:42, 10-bit tag 41:32 whose bit 9 is "last page in
// group" as Linux ppr/iommu_v2 reads it, flags 59:48, type 63:60, address).
// IO_PAGE_FAULT flags GN 48, NX 49, US 50, I 51, PR 52, RW 53, PE 54, RZ 55, TR 56
// (I, PR, RW, TR: Linux EVENT_FLAG_*; all nine: FreeBSD amdiommu
// amdiommu_event_io_page_fault_entry, illumos amd_iommu_log.h). The hardware-error
// Type (58:57) is 1 master abort, 2 target abort, 3 data error (0 reserved), and
// INVALID_DEVICE_REQUEST's type (59:57) is read together with TR (illumos
// amd_iommu_log.c get_hw_error / get_illegal_req, which follow the spec's tables).
// Not modelled: RMP events (0xD/0xE, SEV-SNP), the GA log.
#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace iommusim::iommu::amd {

enum class EventCode : uint8_t {
    illegal_dev_table_entry = 0x1,
    io_page_fault = 0x2,
    dev_tab_hardware_error = 0x3,
    page_tab_hardware_error = 0x4,
    illegal_command_error = 0x5,
    command_hardware_error = 0x6,
    iotlb_inv_timeout = 0x7,
    invalid_device_request = 0x8,
    invalid_ppr_request = 0x9,
};
std::string_view to_string(EventCode c);

/// Event flag bits, relative to bit 48 of the record (Linux EVENT_FLAG_* style).
namespace evf {
inline constexpr uint16_t GN = 1u << 0, NX = 1u << 1, US = 1u << 2, I = 1u << 3, PR = 1u << 4, RW = 1u << 5,
                          PE = 1u << 6, RZ = 1u << 7, TR = 1u << 8;
inline constexpr unsigned kTypeShift = 9; ///< hardware-error type (2 bits) / invalid-device-request type (3 bits)
} // namespace evf

/// Hardware-error type of DEV_TAB / PAGE_TAB / COMMAND_HARDWARE_ERROR (58:57; 0 is reserved).
enum class HwErrorType : uint8_t { master_abort = 1, target_abort = 2, data_error = 3 };

/// INVALID_DEVICE_REQUEST reasons this model raises (type 59:57, meaning depends on TR).
enum class InvalidRequestType : uint8_t {
    translation_not_allowed = 0, ///< TR = 1: ATS translation request from a device with I = 0 (or V = 0)
    translated_not_allowed = 1,  ///< TR = 0: translated (AT=10b) request from a device with I = 0 (or V = 0)
};

/// One event-log record, decoded.
struct Event {
    EventCode code = EventCode::io_page_fault;
    uint16_t device_id = 0;
    /// PASID (when flags has GN, or for INVALID_PPR_REQUEST); otherwise 47:32 holds domain_id.
    uint32_t pasid = 0;
    uint16_t domain_id = 0;
    uint16_t flags = 0;     ///< 12 bits, evf:: and the type field
    uint64_t address = 0;

    bool has_pasid() const { return (flags & evf::GN) || code == EventCode::invalid_ppr_request; }
    std::array<uint64_t, 2> encode() const;
    /// nullopt for an unknown event code.
    static std::optional<Event> decode(const std::array<uint64_t, 2>& q);
    friend bool operator==(const Event&, const Event&) = default;
};

// Builders for the records the unit writes (the fields each event carries).
Event make_illegal_dte(uint16_t dev, uint32_t pasid, uint64_t request_addr, uint16_t flags);
Event make_io_page_fault(uint16_t dev, uint16_t domain, uint32_t pasid, uint64_t addr, uint16_t flags);
Event make_dev_tab_hw_error(uint16_t dev, uint64_t dte_addr, uint16_t flags, HwErrorType t);
Event make_page_tab_hw_error(uint16_t dev, uint16_t domain, uint32_t pasid, uint64_t table_addr, uint16_t flags,
                             HwErrorType t);
Event make_illegal_command(uint64_t command_addr);
Event make_command_hw_error(uint64_t command_addr, HwErrorType t);
Event make_iotlb_inv_timeout(uint16_t dev, uint64_t command_addr);
Event make_invalid_device_request(uint16_t dev, uint32_t pasid, uint64_t addr, uint16_t flags, InvalidRequestType t);
Event make_invalid_ppr_request(uint16_t dev, uint32_t pasid, uint64_t addr, uint16_t flags);

/// PPR log flag bits, relative to bit 48 (Linux PPR_FLAG_*).
namespace pprf {
inline constexpr uint16_t EXEC = 0x002, READ = 0x004, WRITE = 0x020, US = 0x040, RSVD = 0x080, GN = 0x100;
}
inline constexpr uint8_t kPprTypeFault = 0x1; ///< PPR_REQ_FAULT: a page service request

/// One PPR-log record (a PCIe Page Request as the IOMMU logs it).
struct PprEntry {
    uint16_t device_id = 0;
    uint32_t pasid = 0;
    uint16_t prg_index = 0;  ///< 9-bit page request group index (tag bits 8:0)
    bool last = false;       ///< last page in group (tag bit 9)
    uint16_t flags = 0;      ///< pprf::
    uint8_t type = kPprTypeFault;
    uint64_t address = 0;    ///< page address (bits 11:0 zero)

    std::array<uint64_t, 2> encode() const;
    static PprEntry decode(const std::array<uint64_t, 2>& q);
    friend bool operator==(const PprEntry&, const PprEntry&) = default;
};

} // namespace iommusim::iommu::amd
