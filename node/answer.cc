#include "node/answer.h"

#include <charconv>

#include "gossip/wire.h"
#include "node/answer_wire.h"
#include "node/resp.h"

namespace lattice::node {

using gossip::Bytes;
using gossip::View;

std::string_view OutcomeCode(Outcome o) {
  switch (o) {
    case Outcome::kReplied:
    case Outcome::kRefused: return "";
    case Outcome::kTryAgain: return "TRYAGAIN";
    case Outcome::kUnavailable: return "UNAVAILABLE";
    case Outcome::kTimeout: return "TIMEOUT";
    case Outcome::kStale: return "STALE";
    case Outcome::kClusterDown: return "CLUSTERDOWN";
    case Outcome::kError: return "ERR";
  }
  return "ERR";
}

void AppendAnswer(std::string& out, const Answer& a) {
  if (a.ran()) {
    out.append(a.reply);
    return;
  }
  std::string text(OutcomeCode(a.outcome));
  text += ' ';
  text += a.message;
  AppendError(out, text);
}

void PutAnswer(gossip::wire::ForwardReply::Builder r, const Answer& a) {
  r.setOutcome(static_cast<std::uint8_t>(static_cast<std::uint8_t>(a.outcome) + 1));
  if (a.ran()) {
    r.setReply(Bytes(a.reply));
  } else {
    r.setMessage(a.message);
    std::string text;
    AppendAnswer(text, a);
    r.setReply(Bytes(text));
  }
  r.setCount(a.count);
}


std::optional<Answer> GetAnswer(gossip::wire::ForwardReply::Reader r) {
  Answer a;
  a.reply = std::string(View(r.getReply()));
  const std::uint8_t outcome = r.getOutcome();
  if (outcome != 0) {
    if (outcome - 1 > static_cast<int>(Outcome::kError)) return std::nullopt;
    a.outcome = static_cast<Outcome>(outcome - 1);
    a.count = r.getCount();
    if (!a.ran()) {
      a.message = r.getMessage().cStr();
      a.reply.clear();
    }
    return a;
  }
  // A protocol-4 minter's: see answer_wire.h.
  const std::string_view text = a.reply;
  if (text.rfind("-TRYAGAIN ", 0) == 0) {
    return Answer::Of(Outcome::kTryAgain, std::string(text.substr(10, text.size() - 12)));
  }
  if (!text.empty() && text[0] == '-') a.outcome = Outcome::kRefused;
  if (text.size() > 3 && text[0] == ':') std::from_chars(text.data() + 1, text.data() + text.size() - 2, a.count);
  return a;
}

}  // namespace lattice::node
