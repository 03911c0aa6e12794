// SPDX-License-Identifier: Apache-2.0
#pragma once
// ConfigCache: a configuration cache (device-context / translation-setup
// entries read from in-memory tables) on the generic set-associative cache,
// invalidated by scopes that every family's commands reduce to.
//
// Fidelity — modelled: entries keyed by requester (RID, StreamID, DeviceID)
// and optionally PASID/SSID, each remembering the domain tag (DID, DomainID,
// VMID) it was last seen with, so domain-selective invalidation works;
// capacity, replacement and stats are the generic cache's. Scopes: all,
// requester (with a mask of ignored low bits: VT-d function mask, SMMUv3
// STE range), requester + PASID/SSID, domain, domain + PASID. An entry whose
// domain is not known yet is in every domain scope (the cache cannot prove
// it is outside). Not modelled: timing (callers charge lookup latency).
// Users: VT-d context and PASID caches, AMD-Vi DTE and GCR3 caches, SMMUv3
// STE and CD caches.
#include <cstdint>
#include <string>

#include "models/common/set_assoc_cache.hpp"

namespace iommusim::iommu {

/// Which configuration-cache entries an invalidation drops.
struct ConfigScope {
    enum class Kind : uint8_t {
        all,              ///< every entry
        requester,        ///< entries of `requester` (low bits in `requester_mask` ignored), any PASID
        requester_pasid,  ///< the entry of (`requester`, `pasid`)
        domain,           ///< entries tagged with `domain` (or with no known domain)
        domain_pasid,     ///< entries tagged with `domain` (or none known) for `pasid`
    };
    Kind kind = Kind::all;
    uint32_t requester = 0;
    uint32_t requester_mask = 0; ///< requester bits that do not take part in the match
    uint32_t pasid = 0;
    uint32_t domain = 0;

    static ConfigScope all() { return {}; }
    static ConfigScope of_requester(uint32_t rid, uint32_t ignored_bits = 0) {
        return {Kind::requester, rid, ignored_bits, 0, 0};
    }
    static ConfigScope of_requester_pasid(uint32_t rid, uint32_t pasid) {
        return {Kind::requester_pasid, rid, 0, pasid, 0};
    }
    static ConfigScope of_domain(uint32_t domain) { return {Kind::domain, 0, 0, 0, domain}; }
    static ConfigScope of_domain_pasid(uint32_t domain, uint32_t pasid) {
        return {Kind::domain_pasid, 0, 0, pasid, domain};
    }
};

/// One configuration cache. Payload is the family's decoded entry (and what it derives from it).
template <class Payload>
class ConfigCache {
public:
    struct Entry {
        Payload value;
        uint32_t domain = 0;       ///< domain tag last seen through this entry
        bool domain_known = false;
        void set_domain(uint32_t d) { domain = d, domain_known = true; }
    };

    ConfigCache(std::string name, const CacheGeometry& g, stats::Group* parent) : cache_(std::move(name), g, parent) {}

    bool enabled() const { return cache_.enabled(); }
    uint32_t size() const { return cache_.size(); }
    const stats::Group& stats() const { return cache_.stats(); }

    /// Looks up (requester, pasid); counts a hit or a miss and updates recency.
    /// Caches keyed by requester alone pass pasid 0.
    Entry* lookup(uint32_t requester, uint32_t pasid = 0) { return cache_.lookup(key(requester, pasid)); }
    /// Finds without counting or touching.
    Entry* probe(uint32_t requester, uint32_t pasid = 0) { return cache_.probe(key(requester, pasid)); }
    /// Counts a lookup answered elsewhere (a host-speed memo of this cache's most recent hit).
    void count_lookup(bool hit) { cache_.count_lookup(hit); }
    /// Inserts (replacing by policy) and returns the stored entry.
    Entry* insert(uint32_t requester, uint32_t pasid, const Payload& v) {
        cache_.insert(key(requester, pasid), Entry{v, 0, false});
        return cache_.probe(key(requester, pasid));
    }
    /// Inserts an entry whose domain tag is known at fill time.
    Entry* insert(uint32_t requester, uint32_t pasid, const Payload& v, uint32_t domain) {
        cache_.insert(key(requester, pasid), Entry{v, domain, true});
        return cache_.probe(key(requester, pasid));
    }

    /// Drops every entry in scope; returns how many.
    uint64_t invalidate(const ConfigScope& s) {
        using K = ConfigScope::Kind;
        if (s.kind == K::all) return cache_.clear();
        return cache_.invalidate_if([&](const CacheKey& k, const Entry& e) {
            const uint32_t rid = static_cast<uint32_t>(k.a);
            const uint32_t pasid = static_cast<uint32_t>(k.b >> 1);
            const bool dom = !e.domain_known || e.domain == s.domain;
            switch (s.kind) {
            case K::requester: return (rid & ~s.requester_mask) == (s.requester & ~s.requester_mask);
            case K::requester_pasid: return rid == s.requester && pasid == s.pasid;
            case K::domain: return dom;
            case K::domain_pasid: return dom && pasid == s.pasid;
            case K::all: return true;
            }
            return false;
        });
    }

private:
    // b is never 0 (an empty line): pasid shifted above a set marker bit.
    static CacheKey key(uint32_t requester, uint32_t pasid) { return CacheKey{requester, (uint64_t{pasid} << 1) | 1}; }
    SetAssocCache<Entry> cache_;
};

} // namespace iommusim::iommu
