// SPDX-License-Identifier: Apache-2.0
#include "sim/iommu_types.hpp"

#include "models/host/host.hpp"
#include "models/host/amd_driver.hpp"
#include "models/host/smmuv3_driver.hpp"
#include "models/host/vtd_driver.hpp"
#include "models/iommu/common/walk_cache.hpp"
#include "models/iommu/amd/amd_iommu.hpp"
#include "models/iommu/smmuv3/smmuv3.hpp"
#include "models/iommu/vtd/vtd_iommu.hpp"
#include "models/mem/memory.hpp"
#include "models/pcie/fabric.hpp"
#include "sim/component_types.hpp"

namespace iommusim::sim {

namespace {

using iommu::amd::AmdParams;
using iommu::smmuv3::Smmuv3Params;
using iommu::vtd::VtdParams;

/// A cache's geometry (+ lookup latency) as one JSON object; accessors reach
/// the nested struct inside the params.
template <class P>
void cache_object(Schema<P>& sc, const std::string& key, std::function<iommu::CacheGeometry&(P&)> geo,
                  std::function<Duration*(P&)> lookup, const std::string& desc) {
    const bool has_lookup = static_cast<bool>(lookup);
    sc.custom(
        key, has_lookup ? "object {entries, ways, replacement, seed, lookup_ns}" : "object {entries, ways, replacement, seed}",
        "", desc,
        [=](P& p, const json& j, const std::string& path) {
            read::object(j, path);
            std::vector<std::string> keys = {"entries", "ways", "replacement", "seed"};
            if (has_lookup) keys.push_back("lookup_ns");
            check_keys(j, path, keys);
            iommu::CacheGeometry& g = geo(p);
            if (j.contains("entries")) g.entries = static_cast<uint32_t>(read::u64(j["entries"], path + "/entries", 0, 1u << 24));
            if (j.contains("ways")) g.ways = static_cast<uint32_t>(read::u64(j["ways"], path + "/ways", 1, 64));
            if (j.contains("replacement")) {
                const std::string r = read::string(j["replacement"], path + "/replacement");
                if (r == "lru") g.replacement = iommu::Replacement::lru;
                else if (r == "tree_plru") g.replacement = iommu::Replacement::tree_plru;
                else if (r == "random") g.replacement = iommu::Replacement::random;
                else throw ConfigError(path + "/replacement", "expected one of lru|tree_plru|random, got \"" + r + "\"");
            }
            if (j.contains("seed")) g.seed = read::u64(j["seed"], path + "/seed", 0, ~uint64_t{0});
            if (const char* why = g.check()) throw ConfigError(path, std::string("expected a usable cache geometry: ") + why);
            if (has_lookup && j.contains("lookup_ns"))
                *lookup(p) = Duration::ns(read::number(j["lookup_ns"], path + "/lookup_ns", 0, 1e6));
        },
        [=](const P& cp) {
            P& p = const_cast<P&>(cp);
            const iommu::CacheGeometry& g = geo(p);
            json o = json::object();
            o["entries"] = g.entries;
            o["ways"] = g.ways;
            o["replacement"] = g.replacement == iommu::Replacement::lru         ? "lru"
                               : g.replacement == iommu::Replacement::tree_plru ? "tree_plru"
                                                                                 : "random";
            o["seed"] = g.seed;
            if (has_lookup) o["lookup_ns"] = lookup(p)->as_ns();
            return o;
        });
}

const Schema<VtdParams>& vtd_schema() {
    static const auto s = [] {
        using P = VtdParams;
        Schema<P> sc;
        sc.integer("mgaw", &P::mgaw, "bits", "maximum guest address width (CAP.MGAW+1); default 57 (5-level parts)", 39, 57)
            .integer("haw", &P::haw, "bits", "host address width: outputs beyond it fault; default 46", 32, 52)
            .integer("nd", &P::nd, "", "CAP.ND: 2^(4+2*ND) domain IDs; default 6 (65536)", 0, 6)
            .integer("num_fault_records", &P::num_fault_records, "records", "CAP.NFR+1; default 8", 1, 255)
            .integer("mamv", &P::mamv, "", "CAP.MAMV: largest page-selective invalidation is 2^MAMV pages; default 18", 0, 63)
            .integer("pasid_bits", &P::pasid_bits, "bits", "ECAP.PSS+1; default 20", 1, 20)
            .boolean("caching_mode", &P::caching_mode, "CAP.CM (a virtual IOMMU sets it)")
            .boolean("device_tlb", &P::device_tlb, "ECAP.DT: ATS / device-TLB support")
            .boolean("pass_through", &P::pass_through, "ECAP.PT")
            .boolean("snoop_control", &P::snoop_control, "ECAP.SC: PGSNP / SNP force snooping")
            .boolean("coherent", &P::coherent,
                     "ECAP.C and ECAP.SMPWC: walks and structure reads snoop the CPU caches; false: the driver flushes every table line it writes (host.cpu.clflush_ns); default true (calibration.md \"page-walk coherency\": C=1 on most server DRHDs)")
            .boolean("nested", &P::nested, "ECAP.NEST")
            .boolean("page_requests", &P::page_requests, "ECAP.PRS")
            .boolean("execute_requests", &P::execute_requests, "ECAP.ERS")
            .boolean("supervisor_requests", &P::supervisor_requests, "ECAP.SRS")
            .boolean("pasid", &P::pasid, "ECAP.PASID")
            .boolean("fl_5level", &P::fl_5level, "CAP.FL5LP: 5-level first-stage tables")
            .boolean("fl_1g", &P::fl_1g, "CAP.FL1GP: 1 GiB first-stage pages");
        cache_object<P>(sc, "iotlb", [](P& p) -> iommu::CacheGeometry& { return p.iotlb.geometry; },
                        [](P& p) { return &p.iotlb.lookup; },
                        "IOTLB tagged by DID+PASID; default 128 entries 8-way LRU (calibration.md \"VT-d IOTLB reach, 4 KiB pages\": effective 112-126 entries), 2 ns lookup (estimate)");
        cache_object<P>(sc, "context_cache", [](P& p) -> iommu::CacheGeometry& { return p.context_cache.geometry; },
                        [](P& p) { return &p.context_cache.lookup; }, "context cache keyed by RID; default 128 entries 4-way, 1 ns");
        cache_object<P>(sc, "pasid_cache", [](P& p) -> iommu::CacheGeometry& { return p.pasid_cache.geometry; },
                        [](P& p) { return &p.pasid_cache.lookup; }, "PASID cache keyed by (RID, PASID); default 256 entries 8-way, 1 ns");
        cache_object<P>(sc, "s1_walk_cache", [](P& p) -> iommu::CacheGeometry& { return p.walker.s1_walk_cache.per_level; },
                        {}, "first-stage paging-structure cache, per level; default 128 entries 4-way (calibration.md PWC-L3 64-128)");
        cache_object<P>(sc, "s2_walk_cache", [](P& p) -> iommu::CacheGeometry& { return p.walker.s2_walk_cache.per_level; },
                        {}, "second-stage paging-structure cache, per level; default 128 entries 4-way");
        sc.integer("walkers", &P::walkers, "walks", "concurrent page walks (walk slots); default 1 (calibration.md \"walker concurrency\": the measured walk-read and IOTLB-miss costs agree only if walks are serialized [estimate]; sweep 1/2/4)", 1, 256)
            .time_ns("table_read_ns", &P::table_read,
                     "IOMMU-side cost per table read on top of memory latency; default 107 = calibration.md 197 ns fitted walk read - 90 ns DRAM")
            .time_ns("mmio_access_ns", &P::mmio_access, "register access inside the unit; default 5 ns")
            .time_ns("descriptor_fetch_ns", &P::descriptor_fetch, "IOMMU-side cost per queue descriptor fetch on top of memory; default 107 ns (as a walk read)")
            .time_ns("per_descriptor_ns", &P::per_descriptor, "processing per descriptor; default 25 ns: calibration.md \"invalidation path\" processing 10-40 ns [estimate], the midpoint")
            .time_ns("per_entry_invalidate_ns", &P::per_entry_invalidate, "per cache entry dropped; default 1 ns")
            .time_ns("ats_message_send_ns", &P::ats_message_send, "issuing one ATS Invalidate Request; default 20 ns")
            .time_ns("status_write_ns", &P::status_write, "posted status / record / MSI write; default 60 ns")
            .time_ns("pipeline_ns", &P::pipeline, "fixed per-request pipeline latency; default 2 ns")
            .custom("ite_timeout_us", "number", "us", "device-TLB invalidation time-out before ITE; default 1000 us (PCIe allows 1 min: calibration.md)",
                    [](P& p, const json& j, const std::string& path) { p.ite_timeout = Duration::us(read::number(j, path, 0.001, 1e8)); },
                    [](const P& p) { return json(p.ite_timeout.as_us()); });
        return sc;
    }();
    return s;
}

std::any parse_vtd(const json& obj, const std::string& path) {
    VtdParams p;
    vtd_schema().parse(obj, path, p);
    return p;
}

json dump_vtd(const std::any& a) { return vtd_schema().dump(std::any_cast<const VtdParams&>(a)); }

void document_vtd(std::vector<ParamSection>& out) {
    ParamSection s{"iommu:vtd", "Intel VT-d remapping unit in scalable mode (/iommus/N with \"type\": \"vtd\")", {}};
    vtd_schema().document(VtdParams{}, "", s.params);
    out.push_back(std::move(s));
}

IommuUnit build_vtd(const ComponentConfig& c, BuildContext& ctx) {
    VtdParams p = std::any_cast<const VtdParams&>(c.params);
    for (auto [g, cache] : {std::pair{&p.iotlb.geometry, "iotlb"}, {&p.context_cache.geometry, "context_cache"},
                            {&p.pasid_cache.geometry, "pasid_cache"}, {&p.walker.s1_walk_cache.per_level, "s1_walk_cache"},
                            {&p.walker.s2_walk_cache.per_level, "s2_walk_cache"}, {&p.walker.s2_cache.geometry, "s2_cache"}})
        reseed_cache(*g, ctx.platform.seed, c.name + "." + cache);
    return shell_unit(std::make_unique<iommu::vtd::VtdIommu>(c.name.c_str(), p, &ctx.stats));
}

std::unique_ptr<host::IommuDriver> build_vtd_driver(const ComponentConfig&, const host::DriverEnv& env) {
    return std::make_unique<host::VtdDriver>(env.name, env.mmio, env.params, env.alloc_page, env.stats, env.msi);
}

const Schema<AmdParams>& amd_schema() {
    static const auto s = [] {
        using P = AmdParams;
        Schema<P> sc;
        sc.boolean("prefetch", &P::prefetch, "EFR.PreFSup: PREFETCH_IOMMU_PAGES accepted (as a hint); default false")
            .boolean("ppr", &P::ppr, "EFR.PPRSup: peripheral page requests and the PPR log; default true")
            .boolean("nx", &P::nx, "EFR.NXSup: execute permission in v2 tables; default true")
            .boolean("guest_translation", &P::guest_translation, "EFR.GTSup: GCR3 tables and v2 guest tables (DTE.GV); default true")
            .boolean("invalidate_all", &P::invalidate_all, "EFR.IASup: INVALIDATE_IOMMU_ALL accepted; default true")
            .boolean("guest_io_protection", &P::guest_io_protection, "EFR.GIoSup: DTE.GIoV (requests without PASID through GCR3[0]); default true")
            .boolean("host_access_dirty", &P::host_access_dirty, "EFR.HASup/HDSup: hardware A/D in v1 tables (DTE.HAD); default false")
            .integer("host_levels", &P::host_levels, "levels", "EFR.HATS + 4: deepest v1 table (largest DTE.Mode); default 6 (QEMU's emulated EFR)", 4, 6)
            .integer("guest_levels", &P::guest_levels, "levels", "EFR.GATS: 4, or 5 for 5-level v2 tables; default 5 (QEMU's emulated EFR)", 4, 5)
            .integer("glx_max", &P::glx_max, "", "EFR.GLXSup: largest DTE.GLX (GCR3 levels - 1); default 1 (covers 16-bit PASIDs)", 0, 2)
            .integer("pasid_bits", &P::pasid_bits, "bits", "EFR.PASmax + 1; default 16 (Linux: hardware implements up to 16)", 1, 20)
            .integer("output_bits", &P::output_bits, "bits", "physical address width; wider table pointers are illegal; default 52 (Linux IOMMU_OUT_ADDR_BIT_SIZE)", 32, 52);
        cache_object<P>(sc, "iotlb", [](P& p) -> iommu::CacheGeometry& { return p.iotlb.geometry; }, [](P& p) { return &p.iotlb.lookup; },
                        "IOTLB tagged by DomainID+PASID; default 128 entries 8-way LRU, 2 ns [estimate: no AMD size published; calibration.md \"VT-d IOTLB reach, 4 KiB pages\" effective 112-126 entries is the only published x86 figure]");
        cache_object<P>(sc, "dte_cache", [](P& p) -> iommu::CacheGeometry& { return p.dte_cache.geometry; }, [](P& p) { return &p.dte_cache.lookup; },
                        "DTE cache keyed by DeviceID; default 128 entries 4-way, 1 ns (estimate)");
        cache_object<P>(sc, "gcr3_cache", [](P& p) -> iommu::CacheGeometry& { return p.gcr3_cache.geometry; }, [](P& p) { return &p.gcr3_cache.lookup; },
                        "GCR3-entry cache keyed by (DeviceID, PASID); default 256 entries 8-way, 1 ns (estimate)");
        cache_object<P>(sc, "v2_walk_cache", [](P& p) -> iommu::CacheGeometry& { return p.walker.s1_walk_cache.per_level; }, {},
                        "v2 (guest) PDE cache, per level; default 128 entries 4-way (calibration.md PWC-L3 64-128)");
        cache_object<P>(sc, "v1_walk_cache", [](P& p) -> iommu::CacheGeometry& { return p.walker.s2_walk_cache.per_level; }, {},
                        "v1 (host) PDE cache, per level; default 128 entries 4-way");
        sc.integer("walkers", &P::walkers, "walks", "concurrent page walks; default 1 (calibration.md \"walker concurrency\": walks behave as if serialized [estimate]; sweep 1/2/4)", 1, 256)
            .integer("viommu_guests", &P::viommu_guests, "GuestIDs",
                     "hardware vIOMMU guest contexts (guest command buffers the unit executes, DomainID / DeviceID maps); "
                     "default 0 = none (a choice)", 0, 64)
            .time_ns("table_read_ns", &P::table_read, "IOMMU-side cost per DTE/GCR3/PTE read on top of memory latency; default 107 = calibration.md 197 ns fitted walk read - 90 ns DRAM")
            .time_ns("command_fetch_ns", &P::command_fetch, "IOMMU-side cost per 16-byte command fetch on top of memory; default 107 ns (as a walk read)")
            .time_ns("per_command_ns", &P::per_command, "processing per command; default 25 ns (calibration.md invalidation path 10-40 ns, midpoint estimate)")
            .time_ns("per_entry_invalidate_ns", &P::per_entry_invalidate, "per cache entry dropped; default 1 ns (calibration.md)")
            .time_ns("mmio_access_ns", &P::mmio_access, "register access inside the unit; default 5 ns (estimate)")
            .time_ns("status_write_ns", &P::status_write, "COMPLETION_WAIT store, log record or MSI write; default 60 ns (calibration.md status write 60-100 ns, estimate)")
            .time_ns("ats_message_send_ns", &P::ats_message_send, "issuing one ATS Invalidate Request / PRG Response; default 20 ns (estimate)")
            .time_ns("pipeline_ns", &P::pipeline, "fixed per-request pipeline latency; default 2 ns (estimate)");
        // No ATS time-out parameter: the unit takes it from Control.InvTimeOut as software programs it.
        return sc;
    }();
    return s;
}

std::any parse_amd(const json& obj, const std::string& path) {
    AmdParams p;
    amd_schema().parse(obj, path, p);
    if (const char* why = p.check()) throw ConfigError(path, std::string("expected consistent AMD-Vi capabilities: ") + why);
    return p;
}

json dump_amd(const std::any& a) { return amd_schema().dump(std::any_cast<const AmdParams&>(a)); }

void document_amd(std::vector<ParamSection>& out) {
    ParamSection s{"iommu:amd", "AMD-Vi IOMMU (/iommus/N with \"type\": \"amd\")", {}};
    amd_schema().document(AmdParams{}, "", s.params);
    out.push_back(std::move(s));
}

IommuUnit build_amd(const ComponentConfig& c, BuildContext& ctx) {
    AmdParams p = std::any_cast<const AmdParams&>(c.params);
    for (auto [g, cache] : {std::pair{&p.iotlb.geometry, "iotlb"}, {&p.dte_cache.geometry, "dte_cache"},
                            {&p.gcr3_cache.geometry, "gcr3_cache"}, {&p.walker.s1_walk_cache.per_level, "s1_walk_cache"},
                            {&p.walker.s2_walk_cache.per_level, "s2_walk_cache"}, {&p.walker.s2_cache.geometry, "s2_cache"}})
        reseed_cache(*g, ctx.platform.seed, c.name + "." + cache);
    auto u = std::make_unique<iommu::amd::AmdIommu>(c.name.c_str(), p, &ctx.stats);
    IommuUnit out;
    out.upstream = &u->upstream;
    out.messages = &u->ats_inv;
    out.mmio = &u->mmio;
    out.mem = &u->mem;
    iommu::amd::AmdIommu* unit = u.get();
    out.set_observer = [unit](iommu::InvalidationObserver* o) { unit->set_invalidation_observer(o); };
    if (iommu::amd::AmdHwViommu* hw = unit->hw_viommu())
        out.wire_host = [hw, guests = p.viommu_guests](host::Host& h, host::IommuDriver& drv) {
            const unsigned port = h.add_iommu_mmio(hw->vfcntl); // the VF_CNTL BAR
            dynamic_cast<host::AmdDriver&>(drv).attach_hw_viommu(host::MmioPort(h.cpu(), port), guests);
        };
    out.module = std::move(u);
    return out;
}

std::unique_ptr<host::IommuDriver> build_amd_driver(const ComponentConfig&, const host::DriverEnv& env) {
    return std::make_unique<host::AmdDriver>(env.name, env.mmio, env.params, env.alloc_page, env.stats, env.msi);
}

const Schema<Smmuv3Params>& smmuv3_schema() {
    static const auto s = [] {
        using P = Smmuv3Params;
        using iommu::smmuv3::Httu;
        using iommu::smmuv3::StallModel;
        Schema<P> sc;
        sc.boolean("s1p", &P::s1p, "IDR0.S1P: stage-1 translation; default true (MMU-600)")
            .boolean("s2p", &P::s2p, "IDR0.S2P: stage-2 translation; default true (MMU-600)")
            .boolean("cohacc", &P::cohacc, "IDR0.COHACC: coherent table and queue accesses; default true (the driver model needs it for CMD_SYNC's MSI)")
            .enumeration("httu", &P::httu, "IDR0.HTTU: hardware access flag (access) and dirty state (access_dirty) updates; default access_dirty (MMU-600, SMMUv3.1)",
                         {{"none", Httu::none}, {"access", Httu::access}, {"access_dirty", Httu::access_dirty}})
            .boolean("hyp", &P::hyp, "IDR0.HYP: EL2 stream world (STE.STRW = EL2, TLBI_EL2_*); default true; the host driver then runs as a VHE kernel (E2H)")
            .boolean("ats", &P::ats, "IDR0.ATS: PCIe ATS (EATS, CMD_ATC_INV); default true")
            .boolean("asid16", &P::asid16, "IDR0.ASID16: 16-bit ASIDs (else 8); default true")
            .boolean("msi", &P::msi, "IDR0.MSI: MSIs (CMD_SYNC completion, event / PRI / GERROR interrupts); default true")
            .boolean("sev", &P::sev, "IDR0.SEV: CMD_SYNC CS = SIG_SEV; default true")
            .boolean("pri", &P::pri, "IDR0.PRI: page requests and the PRIQ (needs ats); default true")
            .boolean("vmid16", &P::vmid16, "IDR0.VMID16: 16-bit VMIDs (else 8); default true")
            .boolean("cd2l", &P::cd2l, "IDR0.CD2L: 2-level CD tables; default true")
            .boolean("st_2level", &P::st_2level, "IDR0.ST_LVL = 1: 2-level stream tables (Linux uses them when SIDSIZE > 8); default true")
            .enumeration("stall_model", &P::stall_model, "IDR0.STALL_MODEL: stall (stalls allowed), terminate_only, forced; default stall",
                         {{"stall", StallModel::stall}, {"terminate_only", StallModel::terminate_only}, {"forced", StallModel::forced}})
            .integer("cmdqs", &P::cmdqs, "log2 entries", "IDR1.CMDQS: largest command queue; default 19 (the field's architectural maximum; estimate for MMU-600)", 8, 19)
            .integer("evtqs", &P::evtqs, "log2 entries", "IDR1.EVTQS: largest event queue; default 19 (estimate, as cmdqs)", 0, 19)
            .integer("priqs", &P::priqs, "log2 entries", "IDR1.PRIQS: largest PRI queue; default 19 (estimate, as cmdqs)", 0, 19)
            .integer("ssidsize", &P::ssidsize, "bits", "IDR1.SSIDSIZE: SubstreamID (PASID) width; default 20 (PCIe PASID width)", 0, 20)
            .integer("sidsize", &P::sidsize, "bits", "IDR1.SIDSIZE: StreamID width; default 32 (architectural maximum, estimate; PCIe RIDs use 16)", 1, 32)
            .boolean("ril", &P::ril, "IDR3.RIL: range TLBIs (NUM/SCALE/TG/TTL, SMMUv3.2); default true")
            .boolean("pps", &P::pps, "IDR3.PPS: PRIQ-overflow auto-responses carry the request's PASID without checking STE.PPAR; default false (estimate: MMU-600 value unpublished; Linux programs STE.PPAR)")
            .boolean("ats_rec_err", &P::ats_rec_err, "IDR0.ATSRECERR: CR2.REC_CFG_ATS records configuration errors of ATS / PRI requests; default true (estimate: SMMUv3.2 feature, MMU-600 unpublished)")
            .boolean("gran4k", &P::gran4k, "IDR5.GRAN4K: 4 KiB translation granule; default true")
            .boolean("gran16k", &P::gran16k, "IDR5.GRAN16K: 16 KiB granule; default true")
            .boolean("gran64k", &P::gran64k, "IDR5.GRAN64K: 64 KiB granule; default true")
            .integer("oas_bits", &P::oas_bits, "bits", "IDR5.OAS: output address size (32, 36, 40, 42, 44, 48, 52); default 48 (MMU-600)", 32, 52)
            .integer("stall_max", &P::stall_max, "transactions", "IDR5.STALL_MAX: transactions stalled at once; default 64 (calibration.md MMU-600 64 translation slots, estimate)", 1, 65535)
            .integer("aidr_minor", &P::aidr_minor, "", "AIDR.ArchMinorRev: 2 = SMMUv3.2; default 2", 0, 15);
        cache_object<P>(sc, "ste_cache", [](P& p) -> iommu::CacheGeometry& { return p.ste_cache.geometry; },
                        [](P& p) { return &p.ste_cache.lookup; },
                        "STE cache keyed by StreamID; default 256 entries 4-way, 1 ns (calibration.md Arm MMU-600 config cache 256)");
        cache_object<P>(sc, "cd_cache", [](P& p) -> iommu::CacheGeometry& { return p.cd_cache.geometry; },
                        [](P& p) { return &p.cd_cache.lookup; },
                        "CD cache keyed by (StreamID, SubstreamID); default 256 entries 4-way, 1 ns (calibration.md MMU-600 config cache 256)");
        cache_object<P>(sc, "iotlb", [](P& p) -> iommu::CacheGeometry& { return p.iotlb.geometry; },
                        [](P& p) { return &p.iotlb.lookup; },
                        "IOTLB (TCU/TBU TLB) tagged by VMID+ASID+regime; default 2048 entries 4-way, 2 ns (calibration.md gem5 SMMUv3 TLB 2048 4-way; MMU-600 size unpublished)");
        cache_object<P>(sc, "s1_walk_cache", [](P& p) -> iommu::CacheGeometry& { return p.walker.s1_walk_cache.per_level; }, {},
                        "stage-1 walk cache, per level; default 256 entries 4-way (calibration.md MMU-600 256 per level per stage)");
        cache_object<P>(sc, "s2_walk_cache", [](P& p) -> iommu::CacheGeometry& { return p.walker.s2_walk_cache.per_level; }, {},
                        "stage-2 walk cache, per level; default 256 entries 4-way (calibration.md MMU-600 256 per level per stage)");
        sc.integer("walkers", &P::walkers, "walks", "concurrent table walks; default 16 (calibration.md gem5 SMMUv3 16 walk slots)", 1, 256)
            .time_ns("table_read_ns", &P::table_read, "unit-side cost per STE/CD/table read on top of memory latency; default 107 = calibration.md 197 ns fitted walk read - 90 ns DRAM")
            .time_ns("command_fetch_ns", &P::command_fetch, "unit-side cost per 16-byte command fetch on top of memory; default 107 ns (as a walk read)")
            .time_ns("per_command_ns", &P::per_command, "processing per command; default 40 ns (calibration.md invalidation path 10-40 ns, estimate: upper end)")
            .time_ns("per_entry_invalidate_ns", &P::per_entry_invalidate, "per cache entry dropped; default 1 ns (calibration.md invalidation path)")
            .time_ns("record_write_ns", &P::record_write, "event / PRI record or CMD_SYNC MSI write; default 60 ns (calibration.md status write 60-100 ns, estimate)")
            .time_ns("pipeline_ns", &P::pipeline, "fixed per-request latency on top of cache lookups; default 2 ns (estimate, as VT-d)")
            .time_ns("mmio_access_ns", &P::mmio_access, "register access inside the unit; default 5 ns (estimate)")
            .time_ns("ats_message_send_ns", &P::ats_message_send, "issuing one ATS Invalidate Request / PRG Response; default 20 ns (estimate)")
            .integer("cmdqv_vintfs", &P::cmdqv_vintfs, "VINTFs",
                     "CMDQ-Virtualization beside the unit (NVIDIA Tegra241 CMDQV: hardware guest command queues, VINTF0 the "
                     "host's); power of two; default 0 = none (a choice: MMU-600 has none)", 0, 64)
            .integer("cmdqv_lvcmdqs_per_vintf", &P::cmdqv_lvcmdqs_per_vintf, "queues",
                     "CMDQV logical VCMDQs per VINTF; default 2 (estimate: Tegra241's count is not public)", 1, 128)
            .integer("cmdqv_sids_per_vintf", &P::cmdqv_sids_per_vintf, "pairs",
                     "CMDQV SID_MATCH / SID_REPLACE pairs per VINTF; default 16 (estimate: TEGRA241_VINTF_NUM_SLOTS of the first Linux CMDQV series; at most 16: SID_MATCH(s) 0x40 + 4s, SID_REPLACE(s) 0x80 + 4s)", 1, 16)
            .time_ns("cmdqv_per_command_ns", &P::cmdqv_per_command,
                     "CMDQV processing per VCMDQ command after its fetch (opcode check, VMID / StreamID rewrite, dispatch); default 40 ns "
                     "(estimate: the unit's per_command, calibration.md invalidation path 10-40 ns)")
            .custom("atc_inv_timeout_us", "number", "us", "ATC invalidation time-out before CERROR_ATC_INV_SYNC; default 1000 us (PCIe allows 1 min: calibration.md; shortened so runs end, estimate)",
                    [](P& p, const json& j, const std::string& path) { p.atc_inv_timeout = Duration::us(read::number(j, path, 0.001, 1e8)); },
                    [](const P& p) { return json(p.atc_inv_timeout.as_us()); });
        return sc;
    }();
    return s;
}

std::any parse_smmuv3(const json& obj, const std::string& path) {
    Smmuv3Params p;
    smmuv3_schema().parse(obj, path, p);
    if (const char* why = p.check()) throw ConfigError(path, std::string("expected consistent SMMUv3 ID registers: ") + why);
    return p;
}

json dump_smmuv3(const std::any& a) { return smmuv3_schema().dump(std::any_cast<const Smmuv3Params&>(a)); }

void document_smmuv3(std::vector<ParamSection>& out) {
    ParamSection s{"iommu:smmuv3", "Arm SMMUv3 (/iommus/N with \"type\": \"smmuv3\")", {}};
    smmuv3_schema().document(Smmuv3Params{}, "", s.params);
    out.push_back(std::move(s));
}

IommuUnit build_smmuv3(const ComponentConfig& c, BuildContext& ctx) {
    Smmuv3Params p = std::any_cast<const Smmuv3Params&>(c.params);
    for (auto [g, cache] : {std::pair{&p.iotlb.geometry, "iotlb"}, {&p.ste_cache.geometry, "ste_cache"},
                            {&p.cd_cache.geometry, "cd_cache"}, {&p.walker.s1_walk_cache.per_level, "s1_walk_cache"},
                            {&p.walker.s2_walk_cache.per_level, "s2_walk_cache"}, {&p.walker.s2_cache.geometry, "s2_cache"}})
        reseed_cache(*g, ctx.platform.seed, c.name + "." + cache);
    auto u = std::make_unique<iommu::smmuv3::Smmuv3>(c.name.c_str(), p, &ctx.stats);
    iommu::smmuv3::Smmuv3Cmdqv* cmdqv = u->cmdqv();
    IommuUnit out = shell_unit(std::move(u));
    if (cmdqv)
        out.wire_host = [cmdqv](host::Host& h, host::IommuDriver& drv) {
            const unsigned port = h.add_iommu_mmio(cmdqv->mmio); // the CMDQV's register space
            dynamic_cast<host::Smmuv3Driver&>(drv).attach_cmdqv(host::MmioPort(h.cpu(), port), cmdqv->core().vintfs(),
                                                                cmdqv->core().queues());
        };
    return out;
}

std::unique_ptr<host::IommuDriver> build_smmuv3_driver(const ComponentConfig&, const host::DriverEnv& env) {
    return std::make_unique<host::Smmuv3Driver>(env.name, env.mmio, env.params, env.alloc_page, env.stats, env.msi);
}

} // namespace

const std::vector<IommuType>& builtin_iommu_types() {
    static const std::vector<IommuType> table = {
        {"vtd", "Intel VT-d scalable mode", parse_vtd, dump_vtd, document_vtd,
         [](const std::any& a) {
             const auto& p = std::any_cast<const VtdParams&>(a);
             return p.pasid ? unsigned{p.pasid_bits} : 0u; // ECAP.PASID, ECAP.PSS+1
         },
         [](const std::any& a) {
             const auto& p = std::any_cast<const VtdParams&>(a);
             const uint64_t walk_levels = iommu::WalkCache::kMaxLevel - 1; // one cache per level 2..kMaxLevel
             return uint64_t{p.iotlb.geometry.entries} + p.context_cache.geometry.entries + p.pasid_cache.geometry.entries +
                    walk_levels * (uint64_t{p.walker.s1_walk_cache.per_level.entries} + p.walker.s2_walk_cache.per_level.entries);
         },
         build_vtd, build_vtd_driver},
        {"amd", "AMD-Vi (device table, GCR3 tables, v1/v2 page tables, command buffer, event and PPR logs)", parse_amd,
         dump_amd, document_amd,
         [](const std::any& a) { return unsigned{std::any_cast<const AmdParams&>(a).pasid_bits}; }, // EFR.PASmax + 1
         [](const std::any& a) {
             const auto& p = std::any_cast<const AmdParams&>(a);
             const uint64_t walk_levels = iommu::WalkCache::kMaxLevel - 1;
             return uint64_t{p.iotlb.geometry.entries} + p.dte_cache.geometry.entries + p.gcr3_cache.geometry.entries +
                    walk_levels * (uint64_t{p.walker.s1_walk_cache.per_level.entries} + p.walker.s2_walk_cache.per_level.entries);
         },
         build_amd, build_amd_driver},
        {"smmuv3", "Arm SMMUv3 (stream and CD tables, CMDQ with CMD_SYNC, EVTQ and PRIQ, ATS)", parse_smmuv3,
         dump_smmuv3, document_smmuv3,
         [](const std::any& a) {
             const auto& p = std::any_cast<const Smmuv3Params&>(a);
             return p.s1p ? unsigned{p.ssidsize} : 0u; // IDR1.SSIDSIZE (SubstreamIDs need stage 1)
         },
         [](const std::any& a) {
             const auto& p = std::any_cast<const Smmuv3Params&>(a);
             const uint64_t walk_levels = iommu::WalkCache::kMaxLevel - 1;
             return uint64_t{p.iotlb.geometry.entries} + p.ste_cache.geometry.entries + p.cd_cache.geometry.entries +
                    walk_levels * (uint64_t{p.walker.s1_walk_cache.per_level.entries} + p.walker.s2_walk_cache.per_level.entries);
         },
         build_smmuv3, build_smmuv3_driver},
    };
    return table;
}

} // namespace iommusim::sim
