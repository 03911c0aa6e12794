// SPDX-License-Identifier: Apache-2.0
#include "models/pcie/link.hpp"

#include <bit>
#include <stdexcept>

namespace iommusim::pcie {

namespace {
bool pow2_in(unsigned v, unsigned lo, unsigned hi) { return std::has_single_bit(v) && v >= lo && v <= hi; }
constexpr uint64_t k4G = uint64_t{1} << 32;
// Non-flit: framing + sequence number + LCRC per TLP (see header).
constexpr uint32_t kNonFlitFramingBytes = 8;
// Flit Mode: 236 TLP bytes per 256-byte flit (PCIe 6.0 §4.2.3.1).
constexpr double kFlitTlpBytes = 236.0, kFlitBytes = 256.0;
} // namespace

void validate(const LinkParams& p) {
    if (p.generation < 1 || p.generation > 6)
        throw std::invalid_argument("generation: expected 1..6, got " + std::to_string(p.generation));
    if (!pow2_in(p.width, 1, 16))
        throw std::invalid_argument("width: expected 1, 2, 4, 8 or 16 lanes, got " + std::to_string(p.width));
    if (!(p.latency_ns >= 0.0)) throw std::invalid_argument("latency_ns: expected >= 0");
    if (!pow2_in(p.max_payload_bytes, 128, 4096))
        throw std::invalid_argument("max_payload_bytes: expected a power of two in 128..4096, got " +
                                    std::to_string(p.max_payload_bytes));
    if (!pow2_in(p.max_read_request_bytes, 128, 4096))
        throw std::invalid_argument("max_read_request_bytes: expected a power of two in 128..4096, got " +
                                    std::to_string(p.max_read_request_bytes));
    if (p.rcb_bytes != 64 && p.rcb_bytes != 128)
        throw std::invalid_argument("rcb_bytes: expected 64 or 128, got " + std::to_string(p.rcb_bytes));
    if (p.posted_buffer_tlps < 1) throw std::invalid_argument("posted_buffer_tlps: expected >= 1");
    if (p.non_posted_credits < 1) throw std::invalid_argument("non_posted_credits: expected >= 1");
}

LinkTiming::LinkTiming(const LinkParams& p) : p_(p), ps_per_byte_(0), framing_(0) {
    validate(p_);
    if (!flit_mode()) framing_ = kNonFlitFramingBytes;
    // 8 bits per byte; GT/s = bits per ns per lane; 1000 ps per ns.
    ps_per_byte_ = 8.0 * 1000.0 / (gt_per_s() * p_.width * efficiency());
}

double LinkTiming::gt_per_s() const {
    static constexpr double kRates[] = {2.5, 5.0, 8.0, 16.0, 32.0, 64.0};
    return kRates[p_.generation - 1];
}

double LinkTiming::efficiency() const {
    if (p_.generation <= 2) return 8.0 / 10.0;       // §4.2.1 8b/10b
    if (p_.generation <= 5) return 128.0 / 130.0;    // §4.2.2 128b/130b
    return kFlitTlpBytes / kFlitBytes;               // §4.2.3 flit (1b/1b PAM4 symbols)
}

double LinkTiming::bytes_per_ns() const { return gt_per_s() * p_.width * efficiency() / 8.0; }

TlpTrain LinkTiming::request_train(bool write, uint64_t addr, uint64_t size, bool pasid) const {
    TlpTrain tr;
    uint32_t max = write ? p_.max_payload_bytes : p_.max_read_request_bytes;
    if (size == 0) size = write ? 0 : 1; // zero-length read still sends one MRd (§2.2.5)
    auto add = [&](Chunk c) {
        TlpShape s{write ? TlpKind::mem_write : TlpKind::mem_read, write ? c.bytes : 0u, c.addr >= k4G, pasid};
        uint32_t w = wire_bytes(s);
        if (tr.tlps == 0) tr.first_tlp_wire_bytes = w;
        ++tr.tlps;
        tr.wire_bytes += w;
        tr.payload_bytes += s.payload_bytes;
    };
    if (size == 0) add(Chunk{addr, 0});
    else for_each_chunk(addr, size, max, add);
    return tr;
}

TlpTrain LinkTiming::completion_train(uint64_t addr, uint64_t size) const {
    TlpTrain tr;
    auto add = [&](uint32_t bytes) {
        uint32_t w = wire_bytes(TlpShape{TlpKind::completion, bytes, false, false});
        if (tr.tlps == 0) tr.first_tlp_wire_bytes = w;
        ++tr.tlps;
        tr.wire_bytes += w;
        tr.payload_bytes += bytes;
    };
    if (size == 0) {
        add(0);
        return tr;
    }
    // §2.3.1.1: a completer may split only at RCB-aligned addresses; it packs
    // as many RCB blocks as fit in MPS into each completion.
    while (size > 0) {
        // The first RCB block's rest, then as many whole blocks as fit in MPS (MPS >= RCB).
        const uint64_t to_rcb = p_.rcb_bytes - (addr & (p_.rcb_bytes - 1));
        const uint64_t room = to_rcb + (p_.max_payload_bytes - to_rcb) / p_.rcb_bytes * p_.rcb_bytes;
        uint32_t n = static_cast<uint32_t>(room < size ? room : size);
        add(n);
        addr += n;
        size -= n;
    }
    return tr;
}

TlpTrain LinkTiming::message_train(uint32_t data_bytes, bool pasid) const {
    uint32_t w = wire_bytes(TlpShape{TlpKind::message, data_bytes, true, pasid});
    return TlpTrain{1, w, data_bytes, w};
}

CreditPool::CreditPool(uint32_t credits)
    : slots_(credits), last_start_(credits, 0), end_(credits, 0), heap_(credits), pos_(credits) {
    for (uint32_t i = 0; i < credits; ++i) heap_[i] = pos_[i] = i; // all free: ordered by index
}

void CreditPool::sift_down(uint32_t slot) {
    const size_t n = heap_.size();
    size_t i = pos_[slot];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(heap_[c + 1], heap_[c])) ++c;
        if (!before(heap_[c], slot)) break;
        heap_[i] = heap_[c];
        pos_[heap_[i]] = static_cast<uint32_t>(i);
        i = c;
    }
    heap_[i] = slot;
    pos_[slot] = static_cast<uint32_t>(i);
}

CreditPool::Grant CreditPool::acquire(Duration want) {
    const uint64_t w = want.as_ps();
    if (const uint32_t first = heap_[0]; max_last_start_ < w && w < end_[first]) return Grant{first, Duration::ps(end_[first])}; // all held
    // One pass: the first credit free at `want` from the rotating hint on, else the one
    // that returns first (the lowest-numbered among equals). free_at() is read-only and
    // O(1) for the time-ordered requests of a link.
    const auto n = static_cast<uint32_t>(slots_.size());
    Grant best{0, Duration::zero()};
    bool have = false;
    for (uint32_t i = 0, s = hint_; i < n; ++i, s = s + 1 == n ? 0 : s + 1) {
        const Duration t = slots_[s].free_at(want);
        if (t == want) {
            hint_ = s + 1 == n ? 0 : s + 1;
            return Grant{s, want};
        }
        if (!have || t < best.start || (t == best.start && s < best.slot)) {
            best = Grant{s, t};
            have = true;
        }
    }
    return best;
}

void CreditPool::hold(const Grant& g, Duration until) {
    if (until <= g.start) return;
    const uint32_t s = g.slot;
    const uint64_t start = slots_[s].reserve(g.start, until - g.start).as_ps();
    // A reservation at or after the last one's end is the new last one (merged with it when
    // they touch: its start stays); one that filled an earlier gap leaves the last one's start
    // where it was or merges it earlier -- the bound holds.
    if (start > end_[s]) last_start_[s] = start;
    max_last_start_ = std::max(max_last_start_, last_start_[s]);
    if (const uint64_t end = slots_[s].busy_until().as_ps(); end != end_[s]) {
        end_[s] = end;
        sift_down(s);
    }
}

Link::Link(std::string name, const LinkParams& p, stats::Group* parent)
    : timing_(p), latency_(Duration::ns(p.latency_ns)),
      posted_slack_(timing_.serialize(uint64_t{p.posted_buffer_tlps} *
                                      timing_.wire_bytes(TlpShape{TlpKind::mem_write, p.max_payload_bytes, true, true}))),
      group_(std::move(name), parent), credits_{CreditPool(p.posted_buffer_tlps), CreditPool(p.non_posted_credits)} {
    credit_stalls_[0] = &group_.counter("up_posted_credit_stalls", "TLPs",
                                        "posted TLPs that waited for a header credit of the port above");
    credit_stalls_[1] = &group_.counter("up_non_posted_credit_stalls", "TLPs",
                                        "non-posted requests that waited for a header credit of the port above");
    credit_wait_ns_ = &group_.histogram("up_credit_wait_ns", "ns", "wait of the upstream TLPs that stalled for a flow-control credit");
    const char* dn[2] = {"up", "down"};
    for (int d = 0; d < 2; ++d) {
        std::string pre = dn[d];
        st_[d].tlps = &group_.counter(pre + "_tlps", "TLPs", "TLPs serialized in this direction");
        st_[d].payload_bytes = &group_.counter(pre + "_payload_bytes", "bytes", "TLP payload bytes in this direction");
        st_[d].wire_bytes = &group_.counter(pre + "_wire_bytes", "bytes",
                                            "bytes on the wire incl. header, prefix, framing, LCRC");
        // Kept in ps (exact, integer) and reported in ns like every other time.
        group_.derived(pre + "_busy_ns", "ns", "time this direction was serializing",
                       [this, d] { return static_cast<double>(st_[d].busy_ps) / 1000.0; });
        st_[d].queue_ns = &group_.histogram(pre + "_queue_ns", "ns", "wait for the direction to become free");
    }
}

LinkTransfer Link::send(Direction dir, Duration arrival, const TlpTrain& train) {
    int d = dir == Direction::upstream ? 0 : 1;
    Duration hold = timing_.serialize(train.wire_bytes);
    Duration start = busy_[d].reserve(arrival, hold);
    DirStats& s = st_[d];
    s.tlps->inc(train.tlps);
    s.payload_bytes->inc(train.payload_bytes);
    s.wire_bytes->inc(train.wire_bytes);
    s.busy_ps += hold.as_ps();
    s.queue_ns->record((start - arrival).as_ns());
    Duration sent = start + hold;
    return LinkTransfer{start, sent, sent + latency_};
}

CreditPool::Grant Link::acquire_credit(CreditClass c, Duration want) {
    const auto k = static_cast<size_t>(c);
    const CreditPool::Grant g = credits_[k].acquire(want);
    if (g.start > want) {
        credit_stalls_[k]->inc();
        credit_wait_ns_->record((g.start - want).as_ns());
    }
    return g;
}

void Link::return_credit(CreditClass c, const CreditPool::Grant& g, Duration accepted) {
    credits_[static_cast<size_t>(c)].hold(g, accepted + latency_);
}

Duration Link::posted_release(const LinkTransfer& x, Duration downstream_free) const {
    const Duration blocked = downstream_free > posted_slack_ ? downstream_free - posted_slack_ : Duration::zero();
    return blocked > x.sent ? blocked : x.sent;
}

} // namespace iommusim::pcie
