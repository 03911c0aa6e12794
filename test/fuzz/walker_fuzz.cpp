// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the generic walker over memory whose every byte is fuzz input,
// for every page-table format (one line per format in kFormats), one stage or
// nested, any geometry the StageConfig can express. Besides "no crash, no
// UB", it checks one invariant: a walk that the walk caches shortcut gives the
// same outcome as the same walk from cold caches (the caches are an
// optimisation; the tables decide).
#include <iterator>

#include "models/common/stats.hpp"
#include "models/iommu/common/walker.hpp"
#include "test/fuzz/fuzz_support.hpp"

IOMMUSIM_FUZZ_SC_MAIN

namespace {
using namespace iommusim;
using iommu::PtFormat;

constexpr PtFormat kFormats[] = {
    PtFormat::x86_64,
    PtFormat::vtd_ss,
    PtFormat::amd_v1,
    PtFormat::arm_s1,
    PtFormat::arm_s2,
};

iommu::StageConfig stage(fuzz::Input& in) {
    iommu::StageConfig c;
    c.enabled = true;
    c.format = kFormats[in.u8() % std::size(kFormats)];
    c.levels = static_cast<uint8_t>(1 + in.u8() % 6);
    static constexpr uint8_t granules[] = {12, 14, 16};
    c.granule_shift = granules[in.u8() % 3];
    c.input_bits = static_cast<uint8_t>(16 + in.u8() % 49);
    c.concat_tables = static_cast<uint8_t>(1 + in.u8() % 16);
    c.root = in.u64() & ((uint64_t{1} << 52) - 1);
    c.output_bits = static_cast<uint8_t>(32 + in.u8() % 21);
    c.max_leaf_level = static_cast<uint8_t>(1 + in.u8() % 5);
    const uint8_t f = in.u8();
    c.hw_access_dirty = false; // keeps memory unchanged between the two walks compared below
    c.write_protect = f & 1;
    c.execute_enable = f & 2;
    return c;
}

bool same(const iommu::Translation& a, const iommu::Translation& b) {
    if (a.fault != b.fault) return false;
    if (!a.ok()) return true; // level/address of a fault may legitimately differ with the cache level hit
    return a.output == b.output && a.page_shift == b.page_shift && a.perms == b.perms && a.read == b.read &&
           a.write == b.write && a.execute == b.execute && a.user == b.user;
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::Input in(data, size);
    iommu::TranslationContext ctx;
    ctx.domain_tag = 1;
    ctx.s1 = stage(in);
    const bool nested = in.flag();
    if (nested) ctx.s2 = stage(in);
    ctx.allow_supervisor = in.flag();
    ctx.allow_execute = in.flag();
    iommu::AccessRequest reqs[4];
    for (auto& r : reqs) {
        r.iova = in.u64();
        const uint8_t f = in.u8();
        r.write = f & 1, r.execute = f & 2, r.privileged = f & 4;
    }
    fuzz::FuzzMem mem(in.rest(), in.rest_size());
    iommu::PhysMemWalkPort port(mem);
    stats::Group root("fuzz");
    iommu::Walker warm(port, iommu::WalkerParams{}, &root);
    for (const auto& r : reqs) {
        const auto w = warm.walk(ctx, r); // after the earlier requests filled the caches
        stats::Group cold_root("cold");
        iommu::WalkerParams none;
        none.s1_walk_cache.per_level.entries = 0;
        none.s2_walk_cache.per_level.entries = 0;
        none.s2_cache.geometry.entries = 0;
        iommu::Walker cold(port, none, &cold_root);
        const auto c = cold.walk(ctx, r);
        if (!same(w.t, c.t)) __builtin_trap();
    }
    return 0;
}
