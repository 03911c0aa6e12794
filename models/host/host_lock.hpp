// SPDX-License-Identifier: Apache-2.0
#pragma once
// A host lock in simulated time: the SystemC shell around CpuLock
// (models/host/cpu_lock.hpp). lock() is called from an SC_THREAD running on
// one of HostCpu's CPUs (HostCpu::run_on); it queues the caller, sleeps while
// another holder has the lock, and charges the caller the wait plus the
// cache-line hand-off from the previous holder's CPU. unlock() frees it at the
// caller's local time and wakes the next in line.
//
// Stats (group `name` under `parent`): acquisitions, contended, handoffs,
// wait_ns, max_wait_ns, handoff_ns.
//
// API (e.g. a command-queue lock):
//   HostLock lock(cpu, "queue_lock", &stats_group);
//   lock.lock();   ...write descriptors, publish the tail...   lock.unlock();
//   lock.core().stats();   // the same figures as plain numbers
//
// Fidelity: see CpuLock. The caller pays its waiting as CPU time (a spinlock
// spins); a thread that sleeps instead should not use this lock.
#include <functional>
#include <optional>
#include <string>
#include <systemc>
#include <utility>

#include "models/common/stats.hpp"
#include "models/host/cpu_lock.hpp"
#include "models/host/host_cpu.hpp"

namespace iommusim::host {

class HostLock {
public:
    HostLock(HostCpu& cpu, const std::string& name, stats::Group* parent);
    /// Takes the lock on the calling thread's CPU (SC_THREAD only).
    void lock();
    /// Releases it at the calling thread's local time.
    void unlock();
    const CpuLock& core() const { return core_; }
    /// Record an uncontended acquisition by CPU `cpu` at local time `at` and a release at
    /// `at`, which a caller proved happened without performing them (CmdQueueDriver's
    /// skipped polls); replay_take throws if the lock is not free for it.
    void replay_take(unsigned cpu, Duration at);
    void replay_release(Duration at);
    /// Called at the start of every lock() (before the caller synchronises), so a thread
    /// that skips its own lock/unlock sequence can account for it before the lock is
    /// contended; unset by passing {}.
    void set_watcher(std::function<void()> w) { watcher_ = std::move(w); }
    /// Held, waited for, or wanted by a thread still catching up to its arrival time.
    bool busy() const { return core_.held() || core_.waiting() || arriving_; }
    /// Waited for, or wanted by a thread still catching up to its arrival time.
    bool contended() const { return core_.waiting() || arriving_; }

    /// Holds the lock for a scope (released on the way out, also by an exception).
    class Guard {
    public:
        explicit Guard(HostLock& l) : l_(&l) { l.lock(); }
        ~Guard() { release(); }
        Guard(const Guard&) = delete;
        Guard& operator=(const Guard&) = delete;
        /// Releases it early.
        void release() {
            if (l_) std::exchange(l_, nullptr)->unlock();
        }

    private:
        HostLock* l_;
    };

private:
    void publish();

    HostCpu& cpu_;
    CpuLock core_;
    sc_core::sc_event released_;
    std::function<void()> watcher_;
    unsigned arriving_ = 0; ///< threads in lock() synchronising before they arrive
    stats::Group stats_;
    stats::Counter& acquisitions_;
    stats::Counter& contended_;
    stats::Counter& handoffs_;
    stats::Value& wait_ns_;
    stats::Value& max_wait_ns_;
    stats::Value& handoff_ns_;
};

} // namespace iommusim::host
