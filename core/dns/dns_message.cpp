#include "dns/dns_message.hpp"

#include <arpa/inet.h>

#include <algorithm>

namespace postern::core::dns {
namespace {

constexpr int kMaxPointers = 32;
constexpr size_t kMaxRecords = 1000;

struct Reader {
  std::string_view m;
  size_t pos = 0;
  bool ok = true;

  uint8_t u8() {
    if (pos + 1 > m.size()) return ok = false, 0;
    return static_cast<uint8_t>(m[pos++]);
  }
  uint16_t u16() {
    uint16_t high = u8();
    return static_cast<uint16_t>(high << 8 | u8());
  }
  uint32_t u32() {
    uint32_t high = u16();
    return high << 16 | u16();
  }

  // A possibly compressed name at pos; pos moves past it.
  std::string name() {
    std::string out;
    size_t at = pos;
    bool jumped = false;
    for (int pointers = 0; ok;) {
      if (at >= m.size()) return ok = false, out;
      auto len = static_cast<uint8_t>(m[at]);
      if ((len & 0xc0) == 0xc0) {
        if (at + 1 >= m.size() || ++pointers > kMaxPointers) return ok = false, out;
        size_t target = static_cast<size_t>(len & 0x3f) << 8 | static_cast<uint8_t>(m[at + 1]);
        if (!jumped) pos = at + 2;
        jumped = true;
        at = target;
        continue;
      }
      if (len & 0xc0) return ok = false, out;  // reserved label types
      ++at;
      if (len == 0) break;
      if (at + len > m.size() || out.size() + len > 255) return ok = false, out;
      if (!out.empty()) out += '.';
      // A dot or a control byte inside a label is marked, so that the
      // name cannot pass for another one ("a.b" as one label).
      for (char c : m.substr(at, len)) {
        if (c == '.' || static_cast<unsigned char>(c) < 0x21 || c == '\\') out += '\\';
        out += c;
      }
      at += len;
    }
    if (!jumped) pos = at;
    return out;
  }
};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) out += std::string{kHex[c >> 4], kHex[c & 15]};
  return out;
}

std::string rcode_name(int rcode) {
  static constexpr const char* kNames[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"};
  return rcode >= 0 && rcode < 6 ? kNames[rcode] : "RCODE" + std::to_string(rcode);
}

// A host name fit to be used and written into headers: letters, digits,
// '-', '_' and dots between non-empty labels. A PTR record is whatever the
// connecting client's network says: nothing else gets through.
bool host_name(std::string_view name) {
  if (name.empty() || name.size() > 253 || name.front() == '.' || name.back() == '.') return false;
  size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
    if (++label > 63) return false;
  }
  return true;
}

// One record's data as text; nullopt when it is malformed.
std::optional<std::string> rdata_text(Reader& r, uint16_t type, size_t end) {
  switch (type) {
    case A:
    case AAAA: {
      size_t n = type == A ? 4 : 16;
      if (end - r.pos != n) return std::nullopt;
      char out[INET6_ADDRSTRLEN];
      inet_ntop(type == A ? AF_INET : AF_INET6, r.m.data() + r.pos, out, sizeof out);
      return std::string(out);
    }
    case MX: {
      uint16_t preference = r.u16();
      std::string host = lower(r.name());
      if (!r.ok || r.pos != end) return std::nullopt;
      if (!host_name(host) && !host.empty()) return std::string();  // skipped: not a host name
      return std::to_string(preference) + " " + (host.empty() ? "." : host);  // "0 .": the null MX (RFC 7505)
    }
    case PTR:
    case CNAME: {
      std::string host = lower(r.name());
      if (!r.ok || r.pos != end) return std::nullopt;
      return host_name(host) ? host : std::string();
    }
    case TXT: {
      std::string out;  // RFC 7208 §3.3: the strings of one record, joined
      while (r.ok && r.pos < end) {
        uint8_t len = r.u8();
        if (r.pos + len > end) return std::nullopt;
        out.append(r.m.substr(r.pos, len));
        r.pos += len;
      }
      return out;
    }
    case TLSA: {
      if (end - r.pos < 3) return std::nullopt;
      uint8_t usage = r.u8(), selector = r.u8(), matching = r.u8();
      return std::to_string(usage) + " " + std::to_string(selector) + " " + std::to_string(matching) + " " +
             hex(r.m.substr(r.pos, end - r.pos));
    }
    default:
      return std::nullopt;
  }
}

}  // namespace

std::optional<Type> type_from_name(std::string_view name) {
  std::string n = lower(std::string(name));
  if (n == "a") return A;
  if (n == "aaaa") return AAAA;
  if (n == "mx") return MX;
  if (n == "txt") return TXT;
  if (n == "ptr") return PTR;
  if (n == "cname") return CNAME;
  if (n == "tlsa") return TLSA;
  return std::nullopt;
}

const char* type_name(uint16_t type) {
  switch (type) {
    case A: return "A";
    case AAAA: return "AAAA";
    case MX: return "MX";
    case TXT: return "TXT";
    case PTR: return "PTR";
    case CNAME: return "CNAME";
    case TLSA: return "TLSA";
    default: return "?";
  }
}

std::optional<Answer> parse_response(std::string_view message, uint16_t type) {
  Reader r{message};
  r.u16();  // id (c-ares matched it)
  uint16_t flags = r.u16();
  uint16_t questions = r.u16(), answers = r.u16(), authority = r.u16();
  r.u16();  // additional
  if (!r.ok || !(flags & 0x8000) || questions != 1) return std::nullopt;
  r.name();
  uint16_t qtype = r.u16();
  r.u16();
  if (!r.ok || qtype != type) return std::nullopt;
  Answer out;
  out.rcode = rcode_name(flags & 0x0f);
  out.authenticated = flags & 0x0020;
  uint32_t ttl = UINT32_MAX;
  for (size_t i = 0; i < answers + size_t{authority} && r.ok && i < kMaxRecords; ++i) {
    r.name();
    uint16_t rtype = r.u16();
    r.u16();  // class
    uint32_t record_ttl = r.u32();
    uint16_t length = r.u16();
    size_t end = r.pos + length;
    if (!r.ok || end > message.size()) return std::nullopt;
    if (i < answers && rtype == type) {
      Reader data{message, r.pos};
      auto text = rdata_text(data, rtype, end);
      if (!text || !data.ok) return std::nullopt;
      if (!text->empty() || rtype == TXT) out.records.push_back(*text);
      ttl = std::min(ttl, std::min<uint32_t>(record_ttl, 0x7fffffff));  // RFC 2181 §8
    } else if (i < answers && rtype == CNAME) {
      ttl = std::min(ttl, record_ttl);  // the chain's TTLs bound the answer's
    } else if (i >= answers && rtype == SOA && out.records.empty()) {
      // RFC 2308 §5: a negative answer lives min(SOA TTL, SOA MINIMUM).
      Reader soa{message, r.pos};
      soa.name();
      soa.name();
      soa.pos += 16;  // serial, refresh, retry, expire
      uint32_t minimum = soa.u32();
      if (soa.ok && soa.pos <= end) ttl = std::min({ttl, record_ttl, minimum});
    }
    r.pos = end;
  }
  if (!r.ok) return std::nullopt;
  out.ttl = ttl == UINT32_MAX ? 0 : ttl;
  return out;
}

}  // namespace postern::core::dns
