// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the AMD-Vi device table and GCR3 table reader under any EFR,
// over memory whose every byte is fuzz input. Each request resolves to a
// context, a pass-through or an event record (never a crash or UB); a DTE
// survives decode -> encode -> decode unchanged; a resolved context walks
// (the core's walker over the same memory) to a translation or a fault.
#include "models/common/stats.hpp"
#include "models/iommu/amd/amd_tables.hpp"
#include "models/iommu/common/walker.hpp"
#include "test/fuzz/amd_caps.hpp"

IOMMUSIM_FUZZ_SC_MAIN

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace iommusim;
    using namespace iommusim::iommu::amd;
    fuzz::Input in(data, size);
    const AmdParams caps = fuzz::amd_caps(in);
    const bool gt_enabled = in.flag();
    const DevTable dt = DevTable::from_register(in.u64());
    RequestInfo reqs[4];
    for (auto& r : reqs) {
        r.device_id = static_cast<uint16_t>(in.u32());
        const uint8_t f = in.u8();
        r.has_pasid = f & 1, r.write = f & 2, r.execute = f & 4, r.privileged = f & 8;
        r.type = static_cast<RequestInfo::Type>((f >> 4) % 4);
        r.pasid = in.u32() & 0xFFFFF;
        r.addr = in.u64();
    }
    fuzz::FuzzMem mem(in.rest(), in.rest_size());
    const AmdTableReader reader(caps);
    iommu::PhysMemWalkPort port(mem);
    stats::Group root("fuzz");
    iommu::Walker walker(port, iommu::WalkerParams{}, &root);
    for (const auto& r : reqs) {
        const auto d = reader.read_dte(mem, dt, r.device_id);
        if (d.status == AmdTableReader::DteRead::Status::ok) {
            const Dte once = Dte::decode(d.raw);
            if (Dte::decode(once.encode()) != once) __builtin_trap();
        }
        const Resolved res = reader.resolve(mem, dt, r, gt_enabled);
        if ((res.kind == Resolved::Kind::event) != res.event.has_value()) __builtin_trap();
        (void)AmdTableReader::check_ats(res, r);
        (void)AmdTableReader::page_request(res, r, true, r.write, true, 1, caps.ppr);
        if (res.kind != Resolved::Kind::translate) continue;
        const iommu::AccessRequest a{r.addr, r.write, r.execute, r.privileged};
        const auto w = walker.walk(res.ctx, a);
        const auto t = AmdTableReader::apply_dte_rights(res, w.t, a);
        if (!t.ok()) (void)AmdTableReader::walk_fault_event(r, res, t);
    }
    return 0;
}
