// Header blocks and the MIME tree (RFC 2045, RFC 2046 multipart and
// message/rfc822), and the searchable body text drawn from it.
#include "mime_text.hpp"

#include <postern/mime.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace postern::sdk::mime {
using namespace detail;

namespace {

// Recursion ceiling whatever Limits::max_depth says: each level is a stack
// frame, and a 1 MiB message can nest message/rfc822 tens of thousands deep.
constexpr size_t kDepthCeiling = 256;

// ---- the MIME tree -------------------------------------------------------

ContentType default_type(bool digest_child) {
  if (digest_child) return ContentType{"message", "rfc822", {}};
  return ContentType{"text", "plain", {{"charset", "us-ascii"}}};
}

size_t count_lines(std::string_view body) {
  size_t n = static_cast<size_t>(std::count(body.begin(), body.end(), '\n'));
  return body.empty() || body.back() == '\n' ? n : n + 1;
}

// Whether only transport padding follows body[at] on its line (RFC 2046
// §5.1.1), which makes the line a delimiter line.
bool padding_to_line_end(std::string_view body, size_t at) {
  while (at < body.size() && is_wsp(body[at])) ++at;
  return at == body.size() || body[at] == '\n' || body.compare(at, 2, "\r\n") == 0;
}

// The end of a part whose next delimiter starts at body[at]: the line break
// before a delimiter belongs to the delimiter.
size_t part_end_before(std::string_view body, size_t from, size_t at) {
  if (at > from && body[at - 1] == '\n') --at;
  if (at > from && body[at - 1] == '\r') --at;
  return at;
}

using Range = std::pair<size_t, size_t>;

// The [start, end) of each body part in body (offsets into body), at most
// max of them; empty when no delimiter line is found. Only line starts are
// compared, so a long boundary costs no more than the lines it is held
// against: linear in the body.
std::vector<Range> split_body(std::string_view body, std::string_view boundary, size_t max) {
  std::string delimiter = "--" + std::string(boundary);
  std::vector<Range> parts;
  std::optional<size_t> open;  // start of the part being read
  for (size_t line = 0; line < body.size() && parts.size() < max;) {
    size_t nl = body.find('\n', line);
    size_t next = nl == std::string_view::npos ? body.size() : nl + 1;
    size_t at = line;
    line = next;
    if (body.compare(at, delimiter.size(), delimiter) != 0) continue;
    size_t after = at + delimiter.size();
    bool close = body.compare(after, 2, "--") == 0;
    if (!padding_to_line_end(body, close ? after + 2 : after)) continue;
    if (open) parts.emplace_back(*open, part_end_before(body, *open, at));
    if (close) return parts;  // the epilogue is ignored
    open = next;
  }
  if (open && parts.size() < max) parts.emplace_back(*open, body.size());  // no close delimiter
  return parts;
}

class TreeParser {
 public:
  TreeParser(std::string_view message, const Limits& limits)
      : message_(message), limits_(limits), max_depth_(std::min(limits.max_depth, kDepthCeiling)) {}

  Part parse_part(size_t start, size_t end, size_t depth, bool digest_child) {
    ++parts_;
    Part part;
    part.start = start;
    find_body(part, end);
    part.headers = parse_headers(message_.substr(start, part.header_end - start), limits_);
    describe(part, digest_child);
    part.lines = count_lines(message_.substr(part.body_start, part.body_size()));
    if (depth < max_depth_) {
      if (part.multipart()) {
        add_body_parts(part, depth);
      } else if (part.message() && parts_ < limits_.max_parts) {
        part.children.push_back(parse_part(part.body_start, part.body_end, depth + 1, false));
      }
    }
    return part;
  }

 private:
  // Header block up to the first empty line; a line that would take it past
  // max_header_bytes starts the body instead; no empty line: all headers.
  void find_body(Part& part, size_t end) const {
    std::string_view region = message_.substr(part.start, end - part.start);
    size_t budget = std::min(limits_.max_header_bytes, region.size());
    size_t body = region.size();
    for (size_t pos = 0; pos < region.size();) {
      size_t nl = region.find('\n', pos);
      size_t next = nl == std::string_view::npos ? region.size() : nl + 1;
      std::string_view line = region.substr(pos, next - pos);
      if (line == "\n" || line == "\r\n") {
        body = next;
        break;
      }
      if (next > budget) {
        body = pos;
        break;
      }
      pos = next;
    }
    part.header_end = part.body_start = part.start + body;
    part.body_end = end;
  }

  void describe(Part& part, bool digest_child) const {
    const auto& h = part.headers;
    std::optional<ContentType> type;
    if (auto v = find_header(h, "Content-Type")) type = parse_content_type(*v);
    part.content_type = type ? std::move(*type) : default_type(digest_child);
    if (auto v = find_header(h, "Content-Transfer-Encoding")) {
      size_t i = 0;
      skip_cfws(*v, i);
      std::string encoding = lower(read_run(*v, i, is_token_char));
      if (!encoding.empty()) part.encoding = std::move(encoding);
    }
    part.id = find_header(h, "Content-ID").value_or("");
    part.description = find_header(h, "Content-Description").value_or("");
    part.md5 = find_header(h, "Content-MD5").value_or("");
    part.location = find_header(h, "Content-Location").value_or("");
    if (auto v = find_header(h, "Content-Disposition")) part.disposition = parse_disposition(*v);
    if (auto v = find_header(h, "Content-Language")) {
      for (size_t from = 0; from <= v->size();) {
        size_t comma = std::min(v->find(',', from), v->size());
        std::string_view tag = trim(v->substr(from, comma - from));
        if (!tag.empty()) part.language.emplace_back(tag);
        from = comma + 1;
      }
    }
  }

  // A multipart without a boundary, or whose boundary never occurs, keeps
  // no children: one opaque part.
  void add_body_parts(Part& part, size_t depth) {
    std::string_view boundary = part.param("boundary");
    if (boundary.empty() || parts_ >= limits_.max_parts) return;
    std::string_view body = message_.substr(part.body_start, part.body_size());
    bool digest = part.content_type.subtype == "digest";
    for (auto [from, to] : split_body(body, boundary, limits_.max_parts - parts_)) {
      if (parts_ >= limits_.max_parts) break;
      part.children.push_back(parse_part(part.body_start + from, part.body_start + to, depth + 1, digest));
    }
  }

  std::string_view message_;
  const Limits& limits_;
  size_t max_depth_;
  size_t parts_ = 0;
};

}  // namespace

// ---- public API ----------------------------------------------------------

std::vector<Header> parse_headers(std::string_view block, const Limits& limits) {
  block = block.substr(0, std::min(limits.max_header_bytes, block.size()));
  std::vector<Header> out;
  bool folding = false;  // a continuation line extends out.back()
  for (size_t pos = 0; pos < block.size();) {
    size_t nl = block.find('\n', pos);
    size_t stop = nl == std::string_view::npos ? block.size() : nl;
    std::string_view line = block.substr(pos, stop - pos);
    pos = stop + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;  // the end of the header block
    if (is_wsp(line.front())) {
      if (folding) out.back().value += line;  // unfolding: CRLF + WSP becomes WSP
      continue;
    }
    folding = false;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = line.substr(0, colon);
    while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);  // obsolete "Name :"
    bool name_ok = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return static_cast<unsigned char>(c) > ' ' && c != 0x7F;
    });
    if (!name_ok) continue;
    if (out.size() >= limits.max_headers) break;
    out.push_back({std::string(name), std::string(line.substr(colon + 1))});
    folding = true;
  }
  for (Header& h : out) {
    size_t lead = 0;
    while (lead < h.value.size() && is_wsp(h.value[lead])) ++lead;
    h.value.erase(0, lead);
  }
  return out;
}

std::optional<std::string_view> find_header(const std::vector<Header>& headers, std::string_view name) {
  for (const Header& h : headers)
    if (iequals(h.name, name)) return std::string_view(h.value);
  return std::nullopt;
}

std::string_view Part::param(std::string_view name) const {
  for (const auto& [key, value] : content_type.params)
    if (iequals(key, name)) return value;
  return {};
}

Part parse(std::string_view message, const Limits& limits) {
  TreeParser parser(message, limits);
  return parser.parse_part(0, message.size(), 0, false);
}

std::string body_text(std::string_view message, const Part& root, size_t max_bytes) {
  std::string out;
  std::vector<const Part*> stack{&root};  // depth-first, in document order, without recursion
  while (!stack.empty() && out.size() < max_bytes) {
    const Part* p = stack.back();
    stack.pop_back();
    for (auto it = p->children.rbegin(); it != p->children.rend(); ++it) stack.push_back(&*it);
    bool in_range = p->body_start <= p->body_end && p->body_end <= message.size();
    if (!p->children.empty() || p->content_type.type != "text" || !in_range) continue;
    // Decode no more than can fill the output: in mail's encodings and
    // charsets 16 input bytes give at least one output byte (QP of UTF-32
    // is 12:1); input of nothing but shift escapes could give less, which
    // only shortens the text at the cut.
    size_t room = max_bytes - out.size();
    size_t take = room > (SIZE_MAX - 64) / 16 ? SIZE_MAX : room * 16 + 64;
    std::string_view body = message.substr(p->body_start, p->body_size()).substr(0, take);
    std::string_view charset = p->param("charset");
    std::string text = to_utf8(decode_transfer(body, p->encoding), charset.empty() ? "us-ascii" : charset);
    if (text.empty()) continue;
    if (!out.empty()) out += '\n';
    out += text;
  }
  out.resize(utf8_cut(out, max_bytes));
  return out;
}

}  // namespace postern::sdk::mime
