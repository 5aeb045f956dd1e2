#include <postern/record.hpp>

#include <doctest/doctest.h>

using postern::sdk::Record;

TEST_CASE("records round-trip - keep order and repeated keys") {
  Record r;
  r.add("a", "1").add("b", std::string(300, 'x')).add("a", "2").add("n", 42).add("empty", "");
  r.add("nested", Record().add("k", "v"));
  auto back = Record::parse(r.encode());
  REQUIRE(back);
  CHECK(back->all("a") == std::vector<std::string_view>{"1", "2"});
  CHECK(back->get("b")->size() == 300);
  CHECK(back->number("n") == 42u);
  CHECK(back->get("empty") == "");
  CHECK(Record::parse(*back->get("nested"))->get("k") == "v");
  CHECK_FALSE(back->get("missing"));
  CHECK_FALSE(back->number("b"));
}

TEST_CASE("malformed records are refused - never over-read") {
  std::string good = Record().add("key", "value").encode();
  for (size_t cut = 1; cut < good.size(); ++cut) CHECK_FALSE(Record::parse(good.substr(0, cut)));
  CHECK_FALSE(Record::parse(std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11)));  // varint too long
  CHECK_FALSE(Record::parse(std::string("\x05" "ab", 3)));  // length past the end
  std::string long_key(1, static_cast<char>(0x80 | 0x00));
  long_key += '\x02';  // 256: over the key limit
  CHECK_FALSE(Record::parse(long_key + std::string(256, 'k') + '\0'));
  CHECK(Record::parse("")->empty());
}
