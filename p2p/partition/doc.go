// Package partition holds the network-partition test of the knowledge
// plane (partition_test.go); it has no API of its own.
//
// The test puts two groups of hyperspace nodes (package node: a libp2p
// host plus an on-disk CRDT replica) into two Linux network namespaces
// joined by a veth pair, lets both groups publish signed findings while the
// link is connected, cut and healed again, and measures the time from the
// heal to the moment every replica holds the identical state. It needs
// root (CAP_SYS_ADMIN) and iproute2 and skips, saying why, without them:
//
//	go test -count=1 -run Partition -v ./p2p/partition/
//
// HS_PARTITION_CUT (a Go duration, default 10s) sets how long the link
// stays cut. After a cut longer than yamux's keepalive timeout (30s + 10s)
// the nodes have dropped every cross-side connection, so the heal waits for
// the peer keeper to redial (every p2p.Config.DiscoveryInterval, 30s by
// default): expect up to about 30s more than after a short cut.
package partition
