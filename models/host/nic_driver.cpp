// SPDX-License-Identifier: Apache-2.0
#include "models/host/nic_driver.hpp"

#include "models/pcie/nic_regs.hpp"

namespace iommusim::host {

namespace nic = pcie::nic;

NicDriver::NicDriver(Host& host, pcie::NicEndpoint& nic, unsigned mmio_port, const NicDriverParams& p,
                     stats::Group* parent)
    : host_(host), nic_(nic), regs_(host.cpu(), mmio_port), p_(p),
      stats_(std::string(nic.basename()) + "_driver", parent),
      interrupts_(stats_.counter("interrupts", "interrupts", "queue interrupts taken (each starts NAPI polling)")),
      polls_(stats_.counter("polls", "polls", "NAPI polls (up to napi_batch descriptors each)")),
      refilled_(stats_.counter("refilled", "buffers", "RX buffers mapped and posted")),
      doorbells_(stats_.counter("doorbells", "writes", "RX tail (RDT) writes")),
      errors_(stats_.counter("errors", "calls", "driver calls that failed (the run continues)")) {
    if (p_.tx_rate_gbps > 0) tx_stats_ = std::make_unique<TxStats>(stats_);
    if (p_.pasid)
        stats_.derived("pasid", "PASID", "the PASID the host's PASID allocator gave the NIC's DMA (0 until setup)",
                       [this] { return static_cast<double>(pasid_.value_or(0)); });
}

NicDriver::TxStats::TxStats(stats::Group& g)
    : sent(g.counter("tx_sent", "packets", "packets mapped, described in the TX ring and announced")),
      doorbells(g.counter("tx_doorbells", "writes", "TX tail (TDT) writes")),
      cleaned(g.counter("tx_cleaned", "packets", "TX descriptors found done (DD) and their buffers unmapped")),
      ring_full(g.counter("tx_ring_full", "stops", "times a sender found its TX ring full and stopped the queue")) {}

void NicDriver::setup() {
    try {
        attach();
    } catch (const HostError& e) { // the run stops: name the device and the refusal
        throw HostError(e.kind(), std::string(nic_.basename()) + " driver setup: " + to_string(e.kind()) + ": " + e.what());
    }
    rings_.resize(nic_.params().queues);
    for (uint32_t q = 0; q < rings_.size(); ++q) setup_ring(q);
    if (tx_stats_)
        for (uint32_t q = 0; q < rings_.size(); ++q) setup_tx_ring(q);
    nic_.start();
}

void NicDriver::attach() {
    IommuFd& fd = host_.iommufd();
    const unsigned iommu = host_.iommu_index(p_.iommu);
    const pcie::Bdf rid = nic_.function().params().rid;
    Isolation& iso = host_.isolation();
    if (p_.domain == DomainDesc::Kind::sva) {
        if (!p_.pasid) throw HostError(HostError::Kind::invalid, "an SVA NIC needs a PASID");
        if (p_.buffer_bytes > 4096) throw HostError(HostError::Kind::invalid, "SVA NIC buffers are one page at most");
        process_ = fd.process_create();
        // The process's PASID (its set pays), the group stays the kernel driver's.
        const std::string app = p_.sva_owner.empty() ? std::string(nic_.basename()) + ".app" : p_.sva_owner;
        pasid_ = iso.bind_sva(app, iommu, rid, fd.hwpt_alloc_sva(process_, iommu), p_.pasid_value, Isolation::kKernel);
    } else {
        // One domain and one IOVA space for the device, shared by all its queues (Linux DMA API).
        ioas_ = fd.ioas_alloc();
        if (p_.flush) fd.set_flush_policy(ioas_, *p_.flush);
        const uint32_t hwpt = fd.hwpt_alloc(ioas_, iommu, p_.domain);
        if (p_.pasid) {
            PasidAllocator& a = host_.pasids();
            const auto set = a.set_for(Isolation::kKernel);
            pasid_ = a.alloc(set, Isolation::kKernel, std::nullopt, p_.pasid_value);
            try {
                iso.attach(Isolation::kKernel, iommu, rid, pasid_, hwpt);
            } catch (...) {
                a.free(set, Isolation::kKernel, *pasid_);
                throw;
            }
        } else {
            iso.attach(Isolation::kKernel, iommu, rid, std::nullopt, hwpt);
        }
    }
    // The NIC tags its DMA with the PASID from here on (before any ring is programmed).
    if (pasid_) regs_.write32(nic::kPasidCtl, nic::kPasidEnable | *pasid_);
}

void NicDriver::setup_ring(uint32_t q) {
    IommuFd& fd = host_.iommufd();
    Ring& r = rings_[q];
    r.buffers.assign(p_.ring_entries, 0);
    if (process_) {
        r.base = p_.sva_ring_va + q * ring_bytes();
        fd.mmap(process_, r.base, ring_bytes());
        r.pa = fd.process_lookup(process_, r.base).value();
    } else {
        r.base = fd.map(ioas_, ring_bytes());
        r.pa = fd.lookup(ioas_, r.base).value();
    }
    program_ring(nic::rx_reg(nic::kRdbal, q), r.base, p_.ring_entries);
    // A full ring keeps one slot empty (tail == head means empty).
    for (uint32_t i = 0; i + 1 < p_.ring_entries; ++i) post(q);
    doorbell(q);
    // ixgbe_write_eitr: the interval in 2 us units in ITR Interval [11:3] (usecs << 2).
    if (p_.itr_us) regs_.write32(nic::eitr_reg(q), (p_.itr_us << 2) & nic::kEitrIntervalMask);
    regs_.write32(nic::kEims, 1u << q);
}

void NicDriver::setup_tx_ring(uint32_t q) {
    IommuFd& fd = host_.iommufd();
    tx_rings_.push_back(std::make_unique<TxRing>());
    TxRing& r = *tx_rings_.back();
    r.buffers.assign(p_.tx_ring_entries, 0);
    if (process_) { // SVA: in the process's address space, after its RX rings
        r.base = p_.sva_ring_va + uint64_t{nic_.params().queues} * ring_bytes() + q * tx_ring_bytes();
        fd.mmap(process_, r.base, tx_ring_bytes());
        r.pa = fd.process_lookup(process_, r.base).value();
    } else {
        r.base = fd.map(ioas_, tx_ring_bytes());
        r.pa = fd.lookup(ioas_, r.base).value();
    }
    program_ring(nic::tx_reg(nic::kTdbal, q), r.base, p_.tx_ring_entries);
}

void NicDriver::program_ring(uint32_t bal, uint64_t base, uint32_t entries) {
    // RX and TX queue blocks share one layout: BAL, BAH, LEN, H, T (§8.2.3.8, §8.2.3.9).
    regs_.write32(bal, static_cast<uint32_t>(base));
    regs_.write32(bal + (nic::kRdbah - nic::kRdbal), static_cast<uint32_t>(base >> 32));
    regs_.write32(bal + (nic::kRdlen - nic::kRdbal), entries * nic::kDescriptorBytes);
    regs_.write32(bal + (nic::kRdh - nic::kRdbal), 0);
    regs_.write32(bal + (nic::kRdt - nic::kRdbal), 0);
}

void NicDriver::tx_doorbell(uint32_t q) {
    TxRing& r = *tx_rings_[q];
    regs_.write32(nic::tx_reg(nic::kTdt, q), r.next_to_use);
    r.unannounced = 0;
    tx_stats_->doorbells.inc();
}

bool NicDriver::clean_tx(uint32_t q) {
    if (!tx_stats_ || q >= tx_rings_.size()) return true;
    HostCpu& cpu = host_.cpu();
    TxRing& r = *tx_rings_[q];
    uint32_t cleaned = 0;
    while (r.next_to_clean != r.next_to_use) {
        if (cleaned == p_.tx_work_limit) break;
        // The write-back's STA.DD is dword 3 bit 0 (§7.2.3.2.4).
        // DD, once the NIC wrote it back, stays set until the sender reuses the slot after
        // this clean: a set DD is read without synchronising (HostCpu::mem_read_flag).
        if (!(cpu.mem_read_flag(r.pa + uint64_t{r.next_to_clean} * nic::kDescriptorBytes + 12, nic::kStatusDd,
                                nic::kStatusDd) &
              nic::kStatusDd))
            break;
        try {
            // SVA: the buffer is the application's own page, which it keeps and reuses: nothing to unmap.
            // A context descriptor (TSO) has no buffer.
            if (!process_ && r.buffers[r.next_to_clean]) host_.iommufd().unmap(ioas_, r.buffers[r.next_to_clean], tx_mapped_bytes());
        } catch (const HostError&) {
            errors_.inc();
        }
        r.buffers[r.next_to_clean] = 0;
        r.next_to_clean = r.next_to_clean + 1 == p_.tx_ring_entries ? 0 : r.next_to_clean + 1;
        ++cleaned;
    }
    tx_stats_->cleaned.inc(cleaned);
    if (cleaned && r.stopped) {
        r.stopped = false;
        r.space.notify(sc_core::SC_ZERO_TIME); // netif_wake_queue
    }
    return cleaned < p_.tx_work_limit;
}

void NicDriver::run_tx(uint32_t q) {
    HostCpu& cpu = host_.cpu();
    once_([&] {
        setup();
        cpu.sync(); // the other threads go on from here
    });
    TxRing& r = *tx_rings_.at(q);
    const uint32_t bytes = nic_.params().packet_bytes;
    // Each queue's sender offers its share of tx_rate_gbps (TSO: in sends of tso_bytes).
    const uint32_t send_bytes = p_.tso_bytes ? p_.tso_bytes : bytes;
    const Duration gap = Duration::ns(8.0 * send_bytes * static_cast<double>(rings_.size()) / p_.tx_rate_gbps);
    const uint32_t needed = tx_descriptors_per_send();
    Duration next = cpu.now();
    for (;;) {
        if (next > cpu.now()) { // no packet due: xmit_more is false, ring the tail, wait for the next one
            if (r.unannounced) tx_doorbell(q);
            cpu.spend(saturating_sub(next, cpu.now())); // the tail write took time
            cpu.sync();                                 // idle until the packet is due
            continue;
        }
        const uint32_t free = (r.next_to_clean + p_.tx_ring_entries - r.next_to_use - 1) % p_.tx_ring_entries;
        if (free < needed) { // ring full (one slot stays empty): netif_stop_queue
            if (r.unannounced) tx_doorbell(q);
            tx_stats_->ring_full.inc();
            r.stopped = true;
            cpu.sync();
            sc_core::wait(r.space);
            continue;
        }
        if (p_.tso_bytes) {
            if (post_tso(q)) tx_stats_->sent.inc();
            else errors_.inc(); // a map failed: the stack drops the send
            next = next + gap;
            if (r.unannounced >= p_.tx_doorbell_batch) tx_doorbell(q);
            continue;
        }
        uint64_t iova = 0;
        try {
            if (process_) {
                // SVA: the application sends from its own page of this slot, which it writes
                // first (a CPU page fault populates it on first use); the NIC reads it through
                // the process's page tables under the PASID, with no dma_map.
                iova = tx_sva_buffer(q, r.next_to_use);
                if (!host_.iommufd().process_mapped(process_, iova)) host_.iommufd().fault_in(process_, iova);
            } else {
                iova = host_.iommufd().map(ioas_, tx_mapped_bytes());
            }
        } catch (const HostError&) {
            errors_.inc();
            next = next + gap; // the packet is dropped by the stack
            continue;
        }
        r.buffers[r.next_to_use] = iova;
        nic::TxDataDescriptor d;
        d.buffer = iova;
        d.cmd_type_len = bytes | nic::kTxDtypData | nic::kTxCmdEop | nic::kTxCmdIfcs | nic::kTxCmdRs | nic::kTxCmdDext;
        d.olinfo_status = bytes << nic::kTxPaylenShift;
        cpu.mem_write(r.pa + uint64_t{r.next_to_use} * nic::kDescriptorBytes, &d, sizeof d);
        r.next_to_use = r.next_to_use + 1 == p_.tx_ring_entries ? 0 : r.next_to_use + 1;
        ++r.unannounced;
        tx_stats_->sent.inc();
        next = next + gap;
        if (r.unannounced >= p_.tx_doorbell_batch) tx_doorbell(q);
    }
}

bool NicDriver::post_tso(uint32_t q) {
    IommuFd& fd = host_.iommufd();
    TxRing& r = *tx_rings_[q];
    // ixgbe_tx_map: the headers (skb->data) by dma_map_single, then each page of the
    // payload (a page frag) by skb_frag_dma_map; a failed map unmaps what was mapped.
    const uint32_t payload = p_.tso_bytes - kTsoHeaderBytes;
    std::vector<std::pair<uint64_t, uint32_t>> bufs; // IOVA, length
    try {
        bufs.emplace_back(fd.map(ioas_, tx_mapped_bytes()), kTsoHeaderBytes);
        for (uint32_t off = 0; off < payload; off += 4096)
            bufs.emplace_back(fd.map(ioas_, tx_mapped_bytes()), std::min<uint32_t>(4096, payload - off));
    } catch (const HostError&) {
        for (const auto& b : bufs) fd.unmap(ioas_, b.first, tx_mapped_bytes());
        return false;
    }
    auto put = [&](const void* desc, uint64_t iova) {
        host_.cpu().mem_write(r.pa + uint64_t{r.next_to_use} * nic::kDescriptorBytes, desc, nic::kDescriptorBytes);
        r.buffers[r.next_to_use] = iova;
        r.next_to_use = r.next_to_use + 1 == p_.tx_ring_entries ? 0 : r.next_to_use + 1;
        ++r.unannounced;
    };
    // ixgbe_tso: the context descriptor (TCP over IPv4; each segment a packet_bytes frame).
    nic::TxContextDescriptor c;
    c.vlan_macip_lens = kTsoIpHeaderBytes | kTsoMacHeaderBytes << nic::kTxMaclenShift;
    c.type_tucmd_mlhl = nic::kTxDtypContext | nic::kTxCmdDext | nic::kTxTucmdIpv4 | nic::kTxTucmdL4Tcp;
    c.mss_l4len_idx = (nic_.params().packet_bytes - kTsoHeaderBytes) << nic::kTxMssShift | kTsoTcpHeaderBytes << nic::kTxL4lenShift;
    put(&c, 0);
    for (size_t i = 0; i < bufs.size(); ++i) {
        nic::TxDataDescriptor d;
        d.buffer = bufs[i].first;
        d.cmd_type_len = bufs[i].second | nic::kTxDtypData | nic::kTxCmdIfcs | nic::kTxCmdDext | nic::kTxCmdTse;
        if (i + 1 == bufs.size()) d.cmd_type_len |= nic::kTxCmdEop | nic::kTxCmdRs;
        if (i == 0) d.olinfo_status = payload << nic::kTxPaylenShift; // PAYLEN: the payload without headers
        put(&d, bufs[i].first);
    }
    return true;
}

void NicDriver::post(uint32_t q) {
    Ring& r = rings_[q];
    const uint32_t slot = r.next_to_use;
    // SVA: each slot owns one page of the process heap, reposted unpopulated after every packet.
    const bool keep = p_.buffers == NicDriverParams::Buffers::recycle && r.buffers[slot];
    const uint64_t iova = process_ ? p_.sva_buffer_va + (uint64_t{q} * p_.ring_entries + slot) * 4096
                          : keep   ? r.buffers[slot]
                                   : host_.iommufd().map(ioas_, mapped_bytes());
    r.buffers[slot] = iova;
    const nic::RxReadDescriptor d{iova, 0};
    host_.cpu().mem_write(r.pa + uint64_t{slot} * nic::kDescriptorBytes, &d, sizeof d);
    r.next_to_use = slot + 1 == p_.ring_entries ? 0 : slot + 1;
    ++r.unannounced;
    refilled_.inc();
}

void NicDriver::doorbell(uint32_t q) {
    Ring& r = rings_[q];
    regs_.write32(nic::rx_reg(nic::kRdt, q), r.next_to_use);
    r.unannounced = 0;
    doorbells_.inc();
}

void NicDriver::release(uint64_t iova) {
    IommuFd& fd = host_.iommufd();
    try {
        if (process_) {
            // A page the NIC never reached (its DMA failed) was never faulted in: nothing to free.
            if (fd.process_mapped(process_, iova)) fd.munmap(process_, iova, 4096);
        } else {
            fd.unmap(ioas_, iova, mapped_bytes());
        }
    } catch (const HostError&) {
        errors_.inc();
    }
}

uint32_t NicDriver::poll(uint32_t q) {
    HostCpu& cpu = host_.cpu();
    Ring& r = rings_[q];
    polls_.inc();
    uint32_t cleaned = 0;
    while (cleaned < p_.batch) {
        const uint64_t desc = r.pa + uint64_t{r.next_to_clean} * nic::kDescriptorBytes;
        // The write-back's extended status (DD) is dword 2 (§7.1.6.2); the driver reads it first.
        // DD stays set until this thread refills the slot: once the NIC has written it back it is
        // read without synchronising (HostCpu::mem_read_flag); a clear DD synchronises first.
        if (!(cpu.mem_read_flag(desc + 8, nic::kStatusDd, nic::kStatusDd) & nic::kStatusDd)) break;
        // The packet goes up the stack on this CPU, and its payload (PKT_LEN, write-back
        // bytes 12-13, same line as the status) is copied to the application.
        const uint32_t len = cpu.memory().read_u32(desc + 12) & 0xFFFF;
        cpu.spend(cpu.params().rx_stack + transfer_time(len, cpu.params().copy_bytes_per_ns));
        if (p_.buffers == NicDriverParams::Buffers::map_per_packet || process_) {
            release(r.buffers[r.next_to_clean]);
            r.buffers[r.next_to_clean] = 0;
        }
        r.next_to_clean = r.next_to_clean + 1 == p_.ring_entries ? 0 : r.next_to_clean + 1;
        ++cleaned;
        post(q); // refill the freed slot
        if (r.unannounced >= p_.doorbell_batch) doorbell(q);
    }
    if (r.unannounced) doorbell(q);
    return cleaned;
}

void NicDriver::run(uint32_t q) {
    HostCpu& cpu = host_.cpu();
    once_([&] {
        setup();
        cpu.sync(); // the other queues' threads go on from here
    });
    for (;;) {
        cpu.sync(); // sleeps until the queue's interrupt
        nic_.wait_interrupt(q);
        cpu.spend(cpu.params().interrupt_latency);
        interrupts_.inc();
        // ixgbe_poll: TX clean first, then RX; either unfinished polls again.
        for (;;) {
            const bool tx_done = clean_tx(q);
            if (poll(q) < p_.batch && tx_done) break;
        }
        regs_.write32(nic::kEims, 1u << q); // napi_complete: unmask the queue's cause
    }
}

} // namespace iommusim::host
