// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/common/pt_format.hpp"

#include "models/iommu/common/pt_formats.hpp"

namespace iommusim::iommu {

const char* PageTableFormat::check_common(const StageConfig& c, unsigned max_concat_bits) {
    if (c.output_bits < 32 || c.output_bits > 52) return "output width must be 32..52 bits";
    if (c.input_bits <= level_shift(c, c.levels)) return "input width leaves no index bits for the top level";
    unsigned top = c.input_bits - level_shift(c, c.levels);
    unsigned excess = top > stride(c) ? top - stride(c) : 0;
    if (excess > max_concat_bits) return "top-level table larger than one granule";
    if (c.concat_tables != (1u << excess)) return "concat_tables does not match the input width and levels";
    if (c.root & (table_bytes(c, c.levels) - 1) & bits(51, 0)) return "table root not aligned to the top table size";
    return nullptr;
}

const PageTableFormat& format_of(PtFormat f) {
    switch (f) {
    case PtFormat::x86_64: return formats::kX86;
    case PtFormat::vtd_ss: return formats::kVtdSs;
    case PtFormat::amd_v1: return formats::kAmdV1;
    case PtFormat::arm_s1: return formats::kArmS1;
    case PtFormat::arm_s2: return formats::kArmS2;
    }
    return formats::kX86;
}

} // namespace iommusim::iommu
