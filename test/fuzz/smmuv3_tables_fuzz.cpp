// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the SMMUv3 stream table (linear / 2-level), STE and CD reader
// under any IDR set, over memory whose every byte is fuzz input, with nested
// CD fetches through stage 2 (the core's walker over the same memory). Each
// transaction resolves to a context or an architected event (never a crash
// or UB); STE and CD survive decode -> encode -> decode unchanged; a
// resolved context walks to a translation or a fault.
#include "models/common/stats.hpp"
#include "models/iommu/common/walker.hpp"
#include "models/iommu/smmuv3/smmuv3_tables.hpp"
#include "test/fuzz/smmuv3_caps.hpp"

IOMMUSIM_FUZZ_SC_MAIN

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace iommusim;
    using namespace iommusim::iommu::smmuv3;
    fuzz::Input in(data, size);
    const Smmuv3Params caps = fuzz::smmuv3_caps(in);
    StrtabConfig st;
    st.base = in.u64() & ((uint64_t{1} << 52) - 1) & ~uint64_t{0x3F};
    st.two_level = in.flag() && caps.st_2level;
    st.log2size = static_cast<uint8_t>(in.u8() % (caps.sidsize + 1));
    st.split = static_cast<uint8_t>(in.u8() % 32);
    struct Txn {
        uint32_t sid, ssid;
        bool ssv;
        iommu::AccessRequest a;
    } txns[4];
    for (auto& t : txns) {
        t.sid = in.u32();
        t.ssid = in.u32() & 0xFFFFF;
        const uint8_t f = in.u8();
        t.ssv = f & 1;
        t.a = iommu::AccessRequest{in.u64(), static_cast<bool>(f & 2), static_cast<bool>(f & 4),
                                   static_cast<bool>(f & 8)};
    }
    // Two raw 512-bit structures decoded as STE and CD (round trip).
    std::array<uint64_t, 8> raw{};
    for (auto& q : raw) q = in.u64();
    const Ste ste = Ste::decode(raw);
    if (!(Ste::decode(ste.encode()) == ste)) __builtin_trap();
    const Cd cd = Cd::decode(raw);
    if (!(Cd::decode(cd.encode()) == cd)) __builtin_trap();

    fuzz::FuzzMem mem(in.rest(), in.rest_size());
    const Smmuv3TableReader reader(caps);
    iommu::PhysMemWalkPort port(mem);
    stats::Group root("fuzz");
    iommu::Walker walker(port, iommu::WalkerParams{}, &root);
    const Smmuv3TableReader::Stage2Fn s2 = [&](const iommu::TranslationContext& c, uint64_t ipa) {
        return walker.walk(c, iommu::AccessRequest{ipa, false, false, false}).t;
    };
    for (const auto& t : txns) {
        const auto r = reader.resolve(mem, st, t.sid, t.ssv, t.ssid, &s2);
        if (r.event || r.sc.abort || r.sc.bypass) continue;
        (void)walker.walk(r.sc.ctx, t.a);
    }
    return 0;
}
