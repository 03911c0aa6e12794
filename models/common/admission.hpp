// SPDX-License-Identifier: Apache-2.0
#pragma once
// When the next stage took a request off the previous stage's hands. A
// receive buffer (a PCIe port's flow-control credits) frees its slot only
// when the stage after it has accepted the request: a switch port when the
// port above granted a credit, a root port when the IOMMU has translated the
// request and forwarded it to memory. Each stage that accepts a request
// stamps the time here (memory: when its data port starts on the request, so
// a saturated memory backs up into the ports); the stage below reads it on
// the way back. A request
// nobody accepted (a translation fault, an ATS translation request answered
// by the IOMMU itself) leaves it unset and its buffer slot is freed when the
// response returns.
#include <tlm>

#include "models/common/time.hpp"

namespace iommusim {

class AdmissionExtension : public tlm::tlm_extension<AdmissionExtension> {
public:
    Duration at;          ///< absolute time the next stage accepted the request
    bool valid = false;

    tlm::tlm_extension_base* clone() const override { return new AdmissionExtension(*this); }
    void copy_from(const tlm::tlm_extension_base& other) override {
        *this = static_cast<const AdmissionExtension&>(other);
    }
};

} // namespace iommusim
