// SPDX-License-Identifier: Apache-2.0
// Fuzz target: VT-d scalable-mode context resolution over memory whose every
// byte is fuzz input (root entry, context entry, PASID directory and table
// entries anywhere), for any request attributes and capabilities. Each step
// must end in an entry or an architected fault reason.
#include "models/iommu/vtd/vtd_tables.hpp"
#include "test/fuzz/vtd_caps.hpp"

IOMMUSIM_FUZZ_SC_MAIN

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace iommusim;
    using namespace iommusim::iommu::vtd;
    fuzz::Input in(data, size);
    const auto caps = fuzz::vtd_caps(in);
    const uint64_t root = in.u64() & ~uint64_t{0xfff};
    const auto rid = pcie::Bdf(static_cast<uint16_t>(in.u32()));
    iommu::RequestAttrs r;
    const uint8_t f = in.u8();
    r.has_pasid = f & 1, r.privileged = f & 2, r.execute = f & 4, r.ats = f & 8, r.page_request = f & 16;
    r.pasid = in.u32() & pcie::kPasidMask;
    fuzz::FuzzMem mem(in.rest(), in.rest_size());
    const VtdTableReader reader(caps);
    const ContextLookup c = reader.read_context(mem, root, (f & 32) != 0, rid);
    if (!c.status.ok()) return 0;
    uint32_t pasid = 0;
    if (!reader.check_request(c.entry, r, pasid).ok()) return 0;
    const PasidLookup p = reader.read_pasid(mem, c.entry, pasid);
    if (!p.status.ok()) return 0;
    (void)VtdTableReader::check_pasid_permissions(p.entry, r);
    iommu::TranslationContext ctx;
    (void)reader.make_context(c.entry, p.entry, pasid, ctx);
    // Re-encoding what was decoded gives entries that decode to the same fields.
    const auto again = PasidEntry::decode(p.entry.encode());
    if (!again || again->did != p.entry.did || again->pgtt != p.entry.pgtt) __builtin_trap();
    return 0;
}
