// StringValue (crdt/string_value.h).
#include "crdt/string_value.h"

#include <charconv>
#include <limits>

namespace lattice::crdt {

std::optional<std::int64_t> ParseStringInteger(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::size_t digits = s[0] == '-' ? 1 : 0;
  if (digits == s.size()) return std::nullopt;
  // Redis: "0" alone, otherwise the first digit is 1-9 ("-0" is refused too).
  if (s[digits] == '0' && !(s.size() == 1)) return std::nullopt;
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

namespace {

// base + increments in int64, saturated; `overflow` set when it left the range.
std::int64_t Saturated(__int128 v, bool& overflow) {
  constexpr __int128 kMax = std::numeric_limits<std::int64_t>::max();
  constexpr __int128 kMin = std::numeric_limits<std::int64_t>::min();
  if (v > kMax) {
    overflow = true;
    return static_cast<std::int64_t>(kMax);
  }
  if (v < kMin) {
    overflow = true;
    return static_cast<std::int64_t>(kMin);
  }
  return static_cast<std::int64_t>(v);
}

}  // namespace

StringValue ReadString(const RegisterStore* base, const CounterStore* increments) {
  StringValue out;
  if (base != nullptr) {
    if (const RegisterValue* winner = RegisterWinner(*base)) out.base = winner->bytes;
  }
  __int128 sum = 0;
  if (increments != nullptr && CounterLive(*increments)) {
    out.counted = true;
    sum = CounterSum(*increments);
    bool ignored = false;
    out.increments = Saturated(sum, ignored);
  }
  if (std::optional<std::int64_t> b = out.base ? ParseStringInteger(*out.base) : std::int64_t{0}) {
    out.total = Saturated(static_cast<__int128>(*b) + sum, out.overflow);
  }
  return out;
}

std::optional<std::int64_t> StringValue::Integer() const {
  if (base && !ParseStringInteger(*base)) return std::nullopt;
  return total;
}

std::string StringValue::Text() const {
  if (!counted) return base.value_or(std::string());
  if (auto v = Integer()) return std::to_string(*v);
  return *base;  // not an integer: the base as written
}

std::size_t StringValue::Size() const {
  if (!counted && base) return base->size();
  return Text().size();
}

}  // namespace lattice::crdt
