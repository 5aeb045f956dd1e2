// The selected mailbox as this session sees it: messages in sequence-number
// order with their UIDs, flags and MODSEQs. Updated from the store's
// message.list; what changed comes back as the untagged responses to send.
#pragma once

#include "command.hpp"

#include <postern/record.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace postern::imap {

struct MessageRef {
  uint64_t uid = 0, modseq = 0, size = 0, internaldate = 0;
  std::string flags;  // space-separated, as stored
};

struct ViewChanges {
  std::vector<uint64_t> expunged;      // sequence numbers, in the order to send them
  bool exists = false;                 // the message count changed: send EXISTS
  std::vector<size_t> flags_changed;   // indexes whose flags changed
  bool withheld = false;               // expunges not applied yet (not allowed now)
};

class View {
 public:
  View(std::string name, bool read_only) : name_(std::move(name)), read_only_(read_only) {}

  // Replaces the snapshot with a message.list reply. expunges_allowed =
  // false keeps messages that are gone (their sequence numbers must not
  // move while a FETCH, STORE or SEARCH answers).
  // From a message.list reply: a whole listing, or (with "uids") the
  // changes since highest_modseq().
  ViewChanges update(const sdk::Record& list, bool expunges_allowed);

  const std::string& name() const { return name_; }
  bool read_only() const { return read_only_; }
  uint64_t id() const { return id_; }
  uint64_t uidvalidity() const { return uidvalidity_; }
  uint64_t uidnext() const { return uidnext_; }
  uint64_t highest_modseq() const { return highest_modseq_; }
  // The mailbox's modseq at the last listing: what the next listing of
  // changes starts from (highest_modseq also rises with this session's own
  // STOREs, which must not hide changes made before them by others).
  uint64_t listed_modseq() const { return listed_modseq_; }
  size_t size() const { return messages_.size(); }
  const MessageRef& at(size_t index) const { return messages_[index]; }
  MessageRef& at(size_t index) { return messages_[index]; }
  std::optional<size_t> find_uid(uint64_t uid) const;
  // Indexes named by a sequence set (of sequence numbers, or of UIDs).
  std::vector<size_t> select(const SequenceSet& set, bool uid) const;
  // A message's flags changed by this session's own STORE.
  void set_flags(uint64_t uid, const std::string& flags, uint64_t modseq);
  void forget(uint64_t uid);  // expunged by this session, reported already
  void rename(std::string name) { name_ = std::move(name); }
  uint64_t max_uid() const { return messages_.empty() ? 0 : messages_.back().uid; }

 private:
  static size_t present_up_to(const std::vector<Range>& present, uint64_t max);
  ViewChanges apply(const std::vector<MessageRef>& changed);
  std::vector<MessageRef> complete(const std::vector<MessageRef>& changed, const std::vector<Range>& present) const;

  std::string name_;
  bool read_only_;
  uint64_t id_ = 0, uidvalidity_ = 0, uidnext_ = 0, highest_modseq_ = 0, listed_modseq_ = 0;
  std::vector<MessageRef> messages_;
};

// UIDs as a compact set: "1:3,7,9:10".
std::string compact_set(std::vector<uint64_t> numbers);

}  // namespace postern::imap
