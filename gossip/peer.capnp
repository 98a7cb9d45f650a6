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
  protocol @3 :UInt32;
  address @4 :Text;   # where this node accepts peer connections, host:port
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
}

struct PeerMessage {
  union {
    members @0 :List(MemberRecord);
    reserved @1 :Void;   # replication messages will take this place
  }
}
