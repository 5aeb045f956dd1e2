#include <postern/mta_sts.hpp>
#include <postern/mx.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace postern::sdk::mta_sts {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool alnum(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isalnum(c) != 0; });
}

// "*.example.net" or a host name: labels of letters, digits and hyphens.
bool valid_pattern(std::string_view p) {
  if (p.starts_with("*.")) p.remove_prefix(2);
  if (p.empty() || p.size() > 253) return false;
  size_t start = 0;
  while (start <= p.size()) {
    size_t dot = p.find('.', start);
    std::string_view label = p.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    if (!std::all_of(label.begin(), label.end(), [](unsigned char c) { return std::isalnum(c) || c == '-'; }))
      return false;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return true;
}

}  // namespace

std::optional<std::string> record_id(const std::vector<std::string>& txt) {
  std::optional<std::string> id;
  size_t sts = 0;
  for (std::string_view record : txt) {
    if (!record.starts_with("v=STSv1")) continue;  // §3.1: other records are discarded
    ++sts;
    std::string_view rest = record.substr(7);
    std::optional<std::string> found;
    std::string_view after = trim(rest);
    bool valid = after.empty() || after.front() == ';';  // "v=STSv1x" is not version 1
    while (valid && !rest.empty()) {
      size_t semi = rest.find(';');
      std::string_view field = trim(rest.substr(0, semi));
      rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
      if (field.empty()) continue;
      size_t eq = field.find('=');
      if (eq == std::string_view::npos || eq == 0) valid = false;
      else if (field.substr(0, eq) == "id") {
        std::string_view value = field.substr(eq + 1);
        if (found || value.empty() || value.size() > 32 || !alnum(value)) valid = false;
        else found = std::string(value);
      }
    }
    if (valid && found) id = found;
    else id.reset();
  }
  if (sts != 1) return std::nullopt;
  return id;
}

std::optional<Policy> parse_policy(std::string_view text, std::string& error) {
  if (text.size() > kMaxPolicySize) return error = "the policy is larger than 64 KiB", std::nullopt;
  Policy p;
  bool version = false, mode = false, max_age = false;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (trim(line).empty()) continue;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return error = "a line without a field name: " + std::string(line), std::nullopt;
    std::string_view key = line.substr(0, colon), value = trim(line.substr(colon + 1));
    if (key == "version") {
      if (version || value != "STSv1") return error = "version is not STSv1 (or given twice)", std::nullopt;
      version = true;
    } else if (key == "mode") {
      if (mode) return error = "mode given twice", std::nullopt;
      if (value == "enforce") p.mode = Mode::enforce;
      else if (value == "testing") p.mode = Mode::testing;
      else if (value == "none") p.mode = Mode::none;
      else return error = "unknown mode " + std::string(value), std::nullopt;
      mode = true;
    } else if (key == "max_age") {
      uint64_t n = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (max_age || ec != std::errc() || end != value.data() + value.size() || value.size() > 10)
        return error = "max_age is not a number of seconds (or given twice)", std::nullopt;
      p.max_age = static_cast<uint32_t>(std::min<uint64_t>(n, kMaxAge));
      max_age = true;
    } else if (key == "mx") {
      std::string pattern = mx::normalise_host(value);
      if (!valid_pattern(pattern)) return error = "not an MX pattern: " + std::string(value), std::nullopt;
      if (p.mx.size() < 256) p.mx.push_back(std::move(pattern));
    }  // other fields: ignored (§3.2, extensions)
  }
  if (!version) return error = "no version field", std::nullopt;
  if (!mode) return error = "no mode field", std::nullopt;
  if (!max_age) return error = "no max_age field", std::nullopt;
  if (p.mx.empty() && p.mode != Mode::none) return error = "no mx field", std::nullopt;
  return p;
}

bool matches(const Policy& policy, std::string_view host) {
  std::string h = mx::normalise_host(host);
  return std::any_of(policy.mx.begin(), policy.mx.end(), [&](const std::string& pattern) {
    if (!pattern.starts_with("*.")) return pattern == h;
    std::string_view parent = std::string_view(pattern).substr(1);  // ".example.net"
    if (h.size() <= parent.size() || !std::string_view(h).ends_with(parent)) return false;
    std::string_view label = std::string_view(h).substr(0, h.size() - parent.size());
    return label.find('.') == std::string_view::npos;
  });
}

}  // namespace postern::sdk::mta_sts
