// SPDX-License-Identifier: Apache-2.0
#pragma once
// Fault injection into simulated memory for the corrupted-hardware tests of
// each IOMMU family: corrupts one 64-bit word of a family's tables (a bit flip
// or a random value), remembers what it overwrote and puts everything back.
#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <tlm>
#include <utility>
#include <vector>

#include "models/mem/phys_mem.hpp"

namespace iommusim::test {

class Corruptor {
public:
    /// `live`: words worth hitting (table entries in use); `lo`..`hi`: the whole table area.
    Corruptor(mem::PhysMem& m, std::vector<uint64_t> live, uint64_t lo, uint64_t hi)
        : m_(m), live_(std::move(live)), lo_(lo), hi_(hi) {}

    /// Nonzero words of [lo, hi): the entries software wrote.
    static std::vector<uint64_t> nonzero_words(mem::PhysMem& m, uint64_t lo, uint64_t hi) {
        std::vector<uint64_t> out;
        for (uint64_t a = lo; a < hi; a += 8)
            if (m.read_u64(a)) out.push_back(a);
        return out;
    }

    /// Half the time a live entry, else any word of the area; half the time
    /// one bit flipped, else a random value.
    void corrupt(std::mt19937_64& rng) {
        const uint64_t a = !live_.empty() && rng() % 2 ? live_[rng() % live_.size()] : lo_ + 8 * (rng() % ((hi_ - lo_) / 8));
        const uint64_t old = m_.read_u64(a);
        saved_.emplace_back(a, old);
        m_.write_u64(a, rng() % 2 ? old ^ (uint64_t{1} << (rng() % 64)) : rng());
    }
    /// Every corrupted word back, latest first (a word corrupted twice gets its original value).
    void restore() {
        for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) m_.write_u64(it->first, it->second);
        saved_.clear();
    }

    /// One fault-injection sequence of `steps` random steps: corrupt a word (1 in 6),
    /// restore everything (1 in 6), each followed by `flush` (the family's cache
    /// invalidations); a malformed command `command(rng)` (1 in 6); else a DMA `dma(rng)`.
    /// At the end everything is restored and flushed.
    template <class Flush, class Command, class Dma>
    void run(std::mt19937_64& rng, int steps, Flush&& flush, Command&& command, Dma&& dma) {
        for (int step = 0; step < steps; ++step) {
            switch (rng() % 6) {
            case 0:
                corrupt(rng);
                flush();
                break;
            case 1:
                restore();
                flush();
                break;
            case 2: command(rng); break;
            default: dma(rng); break;
            }
        }
        restore();
        flush();
    }

    /// The corrupted-hardware property every family checks: sequences of run() with seeds 1 ..
    /// `seeds`. Each DMA `dma(rng)` must complete or fail with an address error (never another
    /// response), after it `drain()` returns the event records software took from the log.
    /// After a sequence (tables restored and caches flushed) `recovered()` checks the unit
    /// translates again, and the sequence must have seen DMAs complete, DMAs fault and events.
    template <class Flush, class Command, class Dma, class Drain, class Recovered>
    void run_seeds(uint64_t seeds, int steps, Flush&& flush, Command&& command, Dma&& dma, Drain&& drain,
                   Recovered&& recovered) {
        for (uint64_t seed = 1; seed <= seeds; ++seed) {
            INFO("sequence seed " << seed);
            std::mt19937_64 rng(seed);
            unsigned ok = 0, faulted = 0, logged = 0;
            run(rng, steps, flush, command, [&](std::mt19937_64& g) {
                const tlm::tlm_response_status s = dma(g);
                CHECK((s == tlm::TLM_OK_RESPONSE || s == tlm::TLM_ADDRESS_ERROR_RESPONSE));
                (s == tlm::TLM_OK_RESPONSE ? ok : faulted) += 1;
                logged += drain();
            });
            drain();
            recovered();
            CHECK(ok > 0);
            CHECK(faulted > 0);
            CHECK(logged > 0);
        }
    }

private:
    mem::PhysMem& m_;
    std::vector<uint64_t> live_;
    uint64_t lo_, hi_;
    std::vector<std::pair<uint64_t, uint64_t>> saved_;
};

} // namespace iommusim::test
