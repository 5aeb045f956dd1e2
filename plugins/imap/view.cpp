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
  highest_modseq_ = listed_modseq_ = num(list, "modseq");
  std::vector<MessageRef> fresh;
  for (auto raw : list.all("message")) {
    auto m = sdk::Record::parse(raw).value_or(sdk::Record());
    fresh.push_back({num(m, "uid"), num(m, "modseq"), num(m, "size"), num(m, "internaldate"),
                     std::string(m.get_or("flags", ""))});
  }
  std::sort(fresh.begin(), fresh.end(), [](auto& a, auto& b) { return a.uid < b.uid; });
  if (auto uids = list.get("uids")) {
    // Bounded by the text: a fragmented mailbox has many ranges.
    auto parsed = parse_sequence_set(*uids, uids->size());
    std::vector<Range> present = parsed ? parsed->resolved(max_uid()) : std::vector<Range>();
    // Nothing expunged (the usual case: flags changed, mail arrived):
    // changed entries are applied in place, not by copying the view.
    if (present_up_to(present, max_uid()) == messages_.size()) return apply(fresh);
    fresh = complete(fresh, present);
  }

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

size_t View::present_up_to(const std::vector<Range>& present, uint64_t max) {
  size_t n = 0;
  for (const Range& r : present)
    if (r.first <= max) n += static_cast<size_t>(std::min(r.last, max) - r.first + 1);
  return n;
}

// Changed entries of a listing with no expunges: those the view holds are
// updated where they are; the new ones (above max_uid) are appended.
ViewChanges View::apply(const std::vector<MessageRef>& changed) {
  ViewChanges changes;
  uint64_t top = max_uid();
  for (const MessageRef& m : changed) {
    if (m.uid > top) {
      messages_.push_back(m);
      changes.exists = true;
    } else if (auto i = find_uid(m.uid)) {
      if (messages_[*i].flags != m.flags) changes.flags_changed.push_back(*i);
      messages_[*i] = m;
    }
  }
  return changes;
}

// A listing of changes only, made whole: what this view holds and the
// mailbox still has (present), with the changed entries in their place.
std::vector<MessageRef> View::complete(const std::vector<MessageRef>& changed, const std::vector<Range>& present) const {
  std::vector<MessageRef> out;
  size_t r = 0, c = 0;
  for (const MessageRef& m : messages_) {
    while (c < changed.size() && changed[c].uid < m.uid) out.push_back(changed[c++]);
    if (c < changed.size() && changed[c].uid == m.uid) {
      out.push_back(changed[c++]);
      continue;
    }
    while (r < present.size() && present[r].last < m.uid) ++r;
    if (r < present.size() && present[r].first <= m.uid) out.push_back(m);
  }
  out.insert(out.end(), changed.begin() + static_cast<std::ptrdiff_t>(c), changed.end());
  return out;
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
