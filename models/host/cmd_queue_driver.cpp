// SPDX-License-Identifier: Apache-2.0
#include "models/host/cmd_queue_driver.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>

#include "models/common/sc_time.hpp"
#include "models/host/host_error.hpp"
#include "models/host/page_request_log.hpp"

namespace iommusim::host {

namespace {
constexpr uint64_t kPage = 4096;
} // namespace

CmdQueueDriver::CmdQueueDriver(HostCpu& cpu, CmdQueueHooks& hooks, Counters counters, MsiDecoder* msi,
                               std::vector<uint32_t> vectors, stats::Group* lock_stats)
    : cpu_(cpu), hooks_(hooks), c_(counters), irq_(msi, std::move(vectors)), lock_(cpu, "queue_lock", lock_stats) {
    // At the end of a run, polls a sleeping thread would have made by then count.
    settle_id_ = cpu_.on_settle([this] {
        for (Sleeper* s : sleepers_) catch_up(*s, kernel_now());
    });
    // A CPU wanting the lock a sleeper holds between its skipped relaxes: the sleeper
    // resumes polling for real (all sleepers of a queue share its wait loop; one at most
    // when it holds the lock).
    lock_.set_watcher([this] {
        if (!sleepers_.empty() && sleepers_.front()->hold) stop_sleepers();
    });
}

CmdQueueDriver::~CmdQueueDriver() { cpu_.drop_settle(settle_id_); }

void CmdQueueDriver::init(const std::function<uint64_t()>& alloc_page, unsigned order, unsigned entry_bytes,
                          unsigned status_bytes) {
    if (entry_bytes != 16 && entry_bytes != 32) throw std::invalid_argument("command queue entries are 16 or 32 bytes");
    if (status_bytes != 4 && status_bytes != 8) throw std::invalid_argument("sync status writes are 4 or 8 bytes");
    status_bytes_ = status_bytes;
    base_ = alloc_contiguous_pages(alloc_page, order, "the command queue");
    bytes_ = (uint64_t{1} << order) * kPage;
    entry_bytes_ = entry_bytes;
    status_pa_ = alloc_page();
    tail_ = head_ = 0;
    seq_ = 0;
}

void CmdQueueDriver::set_sync_status_per_slot(const std::function<uint64_t()>& alloc_page, uint32_t in_use,
                                              uint32_t done) {
    if (!bytes_) throw std::logic_error("command queue: per-slot status before init()");
    const uint64_t words = bytes_ / entry_bytes_ * status_bytes_;
    unsigned order = 0;
    while ((kPage << order) < words) ++order;
    slot_status_ = alloc_contiguous_pages(alloc_page, order, "the command queue's status array");
    slot_done_ = SlotStatus{in_use, done};
}

void CmdQueueDriver::set_wait(Wait w) {
    if (w == Wait::interrupt && !irq_.connected())
        throw std::runtime_error("command queue: interrupt wait mode needs an MSI path");
    wait_ = w;
}

uint64_t CmdQueueDriver::interrupts_seen() const { return irq_.count(); }

void CmdQueueDriver::wait_for_interrupt(uint64_t seen) {
    (void)irq_.wait(cpu_, seen); // the submitter sleeps; the interrupt wakes it
    hooks_.acknowledge_interrupt();
}

uint64_t CmdQueueDriver::seq_at(uint64_t byte_offset) const {
    // Entries between a ring offset and the tail were the last ones written.
    const uint64_t behind = ((tail_ + bytes_ - byte_offset % bytes_) % bytes_) / entry_bytes_;
    return seq_ - behind;
}

void CmdQueueDriver::abort_owner_of(uint64_t seq) {
    auto it = open_.upper_bound(seq);
    if (it == open_.begin()) return;
    --it;
    if (seq < it->second.end) aborted_.insert(it->second.token);
}

void CmdQueueDriver::check_errors() {
    last_check_.reset(); // a polling thread that measures this call sets it again
    const QueueError e = hooks_.read_error();
    if (!e.bits) return;
    c_.errors.inc();
    if (e.replace_head || !e.failed_entries.empty()) {
        const uint64_t head = hooks_.read_head() % bytes_;
        const uint64_t seq = seq_at(head);
        if (e.replace_head) {
            const QueueEntry nop = hooks_.encode_nop();
            cpu_.mem_write(base_ + head, nop.data(), entry_bytes_);
        }
        for (int rel : e.failed_entries) {
            const int64_t s = static_cast<int64_t>(seq) + rel;
            if (s >= 0) abort_owner_of(static_cast<uint64_t>(s));
        }
    }
    hooks_.acknowledge(e);
}

void CmdQueueDriver::set_dropped(CommandKind k, bool dropped) {
    const auto bit = static_cast<uint8_t>(1u << static_cast<unsigned>(k));
    dropped_ = dropped ? dropped_ | bit : dropped_ & ~bit;
}

void CmdQueueDriver::drop_injected(std::vector<QueueEntry>& cmds) const {
    std::erase_if(cmds, [this](const QueueEntry& e) { return (dropped_ >> static_cast<unsigned>(hooks_.kind_of(e))) & 1; });
}

FlushTiming CmdQueueDriver::submit(std::vector<QueueEntry> cmds, bool counted) {
    if (!bytes_) throw std::logic_error("command queue used before init()");
    if (dropped_) drop_injected(cmds);
    // The ring holds bytes/entry - 1 entries, and each submission ends with its sync: a
    // longer flush (a domain with many attached PASIDs) goes in batches as the family's
    // Linux driver sends it (set_batching) instead of failing.
    const size_t room = bytes_ / entry_bytes_ - 2;
    const size_t per = batching_.max_entries ? std::min(batching_.max_entries, room) : room;
    if (cmds.size() <= per || !batching_.sync_each) return submit_batch(std::move(cmds), counted, per);
    // Each batch with its own sync, waited for before the next (VT-d qi_batch). A failed
    // batch marks the flush failed; the later batches are still submitted, as Linux does.
    FlushTiming all;
    for (size_t at = 0; at < cmds.size(); at += per) {
        const auto from = cmds.begin() + static_cast<std::ptrdiff_t>(at);
        const auto to = cmds.begin() + static_cast<std::ptrdiff_t>(std::min(at + per, cmds.size()));
        FlushTiming t = submit_batch(std::vector<QueueEntry>(from, to), counted, per);
        if (at == 0) {
            all = t;
            continue;
        }
        all.observed = t.observed;
        all.descriptors += t.descriptors;
        all.devtlb_requests += t.devtlb_requests;
        all.error = all.error || t.error;
        // Phases: the first batch's first fetch, the last batch's completions.
        for (auto p : {&FlushTiming::caches_done, &FlushTiming::devtlb_done, &FlushTiming::wait_done})
            if (t.*p) all.*p = t.*p;
        if (!all.devtlb_sent) all.devtlb_sent = t.devtlb_sent;
        if (!all.fetched) all.fetched = t.fetched;
    }
    return all;
}

uint64_t CmdQueueDriver::write_entries(const std::vector<QueueEntry>& cmds, uint32_t key, bool sync,
                                      uint64_t& status, bool keep_lock) {
    if ((cmds.size() + 1) * entry_bytes_ > bytes_)
        throw HostError(HostError::Kind::invalid,
                        "command queue: " + std::to_string(cmds.size()) + " entries do not fit the ring");
    lock_.lock();
    // Wait for room: the ring is full when tail + 1 entry == head.
    const uint64_t need = cmds.size() * entry_bytes_;
    auto used = [&] { return (tail_ + bytes_ - head_) % bytes_; };
    while (used() + need >= bytes_) {
        head_ = hooks_.read_head() % bytes_;
        if (used() + need >= bytes_) {
            lock_.unlock(); // let a waiter clear a queue error meanwhile
            cpu_.spend(cpu_.params().poll_interval);
            check_errors();
            lock_.lock();
        }
    }
    const uint64_t first_seq = seq_;
    // Known before the unit can see the tail: its phase reports are kept.
    if (key) open_[first_seq] = Submission{seq_ + cmds.size(), key, {}};
    for (size_t i = 0; i < cmds.size(); ++i) {
        const uint64_t slot = tail_;
        tail_ = (tail_ + entry_bytes_) % bytes_;
        ++seq_;
        QueueEntry cmd = cmds[i];
        if (sync && in_entry_done_ && i + 1 == cmds.size()) {
            // The sync's status word is its own first word: encode it with its own address.
            cmd = hooks_.encode_sync(base_ + slot, *in_entry_done_, wait_ == Wait::interrupt);
            status = base_ + slot;
        } else if (sync && slot_done_ && i + 1 == cmds.size()) {
            // The status word of the sync's slot: marked in use, then named in the sync.
            status = slot_status(slot / entry_bytes_);
            cpu_.mem_write(status, &slot_done_->in_use, status_bytes_);
            cmd = hooks_.encode_sync(status, slot_done_->done, wait_ == Wait::interrupt);
        }
        cpu_.mem_write(base_ + slot, cmd.data(), entry_bytes_);
    }
    c_.entries.inc(cmds.size());
    hooks_.write_tail(tail_, seq_);
    if (!keep_lock) lock_.unlock();
    return first_seq;
}

void CmdQueueDriver::post(std::vector<QueueEntry> cmds) {
    if (!bytes_) throw std::logic_error("command queue used before init()");
    if (dropped_) drop_injected(cmds);
    uint64_t status = 0;
    if (!cmds.empty()) (void)write_entries(cmds, 0, false, status);
}

FlushTiming CmdQueueDriver::submit_batch(std::vector<QueueEntry> cmds, bool counted, size_t part) {
    FlushTiming t;
    t.submitted = cpu_.now();
    const bool irq = wait_ == Wait::interrupt;
    // Every submission has its own key (its entries' owner); the status word receives the
    // key, or in in-entry mode the fixed completion value in the sync's own slot.
    const uint32_t key = ++token_ ? token_ : ++token_;
    uint32_t token = key;
    uint64_t status = 0;
    if (in_entry_done_ || slot_done_) {
        cmds.push_back(QueueEntry{}); // encoded with its (slot's) status address by write_entries
        token = in_entry_done_ ? *in_entry_done_ : slot_done_->done;
    } else {
        // One status slot per in-flight sync; the token sits in its low dword (little endian).
        status = status_pa_ + status_bytes_ * (token % (kPage / status_bytes_));
        const uint64_t zero = 0;
        cpu_.memory().write(status, &zero, status_bytes_);
        cmds.push_back(hooks_.encode_sync(status, token, irq));
    }
    const WaitLoop loop = hooks_.wait_loop();
    const bool hold = loop.hold_lock && !irq; // never sleep holding a spinlock
    // Parts of at most `part` commands (the last one with the sync may hold one more), each
    // written when the ring has room for it.
    uint64_t first_part = 0;          // the first seq of each part (its key in open_), ...
    std::vector<uint64_t> more_parts; // ... of a submission written in several parts
    for (size_t at = 0; at < cmds.size();) {
        const size_t n = cmds.size() - at <= part + 1 ? cmds.size() - at : part;
        const auto from = cmds.begin() + static_cast<std::ptrdiff_t>(at);
        const bool last = at + n == cmds.size();
        const uint64_t first =
            n == cmds.size() ? write_entries(cmds, key, true, status, hold)
                             : write_entries(std::vector<QueueEntry>(from, from + static_cast<std::ptrdiff_t>(n)), key,
                                             last, status, hold && last);
        if (at == 0) first_part = first;
        else more_parts.push_back(first);
        at += n;
    }
    t.descriptors = static_cast<unsigned>(cmds.size());
    // The family's loop (qi_submit_sync, wait_on_sem, ...): read the status word,
    // check the error state, relax (dropping the lock around it if held), repeat.
    // Iterations whose outcome is known are not performed but accounted for (skip_polls).
    const Duration relax = loop.relax.value_or(cpu_.params().poll_interval);
    std::optional<Duration> read_at; // resumed after skipping: this iteration's read ends then
    // Known outcome from the first iteration on: sleep now (the lock, if held, is released
    // by the replay of the first iteration's end).
    if (!irq && last_check_ &&
        skip_polls(status, token, t.submitted, loop, std::nullopt, *last_check_, read_at) == Resume::at_lock && hold)
        lock_.lock();
    for (;;) {
        const uint64_t seen = irq ? interrupts_seen() : 0;
        uint32_t value = 0;
        if (read_at) { // its poll and read were accounted for by skip_polls
            cpu_.wait_until(*read_at);
            read_at.reset();
            value = cpu_.memory().read_u32(status);
        } else {
            c_.polls.inc();
            value = cpu_.mem_read_u32(status);
        }
        if (value == token) break;
        const Duration read_done = cpu_.now();
        const HostCpu::Accesses before_check = cpu_.accesses();
        const uint64_t errors = c_.errors.value();
        const uint64_t signals = hooks_.error_signals();
        check_errors();
        if (!aborted_.empty() && aborted_.erase(key)) {
            t.error = true;
            break;
        }
        if (loop.timeout && cpu_.now() - t.submitted >= *loop.timeout) { // the driver gives up
            c_.errors.inc();
            t.error = true;
            break;
        }
        if (irq) {
            wait_for_interrupt(seen); // sleep until the unit signals (completion or error)
            continue;
        }
        const bool quiet = c_.errors.value() == errors;
        if (quiet) last_check_ = Check{cpu_.now() - read_done, cpu_.accesses() - before_check, signals};
        if (hold) lock_.unlock();
        cpu_.spend(relax);
        if (quiet && skip_polls(status, token, t.submitted, loop, read_done, *last_check_, read_at) == Resume::at_read)
            continue; // the lock (if held) was taken at the iteration's start
        if (hold) lock_.lock();
    }
    if (hold) lock_.unlock();
    t.observed = cpu_.now();
    if (!aborted_.empty() && aborted_.erase(key)) t.error = true; // a part was refused (seen while waiting for room)
    if (counted) c_.submissions.inc();
    auto collect = [&](uint64_t first) {
        const auto it = open_.find(first);
        collect_phases(it->second, t);
        open_.erase(it);
    };
    collect(first_part);
    for (uint64_t first : more_parts) collect(first);
    return t;
}

CmdQueueDriver::Resume CmdQueueDriver::skip_polls(uint64_t status, uint32_t token, Duration submitted,
                                                  const WaitLoop& loop, std::optional<Duration> read_done,
                                                  Check check, std::optional<Duration>& read_at) {
    // Every further iteration reads the same status word and makes the same error check at
    // fixed intervals until the unit writes the word or reports an error, the check could
    // change (errors_quiet_until, error_signals, the time-out) or, holding the lock between
    // relaxes, another CPU wants the lock. Instead of one context switch per iteration the
    // thread sleeps until one of these and then accounts for the iterations that found nothing.
    // Only for a unit that reports its status writes and errors to this driver, and when
    // nothing else interacts with this loop now (no other sleeper or lock waiter).
    if (!skip_enabled_ || !unit_reports_) return Resume::polled;
    const std::optional<Duration> quiet = hooks_.errors_quiet_until();
    if (!quiet) return Resume::polled;
    const bool first = !read_done;
    // Before the first iteration: only with the check of read_error()'s last call still
    // valid, and a status word not written yet (its write would have found no sleeper).
    if (first && (check.signals != hooks_.error_signals() || cpu_.memory().read_u32(status) == token))
        return Resume::polled;
    const bool hold = loop.hold_lock;
    // Before the first iteration the lock is this thread's (held since the tail write).
    if (hold && (!sleepers_.empty() || (first ? lock_.contended() : lock_.busy()))) return Resume::polled;
    Sleeper s;
    s.hold = hold;
    s.core = cpu_.core();
    s.mr = cpu_.params().mem_read;
    s.check = check.time;
    s.relax = loop.relax.value_or(cpu_.params().poll_interval);
    s.check_acc = check.acc;
    s.status = status;
    s.token = token;
    const Duration period = s.mr + s.check + s.relax;
    if (period == Duration::zero()) return Resume::polled;
    if (first) { // the first iteration starts now: its read ends at b, its check follows
        s.b = cpu_.now() + s.mr;
        s.at_b = true;
    } else {
        s.b = *read_done + period;
        s.a = hold ? s.b - s.mr : *read_done;
    }
    // Iterations whose check falls at or after `horizon` run for real: wake by the first one's read.
    Duration horizon = *quiet;
    if (loop.timeout) horizon = std::min(horizon, saturating_sub(submitted + *loop.timeout, s.check));
    if (s.b >= horizon) return Resume::polled;
    Duration wake_at = CmdQueueHooks::kQuietForever;
    if (horizon < CmdQueueHooks::kQuietForever) {
        const uint64_t p = period.as_ps();
        wake_at = s.b + Duration::ps(((horizon - s.b).as_ps() + p - 1) / p * p);
        // No timer at or beyond the run's end: a cancelled one would linger in the kernel's
        // queue and change how it orders simultaneous events of other processes.
        if (wake_at >= cpu_.run_end()) wake_at = CmdQueueHooks::kQuietForever;
    }
    if (first) { // its poll and status read are made now
        c_.polls.inc();
        HostCpu::Accesses read;
        read.mem_reads = 1;
        cpu_.account(read);
    }
    sleepers_.push_back(&s);
    struct Leave { // also when the thread is killed while asleep (end of a run)
        CmdQueueDriver& q;
        Sleeper& s;
        bool done = false;
        void now() {
            if (std::exchange(done, true)) return;
            q.sleepers_.erase(std::find(q.sleepers_.begin(), q.sleepers_.end(), &s));
        }
        ~Leave() { now(); }
    } leave{*this, s};
    const sc_core::sc_event* signal = hooks_.error_signal();
    for (;;) {
        const Duration k = kernel_now();
        if (wake_at < CmdQueueHooks::kQuietForever) {
            if (signal) sc_core::wait(to_sc(wake_at - k), s.wake | *signal);
            else sc_core::wait(to_sc(wake_at - k), s.wake);
        } else if (signal) {
            sc_core::wait(s.wake | *signal);
        } else {
            sc_core::wait(s.wake);
        }
        if (s.stop || kernel_now() >= wake_at || (signal && signal->triggered())) break;
        if (s.detect && kernel_now() >= s.b) break; // the read that sees the status write ends now
    }
    leave.now();
    catch_up(s, kernel_now());
    if (s.at_b) {
        read_at = s.b;
        return Resume::at_read;
    }
    cpu_.set_now(s.b - s.mr); // where the iteration's lock (or its read) starts
    return Resume::at_lock;
}

void CmdQueueDriver::catch_up(Sleeper& s, Duration k) {
    // Events strictly before `k` happened as polled; those at `k` are left to the thread.
    // The replayed iterations' accesses are counted once, at the end.
    const Duration period = s.mr + s.check + s.relax;
    uint64_t reads = 0, checks = 0;
    struct Count { // also on the way out of an exception (replay_take refusing)
        CmdQueueDriver& q;
        const Sleeper& s;
        uint64_t& reads;
        uint64_t& checks;
        ~Count() {
            if (!reads && !checks) return;
            q.c_.polls.inc(reads);
            HostCpu::Accesses a;
            a.mem_reads = reads + s.check_acc.mem_reads * checks;
            a.mmio_reads = s.check_acc.mmio_reads * checks;
            a.mmio_writes = s.check_acc.mmio_writes * checks;
            a.mem_writes = s.check_acc.mem_writes * checks;
            q.cpu_.account(a);
        }
    } count{*this, s, reads, checks};
    for (;;) {
        if (!s.at_b) {
            if (!(s.a < k)) return;
            if (s.hold) lock_.replay_take(s.core, s.a);
            ++reads;
            s.at_b = true;
        }
        if (!(s.b < k)) return;
        ++checks;
        if (s.hold) lock_.replay_release(s.b + s.check);
        const Duration b = s.b;
        s.b += period;
        s.a = s.hold ? s.b - s.mr : b;
        s.at_b = false;
    }
}

void CmdQueueDriver::stop_sleepers() {
    for (Sleeper* s : sleepers_) {
        catch_up(*s, kernel_now());
        s->stop = true;
        s->wake.notify();
    }
}

void CmdQueueDriver::on_queue_error() {
    last_check_.reset(); // the next check finds the error
    stop_sleepers();
}

void CmdQueueDriver::collect_phases(const Submission& sub, FlushTiming& t) {
    auto min_of = [](std::optional<Duration>& dst, const std::optional<Duration>& v) {
        if (v && (!dst || *v < *dst)) dst = v;
    };
    auto max_of = [](std::optional<Duration>& dst, const std::optional<Duration>& v) {
        if (v && (!dst || *v > *dst)) dst = v;
    };
    for (const Phases& p : sub.phases) {
        min_of(t.fetched, p.fetched);
        max_of(t.caches_done, p.caches_done);
        min_of(t.devtlb_sent, p.devtlb_sent);
        max_of(t.devtlb_done, p.devtlb_done);
        max_of(t.wait_done, p.wait_done);
        if (p.devtlb_sent) ++t.devtlb_requests;
    }
}

void CmdQueueDriver::on_phase(uint64_t seq, iommu::InvalPhase phase, Duration at, pcie::Bdf) {
    // Only entries of a submission still being waited for are of interest
    // (a late report for a finished one would otherwise accumulate).
    auto it = open_.upper_bound(seq);
    if (it == open_.begin()) return;
    --it;
    Submission& sub = it->second;
    if (seq >= sub.end) return;
    if (sub.phases.empty()) sub.phases.resize(sub.end - it->first);
    Phases& p = sub.phases[seq - it->first];
    switch (phase) {
    case iommu::InvalPhase::fetched: p.fetched = at; break;
    case iommu::InvalPhase::caches_done: p.caches_done = at; break;
    case iommu::InvalPhase::devtlb_sent:
        if (!p.devtlb_sent) p.devtlb_sent = at;
        break;
    case iommu::InvalPhase::devtlb_completed:
        if (!p.devtlb_done || at > *p.devtlb_done) p.devtlb_done = at;
        break;
    case iommu::InvalPhase::wait_done: p.wait_done = at; break;
    }
    // A status word was written now: a sleeping poller whose word it is wakes when its first
    // read ending after now ends (one switch, however many polls it skipped).
    if (phase == iommu::InvalPhase::wait_done)
        for (Sleeper* s : sleepers_) {
            if (s->detect || s->stop || cpu_.memory().read_u32(s->status) != s->token) continue;
            const Duration k = kernel_now();
            catch_up(*s, k);
            s->detect = true;
            if (s->b > k) s->wake.notify(to_sc(s->b - k));
            else s->wake.notify(sc_core::SC_ZERO_TIME);
        }
}

} // namespace iommusim::host
