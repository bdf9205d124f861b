// A bounded FIFO for one stream subscriber: when it is full, pushing drops the oldest item and counts
// it, so a slow reader costs bounded memory and learns how much it lost (`takeLost`).

export interface BoundedQueue<T> {
  push(item: T): void;
  shift(): T | undefined;
  /** Items dropped since the last call, and resets the count. */
  takeLost(): number;
  readonly length: number;
  readonly capacity: number;
}

export function createBoundedQueue<T>(capacity: number): BoundedQueue<T> {
  if (!Number.isSafeInteger(capacity) || capacity < 1) {
    throw new RangeError(`a queue needs a capacity of at least 1, not ${capacity}`);
  }
  // A ring buffer: head is the oldest item, size how many there are.
  const items: Array<T | undefined> = new Array(capacity);
  let head = 0;
  let size = 0;
  let lost = 0;
  return {
    push(item) {
      if (size === capacity) {
        items[head] = undefined;
        head = (head + 1) % capacity;
        size--;
        lost++;
      }
      items[(head + size) % capacity] = item;
      size++;
    },
    shift() {
      if (size === 0) return undefined;
      const item = items[head];
      items[head] = undefined;
      head = (head + 1) % capacity;
      size--;
      return item;
    },
    takeLost() {
      const n = lost;
      lost = 0;
      return n;
    },
    get length() {
      return size;
    },
    capacity,
  };
}
