// SPDX-License-Identifier: Apache-2.0
#pragma once
// CommandQueue: the plain-C++ part of the command-queue engine every family
// shares (VT-d invalidation queue §6.5.2, AMD-Vi command buffer §3.3, SMMUv3
// command queue §4): the ring in memory that software fills and the unit
// consumes, the fetch of one command at the consumer position, the family
// decode hook that turns one command into generic actions, and halt on error
// until software acknowledges. The SystemC shell runs it from a thread and
// executes the actions (waiting for device-ATC completions before a sync).
//
// Fidelity — modelled: commands fetched in order from simulated memory
// through a UnitMemPort (one read of entry_bytes, its latency charged); the
// consumer position moves past a command only when the shell consumes it, so
// on a decode or fetch error it still names the offending command (VT-d IQH
// on IQE, SMMUv3 CMDQ_CONS with CONS.ERR, AMD-Vi CmdBufHead on
// ILLEGAL_COMMAND_ERROR); fetching stops while halted, until acknowledge().
// Costs of each step come from CommandQueueCosts (family params).
// Not modelled: prefetching several commands per memory read, commands
// overtaking each other (the engine is in order, which every spec allows).
#include <array>
#include <cstdint>
#include <new>
#include <span>
#include <type_traits>
#include <utility>
#include <variant>

#include "models/common/time.hpp"
#include "models/iommu/common/config_cache.hpp"
#include "models/iommu/common/ring.hpp"
#include "models/iommu/common/translation.hpp"
#include "models/iommu/common/unit_mem_port.hpp"
#include "models/pcie/tlp.hpp"

namespace iommusim::iommu {

// ---- the generic action vocabulary ---------------------------------------------------

/// Accepted with only its processing cost (VT-d interrupt-entry-cache invalidation while
/// interrupt remapping is not modelled, SMMUv3 CMD_PREFETCH_*, AMD-Vi INVALIDATE_INTERRUPT_TABLE).
struct NoOpAction {
    Duration cost;
};
/// IOTLB and walk-cache invalidation by generic scope.
struct InvalidateTranslations {
    InvalidationScope scope;
};
/// Configuration-cache invalidation; `cache` is the family's index of the cache
/// (VT-d context 0 / PASID 1, AMD-Vi DTE / GCR3, SMMUv3 STE / CD).
struct InvalidateConfig {
    uint8_t cache = 0;
    ConfigScope scope;
};
/// Device-ATC invalidation: one ATS Invalidate Request (PCIe Base §10.3.1). The ITag is
/// assigned by the tracker; `queue_depth` is the device's Invalidate Queue Depth (1..32).
struct InvalidateDeviceAtc {
    pcie::AtsInvalidateRequest request;
    uint32_t queue_depth = 32;
};
/// Sync / wait: completes after every earlier command, including outstanding device-ATC
/// invalidations; then writes a status word and/or signals the family's completion interrupt.
struct SyncAction {
    bool status_write = false;
    uint64_t status_addr = 0;
    uint64_t status_data = 0;
    uint8_t status_bytes = 4;   ///< 4 (VT-d, SMMUv3 MSI data) or 8 (AMD-Vi COMPLETION_WAIT)
    bool status_is_msi = false; ///< the write targets the interrupt range (never through DMI)
    bool interrupt = false;     ///< the family's completion interrupt (VT-d IWC, AMD ComWaitInt)
    bool fence = false;         ///< later commands wait for this one (the engine is in order anyway)
};
/// PRI page group response routed down to the device (PCIe Base §10.4.2).
struct PageResponseAction {
    pcie::PrgResponse response;
};

/// Releases requests the unit holds (SMMUv3 stall model: CMD_RESUME names one by StreamID
/// and STAG, retried or terminated; CMD_STALL_TERM terminates all of a StreamID's).
struct ReleaseHeldAction {
    uint32_t requester = 0; ///< the family's stream / requester ID
    uint32_t tag = 0;       ///< the family's tag of the held request (SMMUv3 STAG); ignored with `all`
    bool all = false;       ///< every held request of `requester`, terminated
    bool retry = false;     ///< retry the request (else terminate it with an abort)
};

using CommandAction = std::variant<NoOpAction, InvalidateTranslations, InvalidateConfig, InvalidateDeviceAtc,
                                   SyncAction, PageResponseAction, ReleaseHeldAction>;

// Every action is plain data: a decoded command is copied as bytes, and its slots need no
// construction or destruction.
static_assert(std::is_trivially_copyable_v<CommandAction> && std::is_trivially_destructible_v<CommandAction>);

/// What one command decodes to: an error code (0 = valid; otherwise the family's code,
/// recorded when the queue halts) and up to kMax actions executed in order. A fixed buffer:
/// no allocation, and only the `count` slots used are constructed (one per command is the
/// common case; the engine decodes every command into one of these).
struct DecodedCommand {
    static constexpr size_t kMax = 4;
    uint32_t error = 0;
    uint8_t count = 0;
    bool has_sync = false; ///< one of the actions is a SyncAction (set by add())

    DecodedCommand() {} // slots stay unconstructed until add()
    bool ok() const { return error == 0; }
    /// Appends one action, constructed in its slot.
    template <class Action>
    DecodedCommand& add(Action&& a) {
        if (count < kMax) {
            if constexpr (std::is_same_v<std::decay_t<Action>, SyncAction>) has_sync = true;
            new (&slots_.actions[count++]) CommandAction(std::in_place_type<std::decay_t<Action>>, std::forward<Action>(a));
        }
        return *this;
    }
    std::span<const CommandAction> list() const { return {slots_.actions, count}; }
    static DecodedCommand fail(uint32_t code) {
        DecodedCommand d;
        d.error = code;
        return d;
    }

private:
    union Slots {
        Slots() {}
        CommandAction actions[kMax]; ///< the first `count` are constructed
    } slots_;
};

/// The family's command decoder (the hook). `words` holds entry_bytes / 8 little-endian qwords.
class CommandDecoder {
public:
    virtual ~CommandDecoder() = default;
    virtual DecodedCommand decode(std::span<const uint64_t> words) = 0;
};

/// Per-step costs (family params; VT-d: descriptor_fetch, per_descriptor, ...).
struct CommandQueueCosts {
    Duration fetch;                ///< unit-side cost of one command fetch, on top of the memory read
    Duration per_command;          ///< decode and dispatch of one command
    Duration per_entry_invalidate; ///< per cache entry an invalidation drops
    Duration ats_message_send;     ///< formatting and issuing one ATS / PRG message
    Duration status_write;         ///< posted write of a status word or MSI
};

class CommandQueue {
public:
    static constexpr size_t kMaxEntryBytes = 64;

    /// `fetch_error` is the family's error code for a command read that hit a memory error.
    CommandQueue(CommandDecoder& decoder, uint32_t fetch_error, Ring::Index style = Ring::Index::one_slot_free)
        : decoder_(decoder), fetch_error_(fetch_error), ring_(style) {}

    /// Geometry and positions: software produces (prod = tail), the unit consumes (cons = head).
    Ring& ring() { return ring_; }
    const Ring& ring() const { return ring_; }

    void set_enabled(bool on) { enabled_ = on; }
    bool enabled() const { return enabled_; }
    bool halted() const { return halted_; }
    uint32_t error() const { return error_; }
    /// Stops fetching with a family error code (decode/fetch errors, an invalid tail, ATS time-out).
    void halt(uint32_t code) { halted_ = true, error_ = code; }
    /// Software acknowledged the error: fetching resumes at the consumer position.
    void acknowledge() { halted_ = false, error_ = 0; }
    /// Software wrote a producer position the family rejects (misaligned, beyond the ring):
    /// the next fetch reports `code` instead of reading. 0 clears it.
    void set_tail_error(uint32_t code) { tail_error_ = code; }
    /// Enabled, not halted, and software has produced commands (or an invalid tail to report).
    bool has_work() const {
        return enabled_ && !halted_ && ring_.configured() && (tail_error_ != 0 || !ring_.empty());
    }

    enum class Status : uint8_t {
        ok,           ///< fetched and decoded
        tail_error,   ///< nothing read: the producer position is invalid
        fetch_error,  ///< the read hit a memory error
        decode_error, ///< fetched; the decoder rejected it
    };
    struct Fetched {
        Status status = Status::fetch_error;
        DecodedCommand command; ///< the decoded command (status ok or decode_error)
        bool ok() const { return status == Status::ok; }
    };
    /// Reads the command at the consumer position and decodes it; `local` gets the read's
    /// latency (not costs.fetch: the shell charges that). Halts on a tail, fetch or decode
    /// error (error() says which code); the consumer position is left for consume().
    Fetched fetch(UnitMemPort& mem, Duration& local);
    /// Moves the consumer position past the fetched command.
    void consume() {
        ring_.advance_cons();
        ++consumed_;
    }
    /// Software disabled, re-enabled or re-based the queue (VT-d QIE, AMD CmdBufEn, SMMUv3
    /// CMDQEN): a command fetched before must not be consumed or finished afterwards.
    void restart() { ++generation_; }
    uint64_t generation() const { return generation_; }
    /// Commands consumed since the counter was last reset (sequence numbers for phase reporting).
    uint64_t consumed() const { return consumed_; }
    void reset_consumed() { consumed_ = 0; }

private:
    CommandDecoder& decoder_;
    uint32_t fetch_error_;
    Ring ring_;
    bool enabled_ = false, halted_ = false;
    uint32_t error_ = 0, tail_error_ = 0;
    uint64_t consumed_ = 0;
    uint64_t generation_ = 0;
};

} // namespace iommusim::iommu
