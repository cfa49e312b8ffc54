package p2p

// DropChunksForTest makes the store forget every chunk it holds, silently:
// a holder that lost (or threw away) its data but keeps its provider
// records.
func (s *KVPrefixStore) DropChunksForTest() { s.store.dropChunks() }
