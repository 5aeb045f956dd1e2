#include "report.hpp"

#include "policy.hpp"

#include <map>

namespace postern::dmarc {
namespace {

// The length of the valid UTF-8 sequence at s[i] (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF), or 0.
size_t utf8_length(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0u; };
  unsigned c = b(0);
  auto tail = [&](size_t k) { return (b(k) & 0xC0) == 0x80; };
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return tail(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if ((c == 0xE0 && b(1) < 0xA0) || (c == 0xED && b(1) > 0x9F)) return 0;
    return tail(1) && tail(2) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if ((c == 0xF0 && b(1) < 0x90) || (c == 0xF4 && b(1) > 0x8F)) return 0;
    return tail(1) && tail(2) && tail(3) ? 4 : 0;
  }
  return 0;
}

// Text for an XML element: markup escaped, control characters dropped
// (XML 1.0 has none), bytes that are not UTF-8 replaced, so one odd value
// cannot make a whole report unreadable.
std::string xml_escape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    char c = s[i];
    size_t n = utf8_length(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
      continue;
    }
    if (n > 1) {
      out.append(s.substr(i, n));
    } else if (c == '&') {
      out += "&amp;";
    } else if (c == '<') {
      out += "&lt;";
    } else if (c == '>') {
      out += "&gt;";
    } else if (c == '"') {
      out += "&quot;";
    } else if (static_cast<unsigned char>(c) >= 0x20 || c == '\t') {
      out += c;
    }
    i += n;
  }
  return out;
}

std::string element(std::string_view name, std::string_view value) {
  return "<" + std::string(name) + ">" + xml_escape(value) + "</" + std::string(name) + ">";
}

// The RFC 7489 DKIMResultType / SPFResultType vocabularies.
std::string dkim_result_type(std::string_view r) {
  if (r == "pass" || r == "fail" || r == "neutral" || r == "policy" || r == "temperror" || r == "permerror") return std::string(r);
  return "none";
}
std::string spf_result_type(std::string_view r) {
  if (r == "pass" || r == "fail" || r == "softfail" || r == "neutral" || r == "temperror" || r == "permerror") return std::string(r);
  return "none";
}

}  // namespace

sdk::Record result_record(uint64_t time_ms, const std::string& source_ip, const std::string& header_from,
                          const Outcome& outcome, const AuthResults& auth) {
  sdk::Record r;
  r.add("time", time_ms)
      .add("policy_domain", outcome.published.domain)
      .add("source_ip", source_ip)
      .add("header_from", header_from)
      .add("p", outcome.published.p)
      .add("sp", outcome.published.sp)
      .add("adkim", outcome.published.adkim)
      .add("aspf", outcome.published.aspf)
      .add("pct", static_cast<uint64_t>(outcome.published.pct))
      .add("disposition", outcome.disposition)
      .add("dkim_aligned", outcome.dkim_aligned ? "pass" : "fail")
      .add("spf_aligned", outcome.spf_aligned ? "pass" : "fail");
  for (const DkimResult& d : auth.dkim)
    r.add("dkim", sdk::Record().add("domain", d.domain).add("selector", d.selector).add("result", d.result).encode());
  if (auth.spf) r.add("spf_domain", auth.spf->domain).add("spf_scope", auth.spf->scope).add("spf_result", auth.spf->result);
  return r;
}

std::string aggregate_report(const std::string& domain, const ReportMeta& meta, const std::vector<sdk::Record>& results) {
  // Rows: one per distinct source, evaluation, identifiers and auth results.
  struct Row {
    std::string source_ip, evaluated, rest;
    uint64_t count = 0;
  };
  std::map<std::string, Row> rows;
  const sdk::Record* latest = nullptr;  // its published policy goes in the report
  for (const sdk::Record& r : results) {
    if (!latest || r.number("time").value_or(0) >= latest->number("time").value_or(0)) latest = &r;
    auto f = [&](std::string_view k) { return std::string(r.get_or(k, "")); };
    std::string auth;
    for (auto raw : r.all("dkim")) {
      auto d = sdk::Record::parse(raw).value_or(sdk::Record());
      auth += "<dkim>" + element("domain", d.get_or("domain", "")) + element("selector", d.get_or("selector", "")) +
              element("result", dkim_result_type(d.get_or("result", ""))) + "</dkim>";
    }
    // The schema asks for one spf element at least.
    auth += "<spf>" + element("domain", f("spf_domain")) +
            element("scope", f("spf_scope").empty() ? "mfrom" : f("spf_scope")) +
            element("result", spf_result_type(f("spf_result"))) + "</spf>";
    Row row{f("source_ip"),
            "<policy_evaluated>" + element("disposition", f("disposition")) + element("dkim", f("dkim_aligned")) +
                element("spf", f("spf_aligned")) + "</policy_evaluated>",
            "<identifiers>" + element("header_from", f("header_from")) + "</identifiers><auth_results>" + auth +
                "</auth_results>"};
    Row& counted = rows.try_emplace(row.source_ip + "\n" + row.evaluated + "\n" + row.rest, row).first->second;
    ++counted.count;
  }
  auto f = [&](std::string_view k, std::string_view otherwise) {
    std::string v = latest ? std::string(latest->get_or(k, "")) : std::string();
    return v.empty() ? std::string(otherwise) : v;
  };
  std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n  <version>1.0</version>\n";
  xml += "  <report_metadata>" + element("org_name", meta.org_name) + element("email", meta.email) +
         element("report_id", meta.report_id) + "<date_range>" + element("begin", std::to_string(meta.begin)) +
         element("end", std::to_string(meta.end)) + "</date_range></report_metadata>\n";
  xml += "  <policy_published>" + element("domain", domain) + element("adkim", f("adkim", "r")) +
         element("aspf", f("aspf", "r")) + element("p", f("p", "none")) + element("sp", f("sp", f("p", "none"))) +
         element("pct", f("pct", "100")) + "</policy_published>\n";
  for (auto& [key, row] : rows)
    xml += "  <record><row>" + element("source_ip", row.source_ip) + element("count", std::to_string(row.count)) +
           row.evaluated + "</row>" + row.rest + "</record>\n";
  return xml + "</feedback>\n";
}

}  // namespace postern::dmarc
