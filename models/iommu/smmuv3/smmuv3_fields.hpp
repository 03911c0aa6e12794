// SPDX-License-Identifier: Apache-2.0
#pragma once
// Bit-field access for the SMMUv3 structures, commands and records: every
// layout in this folder is written as (word, hi, lo) positions taken from
// shared/reference/spec-layouts.md section C (Arm IHI 0070 chapters 4-8,
// Linux drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h).
#include <cstdint>

namespace iommusim::iommu::smmuv3 {

/// Mask of bits [hi:lo].
constexpr uint64_t mask(unsigned hi, unsigned lo) {
    return (hi >= 63 ? ~uint64_t{0} : ((uint64_t{1} << (hi + 1)) - 1)) & ~((uint64_t{1} << lo) - 1);
}
/// Field [hi:lo] of w, shifted down.
constexpr uint64_t get(uint64_t w, unsigned hi, unsigned lo) { return (w & mask(hi, lo)) >> lo; }
constexpr bool get(uint64_t w, unsigned bit) { return (w >> bit) & 1; }
/// w with field [hi:lo] set to v (v is truncated to the field).
constexpr uint64_t put(uint64_t w, unsigned hi, unsigned lo, uint64_t v) {
    return (w & ~mask(hi, lo)) | ((v << lo) & mask(hi, lo));
}
constexpr uint64_t put(uint64_t w, unsigned bit, bool v) { return put(w, bit, bit, v ? 1 : 0); }

/// Whether v fits in a field of `width` bits.
constexpr bool fits(uint64_t v, unsigned width) { return width >= 64 || (v >> width) == 0; }

/// Address-size encodings (IDR5.OAS, CD.IPS, STE.S2PS; Arm ARM PARange): 32..52 bits.
constexpr uint8_t size_bits(uint64_t code) {
    constexpr uint8_t t[] = {32, 36, 40, 42, 44, 48, 52};
    return code < 7 ? t[code] : 0;
}
constexpr uint8_t size_code(unsigned bits) {
    constexpr uint8_t t[] = {32, 36, 40, 42, 44, 48, 52};
    for (uint8_t i = 0; i < 7; ++i)
        if (t[i] == bits) return i;
    return 0xFF;
}

} // namespace iommusim::iommu::smmuv3
