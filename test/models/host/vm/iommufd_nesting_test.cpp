// SPDX-License-Identifier: Apache-2.0
// IOMMU_HWPT_INVALIDATE's array-and-count semantics (shared/reference/spec-layouts.md E.1, E.2, E.6)
// on a VT-d nested domain built over a VM's nesting parent.
#include <catch2/catch.hpp>

#include "test/models/host/vm/vm_rig.hpp"
#include "test/models/host/vtd_host_rig.hpp"

using namespace vmtest;
using host::uapi::Errno;
using host::uapi::HwptInvalidate;
using host::uapi::VtdS1Invalidate;

namespace {
HwptInvalidate request(uint32_t hwpt, std::vector<VtdS1Invalidate>& e) {
    HwptInvalidate r;
    r.hwpt_id = hwpt;
    r.data_uptr = reinterpret_cast<uintptr_t>(e.data());
    r.data_type = host::uapi::kInvalidateDataVtdS1;
    r.entry_len = sizeof(VtdS1Invalidate);
    r.entry_num = static_cast<uint32_t>(e.size());
    return r;
}
} // namespace

TEST_CASE("IOMMU_HWPT_INVALIDATE handles entries in order and reports how many took effect", "[vm][iommufd][sc]") {
    VmRig r(ViommuMode::nested);
    r.run([&] {
        host::IommuFd& fd = r.os->iommufd();
        const uint32_t parent = r.vm->vmm().parent_hwpt;
        host::uapi::HwptVtdS1 data;
        data.pgtbl_addr = r.vm->params().ram_gpa;
        const uint32_t nested = fd.hwpt_alloc_nested_vtd(parent, data);
        fd.attach(r.prid, std::nullopt, nested);
        const auto flushes = [&] { return r.value("os.dmar0.flushes"); };
        std::vector<VtdS1Invalidate> two(2);
        two[0].addr = 0x10000;
        two[0].npages = 1;
        two[1].addr = 0x20000;
        two[1].npages = 4;

        HwptInvalidate q = request(nested, two);
        double f0 = flushes();
        CHECK(fd.hwpt_invalidate(q) == Errno::ok);
        CHECK(q.entry_num == 2);
        CHECK(flushes() == f0 + 2);

        // Partial batch: the second entry has unknown flags -> EOPNOTSUPP, entry_num 1, only the first flushed.
        two[1].flags = 0x80;
        q = request(nested, two);
        f0 = flushes();
        CHECK(fd.hwpt_invalidate(q) == Errno::eopnotsupp);
        CHECK(q.entry_num == 1);
        CHECK(flushes() == f0 + 1);
        // Second entry misaligned -> EINVAL after the first took effect.
        two[1].flags = 0;
        two[1].addr = 0x20010;
        q = request(nested, two);
        CHECK(fd.hwpt_invalidate(q) == Errno::einval);
        CHECK(q.entry_num == 1);
        // npages = U64_MAX means everything only with addr 0.
        two[1].addr = 0x1000;
        two[1].npages = UINT64_MAX;
        q = request(nested, two);
        CHECK(fd.hwpt_invalidate(q) == Errno::einval);
        CHECK(q.entry_num == 1);
        two[1].addr = 0;
        q = request(nested, two);
        CHECK(fd.hwpt_invalidate(q) == Errno::ok);
        CHECK(q.entry_num == 2);

        // Malformed requests: nothing handled.
        q = request(parent, two); // the nesting parent is not an invalidation target
        CHECK(fd.hwpt_invalidate(q) == Errno::einval);
        CHECK(q.entry_num == 0);
        q = request(9999, two);
        CHECK(fd.hwpt_invalidate(q) == Errno::enoent);
        q = request(nested, two);
        q.reserved = 1;
        CHECK(fd.hwpt_invalidate(q) == Errno::eopnotsupp);
        q = request(nested, two);
        q.data_type = host::uapi::kInvalidateDataArmSmmuv3;
        CHECK(fd.hwpt_invalidate(q) == Errno::einval);
        q = request(nested, two);
        q.entry_len = sizeof(VtdS1Invalidate) + 1;
        CHECK(fd.hwpt_invalidate(q) == Errno::einval);
        q = request(nested, two); // entry_num is in/out: a fresh request
        q.entry_len = 1;
        CHECK(fd.hwpt_invalidate(q) == Errno::einval);
        q = request(nested, two);
        q.data_uptr = 0;
        CHECK(fd.hwpt_invalidate(q) == Errno::einval);
        CHECK(q.entry_num == 0);
        q = request(nested, two);
        q.entry_num = 0; // no entries: a successful no-op
        f0 = flushes();
        CHECK(fd.hwpt_invalidate(q) == Errno::ok);
        CHECK(q.entry_num == 0);
        CHECK(flushes() == f0);
    });
}

TEST_CASE("A nested VT-d domain refuses allocation data the uAPI does not define", "[vm][iommufd][sc]") {
    VmRig r(ViommuMode::nested);
    r.run([&] {
        host::IommuFd& fd = r.os->iommufd();
        host::uapi::HwptVtdS1 bad;
        bad.addr_width = 39;
        CHECK_THROWS_AS(fd.hwpt_alloc_nested_vtd(r.vm->vmm().parent_hwpt, bad), host::HostError);
        host::uapi::HwptVtdS1 flags;
        flags.flags = 1u << 7;
        CHECK_THROWS_AS(fd.hwpt_alloc_nested_vtd(r.vm->vmm().parent_hwpt, flags), host::HostError);
        // A nested domain needs a second-stage (nesting parent) domain under it.
        const uint32_t s1_ioas = fd.ioas_alloc();
        const uint32_t s1 = fd.hwpt_alloc(s1_ioas, 0, host::DomainDesc::Kind::paging_s1);
        CHECK_THROWS_AS(fd.hwpt_alloc_nested_vtd(s1, host::uapi::HwptVtdS1{}), host::HostError);
    });
}

TEST_CASE("IOMMU_IOAS_MAP of user memory costs what a kernel map costs per table entry written", "[iommufd][sc]") {
    hosttest::VtdHostRig r;
    r.run([&] {
        host::IommuFd& fd = r.os->iommufd();
        host::HostCpu& cpu = r.os->cpu();
        const host::HostCpuParams& cp = cpu.params();
        const uint32_t ioas = fd.ioas_alloc();
        (void)fd.hwpt_alloc(ioas, 0, host::DomainDesc::Kind::paging_s2);
        constexpr uint64_t kBase = 0x4000'0000, kPa = 0x2'0000'0000;
        fd.map_user(ioas, kBase, kPa, 4096); // builds the tables down to the leaf table
        const auto cost = [&](const std::function<void()>& f) {
            const Duration t0 = cpu.now();
            f();
            return cpu.now() - t0;
        };
        // 16 leaves in the same leaf table: no new table, the same entries written either way.
        const Duration user = cost([&] { fd.map_user(ioas, kBase + 0x1000, kPa + 0x1000, 16 * 4096); });
        const Duration kernel = cost([&] { (void)fd.map(ioas, 16 * 4096, kBase + 0x20000); });
        CHECK(user == kernel);
        CHECK(user >= cp.call_overhead + cp.pte_write * 16); // calibration.md "PTE write per 4 KiB page", per entry
    });
}
