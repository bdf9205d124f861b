// Custody of the Cluster Shared Key: in memory only, one key at a time. Replacing or clearing the key
// zeroes the old bytes first. The application API reads it through `CskHolder`.
import { keccak256 } from "viem";
import { type Secret, secret } from "../secret.ts";

export interface HeldCsk {
  readonly epoch: bigint;
  /** keccak256 of the key, as committed on chain. */
  readonly commitment: `0x${string}`;
  /** The 32 bytes; the holder zeroes them when the key is replaced, so copy what you keep. */
  readonly key: Secret<Uint8Array>;
}

export type CskChange = { readonly type: "acquired"; readonly epoch: bigint } | { readonly type: "cleared" };

/** The read side, for the application API. */
export interface CskHolder {
  current(): HeldCsk | undefined;
  onChange(listener: (change: CskChange) => void): () => void;
}

export interface CskCustody extends CskHolder {
  /** Takes ownership of `key` (the caller must not keep it); zeroes the key it replaces. */
  set(epoch: bigint, key: Uint8Array): HeldCsk;
  /** Zeroes and forgets the key (membership ended). */
  clear(): void;
}

export function cskCommitment(key: Uint8Array): `0x${string}` {
  return keccak256(key);
}

export function createCskCustody(): CskCustody {
  let held: { epoch: bigint; commitment: `0x${string}`; bytes: Uint8Array; view: HeldCsk } | undefined;
  const listeners = new Set<(change: CskChange) => void>();
  const emit = (change: CskChange) => {
    for (const listener of listeners) {
      try {
        listener(change);
      } catch {
        // A listener's failure is its own; custody goes on.
      }
    }
  };
  const wipe = () => {
    if (held) held.bytes.fill(0);
    held = undefined;
  };
  return {
    current: () => held?.view,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    set(epoch, key) {
      if (key.length !== 32) throw new Error(`a CSK is 32 bytes, got ${key.length}`);
      const commitment = cskCommitment(key);
      if (held?.bytes === key) return held.view;
      wipe();
      const view: HeldCsk = { epoch, commitment, key: secret(key) };
      held = { epoch, commitment, bytes: key, view };
      emit({ type: "acquired", epoch });
      return view;
    },
    clear() {
      if (held === undefined) return;
      wipe();
      emit({ type: "cleared" });
    },
  };
}
