#include "message_parts.hpp"

#include <algorithm>

namespace postern::dkim {

MessageParts split_message(std::string_view message) {
  MessageParts parts;
  bool no_headers = message.starts_with("\r\n");
  size_t pos = 0, end = no_headers ? 0 : message.find("\r\n\r\n");
  size_t header_end = no_headers ? 0 : end == std::string_view::npos ? message.size() : end + 2;
  size_t body_start = no_headers ? 2 : end == std::string_view::npos ? message.size() : end + 4;
  while (pos < header_end) {
    size_t next = pos;
    do {
      size_t nl = message.find("\r\n", next);
      next = nl == std::string_view::npos || nl >= header_end ? header_end : nl + 2;
    } while (next < header_end && (message[next] == ' ' || message[next] == '\t'));
    std::string field(message.substr(pos, next - pos));
    if (field.size() >= 2 && field.ends_with("\r\n")) field.resize(field.size() - 2);
    if (!field.empty()) parts.fields.push_back(std::move(field));
    pos = next;
  }
  parts.body = message.substr(std::min(body_start, message.size()));
  return parts;
}

}  // namespace postern::dkim
