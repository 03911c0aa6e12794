// SPDX-License-Identifier: Apache-2.0
#pragma once
// Fidelity: the walker's only path to page tables. Every descriptor read and
// every hardware A/D write goes through a WalkMemPort, which counts it and
// charges its latency, so a walk's cost is the sum of its memory accesses
// (dependent accesses of a walk are serial). Modelled: per-access latency,
// read/write counts, bus errors (access outside memory) reported as a value,
// not an exception. Not modelled here: contention between concurrent walks
// (the SystemC shell adds BusyUntil on its memory socket), cache-line reuse
// (every descriptor read is a memory access, as in SOSP'24's fitted model).
#include <array>
#include <cstdint>
#include <cstring>
#include <optional>

#include "models/common/time.hpp"
#include "models/iommu/common/walk_mem_port_params.hpp"
#include "models/mem/phys_mem.hpp"
#include "models/mem/sparse_memory.hpp"

namespace iommusim::iommu {

/// Port the walker reads descriptors through. Subclasses implement the three
/// raw accesses and report each one's latency; the public entry points count.
class WalkMemPort {
public:
    virtual ~WalkMemPort() = default;

    /// One 8-byte descriptor read; nullopt on a bus error.
    std::optional<uint64_t> read_u64(uint64_t pa) {
        ++reads_;
        return do_read_u64(pa, latency_);
    }
    bool write_u64(uint64_t pa, uint64_t v) {
        ++writes_;
        return do_write_u64(pa, v, latency_);
    }
    /// Atomic compare-exchange for hardware A/D updates. Returns the value found
    /// (== expected on success); nullopt on a bus error.
    std::optional<uint64_t> compare_exchange_u64(uint64_t pa, uint64_t expected, uint64_t desired) {
        ++writes_;
        return do_compare_exchange_u64(pa, expected, desired, latency_);
    }

    uint64_t reads() const { return reads_; }
    uint64_t writes() const { return writes_; }
    Duration latency() const { return latency_; }

protected:
    virtual std::optional<uint64_t> do_read_u64(uint64_t pa, Duration& latency) = 0;
    virtual bool do_write_u64(uint64_t pa, uint64_t v, Duration& latency) = 0;
    virtual std::optional<uint64_t> do_compare_exchange_u64(uint64_t pa, uint64_t expected, uint64_t desired,
                                                            Duration& latency) = 0;

private:
    uint64_t reads_ = 0, writes_ = 0;
    Duration latency_;
};

/// A port straight onto untimed physical memory with a fixed latency per access
/// (unit tests, benches, and any shell without a memory socket).
class PhysMemWalkPort final : public WalkMemPort {
public:
    PhysMemWalkPort(mem::PhysMem& mem, const WalkMemPortParams& p = {}) : mem_(mem), p_(p) {}

protected:
    std::optional<uint64_t> do_read_u64(uint64_t pa, Duration& latency) override;
    bool do_write_u64(uint64_t pa, uint64_t v, Duration& latency) override;
    std::optional<uint64_t> do_compare_exchange_u64(uint64_t pa, uint64_t expected, uint64_t desired,
                                                    Duration& latency) override;

private:
    mem::PhysMem& mem_;
    WalkMemPortParams p_;
};

/// A port onto SparseMemory that keeps host pointers to recently read pages
/// (a small direct-mapped table, like a TLM initiator holding DMI pointers),
/// so the upper levels of a walk, which repeat from walk to walk, skip the
/// page-map lookup. Same values, counts and latencies as PhysMemWalkPort.
/// Like DMI, reading a never-written page allocates it (zero-filled).
class SparseMemWalkPort final : public WalkMemPort {
public:
    SparseMemWalkPort(mem::SparseMemory& mem, const WalkMemPortParams& p = {}) : mem_(mem), p_(p) {}

protected:
    std::optional<uint64_t> do_read_u64(uint64_t pa, Duration& latency) override {
        latency += p_.read_latency;
        uint8_t* page = page_of(pa);
        if (!page) return fallback_read(pa);
        uint64_t v;
        std::memcpy(&v, page + (pa & kOffMask), 8);
        return v;
    }
    bool do_write_u64(uint64_t pa, uint64_t v, Duration& latency) override {
        latency += p_.write_latency;
        uint8_t* page = page_of(pa);
        if (!page) return fallback_write(pa, v);
        std::memcpy(page + (pa & kOffMask), &v, 8);
        return true;
    }
    std::optional<uint64_t> do_compare_exchange_u64(uint64_t pa, uint64_t expected, uint64_t desired,
                                                    Duration& latency) override {
        latency += p_.write_latency;
        uint8_t* page = page_of(pa);
        if (!page) {
            auto cur = fallback_read(pa);
            if (cur && *cur == expected) fallback_write(pa, desired);
            return cur;
        }
        uint64_t cur;
        std::memcpy(&cur, page + (pa & kOffMask), 8);
        if (cur == expected) std::memcpy(page + (pa & kOffMask), &desired, 8);
        return cur;
    }

private:
    static constexpr uint64_t kOffMask = mem::SparseMemory::kPageSize - 1;
    static constexpr size_t kSlots = 1024;
    struct Slot {
        uint64_t pfn = ~uint64_t{0};
        uint8_t* page = nullptr;
    };
    /// Host page for an aligned 8-byte access inside memory; null otherwise.
    uint8_t* page_of(uint64_t pa) {
        if ((pa & 7) || !mem_.contains(pa, 8)) return nullptr;
        const uint64_t pfn = pa >> mem::SparseMemory::kPageShift;
        Slot& s = slots_[pfn % kSlots];
        if (s.pfn != pfn) s = {pfn, mem_.page_ptr(pa)};
        return s.page;
    }
    std::optional<uint64_t> fallback_read(uint64_t pa) {
        try {
            return mem_.read_u64(pa);
        } catch (const mem::AddressError&) {
            return std::nullopt;
        }
    }
    bool fallback_write(uint64_t pa, uint64_t v) {
        try {
            mem_.write_u64(pa, v);
            return true;
        } catch (const mem::AddressError&) {
            return false;
        }
    }
    mem::SparseMemory& mem_;
    WalkMemPortParams p_;
    std::array<Slot, kSlots> slots_{};
};

} // namespace iommusim::iommu
