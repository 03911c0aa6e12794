// SPDX-License-Identifier: Apache-2.0
#pragma once
// PCIe link timing: kernel-free core used by the fabric modules (switch, root
// complex) that own the link below each of their downstream ports.
//
// Fidelity
//  Modelled:
//   - Raw rate per lane 2.5/5/8/16/32/64 GT/s (gen 1..6) times width x1..x16.
//   - Encoding: 8b/10b for gen 1-2 (PCIe Base §4.2.1), 128b/130b for gen 3-5
//     (§4.2.2). Gen 6 runs in Flit Mode (§4.2.3): a 256-byte flit carries
//     236 TLP bytes + 6 DLP bytes + 8 CRC + 6 FEC bytes; we charge TLP bytes at
//     236/256 of the raw rate (the DLP share carries DLLPs, not TLPs).
//   - Per-TLP bytes in non-flit mode: 8 bytes of framing+sequence+LCRC
//     (gen1-2: STP 1 + seq 2 + LCRC 4 + END 1; gen3-5: 4-byte STP token
//     carrying the sequence number + LCRC 4), a 3-DW header (32-bit address,
//     completions) or 4-DW header (64-bit address, messages), one DW for the
//     PASID End-End TLP prefix (§6.20), and the payload. In Flit Mode there is
//     no per-TLP framing/LCRC (they are per flit) and PASID rides in a 1-DW
//     OHC-A (§2.2.1.2).
//   - Splitting: writes at Max_Payload_Size, reads at Max_Read_Request_Size,
//     completions at the Read Completion Boundary / MPS (§2.2.7, §2.3.1.1);
//     no request crosses a 4 KB boundary (§2.2.7).
//   - Serialization contention: each direction is an independent BusyUntil
//     resource; a TLP train arriving while the direction is busy waits.
//   - Per-hop latency (PHY + wire) added after serialization (store and
//     forward per train at each hop).
//   - Flow control (§2.6.1) upstream: the receiver above (root port or
//     switch downstream port) advertises posted and non-posted header
//     credits; a TLP is transmitted only when it holds one, and the credit
//     returns (one hop later, the UpdateFC DLLP) when the receiver's next
//     stage accepted the TLP -- for a root port, when the IOMMU has
//     translated it and forwarded it to memory (AdmissionExtension). So a
//     slow translation backs up into the port and then into the device.
//     Completion credits are infinite, as root complexes and endpoints
//     advertise them (§2.6.1); the requester's tag limit bounds completions.
//     Downstream (towards a device) posted flow control is approximated by a
//     receive buffer of N max-size TLPs behind the device's backlog.
//  Not modelled: data credits, DLLPs (Ack/Nak, UpdateFC) as wire traffic, SKP
//   ordered sets, flit packing/NOP padding, replay, ECRC, link training,
//   lane reversal, x12/x32 widths, L0s/L1 exit latency.
#include <cstdint>
#include <string>
#include <vector>

#include "models/common/stats.hpp"
#include "models/common/time.hpp"
#include "models/pcie/link_params.hpp"

namespace iommusim::pcie {

enum class TlpKind : uint8_t { mem_write, mem_read, completion, message };

/// What a TLP costs on the wire: one request, completion or message.
struct TlpShape {
    TlpKind kind = TlpKind::mem_write;
    uint32_t payload_bytes = 0;
    bool addr64 = false;   ///< 4-DW header (address >= 4 GiB)
    bool pasid = false;    ///< PASID prefix / OHC-A present
};

/// A back-to-back sequence of TLPs produced by one transaction on one hop.
struct TlpTrain {
    uint32_t tlps = 0;
    uint64_t wire_bytes = 0;
    uint64_t payload_bytes = 0;
    uint64_t first_tlp_wire_bytes = 0;
};

/// One chunk of a split request: [addr, addr + bytes).
struct Chunk {
    uint64_t addr = 0;
    uint32_t bytes = 0;
};

/// Splits [addr, addr + size) into chunks of at most max_bytes (a power of
/// two) that never cross a max_bytes-aligned boundary (hence never 4 KB).
template <class F>
void for_each_chunk(uint64_t addr, uint64_t size, uint32_t max_bytes, F&& f) {
    while (size > 0) {
        uint64_t room = max_bytes - (addr & (max_bytes - 1));
        uint32_t n = static_cast<uint32_t>(room < size ? room : size);
        f(Chunk{addr, n});
        addr += n;
        size -= n;
    }
}

/// Kernel-free rate and size arithmetic of one link.
class LinkTiming {
public:
    explicit LinkTiming(const LinkParams& p);
    const LinkParams& params() const { return p_; }

    /// Raw signalling rate per lane in GT/s.
    double gt_per_s() const;
    /// Fraction of raw bits that carry TLP bytes (encoding, flit overhead).
    double efficiency() const;
    bool flit_mode() const { return p_.generation >= 6; }
    /// TLP-layer bandwidth of one direction in bytes per ns (= GB/s).
    double bytes_per_ns() const;

    uint32_t header_bytes(const TlpShape& t) const {
        switch (t.kind) {
        case TlpKind::mem_write:
        case TlpKind::mem_read: return t.addr64 ? 16 : 12; // §2.2.4.1: 4 DW only above 4 GiB
        case TlpKind::completion: return 12;               // §2.2.9: 3 DW
        case TlpKind::message: return 16;                  // §2.2.8: messages are 4 DW
        }
        return 16;
    }
    /// Header, PASID prefix / OHC-A, payload and (non-flit) framing + LCRC.
    uint32_t wire_bytes(const TlpShape& t) const { return header_bytes(t) + t.payload_bytes + (t.pasid ? 4u : 0u) + framing_; }
    Duration serialize(uint64_t wire_bytes) const {
        return Duration::ps(static_cast<uint64_t>(static_cast<double>(wire_bytes) * ps_per_byte_ + 0.5));
    }

    /// Request TLPs for a memory write (split at MPS) or read (split at MRRS).
    TlpTrain request_train(bool write, uint64_t addr, uint64_t size, bool pasid) const;
    /// Completion TLPs answering a read of [addr, addr+size): split at RCB
    /// boundaries into completions of at most MPS bytes; size 0 = one Cpl
    /// without data (a failed request).
    TlpTrain completion_train(uint64_t addr, uint64_t size) const;
    /// One message TLP (optionally with data).
    TlpTrain message_train(uint32_t data_bytes, bool pasid) const;

private:
    LinkParams p_;
    double ps_per_byte_;
    uint32_t framing_; ///< per-TLP framing + sequence + LCRC bytes (0 in Flit Mode)
};

enum class Direction : uint8_t { upstream, downstream };

/// Flow-control classes with finite header credits (§2.6.1).
enum class CreditClass : uint8_t { posted, non_posted };

/// A receiver's header credits of one class: `credits` buffer slots, each
/// held from the sender's transmission until the credit returns. Loosely
/// timed: each slot is a gap-filling BusyUntil, so requests that reach the
/// pool out of time order (temporal decoupling) find slots free at their
/// own time. Kernel-free.
class CreditPool {
public:
    struct Grant {
        uint32_t slot = 0;
        Duration start;     ///< when the credit was available (>= the wish)
    };
    explicit CreditPool(uint32_t credits);
    /// The earliest time at or after `want` that a credit is free.
    Grant acquire(Duration want);
    /// The granted credit is held until `until` (its return).
    void hold(const Grant& g, Duration until);
    uint32_t credits() const { return static_cast<uint32_t>(slots_.size()); }

private:
    std::vector<BusyUntil> slots_;
    uint32_t hint_ = 0;   ///< next slot to try first (rotates, so a free slot is found in O(1) when idle)
    // When every credit is held (a saturated port), acquire() would look at each to find none
    // free and take the one returned first. These bounds answer that case at once: for each
    // credit, an upper bound of its last reservation's start (the start of a reservation that
    // was last when made; merges only move the real start earlier) and its busy-until time
    // (exact). If `want` lies after every such start and before every busy-until time, it is
    // inside each credit's last reservation: none is free, the first returned is heap_[0].
    std::vector<uint64_t> last_start_, end_;
    uint64_t max_last_start_ = 0;
    /// Credits as a binary min-heap by (busy-until, index), pos_ their places: a hold moves
    /// its credit down in O(log credits) (busy-until times only grow).
    std::vector<uint32_t> heap_, pos_;
    bool before(uint32_t a, uint32_t b) const { return end_[a] != end_[b] ? end_[a] < end_[b] : a < b; }
    void sift_down(uint32_t slot);
};

/// The times one train occupies a direction of a link.
struct LinkTransfer {
    Duration start;        ///< first bit on the wire
    Duration sent;         ///< last bit on the wire (the sender's transmitter is free)
    Duration delivered;    ///< last bit at the receiver (sent + latency)
};

/// One link with independent upstream and downstream serialization and its
/// stats (per direction: TLPs, payload/wire bytes, busy time, queueing).
class Link {
public:
    Link(std::string name, const LinkParams& p, stats::Group* parent);
    const LinkTiming& timing() const { return timing_; }
    const std::string& name() const { return group_.name(); }

    /// Occupies `dir` with `train` arriving at `arrival` (absolute time).
    LinkTransfer send(Direction dir, Duration arrival, const TlpTrain& train);
    /// Downstream direction: time a posted sender is released: when its TLP
    /// is sent, or later if the receiver's backlog (the next hop's release
    /// time `downstream_free`) exceeds its buffer.
    Duration posted_release(const LinkTransfer& x, Duration downstream_free) const;
    /// Upstream direction: a credit of class `c` of the receiver above, free
    /// at or after `want` (the sender transmits only then).
    CreditPool::Grant acquire_credit(CreditClass c, Duration want);
    /// The receiver's next stage accepted the TLP at `accepted`: the credit
    /// returns one hop later (UpdateFC DLLP).
    void return_credit(CreditClass c, const CreditPool::Grant& g, Duration accepted);

private:
    struct DirStats {
        stats::Counter* tlps;
        stats::Counter* payload_bytes;
        stats::Counter* wire_bytes;
        uint64_t busy_ps = 0;
        stats::Histogram* queue_ns;
    };
    LinkTiming timing_;
    Duration latency_;       ///< params' latency_ns, converted once
    Duration posted_slack_;  ///< serialization of the downstream receive buffer (posted_release)
    stats::Group group_;
    BusyUntil busy_[2];
    DirStats st_[2];
    CreditPool credits_[2];            ///< upstream receiver's posted / non-posted header credits
    stats::Counter* credit_stalls_[2];
    stats::Histogram* credit_wait_ns_;
};

} // namespace iommusim::pcie
