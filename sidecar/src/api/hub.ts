// Fan-out of one event kind (received messages, peer events) to stream subscribers. Every item gets a
// sequence number (1, 2, … per sidecar run); the last `retain` items are kept so a subscriber that
// connects later can ask for what it missed (`since`). Each subscriber has its own bounded queue: a
// slow one loses its oldest items, never anyone else's, and never blocks the publisher.
import { type BoundedQueue, createBoundedQueue } from "./queue.ts";

export interface Sequenced<T> {
  readonly seq: number;
  readonly item: T;
}

export interface Subscription<T> {
  readonly queue: BoundedQueue<Sequenced<T>>;
  /** Called (synchronously) after items were queued. */
  onReady(listener: () => void): void;
  close(): void;
}

export interface Hub<T> {
  publish(item: T): number;
  /** Subscribes; with `since`, retained items with a larger seq are queued first. */
  subscribe(options?: { readonly since?: number }): Subscription<T>;
  /** The seq of the last published item (0 before the first). */
  lastSeq(): number;
  subscribers(): number;
}

export function createHub<T>(options: { readonly retain: number; readonly queueLength: number }): Hub<T> {
  const retained: Array<Sequenced<T>> = [];
  const subs = new Set<{ queue: BoundedQueue<Sequenced<T>>; listener: (() => void) | undefined }>();
  let seq = 0;
  return {
    publish(item) {
      const entry = { seq: ++seq, item };
      if (options.retain > 0) {
        retained.push(entry);
        if (retained.length > options.retain) retained.shift();
      }
      for (const sub of subs) {
        sub.queue.push(entry);
        sub.listener?.();
      }
      return entry.seq;
    },
    subscribe({ since } = {}) {
      const sub = {
        queue: createBoundedQueue<Sequenced<T>>(options.queueLength),
        listener: undefined as (() => void) | undefined,
      };
      if (since !== undefined) for (const entry of retained) if (entry.seq > since) sub.queue.push(entry);
      subs.add(sub);
      return {
        queue: sub.queue,
        onReady(listener) {
          sub.listener = listener;
          if (sub.queue.length > 0) listener();
        },
        close() {
          subs.delete(sub);
          sub.listener = undefined;
        },
      };
    },
    lastSeq: () => seq,
    subscribers: () => subs.size,
  };
}
