// SPDX-License-Identifier: Apache-2.0
#pragma once
// What a request carries that the context-level checks of every family look
// at (PCIe PASID TLP prefix: PASID, PMR, ER; whether it is an ATS or PRI
// request). Plain C++.
#include <cstdint>

namespace iommusim::iommu {

struct RequestAttrs {
    bool has_pasid = false;
    uint32_t pasid = 0;
    bool privileged = false; ///< PMR
    bool execute = false;    ///< ER
    bool ats = false;        ///< translation request or translated request
    bool page_request = false;
};

} // namespace iommusim::iommu
