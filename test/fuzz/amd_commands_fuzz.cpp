// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the AMD-Vi command-buffer decoder under any EFR, a stream of
// 128-bit commands. Each decodes to the generic actions of its command or to
// ILLEGAL_COMMAND_ERROR; a legal command re-encoded (as Linux builds it)
// decodes to the same command.
#include "models/iommu/amd/amd_cmd_decoder.hpp"
#include "test/fuzz/amd_caps.hpp"

IOMMUSIM_FUZZ_SC_MAIN

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace iommusim;
    using namespace iommusim::iommu::amd;
    fuzz::Input in(data, size);
    const AmdParams caps = fuzz::amd_caps(in);
    while (in.rest_size() > 0) {
        const std::array<uint64_t, 2> q = {in.u64(), in.u64()};
        const Decoded decoded = decode(q, caps);
        const auto actions = decode_actions(q, caps);
        if (actions.ok() != decoded.ok()) __builtin_trap();
        if (!actions.ok() && actions.error != kIllegalCommand) __builtin_trap();
        if (!decoded.ok()) continue;
        // The one-pass hook gives the actions of the two-step decode.
        const auto two_step = to_actions(decoded.command);
        if (actions.count != two_step.count) __builtin_trap();
        for (size_t i = 0; i < actions.count; ++i)
            if (actions.list()[i].index() != two_step.list()[i].index()) __builtin_trap();
        const Decoded again = decode(encode(decoded.command), caps);
        if (!again.ok() || !(again.command == decoded.command)) __builtin_trap();
    }
    return 0;
}
