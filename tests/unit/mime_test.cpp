#include <postern/mime.hpp>

#include <doctest/doctest.h>

#include <algorithm>

namespace mime = postern::sdk::mime;

namespace {

std::string_view body(std::string_view message, const mime::Part& p) {
  return message.substr(p.body_start, p.body_size());
}

size_t tree_depth(const mime::Part& p) {
  size_t deepest = 0;
  std::vector<std::pair<const mime::Part*, size_t>> stack{{&p, 0}};
  while (!stack.empty()) {
    auto [n, d] = stack.back();
    stack.pop_back();
    deepest = std::max(deepest, d);
    for (const auto& c : n->children) stack.emplace_back(&c, d + 1);
  }
  return deepest;
}

size_t tree_size(const mime::Part& p) {
  size_t n = 1;
  for (const auto& c : p.children) n += tree_size(c);
  return n;
}

std::string address_text(const mime::Address& a) {
  auto show = [](const std::optional<std::string>& v) { return v ? "[" + *v + "]" : std::string("NIL"); };
  return show(a.name) + " " + show(a.route) + " " + show(a.mailbox) + " " + show(a.host);
}

std::vector<std::string> addresses(std::string_view value, size_t max = 1000) {
  std::vector<std::string> out;
  for (const auto& a : mime::parse_addresses(value, max)) out.push_back(address_text(a));
  return out;
}

}  // namespace

TEST_CASE("header fields are unfolded - colonless lines skipped - bounded") {
  auto h = mime::parse_headers(
      "Subject: hello\r\n  world\r\nnot a header\r\nX-Empty:\r\nTo:\r\n\tb@example.com\r\nObs : v\r\n\r\nBody: no\r\n");
  REQUIRE(h.size() == 4);
  CHECK(h[0].name == "Subject");
  CHECK(h[0].value == "hello  world");
  CHECK(h[1].value == "");
  CHECK(h[2].value == "b@example.com");
  CHECK(h[3].name == "Obs");
  CHECK(mime::find_header(h, "subject") == "hello  world");
  CHECK_FALSE(mime::find_header(h, "Body"));

  auto lf = mime::parse_headers("A: 1\n 2\nB:3\n\nC: 4\n");
  REQUIRE(lf.size() == 2);
  CHECK(lf[0].value == "1 2");
  CHECK(lf[1].value == "3");

  mime::Limits limits;
  limits.max_headers = 2;
  CHECK(mime::parse_headers("A: 1\r\nB: 2\r\nC: 3\r\n", limits).size() == 2);
}

TEST_CASE("header block: blank line - none at all - larger than max_header_bytes") {
  std::string m = "Subject: x\r\nFrom: y\r\n\r\nline 1\r\nline 2";
  auto p = mime::parse(m);
  CHECK(p.header_end == p.body_start);
  CHECK(body(m, p) == "line 1\r\nline 2");
  CHECK(p.lines == 2);
  CHECK(p.content_type.type == "text");
  CHECK(p.content_type.subtype == "plain");
  CHECK(p.param("charset") == "us-ascii");
  CHECK(p.encoding == "7bit");

  std::string only_headers = "Subject: x\r\nFrom: y";
  auto q = mime::parse(only_headers);
  CHECK(q.headers.size() == 2);
  CHECK(q.body_start == only_headers.size());
  CHECK(q.body_end == only_headers.size());
  CHECK(q.lines == 0);

  mime::Limits limits;
  limits.max_header_bytes = 8;
  std::string big = "A: 1\r\nB: 2\r\n\r\nbody";
  auto r = mime::parse(big, limits);
  CHECK(r.headers.size() == 1);
  CHECK(body(big, r) == "B: 2\r\n\r\nbody");
}

TEST_CASE("RFC 2047 encoded words") {
  CHECK(mime::decode_words("=?iso-8859-1?q?caf=E9?=") == "café");
  CHECK(mime::decode_words("=?UTF-8?B?w6TDtsO8?=") == "äöü");
  CHECK(mime::decode_words("=?utf-8?q?hello_world?=") == "hello world");
  CHECK(mime::decode_words("Re: =?utf-8?q?a?= =?utf-8?q?b?=\t =?iso-8859-1?q?=E9?= end") == "Re: abé end");
  CHECK(mime::decode_words("=?utf-8?B?ww==?= =?utf-8?B?pA==?=") == "ä");  // a character split across words
  CHECK(mime::decode_words("=?utf-8*en?q?hi?=") == "hi");                 // RFC 2231 §5 language
  CHECK(mime::decode_words("plain text, untouched") == "plain text, untouched");
  for (std::string_view bad : {"=?utf-8?x?abc?=", "=?utf-8?q?abc", "=??q?abc?=", "=?utf-8?q?a b?=", "=?", "a=?b"})
    CHECK(mime::decode_words(bad) == bad);
  CHECK(mime::decode_words("=?utf-8?q?bad?= =?utf-8?q?a?= x") == "bada x");
  CHECK(mime::decode_words("=?utf-8?q?=FF?=") == "\xEF\xBF\xBD");  // invalid UTF-8 replaced
}

TEST_CASE("Content-Type and Content-Disposition with RFC 2231") {
  auto ct = mime::parse_content_type("TEXT/Plain (comment); CharSet=UTF-8 (x); charset=latin1; name=\"a \\\"b\\\" c\"");
  REQUIRE(ct);
  CHECK(ct->type == "text");
  CHECK(ct->subtype == "plain");
  CHECK(ct->params == mime::Params{{"charset", "UTF-8"}, {"name", "a \"b\" c"}});
  CHECK_FALSE(mime::parse_content_type("text"));
  CHECK_FALSE(mime::parse_content_type(""));
  CHECK_FALSE(mime::parse_content_type("/plain"));
  CHECK(mime::parse_content_type("multipart/mixed; boundary=----=_Part_1_2.3")->params[0].second == "----=_Part_1_2.3");

  auto d = mime::parse_disposition("Attachment; filename*=iso-8859-1'en'%E9t%E9.txt; filename=\"ete.txt\"; size=3");
  REQUIRE(d);
  CHECK(d->first == "attachment");
  CHECK(d->second == mime::Params{{"filename", "été.txt"}, {"size", "3"}});
  CHECK(mime::parse_disposition("inline; filename*0=\"long\"; filename*1=\"name.txt\"")->second[0].second ==
        "longname.txt");
  CHECK(mime::parse_disposition("inline; filename*1=b.txt; filename*0*=utf-8''%C3%A4")->second[0].second == "äb.txt");
  CHECK(mime::parse_disposition("inline; junk; a=1;; =2; b=\"x;y\"")->second == mime::Params{{"a", "1"}, {"b", "x;y"}});
  CHECK_FALSE(mime::parse_disposition(""));
  CHECK_FALSE(mime::parse_disposition("  (only a comment)"));
}

// A multipart/mixed holding a multipart/alternative, a base64 attachment
// and a message/rfc822; offsets checked through the bytes they select.
TEST_CASE("nested multipart structure and offsets") {
  std::string m =
      "From: a@example.com\r\n"
      "Subject: test\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
      "\r\n"
      "This is the preamble.\r\n"
      "--outer\r\n"
      "Content-Type: multipart/alternative; boundary=inner\r\n"
      "\r\n"
      "--inner\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "\r\n"
      "Hello plain\r\n"
      "--inner \t\r\n"
      "Content-Type: text/html; charset=utf-8\r\n"
      "\r\n"
      "<p>Hello html</p>\r\n"
      "--inner--\r\n"
      "\r\n"
      "--outer\r\n"
      "Content-Type: application/octet-stream; name=\"data.bin\"\r\n"
      "Content-Transfer-Encoding: BASE64\r\n"
      "Content-Disposition: attachment; filename=\"data.bin\"\r\n"
      "Content-ID: <id1@example.com>\r\n"
      "Content-Language: en, de\r\n"
      "\r\n"
      "AAECAw==\r\n"
      "--outer\r\n"
      "Content-Type: message/rfc822\r\n"
      "\r\n"
      "Subject: inner\r\n"
      "\r\n"
      "Inner body\r\n"
      "--outer--\r\n"
      "Epilogue\r\n";
  auto root = mime::parse(m);
  CHECK(root.start == 0);
  CHECK(root.multipart());
  CHECK(root.param("boundary") == "outer");
  REQUIRE(root.children.size() == 3);

  const auto& alt = root.children[0];
  CHECK(alt.content_type.subtype == "alternative");
  CHECK(m.substr(alt.start, 9) == "Content-T");
  CHECK(body(m, alt) ==
        "--inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello plain\r\n--inner \t\r\n"
        "Content-Type: text/html; charset=utf-8\r\n\r\n<p>Hello html</p>\r\n--inner--\r\n");
  REQUIRE(alt.children.size() == 2);
  CHECK(alt.children[0].content_type.subtype == "plain");
  CHECK(body(m, alt.children[0]) == "Hello plain");
  CHECK(alt.children[0].lines == 1);
  CHECK(alt.children[1].content_type.subtype == "html");
  CHECK(body(m, alt.children[1]) == "<p>Hello html</p>");

  const auto& att = root.children[1];
  CHECK(att.content_type.type == "application");
  CHECK(att.param("NAME") == "data.bin");
  CHECK(att.encoding == "base64");
  CHECK(att.id == "<id1@example.com>");
  CHECK(att.language == std::vector<std::string>{"en", "de"});
  REQUIRE(att.disposition);
  CHECK(att.disposition->first == "attachment");
  CHECK(body(m, att) == "AAECAw==");
  CHECK(mime::decode_transfer(body(m, att), att.encoding) == std::string("\0\1\2\3", 4));
  CHECK(att.children.empty());

  const auto& msg = root.children[2];
  CHECK(msg.message());
  CHECK(body(m, msg) == "Subject: inner\r\n\r\nInner body");
  REQUIRE(msg.children.size() == 1);
  CHECK(msg.children[0].start == msg.body_start);
  CHECK(mime::find_header(msg.children[0].headers, "Subject") == "inner");
  CHECK(body(m, msg.children[0]) == "Inner body");
}

TEST_CASE("bare LF line endings") {
  std::string m =
      "Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\nContent-Type: text/html\n\ntwo\n--b--\n";
  auto root = mime::parse(m);
  REQUIRE(root.children.size() == 2);
  CHECK(body(m, root.children[0]) == "one");
  CHECK(root.children[0].header_end == root.children[0].start + 1);
  CHECK(body(m, root.children[1]) == "two");
}

TEST_CASE("parts of multipart/digest default to message/rfc822") {
  std::string m =
      "Content-Type: multipart/digest; boundary=d\r\n\r\n"
      "--d\r\n\r\nSubject: one\r\n\r\nbody one\r\n"
      "--d\r\nContent-Type: text/plain\r\n\r\nexplicit\r\n"
      "--d--\r\n";
  auto root = mime::parse(m);
  REQUIRE(root.children.size() == 2);
  const auto& first = root.children[0];
  CHECK(first.content_type.type == "message");
  CHECK(first.content_type.subtype == "rfc822");
  REQUIRE(first.children.size() == 1);
  CHECK(body(m, first.children[0]) == "body one");
  CHECK(first.children[0].content_type.subtype == "plain");  // not digest inside the message
  CHECK(root.children[1].content_type.subtype == "plain");
  CHECK(body(m, root.children[1]) == "explicit");
}

TEST_CASE("a multipart without its boundary is one opaque part") {
  for (std::string m : {"Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\nbody\r\n--x--\r\n",
                        "Content-Type: multipart/mixed; boundary=nope\r\n\r\n--x\r\n\r\nbody\r\n--x--\r\n",
                        "Content-Type: multipart/mixed; boundary=x\r\n\r\n--xy\r\n\r\nbody\r\n--x--y\r\n"}) {
    auto p = mime::parse(m);
    CHECK(p.multipart());
    CHECK(p.content_type.subtype == "mixed");
    CHECK(p.children.empty());
    CHECK(body(m, p) == m.substr(m.find("\r\n\r\n") + 4));
  }
  // Without a close delimiter the last part runs to the end.
  std::string open = "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\nbody\r\n";
  auto p = mime::parse(open);
  REQUIRE(p.children.size() == 1);
  CHECK(body(open, p.children[0]) == "body\r\n");
}

TEST_CASE("nesting deeper than max_depth is cut - not recursed") {
  std::string rfc822;
  for (int i = 0; i < 100; ++i) rfc822 += "Content-Type: message/rfc822\r\n\r\n";
  rfc822 += "Subject: deep\r\n\r\nbody";
  std::string multipart;
  for (int i = 0; i < 100; ++i)
    multipart +=
        "Content-Type: multipart/mixed; boundary=b" + std::to_string(i) + "\r\n\r\n--b" + std::to_string(i) + "\r\n";
  multipart += "\r\nleaf";
  for (int i = 99; i >= 0; --i) multipart += "\r\n--b" + std::to_string(i) + "--";
  for (const std::string& m : {rfc822, multipart}) {
    auto root = mime::parse(m);
    CHECK(tree_depth(root) == 32);
    mime::Limits shallow;
    shallow.max_depth = 3;
    CHECK(tree_depth(mime::parse(m, shallow)) == 3);
    mime::Limits huge;
    huge.max_depth = SIZE_MAX;
    CHECK(tree_depth(mime::parse(m, huge)) == 100);
  }
}

TEST_CASE("a 10 -000-part bomb stops at max_parts") {
  std::string m = "Content-Type: multipart/mixed; boundary=x\r\n\r\n";
  for (int i = 0; i < 10000; ++i) m += "--x\r\n\r\nA\r\n";
  m += "--x--\r\n";
  auto root = mime::parse(m);
  CHECK(tree_size(root) == 2000);
  CHECK(body(m, root.children.back()) == "A");
  mime::Limits limits;
  limits.max_parts = 10;
  CHECK(tree_size(mime::parse(m, limits)) == 10);
  limits.max_parts = 1;
  CHECK(mime::parse(m, limits).children.empty());
}

TEST_CASE("transfer decoding") {
  CHECK(mime::decode_transfer("SGVs\r\nbG8=", "base64") == "Hello");
  CHECK(mime::decode_transfer("SG!V s*bG8=garbage", " Base64 ") == "Hello");
  CHECK(mime::decode_transfer("SGVsbG8", "base64") == "Hello");
  CHECK(mime::decode_transfer("caf=E9=\r\nlatte =3d x=ZZ =\n!=", "Quoted-Printable") == "caf\xE9latte = x=ZZ !");
  CHECK(mime::decode_transfer("a=  \r\nb", "quoted-printable") == "ab");
  CHECK(mime::decode_transfer("=E9=", "7bit") == "=E9=");
  CHECK(mime::decode_transfer("x", "x-uuencode") == "x");
}

TEST_CASE("charset conversion") {
  CHECK(mime::to_utf8("caf\xE9", "ISO-8859-1") == "café");
  CHECK(mime::to_utf8("caf\xE9", "us-ascii") == "caf\xEF\xBF\xBD");
  CHECK(mime::to_utf8("caf\xE9", "x-no-such-charset") == "caf\xEF\xBF\xBD");
  CHECK(mime::to_utf8("\xC3\xA4\xC0\x80", "utf-8") == "ä\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong refused
  CHECK(mime::to_utf8("a\xA0\x82", "shift_jis") == "a\xEF\xBF\xBD\xEF\xBF\xBD");     // invalid, then truncated
  CHECK(mime::to_utf8(std::string(10000, '\xE9'), "latin1").size() == 20000);        // E2BIG rounds
}

TEST_CASE("body_text collects text parts at any depth") {
  std::string m =
      "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
      "--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
      "R3LDvMOfZSBhdXMgS8O2bG4=\r\n"
      "--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
      "un caf=E9 cr=E8=\r\nme\r\n"
      "--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
      "--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\ninner text\r\n"
      "--b--\r\n";
  auto root = mime::parse(m);
  std::string text = mime::body_text(m, root);
  CHECK(text == "Grüße aus Köln\nun café crème\ninner text");
  CHECK(mime::contains_folded(text, "KÖLN"));
  CHECK(mime::body_text(m, root, 10) == "Grüße au");
  CHECK(mime::body_text(m, root, 3) == "Gr");  // cut before a character would be split
  CHECK(mime::body_text(m, root, 0) == "");
  std::string plain = "Subject: x\r\n\r\nhello";
  CHECK(mime::body_text(plain, mime::parse(plain)) == "hello");
}

TEST_CASE("case folding") {
  CHECK(mime::fold_case("Hello WORLD 123") == "hello world 123");
  CHECK(mime::fold_case("ÄÖÜ") == mime::fold_case("äöü"));
  CHECK(mime::fold_case("ÄÖÜ") == "äöü");
  CHECK(mime::fold_case("ΣΑΣ") == "σασ");
  CHECK(mime::contains_folded("ΣΑΣ", "σας"));  // final sigma
  CHECK(mime::fold_case("ДОМ") == "дом");
  CHECK(mime::fold_case("ЁЖ Ґ") == "ёж ґ");
  CHECK(mime::fold_case("ĀĹŽŸ×") == "āĺžÿ×");
  CHECK(mime::fold_case("İı") == "İı");
  CHECK(mime::fold_case("\xFF"
                        "A\xC3") ==
        "\xFF"
        "a\xC3");  // invalid bytes pass through
  CHECK(mime::contains_folded("Grüße aus KÖLN", "köln"));
  CHECK_FALSE(mime::contains_folded("Köln", "koln"));
  CHECK(mime::contains_folded("anything", ""));
}

TEST_CASE("address lists") {
  using V = std::vector<std::string>;
  CHECK(addresses("\"Doe, John\" <john@example.com>") == V{"[Doe, John] NIL [john] [example.com]"});
  CHECK(addresses("John Q. Public <jqp@x.org>, mary@x.org (Mary Smith)") ==
        V{"[John Q. Public] NIL [jqp] [x.org]", "NIL NIL [mary] [x.org]"});
  CHECK(addresses("Pete(A nice (nested) \\) chap) <pete(his account)@silly.test(his host)>") ==
        V{"[Pete] NIL [pete] [silly.test]"});
  CHECK(addresses("Friends: a@b.c, \"C\" <c@d.e>;, e@f.g") ==
        V{"NIL NIL [Friends] NIL", "NIL NIL [a] [b.c]", "[C] NIL [c] [d.e]", "NIL NIL NIL NIL", "NIL NIL [e] [f.g]"});
  CHECK(addresses("undisclosed-recipients:;") == V{"NIL NIL [undisclosed-recipients] NIL", "NIL NIL NIL NIL"});
  CHECK(addresses("Open: a@b") == V{"NIL NIL [Open] NIL", "NIL NIL [a] [b]", "NIL NIL NIL NIL"});
  CHECK(addresses("<@a.example,@b.example:x@y.example>") == V{"NIL [@a.example,@b.example] [x] [y.example]"});
  CHECK(addresses("\"john doe\"@example.com, \"a\\\"b\"@[1.2.3.4]") ==
        V{"NIL NIL [john doe] [example.com]", "NIL NIL [a\"b] [[1.2.3.4]]"});
  CHECK(addresses("=?utf-8?q?J=C3=B6rg?= <j@x>, \"=?iso-8859-1?q?Andr=E9?= Pirard\" <p@x>") ==
        V{"[Jörg] NIL [j] [x]", "[André Pirard] NIL [p] [x]"});
  CHECK(addresses("postmaster") == V{"NIL NIL [postmaster] []"});
  CHECK(addresses("<a@b") == V{"NIL NIL [a] [b]"});
  CHECK(addresses(",, ;<>, \"\" <>").empty());
  CHECK(addresses("a@b, c@d, e@f, g@h", 3).size() == 3);
  CHECK(addresses("").empty());
}
