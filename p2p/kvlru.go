package p2p

import "container/list"

// kvLRU is a least-recently-used map bounded by a byte budget (the KV
// cache's chunk store and decoded-state cache). It is not safe for
// concurrent use: its owner locks.
type kvLRU[K comparable, V any] struct {
	budget, used int64
	ll           *list.List // of *lruItem; front: most recently used
	items        map[K]*list.Element
	onEvict      func(K, V) // called for every entry that leaves (evicted, removed, cleared)
}

type lruItem[K comparable, V any] struct {
	k    K
	v    V
	size int64
}

func newKVLRU[K comparable, V any](budget int64, onEvict func(K, V)) *kvLRU[K, V] {
	return &kvLRU[K, V]{budget: budget, ll: list.New(), items: map[K]*list.Element{}, onEvict: onEvict}
}

// get returns k's value and marks it used.
func (l *kvLRU[K, V]) get(k K) (V, bool) {
	e, ok := l.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	l.ll.MoveToFront(e)
	return e.Value.(*lruItem[K, V]).v, true
}

// has reports whether k is held without marking it used.
func (l *kvLRU[K, V]) has(k K) bool {
	_, ok := l.items[k]
	return ok
}

// add stores v under k (replacing an older value) and evicts the least
// recently used entries past the budget. An entry larger than the whole
// budget is not stored (false).
func (l *kvLRU[K, V]) add(k K, v V, size int64) bool {
	if size > l.budget {
		return false
	}
	l.remove(k)
	l.items[k] = l.ll.PushFront(&lruItem[K, V]{k: k, v: v, size: size})
	l.used += size
	for l.used > l.budget {
		l.removeElement(l.ll.Back())
	}
	return true
}

// remove drops k.
func (l *kvLRU[K, V]) remove(k K) {
	if e, ok := l.items[k]; ok {
		l.removeElement(e)
	}
}

func (l *kvLRU[K, V]) removeElement(e *list.Element) {
	it := e.Value.(*lruItem[K, V])
	l.ll.Remove(e)
	delete(l.items, it.k)
	l.used -= it.size
	if l.onEvict != nil {
		l.onEvict(it.k, it.v)
	}
}

// clear drops everything.
func (l *kvLRU[K, V]) clear() {
	for l.ll.Len() > 0 {
		l.removeElement(l.ll.Back())
	}
}

// len is the number of entries.
func (l *kvLRU[K, V]) len() int { return l.ll.Len() }
