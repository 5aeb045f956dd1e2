#include "conversation.hpp"

#include <algorithm>

namespace postern::milter {
namespace {

using Socket = sdk::net::BlockingSocket;
using Deadline = Socket::Deadline;

struct Packet {
  char command = 0;
  std::string data;
};

class Session {
 public:
  Session(Socket socket, Deadline deadline) : socket_(std::move(socket)), deadline_(deadline) {}

  bool send(char command, std::string_view data = {}) { return socket_.send_all(packet(command, data), deadline_); }

  std::optional<Packet> read() {
    auto length = socket_.receive_exactly(4, deadline_);
    if (!length) return std::nullopt;
    uint32_t n = from_be32(*length);
    if (n == 0 || n > kMaxPacket) return std::nullopt;
    auto body = socket_.receive_exactly(n, deadline_);
    if (!body) return std::nullopt;
    return Packet{(*body)[0], body->substr(1)};
  }

  // The reply to a stage: progress reports are skipped; modifications are
  // only valid at the end of body (handled there).
  std::optional<Packet> reply() {
    while (auto p = read()) {
      if (p->command != reply::progress) return p;
    }
    return std::nullopt;
  }

 private:
  Socket socket_;
  Deadline deadline_;
};

std::string angle(const std::string& address) { return "<" + address + ">"; }

// "550 5.7.1 text" (the first line of a possibly multi-line reply).
void replycode(Outcome& o, std::string_view data) {
  std::string line(data.substr(0, data.find_first_of("\r\n")));
  while (!line.empty() && line.back() == '\0') line.pop_back();
  if (line.size() >= 3 && std::all_of(line.begin(), line.begin() + 3, [](char c) { return c >= '0' && c <= '9'; }))
    o.code = std::stoi(line.substr(0, 3));
  std::string rest = line.size() > 4 ? line.substr(4) : "";
  size_t sp = rest.find(' ');
  std::string first = rest.substr(0, sp);
  if (first.size() >= 5 && first[1] == '.' && (first[0] == '4' || first[0] == '5')) {
    o.enhanced = first;
    rest = sp == std::string::npos ? "" : rest.substr(sp + 1);
  }
  o.text = rest;
  o.kind = line.starts_with("4") ? Outcome::tempfail : Outcome::reject;
}

// A stage's final reply; false when the conversation ends here.
bool decide(Outcome& o, const Packet& p) {
  switch (p.command) {
    case reply::cont: return true;
    case reply::accept: o.kind = Outcome::accept; return false;
    case reply::reject: o.kind = Outcome::reject; return false;
    case reply::tempfail: o.kind = Outcome::tempfail; return false;
    case reply::discard: o.kind = Outcome::discard; return false;
    case reply::replycode: replycode(o, p.data); return false;
    default:
      o.kind = Outcome::error;
      o.reason = std::string("unexpected reply '") + p.command + "'";
      return false;
  }
}

Outcome fail(std::string why) {
  Outcome o;
  o.kind = Outcome::error;
  o.reason = std::move(why);
  return o;
}

// Macros with a value only: an empty {auth_authen} would tell rspamd the
// sender is authenticated.
std::string macros(char stage, std::initializer_list<std::pair<const char*, std::string>> list) {
  std::string d(1, stage);
  for (const auto& [k, v] : list)
    if (!v.empty()) d += std::string(k) + '\0' + v + '\0';
  return d.size() > 1 ? d : "";
}

}  // namespace

Outcome converse(const sdk::net::SocketAddress& milter, std::chrono::milliseconds timeout, const Envelope& env,
                 std::string_view message) {
  Deadline deadline = std::chrono::steady_clock::now() + timeout;
  std::string error;
  auto socket = Socket::connect(milter, deadline, error);
  if (!socket) return fail(error);
  Session s(std::move(*socket), deadline);
  auto lost = [] { return fail("the milter closed the connection or did not answer in time"); };

  // Negotiation: what we can do and every step it may skip or not answer.
  if (!s.send(cmd::optneg, be32(kVersion) + be32(kActions) + be32(step::all))) return lost();
  auto neg = s.reply();
  if (!neg) return lost();
  if (neg->command != reply::optneg || neg->data.size() < 12) return fail("bad option negotiation");
  uint32_t version = from_be32(neg->data), steps = from_be32(std::string_view(neg->data).substr(8));
  if (version < 2) return fail("milter protocol version " + std::to_string(version));
  auto wants = [steps](uint32_t skip) { return (steps & skip) == 0; };

  Outcome o;
  // One stage: its macros, its command, and (unless it said not to) a reply.
  auto stage = [&](char command, std::string_view data, uint32_t skip, uint32_t no_reply, std::string macro_data) {
    if (!wants(skip)) return true;
    if (!macro_data.empty() && !s.send(cmd::macro, macro_data)) return (o = lost()), false;
    if (!s.send(command, data)) return (o = lost()), false;
    if (!wants(no_reply)) return true;
    auto r = s.reply();
    if (!r) return (o = lost()), false;
    return decide(o, *r);
  };

  bool v6 = env.client_addr.find(':') != std::string::npos;
  std::string connect = env.client_name + '\0' + (v6 ? '6' : '4') + std::string(1, char(env.client_port >> 8)) +
                        std::string(1, char(env.client_port & 0xff)) + env.client_addr + '\0';
  if (!stage(cmd::connect, connect, step::no_connect, step::nr_connect,
             macros(cmd::connect, {{"j", env.hostname}, {"{daemon_name}", "postern"},
                                   {"{client_addr}", env.client_addr}, {"{client_name}", env.client_name},
                                   {"_", env.client_name + " [" + env.client_addr + "]"}})))
    return o;
  if (!stage(cmd::helo, env.helo + '\0', step::no_helo, step::nr_helo, ""))
    return o;
  if (!stage(cmd::mail, angle(env.sender) + '\0', step::no_mail, step::nr_mail,
             macros(cmd::mail, {{"{mail_addr}", env.sender}, {"{auth_authen}", env.auth_user}})))
    return o;
  // A recipient the milter refuses (or defers) refuses (defers) the whole
  // message: at the end of data there is no answering per recipient, and
  // dropping one silently would lose its mail.
  for (const std::string& r : env.rcpts)
    if (!stage(cmd::rcpt, angle(r) + '\0', step::no_rcpt, step::nr_rcpt, macros(cmd::rcpt, {{"{rcpt_addr}", r}}))) {
      o.actions.push_back("refused at rcpt " + r);
      return o;
    }
  if (!stage(cmd::data, "", step::no_data, step::nr_data, "")) return o;

  Message m = split(message);
  for (const auto& f : m.fields) {
    // The value as libmilter hands it on: the space after the colon dropped
    // unless the milter asked for it (SMFIP_HDR_LEADSPC).
    std::string value = f.value;
    if (!(steps & step::header_leading_space) && !value.empty() && value.front() == ' ') value.erase(0, 1);
    if (!stage(cmd::header, f.name + '\0' + value + '\0', step::no_headers, step::nr_header, "")) return o;
  }
  if (!stage(cmd::eoh, "", step::no_eoh, step::nr_eoh, "")) return o;
  if (wants(step::no_body)) {
    for (size_t off = 0; off < m.body.size(); off += kChunk) {
      if (!s.send(cmd::body, std::string_view(m.body).substr(off, kChunk))) return lost();
      if (!wants(step::nr_body)) continue;
      auto r = s.reply();
      if (!r) return lost();
      if (r->command == reply::skip) break;  // it has seen enough of the body
      if (!decide(o, *r)) return o;
    }
  }

  // End of body: modifications, then the final word.
  if (!s.send(cmd::eob)) return lost();
  bool changed = false, body_replaced = false;
  std::string new_body;
  // What a milter may ask for at the end of body is bounded: a broken or
  // hostile one must not grow our memory without end.
  size_t budget = message.size() + (size_t{1} << 20), modifications = 0;
  while (true) {
    auto r = s.reply();
    if (!r) return lost();
    if (r->command != reply::replbody && (++modifications > 1000 || r->data.size() > budget))
      return fail("too many or too large modifications");
    if (r->command != reply::replbody) budget -= r->data.size();
    auto parts = strings(r->data);
    auto part = [&](size_t i) { return i < parts.size() ? parts[i] : std::string(); };
    switch (r->command) {
      case reply::addheader:
        add_header(m, part(0), part(1));
        o.actions.push_back("addheader " + part(0));
        changed = true;
        continue;
      case reply::insheader:
      case reply::chgheader: {
        if (r->data.size() < 4) return fail("a short header change");
        uint32_t index = from_be32(r->data);
        auto named = strings(std::string_view(r->data).substr(4));
        std::string name = named.empty() ? "" : named[0], value = named.size() > 1 ? named[1] : "";
        if (r->command == reply::insheader) insert_header(m, index, name, value);
        else change_header(m, index, name, value);
        o.actions.push_back(std::string(r->command == reply::insheader ? "insheader " : "chgheader ") + name);
        changed = true;
        continue;
      }
      case reply::replbody:
        if (!body_replaced) new_body.clear();
        body_replaced = true;
        if (new_body.size() + r->data.size() > message.size() + (size_t{1} << 20)) return fail("a replacement body too large");
        new_body += r->data;
        changed = true;
        continue;
      case reply::addrcpt:
      case reply::addrcpt_par: {
        std::string rcpt = part(0);
        if (rcpt.size() > 2 && rcpt.front() == '<' && rcpt.back() == '>') rcpt = rcpt.substr(1, rcpt.size() - 2);
        o.added.push_back(rcpt);
        o.actions.push_back("addrcpt " + rcpt);
        continue;
      }
      case reply::delrcpt: {
        std::string rcpt = part(0);
        if (rcpt.size() > 2 && rcpt.front() == '<' && rcpt.back() == '>') rcpt = rcpt.substr(1, rcpt.size() - 2);
        o.removed.push_back(rcpt);
        o.actions.push_back("delrcpt " + rcpt);
        continue;
      }
      case reply::quarantine:
        o.kind = Outcome::hold;
        o.reason = part(0).empty() ? "quarantined by a milter" : part(0);
        o.actions.push_back("quarantine");
        continue;
      case reply::chgfrom:
        o.actions.push_back("chgfrom (not supported: ignored)");
        continue;
      default: {
        Outcome final_word = o;
        final_word.kind = Outcome::cont;
        if (decide(final_word, *r) || final_word.kind == Outcome::accept) {
          if (o.kind == Outcome::hold) final_word.kind = Outcome::hold;
        }
        s.send(cmd::quit);
        if (body_replaced) m.body = new_body;
        if (changed && final_word.kind != Outcome::error) final_word.message = m.text();
        return final_word;
      }
    }
  }
}

}  // namespace postern::milter
