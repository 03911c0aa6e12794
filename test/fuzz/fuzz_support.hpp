// SPDX-License-Identifier: Apache-2.0
#pragma once
// Shared pieces of the libFuzzer targets (test/fuzz/README.md).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <unordered_map>

#include "models/mem/phys_mem.hpp"

// libsystemc.so references sc_main (extern "C", sc_externs.h); a fuzz target
// never starts the kernel.
#define IOMMUSIM_FUZZ_SC_MAIN \
    extern "C" int sc_main(int, char*[]) { return 0; }

namespace iommusim::fuzz {

/// Reads the fuzz input as a stream of fields; past the end, zeros.
class Input {
public:
    Input(const uint8_t* d, size_t n) : d_(d), n_(n) {}
    uint64_t u64() { uint64_t v = 0; take(&v, 8); return v; }
    uint32_t u32() { uint32_t v = 0; take(&v, 4); return v; }
    uint8_t u8() { uint8_t v = 0; take(&v, 1); return v; }
    bool flag() { return u8() & 1; }
    const uint8_t* rest() const { return d_ + pos_; }
    size_t rest_size() const { return n_ - pos_; }

private:
    void take(void* out, size_t k) {
        const size_t m = pos_ + k <= n_ ? k : n_ - pos_;
        // An empty input may come as a null pointer; memcpy from null is UB even
        // for 0 bytes (UBSan: the corpora's "empty" seeds).
        if (m != 0) std::memcpy(out, d_ + pos_, m);
        pos_ += m;
    }
    const uint8_t* d_;
    size_t n_, pos_ = 0;
};

/// Physical memory whose every byte comes from the fuzz input: byte `pa`
/// reads bytes[(pa * odd) mod size] (zeros for an empty input), so every table
/// a model reads, anywhere, is attacker-controlled. Writes go to an overlay,
/// so read-after-write behaves like memory.
class FuzzMem final : public mem::PhysMem {
public:
    FuzzMem(const uint8_t* bytes, size_t n) : b_(bytes), n_(n) {}
    void read(uint64_t pa, void* dst, size_t len) override {
        auto* o = static_cast<uint8_t*>(dst);
        for (size_t i = 0; i < len; ++i) o[i] = byte(pa + i);
    }
    void write(uint64_t pa, const void* src, size_t len) override {
        const auto* s = static_cast<const uint8_t*>(src);
        for (size_t i = 0; i < len; ++i) overlay_[pa + i] = s[i];
    }

private:
    uint8_t byte(uint64_t pa) const {
        if (auto it = overlay_.find(pa); it != overlay_.end()) return it->second;
        // Mix the address so that table entries at different pages differ.
        return n_ ? b_[(pa ^ (pa >> 12) * 0x9e3779b97f4a7c15ULL) % n_] : 0;
    }
    const uint8_t* b_;
    size_t n_;
    std::unordered_map<uint64_t, uint8_t> overlay_;
};

} // namespace iommusim::fuzz
