// SPDX-License-Identifier: Apache-2.0
#include "sim/trace_writer.hpp"

#include <map>
#include <optional>

namespace iommusim::sim {

namespace {

class Tracks {
public:
    /// (pid, tid) of a named track in a named process; metadata events name both.
    std::pair<int, int> of(const std::string& process, const std::string& thread) {
        auto [pit, pnew] = pids_.try_emplace(process, static_cast<int>(pids_.size()) + 1);
        if (pnew) meta_.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", pit->second}, {"args", {{"name", process}}}});
        auto [tit, tnew] = tids_.try_emplace(process + "\n" + thread, static_cast<int>(tids_.size()) + 1);
        if (tnew)
            meta_.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", pit->second}, {"tid", tit->second},
                             {"args", {{"name", thread}}}});
        return {pit->second, tit->second};
    }
    json& meta() { return meta_; }

private:
    std::map<std::string, int> pids_, tids_;
    json meta_ = json::array();
};

double us(Duration d) { return static_cast<double>(d.as_ps()) / 1e6; }

std::string hex(uint64_t v) {
    char b[24];
    std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
    return b;
}

json args_of(const trace::Event& e) {
    json a = json::object();
    for (const auto& arg : e.args) {
        if (!arg.key) continue;
        if (arg.hex) a[arg.key] = hex(arg.value);
        else a[arg.key] = arg.value;
    }
    return a;
}

} // namespace

json trace_json(const std::vector<host::InvalidationLog::Row>& rows, const trace::Recorder* rec) {
    Tracks tracks;
    json events = json::array();
    auto slice = [&](std::pair<int, int> track, const std::string& name, const std::string& cat, Duration from,
                     Duration to, const json& args) {
        json e = {{"name", name}, {"cat", cat}, {"ph", "X"}, {"pid", track.first}, {"tid", track.second},
                  {"ts", us(from)}, {"dur", us(to - from)}};
        if (!args.is_null()) e["args"] = args;
        events.push_back(std::move(e));
    };
    for (const auto& r : rows) {
        const json args = {{"id", r.id}, {"domain", r.domain}, {"iova", hex(r.iova)}, {"size", r.size},
                           {"devices", r.devices}, {"descriptors", r.t.descriptors}, {"error", r.t.error}};
        const std::string name = r.cause + " #" + std::to_string(r.id);
        // The issuing host thread: the whole call, and its wait for the status.
        const auto cpu = tracks.of("host", r.cpu.empty() ? "host" : r.cpu);
        slice(cpu, name, r.cause, r.t.submitted, r.t.observed, args);
        if (r.t.wait_done) slice(cpu, "wait for completion", "driver", *r.t.wait_done, r.t.observed, nullptr);
        // The IOMMU's queue engine: fetch to status write, with its work nested.
        if (!r.t.fetched) continue;
        const auto eng = tracks.of(r.iommu, "queue engine");
        const std::optional<Duration> ends[] = {r.t.wait_done, r.t.devtlb_done, r.t.devtlb_sent, r.t.caches_done};
        Duration end = *r.t.fetched;
        for (const auto& e : ends)
            if (e && *e > end) end = *e;
        slice(eng, name, r.cause, *r.t.fetched, end, json{{"id", r.id}});
        if (r.t.caches_done) slice(eng, "caches", "iommu", *r.t.fetched, *r.t.caches_done, nullptr);
        if (r.t.devtlb_sent && r.t.devtlb_done)
            slice(eng, "device-TLB round trip", "ats", *r.t.devtlb_sent, *r.t.devtlb_done, json{{"devices", r.devices}});
    }
    if (rec) {
        std::vector<std::pair<int, int>> ids;
        for (const auto& [process, thread] : rec->tracks()) ids.push_back(tracks.of(process, thread));
        uint64_t span_id = 0;
        for (const auto& e : rec->events()) {
            const auto [pid, tid] = ids[e.track];
            json base = {{"name", e.name}, {"cat", e.cat}, {"pid", pid}, {"ts", us(e.from)}};
            switch (e.kind) {
            case trace::Event::Kind::slice:
                base["ph"] = "X", base["tid"] = tid, base["dur"] = us(e.to - e.from), base["args"] = args_of(e);
                events.push_back(std::move(base));
                break;
            case trace::Event::Kind::span: { // async begin/end: overlapping spans of one track
                base["tid"] = tid, base["id"] = ++span_id;
                json end = base;
                base["ph"] = "b", base["args"] = args_of(e);
                end["ph"] = "e", end["ts"] = us(e.to);
                events.push_back(std::move(base));
                events.push_back(std::move(end));
                break;
            }
            case trace::Event::Kind::instant:
                base["ph"] = "i", base["s"] = "t", base["tid"] = tid, base["args"] = args_of(e);
                events.push_back(std::move(base));
                break;
            case trace::Event::Kind::counter: // one counter track per (process, name)
                base["ph"] = "C", base["args"] = json{{"value", e.args[0].value}};
                events.push_back(std::move(base));
                break;
            }
        }
    }
    json& all = tracks.meta();
    for (auto& e : events) all.push_back(std::move(e));
    return json{{"displayTimeUnit", "ns"}, {"traceEvents", std::move(all)}};
}

} // namespace iommusim::sim
