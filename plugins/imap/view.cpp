#include "view.hpp"

#include <algorithm>
#include <limits>

namespace postern::imap {
namespace {
uint64_t num(const sdk::Record& r, std::string_view k) { return r.number(k).value_or(0); }
}  // namespace

ViewChanges View::update(const sdk::Record& list, bool expunges_allowed) {
  id_ = num(list, "id");
  uidvalidity_ = num(list, "uidvalidity");
  uidnext_ = num(list, "uidnext");
  highest_modseq_ = num(list, "modseq");
  std::vector<MessageRef> fresh;
  for (auto raw : list.all("message")) {
    auto m = sdk::Record::parse(raw).value_or(sdk::Record());
    fresh.push_back({num(m, "uid"), num(m, "modseq"), num(m, "size"), num(m, "internaldate"),
                     std::string(m.get_or("flags", ""))});
  }
  std::sort(fresh.begin(), fresh.end(), [](auto& a, auto& b) { return a.uid < b.uid; });

  ViewChanges changes;
  size_t before = messages_.size();
  std::vector<MessageRef> next;
  size_t i = 0, j = 0;
  // Both lists ascend by UID: walk them together.
  while (i < messages_.size() || j < fresh.size()) {
    if (j == fresh.size() || (i < messages_.size() && messages_[i].uid < fresh[j].uid)) {
      if (expunges_allowed) {
        changes.expunged.push_back(i + 1);
      } else {
        next.push_back(messages_[i]);  // gone, reported later
        changes.withheld = true;
      }
      ++i;
    } else if (i == messages_.size() || fresh[j].uid < messages_[i].uid) {
      // New: only above what this view holds (a lower UID cannot appear).
      if (fresh[j].uid > max_uid() || i == messages_.size()) next.push_back(fresh[j]);
      ++j;
    } else {
      if (fresh[j].flags != messages_[i].flags) changes.flags_changed.push_back(next.size());
      next.push_back(fresh[j]);
      ++i;
      ++j;
    }
  }
  // EXPUNGE responses renumber what follows: send the highest first.
  std::reverse(changes.expunged.begin(), changes.expunged.end());
  messages_ = std::move(next);
  changes.exists = messages_.size() != before - changes.expunged.size();
  return changes;
}

std::optional<size_t> View::find_uid(uint64_t uid) const {
  auto it = std::lower_bound(messages_.begin(), messages_.end(), uid, [](auto& m, uint64_t u) { return m.uid < u; });
  if (it == messages_.end() || it->uid != uid) return std::nullopt;
  return static_cast<size_t>(it - messages_.begin());
}

std::vector<size_t> View::select(const SequenceSet& set, bool uid) const {
  std::vector<size_t> out;
  if (messages_.empty()) return out;
  uint64_t star = uid ? messages_.back().uid : messages_.size();
  std::vector<Range> ranges = set.resolved(star);
  size_t r = 0;
  // Messages ascend by number and UID, ranges ascend: one pass over both.
  for (size_t i = 0; i < messages_.size() && r < ranges.size(); ++i) {
    uint64_t n = uid ? messages_[i].uid : i + 1;
    while (r < ranges.size() && ranges[r].last < n) ++r;
    if (r < ranges.size() && n >= ranges[r].first) out.push_back(i);
  }
  return out;
}

void View::set_flags(uint64_t uid, const std::string& flags, uint64_t modseq) {
  if (auto i = find_uid(uid)) {
    messages_[*i].flags = flags;
    messages_[*i].modseq = modseq;
  }
  highest_modseq_ = std::max(highest_modseq_, modseq);
}

void View::forget(uint64_t uid) {
  if (auto i = find_uid(uid)) messages_.erase(messages_.begin() + static_cast<std::ptrdiff_t>(*i));
}

std::string compact_set(std::vector<uint64_t> numbers) {
  std::sort(numbers.begin(), numbers.end());
  std::string out;
  for (size_t i = 0; i < numbers.size();) {
    size_t j = i;
    while (j + 1 < numbers.size() && numbers[j + 1] == numbers[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(numbers[i]);
    if (j > i) out += ":" + std::to_string(numbers[j]);
    i = j + 1;
  }
  return out;
}

}  // namespace postern::imap
