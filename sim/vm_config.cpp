// SPDX-License-Identifier: Apache-2.0
#include "sim/vm_config.hpp"

#include <algorithm>

#include "sim/platform_config.hpp"

namespace iommusim::sim {

namespace {

using host::vm::VmmCosts;
using host::vm::VmParams;

const Schema<VmmCosts>& vmm_schema() {
    static const auto s = [] {
        Schema<VmmCosts> sc;
        sc.time_ns("exit_ns", &VmmCosts::exit,
                   "VM exit to the user-space VMM per trapped register access; default 2000 = half of calibration.md "
                   "\"MMIO exit to a user-space VMM and back\" 3-5 us x86 (midpoint 4 us; the split is an estimate)")
            .time_ns("entry_ns", &VmmCosts::entry, "return to the guest (VM entry); default 2000, the other half of the same row")
            .time_ns("ioctl_ns", &VmmCosts::ioctl, "one iommufd ioctl; default 445 = calibration.md \"syscall round trip (ioctl)\" 400-490 ns midpoint")
            .time_ns("decode_ns", &VmmCosts::decode,
                     "VMM decode of one guest queue entry; default 55 = calibration.md \"cache-line hand-off between cores\" "
                     "45-65 ns midpoint (reading the line the vCPU wrote) [estimate]")
            .time_ns("shadow_read_ns", &VmmCosts::shadow_read,
                     "one guest table read by the VMM (entry re-reads, caching-mode shadowing); default 90 = calibration.md "
                     "\"DRAM idle read latency\" 81-90 ns")
            .time_ns("kernel_exit_ns", &VmmCosts::kernel_exit,
                     "VM exit handled in KVM and the VM entry back (a guest WBINVD); default 600 = calibration.md "
                     "\"VM exit + entry, trivial in-kernel handler\" ~600 ns x86")
            .time_ns("wbinvd_flush_ns", &VmmCosts::wbinvd_flush,
                     "host WBINVD for a guest WBINVD while the VM has non-coherent DMA; default 461000 [estimate]: a 60 MiB "
                     "LLC (Xeon 8380) all dirty written back at 136.4 GB/s = calibration.md \"usable bandwidth\" ICX 176 GB/s "
                     "less 22.5 % for writes (\"loaded-latency shape\")")
            .time_ns("event_wakeup_ns", &VmmCosts::event_wakeup,
                     "the VMM's event thread woken from poll() on the iommufd fault queue / vEVENTQ (page_requests); "
                     "default 1500 = calibration.md \"MSI to handler entry, bare metal ~1.5 us\" [estimate, weak], the "
                     "same delivery path as host.driver.iopf_wakeup_ns; its read() / write() cost ioctl_ns each");
        return sc;
    }();
    return s;
}

const Schema<VmParams>& vm_schema() {
    static const auto s = [] {
        Schema<VmParams> sc;
        sc.enumeration<host::vm::ViommuMode>(
              "mode", &VmParams::mode,
              "nested: guest stage 1 over the host stage 2, invalidations forwarded through iommufd; caching_mode: VT-d "
              "CM=1 shadowing of guest second-stage tables (QEMU's baseline); accelerated: nested, the guest's queue "
              "executed by the unit without a trap (AMD hardware vIOMMU: the IOMMU needs viommu_guests > 0; SMMUv3 CMDQV "
              "vCMDQ: the IOMMU needs cmdqv_vintfs > 1)",
              {{"nested", host::vm::ViommuMode::nested},
               {"caching_mode", host::vm::ViommuMode::caching_mode},
               {"accelerated", host::vm::ViommuMode::accelerated}})
            .size("ram_bytes", &VmParams::ram_bytes,
                  "guest RAM, mapped into the nesting parent at VM creation; default 64 MiB (a choice: the guests' tables and buffers)",
                  uint64_t{32} << 20, uint64_t{1} << 36)
            .size("ram_gpa", &VmParams::ram_gpa, "guest-physical address of guest RAM; default 1 GiB", 1u << 20, uint64_t{1} << 46)
            .size("guest_table_bytes", &VmParams::guest_table_bytes,
                  "guest RAM the guest kernel keeps for IOMMU tables and queues; default 16 MiB", 1u << 20, uint64_t{1} << 34)
            .integer("pasid_quota", &VmParams::pasid_quota, "PASIDs",
                     "quota of the VM's PASID set: guest PASIDs (set-private IDs) it may bind; default 64 (a choice)", 1,
                     (1u << 20) - 1)
            .custom("stage2_page_bytes", "size", "bytes",
                    "leaf size of the stage-2 map of guest RAM: 4KiB or 2MiB; default 4 KiB (VFIO maps the backing's page "
                    "size; no huge pages)",
                    [](VmParams& p, const json& j, const std::string& path) {
                        const uint64_t b = read::size(j, path, 4096, uint64_t{2} << 20);
                        if (b != 4096 && b != (uint64_t{2} << 20)) throw ConfigError(path, "expected 4KiB or 2MiB");
                        p.stage2_page_shift = b == 4096 ? 12 : 21;
                    },
                    [](const VmParams& p) { return json(read::format_size(uint64_t{1} << p.stage2_page_shift)); })
            .boolean("drop_forwarded_atc_invalidation", &VmParams::drop_forwarded_atc,
                     "a deliberately broken VMM that never forwards the guest's ATC invalidations (AMD INVALIDATE_IOTLB_PAGES, "
                     "SMMUv3 CMD_ATC_INV); the oracle must report violations")
            .boolean("page_requests", &VmParams::page_requests,
                     "the VMM delivers the passed-through devices' page requests to the guest (iommufd fault queue on "
                     "every nested HWPT, injected into the guest's own queue with the virtual ID, the guest's response "
                     "trapped and written back) and, where Linux has one (SMMUv3), stage-1 events through a vEVENTQ; "
                     "SMMUv3: stalls (the SMMU must stall), default false (the guest sees no PRI)")
            .object("vmm", &VmParams::vmm, vmm_schema(), "VMM trap and emulation costs");
        return sc;
    }();
    return s;
}

pcie::Bdf parse_rid(const json& j, const std::string& path) {
    const std::string s = read::string(j, path);
    try {
        return pcie::parse_bdf(s);
    } catch (const std::exception&) {
        throw ConfigError(path, "expected a requester ID \"BB:DD.F\" (hex), got \"" + s + "\"");
    }
}

} // namespace

std::vector<VmConfig> parse_vms(const json& arr, std::set<std::string>& names, const std::vector<std::string>& iommus,
                                const std::set<std::string>& devices) {
    std::vector<VmConfig> out;
    read::array(arr, "/vms");
    std::set<std::string> assigned;
    for (size_t i = 0; i < arr.size(); ++i) {
        const std::string path = "/vms/" + std::to_string(i);
        const json& o = read::object(arr[i], path);
        VmConfig v;
        v.name = component_name(o, path, names);
        if (!o.contains("iommu")) throw ConfigError(path, "missing key \"iommu\" (the physical IOMMU its devices sit behind)");
        v.iommu = read::string(o["iommu"], path + "/iommu");
        if (std::find(iommus.begin(), iommus.end(), v.iommu) == iommus.end())
            throw ConfigError(path + "/iommu", "no IOMMU named \"" + v.iommu + "\" in /iommus");
        json rest = o;
        for (const char* k : {"name", "iommu", "devices"}) rest.erase(k);
        vm_schema().parse(rest, path, v.params);
        if (v.params.guest_table_bytes >= v.params.ram_bytes)
            throw ConfigError(path + "/guest_table_bytes", "must be smaller than ram_bytes");
        if (v.params.ram_bytes % (uint64_t{1} << v.params.stage2_page_shift))
            throw ConfigError(path + "/ram_bytes", "must be a multiple of stage2_page_bytes");
        if (o.contains("devices")) {
            const json& ds = read::array(o["devices"], path + "/devices");
            std::set<uint16_t> vrids;
            for (size_t k = 0; k < ds.size(); ++k) {
                const std::string dp = path + "/devices/" + std::to_string(k);
                const json& d = read::object(ds[k], dp);
                check_keys(d, dp, {"device", "function", "virtual_rid"});
                VmDeviceConfig c;
                if (!d.contains("device") || !d.contains("virtual_rid"))
                    throw ConfigError(dp, "expected keys \"device\" and \"virtual_rid\"");
                c.device = read::string(d["device"], dp + "/device");
                if (!devices.count(c.device)) throw ConfigError(dp + "/device", "no device named \"" + c.device + "\" in /devices");
                if (d.contains("function")) c.function = static_cast<uint8_t>(read::u64(d["function"], dp + "/function", 0, 255));
                c.virtual_rid = parse_rid(d["virtual_rid"], dp + "/virtual_rid");
                if (!vrids.insert(c.virtual_rid.raw).second)
                    throw ConfigError(dp + "/virtual_rid", "virtual RID " + c.virtual_rid.str() + " is used twice in this VM");
                if (!assigned.insert(c.device + "/" + std::to_string(c.function)).second)
                    throw ConfigError(dp + "/device", "device \"" + c.device + "\" is already passed through to a VM");
                v.devices.push_back(c);
            }
        }
        out.push_back(std::move(v));
    }
    return out;
}

json dump_vms(const std::vector<VmConfig>& vms) {
    json arr = json::array();
    for (const auto& v : vms) {
        json o = {{"name", v.name}, {"iommu", v.iommu}};
        merge_into(o, vm_schema().dump(v.params));
        o["devices"] = json::array();
        for (const auto& d : v.devices)
            o["devices"].push_back({{"device", d.device}, {"function", d.function}, {"virtual_rid", d.virtual_rid.str()}});
        arr.push_back(std::move(o));
    }
    return arr;
}

void document_vms(std::vector<ParamSection>& out) {
    ParamSection s{"vms", "a virtual machine (/vms/N): {name, iommu, devices: [{device, function, virtual_rid}], ...}", {}};
    vm_schema().document(VmParams{}, "", s.params);
    out.push_back(std::move(s));
}

} // namespace iommusim::sim
