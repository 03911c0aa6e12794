// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/common/cmd_queue.hpp"

namespace iommusim::iommu {

CommandQueue::Fetched CommandQueue::fetch(UnitMemPort& mem, Duration& local) {
    Fetched f;
    if (tail_error_) {
        f.status = Status::tail_error;
        halt(tail_error_);
        return f;
    }
    const uint32_t bytes = ring_.entry_bytes();
    std::array<uint64_t, kMaxEntryBytes / 8> words{};
    if (bytes == 0 || bytes > kMaxEntryBytes || bytes % 8 ||
        !mem.read(ring_.cons_address(), words.data(), bytes, local)) {
        f.status = Status::fetch_error;
        halt(fetch_error_);
        return f;
    }
    f.command = decoder_.decode(std::span<const uint64_t>(words.data(), bytes / 8));
    f.status = f.command.ok() ? Status::ok : Status::decode_error;
    if (!f.command.ok()) halt(f.command.error);
    return f;
}

} // namespace iommusim::iommu
