// The shopping-cart demo: two shoppers on different nodes edit one cart while
// a partition separates their nodes; after the heal the cart has merged, and
// checkout reads it at ALL.
//
// The cart is a map of counter fields (item -> quantity). Shopper A uses the
// first node, shopper B the second; the partition cuts the first node off.
// During it A removes the milk while B, not knowing, adds two more: the
// merged cart keeps milk with B's two, because a removal takes away exactly
// what it had seen (add-wins, observed-remove), never a concurrent addition.
//
// Exits 0 only if every node's view of the cart equals the expected cart.
#include "../common.h"

using lattice::Level;
using std::chrono::milliseconds;

namespace {

const std::map<std::string, std::string> kExpected = {{"apples", "2"}, {"bread", "1"}, {"eggs", "12"}, {"milk", "2"}};

bool Step(const char* who, lattice::Result<std::int64_t> r, const std::string& what) {
  if (!r) {
    std::cout << "  " << who << ": " << what << " failed: " << r.error().ToString() << std::endl;
    return false;
  }
  std::cout << "  " << who << ": " << what << " -> " << *r << std::endl;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  demo::Args args = demo::Parse(argc, argv, "Two shoppers edit one cart through a partition; the cart merges.");
  const bool partition = !args.partition_cmd.empty();
  const std::string key = "cart:demo:" + std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  const milliseconds settle(args.short_mode ? 15000 : 30000);

  // Each shopper's client stays on its own node, as a phone on one side of a
  // broken link would; the checkout client may use any node.
  lattice::Client a_client(demo::OneNode(args.nodes[0], Level::kQuorum));
  lattice::Client b_client(demo::OneNode(args.nodes[1], Level::kQuorum));
  lattice::Options any;
  any.nodes = args.nodes;
  lattice::Client checkout(any);
  lattice::Map a(a_client, key), b(b_client, key), cart(checkout, key);

  demo::Say("Shopper A (on " + args.nodes[0] + ") and shopper B (on " + args.nodes[1] + ") share the cart '" + key + "'.");
  demo::Note("Quantities are counter fields of one map; writes are at QUORUM (2 of 3 replicas) while the network is whole.");
  bool ok = Step("A", a.Increment("apples", 2).Wait(), "HINCRBY apples 2");
  ok = Step("A", a.Increment("milk", 1).Wait(), "HINCRBY milk 1") && ok;
  auto seen = b.All().Wait();
  if (!ok || !seen) {
    std::cerr << "cart: the cluster did not take the first writes: " << (seen ? "" : seen.error().ToString()) << "\n";
    return 1;
  }
  demo::Note("B reads the cart at QUORUM: " + demo::Show(*seen));

  if (partition) {
    demo::Say("The network splits: A's node is cut off from the other two.");
    if (!demo::Shell(args.partition_cmd)) {
      std::cerr << "cart: the partition command failed\n";
      return 1;
    }
    // A's node notices within a few seconds: QUORUM then fails fast, naming what is missing.
    lattice::Result<std::int64_t> r = lattice::Error{};
    demo::WaitUntil([&] {
      r = a.Size().Wait();
      return !r && r.error().code == lattice::Errc::kUnavailable;
    }, milliseconds(15000));
    if (!r) demo::Note("A at QUORUM: " + r.error().ToString());
    demo::Note("Each shopper keeps shopping at ONE: their own node accepts the write (availability over agreement).");
  } else {
    demo::Say("No partition command given: the shoppers edit one after the other at ONE (run scripts/demo.sh for the partition).");
  }
  a_client.SetLevel(Level::kOne);
  b_client.SetLevel(Level::kOne);
  ok = Step("A", a.Increment("apples", 1).Wait(), "HINCRBY apples 1");
  ok = Step("A", a.Increment("bread", 1).Wait(), "HINCRBY bread 1") && ok;
  auto removed = a.Remove({"milk"}).Wait();
  ok = Step("A", removed ? lattice::Result<std::int64_t>(*removed) : removed.error(), "HDEL milk (A saw milk = 1)") && ok;
  ok = Step("B", b.Increment("milk", 2).Wait(), "HINCRBY milk 2 (B has not seen the removal)") && ok;
  ok = Step("B", b.Increment("eggs", 12).Wait(), "HINCRBY eggs 12") && ok;
  ok = Step("B", b.Increment("apples", -1).Wait(), "HINCRBY apples -1") && ok;
  if (!ok) return 1;
  auto a_view = a.All().Wait();
  auto b_view = b.All().Wait();
  demo::Note("A's node now shows " + (a_view ? demo::Show(*a_view) : a_view.error().ToString()));
  demo::Note("B's node now shows " + (b_view ? demo::Show(*b_view) : b_view.error().ToString()));

  if (partition) {
    demo::Say("The network heals. Deltas and anti-entropy bring every replica the other side's writes.");
    if (!demo::Shell(args.heal_cmd)) {
      std::cerr << "cart: the heal command failed\n";
      return 1;
    }
  }

  // Every node's own copy, read at ONE from that node.
  std::vector<std::unique_ptr<lattice::Client>> views;
  for (const auto& n : args.nodes) views.push_back(std::make_unique<lattice::Client>(demo::OneNode(n)));
  auto converged = [&] {
    for (auto& v : views) {
      auto m = lattice::Map(*v, key).All().Wait();
      if (!m || *m != kExpected) return false;
    }
    return true;
  };
  const bool merged = demo::WaitUntil(converged, settle);

  demo::Say("The merged cart, as each node holds it:");
  for (std::size_t i = 0; i < views.size(); ++i) {
    auto m = lattice::Map(*views[i], key).All().Wait();
    demo::Note(args.nodes[i] + ": " + (m ? demo::Show(*m) : m.error().ToString()));
  }
  demo::Note("apples 2 = A's 2 + A's 1 + B's -1: counters add every replica's contribution.");
  demo::Note("milk 2: A's removal took away the 1 it had seen; B's concurrent +2 was not seen, so it stays (add-wins).");
  demo::Note("The cart's causal context (which writes of which node it has seen), from EXPLAIN:");
  auto explain = cart.Explain().Wait();
  std::stringstream lines(explain ? *explain : explain.error().ToString());
  for (std::string line; std::getline(lines, line);) std::cout << "    " << line << "\n";

  demo::Say("Checkout reads the cart at ALL: every replica must answer, so it cannot miss an edit.");
  lattice::Result<std::map<std::string, std::string>> final_cart = lattice::Error{};
  demo::WaitUntil([&] { return (final_cart = cart.All().At(Level::kAll).Wait()).ok(); }, settle);
  if (!final_cart) {
    std::cerr << "cart: checkout at ALL failed: " << final_cart.error().ToString() << "\n";
    return 1;
  }
  demo::Note("checkout: " + demo::Show(*final_cart));
  if (!merged || *final_cart != kExpected) {
    std::cerr << "cart: the nodes do not all hold the expected cart " << demo::Show(kExpected) << "\n";
    return 1;
  }
  demo::Note("Every node holds the same cart. (key " + key + ")");
  return 0;
}
