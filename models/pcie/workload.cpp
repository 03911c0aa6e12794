// SPDX-License-Identifier: Apache-2.0
#include "models/pcie/workload.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <deque>
#include <fstream>
#include <map>
#include <sstream>

#include "models/pcie/tlp.hpp"

namespace iommusim::pcie {

namespace {

[[noreturn]] void bad(const std::string& m) { throw std::invalid_argument(m); }

/// Shared by every generator: seeded RNG, PASID mix, op budget.
class Base : public Workload {
public:
    explicit Base(const WorkloadParams& p) : p_(p), rng_(p.seed) {
        if (!p.pasid.weights.empty() && p.pasid.weights.size() != p.pasid.pasids.size())
            bad("pasid.weights: expected one weight per PASID");
        for (uint32_t v : p.pasid.pasids)
            if (v > kPasidMask) bad("pasid: " + std::to_string(v) + " does not fit 20 bits");
        if (!p.pasid.weights.empty()) pick_ = std::discrete_distribution<size_t>(p.pasid.weights.begin(), p.pasid.weights.end());
        if (p.read_percent > 100) bad("read_percent: expected 0..100");
    }

    std::optional<DmaOp> next() override {
        if (queue_.empty()) {
            if (p_.requests != 0 && units_ >= p_.requests) return std::nullopt;
            if (!produce()) return std::nullopt;
            ++units_;
        }
        DmaOp op = queue_.front();
        queue_.pop_front();
        op.function = p_.function;
        return op;
    }

protected:
    /// Appends the ops of one unit (op, packet, job); false when exhausted.
    virtual bool produce() = 0;

    void tag_pasid(DmaOp& op, size_t index) {
        if (p_.pasid.pasids.empty()) return;
        op.pasid_present = true;
        op.pasid = p_.pasid.pasids[index % p_.pasid.pasids.size()];
    }
    void random_pasid(DmaOp& op) {
        if (p_.pasid.pasids.empty()) return;
        size_t i = p_.pasid.weights.empty()
                       ? std::uniform_int_distribution<size_t>(0, p_.pasid.pasids.size() - 1)(rng_)
                       : pick_(rng_);
        tag_pasid(op, i);
    }
    bool coin_read() { return std::uniform_int_distribution<uint32_t>(0, 99)(rng_) < p_.read_percent; }
    void emit(uint64_t addr, uint32_t size, bool write) {
        DmaOp op;
        op.addr = addr;
        op.size = size;
        op.write = write;
        random_pasid(op);
        queue_.push_back(op);
    }

    WorkloadParams p_;
    std::mt19937_64 rng_;
    std::discrete_distribution<size_t> pick_;
    std::deque<DmaOp> queue_;
    uint64_t units_ = 0;
};

void check_region(const WorkloadParams& p) {
    if (p.request_bytes == 0) bad("request_bytes: expected > 0");
    if (p.region_bytes < p.request_bytes) bad("region_bytes: expected >= request_bytes");
}

class Sequential final : public Base {
public:
    explicit Sequential(const WorkloadParams& p) : Base(p) { check_region(p); }
    bool produce() override {
        emit(p_.base + off_, p_.request_bytes, !coin_read());
        off_ += p_.request_bytes;
        if (off_ + p_.request_bytes > p_.region_bytes) off_ = 0;
        return true;
    }

private:
    uint64_t off_ = 0;
};

class RandomUniform final : public Base {
public:
    explicit RandomUniform(const WorkloadParams& p) : Base(p), pick_block_(0, p.region_bytes / p.request_bytes - 1) {
        check_region(p);
    }
    bool produce() override {
        emit(p_.base + pick_block_(rng_) * p_.request_bytes, p_.request_bytes, !coin_read());
        return true;
    }

private:
    std::uniform_int_distribution<uint64_t> pick_block_;
};

class Zipf final : public Base {
public:
    explicit Zipf(const WorkloadParams& p) : Base(p) {
        check_region(p);
        if (p.item_bytes < p.request_bytes || p.item_bytes % p.request_bytes)
            bad("item_bytes: expected a multiple of request_bytes");
        uint64_t items = p.region_bytes / p.item_bytes;
        if (items == 0 || items > (uint64_t{1} << 24)) bad("zipf: region_bytes / item_bytes must be 1..16M items");
        if (!(p.zipf_s >= 0)) bad("zipf_s: expected >= 0");
        cdf_.resize(items);
        double sum = 0;
        for (uint64_t k = 0; k < items; ++k) cdf_[k] = sum += 1.0 / std::pow(static_cast<double>(k + 1), p.zipf_s);
        for (double& c : cdf_) c /= sum;
    }
    bool produce() override {
        double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
        uint64_t item = static_cast<uint64_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
        item = std::min<uint64_t>(item, cdf_.size() - 1);
        uint64_t slots = p_.item_bytes / p_.request_bytes;
        uint64_t off = std::uniform_int_distribution<uint64_t>(0, slots - 1)(rng_) * p_.request_bytes;
        emit(p_.base + item * p_.item_bytes + off, p_.request_bytes, !coin_read());
        return true;
    }

private:
    std::vector<double> cdf_;
};

class Strided final : public Base {
public:
    explicit Strided(const WorkloadParams& p) : Base(p) {
        check_region(p);
        if (p.stride_bytes == 0) bad("stride_bytes: expected > 0");
    }
    bool produce() override {
        emit(p_.base + off_, p_.request_bytes, !coin_read());
        off_ += p_.stride_bytes;
        if (off_ + p_.request_bytes > p_.region_bytes) off_ = 0;
        return true;
    }

private:
    uint64_t off_ = 0;
};

class NicRing final : public Base {
public:
    explicit NicRing(const WorkloadParams& p) : Base(p) {
        if (p.ring_entries == 0 || p.descriptor_bytes == 0) bad("ring_entries, descriptor_bytes: expected > 0");
        if (p.packet_bytes == 0 || p.packet_bytes > p.buffer_bytes) bad("packet_bytes: expected 1..buffer_bytes");
        if (p.remap_per_packet && p.remap_window_packets < p.ring_entries)
            bad("remap_window_packets: expected >= ring_entries");
    }
    bool produce() override {
        uint64_t slot = packet_ % p_.ring_entries;
        uint64_t desc = p_.base + slot * p_.descriptor_bytes;
        uint64_t buf_index = p_.remap_per_packet ? packet_ % p_.remap_window_packets : slot;
        uint64_t buf = p_.buffer_base + buf_index * p_.buffer_bytes;
        // Descriptor fetch, payload, write-back: the DMA pattern of a NIC
        // queue (e.g. Intel ice/ixgbe RX: read desc, write buffer, write desc).
        emit_pasid(desc, p_.descriptor_bytes, false);
        emit_pasid(buf, p_.packet_bytes, !p_.tx);
        emit_pasid(desc, p_.descriptor_bytes, true);
        ++packet_;
        return true;
    }

private:
    void emit_pasid(uint64_t a, uint32_t n, bool w) {
        DmaOp op;
        op.addr = a;
        op.size = n;
        op.write = w;
        tag_pasid(op, 0); // a queue belongs to one address space
        queue_.push_back(op);
    }
    uint64_t packet_ = 0;
};

class AccelQueue final : public Base {
public:
    explicit AccelQueue(const WorkloadParams& p) : Base(p) {
        if (p.job_bytes == 0 || p.job_descriptor_bytes == 0) bad("job_bytes, job_descriptor_bytes: expected > 0");
    }
    bool produce() override {
        // Each job runs in its submitter's address space: descriptor fetch
        // from the work queue, source read, destination write, all tagged
        // with that job's PASID (Intel DSA/IAA shared work queue model).
        DmaOp d, s, w;
        d.addr = p_.base + (job_ % kQueueSlots) * p_.job_descriptor_bytes;
        d.size = p_.job_descriptor_bytes;
        s.addr = p_.buffer_base;
        s.size = p_.job_bytes;
        w.addr = p_.buffer_base + p_.job_bytes;
        w.size = p_.job_bytes;
        w.write = true;
        size_t idx = static_cast<size_t>(job_);
        if (!p_.pasid.weights.empty()) idx = pick_(rng_);
        for (DmaOp* op : {&d, &s, &w}) {
            tag_pasid(*op, idx);
            queue_.push_back(*op);
        }
        ++job_;
        return true;
    }

private:
    static constexpr uint64_t kQueueSlots = 128; // DSA WQ size order of magnitude
    uint64_t job_ = 0;
};

class Trace final : public Base {
public:
    explicit Trace(const WorkloadParams& p) : Base(p) {}
    bool produce() override {
        if (i_ >= p_.trace.size()) return false;
        const TraceRecord& r = p_.trace[i_++];
        DmaOp op;
        op.addr = r.addr;
        op.size = r.size;
        op.write = r.write;
        op.pasid_present = r.pasid_present;
        op.pasid = r.pasid;
        op.not_before = Duration::ns(static_cast<double>(r.time_ns));
        queue_.push_back(op);
        return true;
    }

private:
    size_t i_ = 0;
};

std::string trim(std::string s) {
    auto sp = [](unsigned char c) { return std::isspace(c) != 0; };
    while (!s.empty() && sp(static_cast<unsigned char>(s.back()))) s.pop_back();
    size_t i = 0;
    while (i < s.size() && sp(static_cast<unsigned char>(s[i]))) ++i;
    return s.substr(i);
}

bool parse_u64(const std::string& s, uint64_t& v) {
    if (s.empty()) return false;
    int base = 10;
    size_t start = 0;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        start = 2;
    }
    auto [p, ec] = std::from_chars(s.data() + start, s.data() + s.size(), v, base);
    return ec == std::errc() && p == s.data() + s.size();
}

} // namespace

std::unique_ptr<Workload> make_workload(const WorkloadParams& p) {
    switch (p.kind) {
    case WorkloadKind::sequential: return std::make_unique<Sequential>(p);
    case WorkloadKind::random_uniform: return std::make_unique<RandomUniform>(p);
    case WorkloadKind::zipf: return std::make_unique<Zipf>(p);
    case WorkloadKind::strided: return std::make_unique<Strided>(p);
    case WorkloadKind::nic_ring: return std::make_unique<NicRing>(p);
    case WorkloadKind::accel_queue: return std::make_unique<AccelQueue>(p);
    case WorkloadKind::trace: return std::make_unique<Trace>(p);
    }
    bad("unknown workload kind");
}

const std::vector<WorkloadKindInfo>& workload_kinds() {
    static const std::vector<WorkloadKindInfo> k = {
        {"sequential", WorkloadKind::sequential, "consecutive blocks over a region, wrapping"},
        {"random_uniform", WorkloadKind::random_uniform, "uniformly random aligned blocks over a working set"},
        {"zipf", WorkloadKind::zipf, "zipf-skewed page popularity (rank 1 hottest)"},
        {"strided", WorkloadKind::strided, "fixed stride through a region"},
        {"nic_ring", WorkloadKind::nic_ring, "NIC RX/TX descriptor ring with per-packet buffers"},
        {"accel_queue", WorkloadKind::accel_queue, "accelerator work queue, one PASID per job"},
        {"trace", WorkloadKind::trace, "replay of a time_ns,device,pasid,addr,size,rw CSV trace"},
    };
    return k;
}

WorkloadKind workload_kind_from_name(const std::string& name) {
    std::string names;
    for (const auto& k : workload_kinds()) {
        if (name == k.name) return k.kind;
        names += names.empty() ? "" : ", ";
        names += k.name;
    }
    bad("unknown workload type \"" + name + "\"; expected one of " + names);
}

TraceError::TraceError(const std::string& source, unsigned l, const std::string& what)
    : std::runtime_error(source + ":" + std::to_string(l) + ": " + what), line(l) {}

std::vector<TraceRecord> parse_trace_csv(std::istream& in, const std::string& source) {
    std::vector<TraceRecord> out;
    std::map<std::string, uint64_t> last_time;
    std::string raw;
    unsigned line = 0;
    while (std::getline(in, raw)) {
        ++line;
        std::string l = trim(raw);
        if (l.empty() || l[0] == '#') continue;
        if (out.empty() && l.rfind("time_ns", 0) == 0) {
            if (l != "time_ns,device,pasid,addr,size,rw")
                throw TraceError(source, line, "header must be exactly \"time_ns,device,pasid,addr,size,rw\"");
            continue;
        }
        std::vector<std::string> f;
        std::stringstream ss(l);
        std::string cell;
        while (std::getline(ss, cell, ',')) f.push_back(trim(cell));
        if (!l.empty() && l.back() == ',') f.emplace_back();
        if (f.size() != 6)
            throw TraceError(source, line, "expected 6 fields time_ns,device,pasid,addr,size,rw, got " + std::to_string(f.size()));
        TraceRecord r;
        r.line = line;
        if (!parse_u64(f[0], r.time_ns)) throw TraceError(source, line, "time_ns: expected an integer, got \"" + f[0] + "\"");
        if (f[1].empty()) throw TraceError(source, line, "device: expected a device name");
        r.device = f[1];
        if (!f[2].empty() && f[2] != "-") {
            uint64_t v;
            if (!parse_u64(f[2], v) || v > kPasidMask)
                throw TraceError(source, line, "pasid: expected empty, \"-\" or a 20-bit number, got \"" + f[2] + "\"");
            r.pasid_present = true;
            r.pasid = static_cast<uint32_t>(v);
        }
        if (!parse_u64(f[3], r.addr)) throw TraceError(source, line, "addr: expected a decimal or 0x-hex address, got \"" + f[3] + "\"");
        uint64_t size;
        if (!parse_u64(f[4], size) || size == 0 || size > (uint64_t{1} << 31))
            throw TraceError(source, line, "size: expected a positive byte count, got \"" + f[4] + "\"");
        r.size = static_cast<uint32_t>(size);
        if (f[5] == "r" || f[5] == "R" || f[5] == "read") r.write = false;
        else if (f[5] == "w" || f[5] == "W" || f[5] == "write") r.write = true;
        else throw TraceError(source, line, "rw: expected r or w, got \"" + f[5] + "\"");
        auto [it, fresh] = last_time.emplace(r.device, r.time_ns);
        if (!fresh) {
            if (r.time_ns < it->second)
                throw TraceError(source, line, "time_ns " + std::to_string(r.time_ns) + " goes backwards for device " +
                                                   r.device + " (previous " + std::to_string(it->second) + ")");
            it->second = r.time_ns;
        }
        out.push_back(std::move(r));
    }
    return out;
}

std::vector<TraceRecord> load_trace_csv(const std::string& path) {
    std::ifstream f(path);
    if (!f) throw TraceError(path, 0, "cannot open trace file");
    return parse_trace_csv(f, path);
}

std::vector<TraceRecord> trace_for_device(const std::vector<TraceRecord>& all, const std::string& device) {
    std::vector<TraceRecord> out;
    std::copy_if(all.begin(), all.end(), std::back_inserter(out), [&](const TraceRecord& r) { return r.device == device; });
    return out;
}

} // namespace iommusim::pcie
