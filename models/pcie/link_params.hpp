// SPDX-License-Identifier: Apache-2.0
#pragma once
// Typed parameters of one PCIe link (one port pair, both directions).
#include <cstdint>

namespace iommusim::pcie {

struct LinkParams {
    static constexpr unsigned kDefaultGeneration = 4;          // PCIe 4.0: 16 GT/s
    static constexpr unsigned kDefaultWidth = 16;              // lanes
    /// ns, one way: TX+RX PHY/data-link pipeline plus wire. Order of magnitude
    /// for a port pair (not in calibration.md; UNCONFIRMED, tune per platform).
    static constexpr double kDefaultLatencyNs = 40.0;
    static constexpr unsigned kDefaultMaxPayloadBytes = 256;   // MPS; common server setting (Linux pcie_bus_perf)
    static constexpr unsigned kDefaultMaxReadRequestBytes = 512; // MRRS; PCIe Base §7.5.3.4 default field value 010b
    static constexpr unsigned kDefaultRcbBytes = 64;           // Read Completion Boundary, root port default (§7.5.3.7)
    /// Posted header credits of the receiver (§2.6.1): upstream, the port
    /// above holds one per posted TLP until its next stage accepted it;
    /// downstream, a receive buffer of this many max-size TLPs.
    /// [estimate]: no published root-port or switch credit counts.
    static constexpr unsigned kDefaultPostedBufferTlps = 32;
    /// Non-posted header credits of the receiver above (§2.6.1), each held
    /// by a read or translation request until the root complex forwarded it
    /// (the IOMMU translated it) or the switch passed it on.
    /// [estimate]: same as the posted count; no published figure.
    static constexpr unsigned kDefaultNonPostedCredits = 32;

    unsigned generation = kDefaultGeneration;   ///< 1..6
    unsigned width = kDefaultWidth;             ///< 1, 2, 4, 8, 16 lanes
    double latency_ns = kDefaultLatencyNs;      ///< per-hop one-way latency
    unsigned max_payload_bytes = kDefaultMaxPayloadBytes;        ///< 128..4096, power of two
    unsigned max_read_request_bytes = kDefaultMaxReadRequestBytes; ///< 128..4096, power of two
    unsigned rcb_bytes = kDefaultRcbBytes;                         ///< 64 or 128
    unsigned posted_buffer_tlps = kDefaultPostedBufferTlps;        ///< >= 1, posted header credits
    unsigned non_posted_credits = kDefaultNonPostedCredits;        ///< >= 1, non-posted header credits
};

/// Throws std::invalid_argument naming the offending field.
void validate(const LinkParams& p);

} // namespace iommusim::pcie
