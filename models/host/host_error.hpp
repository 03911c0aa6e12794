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

/// The name a scenario's expect_error uses for a kind (platforms/README.md, Errors).
inline const char* to_string(HostError::Kind k) {
    using K = HostError::Kind;
    switch (k) {
    case K::quota_exceeded: return "quota_exceeded";
    case K::not_owner: return "not_owner";
    case K::not_found: return "not_found";
    case K::busy: return "busy";
    case K::invalid: return "invalid";
    case K::no_space: return "no_space";
    }
    return "?";
}

} // namespace iommusim::host
