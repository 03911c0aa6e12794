// SPDX-License-Identifier: Apache-2.0
#pragma once
// PCIe vocabulary shared by every model: requester IDs, the TLP extension a
// memory request carries, and the ATS/PRI messages (PCIe Base ch. 10).
//
// Fidelity: TLP fields that change IOMMU behaviour or wire cost are modelled
// (RID, PASID prefix with PMR/ER, AT, No-Snoop, TC, tag, length); ECRC, LN,
// TH/PH and ordering attributes other than No-Snoop are not.
#include <cstdint>
#include <functional>
#include <string>
#include <tlm>

#include "models/common/time.hpp"

namespace iommusim::pcie {

/// Bus/Device/Function requester ID (16 bits: bus[15:8] dev[7:3] fn[2:0]).
struct Bdf {
    uint16_t raw = 0;
    constexpr Bdf() = default;
    constexpr explicit Bdf(uint16_t r) : raw(r) {}
    constexpr Bdf(uint8_t bus, uint8_t dev, uint8_t fn)
        : raw(static_cast<uint16_t>(bus << 8 | (dev & 0x1F) << 3 | (fn & 7))) {}
    constexpr uint8_t bus() const { return static_cast<uint8_t>(raw >> 8); }
    constexpr uint8_t dev() const { return (raw >> 3) & 0x1F; }
    constexpr uint8_t fn() const { return raw & 7; }
    constexpr uint8_t devfn() const { return raw & 0xFF; }
    std::string str() const; ///< "BB:DD.F"
    friend constexpr bool operator==(Bdf, Bdf) = default;
    friend constexpr auto operator<=>(Bdf, Bdf) = default;
};

/// Parses "BB:DD.F" (hex bus and device, as lspci prints); throws on bad text.
Bdf parse_bdf(const std::string& s);

/// TLP Address Type field (PCIe Base §2.2.4.1).
enum class AddressType : uint8_t {
    untranslated = 0b00,
    translation_request = 0b01,
    translated = 0b10,
};

inline constexpr uint32_t kPasidMask = (1u << 20) - 1;

/// Attached to every memory request and completion crossing the fabric.
class TlpExtension : public tlm::tlm_extension<TlpExtension> {
public:
    Bdf requester;
    bool pasid_present = false;
    uint32_t pasid = 0;               ///< 20 bits
    bool privileged = false;          ///< PMR: Privileged Mode Requested
    bool execute = false;             ///< ER: Execute Requested
    AddressType at = AddressType::untranslated;
    bool no_snoop = false;
    uint8_t traffic_class = 0;        ///< 0..7
    uint16_t tag = 0;                 ///< 10-bit tag
    // Filled in on the way back (diagnostics for the DMA safety oracle; not
    // wire fields): which cache translated the request and to what address.
    enum class Source : uint8_t { none, iotlb, walk, atc, pass_through };
    Source served_by = Source::none;
    uint64_t output_address = 0;      ///< physical address the request used
    /// Set by an IOMMU that held the request (SMMUv3 stall) and let it retry: the time of the
    /// retry, when the access that completed was made (0 = not held).
    Duration held_retry_at;

    tlm::tlm_extension_base* clone() const override { return new TlpExtension(*this); }
    void copy_from(const tlm::tlm_extension_base& other) override {
        *this = static_cast<const TlpExtension&>(other);
    }
};

/// ATS/PRI message codes (PCIe Base ch. 10; shared/reference/calibration.md).
enum class MessageCode : uint8_t {
    ats_invalidate_request = 0b0000'0001,
    ats_invalidate_completion = 0b0000'0010,
    page_request = 0b0000'0100,
    prg_response = 0b0000'0101,
};

/// ATS Invalidate Request (PCIe Base §10.3.1): routed by ID to the device.
/// The range uses the ATS size encoding: with S=1 the number of trailing
/// one-bits of address[63:12] gives 2^(13+k) bytes.
struct AtsInvalidateRequest {
    Bdf target;
    uint8_t itag = 0;             ///< 0..31
    bool pasid_present = false;
    uint32_t pasid = 0;
    bool global = false;          ///< invalidate global entries for every PASID
    uint64_t address = 0;         ///< untranslated address field, bits 63:12
    bool s = false;               ///< size bit
    /// Decoded range [base, base + size).
    uint64_t range_base() const;
    uint64_t range_size() const;
    /// Encodes a naturally aligned range of 2^order 4 KiB pages.
    static AtsInvalidateRequest for_range(Bdf target, uint64_t base, unsigned order);
};

/// ATS Invalidate Completion (PCIe Base §10.3.2): ITag vector and count.
struct AtsInvalidateCompletion {
    Bdf requester;               ///< the device answering
    Bdf destination;             ///< the root complex / IOMMU that asked
    uint32_t itag_vector = 0;    ///< bit i set = ITag i completed
    uint8_t cc = 0;              ///< completion count (0 means 8)
};

/// PRI Page Request (PCIe Base §10.4.1).
struct PageRequest {
    Bdf requester;
    bool pasid_present = false;
    uint32_t pasid = 0;
    bool privileged = false;
    bool execute = false;
    uint64_t address = 0;        ///< page address (bits 63:12)
    bool read = false, write = false;
    bool last = false;           ///< L: last request of the group
    uint16_t prg_index = 0;      ///< 9 bits
};

/// PRG Response (PCIe Base §10.4.2).
enum class PrgResponseCode : uint8_t { success = 0x0, invalid_request = 0x1, response_failure = 0xF };
struct PrgResponse {
    Bdf destination;
    bool pasid_present = false;
    uint32_t pasid = 0;
    uint16_t prg_index = 0;
    PrgResponseCode code = PrgResponseCode::success;
};

/// A message TLP travelling on the fabric as a tlm_generic_payload with this
/// extension (command = write, no data). Routed by ID.
class MessageExtension : public tlm::tlm_extension<MessageExtension> {
public:
    MessageCode code = MessageCode::ats_invalidate_request;
    AtsInvalidateRequest inv_req;
    AtsInvalidateCompletion inv_cpl;
    PageRequest page_req;
    PrgResponse prg_resp;

    tlm::tlm_extension_base* clone() const override { return new MessageExtension(*this); }
    void copy_from(const tlm::tlm_extension_base& other) override {
        *this = static_cast<const MessageExtension&>(other);
    }
    /// The ID the message is routed to.
    Bdf route_id() const;
};

/// Sets `gp` up as a message TLP: a write of the 8 bytes at `data` (the message body where
/// it has one, else 0) carrying `m`, attached (the caller detaches it). Every field a
/// transport may have changed is set again, so a reused payload starts clean.
inline void set_message_payload(tlm::tlm_generic_payload& gp, uint64_t& data, MessageExtension& m) {
    gp.set_command(tlm::TLM_WRITE_COMMAND);
    gp.set_address(0);
    gp.set_data_ptr(reinterpret_cast<unsigned char*>(&data));
    gp.set_data_length(8);
    gp.set_streaming_width(8);
    gp.set_byte_enable_ptr(nullptr);
    gp.set_byte_enable_length(0);
    gp.set_dmi_allowed(false);
    gp.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    gp.set_extension(&m);
}

/// A message TLP ready to send: a write of 8 data bytes (`data`: the message body where it
/// has one, e.g. an Invalidate Request's, else 0) carrying `m`. The extension is detached
/// when this goes out of scope, so `m` may live on the sender's stack.
class MessageTlp {
public:
    explicit MessageTlp(MessageExtension& m, uint64_t data = 0) : data_(data), m_(m) {
        set_message_payload(gp_, data_, m_);
    }
    ~MessageTlp() { gp_.clear_extension(&m_); }
    MessageTlp(const MessageTlp&) = delete;
    MessageTlp& operator=(const MessageTlp&) = delete;
    tlm::tlm_generic_payload& payload() { return gp_; }

private:
    uint64_t data_;
    MessageExtension& m_;
    tlm::tlm_generic_payload gp_;
};

/// A sender's message TLP, built once and reused for every message it sends (building a
/// tlm_generic_payload per message costs more than routing the message). Each send sets it
/// up as MessageTlp does (set_message_payload) and detaches `m` again on every way out; a send while another is
/// in progress (message transports do not wait, so none is expected) uses a MessageTlp.
class MessageSender {
public:
    template <class Socket>
    void send(Socket& s, MessageExtension& m, sc_core::sc_time& delay, uint64_t data = 0) {
        if (busy_) [[unlikely]] {
            MessageTlp tlp(m, data);
            s->b_transport(tlp.payload(), delay);
            return;
        }
        busy_ = true;
        data_ = data;
        set_message_payload(gp_, data_, m);
        struct Done {
            MessageSender& me;
            MessageExtension& m;
            ~Done() {
                me.gp_.clear_extension(&m);
                me.busy_ = false;
            }
        } done{*this, m};
        s->b_transport(gp_, delay);
    }

private:
    bool busy_ = false;
    uint64_t data_ = 0;
    tlm::tlm_generic_payload gp_;
};

/// One completed DMA as a device saw it, for observers such as the host's
/// DMA safety oracle: which address it meant, which physical address it
/// reached, when it used the translation and which cache supplied it.
struct DmaRecord {
    Bdf requester;
    bool pasid_present = false;
    uint32_t pasid = 0;
    uint64_t iova = 0;
    uint64_t pa = 0;
    bool write = false;
    uint64_t at_ps = 0;          ///< simulated time the request left the device (its local time)
    TlpExtension::Source source = TlpExtension::Source::none;
    bool ok = false;
};
using DmaObserver = std::function<void(const DmaRecord&)>;

/// ATS Translation Completion payload (PCIe Base §10.2.3), carried back in
/// the data of a translation request: translated address + attributes.
struct AtsTranslation {
    uint64_t translated = 0;  ///< bits 63:12, with S-encoded range like invalidations
    bool s = false;
    bool read = false, write = false;
    bool user = false;        ///< U: untranslated-only (device must not cache a translation)
    bool privileged = false, execute = false, global = false, no_snoop = false;
    uint64_t range_size() const;  ///< bytes covered
    uint64_t range_base() const;
    static AtsTranslation for_range(uint64_t pa_base, unsigned order);
};

/// Set by the fabric port that received a request from its requester (the
/// outermost hop writes last, so it wins): the absolute time at which the
/// requester's transmitter is free again. For non-posted requests the
/// b_transport delay is the completion time; this says when the requester may
/// send its next TLP (pipelined reads without a thread per request).
class IssueExtension : public tlm::tlm_extension<IssueExtension> {
public:
    Duration sender_free;
    bool valid = false;

    tlm::tlm_extension_base* clone() const override { return new IssueExtension(*this); }
    void copy_from(const tlm::tlm_extension_base& other) override {
        *this = static_cast<const IssueExtension&>(other);
    }
};

} // namespace iommusim::pcie
