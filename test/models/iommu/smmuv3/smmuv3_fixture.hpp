// SPDX-License-Identifier: Apache-2.0
#pragma once
// Shared set-up for the SMMUv3 tests: STEs and CDs as Linux writes them,
// memory with a stream table, a table reader and a translation core.
#include <catch2/catch.hpp>

#include "models/iommu/common/translation_core.hpp"
#include "models/iommu/smmuv3/smmuv3_tables.hpp"
#include "test/models/iommu/common/fixture.hpp"

namespace iommusim::iommu::smmuv3::test {

using iommu::test::Env;
using iommu::test::rd;

inline uint8_t tg0_code(unsigned shift) { return shift == 12 ? 0 : shift == 16 ? 1 : 2; }
inline uint8_t tg1_code(unsigned shift) { return shift == 14 ? 1 : shift == 12 ? 2 : 3; }

/// A CD as Linux writes it for a stage-1 domain over `lo` (TTB1 walks disabled).
inline Cd linux_cd(const StageConfig& lo, uint16_t asid) {
    Cd c;
    c.valid = true;
    c.aa64 = true;
    c.r = true;
    c.a = true;
    c.aset = true;
    c.asid = asid;
    c.t0sz = static_cast<uint8_t>(64 - lo.input_bits);
    c.tg0 = tg0_code(lo.granule_shift);
    c.ir0 = c.or0 = 1;
    c.sh0 = 3;
    c.epd1 = true;
    c.ips = 5;
    c.ttb0 = lo.root;
    c.mair = 0x0000'0000'FF04'4400;
    return c;
}

/// Stage-2 STE fields for `s2` (VTCR from the table geometry).
inline void set_s2(Ste& s, const StageConfig& s2, uint16_t vmid) {
    s.s2vmid = vmid;
    s.s2t0sz = static_cast<uint8_t>(64 - s2.input_bits);
    const unsigned start = 4 - s2.levels;
    s.s2sl0 = static_cast<uint8_t>(s2.granule_shift == 12 ? 2 - start : 3 - start);
    s.s2tg = tg0_code(s2.granule_shift);
    s.s2ir0 = s.s2or0 = 1;
    s.s2sh0 = 3;
    s.s2ps = 5;
    s.s2aa64 = true;
    s.s2ptw = true;
    s.s2r = true;
    s.s2ttb = s2.root;
}

inline Ste ste(uint8_t config) {
    Ste s;
    s.valid = true;
    s.config = config;
    s.s1cir = s.s1cor = 1;
    s.s1csh = 3;
    s.shcfg = 1;
    return s;
}

/// Memory, table allocation, a reader and a core.
struct Smmu {
    Env env;
    Smmuv3Params p;
    Smmuv3TableReader reader{p};
    BumpAllocator cfg_tables{0x2000'0000, 0x1000'0000};
    TableAlloc alloc = [this](uint64_t b, uint64_t a) { return cfg_tables(b, a); };
    TranslationCore core{env.port, TranslationCoreParams{}, &env.root};
    Smmuv3TableReader::Stage2Fn s2fn = [this](const TranslationContext& c, uint64_t ipa) {
        return core.check_s2(c, rd(ipa)).t;
    };
    StreamTableWriter st{env.mem, alloc, 8, false};

    Smmuv3TableReader::Resolution resolve(uint32_t sid, bool ssv = false, uint32_t ssid = 0) {
        return reader.resolve(env.mem, st.config(), sid, ssv, ssid, &s2fn);
    }
    /// An S1 STE with a fresh linear CD table of 2^cdmax CDs, CD `ssid` over `tables`.
    CdTableWriter s1_stream(uint32_t sid, const StageConfig& tables, uint8_t cdmax = 0, uint8_t fmt = 0,
                            uint32_t ssid = 0, uint16_t asid = 1) {
        CdTableWriter cds(env.mem, alloc, cdmax, fmt);
        REQUIRE(cds.ok());
        REQUIRE(cds.write_cd(ssid, linux_cd(tables, asid)));
        Ste s = ste(ste_cfg::kS1);
        s.s1fmt = fmt;
        s.s1cdmax = cdmax;
        s.s1_context_ptr = cds.context_ptr();
        s.s1dss = s1dss::kSsid0;
        REQUIRE(st.write_ste(sid, s));
        return cds;
    }
};

} // namespace iommusim::iommu::smmuv3::test
