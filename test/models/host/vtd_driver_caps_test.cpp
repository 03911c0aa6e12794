// SPDX-License-Identifier: Apache-2.0
// The capability query of the VT-d backend and how it drives the object
// model's choices: formats, levels, apertures and page sizes of new domains
// come from what the unit's CAP/ECAP advertise, not from IommuFd.
#include <catch2/catch.hpp>

#include "models/host/host.hpp"
#include "models/host/vtd_driver.hpp"
#include "models/iommu/vtd/vtd_regs.hpp"
#include "test/models/host/vtd_host_rig.hpp"

using namespace iommusim;
using host::DomainDesc;
using host::HostError;
using host::page_size_bit;

TEST_CASE("the VT-d backend reads its capabilities from CAP and ECAP", "[unit][host][vtd][caps]") {
    iommu::vtd::VtdParams p;
    auto caps_of = [](const iommu::vtd::VtdParams& q) {
        iommu::vtd::VtdRegs r(q);
        return host::VtdDriver::decode_caps(r.cap(), r.ecap());
    };
    auto c = caps_of(p);
    CHECK(c.s1.supported);
    CHECK(c.s1.has_format(iommu::PtFormat::x86_64));
    CHECK(c.s1.has_levels(4));
    CHECK(c.s1.has_levels(5));
    CHECK_FALSE(c.s1.has_levels(3));
    CHECK(c.s1.page_sizes == (page_size_bit(12) | page_size_bit(21) | page_size_bit(30)));
    CHECK(c.s2.has_format(iommu::PtFormat::vtd_ss));
    CHECK(c.s2.has_levels(3));
    CHECK(c.s2.input_bits == 57);
    CHECK(c.pasid_bits == 20);
    CHECK(c.ats);
    CHECK(c.pri);
    CHECK(c.nesting);
    CHECK(c.snoop_control);
    CHECK(c.pass_through);
    CHECK(c.domain_tags == 65536);

    p.fl_5level = false;
    p.fl_1g = false;
    p.sl_3level = false;
    p.sl_1g = false;
    p.pasid = false;
    p.page_requests = false;
    p.snoop_control = false;
    p.nd = 2;
    p.mgaw = 48;
    c = caps_of(p);
    CHECK_FALSE(c.s1.has_levels(5));
    CHECK(c.s1.page_sizes == (page_size_bit(12) | page_size_bit(21)));
    CHECK_FALSE(c.s2.has_levels(3));
    CHECK(c.s2.page_sizes == (page_size_bit(12) | page_size_bit(21)));
    CHECK(c.s2.input_bits == 48);
    CHECK(c.pasid_bits == 0);
    CHECK_FALSE(c.pri);
    CHECK_FALSE(c.snoop_control);
    CHECK(c.domain_tags == 256);
}

namespace {
struct CapsRig : hosttest::VtdHostRig {
    explicit CapsRig(const iommu::vtd::VtdParams& p, const host::HostParams& hp = {}) : VtdHostRig(p, hp) {}
};

HostError::Kind error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const HostError& e) {
        return e.kind();
    }
    FAIL("no HostError");
    return HostError::Kind::busy;
}
} // namespace

TEST_CASE("the unit's capabilities decide domain formats, levels, apertures and page sizes", "[sc][host][vtd][caps]") {
    iommu::vtd::VtdParams p;
    p.fl_1g = false;     // first stage: 4 KiB and 2 MiB leaves only
    p.fl_5level = false; // first stage: 4 levels only
    p.sl_5level = false; // second stage: 3 or 4 levels (4 in common: Linux's agaw is 48-bit)
    CapsRig rig(p);
    rig.run([&] {
        auto& fd = rig.os->iommufd();
        const uint32_t ioas = fd.ioas_alloc();
        CHECK(error_of([&] { fd.hwpt_alloc(ioas, 0, DomainDesc::Kind::paging_s1, 5); }) == HostError::Kind::invalid);
        // A 5-level second stage is not advertised (SAGAW): the backend refuses it.
        CHECK(error_of([&] { fd.hwpt_alloc(ioas, 0, DomainDesc::Kind::paging_s2, 5); }) == HostError::Kind::invalid);
        const auto f1 = rig.drv->paging_format(DomainDesc::Kind::paging_s1, std::nullopt);
        CHECK(f1.stage.format == iommu::PtFormat::x86_64);
        CHECK(f1.stage.levels == 4);
        CHECK(f1.aperture_limit == uint64_t{1} << 47); // the lower canonical half
        const auto f2 = rig.drv->paging_format(DomainDesc::Kind::paging_s2, 3);
        CHECK(f2.stage.format == iommu::PtFormat::vtd_ss);
        CHECK(f2.aperture_limit == uint64_t{1} << 39);
        const uint32_t s1 = fd.hwpt_alloc(ioas, 0, DomainDesc::Kind::paging_s1);
        // FL1GP clear: a 1 GiB page cannot go into the first-stage domain; 2 MiB can.
        CHECK(error_of([&] { fd.map(ioas, uint64_t{1} << 30, std::nullopt, 30); }) == HostError::Kind::invalid);
        const uint64_t iova = fd.map(ioas, uint64_t{1} << 21, std::nullopt, 21);
        CHECK(iova % (uint64_t{1} << 21) == 0);
        // IOVAs are handed out top-down below 2^47: a 3-level second-stage domain (39-bit
        // aperture) cannot join this IOAS any more.
        REQUIRE(iova >= (uint64_t{1} << 39));
        CHECK(error_of([&] { fd.hwpt_alloc(ioas, 0, DomainDesc::Kind::paging_s2, 3); }) == HostError::Kind::invalid);
        const uint32_t ioas2 = fd.ioas_alloc();
        fd.hwpt_alloc(ioas2, 0, DomainDesc::Kind::paging_s2, 3);
        CHECK(fd.map(ioas2, 4096) < (uint64_t{1} << 39));
        (void)s1;
    });
}

TEST_CASE("a unit whose two stages share no table depth is refused at enable, as Linux ignores such a DRHD",
          "[sc][host][vtd][caps]") {
    // First stage 4 levels only, second stage 3 or 5: Linux's iommu_calculate_agaw finds no
    // width both support ("Cannot get a valid agaw"), and the unit is not used.
    iommu::vtd::VtdParams p;
    p.fl_5level = false;
    p.sl_4level = false;
    CapsRig rig(p);
    CHECK_THROWS_WITH(sc_core::sc_start(sc_core::sc_time(10, sc_core::SC_MS)),
                      Catch::Contains("no usable address width"));
}

TEST_CASE("SVA is refused when the unit cannot share the CPU's page tables", "[sc][host][vtd][caps]") {
    iommu::vtd::VtdParams p;
    p.pasid = false;
    CapsRig rig(p);
    rig.run([&] {
        auto& fd = rig.os->iommufd();
        const uint32_t pid = fd.process_create();
        CHECK(error_of([&] { fd.hwpt_alloc_sva(pid, 0); }) == HostError::Kind::invalid);
        CHECK_FALSE(rig.drv->caps().pasid_bits);
    });
}

TEST_CASE("hwpt_free invalidates the domain and waits before its Domain-ID goes to another domain",
          "[sc][host][vtd][domain_tags]") {
    CapsRig rig(iommu::vtd::VtdParams{});
    host::DeviceInfo d;
    d.rid = pcie::Bdf(0x0300);
    rig.os->iommufd().add_device(d, 0);
    rig.run([&] {
        auto& fd = rig.os->iommufd();
        const uint32_t ioas = fd.ioas_alloc();
        const uint32_t a = fd.hwpt_alloc(ioas, 0, DomainDesc::Kind::paging_s2);
        const uint64_t iova = fd.map(ioas, 4096);
        fd.attach(d.rid, std::nullopt, a);
        DomainDesc da;
        da.id = a;
        const uint32_t did = rig.drv->domain_tag(da);
        // A DMA caches the translation under the DID.
        uint64_t v = 0;
        sc_core::sc_time t = sc_core::SC_ZERO_TIME;
        pcie::TlpExtension ext;
        ext.requester = d.rid;
        REQUIRE(rig.dev.access(tlm::TLM_READ_COMMAND, iova, &v, 8, t, &ext) == tlm::TLM_OK_RESPONSE);
        CHECK(error_of([&] { fd.hwpt_free(a); }) == HostError::Kind::busy); // still attached
        fd.detach(d.rid, std::nullopt);
        const double before = stats::numeric_value(*rig.root.find("dmar0.descriptors"));
        fd.hwpt_free(a);
        CHECK(stats::numeric_value(*rig.root.find("dmar0.descriptors")) > before); // flushed and waited
        CHECK(error_of([&] { fd.hwpt_free(a); }) == HostError::Kind::not_found);
        // The next domain gets the freed DID (lowest free) and translates its own mapping.
        const uint32_t ioas2 = fd.ioas_alloc();
        const uint32_t b = fd.hwpt_alloc(ioas2, 0, DomainDesc::Kind::paging_s2);
        const uint64_t iova2 = fd.map(ioas2, 4096, iova);
        CHECK(iova2 == iova);
        fd.attach(d.rid, std::nullopt, b);
        DomainDesc db;
        db.id = b;
        CHECK(rig.drv->domain_tag(db) == did);
        REQUIRE(rig.dev.access(tlm::TLM_READ_COMMAND, iova, &v, 8, t, &ext) == tlm::TLM_OK_RESPONSE);
        CHECK(ext.output_address == *fd.lookup(ioas2, iova));
        CHECK(ext.output_address != *fd.lookup(ioas, iova));
    });
}

namespace {
host::HostParams host_with(host::CpuArch a) {
    host::HostParams hp;
    hp.cpu.arch = a;
    return hp;
}
} // namespace

TEST_CASE("x86-64 5-level CPU tables: user addresses above 2^47 and SVA on a unit with 5-level first stage",
          "[sc][host][vtd][caps]") {
    CapsRig rig(iommu::vtd::VtdParams{}, host_with(host::CpuArch::x86_64_la57));
    rig.run([&] {
        auto& fd = rig.os->iommufd();
        const uint32_t pid = fd.process_create();
        const uint64_t high = uint64_t{1} << 52; // beyond 4-level paging's 48-bit space
        fd.fault_in(pid, high);
        CHECK(fd.process_mapped(pid, high));
        CHECK(error_of([&] { fd.fault_in(pid, uint64_t{1} << 56); }) == HostError::Kind::invalid); // kernel half
        fd.hwpt_alloc_sva(pid, 0);
    });
}

TEST_CASE("SVA over 5-level CPU tables is refused by a unit without 5-level first-stage tables",
          "[sc][host][vtd][caps]") {
    iommu::vtd::VtdParams four;
    four.fl_5level = false;
    CapsRig rig(four, host_with(host::CpuArch::x86_64_la57));
    rig.run([&] {
        auto& fd = rig.os->iommufd();
        const uint32_t pid = fd.process_create();
        CHECK(error_of([&] { fd.hwpt_alloc_sva(pid, 0); }) == HostError::Kind::invalid);
    });
}

TEST_CASE("x86-64 4-level CPU tables: the lower canonical half ends at 2^47", "[sc][host][vtd][caps]") {
    CapsRig rig(iommu::vtd::VtdParams{}, host_with(host::CpuArch::x86_64));
    rig.run([&] {
        auto& fd = rig.os->iommufd();
        const uint32_t pid = fd.process_create();
        fd.fault_in(pid, (uint64_t{1} << 47) - 4096);
        CHECK(error_of([&] { fd.fault_in(pid, uint64_t{1} << 47); }) == HostError::Kind::invalid);
        fd.hwpt_alloc_sva(pid, 0);
    });
}

TEST_CASE("arm64 CPU tables: TTBR0 covers 2^48 and a VT-d unit cannot share them", "[sc][host][vtd][caps]") {
    CapsRig rig(iommu::vtd::VtdParams{}, host_with(host::CpuArch::arm64));
    rig.run([&] {
        auto& fd = rig.os->iommufd();
        const uint32_t pid = fd.process_create();
        fd.fault_in(pid, (uint64_t{1} << 48) - 4096);
        CHECK(fd.process_lookup(pid, (uint64_t{1} << 48) - 4096).has_value());
        CHECK(error_of([&] { fd.fault_in(pid, uint64_t{1} << 48); }) == HostError::Kind::invalid);
        CHECK(error_of([&] { fd.hwpt_alloc_sva(pid, 0); }) == HostError::Kind::invalid);
    });
}

namespace {
/// Registers a PRI-capable device behind the unit and lets the host boot and run for 5 us.
void boot_with_pri_device(CapsRig& rig) {
    host::DeviceInfo d;
    d.rid = pcie::Bdf(0x0100);
    d.pasid = true;
    d.pri = true;
    rig.os->iommufd().add_device(d, 0);
    rig.run([&] { rig.os->cpu().spend(Duration::us(5)); });
}
} // namespace

TEST_CASE("boot sets up the page-request log and its thread on a unit with PRI and a PRI device", "[sc][host][vtd][caps][pri]") {
    CapsRig rig(iommu::vtd::VtdParams{});
    boot_with_pri_device(rig);
    CHECK(rig.drv->caps().pri);
    CHECK(rig.iommu->regs().pqa_base() != 0);
    // The page request event is programmed and unmasked: the handler thread sleeps on it.
    CHECK(rig.iommu->regs().raw32(iommu::vtd::reg::PEADDR) == host::MsiDecoder::kMsiBase);
    CHECK(rig.iommu->regs().raw32(iommu::vtd::reg::PECTL) == 0);
    CHECK(stats::numeric_value(*rig.root.find("os.prq.wakeups")) == 0); // no request, no run
}

TEST_CASE("without ECAP.PRS a PRI device gets no page-request log or handler thread", "[sc][host][vtd][caps][pri]") {
    iommu::vtd::VtdParams p;
    p.page_requests = false;
    CapsRig rig(p);
    boot_with_pri_device(rig);
    CHECK_FALSE(rig.drv->caps().pri);
    CHECK(rig.iommu->regs().pqa_base() == 0);
    CHECK(rig.iommu->regs().raw32(iommu::vtd::reg::PEADDR) == 0);
}

namespace {
/// One No-Snoop read by a device attached (without PASID) to a domain of kind `kind` on a unit
/// with or without ECAP.SC. Returns whether the request reached memory snooped.
bool no_snoop_read_is_snooped(CapsRig& rig, DomainDesc::Kind kind, bool expect_enforced) {
    host::DeviceInfo d;
    d.rid = pcie::Bdf(0x0100);
    rig.os->iommufd().add_device(d, 0);
    bool snooped = false;
    rig.run([&] {
        auto& fd = rig.os->iommufd();
        const uint32_t ioas = fd.ioas_alloc();
        const uint32_t h = fd.hwpt_alloc(ioas, 0, kind);
        CHECK(fd.enforces_coherency(h) == expect_enforced); // the answer a KVM-like consumer reads
        const uint64_t iova = fd.map(ioas, 4096);
        fd.attach(d.rid, std::nullopt, h);
        pcie::TlpExtension ext;
        ext.requester = d.rid;
        ext.no_snoop = true;
        uint32_t v = 0;
        sc_core::sc_time t = sc_core::SC_ZERO_TIME;
        REQUIRE(rig.dev.access(tlm::TLM_READ_COMMAND, iova, &v, 4, t, &ext) == tlm::TLM_OK_RESPONSE);
        snooped = !ext.no_snoop;
    });
    return snooped;
}
double stat(const CapsRig& rig, const char* dotted) {
    const stats::Entry* e = rig.root.find(dotted);
    REQUIRE(e);
    return stats::numeric_value(*e);
}
} // namespace

TEST_CASE("with ECAP.SC the driver sets PGSNP and a first-stage domain's No-Snoop requests are forced snooped",
          "[sc][host][vtd][caps][coherency]") {
    CapsRig rig(iommu::vtd::VtdParams{}); // snoop_control (ECAP.SC) on by default
    // x86-64 first-stage leaves have no snoop bit: only the PASID entry's PGSNP can force it.
    CHECK(no_snoop_read_is_snooped(rig, DomainDesc::Kind::paging_s1, true));
    CHECK(stat(rig, "dmar0.snoop_forced") == 1);
    CHECK(stat(rig, "dmar0.no_snoop_to_memory") == 0);
    CHECK(stat(rig, "os.iommufd.noncoherent_domains") == 0);
}

TEST_CASE("with ECAP.SC a second-stage domain enforces coherency too (PGSNP and SNP leaves)", "[sc][host][vtd][caps][coherency]") {
    CapsRig rig(iommu::vtd::VtdParams{});
    CHECK(no_snoop_read_is_snooped(rig, DomainDesc::Kind::paging_s2, true));
    CHECK(stat(rig, "dmar0.snoop_forced") == 1);
}

TEST_CASE("without ECAP.SC no domain enforces coherency and No-Snoop requests reach memory non-snooped",
          "[sc][host][vtd][caps][coherency]") {
    iommu::vtd::VtdParams p;
    p.snoop_control = false;
    CapsRig rig(p);
    CHECK_FALSE(no_snoop_read_is_snooped(rig, DomainDesc::Kind::paging_s1, false));
    CHECK(stat(rig, "dmar0.snoop_forced") == 0);
    CHECK(stat(rig, "dmar0.no_snoop_to_memory") == 1);
    CHECK(stat(rig, "os.iommufd.noncoherent_domains") == 1); // KVM would have to emulate WBINVD
}
