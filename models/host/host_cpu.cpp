// SPDX-License-Identifier: Apache-2.0
#include "models/host/host_cpu.hpp"

#include <stdexcept>
#include <string>
#include <utility>

#include "models/common/sc_time.hpp"

namespace iommusim::host {

HostCpu::HostCpu(sc_core::sc_module_name name, const HostCpuParams& params, mem::PhysMem& memory,
                 stats::Group* parent_stats)
    : sc_module(name), mmio("mmio"), params_(params), memory_(memory), stats_(basename(), parent_stats),
      mmio_writes_(stats_.counter("mmio_writes", "accesses", "register writes to IOMMUs and devices")),
      mmio_reads_(stats_.counter("mmio_reads", "accesses", "register reads from IOMMUs and devices")),
      mem_writes_(stats_.counter("mem_writes", "accesses", "table-entry / descriptor writes to memory")),
      mem_reads_(stats_.counter("mem_reads", "accesses", "status-word reads from memory")),
      mmio_errors_(stats_.counter("mmio_errors", "accesses", "register accesses answered with an error")) {}

HostCpu::Thread& HostCpu::find_thread(const sc_core::sc_process_b* p) const {
    auto [it, fresh] = threads_.try_emplace(p);
    if (fresh && p) it->second.keep = sc_core::sc_get_current_process_handle();
    last_ = p;
    last_thread_ = &it->second; // unordered_map nodes do not move
    return it->second;
}

void HostCpu::run_on(unsigned core) {
    if (core >= params_.topology.cpus)
        throw std::out_of_range("host thread pinned to CPU " + std::to_string(core) + " of " +
                                std::to_string(params_.topology.cpus));
    self().core = core;
}

unsigned HostCpu::core() const { return self().core; }

void HostCpu::sync() {
    Thread& t = self();
    if (t.ahead == Duration::zero()) return;
    const Duration d = t.ahead;
    t.ahead = Duration::zero();
    sc_core::wait(to_sc(d));
}

void HostCpu::set_device_port(unsigned port) {
    if (device_port_.size() <= port) device_port_.resize(port + 1, false);
    device_port_[port] = true;
}

void HostCpu::set_posted_port(unsigned port) {
    if (posted_port_.size() <= port) posted_port_.resize(port + 1, false);
    posted_port_[port] = true;
}

void HostCpu::mmio_access(unsigned port, tlm::tlm_command cmd, uint32_t offset, uint64_t& value, unsigned size,
                          bool posted) {
    Thread& t = self();
    Duration lead;
    // Posted only while the write's time lies before the run's end: a synchronising write due
    // at or after it never happens, and neither may anything this thread does after it.
    if (posted && decouple_ && port < posted_port_.size() && posted_port_[port] && kernel_now() + t.ahead < run_end_)
        lead = std::exchange(t.ahead, Duration::zero()); // carried as the delay
    else sync(); // the register file acts at this thread's time
    if (!t.gp) t.gp = std::make_unique<tlm::tlm_generic_payload>();
    tlm::tlm_generic_payload& gp = *t.gp;
    gp.set_command(cmd);
    gp.set_address(offset);
    gp.set_data_ptr(reinterpret_cast<unsigned char*>(&value));
    gp.set_data_length(size);
    gp.set_streaming_width(size);
    gp.set_byte_enable_ptr(nullptr);
    gp.set_byte_enable_length(0);
    gp.set_dmi_allowed(false);
    gp.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    const bool device = port < device_port_.size() && device_port_[port];
    const Duration cost = cmd == tlm::TLM_WRITE_COMMAND ? params_.mmio_write
                          : device                       ? params_.device_mmio_read
                                                         : params_.mmio_read;
    sc_core::sc_time delay = to_sc(lead + cost);
    mmio[static_cast<int>(port)]->b_transport(gp, delay);
    if (!gp.is_response_ok()) mmio_errors_.inc();
    // The core stalls on the access: paid at the next interaction. (`t` is still this
    // thread's record: a target that waited let other threads run, which never remove it.)
    t.ahead += from_sc(delay);
}

void HostCpu::mmio_write(unsigned port, uint32_t offset, uint64_t value, unsigned size) {
    mmio_writes_.inc();
    ++self().acc.mmio_writes;
    mmio_access(port, tlm::TLM_WRITE_COMMAND, offset, value, size);
}

uint64_t HostCpu::mmio_read(unsigned port, uint32_t offset, unsigned size) {
    mmio_reads_.inc();
    ++self().acc.mmio_reads;
    uint64_t v = 0;
    mmio_access(port, tlm::TLM_READ_COMMAND, offset, v, size);
    return size == 4 ? (v & 0xFFFFFFFFu) : v;
}

void HostCpu::mmio_write_posted(unsigned port, uint32_t offset, uint64_t value, unsigned size) {
    mmio_writes_.inc();
    ++self().acc.mmio_writes;
    mmio_access(port, tlm::TLM_WRITE_COMMAND, offset, value, size, true);
}

void HostCpu::mem_write(uint64_t pa, const void* src, size_t len) {
    mem_writes_.inc();
    memory_.write(pa, src, len);
    Thread& t = self();
    ++t.acc.mem_writes;
    t.ahead += params_.mem_write;
}

uint32_t HostCpu::mem_read_u32(uint64_t pa) {
    mem_reads_.inc();
    Thread& t = self();
    ++t.acc.mem_reads;
    const Duration d = t.ahead + params_.mem_read;
    t.ahead = Duration::zero();
    sc_core::wait(to_sc(d));
    return memory_.read_u32(pa); // the value at the end of the read
}

uint32_t HostCpu::mem_read_flag(uint64_t pa, uint32_t mask, uint32_t settled) {
    if (!decouple_) return mem_read_u32(pa);
    const uint32_t v = memory_.read_u32(pa);
    Thread& t = self();
    // Not settled yet: it may be written before the local time. A read ending at or after the
    // run's end synchronises as well: it never completes, nor does what follows it.
    if ((v & mask) != settled || kernel_now() + t.ahead + params_.mem_read >= run_end_) return mem_read_u32(pa);
    // Written at or before the kernel's time, by one write with the rest of the word, and
    // unchanged until this thread's side rewrites it: what a read at the local time returns.
    mem_reads_.inc();
    ++t.acc.mem_reads;
    t.ahead += params_.mem_read;
    return v;
}

void HostCpu::set_now(Duration t) { self().ahead = t - kernel_now(); }

void HostCpu::wait_until(Duration t) {
    self().ahead = Duration::zero();
    const Duration k = kernel_now();
    if (t > k) sc_core::wait(to_sc(t - k));
}

HostCpu::Accesses HostCpu::accesses() const {
    return {mmio_reads_.value(), mmio_writes_.value(), mem_reads_.value(), mem_writes_.value()};
}

size_t HostCpu::on_settle(std::function<void()> fn) {
    settle_.emplace(next_settle_, std::move(fn));
    return next_settle_++;
}

void HostCpu::drop_settle(size_t id) { settle_.erase(id); }

void HostCpu::settle() {
    for (auto& [id, fn] : settle_) fn();
}

void HostCpu::account(const Accesses& a) {
    mmio_reads_.inc(a.mmio_reads);
    mmio_writes_.inc(a.mmio_writes);
    mem_reads_.inc(a.mem_reads);
    mem_writes_.inc(a.mem_writes);
    Accesses& mine = self().acc;
    mine.mmio_reads += a.mmio_reads;
    mine.mmio_writes += a.mmio_writes;
    mine.mem_reads += a.mem_reads;
    mine.mem_writes += a.mem_writes;
}

} // namespace iommusim::host
