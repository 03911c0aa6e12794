// SPDX-License-Identifier: Apache-2.0
#include "models/pcie/tlp.hpp"

#include <bit>
#include <cstdio>
#include <stdexcept>

namespace iommusim::pcie {

std::string Bdf::str() const {
    // "%02x:%02x.%u" by hand (device <= 0x1f, function <= 7): snprintf cost ~1.6 k
    // instructions, paid for every flush's devices column in invalidations.csv.
    static constexpr char kHex[] = "0123456789abcdef";
    const unsigned b = bus(), d = dev(), f = fn();
    const char s[7] = {kHex[b >> 4], kHex[b & 15], ':', kHex[d >> 4], kHex[d & 15], '.', static_cast<char>('0' + f)};
    return std::string(s, sizeof s);
}

Bdf parse_bdf(const std::string& s) {
    unsigned bus = 0, dev = 0, fn = 0;
    char tail = 0;
    if (std::sscanf(s.c_str(), "%x:%x.%u%c", &bus, &dev, &fn, &tail) != 3 || bus > 0xFF || dev > 0x1F || fn > 7)
        throw std::invalid_argument("expected a requester ID \"BB:DD.F\" (hex bus 00-ff, device 00-1f, function 0-7), got \"" + s + "\"");
    return Bdf(static_cast<uint8_t>(bus), static_cast<uint8_t>(dev), static_cast<uint8_t>(fn));
}

namespace {
// ATS size encoding (PCIe Base §10.2.3.2 / §10.3.1): with S=1, k trailing ones
// in address bits [63:12] give a 2^(13+k)-byte range aligned to its size.
uint64_t s_size(uint64_t addr, bool s) {
    if (!s) return 4096;
    uint64_t bits = addr >> 12;
    unsigned ones = static_cast<unsigned>(std::countr_one(bits));
    if (ones >= 51) return uint64_t{1} << 63; // whole address space
    return uint64_t{1} << (13 + ones);
}
uint64_t s_encode(uint64_t base, unsigned order) {
    if (order == 0) return base & ~uint64_t{0xFFF};
    // Orders of 52 and more all mean the whole address space: bits 62:12 set
    // (Linux flushes a whole device TLB with mask MAX_AGAW_PFN_WIDTH = 52).
    if (order >= 52) return ((uint64_t{1} << 51) - 1) << 12;
    // order >= 1: bits 12 .. 12+order-2 set, bit 12+order-1 clear.
    uint64_t ones = ((uint64_t{1} << (order - 1)) - 1) << 12;
    return (base & ~((uint64_t{1} << (12 + order)) - 1)) | ones;
}
} // namespace

uint64_t AtsInvalidateRequest::range_size() const { return s_size(address, s); }
uint64_t AtsInvalidateRequest::range_base() const { return address & ~(range_size() - 1); }
AtsInvalidateRequest AtsInvalidateRequest::for_range(Bdf target, uint64_t base, unsigned order) {
    AtsInvalidateRequest r;
    r.target = target;
    r.address = s_encode(base, order);
    r.s = order > 0;
    return r;
}

uint64_t AtsTranslation::range_size() const { return s_size(translated, s); }
uint64_t AtsTranslation::range_base() const { return translated & ~(range_size() - 1); }
AtsTranslation AtsTranslation::for_range(uint64_t pa_base, unsigned order) {
    AtsTranslation t;
    t.translated = s_encode(pa_base, order);
    t.s = order > 0;
    return t;
}

Bdf MessageExtension::route_id() const {
    switch (code) {
    case MessageCode::ats_invalidate_request: return inv_req.target;
    case MessageCode::ats_invalidate_completion: return inv_cpl.destination;
    case MessageCode::page_request: return Bdf{}; // to the root complex
    case MessageCode::prg_response: return prg_resp.destination;
    }
    return Bdf{};
}

} // namespace iommusim::pcie
