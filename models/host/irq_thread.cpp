// SPDX-License-Identifier: Apache-2.0
#include "models/host/irq_thread.hpp"

#include <stdexcept>

namespace iommusim::host {

IrqLines::IrqLines(MsiDecoder* msi, std::vector<uint32_t> vectors) : msi_(msi), vectors_(std::move(vectors)) {
    if (msi_) // interrupt lines are registered during elaboration
        for (uint32_t v : vectors_) (void)msi_->event(v);
}

uint64_t IrqLines::count() const {
    uint64_t n = 0;
    if (msi_)
        for (uint32_t v : vectors_) n += msi_->count(v);
    return n;
}

uint64_t IrqLines::count(uint32_t vector) const { return msi_ ? msi_->count(vector) : 0; }

uint64_t IrqLines::wait(HostCpu& cpu, uint64_t seen) const {
    if (!connected()) throw std::logic_error("a driver thread waits for an interrupt on a unit without an MSI path");
    cpu.sync();
    if (count() != seen) return count(); // arrived while the thread ran: it runs again at once
    sc_core::sc_event_or_list any;
    for (uint32_t v : vectors_) any |= msi_->event(v);
    sc_core::wait(any);
    cpu.spend(cpu.params().irq_thread_wakeup);
    return count();
}

} // namespace iommusim::host
