// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "sim/config/json_reader.hpp"

using namespace iommusim::sim;

namespace {
JsonProblem problem_of(const std::string& text) {
    JsonProblem p;
    CHECK_FALSE(parse_json_text(text, p).has_value());
    return p;
}
std::string nested(std::size_t depth, const std::string& inner = "1") {
    return std::string(depth, '[') + inner + std::string(depth, ']');
}
} // namespace

TEST_CASE("a number literal that overflows a double is rejected with its path", "[unit][config][regression]") {
    auto p = problem_of(R"({"name":"x","seed":1e400})");
    CHECK(p.path == "/seed");
    CHECK_FALSE(p.syntax);
    CHECK(p.message.find("1e400") != std::string::npos);
    CHECK(problem_of(R"({"a":[1, 2, -1e999]})").path == "/a/2");
    CHECK_THROWS_WITH(parse_json_or_throw(R"({"seed":1e400})", "/x"), Catch::Contains("/x/seed: number overflow"));
}

TEST_CASE("duplicate keys are rejected at the second occurrence", "[unit][config][regression]") {
    auto p = problem_of(R"({"memory":{"size_bytes":1,"size_bytes":2}})");
    CHECK(p.path == "/memory/size_bytes");
    CHECK(p.message.find("duplicate key \"size_bytes\"") != std::string::npos);
    // Same key in sibling objects is fine; keys with '/' and '~' are escaped in the path.
    JsonProblem none;
    CHECK(parse_json_text(R"([{"a":1},{"a":2}])", none).has_value());
    CHECK(problem_of(R"([{"a":1},{"a/~":1,"a/~":2}])").path == "/1/a~1~0");
}

TEST_CASE("nesting beyond the documented depth is rejected without deep recursion", "[unit][config][regression]") {
    JsonProblem none;
    CHECK(parse_json_text(nested(kMaxJsonDepth), none).has_value());
    auto p = problem_of(nested(kMaxJsonDepth + 1));
    std::string expected; // "/0/0/.../0": the path of the 65th array
    for (std::size_t i = 0; i < kMaxJsonDepth; ++i) expected.append("/0");
    CHECK(p.path == expected);
    CHECK(p.message.find("nested deeper than") != std::string::npos);
    // 150,000 levels (300 KB): rejected at the limit, not a stack overflow.
    CHECK(problem_of(std::string(150000, '[') + std::string(150000, ']')).message.find("nested deeper") != std::string::npos);
    CHECK(problem_of("{\"a\":" + nested(150000, "{}") + "}").path.rfind("/a/0/0", 0) == 0);
}

TEST_CASE("a syntax error names the line, the column and the path reached", "[unit][config]") {
    auto p = problem_of("{\n  \"name\": \"x\",\n  \"seed\": ,\n}");
    CHECK(p.syntax);
    CHECK(p.path == "/seed");
    CHECK(p.message.find("line 3, column 11") != std::string::npos);
    CHECK(problem_of("").syntax);
    CHECK(problem_of("{} trailing").syntax);
}

TEST_CASE("nesting_depth counts objects and arrays iteratively", "[unit][config]") {
    CHECK(nesting_depth(json(1)) == 0);
    CHECK(nesting_depth(json::parse(R"({"a":[{"b":[]}], "c":1})")) == 4);
}
