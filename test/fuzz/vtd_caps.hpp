// SPDX-License-Identifier: Apache-2.0
#pragma once
// VT-d capabilities drawn from the fuzz input (every combination the schema allows).
#include "models/iommu/vtd/vtd_params.hpp"
#include "test/fuzz/fuzz_support.hpp"

namespace iommusim::fuzz {
inline iommu::vtd::VtdParams vtd_caps(Input& in) {
    iommu::vtd::VtdParams p;
    const uint64_t f = in.u64();
    auto b = [&](unsigned i) { return static_cast<bool>((f >> i) & 1); };
    p.mgaw = static_cast<uint8_t>(39 + in.u8() % 19);
    p.haw = static_cast<uint8_t>(32 + in.u8() % 21);
    p.mamv = static_cast<uint8_t>(in.u8() % 64);
    p.pasid_bits = static_cast<uint8_t>(1 + in.u8() % 20);
    p.nd = static_cast<uint8_t>(in.u8() % 7);
    p.sl_3level = b(0), p.sl_4level = b(1), p.sl_5level = b(2), p.sl_2m = b(3), p.sl_1g = b(4), p.fl_1g = b(5);
    p.fl_5level = b(6), p.caching_mode = b(7), p.device_tlb = b(8), p.pass_through = b(9), p.snoop_control = b(10);
    p.nested = b(11), p.page_requests = b(12), p.execute_requests = b(13), p.supervisor_requests = b(14);
    p.pasid = b(15), p.sl_ad = b(16), p.page_request_drain = b(17), p.dit = b(18);
    return p;
}
} // namespace iommusim::fuzz
