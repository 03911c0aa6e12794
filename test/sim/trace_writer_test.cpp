// SPDX-License-Identifier: Apache-2.0
// trace.json beyond invalidations: requests per requester, page walks per
// walk slot, faults, page requests and counters, bounded and sampled.
#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "test/support/cli.hpp"

using namespace iommusim::test;
using nlohmann::ordered_json;

namespace {

/// The SVA scenario with the device still issuing after its PASID was detached, so its
/// last requests fault.
ordered_json faulting_sva_platform() {
    ordered_json p = ordered_json::parse(slurp(source_path("platforms/vtd-sva-scenario.json")));
    p["devices"][0]["stop_at_us"] = 390;
    p["scenario"].erase(p["scenario"].size() - 1); // acc0.errors is no longer 0
    p["outputs"] = {{"trace", true}};
    return p;
}

struct Trace {
    ordered_json stats;
    ordered_json trace;
    std::map<std::string, std::string> track_of; ///< "pid/tid" -> "process/thread"
};

Trace run_traced(const ordered_json& p, const std::string& tag, const std::string& extra = "") {
    auto dir = scratch_dir(tag);
    write_file(dir / "p.json", p.dump(2));
    auto r = run_cli("run '" + (dir / "p.json").string() + "' --quiet --out '" + (dir / "out").string() + "' " + extra, tag);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    Trace t{ordered_json::parse(slurp(dir / "out" / "stats.json")), ordered_json::parse(slurp(dir / "out" / "trace.json")), {}};
    std::map<int, std::string> processes;
    for (const auto& e : t.trace["traceEvents"])
        if (e["ph"] == "M" && e["name"] == "process_name") processes[e["pid"].get<int>()] = e["args"]["name"].get<std::string>();
    for (const auto& e : t.trace["traceEvents"])
        if (e["ph"] == "M" && e["name"] == "thread_name")
            t.track_of[std::to_string(e["pid"].get<int>()) + "/" + std::to_string(e["tid"].get<int>())] =
                processes[e["pid"].get<int>()] + "/" + e["args"]["name"].get<std::string>();
    return t;
}

std::string track(const Trace& t, const ordered_json& e) {
    return t.track_of.at(std::to_string(e["pid"].get<int>()) + "/" + std::to_string(e["tid"].get<int>()));
}

} // namespace

TEST_CASE("trace.json shows each request, walk, fault and counter the stats count", "[sim][trace]") {
    const Trace t = run_traced(faulting_sva_platform(), "trace-model");
    const auto& dmar = t.stats["dmar0"];
    uint64_t begins = 0, ends = 0, walks = 0, faults = 0;
    std::set<std::string> counters;
    std::map<uint64_t, double> open_spans;
    for (const auto& e : t.trace["traceEvents"]) {
        const std::string ph = e["ph"];
        if (ph == "b") {
            ++begins;
            CHECK(track(t, e).starts_with("dmar0/requests from "));
            open_spans[e["id"].get<uint64_t>()] = e["ts"].get<double>();
        } else if (ph == "e") {
            ++ends;
            REQUIRE(open_spans.count(e["id"].get<uint64_t>()));
            CHECK(e["ts"].get<double>() >= open_spans[e["id"].get<uint64_t>()]);
        } else if (ph == "X" && e["name"] == "walk") {
            ++walks;
            CHECK(track(t, e).starts_with("dmar0/walker "));
        } else if (ph == "i" && e["cat"] == "fault") {
            ++faults;
            CHECK(track(t, e) == "dmar0/faults");
        } else if (ph == "C") {
            counters.insert(e["name"].get<std::string>());
        }
    }
    // Every request the unit received is one span (nothing sampled away, nothing lost).
    CHECK(begins == dmar["requests"]["value"].get<uint64_t>());
    CHECK(ends == begins);
    CHECK(faults == dmar["faults"]["value"].get<uint64_t>());
    CHECK(faults > 0);
    CHECK(walks > 0);
    CHECK(counters.count("iotlb fills"));
    CHECK(counters.count("queue occupancy"));
    CHECK(!t.stats.contains("truncated_outputs"));
}

TEST_CASE("walks of several walk slots go to one track per slot and never overlap on it", "[sim][trace]") {
    ordered_json p = faulting_sva_platform();
    p["iommus"][0]["walkers"] = 4;
    p["devices"][0]["workloads"][0]["rate_gbps"] = 40;
    const Trace t = run_traced(p, "trace-walkers");
    std::map<std::string, std::vector<std::pair<double, double>>> slots;
    for (const auto& e : t.trace["traceEvents"])
        if (e["ph"] == "X" && e["name"] == "walk")
            slots[track(t, e)].push_back({e["ts"].get<double>(), e["ts"].get<double>() + e["dur"].get<double>()});
    CHECK(slots.size() > 1);
    for (auto& [name, v] : slots) {
        CHECK(name.starts_with("dmar0/walker "));
        std::sort(v.begin(), v.end());
        for (size_t i = 1; i < v.size(); ++i) CHECK(v[i].first >= v[i - 1].second - 1e-9);
    }
}

TEST_CASE("a bounded trace says in stats.json how many events it left out", "[sim][trace]") {
    const Trace t = run_traced(faulting_sva_platform(), "trace-bounded", "--set outputs.trace_max_events=50");
    size_t model_events = 0;
    for (const auto& e : t.trace["traceEvents"])
        if (e["ph"] == "b" || e["ph"] == "i" || e["ph"] == "C" || (e["ph"] == "X" && e["name"] == "walk")) ++model_events;
    CHECK(model_events == 50);
    REQUIRE(t.stats.contains("truncated_outputs"));
    CHECK(t.stats["truncated_outputs"]["trace_events_kept"] == 50);
    CHECK(t.stats["truncated_outputs"]["trace_events_dropped"].get<uint64_t>() > 0);
}

TEST_CASE("a sampled trace keeps every Nth request of each requester", "[sim][trace]") {
    const Trace all = run_traced(faulting_sva_platform(), "trace-all");
    const Trace some = run_traced(faulting_sva_platform(), "trace-sampled", "--set outputs.trace_dma_sample_every=8");
    auto spans = [](const Trace& t) {
        uint64_t n = 0;
        for (const auto& e : t.trace["traceEvents"]) n += e["ph"] == "b";
        return n;
    };
    const uint64_t requests = all.stats["dmar0"]["requests"]["value"].get<uint64_t>();
    CHECK(spans(all) == requests);
    CHECK(spans(some) == (requests + 7) / 8); // one requester: requests 0, 8, 16, ...
}

TEST_CASE("trace.json shows each page request and counts translation completions as device ATC fills", "[sim][trace]") {
    ordered_json p = ordered_json::parse(slurp(source_path("platforms/vtd-pri-sva.json")));
    p["outputs"] = {{"trace", true}};
    const Trace t = run_traced(p, "trace-pri");
    uint64_t page_requests = 0, last_fills = 0;
    for (const auto& e : t.trace["traceEvents"]) {
        if (e["ph"] == "i" && e["cat"] == "pri") {
            ++page_requests;
            CHECK(track(t, e) == "dmar0/page requests");
        }
        if (e["ph"] == "C" && e["name"] == "translation completions (ATC fills)")
            last_fills = std::max(last_fills, e["args"]["value"].get<uint64_t>());
    }
    CHECK(page_requests == t.stats["dmar0"]["page_requests"]["value"].get<uint64_t>());
    CHECK(page_requests > 0);
    // Counters are rate-limited, so the last sample is at most the number of completions.
    CHECK(last_fills > 0);
    CHECK(last_fills <= t.stats["dmar0"]["translation_requests"]["value"].get<uint64_t>());
}
