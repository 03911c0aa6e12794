// SPDX-License-Identifier: Apache-2.0
#pragma once
// Untimed access to physical memory, for plain C++ cores (walkers, queue
// decoders, table builders) and for loaders. Timing is added by whoever owns
// the port; this interface only moves bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace iommusim::mem {

/// An access outside the memory's address range.
class AddressError : public std::out_of_range {
public:
    AddressError(uint64_t addr, size_t len, uint64_t size);
    uint64_t addr;
};

class PhysMem {
public:
    virtual ~PhysMem() = default;
    virtual void read(uint64_t pa, void* dst, size_t len) = 0;
    virtual void write(uint64_t pa, const void* src, size_t len) = 0;
    /// The contents of [pa, pa+len) are no longer needed (freed memory): a
    /// store may drop them, and they read back as zero. Default: kept.
    virtual void discard(uint64_t /*pa*/, size_t /*len*/) {}

    uint64_t read_u64(uint64_t pa) { uint64_t v; read(pa, &v, 8); return v; }
    uint32_t read_u32(uint64_t pa) { uint32_t v; read(pa, &v, 4); return v; }
    void write_u64(uint64_t pa, uint64_t v) { write(pa, &v, 8); }
    void write_u32(uint64_t pa, uint32_t v) { write(pa, &v, 4); }
};

} // namespace iommusim::mem
