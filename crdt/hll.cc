// HyperLogLog (crdt/hll.h).
#include "crdt/hll.h"

#include <cmath>
#include <cstring>

namespace lattice::crdt {

namespace {

constexpr int kP = 14;
constexpr int kQ = 64 - kP;
constexpr std::uint64_t kPMask = HyperLogLog::kRegisters - 1;

// Redis's MurmurHash64A (src/hyperloglog.c), little-endian.
std::uint64_t MurmurHash64A(const void* key, int len, unsigned int seed) {
  const std::uint64_t m = 0xc6a4a7935bd1e995ULL;
  const int r = 47;
  std::uint64_t h = seed ^ (static_cast<std::uint64_t>(len) * m);
  const auto* data = static_cast<const std::uint8_t*>(key);
  const std::uint8_t* end = data + (len - (len & 7));
  while (data != end) {
    std::uint64_t k;
    std::memcpy(&k, data, sizeof k);
    k *= m;
    k ^= k >> r;
    k *= m;
    h ^= k;
    h *= m;
    data += 8;
  }
  switch (len & 7) {
    case 7: h ^= static_cast<std::uint64_t>(data[6]) << 48; [[fallthrough]];
    case 6: h ^= static_cast<std::uint64_t>(data[5]) << 40; [[fallthrough]];
    case 5: h ^= static_cast<std::uint64_t>(data[4]) << 32; [[fallthrough]];
    case 4: h ^= static_cast<std::uint64_t>(data[3]) << 24; [[fallthrough]];
    case 3: h ^= static_cast<std::uint64_t>(data[2]) << 16; [[fallthrough]];
    case 2: h ^= static_cast<std::uint64_t>(data[1]) << 8; [[fallthrough]];
    case 1:
      h ^= static_cast<std::uint64_t>(data[0]);
      h *= m;
  }
  h ^= h >> r;
  h *= m;
  h ^= h >> r;
  return h;
}

double Sigma(double x) {
  if (x == 1.) return INFINITY;
  double z_prime;
  double y = 1;
  double z = x;
  do {
    x *= x;
    z_prime = z;
    z += x * y;
    y += y;
  } while (z_prime != z);
  return z;
}

double Tau(double x) {
  if (x == 0. || x == 1.) return 0.;
  double z_prime;
  double y = 1.0;
  double z = 1 - x;
  do {
    x = std::sqrt(x);
    z_prime = z;
    y *= 0.5;
    z -= std::pow(1 - x, 2) * y;
  } while (z_prime != z);
  return z / 3;
}

}  // namespace

bool HyperLogLog::AddTo(std::string& registers, std::string_view element) {
  std::uint64_t hash = MurmurHash64A(element.data(), static_cast<int>(element.size()), 0xadc83b19);
  const std::size_t index = hash & kPMask;
  hash >>= kP;
  hash |= std::uint64_t{1} << kQ;
  std::uint64_t bit = 1;
  std::uint8_t count = 1;
  while ((hash & bit) == 0) {
    ++count;
    bit <<= 1;
  }
  auto& reg = reinterpret_cast<std::uint8_t&>(registers[index]);
  if (count <= reg) return false;
  reg = count;
  return true;
}

std::uint64_t HyperLogLog::CountOf(std::string_view registers) {
  const double m = kRegisters;
  int histo[64] = {0};
  for (unsigned char r : registers) ++histo[r & 63];
  double z = m * Tau((m - histo[kQ + 1]) / m);
  for (int j = kQ; j >= 1; --j) {
    z += histo[j];
    z *= 0.5;
  }
  z += m * Sigma(histo[0] / m);
  constexpr double kAlphaInf = 0.721347520444481703680;  // 0.5 / ln(2)
  return static_cast<std::uint64_t>(std::llroundl(kAlphaInf * m * m / z));
}

HyperLogLog HyperLogLog::Add(ReplicaId replica, const std::vector<std::string>& elements, bool& changed) {
  auto mine = state_.store.end();
  for (auto it = state_.store.begin(); it != state_.store.end(); ++it) {
    if (it->first.replica == replica) mine = it;  // one: a replica replaces its own
  }
  std::string registers = mine != state_.store.end() ? mine->second.registers : std::string(kRegisters, '\0');
  changed = mine == state_.store.end();
  for (const auto& e : elements) changed = AddTo(registers, e) || changed;
  if (!changed) return HyperLogLog{};
  Causal<DotFun<HllArray>> delta;
  if (mine != state_.store.end()) {
    delta.ctx.Insert(mine->first);
    state_.store.erase(mine);
  }
  const Dot dot = state_.ctx.NextDot(replica);
  state_.ctx.Insert(dot);
  delta.ctx.Insert(dot);
  state_.store.emplace(dot, HllArray{registers});
  delta.store.emplace(dot, HllArray{std::move(registers)});
  return FromDelta(std::move(delta));
}

std::string HyperLogLog::Merged() const {
  std::string out(kRegisters, '\0');
  for (const auto& [dot, a] : state_.store) {
    for (std::size_t i = 0; i < kRegisters && i < a.registers.size(); ++i) {
      if (static_cast<unsigned char>(a.registers[i]) > static_cast<unsigned char>(out[i])) out[i] = a.registers[i];
    }
  }
  return out;
}

std::string HyperLogLog::Sparse(std::string_view registers) {
  std::string out;
  for (std::size_t i = 0; i < registers.size(); ++i) {
    if (registers[i] == 0) continue;
    out.push_back(static_cast<char>(i >> 8));
    out.push_back(static_cast<char>(i & 0xff));
    out.push_back(registers[i]);
  }
  return out;
}

bool HyperLogLog::FromSparse(std::string_view sparse, std::string& registers) {
  if (sparse.size() % 3 != 0) return false;
  registers.assign(kRegisters, '\0');
  long last = -1;
  for (std::size_t i = 0; i < sparse.size(); i += 3) {
    const long index = (static_cast<unsigned char>(sparse[i]) << 8) | static_cast<unsigned char>(sparse[i + 1]);
    const auto value = static_cast<unsigned char>(sparse[i + 2]);
    if (index <= last || index >= static_cast<long>(kRegisters) || value == 0 || value > kQ + 1) return false;
    registers[static_cast<std::size_t>(index)] = static_cast<char>(value);
    last = index;
  }
  return true;
}

}  // namespace lattice::crdt
