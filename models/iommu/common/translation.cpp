// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/common/translation.hpp"

namespace iommusim::iommu {

std::string_view to_string(PtFormat f) {
    switch (f) {
    case PtFormat::x86_64: return "x86_64";
    case PtFormat::vtd_ss: return "vtd_ss";
    case PtFormat::amd_v1: return "amd_v1";
    case PtFormat::arm_s1: return "arm_s1";
    case PtFormat::arm_s2: return "arm_s2";
    }
    return "?";
}

std::string_view to_string(Regime r) {
    switch (r) {
    case Regime::el1: return "el1";
    case Regime::el2: return "el2";
    }
    return "?";
}

std::string_view to_string(FaultKind k) {
    switch (k) {
    case FaultKind::none: return "none";
    case FaultKind::not_present: return "not_present";
    case FaultKind::permission: return "permission";
    case FaultKind::address_size: return "address_size";
    case FaultKind::access_flag: return "access_flag";
    case FaultKind::reserved_bits: return "reserved_bits";
    case FaultKind::non_canonical: return "non_canonical";
    case FaultKind::memory_error: return "memory_error";
    case FaultKind::invalid_config: return "invalid_config";
    case FaultKind::input_size: return "input_size";
    }
    return "?";
}

} // namespace iommusim::iommu
