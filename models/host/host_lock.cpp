// SPDX-License-Identifier: Apache-2.0
#include "models/host/host_lock.hpp"

#include <stdexcept>

namespace iommusim::host {

HostLock::HostLock(HostCpu& cpu, const std::string& name, stats::Group* parent)
    : cpu_(cpu), core_(cpu.params().topology), stats_(name, parent),
      acquisitions_(stats_.counter("acquisitions", "acquisitions", "times the lock was taken")),
      contended_(stats_.counter("contended", "acquisitions", "acquisitions that waited for another holder")),
      handoffs_(stats_.counter("handoffs", "acquisitions", "acquisitions after a different CPU held it (cache-line hand-off)")),
      wait_ns_(stats_.value("wait_ns", "ns", "total time CPUs waited for the lock")),
      max_wait_ns_(stats_.value("max_wait_ns", "ns", "longest wait for the lock")),
      handoff_ns_(stats_.value("handoff_ns", "ns", "total cost of cache-line hand-offs")) {}

void HostLock::lock() {
    if (watcher_) watcher_();
    ++arriving_;
    cpu_.sync(); // a lock is where CPUs interact: the caller's local time becomes the kernel's
    --arriving_;
    const uint64_t ticket = core_.arrive(cpu_.core(), cpu_.now());
    std::optional<Duration> grant;
    while (!(grant = core_.take(ticket))) sc_core::wait(released_);
    cpu_.spend(saturating_sub(*grant, cpu_.now()));
    publish();
}

void HostLock::unlock() {
    core_.release(cpu_.now());
    if (core_.waiting()) released_.notify(sc_core::SC_ZERO_TIME);
}

void HostLock::replay_take(unsigned cpu, Duration at) {
    if (!core_.take(core_.arrive(cpu, at))) throw std::logic_error("HostLock::replay_take: the lock is not free");
    publish();
}

void HostLock::replay_release(Duration at) {
    core_.release(at);
    if (core_.waiting()) released_.notify(sc_core::SC_ZERO_TIME);
}

void HostLock::publish() {
    const CpuLock::Stats& s = core_.stats();
    acquisitions_.inc(s.acquisitions - acquisitions_.value());
    contended_.inc(s.contended - contended_.value());
    handoffs_.inc(s.handoffs - handoffs_.value());
    wait_ns_.set(s.wait.as_ns());
    max_wait_ns_.set(s.max_wait.as_ns());
    handoff_ns_.set(s.handoff_time.as_ns());
}

} // namespace iommusim::host
