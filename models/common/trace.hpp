// SPDX-License-Identifier: Apache-2.0
#pragma once
// trace::Recorder: what models report for trace.json (Chrome/Perfetto trace
// events) besides the invalidation log: DMA requests per device, page walks
// per walk slot, faults, page requests, and counters (queue occupancy, cache
// fills). Models hold a Recorder* that is null unless `outputs.trace` is on,
// so a run without a trace pays one pointer test per hook.
//
// Memory is bounded: at most `max_events` are kept, the rest are counted
// (and reported in stats.json "truncated_outputs"); DMAs are sampled (every
// Nth per device); a counter is recorded when its value changed and at least
// `counter_interval` of simulated time passed since its last sample on that
// track, so a busy counter costs at most one sample per interval.
//
// Tracks are (process, thread) name pairs: one process per component
// ("dmar0", "nic0"), one thread per sequential activity in it ("dma",
// "walker 0"), so slices on a track never overlap, and Perfetto draws them
// nested. Event names and categories are string literals (kept by pointer).
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "models/common/time.hpp"

namespace iommusim::trace {

struct Limits {
    uint64_t max_events = 1'000'000;           ///< events kept in memory (≈ 100 B each once written)
    uint32_t dma_sample_every = 1;             ///< record every Nth DMA of each device (1 = all)
    Duration counter_interval = Duration::ns(100); ///< minimum simulated time between two samples of a counter
};

struct Arg {
    const char* key = nullptr; ///< nullptr = unused
    uint64_t value = 0;
    bool hex = false;          ///< written as "0x..." (addresses)
};

struct Event {
    /// slice: nests on its track; span: may overlap others on its track (pipelined requests,
    /// written as an async begin/end pair); instant; counter.
    enum class Kind : uint8_t { slice, span, instant, counter };
    Kind kind = Kind::slice;
    uint32_t track = 0;
    const char* name = "";
    const char* cat = "";
    Duration from, to;         ///< instant and counter: `from` only
    Arg args[3];
};

class Recorder {
public:
    explicit Recorder(const Limits& l = {}) : limits_(l) {
        if (limits_.dma_sample_every == 0) limits_.dma_sample_every = 1;
    }

    /// The id of track (process, thread), created on first use.
    uint32_t track(const std::string& process, const std::string& thread) {
        auto [it, added] = ids_.try_emplace({process, thread}, static_cast<uint32_t>(tracks_.size()));
        if (added) {
            tracks_.push_back({process, thread});
            dma_seen_.push_back(0);
        }
        return it->second;
    }
    const std::vector<std::pair<std::string, std::string>>& tracks() const { return tracks_; }

    /// Whether the next DMA on `track` is one of the sampled ones (counts it).
    bool sample_dma(uint32_t track) { return dma_seen_[track]++ % limits_.dma_sample_every == 0; }

    void slice(uint32_t track, const char* name, const char* cat, Duration from, Duration to, Arg a0 = {},
               Arg a1 = {}, Arg a2 = {}) {
        add(Event{Event::Kind::slice, track, name, cat, from, to, {a0, a1, a2}});
    }
    void span(uint32_t track, const char* name, const char* cat, Duration from, Duration to, Arg a0 = {},
              Arg a1 = {}, Arg a2 = {}) {
        add(Event{Event::Kind::span, track, name, cat, from, to, {a0, a1, a2}});
    }
    void instant(uint32_t track, const char* name, const char* cat, Duration at, Arg a0 = {}, Arg a1 = {},
                 Arg a2 = {}) {
        add(Event{Event::Kind::instant, track, name, cat, at, at, {a0, a1, a2}});
    }
    /// Counter `name` on the process of `track` is `value` from `at` on (rate-limited, see above).
    void counter(uint32_t track, const char* name, Duration at, uint64_t value) {
        auto& last = counters_[{track, name}];
        if (last.valid && (last.value == value || at < last.at + limits_.counter_interval)) return;
        last = {at, value, true};
        add(Event{Event::Kind::counter, track, name, "counter", at, at, {Arg{"value", value, false}, {}, {}}});
    }

    const std::vector<Event>& events() const { return events_; }
    uint64_t dropped() const { return dropped_; }
    const Limits& limits() const { return limits_; }

private:
    void add(const Event& e) {
        if (events_.size() >= limits_.max_events) {
            ++dropped_;
            return;
        }
        events_.push_back(e);
    }
    struct LastSample {
        Duration at;
        uint64_t value = 0;
        bool valid = false;
    };
    Limits limits_;
    std::map<std::pair<std::string, std::string>, uint32_t> ids_;
    std::vector<std::pair<std::string, std::string>> tracks_;
    std::vector<uint64_t> dma_seen_;
    std::map<std::pair<uint32_t, const char*>, LastSample> counters_;
    std::vector<Event> events_;
    uint64_t dropped_ = 0;
};

} // namespace iommusim::trace
