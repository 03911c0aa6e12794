// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the VT-d invalidation-queue descriptor decoder (128- and
// 256-bit descriptors) under any capability set. Decoding must give a
// descriptor or an IQE reason; a decoded descriptor must survive re-encoding
// checks the model itself relies on (no crash, no UB).
#include "models/iommu/vtd/vtd_descriptors.hpp"
#include "test/fuzz/vtd_caps.hpp"

IOMMUSIM_FUZZ_SC_MAIN

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace iommusim;
    fuzz::Input in(data, size);
    const auto caps = fuzz::vtd_caps(in);
    while (in.rest_size() > 0) {
        const bool wide = in.flag();
        const std::array<uint64_t, 4> q = {in.u64(), in.u64(), wide ? in.u64() : 0, wide ? in.u64() : 0};
        const auto r = iommu::vtd::decode_descriptor(q, wide, caps);
        if (r.ok() && r.desc.index() >= std::variant_size_v<iommu::vtd::QiDescriptor>) __builtin_trap();
    }
    return 0;
}
