// SPDX-License-Identifier: Apache-2.0
#include "models/host/cpu_lock.hpp"

#include <algorithm>
#include <stdexcept>

namespace iommusim::host {

Duration CpuTopology::handoff(unsigned from, unsigned to) const {
    if (from == to) return Duration::zero();
    if (socket_of(from) != socket_of(to)) return handoff_cross_socket;
    if (ccd_of(from) != ccd_of(to)) return handoff_cross_ccd;
    return handoff_same_socket;
}

uint64_t CpuLock::arrive(unsigned cpu, Duration at) {
    queue_.push_back(Waiter{next_ticket_, cpu, at});
    return next_ticket_++;
}

std::optional<Duration> CpuLock::take(uint64_t ticket) {
    if (held_ || queue_.empty() || queue_.front().ticket != ticket) return std::nullopt;
    const Waiter w = queue_.front();
    queue_.pop_front();
    held_ = true;
    const Duration start = std::max(w.at, released_at_);
    const Duration waited = start - w.at;
    Duration grant = start;
    if (ever_held_ && last_cpu_ != w.cpu) {
        const Duration h = topo_.handoff(last_cpu_, w.cpu);
        grant += h;
        ++stats_.handoffs;
        stats_.handoff_time += h;
    }
    ++stats_.acquisitions;
    if (waited > Duration::zero()) {
        ++stats_.contended;
        stats_.wait += waited;
        stats_.max_wait = std::max(stats_.max_wait, waited);
    }
    ever_held_ = true;
    last_cpu_ = w.cpu;
    return grant;
}

std::optional<Duration> CpuLock::try_acquire(unsigned cpu, Duration at, uint64_t* ticket) {
    const uint64_t t = arrive(cpu, at);
    if (ticket) *ticket = t;
    return take(t);
}

void CpuLock::release(Duration at) {
    if (!held_) throw std::logic_error("CpuLock released while not held");
    held_ = false;
    released_at_ = std::max(released_at_, at);
}

} // namespace iommusim::host
