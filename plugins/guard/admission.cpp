#include "admission.hpp"

namespace postern::guard {

std::string Admission::take(const Address& a) {
  std::string ip = a.str(), net = network(a).str();
  std::lock_guard lock(mutex_);
  if (per_ip_[ip] >= max_per_ip_) return "too many connections from the address";
  if (per_network_[net] >= max_per_network_) return "too many connections from the network " + net;
  ++per_ip_[ip];
  ++per_network_[net];
  return "";
}

void Admission::give_back(const Address& a) {
  std::string ip = a.str(), net = network(a).str();
  std::lock_guard lock(mutex_);
  auto drop = [](std::map<std::string, uint32_t>& m, const std::string& k) {
    auto it = m.find(k);
    if (it != m.end() && --it->second == 0) m.erase(it);
  };
  drop(per_ip_, ip);
  drop(per_network_, net);
}

std::optional<Ban> Admission::banned(const Address& a, uint64_t now) const {
  std::lock_guard lock(mutex_);
  for (const auto& [text, entry] : bans_)  // a few hundred at most: bans expire
    if (entry.second.until > now && entry.first.contains(a)) return entry.second;
  return std::nullopt;
}

void Admission::put(const Ban& ban) {
  auto network = parse_network(ban.network);
  if (!network) return;
  std::lock_guard lock(mutex_);
  bans_[ban.network] = {*network, ban};
}

bool Admission::remove(const std::string& network) {
  std::lock_guard lock(mutex_);
  return bans_.erase(network) > 0;
}

std::optional<Ban> Admission::find(const std::string& network) const {
  std::lock_guard lock(mutex_);
  auto it = bans_.find(network);
  if (it == bans_.end()) return std::nullopt;
  return it->second.second;
}

std::vector<Ban> Admission::active(uint64_t now) const {
  std::lock_guard lock(mutex_);
  std::vector<Ban> out;
  for (const auto& [text, entry] : bans_)
    if (entry.second.until > now) out.push_back(entry.second);
  return out;
}

void Admission::prune(uint64_t before) {
  std::lock_guard lock(mutex_);
  std::erase_if(bans_, [before](const auto& entry) { return entry.second.second.until < before; });
}

}  // namespace postern::guard
