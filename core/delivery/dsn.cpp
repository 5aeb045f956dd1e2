#include "delivery/dsn.hpp"

#include <postern/mail_date.hpp>

#include <algorithm>
#include <cctype>
#include <cctype>

namespace postern::core {
namespace {

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// Header values come from the envelope (and decoded xtext): no line
// breaks, no control characters.
std::string one_line(std::string s) {
  std::replace_if(
      s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }, ' ');
  return s;
}

// The original's header section (up to and including its last header line).
std::string header_section(const std::string& message) {
  size_t end = message.find("\r\n\r\n");
  return end == std::string::npos ? message : message.substr(0, end + 2);
}

}  // namespace

std::string decode_xtext(const std::string& xtext) {
  std::string out;
  for (size_t i = 0; i < xtext.size(); ++i) {
    if (xtext[i] == '+' && i + 2 < xtext.size() && std::isxdigit(static_cast<unsigned char>(xtext[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(xtext[i + 2]))) {
      out += static_cast<char>(std::stoi(xtext.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += xtext[i];
    }
  }
  return out;
}

bool dsn_wanted(const std::string& notify, const std::string& action) {
  std::string n = upper(notify);
  if (n.empty()) return action == "failed" || action == "delayed";
  if (n.find("NEVER") != std::string::npos) return false;
  return n.find(action == "failed" ? "FAILURE" : action == "delayed" ? "DELAY" : "SUCCESS") != std::string::npos;
}

std::string compose_dsn(const DsnReport& r, const std::string& to, const std::string& boundary, std::time_t now) {
  auto any = [&](const char* action) {
    return std::any_of(r.recipients.begin(), r.recipients.end(), [&](const DsnRecipient& x) { return x.action == action; });
  };
  bool any_failed = any("failed"), any_delayed = any("delayed");
  std::string host = one_line(r.reporting_mta);
  std::string m;
  m += "From: Mail Delivery System <MAILER-DAEMON@" + host + ">\r\n";
  m += "To: <" + one_line(to) + ">\r\n";
  m += std::string("Subject: ") + (any_failed    ? "Undelivered Mail Returned to Sender"
                                   : any_delayed ? "Delayed Mail (still being retried)"
                                                 : "Successful Mail Delivery Report") +
       "\r\n";
  m += "Date: " + sdk::rfc5322_date(now) + "\r\n";
  m += "Message-ID: <" + boundary + "@" + host + ">\r\n";
  m += "Auto-Submitted: auto-replied\r\n";  // RFC 3834: no auto-reply loops
  m += "MIME-Version: 1.0\r\n";
  m += "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"" + boundary + "\"\r\n\r\n";
  m += "This is a MIME-encapsulated message.\r\n\r\n";

  m += "--" + boundary + "\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n";
  m += "This is the mail system at " + host + ".\r\n\r\n";
  m += any_failed    ? "Your message could not be delivered to one or more recipients.\r\n"
                       "It is attached below.\r\n\r\n"
        : any_delayed ? "Your message has not been delivered yet to the recipients below.\r\n"
                        "It is still being retried; you need not send it again.\r\n\r\n"
                      : "Your message was delivered to the recipients below.\r\n\r\n";
  for (const auto& x : r.recipients)
    m += "<" + one_line(x.address) + ">: " + x.action + (x.diagnostic.empty() ? "" : ": " + one_line(x.diagnostic)) +
         "\r\n";
  m += "\r\n";

  m += "--" + boundary + "\r\nContent-Type: message/delivery-status\r\n\r\n";
  m += "Reporting-MTA: dns; " + host + "\r\n";
  if (!r.envid.empty()) m += "Original-Envelope-Id: " + one_line(decode_xtext(r.envid)) + "\r\n";
  if (r.arrival) m += "Arrival-Date: " + sdk::rfc5322_date(r.arrival) + "\r\n";
  for (const auto& x : r.recipients) {
    m += "\r\nFinal-Recipient: rfc822; " + one_line(x.address) + "\r\n";
    if (!x.orcpt.empty()) {
      std::string o = one_line(decode_xtext(x.orcpt));
      size_t semi = o.find(';');
      m += "Original-Recipient: " + (semi == std::string::npos ? "rfc822; " + o : o.substr(0, semi) + "; " +
                                                                                     o.substr(semi + 1)) +
           "\r\n";
    }
    m += "Action: " + x.action + "\r\nStatus: " + x.status + "\r\n";
    // RFC 3464 §2.3.6: "smtp" when the text is a remote server's reply.
    const std::string& d = x.diagnostic;
    bool smtp = d.size() > 4 && d[0] >= '2' && d[0] <= '5' && std::isdigit(static_cast<unsigned char>(d[1])) &&
                std::isdigit(static_cast<unsigned char>(d[2])) && d[3] == ' ';
    if (!d.empty()) m += std::string("Diagnostic-Code: ") + (smtp ? "smtp; " : "X-Postern; ") + one_line(d) + "\r\n";
  }
  m += "\r\n";

  if (r.headers_only) {
    m += "--" + boundary + "\r\nContent-Type: text/rfc822-headers\r\n\r\n" + header_section(r.original);
  } else {
    m += "--" + boundary + "\r\nContent-Type: message/rfc822\r\n\r\n" + r.original;
    if (!r.original.ends_with("\r\n")) m += "\r\n";
  }
  m += "\r\n--" + boundary + "--\r\n";
  return m;
}

}  // namespace postern::core
