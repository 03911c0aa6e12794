// SPDX-License-Identifier: Apache-2.0
#pragma once
// DMA address-stream generators: plain C++, seeded, kernel-free. An endpoint
// pulls DmaOps from them and turns each into TLPs.
//
// Fidelity: what each stream promises and the tests check —
//   sequential      consecutive request_bytes blocks over region_bytes, wrapping;
//   random_uniform  request-aligned blocks drawn uniformly over the working set;
//   zipf            item (page) rank k drawn with P(k) ~ 1/k^s over region/item
//                   items (rank 1 = the first item), random aligned offset inside;
//   strided         base + n*stride modulo the region;
//   nic_ring        per packet: descriptor read, buffer write (RX) or read (TX),
//                   descriptor write-back; descriptor slot reuse distance =
//                   ring_entries packets; buffers reused per slot, or (strict
//                   host) a fresh IOVA per packet cycling a window of
//                   remap_window_packets buffers;
//   accel_queue     per job: descriptor read, source read, destination write,
//                   all with the job's PASID (jobs cycle the PASID mix);
//   trace           records from a CSV file at their timestamps.
//  Not modelled: data-dependent behaviour, packet-size distributions, the
//  host side of the rings (the host driver model maps/unmaps buffers).
#include <cstdint>
#include <istream>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/pcie/workload_params.hpp"

namespace iommusim::pcie {

/// One DMA operation (before splitting into TLPs).
struct DmaOp {
    uint64_t addr = 0;
    uint32_t size = 0;
    bool write = false;
    bool pasid_present = false;
    uint32_t pasid = 0;
    Duration not_before;      ///< earliest issue time (trace timestamps)
    unsigned function = 0;
};

class Workload {
public:
    virtual ~Workload() = default;
    /// The next operation, or nothing when the stream is exhausted.
    virtual std::optional<DmaOp> next() = 0;
};

/// Builds the generator for p.kind; throws std::invalid_argument on bad params.
std::unique_ptr<Workload> make_workload(const WorkloadParams& p);

/// Registry of workload kinds ("sequential", ...), for config front ends.
struct WorkloadKindInfo {
    const char* name;
    WorkloadKind kind;
    const char* description;
};
const std::vector<WorkloadKindInfo>& workload_kinds();
/// Kind by name; throws std::invalid_argument listing the valid names.
WorkloadKind workload_kind_from_name(const std::string& name);

/// A malformed trace: message is "<source>:<line>: <what>".
class TraceError : public std::runtime_error {
public:
    TraceError(const std::string& source, unsigned line, const std::string& what);
    unsigned line;
};

/// Parses `time_ns,device,pasid,addr,size,rw` records. A first line starting
/// with "time_ns" is a header; blank lines and lines starting with '#' are
/// skipped. pasid: empty or "-" = none, else decimal or 0x-hex (< 2^20);
/// addr: decimal or 0x-hex; size: positive decimal; rw: r/read or w/write.
/// Timestamps may not decrease for a device.
std::vector<TraceRecord> parse_trace_csv(std::istream& in, const std::string& source);
std::vector<TraceRecord> load_trace_csv(const std::string& path);
/// Records of one device, in file order.
std::vector<TraceRecord> trace_for_device(const std::vector<TraceRecord>& all, const std::string& device);

} // namespace iommusim::pcie
