// FETCH: the data items (RFC 9051 §6.4.5, RFC 3516 BINARY, RFC 7162
// MODSEQ), and rendering ENVELOPE and BODYSTRUCTURE from the SDK's MIME
// parser.
#pragma once

#include "command.hpp"
#include "view.hpp"

#include <postern/mime.hpp>

#include <optional>
#include <string>
#include <vector>

namespace postern::imap {

struct FetchItem {
  enum Kind {
    flags, internaldate, size, envelope, bodystructure, body, uid, modseq,
    section,      // BODY[...], BODY.PEEK[...], RFC822, RFC822.HEADER, RFC822.TEXT
    binary,       // BINARY[...], BINARY.PEEK[...]
    binary_size,  // BINARY.SIZE[...]
  } kind = flags;
  bool peek = false;                 // does not set \Seen
  std::vector<uint32_t> part;        // "1.2" -> {1, 2}
  std::string text;                  // "", HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME
  std::vector<std::string> fields;   // for HEADER.FIELDS(.NOT), upper-cased
  std::optional<std::pair<uint64_t, uint64_t>> partial;  // <origin.count>
  std::string label;                 // how the response names it (without <origin>)

  bool needs_content() const { return kind >= envelope && kind != uid && kind != modseq; }
  // Answered from the header block alone (no whole message to read).
  bool needs_header_only() const {
    return kind == envelope ||
           (kind == section && part.empty() && (text == "HEADER" || text == "HEADER.FIELDS" || text == "HEADER.FIELDS.NOT"));
  }
};

// Parses one item ("BODY.PEEK[1.HEADER.FIELDS (From)]<0.100>", "FLAGS",
// "RFC822.HEADER", ...); nullopt when malformed.
std::optional<FetchItem> parse_fetch_item(const std::string& atom);

// The rendered value of a content item for message (label included), or
// nullopt when the section does not exist in this message (BINARY on a
// part whose encoding is unknown answers "[UNKNOWN-CTE]" by nullopt too).
std::optional<std::string> render_item(const FetchItem& item, std::string_view message, const sdk::mime::Part& root);

std::string envelope(const sdk::mime::Part& part);
std::string body_structure(std::string_view message, const sdk::mime::Part& part, bool extensible);

}  // namespace postern::imap
