// The SDK toolkit's MIME parser (RFC 5322, RFC 2045-2049, RFC 2047,
// RFC 2231): a bounded parser of a whole message held in memory. IMAP uses
// it for ENVELOPE, BODYSTRUCTURE, BODY[section] and SEARCH; filters reuse
// it. It never trusts declared sizes, never recurses past Limits::max_depth
// and never throws on bad input: malformed structure degrades to what RFC
// 2045 says a reader should assume (text/plain; charset=us-ascii, 7bit; a
// multipart without its boundary is one opaque part).
//
// Link the plugin with postern::sdk_toolkit (a static library built from
// sdk/toolkit/, PIC, hidden symbols).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace postern::sdk::mime {

struct Limits {
  size_t max_depth = 32;           // nesting of multipart / message/rfc822
  size_t max_parts = 2000;         // parts in the whole tree
  size_t max_headers = 2000;       // header fields per header block
  size_t max_header_bytes = 1 << 20;  // one header block (larger: the rest is body)
};

// One header field: the name as written, the value unfolded (CRLF + WSP
// becomes WSP) but otherwise raw (no RFC 2047 decoding), without the
// leading space after the colon and without the final CRLF.
struct Header {
  std::string name;
  std::string value;
};

// Header fields of a header block, in order. Lines without a colon are
// skipped. Bounded by limits.max_headers.
std::vector<Header> parse_headers(std::string_view block, const Limits& limits = {});

// The first field named name (case-insensitive) in headers, or nullopt.
std::optional<std::string_view> find_header(const std::vector<Header>& headers, std::string_view name);

// A parameter of Content-Type or Content-Disposition: name lower-cased,
// value unquoted and, for RFC 2231 (name*=charset''%xx, name*0*=...),
// decoded and joined into UTF-8.
using Params = std::vector<std::pair<std::string, std::string>>;

struct ContentType {
  std::string type = "text", subtype = "plain";  // lower-cased
  Params params;
};
// Parses a Content-Type value; nullopt when it has no valid type/subtype.
std::optional<ContentType> parse_content_type(std::string_view value);
// "attachment; filename=x" -> {"attachment", {{"filename","x"}}}; the
// disposition lower-cased; nullopt for an empty value.
std::optional<std::pair<std::string, Params>> parse_disposition(std::string_view value);

// One node of the MIME tree. Offsets are into the message given to parse().
struct Part {
  size_t start = 0;        // first byte of the part's header block
  size_t header_end = 0;   // one past the blank line (== body_start)
  size_t body_start = 0;
  size_t body_end = 0;     // excludes the CRLF before a multipart delimiter
  std::vector<Header> headers;
  ContentType content_type;  // defaulted per RFC 2045 §5.2 / RFC 2046 §5.1.5 (digest -> message/rfc822)
  std::string encoding = "7bit";  // Content-Transfer-Encoding, lower-cased
  std::string id, description, md5, location;   // raw header values, "" when absent
  std::optional<std::pair<std::string, Params>> disposition;
  std::vector<std::string> language;            // Content-Language, split on commas
  size_t lines = 0;        // lines in the body (CRLF-counted; a last line without CRLF counts)
  // multipart/*: its parts; message/rfc822 (and message/global): exactly
  // one child, the encapsulated message (its start == this body_start).
  std::vector<Part> children;

  bool multipart() const { return content_type.type == "multipart"; }
  bool message() const {
    return content_type.type == "message" && (content_type.subtype == "rfc822" || content_type.subtype == "global");
  }
  size_t body_size() const { return body_end - body_start; }
  std::string_view param(std::string_view name) const;  // "" when absent
};

// Parses a whole message (headers, blank line, body). Bare LF line endings
// are accepted as well as CRLF. Never throws; bounded by limits.
Part parse(std::string_view message, const Limits& limits = {});

// RFC 2047 encoded words ("=?utf-8?B?...?=", Q and B, any charset iconv
// knows) decoded to UTF-8; whitespace between adjacent encoded words
// dropped; undecodable words left as written.
std::string decode_words(std::string_view value);

// A body's transfer encoding undone: base64 (invalid characters skipped),
// quoted-printable (soft line breaks removed), anything else as is.
std::string decode_transfer(std::string_view body, std::string_view encoding);

// Text in charset converted to UTF-8 (iconv; us-ascii and unknown charsets
// are treated as UTF-8 with invalid bytes replaced by U+FFFD).
std::string to_utf8(std::string_view text, std::string_view charset);

// The searchable text of a message: every text/* part (at any depth, also
// inside message/rfc822) decoded (transfer encoding, charset) to UTF-8 and
// concatenated with "\n" between parts. Bounded by max_bytes of output.
std::string body_text(std::string_view message, const Part& root, size_t max_bytes = 16 << 20);

// Unicode-aware case folding of UTF-8 for SEARCH: simple case folding of
// Latin, Greek and Cyrillic letters (the common cases) plus ASCII; invalid
// sequences pass through. contains_folded(h, n): folded n occurs in folded h.
std::string fold_case(std::string_view utf8);
bool contains_folded(std::string_view haystack, std::string_view needle);

// RFC 5322 address lists (with display names, comments, quoted local
// parts, groups, obsolete routes) for IMAP ENVELOPE: each address, and
// group start/end markers as IMAP represents them (RFC 3501 §7.4.2: a
// group start has mailbox = group name and host absent; its end has both
// absent).
struct Address {
  std::optional<std::string> name;     // display name, RFC 2047-decoded; nullopt when none
  std::optional<std::string> route;    // obsolete source route ("@a,@b"), nullopt when none
  std::optional<std::string> mailbox;  // local part (or group name)
  std::optional<std::string> host;     // domain; nullopt for group markers
};
// Bounded to max addresses; unparsable pieces are skipped.
std::vector<Address> parse_addresses(std::string_view value, size_t max = 1000);

// The author domain (RFC 7489 §3.1.1, §6.6.1) of a message (CRLF lines):
// the domain of the mailboxes in its one From field, lower case. nullopt
// when there is no From, several From fields, mailboxes of different
// domains, no domain, a domain that is not a plain host name, or a header
// section too large to read whole: DKIM signing and DMARC treat such a
// message as having no usable author domain.
std::optional<std::string> author_domain(std::string_view message);

}  // namespace postern::sdk::mime
