// SPDX-License-Identifier: Apache-2.0
#pragma once
// AMD-Vi command-buffer commands (128-bit, opcode in bits 63:60): decode with
// the architected legality checks, encode (for the host driver and tests), the
// S-bit range encoding, and the mapping of INVALIDATE_IOMMU_PAGES /
// INVALIDATE_IOMMU_ALL onto the core's InvalidationScope.
//
// Fidelity: layouts of shared/reference/spec-layouts.md B.4 as Linux
// drivers/iommu/amd/iommu.c builds them (build_completion_wait,
// build_inv_dte, build_inv_iommu_pages with PDE always set, build_inv_iotlb_pages
// with PASID[15:8] at 23:16 and [7:0] at 55:48, build_complete_ppr,
// build_inv_all, build_inv_irt). Reserved fields as QEMU hw/i386/amd_iommu.c
// checks them, made fatal as the spec requires (an illegal command stops the
// buffer with ILLEGAL_COMMAND_ERROR): COMPLETION_WAIT 59:52; INVALIDATE_DEVTAB_ENTRY
// and INVALIDATE_INTERRUPT_TABLE 127:64 and 59:16; INVALIDATE_IOMMU_PAGES 31:20,
// 59:48, 75:67; INVALIDATE_IOTLB_PAGES 65, 67, 75:70; COMPLETE_PPR_REQUEST 31:16,
// 59:52, 65:64, 95:67, 107:105, 127:112 and a Status other than 0, 1, 0xF (the PCIe PRG
// Response codes); INVALIDATE_IOMMU_ALL everything but the
// opcode. Opcodes 0 and 9-15 are illegal, and so are INVALIDATE_IOMMU_ALL without
// EFR.IASup, PREFETCH_IOMMU_PAGES without PreFSup and COMPLETE_PPR_REQUEST without
// PPRSup. Second-source fields: COMPLETION_WAIT F (bit 2), INVALIDATE_IOTLB_PAGES
// PASID[19:16] at 59:56 and Type 69:68 (accepted, type ignored), the PREFETCH
// layout (QEMU: DeviceID 15:0, PFCount 31:24, PASID 51:32, S 64, GN 66, Inval 68).
#include <array>
#include <bit>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <variant>

#include "models/iommu/amd/amd_params.hpp"
#include "models/iommu/common/pt_format.hpp"
#include "models/iommu/common/translation.hpp"

namespace iommusim::iommu::amd {

enum class Opcode : uint8_t {
    completion_wait = 0x1,
    invalidate_devtab_entry = 0x2,
    invalidate_iommu_pages = 0x3,
    invalidate_iotlb_pages = 0x4,
    invalidate_interrupt_table = 0x5,
    prefetch_iommu_pages = 0x6,
    complete_ppr_request = 0x7,
    invalidate_iommu_all = 0x8,
};
std::string_view to_string(Opcode o);

struct CompletionWait {
    bool store = false;      ///< S: write store_data to store_addr when all earlier commands completed
    bool interrupt = false;  ///< I: set Status.ComWaitInt (MSI if Control.ComWaitIntEn)
    bool fence = false;      ///< F: later commands wait for this one
    uint64_t store_addr = 0; ///< 8-byte aligned, bits 51:3
    uint64_t store_data = 0;
    friend bool operator==(const CompletionWait&, const CompletionWait&) = default;
};
struct InvalidateDevtabEntry {
    uint16_t device_id = 0;
    friend bool operator==(const InvalidateDevtabEntry&, const InvalidateDevtabEntry&) = default;
};
struct InvalidateIommuPages {
    uint16_t domain_id = 0;
    uint32_t pasid = 0;      ///< meaningful with gn
    bool s = false, pde = false, gn = false;
    uint64_t address = 0;    ///< bits 63:12 (with s, trailing ones encode the size)
    friend bool operator==(const InvalidateIommuPages&, const InvalidateIommuPages&) = default;
};
struct InvalidateIotlbPages {
    uint16_t device_id = 0;
    uint32_t pasid = 0;
    uint8_t max_pend = 0;
    uint16_t queue_id = 0;
    bool s = false, gn = false;
    uint8_t type = 0;        ///< 69:68 (second source; accepted, not interpreted)
    uint64_t address = 0;
    friend bool operator==(const InvalidateIotlbPages&, const InvalidateIotlbPages&) = default;
};
struct InvalidateInterruptTable {
    uint16_t device_id = 0;
    friend bool operator==(const InvalidateInterruptTable&, const InvalidateInterruptTable&) = default;
};
struct PrefetchIommuPages {
    uint16_t device_id = 0;
    uint8_t count = 0;
    uint32_t pasid = 0;
    bool s = false, gn = false, inval = false;
    uint64_t address = 0;
    friend bool operator==(const PrefetchIommuPages&, const PrefetchIommuPages&) = default;
};
/// PRG response status codes (Linux PPR_* response values / PCIe PRG Response Code).
namespace ppr_status {
inline constexpr uint8_t kSuccess = 0x0, kInvalid = 0x1, kFailure = 0xF;
}
struct CompletePprRequest {
    uint16_t device_id = 0;
    uint32_t pasid = 0;
    bool gn = false;
    uint16_t tag = 0;        ///< PRG index (9 bits)
    uint8_t status = 0;
    friend bool operator==(const CompletePprRequest&, const CompletePprRequest&) = default;
};
struct InvalidateIommuAll {
    friend bool operator==(const InvalidateIommuAll&, const InvalidateIommuAll&) = default;
};

using Command = std::variant<CompletionWait, InvalidateDevtabEntry, InvalidateIommuPages, InvalidateIotlbPages,
                             InvalidateInterruptTable, PrefetchIommuPages, CompletePprRequest, InvalidateIommuAll>;

Opcode opcode_of(const Command& c);
std::array<uint64_t, 2> encode(const Command& c);
// Each command's own encoder (what encode(Command) dispatches to; a driver that builds one
// kind of command calls it without the variant).
std::array<uint64_t, 2> encode(const CompletionWait& c);
std::array<uint64_t, 2> encode(const InvalidateDevtabEntry& c);
std::array<uint64_t, 2> encode(const InvalidateIommuPages& c);
std::array<uint64_t, 2> encode(const InvalidateIotlbPages& c);
std::array<uint64_t, 2> encode(const InvalidateInterruptTable& c);
std::array<uint64_t, 2> encode(const PrefetchIommuPages& c);
std::array<uint64_t, 2> encode(const CompletePprRequest& c);
std::array<uint64_t, 2> encode(const InvalidateIommuAll& c);

/// Why a command is illegal (the unit reports each as ILLEGAL_COMMAND_ERROR).
enum class CommandError : uint8_t { none, bad_opcode, reserved_bits, unsupported };
std::string_view to_string(CommandError e);

struct Decoded {
    CommandError error = CommandError::none;
    Command command;
    bool ok() const { return error == CommandError::none; }
};
/// Decodes one 128-bit command as the unit with these capabilities would.
Decoded decode(const std::array<uint64_t, 2>& q, const AmdParams& caps);

namespace cmd_fields {
inline constexpr uint64_t kAddrMask = bits(63, 12);
inline constexpr uint64_t kS = uint64_t{1} << 0, kPde = uint64_t{1} << 1, kGn = uint64_t{1} << 2; // q1 flag bits
} // namespace cmd_fields

/// The decode itself, one switch on the opcode: calls `f` with the decoded command (a
/// CompletionWait, InvalidateIommuPages, ...) or with the CommandError that makes it illegal,
/// and returns what `f` returns. decode() wraps the result in a Decoded; the unit's decode
/// hook (amd_cmd_decoder.hpp) turns it into actions straight away, without the variant.
template <class F>
decltype(auto) decode_with(const std::array<uint64_t, 2>& q, const AmdParams& caps, F&& f) {
    using namespace cmd_fields;
    const uint64_t q0 = q[0], q1 = q[1];
    switch (static_cast<unsigned>(q0 >> 60)) {
    case 0x1: {
        if (q0 & bits(59, 52)) return f(CommandError::reserved_bits);
        CompletionWait c;
        c.store = q0 & 1;
        c.interrupt = q0 & 2;
        c.fence = q0 & 4;
        c.store_addr = q0 & bits(51, 3);
        c.store_data = q1;
        return f(std::as_const(c));
    }
    case 0x2:
        if ((q0 & bits(59, 16)) || q1) return f(CommandError::reserved_bits);
        return f(InvalidateDevtabEntry{static_cast<uint16_t>(q0)});
    case 0x3: {
        if ((q0 & (bits(31, 20) | bits(59, 48))) || (q1 & bits(11, 3))) return f(CommandError::reserved_bits);
        InvalidateIommuPages c;
        c.pasid = static_cast<uint32_t>(q0 & 0xFFFFF);
        c.domain_id = static_cast<uint16_t>(q0 >> 32);
        c.s = q1 & kS;
        c.pde = q1 & kPde;
        c.gn = q1 & kGn;
        c.address = q1 & kAddrMask;
        return f(std::as_const(c));
    }
    case 0x4: {
        if (q1 & (uint64_t{1} << 1 | uint64_t{1} << 3 | bits(11, 6))) return f(CommandError::reserved_bits);
        InvalidateIotlbPages c;
        c.device_id = static_cast<uint16_t>(q0);
        c.pasid = static_cast<uint32_t>(((q0 >> 16) & 0xFF) << 8 | ((q0 >> 48) & 0xFF) | ((q0 >> 56) & 0xF) << 16);
        c.max_pend = static_cast<uint8_t>(q0 >> 24);
        c.queue_id = static_cast<uint16_t>(q0 >> 32);
        c.s = q1 & kS;
        c.gn = q1 & kGn;
        c.type = static_cast<uint8_t>((q1 >> 4) & 3);
        c.address = q1 & kAddrMask;
        return f(std::as_const(c));
    }
    case 0x5:
        if ((q0 & bits(59, 16)) || q1) return f(CommandError::reserved_bits);
        return f(InvalidateInterruptTable{static_cast<uint16_t>(q0)});
    case 0x6: {
        if (!caps.prefetch) return f(CommandError::unsupported);
        if ((q0 & (bits(23, 16) | bits(59, 52))) || (q1 & (uint64_t{1} << 1 | uint64_t{1} << 3 | bits(11, 5))))
            return f(CommandError::reserved_bits);
        PrefetchIommuPages c;
        c.device_id = static_cast<uint16_t>(q0);
        c.count = static_cast<uint8_t>(q0 >> 24);
        c.pasid = static_cast<uint32_t>((q0 >> 32) & 0xFFFFF);
        c.s = q1 & kS;
        c.gn = q1 & kGn;
        c.inval = q1 & (uint64_t{1} << 4);
        c.address = q1 & kAddrMask;
        return f(std::as_const(c));
    }
    case 0x7: {
        if (!caps.ppr) return f(CommandError::unsupported);
        if ((q0 & (bits(31, 16) | bits(59, 52))) ||
            (q1 & (bits(1, 0) | bits(31, 3) | bits(43, 41) | bits(63, 48))))
            return f(CommandError::reserved_bits);
        CompletePprRequest c;
        c.device_id = static_cast<uint16_t>(q0);
        c.pasid = static_cast<uint32_t>((q0 >> 32) & 0xFFFFF);
        c.gn = q1 & kGn;
        c.tag = static_cast<uint16_t>((q1 >> 32) & 0x1FF);
        c.status = static_cast<uint8_t>((q1 >> 44) & 0xF);
        // PCIe defines response codes 0 (success), 1 (invalid request) and 0xF (failure) only.
        if (c.status != ppr_status::kSuccess && c.status != ppr_status::kInvalid && c.status != ppr_status::kFailure)
            return f(CommandError::reserved_bits);
        return f(std::as_const(c));
    }
    case 0x8:
        if (!caps.invalidate_all) return f(CommandError::unsupported);
        if ((q0 & bits(59, 0)) || q1) return f(CommandError::reserved_bits);
        return f(InvalidateIommuAll{});
    default:
        return f(CommandError::bad_opcode);
    }
}

/// A page range of the S-bit encoding (INVALIDATE_IOMMU_PAGES / _IOTLB_PAGES,
/// same as the PCIe ATS Invalidate Request): S=0 is one 4 KiB page; S=1 with
/// the first zero address bit at k (counting from bit 12) is the naturally
/// aligned 2^(k+1)-byte region; k >= 51 means the whole address space.
struct PageRange {
    uint64_t base = 0;
    uint64_t size = 0;   ///< bytes; 0 with all = true
    bool all = false;
    friend bool operator==(const PageRange&, const PageRange&) = default;
};
inline PageRange decode_range(uint64_t address, bool s) {
    constexpr uint64_t page = ~uint64_t{0xFFF};
    if (!s) return {address & page, uint64_t{1} << 12, false};
    // First zero bit at or above bit 12 (bits 11:0 are not part of the field).
    const auto k = static_cast<unsigned>(std::countr_one(address | 0xFFF));
    if (k >= 51) return {0, 0, true};
    const uint64_t size = uint64_t{1} << (k + 1);
    return {address & ~(size - 1), size, false};
}
/// Linux build_inv_address(): the address field (bits 63:12) and S for
/// [address, address + size); more than bit 51 of span gives the all-pages encoding.
struct EncodedRange {
    uint64_t address = 0;
    bool s = false;
};
/// Linux CMD_INV_IOMMU_ALL_PAGES_ADDRESS with the page offset cleared, S = 1.
inline constexpr uint64_t kAllPagesAddress = 0x7FFF'FFFF'FFFF'F000ull;
inline EncodedRange encode_range(uint64_t address, uint64_t size) {
    constexpr uint64_t page = ~uint64_t{0xFFF};
    const uint64_t first = address >> 12, last = (address + size - 1) >> 12;
    if (size == 0 || first == last) return {address & page, false};
    const uint64_t end = address + size - 1;
    const unsigned msb_diff = 63u - static_cast<unsigned>(std::countl_zero(end ^ address));
    const uint64_t a = msb_diff > 51 ? kAllPagesAddress : (address | ((uint64_t{1} << msb_diff) - 1));
    return {a & page, true};
}

// What Linux drivers/iommu/amd/iommu.c writes (for the host driver model and tests).
/// build_inv_iommu_pages: range by build_inv_address, PDE always set, GN (with the PASID)
/// for v2 / PASID translations; gn = false for v1 domains.
inline InvalidateIommuPages linux_inv_iommu_pages(uint16_t domain_id, uint64_t address, uint64_t size, bool gn,
                                                  uint32_t pasid = 0) {
    const EncodedRange r = encode_range(address, size);
    InvalidateIommuPages c;
    c.domain_id = domain_id;
    c.address = r.address;
    c.s = r.s;
    c.pde = true;
    c.gn = gn;
    c.pasid = gn ? pasid : 0;
    return c;
}
/// build_inv_iotlb_pages: MaxPend = the device's ATS queue depth, QueueID = DeviceID,
/// GN and the PASID only for a PASID other than 0 (IOMMU_NO_PASID).
InvalidateIotlbPages linux_inv_iotlb_pages(uint16_t device_id, uint8_t qdep, uint64_t address, uint64_t size,
                                           uint32_t pasid = 0);
/// build_completion_wait: S = 1 with the semaphore address and the 64-bit sequence number.
CompletionWait linux_completion_wait(uint64_t sem_addr, uint64_t seq);

/// The cache scope INVALIDATE_IOMMU_PAGES names. Host (v1) translations are the
/// core's stage 2 and guest (GCR3 / v2) translations its stage 1 tagged by PASID:
/// GN=0 drops the domain's host translations (and the nested entries built on
/// them); GN=1 drops the PASID's guest translations. PDE=0 keeps the PDE caches.
InvalidationScope to_scope(const InvalidateIommuPages& c);
/// INVALIDATE_IOMMU_ALL: every cached translation of every domain.
InvalidationScope to_scope(const InvalidateIommuAll&);

} // namespace iommusim::iommu::amd
