// SPDX-License-Identifier: Apache-2.0
#pragma once
#include <stdexcept>
#include <string>

namespace iommusim::host {

/// A driver-API error, with the errno-like kind the Linux equivalent returns.
class HostError : public std::runtime_error {
public:
    enum class Kind {
        quota_exceeded,   ///< EDQUOT: PASID set quota, or the global space, exhausted
        not_owner,        ///< EPERM: caller does not own the PASID set
        not_found,        ///< ENOENT: unknown PASID, set, mapping or object
        busy,             ///< EBUSY: already allocated / attached / mapped
        invalid,          ///< EINVAL: unaligned, out of range, unsupported by the device
        no_space,         ///< ENOSPC: IOVA space exhausted
    };
    HostError(Kind k, const std::string& what) : std::runtime_error(what), kind_(k) {}
    Kind kind() const { return kind_; }

private:
    Kind kind_;
};

} // namespace iommusim::host
