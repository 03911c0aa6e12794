// SPDX-License-Identifier: Apache-2.0
#include "sim/component_types.hpp"

#include "models/mem/memory.hpp"
#include "models/pcie/dma_endpoint.hpp"
#include "models/pcie/root_complex.hpp"

namespace iommusim::sim {

namespace {

uint64_t derive_seed(uint64_t seed, const std::string& name) {
    uint64_t h = 0xcbf29ce484222325ULL ^ seed; // FNV-1a over the name: stable across runs and hosts
    for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ULL;
    return h ? h : 1;
}

const Schema<pcie::StreamWorkloadParams>& stream_schema() {
    static const auto s = [] {
        using P = pcie::StreamWorkloadParams;
        Schema<P> sc;
        sc.integer("buffer_base", &P::buffer_base, "address", "IOVA (or physical address without IOMMU) of the buffer; default above the 4 GiB MMIO hole")
            .size("buffer_bytes", &P::buffer_bytes, "buffer size swept sequentially; default 1 MiB", 64)
            .integer("request_bytes", &P::request_bytes, "bytes", "payload per request; default 256 B = a common PCIe Max_Payload_Size", 1, 4096)
            .integer("read_percent", &P::read_percent, "%", "share of requests that are reads", 0, 100)
            .integer("requests", &P::requests, "requests", "requests to issue; 0 = until the simulation ends")
            .integer("seed", &P::seed, "", "seed of the read/write choice; 0 = derived from the platform seed and device name");
        return sc;
    }();
    return s;
}

const Schema<pcie::DmaEndpointParams>& dma_schema() {
    static const auto s = [] {
        using P = pcie::DmaEndpointParams;
        Schema<P> sc;
        sc.integer("outstanding", &P::outstanding, "requests",
                   "max overlapping non-posted requests; default 32 = a typical DMA engine read tracker", 1, 768)
            .number("rate_gbps", &P::rate_gbps, "GB/s", "issue-rate cap; 0 = unlimited (bounded by latency / outstanding)")
            .time_ns("quantum_ns", &P::quantum, "temporal-decoupling quantum of the generator thread; default 1 us", 1.0);
        return sc;
    }();
    return s;
}

const std::vector<std::string> kWorkloadKeys = {"type"};

std::any parse_dma(const json& dev, const std::string& path, const std::vector<std::string>& common) {
    pcie::DmaEndpointParams p;
    std::vector<std::string> allowed = common;
    for (auto& k : dma_schema().keys()) allowed.push_back(k);
    allowed.push_back("pasid");
    allowed.push_back("workload");
    check_keys(dev, path, allowed);
    json own = json::object();
    for (auto& k : dma_schema().keys())
        if (dev.contains(k)) own[k] = dev[k];
    dma_schema().parse(own, path, p);
    if (dev.contains("pasid")) {
        p.pasid_enabled = true;
        p.pasid = static_cast<uint32_t>(read::u64(dev["pasid"], path + "/pasid", 0, pcie::kPasidMask));
    }
    if (dev.contains("workload")) {
        const json& w = read::object(dev["workload"], path + "/workload");
        const std::string wpath = path + "/workload";
        if (!w.contains("type")) throw ConfigError(wpath, "missing key \"type\" (expected \"stream\")");
        std::string t = read::string(w["type"], wpath + "/type");
        if (t != "stream") throw ConfigError(wpath + "/type", "unknown workload type \"" + t + "\" (known: stream)");
        json rest = w;
        rest.erase("type");
        stream_schema().parse(rest, wpath, p.workload);
    }
    return p;
}

json dump_dma(const std::any& a) {
    const auto& p = std::any_cast<const pcie::DmaEndpointParams&>(a);
    json j = dma_schema().dump(p);
    if (p.pasid_enabled) j["pasid"] = p.pasid;
    json w = json::object();
    w["type"] = "stream";
    merge_into(w, stream_schema().dump(p.workload));
    j["workload"] = w;
    return j;
}

void document_dma(std::vector<ParamSection>& out) {
    ParamSection s{"device:dma_engine", "DMA endpoint driven by a traffic generator", {}};
    dma_schema().document(pcie::DmaEndpointParams{}, "", s.params);
    s.params.push_back({"pasid", "integer [0, 1048575]", "", "(absent)", "PASID carried by every request; absent = requests without PASID"});
    out.push_back(std::move(s));
    ParamSection w{"workload:stream", "sequential stream over a buffer (devices[].workload with \"type\": \"stream\")", {}};
    stream_schema().document(pcie::StreamWorkloadParams{}, "", w.params);
    out.push_back(std::move(w));
}

std::unique_ptr<sc_core::sc_module> build_dma(const DeviceConfig& d, pcie::Bdf rid, BuildContext& ctx) {
    auto p = std::any_cast<pcie::DmaEndpointParams>(d.params);
    p.requester = rid;
    if (p.workload.seed == 0) p.workload.seed = derive_seed(ctx.platform.seed, d.name);
    auto dev = std::make_unique<pcie::DmaEndpoint>(d.name.c_str(), p, &ctx.stats);
    dev->upstream.bind(ctx.root_complex.ports);
    return dev;
}

} // namespace

const std::vector<DeviceType>& device_types() {
    static const std::vector<DeviceType> table = {
        {"dma_engine", "DMA endpoint driven by a traffic generator", parse_dma, dump_dma, document_dma, build_dma},
    };
    return table;
}

const std::vector<IommuType>& iommu_types() {
    static const std::vector<IommuType> table = {};
    return table;
}

} // namespace iommusim::sim
