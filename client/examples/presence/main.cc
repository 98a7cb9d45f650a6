// The presence demo: simulated users heartbeat their status into a room, a
// map whose fields expire (HSET + HPEXPIRE) unless refreshed. Each node's
// live view of the room comes from SUBSCRIBE on that node alone.
//
// It shows: (1) every node's view fills with every user; (2) two concurrent
// status changes of one user, through two nodes, resolve to the same value
// everywhere; (3) users whose heartbeats stop disappear from every node's view
// within the TTL plus a stated bound, measured; (4) with a partition command,
// each side keeps its own users alive and loses sight of the others', and
// after the heal every view is whole again.
//
// Exits 0 only if, at the end, every node's view equals the expected room.
#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>

#include "../common.h"

using lattice::Level;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace {

// Expiry bound beyond the TTL: the sweeper runs every 100 ms, then the
// change travels to the subscribing node and its client; 1 s is generous.
constexpr milliseconds kBound(1000);

// One node's live view of the room, fed by its subscription.
struct View {
  std::string node;
  std::mutex mu;
  std::map<std::string, std::string> room;
  std::map<std::string, Clock::time_point> gone_at;  // user -> when it last left this view
  // Declared last, destroyed first: no callback runs once the data above is gone.
  std::unique_ptr<lattice::Client> client;
  lattice::Subscription sub;

  void Update(const std::string& value) {
    auto m = lattice::ParseMap(value);
    std::lock_guard lock(mu);
    auto next = m ? *m : std::map<std::string, std::string>{};
    const auto now = Clock::now();
    for (const auto& [user, status] : room) {
      if (!next.count(user)) gone_at[user] = now;
    }
    room = std::move(next);
  }
  std::map<std::string, std::string> Room() {
    std::lock_guard lock(mu);
    return room;
  }
};

struct User {
  std::string name;
  std::string status = "online";
  std::size_t node = 0;
  std::unique_ptr<lattice::Client> client;
  std::atomic<bool> beating{true};
  Clock::time_point last_beat{};  // when its last heartbeat was acknowledged
};

}  // namespace

int main(int argc, char** argv) {
  demo::Args args = demo::Parse(argc, argv, "Users heartbeat into a room; every node's view follows by SUBSCRIBE.");
  const int users_n = args.short_mode ? 6 : 12;
  const milliseconds ttl(args.short_mode ? 1500 : 3000);
  const milliseconds beat(ttl / 3);
  const milliseconds settle(args.short_mode ? 15000 : 30000);
  const std::string room = "room:" + std::to_string(std::chrono::system_clock::now().time_since_epoch().count());

  demo::Say("The room '" + room + "': " + std::to_string(users_n) + " users, each heartbeating every " +
            std::to_string(beat.count()) + " ms through one of the three nodes; a status lives " +
            std::to_string(ttl.count()) + " ms unless refreshed.");
  std::vector<std::unique_ptr<View>> views;
  for (const auto& n : args.nodes) {
    auto v = std::make_unique<View>();
    v->node = n;
    v->client = std::make_unique<lattice::Client>(demo::OneNode(n));
    View* raw = v.get();
    v->sub = v->client->Subscribe(room, [raw](const lattice::Message& m) { raw->Update(m.value); });
    if (!v->sub.WaitActive(milliseconds(5000))) {
      std::cerr << "presence: could not subscribe on " << n << "\n";
      return 1;
    }
    views.push_back(std::move(v));
  }
  demo::Note("Each node's view below is what SUBSCRIBE on that node alone delivers.");

  std::vector<std::unique_ptr<User>> users;
  for (int i = 0; i < users_n; ++i) {
    auto u = std::make_unique<User>();
    u->name = "user" + std::to_string(i);
    u->node = static_cast<std::size_t>(i) % args.nodes.size();
    // Presence favours availability: heartbeats are written at ONE.
    u->client = std::make_unique<lattice::Client>(demo::OneNode(args.nodes[u->node]));
    users.push_back(std::move(u));
  }
  std::mutex status_mu;  // guards User::status and last_beat
  std::atomic<bool> stop{false};
  std::thread beater([&] {
    while (!stop) {
      const auto round = Clock::now();
      for (auto& u : users) {
        if (!u->beating) continue;
        std::string status;
        {
          std::lock_guard lock(status_mu);
          status = u->status;
        }
        lattice::Map m(*u->client, room);
        auto set = m.Set(u->name, status).Wait();
        auto exp = set ? m.ExpireField(u->name, ttl).Wait() : lattice::Result<bool>(set.error());
        if (exp && *exp) {
          std::lock_guard lock(status_mu);
          u->last_beat = Clock::now();
        }
      }
      std::this_thread::sleep_until(round + beat);
    }
  });
  struct StopBeater {
    std::atomic<bool>& stop;
    std::thread& t;
    ~StopBeater() {
      stop = true;
      t.join();
    }
  } stop_beater{stop, beater};

  auto expected = [&] {
    std::map<std::string, std::string> out;
    std::lock_guard lock(status_mu);
    for (auto& u : users) {
      if (u->beating) out[u->name] = u->status;
    }
    return out;
  };
  auto all_views_are = [&](const std::map<std::string, std::string>& want) {
    return std::all_of(views.begin(), views.end(), [&](auto& v) { return v->Room() == want; });
  };
  auto show_views = [&] {
    for (auto& v : views) demo::Note(v->node + " sees " + demo::Show(v->Room()));
  };

  // (1) Everyone appears everywhere.
  bool ok = demo::WaitUntil([&] { return all_views_are(expected()); }, settle);
  show_views();
  if (!ok) {
    std::cerr << "presence: the views did not fill\n";
    return 1;
  }

  // (2) Two concurrent changes of one user's status, through two nodes.
  demo::Say("user0 changes status on two devices at once: 'busy' through " + args.nodes[1] + ", 'away' through " +
            args.nodes[2] + ".");
  {
    users[0]->beating = false;  // its own heartbeat would overwrite both (HSET clears the field's TTL)
    lattice::Client d1(demo::OneNode(args.nodes[1])), d2(demo::OneNode(args.nodes[2]));
    std::thread t1([&] { (void)lattice::Map(d1, room).Set("user0", "busy").Wait(); });
    std::thread t2([&] { (void)lattice::Map(d2, room).Set("user0", "away").Wait(); });
    t1.join();
    t2.join();
    // Every view must settle on one of them, the same one.
    std::string winner;
    ok = demo::WaitUntil([&] {
      std::set<std::string> seen;
      for (auto& v : views) {
        auto r = v->Room();
        seen.insert(r.count("user0") ? r["user0"] : "");
      }
      if (seen.size() != 1) return false;
      winner = *seen.begin();
      return winner == "busy" || winner == "away";
    }, settle);
    if (!ok) {
      show_views();
      std::cerr << "presence: the concurrent changes did not resolve the same way everywhere\n";
      return 1;
    }
    demo::Note("every node shows user0 as '" + winner +
               "': the two writes were concurrent, so the one with the higher (hybrid clock, node) wins, on every node.");
    std::lock_guard lock(status_mu);
    users[0]->status = winner;  // user0's next heartbeat repeats what it now shows
    users[0]->beating = true;
  }

  // (3) Heartbeats stop for the last third: measure when each view loses them.
  const int leaving = std::max(1, users_n / 3);
  demo::Say("The last " + std::to_string(leaving) + " users close their laptops: their heartbeats stop.");
  std::map<std::string, Clock::time_point> due;  // when each one's status expires
  {
    std::lock_guard lock(status_mu);
    for (int i = users_n - leaving; i < users_n; ++i) users[i]->beating = false;
  }
  std::this_thread::sleep_for(beat);  // a heartbeat already under way completes
  {
    std::lock_guard lock(status_mu);
    for (int i = users_n - leaving; i < users_n; ++i) due[users[i]->name] = users[i]->last_beat + ttl;
  }
  ok = demo::WaitUntil([&] { return all_views_are(expected()); }, ttl + settle);
  show_views();
  milliseconds worst(0);
  for (auto& v : views) {
    std::lock_guard lock(v->mu);
    for (const auto& [name, when] : due) {
      auto it = v->gone_at.find(name);
      if (it == v->gone_at.end()) continue;
      worst = std::max(worst, std::chrono::duration_cast<milliseconds>(it->second - when));
    }
  }
  demo::Note("they left every view at most " + std::to_string(worst.count()) + " ms after their TTL ran out (stated bound: " +
             std::to_string(kBound.count()) + " ms: a 100 ms expiry sweep, then delivery).");
  if (!ok || worst > kBound) {
    std::cerr << "presence: silent users did not disappear everywhere within TTL + " << kBound.count() << " ms\n";
    return 1;
  }

  // (4) A partition: each side keeps its own users and loses the others'.
  if (!args.partition_cmd.empty()) {
    demo::Say("The network splits: " + args.nodes[0] + " is cut off from the other two.");
    if (!demo::Shell(args.partition_cmd)) {
      std::cerr << "presence: the partition command failed\n";
      return 1;
    }
    // Give expiry time to act on both sides.
    std::this_thread::sleep_for(ttl * 2 + kBound);
    show_views();
    demo::Note("the cut-off node still hears its own users but not the others' heartbeats, so their statuses expire there;");
    demo::Note("the other side likewise loses the cut-off node's users. Nobody is wrong: each side shows what it can know.");
    demo::Say("The network heals.");
    if (!demo::Shell(args.heal_cmd)) {
      std::cerr << "presence: the heal command failed\n";
      return 1;
    }
  }
  ok = demo::WaitUntil([&] { return all_views_are(expected()); }, settle);
  demo::Say("Final views:");
  show_views();
  if (!ok) {
    std::cerr << "presence: the nodes' views differ at the end; expected " << demo::Show(expected()) << "\n";
    return 1;
  }
  demo::Note("every node's view is the same: the " + std::to_string(users_n - leaving) + " users still heartbeating.");
  return 0;
}
