// SPDX-License-Identifier: Apache-2.0
#pragma once
// AMD-Vi capabilities (EFR) drawn from the fuzz input: every combination
// AmdParams::check() accepts.
#include "models/iommu/amd/amd_params.hpp"
#include "test/fuzz/fuzz_support.hpp"

namespace iommusim::fuzz {
inline iommu::amd::AmdParams amd_caps(Input& in) {
    iommu::amd::AmdParams p;
    const uint64_t f = in.u64();
    auto b = [&](unsigned i) { return static_cast<bool>((f >> i) & 1); };
    p.prefetch = b(0), p.ppr = b(1), p.x2apic = b(2), p.nx = b(3), p.guest_translation = b(4);
    p.invalidate_all = b(5), p.guest_io_protection = b(6), p.host_access_dirty = b(7);
    p.host_levels = static_cast<uint8_t>(4 + in.u8() % 3);
    p.guest_levels = static_cast<uint8_t>(4 + in.u8() % 2);
    p.glx_max = static_cast<uint8_t>(in.u8() % 3);
    p.pasid_bits = static_cast<uint8_t>(1 + in.u8() % 20);
    p.output_bits = static_cast<uint8_t>(32 + in.u8() % 21);
    if (p.check()) __builtin_trap(); // the draw above must stay inside what the unit accepts
    return p;
}
} // namespace iommusim::fuzz
