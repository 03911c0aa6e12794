// SPDX-License-Identifier: Apache-2.0
#pragma once
// Geometry of one generic set-associative cache (IOTLB, walk caches, ATC, ...).
#include <cstdint>
#include <string_view>

namespace iommusim::iommu {

enum class Replacement : uint8_t {
    lru,        ///< exact least-recently-used
    tree_plru,  ///< binary-tree pseudo-LRU (ways must be a power of two)
    random,     ///< uniform victim from a seeded std::mt19937_64
};

inline std::string_view to_string(Replacement r) {
    switch (r) {
    case Replacement::lru: return "lru";
    case Replacement::tree_plru: return "tree_plru";
    case Replacement::random: return "random";
    }
    return "?";
}

struct CacheGeometry {
    uint32_t entries = 0;  ///< total entries; 0 disables the cache
    uint32_t ways = 1;     ///< ways per set; ways == entries is fully associative (one set)
    Replacement replacement = Replacement::lru;
    uint64_t seed = 1;     ///< seed of the random policy (determinism: same seed, same victims)

    /// nullptr if usable, else why not (entries not a multiple of ways, ...).
    const char* check() const {
        if (entries == 0) return nullptr;
        if (ways == 0 || ways > 64) return "ways must be 1..64";
        if (entries % ways) return "entries must be a multiple of ways";
        if (replacement == Replacement::tree_plru && (ways & (ways - 1))) return "tree pseudo-LRU needs a power-of-two way count";
        return nullptr;
    }
};

} // namespace iommusim::iommu
