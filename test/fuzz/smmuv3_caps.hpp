// SPDX-License-Identifier: Apache-2.0
#pragma once
// SMMUv3 capabilities (IDR0/IDR1/IDR3/IDR5) drawn from the fuzz input: every
// combination the platform schema allows.
#include <iterator>

#include "models/iommu/smmuv3/smmuv3_params.hpp"
#include "test/fuzz/fuzz_support.hpp"

namespace iommusim::fuzz {
inline iommu::smmuv3::Smmuv3Params smmuv3_caps(Input& in) {
    using namespace iommu::smmuv3;
    Smmuv3Params p;
    const uint64_t f = in.u64();
    auto b = [&](unsigned i) { return static_cast<bool>((f >> i) & 1); };
    p.s1p = b(0), p.s2p = b(1), p.cohacc = b(2), p.hyp = b(3), p.ats = b(4), p.asid16 = b(5), p.msi = b(6);
    p.sev = b(7), p.pri = b(8), p.vmid16 = b(9), p.cd2l = b(10), p.st_2level = b(11), p.ril = b(12);
    p.gran4k = b(13), p.gran16k = b(14), p.gran64k = b(15);
    p.httu = static_cast<Httu>(in.u8() % 3);
    p.stall_model = static_cast<StallModel>(in.u8() % 3);
    p.ssidsize = static_cast<uint8_t>(in.u8() % 21);
    p.sidsize = static_cast<uint8_t>(in.u8() % 33);
    static constexpr uint8_t oas[] = {32, 36, 40, 42, 44, 48, 52};
    p.oas_bits = oas[in.u8() % std::size(oas)];
    return p;
}
} // namespace iommusim::fuzz
