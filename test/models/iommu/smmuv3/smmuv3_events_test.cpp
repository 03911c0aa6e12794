// SPDX-License-Identifier: Apache-2.0
// SMMUv3 event records (256-bit) and PRI queue records (128-bit) against
// the layouts of spec-layouts.md C.4 / C.5 (Linux EVTQ_* / PRIQ_*).
#include <catch2/catch.hpp>

#include "models/iommu/smmuv3/smmuv3_events.hpp"

using namespace iommusim::iommu::smmuv3;

TEST_CASE("a stage-2 permission fault record puts every field at its architected position", "[unit]") {
    Event e;
    e.id = evt::kPermission;
    e.sid = 0x0001'0203;
    e.ssv = true;
    e.ssid = 0xABCDE;
    e.stall = true;
    e.stag = 0x1234;
    e.pnu = true;
    e.ind = true;
    e.rnw = false;
    e.s2 = true;
    e.cls = EventClass::tt;
    e.ttrnw = true;
    e.input_addr = 0xFFFF'8000'1234'5678;
    e.ipa = 0x000F'1234'5678'9FFF;
    const auto r = e.encode();
    // dword 0: ID 7:0, SSV 11, SubstreamID 31:12, StreamID 63:32.
    CHECK(r[0] == (0x13ull | 1ull << 11 | 0xABCDEull << 12 | 0x0001'0203ull << 32));
    // dword 1: STAG 15:0, Stall 31, PnU 33, InD 34, RnW 35 (0 = write), S2 39, CLASS 41:40 (TT = 1), TTRnW 44.
    CHECK(r[1] == (0x1234ull | 1ull << 31 | 1ull << 33 | 1ull << 34 | 1ull << 39 | 1ull << 40 | 1ull << 44));
    CHECK(r[2] == 0xFFFF'8000'1234'5678);
    CHECK(r[3] == 0x000F'1234'5678'9000); // IPA 51:12
    CHECK(Event::decode(r) == Event{e.id, e.sid, true, e.ssid, e.stag, true, true, true, false, true,
                                    EventClass::tt, true, e.input_addr, 0x000F'1234'5678'9000, 0});
}

TEST_CASE("each event type carries only the fields the architecture defines for it", "[unit]") {
    Event e;
    e.sid = 7;
    e.ssv = true;
    e.ssid = 3;
    e.stag = 9;
    e.stall = true;
    e.rnw = true;
    e.s2 = true;
    e.cls = EventClass::cd;
    e.input_addr = 0x1000;
    e.ipa = 0x2000;
    e.fetch_addr = 0x3008;
    SECTION("configuration errors: StreamID and SubstreamID only") {
        for (uint8_t id : {evt::kBadStreamId, evt::kBadSte, evt::kStreamDisabled, evt::kBadSubstreamId, evt::kBadCd}) {
            e.id = id;
            const auto r = e.encode();
            CHECK(r[0] == (id | 1ull << 11 | 3ull << 12 | 7ull << 32));
            CHECK(r[1] == 0);
            CHECK(r[2] == 0);
            CHECK(r[3] == 0);
        }
    }
    SECTION("fetch faults: FetchAddr 51:3 in dword 3") {
        for (uint8_t id : {evt::kSteFetch, evt::kCdFetch}) {
            e.id = id;
            const auto r = e.encode();
            CHECK(r[1] == 0);
            CHECK(r[3] == 0x3008);
            CHECK(Event::decode(r).fetch_addr == 0x3008);
        }
    }
    SECTION("F_WALK_EABT: access fields and FetchAddr") {
        e.id = evt::kWalkEabt;
        const auto r = e.encode();
        CHECK(r[1] == (9ull | 1ull << 31 | 1ull << 35 | 1ull << 39)); // CLASS CD = 0
        CHECK(r[2] == 0x1000);
        CHECK(r[3] == 0x3008);
    }
    SECTION("request faults: RnW/InD/PnU and InputAddr, no stall or stage") {
        for (uint8_t id : {evt::kUut, evt::kBadAtsTreq, evt::kTranslForbidden}) {
            e.id = id;
            const auto r = e.encode();
            CHECK(r[1] == 1ull << 35);
            CHECK(r[2] == 0x1000);
            CHECK(r[3] == 0);
        }
    }
    SECTION("without SSV no SubstreamID is recorded") {
        e.id = evt::kTranslation;
        e.ssv = false;
        CHECK(e.encode()[0] == (0x10ull | 7ull << 32));
        e.s2 = false;
        CHECK(e.encode()[3] == 0); // IPA only for stage-2 faults
    }
}

TEST_CASE("event type codes and names follow the SMMUv3 event table", "[unit]") {
    CHECK(event_name(0x01) == "F_UUT");
    CHECK(event_name(0x02) == "C_BAD_STREAMID");
    CHECK(event_name(0x03) == "F_STE_FETCH");
    CHECK(event_name(0x04) == "C_BAD_STE");
    CHECK(event_name(0x05) == "F_BAD_ATS_TREQ");
    CHECK(event_name(0x06) == "F_STREAM_DISABLED");
    CHECK(event_name(0x07) == "F_TRANSL_FORBIDDEN");
    CHECK(event_name(0x08) == "C_BAD_SUBSTREAMID");
    CHECK(event_name(0x09) == "F_CD_FETCH");
    CHECK(event_name(0x0A) == "C_BAD_CD");
    CHECK(event_name(0x0B) == "F_WALK_EABT");
    CHECK(event_name(0x10) == "F_TRANSLATION");
    CHECK(event_name(0x11) == "F_ADDR_SIZE");
    CHECK(event_name(0x12) == "F_ACCESS");
    CHECK(event_name(0x13) == "F_PERMISSION");
}

TEST_CASE("a PRI queue record puts the page request fields at their architected positions", "[unit]") {
    PriRecord p;
    p.sid = 0x0000'0A10;
    p.ssv = true;
    p.ssid = 0x12345;
    p.priv = true;
    p.exec = false;
    p.read = true;
    p.write = true;
    p.last = true;
    p.prg_index = 0x1AB;
    p.addr = 0x0000'7FFF'DEAD'B000;
    const auto r = p.encode();
    // dword 0: StreamID 31:0, SubstreamID 51:32, Priv 58, Exec 59, Read 60, Write 61, Last 62, SSV 63.
    CHECK(r[0] == (0xA10ull | 0x12345ull << 32 | 1ull << 58 | 1ull << 60 | 1ull << 61 | 1ull << 62 | 1ull << 63));
    // dword 1: PRGIndex 8:0, Address 63:12.
    CHECK(r[1] == (0x1ABull | 0x0000'7FFF'DEAD'B000ull));
    CHECK(PriRecord::decode(r) == p);
    CHECK_FALSE(p.stop_marker());
}

TEST_CASE("a stop marker is a last PRI record with a PASID and neither read nor write", "[unit]") {
    PriRecord p;
    p.ssv = true;
    p.ssid = 5;
    p.last = true;
    CHECK(p.stop_marker());
    p.ssv = false;
    CHECK_FALSE(p.stop_marker());
}
