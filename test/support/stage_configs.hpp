// SPDX-License-Identifier: Apache-2.0
#pragma once
// StageConfig of each page-table format as the tests and bench rigs build
// their tables (x86-64 / VT-d second stage, AMD-Vi v1, Arm stage 1 / 2).
#include "models/iommu/common/translation.hpp"

namespace iommusim::iommu::test {

inline StageConfig x86_cfg(unsigned levels = 4) {
    StageConfig c;
    c.enabled = true;
    c.format = PtFormat::x86_64;
    c.levels = static_cast<uint8_t>(levels);
    c.input_bits = static_cast<uint8_t>(12 + 9 * levels);
    c.output_bits = 46;
    return c;
}
inline StageConfig vtd_ss_cfg(unsigned levels = 4) {
    StageConfig c = x86_cfg(levels);
    c.format = PtFormat::vtd_ss;
    return c;
}
inline StageConfig amd_v1_cfg(unsigned levels = 4, unsigned output_bits = 46) {
    StageConfig c = x86_cfg(4);
    c.format = PtFormat::amd_v1;
    c.levels = static_cast<uint8_t>(levels);
    c.input_bits = static_cast<uint8_t>(levels == 6 ? 64 : 12 + 9 * levels);
    c.output_bits = static_cast<uint8_t>(output_bits);
    return c;
}
inline StageConfig arm_cfg(bool s2, unsigned granule_shift = 12, unsigned input_bits = 48, unsigned levels = 4,
                           unsigned concat = 1) {
    StageConfig c;
    c.enabled = true;
    c.format = s2 ? PtFormat::arm_s2 : PtFormat::arm_s1;
    c.granule_shift = static_cast<uint8_t>(granule_shift);
    c.input_bits = static_cast<uint8_t>(input_bits);
    c.levels = static_cast<uint8_t>(levels);
    c.concat_tables = static_cast<uint8_t>(concat);
    c.output_bits = 48;
    return c;
}

} // namespace iommusim::iommu::test
