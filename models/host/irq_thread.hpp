// SPDX-License-Identifier: Apache-2.0
#pragma once
// IrqLines: the interrupt vectors a host driver thread sleeps on, and the one
// way a driver thread is woken by an interrupt (every backend's page-request
// handler, the SMMUv3 event-queue handler, the command queue's interrupt wait
// mode).
//
// Linux runs these handlers as threaded IRQs (request_threaded_irq with a
// primary handler that only returns IRQ_WAKE_THREAD, IRQF_ONESHOT): the MSI
// reaches the CPU (MsiDecoder, HostCpuParams::interrupt_latency: "MSI to
// handler entry"), the primary handler wakes the IRQ thread and the scheduler
// switches to it (HostCpuParams::irq_thread_wakeup). An interrupt that arrives
// while the thread runs marks it to run again (kernel/irq/manage.c,
// IRQTF_RUNTHREAD): its next wait returns at once, without sleeping and
// without a second wake-up, so no interrupt is lost and a burst costs one
// wake-up.
//
// Fidelity: the vectors' delivery counts (MsiDecoder::count) are the thread's
// "run again" state. Not modelled: the hard handler's time on the CPU it
// interrupts (the MSI latency stands for the whole delivery), IRQ affinity
// (the thread runs on the CPU it was started on), masking of the line while
// the thread runs (IRQF_ONESHOT; the count covers what arrives meanwhile).
#include <cstdint>
#include <vector>

#include "models/host/host_cpu.hpp"
#include "models/host/msi_decoder.hpp"

namespace iommusim::host {

class IrqLines {
public:
    /// Registers the vectors with `msi` (so: during elaboration). `msi` may be null
    /// (a unit without an MSI path): connected() is then false.
    IrqLines(MsiDecoder* msi, std::vector<uint32_t> vectors);
    bool connected() const { return msi_ != nullptr && !vectors_.empty(); }
    /// Interrupts delivered on these vectors so far.
    uint64_t count() const;
    /// Interrupts delivered on `vector` so far (it must be one of this set's).
    uint64_t count(uint32_t vector) const;
    /// Sleeps the calling thread until count() differs from `seen`, synchronising with the
    /// kernel first; a thread that slept pays the wake-up (HostCpuParams::irq_thread_wakeup).
    /// Returns count(). Needs connected(). SC_THREAD only.
    uint64_t wait(HostCpu& cpu, uint64_t seen) const;

private:
    MsiDecoder* msi_;
    std::vector<uint32_t> vectors_;
};

} // namespace iommusim::host
