# Peer link frames (gossip/transport.h). A connection starts with a Hello from
# the dialling side, answered by Welcome or Refuse; after that each frame is a
# Batch of opaque messages whose schemas belong to the layers above.
@0xdb71caf0e16d7e52;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("lattice::gossip::wire");

struct Hello {
  cluster @0 :Text;
  node @1 :Text;
  incarnation @2 :UInt64;
  protocol @3 :UInt32;    # the newest peer protocol version this node speaks
  address @4 :Text;       # where this node accepts peer connections, host:port
  clusterId @5 :UInt64;   # the cluster this node belongs to (0: not formed or joined yet)
  protocolMin @6 :UInt32; # the oldest peer protocol version it speaks (0: = protocol)
  encodings @7 :List(Text); # the state types it decodes (crdt/state.capnp), by name
}

struct Frame {
  union {
    hello @0 :Hello;
    welcome @1 :Hello;
    refuse @2 :Text;          # why the connection is refused
    batch @3 :List(Data);     # messages, in send order
  }
}

# Membership gossip (gossip/membership.h): the sender's view, its own record
# first. Carried as a message inside a Batch.
struct MemberRecord {
  name @0 :Text;
  peerAddress @1 :Text;
  clientAddress @2 :Text;
  incarnation @3 :UInt64;
  version @4 :UInt64;
  state @5 :UInt8;
  joining @6 :Bool;   # still pulling its partitions: not yet a replica for reads
  leaving @7 :Bool;   # handing its partitions off before it leaves
  clusterId @8 :UInt64;  # the cluster the member belongs to (0: forming, node/cluster.h)
  forming @9 :UInt64;    # while forming: a digest of the fresh nodes it hears (founders' agreement)
}

# Replication (node/replicator.h). Keys and states are bytes; a state is a
# crdt/state.capnp KeyState encoded canonically.

# A causal context (crdt/dot_context.h) of one key: compact version vector
# and dot cloud. Sessions carry them (DESIGN §2, "causally later").
struct ContextDot {
  replica @0 :UInt64;
  counter @1 :UInt64;
}

struct KeyContext {
  key @0 :Data;
  vv @1 :List(ContextDot);
  cloud @2 :List(ContextDot);
}

# What SESSION returns (hex-encoded) and SESSION RESUME takes back.
struct SessionToken {
  keys @0 :List(KeyContext);
}

# Coordinator -> the replica that mints the write's dot.
struct Forward {
  id @0 :UInt64;          # the coordinator's request id; also the de-duplication id
  args @1 :List(Data);    # the command, one key
  need @2 :KeyContext;    # the session's context of the key: the replica covers it first
  base @3 :Data;          # a state gathered from the replicas, joined before minting ("" = none)
  basePartial @4 :Bool;   # `base` holds only the members the command names (a removal's gather)
}

# Minting replica -> coordinator, after its commit (counts as its ack).
struct ForwardReply {
  id @0 :UInt64;
  reply @1 :Data;         # what the client gets (for a protocol-4 coordinator, which reads only this)
  replicated @2 :Bool;    # false: nothing changed, no acknowledgements follow
  uncovered @3 :Bool;     # the replica does not cover `need`: resend with a base
  context @4 :KeyContext; # the write's own context (the session records it)
  # Protocol 5 (node/answer.h): the typed result. outcome is Outcome + 1; 0
  # comes from a protocol-4 minter, whose `reply` is then all there is.
  outcome @5 :UInt8;
  message @6 :Text;       # the outcome's text when the command did not run
  count @7 :Int64;        # what the command counted (DEL: keys removed)
}

# A change pushed to a replica (write path, read repair, anti-entropy).
struct Delta {
  key @0 :Data;
  state @1 :Data;
  touchedAll @2 :Bool;
  touched @3 :List(Data);  # set elements / map fields the change named
  ackTo @4 :Text;          # who waits for the acknowledgement ("" = nobody)
  ackId @5 :UInt64;
}

struct Ack {
  id @0 :UInt64;
}

struct ReadRequest {
  id @0 :UInt64;
  keys @1 :List(Data);
  selected @2 :Bool;      # load only `members` of each key's sets and maps (a removal's gather)
  members @3 :List(Data);
}

struct ReadReply {
  id @0 :UInt64;
  states @1 :List(Data);   # one per key, in order; empty = absent
  refused @2 :Bool;        # the replica is joining (rebuilding): ask another
}

# Anti-entropy (DESIGN §4): roots of the partitions both sides replicate; for
# a differing partition the two sides then trade the hashes of the children of
# the nodes that still differ, a few levels at a time (AeNodes), down to the
# leaves; the side that finds differing leaves sends its key digests in them
# (AeKeys), and the other sends the states the first lacks and asks for the
# ones it lacks (AeWant).
struct PartitionDigest {
  partition @0 :UInt32;
  hi @1 :UInt64;
  lo @2 :UInt64;
}

struct AeRoots {
  roots @0 :List(PartitionDigest);
  sync @1 :Bool;     # from a joining or leaving node: answer the differing
                     # partitions at once, and send back your roots (answer)
  answer @2 :Bool;   # these are the roots asked for by `sync`
  confirm @3 :Bool;  # these differed from yours once: if they still do, descend
}

struct AeNodes {
  partition @0 :UInt32;
  level @1 :UInt8;             # 1 = the root's children, the tree's leaf_bits = leaves
  indices @2 :List(UInt32);    # nodes at `level`, ascending
  digests @3 :List(UInt64);    # hi, lo of each node, in order
}

struct KeyDigest {
  key @0 :Data;
  hi @1 :UInt64;
  lo @2 :UInt64;
}

struct AeKeys {
  partition @0 :UInt32;
  leaves @1 :List(UInt32);     # the leaves found differing
  keys @2 :List(KeyDigest);    # the sender's keys in them
}

struct AeWant {
  partition @0 :UInt32;
  keys @1 :List(Data);         # send the states of these keys
}

# SUBSCRIBE on a node that does not replicate the key: it asks the key's
# replicas to tell it of changes (a lease, renewed every second), and the
# replica that makes a change sends the key's new value.
struct Changed {
  key @0 :Data;
  value @1 :Data;   # as SUBSCRIBE renders it
}

# Tombstone collection (DESIGN §2): is each key a tombstone here whose context
# covers the given one (or wholly retired here already)?
struct GcQuery {
  id @0 :UInt64;
  tombstones @1 :List(KeyContext);
}

struct GcReply {
  id @0 :UInt64;
  held @1 :List(Bool);   # one per tombstone, in order
}

struct PeerMessage {
  hlc @1 :UInt64;           # the sender's HLC (wall ms << 16 | logical, saturated)
  union {
    members @0 :List(MemberRecord);
    forward @2 :Forward;
    forwardReply @3 :ForwardReply;
    delta @4 :Delta;
    ack @5 :Ack;
    read @6 :ReadRequest;
    readReply @7 :ReadReply;
    aeRoots @8 :AeRoots;
    aeNodes @9 :AeNodes;
    aeKeys @10 :AeKeys;
    watch @11 :List(Data);   # keys the sender has subscribers for
    changed @12 :Changed;
    gcQuery @13 :GcQuery;
    gcReply @14 :GcReply;
    aeWant @15 :AeWant;
    acks @16 :List(UInt64);  # Acks to one coordinator coalesced in one turn (protocol 5)
    deltas @17 :List(Delta); # Deltas to one replica coalesced in one turn (protocol 5); hlc: the highest
  }
}
