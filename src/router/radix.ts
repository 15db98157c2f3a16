// A compressed radix tree over the characters of path prefixes. Each node may hold a value (the
// candidate group of the routes stored under exactly that prefix). Insert and delete touch only
// the nodes along one key, so their cost is O(key length), independent of the tree size.

export class RadixNode<V> {
  /** Edge label from the parent (empty for the root). */
  label: string;
  parent: RadixNode<V> | null;
  /** Children keyed by the first char code of their label. */
  children: Map<number, RadixNode<V>> | null = null;
  value: V | null = null;

  constructor(label: string, parent: RadixNode<V> | null) {
    this.label = label;
    this.parent = parent;
  }
}

export class RadixTree<V> {
  readonly root = new RadixNode<V>('', null);

  /** The node for `key`, created (splitting edges as needed) when missing. */
  ensure(key: string): RadixNode<V> {
    let node = this.root;
    let i = 0;
    while (i < key.length) {
      const c = key.charCodeAt(i);
      const child = node.children?.get(c);
      if (child === undefined) {
        const leaf = new RadixNode<V>(key.slice(i), node);
        (node.children ??= new Map()).set(c, leaf);
        return leaf;
      }
      const label = child.label;
      let j = 1;
      while (j < label.length && i + j < key.length && label.charCodeAt(j) === key.charCodeAt(i + j)) j++;
      if (j < label.length) {
        // Split the edge: node -> mid(label[0..j]) -> child(label[j..]).
        const mid = new RadixNode<V>(label.slice(0, j), node);
        node.children!.set(c, mid);
        child.label = label.slice(j);
        child.parent = mid;
        mid.children = new Map([[child.label.charCodeAt(0), child]]);
        node = mid;
      } else {
        node = child;
      }
      i += j;
    }
    return node;
  }

  /** The node whose full key is exactly `key`, if any. */
  find(key: string): RadixNode<V> | undefined {
    let node = this.root;
    let i = 0;
    while (i < key.length) {
      const child = node.children?.get(key.charCodeAt(i));
      if (child === undefined || !key.startsWith(child.label, i)) return undefined;
      node = child;
      i += child.label.length;
    }
    return node;
  }

  /** Call after clearing a node's value: removes nodes left useless and re-merges single-child chains. */
  prune(node: RadixNode<V>): void {
    let cur = node;
    while (cur.parent !== null && cur.value === null && (cur.children === null || cur.children.size === 0)) {
      const parent: RadixNode<V> = cur.parent;
      parent.children!.delete(cur.label.charCodeAt(0));
      if (parent.children!.size === 0) parent.children = null;
      cur.parent = null;
      cur = parent;
    }
    // A value-less inner node with one child is merged into that child.
    if (cur.parent !== null && cur.value === null && cur.children !== null && cur.children.size === 1) {
      const only: RadixNode<V> = cur.children.values().next().value!;
      only.label = cur.label + only.label;
      only.parent = cur.parent;
      cur.parent.children!.set(only.label.charCodeAt(0), only);
      cur.parent = null;
      cur.children = null;
    }
  }

  /** Number of nodes (for tests of pruning). */
  countNodes(): number {
    let n = 0;
    const stack: RadixNode<V>[] = [this.root];
    while (stack.length > 0) {
      const node = stack.pop()!;
      n++;
      if (node.children !== null) for (const c of node.children.values()) stack.push(c);
    }
    return n;
  }
}
