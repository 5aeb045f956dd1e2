// Internal to the MIME toolkit (sdk/toolkit/mime_*.cpp, not installed): the
// helpers more than one of its files needs. Helpers used by one file only
// stay file-local there; the comments on the definitions say more.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace postern::sdk::mime::detail {

// ---- text (mime_text.cpp) ------------------------------------------------

bool is_wsp(char c);                                   // ' ' or '\t'
bool is_space(char c);                                 // WSP, CR or LF
std::string lower(std::string_view s);                 // ASCII letters lower-cased
bool iequals(std::string_view a, std::string_view b);  // ASCII case-insensitive
std::string_view trim(std::string_view s);             // without leading and trailing is_space
// The byte "=XX" / "%XX" stands for at s[i + 1], or -1.
int hex_pair(std::string_view s, size_t i);
// The longest prefix of s no longer than max that does not split a sequence.
size_t utf8_cut(std::string_view s, size_t max);

// ---- structured header values (mime_params.cpp) --------------------------

bool is_token_char(char c);  // RFC 2045 token: no space, control or tspecial
// Skips "(...)" at s[i]; an unclosed comment runs to the end.
void skip_comment(std::string_view s, size_t& i);
// Skips whitespace and comments from s[i].
void skip_cfws(std::string_view s, size_t& i);
// The content of the quoted string at s[i] with backslash escapes undone.
std::string read_quoted(std::string_view s, size_t& i);
// The run of characters accept takes from s[i].
std::string_view read_run(std::string_view s, size_t& i, bool (*accept)(char));

}  // namespace postern::sdk::mime::detail
