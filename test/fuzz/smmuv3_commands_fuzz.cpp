// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the SMMUv3 command-queue decoder under any IDR set, a stream
// of 128-bit commands. Each decodes to the generic actions of its command or
// to CERROR_ILL; a legal command re-encoded (as Linux builds it) decodes to
// the same command.
#include "models/iommu/smmuv3/smmuv3_commands.hpp"
#include "test/fuzz/smmuv3_caps.hpp"

IOMMUSIM_FUZZ_SC_MAIN

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace iommusim;
    using namespace iommusim::iommu::smmuv3;
    fuzz::Input in(data, size);
    const Smmuv3Params caps = fuzz::smmuv3_caps(in);
    Smmuv3CommandDecoder decoder(caps);
    while (in.rest_size() > 0) {
        const std::array<uint64_t, 2> q = {in.u64(), in.u64()};
        const auto actions = decoder.decode(q);
        const auto c = decode_command(q, caps);
        if (actions.ok() != c.has_value()) __builtin_trap();
        if (!c) continue;
        (void)tlb_scope(*c), (void)config_invalidation(*c), (void)atc_invalidation(*c), (void)prg_response(*c);
        const auto again = decode_command(c->encode(), caps);
        if (!again || !(*again == *c)) __builtin_trap();
    }
    return 0;
}
