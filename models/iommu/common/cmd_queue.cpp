// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/common/cmd_queue.hpp"

namespace iommusim::iommu {

CommandQueue::Fetched CommandQueue::fetch(UnitMemPort& mem, Duration& local) {
    // One Fetched, returned on every path, with the decoded command built in place (the
    // decoder's result initializes f.command directly): no copy of the action array.
    const uint32_t bytes = ring_.entry_bytes();
    std::array<uint64_t, kMaxEntryBytes / 8> words; // the read fills the first bytes / 8
    const Status read = tail_error_                                                  ? Status::tail_error
                        : bytes == 0 || bytes > kMaxEntryBytes || bytes % 8 ||
                                  !mem.read(ring_.cons_address(), words.data(), bytes, local)
                            ? Status::fetch_error
                            : Status::ok;
    Fetched f{read, read == Status::ok ? decoder_.decode(std::span<const uint64_t>(words.data(), bytes / 8))
                                       : DecodedCommand{}};
    if (f.status == Status::ok && !f.command.ok()) f.status = Status::decode_error;
    switch (f.status) {
    case Status::ok: break;
    case Status::tail_error: halt(tail_error_); break;
    case Status::fetch_error: halt(fetch_error_); break;
    case Status::decode_error: halt(f.command.error); break;
    }
    return f;
}

} // namespace iommusim::iommu
