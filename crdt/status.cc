#include "crdt/status.h"

namespace lattice {

std::string Status::ToString() const {
  const char* name = "OK";
  switch (code_) {
    case Code::kOk: return "OK";
    case Code::kNotFound: name = "NotFound"; break;
    case Code::kInvalidArgument: name = "InvalidArgument"; break;
    case Code::kCorruption: name = "Corruption"; break;
    case Code::kIOError: name = "IOError"; break;
    case Code::kWrongType: name = "WrongType"; break;
    case Code::kResourceExhausted: name = "ResourceExhausted"; break;
    case Code::kUnavailable: name = "Unavailable"; break;
    case Code::kTimeout: name = "Timeout"; break;
    case Code::kRefused: name = "Refused"; break;
  }
  return std::string(name) + ": " + message_;
}

}  // namespace lattice
