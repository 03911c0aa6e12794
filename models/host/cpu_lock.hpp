// SPDX-License-Identifier: Apache-2.0
#pragma once
// A host spinlock as several CPUs see it: the lock word is one cache line, so
// taking it after another CPU held it last costs a cache-line hand-off
// (calibration.md "cache-line hand-off between cores": 45–65 ns on one Intel
// socket, ~100 ns across AMD CCDs, 110–135 ns across sockets), and taking it
// while another CPU holds it costs the time until that CPU releases it.
// Waiters are served in arrival order, as Linux's queued spinlock
// (kernel/locking/qspinlock.c) hands the lock to the head of its MCS queue.
//
// Plain C++ core, no SystemC: the caller says which CPU asks and at what
// local time; the lock answers when that CPU holds it. The SystemC shell is
// HostLock (models/host/host_lock.hpp), which sleeps while the lock is held.
//
// API:
//   CpuLock l(topology);
//   uint64_t t = l.arrive(cpu, at);          // join the queue at local time `at`
//   std::optional<Duration> g = l.take(t);   // holds it from *g, or nullopt: wait for a release, call again
//   ...critical section...
//   l.release(end);                          // local time the holder lets go
//   l.stats();                               // acquisitions, contended, hand-offs, wait and hand-off time
// Convenience for an uncontended path: l.try_acquire(cpu, at) = arrive + take
// (nullopt leaves the ticket queued; the caller must take() it later).
//
// Fidelity: one cost per hand-off, by the CPUs' distance (same CPU: none).
// Not modelled: the extra line transfers of spinning waiters (each waiter
// spins on its own MCS node in qspinlock, so the lock line moves once per
// hand-off), lock-holder preemption, reader/writer locks.
#include <cstdint>
#include <deque>
#include <optional>

#include "models/common/time.hpp"

namespace iommusim::host {

/// Where the host's CPUs sit, and what moving a cache line between two of them costs.
struct CpuTopology {
    // ns; calibration.md "cache-line hand-off between cores": 45–65 ns same Intel socket (midpoint).
    static constexpr double kDefaultHandoffSameSocketNs = 55.0;
    // ns; same row: ~100 ns across AMD CCDs.
    static constexpr double kDefaultHandoffCrossCcdNs = 100.0;
    // ns; same row: 110–135 ns across sockets (midpoint).
    static constexpr double kDefaultHandoffCrossSocketNs = 122.5;

    // CPUs: the Xeon Gold 6250 of calibration.md's MMIO-read row has 8 cores [estimate: one such socket].
    static constexpr unsigned kDefaultCpus = 8;

    unsigned cpus = kDefaultCpus;  ///< CPUs (cores) of the host
    unsigned cpus_per_ccd = 0;     ///< CPUs sharing one last-level cache (AMD CCD); 0: one per socket (Intel)
    unsigned cpus_per_socket = 0;  ///< CPUs per socket; 0: a single socket
    Duration handoff_same_socket = Duration::ns(kDefaultHandoffSameSocketNs);
    Duration handoff_cross_ccd = Duration::ns(kDefaultHandoffCrossCcdNs);
    Duration handoff_cross_socket = Duration::ns(kDefaultHandoffCrossSocketNs);

    unsigned socket_of(unsigned cpu) const { return cpus_per_socket ? cpu / cpus_per_socket : 0; }
    unsigned ccd_of(unsigned cpu) const { return cpus_per_ccd ? cpu / cpus_per_ccd : socket_of(cpu); }
    /// Moving a line last written by `from` to `to`.
    Duration handoff(unsigned from, unsigned to) const;
};

class CpuLock {
public:
    struct Stats {
        uint64_t acquisitions = 0;
        uint64_t contended = 0;  ///< acquisitions that waited for another holder
        uint64_t handoffs = 0;   ///< acquisitions after a different CPU held it
        Duration wait;           ///< total time spent waiting for holders
        Duration max_wait;
        Duration handoff_time;   ///< total cost of the hand-offs
    };

    explicit CpuLock(const CpuTopology& topology) : topo_(topology) {}

    /// CPU `cpu` wants the lock at its local time `at`: a ticket in the FIFO.
    uint64_t arrive(unsigned cpu, Duration at);
    /// If the lock is free and `ticket` is first in line: takes it and returns the
    /// time it holds it from (after the previous release, plus a hand-off when a
    /// different CPU held it last). Otherwise nullopt (call again after a release).
    std::optional<Duration> take(uint64_t ticket);
    /// arrive + take.
    std::optional<Duration> try_acquire(unsigned cpu, Duration at, uint64_t* ticket = nullptr);
    /// The holder lets go at its local time `at`.
    void release(Duration at);

    bool held() const { return held_; }
    size_t waiting() const { return queue_.size(); }
    const Stats& stats() const { return stats_; }
    const CpuTopology& topology() const { return topo_; }

private:
    struct Waiter {
        uint64_t ticket;
        unsigned cpu;
        Duration at;
    };
    CpuTopology topo_;
    std::deque<Waiter> queue_;
    uint64_t next_ticket_ = 0;
    bool held_ = false;
    bool ever_held_ = false;
    unsigned last_cpu_ = 0;
    Duration released_at_;
    Stats stats_;
};

} // namespace iommusim::host
