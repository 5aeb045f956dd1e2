#include <postern/mx.hpp>

#include <algorithm>
#include <cctype>

namespace postern::sdk::mx {

std::string normalise_host(std::string_view host) {
  std::string out(host);
  if (!out.empty() && out.back() == '.') out.pop_back();
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

Plan plan(std::string_view domain, std::vector<Record> records, const std::vector<std::string>& local,
          const std::function<size_t(size_t)>& pick) {
  Plan out;
  for (auto& r : records) r.host = normalise_host(r.host);
  if (records.empty()) {
    out.implicit = true;
    out.hosts.push_back(normalise_host(domain));
    return out;
  }
  // RFC 7505 §3: the null MX ("." at preference 0) stands alone. Next to
  // other records it is a mistake of the domain's, and they are used.
  if (records.size() == 1 && records[0].host.empty()) {
    out.outcome = Plan::Outcome::null_mx;
    return out;
  }
  std::erase_if(records, [](const Record& r) { return r.host.empty(); });
  std::sort(records.begin(), records.end(), [](auto& a, auto& b) { return a.preference < b.preference; });
  // RFC 5321 §5.1: equal preferences in random order.
  for (size_t start = 0; start < records.size();) {
    size_t end = start;
    while (end < records.size() && records[end].preference == records[start].preference) ++end;
    for (size_t i = end - start; i > 1; --i) std::swap(records[start + i - 1], records[start + pick(i) % i]);
    start = end;
  }
  // Only the hosts preferred to this server (RFC 5321 §5.1).
  for (size_t i = 0; i < records.size(); ++i) {
    bool ours = std::any_of(local.begin(), local.end(),
                            [&](const std::string& name) { return normalise_host(name) == records[i].host; });
    if (!ours) continue;
    uint16_t ceiling = records[i].preference;
    std::erase_if(records, [&](const Record& r) { return r.preference >= ceiling; });
    if (records.empty()) out.outcome = Plan::Outcome::loops;
    break;
  }
  for (auto& r : records) {
    if (out.hosts.size() == kMaxHosts) break;
    if (std::find(out.hosts.begin(), out.hosts.end(), r.host) == out.hosts.end()) out.hosts.push_back(r.host);
  }
  return out;
}

}  // namespace postern::sdk::mx
