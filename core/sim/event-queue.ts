/**
 * The event queue of the virtual clock (DESIGN.md "Time"): a binary min-heap
 * keyed by (time, seq). `seq` is a global insertion counter, so two events at
 * the same virtual time run in the order they were scheduled — the tie-break
 * that makes a run reproducible regardless of heap shape.
 *
 * Nodes remember their heap index so that cancelling (or re-arming a reused
 * timer) removes the node in O(log n) instead of leaving a tombstone; a
 * tombstone would make a re-armed timer's node appear in the heap twice.
 */

/** One scheduled event. Reused by `Timer`, so its fields are mutable. */
export class SimEventNode {
  time = 0;
  seq = 0;
  /** Position in the heap array, or -1 when not queued. */
  index = -1;
  constructor(
    public label: string,
    public fn: () => unknown,
  ) {}
}

function before(a: SimEventNode, b: SimEventNode): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}

export class EventQueue {
  private readonly heap: SimEventNode[] = [];

  get size(): number {
    return this.heap.length;
  }

  peek(): SimEventNode | undefined {
    return this.heap[0];
  }

  push(node: SimEventNode): void {
    const h = this.heap;
    node.index = h.length;
    h.push(node);
    this.up(node.index);
  }

  pop(): SimEventNode | undefined {
    const h = this.heap;
    const top = h[0];
    if (top === undefined) return undefined;
    const last = h.pop() as SimEventNode;
    if (last !== top) {
      h[0] = last;
      last.index = 0;
      this.down(0);
    }
    top.index = -1;
    return top;
  }

  /** Removes `node` if queued; returns whether it was. */
  remove(node: SimEventNode): boolean {
    const i = node.index;
    const h = this.heap;
    if (i < 0 || h[i] !== node) return false;
    const last = h.pop() as SimEventNode;
    if (last !== node) {
      h[i] = last;
      last.index = i;
      // The moved node may belong above or below its new position.
      this.up(i);
      this.down(last.index);
    }
    node.index = -1;
    return true;
  }

  private up(i: number): void {
    const h = this.heap;
    const node = h[i] as SimEventNode;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = h[p] as SimEventNode;
      if (!before(node, parent)) break;
      h[i] = parent;
      parent.index = i;
      i = p;
    }
    h[i] = node;
    node.index = i;
  }

  private down(i: number): void {
    const h = this.heap;
    const n = h.length;
    const node = h[i] as SimEventNode;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let c = l;
      if (r < n && before(h[r] as SimEventNode, h[l] as SimEventNode)) c = r;
      const child = h[c] as SimEventNode;
      if (!before(child, node)) break;
      h[i] = child;
      child.index = i;
      i = c;
    }
    h[i] = node;
    node.index = i;
  }
}
