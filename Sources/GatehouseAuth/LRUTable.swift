/// A bounded map that forgets its least recently used entry first: the storage of the
/// verified-token cache and the session cache. Nodes live in one array linked by index (no
/// allocation per entry once the array has grown); the caller provides the locking.
struct LRUTable<Key: Hashable, Value> {
    private struct Node {
        var key: Key
        var value: Value
        var prev: Int
        var next: Int
    }

    let capacity: Int
    private var index: [Key: Int] = [:]
    private var nodes: [Node] = []
    private var head = -1  // most recent
    private var tail = -1  // least recent
    private var free: [Int] = []

    init(capacity: Int) { self.capacity = capacity }

    var count: Int { index.count }

    /// The value for `key`, marked most recently used.
    mutating func get(_ key: Key) -> Value? {
        guard let i = index[key] else { return nil }
        unlink(i)
        pushFront(i)
        return nodes[i].value
    }

    /// Inserts or replaces; the least recently used entry leaves when full. No-op at capacity 0.
    mutating func set(_ key: Key, _ value: Value) {
        guard capacity > 0 else { return }
        if let i = index[key] {
            nodes[i].value = value
            unlink(i)
            pushFront(i)
            return
        }
        if index.count >= capacity, tail >= 0 { remove(at: tail) }
        let node = Node(key: key, value: value, prev: -1, next: -1)
        let i: Int
        if let reused = free.popLast() {
            nodes[reused] = node
            i = reused
        } else {
            nodes.append(node)
            i = nodes.count - 1
        }
        index[key] = i
        pushFront(i)
    }

    mutating func remove(_ key: Key) {
        if let i = index[key] { remove(at: i) }
    }

    /// Drops the entries `remove` accepts.
    mutating func removeAll(where remove: (Value) -> Bool) {
        for i in Array(index.values) where remove(nodes[i].value) { self.remove(at: i) }
    }

    private mutating func unlink(_ i: Int) {
        let (p, n) = (nodes[i].prev, nodes[i].next)
        if p >= 0 { nodes[p].next = n } else { head = n }
        if n >= 0 { nodes[n].prev = p } else { tail = p }
    }

    private mutating func pushFront(_ i: Int) {
        nodes[i].prev = -1
        nodes[i].next = head
        if head >= 0 { nodes[head].prev = i }
        head = i
        if tail < 0 { tail = i }
    }

    private mutating func remove(at i: Int) {
        unlink(i)
        index[nodes[i].key] = nil
        free.append(i)
    }
}
