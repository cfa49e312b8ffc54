// Package partition holds the network-partition test of the knowledge
// plane (partition_test.go); it has no API of its own.
//
// The test puts two groups of hyperspace nodes (internal/node: a libp2p
// host plus an on-disk CRDT replica) into two Linux network namespaces
// joined by a veth pair, lets both groups publish signed findings while the
// link is connected, cut and healed again, and measures the time from the
// heal to the moment every replica holds the identical state. It needs
// root (CAP_SYS_ADMIN) and iproute2 and skips, saying why, without them:
//
//	go test -count=1 -run Partition -v ./p2p/partition/
//
// HS_PARTITION_CUT (a Go duration, default 10s) sets how long the link
// stays cut; cuts longer than yamux's keepalive (30s + 10s) make the nodes
// drop their cross-side connections, so healing then needs a redial.
package partition
