// SPDX-License-Identifier: Apache-2.0
#pragma once
// Bit-field access for the SMMUv3 structures, commands and records: every
// layout in this folder is written as (word, hi, lo) positions taken from
// shared/reference/spec-layouts.md section C (Arm IHI 0070 chapters 4-8,
// Linux drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h).
#include <array>
#include <cstddef>
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

/// One field of an in-memory structure T: its 64-bit word, bit range and the
/// member holding it. An `in_place` field (a table address such as
/// S1ContextPtr 51:6) keeps its bits where they are; others are shifted down.
/// A structure's layout is one array of these, used by encode and decode
/// alike, so each bit position is written down once.
template <class T>
struct Field {
    uint8_t word, hi, lo;
    bool in_place;
    uint64_t (*load)(const T&);
    void (*store)(T&, uint64_t);
};

template <auto M>
struct MemberOf;
template <class T, class V, V T::*M>
struct MemberOf<M> {
    using Struct = T;
    using Value = V;
};

template <auto M>
constexpr Field<typename MemberOf<M>::Struct> field(unsigned word, unsigned hi, unsigned lo, bool in_place = false) {
    using T = typename MemberOf<M>::Struct;
    using V = typename MemberOf<M>::Value;
    return {static_cast<uint8_t>(word), static_cast<uint8_t>(hi), static_cast<uint8_t>(lo), in_place,
            [](const T& t) { return static_cast<uint64_t>(t.*M); },
            [](T& t, uint64_t v) { t.*M = static_cast<V>(v); }};
}

template <size_t W, class T, size_t N>
std::array<uint64_t, W> encode_fields(const T& t, const Field<T> (&layout)[N]) {
    std::array<uint64_t, W> w{};
    for (const Field<T>& f : layout) {
        const uint64_t v = f.load(t);
        w[f.word] = f.in_place ? (w[f.word] & ~mask(f.hi, f.lo)) | (v & mask(f.hi, f.lo)) : put(w[f.word], f.hi, f.lo, v);
    }
    return w;
}

template <class T, size_t W, size_t N>
T decode_fields(const std::array<uint64_t, W>& w, const Field<T> (&layout)[N]) {
    T t{};
    for (const Field<T>& f : layout) f.store(t, f.in_place ? w[f.word] & mask(f.hi, f.lo) : get(w[f.word], f.hi, f.lo));
    return t;
}

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
