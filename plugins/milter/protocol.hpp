// The Sendmail milter protocol, version 6 as libmilter speaks it (the MTA
// side): packets are a 4-byte big-endian length (the command byte
// included), a command byte, and data; strings end with NUL.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::milter {

constexpr uint32_t kVersion = 6;
constexpr size_t kChunk = 65535;               // body chunks (MILTER_CHUNK_SIZE)
constexpr size_t kMaxPacket = 16 * 1024 * 1024;  // a reply larger than this is a broken milter

// MTA -> milter (SMFIC_*).
namespace cmd {
constexpr char abort = 'A', body = 'B', connect = 'C', macro = 'D', eob = 'E', helo = 'H', header = 'L', mail = 'M',
               eoh = 'N', optneg = 'O', quit = 'Q', rcpt = 'R', data = 'T';
}
// milter -> MTA (SMFIR_*).
namespace reply {
constexpr char addrcpt = '+', delrcpt = '-', addrcpt_par = '2', accept = 'a', replbody = 'b', cont = 'c',
               discard = 'd', chgfrom = 'e', addheader = 'h', insheader = 'i', chgheader = 'm', progress = 'p',
               quarantine = 'q', reject = 'r', skip = 's', tempfail = 't', replycode = 'y', optneg = 'O';
}
// Actions a milter may take (SMFIF_*): the ones we carry out.
constexpr uint32_t kActions = 0x01 /*ADDHDRS*/ | 0x02 /*CHGBODY*/ | 0x04 /*ADDRCPT*/ | 0x08 /*DELRCPT*/ |
                              0x10 /*CHGHDRS*/ | 0x20 /*QUARANTINE*/ | 0x80 /*ADDRCPT_PAR*/;
// Protocol steps (SMFIP_*): the milter may skip a stage or not reply to it.
namespace step {
constexpr uint32_t no_connect = 0x1, no_helo = 0x2, no_mail = 0x4, no_rcpt = 0x8, no_body = 0x10, no_headers = 0x20,
                   no_eoh = 0x40, nr_header = 0x80, no_unknown = 0x100, no_data = 0x200, skip = 0x400,
                   rcpt_rej = 0x800, nr_connect = 0x1000, nr_helo = 0x2000, nr_mail = 0x4000, nr_rcpt = 0x8000,
                   nr_data = 0x10000, nr_unknown = 0x20000, nr_eoh = 0x40000, nr_body = 0x80000,
                   header_leading_space = 0x100000;
constexpr uint32_t all = 0x1FFFFF;
}

std::string packet(char command, std::string_view data = {});
std::string be32(uint32_t n);
uint32_t from_be32(std::string_view s);

// The NUL-terminated strings of a packet's data ("name\0value\0").
std::vector<std::string> strings(std::string_view data);

// A header section split into fields, each with its raw text (name, colon,
// value, folding and the final CRLF), and the body after the blank line.
struct Message {
  struct Field {
    std::string name, value;  // value: after the colon, leading space kept, folding kept, no final CRLF
  };
  std::vector<Field> fields;
  std::string body;
  std::string text() const;
};
Message split(std::string_view message);

// A header field name a milter may use: printable, no colon or space.
// Edits with any other name are ignored.
bool valid_name(std::string_view name);

// SMFIR_CHGHEADER: the index-th (1-based) field called name changed, or
// deleted when value is empty. SMFIR_INSHEADER: inserted at index (0 = first).
void change_header(Message& m, uint32_t index, std::string_view name, std::string_view value);
void insert_header(Message& m, uint32_t index, std::string_view name, std::string_view value);
// SMFIR_ADDHEADER: appended after the last field.
void add_header(Message& m, std::string_view name, std::string_view value);

}  // namespace postern::milter
