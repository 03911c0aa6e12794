// SPDX-License-Identifier: Apache-2.0
#include "models/pcie/fabric_node.hpp"

#include <stdexcept>

#include "models/common/admission.hpp"
#include "models/common/sc_time.hpp"
#include "models/pcie/topology.hpp"

namespace iommusim::pcie {

namespace {

// The helpers take the payload's extensions looked up once per request (each lookup is a
// call into the TLM library).
Bdf requester_of(const TlpExtension* t, const MessageExtension* m) {
    if (t) return t->requester;
    if (m) {
        switch (m->code) {
        case MessageCode::page_request: return m->page_req.requester;
        case MessageCode::ats_invalidate_completion: return m->inv_cpl.requester;
        default: break;
        }
    }
    return Bdf{};
}

bool message_pasid(const MessageExtension& m) {
    switch (m.code) {
    case MessageCode::ats_invalidate_request: return m.inv_req.pasid_present;
    case MessageCode::page_request: return m.page_req.pasid_present;
    case MessageCode::prg_response: return m.prg_resp.pasid_present;
    default: return false;
    }
}

// §10.3.1: the Invalidate Request carries a 2-DW payload; the other ATS/PRI
// messages have none.
uint32_t message_data_bytes(const MessageExtension& m) {
    return m.code == MessageCode::ats_invalidate_request ? 8u : 0u;
}

bool is_posted(const tlm::tlm_generic_payload& gp, const MessageExtension* m) { return m != nullptr || gp.is_write(); }

TlpTrain train_of(const LinkTiming& t, const tlm::tlm_generic_payload& gp, const MessageExtension* m,
                  const TlpExtension* x) {
    if (m) return t.message_train(message_data_bytes(*m), message_pasid(*m));
    return t.request_train(gp.is_write(), gp.get_address(), gp.get_data_length(), x && x->pasid_present);
}

} // namespace

FabricNode::FabricNode(sc_core::sc_module_name name, const FabricNodeParams& params, stats::Group* parent_stats)
    : sc_module(name), upstream_out("upstream_out"), upstream_in("upstream_in"), params_(params),
      stats_(basename(), parent_stats),
      up_requests_(stats_.counter("up_requests", "requests", "requests forwarded upstream")),
      down_requests_(stats_.counter("down_requests", "requests", "requests from above routed to a port")),
      up_messages_(stats_.counter("up_messages", "messages", "ID-routed messages forwarded upstream")),
      down_messages_(stats_.counter("down_messages", "messages", "ID-routed messages from above routed to a port")),
      p2p_direct_(stats_.counter("p2p_direct", "requests",
                                 "peer-to-peer requests routed port to port: the IOMMU never saw them")),
      p2p_redirected_(stats_.counter("p2p_redirected", "requests",
                                     "peer-to-peer requests sent upstream by ACS (redirect or upstream forwarding)")),
      acs_violations_(stats_.counter("acs_violations", "requests",
                                     "requests blocked by ACS source validation or translation blocking")),
      unsupported_(stats_.counter("unsupported", "requests", "requests with no route (Unsupported Request)")) {
    const auto& ports = params_.router.ports();
    if (ports.size() != params_.links.size())
        throw std::invalid_argument(std::string(basename()) + ": one link per downstream port expected");
    for (size_t i = 0; i < ports.size(); ++i) {
        links_.push_back(std::make_unique<Link>(ports[i].name, params_.links[i], &stats_));
        std::string pn = "port" + std::to_string(i);
        port_in_.push_back(std::make_unique<TargetSocket>((pn + "_in").c_str()));
        port_in_.back()->register_b_transport(this, &FabricNode::from_port, static_cast<int>(i));
        port_out_.push_back(std::make_unique<InitiatorSocket>((pn + "_out").c_str()));
    }
    if (params_.coherent_no_snoop)
        no_snoop_coherent_ = &stats_.counter("no_snoop_made_coherent", "requests",
                                             "No-Snoop requests sent up as snooped: the root complex keeps them coherent (CANWBS)");
    up_bound_.assign(ports.size(), false);
    down_bound_.assign(ports.size(), false);
    upstream_in.register_b_transport(this, &FabricNode::from_above);
}

void FabricNode::attach(size_t port, tlm::tlm_initiator_socket<>& child_up, tlm::tlm_target_socket<>& child_down) {
    child_up.bind(*port_in_.at(port));
    port_out_.at(port)->bind(child_down);
    up_bound_[port] = down_bound_[port] = true;
}

void FabricNode::attach_initiator_only(size_t port, tlm::tlm_initiator_socket<>& child_up) {
    child_up.bind(*port_in_.at(port));
    up_bound_[port] = true;
}

void FabricNode::attach(size_t port, FabricNode& child) { attach(port, child.upstream_out, child.upstream_in); }

int FabricNode::port_index(const std::string& name) const {
    const auto& ports = params_.router.ports();
    for (size_t i = 0; i < ports.size(); ++i)
        if (ports[i].name == name) return static_cast<int>(i);
    return -1;
}

void FabricNode::before_end_of_elaboration() {
    // A port without a device answers Unsupported Request (§2.3.1).
    for (size_t i = 0; i < port_out_.size(); ++i) {
        if (!down_bound_[i]) {
            terminators_.push_back(std::make_unique<tlm_utils::simple_target_socket<FabricNode>>(
                ("terminator" + std::to_string(i)).c_str()));
            terminators_.back()->register_b_transport(this, &FabricNode::terminate);
            port_out_[i]->bind(*terminators_.back());
        }
        if (!up_bound_[i]) {
            idle_.push_back(std::make_unique<tlm_utils::simple_initiator_socket<FabricNode>>(
                ("idle" + std::to_string(i)).c_str()));
            idle_.back()->bind(*port_in_[i]);
        }
    }
}

void FabricNode::terminate(tlm::tlm_generic_payload& gp, sc_core::sc_time&) {
    unsupported_.inc();
    gp.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
}

Duration FabricNode::forward_up(tlm::tlm_generic_payload& gp, Duration at) {
    sc_core::sc_time d = from_now(at);
    upstream_out->b_transport(gp, d);
    return kernel_now() + from_sc(d);
}

Duration FabricNode::forward_down(size_t j, tlm::tlm_generic_payload& gp, Duration at, const MessageExtension* msg,
                                  const TlpExtension* tlp) {
    Link& l = *links_[j];
    LinkTransfer y = l.send(Direction::downstream, at, train_of(l.timing(), gp, msg, tlp));
    sc_core::sc_time d = from_now(y.delivered);
    (*port_out_[j])->b_transport(gp, d);
    Duration r = kernel_now() + from_sc(d);
    if (is_posted(gp, msg)) return l.posted_release(y, r);
    uint64_t data = gp.is_response_ok() ? gp.get_data_length() : 0;
    return l.send(Direction::upstream, r, l.timing().completion_train(gp.get_address(), data)).delivered;
}

void FabricNode::from_port(int port, tlm::tlm_generic_payload& gp, sc_core::sc_time& delay) {
    const size_t i = static_cast<size_t>(port);
    Link& l = *links_[i];
    const Duration t0 = kernel_now();
    auto* msg = gp.get_extension<MessageExtension>();
    auto* tlp = gp.get_extension<TlpExtension>();
    const bool posted = is_posted(gp, msg);
    const CreditClass cc = posted ? CreditClass::posted : CreditClass::non_posted;
    // The sender transmits only holding one of our port's header credits.
    const CreditPool::Grant credit = l.acquire_credit(cc, t0 + from_sc(delay));
    LinkTransfer x = l.send(Direction::upstream, credit.start, train_of(l.timing(), gp, msg, tlp));
    const Duration t = x.delivered + params_.latency;
    // The stages above stamp when they accepted the request (memory: after the
    // IOMMU translated it; a parent port: when it granted its credit). The
    // outermost node attaches the stamp and removes it again.
    AdmissionExtension* adm = gp.get_extension<AdmissionExtension>();
    const bool own_adm = adm == nullptr;
    if (own_adm) {
        adm = &admission_;
        gp.set_extension(adm);
    }
    // Removed again on every way out, unwinding included (a request the IOMMU holds may be
    // killed at the end of the run): the payload must never own admission_.
    struct Detach {
        tlm::tlm_generic_payload& gp;
        AdmissionExtension* adm;
        ~Detach() {
            if (adm) gp.clear_extension(adm);
        }
    } detach{gp, own_adm ? adm : nullptr};
    adm->valid = false;

    Route r = msg ? params_.router.up_id(port, requester_of(tlp, msg), msg->route_id(), msg->code == MessageCode::page_request)
                  : params_.router.up_memory(port, requester_of(tlp, msg), gp.get_address(),
                                             tlp ? tlp->at : AddressType::untranslated);
    Duration done = t;
    Duration accepted = t;
    switch (r.target) {
    case RouteTarget::acs_violation:
        acs_violations_.inc();
        gp.set_response_status(tlm::TLM_GENERIC_ERROR_RESPONSE);
        break;
    case RouteTarget::unsupported:
        unsupported_.inc();
        gp.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
        break;
    case RouteTarget::upstream:
        if (r.redirected) p2p_redirected_.inc();
        (msg ? up_messages_ : up_requests_).inc();
        if (no_snoop_coherent_ && tlp && tlp->no_snoop) [[unlikely]] {
            tlp->no_snoop = false;
            no_snoop_coherent_->inc();
        }
        done = forward_up(gp, t);
        accepted = adm->valid ? adm->at : done;
        break;
    case RouteTarget::port:
        if (r.peer) p2p_direct_.inc();
        done = forward_down(static_cast<size_t>(r.port), gp, t, msg, tlp);
        accepted = done;
        break;
    }
    l.return_credit(cc, credit, accepted);
    if (!own_adm) { // for the node below: we took the request when its sender got our credit (ours: detach)
        adm->at = credit.start;
        adm->valid = true;
    }

    Duration result;
    if (posted) {
        result = x.sent; // released once sent: the credit was granted before transmission
    } else {
        uint64_t data = gp.is_response_ok() ? gp.get_data_length() : 0;
        result = l.send(Direction::downstream, done + params_.latency,
                        l.timing().completion_train(gp.get_address(), data)).delivered;
    }
    if (auto* issue = gp.get_extension<IssueExtension>()) {
        issue->sender_free = x.sent;
        issue->valid = true;
    }
    delay = from_now(result);
}

void FabricNode::from_above(tlm::tlm_generic_payload& gp, sc_core::sc_time& delay) {
    const Duration t = kernel_now() + from_sc(delay) + params_.latency;
    auto* msg = gp.get_extension<MessageExtension>();
    Route r = msg ? params_.router.down_id(msg->route_id()) : params_.router.down_memory(gp.get_address());
    if (r.target != RouteTarget::port) {
        unsupported_.inc();
        gp.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
        delay = from_now(t);
        return;
    }
    (msg ? down_messages_ : down_requests_).inc();
    Duration done = forward_down(static_cast<size_t>(r.port), gp, t, msg, gp.get_extension<TlpExtension>());
    if (!is_posted(gp, msg)) done += params_.latency;
    delay = from_now(done);
}

PcieSwitch::PcieSwitch(sc_core::sc_module_name name, const SwitchParams& p, Router router, std::vector<LinkParams> links,
                       stats::Group* parent_stats)
    : FabricNode(name, FabricNodeParams{p.latency, std::move(router), std::move(links)}, parent_stats) {}

PcieRootComplex::PcieRootComplex(sc_core::sc_module_name name, const PcieRootComplexParams& p, Router router,
                                 std::vector<LinkParams> links, stats::Group* parent_stats)
    : FabricNode(name, FabricNodeParams{p.latency, std::move(router), std::move(links), p.canwbs}, parent_stats) {}

FabricNodeParams fabric_node_params(const Topology& t, int fabric_node, Duration latency) {
    FabricNodeParams p;
    p.latency = latency;
    p.router = t.router_for(fabric_node);
    for (int port : t.node(fabric_node).children) p.links.push_back(t.node(port).link);
    return p;
}

} // namespace iommusim::pcie
